/* test_h1_parse.c - proxy/h1_parse.c: valid requests and responses with their fields and framing
 * verdicts, every rejection with its exact status, byte-by-byte feeding, limits (complete and
 * incomplete heads), chunk-size lines, trailer sections, the list/compare helpers and the request
 * target forms (h1_request_target). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http/h1_parse.h"

#define T_MAXH 64

static const struct h1_limits t_lim = {.max_line = 8192, .max_head = 65536, .max_headers = 64};

/* A heap copy of exactly n bytes, so AddressSanitizer catches any read past the input. */
static char *t_dup(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    memcpy(p, s, n);
    return p;
}

static void t_slice_is(struct cut_slice s, const char *want)
{
    size_t n = strlen(want);
    cr_assert_eq(s.n, n, "slice length %zu, want %zu (\"%s\")", s.n, n, want);
    cr_assert(n == 0 || memcmp(s.p, want, n) == 0, "slice \"%.*s\", want \"%s\"", (int)s.n, s.p,
              want);
}

static int t_req_n(const char *s, size_t n, const struct h1_limits *lim, struct h1_request *req,
                   struct http_field *h, unsigned maxh, int *status)
{
    char *copy = t_dup(s, n);
    int rc = h1_parse_request(copy, n, lim, req, h, maxh, status);
    free(copy);
    return rc;
}

/* Parses in place (slices stay valid as long as s). */
static int t_req(const char *s, struct h1_request *req, struct http_field *h, int *status)
{
    return h1_parse_request(s, strlen(s), &t_lim, req, h, T_MAXH, status);
}

static void t_req_rejects_n(const char *s, size_t n, int want_status)
{
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = -1;
    int rc = t_req_n(s, n, &t_lim, &req, h, T_MAXH, &status);
    cr_assert_eq(rc, CUT_EPROTO, "rc %d for \"%.*s\"", rc, (int)n, s);
    cr_assert_eq(status, want_status, "status %d, want %d for \"%.*s\"", status, want_status,
                 (int)n, s);
}

static void t_req_rejects(const char *s, int want_status)
{
    t_req_rejects_n(s, strlen(s), want_status);
}

static int t_resp(const char *s, const char *method, struct h1_response *resp, struct http_field *h,
                  int *status)
{
    struct cut_slice m = {method, strlen(method)};
    return h1_parse_response(s, strlen(s), &t_lim, m, resp, h, T_MAXH, status);
}

static void t_resp_rejects(const char *s)
{
    struct h1_response resp;
    struct http_field h[T_MAXH];
    int status = -1;
    char *copy = t_dup(s, strlen(s));
    int rc =
        h1_parse_response(copy, strlen(s), &t_lim, CUT_SLICE_LIT("GET"), &resp, h, T_MAXH, &status);
    free(copy);
    cr_assert_eq(rc, CUT_EPROTO, "rc %d for \"%s\"", rc, s);
    cr_assert_eq(status, 502, "status %d for \"%s\"", status, s);
}

static const struct http_field *t_find(const struct http_field *h, unsigned n, const char *name)
{
    for (unsigned i = 0; i < n; i++)
        if (cut_slice_ieq(h[i].name, name))
            return &h[i];
    return NULL;
}

/* ---- valid requests ---------------------------------------------------------------------- */

Test(h1_parse_req, get_origin_form_fields)
{
    const char *s = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n"
                    "Accept: */*\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(s));
    t_slice_is(req.method, "GET");
    t_slice_is(req.target, "/index.html?x=1");
    cr_assert_eq(req.minor_version, 1);
    cr_assert_eq(req.headers, h);
    cr_assert_eq(req.nheaders, 3);
    t_slice_is(h[0].name, "Host");
    t_slice_is(h[0].value, "example.com");
    cr_assert_eq(h[0].id, H1_HDR_HOST);
    cr_assert_eq(h[0].flags, 0);
    t_slice_is(h[1].name, "User-Agent");
    t_slice_is(h[1].value, "t/1");
    cr_assert_eq(h[1].id, H1_HDR_OTHER);
    t_slice_is(h[2].value, "*/*");
    t_slice_is(req.host, "example.com");
    cr_assert_eq(req.body, H1_BODY_NONE);
    cr_assert_eq(req.conn_flags, H1_CF_KEEP_ALIVE);
    cr_assert_eq(req.upgrade.n, 0);
}

Test(h1_parse_req, post_content_length_body_not_counted)
{
    const char *head = "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
    char s[256];
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    snprintf(s, sizeof(s), "%shello", head);
    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(head));
    t_slice_is(req.method, "POST");
    cr_assert_eq(req.body, H1_BODY_LENGTH);
    cr_assert_eq(req.content_length, 5);
    cr_assert_eq(h[1].id, H1_HDR_CONTENT_LENGTH);
    cr_assert_eq(h[1].flags & H1_HF_HOP, 0, "Content-Length is not hop-by-hop");
}

Test(h1_parse_req, post_chunked)
{
    const char *s = "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(s));
    cr_assert_eq(req.body, H1_BODY_CHUNKED);
    cr_assert_eq(h[1].id, H1_HDR_TRANSFER_ENCODING);
    cr_assert_eq(h[1].flags, H1_HF_HOP);
}

Test(h1_parse_req, content_length_zero)
{
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;
    const char *s = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";

    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(s));
    cr_assert_eq(req.body, H1_BODY_LENGTH);
    cr_assert_eq(req.content_length, 0);
}

Test(h1_parse_req, content_length_equal_duplicates_folded)
{
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;
    const char *a = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n";
    const char *b = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n";
    const char *c = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n";

    cr_assert_eq(t_req(a, &req, h, &status), (int)strlen(a));
    cr_assert_eq(req.content_length, 5);
    cr_assert_eq(t_req(b, &req, h, &status), (int)strlen(b));
    cr_assert_eq(req.content_length, 7);
    cr_assert_eq(t_req(c, &req, h, &status), (int)strlen(c));
    cr_assert_eq(req.content_length, 7);
}

Test(h1_parse_req, gzip_then_chunked_is_chunked)
{
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;
    const char *a = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    const char *b = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
                    "Transfer-Encoding: CHUNKED\r\n\r\n";

    cr_assert_eq(t_req(a, &req, h, &status), (int)strlen(a));
    cr_assert_eq(req.body, H1_BODY_CHUNKED);
    cr_assert_eq(t_req(b, &req, h, &status), (int)strlen(b));
    cr_assert_eq(req.body, H1_BODY_CHUNKED);
}

Test(h1_parse_req, http10_no_host_no_keep_alive)
{
    const char *s = "GET / HTTP/1.0\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(s));
    cr_assert_eq(req.minor_version, 0);
    cr_assert_eq(req.nheaders, 0);
    cr_assert_eq(req.host.n, 0);
    cr_assert_eq(req.conn_flags, 0);
}

Test(h1_parse_req, http10_keep_alive_token)
{
    const char *s = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(s));
    cr_assert_eq(req.conn_flags, H1_CF_KEEP_ALIVE);
    cr_assert_eq(h[0].flags, H1_HF_HOP);
    cr_assert_eq(h[1].id, H1_HDR_KEEP_ALIVE);
    cr_assert_eq(h[1].flags, H1_HF_HOP);
}

Test(h1_parse_req, http11_close_token)
{
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;
    const char *a = "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n";
    const char *b = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n";

    cr_assert_eq(t_req(a, &req, h, &status), (int)strlen(a));
    cr_assert_eq(req.conn_flags & H1_CF_KEEP_ALIVE, 0);
    cr_assert_eq(t_req(b, &req, h, &status), (int)strlen(b));
    cr_assert_eq(req.conn_flags & H1_CF_KEEP_ALIVE, 0);
}

Test(h1_parse_req, absolute_form)
{
    const char *s =
        "GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(s));
    t_slice_is(req.target, "http://example.com:8080/a/b?c=d");
    t_slice_is(req.host, "example.com:8080");
}

Test(h1_parse_req, asterisk_and_authority_form)
{
    const char *a = "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *b = "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(a, &req, h, &status), (int)strlen(a));
    t_slice_is(req.method, "OPTIONS");
    t_slice_is(req.target, "*");
    cr_assert_eq(t_req(b, &req, h, &status), (int)strlen(b));
    t_slice_is(req.method, "CONNECT");
    t_slice_is(req.target, "[::1]:443");
    t_slice_is(req.host, "[::1]:443");
}

Test(h1_parse_req, values_trimmed_and_empty)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: \t padded  value \t \r\nX-Empty:\r\n"
                    "X-Sp:    \r\nX-Tab: a\tb\r\nX-Obs: caf\xc3\xa9\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(s));
    cr_assert_eq(req.nheaders, 6);
    t_slice_is(h[1].value, "padded  value");
    t_slice_is(h[2].value, "");
    t_slice_is(h[3].value, "");
    t_slice_is(h[4].value, "a\tb");
    t_slice_is(h[5].value, "caf\xc3\xa9");
}

Test(h1_parse_req, bare_lf_line_ends_accepted)
{
    const char *s = "GET / HTTP/1.1\nHost: a\nX-A: b\r\n\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(s));
    cr_assert_eq(req.nheaders, 2);
    t_slice_is(h[0].value, "a");
    t_slice_is(h[1].value, "b");
}

Test(h1_parse_req, leading_empty_lines_skipped)
{
    const char *s = "\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(s));
    t_slice_is(req.method, "GET");
    t_req_rejects("\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

Test(h1_parse_req, pipelined_returns_first_head)
{
    const char *first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    int rc = t_req(s, &req, h, &status);
    cr_assert_eq(rc, (int)strlen(first));
    t_slice_is(req.target, "/1");
    cr_assert_eq(t_req(s + rc, &req, h, &status), (int)strlen(first));
    t_slice_is(req.target, "/2");
}

Test(h1_parse_req, well_known_names_case_insensitive)
{
    const char *s = "GET / HTTP/1.1\r\nhOsT: a\r\nCONTENT-length: 1\r\nconnection: x\r\n"
                    "KEEP-ALIVE: 1\r\nProxy-Connection: y\r\nte: z\r\nUpGrade: h2c\r\n"
                    "EXPECT: 100-continue\r\nTrailer: X\r\nHTTP2-Settings: AA\r\nHosts: no\r\n"
                    "Te-: no\r\n\r\n";
    static const uint8_t want[] = {H1_HDR_HOST,
                                   H1_HDR_CONTENT_LENGTH,
                                   H1_HDR_CONNECTION,
                                   H1_HDR_KEEP_ALIVE,
                                   H1_HDR_PROXY_CONNECTION,
                                   H1_HDR_TE,
                                   H1_HDR_UPGRADE,
                                   H1_HDR_EXPECT,
                                   H1_HDR_TRAILER,
                                   H1_HDR_HTTP2_SETTINGS,
                                   H1_HDR_OTHER,
                                   H1_HDR_OTHER};
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(s, &req, h, &status), (int)strlen(s));
    cr_assert_eq(req.nheaders, CUT_ARRAY_LEN(want));
    for (unsigned i = 0; i < CUT_ARRAY_LEN(want); i++)
        cr_assert_eq(h[i].id, want[i], "field %u (%.*s): id %u want %u", i, (int)h[i].name.n,
                     h[i].name.p, h[i].id, want[i]);
    t_slice_is(h[0].name, "hOsT");
}

Test(h1_parse_req, hop_by_hop_marking)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo, content-length,host\r\n"
                    "X-Foo: 1\r\nX-Bar: 2\r\nContent-Length: 0\r\nKeep-Alive: 3\r\n"
                    "Proxy-Connection: k\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n"
                    "Upgrade: h2c\r\nHTTP2-Settings: AA\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    /* CL together with TE is rejected, so parse without the CL line for the flags. */
    cr_assert_eq(t_req(s, &req, h, &status), CUT_EPROTO);
    cr_assert_eq(status, 400);

    const char *s2 = "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo, content-length,host\r\n"
                     "X-Foo: 1\r\nX-Bar: 2\r\nContent-Length: 0\r\nKeep-Alive: 3\r\n"
                     "Proxy-Connection: k\r\nTE: trailers\r\nUpgrade: h2c\r\n"
                     "HTTP2-Settings: AA\r\nx-foo: again\r\n\r\n";
    cr_assert_eq(t_req(s2, &req, h, &status), (int)strlen(s2));
    cr_assert_eq(t_find(h, req.nheaders, "host")->flags, 0);
    cr_assert_eq(t_find(h, req.nheaders, "connection")->flags, H1_HF_HOP);
    cr_assert_eq(h[2].flags, H1_HF_HOP, "X-Foo is named by Connection");
    cr_assert_eq(h[10].flags, H1_HF_HOP, "x-foo is named by Connection (case-insensitive)");
    cr_assert_eq(t_find(h, req.nheaders, "x-bar")->flags, 0);
    cr_assert_eq(t_find(h, req.nheaders, "content-length")->flags, 0);
    cr_assert_eq(t_find(h, req.nheaders, "keep-alive")->flags, H1_HF_HOP);
    cr_assert_eq(t_find(h, req.nheaders, "proxy-connection")->flags, H1_HF_HOP);
    cr_assert_eq(t_find(h, req.nheaders, "te")->flags, H1_HF_HOP);
    cr_assert_eq(t_find(h, req.nheaders, "upgrade")->flags, H1_HF_HOP);
    cr_assert_eq(t_find(h, req.nheaders, "http2-settings")->flags, H1_HF_HOP);
    cr_assert_eq(req.body, H1_BODY_LENGTH);
}

Test(h1_parse_req, upgrade_semantics)
{
    const char *a = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                    "Upgrade: websocket\r\n\r\n";
    const char *b = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n";
    const char *c = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
    const char *d = "GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(a, &req, h, &status), (int)strlen(a));
    cr_assert_eq(req.conn_flags, H1_CF_KEEP_ALIVE | H1_CF_UPGRADE);
    t_slice_is(req.upgrade, "websocket");
    cr_assert_eq(t_req(b, &req, h, &status), (int)strlen(b));
    cr_assert_eq(req.conn_flags & H1_CF_UPGRADE, 0, "no Upgrade field");
    cr_assert_eq(t_req(c, &req, h, &status), (int)strlen(c));
    cr_assert_eq(req.conn_flags & H1_CF_UPGRADE, 0, "no upgrade token");
    cr_assert_eq(t_req(d, &req, h, &status), (int)strlen(d));
    cr_assert_eq(req.conn_flags & H1_CF_UPGRADE, 0, "ignored in HTTP/1.0");
}

Test(h1_parse_req, expect_continue_and_te_trailers)
{
    const char *a = "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n"
                    "TE: deflate;q=0.5, Trailers\r\n\r\n";
    const char *b = "PUT / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nTE: gzip\r\n\r\n";
    const char *c = "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req(a, &req, h, &status), (int)strlen(a));
    cr_assert_eq(req.conn_flags, H1_CF_KEEP_ALIVE | H1_CF_EXPECT_CONTINUE | H1_CF_TE_TRAILERS);
    cr_assert_eq(t_req(b, &req, h, &status), (int)strlen(b));
    cr_assert_eq(req.conn_flags, H1_CF_KEEP_ALIVE);
    cr_assert_eq(t_req(c, &req, h, &status), (int)strlen(c));
    cr_assert_eq(req.conn_flags & H1_CF_EXPECT_CONTINUE, 0, "ignored in HTTP/1.0");
}

/* ---- byte by byte ------------------------------------------------------------------------ */

static const char *const t_valid_requests[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n",
    "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
    "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET http://example.com:8080/a HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\nHost: a\nX-A: b\n\n",
    "\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Pad:  v  \r\nX-Empty:\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
};

Test(h1_parse_req, byte_by_byte_every_prefix_is_eagain)
{
    for (unsigned i = 0; i < CUT_ARRAY_LEN(t_valid_requests); i++) {
        const char *s = t_valid_requests[i];
        size_t n = strlen(s);
        struct h1_request req;
        struct http_field h[T_MAXH];
        int status = 0;

        for (size_t k = 0; k < n; k++) {
            int rc = t_req_n(s, k, &t_lim, &req, h, T_MAXH, &status);
            cr_assert_eq(rc, CUT_EAGAIN, "request %u prefix %zu: rc %d status %d", i, k, rc,
                         status);
        }
        cr_assert_eq(t_req_n(s, n, &t_lim, &req, h, T_MAXH, &status), (int)n, "request %u", i);
    }
}

/* ---- rejections -------------------------------------------------------------------------- */

Test(h1_parse_req, reject_cl_with_te)
{
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n",
                  400);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                  "Content-Length: 0\r\n\r\n",
                  400);
}

Test(h1_parse_req, reject_differing_content_length)
{
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                  400);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5,6\r\n\r\n",
                  400);
}

Test(h1_parse_req, reject_bad_content_length)
{
    static const char *const bad[] = {"abc",  "5a",   "-1", "+5", "",   "5 5",
                                      "0x10", "5,,5", ",5", "5,", "1.0"};
    char s[256];

    for (unsigned i = 0; i < CUT_ARRAY_LEN(bad); i++) {
        snprintf(s, sizeof(s), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", bad[i]);
        t_req_rejects(s, 400);
    }
}

Test(h1_parse_req, reject_content_length_overflow)
{
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
                  400);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                  400);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387905\r\n\r\n", 400);

    const char *ok = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387904\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;
    cr_assert_eq(t_req(ok, &req, h, &status), (int)strlen(ok));
    cr_assert_eq(req.content_length, UINT64_C(1) << 62);
}

Test(h1_parse_req, reject_transfer_encoding_framing)
{
    /* HTTP/1.0 */
    t_req_rejects("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    /* last coding not chunked */
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                  "Transfer-Encoding: gzip\r\n\r\n",
                  400);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400);
    /* chunked twice */
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n",
                  400);
    /* parameters or junk inside an element */
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400);
}

Test(h1_parse_req, unknown_coding_is_501)
{
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n", 501);
    t_req_rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501);
}

Test(h1_parse_req, reject_obs_fold)
{
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
}

Test(h1_parse_req, reject_bad_field_names)
{
    t_req_rejects("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nX-\xc3\xa9: b\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400);
}

Test(h1_parse_req, reject_control_chars_in_values)
{
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nX-A: \x1b[0m\r\n\r\n", 400);
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n";
    t_req_rejects_n(nul, sizeof(nul) - 1, 400);
}

Test(h1_parse_req, reject_bare_cr)
{
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\n\rX", 400);
    t_req_rejects("GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

Test(h1_parse_req, reject_host_problems)
{
    t_req_rejects("GET / HTTP/1.1\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: user@evil\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);

    const char *empty = "GET /x HTTP/1.1\r\nHost:\r\n\r\n";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;
    cr_assert_eq(t_req(empty, &req, h, &status), (int)strlen(empty), "empty Host is allowed");
    cr_assert_eq(req.host.n, 0);
}

Test(h1_parse_req, reject_request_line_syntax)
{
    t_req_rejects(" / HTTP/1.1\r\nHost: a\r\n\r\n", 400);         /* empty method */
    t_req_rejects("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);     /* non-token method */
    t_req_rejects("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);     /* empty target */
    t_req_rejects("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400); /* CTL in target */
    t_req_rejects("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400); /* DEL in target */
    t_req_rejects("GET /\r\n\r\n", 400);                          /* HTTP/0.9 style */
    t_req_rejects("GET / \r\nHost: a\r\n\r\n", 400);              /* empty version */
    t_req_rejects("GET\r\nHost: a\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    t_req_rejects("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1\r\nHost: a\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/11.1\r\nHost: a\r\n\r\n", 400);
    t_req_rejects("GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400);
}

Test(h1_parse_req, unsupported_version_is_505)
{
    t_req_rejects("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    t_req_rejects("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
    t_req_rejects("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
    t_req_rejects("GET / HTTP/3.0\r\n", 505);
}

Test(h1_parse_req, garbage_prefix_rejected_early)
{
    /* A verdict as soon as the offending byte arrives, not when the head ends. */
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\nBad Name", 400);
    t_req_rejects("G\x01", 400);
    t_req_rejects("GET / HTTP/1.1\r\nHost: a\r\n\tfold", 400);
}

/* ---- limits ------------------------------------------------------------------------------ */

Test(h1_parse_req, request_line_limit_414)
{
    const struct h1_limits lim = {.max_line = 20, .max_head = 1024, .max_headers = 8};
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;
    /* "GET /12345 HTTP/1.1" is 19 bytes; "GET /123456 HTTP/1.1" is 20; one more is 21. */
    const char *ok = "GET /123456 HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *over = "GET /1234567 HTTP/1.1\r\nHost: a\r\n\r\n";

    cr_assert_eq(t_req_n(ok, strlen(ok), &lim, &req, h, T_MAXH, &status), (int)strlen(ok));
    cr_assert_eq(t_req_n(over, strlen(over), &lim, &req, h, T_MAXH, &status), CUT_EPROTO);
    cr_assert_eq(status, 414);
    /* Incomplete: exactly the limit (and its CR) waits, one byte past it is 414 at once. */
    cr_assert_eq(t_req_n(ok, 20, &lim, &req, h, T_MAXH, &status), CUT_EAGAIN);
    cr_assert_eq(t_req_n(ok, 21, &lim, &req, h, T_MAXH, &status), CUT_EAGAIN);
    cr_assert_eq(t_req_n(over, 21, &lim, &req, h, T_MAXH, &status), CUT_EPROTO);
    cr_assert_eq(status, 414);
    cr_assert_eq(
        t_req_n("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 37, &lim, &req, h, T_MAXH, &status),
        CUT_EPROTO);
    cr_assert_eq(status, 414);
}

Test(h1_parse_req, head_limit_431)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 0123456789\r\n\r\n"; /* 45 bytes */
    size_t n = strlen(s);
    const struct h1_limits exact = {.max_line = 100, .max_head = n, .max_headers = 8};
    const struct h1_limits small = {.max_line = 100, .max_head = n - 1, .max_headers = 8};
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req_n(s, n, &exact, &req, h, T_MAXH, &status), (int)n);
    cr_assert_eq(t_req_n(s, n, &small, &req, h, T_MAXH, &status), CUT_EPROTO);
    cr_assert_eq(status, 431);
    /* Incomplete and already too large: 431 without waiting for the end. */
    cr_assert_eq(t_req_n(s, n - 1, &small, &req, h, T_MAXH, &status), CUT_EAGAIN);
    char big[512];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ", 32);
    cr_assert_eq(t_req_n(big, sizeof(big), &exact, &req, h, T_MAXH, &status), CUT_EPROTO);
    cr_assert_eq(status, 431);
}

Test(h1_parse_req, too_many_fields_431)
{
    const struct h1_limits lim = {.max_line = 100, .max_head = 4096, .max_headers = 3};
    const char *three = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    const char *four = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    const char *four_partial = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC";
    struct h1_request req;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_req_n(three, strlen(three), &lim, &req, h, T_MAXH, &status), (int)strlen(three));
    cr_assert_eq(req.nheaders, 3);
    cr_assert_eq(t_req_n(four, strlen(four), &lim, &req, h, T_MAXH, &status), CUT_EPROTO);
    cr_assert_eq(status, 431);
    cr_assert_eq(t_req_n(four_partial, strlen(four_partial), &lim, &req, h, T_MAXH, &status),
                 CUT_EPROTO);
    cr_assert_eq(status, 431);
    /* The caller's array is the tighter bound here. */
    cr_assert_eq(t_req_n(three, strlen(three), &t_lim, &req, h, 2, &status), CUT_EPROTO);
    cr_assert_eq(status, 431);
    /* No storage: a request without fields still parses. */
    cr_assert_eq(t_req_n("GET / HTTP/1.0\r\n\r\n", 18, &t_lim, &req, NULL, 0, &status), 18);
}

/* ---- responses --------------------------------------------------------------------------- */

Test(h1_parse_resp, ok_with_content_length)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\n";
    struct h1_response resp;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_resp(s, "GET", &resp, h, &status), (int)strlen(s));
    cr_assert_eq(resp.minor_version, 1);
    cr_assert_eq(resp.status, 200);
    t_slice_is(resp.reason, "OK");
    cr_assert_eq(resp.nheaders, 2);
    t_slice_is(h[1].value, "text/plain");
    cr_assert_eq(resp.body, H1_BODY_LENGTH);
    cr_assert_eq(resp.content_length, 12);
    cr_assert_eq(resp.conn_flags, H1_CF_KEEP_ALIVE);
}

Test(h1_parse_resp, chunked_and_until_close)
{
    const char *a = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    const char *b = "HTTP/1.1 200 OK\r\n\r\n";
    const char *c = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
    const char *d = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    struct h1_response resp;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_resp(a, "GET", &resp, h, &status), (int)strlen(a));
    cr_assert_eq(resp.body, H1_BODY_CHUNKED);
    cr_assert_eq(resp.conn_flags, H1_CF_KEEP_ALIVE);
    cr_assert_eq(t_resp(b, "GET", &resp, h, &status), (int)strlen(b));
    cr_assert_eq(resp.body, H1_BODY_UNTIL_CLOSE);
    cr_assert_eq(resp.conn_flags & H1_CF_KEEP_ALIVE, 0, "until close clears keep-alive");
    cr_assert_eq(t_resp(c, "GET", &resp, h, &status), (int)strlen(c));
    cr_assert_eq(resp.body, H1_BODY_UNTIL_CLOSE);
    cr_assert_eq(t_resp(d, "GET", &resp, h, &status), (int)strlen(d));
    cr_assert_eq(resp.body, H1_BODY_UNTIL_CLOSE);
    cr_assert_eq(resp.conn_flags & H1_CF_KEEP_ALIVE, 0);
}

Test(h1_parse_resp, bodiless_statuses_and_head)
{
    static const char *const bodiless[] = {
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\n\r\n",
    };
    struct h1_response resp;
    struct http_field h[T_MAXH];
    int status = 0;

    for (unsigned i = 0; i < CUT_ARRAY_LEN(bodiless); i++) {
        cr_assert_eq(t_resp(bodiless[i], "GET", &resp, h, &status), (int)strlen(bodiless[i]));
        cr_assert_eq(resp.body, H1_BODY_NONE, "%s", bodiless[i]);
        cr_assert_eq(resp.conn_flags & H1_CF_KEEP_ALIVE, H1_CF_KEEP_ALIVE, "%s", bodiless[i]);
    }
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
    cr_assert_eq(t_resp(s, "HEAD", &resp, h, &status), (int)strlen(s));
    cr_assert_eq(resp.body, H1_BODY_NONE);
    cr_assert_eq(resp.conn_flags, H1_CF_KEEP_ALIVE);
    const char *t = "HTTP/1.1 200 OK\r\n\r\n";
    cr_assert_eq(t_resp(t, "head", &resp, h, &status), (int)strlen(t));
    cr_assert_eq(resp.body, H1_BODY_NONE);
}

Test(h1_parse_resp, switching_protocols_upgrade)
{
    const char *a = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                    "Upgrade: websocket\r\n\r\n";
    const char *b = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    const char *c = "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n";
    struct h1_response resp;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_resp(a, "GET", &resp, h, &status), (int)strlen(a));
    cr_assert_eq(resp.conn_flags & H1_CF_UPGRADE, H1_CF_UPGRADE);
    cr_assert_eq(resp.body, H1_BODY_NONE);
    cr_assert_eq(h[1].flags, H1_HF_HOP);
    cr_assert_eq(t_resp(b, "GET", &resp, h, &status), (int)strlen(b));
    cr_assert_eq(resp.conn_flags & H1_CF_UPGRADE, 0);
    cr_assert_eq(t_resp(c, "GET", &resp, h, &status), (int)strlen(c));
    cr_assert_eq(resp.conn_flags & H1_CF_UPGRADE, 0);
}

Test(h1_parse_resp, reason_phrase_forms)
{
    const char *a = "HTTP/1.1 204 \r\n\r\n";
    const char *b = "HTTP/1.1 204\r\n\r\n";
    const char *c = "HTTP/1.1 404 Not  Found \tat all\r\n\r\n";
    struct h1_response resp;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_resp(a, "GET", &resp, h, &status), (int)strlen(a));
    cr_assert_eq(resp.status, 204);
    t_slice_is(resp.reason, "");
    cr_assert_eq(t_resp(b, "GET", &resp, h, &status), (int)strlen(b));
    t_slice_is(resp.reason, "");
    cr_assert_eq(t_resp(c, "GET", &resp, h, &status), (int)strlen(c));
    cr_assert_eq(resp.status, 404);
    t_slice_is(resp.reason, "Not  Found \tat all");
}

Test(h1_parse_resp, keep_alive_rules)
{
    const char *a = "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n";
    const char *b = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n";
    const char *c = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n";
    const char *d = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n";
    struct h1_response resp;
    struct http_field h[T_MAXH];
    int status = 0;

    cr_assert_eq(t_resp(a, "GET", &resp, h, &status), (int)strlen(a));
    cr_assert_eq(resp.minor_version, 0);
    cr_assert_eq(resp.conn_flags, 0);
    cr_assert_eq(t_resp(b, "GET", &resp, h, &status), (int)strlen(b));
    cr_assert_eq(resp.conn_flags, H1_CF_KEEP_ALIVE);
    cr_assert_eq(t_resp(c, "GET", &resp, h, &status), (int)strlen(c));
    cr_assert_eq(resp.conn_flags, 0);
    cr_assert_eq(t_resp(d, "GET", &resp, h, &status), (int)strlen(d));
    cr_assert_eq(resp.body, H1_BODY_UNTIL_CLOSE);
    cr_assert_eq(resp.conn_flags, 0);
}

Test(h1_parse_resp, rejections_are_502)
{
    t_resp_rejects("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    t_resp_rejects("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    t_resp_rejects("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
    t_resp_rejects("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
    t_resp_rejects("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    t_resp_rejects("HTTP/2.0 200 OK\r\n\r\n");
    t_resp_rejects("HTTP/1.2 200 OK\r\n\r\n");
    t_resp_rejects("HTTP/1.1 20 OK\r\n\r\n");
    t_resp_rejects("HTTP/1.1 2000 OK\r\n\r\n");
    t_resp_rejects("HTTP/1.1 099 Low\r\n\r\n");
    t_resp_rejects("HTTP/1.1 abc OK\r\n\r\n");
    t_resp_rejects("HTTP/1.1  200 OK\r\n\r\n");
    t_resp_rejects("HTTP/1.1 200 O\x01K\r\n\r\n");
    t_resp_rejects("HTTP/1.1 200 OK\rX\r\n\r\n");
    t_resp_rejects("HTTP/1.1 200 OK\r\nX : y\r\n\r\n");
    t_resp_rejects("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n");
    t_resp_rejects("SSH-2.0-OpenSSH"); /* incomplete, but clearly not HTTP/1 */
    t_resp_rejects("http/1.1 200 OK\r\n\r\n");
}

Test(h1_parse_resp, limits_are_502)
{
    const struct h1_limits lim = {.max_line = 16, .max_head = 64, .max_headers = 1};
    struct h1_response resp;
    struct http_field h[T_MAXH];
    int status = 0;
    const char *longline = "HTTP/1.1 200 A long reason\r\n\r\n";
    const char *many = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    char big[100];
    memset(big, 'x', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);

    cr_assert_eq(h1_parse_response(longline, strlen(longline), &lim, CUT_SLICE_LIT("GET"), &resp, h,
                                   T_MAXH, &status),
                 CUT_EPROTO);
    cr_assert_eq(status, 502);
    cr_assert_eq(h1_parse_response(many, strlen(many), &lim, CUT_SLICE_LIT("GET"), &resp, h, T_MAXH,
                                   &status),
                 CUT_EPROTO);
    cr_assert_eq(status, 502);
    cr_assert_eq(
        h1_parse_response(big, sizeof(big), &lim, CUT_SLICE_LIT("GET"), &resp, h, T_MAXH, &status),
        CUT_EPROTO);
    cr_assert_eq(status, 502);
}

static const char *const t_valid_responses[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\n",
    "HTTP/1.1 204\r\n\r\n",
    "HTTP/1.0 404 Not Found\nServer: x\n\n",
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
};

Test(h1_parse_resp, byte_by_byte_every_prefix_is_eagain)
{
    for (unsigned i = 0; i < CUT_ARRAY_LEN(t_valid_responses); i++) {
        const char *s = t_valid_responses[i];
        size_t n = strlen(s);
        struct h1_response resp;
        struct http_field h[T_MAXH];
        int status = 0;

        for (size_t k = 0; k <= n; k++) {
            char *copy = t_dup(s, k);
            int rc =
                h1_parse_response(copy, k, &t_lim, CUT_SLICE_LIT("GET"), &resp, h, T_MAXH, &status);
            free(copy);
            if (k < n)
                cr_assert_eq(rc, CUT_EAGAIN, "response %u prefix %zu: rc %d", i, k, rc);
            else
                cr_assert_eq(rc, (int)n, "response %u: rc %d", i, rc);
        }
    }
}

/* ---- chunk sizes ------------------------------------------------------------------------- */

static int t_chunk(const char *s, uint64_t *size)
{
    char *copy = t_dup(s, strlen(s));
    int rc = h1_parse_chunk_size(copy, strlen(s), size);
    free(copy);
    return rc;
}

Test(h1_parse_chunk, valid_sizes)
{
    uint64_t size = 99;

    cr_assert_eq(t_chunk("0\r\n", &size), 3);
    cr_assert_eq(size, 0);
    cr_assert_eq(t_chunk("1a\r\n", &size), 4);
    cr_assert_eq(size, 26);
    cr_assert_eq(t_chunk("FF\r\n", &size), 4);
    cr_assert_eq(size, 255);
    cr_assert_eq(t_chunk("aBcD\r\n", &size), 6);
    cr_assert_eq(size, 0xabcd);
    cr_assert_eq(t_chunk("0000000000000000000000010\r\n", &size), 27);
    cr_assert_eq(size, 16);
    cr_assert_eq(t_chunk("4000000000000000\r\n", &size), 18);
    cr_assert_eq(size, UINT64_C(1) << 62);
}

Test(h1_parse_chunk, consumes_only_the_line)
{
    uint64_t size = 0;
    cr_assert_eq(h1_parse_chunk_size("5\r\nhello\r\n0\r\n\r\n", 15, &size), 3);
    cr_assert_eq(size, 5);
}

Test(h1_parse_chunk, extensions)
{
    uint64_t size = 0;

    cr_assert_eq(t_chunk("5;name=value\r\n", &size), 14);
    cr_assert_eq(size, 5);
    cr_assert_eq(t_chunk("5;a\r\n", &size), 5);
    cr_assert_eq(t_chunk("5;a;b=c\r\n", &size), 9);
    cr_assert_eq(t_chunk("5 ; a = b\r\n", &size), 11);
    cr_assert_eq(t_chunk("5;a=\"q \\\" x;y\"\r\n", &size), 16);
    cr_assert_eq(t_chunk("A;foo=\"\";bar\r\n", &size), 14);
    cr_assert_eq(size, 10);
}

Test(h1_parse_chunk, incomplete_is_eagain)
{
    static const char *const partial[] = {"",      "1",    "1a",        "1a\r",      "5;",
                                          "5;ext", "5;e=", "5;e=\"abc", "5;e=\"a\\", "5 "};
    uint64_t size = 0;

    for (unsigned i = 0; i < CUT_ARRAY_LEN(partial); i++)
        cr_assert_eq(t_chunk(partial[i], &size), CUT_EAGAIN, "\"%s\"", partial[i]);
}

Test(h1_parse_chunk, overflow)
{
    uint64_t size = 0;

    cr_assert_eq(t_chunk("4000000000000001\r\n", &size), CUT_EPROTO);
    cr_assert_eq(t_chunk("10000000000000000\r\n", &size), CUT_EPROTO);
    cr_assert_eq(t_chunk("ffffffffffffffffffffffff\r\n", &size), CUT_EPROTO);
    cr_assert_eq(t_chunk("ffffffffffffffff", &size), CUT_EPROTO, "no need to wait for CRLF");
}

Test(h1_parse_chunk, invalid)
{
    static const char *const bad[] = {"\r\n",      "g\r\n",       "-1\r\n",     "0x1a\r\n",
                                      "1a\n",      "1a \r\n",     "1a;\r\n",    "1a;a=\r\n",
                                      "1a\rX",     ";a\r\n",      "1a;a b\r\n", "1a;a=\"\x01\"\r\n",
                                      "1a;a \r\n", "1a;a=b \r\n", "1a,2\r\n",   "+1\r\n"};
    uint64_t size = 0;

    for (unsigned i = 0; i < CUT_ARRAY_LEN(bad); i++)
        cr_assert_eq(t_chunk(bad[i], &size), CUT_EPROTO, "\"%s\"", bad[i]);
}

Test(h1_parse_chunk, line_limit)
{
    char line[5000];
    uint64_t size = 0;

    line[0] = '1';
    line[1] = ';';
    memset(line + 2, 'a', sizeof(line) - 2);
    cr_assert_eq(h1_parse_chunk_size(line, sizeof(line), &size), CUT_EPROTO, "incomplete, long");
    cr_assert_eq(h1_parse_chunk_size(line, 4096, &size), CUT_EAGAIN, "at the limit, waits");
    cr_assert_eq(h1_parse_chunk_size(line, 4097, &size), CUT_EPROTO, "one past the limit");
    memcpy(line + 4094, "\r\n", 2);
    cr_assert_eq(h1_parse_chunk_size(line, sizeof(line), &size), 4096, "4094-byte line fits");
}

/* ---- trailers ---------------------------------------------------------------------------- */

Test(h1_parse_trailers, empty_and_fields)
{
    struct http_field h[T_MAXH];
    unsigned n = 99;
    const char *s = "X-Checksum: abc \r\nExpires: never\r\n\r\nNEXT";

    cr_assert_eq(h1_parse_trailers("\r\n", 2, &t_lim, h, T_MAXH, &n), 2);
    cr_assert_eq(n, 0);
    cr_assert_eq(h1_parse_trailers("\n", 1, &t_lim, h, T_MAXH, &n), 1);
    cr_assert_eq(h1_parse_trailers(s, strlen(s), &t_lim, h, T_MAXH, &n), (int)strlen(s) - 4);
    cr_assert_eq(n, 2);
    t_slice_is(h[0].name, "X-Checksum");
    t_slice_is(h[0].value, "abc");
    t_slice_is(h[1].value, "never");
}

Test(h1_parse_trailers, byte_by_byte)
{
    const char *s = "X-A: 1\r\nX-B: 2\r\n\r\n";
    size_t n = strlen(s);
    struct http_field h[T_MAXH];
    unsigned nh = 0;

    for (size_t k = 0; k < n; k++) {
        char *copy = t_dup(s, k);
        int rc = h1_parse_trailers(copy, k, &t_lim, h, T_MAXH, &nh);
        free(copy);
        cr_assert_eq(rc, CUT_EAGAIN, "prefix %zu", k);
    }
    cr_assert_eq(h1_parse_trailers(s, n, &t_lim, h, T_MAXH, &nh), (int)n);
    cr_assert_eq(nh, 2);
}

Test(h1_parse_trailers, rejections)
{
    const struct h1_limits lim = {.max_line = 100, .max_head = 32, .max_headers = 2};
    struct http_field h[T_MAXH];
    unsigned n = 0;
    const char *fold = "X-A: 1\r\n 2\r\n\r\n";
    const char *name = "X A: 1\r\n\r\n";
    const char *ctl = "X-A: \x02\r\n\r\n";
    const char *cr = "X-A: 1\r\r\n\r\n";
    const char *three = "A: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    const char *big = "X-Long: 0123456789012345678901234567890\r\n\r\n";

    cr_assert_eq(h1_parse_trailers(fold, strlen(fold), &t_lim, h, T_MAXH, &n), CUT_EPROTO);
    cr_assert_eq(h1_parse_trailers(name, strlen(name), &t_lim, h, T_MAXH, &n), CUT_EPROTO);
    cr_assert_eq(h1_parse_trailers(ctl, strlen(ctl), &t_lim, h, T_MAXH, &n), CUT_EPROTO);
    cr_assert_eq(h1_parse_trailers(cr, strlen(cr), &t_lim, h, T_MAXH, &n), CUT_EPROTO);
    cr_assert_eq(h1_parse_trailers(three, strlen(three), &lim, h, T_MAXH, &n), CUT_EPROTO);
    cr_assert_eq(h1_parse_trailers(three, strlen(three), &t_lim, h, 2, &n), CUT_EPROTO);
    cr_assert_eq(h1_parse_trailers(big, strlen(big), &lim, h, T_MAXH, &n), CUT_EPROTO);
    cr_assert_eq(h1_parse_trailers(big, 33, &lim, h, T_MAXH, &n), CUT_EPROTO, "early");
}

/* ---- helpers ----------------------------------------------------------------------------- */

Test(h1_parse_util, slice_ieq)
{
    cr_assert(cut_slice_ieq(CUT_SLICE_LIT("HeAd"), "head"));
    cr_assert(cut_slice_ieq(CUT_SLICE_LIT(""), ""));
    cr_assert_not(cut_slice_ieq(CUT_SLICE_LIT("HEA"), "head"));
    cr_assert_not(cut_slice_ieq(CUT_SLICE_LIT("HEADS"), "head"));
    cr_assert_not(cut_slice_ieq(CUT_SLICE_LIT("HEAT"), "head"));
    cr_assert_not(cut_slice_ieq(CUT_SLICE_LIT("["), "{"), "only letters fold");
}

Test(h1_parse_util, list_has_token)
{
    cr_assert(h1_list_has_token(CUT_SLICE_LIT("a, B ,c"), "b"));
    cr_assert(h1_list_has_token(CUT_SLICE_LIT("Keep-Alive"), "keep-alive"));
    cr_assert(h1_list_has_token(CUT_SLICE_LIT(" , ,close,"), "close"));
    cr_assert(h1_list_has_token(CUT_SLICE_LIT("gzip;q=0.5, trailers ;q=1"), "trailers"));
    cr_assert_not(h1_list_has_token(CUT_SLICE_LIT("closed, xclose"), "close"));
    cr_assert_not(h1_list_has_token(CUT_SLICE_LIT(""), "close"));
    cr_assert_not(h1_list_has_token(CUT_SLICE_LIT("clo se"), "close"));
}

/* ---- h1_request_target ------------------------------------------------------------------------ */

/* A parsed request with only what h1_request_target reads. */
static struct h1_request t_target_req(const char *method, const char *target, const char *host)
{
    struct h1_request r = {0};
    r.method = (struct cut_slice){method, strlen(method)};
    r.target = (struct cut_slice){target, strlen(target)};
    r.host = (struct cut_slice){host, strlen(host)};
    return r;
}

Test(h1_request_target, origin_form_keeps_host)
{
    struct h1_request r = t_target_req("GET", "/a/b?c=d", "example.com");
    struct cut_slice path = {0}, auth = {0};
    cr_assert_eq(h1_request_target(&r, &path, &auth), 0);
    t_slice_is(path, "/a/b?c=d");
    t_slice_is(auth, "example.com");
    cr_assert_eq(path.p, r.target.p, "zero-copy: the path points into the target");
}

Test(h1_request_target, asterisk_only_for_options)
{
    struct h1_request r = t_target_req("OPTIONS", "*", "h");
    struct cut_slice path = {0}, auth = {0};
    cr_assert_eq(h1_request_target(&r, &path, &auth), 0);
    t_slice_is(path, "*");
    t_slice_is(auth, "h");
    r = t_target_req("GET", "*", "h");
    cr_assert_eq(h1_request_target(&r, &path, &auth), 400);
}

Test(h1_request_target, absolute_form_replaces_host)
{
    struct h1_request r = t_target_req("GET", "http://upstream.test:8080/x?y", "other.test");
    struct cut_slice path = {0}, auth = {0};
    cr_assert_eq(h1_request_target(&r, &path, &auth), 0);
    t_slice_is(auth, "upstream.test:8080");
    t_slice_is(path, "/x?y");

    r = t_target_req("GET", "HTTPS://h.test", "");
    cr_assert_eq(h1_request_target(&r, &path, &auth), 0);
    t_slice_is(auth, "h.test");
    t_slice_is(path, "/");
}

Test(h1_request_target, rejected_forms)
{
    static const struct {
        const char *method, *target;
        int status;
    } cases[] = {
        {"CONNECT", "h.test:443", 501}, /* authority-form: CONNECT is not supported */
        {"GET", "h.test:443", 400},
        {"GET", "ftp://h.test/x", 400},  /* only http and https */
        {"GET", "http:///x", 400},       /* empty authority */
        {"GET", "http://h.test?q", 400}, /* a query without a path */
        {"GET", "http:/x", 400},
        {"GET", "x", 400},
        {"GET", "", 400},
    };
    for (size_t i = 0; i < CUT_ARRAY_LEN(cases); i++) {
        struct h1_request r = t_target_req(cases[i].method, cases[i].target, "h");
        struct cut_slice path = {0}, auth = {0};
        cr_expect_eq(h1_request_target(&r, &path, &auth), cases[i].status, "%s %s",
                     cases[i].method, cases[i].target);
    }
}

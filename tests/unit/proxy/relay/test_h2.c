/* The pure part of the HTTP/2 server side: preface detection, the request head collector (what
 * stream_start() receives, and what the upstream HTTP/1.1 head then looks like), and the
 * connection-specific field rule. */
#include <criterion/criterion.h>
#include <string.h>

#include "proxy/relay/h2.h"
#include "proxy/http/http.h"

static void add(struct h2_head *h, const char *n, const char *v)
{
    cr_assert_eq(h2_head_add(h, n, strlen(n), v, strlen(v)), 0, "add %s", n);
}

static int slice_is(struct cut_slice s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

static void basic(struct h2_head *h, const char *method, const char *path)
{
    h2_head_init(h, 32768, 100);
    add(h, ":method", method);
    add(h, ":scheme", "http");
    add(h, ":authority", "app.test");
    add(h, ":path", path);
}

Test(h2, preface)
{
    cr_assert_eq(h2_preface_match(H2_PREFACE, H2_PREFACE_LEN), 1);
    cr_assert_eq(h2_preface_match(H2_PREFACE "\0\0\0\4", H2_PREFACE_LEN + 4), 1);
    cr_assert_eq(h2_preface_match("PRI * HT", 8), 0);
    cr_assert_eq(h2_preface_match("P", 1), 0);
    cr_assert_eq(h2_preface_match("GET / HTTP/1.1\r\n", 16), -1);
    cr_assert_eq(h2_preface_match("PRI * HTTP/2.0\r\n\r\n", 18), 0);
    cr_assert_eq(h2_preface_match("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 24), -1);
}

Test(h2, conn_specific)
{
    cr_assert(h2_conn_specific(CUT_SLICE_LIT("connection")));
    cr_assert(h2_conn_specific(CUT_SLICE_LIT("Keep-Alive")));
    cr_assert(h2_conn_specific(CUT_SLICE_LIT("proxy-connection")));
    cr_assert(h2_conn_specific(CUT_SLICE_LIT("Transfer-Encoding")));
    cr_assert(h2_conn_specific(CUT_SLICE_LIT("upgrade")));
    cr_assert_not(h2_conn_specific(CUT_SLICE_LIT("te")));
    cr_assert_not(h2_conn_specific(CUT_SLICE_LIT("content-length")));
    cr_assert_not(h2_conn_specific(CUT_SLICE_LIT("connectionx")));
}

Test(h2, get_request)
{
    struct h2_head h;
    basic(&h, "GET", "/a?b=1");
    add(&h, "user-agent", "t");
    struct http_req req;
    cr_assert_eq(h2_head_request(&h, 1, &req), 0);
    cr_assert(slice_is(req.method, "GET"));
    cr_assert(slice_is(req.path, "/a?b=1"));
    cr_assert(slice_is(req.authority, "app.test"));
    cr_assert_eq(req.nfields, 1);
    cr_assert(slice_is(req.fields[0].name, "user-agent"));
    cr_assert_eq(req.framing, HTTP_BODY_NONE);
    cr_assert_eq(req.flags & HTTP_RF_HEAD, 0);
    h2_head_dispose(&h);
}

Test(h2, framing)
{
    struct h2_head h;
    struct http_req req;
    basic(&h, "POST", "/up");
    add(&h, "content-length", "1048576");
    cr_assert_eq(h2_head_request(&h, 0, &req), 0);
    cr_assert_eq(req.framing, HTTP_BODY_LENGTH);
    cr_assert_eq(req.content_length, 1048576);
    cr_assert_eq(req.fields[0].id, H1_HDR_CONTENT_LENGTH);
    h2_head_dispose(&h);

    basic(&h, "POST", "/up");
    cr_assert_eq(h2_head_request(&h, 0, &req), 0);
    cr_assert_eq(req.framing, HTTP_BODY_STREAM); /* a body without a length: chunked upstream */
    h2_head_dispose(&h);

    basic(&h, "HEAD", "/");
    cr_assert_eq(h2_head_request(&h, 1, &req), 0);
    cr_assert_eq(req.framing, HTTP_BODY_NONE);
    cr_assert(req.flags & HTTP_RF_HEAD);
    h2_head_dispose(&h);

    basic(&h, "POST", "/up");
    add(&h, "content-length", "12a");
    cr_assert_eq(h2_head_request(&h, 0, &req), 400);
    h2_head_dispose(&h);
}

Test(h2, authority_from_host)
{
    struct h2_head h;
    struct http_req req;
    h2_head_init(&h, 32768, 100);
    add(&h, ":method", "GET");
    add(&h, ":scheme", "http");
    add(&h, ":path", "/");
    add(&h, "host", "other.test");
    cr_assert_eq(h2_head_request(&h, 1, &req), 0);
    cr_assert(slice_is(req.authority, "other.test"));
    cr_assert_eq(req.fields[0].id, H1_HDR_HOST); /* replaced by Host: authority upstream */
    h2_head_dispose(&h);
}

Test(h2, cookies_joined_and_forwarded_once)
{
    struct h2_head h;
    struct http_req req;
    basic(&h, "GET", "/");
    add(&h, "cookie", "a=1");
    add(&h, "x-a", "1");
    add(&h, "cookie", "b=2");
    add(&h, "cookie", "c=3");
    cr_assert_eq(h2_head_request(&h, 1, &req), 0);
    cr_assert_eq(req.nfields, 2);
    int i = http_find(req.fields, req.nfields, "cookie", 6);
    cr_assert_geq(i, 0);
    cr_assert(slice_is(req.fields[i].value, "a=1; b=2; c=3"));
    struct http_forward fwd = {.peer_addr = CUT_SLICE_LIT("127.0.0.1"),
                               .proto = CUT_SLICE_LIT("http"),
                               .request_id = CUT_SLICE_LIT("rid")};
    char buf[2048];
    int n = http_write_h1_request(buf, sizeof buf - 1, &req, &fwd);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(strstr(buf, "GET / HTTP/1.1\r\nHost: app.test\r\n") == buf, "%s", buf);
    cr_assert(strstr(buf, "cookie: a=1; b=2; c=3\r\n"), "%s", buf);
    h2_head_dispose(&h);
}

Test(h2, te_and_connection_fields_never_forwarded)
{
    struct h2_head h;
    struct http_req req;
    basic(&h, "GET", "/");
    add(&h, "te", "trailers");
    add(&h, "keep-alive", "5"); /* nghttp2 refuses it first; never forwarded regardless */
    add(&h, "x-ok", "1");
    cr_assert_eq(h2_head_request(&h, 1, &req), 0);
    struct http_forward fwd = {.peer_addr = CUT_SLICE_LIT("127.0.0.1"),
                               .proto = CUT_SLICE_LIT("http"),
                               .request_id = CUT_SLICE_LIT("rid")};
    char buf[2048];
    int n = http_write_h1_request(buf, sizeof buf - 1, &req, &fwd);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_null(strstr(buf, "te:"), "%s", buf);
    cr_assert_null(strstr(buf, "keep-alive"), "%s", buf);
    cr_assert(strstr(buf, "x-ok: 1\r\n"), "%s", buf);
    h2_head_dispose(&h);

    basic(&h, "GET", "/");
    add(&h, "te", "gzip");
    cr_assert_eq(h2_head_request(&h, 1, &req), 400);
    h2_head_dispose(&h);
}

Test(h2, refusals)
{
    struct h2_head h;
    struct http_req req;
    h2_head_init(&h, 32768, 100);
    add(&h, ":method", "CONNECT");
    add(&h, ":authority", "x.test:443");
    cr_assert_eq(h2_head_request(&h, 0, &req), 501);
    h2_head_dispose(&h);

    basic(&h, "GET", "/");
    add(&h, ":protocol", "websocket");
    cr_assert_eq(h2_head_request(&h, 0, &req), 501);
    h2_head_dispose(&h);

    basic(&h, "GET", "nope");
    cr_assert_eq(h2_head_request(&h, 1, &req), 400);
    h2_head_dispose(&h);

    basic(&h, "OPTIONS", "*");
    cr_assert_eq(h2_head_request(&h, 1, &req), 0);
    h2_head_dispose(&h);

    h2_head_init(&h, 32768, 100);
    add(&h, ":method", "GET");
    add(&h, ":path", "/");
    cr_assert_eq(h2_head_request(&h, 1, &req), 400); /* no :scheme */
    h2_head_dispose(&h);

    basic(&h, "GET", "/");
    add(&h, "x", "1");
    add(&h, ":path", "/again");
    cr_assert_eq(h2_head_request(&h, 1, &req), 400); /* pseudo after regular */
    h2_head_dispose(&h);
}

Test(h2, limits)
{
    struct h2_head h;
    struct http_req req;
    h2_head_init(&h, 200, 100);
    add(&h, ":method", "GET");
    add(&h, ":scheme", "http");
    add(&h, ":path", "/");
    char big[200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(h2_head_add(&h, "x-big", 5, big, strlen(big)), CUT_ELIMIT);
    cr_assert_eq(h2_head_add(&h, "x-small", 7, "1", 1), CUT_ELIMIT); /* stays over */
    cr_assert_eq(h2_head_request(&h, 1, &req), 431);
    h2_head_dispose(&h);

    h2_head_init(&h, 32768, 5);
    add(&h, ":method", "GET");
    add(&h, ":scheme", "http");
    add(&h, ":path", "/");
    add(&h, "a", "1");
    add(&h, "b", "1");
    cr_assert_eq(h2_head_add(&h, "c", 1, "1", 1), CUT_ELIMIT);
    cr_assert_eq(h2_head_request(&h, 1, &req), 431);
    h2_head_dispose(&h);
}

Test(h2, no_authority_is_empty_not_null)
{
    struct h2_head h;
    struct http_req req;
    h2_head_init(&h, 32768, 100);
    add(&h, ":method", "GET");
    add(&h, ":scheme", "http");
    add(&h, ":path", "/");
    cr_assert_eq(h2_head_request(&h, 1, &req), 0);
    cr_assert_eq(req.authority.n, 0);
    cr_assert_not_null(req.authority.p);
    h2_head_dispose(&h);
}

/* ---- the upstream side: response heads and trailers from an HTTP/2 upstream ---------------- */

static int response(const char *const *kv, size_t n, int end_stream, int head_req,
                    struct h2_head *h, struct http_resp *resp)
{
    h2_head_init(h, 32768, 100);
    for (size_t i = 0; i + 1 < n; i += 2)
        add(h, kv[i], kv[i + 1]);
    return h2_head_response(h, end_stream, head_req, resp);
}

Test(h2, response_framing)
{
    struct h2_head h;
    struct http_resp r;
    const char *sized[] = {":status", "200", "content-length", "12", "x-a", "b"};
    cr_assert_eq(response(sized, 6, 0, 0, &h, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.framing, HTTP_BODY_LENGTH);
    cr_assert_eq(r.content_length, 12);
    cr_assert_eq(r.nfields, 2);
    cr_assert_eq(r.fields[0].id, H1_HDR_CONTENT_LENGTH);
    cr_assert(slice_is(r.fields[1].value, "b"));
    h2_head_dispose(&h);

    const char *streamed[] = {":status", "200", "content-type", "application/grpc"};
    cr_assert_eq(response(streamed, 4, 0, 0, &h, &r), 0);
    cr_assert_eq(r.framing, HTTP_BODY_STREAM, "no content-length: a streamed body");
    h2_head_dispose(&h);

    cr_assert_eq(response(streamed, 4, 1, 0, &h, &r), 0);
    cr_assert_eq(r.framing, HTTP_BODY_NONE, "END_STREAM on HEADERS: no body");
    h2_head_dispose(&h);

    cr_assert_eq(response(sized, 6, 0, 1, &h, &r), 0);
    cr_assert_eq(r.framing, HTTP_BODY_NONE, "a HEAD response has no body");
    cr_assert_eq(r.content_length, 12);
    h2_head_dispose(&h);

    const char *interim[] = {":status", "103", "link", "</a.css>"};
    cr_assert_eq(response(interim, 4, 0, 0, &h, &r), 0);
    cr_assert_eq(r.status, 103);
    cr_assert_eq(r.framing, HTTP_BODY_NONE);
    h2_head_dispose(&h);
}

Test(h2, response_connection_fields_are_hop_by_hop)
{
    struct h2_head h;
    struct http_resp r;
    const char *kv[] = {":status", "200", "connection", "close", "te", "trailers", "x-ok", "1"};
    cr_assert_eq(response(kv, 8, 1, 0, &h, &r), 0);
    cr_assert_eq(r.nfields, 3);
    cr_assert(r.fields[0].flags & H1_HF_HOP);
    cr_assert(r.fields[1].flags & H1_HF_HOP);
    cr_assert_eq(r.fields[2].flags & H1_HF_HOP, 0);
    h2_head_dispose(&h);
}

Test(h2, response_refusals)
{
    struct h2_head h;
    struct http_resp r;
    const char *none[] = {"x-a", "b"};
    cr_assert_eq(response(none, 2, 1, 0, &h, &r), 502, "no :status");
    h2_head_dispose(&h);
    const char *bad[] = {":status", "20x"};
    cr_assert_eq(response(bad, 2, 1, 0, &h, &r), 502, "non-numeric :status");
    h2_head_dispose(&h);
    const char *low[] = {":status", "099"};
    cr_assert_eq(response(low, 2, 1, 0, &h, &r), 502, "status below 100");
    h2_head_dispose(&h);
    const char *late[] = {"x-a", "b", ":status", "200"};
    cr_assert_eq(response(late, 4, 1, 0, &h, &r), 502, "pseudo-header after a field");
    h2_head_dispose(&h);
    const char *other[] = {":status", "200", ":path", "/"};
    cr_assert_eq(response(other, 4, 1, 0, &h, &r), 502, "a request pseudo-header");
    h2_head_dispose(&h);
    const char *cl[] = {":status", "200", "content-length", "1", "content-length", "2"};
    cr_assert_eq(response(cl, 6, 0, 0, &h, &r), 502, "conflicting content-length");
    h2_head_dispose(&h);
}

Test(h2, trailers_fields)
{
    struct h2_head h;
    h2_head_init(&h, 32768, 100);
    add(&h, "grpc-status", "0");
    add(&h, "grpc-message", "OK");
    unsigned n = 9;
    cr_assert_eq(h2_head_fields(&h, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert(slice_is(h.fields[0].name, "grpc-status"));
    cr_assert(slice_is(h.fields[1].value, "OK"));
    h2_head_dispose(&h);

    h2_head_init(&h, 32768, 100);
    add(&h, ":status", "200");
    cr_assert_eq(h2_head_fields(&h, &n), CUT_EPROTO, "a pseudo-header in trailers");
    h2_head_dispose(&h);
}

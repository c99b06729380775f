/* test_fields.c - header fields and the field-by-field head collector (proxy/http/fields.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "proxy/http/fields.h"
#include "proxy/http/http.h"

static void add(struct fields_head *h, const char *n, const char *v)
{
    cr_assert_eq(fields_head_add(h, n, strlen(n), v, strlen(v)), 0, "add %s", n);
}

static int slice_is(struct cut_slice s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

static void basic(struct fields_head *h, const char *method, const char *path)
{
    fields_head_init(h, 32768, 100);
    add(h, ":method", method);
    add(h, ":scheme", "http");
    add(h, ":authority", "app.test");
    add(h, ":path", path);
}

Test(fields, conn_specific)
{
    cr_assert(fields_conn_specific(CUT_SLICE_LIT("connection")));
    cr_assert(fields_conn_specific(CUT_SLICE_LIT("Keep-Alive")));
    cr_assert(fields_conn_specific(CUT_SLICE_LIT("proxy-connection")));
    cr_assert(fields_conn_specific(CUT_SLICE_LIT("Transfer-Encoding")));
    cr_assert(fields_conn_specific(CUT_SLICE_LIT("upgrade")));
    cr_assert_not(fields_conn_specific(CUT_SLICE_LIT("te")));
    cr_assert_not(fields_conn_specific(CUT_SLICE_LIT("content-length")));
    cr_assert_not(fields_conn_specific(CUT_SLICE_LIT("connectionx")));
}

Test(fields, get_request)
{
    struct fields_head h;
    basic(&h, "GET", "/a?b=1");
    add(&h, "user-agent", "t");
    struct http_req req;
    cr_assert_eq(fields_head_request(&h, 1, &req), 0);
    cr_assert(slice_is(req.method, "GET"));
    cr_assert(slice_is(req.path, "/a?b=1"));
    cr_assert(slice_is(req.authority, "app.test"));
    cr_assert_eq(req.nfields, 1);
    cr_assert(slice_is(req.fields[0].name, "user-agent"));
    cr_assert_eq(req.framing, HTTP_BODY_NONE);
    cr_assert_eq(req.flags & HTTP_RF_HEAD, 0);
    fields_head_dispose(&h);
}

Test(fields, framing)
{
    struct fields_head h;
    struct http_req req;
    basic(&h, "POST", "/up");
    add(&h, "content-length", "1048576");
    cr_assert_eq(fields_head_request(&h, 0, &req), 0);
    cr_assert_eq(req.framing, HTTP_BODY_LENGTH);
    cr_assert_eq(req.content_length, 1048576);
    cr_assert_eq(req.fields[0].id, H1_HDR_CONTENT_LENGTH);
    fields_head_dispose(&h);

    basic(&h, "POST", "/up");
    cr_assert_eq(fields_head_request(&h, 0, &req), 0);
    cr_assert_eq(req.framing, HTTP_BODY_STREAM); /* a body without a length: chunked upstream */
    fields_head_dispose(&h);

    basic(&h, "HEAD", "/");
    cr_assert_eq(fields_head_request(&h, 1, &req), 0);
    cr_assert_eq(req.framing, HTTP_BODY_NONE);
    cr_assert(req.flags & HTTP_RF_HEAD);
    fields_head_dispose(&h);

    basic(&h, "POST", "/up");
    add(&h, "content-length", "12a");
    cr_assert_eq(fields_head_request(&h, 0, &req), 400);
    fields_head_dispose(&h);
}

Test(fields, authority_from_host)
{
    struct fields_head h;
    struct http_req req;
    fields_head_init(&h, 32768, 100);
    add(&h, ":method", "GET");
    add(&h, ":scheme", "http");
    add(&h, ":path", "/");
    add(&h, "host", "other.test");
    cr_assert_eq(fields_head_request(&h, 1, &req), 0);
    cr_assert(slice_is(req.authority, "other.test"));
    cr_assert_eq(req.fields[0].id, H1_HDR_HOST); /* replaced by Host: authority upstream */
    fields_head_dispose(&h);
}

Test(fields, cookies_joined_and_forwarded_once)
{
    struct fields_head h;
    struct http_req req;
    basic(&h, "GET", "/");
    add(&h, "cookie", "a=1");
    add(&h, "x-a", "1");
    add(&h, "cookie", "b=2");
    add(&h, "cookie", "c=3");
    cr_assert_eq(fields_head_request(&h, 1, &req), 0);
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
    fields_head_dispose(&h);
}

Test(fields, te_and_connection_fields_never_forwarded)
{
    struct fields_head h;
    struct http_req req;
    basic(&h, "GET", "/");
    add(&h, "te", "trailers");
    add(&h, "keep-alive", "5"); /* nghttp2 refuses it first; never forwarded regardless */
    add(&h, "x-ok", "1");
    cr_assert_eq(fields_head_request(&h, 1, &req), 0);
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
    fields_head_dispose(&h);

    basic(&h, "GET", "/");
    add(&h, "te", "gzip");
    cr_assert_eq(fields_head_request(&h, 1, &req), 400);
    fields_head_dispose(&h);
}

Test(fields, refusals)
{
    struct fields_head h;
    struct http_req req;
    fields_head_init(&h, 32768, 100);
    add(&h, ":method", "CONNECT");
    add(&h, ":authority", "x.test:443");
    cr_assert_eq(fields_head_request(&h, 0, &req), 501);
    fields_head_dispose(&h);

    basic(&h, "GET", "/");
    add(&h, ":protocol", "websocket");
    cr_assert_eq(fields_head_request(&h, 0, &req), 501);
    fields_head_dispose(&h);

    basic(&h, "GET", "nope");
    cr_assert_eq(fields_head_request(&h, 1, &req), 400);
    fields_head_dispose(&h);

    basic(&h, "OPTIONS", "*");
    cr_assert_eq(fields_head_request(&h, 1, &req), 0);
    fields_head_dispose(&h);

    fields_head_init(&h, 32768, 100);
    add(&h, ":method", "GET");
    add(&h, ":path", "/");
    cr_assert_eq(fields_head_request(&h, 1, &req), 400); /* no :scheme */
    fields_head_dispose(&h);

    basic(&h, "GET", "/");
    add(&h, "x", "1");
    add(&h, ":path", "/again");
    cr_assert_eq(fields_head_request(&h, 1, &req), 400); /* pseudo after regular */
    fields_head_dispose(&h);
}

Test(fields, limits)
{
    struct fields_head h;
    struct http_req req;
    fields_head_init(&h, 200, 100);
    add(&h, ":method", "GET");
    add(&h, ":scheme", "http");
    add(&h, ":path", "/");
    char big[200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(fields_head_add(&h, "x-big", 5, big, strlen(big)), CUT_ELIMIT);
    cr_assert_eq(fields_head_add(&h, "x-small", 7, "1", 1), CUT_ELIMIT); /* stays over */
    cr_assert_eq(fields_head_request(&h, 1, &req), 431);
    fields_head_dispose(&h);

    fields_head_init(&h, 32768, 5);
    add(&h, ":method", "GET");
    add(&h, ":scheme", "http");
    add(&h, ":path", "/");
    add(&h, "a", "1");
    add(&h, "b", "1");
    cr_assert_eq(fields_head_add(&h, "c", 1, "1", 1), CUT_ELIMIT);
    cr_assert_eq(fields_head_request(&h, 1, &req), 431);
    fields_head_dispose(&h);
}

Test(fields, no_authority_is_empty_not_null)
{
    struct fields_head h;
    struct http_req req;
    fields_head_init(&h, 32768, 100);
    add(&h, ":method", "GET");
    add(&h, ":scheme", "http");
    add(&h, ":path", "/");
    cr_assert_eq(fields_head_request(&h, 1, &req), 0);
    cr_assert_eq(req.authority.n, 0);
    cr_assert_not_null(req.authority.p);
    fields_head_dispose(&h);
}

/* ---- the upstream side: response heads and trailers from an HTTP/2 upstream ---------------- */

static int response(const char *const *kv, size_t n, int end_stream, int head_req,
                    struct fields_head *h, struct http_resp *resp)
{
    fields_head_init(h, 32768, 100);
    for (size_t i = 0; i + 1 < n; i += 2)
        add(h, kv[i], kv[i + 1]);
    return fields_head_response(h, end_stream, head_req, resp);
}

Test(fields, response_framing)
{
    struct fields_head h;
    struct http_resp r;
    const char *sized[] = {":status", "200", "content-length", "12", "x-a", "b"};
    cr_assert_eq(response(sized, 6, 0, 0, &h, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.framing, HTTP_BODY_LENGTH);
    cr_assert_eq(r.content_length, 12);
    cr_assert_eq(r.nfields, 2);
    cr_assert_eq(r.fields[0].id, H1_HDR_CONTENT_LENGTH);
    cr_assert(slice_is(r.fields[1].value, "b"));
    fields_head_dispose(&h);

    const char *streamed[] = {":status", "200", "content-type", "application/grpc"};
    cr_assert_eq(response(streamed, 4, 0, 0, &h, &r), 0);
    cr_assert_eq(r.framing, HTTP_BODY_STREAM, "no content-length: a streamed body");
    fields_head_dispose(&h);

    cr_assert_eq(response(streamed, 4, 1, 0, &h, &r), 0);
    cr_assert_eq(r.framing, HTTP_BODY_NONE, "END_STREAM on HEADERS: no body");
    fields_head_dispose(&h);

    cr_assert_eq(response(sized, 6, 0, 1, &h, &r), 0);
    cr_assert_eq(r.framing, HTTP_BODY_NONE, "a HEAD response has no body");
    cr_assert_eq(r.content_length, 12);
    fields_head_dispose(&h);

    const char *interim[] = {":status", "103", "link", "</a.css>"};
    cr_assert_eq(response(interim, 4, 0, 0, &h, &r), 0);
    cr_assert_eq(r.status, 103);
    cr_assert_eq(r.framing, HTTP_BODY_NONE);
    fields_head_dispose(&h);
}

Test(fields, response_connection_fields_are_hop_by_hop)
{
    struct fields_head h;
    struct http_resp r;
    const char *kv[] = {":status", "200", "connection", "close", "te", "trailers", "x-ok", "1"};
    cr_assert_eq(response(kv, 8, 1, 0, &h, &r), 0);
    cr_assert_eq(r.nfields, 3);
    cr_assert(r.fields[0].flags & H1_HF_HOP);
    cr_assert(r.fields[1].flags & H1_HF_HOP);
    cr_assert_eq(r.fields[2].flags & H1_HF_HOP, 0);
    fields_head_dispose(&h);
}

Test(fields, response_refusals)
{
    struct fields_head h;
    struct http_resp r;
    const char *none[] = {"x-a", "b"};
    cr_assert_eq(response(none, 2, 1, 0, &h, &r), 502, "no :status");
    fields_head_dispose(&h);
    const char *bad[] = {":status", "20x"};
    cr_assert_eq(response(bad, 2, 1, 0, &h, &r), 502, "non-numeric :status");
    fields_head_dispose(&h);
    const char *low[] = {":status", "099"};
    cr_assert_eq(response(low, 2, 1, 0, &h, &r), 502, "status below 100");
    fields_head_dispose(&h);
    const char *late[] = {"x-a", "b", ":status", "200"};
    cr_assert_eq(response(late, 4, 1, 0, &h, &r), 502, "pseudo-header after a field");
    fields_head_dispose(&h);
    const char *other[] = {":status", "200", ":path", "/"};
    cr_assert_eq(response(other, 4, 1, 0, &h, &r), 502, "a request pseudo-header");
    fields_head_dispose(&h);
    const char *cl[] = {":status", "200", "content-length", "1", "content-length", "2"};
    cr_assert_eq(response(cl, 6, 0, 0, &h, &r), 502, "conflicting content-length");
    fields_head_dispose(&h);
}

Test(fields, trailers_fields)
{
    struct fields_head h;
    fields_head_init(&h, 32768, 100);
    add(&h, "grpc-status", "0");
    add(&h, "grpc-message", "OK");
    unsigned n = 9;
    cr_assert_eq(fields_head_trailers(&h, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert(slice_is(h.fields[0].name, "grpc-status"));
    cr_assert(slice_is(h.fields[1].value, "OK"));
    fields_head_dispose(&h);

    fields_head_init(&h, 32768, 100);
    add(&h, ":status", "200");
    cr_assert_eq(fields_head_trailers(&h, &n), CUT_EPROTO, "a pseudo-header in trailers");
    fields_head_dispose(&h);
}

Test(fields, collector_copies_and_counts_the_list_size)
{
    struct fields_head h;
    fields_head_init(&h, 100, 10);
    char name[8] = "x-a", value[8] = "1";
    cr_assert_eq(fields_head_add(&h, name, 3, value, 1), 0);
    name[2] = 'b'; /* the caller's buffer moves on: the copy must not */
    value[0] = '2';
    cr_assert_eq(h.list_size, 3 + 1 + 32);
    unsigned n = 0;
    cr_assert_eq(fields_head_trailers(&h, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert(slice_is(h.fields[0].name, "x-a"));
    cr_assert(slice_is(h.fields[0].value, "1"));
    /* 36 + 36 = 72 fits in 100; a third (108) does not, and nothing more is stored after. */
    cr_assert_eq(fields_head_add(&h, "x-b", 3, "2", 1), 0);
    cr_assert_eq(fields_head_add(&h, "x-c", 3, "3", 1), CUT_ELIMIT);
    cr_assert_eq(fields_head_add(&h, "x", 1, "", 0), CUT_ELIMIT);
    cr_assert_eq(h.n, 2);
    cr_assert_eq(fields_head_trailers(&h, &n), CUT_ELIMIT);
    fields_head_dispose(&h);
}

Test(fields, collector_field_count_limit)
{
    struct fields_head h;
    fields_head_init(&h, 1 << 20, 2);
    cr_assert_eq(fields_head_add(&h, "a", 1, "1", 1), 0);
    cr_assert_eq(fields_head_add(&h, "b", 1, "2", 1), 0);
    cr_assert_eq(fields_head_add(&h, "c", 1, "3", 1), CUT_ELIMIT);
    struct http_resp resp;
    cr_assert_eq(fields_head_response(&h, 1, 0, &resp), 502);
    fields_head_dispose(&h);
}

Test(fields, trailers_refuse_pseudo_headers)
{
    struct fields_head h;
    fields_head_init(&h, 4096, 10);
    cr_assert_eq(fields_head_add(&h, "grpc-status", 11, "0", 1), 0);
    cr_assert_eq(fields_head_add(&h, ":status", 7, "200", 3), 0);
    unsigned n = 7;
    cr_assert_eq(fields_head_trailers(&h, &n), CUT_EPROTO);
    fields_head_dispose(&h);
}

Test(fields, value_rules)
{
    cr_assert(fields_value_ok(CUT_SLICE_LIT("a b\tc \x80\xff")));
    cr_assert(fields_value_ok(CUT_SLICE_LIT("")));
    cr_assert_not(fields_value_ok(CUT_SLICE_LIT("a\x01b")));
    cr_assert_not(fields_value_ok(CUT_SLICE_LIT("a\rb")));
    cr_assert_not(fields_value_ok(CUT_SLICE_LIT("a\x7f")));
    cr_assert(slice_is(fields_value_trim(CUT_SLICE_LIT(" \t a b\t ")), "a b"));
    cr_assert_eq(fields_value_trim(CUT_SLICE_LIT(" \t ")).n, 0);
    cr_assert(slice_is(fields_value_trim(CUT_SLICE_LIT("x")), "x"));
}

Test(fields, value_ok_judges_every_byte_at_every_position)
{
    /* the 8-byte fast path must agree with the rule byte by byte: CTLs but HTAB, and DEL, are
     * refused wherever they sit (word or tail); obs-text (>= 0x80) is allowed */
    char v[24];
    for (int b = 0; b < 256; b++) {
        int want = !((b < 0x20 && b != '\t') || b == 0x7f);
        for (size_t pos = 0; pos < sizeof v; pos++) {
            memset(v, 'a', sizeof v);
            v[pos] = (char)b;
            cr_assert_eq(fields_value_ok((struct cut_slice){v, sizeof v}), want,
                         "byte 0x%02x at %zu", b, pos);
        }
    }
    cr_assert_eq(fields_value_ok((struct cut_slice){"", 0}), 1);
}

/* Header rules and HTTP/1.1 head serialisation. */
#include <criterion/criterion.h>
#include <string.h>

#include "proxy/http/http.h"

#define F(n, v) {{n, sizeof(n) - 1}, {v, sizeof(v) - 1}, H1_HDR_OTHER, 0}

static struct http_req base_req(struct http_field *f, unsigned n)
{
    return (struct http_req){.method = CUT_SLICE_LIT("GET"),
                             .path = CUT_SLICE_LIT("/a?b=1"),
                             .authority = CUT_SLICE_LIT("api.example.com"),
                             .fields = f,
                             .nfields = n,
                             .framing = HTTP_BODY_NONE,
                             .version_minor = 1};
}

static struct http_forward fwd(int trusted)
{
    return (struct http_forward){.peer_addr = CUT_SLICE_LIT("10.0.0.9"),
                                 .peer_trusted = trusted,
                                 .proto = CUT_SLICE_LIT("http"),
                                 .request_id = CUT_SLICE_LIT("abc"),
                                 .strip = CUT_SLICE_LIT("x-cutover-pool")};
}

Test(http, request_forwarding_fields_untrusted_peer)
{
    struct http_field f[] = {F("Host", "api.example.com"), F("X-Forwarded-For", "1.2.3.4"),
                             F("X-Keep", "yes"), F("X-Forwarded-For", "5.6.7.8"),
                             F("X-Forwarded-Proto", "https"), F("X-Cutover-Pool", "green"),
                             F("X-Request-Id", "old")};
    struct http_req req = base_req(f, 7);
    struct http_forward fw = fwd(0);
    char buf[1024];
    int n = http_write_h1_request(buf, sizeof buf, &req, &fw);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(strncmp(buf, "GET /a?b=1 HTTP/1.1\r\n", 21) == 0);
    cr_assert_not_null(strstr(buf, "\r\nX-Keep: yes\r\n"));
    cr_assert_not_null(strstr(buf, "\r\nX-Forwarded-For: 1.2.3.4, 5.6.7.8, 10.0.0.9\r\n"));
    cr_assert_not_null(strstr(buf, "\r\nX-Forwarded-Proto: http\r\n"), "untrusted: overwritten");
    cr_assert_null(strstr(buf, "https"));
    cr_assert_not_null(strstr(buf, "\r\nX-Forwarded-Host: api.example.com\r\n"));
    cr_assert_not_null(strstr(buf, "\r\nX-Request-Id: abc\r\n"));
    cr_assert_null(strstr(buf, "old"));
    cr_assert_null(strstr(buf, "X-Cutover-Pool"), "the override header is never forwarded");
    cr_assert(n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
}

Test(http, request_trusted_peer_keeps_proto_and_host)
{
    struct http_field f[] = {F("X-Forwarded-Proto", "https"), F("X-Forwarded-Host", "public.example")};
    struct http_req req = base_req(f, 2);
    struct http_forward fw = fwd(1);
    char buf[1024];
    int n = http_write_h1_request(buf, sizeof buf, &req, &fw);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "\r\nX-Forwarded-Proto: https\r\n"));
    cr_assert_not_null(strstr(buf, "\r\nX-Forwarded-Host: public.example\r\n"));
    cr_assert_null(strstr(buf, "X-Forwarded-Host: api.example.com"));
    cr_assert_not_null(strstr(buf, "\r\nX-Forwarded-For: 10.0.0.9\r\n"));
}

Test(http, request_hop_fields_dropped_and_framing_written)
{
    struct http_field f[] = {F("Connection", "keep-alive, x-secret"), F("X-Secret", "1"),
                             F("Transfer-Encoding", "chunked"), F("Content-Length", "5"),
                             F("Accept", "*/*")};
    f[0].flags = f[1].flags = f[2].flags = H1_HF_HOP;
    f[3].id = H1_HDR_CONTENT_LENGTH;
    struct http_req req = base_req(f, 5);
    req.framing = HTTP_BODY_STREAM;
    struct http_forward fw = fwd(0);
    char buf[1024];
    int n = http_write_h1_request(buf, sizeof buf, &req, &fw);
    buf[n] = '\0';
    cr_assert_null(strstr(buf, "Connection"));
    cr_assert_null(strstr(buf, "X-Secret"));
    cr_assert_null(strstr(buf, "Content-Length"));
    cr_assert_not_null(strstr(buf, "\r\nTransfer-Encoding: chunked\r\n"));
    cr_assert_not_null(strstr(buf, "\r\nAccept: */*\r\n"));

    req.framing = HTTP_BODY_LENGTH;
    req.content_length = 12345;
    n = http_write_h1_request(buf, sizeof buf, &req, &fw);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "\r\nContent-Length: 12345\r\n"));
    cr_assert_null(strstr(buf, "Transfer-Encoding"));
}

Test(http, request_upgrade_written)
{
    struct http_field f[] = {F("Upgrade", "websocket")};
    f[0].flags = H1_HF_HOP;
    struct http_req req = base_req(f, 1);
    req.flags = HTTP_RF_UPGRADE;
    req.upgrade = CUT_SLICE_LIT("websocket");
    struct http_forward fw = fwd(0);
    char buf[1024];
    int n = http_write_h1_request(buf, sizeof buf, &req, &fw);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"));
}

Test(http, request_too_large_is_refused)
{
    struct http_field f[] = {F("X-Big", "0123456789012345678901234567890123456789")};
    struct http_req req = base_req(f, 1);
    struct http_forward fw = fwd(0);
    char buf[64];
    cr_assert_eq(http_write_h1_request(buf, sizeof buf, &req, &fw), CUT_ELIMIT);
}

Test(http, response_framing_and_connection)
{
    struct http_field f[] = {F("Content-Length", "10"), F("X-A", "1"), F("Keep-Alive", "t=5")};
    f[0].id = H1_HDR_CONTENT_LENGTH;
    f[2].flags = H1_HF_HOP;
    struct http_resp r = {.status = 200, .fields = f, .nfields = 3,
                          .framing = HTTP_BODY_LENGTH, .content_length = 10};
    char buf[512];
    int n = http_write_h1_response(buf, sizeof buf, &r, 0, 0, 0);
    buf[n] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    cr_assert_not_null(strstr(buf, "\r\nContent-Length: 10\r\n"));
    cr_assert_null(strstr(buf, "Keep-Alive"));
    cr_assert_null(strstr(buf, "Connection"));

    n = http_write_h1_response(buf, sizeof buf, &r, 0, 1, 0);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "\r\nConnection: close\r\n"));

    r.framing = HTTP_BODY_STREAM;
    n = http_write_h1_response(buf, sizeof buf, &r, 1, 0, 0);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "\r\nTransfer-Encoding: chunked\r\n"));
    cr_assert_null(strstr(buf, "Content-Length"));
}

Test(http, response_to_head_keeps_content_length_once)
{
    struct http_field f[] = {F("Content-Length", "100"), F("Content-Length", "100")};
    f[0].id = f[1].id = H1_HDR_CONTENT_LENGTH;
    struct http_resp r = {.status = 200, .fields = f, .nfields = 2, .framing = HTTP_BODY_NONE};
    char buf[512];
    int n = http_write_h1_response(buf, sizeof buf, &r, 0, 0, 0);
    buf[n] = '\0';
    char *first = strstr(buf, "Content-Length: 100");
    cr_assert_not_null(first);
    cr_assert_null(strstr(first + 1, "Content-Length"));
}

Test(http, error_response_is_small_and_explains)
{
    char buf[1024];
    int n = http_write_error(buf, sizeof buf, 503, "no_endpoint", "no endpoint", 1);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
    cr_assert_not_null(strstr(buf, "X-Cutover-Error: no_endpoint\r\n"));
    cr_assert_not_null(strstr(buf, "Connection: close\r\n"));
    cr_assert_not_null(strstr(buf, "Content-Length: 21\r\n"));
    cr_assert_str_eq(buf + n - 25, "\r\n\r\ncutover: no endpoint\n");
    cr_assert_eq(http_write_error(buf, 20, 503, "x", "y", 0), CUT_ELIMIT);
}

Test(http, local_response_without_error_code_and_for_head)
{
    char buf[1024];
    int n = http_write_local(buf, sizeof buf, 200, NULL, "ready", 0, 0);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_str_eq(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n"
                          "Cache-Control: no-store\r\n\r\ncutover: ready\n");
    /* HEAD: the same head (Content-Length of the body it would have), no body */
    n = http_write_local(buf, sizeof buf, 404, "no_route", "no route", 1, 1);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_str_eq(buf, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                          "Content-Length: 18\r\nCache-Control: no-store\r\n"
                          "X-Cutover-Error: no_route\r\nConnection: close\r\n\r\n");
}

Test(http, request_id_sanity)
{
    cr_assert(http_request_id_ok(CUT_SLICE_LIT("0123abcdef")));
    cr_assert_not(http_request_id_ok(CUT_SLICE_LIT("")));
    cr_assert_not(http_request_id_ok(CUT_SLICE_LIT("has space")));
    cr_assert_not(http_request_id_ok(CUT_SLICE_LIT("quo\"te")));
    char big[200];
    memset(big, 'a', sizeof big);
    cr_assert_not(http_request_id_ok((struct cut_slice){big, 129}));
    cr_assert(http_request_id_ok((struct cut_slice){big, 128}));
}

Test(http, path_ok)
{
    cr_assert(http_path_ok(CUT_SLICE_LIT("/")));
    cr_assert(http_path_ok(CUT_SLICE_LIT("/a/b?c=d&e")));
    cr_assert(http_path_ok(CUT_SLICE_LIT("*")));
    cr_assert(http_path_ok(CUT_SLICE_LIT("/caf\xc3\xa9")), "bytes above 0x7f pass");
    cr_assert_not(http_path_ok(CUT_SLICE_LIT("")));
    cr_assert_not(http_path_ok(CUT_SLICE_LIT("/a b")));
    cr_assert_not(http_path_ok(CUT_SLICE_LIT("/a\tb")));
    cr_assert_not(http_path_ok(CUT_SLICE_LIT("/a\r\nx: y")));
    cr_assert_not(http_path_ok(CUT_SLICE_LIT("/a\x7f")));
    cr_assert_not(http_path_ok((struct cut_slice){"/a\0b", 4}), "NUL inside");
}

Test(http, find_is_case_insensitive)
{
    struct http_field f[] = {F("Host", "a"), F("X-Device-ID", "d1")};
    cr_assert_eq(http_find(f, 2, "x-device-id", 11), 1);
    cr_assert_eq(http_find(f, 2, "x-missing", 9), -1);
    cr_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
    cr_assert_str_eq(http_reason(799), "");
}

Test(http, host_always_the_authority_and_exactly_once)
{
    struct http_field f[] = {F("Host", "admin.internal"), F("Accept", "*/*"), F("host", "x")};
    f[0].id = f[2].id = H1_HDR_HOST;
    struct http_req req = base_req(f, 3);
    req.authority = CUT_SLICE_LIT("public.example");
    struct http_forward fw = fwd(0);
    char buf[1024];
    int n = http_write_h1_request(buf, sizeof buf, &req, &fw);
    buf[n] = '\0';
    char *h = strstr(buf, "\r\nHost: public.example\r\n");
    cr_assert_not_null(h);
    cr_assert_null(strstr(h + 2, "\r\nHost:"), "a second Host line");
    cr_assert_null(strstr(buf, "admin.internal"));
    cr_assert_null(strstr(buf, "host: x"));
}

Test(http, missing_authority_uses_default_host)
{
    struct http_req req = base_req(NULL, 0);
    req.authority = (struct cut_slice){NULL, 0};
    struct http_forward fw = fwd(0);
    fw.default_host = CUT_SLICE_LIT("blue.svc:8080");
    char buf[1024];
    int n = http_write_h1_request(buf, sizeof buf, &req, &fw);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "\r\nHost: blue.svc:8080\r\n"));
}

Test(http, original_host_and_url_only_from_trusted_peers)
{
    struct http_field f[] = {F("X-Original-Host", "evil.example"), F("X-Original-URL", "/admin")};
    struct http_req req = base_req(f, 2);
    struct http_forward untrusted = fwd(0), trusted = fwd(1);
    char buf[1024];
    int n = http_write_h1_request(buf, sizeof buf, &req, &untrusted);
    buf[n] = '\0';
    cr_assert_null(strstr(buf, "X-Original"));
    n = http_write_h1_request(buf, sizeof buf, &req, &trusted);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "\r\nX-Original-Host: evil.example\r\n"));
    cr_assert_not_null(strstr(buf, "\r\nX-Original-URL: /admin\r\n"));
}

/* Issue 12: an h2c upgrade (or any upgrade but WebSocket) is never passed on. */
static int slice_is(struct cut_slice s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

Test(http, upgrade_filter_keeps_only_websocket)
{
    cr_assert(slice_is(http_upgrade_filter(CUT_SLICE_LIT("websocket")), "websocket"));
    cr_assert(slice_is(http_upgrade_filter(CUT_SLICE_LIT("WebSocket")), "websocket"));
    cr_assert(slice_is(http_upgrade_filter(CUT_SLICE_LIT("h2c, websocket")), "websocket"));
    cr_assert(slice_is(http_upgrade_filter(CUT_SLICE_LIT("websocket ,h2c")), "websocket"));
    cr_assert_eq(http_upgrade_filter(CUT_SLICE_LIT("h2c")).n, 0);
    cr_assert_eq(http_upgrade_filter(CUT_SLICE_LIT("H2C")).n, 0);
    cr_assert_eq(http_upgrade_filter(CUT_SLICE_LIT("h2")).n, 0);
    cr_assert_eq(http_upgrade_filter(CUT_SLICE_LIT("TLS/1.2, HTTP/1.1")).n, 0);
    cr_assert_eq(http_upgrade_filter(CUT_SLICE_LIT("websocketx")).n, 0);
    cr_assert_eq(http_upgrade_filter(CUT_SLICE_LIT("")).n, 0);
    cr_assert_eq(http_upgrade_filter((struct cut_slice){NULL, 0}).n, 0);
}

Test(http, upgrade_filtered_request_has_no_upgrade)
{
    /* What h1.c does with "Connection: Upgrade, HTTP2-Settings" + "Upgrade: h2c": the flag is
     * cleared, so neither Upgrade nor "Connection: upgrade" is written. */
    struct http_field f[] = {
        {{"Connection", 10}, {"Upgrade, HTTP2-Settings", 23}, H1_HDR_CONNECTION, H1_HF_HOP},
        {{"Upgrade", 7}, {"h2c", 3}, H1_HDR_UPGRADE, H1_HF_HOP},
        {{"HTTP2-Settings", 14}, {"AAMAAABkAAQAAP__", 16}, H1_HDR_HTTP2_SETTINGS, H1_HF_HOP},
    };
    struct http_req req = base_req(f, 3);
    struct http_forward fw = fwd(0);
    req.upgrade = http_upgrade_filter(CUT_SLICE_LIT("h2c"));
    if (!req.upgrade.n)
        req.flags &= ~HTTP_RF_UPGRADE;
    char buf[2048];
    int n = http_write_h1_request(buf, sizeof buf, &req, &fw);
    cr_assert_gt(n, 0);
    buf[n] = 0;
    cr_assert_null(strcasestr(buf, "upgrade"), "%s", buf);
    cr_assert_null(strcasestr(buf, "http2-settings"), "%s", buf);
    cr_assert_null(strcasestr(buf, "connection"), "%s", buf);
}

Test(http, body_allowance)
{
    cr_assert_eq(http_body_allowance_ms(0, 1024, 5), UINT64_MAX); /* off */
    cr_assert_eq(http_body_allowance_ms(30000, 0, 1u << 30), 30000); /* fixed total */
    cr_assert_eq(http_body_allowance_ms(30000, 1024, 0), 30000);
    cr_assert_eq(http_body_allowance_ms(30000, 1024, 1024), 31000);
    cr_assert_eq(http_body_allowance_ms(30000, 1000, 1500), 31500);
    cr_assert_eq(http_body_allowance_ms(30000, 3, 1), 30333);
    /* 1 byte per second never earns its keep: 30 bytes buy 30 ms. */
    cr_assert_eq(http_body_allowance_ms(30000, 1024, 30), 30029);
    cr_assert_eq(http_body_allowance_ms(30000, 1, UINT64_MAX), UINT64_MAX);
    cr_assert_eq(http_body_allowance_ms(1, 1, UINT64_MAX / 1000), UINT64_MAX);
}

static int fslice_is(struct cut_slice s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* The forwarded request field by field (what HTTP/2 upstreams are sent): exactly the fields of
 * the HTTP/1.1 head, as slices into it, with the ids and hop-by-hop flags the h2 side needs. */
Test(http, forward_records_every_field_written)
{
    struct http_field f[] = {F("Host", "api.example.com"), F("X-Keep", "yes"),
                             F("X-Forwarded-For", "1.2.3.4"), F("X-Cutover-Pool", "green")};
    f[0].id = H1_HDR_HOST; /* as the codecs mark it: replaced by the Host written */
    struct http_req req = base_req(f, 4);
    req.framing = HTTP_BODY_STREAM;
    struct http_forward fw = fwd(0);
    char buf[1024];
    struct http_field out_f[16];
    struct http_req out;
    int n = http_write_forward(buf, sizeof buf, &req, &fw, &out, out_f, 16);
    cr_assert_gt(n, 0);
    cr_assert_eq(n, http_write_h1_request(buf + 512, 512, &req, &fw), "the same head");
    cr_assert(fslice_is(out.method, "GET"));
    cr_assert(fslice_is(out.path, "/a?b=1"));
    cr_assert(fslice_is(out.authority, "api.example.com"));
    cr_assert_eq(out.framing, HTTP_BODY_STREAM);
    cr_assert_eq(out.nfields, 7);
    const char *names[] = {"Host", "X-Keep", "X-Forwarded-For", "X-Forwarded-Proto",
                           "X-Forwarded-Host", "X-Request-Id", "Transfer-Encoding"};
    const char *values[] = {"api.example.com", "yes", "1.2.3.4, 10.0.0.9", "http",
                            "api.example.com", "abc", "chunked"};
    for (unsigned i = 0; i < 7; i++) {
        cr_assert(fslice_is(out_f[i].name, names[i]), "field %u name", i);
        cr_assert(fslice_is(out_f[i].value, values[i]), "field %u value", i);
        cr_assert(out_f[i].name.p >= buf && out_f[i].value.p + out_f[i].value.n <= buf + n,
                  "field %u points into the head", i);
    }
    cr_assert_eq(out_f[0].id, H1_HDR_HOST);
    cr_assert_eq(out_f[6].id, H1_HDR_TRANSFER_ENCODING);
    cr_assert(out_f[6].flags & H1_HF_HOP);
    cr_assert_eq(out_f[1].flags, 0);
}

Test(http, forward_content_length_and_limits)
{
    struct http_field f[] = {F("X-A", "1"), F("X-B", "2")};
    struct http_req req = base_req(f, 2);
    req.framing = HTTP_BODY_LENGTH;
    req.content_length = 42;
    req.authority = (struct cut_slice){NULL, 0};
    struct http_forward fw = fwd(0);
    char buf[1024];
    struct http_field out_f[16];
    struct http_req out;
    int n = http_write_forward(buf, sizeof buf, &req, &fw, &out, out_f, 16);
    cr_assert_gt(n, 0);
    cr_assert_eq(out.authority.n, 0, "no Host written, no authority");
    cr_assert_eq(out.nfields, 6); /* X-A, X-B, X-Forwarded-For, -Proto, X-Request-Id, CL */
    cr_assert(fslice_is(out_f[5].name, "Content-Length"));
    cr_assert(fslice_is(out_f[5].value, "42"));
    cr_assert_eq(out_f[5].id, H1_HDR_CONTENT_LENGTH);
    cr_assert_eq(out_f[5].flags, 0);
    cr_assert_eq(http_write_forward(buf, sizeof buf, &req, &fw, &out, out_f, 5), CUT_ELIMIT,
                 "more fields than room");
    cr_assert_eq(http_write_forward(buf, 40, &req, &fw, &out, out_f, 16), CUT_ELIMIT);
}

Test(http, trace_context_dropped_or_written)
{
    struct http_field f[] = {F("traceparent", "00-bad"), F("tracestate", "a=b"),
                             F("x-keep", "1")};
    struct http_req req = base_req(f, 3);
    struct http_forward fw = fwd(0);
    char buf[1024];
    int n = http_write_h1_request(buf, sizeof buf, &req, &fw);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    /* by default everything the client sent goes on */
    cr_assert(strstr(buf, "traceparent: 00-bad\r\n"));
    cr_assert(strstr(buf, "tracestate: a=b\r\n"));
    fw.drop_trace = 1;
    fw.traceparent = CUT_SLICE_LIT("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    n = http_write_h1_request(buf, sizeof buf, &req, &fw);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(!strstr(buf, "00-bad"), "%s", buf);
    cr_assert(!strstr(buf, "tracestate"), "%s", buf);
    cr_assert(strstr(buf, "x-keep: 1\r\n"));
    cr_assert(strstr(buf, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"),
              "%s", buf);
    /* the recorded fields (HTTP/2 upstreams) carry it too */
    struct http_field out_f[16];
    struct http_req out;
    n = http_write_forward(buf, sizeof buf, &req, &fw, &out, out_f, 16);
    cr_assert_gt(n, 0);
    int seen = 0;
    for (unsigned i = 0; i < out.nfields; i++)
        seen += out_f[i].name.n == 11 && memcmp(out_f[i].name.p, "traceparent", 11) == 0;
    cr_assert_eq(seen, 1);
}

/* fuzz_h1_parse.c - libFuzzer harness for proxy/h1_parse.c: drives the request, response,
 * chunk-size and trailer parsers and checks the contract's invariants (results within the
 * input, slices inside the buffer, statuses from the documented set, a complete head parses the
 * same from exactly its own bytes and every shorter prefix of it asks for more).
 *
 * Input: byte 0 picks limits and options, byte 1 a split point; the rest is the message.
 * Build and run (from the repository root; docs/testing.md):
 *   make fuzz && make fuzz-run FUZZ_ONLY=h1_parse FUZZ_SECONDS=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http/h1_parse.h"

#define FUZZ_MAXH 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static void fuzz_check_slice(struct cut_slice s, const char *buf, size_t len)
{
    if (s.n == 0)
        return;
    fuzz_check(s.p >= buf && s.p + s.n <= buf + len);
}

static void fuzz_check_headers(const struct http_field *h, unsigned n, const char *buf, size_t len)
{
    for (unsigned i = 0; i < n; i++) {
        fuzz_check(h[i].name.n > 0);
        fuzz_check_slice(h[i].name, buf, len);
        fuzz_check_slice(h[i].value, buf, len);
        fuzz_check(h[i].id <= H1_HDR_HTTP2_SETTINGS);
    }
}

/* Runs one parser over an exact-size heap copy of buf[0..n), so reads past n are caught. */
static int fuzz_request(const char *buf, size_t n, const struct h1_limits *lim, unsigned maxh)
{
    struct h1_request req;
    struct http_field h[FUZZ_MAXH];
    int status = 0;
    char *copy = malloc(n ? n : 1);

    if (!copy)
        return CUT_ENOMEM;
    if (n)
        memcpy(copy, buf, n);
    int rc = h1_parse_request(copy, n, lim, &req, h, maxh, &status);
    fuzz_check(rc == CUT_EAGAIN || rc == CUT_EPROTO || (rc > 0 && (size_t)rc <= n));
    if (rc == CUT_EPROTO)
        fuzz_check(status == 400 || status == 414 || status == 431 || status == 501 ||
                   status == 505);
    if (rc > 0) {
        fuzz_check((size_t)rc <= lim->max_head);
        fuzz_check(req.nheaders <= maxh && req.nheaders <= lim->max_headers);
        fuzz_check(req.method.n > 0 && req.target.n > 0);
        fuzz_check(req.minor_version == 0 || req.minor_version == 1);
        fuzz_check_slice(req.method, copy, n);
        fuzz_check_slice(req.target, copy, n);
        fuzz_check_slice(req.host, copy, n);
        fuzz_check_slice(req.upgrade, copy, n);
        fuzz_check_headers(h, req.nheaders, copy, n);
        fuzz_check(req.body != H1_BODY_UNTIL_CLOSE);
        if (req.body == H1_BODY_LENGTH)
            fuzz_check(req.content_length <= (UINT64_C(1) << 62));
    }
    free(copy);
    return rc;
}

static int fuzz_response(const char *buf, size_t n, const struct h1_limits *lim, unsigned maxh,
                         int head)
{
    struct h1_response resp;
    struct http_field h[FUZZ_MAXH];
    int status = 0;
    char *copy = malloc(n ? n : 1);

    if (!copy)
        return CUT_ENOMEM;
    if (n)
        memcpy(copy, buf, n);
    struct cut_slice method = head ? CUT_SLICE_LIT("HEAD") : CUT_SLICE_LIT("GET");
    int rc = h1_parse_response(copy, n, lim, method, &resp, h, maxh, &status);
    fuzz_check(rc == CUT_EAGAIN || rc == CUT_EPROTO || (rc > 0 && (size_t)rc <= n));
    if (rc == CUT_EPROTO)
        fuzz_check(status == 502);
    if (rc > 0) {
        fuzz_check(resp.status >= 100 && resp.status <= 999);
        fuzz_check_slice(resp.reason, copy, n);
        fuzz_check_headers(h, resp.nheaders, copy, n);
        if (resp.body == H1_BODY_UNTIL_CLOSE)
            fuzz_check(!(resp.conn_flags & H1_CF_KEEP_ALIVE));
        if (head || resp.status < 200 || resp.status == 204 || resp.status == 304)
            fuzz_check(resp.body == H1_BODY_NONE);
    }
    free(copy);
    return rc;
}

static int fuzz_chunk(const char *buf, size_t n)
{
    uint64_t size = 0;
    char *copy = malloc(n ? n : 1);

    if (!copy)
        return CUT_ENOMEM;
    if (n)
        memcpy(copy, buf, n);
    int rc = h1_parse_chunk_size(copy, n, &size);
    fuzz_check(rc == CUT_EAGAIN || rc == CUT_EPROTO || (rc > 0 && (size_t)rc <= n));
    if (rc > 0)
        fuzz_check(size <= (UINT64_C(1) << 62) && rc <= 4098);
    free(copy);
    return rc;
}

static int fuzz_trailers(const char *buf, size_t n, const struct h1_limits *lim, unsigned maxh)
{
    struct http_field h[FUZZ_MAXH];
    unsigned nh = 0;
    char *copy = malloc(n ? n : 1);

    if (!copy)
        return CUT_ENOMEM;
    if (n)
        memcpy(copy, buf, n);
    int rc = h1_parse_trailers(copy, n, lim, h, maxh, &nh);
    fuzz_check(rc == CUT_EAGAIN || rc == CUT_EPROTO || (rc > 0 && (size_t)rc <= n));
    if (rc > 0) {
        fuzz_check(nh <= maxh);
        fuzz_check_headers(h, nh, copy, n);
    }
    free(copy);
    return rc;
}

/* A complete result must repeat on exactly its own bytes and every shorter prefix must ask for
 * more; checks the full length, one byte less and a split point chosen by the input. */
static void fuzz_prefixes(int rc, size_t split, int (*run)(const char *, size_t, const void *),
                          const char *buf, const void *ctx)
{
    if (rc <= 0)
        return;
    fuzz_check(run(buf, (size_t)rc, ctx) == rc);
    fuzz_check(run(buf, (size_t)rc - 1, ctx) == CUT_EAGAIN);
    fuzz_check(run(buf, split % (size_t)rc, ctx) == CUT_EAGAIN);
}

struct fuzz_ctx {
    const struct h1_limits *lim;
    unsigned maxh;
    int head;
};

static int fuzz_run_request(const char *buf, size_t n, const void *ctx)
{
    const struct fuzz_ctx *c = ctx;
    return fuzz_request(buf, n, c->lim, c->maxh);
}

static int fuzz_run_response(const char *buf, size_t n, const void *ctx)
{
    const struct fuzz_ctx *c = ctx;
    return fuzz_response(buf, n, c->lim, c->maxh, c->head);
}

static int fuzz_run_chunk(const char *buf, size_t n, const void *ctx)
{
    (void)ctx;
    return fuzz_chunk(buf, n);
}

static int fuzz_run_trailers(const char *buf, size_t n, const void *ctx)
{
    const struct fuzz_ctx *c = ctx;
    return fuzz_trailers(buf, n, c->lim, c->maxh);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;

    /* Byte 0 picks limits and options, byte 1 a split point; the rest is the message. */
    uint8_t sel = data[0];
    size_t split = data[1];
    const char *buf = (const char *)data + 2;
    size_t n = size - 2;
    const struct h1_limits wide = {.max_line = 8192, .max_head = 65536, .max_headers = FUZZ_MAXH};
    const struct h1_limits tight = {.max_line = 40, .max_head = 160, .max_headers = 4};
    struct fuzz_ctx ctx = {
        .lim = (sel & 1) ? &tight : &wide,
        .maxh = (sel & 2) ? 3 : FUZZ_MAXH,
        .head = (sel & 4) != 0,
    };

    int rc = fuzz_run_request(buf, n, &ctx);
    fuzz_prefixes(rc, split, fuzz_run_request, buf, &ctx);
    rc = fuzz_run_response(buf, n, &ctx);
    fuzz_prefixes(rc, split, fuzz_run_response, buf, &ctx);
    rc = fuzz_run_chunk(buf, n, &ctx);
    fuzz_prefixes(rc, split, fuzz_run_chunk, buf, &ctx);
    rc = fuzz_run_trailers(buf, n, &ctx);
    fuzz_prefixes(rc, split, fuzz_run_trailers, buf, &ctx);

    /* After a complete head, the rest of the input as a chunked body: size lines, trailers. */
    int head = fuzz_run_request(buf, n, &ctx);
    if (head > 0) {
        size_t pos = (size_t)head;
        for (int i = 0; i < 16 && pos < n; i++) {
            uint64_t csize = 0;
            int c = h1_parse_chunk_size(buf + pos, n - pos, &csize);
            if (c <= 0)
                break;
            pos += (size_t)c;
            if (csize == 0) {
                fuzz_run_trailers(buf + pos, n - pos, &ctx);
                break;
            }
            if (csize + 2 > n - pos)
                break;
            pos += (size_t)csize + 2;
        }
    }
    return 0;
}

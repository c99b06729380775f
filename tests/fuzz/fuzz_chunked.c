/* fuzz_chunked.c - libFuzzer harness for the chunked decoder (proxy/chunked.h): the same wire
 * bytes decoded once from one evbuffer holding all of them, and once fed piece by piece (split
 * points from the input) as a socket would deliver them, must agree: the same result (done,
 * need more, or error), the same decoded body, the same trailer fields, the same framing byte
 * count and the same end position. abort() when they differ.
 *
 * Input: byte 0 picks the limits (bit 0: tight trailer limits; bit 1: at most 2 trailer fields);
 * byte 1 (low 3 bits) the number of split points, each then given as two bytes (a position in
 * the wire, modulo its length); the rest is the wire.
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http/chunked.h"
#include "core/cut.h"

#define FUZZ_MAX_TR 8
#define FUZZ_MAX_SPLITS 7

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    int result;            /* CHUNKED_DONE, CHUNKED_NEED_MORE or CUT_EPROTO */
    struct evbuffer *body; /* decoded data */
    size_t framing;        /* size lines and CRLFs, as counted by the decoder */
    size_t end;            /* wire position just after the trailers (DONE only) */
    unsigned ntr;
    char *tr; /* trailer fields as "name: value\n" lines */
    size_t trlen;
};

static void fail(const char *what)
{
    fprintf(stderr, "\n==FUZZ CHECK FAILED== chunked: %s\n", what);
    abort();
}

/* Copies the trailer fields (slices into in, valid until it is drained). */
static void keep_trailers(struct outcome *o, const struct http_field *tr, unsigned ntr)
{
    size_t n = 0;
    for (unsigned i = 0; i < ntr; i++)
        n += tr[i].name.n + tr[i].value.n + 3;
    o->tr = malloc(n + 1);
    if (!o->tr)
        fail("out of memory");
    o->trlen = 0;
    for (unsigned i = 0; i < ntr; i++) {
        memcpy(o->tr + o->trlen, tr[i].name.p, tr[i].name.n);
        o->trlen += tr[i].name.n;
        memcpy(o->tr + o->trlen, ": ", 2);
        o->trlen += 2;
        memcpy(o->tr + o->trlen, tr[i].value.p, tr[i].value.n);
        o->trlen += tr[i].value.n;
        o->tr[o->trlen++] = '\n';
    }
    o->ntr = ntr;
}

/* Feeds wire[0..len) in pieces ending at cuts[0..ncuts) (ascending, then len), calling
 * chunked_step until it needs more after each piece, as h1.c and upstream.c do. */
static void decode(const char *wire, size_t len, const size_t *cuts, unsigned ncuts,
                   const struct h1_limits *lim, unsigned max_tr, struct outcome *o)
{
    struct chunked d;
    chunked_init(&d);
    struct evbuffer *in = evbuffer_new();
    o->body = evbuffer_new();
    if (!in || !o->body)
        fail("out of memory");
    o->result = CHUNKED_NEED_MORE;
    o->framing = 0;
    size_t fed = 0, moved_total = 0;
    for (unsigned piece = 0; piece <= ncuts && o->result == CHUNKED_NEED_MORE; piece++) {
        size_t upto = piece < ncuts ? cuts[piece] : len;
        if (upto > fed) {
            if (evbuffer_add(in, wire + fed, upto - fed) < 0)
                fail("out of memory");
            fed = upto;
        }
        for (;;) {
            struct http_field tr[FUZZ_MAX_TR];
            unsigned ntr = 0;
            size_t moved = 0, tl = 0;
            int r = chunked_step(&d, in, o->body, lim, tr, max_tr, &ntr, &moved, &tl, &o->framing);
            if (r == CHUNKED_MOVED) {
                if (moved == 0)
                    fail("MOVED without bytes");
                moved_total += moved;
                continue;
            }
            if (r == CHUNKED_DONE) {
                if (ntr > max_tr || tl > evbuffer_get_length(in))
                    fail("trailers outside their bounds");
                keep_trailers(o, tr, ntr);
                o->end = fed - evbuffer_get_length(in) + tl;
            }
            o->result = r == CHUNKED_DONE || r == CHUNKED_NEED_MORE ? r : CUT_EPROTO;
            if (r != CHUNKED_DONE && r != CHUNKED_NEED_MORE && r != CUT_EPROTO)
                fail("a result outside the contract");
            break;
        }
    }
    if (moved_total != evbuffer_get_length(o->body))
        fail("moved bytes and body length differ");
    evbuffer_free(in);
}

static void outcome_dispose(struct outcome *o)
{
    evbuffer_free(o->body);
    free(o->tr);
}

static int same_body(struct evbuffer *a, struct evbuffer *b)
{
    size_t n = evbuffer_get_length(a);
    if (n != evbuffer_get_length(b))
        return 0;
    return n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t sel = data[0];
    unsigned nsplit = data[1] & FUZZ_MAX_SPLITS;
    if (size < 2 + 2 * (size_t)nsplit)
        return 0;
    const uint8_t *sp = data + 2;
    const char *wire = (const char *)data + 2 + 2 * nsplit;
    size_t len = size - 2 - 2 * nsplit;

    const struct h1_limits wide = {8192, 8192, 100};
    const struct h1_limits tight = {64, 96, 3};
    const struct h1_limits *lim = (sel & 1) ? &tight : &wide;
    unsigned max_tr = (sel & 2) ? 2 : FUZZ_MAX_TR;

    size_t cuts[FUZZ_MAX_SPLITS];
    for (unsigned i = 0; i < nsplit; i++)
        cuts[i] = len ? (((size_t)sp[2 * i] << 8) | sp[2 * i + 1]) % len : 0;
    qsort(cuts, nsplit, sizeof cuts[0], cmp_size);

    struct outcome whole = {0}, pieces = {0}, bytes = {0};
    decode(wire, len, NULL, 0, lim, max_tr, &whole);
    decode(wire, len, cuts, nsplit, lim, max_tr, &pieces);
    if (whole.result != pieces.result)
        fail("whole and piecewise results differ");
    if (!same_body(whole.body, pieces.body))
        fail("whole and piecewise bodies differ");
    if (whole.result != CUT_EPROTO && whole.framing != pieces.framing)
        fail("whole and piecewise framing byte counts differ");
    if (whole.result == CHUNKED_DONE) {
        if (whole.end != pieces.end)
            fail("whole and piecewise end or framing differ");
        if (whole.ntr != pieces.ntr || whole.trlen != pieces.trlen ||
            memcmp(whole.tr, pieces.tr, whole.trlen) != 0)
            fail("whole and piecewise trailers differ");
    }
    /* Byte by byte as well for short inputs: the worst case for every boundary. */
    if (len <= 256) {
        size_t one[256];
        for (size_t i = 0; i < len; i++)
            one[i] = i;
        decode(wire, len, one, (unsigned)len, lim, max_tr, &bytes);
        if (whole.result != bytes.result || !same_body(whole.body, bytes.body))
            fail("whole and byte-by-byte decoding differ");
        if (whole.result == CHUNKED_DONE &&
            (whole.end != bytes.end || whole.framing != bytes.framing ||
             whole.trlen != bytes.trlen || memcmp(whole.tr, bytes.tr, whole.trlen) != 0))
            fail("whole and byte-by-byte trailers or framing differ");
        outcome_dispose(&bytes);
    }
    outcome_dispose(&whole);
    outcome_dispose(&pieces);
    return 0;
}

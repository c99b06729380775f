/* The chunked decoder over evbuffers: whole input, byte by byte, trailers, errors. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <string.h>

#include "proxy/http/chunked.h"
#include "core/cut.h"

static const struct h1_limits lim = {8192, 8192, 100};

/* Feeds `wire` in pieces of `step` bytes; returns the final code and fills out/trailers. */
static int decode(const char *wire, size_t step, struct evbuffer *out, unsigned *ntr,
                  char *trailer_name, size_t *framing)
{
    struct chunked d;
    chunked_init(&d);
    struct evbuffer *in = evbuffer_new();
    struct http_field tr[8];
    size_t len = strlen(wire), fed = 0;
    *framing = 0;
    int r = CHUNKED_NEED_MORE;
    while (1) {
        size_t moved, tl;
        r = chunked_step(&d, in, out, &lim, tr, 8, ntr, &moved, &tl, framing);
        if (r == CHUNKED_DONE) {
            if (*ntr)
                snprintf(trailer_name, 32, "%.*s", (int)tr[0].name.n, tr[0].name.p);
            evbuffer_drain(in, tl);
            cr_assert_eq(evbuffer_get_length(in), 0, "nothing after the trailers");
            break;
        }
        if (r < 0)
            break;
        if (r == CHUNKED_MOVED)
            continue;
        if (fed == len)
            break;
        size_t n = len - fed < step ? len - fed : step;
        evbuffer_add(in, wire + fed, n);
        fed += n;
    }
    evbuffer_free(in);
    return r;
}

Test(chunked, whole_and_byte_by_byte_give_the_same_body_and_trailers)
{
    const char *wire = "5\r\nhello\r\nA;ext=1\r\n, world!!!\r\n0\r\nX-Checksum: 1\r\n\r\n";
    for (size_t step = 1; step <= strlen(wire); step += strlen(wire) - 1) {
        struct evbuffer *out = evbuffer_new();
        unsigned ntr = 0;
        char name[32] = "";
        size_t framing;
        cr_assert_eq(decode(wire, step, out, &ntr, name, &framing), CHUNKED_DONE, "step %zu",
                     step);
        size_t n = evbuffer_get_length(out);
        cr_assert_eq(n, 15);
        cr_assert(memcmp(evbuffer_pullup(out, -1), "hello, world!!!", 15) == 0);
        cr_assert_eq(ntr, 1);
        cr_assert_str_eq(name, "X-Checksum");
        cr_assert_eq(framing, 3 + 2 + 9 + 2 + 3, "size lines and CRLFs counted");
        evbuffer_free(out);
    }
}

Test(chunked, errors)
{
    const char *bad[] = {"5\r\nhelloXX0\r\n\r\n", "zz\r\n", "5\r\nhello\r\n0\r\nbad header\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct evbuffer *out = evbuffer_new();
        unsigned ntr = 0;
        char name[32];
        size_t framing;
        cr_assert_eq(decode(bad[i], 1, out, &ntr, name, &framing), CUT_EPROTO, "case %zu", i);
        evbuffer_free(out);
    }
}

Test(chunked, incomplete_input_asks_for_more)
{
    struct evbuffer *out = evbuffer_new();
    unsigned ntr = 0;
    char name[32];
    size_t framing;
    cr_assert_eq(decode("5\r\nhel", 2, out, &ntr, name, &framing), CHUNKED_NEED_MORE);
    cr_assert_eq(evbuffer_get_length(out), 3, "the data that came is passed on");
    evbuffer_free(out);
}

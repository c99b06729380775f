/* One DATA frame written without a copy (proxy/relay/h2_data.c): header, pad length, payload
 * moved from the source buffer, padding. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <string.h>

#include "proxy/relay/h2_data.h"

static const uint8_t HD[9] = {0, 0, 5, 0, 1, 0, 0, 0, 3}; /* length 5, DATA, END_STREAM, id 3 */

static size_t take(struct evbuffer *b, uint8_t *dst, size_t cap)
{
    size_t n = evbuffer_get_length(b);
    cr_assert_leq(n, cap);
    evbuffer_remove(b, dst, n);
    return n;
}

Test(h2_data, header_then_the_payload_moved_out_of_its_buffer)
{
    struct evbuffer *out = evbuffer_new(), *src = evbuffer_new();
    evbuffer_add(src, "hello, world", 12);
    cr_assert_eq(h2_data_write(out, HD, 0, src, 5), 0);
    uint8_t got[64];
    size_t n = take(out, got, sizeof got);
    cr_assert_eq(n, 14u);
    cr_assert_eq(memcmp(got, HD, 9), 0);
    cr_assert_eq(memcmp(got + 9, "hello", 5), 0);
    cr_assert_eq(evbuffer_get_length(src), 7u, "the rest stays for the next frame");
    evbuffer_free(out);
    evbuffer_free(src);
}

Test(h2_data, padded_frame_has_its_pad_length_and_zero_padding)
{
    struct evbuffer *out = evbuffer_new(), *src = evbuffer_new();
    evbuffer_add(src, "abc", 3);
    /* padlen counts the pad length byte: 1 + 4 bytes of padding */
    cr_assert_eq(h2_data_write(out, HD, 5, src, 3), 0);
    uint8_t got[64];
    size_t n = take(out, got, sizeof got);
    cr_assert_eq(n, 9u + 1 + 3 + 4);
    cr_assert_eq(got[9], 4);
    cr_assert_eq(memcmp(got + 10, "abc", 3), 0);
    for (unsigned i = 13; i < n; i++)
        cr_assert_eq(got[i], 0);
    evbuffer_free(out);
    evbuffer_free(src);
}

Test(h2_data, empty_frame_is_the_header_alone)
{
    struct evbuffer *out = evbuffer_new(), *src = evbuffer_new();
    cr_assert_eq(h2_data_write(out, HD, 0, src, 0), 0);
    cr_assert_eq(evbuffer_get_length(out), 9u);
    evbuffer_free(out);
    evbuffer_free(src);
}

Test(h2_data, a_payload_shorter_than_asked_is_an_error)
{
    struct evbuffer *out = evbuffer_new(), *src = evbuffer_new();
    evbuffer_add(src, "ab", 2);
    cr_assert_eq(h2_data_write(out, HD, 0, src, 5), -1);
    evbuffer_free(out);
    evbuffer_free(src);
}

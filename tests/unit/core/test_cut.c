/* Unit tests for core/cut.c and core/clock.c: error names, slices, the clock. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/clock.h"
#include "core/cut.h"

Test(cut, every_code_has_a_name)
{
    for (int c = CUT_ETLS; c <= CUT_OK; c++)
        cr_assert_str_neq(cut_strerror(c), "unknown error", "%d", c);
    cr_assert_str_eq(cut_strerror(-999), "unknown error");
    cr_assert_str_eq(cut_strerror(CUT_ENOENT), "not found");
}

Test(cut, slice_ieq)
{
    cr_assert(cut_slice_ieq(CUT_SLICE_LIT("Keep-Alive"), "keep-alive"));
    cr_assert(cut_slice_ieq(CUT_SLICE_LIT("HEAD"), "head"));
    cr_assert(cut_slice_ieq(CUT_SLICE_LIT(""), ""));
    cr_assert_not(cut_slice_ieq(CUT_SLICE_LIT("HEAD"), "hea"));
    cr_assert_not(cut_slice_ieq(CUT_SLICE_LIT("HEA"), "head"));
    cr_assert_not(cut_slice_ieq(CUT_SLICE_LIT("close"), "Close")); /* lower must be lower case */
    struct cut_slice with_nul = {"te\0x", 4};
    cr_assert_not(cut_slice_ieq(with_nul, "te"));
}

Test(clock, monotonic_and_consistent)
{
    uint64_t ns = clock_mono_ns(), us = clock_mono_us(), ms = clock_mono_ms();
    cr_assert_geq(us, ns / 1000);
    cr_assert_geq(ms, ns / 1000000);
    uint64_t prev = clock_mono_ns();
    for (int i = 0; i < 1000; i++) {
        uint64_t t = clock_mono_ns();
        cr_assert_geq(t, prev);
        prev = t;
    }
}

Test(cut, lower_copy_matches_a_byte_loop_on_every_byte)
{
    char src[300], dst[300], want[300];
    for (int i = 0; i < 256; i++)
        src[i] = (char)i;
    memcpy(src + 256, "X-Forwarded-FOR: Ab@[`{Zz", 25);
    size_t n = 281;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        want[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    /* every length and alignment, so both the 8-byte words and the tail are covered */
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; len + off <= n; len += 7) {
            memset(dst, 0x55, sizeof dst);
            cut_lower_copy(dst, src + off, len);
            cr_assert_eq(memcmp(dst, want + off, len), 0, "off %zu len %zu", off, len);
            cr_assert_eq((unsigned char)dst[len], 0x55, "wrote past the end");
        }
    }
}

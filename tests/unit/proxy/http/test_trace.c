/* W3C traceparent: the checker and the maker (proxy/http/trace.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "proxy/http/trace.h"

static int ok(const char *s)
{
    return trace_parent_ok((struct cut_slice){s, strlen(s)});
}

#define GOOD "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

Test(trace, accepts_the_specification_example)
{
    cr_assert_eq(strlen(GOOD), TRACE_PARENT_LEN);
    cr_assert(ok(GOOD));
    cr_assert(ok("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
    struct cut_slice v = {GOOD, strlen(GOOD)};
    cr_assert(memcmp(trace_parent_id(v), "4bf92f3577b34da6a3ce929d0e0e4736", TRACE_ID_LEN) == 0);
}

Test(trace, refuses_malformed_values)
{
    cr_assert(!ok(""));
    cr_assert(!ok("00"));
    /* upper-case hex */
    cr_assert(!ok("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
    cr_assert(!ok("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067aa0ba902b7-01"));
    /* all-zero trace-id or parent-id */
    cr_assert(!ok("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    cr_assert(!ok("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
    /* version ff is forbidden, non-hex version */
    cr_assert(!ok("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    cr_assert(!ok("0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    /* separators, lengths */
    cr_assert(!ok("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    cr_assert(!ok("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"));
    cr_assert(!ok("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01"));
    cr_assert(!ok("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));
    cr_assert(!ok("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"));
    cr_assert(!ok("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x"));
    /* version 00 is exactly 55 bytes */
    cr_assert(!ok(GOOD "-extra"));
    cr_assert(!ok(GOOD " "));
}

Test(trace, later_versions_may_carry_more)
{
    cr_assert(ok("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    cr_assert(ok("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever"));
    cr_assert(!ok("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

Test(trace, made_values_are_valid_and_carry_the_random_words)
{
    char out[TRACE_PARENT_LEN + 1];
    trace_parent_make(out, 0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x1122334455667788ULL);
    cr_assert_str_eq(out, "00-0123456789abcdeffedcba9876543210-1122334455667788-01");
    cr_assert(ok(out));
    /* all-zero words would make ids the specification forbids */
    trace_parent_make(out, 0, 0, 0);
    cr_assert(ok(out), "%s", out);
    cr_assert_str_eq(out, "00-00000000000000000000000000000001-0000000000000001-01");
    for (uint64_t i = 0; i < 1000; i++) {
        trace_parent_make(out, i * 0x9e3779b97f4a7c15ULL, ~i, i << 7);
        cr_assert(ok(out), "%s", out);
    }
}

/* Unit tests for core/text.c: percentages and error messages. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/text.h"

static const char *pct(unsigned long h)
{
    static char buf[32];
    text_percent(h, buf, sizeof buf);
    return buf;
}

Test(text, percent_is_shortest_exact)
{
    cr_assert_str_eq(pct(0), "0");
    cr_assert_str_eq(pct(10000), "100");
    cr_assert_str_eq(pct(2500), "25");
    cr_assert_str_eq(pct(1250), "12.5");
    cr_assert_str_eq(pct(1234), "12.34");
    cr_assert_str_eq(pct(1), "0.01");
    cr_assert_str_eq(pct(10), "0.1");
    cr_assert_str_eq(pct(9999), "99.99");
    cr_assert_str_eq(pct(100005), "1000.05");
}

Test(text, percent_truncates_to_cap)
{
    char buf[4];
    text_percent(1234, buf, sizeof buf);
    cr_assert_str_eq(buf, "12.");
}

Test(text, error_formats_and_tolerates_null)
{
    char buf[16];
    text_error(buf, sizeof buf, "%s %d", "line", 42);
    cr_assert_str_eq(buf, "line 42");
    text_error(NULL, 10, "ignored %d", 1);
    memset(buf, 'x', sizeof buf);
    text_error(buf, 0, "ignored");
    cr_assert_eq(buf[0], 'x');
    text_error(buf, 5, "truncated");
    cr_assert_str_eq(buf, "trun");
}

Test(text, u64_like_printf)
{
    const uint64_t cases[] = {0, 1, 9, 10, 99, 100, 12345, 4294967295u, 4294967296u,
                              18446744073709551615u};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[32], got[32];
        snprintf(want, sizeof want, "%llu", (unsigned long long)cases[i]);
        cr_assert_eq(text_u64(got, cases[i]), strlen(want));
        cr_assert_str_eq(got, want);
    }
}

Test(text, status3_pads_and_wraps)
{
    char out[4];
    text_status3(out, 200);
    cr_assert_str_eq(out, "200");
    text_status3(out, 99);
    cr_assert_str_eq(out, "099");
    text_status3(out, 0);
    cr_assert_str_eq(out, "000");
    text_status3(out, 1503); /* never more than three digits */
    cr_assert_str_eq(out, "503");
}

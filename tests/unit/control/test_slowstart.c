/* test_slowstart.c - control/slowstart.c: the share of an endpoint that came back. */
#include <criterion/criterion.h>

#include "control/slowstart.h"

Test(slowstart, without_slow_start_or_history_the_share_is_full)
{
    cr_assert_eq(slowstart_permille(1000, 0, 1000), SLOWSTART_FULL_PERMILLE, "no slow start");
    cr_assert_eq(slowstart_permille(0, 10000, 5), SLOWSTART_FULL_PERMILLE,
                 "serving since long ago");
}

Test(slowstart, the_share_ramps_linearly_over_slow_start)
{
    /* came back at t=5000, 10 s of slow start */
    cr_assert_eq(slowstart_permille(5000, 10000, 5000 + 2500), 250);
    cr_assert_eq(slowstart_permille(5000, 10000, 5000 + 5000), 500);
    cr_assert_eq(slowstart_permille(5000, 10000, 5000 + 9999), 999);
    cr_assert_eq(slowstart_permille(5000, 10000, 5000 + 10000), SLOWSTART_FULL_PERMILLE,
                 "exactly at the end");
    cr_assert_eq(slowstart_permille(5000, 10000, 5000 + 10001), SLOWSTART_FULL_PERMILLE);
    cr_assert_eq(slowstart_permille(5000, 10000, UINT64_MAX / 2), SLOWSTART_FULL_PERMILLE);
}

Test(slowstart, the_share_is_never_below_the_minimum)
{
    cr_assert_eq(slowstart_permille(5000, 10000, 5000), SLOWSTART_MIN_PERMILLE, "just back");
    cr_assert_eq(slowstart_permille(5000, 10000, 5000 + 499), SLOWSTART_MIN_PERMILLE);
    cr_assert_eq(slowstart_permille(5000, 10000, 5000 + 500), 50);
    cr_assert_eq(slowstart_permille(5000, 10000, 5000 + 510), 51, "above the minimum: linear");
    cr_assert_eq(slowstart_permille(5000, 10000, 4000), SLOWSTART_MIN_PERMILLE,
                 "a time before the return is the start, not a wrap-around");
}

Test(slowstart, a_one_millisecond_slow_start)
{
    cr_assert_eq(slowstart_permille(5000, 1, 5000), SLOWSTART_MIN_PERMILLE);
    cr_assert_eq(slowstart_permille(5000, 1, 5001), SLOWSTART_FULL_PERMILLE);
}

/* test_failsafe.c - control/failsafe.c: a pool that cannot serve gives its share away. */
#include <criterion/criterion.h>

#include "config/cfg.h"
#include "control/failsafe.h"

static unsigned sum(const unsigned *w, unsigned n)
{
    unsigned s = 0;
    for (unsigned i = 0; i < n; i++)
        s += w[i];
    return s;
}

Test(failsafe, all_serving_nothing_changes)
{
    unsigned w[2] = {9000, 1000};
    int serving[2] = {1, 1}, fs[2] = {7, 7};
    cr_assert_eq(failsafe_weights(2, serving, w, fs), 0);
    cr_assert_eq(w[0], 9000);
    cr_assert_eq(w[1], 1000);
    cr_assert_eq(fs[0], 0);
    cr_assert_eq(fs[1], 0);
}

Test(failsafe, a_pool_with_none_up_gives_its_share_to_the_others)
{
    unsigned w[2] = {9000, 1000};
    int serving[2] = {1, 0}, fs[2];
    cr_assert_eq(failsafe_weights(2, serving, w, fs), 1);
    cr_assert_eq(w[0], 10000);
    cr_assert_eq(w[1], 0);
    cr_assert_eq(fs[0], 0);
    cr_assert_eq(fs[1], 1);
}

Test(failsafe, the_share_goes_in_proportion_and_the_sum_is_kept)
{
    unsigned w[3] = {2000, 1000, 7000};
    int serving[3] = {1, 1, 0}, fs[3];
    cr_assert_eq(failsafe_weights(3, serving, w, fs), 1);
    cr_assert_eq(w[0], 2000 + 7000 * 2000 / 3000);
    cr_assert_eq(w[1], 10000 - w[0], "the last serving pool takes the rounding remainder");
    cr_assert_eq(w[2], 0);
    cr_assert_eq(sum(w, 3), CFG_BP_TOTAL);
    cr_assert_eq(fs[2], 1);
}

Test(failsafe, serving_pools_without_weight_share_evenly)
{
    unsigned w[4] = {10000, 0, 0, 0};
    int serving[4] = {0, 1, 1, 1}, fs[4];
    cr_assert_eq(failsafe_weights(4, serving, w, fs), 1);
    cr_assert_eq(w[0], 0);
    cr_assert_eq(w[1], 3333);
    cr_assert_eq(w[2], 3333);
    cr_assert_eq(w[3], 3334, "the remainder to the last serving pool");
    cr_assert_eq(fs[0], 1);
    cr_assert_eq(fs[1] + fs[2] + fs[3], 0);
}

Test(failsafe, all_pools_down_keeps_the_weights_as_configured)
{
    unsigned w[2] = {9000, 1000};
    int serving[2] = {0, 0}, fs[2] = {7, 7};
    cr_assert_eq(failsafe_weights(2, serving, w, fs), 0);
    cr_assert_eq(w[0], 9000);
    cr_assert_eq(w[1], 1000);
    cr_assert_eq(fs[0], 0, "no pool can take it: not in fail-safe (503 no_endpoint)");
    cr_assert_eq(fs[1], 0);
}

Test(failsafe, a_down_pool_without_weight_is_not_in_failsafe)
{
    unsigned w[2] = {10000, 0};
    int serving[2] = {1, 0}, fs[2] = {7, 7};
    cr_assert_eq(failsafe_weights(2, serving, w, fs), 0, "nothing lost");
    cr_assert_eq(w[0], 10000);
    cr_assert_eq(w[1], 0);
    cr_assert_eq(fs[1], 0);
    cr_assert_eq(failsafe_weights(2, serving, w, NULL), 0, "failsafe may be NULL");
}

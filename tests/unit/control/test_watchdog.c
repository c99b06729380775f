/* test_watchdog.c - control/watchdog.c: the watchdog's rollback verdict and its window. */
#include <criterion/criterion.h>
#include <string.h>

#include "config/cfg.h"
#include "control/watchdog.h"

static const struct cfg_watchdog wd = {
    .enabled = 1, .max_5xx_bp = 200, .window_s = 30, .min_requests = 50};

/* blue stable at 90 %, green shifted from 0 % to 10 %: green is on trial */
static void two(struct watchdog_pool *p, uint64_t green_req, uint64_t green_e5)
{
    p[0] = (struct watchdog_pool){
        .weight_bp = 9000, .stable_bp = 10000, .requests = 1000, .errors_5xx = 1000};
    p[1] = (struct watchdog_pool){
        .weight_bp = 1000, .stable_bp = 0, .requests = green_req, .errors_5xx = green_e5};
}

Test(watchdog, a_share_above_the_limit_rolls_back_exactly_at_it_does_not)
{
    struct watchdog_pool p[2];
    struct watchdog_verdict v;
    two(p, 100, 2); /* exactly 2 % */
    cr_assert_eq(watchdog_judge(&wd, 30, p, 2, &v), 0);
    cr_assert_eq(v.rollback, 0);
    two(p, 100, 3);
    cr_assert_eq(watchdog_judge(&wd, 30, p, 2, &v), 1);
    cr_assert_eq(v.rollback, 1);
    cr_assert_eq(v.pool, 1, "green failed, not blue (blue is at most its stable weight)");
    cr_assert_float_eq(v.value, 3.0, 1e-9);
    cr_assert_float_eq(v.limit, 2.0, 1e-9);
    cr_assert_str_eq(v.gate, "watchdog_5xx_percent");
    cr_assert_str_eq(v.reason, "watchdog: automatic rollback");
}

Test(watchdog, below_min_requests_there_is_no_verdict)
{
    struct watchdog_pool p[2];
    struct watchdog_verdict v;
    two(p, 49, 49);
    cr_assert_eq(watchdog_judge(&wd, 30, p, 2, &v), 0);
    two(p, 50, 49);
    cr_assert_eq(watchdog_judge(&wd, 30, p, 2, &v), 1, "exactly min_requests is judged");
}

Test(watchdog, only_a_pool_above_its_stable_weight_is_on_trial)
{
    struct watchdog_pool p[2];
    struct watchdog_verdict v;
    two(p, 100, 100);
    p[1].stable_bp = 1000; /* green at its stable weight: promoted, not on trial */
    cr_assert_eq(watchdog_judge(&wd, 30, p, 2, &v), 0);
    p[1].stable_bp = 999;
    cr_assert_eq(watchdog_judge(&wd, 30, p, 2, &v), 1);
    p[1].weight_bp = 0; /* no weight: nothing on trial */
    p[1].stable_bp = 0;
    cr_assert_eq(watchdog_judge(&wd, 30, p, 2, &v), 0);
}

Test(watchdog, disabled_or_without_history_it_never_rolls_back)
{
    struct watchdog_pool p[2];
    struct watchdog_verdict v;
    two(p, 1000, 1000);
    cr_assert_eq(watchdog_judge(&wd, 0, p, 2, &v), 0, "no second of history yet");
    struct cfg_watchdog off = wd;
    off.enabled = 0;
    cr_assert_eq(watchdog_judge(&off, 30, p, 2, &v), 0);
    cr_assert_eq(watchdog_judge(&wd, 1, p, 2, &v), 1, "one second is enough");
}

Test(watchdog, the_first_failing_pool_decides)
{
    struct watchdog_pool p[3] = {
        {.weight_bp = 2000, .stable_bp = 10000, .requests = 500, .errors_5xx = 500},
        {.weight_bp = 4000, .stable_bp = 0, .requests = 500, .errors_5xx = 20},
        {.weight_bp = 4000, .stable_bp = 0, .requests = 500, .errors_5xx = 30},
    };
    struct watchdog_verdict v;
    cr_assert_eq(watchdog_judge(&wd, 30, p, 3, &v), 1);
    cr_assert_eq(v.pool, 1);
    cr_assert_float_eq(v.value, 4.0, 1e-9);
}

Test(watchdog, the_window_is_bounded_by_the_ring_and_the_history)
{
    cr_assert_eq(watchdog_seconds(30, 0, 64), 0);
    cr_assert_eq(watchdog_seconds(30, 10, 64), 10, "only ten samples so far");
    cr_assert_eq(watchdog_seconds(30, 30, 64), 30);
    cr_assert_eq(watchdog_seconds(30, 64, 64), 30);
    cr_assert_eq(watchdog_seconds(63, 64, 64), 63);
    cr_assert_eq(watchdog_seconds(64, 64, 64), 63, "at most capacity - 1");
    cr_assert_eq(watchdog_seconds(3600, 64, 64), 63);
}

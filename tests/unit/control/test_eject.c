/* test_eject.c - control/eject.c: passive outlier ejection, its backoff and its cap. */
#include <criterion/criterion.h>
#include <string.h>

#include "config/cfg.h"
#include "control/eject.h"

static const struct cfg_outlier od = {.enabled = 1,
                                      .consecutive_failures = 5,
                                      .base_ejection_ms = 30000,
                                      .max_ejection_ms = 300000,
                                      .max_ejection_percent = 50};

/* A pool of 4 with nothing ejected and the three others serving. */
static const struct eject_pool healthy4 = {.n = 4, .ejected = 0, .others_serving = 3};

static struct eject_decision judge(const struct cfg_outlier *o, struct eject_endpoint e,
                                   const struct eject_pool *pool, uint64_t now)
{
    struct eject_decision d;
    memset(&d, 0x5a, sizeof d);
    eject_judge(o, &e, pool, now, &d);
    return d;
}

Test(eject, the_threshold_of_consecutive_failures_ejects_for_the_base_time)
{
    struct eject_endpoint e = {.consecutive_failures = 4};
    cr_assert_eq(judge(&od, e, &healthy4, 1000).verdict, EJECT_KEEP, "one below the threshold");
    e.consecutive_failures = 5;
    struct eject_decision d = judge(&od, e, &healthy4, 1000);
    cr_assert_eq(d.verdict, EJECT_EJECT, "exactly at the threshold");
    cr_assert_eq(d.duration_ms, 30000);
    cr_assert_eq(d.until_ms, 31000);
    cr_assert(eject_failing(&od, 5));
    cr_assert_not(eject_failing(&od, 4));
}

Test(eject, disabled_or_without_configuration_nothing_is_ejected)
{
    struct eject_endpoint e = {.consecutive_failures = 1000};
    struct cfg_outlier off = od;
    off.enabled = 0;
    cr_assert_eq(judge(&off, e, &healthy4, 1000).verdict, EJECT_KEEP);
    cr_assert_eq(judge(NULL, e, &healthy4, 1000).verdict, EJECT_KEEP, "the route is gone");
    cr_assert_not(eject_failing(&off, 1000));
    cr_assert_not(eject_failing(NULL, 1000));
}

Test(eject, an_ejected_endpoint_returns_exactly_when_its_time_is_up)
{
    struct eject_endpoint e = {
        .ejected = 1, .ejected_until_ms = 31000, .ejections = 1, .consecutive_failures = 100};
    cr_assert_eq(judge(&od, e, NULL, 30999).verdict, EJECT_KEEP);
    cr_assert_eq(judge(&od, e, NULL, 31000).verdict, EJECT_RETURN);
    cr_assert_eq(judge(NULL, e, NULL, 31000).verdict, EJECT_RETURN,
                 "it returns even when its route's configuration is gone");
}

Test(eject, the_backoff_doubles_per_ejection_up_to_the_maximum)
{
    cr_assert_eq(eject_duration_ms(30000, 300000, 0), 30000);
    cr_assert_eq(eject_duration_ms(30000, 300000, 1), 60000);
    cr_assert_eq(eject_duration_ms(30000, 300000, 2), 120000);
    cr_assert_eq(eject_duration_ms(30000, 300000, 3), 240000);
    cr_assert_eq(eject_duration_ms(30000, 300000, 4), 300000, "480 s is capped");
    cr_assert_eq(eject_duration_ms(30000, 300000, 4000000000u), 300000, "no overflow");
    cr_assert_eq(eject_duration_ms(30000, 240000, 3), 240000, "exactly the maximum");
    cr_assert_eq(eject_duration_ms(30000, 10000, 0), 10000, "base above the maximum");
    struct eject_endpoint e = {.ejections = 2, .consecutive_failures = 5};
    struct eject_decision d = judge(&od, e, &healthy4, 5000);
    cr_assert_eq(d.verdict, EJECT_EJECT);
    cr_assert_eq(d.duration_ms, 120000);
    cr_assert_eq(d.until_ms, 125000);
}

Test(eject, the_cap_allows_strictly_below_max_percent)
{
    /* 50 % of 4 is 2: with 1 ejected one more may go, with 2 not */
    cr_assert(eject_allowed(4, 1, 2, 50));
    cr_assert_not(eject_allowed(4, 2, 1, 50));
    cr_assert(eject_allowed(2, 0, 1, 50));
    cr_assert_not(eject_allowed(2, 1, 1, 50));
    cr_assert_not(eject_allowed(3, 0, 2, 0), "0 %: never while others serve");
    cr_assert(eject_allowed(3, 2, 1, 100), "100 %: always");
    cr_assert(eject_allowed(1, 0, 0, 50), "a one-endpoint pool can lose its endpoint");
    struct eject_endpoint e = {.consecutive_failures = 9};
    struct eject_pool half = {.n = 4, .ejected = 2, .others_serving = 1};
    cr_assert_eq(judge(&od, e, &half, 1000).verdict, EJECT_KEEP, "the cap holds it");
}

Test(eject, the_cap_never_keeps_an_all_failing_pool_up)
{
    cr_assert(eject_allowed(2, 1, 0, 50));
    cr_assert(eject_allowed(3, 1, 0, 0));
    struct eject_endpoint e = {.consecutive_failures = 9};
    struct eject_pool failing = {.n = 4, .ejected = 3, .others_serving = 0};
    cr_assert_eq(judge(&od, e, &failing, 1000).verdict, EJECT_EJECT);
}

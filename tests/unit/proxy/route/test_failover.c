/* test_failover.c - the failover decisions: proxy/route.c route_retry_decide (what may be tried
 * again) and route_failover_pool (where, per request), control/health_state.c
 * hstate_eject_allowed (max_ejection_percent never keeps an all-failing pool up), and the
 * "retries" configuration keys (defaults, bounds, dump). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "control/health_state.h"
#include "proxy/route/route.h"

static struct route_retry_in base(enum route_fail f)
{
    return (struct route_retry_in){.fail = f, .tries = 1, .max_tries = 3, .elapsed_ms = 5,
                                   .budget_ms = 5000};
}

Test(failover, connect_failure_any_method)
{
    struct route_retry_in in = base(ROUTE_FAIL_CONNECT);
    cr_assert(route_retry_decide(&in), "a POST whose connect failed was never delivered");
    in.idempotent = 1;
    cr_assert(route_retry_decide(&in));
    in.body_sent = 1; /* cannot happen before a connect, but the body would be missing */
    cr_assert(!route_retry_decide(&in));
}

Test(failover, lost_connection_idempotent_only)
{
    struct route_retry_in in = base(ROUTE_FAIL_LOST);
    cr_assert(!route_retry_decide(&in), "a POST that was written may have been processed");
    in.idempotent = 1;
    cr_assert(route_retry_decide(&in));
    in.body_sent = 1; /* a PUT whose body left: the body is not kept */
    cr_assert(!route_retry_decide(&in));
}

Test(failover, unprocessed_any_method)
{
    struct route_retry_in in = base(ROUTE_FAIL_UNPROCESSED);
    cr_assert(route_retry_decide(&in));
    in.body_sent = 1; /* the caller put the body back; it says so by clearing body_sent */
    cr_assert(route_retry_decide(&in));
}

Test(failover, other_failures_never)
{
    struct route_retry_in in = base(ROUTE_FAIL_OTHER);
    in.idempotent = 1;
    cr_assert(!route_retry_decide(&in));
}

Test(failover, response_started_never)
{
    for (int f = ROUTE_FAIL_CONNECT; f <= ROUTE_FAIL_OTHER; f++) {
        struct route_retry_in in = base((enum route_fail)f);
        in.idempotent = 1;
        in.resp_started = 1;
        cr_assert(!route_retry_decide(&in), "fail %d", f);
    }
}

Test(failover, bounds)
{
    struct route_retry_in in = base(ROUTE_FAIL_CONNECT);
    in.tries = 2;
    cr_assert(route_retry_decide(&in));
    in.tries = 3; /* max_tries counts the first try */
    cr_assert(!route_retry_decide(&in));
    in.tries = 1;
    in.max_tries = 1; /* retries off */
    cr_assert(!route_retry_decide(&in));
    in.max_tries = 3;
    in.elapsed_ms = 4999;
    cr_assert(route_retry_decide(&in));
    in.elapsed_ms = 5000;
    cr_assert(!route_retry_decide(&in));
}

static const struct cfg_route two = {
    .name = "app",
    .path_prefix = "/",
    .pools = {{.name = "blue", .weight_bp = 10000}, {.name = "green", .weight_bp = 0}},
    .npools = 2,
};

static const struct cfg_route three = {
    .name = "app",
    .path_prefix = "/",
    .pools = {{.name = "a", .weight_bp = 2000}, {.name = "b", .weight_bp = 5000},
              {.name = "c", .weight_bp = 3000}},
    .npools = 3,
};

Test(failover, other_colour)
{
    const unsigned w[2] = {10000, 0};
    uint8_t can[CFG_MAX_POOLS] = {1, 1};
    /* blue has nothing left: green, even at weight 0 (the snapshot's fail-safe does the same) */
    cr_assert_eq(route_failover_pool(&two, w, 0, can, ROUTE_BY_WEIGHT), 1);
    cr_assert_eq(route_failover_pool(&two, w, 1, can, ROUTE_BY_STICKY), 0);
    cr_assert_eq(route_failover_pool(&two, NULL, 1, can, ROUTE_BY_FAILSAFE), 0);
    /* the other colour cannot serve either */
    can[1] = 0;
    cr_assert_eq(route_failover_pool(&two, w, 0, can, ROUTE_BY_WEIGHT), -1);
    /* a trusted override pins its pool */
    can[1] = 1;
    cr_assert_eq(route_failover_pool(&two, w, 0, can, ROUTE_BY_OVERRIDE), -1);
}

Test(failover, highest_weight_first)
{
    uint8_t can[CFG_MAX_POOLS] = {1, 1, 1};
    cr_assert_eq(route_failover_pool(&three, NULL, 0, can, ROUTE_BY_WEIGHT), 1);
    cr_assert_eq(route_failover_pool(&three, NULL, 1, can, ROUTE_BY_WEIGHT), 2);
    const unsigned w[3] = {5000, 0, 5000}; /* a tie: the first */
    cr_assert_eq(route_failover_pool(&three, w, 1, can, ROUTE_BY_WEIGHT), 0);
    can[0] = 0;
    cr_assert_eq(route_failover_pool(&three, w, 1, can, ROUTE_BY_WEIGHT), 2);
}

Test(failover, ejection_cap)
{
    /* below the cap */
    cr_assert(hstate_eject_allowed(2, 0, 1, 50));
    cr_assert(hstate_eject_allowed(4, 1, 2, 50));
    /* at the cap while another endpoint still serves: kept */
    cr_assert(!hstate_eject_allowed(2, 1, 1, 50));
    cr_assert(!hstate_eject_allowed(4, 2, 1, 50));
    cr_assert(!hstate_eject_allowed(3, 0, 2, 0));
    /* every other endpoint ejected, down or failing: the pool must be able to count as down */
    cr_assert(hstate_eject_allowed(2, 1, 0, 50));
    cr_assert(hstate_eject_allowed(1, 0, 0, 50));
    cr_assert(hstate_eject_allowed(3, 1, 0, 0));
}

#define DOC(extra)                                                                                 \
    "{\"listeners\":[{\"address\":\"127.0.0.1:8080\"}],\"routes\":[{\"name\":\"r\","               \
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},"                                    \
    "\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}},\"weights\":{\"blue\":50,\"green\":50}}"      \
    "]" extra "}"

Test(failover, config_defaults_bounds_dump)
{
    struct cfg *cfg = NULL;
    struct cfg_errors errs;
    const char *doc = DOC("");
    cr_assert_eq(cfg_parse(doc, strlen(doc), &cfg, &errs), 0);
    cr_assert_eq(cfg->retries.max_tries, 3);
    cr_assert_eq(cfg->retries.budget_ms, 5000);
    cfg_free(cfg);

    doc = DOC(",\"retries\":{\"max_tries\":1,\"budget_ms\":250}");
    cr_assert_eq(cfg_parse(doc, strlen(doc), &cfg, &errs), 0);
    cr_assert_eq(cfg->retries.max_tries, 1);
    cr_assert_eq(cfg->retries.budget_ms, 250);
    char *dump = cfg_dump(cfg);
    cr_assert(dump && strstr(dump, "\"retries\""), "%s", dump ? dump : "(null)");
    struct cfg *again = NULL;
    cr_assert_eq(cfg_parse(dump, strlen(dump), &again, &errs), 0);
    cr_assert_eq(again->retries.max_tries, 1);
    cr_assert_eq(again->retries.budget_ms, 250);
    cfg_free(again);
    free(dump);
    cfg_free(cfg);

    doc = DOC(",\"retries\":{\"max_tries\":0,\"budget_ms\":0,\"tries\":2}");
    cr_assert_neq(cfg_parse(doc, strlen(doc), &cfg, &errs), 0);
    cr_assert_eq(errs.n, 3);
    int seen = 0;
    for (size_t i = 0; i < errs.n; i++)
        seen |= (!strcmp(errs.v[i].path, "retries.max_tries") ? 1 : 0) |
                (!strcmp(errs.v[i].path, "retries.budget_ms") ? 2 : 0) |
                (!strcmp(errs.v[i].path, "retries.tries") ? 4 : 0);
    cr_assert_eq(seen, 7);
    cfg_errors_dispose(&errs);
    doc = DOC(",\"retries\":{\"max_tries\":11}");
    cr_assert_neq(cfg_parse(doc, strlen(doc), &cfg, &errs), 0);
    cfg_errors_dispose(&errs);
}

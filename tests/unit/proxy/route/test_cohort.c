/* test_cohort.c - proxy/route/route.c: the pool decision with a route's country cohort
 * (route_in_cohort, route_pick_pool): clients from the cohort's countries get the cohort's
 * weights, everyone else (an unknown country included) the route's; sticky clients of the cohort
 * only move towards the pool whose weight rises; the cohort's round robin is its own. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proxy/route/route.h"

static struct cfg_route coh_route = {
    .name = "r",
    .path_prefix = "/",
    .pools = {{.name = "blue", .weight_bp = 10000}, {.name = "green", .weight_bp = 0}},
    .npools = 2,
};

static struct route_cohort cohort_of(unsigned green_bp)
{
    struct route_cohort c = {.ncountries = 2, .countries = {"SG", "MY"}};
    c.weights_bp[0] = 10000 - green_bp;
    c.weights_bp[1] = green_bp;
    return c;
}

Test(cohort, membership)
{
    struct route_cohort c = cohort_of(5000);
    struct route_pick_in in = {.route = &coh_route, .cohort = &c};
    static const char *in_[] = {"SG", "MY"};
    static const char *out[] = {"US", "sg", "S", "SGX", ""};
    for (size_t i = 0; i < CUT_ARRAY_LEN(in_); i++) {
        in.country = in_[i];
        cr_assert_eq(route_in_cohort(&in), 1, "%s", in_[i]);
    }
    for (size_t i = 0; i < CUT_ARRAY_LEN(out); i++) {
        in.country = out[i];
        cr_assert_eq(route_in_cohort(&in), 0, "%s", out[i]);
    }
    in.country = NULL; /* unknown: never in a cohort */
    cr_assert_eq(route_in_cohort(&in), 0);
    in.country = "SG";
    in.cohort = NULL; /* no cohort */
    cr_assert_eq(route_in_cohort(&in), 0);
    struct route_cohort none = {0};
    in.cohort = &none;
    cr_assert_eq(route_in_cohort(&in), 0);
}

/* Round robin: in-cohort clients get the cohort's split, others the route's (all blue), with
 * separate round-robin states. */
Test(cohort, weights_for_members_only)
{
    unsigned w[2] = {10000, 0};
    struct route_cohort c = cohort_of(5000);
    struct balance_swrr route_st, coh_st;
    balance_swrr_init(&route_st);
    balance_swrr_init(&coh_st);
    struct route_pick_in in = {
        .route = &coh_route, .weights_bp = w, .cohort = &c, .cohort_swrr = &coh_st};
    enum route_reason why;
    static const char *who[] = {"SG", "US", "MY", "", NULL, "FR"};
    unsigned green[CUT_ARRAY_LEN(who)] = {0};
    for (int i = 0; i < 400; i++) {
        for (size_t k = 0; k < CUT_ARRAY_LEN(who); k++) {
            in.country = who[k];
            int p = route_pick_pool(&in, &route_st, &why);
            cr_assert(p == 0 || p == 1);
            cr_assert_eq(why, ROUTE_BY_WEIGHT);
            green[k] += p == 1;
        }
    }
    cr_assert_eq(green[0] + green[2], 400, "the cohort's round robin: exactly half of 800");
    cr_assert_eq(green[1], 0, "US: the route's weights");
    cr_assert_eq(green[3], 0, "unknown country: never in the cohort");
    cr_assert_eq(green[4], 0);
    cr_assert_eq(green[5], 0);
    /* the route's round robin was never moved by cohort picks */
    cr_assert_eq(route_st.current[1], 0);
}

/* An override still wins over the cohort. */
Test(cohort, override_first)
{
    unsigned w[2] = {10000, 0};
    struct route_cohort c = cohort_of(10000);
    struct balance_swrr st;
    balance_swrr_init(&st);
    struct route_pick_in in = {.route = &coh_route, .weights_bp = w, .cohort = &c,
                               .country = "SG", .override_trusted = 1,
                               .override_value = CUT_SLICE_LIT("blue")};
    enum route_reason why;
    cr_assert_eq(route_pick_pool(&in, &st, &why), 0);
    cr_assert_eq(why, ROUTE_BY_OVERRIDE);
    in.override_trusted = 0;
    cr_assert_eq(route_pick_pool(&in, &st, &why), 1);
}

/* Sticky: as the cohort's green weight rises, a cohort client only ever moves blue -> green;
 * a client outside the cohort stays on the route's pool. */
Test(cohort, sticky_only_moves_towards_green)
{
    unsigned w[2] = {10000, 0};
    static const unsigned steps[] = {0, 1000, 2500, 5000, 7500, 9900, 10000};
    enum { N = 2000 };
    static int last[N];
    struct balance_swrr st;
    balance_swrr_init(&st);
    enum route_reason why;
    for (size_t s = 0; s < CUT_ARRAY_LEN(steps); s++) {
        struct route_cohort c = cohort_of(steps[s]);
        unsigned greens = 0;
        for (int i = 0; i < N; i++) {
            char key[32];
            int len = snprintf(key, sizeof key, "device-%d", i);
            struct route_pick_in in = {.route = &coh_route, .weights_bp = w, .cohort = &c,
                                       .country = i % 2 ? "SG" : "US",
                                       .sticky_key = {key, (size_t)len}};
            int p = route_pick_pool(&in, &st, &why);
            cr_assert_eq(why, ROUTE_BY_STICKY);
            if (i % 2 == 0) {
                cr_assert_eq(p, 0, "a US client stays blue");
                continue;
            }
            if (s > 0)
                cr_assert(p >= last[i], "device-%d flipped back at step %zu", i, s);
            /* the same bucket as without a cohort: the route's own sticky choice at these
             * weights would be the same pool */
            struct route_pick_in plain = {.route = &coh_route, .weights_bp = c.weights_bp,
                                          .sticky_key = {key, (size_t)len}};
            cr_assert_eq(route_pick_pool(&plain, &st, &why), p);
            last[i] = p;
            greens += p == 1;
        }
        double share = greens / (double)(N / 2);
        cr_assert(share > steps[s] / 10000.0 - 0.06 && share < steps[s] / 10000.0 + 0.06,
                  "step %u: %.3f green", steps[s], share);
    }
}

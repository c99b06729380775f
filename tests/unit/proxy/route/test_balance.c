/* test_balance.c - proxy/balance.c: SWRR sequences and proportions, sticky buckets and their
 * monotonicity across a ramp, endpoint choice. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proxy/route/balance.h"

static void swrr_run(struct balance_swrr *st, const unsigned *w, unsigned n, int picks, int *seq)
{
    for (int i = 0; i < picks; i++)
        seq[i] = balance_swrr_next(st, w, n);
}

Test(balance, swrr_nginx_sequence_5_1_1)
{
    struct balance_swrr st;
    const unsigned w[3] = {5, 1, 1};
    const int want[7] = {0, 0, 1, 0, 2, 0, 0};
    int got[14];

    balance_swrr_init(&st);
    swrr_run(&st, w, 3, 14, got);
    for (int i = 0; i < 14; i++)
        cr_assert_eq(got[i], want[i % 7], "pick %d: got %d want %d", i, got[i], want[i % 7]);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(st.current[i], 0, "state returns to zero after a full window");
}

Test(balance, swrr_equal_weights_alternate)
{
    struct balance_swrr st;
    const unsigned w[2] = {5000, 5000};

    balance_swrr_init(&st);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(balance_swrr_next(&st, w, 2), i % 2);
}

Test(balance, swrr_90_10_exact_and_interleaved)
{
    struct balance_swrr st;
    const unsigned w[2] = {9000, 1000};
    int count[2] = {0, 0}, run = 0, longest_run = 0;

    balance_swrr_init(&st);
    for (int i = 0; i < 10000; i++) {
        int p = balance_swrr_next(&st, w, 2);
        cr_assert(p == 0 || p == 1);
        count[p]++;
        run = p == 0 ? run + 1 : 0;
        if (run > longest_run)
            longest_run = run;
        if (i % 10 == 9) /* exact over every window of sum/gcd = 10 picks */
            cr_assert_eq(count[1], (i + 1) / 10);
    }
    cr_assert_eq(count[0], 9000);
    cr_assert_eq(count[1], 1000);
    cr_assert_leq(longest_run, 9, "green is interleaved, not bunched");
}

Test(balance, swrr_odd_split_exact)
{
    struct balance_swrr st;
    const unsigned w[2] = {9999, 1};
    int count[2] = {0, 0};

    balance_swrr_init(&st);
    for (int i = 0; i < 20000; i++)
        count[balance_swrr_next(&st, w, 2)]++;
    cr_assert_eq(count[0], 19998);
    cr_assert_eq(count[1], 2);
}

Test(balance, swrr_zero_and_full)
{
    struct balance_swrr st;
    const unsigned w0[2] = {10000, 0};
    const unsigned w1[2] = {0, 10000};
    const unsigned wz[2] = {0, 0};

    balance_swrr_init(&st);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(balance_swrr_next(&st, w0, 2), 0);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(balance_swrr_next(&st, w1, 2), 1);
    cr_assert_eq(balance_swrr_next(&st, wz, 2), -1);
    cr_assert_eq(balance_swrr_next(&st, wz, 0), -1);
    cr_assert_eq(balance_swrr_next(&st, w0, 1), 0);
}

Test(balance, swrr_weight_changes_stay_sane)
{
    struct balance_swrr st;
    unsigned w[3];
    unsigned seed = 12345;

    balance_swrr_init(&st);
    for (int round = 0; round < 2000; round++) {
        int64_t total = 0;
        for (int i = 0; i < 3; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) % 4;
            w[i] = r == 0 ? 0 : (seed >> 8) % 10001;
            total += w[i];
        }
        for (int k = 0; k < 7; k++) {
            int p = balance_swrr_next(&st, w, 3);
            if (total == 0) {
                cr_assert_eq(p, -1);
                continue;
            }
            cr_assert(p >= 0 && p < 3);
            cr_assert_neq(w[p], 0u, "a weight-0 pool is never chosen");
            for (int i = 0; i < 3; i++)
                cr_assert(st.current[i] <= 3 * 10000 * 3 && st.current[i] >= -3 * 10000 * 3,
                          "current[%d] = %lld", i, (long long)st.current[i]);
        }
    }
    /* After the churn, a stable vector is exact again within two windows. */
    const unsigned fixed[3] = {2000, 3000, 5000};
    int count[3] = {0, 0, 0};
    for (int i = 0; i < 10; i++)
        balance_swrr_next(&st, fixed, 3);
    for (int i = 0; i < 1000; i++)
        count[balance_swrr_next(&st, fixed, 3)]++;
    cr_assert(count[0] >= 199 && count[0] <= 201);
    cr_assert(count[1] >= 299 && count[1] <= 301);
    cr_assert(count[2] >= 499 && count[2] <= 501);
}

Test(balance, swrr_weight_back_from_zero_gets_no_burst)
{
    struct balance_swrr st;
    const unsigned a[2] = {5000, 5000}, b[2] = {10000, 0};
    int green = 0;

    balance_swrr_init(&st);
    /* Leave green with a positive current value, then drop it to 0 and bring it back. */
    cr_assert_eq(balance_swrr_next(&st, a, 2), 0);
    cr_assert_eq(balance_swrr_next(&st, b, 2), 0);
    for (int i = 0; i < 10; i++)
        green += balance_swrr_next(&st, a, 2);
    cr_assert_eq(green, 5);
}

Test(balance, swrr_garbage_state_recovers)
{
    struct balance_swrr st;
    const unsigned w[2] = {9000, 1000};
    int count[2] = {0, 0};

    for (int i = 0; i < BALANCE_MAX_POOLS; i++)
        st.current[i] = (int64_t)1 << 60;
    for (int i = 0; i < 100; i++)
        count[balance_swrr_next(&st, w, 2)]++;
    cr_assert_eq(count[1], 10);
}

Test(balance, sticky_bucket_deterministic_and_in_range)
{
    const char *k = "device-4711";
    uint32_t b = balance_sticky_bucket(k, strlen(k));

    cr_assert_lt(b, BALANCE_BUCKETS);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(balance_sticky_bucket(k, strlen(k)), b);
    /* Pinned values: a change here moves clients between pools on upgrade. */
    cr_assert_eq(balance_sticky_bucket("", 0), 9367u);
    cr_assert_eq(balance_sticky_bucket("device-4711", 11), 2695u);
    cr_assert_eq(balance_sticky_bucket("10.1.2.3", 8), 9618u);
    /* Only the given length counts. */
    cr_assert_eq(balance_sticky_bucket("10.1.2.3xyz", 8), 9618u);
}

Test(balance, sticky_bucket_uniform)
{
    enum { N = 100000 };
    int decile[10] = {0};
    char key[32];

    for (int i = 0; i < N; i++) {
        int len = snprintf(key, sizeof(key), "user-%d", i);
        uint32_t b = balance_sticky_bucket(key, (size_t)len);
        cr_assert_lt(b, BALANCE_BUCKETS);
        decile[b / 1000]++;
    }
    for (int d = 0; d < 10; d++)
        cr_assert(decile[d] >= N / 10 - N * 15 / 1000 && decile[d] <= N / 10 + N * 15 / 1000,
                  "decile %d holds %d", d, decile[d]);
}

Test(balance, sticky_pool_partition)
{
    const unsigned w[3] = {2000, 0, 8000};

    cr_assert_eq(balance_sticky_pool(0, w, 3), 0);
    cr_assert_eq(balance_sticky_pool(1999, w, 3), 0);
    cr_assert_eq(balance_sticky_pool(2000, w, 3), 2);
    cr_assert_eq(balance_sticky_pool(9999, w, 3), 2);
    for (uint32_t b = 0; b < BALANCE_BUCKETS; b++)
        cr_assert_neq(balance_sticky_pool(b, w, 3), 1);

    const unsigned zero[2] = {0, 0};
    cr_assert_eq(balance_sticky_pool(5000, zero, 2), -1);
    const unsigned full[2] = {0, 10000};
    cr_assert_eq(balance_sticky_pool(0, full, 2), 1);
    cr_assert_eq(balance_sticky_pool(9999, full, 2), 1);
}

Test(balance, sticky_monotonic_across_ramp)
{
    enum { KEYS = 10000 };
    static const unsigned ramp[] = {0, 1, 5, 10, 25, 50, 75, 99, 100};
    static uint32_t bucket[KEYS];
    static int was_green[KEYS];
    char key[40];

    for (int i = 0; i < KEYS; i++) {
        int len = snprintf(key, sizeof(key), "client-%d-%d", i, i * 7919);
        bucket[i] = balance_sticky_bucket(key, (size_t)len);
        was_green[i] = 0;
    }
    for (size_t s = 0; s < sizeof(ramp) / sizeof(ramp[0]); s++) {
        unsigned w[2] = {10000 - ramp[s] * 100, ramp[s] * 100};
        int green = 0;
        for (int i = 0; i < KEYS; i++) {
            int p = balance_sticky_pool(bucket[i], w, 2);
            cr_assert(p == 0 || p == 1);
            if (was_green[i])
                cr_assert_eq(p, 1, "key %d went green -> blue at %u%%", i, ramp[s]);
            was_green[i] = p == 1;
            green += p == 1;
        }
        if (ramp[s] == 0)
            cr_assert_eq(green, 0);
        if (ramp[s] == 100)
            cr_assert_eq(green, KEYS);
        int want = (int)ramp[s] * KEYS / 100;
        cr_assert(green >= want - KEYS * 2 / 100 && green <= want + KEYS * 2 / 100,
                  "at %u%% green has %d of %d", ramp[s], green, KEYS);
    }
}

Test(balance, pick_round_robin_skips_unusable)
{
    const unsigned out[4] = {0, 0, 0, 0};
    const uint8_t usable[4] = {1, 0, 1, 1};
    const int want[] = {0, 2, 3, 0, 2, 3};
    unsigned cursor = 0;

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_eq(balance_pick_endpoint(BALANCE_ROUND_ROBIN, out, usable, 4, &cursor), want[i]);
    cursor = 1; /* starts at 1, unusable: next usable is 2 */
    cr_assert_eq(balance_pick_endpoint(BALANCE_ROUND_ROBIN, out, usable, 4, &cursor), 2);
    cr_assert_eq(cursor, 3u);
    cursor = 4000000001u; /* any cursor value is reduced modulo n */
    cr_assert_eq(balance_pick_endpoint(BALANCE_ROUND_ROBIN, out, usable, 4, &cursor), 2);
}

Test(balance, pick_least_outstanding_with_rotation)
{
    unsigned out[3] = {0, 0, 0};
    const uint8_t usable[3] = {1, 1, 1};
    unsigned cursor = 0;

    /* Equal load: endpoints in turn. */
    for (int i = 0; i < 6; i++)
        cr_assert_eq(balance_pick_endpoint(BALANCE_LEAST_OUTSTANDING, out, usable, 3, &cursor),
                     i % 3);
    /* The caller counts the requests in flight: the least loaded wins. */
    out[0] = 2, out[1] = 1, out[2] = 1;
    cursor = 0;
    cr_assert_eq(balance_pick_endpoint(BALANCE_LEAST_OUTSTANDING, out, usable, 3, &cursor), 1);
    cr_assert_eq(cursor, 2u);
    cr_assert_eq(balance_pick_endpoint(BALANCE_LEAST_OUTSTANDING, out, usable, 3, &cursor), 2);
    cr_assert_eq(cursor, 0u);
    cr_assert_eq(balance_pick_endpoint(BALANCE_LEAST_OUTSTANDING, out, usable, 3, &cursor), 1);
    /* Simulate in-flight accounting: picks spread until loads are even. */
    unsigned load[3] = {3, 0, 1};
    int seq[6];
    cursor = 0;
    for (int i = 0; i < 6; i++) {
        seq[i] = balance_pick_endpoint(BALANCE_LEAST_OUTSTANDING, load, usable, 3, &cursor);
        load[seq[i]]++;
    }
    const int want[6] = {1, 2, 1, 2, 1, 2};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(seq[i], want[i], "pick %d: got %d want %d", i, seq[i], want[i]);
}

Test(balance, pick_least_outstanding_skips_unusable)
{
    const unsigned out[3] = {0, 5, 9};
    const uint8_t usable[3] = {0, 1, 1};
    unsigned cursor = 0;

    cr_assert_eq(balance_pick_endpoint(BALANCE_LEAST_OUTSTANDING, out, usable, 3, &cursor), 1);
    cr_assert_eq(balance_pick_endpoint(BALANCE_LEAST_OUTSTANDING, out, usable, 3, &cursor), 1);
}

Test(balance, pick_none_usable)
{
    const unsigned out[2] = {0, 0};
    const uint8_t usable[2] = {0, 0};
    unsigned cursor = 1;

    cr_assert_eq(balance_pick_endpoint(BALANCE_LEAST_OUTSTANDING, out, usable, 2, &cursor), -1);
    cr_assert_eq(balance_pick_endpoint(BALANCE_ROUND_ROBIN, out, usable, 2, &cursor), -1);
    cr_assert_eq(cursor, 1u, "cursor unchanged when nothing is chosen");
    cr_assert_eq(balance_pick_endpoint(BALANCE_ROUND_ROBIN, out, usable, 0, &cursor), -1);
}

Test(balance, admit_opens_with_room_or_an_idle_connection)
{
    cr_assert_eq(balance_admit(0, 5000, 0, 0, 10), BALANCE_ADMIT_OPEN, "no limit");
    cr_assert_eq(balance_admit(4, 3, 0, 0, 10), BALANCE_ADMIT_OPEN, "under the limit");
    cr_assert_eq(balance_admit(4, 4, 1, 0, 10), BALANCE_ADMIT_OPEN, "an idle one to reuse");
}

Test(balance, admit_queues_at_the_limit_until_the_queue_is_full)
{
    cr_assert_eq(balance_admit(4, 4, 0, 0, 10), BALANCE_ADMIT_QUEUE);
    cr_assert_eq(balance_admit(4, 4, 0, 9, 10), BALANCE_ADMIT_QUEUE);
    cr_assert_eq(balance_admit(4, 4, 0, 10, 10), BALANCE_ADMIT_REFUSE);
    cr_assert_eq(balance_admit(4, 5, 0, 0, 0), BALANCE_ADMIT_REFUSE, "no queue: refused at once");
}

Test(balance, admit_never_overtakes_a_waiting_request)
{
    /* a connection just freed, the waiting request not dispatched yet: the newcomer queues */
    cr_assert_eq(balance_admit(4, 3, 0, 1, 10), BALANCE_ADMIT_QUEUE);
    cr_assert_eq(balance_admit(4, 4, 1, 2, 10), BALANCE_ADMIT_QUEUE);
    cr_assert_eq(balance_admit(0, 1, 0, 1, 10), BALANCE_ADMIT_QUEUE);
}

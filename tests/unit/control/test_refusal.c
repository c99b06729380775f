/* test_refusal.c - control/refusal.c: per-actor token buckets for refused control requests. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "control/refusal.h"

struct sums {
    size_t n;
    uint64_t counts[REFUSAL_MAX_ACTORS * 2];
    char users[REFUSAL_MAX_ACTORS * 2][32];
};

static void on_sum(void *ctx, const struct refusal_detail *d, uint64_t count)
{
    struct sums *s = ctx;
    cr_assert_lt(s->n, REFUSAL_MAX_ACTORS * 2);
    s->counts[s->n] = count;
    snprintf(s->users[s->n], sizeof s->users[0], "%.31s", d->user);
    s->n++;
}

static struct refusal_detail actor(const char *user, const char *addr, const char *code)
{
    struct refusal_detail d;
    refusal_detail_set(&d, 1000, user, addr, "viewer", "set-weights", code, "no");
    return d;
}

Test(refusal, a_burst_is_recorded_in_full_then_the_rest_is_counted)
{
    static struct refusal_limiter l;
    struct sums s = {0};
    struct refusal_detail d = actor("alice", NULL, "denied");
    for (int i = 0; i < REFUSAL_BURST; i++)
        cr_assert_eq(refusal_admit(&l, &d, 1000, on_sum, &s), 1, "refusal %d of the burst", i);
    for (int i = 0; i < 500; i++)
        cr_assert_eq(refusal_admit(&l, &d, 1000, on_sum, &s), 0);
    cr_assert_eq(s.n, 0, "nothing summarised yet");
    refusal_flush(&l, 1000 + REFUSAL_WINDOW_MS - 1, 0, on_sum, &s);
    cr_assert_eq(s.n, 0, "a summary waits a window");
    refusal_flush(&l, 1000 + REFUSAL_WINDOW_MS, 0, on_sum, &s);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.counts[0], 500, "every refusal is counted");
}

Test(refusal, the_rate_refills_and_a_full_record_comes_after_its_summary)
{
    static struct refusal_limiter l;
    struct sums s = {0};
    struct refusal_detail d = actor("alice", NULL, "denied");
    for (int i = 0; i < REFUSAL_BURST; i++)
        refusal_admit(&l, &d, 0, on_sum, &s);
    cr_assert_eq(refusal_admit(&l, &d, 0, on_sum, &s), 0);
    cr_assert_eq(refusal_admit(&l, &d, 10, on_sum, &s), 0);
    /* one token every 1000 / REFUSAL_RATE ms */
    cr_assert_eq(refusal_admit(&l, &d, 1000 / REFUSAL_RATE, on_sum, &s), 1);
    cr_assert_eq(s.n, 1, "the counted ones are summarised before the next full record");
    cr_assert_eq(s.counts[0], 2);
    cr_assert_eq(refusal_admit(&l, &d, 1000 / REFUSAL_RATE, on_sum, &s), 0);
}

Test(refusal, a_flood_writes_a_bounded_number_of_records)
{
    static struct refusal_limiter l;
    struct sums s = {0};
    struct refusal_detail d = actor("mallory", "10.1.1.1:4000", "invalid_argument");
    uint64_t full = 0, total = 0;
    for (uint64_t t = 0; t < 10000; t++) { /* 10 s, ten refusals a millisecond */
        for (int k = 0; k < 10; k++) {
            full += (uint64_t)refusal_admit(&l, &d, t, on_sum, &s);
            total++;
        }
        refusal_flush(&l, t, 0, on_sum, &s);
    }
    refusal_flush(&l, 10000, 1, on_sum, &s);
    uint64_t counted = 0;
    for (size_t i = 0; i < s.n; i++)
        counted += s.counts[i];
    cr_assert_eq(full + counted, total, "every refusal is recorded or counted");
    cr_assert_leq(full, REFUSAL_BURST + 10 * REFUSAL_RATE + 1, "full records: %llu",
                  (unsigned long long)full);
    cr_assert_leq(s.n, 10 * REFUSAL_RATE + 11, "summaries: %zu", s.n);
}

Test(refusal, a_quiet_actor_is_forgotten)
{
    static struct refusal_limiter l;
    struct sums s = {0};
    struct refusal_detail d = actor("alice", NULL, "denied");
    refusal_admit(&l, &d, 0, on_sum, &s);
    refusal_flush(&l, 10, 0, on_sum, &s);
    cr_assert_eq(l.n, 1, "its bucket is not full yet");
    refusal_flush(&l, 10000, 0, on_sum, &s);
    cr_assert_eq(l.n, 0);
    cr_assert_eq(s.n, 0, "a lone refusal has no summary");
}

Test(refusal, actors_are_kept_apart_but_ports_and_codes_are_not)
{
    static struct refusal_limiter l;
    struct sums s = {0};
    struct refusal_detail a1 = actor("CN=x", "10.0.0.1:5000", "denied");
    struct refusal_detail a2 = actor("CN=x", "10.0.0.1:5001", "invalid_argument");
    struct refusal_detail b = actor("CN=x", "10.0.0.2:5000", "denied");
    struct refusal_detail v6 = actor("CN=x", "[::1]:5000", "denied");
    struct refusal_detail v6b = actor("CN=x", "[::1]:6000", "denied");
    for (int i = 0; i < REFUSAL_BURST; i++)
        cr_assert_eq(refusal_admit(&l, &a1, 0, on_sum, &s), 1);
    cr_assert_eq(refusal_admit(&l, &a2, 0, on_sum, &s), 0, "another port and code, one actor");
    cr_assert_eq(refusal_admit(&l, &b, 0, on_sum, &s), 1, "another host");
    for (int i = 0; i < REFUSAL_BURST; i++)
        cr_assert_eq(refusal_admit(&l, &v6, 0, on_sum, &s), 1);
    cr_assert_eq(refusal_admit(&l, &v6b, 0, on_sum, &s), 0);
    cr_assert_eq(l.n, 3);
}

Test(refusal, a_full_table_gives_way_to_newcomers_summarising_first)
{
    static struct refusal_limiter l;
    struct sums s = {0};
    char name[32];
    for (int i = 0; i < REFUSAL_MAX_ACTORS; i++) {
        snprintf(name, sizeof name, "u%d", i);
        struct refusal_detail d = actor(name, NULL, "denied");
        for (int k = 0; k <= REFUSAL_BURST; k++)
            refusal_admit(&l, &d, 0, on_sum, &s);
    }
    cr_assert_eq(l.n, REFUSAL_MAX_ACTORS);
    cr_assert_eq(s.n, 0);
    struct refusal_detail n = actor("newcomer", NULL, "denied");
    cr_assert_eq(refusal_admit(&l, &n, 0, on_sum, &s), 1);
    cr_assert_eq(l.n, REFUSAL_MAX_ACTORS);
    cr_assert_eq(s.n, 1, "the one that gave way had its count written");
    cr_assert_eq(s.counts[0], 1);
    refusal_flush(&l, 0, 1, on_sum, &s); /* stop: everything pending */
    cr_assert_eq(s.n, REFUSAL_MAX_ACTORS, "the other counted ones");
    cr_assert_eq(l.n, 0);
}

/* Unit tests for control/counters.c. */
#include <criterion/criterion.h>
#include <stdatomic.h>

#include "control/counters.h"

Test(counters, slots_are_kept_by_name_and_summed_over_workers)
{
    struct counters *k = counters_new(3);
    cr_assert_not_null(k);
    struct snap_counter_slot *s = counters_slots(k, "app", "green");
    cr_assert_not_null(s);
    cr_assert_eq((uintptr_t)s % 64, 0, "slots are cache-line aligned");
    cr_assert_eq(counters_slots(k, "app", "green"), s, "the same slots for the same name");
    cr_assert_neq(counters_slots(k, "app", "blue"), s);
    cr_assert_neq(counters_slots(k, "other", "green"), s);
    for (unsigned w = 0; w < 3; w++) {
        atomic_store(&s[w].requests, 10 * (w + 1));
        atomic_store(&s[w].responses_5xx, w);
        atomic_store(&s[w].responses_2xx, 10 * (w + 1) - w);
        atomic_store(&s[w].lat[2], 1);
        atomic_store(&s[w].lat[SNAP_LAT_BUCKETS], 2);
        atomic_store(&s[w].lat_sum_us, 100);
        atomic_store(&s[w].upstream_errors, 1);
    }
    struct counters_sum sum;
    counters_sum(k, "app", "green", &sum);
    cr_assert_eq(sum.requests, 60);
    cr_assert_eq(sum.cls[4], 3);
    cr_assert_eq(sum.cls[1], 57);
    cr_assert_eq(sum.lat[2], 3);
    cr_assert_eq(sum.lat[SNAP_LAT_BUCKETS], 6);
    cr_assert_eq(sum.lat_sum_us, 300);
    cr_assert_eq(sum.upstream_errors, 3);
    counters_sum(k, "app", "nowhere", &sum);
    cr_assert_eq(sum.requests, 0, "a name never counted sums to zero");
    unsigned n = 0;
    for (const struct counters_entry *e = counters_first(k); e; e = e->next)
        n++;
    cr_assert_eq(n, 3);
    counters_free(k);
}

Test(counters, ops_by_result_bounded)
{
    struct counters *k = counters_new(0);
    counters_count_op(k, "rollback", 1);
    counters_count_op(k, "rollback", 1);
    counters_count_op(k, "rollback", 0);
    counters_count_op(k, "status", 1);
    unsigned n;
    const struct counters_op *ops = counters_ops(k, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(ops[0].op, "rollback");
    cr_assert_eq(ops[0].ok, 2);
    cr_assert_eq(ops[0].refused, 1);
    cr_assert_str_eq(ops[1].op, "status");
    static char names[COUNTERS_MAX_OPS + 8][16];
    for (unsigned i = 0; i < COUNTERS_MAX_OPS + 8; i++) {
        snprintf(names[i], sizeof names[i], "op%u", i);
        counters_count_op(k, names[i], 1);
    }
    ops = counters_ops(k, &n);
    cr_assert_eq(n, COUNTERS_MAX_OPS, "bounded");
    counters_free(k);
}

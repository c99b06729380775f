/* test_connslots.c - control/connslots.c: which connection gives way when the table is full
 * (class first, then the idlest, never a pinned one), and the per-second event budget. */
#include <criterion/criterion.h>

#include "control/connslots.h"

/* clang-format off */
#define E(c, t) {CONNSLOTS_##c, (t), 0}
#define ES(c, t, serial) {CONNSLOTS_##c, (t), (serial)}
/* clang-format on */

Test(connslots, room_means_nobody_is_evicted)
{
    struct connslots_entry e[] = {E(WAITING, 5), E(WAITING, 1)};
    cr_assert_eq(connslots_choose(e, 0, 16), CONNSLOTS_ROOM);
    cr_assert_eq(connslots_choose(e, 2, 3), CONNSLOTS_ROOM);
    cr_assert_eq(connslots_choose(NULL, 0, 1), CONNSLOTS_ROOM);
}

Test(connslots, the_idlest_waiting_connection_gives_way)
{
    struct connslots_entry e[] = {E(WAITING, 300), E(WAITING, 100), E(WAITING, 200)};
    cr_assert_eq(connslots_choose(e, 3, 3), 1);
    cr_assert_eq(connslots_choose(e, 3, 2), 1, "over the limit (a reload lowered it): same pick");
    /* a burst accepted in one millisecond: the oldest accept goes first, wherever it sits */
    struct connslots_entry tie[] = {ES(WAITING, 7, 12), ES(WAITING, 7, 10), ES(WAITING, 7, 11),
                                    ES(WAITING, 9, 1)};
    cr_assert_eq(connslots_choose(tie, 4, 4), 1, "a tie in idleness goes to the oldest accept");
    struct connslots_entry same[] = {E(WAITING, 7), E(WAITING, 7)};
    cr_assert_eq(connslots_choose(same, 2, 2), 0, "a full tie: the lowest index");
}

Test(connslots, class_comes_before_idleness)
{
    /* a finished (lingering, or peer gone) connection goes before any waiting one, however
     * recent; a waiting one before one whose reply is still being written */
    struct connslots_entry e[] = {E(WRITING, 1), E(WAITING, 50), E(DONE, 900), E(WAITING, 40)};
    cr_assert_eq(connslots_choose(e, 4, 4), 2);
    struct connslots_entry w[] = {E(WRITING, 1), E(WAITING, 50), E(WAITING, 40)};
    cr_assert_eq(connslots_choose(w, 3, 3), 2);
    struct connslots_entry only_writing[] = {E(WRITING, 30), E(WRITING, 10), E(WRITING, 20)};
    cr_assert_eq(connslots_choose(only_writing, 3, 3), 1);
}

Test(connslots, a_pinned_connection_never_gives_way)
{
    struct connslots_entry e[] = {E(PINNED, 1), E(WAITING, 100), E(PINNED, 2)};
    cr_assert_eq(connslots_choose(e, 3, 3), 1, "not the idlest, since that one is pinned");
    struct connslots_entry all[] = {E(PINNED, 1), E(PINNED, 2)};
    cr_assert_eq(connslots_choose(all, 2, 2), CONNSLOTS_NONE);
    cr_assert_eq(connslots_choose(NULL, 0, 0), CONNSLOTS_NONE, "max 0: never room");
}

Test(connslots, repeated_choice_drains_an_over_full_table)
{
    /* what the callers do after a reload lowered max from 5 to 2: evict, remove, ask again */
    struct connslots_entry e[] = {E(WAITING, 50), E(DONE, 60), E(WAITING, 10), E(WRITING, 5),
                                  E(WAITING, 30)};
    size_t n = 5;
    uint64_t gone[5];
    size_t ngone = 0;
    long i;
    while ((i = connslots_choose(e, n, 2)) >= 0) {
        gone[ngone++] = e[i].last;
        e[i] = e[--n];
    }
    cr_assert_eq(i, CONNSLOTS_ROOM);
    cr_assert_eq(n, 1);
    cr_assert_eq(ngone, 4);
    cr_assert_eq(gone[0], 60); /* done */
    cr_assert_eq(gone[1], 10); /* then waiting, idlest first */
    cr_assert_eq(gone[2], 30);
    cr_assert_eq(gone[3], 50);
    cr_assert_eq(e[0].cls, CONNSLOTS_WRITING, "the one still owed a reply stays");
}

Test(connslots, rate_limit_per_second_and_report)
{
    struct connslots_rate r = {0};
    unsigned long rep = 99;
    for (int i = 0; i < 3; i++) {
        cr_assert(connslots_rate_allow(&r, 1000, 3, &rep));
        cr_assert_eq(rep, 0);
    }
    for (int i = 0; i < 5; i++) {
        cr_assert_not(connslots_rate_allow(&r, 1000, 3, &rep));
        cr_assert_eq(rep, 0);
    }
    /* the next second: its first call reports the 5 left out, once */
    cr_assert(connslots_rate_allow(&r, 1001, 3, &rep));
    cr_assert_eq(rep, 5);
    cr_assert(connslots_rate_allow(&r, 1001, 3, &rep));
    cr_assert_eq(rep, 0);
    /* a quiet gap, nothing left out: nothing to report */
    cr_assert(connslots_rate_allow(&r, 1010, 3, &rep));
    cr_assert_eq(rep, 0);
    /* suppressed in one second, reported after a gap of several */
    cr_assert(connslots_rate_allow(&r, 1010, 3, &rep));
    cr_assert(connslots_rate_allow(&r, 1010, 3, &rep));
    cr_assert_not(connslots_rate_allow(&r, 1010, 3, &rep));
    cr_assert(connslots_rate_allow(&r, 1020, 3, &rep));
    cr_assert_eq(rep, 1);
}

Test(connslots, zero_budget_allows_nothing_and_counts)
{
    struct connslots_rate r = {0};
    unsigned long rep;
    cr_assert_not(connslots_rate_allow(&r, 5, 0, &rep));
    cr_assert_not(connslots_rate_allow(&r, 5, 0, &rep));
    cr_assert_not(connslots_rate_allow(&r, 6, 0, &rep));
    cr_assert_eq(rep, 2);
}

/* test_recovery.c - control/recovery.c: the start-up decision over the state file and the audit
 * log's last change. */
#include <criterion/criterion.h>
#include <string.h>

#include "control/recovery.h"

static struct recovery_plan decide(enum recovery_state_file st, uint64_t s, int audit_file,
                                   int has_change, uint64_t a, int discard)
{
    struct recovery_in in = {st, s, audit_file, has_change, a, discard};
    struct recovery_plan p;
    recovery_decide(&in, &p);
    return p;
}

Test(recovery, state_and_audit_agree_resume_without_a_record)
{
    struct recovery_plan p = decide(RECOVERY_STATE_OK, 25, 1, 1, 25, 0);
    cr_assert_eq(p.action, RECOVERY_RESUME);
    cr_assert_eq(p.use_state, 1);
    cr_assert_eq(p.generation, 25);
    cr_assert_eq(p.record, 0);
}

Test(recovery, a_change_recorded_but_not_made_is_recorded_as_aborted)
{
    struct recovery_plan p = decide(RECOVERY_STATE_OK, 24, 1, 1, 25, 0);
    cr_assert_eq(p.action, RECOVERY_UNFINISHED);
    cr_assert_eq(p.use_state, 1);
    cr_assert_eq(p.generation, 24, "the state file's generation stays in force");
    cr_assert_eq(p.record, 1);
    cr_assert_str_eq(p.result, "aborted");
    cr_assert_str_eq(p.op, "recover");
    cr_assert_eq(p.gen_before, 25);
    cr_assert_not_null(strstr(p.why, "generation 25"), "%s", p.why);
}

Test(recovery, a_state_file_older_than_acknowledged_changes_is_refused)
{
    struct recovery_plan p = decide(RECOVERY_STATE_OK, 10, 1, 1, 25, 0);
    cr_assert_eq(p.action, RECOVERY_REFUSE);
    cr_assert_not_null(strstr(p.why, "older"), "%s", p.why);
    p = decide(RECOVERY_STATE_OK, 10, 1, 1, 25, 1);
    cr_assert_eq(p.action, RECOVERY_FROM_CONFIG);
    cr_assert_eq(p.use_state, 0);
    cr_assert_eq(p.generation, 26, "a fresh generation after the last recorded one");
    cr_assert_eq(p.record, 1);
}

Test(recovery, a_state_generation_without_its_record_is_resumed_and_the_gap_recorded)
{
    struct recovery_plan p = decide(RECOVERY_STATE_OK, 25, 1, 1, 24, 0);
    cr_assert_eq(p.action, RECOVERY_UNAUDITED);
    cr_assert_eq(p.generation, 25);
    cr_assert_eq(p.record, 1);
    cr_assert_str_eq(p.result, "ok");
    cr_assert_str_eq(p.event, "audit_gap");
    p = decide(RECOVERY_STATE_OK, 7, 1, 0, 0, 0); /* an empty (rotated) audit log */
    cr_assert_eq(p.action, RECOVERY_UNAUDITED);
    cr_assert_eq(p.generation, 7);
}

Test(recovery, without_an_audit_file_the_state_file_is_resumed)
{
    struct recovery_plan p = decide(RECOVERY_STATE_OK, 9, 0, 0, 0, 0);
    cr_assert_eq(p.action, RECOVERY_RESUME);
    cr_assert_eq(p.generation, 9);
}

Test(recovery, a_missing_state_file_after_changes_is_refused_unless_discarded)
{
    struct recovery_plan p = decide(RECOVERY_STATE_MISSING, 0, 1, 1, 25, 0);
    cr_assert_eq(p.action, RECOVERY_REFUSE);
    cr_assert_not_null(strstr(p.why, "missing"), "%s", p.why);
    p = decide(RECOVERY_STATE_MISSING, 0, 1, 1, 25, 1);
    cr_assert_eq(p.action, RECOVERY_FROM_CONFIG);
    cr_assert_eq(p.generation, 26);
    cr_assert_eq(p.record, 1);
    cr_assert_str_eq(p.event, "state_discarded");
}

Test(recovery, a_true_first_start_is_recorded_at_generation_1)
{
    struct recovery_plan p = decide(RECOVERY_STATE_MISSING, 0, 1, 0, 0, 0);
    cr_assert_eq(p.action, RECOVERY_FIRST_START);
    cr_assert_eq(p.generation, 1);
    cr_assert_eq(p.record, 1);
    cr_assert_eq(p.gen_before, 0);
    cr_assert_str_eq(p.event, "state_initialised");
}

Test(recovery, a_corrupt_state_file_is_refused_unless_discarded)
{
    struct recovery_plan p = decide(RECOVERY_STATE_CORRUPT, 0, 1, 1, 5, 0);
    cr_assert_eq(p.action, RECOVERY_REFUSE);
    p = decide(RECOVERY_STATE_CORRUPT, 0, 1, 1, 5, 1);
    cr_assert_eq(p.action, RECOVERY_FROM_CONFIG);
    cr_assert_eq(p.generation, 6);
    p = decide(RECOVERY_STATE_CORRUPT, 0, 1, 0, 0, 1);
    cr_assert_eq(p.generation, 1);
}

Test(recovery, without_a_state_file_every_start_takes_a_fresh_generation)
{
    struct recovery_plan p = decide(RECOVERY_STATE_NONE, 0, 1, 1, 12, 0);
    cr_assert_eq(p.action, RECOVERY_FROM_CONFIG);
    cr_assert_eq(p.generation, 13);
    cr_assert_eq(p.record, 1);
    p = decide(RECOVERY_STATE_NONE, 0, 0, 0, 0, 0);
    cr_assert_eq(p.action, RECOVERY_FIRST_START);
    cr_assert_eq(p.generation, 1);
}

/* With a fleet store the state file is the replica's cache: it also holds generations other
 * replicas made (their records are on those replicas), so being ahead of this audit log is the
 * normal case and resumes quietly; being behind acknowledged changes is refused as ever. */
Test(recovery, a_fleet_cache_ahead_of_the_audit_log_resumes_without_a_gap)
{
    struct recovery_in in = {.state = RECOVERY_STATE_OK, .state_gen = 40, .audit_file = 1,
                             .has_change = 1, .audit_gen = 31, .cache = 1};
    struct recovery_plan p;
    recovery_decide(&in, &p);
    cr_assert_eq(p.action, RECOVERY_RESUME);
    cr_assert_eq(p.generation, 40);
    cr_assert_eq(p.record, 0);
    in.has_change = 0; /* a replica that never took a change itself */
    recovery_decide(&in, &p);
    cr_assert_eq(p.action, RECOVERY_RESUME);
    in.has_change = 1;
    in.audit_gen = 45; /* older than this replica's own acknowledged changes */
    recovery_decide(&in, &p);
    cr_assert_eq(p.action, RECOVERY_REFUSE);
}

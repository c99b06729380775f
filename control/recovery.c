/* recovery.c - the start-up decision over the state file and the audit log (see recovery.h). */
#include "control/recovery.h"

#include <stdio.h>
#include <string.h>

static void plan(struct recovery_plan *o, enum recovery_action a, int use_state, uint64_t gen,
                 const char *op, const char *result, uint64_t gen_before, const char *event)
{
    o->action = a;
    o->use_state = use_state;
    o->generation = gen;
    o->record = a != RECOVERY_RESUME && a != RECOVERY_REFUSE;
    o->op = op;
    o->result = result;
    o->gen_before = gen_before;
    o->event = event;
}

/* The configuration's weights at the generation after the audit log's last change. */
static void from_config(const struct recovery_in *in, struct recovery_plan *o, const char *event)
{
    uint64_t a = in->has_change ? in->audit_gen : 0;
    plan(o, RECOVERY_FROM_CONFIG, 0, a + 1, "start", "ok", a, event);
}

void recovery_decide(const struct recovery_in *in, struct recovery_plan *o)
{
    memset(o, 0, sizeof *o);
    unsigned long long s = in->state_gen, a = in->audit_gen;
    switch (in->state) {
    case RECOVERY_STATE_OK:
        if (!in->audit_file || (in->has_change && a == s)) {
            plan(o, RECOVERY_RESUME, 1, s, NULL, NULL, s, "state_applied");
        } else if (in->has_change && a == s + 1) {
            plan(o, RECOVERY_UNFINISHED, 1, s, "recover", "aborted", a,
                 "state_unfinished_change");
            snprintf(o->why, sizeof o->why,
                     "generation %llu was recorded but the process stopped before it was made "
                     "durable, so it was never served nor acknowledged; generation %llu stays in "
                     "force",
                     a, s);
        } else if (in->has_change && a > s + 1) {
            if (in->discard) {
                from_config(in, o, "state_discarded");
                snprintf(o->why, sizeof o->why,
                         "the state file was at generation %llu, older than the audit log's %llu; "
                         "discarded (--discard-state): the configuration's weights",
                         s, a);
            } else {
                plan(o, RECOVERY_REFUSE, 0, 0, NULL, NULL, 0, "state_refused");
                snprintf(o->why, sizeof o->why,
                         "the state file is at generation %llu but the audit log records changes "
                         "up to generation %llu: the file is older than acknowledged changes "
                         "(restored from a backup, or another instance's file?)",
                         s, a);
            }
        } else if (in->cache) {
            plan(o, RECOVERY_RESUME, 1, s, NULL, NULL, s, "state_applied");
        } else {
            plan(o, RECOVERY_UNAUDITED, 1, s, "recover", "ok", in->has_change ? a : s,
                 "audit_gap");
            if (in->has_change)
                snprintf(o->why, sizeof o->why,
                         "the state file's generation %llu has no audit record (the audit log's "
                         "last change is generation %llu); resumed at generation %llu",
                         s, a, s);
            else
                snprintf(o->why, sizeof o->why,
                         "the state file's generation %llu has no audit record (the audit log has "
                         "no change record: rotated or lost?); resumed at generation %llu",
                         s, s);
        }
        return;
    case RECOVERY_STATE_MISSING:
        if (!in->has_change) {
            plan(o, RECOVERY_FIRST_START, 0, 1, "start", "ok", 0, "state_initialised");
            snprintf(o->why, sizeof o->why,
                     in->audit_file ? "first start: no state file and no change in the audit "
                                      "log; the configuration's weights"
                                    : "no state file (and no audit file to tell whether changes "
                                      "were made): the configuration's weights");
        } else if (in->discard) {
            from_config(in, o, "state_discarded");
            snprintf(o->why, sizeof o->why,
                     "the state file was missing although the audit log records changes up to "
                     "generation %llu; started from the configuration's weights (--discard-state)",
                     a);
        } else {
            plan(o, RECOVERY_REFUSE, 0, 0, NULL, NULL, 0, "state_refused");
            snprintf(o->why, sizeof o->why,
                     "the state file is missing but the audit log records changes up to "
                     "generation %llu",
                     a);
        }
        return;
    case RECOVERY_STATE_CORRUPT:
        if (in->discard) {
            from_config(in, o, "state_discarded");
            snprintf(o->why, sizeof o->why,
                     "the state file was corrupt; discarded (--discard-state): the "
                     "configuration's weights");
        } else {
            plan(o, RECOVERY_REFUSE, 0, 0, NULL, NULL, 0, "state_refused");
            snprintf(o->why, sizeof o->why, "the state file is corrupt");
        }
        return;
    case RECOVERY_STATE_NONE:
    default:
        if (in->has_change) {
            from_config(in, o, "state_from_config");
        } else {
            plan(o, RECOVERY_FIRST_START, 0, 1, "start", "ok", 0, "state_initialised");
        }
        snprintf(o->why, sizeof o->why,
                 "no state file is configured: the configuration's weights");
        return;
    }
}

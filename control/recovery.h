/* recovery.h - what cutover does at start-up with its state file and audit log: the pure
 * decision (docs/control-protocol.md, "Durability order" and "Start-up").
 *
 * A change is recorded in the audit log (fsynced) before the state file is written, so a
 * generation in the state file always has its record. At start-up the state file's generation S
 * is compared with A, the generation in force after the audit log's last change record:
 *   A == S       resume at S;
 *   A == S + 1   the last change was recorded but the process stopped before the state file
 *                was written (so it was never served nor acknowledged): an "aborted" recovery
 *                record says so, and S stays in force;
 *   A >= S + 2   the state file is older than changes that were acknowledged (a restored
 *                backup, another replica's file): refused, like a corrupt file;
 *   A < S, or no change record
 *                the state file's generation has no audit record (an audit log that was rotated
 *                away or lost): resumed at S with a recovery record that states the gap; with a
 *                fleet store (cache) this is the normal case and S is resumed quietly;
 * and without a state file:
 *   no change record     a first start: the configuration's weights at generation 1, recorded;
 *   change records       the state file was lost: refused (--discard-state starts from the
 *                        configuration's weights at A + 1, recorded);
 *   no state file configured
 *                        every start is from the configuration's weights, at A + 1, recorded.
 * A corrupt state file is refused; --discard-state starts from the configuration at A + 1.
 *
 * Pure: no I/O. Any thread.
 */
#ifndef CUT_RECOVERY_H
#define CUT_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

enum recovery_state_file {
    RECOVERY_STATE_NONE = 0, /* no state file configured */
    RECOVERY_STATE_OK,       /* loaded, at generation state_gen */
    RECOVERY_STATE_MISSING,  /* configured, does not exist */
    RECOVERY_STATE_CORRUPT   /* configured, unreadable or corrupt */
};

struct recovery_in {
    enum recovery_state_file state;
    uint64_t state_gen; /* with RECOVERY_STATE_OK, >= 1 */
    int audit_file;     /* an audit file is configured (so its tail could be read) */
    int has_change;     /* the audit log has a change record */
    uint64_t audit_gen; /* with has_change: the generation in force after the last one */
    int discard;        /* --discard-state */
    int cache;          /* the state file is a fleet store's cache (control.store): it also
                         * holds generations other replicas made, which have their records
                         * there, so a state file ahead of this audit log is no gap */
};

enum recovery_action {
    RECOVERY_RESUME,        /* the state file, as it is: nothing to record */
    RECOVERY_FIRST_START,   /* the configuration's weights; record + state file */
    RECOVERY_UNFINISHED,    /* the state file; an "aborted" record for the lost change */
    RECOVERY_UNAUDITED,     /* the state file; a record stating the gap */
    RECOVERY_FROM_CONFIG,   /* the configuration's weights (discarded or no state file) */
    RECOVERY_REFUSE         /* do not start */
};

struct recovery_plan {
    enum recovery_action action;
    int use_state;          /* lay the state file over the configuration */
    uint64_t generation;    /* the generation to serve */
    int record;             /* write a recovery record (kind change) and then the state file */
    const char *op;         /* the record's op: "start" or "recover" */
    const char *result;     /* the record's result: "ok" or "aborted" */
    uint64_t gen_before;    /* the record's generation_before */
    const char *event;      /* the event to log ("state_resumed", ...); static */
    char why[512];          /* the record's reason, or the refusal's message */
};

/* Decides; never fails. Unit-tested in tests/unit/test_recovery.c. */
void recovery_decide(const struct recovery_in *in, struct recovery_plan *out);

#endif

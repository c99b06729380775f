/* startup.h - the runtime state a process starts from: the state file read back, reconciled
 * with the audit log's last change (control/recovery.h decides: resume, record an interrupted
 * change as aborted, record a gap, start fresh, or refuse), laid over the configuration
 * (control/state_rebase.h), and what start-up decided recorded like any change
 * (control/durable.h) — so a restart resumes the replica's state and the trail says why.
 * Control thread, before the loop serves.
 */
#ifndef CUT_STARTUP_H
#define CUT_STARTUP_H

#include <stddef.h>

#include "config/cfg.h"
#include "control/audit.h"
#include "control/durable.h"
#include "control/state.h"

/* What start-up reads and writes (all borrowed for the call). */
struct startup_env {
    const struct cfg *cfg; /* control.state_file, control.audit_file, cluster, region */
    struct audit *audit;   /* opened: what it found at its tail decides with the state file */
    int discard;           /* --discard-state: start from the configuration, keep the old file */
    audit_out_fn out;      /* the start-up record's line to stdout */
    durable_event_fn event; /* audit_torn_line, state_resumed, state_refused, ... */
    void *ctx;              /* for out and event */
};

/* Fills *rt (the caller disposes it; its generation is the one to serve) and records the start
 * when it is not a plain resume. Returns 0, or a negative CUT_E* code with err set: cutover does
 * not start (a corrupt or stale state file without --discard-state, a record that cannot be
 * written, out of memory); *rt is then empty. */
int startup_load(const struct startup_env *env, struct state *rt, char *err, size_t cap);

#endif

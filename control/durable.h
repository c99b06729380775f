/* durable.h - the one way a generation becomes durable (docs/control-protocol.md, "Durability
 * order"): the audit record first (written and fdatasynced: the write-ahead record), then the
 * state file (temporary file, fsync, rename, fsync of the directory), and only then may the
 * caller publish the snapshot and acknowledge. When the state file cannot be written after the
 * record was, an "aborted" record follows it, so the trail never claims a change that was not
 * made; a crash in between is found and recorded at the next start (control/recovery.h).
 * Hence every generation that is ever served has its audit record, by construction.
 * Control thread only.
 */
#ifndef CUT_DURABLE_H
#define CUT_DURABLE_H

#include <stddef.h>

#include <stdint.h>

#include "control/audit.h"

struct state;

/* An event line for the log (name; extra: JSON members each preceded by a comma, or NULL). */
typedef void (*durable_event_fn)(void *ctx, const char *name, const char *extra);

/* Where a change is made durable (all borrowed for the call): the audit log, the state file
 * (NULL: none configured), the generation in use (an aborted record returns to it), and where
 * audit lines (stdout) and events (audit_failed) also go. */
struct durable_target {
    struct audit *audit;
    const char *state_file;
    uint64_t generation;
    audit_out_fn out;
    durable_event_fn event;
    void *ctx; /* for out and event */
};

/* Records rec (its kind is set to AUDIT_CHANGE; generation_before/after, actor, op, weights are
 * the caller's) and then writes next to the state file (when one is configured). Returns 0:
 * durable and audited, the caller publishes next; or CUT_EIO with a message in err, nothing
 * changed: either the record could not be written (*recorded 0) or the state file could not be
 * (an aborted record follows, *recorded 1). recorded may be NULL. */
int durable_commit(const struct durable_target *t, const struct state *next,
                   struct audit_record *rec, int *recorded, char *err, size_t cap);

/* The weights of every route of st as JSON text {"route":{"blue":90,"green":10},...}, exact
 * decimals (malloc'd; NULL when out of memory). For records that concern every route (start,
 * recovery, reload). */
char *durable_weights_json(const struct state *st);

#endif

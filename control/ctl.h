/* ctl.h - the control thread: the single writer of routing state.
 *
 * It owns the configuration, the generation counter, the resolved endpoint addresses and the
 * signals. Every change (reload, DNS change, and later control commands) builds a new immutable
 * snapshot and publishes it to every worker. It runs on the main thread's event base.
 */
#ifndef CUT_CTL_H
#define CUT_CTL_H

#include <stdint.h>
#include <time.h>

#include "config/cfg.h"

struct ctl;
struct cfg;
struct cfg_errors;
struct worker;
struct logger;
struct siem;
struct state;

/* Creates the control state for a validated configuration (taken) loaded from config_path
 * (borrowed, kept for reloads): loads the durable state file and lays it over the configuration
 * (a corrupt one is an error unless discard_state), opens the audit log and the control socket,
 * and publishes the first snapshot to the workers (borrowed; they outlive the ctl). Returns NULL
 * with a message in err on failure. */
struct ctl *ctl_new(const char *config_path, struct cfg *cfg, struct logger *lg,
                    struct siem *siem, struct worker **workers, unsigned nworkers,
                    int discard_state, char *err, size_t cap);

/* Runs the control loop: SIGHUP reloads, SIGTERM/SIGINT stop gracefully. Returns when every
 * worker has stopped (0) or on a fatal error (negative). */
int ctl_run(struct ctl *c);

void ctl_free(struct ctl *c);


/* Emits an event line {"type":"event","event":name, ...extra} where extra is either empty or
 * a JSON fragment starting with ','. */
void ctl_event(struct ctl *c, const char *name, const char *extra);

/* The configuration in use (borrowed: valid until the next reload, so read it within one
 * callback and keep nothing). Control thread. */
const struct cfg *ctl_cfg(const struct ctl *c);

/* The generation in use, and the runtime state it stands for (borrowed: valid until the next
 * change). Control thread. */
uint64_t ctl_generation(const struct ctl *c);
const struct state *ctl_state(const struct ctl *c);

/* ---- for the control protocol (control/commands.c) ------------------------------------------
 * ctl.c and commands.c are the one pair of files in control/ that call each other: ctl.c runs
 * commands_tick and the plans' automatic changes through commands_apply_auto; commands.c reads
 * and changes the control thread's state through these. Control thread only. */
struct audit;
struct audit_record;
struct counters;
struct plan_state;
struct refusal_limiter;

struct audit *ctl_audit(struct ctl *c);
struct refusal_limiter *ctl_refusals(struct ctl *c);
struct plan_state *ctl_plans(struct ctl *c);
struct counters *ctl_counters(struct ctl *c);
const char *ctl_config_path(const struct ctl *c);
time_t ctl_started(const struct ctl *c);

/* Writes an audit record's line to stdout through the logger (audit_out_fn; ctx is the ctl). */
void ctl_audit_out(void *ctx, const char *line, size_t len);

/* durable_commit (control/durable.h) to c's audit log and state file, at c's generation. */
int ctl_durable_commit(struct ctl *c, const struct state *next, struct audit_record *rec,
                       int *recorded, char *err, size_t cap);

/* Puts next in use (taken: *next is emptied) — it must be durable and audited already
 * (ctl_durable_commit) at generation + 1 — and publishes it (an allocation failure is logged as
 * publish_failed; the next change publishes). */
void ctl_install(struct ctl *c, struct state *next);

/* Builds a snapshot from the current configuration and runtime state and publishes it to every
 * worker. Returns 0 or CUT_ENOMEM (nothing published). */
int ctl_publish(struct ctl *c);

/* Reloads the configuration file. rec is the audit record of the request (actor, op, args,
 * reason; the caller's): once the new configuration is valid, ctl_reload completes it
 * (generations, every route's weights) and makes the change durable with durable_commit()
 * before it publishes. Returns 0 (recorded, durable, published: generation + 1), or
 * CUT_EINVAL with every problem in errs (caller disposes), or CUT_EIO/CUT_ENOMEM with errs
 * holding one message. *recorded says whether the record was written (the caller then must not
 * record the refusal again). */
int ctl_reload(struct ctl *c, struct cfg_errors *errs, struct audit_record *rec, int *recorded);

/* Stops handling SIGHUP, SIGTERM and SIGINT (for a harness that embeds the control thread and
 * runs no loop, such as the fuzzers: the default handlers come back). */
void ctl_release_signals(struct ctl *c);

#endif

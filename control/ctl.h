/* ctl.h - the control thread: the single writer of routing state.
 *
 * It owns the configuration, the generation counter, the resolved endpoint addresses and the
 * signals. Every change (reload, DNS change, and later control commands) builds a new immutable
 * snapshot and publishes it to every worker. It runs on the main thread's event base.
 */
#ifndef CUT_CTL_H
#define CUT_CTL_H

#include <stdint.h>

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

/* ---- for the control protocol (control/commands.c) and its transports ------------------------ */
struct cmd_host;

/* The host the control protocol runs on (control/commands.h): c's configuration, state,
 * generation, audit log, plans and counters, and its one path for changes. Borrowed: it lives as
 * long as c. Control thread only. */
struct cmd_host *ctl_cmd_host(struct ctl *c);

/* Stops handling SIGHUP, SIGTERM and SIGINT (for a harness that embeds the control thread and
 * runs no loop, such as the fuzzers: the default handlers come back). */
void ctl_release_signals(struct ctl *c);

#endif

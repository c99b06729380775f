/* fleet.h - the fleet store: the runtime state every replica of a fleet shares, in etcd v3
 * (control/etcd.h), under control.store.prefix (docs/architecture.md, "The fleet store"):
 *
 *   <prefix>generation       {"format":1,"generation":N}: the fleet's generation; every write
 *                            of the fleet's state changes it, in the same transaction, and
 *                            compares its revision: one compare-and-set for the whole fleet
 *   <prefix>routes/<route>   {"format":1,"generation":N,"by":{..},"state":<one-route state>}:
 *                            a route's runtime state (control/state.h), as of generation N
 *   <prefix>replicas/<name>  {"format":1,"replica":..,"generation":..,...} under the replica's
 *                            lease: the registry of live replicas and what each applied
 *
 * The control thread owns a struct fleet. It reads the fleet's state before the listeners
 * accept (fleet_start), then watches the prefix and hands every new state to its owner
 * (fleet_env.apply), commits changes as one transaction each (fleet_commit), keeps the
 * replica's registration alive, and writes a rollback made while the store was unreachable as
 * soon as it is reachable again. Control thread only; nothing here blocks after fleet_start.
 */
#ifndef CUT_FLEET_H
#define CUT_FLEET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg.h"
#include "control/plan.h"
#include "control/state.h"

struct event_base;
struct fleet;

/* What the fleet needs of the control thread (borrowed for the life of the fleet). */
struct fleet_env {
    struct event_base *base;
    const struct cfg *(*cfg)(void *ctx);     /* the configuration in use */
    const struct state *(*state)(void *ctx); /* the runtime state in use */
    /* Puts next (taken) in use: a state the fleet holds at generation next->generation, seen
     * through the watch or a re-read (why: "watch", "resync", "pending_written"). The owner
     * writes its cache (the state file), publishes and says so. */
    void (*apply)(void *ctx, struct state *next, const char *why);
    void (*event)(void *ctx, const char *name, const char *extra);
    void *ctx;
};

/* Creates the fleet for cfg's control.store (enabled) with this replica's identity. Returns
 * NULL with a message in err (out of memory, the password file unreadable, the client). */
struct fleet *fleet_new(const struct cfg *cfg, const struct fleet_env *env, char *err, size_t cap);

/* Cancels every call and watch and frees f (its registration expires with its lease).
 * NULL is fine. */
void fleet_free(struct fleet *f);

/* Start-up, before the loop serves: reads the fleet's state (blocking, on a private event base,
 * bounded by the store's timeouts), lays it over *rt (in: the state the process would serve
 * without a store: its cache or the configuration; out: the fleet's state at the fleet's
 * generation, for every route of the configuration), and creates the routes the store does not
 * have yet from *rt in a create-if-absent transaction. When no member answers, *rt is left as it
 * is and the fleet converges once the store answers (fleet_run). Returns 0 (*from_store says
 * which happened) or CUT_ENOMEM. */
int fleet_start(struct fleet *f, struct state *rt, int *from_store);

/* Starts the watch, the registration and its lease on env->base (after fleet_start). */
void fleet_run(struct fleet *f);

/* The outcome of fleet_commit: 0 (committed at the fleet's generation `generation`: the caller
 * makes *next durable and puts it in use; when the watch has already brought this change, or
 * a later one, *next is the state in use then, so nothing newer is undone), FLEET_CONFLICT (the
 * fleet changed since the state the change was based on), FLEET_UNAVAILABLE (no member answered),
 * FLEET_REFUSED (etcd refused: permission, size), CUT_ENOMEM. what: a message for the reply. */
enum { FLEET_CONFLICT = -100, FLEET_UNAVAILABLE = -101, FLEET_REFUSED = -102 };
typedef void (*fleet_done_fn)(void *ctx, int status, struct state *next, uint64_t generation,
                              const char *what);

/* Commits next (taken), a change of the state in use, to the store: one transaction that
 * compares the generation key's revision with the one the state in use came from, writes the
 * new generation (next->generation is set to the fleet's generation + 1) and every route that
 * differs, with by (actor, op; borrowed for the call), and history (an audit-shaped record
 * of the change, borrowed; NULL: none) as the fleet's history entry of that generation. done is called once, later, with next
 * handed back (the callee disposes it... the done callback owns it). Returns 0, or a negative
 * FLEET_* / CUT_E* code at once without calling done (next then disposed). */
int fleet_commit(struct fleet *f, struct state *next, const char *actor, const char *op,
                 json_t *history,
                 fleet_done_fn done, void *ctx);

/* Reads the fleet's state again and lays it over the state in use (after a reload: routes it
 * added get the fleet's state, or are created in the store from the configuration). */
void fleet_resync(struct fleet *f);

/* At a graceful stop: revokes the registration's lease (the replica leaves the registry at
 * once, so barriers stop waiting for it) and stops renewing it. The watch keeps running while
 * the process drains. */
void fleet_stop(struct fleet *f);

/* Calls fn(ctx, ok) once, when the re-read in progress (or one started now) has laid the
 * store's state over the state in use (ok 1) or failed (ok 0). One waiter at a time (a later
 * call replaces it); not called after fleet_free. For a change that lost its compare-and-set
 * only because this replica had not seen the fleet's last change yet: run it again then. */
void fleet_after_resync(struct fleet *f, void (*fn)(void *ctx, int ok), void *ctx);

/* Whether a change can be committed now: the store answered the last call, watch or keepalive,
 * and the state in use came from it. */
int fleet_reachable(const struct fleet *f);

/* A rollback applied locally (the store could not take it): route's state in use is written
 * over the store's as soon as the store answers (by actor), and until then the store's versions
 * of route are not applied (a rollback is never undone by an older state). The pending routes
 * are kept in <state_file>.pending, so a restart before the store answers keeps them too.
 * Order: fleet_pending_add (before the rollback is in use), then the rollback, then
 * fleet_pending_flush. Returns 0, or CUT_ENOMEM (more than 64 pending routes). */
int fleet_pending_add(struct fleet *f, const char *route, const char *actor);

/* Takes route off the pending list (its rollback could not be applied locally after all). */
void fleet_pending_remove(struct fleet *f, const char *route);

/* Writes the pending routes' state in use to the store now if it answers (else when it does):
 * call once the rollback is in use. */
void fleet_pending_flush(struct fleet *f);

/* Whether a change of this replica is being committed (fleet_commit answers CUT_EAGAIN). */
int fleet_busy(const struct fleet *f);

/* Whether the store answers and this replica is reading the fleet's state again (after a lost
 * compare-and-set or an outage): a change can wait for it (fleet_after_resync) rather than be
 * refused. */
int fleet_reading(const struct fleet *f);

/* The fleet as this replica sees it, for status: {"store":"ok"|"unreachable","replica":..,
 * "generation":..,"revision":..,"pending":[routes],"invalid":[{key,revision,error}],
 * "replicas":[{"replica","generation","cluster","region","version","started","lagging"}],
 * "converged":bool}. New reference. */
json_t *fleet_status(const struct fleet *f);

/* ---- fleet plans ------------------------------------------------------------------------------
 * A route's shift plan is part of its stored state. One replica leads it: the holder of
 * <prefix>leaders/<route>, a key under that replica's lease (create-if-absent; when the leader
 * dies its lease expires, the key goes, and another replica takes the plan over from the stored
 * step and step start). Every replica publishes what it counted for the step's target pool
 * under <prefix>counts/<route>/<replica> (its lease; at most one write per FLEET_COUNTS_MS per
 * route with a running plan, only when it changed); the leader judges the gates on the sum. */

#define FLEET_COUNTS_MS 500

/* 1 when this replica leads route's plan and has no change of its own on its way to the store
 * (plan_leads_fn; fleet is the struct fleet). Without a known leader it asks for the
 * leadership (the answer comes through the watch: a later call says) and returns 0. */
int fleet_plan_leads(void *fleet, const char *route);

/* The replica that leads route's plan, "" when none is known. */
const char *fleet_plan_leader(const struct fleet *f, const char *route);

/* plan_window_fn (fleet is the struct fleet): publishes mine, this replica's counts for route's
 * current step (pool, step start step_ms), rate-limited as above; *sum is mine plus every other
 * registered replica's latest for the same pool and step start; *at_step: replicas counted
 * (this one included); *replicas: registered replicas; *leader: fleet_plan_leader. */
void fleet_plan_window(void *fleet, const char *route, const char *pool, int64_t step_ms,
                       const struct plan_counts *mine, struct plan_counts *sum,
                       unsigned *at_step, unsigned *replicas, const char **leader);

/* The fleet's recent changes, oldest first: every change committed through the store (by any
 * replica, plans and pending rollbacks included), as audit-shaped records with the replica
 * that took it; the store keeps the last FLEET_HISTORY (1000). New reference. */
json_t *fleet_history(const struct fleet *f);

/* What the metrics show (control/metrics.c). */
struct fleet_stats {
    int reachable;                            /* a change can be committed now (fleet_reachable) */
    uint64_t generation;                      /* the fleet's, as this replica knows it */
    size_t replicas;                          /* registered replicas */
    size_t lagging;                           /* of which below the fleet's generation */
    size_t invalid;                           /* stored values not applied */
    size_t pending;                           /* rollbacks not yet written to the store */
    uint64_t applied;                         /* states applied from the watch or a re-read */
    uint64_t commits, conflicts, unavailable; /* changes committed / refused so */
};

void fleet_get_stats(const struct fleet *f, struct fleet_stats *out);

/* The name this replica registers under (control.store.replica, $POD_NAME, or the host name). */
const char *fleet_replica(const struct fleet *f);

#endif

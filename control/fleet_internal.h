/* fleet_internal.h - what the parts of the fleet store share: struct fleet and the functions
 * one part calls in another. Only control/fleet*.c include it; everyone else uses
 * control/fleet.h. Control thread only.
 *
 * From the top down (a part calls only the parts below it):
 *   fleet.c          commits, life, status (control/fleet.h)
 *   fleet_start.c    start-up: the fleet's state before the listeners accept
 *   fleet_sync.c     the watch, re-reads, seeding, the registration, pending rollbacks
 *   fleet_plan.c     fleet plans: who leads a route's plan, what each replica counted
 *   fleet_view.c     what a range or a watch message says, laid over the state in use
 *   fleet_base.c     events, reachability, the requests the others build
 *   fleet_value.c    the stored values (pure; control/fleet_value.h)
 */
#ifndef CUT_FLEET_INTERNAL_H
#define CUT_FLEET_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "control/etcd.h"
#include "control/fleet.h"
#include "control/state.h"

#define FLEET_RETRY_MIN_MS 100
#define FLEET_RETRY_MAX_MS 2000
#define FLEET_MAX_PENDING 64
#define FLEET_MAX_ROUTES 1024 /* routes a view tracks (the configuration's limit) */
#define FLEET_HISTORY 1000    /* changes the store's history keeps */

struct event;

struct fleet {
    struct fleet_env env;
    struct etcd *etcd; /* on env.base, from fleet_run */
    struct etcd_opts opts;
    const char *endpoints[CFG_STORE_MAX_ENDPOINTS];
    char *password;
    char *prefix, *prefix_end, *key_gen, *routes_prefix, *replicas_prefix, *key_self;
    char replica[80], cluster[80], region[80], started[40];
    int reachable;
    int64_t revision; /* the store's revision the state in use reflects (the watch resumes after) */
    int64_t gen_rev;  /* the generation key's mod_revision behind the state in use (0: absent) */
    uint64_t fleet_gen;
    int synced; /* the state in use came from the store (else: a re-read is due) */
    struct etcd_watch *watch;
    struct event *ev_retry; /* restarts the watch or the re-read */
    unsigned backoff_ms;
    struct etcd_call *resync_call;
    /* the registration */
    int64_t lease;
    struct event *ev_keepalive;
    struct etcd_call *lease_call, *reg_call;
    uint64_t reg_gen; /* the generation last registered */
    int reg_dirty;
    /* the change being committed (one at a time) */
    struct etcd_call *commit_call;
    struct state *commit_next;
    fleet_done_fn commit_done;
    void *commit_ctx;
    /* rollbacks applied while the store could not be written */
    char *pending[FLEET_MAX_PENDING];
    size_t npending;
    char *pending_path;      /* <state_file>.pending: the pending routes survive a restart */
    char pending_actor[128]; /* who asked for the latest pending rollback (the stored "by") */
    struct etcd_call *pending_call;
    uint64_t pending_gen;        /* the fleet generation pending_call writes */
    struct etcd_call *seed_call; /* routes the store lacks (after a reload or an outage) */
    uint64_t applied, commits, conflicts, unavailable; /* for fleet_get_stats */
    int stopping;                                      /* fleet_stop: no registration any more */
    json_t *replicas; /* name -> registration (from the watch) */
    /* fleet plans (fleet_plan.c): who leads each route's plan, what each replica counted */
    char *leaders_prefix, *counts_prefix, *history_prefix;
    json_t *history; /* "<20-digit generation>" -> record (from the watch; the last ones) */
    json_t *leaders;   /* route -> {"replica",..} (from the watch) */
    json_t *counts;    /* route -> {replica -> {"pool","step_ms","requests",..}} (watch) */
    json_t *published; /* route -> {"at_ms","requests","step_ms"}: this replica's last put */
    struct etcd_call *lead_call; /* one leadership request at a time */
    unsigned pub_calls;          /* counts puts in flight */
    void (*synced_fn)(void *ctx, int ok); /* fleet_after_resync: one waiter */
    void *synced_ctx;
    json_t *invalid; /* key -> {"revision","error"} of stored values not applied */
};

/* One key-value of a range or an event, decoded. */
struct fleet_kv {
    char *key, *value;
    size_t vlen;
    int64_t mod_revision;
};

/* What one batch of the store's keys (a range, or a watch message's events) says. */
struct fleet_view {
    int has_gen;
    uint64_t gen;
    int64_t gen_rev;
    struct state docs[FLEET_MAX_ROUTES]; /* by route index of the state in use; nroutes 0: none */
    int changed;
};

/* fleet_base.c */
void fleet_event(struct fleet *f, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets reachability and says when it changes (events store_reachable / store_unreachable). */
void fleet_set_reachable(struct fleet *f, int ok, const char *what);
/* Request parts: s as a base64 JSON string; {"key","value"[,"lease"]}; the prefix's range. */
json_t *fleet_b64_json(const char *s);
json_t *fleet_put_op(const char *key, const char *value, int64_t lease);
json_t *fleet_range_body(const struct fleet *f);
/* Whether route has a rollback waiting to be written to the store. */
int fleet_pending_has(const struct fleet *f, const char *route);
/* The transaction that makes next the fleet's state: compare the generation key's revision,
 * put the generation and every route of next that differs from cur (pending routes always;
 * only: exactly the routes i of next with only[i] set), and history (an audit-shaped record of
 * the change, borrowed; NULL: none) under <prefix>history/ with its generations set, removing
 * the entry FLEET_HISTORY generations older. NULL when out of memory. */
json_t *fleet_change_txn(struct fleet *f, const struct state *cur, const struct state *next,
                         const char *actor, const char *op, const unsigned char *only,
                         json_t *history);
/* <prefix>history/<generation, 20 digits>. */
void fleet_history_key(const struct fleet *f, uint64_t gen, char *key, size_t cap);

/* fleet_view.c */
int fleet_kv_decode(const json_t *j, struct fleet_kv *kv);
void fleet_kv_dispose(struct fleet_kv *kv);
/* Takes one key-value (deleted: a DELETE event) into v: the generation, a route of cur (parsed
 * and checked; an invalid one is reported and left out), a replica's registration. */
void fleet_view_take(struct fleet *f, struct fleet_view *v, const struct state *cur,
                     struct fleet_kv *kv, int deleted);
void fleet_view_dispose(struct fleet_view *v);
/* The state in use with the routes v has (except pending rollbacks), at generation gen.
 * Returns 0, or CUT_ENOMEM (out empty). */
int fleet_view_merge(struct fleet *f, const struct state *cur, const struct fleet_view *v,
                     uint64_t gen, struct state *out);
/* Reads a range reply into v (the registry is replaced); returns the reply's revision. */
int64_t fleet_view_from_range(struct fleet *f, const struct state *cur, json_t *reply,
                              struct fleet_view *v);

/* fleet_plan.c: a leadership or counts key seen by a range or the watch (deleted: gone).
 * Returns 1 when key was one of them. */
int fleet_plan_take(struct fleet *f, const char *key, const char *value, size_t len, int deleted);

/* fleet_sync.c */
/* Creates the retry and keepalive timers on env.base (fleet_new; NULL when out of memory). */
void fleet_sync_init(struct fleet *f);
/* Starts the watch from the revision after the one in use / reads the whole prefix again. */
void fleet_watch_start(struct fleet *f);
void fleet_resync_start(struct fleet *f);
/* Tries the watch or the re-read again after a growing pause. */
void fleet_retry_later(struct fleet *f);
/* (Re)registers this replica under its lease with the generation in use. */
void fleet_register(struct fleet *f);
/* The next lease grant or keepalive in ms. */
void fleet_keepalive_arm(struct fleet *f, unsigned ms);
/* Writes the pending routes' state in use over the store's (compared like any change). */
void fleet_pending_write(struct fleet *f);
/* <state_file>.pending: written at every change of the list; read by fleet_new. */
void fleet_pending_save(struct fleet *f);
void fleet_pending_load(struct fleet *f);

#endif

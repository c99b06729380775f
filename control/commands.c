/* commands.c - the control operations: parse, authorise, validate, make durable, audit, publish. */
#include "control/fleet.h"
#include "control/commands.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/cfg.h"
#include "control/audit.h"
#include "control/counters.h"
#include "control/state.h"
#include "core/clock.h"
#include "core/cut.h"
#include "core/text.h"
#include "proxy/route/snapshot.h"
#include "core/version.h"
#include "control/durable.h"
#include "control/optable.h"
#include "control/plan.h"
#include "control/refusal.h"
#include "control/cmd.h"
#include "control/cmd_ops.h"

enum cut_role commands_role_for(const struct cfg *cfg, long uid, long gid)
{
    const struct cfg_control *cc = &cfg->control;
    if (cc->nroles == 0)
        return uid >= 0 && uid == (long)geteuid() ? CUT_ROLE_ADMIN : CUT_ROLE_NONE;
    for (size_t i = 0; i < cc->nroles; i++) {
        const struct cfg_role_rule *rule = &cc->roles[i];
        if ((rule->uid < 0 || rule->uid == uid) && (rule->gid < 0 || rule->gid == gid))
            return rule->role;
    }
    return CUT_ROLE_NONE;
}

/* ---- replies and audit ------------------------------------------------------------------- */

static char *reply(struct cmd_host *c, const char *id, struct cmd_res *r)
{
    json_t *o = json_object();
    if (id)
        json_object_set_new(o, "id", json_string(id));
    else
        json_object_set_new(o, "id", json_null());
    json_object_set_new(o, "ok", json_boolean(r->code == NULL));
    json_object_set_new(o, "generation", json_integer((json_int_t)c->generation(c->ctx)));
    if (r->code) {
        json_t *e = json_pack("{s:s, s:s}", "code", r->code, "message", r->msg);
        if (r->path[0])
            json_object_set_new(e, "path", json_string(r->path));
        if (r->details)
            json_object_set(e, "details", r->details);
        json_object_set_new(o, "error", e);
    } else {
        json_object_set(o, "result", r->result ? r->result : json_object());
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                JSON_REAL_PRECISION(CUT_JSON_REAL_DIGITS));
    json_decref(o);
    return s;
}

static void audit(struct cmd_host *c, const struct cmd_peer *peer, const char *op, json_t *args,
                  struct cmd_res *r, uint64_t gen_before);

char *commands_error_reply(struct cmd_host *c, const struct cmd_peer *peer, const char *code,
                           const char *message)
{
    struct cmd_res r = {0};
    cmd_fail(&r, code, NULL, "%s", message);
    audit(c, peer, NULL, NULL, &r, c->generation(c->ctx));
    return reply(c, NULL, &r);
}

static void count_op(struct cmd_host *c, const char *op, int ok)
{
    const struct optable_op *cmd = op ? optable_find(op) : NULL;
    /* op names come from the operation table (bounded label values); cutover's own plan steps
     * are not commands but are counted under their name too. */
    const char *counted = cmd ? cmd->op : op && strcmp(op, "shift-step") == 0 ? "shift-step"
                                                                                 : "unknown";
    counters_count_op(c->counters, counted, ok);
}

/* Writes the summary of an actor's coalesced refusals (refusal.h). */
static void on_refusal_summary(void *ctx, const struct refusal_detail *d, uint64_t count)
{
    struct cmd_host *c = ctx;
    char msg[600];
    snprintf(msg, sizeof msg,
             "%llu more refusals from this actor, counted rather than recorded one by one "
             "(beyond a burst of %d and %d a second); the last: %s: %s",
             (unsigned long long)count, REFUSAL_BURST, REFUSAL_RATE, d->code, d->message);
    struct audit_record rec = {
        .cluster = c->cfg(c->ctx)->cluster,
        .region = c->cfg(c->ctx)->region,
        .uid = d->uid,
        .user = d->user,
        .address = d->address[0] ? d->address : NULL,
        .role = d->role,
        .op = d->op,
        .ok = 0,
        .error_code = d->code,
        .error_message = msg,
        .generation_before = c->generation(c->ctx),
        .generation_after = c->generation(c->ctx),
        .kind = AUDIT_REFUSAL,
        .count = count,
    };
    char err[256];
    if (audit_append(c->audit, &rec, c->audit_out, c->ctx, err, sizeof err) < 0)
        c->event(c->ctx, "audit_failed", NULL);
}

void commands_tick(struct cmd_host *c, uint64_t now_ms)
{
    if (c->refusals)
        refusal_flush(c->refusals, now_ms, 0, on_refusal_summary, c);
}

static void pending_free_all(struct cmd_host *c);

void commands_stop(struct cmd_host *c)
{
    pending_free_all(c);
    if (c->refusals)
        refusal_flush(c->refusals, clock_mono_ms(), 1, on_refusal_summary, c);
}

/* Records a request that changed nothing: a read, a refusal, or a change that was already so
 * (set-weights to the weights in force). Refusals are coalesced per actor (refusal.h). */
static void audit_as(struct cmd_host *c, const struct cmd_peer *peer, const char *op,
                     json_t *args, struct cmd_res *r, uint64_t gen_before, int read)
{
    count_op(c, op, r->code == NULL);
    const struct optable_op *cmd = op ? optable_find(op) : NULL;
    enum audit_kind kind = r->code                         ? AUDIT_REFUSAL
                           : read || (cmd && !cmd->mutates) ? AUDIT_READ
                                                            : AUDIT_CHANGE;
    if (kind == AUDIT_REFUSAL && c->refusals) {
        struct refusal_detail d;
        refusal_detail_set(&d, peer->uid, peer->user, peer->address,
                           role_name(peer->role), op, r->code, r->msg);
        if (!refusal_admit(c->refusals, &d, clock_mono_ms(), on_refusal_summary, c))
            return; /* counted into this actor's summary */
    }
    char *args_json = args ? json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    struct audit_record rec;
    cmd_record_fill(c, peer, op, args_json, args, &rec);
    rec.kind = kind;
    rec.ok = r->code == NULL;
    rec.error_code = r->code;
    rec.error_message = r->code ? r->msg : NULL;
    rec.generation_before = gen_before;
    rec.weights_before_json = r->weights_before[0] ? r->weights_before : NULL;
    rec.weights_after_json = r->weights_after[0] ? r->weights_after : NULL;
    char err[256];
    if (audit_append(c->audit, &rec, c->audit_out, c->ctx, err, sizeof err) < 0) {
        c->event(c->ctx, "audit_failed", NULL);
        if (kind == AUDIT_CHANGE && !r->code) /* a no-op change must be on the record too */
            cmd_fail(r, "internal", NULL, "audit log: %s", err);
    }
    free(args_json);
}

static void audit(struct cmd_host *c, const struct cmd_peer *peer, const char *op, json_t *args,
                  struct cmd_res *r, uint64_t gen_before)
{
    audit_as(c, peer, op, args, r, gen_before, 0);
}

/* Makes a validated change durable and audited, then publishes it (durable.h: the record, the
 * state file, the snapshot, the acknowledgement). */
static void apply_local(struct cmd_host *c, const struct cmd_peer *peer, const char *op,
                        json_t *args, struct cmd_res *r)
{
    uint64_t before = c->generation(c->ctx);
    if (!r->changed) {
        audit(c, peer, op, args, r, before); /* nothing to change: still on the record */
        return;
    }
    r->next.generation = c->generation(c->ctx) + 1;
    char *args_json = args ? json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    struct audit_record rec;
    cmd_record_fill(c, peer, op, args_json, args, &rec);
    rec.generation_after = r->next.generation;
    rec.weights_before_json = r->weights_before[0] ? r->weights_before : NULL;
    rec.weights_after_json = r->weights_after[0] ? r->weights_after : NULL;
    rec.fleet_pending = r->fleet_pending;
    char err[400];
    int rc = c->durable_commit(c->ctx, &r->next, &rec, NULL, err, sizeof err);
    free(args_json);
    count_op(c, op, rc == 0);
    if (rc < 0) {
        cmd_fail(r, "internal", NULL, "%s", err); /* recorded as aborted, or not at all */
        return;
    }
    c->install(c->ctx, &r->next);
}

/* ---- changes through the fleet store (control/fleet.h) ------------------------------------ */

/* A change waiting for the store's transaction: what its record and reply need, copied (the
 * request and the transport's peer are gone by the time the store answers). */
struct cmd_pending {
    struct cmd_host *c;
    struct cmd_pending *next;
    cmd_later_fn later; /* NULL: dropped, or a change cutover made itself */
    void *later_ctx;
    struct cmd_peer peer;
    char user[1100], address[80], op[64], id[CMD_ID_MAX + 1], route[STATE_MAX_NAME];
    int has_id;
    json_t *args;
    struct cmd_res r;
    uint64_t before;
    unsigned retries; /* runs again after losing a compare-and-set it did not ask for */
    int automatic;    /* a change cutover decided itself (commands_apply_auto): not run again
                       * through an operator's handler; its plan judges again at the next tick */
    struct cmd_pending *wnext; /* in the host's queue of changes waiting for their turn */
};

/* A change without expect_generation that lost its compare-and-set only because this replica
 * had not yet seen the fleet's latest change (another replica took one a moment before: a
 * pipeline behind a Service) is run again on the fleet's state, at most this often. */
#define CMD_FLEET_RETRIES 3

static void pending_unlink(struct cmd_pending *p)
{
    for (struct cmd_pending **pp = &p->c->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
}

static void pending_free(struct cmd_pending *p)
{
    json_decref(p->args);
    json_decref(p->r.result);
    json_decref(p->r.details);
    state_dispose(&p->r.next);
    free(p);
}

static void pending_free_all(struct cmd_host *c)
{
    c->waiting = NULL; /* every waiting change is on the pending list too */
    while (c->pending) { /* their transactions were cancelled with the store's client */
        struct cmd_pending *p = c->pending;
        c->pending = p->next;
        pending_free(p);
    }
}

void commands_pending_drop(struct cmd_pending *p)
{
    if (p)
        p->later = NULL;
}

/* A rollback is applied even when the store cannot be written (DESIGN.md, "Fleet"): here, at
 * once, and written to the store as soon as it answers. */
static void rollback_locally(struct cmd_host *c, const struct cmd_peer *peer, const char *op,
                             json_t *args, struct cmd_res *r)
{
    char route[STATE_MAX_NAME];
    snprintf(route, sizeof route, "%s", r->route ? r->route : "");
    /* pending before it is in use: a crash in between must not let the store's older state
     * undo it at the next start */
    if (r->changed && fleet_pending_add(c->fleet, route, peer->user) < 0) {
        cmd_fail(r, "internal", NULL, "too many rollbacks wait for the fleet store");
        audit(c, peer, op, args, r, c->generation(c->ctx));
        return;
    }
    r->fleet_pending = r->changed;
    apply_local(c, peer, op, args, r);
    if (r->code) {
        fleet_pending_remove(c->fleet, route);
        return;
    }
    fleet_pending_flush(c->fleet);
    if (r->result && json_is_object(r->result))
        json_object_set_new(r->result, "fleet", json_string("pending"));
}

/* A rollback the store could not take (busy, conflict, unreachable, refused): run again on the
 * state in use now (the fleet may have moved meanwhile) and applied here (rollback_locally).
 * A rollback that asked for expect_generation and lost is not retried: that is its answer. */
static int rollback_again(struct cmd_pending *p, int status)
{
    if (strcmp(p->op, "rollback") != 0 ||
        (status == FLEET_CONFLICT && json_object_get(p->args, "expect_generation")))
        return 0;
    if (p->automatic) {
        /* a failed gate's or the watchdog's rollback: on a conflict the fleet moved and the
         * next tick judges again on its state; otherwise (the store cannot take it) it is
         * applied here as decided, as an operator's would be */
        if (status == FLEET_CONFLICT)
            return 0;
        p->r.changed = 1;
        rollback_locally(p->c, &p->peer, p->op, p->args, &p->r);
        return 1;
    }
    struct cmd_res r2 = {0};
    struct cmd_req q = {p->c, &p->peer, p->args};
    cmd_fn fn = cmd_ops_find("rollback");
    int rc = fn(&q, &r2);
    json_decref(p->r.result);
    json_decref(p->r.details);
    state_dispose(&p->r.next);
    p->r = r2;
    snprintf(p->route, sizeof p->route, "%s", r2.route ? r2.route : p->route);
    p->r.route = p->route;
    if (rc == 0)
        rollback_locally(p->c, &p->peer, p->op, p->args, &p->r);
    else
        audit(p->c, &p->peer, p->op, p->args, &p->r, p->before);
    return 1;
}

static void on_resynced(void *ctx, int ok);
static int commit_pending(struct cmd_pending *p);

/* Sends a pending request's reply (when its transport is still there) and frees it. */
static void settle(struct cmd_pending *p)
{
    if (p->later) {
        char *out = reply(p->c, p->has_id ? p->id : NULL, &p->r);
        p->later(p->later_ctx, out, p->r.code);
    }
    pending_free(p);
}

/* ---- changes waiting for their turn --------------------------------------------------------
 * A replica commits one change at a time, on the fleet's state as it has read it. A change that
 * comes while another is being committed, or while the replica reads the fleet's state again
 * (after a lost compare-and-set), waits in this queue (first come, first served) instead of
 * being refused; its turn comes when the replica is ready again, and it is then judged on the
 * state in use (it may now be refused, or change nothing) and committed. A change that lost its
 * compare-and-set only because this replica lagged goes back to the queue's front. */

static void queue_push(struct cmd_host *c, struct cmd_pending *p, int front)
{
    p->wnext = NULL;
    if (front || !c->waiting) {
        p->wnext = c->waiting;
        c->waiting = p;
        return;
    }
    struct cmd_pending *t = c->waiting;
    while (t->wnext)
        t = t->wnext;
    t->wnext = p;
}

static void on_fleet_ready(void *ctx, int ok);

/* Gives the queue's first change its turn when the replica is ready; asks to be told when it
 * will be if it is reading the fleet's state; fails every waiting change when the store cannot
 * be reached. */
static void queue_pump(struct cmd_host *c)
{
    while (c->waiting && !fleet_busy(c->fleet)) {
        if (!fleet_reachable(c->fleet)) {
            if (fleet_reading(c->fleet)) { /* reading the fleet's state: wait for it */
                fleet_after_resync(c->fleet, on_fleet_ready, c);
                return;
            }
            while (c->waiting) { /* the store does not answer */
                struct cmd_pending *p = c->waiting;
                c->waiting = p->wnext;
                on_resynced(p, 0);
            }
            return;
        }
        struct cmd_pending *p = c->waiting;
        c->waiting = p->wnext;
        on_resynced(p, 1); /* judged on the state in use, then committed (busy) or settled */
    }
}

static void on_fleet_ready(void *ctx, int ok)
{
    (void)ok; /* queue_pump sees whether the store answers */
    queue_pump(ctx);
}

static void on_fleet_done(void *ctx, int status, struct state *next, uint64_t generation,
                          const char *what)
{
    struct cmd_pending *p = ctx;
    struct cmd_host *c = p->c;
    p->r.next = *next; /* taken back */
    memset(next, 0, sizeof *next);
    if (status == FLEET_CONFLICT && !json_object_get(p->args, "expect_generation") &&
        !p->automatic && cmd_ops_find(p->op) && p->retries < CMD_FLEET_RETRIES) {
        p->retries++; /* stays pending: again once the fleet's state is read, first in line */
        queue_push(c, p, 1);
        queue_pump(c);
        return;
    }
    pending_unlink(p);
    if (status < 0 && rollback_again(p, status)) {
        count_op(c, p->op, p->r.code == NULL);
    } else if (status < 0) {
        const char *code = status == FLEET_CONFLICT      ? "conflict"
                           : status == FLEET_UNAVAILABLE ? "store_unavailable"
                           : status == CUT_EAGAIN        ? "busy"
                                                         : "internal";
        cmd_fail(&p->r, code, NULL, "%s", what && *what ? what : "the fleet store refused");
        count_op(c, p->op, 0);
        audit(c, &p->peer, p->op, p->args, &p->r, p->before);
    } else {
        /* committed to the fleet: this replica's record and cache, then in use here */
        char *args_json = p->args ? json_dumps(p->args, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        struct audit_record rec;
        cmd_record_fill(c, &p->peer, p->op, args_json, p->args, &rec);
        rec.generation_before = p->before;
        rec.generation_after = generation;
        rec.weights_before_json = p->r.weights_before[0] ? p->r.weights_before : NULL;
        rec.weights_after_json = p->r.weights_after[0] ? p->r.weights_after : NULL;
        char err[400];
        int rc = c->durable_commit(c->ctx, &p->r.next, &rec, NULL, err, sizeof err);
        free(args_json);
        count_op(c, p->op, 1);
        c->install(c->ctx, &p->r.next); /* the fleet has it: in use here whatever the disk said */
        if (rc < 0)
            cmd_fail(&p->r, "internal", NULL, "committed to the fleet store (generation %llu), "
                     "but not recorded here: %s", (unsigned long long)c->generation(c->ctx), err);
    }
    settle(p);
    queue_pump(c); /* the next change's turn */
}

/* A waiting change's turn (queue_pump; ok 0: the store does not answer): it is judged on the
 * state in use (it may now be refused, or change nothing) and, when it still changes
 * something, committed. */
static void on_resynced(void *ctx, int ok)
{
    struct cmd_pending *p = ctx;
    struct cmd_host *c = p->c;
    json_decref(p->r.result);
    json_decref(p->r.details);
    state_dispose(&p->r.next);
    memset(&p->r, 0, sizeof p->r);
    p->r.route = p->route;
    if (!ok) {
        pending_unlink(p);
        cmd_fail(&p->r, "store_unavailable", NULL, "the fleet store is not reachable; retry");
        count_op(c, p->op, 0);
        audit(c, &p->peer, p->op, p->args, &p->r, p->before);
        settle(p);
        return;
    }
    struct cmd_req q = {c, &p->peer, p->args};
    cmd_fn fn = cmd_ops_find(p->op);
    int rc = fn ? fn(&q, &p->r) : cmd_fail(&p->r, "conflict", NULL, "the fleet changed");
    snprintf(p->route, sizeof p->route, "%s", p->r.route ? p->r.route : p->route);
    p->r.route = p->route;
    p->before = c->generation(c->ctx);
    if (rc < 0 || !p->r.changed) { /* refused now, or already so: on the record as such */
        pending_unlink(p);
        audit(c, &p->peer, p->op, p->args, &p->r, p->before);
        settle(p);
        return;
    }
    if (commit_pending(p) < 0) {
        pending_unlink(p);
        count_op(c, p->op, 0);
        audit(c, &p->peer, p->op, p->args, &p->r, p->before);
        settle(p);
    }
}

/* The fleet history's entry for a change (control/fleet.h, fleet_history): the audit record
 * this replica will write, as an object (its generations are set by the store's transaction).
 * NULL when out of memory (the change is made without it). */
static json_t *history_record(struct cmd_host *c, const struct cmd_peer *peer, const char *op,
                              json_t *args, const struct cmd_res *r)
{
    char *args_json = args ? json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    struct audit_record rec;
    cmd_record_fill(c, peer, op, args_json, args, &rec);
    rec.kind = AUDIT_CHANGE;
    rec.weights_before_json = r->weights_before[0] ? r->weights_before : NULL;
    rec.weights_after_json = r->weights_after[0] ? r->weights_after : NULL;
    size_t len;
    char *line = audit_record_text(&rec, &len);
    json_t *h = line ? json_loadb(line, len, 0, NULL) : NULL;
    free(line);
    free(args_json);
    return h;
}

/* Starts the store's transaction for p's change. Returns 0 (pending: on_fleet_done follows), or
 * a negative FLEET_* / CUT_E* code with p->r refused (code and message set; its next is gone). */
static int commit_pending(struct cmd_pending *p)
{
    json_t *hist = history_record(p->c, &p->peer, p->op, p->args, &p->r);
    int rc = fleet_commit(p->c->fleet, &p->r.next, p->peer.user, p->op, hist, on_fleet_done, p);
    json_decref(hist);
    if (rc < 0)
        cmd_fail(&p->r, rc == CUT_EAGAIN          ? "busy"
                        : rc == FLEET_UNAVAILABLE ? "store_unavailable"
                                                  : "internal",
                 NULL, "%s",
                 rc == CUT_EAGAIN ? "another change is being committed to the fleet store; retry"
                 : rc == FLEET_UNAVAILABLE
                     ? "the fleet store is not reachable (changes other than rollback wait for "
                       "it; retry)"
                     : "out of memory");
    return rc;
}

/* Starts the store's transaction for a validated change. Returns the pending request, or NULL
 * when the change was settled at once (r says how). */
static struct cmd_pending *apply_fleet(struct cmd_host *c, const struct cmd_peer *peer,
                                       const char *id, const char *op, json_t *args,
                                       struct cmd_res *r, cmd_later_fn later, void *later_ctx)
{
    int rollback = strcmp(op, "rollback") == 0;
    if (!r->changed) {
        audit(c, peer, op, args, r, c->generation(c->ctx));
        return NULL;
    }
    if (rollback && (!fleet_reachable(c->fleet) || fleet_busy(c->fleet))) {
        rollback_locally(c, peer, op, args, r); /* rollback always works */
        return NULL;
    }
    struct cmd_pending *p = calloc(1, sizeof *p);
    if (!p) {
        cmd_fail(r, "internal", NULL, "out of memory");
        audit(c, peer, op, args, r, c->generation(c->ctx));
        return NULL;
    }
    p->c = c;
    p->later = later;
    p->later_ctx = later_ctx;
    p->automatic = later == NULL; /* commands_apply_auto: no transport waits for it */
    p->peer = *peer;
    snprintf(p->user, sizeof p->user, "%s", peer->user ? peer->user : "");
    p->peer.user = p->user;
    snprintf(p->address, sizeof p->address, "%s", peer->address ? peer->address : "");
    p->peer.address = peer->address ? p->address : NULL;
    snprintf(p->op, sizeof p->op, "%s", op);
    p->has_id = id != NULL;
    snprintf(p->id, sizeof p->id, "%s", id ? id : "");
    snprintf(p->route, sizeof p->route, "%s", r->route ? r->route : "");
    p->args = json_incref(args);
    p->before = c->generation(c->ctx);
    p->r = *r; /* takes result, details and next */
    p->r.route = p->route;
    memset(r, 0, sizeof *r);
    if (!p->automatic && (fleet_busy(c->fleet) || c->waiting ||
                          (!fleet_reachable(c->fleet) && fleet_reading(c->fleet)))) {
        p->next = c->pending; /* its turn comes (queue_pump) */
        c->pending = p;
        queue_push(c, p, 0);
        queue_pump(c);
        return p;
    }
    int rc = commit_pending(p);
    if (rc < 0) { /* settled at once (commit_pending said why): no callback */
        *r = p->r;
        r->route = NULL;
        memset(&p->r, 0, sizeof p->r);
        count_op(c, op, 0);
        audit(c, peer, op, args, r, p->before);
        pending_free(p);
        return NULL;
    }
    p->next = c->pending;
    c->pending = p;
    return p;
}

static void apply(struct cmd_host *c, const struct cmd_peer *peer, const char *op, json_t *args,
                  struct cmd_res *r)
{
    apply_local(c, peer, op, args, r);
}

/* ---- dry runs (docs/control-protocol.md, "Dry runs") --------------------------------------- */

/* Reads args.dry_run of a request for cmd: *dry set when true; *handler_args is args without
 * dry_run (a new reference) when it was given, else args itself (borrowed). Refuses
 * (invalid_argument) a dry_run that is not a boolean, or on a read. */
static int dry_run_arg(const struct optable_op *cmd, json_t *args, int *dry,
                       json_t **handler_args, json_t **owned, struct cmd_res *r)
{
    json_t *v = args ? json_object_get(args, "dry_run") : NULL;
    *dry = 0;
    *handler_args = args;
    *owned = NULL;
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return cmd_fail(r, "invalid_argument", "args.dry_run", "expected true or false");
    if (!cmd->mutates)
        return cmd_fail(r, "invalid_argument", "args.dry_run",
                        "%s changes nothing: a dry run is for changes only", cmd->op);
    if (!(cmd->args & OPTABLE_ARG_DRY_RUN))
        return cmd_fail(r, "invalid_argument", "args.dry_run",
                        "%s cannot be run dry (it applies the file as it reads it)", cmd->op);
    *owned = json_copy(args);
    if (!*owned)
        return cmd_fail(r, "internal", NULL, "out of memory");
    json_object_del(*owned, "dry_run");
    *handler_args = *owned;
    *dry = json_is_true(v);
    return 0;
}

/* A weights fragment of struct cmd_res as a JSON value (null when empty or unreadable). */
static json_t *weights_value(const char *frag)
{
    json_t *v = frag[0] ? json_loads(frag, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

/* The reply of a dry run the handler accepted: its result plus what would happen. Nothing is
 * applied; the request is recorded as a read. */
static void dry_run_result(struct cmd_host *c, const struct cmd_peer *peer, struct cmd_res *r)
{
    if (!r->result || !json_is_object(r->result)) {
        json_decref(r->result);
        r->result = json_object();
    }
    uint64_t gen = c->generation(c->ctx);
    json_t *o = r->result;
    json_object_set_new(o, "dry_run", json_true());
    json_object_set_new(o, "would_change", json_boolean(r->changed));
    json_object_set_new(o, "generation", json_integer((json_int_t)gen));
    json_object_set_new(o, "would_be_generation",
                        r->changed ? json_integer((json_int_t)(gen + 1)) : json_null());
    json_object_set_new(o, "role", json_string(role_name(peer->role)));
    json_object_set_new(o, "weights_before", weights_value(r->weights_before));
    json_object_set_new(o, "weights_after", weights_value(r->weights_after));
    if (c->fleet)
        json_object_set_new(o, "fleet", json_string("not_committed"));
}

/* commands_handle() and commands_refuse(): refuse_code set refuses the request once its id, op
 * and args have been read (as far as they can be). */
static char *handle(struct cmd_host *c, const struct cmd_peer *peer, const char *line, size_t len,
                    const char **code, const char *refuse_code, const char *refuse_msg,
                    cmd_later_fn later, void *later_ctx, struct cmd_pending **pending)
{
    if (pending)
        *pending = NULL;
    struct cmd_res r = {0};
    json_error_t jerr;
    const char *id = NULL, *op = NULL;
    json_t *args = NULL;
    json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    uint64_t before = c->generation(c->ctx);
    const struct optable_op *cmd = NULL;
    char *out;
    if (refuse_code) {
        json_t *jid = json_is_object(req) ? json_object_get(req, "id") : NULL;
        json_t *jop = json_is_object(req) ? json_object_get(req, "op") : NULL;
        if (json_is_string(jid) && json_string_length(jid) > 0 &&
            json_string_length(jid) <= CMD_ID_MAX)
            id = json_string_value(jid);
        if (json_is_string(jop))
            op = json_string_value(jop);
        args = json_is_object(req) ? json_object_get(req, "args") : NULL;
        cmd_fail(&r, refuse_code, NULL, "%s", refuse_msg);
        goto done;
    }
    if (!req || !json_is_object(req)) {
        cmd_fail(&r, "bad_request", NULL, req ? "expected a JSON object" : "malformed JSON: %s",
             jerr.text);
        goto done;
    }
    json_t *jid = json_object_get(req, "id"), *jop = json_object_get(req, "op");
    json_t *jv = json_object_get(req, "v");
    args = json_object_get(req, "args");
    if (!jid || !json_is_string(jid) || json_string_length(jid) == 0 ||
        json_string_length(jid) > CMD_ID_MAX) {
        cmd_fail(&r, "bad_request", "id", "\"id\" must be a string of 1 to %d characters", CMD_ID_MAX);
        goto done;
    }
    id = json_string_value(jid);
    if (!jop || !json_is_string(jop)) {
        cmd_fail(&r, "bad_request", "op", "\"op\" must be a string");
        goto done;
    }
    op = json_string_value(jop);
    if (jv && (!json_is_integer(jv) || json_integer_value(jv) != CMD_PROTOCOL)) {
        cmd_fail(&r, "unsupported_version", "v", "this server speaks protocol version %d",
             CMD_PROTOCOL);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(req, key, val)
    {
        if (strcmp(key, "id") && strcmp(key, "op") && strcmp(key, "v") && strcmp(key, "args")) {
            char path[128];
            snprintf(path, sizeof path, "%.100s", key);
            cmd_fail(&r, "bad_request", path, "unknown field");
            goto done;
        }
    }
    if (args && !json_is_object(args)) {
        cmd_fail(&r, "invalid_argument", "args", "expected an object");
        goto done;
    }
    cmd = optable_find(op);
    if (!cmd) {
        cmd_fail(&r, "unknown_op", "op", "no operation \"%.100s\"", op);
        goto done;
    }
    if (peer->role < cmd->role) {
        cmd_fail(&r, "denied", "op", "role %s may not %s (needs %s)", role_name(peer->role),
             cmd->op, role_name(cmd->role));
        goto done;
    }
    json_t *empty = NULL, *hargs = NULL, *stripped = NULL;
    int dry = 0;
    if (dry_run_arg(cmd, args, &dry, &hargs, &stripped, &r) < 0)
        goto done;
    if (!args)
        args = hargs = empty = json_object();
    struct cmd_req q = {c, peer, hargs, dry};
    cmd_fn fn = cmd_ops_find(cmd->op);
    CUT_ASSERT(fn != NULL); /* every op has a handler (test_optable.c) */
    int rc = fn(&q, &r);
    if (!dry)
        args = hargs; /* "dry_run": false is no part of the change (a retried rollback reruns
                       * the handler on these args) */
    if (dry) { /* the record keeps the args as given, dry_run included */
        /* a dry run: validated and refused like the real change, but nothing is applied,
         * nothing reaches the fleet store, and the record is a read */
        CUT_ASSERT(!r.reloaded && !r.recorded); /* a reload's dry run is a preview */
        if (rc == 0)
            dry_run_result(c, peer, &r);
        audit_as(c, peer, op, args, &r, before, 1);
    } else if (rc == 0 && cmd->mutates && !r.reloaded && c->fleet && later) {
        struct cmd_pending *p = apply_fleet(c, peer, id, op, args, &r, later, later_ctx);
        if (p) { /* the reply comes later */
            *pending = p;
            json_decref(stripped);
            json_decref(empty);
            json_decref(req);
            return NULL;
        }
    } else if (rc == 0 && cmd->mutates && !r.reloaded && c->fleet) {
        cmd_fail(&r, "store_unavailable", NULL, "this transport cannot wait for the fleet store");
        audit(c, peer, op, args, &r, before);
    } else if (rc == 0 && cmd->mutates && !r.reloaded)
        apply(c, peer, op, args, &r);
    else if (r.recorded)
        count_op(c, op, r.code == NULL); /* the reload wrote its own record */
    else
        audit(c, peer, op, args, &r, before); /* every request is on the record, reads too */
    out = reply(c, id, &r);
    if (code)
        *code = r.code;
    json_decref(r.result);
    json_decref(r.details);
    state_dispose(&r.next);
    json_decref(stripped);
    json_decref(empty);
    json_decref(req);
    return out;

done:
    /* Refused before reaching an operation: still audited (who tried what). */
    audit(c, peer, op, args && json_is_object(args) ? args : NULL, &r, before);
    out = reply(c, id, &r);
    if (code)
        *code = r.code;
    json_decref(r.details);
    json_decref(req);
    return out;
}

char *commands_handle(struct cmd_host *c, const struct cmd_peer *peer, const char *line, size_t len,
                      const char **code, cmd_later_fn later, void *later_ctx,
                      struct cmd_pending **pending)
{
    return handle(c, peer, line, len, code, NULL, NULL, later, later_ctx, pending);
}

char *commands_refuse(struct cmd_host *c, const struct cmd_peer *peer, const char *line, size_t len,
                      const char *code, const char *message)
{
    return handle(c, peer, line, len, NULL, code, message, NULL, NULL, NULL);
}

int commands_apply_auto(struct cmd_host *c, const char *op, json_t *args, struct state *next,
                        const char *route)
{
    char name[STATE_MAX_NAME];
    snprintf(name, sizeof name, "%s", route); /* route may point into the state being replaced */
    struct cmd_peer auto_peer = {.uid = -1, .gid = -1, .user = "auto", .role = CUT_ROLE_ADMIN};
    struct cmd_res r = {0};
    struct state_route *cur = state_route_find((struct state *)c->state(c->ctx), name);
    struct state_route *nr = state_route_find(next, name);
    if (!cur || !nr || state_copy(&r.next, next) < 0)
        return CUT_ENOMEM;
    r.route = name;
    r.changed = 1;
    state_weights_json(cur, 0, r.weights_before, sizeof r.weights_before);
    state_weights_json(nr, 0, r.weights_after, sizeof r.weights_after);
    if (c->fleet) { /* committed by the store's transaction; settled later */
        apply_fleet(c, &auto_peer, NULL, op, args, &r, NULL, NULL);
    } else {
        apply(c, &auto_peer, op, args, &r);
    }
    int rc = r.code ? CUT_EIO : 0;
    state_dispose(&r.next);
    json_decref(r.details);
    json_decref(r.result);
    return rc;
}

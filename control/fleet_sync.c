/* fleet_sync.c - keeping a replica in step with the fleet store: the watch, re-reads (start-up
 * without the store, compaction, outages), seeding the routes the store lacks, the replica's
 * registration under its lease, and rollbacks made while the store could not be written
 * (see fleet.h, fleet_internal.h). */
#include "control/fleet_internal.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/etcd.h"
#include "control/etcd_codec.h"
#include "control/fleet_value.h"
#include "proxy/log/log.h"
#include "core/cut.h"
#include "core/version.h"

static void seed_missing(struct fleet *f, const struct fleet_view *v);

/* ---- the watch ------------------------------------------------------------------------------ */

void fleet_retry_later(struct fleet *f)
{
    f->backoff_ms = f->backoff_ms ? f->backoff_ms * 2 : FLEET_RETRY_MIN_MS;
    if (f->backoff_ms > FLEET_RETRY_MAX_MS)
        f->backoff_ms = FLEET_RETRY_MAX_MS;
    struct timeval tv = {f->backoff_ms / 1000, (f->backoff_ms % 1000) * 1000};
    event_add(f->ev_retry, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fleet *f = arg;
    if (!f->synced)
        fleet_resync_start(f);
    else if (!f->watch)
        fleet_watch_start(f);
}

/* Applies what a range or a watch message said: a new state in use when a route or the
 * generation changed. */
static void apply_view(struct fleet *f, struct fleet_view *v, int64_t revision, const char *why)
{
    const struct state *cur = f->env.state(f->env.ctx);
    uint64_t gen = v->has_gen ? v->gen : f->fleet_gen;
    if (v->has_gen) {
        f->fleet_gen = v->gen;
        f->gen_rev = v->gen_rev;
    }
    if (revision > f->revision)
        f->revision = revision;
    if (!v->changed && gen == cur->generation)
        return;
    struct state next;
    if (fleet_view_merge(f, cur, v, gen ? gen : cur->generation, &next) < 0) {
        fleet_event(f, "store_apply_failed", ",\"reason\":\"out of memory\"");
        f->synced = 0; /* read it all again */
        return;
    }
    f->env.apply(f->env.ctx, &next, why);
    f->applied++;
    state_dispose(&next);
    if (f->reg_gen != f->env.state(f->env.ctx)->generation)
        fleet_register(f);
}

static void on_watch(void *ctx, int status, json_t *msg)
{
    struct fleet *f = ctx;
    if (status < 0) {
        f->watch = NULL; /* freed by the client after this returns */
        fleet_set_reachable(f, 0, "watch ended");
        fleet_retry_later(f);
        return;
    }
    fleet_set_reachable(f, 1, NULL);
    f->backoff_ms = 0;
    int64_t compact = 0;
    etcd_codec_int(msg, "compact_revision", &compact);
    if (compact > 0 || json_is_true(json_object_get(msg, "canceled"))) {
        /* compacted past the revision the watch resumed from: read everything again */
        fleet_event(f, "store_compacted", ",\"revision\":%lld", (long long)compact);
        etcd_watch_cancel(f->watch);
        f->watch = NULL;
        f->synced = 0;
        fleet_resync_start(f);
        return;
    }
    json_t *events = json_object_get(msg, "events");
    if (!json_is_array(events) || json_array_size(events) == 0)
        return; /* created, or progress */
    struct fleet_view *v = calloc(1, sizeof *v);
    if (!v) {
        f->synced = 0;
        fleet_retry_later(f);
        return;
    }
    const struct state *cur = f->env.state(f->env.ctx);
    int64_t rev = 0;
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        struct fleet_kv kv;
        if (fleet_kv_decode(json_object_get(e, "kv"), &kv) < 0)
            continue;
        if (kv.mod_revision > rev)
            rev = kv.mod_revision;
        const char *type = json_string_value(json_object_get(e, "type"));
        int deleted = type && strcmp(type, "DELETE") == 0;
        /* A change this replica committed itself is in use already; the keys that are not
         * state (registrations, leaders, counts) are always read. */
        if (kv.mod_revision > f->revision ||
            (strcmp(kv.key, f->key_gen) != 0 &&
             strncmp(kv.key, f->routes_prefix, strlen(f->routes_prefix)) != 0))
            fleet_view_take(f, v, cur, &kv, deleted);
        fleet_kv_dispose(&kv);
    }
    if (rev > f->revision || v->changed)
        apply_view(f, v, rev, "watch");
    fleet_view_dispose(v);
    free(v);
}

void fleet_watch_start(struct fleet *f)
{
    if (f->watch)
        return;
    f->watch = etcd_watch(f->etcd, f->prefix, f->prefix_end, f->revision + 1, on_watch, f);
    if (!f->watch)
        fleet_retry_later(f);
}

/* ---- reading everything (start-up without the store, compaction, outages) ----------------- */

/* Calls (once) what waits for the re-read in progress. */
static void synced_call(struct fleet *f, int ok)
{
    void (*fn)(void *, int) = f->synced_fn;
    void *ctx = f->synced_ctx;
    f->synced_fn = NULL;
    f->synced_ctx = NULL;
    if (fn)
        fn(ctx, ok);
}

void fleet_after_resync(struct fleet *f, void (*fn)(void *ctx, int ok), void *ctx)
{
    f->synced_fn = fn;
    f->synced_ctx = ctx;
    if (!f->resync_call && f->etcd) /* none in progress: one now */
        fleet_resync(f);
}

static void on_resync(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    f->resync_call = NULL;
    if (status < 0) {
        fleet_set_reachable(f, 0, what);
        fleet_retry_later(f);
        synced_call(f, 0);
        return;
    }
    fleet_set_reachable(f, 1, NULL);
    f->backoff_ms = 0;
    struct fleet_view *v = calloc(1, sizeof *v);
    if (!v) {
        fleet_retry_later(f);
        return;
    }
    const struct state *cur = f->env.state(f->env.ctx);
    int64_t rev = fleet_view_from_range(f, cur, reply, v);
    f->revision = 0; /* everything in the range counts */
    v->changed = 1;
    apply_view(f, v, rev, "resync");
    f->synced = 1;
    seed_missing(f, v);
    fleet_view_dispose(v);
    free(v);
    if (f->npending)
        fleet_pending_write(f);
    fleet_register(f);
    fleet_watch_start(f);
    synced_call(f, 1);
}

void fleet_resync(struct fleet *f)
{
    if (!f->etcd)
        return;
    f->synced = 0;
    fleet_resync_start(f);
}

static void on_seeded(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    f->seed_call = NULL;
    if (status < 0) {
        fleet_set_reachable(f, status != CUT_EIO, what);
        return;
    }
    if (json_is_true(json_object_get(reply, "succeeded")))
        fleet_event(f, "store_seeded", NULL);
    fleet_resync(f); /* read what is there now (ours, or a racing replica's) */
}

/* Creates the routes of the state in use that the store lacks (create-if-absent, compared on
 * the generation key); v says which it has. */
static void seed_missing(struct fleet *f, const struct fleet_view *v)
{
    const struct state *cur = f->env.state(f->env.ctx);
    unsigned char only[CUT_ARRAY_LEN(v->docs)] = {0};
    int any = 0;
    for (size_t i = 0; i < cur->nroutes && i < CUT_ARRAY_LEN(v->docs); i++) {
        char key[512];
        snprintf(key, sizeof key, "%s%s", f->routes_prefix, cur->routes[i].name);
        only[i] = v->docs[i].nroutes == 0 && !json_object_get(f->invalid, key) &&
                  !fleet_pending_has(f, cur->routes[i].name);
        any |= only[i];
    }
    if (!any || f->seed_call)
        return;
    struct state next;
    if (state_copy(&next, cur) < 0)
        return;
    next.generation = f->fleet_gen + 1;
    json_t *txn = fleet_change_txn(f, cur, &next, "start", "seed", only, NULL);
    state_dispose(&next);
    f->seed_call = txn ? etcd_call(f->etcd, "/v3/kv/txn", txn, on_seeded, f) : NULL;
    json_decref(txn);
}

void fleet_resync_start(struct fleet *f)
{
    if (f->resync_call)
        return;
    if (f->watch) {
        etcd_watch_cancel(f->watch);
        f->watch = NULL;
    }
    json_t *body = fleet_range_body(f);
    f->resync_call = body ? etcd_call(f->etcd, "/v3/kv/range", body, on_resync, f) : NULL;
    json_decref(body);
    if (!f->resync_call)
        fleet_retry_later(f);
}

/* ---- the registration ------------------------------------------------------------------------ */

static void on_registered(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    (void)reply;
    f->reg_call = NULL;
    if (status < 0) {
        fleet_set_reachable(f, status != FLEET_UNAVAILABLE && status != CUT_EIO, what);
        f->reg_gen = 0; /* again at the next keepalive */
        return;
    }
    if (f->reg_dirty) {
        f->reg_dirty = 0;
        fleet_register(f);
    }
}

void fleet_register(struct fleet *f)
{
    if (!f->lease || !f->etcd || f->stopping)
        return;
    if (f->reg_call) {
        f->reg_dirty = 1;
        return;
    }
    uint64_t gen = f->env.state(f->env.ctx)->generation;
    json_t *reg = json_pack("{s:i, s:s, s:I, s:s, s:s, s:s, s:s, s:i}", "format", FLEET_FORMAT,
                            "replica", f->replica, "generation", (json_int_t)gen, "cluster",
                            f->cluster, "region", f->region, "version", CUTOVER_VERSION, "started",
                            f->started, "pending", (int)f->npending);
    char *text = reg ? json_dumps(reg, JSON_COMPACT) : NULL;
    json_t *body = text ? fleet_put_op(f->key_self, text, f->lease) : NULL;
    if (body)
        f->reg_call = etcd_call(f->etcd, "/v3/kv/put", body, on_registered, f);
    if (f->reg_call)
        f->reg_gen = gen;
    json_decref(body);
    free(text);
    json_decref(reg);
}

static void arm_keepalive(struct fleet *f, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(f->ev_keepalive, &tv);
}

static unsigned keepalive_ms(const struct fleet *f)
{
    unsigned ttl = f->env.cfg(f->env.ctx)->control.store.lease_ttl_s;
    return ttl * 1000 / 3;
}

static void on_lease(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    f->lease_call = NULL;
    int64_t id = 0, ttl = 0;
    if (status == 0) {
        etcd_codec_int(reply, "ID", &id);
        etcd_codec_int(reply, "TTL", &ttl);
    }
    if (status < 0 || id == 0 || ttl <= 0) {
        if (status == CUT_EIO)
            fleet_set_reachable(f, 0, what);
        if (f->lease && status == 0) /* the lease expired (a long outage): a new one */
            fleet_event(f, "store_lease_expired", NULL);
        if (status == 0 || status == CUT_EPROTO)
            f->lease = 0;
        arm_keepalive(f, f->lease ? keepalive_ms(f) : FLEET_RETRY_MAX_MS);
        return;
    }
    fleet_set_reachable(f, 1, NULL);
    int fresh = f->lease != id;
    f->lease = id;
    if (fresh || !f->reg_gen)
        fleet_register(f);
    arm_keepalive(f, keepalive_ms(f));
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fleet *f = arg;
    if (f->lease_call)
        return;
    json_t *body;
    const char *path;
    if (f->lease) {
        body = json_pack("{s:I}", "ID", (json_int_t)f->lease);
        path = "/v3/lease/keepalive";
    } else {
        body = json_pack("{s:I}", "TTL",
                         (json_int_t)f->env.cfg(f->env.ctx)->control.store.lease_ttl_s);
        path = "/v3/lease/grant";
    }
    f->lease_call = body ? etcd_call(f->etcd, path, body, on_lease, f) : NULL;
    json_decref(body);
    if (!f->lease_call)
        arm_keepalive(f, FLEET_RETRY_MAX_MS);
    if (!f->synced && !f->resync_call && !event_pending(f->ev_retry, EV_TIMEOUT, NULL))
        fleet_resync_start(f);
}

/* ---- rollbacks made while the store could not be written ------------------------------------ */

static void on_pending_written(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    f->pending_call = NULL;
    if (status < 0) {
        fleet_set_reachable(f, status != CUT_EIO, what);
        fleet_retry_later(f);
        return;
    }
    if (!json_is_true(json_object_get(reply, "succeeded"))) {
        f->synced = 0; /* the fleet moved on: read it, then write the rollbacks again over it */
        fleet_resync_start(f);
        return;
    }
    int64_t rev = 0;
    etcd_codec_int(json_object_get(reply, "header"), "revision", &rev);
    if (f->revision < rev) { /* else the watch brought it (and maybe more) already */
        f->revision = rev;
        f->gen_rev = rev;
        f->fleet_gen = f->pending_gen;
    }
    for (size_t i = 0; i < f->npending; i++) {
        fleet_event(f, "store_pending_written", ",\"route\":\"%s\",\"fleet_generation\":%llu",
                    f->pending[i], (unsigned long long)f->fleet_gen);
        free(f->pending[i]);
    }
    f->npending = 0;
    fleet_pending_save(f);
    struct state next;
    if (state_copy(&next, f->env.state(f->env.ctx)) == 0) {
        next.generation = f->fleet_gen;
        f->env.apply(f->env.ctx, &next, "pending_written");
        state_dispose(&next);
    }
    fleet_register(f);
}

/* Writes the pending rollbacks' routes (as they are in use) over the store's, at the fleet's
 * generation + 1, compared like any change. */
void fleet_pending_write(struct fleet *f)
{
    if (f->pending_call || !f->npending || !f->synced)
        return;
    const struct state *cur = f->env.state(f->env.ctx);
    struct state next;
    if (state_copy(&next, cur) < 0)
        return;
    next.generation = f->pending_gen = f->fleet_gen + 1;
    /* the history entry of a rollback that waited for the store */
    char t[40];
    log_time_rfc3339(t, sizeof t);
    json_t *hist = json_pack("{s:s, s:s, s:s, s:{s:n, s:s}, s:s, s:s, s:{}, s:s, s:s}", "type",
                             "audit", "kind", "change", "time", t, "actor", "uid", "user",
                             f->pending_actor, "role", "operator", "op", "rollback", "args",
                             "result", "ok", "fleet", "pending_written");
    json_t *routes = json_array();
    for (size_t i = 0; i < f->npending; i++)
        json_array_append_new(routes, json_string(f->pending[i]));
    if (hist) {
        json_object_set_new(json_object_get(hist, "args"), "route",
                            json_string(f->npending ? f->pending[0] : ""));
        json_object_set_new(hist, "routes", routes);
    } else {
        json_decref(routes);
    }
    json_t *txn = fleet_change_txn(f, cur, &next, f->pending_actor, "rollback", NULL, hist);
    json_decref(hist);
    state_dispose(&next);
    f->pending_call = txn ? etcd_call(f->etcd, "/v3/kv/txn", txn, on_pending_written, f) : NULL;
    json_decref(txn);
}

/* Writes the pending routes to pending_path ({"format":1,"actor":..,"routes":[..]}; removed
 * when none), durably (temporary file, fsync, rename), so that a restart before the store
 * answers still knows which routes it must not take from the store. */
void fleet_pending_save(struct fleet *f)
{
    if (!f->pending_path)
        return;
    if (!f->npending) {
        unlink(f->pending_path);
        return;
    }
    json_t *routes = json_array();
    for (size_t i = 0; i < f->npending; i++)
        json_array_append_new(routes, json_string(f->pending[i]));
    json_t *doc = json_pack("{s:i, s:s, s:o}", "format", FLEET_FORMAT, "actor", f->pending_actor,
                            "routes", routes);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    size_t n = strlen(f->pending_path);
    char *tmp = malloc(n + 5);
    int ok = text && tmp;
    if (ok) {
        memcpy(tmp, f->pending_path, n);
        memcpy(tmp + n, ".tmp", 5);
        FILE *fp = fopen(tmp, "w");
        ok = fp && fputs(text, fp) >= 0 && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
        if (fp && fclose(fp) != 0)
            ok = 0;
        ok = ok && rename(tmp, f->pending_path) == 0;
    }
    if (!ok)
        fleet_event(f, "store_pending_not_saved", ",\"path\":\"%.300s\"", f->pending_path);
    free(tmp);
    free(text);
}

void fleet_pending_load(struct fleet *f)
{
    json_t *doc = f->pending_path ? json_load_file(f->pending_path, 0, NULL) : NULL;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "routes"), i, r)
    {
        const char *name = json_string_value(r);
        if (name && !fleet_pending_has(f, name) && f->npending < FLEET_MAX_PENDING) {
            char *s = strdup(name);
            if (s)
                f->pending[f->npending++] = s;
        }
    }
    const char *actor = json_string_value(json_object_get(doc, "actor"));
    snprintf(f->pending_actor, sizeof f->pending_actor, "%s", actor ? actor : "");
    if (f->npending)
        fleet_event(f, "store_pending_resumed", ",\"routes\":%zu", f->npending);
    json_decref(doc);
}

int fleet_pending_add(struct fleet *f, const char *route, const char *actor)
{
    if (!fleet_pending_has(f, route)) {
        char *r = f->npending < FLEET_MAX_PENDING ? strdup(route) : NULL;
        if (!r)
            return CUT_ENOMEM;
        f->pending[f->npending++] = r;
    }
    snprintf(f->pending_actor, sizeof f->pending_actor, "%s", actor ? actor : "");
    fleet_pending_save(f);
    return 0;
}

void fleet_pending_remove(struct fleet *f, const char *route)
{
    for (size_t i = 0; i < f->npending; i++) {
        if (strcmp(f->pending[i], route) == 0) {
            free(f->pending[i]);
            f->pending[i] = f->pending[--f->npending];
            fleet_pending_save(f);
            return;
        }
    }
}

void fleet_pending_flush(struct fleet *f)
{
    if (f->reachable && f->synced)
        fleet_pending_write(f);
    fleet_register(f);
}

void fleet_sync_init(struct fleet *f)
{
    f->ev_retry = evtimer_new(f->env.base, on_retry, f);
    f->ev_keepalive = evtimer_new(f->env.base, on_keepalive, f);
}

void fleet_keepalive_arm(struct fleet *f, unsigned ms)
{
    arm_keepalive(f, ms);
}

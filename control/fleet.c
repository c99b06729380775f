/* fleet.c - the fleet store: the watch, re-reads, seeding, the registration, commits, life and
 * status (see fleet.h; the other parts: fleet_internal.h). */
#include "control/fleet.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/etcd.h"
#include "control/etcd_codec.h"
#include "control/fleet_internal.h"
#include "control/fleet_value.h"
#include "core/cut.h"
#include "core/version.h"
#include "proxy/log/log.h"

void fleet_event(struct fleet *f, const char *name, const char *fmt, ...)
{
    char extra[1024] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(extra, sizeof extra, fmt, ap);
        va_end(ap);
    }
    f->env.event(f->env.ctx, name, extra[0] ? extra : NULL);
}

/* Sets reachability and says when it changes. */
void fleet_set_reachable(struct fleet *f, int ok, const char *what)
{
    if (ok == f->reachable)
        return;
    f->reachable = ok;
    if (ok) {
        fleet_event(f, "store_reachable", NULL);
    } else {
        json_t *w = json_string(what ? what : "");
        char *ws = w ? json_dumps(w, JSON_ENCODE_ANY) : NULL;
        fleet_event(f, "store_unreachable", ",\"reason\":%s", ws ? ws : "\"\"");
        free(ws);
        json_decref(w);
    }
}

/* ---- requests ------------------------------------------------------------------------------ */

json_t *fleet_b64_json(const char *s)
{
    char *b = etcd_codec_b64(s, strlen(s));
    json_t *j = b ? json_string(b) : NULL;
    free(b);
    return j;
}

json_t *fleet_put_op(const char *key, const char *value, int64_t lease)
{
    json_t *p = json_pack("{s:o, s:o}", "key", fleet_b64_json(key), "value", fleet_b64_json(value));
    if (p && lease)
        json_object_set_new(p, "lease", json_integer(lease));
    return p;
}

json_t *fleet_range_body(const struct fleet *f)
{
    return json_pack("{s:o, s:o}", "key", fleet_b64_json(f->prefix), "range_end",
                     fleet_b64_json(f->prefix_end));
}

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
        /* A change this replica committed itself is in use already. */
        if (kv.mod_revision > f->revision ||
            strncmp(kv.key, f->replicas_prefix, strlen(f->replicas_prefix)) == 0)
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

/* ---- reading everything (start-up, after a compaction, after an outage) ------------------- */

static void seed_missing(struct fleet *f, const struct fleet_view *v);

static void on_resync(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    f->resync_call = NULL;
    if (status < 0) {
        fleet_set_reachable(f, 0, what);
        fleet_retry_later(f);
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
    json_t *txn = fleet_change_txn(f, cur, &next, "start", "seed", only);
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

/* ---- changes ------------------------------------------------------------------------------- */

/* The transaction that makes next the fleet's state: compare the generation key's revision,
 * put the generation and every route of next that differs from cur (only: exactly the routes
 * i of next with only[i] set). */
json_t *fleet_change_txn(struct fleet *f, const struct state *cur, const struct state *next,
                         const char *actor, const char *op, const unsigned char *only)
{
    json_t *cmp = json_pack("[{s:o, s:s, s:s, s:I}]", "key", fleet_b64_json(f->key_gen), "result",
                            "EQUAL", "target", "MOD", "mod_revision", (json_int_t)f->gen_rev);
    json_t *ops = json_array();
    char *gv = fleet_value_generation(next->generation);
    int bad = !cmp || !ops || !gv;
    if (!bad)
        json_array_append_new(ops,
                              json_pack("{s:o}", "request_put", fleet_put_op(f->key_gen, gv, 0)));
    free(gv);
    for (size_t i = 0; !bad && i < next->nroutes; i++) {
        const struct state_route *nr = &next->routes[i];
        struct state_route *cr = state_route_find((struct state *)cur, nr->name);
        if (only && !only[i])
            continue;
        if (!only && cr && !fleet_pending_has(f, nr->name)) {
            struct state a = {.routes = cr, .nroutes = 1},
                         b = {.routes = (struct state_route *)nr, .nroutes = 1};
            char *ja = state_to_json(&a), *jb = state_to_json(&b);
            int same = ja && jb && strcmp(ja, jb) == 0;
            free(ja);
            free(jb);
            if (same)
                continue;
        }
        char key[512];
        snprintf(key, sizeof key, "%s%s", f->routes_prefix, nr->name);
        char *val = fleet_value_route(nr, next->generation, actor, op, f->replica);
        if (!val) {
            bad = 1;
            break;
        }
        json_array_append_new(ops, json_pack("{s:o}", "request_put", fleet_put_op(key, val, 0)));
        free(val);
    }
    json_t *txn = bad ? NULL : json_pack("{s:o, s:o}", "compare", cmp, "success", ops);
    if (!txn) {
        json_decref(cmp);
        json_decref(ops);
    }
    return txn;
}

static void on_committed(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    f->commit_call = NULL;
    struct state held = *f->commit_next, *next = &held;
    uint64_t gen = held.generation; /* the change's fleet generation */
    fleet_done_fn done = f->commit_done;
    void *dctx = f->commit_ctx;
    free(f->commit_next);
    f->commit_next = NULL;
    int rc = 0;
    char msg[300];
    snprintf(msg, sizeof msg, "%s", what ? what : "");
    if (status == CUT_EIO) {
        fleet_set_reachable(f, 0, what);
        rc = FLEET_UNAVAILABLE;
        f->unavailable++;
    } else if (status < 0) {
        rc = FLEET_REFUSED;
        const char *m = json_string_value(json_object_get(reply, "message"));
        if (!m)
            m = json_string_value(json_object_get(reply, "error"));
        if (m)
            snprintf(msg, sizeof msg, "the store refused the change: %s", m);
    } else if (!json_is_true(json_object_get(reply, "succeeded"))) {
        fleet_set_reachable(f, 1, NULL);
        rc = FLEET_CONFLICT;
        f->conflicts++;
        snprintf(msg, sizeof msg, "the fleet changed since generation %llu; read it again",
                 (unsigned long long)f->fleet_gen);
        f->synced = 0;
        fleet_resync_start(f); /* catch up */
    } else {
        fleet_set_reachable(f, 1, NULL);
        int64_t rev = 0;
        etcd_codec_int(json_object_get(reply, "header"), "revision", &rev);
        f->commits++;
        if (f->revision >= rev) {
            /* the watch was quicker: this change, and maybe later ones, are in use already;
             * what the caller installs must not take a later one back */
            struct state cur;
            if (state_copy(&cur, f->env.state(f->env.ctx)) == 0) {
                state_dispose(next);
                *next = cur;
            }
        } else {
            f->revision = rev;
            f->gen_rev = rev;
            f->fleet_gen = next->generation;
        }
    }
    done(dctx, rc, next, gen, msg); /* puts the change in use (or refuses it) */
    if (rc == 0)
        fleet_register(f);
}

int fleet_commit(struct fleet *f, struct state *next, const char *actor, const char *op,
                 fleet_done_fn done, void *ctx)
{
    if (f->commit_call) {
        state_dispose(next);
        return CUT_EAGAIN;
    }
    if (!f->synced || !f->etcd) {
        state_dispose(next);
        return FLEET_UNAVAILABLE;
    }
    const struct state *cur = f->env.state(f->env.ctx);
    next->generation = f->fleet_gen + 1;
    json_t *txn = fleet_change_txn(f, cur, next, actor, op, NULL);
    f->commit_next = malloc(sizeof *f->commit_next);
    if (!txn || !f->commit_next) {
        json_decref(txn);
        free(f->commit_next);
        f->commit_next = NULL;
        state_dispose(next);
        return CUT_ENOMEM;
    }
    *f->commit_next = *next;
    memset(next, 0, sizeof *next);
    f->commit_done = done;
    f->commit_ctx = ctx;
    f->commit_call = etcd_call(f->etcd, "/v3/kv/txn", txn, on_committed, f);
    json_decref(txn);
    if (!f->commit_call) {
        state_dispose(f->commit_next);
        free(f->commit_next);
        f->commit_next = NULL;
        return CUT_ENOMEM;
    }
    return 0;
}

int fleet_busy(const struct fleet *f)
{
    return f->commit_call != NULL;
}

int fleet_reachable(const struct fleet *f)
{
    return f->reachable && f->synced && f->etcd;
}

/* ---- life ------------------------------------------------------------------------------------ */

static char *cat(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, b, nb + 1);
    }
    return s;
}

static char *read_password(const char *path, char *err, size_t cap)
{
    FILE *fp = fopen(path, "r");
    char buf[1024];
    size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
    if (!fp) {
        snprintf(err, cap, "control.store.password_file: cannot read %s", path);
        return NULL;
    }
    fclose(fp);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (!n) {
        snprintf(err, cap, "control.store.password_file: %s is empty", path);
        return NULL;
    }
    return strdup(buf);
}

struct fleet *fleet_new(const struct cfg *cfg, const struct fleet_env *env, char *err, size_t cap)
{
    const struct cfg_store *sc = &cfg->control.store;
    struct fleet *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    f->env = *env;
    for (size_t i = 0; i < sc->nendpoints && i < CFG_STORE_MAX_ENDPOINTS; i++)
        f->endpoints[i] = sc->endpoints[i]; /* the configuration outlives the fleet: a reload
                                             * may not change the store */
    f->opts.endpoints = f->endpoints;
    f->opts.nendpoints = sc->nendpoints;
    if (sc->tls) {
        f->opts.ca_file = sc->tls->ca;
        if (sc->tls->client_cert) {
            f->opts.cert_file = sc->tls->client_cert->cert;
            f->opts.key_file = sc->tls->client_cert->key;
        }
    }
    f->opts.dial_timeout_ms = sc->dial_timeout_ms;
    f->opts.request_timeout_ms = sc->request_timeout_ms;
    if (sc->user) {
        f->password = read_password(sc->password_file, err, cap);
        if (!f->password) {
            fleet_free(f);
            return NULL;
        }
        f->opts.user = sc->user;
        f->opts.password = f->password;
    }
    const char *name = sc->replica ? sc->replica : getenv("POD_NAME");
    char host[80] = "";
    if (!name || !*name) {
        gethostname(host, sizeof host - 1);
        name = host[0] ? host : "cutover";
    }
    snprintf(f->replica, sizeof f->replica, "%.64s", name);
    snprintf(f->cluster, sizeof f->cluster, "%s", cfg->cluster);
    snprintf(f->region, sizeof f->region, "%s", cfg->region);
    log_time_rfc3339(f->started, sizeof f->started);
    f->prefix = strdup(sc->prefix);
    f->prefix_end = etcd_codec_prefix_end(sc->prefix);
    f->key_gen = cat(sc->prefix, "generation");
    f->routes_prefix = cat(sc->prefix, "routes/");
    f->replicas_prefix = cat(sc->prefix, "replicas/");
    f->key_self = f->replicas_prefix ? cat(f->replicas_prefix, f->replica) : NULL;
    f->replicas = json_object();
    f->invalid = json_object();
    if (cfg->control.state_file) {
        f->pending_path = cat(cfg->control.state_file, ".pending");
        fleet_pending_load(f);
    }
    f->ev_retry = evtimer_new(env->base, on_retry, f);
    f->ev_keepalive = evtimer_new(env->base, on_keepalive, f);
    if (!f->prefix || !f->prefix_end || !f->key_gen || !f->routes_prefix || !f->key_self ||
        !f->replicas || !f->invalid || !f->ev_retry || !f->ev_keepalive) {
        snprintf(err, cap, "out of memory");
        fleet_free(f);
        return NULL;
    }
    return f;
}

void fleet_free(struct fleet *f)
{
    if (!f)
        return;
    if (f->commit_next) {
        state_dispose(f->commit_next);
        free(f->commit_next);
    }
    etcd_free(f->etcd); /* cancels the calls and the watch: no callback after this */
    if (f->ev_retry)
        event_free(f->ev_retry);
    if (f->ev_keepalive)
        event_free(f->ev_keepalive);
    for (size_t i = 0; i < f->npending; i++)
        free(f->pending[i]);
    free(f->password);
    free(f->pending_path);
    free(f->prefix);
    free(f->prefix_end);
    free(f->key_gen);
    free(f->routes_prefix);
    free(f->replicas_prefix);
    free(f->key_self);
    json_decref(f->replicas);
    json_decref(f->invalid);
    free(f);
}

void fleet_run(struct fleet *f)
{
    char err[256];
    f->etcd = etcd_new(f->env.base, &f->opts, err, sizeof err);
    if (!f->etcd) {
        fleet_event(f, "store_unreachable", ",\"reason\":\"cannot create the client\"");
        return;
    }
    if (f->synced)
        fleet_watch_start(f);
    else
        fleet_resync_start(f);
    if (f->npending)
        fleet_pending_write(f); /* rollbacks a previous run could not write */
    arm_keepalive(f, 0);        /* grants the lease, then registers */
}

json_t *fleet_status(const struct fleet *f)
{
    json_t *reps = json_array();
    uint64_t gen = f->env.state(f->env.ctx)->generation;
    int converged = 1, self_seen = 0;
    const char *name;
    json_t *reg;
    json_object_foreach(f->replicas, name, reg)
    {
        json_int_t g = json_integer_value(json_object_get(reg, "generation"));
        int lag = (uint64_t)g < f->fleet_gen;
        converged &= !lag;
        self_seen |= strcmp(name, f->replica) == 0;
        json_t *r = json_deep_copy(reg);
        json_object_set_new(r, "lagging", json_boolean(lag));
        json_array_append_new(reps, r);
    }
    if (!self_seen) { /* not registered (yet): what this replica knows of itself */
        converged &= gen >= f->fleet_gen;
        json_array_append_new(reps, json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:b, s:b}", "replica",
                                              f->replica, "generation", (json_int_t)gen, "cluster",
                                              f->cluster, "region", f->region, "version",
                                              CUTOVER_VERSION, "started", f->started, "lagging",
                                              gen < f->fleet_gen, "registered", 0));
    }
    json_t *pending = json_array();
    for (size_t i = 0; i < f->npending; i++)
        json_array_append_new(pending, json_string(f->pending[i]));
    json_t *invalid = json_array();
    const char *key;
    json_t *iv;
    json_object_foreach(f->invalid, key, iv)
    {
        json_t *x = json_deep_copy(iv);
        json_object_set_new(x, "key", json_string(key));
        json_array_append_new(invalid, x);
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:b}", "store",
                     f->reachable ? "ok" : "unreachable", "replica", f->replica, "prefix",
                     f->prefix, "generation", (json_int_t)f->fleet_gen, "revision",
                     (json_int_t)f->revision, "pending", pending, "invalid", invalid, "replicas",
                     reps, "converged", converged && f->reachable && !f->npending);
}

static void on_revoked(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    (void)reply;
    (void)what;
    f->lease_call = NULL;
    if (status == 0)
        fleet_event(f, "store_left", NULL);
}

void fleet_stop(struct fleet *f)
{
    f->stopping = 1;
    event_del(f->ev_keepalive);
    if (f->lease_call) {
        etcd_call_cancel(f->lease_call);
        f->lease_call = NULL;
    }
    if (f->reg_call) {
        etcd_call_cancel(f->reg_call);
        f->reg_call = NULL;
    }
    if (!f->lease || !f->etcd)
        return;
    json_t *body = json_pack("{s:I}", "ID", (json_int_t)f->lease);
    f->lease_call = body ? etcd_call(f->etcd, "/v3/lease/revoke", body, on_revoked, f) : NULL;
    json_decref(body);
    f->lease = 0;
}

const char *fleet_replica(const struct fleet *f)
{
    return f->replica;
}

void fleet_get_stats(const struct fleet *f, struct fleet_stats *out)
{
    memset(out, 0, sizeof *out);
    out->reachable = fleet_reachable(f);
    out->generation = f->fleet_gen;
    out->invalid = json_object_size(f->invalid);
    out->pending = f->npending;
    out->applied = f->applied;
    out->commits = f->commits;
    out->conflicts = f->conflicts;
    out->unavailable = f->unavailable;
    const char *name;
    json_t *reg;
    json_object_foreach(f->replicas, name, reg)
    {
        out->replicas++;
        out->lagging +=
            (uint64_t)json_integer_value(json_object_get(reg, "generation")) < f->fleet_gen;
    }
}

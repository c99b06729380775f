/* fleet.c - the fleet store (see fleet.h). */
#include "control/fleet.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control/etcd.h"
#include "control/etcd_codec.h"
#include "core/cut.h"
#include "core/version.h"
#include "proxy/log/log.h"

#define FLEET_RETRY_MIN_MS 100
#define FLEET_RETRY_MAX_MS 2000
#define FLEET_MAX_PENDING 64

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
    int synced;       /* the state in use came from the store (else: a re-read is due) */
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
    uint64_t pending_gen; /* the fleet generation pending_call writes */
    struct etcd_call *seed_call; /* routes the store lacks (after a reload or an outage) */
    uint64_t applied, commits, conflicts, unavailable; /* for fleet_get_stats */
    int stopping; /* fleet_stop: no registration any more */
    json_t *replicas; /* name -> registration (from the watch) */
    json_t *invalid;  /* key -> {"revision","error"} of stored values not applied */
};

static void fleet_event(struct fleet *f, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fleet_event(struct fleet *f, const char *name, const char *fmt, ...)
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
static void set_reachable(struct fleet *f, int ok, const char *what)
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

/* ---- the stored values ------------------------------------------------------------------ */

char *fleet_route_value(const struct state_route *r, uint64_t gen, const char *actor,
                        const char *op, const char *replica)
{
    struct state one = {.generation = gen, .routes = (struct state_route *)r, .nroutes = 1};
    char *st = state_to_json(&one);
    json_t *stj = st ? json_loads(st, 0, NULL) : NULL;
    free(st);
    char t[40];
    log_time_rfc3339(t, sizeof t);
    json_t *v = stj ? json_pack("{s:i, s:I, s:{s:s, s:s, s:s, s:s}, s:o}", "format", FLEET_FORMAT,
                                "generation", (json_int_t)gen, "by", "actor", actor ? actor : "",
                                "op", op ? op : "", "replica", replica ? replica : "", "time", t,
                                "state", stj)
                    : NULL;
    char *out = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return out;
}

int fleet_route_parse(const char *name, const char *text, size_t len, struct state *out,
                      char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    json_t *fmt = json_object_get(v, "format"), *st = json_object_get(v, "state");
    json_t *gen = json_object_get(v, "generation");
    int rc = CUT_EINVAL;
    if (!json_is_object(v)) {
        snprintf(why, cap, "not a JSON object%s%s", v ? "" : ": ", v ? "" : je.text);
    } else if (!json_is_integer(fmt) || json_integer_value(fmt) != FLEET_FORMAT) {
        snprintf(why, cap, "format: this version reads format %d", FLEET_FORMAT);
    } else if (!json_is_integer(gen) || json_integer_value(gen) < 1) {
        snprintf(why, cap, "generation: expected a positive integer");
    } else if (!json_is_object(st)) {
        snprintf(why, cap, "state: expected an object");
    } else {
        char *text2 = json_dumps(st, JSON_COMPACT);
        char err[256];
        if (!text2) {
            snprintf(why, cap, "out of memory");
        } else if (state_from_json(text2, strlen(text2), out, err, sizeof err) < 0) {
            snprintf(why, cap, "state: %s", err);
        } else if (out->nroutes != 1 || strcmp(out->routes[0].name, name) != 0) {
            snprintf(why, cap, "state: expected exactly the route \"%.128s\"", name);
            state_dispose(out);
        } else {
            out->generation = (uint64_t)json_integer_value(gen);
            rc = 0;
        }
        free(text2);
    }
    json_decref(v);
    return rc;
}

char *fleet_generation_value(uint64_t gen)
{
    char buf[64];
    snprintf(buf, sizeof buf, "{\"format\":%d,\"generation\":%llu}", FLEET_FORMAT,
             (unsigned long long)gen);
    return strdup(buf);
}

int fleet_generation_parse(const char *text, size_t len, uint64_t *gen)
{
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *fmt = json_object_get(v, "format"), *g = json_object_get(v, "generation");
    int ok = json_is_integer(fmt) && json_integer_value(fmt) == FLEET_FORMAT &&
             json_is_integer(g) && json_integer_value(g) >= 1;
    if (ok)
        *gen = (uint64_t)json_integer_value(g);
    json_decref(v);
    return ok ? 0 : CUT_EINVAL;
}

/* ---- requests ------------------------------------------------------------------------------ */

static json_t *b64s(const char *s)
{
    char *b = etcd_codec_b64(s, strlen(s));
    json_t *j = b ? json_string(b) : NULL;
    free(b);
    return j;
}

static json_t *put_op(const char *key, const char *value, int64_t lease)
{
    json_t *p = json_pack("{s:o, s:o}", "key", b64s(key), "value", b64s(value));
    if (p && lease)
        json_object_set_new(p, "lease", json_integer(lease));
    return p;
}

static json_t *range_body(const struct fleet *f)
{
    return json_pack("{s:o, s:o}", "key", b64s(f->prefix), "range_end", b64s(f->prefix_end));
}

static int pending_has(const struct fleet *f, const char *route)
{
    for (size_t i = 0; i < f->npending; i++)
        if (strcmp(f->pending[i], route) == 0)
            return 1;
    return 0;
}

/* One key-value of a range or an event, decoded. */
struct kv {
    char *key, *value;
    size_t vlen;
    int64_t mod_revision;
};

static int kv_decode(const json_t *j, struct kv *kv)
{
    memset(kv, 0, sizeof *kv);
    size_t klen;
    const char *k = json_string_value(json_object_get(j, "key"));
    const char *v = json_string_value(json_object_get(j, "value"));
    if (!k || etcd_codec_unb64(k, &kv->key, &klen) < 0)
        return CUT_EINVAL;
    if (etcd_codec_unb64(v ? v : "", &kv->value, &kv->vlen) < 0 ||
        etcd_codec_int(j, "mod_revision", &kv->mod_revision) < 0) {
        free(kv->key);
        free(kv->value);
        return CUT_EINVAL;
    }
    return 0;
}

static void kv_dispose(struct kv *kv)
{
    free(kv->key);
    free(kv->value);
}

/* ---- laying what the store holds over the state in use ------------------------------------- */

/* What one batch of the store's keys (a range, or a watch message's events) says. */
struct view {
    int has_gen;
    uint64_t gen;
    int64_t gen_rev;
    struct state docs[1024]; /* by route index of the state in use; nroutes 0: none */
    int changed;
};

static void invalid_value(struct fleet *f, const char *key, int64_t rev, const char *why)
{
    json_t *old = json_object_get(f->invalid, key);
    if (old && json_integer_value(json_object_get(old, "revision")) == rev)
        return;
    json_object_set_new(f->invalid, key, json_pack("{s:I, s:s}", "revision", (json_int_t)rev,
                                                   "error", why));
    json_t *k = json_string(key), *w = json_string(why);
    char *ks = k ? json_dumps(k, JSON_ENCODE_ANY) : NULL, *ws = w ? json_dumps(w, JSON_ENCODE_ANY) : NULL;
    fleet_event(f, "store_value_invalid", ",\"key\":%s,\"revision\":%lld,\"error\":%s",
                ks ? ks : "\"\"", (long long)rev, ws ? ws : "\"\"");
    free(ks);
    free(ws);
    json_decref(k);
    json_decref(w);
}

/* Whether a stored route has the pools this replica's configuration gives the route (the
 * configuration owns routes and pools; the store owns their runtime state). */
static int same_pools(const struct state_route *a, const struct state_route *b)
{
    if (a->npools != b->npools)
        return 0;
    for (size_t i = 0; i < a->npools; i++)
        if (strcmp(a->pools[i].name, b->pools[i].name) != 0)
            return 0;
    return 1;
}

/* Takes one key-value (deleted: a DELETE event) into v. */
static void view_take(struct fleet *f, struct view *v, const struct state *cur, struct kv *kv,
                      int deleted)
{
    size_t np = strlen(f->prefix);
    if (strcmp(kv->key, f->key_gen) == 0) {
        uint64_t g;
        if (deleted)
            return;
        if (fleet_generation_parse(kv->value, kv->vlen, &g) < 0) {
            invalid_value(f, kv->key, kv->mod_revision, "not a generation value of this format");
            return;
        }
        json_object_del(f->invalid, kv->key);
        v->has_gen = 1;
        v->gen = g;
        v->gen_rev = kv->mod_revision;
        return;
    }
    if (strncmp(kv->key, f->replicas_prefix, strlen(f->replicas_prefix)) == 0) {
        const char *name = kv->key + strlen(f->replicas_prefix);
        json_t *reg = deleted ? NULL : json_loadb(kv->value, kv->vlen, 0, NULL);
        if (deleted)
            json_object_del(f->replicas, name);
        else if (json_is_object(reg))
            json_object_set(f->replicas, name, reg);
        json_decref(reg);
        return;
    }
    if (strncmp(kv->key, f->routes_prefix, strlen(f->routes_prefix)) != 0 || deleted) {
        (void)np;
        return; /* not ours to read; a deleted route is recreated from the configuration at
                 * the next start of a replica that has it */
    }
    const char *name = kv->key + strlen(f->routes_prefix);
    size_t idx = 0;
    while (idx < cur->nroutes && strcmp(cur->routes[idx].name, name) != 0)
        idx++;
    if (idx == cur->nroutes || idx >= CUT_ARRAY_LEN(v->docs))
        return; /* a route this replica's configuration does not have */
    struct state doc;
    char why[300];
    if (fleet_route_parse(name, kv->value, kv->vlen, &doc, why, sizeof why) < 0) {
        invalid_value(f, kv->key, kv->mod_revision, why);
        return;
    }
    if (!same_pools(&doc.routes[0], &cur->routes[idx])) {
        invalid_value(f, kv->key, kv->mod_revision,
                      "its pools differ from this replica's configuration");
        state_dispose(&doc);
        return;
    }
    json_object_del(f->invalid, kv->key);
    state_dispose(&v->docs[idx]);
    v->docs[idx] = doc;
    v->changed = 1;
}

static void view_dispose(struct view *v)
{
    for (size_t i = 0; i < CUT_ARRAY_LEN(v->docs); i++)
        state_dispose(&v->docs[i]);
}

/* The state in use with the routes v has (except pending rollbacks), at generation gen.
 * Returns 0, or CUT_ENOMEM (out empty). */
static int view_merge(struct fleet *f, const struct state *cur, const struct view *v,
                      uint64_t gen, struct state *out)
{
    struct state tmp = {.generation = gen, .nroutes = cur->nroutes};
    tmp.routes = calloc(cur->nroutes ? cur->nroutes : 1, sizeof *tmp.routes);
    if (!tmp.routes)
        return CUT_ENOMEM;
    for (size_t i = 0; i < cur->nroutes; i++) {
        int take = i < CUT_ARRAY_LEN(v->docs) && v->docs[i].nroutes == 1 &&
                   !pending_has(f, cur->routes[i].name);
        tmp.routes[i] = take ? v->docs[i].routes[0] : cur->routes[i]; /* shallow */
    }
    int rc = state_copy(out, &tmp);
    free(tmp.routes);
    return rc;
}

/* ---- the watch ------------------------------------------------------------------------------ */

static void start_watch(struct fleet *f);
static void start_resync(struct fleet *f);
static json_t *change_txn(struct fleet *f, const struct state *cur, const struct state *next,
                          const char *actor, const char *op, const unsigned char *only);
struct view;
static void seed_missing(struct fleet *f, const struct view *v);
static void pending_save(struct fleet *f);
static void register_self(struct fleet *f);
static void write_pending(struct fleet *f);

static void retry_later(struct fleet *f)
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
        start_resync(f);
    else if (!f->watch)
        start_watch(f);
}

/* Applies what a range or a watch message said: a new state in use when a route or the
 * generation changed. */
static void apply_view(struct fleet *f, struct view *v, int64_t revision, const char *why)
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
    if (view_merge(f, cur, v, gen ? gen : cur->generation, &next) < 0) {
        fleet_event(f, "store_apply_failed", ",\"reason\":\"out of memory\"");
        f->synced = 0; /* read it all again */
        return;
    }
    f->env.apply(f->env.ctx, &next, why);
    f->applied++;
    state_dispose(&next);
    if (f->reg_gen != f->env.state(f->env.ctx)->generation)
        register_self(f);
}

static void on_watch(void *ctx, int status, json_t *msg)
{
    struct fleet *f = ctx;
    if (status < 0) {
        f->watch = NULL; /* freed by the client after this returns */
        set_reachable(f, 0, "watch ended");
        retry_later(f);
        return;
    }
    set_reachable(f, 1, NULL);
    f->backoff_ms = 0;
    int64_t compact = 0;
    etcd_codec_int(msg, "compact_revision", &compact);
    if (compact > 0 || json_is_true(json_object_get(msg, "canceled"))) {
        /* compacted past the revision the watch resumed from: read everything again */
        fleet_event(f, "store_compacted", ",\"revision\":%lld", (long long)compact);
        etcd_watch_cancel(f->watch);
        f->watch = NULL;
        f->synced = 0;
        start_resync(f);
        return;
    }
    json_t *events = json_object_get(msg, "events");
    if (!json_is_array(events) || json_array_size(events) == 0)
        return; /* created, or progress */
    struct view *v = calloc(1, sizeof *v);
    if (!v) {
        f->synced = 0;
        retry_later(f);
        return;
    }
    const struct state *cur = f->env.state(f->env.ctx);
    int64_t rev = 0;
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        struct kv kv;
        if (kv_decode(json_object_get(e, "kv"), &kv) < 0)
            continue;
        if (kv.mod_revision > rev)
            rev = kv.mod_revision;
        const char *type = json_string_value(json_object_get(e, "type"));
        int deleted = type && strcmp(type, "DELETE") == 0;
        /* A change this replica committed itself is in use already. */
        if (kv.mod_revision > f->revision || strncmp(kv.key, f->replicas_prefix,
                                                     strlen(f->replicas_prefix)) == 0)
            view_take(f, v, cur, &kv, deleted);
        kv_dispose(&kv);
    }
    if (rev > f->revision || v->changed)
        apply_view(f, v, rev, "watch");
    view_dispose(v);
    free(v);
}

static void start_watch(struct fleet *f)
{
    if (f->watch)
        return;
    f->watch = etcd_watch(f->etcd, f->prefix, f->prefix_end, f->revision + 1, on_watch, f);
    if (!f->watch)
        retry_later(f);
}

/* ---- reading everything (start-up, after a compaction, after an outage) ------------------- */

/* Reads a range reply into a view; returns the reply's revision (0 when it has none). */
static int64_t view_from_range(struct fleet *f, const struct state *cur, json_t *reply,
                               struct view *v)
{
    int64_t rev = 0;
    etcd_codec_int(json_object_get(reply, "header"), "revision", &rev);
    json_object_clear(f->replicas);
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(reply, "kvs"), i, j)
    {
        struct kv kv;
        if (kv_decode(j, &kv) == 0) {
            view_take(f, v, cur, &kv, 0);
            kv_dispose(&kv);
        }
    }
    return rev;
}

static void on_resync(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    f->resync_call = NULL;
    if (status < 0) {
        set_reachable(f, 0, what);
        retry_later(f);
        return;
    }
    set_reachable(f, 1, NULL);
    f->backoff_ms = 0;
    struct view *v = calloc(1, sizeof *v);
    if (!v) {
        retry_later(f);
        return;
    }
    const struct state *cur = f->env.state(f->env.ctx);
    int64_t rev = view_from_range(f, cur, reply, v);
    f->revision = 0; /* everything in the range counts */
    v->changed = 1;
    apply_view(f, v, rev, "resync");
    f->synced = 1;
    seed_missing(f, v);
    view_dispose(v);
    free(v);
    if (f->npending)
        write_pending(f);
    register_self(f);
    start_watch(f);
}

void fleet_resync(struct fleet *f)
{
    if (!f->etcd)
        return;
    f->synced = 0;
    start_resync(f);
}

static void on_seeded(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    f->seed_call = NULL;
    if (status < 0) {
        set_reachable(f, status != CUT_EIO, what);
        return;
    }
    if (json_is_true(json_object_get(reply, "succeeded")))
        fleet_event(f, "store_seeded", NULL);
    fleet_resync(f); /* read what is there now (ours, or a racing replica's) */
}

/* Creates the routes of the state in use that the store lacks (create-if-absent, compared on
 * the generation key); v says which it has. */
static void seed_missing(struct fleet *f, const struct view *v)
{
    const struct state *cur = f->env.state(f->env.ctx);
    unsigned char only[CUT_ARRAY_LEN(v->docs)] = {0};
    int any = 0;
    for (size_t i = 0; i < cur->nroutes && i < CUT_ARRAY_LEN(v->docs); i++) {
        char key[512];
        snprintf(key, sizeof key, "%s%s", f->routes_prefix, cur->routes[i].name);
        only[i] = v->docs[i].nroutes == 0 && !json_object_get(f->invalid, key) &&
                  !pending_has(f, cur->routes[i].name);
        any |= only[i];
    }
    if (!any || f->seed_call)
        return;
    struct state next;
    if (state_copy(&next, cur) < 0)
        return;
    next.generation = f->fleet_gen + 1;
    json_t *txn = change_txn(f, cur, &next, "start", "seed", only);
    state_dispose(&next);
    f->seed_call = txn ? etcd_call(f->etcd, "/v3/kv/txn", txn, on_seeded, f) : NULL;
    json_decref(txn);
}

static void start_resync(struct fleet *f)
{
    if (f->resync_call)
        return;
    if (f->watch) {
        etcd_watch_cancel(f->watch);
        f->watch = NULL;
    }
    json_t *body = range_body(f);
    f->resync_call = body ? etcd_call(f->etcd, "/v3/kv/range", body, on_resync, f) : NULL;
    json_decref(body);
    if (!f->resync_call)
        retry_later(f);
}

/* ---- the registration ------------------------------------------------------------------------ */

static void on_registered(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    (void)reply;
    f->reg_call = NULL;
    if (status < 0) {
        set_reachable(f, status != FLEET_UNAVAILABLE && status != CUT_EIO, what);
        f->reg_gen = 0; /* again at the next keepalive */
        return;
    }
    if (f->reg_dirty) {
        f->reg_dirty = 0;
        register_self(f);
    }
}

static void register_self(struct fleet *f)
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
                            f->cluster, "region", f->region, "version", CUTOVER_VERSION,
                            "started", f->started, "pending", (int)f->npending);
    char *text = reg ? json_dumps(reg, JSON_COMPACT) : NULL;
    json_t *body = text ? put_op(f->key_self, text, f->lease) : NULL;
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
            set_reachable(f, 0, what);
        if (f->lease && status == 0) /* the lease expired (a long outage): a new one */
            fleet_event(f, "store_lease_expired", NULL);
        if (status == 0 || status == CUT_EPROTO)
            f->lease = 0;
        arm_keepalive(f, f->lease ? keepalive_ms(f) : FLEET_RETRY_MAX_MS);
        return;
    }
    set_reachable(f, 1, NULL);
    int fresh = f->lease != id;
    f->lease = id;
    if (fresh || !f->reg_gen)
        register_self(f);
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
        start_resync(f);
}

/* ---- changes ------------------------------------------------------------------------------- */

/* The transaction that makes next the fleet's state: compare the generation key's revision,
 * put the generation and every route of next that differs from cur (only: exactly the routes
 * i of next with only[i] set). */
static json_t *change_txn(struct fleet *f, const struct state *cur, const struct state *next,
                          const char *actor, const char *op, const unsigned char *only)
{
    json_t *cmp = json_pack("[{s:o, s:s, s:s, s:I}]", "key", b64s(f->key_gen), "result", "EQUAL",
                            "target", "MOD", "mod_revision", (json_int_t)f->gen_rev);
    json_t *ops = json_array();
    char *gv = fleet_generation_value(next->generation);
    int bad = !cmp || !ops || !gv;
    if (!bad)
        json_array_append_new(ops, json_pack("{s:o}", "request_put", put_op(f->key_gen, gv, 0)));
    free(gv);
    for (size_t i = 0; !bad && i < next->nroutes; i++) {
        const struct state_route *nr = &next->routes[i];
        struct state_route *cr = state_route_find((struct state *)cur, nr->name);
        if (only && !only[i])
            continue;
        if (!only && cr && !pending_has(f, nr->name)) {
            struct state a = {.routes = cr, .nroutes = 1}, b = {.routes = (struct state_route *)nr,
                                                                .nroutes = 1};
            char *ja = state_to_json(&a), *jb = state_to_json(&b);
            int same = ja && jb && strcmp(ja, jb) == 0;
            free(ja);
            free(jb);
            if (same)
                continue;
        }
        char key[512];
        snprintf(key, sizeof key, "%s%s", f->routes_prefix, nr->name);
        char *val = fleet_route_value(nr, next->generation, actor, op, f->replica);
        if (!val) {
            bad = 1;
            break;
        }
        json_array_append_new(ops, json_pack("{s:o}", "request_put", put_op(key, val, 0)));
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
        set_reachable(f, 0, what);
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
        set_reachable(f, 1, NULL);
        rc = FLEET_CONFLICT;
        f->conflicts++;
        snprintf(msg, sizeof msg, "the fleet changed since generation %llu; read it again",
                 (unsigned long long)f->fleet_gen);
        f->synced = 0;
        start_resync(f); /* catch up */
    } else {
        set_reachable(f, 1, NULL);
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
        register_self(f);
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
    json_t *txn = change_txn(f, cur, next, actor, op, NULL);
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

/* ---- rollbacks made while the store could not be written ------------------------------------ */

static void on_pending_written(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    f->pending_call = NULL;
    if (status < 0) {
        set_reachable(f, status != CUT_EIO, what);
        retry_later(f);
        return;
    }
    if (!json_is_true(json_object_get(reply, "succeeded"))) {
        f->synced = 0; /* the fleet moved on: read it, then write the rollbacks again over it */
        start_resync(f);
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
    pending_save(f);
    struct state next;
    if (state_copy(&next, f->env.state(f->env.ctx)) == 0) {
        next.generation = f->fleet_gen;
        f->env.apply(f->env.ctx, &next, "pending_written");
        state_dispose(&next);
    }
    register_self(f);
}

/* Writes the pending rollbacks' routes (as they are in use) over the store's, at the fleet's
 * generation + 1, compared like any change. */
static void write_pending(struct fleet *f)
{
    if (f->pending_call || !f->npending || !f->synced)
        return;
    const struct state *cur = f->env.state(f->env.ctx);
    struct state next;
    if (state_copy(&next, cur) < 0)
        return;
    next.generation = f->pending_gen = f->fleet_gen + 1;
    json_t *txn = change_txn(f, cur, &next, f->pending_actor, "rollback", NULL);
    state_dispose(&next);
    f->pending_call = txn ? etcd_call(f->etcd, "/v3/kv/txn", txn, on_pending_written, f) : NULL;
    json_decref(txn);
}

/* Writes the pending routes to pending_path ({"format":1,"actor":..,"routes":[..]}; removed
 * when none), durably (temporary file, fsync, rename), so that a restart before the store
 * answers still knows which routes it must not take from the store. */
static void pending_save(struct fleet *f)
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

static void pending_load(struct fleet *f)
{
    json_t *doc = f->pending_path ? json_load_file(f->pending_path, 0, NULL) : NULL;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "routes"), i, r)
    {
        const char *name = json_string_value(r);
        if (name && !pending_has(f, name) && f->npending < FLEET_MAX_PENDING) {
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
    if (!pending_has(f, route)) {
        char *r = f->npending < FLEET_MAX_PENDING ? strdup(route) : NULL;
        if (!r)
            return CUT_ENOMEM;
        f->pending[f->npending++] = r;
    }
    snprintf(f->pending_actor, sizeof f->pending_actor, "%s", actor ? actor : "");
    pending_save(f);
    return 0;
}

void fleet_pending_remove(struct fleet *f, const char *route)
{
    for (size_t i = 0; i < f->npending; i++) {
        if (strcmp(f->pending[i], route) == 0) {
            free(f->pending[i]);
            f->pending[i] = f->pending[--f->npending];
            pending_save(f);
            return;
        }
    }
}

void fleet_pending_flush(struct fleet *f)
{
    if (f->reachable && f->synced)
        write_pending(f);
    register_self(f);
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
        pending_load(f);
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

/* ---- start-up ------------------------------------------------------------------------------ */

struct blocking {
    int done, status;
    json_t *reply;
    char what[300];
};

static void on_blocking(void *ctx, int status, json_t *reply, const char *what)
{
    struct blocking *b = ctx;
    b->done = 1;
    b->status = status;
    b->reply = json_incref(reply);
    snprintf(b->what, sizeof b->what, "%s", what ? what : "");
}

/* One call on a private base, run until it completes (the client's timeouts bound it). */
static int call_blocking(struct etcd *e, struct event_base *base, const char *path, json_t *body,
                         struct blocking *b)
{
    memset(b, 0, sizeof *b);
    if (!etcd_call(e, path, body, on_blocking, b))
        return CUT_ENOMEM;
    while (!b->done && event_base_loop(base, EVLOOP_ONCE) == 0)
        ;
    return b->done ? b->status : CUT_EIO;
}

int fleet_start(struct fleet *f, struct state *rt, int *from_store)
{
    *from_store = 0;
    char err[256];
    struct event_base *base = event_base_new();
    struct etcd *e = base ? etcd_new(base, &f->opts, err, sizeof err) : NULL;
    if (!e) {
        if (base)
            event_base_free(base);
        fleet_event(f, "store_unreachable", ",\"reason\":\"cannot create the client\"");
        return 0;
    }
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        struct blocking b;
        json_t *body = range_body(f);
        int st = body ? call_blocking(e, base, "/v3/kv/range", body, &b) : CUT_ENOMEM;
        json_decref(body);
        if (st < 0) {
            set_reachable(f, 1, NULL); /* so that the next line says it */
            set_reachable(f, 0, b.what[0] ? b.what : "no member answered");
            json_decref(b.reply);
            break;
        }
        f->reachable = 1;
        struct view *v = calloc(1, sizeof *v);
        if (!v) {
            json_decref(b.reply);
            rc = CUT_ENOMEM;
            break;
        }
        int64_t rev = view_from_range(f, rt, b.reply, v);
        json_decref(b.reply);
        /* routes the store does not have yet: created from what this process would serve */
        int missing = !v->has_gen;
        for (size_t i = 0; i < rt->nroutes && i < CUT_ARRAY_LEN(v->docs); i++) {
            char key[512];
            snprintf(key, sizeof key, "%s%s", f->routes_prefix, rt->routes[i].name);
            if (v->docs[i].nroutes == 0 && !json_object_get(f->invalid, key))
                missing = 1;
        }
        uint64_t gen = v->has_gen ? v->gen : rt->generation;
        f->fleet_gen = v->has_gen ? v->gen : 0;
        f->gen_rev = v->has_gen ? v->gen_rev : 0;
        struct state merged;
        if (view_merge(f, rt, v, gen, &merged) < 0) {
            view_dispose(v);
            free(v);
            rc = CUT_ENOMEM;
            break;
        }
        if (!missing) {
            view_dispose(v);
            free(v);
            state_dispose(rt);
            *rt = merged;
            f->revision = rev;
            f->synced = 1;
            *from_store = 1;
            fleet_event(f, "store_loaded", ",\"fleet_generation\":%llu,\"revision\":%lld",
                        (unsigned long long)gen, (long long)rev);
            break;
        }
        /* create-if-absent: the routes the store lacks (and the generation), compared on the
         * generation key like every write; a replica that raced wins and this one reads again */
        unsigned char only[CUT_ARRAY_LEN(v->docs)] = {0};
        for (size_t i = 0; i < merged.nroutes && i < CUT_ARRAY_LEN(v->docs); i++) {
            char key[512];
            snprintf(key, sizeof key, "%s%s", f->routes_prefix, merged.routes[i].name);
            only[i] = v->docs[i].nroutes == 0 && !json_object_get(f->invalid, key);
        }
        struct state seed = merged; /* taken */
        /* a store without a generation yet continues this replica's numbering */
        seed.generation = v->has_gen ? f->fleet_gen + 1 : rt->generation + 1;
        {
            json_t *txn = change_txn(f, rt, &seed, "start", "seed", only);
            struct blocking b2 = {0};
            int st2 = txn ? call_blocking(e, base, "/v3/kv/txn", txn, &b2) : CUT_ENOMEM;
            json_decref(txn);
            if (st2 == 0 && json_is_true(json_object_get(b2.reply, "succeeded"))) {
                int64_t r2 = 0;
                etcd_codec_int(json_object_get(b2.reply, "header"), "revision", &r2);
                state_dispose(rt);
                *rt = seed;
                f->revision = r2;
                f->gen_rev = r2;
                f->fleet_gen = seed.generation;
                f->synced = 1;
                *from_store = 1;
                fleet_event(f, "store_seeded", ",\"fleet_generation\":%llu,\"revision\":%lld",
                            (unsigned long long)seed.generation, (long long)r2);
                json_decref(b2.reply);
                view_dispose(v);
                free(v);
                break;
            }
            state_dispose(&seed);
            json_decref(b2.reply);
            if (st2 < 0 && st2 != CUT_EPROTO) {
                set_reachable(f, 0, b2.what);
                view_dispose(v);
                free(v);
                break;
            }
        }
        view_dispose(v);
        free(v);
    }
    etcd_free(e);
    event_base_free(base);
    return rc;
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
        start_watch(f);
    else
        start_resync(f);
    if (f->npending)
        write_pending(f); /* rollbacks a previous run could not write */
    arm_keepalive(f, 0); /* grants the lease, then registers */
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
        json_array_append_new(reps, json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:b, s:b}",
                                              "replica", f->replica, "generation",
                                              (json_int_t)gen, "cluster", f->cluster, "region",
                                              f->region, "version", CUTOVER_VERSION, "started",
                                              f->started, "lagging", gen < f->fleet_gen,
                                              "registered", 0));
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
        out->lagging += (uint64_t)json_integer_value(json_object_get(reg, "generation")) <
                        f->fleet_gen;
    }
}

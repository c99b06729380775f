/* fleet.c - the fleet store: commits, life, status (see fleet.h; the other parts, listed in
 * fleet_internal.h, keep the replica in step with the store). */
#include "control/fleet.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/etcd.h"
#include "control/etcd_codec.h"
#include "control/fleet_internal.h"
#include "core/cut.h"
#include "core/version.h"
#include "proxy/log/log.h"

/* ---- changes ------------------------------------------------------------------------------- */

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
                 json_t *history,
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
    json_t *txn = fleet_change_txn(f, cur, next, actor, op, NULL, history);
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

int fleet_reading(const struct fleet *f)
{
    return f->etcd && f->reachable && !f->synced && f->resync_call;
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
    f->leaders_prefix = cat(sc->prefix, "leaders/");
    f->history_prefix = cat(sc->prefix, "history/");
    f->history = json_object();
    f->counts_prefix = cat(sc->prefix, "counts/");
    f->leaders = json_object();
    f->counts = json_object();
    f->published = json_object();
    f->replicas = json_object();
    f->invalid = json_object();
    if (cfg->control.state_file) {
        f->pending_path = cat(cfg->control.state_file, ".pending");
        fleet_pending_load(f);
    }
    fleet_sync_init(f); /* its timers */
    if (!f->prefix || !f->prefix_end || !f->key_gen || !f->routes_prefix || !f->key_self ||
        !f->leaders_prefix || !f->counts_prefix || !f->leaders || !f->counts || !f->published ||
        !f->history_prefix || !f->history ||
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
    free(f->leaders_prefix);
    free(f->history_prefix);
    json_decref(f->history);
    free(f->counts_prefix);
    json_decref(f->leaders);
    json_decref(f->counts);
    json_decref(f->published);
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
    fleet_keepalive_arm(f, 0);  /* grants the lease, then registers */
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

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *fleet_history(const struct fleet *f)
{
    size_t n = json_object_size(f->history), i = 0;
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    json_t *out = json_array();
    if (!keys || !out) {
        free(keys);
        return out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(f->history, k, v)
        keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_key); /* 20-digit generations: in order */
    for (i = 0; i < n; i++)
        json_array_append(out, json_object_get(f->history, keys[i]));
    free(keys);
    return out;
}

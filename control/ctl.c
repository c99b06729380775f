/* ctl.c - the control thread: reloads, DNS refresh, graceful stop, snapshot publication. */
#include "control/fleet.h"
#include "control/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/audit.h"
#include "control/certs.h"
#include "control/counters.h"
#include "control/dns.h"
#include "control/reload_rules.h"
#include "control/startup.h"
#include "control/state.h"
#include "control/state_file.h"
#include "control/state_rebase.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/cut.h"
#include "core/text.h"
#include "proxy/log/geoip.h"
#include "proxy/log/log.h"
#include "proxy/log/siem.h"
#include "proxy/route/snapshot.h"
#include "proxy/net/tls.h"
#include "proxy/relay/worker.h"
#include "control/admin.h"
#include "control/commands.h"
#include "control/durable.h"
#include "control/recovery.h"
#include "control/refusal.h"
#include "control/ctlsock.h"
#include "control/health_state.h"
#include "control/healthcheck.h"
#include "control/metrics.h"
#include "control/plan.h"

#define CTL_TICK_MS 100
#define CTL_AUDIT_SYNC_MS 1000 /* reads and refusals reach the disk within this */

/* The control thread's state. Only this file sees it; the services get narrow entry points
 * (control/ctl.h for the control protocol in commands.c, callbacks and contexts for the rest). */
struct ctl {
    const char *config_path;
    struct logger *lg;
    struct siem *siem; /* borrowed: outlives the ctl */
    struct worker **workers;
    unsigned nworkers;
    struct event_base *base;
    struct event *ev_hup, *ev_term, *ev_int, *ev_dns, *ev_delay, *ev_drain, *ev_exit;
    struct cfg_hold *hold;
    struct snapshot *snap; /* the latest published, one reference */
    uint64_t generation;
    struct state rt;       /* runtime routing state; its generation field mirrors generation */
    struct audit *audit;
    struct refusal_limiter *refusals; /* coalesced refusals (commands.c uses it) */
    uint64_t audit_synced_ms;         /* last audit_sync() (on_tick) */
    struct ctlsock *sock;
    struct metrics *metrics;
    struct hstate *hs;   /* endpoint health (health_state.c) */
    struct plan_state *plans; /* plan measurement bases and watchdog history (plan.c) */
    struct healthcheck *hc; /* active health checks (healthcheck.c) */
    struct event *ev_tick; /* every CTL_TICK_MS: ejections, slow start, windows, plans */
    struct admin *admin; /* the HTTPS admin API (control/admin.c), NULL without admin.address */
    struct counters *counters; /* per (route, pool) slots and control op counts (counters.c) */
    struct dns *dns;              /* endpoint names (control/dns.c) */
    struct event *ev_dns_publish; /* one publication for the answers of a loop iteration */
    int dns_changed;              /* an answer changed a known name's addresses */
    int stopping;
    time_t started;

    struct certs *certs; /* the TLS material in use and the watch on its files (control/certs.c) */
    struct fleet *fleet; /* the fleet store (control/fleet.c); NULL without control.store */
    struct cmd_host host; /* what the control protocol (commands.c) and its transports use */
};

/* Builds a snapshot (snapshot_new) from the configuration and runtime state in use and
 * publishes it to every worker. Returns 0 or CUT_ENOMEM (nothing published). */
static int ctl_publish(struct ctl *c);
/* durable_commit (control/durable.h) to c's audit log and state file, at c's generation. */
static int ctl_durable_commit(struct ctl *c, const struct state *next, struct audit_record *rec,
                              int *recorded, char *err, size_t cap);
/* Writes an audit record's line to stdout through the logger (audit_out_fn; ctx is the ctl). */
static void ctl_audit_out(void *ctx, const char *line, size_t len);
/* Reloads the configuration file. rec is the audit record of the request (actor, op, args,
 * reason; the caller's): once the new configuration is valid, ctl_reload completes it
 * (generations, every route's weights) and makes the change durable with durable_commit()
 * before it publishes. Returns 0 (recorded, durable, published: generation + 1), or CUT_EINVAL
 * with every problem in errs (caller disposes), or CUT_EIO/CUT_ENOMEM with errs holding one
 * message. *recorded says whether the record was written (the caller then must not record the
 * refusal again). */
static int ctl_reload(struct ctl *c, struct cfg_errors *errs, struct audit_record *rec,
                      int *recorded);

#define CTL_EXIT_POLL_MS 20
#define CTL_HISTORY 1000

const struct cfg *ctl_cfg(const struct ctl *c)
{
    return c->hold->cfg;
}

uint64_t ctl_generation(const struct ctl *c)
{
    return c->generation;
}

const struct state *ctl_state(const struct ctl *c)
{
    return &c->rt;
}

/* cmd_host.install */
static void host_install(void *ctx, struct state *next)
{
    struct ctl *c = ctx;
    struct state old = c->rt;
    c->rt = *next;
    c->generation = c->rt.generation;
    memset(next, 0, sizeof *next);
    if (ctl_publish(c) < 0) /* durable and audited: the next change or reload publishes it */
        ctl_event(c, "publish_failed", NULL);
    state_dispose(&old);
}

void ctl_release_signals(struct ctl *c)
{
    event_del(c->ev_hup);
    event_del(c->ev_term);
    event_del(c->ev_int);
}

/* ---- the control protocol's host (control/commands.h) ----------------------------------------- */

static const struct cfg *host_cfg(void *ctx)
{
    return ctl_cfg(ctx);
}

static const struct state *host_state(void *ctx)
{
    return ctl_state(ctx);
}

static uint64_t host_generation(void *ctx)
{
    return ctl_generation(ctx);
}

/* ctl_event for the protocol, the services (certs, health) and durable_commit. */
static void host_event(void *ctx, const char *name, const char *extra)
{
    ctl_event(ctx, name, extra);
}

static int host_durable_commit(void *ctx, const struct state *next, struct audit_record *rec,
                               int *recorded, char *err, size_t cap)
{
    return ctl_durable_commit(ctx, next, rec, recorded, err, cap);
}

static int host_reload(void *ctx, struct cfg_errors *errs, struct audit_record *rec,
                       int *recorded)
{
    return ctl_reload(ctx, errs, rec, recorded);
}

struct cmd_host *ctl_cmd_host(struct ctl *c)
{
    return &c->host;
}

void ctl_event(struct ctl *c, const char *name, const char *extra)
{
    char t[32], line[8192];
    log_time_rfc3339(t, sizeof t);
    const struct cfg *cfg = c->hold ? c->hold->cfg : NULL;
    int n = snprintf(line, sizeof line,
                     "{\"type\":\"event\",\"time\":\"%s\",\"timestamp\":\"%s\","
                     "\"service\":\"" LOG_SERVICE "\",\"level\":\"%s\",\"cluster\":\"%s\","
                     "\"region\":\"%s\",\"event\":\"%s\",\"generation\":%llu%s}",
                     t, t, log_event_level(name, extra), cfg ? cfg->cluster : "",
                     cfg ? cfg->region : "", name, (unsigned long long)c->generation,
                     extra ? extra : "");
    if (n > 0) {
        size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
        log_line(c->lg, line, len);
        siem_submit(c->siem, LEEF_SECURITY, line, len); /* only the security events */
    }
}

/* ---- DNS (control/dns.c resolves; the snapshot asks through resolve) ----------------------- */

static unsigned resolve(void *ctx, const struct cfg_endpoint *ep, struct sockaddr_storage *out,
                        socklen_t *outlen, unsigned max)
{
    struct ctl *c = ctx;
    return dns_get(c->dns, ep->host, ep->port, out, outlen, max);
}

/* A name's addresses changed (or a first answer came): one publication for all the names that
 * answered in this loop iteration (on_dns_publish). */
static void on_dns_answer(void *ctx, const char *host, uint16_t port, unsigned naddrs, int first)
{
    struct ctl *c = ctx;
    if (naddrs == 0) {
        char extra[512];
        snprintf(extra, sizeof extra, ",\"endpoint\":\"%.200s:%u\",\"message\":\"does not resolve\"",
                 host, port);
        ctl_event(c, "dns_failed", extra);
        return;
    }
    if (!first)
        c->dns_changed = 1;
    event_active(c->ev_dns_publish, EV_TIMEOUT, 0);
}

static void on_dns_publish(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;
    (void)fd;
    (void)what;
    if (c->stopping)
        return;
    if (ctl_publish(c) == 0 && c->dns_changed)
        ctl_event(c, "dns_changed", NULL);
    c->dns_changed = 0;
}

/* ---- counters ---------------------------------------------------------------------------- */

/* An active health check changed an endpoint's verdict (healthcheck_report_fn): record it, log
 * endpoint_health and publish (a down endpoint gets no new requests; a pool with none up gives
 * its share to the others). */
static void on_health_report(void *ctx, const char *route, const char *pool, const char *key,
                             int up, const char *why, int publish)
{
    struct ctl *c = ctx;
    if (!publish) { /* the endpoint left the snapshot: forget its verdict */
        hstate_set_active(c->hs, route, pool, key, up, clock_mono_ms());
        return;
    }
    char extra[1024], er[128], ep[64], ek[128], ew[256];
    log_escape(er, sizeof er, route, strlen(route));
    log_escape(ep, sizeof ep, pool, strlen(pool));
    log_escape(ek, sizeof ek, key, strlen(key));
    log_escape(ew, sizeof ew, why ? why : "", why ? strlen(why) : 0);
    snprintf(extra, sizeof extra,
             ",\"route\":\"%s\",\"pool\":\"%s\",\"endpoint\":\"%s\",\"state\":\"%s\","
             "\"reason\":\"%s\",\"source\":\"active\"",
             er, ep, ek, up ? "up" : "down", ew);
    ctl_event(c, "endpoint_health", extra);
    if (hstate_set_active(c->hs, route, pool, key, up, clock_mono_ms()) && ctl_publish(c) < 0)
        ctl_event(c, "publish_failed", ",\"reason\":\"out of memory\"");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;
    (void)fd;
    (void)what;
    uint64_t now = clock_mono_ms();
    commands_tick(&c->host, now);
    if (now - c->audit_synced_ms >= CTL_AUDIT_SYNC_MS) {
        char err[256];
        c->audit_synced_ms = now;
        if (audit_sync(c->audit, err, sizeof err) < 0)
            ctl_event(c, "audit_failed", NULL);
    }
    if (c->stopping)
        return;
    if (hstate_tick(c->hs, c->hold->cfg, clock_mono_ms()) && ctl_publish(c) < 0)
        ctl_event(c, "publish_failed", ",\"reason\":\"out of memory\"");
    plan_tick(c->plans, c->hold->cfg);
}

/* A plan's automatic change (plan_apply_fn): the commands' durable, audited path. */
static int on_plan_apply(void *ctx, const char *op, json_t *args, struct state *next,
                         const char *route)
{
    return commands_apply_auto(&((struct ctl *)ctx)->host, op, args, next, route);
}

/* What /metrics shows (metrics_source_fn). */
static void metrics_source(void *ctx, struct metrics_source *out)
{
    struct ctl *c = ctx;
    *out = (struct metrics_source){
        .cfg = c->hold->cfg,
        .rt = &c->rt,
        .generation = c->generation,
        .snap = c->snap,
        .stopping = c->stopping,
        .started = c->started,
        .workers = c->workers,
        .nworkers = c->nworkers,
        .counters = c->counters,
        .sock = c->sock,
        .admin = c->admin,
        .siem = c->siem,
        .hs = c->hs,
        .tls = certs_current(c->certs),
        .fleet = c->fleet,
    };
}

/* ---- runtime state ------------------------------------------------------------------------- */

static int ctl_durable_commit(struct ctl *c, const struct state *next, struct audit_record *rec,
                       int *recorded, char *err, size_t cap)
{
    struct durable_target t = {c->audit, c->hold->cfg->control.state_file, c->generation,
                               ctl_audit_out, host_event, c};
    return durable_commit(&t, next, rec, recorded, err, cap);
}

static void ctl_audit_out(void *ctx, const char *line, size_t len)
{
    struct ctl *c = ctx;
    log_line(c->lg, line, len);
    siem_submit(c->siem, LEEF_AUDIT, line, len);
}

/* Hands the SIEM thread the current settings and client context (after every change of
 * either: start, reload, rotated files). */
static void siem_apply(struct ctl *c)
{
    const struct cfg *cfg = c->hold->cfg;
    if (siem_configure(c->siem, &cfg->siem, certs_current(c->certs)->siem, cfg->cluster, cfg->region) < 0)
        ctl_event(c, "siem_unreachable", ",\"reason\":\"out of memory: settings not applied\"");
}

/* ---- certificates (control/certs.c builds and watches them) ---------------------------------- */

static int on_certs_rotated(void *ctx)
{
    struct ctl *c = ctx;
    if (ctl_publish(c) < 0)
        return CUT_ENOMEM;
    siem_apply(c);
    return 0;
}

/* ---- publication --------------------------------------------------------------------------- */

/* Endpoint health and fail-safe (control/health_state.c) for the snapshot being built. */
static void snapshot_health(void *ctx, struct snapshot *s)
{
    struct ctl *c = ctx;
    hstate_apply(c->hs, s, clock_mono_ms());
}

static int ctl_publish(struct ctl *c)
{
    const struct cfg *cfg = c->hold->cfg;
    struct snap_overlay_route *ov = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *ov);
    if (!ov)
        return CUT_ENOMEM;
    for (size_t r = 0; r < cfg->nroutes; r++) {
        const struct cfg_route *cr = &cfg->routes[r];
        struct state_route *sr = state_route_find(&c->rt, cr->name);
        if (sr) { /* the country cohort, its weights in the configuration's pool order */
            ov[r].cohort.ncountries = sr->cohort.ncountries;
            memcpy(ov[r].cohort.countries, sr->cohort.countries, sizeof ov[r].cohort.countries);
        }
        for (size_t p = 0; p < cr->npools; p++) {
            struct snap_overlay_pool *op = &ov[r].pools[p];
            op->counters = counters_slots(c->counters, cr->name, cr->pools[p].name);
            struct state_pool *sp = sr ? state_pool_find(sr, cr->pools[p].name) : NULL;
            if (!sp)
                continue;
            ov[r].cohort.weights_bp[p] = sr->cohort.weights_bp[sp - sr->pools];
            op->has_weight = 1;
            op->weight_bp = sp->weight_bp;
            op->drained = sp->drained.v;
            op->ndrained = sp->drained.n;
            op->added = sp->added.v;
            op->nadded = sp->added.n;
            op->removed = sp->removed.v;
            op->nremoved = sp->removed.n;
        }
    }
    const struct certs_set *tls = certs_current(c->certs);
    struct snap_inputs in = {
        .generation = c->generation,
        .overlay = ov,
        .resolve = resolve,
        .resolve_ctx = c,
        .listener_tls = tls->listeners,
        .pool_tls = tls->pools,
        .npool_tls = tls->npools,
        .geo = tls->geo,
        .health = c->hs ? snapshot_health : NULL,
        .health_ctx = c,
    };
    struct snapshot *s = snapshot_new(c->hold, &in);
    free(ov);
    if (!s)
        return CUT_ENOMEM;
    for (unsigned i = 0; i < c->nworkers; i++) {
        snapshot_ref(s);
        worker_publish(c->workers[i], s);
    }
    snapshot_unref(c->snap);
    c->snap = s;
    if (c->hc)
        healthcheck_sync(c->hc, s); /* the checkers follow the endpoints just published */
    return 0;
}

static void arm_dns(struct ctl *c)
{
    unsigned ms = c->hold->cfg->timeouts.dns_refresh;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->ev_dns, &tv);
}

/* Re-resolves every name in the background (control/dns.c); on_dns_answer publishes what
 * changed. */
static void on_dns(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;
    (void)fd;
    (void)what;
    dns_refresh(c->dns);
    arm_dns(c);
}

/* ---- reload ------------------------------------------------------------------------------- */

static void refuse_event(struct ctl *c, const struct cfg_errors *errs)
{
    /* One event carrying every problem, as {"path","message"} objects. */
    char extra[6144];
    size_t o = (size_t)snprintf(extra, sizeof extra, ",\"file\":\"");
    o += log_escape(extra + o, sizeof extra - o, c->config_path, strlen(c->config_path));
    o += (size_t)snprintf(extra + o, sizeof extra - o, "\",\"errors\":[");
    for (size_t i = 0; i < errs->n && o < sizeof extra - 600; i++) {
        const char *path = errs->v[i].path && errs->v[i].path[0] ? errs->v[i].path : "(root)";
        o += (size_t)snprintf(extra + o, sizeof extra - o, "%s{\"path\":\"", i ? "," : "");
        o += log_escape(extra + o, 256, path, strlen(path));
        o += (size_t)snprintf(extra + o, sizeof extra - o, "\",\"message\":\"");
        o += log_escape(extra + o, 256, errs->v[i].message, strlen(errs->v[i].message));
        o += (size_t)snprintf(extra + o, sizeof extra - o, "\",\"line\":%d,\"column\":%d}",
                              errs->v[i].line, errs->v[i].column);
    }
    snprintf(extra + o, sizeof extra - o, "]");
    ctl_event(c, "reload_refused", extra);
}

static int ctl_reload(struct ctl *c, struct cfg_errors *errs, struct audit_record *rec, int *recorded)
{
    *recorded = 0;
    struct cfg *cfg = NULL;
    int rc = cfg_load(c->config_path, &cfg, errs);
    if (rc < 0) {
        refuse_event(c, errs);
        return rc;
    }
    const struct cfg *old = c->hold->cfg;
    const char *why_path = NULL, *why = NULL;
    if (reload_rules_check(old, cfg, &why_path, &why) < 0) {
        cfg_errors_add(errs, why_path, 0, 0, "%s", why);
        refuse_event(c, errs);
        cfg_free(cfg);
        return CUT_EINVAL;
    }
    struct certs_set fresh;
    if (certs_build(cfg, &fresh, errs) < 0) {
        refuse_event(c, errs); /* certificates that do not load refuse the whole reload */
        cfg_free(cfg);
        return CUT_EINVAL;
    }
    struct state nrt;
    char note[1024], err[256];
    /* with a fleet store the store owns runtime weights: a reload keeps them for routes whose
     * pools are unchanged even when the configured weights changed (as at start-up) */
    if (state_rebase(cfg, c->fleet ? NULL : old, &c->rt, &nrt, note, sizeof note) < 0) {
        certs_set_release(&fresh);
        cfg_free(cfg);
        cfg_errors_add(errs, "", 0, 0, "out of memory");
        return CUT_ENOMEM;
    }
    /* with a fleet store the generation is the fleet's: a reload changes no runtime state the
     * fleet shares (the configuration owns routes and pools), so it keeps the generation */
    nrt.generation = c->fleet ? c->generation : c->generation + 1;
    struct cfg_hold *hold = snapshot_cfg_hold(cfg); /* takes cfg */
    char *wb = durable_weights_json(&c->rt), *wa = durable_weights_json(&nrt);
    if (!hold || !wb || !wa) {
        certs_set_release(&fresh);
        state_dispose(&nrt);
        if (hold)
            snapshot_cfg_unref(hold); /* without a hold, cfg was freed by snapshot_cfg_hold */
        free(wb);
        free(wa);
        cfg_errors_add(errs, "", 0, 0, "out of memory");
        return CUT_ENOMEM;
    }
    /* The record, then the state file (durable.h); only then the switch. */
    rec->generation_before = c->generation;
    rec->generation_after = nrt.generation;
    rec->weights_before_json = wb;
    rec->weights_after_json = wa;
    rc = ctl_durable_commit(c, &nrt, rec, recorded, err, sizeof err);
    rec->weights_before_json = rec->weights_after_json = NULL;
    free(wb);
    free(wa);
    if (rc < 0) {
        certs_set_release(&fresh);
        state_dispose(&nrt);
        snapshot_cfg_unref(hold);
        cfg_errors_add(errs, "", 0, 0, "%s", err);
        ctl_event(c, "reload_refused", ",\"errors\":[{\"path\":\"\",\"message\":\"cannot record the change or write the state file\"}]");
        return CUT_EIO;
    }
    struct cfg_hold *old_hold = c->hold;
    struct state old_rt = c->rt;
    certs_install(c->certs, &fresh); /* fresh now holds the old material */
    c->hold = hold;
    c->rt = nrt;
    c->generation = nrt.generation;
    if (ctl_publish(c) < 0) /* durable and audited: the next change publishes it */
        ctl_event(c, "publish_failed", ",\"reason\":\"out of memory\"");
    certs_set_release(&fresh);
    state_dispose(&old_rt);
    snapshot_cfg_unref(old_hold);
    siem_apply(c);
    certs_watch(c->certs, c->hold->cfg);
    certs_files_stat(c->certs);
    if (c->fleet)
        fleet_resync(c->fleet); /* routes the reload added: the fleet's state, or seeded */
    char extra[1200];
    snprintf(extra, sizeof extra, ",\"result\":\"ok\"%s%.1000s%s", note[0] ? ",\"config_weights_won\":[" : "",
             note, note[0] ? "]" : "");
    ctl_event(c, "reload", extra);
    return 0;
}

static void reload_on_signal(struct ctl *c)
{
    struct cfg_errors errs = {0};
    uint64_t before = c->generation;
    struct audit_record r = {
        .cluster = c->hold->cfg->cluster, .region = c->hold->cfg->region, .uid = -1,
        .user = "SIGHUP", .role = "admin", .op = "reload", .ok = 1,
        .generation_before = before, .generation_after = before,
    };
    int recorded = 0;
    int rc = ctl_reload(c, &errs, &r, &recorded);
    /* counted like a reload through the control socket (cutover_control_operations_total) */
    counters_count_op(c->counters, "reload", rc == 0);
    if (rc < 0)
        cfg_errors_print(&errs, c->config_path, stderr);
    if (rc < 0 && !recorded) { /* refused before anything changed: the refusal's record */
        char err[256];
        struct audit_record f = {
            .cluster = c->hold->cfg->cluster, .region = c->hold->cfg->region, .uid = -1,
            .user = "SIGHUP", .role = "admin", .op = "reload", .ok = 0,
            .kind = AUDIT_REFUSAL, .error_code = "invalid_argument",
            .error_message = errs.n ? errs.v[0].message : "refused",
            .generation_before = before, .generation_after = c->generation,
        };
        if (audit_append(c->audit, &f, ctl_audit_out, c, err, sizeof err) < 0)
            ctl_event(c, "audit_failed", NULL);
    }
    cfg_errors_dispose(&errs);
}

/* ---- stop --------------------------------------------------------------------------------- */

static void on_exit_poll(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;
    (void)fd;
    (void)what;
    for (unsigned i = 0; i < c->nworkers; i++)
        if (!atomic_load(&c->workers[i]->exited))
            return;
    event_base_loopexit(c->base, NULL);
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;
    (void)fd;
    (void)what;
    for (unsigned i = 0; i < c->nworkers; i++)
        worker_command(c->workers[i], WORKER_STOP_ACCEPTING);
    ctl_event(c, "listeners_closed", NULL);
    unsigned ms = c->hold->cfg->timeouts.drain;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->ev_drain, &tv);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;
    (void)fd;
    (void)what;
    ctl_event(c, "drain_deadline", NULL);
    for (unsigned i = 0; i < c->nworkers; i++)
        worker_command(c->workers[i], WORKER_FORCE_STOP);
}

static void begin_stop(struct ctl *c, const char *sig)
{
    if (c->stopping)
        return;
    c->stopping = 1;
    for (unsigned i = 0; i < c->nworkers; i++) /* the probe path answers 503 from now on */
        atomic_store_explicit(&c->workers[i]->draining, 1, memory_order_relaxed);
    char extra[64];
    snprintf(extra, sizeof extra, ",\"signal\":\"%s\"", sig);
    ctl_event(c, "stopping", extra);
    event_del(c->ev_dns);
    certs_stop(c->certs);
    healthcheck_stop(c->hc);
    if (c->fleet)
        fleet_stop(c->fleet); /* leaves the registry at once: not counted in barriers */
    unsigned ms = c->hold->cfg->timeouts.shutdown_delay;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->ev_delay, &tv);
    struct timeval poll = {0, CTL_EXIT_POLL_MS * 1000};
    event_add(c->ev_exit, &poll);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct ctl *c = arg;
    (void)what;
    if (sig == SIGHUP) {
        if (!c->stopping)
            reload_on_signal(c);
        return;
    }
    begin_stop(c, sig == SIGTERM ? "TERM" : "INT");
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

/* ---- the fleet store (control/fleet.c) ------------------------------------------------------ */

/* A state the fleet holds, seen through the watch or a re-read: this replica's cache (the state
 * file) first, then in use. */
static void on_fleet_apply(void *ctx, struct state *next, const char *why)
{
    struct ctl *c = ctx;
    const char *path = c->hold->cfg->control.state_file;
    char err[256], extra[400];
    uint64_t before = c->generation;
    if (path && state_file_save(path, next, err, sizeof err) < 0) {
        snprintf(extra, sizeof extra, ",\"reason\":\"state file: %.200s\"", err);
        ctl_event(c, "store_cache_failed", extra);
    }
    host_install(c, next);
    snprintf(extra, sizeof extra, ",\"why\":\"%s\",\"generation_before\":%llu", why,
             (unsigned long long)before);
    ctl_event(c, "fleet_applied", extra);
}

/* Joins the fleet before anything serves: the fleet's state over what start-up loaded (the
 * cache, or the configuration when there is none), kept as the cache. */
static int ctl_fleet_start(struct ctl *c, char *err, size_t cap)
{
    struct fleet_env env = {c->base, host_cfg, host_state, on_fleet_apply, host_event, c};
    c->fleet = fleet_new(c->hold->cfg, &env, err, cap);
    if (!c->fleet)
        return CUT_EINVAL;
    int from_store = 0;
    if (fleet_start(c->fleet, &c->rt, &from_store) < 0) {
        snprintf(err, cap, "out of memory");
        return CUT_ENOMEM;
    }
    c->generation = c->rt.generation;
    const char *path = c->hold->cfg->control.state_file;
    char serr[256];
    if (from_store && path && state_file_save(path, &c->rt, serr, sizeof serr) < 0) {
        snprintf(err, cap, "state file: %s", serr);
        return CUT_EIO;
    }
    return 0;
}

/* Start-up's events carry the generation it decided on as soon as it has (startup_load sets
 * it in c->rt before its last event); the ones before carry the initial 1. */
static void on_startup_event(void *ctx, const char *name, const char *extra)
{
    struct ctl *c = ctx;
    if (c->rt.generation)
        c->generation = c->rt.generation;
    ctl_event(c, name, extra);
}

struct ctl *ctl_new(const char *config_path, struct cfg *cfg, struct logger *lg,
                    struct siem *siem, struct worker **workers, unsigned nworkers,
                    int discard_state, char *err, size_t cap)
{
    struct ctl *c = calloc(1, sizeof *c);
    if (!c) {
        cfg_free(cfg);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    c->config_path = config_path;
    c->lg = lg;
    c->siem = siem;
    c->workers = workers;
    c->nworkers = nworkers;
    c->generation = 1;
    c->started = time(NULL);
    c->hold = snapshot_cfg_hold(cfg);
    c->base = event_base_new();
    c->counters = counters_new(nworkers);
    if (!c->hold || !c->base || !c->counters) {
        snprintf(err, cap, "out of memory");
        ctl_free(c);
        return NULL;
    }
    char aerr[512];
    c->audit = audit_open(c->hold->cfg->control.audit_file, CTL_HISTORY, aerr, sizeof aerr);
    c->refusals = calloc(1, sizeof *c->refusals);
    if (!c->audit || !c->refusals) {
        snprintf(err, cap, "audit file: %s", c->audit ? "out of memory" : aerr);
        ctl_free(c);
        return NULL;
    }
    c->audit_synced_ms = clock_mono_ms();
    struct startup_env senv = {c->hold->cfg, c->audit, discard_state, ctl_audit_out,
                               on_startup_event, c};
    if (startup_load(&senv, &c->rt, err, cap) < 0) {
        ctl_free(c);
        return NULL;
    }
    c->generation = c->rt.generation;
    if (c->hold->cfg->control.store.enabled && ctl_fleet_start(c, err, cap) < 0) {
        ctl_free(c);
        return NULL;
    }
    c->ev_hup = evsignal_new(c->base, SIGHUP, on_signal, c);
    c->ev_term = evsignal_new(c->base, SIGTERM, on_signal, c);
    c->ev_int = evsignal_new(c->base, SIGINT, on_signal, c);
    c->ev_dns = evtimer_new(c->base, on_dns, c);
    c->ev_dns_publish = event_new(c->base, -1, 0, on_dns_publish, c);
    c->dns = dns_new(c->base, NULL, on_dns_answer, c);
    c->ev_delay = evtimer_new(c->base, on_delay, c);
    c->ev_drain = evtimer_new(c->base, on_drain, c);
    c->ev_exit = event_new(c->base, -1, EV_PERSIST, on_exit_poll, c);
    c->certs = certs_new(c->base, on_certs_rotated, host_event, c);
    c->ev_tick = event_new(c->base, -1, EV_PERSIST, on_tick, c);
    c->hs = hstate_new(c->nworkers, host_event, c);
    struct plan_env penv = {&c->rt, c->counters, c->hs, on_plan_apply, c,
                            c->fleet ? fleet_plan_leads : NULL,
                            c->fleet ? fleet_plan_window : NULL, c->fleet};
    c->plans = plan_state_new(&penv);
    if (!c->ev_hup || !c->ev_term || !c->ev_int || !c->ev_dns || !c->ev_dns_publish || !c->dns ||
        !c->ev_delay || !c->ev_drain || !c->ev_exit || !c->certs || !c->ev_tick || !c->hs ||
        !c->plans) {
        snprintf(err, cap, "out of memory");
        ctl_free(c);
        return NULL;
    }
    c->host = (struct cmd_host){
        .ctx = c,
        .cfg = host_cfg,
        .state = host_state,
        .generation = host_generation,
        .event = host_event,
        .durable_commit = host_durable_commit,
        .install = host_install,
        .reload = host_reload,
        .audit_out = ctl_audit_out,
        .audit = c->audit,
        .refusals = c->refusals,
        .plans = c->plans,
        .counters = c->counters,
        .config_path = c->config_path,
        .started = c->started,
        .fleet = c->fleet,
    };
    c->hc = healthcheck_new(c->base, on_health_report, host_event, c);
    if (!c->hc) {
        snprintf(err, cap, "out of memory");
        ctl_free(c);
        return NULL;
    }
    if (c->hold->cfg->control.socket) {
        c->sock = ctlsock_new(&c->host, c->base, err, cap);
        if (!c->sock) {
            ctl_free(c);
            return NULL;
        }
    }
    if (c->hold->cfg->metrics.address &&
        !(c->metrics = metrics_new(c->base, &c->hold->cfg->metrics, metrics_source, c, err, cap))) {
        ctl_free(c);
        return NULL;
    }
    /* Certificates: stat first, then read, so a change during the read is seen next time. */
    certs_watch(c->certs, c->hold->cfg);
    certs_files_stat(c->certs);
    struct cfg_errors terrs = {0};
    struct certs_set first;
    if (certs_build(c->hold->cfg, &first, &terrs) < 0) {
        size_t o = 0;
        for (size_t i = 0; i < terrs.n && o + 2 < cap; i++)
            o += (size_t)snprintf(err + o, cap - o, "%s%s: %s", i ? "; " : "", terrs.v[i].path,
                                  terrs.v[i].message);
        cfg_errors_dispose(&terrs);
        ctl_free(c);
        return NULL;
    }
    certs_install(c->certs, &first); /* first now holds nothing */
    siem_apply(c);
    if (c->hold->cfg->admin.address) {
        c->admin = admin_new(&c->host, c->base, c->certs, err, cap);
        if (!c->admin) {
            ctl_free(c);
            return NULL;
        }
    }
    event_add(c->ev_hup, NULL);
    event_add(c->ev_term, NULL);
    event_add(c->ev_int, NULL);
    /* The loop does not serve yet: the first snapshot resolves its names in place; from now on
     * names resolve on the resolver thread. */
    dns_set_blocking(c->dns, 1);
    int published = ctl_publish(c);
    dns_set_blocking(c->dns, 0);
    if (published < 0) {
        snprintf(err, cap, "out of memory");
        ctl_free(c);
        return NULL;
    }
    arm_dns(c);
    struct timeval tick = {0, CTL_TICK_MS * 1000};
    event_add(c->ev_tick, &tick);
    if (certs_nfiles(c->certs))
        certs_event(c->certs, "tls_loaded");
    if (c->fleet)
        fleet_run(c->fleet); /* the watch, the registration and its lease */
    return c;
}

int ctl_run(struct ctl *c)
{
    char extra[128];
    snprintf(extra, sizeof extra, ",\"workers\":%u", c->nworkers);
    ctl_event(c, "started", extra);
    int r = event_base_dispatch(c->base);
    ctl_event(c, "stopped", NULL);
    return r < 0 ? CUT_EIO : 0;
}

void ctl_free(struct ctl *c)
{
    if (!c)
        return;
    ctlsock_free(c->sock);
    admin_free(c->admin);
    metrics_free(c->metrics);
    dns_free(c->dns); /* joins the resolver thread before its event goes */
    struct event *evs[] = {c->ev_hup,   c->ev_term,  c->ev_int,  c->ev_dns, c->ev_dns_publish,
                           c->ev_delay, c->ev_drain, c->ev_exit, c->ev_tick};
    for (size_t i = 0; i < CUT_ARRAY_LEN(evs); i++)
        if (evs[i])
            event_free(evs[i]);
    fleet_free(c->fleet); /* before commands_stop: no store callback comes after this */
    c->fleet = NULL;
    healthcheck_free(c->hc);
    hstate_free(c->hs);
    plan_state_free(c->plans);
    snapshot_unref(c->snap);
    certs_free(c->certs);
    if (c->audit)
        commands_stop(&c->host); /* pending refusal summaries */
    snapshot_cfg_unref(c->hold);
    state_dispose(&c->rt);
    audit_close(c->audit);
    free(c->refusals);
    counters_free(c->counters);
    if (c->base)
        event_base_free(c->base);
    free(c);
}

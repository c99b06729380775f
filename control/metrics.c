/* metrics.c - the metrics and health listener (see metrics.h). */
#include "control/fleet.h"
#include "control/metrics.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cfg.h"
#include "control/certs.h"
#include "control/state.h"
#include "core/cut.h"
#include "proxy/log/siem.h"
#include "proxy/route/snapshot.h"
#include "proxy/net/tls.h"
#include "core/version.h"
#include "proxy/relay/worker.h"
#include "control/admin.h"
#include "control/counters.h"
#include "control/ctlsock.h"
#include "control/health_state.h"
#include "control/plan.h"

#define METRICS_TIMEOUT_S 10        /* a scraper gets this long per request */
#define METRICS_MAX_HEADERS 8192

struct metrics {
    struct evhttp *http;
    metrics_source_fn source;
    void *ctx;
};

/* ---- the document --------------------------------------------------------------------------- */

/* A label value with \, " and newline escaped (the text format's rules). */
static void label(struct evbuffer *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            evbuffer_add_printf(b, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, v, 1);
    }
}

static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void route_pool(struct evbuffer *b, const char *route, const char *pool)
{
    evbuffer_add(b, "route=\"", 7);
    label(b, route);
    evbuffer_add(b, "\",pool=\"", 8);
    label(b, pool);
    evbuffer_add(b, "\"", 1);
}

static void render_requests(const struct metrics_source *c, struct evbuffer *b)
{
    static const char *const classes[] = {"other", "2xx", "3xx", "4xx", "5xx"};
    family(b, "cutover_requests_total", "counter",
           "Requests answered, by route, pool and status class.");
    for (const struct counters_entry *e = counters_first(c->counters); e; e = e->next) {
        struct counters_sum s;
        counters_sum_entry(c->counters, e, &s);
        for (unsigned k = 0; k < 5; k++) {
            evbuffer_add_printf(b, "cutover_requests_total{");
            route_pool(b, e->route, e->pool);
            evbuffer_add_printf(b, ",class=\"%s\"} %llu\n", classes[k],
                                (unsigned long long)s.cls[k]);
        }
    }
    family(b, "cutover_upstream_errors_total", "counter",
           "Requests cutover answered itself because the upstream failed (502, 503, 504).");
    for (const struct counters_entry *e = counters_first(c->counters); e; e = e->next) {
        struct counters_sum s;
        counters_sum_entry(c->counters, e, &s);
        evbuffer_add_printf(b, "cutover_upstream_errors_total{");
        route_pool(b, e->route, e->pool);
        evbuffer_add_printf(b, "} %llu\n", (unsigned long long)s.upstream_errors);
    }
    static const unsigned bounds[SNAP_LAT_BUCKETS] = SNAP_LAT_BOUNDS_MS;
    family(b, "cutover_request_duration_seconds", "histogram",
           "Time from the request head to the end of the response, by route and pool.");
    for (const struct counters_entry *e = counters_first(c->counters); e; e = e->next) {
        struct counters_sum s;
        counters_sum_entry(c->counters, e, &s);
        uint64_t cum = 0;
        for (unsigned i = 0; i <= SNAP_LAT_BUCKETS; i++) {
            cum += s.lat[i];
            evbuffer_add_printf(b, "cutover_request_duration_seconds_bucket{");
            route_pool(b, e->route, e->pool);
            if (i < SNAP_LAT_BUCKETS)
                evbuffer_add_printf(b, ",le=\"%g\"} %llu\n", bounds[i] / 1000.0,
                                    (unsigned long long)cum);
            else
                evbuffer_add_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        evbuffer_add_printf(b, "cutover_request_duration_seconds_sum{");
        route_pool(b, e->route, e->pool);
        evbuffer_add_printf(b, "} %.6f\n", (double)s.lat_sum_us / 1e6);
        evbuffer_add_printf(b, "cutover_request_duration_seconds_count{");
        route_pool(b, e->route, e->pool);
        evbuffer_add_printf(b, "} %llu\n", (unsigned long long)cum);
    }
}

static void render_weights(const struct metrics_source *c, struct evbuffer *b)
{
    family(b, "cutover_pool_weight_ratio", "gauge",
           "The share of new requests a pool gets (0..1), by route and pool.");
    for (size_t r = 0; r < c->rt->nroutes; r++) {
        const struct state_route *sr = &c->rt->routes[r];
        for (size_t p = 0; p < sr->npools; p++) {
            evbuffer_add_printf(b, "cutover_pool_weight_ratio{");
            route_pool(b, sr->name, sr->pools[p].name);
            evbuffer_add_printf(b, "} %.4f\n", sr->pools[p].weight_bp / 10000.0);
        }
    }
    family(b, "cutover_pool_stable_weight_ratio", "gauge",
           "The weights a rollback returns to (0..1), by route and pool.");
    for (size_t r = 0; r < c->rt->nroutes; r++) {
        const struct state_route *sr = &c->rt->routes[r];
        for (size_t p = 0; p < sr->npools; p++) {
            evbuffer_add_printf(b, "cutover_pool_stable_weight_ratio{");
            route_pool(b, sr->name, sr->pools[p].name);
            evbuffer_add_printf(b, "} %.4f\n", sr->pools[p].stable_bp / 10000.0);
        }
    }
    family(b, "cutover_route_cohort_weight_percent", "gauge",
           "The weights of a route's country cohort (0..100), by route and pool; only routes "
           "with a cohort.");
    for (size_t r = 0; r < c->rt->nroutes; r++) {
        const struct state_route *sr = &c->rt->routes[r];
        for (size_t p = 0; sr->cohort.ncountries && p < sr->npools; p++) {
            evbuffer_add_printf(b, "cutover_route_cohort_weight_percent{");
            route_pool(b, sr->name, sr->pools[p].name);
            evbuffer_add_printf(b, "} %.2f\n", sr->cohort.weights_bp[p] / 100.0);
        }
    }
    family(b, "cutover_route_cohort_countries", "gauge",
           "How many countries a route's cohort holds; only routes with a cohort.");
    for (size_t r = 0; r < c->rt->nroutes; r++) {
        const struct state_route *sr = &c->rt->routes[r];
        if (sr->cohort.ncountries == 0)
            continue;
        evbuffer_add(b, "cutover_route_cohort_countries{route=\"", 38);
        label(b, sr->name);
        evbuffer_add_printf(b, "\"} %u\n", sr->cohort.ncountries);
    }
    family(b, "cutover_endpoints", "gauge",
           "Endpoints per route and pool in the serving snapshot, by state: serving, "
           "unhealthy (failed active checks or ejected), drained (by an operator).");
    const struct snapshot *s = c->snap;
    for (unsigned r = 0; s && r < s->nroutes; r++) {
        for (unsigned p = 0; p < s->routes[r].npools; p++) {
            const struct snap_pool *sp = &s->routes[r].pools[p];
            unsigned n[3] = {0, 0, 0}; /* serving, unhealthy, drained */
            for (unsigned k = 0; k < sp->neps; k++)
                n[sp->eps[k].drained ? 2 : sp->eps[k].unhealthy ? 1 : 0]++;
            static const char *const names[3] = {"serving", "unhealthy", "drained"};
            for (unsigned i = 0; i < 3; i++) {
                evbuffer_add_printf(b, "cutover_endpoints{");
                route_pool(b, s->routes[r].cfg->name, sp->cfg->name);
                evbuffer_add_printf(b, ",state=\"%s\"} %u\n", names[i], n[i]);
            }
        }
    }
}

/* The sum over the workers of the counter at offset off of struct worker (an _Atomic uint64_t
 * only its worker writes). */
static unsigned long long workers_sum(const struct metrics_source *c, size_t off)
{
    unsigned long long n = 0;
    for (unsigned i = 0; i < c->nworkers; i++) {
        const _Atomic uint64_t *v =
            (const _Atomic uint64_t *)(const void *)((const char *)c->workers[i] + off);
        n += atomic_load_explicit(v, memory_order_relaxed);
    }
    return n;
}

/* A family without labels whose one value is workers_sum(c, off). */
static void worker_family(struct evbuffer *b, const struct metrics_source *c, const char *name,
                          const char *type, const char *help, size_t off)
{
    family(b, name, type, help);
    evbuffer_add_printf(b, "%s %llu\n", name, workers_sum(c, off));
}

static void render_process(const struct metrics_source *c, struct evbuffer *b)
{
    const struct cfg *cfg = c->cfg;
    family(b, "cutover_info", "gauge",
           "1, with the cluster and region of this replica and its version (join on them).");
    evbuffer_add_printf(b, "cutover_info{cluster=\"");
    label(b, cfg ? cfg->cluster : "");
    evbuffer_add_printf(b, "\",region=\"");
    label(b, cfg ? cfg->region : "");
    evbuffer_add_printf(b, "\",version=\"" CUTOVER_VERSION "\"} 1\n");
    family(b, "cutover_generation", "gauge", "The routing generation being served.");
    evbuffer_add_printf(b, "cutover_generation %llu\n", (unsigned long long)c->generation);
    family(b, "cutover_ready", "gauge", "1 when serving, 0 while draining (SIGTERM).");
    evbuffer_add_printf(b, "cutover_ready %d\n", c->snap && !c->stopping);
    family(b, "cutover_start_time_seconds", "gauge", "Start time since the epoch.");
    evbuffer_add_printf(b, "cutover_start_time_seconds %lld\n", (long long)c->started);
    family(b, "cutover_open_connections", "gauge", "Open client connections, all workers.");
    unsigned long long conns = 0;
    for (unsigned i = 0; i < c->nworkers; i++)
        conns += atomic_load_explicit(&c->workers[i]->open_conns, memory_order_relaxed);
    evbuffer_add_printf(b, "cutover_open_connections %llu\n", conns);
    worker_family(b, c, "cutover_request_body_timeouts_total", "counter",
                  "Requests answered 408 because their body was too slow "
                  "(timeouts.request_body_ms, limits.min_body_rate).",
                  offsetof(struct worker, body_timeouts));
    worker_family(b, c, "cutover_upstream_retries_total", "counter",
                  "Upstream tries after a request's first (a connect that failed, a connection "
                  "lost before any response byte).",
                  offsetof(struct worker, retries));
    worker_family(b, c, "cutover_failovers_total", "counter",
                  "Requests moved to another pool because theirs had no endpoint left "
                  "(per-request fail-safe).",
                  offsetof(struct worker, failovers));
    worker_family(b, c, "cutover_upstream_queued_total", "counter",
                  "Requests that waited for a connection to an endpoint at "
                  "limits.upstream_connections_per_endpoint.",
                  offsetof(struct worker, queued));
    worker_family(b, c, "cutover_upstream_queue_length", "gauge",
                  "Requests waiting for an upstream connection now, all workers.",
                  offsetof(struct worker, queued_now));
    family(b, "cutover_upstream_queue_refusals_total", "counter",
           "Requests answered 503 upstream_busy: the endpoint's queue was full, or the wait "
           "passed timeouts.upstream_queue_ms.");
    evbuffer_add_printf(b, "cutover_upstream_queue_refusals_total{reason=\"full\"} %llu\n",
                        workers_sum(c, offsetof(struct worker, queue_full)));
    evbuffer_add_printf(b, "cutover_upstream_queue_refusals_total{reason=\"timeout\"} %llu\n",
                        workers_sum(c, offsetof(struct worker, queue_timeouts)));
    family(b, "cutover_control_operations_total", "counter",
           "Control requests (control socket, admin API, SIGHUP reloads), by op and result.");
    unsigned nops;
    const struct counters_op *ops = counters_ops(c->counters, &nops);
    for (unsigned i = 0; i < nops; i++) {
        evbuffer_add_printf(b, "cutover_control_operations_total{op=\"");
        label(b, ops[i].op);
        evbuffer_add_printf(b, "\",result=\"ok\"} %llu\n", (unsigned long long)ops[i].ok);
        evbuffer_add_printf(b, "cutover_control_operations_total{op=\"");
        label(b, ops[i].op);
        evbuffer_add_printf(b, "\",result=\"refused\"} %llu\n",
                            (unsigned long long)ops[i].refused);
    }
    unsigned long long rollbacks = 0;
    for (unsigned i = 0; i < nops; i++)
        if (strcmp(ops[i].op, "rollback") == 0)
            rollbacks = ops[i].ok;
    family(b, "cutover_rollbacks_total", "counter", "Rollbacks applied.");
    evbuffer_add_printf(b, "cutover_rollbacks_total %llu\n", rollbacks);
}

/* The connection limits of the control socket and the HTTPS admin API (docs/control-protocol.md,
 * "Connection limits"); a transport that is not configured has no series. */
static void render_control_limits(const struct metrics_source *c, struct evbuffer *b)
{
    if (!c->sock && !c->admin)
        return;
    struct ctlsock_stats s;
    struct admin_stats a;
    ctlsock_stats(c->sock, &s);
    admin_stats(c->admin, &a);
    const struct {
        const char *transport;
        int on;
        unsigned open;
        uint64_t closed[5];
    } t[] = {
        {"socket", c->sock != NULL, s.open,
         {s.evicted, s.request_timeouts, s.idle_timeouts, s.peer_closed, s.busy}},
        {"https", c->admin != NULL, a.open,
         {a.evicted, a.request_timeouts, a.idle_timeouts, a.peer_closed, a.busy + a.refused}},
    };
    static const char *const reasons[5] = {"evicted", "request_timeout", "idle_timeout",
                                           "peer_closed", "refused"};
    family(b, "cutover_control_connections", "gauge",
           "Open control connections, by transport (socket, https).");
    for (size_t i = 0; i < CUT_ARRAY_LEN(t); i++)
        if (t[i].on)
            evbuffer_add_printf(b, "cutover_control_connections{transport=\"%s\"} %u\n",
                                t[i].transport, t[i].open);
    family(b, "cutover_control_connections_closed_total", "counter",
           "Control connections cutover closed, by transport and reason: evicted (the idlest, "
           "to make room for a new one), request_timeout, idle_timeout, peer_closed (found "
           "closed by the client when the table was full), refused (busy: none could give "
           "way).");
    for (size_t i = 0; i < CUT_ARRAY_LEN(t); i++)
        for (size_t r = 0; t[i].on && r < CUT_ARRAY_LEN(reasons); r++)
            evbuffer_add_printf(
                b, "cutover_control_connections_closed_total{transport=\"%s\",reason=\"%s\"} "
                   "%llu\n",
                t[i].transport, reasons[r], (unsigned long long)t[i].closed[r]);
}

static void render_siem(const struct metrics_source *c, struct evbuffer *b)
{
    struct siem_stats st;
    siem_get_stats(c->siem, &st);
    if (!st.enabled)
        return; /* no SIEM configured: no series */
    family(b, "cutover_siem_messages_total", "counter",
           "Audit records and security events for the SIEM: sent, or dropped (queue full, SIEM "
           "unreachable or removed).");
    evbuffer_add_printf(b, "cutover_siem_messages_total{result=\"sent\"} %llu\n",
                        (unsigned long long)st.sent);
    evbuffer_add_printf(b, "cutover_siem_messages_total{result=\"dropped\"} %llu\n",
                        (unsigned long long)st.dropped);
    family(b, "cutover_siem_connected", "gauge",
           "1 while connected to the SIEM.");
    evbuffer_add_printf(b, "cutover_siem_connected %d\n", st.connected);
    family(b, "cutover_siem_queue_bytes", "gauge", "Bytes waiting for the SIEM.");
    evbuffer_add_printf(b, "cutover_siem_queue_bytes %zu\n", st.queued_bytes);
}

static void render_fleet(const struct metrics_source *c, struct evbuffer *b)
{
    if (!c->fleet)
        return; /* no fleet store: no series */
    struct fleet_stats st;
    fleet_get_stats(c->fleet, &st);
    family(b, "cutover_store_reachable", "gauge",
           "1 while the fleet store (etcd) answers and changes can be committed.");
    evbuffer_add_printf(b, "cutover_store_reachable %d\n", st.reachable);
    family(b, "cutover_fleet_generation", "gauge", "The fleet's generation as this replica knows it.");
    evbuffer_add_printf(b, "cutover_fleet_generation %llu\n", (unsigned long long)st.generation);
    family(b, "cutover_fleet_replicas", "gauge",
           "Replicas registered in the fleet store, and those below the fleet's generation.");
    evbuffer_add_printf(b, "cutover_fleet_replicas{state=\"registered\"} %zu\n", st.replicas);
    evbuffer_add_printf(b, "cutover_fleet_replicas{state=\"lagging\"} %zu\n", st.lagging);
    family(b, "cutover_store_invalid_values", "gauge",
           "Values in the fleet store that do not parse or fit this configuration (not applied).");
    evbuffer_add_printf(b, "cutover_store_invalid_values %zu\n", st.invalid);
    family(b, "cutover_store_pending_rollbacks", "gauge",
           "Rollbacks applied here while the store was unreachable, not yet written to it.");
    evbuffer_add_printf(b, "cutover_store_pending_rollbacks %zu\n", st.pending);
    family(b, "cutover_fleet_applied_total", "counter",
           "States received from the fleet store (watch or re-read) and put in use.");
    evbuffer_add_printf(b, "cutover_fleet_applied_total %llu\n", (unsigned long long)st.applied);
    family(b, "cutover_store_commits_total", "counter",
           "Changes sent to the fleet store by this replica: committed, refused as a conflict, or "
           "not answered.");
    evbuffer_add_printf(b, "cutover_store_commits_total{result=\"committed\"} %llu\n",
                        (unsigned long long)st.commits);
    evbuffer_add_printf(b, "cutover_store_commits_total{result=\"conflict\"} %llu\n",
                        (unsigned long long)st.conflicts);
    evbuffer_add_printf(b, "cutover_store_commits_total{result=\"unavailable\"} %llu\n",
                        (unsigned long long)st.unavailable);
}

static void render_health(const struct metrics_source *c, struct evbuffer *b)
{
    unsigned ejected, failsafe;
    uint64_t ejections, failsafe_events;
    hstate_totals(c->hs, &ejected, &ejections, &failsafe, &failsafe_events);
    family(b, "cutover_endpoints_ejected", "gauge", "Endpoints ejected by outlier detection now.");
    evbuffer_add_printf(b, "cutover_endpoints_ejected %u\n", ejected);
    family(b, "cutover_ejections_total", "counter", "Outlier ejections so far.");
    evbuffer_add_printf(b, "cutover_ejections_total %llu\n", (unsigned long long)ejections);
    family(b, "cutover_pools_failsafe", "gauge",
           "Pools whose share goes to other pools because none of their endpoints serves.");
    evbuffer_add_printf(b, "cutover_pools_failsafe %u\n", failsafe);
    family(b, "cutover_failsafe_events_total", "counter", "Times a pool went into fail-safe.");
    evbuffer_add_printf(b, "cutover_failsafe_events_total %llu\n",
                        (unsigned long long)failsafe_events);
    family(b, "cutover_shift_plan", "gauge",
           "1 for the state each route's latest shift plan is in (running, paused, promoted, "
           "rolled_back, aborted).");
    for (size_t r = 0; r < c->rt->nroutes; r++) {
        struct plan p;
        const struct state_route *sr = &c->rt->routes[r];
        if (!sr->plan || plan_parse(sr->plan, &p) < 0)
            continue;
        evbuffer_add_printf(b, "cutover_shift_plan{route=\"");
        label(b, sr->name);
        evbuffer_add_printf(b, "\",to=\"");
        label(b, p.to);
        evbuffer_add_printf(b, "\",state=\"%s\"} 1\n", p.state);
    }
}

static void render_certificates(const struct metrics_source *c, struct evbuffer *b)
{
    const struct cfg *cfg = c->cfg;
    family(b, "cutover_certificate_expiry_seconds", "gauge",
           "Expiry (seconds since the epoch) of each certificate cutover presents: listener "
           "certificates and upstream client certificates.");
    for (size_t i = 0; i < cfg->nlisteners && i < CFG_MAX_LISTENERS; i++) {
        const struct tls_ctx *t = c->tls->listeners[i];
        for (size_t k = 0; k < tls_ctx_ncerts(t); k++) {
            long long na;
            const char *subject = tls_ctx_cert_info(t, k, &na);
            evbuffer_add_printf(b, "cutover_certificate_expiry_seconds{use=\"listener\",name=\"");
            label(b, cfg->listeners[i].name ? cfg->listeners[i].name : "");
            evbuffer_add_printf(b, "\",index=\"%zu\",subject=\"", k);
            label(b, subject);
            evbuffer_add_printf(b, "\"} %lld\n", na);
        }
    }
    for (size_t r = 0; r < cfg->nroutes && c->tls->pools; r++) {
        for (size_t p = 0; p < cfg->routes[r].npools; p++) {
            size_t k = r * CFG_MAX_POOLS + p;
            const struct tls_client *tc = k < c->tls->npools ? c->tls->pools[k] : NULL;
            long long na;
            const char *subject = tc ? tls_client_cert_info(tc, &na) : "";
            if (!tc || !subject[0])
                continue;
            char name[200];
            snprintf(name, sizeof name, "%s/%s", cfg->routes[r].name, cfg->routes[r].pools[p].name);
            evbuffer_add_printf(b, "cutover_certificate_expiry_seconds{use=\"upstream_client\","
                                   "name=\"");
            label(b, name);
            evbuffer_add_printf(b, "\",index=\"0\",subject=\"");
            label(b, subject);
            evbuffer_add_printf(b, "\"} %lld\n", na);
        }
    }
}

int metrics_render(const struct metrics_source *c, struct evbuffer *out)
{
    render_requests(c, out);
    render_weights(c, out);
    render_process(c, out);
    render_health(c, out);
    render_control_limits(c, out);
    render_siem(c, out);
    render_fleet(c, out);
    render_certificates(c, out);
    return 0;
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

static void answer(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                   struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct metrics *m = arg;
    struct metrics_source src;
    m->source(m->ctx, &src);
    const struct metrics_source *c = &src;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    const char *path = uri ? uri : "";
    size_t plen = strcspn(path, "?");
    if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
        metrics_render(c, body);
        answer(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
    } else if (plen == 8 && strncmp(path, "/healthz", 8) == 0) {
        evbuffer_add_printf(body, "ok\n");
        answer(req, 200, "OK", "text/plain", body);
    } else if (plen == 7 && strncmp(path, "/readyz", 7) == 0) {
        int ready = c->snap && !c->stopping;
        evbuffer_add_printf(body, "%s\n", ready ? "ready" : c->stopping ? "draining" : "starting");
        answer(req, ready ? 200 : 503, ready ? "OK" : "Service Unavailable", "text/plain", body);
    } else {
        evbuffer_add_printf(body, "not found: /metrics, /healthz, /readyz\n");
        answer(req, 404, "Not Found", "text/plain", body);
    }
    evbuffer_free(body);
}

struct metrics *metrics_new(struct event_base *base, const struct cfg_metrics *mc,
                            metrics_source_fn source, void *ctx, char *err, size_t cap)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->http = evhttp_new(base))) {
        free(m);
        snprintf(err, cap, "metrics: out of memory");
        return NULL;
    }
    m->source = source;
    m->ctx = ctx;
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(m->http, METRICS_TIMEOUT_S);
    evhttp_set_max_headers_size(m->http, METRICS_MAX_HEADERS);
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_gencb(m->http, on_request, m);
    if (!evhttp_bind_socket_with_handle(m->http, mc->host, mc->port)) {
        snprintf(err, cap, "metrics.address %s: cannot listen (in use, or not a local address)",
                 mc->address);
        evhttp_free(m->http);
        free(m);
        return NULL;
    }
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    evhttp_free(m->http);
    free(m);
}

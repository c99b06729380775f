/* ctl.c - the control thread: reloads, DNS refresh, graceful stop, snapshot publication. */
#include "ctl.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proxy/cut.h"
#include "../proxy/log.h"
#include "../proxy/snapshot.h"
#include "../proxy/worker.h"

#define CTL_EXIT_POLL_MS 20

/* One resolved name, cached between refreshes. */
struct dns_entry {
    char *host;
    uint16_t port;
    struct sockaddr_storage addrs[SNAP_MAX_ADDRS_PER_NAME];
    socklen_t lens[SNAP_MAX_ADDRS_PER_NAME];
    unsigned n;
    int seen; /* used by the snapshot being built */
};

struct ctl {
    const char *config_path;
    struct logger *lg;
    struct worker **workers;
    unsigned nworkers;
    struct event_base *base;
    struct event *ev_hup, *ev_term, *ev_int, *ev_dns, *ev_delay, *ev_drain, *ev_exit;
    struct cfg_hold *hold;
    struct snapshot *snap; /* the latest published, one reference */
    uint64_t generation;
    struct dns_entry *dns;
    size_t ndns, capdns;
    int dns_changed;
    int stopping;
};

void ctl_event(struct ctl *c, const char *name, const char *extra)
{
    char t[32], line[8192];
    log_time_rfc3339(t, sizeof t);
    const struct cfg *cfg = c->hold ? c->hold->cfg : NULL;
    int n = snprintf(line, sizeof line,
                     "{\"type\":\"event\",\"time\":\"%s\",\"cluster\":\"%s\",\"region\":\"%s\","
                     "\"event\":\"%s\",\"generation\":%llu%s}",
                     t, cfg ? cfg->cluster : "", cfg ? cfg->region : "", name,
                     (unsigned long long)c->generation, extra ? extra : "");
    if (n > 0)
        log_line(c->lg, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ---- DNS (control thread only; blocking getaddrinfo never runs on a worker) --------------- */

static struct dns_entry *dns_find(struct ctl *c, const char *host, uint16_t port)
{
    for (size_t i = 0; i < c->ndns; i++)
        if (c->dns[i].port == port && strcmp(c->dns[i].host, host) == 0)
            return &c->dns[i];
    return NULL;
}

static void dns_lookup(const char *host, uint16_t port, struct dns_entry *e)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    e->n = 0;
    if (getaddrinfo(host, ps, &hints, &res) != 0)
        return;
    for (struct addrinfo *ai = res; ai && e->n < SNAP_MAX_ADDRS_PER_NAME; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof e->addrs[0])
            continue;
        memcpy(&e->addrs[e->n], ai->ai_addr, ai->ai_addrlen);
        e->lens[e->n] = ai->ai_addrlen;
        e->n++;
    }
    freeaddrinfo(res);
}

static unsigned resolve(void *ctx, const struct cfg_endpoint *ep, struct sockaddr_storage *out,
                        socklen_t *outlen, unsigned max)
{
    struct ctl *c = ctx;
    struct dns_entry *e = dns_find(c, ep->host, ep->port);
    if (!e) {
        if (c->ndns == c->capdns) {
            size_t cap = c->capdns ? c->capdns * 2 : 16;
            struct dns_entry *v = realloc(c->dns, cap * sizeof *v);
            if (!v)
                return 0;
            c->dns = v;
            c->capdns = cap;
        }
        e = &c->dns[c->ndns];
        memset(e, 0, sizeof *e);
        e->host = strdup(ep->host);
        if (!e->host)
            return 0;
        e->port = ep->port;
        c->ndns++;
        dns_lookup(ep->host, ep->port, e);
        if (e->n == 0) {
            char extra[512];
            snprintf(extra, sizeof extra, ",\"endpoint\":\"%.200s\",\"message\":\"does not resolve\"",
                     ep->address);
            ctl_event(c, "dns_failed", extra);
        }
    }
    e->seen = 1;
    unsigned n = e->n < max ? e->n : max;
    memcpy(out, e->addrs, n * sizeof *out);
    memcpy(outlen, e->lens, n * sizeof *outlen);
    return n;
}

static void dns_dispose(struct ctl *c)
{
    for (size_t i = 0; i < c->ndns; i++)
        free(c->dns[i].host);
    free(c->dns);
    c->dns = NULL;
    c->ndns = c->capdns = 0;
}

/* ---- publication --------------------------------------------------------------------------- */

static int publish(struct ctl *c, struct cfg_hold *hold, const unsigned (*weights)[CFG_MAX_POOLS])
{
    struct snapshot *s = snapshot_new(hold, c->generation, weights, resolve, c);
    if (!s)
        return CUT_ENOMEM;
    for (unsigned i = 0; i < c->nworkers; i++) {
        snapshot_ref(s);
        worker_publish(c->workers[i], s);
    }
    snapshot_unref(c->snap);
    c->snap = s;
    return 0;
}

static void arm_dns(struct ctl *c)
{
    unsigned ms = c->hold->cfg->timeouts.dns_refresh;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->ev_dns, &tv);
}

/* Re-resolves every cached name; publishes a new snapshot when an address set changed. */
static void on_dns(evutil_socket_t fd, short what, void *arg)
{
    struct ctl *c = arg;
    (void)fd;
    (void)what;
    int changed = 0;
    for (size_t i = 0; i < c->ndns; i++) {
        struct dns_entry fresh;
        memset(&fresh, 0, sizeof fresh);
        struct in_addr probe;
        struct in6_addr probe6;
        if (inet_pton(AF_INET, c->dns[i].host, &probe) == 1 ||
            inet_pton(AF_INET6, c->dns[i].host, &probe6) == 1)
            continue; /* numeric: nothing to refresh */
        dns_lookup(c->dns[i].host, c->dns[i].port, &fresh);
        if (fresh.n == 0)
            continue; /* keep the last good answer rather than emptying a pool */
        if (fresh.n != c->dns[i].n ||
            memcmp(fresh.addrs, c->dns[i].addrs, fresh.n * sizeof fresh.addrs[0]) != 0) {
            memcpy(c->dns[i].addrs, fresh.addrs, sizeof fresh.addrs);
            memcpy(c->dns[i].lens, fresh.lens, sizeof fresh.lens);
            c->dns[i].n = fresh.n;
            changed = 1;
        }
    }
    if (changed && !c->stopping) {
        const unsigned(*w)[CFG_MAX_POOLS] = NULL;
        unsigned(*rows)[CFG_MAX_POOLS] = calloc(c->snap->nroutes ? c->snap->nroutes : 1,
                                                 sizeof *rows);
        if (rows) {
            for (unsigned r = 0; r < c->snap->nroutes; r++)
                memcpy(rows[r], c->snap->routes[r].weights_bp, sizeof rows[r]);
            w = (const unsigned(*)[CFG_MAX_POOLS])rows;
        }
        if (publish(c, c->hold, w) == 0)
            ctl_event(c, "dns_changed", NULL);
        free(rows);
    }
    arm_dns(c);
}

/* ---- reload ------------------------------------------------------------------------------- */

static int same_listeners(const struct cfg *a, const struct cfg *b)
{
    if (a->nlisteners != b->nlisteners)
        return 0;
    for (size_t i = 0; i < a->nlisteners; i++) {
        if (strcmp(a->listeners[i].host, b->listeners[i].host) != 0 ||
            a->listeners[i].port != b->listeners[i].port ||
            a->listeners[i].protocols != b->listeners[i].protocols)
            return 0;
    }
    return 1;
}

static void refuse(struct ctl *c, const struct cfg_errors *errs)
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
    cfg_errors_print(errs, c->config_path, stderr);
}

static void reload(struct ctl *c)
{
    struct cfg *cfg = NULL;
    struct cfg_errors errs = {0};
    if (cfg_load(c->config_path, &cfg, &errs) < 0) {
        refuse(c, &errs);
        cfg_errors_dispose(&errs);
        return;
    }
    const struct cfg *old = c->hold->cfg;
    struct cfg_error why[2];
    size_t nwhy = 0;
    if (!same_listeners(old, cfg))
        why[nwhy++] = (struct cfg_error){"listeners", "changing listeners requires a restart", 0, 0};
    if (old->workers != cfg->workers)
        why[nwhy++] = (struct cfg_error){"workers", "changing workers requires a restart", 0, 0};
    if (nwhy) {
        struct cfg_errors e = {why, nwhy};
        refuse(c, &e);
        cfg_free(cfg);
        return;
    }
    struct cfg_hold *hold = snapshot_cfg_hold(cfg);
    if (!hold) {
        ctl_event(c, "reload_refused", ",\"errors\":[{\"path\":\"\",\"message\":\"out of memory\"}]");
        return;
    }
    c->generation++;
    if (publish(c, hold, NULL) < 0) {
        c->generation--;
        snapshot_cfg_unref(hold);
        ctl_event(c, "reload_refused", ",\"errors\":[{\"path\":\"\",\"message\":\"out of memory\"}]");
        return;
    }
    snapshot_cfg_unref(c->hold);
    c->hold = hold;
    ctl_event(c, "reload", ",\"result\":\"ok\"");
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
    if (c->stopping) {
        return;
    }
    c->stopping = 1;
    char extra[64];
    snprintf(extra, sizeof extra, ",\"signal\":\"%s\"", sig);
    ctl_event(c, "stopping", extra);
    event_del(c->ev_dns);
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
            reload(c);
        return;
    }
    begin_stop(c, sig == SIGTERM ? "TERM" : "INT");
}

struct ctl *ctl_new(const char *config_path, struct cfg *cfg, struct logger *lg,
                    struct worker **workers, unsigned nworkers)
{
    struct ctl *c = calloc(1, sizeof *c);
    if (!c) {
        cfg_free(cfg);
        return NULL;
    }
    c->config_path = config_path;
    c->lg = lg;
    c->workers = workers;
    c->nworkers = nworkers;
    c->generation = 1;
    c->hold = snapshot_cfg_hold(cfg);
    c->base = event_base_new();
    if (!c->hold || !c->base) {
        ctl_free(c);
        return NULL;
    }
    c->ev_hup = evsignal_new(c->base, SIGHUP, on_signal, c);
    c->ev_term = evsignal_new(c->base, SIGTERM, on_signal, c);
    c->ev_int = evsignal_new(c->base, SIGINT, on_signal, c);
    c->ev_dns = evtimer_new(c->base, on_dns, c);
    c->ev_delay = evtimer_new(c->base, on_delay, c);
    c->ev_drain = evtimer_new(c->base, on_drain, c);
    c->ev_exit = event_new(c->base, -1, EV_PERSIST, on_exit_poll, c);
    if (!c->ev_hup || !c->ev_term || !c->ev_int || !c->ev_dns || !c->ev_delay || !c->ev_drain ||
        !c->ev_exit) {
        ctl_free(c);
        return NULL;
    }
    event_add(c->ev_hup, NULL);
    event_add(c->ev_term, NULL);
    event_add(c->ev_int, NULL);
    if (publish(c, c->hold, NULL) < 0) {
        ctl_free(c);
        return NULL;
    }
    arm_dns(c);
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
    struct event *evs[] = {c->ev_hup, c->ev_term, c->ev_int, c->ev_dns,
                           c->ev_delay, c->ev_drain, c->ev_exit};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    snapshot_unref(c->snap);
    snapshot_cfg_unref(c->hold);
    dns_dispose(c);
    if (c->base)
        event_base_free(c->base);
    free(c);
}

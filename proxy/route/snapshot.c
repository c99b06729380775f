/* snapshot.c - immutable routing state and worker-local pins. */
#include "proxy/route/snapshot.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/cut.h"
#include "proxy/log/geoip.h"
#include "proxy/net/tls.h"

struct cfg_hold *snapshot_cfg_hold(struct cfg *cfg)
{
    struct cfg_hold *h = malloc(sizeof *h);
    if (!h) {
        cfg_free(cfg);
        return NULL;
    }
    atomic_init(&h->refs, 1);
    h->cfg = cfg;
    return h;
}

void snapshot_cfg_ref(struct cfg_hold *h)
{
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

void snapshot_cfg_unref(struct cfg_hold *h)
{
    if (!h)
        return;
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
        cfg_free(h->cfg);
        free(h);
    }
}

void snapshot_addr_key(const struct sockaddr *addr, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
    }
}

/* Numeric-only resolution, used when the caller gives no resolver. */
static unsigned resolve_numeric(const struct cfg_endpoint *ep, struct sockaddr_storage *out,
                                socklen_t *outlen)
{
    return addr_numeric(ep->host, ep->port, out, outlen) == 0 ? 1 : 0;
}

int snapshot_parse_endpoint(const char *text, struct cfg_endpoint *ep, char *buf, size_t cap)
{
    size_t n = strlen(text);
    if (n == 0 || n >= cap)
        return CUT_EINVAL;
    memcpy(buf, text, n + 1);
    char *colon = strrchr(buf, ':');
    if (!colon || colon == buf || colon[1] == '\0')
        return CUT_EINVAL;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || port == 0 || port > 65535)
        return CUT_EINVAL;
    *colon = '\0';
    char *host = buf;
    if (host[0] == '[') {
        size_t hl = strlen(host);
        if (hl < 3 || host[hl - 1] != ']')
            return CUT_EINVAL;
        host[hl - 1] = '\0';
        host++;
    }
    ep->address = (char *)text;
    ep->host = host;
    ep->port = (uint16_t)port;
    return 0;
}

static int listed(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

/* Adds the addresses of one configured or added endpoint to pool sp. */
static void add_endpoint(struct snapshot *s, struct snap_pool *sp, unsigned *n,
                         const struct cfg_endpoint *ce, int drained, snapshot_resolve_fn resolve,
                         void *resolve_ctx)
{
    struct sockaddr_storage addrs[SNAP_MAX_ADDRS_PER_NAME];
    socklen_t lens[SNAP_MAX_ADDRS_PER_NAME];
    unsigned got = resolve ? resolve(resolve_ctx, ce, addrs, lens, SNAP_MAX_ADDRS_PER_NAME)
                           : resolve_numeric(ce, &addrs[0], &lens[0]);
    for (unsigned a = 0; a < got; a++) {
        struct snap_endpoint *se = &s->endpoints[*n];
        /* One address serves a pool once even if two names resolve to it. */
        char key[SNAP_KEY_MAX];
        snapshot_addr_key((struct sockaddr *)&addrs[a], key, sizeof key);
        int dup = 0;
        for (unsigned k = 0; k < sp->neps; k++)
            dup |= strcmp(sp->eps[k].key, key) == 0;
        if (dup)
            continue;
        memcpy(se->key, key, sizeof key);
        snprintf(se->name, sizeof se->name, "%s", ce->address);
        se->addr = addrs[a];
        se->addrlen = lens[a];
        se->drained = (uint8_t)drained;
        se->index = (*n)++;
        sp->neps++;
    }
}

struct snapshot *snapshot_new(struct cfg_hold *hold, const struct snap_inputs *in)
{
    const struct cfg *cfg = hold->cfg;
    const struct snap_overlay_route *overlay = in->overlay;
    snapshot_resolve_fn resolve = in->resolve;
    void *resolve_ctx = in->resolve_ctx;
    struct snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->generation = in->generation;
    s->hold = hold;
    s->cfg = cfg;
    snapshot_cfg_ref(hold);

    size_t max_eps = 0;
    for (size_t r = 0; r < cfg->nroutes; r++)
        for (size_t p = 0; p < cfg->routes[r].npools; p++)
            max_eps += (cfg->routes[r].pools[p].nendpoints +
                        (overlay ? overlay[r].pools[p].nadded : 0)) *
                       SNAP_MAX_ADDRS_PER_NAME;
    s->routes = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *s->routes);
    s->endpoints = calloc(max_eps ? max_eps : 1, sizeof *s->endpoints);
    if (!s->routes || !s->endpoints) {
        snapshot_unref(s);
        return NULL;
    }
    s->nroutes = (unsigned)cfg->nroutes;

    unsigned n = 0;
    for (size_t r = 0; r < cfg->nroutes; r++) {
        const struct cfg_route *cr = &cfg->routes[r];
        struct snap_route *sr = &s->routes[r];
        sr->cfg = cr;
        sr->npools = (unsigned)cr->npools;
        if (overlay && overlay[r].cohort.ncountries > 0 &&
            overlay[r].cohort.ncountries <= ROUTE_COHORT_MAX) {
            /* the cohort is taken only when its weights are whole (the control plane checked) */
            unsigned sum = 0;
            for (size_t p = 0; p < cr->npools; p++)
                sum += overlay[r].cohort.weights_bp[p];
            if (sum == CFG_BP_TOTAL)
                sr->cohort = overlay[r].cohort;
        }
        for (size_t p = 0; p < cr->npools; p++) {
            const struct cfg_pool *cp = &cr->pools[p];
            const struct snap_overlay_pool *op = overlay ? &overlay[r].pools[p] : NULL;
            struct snap_pool *sp = &sr->pools[p];
            sr->weights_bp[p] = op && op->has_weight ? op->weight_bp : cp->weight_bp;
            sp->cfg = cp;
            sp->eps = &s->endpoints[n];
            sp->counters = op ? op->counters : NULL;
            for (size_t e = 0; e < cp->nendpoints; e++) {
                const char *addr = cp->endpoints[e].address;
                if (op && listed(op->removed, op->nremoved, addr))
                    continue;
                int drained = op && listed(op->drained, op->ndrained, addr);
                add_endpoint(s, sp, &n, &cp->endpoints[e], drained, resolve, resolve_ctx);
            }
            for (size_t e = 0; op && e < op->nadded; e++) {
                struct cfg_endpoint ce;
                char buf[300];
                if (snapshot_parse_endpoint(op->added[e], &ce, buf, sizeof buf) < 0)
                    continue; /* validated by the control plane before it got here */
                int drained = listed(op->drained, op->ndrained, op->added[e]);
                add_endpoint(s, sp, &n, &ce, drained, resolve, resolve_ctx);
            }
        }
    }
    s->nendpoints = n;
    for (unsigned i = 0; in->listener_tls && i < CFG_MAX_LISTENERS; i++) {
        s->tls[i] = in->listener_tls[i];
        tls_ctx_ref(s->tls[i]);
    }
    s->geo = in->geo;
    geoip_ref(s->geo);
    for (unsigned r = 0; in->pool_tls && r < s->nroutes; r++) {
        for (unsigned p = 0; p < s->routes[r].npools; p++) {
            size_t k = (size_t)r * CFG_MAX_POOLS + p;
            s->routes[r].pools[p].tls = k < in->npool_tls ? in->pool_tls[k] : NULL;
            tls_client_ref(s->routes[r].pools[p].tls);
        }
    }
    if (in->health)
        in->health(in->health_ctx, s);
    return s;
}

void snapshot_ref(struct snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void snapshot_unref(struct snapshot *s)
{
    if (!s)
        return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (unsigned r = 0; r < s->nroutes; r++)
        for (unsigned p = 0; p < s->routes[r].npools; p++)
            tls_client_unref(s->routes[r].pools[p].tls);
    free(s->routes);
    free(s->endpoints);
    for (unsigned i = 0; i < CFG_MAX_LISTENERS; i++)
        tls_ctx_unref(s->tls[i]);
    geoip_unref(s->geo);
    snapshot_cfg_unref(s->hold);
    free(s);
}

unsigned snapshot_refs(const struct snapshot *s)
{
    return atomic_load_explicit(&s->refs, memory_order_acquire);
}

/* ---- pins ---------------------------------------------------------------------------------- */

void snapshot_pins_init(struct snap_pins *p, snap_pin_dispose_fn dispose, void *ctx)
{
    memset(p, 0, sizeof *p);
    p->dispose = dispose;
    p->dispose_ctx = ctx;
}

static void pin_free(struct snap_pins *p, struct snap_pin *pin)
{
    if (p->dispose)
        p->dispose(p->dispose_ctx, pin);
    snapshot_unref(pin->snap);
    free(pin);
}

int snapshot_pins_adopt(struct snap_pins *p, struct snapshot *s, void *data)
{
    struct snap_pin *pin = calloc(1, sizeof *pin);
    if (!pin) {
        snapshot_unref(s);
        return CUT_ENOMEM;
    }
    pin->snap = s;
    pin->data = data;
    struct snap_pin *prev = p->current;
    p->current = pin;
    if (prev) {
        if (prev->users == 0) {
            pin_free(p, prev);
        } else {
            prev->next = p->old;
            p->old = prev;
        }
    }
    return 0;
}

struct snap_pin *snapshot_pin_get(struct snap_pins *p)
{
    if (!p->current)
        return NULL;
    p->current->users++;
    return p->current;
}

void snapshot_pin_put(struct snap_pins *p, struct snap_pin *pin)
{
    CUT_ASSERT(pin->users > 0);
    if (--pin->users > 0 || pin == p->current)
        return;
    for (struct snap_pin **pp = &p->old; *pp; pp = &(*pp)->next) {
        if (*pp == pin) {
            *pp = pin->next;
            pin_free(p, pin);
            return;
        }
    }
    CUT_ASSERT(!"pin not found");
}

void snapshot_pins_dispose(struct snap_pins *p)
{
    while (p->old) {
        struct snap_pin *pin = p->old;
        p->old = pin->next;
        pin_free(p, pin);
    }
    if (p->current)
        pin_free(p, p->current);
    p->current = NULL;
}

void snapshot_endpoint_host(const char *name, char *out, size_t cap)
{
    const char *b = name, *e;
    if (*b == '[') {
        b++;
        e = strchr(b, ']');
    } else {
        e = strrchr(b, ':');
    }
    size_t n = e ? (size_t)(e - b) : strlen(b);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, b, n);
    out[n] = '\0';
}

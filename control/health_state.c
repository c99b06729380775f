/* health_state.c - endpoint health: active verdicts, outlier ejection, slow start, fail-safe
 * (see health_state.h). */
#include "control/health_state.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/cut.h"
#include "proxy/log/log.h"
#include "proxy/route/snapshot.h"
#include "control/eject.h"
#include "control/failsafe.h"
#include "control/slowstart.h"

#define HS_RAMP_STEP_MS 1000 /* slow start republishes this often while ramping */

struct hs_entry {
    char route[64], pool[40], key[SNAP_KEY_MAX];
    int active_down;
    int ejected;
    uint64_t ejected_until_ms;
    unsigned ejections;
    uint64_t up_since_ms;         /* when it last started serving again (slow start); 0: long ago */
    unsigned slow_start_ms;       /* from the pool, at the last apply */
    uint16_t ramp;                /* the ramp published last */
    struct snap_health_slot *slots; /* [nworkers] */
    uint64_t *base;               /* [nworkers] failures at the last return (or ejection) */
    struct hs_entry *next;
};

struct hs_pool {
    char route[64], pool[40];
    int serving;   /* has a serving endpoint in the last applied snapshot */
    int failsafe;  /* its weight was given to other pools */
    struct hs_pool *next;
};

struct hstate {
    unsigned nworkers;
    hstate_event_fn event;
    void *ctx;
    struct hs_entry *entries;
    struct hs_pool *pools;
    uint64_t ejections_total, failsafe_events;
    uint64_t last_ramp_ms;
};

struct hstate *hstate_new(unsigned nworkers, hstate_event_fn event, void *ctx)
{
    struct hstate *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->nworkers = nworkers ? nworkers : 1;
    h->event = event;
    h->ctx = ctx;
    return h;
}

void hstate_free(struct hstate *h)
{
    if (!h)
        return;
    while (h->entries) {
        struct hs_entry *e = h->entries;
        h->entries = e->next;
        free(e->slots);
        free(e->base);
        free(e);
    }
    while (h->pools) {
        struct hs_pool *p = h->pools;
        h->pools = p->next;
        free(p);
    }
    free(h);
}

static struct hs_entry *entry_find(struct hstate *h, const char *route, const char *pool,
                                   const char *key, int create)
{
    for (struct hs_entry *e = h->entries; e; e = e->next)
        if (!strcmp(e->key, key) && !strcmp(e->pool, pool) && !strcmp(e->route, route))
            return e;
    if (!create)
        return NULL;
    struct hs_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->slots = aligned_alloc(64, sizeof *e->slots * h->nworkers);
    e->base = calloc(h->nworkers, sizeof *e->base);
    if (!e->slots || !e->base) {
        free(e->slots);
        free(e->base);
        free(e);
        return NULL;
    }
    memset(e->slots, 0, sizeof *e->slots * h->nworkers);
    snprintf(e->route, sizeof e->route, "%s", route);
    snprintf(e->pool, sizeof e->pool, "%s", pool);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->ramp = 1000;
    e->next = h->entries;
    h->entries = e;
    return e;
}

static struct hs_pool *pool_find(struct hstate *h, const char *route, const char *pool)
{
    for (struct hs_pool *p = h->pools; p; p = p->next)
        if (!strcmp(p->pool, pool) && !strcmp(p->route, route))
            return p;
    struct hs_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->route, sizeof p->route, "%s", route);
    snprintf(p->pool, sizeof p->pool, "%s", pool);
    p->serving = 1;
    p->next = h->pools;
    h->pools = p;
    return p;
}

static uint16_t ramp_of(const struct hs_entry *e, uint64_t now_ms)
{
    return slowstart_permille(e->up_since_ms, e->slow_start_ms, now_ms);
}

static void pool_event(struct hstate *h, const struct hs_pool *p, const char *name)
{
    char extra[256], er[128], ep[96];
    log_escape(er, sizeof er, p->route, strlen(p->route));
    log_escape(ep, sizeof ep, p->pool, strlen(p->pool));
    snprintf(extra, sizeof extra, ",\"route\":\"%s\",\"pool\":\"%s\"", er, ep);
    h->event(h->ctx, name, extra);
}

/* A pool with weight but nothing serving gives its share to the serving pools (failsafe.h);
 * the pools' fail-safe state and events follow. */
static void failsafe(struct hstate *h, struct snap_route *sr, const int *serving)
{
    int in_failsafe[CFG_MAX_POOLS] = {0};
    failsafe_weights(sr->npools, serving, sr->weights_bp, in_failsafe);
    for (unsigned p = 0; p < sr->npools; p++) {
        struct hs_pool *hp = pool_find(h, sr->cfg->name, sr->pools[p].cfg->name);
        if (!hp)
            continue;
        int now_failsafe = in_failsafe[p];
        if (now_failsafe != hp->failsafe) {
            hp->failsafe = now_failsafe;
            if (now_failsafe)
                h->failsafe_events++;
            pool_event(h, hp, now_failsafe ? "pool_failsafe" : "pool_failsafe_ended");
        }
        hp->serving = serving[p];
    }
}

void hstate_apply(struct hstate *h, struct snapshot *s, uint64_t now)
{
    for (unsigned r = 0; r < s->nroutes; r++) {
        struct snap_route *sr = &s->routes[r];
        int serving[CFG_MAX_POOLS] = {0};
        for (unsigned p = 0; p < sr->npools; p++) {
            struct snap_pool *sp = &sr->pools[p];
            for (unsigned k = 0; k < sp->neps; k++) {
                struct snap_endpoint *se = &sp->eps[k];
                struct hs_entry *e = entry_find(h, sr->cfg->name, sp->cfg->name, se->key, 1);
                if (!e)
                    continue; /* out of memory: served as healthy, not tracked */
                e->slow_start_ms = sp->cfg->slow_start_ms;
                se->health = e->slots;
                se->unhealthy = e->active_down || e->ejected;
                se->ramp_permille = e->ramp = ramp_of(e, now);
                serving[p] |= !se->unhealthy && !se->drained;
            }
        }
        failsafe(h, sr, serving);
    }
}

/* Failures counted so far no longer count (a return, an ejection, an active "up"). */
static void rebase(const struct hstate *h, struct hs_entry *e)
{
    for (unsigned w = 0; w < h->nworkers; w++)
        e->base[w] = atomic_load_explicit(&e->slots[w].failures, memory_order_relaxed);
}

int hstate_set_active(struct hstate *h, const char *route, const char *pool, const char *key,
                      int up, uint64_t now_ms)
{
    struct hs_entry *e = entry_find(h, route, pool, key, 1);
    if (!e || e->active_down == !up)
        return 0;
    e->active_down = !up;
    if (up && !e->ejected) {
        e->up_since_ms = now_ms;
        rebase(h, e); /* old failures do not count any more */
    }
    return 1;
}

/* Consecutive failures of e as the worst worker saw them since its base. */
static uint64_t consec(const struct hstate *h, const struct hs_entry *e)
{
    uint64_t worst = 0;
    for (unsigned w = 0; w < h->nworkers; w++) {
        uint64_t run = atomic_load_explicit(&e->slots[w].consec_failures, memory_order_relaxed);
        uint64_t since = atomic_load_explicit(&e->slots[w].failures, memory_order_relaxed) -
                         e->base[w];
        uint64_t v = run < since ? run : since;
        worst = v > worst ? v : worst;
    }
    return worst;
}

static void endpoint_event(struct hstate *h, const struct hs_entry *e, const char *state,
                           uint64_t failures, uint64_t ms)
{
    char extra[512], er[128], ep[96], ek[160];
    log_escape(er, sizeof er, e->route, strlen(e->route));
    log_escape(ep, sizeof ep, e->pool, strlen(e->pool));
    log_escape(ek, sizeof ek, e->key, strlen(e->key));
    snprintf(extra, sizeof extra,
             ",\"route\":\"%s\",\"pool\":\"%s\",\"endpoint\":\"%s\",\"state\":\"%s\","
             "\"source\":\"passive\",\"consecutive_failures\":%llu,\"ejection_ms\":%llu,"
             "\"ejections\":%u",
             er, ep, ek, state, (unsigned long long)failures, (unsigned long long)ms,
             e->ejections);
    h->event(h->ctx, "endpoint_health", extra);
}

/* Endpoints of e's pool, how many are ejected, and how many others still look able to serve:
 * not ejected, not down by the active check, and below the failure threshold. */
static void pool_counts(const struct hstate *h, const struct hs_entry *e, unsigned threshold,
                        unsigned *n,
                        unsigned *ejected, unsigned *others_serving)
{
    *n = *ejected = *others_serving = 0;
    for (struct hs_entry *o = h->entries; o; o = o->next) {
        if (strcmp(o->pool, e->pool) || strcmp(o->route, e->route))
            continue;
        (*n)++;
        *ejected += o->ejected;
        if (o != e && !o->ejected && !o->active_down && consec(h, o) < threshold)
            (*others_serving)++;
    }
}

int hstate_eject_allowed(unsigned n, unsigned ejected, unsigned others_serving,
                         unsigned max_percent)
{
    return eject_allowed(n, ejected, others_serving, max_percent);
}


int hstate_tick(struct hstate *h, const struct cfg *cfg, uint64_t now_ms)
{
    int changed = 0, ramping = 0;
    for (struct hs_entry *e = h->entries; e; e = e->next) {
        int ri = cfg_route_index(cfg, e->route);
        const struct cfg_outlier *o = ri >= 0 ? &cfg->routes[ri].outlier : NULL;
        struct eject_endpoint in = {.ejected = e->ejected,
                                    .ejected_until_ms = e->ejected_until_ms,
                                    .ejections = e->ejections};
        struct eject_pool pool = {0};
        if (!e->ejected && o && o->enabled) {
            in.consecutive_failures = consec(h, e);
            if (eject_failing(o, in.consecutive_failures))
                pool_counts(h, e, o->consecutive_failures, &pool.n, &pool.ejected,
                            &pool.others_serving);
        }
        struct eject_decision d;
        eject_judge(o, &in, &pool, now_ms, &d);
        if (d.verdict == EJECT_RETURN) {
            e->ejected = 0;
            e->up_since_ms = now_ms;
            rebase(h, e);
            endpoint_event(h, e, "returned", 0, 0);
            changed = 1;
        } else if (d.verdict == EJECT_EJECT) {
            e->ejected = 1;
            e->ejections++;
            e->ejected_until_ms = d.until_ms;
            h->ejections_total++;
            rebase(h, e);
            endpoint_event(h, e, "ejected", in.consecutive_failures, d.duration_ms);
            changed = 1;
        }
        if (!e->ejected && !e->active_down && ramp_of(e, now_ms) != e->ramp)
            ramping = 1;
    }
    if (ramping && now_ms >= h->last_ramp_ms + HS_RAMP_STEP_MS) {
        h->last_ramp_ms = now_ms;
        changed = 1;
    }
    return changed;
}

void hstate_totals(const struct hstate *h, unsigned *ejected_now, uint64_t *ejections,
                   unsigned *failsafe_pools, uint64_t *failsafe_events)
{
    *ejected_now = *failsafe_pools = 0;
    for (const struct hs_entry *e = h->entries; e; e = e->next)
        *ejected_now += e->ejected;
    for (const struct hs_pool *p = h->pools; p; p = p->next)
        *failsafe_pools += p->failsafe;
    *ejections = h->ejections_total;
    *failsafe_events = h->failsafe_events;
}

int hstate_pool_serving(const struct hstate *h, const char *route, const char *pool)
{
    for (const struct hs_pool *p = h->pools; p; p = p->next)
        if (!strcmp(p->pool, pool) && !strcmp(p->route, route))
            return p->serving;
    return -1;
}

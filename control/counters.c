/* counters.c - per (route, pool) counter slots and control request counts (see counters.h). */
#include "control/counters.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct counters {
    unsigned nworkers;
    struct counters_entry *list;
    struct counters_op ops[COUNTERS_MAX_OPS];
    unsigned nops;
};

struct counters *counters_new(unsigned nworkers)
{
    struct counters *k = calloc(1, sizeof *k);
    if (k)
        k->nworkers = nworkers ? nworkers : 1;
    return k;
}

void counters_free(struct counters *k)
{
    if (!k)
        return;
    while (k->list) {
        struct counters_entry *e = k->list;
        k->list = e->next;
        free(e->route);
        free(e->pool);
        free(e->slots);
        free(e);
    }
    free(k);
}

static struct counters_entry *find(const struct counters *k, const char *route, const char *pool)
{
    for (struct counters_entry *e = k->list; e; e = e->next)
        if (strcmp(e->route, route) == 0 && strcmp(e->pool, pool) == 0)
            return e;
    return NULL;
}

struct snap_counter_slot *counters_slots(struct counters *k, const char *route, const char *pool)
{
    struct counters_entry *e = find(k, route, pool);
    if (e)
        return e->slots;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    size_t bytes = sizeof(struct snap_counter_slot) * k->nworkers;
    e->route = strdup(route);
    e->pool = strdup(pool);
    e->slots = aligned_alloc(64, bytes);
    if (!e->route || !e->pool || !e->slots) {
        free(e->route);
        free(e->pool);
        free(e->slots);
        free(e);
        return NULL;
    }
    memset(e->slots, 0, bytes);
    e->next = k->list;
    k->list = e;
    return e->slots;
}

static uint64_t ld(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

void counters_sum_entry(const struct counters *k, const struct counters_entry *e,
                        struct counters_sum *s)
{
    memset(s, 0, sizeof *s);
    for (unsigned w = 0; e && w < k->nworkers; w++) {
        const struct snap_counter_slot *t = &e->slots[w];
        s->requests += ld(&t->requests);
        s->cls[0] += ld(&t->responses_other);
        s->cls[1] += ld(&t->responses_2xx);
        s->cls[2] += ld(&t->responses_3xx);
        s->cls[3] += ld(&t->responses_4xx);
        s->cls[4] += ld(&t->responses_5xx);
        s->upstream_errors += ld(&t->upstream_errors);
        for (unsigned i = 0; i <= SNAP_LAT_BUCKETS; i++)
            s->lat[i] += ld(&t->lat[i]);
        s->lat_sum_us += ld(&t->lat_sum_us);
    }
}

void counters_sum(const struct counters *k, const char *route, const char *pool,
                  struct counters_sum *out)
{
    counters_sum_entry(k, find(k, route, pool), out);
}

const struct counters_entry *counters_first(const struct counters *k)
{
    return k->list;
}

void counters_count_op(struct counters *k, const char *op, int ok)
{
    unsigned i = 0;
    while (i < k->nops && strcmp(k->ops[i].op, op) != 0)
        i++;
    if (i == k->nops) {
        if (k->nops == COUNTERS_MAX_OPS)
            return;
        k->ops[k->nops++] = (struct counters_op){op, 0, 0};
    }
    if (ok)
        k->ops[i].ok++;
    else
        k->ops[i].refused++;
}

const struct counters_op *counters_ops(const struct counters *k, unsigned *n)
{
    *n = k->nops;
    return k->ops;
}

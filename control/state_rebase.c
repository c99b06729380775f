/* state_rebase.c - the runtime state for a configuration (see state_rebase.h). */
#include "control/state_rebase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"

static int same_pools(const struct cfg_route *cr, const struct state_route *sr)
{
    if (cr->npools != sr->npools)
        return 0;
    for (size_t p = 0; p < cr->npools; p++)
        if (strcmp(cr->pools[p].name, sr->pools[p].name) != 0)
            return 0;
    return 1;
}

static int same_cfg_weights(const struct cfg_route *a, const struct cfg_route *b)
{
    if (a->npools != b->npools)
        return 0;
    for (size_t p = 0; p < a->npools; p++)
        if (strcmp(a->pools[p].name, b->pools[p].name) != 0 ||
            a->pools[p].weight_bp != b->pools[p].weight_bp)
            return 0;
    return 1;
}

static const struct cfg_route *cfg_route_find(const struct cfg *cfg, const char *name)
{
    for (size_t r = 0; cfg && r < cfg->nroutes; r++)
        if (strcmp(cfg->routes[r].name, name) == 0)
            return &cfg->routes[r];
    return NULL;
}

static int copy_addrs(struct state_addrs *dst, const struct state_addrs *src)
{
    for (size_t i = 0; i < src->n; i++)
        if (state_addrs_add(dst, src->v[i]) < 0)
            return CUT_ENOMEM;
    return 0;
}

int state_rebase(const struct cfg *cfg, const struct cfg *old_cfg, const struct state *old,
                    struct state *out, char *note, size_t cap)
{
    memset(out, 0, sizeof *out);
    out->generation = old->generation;
    out->routes = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *out->routes);
    if (!out->routes)
        return CUT_ENOMEM;
    out->nroutes = cfg->nroutes;
    size_t o = 0;
    note[0] = '\0';
    for (size_t r = 0; r < cfg->nroutes; r++) {
        const struct cfg_route *cr = &cfg->routes[r];
        struct state_route *nr = &out->routes[r];
        snprintf(nr->name, sizeof nr->name, "%s", cr->name);
        nr->npools = cr->npools;
        struct state_route *orr = state_route_find((struct state *)old, cr->name);
        const struct cfg_route *ocr = cfg_route_find(old_cfg, cr->name);
        int keep = orr && same_pools(cr, orr) && (!old_cfg || (ocr && same_cfg_weights(cr, ocr)));
        if (orr && !keep && o + 140 < cap)
            o += (size_t)snprintf(note + o, cap - o, "%s\"%s\"", o ? "," : "", cr->name);
        for (size_t p = 0; p < cr->npools; p++) {
            struct state_pool *np = &nr->pools[p];
            snprintf(np->name, sizeof np->name, "%s", cr->pools[p].name);
            struct state_pool *op = orr ? state_pool_find(orr, cr->pools[p].name) : NULL;
            np->weight_bp = keep ? op->weight_bp : cr->pools[p].weight_bp;
            if (keep) /* the country cohort too, its weights in the new pool order */
                nr->cohort.weights_bp[p] = orr->cohort.weights_bp[op - orr->pools];
            np->stable_bp = keep ? op->stable_bp : cr->pools[p].weight_bp;
            if (op && (copy_addrs(&np->drained, &op->drained) < 0 ||
                       copy_addrs(&np->added, &op->added) < 0 ||
                       copy_addrs(&np->removed, &op->removed) < 0)) {
                state_dispose(out);
                return CUT_ENOMEM;
            }
        }
        if (keep) {
            nr->cohort.ncountries = orr->cohort.ncountries;
            memcpy(nr->cohort.countries, orr->cohort.countries, sizeof nr->cohort.countries);
        }
        /* A shift plan goes on only where the runtime weights are kept (the same rule). */
        if (keep && orr->plan && !(nr->plan = strdup(orr->plan))) {
            state_dispose(out);
            return CUT_ENOMEM;
        }
    }
    return 0;
}

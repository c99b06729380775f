/* eject.c - passive outlier ejection decisions (see eject.h). */
#include "control/eject.h"

#include <stddef.h>

#include "config/cfg.h"

int eject_failing(const struct cfg_outlier *o, uint64_t consecutive_failures)
{
    return o && o->enabled && consecutive_failures >= o->consecutive_failures;
}

int eject_allowed(unsigned n, unsigned ejected, unsigned others_serving, unsigned max_percent)
{
    if (others_serving == 0)
        return 1; /* every endpoint is failing: the pool must count as down (fail-safe) */
    return (uint64_t)ejected * 100 < (uint64_t)max_percent * n;
}

uint64_t eject_duration_ms(unsigned base_ms, unsigned max_ms, unsigned ejections)
{
    uint64_t ms = base_ms;
    for (unsigned i = 0; i < ejections && ms < max_ms; i++)
        ms *= 2;
    return ms > max_ms ? max_ms : ms;
}

void eject_judge(const struct cfg_outlier *o, const struct eject_endpoint *e,
                 const struct eject_pool *pool, uint64_t now_ms, struct eject_decision *d)
{
    *d = (struct eject_decision){.verdict = EJECT_KEEP};
    if (e->ejected) {
        if (now_ms >= e->ejected_until_ms)
            d->verdict = EJECT_RETURN;
        return;
    }
    if (!eject_failing(o, e->consecutive_failures) || !pool ||
        !eject_allowed(pool->n, pool->ejected, pool->others_serving, o->max_ejection_percent))
        return;
    d->verdict = EJECT_EJECT;
    d->duration_ms = eject_duration_ms(o->base_ejection_ms, o->max_ejection_ms, e->ejections);
    d->until_ms = now_ms + d->duration_ms;
}

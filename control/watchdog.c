/* watchdog.c - the watchdog's decision (see watchdog.h). */
#include "control/watchdog.h"

#include "config/cfg.h"

unsigned watchdog_seconds(unsigned window_s, unsigned samples, unsigned capacity)
{
    unsigned span = window_s < capacity ? window_s : capacity - 1;
    return samples < span ? samples : span;
}

int watchdog_judge(const struct cfg_watchdog *w, unsigned seconds,
                   const struct watchdog_pool *pools, size_t npools, struct watchdog_verdict *v)
{
    *v = (struct watchdog_verdict){0};
    if (!w->enabled || seconds == 0)
        return 0;
    for (size_t i = 0; i < npools; i++) {
        const struct watchdog_pool *p = &pools[i];
        if (p->weight_bp == 0 || p->weight_bp <= p->stable_bp)
            continue; /* only a pool carrying more than its stable share is on trial */
        if (p->requests < w->min_requests || p->requests == 0)
            continue;
        double ratio = 100.0 * (double)p->errors_5xx / (double)p->requests;
        if (ratio <= w->max_5xx_bp / 100.0)
            continue;
        v->rollback = 1;
        v->pool = i;
        v->value = ratio;
        v->limit = w->max_5xx_bp / 100.0;
        v->gate = "watchdog_5xx_percent";
        v->reason = "watchdog: automatic rollback";
        return 1;
    }
    return 0;
}

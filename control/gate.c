/* gate.c - the decision of one shift-plan step (see gate.h). */
#include "control/gate.h"

#include "config/cfg.h"

double gate_ratio_pct(uint64_t requests, uint64_t errors_5xx)
{
    return requests ? 100.0 * (double)errors_5xx / (double)requests : 0;
}

double gate_p99_ms(const uint64_t *now, const uint64_t *base, uint64_t n, const unsigned *bounds_ms,
                   unsigned nbounds)
{
    uint64_t need = n - n / 100, cum = 0;
    for (unsigned i = 0; i <= nbounds && n; i++) {
        cum += now[i] - base[i];
        if (cum >= need)
            return i < nbounds ? bounds_ms[i] : 2.0 * bounds_ms[nbounds - 1];
    }
    return 0;
}

static void roll_back(struct gate_decision *d, const char *gate, double value, double limit)
{
    d->verdict = GATE_ROLLBACK;
    d->gate = gate;
    d->value = value;
    d->limit = limit;
    d->reason = "automatic rollback: a gate failed";
}

void gate_judge(const struct gate_limits *lim, const struct gate_step *st,
                const struct gate_window *w, struct gate_decision *d)
{
    *d = (struct gate_decision){.verdict = GATE_HOLD};
    if (st->to_bp > 0 && st->to_serving == 0) {
        roll_back(d, "unhealthy", 0, 0);
        return;
    }
    int judged = w->requests >= lim->min_requests && w->requests > 0;
    if (judged && lim->gate_5xx && w->ratio_pct > lim->max_5xx_bp / 100.0) {
        roll_back(d, "max_5xx_percent", w->ratio_pct, lim->max_5xx_bp / 100.0);
        return;
    }
    if (judged && lim->gate_p99 && w->p99_ms > lim->max_p99_ms) {
        roll_back(d, "max_p99_ms", w->p99_ms, lim->max_p99_ms);
        return;
    }
    if (st->now_ms < st->step_started_ms + (int64_t)st->hold_s * 1000)
        return; /* the step's hold is not over */
    if ((lim->gate_5xx || lim->gate_p99) && !judged && lim->min_requests > 0)
        return; /* not enough traffic to judge this step yet: hold on */
    if (st->step + 1 < st->nsteps) {
        d->verdict = GATE_ADVANCE;
        d->next_step = st->step + 1;
    } else {
        d->verdict = GATE_PROMOTE;
    }
}

void gate_step_weights(const unsigned *stable_bp, size_t npools, int to, int from, unsigned to_bp,
                       unsigned *weight_bp)
{
    unsigned stable_rest = 0, nrest = 0;
    for (size_t i = 0; i < npools; i++)
        if ((int)i != to) {
            stable_rest += stable_bp[i];
            nrest++;
        }
    unsigned rest = CFG_BP_TOTAL - to_bp, given = 0;
    int last = -1;
    for (size_t i = 0; i < npools; i++) {
        if ((int)i == to) {
            weight_bp[i] = to_bp;
            continue;
        }
        /* The rest goes where traffic was stable; the pool the plan started from when no other
         * pool had stable weight. */
        unsigned share = stable_rest      ? (unsigned)((uint64_t)rest * stable_bp[i] / stable_rest)
                         : (int)i == from ? rest
                                          : 0;
        weight_bp[i] = share;
        given += share;
        last = (int)i;
    }
    if (last >= 0 && nrest)
        weight_bp[last] += rest - given; /* rounding: the sum stays 10000 */
}

/* gate.h - the decision of one shift-plan step (control/plan.c applies it).
 *
 * A plan moves a route's traffic to pool "to" in steps (basis points of the route's weight),
 * holding each step hold_s seconds. gate_judge() looks at what "to" received during the current
 * step (its window) and says: hold on, advance to the next step, promote (the last step's hold
 * is over), or roll back (with the gate that failed, the measured value and the limit).
 * gate_step_weights() is the weights of every pool at a step; gate_p99_ms() the conservative
 * 99th percentile of a latency histogram window.
 *
 * Pure: no I/O, no clock (times are passed in), no shared state; any thread.
 */
#ifndef CUT_GATE_H
#define CUT_GATE_H

#include <stddef.h>
#include <stdint.h>

/* The plan's gates: a gate judges only when it is set (gate_5xx, gate_p99) and the window saw
 * at least min_requests requests (and at least one). */
struct gate_limits {
    int gate_5xx, gate_p99;
    unsigned max_5xx_bp; /* 5xx share of "to", basis points: 500 is 5 % */
    unsigned max_p99_ms;
    unsigned min_requests;
};

/* What "to" received since the step began. */
struct gate_window {
    uint64_t requests, errors_5xx;
    double ratio_pct; /* 100 * errors_5xx / requests; 0 without requests (gate_ratio_pct) */
    double p99_ms;    /* gate_p99_ms of the window */
};

/* Where the plan stands. Times are wall-clock milliseconds. */
struct gate_step {
    unsigned step, nsteps; /* the current step (from 0) of nsteps */
    unsigned to_bp;        /* the weight of "to" at this step */
    int to_serving;        /* "to" has a serving endpoint: 1, 0 (none) or -1 (unknown) */
    int64_t step_started_ms;
    unsigned hold_s;
    int64_t now_ms;
};

enum gate_verdict {
    GATE_HOLD,     /* wait: the hold is not over, or too little traffic to judge yet */
    GATE_ADVANCE,  /* go to step next_step */
    GATE_PROMOTE,  /* the last step held: "to"'s weights become the stable ones */
    GATE_ROLLBACK, /* back to the stable weights at once */
};

struct gate_decision {
    enum gate_verdict verdict;
    unsigned next_step;  /* GATE_ADVANCE: step + 1 */
    const char *gate;    /* GATE_ROLLBACK: "unhealthy", "max_5xx_percent" or "max_p99_ms" */
    double value, limit; /* GATE_ROLLBACK: what was measured and the gate's limit (0, 0 for
                          * "unhealthy") */
    const char *reason;  /* GATE_ROLLBACK: the audit text; NULL otherwise */
};

/* The decision for one step, in this order: "to" carrying weight with no serving endpoint
 * rolls back; then the 5xx gate (a share above the limit fails, exactly at it passes), then the
 * p99 gate; then the hold (now_ms < step_started_ms + hold_s s holds); then, when a gate is set
 * and min_requests > 0, a window below min_requests holds; then advance or promote. All
 * arguments borrowed; d is filled. */
void gate_judge(const struct gate_limits *lim, const struct gate_step *st,
                const struct gate_window *w, struct gate_decision *d);

/* 100 * errors_5xx / requests, 0 without requests. */
double gate_ratio_pct(uint64_t requests, uint64_t errors_5xx);

/* The 99th percentile (ms) of the n requests counted in a histogram window: bucket i holds
 * now[i] - base[i] requests; buckets 0..nbounds-1 have upper bounds bounds_ms[], bucket nbounds
 * is +Inf and reports 2 * bounds_ms[nbounds - 1]. The upper bound of the bucket holding the
 * 99th percentile, so a conservative value; 0 when n is 0. now and base have nbounds + 1
 * entries. */
double gate_p99_ms(const uint64_t *now, const uint64_t *base, uint64_t n, const unsigned *bounds_ms,
                   unsigned nbounds);

/* The weights of a route's npools pools at a step giving to_bp to pool index "to": the others
 * share the rest in proportion to their stable weights (stable_bp), or, when none of them has
 * stable weight, pool index "from" takes it all (-1: none). The rounding remainder goes to the
 * last pool other than "to", so the sum stays 10000 when a pool other than "to" exists. to may
 * be -1 (no such pool: every pool counts as "the others"). weight_bp[npools] is written. */
void gate_step_weights(const unsigned *stable_bp, size_t npools, int to, int from, unsigned to_bp,
                       unsigned *weight_bp);

#endif

/* watchdog.h - the watchdog's decision (routes[].watchdog; control/plan.c keeps the history and
 * applies it).
 *
 * Outside any shift plan, a pool carrying weight above its stable weight (the one being
 * promoted or shifted to) that answered more than max_5xx_bp 5xx over the last window_s seconds,
 * with at least min_requests requests, sends the route back to its stable weights.
 *
 * Pure: no I/O, no clock, no shared state; any thread.
 */
#ifndef CUT_WATCHDOG_H
#define CUT_WATCHDOG_H

#include <stddef.h>
#include <stdint.h>

struct cfg_watchdog;

/* One pool of the route, with what it received over the window. */
struct watchdog_pool {
    unsigned weight_bp, stable_bp;
    uint64_t requests, errors_5xx;
};

struct watchdog_verdict {
    int rollback;        /* 1: back to the stable weights */
    size_t pool;         /* the pool on trial that failed */
    double value, limit; /* its 5xx percent and the limit */
    const char *gate;    /* "watchdog_5xx_percent" */
    const char *reason;  /* the audit text */
};

/* How many seconds of history the window covers: window_s, at most capacity - 1 (a ring of
 * capacity one-per-second samples), at most the samples already taken. */
unsigned watchdog_seconds(unsigned window_s, unsigned samples, unsigned capacity);

/* The verdict over the last `seconds` seconds (0: no history yet, no verdict). Only a pool with
 * weight above its stable weight is on trial; one with fewer than min_requests requests gives no
 * verdict; a 5xx share above the limit fails it (exactly at the limit passes). The first failing
 * pool decides. Returns v->rollback. w and pools borrowed; v filled. */
int watchdog_judge(const struct cfg_watchdog *w, unsigned seconds,
                   const struct watchdog_pool *pools, size_t npools, struct watchdog_verdict *v);

#endif

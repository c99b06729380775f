/* eject.h - passive outlier ejection decisions (routes[].outlier_detection; the state and the
 * counters live in control/health_state.c, which applies them).
 *
 * An endpoint whose consecutive upstream failures (since it last came back) reach
 * consecutive_failures is ejected for base_ejection_ms, doubled for each earlier ejection, at
 * most max_ejection_ms; it returns when that time is up. The cap: one more endpoint of a pool
 * may be ejected only while fewer than max_ejection_percent of the pool are ejected, unless no
 * other endpoint of the pool still serves (then the pool must be able to count as down).
 *
 * Pure: no I/O, no clock (now_ms is passed in), no shared state; any thread.
 */
#ifndef CUT_EJECT_H
#define CUT_EJECT_H

#include <stdint.h>

struct cfg_outlier;

/* One endpoint's ejection state and its current failure run. */
struct eject_endpoint {
    int ejected;
    uint64_t ejected_until_ms; /* when ejected */
    unsigned ejections;        /* ejections so far (the backoff) */
    uint64_t consecutive_failures;
};

/* The endpoint's pool: endpoints, how many are ejected now, and how many others still look able
 * to serve (not ejected, not down by the active check, below the failure threshold). */
struct eject_pool {
    unsigned n, ejected, others_serving;
};

enum eject_verdict {
    EJECT_KEEP,   /* nothing changes */
    EJECT_EJECT,  /* eject now for duration_ms, until until_ms */
    EJECT_RETURN, /* the ejection is over: serving again */
};

struct eject_decision {
    enum eject_verdict verdict;
    uint64_t duration_ms, until_ms; /* EJECT_EJECT */
};

/* Whether a run of consecutive failures reaches the threshold of o (enabled only). */
int eject_failing(const struct cfg_outlier *o, uint64_t consecutive_failures);

/* Whether one more endpoint of a pool of n, ejected of them ejected already, may be ejected:
 * below max_percent of the pool, or always when none of the others still serves
 * (others_serving), so that max_ejection_percent never keeps a pool whose every endpoint fails
 * from counting as down. */
int eject_allowed(unsigned n, unsigned ejected, unsigned others_serving, unsigned max_percent);

/* The ejection time after `ejections` earlier ones: base_ms doubled that many times, at most
 * max_ms. */
uint64_t eject_duration_ms(unsigned base_ms, unsigned max_ms, unsigned ejections);

/* The decision for e at now_ms. An ejected endpoint returns once now_ms reaches its end (even
 * when o is NULL: its route is gone). A serving one is ejected when o is enabled, its run is
 * failing (eject_failing) and the cap allows it (pool is read only then; it may be NULL
 * otherwise). All arguments borrowed; d filled. */
void eject_judge(const struct cfg_outlier *o, const struct eject_endpoint *e,
                 const struct eject_pool *pool, uint64_t now_ms, struct eject_decision *d);

#endif

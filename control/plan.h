/* plan.h - server-side shift plans with gates, automatic rollback, and the watchdog.
 *
 * A plan moves a route's traffic to one pool ("to") in steps (percent), holding each step for
 * hold_s seconds. Gates judge the traffic "to" received during the current step once it saw
 * min_requests requests: its 5xx share at most max_5xx_percent, its p99 duration at most
 * max_p99_ms (from the duration histogram: the upper bound of the bucket holding the 99th
 * percentile, so a conservative value). A failed gate, or "to" having no serving endpoint while
 * it carries weight, rolls the route back to its stable weights at once (one publication),
 * audited with actor "auto" and the measured values. After the last step's hold the pool is
 * promoted (its weights become the stable ones).
 *
 * A cohort plan (shift with "cohort") moves only the route's country cohort: its steps set the
 * cohort's weights, the route's stay; the gates judge "to"'s traffic as usual (the cohort's,
 * since only the cohort's clients move). A failed gate or any rollback of the route removes the
 * cohort; its last step's hold ends it "promoted" with the cohort kept at its final weights (the
 * stable weights do not change). A later plan without cohort widens to everyone; its promotion
 * removes the cohort. The plan is part of the route's durable state
 * (state file), so a restart resumes it: the hold continues from the persisted step start
 * (wall clock), the step's measurement window restarts (counters start at zero).
 *
 * The watchdog (routes[].watchdog) guards a route outside any plan: a pool that is not at its
 * stable weight and answers more than max_5xx_percent 5xx over the last window_s seconds (with
 * at least min_requests) sends the route back to its stable weights.
 *
 * The decisions are pure modules (control/gate.h: a step's verdict and weights;
 * control/watchdog.h: the watchdog's verdict); this file keeps the state, measures and applies
 * them through the plan_apply_fn its owner gave plan_state_new.
 * Control thread only.
 */
#ifndef CUT_PLAN_H
#define CUT_PLAN_H

#include <jansson.h>
#include <stdint.h>

struct cfg;
struct plan_state;
struct state_route;
struct cmd_res;

#define PLAN_MAX_STEPS 16

struct plan {
    char state[16]; /* running, paused, promoted, rolled_back, aborted */
    char to[128], from[128];
    unsigned steps_bp[PLAN_MAX_STEPS];
    unsigned nsteps, step;
    unsigned hold_s;
    int gate_5xx, gate_p99;
    unsigned max_5xx_bp, max_p99_ms, min_requests;
    int64_t started_ms, step_started_ms; /* wall clock */
    char reason[520], actor[160];
    char rb_gate[24]; /* why it rolled back ("" when it did not) */
    double rb_value, rb_limit;
    int64_t rb_at_ms;
    /* A cohort plan (ncohort > 0) moves only the clients of these countries: its steps set the
     * route's cohort (state_route.cohort), the route's own weights stay. */
    unsigned ncohort;
    char cohort[16][3];
};

/* From/to the compact JSON kept in state_route.plan. parse returns 0 or CUT_EINVAL. The caller frees
 * dump's result. */
int plan_parse(const char *json, struct plan *p);
char *plan_dump(const struct plan *p);

/* 1 when the plan holds the route (running or paused). */
int plan_active(const struct plan *p);

/* The plan of route sr for status (with the current window and the time to the next step), or
 * NULL when the route has none. */
json_t *plan_status(struct plan_state *ps, const struct state_route *sr);

/* The last 10 s and 60 s of traffic of pool pool_index of route (requests, 5xx, ratio, p99),
 * from the per-second samples. */
json_t *plan_pool_windows(struct plan_state *ps, const char *route, size_t pool_index);

/* Sets the weights of sr for a plan at percent bp of "to": the other pools share the rest in
 * proportion to their stable weights. For a cohort plan these are the cohort's weights (the
 * cohort is set to the plan's countries); the route's weights do not change. */
void plan_set_weights(struct state_route *sr, const struct plan *p, unsigned to_bp);

/* Runs every tick for the configuration in use: steps, gates, promotion; the watchdog once a
 * second. */
void plan_tick(struct plan_state *ps, const struct cfg *cfg);

/* Forgets the measurement base of route (a new plan or step). */
void plan_rebase(struct plan_state *ps, const char *route);

/* What plan.c keeps for a control thread: the measurement bases, the watchdog's history and
 * what it reads and applies through. */
struct state;
struct counters;
struct hstate;

/* Applies a change cutover decides itself (a plan step, promotion, a failed gate, the watchdog)
 * through the owner's durable, audited path (actor "auto"): op is the audit operation, args its
 * arguments, next the whole new runtime state, route the route it concerns. args and next are
 * borrowed. Returns 0 or a CUT_E* code (nothing changed). */
typedef int (*plan_apply_fn)(void *ctx, const char *op, json_t *args, struct state *next,
                             const char *route);

/* What one replica counted for a step's target pool (requests, 5xx, the duration histogram:
 * per bucket, +Inf last). */
#define PLAN_LAT_BUCKETS 13
struct plan_counts {
    uint64_t requests, errors_5xx, lat[PLAN_LAT_BUCKETS];
};

/* With a fleet store, the hooks a fleet plan needs (control/fleet.h, "Fleet plans"): leads
 * says whether this replica steps and judges route's plan (it may ask for the leadership);
 * window publishes mine (this replica's counts for the step) and returns the fleet's sum, how
 * many replicas reported this step, how many are registered, and the leader's name
 * (borrowed until the next change). */
typedef int (*plan_leads_fn)(void *ctx, const char *route);
typedef void (*plan_window_fn)(void *ctx, const char *route, const char *pool, int64_t step_ms,
                               const struct plan_counts *mine, struct plan_counts *sum,
                               unsigned *at_step, unsigned *replicas, const char **leader);

/* What a plan state reads and applies through; all borrowed, outliving the plan state. */
struct plan_env {
    const struct state *rt;          /* the runtime state in use (its contents change when a
                                      * change is applied; the object stays) */
    const struct counters *counters; /* what the workers counted per (route, pool) */
    const struct hstate *hs;         /* endpoint health: is the target pool serving? */
    plan_apply_fn apply;             /* the owner's durable, audited path */
    void *ctx;                       /* for apply */
    plan_leads_fn leads;             /* NULL: no fleet store; this replica judges its own */
    plan_window_fn window;           /* traffic and steps every plan */
    void *fleet_ctx;                 /* for leads and window */
};

/* A plan state over env (copied); NULL when out of memory. The owner frees it with
 * plan_state_free (NULL is accepted). */
struct plan_state *plan_state_new(const struct plan_env *env);
void plan_state_free(struct plan_state *ps);

/* Wall-clock milliseconds. */
int64_t plan_wall_ms(void);

#endif

/* plan.c - shift plans, gates, automatic rollback and the watchdog (see plan.h). */
#include "control/plan.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/counters.h"
#include "core/cut.h"
#include "proxy/route/snapshot.h"
#include "control/gate.h"
#include "control/health_state.h"
#include "control/state.h"
#include "control/watchdog.h"

#define WD_SECONDS 64 /* watchdog history: one sample per second */

/* What a pool's counters said at a moment. */
struct totals {
    uint64_t req, e5, lat[SNAP_LAT_BUCKETS + 1];
};

/* Per route: the measurement base of the plan's current step, and the watchdog's history. */
struct plan_track {
    char route[128];
    int64_t base_step_ms; /* the step start the base belongs to; 0: none */
    char base_pool[128];
    struct totals base;
    struct wd_sample {
        uint64_t req[CFG_MAX_POOLS], e5[CFG_MAX_POOLS];
        uint64_t lat[CFG_MAX_POOLS][SNAP_LAT_BUCKETS + 1];
    } ring[WD_SECONDS];
    unsigned ring_n, ring_pos;
    int64_t last_sample_ms;
    struct plan_track *next;
};

struct plan_state {
    struct plan_track *tracks;
    struct plan_env env;
};

static const unsigned lat_bounds[SNAP_LAT_BUCKETS] = SNAP_LAT_BOUNDS_MS;

int64_t plan_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rfc3339(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03dZ", (int)(ms % 1000));
}

/* ---- the plan's JSON ------------------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static int64_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

int plan_parse(const char *text, struct plan *p)
{
    memset(p, 0, sizeof *p);
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        return CUT_EINVAL;
    }
    snprintf(p->state, sizeof p->state, "%s", jstr(o, "state"));
    snprintf(p->to, sizeof p->to, "%s", jstr(o, "to"));
    snprintf(p->from, sizeof p->from, "%s", jstr(o, "from"));
    json_t *steps = json_object_get(o, "steps_bp");
    for (size_t i = 0; json_is_array(steps) && i < json_array_size(steps) && i < PLAN_MAX_STEPS;
         i++)
        p->steps_bp[p->nsteps++] = (unsigned)json_integer_value(json_array_get(steps, i));
    p->step = (unsigned)jint(o, "step");
    p->hold_s = (unsigned)jint(o, "hold_s");
    p->gate_5xx = json_object_get(o, "max_5xx_bp") != NULL;
    p->max_5xx_bp = (unsigned)jint(o, "max_5xx_bp");
    p->gate_p99 = json_object_get(o, "max_p99_ms") != NULL;
    p->max_p99_ms = (unsigned)jint(o, "max_p99_ms");
    p->min_requests = (unsigned)jint(o, "min_requests");
    p->started_ms = jint(o, "started_ms");
    p->step_started_ms = jint(o, "step_started_ms");
    snprintf(p->reason, sizeof p->reason, "%s", jstr(o, "reason"));
    snprintf(p->actor, sizeof p->actor, "%s", jstr(o, "actor"));
    snprintf(p->rb_gate, sizeof p->rb_gate, "%s", jstr(o, "rb_gate"));
    json_t *v = json_object_get(o, "rb_value");
    p->rb_value = json_is_number(v) ? json_number_value(v) : 0;
    v = json_object_get(o, "rb_limit");
    p->rb_limit = json_is_number(v) ? json_number_value(v) : 0;
    p->rb_at_ms = jint(o, "rb_at_ms");
    json_t *coh = json_object_get(o, "cohort");
    for (size_t i = 0; json_is_array(coh) && i < json_array_size(coh) && i < STATE_COHORT_MAX;
         i++) {
        json_t *c = json_array_get(coh, i);
        if (json_is_string(c) && state_country_ok(json_string_value(c), json_string_length(c)))
            memcpy(p->cohort[p->ncohort++], json_string_value(c), 3);
    }
    json_decref(o);
    int ok = p->nsteps > 0 && p->step < p->nsteps && p->to[0] && p->state[0];
    return ok ? 0 : -1;
}

char *plan_dump(const struct plan *p)
{
    json_t *o = json_object(), *steps = json_array();
    for (unsigned i = 0; i < p->nsteps; i++)
        json_array_append_new(steps, json_integer(p->steps_bp[i]));
    json_object_set_new(o, "state", json_string(p->state));
    json_object_set_new(o, "to", json_string(p->to));
    json_object_set_new(o, "from", json_string(p->from));
    json_object_set_new(o, "steps_bp", steps);
    json_object_set_new(o, "step", json_integer(p->step));
    json_object_set_new(o, "hold_s", json_integer(p->hold_s));
    if (p->gate_5xx)
        json_object_set_new(o, "max_5xx_bp", json_integer(p->max_5xx_bp));
    if (p->gate_p99)
        json_object_set_new(o, "max_p99_ms", json_integer(p->max_p99_ms));
    json_object_set_new(o, "min_requests", json_integer(p->min_requests));
    json_object_set_new(o, "started_ms", json_integer(p->started_ms));
    json_object_set_new(o, "step_started_ms", json_integer(p->step_started_ms));
    json_object_set_new(o, "reason", json_string(p->reason));
    json_object_set_new(o, "actor", json_string(p->actor));
    if (p->rb_gate[0]) {
        json_object_set_new(o, "rb_gate", json_string(p->rb_gate));
        json_object_set_new(o, "rb_value", json_real(p->rb_value));
        json_object_set_new(o, "rb_limit", json_real(p->rb_limit));
        json_object_set_new(o, "rb_at_ms", json_integer(p->rb_at_ms));
    }
    if (p->ncohort > 0) {
        json_t *coh = json_array();
        for (unsigned i = 0; i < p->ncohort && i < STATE_COHORT_MAX; i++)
            json_array_append_new(coh, json_stringn(p->cohort[i], 2));
        json_object_set_new(o, "cohort", coh);
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

int plan_active(const struct plan *p)
{
    return !strcmp(p->state, "running") || !strcmp(p->state, "paused");
}

void plan_set_weights(struct state_route *sr, const struct plan *p, unsigned to_bp)
{
    unsigned stable[CFG_MAX_POOLS] = {0}, weight[CFG_MAX_POOLS] = {0};
    size_t n = sr->npools < CFG_MAX_POOLS ? sr->npools : CFG_MAX_POOLS;
    int to = -1, from = -1;
    for (size_t i = 0; i < n; i++) {
        stable[i] = sr->pools[i].stable_bp;
        if (to < 0 && strcmp(sr->pools[i].name, p->to) == 0)
            to = (int)i;
        else if (from < 0 && strcmp(sr->pools[i].name, p->from) == 0)
            from = (int)i;
    }
    gate_step_weights(stable, n, to, from, to_bp, weight);
    if (p->ncohort > 0) { /* a cohort plan: only the cohort moves */
        sr->cohort.ncountries = p->ncohort;
        memcpy(sr->cohort.countries, p->cohort, sizeof sr->cohort.countries);
        for (size_t i = 0; i < CFG_MAX_POOLS; i++)
            sr->cohort.weights_bp[i] = i < n ? weight[i] : 0;
        return;
    }
    for (size_t i = 0; i < n; i++)
        sr->pools[i].weight_bp = weight[i];
}

/* ---- measurement ---------------------------------------------------------------------------- */

struct plan_state *plan_state_new(const struct plan_env *env)
{
    struct plan_state *ps = calloc(1, sizeof *ps);
    if (ps)
        ps->env = *env;
    return ps;
}

static struct plan_track *track(struct plan_state *ps, const char *route)
{
    if (!ps)
        return NULL;
    for (struct plan_track *t = ps->tracks; t; t = t->next)
        if (!strcmp(t->route, route))
            return t;
    struct plan_track *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    snprintf(t->route, sizeof t->route, "%s", route);
    t->next = ps->tracks;
    ps->tracks = t;
    return t;
}

void plan_state_free(struct plan_state *ps)
{
    if (!ps)
        return;
    while (ps->tracks) {
        struct plan_track *t = ps->tracks;
        ps->tracks = t->next;
        free(t);
    }
    free(ps);
}

static void totals_of(const struct plan_state *ps, const char *route, const char *pool,
                      struct totals *t)
{
    struct counters_sum s;
    counters_sum(ps->env.counters, route, pool, &s);
    t->req = s.requests;
    t->e5 = s.cls[4];
    memcpy(t->lat, s.lat, sizeof t->lat);
}

/* The window: what "to" received since the step's base (with a fleet store: on every replica
 * that reported the step). */
struct window {
    uint64_t req, e5;
    double ratio_pct, p99_ms;
    int fleet;                  /* the fleet's sum */
    unsigned at_step, replicas; /* with fleet: replicas counted, replicas registered */
    const char *leader;         /* with fleet: who leads the plan ("" none known) */
};

_Static_assert(STATE_COHORT_MAX == ROUTE_COHORT_MAX, "a state cohort fits the snapshot's");
_Static_assert(sizeof(((struct plan *)0)->cohort) == sizeof(((struct state_cohort *)0)->countries),
               "a plan's cohort is a state cohort's countries");
_Static_assert(PLAN_LAT_BUCKETS == SNAP_LAT_BUCKETS + 1, "plan_counts.lat is the histogram");

/* The 99th percentile (gate_p99_ms) of n requests whose per-bucket counts are
 * now[i] - base[i]. */
static double p99_of(const uint64_t *now, const uint64_t *base, uint64_t n)
{
    return gate_p99_ms(now, base, n, lat_bounds, SNAP_LAT_BUCKETS);
}

static void window_of(struct plan_state *ps, const struct state_route *sr, const struct plan *p,
                      struct window *w)
{
    memset(w, 0, sizeof *w);
    struct plan_track *t = track(ps, sr->name);
    struct totals now;
    totals_of(ps, sr->name, p->to, &now);
    if (!t)
        return;
    if (t->base_step_ms != p->step_started_ms || strcmp(t->base_pool, p->to) != 0) {
        t->base = now; /* a new step (or a restart): its window starts now */
        t->base_step_ms = p->step_started_ms;
        snprintf(t->base_pool, sizeof t->base_pool, "%s", p->to);
    }
    w->req = now.req - t->base.req;
    w->e5 = now.e5 - t->base.e5;
    w->ratio_pct = gate_ratio_pct(w->req, w->e5);
    w->p99_ms = p99_of(now.lat, t->base.lat, w->req);
    if (!ps->env.window)
        return;
    /* a fleet plan: this replica's step counts out, the fleet's sum in */
    struct plan_counts mine = {.requests = w->req, .errors_5xx = w->e5}, sum;
    for (size_t i = 0; i < PLAN_LAT_BUCKETS; i++)
        mine.lat[i] = now.lat[i] - t->base.lat[i];
    ps->env.window(ps->env.fleet_ctx, sr->name, p->to, p->step_started_ms, &mine, &sum, &w->at_step,
                   &w->replicas, &w->leader);
    static const uint64_t zero[PLAN_LAT_BUCKETS];
    w->fleet = 1;
    w->req = sum.requests;
    w->e5 = sum.errors_5xx;
    w->ratio_pct = gate_ratio_pct(w->req, w->e5);
    w->p99_ms = p99_of(sum.lat, zero, w->req);
}

json_t *plan_pool_windows(struct plan_state *ps, const char *route, size_t pool_index)
{
    static const unsigned spans[] = {10, 60};
    static const char *const names[] = {"10s", "60s"};
    json_t *o = json_object();
    struct plan_track *t = track(ps, route);
    if (!t || t->ring_n == 0 || pool_index >= CFG_MAX_POOLS)
        return o;
    const struct wd_sample *last = &t->ring[(t->ring_pos + WD_SECONDS - 1) % WD_SECONDS];
    for (unsigned k = 0; k < 2; k++) {
        unsigned have = t->ring_n - 1 < spans[k] ? t->ring_n - 1 : spans[k];
        const struct wd_sample *old =
            &t->ring[(t->ring_pos + WD_SECONDS - 1 - have) % WD_SECONDS];
        uint64_t req = last->req[pool_index] - old->req[pool_index];
        uint64_t e5 = last->e5[pool_index] - old->e5[pool_index];
        json_object_set_new(
            o, names[k],
            json_pack("{s:i, s:I, s:I, s:f, s:f}", "seconds", (int)have, "requests",
                      (json_int_t)req, "errors_5xx", (json_int_t)e5, "ratio_percent",
                      gate_ratio_pct(req, e5), "p99_ms",
                      p99_of(last->lat[pool_index], old->lat[pool_index], req)));
    }
    return o;
}

void plan_rebase(struct plan_state *ps, const char *route)
{
    struct plan_track *t = track(ps, route);
    if (t)
        t->base_step_ms = 0;
}

json_t *plan_status(struct plan_state *ps, const struct state_route *sr)
{
    struct plan p;
    if (!sr->plan || plan_parse(sr->plan, &p) < 0)
        return NULL;
    json_t *steps = json_array(), *gates = json_object(), *rb = json_null();
    for (unsigned i = 0; i < p.nsteps; i++)
        json_array_append_new(steps, json_real(p.steps_bp[i] / 100.0));
    if (p.gate_5xx)
        json_object_set_new(gates, "max_5xx_percent", json_real(p.max_5xx_bp / 100.0));
    if (p.gate_p99)
        json_object_set_new(gates, "max_p99_ms", json_integer(p.max_p99_ms));
    json_object_set_new(gates, "min_requests", json_integer(p.min_requests));
    char started[40], at[40];
    rfc3339(p.started_ms, started, sizeof started);
    if (p.rb_gate[0]) {
        rfc3339(p.rb_at_ms, at, sizeof at);
        rb = json_pack("{s:s, s:f, s:f, s:s}", "gate", p.rb_gate, "value", p.rb_value, "limit",
                       p.rb_limit, "at", at);
    }
    struct window w = {0};
    if (plan_active(&p))
        window_of(ps, sr, &p, &w);
    json_t *next = json_null();
    if (!strcmp(p.state, "running")) {
        double left = (double)(p.step_started_ms + (int64_t)p.hold_s * 1000 - plan_wall_ms()) /
                      1000.0;
        next = json_real(left > 0 ? left : 0);
    }
    json_t *st = json_pack("{s:s, s:s, s:s, s:o, s:i, s:f, s:i, s:o, s:o, s:o, s:s, s:s, s:s, s:o}",
                     "state", p.state, "to", p.to, "from", p.from, "steps", steps, "step",
                     (int)p.step, "weight", p.steps_bp[p.step] / 100.0, "hold_s", (int)p.hold_s,
                     "next_step_in_s", next, "gates", gates, "window",
                     json_pack("{s:I, s:I, s:f, s:f}", "requests", (json_int_t)w.req,
                               "errors_5xx", (json_int_t)w.e5, "ratio_percent", w.ratio_pct,
                               "p99_ms", w.p99_ms),
                     "reason", p.reason, "started_at", started, "actor", p.actor, "rolled_back",
                     rb);
    if (st) { /* a cohort plan: which countries it moves */
        json_t *coh = json_null();
        if (p.ncohort > 0) {
            json_t *cc = json_array();
            for (unsigned i = 0; i < p.ncohort; i++)
                json_array_append_new(cc, json_stringn(p.cohort[i], 2));
            coh = json_pack("{s:o}", "countries", cc);
        }
        json_object_set_new(st, "cohort", coh);
    }
    if (st && w.fleet) /* the window is the fleet's: say over how many replicas, and who leads */
        json_object_set_new(st, "fleet",
                            json_pack("{s:i, s:i, s:s}", "replicas_at_step", (int)w.at_step,
                                      "replicas", (int)w.replicas, "leader",
                                      w.leader ? w.leader : ""));
    return st;
}

/* ---- decisions -------------------------------------------------------------------------------- */

/* Commits plan p (and, when weights is set, new weights) for route sr through the owner's
 * durable, audited path (actor "auto"). */
static void commit(struct plan_state *ps, const struct state_route *sr, const struct plan *p,
                   const char *op, json_t *args, int stable_too, int rollback)
{
    struct state next;
    if (!ps || !ps->env.apply || state_copy(&next, ps->env.rt) < 0) {
        json_decref(args);
        return;
    }
    struct state_route *nr = state_route_find(&next, sr->name);
    char *text = plan_dump(p);
    if (!nr || !text) {
        free(text);
        state_dispose(&next);
        json_decref(args);
        return;
    }
    free(nr->plan);
    nr->plan = text;
    if (rollback) { /* everyone back on the stable weights: the cohort goes too */
        for (size_t i = 0; i < nr->npools; i++)
            nr->pools[i].weight_bp = nr->pools[i].stable_bp;
        memset(&nr->cohort, 0, sizeof nr->cohort);
    } else {
        plan_set_weights(nr, p, p->steps_bp[p->step]);
    }
    if (stable_too && p->ncohort == 0) { /* a cohort plan's promotion keeps the cohort */
        for (size_t i = 0; i < nr->npools; i++)
            nr->pools[i].stable_bp = nr->pools[i].weight_bp;
        memset(&nr->cohort, 0, sizeof nr->cohort); /* widened to everyone */
    }
    ps->env.apply(ps->env.ctx, op, args, &next, sr->name);
    state_dispose(&next);
    json_decref(args);
}

/* A fleet plan's decision records over how many replicas its window was measured and which
 * replica led it. */
static void fleet_args(json_t *args, const struct window *w)
{
    if (args && w->fleet)
        json_object_set_new(args, "fleet",
                            json_pack("{s:i, s:i, s:s}", "replicas_at_step", (int)w->at_step,
                                      "replicas", (int)w->replicas, "leader",
                                      w->leader ? w->leader : ""));
}

static void roll_back(struct plan_state *ps, const struct state_route *sr, struct plan *p,
                      const struct gate_decision *d, const struct window *w)
{
    snprintf(p->state, sizeof p->state, "rolled_back");
    snprintf(p->rb_gate, sizeof p->rb_gate, "%s", d->gate);
    p->rb_value = d->value;
    p->rb_limit = d->limit;
    p->rb_at_ms = plan_wall_ms();
    json_t *args = json_pack("{s:s, s:s, s:s, s:f, s:f, s:{s:I, s:I, s:f, s:f}, s:s}", "route",
                             sr->name, "pool", p->to, "gate", d->gate, "value", d->value,
                             "limit", d->limit, "window", "requests", (json_int_t)w->req,
                             "errors_5xx", (json_int_t)w->e5, "ratio_percent", w->ratio_pct,
                             "p99_ms", w->p99_ms, "reason", d->reason);
    fleet_args(args, w);
    commit(ps, sr, p, "rollback", args, 0, 1);
}

/* A fleet plan's window that does not hold every registered replica's counts for the step yet
 * (a replica publishes its first counts at its first tick on the step, then every
 * FLEET_COUNTS_MS): the leader's own requests, counted as they happen, would weigh more than
 * the others' and a failure on the leader's replica alone would read as the fleet's. A gate on
 * the window (not "unhealthy", which needs no window) waits for the rest, at most until the
 * step's hold is over; then what was counted is judged. */
static int fleet_window_partial(const struct window *w, const struct gate_step *st,
                                const char *gate)
{
    return w->fleet && w->at_step < w->replicas && strcmp(gate, "unhealthy") != 0 &&
           st->now_ms < st->step_started_ms + (int64_t)st->hold_s * 1000;
}

/* Judges the plan's current step (gate.h) and applies the decision. */
static void run_plan(struct plan_state *ps, const struct state_route *sr, struct plan *p)
{
    struct window w;
    window_of(ps, sr, p, &w); /* with a fleet store: publishes this replica's counts */
    if (ps->env.leads && !ps->env.leads(ps->env.fleet_ctx, sr->name))
        return; /* another replica leads the plan (or none yet: asked) */
    unsigned to_bp = p->steps_bp[p->step];
    const struct gate_limits lim = {.gate_5xx = p->gate_5xx,
                                    .gate_p99 = p->gate_p99,
                                    .max_5xx_bp = p->max_5xx_bp,
                                    .max_p99_ms = p->max_p99_ms,
                                    .min_requests = p->min_requests};
    const struct gate_step st = {
        .step = p->step,
        .nsteps = p->nsteps,
        .to_bp = to_bp,
        /* only asked when it matters, as before */
        .to_serving = to_bp > 0 ? hstate_pool_serving(ps->env.hs, sr->name, p->to) : -1,
        .step_started_ms = p->step_started_ms,
        .hold_s = p->hold_s,
        .now_ms = plan_wall_ms()};
    const struct gate_window gw = {
        .requests = w.req, .errors_5xx = w.e5, .ratio_pct = w.ratio_pct, .p99_ms = w.p99_ms};
    struct gate_decision d;
    gate_judge(&lim, &st, &gw, &d);
    if (d.verdict == GATE_ROLLBACK && fleet_window_partial(&w, &st, d.gate))
        return; /* judge the fleet's window, not the part of it counted so far */
    if (d.verdict == GATE_ROLLBACK) {
        roll_back(ps, sr, p, &d, &w);
        return;
    }
    if (d.verdict == GATE_HOLD)
        return;
    json_t *args = json_pack("{s:s, s:s, s:i, s:{s:I, s:I, s:f, s:f}, s:s}", "route", sr->name,
                             "pool", p->to, "step", (int)p->step, "window", "requests",
                             (json_int_t)w.req, "errors_5xx", (json_int_t)w.e5, "ratio_percent",
                             w.ratio_pct, "p99_ms", w.p99_ms, "reason", p->reason);
    fleet_args(args, &w);
    if (d.verdict == GATE_ADVANCE) {
        p->step = d.next_step;
        p->step_started_ms = plan_wall_ms();
        commit(ps, sr, p, "shift-step", args, 0, 0);
    } else {
        snprintf(p->state, sizeof p->state, "promoted");
        commit(ps, sr, p, "promote", args, 1, 0);
    }
}

/* The watchdog, once a second: each pool away from its stable weight with too many 5xx over
 * the window sends the route back. */
static void watchdog(struct plan_state *ps, const struct cfg_route *cr, const struct state_route *sr,
                     struct plan_track *t, int judge)
{
    struct wd_sample *s = &t->ring[t->ring_pos];
    for (size_t i = 0; i < sr->npools && i < CFG_MAX_POOLS; i++) {
        struct totals tt;
        totals_of(ps, sr->name, sr->pools[i].name, &tt);
        s->req[i] = tt.req;
        s->e5[i] = tt.e5;
        memcpy(s->lat[i], tt.lat, sizeof s->lat[i]);
    }
    unsigned have = watchdog_seconds(cr->watchdog.window_s, t->ring_n, WD_SECONDS);
    const struct wd_sample *old = &t->ring[(t->ring_pos + WD_SECONDS - have) % WD_SECONDS];
    t->ring_pos = (t->ring_pos + 1) % WD_SECONDS;
    if (t->ring_n < WD_SECONDS)
        t->ring_n++;
    if (!judge)
        return;
    struct watchdog_pool pools[CFG_MAX_POOLS];
    size_t n = sr->npools < CFG_MAX_POOLS ? sr->npools : CFG_MAX_POOLS;
    for (size_t i = 0; i < n; i++)
        pools[i] = (struct watchdog_pool){.weight_bp = sr->pools[i].weight_bp,
                                          .stable_bp = sr->pools[i].stable_bp,
                                          .requests = s->req[i] - old->req[i],
                                          .errors_5xx = s->e5[i] - old->e5[i]};
    struct watchdog_verdict v;
    if (!watchdog_judge(&cr->watchdog, have, pools, n, &v))
        return;
    struct state next;
    if (!ps->env.apply || state_copy(&next, ps->env.rt) < 0)
        return;
    struct state_route *nr = state_route_find(&next, sr->name);
    for (size_t k = 0; nr && k < nr->npools; k++)
        nr->pools[k].weight_bp = nr->pools[k].stable_bp;
    if (nr)
        memset(&nr->cohort, 0, sizeof nr->cohort);
    const struct watchdog_pool *wp = &pools[v.pool];
    json_t *args = json_pack("{s:s, s:s, s:s, s:f, s:f, s:{s:I, s:I, s:i}, s:s}", "route",
                             sr->name, "pool", sr->pools[v.pool].name, "gate", v.gate, "value",
                             v.value, "limit", v.limit, "window", "requests",
                             (json_int_t)wp->requests, "errors_5xx", (json_int_t)wp->errors_5xx,
                             "seconds", (int)have, "reason", v.reason);
    if (nr)
        ps->env.apply(ps->env.ctx, "rollback", args, &next, sr->name);
    json_decref(args);
    state_dispose(&next);
}

void plan_tick(struct plan_state *ps, const struct cfg *cfg)
{
    if (!ps)
        return;
    int64_t now = plan_wall_ms();
    const struct state *rt = ps->env.rt;
    for (size_t r = 0; r < rt->nroutes; r++) {
        const struct state_route *sr = &rt->routes[r];
        struct plan p;
        int planned = sr->plan && plan_parse(sr->plan, &p) == 0 && !strcmp(p.state, "running");
        int ri = cfg_route_index(cfg, sr->name);
        struct plan_track *t = ri >= 0 ? track(ps, sr->name) : NULL;
        if (t && now >= t->last_sample_ms + 1000) {
            t->last_sample_ms = now;
            /* The plan's gates guard the route while it runs; the watchdog otherwise. */
            watchdog(ps, &cfg->routes[ri], sr, t, !planned);
            sr = &rt->routes[r]; /* a rollback replaced the state */
        }
        if (planned && sr->plan && plan_parse(sr->plan, &p) == 0 && !strcmp(p.state, "running"))
            run_plan(ps, sr, &p);
    }
}

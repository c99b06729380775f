/* cmd_ops.c - the server's half of each control operation: its handler (see cmd_ops.h). */
#include "control/cmd_ops.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cfg.h"
#include "control/cmd_reads.h"
#include "control/reload_preview.h"
#include "control/fleet.h"
#include "control/audit.h"
#include "control/counters.h"
#include "control/plan.h"
#include "control/state.h"
#include "core/cut.h"
#include "core/version.h"

/* ---- operations ---------------------------------------------------------------------------- */

static int op_version(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {NULL};
    if (cmd_check_keys(r, q->args, keys) < 0)
        return CUT_EINVAL;
    r->result = json_pack("{s:s, s:i}", "version", CUTOVER_VERSION, "protocol", CMD_PROTOCOL);
    return 0;
}

static json_t *endpoints_json(struct cmd_host *c, const struct state_route *sr, const struct state_pool *sp)
{
    json_t *a = json_array();
    const struct cfg_route *cr = NULL;
    for (size_t i = 0; i < c->cfg(c->ctx)->nroutes; i++)
        if (strcmp(c->cfg(c->ctx)->routes[i].name, sr->name) == 0)
            cr = &c->cfg(c->ctx)->routes[i];
    int p = cr ? cfg_route_pool_index(cr, sp->name) : -1;
    for (size_t e = 0; p >= 0 && e < cr->pools[p].nendpoints; e++) {
        const char *addr = cr->pools[p].endpoints[e].address;
        if (state_addrs_has(&sp->removed, addr))
            continue;
        json_array_append_new(a, json_pack("{s:s, s:b, s:b}", "address", addr, "drained",
                                           state_addrs_has(&sp->drained, addr), "added", 0));
    }
    for (size_t e = 0; e < sp->added.n; e++)
        json_array_append_new(a, json_pack("{s:s, s:b, s:b}", "address", sp->added.v[e],
                                           "drained", state_addrs_has(&sp->drained, sp->added.v[e]),
                                           "added", 1));
    return a;
}

static void pool_counts(struct cmd_host *c, const char *route, const char *pool, uint64_t *req,
                        uint64_t *e5)
{
    struct counters_sum s;
    counters_sum(c->counters, route, pool, &s);
    *req = s.requests;
    *e5 = s.cls[4];
}

/* The route's country cohort for status: {"countries": [...], "weights": {pool: percent}}, or
 * null when it has none. */
static json_t *cohort_obj(const struct state_route *sr)
{
    if (sr->cohort.ncountries == 0)
        return json_null();
    json_t *cc = json_array(), *w = json_object();
    for (unsigned i = 0; i < sr->cohort.ncountries && i < STATE_COHORT_MAX; i++)
        json_array_append_new(cc, json_stringn(sr->cohort.countries[i], 2));
    for (size_t p = 0; p < sr->npools; p++) {
        unsigned bp = sr->cohort.weights_bp[p];
        json_object_set_new(w, sr->pools[p].name,
                            bp % 100 == 0 ? json_integer(bp / 100) : json_real(bp / 100.0));
    }
    return json_pack("{s:o, s:o}", "countries", cc, "weights", w);
}

static int op_status(struct cmd_req *q, struct cmd_res *r)
{
    const char *only;
    if (cmd_arg_route_filter(q, r, &only) < 0)
        return CUT_EINVAL;
    struct cmd_host *c = q->c;
    const struct cfg *cfg = c->cfg(c->ctx);
    json_t *routes = json_array();
    for (size_t i = 0; i < c->state(c->ctx)->nroutes; i++) {
        const struct state_route *sr = &c->state(c->ctx)->routes[i];
        if (only && strcmp(only, sr->name) != 0)
            continue;
        json_t *pools = json_object();
        for (size_t p = 0; p < sr->npools; p++) {
            uint64_t req, e5;
            pool_counts(c, sr->name, sr->pools[p].name, &req, &e5);
            json_object_set_new(pools, sr->pools[p].name,
                                json_pack("{s:I, s:I, s:o, s:o}", "requests", (json_int_t)req,
                                          "responses_5xx", (json_int_t)e5, "endpoints",
                                          endpoints_json(c, sr, &sr->pools[p]), "windows",
                                          plan_pool_windows(c->plans, sr->name, p)));
        }
        json_t *plan = plan_status(c->plans, sr);
        json_array_append_new(routes, json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "name",
                                                sr->name, "weights", cmd_weights_obj(sr, 0),
                                                "stable", cmd_weights_obj(sr, 1), "pools", pools,
                                                "plan", plan ? plan : json_null(), "cohort",
                                                cohort_obj(sr)));
    }
    r->result = json_pack("{s:I, s:s, s:s, s:s, s:o}", "uptime_s",
                          (json_int_t)(time(NULL) - c->started), "config_file", c->config_path,
                          "cluster", cfg->cluster, "region", cfg->region, "routes", routes);
    if (c->fleet && r->result)
        json_object_set_new(r->result, "fleet", fleet_status(c->fleet));
    return 0;
}

/* A running or paused plan owns the route's weights: other weight changes wait for it (a
 * rollback is always allowed and ends it). */
static int check_no_plan(struct cmd_res *r, const struct state_route *sr)
{
    struct plan p;
    if (sr->plan && plan_parse(sr->plan, &p) == 0 && plan_active(&p))
        return cmd_fail(r, "plan_running", "args.route",
                    "route \"%s\" has a %s shift plan: pause and abort it, or roll back", sr->name,
                    p.state);
    return 0;
}

/* Ends the route's plan as rolled back by hand (rollback cancels a running shift). */
static void end_plan_manual(struct state_route *nr)
{
    struct plan p;
    if (!nr->plan || plan_parse(nr->plan, &p) < 0 || !plan_active(&p))
        return;
    snprintf(p.state, sizeof p.state, "rolled_back");
    snprintf(p.rb_gate, sizeof p.rb_gate, "manual");
    p.rb_at_ms = plan_wall_ms();
    char *text = plan_dump(&p);
    if (text) {
        free(nr->plan);
        nr->plan = text;
    }
}

static int op_set_weights(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"route", "weights", "reason", "expect_generation", NULL};
    const char *route, *reason;
    if (cmd_check_keys(r, q->args, keys) < 0 || cmd_arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        cmd_arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return CUT_EINVAL;
    json_t *w = json_object_get(q->args, "weights");
    if (!w)
        return cmd_fail(r, "invalid_argument", "args.weights", "missing required argument");
    const struct state_route *cur = cmd_find_route(q, r, route);
    unsigned bp[CFG_MAX_POOLS] = {0};
    if (!cur || cmd_parse_weights(r, w, cur, bp) < 0 || cmd_arg_expect(q, r) < 0 ||
        check_no_plan(r, cur) < 0)
        return CUT_EINVAL;
    struct state_route *nr = cmd_begin_change(q, r, route);
    if (!nr)
        return CUT_EINVAL;
    for (size_t p = 0; p < nr->npools; p++)
        nr->pools[p].weight_bp = bp[p];
    memset(&nr->cohort, 0, sizeof nr->cohort); /* weights for everyone: no cohort any more */
    r->changed = !cmd_same_weights(cur, nr);
    r->result = json_pack("{s:s, s:o, s:b}", "route", nr->name, "weights", cmd_weights_obj(nr, 0),
                          "changed", r->changed);
    state_weights_json(nr, 0, r->weights_after, sizeof r->weights_after);
    return 0;
}

static int op_promote(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"route", "pool", "reason", "expect_generation", NULL};
    const char *route, *pool, *reason;
    if (cmd_check_keys(r, q->args, keys) < 0 || cmd_arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        cmd_arg_str(r, q->args, "pool", 1, 128, &pool) < 0 ||
        cmd_arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return CUT_EINVAL;
    const struct state_route *cur = cmd_find_route(q, r, route);
    int p;
    if (!cur || (p = cmd_find_pool(r, cur, pool)) < 0 || cmd_arg_expect(q, r) < 0 ||
        check_no_plan(r, cur) < 0)
        return CUT_EINVAL;
    struct state_route *nr = cmd_begin_change(q, r, route);
    if (!nr)
        return CUT_EINVAL;
    for (size_t i = 0; i < nr->npools; i++)
        nr->pools[i].weight_bp = nr->pools[i].stable_bp = (int)i == p ? CFG_BP_TOTAL : 0;
    memset(&nr->cohort, 0, sizeof nr->cohort); /* promoted for everyone: no cohort any more */
    r->changed = !cmd_same_weights(cur, nr);
    r->result = json_pack("{s:s, s:o, s:o}", "route", nr->name, "weights", cmd_weights_obj(nr, 0),
                          "stable", cmd_weights_obj(nr, 1));
    state_weights_json(nr, 0, r->weights_after, sizeof r->weights_after);
    return 0;
}

static int op_rollback(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"route", "reason", "expect_generation", NULL};
    const char *route, *reason;
    if (cmd_check_keys(r, q->args, keys) < 0 || cmd_arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        cmd_arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return CUT_EINVAL;
    const struct state_route *cur = cmd_find_route(q, r, route);
    if (!cur || cmd_arg_expect(q, r) < 0)
        return CUT_EINVAL;
    struct state_route *nr = cmd_begin_change(q, r, route);
    if (!nr)
        return CUT_EINVAL;
    for (size_t i = 0; i < nr->npools; i++)
        nr->pools[i].weight_bp = nr->pools[i].stable_bp;
    memset(&nr->cohort, 0, sizeof nr->cohort); /* everyone back on the stable weights */
    end_plan_manual(nr);
    int plan_ended = (cur->plan == NULL) != (nr->plan == NULL) ||
                     (cur->plan && strcmp(cur->plan, nr->plan) != 0);
    r->changed = !cmd_same_weights(cur, nr) || plan_ended;
    r->result = json_pack("{s:s, s:o, s:b}", "route", nr->name, "weights", cmd_weights_obj(nr, 0),
                          "already", !r->changed);
    state_weights_json(nr, 0, r->weights_after, sizeof r->weights_after);
    return 0;
}

/* drain, undrain, add-endpoint, remove-endpoint */
static int endpoint_op(struct cmd_req *q, struct cmd_res *r, int kind)
{
    static const char *const keys[] = {"route", "pool", "endpoint", "reason", "expect_generation",
                                       NULL};
    const char *route, *pool, *ep, *reason;
    if (cmd_check_keys(r, q->args, keys) < 0 || cmd_arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        cmd_arg_str(r, q->args, "pool", 1, 128, &pool) < 0 ||
        cmd_arg_str(r, q->args, "endpoint", 1, 262, &ep) < 0 ||
        cmd_arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return CUT_EINVAL;
    const struct state_route *cur = cmd_find_route(q, r, route);
    int p;
    if (!cur || (p = cmd_find_pool(r, cur, pool)) < 0 || cmd_arg_expect(q, r) < 0)
        return CUT_EINVAL;
    const struct state_pool *cp = &cur->pools[p];
    int present = cmd_pool_has_endpoint(q->c, route, cp, ep);
    if (kind == 2) { /* add */
        struct cfg_endpoint ce;
        char buf[300];
        if (snapshot_parse_endpoint(ep, &ce, buf, sizeof buf) < 0)
            return cmd_fail(r, "invalid_argument", "args.endpoint",
                        "expected host:port (port 1..65535)");
        for (const char *h = ce.host; *h; h++)
            if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
                  *h == '.' || *h == '-' || *h == ':'))
                return cmd_fail(r, "invalid_argument", "args.endpoint", "invalid host");
        if (present)
            return cmd_fail(r, "invalid_argument", "args.endpoint", "already an endpoint of the pool");
    } else if (!present) {
        return cmd_fail(r, "not_found", "args.endpoint", "pool \"%s\" has no endpoint \"%.100s\"",
                    pool, ep);
    }
    if (kind == 3 && cmd_pool_endpoint_count(q->c, route, cp) <= 1)
        return cmd_fail(r, "invalid_argument", "args.endpoint",
                    "cannot remove the last endpoint of a pool");
    struct state_route *nr = cmd_begin_change(q, r, route);
    if (!nr)
        return CUT_EINVAL;
    struct state_pool *np = &nr->pools[p];
    int rc = 0;
    switch (kind) {
    case 0: /* drain */
        r->changed = !state_addrs_has(&np->drained, ep);
        rc = state_addrs_add(&np->drained, ep);
        break;
    case 1: /* undrain */
        r->changed = state_addrs_has(&np->drained, ep);
        state_addrs_remove(&np->drained, ep);
        break;
    case 2: /* add */
        r->changed = 1;
        if (state_addrs_has(&np->removed, ep))
            state_addrs_remove(&np->removed, ep);
        else
            rc = state_addrs_add(&np->added, ep);
        break;
    default: /* remove */
        r->changed = 1;
        state_addrs_remove(&np->drained, ep);
        if (state_addrs_has(&np->added, ep))
            state_addrs_remove(&np->added, ep);
        else
            rc = state_addrs_add(&np->removed, ep);
        break;
    }
    if (rc < 0)
        return cmd_fail(r, "internal", NULL, "out of memory");
    r->result = json_pack("{s:s, s:s, s:s, s:b, s:b}", "route", nr->name, "pool", np->name,
                          "endpoint", ep, "drained", state_addrs_has(&np->drained, ep), "changed",
                          r->changed);
    state_weights_json(nr, 0, r->weights_after, sizeof r->weights_after);
    return 0;
}

static int op_drain(struct cmd_req *q, struct cmd_res *r)
{
    return endpoint_op(q, r, 0);
}

static int op_undrain(struct cmd_req *q, struct cmd_res *r)
{
    return endpoint_op(q, r, 1);
}

static int op_add_endpoint(struct cmd_req *q, struct cmd_res *r)
{
    return endpoint_op(q, r, 2);
}

static int op_remove_endpoint(struct cmd_req *q, struct cmd_res *r)
{
    return endpoint_op(q, r, 3);
}

/* A reload (or its dry run) refused: every problem in details, errs disposed. */
static int reload_refused(struct cmd_res *r, struct cfg_errors *errs, int rc)
{
    r->details = json_array();
    for (size_t i = 0; i < errs->n; i++)
        json_array_append_new(r->details,
                              json_pack("{s:s, s:s, s:i, s:i}", "path",
                                        errs->v[i].path && errs->v[i].path[0] ? errs->v[i].path
                                                                              : "(root)",
                                        "message", errs->v[i].message, "line", errs->v[i].line,
                                        "column", errs->v[i].column));
    cmd_fail(r, rc == CUT_EINVAL ? "invalid_argument" : "internal", NULL,
             "the configuration was refused (%zu problem%s)", errs->n, errs->n == 1 ? "" : "s");
    cfg_errors_dispose(errs);
    return CUT_EINVAL;
}

static int op_reload(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"reason", "expect_generation", NULL};
    const char *reason;
    if (cmd_check_keys(r, q->args, keys) < 0 ||
        cmd_arg_str(r, q->args, "reason", 0, CMD_REASON_MAX, &reason) < 0 || cmd_arg_expect(q, r) < 0)
        return CUT_EINVAL;
    struct cfg_errors errs = {0};
    if (q->dry_run) { /* read and checked as a reload would, nothing applied */
        char *wb = NULL, *wa = NULL;
        int rc = reload_preview(q->c->config_path, q->c->cfg(q->c->ctx), q->c->state(q->c->ctx),
                                q->c->fleet != NULL, &r->result, &wb, &wa, &errs);
        if (rc == 0) {
            r->changed = json_is_true(json_object_get(r->result, "would_change"));
            snprintf(r->weights_before, sizeof r->weights_before, "%s", wb);
            snprintf(r->weights_after, sizeof r->weights_after, "%s", wa);
        }
        free(wb);
        free(wa);
        return rc < 0 ? reload_refused(r, &errs, rc) : 0;
    }
    struct audit_record rec;
    char *args_json = json_dumps(q->args, JSON_COMPACT | JSON_PRESERVE_ORDER);
    cmd_record_fill(q->c, q->peer, "reload", args_json, q->args, &rec);
    int recorded = 0;
    int rc = q->c->reload(q->c->ctx, &errs, &rec, &recorded);
    free(args_json);
    r->recorded = recorded;
    if (rc < 0)
        return reload_refused(r, &errs, rc);
    r->reloaded = 1;
    r->result = json_pack("{s:s}", "config_file", q->c->config_path);
    return 0;
}

/* ---- shift plans ---------------------------------------------------------------------------- */

/* The optional "cohort": {"country": ["SG", "MY"]} of a shift: 1..STATE_COHORT_MAX distinct
 * upper-case ISO 3166-1 alpha-2 codes. */
static int parse_cohort_arg(struct cmd_req *q, struct cmd_res *r, struct plan *p)
{
    json_t *c = json_object_get(q->args, "cohort");
    if (c == NULL)
        return 0;
    if (!json_is_object(c))
        return cmd_fail(r, "invalid_argument", "args.cohort",
                        "expected an object {\"country\": [\"SG\", ...]}");
    const char *key;
    json_t *v;
    json_object_foreach(c, key, v)
    {
        if (strcmp(key, "country") != 0) {
            char path[160];
            snprintf(path, sizeof path, "args.cohort.%.100s", key);
            return cmd_fail(r, "invalid_argument", path, "unknown key (a cohort has \"country\")");
        }
    }
    json_t *cc = json_object_get(c, "country");
    if (!json_is_array(cc) || json_array_size(cc) == 0 ||
        json_array_size(cc) > STATE_COHORT_MAX)
        return cmd_fail(r, "invalid_argument", "args.cohort.country",
                        "expected 1 to %d country codes (one cohort per route, at most %d "
                        "countries)",
                        STATE_COHORT_MAX, STATE_COHORT_MAX);
    size_t i;
    json_array_foreach(cc, i, v)
    {
        char path[48];
        snprintf(path, sizeof path, "args.cohort.country[%zu]", i);
        if (!json_is_string(v) || !state_country_ok(json_string_value(v), json_string_length(v)))
            return cmd_fail(r, "invalid_argument", path,
                            "expected an ISO 3166-1 alpha-2 code in upper case (\"SG\")");
        for (unsigned k = 0; k < p->ncohort; k++)
            if (memcmp(p->cohort[k], json_string_value(v), 3) == 0)
                return cmd_fail(r, "invalid_argument", path, "country \"%s\" listed twice",
                                json_string_value(v));
        memcpy(p->cohort[p->ncohort++], json_string_value(v), 3);
    }
    return 0;
}

static int parse_plan_args(struct cmd_req *q, struct cmd_res *r, const struct state_route *sr,
                           struct plan *p)
{
    const char *to;
    if (cmd_arg_str(r, q->args, "to", 1, 128, &to) < 0 || cmd_find_pool(r, (struct state_route *)sr, to) < 0)
        return CUT_EINVAL;
    snprintf(p->to, sizeof p->to, "%s", to);
    unsigned best = 0;
    for (size_t i = 0; i < sr->npools; i++) /* where traffic comes from: the largest stable */
        if (strcmp(sr->pools[i].name, to) != 0 && (!p->from[0] || sr->pools[i].stable_bp > best)) {
            best = sr->pools[i].stable_bp;
            snprintf(p->from, sizeof p->from, "%s", sr->pools[i].name);
        }
    json_t *steps = json_object_get(q->args, "steps");
    if (!json_is_array(steps) || json_array_size(steps) == 0 ||
        json_array_size(steps) > PLAN_MAX_STEPS)
        return cmd_fail(r, "invalid_argument", "args.steps", "expected 1 to %d percentages",
                    PLAN_MAX_STEPS);
    unsigned prev = 0;
    for (size_t i = 0; i < json_array_size(steps); i++) {
        json_t *v = json_array_get(steps, i);
        double d = json_is_number(v) ? json_number_value(v) : -1;
        char path[48];
        snprintf(path, sizeof path, "args.steps[%zu]", i);
        /* the range before the conversion (an out-of-range double to unsigned is undefined
         * behaviour); the negated test also refuses NaN */
        if (!(d > 0.0 && d <= 100.0) || fabs(d * 100.0 - floor(d * 100.0 + 0.5)) > 1e-6)
            return cmd_fail(r, "invalid_argument", path,
                        "must be above 0 and at most 100, with at most two decimals");
        unsigned bp = (unsigned)(d * 100.0 + 0.5);
        if (bp <= prev)
            return cmd_fail(r, "invalid_argument", path, "steps must increase");
        p->steps_bp[p->nsteps++] = prev = bp;
    }
    if (prev != CFG_BP_TOTAL)
        return cmd_fail(r, "invalid_argument", "args.steps", "the last step must be 100");
    if (parse_cohort_arg(q, r, p) < 0)
        return CUT_EINVAL;
    json_t *hold = json_object_get(q->args, "hold_s");
    if (!json_is_integer(hold) || json_integer_value(hold) < 0 ||
        json_integer_value(hold) > 86400)
        return cmd_fail(r, "invalid_argument", "args.hold_s", "expected seconds, 0 to 86400");
    p->hold_s = (unsigned)json_integer_value(hold);
    json_t *gates = json_object_get(q->args, "gates");
    if (gates) {
        static const char *const gkeys[] = {"max_5xx_percent", "max_p99_ms", "min_requests",
                                            NULL};
        if (!json_is_object(gates))
            return cmd_fail(r, "invalid_argument", "args.gates", "expected an object");
        const char *key;
        json_t *v;
        json_object_foreach(gates, key, v)
        {
            int known = 0;
            for (const char *const *k = gkeys; *k; k++)
                known |= !strcmp(*k, key);
            if (!known) {
                char path[160];
                snprintf(path, sizeof path, "args.gates.%.100s", key);
                return cmd_fail(r, "invalid_argument", path, "unknown gate");
            }
        }
        json_t *g5 = json_object_get(gates, "max_5xx_percent");
        if (g5) {
            double d = json_is_number(g5) ? json_number_value(g5) : -1;
            if (!(d >= 0.0 && d <= 100.0)) /* NaN too, before the cast */
                return cmd_fail(r, "invalid_argument", "args.gates.max_5xx_percent",
                            "expected a percentage, 0 to 100");
            p->gate_5xx = 1;
            p->max_5xx_bp = (unsigned)(d * 100.0 + 0.5);
        }
        json_t *gp = json_object_get(gates, "max_p99_ms");
        if (gp) {
            if (!json_is_integer(gp) || json_integer_value(gp) < 1 ||
                json_integer_value(gp) > 600000)
                return cmd_fail(r, "invalid_argument", "args.gates.max_p99_ms",
                            "expected milliseconds, 1 to 600000");
            p->gate_p99 = 1;
            p->max_p99_ms = (unsigned)json_integer_value(gp);
        }
        json_t *mr = json_object_get(gates, "min_requests");
        if (mr) {
            if (!json_is_integer(mr) || json_integer_value(mr) < 0 ||
                json_integer_value(mr) > 100000000)
                return cmd_fail(r, "invalid_argument", "args.gates.min_requests",
                            "expected a count, 0 to 100000000");
            p->min_requests = (unsigned)json_integer_value(mr);
        }
    }
    return 0;
}

static int op_shift(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"route", "to", "steps", "hold_s", "gates", "cohort",
                                       "reason", "expect_generation", NULL};
    const char *route, *reason;
    if (cmd_check_keys(r, q->args, keys) < 0 || cmd_arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        cmd_arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return CUT_EINVAL;
    const struct state_route *cur = cmd_find_route(q, r, route);
    struct plan p = {0};
    if (!cur || parse_plan_args(q, r, cur, &p) < 0 || cmd_arg_expect(q, r) < 0)
        return CUT_EINVAL;
    struct plan old;
    if (cur->plan && plan_parse(cur->plan, &old) == 0 && plan_active(&old))
        return cmd_fail(r, "plan_exists", "args.route", "route \"%s\" already has a %s plan",
                    cur->name, old.state);
    snprintf(p.state, sizeof p.state, "running");
    snprintf(p.reason, sizeof p.reason, "%s", reason);
    snprintf(p.actor, sizeof p.actor, "%s", q->peer->user ? q->peer->user : "");
    p.started_ms = p.step_started_ms = plan_wall_ms();
    struct state_route *nr = cmd_begin_change(q, r, route);
    char *text = nr ? plan_dump(&p) : NULL;
    if (!text)
        return nr ? cmd_fail(r, "internal", NULL, "out of memory") : -1;
    free(nr->plan);
    nr->plan = text;
    plan_set_weights(nr, &p, p.steps_bp[0]);
    if (!q->dry_run)
        plan_rebase(q->c->plans, route);
    r->changed = 1;
    r->result = json_pack("{s:s, s:o, s:o}", "route", nr->name, "weights", cmd_weights_obj(nr, 0),
                          "plan", plan_status(q->c->plans, nr));
    state_weights_json(nr, 0, r->weights_after, sizeof r->weights_after);
    return 0;
}

/* shift-pause / shift-resume / shift-abort: from one plan state to another. */
static int plan_transition(struct cmd_req *q, struct cmd_res *r, const char *from1,
                           const char *from2, const char *to)
{
    static const char *const keys[] = {"route", "reason", "expect_generation", NULL};
    const char *route, *reason;
    if (cmd_check_keys(r, q->args, keys) < 0 || cmd_arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        cmd_arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return CUT_EINVAL;
    const struct state_route *cur = cmd_find_route(q, r, route);
    if (!cur || cmd_arg_expect(q, r) < 0)
        return CUT_EINVAL;
    struct plan p;
    if (!cur->plan || plan_parse(cur->plan, &p) < 0)
        return cmd_fail(r, "not_found", "args.route", "route \"%s\" has no shift plan", cur->name);
    if (strcmp(p.state, from1) != 0 && strcmp(p.state, from2) != 0)
        return cmd_fail(r, "invalid_state", "args.route", "the plan is %s", p.state);
    struct state_route *nr = cmd_begin_change(q, r, route);
    if (!nr)
        return CUT_EINVAL;
    if (!strcmp(to, "running") && !q->dry_run) { /* resuming: the step's hold starts again
                                                   * (not in a dry run: a new step start would
                                                   * reset the paused plan's gate window) */
        p.step_started_ms = plan_wall_ms();
        plan_rebase(q->c->plans, route);
    }
    snprintf(p.state, sizeof p.state, "%s", to);
    char *text = plan_dump(&p);
    if (!text)
        return cmd_fail(r, "internal", NULL, "out of memory");
    free(nr->plan);
    nr->plan = text;
    r->changed = 1;
    r->result = json_pack("{s:s, s:o, s:o}", "route", nr->name, "weights", cmd_weights_obj(nr, 0),
                          "plan", plan_status(q->c->plans, nr));
    state_weights_json(nr, 0, r->weights_after, sizeof r->weights_after);
    return 0;
}

static int op_shift_pause(struct cmd_req *q, struct cmd_res *r)
{
    return plan_transition(q, r, "running", "running", "paused");
}

static int op_shift_resume(struct cmd_req *q, struct cmd_res *r)
{
    return plan_transition(q, r, "paused", "paused", "running");
}

static int op_shift_abort(struct cmd_req *q, struct cmd_res *r)
{
    return plan_transition(q, r, "running", "paused", "aborted");
}

/* ---- the handlers ------------------------------------------------------------------------ */

/* The server's half of each operation: its handler. What an operation is (role, whether it
 * mutates, help) is written once, in control/optable.c, which cutoverctl reads too; every op
 * there has exactly one handler here (tests/unit/control/test_optable.c). */

static const struct {
    const char *op;
    cmd_fn fn;
} handlers[] = {
    {"version", op_version},
    {"status", op_status},
    {"history", cmd_reads_history},
    {"diff", cmd_reads_diff},
    {"rollback", op_rollback},
    {"drain", op_drain},
    {"undrain", op_undrain},
    {"set-weights", op_set_weights},
    {"promote", op_promote},
    {"shift", op_shift},
    {"shift-pause", op_shift_pause},
    {"shift-resume", op_shift_resume},
    {"shift-abort", op_shift_abort},
    {"add-endpoint", op_add_endpoint},
    {"remove-endpoint", op_remove_endpoint},
    {"reload", op_reload},
};

const char *cmd_ops_handled(size_t i)
{
    return i < CUT_ARRAY_LEN(handlers) ? handlers[i].op : NULL;
}

cmd_fn cmd_ops_find(const char *op)
{
    for (size_t i = 0; i < CUT_ARRAY_LEN(handlers); i++)
        if (strcmp(handlers[i].op, op) == 0)
            return handlers[i].fn;
    return NULL;
}

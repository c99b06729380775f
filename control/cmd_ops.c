/* cmd_ops.c - the server's half of each control operation: its handler (see cmd_ops.h). */
#include "control/fleet.h"
#include "control/cmd_ops.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cfg.h"
#include "control/audit.h"
#include "control/counters.h"
#include "control/plan.h"
#include "control/state.h"
#include "core/cut.h"
#include "core/text.h"
#include "core/version.h"
#include "proxy/route/snapshot.h"

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
    static const char *const keys[] = {"route", NULL};
    const char *only;
    if (cmd_check_keys(r, q->args, keys) < 0 || cmd_arg_str(r, q->args, "route", 0, 128, &only) < 0)
        return CUT_EINVAL;
    if (only && !cmd_find_route(q, r, only))
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

static int op_reload(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"reason", "expect_generation", NULL};
    const char *reason;
    if (cmd_check_keys(r, q->args, keys) < 0 ||
        cmd_arg_str(r, q->args, "reason", 0, CMD_REASON_MAX, &reason) < 0 || cmd_arg_expect(q, r) < 0)
        return CUT_EINVAL;
    struct cfg_errors errs = {0};
    struct audit_record rec;
    char *args_json = json_dumps(q->args, JSON_COMPACT | JSON_PRESERVE_ORDER);
    cmd_record_fill(q->c, q->peer, "reload", args_json, q->args, &rec);
    int recorded = 0;
    int rc = q->c->reload(q->c->ctx, &errs, &rec, &recorded);
    free(args_json);
    r->recorded = recorded;
    if (rc < 0) {
        r->details = json_array();
        for (size_t i = 0; i < errs.n; i++)
            json_array_append_new(r->details,
                                  json_pack("{s:s, s:s, s:i, s:i}", "path",
                                            errs.v[i].path && errs.v[i].path[0] ? errs.v[i].path
                                                                                : "(root)",
                                            "message", errs.v[i].message, "line", errs.v[i].line,
                                            "column", errs.v[i].column));
        cmd_fail(r, rc == CUT_EINVAL ? "invalid_argument" : "internal", NULL,
             "the configuration was refused (%zu problem%s)", errs.n, errs.n == 1 ? "" : "s");
        cfg_errors_dispose(&errs);
        return CUT_EINVAL;
    }
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

/* What history keeps of the records it is handed: those that pass the filters, at most limit
 * of them (the newest: an older one is dropped when a newer one comes). */
struct history_ctx {
    json_t *arr;
    size_t limit;
    const char *route, *actor; /* NULL: any */
    int64_t since_ms;          /* records at or after this wall time (ms); 0: any */
};

/* Parses an RFC 3339 time ("2024-05-01T10:00:00Z", "...T10:00:00.123+02:00") into ms since the
 * epoch. Returns 0 or -1. */
static int parse_rfc3339_ms(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    const char *p = s + n;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59)
            return -1;
        off_s = (int64_t)(oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = ((int64_t)t - off_s) * 1000 + ms;
    return 0;
}

/* args.since: an RFC 3339 time, or a duration back from now ("90s", "30m", "2h", "1d"). */
static int parse_since(struct cmd_res *r, json_t *v, int64_t *since_ms)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 64)
        return cmd_fail(r, "invalid_argument", "args.since",
                        "expected an RFC 3339 time or a duration like \"2h\" or \"30m\"");
    const char *s = json_string_value(v);
    if (parse_rfc3339_ms(s, since_ms) == 0)
        return 0;
    char *end;
    double x = s[0] >= '0' && s[0] <= '9' ? strtod(s, &end) : -1;
    double unit = x < 0            ? 0
                  : !strcmp(end, "s") ? 1e3
                  : !strcmp(end, "m") ? 60e3
                  : !strcmp(end, "h") ? 3600e3
                  : !strcmp(end, "d") ? 86400e3
                                      : 0;
    if (unit == 0 || !(x * unit <= 366.0 * 86400e3)) /* a year back at most; not NaN */
        return cmd_fail(r, "invalid_argument", "args.since",
                        "expected an RFC 3339 time or a duration like \"2h\" or \"30m\" (s, m, "
                        "h or d; a year at most)");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    *since_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - (int64_t)(x * unit);
    return 0;
}

/* The string at o.key (o.key.sub when sub is set), or "" when absent or not a string. */
static const char *rec_str(json_t *o, const char *key, const char *sub)
{
    json_t *v = json_object_get(o, key);
    const char *s = json_string_value(sub ? json_object_get(v, sub) : v);
    return s ? s : "";
}

/* Keeps record v (taken) when it passes the filters; the newest h->limit are kept. */
static void history_take(struct history_ctx *h, json_t *v)
{
    if (!v)
        return;
    int64_t at;
    if ((h->route && strcmp(rec_str(v, "args", "route"), h->route) != 0) ||
        (h->actor && strcmp(rec_str(v, "actor", "user"), h->actor) != 0) ||
        (h->since_ms &&
         (parse_rfc3339_ms(rec_str(v, "time", NULL), &at) < 0 || at < h->since_ms))) {
        json_decref(v);
        return;
    }
    json_array_append_new(h->arr, v);
    if (json_array_size(h->arr) > h->limit)
        json_array_remove(h->arr, 0);
}

static void history_line(void *ctx, const char *line, size_t len)
{
    history_take(ctx, json_loadb(line, len, 0, NULL));
}

/* With a fleet store: this replica's refusals only (its changes are in the fleet's history). */
static void refusal_line(void *ctx, const char *line, size_t len)
{
    json_t *v = json_loadb(line, len, 0, NULL);
    if (v && strcmp(rec_str(v, "kind", NULL), "refusal") == 0)
        history_take(ctx, v);
    else
        json_decref(v);
}

static int by_time(const void *a, const void *b)
{
    return strcmp(rec_str(*(json_t *const *)a, "time", NULL),
                  rec_str(*(json_t *const *)b, "time", NULL));
}

/* With a fleet store, history is the fleet's: every change made through any replica (from the
 * store's history, control/fleet.h), and this replica's own refusals when asked, by time. */
static json_t *fleet_history_records(struct cmd_host *c, struct history_ctx *h, int refusals)
{
    size_t limit = h->limit, i;
    h->limit = SIZE_MAX;
    json_t *all = fleet_history(c->fleet), *v;
    json_array_foreach(all, i, v)
        history_take(h, json_incref(v));
    json_decref(all);
    if (refusals)
        audit_history(c->audit, SIZE_MAX, 1, refusal_line, h);
    size_t n = json_array_size(h->arr);
    json_t **items = calloc(n ? n : 1, sizeof *items);
    json_t *out = json_array();
    if (items && out) {
        for (i = 0; i < n; i++)
            items[i] = json_array_get(h->arr, i);
        if (refusals) /* merged by time; the changes alone stay in generation order */
            qsort(items, n, sizeof *items, by_time);
        for (i = n > limit ? n - limit : 0; i < n; i++)
            json_array_append(out, items[i]);
    }
    free(items);
    json_decref(h->arr);
    return out;
}

/* History is about changes: the newest `limit` changes (made, aborted, recovered at start-up;
 * loaded from the audit log's tail at start, so they survive restarts), with refused requests
 * merged in only when asked (refusals: true). Reads are in the audit log, never in history.
 * The filters (route: records whose args.route is it; actor: whose actor.user is it; since: at
 * or after a time) pick among every record kept, then the newest `limit` that pass are
 * returned. */
static int op_history(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"limit", "refusals", "route", "since", "actor", NULL};
    if (cmd_check_keys(r, q->args, keys) < 0)
        return CUT_EINVAL;
    json_int_t limit = 50;
    json_t *v = json_object_get(q->args, "limit");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000)
            return cmd_fail(r, "invalid_argument", "args.limit", "must be an integer 1..1000");
        limit = json_integer_value(v);
    }
    json_t *rf = json_object_get(q->args, "refusals");
    if (rf && !json_is_boolean(rf))
        return cmd_fail(r, "invalid_argument", "args.refusals", "expected true or false");
    struct history_ctx h = {.limit = (size_t)limit};
    if (cmd_arg_str(r, q->args, "route", 0, 128, &h.route) < 0 ||
        cmd_arg_str(r, q->args, "actor", 0, 1024, &h.actor) < 0)
        return CUT_EINVAL;
    v = json_object_get(q->args, "since");
    if (v && parse_since(r, v, &h.since_ms) < 0)
        return CUT_EINVAL;
    h.arr = json_array();
    if (q->c->fleet) {
        r->result = json_pack("{s:o, s:b}", "records",
                              fleet_history_records(q->c, &h, rf && json_is_true(rf)), "fleet", 1);
        return 0;
    }
    int filtered = h.route || h.actor || h.since_ms;
    /* filtered: every record kept is looked at, the newest `limit` that pass are kept */
    audit_history(q->c->audit, filtered ? SIZE_MAX : (size_t)limit, rf && json_is_true(rf),
                  history_line, &h);
    r->result = json_pack("{s:o}", "records", h.arr);
    return 0;
}

/* ---- diff: the runtime state against the configuration in use ------------------------------ */

static const struct cfg_route *cfg_route_named(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (strcmp(cfg->routes[i].name, name) == 0)
            return &cfg->routes[i];
    return NULL;
}

static json_t *bp_json(unsigned bp)
{
    return bp % 100 == 0 ? json_integer(bp / 100) : json_real(bp / 100.0);
}

static void diff_endpoints(json_t *arr, const char *pool, const struct state_addrs *a)
{
    for (size_t e = 0; e < a->n; e++)
        json_array_append_new(arr, json_pack("{s:s, s:s}", "pool", pool, "endpoint", a->v[e]));
}

/* One route: its weights and stable weights against the configured weights (a route starts at
 * its configured weights, and they are its stable weights), its drained, added and removed
 * endpoints (the configuration has none), and its plan when one is running or paused. */
static json_t *diff_route(struct cmd_host *c, const struct state_route *sr)
{
    const struct cfg_route *cr = cfg_route_named(c->cfg(c->ctx), sr->name);
    json_t *cfgw = json_object(), *drained = json_array(), *added = json_array(),
           *removed = json_array();
    int differs = cr == NULL;
    for (size_t p = 0; p < sr->npools; p++) {
        const struct state_pool *sp = &sr->pools[p];
        int cp = cr ? cfg_route_pool_index(cr, sp->name) : -1;
        if (cp < 0) {
            differs = 1;
        } else {
            unsigned want = cr->pools[cp].weight_bp;
            json_object_set_new(cfgw, sp->name, bp_json(want));
            differs |= sp->weight_bp != want || sp->stable_bp != want;
        }
        diff_endpoints(drained, sp->name, &sp->drained);
        diff_endpoints(added, sp->name, &sp->added);
        diff_endpoints(removed, sp->name, &sp->removed);
    }
    if (cr && cr->npools != sr->npools)
        differs = 1;
    differs |= json_array_size(drained) || json_array_size(added) || json_array_size(removed);
    struct plan p;
    json_t *plan = json_null();
    if (sr->plan && plan_parse(sr->plan, &p) == 0 && plan_active(&p)) {
        plan = json_string(p.state);
        differs = 1;
    }
    return json_pack("{s:s, s:b, s:{s:o, s:o}, s:{s:o, s:O}, s:o, s:o, s:o, s:o}", "name",
                     sr->name, "differs", differs, "weights", "runtime", cmd_weights_obj(sr, 0),
                     "config", cfgw, "stable", "runtime", cmd_weights_obj(sr, 1), "config",
                     cfgw, "drained", drained, "added", added, "removed", removed, "plan", plan);
}

static int op_diff(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"route", NULL};
    const char *only;
    if (cmd_check_keys(r, q->args, keys) < 0 || cmd_arg_str(r, q->args, "route", 0, 128, &only) < 0)
        return CUT_EINVAL;
    if (only && !cmd_find_route(q, r, only))
        return CUT_EINVAL;
    struct cmd_host *c = q->c;
    json_t *routes = json_array();
    for (size_t i = 0; i < c->state(c->ctx)->nroutes; i++) {
        const struct state_route *sr = &c->state(c->ctx)->routes[i];
        if (!only || strcmp(only, sr->name) == 0)
            json_array_append_new(routes, diff_route(c, sr));
    }
    r->result = json_pack("{s:s, s:o}", "config_file", c->config_path, "routes", routes);
    return 0;
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
    {"history", op_history},
    {"diff", op_diff},
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

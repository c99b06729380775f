/* commands.c - the control operations: parse, authorise, validate, make durable, audit, publish. */
#include "control/commands.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/cfg.h"
#include "control/audit.h"
#include "control/counters.h"
#include "control/state.h"
#include "core/clock.h"
#include "core/cut.h"
#include "core/text.h"
#include "proxy/route/snapshot.h"
#include "core/version.h"
#include "control/durable.h"
#include "control/optable.h"
#include "control/plan.h"
#include "control/refusal.h"

#define CMD_PROTOCOL 1
#define CMD_REASON_MAX 512
#define CMD_ID_MAX 128

struct cmd_req {
    struct cmd_host *c;
    const struct cmd_peer *peer;
    json_t *args; /* an object (empty when absent) */
};

struct cmd_res {
    json_t *result;          /* the reply's "result" */
    const char *code;        /* error code, NULL when ok */
    char msg[512];
    char path[160];
    json_t *details;
    /* a mutating operation fills these */
    int changed;             /* next replaces the runtime state */
    int reloaded;            /* the reload op already published */
    int recorded;            /* the op already wrote its audit record (reload) */
    struct state next;
    const char *route;
    char weights_before[512], weights_after[512];
};

static int fail(struct cmd_res *r, const char *code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct cmd_res *r, const char *code, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->code = code;
    snprintf(r->path, sizeof r->path, "%s", path ? path : "");
    return -1;
}

static void record_fill(struct cmd_host *c, const struct cmd_peer *peer, const char *op,
                        const char *args_json, json_t *args, struct audit_record *rec);

enum cut_role commands_role_for(const struct cfg *cfg, long uid, long gid)
{
    const struct cfg_control *cc = &cfg->control;
    if (cc->nroles == 0)
        return uid >= 0 && uid == (long)geteuid() ? CUT_ROLE_ADMIN : CUT_ROLE_NONE;
    for (size_t i = 0; i < cc->nroles; i++) {
        const struct cfg_role_rule *rule = &cc->roles[i];
        if ((rule->uid < 0 || rule->uid == uid) && (rule->gid < 0 || rule->gid == gid))
            return rule->role;
    }
    return CUT_ROLE_NONE;
}

/* ---- argument helpers ---------------------------------------------------------------------- */

static int check_keys(struct cmd_res *r, json_t *args, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(*a, key) == 0;
        if (!ok) {
            char path[160];
            snprintf(path, sizeof path, "args.%.100s", key);
            return fail(r, "invalid_argument", path, "unknown argument");
        }
    }
    return 0;
}

static int arg_str(struct cmd_res *r, json_t *args, const char *key, int required, size_t max,
                   const char **out)
{
    char path[64];
    snprintf(path, sizeof path, "args.%s", key);
    json_t *v = json_object_get(args, key);
    *out = NULL;
    if (!v) {
        if (required)
            return fail(r, "invalid_argument", path, "missing required argument");
        return 0;
    }
    if (!json_is_string(v))
        return fail(r, "invalid_argument", path, "expected a string");
    size_t n = json_string_length(v);
    if (n == 0 || n > max)
        return fail(r, "invalid_argument", path, "must be 1 to %zu characters", max);
    *out = json_string_value(v);
    if (strlen(*out) != n)
        return fail(r, "invalid_argument", path, "must not contain NUL");
    return 0;
}

static int arg_expect(struct cmd_req *q, struct cmd_res *r)
{
    json_t *v = json_object_get(q->args, "expect_generation");
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(r, "invalid_argument", "args.expect_generation",
                    "expected a non-negative integer");
    if ((uint64_t)json_integer_value(v) != q->c->generation(q->c->ctx))
        return fail(r, "conflict", "args.expect_generation",
                    "expect_generation is %lld but the generation is %llu",
                    (long long)json_integer_value(v), (unsigned long long)q->c->generation(q->c->ctx));
    return 0;
}

static const struct state_route *find_route(struct cmd_req *q, struct cmd_res *r, const char *name)
{
    const struct state_route *sr = state_route_find((struct state *)q->c->state(q->c->ctx), name);
    if (!sr)
        fail(r, "not_found", "args.route", "no route named \"%.100s\"", name);
    return sr;
}

static int find_pool(struct cmd_res *r, const struct state_route *sr, const char *name)
{
    for (size_t p = 0; p < sr->npools; p++)
        if (strcmp(sr->pools[p].name, name) == 0)
            return (int)p;
    fail(r, "not_found", "args.pool", "route \"%s\" has no pool \"%.100s\"", sr->name, name);
    return -1;
}

static json_t *weights_obj(const struct state_route *sr, int stable)
{
    json_t *o = json_object();
    for (size_t p = 0; p < sr->npools; p++) {
        unsigned bp = stable ? sr->pools[p].stable_bp : sr->pools[p].weight_bp;
        json_t *v = bp % 100 == 0 ? json_integer(bp / 100) : json_real(bp / 100.0);
        json_object_set_new(o, sr->pools[p].name, v);
    }
    return o;
}

/* Starts a change of route name: copies the runtime state into r->next and records the weights
 * before. Returns the route inside r->next, or NULL (r says why). */
static struct state_route *begin_change(struct cmd_req *q, struct cmd_res *r, const char *name)
{
    const struct state_route *cur = find_route(q, r, name);
    if (!cur)
        return NULL;
    if (state_copy(&r->next, q->c->state(q->c->ctx)) < 0) {
        fail(r, "internal", NULL, "out of memory");
        return NULL;
    }
    r->route = cur->name;
    state_weights_json(cur, 0, r->weights_before, sizeof r->weights_before);
    return state_route_find(&r->next, name);
}

static int same_weights(const struct state_route *a, const struct state_route *b)
{
    for (size_t p = 0; p < a->npools; p++)
        if (a->pools[p].weight_bp != b->pools[p].weight_bp ||
            a->pools[p].stable_bp != b->pools[p].stable_bp)
            return 0;
    return 1;
}

/* Parses {"blue": 90, "green": 10} for route sr into bp[]. */
static int parse_weights(struct cmd_res *r, json_t *w, const struct state_route *sr, unsigned *bp)
{
    if (!json_is_object(w))
        return fail(r, "invalid_argument", "args.weights", "expected an object");
    unsigned sum = 0;
    const char *key;
    json_t *v;
    json_object_foreach(w, key, v)
    {
        char path[160];
        snprintf(path, sizeof path, "args.weights.%.100s", key);
        int p = -1;
        for (size_t i = 0; i < sr->npools; i++)
            if (strcmp(sr->pools[i].name, key) == 0)
                p = (int)i;
        if (p < 0)
            return fail(r, "invalid_argument", path, "route \"%s\" has no such pool", sr->name);
        if (!json_is_number(v))
            return fail(r, "invalid_argument", path, "expected a number");
        double d = json_number_value(v);
        double x = d * 100.0;
        double rx = floor(x + 0.5);
        if (!(d >= 0.0 && d <= 100.0) || fabs(x - rx) > 1e-6) /* NaN too, before the cast */
            return fail(r, "invalid_argument", path,
                        "must be 0 to 100 with at most two decimals");
        bp[p] = (unsigned)rx;
        sum += bp[p];
    }
    for (size_t i = 0; i < sr->npools; i++)
        if (!json_object_get(w, sr->pools[i].name))
            return fail(r, "invalid_argument", "args.weights", "missing weight for pool \"%s\"",
                        sr->pools[i].name);
    if (sum != CFG_BP_TOTAL) {
        char pct[16];
        text_percent(sum, pct, sizeof pct);
        return fail(r, "invalid_argument", "args.weights", "weights sum to %s, must be 100", pct);
    }
    return 0;
}

/* The endpoints a pool serves now: configured minus removed, plus added. */
static int pool_has_endpoint(struct cmd_host *c, const char *route, const struct state_pool *sp,
                             const char *addr)
{
    if (state_addrs_has(&sp->added, addr))
        return 1;
    if (state_addrs_has(&sp->removed, addr))
        return 0;
    for (size_t r = 0; r < c->cfg(c->ctx)->nroutes; r++) {
        const struct cfg_route *cr = &c->cfg(c->ctx)->routes[r];
        if (strcmp(cr->name, route) != 0)
            continue;
        int p = cfg_route_pool_index(cr, sp->name);
        if (p < 0)
            return 0;
        for (size_t e = 0; e < cr->pools[p].nendpoints; e++)
            if (strcmp(cr->pools[p].endpoints[e].address, addr) == 0)
                return 1;
    }
    return 0;
}

static size_t pool_endpoint_count(struct cmd_host *c, const char *route, const struct state_pool *sp)
{
    size_t n = sp->added.n;
    for (size_t r = 0; r < c->cfg(c->ctx)->nroutes; r++) {
        const struct cfg_route *cr = &c->cfg(c->ctx)->routes[r];
        if (strcmp(cr->name, route) != 0)
            continue;
        int p = cfg_route_pool_index(cr, sp->name);
        for (size_t e = 0; p >= 0 && e < cr->pools[p].nendpoints; e++)
            n += !state_addrs_has(&sp->removed, cr->pools[p].endpoints[e].address);
    }
    return n;
}

/* ---- operations ---------------------------------------------------------------------------- */

static int op_version(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {NULL};
    if (check_keys(r, q->args, keys) < 0)
        return -1;
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

static int op_status(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"route", NULL};
    const char *only;
    if (check_keys(r, q->args, keys) < 0 || arg_str(r, q->args, "route", 0, 128, &only) < 0)
        return -1;
    if (only && !find_route(q, r, only))
        return -1;
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
        json_array_append_new(routes, json_pack("{s:s, s:o, s:o, s:o, s:o}", "name", sr->name,
                                                "weights", weights_obj(sr, 0), "stable",
                                                weights_obj(sr, 1), "pools", pools, "plan",
                                                plan ? plan : json_null()));
    }
    r->result = json_pack("{s:I, s:s, s:s, s:s, s:o}", "uptime_s",
                          (json_int_t)(time(NULL) - c->started), "config_file", c->config_path,
                          "cluster", cfg->cluster, "region", cfg->region, "routes", routes);
    return 0;
}

/* A running or paused plan owns the route's weights: other weight changes wait for it (a
 * rollback is always allowed and ends it). */
static int check_no_plan(struct cmd_res *r, const struct state_route *sr)
{
    struct plan p;
    if (sr->plan && plan_parse(sr->plan, &p) == 0 && plan_active(&p))
        return fail(r, "plan_running", "args.route",
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
    if (check_keys(r, q->args, keys) < 0 || arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return -1;
    json_t *w = json_object_get(q->args, "weights");
    if (!w)
        return fail(r, "invalid_argument", "args.weights", "missing required argument");
    const struct state_route *cur = find_route(q, r, route);
    unsigned bp[CFG_MAX_POOLS] = {0};
    if (!cur || parse_weights(r, w, cur, bp) < 0 || arg_expect(q, r) < 0 ||
        check_no_plan(r, cur) < 0)
        return -1;
    struct state_route *nr = begin_change(q, r, route);
    if (!nr)
        return -1;
    for (size_t p = 0; p < nr->npools; p++)
        nr->pools[p].weight_bp = bp[p];
    r->changed = !same_weights(cur, nr);
    r->result = json_pack("{s:s, s:o, s:b}", "route", nr->name, "weights", weights_obj(nr, 0),
                          "changed", r->changed);
    state_weights_json(nr, 0, r->weights_after, sizeof r->weights_after);
    return 0;
}

static int op_promote(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"route", "pool", "reason", "expect_generation", NULL};
    const char *route, *pool, *reason;
    if (check_keys(r, q->args, keys) < 0 || arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        arg_str(r, q->args, "pool", 1, 128, &pool) < 0 ||
        arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return -1;
    const struct state_route *cur = find_route(q, r, route);
    int p;
    if (!cur || (p = find_pool(r, cur, pool)) < 0 || arg_expect(q, r) < 0 ||
        check_no_plan(r, cur) < 0)
        return -1;
    struct state_route *nr = begin_change(q, r, route);
    if (!nr)
        return -1;
    for (size_t i = 0; i < nr->npools; i++)
        nr->pools[i].weight_bp = nr->pools[i].stable_bp = (int)i == p ? CFG_BP_TOTAL : 0;
    r->changed = !same_weights(cur, nr);
    r->result = json_pack("{s:s, s:o, s:o}", "route", nr->name, "weights", weights_obj(nr, 0),
                          "stable", weights_obj(nr, 1));
    state_weights_json(nr, 0, r->weights_after, sizeof r->weights_after);
    return 0;
}

static int op_rollback(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"route", "reason", "expect_generation", NULL};
    const char *route, *reason;
    if (check_keys(r, q->args, keys) < 0 || arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return -1;
    const struct state_route *cur = find_route(q, r, route);
    if (!cur || arg_expect(q, r) < 0)
        return -1;
    struct state_route *nr = begin_change(q, r, route);
    if (!nr)
        return -1;
    for (size_t i = 0; i < nr->npools; i++)
        nr->pools[i].weight_bp = nr->pools[i].stable_bp;
    end_plan_manual(nr);
    int plan_ended = (cur->plan == NULL) != (nr->plan == NULL) ||
                     (cur->plan && strcmp(cur->plan, nr->plan) != 0);
    r->changed = !same_weights(cur, nr) || plan_ended;
    r->result = json_pack("{s:s, s:o, s:b}", "route", nr->name, "weights", weights_obj(nr, 0),
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
    if (check_keys(r, q->args, keys) < 0 || arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        arg_str(r, q->args, "pool", 1, 128, &pool) < 0 ||
        arg_str(r, q->args, "endpoint", 1, 262, &ep) < 0 ||
        arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return -1;
    const struct state_route *cur = find_route(q, r, route);
    int p;
    if (!cur || (p = find_pool(r, cur, pool)) < 0 || arg_expect(q, r) < 0)
        return -1;
    const struct state_pool *cp = &cur->pools[p];
    int present = pool_has_endpoint(q->c, route, cp, ep);
    if (kind == 2) { /* add */
        struct cfg_endpoint ce;
        char buf[300];
        if (snapshot_parse_endpoint(ep, &ce, buf, sizeof buf) < 0)
            return fail(r, "invalid_argument", "args.endpoint",
                        "expected host:port (port 1..65535)");
        for (const char *h = ce.host; *h; h++)
            if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
                  *h == '.' || *h == '-' || *h == ':'))
                return fail(r, "invalid_argument", "args.endpoint", "invalid host");
        if (present)
            return fail(r, "invalid_argument", "args.endpoint", "already an endpoint of the pool");
    } else if (!present) {
        return fail(r, "not_found", "args.endpoint", "pool \"%s\" has no endpoint \"%.100s\"",
                    pool, ep);
    }
    if (kind == 3 && pool_endpoint_count(q->c, route, cp) <= 1)
        return fail(r, "invalid_argument", "args.endpoint",
                    "cannot remove the last endpoint of a pool");
    struct state_route *nr = begin_change(q, r, route);
    if (!nr)
        return -1;
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
        return fail(r, "internal", NULL, "out of memory");
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
    if (check_keys(r, q->args, keys) < 0 ||
        arg_str(r, q->args, "reason", 0, CMD_REASON_MAX, &reason) < 0 || arg_expect(q, r) < 0)
        return -1;
    struct cfg_errors errs = {0};
    struct audit_record rec;
    char *args_json = json_dumps(q->args, JSON_COMPACT | JSON_PRESERVE_ORDER);
    record_fill(q->c, q->peer, "reload", args_json, q->args, &rec);
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
        fail(r, rc == CUT_EINVAL ? "invalid_argument" : "internal", NULL,
             "the configuration was refused (%zu problem%s)", errs.n, errs.n == 1 ? "" : "s");
        cfg_errors_dispose(&errs);
        return -1;
    }
    r->reloaded = 1;
    r->result = json_pack("{s:s}", "config_file", q->c->config_path);
    return 0;
}

/* ---- shift plans ---------------------------------------------------------------------------- */

static int parse_plan_args(struct cmd_req *q, struct cmd_res *r, const struct state_route *sr,
                           struct plan *p)
{
    const char *to;
    if (arg_str(r, q->args, "to", 1, 128, &to) < 0 || find_pool(r, (struct state_route *)sr, to) < 0)
        return -1;
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
        return fail(r, "invalid_argument", "args.steps", "expected 1 to %d percentages",
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
            return fail(r, "invalid_argument", path,
                        "must be above 0 and at most 100, with at most two decimals");
        unsigned bp = (unsigned)(d * 100.0 + 0.5);
        if (bp <= prev)
            return fail(r, "invalid_argument", path, "steps must increase");
        p->steps_bp[p->nsteps++] = prev = bp;
    }
    if (prev != CFG_BP_TOTAL)
        return fail(r, "invalid_argument", "args.steps", "the last step must be 100");
    json_t *hold = json_object_get(q->args, "hold_s");
    if (!json_is_integer(hold) || json_integer_value(hold) < 0 ||
        json_integer_value(hold) > 86400)
        return fail(r, "invalid_argument", "args.hold_s", "expected seconds, 0 to 86400");
    p->hold_s = (unsigned)json_integer_value(hold);
    json_t *gates = json_object_get(q->args, "gates");
    if (gates) {
        static const char *const gkeys[] = {"max_5xx_percent", "max_p99_ms", "min_requests",
                                            NULL};
        if (!json_is_object(gates))
            return fail(r, "invalid_argument", "args.gates", "expected an object");
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
                return fail(r, "invalid_argument", path, "unknown gate");
            }
        }
        json_t *g5 = json_object_get(gates, "max_5xx_percent");
        if (g5) {
            double d = json_is_number(g5) ? json_number_value(g5) : -1;
            if (!(d >= 0.0 && d <= 100.0)) /* NaN too, before the cast */
                return fail(r, "invalid_argument", "args.gates.max_5xx_percent",
                            "expected a percentage, 0 to 100");
            p->gate_5xx = 1;
            p->max_5xx_bp = (unsigned)(d * 100.0 + 0.5);
        }
        json_t *gp = json_object_get(gates, "max_p99_ms");
        if (gp) {
            if (!json_is_integer(gp) || json_integer_value(gp) < 1 ||
                json_integer_value(gp) > 600000)
                return fail(r, "invalid_argument", "args.gates.max_p99_ms",
                            "expected milliseconds, 1 to 600000");
            p->gate_p99 = 1;
            p->max_p99_ms = (unsigned)json_integer_value(gp);
        }
        json_t *mr = json_object_get(gates, "min_requests");
        if (mr) {
            if (!json_is_integer(mr) || json_integer_value(mr) < 0 ||
                json_integer_value(mr) > 100000000)
                return fail(r, "invalid_argument", "args.gates.min_requests",
                            "expected a count, 0 to 100000000");
            p->min_requests = (unsigned)json_integer_value(mr);
        }
    }
    return 0;
}

static int op_shift(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"route", "to", "steps", "hold_s", "gates", "reason",
                                       "expect_generation", NULL};
    const char *route, *reason;
    if (check_keys(r, q->args, keys) < 0 || arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return -1;
    const struct state_route *cur = find_route(q, r, route);
    struct plan p = {0};
    if (!cur || parse_plan_args(q, r, cur, &p) < 0 || arg_expect(q, r) < 0)
        return -1;
    struct plan old;
    if (cur->plan && plan_parse(cur->plan, &old) == 0 && plan_active(&old))
        return fail(r, "plan_exists", "args.route", "route \"%s\" already has a %s plan",
                    cur->name, old.state);
    snprintf(p.state, sizeof p.state, "running");
    snprintf(p.reason, sizeof p.reason, "%s", reason);
    snprintf(p.actor, sizeof p.actor, "%s", q->peer->user ? q->peer->user : "");
    p.started_ms = p.step_started_ms = plan_wall_ms();
    struct state_route *nr = begin_change(q, r, route);
    char *text = nr ? plan_dump(&p) : NULL;
    if (!text)
        return nr ? fail(r, "internal", NULL, "out of memory") : -1;
    free(nr->plan);
    nr->plan = text;
    plan_set_weights(nr, &p, p.steps_bp[0]);
    plan_rebase(q->c->plans, route);
    r->changed = 1;
    r->result = json_pack("{s:s, s:o, s:o}", "route", nr->name, "weights", weights_obj(nr, 0),
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
    if (check_keys(r, q->args, keys) < 0 || arg_str(r, q->args, "route", 1, 128, &route) < 0 ||
        arg_str(r, q->args, "reason", 1, CMD_REASON_MAX, &reason) < 0)
        return -1;
    const struct state_route *cur = find_route(q, r, route);
    if (!cur || arg_expect(q, r) < 0)
        return -1;
    struct plan p;
    if (!cur->plan || plan_parse(cur->plan, &p) < 0)
        return fail(r, "not_found", "args.route", "route \"%s\" has no shift plan", cur->name);
    if (strcmp(p.state, from1) != 0 && strcmp(p.state, from2) != 0)
        return fail(r, "invalid_state", "args.route", "the plan is %s", p.state);
    struct state_route *nr = begin_change(q, r, route);
    if (!nr)
        return -1;
    if (!strcmp(to, "running")) { /* resuming: the step's hold starts again */
        p.step_started_ms = plan_wall_ms();
        plan_rebase(q->c->plans, route);
    }
    snprintf(p.state, sizeof p.state, "%s", to);
    char *text = plan_dump(&p);
    if (!text)
        return fail(r, "internal", NULL, "out of memory");
    free(nr->plan);
    nr->plan = text;
    r->changed = 1;
    r->result = json_pack("{s:s, s:o, s:o}", "route", nr->name, "weights", weights_obj(nr, 0),
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

struct history_ctx {
    json_t *arr;
};

static void history_line(void *ctx, const char *line, size_t len)
{
    struct history_ctx *h = ctx;
    json_t *v = json_loadb(line, len, 0, NULL);
    if (v)
        json_array_append_new(h->arr, v);
}

/* History is about changes: the newest `limit` changes (made, aborted, recovered at start-up;
 * loaded from the audit log's tail at start, so they survive restarts), with refused requests
 * merged in only when asked (refusals: true). Reads are in the audit log, never in history. */
static int op_history(struct cmd_req *q, struct cmd_res *r)
{
    static const char *const keys[] = {"limit", "refusals", NULL};
    if (check_keys(r, q->args, keys) < 0)
        return -1;
    json_int_t limit = 50;
    json_t *v = json_object_get(q->args, "limit");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000)
            return fail(r, "invalid_argument", "args.limit", "must be an integer 1..1000");
        limit = json_integer_value(v);
    }
    json_t *rf = json_object_get(q->args, "refusals");
    if (rf && !json_is_boolean(rf))
        return fail(r, "invalid_argument", "args.refusals", "expected true or false");
    struct history_ctx h = {json_array()};
    audit_history(q->c->audit, (size_t)limit, rf && json_is_true(rf), history_line, &h);
    r->result = json_pack("{s:o}", "records", h.arr);
    return 0;
}

/* ---- the handlers ------------------------------------------------------------------------ */

/* The server's half of each operation: its handler. What an operation is (role, whether it
 * mutates, help) is written once, in control/optable.c, which cutoverctl reads too; every op
 * there has exactly one handler here (tests/unit/control/test_optable.c). */
typedef int (*command_fn)(struct cmd_req *q, struct cmd_res *r);

static const struct {
    const char *op;
    command_fn fn;
} handlers[] = {
    {"version", op_version},
    {"status", op_status},
    {"history", op_history},
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

const char *commands_handled_op(size_t i)
{
    return i < CUT_ARRAY_LEN(handlers) ? handlers[i].op : NULL;
}

static command_fn find_handler(const char *op)
{
    for (size_t i = 0; i < CUT_ARRAY_LEN(handlers); i++)
        if (strcmp(handlers[i].op, op) == 0)
            return handlers[i].fn;
    return NULL;
}

/* ---- replies and audit ------------------------------------------------------------------- */

static char *reply(struct cmd_host *c, const char *id, struct cmd_res *r)
{
    json_t *o = json_object();
    if (id)
        json_object_set_new(o, "id", json_string(id));
    else
        json_object_set_new(o, "id", json_null());
    json_object_set_new(o, "ok", json_boolean(r->code == NULL));
    json_object_set_new(o, "generation", json_integer((json_int_t)c->generation(c->ctx)));
    if (r->code) {
        json_t *e = json_pack("{s:s, s:s}", "code", r->code, "message", r->msg);
        if (r->path[0])
            json_object_set_new(e, "path", json_string(r->path));
        if (r->details)
            json_object_set(e, "details", r->details);
        json_object_set_new(o, "error", e);
    } else {
        json_object_set(o, "result", r->result ? r->result : json_object());
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                JSON_REAL_PRECISION(CUT_JSON_REAL_DIGITS));
    json_decref(o);
    return s;
}

static void audit(struct cmd_host *c, const struct cmd_peer *peer, const char *op, json_t *args,
                  struct cmd_res *r, uint64_t gen_before);

char *commands_error_reply(struct cmd_host *c, const struct cmd_peer *peer, const char *code,
                           const char *message)
{
    struct cmd_res r = {0};
    fail(&r, code, NULL, "%s", message);
    audit(c, peer, NULL, NULL, &r, c->generation(c->ctx));
    return reply(c, NULL, &r);
}

/* The parts of a record every control request shares. args_json and args (for the reason) are
 * borrowed and must outlive rec. */
static void record_fill(struct cmd_host *c, const struct cmd_peer *peer, const char *op,
                        const char *args_json, json_t *args, struct audit_record *rec)
{
    json_t *rv = args ? json_object_get(args, "reason") : NULL;
    *rec = (struct audit_record){
        .cluster = c->cfg(c->ctx)->cluster,
        .region = c->cfg(c->ctx)->region,
        .uid = peer->uid,
        .user = peer->user,
        .address = peer->address,
        .role = role_name(peer->role),
        .op = op ? op : "",
        .args_json = args_json,
        .ok = 1,
        .reason = rv && json_is_string(rv) ? json_string_value(rv) : NULL,
        .generation_before = c->generation(c->ctx),
        .generation_after = c->generation(c->ctx),
    };
}

static void count_op(struct cmd_host *c, const char *op, int ok)
{
    const struct optable_op *cmd = op ? optable_find(op) : NULL;
    /* op names come from the operation table (bounded label values); cutover's own plan steps
     * are not commands but are counted under their name too. */
    const char *counted = cmd ? cmd->op : op && strcmp(op, "shift-step") == 0 ? "shift-step"
                                                                                 : "unknown";
    counters_count_op(c->counters, counted, ok);
}

/* Writes the summary of an actor's coalesced refusals (refusal.h). */
static void on_refusal_summary(void *ctx, const struct refusal_detail *d, uint64_t count)
{
    struct cmd_host *c = ctx;
    char msg[600];
    snprintf(msg, sizeof msg,
             "%llu more refusals from this actor, counted rather than recorded one by one "
             "(beyond a burst of %d and %d a second); the last: %s: %s",
             (unsigned long long)count, REFUSAL_BURST, REFUSAL_RATE, d->code, d->message);
    struct audit_record rec = {
        .cluster = c->cfg(c->ctx)->cluster,
        .region = c->cfg(c->ctx)->region,
        .uid = d->uid,
        .user = d->user,
        .address = d->address[0] ? d->address : NULL,
        .role = d->role,
        .op = d->op,
        .ok = 0,
        .error_code = d->code,
        .error_message = msg,
        .generation_before = c->generation(c->ctx),
        .generation_after = c->generation(c->ctx),
        .kind = AUDIT_REFUSAL,
        .count = count,
    };
    char err[256];
    if (audit_append(c->audit, &rec, c->audit_out, c->ctx, err, sizeof err) < 0)
        c->event(c->ctx, "audit_failed", NULL);
}

void commands_tick(struct cmd_host *c, uint64_t now_ms)
{
    if (c->refusals)
        refusal_flush(c->refusals, now_ms, 0, on_refusal_summary, c);
}

void commands_stop(struct cmd_host *c)
{
    if (c->refusals)
        refusal_flush(c->refusals, clock_mono_ms(), 1, on_refusal_summary, c);
}

/* Records a request that changed nothing: a read, a refusal, or a change that was already so
 * (set-weights to the weights in force). Refusals are coalesced per actor (refusal.h). */
static void audit(struct cmd_host *c, const struct cmd_peer *peer, const char *op, json_t *args,
                  struct cmd_res *r, uint64_t gen_before)
{
    count_op(c, op, r->code == NULL);
    const struct optable_op *cmd = op ? optable_find(op) : NULL;
    enum audit_kind kind = r->code                 ? AUDIT_REFUSAL
                           : cmd && !cmd->mutates ? AUDIT_READ
                                                  : AUDIT_CHANGE;
    if (kind == AUDIT_REFUSAL && c->refusals) {
        struct refusal_detail d;
        refusal_detail_set(&d, peer->uid, peer->user, peer->address,
                           role_name(peer->role), op, r->code, r->msg);
        if (!refusal_admit(c->refusals, &d, clock_mono_ms(), on_refusal_summary, c))
            return; /* counted into this actor's summary */
    }
    char *args_json = args ? json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    struct audit_record rec;
    record_fill(c, peer, op, args_json, args, &rec);
    rec.kind = kind;
    rec.ok = r->code == NULL;
    rec.error_code = r->code;
    rec.error_message = r->code ? r->msg : NULL;
    rec.generation_before = gen_before;
    rec.weights_before_json = r->weights_before[0] ? r->weights_before : NULL;
    rec.weights_after_json = r->weights_after[0] ? r->weights_after : NULL;
    char err[256];
    if (audit_append(c->audit, &rec, c->audit_out, c->ctx, err, sizeof err) < 0) {
        c->event(c->ctx, "audit_failed", NULL);
        if (kind == AUDIT_CHANGE && !r->code) /* a no-op change must be on the record too */
            fail(r, "internal", NULL, "audit log: %s", err);
    }
    free(args_json);
}

/* Makes a validated change durable and audited, then publishes it (durable.h: the record, the
 * state file, the snapshot, the acknowledgement). */
static void apply(struct cmd_host *c, const struct cmd_peer *peer, const char *op, json_t *args,
                  struct cmd_res *r)
{
    uint64_t before = c->generation(c->ctx);
    if (!r->changed) {
        audit(c, peer, op, args, r, before); /* nothing to change: still on the record */
        return;
    }
    r->next.generation = c->generation(c->ctx) + 1;
    char *args_json = args ? json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    struct audit_record rec;
    record_fill(c, peer, op, args_json, args, &rec);
    rec.generation_after = r->next.generation;
    rec.weights_before_json = r->weights_before[0] ? r->weights_before : NULL;
    rec.weights_after_json = r->weights_after[0] ? r->weights_after : NULL;
    char err[400];
    int rc = c->durable_commit(c->ctx, &r->next, &rec, NULL, err, sizeof err);
    free(args_json);
    count_op(c, op, rc == 0);
    if (rc < 0) {
        fail(r, "internal", NULL, "%s", err); /* recorded as aborted, or not at all */
        return;
    }
    c->install(c->ctx, &r->next);
}

/* commands_handle() and commands_refuse(): refuse_code set refuses the request once its id, op
 * and args have been read (as far as they can be). */
static char *handle(struct cmd_host *c, const struct cmd_peer *peer, const char *line, size_t len,
                    const char **code, const char *refuse_code, const char *refuse_msg)
{
    struct cmd_res r = {0};
    json_error_t jerr;
    const char *id = NULL, *op = NULL;
    json_t *args = NULL;
    json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    uint64_t before = c->generation(c->ctx);
    const struct optable_op *cmd = NULL;
    char *out;
    if (refuse_code) {
        json_t *jid = json_is_object(req) ? json_object_get(req, "id") : NULL;
        json_t *jop = json_is_object(req) ? json_object_get(req, "op") : NULL;
        if (json_is_string(jid) && json_string_length(jid) > 0 &&
            json_string_length(jid) <= CMD_ID_MAX)
            id = json_string_value(jid);
        if (json_is_string(jop))
            op = json_string_value(jop);
        args = json_is_object(req) ? json_object_get(req, "args") : NULL;
        fail(&r, refuse_code, NULL, "%s", refuse_msg);
        goto done;
    }
    if (!req || !json_is_object(req)) {
        fail(&r, "bad_request", NULL, req ? "expected a JSON object" : "malformed JSON: %s",
             jerr.text);
        goto done;
    }
    json_t *jid = json_object_get(req, "id"), *jop = json_object_get(req, "op");
    json_t *jv = json_object_get(req, "v");
    args = json_object_get(req, "args");
    if (!jid || !json_is_string(jid) || json_string_length(jid) == 0 ||
        json_string_length(jid) > CMD_ID_MAX) {
        fail(&r, "bad_request", "id", "\"id\" must be a string of 1 to %d characters", CMD_ID_MAX);
        goto done;
    }
    id = json_string_value(jid);
    if (!jop || !json_is_string(jop)) {
        fail(&r, "bad_request", "op", "\"op\" must be a string");
        goto done;
    }
    op = json_string_value(jop);
    if (jv && (!json_is_integer(jv) || json_integer_value(jv) != CMD_PROTOCOL)) {
        fail(&r, "unsupported_version", "v", "this server speaks protocol version %d",
             CMD_PROTOCOL);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(req, key, val)
    {
        if (strcmp(key, "id") && strcmp(key, "op") && strcmp(key, "v") && strcmp(key, "args")) {
            char path[128];
            snprintf(path, sizeof path, "%.100s", key);
            fail(&r, "bad_request", path, "unknown field");
            goto done;
        }
    }
    if (args && !json_is_object(args)) {
        fail(&r, "invalid_argument", "args", "expected an object");
        goto done;
    }
    cmd = optable_find(op);
    if (!cmd) {
        fail(&r, "unknown_op", "op", "no operation \"%.100s\"", op);
        goto done;
    }
    if (peer->role < cmd->role) {
        fail(&r, "denied", "op", "role %s may not %s (needs %s)", role_name(peer->role),
             cmd->op, role_name(cmd->role));
        goto done;
    }
    json_t *empty = NULL;
    if (!args)
        args = empty = json_object();
    struct cmd_req q = {c, peer, args};
    command_fn fn = find_handler(cmd->op);
    CUT_ASSERT(fn != NULL); /* every op has a handler (test_optable.c) */
    int rc = fn(&q, &r);
    if (rc == 0 && cmd->mutates && !r.reloaded)
        apply(c, peer, op, args, &r);
    else if (r.recorded)
        count_op(c, op, r.code == NULL); /* the reload wrote its own record */
    else
        audit(c, peer, op, args, &r, before); /* every request is on the record, reads too */
    out = reply(c, id, &r);
    if (code)
        *code = r.code;
    json_decref(r.result);
    json_decref(r.details);
    state_dispose(&r.next);
    json_decref(empty);
    json_decref(req);
    return out;

done:
    /* Refused before reaching an operation: still audited (who tried what). */
    audit(c, peer, op, args && json_is_object(args) ? args : NULL, &r, before);
    out = reply(c, id, &r);
    if (code)
        *code = r.code;
    json_decref(r.details);
    json_decref(req);
    return out;
}

char *commands_handle(struct cmd_host *c, const struct cmd_peer *peer, const char *line, size_t len,
                      const char **code)
{
    return handle(c, peer, line, len, code, NULL, NULL);
}

char *commands_refuse(struct cmd_host *c, const struct cmd_peer *peer, const char *line, size_t len,
                      const char *code, const char *message)
{
    return handle(c, peer, line, len, NULL, code, message);
}

int commands_apply_auto(struct cmd_host *c, const char *op, json_t *args, struct state *next,
                        const char *route)
{
    char name[STATE_MAX_NAME];
    snprintf(name, sizeof name, "%s", route); /* route may point into the state being replaced */
    struct cmd_peer auto_peer = {.uid = -1, .gid = -1, .user = "auto", .role = CUT_ROLE_ADMIN};
    struct cmd_res r = {0};
    struct state_route *cur = state_route_find((struct state *)c->state(c->ctx), name);
    struct state_route *nr = state_route_find(next, name);
    if (!cur || !nr || state_copy(&r.next, next) < 0)
        return CUT_ENOMEM;
    r.route = name;
    r.changed = 1;
    state_weights_json(cur, 0, r.weights_before, sizeof r.weights_before);
    state_weights_json(nr, 0, r.weights_after, sizeof r.weights_after);
    apply(c, &auto_peer, op, args, &r);
    int rc = r.code ? CUT_EIO : 0;
    state_dispose(&r.next);
    json_decref(r.details);
    json_decref(r.result);
    return rc;
}

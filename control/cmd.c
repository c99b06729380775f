/* cmd.c - the argument helpers of the control operations (see cmd.h). */
#include "control/fleet.h"
#include "control/cmd.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "core/cut.h"
#include "core/role.h"
#include "core/text.h"

int cmd_fail(struct cmd_res *r, const char *code, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->code = code;
    snprintf(r->path, sizeof r->path, "%s", path ? path : "");
    return CUT_EINVAL;
}

/* ---- argument helpers ---------------------------------------------------------------------- */

int cmd_check_keys(struct cmd_res *r, json_t *args, const char *const *allowed)
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
            return cmd_fail(r, "invalid_argument", path, "unknown argument");
        }
    }
    return 0;
}

int cmd_arg_str(struct cmd_res *r, json_t *args, const char *key, int required, size_t max,
                   const char **out)
{
    char path[64];
    snprintf(path, sizeof path, "args.%s", key);
    json_t *v = json_object_get(args, key);
    *out = NULL;
    if (!v) {
        if (required)
            return cmd_fail(r, "invalid_argument", path, "missing required argument");
        return 0;
    }
    if (!json_is_string(v))
        return cmd_fail(r, "invalid_argument", path, "expected a string");
    size_t n = json_string_length(v);
    if (n == 0 || n > max)
        return cmd_fail(r, "invalid_argument", path, "must be 1 to %zu characters", max);
    *out = json_string_value(v);
    if (strlen(*out) != n)
        return cmd_fail(r, "invalid_argument", path, "must not contain NUL");
    return 0;
}

int cmd_arg_route_filter(struct cmd_req *q, struct cmd_res *r, const char **only)
{
    static const char *const keys[] = {"route", NULL};
    if (cmd_check_keys(r, q->args, keys) < 0 || cmd_arg_str(r, q->args, "route", 0, 128, only) < 0)
        return CUT_EINVAL;
    if (*only && !cmd_find_route(q, r, *only))
        return CUT_EINVAL;
    return 0;
}

int cmd_arg_expect(struct cmd_req *q, struct cmd_res *r)
{
    json_t *v = json_object_get(q->args, "expect_generation");
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return cmd_fail(r, "invalid_argument", "args.expect_generation",
                    "expected a non-negative integer");
    if ((uint64_t)json_integer_value(v) != q->c->generation(q->c->ctx))
        return cmd_fail(r, "conflict", "args.expect_generation",
                    "expect_generation is %lld but the generation is %llu",
                    (long long)json_integer_value(v), (unsigned long long)q->c->generation(q->c->ctx));
    return 0;
}

const struct state_route *cmd_find_route(struct cmd_req *q, struct cmd_res *r, const char *name)
{
    const struct state_route *sr = state_route_find((struct state *)q->c->state(q->c->ctx), name);
    if (!sr)
        cmd_fail(r, "not_found", "args.route", "no route named \"%.100s\"", name);
    return sr;
}

int cmd_find_pool(struct cmd_res *r, const struct state_route *sr, const char *name)
{
    for (size_t p = 0; p < sr->npools; p++)
        if (strcmp(sr->pools[p].name, name) == 0)
            return (int)p;
    cmd_fail(r, "not_found", "args.pool", "route \"%s\" has no pool \"%.100s\"", sr->name, name);
    return CUT_EINVAL;
}

json_t *cmd_weights_obj(const struct state_route *sr, int stable)
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
struct state_route *cmd_begin_change(struct cmd_req *q, struct cmd_res *r, const char *name)
{
    const struct state_route *cur = cmd_find_route(q, r, name);
    if (!cur)
        return NULL;
    if (state_copy(&r->next, q->c->state(q->c->ctx)) < 0) {
        cmd_fail(r, "internal", NULL, "out of memory");
        return NULL;
    }
    r->route = cur->name;
    state_weights_json(cur, 0, r->weights_before, sizeof r->weights_before);
    return state_route_find(&r->next, name);
}

int cmd_same_weights(const struct state_route *a, const struct state_route *b)
{
    for (size_t p = 0; p < a->npools; p++)
        if (a->pools[p].weight_bp != b->pools[p].weight_bp ||
            a->pools[p].stable_bp != b->pools[p].stable_bp)
            return 0;
    return memcmp(&a->cohort, &b->cohort, sizeof a->cohort) == 0; /* the cohort's too */
}

/* Parses {"blue": 90, "green": 10} for route sr into bp[]. */
int cmd_parse_weights(struct cmd_res *r, json_t *w, const struct state_route *sr, unsigned *bp)
{
    if (!json_is_object(w))
        return cmd_fail(r, "invalid_argument", "args.weights", "expected an object");
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
            return cmd_fail(r, "invalid_argument", path, "route \"%s\" has no such pool", sr->name);
        if (!json_is_number(v))
            return cmd_fail(r, "invalid_argument", path, "expected a number");
        double d = json_number_value(v);
        double x = d * 100.0;
        double rx = floor(x + 0.5);
        if (!(d >= 0.0 && d <= 100.0) || fabs(x - rx) > 1e-6) /* NaN too, before the cast */
            return cmd_fail(r, "invalid_argument", path,
                        "must be 0 to 100 with at most two decimals");
        bp[p] = (unsigned)rx;
        sum += bp[p];
    }
    for (size_t i = 0; i < sr->npools; i++)
        if (!json_object_get(w, sr->pools[i].name))
            return cmd_fail(r, "invalid_argument", "args.weights", "missing weight for pool \"%s\"",
                        sr->pools[i].name);
    if (sum != CFG_BP_TOTAL) {
        char pct[16];
        text_percent(sum, pct, sizeof pct);
        return cmd_fail(r, "invalid_argument", "args.weights", "weights sum to %s, must be 100", pct);
    }
    return 0;
}

/* The endpoints a pool serves now: configured minus removed, plus added. */
int cmd_pool_has_endpoint(struct cmd_host *c, const char *route, const struct state_pool *sp,
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

size_t cmd_pool_endpoint_count(struct cmd_host *c, const char *route, const struct state_pool *sp)
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

/* The parts of a record every control request shares. args_json and args (for the reason) are
 * borrowed and must outlive rec. */
void cmd_record_fill(struct cmd_host *c, const struct cmd_peer *peer, const char *op,
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
        .replica = c->fleet ? fleet_replica(c->fleet) : NULL,
    };
}

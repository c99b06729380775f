/* cmd_reads.c - the read operations that look back or aside: history (the audit log's changes,
 * or the fleet's with a store; filters) and diff (the runtime state against the configuration
 * in use). Handlers of control/cmd_ops.c's table (see cmd_reads.h). */
#include "control/cmd_reads.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cfg.h"
#include "control/audit.h"
#include "control/cmd.h"
#include "control/commands.h"
#include "control/fleet.h"
#include "control/plan.h"
#include "control/state.h"
#include "core/cut.h"

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
int cmd_reads_history(struct cmd_req *q, struct cmd_res *r)
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

int cmd_reads_diff(struct cmd_req *q, struct cmd_res *r)
{
    const char *only;
    if (cmd_arg_route_filter(q, r, &only) < 0)
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


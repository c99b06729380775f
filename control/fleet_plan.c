/* fleet_plan.c - fleet plans (see fleet.h, "Fleet plans"): who leads each route's plan, and
 * what every replica counted for the plan's current step. */
#include "control/fleet_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/etcd.h"
#include "control/fleet_value.h"
#include "core/cut.h"
#include "proxy/log/log.h"

#define FLEET_MAX_PUB_CALLS 8

int fleet_plan_take(struct fleet *f, const char *key, const char *value, size_t len, int deleted)
{
    size_t nl = strlen(f->leaders_prefix), nc = strlen(f->counts_prefix);
    if (strncmp(key, f->leaders_prefix, nl) == 0) {
        const char *route = key + nl;
        json_t *v = deleted ? NULL : json_loadb(value, len, 0, NULL);
        if (json_is_object(v))
            json_object_set(f->leaders, route, v);
        else
            json_object_del(f->leaders, route);
        json_decref(v);
        return 1;
    }
    if (strncmp(key, f->counts_prefix, nc) != 0)
        return 0;
    /* counts/<route>/<replica> */
    char route[STATE_MAX_NAME];
    const char *rest = key + nc, *slash = strchr(rest, '/');
    if (!slash || (size_t)(slash - rest) >= sizeof route)
        return 1;
    memcpy(route, rest, (size_t)(slash - rest));
    route[slash - rest] = '\0';
    const char *replica = slash + 1;
    json_t *per = json_object_get(f->counts, route);
    if (deleted) {
        json_object_del(per, replica);
        return 1;
    }
    json_t *v = json_loadb(value, len, 0, NULL);
    if (json_is_object(v)) {
        if (!per) {
            per = json_object();
            json_object_set_new(f->counts, route, per);
        }
        json_object_set(per, replica, v);
    }
    json_decref(v);
    return 1;
}

const char *fleet_plan_leader(const struct fleet *f, const char *route)
{
    const char *r = json_string_value(json_object_get(json_object_get(f->leaders, route), "replica"));
    return r ? r : "";
}

static void on_lead(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    (void)reply;
    f->lead_call = NULL;
    if (status == CUT_EIO)
        fleet_set_reachable(f, 0, what);
    /* won or lost: the watch says who leads */
}

int fleet_plan_leads(void *fleet, const char *route)
{
    struct fleet *f = fleet;
    const char *who = fleet_plan_leader(f, route);
    if (who[0])
        return strcmp(who, f->replica) == 0 && f->lease != 0 && !f->commit_call;
    if (f->lead_call || !f->lease || !f->etcd || !f->synced || f->stopping)
        return 0;
    /* nobody leads: ask (create-if-absent under this replica's lease) */
    char key[512], since[40];
    snprintf(key, sizeof key, "%s%s", f->leaders_prefix, route);
    log_time_rfc3339(since, sizeof since);
    json_t *val = json_pack("{s:i, s:s, s:s}", "format", FLEET_FORMAT, "replica", f->replica,
                            "since", since);
    char *text = val ? json_dumps(val, JSON_COMPACT) : NULL;
    json_t *txn = text ? json_pack("{s:[{s:o, s:s, s:s, s:s}], s:[{s:o}]}", "compare", "key",
                                   fleet_b64_json(key), "result", "EQUAL", "target", "CREATE",
                                   "create_revision", "0", "success", "request_put",
                                   fleet_put_op(key, text, f->lease))
                       : NULL;
    if (txn)
        f->lead_call = etcd_call(f->etcd, "/v3/kv/txn", txn, on_lead, f);
    json_decref(txn);
    free(text);
    json_decref(val);
    return 0;
}

static void on_published(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    (void)reply;
    if (f->pub_calls)
        f->pub_calls--;
    if (status == CUT_EIO)
        fleet_set_reachable(f, 0, what);
}

static json_t *counts_json(const struct plan_counts *c)
{
    json_t *lat = json_array();
    for (size_t i = 0; i < PLAN_LAT_BUCKETS; i++)
        json_array_append_new(lat, json_integer((json_int_t)c->lat[i]));
    return json_pack("{s:I, s:I, s:o}", "requests", (json_int_t)c->requests, "errors_5xx",
                     (json_int_t)c->errors_5xx, "lat", lat);
}

/* Publishes this replica's counts for route's step, at most once per FLEET_COUNTS_MS and only
 * when they changed. */
static void publish(struct fleet *f, const char *route, const char *pool, int64_t step_ms,
                    const struct plan_counts *mine, int64_t now_ms)
{
    if (!f->lease || !f->etcd || f->stopping || f->pub_calls >= FLEET_MAX_PUB_CALLS)
        return;
    json_t *last = json_object_get(f->published, route);
    int64_t at = json_integer_value(json_object_get(last, "at_ms"));
    int same = last && json_integer_value(json_object_get(last, "step_ms")) == step_ms &&
               (uint64_t)json_integer_value(json_object_get(last, "requests")) == mine->requests;
    if (same || (last && now_ms - at < FLEET_COUNTS_MS &&
                 json_integer_value(json_object_get(last, "step_ms")) == step_ms))
        return;
    char key[512];
    snprintf(key, sizeof key, "%s%s/%s", f->counts_prefix, route, f->replica);
    json_t *val = counts_json(mine);
    json_object_set_new(val, "format", json_integer(FLEET_FORMAT));
    json_object_set_new(val, "pool", json_string(pool));
    json_object_set_new(val, "step_ms", json_integer(step_ms));
    char *text = json_dumps(val, JSON_COMPACT);
    json_t *body = text ? fleet_put_op(key, text, f->lease) : NULL;
    struct etcd_call *call = body ? etcd_call(f->etcd, "/v3/kv/put", body, on_published, f) : NULL;
    if (call) {
        f->pub_calls++;
        json_object_set_new(f->published, route,
                            json_pack("{s:I, s:I, s:I}", "at_ms", (json_int_t)now_ms, "step_ms",
                                      (json_int_t)step_ms, "requests",
                                      (json_int_t)mine->requests));
    }
    json_decref(body);
    free(text);
    json_decref(val);
}

void fleet_plan_window(void *fleet, const char *route, const char *pool, int64_t step_ms,
                       const struct plan_counts *mine, struct plan_counts *sum,
                       unsigned *at_step, unsigned *replicas, const char **leader)
{
    struct fleet *f = fleet;
    publish(f, route, pool, step_ms, mine, plan_wall_ms());
    *leader = fleet_plan_leader(f, route);
    *sum = *mine; /* this replica's own, as counted now */
    *at_step = 1;
    *replicas = (unsigned)json_object_size(f->replicas);
    if (*replicas == 0)
        *replicas = 1;
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(f->counts, route), name, v)
    {
        if (strcmp(name, f->replica) == 0 ||
            json_integer_value(json_object_get(v, "step_ms")) != step_ms ||
            !json_is_string(json_object_get(v, "pool")) ||
            strcmp(json_string_value(json_object_get(v, "pool")), pool) != 0)
            continue;
        if (!json_object_get(f->replicas, name))
            continue; /* a replica that left: its counts go with its lease */
        (*at_step)++;
        sum->requests += (uint64_t)json_integer_value(json_object_get(v, "requests"));
        sum->errors_5xx += (uint64_t)json_integer_value(json_object_get(v, "errors_5xx"));
        json_t *lat = json_object_get(v, "lat");
        for (size_t i = 0; i < PLAN_LAT_BUCKETS && i < json_array_size(lat); i++)
            sum->lat[i] += (uint64_t)json_integer_value(json_array_get(lat, i));
    }
}

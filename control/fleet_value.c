/* fleet_value.c - the values the fleet store holds (see fleet_value.h). */
#include "control/fleet_value.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"
#include "proxy/log/log.h"

char *fleet_value_route(const struct state_route *r, uint64_t gen, const char *actor,
                        const char *op, const char *replica)
{
    struct state one = {.generation = gen, .routes = (struct state_route *)r, .nroutes = 1};
    char *st = state_to_json(&one);
    json_t *stj = st ? json_loads(st, 0, NULL) : NULL;
    free(st);
    char t[40];
    log_time_rfc3339(t, sizeof t);
    json_t *v =
        stj ? json_pack("{s:i, s:I, s:{s:s, s:s, s:s, s:s}, s:o}", "format", FLEET_FORMAT,
                        "generation", (json_int_t)gen, "by", "actor", actor ? actor : "", "op",
                        op ? op : "", "replica", replica ? replica : "", "time", t, "state", stj)
            : NULL;
    char *out = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return out;
}

int fleet_value_parse_route(const char *name, const char *text, size_t len, struct state *out,
                            char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    json_t *fmt = json_object_get(v, "format"), *st = json_object_get(v, "state");
    json_t *gen = json_object_get(v, "generation");
    int rc = CUT_EINVAL;
    if (!json_is_object(v)) {
        snprintf(why, cap, "not a JSON object%s%s", v ? "" : ": ", v ? "" : je.text);
    } else if (!json_is_integer(fmt) || json_integer_value(fmt) != FLEET_FORMAT) {
        snprintf(why, cap, "format: this version reads format %d", FLEET_FORMAT);
    } else if (!json_is_integer(gen) || json_integer_value(gen) < 1) {
        snprintf(why, cap, "generation: expected a positive integer");
    } else if (!json_is_object(st)) {
        snprintf(why, cap, "state: expected an object");
    } else {
        char *text2 = json_dumps(st, JSON_COMPACT);
        char err[256];
        if (!text2) {
            snprintf(why, cap, "out of memory");
        } else if (state_from_json(text2, strlen(text2), out, err, sizeof err) < 0) {
            snprintf(why, cap, "state: %s", err);
        } else if (out->nroutes != 1 || strcmp(out->routes[0].name, name) != 0) {
            snprintf(why, cap, "state: expected exactly the route \"%.128s\"", name);
            state_dispose(out);
        } else {
            out->generation = (uint64_t)json_integer_value(gen);
            rc = 0;
        }
        free(text2);
    }
    json_decref(v);
    return rc;
}

char *fleet_value_generation(uint64_t gen)
{
    char buf[64];
    snprintf(buf, sizeof buf, "{\"format\":%d,\"generation\":%llu}", FLEET_FORMAT,
             (unsigned long long)gen);
    return strdup(buf);
}

int fleet_value_parse_generation(const char *text, size_t len, uint64_t *gen)
{
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *fmt = json_object_get(v, "format"), *g = json_object_get(v, "generation");
    int ok = json_is_integer(fmt) && json_integer_value(fmt) == FLEET_FORMAT &&
             json_is_integer(g) && json_integer_value(g) >= 1;
    if (ok)
        *gen = (uint64_t)json_integer_value(g);
    json_decref(v);
    return ok ? 0 : CUT_EINVAL;
}

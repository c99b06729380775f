/* fleet_base.c - what every part of the fleet store uses: its events, reachability, the
 * requests it builds (see fleet_internal.h). */
#include "control/fleet_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/etcd_codec.h"
#include "control/fleet_value.h"
#include "core/cut.h"

void fleet_event(struct fleet *f, const char *name, const char *fmt, ...)
{
    char extra[1024] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(extra, sizeof extra, fmt, ap);
        va_end(ap);
    }
    f->env.event(f->env.ctx, name, extra[0] ? extra : NULL);
}

/* Sets reachability and says when it changes. */
void fleet_set_reachable(struct fleet *f, int ok, const char *what)
{
    if (ok == f->reachable)
        return;
    f->reachable = ok;
    if (ok) {
        fleet_event(f, "store_reachable", NULL);
    } else {
        json_t *w = json_string(what ? what : "");
        char *ws = w ? json_dumps(w, JSON_ENCODE_ANY) : NULL;
        fleet_event(f, "store_unreachable", ",\"reason\":%s", ws ? ws : "\"\"");
        free(ws);
        json_decref(w);
    }
}

int fleet_pending_has(const struct fleet *f, const char *route)
{
    for (size_t i = 0; i < f->npending; i++)
        if (strcmp(f->pending[i], route) == 0)
            return 1;
    return 0;
}

json_t *fleet_b64_json(const char *s)
{
    char *b = etcd_codec_b64(s, strlen(s));
    json_t *j = b ? json_string(b) : NULL;
    free(b);
    return j;
}

json_t *fleet_put_op(const char *key, const char *value, int64_t lease)
{
    json_t *p = json_pack("{s:o, s:o}", "key", fleet_b64_json(key), "value", fleet_b64_json(value));
    if (p && lease)
        json_object_set_new(p, "lease", json_integer(lease));
    return p;
}

json_t *fleet_range_body(const struct fleet *f)
{
    return json_pack("{s:o, s:o}", "key", fleet_b64_json(f->prefix), "range_end",
                     fleet_b64_json(f->prefix_end));
}

void fleet_history_key(const struct fleet *f, uint64_t gen, char *key, size_t cap)
{
    snprintf(key, cap, "%s%020llu", f->history_prefix, (unsigned long long)gen);
}

/* The history entry of next's generation (history: a record, its generations set here), and
 * the removal of the one FLEET_HISTORY generations older: the store keeps the last ones. */
static int history_ops(struct fleet *f, json_t *ops, const struct state *next, json_t *history)
{
    if (!history)
        return 0;
    json_t *h = json_deep_copy(history);
    if (!h)
        return CUT_ENOMEM;
    json_object_set_new(h, "generation_before", json_integer((json_int_t)f->fleet_gen));
    json_object_set_new(h, "generation_after", json_integer((json_int_t)next->generation));
    json_object_set_new(h, "replica", json_string(f->replica));
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!text)
        return CUT_ENOMEM;
    char key[512];
    fleet_history_key(f, next->generation, key, sizeof key);
    json_array_append_new(ops, json_pack("{s:o}", "request_put", fleet_put_op(key, text, 0)));
    free(text);
    if (next->generation > FLEET_HISTORY) {
        fleet_history_key(f, next->generation - FLEET_HISTORY, key, sizeof key);
        json_array_append_new(ops, json_pack("{s:{s:o}}", "request_delete_range", "key",
                                             fleet_b64_json(key)));
    }
    return 0;
}

/* The transaction that makes next the fleet's state: compare the generation key's revision,
 * put the generation and every route of next that differs from cur (only: exactly the routes
 * i of next with only[i] set), and the change's history entry (history: NULL for none). */
json_t *fleet_change_txn(struct fleet *f, const struct state *cur, const struct state *next,
                         const char *actor, const char *op, const unsigned char *only,
                         json_t *history)
{
    json_t *cmp = json_pack("[{s:o, s:s, s:s, s:I}]", "key", fleet_b64_json(f->key_gen), "result",
                            "EQUAL", "target", "MOD", "mod_revision", (json_int_t)f->gen_rev);
    json_t *ops = json_array();
    char *gv = fleet_value_generation(next->generation);
    int bad = !cmp || !ops || !gv;
    if (!bad)
        json_array_append_new(ops,
                              json_pack("{s:o}", "request_put", fleet_put_op(f->key_gen, gv, 0)));
    free(gv);
    for (size_t i = 0; !bad && i < next->nroutes; i++) {
        const struct state_route *nr = &next->routes[i];
        struct state_route *cr = state_route_find((struct state *)cur, nr->name);
        if (only && !only[i])
            continue;
        if (!only && cr && !fleet_pending_has(f, nr->name)) {
            struct state a = {.routes = cr, .nroutes = 1},
                         b = {.routes = (struct state_route *)nr, .nroutes = 1};
            char *ja = state_to_json(&a), *jb = state_to_json(&b);
            int same = ja && jb && strcmp(ja, jb) == 0;
            free(ja);
            free(jb);
            if (same)
                continue;
        }
        char key[512];
        snprintf(key, sizeof key, "%s%s", f->routes_prefix, nr->name);
        char *val = fleet_value_route(nr, next->generation, actor, op, f->replica);
        if (!val) {
            bad = 1;
            break;
        }
        json_array_append_new(ops, json_pack("{s:o}", "request_put", fleet_put_op(key, val, 0)));
        free(val);
    }
    if (!bad && history_ops(f, ops, next, history) < 0)
        bad = 1;
    json_t *txn = bad ? NULL : json_pack("{s:o, s:o}", "compare", cmp, "success", ops);
    if (!txn) {
        json_decref(cmp);
        json_decref(ops);
    }
    return txn;
}

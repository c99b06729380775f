/* fleet_start.c - start-up: the fleet's state before the listeners accept (see fleet.h,
 * fleet_start). */
#include "control/fleet_internal.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/etcd.h"
#include "control/etcd_codec.h"
#include "core/cut.h"

struct blocking {
    int done, status;
    json_t *reply;
    char what[300];
};

static void on_blocking(void *ctx, int status, json_t *reply, const char *what)
{
    struct blocking *b = ctx;
    b->done = 1;
    b->status = status;
    b->reply = json_incref(reply);
    snprintf(b->what, sizeof b->what, "%s", what ? what : "");
}

/* One call on a private base, run until it completes (the client's timeouts bound it). */
static int call_blocking(struct etcd *e, struct event_base *base, const char *path, json_t *body,
                         struct blocking *b)
{
    memset(b, 0, sizeof *b);
    if (!etcd_call(e, path, body, on_blocking, b))
        return CUT_ENOMEM;
    while (!b->done && event_base_loop(base, EVLOOP_ONCE) == 0)
        ;
    return b->done ? b->status : CUT_EIO;
}

int fleet_start(struct fleet *f, struct state *rt, int *from_store)
{
    *from_store = 0;
    char err[256];
    struct event_base *base = event_base_new();
    struct etcd *e = base ? etcd_new(base, &f->opts, err, sizeof err) : NULL;
    if (!e) {
        if (base)
            event_base_free(base);
        fleet_event(f, "store_unreachable", ",\"reason\":\"cannot create the client\"");
        return 0;
    }
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        struct blocking b;
        json_t *body = fleet_range_body(f);
        int st = body ? call_blocking(e, base, "/v3/kv/range", body, &b) : CUT_ENOMEM;
        json_decref(body);
        if (st < 0) {
            fleet_set_reachable(f, 1, NULL); /* so that the next line says it */
            fleet_set_reachable(f, 0, b.what[0] ? b.what : "no member answered");
            json_decref(b.reply);
            break;
        }
        f->reachable = 1;
        struct fleet_view *v = calloc(1, sizeof *v);
        if (!v) {
            json_decref(b.reply);
            rc = CUT_ENOMEM;
            break;
        }
        int64_t rev = fleet_view_from_range(f, rt, b.reply, v);
        json_decref(b.reply);
        /* routes the store does not have yet: created from what this process would serve */
        int missing = !v->has_gen;
        for (size_t i = 0; i < rt->nroutes && i < CUT_ARRAY_LEN(v->docs); i++) {
            char key[512];
            snprintf(key, sizeof key, "%s%s", f->routes_prefix, rt->routes[i].name);
            if (v->docs[i].nroutes == 0 && !json_object_get(f->invalid, key))
                missing = 1;
        }
        uint64_t gen = v->has_gen ? v->gen : rt->generation;
        f->fleet_gen = v->has_gen ? v->gen : 0;
        f->gen_rev = v->has_gen ? v->gen_rev : 0;
        struct state merged;
        if (fleet_view_merge(f, rt, v, gen, &merged) < 0) {
            fleet_view_dispose(v);
            free(v);
            rc = CUT_ENOMEM;
            break;
        }
        if (!missing) {
            fleet_view_dispose(v);
            free(v);
            state_dispose(rt);
            *rt = merged;
            f->revision = rev;
            f->synced = 1;
            *from_store = 1;
            fleet_event(f, "store_loaded", ",\"fleet_generation\":%llu,\"revision\":%lld",
                        (unsigned long long)gen, (long long)rev);
            break;
        }
        /* create-if-absent: the routes the store lacks (and the generation), compared on the
         * generation key like every write; a replica that raced wins and this one reads again */
        unsigned char only[CUT_ARRAY_LEN(v->docs)] = {0};
        for (size_t i = 0; i < merged.nroutes && i < CUT_ARRAY_LEN(v->docs); i++) {
            char key[512];
            snprintf(key, sizeof key, "%s%s", f->routes_prefix, merged.routes[i].name);
            only[i] = v->docs[i].nroutes == 0 && !json_object_get(f->invalid, key);
        }
        struct state seed = merged; /* taken */
        /* a store without a generation yet continues this replica's numbering */
        seed.generation = v->has_gen ? f->fleet_gen + 1 : rt->generation + 1;
        {
            json_t *txn = fleet_change_txn(f, rt, &seed, "start", "seed", only, NULL);
            struct blocking b2 = {0};
            int st2 = txn ? call_blocking(e, base, "/v3/kv/txn", txn, &b2) : CUT_ENOMEM;
            json_decref(txn);
            if (st2 == 0 && json_is_true(json_object_get(b2.reply, "succeeded"))) {
                int64_t r2 = 0;
                etcd_codec_int(json_object_get(b2.reply, "header"), "revision", &r2);
                state_dispose(rt);
                *rt = seed;
                f->revision = r2;
                f->gen_rev = r2;
                f->fleet_gen = seed.generation;
                f->synced = 1;
                *from_store = 1;
                fleet_event(f, "store_seeded", ",\"fleet_generation\":%llu,\"revision\":%lld",
                            (unsigned long long)seed.generation, (long long)r2);
                json_decref(b2.reply);
                fleet_view_dispose(v);
                free(v);
                break;
            }
            state_dispose(&seed);
            json_decref(b2.reply);
            if (st2 < 0 && st2 != CUT_EPROTO) {
                fleet_set_reachable(f, 0, b2.what);
                fleet_view_dispose(v);
                free(v);
                break;
            }
        }
        fleet_view_dispose(v);
        free(v);
    }
    etcd_free(e);
    event_base_free(base);
    return rc;
}

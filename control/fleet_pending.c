/* fleet_pending.c - rollbacks made while the store could not be written (see fleet.h,
 * fleet_pending_add). */
#include "control/fleet_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/etcd.h"
#include "control/etcd_codec.h"
#include "control/fleet_value.h"
#include "core/cut.h"

int fleet_pending_has(const struct fleet *f, const char *route)
{
    for (size_t i = 0; i < f->npending; i++)
        if (strcmp(f->pending[i], route) == 0)
            return 1;
    return 0;
}

static void on_pending_written(void *ctx, int status, json_t *reply, const char *what)
{
    struct fleet *f = ctx;
    f->pending_call = NULL;
    if (status < 0) {
        fleet_set_reachable(f, status != CUT_EIO, what);
        fleet_retry_later(f);
        return;
    }
    if (!json_is_true(json_object_get(reply, "succeeded"))) {
        f->synced = 0; /* the fleet moved on: read it, then write the rollbacks again over it */
        fleet_resync_start(f);
        return;
    }
    int64_t rev = 0;
    etcd_codec_int(json_object_get(reply, "header"), "revision", &rev);
    if (f->revision < rev) { /* else the watch brought it (and maybe more) already */
        f->revision = rev;
        f->gen_rev = rev;
        f->fleet_gen = f->pending_gen;
    }
    for (size_t i = 0; i < f->npending; i++) {
        fleet_event(f, "store_pending_written", ",\"route\":\"%s\",\"fleet_generation\":%llu",
                    f->pending[i], (unsigned long long)f->fleet_gen);
        free(f->pending[i]);
    }
    f->npending = 0;
    fleet_pending_save(f);
    struct state next;
    if (state_copy(&next, f->env.state(f->env.ctx)) == 0) {
        next.generation = f->fleet_gen;
        f->env.apply(f->env.ctx, &next, "pending_written");
        state_dispose(&next);
    }
    fleet_register(f);
}

/* Writes the pending rollbacks' routes (as they are in use) over the store's, at the fleet's
 * generation + 1, compared like any change. */
void fleet_pending_write(struct fleet *f)
{
    if (f->pending_call || !f->npending || !f->synced)
        return;
    const struct state *cur = f->env.state(f->env.ctx);
    struct state next;
    if (state_copy(&next, cur) < 0)
        return;
    next.generation = f->pending_gen = f->fleet_gen + 1;
    json_t *txn = fleet_change_txn(f, cur, &next, f->pending_actor, "rollback", NULL);
    state_dispose(&next);
    f->pending_call = txn ? etcd_call(f->etcd, "/v3/kv/txn", txn, on_pending_written, f) : NULL;
    json_decref(txn);
}

/* Writes the pending routes to pending_path ({"format":1,"actor":..,"routes":[..]}; removed
 * when none), durably (temporary file, fsync, rename), so that a restart before the store
 * answers still knows which routes it must not take from the store. */
void fleet_pending_save(struct fleet *f)
{
    if (!f->pending_path)
        return;
    if (!f->npending) {
        unlink(f->pending_path);
        return;
    }
    json_t *routes = json_array();
    for (size_t i = 0; i < f->npending; i++)
        json_array_append_new(routes, json_string(f->pending[i]));
    json_t *doc = json_pack("{s:i, s:s, s:o}", "format", FLEET_FORMAT, "actor", f->pending_actor,
                            "routes", routes);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    size_t n = strlen(f->pending_path);
    char *tmp = malloc(n + 5);
    int ok = text && tmp;
    if (ok) {
        memcpy(tmp, f->pending_path, n);
        memcpy(tmp + n, ".tmp", 5);
        FILE *fp = fopen(tmp, "w");
        ok = fp && fputs(text, fp) >= 0 && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
        if (fp && fclose(fp) != 0)
            ok = 0;
        ok = ok && rename(tmp, f->pending_path) == 0;
    }
    if (!ok)
        fleet_event(f, "store_pending_not_saved", ",\"path\":\"%.300s\"", f->pending_path);
    free(tmp);
    free(text);
}

void fleet_pending_load(struct fleet *f)
{
    json_t *doc = f->pending_path ? json_load_file(f->pending_path, 0, NULL) : NULL;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "routes"), i, r)
    {
        const char *name = json_string_value(r);
        if (name && !fleet_pending_has(f, name) && f->npending < FLEET_MAX_PENDING) {
            char *s = strdup(name);
            if (s)
                f->pending[f->npending++] = s;
        }
    }
    const char *actor = json_string_value(json_object_get(doc, "actor"));
    snprintf(f->pending_actor, sizeof f->pending_actor, "%s", actor ? actor : "");
    if (f->npending)
        fleet_event(f, "store_pending_resumed", ",\"routes\":%zu", f->npending);
    json_decref(doc);
}

int fleet_pending_add(struct fleet *f, const char *route, const char *actor)
{
    if (!fleet_pending_has(f, route)) {
        char *r = f->npending < FLEET_MAX_PENDING ? strdup(route) : NULL;
        if (!r)
            return CUT_ENOMEM;
        f->pending[f->npending++] = r;
    }
    snprintf(f->pending_actor, sizeof f->pending_actor, "%s", actor ? actor : "");
    fleet_pending_save(f);
    return 0;
}

void fleet_pending_remove(struct fleet *f, const char *route)
{
    for (size_t i = 0; i < f->npending; i++) {
        if (strcmp(f->pending[i], route) == 0) {
            free(f->pending[i]);
            f->pending[i] = f->pending[--f->npending];
            fleet_pending_save(f);
            return;
        }
    }
}

void fleet_pending_flush(struct fleet *f)
{
    if (f->reachable && f->synced)
        fleet_pending_write(f);
    fleet_register(f);
}

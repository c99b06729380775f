/* fleet_view.c - what a range or a watch message says, laid over the state in use (see
 * fleet_internal.h). */
#include "control/fleet_internal.h"

#include <stdlib.h>
#include <string.h>

#include "control/etcd_codec.h"
#include "control/fleet_value.h"
#include "core/cut.h"

int fleet_kv_decode(const json_t *j, struct fleet_kv *kv)
{
    memset(kv, 0, sizeof *kv);
    size_t klen;
    const char *k = json_string_value(json_object_get(j, "key"));
    const char *v = json_string_value(json_object_get(j, "value"));
    if (!k || etcd_codec_unb64(k, &kv->key, &klen) < 0)
        return CUT_EINVAL;
    if (etcd_codec_unb64(v ? v : "", &kv->value, &kv->vlen) < 0 ||
        etcd_codec_int(j, "mod_revision", &kv->mod_revision) < 0) {
        free(kv->key);
        free(kv->value);
        return CUT_EINVAL;
    }
    return 0;
}

void fleet_kv_dispose(struct fleet_kv *kv)
{
    free(kv->key);
    free(kv->value);
}

static void invalid_value(struct fleet *f, const char *key, int64_t rev, const char *why)
{
    json_t *old = json_object_get(f->invalid, key);
    if (old && json_integer_value(json_object_get(old, "revision")) == rev)
        return;
    json_object_set_new(f->invalid, key,
                        json_pack("{s:I, s:s}", "revision", (json_int_t)rev, "error", why));
    json_t *k = json_string(key), *w = json_string(why);
    char *ks = k ? json_dumps(k, JSON_ENCODE_ANY) : NULL,
         *ws = w ? json_dumps(w, JSON_ENCODE_ANY) : NULL;
    fleet_event(f, "store_value_invalid", ",\"key\":%s,\"revision\":%lld,\"error\":%s",
                ks ? ks : "\"\"", (long long)rev, ws ? ws : "\"\"");
    free(ks);
    free(ws);
    json_decref(k);
    json_decref(w);
}

/* Whether a stored route has the pools this replica's configuration gives the route (the
 * configuration owns routes and pools; the store owns their runtime state). */
static int same_pools(const struct state_route *a, const struct state_route *b)
{
    if (a->npools != b->npools)
        return 0;
    for (size_t i = 0; i < a->npools; i++)
        if (strcmp(a->pools[i].name, b->pools[i].name) != 0)
            return 0;
    return 1;
}

/* Takes one key-value (deleted: a DELETE event) into v. */
void fleet_view_take(struct fleet *f, struct fleet_view *v, const struct state *cur,
                     struct fleet_kv *kv, int deleted)
{
    size_t np = strlen(f->prefix);
    if (strcmp(kv->key, f->key_gen) == 0) {
        uint64_t g;
        if (deleted)
            return;
        if (fleet_value_parse_generation(kv->value, kv->vlen, &g) < 0) {
            invalid_value(f, kv->key, kv->mod_revision, "not a generation value of this format");
            return;
        }
        json_object_del(f->invalid, kv->key);
        v->has_gen = 1;
        v->gen = g;
        v->gen_rev = kv->mod_revision;
        return;
    }
    if (fleet_plan_take(f, kv->key, kv->value, kv->vlen, deleted))
        return;
    if (strncmp(kv->key, f->history_prefix, strlen(f->history_prefix)) == 0) {
        const char *gen = kv->key + strlen(f->history_prefix);
        json_t *rec = deleted ? NULL : json_loadb(kv->value, kv->vlen, 0, NULL);
        if (json_is_object(rec))
            json_object_set(f->history, gen, rec);
        else
            json_object_del(f->history, gen);
        json_decref(rec);
        return;
    }
    if (strncmp(kv->key, f->replicas_prefix, strlen(f->replicas_prefix)) == 0) {
        const char *name = kv->key + strlen(f->replicas_prefix);
        json_t *reg = deleted ? NULL : json_loadb(kv->value, kv->vlen, 0, NULL);
        if (deleted)
            json_object_del(f->replicas, name);
        else if (json_is_object(reg))
            json_object_set(f->replicas, name, reg);
        json_decref(reg);
        return;
    }
    if (strncmp(kv->key, f->routes_prefix, strlen(f->routes_prefix)) != 0 || deleted) {
        (void)np;
        return; /* not ours to read; a deleted route is recreated from the configuration at
                 * the next start of a replica that has it */
    }
    const char *name = kv->key + strlen(f->routes_prefix);
    size_t idx = 0;
    while (idx < cur->nroutes && strcmp(cur->routes[idx].name, name) != 0)
        idx++;
    if (idx == cur->nroutes || idx >= CUT_ARRAY_LEN(v->docs))
        return; /* a route this replica's configuration does not have */
    struct state doc;
    char why[300];
    if (fleet_value_parse_route(name, kv->value, kv->vlen, &doc, why, sizeof why) < 0) {
        invalid_value(f, kv->key, kv->mod_revision, why);
        return;
    }
    if (!same_pools(&doc.routes[0], &cur->routes[idx])) {
        invalid_value(f, kv->key, kv->mod_revision,
                      "its pools differ from this replica's configuration");
        state_dispose(&doc);
        return;
    }
    json_object_del(f->invalid, kv->key);
    state_dispose(&v->docs[idx]);
    v->docs[idx] = doc;
    v->changed = 1;
}

void fleet_view_dispose(struct fleet_view *v)
{
    for (size_t i = 0; i < CUT_ARRAY_LEN(v->docs); i++)
        state_dispose(&v->docs[i]);
}

/* The state in use with the routes v has (except pending rollbacks), at generation gen.
 * Returns 0, or CUT_ENOMEM (out empty). */
int fleet_view_merge(struct fleet *f, const struct state *cur, const struct fleet_view *v,
                     uint64_t gen, struct state *out)
{
    struct state tmp = {.generation = gen, .nroutes = cur->nroutes};
    tmp.routes = calloc(cur->nroutes ? cur->nroutes : 1, sizeof *tmp.routes);
    if (!tmp.routes)
        return CUT_ENOMEM;
    for (size_t i = 0; i < cur->nroutes; i++) {
        int take = i < CUT_ARRAY_LEN(v->docs) && v->docs[i].nroutes == 1 &&
                   !fleet_pending_has(f, cur->routes[i].name);
        tmp.routes[i] = take ? v->docs[i].routes[0] : cur->routes[i]; /* shallow */
    }
    int rc = state_copy(out, &tmp);
    free(tmp.routes);
    return rc;
}

/* Reads a range reply into a view; returns the reply's revision (0 when it has none). */
int64_t fleet_view_from_range(struct fleet *f, const struct state *cur, json_t *reply,
                              struct fleet_view *v)
{
    int64_t rev = 0;
    etcd_codec_int(json_object_get(reply, "header"), "revision", &rev);
    json_object_clear(f->replicas);
    json_object_clear(f->leaders);
    json_object_clear(f->history);
    json_object_clear(f->counts);
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(reply, "kvs"), i, j)
    {
        struct fleet_kv kv;
        if (fleet_kv_decode(j, &kv) == 0) {
            fleet_view_take(f, v, cur, &kv, 0);
            fleet_kv_dispose(&kv);
        }
    }
    return rev;
}

/* state.c - the runtime state and its file format (see state.h and docs/control-protocol.md,
 * "Durable state").
 *
 * File shape (format 1):
 *
 *   {
 *     "format": 1,
 *     "generation": 42,
 *     "routes": {
 *       "api": {
 *         "pools": {
 *           "blue":  {"weight_bp": 9000, "stable_bp": 10000, "drained": [], "added": [], "removed":
 * []}, "green": {"weight_bp": 1000, "stable_bp": 0, "drained": ["10.0.0.7:8080"], ...}
 *         },
 *         "order": ["blue", "green"]
 *       }
 *     },
 *     "checksum": "<64 lowercase hex digits>"
 *   }
 *
 * A route may also hold "plan" (control/plan.c's object) and "cohort": {"countries": ["SG",
 * "MY"], "weights": {"blue": 5000, "green": 5000}} (1..16 distinct upper-case ISO 3166-1
 * alpha-2 codes; a weight in basis points for every pool of the route, summing to 10000). Both
 * are optional, so files without them still load (format 1).
 *
 * Pools are an object keyed by name (so a name appears once, and a path such as
 * "routes.api.pools.green.weight_bp" names a value) plus an "order" array that carries the pool
 * order, which the checksum covers (the canonical text sorts keys, so object order alone would
 * not be protected). "order" must name every pool exactly once. Routes keep the order they are
 * written in (jansson keeps insertion order), but route order carries no meaning.
 *
 * The checksum is SHA-256 over json_dumps(everything but "checksum", JSON_COMPACT |
 * JSON_SORT_KEYS), so it does not depend on the file's layout (we write it indented for people),
 * only on its content. Validation on load is strict: unknown keys, wrong types, out-of-range
 * weights, bad names, duplicate keys or entries are all rejected, and every problem found is
 * reported ("path: message; path: message"), except that a bad format version or a checksum
 * mismatch is reported alone (the rest cannot be trusted).
 *
 * Reading a document back (state_from_json) is control/state_load.c.
 * Control thread only; no globals.
 */
#include "control/state.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"
#include "core/text.h"


/* ---------------------------------------------------------------------------------------------
 * Memory: addresses, dispose, copy, lookups
 */

static void addrs_dispose(struct state_addrs *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

static int addrs_copy(struct state_addrs *dst, const struct state_addrs *src)
{
    dst->v = NULL;
    dst->n = 0;
    if (src->n == 0)
        return 0;
    dst->v = calloc(src->n, sizeof *dst->v);
    if (dst->v == NULL)
        return CUT_ENOMEM;
    for (size_t i = 0; i < src->n; i++) {
        dst->v[i] = strdup(src->v[i]);
        if (dst->v[i] == NULL) {
            dst->n = i;
            addrs_dispose(dst);
            return CUT_ENOMEM;
        }
    }
    dst->n = src->n;
    return 0;
}

static void pool_dispose(struct state_pool *p)
{
    addrs_dispose(&p->drained);
    addrs_dispose(&p->added);
    addrs_dispose(&p->removed);
}

void state_dispose(struct state *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nroutes; i++) {
        for (size_t j = 0; j < st->routes[i].npools && j < CFG_MAX_POOLS; j++)
            pool_dispose(&st->routes[i].pools[j]);
        free(st->routes[i].plan);
    }
    free(st->routes);
    memset(st, 0, sizeof *st);
}

int state_copy(struct state *dst, const struct state *src)
{
    memset(dst, 0, sizeof *dst);
    dst->generation = src->generation;
    if (src->nroutes == 0)
        return 0;
    dst->routes = calloc(src->nroutes, sizeof *dst->routes);
    if (dst->routes == NULL)
        return CUT_ENOMEM;
    for (size_t i = 0; i < src->nroutes; i++) {
        const struct state_route *sr = &src->routes[i];
        struct state_route *dr = &dst->routes[i];
        memcpy(dr->name, sr->name, sizeof dr->name);
        dr->cohort = sr->cohort;
        dst->nroutes = i + 1; /* so state_dispose frees what was copied so far */
        if (sr->plan && !(dr->plan = strdup(sr->plan))) {
            state_dispose(dst);
            return CUT_ENOMEM;
        }
        for (size_t j = 0; j < sr->npools && j < CFG_MAX_POOLS; j++) {
            const struct state_pool *sp = &sr->pools[j];
            struct state_pool *dp = &dr->pools[j];
            memcpy(dp->name, sp->name, sizeof dp->name);
            dp->weight_bp = sp->weight_bp;
            dp->stable_bp = sp->stable_bp;
            dr->npools = j + 1;
            if (addrs_copy(&dp->drained, &sp->drained) != 0 ||
                addrs_copy(&dp->added, &sp->added) != 0 ||
                addrs_copy(&dp->removed, &sp->removed) != 0) {
                state_dispose(dst);
                return CUT_ENOMEM;
            }
        }
    }
    return 0;
}

struct state_route *state_route_find(struct state *st, const char *route)
{
    for (size_t i = 0; i < st->nroutes; i++)
        if (strncmp(st->routes[i].name, route, STATE_MAX_NAME) == 0)
            return &st->routes[i];
    return NULL;
}

struct state_pool *state_pool_find(struct state_route *r, const char *pool)
{
    for (size_t i = 0; i < r->npools && i < CFG_MAX_POOLS; i++)
        if (strncmp(r->pools[i].name, pool, STATE_MAX_NAME) == 0)
            return &r->pools[i];
    return NULL;
}

int state_addrs_has(const struct state_addrs *a, const char *addr)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], addr) == 0)
            return 1;
    return 0;
}

int state_addrs_add(struct state_addrs *a, const char *addr)
{
    if (state_addrs_has(a, addr))
        return 0;
    char *copy = strdup(addr);
    if (copy == NULL)
        return CUT_ENOMEM;
    char **v = realloc(a->v, (a->n + 1) * sizeof *v);
    if (v == NULL) {
        free(copy);
        return CUT_ENOMEM;
    }
    v[a->n++] = copy;
    a->v = v;
    return 0;
}

void state_addrs_remove(struct state_addrs *a, const char *addr)
{
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->v[i], addr) == 0) {
            free(a->v[i]);
            memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof *a->v);
            a->n--;
            if (a->n == 0) {
                free(a->v);
                a->v = NULL;
            }
            return;
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Serialisation
 */

/* A name stored in a fixed array: never read past it even if it is not terminated. */
static json_t *name_json(const char *name)
{
    return json_stringn(name, strnlen(name, STATE_MAX_NAME));
}

static int put(json_t *obj, const char *key, json_t *val)
{
    return val == NULL ? -1 : json_object_set_new(obj, key, val);
}

static json_t *addrs_json(const struct state_addrs *a)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    for (size_t i = 0; i < a->n; i++) {
        json_t *s = json_string(a->v[i]);
        if (s == NULL || json_array_append_new(arr, s) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *pool_json(const struct state_pool *p)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (put(o, "weight_bp", json_integer((json_int_t)p->weight_bp)) != 0 ||
        put(o, "stable_bp", json_integer((json_int_t)p->stable_bp)) != 0 ||
        put(o, "drained", addrs_json(&p->drained)) != 0 ||
        put(o, "added", addrs_json(&p->added)) != 0 ||
        put(o, "removed", addrs_json(&p->removed)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *cohort_json(const struct state_route *r)
{
    json_t *o = json_object(), *cc = json_array(), *w = json_object();
    if (o == NULL || cc == NULL || w == NULL)
        goto fail;
    for (unsigned i = 0; i < r->cohort.ncountries && i < STATE_COHORT_MAX; i++)
        if (json_array_append_new(cc, json_stringn(r->cohort.countries[i], 2)) != 0)
            goto fail;
    for (size_t j = 0; j < r->npools && j < CFG_MAX_POOLS; j++)
        if (json_object_setn_new(w, r->pools[j].name, strnlen(r->pools[j].name, STATE_MAX_NAME),
                                 json_integer((json_int_t)r->cohort.weights_bp[j])) != 0)
            goto fail;
    if (json_object_set_new(o, "countries", cc) != 0) {
        cc = NULL;
        goto fail;
    }
    cc = NULL;
    if (json_object_set_new(o, "weights", w) != 0) {
        w = NULL;
        goto fail;
    }
    return o;
fail:
    json_decref(o);
    json_decref(cc);
    json_decref(w);
    return NULL;
}

static json_t *route_json(const struct state_route *r)
{
    json_t *o = json_object(), *pools = json_object(), *order = json_array();
    if (o == NULL || pools == NULL || order == NULL)
        goto fail;
    for (size_t j = 0; j < r->npools && j < CFG_MAX_POOLS; j++) {
        const struct state_pool *p = &r->pools[j];
        json_t *pj = pool_json(p);
        if (pj == NULL ||
            json_object_setn_new(pools, p->name, strnlen(p->name, STATE_MAX_NAME), pj) != 0)
            goto fail;
        if (json_array_append_new(order, name_json(p->name)) != 0)
            goto fail;
    }
    if (json_object_set_new(o, "pools", pools) != 0) {
        pools = NULL;
        goto fail;
    }
    pools = NULL;
    if (json_object_set_new(o, "order", order) != 0) {
        order = NULL;
        goto fail;
    }
    if (r->cohort.ncountries > 0) {
        json_t *c = cohort_json(r);
        if (c == NULL || json_object_set_new(o, "cohort", c) != 0)
            return json_decref(o), NULL;
    }
    if (r->plan) {
        json_t *plan = json_loads(r->plan, 0, NULL);
        if (plan == NULL || json_object_set_new(o, "plan", plan) != 0)
            return json_decref(o), NULL;
    }
    return o;
fail:
    json_decref(o);
    json_decref(pools);
    json_decref(order);
    return NULL;
}

/* Everything but the checksum. */
static json_t *state_tree(const struct state *st)
{
    json_t *root = json_object(), *routes = json_object();
    if (root == NULL || routes == NULL)
        goto fail;
    if (put(root, "format", json_integer(STATE_FORMAT)) != 0 ||
        put(root, "generation", json_integer((json_int_t)st->generation)) != 0)
        goto fail;
    for (size_t i = 0; i < st->nroutes; i++) {
        const struct state_route *r = &st->routes[i];
        json_t *rj = route_json(r);
        if (rj == NULL ||
            json_object_setn_new(routes, r->name, strnlen(r->name, STATE_MAX_NAME), rj) != 0)
            goto fail;
    }
    if (json_object_set_new(root, "routes", routes) != 0) {
        routes = NULL;
        goto fail;
    }
    return root;
fail:
    json_decref(root);
    json_decref(routes);
    return NULL;
}

int state_checksum_hex(const json_t *tree, char hex[65])
{
    char *canon = json_dumps(tree, JSON_COMPACT | JSON_SORT_KEYS);
    if (canon == NULL)
        return CUT_ENOMEM;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL);
    free(canon);
    if (!ok || mdlen != 32)
        return CUT_ENOMEM;
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return 0;
}

char *state_to_json(const struct state *st)
{
    json_t *root = state_tree(st);
    char hex[65];
    char *text = NULL;
    if (root == NULL)
        return NULL;
    if (state_checksum_hex(root, hex) == 0 && put(root, "checksum", json_string(hex)) == 0)
        text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    return text;
}

/* which: 0 the weights, 1 the stable weights, 2 the cohort's weights ({} without a cohort). */
static void weights_json(const struct state_route *r, int which, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "{");
    for (size_t p = 0; (which < 2 || r->cohort.ncountries) && p < r->npools && o < cap; p++) {
        char pct[16];
        const struct state_pool *sp = &r->pools[p];
        text_percent(which == 2 ? r->cohort.weights_bp[p] : which ? sp->stable_bp : sp->weight_bp,
                     pct, sizeof pct);
        o += (size_t)snprintf(buf + o, cap - o, "%s\"%s\":%s", p ? "," : "", sp->name, pct);
    }
    if (o < cap)
        snprintf(buf + o, cap - o, "}");
}

void state_weights_json(const struct state_route *r, int stable, char *buf, size_t cap)
{
    weights_json(r, stable ? 1 : 0, buf, cap);
}

void state_cohort_weights_json(const struct state_route *r, char *buf, size_t cap)
{
    weights_json(r, 2, buf, cap);
}

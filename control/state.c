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

#define STATE_MAX_BP 10000

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

/* hex must hold 65 bytes. Returns 0 or -1. */
static int checksum_hex(const json_t *tree, char hex[65])
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
    if (checksum_hex(root, hex) == 0 && put(root, "checksum", json_string(hex)) == 0)
        text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    return text;
}

/* ---------------------------------------------------------------------------------------------
 * Parsing and validation
 */

/* Problems found so far, joined with "; " into the caller's buffer (truncated to fit). */
struct problems {
    char *buf;
    size_t cap, len;
    int n;
};

__attribute__((format(printf, 3, 4))) static void problem(struct problems *pr, const char *path,
                                                          const char *fmt, ...)
{
    pr->n++;
    if (pr->buf == NULL || pr->cap == 0 || pr->len + 1 >= pr->cap)
        return;
    int w = snprintf(pr->buf + pr->len, pr->cap - pr->len, "%s%s%s", pr->n > 1 ? "; " : "", path,
                     *path ? ": " : "");
    if (w < 0)
        return;
    pr->len += (size_t)w;
    if (pr->len + 1 >= pr->cap) {
        pr->len = pr->cap - 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    w = vsnprintf(pr->buf + pr->len, pr->cap - pr->len, fmt, ap);
    va_end(ap);
    if (w >= 0)
        pr->len += (size_t)w;
    if (pr->len >= pr->cap)
        pr->len = pr->cap - 1;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* A key or name: non-empty, shorter than STATE_MAX_NAME, no NUL inside. */
static bool name_ok(const char *path, const char *name, size_t len, struct problems *pr)
{
    if (len == 0) {
        problem(pr, path, "name must not be empty");
        return false;
    }
    if (len >= STATE_MAX_NAME) {
        problem(pr, path, "name must be shorter than %d bytes (it has %zu)", STATE_MAX_NAME, len);
        return false;
    }
    if (strlen(name) != len) {
        problem(pr, path, "name must not contain a NUL character");
        return false;
    }
    return true;
}

static void check_keys(const json_t *obj, const char *path, const char *const *allowed,
                       struct problems *pr)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool known = false;
        for (const char *const *a = allowed; *a != NULL; a++)
            if (strcmp(key, *a) == 0)
                known = true;
        if (!known)
            problem(pr, path, "unknown key \"%s\"", key);
    }
}

static int load_weight(const json_t *pool, const char *path, const char *key, unsigned *out,
                       struct problems *pr)
{
    char p[STATE_MAX_NAME * 2 + 64];
    json_t *v = json_object_get(pool, key);
    snprintf(p, sizeof p, "%s.%s", path, key);
    if (v == NULL) {
        problem(pr, p, "missing");
        return CUT_EINVAL;
    }
    if (!json_is_integer(v)) {
        problem(pr, p, "must be an integer, not %s", type_name(v));
        return CUT_EINVAL;
    }
    json_int_t w = json_integer_value(v);
    if (w < 0 || w > STATE_MAX_BP) {
        problem(pr, p, "must be 0..%d (got %lld)", STATE_MAX_BP, (long long)w);
        return CUT_EINVAL;
    }
    *out = (unsigned)w;
    return 0;
}

static int load_addrs(const json_t *pool, const char *path, const char *key,
                      struct state_addrs *out, struct problems *pr)
{
    char p[STATE_MAX_NAME * 2 + 96];
    json_t *arr = json_object_get(pool, key);
    snprintf(p, sizeof p, "%s.%s", path, key);
    if (arr == NULL) {
        problem(pr, p, "missing");
        return 0;
    }
    if (!json_is_array(arr)) {
        problem(pr, p, "must be an array of \"host:port\" strings, not %s", type_name(arr));
        return 0;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        char ip[sizeof p + 24];
        snprintf(ip, sizeof ip, "%s[%zu]", p, i);
        if (!json_is_string(v)) {
            problem(pr, ip, "must be a string, not %s", type_name(v));
            continue;
        }
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 0) {
            problem(pr, ip, "must not be empty");
            continue;
        }
        if (strlen(s) != len) {
            problem(pr, ip, "must not contain a NUL character");
            continue;
        }
        if (state_addrs_has(out, s)) {
            problem(pr, ip, "duplicate address \"%s\"", s);
            continue;
        }
        if (state_addrs_add(out, s) != 0)
            return CUT_ENOMEM;
    }
    return 0;
}

static int load_pool(const json_t *pj, const char *path, struct state_pool *p, struct problems *pr)
{
    static const char *const keys[] = {"weight_bp", "stable_bp", "drained",
                                       "added",     "removed",   NULL};
    if (!json_is_object(pj)) {
        problem(pr, path, "must be an object, not %s", type_name(pj));
        return 0;
    }
    check_keys(pj, path, keys, pr);
    load_weight(pj, path, "weight_bp", &p->weight_bp, pr);
    load_weight(pj, path, "stable_bp", &p->stable_bp, pr);
    if (load_addrs(pj, path, "drained", &p->drained, pr) != 0 ||
        load_addrs(pj, path, "added", &p->added, pr) != 0 ||
        load_addrs(pj, path, "removed", &p->removed, pr) != 0)
        return CUT_ENOMEM;
    return 0;
}

int state_country_ok(const char *text, size_t len)
{
    return len == 2 && text[0] >= 'A' && text[0] <= 'Z' && text[1] >= 'A' && text[1] <= 'Z';
}

int state_cohort_has(const struct state_cohort *c, const char *cc)
{
    for (unsigned i = 0; i < c->ncountries && i < STATE_COHORT_MAX; i++)
        if (c->countries[i][0] == cc[0] && c->countries[i][1] == cc[1] && cc[1] != '\0' &&
            cc[2] == '\0')
            return 1;
    return 0;
}

/* The route's cohort (its pools are loaded): countries and a weight for every pool. */
static void load_cohort(const json_t *cj, const char *cpath, struct state_route *r,
                        struct problems *pr)
{
    static const char *const keys[] = {"countries", "weights", NULL};
    char path[STATE_MAX_NAME * 3 + 96];
    struct state_cohort c = {0};
    int before = pr->n;

    if (!json_is_object(cj)) {
        problem(pr, cpath, "must be an object, not %s", type_name(cj));
        return;
    }
    check_keys(cj, cpath, keys, pr);
    json_t *cc = json_object_get(cj, "countries");
    snprintf(path, sizeof path, "%s.countries", cpath);
    if (cc == NULL) {
        problem(pr, path, "missing");
    } else if (!json_is_array(cc) || json_array_size(cc) == 0 ||
               json_array_size(cc) > STATE_COHORT_MAX) {
        problem(pr, path, "must be an array of 1 to %d country codes", STATE_COHORT_MAX);
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(cc, i, v)
        {
            char ip[sizeof path + 24];
            snprintf(ip, sizeof ip, "%s[%zu]", path, i);
            if (!json_is_string(v) || !state_country_ok(json_string_value(v), json_string_length(v))) {
                problem(pr, ip, "must be an ISO 3166-1 alpha-2 code in upper case (\"SG\")");
                continue;
            }
            if (state_cohort_has(&c, json_string_value(v))) {
                problem(pr, ip, "country \"%s\" listed twice", json_string_value(v));
                continue;
            }
            memcpy(c.countries[c.ncountries++], json_string_value(v), 3);
        }
    }
    json_t *w = json_object_get(cj, "weights");
    snprintf(path, sizeof path, "%s.weights", cpath);
    if (w == NULL) {
        problem(pr, path, "missing");
    } else if (!json_is_object(w)) {
        problem(pr, path, "must be an object keyed by pool name, not %s", type_name(w));
    } else {
        unsigned long sum = 0;
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)w, key, v)
        {
            int found = 0;
            for (size_t j = 0; j < r->npools; j++)
                found |= strcmp(r->pools[j].name, key) == 0;
            if (!found)
                problem(pr, path, "names pool \"%.*s\" which is not in pools", STATE_MAX_NAME,
                        key);
        }
        for (size_t j = 0; j < r->npools && j < CFG_MAX_POOLS; j++) {
            if (load_weight(w, path, r->pools[j].name, &c.weights_bp[j], pr) == 0)
                sum += c.weights_bp[j];
        }
        if (pr->n == before && sum != STATE_MAX_BP)
            problem(pr, path, "must sum to %d (got %lu)", STATE_MAX_BP, sum);
    }
    if (pr->n == before)
        r->cohort = c;
}

static int load_route(const json_t *rj, const char *rpath, struct state_route *r,
                      struct problems *pr)
{
    static const char *const keys[] = {"pools", "order", "plan", "cohort", NULL};
    char path[STATE_MAX_NAME * 2 + 64];

    if (!json_is_object(rj)) {
        problem(pr, rpath, "must be an object, not %s", type_name(rj));
        return 0;
    }
    check_keys(rj, rpath, keys, pr);

    json_t *pools = json_object_get(rj, "pools");
    json_t *order = json_object_get(rj, "order");
    snprintf(path, sizeof path, "%s.pools", rpath);
    if (pools == NULL) {
        problem(pr, path, "missing");
        return 0;
    }
    if (!json_is_object(pools)) {
        problem(pr, path, "must be an object keyed by pool name, not %s", type_name(pools));
        return 0;
    }
    if (json_object_size(pools) > CFG_MAX_POOLS) {
        problem(pr, path, "at most %d pools (got %zu)", CFG_MAX_POOLS, json_object_size(pools));
        return 0;
    }

    /* Pool names as keys. */
    bool names_ok = true;
    for (void *it = json_object_iter(pools); it != NULL; it = json_object_iter_next(pools, it)) {
        const char *key = json_object_iter_key(it);
        char kp[sizeof path + STATE_MAX_NAME + 8];
        snprintf(kp, sizeof kp, "%s.%.*s", path, STATE_MAX_NAME, key);
        if (!name_ok(kp, key, json_object_iter_key_len(it), pr))
            names_ok = false;
    }

    /* The order: every pool exactly once. */
    char opath[sizeof path];
    snprintf(opath, sizeof opath, "%s.order", rpath);
    if (order == NULL) {
        problem(pr, opath, "missing");
        return 0;
    }
    if (!json_is_array(order)) {
        problem(pr, opath, "must be an array of pool names, not %s", type_name(order));
        return 0;
    }
    bool order_ok = true;
    size_t i;
    json_t *v;
    json_array_foreach(order, i, v)
    {
        char ip[sizeof opath + 24];
        snprintf(ip, sizeof ip, "%s[%zu]", opath, i);
        if (!json_is_string(v)) {
            problem(pr, ip, "must be a string, not %s", type_name(v));
            order_ok = false;
            continue;
        }
        const char *name = json_string_value(v);
        if (strlen(name) != json_string_length(v)) {
            problem(pr, ip, "must not contain a NUL character");
            order_ok = false;
            continue;
        }
        if (json_object_get(pools, name) == NULL) {
            problem(pr, ip, "names pool \"%.*s\" which is not in pools", STATE_MAX_NAME, name);
            order_ok = false;
            continue;
        }
        for (size_t k = 0; k < i; k++) {
            if (json_equal(json_array_get(order, k), v)) {
                problem(pr, ip, "pool \"%.*s\" listed twice", STATE_MAX_NAME, name);
                order_ok = false;
                break;
            }
        }
    }
    if (order_ok && json_array_size(order) != json_object_size(pools)) {
        problem(pr, opath, "must list every pool exactly once (%zu listed, %zu pools)",
                json_array_size(order), json_object_size(pools));
        order_ok = false;
    }
    if (!order_ok || !names_ok)
        return 0; /* pools cannot be placed; the whole file is refused anyway */

    json_array_foreach(order, i, v)
    {
        const char *name = json_string_value(v);
        struct state_pool *p = &r->pools[i];
        char ppath[sizeof path + STATE_MAX_NAME + 8];
        memcpy(p->name, name, strlen(name) + 1);
        r->npools = i + 1;
        snprintf(ppath, sizeof ppath, "%s.%s", path, name);
        int rc = load_pool(json_object_get(pools, name), ppath, p, pr);
        if (rc != 0)
            return rc;
    }
    json_t *cohort = json_object_get(rj, "cohort");
    if (cohort != NULL) {
        snprintf(path, sizeof path, "%s.cohort", rpath);
        load_cohort(cohort, path, r, pr);
    }
    json_t *plan = json_object_get(rj, "plan");
    if (plan != NULL) {
        snprintf(path, sizeof path, "%s.plan", rpath);
        if (!json_is_object(plan)) {
            problem(pr, path, "must be an object, not %s", type_name(plan));
            return 0;
        }
        r->plan = json_dumps(plan, JSON_COMPACT | JSON_SORT_KEYS);
        if (r->plan == NULL)
            return CUT_ENOMEM;
    }
    return 0;
}

static int load_tree(const json_t *root, struct state *out, struct problems *pr)
{
    static const char *const keys[] = {"format", "generation", "routes", "checksum", NULL};
    check_keys(root, "", keys, pr);

    json_t *gen = json_object_get(root, "generation");
    if (gen == NULL)
        problem(pr, "generation", "missing");
    else if (!json_is_integer(gen))
        problem(pr, "generation", "must be an integer, not %s", type_name(gen));
    else if (json_integer_value(gen) < 0)
        problem(pr, "generation", "must not be negative");
    else
        out->generation = (uint64_t)json_integer_value(gen);

    json_t *routes = json_object_get(root, "routes");
    if (routes == NULL) {
        problem(pr, "routes", "missing");
        return 0;
    }
    if (!json_is_object(routes)) {
        problem(pr, "routes", "must be an object keyed by route name, not %s", type_name(routes));
        return 0;
    }
    size_t n = json_object_size(routes);
    if (n == 0)
        return 0;
    out->routes = calloc(n, sizeof *out->routes);
    if (out->routes == NULL)
        return CUT_ENOMEM;
    for (void *it = json_object_iter(routes); it != NULL; it = json_object_iter_next(routes, it)) {
        const char *key = json_object_iter_key(it);
        char path[STATE_MAX_NAME + 16];
        snprintf(path, sizeof path, "routes.%.*s", STATE_MAX_NAME, key);
        if (!name_ok(path, key, json_object_iter_key_len(it), pr))
            continue;
        struct state_route *r = &out->routes[out->nroutes++];
        memcpy(r->name, key, strlen(key) + 1);
        int rc = load_route(json_object_iter_value(it), path, r, pr);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static bool is_hex64(const char *s, size_t len)
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int state_from_json(const char *text, size_t len, struct state *out, char *err, size_t cap)
{
    json_error_t jerr;
    int rc = CUT_EINVAL;

    memset(out, 0, sizeof *out);
    if (err != NULL && cap > 0)
        err[0] = '\0';

    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        text_error(err, cap, "not valid JSON (line %d, column %d: %s)%s", jerr.line, jerr.column,
                jerr.text,
                json_error_code(&jerr) == json_error_premature_end_of_input
                    ? ": the file is truncated"
                    : "");
        return CUT_EINVAL;
    }
    if (!json_is_object(root)) {
        text_error(err, cap, "the state must be a JSON object, not %s", type_name(root));
        goto out;
    }

    json_t *fmt = json_object_get(root, "format");
    if (fmt == NULL) {
        text_error(err, cap, "format: missing (not a cutover state file?)");
        goto out;
    }
    if (!json_is_integer(fmt) || json_integer_value(fmt) != STATE_FORMAT) {
        if (json_is_integer(fmt))
            text_error(err, cap, "format: unsupported version %lld (this build reads %d)",
                    (long long)json_integer_value(fmt), STATE_FORMAT);
        else
            text_error(err, cap, "format: must be the integer %d, not %s", STATE_FORMAT,
                    type_name(fmt));
        goto out;
    }

    json_t *sum = json_object_get(root, "checksum");
    if (sum == NULL) {
        text_error(err, cap, "checksum: missing");
        goto out;
    }
    if (!json_is_string(sum) || !is_hex64(json_string_value(sum), json_string_length(sum))) {
        text_error(err, cap, "checksum: must be 64 lowercase hex digits (SHA-256)");
        goto out;
    }
    char want[65], got[65];
    memcpy(want, json_string_value(sum), sizeof want);
    json_object_del(root, "checksum");
    if (checksum_hex(root, got) != 0) {
        rc = CUT_ENOMEM;
        text_error(err, cap, "out of memory while checking the checksum");
        goto out;
    }
    if (strcmp(want, got) != 0) {
        text_error(err, cap, "checksum mismatch: the file was modified or truncated");
        goto out;
    }

    struct problems pr = {err, cap, 0, 0};
    rc = load_tree(root, out, &pr);
    if (rc == CUT_ENOMEM) {
        text_error(err, cap, "out of memory while loading the state");
    } else if (pr.n > 0) {
        rc = CUT_EINVAL;
    } else {
        rc = 0;
    }
out:
    json_decref(root);
    if (rc != 0)
        state_dispose(out);
    return rc;
}

void state_weights_json(const struct state_route *r, int stable, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "{");
    for (size_t p = 0; p < r->npools && o < cap; p++) {
        char pct[16];
        text_percent(stable ? r->pools[p].stable_bp : r->pools[p].weight_bp, pct, sizeof pct);
        o += (size_t)snprintf(buf + o, cap - o, "%s\"%s\":%s", p ? "," : "", r->pools[p].name, pct);
    }
    if (o < cap)
        snprintf(buf + o, cap - o, "}");
}

void state_cohort_weights_json(const struct state_route *r, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "{");
    for (size_t p = 0; r->cohort.ncountries && p < r->npools && o < cap; p++) {
        char pct[16];
        text_percent(r->cohort.weights_bp[p], pct, sizeof pct);
        o += (size_t)snprintf(buf + o, cap - o, "%s\"%s\":%s", p ? "," : "", r->pools[p].name, pct);
    }
    if (o < cap)
        snprintf(buf + o, cap - o, "}");
}

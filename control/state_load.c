/* state_load.c - reading the runtime state back (state_from_json): every problem found, with
 * its JSON path, and the checksum verified (see state.h). */
#include "control/state.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"
#include "core/text.h"

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
            if (!json_is_string(v) ||
                !state_country_ok(json_string_value(v), json_string_length(v))) {
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
                problem(pr, path, "names pool \"%.*s\" which is not in pools", STATE_MAX_NAME, key);
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
    if (state_checksum_hex(root, got) != 0) {
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

/* cfg_types_route.c - the setters of listeners' TLS, routes, pools, weights, stickiness,
 * overrides, health checks, outlier detection; and the dump and free hooks of their special
 * values (ALPN lists, pools keyed by name, weights as percentages, sticky, status ranges).
 *
 * Each setter reports every problem at the current JSON path and never stops early (see
 * cfg_parse.c). The tables that name them are in cfg_schema.c.
 */
#include "config/cfg_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"
#include "core/text.h"

#define PATH_PREFIX_MAX 1024

/* A certificate object holds either "cert" and "key", or "pem" (key and chain in one file). */
static void check_cert_keys(struct cfg_pctx *c, const json_t *v)
{
    bool cert = json_object_get(v, "cert") != NULL, key = json_object_get(v, "key") != NULL;
    bool pem = json_object_get(v, "pem") != NULL;
    if (pem ? (cert || key) : !(cert && key))
        cfg_parse_error(
            c, "must have either \"cert\" and \"key\", or \"pem\" (key and chain in one file)");
}

void cfg_types_set_tls_certs(struct cfg_pctx *c, const json_t *v, void *base,
                             const struct cfg_field *f)
{
    struct cfg_tls *t = base;
    if (!json_is_array(v)) {
        cfg_parse_error(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > CFG_TLS_MAX_CERTS) {
        cfg_parse_error(c, "must have between 1 and %d certificates", CFG_TLS_MAX_CERTS);
        if (n == 0)
            return;
    }
    t->certs = cfg_parse_calloc(c, n, sizeof(*t->certs));
    if (t->certs == NULL)
        return;
    t->ncerts = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = cfg_parse_path_index(c, i);
        if (cfg_parse_object(c, e, f->sub, &t->certs[i]))
            check_cert_keys(c, e);
        cfg_parse_path_pop(c, old);
    }
}

void cfg_types_set_tls_version(struct cfg_pctx *c, const json_t *v, void *base,
                               const struct cfg_field *f)
{
    unsigned *dst = cfg_at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s != NULL && strcmp(s, "1.2") == 0)
        *dst = 12;
    else if (s != NULL && strcmp(s, "1.3") == 0)
        *dst = 13;
    else
        cfg_parse_error(c, "must be \"1.2\" or \"1.3\" (older versions are not offered)");
}

void cfg_types_set_alpn(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    (void)f;
    struct cfg_tls *t = base;
    if (!json_is_array(v)) {
        cfg_parse_error(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n == 0) {
        cfg_parse_error(c, "must not be empty");
        return;
    }
    t->nalpn = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = cfg_parse_path_index(c, i);
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        enum cfg_alpn a = 0;
        if (s != NULL && strcmp(s, "h2") == 0)
            a = CFG_ALPN_H2;
        else if (s != NULL && strcmp(s, "http/1.1") == 0)
            a = CFG_ALPN_HTTP11;
        bool dup = false;
        for (size_t k = 0; k < t->nalpn; k++)
            dup = dup || t->alpn[k] == a;
        if (a == 0)
            cfg_parse_error(c, "unsupported protocol (only \"h2\" and \"http/1.1\")");
        else if (dup)
            cfg_parse_error(c, "duplicate protocol");
        else if (t->nalpn < CFG_TLS_MAX_ALPN)
            t->alpn[t->nalpn++] = a;
        cfg_parse_path_pop(c, old);
    }
}

/* The tls object, plus the rules between its keys (they stay here, not in cfg_validate.c:
 * they depend on which keys were written, e.g. a "crl" or "client_ca" key that was malformed,
 * which the struct does not record). With CFG_F_ADMIN (the admin API's tls), client
 * certificates are required: client_auth defaults to "required" and may not say anything else
 * (bank rule: no unauthenticated remote control), and ALPN offers HTTP/1.1 only. */
void cfg_types_set_tls(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    struct cfg_tls **dst = cfg_at(base, f->off);
    struct cfg_tls *t = cfg_parse_calloc(c, 1, sizeof(*t));
    if (t == NULL)
        return;
    *dst = t;
    bool admin = (f->flags & CFG_F_ADMIN) != 0;
    cfg_parse_defaults(c, f->sub, t);
    if (admin)
        t->client_auth = CFG_CLIENT_AUTH_REQUIRED;
    t->alpn[0] = CFG_ALPN_HTTP11; /* the default list */
    t->nalpn = 1;
    if (!cfg_parse_object(c, v, f->sub, t))
        return;
    if (admin && t->client_auth != CFG_CLIENT_AUTH_REQUIRED) {
        size_t old = cfg_parse_path_key(c, "client_auth");
        cfg_parse_error(c, "the admin API requires client certificates: must be \"required\"");
        cfg_parse_path_pop(c, old);
        t->client_auth = CFG_CLIENT_AUTH_REQUIRED; /* so the rules below are not repeated */
    }
    if (admin) {
        for (size_t i = 0; i < t->nalpn; i++) {
            if (t->alpn[i] != CFG_ALPN_HTTP11) {
                size_t old = cfg_parse_path_key(c, "alpn");
                cfg_parse_error(c, "the admin API speaks HTTP/1.1 only: must be [\"http/1.1\"]");
                cfg_parse_path_pop(c, old);
                break;
            }
        }
    }
    if (t->client_auth != CFG_CLIENT_AUTH_NONE && json_object_get(v, "client_ca") == NULL)
        cfg_parse_error(
            c, admin ? "\"client_ca\" is required: the admin API verifies client certificates"
                     : "\"client_ca\" is required when client_auth is \"optional\" or "
                       "\"required\"");
    if (t->client_auth == CFG_CLIENT_AUTH_NONE && json_object_get(v, "crl") != NULL) {
        size_t old = cfg_parse_path_key(c, "crl");
        cfg_parse_error(c, "a CRL needs client_auth \"optional\" or \"required\"");
        cfg_parse_path_pop(c, old);
    }
}

void cfg_types_set_listeners(struct cfg_pctx *c, const json_t *v, void *base,
                             const struct cfg_field *f)
{
    struct cfg *cfg = base;
    if (!json_is_array(v)) {
        cfg_parse_error(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > CFG_MAX_LISTENERS)
        cfg_parse_error(c, "must have between 1 and %d listeners", CFG_MAX_LISTENERS);
    cfg->listeners = cfg_parse_calloc(c, n, sizeof(*cfg->listeners));
    if (cfg->listeners == NULL)
        return;
    cfg->nlisteners = n;
    for (size_t i = 0; i < n; i++) {
        struct cfg_listener *l = &cfg->listeners[i];
        const json_t *e = json_array_get(v, i);
        size_t old = cfg_parse_path_index(c, i);
        cfg_parse_defaults(c, f->sub, l);
        if (cfg_parse_object(c, e, f->sub, l) && json_object_get(e, "name") == NULL) {
            char name[32];
            snprintf(name, sizeof(name), "listener%zu", i);
            l->name = cfg_parse_strdup(c, name);
        }
        cfg_parse_path_pop(c, old);
    }
}

/* ---- routes ---- */

void cfg_types_set_hosts(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    (void)f;
    struct cfg_route *r = base;
    if (!json_is_array(v)) {
        cfg_parse_error(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    r->hosts = cfg_parse_calloc(c, n, sizeof(*r->hosts));
    if (r->hosts == NULL)
        return;
    r->nhosts = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = cfg_parse_path_index(c, i);
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        if (s == NULL) {
            cfg_parse_error(c, "expected a string");
        } else if (strcmp(s, "*") == 0 ||
                   cfg_types_valid_hostname(strncmp(s, "*.", 2) == 0 ? s + 2 : s)) {
            r->hosts[i] = cfg_parse_strdup(c, s);
            if (r->hosts[i] != NULL)
                cfg_types_lower(r->hosts[i]);
        } else {
            cfg_parse_error(c, "expected a host name, \"*.suffix\" or \"*\"");
        }
        cfg_parse_path_pop(c, old);
    }
}

void cfg_types_set_path_prefix(struct cfg_pctx *c, const json_t *v, void *base,
                               const struct cfg_field *f)
{
    char **dst = cfg_at(base, f->off);
    cfg_types_set_str(dst, NULL);
    if (!json_is_string(v)) {
        cfg_parse_error(c, "expected a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (s[0] != '/') {
        cfg_parse_error(c, "must start with \"/\"");
        return;
    }
    if (n > PATH_PREFIX_MAX) {
        cfg_parse_error(c, "must be at most %d characters", PATH_PREFIX_MAX);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f) {
            cfg_parse_error(c, "must not contain spaces or control characters");
            return;
        }
        if (ch == '?' || ch == '#') {
            cfg_parse_error(c, "must not contain \"?\" or \"#\"");
            return;
        }
    }
    *dst = cfg_parse_strdup(c, s);
}

void cfg_types_set_endpoints(struct cfg_pctx *c, const json_t *v, void *base,
                             const struct cfg_field *f)
{
    (void)f;
    struct cfg_pool *p = base;
    if (!json_is_array(v)) {
        cfg_parse_error(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > 256)
        cfg_parse_error(c, "must have between 1 and 256 endpoints");
    p->endpoints = cfg_parse_calloc(c, n, sizeof(*p->endpoints));
    if (p->endpoints == NULL)
        return;
    p->nendpoints = n;
    for (size_t i = 0; i < n; i++) {
        struct cfg_endpoint *ep = &p->endpoints[i];
        const json_t *e = json_array_get(v, i);
        size_t old = cfg_parse_path_index(c, i);
        const char *err;
        if (!json_is_string(e))
            cfg_parse_error(c, "expected a string");
        else if ((err =
                      cfg_types_parse_hostport(json_string_value(e), false, &ep->host, &ep->port)))
            cfg_parse_error(c, "%s", err);
        else
            ep->address = cfg_parse_strdup(c, json_string_value(e));
        cfg_parse_path_pop(c, old);
    }
}

void cfg_types_set_server_name(struct cfg_pctx *c, const json_t *v, void *base,
                               const struct cfg_field *f)
{
    char **dst = cfg_at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s == NULL || !cfg_types_valid_hostname(s))
        cfg_parse_error(c, "must be a host name");
    else
        cfg_types_set_str(dst, cfg_parse_strdup(c, s));
}

/* pools.X.tls.client_certificate: one certificate, the same shape as a listener's. */
void cfg_types_set_client_cert(struct cfg_pctx *c, const json_t *v, void *base,
                               const struct cfg_field *f)
{
    struct cfg_tls_cert **dst = cfg_at(base, f->off);
    struct cfg_tls_cert *cc = cfg_parse_calloc(c, 1, sizeof(*cc));
    if (cc == NULL)
        return;
    *dst = cc;
    if (cfg_parse_object(c, v, f->sub, cc))
        check_cert_keys(c, v);
}

/* pools.X.tls and siem.tls: the client side of TLS, the peer always verified. */
void cfg_types_set_upstream_tls(struct cfg_pctx *c, const json_t *v, void *base,
                                const struct cfg_field *f)
{
    struct cfg_upstream_tls **dst = cfg_at(base, f->off);
    struct cfg_upstream_tls *t = cfg_parse_calloc(c, 1, sizeof(*t));
    if (t == NULL)
        return;
    *dst = t;
    cfg_parse_defaults(c, f->sub, t);
    cfg_parse_object(c, v, f->sub, t);
}

/* A percentage (number 0..100, at most two decimals) stored as basis points. The range is
 * checked before the conversion to unsigned (converting an out-of-range double is undefined
 * behaviour); the negated test also refuses NaN. */
void cfg_types_set_percent_bp(struct cfg_pctx *c, const json_t *v, void *base,
                              const struct cfg_field *f)
{
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (!(d >= 0.0 && d <= 100.0)) {
        cfg_parse_error(c, "must be a percentage between 0 and 100 with at most two decimals");
        return;
    }
    double scaled = d * 100.0;
    unsigned bp = (unsigned)(scaled + 0.5);
    if ((double)bp - scaled > 1e-6 || scaled - (double)bp > 1e-6)
        cfg_parse_error(c, "must be a percentage between 0 and 100 with at most two decimals");
    else
        *(unsigned *)cfg_at(base, f->off) = bp;
}

void cfg_types_set_status_range(struct cfg_pctx *c, const json_t *v, void *base,
                                const struct cfg_field *f)
{
    (void)f;
    struct cfg_health_check *h = base;
    json_int_t lo =
        json_is_array(v) && json_array_size(v) == 2 && json_is_integer(json_array_get(v, 0))
            ? json_integer_value(json_array_get(v, 0))
            : -1;
    json_int_t hi = lo >= 0 && json_is_integer(json_array_get(v, 1))
                        ? json_integer_value(json_array_get(v, 1))
                        : -1;
    if (lo < 100 || hi > 599 || hi < lo) {
        cfg_parse_error(c, "must be [FIRST, LAST], statuses between 100 and 599");
        return;
    }
    h->status_min = (unsigned)lo;
    h->status_max = (unsigned)hi;
}

void cfg_types_set_check_host(struct cfg_pctx *c, const json_t *v, void *base,
                              const struct cfg_field *f)
{
    char **dst = cfg_at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s == NULL || !cfg_types_valid_hostname(s))
        cfg_parse_error(c, "must be a host name");
    else
        cfg_types_set_str(dst, cfg_parse_strdup(c, s));
}

#define CFG_HC_TIMEOUT_DEFAULT_MS 2000u /* health_check.timeout_ms when the interval allows */

void cfg_types_set_health_check(struct cfg_pctx *c, const json_t *v, void *base,
                                const struct cfg_field *f)
{
    struct cfg_health_check *h = cfg_at(base, f->off);
    h->status_min = 200; /* expected_status's default: two members, set here */
    h->status_max = 399;
    cfg_types_set_given(c, v, base, f);
    /* Without timeout_ms (0 is below its minimum, so it was not given): 2000 ms, or half of
     * interval_ms when 2000 would not be shorter than it ("interval_ms": 1000 alone is valid).
     * That an explicit timeout_ms is shorter than interval_ms is checked in cfg_validate.c. */
    if (h->timeout_ms == 0)
        h->timeout_ms = h->interval_ms > CFG_HC_TIMEOUT_DEFAULT_MS ? CFG_HC_TIMEOUT_DEFAULT_MS
                                                                   : h->interval_ms / 2;
}

static bool valid_pool_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 32 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

void cfg_types_set_pools(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    struct cfg_route *r = base;
    if (!json_is_object(v)) {
        cfg_parse_error(c, "expected an object");
        return;
    }
    size_t n = json_object_size(v);
    if (n < 2 || n > CFG_MAX_POOLS)
        cfg_parse_error(c, "must have between 2 and %d pools", CFG_MAX_POOLS);
    c->pools_known = n >= 1 && n <= CFG_MAX_POOLS;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        size_t old = cfg_parse_path_key(c, key);
        struct cfg_pool extra = {0};
        /* Pools past the limit are still checked (so all their errors show), then dropped. */
        struct cfg_pool *p = r->npools < CFG_MAX_POOLS ? &r->pools[r->npools++] : &extra;
        p->name = cfg_parse_strdup(c, key);
        if (!valid_pool_name(key))
            cfg_parse_error(c, "pool name must be 1 to 32 characters of a-z 0-9 _ -");
        cfg_parse_object(c, val, f->sub, p);
        if (p == &extra) {
            free(extra.name);
            cfg_free_object(&extra, f->sub);
        }
        cfg_parse_path_pop(c, old);
    }
}

/* Deferred until after "pools" so that the pool names are known. The sum is checked here, not
 * in cfg_validate.c: it is judged only when every pool got a well-formed weight and the pools
 * could be counted, which the struct does not record (a weight left out reads as 0). */
void cfg_types_set_weights(struct cfg_pctx *c, const json_t *v, void *base,
                           const struct cfg_field *f)
{
    (void)f;
    struct cfg_route *r = base;
    if (!json_is_object(v)) {
        cfg_parse_error(c, "expected an object");
        return;
    }
    bool seen[CFG_MAX_POOLS] = {false};
    bool all_ok = true;
    unsigned long sum = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        size_t old = cfg_parse_path_key(c, key);
        int idx = c->pools_known ? cfg_route_pool_index(r, key) : -1;
        bool ok = false;
        if (c->pools_known && idx < 0) {
            cfg_parse_error(c, "no such pool");
        } else if (!json_is_number(val)) {
            cfg_parse_error(c, "expected a number");
        } else {
            /* In range, d * 100 is within 1e-6 of an integer exactly when d has at most two
             * decimals (12.34 * 100 is 1233.9999999999998 in binary floating point). */
            double d = json_number_value(val);
            double scaled = d * 100.0;
            unsigned bp = 0;
            if (!(d >= 0.0 && d <= 100.0))
                cfg_parse_error(c, "must be between 0 and 100");
            else if ((bp = (unsigned)(scaled + 0.5)) - scaled > 1e-6 || scaled - bp > 1e-6)
                cfg_parse_error(c, "must have at most two decimal places");
            else
                ok = true;
            if (ok && idx >= 0) {
                r->pools[idx].weight_bp = bp;
                seen[idx] = true;
                sum += r->pools[idx].weight_bp;
            }
        }
        all_ok = all_ok && ok;
        cfg_parse_path_pop(c, old);
    }
    if (!c->pools_known)
        return;
    for (size_t i = 0; i < r->npools; i++) {
        if (!seen[i] && r->pools[i].name != NULL && json_object_get(v, r->pools[i].name) == NULL) {
            cfg_parse_error(c, "missing weight for pool \"%s\"", r->pools[i].name);
            all_ok = false;
        }
    }
    if (all_ok && sum != CFG_BP_TOTAL) {
        char text[32];
        text_percent(sum, text, sizeof(text));
        cfg_parse_error(c, "weights sum to %s, must be 100", text);
    }
}

void cfg_types_set_sticky_header(struct cfg_pctx *c, const json_t *v, void *base,
                                 const struct cfg_field *f)
{
    struct cfg_sticky *s = base;
    cfg_types_set_token(c, v, base, f);
    s->kind = CFG_STICKY_HEADER;
}

void cfg_types_set_sticky_cookie(struct cfg_pctx *c, const json_t *v, void *base,
                                 const struct cfg_field *f)
{
    struct cfg_sticky *s = base;
    cfg_types_set_token(c, v, base, f);
    s->kind = CFG_STICKY_COOKIE;
}

void cfg_types_set_sticky_client(struct cfg_pctx *c, const json_t *v, void *base,
                                 const struct cfg_field *f)
{
    (void)f;
    struct cfg_sticky *s = base;
    if (!json_is_boolean(v))
        cfg_parse_error(c, "expected true or false");
    else if (!json_is_true(v))
        cfg_parse_error(c, "must be true (leave out \"sticky\" to disable stickiness)");
    else
        s->kind = CFG_STICKY_CLIENT_IP;
}

void cfg_types_set_sticky(struct cfg_pctx *c, const json_t *v, void *base,
                          const struct cfg_field *f)
{
    struct cfg_sticky *s = cfg_at(base, f->off);
    if (json_is_object(v)) {
        int kinds = 0;
        for (const struct cfg_field *k = f->sub; k->key != NULL; k++)
            kinds += json_object_get(v, k->key) != NULL;
        if (kinds != 1) /* the keys present are still checked one by one */
            cfg_parse_error(c,
                            "must have exactly one of \"header\", \"cookie\", \"client_address\"");
    }
    cfg_parse_object(c, v, f->sub, s);
}

void cfg_types_set_subjects(struct cfg_pctx *c, const json_t *v, void *base,
                            const struct cfg_field *f)
{
    (void)f;
    struct cfg_override *o = base;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 64) {
        cfg_parse_error(c, "expected an array of 1 to 64 certificate subjects");
        return;
    }
    o->trusted_subjects = cfg_parse_calloc(c, json_array_size(v), sizeof(*o->trusted_subjects));
    if (o->trusted_subjects == NULL)
        return;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = cfg_parse_path_index(c, i);
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        if (s == NULL || *s == '\0' || strlen(s) > 512 || strchr(s, '=') == NULL)
            cfg_parse_error(
                c, "expected a certificate subject such as \"CN=smoke-test,OU=QA,O=Bank\"");
        else
            o->trusted_subjects[o->nsubjects++] = cfg_parse_strdup(c, s);
        cfg_parse_path_pop(c, old);
    }
}

void cfg_types_set_routes(struct cfg_pctx *c, const json_t *v, void *base,
                          const struct cfg_field *f)
{
    struct cfg *cfg = base;
    if (!json_is_array(v)) {
        cfg_parse_error(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > 1024)
        cfg_parse_error(c, "must have between 1 and 1024 routes");
    cfg->routes = cfg_parse_calloc(c, n, sizeof(*cfg->routes));
    if (cfg->routes == NULL)
        return;
    cfg->nroutes = n;
    for (size_t i = 0; i < n; i++) {
        struct cfg_route *r = &cfg->routes[i];
        size_t old = cfg_parse_path_index(c, i);
        c->pools_known = false;
        cfg_parse_defaults(c, f->sub, r);
        cfg_parse_object(c, json_array_get(v, i), f->sub, r);
        cfg_parse_path_pop(c, old);
    }
}

/* ---- dump and free hooks of the special values ---- */

static json_t *checked(json_t *v, bool *ok)
{
    if (v == NULL)
        *ok = false;
    return v;
}

json_t *cfg_types_dump_tls_version(const void *base, const struct cfg_field *f, bool *ok)
{
    unsigned v = *(const unsigned *)cfg_at(base, f->off);
    return checked(json_string(v == 13 ? "1.3" : "1.2"), ok);
}

json_t *cfg_types_dump_alpn(const void *base, const struct cfg_field *f, bool *ok)
{
    (void)f;
    const struct cfg_tls *t = base;
    json_t *a = checked(json_array(), ok);
    for (size_t i = 0; a != NULL && i < t->nalpn; i++)
        if (json_array_append_new(
                a, checked(json_string(t->alpn[i] == CFG_ALPN_H2 ? "h2" : "http/1.1"), ok)) != 0)
            *ok = false;
    return a;
}

json_t *cfg_types_dump_endpoints(const void *base, const struct cfg_field *f, bool *ok)
{
    (void)f;
    const struct cfg_pool *p = base;
    json_t *a = checked(json_array(), ok);
    for (size_t i = 0; a != NULL && i < p->nendpoints; i++)
        if (json_array_append_new(a, cfg_dump_hostport(p->endpoints[i].host, p->endpoints[i].port, ok)) != 0)
            *ok = false;
    return a;
}

/* Basis points back as a percentage: an integer when whole. */
static json_t *percent(unsigned bp, bool *ok)
{
    return checked(bp % 100 == 0 ? json_integer(bp / 100) : json_real(bp / 100.0), ok);
}

json_t *cfg_types_dump_percent_bp(const void *base, const struct cfg_field *f, bool *ok)
{
    return percent(*(const unsigned *)cfg_at(base, f->off), ok);
}

json_t *cfg_types_dump_status_range(const void *base, const struct cfg_field *f, bool *ok)
{
    (void)f;
    const struct cfg_health_check *h = base;
    json_t *a = checked(json_array(), ok);
    if (a != NULL && (json_array_append_new(a, checked(json_integer(h->status_min), ok)) != 0 ||
                      json_array_append_new(a, checked(json_integer(h->status_max), ok)) != 0))
        *ok = false;
    return a;
}

/* The pools object: each pool under its name, in the order written. */
json_t *cfg_types_dump_pools(const void *base, const struct cfg_field *f, bool *ok)
{
    const struct cfg_route *r = base;
    json_t *o = checked(json_object(), ok);
    for (size_t i = 0; o != NULL && i < r->npools; i++) {
        const struct cfg_pool *p = &r->pools[i];
        json_t *po = cfg_dump_object(p, f->sub, ok);
        if (po == NULL || json_object_set_new(o, p->name != NULL ? p->name : "", po) != 0)
            *ok = false;
    }
    return o;
}

void cfg_types_free_pools(void *base, const struct cfg_field *f)
{
    struct cfg_route *r = base;
    for (size_t i = 0; i < r->npools; i++) {
        free(r->pools[i].name); /* the key, not a member of the pool's table */
        r->pools[i].name = NULL;
        cfg_free_object(&r->pools[i], f->sub);
    }
    r->npools = 0;
}

json_t *cfg_types_dump_weights(const void *base, const struct cfg_field *f, bool *ok)
{
    (void)f;
    const struct cfg_route *r = base;
    json_t *o = checked(json_object(), ok);
    for (size_t i = 0; o != NULL && i < r->npools; i++) {
        const struct cfg_pool *p = &r->pools[i];
        if (json_object_set_new(o, p->name != NULL ? p->name : "", percent(p->weight_bp, ok)) != 0)
            *ok = false;
    }
    return o;
}

/* The sticky object: the one key its kind was given by; left out when none. */
json_t *cfg_types_dump_sticky(const void *base, const struct cfg_field *f, bool *ok)
{
    const struct cfg_sticky *s = cfg_at(base, f->off);
    if (s->kind == CFG_STICKY_NONE)
        return NULL;
    json_t *o = checked(json_object(), ok);
    json_t *v;
    const char *key;
    if (s->kind == CFG_STICKY_CLIENT_IP) {
        key = "client_address";
        v = json_true();
    } else {
        key = s->kind == CFG_STICKY_HEADER ? "header" : "cookie";
        v = s->name != NULL ? json_string(s->name) : json_null();
    }
    if (o != NULL && json_object_set_new(o, key, checked(v, ok)) != 0)
        *ok = false;
    return o;
}

void cfg_types_free_sticky(void *base, const struct cfg_field *f)
{
    struct cfg_sticky *s = cfg_at(base, f->off);
    free(s->name);
    s->name = NULL;
}

/* health_check, outlier_detection, watchdog: present when enabled (their first member). */
_Static_assert(offsetof(struct cfg_health_check, enabled) == 0 &&
                   offsetof(struct cfg_outlier, enabled) == 0 &&
                   offsetof(struct cfg_watchdog, enabled) == 0 &&
                   offsetof(struct cfg_store, enabled) == 0,
               "cfg_types_has_enabled reads the first member");

bool cfg_types_has_enabled(const void *obj)
{
    return *(const int *)obj != 0;
}

bool cfg_types_has_override(const void *obj)
{
    return ((const struct cfg_override *)obj)->header != NULL;
}

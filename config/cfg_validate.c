/* cfg_validate.c - the rules that span several fields or objects: uniqueness, route overlap,
 * and the rules between values (limits, outlier ejection times, a health check's timeout and
 * interval, a pool's protocol and TLS).
 *
 * Runs on a cfg that cfg_parse() may have filled only partly (a rejected value is NULL), so every
 * check skips NULL strings: a value already reported as malformed is not reported again as a
 * duplicate. The later of two clashing elements is the one reported; the message names the
 * earlier one.
 */
#include "config/cfg.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/cut.h"

struct vctx {
    struct cfg_errors *errs;
    size_t given; /* errors in the list on entry (the parse's): values already reported */
    int rc;
};

/* Whether the parse already reported a problem at path or inside it ("limits", "limits.x"). */
static bool reported_in(const struct vctx *v, const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < v->given; i++) {
        const char *p = v->errs->v[i].path;
        if (strncmp(p, path, n) == 0 && (p[n] == '\0' || p[n] == '.' || p[n] == '['))
            return true;
    }
    return false;
}

static void verr(struct vctx *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void verr(struct vctx *v, const char *path, const char *fmt, ...)
{
    if (v->rc == CUT_ENOMEM)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    v->rc = cfg_errors_add(v->errs, path, 0, 0, "%s", msg) != 0 ? CUT_ENOMEM : CUT_EINVAL;
}

static bool same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void check_listeners(struct vctx *v, const struct cfg *cfg)
{
    char path[64];
    for (size_t j = 0; j < cfg->nlisteners; j++) {
        const struct cfg_listener *b = &cfg->listeners[j];
        for (size_t i = 0; i < j; i++) {
            const struct cfg_listener *a = &cfg->listeners[i];
            if (same(a->name, b->name)) {
                snprintf(path, sizeof(path), "listeners[%zu].name", j);
                verr(v, path, "duplicate name (same as listeners[%zu])", i);
                break;
            }
        }
        for (size_t i = 0; i < j; i++) {
            const struct cfg_listener *a = &cfg->listeners[i];
            if (same(a->host, b->host) && a->port == b->port) {
                snprintf(path, sizeof(path), "listeners[%zu].address", j);
                verr(v, path, "duplicate address (same as listeners[%zu])", i);
                break;
            }
        }
    }
}

static void check_pool(struct vctx *v, size_t ri, const struct cfg_pool *p)
{
    char path[256];
    const struct cfg_health_check *h = &p->health_check;
    if (h->enabled && h->timeout_ms >= h->interval_ms) {
        snprintf(path, sizeof(path), "routes[%zu].pools.%s.health_check.timeout_ms", ri, p->name);
        verr(v, path, "must be shorter than interval_ms (%u)", h->interval_ms);
    }
    snprintf(path, sizeof(path), "routes[%zu].pools.%s.protocol", ri, p->name);
    if (p->protocol == CFG_UP_H2C && p->tls != NULL)
        verr(v, path, "\"h2c\" is cleartext HTTP/2: use \"h2\" with \"tls\"");
    else if (p->protocol == CFG_UP_H2 && p->tls == NULL)
        verr(v, path,
             "\"h2\" is negotiated with TLS ALPN: add \"tls\" (or use \"h2c\" for "
             "cleartext HTTP/2)");
    for (size_t j = 0; j < p->nendpoints; j++) {
        for (size_t i = 0; i < j; i++) {
            if (same(p->endpoints[i].host, p->endpoints[j].host) &&
                p->endpoints[i].port == p->endpoints[j].port) {
                snprintf(path, sizeof(path), "routes[%zu].pools.%s.endpoints[%zu]", ri, p->name, j);
                verr(v, path, "duplicate endpoint (same as endpoints[%zu])", i);
                break;
            }
        }
    }
}

static bool any_host(const struct cfg_route *r)
{
    if (r->nhosts == 0)
        return true;
    for (size_t i = 0; i < r->nhosts; i++)
        if (same(r->hosts[i], "*"))
            return true;
    return false;
}

/* Returns a host both routes match at the same precedence, "*" when both match any host, or
 * NULL when their host sets do not meet. */
static const char *common_host(const struct cfg_route *a, const struct cfg_route *b)
{
    if (any_host(a) && any_host(b))
        return "*";
    for (size_t j = 0; j < b->nhosts; j++) {
        if (b->hosts[j] == NULL || strcmp(b->hosts[j], "*") == 0)
            continue;
        for (size_t i = 0; i < a->nhosts; i++)
            if (same(a->hosts[i], b->hosts[j]))
                return b->hosts[j];
    }
    return NULL;
}

static void check_routes(struct vctx *v, const struct cfg *cfg)
{
    char path[128], what[512];
    for (size_t j = 0; j < cfg->nroutes; j++) {
        const struct cfg_route *b = &cfg->routes[j];
        for (size_t i = 0; i < j; i++) {
            if (same(cfg->routes[i].name, b->name)) {
                snprintf(path, sizeof(path), "routes[%zu].name", j);
                verr(v, path, "duplicate name (same as routes[%zu])", i);
                break;
            }
        }
        for (size_t k = 0; k < b->nhosts; k++) {
            for (size_t i = 0; i < k; i++) {
                if (same(b->hosts[i], b->hosts[k])) {
                    snprintf(path, sizeof(path), "routes[%zu].hosts[%zu]", j, k);
                    verr(v, path, "duplicate host (same as hosts[%zu])", i);
                    break;
                }
            }
        }
        for (size_t i = 0; i < j; i++) {
            const struct cfg_route *a = &cfg->routes[i];
            if (!same(a->path_prefix, b->path_prefix))
                continue;
            const char *host = common_host(a, b);
            if (host == NULL)
                continue;
            snprintf(path, sizeof(path), "routes[%zu]", j);
            if (strcmp(host, "*") == 0)
                snprintf(what, sizeof(what), "any host");
            else
                snprintf(what, sizeof(what), "host \"%s\"", host);
            verr(v, path, "duplicate match: %s with path_prefix \"%s\" is already routes[%zu]",
                 what, b->path_prefix, i);
            break;
        }
        for (size_t p = 0; p < b->npools; p++)
            if (b->pools[p].name != NULL)
                check_pool(v, j, &b->pools[p]);
        if (b->outlier.enabled && b->outlier.max_ejection_ms < b->outlier.base_ejection_ms) {
            snprintf(path, sizeof(path), "routes[%zu].outlier_detection.max_ejection_ms", j);
            verr(v, path, "must not be below base_ejection_ms");
        }
    }
}

/* The admin API: its address is not a listener's, and a subject maps to one role only. */
static void check_admin(struct vctx *v, const struct cfg *cfg)
{
    const struct cfg_admin *a = &cfg->admin;
    char path[64];
    for (size_t i = 0; a->host != NULL && i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        if (same(l->host, a->host) && l->port == a->port) {
            verr(v, "admin.address", "same address as listeners[%zu]", i);
            break;
        }
    }
    for (size_t j = 0; j < a->nroles; j++) {
        for (size_t i = 0; i < j; i++) {
            if (same(a->roles[i].subject, a->roles[j].subject)) {
                snprintf(path, sizeof(path), "admin.roles[%zu].subject", j);
                verr(v, path, "duplicate subject (same as admin.roles[%zu])", i);
                break;
            }
        }
    }
}

/* The rule between two limits, checked only when the limits object had no malformed value. */
static void check_limits(struct vctx *v, const struct cfg *cfg)
{
    const struct cfg_limits *l = &cfg->limits;
    if (l->max_header_bytes < l->max_request_line && !reported_in(v, "limits"))
        verr(v, "limits.max_header_bytes", "must be at least max_request_line (%u)",
             l->max_request_line);
}

int cfg_validate(const struct cfg *cfg, struct cfg_errors *errs)
{
    struct vctx v = {.errs = errs, .given = errs->n, .rc = 0};
    check_limits(&v, cfg);
    check_listeners(&v, cfg);
    check_routes(&v, cfg);
    check_admin(&v, cfg);
    return v.rc;
}

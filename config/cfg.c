/* cfg.c - the lifecycle of a struct cfg and of error lists: free, collect, print, look up.
 *
 * Parsing lives in cfg_parse.c, cross-object rules in cfg_validate.c, JSON output in cfg_dump.c.
 */
#include "config/cfg.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"

static void cidr_list_dispose(struct cfg_cidr_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void pool_dispose(struct cfg_pool *p)
{
    free(p->name);
    for (size_t i = 0; i < p->nendpoints; i++) {
        free(p->endpoints[i].address);
        free(p->endpoints[i].host);
    }
    free(p->endpoints);
    cfg_upstream_tls_free(p->tls);
    free(p->health_check.path);
    free(p->health_check.host);
    memset(p, 0, sizeof(*p));
}

static void route_dispose(struct cfg_route *r)
{
    free(r->name);
    for (size_t i = 0; i < r->nhosts; i++)
        free(r->hosts[i]);
    free(r->hosts);
    free(r->path_prefix);
    for (size_t i = 0; i < r->npools; i++)
        pool_dispose(&r->pools[i]);
    free(r->sticky.name);
    free(r->override.header);
    cidr_list_dispose(&r->override.trusted_peers);
    for (size_t i = 0; i < r->override.nsubjects; i++)
        free(r->override.trusted_subjects[i]);
    free(r->override.trusted_subjects);
}

void cfg_upstream_tls_free(struct cfg_upstream_tls *t)
{
    if (t == NULL)
        return;
    free(t->ca);
    free(t->crl);
    free(t->server_name);
    if (t->client_cert != NULL) {
        free(t->client_cert->cert);
        free(t->client_cert->key);
        free(t->client_cert->pem);
        free(t->client_cert);
    }
    free(t);
}

static void tls_free(struct cfg_tls *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncerts; i++) {
        free(t->certs[i].cert);
        free(t->certs[i].key);
        free(t->certs[i].pem);
    }
    free(t->certs);
    free(t->client_ca);
    free(t->crl);
    free(t);
}

void cfg_free(struct cfg *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->cluster);
    free(cfg->region);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        free(cfg->listeners[i].name);
        free(cfg->listeners[i].address);
        free(cfg->listeners[i].host);
        tls_free(cfg->listeners[i].tls);
    }
    free(cfg->listeners);
    cidr_list_dispose(&cfg->trusted_proxies);
    for (size_t i = 0; i < cfg->nroutes; i++)
        route_dispose(&cfg->routes[i]);
    free(cfg->routes);
    free(cfg->access_log.country_database);
    free(cfg->probe_path);
    free(cfg->metrics.address);
    free(cfg->metrics.host);
    free(cfg->control.socket);
    free(cfg->control.state_file);
    free(cfg->control.audit_file);
    free(cfg->control.roles);
    free(cfg->admin.address);
    free(cfg->admin.host);
    tls_free(cfg->admin.tls);
    for (size_t i = 0; i < cfg->admin.nroles; i++)
        free(cfg->admin.roles[i].subject);
    free(cfg->admin.roles);
    free(cfg->siem.address);
    free(cfg->siem.host);
    cfg_upstream_tls_free(cfg->siem.tls);
    free(cfg->siem.vendor);
    free(cfg->siem.hostname);
    free(cfg);
}

void cfg_errors_dispose(struct cfg_errors *errs)
{
    if (errs == NULL)
        return;
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->v[i].path);
        free(errs->v[i].message);
    }
    free(errs->v);
    errs->v = NULL;
    errs->n = 0;
}

int cfg_errors_add(struct cfg_errors *errs, const char *path, int line, int column, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    int len = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (len < 0)
        return CUT_ENOMEM;
    char *p = strdup(path != NULL ? path : "");
    struct cfg_error *v = realloc(errs->v, (errs->n + 1) * sizeof(*v));
    if (p == NULL || v == NULL) {
        free(msg);
        free(p);
        if (v != NULL)
            errs->v = v;
        return CUT_ENOMEM;
    }
    errs->v = v;
    v[errs->n++] = (struct cfg_error){.path = p, .message = msg, .line = line, .column = column};
    return 0;
}

void cfg_errors_print(const struct cfg_errors *errs, const char *file, FILE *f)
{
    for (size_t i = 0; i < errs->n; i++) {
        const struct cfg_error *e = &errs->v[i];
        if (file != NULL)
            fprintf(f, "%s: ", file);
        fprintf(f, "%s: %s", e->path[0] != '\0' ? e->path : "(root)", e->message);
        if (e->line > 0)
            fprintf(f, " (line %d, column %d)", e->line, e->column);
        fputc('\n', f);
    }
}

int cfg_route_pool_index(const struct cfg_route *route, const char *name)
{
    for (size_t i = 0; i < route->npools; i++)
        if (route->pools[i].name != NULL && strcmp(route->pools[i].name, name) == 0)
            return (int)i;
    return -1;
}

int cfg_route_index(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].name != NULL && strcmp(cfg->routes[i].name, name) == 0)
            return (int)i;
    return -1;
}

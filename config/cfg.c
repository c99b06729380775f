/* cfg.c - the lifecycle of a struct cfg and of error lists: free, collect, print, look up.
 *
 * cfg_free walks the schema (cfg_schema.c): strings, lists, nested objects and arrays. Parsing
 * lives in cfg_parse.c, cross-object rules in cfg_validate.c, JSON output in cfg_dump.c.
 */
#include "config/cfg.h"
#include "config/cfg_schema.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"

/* The free walker: what each kind owns (cfg_schema.h). */
void cfg_free_object(void *base, const struct cfg_field *t)
{
    for (; t->key != NULL; t++) {
        void *p = cfg_at(base, t->off);
        if (t->free != NULL) {
            t->free(base, t);
            continue;
        }
        switch (t->kind) {
        case CFG_K_STR:
            free(*(char **)p);
            *(char **)p = NULL;
            break;
        case CFG_K_STRS: {
            char **v = *(char ***)p;
            size_t *n = cfg_at(base, t->off2);
            for (size_t i = 0; v != NULL && i < *n; i++)
                free(v[i]);
            free(v);
            *(char ***)p = NULL;
            *n = 0;
            break;
        }
        case CFG_K_HOSTPORT:
            free(*(char **)p);
            *(char **)p = NULL;
            free(*(char **)cfg_at(base, t->off2));
            *(char **)cfg_at(base, t->off2) = NULL;
            break;
        case CFG_K_CIDRS: {
            struct cfg_cidr_list *l = p;
            free(l->v);
            l->v = NULL;
            l->n = 0;
            break;
        }
        case CFG_K_OBJ: cfg_free_object(p, t->sub); break;
        case CFG_K_PTR: {
            void *obj = *(void **)p;
            if (obj != NULL) {
                cfg_free_object(obj, t->sub);
                free(obj);
            }
            *(void **)p = NULL;
            break;
        }
        case CFG_K_ARRAY: {
            char *v = *(char **)p;
            size_t *n = cfg_at(base, t->off2);
            for (size_t i = 0; v != NULL && i < *n; i++)
                cfg_free_object(v + i * t->size, t->sub);
            free(v);
            *(char **)p = NULL;
            *n = 0;
            break;
        }
        default: break;
        }
    }
}

/* The upstream tls table is the sub-table of pools.X.tls in the schema. */
void cfg_upstream_tls_free(struct cfg_upstream_tls *t)
{
    if (t == NULL)
        return;
    cfg_free_object(t, cfg_schema_upstream_tls);
    free(t);
}

void cfg_free(struct cfg *cfg)
{
    if (cfg == NULL)
        return;
    cfg_free_object(cfg, cfg_schema_root);
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

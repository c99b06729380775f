/* cfg_parse.c - JSON text to struct cfg: the engine that walks the schema (cfg_schema.c).
 *
 * cfg_parse_object() walks an object's keys in document order, calls the setter of each known
 * key with the JSON path extended by the key, reports unknown keys and missing required ones.
 * Setters (cfg_types.c, cfg_types_route.c) never stop at the first problem: every problem in the
 * document is appended to the error list and parsing goes on with the next value, so one run
 * reports all of them. A value that is rejected leaves its target at the default (numbers) or
 * NULL (strings); the half-built cfg is freed when any error was found. Defaults come from the
 * tables (cfg_parse_defaults) before the keys are read.
 *
 * Arrays keep one slot per JSON element, so slot i always corresponds to path "[i]" and the
 * cross-object checks of cfg_validate.c can name the element they complain about.
 */
#include "config/cfg_schema.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"

/* ---- errors and paths ---- */

void cfg_parse_error(struct cfg_pctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (cfg_errors_add(c->errs, c->path, 0, 0, "%s", msg) != 0)
        c->oom = true;
}

size_t cfg_parse_path_key(struct cfg_pctx *c, const char *key)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, CFG_PATH_CAP - c->plen, "%s%s", c->plen ? "." : "", key);
    c->plen = n < 0 ? c->plen : c->plen + (size_t)n;
    if (c->plen >= CFG_PATH_CAP)
        c->plen = CFG_PATH_CAP - 1;
    return old;
}

size_t cfg_parse_path_index(struct cfg_pctx *c, size_t i)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, CFG_PATH_CAP - c->plen, "[%zu]", i);
    c->plen = n < 0 ? c->plen : c->plen + (size_t)n;
    if (c->plen >= CFG_PATH_CAP)
        c->plen = CFG_PATH_CAP - 1;
    return old;
}

void cfg_parse_path_pop(struct cfg_pctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

char *cfg_parse_strdup(struct cfg_pctx *c, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        c->oom = true;
    return d;
}

void *cfg_parse_calloc(struct cfg_pctx *c, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL)
        c->oom = true;
    return p;
}

/* ---- the object walker ---- */

static const struct cfg_field *find_field(const struct cfg_field *t, const char *key)
{
    for (; t->key != NULL; t++)
        if (strcmp(t->key, key) == 0)
            return t;
    return NULL;
}

void cfg_parse_defaults(struct cfg_pctx *c, const struct cfg_field *t, void *base)
{
    for (; t->key != NULL; t++) {
        void *dst = cfg_at(base, t->off);
        switch (t->kind) {
        case CFG_K_UINT: *(unsigned *)dst = (unsigned)t->def; break;
        case CFG_K_BOOL:
        case CFG_K_ENUM: *(int *)dst = (int)t->def; break;
        case CFG_K_LONG: *(long *)dst = (long)t->def; break;
        case CFG_K_CHAR: *(char *)dst = (char)t->def; break;
        case CFG_K_STR:
            if (t->def_str != NULL) {
                free(*(char **)dst);
                *(char **)dst = cfg_parse_strdup(c, t->def_str);
            }
            break;
        case CFG_K_OBJ:
            if (!(t->flags & CFG_F_GIVEN))
                cfg_parse_defaults(c, t->sub, dst);
            break;
        default: break;
        }
    }
}

bool cfg_parse_object(struct cfg_pctx *c, const json_t *v, const struct cfg_field *t, void *base)
{
    if (!json_is_object(v)) {
        cfg_parse_error(c, "expected an object");
        return false;
    }
    const char *key;
    json_t *val;
    for (int pass = 0; pass < 2; pass++) {
        json_object_foreach((json_t *)v, key, val)
        {
            const struct cfg_field *f = find_field(t, key);
            if (pass == 1 && (f == NULL || !(f->flags & CFG_F_DEFER)))
                continue;
            if (pass == 0 && f != NULL && (f->flags & CFG_F_DEFER))
                continue;
            size_t old = cfg_parse_path_key(c, key);
            if (f == NULL)
                cfg_parse_error(c, "unknown key");
            else
                f->set(c, val, base, f);
            cfg_parse_path_pop(c, old);
        }
    }
    for (const struct cfg_field *f = t; f->key != NULL; f++)
        if ((f->flags & CFG_F_REQUIRED) && json_object_get(v, f->key) == NULL)
            cfg_parse_error(c, "missing required key \"%s\"", f->key);
    return true;
}

/* ---- the document ---- */

int cfg_parse(const char *json, size_t len, struct cfg **out, struct cfg_errors *errs)
{
    *out = NULL;
    errs->v = NULL;
    errs->n = 0;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        int rc = cfg_errors_add(errs, "", jerr.line, jerr.column, "%s", jerr.text);
        return rc != 0 ? rc : CUT_EINVAL;
    }
    struct cfg *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        json_decref(root);
        return CUT_ENOMEM;
    }
    struct cfg_pctx c = {.errs = errs};
    cfg_parse_defaults(&c, cfg_schema_root, cfg);
    cfg_parse_object(&c, root, cfg_schema_root, cfg);
    json_decref(root);
    int rc = c.oom ? CUT_ENOMEM : 0;
    if (rc == 0) {
        rc = cfg_validate(cfg, errs);
        if (rc == 0 && errs->n > 0)
            rc = CUT_EINVAL;
    }
    if (rc != 0) {
        cfg_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int cfg_load(const char *path, struct cfg **out, struct cfg_errors *errs)
{
    *out = NULL;
    errs->v = NULL;
    errs->n = 0;
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    if (f == NULL) {
        rc = CUT_EIO;
    } else {
        for (;;) {
            if (len == cap) {
                cap = cap ? cap * 2 : 65536;
                char *nb = realloc(buf, cap);
                if (nb == NULL) {
                    rc = CUT_ENOMEM;
                    break;
                }
                buf = nb;
            }
            size_t got = fread(buf + len, 1, cap - len, f);
            len += got;
            if (got == 0) {
                if (ferror(f))
                    rc = CUT_EIO;
                break;
            }
        }
    }
    int saved = errno;
    if (f != NULL)
        fclose(f);
    if (rc == 0)
        rc = cfg_parse(buf, len, out, errs);
    else if (rc == CUT_EIO && cfg_errors_add(errs, "", 0, 0, "cannot read: %s", strerror(saved)))
        rc = CUT_ENOMEM;
    free(buf);
    return rc;
}

/* cfg_dump.c - struct cfg back to canonical JSON, by walking the schema (cfg_schema.c).
 *
 * Every key is written in its table's order with the value's canonical text (defaults written
 * out, weights as percentages, hosts lower case, CIDRs as network/prefix); special values are
 * written by their field's dump hook. The output is what cfg_parse() reads: parsing it gives an
 * equal cfg, and dumping that again gives the same text. Used by the control API ("show config")
 * and by tests (tests/fixtures/config/dump holds the expected text of every valid fixture).
 */
#include "config/cfg_schema.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "config/cfg_types.h"

static json_t *checked(json_t *v, bool *ok)
{
    if (v == NULL)
        *ok = false;
    return v;
}

json_t *cfg_dump_hostport(const char *host, uint16_t port, bool *ok)
{
    char buf[300];
    bool v6 = host != NULL && strchr(host, ':') != NULL;
    snprintf(buf, sizeof(buf), v6 ? "[%s]:%u" : "%s:%u", host ? host : "", (unsigned)port);
    return checked(json_string(buf), ok);
}

static json_t *str_or_null(const char *s, bool *ok)
{
    return checked(s != NULL ? json_string(s) : json_null(), ok);
}

static json_t *dump_strs(const void *base, const struct cfg_field *f, bool *ok)
{
    char *const *v = *(char *const *const *)cfg_at(base, f->off);
    size_t n = *(const size_t *)cfg_at(base, f->off2);
    if (n == 0 && (f->flags & CFG_F_OMIT_ZERO))
        return NULL;
    json_t *a = checked(json_array(), ok);
    for (size_t i = 0; a != NULL && i < n; i++)
        if (json_array_append_new(a, str_or_null(v[i], ok)) != 0)
            *ok = false;
    return a;
}

static json_t *dump_cidrs(const struct cfg_cidr_list *l, bool *ok)
{
    json_t *a = checked(json_array(), ok);
    for (size_t i = 0; a != NULL && i < l->n; i++) {
        char text[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 8];
        inet_ntop(l->v[i].family, l->v[i].addr, text, sizeof(text));
        snprintf(buf, sizeof(buf), "%s/%u", text, l->v[i].prefix);
        if (json_array_append_new(a, checked(json_string(buf), ok)) != 0)
            *ok = false;
    }
    return a;
}

static json_t *dump_array(const void *base, const struct cfg_field *f, bool *ok)
{
    const char *v = *(const char *const *)cfg_at(base, f->off);
    size_t n = *(const size_t *)cfg_at(base, f->off2);
    json_t *a = checked(json_array(), ok);
    for (size_t i = 0; a != NULL && i < n; i++)
        if (json_array_append_new(a, cfg_dump_object(v + i * f->size, f->sub, ok)) != 0)
            *ok = false;
    return a;
}

/* The value of f, or NULL when the key is left out. */
static json_t *dump_field(const void *base, const struct cfg_field *f, bool *ok)
{
    if (f->dump != NULL)
        return f->dump(base, f, ok);
    const void *p = cfg_at(base, f->off);
    switch (f->kind) {
    case CFG_K_UINT: {
        unsigned u = *(const unsigned *)p;
        if (u == 0 && (f->flags & CFG_F_OMIT_ZERO))
            return NULL;
        return checked(json_integer((json_int_t)u), ok);
    }
    case CFG_K_BOOL: return checked(json_boolean(*(const int *)p), ok);
    case CFG_K_ENUM: return checked(json_string(f->names[*(const int *)p]), ok);
    case CFG_K_STR: {
        const char *s = *(char *const *)p;
        if (s == NULL && !(f->flags & CFG_F_NULL))
            return NULL;
        return str_or_null(s, ok);
    }
    case CFG_K_STRS: return dump_strs(base, f, ok);
    case CFG_K_HOSTPORT: /* the canonical "host:port" ("[v6]:port"), not the text as written */
        return cfg_dump_hostport(*(char *const *)cfg_at(base, f->off2),
                                 *(const uint16_t *)cfg_at(base, f->off3), ok);
    case CFG_K_CIDRS: return dump_cidrs(p, ok);
    case CFG_K_OBJ:
        if (f->present != NULL && !f->present(p))
            return NULL;
        return cfg_dump_object(p, f->sub, ok);
    case CFG_K_PTR: {
        const void *obj = *(const void *const *)p;
        return obj != NULL ? cfg_dump_object(obj, f->sub, ok) : NULL;
    }
    case CFG_K_ARRAY: return dump_array(base, f, ok);
    default: return NULL;
    }
}

json_t *cfg_dump_object(const void *base, const struct cfg_field *t, bool *ok)
{
    json_t *o = checked(json_object(), ok);
    for (; o != NULL && t->key != NULL; t++) {
        json_t *v = dump_field(base, t, ok);
        if (v != NULL && json_object_set_new(o, t->key, v) != 0)
            *ok = false;
    }
    return o;
}

char *cfg_dump(const struct cfg *cfg)
{
    bool ok = true;
    json_t *root = cfg_dump_object(cfg, cfg_schema_root, &ok);
    char *text = NULL;
    if (ok)
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(root);
    return text;
}

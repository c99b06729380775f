/* cfg_schema.h - internal to config/: the schema table that drives parse, dump, free and
 * defaults of a struct cfg.
 *
 * Each JSON object has one table of its keys (struct cfg_field, in the manner of nginx's command
 * tables), in the order cfg_dump() writes them. An entry names the key, its kind (how the value
 * is stored, so that the generic walkers can default, dump and free it), its target offset, its
 * bounds and default, the table of a nested object or array element, and the parse setter.
 * Kinds the walkers cannot handle (weights, pools, roles, sticky, ...) carry their own dump and
 * free hooks. The tables live in cfg_schema.c, the parse engine in cfg_parse.c, the setters and
 * hooks in cfg_types.c and cfg_types_route.c, the dump walker in cfg_dump.c, the free walker in
 * cfg.c. Nothing here is used outside config/. Any thread; no global state (the tables are
 * constant).
 */
#ifndef CUT_CFG_SCHEMA_H
#define CUT_CFG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config/cfg.h"

#define CFG_PATH_CAP 1024

/* The parse context: the error list, the JSON path of the value being parsed, and a little
 * state one setter leaves for a later one in the same object. */
struct cfg_pctx {
    struct cfg_errors *errs;
    bool oom;
    char path[CFG_PATH_CAP];
    size_t plen;
    bool pools_known; /* the current route's pool names are known (weights may be checked) */
};

struct cfg_field;

/* Parses v (the value of f's key; the path already names it) into the struct at base. Reports
 * every problem with cfg_parse_error() and never stops early. */
typedef void cfg_set_fn(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f);
/* Returns the JSON value of f in the struct at base (a new reference), or NULL when the key is
 * left out; sets *ok to false when out of memory. */
typedef json_t *cfg_dump_fn(const void *base, const struct cfg_field *f, bool *ok);
/* Frees what f owns in the struct at base (not the struct itself). */
typedef void cfg_free_fn(void *base, const struct cfg_field *f);
/* Whether an optional nested object is present (it is dumped only then). */
typedef bool cfg_present_fn(const void *obj);

/* How a value is stored: the generic walkers default, dump and free these kinds. */
enum cfg_kind {
    CFG_K_CUSTOM = 0, /* only the field's hooks know it */
    CFG_K_UINT,       /* unsigned; CFG_F_OMIT_ZERO leaves 0 out of the dump */
    CFG_K_BOOL,       /* int 0/1 */
    CFG_K_ENUM,       /* an enum stored as int; names[value] is its JSON text */
    CFG_K_STR,        /* char *; NULL is left out (CFG_F_NULL: written as null) */
    CFG_K_STRS,       /* char ** with a size_t count at off2 */
    CFG_K_HOSTPORT,   /* char *address at off, char *host at off2, uint16_t port at off3 */
    CFG_K_CIDRS,      /* struct cfg_cidr_list */
    CFG_K_OBJ,        /* an embedded struct described by sub; present() says if it is dumped */
    CFG_K_PTR,        /* a pointer to a struct of size bytes described by sub; NULL left out */
    CFG_K_ARRAY,      /* a pointer to n structs of size bytes described by sub, n at off2 */
    CFG_K_LONG,       /* long (ids); dumped by its hook */
    CFG_K_CHAR,       /* char; dumped by its hook */
};

enum {
    CFG_F_REQUIRED = 1u << 0,
    CFG_F_DEFER = 1u << 1,     /* parsed after the other keys of the object (needs their values) */
    CFG_F_LOWER = 1u << 2,     /* a string stored lower case */
    CFG_F_ADMIN = 1u << 3,     /* the admin API's variant of an object (tls) */
    CFG_F_NULL = 1u << 4,      /* a NULL string is dumped as null instead of left out */
    CFG_F_OMIT_ZERO = 1u << 5, /* a zero number (or empty list) is left out of the dump */
    CFG_F_GIVEN = 1u << 6,     /* an optional object whose defaults apply only when it is given
                                * (cfg_types_set_given also sets the int at off2 inside it) */
};

/* One key of a JSON object. */
struct cfg_field {
    const char *key;
    enum cfg_kind kind;
    cfg_set_fn *set;
    size_t off;                  /* target inside the object's struct */
    long long min, max;          /* integer bounds, or string length / array size bounds */
    long long def;               /* default of an integer, boolean or enum */
    const char *def_str;         /* default of a string */
    unsigned flags;              /* CFG_F_* */
    const struct cfg_field *sub; /* the table of a nested object or of an array's elements */
    size_t size;                 /* CFG_K_PTR / CFG_K_ARRAY: the size of one struct */
    size_t off2, off3;           /* see enum cfg_kind */
    const char *const *names;    /* CFG_K_ENUM: JSON text of each value, NULL-terminated */
    const char *msg;             /* CFG_K_ENUM: the message for any other value */
    cfg_dump_fn *dump;           /* overrides the kind's dump (CFG_K_CUSTOM: required to dump) */
    cfg_free_fn *free;           /* overrides the kind's free */
    cfg_present_fn *present;     /* CFG_K_OBJ: dumped only when it returns true; NULL: always */
};

/* The document's table, and that of a pool's (or the SIEM's) tls object (cfg_schema.c). */
extern const struct cfg_field cfg_schema_root[];
extern const struct cfg_field cfg_schema_upstream_tls[];

/* ---- the engine (cfg_parse.c) ---- */

void cfg_parse_error(struct cfg_pctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t cfg_parse_path_key(struct cfg_pctx *c, const char *key);
size_t cfg_parse_path_index(struct cfg_pctx *c, size_t i);
void cfg_parse_path_pop(struct cfg_pctx *c, size_t old);
char *cfg_parse_strdup(struct cfg_pctx *c, const char *s);
void *cfg_parse_calloc(struct cfg_pctx *c, size_t n, size_t size);
/* Writes the defaults of table t into the struct at base (recursing into embedded objects that
 * are not CFG_F_GIVEN). */
void cfg_parse_defaults(struct cfg_pctx *c, const struct cfg_field *t, void *base);
/* Parses the JSON object v against table t into base (defaults already applied): known keys in
 * document order (CFG_F_DEFER ones last), unknown keys and missing required ones reported.
 * Returns false when v is not an object. */
bool cfg_parse_object(struct cfg_pctx *c, const json_t *v, const struct cfg_field *t, void *base);

static inline void *cfg_at(const void *base, size_t off)
{
    return (char *)base + off;
}

/* ---- walkers (cfg_dump.c, cfg.c) ---- */

/* The JSON object of the struct at base described by t (a new reference; *ok false on OOM). */
json_t *cfg_dump_object(const void *base, const struct cfg_field *t, bool *ok);
/* "host:port" ("[v6]:port" for an IPv6 host) as a JSON string (*ok false on OOM). */
json_t *cfg_dump_hostport(const char *host, uint16_t port, bool *ok);
/* Frees everything the struct at base owns according to t (not the struct itself). */
void cfg_free_object(void *base, const struct cfg_field *t);

#endif

/* cfg_parse.c - JSON text to struct cfg, driven by declarative key tables.
 *
 * Each JSON object has a table of its keys (name, setter, target offset, bounds, default), in the
 * manner of nginx's command tables. parse_object() walks an object's keys in document order,
 * calls the setter of each known key with the JSON path extended by the key, reports unknown
 * keys and missing required ones. Setters never stop at the first problem: every problem in the
 * document is appended to the error list and parsing goes on with the next value, so one run
 * reports all of them. A value that is rejected leaves its target at the default (numbers) or
 * NULL (strings); the half-built cfg is freed when any error was found.
 *
 * Arrays keep one slot per JSON element, so slot i always corresponds to path "[i]" and the
 * cross-object checks of cfg_validate.c can name the element they complain about.
 */
#include "config/cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/cut.h"
#include "core/text.h"

#define PATH_CAP 1024
#define TOKEN_MAX 128 /* header and cookie names */
#define PATH_PREFIX_MAX 1024
#define HOSTNAME_MAX 253

/* The parse context: the error list, the JSON path of the value being parsed, and a little
 * state one setter leaves for a later one in the same object. */
struct pctx {
    struct cfg_errors *errs;
    bool oom;
    char path[PATH_CAP];
    size_t plen;
    bool pools_known; /* the current route's pool names are known (weights may be checked) */
};

struct field;
typedef void set_fn(struct pctx *c, const json_t *v, void *base, const struct field *f);

enum {
    F_REQUIRED = 1u << 0,
    F_DEFER = 1u << 1, /* parsed after the other keys of the object (needs their values) */
    F_LOWER = 1u << 2, /* a string stored lower case */
    F_ADMIN = 1u << 3, /* the admin API's variant of an object (tls) */
};

/* One key of a JSON object. */
struct field {
    const char *key;
    set_fn *set;
    size_t off;              /* target inside the object's struct */
    long long min, max;      /* integer bounds, or string length / array size bounds */
    long long def;           /* default of an integer or boolean */
    const char *def_str;     /* default of a string */
    unsigned flags;          /* F_* */
    const struct field *sub; /* the table of a nested object */
};

/* ---- errors and paths ---- */

static void perr(struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void perr(struct pctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (cfg_errors_add(c->errs, c->path, 0, 0, "%s", msg) != 0)
        c->oom = true;
}

static size_t path_key(struct pctx *c, const char *key)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, PATH_CAP - c->plen, "%s%s", c->plen ? "." : "", key);
    c->plen = n < 0 ? c->plen : c->plen + (size_t)n;
    if (c->plen >= PATH_CAP)
        c->plen = PATH_CAP - 1;
    return old;
}

static size_t path_index(struct pctx *c, size_t i)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, PATH_CAP - c->plen, "[%zu]", i);
    c->plen = n < 0 ? c->plen : c->plen + (size_t)n;
    if (c->plen >= PATH_CAP)
        c->plen = PATH_CAP - 1;
    return old;
}

static void path_pop(struct pctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static void *at(void *base, size_t off)
{
    return (char *)base + off;
}

static char *xstrdup(struct pctx *c, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        c->oom = true;
    return d;
}

static void *xcalloc(struct pctx *c, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL)
        c->oom = true;
    return p;
}

static void set_str(char **dst, char *s)
{
    free(*dst);
    *dst = s;
}

/* ---- lexical rules ---- */

static bool is_ident_char(int ch)
{
    return isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
}

static bool is_tchar(int ch)
{
    return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* DNS name: labels of 1..63 letters, digits and '-', not starting or ending with '-', at most
 * 253 characters in all. */
static bool valid_hostname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HOSTNAME_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = s[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum((unsigned char)ch) || ch == '-') {
            if (label == 0 && ch == '-')
                return false;
            label++;
        } else {
            return false;
        }
    }
    return true;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static bool parse_port(const char *s, uint16_t *port)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* Splits "host:port" or "[v6]:port". On success sets *host (malloc'd: a canonical numeric
 * address without brackets, or a lower-case DNS name) and *port, and returns NULL; otherwise
 * returns the message. numeric_only refuses DNS names (listeners bind, they do not resolve). */
static const char *parse_hostport(const char *s, bool numeric_only, char **host, uint16_t *port)
{
    char buf[HOSTNAME_MAX + 1];
    const char *colon;
    int family;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return "expected [IPv6]:port";
        size_t n = (size_t)(close - s - 1);
        if (n >= sizeof(buf))
            return "invalid IPv6 address";
        memcpy(buf, s + 1, n);
        buf[n] = '\0';
        colon = close + 1;
        family = AF_INET6;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return numeric_only ? "expected IPv4:port or [IPv6]:port" : "expected host:port";
        size_t n = (size_t)(colon - s);
        if (memchr(s, ':', n) != NULL)
            return "IPv6 addresses must be written in brackets: [addr]:port";
        if (n == 0)
            return "missing host";
        if (n >= sizeof(buf))
            return "host name too long";
        memcpy(buf, s, n);
        buf[n] = '\0';
        family = strspn(buf, "0123456789.") == n ? AF_INET : 0;
    }
    if (!parse_port(colon + 1, port))
        return "port must be between 1 and 65535";
    if (family == 0) {
        if (numeric_only)
            return "host must be a numeric IPv4 or [IPv6] address";
        if (!valid_hostname(buf))
            return "invalid host name";
        lower(buf);
    } else {
        uint8_t addr[16];
        if (inet_pton(family, buf, addr) != 1)
            return family == AF_INET ? "invalid IPv4 address" : "invalid IPv6 address";
        inet_ntop(family, addr, buf, sizeof(buf));
    }
    *host = strdup(buf);
    return *host == NULL ? "out of memory" : NULL;
}

/* Parses "addr", "addr/prefix" (IPv4 or IPv6). Returns NULL or the message (written to msg). */
static const char *parse_cidr(const char *s, struct cfg_cidr *out, char *msg, size_t cap)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(buf))
        return "expected an address or address/prefix";
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof(*out));
    unsigned bits;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        bits = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        bits = 128;
    } else {
        return "expected an address or address/prefix";
    }
    out->prefix = bits;
    if (slash != NULL) {
        const char *p = slash + 1;
        size_t pn = strlen(p);
        unsigned v = 0;
        bool ok = pn >= 1 && pn <= 3 && strspn(p, "0123456789") == pn;
        for (size_t i = 0; ok && i < pn; i++)
            v = v * 10 + (unsigned)(p[i] - '0');
        if (!ok || v > bits) {
            snprintf(msg, cap, "prefix length must be between 0 and %u", bits);
            return msg;
        }
        out->prefix = v;
    }
    bool host_bits = false;
    uint8_t net[16];
    memcpy(net, out->addr, sizeof(net));
    for (unsigned i = out->prefix; i < bits; i++) {
        uint8_t mask = (uint8_t)(0x80u >> (i % 8));
        if (net[i / 8] & mask) {
            host_bits = true;
            net[i / 8] &= (uint8_t)~mask;
        }
    }
    if (host_bits) {
        char text[INET6_ADDRSTRLEN];
        inet_ntop(out->family, net, text, sizeof(text));
        snprintf(msg, cap, "host bits set beyond the /%u prefix (the network is %s/%u)",
                 out->prefix, text, out->prefix);
        return msg;
    }
    return NULL;
}

/* ---- the object walker ---- */

static const struct field *find_field(const struct field *t, const char *key)
{
    for (; t->key != NULL; t++)
        if (strcmp(t->key, key) == 0)
            return t;
    return NULL;
}

static void set_object(struct pctx *c, const json_t *v, void *base, const struct field *f);
static void set_limits(struct pctx *c, const json_t *v, void *base, const struct field *f);
static void set_uint(struct pctx *c, const json_t *v, void *base, const struct field *f);
static void set_bool(struct pctx *c, const json_t *v, void *base, const struct field *f);
static void set_protocols(struct pctx *c, const json_t *v, void *base, const struct field *f);
static void set_mode(struct pctx *c, const json_t *v, void *base, const struct field *f);
static void set_gid(struct pctx *c, const json_t *v, void *base, const struct field *f);
static void set_path(struct pctx *c, const json_t *v, void *base, const struct field *f);

/* Writes the defaults of table into the struct at base (recursing into nested objects). */
static void apply_defaults(struct pctx *c, const struct field *t, void *base)
{
    for (; t->key != NULL; t++) {
        if (t->set == set_uint || t->set == set_protocols || t->set == set_mode)
            *(unsigned *)at(base, t->off) = (unsigned)t->def;
        else if (t->set == set_gid)
            *(long *)at(base, t->off) = (long)t->def;
        else if (t->set == set_bool)
            *(int *)at(base, t->off) = (int)t->def;
        else if (t->set == set_object || t->set == set_limits)
            apply_defaults(c, t->sub, at(base, t->off));
        else if (t->def_str != NULL)
            set_str(at(base, t->off), xstrdup(c, t->def_str));
    }
}

/* Parses the JSON object v against table t into base (defaults already applied). Returns false
 * when v is not an object. */
static bool parse_object(struct pctx *c, const json_t *v, const struct field *t, void *base)
{
    if (!json_is_object(v)) {
        perr(c, "expected an object");
        return false;
    }
    const char *key;
    json_t *val;
    for (int pass = 0; pass < 2; pass++) {
        json_object_foreach((json_t *)v, key, val)
        {
            const struct field *f = find_field(t, key);
            if (pass == 1 && (f == NULL || !(f->flags & F_DEFER)))
                continue;
            if (pass == 0 && f != NULL && (f->flags & F_DEFER))
                continue;
            size_t old = path_key(c, key);
            if (f == NULL)
                perr(c, "unknown key");
            else
                f->set(c, val, base, f);
            path_pop(c, old);
        }
    }
    for (const struct field *f = t; f->key != NULL; f++)
        if ((f->flags & F_REQUIRED) && json_object_get(v, f->key) == NULL)
            perr(c, "missing required key \"%s\"", f->key);
    return true;
}

/* ---- generic setters ---- */

static void set_object(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    parse_object(c, v, f->sub, at(base, f->off));
}

static void set_uint(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    if (!json_is_integer(v)) {
        perr(c, "expected an integer");
        return;
    }
    json_int_t n = json_integer_value(v);
    if (n < f->min || n > f->max) {
        perr(c, "must be between %lld and %lld", f->min, f->max);
        return;
    }
    *(unsigned *)at(base, f->off) = (unsigned)n;
}

static void set_bool(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    if (!json_is_boolean(v)) {
        perr(c, "expected true or false");
        return;
    }
    *(int *)at(base, f->off) = json_is_true(v);
}

/* A name of [A-Za-z0-9._-], f->min..f->max characters. */
static void set_ident(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    char **dst = at(base, f->off);
    set_str(dst, NULL);
    if (!json_is_string(v)) {
        perr(c, "expected a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    bool ok = (long long)n >= f->min && (long long)n <= f->max;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_ident_char((unsigned char)s[i]);
    if (!ok) {
        perr(c, "must be %lld to %lld characters of A-Z a-z 0-9 . _ -", f->min, f->max);
        return;
    }
    *dst = xstrdup(c, s);
}

/* A header or cookie name (an RFC 9110 token), 1..TOKEN_MAX; F_LOWER stores it lower case. */
static void set_token(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    char **dst = at(base, f->off);
    set_str(dst, NULL);
    if (!json_is_string(v)) {
        perr(c, "expected a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= TOKEN_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_tchar((unsigned char)s[i]);
    if (!ok) {
        perr(c, "must be 1 to %d token characters (letters, digits, !#$%%&'*+-.^_`|~)", TOKEN_MAX);
        return;
    }
    *dst = xstrdup(c, s);
    if (*dst != NULL && (f->flags & F_LOWER))
        lower(*dst);
}

static void set_cidr_list(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_cidr_list *l = at(base, f->off);
    if (!json_is_array(v)) {
        perr(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if ((long long)n < f->min) {
        perr(c, "must not be empty");
        return;
    }
    free(l->v);
    l->n = 0;
    l->v = xcalloc(c, n, sizeof(*l->v));
    if (l->v == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = path_index(c, i);
        char msg[160];
        const char *err;
        if (!json_is_string(e))
            perr(c, "expected a string");
        else if ((err = parse_cidr(json_string_value(e), &l->v[l->n], msg, sizeof(msg))) != NULL)
            perr(c, "%s", err);
        else
            l->n++;
        path_pop(c, old);
    }
}

/* ---- listeners ---- */

/* A listening "host:port" with a numeric host (listeners, the admin API, the metrics listener):
 * the text into *address, its parts into *host and *port. */
static void parse_listen_address(struct pctx *c, const json_t *v, char **address, char **host,
                                 uint16_t *port)
{
    if (!json_is_string(v)) {
        perr(c, "expected a string");
        return;
    }
    const char *err = parse_hostport(json_string_value(v), true, host, port);
    if (err != NULL) {
        perr(c, "%s", err);
        return;
    }
    *address = xstrdup(c, json_string_value(v));
}

static void set_listener_address(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_listener *l = base;
    parse_listen_address(c, v, &l->address, &l->host, &l->port);
}

static void set_protocols(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    unsigned *bits = at(base, f->off);
    if (!json_is_array(v)) {
        perr(c, "expected an array");
        return;
    }
    if (json_array_size(v) == 0) {
        perr(c, "must not be empty");
        return;
    }
    *bits = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = path_index(c, i);
        if (!json_is_string(e))
            perr(c, "expected a string");
        else if (strcmp(json_string_value(e), "http1") != 0)
            perr(c, "unsupported protocol (only \"http1\")");
        else if (*bits & CFG_PROTO_HTTP1)
            perr(c, "duplicate protocol");
        else
            *bits |= CFG_PROTO_HTTP1;
        path_pop(c, old);
    }
}

/* ---- listeners[].tls ---- */

#define TLS_PATH_MAX 4096

static const struct field tls_cert_fields[] = {
    {"cert", set_path, offsetof(struct cfg_tls_cert, cert), .max = TLS_PATH_MAX},
    {"key", set_path, offsetof(struct cfg_tls_cert, key), .max = TLS_PATH_MAX},
    {"pem", set_path, offsetof(struct cfg_tls_cert, pem), .max = TLS_PATH_MAX},
    {NULL},
};

/* A certificate object holds either "cert" and "key", or "pem" (key and chain in one file). */
static void check_cert_keys(struct pctx *c, const json_t *v)
{
    bool cert = json_object_get(v, "cert") != NULL, key = json_object_get(v, "key") != NULL;
    bool pem = json_object_get(v, "pem") != NULL;
    if (pem ? (cert || key) : !(cert && key))
        perr(c, "must have either \"cert\" and \"key\", or \"pem\" (key and chain in one file)");
}

static void set_tls_certs(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_tls *t = base;
    if (!json_is_array(v)) {
        perr(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > CFG_TLS_MAX_CERTS) {
        perr(c, "must have between 1 and %d certificates", CFG_TLS_MAX_CERTS);
        if (n == 0)
            return;
    }
    t->certs = xcalloc(c, n, sizeof(*t->certs));
    if (t->certs == NULL)
        return;
    t->ncerts = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = path_index(c, i);
        if (parse_object(c, e, tls_cert_fields, &t->certs[i]))
            check_cert_keys(c, e);
        path_pop(c, old);
    }
}

static void set_client_auth(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    enum cfg_client_auth *dst = at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s != NULL && strcmp(s, "none") == 0)
        *dst = CFG_CLIENT_AUTH_NONE;
    else if (s != NULL && strcmp(s, "optional") == 0)
        *dst = CFG_CLIENT_AUTH_OPTIONAL;
    else if (s != NULL && strcmp(s, "required") == 0)
        *dst = CFG_CLIENT_AUTH_REQUIRED;
    else
        perr(c, "must be \"none\", \"optional\" or \"required\"");
}

static void set_tls_version(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    unsigned *dst = at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s != NULL && strcmp(s, "1.2") == 0)
        *dst = 12;
    else if (s != NULL && strcmp(s, "1.3") == 0)
        *dst = 13;
    else
        perr(c, "must be \"1.2\" or \"1.3\" (older versions are not offered)");
}

static void set_alpn(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_tls *t = base;
    if (!json_is_array(v)) {
        perr(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n == 0) {
        perr(c, "must not be empty");
        return;
    }
    t->nalpn = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = path_index(c, i);
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
            perr(c, "unsupported protocol (only \"h2\" and \"http/1.1\")");
        else if (dup)
            perr(c, "duplicate protocol");
        else if (t->nalpn < CFG_TLS_MAX_ALPN)
            t->alpn[t->nalpn++] = a;
        path_pop(c, old);
    }
}

static const struct field tls_fields[] = {
    {"certificates", set_tls_certs, 0, .flags = F_REQUIRED},
    {"client_auth", set_client_auth, offsetof(struct cfg_tls, client_auth)},
    {"client_ca", set_path, offsetof(struct cfg_tls, client_ca), .max = TLS_PATH_MAX},
    {"crl", set_path, offsetof(struct cfg_tls, crl), .max = TLS_PATH_MAX},
    {"min_version", set_tls_version, offsetof(struct cfg_tls, min_version)},
    {"alpn", set_alpn, 0},
    {NULL},
};

/* The tls object, plus the rules between its keys. With F_ADMIN (the admin API's tls), client
 * certificates are required: client_auth defaults to "required" and may not say anything else
 * (bank rule: no unauthenticated remote control), and ALPN offers HTTP/1.1 only. */
static void set_tls(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_tls **dst = at(base, f->off);
    struct cfg_tls *t = xcalloc(c, 1, sizeof(*t));
    if (t == NULL)
        return;
    *dst = t;
    bool admin = (f->flags & F_ADMIN) != 0;
    t->client_auth = admin ? CFG_CLIENT_AUTH_REQUIRED : CFG_CLIENT_AUTH_NONE;
    t->min_version = 12;
    t->alpn[0] = CFG_ALPN_HTTP11;
    t->nalpn = 1;
    if (!parse_object(c, v, tls_fields, t))
        return;
    if (admin && t->client_auth != CFG_CLIENT_AUTH_REQUIRED) {
        size_t old = path_key(c, "client_auth");
        perr(c, "the admin API requires client certificates: must be \"required\"");
        path_pop(c, old);
        t->client_auth = CFG_CLIENT_AUTH_REQUIRED; /* so the rules below are not repeated */
    }
    if (admin) {
        for (size_t i = 0; i < t->nalpn; i++) {
            if (t->alpn[i] != CFG_ALPN_HTTP11) {
                size_t old = path_key(c, "alpn");
                perr(c, "the admin API speaks HTTP/1.1 only: must be [\"http/1.1\"]");
                path_pop(c, old);
                break;
            }
        }
    }
    if (t->client_auth != CFG_CLIENT_AUTH_NONE && json_object_get(v, "client_ca") == NULL)
        perr(c, admin ? "\"client_ca\" is required: the admin API verifies client certificates"
                      : "\"client_ca\" is required when client_auth is \"optional\" or "
                        "\"required\"");
    if (t->client_auth == CFG_CLIENT_AUTH_NONE && json_object_get(v, "crl") != NULL) {
        size_t old = path_key(c, "crl");
        perr(c, "a CRL needs client_auth \"optional\" or \"required\"");
        path_pop(c, old);
    }
}

static const struct field listener_fields[] = {
    {"name", set_ident, offsetof(struct cfg_listener, name), 1, 64},
    {"address", set_listener_address, 0, .flags = F_REQUIRED},
    {"protocols", set_protocols, offsetof(struct cfg_listener, protocols), .def = CFG_PROTO_HTTP1},
    {"tls", set_tls, offsetof(struct cfg_listener, tls)},
    {NULL},
};

static void set_listeners(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg *cfg = base;
    if (!json_is_array(v)) {
        perr(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > CFG_MAX_LISTENERS)
        perr(c, "must have between 1 and %d listeners", CFG_MAX_LISTENERS);
    cfg->listeners = xcalloc(c, n, sizeof(*cfg->listeners));
    if (cfg->listeners == NULL)
        return;
    cfg->nlisteners = n;
    for (size_t i = 0; i < n; i++) {
        struct cfg_listener *l = &cfg->listeners[i];
        const json_t *e = json_array_get(v, i);
        size_t old = path_index(c, i);
        apply_defaults(c, listener_fields, l);
        if (parse_object(c, e, listener_fields, l) && json_object_get(e, "name") == NULL) {
            char name[32];
            snprintf(name, sizeof(name), "listener%zu", i);
            l->name = xstrdup(c, name);
        }
        path_pop(c, old);
    }
}

/* ---- routes ---- */

static void set_hosts(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_route *r = base;
    if (!json_is_array(v)) {
        perr(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    r->hosts = xcalloc(c, n, sizeof(*r->hosts));
    if (r->hosts == NULL)
        return;
    r->nhosts = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = path_index(c, i);
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        if (s == NULL) {
            perr(c, "expected a string");
        } else if (strcmp(s, "*") == 0 || valid_hostname(strncmp(s, "*.", 2) == 0 ? s + 2 : s)) {
            r->hosts[i] = xstrdup(c, s);
            if (r->hosts[i] != NULL)
                lower(r->hosts[i]);
        } else {
            perr(c, "expected a host name, \"*.suffix\" or \"*\"");
        }
        path_pop(c, old);
    }
}

static void set_path_prefix(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    char **dst = at(base, f->off);
    set_str(dst, NULL);
    if (!json_is_string(v)) {
        perr(c, "expected a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (s[0] != '/') {
        perr(c, "must start with \"/\"");
        return;
    }
    if (n > PATH_PREFIX_MAX) {
        perr(c, "must be at most %d characters", PATH_PREFIX_MAX);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f) {
            perr(c, "must not contain spaces or control characters");
            return;
        }
        if (ch == '?' || ch == '#') {
            perr(c, "must not contain \"?\" or \"#\"");
            return;
        }
    }
    *dst = xstrdup(c, s);
}

static void set_balance(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    enum cfg_balance *b = at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s != NULL && strcmp(s, "least_outstanding") == 0)
        *b = CFG_BALANCE_LEAST_OUTSTANDING;
    else if (s != NULL && strcmp(s, "round_robin") == 0)
        *b = CFG_BALANCE_ROUND_ROBIN;
    else
        perr(c, "must be \"least_outstanding\" or \"round_robin\"");
}

static void set_endpoints(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_pool *p = base;
    if (!json_is_array(v)) {
        perr(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > 256)
        perr(c, "must have between 1 and 256 endpoints");
    p->endpoints = xcalloc(c, n, sizeof(*p->endpoints));
    if (p->endpoints == NULL)
        return;
    p->nendpoints = n;
    for (size_t i = 0; i < n; i++) {
        struct cfg_endpoint *ep = &p->endpoints[i];
        const json_t *e = json_array_get(v, i);
        size_t old = path_index(c, i);
        const char *err;
        if (!json_is_string(e))
            perr(c, "expected a string");
        else if ((err = parse_hostport(json_string_value(e), false, &ep->host, &ep->port)))
            perr(c, "%s", err);
        else
            ep->address = xstrdup(c, json_string_value(e));
        path_pop(c, old);
    }
}

static void set_up_proto(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    enum cfg_up_proto *p = at(base, f->off);
    static const char *const names[] = {"http1", "h2c", "h2"};
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    for (size_t i = 0; s != NULL && i < CUT_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *p = (enum cfg_up_proto)i;
            return;
        }
    }
    perr(c, "must be \"http1\", \"h2c\" or \"h2\"");
}

static void set_server_name(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    char **dst = at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s == NULL || !valid_hostname(s))
        perr(c, "must be a host name");
    else
        set_str(dst, xstrdup(c, s));
}

/* pools.X.tls.client_certificate: one certificate, the same shape as a listener's. */
static void set_client_cert(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_tls_cert **dst = at(base, f->off);
    struct cfg_tls_cert *cc = xcalloc(c, 1, sizeof(*cc));
    if (cc == NULL)
        return;
    *dst = cc;
    if (parse_object(c, v, tls_cert_fields, cc))
        check_cert_keys(c, v);
}

static const struct field upstream_tls_fields[] = {
    {"ca", set_path, offsetof(struct cfg_upstream_tls, ca), .max = TLS_PATH_MAX,
     .flags = F_REQUIRED},
    {"crl", set_path, offsetof(struct cfg_upstream_tls, crl), .max = TLS_PATH_MAX},
    {"server_name", set_server_name, offsetof(struct cfg_upstream_tls, server_name)},
    {"client_certificate", set_client_cert, offsetof(struct cfg_upstream_tls, client_cert)},
    {"min_version", set_tls_version, offsetof(struct cfg_upstream_tls, min_version)},
    {NULL},
};

/* pools.X.tls and siem.tls: the client side of TLS, the peer always verified. */
static void set_upstream_tls(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_upstream_tls **dst = at(base, f->off);
    struct cfg_upstream_tls *t = xcalloc(c, 1, sizeof(*t));
    if (t == NULL)
        return;
    *dst = t;
    t->min_version = 12;
    parse_object(c, v, upstream_tls_fields, t);
}

/* A percentage (number 0..100, at most two decimals) stored as basis points. The range is
 * checked before the conversion to unsigned (converting an out-of-range double is undefined
 * behaviour); the negated test also refuses NaN. */
static void set_percent_bp(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (!(d >= 0.0 && d <= 100.0)) {
        perr(c, "must be a percentage between 0 and 100 with at most two decimals");
        return;
    }
    double scaled = d * 100.0;
    unsigned bp = (unsigned)(scaled + 0.5);
    if ((double)bp - scaled > 1e-6 || scaled - (double)bp > 1e-6)
        perr(c, "must be a percentage between 0 and 100 with at most two decimals");
    else
        *(unsigned *)at(base, f->off) = bp;
}

static void set_status_range(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_health_check *h = base;
    json_int_t lo = json_is_array(v) && json_array_size(v) == 2 &&
                            json_is_integer(json_array_get(v, 0))
                        ? json_integer_value(json_array_get(v, 0))
                        : -1;
    json_int_t hi = lo >= 0 && json_is_integer(json_array_get(v, 1))
                        ? json_integer_value(json_array_get(v, 1))
                        : -1;
    if (lo < 100 || hi > 599 || hi < lo) {
        perr(c, "must be [FIRST, LAST], statuses between 100 and 599");
        return;
    }
    h->status_min = (unsigned)lo;
    h->status_max = (unsigned)hi;
}

static void set_check_host(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    char **dst = at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s == NULL || !valid_hostname(s))
        perr(c, "must be a host name");
    else
        set_str(dst, xstrdup(c, s));
}

static const struct field health_check_fields[] = {
    {"path", set_path_prefix, offsetof(struct cfg_health_check, path), .flags = F_REQUIRED},
    {"host", set_check_host, offsetof(struct cfg_health_check, host)},
    {"interval_ms", set_uint, offsetof(struct cfg_health_check, interval_ms), 100, 300000},
    {"jitter_ms", set_uint, offsetof(struct cfg_health_check, jitter_ms), 0, 60000},
    {"timeout_ms", set_uint, offsetof(struct cfg_health_check, timeout_ms), 10, 60000},
    {"healthy_threshold", set_uint, offsetof(struct cfg_health_check, healthy_threshold), 1, 100},
    {"unhealthy_threshold", set_uint, offsetof(struct cfg_health_check, unhealthy_threshold), 1,
     100},
    {"expected_status", set_status_range, 0},
    {NULL},
};

#define CFG_HC_TIMEOUT_DEFAULT_MS 2000u /* health_check.timeout_ms when the interval allows */

static void set_health_check(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_health_check *h = at(base, f->off);
    *h = (struct cfg_health_check){.enabled = 1, .interval_ms = 5000, .jitter_ms = 1000,
                                   .timeout_ms = 0, .healthy_threshold = 2,
                                   .unhealthy_threshold = 3, .status_min = 200,
                                   .status_max = 399};
    parse_object(c, v, health_check_fields, h);
    /* Without timeout_ms (0 is below its minimum, so it was not given): 2000 ms, or half of
     * interval_ms when 2000 would not be shorter than it ("interval_ms": 1000 alone is valid).
     * An explicit timeout_ms must be shorter than interval_ms. */
    if (h->timeout_ms == 0)
        h->timeout_ms = h->interval_ms > CFG_HC_TIMEOUT_DEFAULT_MS ? CFG_HC_TIMEOUT_DEFAULT_MS
                                                                  : h->interval_ms / 2;
    if (h->timeout_ms >= h->interval_ms) {
        size_t old = path_key(c, "timeout_ms");
        perr(c, "must be shorter than interval_ms (%u)", h->interval_ms);
        path_pop(c, old);
    }
}

static const struct field pool_fields[] = {
    {"endpoints", set_endpoints, 0, .flags = F_REQUIRED},
    {"balance", set_balance, offsetof(struct cfg_pool, balance)},
    {"protocol", set_up_proto, offsetof(struct cfg_pool, protocol)},
    {"tls", set_upstream_tls, offsetof(struct cfg_pool, tls)},
    {"health_check", set_health_check, offsetof(struct cfg_pool, health_check)},
    {"slow_start_ms", set_uint, offsetof(struct cfg_pool, slow_start_ms), 0, 3600000},
    {NULL},
};

/* The rules between a pool's "protocol" and "tls". */
static void check_pool_protocol(struct pctx *c, const json_t *v, const struct cfg_pool *p)
{
    size_t old = path_key(c, "protocol");
    if (p->protocol == CFG_UP_H2C && p->tls != NULL)
        perr(c, "\"h2c\" is cleartext HTTP/2: use \"h2\" with \"tls\"");
    else if (p->protocol == CFG_UP_H2 && p->tls == NULL && json_object_get(v, "tls") == NULL)
        perr(c, "\"h2\" is negotiated with TLS ALPN: add \"tls\" (or use \"h2c\" for "
                "cleartext HTTP/2)");
    path_pop(c, old);
}

static bool valid_pool_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 32 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static void pool_free_fields(struct cfg_pool *p)
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
}

static void set_pools(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_route *r = base;
    if (!json_is_object(v)) {
        perr(c, "expected an object");
        return;
    }
    size_t n = json_object_size(v);
    if (n < 2 || n > CFG_MAX_POOLS)
        perr(c, "must have between 2 and %d pools", CFG_MAX_POOLS);
    c->pools_known = n >= 1 && n <= CFG_MAX_POOLS;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        size_t old = path_key(c, key);
        struct cfg_pool extra = {0};
        /* Pools past the limit are still checked (so all their errors show), then dropped. */
        struct cfg_pool *p = r->npools < CFG_MAX_POOLS ? &r->pools[r->npools++] : &extra;
        p->name = xstrdup(c, key);
        if (!valid_pool_name(key))
            perr(c, "pool name must be 1 to 32 characters of a-z 0-9 _ -");
        if (parse_object(c, val, pool_fields, p))
            check_pool_protocol(c, val, p);
        if (p == &extra)
            pool_free_fields(&extra);
        path_pop(c, old);
    }
}

/* Deferred until after "pools" so that the pool names are known. */
static void set_weights(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_route *r = base;
    if (!json_is_object(v)) {
        perr(c, "expected an object");
        return;
    }
    bool seen[CFG_MAX_POOLS] = {false};
    bool all_ok = true;
    unsigned long sum = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        size_t old = path_key(c, key);
        int idx = c->pools_known ? cfg_route_pool_index(r, key) : -1;
        bool ok = false;
        if (c->pools_known && idx < 0) {
            perr(c, "no such pool");
        } else if (!json_is_number(val)) {
            perr(c, "expected a number");
        } else {
            /* In range, d * 100 is within 1e-6 of an integer exactly when d has at most two
             * decimals (12.34 * 100 is 1233.9999999999998 in binary floating point). */
            double d = json_number_value(val);
            double scaled = d * 100.0;
            unsigned bp = 0;
            if (!(d >= 0.0 && d <= 100.0))
                perr(c, "must be between 0 and 100");
            else if ((bp = (unsigned)(scaled + 0.5)) - scaled > 1e-6 || scaled - bp > 1e-6)
                perr(c, "must have at most two decimal places");
            else
                ok = true;
            if (ok && idx >= 0) {
                r->pools[idx].weight_bp = bp;
                seen[idx] = true;
                sum += r->pools[idx].weight_bp;
            }
        }
        all_ok = all_ok && ok;
        path_pop(c, old);
    }
    if (!c->pools_known)
        return;
    for (size_t i = 0; i < r->npools; i++) {
        if (!seen[i] && r->pools[i].name != NULL && json_object_get(v, r->pools[i].name) == NULL) {
            perr(c, "missing weight for pool \"%s\"", r->pools[i].name);
            all_ok = false;
        }
    }
    if (all_ok && sum != CFG_BP_TOTAL) {
        char text[32];
        text_percent(sum, text, sizeof(text));
        perr(c, "weights sum to %s, must be 100", text);
    }
}

static void set_sticky_header(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_sticky *s = base;
    set_token(c, v, base, f);
    s->kind = CFG_STICKY_HEADER;
}

static void set_sticky_cookie(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_sticky *s = base;
    set_token(c, v, base, f);
    s->kind = CFG_STICKY_COOKIE;
}

static void set_sticky_client(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_sticky *s = base;
    if (!json_is_boolean(v))
        perr(c, "expected true or false");
    else if (!json_is_true(v))
        perr(c, "must be true (leave out \"sticky\" to disable stickiness)");
    else
        s->kind = CFG_STICKY_CLIENT_IP;
}

static const struct field sticky_fields[] = {
    {"header", set_sticky_header, offsetof(struct cfg_sticky, name), .flags = F_LOWER},
    {"cookie", set_sticky_cookie, offsetof(struct cfg_sticky, name)},
    {"client_address", set_sticky_client, 0},
    {NULL},
};

static void set_sticky(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_sticky *s = at(base, f->off);
    if (json_is_object(v)) {
        int kinds = 0;
        for (const struct field *k = sticky_fields; k->key != NULL; k++)
            kinds += json_object_get(v, k->key) != NULL;
        if (kinds != 1) /* the keys present are still checked one by one */
            perr(c, "must have exactly one of \"header\", \"cookie\", \"client_address\"");
    }
    parse_object(c, v, sticky_fields, s);
}

static void set_subjects(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_override *o = base;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 64) {
        perr(c, "expected an array of 1 to 64 certificate subjects");
        return;
    }
    o->trusted_subjects = xcalloc(c, json_array_size(v), sizeof(*o->trusted_subjects));
    if (o->trusted_subjects == NULL)
        return;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = path_index(c, i);
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        if (s == NULL || *s == '\0' || strlen(s) > 512 || strchr(s, '=') == NULL)
            perr(c, "expected a certificate subject such as \"CN=smoke-test,OU=QA,O=Bank\"");
        else
            o->trusted_subjects[o->nsubjects++] = xstrdup(c, s);
        path_pop(c, old);
    }
}

static const struct field override_fields[] = {
    {"header", set_token, offsetof(struct cfg_override, header), .flags = F_REQUIRED | F_LOWER},
    {"trusted_peers", set_cidr_list, offsetof(struct cfg_override, trusted_peers), .min = 1,
     .flags = F_REQUIRED},
    {"trusted_subjects", set_subjects, 0},
    {NULL},
};

static const struct field outlier_fields[] = {
    {"consecutive_failures", set_uint, offsetof(struct cfg_outlier, consecutive_failures), 1,
     1000},
    {"base_ejection_ms", set_uint, offsetof(struct cfg_outlier, base_ejection_ms), 100, 3600000},
    {"max_ejection_ms", set_uint, offsetof(struct cfg_outlier, max_ejection_ms), 100, 3600000},
    {"max_ejection_percent", set_uint, offsetof(struct cfg_outlier, max_ejection_percent), 0,
     100},
    {NULL},
};

static void set_outlier(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_outlier *o = at(base, f->off);
    *o = (struct cfg_outlier){1, 5, 30000, 300000, 50};
    parse_object(c, v, outlier_fields, o);
    if (o->max_ejection_ms < o->base_ejection_ms) {
        size_t old = path_key(c, "max_ejection_ms");
        perr(c, "must not be below base_ejection_ms");
        path_pop(c, old);
    }
}

static const struct field watchdog_fields[] = {
    {"max_5xx_percent", set_percent_bp, offsetof(struct cfg_watchdog, max_5xx_bp),
     .flags = F_REQUIRED},
    {"window_s", set_uint, offsetof(struct cfg_watchdog, window_s), 5, 60},
    {"min_requests", set_uint, offsetof(struct cfg_watchdog, min_requests), 1, 1000000},
    {NULL},
};

static void set_watchdog(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_watchdog *w = at(base, f->off);
    *w = (struct cfg_watchdog){1, 0, 30, 50};
    parse_object(c, v, watchdog_fields, w);
}

static const struct field route_fields[] = {
    {"name", set_ident, offsetof(struct cfg_route, name), 1, 64, .flags = F_REQUIRED},
    {"hosts", set_hosts, 0},
    {"path_prefix", set_path_prefix, offsetof(struct cfg_route, path_prefix), .def_str = "/"},
    {"pools", set_pools, 0, .flags = F_REQUIRED},
    {"weights", set_weights, 0, .flags = F_REQUIRED | F_DEFER},
    {"sticky", set_sticky, offsetof(struct cfg_route, sticky)},
    {"override", set_object, offsetof(struct cfg_route, override), .sub = override_fields},
    {"outlier_detection", set_outlier, offsetof(struct cfg_route, outlier)},
    {"watchdog", set_watchdog, offsetof(struct cfg_route, watchdog)},
    {NULL},
};

static void set_routes(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg *cfg = base;
    if (!json_is_array(v)) {
        perr(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > 1024)
        perr(c, "must have between 1 and 1024 routes");
    cfg->routes = xcalloc(c, n, sizeof(*cfg->routes));
    if (cfg->routes == NULL)
        return;
    cfg->nroutes = n;
    for (size_t i = 0; i < n; i++) {
        struct cfg_route *r = &cfg->routes[i];
        size_t old = path_index(c, i);
        c->pools_known = false;
        apply_defaults(c, route_fields, r);
        parse_object(c, json_array_get(v, i), route_fields, r);
        path_pop(c, old);
    }
}

/* ---- the document ---- */

#define TIMEOUT(key, member, lo, def)                                                              \
    {                                                                                              \
        key, set_uint, offsetof(struct cfg_timeouts, member), lo, 86400000, def                    \
    }

static const struct field timeout_fields[] = {
    TIMEOUT("client_header_ms", client_header, 1, 10000),
    TIMEOUT("client_idle_ms", client_idle, 1, 120000),
    TIMEOUT("upstream_connect_ms", upstream_connect, 1, 2000),
    TIMEOUT("upstream_header_ms", upstream_header, 1, 15000),
    TIMEOUT("body_idle_ms", body_idle, 1, 60000),
    {"request_body_ms", set_uint, offsetof(struct cfg_timeouts, request_body), 0, 86400000, 30000},
    TIMEOUT("upstream_idle_ms", upstream_idle, 1, 50000),
    {"shutdown_delay_ms", set_uint, offsetof(struct cfg_timeouts, shutdown_delay), 0, 600000, 0},
    TIMEOUT("drain_ms", drain, 1, 25000),
    TIMEOUT("dns_refresh_ms", dns_refresh, 1, 30000),
    {NULL},
};

#define LIMIT(member, lo, hi, def)                                                                 \
    {                                                                                              \
#member, set_uint, offsetof(struct cfg_limits, member), lo, hi, def                        \
    }

static const struct field limit_fields[] = {
    LIMIT(max_request_line, 256, 65536, 8192),
    LIMIT(max_header_bytes, 1024, 1048576, 32768),
    LIMIT(max_headers, 8, 1000, 100),
    LIMIT(max_connections, 1, 1000000, 10000),
    LIMIT(upstream_idle_per_endpoint, 0, 10000, 128),
    LIMIT(buffer_bytes, 4096, 67108864, 262144),
    LIMIT(min_body_rate, 0, 1073741824, 1024),
    {NULL},
};

static const struct field retry_fields[] = {
    {"max_tries", set_uint, offsetof(struct cfg_retries, max_tries), 1, 10, 3},
    {"budget_ms", set_uint, offsetof(struct cfg_retries, budget_ms), 1, 600000, 5000},
    {NULL},
};

/* The limits object, plus the rule between two of its keys (checked only when both are valid). */
static void set_limits(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_limits *l = at(base, f->off);
    size_t before = c->errs->n;
    if (!parse_object(c, v, f->sub, l) || c->errs->n != before)
        return;
    if (l->max_header_bytes < l->max_request_line) {
        size_t old = path_key(c, "max_header_bytes");
        perr(c, "must be at least max_request_line (%u)", l->max_request_line);
        path_pop(c, old);
    }
}

static const struct field access_log_fields[] = {
    {"enabled", set_bool, offsetof(struct cfg_access_log, enabled), .def = 1},
    {"country_database", set_path, offsetof(struct cfg_access_log, country_database),
     .max = TLS_PATH_MAX},
    {NULL},
};

/* ---- control ---- */

/* An absolute file path of 1..f->max characters, no control characters. */
static void set_path(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    char **dst = at(base, f->off);
    set_str(dst, NULL);
    if (!json_is_string(v)) {
        perr(c, "expected a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    bool ok = n >= 2 && (long long)n <= f->max && s[0] == '/';
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (!ok) {
        perr(c, "must be an absolute path of at most %lld characters", f->max);
        return;
    }
    *dst = xstrdup(c, s);
}

static void set_mode(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    unsigned *dst = at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    char *end = NULL;
    unsigned long m = s ? strtoul(s, &end, 8) : 0;
    if (!s || !*s || *end || strlen(s) > 4 || m > 0777) {
        perr(c, "expected an octal mode string such as \"0660\"");
        return;
    }
    *dst = (unsigned)m;
}

static void set_gid(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    long *dst = at(base, f->off);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 4294967294LL) {
        perr(c, "expected a numeric gid");
        return;
    }
    *dst = (long)json_integer_value(v);
}

static void set_roles(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_control *ctl = at(base, f->off);
    if (!json_is_array(v)) {
        perr(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n > 256) {
        perr(c, "at most 256 rules");
        return;
    }
    free(ctl->roles);
    ctl->nroles = 0;
    ctl->roles = xcalloc(c, n ? n : 1, sizeof(*ctl->roles));
    if (ctl->roles == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = path_index(c, i);
        struct cfg_role_rule r = {-1, -1, CUT_ROLE_NONE};
        bool ok = json_is_object(e);
        if (!ok) {
            perr(c, "expected an object");
        } else {
            const char *key;
            json_t *val;
            json_object_foreach((json_t *)e, key, val)
            {
                size_t o2 = path_key(c, key);
                if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0) {
                    if (!json_is_integer(val) || json_integer_value(val) < 0 ||
                        json_integer_value(val) > 4294967294LL) {
                        perr(c, "expected a numeric id");
                        ok = false;
                    } else if (key[0] == 'u') {
                        r.uid = (long)json_integer_value(val);
                    } else {
                        r.gid = (long)json_integer_value(val);
                    }
                } else if (strcmp(key, "role") == 0) {
                    r.role = json_is_string(val) ? role_parse(json_string_value(val))
                                                 : CUT_ROLE_NONE;
                    if (r.role == CUT_ROLE_NONE) {
                        perr(c, "must be one of viewer, operator, deployer, admin");
                        ok = false;
                    }
                } else {
                    perr(c, "unknown key");
                    ok = false;
                }
                path_pop(c, o2);
            }
            if (ok && r.role == CUT_ROLE_NONE) {
                perr(c, "missing required key \"role\"");
                ok = false;
            }
            if (ok && r.uid < 0 && r.gid < 0) {
                perr(c, "needs \"uid\" or \"gid\"");
                ok = false;
            }
        }
        if (ok)
            ctl->roles[ctl->nroles++] = r;
        path_pop(c, old);
    }
}

static const struct field control_fields[] = {
    {"socket", set_path, offsetof(struct cfg_control, socket), .max = 107},
    {"mode", set_mode, offsetof(struct cfg_control, mode), .def = 0660},
    {"group", set_gid, offsetof(struct cfg_control, group), .def = -1},
    {"state_file", set_path, offsetof(struct cfg_control, state_file), .max = 4096},
    {"audit_file", set_path, offsetof(struct cfg_control, audit_file), .max = 4096},
    {"max_clients", set_uint, offsetof(struct cfg_control, max_clients), 1, 1024, 16},
    {"request_timeout_ms", set_uint, offsetof(struct cfg_control, request_timeout), 100, 600000,
     5000},
    {"idle_timeout_ms", set_uint, offsetof(struct cfg_control, idle_timeout), 1000, 3600000,
     60000},
    {"roles", set_roles, 0},
    {NULL},
};

/* ---- admin ---- */

static void set_admin_address(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_admin *a = base;
    parse_listen_address(c, v, &a->address, &a->host, &a->port);
}

/* A certificate subject in RFC 2253 form. Only the mistakes people make are caught here (the
 * exact string is compared at run time): OpenSSL's default one-line form ("CN = x, O = y"), the
 * old slash form ("/CN=x/O=y"), and a pasted "subject=" prefix. */
static void set_admin_subject(struct pctx *c, const json_t *v, char **dst)
{
    if (!json_is_string(v)) {
        perr(c, "expected a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    bool ok = n >= 3 && n <= CFG_ADMIN_SUBJECT_MAX && strlen(s) == n && strchr(s, '=') != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (!ok)
        perr(c, "must be a distinguished name of 3 to %d characters in RFC 2253 form, such as "
                "\"CN=release-pipeline,OU=Platform,O=Bank\"",
             CFG_ADMIN_SUBJECT_MAX);
    else if (strncmp(s, "subject=", 8) == 0)
        perr(c, "remove the \"subject=\" prefix that openssl prints");
    else if (s[0] == '/' || strstr(s, " = ") != NULL)
        perr(c, "not in RFC 2253 form; print it with: openssl x509 -noout -subject -nameopt "
                "RFC2253,-esc_msb -in CERT");
    else
        *dst = xstrdup(c, s);
}

static void set_admin_roles(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_admin *a = base;
    if (!json_is_array(v)) {
        perr(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n > 256) {
        perr(c, "at most 256 rules");
        return;
    }
    a->roles = xcalloc(c, n, sizeof(*a->roles));
    if (a->roles == NULL)
        return;
    a->nroles = n; /* slot i is rule i (NULL subject when it was refused) */
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        struct cfg_admin_role *r = &a->roles[i];
        size_t old = path_index(c, i);
        if (!json_is_object(e)) {
            perr(c, "expected an object");
            path_pop(c, old);
            continue;
        }
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)e, key, val)
        {
            size_t o2 = path_key(c, key);
            if (strcmp(key, "subject") == 0) {
                set_admin_subject(c, val, &r->subject);
            } else if (strcmp(key, "role") == 0) {
                r->role = json_is_string(val) ? role_parse(json_string_value(val))
                                              : CUT_ROLE_NONE;
                if (r->role == CUT_ROLE_NONE)
                    perr(c, "must be one of viewer, operator, deployer, admin");
            } else if (strcmp(key, "subject_cn") == 0) {
                perr(c, "not supported: match the whole subject (see docs/configuration.md, "
                        "admin.roles)");
            } else {
                perr(c, "unknown key");
            }
            path_pop(c, o2);
        }
        if (json_object_get(e, "subject") == NULL)
            perr(c, "missing required key \"subject\"");
        if (json_object_get(e, "role") == NULL)
            perr(c, "missing required key \"role\"");
        if (r->subject == NULL || r->role == CUT_ROLE_NONE) {
            free(r->subject); /* a half rule must never match */
            r->subject = NULL;
            r->role = CUT_ROLE_NONE;
        }
        path_pop(c, old);
    }
}

static const struct field admin_fields[] = {
    {"address", set_admin_address, 0, .flags = F_REQUIRED},
    {"tls", set_tls, offsetof(struct cfg_admin, tls), .flags = F_REQUIRED | F_ADMIN},
    {"roles", set_admin_roles, 0},
    {"max_clients", set_uint, offsetof(struct cfg_admin, max_clients), 1, 1024, 16},
    {"request_timeout_ms", set_uint, offsetof(struct cfg_admin, request_timeout), 100, 600000,
     10000},
    {"idle_timeout_ms", set_uint, offsetof(struct cfg_admin, idle_timeout), 1000, 3600000, 60000},
    {NULL},
};

static void set_metrics_address(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_metrics *m = base;
    parse_listen_address(c, v, &m->address, &m->host, &m->port);
}

static const struct field metrics_fields[] = {
    {"address", set_metrics_address, 0, .flags = F_REQUIRED},
    {NULL},
};

static void set_siem_address(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    (void)f;
    struct cfg_siem *s = base;
    const char *err;
    set_str(&s->address, NULL);
    set_str(&s->host, NULL);
    if (!json_is_string(v))
        perr(c, "expected a string \"host:port\"");
    else if ((err = parse_hostport(json_string_value(v), false, &s->host, &s->port)) != NULL)
        perr(c, "%s", err);
    else
        s->address = xstrdup(c, json_string_value(v));
}

/* Printable ASCII without space, f->min..f->max characters, none of the characters of
 * f->def_str (the LEEF header's separators). */
static void set_siem_text(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    char **dst = at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = s ? strlen(s) : 0;
    bool ok = s != NULL && (long long)n >= f->min && (long long)n <= f->max;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] > 0x20 && s[i] < 0x7f && strchr("|^\\", s[i]) == NULL;
    if (!ok)
        perr(c, "must be %lld to %lld printable ASCII characters without spaces, \"|\", \"^\" "
                "or \"\\\"",
             f->min, f->max);
    else
        set_str(dst, xstrdup(c, s));
}

/* One of a few punctuation characters or a tab, given as itself or as "xHH" / "0xHH". */
static void set_siem_delimiter(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    char *dst = at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    int ch = -1;
    if (s != NULL && strlen(s) == 1) {
        ch = (unsigned char)s[0];
    } else if (s != NULL) {
        const char *h = strncmp(s, "0x", 2) == 0 ? s + 2 : s[0] == 'x' ? s + 1 : NULL;
        if (h != NULL && strlen(h) == 2 && isxdigit((unsigned char)h[0]) &&
            isxdigit((unsigned char)h[1]))
            ch = (int)strtol(h, NULL, 16);
    }
    /* Not a character that values need (digits, '-', ':', '.', ',' of times, addresses and
     * subjects), nor one LEEF gives a meaning ('=', '|'). */
    bool ok = ch == '\t' || (ch > 0 && strchr("^~`!#$%&*;?@+", ch) != NULL);
    if (!ok)
        perr(c, "must be one of ^ ~ ` ! # $ %% & * ; ? @ +, or a tab written \"x09\" (a "
                "character as \"xHH\" or \"0xHH\")");
    else
        *dst = (char)ch;
}

static void set_siem_framing(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    enum cfg_siem_framing *fr = at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s != NULL && strcmp(s, "octet-counting") == 0)
        *fr = CFG_SIEM_OCTET_COUNTING;
    else if (s != NULL && strcmp(s, "newline") == 0)
        *fr = CFG_SIEM_NEWLINE;
    else
        perr(c, "must be \"octet-counting\" or \"newline\"");
}

static const struct field siem_fields[] = {
    {"address", set_siem_address, 0, .flags = F_REQUIRED},
    {"tls", set_upstream_tls, offsetof(struct cfg_siem, tls), .flags = F_REQUIRED},
    {"vendor", set_siem_text, offsetof(struct cfg_siem, vendor), 1, 64, .def_str = "cutover"},
    {"delimiter", set_siem_delimiter, offsetof(struct cfg_siem, delimiter)},
    {"hostname", set_siem_text, offsetof(struct cfg_siem, hostname), 1, 255},
    {"facility", set_uint, offsetof(struct cfg_siem, facility), 0, 23, 13},
    {"framing", set_siem_framing, offsetof(struct cfg_siem, framing)},
    {"max_queue_bytes", set_uint, offsetof(struct cfg_siem, max_queue_bytes), 4096, 67108864,
     1048576},
    {"connect_timeout_ms", set_uint, offsetof(struct cfg_siem, connect_timeout_ms), 100, 60000,
     5000},
    {"write_timeout_ms", set_uint, offsetof(struct cfg_siem, write_timeout_ms), 100, 60000, 5000},
    {NULL},
};

static void set_siem(struct pctx *c, const json_t *v, void *base, const struct field *f)
{
    struct cfg_siem *s = at(base, f->off);
    apply_defaults(c, siem_fields, s);
    s->delimiter = '^';
    parse_object(c, v, siem_fields, s);
}

static const struct field root_fields[] = {
    {"cluster", set_ident, offsetof(struct cfg, cluster), 1, 64, .def_str = "local"},
    {"region", set_ident, offsetof(struct cfg, region), 1, 64, .def_str = "local"},
    {"workers", set_uint, offsetof(struct cfg, workers), 0, 256, 0},
    {"listeners", set_listeners, 0, .flags = F_REQUIRED},
    {"trusted_proxies", set_cidr_list, offsetof(struct cfg, trusted_proxies), .min = 0},
    {"timeouts", set_object, offsetof(struct cfg, timeouts), .sub = timeout_fields},
    {"limits", set_limits, offsetof(struct cfg, limits), .sub = limit_fields},
    {"retries", set_object, offsetof(struct cfg, retries), .sub = retry_fields},
    {"access_log", set_object, offsetof(struct cfg, access_log), .sub = access_log_fields},
    {"routes", set_routes, 0, .flags = F_REQUIRED},
    {"control", set_object, offsetof(struct cfg, control), .sub = control_fields},
    {"metrics", set_object, offsetof(struct cfg, metrics), .sub = metrics_fields},
    {"admin", set_object, offsetof(struct cfg, admin), .sub = admin_fields},
    {"siem", set_siem, offsetof(struct cfg, siem)},
    {"probe_path", set_path_prefix, offsetof(struct cfg, probe_path)},
    {NULL},
};

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
    struct pctx c = {.errs = errs};
    apply_defaults(&c, root_fields, cfg);
    parse_object(&c, root, root_fields, cfg);
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

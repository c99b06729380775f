/* cfg_types.c - the setters of the schema (cfg_schema.c): scalars, strings, names, addresses,
 * CIDR lists, enums, the control socket's and the admin API's roles, the SIEM; and the dump hooks
 * of the values the generic walkers cannot write (modes, ids, roles, the LEEF delimiter).
 *
 * Each setter reports every problem at the current JSON path and never stops early (see
 * cfg_parse.c). Listener TLS, routes and pools are in cfg_types_route.c.
 */
#include "config/cfg_types.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"
#include "core/role.h"

#define TOKEN_MAX 128 /* header and cookie names */
#define HOSTNAME_MAX 253

void cfg_types_set_str(char **dst, char *s)
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
bool cfg_types_valid_hostname(const char *s)
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

void cfg_types_lower(char *s)
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
const char *cfg_types_parse_hostport(const char *s, bool numeric_only, char **host, uint16_t *port)
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
        if (!cfg_types_valid_hostname(buf))
            return "invalid host name";
        cfg_types_lower(buf);
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

/* ---- generic setters ---- */

void cfg_types_set_object(struct cfg_pctx *c, const json_t *v, void *base,
                          const struct cfg_field *f)
{
    cfg_parse_object(c, v, f->sub, cfg_at(base, f->off));
}

void cfg_types_set_uint(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    if (!json_is_integer(v)) {
        cfg_parse_error(c, "expected an integer");
        return;
    }
    json_int_t n = json_integer_value(v);
    if (n < f->min || n > f->max) {
        cfg_parse_error(c, "must be between %lld and %lld", f->min, f->max);
        return;
    }
    *(unsigned *)cfg_at(base, f->off) = (unsigned)n;
}

void cfg_types_set_bool(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    if (!json_is_boolean(v)) {
        cfg_parse_error(c, "expected true or false");
        return;
    }
    *(int *)cfg_at(base, f->off) = json_is_true(v);
}

/* A name of [A-Za-z0-9._-], f->min..f->max characters. */
void cfg_types_set_ident(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    char **dst = cfg_at(base, f->off);
    cfg_types_set_str(dst, NULL);
    if (!json_is_string(v)) {
        cfg_parse_error(c, "expected a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    bool ok = (long long)n >= f->min && (long long)n <= f->max;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_ident_char((unsigned char)s[i]);
    if (!ok) {
        cfg_parse_error(c, "must be %lld to %lld characters of A-Z a-z 0-9 . _ -", f->min, f->max);
        return;
    }
    *dst = cfg_parse_strdup(c, s);
}

/* A header or cookie name (an RFC 9110 token), 1..TOKEN_MAX; CFG_F_LOWER stores it lower case. */
void cfg_types_set_token(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    char **dst = cfg_at(base, f->off);
    cfg_types_set_str(dst, NULL);
    if (!json_is_string(v)) {
        cfg_parse_error(c, "expected a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= TOKEN_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_tchar((unsigned char)s[i]);
    if (!ok) {
        cfg_parse_error(c, "must be 1 to %d token characters (letters, digits, !#$%%&'*+-.^_`|~)",
                        TOKEN_MAX);
        return;
    }
    *dst = cfg_parse_strdup(c, s);
    if (*dst != NULL && (f->flags & CFG_F_LOWER))
        cfg_types_lower(*dst);
}

void cfg_types_set_cidr_list(struct cfg_pctx *c, const json_t *v, void *base,
                             const struct cfg_field *f)
{
    struct cfg_cidr_list *l = cfg_at(base, f->off);
    if (!json_is_array(v)) {
        cfg_parse_error(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if ((long long)n < f->min) {
        cfg_parse_error(c, "must not be empty");
        return;
    }
    free(l->v);
    l->n = 0;
    l->v = cfg_parse_calloc(c, n, sizeof(*l->v));
    if (l->v == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = cfg_parse_path_index(c, i);
        char msg[160];
        const char *err;
        if (!json_is_string(e))
            cfg_parse_error(c, "expected a string");
        else if ((err = parse_cidr(json_string_value(e), &l->v[l->n], msg, sizeof(msg))) != NULL)
            cfg_parse_error(c, "%s", err);
        else
            l->n++;
        cfg_parse_path_pop(c, old);
    }
}

/* ---- listeners ---- */

/* A listening "host:port" with a numeric host (listeners, the admin API, the metrics listener):
 * the text into *address, its parts into *host and *port. */
static void parse_listen_address(struct cfg_pctx *c, const json_t *v, char **address, char **host,
                                 uint16_t *port)
{
    if (!json_is_string(v)) {
        cfg_parse_error(c, "expected a string");
        return;
    }
    const char *err = cfg_types_parse_hostport(json_string_value(v), true, host, port);
    if (err != NULL) {
        cfg_parse_error(c, "%s", err);
        return;
    }
    *address = cfg_parse_strdup(c, json_string_value(v));
}

void cfg_types_set_listener_address(struct cfg_pctx *c, const json_t *v, void *base,
                                    const struct cfg_field *f)
{
    (void)f;
    struct cfg_listener *l = base;
    parse_listen_address(c, v, &l->address, &l->host, &l->port);
}

void cfg_types_set_protocols(struct cfg_pctx *c, const json_t *v, void *base,
                             const struct cfg_field *f)
{
    unsigned *bits = cfg_at(base, f->off);
    if (!json_is_array(v)) {
        cfg_parse_error(c, "expected an array");
        return;
    }
    if (json_array_size(v) == 0) {
        cfg_parse_error(c, "must not be empty");
        return;
    }
    *bits = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = cfg_parse_path_index(c, i);
        if (!json_is_string(e))
            cfg_parse_error(c, "expected a string");
        else if (strcmp(json_string_value(e), "http1") != 0)
            cfg_parse_error(c, "unsupported protocol (only \"http1\")");
        else if (*bits & CFG_PROTO_HTTP1)
            cfg_parse_error(c, "duplicate protocol");
        else
            *bits |= CFG_PROTO_HTTP1;
        cfg_parse_path_pop(c, old);
    }
}

/* ---- control ---- */

/* An absolute file path of 1..f->max characters, no control characters. */
void cfg_types_set_path(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    char **dst = cfg_at(base, f->off);
    cfg_types_set_str(dst, NULL);
    if (!json_is_string(v)) {
        cfg_parse_error(c, "expected a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    bool ok = n >= 2 && (long long)n <= f->max && s[0] == '/';
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (!ok) {
        cfg_parse_error(c, "must be an absolute path of at most %lld characters", f->max);
        return;
    }
    *dst = cfg_parse_strdup(c, s);
}

void cfg_types_set_mode(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    unsigned *dst = cfg_at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    char *end = NULL;
    unsigned long m = s ? strtoul(s, &end, 8) : 0;
    if (!s || !*s || *end || strlen(s) > 4 || m > 0777) {
        cfg_parse_error(c, "expected an octal mode string such as \"0660\"");
        return;
    }
    *dst = (unsigned)m;
}

void cfg_types_set_gid(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    long *dst = cfg_at(base, f->off);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 4294967294LL) {
        cfg_parse_error(c, "expected a numeric gid");
        return;
    }
    *dst = (long)json_integer_value(v);
}

void cfg_types_set_roles(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    (void)f;
    struct cfg_control *ctl = base;
    if (!json_is_array(v)) {
        cfg_parse_error(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n > 256) {
        cfg_parse_error(c, "at most 256 rules");
        return;
    }
    free(ctl->roles);
    ctl->nroles = 0;
    ctl->roles = cfg_parse_calloc(c, n ? n : 1, sizeof(*ctl->roles));
    if (ctl->roles == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = cfg_parse_path_index(c, i);
        struct cfg_role_rule r = {-1, -1, CUT_ROLE_NONE};
        bool ok = json_is_object(e);
        if (!ok) {
            cfg_parse_error(c, "expected an object");
        } else {
            const char *key;
            json_t *val;
            json_object_foreach((json_t *)e, key, val)
            {
                size_t o2 = cfg_parse_path_key(c, key);
                if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0) {
                    if (!json_is_integer(val) || json_integer_value(val) < 0 ||
                        json_integer_value(val) > 4294967294LL) {
                        cfg_parse_error(c, "expected a numeric id");
                        ok = false;
                    } else if (key[0] == 'u') {
                        r.uid = (long)json_integer_value(val);
                    } else {
                        r.gid = (long)json_integer_value(val);
                    }
                } else if (strcmp(key, "role") == 0) {
                    r.role =
                        json_is_string(val) ? role_parse(json_string_value(val)) : CUT_ROLE_NONE;
                    if (r.role == CUT_ROLE_NONE) {
                        cfg_parse_error(c, "must be one of viewer, operator, deployer, admin");
                        ok = false;
                    }
                } else {
                    cfg_parse_error(c, "unknown key");
                    ok = false;
                }
                cfg_parse_path_pop(c, o2);
            }
            if (ok && r.role == CUT_ROLE_NONE) {
                cfg_parse_error(c, "missing required key \"role\"");
                ok = false;
            }
            if (ok && r.uid < 0 && r.gid < 0) {
                cfg_parse_error(c, "needs \"uid\" or \"gid\"");
                ok = false;
            }
        }
        if (ok)
            ctl->roles[ctl->nroles++] = r;
        cfg_parse_path_pop(c, old);
    }
}

/* ---- admin ---- */

void cfg_types_set_admin_address(struct cfg_pctx *c, const json_t *v, void *base,
                                 const struct cfg_field *f)
{
    (void)f;
    struct cfg_admin *a = base;
    parse_listen_address(c, v, &a->address, &a->host, &a->port);
}

/* A certificate subject in RFC 2253 form. Only the mistakes people make are caught here (the
 * exact string is compared at run time): OpenSSL's default one-line form ("CN = x, O = y"), the
 * old slash form ("/CN=x/O=y"), and a pasted "subject=" prefix. */
static void cfg_types_set_admin_subject(struct cfg_pctx *c, const json_t *v, char **dst)
{
    if (!json_is_string(v)) {
        cfg_parse_error(c, "expected a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    bool ok = n >= 3 && n <= CFG_ADMIN_SUBJECT_MAX && strlen(s) == n && strchr(s, '=') != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (!ok)
        cfg_parse_error(
            c,
            "must be a distinguished name of 3 to %d characters in RFC 2253 form, such as "
            "\"CN=release-pipeline,OU=Platform,O=Bank\"",
            CFG_ADMIN_SUBJECT_MAX);
    else if (strncmp(s, "subject=", 8) == 0)
        cfg_parse_error(c, "remove the \"subject=\" prefix that openssl prints");
    else if (s[0] == '/' || strstr(s, " = ") != NULL)
        cfg_parse_error(
            c, "not in RFC 2253 form; print it with: openssl x509 -noout -subject -nameopt "
               "RFC2253,-esc_msb -in CERT");
    else
        *dst = cfg_parse_strdup(c, s);
}

void cfg_types_set_admin_roles(struct cfg_pctx *c, const json_t *v, void *base,
                               const struct cfg_field *f)
{
    (void)f;
    struct cfg_admin *a = base;
    if (!json_is_array(v)) {
        cfg_parse_error(c, "expected an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n > 256) {
        cfg_parse_error(c, "at most 256 rules");
        return;
    }
    a->roles = cfg_parse_calloc(c, n, sizeof(*a->roles));
    if (a->roles == NULL)
        return;
    a->nroles = n; /* slot i is rule i (NULL subject when it was refused) */
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        struct cfg_admin_role *r = &a->roles[i];
        size_t old = cfg_parse_path_index(c, i);
        if (!json_is_object(e)) {
            cfg_parse_error(c, "expected an object");
            cfg_parse_path_pop(c, old);
            continue;
        }
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)e, key, val)
        {
            size_t o2 = cfg_parse_path_key(c, key);
            if (strcmp(key, "subject") == 0) {
                cfg_types_set_admin_subject(c, val, &r->subject);
            } else if (strcmp(key, "role") == 0) {
                r->role = json_is_string(val) ? role_parse(json_string_value(val)) : CUT_ROLE_NONE;
                if (r->role == CUT_ROLE_NONE)
                    cfg_parse_error(c, "must be one of viewer, operator, deployer, admin");
            } else if (strcmp(key, "subject_cn") == 0) {
                cfg_parse_error(
                    c, "not supported: match the whole subject (see docs/configuration.md, "
                       "admin.roles)");
            } else {
                cfg_parse_error(c, "unknown key");
            }
            cfg_parse_path_pop(c, o2);
        }
        if (json_object_get(e, "subject") == NULL)
            cfg_parse_error(c, "missing required key \"subject\"");
        if (json_object_get(e, "role") == NULL)
            cfg_parse_error(c, "missing required key \"role\"");
        if (r->subject == NULL || r->role == CUT_ROLE_NONE) {
            free(r->subject); /* a half rule must never match */
            r->subject = NULL;
            r->role = CUT_ROLE_NONE;
        }
        cfg_parse_path_pop(c, old);
    }
}

void cfg_types_set_metrics_address(struct cfg_pctx *c, const json_t *v, void *base,
                                   const struct cfg_field *f)
{
    (void)f;
    struct cfg_metrics *m = base;
    parse_listen_address(c, v, &m->address, &m->host, &m->port);
}

void cfg_types_set_siem_address(struct cfg_pctx *c, const json_t *v, void *base,
                                const struct cfg_field *f)
{
    (void)f;
    struct cfg_siem *s = base;
    const char *err;
    cfg_types_set_str(&s->address, NULL);
    cfg_types_set_str(&s->host, NULL);
    if (!json_is_string(v))
        cfg_parse_error(c, "expected a string \"host:port\"");
    else if ((err = cfg_types_parse_hostport(json_string_value(v), false, &s->host, &s->port)) !=
             NULL)
        cfg_parse_error(c, "%s", err);
    else
        s->address = cfg_parse_strdup(c, json_string_value(v));
}

/* Printable ASCII without space, f->min..f->max characters, none of the characters of
 * f->def_str (the LEEF header's separators). */
void cfg_types_set_siem_text(struct cfg_pctx *c, const json_t *v, void *base,
                             const struct cfg_field *f)
{
    char **dst = cfg_at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = s ? strlen(s) : 0;
    bool ok = s != NULL && (long long)n >= f->min && (long long)n <= f->max;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] > 0x20 && s[i] < 0x7f && strchr("|^\\", s[i]) == NULL;
    if (!ok)
        cfg_parse_error(
            c,
            "must be %lld to %lld printable ASCII characters without spaces, \"|\", \"^\" "
            "or \"\\\"",
            f->min, f->max);
    else
        cfg_types_set_str(dst, cfg_parse_strdup(c, s));
}

/* One of a few punctuation characters or a tab, given as itself or as "xHH" / "0xHH". */
void cfg_types_set_siem_delimiter(struct cfg_pctx *c, const json_t *v, void *base,
                                  const struct cfg_field *f)
{
    char *dst = cfg_at(base, f->off);
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
        cfg_parse_error(c, "must be one of ^ ~ ` ! # $ %% & * ; ? @ +, or a tab written \"x09\" (a "
                           "character as \"xHH\" or \"0xHH\")");
    else
        *dst = (char)ch;
}

void cfg_types_set_siem(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    struct cfg_siem *s = cfg_at(base, f->off);
    cfg_parse_defaults(c, f->sub, s);
    cfg_parse_object(c, v, f->sub, s);
}

/* ---- generic kinds ---- */

/* An enum given as one of f->names (its index is the value); f->msg for anything else. */
void cfg_types_set_enum(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    int *dst = cfg_at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    for (int i = 0; s != NULL && f->names[i] != NULL; i++) {
        if (strcmp(s, f->names[i]) == 0) {
            *dst = i;
            return;
        }
    }
    cfg_parse_error(c, "%s", f->msg);
}

/* An optional object (CFG_F_GIVEN) that is present: its table's defaults, the int at f->off2
 * inside it set to 1 (enabled), then its keys. */
void cfg_types_set_given(struct cfg_pctx *c, const json_t *v, void *base, const struct cfg_field *f)
{
    void *obj = cfg_at(base, f->off);
    cfg_parse_defaults(c, f->sub, obj);
    *(int *)cfg_at(obj, f->off2) = 1;
    cfg_parse_object(c, v, f->sub, obj);
}

/* ---- dump and free hooks of the special values ---- */

json_t *cfg_types_dump_protocols(const void *base, const struct cfg_field *f, bool *ok)
{
    json_t *a = json_array();
    if (a == NULL || ((*(const unsigned *)cfg_at(base, f->off) & CFG_PROTO_HTTP1) &&
                      json_array_append_new(a, json_string("http1")) != 0))
        *ok = false;
    return a;
}

json_t *cfg_types_dump_mode(const void *base, const struct cfg_field *f, bool *ok)
{
    char mode[16];
    snprintf(mode, sizeof mode, "0%o", *(const unsigned *)cfg_at(base, f->off));
    json_t *s = json_string(mode);
    if (s == NULL)
        *ok = false;
    return s;
}

/* A uid or gid: left out when -1 (any / unchanged). */
json_t *cfg_types_dump_id(const void *base, const struct cfg_field *f, bool *ok)
{
    long id = *(const long *)cfg_at(base, f->off);
    if (id < 0)
        return NULL;
    json_t *n = json_integer(id);
    if (n == NULL)
        *ok = false;
    return n;
}

json_t *cfg_types_dump_role(const void *base, const struct cfg_field *f, bool *ok)
{
    json_t *s = json_string(role_name(*(const enum cut_role *)cfg_at(base, f->off)));
    if (s == NULL)
        *ok = false;
    return s;
}

json_t *cfg_types_dump_delimiter(const void *base, const struct cfg_field *f, bool *ok)
{
    char ch = *(const char *)cfg_at(base, f->off), delim[8];
    if (ch > 0x20 && ch < 0x7f)
        snprintf(delim, sizeof delim, "%c", ch);
    else
        snprintf(delim, sizeof delim, "x%02x", (unsigned char)ch);
    json_t *s = json_string(delim);
    if (s == NULL)
        *ok = false;
    return s;
}

bool cfg_types_has_control(const void *obj)
{
    const struct cfg_control *cc = obj;
    return cc->socket || cc->state_file || cc->audit_file || cc->nroles || cc->store.enabled;
}

/* metrics, admin, siem: present when they have an address (the first member of each). */
_Static_assert(offsetof(struct cfg_metrics, address) == 0 &&
                   offsetof(struct cfg_admin, address) == 0 &&
                   offsetof(struct cfg_siem, address) == 0,
               "cfg_types_has_address reads the first member");

bool cfg_types_has_address(const void *obj)
{
    return *(char *const *)obj != NULL;
}

/* ---- the fleet store (control.store) ---- */

/* control.store.endpoints: 1..CFG_STORE_MAX_ENDPOINTS URLs "http(s)://host:port" (a numeric
 * address or a DNS name, such as a StatefulSet member's), no path. */
void cfg_types_set_store_endpoints(struct cfg_pctx *c, const json_t *v, void *base,
                                   const struct cfg_field *f)
{
    (void)f;
    struct cfg_store *s = base;
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (n < 1 || n > CFG_STORE_MAX_ENDPOINTS) {
        cfg_parse_error(c, "expected an array of 1 to %d etcd client URLs such as "
                           "\"https://10.0.0.5:2379\"", CFG_STORE_MAX_ENDPOINTS);
        return;
    }
    s->endpoints = cfg_parse_calloc(c, n, sizeof(*s->endpoints));
    if (s->endpoints == NULL)
        return;
    s->nendpoints = n;
    for (size_t i = 0; i < n; i++) {
        size_t old = cfg_parse_path_index(c, i);
        const json_t *e = json_array_get(v, i);
        const char *u = json_is_string(e) ? json_string_value(e) : NULL;
        const char *rest = NULL;
        if (u && strncmp(u, "https://", 8) == 0)
            rest = u + 8;
        else if (u && strncmp(u, "http://", 7) == 0)
            rest = u + 7;
        char *host = NULL;
        uint16_t port = 0;
        const char *why = "expected \"https://host:port\" or \"http://host:port\"";
        if (rest && strpbrk(rest, "/?#"))
            why = "expected \"https://host:port\" or \"http://host:port\", without a path";
        else if (rest)
            why = cfg_types_parse_hostport(rest, false, &host, &port);
        free(host);
        if (why)
            cfg_parse_error(c, "%s", why);
        else
            s->endpoints[i] = cfg_parse_strdup(c, u);
        cfg_parse_path_pop(c, old);
    }
}

/* control.store.prefix: "/" + 1..254 characters of A-Z a-z 0-9 . _ - / + "/" (no "//"): every
 * key of the fleet lives under it, and etcd's role for the fleet is granted on it. */
void cfg_types_set_store_prefix(struct cfg_pctx *c, const json_t *v, void *base,
                                const struct cfg_field *f)
{
    char **dst = cfg_at(base, f->off);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = s ? strlen(s) : 0;
    bool ok = n >= 3 && n <= 256 && s[0] == '/' && s[n - 1] == '/' && !strstr(s, "//");
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)s[i]) || strchr("._-/", s[i]) != NULL;
    if (!ok)
        cfg_parse_error(c, "must start and end with \"/\" (3 to 256 characters of A-Z a-z 0-9 "
                           ". _ - /, no \"//\"), such as \"/cutover/payments-weu/\"");
    else
        cfg_types_set_str(dst, cfg_parse_strdup(c, s));
}

/* control.store: given, its defaults, its keys; then what only the whole object can tell. */
void cfg_types_set_store(struct cfg_pctx *c, const json_t *v, void *base,
                         const struct cfg_field *f)
{
    struct cfg_store *s = cfg_at(base, f->off);
    if (!json_is_object(v)) {
        cfg_parse_error(c, "expected an object");
        return;
    }
    cfg_types_set_given(c, v, base, f);
    /* only the endpoints that parsed: an invalid one has its own error already */
    size_t nhttps = 0, nhttp = 0;
    for (size_t i = 0; i < s->nendpoints; i++) {
        nhttps += s->endpoints[i] && strncmp(s->endpoints[i], "https://", 8) == 0;
        nhttp += s->endpoints[i] && strncmp(s->endpoints[i], "http://", 7) == 0;
    }
    if (nhttps && nhttp)
        cfg_parse_error(c, "endpoints must all be https:// or all http://");
    else if (nhttps && !s->tls)
        cfg_parse_error(c, "https:// endpoints need \"tls\" (the CA that signed etcd's "
                           "certificates, and the client certificate)");
    else if (nhttp && s->tls)
        cfg_parse_error(c, "\"tls\" needs https:// endpoints");
    if (s->tls && (s->tls->crl || s->tls->server_name))
        cfg_parse_error(c, "tls: \"crl\" and \"server_name\" are not supported for the store");
    if (s->tls && s->tls->client_cert && s->tls->client_cert->pem) {
        size_t old = cfg_parse_path_key(c, "tls");
        cfg_parse_path_key(c, "client_certificate");
        cfg_parse_path_key(c, "pem");
        cfg_parse_error(c, "not supported for the store: give \"cert\" and \"key\"");
        cfg_parse_path_pop(c, old);
    }
    if (!s->user != !s->password_file)
        cfg_parse_error(c, "\"user\" and \"password_file\" go together");
    if (s->request_timeout_ms < s->dial_timeout_ms)
        cfg_parse_error(c, "request_timeout_ms must be at least dial_timeout_ms");
}

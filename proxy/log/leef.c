/* leef.c - JSON records as LEEF 2.0 in RFC 5424 (see leef.h). */
#include "proxy/log/leef.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "core/cut.h"

#define LEEF_DEPTH_MAX 4 /* deeper objects are written as compact JSON */
static const char TRUNCATED[] = "truncated=true";

struct sev_rule {
    const char *event;
    int sev;
};

static const struct sev_rule event_sev[] = {
    {"upstream_tls_failed", 7},
    {"admin_tls_refused", 7},
    {"tls_reload_refused", 6},
    {"reload_refused", 6},
    {"admin_events_suppressed", 6},
    {"control_events_suppressed", 6},
    {"admin_connection_refused", 5},
    {"admin_request_timeout", 5},
    {"admin_connection_evicted", 5},
    {"control_connection_evicted", 5},
    {"control_request_timeout", 5},
    {"state_discarded", 5},
    {"state_unfinished_change", 5},
    {"audit_torn_line", 5},
    {"state_refused", 7},
    {"audit_gap", 8},
    {"tls_loaded", 3},
    {"tls_reloaded", 3},
    {"reload", 3},
    {"started", 3},
    {"stopped", 3},
    {"audit_failed", 9},
};

int leef_event_severity(const char *event)
{
    for (size_t i = 0; event && i < CUT_ARRAY_LEN(event_sev); i++)
        if (strcmp(event_sev[i].event, event) == 0)
            return event_sev[i].sev;
    return 0;
}

unsigned leef_syslog_severity(int sev)
{
    return sev <= 2 ? 6 : sev <= 4 ? 5 : sev <= 6 ? 4 : sev <= 8 ? 3 : 2;
}

/* ---- a bounded output buffer ---------------------------------------------------------------- */

struct obuf {
    char *p;
    size_t n, cap; /* cap: bytes usable, without the NUL */
    int full;      /* something did not fit */
};

static void out_mem(struct obuf *b, const char *s, size_t n)
{
    if (b->full || n > b->cap - b->n) {
        b->full = 1;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void out_str(struct obuf *b, const char *s)
{
    out_mem(b, s, strlen(s));
}

/* Printable ASCII for the syslog header fields (NILVALUE "-" when empty), at most max bytes. */
static void out_header_field(struct obuf *b, const char *s, size_t max)
{
    size_t n = 0;
    for (; s && s[n] && n < max; n++) {
        char ch = s[n] > 0x20 && s[n] < 0x7f ? s[n] : '_';
        out_mem(b, &ch, 1);
    }
    if (n == 0)
        out_mem(b, "-", 1);
}

/* A LEEF header field: no '|' (it separates them), no control characters. */
static void out_leef_field(struct obuf *b, const char *s)
{
    for (; s && *s; s++) {
        char ch = *s == '|' || (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
        out_mem(b, &ch, 1);
    }
}

/* ---- attributes ------------------------------------------------------------------------------ */

struct enc {
    const struct leef_opts *o;
    struct obuf *msg; /* the whole message */
    size_t limit;     /* attributes stop before msg->n would pass this */
    int truncated;
    unsigned nattrs; /* attributes written */
    char attr[LEEF_MAX_MESSAGE + 1];
    struct obuf a; /* the attribute being built, over attr */
};

static void value_mem(struct enc *e, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char c = ch == (unsigned char)e->o->delimiter || ch == '|' || ch == '\\' || ch < 0x20 ||
                         ch == 0x7f
                     ? ' '
                     : (char)ch;
        out_mem(&e->a, &c, 1);
    }
}

static void key_part(struct enc *e, const char *k)
{
    for (; *k; k++) {
        char c = (*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
                         (*k >= '0' && *k <= '9') || *k == '_' || *k == '.' || *k == '-'
                     ? *k
                     : '_';
        out_mem(&e->a, &c, 1);
    }
}

static void attr_begin(struct enc *e, const char *prefix, const char *key)
{
    e->a = (struct obuf){e->attr, 0, LEEF_MAX_MESSAGE, 0};
    if (e->nattrs > 0)
        out_mem(&e->a, &e->o->delimiter, 1);
    if (prefix && *prefix) {
        key_part(e, prefix);
        out_mem(&e->a, ".", 1);
    }
    key_part(e, key);
    if (!*key) /* a JSON key may be empty; a LEEF attribute name may not */
        out_mem(&e->a, "_", 1);
    out_mem(&e->a, "=", 1);
}

/* Appends the attribute built in e->a when it fits; once one does not, no more do. */
static void attr_end(struct enc *e)
{
    if (e->truncated)
        return;
    if (e->a.full || e->msg->n + e->a.n > e->limit) {
        e->truncated = 1;
        return;
    }
    out_mem(e->msg, e->a.p, e->a.n);
    e->nattrs++;
}

static void attr_text(struct enc *e, const char *prefix, const char *key, const char *v, size_t n)
{
    attr_begin(e, prefix, key);
    value_mem(e, v, n);
    attr_end(e);
}

static void attr_json(struct enc *e, const char *prefix, const char *key, const json_t *v,
                      int depth);

static void attr_object(struct enc *e, const char *prefix, const json_t *obj, int depth)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        attr_json(e, prefix, k, v, depth);
    }
}

static void attr_json(struct enc *e, const char *prefix, const char *key, const json_t *v,
                      int depth)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        attr_text(e, prefix, key, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        attr_text(e, prefix, key, num, strlen(num));
        return;
    case JSON_REAL:
        snprintf(num, sizeof num, "%.*g", CUT_JSON_REAL_DIGITS, json_real_value(v));
        attr_text(e, prefix, key, num, strlen(num));
        return;
    case JSON_TRUE:
    case JSON_FALSE:
        attr_text(e, prefix, key, json_is_true(v) ? "true" : "false", json_is_true(v) ? 4 : 5);
        return;
    case JSON_NULL:
        attr_text(e, prefix, key, "", 0);
        return;
    case JSON_OBJECT:
        if (depth < LEEF_DEPTH_MAX && json_object_size(v) > 0) {
            char path[256];
            snprintf(path, sizeof path, "%s%s%s", prefix && *prefix ? prefix : "",
                     prefix && *prefix ? "." : "", key);
            attr_object(e, path, v, depth + 1);
            return;
        }
        break;
    case JSON_ARRAY:
        break;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
                                   JSON_REAL_PRECISION(CUT_JSON_REAL_DIGITS));
    attr_text(e, prefix, key, text ? text : "", text ? strlen(text) : 0);
    free(text);
}

/* "ip:port" or "[v6]:port" into src= and srcPort=. */
static void attr_src(struct enc *e, const char *addr)
{
    const char *colon = strrchr(addr, ':');
    if (!colon) {
        attr_text(e, NULL, "src", addr, strlen(addr));
        return;
    }
    const char *h = addr;
    size_t hn = (size_t)(colon - addr);
    if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']') {
        h++;
        hn -= 2;
    }
    attr_text(e, NULL, "src", h, hn);
    attr_text(e, NULL, "srcPort", colon + 1, strlen(colon + 1));
}

/* ---- the message ----------------------------------------------------------------------------- */

static int audit_severity(const json_t *rec)
{
    const char *result = json_string_value(json_object_get(rec, "result"));
    const char *op = json_string_value(json_object_get(rec, "op"));
    const char *user = json_string_value(json_object_get(json_object_get(rec, "actor"), "user"));
    if (!result || strcmp(result, "ok") != 0) {
        const char *code =
            json_string_value(json_object_get(json_object_get(rec, "error"), "code"));
        return code && strcmp(code, "denied") == 0 ? 8 : 6;
    }
    if (op && (!strcmp(op, "status") || !strcmp(op, "history") || !strcmp(op, "version")))
        return 1;
    if (op && user && !strcmp(op, "rollback") && !strcmp(user, "auto"))
        return 5;
    return 3;
}

int leef_encode(const struct leef_opts *o, enum leef_kind kind, const char *json, size_t len,
                char *out, size_t cap)
{
    if (cap < LEEF_MAX_MESSAGE + 1)
        return CUT_EINVAL;
    json_error_t jerr;
    json_t *rec = json_loadb(json, len, 0, &jerr);
    if (!rec)
        return CUT_EINVAL;
    const char *time = json_string_value(json_object_get(rec, "time"));
    const char *event = json_string_value(json_object_get(rec, "event"));
    const char *op = json_string_value(json_object_get(rec, "op"));
    const char *result = json_string_value(json_object_get(rec, "result"));
    int sev = kind == LEEF_AUDIT ? audit_severity(rec) : leef_event_severity(event);
    if (!json_is_object(rec) || !time || (kind == LEEF_AUDIT ? !op : !event) || sev == 0) {
        json_decref(rec);
        return CUT_EINVAL;
    }
    struct enc *e = malloc(sizeof *e);
    if (!e) {
        json_decref(rec);
        return CUT_ENOMEM;
    }
    struct obuf msg = {out, 0, LEEF_MAX_MESSAGE, 0};
    char head[160];
    snprintf(head, sizeof head, "<%u>1 ", o->facility * 8 + leef_syslog_severity(sev));
    out_str(&msg, head);
    out_header_field(&msg, time, 32);
    out_str(&msg, " ");
    out_header_field(&msg, o->hostname, 255);
    out_str(&msg, " ");
    out_header_field(&msg, o->product, 48);
    snprintf(head, sizeof head, " %ld %s - LEEF:2.0|", o->pid,
             kind == LEEF_AUDIT ? "audit" : "security");
    out_str(&msg, head);
    out_leef_field(&msg, o->vendor);
    out_str(&msg, "|");
    out_leef_field(&msg, o->product);
    out_str(&msg, "|");
    out_leef_field(&msg, o->version);
    out_str(&msg, "|");
    if (kind == LEEF_AUDIT) {
        out_str(&msg, "audit.");
        out_leef_field(&msg, op);
        out_str(&msg, result && !strcmp(result, "ok")        ? ".ok"
                      : result && !strcmp(result, "aborted") ? ".aborted"
                                                             : ".refused");
    } else {
        out_leef_field(&msg, event);
    }
    unsigned char d = (unsigned char)o->delimiter;
    if (d > 0x20 && d < 0x7f)
        snprintf(head, sizeof head, "|%c|", d);
    else
        snprintf(head, sizeof head, "|x%02x|", d);
    out_str(&msg, head);

    e->o = o;
    e->msg = &msg;
    e->limit = LEEF_MAX_MESSAGE - 1 - (sizeof TRUNCATED - 1);
    e->truncated = 0;
    e->nattrs = 0;
    attr_text(e, NULL, "devTime", time, strlen(time));
    attr_text(e, NULL, "devTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSX", 26);
    attr_text(e, NULL, "cat", kind == LEEF_AUDIT ? "audit" : "security",
              kind == LEEF_AUDIT ? 5 : 8);
    char sevs[8];
    snprintf(sevs, sizeof sevs, "%d", sev);
    attr_text(e, NULL, "sev", sevs, strlen(sevs));
    const json_t *actor = json_object_get(rec, "actor");
    const char *user = json_string_value(json_object_get(actor, "user"));
    const char *addr = json_string_value(json_object_get(actor, "address"));
    if (!addr)
        addr = json_string_value(json_object_get(rec, "peer"));
    if (user)
        attr_text(e, NULL, "usrName", user, strlen(user));
    if (addr)
        attr_src(e, addr);
    const char *k;
    json_t *v;
    json_object_foreach(rec, k, v)
    {
        if (!strcmp(k, "type") || !strcmp(k, "time") || !strcmp(k, "event"))
            continue;
        if (!strcmp(k, "actor") && json_is_object(v)) {
            const char *ak;
            json_t *av;
            json_object_foreach(v, ak, av)
            {
                if (strcmp(ak, "user") && strcmp(ak, "address"))
                    attr_json(e, "actor", ak, av, 1);
            }
            continue;
        }
        attr_json(e, NULL, k, v, 0);
    }
    if (e->truncated) {
        out_mem(&msg, &o->delimiter, 1);
        out_str(&msg, TRUNCATED);
    }
    free(e);
    json_decref(rec);
    if (msg.full)
        return CUT_EINVAL; /* the header alone did not fit: impossible with validated fields */
    out[msg.n] = '\0';
    return (int)msg.n;
}

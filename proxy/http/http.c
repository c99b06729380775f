/* http.c - header rules and HTTP/1.1 head serialisation, independent of any event library. */
#include "proxy/http/http.h"

#include <stdio.h>
#include <string.h>

#include "core/text.h"
#include "proxy/http/h1_parse.h" /* h1_list_has_token */

/* A bounded writer over a caller's buffer; overflow is sticky and reported once at the end. */
struct wbuf {
    char *p;
    size_t n, cap;
    int overflow;
};

static void w_put(struct wbuf *w, const char *s, size_t n)
{
    if (w->overflow || w->cap - w->n < n) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p + w->n, s, n);
    w->n += n;
}

static void w_str(struct wbuf *w, const char *s)
{
    w_put(w, s, strlen(s));
}

static void w_slice(struct wbuf *w, struct cut_slice s)
{
    w_put(w, s.p, s.n);
}

static void w_u64(struct wbuf *w, uint64_t v)
{
    char tmp[24];
    w_put(w, tmp, text_u64(tmp, v));
}

static int w_done(const struct wbuf *w)
{
    return w->overflow ? CUT_ELIMIT : (int)w->n;
}

static int name_ieq(struct cut_slice name, const char *lower, size_t lower_len)
{
    if (name.n != lower_len)
        return 0;
    for (size_t i = 0; i < lower_len; i++) {
        unsigned char c = (unsigned char)name.p[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)lower[i])
            return 0;
    }
    return 1;
}

#define NAME_IS(f, lit) name_ieq((f)->name, lit, sizeof(lit) - 1)

int http_find(const struct http_field *fields, unsigned n, const char *lower, size_t lower_len)
{
    for (unsigned i = 0; i < n; i++)
        if (name_ieq(fields[i].name, lower, lower_len))
            return (int)i;
    return -1;
}


/* Fields the request writer replaces with its own values. */
static int is_forwarding_field(const struct http_field *f)
{
    return NAME_IS(f, "x-forwarded-for") || NAME_IS(f, "x-forwarded-proto") ||
           NAME_IS(f, "x-forwarded-host") || NAME_IS(f, "x-request-id");
}

/* Records the fields a head writer writes (http_write_forward), as slices into its buffer. */
struct wrec {
    struct http_field *f; /* NULL: nothing is recorded */
    unsigned n, max;
    int over;
    size_t name_at, value_at;
    size_t name_len;
};

/* Starts a field: writes "name: " and remembers where its name and value are. */
static void f_begin(struct wbuf *w, struct wrec *r, const char *name, size_t nl)
{
    r->name_at = w->n;
    r->name_len = nl;
    w_put(w, name, nl);
    w_put(w, ": ", 2);
    r->value_at = w->n;
}

/* Ends the field begun last: records it with id and flags, writes CRLF. */
static void f_end(struct wbuf *w, struct wrec *r, uint8_t id, uint8_t flags)
{
    if (r->f && !w->overflow) {
        if (r->n == r->max) {
            r->over = 1;
        } else {
            struct http_field *f = &r->f[r->n++];
            f->name = (struct cut_slice){w->p + r->name_at, r->name_len};
            f->value = (struct cut_slice){w->p + r->value_at, w->n - r->value_at};
            f->id = id;
            f->flags = flags;
        }
    }
    w_put(w, "\r\n", 2);
}

#define F_BEGIN_LIT(w, r, lit) f_begin(w, r, lit, sizeof(lit) - 1)

int http_write_forward(char *buf, size_t cap, const struct http_req *req,
                       const struct http_forward *fwd, struct http_req *out,
                       struct http_field *fields, unsigned max_fields)
{
    struct wbuf w = {buf, 0, cap, 0};
    struct wrec r = {out ? fields : NULL, 0, out ? max_fields : 0, 0, 0, 0, 0};
    int have_proto = 0, have_host = 0;

    w_slice(&w, req->method);
    w_put(&w, " ", 1);
    size_t path_at = w.n;
    w_slice(&w, req->path);
    w_str(&w, " HTTP/1.1\r\n");
    struct cut_slice host = req->authority.n ? req->authority : fwd->default_host;
    size_t host_at = 0;
    if (host.n) {
        F_BEGIN_LIT(&w, &r, "Host");
        host_at = w.n;
        w_slice(&w, host);
        f_end(&w, &r, H1_HDR_HOST, 0);
    }
    for (unsigned i = 0; i < req->nfields; i++) {
        const struct http_field *f = &req->fields[i];
        if (f->flags & H1_HF_HOP)
            continue;
        if (f->id == H1_HDR_CONTENT_LENGTH || f->id == H1_HDR_HOST)
            continue; /* framing and Host are written by us */
        if (!fwd->peer_trusted &&
            (NAME_IS(f, "x-original-host") || NAME_IS(f, "x-original-url")))
            continue; /* only a trusted proxy may say what the original request was */
        if (fwd->strip.n && name_ieq(f->name, fwd->strip.p, fwd->strip.n))
            continue;
        if (is_forwarding_field(f))
            continue; /* rewritten below */
        if (fwd->drop_trace && (NAME_IS(f, "traceparent") || NAME_IS(f, "tracestate")))
            continue; /* an invalid trace context goes as a whole */
        f_begin(&w, &r, f->name.p, f->name.n);
        w_slice(&w, f->value);
        f_end(&w, &r, f->id, 0);
    }
    /* X-Forwarded-For: the client's chain (every field, in order) plus the peer. */
    F_BEGIN_LIT(&w, &r, "X-Forwarded-For");
    for (unsigned i = 0; i < req->nfields; i++) {
        const struct http_field *f = &req->fields[i];
        if (!(f->flags & H1_HF_HOP) && NAME_IS(f, "x-forwarded-for") && f->value.n) {
            w_slice(&w, f->value);
            w_str(&w, ", ");
        }
    }
    w_slice(&w, fwd->peer_addr);
    f_end(&w, &r, H1_HDR_OTHER, 0);
    if (fwd->peer_trusted) {
        for (unsigned i = 0; i < req->nfields; i++) {
            const struct http_field *f = &req->fields[i];
            if (f->flags & H1_HF_HOP)
                continue;
            if (!have_proto && NAME_IS(f, "x-forwarded-proto")) {
                F_BEGIN_LIT(&w, &r, "X-Forwarded-Proto");
                w_slice(&w, f->value);
                f_end(&w, &r, H1_HDR_OTHER, 0);
                have_proto = 1;
            } else if (!have_host && NAME_IS(f, "x-forwarded-host")) {
                F_BEGIN_LIT(&w, &r, "X-Forwarded-Host");
                w_slice(&w, f->value);
                f_end(&w, &r, H1_HDR_OTHER, 0);
                have_host = 1;
            }
        }
    }
    if (!have_proto) {
        F_BEGIN_LIT(&w, &r, "X-Forwarded-Proto");
        w_slice(&w, fwd->proto);
        f_end(&w, &r, H1_HDR_OTHER, 0);
    }
    if (!have_host && req->authority.n) {
        F_BEGIN_LIT(&w, &r, "X-Forwarded-Host");
        w_slice(&w, req->authority);
        f_end(&w, &r, H1_HDR_OTHER, 0);
    }
    F_BEGIN_LIT(&w, &r, "X-Request-Id");
    w_slice(&w, fwd->request_id);
    f_end(&w, &r, H1_HDR_OTHER, 0);
    if (fwd->traceparent.n) {
        F_BEGIN_LIT(&w, &r, "traceparent");
        w_slice(&w, fwd->traceparent);
        f_end(&w, &r, H1_HDR_OTHER, 0);
    }
    switch (req->framing) {
    case HTTP_BODY_LENGTH:
        F_BEGIN_LIT(&w, &r, "Content-Length");
        w_u64(&w, req->content_length);
        f_end(&w, &r, H1_HDR_CONTENT_LENGTH, 0);
        break;
    case HTTP_BODY_STREAM:
        F_BEGIN_LIT(&w, &r, "Transfer-Encoding");
        w_str(&w, "chunked");
        f_end(&w, &r, H1_HDR_TRANSFER_ENCODING, H1_HF_HOP);
        break;
    default:
        break;
    }
    if (req->flags & HTTP_RF_UPGRADE) {
        F_BEGIN_LIT(&w, &r, "Connection");
        w_str(&w, "upgrade");
        f_end(&w, &r, H1_HDR_CONNECTION, H1_HF_HOP);
        F_BEGIN_LIT(&w, &r, "Upgrade");
        w_slice(&w, req->upgrade);
        f_end(&w, &r, H1_HDR_UPGRADE, H1_HF_HOP);
    }
    w_str(&w, "\r\n");
    if (w.overflow || r.over)
        return CUT_ELIMIT;
    if (out) {
        *out = *req;
        out->method = (struct cut_slice){buf, req->method.n};
        out->path = (struct cut_slice){buf + path_at, req->path.n};
        out->authority = (struct cut_slice){host.n ? buf + host_at : buf, host.n};
        out->fields = fields;
        out->nfields = r.n;
        out->upgrade = (struct cut_slice){NULL, 0};
        if (req->flags & HTTP_RF_UPGRADE)
            out->upgrade = fields[r.n - 1].value;
    }
    return (int)w.n;
}

int http_write_h1_request(char *buf, size_t cap, const struct http_req *req,
                          const struct http_forward *fwd)
{
    return http_write_forward(buf, cap, req, fwd, NULL, NULL, 0);
}

int http_write_h1_response(char *buf, size_t cap, const struct http_resp *resp, int chunked,
                           int close, int keep_alive_10)
{
    struct wbuf w = {buf, 0, cap, 0};
    char status[8];
    int upgrade = resp->status == 101 && (resp->flags & HTTP_RF_UPGRADE);
    struct cut_slice upgrade_value = {NULL, 0};
    int cl_seen = 0;

    text_status3(status, (unsigned)resp->status);
    status[3] = ' ';
    status[4] = '\0';
    w_str(&w, "HTTP/1.1 ");
    w_str(&w, status);
    if (resp->reason.n)
        w_slice(&w, resp->reason);
    else
        w_str(&w, http_reason(resp->status));
    w_str(&w, "\r\n");
    for (unsigned i = 0; i < resp->nfields; i++) {
        const struct http_field *f = &resp->fields[i];
        if (f->id == H1_HDR_UPGRADE)
            upgrade_value = f->value;
        if (f->flags & H1_HF_HOP)
            continue;
        /* Content-Length is rewritten for a body we frame; on a bodiless response to HEAD, or
         * a 304, it describes the representation and is passed through (the first one). */
        if (f->id == H1_HDR_CONTENT_LENGTH &&
            (resp->framing != HTTP_BODY_NONE || cl_seen++ || upgrade))
            continue;
        w_slice(&w, f->name);
        w_str(&w, ": ");
        w_slice(&w, f->value);
        w_str(&w, "\r\n");
    }
    if (upgrade) {
        w_str(&w, "Connection: upgrade\r\nUpgrade: ");
        w_slice(&w, upgrade_value);
        w_str(&w, "\r\n\r\n");
        return w_done(&w);
    }
    if (resp->framing == HTTP_BODY_LENGTH) {
        w_str(&w, "Content-Length: ");
        w_u64(&w, resp->content_length);
        w_str(&w, "\r\n");
    } else if (chunked) {
        w_str(&w, "Transfer-Encoding: chunked\r\n");
    }
    if (close)
        w_str(&w, "Connection: close\r\n");
    else if (keep_alive_10)
        w_str(&w, "Connection: keep-alive\r\n");
    w_str(&w, "\r\n");
    return w_done(&w);
}

int http_request_id_ok(struct cut_slice id)
{
    if (id.n == 0 || id.n > 128)
        return 0;
    for (size_t i = 0; i < id.n; i++) {
        unsigned char c = (unsigned char)id.p[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

int http_write_error(char *buf, size_t cap, int status, const char *code, const char *msg,
                     int close)
{
    return http_write_local(buf, cap, status, code, msg, close, 0);
}

int http_write_local(char *buf, size_t cap, int status, const char *code, const char *msg,
                     int close, int head)
{
    char body[512];
    int blen = snprintf(body, sizeof body, "cutover: %s\n", msg);
    if (blen < 0 || (size_t)blen >= sizeof body)
        blen = (int)sizeof body - 1;
    int n = snprintf(buf, cap,
                     "HTTP/1.1 %03d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     "Cache-Control: no-store\r\n%s%s%s%s\r\n%.*s",
                     status, http_reason(status), blen, code ? "X-Cutover-Error: " : "",
                     code ? code : "", code ? "\r\n" : "", close ? "Connection: close\r\n" : "",
                     head ? 0 : blen, body);
    if (n < 0 || (size_t)n >= cap)
        return CUT_ELIMIT;
    return n;
}

struct cut_slice http_upgrade_filter(struct cut_slice value)
{
    if (value.n && h1_list_has_token(value, "websocket"))
        return CUT_SLICE_LIT("websocket");
    return (struct cut_slice){"", 0};
}

uint64_t http_body_allowance_ms(unsigned base_ms, unsigned min_rate, uint64_t bytes)
{
    if (base_ms == 0)
        return UINT64_MAX;
    if (min_rate == 0)
        return base_ms;
    if (bytes / min_rate > UINT64_MAX / 1000 - 1)
        return UINT64_MAX;
    uint64_t credit = bytes / min_rate * 1000 + (bytes % min_rate) * 1000 / min_rate;
    if (credit > UINT64_MAX - base_ms)
        return UINT64_MAX;
    return base_ms + credit;
}

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

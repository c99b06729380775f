/* fields.c - header fields and the field-by-field head collector (see fields.h). */
#include "proxy/http/fields.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/http/http.h"

static int ieq(struct cut_slice s, const char *lower)
{
    size_t n = strlen(lower);
    if (s.n != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch + 32);
        if (ch != (unsigned char)lower[i])
            return 0;
    }
    return 1;
}

int fields_conn_specific(struct cut_slice name)
{
    return ieq(name, "connection") || ieq(name, "keep-alive") ||
           ieq(name, "proxy-connection") || ieq(name, "transfer-encoding") ||
           ieq(name, "upgrade");
}

void fields_head_init(struct fields_head *h, size_t max_bytes, unsigned max_fields)
{
    memset(h, 0, sizeof *h);
    h->max_bytes = max_bytes;
    h->max_fields = max_fields;
}

void fields_head_dispose(struct fields_head *h)
{
    free(h->buf);
    free(h->refs);
    free(h->fields);
    memset(h, 0, sizeof *h);
}

static int head_reserve(struct fields_head *h, size_t more)
{
    if (h->cap - h->len >= more)
        return 0;
    size_t cap = h->cap ? h->cap : 1024;
    while (cap - h->len < more)
        cap *= 2;
    char *p = realloc(h->buf, cap);
    if (!p)
        return CUT_ENOMEM;
    h->buf = p;
    h->cap = cap;
    return 0;
}

int fields_head_add(struct fields_head *h, const char *name, size_t nl, const char *value,
                    size_t vl)
{
    if (h->over)
        return CUT_ELIMIT;
    h->list_size += nl + vl + 32;
    if (h->list_size > h->max_bytes || h->n >= h->max_fields || nl > UINT32_MAX / 2 ||
        vl > UINT32_MAX / 2) {
        h->over = 1;
        return CUT_ELIMIT;
    }
    if (h->n == h->cap_refs) {
        unsigned cap = h->cap_refs ? h->cap_refs * 2 : 16;
        struct fields_ref *r = realloc(h->refs, cap * sizeof *r);
        if (!r)
            return CUT_ENOMEM;
        h->refs = r;
        h->cap_refs = cap;
    }
    if (head_reserve(h, nl + vl) < 0)
        return CUT_ENOMEM;
    struct fields_ref *r = &h->refs[h->n++];
    r->name_off = (uint32_t)h->len;
    r->name_len = (uint32_t)nl;
    memcpy(h->buf + h->len, name, nl);
    h->len += nl;
    r->value_off = (uint32_t)h->len;
    r->value_len = (uint32_t)vl;
    memcpy(h->buf + h->len, value, vl);
    h->len += vl;
    return 0;
}

static struct cut_slice ref_name(const struct fields_head *h, const struct fields_ref *r)
{
    return (struct cut_slice){h->buf + r->name_off, r->name_len};
}

static struct cut_slice ref_value(const struct fields_head *h, const struct fields_ref *r)
{
    return (struct cut_slice){h->buf + r->value_off, r->value_len};
}

static int parse_u64(struct cut_slice v, uint64_t *out)
{
    if (v.n == 0 || v.n > 19)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(v.p[i] - '0');
    }
    *out = x;
    return 0;
}

int fields_head_request(struct fields_head *h, int end_stream, struct http_req *req)
{
    memset(req, 0, sizeof *req);
    if (h->over)
        return 431;
    /* Several cookie fields are joined into one (RFC 9113 section 8.2.3): append the joined
     * value to buf first, since buf may move. */
    unsigned ncookies = 0;
    size_t cookie_len = 0;
    for (unsigned i = 0; i < h->n; i++) {
        if (ieq(ref_name(h, &h->refs[i]), "cookie")) {
            ncookies++;
            cookie_len += h->refs[i].value_len + 2;
        }
    }
    int joined = -1; /* index of the first cookie ref, whose value becomes the joined one */
    if (ncookies > 1) {
        if (head_reserve(h, cookie_len) < 0)
            return 431;
        size_t start = h->len;
        for (unsigned i = 0; i < h->n; i++) {
            struct fields_ref *r = &h->refs[i];
            if (!ieq(ref_name(h, r), "cookie"))
                continue;
            if (joined < 0) {
                joined = (int)i;
            } else {
                memcpy(h->buf + h->len, "; ", 2);
                h->len += 2;
            }
            memmove(h->buf + h->len, h->buf + r->value_off, r->value_len);
            h->len += r->value_len;
        }
        h->refs[joined].value_off = (uint32_t)start;
        h->refs[joined].value_len = (uint32_t)(h->len - start);
    }
    h->fields = calloc(h->n ? h->n : 1, sizeof *h->fields);
    if (!h->fields)
        return 431;
    struct cut_slice method = {0}, path = {0}, authority = {0}, host = {0}, scheme = {0};
    int have_method = 0, have_path = 0, have_scheme = 0, have_protocol = 0, have_cl = 0;
    uint64_t cl = 0;
    unsigned nf = 0;
    for (unsigned i = 0; i < h->n; i++) {
        const struct fields_ref *r = &h->refs[i];
        struct cut_slice name = ref_name(h, r), value = ref_value(h, r);
        if (name.n && name.p[0] == ':') {
            if (nf)
                return 400; /* pseudo-header after a regular field */
            if (ieq(name, ":method") && !have_method) {
                method = value;
                have_method = 1;
            } else if (ieq(name, ":path") && !have_path) {
                path = value;
                have_path = 1;
            } else if (ieq(name, ":authority") && !authority.n) {
                authority = value;
            } else if (ieq(name, ":scheme") && !have_scheme) {
                scheme = value;
                have_scheme = 1;
            } else if (ieq(name, ":protocol")) {
                have_protocol = 1;
            } else {
                return 400;
            }
            continue;
        }
        if (ieq(name, "cookie") && joined >= 0 && (int)i != joined)
            continue; /* folded into the first cookie field */
        struct http_field *f = &h->fields[nf++];
        f->name = name;
        f->value = value;
        f->id = H1_HDR_OTHER;
        f->flags = 0;
        if (ieq(name, "host")) {
            f->id = H1_HDR_HOST;
            if (!host.n)
                host = value;
        } else if (ieq(name, "content-length")) {
            uint64_t v;
            if (parse_u64(value, &v) < 0 || (have_cl && v != cl))
                return 400;
            cl = v;
            have_cl = 1;
            f->id = H1_HDR_CONTENT_LENGTH;
        } else if (ieq(name, "te")) {
            if (!ieq(value, "trailers"))
                return 400;
            f->id = H1_HDR_TE;
            f->flags = H1_HF_HOP;
            req->flags |= HTTP_RF_TE_TRAILERS;
        } else if (fields_conn_specific(name)) {
            f->flags = H1_HF_HOP; /* nghttp2 refuses these already; never forward them anyway */
        } else if (ieq(name, "expect") && ieq(value, "100-continue")) {
            req->flags |= HTTP_RF_EXPECT_CONTINUE;
        }
    }
    if (!have_method || method.n == 0)
        return 400;
    if (ieq(method, "connect") || have_protocol)
        return 501;
    if (!have_scheme || !have_path || path.n == 0)
        return 400;
    (void)scheme;
    if (path.p[0] != '/' && !(path.n == 1 && path.p[0] == '*' && ieq(method, "options")))
        return 400;
    req->method = method;
    req->path = path;
    req->authority = authority.n ? authority : host;
    if (!req->authority.p)
        req->authority = CUT_SLICE_LIT(""); /* never a NULL pointer, even when empty */
    req->fields = h->fields;
    req->nfields = nf;
    req->version_minor = 0;
    req->flags |= HTTP_RF_KEEP_ALIVE;
    if (ieq(method, "head"))
        req->flags |= HTTP_RF_HEAD;
    if (have_cl) {
        req->framing = HTTP_BODY_LENGTH;
        req->content_length = cl;
    } else {
        req->framing = end_stream ? HTTP_BODY_NONE : HTTP_BODY_STREAM;
    }
    return 0;
}

int fields_head_trailers(struct fields_head *h, unsigned *n)
{
    *n = 0;
    if (h->over)
        return CUT_ELIMIT;
    free(h->fields);
    h->fields = calloc(h->n ? h->n : 1, sizeof *h->fields);
    if (!h->fields)
        return CUT_ENOMEM;
    for (unsigned i = 0; i < h->n; i++) {
        struct cut_slice name = ref_name(h, &h->refs[i]);
        if (name.n && name.p[0] == ':')
            return CUT_EPROTO;
        struct http_field *f = &h->fields[i];
        f->name = name;
        f->value = ref_value(h, &h->refs[i]);
        f->id = H1_HDR_OTHER;
        f->flags = fields_conn_specific(name) ? H1_HF_HOP : 0;
    }
    *n = h->n;
    return 0;
}

int fields_head_response(struct fields_head *h, int end_stream, int head_req,
                         struct http_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    if (h->over)
        return 502;
    h->fields = calloc(h->n ? h->n : 1, sizeof *h->fields);
    if (!h->fields)
        return 502;
    int status = -1, have_cl = 0;
    uint64_t cl = 0;
    unsigned nf = 0;
    for (unsigned i = 0; i < h->n; i++) {
        const struct fields_ref *r = &h->refs[i];
        struct cut_slice name = ref_name(h, r), value = ref_value(h, r);
        if (name.n && name.p[0] == ':') {
            uint64_t v;
            if (nf || status >= 0 || !ieq(name, ":status") || value.n != 3 ||
                parse_u64(value, &v) < 0 || v < 100)
                return 502;
            status = (int)v;
            continue;
        }
        struct http_field *f = &h->fields[nf++];
        f->name = name;
        f->value = value;
        f->id = H1_HDR_OTHER;
        f->flags = 0;
        if (ieq(name, "content-length")) {
            uint64_t v;
            if (parse_u64(value, &v) < 0 || (have_cl && v != cl))
                return 502;
            cl = v;
            have_cl = 1;
            f->id = H1_HDR_CONTENT_LENGTH;
        } else if (fields_conn_specific(name) || ieq(name, "te")) {
            f->flags = H1_HF_HOP;
        }
    }
    if (status < 0)
        return 502;
    resp->status = status;
    resp->fields = h->fields;
    resp->nfields = nf;
    resp->flags = HTTP_RF_KEEP_ALIVE;
    if (head_req || status == 204 || status == 304 || status < 200 || end_stream) {
        resp->framing = HTTP_BODY_NONE;
        resp->content_length = have_cl ? cl : 0;
    } else if (have_cl) {
        resp->framing = HTTP_BODY_LENGTH;
        resp->content_length = cl;
    } else {
        resp->framing = HTTP_BODY_STREAM;
    }
    return 0;
}

int fields_value_ok(struct cut_slice v)
{
    /* Eight bytes at a time while none is below 0x20 or is 0x7f (the usual value); a word with
     * one is judged byte by byte below (a tab is allowed). */
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= v.n; i += 8) {
        uint64_t x;
        memcpy(&x, v.p + i, 8);
        uint64_t below20 = (x - ones * 0x20) & ~x & highs; /* some byte < 0x20 */
        uint64_t y = x ^ (ones * 0x7f);
        uint64_t is7f = (y - ones) & ~y & highs; /* some byte == 0x7f */
        if (below20 | is7f)
            break;
    }
    for (; i < v.n; i++) {
        unsigned char ch = (unsigned char)v.p[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

struct cut_slice fields_value_trim(struct cut_slice v)
{
    while (v.n && (v.p[0] == ' ' || v.p[0] == '\t')) {
        v.p++;
        v.n--;
    }
    while (v.n && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t'))
        v.n--;
    return v;
}

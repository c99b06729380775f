/* h1_fields.c - the field lines of an HTTP/1.1 head (RFC 9112 section 5, RFC 9110 section 5):
 * scanning them (zero-copy slices, well-known names recognised once), comma-separated lists,
 * Content-Length values, and what the fields say about framing and the connection (struct
 * h1_meta). The start lines and the message rules built on this are h1_parse.c's; the contract
 * is h1_parse.h's. Pure; any thread.
 */
#include "proxy/http/h1_internal.h"

#include <string.h>

/* Case-insensitive comparison of two arbitrary byte ranges of the same length. */
static int h1_mem_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (h1_lower((unsigned char)a[i]) != h1_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* Recognises a well-known field name (a validated token): switch on length, then compare. */
static uint8_t h1_hdr_lookup(const char *p, size_t n)
{
    switch (n) {
    case 2:
        if (h1_tok_ieq(p, "te", 2))
            return H1_HDR_TE;
        break;
    case 4:
        if (h1_tok_ieq(p, "host", 4))
            return H1_HDR_HOST;
        break;
    case 6:
        if (h1_tok_ieq(p, "expect", 6))
            return H1_HDR_EXPECT;
        break;
    case 7:
        if (h1_tok_ieq(p, "upgrade", 7))
            return H1_HDR_UPGRADE;
        if (h1_tok_ieq(p, "trailer", 7))
            return H1_HDR_TRAILER;
        break;
    case 10:
        if (h1_tok_ieq(p, "connection", 10))
            return H1_HDR_CONNECTION;
        if (h1_tok_ieq(p, "keep-alive", 10))
            return H1_HDR_KEEP_ALIVE;
        break;
    case 14:
        if (h1_tok_ieq(p, "content-length", 14))
            return H1_HDR_CONTENT_LENGTH;
        if (h1_tok_ieq(p, "http2-settings", 14))
            return H1_HDR_HTTP2_SETTINGS;
        break;
    case 16:
        if (h1_tok_ieq(p, "proxy-connection", 16))
            return H1_HDR_PROXY_CONNECTION;
        break;
    case 17:
        if (h1_tok_ieq(p, "transfer-encoding", 17))
            return H1_HDR_TRANSFER_ENCODING;
        break;
    default: break;
    }
    return H1_HDR_OTHER;
}

static uint8_t h1_hdr_flags(uint8_t id)
{
    switch (id) {
    case H1_HDR_CONNECTION:
    case H1_HDR_KEEP_ALIVE:
    case H1_HDR_PROXY_CONNECTION:
    case H1_HDR_TE:
    case H1_HDR_TRANSFER_ENCODING:
    case H1_HDR_UPGRADE:
    case H1_HDR_HTTP2_SETTINGS: return H1_HF_HOP;
    default: return 0;
    }
}

/* Scans field lines from buf[pos] up to and including the empty line that ends them, never
 * reading at or past end. Stores at most max_headers fields, counting them in *nheaders.
 * Returns the position after the empty line, H1_RUN_OUT, or CUT_EPROTO with *status 400
 * (malformed) or 431 (too many fields). */
int h1_scan_fields(const char *buf, size_t pos, size_t end, struct http_field *headers,
                   unsigned max_headers, unsigned *nheaders, int *status)
{
    unsigned n = 0;
    int rc;

    for (;;) {
        if (pos >= end)
            goto run_out;
        unsigned char c = (unsigned char)buf[pos];
        if (c == '\r') {
            if (pos + 1 >= end)
                goto run_out;
            if (buf[pos + 1] != '\n')
                goto bad;
            pos += 2;
            break;
        }
        if (c == '\n') {
            pos++;
            break;
        }
        if (n >= max_headers) {
            *status = 431;
            rc = CUT_EPROTO;
            goto out;
        }

        /* field-name ":" OWS field-value OWS. A line starting with SP/HTAB (obs-fold), a space
         * before the colon or any non-token byte in the name all stop here without a colon. */
        size_t name = pos;
        while (pos < end && h1_is((unsigned char)buf[pos], H1_C_TCHAR))
            pos++;
        if (pos >= end)
            goto run_out;
        if (buf[pos] != ':' || pos == name)
            goto bad;
        size_t name_n = pos - name;
        pos++;
        while (pos < end && h1_is_ows(buf[pos]))
            pos++;
        size_t value = pos;
        pos = h1_skip_value(buf, pos, end);
        if (pos >= end)
            goto run_out;
        c = (unsigned char)buf[pos];
        size_t value_end = pos;
        if (c == '\r') {
            if (pos + 1 >= end)
                goto run_out;
            if (buf[pos + 1] != '\n')
                goto bad;
            pos += 2;
        } else if (c == '\n') {
            pos++;
        } else {
            goto bad; /* a control character (or DEL) inside the value */
        }
        while (value_end > value && h1_is_ows(buf[value_end - 1]))
            value_end--;

        struct http_field *h = &headers[n++];
        h->name = h1_slice(buf + name, name_n);
        h->value = h1_slice(buf + value, value_end - value);
        h->id = h1_hdr_lookup(buf + name, name_n);
        h->flags = h1_hdr_flags(h->id);
    }
    rc = (int)pos;
    goto out;
run_out:
    rc = H1_RUN_OUT;
    goto out;
bad:
    *status = 400;
    rc = CUT_EPROTO;
out:
    *nheaders = n;
    return rc;
}

/* Walks a comma-separated list: from *pp, returns the next element with OWS trimmed (possibly
 * empty) and moves *pp past its comma. Call while *pp < end. */
static struct cut_slice h1_list_next(const char **pp, const char *end)
{
    const char *p = *pp;
    while (p < end && h1_is_ows(*p))
        p++;
    const char *s = p;
    while (p < end && *p != ',')
        p++;
    const char *e = p;
    while (e > s && h1_is_ows(e[-1]))
        e--;
    *pp = p < end ? p + 1 : p;
    return h1_slice(s, (size_t)(e - s));
}

/* Does list contain an element whose token part (before any ';' parameters) equals tok,
 * case-insensitively? */
static int h1_list_has(struct cut_slice list, const char *tok, size_t tok_n)
{
    const char *p = list.p;
    const char *end = list.p + list.n;

    while (p < end) {
        struct cut_slice el = h1_list_next(&p, end);
        size_t n = 0;
        while (n < el.n && el.p[n] != ';')
            n++;
        while (n > 0 && h1_is_ows(el.p[n - 1]))
            n--;
        if (n == tok_n && h1_mem_ieq(el.p, tok, n))
            return 1;
    }
    return 0;
}

int h1_list_has_token(struct cut_slice value, const char *lower_token)
{
    return h1_list_has(value, lower_token, strlen(lower_token));
}

/* Content-Length value: 1*DIGIT, or a list of identical ones ("5, 5"). Returns 0 and sets *out,
 * or -1. */
static int h1_parse_cl(struct cut_slice v, uint64_t *out)
{
    const char *p = v.p;
    const char *end = v.p + v.n;
    int have = 0;
    uint64_t first = 0;

    for (;;) {
        while (p < end && h1_is_ows(*p))
            p++;
        const char *d = p;
        uint64_t x = 0;
        while (p < end && (unsigned)(*p - '0') < 10u) {
            uint64_t d1 = (uint64_t)(*p - '0');
            if (x > (H1_SIZE_MAX_VALUE - d1) / 10)
                return -1;
            x = x * 10 + d1;
            p++;
        }
        if (p == d)
            return -1;
        if (have && x != first)
            return -1;
        first = x;
        have = 1;
        while (p < end && h1_is_ows(*p))
            p++;
        if (p == end)
            break;
        if (*p != ',')
            return -1;
        p++;
    }
    *out = first;
    return 0;
}

static int h1_coding_known(struct cut_slice c)
{
    switch (c.n) {
    case 4: return h1_mem_ieq(c.p, "gzip", 4);
    case 6: return h1_mem_ieq(c.p, "x-gzip", 6);
    case 7: return h1_mem_ieq(c.p, "deflate", 7);
    case 8: return h1_mem_ieq(c.p, "compress", 8);
    case 10: return h1_mem_ieq(c.p, "x-compress", 10);
    default: return 0;
    }
}

/* Gathers h1_meta from the fields. Returns 0, or -1 on a framing error that no message type
 * accepts (bad or differing Content-Length, malformed Transfer-Encoding element, chunked
 * twice); the caller maps it to its status. */
int h1_analyse(const struct http_field *h, unsigned n, struct h1_meta *m)
{
    int chunked_seen = 0;
    int after_chunked = 0;

    memset(m, 0, sizeof(*m));
    for (unsigned i = 0; i < n; i++) {
        const char *p, *end;

        switch (h[i].id) {
        case H1_HDR_HOST:
            if (m->nhost++ == 0)
                m->host = h[i].value;
            break;
        case H1_HDR_CONTENT_LENGTH: {
            uint64_t v;
            if (h1_parse_cl(h[i].value, &v) != 0)
                return -1;
            if (m->has_cl && v != m->cl)
                return -1;
            m->has_cl = 1;
            m->cl = v;
            break;
        }
        case H1_HDR_TRANSFER_ENCODING:
            m->has_te = 1;
            p = h[i].value.p;
            end = p + h[i].value.n;
            while (p < end) {
                struct cut_slice c = h1_list_next(&p, end);
                if (c.n == 0)
                    continue; /* empty list elements are allowed and ignored */
                for (size_t k = 0; k < c.n; k++)
                    if (!h1_is((unsigned char)c.p[k], H1_C_TCHAR))
                        return -1; /* parameters or garbage */
                if (c.n == 7 && h1_mem_ieq(c.p, "chunked", 7)) {
                    if (chunked_seen)
                        return -1; /* chunked applied twice */
                    chunked_seen = 1;
                } else {
                    if (chunked_seen)
                        after_chunked = 1;
                    if (!h1_coding_known(c))
                        m->te_unknown = 1;
                }
            }
            break;
        case H1_HDR_CONNECTION:
            p = h[i].value.p;
            end = p + h[i].value.n;
            while (p < end) {
                struct cut_slice t = h1_list_next(&p, end);
                if (t.n == 0)
                    continue;
                if (cut_slice_ieq(t, "close"))
                    m->conn_close = 1;
                else if (cut_slice_ieq(t, "keep-alive"))
                    m->conn_keep_alive = 1;
                else if (cut_slice_ieq(t, "upgrade"))
                    m->conn_upgrade = 1;
                else
                    m->conn_other = 1;
            }
            break;
        case H1_HDR_UPGRADE:
            if (!m->upgrade)
                m->upgrade = &h[i];
            break;
        case H1_HDR_EXPECT:
            if (h1_list_has(h[i].value, "100-continue", 12))
                m->expect_continue = 1;
            break;
        case H1_HDR_TE:
            if (h1_list_has(h[i].value, "trailers", 8))
                m->te_trailers = 1;
            break;
        default: break;
        }
    }
    m->te_chunked_last = chunked_seen && !after_chunked;
    return 0;
}

/* Marks hop-by-hop every field named as a token in a Connection field (RFC 9110 7.6.1),
 * except Host and Content-Length. Only called when Connection names something unusual. */
void h1_mark_connection_named(struct http_field *h, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if ((h[i].flags & H1_HF_HOP) || h[i].id == H1_HDR_HOST || h[i].id == H1_HDR_CONTENT_LENGTH)
            continue;
        for (unsigned j = 0; j < n; j++) {
            if (h[j].id == H1_HDR_CONNECTION && h1_list_has(h[j].value, h[i].name.p, h[i].name.n)) {
                h[i].flags |= H1_HF_HOP;
                break;
            }
        }
    }
}

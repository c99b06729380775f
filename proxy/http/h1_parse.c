/* h1_parse.c - a pure, zero-copy HTTP/1.1 message parser (RFC 9112). Contract in h1_parse.h.
 *
 * Shape: one linear pass over the head. The start line and every field line are scanned once,
 * byte by byte, against a 256-entry character-class table; running out of input anywhere stops
 * the scan and gives CUT_EAGAIN (or a limit verdict), so a partial head costs one scan of what has
 * arrived and malformed input is rejected as soon as the offending byte is seen. The scan is
 * bounded by lim->max_head, so limits are detected without waiting for the end of the head.
 * Framing and connection semantics are derived afterwards from the (small) array of fields; the
 * raw bytes are only looked at again for the values of the few well-known fields.
 *
 * Choices the contract leaves open, made here on purpose:
 * - Empty lines before a request line are skipped (RFC 9112 section 2.2) and counted in the
 *   returned head length.
 * - The request line uses single SPs between its parts (the strict grammar).
 * - Chunk-size lines must end in CRLF: RFC 9112 allows a bare LF only for the start line and
 *   fields, and lenient chunk parsing is a known request-smuggling vector.
 * - Content-Length values above 2^62 are treated as an overflow (same bound as chunk sizes).
 * - A Host value with characters outside the authority grammar is rejected (RFC 9112 3.2 asks for
 *   400 on "a Host header field with an invalid field value").
 * - Upgrade and "Expect: 100-continue" are ignored in HTTP/1.0 requests (RFC 9110 7.8, 10.1.1).
 * - Transfer-Encoding elements must be bare coding names (no parameters); known codings are
 *   chunked, gzip, x-gzip, deflate, compress and x-compress.
 * - Fields named by Connection are marked hop-by-hop, except Host and Content-Length, which a
 *   client must not be able to strip that way.
 */
#include "proxy/http/h1_parse.h"

#include <limits.h>
#include <string.h>

/* Character classes. */
#define H1_C_TCHAR 0x01u /* token character (RFC 9110 5.6.2) */
#define H1_C_VALUE 0x02u /* allowed inside a field value: HTAB, SP, VCHAR, obs-text */
#define H1_C_HOST 0x04u  /* allowed in a Host value: reg-name, IP-literal and port characters */

static const uint8_t h1_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    2, 7, 2, 3, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 2, /* 0x20  !"#$%&'()*+,-./ */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 2, 6, 2, 2, /* 0x30 0-9:;<=>? */
    2, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x40 @A-O */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 2, 6, 3, 7, /* 0x50 P-Z[\]^_ */
    3, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x60 `a-o */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 3, 2, 7, 0, /* 0x70 p-z{|}~DEL */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 obs-text */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xa0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xb0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xc0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xd0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xe0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xf0 */
};

#define H1_SIZE_MAX_VALUE (UINT64_C(1) << 62) /* largest Content-Length or chunk size */
#define H1_CHUNK_LINE_MAX 4096                /* chunk-size line, without CRLF */

/* Sentinel of the internal scanners: ran out of input before a verdict. */
#define H1_RUN_OUT CUT_EAGAIN

static inline int h1_is(unsigned char c, unsigned cls)
{
    return (h1_class[c] & cls) != 0;
}

static inline int h1_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline unsigned char h1_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static inline int h1_hex(unsigned char c)
{
    if ((unsigned)(c - '0') < 10u)
        return c - '0';
    c |= 0x20;
    if ((unsigned)(c - 'a') < 6u)
        return c - 'a' + 10;
    return -1;
}

/* SWAR helpers: eight bytes per step on the long runs (targets, field values), falling back to
 * the per-byte table at the first byte that may stop the run. h1_has_lt(w, n): some byte of w is
 * below n (n <= 128); h1_has_byte(w, b): some byte of w equals b. */
#define H1_ONES UINT64_C(0x0101010101010101)
#define H1_HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t h1_load8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

static inline uint64_t h1_has_lt(uint64_t w, unsigned n)
{
    return (w - H1_ONES * n) & ~w & H1_HIGHS;
}

static inline uint64_t h1_has_byte(uint64_t w, unsigned b)
{
    return h1_has_lt(w ^ (H1_ONES * b), 1);
}

/* First position in [pos, end) whose byte is not allowed in a field value, or end. */
static inline size_t h1_skip_value(const char *buf, size_t pos, size_t end)
{
    while (end - pos >= 8) {
        uint64_t w = h1_load8(buf + pos);
        if (h1_has_lt(w, 0x20) | h1_has_byte(w, 0x7f))
            break;
        pos += 8;
    }
    while (pos < end && h1_is((unsigned char)buf[pos], H1_C_VALUE))
        pos++;
    return pos;
}

/* First position in [pos, end) whose byte cannot be in a request-target (CTL, SP, DEL), or end. */
static inline size_t h1_skip_target(const char *buf, size_t pos, size_t end)
{
    while (end - pos >= 8) {
        uint64_t w = h1_load8(buf + pos);
        if (h1_has_lt(w, 0x21) | h1_has_byte(w, 0x7f))
            break;
        pos += 8;
    }
    while (pos < end && (unsigned char)buf[pos] > ' ' && buf[pos] != 0x7f)
        pos++;
    return pos;
}

static inline struct cut_slice h1_slice(const char *p, size_t n)
{
    return (struct cut_slice){p, n};
}

/* Compares a field name already validated as a token with a lower-case name of the same
 * length. For token characters, c | 0x20 equals a lower-case letter only for that letter in
 * either case, and leaves '-' and digits alone, so one OR per byte is an exact fold. */
static inline int h1_tok_ieq(const char *p, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] | 0x20) != (unsigned char)lower[i])
            return 0;
    return 1;
}

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
static int h1_scan_fields(const char *buf, size_t pos, size_t end, struct http_field *headers,
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

/* Host value: empty, or authority characters only. */
static int h1_host_valid(struct cut_slice v)
{
    for (size_t i = 0; i < v.n; i++)
        if (!h1_is((unsigned char)v.p[i], H1_C_HOST))
            return 0;
    return 1;
}

/* What the fields of one message say about framing and the connection. */
struct h1_meta {
    unsigned nhost;
    struct cut_slice host;
    int has_cl;
    uint64_t cl;
    int has_te;
    int te_chunked_last; /* the last transfer coding is chunked */
    int te_unknown;      /* a coding other than the known ones */
    int conn_close;
    int conn_keep_alive;
    int conn_upgrade;
    int conn_other; /* Connection names other fields: mark them hop-by-hop */
    const struct http_field *upgrade;
    int expect_continue;
    int te_trailers;
};

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
static int h1_analyse(const struct http_field *h, unsigned n, struct h1_meta *m)
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
static void h1_mark_connection_named(struct http_field *h, unsigned n)
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

static unsigned h1_keep_alive(int minor, const struct h1_meta *m)
{
    if (m->conn_close)
        return 0;
    if (minor >= 1 || m->conn_keep_alive)
        return H1_CF_KEEP_ALIVE;
    return 0;
}

/* Effective scan bound and field count for a message. */
static size_t h1_head_cap(const struct h1_limits *lim)
{
    return lim->max_head < (size_t)INT_MAX ? lim->max_head : (size_t)INT_MAX;
}

static unsigned h1_field_cap(const struct h1_limits *lim, unsigned max_headers)
{
    return max_headers < lim->max_headers ? max_headers : lim->max_headers;
}

/* Decides between "wait for more" and "the head will not fit" once a scan ran out at the
 * bound. line/line_seen describe a start line still incomplete (line_seen 0 otherwise). */
static int h1_run_out(size_t len, size_t cap, size_t line_seen, size_t max_line, int line_status,
                      int *status)
{
    if (line_seen > max_line) {
        *status = line_status;
        return CUT_EPROTO;
    }
    if (len > cap) {
        *status = 431;
        return CUT_EPROTO;
    }
    return CUT_EAGAIN;
}

/* Length of the start line seen so far when a scan ran out inside it at end (a trailing CR may
 * be the first half of its CRLF and is not counted). */
static size_t h1_line_seen(const char *buf, size_t line, size_t end)
{
    size_t n = end - line;
    if (n > 0 && buf[end - 1] == '\r')
        n--;
    return n;
}

int h1_parse_request(const char *buf, size_t len, const struct h1_limits *lim,
                     struct h1_request *req, struct http_field *headers, unsigned max_headers,
                     int *status)
{
    CUT_ASSERT(lim != NULL && req != NULL && status != NULL);
    CUT_ASSERT(buf != NULL || len == 0);
    CUT_ASSERT(headers != NULL || max_headers == 0);

    memset(req, 0, sizeof(*req));
    req->headers = headers;
    *status = 0;

    size_t cap = h1_head_cap(lim);
    size_t end = len < cap ? len : cap;
    size_t pos = 0;
    size_t line;
    int rc;

    /* RFC 9112 2.2: ignore empty lines received before the request line. */
    while (pos < end) {
        if (buf[pos] == '\n') {
            pos++;
        } else if (buf[pos] == '\r') {
            if (pos + 1 >= end)
                return h1_run_out(len, cap, 0, lim->max_line, 414, status);
            if (buf[pos + 1] != '\n')
                goto bad;
            pos += 2;
        } else {
            break;
        }
    }
    line = pos;

    /* method SP request-target SP HTTP-version CRLF */
    while (pos < end && h1_is((unsigned char)buf[pos], H1_C_TCHAR))
        pos++;
    if (pos >= end)
        goto line_run_out;
    if (buf[pos] != ' ' || pos == line)
        goto bad;
    req->method = h1_slice(buf + line, pos - line);
    size_t target = ++pos;
    pos = h1_skip_target(buf, pos, end);
    if (pos >= end)
        goto line_run_out;
    if (buf[pos] != ' ' || pos == target)
        goto bad;
    req->target = h1_slice(buf + target, pos - target);
    size_t version = ++pos;
    while (pos < end && buf[pos] != '\r' && buf[pos] != '\n')
        pos++;
    if (pos >= end)
        goto line_run_out;
    size_t line_end = pos;
    if (buf[pos] == '\r') {
        if (pos + 1 >= end)
            goto line_run_out;
        if (buf[pos + 1] != '\n')
            goto bad;
        pos += 2;
    } else {
        pos++;
    }
    if (line_end - line > lim->max_line) {
        *status = 414;
        return CUT_EPROTO;
    }
    {
        const char *v = buf + version;
        if (line_end - version != 8 || memcmp(v, "HTTP/", 5) != 0 ||
            (unsigned)(v[5] - '0') >= 10u || v[6] != '.' || (unsigned)(v[7] - '0') >= 10u)
            goto bad;
        if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) {
            *status = 505;
            return CUT_EPROTO;
        }
        req->minor_version = v[7] - '0';
    }

    rc = h1_scan_fields(buf, pos, end, headers, h1_field_cap(lim, max_headers), &req->nheaders,
                        status);
    if (rc == H1_RUN_OUT)
        return h1_run_out(len, cap, 0, lim->max_line, 414, status);
    if (rc < 0)
        return rc;

    /* The head is complete: framing and connection semantics. */
    struct h1_meta m;
    if (h1_analyse(headers, req->nheaders, &m) != 0)
        goto bad;
    if (m.nhost > 1 || (m.nhost == 0 && req->minor_version >= 1) ||
        (m.nhost == 1 && !h1_host_valid(m.host)))
        goto bad;
    req->host = m.host;
    if (m.has_te) {
        if (req->minor_version == 0 || m.has_cl)
            goto bad;
        if (m.te_unknown) {
            *status = 501;
            return CUT_EPROTO;
        }
        if (!m.te_chunked_last)
            goto bad;
        req->body = H1_BODY_CHUNKED;
    } else if (m.has_cl) {
        req->body = H1_BODY_LENGTH;
        req->content_length = m.cl;
    } else {
        req->body = H1_BODY_NONE;
    }
    req->conn_flags = h1_keep_alive(req->minor_version, &m);
    if (req->minor_version >= 1) {
        if (m.conn_upgrade && m.upgrade) {
            req->conn_flags |= H1_CF_UPGRADE;
            req->upgrade = m.upgrade->value;
        }
        if (m.expect_continue)
            req->conn_flags |= H1_CF_EXPECT_CONTINUE;
    }
    if (m.te_trailers)
        req->conn_flags |= H1_CF_TE_TRAILERS;
    if (m.conn_other)
        h1_mark_connection_named(headers, req->nheaders);
    return rc;

line_run_out:
    return h1_run_out(len, cap, h1_line_seen(buf, line, end), lim->max_line, 414, status);
bad:
    *status = 400;
    return CUT_EPROTO;
}

int h1_parse_response(const char *buf, size_t len, const struct h1_limits *lim,
                      struct cut_slice req_method, struct h1_response *resp,
                      struct http_field *headers, unsigned max_headers, int *status)
{
    static const char prefix[] = "HTTP/1.";

    CUT_ASSERT(lim != NULL && resp != NULL && status != NULL);
    CUT_ASSERT(buf != NULL || len == 0);
    CUT_ASSERT(headers != NULL || max_headers == 0);

    memset(resp, 0, sizeof(*resp));
    resp->headers = headers;
    *status = 0;

    size_t cap = h1_head_cap(lim);
    size_t end = len < cap ? len : cap;
    size_t pos = 0;
    int rc;

    /* Reject a peer that does not speak HTTP/1 as soon as the first bytes show it. */
    size_t pre = end < sizeof(prefix) - 1 ? end : sizeof(prefix) - 1;
    if (pre > 0 && memcmp(buf, prefix, pre) != 0)
        goto bad;

    /* HTTP-version SP 3DIGIT SP [reason-phrase] CRLF; the SP after the code may be missing.
     * Every byte of the line is checked against the field-value class on the way. */
    pos = h1_skip_value(buf, 0, end);
    if (pos >= end || (buf[pos] == '\r' && pos + 1 >= end)) {
        rc = h1_run_out(len, cap, h1_line_seen(buf, 0, end), lim->max_line, 502, status);
        goto out;
    }
    size_t line_end = pos;
    if (buf[pos] == '\r') {
        if (buf[pos + 1] != '\n')
            goto bad;
        pos += 2;
    } else if (buf[pos] == '\n') {
        pos++;
    } else {
        goto bad; /* a control character in the status line */
    }
    if (line_end > lim->max_line || line_end < 12)
        goto bad;
    if ((buf[7] != '0' && buf[7] != '1') || buf[8] != ' ' || (unsigned)(buf[9] - '1') >= 9u ||
        (unsigned)(buf[10] - '0') >= 10u || (unsigned)(buf[11] - '0') >= 10u)
        goto bad;
    resp->minor_version = buf[7] - '0';
    resp->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (line_end > 12) {
        if (buf[12] != ' ')
            goto bad;
        resp->reason = h1_slice(buf + 13, line_end - 13);
    } else {
        resp->reason = h1_slice(buf + 12, 0);
    }

    rc = h1_scan_fields(buf, pos, end, headers, h1_field_cap(lim, max_headers), &resp->nheaders,
                        status);
    if (rc == H1_RUN_OUT)
        rc = h1_run_out(len, cap, 0, lim->max_line, 502, status);
    if (rc < 0)
        goto out;

    struct h1_meta m;
    if (h1_analyse(headers, resp->nheaders, &m) != 0)
        goto bad;
    if (m.has_te) {
        /* RFC 9112 6.1/6.3: CL with TE, or TE in an HTTP/1.0 message, is faulty framing. */
        if (m.has_cl || resp->minor_version == 0)
            goto bad;
        resp->body = m.te_chunked_last ? H1_BODY_CHUNKED : H1_BODY_UNTIL_CLOSE;
    } else if (m.has_cl) {
        resp->body = H1_BODY_LENGTH;
        resp->content_length = m.cl;
    } else {
        resp->body = H1_BODY_UNTIL_CLOSE;
    }
    if (cut_slice_ieq(req_method, "head") || resp->status < 200 || resp->status == 204 ||
        resp->status == 304) {
        resp->body = H1_BODY_NONE;
        resp->content_length = 0;
    }
    resp->conn_flags = h1_keep_alive(resp->minor_version, &m);
    if (resp->body == H1_BODY_UNTIL_CLOSE)
        resp->conn_flags &= ~H1_CF_KEEP_ALIVE;
    if (resp->status == 101 && m.upgrade)
        resp->conn_flags |= H1_CF_UPGRADE;
    if (m.conn_other)
        h1_mark_connection_named(headers, resp->nheaders);
    return rc;

bad:
    rc = CUT_EPROTO;
out:
    if (rc == CUT_EPROTO)
        *status = 502;
    return rc;
}

/* Skips BWS from pos; returns the new position (may equal end). */
static size_t h1_skip_ows(const char *buf, size_t pos, size_t end)
{
    while (pos < end && h1_is_ows(buf[pos]))
        pos++;
    return pos;
}

int h1_parse_chunk_size(const char *buf, size_t len, uint64_t *size)
{
    CUT_ASSERT(size != NULL);
    CUT_ASSERT(buf != NULL || len == 0);

    /* The line, its CRLF and nothing more is ever looked at. */
    size_t end = len < H1_CHUNK_LINE_MAX + 2 ? len : H1_CHUNK_LINE_MAX + 2;
    size_t pos = 0;
    uint64_t v = 0;
    int d;

    while (pos < end && (d = h1_hex((unsigned char)buf[pos])) >= 0) {
        if (v > (H1_SIZE_MAX_VALUE >> 4))
            return CUT_EPROTO;
        v = (v << 4) | (uint64_t)d;
        if (v > H1_SIZE_MAX_VALUE)
            return CUT_EPROTO;
        pos++;
    }
    if (pos >= end)
        goto run_out;
    if (pos == 0)
        return CUT_EPROTO;

    /* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), then CRLF. BWS is only
     * allowed before ';' or '=' and after them, never right before the CRLF. */
    for (;;) {
        size_t ws = pos;
        pos = h1_skip_ows(buf, pos, end);
        if (pos >= end)
            goto run_out;
        if (buf[pos] == '\r' && pos == ws) {
            if (pos + 1 >= end)
                goto run_out;
            if (buf[pos + 1] != '\n')
                return CUT_EPROTO;
            *size = v;
            return (int)(pos + 2);
        }
        if (buf[pos] != ';')
            return CUT_EPROTO;
        pos = h1_skip_ows(buf, pos + 1, end);
        size_t name = pos;
        while (pos < end && h1_is((unsigned char)buf[pos], H1_C_TCHAR))
            pos++;
        if (pos >= end)
            goto run_out;
        if (pos == name)
            return CUT_EPROTO;
        size_t after_name = pos;
        pos = h1_skip_ows(buf, pos, end);
        if (pos >= end)
            goto run_out;
        if (buf[pos] != '=') {
            pos = after_name; /* no value: the loop re-reads the BWS with its rules */
            continue;
        }
        pos = h1_skip_ows(buf, pos + 1, end);
        if (pos >= end)
            goto run_out;
        if (buf[pos] == '"') {
            pos++;
            for (;;) {
                if (pos >= end)
                    goto run_out;
                unsigned char c = (unsigned char)buf[pos];
                if (c == '"') {
                    pos++;
                    break;
                }
                if (c == '\\') {
                    if (pos + 1 >= end)
                        goto run_out;
                    c = (unsigned char)buf[pos + 1];
                    if (!h1_is(c, H1_C_VALUE))
                        return CUT_EPROTO;
                    pos += 2;
                    continue;
                }
                if (!h1_is(c, H1_C_VALUE))
                    return CUT_EPROTO;
                pos++;
            }
        } else {
            size_t val = pos;
            while (pos < end && h1_is((unsigned char)buf[pos], H1_C_TCHAR))
                pos++;
            if (pos >= end)
                goto run_out;
            if (pos == val)
                return CUT_EPROTO;
        }
    }

run_out:
    return h1_line_seen(buf, 0, end) > H1_CHUNK_LINE_MAX ? CUT_EPROTO : CUT_EAGAIN;
}

int h1_parse_trailers(const char *buf, size_t len, const struct h1_limits *lim,
                      struct http_field *headers, unsigned max_headers, unsigned *nheaders)
{
    CUT_ASSERT(lim != NULL && nheaders != NULL);
    CUT_ASSERT(buf != NULL || len == 0);
    CUT_ASSERT(headers != NULL || max_headers == 0);

    size_t cap = h1_head_cap(lim);
    size_t end = len < cap ? len : cap;
    int status = 0;

    int rc =
        h1_scan_fields(buf, 0, end, headers, h1_field_cap(lim, max_headers), nheaders, &status);
    if (rc == H1_RUN_OUT)
        return len > cap ? CUT_EPROTO : CUT_EAGAIN;
    return rc;
}

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
 * This file: the start lines, the request and response rules, chunk-size lines and trailers.
 * The field lines and what they say (struct h1_meta) are h1_fields.c's; the character classes
 * and scanning helpers both share are in h1_internal.h.
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

#include "proxy/http/h1_internal.h"

#define H1_CHUNK_LINE_MAX 4096                /* chunk-size line, without CRLF */

/* Host value: empty, or authority characters only. */
static int h1_host_valid(struct cut_slice v)
{
    for (size_t i = 0; i < v.n; i++)
        if (!h1_is((unsigned char)v.p[i], H1_C_HOST))
            return 0;
    return 1;
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


/* h1_internal.h - private to proxy/http/h1_parse.c and h1_fields.c (the HTTP/1.1 parser, contract
 * in h1_parse.h): the character classes and the inline scanning helpers both halves run on the
 * bytes, and the field-line layer h1_parse.c calls (h1_fields.c). Nothing else includes it.
 *
 * Pure: no allocation, no global state but the constant class table; any thread.
 */
#ifndef CUT_H1_INTERNAL_H
#define CUT_H1_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/cut.h"
#include "proxy/http/h1_parse.h"

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

/* ---- field lines (h1_fields.c) -------------------------------------------------------------- */

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

/* Scans field lines from buf[pos] up to and including the empty line that ends them, never
 * reading at or past end. Stores at most max_headers fields, counting them in *nheaders.
 * Returns the position after the empty line, H1_RUN_OUT, or CUT_EPROTO with *status 400
 * (malformed) or 431 (too many fields). */
int h1_scan_fields(const char *buf, size_t pos, size_t end, struct http_field *headers,
                   unsigned max_headers, unsigned *nheaders, int *status);

/* Gathers h1_meta from the fields. Returns 0, or -1 on a framing error that no message type
 * accepts (bad or differing Content-Length, malformed Transfer-Encoding element, chunked
 * twice); the caller maps it to its status. */
int h1_analyse(const struct http_field *h, unsigned n, struct h1_meta *m);

/* Marks hop-by-hop every field named as a token in a Connection field (RFC 9110 7.6.1),
 * except Host and Content-Length. Only called when Connection names something unusual. */
void h1_mark_connection_named(struct http_field *h, unsigned n);

#endif

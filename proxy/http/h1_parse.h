/* h1_parse.h - a pure, zero-copy HTTP/1.1 message parser (RFC 9112).
 *
 * Contract (picohttpparser's): the caller passes the bytes it has; the parser returns the length
 * of the complete head (request line or status line + header fields + CRLF CRLF) when it is all
 * there, CUT_EAGAIN when more bytes are needed, or CUT_EPROTO when the input is malformed or over
 * a limit. Slices point into the caller's buffer and are valid as long as it is. Feeding the same
 * prefix again after more bytes arrived is cheap and gives the same result. No allocation, no
 * global state, no libevent: any thread may call these functions.
 *
 * On CUT_EPROTO, *status tells which answer the peer deserves: 400 (malformed or ambiguous
 * framing), 414 (request line too long), 431 (head too large or too many fields), 501 (unknown
 * transfer coding), 505 (HTTP version not supported). The parser also analyses framing and
 * connection semantics once the head is complete, so the caller gets a verdict, not raw fields.
 */
#ifndef CUT_H1_PARSE_H
#define CUT_H1_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/cut.h"
#include "proxy/http/fields.h" /* struct http_field, the well-known ids, H1_HF_HOP */

struct h1_limits {
    size_t max_line;      /* request or status line, without CRLF; over it: 414 for requests */
    size_t max_head;      /* whole head including CRLFs; over it: 431 */
    unsigned max_headers; /* number of fields; over it: 431 */
};

enum h1_body {
    H1_BODY_NONE = 0,   /* no body (no CL/TE on a request; HEAD, 1xx, 204, 304 responses) */
    H1_BODY_LENGTH,     /* Content-Length bytes (content_length may be 0) */
    H1_BODY_CHUNKED,    /* chunked transfer coding */
    H1_BODY_UNTIL_CLOSE /* responses only: delimited by the connection closing */
};

/* Connection semantics, as flags. */
#define H1_CF_KEEP_ALIVE (1u << 0) /* the connection may be reused after this message */
#define H1_CF_UPGRADE (1u << 1)    /* "Connection: upgrade" with an Upgrade field */
#define H1_CF_EXPECT_CONTINUE (1u << 2) /* request: "Expect: 100-continue" */
#define H1_CF_TE_TRAILERS (1u << 3)     /* request: "TE: trailers" */

struct h1_request {
    struct cut_slice method;
    struct cut_slice target; /* request-target as received */
    int minor_version;       /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
    struct http_field *headers; /* the caller's array, filled in order */
    unsigned nheaders;
    /* Derived once the head is complete: */
    struct cut_slice host;   /* the Host field value (empty slice if absent) */
    enum h1_body body;
    uint64_t content_length; /* when body == H1_BODY_LENGTH */
    unsigned conn_flags;     /* H1_CF_* */
    struct cut_slice upgrade; /* Upgrade field value when H1_CF_UPGRADE */
};

struct h1_response {
    int minor_version;
    int status;               /* 100..999 */
    struct cut_slice reason;
    struct http_field *headers;
    unsigned nheaders;
    enum h1_body body;
    uint64_t content_length;
    unsigned conn_flags;      /* H1_CF_KEEP_ALIVE, H1_CF_UPGRADE */
};

/* Parses a request head from buf[0..len). headers/max_headers is caller-provided storage; the
 * effective field limit is min(max_headers, lim->max_headers). Rules enforced (each -> 400 unless
 * noted): method is a token; target has no control characters or spaces; version is HTTP/1.0 or
 * HTTP/1.1 (other HTTP/x.y -> 505); line endings are CRLF (a bare LF is accepted as a line end as
 * RFC 9112 section 2.2 allows, a bare CR is not); field names are tokens with no whitespace before
 * the colon; field values have no control characters except HTAB; obs-fold; an HTTP/1.1 request
 * without exactly one Host; Content-Length not a decimal number, or several Content-Length values
 * that differ (equal duplicates, including "5, 5", are folded to one); Content-Length together
 * with Transfer-Encoding; Transfer-Encoding in HTTP/1.0; Transfer-Encoding whose last coding is not
 * "chunked", or "chunked" applied twice; a coding other than chunked -> 501. Over lim->max_line ->
 * 414; over lim->max_head or too many fields -> 431. */
int h1_parse_request(const char *buf, size_t len, const struct h1_limits *lim,
                     struct h1_request *req, struct http_field *headers, unsigned max_headers,
                     int *status);

/* Splits a parsed request's target into the origin-form path (and query) and the authority
 * (RFC 9112 section 3.2): origin-form "/p?q" keeps Host as the authority; "*" is accepted for
 * OPTIONS only; absolute-form "http://a/p" or "https://a/p" gives authority a (replacing Host)
 * and path "/p" ("/" when absent). Returns 0, or the status to answer: 501 for an
 * authority-form target of CONNECT, 400 for any other form, scheme, empty authority, or a
 * query without a path. The slices point into r's target or Host value. Inline: it runs once per
 * HTTP/1 request, where a call costs more than the usual origin-form check. */
static inline int h1_request_target(const struct h1_request *r, struct cut_slice *path,
                                    struct cut_slice *authority)
{
    struct cut_slice t = r->target;
    *authority = r->host;
    if (t.n > 0 && t.p[0] == '/') {
        *path = t;
        return 0;
    }
    if (t.n == 1 && t.p[0] == '*') {
        if (!cut_slice_ieq(r->method, "options"))
            return 400;
        *path = t;
        return 0;
    }
    /* absolute-form: scheme "://" authority [path]; the authority replaces Host. */
    size_t i = 0;
    while (i < t.n && t.p[i] != ':')
        i++;
    if (i + 3 > t.n || t.p[i + 1] != '/' || t.p[i + 2] != '/') {
        return cut_slice_ieq(r->method, "connect") ? 501 : 400;
    }
    struct cut_slice scheme = {t.p, i};
    if (!cut_slice_ieq(scheme, "http") && !cut_slice_ieq(scheme, "https"))
        return 400;
    size_t a = i + 3, e = a;
    while (e < t.n && t.p[e] != '/' && t.p[e] != '?')
        e++;
    if (e == a)
        return 400;
    *authority = (struct cut_slice){t.p + a, e - a};
    if (e == t.n)
        *path = CUT_SLICE_LIT("/");
    else if (t.p[e] == '?') /* "http://h?q": the path is empty, keep the query */
        return 400;
    else
        *path = (struct cut_slice){t.p + e, t.n - e};
    return 0;
}

/* Parses a response head. req_method is the method of the request it answers (HEAD responses
 * carry no body) and decides nothing else. 1xx, 204 and 304 have no body; a response with neither
 * Content-Length nor chunked runs until close. Invalid framing -> CUT_EPROTO (*status = 502). */
int h1_parse_response(const char *buf, size_t len, const struct h1_limits *lim,
                      struct cut_slice req_method, struct h1_response *resp,
                      struct http_field *headers, unsigned max_headers, int *status);

/* Parses a chunk-size line ("1a;ext=val\r\n"). Returns bytes consumed and sets *size, CUT_EAGAIN,
 * or CUT_EPROTO (bad hex digits, no digits, a size over 2^62, a line over 4096 bytes, bad
 * extension syntax). A size of 0 marks the last chunk; the trailer section follows. */
int h1_parse_chunk_size(const char *buf, size_t len, uint64_t *size);

/* Parses a trailer section (zero or more fields, then CRLF) after the last chunk. Returns bytes
 * consumed, CUT_EAGAIN or CUT_EPROTO; fields are validated like header fields and stored in
 * headers (at most max_headers; more -> CUT_EPROTO). */
int h1_parse_trailers(const char *buf, size_t len, const struct h1_limits *lim,
                      struct http_field *headers, unsigned max_headers, unsigned *nheaders);

/* Returns nonzero if the comma-separated list value contains token (case-insensitive). */
int h1_list_has_token(struct cut_slice value, const char *lower_token);

#endif

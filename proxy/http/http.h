/* http.h - the protocol-neutral exchange: a request or response head as the codecs (HTTP/1 now,
 * HTTP/2 later) fill it, and the header rules a proxy applies between the two sides.
 *
 * Field slices are borrowed from whoever filled the struct (the codec's input buffer or the
 * stream's arena); they are valid only as long as that memory is, which the codec documents.
 * No libevent types: the serialisers write into a caller's char buffer.
 */
#ifndef CUT_HTTP_H
#define CUT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/cut.h"
#include "proxy/http/fields.h"

/* struct http_field (name, value, well-known id, flags) is declared with the well-known header
 * ids in fields.h; the HTTP/1 parser fills that same type, so its array is handed over without
 * copying. */

enum http_framing {
    HTTP_BODY_NONE = 0,
    HTTP_BODY_LENGTH,  /* content_length bytes */
    HTTP_BODY_STREAM,  /* length unknown in advance (chunked on HTTP/1.1, DATA frames on h2) */
    HTTP_BODY_UNTIL_CLOSE /* responses from HTTP/1 upstreams only */
};

struct http_req {
    struct cut_slice method;
    struct cut_slice path;      /* origin-form path and query ("*" for OPTIONS *) */
    struct cut_slice authority; /* host[:port] from the target or Host */
    struct http_field *fields;  /* hop-by-hop fields flagged H1_HF_HOP are never forwarded */
    unsigned nfields;
    enum http_framing framing;
    uint64_t content_length;
    int version_minor;          /* HTTP/1.x minor; 0 for a request that came over h2 */
    unsigned flags;             /* HTTP_RF_* */
    struct cut_slice upgrade;   /* the Upgrade token list when HTTP_RF_UPGRADE */
};

#define HTTP_RF_KEEP_ALIVE (1u << 0)
#define HTTP_RF_UPGRADE (1u << 1)
#define HTTP_RF_EXPECT_CONTINUE (1u << 2)
#define HTTP_RF_HEAD (1u << 3) /* method is HEAD: the response has no body */
#define HTTP_RF_TE_TRAILERS (1u << 4) /* the client accepts trailers ("te: trailers"; gRPC) */

struct http_resp {
    int status;
    struct cut_slice reason;
    struct http_field *fields;
    unsigned nfields;
    enum http_framing framing;
    uint64_t content_length;
    unsigned flags; /* HTTP_RF_KEEP_ALIVE (upstream may be reused), HTTP_RF_UPGRADE (101) */
};

/* What the proxy adds when forwarding a request. */
struct http_forward {
    struct cut_slice peer_addr;     /* numeric address of the TCP peer */
    int peer_trusted;               /* the peer is a trusted proxy */
    struct cut_slice proto;         /* "http" or "https" */
    struct cut_slice request_id;    /* the id to send as x-request-id */
    struct cut_slice strip;         /* one more field name (lower case) to drop: the override
                                       header; empty for none */
    struct cut_slice default_host;  /* Host to send when the request has no authority (an
                                       HTTP/1.0 request without Host) */
    int drop_trace;                 /* drop the client's traceparent and tracestate fields (an
                                       invalid traceparent: trace.h) */
    struct cut_slice traceparent;   /* a traceparent to send (after X-Request-Id); empty: none
                                       (the client's, when valid, is forwarded as it came) */
};

/* Finds the first field named lower (lower-case). Returns its index or -1. */
int http_find(const struct http_field *fields, unsigned n, const char *lower, size_t lower_len);

/* Writes the upstream HTTP/1.1 request head for req into buf[0..cap): request line with
 * origin-form path, "Host: <authority>" (received Host fields are replaced, so an absolute-form
 * target and the Host sent upstream always agree), every non-hop field except x-forwarded-for /
 * x-forwarded-proto / x-forwarded-host / x-request-id (replaced as the rules say), fwd->strip,
 * traceparent / tracestate when fwd->drop_trace, and x-original-host / x-original-url unless
 * the peer is trusted, then the forwarding fields (and fwd->traceparent when set), then
 * framing (Content-Length or Transfer-Encoding: chunked) and, for an upgrade,
 * "Connection: upgrade" and the Upgrade field. X-Forwarded-For: the client's value(s) joined by
 * ", " with the peer address appended. X-Forwarded-Proto and X-Forwarded-Host: kept when the peer
 * is trusted and sent them, else set (proto; the request's authority). Returns the length, or
 * CUT_ELIMIT when cap is too small. */
int http_write_h1_request(char *buf, size_t cap, const struct http_req *req,
                          const struct http_forward *fwd);

/* The same head, and, when out is not NULL, the forwarded request it describes, for upstreams
 * that do not speak HTTP/1 (upstream_h2.c builds its HTTP/2 field list from it): out gets
 * req's framing and flags, method / path / authority (the Host written, empty when none) and
 * fields[0..out->nfields) = every header field written, in order, as slices into buf (names as
 * written: "Host", "X-Forwarded-For", the client's own case), with ids for Host,
 * Content-Length, Transfer-Encoding, Connection and Upgrade; the last three are flagged
 * H1_HF_HOP. Returns the head's length, or CUT_ELIMIT when cap is too small or more than
 * max_fields fields were written. */
int http_write_forward(char *buf, size_t cap, const struct http_req *req,
                       const struct http_forward *fwd, struct http_req *out,
                       struct http_field *fields, unsigned max_fields);

/* Writes the HTTP/1.1 response head for resp: status line, non-hop fields, then framing for the
 * client: Content-Length when known, Transfer-Encoding: chunked when chunked is set, nothing
 * otherwise; then "Connection: close" when close is set (or keep-alive for an HTTP/1.0 client
 * that asked for it, when keep_alive_10 is set). For a 101 it writes "Connection: upgrade" and
 * the Upgrade field. Returns the length or CUT_ELIMIT. */
int http_write_h1_response(char *buf, size_t cap, const struct http_resp *resp, int chunked,
                           int close, int keep_alive_10);

/* Whether path is a request target HTTP/1.1 could carry (the :path an HTTP/2 upstream gets is
 * checked the same way): not empty, no space, no control character, no DEL. Inline: once per
 * request on the HTTP/2 upstream path. */
static inline int http_path_ok(struct cut_slice path)
{
    for (size_t i = 0; i < path.n; i++) {
        unsigned char ch = (unsigned char)path.p[i];
        if (ch <= 0x20 || ch == 0x7f)
            return 0;
    }
    return path.n > 0;
}

/* Whether a client-supplied request id is sane enough to keep: 1..128 visible ASCII, no
 * spaces, quotes or backslashes. */
int http_request_id_ok(struct cut_slice id);

/* Writes a small response that cutover makes itself (text/plain, one line "cutover: msg\n",
 * header x-cutover-error: code, Connection: close when close). Returns the length or CUT_ELIMIT. */
int http_write_error(char *buf, size_t cap, int status, const char *code, const char *msg,
                     int close);

/* The same with the choices a response to a request needs: code NULL writes no
 * x-cutover-error (an answer, not a failure: the gateway probe); head writes the head only, with
 * the Content-Length the body would have (RFC 9110 9.3.2: a response to HEAD has no content). */
int http_write_local(char *buf, size_t cap, int status, const char *code, const char *msg,
                     int close, int head);

/* The Upgrade token list to forward for a client's "Connection: upgrade" request, given the
 * value it sent: "websocket" when the list names it (any case), else an empty slice, and the
 * request is then served as plain HTTP/1.1 (no Upgrade, no "Connection: upgrade" upstream).
 * Every other token is dropped: "h2c" above all (an h2c upgrade through a proxy lets a client
 * speak HTTP/2 straight to the upstream, past the proxy's rules), "h2", "TLS/1.x" (RFC 2817) and
 * anything unknown. The returned slice is a static string, never a pointer into value. */
struct cut_slice http_upgrade_filter(struct cut_slice value);

/* How long a request body may take, in milliseconds from the end of its head, once bytes of it
 * have arrived: base_ms plus one second per min_rate bytes (Apache mod_reqtimeout's rule: a
 * body must keep an average of min_rate bytes/s after a grace of base_ms). min_rate 0: base_ms
 * is a fixed total deadline. base_ms 0: no deadline (UINT64_MAX). Never overflows. */
uint64_t http_body_allowance_ms(unsigned base_ms, unsigned min_rate, uint64_t bytes);

/* The reason phrase for a status code ("" when unknown). */
const char *http_reason(int status);

#endif

/* fields.h - header fields, the protocol-neutral unit every codec fills, and the collector that
 * gathers a head delivered field by field (nghttp2's header callbacks, on both the server side
 * h2.c and the upstream side upstream_h2.c) into fields under limits.
 *
 * The collector copies every name and value it is given (the caller's buffers move on) and,
 * once the head is complete, builds a struct http_field array whose slices point into its own
 * storage, valid until fields_head_dispose(). Pure: no libevent or nghttp2 types, no global
 * state; any thread may use a collector it owns.
 */
#ifndef CUT_FIELDS_H
#define CUT_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/cut.h"

struct http_req;
struct http_resp;

/* Well-known header field names, recognised case-insensitively (the H1_ prefix is historical:
 * every codec uses them). */
enum h1_hdr_id {
    H1_HDR_OTHER = 0,
    H1_HDR_HOST,
    H1_HDR_CONTENT_LENGTH,
    H1_HDR_TRANSFER_ENCODING,
    H1_HDR_CONNECTION,
    H1_HDR_KEEP_ALIVE,
    H1_HDR_PROXY_CONNECTION,
    H1_HDR_TE,
    H1_HDR_UPGRADE,
    H1_HDR_EXPECT,
    H1_HDR_TRAILER,
    H1_HDR_HTTP2_SETTINGS
};

/* Field flags set by the codecs. */
#define H1_HF_HOP (1u << 0) /* hop-by-hop: never forwarded as is (Connection and the fields it
                              names, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding,
                              Upgrade, HTTP2-Settings) */

/* A header field. */
struct http_field {
    struct cut_slice name;  /* as received (case preserved) */
    struct cut_slice value; /* leading and trailing whitespace removed */
    uint8_t id;             /* enum h1_hdr_id */
    uint8_t flags;          /* H1_HF_* */
};

/* Whether a field name (any case) is connection-specific (RFC 9113 section 8.2.2): connection,
 * keep-alive, proxy-connection, transfer-encoding, upgrade. Such fields never appear in an
 * HTTP/2 message; they are dropped from responses and never forwarded from requests. */
int fields_conn_specific(struct cut_slice name);

/* Whether a field value has only the characters RFC 9110 section 5.5 allows (no control
 * character but HTAB, no DEL; obs-text is allowed), the rule the HTTP/1 parser applies. */
int fields_value_ok(struct cut_slice v);

/* v without leading and trailing spaces and tabs (optional whitespace around a value). */
struct cut_slice fields_value_trim(struct cut_slice v);

/* ---- a head collected field by field ------------------------------------------------------- */

struct fields_ref {
    uint32_t name_off, name_len, value_off, value_len;
};

/* Copies of every field delivered, and, once built, the http_field array. Limits: the RFC 9113
 * header list size (name + value + 32 per field) and the field count; past either the head is
 * marked over and stops storing (a request is then answered 431, a response 502). */
struct fields_head {
    char *buf;
    size_t len, cap;
    struct fields_ref *refs;
    unsigned n, cap_refs;
    struct http_field *fields; /* built by fields_head_request/_response/_trailers */
    size_t list_size, max_bytes;
    unsigned max_fields;
    int over;
};

/* An empty collector with these limits (from the configuration: limits.max_header_bytes and
 * the field count). */
void fields_head_init(struct fields_head *h, size_t max_bytes, unsigned max_fields);

/* Adds one field (name in lower case, as HTTP/2 requires; the caller has validated it). Returns
 * 0, CUT_ELIMIT (over a limit: nothing more is stored) or CUT_ENOMEM. */
int fields_head_add(struct fields_head *h, const char *name, size_t nl, const char *value,
                    size_t vl);

/* Fills req (http.h) from a collected request head: method, path, authority (":authority", else
 * Host), fields (regular fields only; several cookie fields joined with "; " as RFC 9113
 * section 8.2.3 asks; host / content-length get their well-known ids; te and
 * connection-specific fields are flagged hop-by-hop so they are never forwarded), framing
 * (Content-Length when present, else a body when end_stream is 0, else none), HTTP_RF_HEAD /
 * HTTP_RF_EXPECT_CONTINUE / HTTP_RF_TE_TRAILERS. req's slices point into h, valid until
 * fields_head_dispose(). Returns 0, or the status to answer: 431 (over a limit), 501 (CONNECT,
 * extended CONNECT), 400 (missing or malformed pseudo-header, bad content-length, te other than
 * "trailers"). */
int fields_head_request(struct fields_head *h, int end_stream, struct http_req *req);

/* Fills resp (http.h) from a collected response head: status from ":status", fields
 * (content-length gets its id; connection-specific fields and te are flagged hop-by-hop),
 * framing: none for HEAD (head_req), 1xx, 204, 304 or end_stream, else Content-Length when
 * present, else a streamed body. Returns 0, or 502 when the head is malformed (no or a bad
 * ":status", another pseudo-header, a pseudo-header after a regular field, a bad
 * content-length) or over a limit. */
int fields_head_response(struct fields_head *h, int end_stream, int head_req,
                         struct http_resp *resp);

/* Builds h->fields from a head of regular fields only (trailers). Returns 0 with *n set, or
 * CUT_EPROTO (a pseudo-header), CUT_ELIMIT (over a limit), CUT_ENOMEM. */
int fields_head_trailers(struct fields_head *h, unsigned *n);

/* Frees the copies and the field array; h is empty (and needs fields_head_init to be used
 * again with limits). */
void fields_head_dispose(struct fields_head *h);

#endif

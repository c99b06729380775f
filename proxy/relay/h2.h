/* h2.h - the HTTP/2 server side (cleartext h2c with prior knowledge, RFC 9113 section 3.3).
 *
 * A struct h2c owns one client socket and one nghttp2 session; each HTTP/2 stream is a struct
 * h2s owning one struct stream (stream.h) for the exchange. The upstream side stays HTTP/1.1:
 * the request head is rebuilt by http_write_h1_request() exactly as for HTTP/1 clients.
 *
 * The pure part (the preface check, the request head collector and the response field filter)
 * takes no libevent or nghttp2 types and is unit-tested in tests/unit/test_h2.c.
 * Worker thread only, except the pure functions (any thread).
 */
#ifndef CUT_H2_H
#define CUT_H2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/cut.h"
#include "proxy/http/http.h"

struct worker;
struct io;
struct h2c;

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/* Whether p[0..n) is the client connection preface: 1 when all 24 bytes are there, 0 when p is
 * a proper prefix of it (need more bytes), -1 when it is not the preface. */
int h2_preface_match(const char *p, size_t n);

/* Whether a field name (any case) is connection-specific (RFC 9113 section 8.2.2): connection,
 * keep-alive, proxy-connection, transfer-encoding, upgrade. Such fields never appear in an
 * HTTP/2 message; they are dropped from responses and never forwarded from requests. */
int h2_conn_specific(struct cut_slice name);

/* ---- the request head of one stream, collected field by field -------------------------------- */

struct h2_head_ref {
    uint32_t name_off, name_len, value_off, value_len;
};

/* Copies of every field nghttp2 delivered (its buffers move on), and, once built, the
 * http_field array handed to stream_start(). Limits: the RFC 9113 header list size (name +
 * value + 32 per field) and the field count; past either the head is marked over and stops
 * storing (the request is answered 431). */
struct h2_head {
    char *buf;
    size_t len, cap;
    struct h2_head_ref *refs;
    unsigned n, cap_refs;
    struct http_field *fields; /* built by h2_head_request() */
    size_t list_size, max_bytes;
    unsigned max_fields;
    int over;
};

void h2_head_init(struct h2_head *h, size_t max_bytes, unsigned max_fields);

/* Adds one field (name in lower case, as HTTP/2 requires; nghttp2 has validated it). Returns 0,
 * CUT_ELIMIT (over a limit: nothing more is stored) or CUT_ENOMEM. */
int h2_head_add(struct h2_head *h, const char *name, size_t nl, const char *value, size_t vl);

/* Fills req from the collected head: method, path, authority (":authority", else Host), fields
 * (regular fields only; several cookie fields joined with "; " as RFC 9113 section 8.2.3 asks;
 * host / content-length get their well-known ids; te and connection-specific fields are
 * flagged hop-by-hop so they are never forwarded), framing (Content-Length when present, else
 * a body when end_stream is 0, else none), HTTP_RF_HEAD / HTTP_RF_EXPECT_CONTINUE. req's slices
 * point into h, valid until h2_head_dispose(). Returns 0, or the status to answer: 431 (over a
 * limit), 501 (CONNECT, extended CONNECT), 400 (missing or malformed pseudo-header, bad
 * content-length, te other than "trailers"). */
int h2_head_request(struct h2_head *h, int end_stream, struct http_req *req);

/* Fills resp from a collected response head (the upstream side of an HTTP/2 exchange): status
 * from ":status", fields (content-length gets its id; connection-specific fields and te are
 * flagged hop-by-hop), framing: none for HEAD, 1xx, 204, 304 or end_stream, else Content-Length
 * when present, else a streamed body. Returns 0, or 502 when the head is malformed (no or a
 * bad ":status", another pseudo-header, a pseudo-header after a regular field, a bad
 * content-length) or over a limit. */
int h2_head_response(struct h2_head *h, int end_stream, int head_req, struct http_resp *resp);

/* Builds h->fields from a head of regular fields only (trailers). Returns 0 with *n set, or
 * CUT_EPROTO (a pseudo-header), CUT_ELIMIT (over a limit), CUT_ENOMEM. */
int h2_head_fields(struct h2_head *h, unsigned *n);

void h2_head_dispose(struct h2_head *h);

/* ---- connections ---------------------------------------------------------------------------- */

/* Takes over a client connection whose first bytes are the HTTP/2 preface: a new h2c gets a
 * duplicate of from->fd and every byte buffered in from->in (moved). The caller then closes its
 * own io without shutdown() (the duplicate keeps the socket open). The new connection starts
 * processing from the event loop, never inside this call. Plain sockets only for now (a TLS io
 * returns CUT_EINVAL). Returns 0 or CUT_ENOMEM / CUT_EIO / CUT_EINVAL (nothing was taken; the
 * caller closes the connection). */
int h2c_takeover(struct worker *w, struct io *from, const struct sockaddr *peer,
                 socklen_t peerlen);

/* Graceful stop: GOAWAY with the last stream id; open streams finish, then the connection
 * closes. */
void h2c_shutdown(struct h2c *c);

/* Drain deadline passed: close now (deferred to the connection's timer). */
void h2c_kill(struct h2c *c);

/* Frees the connection at once (worker teardown only: no callback may be on the stack). */
void h2c_kill_now(struct h2c *c);

/* List links for the worker's HTTP/2 connection list. */
void h2c_link(struct h2c *c, struct h2c **head);
void h2c_unlink(struct h2c *c, struct h2c **head);
struct h2c *h2c_next(const struct h2c *c);

#endif

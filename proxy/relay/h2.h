/* h2.h - the HTTP/2 server side (cleartext h2c with prior knowledge, RFC 9113 section 3.3).
 *
 * A struct h2c owns one client socket and one nghttp2 session; each HTTP/2 stream is a struct
 * h2s owning one struct stream (stream.h) for the exchange. Request heads are collected with
 * proxy/http/fields.h (limits from the configuration) and handed to stream_start() in the
 * protocol-neutral form.
 *
 * The pure part (the preface check) is unit-tested in tests/unit/proxy/relay/test_h2.c.
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
struct cfg;
struct io;
struct h2c;

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/* Whether p[0..n) is the client connection preface: 1 when all 24 bytes are there, 0 when p is
 * a proper prefix of it (need more bytes), -1 when it is not the preface. */
int h2_preface_match(const char *p, size_t n);

/* ---- connections ---------------------------------------------------------------------------- */

/* Takes over a client connection whose first bytes are the HTTP/2 preface: a new h2c gets a
 * duplicate of from->fd and every byte buffered in from->in (moved). The caller then closes its
 * own io without shutdown() (the duplicate keeps the socket open). The new connection starts
 * processing from the event loop, never inside this call. Plain sockets only for now (a TLS io
 * returns CUT_EINVAL). Returns 0 or CUT_ENOMEM / CUT_EIO / CUT_EINVAL (nothing was taken; the
 * caller closes the connection). cfg (borrowed, not NULL: the current snapshot's) gives the
 * connection's limits (buffer_bytes, max_header_bytes, max_headers) and timeouts. */
int h2c_takeover(struct worker *w, struct io *from, const struct sockaddr *peer,
                 socklen_t peerlen, const struct cfg *cfg);

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

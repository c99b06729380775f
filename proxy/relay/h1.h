/* h1.h - the HTTP/1.1 server side: one client connection, requests answered in order.
 *
 * A struct h1c owns its bufferevent and at most one stream at a time (pipelined requests wait
 * in the input buffer until the current response is complete). Worker thread only.
 */
#ifndef CUT_H1_H
#define CUT_H1_H

#include <sys/socket.h>

struct worker;
struct cfg;
struct h1c;
struct tls_ctx;
struct io_transport;

/* Takes an accepted socket. tls (borrowed; the connection takes its own reference) makes it a
 * TLS connection; NULL: plain. cfg (borrowed, not NULL: the current snapshot's) gives the
 * connection's buffer limits and first timeouts. Returns 0, or CUT_ENOMEM (the socket is then
 * closed). */
int h1c_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
               struct tls_ctx *tls, const struct cfg *cfg);

/* The same over an in-memory transport instead of a socket (unit tests: fd is the transport's
 * readiness descriptor, closed with the connection; t is borrowed and outlives it). Plain
 * HTTP/1.1 only: an HTTP/2 preface is not taken over (the hand-over duplicates a socket). */
int h1c_accept_transport(struct worker *w, int fd, struct io_transport *t,
                         const struct sockaddr *peer, socklen_t peerlen, const struct cfg *cfg);

/* Shutdown: an idle connection is closed now; a busy one closes after its current response. */
void h1c_shutdown(struct h1c *c);

/* Drain deadline passed: close now, whatever it is doing. */
void h1c_kill(struct h1c *c);

/* Frees the connection at once (worker teardown only: no callback may be on the stack). */
void h1c_kill_now(struct h1c *c);

/* List links for the worker's connection list. */
void h1c_link(struct h1c *c, struct h1c **head);
void h1c_unlink(struct h1c *c, struct h1c **head);

/* The next connection in the worker's list (for iteration that may free the current one). */
struct h1c *h1c_next(const struct h1c *c);

#endif

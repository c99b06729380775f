/* admin.h - the HTTPS admin API: the control protocol over HTTP/1.1 with mutual TLS, for
 * pipelines that cannot reach the control socket (docs/control-protocol.md, "HTTPS transport").
 *
 * It runs on the control thread's event base, next to the control socket, and hands every
 * request to commands_handle() with the verified client certificate's subject as the actor and
 * the role admin.roles gives that subject. Limits keep a slow, silent or hostile client from
 * holding anything (docs/control-protocol.md, "Connection limits"): admin.max_clients
 * connections, and when they are all open a new one is never refused while one of them can give
 * way: connections whose peer has closed are freed, then the idlest connection is closed
 * (connslots_choose(); a connection whose request is being handled never is; only when every one
 * is, which cannot happen on this one thread, are a few more answered 503 busy and the rest
 * closed at once); admin.request_timeout_ms for the handshake plus each request and for writing
 * each reply; admin.idle_timeout_ms between requests; a 16 KiB request head and a 64 KiB body.
 *
 * Certificates: new connections use ctl->admin_tls as it is when they are accepted (ctl.c builds
 * and rotates it like a listener's contexts); open connections keep the material they started
 * with. Control thread only.
 */
#ifndef CUT_ADMIN_H
#define CUT_ADMIN_H

#include <stddef.h>
#include <stdint.h>

struct cmd_host;
struct certs;
struct event_base;
struct admin;

/* What the connection limits did since the server was created (for the metrics). */
struct admin_stats {
    unsigned open;             /* connections open now */
    uint64_t evicted;          /* closed to make room for a new one */
    uint64_t request_timeouts; /* closed for a handshake, request or reply not done within
                                * admin.request_timeout_ms */
    uint64_t idle_timeouts;    /* closed after admin.idle_timeout_ms between requests */
    uint64_t peer_closed;      /* found closed by their peer when the table was full */
    uint64_t busy;             /* answered 503 busy (every connection being handled) */
    uint64_t refused;          /* closed at once, past max_clients + 16 */
};

/* Binds and listens on base at the configuration's admin.address (host->cfg's admin must have
 * one). Requests go to commands_handle(host, ...); the limits and roles are read from
 * host->cfg as each connection and request comes (a reload changes them); the server
 * certificate is certs' current admin context (a rotation takes effect for the next
 * connection). host and certs are borrowed and must outlive the server.
 * Returns NULL with a one-line reason in err ("admin.address 127.0.0.1:9443: Address already in
 * use"). */
struct admin *admin_new(struct cmd_host *host, struct event_base *base,
                        const struct certs *certs, char *err, size_t cap);

/* Closes every connection and the listening socket. NULL is fine. */
void admin_free(struct admin *a);

/* Copies the counters into *out (all zero when a is NULL). */
void admin_stats(const struct admin *a, struct admin_stats *out);

#endif

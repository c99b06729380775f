/* ctlsock.h - the control socket: a Unix stream socket on the control thread's event base,
 * newline-delimited JSON requests, peer credentials from the kernel (SO_PEERCRED), and limits
 * so that a slow, silent or absent client never blocks anything (docs/control-protocol.md,
 * "Connection limits"):
 *
 *   - control.request_timeout_ms: the first request must be complete (its newline received)
 *     that long after the accept, each later one that long after its first byte (or after the
 *     previous reply was written, if that is later); the replies must be taken by the client
 *     within it too. A connection that misses it is closed (event control_request_timeout).
 *   - control.idle_timeout_ms: a connection between requests is closed after it.
 *   - control.max_clients connections. When the table is full, connections whose peer has
 *     closed are freed first; then the idlest connection (connslots_choose(): a finished one,
 *     then one waiting for or reading a request, then one still being written to, each the
 *     longest idle first) is closed to make room (event control_connection_evicted). A
 *     connection whose request is being handled is never evicted; only when every one is
 *     (never the case on this single thread) is the new connection answered `busy` and closed.
 *   - a request line over 64 KiB is answered too_large and the connection closed; a client with
 *     more than CTLSOCK_MAX_OUT of unread replies is closed.
 *
 * The events are limited to CTLSOCK_EVENTS_PER_SEC a second; control_events_suppressed counts
 * the rest. Control thread only.
 */
#ifndef CUT_CTLSOCK_H
#define CUT_CTLSOCK_H

#include <stddef.h>
#include <stdint.h>

struct cmd_host;
struct event_base;
struct ctlsock;

#define CTLSOCK_MAX_LINE 65536
#define CTLSOCK_MAX_OUT (4u << 20)
#define CTLSOCK_EVENTS_PER_SEC 20

/* What the connection limits did since the socket was created (for the metrics). */
struct ctlsock_stats {
    unsigned open;             /* connections open now */
    uint64_t evicted;          /* closed to make room for a new one */
    uint64_t request_timeouts; /* closed for a request (or reply) not done in request_timeout_ms */
    uint64_t idle_timeouts;    /* closed after idle_timeout_ms between requests */
    uint64_t peer_closed;      /* found closed by their peer when the table was full */
    uint64_t busy;             /* refused with `busy` (every slot pinned) */
};

/* Creates the socket at the configured control.socket (a stale socket file there is replaced;
 * any other kind of file is an error), sets its mode and group, and starts listening on base.
 * Each request line goes to commands_handle(host, ...); the limits (control.max_clients,
 * request_timeout_ms, idle_timeout_ms) are read from host->cfg as each connection comes, so a
 * reload changes them. host is borrowed and must outlive the socket. NULL
 * with err set on failure. */
struct ctlsock *ctlsock_new(struct cmd_host *host, struct event_base *base, char *err,
                            size_t cap);

/* Closes every client and the socket, and removes the socket file. NULL is fine. */
void ctlsock_free(struct ctlsock *s);

/* Copies the counters into *out (all zero when s is NULL). */
void ctlsock_stats(const struct ctlsock *s, struct ctlsock_stats *out);

#endif

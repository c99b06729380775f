/* upstream.h - per-worker upstream endpoints, their connection pools, and the one interface a
 * stream has to the upstream side of its exchange, whatever the protocol.
 *
 * Endpoints are keyed by address identity ("ip:port"), not by snapshot, so warm connections
 * survive weight changes, rollbacks and reloads. Each worker has its own table; nothing here is
 * shared between threads.
 *
 * upstream_open() attaches a stream to an exchange with an endpoint and hands back a struct
 * upstream: an ops table implemented by the HTTP/1.1 client (upstream_h1.c) and by the HTTP/2
 * client (upstream_h2.c, pools with "protocol" "h2c" or "h2"). The stream calls only the ops;
 * the exchange calls back through the stream_on_upstream_* functions (stream.h). Who sends the
 * request head: the exchange itself, once connected (HTTP/1.1: stream.c's head as built; HTTP/2:
 * the fields of the stream's forwarded request, s->fwd).
 */
#ifndef CUT_UPSTREAM_H
#define CUT_UPSTREAM_H

#include <stdint.h>
#include <sys/socket.h>

#include "proxy/relay/timer.h"
#include "proxy/route/balance.h"
#include "proxy/route/snapshot.h"

struct worker;
struct stream;
struct upstream_conn;
struct h2up_conn;
struct io;
struct upstream;
struct upstream_table;
struct cfg;

/* What a stream asks of the upstream side of its exchange. Every op takes the handle
 * upstream_open() returned; none of them calls back into the stream from inside the call
 * (callbacks come from the exchange's own events). Worker thread only. */
struct upstream_ops {
    /* More request body is in s->req_body, or the body is complete (s->req_done): send what
     * can be sent. */
    void (*send)(struct upstream *u);
    /* Flow control from the client side: stop or resume reading the response. */
    void (*pause)(struct upstream *u);
    void (*resume)(struct upstream *u);
    /* The stream lets go (done, aborted or failed): no callback is made afterwards. An
     * HTTP/1.1 connection whose exchange completed cleanly goes back to the pool, any other is
     * closed; an open HTTP/2 stream is cancelled. u is invalid afterwards. */
    void (*detach)(struct upstream *u);
    /* Bytes waiting in the output towards the upstream (request side flow control). */
    size_t (*pending)(const struct upstream *u);
};

/* The stream's handle: the first member of each implementation's exchange object. */
struct upstream {
    const struct upstream_ops *ops;
};

#define UPSTREAM_IDENT_MAX (SNAP_KEY_MAX + 600)
#define UPSTREAM_HOST_MAX 256

struct upstream_ep {
    /* The identity of a pool of connections: the address, and for TLS the name verified, the
     * client certificate presented and a hash of the trust settings (CA, CRL, min version,
     * client certificate files): "10.0.0.5:443|h2|green.svc|CN=cutover|0123456789abcdef", so
     * that two pools reaching one address in different ways never share a connection or a
     * session. */
    char key[UPSTREAM_IDENT_MAX];
    char host[UPSTREAM_HOST_MAX]; /* the configured host (name checked when no server_name) */
    int proto;                    /* enum cfg_up_proto */
    int tls;                      /* connections are TLS */
    void *tls_session;            /* the last session, for resumption (tls_session_free) */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned outstanding;        /* requests in flight to it (least-outstanding balancing) */
    unsigned refs;               /* worker snapshot states that reference it */
    struct upstream_conn *idle;  /* idle keep-alive connections, most recent first
                                  * (upstream_h1.c) */
    struct h2up_conn *h2conns;   /* HTTP/2 connections (upstream_h2.c) */
    unsigned nidle;
    unsigned nconns;             /* every open connection to it */
    /* Local fast failover (stream.c): after a failed connect this worker avoids the endpoint
     * until hold_until_ns (100 ms doubling per consecutive failure, at most 1 s) unless nothing
     * else can serve; the first response from it clears both. */
    uint64_t hold_until_ns;
    unsigned connect_failures;
    /* Requests waiting for a connection (limits.upstream_connections_per_endpoint), oldest
     * first, linked through stream.qnext/qprev; qtmo hands them connections as they free and
     * ends the wait of those past their deadline. */
    struct stream *qhead, *qtail;
    unsigned nqueued;
    struct ltimer qtmo;
    struct upstream_table *table;
    struct upstream_ep *hnext;
};

struct upstream_table {
    struct upstream_ep **buckets;
    unsigned nbuckets;
    unsigned n;
    struct worker *w;
    unsigned nqueued; /* requests waiting on every endpoint (published as w->queued_now) */
};

int upstream_table_init(struct upstream_table *t, struct worker *w);
/* Closes every idle connection and frees the endpoints. Busy connections are a bug. */
void upstream_table_dispose(struct upstream_table *t);

/* Finds or creates the endpoint for se, a member of pool sp, and takes a reference. NULL on
 * allocation failure. */
struct upstream_ep *upstream_ep_get(struct upstream_table *t, const struct snap_endpoint *se,
                                    const struct snap_pool *sp);
/* Drops a reference; an endpoint with no reference and no connection is freed. */
void upstream_ep_put(struct upstream_table *t, struct upstream_ep *ep);

/* An endpoint lost a connection: frees it when nothing refers to it any more. */
void upstream_ep_release(struct upstream_table *t, struct upstream_ep *ep);

/* A failed TLS handshake towards ep: the upstream_tls_failed event (a security event). */
void upstream_tls_failed_event(struct worker *w, const struct upstream_ep *ep,
                               const struct io *io);

/* Closes every idle connection of every endpoint (shutdown). */
void upstream_close_idle(struct upstream_table *t);

/* Attaches stream s to an exchange with ep, in ep's protocol: for HTTP/1.1 a pooled idle
 * connection when there is one (*reused = 1), else a new non-blocking connect; for HTTP/2 a
 * stream on a connection with room, else on a new one. The exchange then drives itself and
 * reports through the stream_on_upstream_* callbacks; s->up is the handle returned. Returns
 * NULL when the exchange could not even be started (no socket, no memory, an Upgrade towards
 * HTTP/2): the caller treats that as a failed connect. */
/* ---- waiting for a connection ----------------------------------------------------------------
 * An HTTP/1.1 endpoint has at most limits.upstream_connections_per_endpoint connections per
 * worker. A request that finds them all busy waits in the endpoint's queue, first come first
 * served, for at most timeouts.upstream_queue_ms; at most limits.upstream_queue_per_endpoint
 * wait. HTTP/2 endpoints multiplex and never queue here. */

/* What a request to ep may do now under cfg's limits (balance_admit). */
enum balance_admit upstream_admit(const struct upstream_ep *ep, const struct cfg *cfg);

/* s waits in ep's queue for wait_ms at most. It leaves it through stream_on_upstream_ready
 * (a connection is free: open the exchange now), stream_on_upstream_queue_timeout, or
 * upstream_unwait. Neither callback is made from inside this call. */
void upstream_wait(struct upstream_ep *ep, struct stream *s, unsigned wait_ms);

/* s leaves ep's queue without a connection (the client went away). */
void upstream_unwait(struct upstream_ep *ep, struct stream *s);

/* A connection of ep went idle or closed: the oldest waiting request gets the room at the next
 * turn of the loop (never from inside the caller's call). */
void upstream_slot_freed(struct upstream_ep *ep);

struct upstream *upstream_open(struct worker *w, struct upstream_ep *ep, struct stream *s,
                               int *reused);

#endif

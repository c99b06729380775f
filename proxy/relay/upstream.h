/* upstream.h - per-worker upstream endpoints, their idle-connection pools, and the HTTP/1.1
 * client side of an exchange.
 *
 * Endpoints are keyed by address identity ("ip:port"), not by snapshot, so warm connections
 * survive weight changes, rollbacks and reloads. Each worker has its own table; nothing here is
 * shared between threads.
 */
#ifndef CUT_UPSTREAM_H
#define CUT_UPSTREAM_H

#include <stdint.h>
#include <sys/socket.h>

#include "proxy/route/snapshot.h"

struct worker;
struct stream;
struct upstream_conn;
struct h2up_conn;
struct io;

/* What stream.c holds in s->uc is either an HTTP/1.1 connection (upstream.c) or a stream on an
 * HTTP/2 connection (h2up.c); both start with an int kind. */
#define UPSTREAM_KIND_H1 0
#define UPSTREAM_KIND_H2 1

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
    struct upstream_conn *idle;  /* idle keep-alive connections, most recent first */
    struct h2up_conn *h2conns;   /* HTTP/2 connections (h2up.c) */
    unsigned nidle;
    unsigned nconns;             /* every open connection to it */
    /* Local fast failover (stream.c): after a failed connect this worker avoids the endpoint
     * until hold_until_ns (100 ms doubling per consecutive failure, at most 1 s) unless nothing
     * else can serve; the first response from it clears both. */
    uint64_t hold_until_ns;
    unsigned connect_failures;
    struct upstream_ep *hnext;
};

struct upstream_table {
    struct upstream_ep **buckets;
    unsigned nbuckets;
    unsigned n;
};

int upstream_table_init(struct upstream_table *t);
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

/* Attaches stream s to a connection to ep: a pooled idle one when there is one (*reused = 1),
 * else a new non-blocking connect. The connection then drives the exchange through the
 * stream_on_upstream_* callbacks. Returns NULL when the socket could not even be created
 * (the caller treats that as a failed connect). */
struct upstream_conn *upstream_open(struct worker *w, struct upstream_ep *ep, struct stream *s,
                                    int *reused);

/* The stream queued more request body (or finished it): write what can be written. */
void upstream_send(struct upstream_conn *c);

/* Flow control from the client side: stop or resume reading the response. */
void upstream_pause(struct upstream_conn *c);
void upstream_resume(struct upstream_conn *c);

/* The stream lets go of the connection. A connection whose exchange completed cleanly goes back
 * to the pool; any other is closed. No callback is made afterwards. */
void upstream_detach(struct upstream_conn *c);

/* Bytes waiting in the connection's output (request side flow control). */
size_t upstream_pending(const struct upstream_conn *c);

#endif

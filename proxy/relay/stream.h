/* stream.h - one request/response exchange, independent of the client's protocol.
 *
 * A downstream codec (HTTP/1 now, HTTP/2 later) creates a stream per request, fills a struct
 * http_req and calls stream_start(). The stream pins the worker's snapshot, asks route/balance for
 * a pool and an endpoint, opens an upstream connection and relays; the response comes back
 * through the downstream's ops. The stream owns its buffers and its upstream attachment; the
 * downstream owns the stream and frees it with stream_free() once the exchange is over.
 * Worker thread only.
 */
#ifndef CUT_STREAM_H
#define CUT_STREAM_H

#include <stdint.h>
#include <sys/socket.h>

#include "proxy/http/http.h"
#include "proxy/http/trace.h"
#include "proxy/route/route.h"

struct worker;
struct evbuffer;
struct snap_pin;
struct upstream;
struct upstream_ep;
struct stream;
struct io;

/* What a stream asks of the client side. */
struct downstream_ops {
    /* The response head (1xx interim responses included). */
    void (*head)(void *ctx, struct stream *s, const struct http_resp *resp);
    /* Response body bytes: the callee takes everything in data. */
    void (*body)(void *ctx, struct stream *s, struct evbuffer *data);
    /* The response is complete (trailers may be NULL/0). */
    void (*end)(void *ctx, struct stream *s, const struct http_field *trailers, unsigned n);
    /* The exchange failed. When no response head was sent yet, the callee answers status with
     * a small cutover-made response; otherwise it aborts the client connection. */
    void (*fail)(void *ctx, struct stream *s, int status, const char *code, const char *msg);
    /* The upstream output drained: the callee may read more request body. */
    void (*resume_body)(void *ctx, struct stream *s);
    /* Bytes queued towards the client (response side flow control). */
    size_t (*pending)(void *ctx, struct stream *s);
    /* 101 was relayed: switch to tunnel mode. */
    void (*tunnel)(void *ctx, struct stream *s);
};

enum stream_state {
    STREAM_ROUTING = 0,
    STREAM_QUEUED,     /* waiting for a connection to a busy endpoint (upstream_wait) */
    STREAM_CONNECTING,
    STREAM_WAITING,    /* request sent (or sending), no response head yet */
    STREAM_RESPONDING,
    STREAM_TUNNEL,
    STREAM_DONE
};

#define STREAM_LOG_PATH_MAX 512
#define STREAM_HOST_MAX 256

struct stream {
    struct worker *w;
    const struct downstream_ops *ops;
    void *ctx;
    struct snap_pin *pin;
    enum stream_state state;

    /* client */
    struct sockaddr_storage peer;
    char peer_str[48];
    char client_str[48];
    char country[3];               /* the client's country ("" unknown), once looked up */
    uint8_t country_done;          /* country was looked up (at routing, for a cohort) */
    uint8_t in_cohort;             /* routed with the route's cohort weights */

    /* routing result */
    int route, pool, ep_index;     /* indexes in the pinned snapshot; -1 when unset */
    enum route_reason reason;
    struct upstream_ep *ep;
    struct upstream *up;           /* the upstream exchange (upstream.h), NULL when none */
    unsigned tries;                /* tries counted against retries.max_tries */
    unsigned ntried;
    int tried[ROUTE_MAX_TRIES];    /* snapshot endpoint indexes that failed this request: not
                                    * chosen again */
    unsigned attempts;             /* upstream attempts, as logged */
    int uc_reused;                 /* the current try runs on a pooled keep-alive connection */
    int stale_retried;             /* a dead pooled connection was already replaced once */
    int first_pool;                /* the pool routing chose (s->pool moves on fail-safe) */
    uint64_t t_first_try_ns;       /* the first try started (retries.budget_ms) */
    int unprocessed_retries;       /* sent again after an HTTP/2 refusal */
    int health_noted;              /* ep_index whose failure was already noted, or -1 */
    int idempotent;                /* the method may be sent again (RFC 9110 section 9.2.2) */
    int last_err;
    int queued;                    /* in s->ep's queue (upstream_wait) */
    struct stream *qnext, *qprev;  /* the endpoint's queue */
    uint64_t queue_deadline_ns;

    /* request */
    char *head;                    /* the upstream HTTP/1.1 request head, kept for a retry */
    size_t head_len;
    struct http_req fwd;           /* the same request field by field, slices into head, for
                                    * HTTP/2 upstreams; fwd.fields is NULL when the route has
                                    * no HTTP/2 pool (head and fields: one allocation) */
    struct evbuffer *req_body;     /* request body waiting to go upstream (decoded) */
    enum http_framing req_framing;
    int req_done;                  /* the whole request body is in req_body or sent */
    int req_body_sent_any;         /* some body already left for the upstream */
    int head_method_head;          /* the request is HEAD */
    struct cut_slice method_slice; /* points into log_method */
    int upgrade;
    int te_trailers;               /* the client accepts trailers (sent on to HTTP/2 upstreams) */
    int grpc;                      /* content-type application/grpc: a long-lived stream */

    /* response */
    int status;
    int resp_head_sent;
    int aborted;                   /* the response was cut short */
    const char *error;             /* code of a response cutover made (static string) */

    /* accounting */
    uint64_t t_start_ns, t_upstream_ns, t_head_ns;
    uint64_t bytes_in, bytes_out;

    /* log fields (copied; the wire buffers move on) */
    char log_method[24];
    char log_host[STREAM_HOST_MAX];
    char log_path[STREAM_LOG_PATH_MAX];
    char request_id[132];
    char trace_id[TRACE_ID_LEN + 1]; /* the W3C trace-id sent upstream; "" when none */

    /* client transport (stream_set_tls) */
    unsigned tls : 1;              /* X-Forwarded-Proto "https" */
    char client_cert[256];         /* verified client certificate subject, "" when none */
};

/* Creates a stream for a client whose address is peer. Returns NULL on allocation failure. */
struct stream *stream_new(struct worker *w, const struct downstream_ops *ops, void *ctx,
                          const struct sockaddr *peer, socklen_t peerlen);

/* The client connection is TLS (io in TLS mode): sets s->tls and copies the verified client
 * certificate's subject for the access log. Plain io: nothing. Call before stream_start. */
void stream_set_tls(struct stream *s, const struct io *io);

/* Routes and forwards a request. req and its slices are only borrowed for the call: everything
 * needed later is copied. On a routing failure the stream calls ops->fail before returning. */
void stream_start(struct stream *s, const struct http_req *req);

/* The downstream decoded request body bytes into s->req_body, or finished the body (done). */
void stream_request_body(struct stream *s, int done);

/* Bytes of request body buffered on the way up (req_body + upstream output). */
size_t stream_request_buffered(const struct stream *s);

/* The client side drained enough of the response: read more from upstream. */
void stream_downstream_drained(struct stream *s);

/* The client went away: release the upstream (not reusable) and mark the exchange aborted. */
void stream_abort(struct stream *s);

/* Writes the access-log line, releases the snapshot pin and the upstream, frees s. */
void stream_free(struct stream *s);

/* ---- callbacks from the upstream connection (upstream.c) ------------------------------------ */
void stream_on_upstream_head(struct stream *s, const struct http_resp *resp);
void stream_on_upstream_body(struct stream *s, struct evbuffer *data);
void stream_on_upstream_end(struct stream *s, const struct http_field *trailers, unsigned n);
/* err: CUT_ECONN (connect failed or connection lost), CUT_ETIMEDOUT, CUT_EPROTO, CUT_ETLS.
 * connect_phase with retryable 1: the connection never came up, nothing was written
 * (ROUTE_FAIL_CONNECT). retryable 1 otherwise: the connection closed before any response byte
 * and no request body byte left (ROUTE_FAIL_LOST: sent again only when idempotent).
 * STREAM_RETRY_UNPROCESSED: the upstream said it did not process it (HTTP/2 REFUSED_STREAM /
 * GOAWAY), any method may go again, even to the same endpoint. 0: never sent again. Where the
 * next try goes and the bounds: route.h route_retry_decide / route_failover_pool. The
 * connection is already detached. */
#define STREAM_RETRY_UNPROCESSED 2
void stream_on_upstream_error(struct stream *s, int err, int retryable, int connect_phase);
void stream_on_upstream_drained(struct stream *s);
/* A connection to s->ep is free (the stream waited in its queue): the try starts now. */
void stream_on_upstream_ready(struct stream *s);
/* s waited in s->ep's queue for timeouts.upstream_queue_ms: answered 503. */
void stream_on_upstream_queue_timeout(struct stream *s);

#endif

/* etcd.h - a client for etcd v3's HTTP/JSON gateway (/v3/kv/range, /v3/kv/txn, /v3/watch,
 * /v3/lease/grant, /v3/lease/keepalive, /v3/auth/authenticate) over HTTP/1.1 and TLS, driven by
 * libcurl's multi interface on the control thread's libevent base: nothing here ever blocks.
 *
 * Several members: a call goes to the member that answered last and moves to the next one when a
 * member cannot be reached, times out or answers "unavailable" (HTTP 503 / gRPC code 14), each
 * member at most once per call. With a user name, the client authenticates
 * (/v3/auth/authenticate) before the first call and again when etcd says the token is no longer
 * valid, and sends the token in the Authorization header of every call and watch.
 *
 * The gateway's JSON: keys and values are base64, 64-bit integers (revisions, lease IDs) come as
 * decimal strings: the encodings are in control/etcd_codec.h (etcd_codec_b64, etcd_codec_unb64,
 * etcd_codec_int, etcd_codec_prefix_end).
 *
 * Ownership: struct etcd owns every call and watch it started. A callback is never called after
 * its call or watch was cancelled, nor after etcd_free(). Control thread only.
 */
#ifndef CUT_ETCD_H
#define CUT_ETCD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct etcd;
struct etcd_call;
struct etcd_watch;

#define ETCD_MAX_ENDPOINTS 16

struct etcd_opts {
    const char *const *endpoints; /* "https://10.0.0.5:2379" or "http://127.0.0.1:2379" */
    size_t nendpoints;            /* 1..ETCD_MAX_ENDPOINTS */
    const char *ca_file;          /* verifies the members' certificates (https) */
    const char *cert_file, *key_file; /* client certificate (mTLS), both or neither */
    const char *user;             /* etcd authentication; NULL: none */
    const char *password;         /* with user */
    unsigned dial_timeout_ms;     /* connecting (TCP + TLS) to one member */
    unsigned request_timeout_ms;  /* one unary call on one member, connection included */
};

/* Creates the client (copies what it needs of o). Returns NULL with a message in err. */
struct etcd *etcd_new(struct event_base *base, const struct etcd_opts *o, char *err, size_t cap);

/* Cancels every call and watch (no callback is called) and frees e. NULL is fine. */
void etcd_free(struct etcd *e);

/* The outcome of a unary call, for its callback:
 *   status 0:          the member answered 200; reply is the JSON object it sent (borrowed for
 *                      the call of the callback; for /v3/lease/keepalive the "result" member is
 *                      unwrapped, so every reply looks like the unary ones)
 *   status CUT_EPROTO: etcd refused the request (HTTP 4xx, or a 5xx other than unavailable);
 *                      reply is its error object ({"error":..,"code":..,"message":..}) or NULL
 *   status CUT_EIO:    no member could be reached or none answered in time; reply NULL
 *   status CUT_ENOMEM: reply NULL
 * what is a short text for logs ("member https://127.0.0.1:2379: connection refused"). */
typedef void (*etcd_reply_fn)(void *ctx, int status, json_t *reply, const char *what);

/* POSTs body (borrowed; serialised at once) to path on a member. Returns the call (owned by e;
 * valid until its callback returns or it is cancelled) or NULL when out of memory (cb not
 * called). */
struct etcd_call *etcd_call(struct etcd *e, const char *path, json_t *body, etcd_reply_fn cb,
                            void *ctx);

/* Cancels a call that has not completed: cb is not called. */
void etcd_call_cancel(struct etcd_call *call);

/* A watch's messages, for its callback:
 *   status 0: msg is one message of the stream, the "result" member unwrapped
 *             ({"header":{"revision":..},"created":true} or {"events":[...]} or
 *             {"compact_revision":..,"canceled":true}); borrowed for the call. After a message
 *             with "canceled":true the watch ends with CUT_EPROTO (unless cancelled in the
 *             callback): etcd keeps such a stream open, but nothing more comes on it
 *   status < 0: the stream ended (CUT_EIO: connection lost, member unreachable or no message for
 *             longer than the idle limit; CUT_EPROTO: etcd refused it); msg NULL. The watch is
 *             finished: it is freed after the callback returns, and the caller starts a new one.
 * A watch asks for progress notifications, and one silent for 3 x request_timeout_ms (at least
 * 15 s) is treated as lost. etcd sends them every --experimental-watch-progress-notify-interval,
 * 10 minutes by default in 3.4: run etcd with an interval well below the idle limit, or a quiet
 * watch ends (CUT_EIO) and is restarted once per idle limit. */
typedef void (*etcd_watch_fn)(void *ctx, int status, json_t *msg);

/* Watches [key, range_end) (raw bytes, not base64; range_end NULL: key alone; range_end ""
 * (etcd_codec_prefix_end's "\0"): every key from key on) from start_revision (0: from now).
 * Returns the watch (owned by e) or NULL when out of memory. */
struct etcd_watch *etcd_watch(struct etcd *e, const char *key, const char *range_end,
                              int64_t start_revision, etcd_watch_fn cb, void *ctx);

/* Stops a watch that has not ended: cb is not called again. */
void etcd_watch_cancel(struct etcd_watch *w);

/* The member a call would go to first now ("https://127.0.0.1:2379"). */
const char *etcd_current_endpoint(const struct etcd *e);

#endif

/* h2up.h - HTTP/2 towards upstreams: multiplexed connections per worker and endpoint.
 *
 * A pool with "protocol": "h2c" (cleartext, prior knowledge) or "h2" (TLS, ALPN h2) sends each
 * exchange as one stream on a shared connection. Per endpoint a worker keeps a list of
 * connections; a stream goes to the first one that is not going away and has room under the
 * peer's SETTINGS_MAX_CONCURRENT_STREAMS, else a new connection is opened. GOAWAY: no new
 * streams there; streams above the peer's last stream id (and streams refused with
 * REFUSED_STREAM) were never processed and are reported as retryable, so stream.c sends them to
 * another endpoint whatever the method. A connection with no stream closes after the pool's
 * idle time.
 *
 * The request head is the HTTP/1.1 head stream.c built (header rules applied once, for every
 * protocol), parsed back and sent as HTTP/2 fields; the response comes back through the same
 * stream_on_upstream_* callbacks as from HTTP/1.1 upstreams (streamed bodies, trailers).
 *
 * Re-entrancy (as in h2.c): nghttp2 runs only from this file's own event callbacks (input,
 * drain, timers, the deferred "run" event). Calls from stream.c only queue frames and activate
 * the run event, so no stream is freed under stream.c's feet.
 * Worker thread only.
 */
#ifndef CUT_H2UP_H
#define CUT_H2UP_H

#include <stddef.h>

struct worker;
struct stream;
struct upstream_ep;
struct upstream_conn;

/* Attaches s to a stream on a connection to ep (opening one when needed). Returns the handle
 * stream.c keeps in s->uc, or NULL when not even a socket could be made. */
struct upstream_conn *h2up_open(struct worker *w, struct upstream_ep *ep, struct stream *s);

/* The same operations as upstream.h, for a handle made by h2up_open (upstream.c dispatches). */
void h2up_send(struct upstream_conn *x);
void h2up_pause(struct upstream_conn *x);
void h2up_resume(struct upstream_conn *x);
void h2up_detach(struct upstream_conn *x);
size_t h2up_pending(const struct upstream_conn *x);

/* Closes ep's connections that carry no stream (shutdown, or the endpoint left every
 * snapshot). Safe from inside this module's own call chain (a stream answered from an h2up
 * callback can release the last snapshot that used ep): a connection in use up the stack is
 * taken off ep's list now and freed when that callback returns; one being failed is left to
 * the failing code. ep itself is not freed here (the caller holds a reference). */
void h2up_close_idle(struct upstream_ep *ep);

#endif

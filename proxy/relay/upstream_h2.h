/* upstream_h2.h - HTTP/2 towards upstreams: multiplexed connections per worker and endpoint.
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
 * The request is the stream's forwarded request (s->fwd: the header rules applied once, for
 * every protocol, by http_write_forward), sent as HTTP/2 fields: pseudo-headers from its method,
 * path and Host, then every field except hop-by-hop and connection-specific ones and te
 * ("te: trailers" is sent when the client accepts trailers), names in lower case. The response
 * comes back through the same stream_on_upstream_* callbacks as from HTTP/1.1 upstreams
 * (streamed bodies, trailers).
 *
 * Re-entrancy (as in h2.c): nghttp2 runs only from this file's own event callbacks (input,
 * drain, timers, the deferred "run" event). Calls from stream.c only queue frames and activate
 * the run event, so no stream is freed under stream.c's feet.
 * Worker thread only.
 */
#ifndef CUT_UPSTREAM_H2_H
#define CUT_UPSTREAM_H2_H

#include <stddef.h>

struct worker;
struct stream;
struct upstream;
struct upstream_ep;

/* Attaches s to a stream on a connection to ep (opening one when needed). Returns the handle
 * (also stored in s->up), or NULL when not even a socket could be made, or s is an Upgrade
 * (RFC 9113 section 8.6). */
struct upstream *upstream_h2_open(struct worker *w, struct upstream_ep *ep, struct stream *s);

/* Closes ep's connections that carry no stream (shutdown, or the endpoint left every
 * snapshot). Safe from inside this module's own call chain (a stream answered from one of its
 * callbacks can release the last snapshot that used ep): a connection in use up the stack is
 * taken off ep's list now and freed when that callback returns; one being failed is left to
 * the failing code. ep itself is not freed here (the caller holds a reference). */
void upstream_h2_close_idle(struct upstream_ep *ep);

#endif

/* upstream_h1.h - HTTP/1.1 towards upstreams: one exchange per connection at a time, idle
 * keep-alive connections pooled per worker and endpoint (ep->idle).
 *
 * The request head is the HTTP/1.1 head stream.c built (s->head, header rules applied once);
 * the body follows with the framing the head announced (Content-Length, or chunked); the
 * response is parsed with h1_parse.c and handed to the stream_on_upstream_* callbacks (1xx
 * relayed, bodies streamed, trailers, 101 turning the connection into a tunnel).
 * Worker thread only.
 */
#ifndef CUT_UPSTREAM_H1_H
#define CUT_UPSTREAM_H1_H

struct worker;
struct stream;
struct upstream;
struct upstream_ep;

/* Attaches s to a pooled idle connection to ep that is still alive (*reused = 1) or to a new
 * connect. Returns the handle (also stored in s->up), or NULL when no socket or memory could
 * be had. */
struct upstream *upstream_h1_open(struct worker *w, struct upstream_ep *ep, struct stream *s,
                                  int *reused);

/* Closes ep's idle connections (the endpoint left every snapshot, or shutdown). May free ep
 * when nothing else keeps it: callers that go on using ep hold a reference meanwhile. */
void upstream_h1_close_idle(struct upstream_ep *ep);

#endif

/* h2_internal.h - private to proxy/relay/h2.c and proxy/relay/h2_stream.c: the HTTP/2 server
 * connection (struct h2c, h2.c: socket, nghttp2 session and its callbacks, flow of frames, GOAWAY)
 * and its streams (struct h2s, h2_stream.c: one request/response exchange, the downstream ops
 * that stream.c calls). Both halves read both structs, hence this header; nothing outside these
 * two files includes it.
 *
 * Ownership: a struct h2c owns its streams (c->streams, freed with h2s_free); a struct h2s owns
 * its struct stream until the exchange is over (h->s, then NULL). Worker thread only.
 */
#ifndef CUT_H2_INTERNAL_H
#define CUT_H2_INTERNAL_H

#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/http/fields.h"
#include "proxy/net/io.h"
#include "proxy/relay/timer.h"

struct stream;
struct worker;

#define H2C_STREAM_WINDOW (256u << 10) /* per-stream receive window (capped at buffer_bytes) */
#define H2C_RESET_RING 32            /* streams we reset lately: their late frames are ignored */

struct h2s;

struct h2c {
    struct worker *w;
    struct io io;
    struct ltimer tmo; /* idle / stall checks / deferred close */
    struct event *run;  /* deferred: feed input, send frames */
    nghttp2_session *ng;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    struct h2c *next, *prev; /* the worker's list */
    struct h2s *streams;
    unsigned nstreams;
    size_t out_cap;      /* socket output bound */
    size_t stream_buf;   /* per-stream response bound (limits.buffer_bytes) */
    unsigned client_idle_ms, body_idle_ms;
    size_t max_header_bytes;
    unsigned max_headers;
    int closing;         /* no more input: write the last frames (GOAWAY), then close */
    int finishing;       /* nghttp2 has nothing more to write: waiting for the socket */
    int lingering;       /* half-closed, discarding input until EOF or the timer */
    int shutting_down;
    int in_send;
    int out_paused;      /* input held while the client does not read our output */
    int want_drain;      /* some stream's response buffer drained: resume its upstream */
    uint64_t rate_start_ns;
    unsigned rst_count, ctrl_count, cont_count;
    unsigned request_body_ms, min_body_rate; /* the request body deadline (h1.c's rule) */
    int32_t max_client_id; /* the highest stream id a client HEADERS frame used */
    /* The last streams we reset (RST_STREAM sent): a HEADERS frame the client had in flight on
     * one of them (trailers) is ignored, not a connection error (RFC 9113 section 5.1). */
    int32_t reset_ring[H2C_RESET_RING];
    unsigned reset_next;
};

struct h2s {
    struct h2c *c;
    int32_t id;
    struct stream *s;     /* NULL once the exchange is over (logged and freed) */
    struct fields_head head;
    struct evbuffer *out; /* response body waiting for the client's window */
    nghttp2_nv *trailers;
    size_t ntrailers;
    char *trailer_mem;
    uint64_t unconsumed;  /* request bytes received but not yet consumed into the window */
    uint64_t last_rx_ns, last_tx_ns;
    uint64_t body_start_ns, body_bytes; /* the request body's deadline clock */
    struct h2s *next, *prev;
    unsigned req_end : 1, resp_submitted : 1, resp_eof : 1, deferred : 1, want_drain : 1,
        no_body : 1;
};

/* ---- the connection (h2.c) ------------------------------------------------------------------- */

/* Has c's deferred "run" event feed input and send frames from the loop (never sends here: the
 * re-entrancy rule in h2.c). Inline: several times per exchange, from both files. */
static inline void h2c_schedule(struct h2c *c)
{
    if (!event_pending(c->run, EV_TIMEOUT, NULL))
        event_active(c->run, EV_TIMEOUT, 1);
}

/* ---- h2_stream.c ----------------------------------------------------------------------------- */

/* A new stream id on c, linked first in c->streams with its request-head collector ready;
 * NULL when out of memory. Freed with h2s_free (or with c). */
struct h2s *h2s_new(struct h2c *c, int32_t id);

/* Unlinks and frees h; an exchange still running is aborted (logged as 499). */
void h2s_free(struct h2c *c, struct h2s *h);

/* The request head of h is complete (end_stream: and so is the request): answers it when it is
 * malformed or over a limit, otherwise starts its struct stream. */
void h2s_start_request(struct h2s *h, int end_stream);

/* The exchange of h is over (response complete or failed): log it and let go of it. */
void h2s_exchange_over(struct h2s *h);

/* nghttp2's send_data_callback (set by h2.c): writes one DATA frame of the stream whose provider
 * data_read just answered NGHTTP2_DATA_FLAG_NO_COPY: the frame header, then len bytes moved out
 * of h->out into c's socket output. NGHTTP2_ERR_PAUSE once that output reaches c->out_cap (the
 * send stops as on_send's WOULDBLOCK would); never NGHTTP2_ERR_WOULDBLOCK. */
int h2s_send_data(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *framehd, size_t len,
                  nghttp2_data_source *src, void *ud);

/* A response cutover makes itself (text/plain, x-cutover-error: code unless NULL); RST_STREAM
 * when a response was already submitted. */
void h2s_submit_error(struct h2s *h, int status, const char *code, const char *msg);

/* Whether h's request body is past its deadline (a DATA trickle) at now (clock_mono_ns); restarts
 * its clock while the upstream holds the body back. */
int h2s_body_too_slow(struct h2s *h, uint64_t now);

/* 408 on h for a request body past its deadline; the connection and its other streams go on. */
void h2s_body_timeout(struct h2s *h);

#endif

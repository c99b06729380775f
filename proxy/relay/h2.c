/* h2.c - HTTP/2 client connections (h2c prior knowledge): one nghttp2 session per connection,
 * one struct h2s (and one struct stream) per HTTP/2 stream. This file is the connection: the
 * socket, the session and its callbacks, input/output, stalls, GOAWAY and close; a stream's
 * exchange and the downstream ops are in h2_stream.c (shared structs: h2_internal.h).
 *
 * Re-entrancy rule: nghttp2_session_send() runs only from this file's own event callbacks
 * (input, drain, timer, the deferred "run" event), never from a downstream op called by
 * stream.c. The ops only queue frames (nghttp2_submit_*, resume_data) and activate c->run, so
 * a stream is never freed under stream.c's feet and nghttp2 is never entered recursively.
 * Streams close (on_stream_close) only inside nghttp2_session_mem_recv/send, i.e. from those
 * callbacks too.
 *
 * Flow control, both ways:
 *  - response: each stream queues at most limits.buffer_bytes in h->out (stream.c pauses the
 *    upstream past it via ds_pending; we resume it once h->out drained to half); the socket
 *    output holds at most out_cap (the send callback returns WOULDBLOCK past it, DATA is
 *    written by h2s_send_data, which pauses the send past it).
 *  - request: NGHTTP2_OPT_NO_AUTO_WINDOW_UPDATE; DATA is consumed into the window only as the
 *    upstream drains it (ds_resume_body), so a slow upstream stalls the client's window.
 */
#include "proxy/relay/h2.h"
#include "proxy/relay/h2_internal.h"

#include "core/clock.h"
#include "core/list.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/net/io.h"
#include "proxy/relay/stream.h"
#include "proxy/relay/worker.h"

#define H2C_MAX_STREAMS 100          /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define H2C_CONN_WINDOW (1u << 20)   /* connection receive window */
#define H2C_MAX_RESETS_PER_SEC 100   /* RST_STREAM from the client (CVE-2023-44487) */
#define H2C_MAX_CONTROL_PER_SEC 500  /* PING, SETTINGS, PRIORITY, empty DATA, tiny WINDOW_UPDATE */
#define H2C_TINY_WINDOW_UPDATE 1024  /* WINDOW_UPDATE increments below this count as control */
#define H2C_MAX_CONTINUATIONS 16     /* CONTINUATION frames after one HEADERS */
#define H2C_CLOSE_MS 5000            /* the last frames (GOAWAY) get this long to be written */
#define H2C_LINGER_MS 2000           /* read and discard after GOAWAY before closing */

/* ---- pure helpers ------------------------------------------------------------------------- */

int h2_preface_match(const char *p, size_t n)
{
    size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;
    if (memcmp(p, H2_PREFACE, k) != 0)
        return -1;
    return n >= H2_PREFACE_LEN ? 1 : 0;
}

/* ---- connection objects (struct h2c, struct h2s: h2_internal.h) -------------------------- */

static void conn_free(struct h2c *c);
static void flush(struct h2c *c);

struct h2c *h2c_next(const struct h2c *c)
{
    return c->next;
}

void h2c_link(struct h2c *c, struct h2c **head)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

void h2c_unlink(struct h2c *c, struct h2c **head)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static void arm(struct h2c *c, unsigned ms)
{
    ltimer_arm(&c->tmo, ms, c->w);
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------------ */

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct h2c *c = ud;
    (void)ng;
    (void)flags;
    if (io_pending(&c->io) >= c->out_cap)
        return NGHTTP2_ERR_WOULDBLOCK; /* on_drain sends more */
    if (evbuffer_add(c->io.out, data, len) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

/* Enhance your calm: the client abuses the protocol. GOAWAY, then close. */
static void calm(struct h2c *c)
{
    nghttp2_session_terminate_session(c->ng, NGHTTP2_ENHANCE_YOUR_CALM);
    c->closing = 1; /* no more input is processed; flush() writes the GOAWAY and closes */
}

static int rate_exceeded(struct h2c *c, unsigned *count, unsigned max)
{
    uint64_t now = clock_mono_ns();
    if (now - c->rate_start_ns >= 1000000000u) {
        c->rate_start_ns = now;
        c->rst_count = c->ctrl_count = 0;
    }
    return ++*count > max;
}

/* A connection error cutover detects itself: GOAWAY with code, then close. */
static int conn_error(struct h2c *c, uint32_t code)
{
    nghttp2_session_terminate_session(c->ng, code);
    c->closing = 1;
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* stops nghttp2_session_mem_recv() here */
}

static int recently_reset(const struct h2c *c, int32_t id)
{
    for (unsigned i = 0; i < H2C_RESET_RING; i++)
        if (c->reset_ring[i] == id)
            return 1;
    return 0;
}

/* A HEADERS frame on a client stream id not above the highest one used: fine for a stream
 * nghttp2 still knows (trailers, or its own closed-stream rules apply), ignored for a stream we
 * reset lately (the client may have sent it before our RST_STREAM arrived), otherwise an
 * attempt to open a stream below one already opened (RFC 9113 section 5.1.1) or to reopen a
 * closed one: connection error PROTOCOL_ERROR. nghttp2 1.52 silently ignores such frames. */
static int headers_id_ok(struct h2c *c, int32_t id)
{
    if (id <= 0 || (id & 1) == 0)
        return 1; /* stream 0 and even ids: nghttp2's connection errors */
    if (id > c->max_client_id) {
        c->max_client_id = id;
        return 1;
    }
    return nghttp2_session_find_stream(c->ng, id) != NULL || recently_reset(c, id);
}

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud)
{
    struct h2c *c = ud;
    (void)ng;
    if (hd->type == NGHTTP2_HEADERS) {
        c->cont_count = 0;
        if (!headers_id_ok(c, hd->stream_id))
            return conn_error(c, NGHTTP2_PROTOCOL_ERROR);
    } else if (hd->type == NGHTTP2_CONTINUATION && ++c->cont_count > H2C_MAX_CONTINUATIONS) {
        calm(c);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    struct h2c *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2s *h = h2s_new(c, frame->hd.stream_id);
    if (!h)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (c->nstreams == 1 && !c->closing)
        arm(c, c->body_idle_ms); /* stall checks while streams are open */
    nghttp2_session_set_stream_user_data(ng, h->id, h);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud)
{
    (void)ud;
    (void)flags;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* request trailers are not forwarded to HTTP/1.1 upstreams (as for h1) */
    struct h2s *h = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (!h)
        return 0;
    if (fields_head_add(&h->head, (const char *)name, namelen, (const char *)value, valuelen) ==
        CUT_ENOMEM)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0; /* over a limit: answered 431 once the head is complete */
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    struct h2c *c = ud;
    int32_t id = frame->hd.stream_id;
    struct h2s *h = id ? nghttp2_session_get_stream_user_data(ng, id) : NULL;
    int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (!h)
            break;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            h2s_start_request(h, end);
            return 0;
        }
        break; /* trailers: only END_STREAM matters */
    case NGHTTP2_DATA:
        if (!end && frame->hd.length == 0 && rate_exceeded(c, &c->ctrl_count,
                                                           H2C_MAX_CONTROL_PER_SEC)) {
            calm(c);
            return 0;
        }
        break;
    case NGHTTP2_RST_STREAM:
        if (rate_exceeded(c, &c->rst_count, H2C_MAX_RESETS_PER_SEC))
            calm(c);
        return 0;
    case NGHTTP2_PING:
    case NGHTTP2_SETTINGS:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            return 0;
        /* fall through */
    case NGHTTP2_PRIORITY:
        if (rate_exceeded(c, &c->ctrl_count, H2C_MAX_CONTROL_PER_SEC))
            calm(c);
        return 0;
    case NGHTTP2_WINDOW_UPDATE:
        /* Tiny increments cost a frame each for nothing (a client reading normally returns
         * window in large steps); they count as control frames. */
        if (frame->window_update.window_size_increment < H2C_TINY_WINDOW_UPDATE &&
            rate_exceeded(c, &c->ctrl_count, H2C_MAX_CONTROL_PER_SEC))
            calm(c);
        return 0;
    default:
        return 0;
    }
    if (h && end && !h->req_end) {
        h->req_end = 1;
        h->last_rx_ns = clock_mono_ns();
        if (h->s)
            stream_request_body(h->s, 1);
    }
    return 0;
}
static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    struct h2c *c = ud;
    (void)flags;
    struct h2s *h = nghttp2_session_get_stream_user_data(ng, id);
    if (h && h->s && !c->closing && h2s_body_too_slow(h, clock_mono_ns()))
        h2s_body_timeout(h);
    if (!h || !h->s || c->closing) {
        nghttp2_session_consume(ng, id, len); /* nobody wants it: keep the window open */
        return 0;
    }
    struct stream *s = h->s;
    evbuffer_add(s->req_body, data, len);
    s->bytes_in += len;
    h->body_bytes += len;
    h->unconsumed += len;
    h->last_rx_ns = clock_mono_ns();
    stream_request_body(s, 0);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    struct h2c *c = ud;
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        c->reset_ring[c->reset_next++ % H2C_RESET_RING] = frame->hd.stream_id;
        return 0;
    }
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
        (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS))
        return 0;
    struct h2s *h = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (h && !h->req_end) {
        /* The response is complete and the client is still sending: it need not (RFC 9113
         * section 8.1). */
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_frame_not_send(nghttp2_session *ng, const nghttp2_frame *frame, int err, void *ud)
{
    (void)ud;
    (void)err;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->hd.stream_id)
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
    struct h2c *c = ud;
    (void)err;
    struct h2s *h = nghttp2_session_get_stream_user_data(ng, id);
    if (!h)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    if (h->unconsumed) {
        nghttp2_session_consume_connection(ng, (size_t)h->unconsumed);
        h->unconsumed = 0;
    }
    h2s_free(c, h); /* an exchange still running is aborted (logged as 499) */
    if (c->nstreams == 0 && !c->closing)
        arm(c, c->client_idle_ms);
    return 0;
}

/* ---- connection ------------------------------------------------------------------------------ */

static void conn_free(struct h2c *c)
{
    while (c->streams)
        h2s_free(c, c->streams);
    if (c->ng)
        nghttp2_session_del(c->ng);
    worker_h2c_removed(c->w, c);
    ltimer_dispose(&c->tmo);
    if (c->run)
        event_free(c->run);
    io_dispose(&c->io);
    free(c);
}

/* Output empty: half-close and read what the client still sends for a moment (so that its
 * kernel does not answer our close with a reset that destroys the GOAWAY), then free. Frees are
 * always deferred to the timer. */
static void close_when_drained(struct h2c *c)
{
    if (evbuffer_get_length(c->io.out) > 0 || c->lingering)
        return; /* on_drain comes back here; or already lingering */
    if (!c->io.eof && !c->io.failed) {
        c->lingering = 1;
        shutdown(c->io.fd, SHUT_WR);
        io_resume_read(&c->io);
        arm(c, H2C_LINGER_MS);
        return;
    }
    ltimer_fire(&c->tmo);
}

/* nghttp2 has nothing more to write: stop reading, flush the socket, close. */
static void finish(struct h2c *c)
{
    if (c->finishing)
        return;
    c->closing = c->finishing = 1;
    io_pause_read(&c->io);
    evbuffer_drain(c->io.in, evbuffer_get_length(c->io.in));
    c->io.drain_mark = 0;
    if (evbuffer_get_length(c->io.out) == 0) {
        close_when_drained(c);
    } else {
        io_mark(&c->io);
        arm(c, H2C_CLOSE_MS);
    }
}

/* Runs nghttp2's output into the socket buffer, resumes upstreams whose response buffer
 * drained, and closes the connection when the session is over. */
static void flush(struct h2c *c)
{
    if (c->in_send || c->finishing)
        return;
    c->in_send = 1;
    int rv = nghttp2_session_send(c->ng);
    c->in_send = 0;
    if (rv != 0) {
        h2c_kill(c);
        return;
    }
    if (evbuffer_get_length(c->io.out))
        io_mark(&c->io);
    if (c->want_drain) {
        c->want_drain = 0;
        for (struct h2s *h = c->streams; h; h = h->next) {
            if (h->want_drain) {
                h->want_drain = 0;
                if (h->s)
                    stream_downstream_drained(h->s); /* may queue more: h2c_schedule()d */
            }
        }
    }
    int ww = nghttp2_session_want_write(c->ng);
    if ((c->closing && !ww) || (!ww && !nghttp2_session_want_read(c->ng)))
        finish(c); /* GOAWAY out and no stream left, or a fatal error */
}

/* Feeds the buffered input to nghttp2 without copying (evbuffer_peek chunks). */
static void feed(struct h2c *c)
{
    struct evbuffer *in = c->io.in;
    while (!c->closing && evbuffer_get_length(in) > 0) {
        if (io_pending(&c->io) >= c->out_cap && nghttp2_session_want_write(c->ng)) {
            /* The client does not read what we send (PING or SETTINGS flood, or just slow):
             * stop reading it until the output drains. */
            c->out_paused = 1;
            io_pause_read(&c->io);
            return;
        }
        struct evbuffer_iovec v[8];
        int nv = evbuffer_peek(in, -1, NULL, v, 8);
        size_t used = 0;
        for (int i = 0; i < nv && !c->closing; i++) {
            ssize_t r = nghttp2_session_mem_recv(c->ng, v[i].iov_base, v[i].iov_len);
            if (r < 0) {
                /* Fatal (bad preface, flood, protocol error). nghttp2 queued a GOAWAY for
                 * some of these; for the others (floods) queue one here. */
                int calm_down = r == NGHTTP2_ERR_FLOODED || r == NGHTTP2_ERR_CALLBACK_FAILURE ||
                                r <= NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
                if (r != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
                    nghttp2_session_terminate_session(c->ng, calm_down ? NGHTTP2_ENHANCE_YOUR_CALM
                                                                       : NGHTTP2_PROTOCOL_ERROR);
                c->closing = 1;
                break;
            }
            used += (size_t)r;
        }
        evbuffer_drain(in, used);
        if (c->closing)
            break;
    }
    if (c->closing) {
        evbuffer_drain(in, evbuffer_get_length(in));
        io_pause_read(&c->io);
    } else if (!c->out_paused) {
        io_resume_read(&c->io); /* io.c pauses at read_max; consumed input reopens it */
    }
}

static void on_read(struct io *io, void *arg)
{
    struct h2c *c = arg;
    (void)io;
    if (c->closing) {
        evbuffer_drain(c->io.in, evbuffer_get_length(c->io.in));
        return;
    }
    feed(c);
    flush(c);
}

static void on_drain(struct io *io, void *arg)
{
    struct h2c *c = arg;
    (void)io;
    if (c->finishing) {
        close_when_drained(c);
        return;
    }
    if (c->out_paused && io_pending(&c->io) <= c->out_cap / 2) {
        c->out_paused = 0;
        feed(c);
    }
    flush(c);
}

static void on_event(struct io *io, int what, void *arg)
{
    struct h2c *c = arg;
    (void)io;
    if (what == IO_EOF && c->finishing) {
        ltimer_fire(&c->tmo);
        return;
    }
    if (what & (IO_EOF | IO_ERROR | IO_TIMEOUT))
        conn_free(c); /* exchanges in progress are aborted (logged as 499) */
}

static void on_run(evutil_socket_t fd, short what, void *arg)
{
    struct h2c *c = arg;
    (void)fd;
    (void)what;
    if (!c->closing && !c->out_paused && evbuffer_get_length(c->io.in))
        feed(c);
    flush(c);
    io_loop_flush(&c->w->iol);
}

/* Streams that made no progress for body_idle: a request body that stopped arriving (while we
 * were not the ones holding it back), or a response the client does not take (zero window).
 * And request bodies past their deadline (h2s_body_too_slow). */
static void check_stalls(struct h2c *c)
{
    uint64_t now = clock_mono_ns();
    uint64_t limit = (uint64_t)c->body_idle_ms * 1000000u;
    for (struct h2s *h = c->streams; h; h = h->next) {
        if (h->s && h2s_body_too_slow(h, now)) {
            h2s_body_timeout(h);
            continue;
        }
        struct stream *s = h->s;
        int rx_stall = s && !h->req_end && now - h->last_rx_ns > limit &&
                       stream_request_buffered(s) == 0;
        int tx_stall = evbuffer_get_length(h->out) > 0 && now - h->last_tx_ns > limit;
        if (rx_stall && s && !s->resp_head_sent && !h->resp_submitted) {
            stream_abort(s);
            s->status = 408;
            h2s_submit_error(h, 408, "request_timeout", "the request body stalled");
            h2s_exchange_over(h);
        } else if (rx_stall || tx_stall) {
            if (s) {
                stream_abort(s);
                h2s_exchange_over(h);
            }
            evbuffer_drain(h->out, evbuffer_get_length(h->out));
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_CANCEL);
        }
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct h2c *c = arg;
    struct io_loop *l = &c->w->iol;
    (void)fd;
    (void)what;
    if (c->closing) {
        conn_free(c);
        io_loop_flush(l);
        return;
    }
    if (c->nstreams == 0) {
        /* Idle: GOAWAY (nothing was started after the last stream), then close. */
        nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
        c->closing = 1;
    } else {
        check_stalls(c);
        arm(c, c->body_idle_ms);
    }
    flush(c);
    io_loop_flush(l);
}

int h2c_takeover(struct worker *w, struct io *from, const struct sockaddr *peer,
                 socklen_t peerlen, const struct cfg *cfg)
{
    CUT_ASSERT(cfg != NULL);
    int fd = fcntl(from->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return CUT_EIO;
    struct h2c *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return CUT_ENOMEM;
    }
    c->w = w;
    if (peerlen > sizeof c->peer)
        peerlen = sizeof c->peer;
    memcpy(&c->peer, peer, peerlen);
    c->peerlen = peerlen;
    c->stream_buf = cfg->limits.buffer_bytes;
    c->out_cap = c->stream_buf < 65536 ? 65536 : c->stream_buf;
    c->client_idle_ms = cfg->timeouts.client_idle;
    c->body_idle_ms = cfg->timeouts.body_idle;
    c->request_body_ms = cfg->timeouts.request_body;
    c->min_body_rate = cfg->limits.min_body_rate;
    c->max_header_bytes = cfg->limits.max_header_bytes;
    c->max_headers = cfg->limits.max_headers;
    if (c->max_headers > CUT_MAX_FIELDS)
        c->max_headers = CUT_MAX_FIELDS;
    c->rate_start_ns = clock_mono_ns();

    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    int ok = nghttp2_session_callbacks_new(&cbs) == 0 && nghttp2_option_new(&opt) == 0;
    if (ok) {
        nghttp2_session_callbacks_set_send_callback(cbs, on_send);
        nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
        nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
        nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        nghttp2_session_callbacks_set_send_data_callback(cbs, h2s_send_data);
        nghttp2_option_set_no_auto_window_update(opt, 1);
        nghttp2_option_set_max_outbound_ack(opt, 100); /* SETTINGS/PING ACKs not read */
        nghttp2_option_set_max_settings(opt, 32);
        ok = nghttp2_session_server_new2(&c->ng, cbs, c, opt) == 0;
    }
    if (cbs)
        nghttp2_session_callbacks_del(cbs);
    if (opt)
        nghttp2_option_del(opt);
    uint32_t win = c->stream_buf < H2C_STREAM_WINDOW ? (uint32_t)c->stream_buf
                                                     : H2C_STREAM_WINDOW;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2C_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, win},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)c->max_header_bytes},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    if (ok)
        ok = nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, CUT_ARRAY_LEN(iv)) == 0 &&
             nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                                   H2C_CONN_WINDOW) == 0;
    if (ok) {
        ltimer_init(&c->tmo, w->base, on_timeout, c);
        c->run = event_new(w->base, -1, 0, on_run, c);
        ok = c->run != NULL;
    }
    if (!ok) {
        if (c->ng)
            nghttp2_session_del(c->ng);
        ltimer_dispose(&c->tmo);
        if (c->run)
            event_free(c->run);
        close(fd);
        free(c);
        return CUT_ENOMEM;
    }
    if (io_init(&c->io, &w->iol, fd, on_read, on_drain, on_event, c) < 0) {
        nghttp2_session_del(c->ng);
        ltimer_dispose(&c->tmo);
        event_free(c->run);
        free(c);
        return CUT_ENOMEM;
    }
    if (io_is_tls(from) && io_take_tls(&c->io, from) < 0) {
        io_dispose(&c->io);
        nghttp2_session_del(c->ng);
        ltimer_dispose(&c->tmo);
        event_free(c->run);
        free(c);
        return CUT_EIO;
    }
    c->io.read_max = c->out_cap;
    c->io.drain_mark = c->out_cap / 2;
    c->io.write_timeout = worker_tv(w, c->body_idle_ms);
    evbuffer_add_buffer(c->io.in, from->in);
    worker_h2c_added(w, c);
    arm(c, c->client_idle_ms);
    h2c_schedule(c); /* the preface and whatever followed it are processed from the loop */
    return 0;
}

void h2c_shutdown(struct h2c *c)
{
    if (c->closing || c->shutting_down)
        return;
    c->shutting_down = 1;
    nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->ng), NGHTTP2_NO_ERROR,
                          NULL, 0);
    flush(c); /* closes at once when no stream is open */
}

void h2c_kill(struct h2c *c)
{
    evbuffer_drain(c->io.out, evbuffer_get_length(c->io.out));
    c->closing = c->finishing = 1;
    io_pause_read(&c->io);
    ltimer_fire(&c->tmo);
}

void h2c_kill_now(struct h2c *c)
{
    conn_free(c);
}

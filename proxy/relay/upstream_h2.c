/* upstream_h2.c - HTTP/2 client connections to upstreams (see upstream_h2.h). */
#include "proxy/relay/upstream_h2.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"
#include "proxy/http/fields.h"
#include "proxy/http/h1_parse.h"
#include "proxy/net/io.h"
#include "proxy/relay/h2_data.h"
#include "core/list.h"
#include "proxy/route/snapshot.h"
#include "proxy/relay/stream.h"
#include "proxy/net/tls.h"
#include "proxy/relay/timer.h"
#include "proxy/relay/upstream.h"
#include "proxy/relay/worker.h"

#define H2UP_DEFAULT_MAX_STREAMS 100   /* until the peer's SETTINGS say otherwise */
#define H2UP_STREAM_WINDOW (256u << 10) /* per-stream receive window */
#define H2UP_CONN_WINDOW (16u << 20)    /* connection receive window */
#define H2UP_OUT_CAP (256u << 10)       /* socket output queued before DATA waits */
#define H2UP_REPLAY_MAX (64u << 10) /* request body kept to resend a refused stream */
#define H2UP_NAMES_INLINE 512       /* lower-case field names kept in the stream object */

struct h2up_conn;

/* One exchange on an HTTP/2 connection. */
struct h2up_stream {
    struct upstream base;        /* first: the stream's handle (s->up) */
    struct h2up_conn *c;
    struct stream *s;            /* NULL once detached */
    int32_t id;                  /* 0 until submitted */
    struct h2up_stream *next, *prev; /* the connection's streams (waiting or open) */
    struct fields_head head;         /* response head (or trailers) being collected */
    int head_done;               /* the final response head went to the stream */
    int in_trailers;
    int deferred;                /* the body provider waits for stream.c */
    int paused;                  /* the client side is full: DATA is not consumed */
    size_t unconsumed;           /* received DATA bytes not yet returned to the window */
    int got_bytes;               /* any frame of the response arrived */
    int grpc;                    /* long-lived: no body idle timeout */
    size_t max_header_bytes;     /* limits.max_header_bytes of the stream's snapshot */
    struct ltimer tmo;          /* response head / body idle */
    struct evbuffer *tmp;        /* DATA handed to the stream */
    struct evbuffer *sent;       /* request body sent so far, for a resend after a refusal */
    int sent_overflow;           /* more than H2UP_REPLAY_MAX was sent: no resend */
    /* The request HEADERS is submitted without copies (NGHTTP2_NV_FLAG_NO_COPY_*): nghttp2 reads
     * the names and values when it packs the frame, which can be loop turns later. Values are
     * slices of s->head (owned by s) or literals; the lower-case names live here, in names
     * (names_inline, or malloc'd for a larger head). See "borrowed request bytes" below. */
    char *names;
    char names_inline[H2UP_NAMES_INLINE];
};

struct h2up_conn {
    struct worker *w;
    struct upstream_ep *ep;
    struct io io;
    int io_live;
    nghttp2_session *ng;
    struct event *run;   /* deferred send (never from stream.c's call chain) */
    struct ltimer tmo;  /* connect / idle */
    struct h2up_conn *next, *prev; /* ep->h2conns */
    struct h2up_stream *streams;   /* every stream on it, submitted or waiting */
    unsigned nstreams;
    int connected, goaway, dead;
    int linked;  /* on ep->h2conns (taken off when it closes, so nobody picks or closes it) */
    int closed;  /* conn_close ran; the memory goes when the last callback on it returns */
    unsigned busy; /* callbacks of this file on c up the stack (conn_enter / conn_leave) */
    int session_saved; /* the TLS session was offered to the endpoint */
    unsigned connect_ms, idle_ms;
    uint32_t max_header_bytes; /* limits.max_header_bytes: SETTINGS_MAX_HEADER_LIST_SIZE */
    int32_t hd_out_id; /* request HEADERS up to this stream id are packed or dropped by nghttp2 */
};

/* ---- connection lifetime -------------------------------------------------------------------
 *
 * A connection is freed by conn_close() only: at once when no callback of this file is running
 * on it, else when the outermost one returns (conn_leave). Calls out of this file can come back
 * and close it: io_loop_flush() reports a write error or a drained socket whose session is over
 * (on_event / on_drain -> conn_fail), and a stream answered from conn_fail or from an nghttp2
 * callback can drop the last pin of an older snapshot, whose release closes the endpoint's
 * connections without streams (upstream_ep_put -> upstream_h2_close_idle). Every entry point (event
 * callback) brackets its work with conn_enter/conn_leave and stops touching c after
 * conn_leave returns -1. */

static void conn_free(struct h2up_conn *c)
{
    struct upstream_ep *ep = c->ep;
    if (c->linked) {
        CUT_LIST_REMOVE(&ep->h2conns, c, next, prev);
        c->linked = 0;
    }
    ep->nconns--; /* ep lives while it counts c (ep_maybe_free) */
    if (c->ng)
        nghttp2_session_del(c->ng);
    if (c->run)
        event_free(c->run);
    ltimer_dispose(&c->tmo);
    if (c->io_live)
        io_dispose(&c->io);
    struct worker *w = c->w;
    free(c);
    upstream_ep_release(&w->ups, ep);
}

/* Closes c: no new stream goes there and nothing else closes it again; its memory goes now, or
 * when the outermost callback on it returns. Callers must not touch c afterwards unless they
 * hold it with conn_enter. */
static void conn_close(struct h2up_conn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    c->dead = 1;
    if (c->linked) {
        CUT_LIST_REMOVE(&c->ep->h2conns, c, next, prev);
        c->linked = 0;
    }
    if (c->busy) {
        if (c->run)
            event_del(c->run);
        ltimer_stop(&c->tmo);
        return;
    }
    conn_free(c);
}

static void conn_enter(struct h2up_conn *c)
{
    c->busy++;
}

/* Ends a conn_enter. Returns -1 when c is gone (it was closed meanwhile), else 0. */
static int conn_leave(struct h2up_conn *c)
{
    CUT_ASSERT(c->busy > 0);
    if (--c->busy == 0 && c->closed) {
        conn_free(c);
        return -1;
    }
    return c->closed ? -1 : 0;
}

static void arm_conn(struct h2up_conn *c, unsigned ms)
{
    ltimer_arm(&c->tmo, ms, c->w);
}

/* The connection carries no stream: close it after the idle time. (A dead one is being
 * closed by conn_fail already.) */
static void maybe_idle(struct h2up_conn *c)
{
    if (c->nstreams == 0 && c->connected && !c->dead) {
        /* A whole exchange is done: TLS 1.3 tickets have arrived, keep the session for the
         * endpoint's next connection. */
        if (c->ep->tls && !c->session_saved && c->io_live && c->io.ssl) {
            void *sess = tls_ssl_take_session(c->io.ssl);
            if (sess) {
                if (c->ep->tls_session)
                    tls_session_free(c->ep->tls_session);
                c->ep->tls_session = sess;
            }
            c->session_saved = 1;
        }
        arm_conn(c, c->idle_ms);
    }
}

static void schedule(struct h2up_conn *c)
{
    if (c->run && !c->dead)
        event_active(c->run, EV_WRITE, 1);
}

/* Frees st; its connection, left without streams, starts its idle time (whichever path freed
 * the last stream: an answer, a cancel whose RST_STREAM went out, a timeout). */
static void stream_obj_free(struct h2up_stream *st)
{
    struct h2up_conn *c = st->c;
    if (c) {
        CUT_LIST_REMOVE(&c->streams, st, next, prev);
        c->nstreams--;
        if (c->ng && st->id > 0)
            nghttp2_session_set_stream_user_data(c->ng, st->id, NULL);
    }
    ltimer_dispose(&st->tmo);
    if (st->tmp)
        evbuffer_free(st->tmp);
    if (st->sent)
        evbuffer_free(st->sent);
    fields_head_dispose(&st->head);
    if (st->names != st->names_inline)
        free(st->names);
    free(st);
    if (c)
        maybe_idle(c);
}

/* ---- borrowed request bytes ---------------------------------------------------------------
 *
 * submit() hands nghttp2 the request's names and values without copies. nghttp2 keeps only the
 * pointers (nghttp2_nv_array_copy with both NO_COPY flags copies the nghttp2_nv array, not the
 * bytes) and reads the bytes once, when it packs the HEADERS (session_prep_frame, inside
 * nghttp2_session_mem_send). Until then the frame waits in the session's ob_syn queue: a
 * turn of the loop at least (submit only schedules the send), longer when the socket output is
 * full (pump) or the peer's stream limit is reached. The bytes belong to s (s->head, freed by
 * stream_free) and to st (names), so neither may go while the frame waits with them:
 *
 * - Whichever way st lets go of s (unhook: a detach, a failure, a retry elsewhere) while its
 *   HEADERS waits, it first cancels it with RST_STREAM. In nghttp2 1.52 an RST_STREAM for a
 *   stream whose request HEADERS is still in ob_syn only marks that item canceled
 *   (nghttp2_session_add_rst_stream: it allocates nothing then, so it cannot fail); when the
 *   item comes up, session_prep_frame opens the stream, finds it canceled
 *   (session_predicate_request_headers_send) before it estimates or packs anything, and closes
 *   it again (on_stream_close, with whatever stream user data is left: NULL once st is freed).
 *   The bytes are never read, so s and st may go right after. Nothing goes on the wire for a
 *   canceled request, so no second RST_STREAM may follow (a reset of a stream the peer never
 *   saw is a connection error): see on_stream_timeout.
 * - nghttp2_session_del frees queued items without reading them either, so a connection that
 *   dies (conn_fail) needs nothing more.
 * - "Waits" is c->hd_out_id < st->id: request HEADERS leave ob_syn in stream id order, and
 *   before_frame_send (right after packing) and on_stream_close (a stream closes only after its
 *   HEADERS was packed or dropped) move hd_out_id forward. */
static int headers_waiting(const struct h2up_stream *st)
{
    return st->id > st->c->hd_out_id && st->c->ng;
}

/* Detaches the stream.c side (both forget each other). A request HEADERS still waiting to be
 * packed is canceled (see "borrowed request bytes"). DATA received while the client was
 * paused and not yet returned to the windows is returned now: nobody will resume it, and the
 * connection window is shared by every stream. */
static struct stream *unhook(struct h2up_stream *st)
{
    struct stream *s = st->s;
    st->s = NULL;
    if (s && st->c && headers_waiting(st))
        nghttp2_submit_rst_stream(st->c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    if (st->unconsumed && st->c && st->c->ng && st->id > 0) {
        nghttp2_session_consume(st->c->ng, st->id, st->unconsumed);
        st->unconsumed = 0;
        schedule(st->c); /* WINDOW_UPDATE */
    }
    ltimer_stop(&st->tmo);
    if (s)
        s->up = NULL;
    return s;
}

/* Fails one stream: it goes back to stream.c with err. how: 0 (not retryable), FAIL_CONNECT
 * (the connection never came up: nothing was sent), FAIL_UNPROCESSED (the upstream refused it
 * or it was above a GOAWAY's last stream id). */
#define FAIL_CONNECT 1
#define FAIL_UNPROCESSED 2
#define FAIL_STALE 3 /* the connection died before any response byte: idempotent retry once */
static void stream_fail(struct h2up_stream *st, int err, int how)
{
    if (how == FAIL_UNPROCESSED && st->s && st->s->req_body_sent_any) {
        /* Put the body already sent back in front of what is still waiting, so the retry
         * sends all of it; a body too large to have been kept cannot go again. */
        if (st->sent_overflow || evbuffer_prepend_buffer(st->s->req_body, st->sent) != 0)
            how = 0;
        else
            st->s->req_body_sent_any = 0;
    }
    struct stream *s = unhook(st);
    stream_obj_free(st);
    if (!s)
        return;
    if (how == FAIL_CONNECT)
        stream_on_upstream_error(s, err, 1, 1);
    else if (how == FAIL_UNPROCESSED)
        stream_on_upstream_error(s, err, STREAM_RETRY_UNPROCESSED, 0);
    else if (how == FAIL_STALE)
        stream_on_upstream_error(s, err, 1, 0);
    else
        stream_on_upstream_error(s, err, 0, 0);
}

/* The connection is unusable: fail every stream on it, then close it. Failing a stream calls
 * stream.c, which may answer it, retry it elsewhere, and drop the pin that kept ep's snapshot
 * (upstream_h2_close_idle); c is held meanwhile. c is gone afterwards unless the caller holds it. */
static void conn_fail(struct h2up_conn *c, int err, int connect_phase)
{
    conn_enter(c);
    c->dead = 1;
    while (c->streams) {
        struct h2up_stream *st = c->streams;
        /* Streams on a connection that never came up were not sent; streams never submitted
         * on a live one were not processed. */
        stream_fail(st, err,
                    connect_phase     ? FAIL_CONNECT
                    : st->id == 0     ? FAIL_UNPROCESSED
                    : !st->got_bytes  ? FAIL_STALE
                                      : 0);
    }
    conn_close(c);
    conn_leave(c);
}

/* ---- sending ---------------------------------------------------------------------------------- */

/* Moves nghttp2's pending frames to the socket (at most H2UP_OUT_CAP queued). Returns -1 when
 * the session failed (c is closed: gone unless the caller holds it). */
static int pump(struct h2up_conn *c)
{
    if (!c->ng || c->dead)
        return 0;
    while (io_pending(&c->io) < H2UP_OUT_CAP) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->ng, &data);
        if (n < 0) {
            conn_fail(c, CUT_EPROTO, 0);
            return -1;
        }
        if (n == 0)
            break;
        evbuffer_add(c->io.out, data, (size_t)n);
    }
    io_mark(&c->io);
    if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng) &&
        io_pending(&c->io) == 0) {
        conn_fail(c, CUT_ECONN, 0);
        return -1;
    }
    return 0;
}

static void on_run(evutil_socket_t fd, short what, void *arg)
{
    struct h2up_conn *c = arg;
    struct io_loop *l = &c->w->iol;
    (void)fd;
    (void)what;
    conn_enter(c);
    pump(c);
    io_loop_flush(l); /* may report c's socket failed: c is held */
    conn_leave(c);
}

/* Request body from s->req_body, as DATA frames written without copies: body_read says how
 * much the next frame carries (NGHTTP2_DATA_FLAG_NO_COPY), send_data moves it. nghttp2 calls
 * send_data right after body_read in the same nghttp2_session_mem_send, with nothing of ours
 * in between, and send_data never answers NGHTTP2_ERR_WOULDBLOCK: so s->req_body still holds
 * the bytes, and no DATA item stays half sent in nghttp2 across calls (it would outlive st
 * when the stream fails). */
static ssize_t body_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *arg)
{
    (void)ng;
    (void)id;
    (void)buf;
    (void)arg;
    struct h2up_stream *st = src->ptr;
    struct stream *s = st->s;
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* detached: RST_STREAM follows */
    size_t have = evbuffer_get_length(s->req_body);
    if (have == 0 && !s->req_done) {
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = have < len ? have : len;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (s->req_done && n == have)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Writes one DATA frame of st's body straight to the socket output: the frame header nghttp2
 * made, then len bytes moved out of s->req_body (and padding, which cutover never asks for).
 * The first H2UP_REPLAY_MAX bytes are also kept in st->sent for a resend. Past H2UP_OUT_CAP
 * of output, nghttp2_session_mem_send returns (NGHTTP2_ERR_PAUSE) so that pump stops. */
static int send_data(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *framehd, size_t len,
                     nghttp2_data_source *src, void *arg)
{
    (void)ng;
    struct h2up_conn *c = arg;
    struct h2up_stream *st = src->ptr;
    struct stream *s = st->s;
    CUT_ASSERT(s && evbuffer_get_length(s->req_body) >= len); /* as body_read just saw */
    if (len) { /* the replay copy first: the payload is moved out below */
        if (!st->sent_overflow && evbuffer_get_length(st->sent) + len <= H2UP_REPLAY_MAX) {
            struct evbuffer_iovec v;
            if (evbuffer_reserve_space(st->sent, (ev_ssize_t)len, &v, 1) != 1 ||
                evbuffer_copyout(s->req_body, v.iov_base, len) != (ev_ssize_t)len)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
            v.iov_len = len;
            evbuffer_commit_space(st->sent, &v, 1);
        } else {
            st->sent_overflow = 1;
        }
        s->req_body_sent_any = 1;
    }
    if (h2_data_write(c->io.out, framehd, f->data.padlen, s->req_body, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return io_pending(&c->io) >= H2UP_OUT_CAP ? NGHTTP2_ERR_PAUSE : 0;
}

/* Names and values are borrowed until the HEADERS is packed (see "borrowed request bytes"). */
static nghttp2_nv nv_make(const char *name, size_t nl, const char *value, size_t vl)
{
    return (nghttp2_nv){(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, nl, vl,
                        NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

/* A field whose value is new on every request (cutover's X-Request-Id, a trace context):
 * entering it in the HPACK dynamic table would only evict the fields that do repeat (and cost
 * an insertion and an eviction per request), so it is sent as a literal never indexed. */
static int unique_value(const char *lower, size_t n)
{
    return (n == 12 && memcmp(lower, "x-request-id", 12) == 0) ||
           (n == 11 && memcmp(lower, "traceparent", 11) == 0);
}

/* Sends the request of st, built from the stream's forwarded request (s->fwd), and its body
 * provider. Fields: every one written for the upstream except Host (sent as :authority),
 * hop-by-hop ones (Transfer-Encoding, Connection, Upgrade), connection-specific ones and te;
 * names in lower case. nghttp2 copies neither names nor values: values point into s->head,
 * names into st->names, and both stay until the HEADERS is packed or canceled (see "borrowed
 * request bytes"). Called once per st. */
static int submit(struct h2up_stream *st)
{
    struct h2up_conn *c = st->c;
    struct stream *s = st->s;
    const struct http_req *r = &s->fwd;
    if (!r->fields || !http_path_ok(r->path))
        return CUT_EPROTO;
    CUT_ASSERT(st->id == 0 && !st->names);
    size_t names = 0;
    for (unsigned i = 0; i < r->nfields; i++)
        names += r->fields[i].name.n;
    st->names = names <= sizeof st->names_inline ? st->names_inline : malloc(names);
    size_t nv_bytes = (r->nfields + 5) * sizeof(nghttp2_nv);
    _Alignas(nghttp2_nv) char small[2048]; /* the usual request head: no allocation (nghttp2
                                            * copies the array itself) */
    nghttp2_nv *nv = nv_bytes <= sizeof small ? (nghttp2_nv *)small : malloc(nv_bytes);
    if (!nv || !st->names) {
        if ((char *)nv != small)
            free(nv);
        return CUT_ENOMEM; /* st->names goes with st */
    }
    char *lower = st->names;
    int rc = CUT_EPROTO;
    size_t n = 0;
    nv[n++] = nv_make(":method", 7, r->method.p, r->method.n);
    nv[n++] = nv_make(":scheme", 7, c->ep->tls ? "https" : "http", c->ep->tls ? 5 : 4);
    nv[n++] = nv_make(":path", 5, r->path.p, r->path.n);
    size_t auth = n++;
    nv[auth] = nv_make(":authority", 10, "", 0);
    for (unsigned i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        /* The rules of the HTTP/1.1 text these fields were once sent as, still applied. */
        if (!fields_value_ok(f->value))
            goto out;
        struct cut_slice v = fields_value_trim(f->value);
        if (f->id == H1_HDR_HOST) {
            nv[auth] = nv_make(":authority", 10, v.p, v.n);
            continue;
        }
        if ((f->flags & H1_HF_HOP) || fields_conn_specific(f->name) ||
            cut_slice_ieq(f->name, "te"))
            continue;
        cut_lower_copy(lower, f->name.p, f->name.n);
        nv[n] = nv_make(lower, f->name.n, v.p, v.n);
        if (unique_value(lower, f->name.n))
            nv[n].flags |= NGHTTP2_NV_FLAG_NO_INDEX;
        n++;
        lower += f->name.n;
    }
    if (s->te_trailers)
        nv[n++] = nv_make("te", 2, "trailers", 8);
    nghttp2_data_provider prov = {.source.ptr = st, .read_callback = body_read};
    int32_t id = nghttp2_submit_request(c->ng, NULL, nv, n,
                                        s->req_framing == HTTP_BODY_NONE ? NULL : &prov, st);
    if (id < 0) {
        rc = id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? CUT_ECONN : CUT_ENOMEM;
        goto out;
    }
    st->id = id;
    rc = 0;
out:
    if ((char *)nv != small)
        free(nv);
    return rc;
}

/* ---- receiving -------------------------------------------------------------------------------- */

static void on_stream_timeout(evutil_socket_t fd, short what, void *arg);

static struct h2up_stream *stream_of(struct h2up_conn *c, int32_t id)
{
    return nghttp2_session_get_stream_user_data(c->ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *arg)
{
    (void)ng;
    struct h2up_stream *st = stream_of(arg, f->hd.stream_id);
    if (!st)
        return 0;
    st->got_bytes = 1;
    fields_head_dispose(&st->head);
    fields_head_init(&st->head, st->max_header_bytes, CUT_MAX_FIELDS);
    st->in_trailers = st->head_done;
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *arg)
{
    (void)ng;
    (void)flags;
    struct h2up_stream *st = stream_of(arg, f->hd.stream_id);
    if (!st || !st->s)
        return 0;
    if (fields_head_add(&st->head, (const char *)name, nl, (const char *)value, vl) == CUT_ENOMEM)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

/* st's response is invalid (for cutover): that stream is reset and answered 502; the other
 * streams of the connection carry on. (A non-zero return from on_frame_recv would be fatal to
 * the whole session.) */
static void stream_reject(struct h2up_stream *st)
{
    nghttp2_submit_rst_stream(st->c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
    stream_fail(st, CUT_EPROTO, 0);
}

/* The response head (or an interim one) arrived. */
static int deliver_head(struct h2up_stream *st, int end_stream)
{
    struct stream *s = st->s;
    struct http_resp resp;
    if (fields_head_response(&st->head, end_stream, s->head_method_head, &resp) != 0) {
        stream_reject(st);
        return 0;
    }
    if (resp.status < 200) {
        if (resp.status != 101)
            stream_on_upstream_head(s, &resp); /* relayed; the final head follows */
        fields_head_dispose(&st->head);
        return 0;
    }
    st->head_done = 1;
    ltimer_stop(&st->tmo);
    if (!end_stream && !st->grpc)
        ltimer_arm(&st->tmo, s->pin->snap->cfg->timeouts.body_idle, st->c->w);
    stream_on_upstream_head(s, &resp);
    fields_head_dispose(&st->head);
    if (st->s && end_stream) {
        struct stream *done = unhook(st);
        stream_on_upstream_end(done, NULL, 0);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *arg)
{
    (void)ng;
    struct h2up_conn *c = arg;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = 1; /* nghttp2 closes the streams above last_stream_id (REFUSED_STREAM) */
        return 0;
    }
    struct h2up_stream *st = f->hd.stream_id ? stream_of(c, f->hd.stream_id) : NULL;
    if (!st || !st->s)
        return 0;
    int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS) {
        if (!st->in_trailers)
            return deliver_head(st, end);
        /* Trailers (gRPC's grpc-status): regular fields only, passed on at the end. */
        unsigned n = 0;
        if (!end || fields_head_trailers(&st->head, &n) < 0) {
            stream_reject(st);
            return 0;
        }
        struct stream *s = unhook(st);
        stream_on_upstream_end(s, st->head.fields, n);
        return 0;
    }
    if (f->hd.type == NGHTTP2_DATA && end && st->head_done) {
        struct stream *s = unhook(st);
        stream_on_upstream_end(s, NULL, 0);
    }
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *arg)
{
    (void)flags;
    struct h2up_conn *c = arg;
    struct h2up_stream *st = stream_of(c, id);
    if (!st || !st->s || !st->head_done) {
        nghttp2_session_consume(ng, id, len);
        return 0;
    }
    if (!st->grpc)
        ltimer_arm(&st->tmo, st->s->pin->snap->cfg->timeouts.body_idle, c->w);
    evbuffer_add(st->tmp, data, len);
    st->unconsumed += len;
    stream_on_upstream_body(st->s, st->tmp);
    evbuffer_drain(st->tmp, evbuffer_get_length(st->tmp));
    if (!st->paused) {
        nghttp2_session_consume(ng, id, st->unconsumed);
        st->unconsumed = 0;
    }
    return 0;
}

/* nghttp2 has just packed a frame; for a request HEADERS, the borrowed bytes are read. */
static int before_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *arg)
{
    (void)ng;
    struct h2up_conn *c = arg;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST &&
        f->hd.stream_id > c->hd_out_id)
        c->hd_out_id = f->hd.stream_id;
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *arg)
{
    (void)ng;
    struct h2up_conn *c = arg;
    if (id > c->hd_out_id) /* its HEADERS was dropped (canceled, refused): not waiting now */
        c->hd_out_id = id;
    struct h2up_stream *st = stream_of(c, id);
    if (!st)
        return 0;
    if (!st->s) { /* finished or detached */
        stream_obj_free(st);
        return 0;
    }
    /* Closed before the exchange completed. REFUSED_STREAM (also what nghttp2 reports for the
     * streams a GOAWAY left out) means the upstream never processed it: retry elsewhere. */
    int unprocessed = code == NGHTTP2_REFUSED_STREAM;
    stream_fail(st, code == NGHTTP2_NO_ERROR || unprocessed ? CUT_ECONN : CUT_EPROTO,
                unprocessed ? FAIL_UNPROCESSED : 0);
    return 0;
}

/* ---- socket events -------------------------------------------------------------------------- */

static void on_read(struct io *io, void *arg)
{
    struct h2up_conn *c = arg;
    struct evbuffer *in = io->in;
    if (c->closed || !c->ng || evbuffer_get_length(in) == 0)
        return;
    conn_enter(c);
    /* Feed the input chunk by chunk, without copying it together. The callbacks may close c
     * (see conn_close): then the rest of the input is dropped. */
    struct evbuffer_iovec v[8];
    int nv;
    while (!c->closed && (nv = evbuffer_peek(in, -1, NULL, v, 8)) > 0) {
        size_t used = 0;
        for (int i = 0; i < nv && i < 8 && !c->closed; i++) {
            ssize_t n = nghttp2_session_mem_recv(c->ng, v[i].iov_base, v[i].iov_len);
            if (n < 0) {
                conn_fail(c, CUT_EPROTO, 0);
                conn_leave(c);
                return;
            }
            used += (size_t)n;
        }
        evbuffer_drain(in, used);
        if (nv <= 8)
            break;
    }
    if (!c->closed && pump(c) == 0)
        maybe_idle(c);
    conn_leave(c);
}

static void on_drain(struct io *io, void *arg)
{
    struct h2up_conn *c = arg;
    (void)io;
    if (c->closed)
        return;
    conn_enter(c);
    if (pump(c) < 0) {
        conn_leave(c);
        return;
    }
    /* The body provider may take more: let the clients send more request body. */
    for (struct h2up_stream *st = c->streams, *next; st && !c->closed; st = next) {
        next = st->next;
        if (st->s && !st->s->req_done)
            stream_on_upstream_drained(st->s);
    }
    conn_leave(c);
}

static int start_session(struct h2up_conn *c)
{
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    int ok = nghttp2_session_callbacks_new(&cbs) == 0 && nghttp2_option_new(&opt) == 0;
    if (ok) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        nghttp2_session_callbacks_set_before_frame_send_callback(cbs, before_frame_send);
        nghttp2_session_callbacks_set_send_data_callback(cbs, send_data);
        nghttp2_option_set_no_auto_window_update(opt, 1);
        nghttp2_option_set_peer_max_concurrent_streams(opt, H2UP_DEFAULT_MAX_STREAMS);
        ok = nghttp2_session_client_new2(&c->ng, cbs, c, opt) == 0;
    }
    if (cbs)
        nghttp2_session_callbacks_del(cbs);
    if (opt)
        nghttp2_option_del(opt);
    if (!ok)
        return CUT_ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2UP_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->max_header_bytes},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, CUT_ARRAY_LEN(iv)) != 0 ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, H2UP_CONN_WINDOW) != 0)
        return CUT_ENOMEM;
    return 0;
}

static void on_event(struct io *io, int what, void *arg)
{
    struct h2up_conn *c = arg;
    if (c->closed)
        return; /* closed up the stack: its socket's news changes nothing */
    conn_enter(c);
    if (what & IO_CONNECTED) {
        const char *alpn = io_is_tls(io) ? io_alpn(io) : "h2";
        if (!alpn || strcmp(alpn, "h2") != 0 || start_session(c) < 0) {
            conn_fail(c, CUT_EPROTO, 1); /* the upstream does not speak HTTP/2 over TLS */
            conn_leave(c);
            return;
        }
        c->connected = 1;
        ltimer_stop(&c->tmo);
        /* A failed stream may be retried on c itself (pushed in front: not visited) or close
         * c (a snapshot released): stop then. */
        for (struct h2up_stream *st = c->streams, *next; st && !c->closed; st = next) {
            next = st->next;
            int rc = submit(st);
            if (rc < 0)
                stream_fail(st, rc == CUT_ECONN ? CUT_ECONN : CUT_EPROTO,
                            rc == CUT_ECONN ? FAIL_UNPROCESSED : 0);
        }
        if (!c->closed && pump(c) == 0)
            maybe_idle(c);
        conn_leave(c);
        return;
    }
    if (!c->connected) {
        if (c->ep->tls && io->err == EPROTO) {
            upstream_tls_failed_event(c->w, c->ep, io);
            conn_fail(c, CUT_ETLS, 1);
        }
        else
            conn_fail(c, (what & IO_TIMEOUT) ? CUT_ETIMEDOUT : CUT_ECONN, 1);
    } else {
        conn_fail(c, (what & IO_TIMEOUT) ? CUT_ETIMEDOUT : CUT_ECONN, 0);
    }
    conn_leave(c);
}

static void on_conn_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct h2up_conn *c = arg;
    struct io_loop *l = &c->w->iol;
    (void)fd;
    (void)what;
    conn_enter(c);
    if (!c->connected) {
        conn_fail(c, CUT_ETIMEDOUT, 1);
    } else if (c->nstreams == 0) {
        if (c->ng) /* a polite GOAWAY; the socket closes right after */
            nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
        /* Writing the GOAWAY can fail the connection from inside the flush: its drain callback
         * finds the session over (pump -> conn_fail), or the socket reports an error. c is held
         * until here, and closing it twice is harmless. */
        pump(c);
        io_loop_flush(l);
        conn_close(c);
    } else {
        io_loop_flush(l);
    }
    conn_leave(c);
}

static void on_stream_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct h2up_stream *st = arg;
    struct h2up_conn *c = st->c;
    struct io_loop *l = &c->w->iol;
    (void)fd;
    (void)what;
    conn_enter(c);
    /* A request still waiting to be packed is canceled by stream_fail (unhook) instead. */
    if (st->id > 0 && c->ng && !headers_waiting(st))
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    stream_fail(st, CUT_ETIMEDOUT, 0); /* the answer may release a snapshot: c is held */
    schedule(c);
    io_loop_flush(l);
    conn_leave(c);
}

/* ---- opening ---------------------------------------------------------------------------------- */

static struct h2up_conn *conn_new(struct worker *w, struct upstream_ep *ep, struct stream *s)
{
    const struct cfg *cfg = s->pin->snap->cfg;
    struct h2up_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->w = w;
    c->ep = ep;
    c->connect_ms = cfg->timeouts.upstream_connect;
    c->idle_ms = cfg->timeouts.upstream_idle;
    c->max_header_bytes = (uint32_t)cfg->limits.max_header_bytes;
    CUT_LIST_PUSH(&ep->h2conns, c, next, prev);
    c->linked = 1;
    ep->nconns++;
    c->run = event_new(w->base, -1, 0, on_run, c);
    ltimer_init(&c->tmo, w->base, on_conn_timeout, c);
    if (!c->run ||
        io_connect(&c->io, &w->iol, (struct sockaddr *)&ep->addr, ep->addrlen, on_read, on_drain,
                   on_event, c) < 0) {
        conn_close(c);
        return NULL;
    }
    c->io_live = 1;
    c->io.drain_mark = H2UP_OUT_CAP / 2;
    if (ep->tls) {
        struct tls_client *tc = s->pin->snap->routes[s->route].pools[s->pool].tls;
        SSL *ssl = tc ? tls_client_ssl_new(tc, ep->host, ep->tls_session) : NULL;
        if (!ssl || io_tls_connect(&c->io, ssl) < 0) {
            tls_ssl_free(ssl);
            conn_close(c);
            return NULL;
        }
    }
    arm_conn(c, c->connect_ms);
    return c;
}

/* A connection with room for one more stream, or NULL. */
static struct h2up_conn *conn_with_room(struct upstream_ep *ep)
{
    for (struct h2up_conn *c = ep->h2conns; c; c = c->next) {
        if (c->goaway || c->dead)
            continue;
        uint32_t max = c->ng ? nghttp2_session_get_remote_settings(
                                   c->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
                             : H2UP_DEFAULT_MAX_STREAMS;
        if (c->ng && !nghttp2_session_check_request_allowed(c->ng))
            continue;
        if (c->nstreams < max)
            return c;
    }
    return NULL;
}

static const struct upstream_ops h2_ops;

struct upstream *upstream_h2_open(struct worker *w, struct upstream_ep *ep, struct stream *s)
{
    if (s->upgrade)
        return NULL; /* no Upgrade over HTTP/2 (RFC 9113 section 8.6): answered as a failure */
    struct h2up_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->base.ops = &h2_ops;
    st->s = s;
    st->tmp = evbuffer_new();
    st->sent = evbuffer_new();
    ltimer_init(&st->tmo, w->base, on_stream_timeout, st);
    st->grpc = s->grpc;
    st->max_header_bytes = s->pin->snap->cfg->limits.max_header_bytes;
    if (!st->tmp || !st->sent) {
        stream_obj_free(st);
        return NULL;
    }
    struct h2up_conn *c = conn_with_room(ep);
    if (!c && !(c = conn_new(w, ep, s))) {
        stream_obj_free(st);
        return NULL;
    }
    st->c = c;
    CUT_LIST_PUSH(&c->streams, st, next, prev);
    c->nstreams++;
    s->up = &st->base;
    if (c->connected) {
        ltimer_stop(&c->tmo); /* not idle any more */
        if (submit(st) < 0) {
            unhook(st);
            stream_obj_free(st);
            maybe_idle(c);
            return NULL;
        }
        schedule(c);
    }
    ltimer_arm(&st->tmo, s->pin->snap->cfg->timeouts.upstream_header, w);
    return s->up;
}

/* ---- operations from stream.c (struct upstream_ops) ---------------------------------------- */

static struct h2up_stream *as_stream(const struct upstream *u)
{
    return (struct h2up_stream *)(uintptr_t)(const void *)u;
}

static void op_send(struct upstream *x)
{
    struct h2up_stream *st = as_stream(x);
    if (st->deferred && st->id > 0 && st->c->ng) {
        st->deferred = 0;
        nghttp2_session_resume_data(st->c->ng, st->id);
    }
    schedule(st->c);
}

static void op_pause(struct upstream *x)
{
    as_stream(x)->paused = 1;
}

static void op_resume(struct upstream *x)
{
    struct h2up_stream *st = as_stream(x);
    if (!st->paused)
        return;
    st->paused = 0;
    if (st->unconsumed && st->id > 0 && st->c->ng) {
        nghttp2_session_consume(st->c->ng, st->id, st->unconsumed);
        st->unconsumed = 0;
        schedule(st->c); /* WINDOW_UPDATE */
    }
}

static void op_detach(struct upstream *x)
{
    struct h2up_stream *st = as_stream(x);
    struct h2up_conn *c = st->c;
    unhook(st);
    if (st->id > 0 && c->ng && nghttp2_session_get_stream_user_data(c->ng, st->id)) {
        /* Still open: cancel it; its object goes when nghttp2 reports the close. */
        ltimer_stop(&st->tmo);
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        schedule(c);
        return;
    }
    stream_obj_free(st);
    maybe_idle(c);
}

static size_t op_pending(const struct upstream *x)
{
    const struct h2up_stream *st = as_stream(x);
    return io_pending(&st->c->io);
}

static const struct upstream_ops h2_ops = {
    .send = op_send,
    .pause = op_pause,
    .resume = op_resume,
    .detach = op_detach,
    .pending = op_pending,
};

void upstream_h2_close_idle(struct upstream_ep *ep)
{
    /* A connection being failed (dead) is closed by conn_fail itself; a closed one is off the
     * list. Closing c frees at most c (ep is kept by the caller's reference). */
    struct h2up_conn *c = ep->h2conns;
    while (c) {
        struct h2up_conn *next = c->next;
        if (c->nstreams == 0 && !c->dead)
            conn_close(c);
        c = next;
    }
}

/* upstream_h1.c - HTTP/1.1 client connections to upstreams (see upstream_h1.h). */
#include "proxy/relay/upstream_h1.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/cut.h"
#include "core/list.h"
#include "proxy/http/chunked.h"
#include "proxy/http/h1_parse.h"
#include "proxy/http/http.h"
#include "proxy/net/io.h"
#include "proxy/net/tls.h"
#include "proxy/relay/stream.h"
#include "proxy/relay/timer.h"
#include "proxy/relay/upstream.h"
#include "proxy/relay/worker.h"

#define UC_MAX_INTERIM 8   /* 1xx responses relayed per exchange */

enum uc_state {
    UC_CONNECTING = 0,
    UC_WAIT_HEAD,   /* request (being) sent, waiting for the response head */
    UC_BODY,        /* reading the response body */
    UC_TUNNEL,
    UC_IDLE         /* in the pool */
};


struct upstream_conn {
    struct upstream base; /* first: the stream's handle (s->up) */
    struct worker *w;
    struct upstream_ep *ep;
    struct stream *s;
    struct io io;
    int io_live;         /* io holds a socket */
    struct ltimer tmo;
    struct upstream_conn *inext, *iprev; /* idle list */
    enum uc_state state;
    int reused;
    int session_saved;   /* this connection's TLS session was offered to the endpoint */
    int got_bytes;       /* a byte of the response arrived */
    int req_chunked;     /* the request body is sent with chunked framing */
    int req_finished;    /* the whole request has been queued */
    int paused;
    int keep_alive;
    int method_head;
    unsigned interim;    /* 1xx responses seen in this exchange */
    enum h1_body body;
    uint64_t remaining;  /* body bytes left (LENGTH) or in the current chunk */
    struct chunked chunk;
    unsigned body_idle_ms, header_ms, idle_ms, connect_ms;
    struct evbuffer *tmp; /* decoded body handed to the stream */
};

static const struct upstream_ops h1_ops;

/* ---- connections --------------------------------------------------------------------------- */

static void idle_unlink(struct upstream_conn *c)
{
    CUT_LIST_REMOVE(&c->ep->idle, c, inext, iprev);
    c->ep->nidle--;
}

static void conn_close(struct upstream_conn *c)
{
    if (c->state == UC_IDLE)
        idle_unlink(c);
    struct upstream_ep *ep = c->ep;
    ep->nconns--;
    ltimer_dispose(&c->tmo);
    if (c->io_live)
        io_dispose(&c->io);
    if (c->tmp)
        evbuffer_free(c->tmp);
    struct worker *w = c->w;
    free(c);
    upstream_slot_freed(ep); /* a waiting request may open one in its place */
    upstream_ep_release(&w->ups, ep);
}

static void arm(struct upstream_conn *c, unsigned ms)
{
    ltimer_arm(&c->tmo, ms, c->w);
}

/* Detaches the stream from c (both sides forget each other). */
static struct stream *unhook(struct upstream_conn *c)
{
    struct stream *s = c->s;
    c->s = NULL;
    if (s)
        s->up = NULL;
    return s;
}

static void fail(struct upstream_conn *c, int err, int retryable, int connect_phase)
{
    struct stream *s = unhook(c);
    conn_close(c);
    if (s)
        stream_on_upstream_error(s, err, retryable, connect_phase);
}

/* Queues request body from the stream, framed as the request head announced. */
static void send_body(struct upstream_conn *c)
{
    struct stream *s = c->s;
    struct evbuffer *out = c->io.out;
    size_t n = evbuffer_get_length(s->req_body);
    if (n > 0) {
        if (c->req_chunked)
            evbuffer_add_printf(out, "%zx\r\n", n);
        evbuffer_add_buffer(out, s->req_body);
        if (c->req_chunked)
            evbuffer_add(out, "\r\n", 2);
        s->req_body_sent_any = 1;
    }
    if (s->req_done && !c->req_finished) {
        if (c->req_chunked)
            evbuffer_add(out, "0\r\n\r\n", 5);
        c->req_finished = 1;
    }
    io_mark(&c->io);
    /* Waiting for the response head starts when the request is complete; until then the body
     * must keep moving. */
    if (c->state == UC_WAIT_HEAD)
        arm(c, c->req_finished ? c->header_ms : c->body_idle_ms);
}

static void send_request(struct upstream_conn *c)
{
    struct stream *s = c->s;
    struct evbuffer *out = c->io.out;
    evbuffer_add(out, s->head, s->head_len);
    c->req_chunked = s->req_framing == HTTP_BODY_STREAM;
    c->req_finished = 0;
    c->state = UC_WAIT_HEAD;
    c->got_bytes = 0;
    c->interim = 0;
    c->method_head = s->head_method_head;
    if (s->req_framing == HTTP_BODY_NONE)
        c->req_finished = 1;
    send_body(c); /* queues the body there is, marks the output, arms the timer */
}

/* A finished exchange: back to the pool when the connection can carry another, else closed. */
static void pool_or_close(struct upstream_conn *c, int reusable)
{
    const struct cfg *cfg = c->w->pins.current ? c->w->pins.current->snap->cfg : NULL;
    unsigned limit = cfg ? cfg->limits.upstream_idle_per_endpoint : 0;
    if (reusable && c->ep->tls && !c->session_saved) {
        /* After a whole exchange the TLS 1.3 tickets have arrived: keep the session for the
         * next connection's resumption. */
        void *sess = tls_ssl_take_session(c->io.ssl);
        if (sess) {
            if (c->ep->tls_session)
                tls_session_free(c->ep->tls_session);
            c->ep->tls_session = sess;
        }
        c->session_saved = 1;
    }
    /* Kept beyond the idle limit when a request waits for it (upstream_wait). */
    if (!reusable || evbuffer_get_length(c->io.in) > 0 || c->w->stopping ||
        (c->ep->nidle >= limit && !c->ep->qhead) || c->ep->refs == 0) {
        conn_close(c);
        return;
    }
    c->state = UC_IDLE;
    c->reused = 1;
    c->paused = 0;
    CUT_LIST_PUSH(&c->ep->idle, c, inext, iprev);
    c->ep->nidle++;
    io_resume_read(&c->io);
    arm(c, c->idle_ms);
    upstream_slot_freed(c->ep);
}

static void finish_response(struct upstream_conn *c, const struct http_field *trailers,
                            unsigned ntrailers, size_t trailer_bytes)
{
    struct stream *s = unhook(c);
    int reusable = c->keep_alive && c->req_finished && c->state != UC_TUNNEL;
    if (ntrailers == 0) {
        /* Pool first, so that a pipelined request started by the callback can reuse it. */
        if (trailer_bytes)
            evbuffer_drain(c->io.in, trailer_bytes);
        pool_or_close(c, reusable);
        stream_on_upstream_end(s, NULL, 0);
        return;
    }
    stream_on_upstream_end(s, trailers, ntrailers); /* the trailers point into c's input */
    evbuffer_drain(c->io.in, trailer_bytes);
    pool_or_close(c, reusable);
}

/* Moves up to n body bytes from in to the stream. */
static void deliver(struct upstream_conn *c, struct evbuffer *in, size_t n)
{
    evbuffer_remove_buffer(in, c->tmp, n);
    stream_on_upstream_body(c->s, c->tmp);
    evbuffer_drain(c->tmp, evbuffer_get_length(c->tmp)); /* the stream took it; defensive */
}

struct parse_resp {
    const struct h1_limits *lim;
    struct cut_slice method;
    struct h1_response *r;
    struct http_field *fields;
    int *status;
};

static int parse_resp_fn(const char *p, size_t n, void *ctx)
{
    struct parse_resp *pr = ctx;
    return h1_parse_response(p, n, pr->lim, pr->method, pr->r, pr->fields, CUT_MAX_FIELDS,
                             pr->status);
}

/* Parses the response head; returns 1 when it progressed, 0 when more input is needed, -1 when
 * c is gone. */
static int read_head(struct upstream_conn *c, struct evbuffer *in)
{
    const struct cfg *cfg = c->s->pin->snap->cfg;
    struct h1_limits lim = {cfg->limits.max_header_bytes, cfg->limits.max_header_bytes,
                            cfg->limits.max_headers};
    struct http_field fields[CUT_MAX_FIELDS];
    struct h1_response r;
    int status = 0;
    struct parse_resp pr = {&lim, c->method_head ? CUT_SLICE_LIT("HEAD") : CUT_SLICE_LIT("GET"),
                            &r, fields, &status};
    int n = io_parse_front(in, lim.max_head + 1, parse_resp_fn, &pr);
    if (n == CUT_EAGAIN)
        return 0;
    if (n < 0) {
        fail(c, CUT_EPROTO, 0, 0);
        return -1;
    }
    struct http_resp resp = {
        .status = r.status,
        .reason = r.reason,
        .fields = fields,
        .nfields = r.nheaders,
        .content_length = r.content_length,
        .flags = (r.conn_flags & H1_CF_KEEP_ALIVE ? HTTP_RF_KEEP_ALIVE : 0) |
                 (r.conn_flags & H1_CF_UPGRADE ? HTTP_RF_UPGRADE : 0),
    };
    switch (r.body) {
    case H1_BODY_NONE: resp.framing = HTTP_BODY_NONE; break;
    case H1_BODY_LENGTH: resp.framing = HTTP_BODY_LENGTH; break;
    case H1_BODY_CHUNKED: resp.framing = HTTP_BODY_STREAM; break;
    default: resp.framing = HTTP_BODY_UNTIL_CLOSE; break;
    }
    struct stream *s = c->s;
    if (r.status >= 100 && r.status < 200 && r.status != 101) {
        if (++c->interim > UC_MAX_INTERIM) {
            fail(c, CUT_EPROTO, 0, 0);
            return -1;
        }
        stream_on_upstream_head(s, &resp); /* interim: relayed, then the real head follows */
        evbuffer_drain(in, (size_t)n);
        return c->s ? 1 : -1;
    }
    c->keep_alive = (r.conn_flags & H1_CF_KEEP_ALIVE) != 0;
    c->body = r.body;
    c->remaining = r.content_length;
    chunked_init(&c->chunk);
    if (r.status == 101) {
        if (!(r.conn_flags & H1_CF_UPGRADE) || !s->upgrade) {
            fail(c, CUT_EPROTO, 0, 0);
            return -1;
        }
        c->state = UC_TUNNEL;
        c->keep_alive = 0;
        ltimer_stop(&c->tmo);
        stream_on_upstream_head(s, &resp);
        evbuffer_drain(in, (size_t)n);
        /* Bytes the upstream sent right behind the 101 (a server-first protocol). */
        if (c->s && evbuffer_get_length(in) > 0)
            stream_on_upstream_body(c->s, in);
        return -1; /* the stream now owns both directions */
    }
    c->state = UC_BODY;
    stream_on_upstream_head(s, &resp);
    evbuffer_drain(in, (size_t)n);
    if (!c->s) /* the client went away while the head was written */
        return -1;
    if (c->body == H1_BODY_NONE || (c->body == H1_BODY_LENGTH && c->remaining == 0)) {
        finish_response(c, NULL, 0, 0);
        return -1;
    }
    arm(c, c->body_idle_ms);
    return 1;
}

/* Decodes body bytes. Returns 1 when it progressed, 0 when more input is needed, -1 when c is
 * gone or paused. */
static int read_body(struct upstream_conn *c, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    if (len == 0)
        return 0;
    switch (c->body) {
    case H1_BODY_LENGTH: {
        size_t n = len < c->remaining ? len : (size_t)c->remaining;
        c->remaining -= n;
        deliver(c, in, n);
        if (!c->s)
            return -1;
        if (c->remaining == 0) {
            finish_response(c, NULL, 0, 0);
            return -1;
        }
        return 0;
    }
    case H1_BODY_UNTIL_CLOSE:
        deliver(c, in, len);
        return c->s ? 0 : -1;
    case H1_BODY_CHUNKED:
        break;
    default:
        return 0;
    }
    const struct cfg *cfg = c->s->pin->snap->cfg;
    struct h1_limits lim = {cfg->limits.max_header_bytes, cfg->limits.max_header_bytes,
                            cfg->limits.max_headers};
    struct http_field tr[CUT_MAX_FIELDS];
    unsigned ntr = 0;
    size_t moved = 0, trailer_len = 0, framing = 0;
    int r = chunked_step(&c->chunk, in, c->tmp, &lim, tr, CUT_MAX_FIELDS, &ntr, &moved,
                         &trailer_len, &framing);
    if (r < 0) {
        struct stream *s = unhook(c);
        conn_close(c);
        stream_on_upstream_error(s, CUT_EPROTO, 0, 0);
        return -1;
    }
    if (r == CHUNKED_NEED_MORE)
        return 0;
    if (r == CHUNKED_MOVED) {
        stream_on_upstream_body(c->s, c->tmp);
        evbuffer_drain(c->tmp, evbuffer_get_length(c->tmp)); /* the stream took it */
        return c->s ? 1 : -1;
    }
    finish_response(c, tr, ntr, trailer_len);
    return -1;
}

static void on_read(struct io *io, void *arg)
{
    struct upstream_conn *c = arg;
    struct evbuffer *in = io->in;
    if (c->state == UC_IDLE || !c->s) {
        conn_close(c); /* a pooled connection must stay silent */
        return;
    }
    if (c->state == UC_TUNNEL) {
        stream_on_upstream_body(c->s, in);
        return;
    }
    c->got_bytes = 1;
    if (c->state == UC_BODY)
        arm(c, c->body_idle_ms); /* the body idle time counts from the last byte */
    for (;;) {
        int r;
        if (c->state == UC_WAIT_HEAD)
            r = read_head(c, in);
        else if (c->state == UC_BODY)
            r = read_body(c, in);
        else
            return;
        if (r <= 0)
            break;
    }
}

static void on_drain(struct io *io, void *arg)
{
    struct upstream_conn *c = arg;
    (void)io;
    if (!c->s)
        return;
    if (c->state == UC_TUNNEL) {
        stream_on_upstream_drained(c->s);
        return;
    }
    if (evbuffer_get_length(c->s->req_body) > 0 || (c->s->req_done && !c->req_finished))
        send_body(c);
    stream_on_upstream_drained(c->s);
}

static void on_event(struct io *io, int what, void *arg)
{
    struct upstream_conn *c = arg;
    (void)io;
    if (what & IO_CONNECTED) {
        if (c->s)
            send_request(c);
        return;
    }
    switch (c->state) {
    case UC_IDLE:
        conn_close(c);
        return;
    case UC_CONNECTING:
        if (c->ep->tls && c->io.err == EPROTO) {
            upstream_tls_failed_event(c->w, c->ep, &c->io);
            fail(c, CUT_ETLS, 1, 1);
        } else {
            fail(c, CUT_ECONN, 1, 1);
        }
        return;
    case UC_WAIT_HEAD: {
        /* Whatever arrived before the close may still hold a complete head. Closed before
         * any response byte: stream.c may send an idempotent request again (route.h). */
        if (!c->got_bytes && c->s && !(what & IO_TIMEOUT) && !c->s->req_body_sent_any)
            fail(c, CUT_ECONN, 1, 0);
        else
            fail(c, (what & IO_TIMEOUT) ? CUT_ETIMEDOUT : CUT_ECONN, 0, 0);
        return;
    }
    case UC_BODY:
        if (c->body == H1_BODY_UNTIL_CLOSE && (what & IO_EOF) && c->s) {
            struct evbuffer *in = c->io.in;
            if (evbuffer_get_length(in))
                deliver(c, in, evbuffer_get_length(in));
            if (c->s) {
                c->keep_alive = 0;
                finish_response(c, NULL, 0, 0);
            } else {
                conn_close(c);
            }
            return;
        }
        fail(c, (what & IO_TIMEOUT) ? CUT_ETIMEDOUT : CUT_ECONN, 0, 0);
        return;
    case UC_TUNNEL:
        fail(c, CUT_ECONN, 0, 0);
        return;
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct upstream_conn *c = arg;
    struct io_loop *l = &c->w->iol;
    (void)fd;
    (void)what;
    switch (c->state) {
    case UC_IDLE:
        conn_close(c);
        break;
    case UC_CONNECTING:
        fail(c, CUT_ETIMEDOUT, 1, 1);
        break;
    default:
        fail(c, CUT_ETIMEDOUT, 0, 0);
        break;
    }
    io_loop_flush(l);
}

/* Makes c's fresh connection a TLS client with the pool's current context, resuming the
 * endpoint's last session. */
static int start_tls(struct upstream_conn *c, struct stream *s)
{
    struct tls_client *tc = s->pin->snap->routes[s->route].pools[s->pool].tls;
    SSL *ssl = tc ? tls_client_ssl_new(tc, c->ep->host, c->ep->tls_session) : NULL;
    if (!ssl)
        return CUT_ENOMEM;
    if (io_tls_connect(&c->io, ssl) < 0) {
        tls_ssl_free(ssl);
        return CUT_ENOMEM;
    }
    return 0;
}

/* An idle pooled connection is still usable: nothing to read on it, no EOF, no error (one
 * non-blocking peek). A request is never written on a connection found dead here, so the
 * request is not at risk. */
static int idle_alive(struct upstream_conn *c)
{
    char b;
    ssize_t n = recv(c->io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Whether a pooled connection found dead only when the request is written costs this request
 * nothing: it is sent again on a new connection (stream.c's stale retry: idempotent, no body,
 * a try and the first stale retry left). Then the liveness peek, one failing system call per
 * request, is skipped. */
static int reuse_retry_safe(const struct stream *s, const struct cfg *cfg)
{
    return s->idempotent && s->req_framing == HTTP_BODY_NONE && !s->stale_retried &&
           s->tries < cfg->retries.max_tries;
}

struct upstream *upstream_h1_open(struct worker *w, struct upstream_ep *ep, struct stream *s,
                                  int *reused)
{
    const struct cfg *cfg = s->pin->snap->cfg;
    struct upstream_conn *c = ep->idle;
    int peek = !reuse_retry_safe(s, cfg);
    while (c && peek && !idle_alive(c)) { /* closed by the upstream, its event not handled yet */
        conn_close(c);
        c = ep->idle;
    }
    if (c) {
        idle_unlink(c);
        ltimer_stop(&c->tmo);
        c->s = s;
        c->state = UC_WAIT_HEAD;
        c->body_idle_ms = cfg->timeouts.body_idle;
        c->header_ms = cfg->timeouts.upstream_header;
        c->idle_ms = cfg->timeouts.upstream_idle;
        *reused = 1;
        s->up = &c->base;
        send_request(c);
        return &c->base;
    }
    *reused = 0;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base.ops = &h1_ops;
    c->w = w;
    c->ep = ep;
    c->s = s;
    c->body_idle_ms = cfg->timeouts.body_idle;
    c->header_ms = cfg->timeouts.upstream_header;
    c->idle_ms = cfg->timeouts.upstream_idle;
    c->connect_ms = cfg->timeouts.upstream_connect;
    c->tmp = evbuffer_new();
    ltimer_init(&c->tmo, w->base, on_timeout, c);
    ep->nconns++;
    if (!c->tmp) {
        conn_close(c);
        return NULL;
    }
    if (io_connect(&c->io, &w->iol, (struct sockaddr *)&ep->addr, ep->addrlen, on_read, on_drain,
                   on_event, c) < 0) {
        conn_close(c);
        return NULL;
    }
    c->io_live = 1;
    if (ep->tls && start_tls(c, s) < 0) {
        conn_close(c);
        return NULL;
    }
    c->io.drain_mark = 16384;
    c->io.write_timeout = worker_tv(w, cfg->timeouts.body_idle);
    c->state = UC_CONNECTING;
    s->up = &c->base;
    if (c->state == UC_CONNECTING && s->up == &c->base)
        arm(c, c->connect_ms);
    return &c->base;
}

/* ---- operations from stream.c (struct upstream_ops) ------------------------------------------ */

static struct upstream_conn *as_conn(struct upstream *u)
{
    return (struct upstream_conn *)(void *)u;
}

static void op_send(struct upstream *u)
{
    struct upstream_conn *c = as_conn(u);
    if (c->state == UC_CONNECTING || !c->s)
        return; /* everything goes out once connected */
    if (c->state == UC_TUNNEL) {
        evbuffer_add_buffer(c->io.out, c->s->req_body);
        io_mark(&c->io);
        return;
    }
    send_body(c);
}

static void op_pause(struct upstream *u)
{
    struct upstream_conn *c = as_conn(u);
    if (c->paused)
        return;
    c->paused = 1;
    io_pause_read(&c->io);
    ltimer_stop(&c->tmo);
}

static void op_resume(struct upstream *u)
{
    struct upstream_conn *c = as_conn(u);
    if (!c->paused)
        return;
    c->paused = 0;
    io_resume_read(&c->io);
    if (c->state == UC_BODY)
        arm(c, c->body_idle_ms);
    else if (c->state == UC_WAIT_HEAD)
        arm(c, c->header_ms);
    /* Bytes that arrived before the pause are still waiting in the input. */
    struct evbuffer *in = c->io.in;
    if (evbuffer_get_length(in))
        on_read(&c->io, c);
}

static void op_detach(struct upstream *u)
{
    struct upstream_conn *c = as_conn(u);
    unhook(c);
    conn_close(c);
}

static size_t op_pending(const struct upstream *u)
{
    const struct upstream_conn *c = (const struct upstream_conn *)(const void *)u;
    return evbuffer_get_length(c->io.out);
}

static const struct upstream_ops h1_ops = {
    .send = op_send,
    .pause = op_pause,
    .resume = op_resume,
    .detach = op_detach,
    .pending = op_pending,
};

void upstream_h1_close_idle(struct upstream_ep *ep)
{
    while (ep->idle)
        conn_close(ep->idle);
}

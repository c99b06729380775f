/* h1.c - HTTP/1.1 client connections: parse requests, feed streams, write responses. */
#include "proxy/relay/h1.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/cut.h"
#include "core/list.h"
#include "proxy/http/chunked.h"
#include "proxy/http/h1_parse.h"
#include "proxy/relay/h2.h"
#include "proxy/http/http.h"
#include "proxy/net/io.h"
#include "proxy/relay/timer.h"
#include "proxy/relay/stream.h"
#include "proxy/relay/worker.h"

#define H1C_LINGER_MS 5000      /* the last response gets this long to be written */
/* Lingering close (nginx's lingering_timeout / lingering_time): after the last response, read and
 * discard what the client still sends until it closes, or sends nothing for H1C_LINGER_IDLE_MS,
 * or H1C_LINGER_MAX_MS passed, or H1C_DISCARD_BYTES arrived. Closing with unread input makes the
 * kernel send a reset, which destroys response bytes the client has not read yet. */
#define H1C_LINGER_IDLE_MS 5000
#define H1C_LINGER_MAX_MS 30000
#define H1C_DISCARD_BYTES (64u << 20)

enum h1c_state {
    H1C_IDLE = 0, /* waiting for (the rest of) a request head */
    H1C_BODY,     /* reading the request body */
    H1C_WAIT,     /* request read; the response is on its way */
    H1C_TUNNEL,   /* after 101: bytes both ways */
    H1C_CLOSING   /* flushing the last response, then close */
};


/* The peer's address: only IPv4 and IPv6 are ever accepted, so no sockaddr_storage (128 bytes)
 * per idle connection. */
union h1c_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* What only a request body or a lingering close needs: allocated for them, freed once the
 * exchange is over, so that an idle connection carries none of it. */
struct h1x {
    enum h1_body req_body;
    struct chunked chunk;
    uint64_t remaining;
    /* The request body's deadline (timeouts.request_body_ms + limits.min_body_rate): when it
     * started (moved forward by the time reading was paused for the upstream), the bytes it
     * earned credit for, and when reading was paused (0: not paused). */
    uint64_t body_start_ns, body_bytes, paused_ns;
    /* Lingering close: bytes read and dropped, and when it ends at the latest. */
    size_t discarded;
    uint64_t linger_until_ns;
};

/* Kept small: an idle keep-alive connection costs this struct, its read event and its timer
 * (its io sleeps: no buffers, no write event). 512 bytes is one of tcmalloc's size classes;
 * bench.py's idle scenario measures the resident memory per idle connection. */
struct h1c {
    struct worker *w;
    struct io io;
    struct ltimer tmo;
    union h1c_addr peer;
    socklen_t peerlen;
    struct h1c *next, *prev; /* the worker's connection list */
    struct stream *s;
    struct h1x *x;           /* while a request body is read or the connection lingers */
    enum h1c_state state;
    unsigned minor : 1;          /* the current request's HTTP/1.x minor version */
    unsigned keep_alive : 1;     /* the connection survives the current exchange */
    unsigned head_started : 1;   /* bytes of a new request head arrived (header timer armed) */
    unsigned req_done : 1, resp_done : 1;
    unsigned resp_chunked : 1, resp_until_close : 1;
    unsigned read_paused : 1;
    unsigned in_read : 1;        /* inside on_read: do not recurse into the next request */
    unsigned shutting_down : 1;
    unsigned out_blocked : 1;    /* responses the client has not read yet: no new request */
    unsigned linger : 1;         /* close with a lingering read: the client may still be sending */
    unsigned lingering : 1;
    unsigned peer_eof : 1;       /* the client half-closed after a complete request */
    unsigned used : 1;           /* a request was read: an HTTP/2 preface is no longer one */
};
_Static_assert(sizeof(struct h1c) <= 512, "an idle connection grew out of its size class");

static void on_read(struct io *io, void *arg);
static void process(struct h1c *c);

struct h1c *h1c_next(const struct h1c *c)
{
    return c->next;
}

static const struct cfg *cur_cfg(const struct h1c *c)
{
    if (c->s && c->s->pin)
        return c->s->pin->snap->cfg;
    return c->w->pins.current ? c->w->pins.current->snap->cfg : NULL;
}

static void conn_free(struct h1c *c)
{
    if (c->s) {
        stream_abort(c->s);
        stream_free(c->s);
        c->s = NULL;
    }
    worker_conn_removed(c->w, c);
    ltimer_dispose(&c->tmo);
    io_dispose(&c->io);
    free(c->x);
    free(c);
}

static void arm(struct h1c *c, unsigned ms)
{
    ltimer_arm(&c->tmo, ms, c->w);
}

static void pause_read(struct h1c *c)
{
    if (!c->read_paused) {
        c->read_paused = 1;
        if (c->x)
            c->x->paused_ns = clock_mono_ns();
        io_pause_read(&c->io);
    }
}

static void resume_read(struct h1c *c)
{
    if (c->read_paused) {
        c->read_paused = 0;
        /* Time the upstream held the body back does not count against the client. */
        struct h1x *x = c->x;
        if (x && x->paused_ns) {
            x->body_start_ns += clock_mono_ns() - x->paused_ns;
            x->paused_ns = 0;
        }
        io_resume_read(&c->io);
    }
}

/* Whether the request body is past its deadline: slower on average than limits.min_body_rate
 * after timeouts.request_body_ms (a slowloris body: each byte resets the idle timer, not this).
 * Never while we hold the body back ourselves. */
static int body_too_slow(const struct h1c *c, const struct cfg *cfg)
{
    if (!cfg || c->state != H1C_BODY || c->read_paused)
        return 0;
    uint64_t allowed = http_body_allowance_ms(cfg->timeouts.request_body,
                                              cfg->limits.min_body_rate, c->x->body_bytes);
    if (allowed == UINT64_MAX)
        return 0;
    return (clock_mono_ns() - c->x->body_start_ns) / 1000000u > allowed;
}

/* The output is empty: close, or first half-close and read what the client is still sending
 * (so that its kernel does not answer our close with a reset that destroys the response we just
 * sent: RFC 9112 section 9.6). The free itself is always deferred to the timer. */
static void close_or_linger(struct h1c *c)
{
    if (c->linger && !c->lingering && !c->io.eof && !c->io.failed &&
        (c->x || (c->x = malloc(sizeof *c->x)) != NULL)) { /* no memory: a plain close */
        c->lingering = 1;
        c->x->discarded = 0;
        c->x->linger_until_ns = clock_mono_ns() + (uint64_t)H1C_LINGER_MAX_MS * 1000000u;
        io_shutdown_write(&c->io); /* close_notify first on TLS */
        io_resume_read(&c->io);
        arm(c, H1C_LINGER_IDLE_MS);
        return;
    }
    if (!c->lingering)
        ltimer_fire(&c->tmo);
}

/* Flush what is queued, then close. Never frees c synchronously: callers up the stack (stream
 * and upstream callbacks) may still hold it; the free happens from the timer or write callback.
 * linger: the client may still be sending (an unread request body, a rejected request). */
static void start_closing(struct h1c *c, int linger)
{
    if (c->state == H1C_CLOSING)
        return;
    c->state = H1C_CLOSING;
    c->keep_alive = 0;
    c->linger |= linger;
    io_pause_read(&c->io);
    struct evbuffer *in = c->io.in; /* NULL when the io sleeps: nothing buffered either way */
    if (in)
        evbuffer_drain(in, evbuffer_get_length(in));
    c->io.drain_mark = 0;
    if (io_pending(&c->io) == 0) {
        close_or_linger(c);
    } else {
        io_mark(&c->io);
        arm(c, H1C_LINGER_MS); /* on_drain continues once the output is empty */
    }
}

/* Answers a request that never reached a stream (parse errors), then closes. */
static void reject(struct h1c *c, int status, const char *code, const char *msg)
{
    char buf[1024];
    int n = http_write_error(buf, sizeof buf, status, code, msg, 1);
    if (n > 0 && io_wake(&c->io) == 0)
        evbuffer_add(c->io.out, buf, (size_t)n);
    start_closing(c, 1); /* marks the output for writing */
}

static const char *status_code_name(int status)
{
    switch (status) {
    case 414: return "uri_too_long";
    case 431: return "headers_too_large";
    case 501: return "not_implemented";
    case 505: return "version";
    default: return "bad_request";
    }
}

/* Both halves of the exchange are over: log it, then serve the next request or close. */
static void exchange_done(struct h1c *c)
{
    if (!c->req_done || !c->resp_done)
        return;
    struct stream *s = c->s;
    c->s = NULL;
    stream_free(s);
    if (c->state == H1C_CLOSING)
        return; /* c->x stays for a lingering close */
    if (c->x) { /* the request body is complete */
        free(c->x);
        c->x = NULL;
    }
    if (!c->keep_alive || c->w->stopping) {
        start_closing(c, c->linger);
        return;
    }
    c->state = H1C_IDLE;
    c->head_started = 0;
    c->io.drain_mark = 0; /* idle: on_drain reports the moment the last response is written */
    if (io_pending(&c->io) == 0) {
        const struct cfg *cfg = cur_cfg(c);
        arm(c, cfg ? cfg->timeouts.client_idle : 120000);
    } else {
        ltimer_stop(&c->tmo); /* the write timeout guards the response still being written */
    }
    resume_read(c);
    if (c->in_read)
        return;
    if (evbuffer_get_length(c->io.in) > 0)
        process(c); /* a pipelined request is already waiting */
    else
        io_sleep(&c->io); /* when the response is already out: idle, no buffers */
}

/* ---- stream -> client ---------------------------------------------------------------------- */

static void ds_head(void *ctx, struct stream *s, const struct http_resp *resp)
{
    struct h1c *c = ctx;
    struct worker *w = c->w;
    struct evbuffer *out = c->io.out;
    (void)s;
    if (c->state == H1C_CLOSING)
        return;
    if (resp->status < 200 && resp->status != 101) {
        if (c->minor >= 1) {
            int n = http_write_h1_response(w->scratch, w->scratch_cap, resp, 0, 0, 0);
            if (n > 0) {
                evbuffer_add(out, w->scratch, (size_t)n);
                io_mark(&c->io);
            }
        }
        return;
    }
    c->resp_chunked = 0;
    c->resp_until_close = 0;
    if (resp->framing == HTTP_BODY_STREAM || resp->framing == HTTP_BODY_UNTIL_CLOSE) {
        if (c->minor >= 1)
            c->resp_chunked = 1;
        else
            c->resp_until_close = 1;
    }
    /* A response may start before the request body is complete (an echo, a stream): the
     * connection survives if the body then completes; ds_end closes it otherwise. */
    if (c->resp_until_close || w->stopping || c->shutting_down)
        c->keep_alive = 0;
    int n = http_write_h1_response(w->scratch, w->scratch_cap, resp, c->resp_chunked,
                                   !c->keep_alive && resp->status != 101,
                                   c->keep_alive && c->minor == 0);
    if (n < 0) {
        h1c_kill(c);
        return;
    }
    evbuffer_add(out, w->scratch, (size_t)n);
    io_mark(&c->io);
}

static void ds_body(void *ctx, struct stream *s, struct evbuffer *data)
{
    struct h1c *c = ctx;
    struct evbuffer *out = c->io.out;
    size_t n = evbuffer_get_length(data);
    (void)s;
    if (c->state == H1C_CLOSING) {
        evbuffer_drain(data, n);
        return;
    }
    if (n == 0)
        return;
    if (c->state == H1C_TUNNEL) {
        const struct cfg *cfg = cur_cfg(c);
        arm(c, cfg ? cfg->timeouts.client_idle : 120000); /* traffic either way keeps it open */
    }
    if (c->resp_chunked && c->state != H1C_TUNNEL) {
        evbuffer_add_printf(out, "%zx\r\n", n);
        evbuffer_add_buffer(out, data);
        evbuffer_add(out, "\r\n", 2);
    } else {
        evbuffer_add_buffer(out, data);
    }
    io_mark(&c->io);
}

static void ds_end(void *ctx, struct stream *s, const struct http_field *trailers, unsigned n)
{
    struct h1c *c = ctx;
    struct evbuffer *out = c->io.out;
    (void)s;
    if (c->resp_chunked) {
        evbuffer_add(out, "0\r\n", 3);
        for (unsigned i = 0; i < n; i++) {
            evbuffer_add(out, trailers[i].name.p, trailers[i].name.n);
            evbuffer_add(out, ": ", 2);
            evbuffer_add(out, trailers[i].value.p, trailers[i].value.n);
            evbuffer_add(out, "\r\n", 2);
        }
        evbuffer_add(out, "\r\n", 2);
        io_mark(&c->io);
    }
    if (c->resp_until_close)
        c->keep_alive = 0;
    c->resp_done = 1;
    if (!c->req_done) {
        /* The upstream answered before the request body was complete: stop here. */
        c->req_done = 1;
        c->keep_alive = 0;
        c->linger = 1;
    }
    exchange_done(c);
}

static void ds_fail(void *ctx, struct stream *s, int status, const char *code, const char *msg)
{
    struct h1c *c = ctx;
    if (c->state == H1C_CLOSING)
        return;
    if (c->state == H1C_TUNNEL) {
        start_closing(c, 0); /* the upstream closed its side: deliver what it sent, then close */
        return;
    }
    if (s->resp_head_sent) {
        s->aborted = 1;
        h1c_kill(c); /* the response is cut short: the client must see it fail */
        return;
    }
    if (!c->req_done || c->w->stopping || c->shutting_down)
        c->keep_alive = 0;
    if (!c->req_done)
        c->linger = 1;
    char buf[1024];
    int n = http_write_local(buf, sizeof buf, status, code, msg, !c->keep_alive,
                             s->head_method_head);
    if (n > 0) {
        evbuffer_add(c->io.out, buf, (size_t)n);
        s->bytes_out += (uint64_t)n;
        io_mark(&c->io);
    }
    c->resp_done = 1;
    c->req_done = 1; /* whatever body remains is not read: the connection closes */
    if (c->state == H1C_BODY)
        c->keep_alive = 0;
    exchange_done(c);
}

static void ds_resume_body(void *ctx, struct stream *s)
{
    struct h1c *c = ctx;
    (void)s;
    if (c->read_paused && (c->state == H1C_BODY || c->state == H1C_TUNNEL)) {
        resume_read(c);
        if (evbuffer_get_length(c->io.in))
            on_read(&c->io, c);
    }
}

static size_t ds_pending(void *ctx, struct stream *s)
{
    struct h1c *c = ctx;
    (void)s;
    return io_pending(&c->io);
}

static void ds_tunnel(void *ctx, struct stream *s)
{
    struct h1c *c = ctx;
    c->state = H1C_TUNNEL;
    c->req_done = 1;
    const struct cfg *cfg = cur_cfg(c);
    arm(c, cfg ? cfg->timeouts.client_idle : 120000);
    resume_read(c);
    struct evbuffer *in = c->io.in;
    if (evbuffer_get_length(in)) {
        evbuffer_add_buffer(s->req_body, in);
        stream_request_body(s, 0);
    }
}

static const struct downstream_ops h1c_ops = {
    .head = ds_head,
    .body = ds_body,
    .end = ds_end,
    .fail = ds_fail,
    .resume_body = ds_resume_body,
    .pending = ds_pending,
    .tunnel = ds_tunnel,
};

/* ---- client -> stream ---------------------------------------------------------------------- */

struct parse_req {
    const struct h1_limits *lim;
    struct h1_request *r;
    struct http_field *fields;
    int *status;
};

static int parse_req_fn(const char *p, size_t n, void *ctx)
{
    struct parse_req *pr = ctx;
    return h1_parse_request(p, n, pr->lim, pr->r, pr->fields, CUT_MAX_FIELDS, pr->status);
}

/* Parses and starts one request. Returns 1 when a request was started (or rejected), 0 when
 * more bytes are needed. */
static int read_head(struct h1c *c)
{
    struct worker *w = c->w;
    struct evbuffer *in = c->io.in;
    size_t len = evbuffer_get_length(in);
    if (len == 0)
        return 0;
    const struct cfg *cfg = cur_cfg(c);
    if (!cfg) {
        reject(c, 503, "not_ready", "no configuration published yet");
        return 1;
    }
    if (!c->head_started) {
        c->head_started = 1;
        arm(c, cfg->timeouts.client_header);
    }
    if (!c->used) {
        /* HTTP/2: with prior knowledge on cleartext (RFC 9113 section 3.3), or negotiated by
         * ALPN on TLS. h2.c takes the socket over (and the TLS session with it). */
        const char *alpn = io_is_tls(&c->io) ? io_alpn(&c->io) : NULL;
        size_t k = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;
        int m = io_is_tls(&c->io) && !(alpn && strcmp(alpn, "h2") == 0)
                    ? -1
                    : h2_preface_match((const char *)evbuffer_pullup(in, (ssize_t)k), k);
        if (m == 0)
            return 0;
        if (m == 1) {
            if (!w->stopping)
                h2c_takeover(w, &c->io, &c->peer.sa, c->peerlen, cur_cfg(c));
            /* Done either way: close without shutdown() (the h2c has a duplicate socket). */
            c->state = H1C_CLOSING;
            c->keep_alive = 0;
            io_pause_read(&c->io);
            evbuffer_drain(in, evbuffer_get_length(in));
            ltimer_fire(&c->tmo);
            return 1;
        }
    }
    struct h1_limits lim = {cfg->limits.max_request_line, cfg->limits.max_header_bytes,
                            cfg->limits.max_headers};
    struct http_field fields[CUT_MAX_FIELDS];
    struct h1_request r;
    int status = 400;
    struct parse_req pr = {&lim, &r, fields, &status};
    int n = io_parse_front(in, lim.max_head + 1, parse_req_fn, &pr);
    if (n == CUT_EAGAIN)
        return 0;
    if (n < 0) {
        reject(c, status, status_code_name(status), "malformed or ambiguous request");
        return 1;
    }
    struct http_req req = {
        .method = r.method,
        .fields = fields,
        .nfields = r.nheaders,
        .content_length = r.content_length,
        .version_minor = r.minor_version,
        .upgrade = r.upgrade,
    };
    int bad = h1_request_target(&r, &req.path, &req.authority);
    if (bad) {
        reject(c, bad, status_code_name(bad), bad == 501 ? "CONNECT is not supported"
                                                         : "invalid request target");
        return 1;
    }
    req.framing = r.body == H1_BODY_LENGTH    ? (r.content_length ? HTTP_BODY_LENGTH
                                                                  : HTTP_BODY_NONE)
                  : r.body == H1_BODY_CHUNKED ? HTTP_BODY_STREAM
                                              : HTTP_BODY_NONE;
    if (r.body == H1_BODY_LENGTH && r.content_length == 0)
        req.framing = HTTP_BODY_LENGTH; /* "Content-Length: 0" is forwarded as such */
    req.flags = (r.conn_flags & H1_CF_KEEP_ALIVE ? HTTP_RF_KEEP_ALIVE : 0) |
                (r.conn_flags & H1_CF_UPGRADE ? HTTP_RF_UPGRADE : 0) |
                (r.conn_flags & H1_CF_EXPECT_CONTINUE ? HTTP_RF_EXPECT_CONTINUE : 0) |
                (r.conn_flags & H1_CF_TE_TRAILERS ? HTTP_RF_TE_TRAILERS : 0) |
                (cut_slice_ieq(r.method, "head") ? HTTP_RF_HEAD : 0);
    if (req.flags & HTTP_RF_UPGRADE) {
        /* Only WebSocket is relayed. "Upgrade: h2c" (with HTTP2-Settings) would let the client
         * talk HTTP/2 to the upstream behind our back: it is dropped, with every other token,
         * and the request is served as plain HTTP/1.1 (the Upgrade, HTTP2-Settings and
         * Connection fields are hop-by-hop: never forwarded). */
        req.upgrade = http_upgrade_filter(r.upgrade);
        if (!req.upgrade.n)
            req.flags &= ~HTTP_RF_UPGRADE;
    }

    int body = !(r.body == H1_BODY_NONE || (r.body == H1_BODY_LENGTH && r.content_length == 0));
    if (body && !c->x && (c->x = malloc(sizeof *c->x)) == NULL) {
        reject(c, 503, "overloaded", "out of memory");
        return 1;
    }
    struct stream *s = stream_new(w, &h1c_ops, c, (struct sockaddr *)&c->peer, c->peerlen);
    if (!s) {
        reject(c, 503, "overloaded", "out of memory");
        return 1;
    }
    c->s = s;
    c->used = 1;
    stream_set_tls(s, &c->io);
    c->minor = r.minor_version == 1;
    c->keep_alive = (r.conn_flags & H1_CF_KEEP_ALIVE) != 0 && !c->shutting_down;
    if (body) {
        struct h1x *x = c->x;
        x->req_body = r.body;
        x->remaining = r.content_length;
        chunked_init(&x->chunk);
        x->body_start_ns = clock_mono_ns();
        x->body_bytes = 0;
        x->paused_ns = 0;
    }
    c->req_done = !body;
    c->resp_done = 0;
    c->state = c->req_done ? H1C_WAIT : H1C_BODY;
    c->io.drain_mark = c->io.read_max / 2;
    s->bytes_in = (uint64_t)n;
    ltimer_stop(&c->tmo);
    stream_start(s, &req); /* may answer at once (no route, ...) */
    evbuffer_drain(in, (size_t)n);
    if (c->state == H1C_BODY)
        arm(c, cfg->timeouts.body_idle);
    return 1;
}

/* Moves request body bytes from the input into the stream. Returns 1 to keep processing. */
static int read_body(struct h1c *c)
{
    struct evbuffer *in = c->io.in;
    struct stream *s = c->s;
    struct h1x *x = c->x;
    const struct cfg *cfg = cur_cfg(c);
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (c->req_done)
            return 1;
        if (stream_request_buffered(s) > cfg->limits.buffer_bytes) {
            pause_read(c); /* resumed by ds_resume_body when the upstream drains */
            return 0;
        }
        if (len == 0)
            return 0;
        if (x->req_body == H1_BODY_LENGTH) {
            size_t n = len < x->remaining ? len : (size_t)x->remaining;
            evbuffer_remove_buffer(in, s->req_body, n);
            s->bytes_in += n;
            x->body_bytes += n;
            x->remaining -= n;
            if (x->remaining == 0) {
                c->req_done = 1;
                c->state = H1C_WAIT;
                ltimer_stop(&c->tmo);
            }
            stream_request_body(s, c->req_done);
            continue;
        }
        /* chunked */
        struct h1_limits lim = {cfg->limits.max_request_line, cfg->limits.max_header_bytes,
                                cfg->limits.max_headers};
        struct http_field tr[CUT_MAX_FIELDS];
        unsigned ntr = 0;
        size_t moved = 0, trailer_len = 0, framing = 0;
        int r = chunked_step(&x->chunk, in, s->req_body, &lim, tr, CUT_MAX_FIELDS, &ntr, &moved,
                             &trailer_len, &framing);
        s->bytes_in += framing + moved;
        x->body_bytes += moved;
        if (r < 0)
            goto bad;
        if (r == CHUNKED_NEED_MORE)
            return 0;
        if (r == CHUNKED_MOVED) {
            stream_request_body(s, 0);
            continue;
        }
        /* Request trailers are not forwarded to HTTP/1.1 upstreams (few servers read them);
         * the body itself is complete. */
        evbuffer_drain(in, trailer_len);
        s->bytes_in += trailer_len;
        c->req_done = 1;
        c->state = H1C_WAIT;
        ltimer_stop(&c->tmo);
        stream_request_body(s, 1);
        return 1;
    }
bad:
    /* A broken body after the head went upstream: nothing sane can follow. */
    if (!s->resp_head_sent) {
        stream_abort(s);
        s->status = 400;
        char buf[512];
        int n = http_write_error(buf, sizeof buf, 400, "bad_request", "malformed chunked body", 1);
        if (n > 0)
            evbuffer_add(c->io.out, buf, (size_t)n);
        c->s = NULL;
        stream_free(s);
        start_closing(c, 1);
    } else {
        s->aborted = 1;
        h1c_kill(c);
    }
    return -1;
}

/* Runs the state machine over whatever input there is. c stays allocated on return (frees
 * are deferred), but may be closing. */
static void process(struct h1c *c)
{
    if (!c->io.in)
        return; /* asleep: nothing to parse */
    c->in_read = 1;
    const struct cfg *cfg = cur_cfg(c);
    for (;;) {
        int r;
        if (c->state == H1C_IDLE && cfg && io_pending(&c->io) > cfg->limits.buffer_bytes &&
            evbuffer_get_length(c->io.in) > 0) {
            /* The client sends requests without reading the answers: wait for it. */
            c->out_blocked = 1;
            io_pause_read(&c->io);
            break;
        }
        if (c->state == H1C_IDLE)
            r = read_head(c);
        else if (c->state == H1C_BODY)
            r = read_body(c);
        else
            break;
        if (r <= 0)
            break;
    }
    c->in_read = 0;
    if (!c->read_paused && !c->out_blocked && c->state != H1C_CLOSING &&
        c->state != H1C_TUNNEL && !c->peer_eof)
        io_resume_read(&c->io); /* io.c pauses at read_max; consumed input reopens it */
}

/* The request body stalled or is too slow: 408 with Connection: close, and the upstream request
 * is abandoned (never completed). When the response has already begun, the connection closes. */
static void body_timeout(struct h1c *c, const char *why)
{
    struct stream *s = c->s;
    if (s->resp_head_sent) {
        s->aborted = 1;
        h1c_kill(c); /* the response is cut short: the client must see it fail */
        return;
    }
    stream_abort(s);
    s->status = 408;
    s->error = "request_timeout";
    worker_count(&s->w->body_timeouts);
    c->s = NULL;
    stream_free(s);
    reject(c, 408, "request_timeout", why);
}

static void on_read(struct io *io, void *arg)
{
    struct h1c *c = arg;
    (void)io;
    if (c->state == H1C_TUNNEL) {
        struct evbuffer *in = c->io.in;
        const struct cfg *cfg = cur_cfg(c);
        if (c->s) {
            c->s->bytes_in += evbuffer_get_length(in);
            evbuffer_add_buffer(c->s->req_body, in);
            stream_request_body(c->s, 0);
            if (stream_request_buffered(c->s) > cfg->limits.buffer_bytes)
                pause_read(c);
        }
        arm(c, cfg->timeouts.client_idle);
        return;
    }
    if (c->state == H1C_CLOSING) {
        struct evbuffer *in = c->io.in;
        size_t n = evbuffer_get_length(in);
        evbuffer_drain(in, n);
        if (!c->lingering || (c->x->discarded += n) > H1C_DISCARD_BYTES ||
            clock_mono_ns() > c->x->linger_until_ns) {
            io_pause_read(&c->io);
            ltimer_fire(&c->tmo);
        } else {
            arm(c, H1C_LINGER_IDLE_MS); /* still sending: keep reading a while longer */
        }
        return;
    }
    if (c->state == H1C_BODY) {
        const struct cfg *cfg = cur_cfg(c);
        if (body_too_slow(c, cfg)) {
            body_timeout(c, "the request body was too slow");
            return;
        }
        arm(c, cfg->timeouts.body_idle);
    }
    process(c);
}

static void on_drain(struct io *io, void *arg)
{
    struct h1c *c = arg;
    (void)io;
    if (c->state == H1C_CLOSING) {
        if (evbuffer_get_length(c->io.out) == 0)
            close_or_linger(c);
        return;
    }
    if (c->state == H1C_IDLE && io_pending(&c->io) == 0) {
        /* The last response is out: the keep-alive idle time starts now. */
        if (!c->head_started) {
            const struct cfg *cfg = cur_cfg(c);
            arm(c, cfg ? cfg->timeouts.client_idle : 120000);
        }
        if (c->shutting_down) {
            start_closing(c, 0);
            return;
        }
        if (c->out_blocked) {
            c->out_blocked = 0;
            process(c);
        }
        if (c->state == H1C_IDLE && !c->head_started)
            io_sleep(&c->io); /* idle: no buffers until the next request arrives */
        return;
    }
    if (c->s)
        stream_downstream_drained(c->s);
}

static void on_event(struct io *io, int what, void *arg)
{
    struct h1c *c = arg;
    (void)io;
    if (what == IO_EOF && c->s && c->req_done && c->state == H1C_WAIT) {
        /* A half-close after a complete request: answer it, then close. */
        c->peer_eof = 1;
        c->keep_alive = 0;
        return;
    }
    if (what == IO_EOF && c->state == H1C_CLOSING && c->lingering) {
        ltimer_fire(&c->tmo);
        return;
    }
    if (what & (IO_EOF | IO_ERROR | IO_TIMEOUT))
        conn_free(c); /* an exchange in progress is aborted (logged as 499) */
}

static void timeout_fired(struct h1c *c)
{
    if (c->state == H1C_CLOSING) {
        conn_free(c);
        return;
    }
    if (c->state == H1C_IDLE && c->head_started) {
        reject(c, 408, "request_timeout", "the request head did not arrive in time");
        return;
    }
    if (c->state == H1C_BODY && c->s) {
        body_timeout(c, body_too_slow(c, cur_cfg(c)) ? "the request body was too slow"
                                                     : "the request body stalled");
        return;
    }
    conn_free(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct h1c *c = arg;
    struct io_loop *l = &c->w->iol;
    (void)fd;
    (void)what;
    timeout_fired(c);
    io_loop_flush(l);
}

/* h1c_accept, or with tp an in-memory transport (unit tests; tls is then NULL). */
static int accept_conn(struct worker *w, int fd, struct io_transport *tp,
                       const struct sockaddr *peer, socklen_t peerlen, struct tls_ctx *tls,
                       const struct cfg *cfg)
{
    CUT_ASSERT(cfg != NULL);
    struct h1c *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return CUT_ENOMEM;
    }
    c->w = w;
    if (peerlen > sizeof c->peer)
        peerlen = sizeof c->peer;
    memcpy(&c->peer, peer, peerlen);
    c->peerlen = peerlen;
    int one = 1;
    if (!tp)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ltimer_init(&c->tmo, w->base, on_timeout, c);
    if (io_init(&c->io, &w->iol, fd, on_read, on_drain, on_event, c) < 0) {
        ltimer_dispose(&c->tmo);
        free(c);
        return CUT_ENOMEM;
    }
    if (tp)
        io_set_transport(&c->io, tp);
    if (tls && io_tls_accept(&c->io, tls) < 0) {
        io_dispose(&c->io);
        ltimer_dispose(&c->tmo);
        free(c);
        return CUT_ENOMEM;
    }
    worker_conn_added(w, c);
    unsigned high = cfg->limits.buffer_bytes;
    if (cfg->limits.max_header_bytes + 1 > high)
        high = cfg->limits.max_header_bytes + 1;
    c->io.read_max = high;
    c->io.drain_mark = high / 2;
    c->io.write_timeout = worker_tv(w, cfg->timeouts.body_idle);
    c->state = H1C_IDLE;
    c->keep_alive = 1;
    /* A TLS handshake gets the request-head time, not the keep-alive idle time: a peer that
     * connects and never finishes its handshake is closed after timeouts.client_header_ms. */
    if (tls)
        arm(c, cfg->timeouts.client_header);
    else
        arm(c, cfg ? cfg->timeouts.client_idle : 120000);
    io_sleep(&c->io); /* buffers come with the first byte */
    return 0;
}

int h1c_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
               struct tls_ctx *tls, const struct cfg *cfg)
{
    return accept_conn(w, fd, NULL, peer, peerlen, tls, cfg);
}

int h1c_accept_transport(struct worker *w, int fd, struct io_transport *tp,
                         const struct sockaddr *peer, socklen_t peerlen, const struct cfg *cfg)
{
    CUT_ASSERT(tp != NULL);
    return accept_conn(w, fd, tp, peer, peerlen, NULL, cfg);
}

void h1c_shutdown(struct h1c *c)
{
    c->shutting_down = 1;
    if (c->state == H1C_IDLE && !c->head_started && !c->s) {
        if (io_pending(&c->io) == 0)
            conn_free(c);
        else
            start_closing(c, 0); /* the last response is still being written */
        return;
    }
    c->keep_alive = 0;
}

void h1c_kill(struct h1c *c)
{
    struct evbuffer *out = c->io.out;
    if (out)
        evbuffer_drain(out, evbuffer_get_length(out));
    start_closing(c, 0);
}

void h1c_kill_now(struct h1c *c)
{
    conn_free(c);
}

void h1c_link(struct h1c *c, struct h1c **head)
{
    CUT_LIST_PUSH(head, c, next, prev);
}

void h1c_unlink(struct h1c *c, struct h1c **head)
{
    CUT_LIST_REMOVE(head, c, next, prev);
}

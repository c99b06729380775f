/*
 * origin.c - the benchmark and demo origin: a lean single-threaded HTTP/1.1 server on epoll.
 *
 *   origin --port P --name NAME [--host 127.0.0.1]
 *   origin --listen PORT:NAME [--listen PORT:NAME ...] [--host 127.0.0.1]
 *
 * One process may serve several ports, each answering with its own name (the benchmark runs blue
 * and green in one process so that the load CPU runs one origin loop, not two).
 * GET /size/N answers N bytes of 'x' (N <= 1 GiB); any other path answers "NAME\n".
 * HEAD gets the same head without a body. Keep-alive and pipelining are supported (HTTP/1.1 by
 * default, HTTP/1.0 with "Connection: keep-alive"); "Connection: close" closes after the response.
 * Request bodies with Content-Length are read and discarded; chunked request bodies get 501 and
 * the connection is closed. Prints the line "ready" on stdout once it listens; exits 0 on
 * SIGTERM or SIGINT. SIGUSR1 makes every listener answer "/" over HTTP/1.1 with
 * "500 Internal Server Error" (same body, NAME), SIGUSR2 with "200 OK" again (the fleet rollback
 * benchmark fails green with it; HTTP/2 and /size/N answers are not affected).
 *
 * HTTP/2 cleartext with prior knowledge (h2c): a connection whose first bytes are the HTTP/2
 * connection preface is served by an nghttp2 server session with the same answers (GET /size/N,
 * "NAME\n" otherwise, HEAD without body, request bodies discarded), plus a gRPC-shaped exchange:
 * a request with "te: trailers" on a path starting with /grpc gets content-type application/grpc,
 * the 5-byte length-prefixed message "NAME" and the trailers grpc-status: 0, grpc-message: OK.
 * A stream is answered when its request ends (END_STREAM).
 *
 * Design: one epoll loop, level-triggered. Per connection one input buffer and one output buffer;
 * a read that did not fill the buffer goes back to epoll instead of reading again for EAGAIN
 * (level-triggered epoll reports what is left), which saves one syscall per request;
 * large bodies are not copied but sent from one static 1 MiB buffer of 'x' with writev. The head
 * for "/" is built once at start-up; a /size/N head is formatted with one snprintf.
 * The protocol is decided once per connection, on its first read; an HTTP/1.1 connection then
 * pays one branch per event for HTTP/2 existing. An HTTP/2 connection reuses the same in/out
 * buffers: input goes straight to nghttp2_session_mem_recv; frames are queued as iovecs, control
 * frames and small bodies copied into out[], /size/N DATA payloads as slices of the static body
 * buffer (NGHTTP2_DATA_FLAG_NO_COPY), so a large response is neither copied nor buffered whole:
 * nghttp2 pulls it frame by frame as the peer's flow-control window allows.
 * All state lives in struct origin, passed explicitly; nothing is global.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#define ORIGIN_IN_CAP 16384       /* one request head must fit */
#define ORIGIN_OUT_CAP 65536      /* stop parsing pipelined requests beyond this */
#define ORIGIN_BODY_CHUNK 1048576 /* static body buffer */
#define ORIGIN_MAX_SIZE (1UL << 30)
#define ORIGIN_MAX_EVENTS 256
#define ORIGIN_MAX_LISTENERS 8
#define ORIGIN_H2_STREAMS 128 /* SETTINGS_MAX_CONCURRENT_STREAMS, and the stream pool size */
#define ORIGIN_H2_IOV 64      /* queued output segments per HTTP/2 connection */
#define ORIGIN_H2_ROUNDS 16   /* reads per wake-up before other connections get a turn */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define ORIGIN_H2_PREFACE_LEN (sizeof h2_preface - 1)

/* What a connection speaks: decided by its first bytes. */
enum origin_proto { ORIGIN_SNIFF, ORIGIN_H1, ORIGIN_H2 };

/* One listening port and the name it answers with. */
struct listener {
    int fd;
    const char *name;
    char root_ka[256], root_close[256]; /* full responses for "/" */
    size_t root_ka_len, root_close_len, name_len;
    char grpc_msg[5 + 64]; /* gRPC message framing of NAME: flag 0, 4-byte big-endian length */
    size_t grpc_len;
};

struct h2c;

struct conn {
    int fd;
    const struct listener *l;
    bool closing;        /* close once the output is flushed */
    bool want_out;       /* EPOLLOUT is armed */
    unsigned char proto; /* enum origin_proto */
    struct h2c *h2;      /* owned; set once the connection is HTTP/2 */
    size_t in_len;
    size_t out_len, out_off;
    uint64_t body_left; /* static-body bytes still to send after out[] */
    uint64_t discard;   /* request-body bytes still to skip */
    char in[ORIGIN_IN_CAP];
    char out[ORIGIN_OUT_CAP];
};

struct origin {
    int ep, sfd;
    struct listener ls[ORIGIN_MAX_LISTENERS];
    int nls;
    char *body;                          /* ORIGIN_BODY_CHUNK bytes of 'x' */
    nghttp2_session_callbacks *h2cb;     /* shared by every HTTP/2 session */
};

static void h2c_free(struct h2c *h);

static void conn_free(struct origin *o, struct conn *c)
{
    if (c->h2)
        h2c_free(c->h2);
    epoll_ctl(o->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Case-insensitive search for header NAME (lower case, with ':') in head[0..len). Returns a
 * pointer to the value (leading spaces skipped) or NULL. The head starts after the request line. */
static const char *find_header(const char *head, size_t len, const char *name, size_t nlen)
{
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0) {
            p += nlen;
            while (p < eol && (*p == ' ' || *p == '\t'))
                p++;
            return p;
        }
        p = eol + 1;
    }
    return NULL;
}

static bool out_append(struct conn *c, const char *s, size_t n)
{
    if (c->out_len + n > ORIGIN_OUT_CAP)
        return false;
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    return true;
}

/* Parses one request at the start of c->in and queues its response. Returns bytes consumed,
 * 0 when more input is needed, -1 on a protocol error (the connection is closed after an error
 * response) or -2 when the output buffer is too full to take another response now. */
static long handle_one(struct origin *o, struct conn *c)
{
    char *buf = c->in;
    char *end = memmem(buf, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return c->in_len >= ORIGIN_IN_CAP ? -1 : 0;
    size_t head_len = (size_t)(end - buf) + 4;
    if (c->out_len + 512 > ORIGIN_OUT_CAP)
        return -2;

    char *sp1 = memchr(buf, ' ', head_len);
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', head_len - (size_t)(sp1 + 1 - buf)) : NULL;
    char *eol = memchr(buf, '\n', head_len);
    if (!sp1 || !sp2 || !eol || sp2 > eol || eol - sp2 < 9)
        return -1;
    bool head_only = (sp1 - buf == 4 && memcmp(buf, "HEAD", 4) == 0);
    bool http10 = memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    const char *hdrs = eol + 1;
    size_t hlen = head_len - (size_t)(hdrs - buf);

    bool keep = !http10;
    const char *v = find_header(hdrs, hlen, "connection:", 11);
    if (v) {
        if (strncasecmp(v, "close", 5) == 0)
            keep = false;
        else if (strncasecmp(v, "keep-alive", 10) == 0)
            keep = true;
    }
    if (find_header(hdrs, hlen, "transfer-encoding:", 18)) {
        static const char r501[] = "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
        out_append(c, r501, sizeof r501 - 1);
        c->closing = true;
        return (long)head_len;
    }
    v = find_header(hdrs, hlen, "content-length:", 15);
    if (v)
        c->discard = strtoull(v, NULL, 10);

    size_t plen = (size_t)(sp2 - sp1 - 1);
    const char *path = sp1 + 1;
    if (plen > 6 && memcmp(path, "/size/", 6) == 0) {
        uint64_t n = strtoull(path + 6, NULL, 10);
        if (n > ORIGIN_MAX_SIZE)
            n = ORIGIN_MAX_SIZE;
        char h[160];
        int hl = snprintf(h, sizeof h,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          "Content-Length: %llu\r\n%s\r\n",
                          (unsigned long long)n, keep ? "" : "Connection: close\r\n");
        out_append(c, h, (size_t)hl);
        if (!head_only) {
            /* Small bodies are copied so pipelined responses go out in one write. */
            if (n <= 4096 && c->out_len + n <= ORIGIN_OUT_CAP) {
                memcpy(c->out + c->out_len, o->body, n);
                c->out_len += n;
            } else {
                c->body_left = n;
            }
        }
    } else if (head_only) {
        const struct listener *l = c->l;
        const char *r = keep ? l->root_ka : l->root_close;
        size_t rl = (keep ? l->root_ka_len : l->root_close_len) - l->name_len - 1;
        out_append(c, r, rl);
    } else if (keep) {
        out_append(c, c->l->root_ka, c->l->root_ka_len);
    } else {
        out_append(c, c->l->root_close, c->l->root_close_len);
    }
    if (!keep)
        c->closing = true;
    return (long)head_len;
}

/* Writes queued output. Returns 1 when everything was written, 0 on EAGAIN, -1 on error. */
static int flush_out(struct origin *o, struct conn *c)
{
    while (c->out_off < c->out_len || c->body_left) {
        struct iovec iov[2];
        int n = 0;
        if (c->out_off < c->out_len) {
            iov[n].iov_base = c->out + c->out_off;
            iov[n].iov_len = c->out_len - c->out_off;
            n++;
        }
        if (c->body_left) {
            iov[n].iov_base = o->body;
            iov[n].iov_len = c->body_left < ORIGIN_BODY_CHUNK ? c->body_left : ORIGIN_BODY_CHUNK;
            n++;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t k = (size_t)w;
        size_t head = c->out_len - c->out_off;
        if (k >= head) {
            c->out_off = c->out_len = 0;
            c->body_left -= k - head;
        } else {
            c->out_off += k;
        }
    }
    c->out_off = c->out_len = 0;
    return 1;
}

static void arm_out(struct origin *o, struct conn *c, bool on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = on ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(o->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* ---------------------------------------------------------------- HTTP/2 (h2c, prior knowledge) */

/* One request stream; lives in its connection's pool from HEADERS to stream close. */
struct h2s {
    int next_free;    /* index of the next free slot, -1 at the end (while free) */
    bool head;        /* :method HEAD */
    bool size_path;   /* :path /size/N */
    bool grpc_path;   /* :path starts with /grpc */
    bool te_trailers; /* te: trailers */
    bool responded;
    bool trailers;   /* send the gRPC trailers after the body */
    uint64_t size;   /* N of /size/N */
    uint64_t left;   /* body bytes still to hand to nghttp2 */
    const char *src; /* small body copied from here; NULL: /size/N from the static buffer */
};

/* An HTTP/2 connection: the nghttp2 session and its output queue. The queue is a list of
 * iovecs into conn->out (serialized frames, copied by the send callback) and into the origin's
 * static body buffer (DATA payloads, not copied); it is written with writev and reset once
 * empty. Owned by its struct conn; freed by conn_free. */
struct h2c {
    struct origin *o;
    struct conn *c;
    nghttp2_session *s;
    size_t used; /* bytes of c->out the queue refers to */
    int iov_head, iov_n;
    bool tail_out; /* the last iovec ends at c->out + used (a copy may extend it) */
    struct iovec iov[ORIGIN_H2_IOV];
    int free_head; /* first free stream slot, -1 when all are in use */
    struct h2s streams[ORIGIN_H2_STREAMS];
};

#define ORIGIN_NV(NAME, VALUE)                                                                     \
    {                                                                                              \
        (uint8_t *)(NAME), (uint8_t *)(VALUE), sizeof(NAME) - 1, sizeof(VALUE) - 1,                \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }

static struct h2s *h2s_get(struct h2c *h)
{
    if (h->free_head < 0)
        return NULL;
    struct h2s *st = &h->streams[h->free_head];
    h->free_head = st->next_free;
    *st = (struct h2s){.next_free = -1};
    return st;
}

static void h2s_put(struct h2c *h, struct h2s *st)
{
    st->next_free = h->free_head;
    h->free_head = (int)(st - h->streams);
}

/* Copies up to n bytes into the output queue. Returns the bytes taken, 0 when it is full. */
static size_t h2q_copy(struct h2c *h, const uint8_t *p, size_t n)
{
    size_t room = ORIGIN_OUT_CAP - h->used;
    if (n > room)
        n = room;
    if (n == 0)
        return 0;
    char *dst = h->c->out + h->used;
    if (h->tail_out) {
        h->iov[h->iov_n - 1].iov_len += n;
    } else {
        if (h->iov_n == ORIGIN_H2_IOV)
            return 0;
        h->iov[h->iov_n++] = (struct iovec){.iov_base = dst, .iov_len = n};
        h->tail_out = true;
    }
    memcpy(dst, p, n);
    h->used += n;
    return n;
}

/* Writes the queue. Returns 1 when it is empty, 0 on EAGAIN, -1 on a socket error. */
static int h2q_flush(struct h2c *h)
{
    while (h->iov_head < h->iov_n) {
        ssize_t w = writev(h->c->fd, h->iov + h->iov_head, h->iov_n - h->iov_head);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t k = (size_t)w;
        while (k > 0) {
            struct iovec *v = &h->iov[h->iov_head];
            if (k >= v->iov_len) {
                k -= v->iov_len;
                h->iov_head++;
            } else {
                v->iov_base = (char *)v->iov_base + k;
                v->iov_len -= k;
                k = 0;
            }
        }
    }
    h->iov_head = h->iov_n = 0;
    h->used = 0;
    h->tail_out = false;
    return 1;
}

/* nghttp2 send callback: serialized frames (all but /size/N DATA) are copied into the queue. */
static ssize_t h2_on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags,
                          void *user_data)
{
    (void)s;
    (void)flags;
    size_t n = h2q_copy(user_data, data, len);
    return n ? (ssize_t)n : NGHTTP2_ERR_WOULDBLOCK;
}

/* nghttp2 send-data callback (NO_COPY DATA frames): the 9-byte header is copied, the payload
 * queued as a slice of the static body buffer. All or nothing, as nghttp2 requires. */
static int h2_on_send_data(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd,
                           size_t length, nghttp2_data_source *source, void *user_data)
{
    (void)s;
    (void)source;
    struct h2c *h = user_data;
    if (frame->data.padlen > 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE; /* no padding is ever selected */
    if (ORIGIN_OUT_CAP - h->used < 9 || h->iov_n + 2 > ORIGIN_H2_IOV)
        return NGHTTP2_ERR_WOULDBLOCK;
    h2q_copy(h, framehd, 9);
    if (length > 0) {
        h->iov[h->iov_n++] = (struct iovec){.iov_base = h->o->body, .iov_len = length};
        h->tail_out = false;
    }
    return 0;
}

/* Data provider: small bodies are copied from the listener's static text; /size/N bodies are
 * sent without a copy (NO_COPY: h2_on_send_data queues the static buffer). Sends the gRPC
 * trailers after the last byte when the stream asked for them. */
static ssize_t h2_on_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                               uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    (void)user_data;
    struct h2s *st = source->ptr;
    size_t n = st->left < length ? (size_t)st->left : length;
    if (n > ORIGIN_BODY_CHUNK)
        n = ORIGIN_BODY_CHUNK;
    if (st->src) {
        memcpy(buf, st->src, n);
        st->src += n;
    } else {
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    }
    st->left -= n;
    if (st->left == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->trailers) {
            static const nghttp2_nv trailers[] = {ORIGIN_NV("grpc-status", "0"),
                                                  ORIGIN_NV("grpc-message", "OK")};
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (nghttp2_submit_trailer(s, id, trailers, 2) != 0)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }
    return (ssize_t)n;
}

static bool is_request_headers(const nghttp2_frame *frame)
{
    return frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST;
}

static int h2_on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *user_data)
{
    if (!is_request_headers(frame))
        return 0;
    struct h2s *st = h2s_get(user_data);
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream only */
    if (nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, st) != 0) {
        h2s_put(user_data, st);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

/* :path decides the answer, as the HTTP/1.1 request line does. */
static void h2s_set_path(struct h2s *st, const uint8_t *v, size_t len)
{
    if (len > 6 && memcmp(v, "/size/", 6) == 0) {
        uint64_t n = 0;
        for (size_t i = 6; i < len && v[i] >= '0' && v[i] <= '9' && n <= ORIGIN_MAX_SIZE; i++)
            n = n * 10 + (uint64_t)(v[i] - '0');
        st->size_path = true;
        st->size = n > ORIGIN_MAX_SIZE ? ORIGIN_MAX_SIZE : n;
    } else if (len >= 5 && memcmp(v, "/grpc", 5) == 0) {
        st->grpc_path = true;
    }
}

static int h2_on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user_data)
{
    (void)flags;
    (void)user_data;
    if (!is_request_headers(frame))
        return 0;
    struct h2s *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (!st)
        return 0;
    if (namelen == 7 && memcmp(name, ":method", 7) == 0)
        st->head = valuelen == 4 && memcmp(value, "HEAD", 4) == 0;
    else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
        h2s_set_path(st, value, valuelen);
    else if (namelen == 2 && memcmp(name, "te", 2) == 0)
        st->te_trailers = valuelen == 8 && memcmp(value, "trailers", 8) == 0;
    return 0;
}

/* Submits the response of a complete request. Returns 0 or an nghttp2 error code. */
static int h2s_respond(struct h2c *h, int32_t id, struct h2s *st)
{
    const struct listener *l = h->c->l;
    char clen[24];
    nghttp2_nv nv[3] = {ORIGIN_NV(":status", "200")};
    size_t nnv = 1;
    if (st->grpc_path && st->te_trailers) {
        nv[nnv++] = (nghttp2_nv)ORIGIN_NV("content-type", "application/grpc");
        st->src = l->grpc_msg;
        st->left = l->grpc_len;
        st->trailers = !st->head;
    } else {
        uint64_t len = st->size_path ? st->size : l->name_len + 1;
        if (st->size_path) {
            nv[nnv++] = (nghttp2_nv)ORIGIN_NV("content-type", "application/octet-stream");
            st->src = NULL;
        } else {
            nv[nnv++] = (nghttp2_nv)ORIGIN_NV("content-type", "text/plain");
            st->src = l->root_ka + l->root_ka_len - len; /* "NAME\n" ends the "/" response */
        }
        int n = snprintf(clen, sizeof clen, "%llu", (unsigned long long)len);
        nv[nnv++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)clen, 14, (size_t)n,
                                 NGHTTP2_NV_FLAG_NO_COPY_NAME};
        st->left = len;
    }
    if (st->head)
        st->left = 0;
    st->responded = true;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = h2_on_read_body};
    return nghttp2_submit_response(h->s, id, nv, nnv, st->left ? &prd : NULL);
}

/* A request is answered when it ends: END_STREAM on its HEADERS or on its last DATA frame
 * (the body was discarded chunk by chunk; nghttp2 returns the window automatically). */
static int h2_on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user_data)
{
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct h2s *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (!st || st->responded)
        return 0;
    return h2s_respond(user_data, frame->hd.stream_id, st) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int h2_on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *user_data)
{
    (void)error_code;
    struct h2s *st = nghttp2_session_get_stream_user_data(s, id);
    if (st)
        h2s_put(user_data, st);
    return 0;
}

/* The callbacks every session shares; made once at start-up. Returns NULL on failure. */
static nghttp2_session_callbacks *h2_callbacks_new(void)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return NULL;
    nghttp2_session_callbacks_set_send_callback(cb, h2_on_send);
    nghttp2_session_callbacks_set_send_data_callback(cb, h2_on_send_data);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
    return cb;
}

/* A server session for connection c with our SETTINGS queued. Returns NULL on failure. */
static struct h2c *h2c_new(struct origin *o, struct conn *c)
{
    struct h2c *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    h->o = o;
    h->c = c;
    h->used = 0;
    h->iov_head = h->iov_n = 0;
    h->tail_out = false;
    for (int i = 0; i < ORIGIN_H2_STREAMS; i++)
        h->streams[i].next_free = i + 1 < ORIGIN_H2_STREAMS ? i + 1 : -1;
    h->free_head = 0;
    if (nghttp2_session_server_new(&h->s, o->h2cb, h) != 0) {
        free(h);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, ORIGIN_H2_STREAMS},
    };
    if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, 1) != 0) {
        h2c_free(h);
        return NULL;
    }
    return h;
}

/* Frees the session; stream slots go with the struct (nghttp2_session_del calls no callback). */
static void h2c_free(struct h2c *h)
{
    nghttp2_session_del(h->s);
    free(h);
}

/* Lets nghttp2 fill the queue and writes it, until nghttp2 has nothing more to send (1), the
 * socket is full (0) or fails (-1). */
static int h2_output(struct h2c *h)
{
    for (;;) {
        if (nghttp2_session_send(h->s) != 0)
            return -1;
        if (h->iov_n == 0)
            return 1;
        int f = h2q_flush(h);
        if (f <= 0)
            return f;
    }
}

/* Reads once and feeds the bytes to nghttp2. Returns 1 when the socket may hold more, 0 when
 * it is drained, -1 to close (EOF, socket or protocol error). */
static int h2_input(struct h2c *h)
{
    struct conn *c = h->c;
    ssize_t r;
    do {
        r = read(c->fd, c->in, ORIGIN_IN_CAP);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    if (r == 0)
        return -1;
    if (nghttp2_session_mem_recv(h->s, (const uint8_t *)c->in, (size_t)r) < 0)
        return -1;
    return (size_t)r == ORIGIN_IN_CAP ? 1 : 0;
}

/* Runs an HTTP/2 connection as far as it can go: output first (EPOLLOUT replaces EPOLLIN while
 * the socket is full, as for HTTP/1.1), then input. drained: the last read emptied the socket. */
static void h2_run(struct origin *o, struct conn *c, bool drained)
{
    struct h2c *h = c->h2;
    for (int round = 0;; round++) {
        int f = h2_output(h);
        if (f < 0)
            break;
        arm_out(o, c, f == 0);
        if (f == 0)
            return;
        if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s))
            break;
        if (drained || round == ORIGIN_H2_ROUNDS)
            return; /* level-triggered epoll reports input still waiting */
        int r = h2_input(h);
        if (r < 0)
            break;
        drained = r == 0;
    }
    conn_free(o, c);
}

/* Switches a connection whose buffered input starts with the preface to HTTP/2. */
static void h2_start(struct origin *o, struct conn *c, bool drained)
{
    c->h2 = h2c_new(o, c);
    if (!c->h2) {
        conn_free(o, c);
        return;
    }
    c->proto = ORIGIN_H2;
    ssize_t r = nghttp2_session_mem_recv(c->h2->s, (const uint8_t *)c->in, c->in_len);
    c->in_len = 0;
    if (r < 0) {
        conn_free(o, c);
        return;
    }
    h2_run(o, c, drained);
}

/* The first read of a connection: its bytes decide the protocol. Returns ORIGIN_H1 or
 * ORIGIN_H2 once decided, ORIGIN_SNIFF when more bytes are needed or nothing was read, -1
 * when the connection was closed (and freed). */
static int conn_sniff(struct origin *o, struct conn *c, bool *drained)
{
    size_t room = ORIGIN_IN_CAP - c->in_len;
    ssize_t r = read(c->fd, c->in + c->in_len, room);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return ORIGIN_SNIFF;
    if (r <= 0) {
        conn_free(o, c);
        return -1;
    }
    c->in_len += (size_t)r;
    *drained = (size_t)r < room;
    size_t n = c->in_len < ORIGIN_H2_PREFACE_LEN ? c->in_len : ORIGIN_H2_PREFACE_LEN;
    if (memcmp(c->in, h2_preface, n) != 0)
        return ORIGIN_H1;
    return n == ORIGIN_H2_PREFACE_LEN ? ORIGIN_H2 : ORIGIN_SNIFF;
}

/* Runs the connection as far as it can go without blocking. */
static void conn_run(struct origin *o, struct conn *c)
{
    bool drained = false; /* the last read left the socket empty: epoll reports more input */
    if (c->proto != ORIGIN_H1) {
        if (c->proto == ORIGIN_H2) {
            h2_run(o, c, false);
            return;
        }
        int p = conn_sniff(o, c, &drained);
        if (p == ORIGIN_H2)
            h2_start(o, c, drained);
        if (p != ORIGIN_H1)
            return;
        c->proto = ORIGIN_H1;
    }
    for (;;) {
        /* Parse every complete request already buffered (pipelining). */
        size_t off = 0;
        while (!c->closing && c->body_left == 0) {
            if (c->discard) {
                size_t k = c->in_len - off < c->discard ? c->in_len - off : c->discard;
                off += k;
                c->discard -= k;
                if (c->discard)
                    break;
            }
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
            off = 0;
            long r = handle_one(o, c);
            if (r == 0 || r == -2)
                break;
            if (r < 0) {
                static const char r400[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                           "Connection: close\r\n\r\n";
                out_append(c, r400, sizeof r400 - 1);
                c->closing = true;
                c->in_len = 0;
                break;
            }
            off = (size_t)r;
        }
        if (off) {
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
        }

        int f = flush_out(o, c);
        if (f < 0) {
            conn_free(o, c);
            return;
        }
        if (f == 0) {
            arm_out(o, c, true);
            return;
        }
        if (c->closing) {
            shutdown(c->fd, SHUT_WR);
            conn_free(o, c);
            return;
        }
        arm_out(o, c, false);

        /* Output drained: read more, unless the last read already emptied the socket. */
        if (drained)
            return;
        if (c->in_len >= ORIGIN_IN_CAP) {
            conn_free(o, c);
            return;
        }
        ssize_t r = read(c->fd, c->in + c->in_len, ORIGIN_IN_CAP - c->in_len);
        if (r == 0) {
            conn_free(o, c);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR)
                continue;
            conn_free(o, c);
            return;
        }
        size_t room = ORIGIN_IN_CAP - c->in_len;
        c->in_len += (size_t)r;
        if ((size_t)r < room)
            drained = true;
    }
}

static void on_accept(struct origin *o, const struct listener *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors: try again on the next event */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->l = l;
        c->closing = c->want_out = false;
        c->proto = ORIGIN_SNIFF;
        c->h2 = NULL;
        c->in_len = c->out_len = c->out_off = 0;
        c->body_left = c->discard = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(o->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: origin --port P --name NAME [--host ADDR]\n"
                    "       origin --listen PORT:NAME [--listen PORT:NAME ...] [--host ADDR]\n"
                    "HTTP/1.1, and HTTP/2 cleartext with prior knowledge, on every port.\n");
    exit(2);
}

/* Adds a listener answering NAME on PORT (bound later). */
/* (Re)builds l's full responses for "/" with status line code ("200 OK", "500 ..."). */
static void listener_root(struct listener *l, const char *code)
{
    l->root_ka_len = (size_t)snprintf(l->root_ka, sizeof l->root_ka,
                                      "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
                                      "Content-Length: %zu\r\n\r\n%s\n",
                                      code, l->name_len + 1, l->name);
    l->root_close_len = (size_t)snprintf(l->root_close, sizeof l->root_close,
                                         "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
                                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                                         code, l->name_len + 1, l->name);
}

static void add_listener(struct origin *o, long port, const char *name)
{
    if (o->nls >= ORIGIN_MAX_LISTENERS || port < 1 || port > 65535 || !name || !*name ||
        strlen(name) > 64)
        usage();
    struct listener *l = &o->ls[o->nls++];
    l->fd = (int)port; /* the port until bind replaces it with the socket */
    l->name = name;
    l->name_len = strlen(name);
    listener_root(l, "200 OK");
    l->grpc_msg[0] = 0; /* not compressed */
    for (int i = 0; i < 4; i++)
        l->grpc_msg[1 + i] = (char)((l->name_len >> (8 * (3 - i))) & 0xff);
    memcpy(l->grpc_msg + 5, name, l->name_len);
    l->grpc_len = 5 + l->name_len;
}

static int listen_on(const char *host, long port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "origin: bad --host %s\n", host);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "origin: cannot listen on %s:%ld: %s\n", host, port, strerror(errno));
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct origin o = {.nls = 0};
    const char *host = "127.0.0.1";
    long port = -1;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--port") == 0) {
            port = strtol(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--name") == 0) {
            name = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--host") == 0) {
            host = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--listen") == 0) {
            char *end;
            long p = strtol(argv[++i], &end, 10);
            if (*end != ':')
                usage();
            add_listener(&o, p, end + 1);
        } else {
            usage();
        }
    }
    if (port != -1 || name)
        add_listener(&o, port, name);
    if (o.nls == 0)
        usage();

    o.body = malloc(ORIGIN_BODY_CHUNK);
    if (!o.body)
        return 1;
    memset(o.body, 'x', ORIGIN_BODY_CHUNK);
    o.h2cb = h2_callbacks_new();
    if (!o.h2cb) {
        fprintf(stderr, "origin: cannot create the nghttp2 callbacks\n");
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    o.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    o.ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < o.nls; i++) {
        o.ls[i].fd = listen_on(host, o.ls[i].fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &o.ls[i]};
        epoll_ctl(o.ep, EPOLL_CTL_ADD, o.ls[i].fd, &ev);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &o.sfd};
    epoll_ctl(o.ep, EPOLL_CTL_ADD, o.sfd, &ev);

    printf("ready\n");
    fflush(stdout);

    struct epoll_event evs[ORIGIN_MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(o.ep, evs, ORIGIN_MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &o.sfd) {
                struct signalfd_siginfo si;
                if (read(o.sfd, &si, sizeof si) == (ssize_t)sizeof si &&
                    (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2)) {
                    for (int k = 0; k < o.nls; k++)
                        listener_root(&o.ls[k], si.ssi_signo == SIGUSR1
                                                    ? "500 Internal Server Error"
                                                    : "200 OK");
                    continue;
                }
                /* Connections are not tracked in a list: the process exit closes them. */
                for (int k = 0; k < o.nls; k++)
                    close(o.ls[k].fd);
                free(o.body);
                nghttp2_session_callbacks_del(o.h2cb);
                return 0;
            }
            struct listener *l = NULL;
            for (int k = 0; k < o.nls && !l; k++)
                if (p == &o.ls[k])
                    l = &o.ls[k];
            if (l)
                on_accept(&o, l);
            else
                conn_run(&o, p);
        }
    }
}

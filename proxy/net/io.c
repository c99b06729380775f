/* io.c - non-blocking sockets with evbuffers: direct reads, end-of-callback writes. */
#include "proxy/net/io.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/cut.h"
#include "proxy/net/tls.h"

#define IO_READ_CHUNK 16384
#define IO_READS_PER_EVENT 4

void io_loop_init(struct io_loop *l, struct event_base *base)
{
    l->base = base;
    l->dirty = NULL;
    l->nbufs = l->nevs = 0;
}

void io_loop_dispose(struct io_loop *l)
{
    while (l->nbufs)
        evbuffer_free(l->bufs[--l->nbufs]);
    while (l->nevs)
        free(l->evs[--l->nevs]);
}

/* ---- spares: what an idle io gives back ----------------------------------------------------- */

static struct evbuffer *buf_take(struct io_loop *l)
{
    return l->nbufs ? l->bufs[--l->nbufs] : evbuffer_new();
}

/* b holds no chain: a spare is as good as a new buffer. */
static void buf_give(struct io_loop *l, struct evbuffer *b)
{
    if (l->nbufs < IO_SPARES)
        l->bufs[l->nbufs++] = b;
    else
        evbuffer_free(b);
}

/* A buffer that may still hold data or an empty chain is freed, never kept. */
static void buf_release(struct io_loop *l, struct evbuffer *b, int clean)
{
    if (!b)
        return;
    if (clean && evbuffer_get_length(b) == 0)
        buf_give(l, b);
    else
        evbuffer_free(b);
}

static void on_writable(evutil_socket_t fd, short what, void *arg);

/* The write event, taken the first time a write must wait. 0 or -1 (no memory). */
static int wev_take(struct io *io)
{
    struct io_loop *l = io->loop;
    struct event *e = l->nevs ? l->evs[--l->nevs] : malloc(event_get_struct_event_size());
    if (!e)
        return -1;
    event_assign(e, l->base, io->fd, EV_WRITE, on_writable, io);
    io->wev = e;
    return 0;
}

static void wev_release(struct io *io)
{
    struct io_loop *l = io->loop;
    struct event *e = io->wev;
    if (!e)
        return;
    io->wev = NULL;
    event_del(e);
    if (l->nevs < IO_SPARES)
        l->evs[l->nevs++] = e;
    else
        free(e);
}

static void dirty_unlink(struct io *io)
{
    if (!io->dirty)
        return;
    if (io->dprev)
        io->dprev->dnext = io->dnext;
    else
        io->loop->dirty = io->dnext;
    if (io->dnext)
        io->dnext->dprev = io->dprev;
    io->dnext = io->dprev = NULL;
    io->dirty = 0;
}

void io_mark(struct io *io)
{
    if (io->dirty || io->write_armed || io->connecting || io->failed)
        return; /* already queued, or the write event will take it */
    io->dirty = 1;
    io->dprev = NULL;
    io->dnext = io->loop->dirty;
    if (io->dnext)
        io->dnext->dprev = io;
    io->loop->dirty = io;
}

/* 0, or -1 when no write event could be had (out of memory: the caller fails the io). */
static int arm_write(struct io *io)
{
    if (!io->write_armed) {
        if (!io->wev && wev_take(io) < 0)
            return -1;
        io->write_armed = 1;
        event_add(io->wev, io->write_timeout);
    }
    return 0;
}

static void disarm_write(struct io *io)
{
    if (io->write_armed) {
        io->write_armed = 0;
        event_del(io->wev);
    }
}

/* Writes what it can. Returns 1 when the drain callback should run, 0 when not, -1 after an
 * error was reported (io may be gone). */
static int tls_write(struct io *io);

/* One sendmsg of up to IO_WRITE_IOV extents of out. sendmsg rather than writev: on a socket it
 * skips the file-position lock and the VFS layer, and MSG_NOSIGNAL replaces SIGPIPE. Returns the
 * bytes written and sets *full when the kernel took less than offered (the socket buffer is full:
 * the caller arms EV_WRITE instead of trying again for EAGAIN). */
#define IO_WRITE_IOV 16
static ssize_t send_some(struct io *io, int *full)
{
    struct evbuffer_iovec v[IO_WRITE_IOV];
    int nv = evbuffer_peek(io->out, -1, NULL, v, IO_WRITE_IOV);
    if (nv > IO_WRITE_IOV)
        nv = IO_WRITE_IOV;
    size_t offered = 0;
    for (int i = 0; i < nv; i++)
        offered += v[i].iov_len;
    struct msghdr m = {.msg_iov = (struct iovec *)v, .msg_iovlen = (size_t)nv};
    ssize_t n = __builtin_expect(io->tp != NULL, 0)
                    ? io->tp->writev(io->tp, m.msg_iov, nv)
                    : sendmsg(io->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
        evbuffer_drain(io->out, (size_t)n);
        *full = (size_t)n < offered;
    }
    return n;
}

static int do_write(struct io *io)
{
    if (io->ssl)
        return tls_write(io);
    size_t before = evbuffer_get_length(io->out);
    while (evbuffer_get_length(io->out) > 0) {
        int full = 0;
        ssize_t n = send_some(io, &full);
        if (n > 0 && !full)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
            if (arm_write(io) == 0)
                return evbuffer_get_length(io->out) < before &&
                       evbuffer_get_length(io->out) <= io->drain_mark;
            errno = ENOMEM;
        }
        io->err = errno;
        io->failed = 1;
        disarm_write(io);
        io->on_event(io, IO_ERROR, io->arg);
        return -1;
    }
    disarm_write(io);
    return before > 0;
}

/* ---- TLS ----------------------------------------------------------------------------------- */

#define IO_TLS_RECORD 16384 /* one full TLS record of plaintext per SSL_write / SSL_read */

/* The thread's OpenSSL error queue emptied before an SSL call whose SSL_get_error must judge it
 * alone. OpenSSL 3's ERR_clear_error walks all of its slots (~700 instructions, twice per
 * request on TLS); the queue is almost always empty already, which ERR_peek_error sees for less. */
static void err_reset(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* A TLS failure: no close_notify will be sent; reported as IO_ERROR. */
static void tls_fail(struct io *io, int err)
{
    ERR_clear_error();
    io->tls_dead = 1;
    io->err = err ? err : EPROTO;
    io->failed = 1;
    io_pause_read(io);
    disarm_write(io);
    io->on_event(io, IO_ERROR, io->arg);
}

/* Same contract as do_write. Writes at most one record per SSL_write (the first bytes of out
 * made contiguous: small chains such as chunk-size lines are coalesced into one record). */
static int tls_write(struct io *io)
{
    if (io->tls_handshaking)
        return 0; /* the handshake's own events carry on; output waits */
    size_t before = evbuffer_get_length(io->out);
    size_t len;
    while ((len = evbuffer_get_length(io->out)) > 0) {
        size_t n = len < IO_TLS_RECORD ? len : IO_TLS_RECORD;
        const unsigned char *p = evbuffer_pullup(io->out, (ssize_t)n);
        if (!p) {
            tls_fail(io, ENOMEM);
            return -1;
        }
        err_reset();
        int w = SSL_write(io->ssl, p, (int)n);
        if (w > 0) {
            evbuffer_drain(io->out, (size_t)w);
            continue;
        }
        int e = SSL_get_error(io->ssl, w);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            if (e == SSL_ERROR_WANT_READ) {
                io->tls_write_wants_read = 1; /* retried from the read event */
            } else if (arm_write(io) < 0) {
                tls_fail(io, ENOMEM);
                return -1;
            }
            return evbuffer_get_length(io->out) < before &&
                   evbuffer_get_length(io->out) <= io->drain_mark;
        }
        tls_fail(io, e == SSL_ERROR_SYSCALL ? errno : EPROTO);
        return -1;
    }
    disarm_write(io);
    return before > 0;
}

/* A client handshake completed: report IO_CONNECTED, then come back for application data that
 * OpenSSL may already hold (it makes no socket event). */
static void tls_client_ready(struct io *io)
{
    int alive = 1;
    io->alive = &alive;
    io->on_event(io, IO_CONNECTED, io->arg);
    if (!alive)
        return;
    io->alive = NULL;
    if (io->reading)
        event_active(&io->rev, EV_READ, 1);
}

/* Advances the handshake. Returns 1 when it completed, 0 when it waits for the socket, -1 when
 * it failed (reported; io may be gone). */
static int tls_handshake(struct io *io)
{
    err_reset();
    int r = SSL_do_handshake(io->ssl);
    if (r == 1) {
        io->tls_handshaking = 0;
        disarm_write(io);
        return 1;
    }
    int e = SSL_get_error(io->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE && arm_write(io) == 0)
        return 0;
    tls_fail(io, e == SSL_ERROR_WANT_WRITE ? ENOMEM : EPROTO); /* protocol version, no shared cipher, bad client certificate, ... */
    return -1;
}

/* One read into a single extent: bytes, 0 at the peer's close, or -1 with errno (EAGAIN when
 * the socket has nothing more). */
static ssize_t tls_read(struct io *io, void *p, size_t cap)
{
    err_reset();
    int n = SSL_read(io->ssl, p, (int)cap);
    if (n > 0)
        return n;
    int e = SSL_get_error(io->ssl, n);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE: /* a post-handshake message to send first */
        io->tls_read_wants_write = 1;
        if (arm_write(io) < 0) {
            io->tls_dead = 1;
            errno = ENOMEM;
            return -1;
        }
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN: /* close_notify, or a bare TCP close (IGNORE_UNEXPECTED_EOF) */
        return 0;
    case SSL_ERROR_SYSCALL:
        io->tls_dead = 1;
        ERR_clear_error();
        if (errno == 0)
            return 0;
        return -1;
    default:
        io->tls_dead = 1;
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

int io_tls_accept(struct io *io, struct tls_ctx *t)
{
    SSL *ssl = tls_ssl_new(t);
    if (!ssl)
        return CUT_ENOMEM;
    if (SSL_set_fd(ssl, io->fd) != 1) {
        ERR_clear_error();
        tls_ssl_free(ssl);
        return CUT_ENOMEM;
    }
    io->ssl = ssl;
    io->tls_handshaking = 1;
    return 0;
}

int io_tls_connect(struct io *io, SSL *ssl)
{
    if (SSL_set_fd(ssl, io->fd) != 1) {
        ERR_clear_error();
        return CUT_ENOMEM;
    }
    io->ssl = ssl;
    io->tls_client = 1;
    io->tls_handshaking = 1; /* output waits for the handshake, which waits for TCP */
    return 0;
}

size_t io_tls_failure(const struct io *io, char *buf, size_t cap)
{
    if (!io->ssl)
        return (size_t)snprintf(buf, cap, "not TLS");
    return tls_ssl_failure(io->ssl, buf, cap);
}

int io_tls_resumed(const struct io *io)
{
    return io->ssl && !io->tls_handshaking && tls_ssl_resumed(io->ssl);
}

int io_is_tls(const struct io *io)
{
    return io->ssl != NULL;
}

int io_take_tls(struct io *dst, struct io *src)
{
    if (!src->ssl || src->tls_handshaking || dst->ssl)
        return CUT_EINVAL;
    if (SSL_set_fd(src->ssl, dst->fd) != 1)
        return CUT_EIO;
    dst->ssl = src->ssl;
    src->ssl = NULL; /* src now closes its own descriptor only: no close_notify */
    if (SSL_has_pending(dst->ssl))
        event_active(&dst->rev, EV_READ, 1); /* decrypted bytes already inside the session */
    return 0;
}

const char *io_alpn(const struct io *io)
{
    if (!io->ssl || io->tls_handshaking)
        return NULL;
    return tls_ssl_alpn(io->ssl);
}

size_t io_peer_subject(const struct io *io, char *buf, size_t cap)
{
    if (!io->ssl || io->tls_handshaking || cap == 0) {
        if (cap)
            buf[0] = '\0';
        return 0;
    }
    return tls_ssl_peer_subject(io->ssl, buf, cap);
}

/* Sends close_notify once, without blocking, when the connection is healthy. */
static void tls_close_notify(struct io *io)
{
    if (!io->ssl || io->tls_dead || io->failed || io->tls_handshaking || io->fd < 0)
        return;
    if (SSL_get_shutdown(io->ssl) & SSL_SENT_SHUTDOWN)
        return;
    ERR_clear_error();
    SSL_shutdown(io->ssl);
    ERR_clear_error();
}

void io_shutdown_write(struct io *io)
{
    tls_close_notify(io);
    if (io->tp)
        io->tp->shutdown_write(io->tp);
    else
        shutdown(io->fd, SHUT_WR);
}

void io_loop_flush(struct io_loop *l)
{
    struct io *io;
    while ((io = l->dirty) != NULL) {
        dirty_unlink(io);
        if (do_write(io) == 1 && io->on_drain)
            io->on_drain(io, io->arg);
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct io *io = arg;
    struct io_loop *l = io->loop;
    (void)what;
    size_t got = 0;
    if (io->ssl) {
        if (io->tls_write_wants_read) { /* a write waited for this */
            io->tls_write_wants_read = 0;
            if (do_write(io) < 0) {
                io_loop_flush(l);
                return;
            }
        }
        if (io->tls_handshaking) {
            if (tls_handshake(io) <= 0) {
                io_loop_flush(l);
                return;
            }
            if (io->tls_client) {
                tls_client_ready(io);
                io_loop_flush(l);
                return;
            }
        }
    }
    if (!io->in && io_wake(io) < 0) { /* asleep: buffers again */
        io->err = ENOMEM;
        io->failed = 1;
        io_pause_read(io);
        io->on_event(io, IO_ERROR, io->arg);
        io_loop_flush(l);
        return;
    }
    for (int i = 0; i < IO_READS_PER_EVENT; i++) {
        if (io->read_max && evbuffer_get_length(io->in) >= io->read_max) {
            io_pause_read(io); /* the owner resumes once it consumed enough */
            break;
        }
        struct evbuffer_iovec v[2];
        int nv;
        ssize_t n;
        if (io->ssl) { /* one extent that holds a whole record */
            nv = evbuffer_reserve_space(io->in, IO_TLS_RECORD, v, 1);
            if (nv <= 0)
                break;
            n = tls_read(io, v[0].iov_base, v[0].iov_len);
        } else {
            nv = evbuffer_reserve_space(io->in, IO_READ_CHUNK, v, 2);
            if (nv <= 0)
                break;
            struct msghdr m = {.msg_iov = (struct iovec *)v, .msg_iovlen = (size_t)nv};
            n = __builtin_expect(io->tp != NULL, 0) ? io->tp->readv(io->tp, m.msg_iov, nv)
                                                    : recvmsg(fd, &m, MSG_DONTWAIT);
        }
        if (n > 0) {
            size_t left = (size_t)n;
            for (int k = 0; k < nv; k++) {
                if (v[k].iov_len > left)
                    v[k].iov_len = left;
                left -= v[k].iov_len;
            }
            evbuffer_commit_space(io->in, v, nv);
            io->in_chain = 0; /* the chain holds data now: draining it frees it */
            got += (size_t)n;
            if (io->ssl) {
                if (!SSL_has_pending(io->ssl) && (size_t)n < IO_TLS_RECORD)
                    break; /* the rest (if any) is in the kernel: the level-triggered event
                            * fires again */
                continue;
            }
            if ((size_t)n < IO_READ_CHUNK)
                break; /* the socket is most likely empty: skip the EAGAIN round trip */
            continue;
        }
        evbuffer_commit_space(io->in, v, 0);
        if (evbuffer_get_length(io->in) == 0)
            io->in_chain = 1; /* the reserved chain stays, empty: io_sleep frees it */
        if (n == 0) {
            io->eof = 1;
            io_pause_read(io);
            if (got) { /* deliver what came before the close first */
                int alive = 1;
                io->alive = &alive;
                io->on_read(io, io->arg);
                if (!alive) {
                    io_loop_flush(l);
                    return;
                }
                io->alive = NULL;
            }
            io->on_event(io, IO_EOF, io->arg);
            io_loop_flush(l);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        io->err = errno;
        io->failed = 1;
        io_pause_read(io);
        io->on_event(io, IO_ERROR, io->arg);
        io_loop_flush(l);
        return;
    }
    /* Decrypted bytes held inside OpenSSL make no socket event: come back for them. */
    if (io->ssl && io->reading && SSL_has_pending(io->ssl))
        event_active(&io->rev, EV_READ, 1);
    if (got)
        io->on_read(io, io->arg);
    io_loop_flush(l);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct io *io = arg;
    struct io_loop *l = io->loop;
    io->write_armed = 0;
    if (what & EV_TIMEOUT) {
        io->on_event(io, IO_TIMEOUT, io->arg);
        io_loop_flush(l);
        return;
    }
    if (io->ssl && io->tls_read_wants_write) {
        io->tls_read_wants_write = 0;
        if (io->reading)
            event_active(&io->rev, EV_READ, 1);
    }
    if (io->connecting) {
        int e = 0;
        socklen_t el = sizeof e;
        io->connecting = 0;
        if (io->err)
            e = io->err; /* connect() itself failed */
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
            e = errno;
        if (e) {
            io->err = e;
            io->failed = 1;
            io->on_event(io, IO_ERROR, io->arg);
        } else if (io->ssl) { /* TCP is up: the TLS handshake follows; it reports CONNECTED */
            io_resume_read(io);
            if (tls_handshake(io) == 1)
                tls_client_ready(io);
        } else {
            io_resume_read(io);
            io->on_event(io, IO_CONNECTED, io->arg);
        }
        io_loop_flush(l);
        return;
    }
    if (io->ssl && io->tls_handshaking) {
        if (tls_handshake(io) == 1) {
            if (io->tls_client)
                tls_client_ready(io);
            else if (io->reading)
                event_active(&io->rev, EV_READ, 1); /* application data may already be there */
        }
        io_loop_flush(l);
        return;
    }
    dirty_unlink(io);
    if (do_write(io) == 1 && io->on_drain)
        io->on_drain(io, io->arg);
    io_loop_flush(l);
}

static int setup(struct io *io, struct io_loop *l, int fd, io_read_fn r, io_drain_fn d,
                 io_event_fn e, void *arg)
{
    memset(io, 0, sizeof *io);
    io->fd = fd;
    io->loop = l;
    io->on_read = r;
    io->on_drain = d;
    io->on_event = e;
    io->arg = arg;
    if (io_wake(io) < 0) {
        close(fd);
        return CUT_ENOMEM;
    }
    event_assign(&io->rev, l->base, fd, EV_READ | EV_PERSIST, on_readable, io);
    return 0;
}

int io_init(struct io *io, struct io_loop *l, int fd, io_read_fn r, io_drain_fn d, io_event_fn e,
            void *arg)
{
    int rc = setup(io, l, fd, r, d, e, arg);
    if (rc < 0)
        return rc;
    io_resume_read(io);
    return 0;
}

void io_set_transport(struct io *io, struct io_transport *t)
{
    CUT_ASSERT(io->ssl == NULL);
    io->tp = t;
    t->io = io;
}

void io_transport_writable(struct io_transport *t)
{
    if (t->io && t->io->write_armed)
        event_active(t->io->wev, EV_WRITE, 1);
}

int io_connect(struct io *io, struct io_loop *l, const struct sockaddr *addr, socklen_t len,
               io_read_fn r, io_drain_fn d, io_event_fn e, void *arg)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return CUT_EIO;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (setup(io, l, fd, r, d, e, arg) < 0)
        return CUT_EIO;
    if (wev_take(io) < 0) {
        io_dispose(io);
        return CUT_EIO;
    }
    io->connecting = 1;
    if (connect(fd, addr, len) < 0 && errno != EINPROGRESS) {
        /* Reported from the loop like any other failure, never from inside this call. */
        io->err = errno;
    }
    io->write_armed = 1;
    if (io->err)
        event_active(io->wev, EV_WRITE, 1);
    else
        event_add(io->wev, NULL);
    return 0;
}

void io_dispose(struct io *io)
{
    if (io->alive)
        *io->alive = 0;
    dirty_unlink(io);
    event_del(&io->rev);
    io->write_armed = 0;
    wev_release(io);
    if (io->ssl) {
        tls_close_notify(io);
        tls_ssl_free(io->ssl);
        io->ssl = NULL;
    }
    if (io->tp)
        io->tp->io = NULL;
    if (io->fd >= 0)
        close(io->fd);
    io->fd = -1;
    buf_release(io->loop, io->in, !io->in_chain);
    buf_release(io->loop, io->out, 1);
    io->in = io->out = NULL;
    io->in_chain = 0;
}

int io_sleep(struct io *io)
{
    struct evbuffer *in = io->in, *out = io->out;
    if (!in || io->dirty || io->write_armed || io->connecting || io->tls_write_wants_read ||
        evbuffer_get_length(out) || evbuffer_get_length(in))
        return 0;
    struct io_loop *l = io->loop;
    io->in = io->out = NULL;
    if (io->in_chain) { /* an empty chain is no spare: free it with its buffer */
        io->in_chain = 0;
        evbuffer_free(in);
    } else {
        buf_give(l, in);
    }
    buf_give(l, out);
    if (io->wev)
        wev_release(io);
    return 1;
}

int io_wake(struct io *io)
{
    if (io->in)
        return 0;
    struct io_loop *l = io->loop;
    io->in = buf_take(l);
    io->out = buf_take(l);
    if (!io->in || !io->out) {
        buf_release(l, io->in, 1);
        buf_release(l, io->out, 1);
        io->in = io->out = NULL;
        return CUT_ENOMEM;
    }
    return 0;
}

void io_pause_read(struct io *io)
{
    if (io->reading) {
        io->reading = 0;
        event_del(&io->rev);
    }
}

void io_resume_read(struct io *io)
{
    if (!io->reading && !io->eof && !io->failed) {
        io->reading = 1;
        event_add(&io->rev, NULL);
        if (io->ssl && !io->tls_handshaking && SSL_has_pending(io->ssl))
            event_active(&io->rev, EV_READ, 1);
    }
}

size_t io_pending(const struct io *io)
{
    return io->out ? evbuffer_get_length(io->out) : 0;
}

int io_parse_front(struct evbuffer *in, size_t max, io_parse_fn fn, void *ctx)
{
    size_t len = evbuffer_get_length(in);
    if (len == 0)
        return CUT_EAGAIN;
    size_t look = len < max ? len : max;
    struct evbuffer_iovec v;
    if (evbuffer_peek(in, -1, NULL, &v, 1) >= 1) {
        if (v.iov_len >= look)
            return fn(v.iov_base, look, ctx);
        int r = fn(v.iov_base, v.iov_len, ctx);
        if (r != CUT_EAGAIN)
            return r;
    }
    const char *p = (const char *)evbuffer_pullup(in, (ssize_t)look);
    if (!p)
        return CUT_ENOMEM;
    return fn(p, look, ctx);
}

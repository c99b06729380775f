/* io.c - non-blocking sockets with evbuffers: direct reads, end-of-callback writes. */
#include "io.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cut.h"

#define IO_READ_CHUNK 16384
#define IO_READS_PER_EVENT 4

void io_loop_init(struct io_loop *l, struct event_base *base)
{
    l->base = base;
    l->dirty = NULL;
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

static void arm_write(struct io *io)
{
    if (!io->write_armed) {
        io->write_armed = 1;
        event_add(&io->wev, io->write_timeout);
    }
}

static void disarm_write(struct io *io)
{
    if (io->write_armed) {
        io->write_armed = 0;
        event_del(&io->wev);
    }
}

/* Writes what it can. Returns 1 when the drain callback should run, 0 when not, -1 after an
 * error was reported (io may be gone). */
static int do_write(struct io *io)
{
    size_t before = evbuffer_get_length(io->out);
    while (evbuffer_get_length(io->out) > 0) {
        int n = evbuffer_write(io->out, io->fd);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm_write(io);
            return evbuffer_get_length(io->out) < before &&
                   evbuffer_get_length(io->out) <= io->drain_mark;
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
    for (int i = 0; i < IO_READS_PER_EVENT; i++) {
        if (io->read_max && evbuffer_get_length(io->in) >= io->read_max) {
            io_pause_read(io); /* the owner resumes once it consumed enough */
            break;
        }
        struct evbuffer_iovec v[2];
        int nv = evbuffer_reserve_space(io->in, IO_READ_CHUNK, v, 2);
        if (nv <= 0)
            break;
        ssize_t n = readv(fd, (struct iovec *)v, nv);
        if (n > 0) {
            size_t left = (size_t)n;
            for (int k = 0; k < nv; k++) {
                if (v[k].iov_len > left)
                    v[k].iov_len = left;
                left -= v[k].iov_len;
            }
            evbuffer_commit_space(io->in, v, nv);
            got += (size_t)n;
            if ((size_t)n < IO_READ_CHUNK)
                break; /* the socket is most likely empty: skip the EAGAIN round trip */
            continue;
        }
        evbuffer_commit_space(io->in, v, 0);
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
        } else {
            io_resume_read(io);
            io->on_event(io, IO_CONNECTED, io->arg);
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
    io->in = evbuffer_new();
    io->out = evbuffer_new();
    if (!io->in || !io->out) {
        if (io->in)
            evbuffer_free(io->in);
        if (io->out)
            evbuffer_free(io->out);
        close(fd);
        return CUT_ENOMEM;
    }
    event_assign(&io->rev, l->base, fd, EV_READ | EV_PERSIST, on_readable, io);
    event_assign(&io->wev, l->base, fd, EV_WRITE, on_writable, io);
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
    io->connecting = 1;
    if (connect(fd, addr, len) < 0 && errno != EINPROGRESS) {
        /* Reported from the loop like any other failure, never from inside this call. */
        io->err = errno;
    }
    io->write_armed = 1;
    if (io->err)
        event_active(&io->wev, EV_WRITE, 1);
    else
        event_add(&io->wev, NULL);
    return 0;
}

void io_dispose(struct io *io)
{
    if (io->alive)
        *io->alive = 0;
    dirty_unlink(io);
    event_del(&io->rev);
    event_del(&io->wev);
    if (io->fd >= 0)
        close(io->fd);
    io->fd = -1;
    evbuffer_free(io->in);
    evbuffer_free(io->out);
    io->in = io->out = NULL;
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
    }
}

size_t io_pending(const struct io *io)
{
    return evbuffer_get_length(io->out);
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

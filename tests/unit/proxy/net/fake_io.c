/* fake_io.c - an in-memory duplex pipe for struct io (see fake_io.h). */
#include "tests/unit/proxy/net/fake_io.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/cut.h"

/* The pipe holds one byte exactly while the io has something to read. */
static void signal_readable(struct fake_io *f)
{
    if (f->readable)
        return;
    char b = 1;
    if (write(f->pipe[1], &b, 1) == 1)
        f->readable = 1;
}

static void clear_readable(struct fake_io *f)
{
    if (!f->readable)
        return;
    char b;
    if (read(f->pipe[0], &b, 1) == 1)
        f->readable = 0;
}

static ssize_t on_readv(struct io_transport *t, const struct iovec *iov, int n)
{
    struct fake_io *f = (struct fake_io *)t;
    size_t len = evbuffer_get_length(f->in);
    if (len == 0) {
        if (f->in_end)
            return 0;
        clear_readable(f);
        errno = EAGAIN;
        return -1;
    }
    size_t got = 0;
    for (int i = 0; i < n && got < len; i++) {
        int k = evbuffer_remove(f->in, iov[i].iov_base, iov[i].iov_len);
        if (k < 0) {
            errno = EIO;
            return -1;
        }
        got += (size_t)k;
    }
    if (evbuffer_get_length(f->in) == 0 && !f->in_end)
        clear_readable(f);
    return (ssize_t)got;
}

static ssize_t on_writev(struct io_transport *t, const struct iovec *iov, int n)
{
    struct fake_io *f = (struct fake_io *)t;
    if (f->write_shut) {
        errno = EPIPE;
        return -1;
    }
    size_t room = f->cap - evbuffer_get_length(f->out);
    if (room == 0) {
        f->write_blocked = 1;
        errno = EAGAIN;
        return -1;
    }
    size_t put = 0;
    for (int i = 0; i < n && put < room; i++) {
        size_t k = iov[i].iov_len < room - put ? iov[i].iov_len : room - put;
        if (evbuffer_add(f->out, iov[i].iov_base, k) < 0) {
            errno = ENOMEM;
            return put ? (ssize_t)put : -1;
        }
        put += k;
    }
    if (put == room)
        f->write_blocked = 1; /* maybe short: io_transport_writable once the test took some */
    f->writes++;
    return (ssize_t)put;
}

static void on_shutdown_write(struct io_transport *t)
{
    ((struct fake_io *)t)->write_shut = 1;
}

int fake_io_init(struct fake_io *f, size_t cap)
{
    memset(f, 0, sizeof *f);
    f->tp.readv = on_readv;
    f->tp.writev = on_writev;
    f->tp.shutdown_write = on_shutdown_write;
    f->cap = cap;
    if (pipe2(f->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        f->pipe[0] = f->pipe[1] = -1;
        return CUT_EIO;
    }
    f->in = evbuffer_new();
    f->out = evbuffer_new();
    if (!f->in || !f->out) {
        fake_io_dispose(f);
        return CUT_ENOMEM;
    }
    return 0;
}

void fake_io_dispose(struct fake_io *f)
{
    for (int i = 0; i < 2; i++) {
        if (f->pipe[i] >= 0)
            close(f->pipe[i]);
        f->pipe[i] = -1;
    }
    if (f->in)
        evbuffer_free(f->in);
    if (f->out)
        evbuffer_free(f->out);
    f->in = f->out = NULL;
}

int fake_io_fd(struct fake_io *f)
{
    return fcntl(f->pipe[0], F_DUPFD_CLOEXEC, 0);
}

size_t fake_io_feed(struct fake_io *f, const void *p, size_t n)
{
    size_t have = evbuffer_get_length(f->in);
    size_t k = f->cap - have < n ? f->cap - have : n;
    if (k == 0 || f->in_end || evbuffer_add(f->in, p, k) < 0)
        return 0;
    signal_readable(f);
    return k;
}

size_t fake_io_feed_str(struct fake_io *f, const char *s)
{
    return fake_io_feed(f, s, strlen(s));
}

void fake_io_end_input(struct fake_io *f)
{
    f->in_end = 1;
    signal_readable(f);
}

char *fake_io_take(struct fake_io *f)
{
    size_t n = evbuffer_get_length(f->out);
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    evbuffer_remove(f->out, s, n);
    s[n] = '\0';
    if (n && f->write_blocked) {
        f->write_blocked = 0;
        io_transport_writable(&f->tp);
    }
    return s;
}

/* io.h - a lean non-blocking socket with libevent buffers, built for a proxy's data path.
 *
 * Why not bufferevent: a bufferevent asks the kernel how many bytes are readable (ioctl) before
 * every read, and writes only from the next loop turn after enabling and disabling EV_WRITE
 * (two epoll_ctl per response). Here reads go straight into reserved buffer space, and writes are
 * attempted at the end of the current callback (all sockets written to during one callback are
 * flushed together, one writev each); EV_WRITE is armed only when the kernel pushes back.
 *
 * Ownership: struct io is embedded in its owner (client or upstream connection), which calls
 * io_dispose() exactly once. Callbacks may dispose of their own io (or another one); io.c
 * touches nothing after calling back. Worker thread only.
 *
 * Idle connections: an owner that waits for its peer with nothing buffered puts its io to sleep
 * (io_sleep): the two buffers and the write event go back to the loop's spares, and only the
 * struct io and its read event stay (nginx frees an idle keep-alive connection's buffer the same
 * way). The next readable byte wakes it with spare (or new) buffers before on_read is called.
 */
#ifndef CUT_IO_H
#define CUT_IO_H

#include <event2/event_struct.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>

struct evbuffer;
struct event_base;
struct io;
struct iovec;
struct ssl_st;
struct tls_ctx;

#define IO_SPARES 32 /* empty buffers and write events a loop keeps for the next io to wake */

/* One per worker: the sockets with output to write at the end of the current callback, and the
 * spares that sleeping ios gave back (bounded: beyond IO_SPARES they are freed). */
struct io_loop {
    struct event_base *base;
    struct io *dirty;
    unsigned nbufs, nevs;
    struct evbuffer *bufs[IO_SPARES];
    struct event *evs[IO_SPARES];
};

enum io_what {
    IO_CONNECTED = 1, /* an io_connect() completed */
    IO_EOF = 2,       /* the peer closed its side (input may still hold bytes) */
    IO_ERROR = 4,     /* read, write or connect failed (errno is saved in io->err) */
    IO_TIMEOUT = 8    /* output could not be written for the write timeout */
};

typedef void (*io_read_fn)(struct io *io, void *arg);
typedef void (*io_drain_fn)(struct io *io, void *arg);
typedef void (*io_event_fn)(struct io *io, int what, void *arg);

/* A byte stream that is not a socket (unit tests: tests/unit/proxy/net/fake_io.h). The plain
 * path uses it instead of recvmsg/sendmsg/shutdown. Read readiness still comes from io->fd,
 * which the transport provides (the read end of a pipe it makes readable while it holds input:
 * never writable, so after a short write the transport calls io_transport_writable once it has
 * room). Same contract as the system calls: bytes, 0 at the end of the input, or -1 with errno
 * (EAGAIN: nothing now / no room). The transport is embedded in its owner, which outlives the
 * io; io is set by io_set_transport and cleared by io_dispose. */
struct io_transport;
typedef ssize_t (*io_transport_io_fn)(struct io_transport *t, const struct iovec *iov, int n);
typedef void (*io_transport_shutdown_fn)(struct io_transport *t);
struct io_transport {
    io_transport_io_fn readv;
    io_transport_io_fn writev;
    io_transport_shutdown_fn shutdown_write;
    struct io *io;
};

struct io {
    int fd;
    int err;
    struct io_loop *loop;
    struct evbuffer *in, *out; /* both NULL while asleep (io_sleep) */
    struct event rev;
    struct event *wev;    /* taken the first time a write must wait; NULL while asleep */
    io_read_fn on_read;   /* bytes were added to in */
    io_drain_fn on_drain; /* out shrank to drain_mark or below after a write */
    io_event_fn on_event;
    void *arg;
    unsigned read_max;    /* stop reading while in holds this much (0: no limit) */
    unsigned drain_mark;
    const struct timeval *write_timeout;
    struct io *dnext, *dprev;
    int *alive;           /* set while io.c calls back, cleared by io_dispose */
    struct ssl_st *ssl;   /* TLS mode (io_tls_accept); NULL: plain socket */
    struct io_transport *tp; /* NULL: a socket (tests only: io_set_transport) */
    unsigned reading : 1, read_armed : 1, write_armed : 1, connecting : 1, dirty : 1,
        eof : 1, failed : 1, in_chain : 1; /* in_chain: in may hold an empty chain */
    unsigned tls_handshaking : 1, tls_read_wants_write : 1, tls_write_wants_read : 1,
        tls_dead : 1, tls_client : 1;
};

void io_loop_init(struct io_loop *l, struct event_base *base);

/* Frees the spares (after every io of the loop was disposed, before the base is freed). */
void io_loop_dispose(struct io_loop *l);

/* Takes a connected non-blocking socket. Reading starts at once. Returns 0 or CUT_ENOMEM (the
 * socket is then closed and io_dispose must not be called). */
int io_init(struct io *io, struct io_loop *l, int fd, io_read_fn r, io_drain_fn d, io_event_fn e,
            void *arg);

/* Right after io_init() (whose fd is then the transport's readiness descriptor, closed by
 * io_dispose): reads, writes and the write half-close go through t (borrowed; it outlives the
 * io). Plain mode only: TLS over a transport is not supported. */
void io_set_transport(struct io *io, struct io_transport *t);

/* The transport has room again: an io waiting to write retries from the loop. */
void io_transport_writable(struct io_transport *t);

/* Starts a non-blocking connect; IO_CONNECTED or IO_ERROR follows from the loop (never from
 * this call). Returns 0, or CUT_EIO when no socket could be made (nothing to dispose). */
int io_connect(struct io *io, struct io_loop *l, const struct sockaddr *addr, socklen_t len,
               io_read_fn r, io_drain_fn d, io_event_fn e, void *arg);

/* Closes the socket and frees the buffers. In TLS mode a close_notify is attempted first
 * (without blocking) unless the connection failed. */
void io_dispose(struct io *io);

/* ---- TLS mode ------------------------------------------------------------------------------
 * io_tls_accept() right after io_init() turns the socket into a TLS server connection: the
 * handshake is driven by the read and write events; on_read is called only once it completed
 * (so the owner's first on_read may ask io_alpn() which protocol to speak); a failed handshake
 * is reported as IO_ERROR (err EPROTO). Afterwards in/out carry plaintext exactly as in plain
 * mode (SSL_read/SSL_write replace readv/writev; writes stay batched at the end of callbacks).
 * The SSL object holds a reference on t: a rotation never changes an open connection. */
int io_tls_accept(struct io *io, struct tls_ctx *t); /* 0 or CUT_ENOMEM (io stays plain) */

/* Right after io_connect(): the connection becomes a TLS client (ssl from tls_client_ssl_new,
 * owned by io from now on). The handshake starts once TCP is up; IO_CONNECTED is reported after
 * it completed, a failed handshake as IO_ERROR (err EPROTO; io_tls_failure says why). Output
 * queued before waits. Returns 0 or CUT_ENOMEM (ssl is then still the caller's). */
int io_tls_connect(struct io *io, struct ssl_st *ssl);
size_t io_tls_failure(const struct io *io, char *buf, size_t cap);
/* 1 when the established client connection resumed a session. */
int io_tls_resumed(const struct io *io);

/* 1 when the connection is TLS (whether or not the handshake has completed). */
int io_is_tls(const struct io *io);

/* Moves src's established TLS session to dst, an io initialised on a duplicate of src's socket
 * (used when ALPN chose h2 and the HTTP/2 codec takes the connection over). Afterwards src is a
 * plain io whose disposal only closes its own descriptor. Returns 0, CUT_EINVAL (src not an
 * established TLS connection) or CUT_EIO. */
int io_take_tls(struct io *dst, struct io *src);

/* The ALPN protocol negotiated: "h2", "http/1.1", or NULL (plain, or none negotiated, which
 * means HTTP/1.1). Meaningful from the first on_read on. */
const char *io_alpn(const struct io *io);

/* The verified client certificate's subject (RFC 2253) into buf; "" when none. Returns the
 * length. */
size_t io_peer_subject(const struct io *io, char *buf, size_t cap);

/* Half-close for a lingering close: close_notify (TLS), then shutdown(SHUT_WR). */
void io_shutdown_write(struct io *io);

/* Output was added to io->out: write it at the end of the current callback. */
void io_mark(struct io *io);

/* Writes every marked socket now. io.c does this after each of its callbacks; owners call it at
 * the end of their own timer callbacks. */
void io_loop_flush(struct io_loop *l);

void io_pause_read(struct io *io);
void io_resume_read(struct io *io);

/* Parses a head at the front of in without copying when it can: fn runs on the first chain when
 * that chain holds min(length, max) bytes or fn completes on it; otherwise on at most max bytes
 * made contiguous. fn returns bytes consumed, CUT_EAGAIN or another negative code, which this
 * returns. The pointer given to fn is valid until in is modified. */
typedef int (*io_parse_fn)(const char *p, size_t n, void *ctx);
int io_parse_front(struct evbuffer *in, size_t max, io_parse_fn fn, void *ctx);

/* Bytes waiting to be written (0 while asleep). */
size_t io_pending(const struct io *io);

/* The owner waits for the peer with nothing buffered either way: the buffers and the write
 * event go back to the loop's spares and in/out become NULL; reading goes on. The next read
 * wakes the io (buffers again) before on_read; the owner calls io_wake() itself before it
 * touches in/out for any other reason. Does nothing and returns 0 unless in and out are empty
 * and no write is queued or waiting (nor a connect); returns 1 when the io sleeps. */
int io_sleep(struct io *io);

/* Takes buffers again after io_sleep (nothing to do when awake). 0 or CUT_ENOMEM (the io stays
 * asleep). */
int io_wake(struct io *io);

#endif

/* fake_io.h - an in-memory duplex pipe for struct io (proxy/net/io.h), so that the codecs can be
 * driven by a unit test without sockets (the model: h2o's t/00unit).
 *
 * The test feeds bytes that the io reads as its peer's input, and takes what the io wrote. Both
 * directions are bounded by cap: fake_io_feed takes what fits, and a full output makes the io's
 * writes short (the io then waits for its write event as on a full socket, and fake_io_take
 * wakes it). Readiness: the io's fd is a duplicate of the read end of a pipe that holds a byte
 * while input waits or its end was fed.
 *
 * Ownership: struct fake_io is the test's and must outlive the io it serves; the io closes its
 * own descriptor, fake_io_dispose the fake's. Single thread (the worker's loop).
 */
#ifndef CUT_TEST_FAKE_IO_H
#define CUT_TEST_FAKE_IO_H

#include <stddef.h>

#include "proxy/net/io.h"

struct fake_io {
    struct io_transport tp; /* first: the io hands this back to the callbacks */
    int pipe[2];            /* readiness: [0] is readable while the io has input (the io
                             * has a duplicate of [0]) */
    struct evbuffer *in;    /* fed by the test, read by the io */
    struct evbuffer *out;   /* written by the io, taken by the test */
    size_t cap;
    unsigned in_end : 1;    /* fake_io_end_input: reads return 0 once in is empty */
    unsigned write_shut : 1; /* the io half-closed its output */
    unsigned readable : 1;  /* the pipe holds its byte */
    unsigned write_blocked : 1; /* out filled up: wake the io when the test takes some */
    unsigned writes;        /* writev calls that took bytes */
};

/* Returns 0 or CUT_ENOMEM / CUT_EIO. */
int fake_io_init(struct fake_io *f, size_t cap);
void fake_io_dispose(struct fake_io *f);

/* A new descriptor for io_init (the io owns and closes it), or -1. */
int fake_io_fd(struct fake_io *f);

/* Appends up to n bytes of peer input (what fits under cap). Returns the bytes taken. */
size_t fake_io_feed(struct fake_io *f, const void *p, size_t n);
size_t fake_io_feed_str(struct fake_io *f, const char *s);

/* The peer closed its output: once in is read, the io sees the end of its input. */
void fake_io_end_input(struct fake_io *f);

/* Moves everything the io wrote so far into a new NUL-terminated string (the caller frees it),
 * or NULL when out of memory. An io that waited for room retries from the loop. */
char *fake_io_take(struct fake_io *f);

#endif

/* struct io over the in-memory transport (fake_io.h): reads reach on_read, writes made in a
 * callback are flushed at its end, a full peer makes the write wait for EV_WRITE, the end of
 * the input is IO_EOF and io_shutdown_write reaches the transport. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/net/io.h"
#include "tests/unit/proxy/net/fake_io.h"

struct echo {
    unsigned reads, drains, eofs;
};

/* Echoes every input back (upper-cased, to tell it from the input). */
static void on_echo_read(struct io *io, void *arg)
{
    struct echo *e = arg;
    e->reads++;
    size_t n = evbuffer_get_length(io->in);
    char buf[256];
    cr_assert_leq(n, sizeof buf);
    evbuffer_remove(io->in, buf, n);
    for (size_t i = 0; i < n; i++)
        if (buf[i] >= 'a' && buf[i] <= 'z')
            buf[i] = (char)(buf[i] - 'a' + 'A');
    evbuffer_add(io->out, buf, n);
    io_mark(io);
}

static void on_echo_drain(struct io *io, void *arg)
{
    (void)io;
    ((struct echo *)arg)->drains++;
}

static void on_echo_event(struct io *io, int what, void *arg)
{
    (void)io;
    if (what & IO_EOF)
        ((struct echo *)arg)->eofs++;
}

static void turns(struct event_base *b, int n)
{
    for (int i = 0; i < n; i++)
        event_base_loop(b, EVLOOP_NONBLOCK);
}

static void take_eq(struct fake_io *f, const char *want)
{
    char *got = fake_io_take(f);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, want);
    free(got);
}

Test(io_fake, echo_and_eof)
{
    struct event_base *b = event_base_new();
    cr_assert_not_null(b);
    struct io_loop l;
    io_loop_init(&l, b);
    struct fake_io f;
    cr_assert_eq(fake_io_init(&f, 1024), 0);
    struct echo e = {0};
    struct io io;
    cr_assert_eq(io_init(&io, &l, fake_io_fd(&f), on_echo_read, on_echo_drain, on_echo_event, &e),
                 0);
    io_set_transport(&io, &f.tp);

    turns(b, 3);
    cr_assert_eq(e.reads, 0, "no input, no read");
    take_eq(&f, "");

    cr_assert_eq(fake_io_feed_str(&f, "hello"), 5);
    turns(b, 3);
    cr_assert_eq(e.reads, 1);
    cr_assert_eq(f.writes, 1, "one write at the end of the callback");
    take_eq(&f, "HELLO");

    cr_assert_eq(fake_io_feed_str(&f, "ab"), 2);
    cr_assert_eq(fake_io_feed_str(&f, "cd"), 2);
    turns(b, 3);
    cr_assert_eq(e.reads, 2, "both feeds in one read");
    take_eq(&f, "ABCD");

    fake_io_end_input(&f);
    turns(b, 3);
    cr_assert_eq(e.eofs, 1);
    cr_assert(io.eof);
    io_shutdown_write(&io);
    cr_assert(f.write_shut);
    io_dispose(&io);
    fake_io_dispose(&f);
    io_loop_dispose(&l);
    event_base_free(b);
}

Test(io_fake, full_peer_waits_for_write_event)
{
    struct event_base *b = event_base_new();
    struct io_loop l;
    io_loop_init(&l, b);
    struct fake_io f;
    cr_assert_eq(fake_io_init(&f, 4), 0); /* the peer takes 4 bytes at a time */
    struct echo e = {0};
    struct io io;
    cr_assert_eq(io_init(&io, &l, fake_io_fd(&f), on_echo_read, on_echo_drain, on_echo_event, &e),
                 0);
    io_set_transport(&io, &f.tp);

    cr_assert_eq(fake_io_feed_str(&f, "abcdefghij"), 4, "input bounded by cap");
    turns(b, 2);
    take_eq(&f, "ABCD");
    cr_assert_eq(fake_io_feed_str(&f, "efghij"), 4);
    cr_assert_eq(fake_io_feed_str(&f, "ij"), 0, "input full until read");
    turns(b, 2);
    take_eq(&f, "EFGH");
    cr_assert_eq(fake_io_feed_str(&f, "ij"), 2);

    /* A write larger than the peer's room: a short write arms EV_WRITE, the rest follows once
     * the test made room. */
    evbuffer_add(io.out, "0123456789", 10);
    io_mark(&io);
    io_loop_flush(&l);
    cr_assert(io.write_armed, "short write: waits for the write event");
    cr_assert_eq(io_pending(&io), 6);
    take_eq(&f, "0123");
    turns(b, 2);
    take_eq(&f, "4567");
    turns(b, 2);
    cr_assert_eq(io_pending(&io), 0);
    char *rest = fake_io_take(&f);
    cr_assert_str_eq(rest, "89IJ", "the rest, then the echo of the last input, in order");
    free(rest);
    cr_assert_geq(e.drains, 1);
    io_dispose(&io);
    fake_io_dispose(&f);
    io_loop_dispose(&l);
    event_base_free(b);
}

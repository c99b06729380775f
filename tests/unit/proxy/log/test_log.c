/* JSON escaping, time format, and the writer thread's batching. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <string.h>
#include <unistd.h>

#include "proxy/log/log.h"

Test(log, escape_quotes_controls_and_high_bytes)
{
    char out[128];
    const char in[] = "a\"b\\c\n\x01\xff";
    size_t n = log_escape(out, sizeof out, in, sizeof in - 1);
    cr_assert_str_eq(out, "a\\\"b\\\\c\\u000a\\u0001\\u00ff");
    cr_assert_eq(n, strlen(out));
}

Test(log, escape_truncates_without_splitting_an_escape)
{
    char out[8];
    log_escape(out, sizeof out, "abcd\"efgh", 9);
    cr_assert_str_eq(out, "abcd\\\"e");
    log_escape(out, sizeof out, "abcdef\"", 7);
    cr_assert_str_eq(out, "abcdef", "an escape that does not fit is left out whole");
}

Test(log, time_is_rfc3339_utc_millis)
{
    char t[32];
    log_time_rfc3339(t, sizeof t);
    cr_assert_eq(strlen(t), 24);
    cr_assert_eq(t[10], 'T');
    cr_assert_eq(t[19], '.');
    cr_assert_eq(t[23], 'Z');
}

Test(log, writer_delivers_lines_in_order_and_bounds_its_queue)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct logger *lg = log_new(p[1], 64);
    cr_assert_not_null(lg);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "one\n", 4);
    log_submit(lg, b);
    cr_assert_eq(evbuffer_get_length(b), 0, "the batch is taken");
    log_line(lg, "two", 3);
    char big[100];
    memset(big, 'x', sizeof big);
    log_line(lg, big, sizeof big); /* over the 64-byte bound: dropped and counted */
    log_free(lg);
    close(p[1]);
    char got[64] = {0};
    ssize_t n = read(p[0], got, sizeof got - 1);
    cr_assert_eq(n, 8);
    cr_assert_str_eq(got, "one\ntwo\n");
    close(p[0]);
    evbuffer_free(b);
}

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

Test(log, escape_runs_of_plain_bytes_and_truncation_inside_a_run)
{
    char out[16];
    cr_assert_eq(log_escape(out, sizeof out, "abc\"def", 7), 8);
    cr_assert_str_eq(out, "abc\\\"def");
    /* a run longer than the room is cut to cap - 1 bytes */
    cr_assert_eq(log_escape(out, 6, "abcdefghij", 10), 5);
    cr_assert_str_eq(out, "abcde");
    cr_assert_eq(log_escape(out, sizeof out, "", 0), 0);
    cr_assert_str_eq(out, "");
}

Test(log, buf_puts_text_numbers_and_durations)
{
    char line[64];
    struct log_buf b = {line, 0, sizeof line, 0};
    LOG_PUT_LIT(&b, "{\"a\":");
    log_put_u64(&b, 18446744073709551615u);
    LOG_PUT_LIT(&b, ",\"s\":\"");
    log_put_esc(&b, "x\"\n", 3, 20);
    LOG_PUT_LIT(&b, "\",\"ms\":");
    log_put_ms3(&b, 12345678); /* 12.345678 ms */
    log_put_str(&b, "}");
    cr_assert_eq(b.over, 0);
    cr_assert_eq(b.n, strlen("{\"a\":18446744073709551615,\"s\":\"x\\\"\\u000a\",\"ms\":12.346}"));
    line[b.n] = '\0';
    cr_assert_str_eq(line, "{\"a\":18446744073709551615,\"s\":\"x\\\"\\u000a\",\"ms\":12.346}");
}

Test(log, buf_ms3_pads_the_fraction)
{
    char line[32];
    struct log_buf b = {line, 0, sizeof line, 0};
    log_put_ms3(&b, 0);
    log_put_str(&b, " ");
    log_put_ms3(&b, 7000);      /* 0.007 */
    log_put_str(&b, " ");
    log_put_ms3(&b, 1050000);   /* 1.050 */
    log_put_str(&b, " ");
    log_put_ms3(&b, 999999499); /* 999.999 */
    line[b.n] = '\0';
    cr_assert_str_eq(line, "0.000 0.007 1.050 999.999");
}

Test(log, buf_marks_a_line_that_does_not_fit)
{
    char line[8];
    struct log_buf b = {line, 0, sizeof line, 0};
    log_put_str(&b, "1234567");
    cr_assert_eq(b.over, 0);
    log_put_str(&b, "89");
    cr_assert_eq(b.over, 1);
    struct log_buf e = {line, 0, sizeof line, 0};
    log_put_esc(&e, "abc", 3, 10); /* an escaped field whose cap does not fit */
    cr_assert_eq(e.over, 1);
}

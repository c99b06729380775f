/* test_healthcheck.c - control/healthcheck.c's decision logic: the status line parser (complete,
 * partial, malformed, too long), the consecutive-result thresholds, the request text and the
 * jittered delay. The sockets, TLS and the snapshot following are in
 * tests/integration/test_health_checks.py. */
#include <criterion/criterion.h>
#include <string.h>

#include "control/healthcheck.h"
#include "core/cut.h"

static int parse(const char *s, unsigned *st)
{
    return healthcheck_parse_status(s, strlen(s), st);
}

Test(healthcheck, status_line_complete)
{
    unsigned st = 0;
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", &st), 17);
    cr_assert_eq(st, 200);
    cr_assert_eq(parse("HTTP/1.0 503 Service Unavailable\r\n", &st), 34);
    cr_assert_eq(st, 503);
    cr_assert_eq(parse("HTTP/1.1 204\r\n", &st), 14, "the reason phrase is optional");
    cr_assert_eq(st, 204);
    cr_assert_eq(parse("HTTP/1.1 302 Found\n", &st), 19, "a bare LF ends the line too");
    cr_assert_eq(st, 302);
}

Test(healthcheck, status_line_partial)
{
    unsigned st = 0;
    cr_assert_eq(parse("", &st), CUT_EAGAIN);
    cr_assert_eq(parse("HTTP/1.1 20", &st), CUT_EAGAIN);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r", &st), CUT_EAGAIN);
}

Test(healthcheck, status_line_malformed)
{
    unsigned st = 0;
    const char *bad[] = {
        "HTTP/2 200 OK\r\n",    "HTTP/1.1 2000 OK\r\n",
        "HTTP/1.1 20x OK\r\n",  "HTTP/1.1  200 OK\r\n",
        "http/1.1 200 OK\r\n",  "SSH-2.0-OpenSSH_9.2\r\n",
        "HTTP/1.1 099 Low\r\n", "\r\n",
        "HTTP/1.x 200 OK\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(parse(bad[i], &st), CUT_EPROTO, "accepted %s", bad[i]);
}

Test(healthcheck, status_line_bounded)
{
    static char buf[HEALTHCHECK_MAX_READ + 100];
    unsigned st = 0;
    memcpy(buf, "HTTP/1.1 200 ", 13);
    memset(buf + 13, 'x', sizeof buf - 13);
    cr_assert_eq(healthcheck_parse_status(buf, HEALTHCHECK_MAX_READ - 1, &st), CUT_EAGAIN);
    cr_assert_eq(healthcheck_parse_status(buf, HEALTHCHECK_MAX_READ, &st), CUT_EPROTO);
    buf[HEALTHCHECK_MAX_READ + 10] = '\n'; /* a line end past the bound is not looked at */
    cr_assert_eq(healthcheck_parse_status(buf, sizeof buf, &st), CUT_EPROTO);
}

Test(healthcheck, thresholds)
{
    struct healthcheck_run r = {.up = 1};
    cr_assert_eq(healthcheck_record(&r, 0, 2, 3), 0);
    cr_assert_eq(healthcheck_record(&r, 0, 2, 3), 0);
    cr_assert_eq(healthcheck_record(&r, 1, 2, 3), 0, "a success breaks the run of failures");
    cr_assert_eq(healthcheck_record(&r, 0, 2, 3), 0);
    cr_assert_eq(healthcheck_record(&r, 0, 2, 3), 0);
    cr_assert_eq(r.up, 1);
    cr_assert_eq(healthcheck_record(&r, 0, 2, 3), 1, "third failure in a row: down");
    cr_assert_eq(r.up, 0);
    cr_assert_eq(healthcheck_record(&r, 0, 2, 3), 0, "already down: no change");
    cr_assert_eq(healthcheck_record(&r, 1, 2, 3), 0);
    cr_assert_eq(healthcheck_record(&r, 0, 2, 3), 0, "a failure breaks the run of successes");
    cr_assert_eq(healthcheck_record(&r, 1, 2, 3), 0);
    cr_assert_eq(healthcheck_record(&r, 1, 2, 3), 1, "second success in a row: up");
    cr_assert_eq(r.up, 1);
    cr_assert_eq(healthcheck_record(&r, 1, 2, 3), 0, "already up: no change");

    struct healthcheck_run one = {.up = 1};
    cr_assert_eq(healthcheck_record(&one, 0, 1, 1), 1, "threshold 1: one failure is enough");
    cr_assert_eq(healthcheck_record(&one, 1, 1, 1), 1);
}

Test(healthcheck, request_text)
{
    char buf[256];
    int n = healthcheck_request(buf, sizeof buf, "/healthz", "blue.svc:8080");
    const char *want = "GET /healthz HTTP/1.1\r\nHost: blue.svc:8080\r\n"
                       "User-Agent: cutover-health-check\r\nConnection: close\r\n\r\n";
    cr_assert_eq(n, (int)strlen(want));
    cr_assert_str_eq(buf, want);
    cr_assert_eq(healthcheck_request(buf, 40, "/healthz", "blue.svc:8080"), CUT_ELIMIT);
}

Test(healthcheck, delay_within_jitter)
{
    uint64_t s1 = 42, s2 = 42;
    int spread[4] = {0};
    for (int i = 0; i < 4000; i++) {
        uint64_t d = healthcheck_delay_ms(&s1, 200, 100);
        cr_assert(d >= 200 && d < 300, "delay %llu", (unsigned long long)d);
        spread[(d - 200) / 25]++;
        cr_assert_eq(healthcheck_delay_ms(&s2, 200, 100), d, "same seed, same sequence");
    }
    for (int q = 0; q < 4; q++)
        cr_assert(spread[q] > 800, "quarter %d got %d of 4000", q, spread[q]);
    cr_assert_eq(healthcheck_delay_ms(&s1, 200, 0), 200, "no jitter");
}

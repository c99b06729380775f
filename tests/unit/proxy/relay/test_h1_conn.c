/* The HTTP/1.1 server connection (proxy/relay/h1.c) driven through an in-memory transport
 * (tests/unit/proxy/net/fake_io.h) with a real worker and a published snapshot, as the fuzz
 * harness tests/fuzz/fuzz_h1_conn.c builds them. Only answers cutover makes itself (400, 404,
 * 414, 431): the pools' endpoint is 127.0.0.1:1, so a request forwarded by mistake would end in
 * an upstream error (counted, and answered 502/503), never in the answer expected. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/cfg.h"
#include "control/ctl.h"
#include "core/version.h"
#include "proxy/log/log.h"
#include "proxy/log/siem.h"
#include "proxy/relay/h1.h"
#include "proxy/relay/worker.h"
#include "proxy/route/snapshot.h"
#include "tests/unit/proxy/net/fake_io.h"

static const char config[] =
    "{\"cluster\":\"unit\",\"region\":\"local\",\"workers\":1,"
    "\"listeners\":[{\"name\":\"main\",\"address\":\"127.0.0.1:18081\"}],"
    "\"limits\":{\"max_header_bytes\":4096,\"max_headers\":32,\"max_request_line\":1024},"
    "\"routes\":[{\"name\":\"app\",\"path_prefix\":\"/app\","
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:1\"]},"
    "\"green\":{\"endpoints\":[\"127.0.0.1:1\"]}},"
    "\"weights\":{\"blue\":100,\"green\":0}}]}";

static struct logger *lg;
static struct siem *siem;
static struct worker *wk;
static struct ctl *ctl;
static char cfg_path[64];
static struct fake_io client;

static void setup(void)
{
    cr_assert_eq(evthread_use_pthreads(), 0);
    signal(SIGPIPE, SIG_IGN);
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    lg = log_new(fd, 1u << 20);
    cr_assert_not_null(lg);
    siem = siem_new(lg, CUTOVER_VERSION);
    cr_assert_not_null(siem);
    snprintf(cfg_path, sizeof cfg_path, "/tmp/cutover-unit-h1-XXXXXX");
    int cf = mkstemp(cfg_path);
    cr_assert_geq(cf, 0);
    cr_assert_eq(write(cf, config, strlen(config)), (ssize_t)strlen(config));
    close(cf);
    struct cfg *cfg = NULL;
    struct cfg_errors errs;
    int rc = cfg_load(cfg_path, &cfg, &errs);
    if (rc < 0)
        cfg_errors_print(&errs, cfg_path, stderr);
    cfg_errors_dispose(&errs);
    cr_assert_eq(rc, 0, "the test's configuration is refused");
    wk = worker_new(0, lg, NULL, 0);
    cr_assert_not_null(wk);
    char err[512];
    ctl = ctl_new(cfg_path, cfg, lg, siem, &wk, 1, 1, err, sizeof err);
    cr_assert_not_null(ctl, "ctl_new: %s", err);
    ctl_release_signals(ctl);
    event_base_loop(wk->base, EVLOOP_NONBLOCK); /* the worker adopts the first snapshot */
    cr_assert_not_null(wk->pins.current);

    cr_assert_eq(fake_io_init(&client, 1u << 16), 0);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(h1c_accept_transport(wk, fake_io_fd(&client), &client.tp,
                                      (struct sockaddr *)&peer, sizeof peer,
                                      wk->pins.current->snap->cfg),
                 0);
    cr_assert_eq(wk->nconns, 1);
}

static void teardown(void)
{
    while (wk->conns)
        h1c_kill_now(wk->conns);
    fake_io_dispose(&client);
    ctl_free(ctl);
    worker_free(wk);
    siem_free(siem);
    log_free(lg);
    unlink(cfg_path);
}

/* Runs the worker's loop a few turns and returns what the connection wrote (caller frees). */
static char *answer(void)
{
    for (int i = 0; i < 8; i++)
        event_base_loop(wk->base, EVLOOP_NONBLOCK);
    char *s = fake_io_take(&client);
    cr_assert_not_null(s);
    return s;
}

static unsigned count(const char *s, const char *needle)
{
    unsigned n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

TestSuite(h1_conn, .init = setup, .fini = teardown);

Test(h1_conn, smuggling_shape_is_400_and_not_forwarded)
{
    fake_io_feed_str(&client, "POST /app/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /app/y HTTP/1.1\r\n"
                              "Host: a\r\n\r\n");
    char *out = answer();
    cr_assert(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "got: %s", out);
    cr_assert_eq(count(out, "HTTP/1.1 "), 1, "one answer, the smuggled request unanswered: %s",
                 out);
    cr_assert_neq(strstr(out, "X-Cutover-Error: bad_request\r\n"), NULL, "got: %s", out);
    cr_assert_neq(strstr(out, "Connection: close\r\n"), NULL);
    cr_assert(client.write_shut, "a rejected request closes with a lingering half-close");
    cr_assert_eq(wk->stats.upstream_errors, 0, "nothing went upstream");
    free(out);
}

Test(h1_conn, no_route_is_404)
{
    fake_io_feed_str(&client, "GET /elsewhere HTTP/1.1\r\nHost: a\r\n\r\n");
    char *out = answer();
    cr_assert(strncmp(out, "HTTP/1.1 404 ", 13) == 0, "got: %s", out);
    cr_assert_neq(strstr(out, "X-Cutover-Error: no_route\r\n"), NULL, "got: %s", out);
    cr_assert_eq(count(out, "HTTP/1.1 "), 1);
    cr_assert_eq(wk->stats.upstream_errors, 0);
    cr_assert_eq(wk->nconns, 1, "a 404 keeps the connection");
    free(out);
}

Test(h1_conn, pipelined_answers_in_order)
{
    fake_io_feed_str(&client, "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                              "GET /two HTTP/1.1\r\nHost: a\r\n\r\n"
                              "GET /app HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                              "Content-Length: 2\r\n\r\n");
    char *out = answer();
    const char *a = strstr(out, "HTTP/1.1 404 ");
    cr_assert_not_null(a, "got: %s", out);
    const char *b = strstr(a + 1, "HTTP/1.1 404 ");
    cr_assert_not_null(b, "got: %s", out);
    const char *c = strstr(b + 1, "HTTP/1.1 400 ");
    cr_assert_not_null(c, "got: %s", out);
    cr_assert_eq(a, out, "nothing before the first answer");
    cr_assert_eq(count(out, "HTTP/1.1 "), 3, "got: %s", out);
    cr_assert_eq(wk->stats.upstream_errors, 0);
    free(out);
}

Test(h1_conn, long_target_is_414)
{
    char req[2048];
    char target[1500];
    memset(target, 'a', sizeof target - 1);
    target[0] = '/';
    target[sizeof target - 1] = '\0';
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", target);
    fake_io_feed_str(&client, req);
    char *out = answer();
    cr_assert(strncmp(out, "HTTP/1.1 414 ", 13) == 0, "got: %.80s", out);
    cr_assert_neq(strstr(out, "X-Cutover-Error: uri_too_long\r\n"), NULL);
    free(out);
}

Test(h1_conn, request_in_pieces)
{
    const char *req = "GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n";
    for (const char *p = req; *p; p++) {
        cr_assert_eq(fake_io_feed(&client, p, 1), 1);
        for (int i = 0; i < 2; i++)
            event_base_loop(wk->base, EVLOOP_NONBLOCK);
        if (p[1]) {
            char *none = fake_io_take(&client);
            cr_assert_str_eq(none, "", "answered before the head was complete");
            free(none);
        }
    }
    char *out = answer();
    cr_assert(strncmp(out, "HTTP/1.1 404 ", 13) == 0, "got: %s", out);
    free(out);
}

Test(h1_conn, client_close_frees_the_connection)
{
    fake_io_end_input(&client);
    for (int i = 0; i < 8 && wk->nconns > 0; i++)
        event_base_loop(wk->base, EVLOOP_NONBLOCK);
    cr_assert_eq(wk->nconns, 0);
    char *out = fake_io_take(&client);
    cr_assert_str_eq(out, "");
    free(out);
}

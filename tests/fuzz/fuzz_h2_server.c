/* fuzz_h2_server.c - libFuzzer harness for the HTTP/2 server input path: bytes from a client
 * through cutover's own connection code (h1c_accept() sees the h2c preface and h2c_takeover()
 * hands the socket to proxy/h2.c), so every frame goes through the nghttp2 server session that
 * h2.c configures with its own callbacks, option limits and header checks (h2_head_*), on to
 * stream.c, routing and an HTTP/1.1 upstream. Nothing is mocked inside cutover: the harness is
 * a worker (worker_new(), its event loop run here, in the fuzzer thread) that got its snapshot
 * from a real control thread (ctl_new(), see support/fuzz_ctl.c), one socketpair per input as
 * the client connection, and a small upstream on 127.0.0.1 served by the same event loop.
 *
 * The upstream checks what cutover forwards: every request head must be one that the project's
 * own HTTP/1.1 parser accepts (h1_parse_request(), with generous limits) and must carry a Host;
 * whatever HTTP/2 a client sends, cutover must never write an ambiguous or malformed HTTP/1.1
 * request upstream. It then answers with one of a few canned responses (byte 0 of the input):
 * a Content-Length body, chunked with trailers, 204, 503, a body until close, 100 Continue then
 * 200, a reset without an answer, a 101 upgrade.
 *
 * Input: byte 0 picks the upstream's answer; the rest follows the 24-byte client preface on the
 * connection (so the corpus holds frames: SETTINGS, HEADERS with HPACK, DATA, ...). The
 * connection is then half-closed by the client and run until cutover closes it.
 * The route sends the override header x-cutover-pool: green to 127.0.0.1:1 (connection refused)
 * and /cutover-probe is the probe path, so local answers and upstream failures are reached too.
 * FUZZ_LOG=1 shows cutover's access log and events on stderr (to see what an input did).
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control/ctl.h"
#include "core/cut.h"
#include "proxy/relay/h1.h"
#include "proxy/http/h1_parse.h"
#include "proxy/relay/h2.h"
#include "proxy/log/log.h"
#include "proxy/relay/worker.h"
#include "tests/fuzz/support/fuzz_ctl.h"

#define FUZZ_MAX_TURNS 64   /* event loop turns while the client is sending */
#define FUZZ_QUIET_TURNS 6  /* turns without progress that end the sending phase */
#define FUZZ_CLOSE_TURNS 32 /* turns after the client's half-close */
#define FUZZ_UP_FIELDS 1024

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_env env;
static struct worker *wk;
static struct ctl *ctl;
static unsigned long progress; /* bumped by every client read and upstream event */
static unsigned answer;        /* which canned response the upstream sends */

/* ---- the upstream ------------------------------------------------------------------------- */

static const char *const answers[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n"
    "Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 42\r\n\r\n",
    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown",
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the connection closes",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: "
    "close\r\n\r\nok",
    NULL, /* close without answering */
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
};

struct up_conn {
    struct bufferevent *bev;
    int answered;
    struct up_conn *next, *prev;
};

static struct up_conn *ups;

static void up_close(struct up_conn *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        ups = u->next;
    if (u->next)
        u->next->prev = u->prev;
    bufferevent_free(u->bev);
    free(u);
    progress++;
}

static void on_up_read(struct bufferevent *bev, void *arg)
{
    struct up_conn *u = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    progress++;
    if (u->answered) {
        evbuffer_drain(in, len); /* the request body, after the answer */
        return;
    }
    const char *p = (const char *)evbuffer_pullup(in, -1);
    static struct http_field fields[FUZZ_UP_FIELDS];
    const struct h1_limits lim = {1u << 20, 4u << 20, FUZZ_UP_FIELDS};
    struct h1_request req;
    int status = 0;
    int n = h1_parse_request(p, len, &lim, &req, fields, FUZZ_UP_FIELDS, &status);
    if (n == CUT_EAGAIN)
        return;
    FUZZ_CHECK(n > 0, "cutover sent upstream a request head its own parser refuses (%d):\n%.*s",
               status, (int)(len < 4096 ? len : 4096), p);
    FUZZ_CHECK(req.host.n > 0, "cutover sent upstream a request without Host:\n%.*s", n, p);
    u->answered = 1;
    evbuffer_drain(in, len);
    const char *a = answers[answer];
    if (!a) {
        up_close(u);
        return;
    }
    bufferevent_write(bev, a, strlen(a));
}

static void on_up_write(struct bufferevent *bev, void *arg)
{
    struct up_conn *u = arg;
    (void)bev;
    if (u->answered)
        up_close(u); /* every answer is the last on its connection */
}

static void on_up_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        up_close(arg);
}

static void on_up_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    (void)arg;
    struct up_conn *u = calloc(1, sizeof *u);
    FUZZ_CHECK(u != NULL, "out of memory");
    u->bev = bufferevent_socket_new(wk->base, fd, BEV_OPT_CLOSE_ON_FREE);
    FUZZ_CHECK(u->bev != NULL, "bufferevent_socket_new");
    bufferevent_setcb(u->bev, on_up_read, on_up_write, on_up_event, u);
    bufferevent_enable(u->bev, EV_READ | EV_WRITE);
    u->next = ups;
    if (ups)
        ups->prev = u;
    ups = u;
    progress++;
}

/* ---- set-up --------------------------------------------------------------------------------- */

static const char config_fmt[] =
    "{\"cluster\":\"fuzz\",\"region\":\"local\",\"workers\":1,"
    "\"listeners\":[{\"name\":\"main\",\"address\":\"127.0.0.1:18081\"}],"
    "\"trusted_proxies\":[\"127.0.0.1\"],"
    "\"probe_path\":\"/cutover-probe\","
    "\"limits\":{\"max_header_bytes\":16384,\"max_headers\":64},"
    "\"routes\":[{\"name\":\"app\",\"path_prefix\":\"/\","
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:%u\"]},"
    "\"green\":{\"endpoints\":[\"127.0.0.1:1\"]}},"
    "\"weights\":{\"blue\":100,\"green\":0},\"sticky\":{\"header\":\"x-device-id\"},"
    "\"override\":{\"header\":\"x-cutover-pool\",\"trusted_peers\":[\"127.0.0.1\"]}}]}";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    FUZZ_CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
                   listen(lfd, 64) == 0 && getsockname(lfd, (struct sockaddr *)&sin, &sl) == 0,
               "cannot listen on 127.0.0.1");
    char config[sizeof config_fmt + 16];
    snprintf(config, sizeof config, config_fmt, (unsigned)ntohs(sin.sin_port));
    fuzz_env_init(&env, config);
    wk = worker_new(0, env.lg, NULL, 0);
    FUZZ_CHECK(wk != NULL, "worker_new");
    FUZZ_CHECK(evconnlistener_new(wk->base, on_up_accept, NULL, LEV_OPT_CLOSE_ON_FREE, -1, lfd),
               "evconnlistener_new");
    ctl = fuzz_ctl_new(&env, &wk, 1);
    event_base_loop(wk->base, EVLOOP_NONBLOCK); /* the worker adopts the first snapshot */
    return 0;
}

/* ---- one input: one client connection ------------------------------------------------------ */

/* Reads and drops whatever cutover wrote to the client. Returns 1 once it closed. */
static int drain_client(int fd)
{
    char sink[16384];
    for (;;) {
        ssize_t r = read(fd, sink, sizeof sink);
        if (r > 0) {
            progress++;
            continue;
        }
        return r == 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    answer = data[0] % (sizeof answers / sizeof answers[0]);
#ifdef FUZZ_H1
    const char *wire = (const char *)data + 1; /* HTTP/1.1 from the first byte */
    size_t total = size - 1;
#else
    size_t total = H2_PREFACE_LEN + size - 1;
    char *wire = malloc(total);
    FUZZ_CHECK(wire != NULL, "out of memory");
    memcpy(wire, H2_PREFACE, H2_PREFACE_LEN);
    memcpy(wire + H2_PREFACE_LEN, data + 1, size - 1);
#endif

    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
               "socketpair");
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(h1c_accept(wk, sv[0], (struct sockaddr *)&peer, sizeof peer, NULL,
                          wk->pins.current->snap->cfg) == 0,
               "h1c_accept");

    size_t sent = 0;
    int closed = 0;
    for (int turn = 0, quiet = 0; turn < FUZZ_MAX_TURNS && !closed; turn++) {
        unsigned long before = progress;
        if (sent < total) {
            ssize_t k = write(sv[1], wire + sent, total - sent);
            if (k > 0) {
                sent += (size_t)k;
                progress++;
            }
        }
        event_base_loop(wk->base, EVLOOP_NONBLOCK);
        closed = drain_client(sv[1]);
        quiet = progress == before && sent == total ? quiet + 1 : 0;
        if (quiet >= FUZZ_QUIET_TURNS)
            break;
    }
    /* The client is done sending: cutover finishes what it can and closes. */
    shutdown(sv[1], SHUT_WR);
    for (int turn = 0; turn < FUZZ_CLOSE_TURNS && wk->nconns > 0; turn++) {
        event_base_loop(wk->base, EVLOOP_NONBLOCK);
        drain_client(sv[1]);
    }
    close(sv[1]);
    for (int turn = 0; turn < FUZZ_QUIET_TURNS && wk->nconns > 0; turn++)
        event_base_loop(wk->base, EVLOOP_NONBLOCK);
    /* Whatever still waits on a timer is closed now, as a drain deadline would. */
    while (wk->conns)
        h1c_kill_now(wk->conns);
    while (wk->h2conns)
        h2c_kill_now(wk->h2conns);
    while (ups)
        up_close(ups);
    if (env.log)
        log_submit(wk->logger, wk->logbuf); /* this input's access log lines, now */
#ifndef FUZZ_H1
    free(wire);
#endif
    return 0;
}

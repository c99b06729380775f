/*
 * switch_client.c - the measuring client of bench/switch_latency.py (bench/README.md, "Switch
 * latency"): set-weights acknowledgement -> first response from the new pool.
 *
 *   switch_client --conn FD:PATH [--conn FD:PATH ...] --switches N
 *                 (--ctl SOCKET --route NAME | --baseline)
 *                 [--pools blue,green] [--current 0] [--gap-us 500,2000] [--seed 1]
 *                 [--switch-timeout-ms 2000] [--time-limit-s 300]
 *
 * The driver (switch_latency.py) opens the keep-alive HTTP/1.1 connections to cutover, warms them
 * up, learns each one's worker from the access log and hands them over as inherited descriptors
 * (FD) with the path each one requests (PATH, so that the access log keeps naming them); no
 * request may be in flight on them. This program never needs to know the workers: it reports per
 * connection, in --conn order, and the driver groups connections by worker.
 *
 * Every connection keeps exactly one GET in flight (the next one is sent as soon as a response is
 * read). After a random gap (--gap-us, uniform, microseconds; timerfd, so nothing spins),
 * set-weights flips the route from the pool now at 100 (--pools[--current]) to the other one on a
 * persistent control connection; t_ack is the time the acknowledgement was read (the control
 * socket is served first when several descriptors are ready). Per connection and switch:
 *   post  first new-pool response to a request sent after t_ack: its receive time - t_ack;
 *   sent  that request's send time - t_ack;
 *   any   first new-pool response received after set-weights was sent, whatever its send time,
 *         minus t_ack (negative: answered before the acknowledgement was read).
 * A response from the old pool to a request sent after t_ack is counted as stale. A switch ends
 * when every connection has its post sample, or --switch-timeout-ms after t_ack. --baseline: no
 * control socket and no switch; a sham ack at the same random instants and the same statistic on
 * the current pool (the floor of this client, the proxy and the machine).
 *
 * Output (stdout, JSON lines, kept in memory and written when the run ends, so that nothing is
 * written while it measures): one {"type":"switch",...} line per switch (ns; null where a
 * connection has no sample; t_ack_ns is absolute CLOCK_MONOTONIC time, to line a switch up with
 * a `perf record -k CLOCK_MONOTONIC` trace), then one {"type":"summary",...} line with the
 * stale count, every request round-trip time and the client's own time per response (recv +
 * parse + send); on a failure, the switches done and one {"type":"error","message":...} line,
 * exit status 1. Timestamps: clock_gettime(CLOCK_MONOTONIC). One thread, epoll, level-triggered;
 * every wait is bounded (50 ms per epoll_wait, --time-limit-s overall). All state lives in
 * struct sc, passed explicitly.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SC_MAX_CONNS 64
#define SC_IN_CAP 16384           /* one response must fit */
#define SC_CTL_CAP 65536          /* one control reply line must fit */
#define SC_MAX_SAMPLES (1u << 20) /* request RTT / per-response cost samples kept (each) */
#define SC_MAX_EVENTS (SC_MAX_CONNS + 2)
#define SC_POLL_MS 50 /* longest single wait */
#define SC_ACK_TIMEOUT_NS (10 * 1000000000LL)
#define SC_NONE INT64_MIN        /* "no sample" */
#define SC_TAG_CTL 0xfffffff0u   /* epoll data of the control socket */
#define SC_TAG_TIMER 0xfffffff1u /* epoll data of the gap timer */

enum sc_phase {
    SC_GAP, /* between switches: waiting for the timer */
    SC_ACK, /* set-weights sent, acknowledgement not read yet */
    SC_NEW, /* acknowledged: collecting new-pool responses */
};

struct sc_conn {
    int fd;
    char req[256];
    size_t req_len;
    int64_t t_send; /* send time of the request in flight */
    int64_t post;   /* this switch (see the header comment), SC_NONE until known: */
    int64_t sent;   /*   post-ack latency, its request's send time - t_ack, */
    int64_t any;    /*   receive time of the first new-pool response (absolute) */
    size_t in_len;
    char in[SC_IN_CAP];
};

struct sc_samples {
    int64_t *v;
    size_t n, dropped;
};

struct sc_opts {
    unsigned switches;
    const char *ctl_path; /* NULL: --baseline */
    const char *route;
    char pools[2][32];
    unsigned current;
    int64_t gap_min_ns, gap_max_ns;
    int64_t switch_timeout_ns;
    int64_t time_limit_ns;
    uint64_t seed;
};

struct sc {
    struct sc_opts o;
    struct sc_conn *conns; /* nconns, heap */
    unsigned nconns;
    int ep, timer, ctl;
    enum sc_phase phase;
    unsigned cur;    /* index of the pool now at 100 */
    char target[40]; /* body that identifies the new pool ("green\n") */
    size_t target_len;
    int64_t t_sent, t_ack, t_deadline;
    unsigned done_n, n_switch, stale;
    uint64_t rng;
    size_t ctl_len;
    char ctl_in[SC_CTL_CAP];
    struct sc_samples rtt, cost;
    FILE *out;     /* the report, in memory (open_memstream) until the run ends */
    char *out_buf; /* owned: out's buffer */
    size_t out_len;
    char err[512];
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Records an error message in s->err; returns -1 so that callers can `return fail(...)`. */
static int fail(struct sc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct sc *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return -1;
}

static uint64_t rng_next(struct sc *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void sample_add(struct sc_samples *sm, int64_t v)
{
    if (sm->n < SC_MAX_SAMPLES)
        sm->v[sm->n++] = v;
    else
        sm->dropped++;
}

/* ---- options ---------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: switch_client --conn FD:PATH [--conn FD:PATH ...] --switches N\n"
                    "                     (--ctl SOCKET --route NAME | --baseline) [--pools A,B]\n"
                    "                     [--current 0|1] [--gap-us MIN,MAX] [--seed S]\n"
                    "                     [--switch-timeout-ms MS] [--time-limit-s S]\n");
}

static int parse_u64(const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || x > max || v[0] == '-')
        return -1;
    *out = x;
    return 0;
}

/* Parses "A,B" into two numbers. */
static int parse_pair(const char *v, uint64_t max, uint64_t *a, uint64_t *b)
{
    char first[32];
    const char *comma = strchr(v, ',');
    if (!comma || (size_t)(comma - v) >= sizeof first)
        return -1;
    memcpy(first, v, (size_t)(comma - v));
    first[comma - v] = '\0';
    return parse_u64(first, max, a) < 0 || parse_u64(comma + 1, max, b) < 0 ? -1 : 0;
}

static int parse_pools(struct sc_opts *o, const char *v)
{
    const char *comma = strchr(v, ',');
    size_t a = comma ? (size_t)(comma - v) : 0;
    size_t b = comma ? strlen(comma + 1) : 0;
    if (!a || !b || a >= sizeof o->pools[0] || b >= sizeof o->pools[1])
        return -1;
    memcpy(o->pools[0], v, a);
    o->pools[0][a] = '\0';
    memcpy(o->pools[1], comma + 1, b + 1);
    return 0;
}

/* Takes over an inherited descriptor given as "FD:PATH": non-blocking, request built. */
static int add_conn(struct sc *s, const char *v)
{
    if (s->nconns >= SC_MAX_CONNS)
        return fail(s, "more than %d connections", SC_MAX_CONNS);
    const char *colon = strchr(v, ':');
    char num[16];
    uint64_t fd;
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof num || colon[1] != '/')
        return fail(s, "--conn %s: expected FD:/path", v);
    memcpy(num, v, (size_t)(colon - v));
    num[colon - v] = '\0';
    if (parse_u64(num, 65535, &fd) < 0)
        return fail(s, "--conn %s: bad descriptor", v);
    struct sc_conn *c = &s->conns[s->nconns];
    memset(c, 0, offsetof(struct sc_conn, in));
    c->fd = (int)fd;
    int n = snprintf(c->req, sizeof c->req, "GET %s HTTP/1.1\r\nHost: sw\r\n\r\n", colon + 1);
    if (n < 0 || (size_t)n >= sizeof c->req)
        return fail(s, "--conn %s: path too long", v);
    c->req_len = (size_t)n;
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return fail(s, "--conn %s: descriptor: %s", v, strerror(errno));
    s->nconns++;
    return 0;
}

/* One option with its value; returns 0, or -1 (message in s->err). */
static int parse_opt(struct sc *s, const char *k, const char *v)
{
    struct sc_opts *o = &s->o;
    uint64_t a, b;
    if (strcmp(k, "--conn") == 0)
        return add_conn(s, v);
    if (strcmp(k, "--switches") == 0 && parse_u64(v, 10000000, &a) == 0 && a > 0)
        o->switches = (unsigned)a;
    else if (strcmp(k, "--ctl") == 0)
        o->ctl_path = v;
    else if (strcmp(k, "--route") == 0 && v[0] && strlen(v) < 128 && !strpbrk(v, "\"\\"))
        o->route = v;
    else if (strcmp(k, "--pools") == 0 && parse_pools(o, v) == 0)
        ;
    else if (strcmp(k, "--current") == 0 && parse_u64(v, 1, &a) == 0)
        o->current = (unsigned)a;
    else if (strcmp(k, "--gap-us") == 0 && parse_pair(v, 10000000, &a, &b) == 0 && a <= b) {
        o->gap_min_ns = (int64_t)a * 1000;
        o->gap_max_ns = (int64_t)b * 1000;
    } else if (strcmp(k, "--seed") == 0 && parse_u64(v, UINT64_MAX, &a) == 0)
        o->seed = a;
    else if (strcmp(k, "--switch-timeout-ms") == 0 && parse_u64(v, 600000, &a) == 0 && a > 0)
        o->switch_timeout_ns = (int64_t)a * 1000000;
    else if (strcmp(k, "--time-limit-s") == 0 && parse_u64(v, 86400, &a) == 0 && a > 0)
        o->time_limit_ns = (int64_t)a * 1000000000;
    else
        return fail(s, "bad option or value: %s %s", k, v);
    return 0;
}

static int parse_args(struct sc *s, int argc, char **argv)
{
    struct sc_opts *o = &s->o;
    bool baseline = false;
    *o = (struct sc_opts){.pools = {"blue", "green"},
                          .gap_min_ns = 500000,
                          .gap_max_ns = 2000000,
                          .seed = 1,
                          .switch_timeout_ns = 2000000000LL,
                          .time_limit_ns = 300000000000LL};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--baseline") == 0) {
            baseline = true;
        } else if (i + 1 < argc) {
            if (parse_opt(s, argv[i], argv[i + 1]) < 0)
                return -1;
            i++;
        } else {
            return fail(s, "option %s needs a value", argv[i]);
        }
    }
    if (!s->nconns || !o->switches)
        return fail(s, "--conn and --switches are required");
    if (baseline == (o->ctl_path != NULL) || (!baseline && !o->route))
        return fail(s, "give either --ctl SOCKET and --route NAME, or --baseline");
    return 0;
}

/* ---- set-up ----------------------------------------------------------------------------- */

static int ep_add(struct sc *s, int fd, uint32_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        return fail(s, "epoll_ctl: %s", strerror(errno));
    return 0;
}

static int ctl_connect(struct sc *s)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(s->o.ctl_path) >= sizeof sa.sun_path)
        return fail(s, "control socket path too long");
    strcpy(sa.sun_path, s->o.ctl_path);
    s->ctl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->ctl < 0 || connect(s->ctl, (struct sockaddr *)&sa, sizeof sa) < 0)
        return fail(s, "control socket %s: %s", s->o.ctl_path, strerror(errno));
    if (fcntl(s->ctl, F_SETFL, O_NONBLOCK) < 0)
        return fail(s, "control socket: %s", strerror(errno));
    return ep_add(s, s->ctl, SC_TAG_CTL);
}

static int setup(struct sc *s)
{
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->ep < 0 || s->timer < 0)
        return fail(s, "epoll/timerfd: %s", strerror(errno));
    if (ep_add(s, s->timer, SC_TAG_TIMER) < 0)
        return -1;
    for (unsigned i = 0; i < s->nconns; i++)
        if (ep_add(s, s->conns[i].fd, i) < 0)
            return -1;
    if (s->o.ctl_path && ctl_connect(s) < 0)
        return -1;
    s->rtt.v = malloc(SC_MAX_SAMPLES * sizeof *s->rtt.v);
    s->cost.v = malloc(SC_MAX_SAMPLES * sizeof *s->cost.v);
    if (!s->rtt.v || !s->cost.v)
        return fail(s, "out of memory");
    /* Touch every page now: no page faults while measuring. */
    memset(s->rtt.v, 0, SC_MAX_SAMPLES * sizeof *s->rtt.v);
    memset(s->cost.v, 0, SC_MAX_SAMPLES * sizeof *s->cost.v);
    s->out = open_memstream(&s->out_buf, &s->out_len);
    if (!s->out)
        return fail(s, "open_memstream: %s", strerror(errno));
    s->rng = s->o.seed;
    s->cur = s->o.current;
    return 0;
}

/* Arms the gap timer at the absolute monotonic time t (ns). */
static int arm_timer(struct sc *s, int64_t t)
{
    struct itimerspec its = {.it_value = {t / 1000000000LL, t % 1000000000LL}};
    if (timerfd_settime(s->timer, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        return fail(s, "timerfd_settime: %s", strerror(errno));
    return 0;
}

static int arm_gap(struct sc *s)
{
    double u = (double)(rng_next(s) >> 11) * 0x1.0p-53;
    int64_t gap = s->o.gap_min_ns + (int64_t)(u * (double)(s->o.gap_max_ns - s->o.gap_min_ns));
    return arm_timer(s, now_ns() + gap);
}

/* ---- requests and responses ------------------------------------------------------------- */

static int send_req(struct sc *s, struct sc_conn *c)
{
    c->t_send = now_ns();
    ssize_t n = send(c->fd, c->req, c->req_len, MSG_NOSIGNAL);
    /* A short request into an empty socket buffer (one request in flight): never partial. */
    if (n != (ssize_t)c->req_len)
        return fail(s, "send on connection %ld: %s", (long)(c - s->conns),
                    n < 0 ? strerror(errno) : "short write");
    return 0;
}

/* Value of header NAME (lower case, with ':') in the head [p, end), or NULL. */
static const char *find_header(const char *p, const char *end, const char *name, size_t nlen)
{
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            return NULL;
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0)
            return p + nlen;
        p = eol + 1;
    }
    return NULL;
}

/* Parses one response at the start of c->in. Returns its length (> 0) and its body through
 * *body / *blen; 0 when incomplete; -1 when malformed or not a 200 (message in s->err). */
static long parse_response(struct sc *s, struct sc_conn *c, const char **body, size_t *blen)
{
    const char *p = c->in, *hend = memmem(p, c->in_len, "\r\n\r\n", 4);
    long ci = (long)(c - s->conns);
    if (!hend)
        return c->in_len >= SC_IN_CAP ? fail(s, "connection %ld: response head too large", ci) : 0;
    if (c->in_len < 13 || memcmp(p, "HTTP/1.1 200 ", 13) != 0)
        return fail(s, "connection %ld: non-200 response %.*s", ci,
                    (int)(c->in_len < 40 ? c->in_len : 40), p);
    if (find_header(p, hend + 2, "transfer-encoding:", 18))
        return fail(s, "connection %ld: chunked response not supported", ci);
    const char *v = find_header(p, hend + 2, "content-length:", 15);
    uint64_t n = 0;
    if (v) {
        char *e;
        n = strtoull(v, &e, 10);
        if (e == v || n > SC_IN_CAP)
            return fail(s, "connection %ld: bad Content-Length", ci);
    }
    size_t head = (size_t)(hend - p) + 4;
    if (head + n > SC_IN_CAP)
        return fail(s, "connection %ld: response too large", ci);
    if (c->in_len < head + n)
        return 0;
    *body = p + head;
    *blen = (size_t)n;
    return (long)(head + n);
}

/* Accounts one complete response received at t with body [body, body+blen). */
static void account(struct sc *s, struct sc_conn *c, int64_t t, const char *body, size_t blen)
{
    sample_add(&s->rtt, t - c->t_send);
    bool is_new = blen == s->target_len && memcmp(body, s->target, blen) == 0;
    bool after_ack = s->phase == SC_NEW && c->t_send > s->t_ack;
    if (s->phase != SC_GAP && is_new) {
        if (c->any == SC_NONE)
            c->any = t;
        if (after_ack && c->post == SC_NONE) {
            c->post = t - s->t_ack;
            c->sent = c->t_send - s->t_ack;
            s->done_n++;
        }
    } else if (after_ack && c->post == SC_NONE) {
        s->stale++; /* sent after the ack, answered by the old pool */
    }
}

static int on_conn_readable(struct sc *s, struct sc_conn *c)
{
    int64_t t0 = now_ns();
    ssize_t n = recv(c->fd, c->in + c->in_len, SC_IN_CAP - c->in_len, 0);
    int64_t t = now_ns();
    if (n == 0)
        return fail(s, "connection %ld closed by the proxy", (long)(c - s->conns));
    if (n < 0)
        return errno == EAGAIN || errno == EINTR
                   ? 0
                   : fail(s, "recv on connection %ld: %s", (long)(c - s->conns), strerror(errno));
    c->in_len += (size_t)n;
    for (;;) {
        const char *body = NULL;
        size_t blen = 0;
        long len = parse_response(s, c, &body, &blen);
        if (len < 0)
            return -1;
        if (len == 0)
            break;
        account(s, c, t, body, blen);
        memmove(c->in, c->in + len, c->in_len - (size_t)len);
        c->in_len -= (size_t)len;
        if (send_req(s, c) < 0)
            return -1;
        sample_add(&s->cost, now_ns() - t0);
    }
    return 0;
}

/* ---- switches --------------------------------------------------------------------------- */

static void begin_switch(struct sc *s, unsigned target_pool)
{
    int n = snprintf(s->target, sizeof s->target, "%s\n", s->o.pools[target_pool]);
    s->target_len = (size_t)n;
    for (unsigned i = 0; i < s->nconns; i++)
        s->conns[i].post = s->conns[i].sent = s->conns[i].any = SC_NONE;
    s->done_n = 0;
}

/* The gap timer fired: a switch (set-weights) or, in baseline, a sham ack. */
static int on_timer(struct sc *s)
{
    uint64_t ticks;
    if (read(s->timer, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
        return fail(s, "timerfd read: %s", strerror(errno));
    if (s->phase != SC_GAP)
        return 0;
    if (!s->o.ctl_path) {
        begin_switch(s, s->cur);
        s->t_sent = s->t_ack = now_ns();
        s->phase = SC_NEW;
        return 0;
    }
    unsigned nw = 1 - s->cur;
    char line[512];
    int n = snprintf(line, sizeof line,
                     "{\"id\":\"%u\",\"op\":\"set-weights\",\"args\":{\"route\":\"%s\","
                     "\"weights\":{\"%s\":0,\"%s\":100},\"reason\":\"switch bench %u\"}}\n",
                     s->n_switch, s->o.route, s->o.pools[s->cur], s->o.pools[nw], s->n_switch);
    if (n < 0 || (size_t)n >= sizeof line)
        return fail(s, "set-weights line too long");
    begin_switch(s, nw);
    s->t_sent = now_ns();
    if (send(s->ctl, line, (size_t)n, MSG_NOSIGNAL) != n)
        return fail(s, "control send: %s", strerror(errno));
    s->phase = SC_ACK;
    return 0;
}

/* Checks one acknowledgement line: {"id": "<n_switch>", "ok": true, ...}. */
static int check_ack(struct sc *s, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *r = json_loadb(line, len, 0, &jerr);
    char want[16];
    snprintf(want, sizeof want, "%u", s->n_switch);
    const char *id = r ? json_string_value(json_object_get(r, "id")) : NULL;
    int ok = r && json_is_true(json_object_get(r, "ok")) && id && strcmp(id, want) == 0;
    json_decref(r);
    if (!ok)
        return fail(s, "set-weights %u refused or unexpected reply: %.*s", s->n_switch,
                    (int)(len < 300 ? len : 300), line);
    return 0;
}

static int on_ctl_readable(struct sc *s)
{
    ssize_t n = recv(s->ctl, s->ctl_in + s->ctl_len, SC_CTL_CAP - s->ctl_len, 0);
    int64_t t = now_ns();
    if (n == 0)
        return fail(s, "control socket closed");
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : fail(s, "control recv: %s", strerror(errno));
    s->ctl_len += (size_t)n;
    char *nl = memchr(s->ctl_in, '\n', s->ctl_len);
    if (!nl)
        return s->ctl_len >= SC_CTL_CAP ? fail(s, "control reply too long") : 0;
    if (s->phase != SC_ACK)
        return fail(s, "unexpected control reply: %.*s", (int)(nl - s->ctl_in), s->ctl_in);
    s->t_ack = t;
    if (check_ack(s, s->ctl_in, (size_t)(nl - s->ctl_in)) < 0)
        return -1;
    size_t used = (size_t)(nl - s->ctl_in) + 1;
    memmove(s->ctl_in, s->ctl_in + used, s->ctl_len - used);
    s->ctl_len -= used;
    s->phase = SC_NEW;
    return 0;
}

static void print_ns(FILE *f, int64_t v)
{
    if (v == SC_NONE)
        fputs("null", f);
    else
        fprintf(f, "%lld", (long long)v);
}

/* One JSON line for the switch that just ended, into the in-memory report. */
static void print_switch(struct sc *s)
{
    FILE *f = s->out;
    fprintf(f, "{\"type\":\"switch\",\"n\":%u,\"t_ack_ns\":%lld,\"ctl_rtt_ns\":", s->n_switch,
            (long long)s->t_ack);
    print_ns(f, s->o.ctl_path ? s->t_ack - s->t_sent : SC_NONE);
    const char *keys[3] = {"post_ns", "sent_ns", "any_ns"};
    for (int k = 0; k < 3; k++) {
        fprintf(f, ",\"%s\":[", keys[k]);
        for (unsigned i = 0; i < s->nconns; i++) {
            const struct sc_conn *c = &s->conns[i];
            int64_t v = k == 0 ? c->post : k == 1 ? c->sent : c->any;
            if (k == 2 && v != SC_NONE)
                v -= s->t_ack;
            if (i)
                fputc(',', f);
            print_ns(f, v);
        }
        fputc(']', f);
    }
    fputs("}\n", f);
}

static int end_switch(struct sc *s)
{
    print_switch(s);
    if (s->o.ctl_path)
        s->cur = 1 - s->cur;
    s->n_switch++;
    s->phase = SC_GAP;
    return s->n_switch < s->o.switches ? arm_gap(s) : 0;
}

/* After a batch of events: ends the switch when every connection has its sample or on timeout;
 * bounds the wait for an acknowledgement and the whole run. */
static int check_progress(struct sc *s, int64_t now)
{
    if (now > s->t_deadline)
        return fail(s, "time limit reached after %u switches", s->n_switch);
    if (s->phase == SC_ACK && now - s->t_sent > SC_ACK_TIMEOUT_NS)
        return fail(s, "no acknowledgement for set-weights %u", s->n_switch);
    if (s->phase == SC_NEW && (s->done_n == s->nconns || now - s->t_ack > s->o.switch_timeout_ns))
        return end_switch(s);
    return 0;
}

/* Handles one epoll batch: the control socket first (t_ack as early as possible), then the
 * timer, then the connections. */
static int handle_batch(struct sc *s, const struct epoll_event *ev, int n)
{
    for (int i = 0; i < n; i++)
        if (ev[i].data.u32 == SC_TAG_CTL && on_ctl_readable(s) < 0)
            return -1;
    for (int i = 0; i < n; i++)
        if (ev[i].data.u32 == SC_TAG_TIMER && on_timer(s) < 0)
            return -1;
    for (int i = 0; i < n; i++) {
        uint32_t tag = ev[i].data.u32;
        if (tag < s->nconns && on_conn_readable(s, &s->conns[tag]) < 0)
            return -1;
    }
    return 0;
}

static int run(struct sc *s)
{
    s->t_deadline = now_ns() + s->o.time_limit_ns;
    s->phase = SC_GAP;
    if (arm_timer(s, now_ns() + 50000000) < 0) /* 50 ms of plain traffic first */
        return -1;
    for (unsigned i = 0; i < s->nconns; i++)
        if (send_req(s, &s->conns[i]) < 0)
            return -1;
    struct epoll_event ev[SC_MAX_EVENTS];
    while (s->n_switch < s->o.switches) {
        int n = epoll_wait(s->ep, ev, SC_MAX_EVENTS, SC_POLL_MS);
        if (n < 0 && errno != EINTR)
            return fail(s, "epoll_wait: %s", strerror(errno));
        if (n > 0 && handle_batch(s, ev, n) < 0)
            return -1;
        if (check_progress(s, now_ns()) < 0)
            return -1;
    }
    return 0;
}

/* ---- report ----------------------------------------------------------------------------- */

static void print_samples(FILE *f, const char *key, const struct sc_samples *sm)
{
    fprintf(f, ",\"%s\":[", key);
    for (size_t i = 0; i < sm->n; i++)
        fprintf(f, i ? ",%lld" : "%lld", (long long)sm->v[i]);
    fprintf(f, "],\"%s_dropped\":%zu", key, sm->dropped);
}

static void print_summary(struct sc *s)
{
    FILE *f = s->out;
    fprintf(f, "{\"type\":\"summary\",\"switches\":%u,\"connections\":%u,\"stale\":%u", s->n_switch,
            s->nconns, s->stale);
    print_samples(f, "req_rtt_ns", &s->rtt);
    print_samples(f, "cost_ns", &s->cost);
    fputs("}\n", f);
}

/* Writes the in-memory report to stdout (the per-switch lines too when the run failed, so that
 * a partial run can be read). Returns 0, or -1 when the report could not be written. */
static int flush_report(struct sc *s)
{
    if (!s->out)
        return 0;
    int bad = fclose(s->out) != 0;
    s->out = NULL;
    if (!bad && s->out_len && fwrite(s->out_buf, 1, s->out_len, stdout) != s->out_len)
        bad = 1;
    return bad ? -1 : 0;
}

/* The error line: the message as a JSON string. */
static void print_error(const char *msg)
{
    json_t *o = json_pack("{s:s, s:s}", "type", "error", "message", msg);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", txt ? txt : "{\"type\":\"error\",\"message\":\"(unprintable)\"}");
    free(txt);
    json_decref(o);
}

static void cleanup(struct sc *s)
{
    for (unsigned i = 0; i < s->nconns; i++)
        close(s->conns[i].fd);
    if (s->ctl >= 0)
        close(s->ctl);
    if (s->timer >= 0)
        close(s->timer);
    if (s->ep >= 0)
        close(s->ep);
    if (s->out)
        fclose(s->out);
    free(s->out_buf);
    free(s->rtt.v);
    free(s->cost.v);
    free(s->conns);
}

int main(int argc, char **argv)
{
    struct sc *s = calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "switch_client: out of memory\n");
        return 1;
    }
    s->ep = s->timer = s->ctl = -1;
    s->conns = calloc(SC_MAX_CONNS, sizeof *s->conns);
    int rc = s->conns ? parse_args(s, argc, argv) : fail(s, "out of memory");
    if (rc < 0 && strncmp(s->err, "bad option", 10) == 0)
        usage();
    if (rc == 0)
        rc = setup(s);
    if (rc == 0)
        rc = run(s);
    if (rc == 0)
        print_summary(s);
    int wrc = flush_report(s);
    if (rc < 0)
        print_error(s->err);
    if (wrc < 0 || fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "switch_client: writing the results: %s\n", strerror(errno));
        rc = -1;
    }
    cleanup(s);
    free(s);
    return rc == 0 ? 0 : 1;
}

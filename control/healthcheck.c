/* healthcheck.c - active health checks (see healthcheck.h). Control thread only. */
#include "control/healthcheck.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/clock.h"
#include "core/cut.h"
#include "proxy/route/snapshot.h"
#include "proxy/net/tls.h"

#define HC_WHY_MAX 160
#define HC_REQ_MAX 4096
#define HC_H2_MAX_READ 65536 /* HTTP/2: bytes read before the status, at most (frames, padding) */

enum hc_phase { HC_IDLE = 0, HC_CONNECTING, HC_EXCHANGE };

/* One endpoint's checker. Owned by struct healthcheck (list or retiring). While a round runs
 * it owns the socket fd, the event waiting for the connect, the SSL (TLS pools) and the
 * bufferevent on top of them; none of them outlives the round. */
struct hc_checker {
    struct healthcheck *h;
    char route[64], pool[40], key[SNAP_KEY_MAX], name[SNAP_KEY_MAX];
    unsigned r, p; /* indices of its route and pool in h->snap (refreshed by every sync) */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct cfg_health_check conf; /* copy; path and host owned */
    int tls;                      /* the pool uses TLS */
    int h2;                       /* the pool speaks HTTP/2 (h2c or h2): so does the check */
    enum hc_phase phase;
    int fd;
    int handshaken; /* TLS: the handshake completed */
    SSL *ssl;
    struct bufferevent *bev;
    nghttp2_session *ng;   /* HTTP/2 checks: the client session of the round */
    int32_t h2_stream;     /* its one request */
    unsigned h2_status;    /* the response's :status, 0 until seen */
    int h2_closed;         /* the stream closed without a status... */
    uint32_t h2_code;      /* ...with this error code */
    size_t h2_read;        /* bytes received this round (bounded by HC_H2_MAX_READ) */
    struct event *ev_conn; /* EV_WRITE: the non-blocking connect finished */
    struct event *timer;   /* HC_IDLE: the next round; otherwise: the round's deadline */
    struct healthcheck_run run;
    int seen; /* during sync */
    struct hc_checker *next;
};

struct healthcheck {
    struct event_base *base;
    healthcheck_report_fn report;
    healthcheck_event_fn event;
    void *ctx;
    struct snapshot *snap; /* the last one synced, one reference */
    int stopping;
    uint64_t prng;
    struct hc_checker *list;
    struct hc_checker *retiring; /* stopped while down, endpoint still published: report up */
    struct event *ev_retire;
};

/* ---- decision logic -------------------------------------------------------------------------- */

int healthcheck_parse_status(const char *p, size_t n, unsigned *status)
{
    size_t lim = n < HEALTHCHECK_MAX_READ ? n : HEALTHCHECK_MAX_READ;
    const char *nl = memchr(p, '\n', lim);
    if (!nl)
        return n < HEALTHCHECK_MAX_READ ? CUT_EAGAIN : CUT_EPROTO;
    size_t len = (size_t)(nl - p);
    if (len > 0 && p[len - 1] == '\r')
        len--;
    /* "HTTP/1.x SP DDD" then the end of the line or SP reason */
    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != ' ')
        return CUT_EPROTO;
    unsigned s = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return CUT_EPROTO;
        s = s * 10 + (unsigned)(p[i] - '0');
    }
    if (len > 12 && p[12] != ' ')
        return CUT_EPROTO;
    if (s < 100)
        return CUT_EPROTO;
    *status = s;
    return (int)(nl - p + 1);
}

int healthcheck_record(struct healthcheck_run *r, int ok, unsigned healthy_threshold,
                       unsigned unhealthy_threshold)
{
    if (ok) {
        r->fail_run = 0;
        if (r->ok_run < UINT32_MAX)
            r->ok_run++;
        if (!r->up && r->ok_run >= healthy_threshold) {
            r->up = 1;
            return 1;
        }
    } else {
        r->ok_run = 0;
        if (r->fail_run < UINT32_MAX)
            r->fail_run++;
        if (r->up && r->fail_run >= unhealthy_threshold) {
            r->up = 0;
            return 1;
        }
    }
    return 0;
}

int healthcheck_request(char *buf, size_t cap, const char *path, const char *host)
{
    int n = snprintf(buf, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cutover-health-check\r\n"
                     "Connection: close\r\n\r\n",
                     path, host);
    return n < 0 || (size_t)n >= cap ? CUT_ELIMIT : n;
}

static uint64_t prng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t healthcheck_delay_ms(uint64_t *prng, unsigned interval_ms, unsigned jitter_ms)
{
    return (uint64_t)interval_ms + (jitter_ms ? prng_next(prng) % jitter_ms : 0);
}

/* ---- one checker ---------------------------------------------------------------------------- */

static void arm(struct hc_checker *k, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(k->timer, &tv);
}

/* Closes the round's connection, if any. */
static void close_round(struct hc_checker *k)
{
    if (k->ev_conn) {
        event_free(k->ev_conn);
        k->ev_conn = NULL;
    }
    if (k->ng) {
        nghttp2_session_del(k->ng);
        k->ng = NULL;
    }
    if (k->bev) {
        /* bufferevent_free() removes the bufferevent's events from the loop later, in a
         * finalizer: take them out now, before the fd is closed below, or the loop would later
         * touch an fd number a worker may already have been given again by accept() */
        bufferevent_disable(k->bev, EV_READ | EV_WRITE);
        bufferevent_free(k->bev); /* neither BEV_OPT_CLOSE_ON_FREE: fd and SSL are ours */
        k->bev = NULL;
    }
    if (k->ssl) {
        tls_ssl_free(k->ssl);
        k->ssl = NULL;
    }
    if (k->fd >= 0) {
        close(k->fd);
        k->fd = -1;
    }
    k->handshaken = 0;
    k->h2_stream = 0;
    k->h2_status = 0;
    k->h2_closed = 0;
    k->h2_code = 0;
    k->h2_read = 0;
    k->phase = HC_IDLE;
}

static void conf_dispose(struct cfg_health_check *hc)
{
    free(hc->path);
    free(hc->host);
    hc->path = hc->host = NULL;
}

static int conf_copy(struct cfg_health_check *dst, const struct cfg_health_check *src)
{
    *dst = *src;
    dst->path = src->path ? strdup(src->path) : NULL;
    dst->host = src->host ? strdup(src->host) : NULL;
    if ((src->path && !dst->path) || (src->host && !dst->host)) {
        conf_dispose(dst);
        return CUT_ENOMEM;
    }
    return 0;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_conf(const struct cfg_health_check *a, const struct cfg_health_check *b)
{
    return a->enabled == b->enabled && same_str(a->path, b->path) && same_str(a->host, b->host) &&
           a->interval_ms == b->interval_ms && a->jitter_ms == b->jitter_ms &&
           a->timeout_ms == b->timeout_ms && a->healthy_threshold == b->healthy_threshold &&
           a->unhealthy_threshold == b->unhealthy_threshold && a->status_min == b->status_min &&
           a->status_max == b->status_max;
}

static void checker_free(struct hc_checker *k)
{
    close_round(k);
    if (k->timer)
        event_free(k->timer);
    conf_dispose(&k->conf);
    free(k);
}

/* The round ended: close it, schedule the next one, count the result and report a change.
 * The report is the last thing done: it publishes a snapshot, whose sync may free k. */
static void round_done(struct hc_checker *k, int ok, const char *why)
{
    struct healthcheck *h = k->h;
    close_round(k);
    if (h->stopping)
        return; /* no more rounds, no more verdicts */
    arm(k, healthcheck_delay_ms(&k->h->prng, k->conf.interval_ms, k->conf.jitter_ms));
    if (!healthcheck_record(&k->run, ok, k->conf.healthy_threshold, k->conf.unhealthy_threshold))
        return;
    char route[sizeof k->route], pool[sizeof k->pool], key[sizeof k->key], w[HC_WHY_MAX];
    memcpy(route, k->route, sizeof route);
    memcpy(pool, k->pool, sizeof pool);
    memcpy(key, k->key, sizeof key);
    snprintf(w, sizeof w, "%s", why);
    h->report(h->ctx, route, pool, key, k->run.up, w, 1);
}

static void fail_errno(struct hc_checker *k, const char *what, int err)
{
    char why[HC_WHY_MAX];
    snprintf(why, sizeof why, "%s: %s", what, strerror(err));
    round_done(k, 0, why);
}

/* Why a bufferevent failed, as "tls: ..." or "read: ...". */
static void bev_failure(struct hc_checker *k, char *why, size_t cap)
{
    unsigned long e = k->ssl ? bufferevent_get_openssl_error(k->bev) : 0;
    int err = EVUTIL_SOCKET_ERROR();
    if (k->ssl && SSL_get_verify_result(k->ssl) != X509_V_OK) {
        char b[128];
        tls_ssl_failure(k->ssl, b, sizeof b);
        snprintf(why, cap, "tls: %s", b);
    } else if (e) {
        char b[128];
        ERR_error_string_n(e, b, sizeof b);
        snprintf(why, cap, "tls: %s", b);
    } else if (k->ssl && !k->handshaken) {
        snprintf(why, cap, "tls: handshake failed%s%s", err ? ": " : "", err ? strerror(err) : "");
    } else {
        snprintf(why, cap, "read: %s", err ? strerror(err) : "failed");
    }
    ERR_clear_error();
}

static void h2_read(struct hc_checker *k);
static int alpn_is_h2(SSL *ssl);

static void on_read(struct bufferevent *bev, void *arg)
{
    struct hc_checker *k = arg;
    if (k->ng) {
        h2_read(k);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    if (n > HEALTHCHECK_MAX_READ)
        n = HEALTHCHECK_MAX_READ;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    unsigned status = 0;
    int rc = p ? healthcheck_parse_status(p, n, &status) : CUT_ENOMEM;
    if (rc == CUT_EAGAIN)
        return;
    char why[HC_WHY_MAX];
    if (rc < 0) {
        snprintf(why, sizeof why, "%s",
                 rc == CUT_ENOMEM ? "out of memory" : "malformed response status line");
        round_done(k, 0, why);
        return;
    }
    snprintf(why, sizeof why, "status %u", status);
    round_done(k, status >= k->conf.status_min && status <= k->conf.status_max, why);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct hc_checker *k = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) { /* TLS: the handshake completed */
        k->handshaken = 1;
        if (k->h2 && !alpn_is_h2(k->ssl))
            round_done(k, 0, "tls: the endpoint did not select ALPN h2");
        return;
    }
    char why[HC_WHY_MAX];
    if (what & BEV_EVENT_ERROR)
        bev_failure(k, why, sizeof why);
    else if (k->ssl && !k->handshaken)
        snprintf(why, sizeof why, "tls: connection closed during the handshake");
    else
        snprintf(why, sizeof why, "closed before the status line");
    round_done(k, 0, why);
}

/* ---- HTTP/2 checks: one nghttp2 client session per round, one GET, the :status decides ---- */

static int alpn_is_h2(SSL *ssl)
{
    const unsigned char *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}

/* The callbacks only record: the round ends after nghttp2 returns (ending it frees the session). */
static int h2_on_header(nghttp2_session *ng, const nghttp2_frame *fr, const uint8_t *name,
                        size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *arg)
{
    struct hc_checker *k = arg;
    (void)ng;
    (void)flags;
    if (fr->hd.type != NGHTTP2_HEADERS || fr->hd.stream_id != k->h2_stream || k->h2_status ||
        nl != 7 || memcmp(name, ":status", 7) != 0)
        return 0;
    unsigned s = 0;
    for (size_t i = 0; i < vl && i < 4; i++)
        s = value[i] >= '0' && value[i] <= '9' ? s * 10 + (unsigned)(value[i] - '0') : 0;
    /* nghttp2 has checked the field: three digits; 1xx are interim, wait for the final one */
    if (vl == 3 && s >= 200)
        k->h2_status = s;
    return 0;
}

static int h2_on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *arg)
{
    struct hc_checker *k = arg;
    (void)ng;
    if (id == k->h2_stream && !k->h2_status) {
        k->h2_closed = 1;
        k->h2_code = code;
    }
    return 0;
}

/* Sends what the session has queued into the bufferevent. <0: out of memory. */
static int h2_flush(struct hc_checker *k)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(k->ng, &data);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 0;
        if (bufferevent_write(k->bev, data, (size_t)n) < 0)
            return CUT_ENOMEM;
    }
}

/* Feeds what arrived to the session, answers it (SETTINGS ack), and ends the round once the
 * request's final status is in, or the stream or the session failed. */
static void h2_read(struct hc_checker *k)
{
    struct evbuffer *in = bufferevent_get_input(k->bev);
    char why[HC_WHY_MAX];
    size_t n;
    while ((n = evbuffer_get_length(in)) > 0) {
        const unsigned char *p = evbuffer_pullup(in, -1);
        ssize_t used = p ? nghttp2_session_mem_recv(k->ng, p, n) : CUT_ENOMEM;
        if (used < 0) {
            snprintf(why, sizeof why, "h2: %s",
                     used == CUT_ENOMEM ? "out of memory" : nghttp2_strerror((int)used));
            round_done(k, 0, why);
            return;
        }
        evbuffer_drain(in, (size_t)used);
        k->h2_read += (size_t)used;
    }
    if (k->h2_status) {
        snprintf(why, sizeof why, "status %u", k->h2_status);
        round_done(k, k->h2_status >= k->conf.status_min && k->h2_status <= k->conf.status_max,
                   why);
    } else if (k->h2_closed) {
        snprintf(why, sizeof why, "h2: stream closed without a response (%s)",
                 nghttp2_http2_strerror(k->h2_code));
        round_done(k, 0, why);
    } else if (k->h2_read > HC_H2_MAX_READ) {
        round_done(k, 0, "h2: more than 64 KiB received without a response status");
    } else if (h2_flush(k) < 0) {
        round_done(k, 0, "out of memory");
    } else if (!nghttp2_session_want_read(k->ng)) {
        round_done(k, 0, "h2: the endpoint ended the session (GOAWAY) before answering");
    }
}

/* A client session with the check's request queued (sent once the bufferevent runs). */
static int h2_start(struct hc_checker *k, const char *host)
{
    nghttp2_session_callbacks *cbs = NULL;
    int ok = nghttp2_session_callbacks_new(&cbs) == 0;
    if (ok) {
        nghttp2_session_callbacks_set_on_header_callback(cbs, h2_on_header);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_on_close);
        ok = nghttp2_session_client_new(&k->ng, cbs, k) == 0;
        nghttp2_session_callbacks_del(cbs);
    }
    if (!ok)
        return CUT_ENOMEM;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HEALTHCHECK_MAX_READ}};
    const char *scheme = k->tls ? "https" : "http";
#define HC_NV(n, v) {(uint8_t *)(n), (uint8_t *)(uintptr_t)(v), sizeof(n) - 1, strlen(v), \
                     NGHTTP2_NV_FLAG_NO_COPY_NAME}
    nghttp2_nv nv[] = {HC_NV(":method", "GET"), HC_NV(":scheme", scheme),
                       HC_NV(":authority", host), HC_NV(":path", k->conf.path),
                       HC_NV("user-agent", "cutover-health-check")};
#undef HC_NV
    if (nghttp2_submit_settings(k->ng, NGHTTP2_FLAG_NONE, iv, CUT_ARRAY_LEN(iv)) != 0)
        return CUT_ENOMEM;
    k->h2_stream = nghttp2_submit_request(k->ng, NULL, nv, CUT_ARRAY_LEN(nv), NULL, NULL);
    if (k->h2_stream < 0)
        return CUT_ENOMEM;
    return h2_flush(k);
}

/* The socket is connected: wrap it (TLS or not), queue the request, read. */
static void start_exchange(struct hc_checker *k)
{
    struct healthcheck *h = k->h;
    char req[HC_REQ_MAX];
    const char *host = k->conf.host ? k->conf.host : k->name;
    int len = k->h2 ? 0 : healthcheck_request(req, sizeof req, k->conf.path, host);
    if (len < 0) {
        round_done(k, 0, "request too long");
        return;
    }
    if (k->tls) {
        struct tls_client *tc = NULL;
        if (h->snap && k->r < h->snap->nroutes && k->p < h->snap->routes[k->r].npools)
            tc = h->snap->routes[k->r].pools[k->p].tls;
        if (!tc) {
            round_done(k, 0, "tls: no client context");
            return;
        }
        char sni[SNAP_KEY_MAX];
        snapshot_endpoint_host(k->name, sni, sizeof sni);
        k->ssl = tls_client_ssl_new(tc, sni, NULL);
        /* The check speaks the pool's protocol (SSL_set_alpn_protos: 0 is ok). */
        const char *alpn = k->h2 ? "\x02h2" : "\x08http/1.1";
        if (!k->ssl ||
            SSL_set_alpn_protos(k->ssl, (const unsigned char *)alpn, (unsigned)strlen(alpn))) {
            round_done(k, 0, "out of memory");
            return;
        }
        k->bev =
            bufferevent_openssl_socket_new(h->base, k->fd, k->ssl, BUFFEREVENT_SSL_CONNECTING, 0);
    } else {
        k->bev = bufferevent_socket_new(h->base, k->fd, 0);
    }
    if (!k->bev) {
        round_done(k, 0, "out of memory");
        return;
    }
    k->phase = HC_EXCHANGE;
    bufferevent_setcb(k->bev, on_read, NULL, on_event, k);
    bufferevent_setwatermark(k->bev, EV_READ, 0, HEALTHCHECK_MAX_READ);
    if ((k->h2 ? h2_start(k, host) : bufferevent_write(k->bev, req, (size_t)len)) < 0 ||
        bufferevent_enable(k->bev, EV_READ | EV_WRITE) < 0) {
        round_done(k, 0, "out of memory");
        return;
    }
}

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
    struct hc_checker *k = arg;
    (void)what;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    event_free(k->ev_conn);
    k->ev_conn = NULL;
    if (err) {
        fail_errno(k, "connect", err);
        return;
    }
    start_exchange(k);
}

static void start_round(struct hc_checker *k)
{
    struct healthcheck *h = k->h;
    k->phase = HC_CONNECTING;
    arm(k, k->conf.timeout_ms); /* the deadline of the whole round */
    k->fd = socket(k->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (k->fd < 0) {
        fail_errno(k, "socket", errno);
        return;
    }
    if (connect(k->fd, (const struct sockaddr *)&k->addr, k->addrlen) == 0) {
        start_exchange(k);
        return;
    }
    if (errno != EINPROGRESS) {
        fail_errno(k, "connect", errno);
        return;
    }
    k->ev_conn = event_new(h->base, k->fd, EV_WRITE, on_connect, k);
    if (!k->ev_conn || event_add(k->ev_conn, NULL) < 0)
        round_done(k, 0, "out of memory");
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct hc_checker *k = arg;
    (void)fd;
    (void)what;
    if (k->phase != HC_IDLE) {
        round_done(k, 0, "timeout");
        return;
    }
    if (!k->h->stopping)
        start_round(k);
}

/* Aborts any round and starts over after a random part of the jitter; the verdict stays. */
static void restart(struct hc_checker *k)
{
    close_round(k);
    k->run.ok_run = k->run.fail_run = 0;
    arm(k, healthcheck_delay_ms(&k->h->prng, 0, k->conf.jitter_ms));
}

/* ---- the set --------------------------------------------------------------------------------- */

static void on_retire(evutil_socket_t fd, short what, void *arg);

struct healthcheck *healthcheck_new(struct event_base *base, healthcheck_report_fn report,
                                    healthcheck_event_fn event, void *ctx)
{
    struct healthcheck *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->base = base;
    h->report = report;
    h->event = event;
    h->ctx = ctx;
    h->ev_retire = evtimer_new(base, on_retire, h);
    if (!h->ev_retire) {
        free(h);
        return NULL;
    }
    if (getrandom(&h->prng, sizeof h->prng, GRND_NONBLOCK) != (ssize_t)sizeof h->prng)
        h->prng = clock_mono_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)h;
    return h;
}

static void free_list(struct hc_checker *k)
{
    while (k) {
        struct hc_checker *next = k->next;
        checker_free(k);
        k = next;
    }
}

void healthcheck_free(struct healthcheck *h)
{
    if (!h)
        return;
    free_list(h->list);
    free_list(h->retiring);
    if (h->ev_retire)
        event_free(h->ev_retire);
    snapshot_unref(h->snap);
    free(h);
}

void healthcheck_stop(struct healthcheck *h)
{
    h->stopping = 1;
}

/* Next loop turn after a sync: the endpoints whose checker stopped while they were down come
 * back up. One at a time from the head: each report publishes, and its sync may retire more. */
static void on_retire(evutil_socket_t fd, short what, void *arg)
{
    struct healthcheck *h = arg;
    (void)fd;
    (void)what;
    struct hc_checker *k;
    while ((k = h->retiring) != NULL) {
        h->retiring = k->next;
        char route[sizeof k->route], pool[sizeof k->pool], key[sizeof k->key];
        memcpy(route, k->route, sizeof route);
        memcpy(pool, k->pool, sizeof pool);
        memcpy(key, k->key, sizeof key);
        checker_free(k);
        if (!h->stopping)
            h->report(h->ctx, route, pool, key, 1, "health check disabled", 1);
    }
}

static struct hc_checker *checker_find(struct healthcheck *h, const char *route, const char *pool,
                                       const char *key)
{
    for (struct hc_checker *k = h->list; k; k = k->next)
        if (!strcmp(k->key, key) && !strcmp(k->pool, pool) && !strcmp(k->route, route))
            return k;
    return NULL;
}

static struct hc_checker *checker_new(struct healthcheck *h, const char *route, const char *pool,
                                      const struct snap_endpoint *se,
                                      const struct cfg_health_check *conf)
{
    struct hc_checker *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->h = h;
    k->fd = -1;
    k->run.up = 1; /* start serving: a restart must not blackhole traffic */
    snprintf(k->route, sizeof k->route, "%s", route);
    snprintf(k->pool, sizeof k->pool, "%s", pool);
    snprintf(k->key, sizeof k->key, "%s", se->key);
    k->timer = evtimer_new(h->base, on_timer, k);
    if (!k->timer || conf_copy(&k->conf, conf) < 0) {
        if (k->timer)
            event_free(k->timer);
        free(k);
        return NULL;
    }
    return k;
}

/* Whether (route, pool, key) is an endpoint of s. */
static int published(const struct snapshot *s, const struct hc_checker *k)
{
    for (unsigned r = 0; s && r < s->nroutes; r++) {
        if (strcmp(s->routes[r].cfg->name, k->route))
            continue;
        for (unsigned p = 0; p < s->routes[r].npools; p++) {
            const struct snap_pool *sp = &s->routes[r].pools[p];
            if (strcmp(sp->cfg->name, k->pool))
                continue;
            for (unsigned e = 0; e < sp->neps; e++)
                if (!strcmp(sp->eps[e].key, k->key))
                    return 1;
        }
    }
    return 0;
}

void healthcheck_sync(struct healthcheck *h, struct snapshot *snap)
{
    if (snap)
        snapshot_ref(snap);
    snapshot_unref(h->snap);
    h->snap = snap;
    const struct snapshot *s = snap;
    for (struct hc_checker *k = h->list; k; k = k->next)
        k->seen = 0;
    for (unsigned r = 0; s && r < s->nroutes; r++) {
        const struct snap_route *sr = &s->routes[r];
        for (unsigned p = 0; p < sr->npools; p++) {
            const struct snap_pool *sp = &sr->pools[p];
            const struct cfg_health_check *conf = &sp->cfg->health_check;
            if (!conf->enabled)
                continue;
            for (unsigned e = 0; e < sp->neps; e++) {
                const struct snap_endpoint *se = &sp->eps[e];
                struct hc_checker *k = checker_find(h, sr->cfg->name, sp->cfg->name, se->key);
                if (k && k->seen)
                    continue; /* the same address twice in a pool: one checker */
                int tls = sp->tls != NULL, h2 = sp->cfg->protocol != CFG_UP_HTTP1;
                if (!k) {
                    k = checker_new(h, sr->cfg->name, sp->cfg->name, se, conf);
                    if (!k) {
                        h->event(h->ctx, "health_check_failed",
                                  ",\"reason\":\"out of memory: an endpoint is not checked\"");
                        continue;
                    }
                    k->next = h->list;
                    h->list = k;
                    k->tls = tls;
                    k->h2 = h2;
                    restart(k);
                } else if (!same_conf(&k->conf, conf) || k->tls != tls || k->h2 != h2) {
                    struct cfg_health_check fresh;
                    if (conf_copy(&fresh, conf) == 0) {
                        conf_dispose(&k->conf);
                        k->conf = fresh;
                        k->tls = tls;
                        k->h2 = h2;
                        restart(k);
                    } /* else: out of memory, it keeps checking with what it had */
                }
                k->seen = 1;
                k->r = r;
                k->p = p;
                snprintf(k->name, sizeof k->name, "%s", se->name);
                memcpy(&k->addr, &se->addr, sizeof k->addr);
                k->addrlen = se->addrlen;
            }
        }
    }
    /* Checkers whose endpoint left, or whose pool stopped checking. */
    struct hc_checker **pp = &h->list;
    int retire = 0;
    while (*pp) {
        struct hc_checker *k = *pp;
        if (k->seen) {
            pp = &k->next;
            continue;
        }
        *pp = k->next;
        if (k->run.up) {
            checker_free(k);
        } else if (published(s, k)) { /* still serving traffic decisions: report it up */
            close_round(k);
            evtimer_del(k->timer);
            k->next = h->retiring;
            h->retiring = k;
            retire = 1;
        } else { /* gone: forget its verdict without publishing (it is in no snapshot) */
            h->report(h->ctx, k->route, k->pool, k->key, 1, "left the snapshot", 0);
            checker_free(k);
        }
    }
    if (retire) {
        struct timeval zero = {0, 0};
        evtimer_add(h->ev_retire, &zero);
    }
}

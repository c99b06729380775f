/* siem.c - the SIEM sender (see siem.h). */
#include "proxy/log/siem.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config/cfg.h"
#include "core/clock.h"
#include "core/cut.h"
#include "proxy/log/log.h"
#include "proxy/net/tls.h"

#define SIEM_BACKOFF_MIN_MS 1000
#define SIEM_BACKOFF_MAX_MS 30000
#define SIEM_IDLE_CHECK_MS 1000 /* while idle, look for a connection the SIEM closed */
#define SIEM_DRAIN_MS 2000      /* at shutdown: the time given to what is queued */
#define SIEM_FRAME_MAX (LEEF_MAX_MESSAGE + 16)
#define SIEM_EARLY_QUEUE (1u << 20) /* records submitted before the first siem_configure */

struct siem_item {
    struct siem_item *next;
    enum leef_kind kind;
    size_t len;
    char json[];
};

/* The settings the thread works with: a deep copy of the configuration's. */
struct siem_conf {
    char *address, *host, *port, *vendor, *hostname, *cluster, *region;
    char delimiter;
    unsigned facility;
    enum cfg_siem_framing framing;
    size_t max_queue;
    unsigned connect_timeout_ms, write_timeout_ms;
};

struct siem {
    struct logger *lg;
    char version[32];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu: */
    int stop;
    int configured; /* siem_configure ran: before, records wait (start-up events) */
    int enabled;
    uint64_t gen;            /* bumped by every change of conf */
    struct siem_conf conf;   /* what siem_configure gave */
    struct tls_client *tc;   /* the client context for the next connection */
    struct siem_item *head, *tail;
    size_t queued;           /* bytes of JSON queued, the item being written included */
    uint64_t sent, dropped;
    int connected;
};

/* ---- settings ---------------------------------------------------------------------------------- */

static void conf_dispose(struct siem_conf *c)
{
    free(c->address);
    free(c->host);
    free(c->port);
    free(c->vendor);
    free(c->hostname);
    free(c->cluster);
    free(c->region);
    memset(c, 0, sizeof *c);
}

static int dup_to(char **dst, const char *s)
{
    *dst = strdup(s ? s : "");
    return *dst ? 0 : CUT_ENOMEM;
}

/* The machine's host name as an RFC 5424 HOSTNAME (printable, no space, <= 255). */
static void default_hostname(char *out, size_t cap)
{
    if (gethostname(out, cap) != 0 || out[0] == '\0')
        snprintf(out, cap, "-");
    out[cap - 1] = '\0';
    for (char *p = out; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            *p = '_';
}

static int conf_clone(struct siem_conf *dst, const struct siem_conf *src);

/* The thread's settings from the configuration's (strings copied). */
static int conf_copy(struct siem_conf *dst, const struct cfg_siem *src, const char *cluster,
                     const char *region)
{
    char port[8], host[256];
    snprintf(port, sizeof port, "%u", (unsigned)src->port);
    if (src->hostname)
        snprintf(host, sizeof host, "%s", src->hostname);
    else
        default_hostname(host, sizeof host);
    const struct siem_conf view = {.address = src->address, .host = src->host, .port = port,
                                   .vendor = src->vendor, .hostname = host,
                                   .cluster = (char *)(uintptr_t)cluster,
                                   .region = (char *)(uintptr_t)region,
                                   .delimiter = src->delimiter, .facility = src->facility,
                                   .framing = src->framing, .max_queue = src->max_queue_bytes,
                                   .connect_timeout_ms = src->connect_timeout_ms,
                                   .write_timeout_ms = src->write_timeout_ms};
    return conf_clone(dst, &view);
}

static int conf_clone(struct siem_conf *dst, const struct siem_conf *src)
{
    *dst = *src;
    dst->address = dst->host = dst->port = dst->vendor = dst->hostname = dst->cluster =
        dst->region = NULL;
    if (dup_to(&dst->address, src->address) || dup_to(&dst->host, src->host) ||
        dup_to(&dst->port, src->port) || dup_to(&dst->vendor, src->vendor) ||
        dup_to(&dst->hostname, src->hostname) || dup_to(&dst->cluster, src->cluster) ||
        dup_to(&dst->region, src->region)) {
        conf_dispose(dst);
        return CUT_ENOMEM;
    }
    return 0;
}

static int conf_same(const struct siem_conf *a, const struct siem_conf *b)
{
    return !strcmp(a->address, b->address) && !strcmp(a->vendor, b->vendor) &&
           !strcmp(a->hostname, b->hostname) && !strcmp(a->cluster, b->cluster) &&
           !strcmp(a->region, b->region) && a->delimiter == b->delimiter &&
           a->facility == b->facility && a->framing == b->framing &&
           a->max_queue == b->max_queue && a->connect_timeout_ms == b->connect_timeout_ms &&
           a->write_timeout_ms == b->write_timeout_ms;
}

/* ---- the queue (under mu) ------------------------------------------------------------------------- */

static void drop_all(struct siem *s)
{
    while (s->head) {
        struct siem_item *it = s->head;
        s->head = it->next;
        s->dropped++;
        free(it);
    }
    s->tail = NULL;
    s->queued = 0;
}

static void push_front(struct siem *s, struct siem_item *it)
{
    it->next = s->head;
    s->head = it;
    if (!s->tail)
        s->tail = it;
}

static struct siem_item *pop_front(struct siem *s)
{
    struct siem_item *it = s->head;
    if (it) {
        s->head = it->next;
        if (!s->head)
            s->tail = NULL;
        it->next = NULL;
    }
    return it;
}

/* ---- public, any thread ------------------------------------------------------------------------- */

void siem_submit(struct siem *s, enum leef_kind kind, const char *json, size_t len)
{
    if (!s || len == 0)
        return;
    if (kind == LEEF_SECURITY) {
        /* "event":"NAME": only the events the SIEM takes (leef_event_severity) are queued. */
        const char *p = memmem(json, len, "\"event\":\"", 9);
        char name[64];
        size_t n = 0;
        if (p) {
            p += 9;
            while (n + 1 < sizeof name && p + n < json + len && p[n] != '"')
                n++;
            memcpy(name, p, n);
        }
        name[n] = '\0';
        if (!p || leef_event_severity(name) == 0)
            return;
    }
    struct siem_item *it = malloc(sizeof *it + len);
    pthread_mutex_lock(&s->mu);
    size_t cap = s->configured ? s->conf.max_queue : SIEM_EARLY_QUEUE;
    if (!it || (s->configured && !s->enabled) || s->queued + len > cap) {
        s->dropped += s->enabled || !s->configured ? 1 : 0;
        pthread_mutex_unlock(&s->mu);
        free(it);
        return;
    }
    it->next = NULL;
    it->kind = kind;
    it->len = len;
    memcpy(it->json, json, len);
    if (s->tail)
        s->tail->next = it;
    else
        s->head = it;
    s->tail = it;
    s->queued += len;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void siem_get_stats(struct siem *s, struct siem_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    out->enabled = s->enabled;
    out->connected = s->connected;
    out->sent = s->sent;
    out->dropped = s->dropped;
    out->queued_bytes = s->queued;
    pthread_mutex_unlock(&s->mu);
}

int siem_configure(struct siem *s, const struct cfg_siem *cfg, struct tls_client *tc,
                   const char *cluster, const char *region)
{
    int on = cfg && cfg->address && tc;
    struct siem_conf fresh = {0};
    if (on && conf_copy(&fresh, cfg, cluster, region) < 0)
        return CUT_ENOMEM;
    struct tls_client *old_tc = NULL;
    pthread_mutex_lock(&s->mu);
    if (!on) {
        uint64_t dropped = s->dropped;
        drop_all(s); /* counted only when they were meant for a SIEM */
        if (!s->enabled)
            s->dropped = dropped;
        if (s->enabled) {
            s->enabled = 0;
            s->gen++;
            conf_dispose(&s->conf);
            old_tc = s->tc;
            s->tc = NULL;
        }
    } else {
        if (!s->enabled || !conf_same(&s->conf, &fresh)) {
            conf_dispose(&s->conf);
            s->conf = fresh;
            memset(&fresh, 0, sizeof fresh);
            s->gen++;
        }
        s->enabled = 1;
        if (s->tc != tc) {
            tls_client_ref(tc);
            old_tc = s->tc;
            s->tc = tc;
        }
    }
    s->configured = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    conf_dispose(&fresh);
    if (old_tc)
        tls_client_unref(old_tc);
    return 0;
}

/* ---- the thread ------------------------------------------------------------------------------------ */

struct conn {
    int fd;
    SSL *ssl;
};

static void conn_close(struct conn *c, int notify)
{
    if (c->ssl) {
        if (notify)
            SSL_shutdown(c->ssl); /* non-blocking: sends close_notify if it can */
        tls_ssl_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    ERR_clear_error();
}

/* Waits until fd has ev, at most until deadline. 0 ready, -1 timeout or failure. */
static int wait_fd(int fd, short ev, long long deadline)
{
    for (;;) {
        long long left = deadline - (long long)clock_mono_ms();
        if (left <= 0)
            return CUT_EIO;
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return CUT_EIO;
    }
}

/* After an SSL call returned r: waits for what it wants. 0 retry, -1 failed or out of time. */
static int ssl_wait(struct conn *c, int r, long long deadline)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return wait_fd(c->fd, POLLIN, deadline);
    case SSL_ERROR_WANT_WRITE:
        return wait_fd(c->fd, POLLOUT, deadline);
    default:
        return CUT_EIO;
    }
}

/* Waits on the condition for at most ms (mu held). Returns pthread_cond_timedwait's result. */
static int timed_wait(struct siem *s, long long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = ts.tv_nsec + (ms > 0 ? ms : 0) % 1000 * 1000000LL;
    ts.tv_sec += (time_t)((ms > 0 ? ms : 0) / 1000 + ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    return pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

static void thread_event(struct siem *s, const struct siem_conf *cf, const char *name,
                         const char *key, const char *value)
{
    char t[32], ev[512], line[1024];
    log_time_rfc3339(t, sizeof t);
    log_escape(ev, sizeof ev, value, strlen(value));
    int n = snprintf(line, sizeof line,
                     "{\"type\":\"event\",\"time\":\"%s\",\"timestamp\":\"%s\","
                     "\"service\":\"" LOG_SERVICE "\",\"level\":\"%s\",\"cluster\":\"%s\","
                     "\"region\":\"%s\",\"event\":\"%s\",\"address\":\"%s\",\"%s\":\"%s\"}",
                     t, t, log_event_level(name, NULL), cf->cluster, cf->region, name,
                     cf->address, key, ev);
    if (n > 0)
        log_line(s->lg, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Connects to one address of the SIEM and completes the TLS handshake. */
static int connect_one(struct conn *c, const struct addrinfo *ai, struct tls_client *tc,
                       const char *host, long long deadline, char *why, size_t cap)
{
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(why, cap, "socket: %s", strerror(errno));
        return CUT_EIO;
    }
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        snprintf(why, cap, "connect: %s", strerror(errno));
        return CUT_EIO;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (wait_fd(c->fd, POLLOUT, deadline) < 0) {
        snprintf(why, cap, "connect: timed out");
        return CUT_EIO;
    }
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        snprintf(why, cap, "connect: %s", strerror(err ? err : errno));
        return CUT_EIO;
    }
    c->ssl = tls_client_ssl_new(tc, host, NULL);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        snprintf(why, cap, "tls: out of memory");
        return CUT_EIO;
    }
    for (;;) {
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(c->ssl, r);
        if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
            ssl_wait(c, r, deadline) < 0) {
            char b[256];
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                snprintf(b, sizeof b, "handshake timed out");
            else if (SSL_get_verify_result(c->ssl) != X509_V_OK || !ERR_peek_error())
                tls_ssl_failure(c->ssl, b, sizeof b);
            else
                ERR_error_string_n(ERR_peek_error(), b, sizeof b);
            snprintf(why, cap, "tls: %s", b);
            return CUT_EIO;
        }
    }
}

static int do_connect(struct conn *c, const struct siem_conf *cf, struct tls_client *tc,
                      char *why, size_t cap)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(cf->host, cf->port, &hints, &res);
    if (g != 0) {
        snprintf(why, cap, "resolve %s: %s", cf->host, gai_strerror(g));
        return CUT_EIO;
    }
    int rc = -1;
    for (const struct addrinfo *ai = res; ai && rc < 0; ai = ai->ai_next) {
        long long deadline = (long long)clock_mono_ms() + cf->connect_timeout_ms;
        rc = connect_one(c, ai, tc, cf->host, deadline, why, cap);
        if (rc < 0)
            conn_close(c, 0);
    }
    freeaddrinfo(res);
    return rc;
}

/* Writes all of buf; 0, or -1 (failed, or not taken before the deadline). */
static int write_all(struct conn *c, const char *buf, size_t n, long long deadline)
{
    for (;;) {
        int r = SSL_write(c->ssl, buf, (int)n);
        if (r > 0)
            return 0; /* without SSL_MODE_ENABLE_PARTIAL_WRITE: all of it */
        if (ssl_wait(c, r, deadline) < 0)
            return CUT_EIO;
    }
}

/* Whether an idle connection is still open (the SIEM may have closed it). */
static int still_open(struct conn *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return 1;
    char buf[4096];
    for (int i = 0; i < 16; i++) {
        int r = SSL_read(c->ssl, buf, sizeof buf);
        if (r > 0)
            continue; /* the SIEM has nothing to say; discard */
        return SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ;
    }
    return 1;
}

/* The frame of one record into frame; its length, or 0 when the record cannot be encoded. */
static size_t frame(const struct siem *s, const struct siem_conf *cf, const struct siem_item *it,
                    char *frame_buf, char *msg)
{
    struct leef_opts o = {.vendor = cf->vendor, .product = "cutover", .version = s->version,
                          .hostname = cf->hostname, .pid = (long)getpid(),
                          .facility = cf->facility, .delimiter = cf->delimiter};
    int n = leef_encode(&o, it->kind, it->json, it->len, msg, LEEF_MAX_MESSAGE + 1);
    if (n <= 0)
        return 0;
    if (cf->framing == CFG_SIEM_NEWLINE)
        return (size_t)snprintf(frame_buf, SIEM_FRAME_MAX, "%s\n", msg);
    return (size_t)snprintf(frame_buf, SIEM_FRAME_MAX, "%d %s", n, msg);
}

static void *run(void *arg)
{
    struct siem *s = arg;
    struct siem_conf cf = {0};
    uint64_t gen = 0;
    int have_conf = 0, outage = 0;
    struct conn c = {.fd = -1};
    long long next_try = 0, backoff = SIEM_BACKOFF_MIN_MS, stop_by = 0;
    char *fbuf = malloc(SIEM_FRAME_MAX + 1), *mbuf = malloc(LEEF_MAX_MESSAGE + 1);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->stop && !stop_by)
            stop_by = (long long)clock_mono_ms() + SIEM_DRAIN_MS;
        if (s->stop && (!s->head || !s->enabled || (long long)clock_mono_ms() >= stop_by || (!c.ssl && outage)))
            break;
        if (!fbuf || !mbuf) { /* out of memory at start: drop what comes */
            drop_all(s);
            if (s->stop)
                break;
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        if (!s->enabled || gen != s->gen) {
            if (c.ssl) {
                pthread_mutex_unlock(&s->mu);
                conn_close(&c, 1);
                pthread_mutex_lock(&s->mu);
                s->connected = 0;
            }
            if (have_conf)
                conf_dispose(&cf);
            have_conf = 0;
            if (!s->enabled) {
                if (s->stop)
                    break;
                pthread_cond_wait(&s->cv, &s->mu);
                continue;
            }
            if (conf_clone(&cf, &s->conf) < 0) {
                timed_wait(s, 1000);
                continue;
            }
            have_conf = 1;
            gen = s->gen;
            outage = 0;
            next_try = 0;
            backoff = SIEM_BACKOFF_MIN_MS;
        }
        if (!c.ssl) {
            long long now = (long long)clock_mono_ms();
            if (now < next_try) {
                timed_wait(s, (s->stop && stop_by < next_try ? stop_by : next_try) - now);
                continue;
            }
            struct tls_client *tc = s->tc;
            tls_client_ref(tc);
            pthread_mutex_unlock(&s->mu);
            char why[400];
            int rc = do_connect(&c, &cf, tc, why, sizeof why);
            tls_client_unref(tc);
            if (rc < 0) {
                if (!outage)
                    thread_event(s, &cf, "siem_unreachable", "reason", why);
                outage = 1;
                next_try = (long long)clock_mono_ms() + backoff;
                backoff = backoff * 2 > SIEM_BACKOFF_MAX_MS ? SIEM_BACKOFF_MAX_MS : backoff * 2;
            } else {
                char subject[512];
                tls_ssl_peer_subject(c.ssl, subject, sizeof subject);
                thread_event(s, &cf, "siem_connected", "peer", subject);
                outage = 0;
                backoff = SIEM_BACKOFF_MIN_MS;
            }
            pthread_mutex_lock(&s->mu);
            s->connected = c.ssl != NULL;
            continue;
        }
        if (!s->head) {
            if (s->stop)
                break;
            if (timed_wait(s, SIEM_IDLE_CHECK_MS) == ETIMEDOUT && !s->head) {
                pthread_mutex_unlock(&s->mu);
                int open = still_open(&c);
                if (!open) {
                    conn_close(&c, 0);
                    thread_event(s, &cf, "siem_unreachable", "reason",
                                 "the SIEM closed the connection");
                    outage = 1;
                    next_try = (long long)clock_mono_ms() + backoff;
                }
                pthread_mutex_lock(&s->mu);
                s->connected = c.ssl != NULL;
            }
            continue;
        }
        struct siem_item *it = pop_front(s);
        pthread_mutex_unlock(&s->mu);
        size_t n = frame(s, &cf, it, fbuf, mbuf);
        long long deadline = (long long)clock_mono_ms() + cf.write_timeout_ms;
        if (stop_by && deadline > stop_by)
            deadline = stop_by;
        int ok = n == 0 || write_all(&c, fbuf, n, deadline) == 0;
        if (!ok) {
            conn_close(&c, 0);
            thread_event(s, &cf, "siem_unreachable", "reason",
                         "a write was not taken within write_timeout_ms, or failed");
            outage = 1;
            next_try = (long long)clock_mono_ms() + backoff;
            backoff = backoff * 2 > SIEM_BACKOFF_MAX_MS ? SIEM_BACKOFF_MAX_MS : backoff * 2;
        }
        pthread_mutex_lock(&s->mu);
        s->connected = c.ssl != NULL;
        if (ok) {
            s->queued -= it->len;
            if (n)
                s->sent++;
            else
                s->dropped++; /* not a record the SIEM can take (cannot happen for ours) */
            free(it);
        } else if (s->enabled && gen == s->gen) {
            push_front(s, it); /* sent again on the next connection */
        } else {
            s->queued -= it->len; /* the SIEM changed or went away meanwhile */
            s->dropped++;
            free(it);
        }
    }
    pthread_mutex_unlock(&s->mu);
    conn_close(&c, 1);
    if (have_conf)
        conf_dispose(&cf);
    free(fbuf);
    free(mbuf);
    return NULL;
}

struct siem *siem_new(struct logger *lg, const char *version)
{
    struct siem *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->lg = lg;
    snprintf(s->version, sizeof s->version, "%s", version);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    return s;
}

void siem_free(struct siem *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    drop_all(s);
    conf_dispose(&s->conf);
    if (s->tc)
        tls_client_unref(s->tc);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

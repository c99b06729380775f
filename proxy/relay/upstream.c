/* upstream.c - per-worker endpoint table and pools; opens an exchange in the endpoint's protocol
 * (upstream_h1.c, upstream_h2.c). */
#include "proxy/relay/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/cfg.h"
#include "core/clock.h"
#include "core/cut.h"
#include "proxy/relay/stream.h"
#include "proxy/relay/upstream_h1.h"
#include "proxy/relay/upstream_h2.h"
#include "proxy/net/io.h"
#include "proxy/log/log.h"
#include "proxy/log/siem.h"
#include "proxy/net/tls.h"
#include "proxy/relay/worker.h"

/* ---- endpoint table ------------------------------------------------------------------------ */

static unsigned key_hash(const char *k)
{
    uint32_t h = 2166136261u;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 16777619u;
    return h;
}

int upstream_table_init(struct upstream_table *t, struct worker *w)
{
    t->nbuckets = 256;
    t->n = 0;
    t->w = w;
    t->nqueued = 0;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    return t->buckets ? 0 : CUT_ENOMEM;
}

static void ep_free(struct upstream_ep *ep)
{
    CUT_ASSERT(ep->nqueued == 0);
    ltimer_dispose(&ep->qtmo);
    if (ep->tls_session)
        tls_session_free(ep->tls_session);
    free(ep);
}

static void ep_maybe_free(struct upstream_table *t, struct upstream_ep *ep)
{
    if (ep->refs || ep->nconns || ep->outstanding || ep->h2conns || ep->nqueued)
        return;
    struct upstream_ep **pp = &t->buckets[key_hash(ep->key) % t->nbuckets];
    for (; *pp; pp = &(*pp)->hnext) {
        if (*pp == ep) {
            *pp = ep->hnext;
            t->n--;
            ep_free(ep);
            return;
        }
    }
}

static uint64_t fnv64(uint64_t h, const char *p)
{
    for (; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull; /* a separator: ("ab","") differs from ("a","b") */
}

/* What a verified connection or a session of a TLS pool stands for besides the name and the
 * client subject: the trust store (CA bundle, CRL), the minimum version and the client
 * certificate files. Pools that differ in any of these must not share connections or sessions:
 * a session resumed (or a connection reused) skips the verification under the other trust. */
static uint64_t tls_trust_hash(const struct cfg_upstream_tls *t)
{
    uint64_t h = 14695981039346656037ull;
    const struct cfg_tls_cert *cc = t->client_cert;
    char ver[8];
    snprintf(ver, sizeof ver, "%u", t->min_version);
    h = fnv64(h, t->ca);
    h = fnv64(h, t->crl);
    h = fnv64(h, ver);
    h = fnv64(h, cc ? cc->cert : NULL);
    h = fnv64(h, cc ? cc->key : NULL);
    return fnv64(h, cc ? cc->pem : NULL);
}

/* ---- waiting for a connection ------------------------------------------------------------- */

enum balance_admit upstream_admit(const struct upstream_ep *ep, const struct cfg *cfg)
{
    if (ep->proto != CFG_UP_HTTP1)
        return BALANCE_ADMIT_OPEN;
    return balance_admit(cfg->limits.upstream_connections_per_endpoint, ep->nconns, ep->nidle,
                         ep->nqueued, cfg->limits.upstream_queue_per_endpoint);
}

static void publish_queued(struct upstream_table *t)
{
    atomic_store_explicit(&t->w->queued_now, t->nqueued, memory_order_relaxed);
}

static void queue_unlink(struct upstream_ep *ep, struct stream *s)
{
    CUT_ASSERT(s->queued && ep->nqueued > 0);
    if (s->qprev)
        s->qprev->qnext = s->qnext;
    else
        ep->qhead = s->qnext;
    if (s->qnext)
        s->qnext->qprev = s->qprev;
    else
        ep->qtail = s->qprev;
    s->qnext = s->qprev = NULL;
    s->queued = 0;
    ep->nqueued--;
    ep->table->nqueued--;
    publish_queued(ep->table);
}

/* Wakes the queue's timer when its head's deadline comes (the head is the oldest, so the
 * first deadline in FIFO order; a reload that shortened timeouts.upstream_queue_ms applies to
 * requests queued after it). */
static void arm_for_head(struct upstream_ep *ep, uint64_t now)
{
    uint64_t dl = ep->qhead->queue_deadline_ns;
    uint64_t ms = dl > now ? (dl - now + 999999u) / 1000000u : 1;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    ltimer_arm_tv(&ep->qtmo, (unsigned)ms, &tv);
}

/* The queue's turn: as many of the oldest requests as there is room for get a connection,
 * those past their deadline are answered 503, the rest wait on. Each request leaves the queue
 * before its callback runs; a callback may queue a request again (a retry): the loop is
 * bounded by the count it started with. */
static void on_queue(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct upstream_ep *ep = arg;
    struct upstream_table *t = ep->table;
    const struct cfg *cfg = t->w->pins.current ? t->w->pins.current->snap->cfg : NULL;
    unsigned limit = cfg ? cfg->limits.upstream_connections_per_endpoint : 0;
    uint64_t now = clock_mono_ns();
    ep->refs++; /* a request answered here may free ep's last reference */
    for (unsigned n = ep->nqueued; n > 0 && ep->qhead; n--) {
        struct stream *s = ep->qhead;
        /* the admission rule with nobody ahead of s (it is the head) */
        int room = balance_admit(limit, ep->nconns, ep->nidle, 0, 1) == BALANCE_ADMIT_OPEN;
        if (!room && now < s->queue_deadline_ns)
            break;
        queue_unlink(ep, s);
        if (room)
            stream_on_upstream_ready(s);
        else
            stream_on_upstream_queue_timeout(s);
    }
    /* a timer callback: write what the requests sent (io.h); a failed socket reported here
     * may end more waits, so the queue is looked at afterwards */
    io_loop_flush(&t->w->iol);
    if (ep->qhead)
        arm_for_head(ep, clock_mono_ns());
    ep->refs--;
    ep_maybe_free(t, ep);
}

void upstream_wait(struct upstream_ep *ep, struct stream *s, unsigned wait_ms)
{
    CUT_ASSERT(!s->queued);
    uint64_t now = clock_mono_ns();
    s->queue_deadline_ns = now + (uint64_t)wait_ms * 1000000u;
    s->queued = 1;
    s->qnext = NULL;
    s->qprev = ep->qtail;
    if (ep->qtail)
        ep->qtail->qnext = s;
    else
        ep->qhead = s;
    ep->qtail = s;
    ep->nqueued++;
    ep->table->nqueued++;
    publish_queued(ep->table);
    if (ep->qhead == s)
        arm_for_head(ep, now);
}

void upstream_unwait(struct upstream_ep *ep, struct stream *s)
{
    queue_unlink(ep, s);
}

void upstream_slot_freed(struct upstream_ep *ep)
{
    if (ep->qhead)
        ltimer_fire(&ep->qtmo);
}

struct upstream_ep *upstream_ep_get(struct upstream_table *t, const struct snap_endpoint *se,
                                    const struct snap_pool *sp)
{
    static const char *const protos[] = {"http1", "h2c", "h2"};
    const struct cfg_pool *cp = sp->cfg;
    char key[UPSTREAM_IDENT_MAX], host[UPSTREAM_HOST_MAX];
    snapshot_endpoint_host(se->name, host, sizeof host);
    if (sp->tls)
        snprintf(key, sizeof key, "%s|%s|%s|%s|%016llx", se->key, protos[cp->protocol],
                 cp->tls->server_name ? cp->tls->server_name : host,
                 tls_client_subject(sp->tls), (unsigned long long)tls_trust_hash(cp->tls));
    else if (cp->protocol != CFG_UP_HTTP1)
        snprintf(key, sizeof key, "%s|%s", se->key, protos[cp->protocol]);
    else
        snprintf(key, sizeof key, "%s", se->key);
    unsigned b = key_hash(key) % t->nbuckets;
    for (struct upstream_ep *ep = t->buckets[b]; ep; ep = ep->hnext) {
        if (strcmp(ep->key, key) == 0) {
            ep->refs++;
            return ep;
        }
    }
    struct upstream_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return NULL;
    memcpy(ep->key, key, sizeof ep->key);
    memcpy(ep->host, host, sizeof ep->host);
    ep->proto = (int)cp->protocol;
    ep->tls = sp->tls != NULL;
    ep->addr = se->addr;
    ep->addrlen = se->addrlen;
    ep->refs = 1;
    ep->table = t;
    ltimer_init(&ep->qtmo, t->w->base, on_queue, ep);
    ep->hnext = t->buckets[b];
    t->buckets[b] = ep;
    t->n++;
    return ep;
}

void upstream_ep_release(struct upstream_table *t, struct upstream_ep *ep)
{
    ep_maybe_free(t, ep);
}

void upstream_ep_put(struct upstream_table *t, struct upstream_ep *ep)
{
    CUT_ASSERT(ep->refs > 0);
    if (ep->refs == 1) {
        /* No snapshot routes here any more: its idle connections are of no use. The reference
         * is dropped only afterwards, so that closing the last connection cannot free ep while
         * this loop still reads it. */
        upstream_h1_close_idle(ep);
        upstream_h2_close_idle(ep);
    }
    ep->refs--;
    ep_maybe_free(t, ep);
}

void upstream_close_idle(struct upstream_table *t)
{
    for (unsigned b = 0; b < t->nbuckets; b++) {
        struct upstream_ep *ep = t->buckets[b];
        while (ep) {
            struct upstream_ep *next = ep->hnext;
            ep->refs++; /* keep ep while its last connection closes */
            upstream_h1_close_idle(ep);
            upstream_h2_close_idle(ep);
            ep->refs--;
            ep_maybe_free(t, ep);
            ep = next;
        }
    }
}

void upstream_table_dispose(struct upstream_table *t)
{
    for (unsigned b = 0; b < t->nbuckets; b++) {
        struct upstream_ep *ep = t->buckets[b];
        while (ep) {
            struct upstream_ep *next = ep->hnext;
            ep->refs++; /* conn_close must not free ep: it is freed right here */
            upstream_h1_close_idle(ep);
            upstream_h2_close_idle(ep);
            ep_free(ep);
            ep = next;
        }
    }
    free(t->buckets);
    t->buckets = NULL;
}

/* A failed upstream handshake is a security event (wrong CA, expired or revoked certificate,
 * name mismatch): one JSON line to the log, with the reason OpenSSL gives. */
void upstream_tls_failed_event(struct worker *w, const struct upstream_ep *ep,
                               const struct io *io)
{
    char why[256], ewhy[600], ekey[UPSTREAM_IDENT_MAX * 2], now[40], line[2048];
    const struct cfg *cfg = w->pins.current ? w->pins.current->snap->cfg : NULL;
    io_tls_failure(io, why, sizeof why);
    log_escape(ewhy, sizeof ewhy, why, strlen(why));
    log_escape(ekey, sizeof ekey, ep->key, strlen(ep->key));
    log_time_rfc3339(now, sizeof now);
    int n = snprintf(line, sizeof line,
                     "{\"type\":\"event\",\"time\":\"%s\",\"timestamp\":\"%s\","
                     "\"service\":\"" LOG_SERVICE "\",\"level\":\"error\",\"cluster\":\"%s\","
                     "\"region\":\"%s\",\"event\":\"upstream_tls_failed\",\"worker\":%u,"
                     "\"upstream\":\"%s\",\"reason\":\"%s\"}",
                     now, now, cfg ? cfg->cluster : "", cfg ? cfg->region : "", w->id, ekey, ewhy);
    if (n > 0 && (size_t)n < sizeof line) {
        log_line(w->logger, line, (size_t)n);
        siem_submit(w->siem, LEEF_SECURITY, line, (size_t)n);
    }
}

struct upstream *upstream_open(struct worker *w, struct upstream_ep *ep, struct stream *s,
                               int *reused)
{
    if (ep->proto == CFG_UP_H2C || ep->proto == CFG_UP_H2) {
        *reused = 0;
        return upstream_h2_open(w, ep, s);
    }
    return upstream_h1_open(w, ep, s, reused);
}

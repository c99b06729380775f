/* stream.c - one exchange: pin a snapshot, route, choose an upstream, relay, log, finish. */
#include "proxy/relay/stream.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/addr.h"
#include "core/clock.h"
#include "proxy/route/balance.h"
#include "proxy/log/geoip.h"
#include "proxy/net/io.h"
#include "proxy/log/log.h"
#include "proxy/route/snapshot.h"
#include "proxy/relay/upstream.h"
#include "proxy/relay/worker.h"

#define TLS_FAILED_MSG "the TLS handshake with the upstream failed (see the upstream_tls_failed event)"

struct stream *stream_new(struct worker *w, const struct downstream_ops *ops, void *ctx,
                          const struct sockaddr *peer, socklen_t peerlen)
{
    struct stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->req_body = evbuffer_new();
    if (!s->req_body) {
        free(s);
        return NULL;
    }
    s->w = w;
    s->ops = ops;
    s->ctx = ctx;
    if (peerlen > sizeof s->peer)
        peerlen = sizeof s->peer;
    memcpy(&s->peer, peer, peerlen);
    if (addr_text(peer, s->peer_str, sizeof s->peer_str) < 0)
        snprintf(s->peer_str, sizeof s->peer_str, "unknown");
    memcpy(s->client_str, s->peer_str, sizeof s->client_str);
    s->route = s->pool = s->ep_index = s->first_pool = -1;
    s->health_noted = -1;
    s->t_start_ns = clock_mono_ns();
    w->stats.requests++;
    return s;
}

void stream_set_tls(struct stream *s, const struct io *io)
{
    if (!io_is_tls(io))
        return;
    s->tls = 1;
    io_peer_subject(io, s->client_cert, sizeof s->client_cert);
}

static void copy_slice(char *dst, size_t cap, struct cut_slice src)
{
    size_t n = src.n < cap - 1 ? src.n : cap - 1;
    if (n) /* an absent field is {NULL, 0}: memcpy must not see NULL */
        memcpy(dst, src.p, n);
    dst[n] = '\0';
}

/* The gateway's health probe (cfg probe_path, GET or HEAD, query ignored), whatever the Host. */
static int is_probe(const struct cfg *cfg, const struct http_req *req)
{
    if (!cfg->probe_path)
        return 0;
    const char *q = memchr(req->path.p, '?', req->path.n);
    size_t n = q ? (size_t)(q - req->path.p) : req->path.n, pn = strlen(cfg->probe_path);
    int get = req->method.n == 3 && memcmp(req->method.p, "GET", 3) == 0;
    return (get || (req->flags & HTTP_RF_HEAD)) && n == pn &&
           memcmp(req->path.p, cfg->probe_path, n) == 0;
}

static void fail(struct stream *s, int status, const char *code, const char *msg)
{
    s->status = status;
    s->error = code;
    if (status >= 500)
        s->w->stats.responses_5xx++;
    s->state = STREAM_DONE;
    s->ops->fail(s->ctx, s, status, code, msg);
}

/* The override's certificate rule: no subjects configured, or the caller's verified client
 * certificate is one of them. */
static int override_subject_ok(const struct cfg_override *o, const char *subject)
{
    if (o->nsubjects == 0)
        return 1;
    for (size_t i = 0; subject[0] && i < o->nsubjects; i++)
        if (strcmp(o->trusted_subjects[i], subject) == 0)
            return 1;
    return 0;
}

static struct cut_slice field_value(const struct http_req *req, const char *lower)
{
    int i = http_find(req->fields, req->nfields, lower, strlen(lower));
    if (i < 0)
        return (struct cut_slice){NULL, 0};
    return req->fields[i].value;
}

/* Points s->fwd's slices (written by http_write_forward into from) at the stream's copy of the
 * head, s->head. */
static struct cut_slice moved(struct cut_slice v, const char *from, const char *to)
{
    return v.p ? (struct cut_slice){to + (v.p - from), v.n} : v;
}

static void stream_fwd_rebase(struct stream *s, const char *from)
{
    struct http_req *r = &s->fwd;
    for (unsigned i = 0; i < r->nfields; i++) {
        r->fields[i].name = moved(r->fields[i].name, from, s->head);
        r->fields[i].value = moved(r->fields[i].value, from, s->head);
    }
    r->method = moved(r->method, from, s->head);
    r->path = moved(r->path, from, s->head);
    r->authority = moved(r->authority, from, s->head);
    r->upgrade = moved(r->upgrade, from, s->head);
}

static void release_ep(struct stream *s)
{
    if (s->queued)
        upstream_unwait(s->ep, s);
    if (s->ep) {
        CUT_ASSERT(s->ep->outstanding > 0);
        s->ep->outstanding--;
        s->ep = NULL;
    }
}

static void connect_next(struct stream *s);
static void open_try(struct stream *s, uint64_t now);
/* connect_phase value of a try whose connection could not even be started (connect_next). */
#define CONNECT_NOT_STARTED 2
static void note_health(struct stream *s, int ep_index, int failed);

/* GET, HEAD, OPTIONS, TRACE, PUT and DELETE may be sent twice (RFC 9110 section 9.2.2). */
static int method_idempotent(struct cut_slice m)
{
    static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < CUT_ARRAY_LEN(ok); i++)
        if (m.n == strlen(ok[i]) && memcmp(m.p, ok[i], m.n) == 0)
            return 1;
    return 0;
}

void stream_start(struct stream *s, const struct http_req *req)
{
    struct worker *w = s->w;
    copy_slice(s->log_method, sizeof s->log_method, req->method);
    s->method_slice = (struct cut_slice){s->log_method, strlen(s->log_method)};
    copy_slice(s->log_host, sizeof s->log_host, req->authority);
    copy_slice(s->log_path, sizeof s->log_path, req->path);
    s->head_method_head = (req->flags & HTTP_RF_HEAD) != 0;
    s->idempotent = method_idempotent(req->method);

    s->pin = worker_pin(w);
    if (!s->pin) {
        fail(s, 503, "not_ready", "no configuration published yet");
        return;
    }
    const struct snapshot *snap = s->pin->snap;
    const struct cfg *cfg = snap->cfg;
    if (is_probe(cfg, req)) { /* answered here, never routed or proxied */
        int draining = atomic_load_explicit(&s->w->draining, memory_order_relaxed);
        s->status = draining ? 503 : 200;
        s->state = STREAM_DONE;
        s->ops->fail(s->ctx, s, s->status, NULL, draining ? "draining" : "ready");
        return;
    }
    const struct sockaddr *peer = (const struct sockaddr *)&s->peer;
    int peer_trusted = route_cidr_contains(&cfg->trusted_proxies, peer);

    /* Which host the client asked for: behind a trusted proxy (Application Gateway with "pick
     * host name from backend address"), the original one is in X-Original-Host. */
    struct cut_slice host = req->authority;
    if (peer_trusted) {
        struct cut_slice orig = field_value(req, "x-original-host");
        if (orig.n)
            host = orig;
    }
    char nhost[STREAM_HOST_MAX];
    if (host.n == 0) {
        nhost[0] = '\0';
    } else if (route_normalize_host(host, nhost, sizeof nhost) < 0) {
        fail(s, 400, "bad_request", "invalid host");
        return;
    }
    s->route = route_match(cfg, nhost, req->path);
    if (s->route < 0) {
        fail(s, 404, "no_route", "no route matches this host and path");
        return;
    }
    const struct snap_route *sr = &snap->routes[s->route];
    const struct cfg_route *cr = sr->cfg;

    /* without X-Forwarded-For the client is the peer, whose text stream_new wrote */
    struct cut_slice xff = field_value(req, "x-forwarded-for");
    if (xff.n)
        route_client_addr(peer, xff, &cfg->trusted_proxies, s->client_str, sizeof s->client_str);

    struct wsnap *ws = s->pin->data;
    struct route_pick_in in = {.route = cr, .weights_bp = sr->weights_bp};
    if (sr->cohort.ncountries > 0) {
        /* only a route with a cohort pays for the lookup; the access log reuses it */
        if (snap->geo)
            geoip_country(snap->geo, s->client_str, s->country);
        s->country_done = 1;
        in.cohort = &sr->cohort;
        in.country = s->country;
        in.cohort_swrr = &ws->cohort_swrr[s->route];
    }
    if (cr->override.header) {
        in.override_value = field_value(req, cr->override.header);
        in.override_trusted = in.override_value.n &&
                              route_cidr_contains(&cr->override.trusted_peers, peer) &&
                              override_subject_ok(&cr->override, s->client_cert);
    }
    switch (cr->sticky.kind) {
    case CFG_STICKY_HEADER:
        in.sticky_key = field_value(req, cr->sticky.name);
        break;
    case CFG_STICKY_COOKIE:
        route_cookie_value(field_value(req, "cookie"), cr->sticky.name, &in.sticky_key);
        break;
    case CFG_STICKY_CLIENT_IP:
        in.sticky_key = (struct cut_slice){s->client_str, strlen(s->client_str)};
        break;
    default:
        break;
    }
    s->pool = s->first_pool = route_pick_pool(&in, &ws->swrr[s->route], &s->reason);
    s->in_cohort = (uint8_t)route_in_cohort(&in);
    if (s->pool < 0) {
        fail(s, 503, "no_endpoint", "every pool of this route is at weight 0");
        return;
    }

    struct cut_slice id = field_value(req, "x-request-id");
    if (!http_request_id_ok(id))
        id = field_value(req, "x-appgw-trace-id");
    if (http_request_id_ok(id))
        copy_slice(s->request_id, sizeof s->request_id, id);
    else
        worker_request_id(w, s->request_id);

    struct http_forward fwd = {
        .peer_addr = {s->peer_str, strlen(s->peer_str)},
        .peer_trusted = peer_trusted,
        .proto = s->tls ? CUT_SLICE_LIT("https") : CUT_SLICE_LIT("http"),
        .request_id = {s->request_id, strlen(s->request_id)},
    };
    /* W3C trace context: a valid traceparent (one field) is forwarded as it came; an invalid one
     * is dropped with its tracestate; with "create", a request left without one gets a fresh
     * one. Absent and "forward": one scan of the field names, nothing else. */
    char traceparent[TRACE_PARENT_LEN + 1];
    int ti = http_find(req->fields, req->nfields, "traceparent", 11);
    if (ti >= 0) {
        struct cut_slice tp = req->fields[ti].value;
        if (trace_parent_ok(tp) &&
            http_find(req->fields + ti + 1, req->nfields - (unsigned)ti - 1, "traceparent", 11) < 0)
            copy_slice(s->trace_id, sizeof s->trace_id,
                       (struct cut_slice){trace_parent_id(tp), TRACE_ID_LEN});
        else
            fwd.drop_trace = 1;
    }
    if (!s->trace_id[0] && cfg->trace_context == CFG_TRACE_CREATE) {
        uint64_t r0 = worker_rand(w), r1 = worker_rand(w), r2 = worker_rand(w);
        trace_parent_make(traceparent, r0, r1, r2);
        fwd.traceparent = (struct cut_slice){traceparent, TRACE_PARENT_LEN};
        copy_slice(s->trace_id, sizeof s->trace_id,
                   (struct cut_slice){trace_parent_id(fwd.traceparent), TRACE_ID_LEN});
    }
    if (cr->override.header)
        fwd.strip = (struct cut_slice){cr->override.header, strlen(cr->override.header)};
    const struct snap_pool *chosen = &sr->pools[s->pool];
    if (!req->authority.n && chosen->neps)
        fwd.default_host = (struct cut_slice){chosen->eps[0].name, strlen(chosen->eps[0].name)};
    /* HTTP/2 upstreams take the forwarded request field by field: recorded only when a pool of
     * this route speaks HTTP/2 (a failover may reach any pool of the route). */
    int fields_wanted = 0;
    for (unsigned p = 0; p < sr->npools; p++)
        fields_wanted |= sr->pools[p].cfg->protocol != CFG_UP_HTTP1;
    unsigned fmax = fields_wanted ? req->nfields + 9 : 0; /* + the fields written by us */
    struct http_field *fields = fmax ? malloc(fmax * sizeof *fields) : NULL;
    struct http_req out;
    int n = fmax && !fields ? CUT_ENOMEM
                            : http_write_forward(w->scratch, w->scratch_cap, req, &fwd,
                                                 fields ? &out : NULL, fields, fmax);
    if (n < 0) {
        free(fields);
        if (n == CUT_ENOMEM)
            fail(s, 503, "overloaded", "out of memory");
        else
            fail(s, 431, "headers_too_large", "request head too large to forward");
        return;
    }
    /* One block: the fields first (when recorded), then the head they point into. */
    size_t fbytes = fields ? out.nfields * sizeof *fields : 0;
    char *block = fields ? realloc(fields, fbytes + (size_t)n) : malloc((size_t)n);
    if (!block) {
        free(fields);
        fail(s, 503, "overloaded", "out of memory");
        return;
    }
    s->head = block + fbytes;
    memcpy(s->head, w->scratch, (size_t)n);
    s->head_len = (size_t)n;
    if (fields) {
        s->fwd = out;
        s->fwd.fields = (struct http_field *)(void *)block;
        stream_fwd_rebase(s, w->scratch);
    }
    s->req_framing = req->framing;
    s->req_done = req->framing == HTTP_BODY_NONE ||
                  (req->framing == HTTP_BODY_LENGTH && req->content_length == 0);
    s->upgrade = (req->flags & HTTP_RF_UPGRADE) != 0;
    s->te_trailers = (req->flags & HTTP_RF_TE_TRAILERS) != 0;
    struct cut_slice ct = field_value(req, "content-type");
    s->grpc = ct.n >= 16 && strncasecmp(ct.p, "application/grpc", 16) == 0;
    connect_next(s);
}

/* Local fast failover: after a failed connect this worker leaves the endpoint alone for
 * 100 ms, doubling per consecutive failure up to 1 s, unless nothing else can serve (then it is
 * tried anyway). Its first response clears the hold (stream_on_upstream_head). Passive health
 * (the control thread's ejection) learns the same failures through note_health. */
#define STREAM_HOLD_BASE_MS 100u
#define STREAM_HOLD_MAX_MS 1000u

static void hold_down(struct upstream_ep *ep)
{
    unsigned shift = ep->connect_failures < 4 ? ep->connect_failures : 4;
    uint64_t ms = (uint64_t)STREAM_HOLD_BASE_MS << shift;
    if (ms > STREAM_HOLD_MAX_MS)
        ms = STREAM_HOLD_MAX_MS;
    ep->connect_failures++;
    ep->hold_until_ns = clock_mono_ns() + ms * 1000000u;
}

static int held(const struct upstream_ep *ep, uint64_t now)
{
    return ep->hold_until_ns && now < ep->hold_until_ns;
}

/* Whether snapshot endpoint ep_index already failed this request. */
static int tried(const struct stream *s, unsigned ep_index)
{
    for (unsigned t = 0; t < s->ntried; t++)
        if (s->tried[t] == (int)ep_index)
            return 1;
    return 0;
}

/* May endpoint i of sp take this request: not drained, not unhealthy, not failed in this
 * request, and (unless allow_held) not held down by this worker. */
static int candidate(const struct stream *s, const struct snap_pool *sp, unsigned i, int allow_held,
                     uint64_t now)
{
    const struct wsnap *ws = s->pin->data;
    const struct snap_endpoint *se = &sp->eps[i];
    return !se->drained && !se->unhealthy && !tried(s, se->index) &&
           (allow_held || !held(ws->eps[se->index], now));
}

/* Whether pool p has an endpoint that may take this request without waiting out a hold. */
static int pool_can_serve(const struct stream *s, int p, uint64_t now)
{
    const struct snap_pool *sp = &s->pin->snap->routes[s->route].pools[p];
    for (unsigned i = 0; i < sp->neps; i++)
        if (candidate(s, sp, i, 0, now))
            return 1;
    return 0;
}

/* Chooses an endpoint of pool p for the next try (balance mode, slow start). Returns its index
 * in the pool, or -1. */
static int pick_endpoint(struct stream *s, int p, int allow_held, uint64_t now)
{
    struct wsnap *ws = s->pin->data;
    const struct snap_pool *sp = &s->pin->snap->routes[s->route].pools[p];
    unsigned outstanding[256];
    uint8_t usable[256];
    unsigned n = sp->neps < 256 ? sp->neps : 256;
    for (unsigned i = 0; i < n; i++) {
        const struct upstream_ep *ep = ws->eps[sp->eps[i].index];
        const struct snap_endpoint *se = &sp->eps[i];
        outstanding[i] = ep->outstanding;
        usable[i] = (uint8_t)candidate(s, sp, i, allow_held, now);
        /* Slow start: a returning endpoint takes only its ramp's share of the picks. */
        if (usable[i] && se->ramp_permille < 1000 &&
            worker_rand(s->w) % 1000 >= se->ramp_permille)
            usable[i] = 2;
    }
    enum balance_mode mode = sp->cfg->balance == CFG_BALANCE_ROUND_ROBIN
                                 ? BALANCE_ROUND_ROBIN
                                 : BALANCE_LEAST_OUTSTANDING;
    unsigned full = 0;
    for (unsigned i = 0; i < n; i++)
        full += usable[i] == 1;
    for (unsigned i = 0; i < n; i++) /* ramping endpoints skipped only if another can serve */
        if (usable[i] == 2)
            usable[i] = full == 0;
    return balance_pick_endpoint(mode, outstanding, usable, n,
                                 &ws->rr[s->route * CFG_MAX_POOLS + p]);
}

/* Picks the endpoint for the next try and attaches an upstream connection: an endpoint of
 * s->pool; when that pool has none left for this request, the pool route_failover_pool names
 * (per-request fail-safe); when only endpoints held down after failed connects remain, one of
 * those in s->pool. */
static void connect_next(struct stream *s)
{
    struct wsnap *ws = s->pin->data;
    const struct snap_route *sr = &s->pin->snap->routes[s->route];
    uint64_t now = clock_mono_ns();
    int idx = pick_endpoint(s, s->pool, 0, now);
    if (idx < 0) {
        uint8_t can[CFG_MAX_POOLS] = {0};
        for (unsigned p = 0; p < sr->npools && p < CFG_MAX_POOLS; p++)
            can[p] = (int)p != s->pool && pool_can_serve(s, (int)p, now);
        int np = route_failover_pool(sr->cfg, sr->weights_bp, s->pool, can, s->reason);
        if (np >= 0) {
            s->pool = np;
            s->reason = ROUTE_BY_FAILSAFE;
            worker_count(&s->w->failovers);
            idx = pick_endpoint(s, np, 0, now);
        }
    }
    if (idx < 0)
        idx = pick_endpoint(s, s->pool, 1, now);
    const struct snap_pool *sp = &sr->pools[s->pool];
    if (idx < 0) {
        if (s->tries == 0 && sp->neps > 0)
            fail(s, 503, "no_endpoint", "every endpoint of the chosen pool is drained or down");
        else if (s->tries == 0)
            fail(s, 503, "no_endpoint", "the chosen pool has no endpoint");
        else if (s->last_err == CUT_ETIMEDOUT)
            fail(s, 503, "no_endpoint", "connecting to the upstream timed out");
        else if (s->last_err == CUT_ETLS)
            fail(s, 502, "upstream_tls", TLS_FAILED_MSG);
        else
            fail(s, 503, "no_endpoint", "every upstream endpoint tried refused the connection");
        return;
    }
    s->ep_index = (int)sp->eps[idx].index;
    s->ep = ws->eps[s->ep_index];
    s->ep->outstanding++;
    s->tries++;
    s->attempts++;
    if (s->attempts > 1)
        worker_count(&s->w->retries);
    const struct cfg *cfg = s->pin->snap->cfg;
    switch (upstream_admit(s->ep, cfg)) {
    case BALANCE_ADMIT_OPEN:
        break;
    case BALANCE_ADMIT_QUEUE:
        s->state = STREAM_QUEUED;
        worker_count(&s->w->queued);
        upstream_wait(s->ep, s, cfg->timeouts.upstream_queue);
        return;
    case BALANCE_ADMIT_REFUSE:
        release_ep(s);
        worker_count(&s->w->queue_full);
        fail(s, 503, "upstream_busy",
             "every connection to the upstream endpoint is busy and its queue is full");
        return;
    }
    open_try(s, now);
}

/* The try on s->ep starts: an idle pooled connection or a new one (upstream_open). */
static void open_try(struct stream *s, uint64_t now)
{
    if (!s->t_first_try_ns)
        s->t_first_try_ns = now; /* time spent waiting in a queue is not in retries.budget_ms */
    s->state = STREAM_CONNECTING;
    s->t_upstream_ns = now;
    s->uc_reused = 0;
    int reused = 0;
    if (!upstream_open(s->w, s->ep, s, &reused)) {
        /* no socket, no memory, or a request this upstream cannot carry (Upgrade over
         * HTTP/2): a failed connect, but no reason to avoid the endpoint */
        stream_on_upstream_error(s, CUT_ECONN, 1, CONNECT_NOT_STARTED);
        return;
    }
    if (s->up)
        s->uc_reused = reused;
    if (s->state == STREAM_CONNECTING)
        s->state = STREAM_WAITING;
}

void stream_request_body(struct stream *s, int done)
{
    if (done)
        s->req_done = 1;
    if (!s->up)
        return;
    s->up->ops->send(s->up);
}

size_t stream_request_buffered(const struct stream *s)
{
    return evbuffer_get_length(s->req_body) + (s->up ? s->up->ops->pending(s->up) : 0);
}

void stream_downstream_drained(struct stream *s)
{
    if (s->up)
        s->up->ops->resume(s->up);
}

void stream_abort(struct stream *s)
{
    if (s->resp_head_sent && s->state != STREAM_DONE)
        s->aborted = 1;
    if (s->up)
        s->up->ops->detach(s->up);
    release_ep(s);
    if (s->state != STREAM_DONE && !s->status)
        s->status = 499; /* client closed the connection first (nginx's convention) */
    s->state = STREAM_DONE;
}

void stream_on_upstream_head(struct stream *s, const struct http_resp *resp)
{
    if (resp->status < 200 && resp->status != 101) {
        s->ops->head(s->ctx, s, resp); /* interim response, relayed as is */
        return;
    }
    s->status = resp->status;
    if (resp->status >= 500)
        s->w->stats.responses_5xx++;
    if (s->ep) { /* it answers: no longer held down (connect_next) */
        s->ep->hold_until_ns = 0;
        s->ep->connect_failures = 0;
    }
    s->t_head_ns = clock_mono_ns();
    s->resp_head_sent = 1;
    s->state = STREAM_RESPONDING;
    s->ops->head(s->ctx, s, resp);
    if (resp->status == 101 && s->up) {
        s->state = STREAM_TUNNEL;
        s->ops->tunnel(s->ctx, s);
    }
}

void stream_on_upstream_body(struct stream *s, struct evbuffer *data)
{
    s->bytes_out += evbuffer_get_length(data);
    s->ops->body(s->ctx, s, data);
    if (s->up && s->ops->pending(s->ctx, s) > s->pin->snap->cfg->limits.buffer_bytes)
        s->up->ops->pause(s->up);
}

void stream_on_upstream_end(struct stream *s, const struct http_field *trailers, unsigned n)
{
    release_ep(s);
    s->state = STREAM_DONE;
    s->ops->end(s->ctx, s, trailers, n);
}

void stream_on_upstream_error(struct stream *s, int err, int retryable, int connect_phase)
{
    int failed_ep = s->ep_index;
    /* A refusal says nothing about the endpoint's health, nor does a pooled connection that
     * the upstream had closed (a keep-alive race, RFC 9112 section 9.3.1): the stale retry
     * below tries a fresh connection, whose failure counts. */
    int stale = retryable == 1 && !connect_phase && s->uc_reused && !s->stale_retried &&
                s->idempotent && !s->req_body_sent_any;
    if (retryable != STREAM_RETRY_UNPROCESSED && !stale)
        note_health(s, failed_ep, 1);
    if (!stale)
        s->health_noted = failed_ep;
    if (connect_phase && connect_phase != CONNECT_NOT_STARTED && s->ep)
        hold_down(s->ep);
    release_ep(s);
    s->last_err = err;
    s->w->stats.upstream_errors++;
    enum route_fail f = retryable == STREAM_RETRY_UNPROCESSED ? ROUTE_FAIL_UNPROCESSED
                        : retryable && connect_phase         ? ROUTE_FAIL_CONNECT
                        : retryable                          ? ROUTE_FAIL_LOST
                                                             : ROUTE_FAIL_OTHER;
    if (f == ROUTE_FAIL_UNPROCESSED && !s->resp_head_sent && s->unprocessed_retries < 2) {
        /* HTTP/2 REFUSED_STREAM or above a GOAWAY's last stream id: the upstream never
         * processed it (RFC 9113 section 8.7), so any method goes again, to any endpoint
         * (usually a fresh connection to the same one), outside the retries bounds. */
        s->unprocessed_retries++;
        s->tries--;
        connect_next(s);
        return;
    }
    const struct cfg_retries *rc = &s->pin->snap->cfg->retries;
    struct route_retry_in in = {
        .fail = f,
        .idempotent = s->idempotent,
        .body_sent = s->req_body_sent_any,
        .resp_started = s->resp_head_sent,
        .tries = s->tries,
        .max_tries = rc->max_tries,
        .elapsed_ms = (clock_mono_ns() - s->t_first_try_ns) / 1000000u,
        .budget_ms = rc->budget_ms,
    };
    if (route_retry_decide(&in)) {
        if (f == ROUTE_FAIL_LOST && s->uc_reused && !s->stale_retried)
            s->stale_retried = 1; /* a keep-alive connection the upstream had closed: the
                                   * endpoint itself may be fine and may be chosen again */
        else if (failed_ep >= 0 && s->ntried < CUT_ARRAY_LEN(s->tried))
            s->tried[s->ntried++] = failed_ep;
        connect_next(s);
        return;
    }
    if (s->resp_head_sent) {
        s->state = STREAM_DONE;
        s->ops->fail(s->ctx, s, s->status, "upstream_reset", "upstream connection lost");
        return;
    }
    if (connect_phase && err == CUT_ETLS)
        fail(s, 502, "upstream_tls", TLS_FAILED_MSG);
    else if (connect_phase)
        fail(s, 503, "no_endpoint",
             err == CUT_ETIMEDOUT ? "connecting to the upstream timed out"
                                  : "every upstream endpoint tried refused the connection");
    else if (err == CUT_ETIMEDOUT)
        fail(s, 504, "upstream_timeout", "the upstream did not answer in time");
    else if (err == CUT_EPROTO)
        fail(s, 502, "upstream_protocol", "the upstream sent an invalid response");
    else
        fail(s, 502, "upstream_reset", "the upstream closed the connection without answering");
}

void stream_on_upstream_ready(struct stream *s)
{
    open_try(s, clock_mono_ns());
}

void stream_on_upstream_queue_timeout(struct stream *s)
{
    release_ep(s);
    worker_count(&s->w->queue_timeouts);
    fail(s, 503, "upstream_busy",
         "waited longer than timeouts.upstream_queue_ms for a connection to the upstream");
}

void stream_on_upstream_drained(struct stream *s)
{
    if (s->state != STREAM_DONE)
        s->ops->resume_body(s->ctx, s);
}

static const char *reason_name(enum route_reason r)
{
    switch (r) {
    case ROUTE_BY_STICKY: return "sticky";
    case ROUTE_BY_OVERRIDE: return "override";
    case ROUTE_BY_FAILSAFE: return "failsafe";
    default: return "weight";
    }
}

static uint64_t ns_between(uint64_t a, uint64_t b)
{
    return b > a ? b - a : 0;
}

/* One JSON line per request (docs/operations.md, "Access log"), written without printf. */
static void write_access_log(struct stream *s)
{
    const struct cfg *cfg = s->pin ? s->pin->snap->cfg : NULL;
    if (cfg && !cfg->access_log.enabled)
        return;
    const char *route = "", *pool = "", *endpoint = "";
    if (s->pin && s->route >= 0) {
        const struct snap_route *sr = &s->pin->snap->routes[s->route];
        route = sr->cfg->name;
        if (s->pool >= 0)
            pool = sr->pools[s->pool].cfg->name;
        if (s->ep_index >= 0)
            endpoint = s->pin->snap->endpoints[s->ep_index].key;
    }
    uint64_t now = clock_mono_ns();
    uint64_t up_ns = s->t_upstream_ns ? ns_between(s->t_upstream_ns, s->t_head_ns ? s->t_head_ns : now)
                                      : 0;
    char line[4096]; /* the worst case (every field at its cap, escaped) is about 3.7 KB */
    struct log_buf b = {line, 0, sizeof line, 0};
    LOG_PUT_LIT(&b, "{\"type\":\"access\",\"time\":\"");
    log_put_str(&b, s->w->now_str);
    LOG_PUT_LIT(&b, "\",\"timestamp\":\"");
    log_put_str(&b, s->w->now_str);
    LOG_PUT_LIT(&b, "\",\"service\":\"" LOG_SERVICE "\",\"level\":\"");
    log_put_str(&b, log_status_level(s->status));
    LOG_PUT_LIT(&b, "\",\"cluster\":\"");
    log_put_str(&b, cfg ? cfg->cluster : "");
    LOG_PUT_LIT(&b, "\",\"region\":\"");
    log_put_str(&b, cfg ? cfg->region : "");
    LOG_PUT_LIT(&b, "\",\"worker\":");
    log_put_u64(&b, s->w->id);
    LOG_PUT_LIT(&b, ",\"client\":\"");
    log_put_str(&b, s->client_str);
    LOG_PUT_LIT(&b, "\",\"peer\":\"");
    log_put_str(&b, s->peer_str);
    LOG_PUT_LIT(&b, "\",\"method\":\"");
    log_put_esc(&b, s->log_method, strlen(s->log_method), 63);
    LOG_PUT_LIT(&b, "\",\"host\":\"");
    log_put_esc(&b, s->log_host, strlen(s->log_host), STREAM_HOST_MAX * 2 - 1);
    LOG_PUT_LIT(&b, "\",\"path\":\"");
    log_put_esc(&b, s->log_path, strlen(s->log_path), STREAM_LOG_PATH_MAX * 2 - 1);
    LOG_PUT_LIT(&b, "\",\"route\":\"");
    log_put_str(&b, route);
    LOG_PUT_LIT(&b, "\",\"pool\":\"");
    log_put_str(&b, pool);
    LOG_PUT_LIT(&b, "\",\"endpoint\":\"");
    log_put_str(&b, endpoint);
    LOG_PUT_LIT(&b, "\",\"reason\":\"");
    log_put_str(&b, reason_name(s->reason));
    LOG_PUT_LIT(&b, "\",\"status\":");
    if (s->status < 0) { /* not answered (never negative in practice; kept exact) */
        LOG_PUT_LIT(&b, "-");
        log_put_u64(&b, (uint64_t)-(int64_t)s->status);
    } else {
        log_put_u64(&b, (uint64_t)s->status);
    }
    LOG_PUT_LIT(&b, ",\"bytes_in\":");
    log_put_u64(&b, s->bytes_in);
    LOG_PUT_LIT(&b, ",\"bytes_out\":");
    log_put_u64(&b, s->bytes_out);
    LOG_PUT_LIT(&b, ",\"upstream_ms\":");
    log_put_ms3(&b, up_ns);
    LOG_PUT_LIT(&b, ",\"total_ms\":");
    log_put_ms3(&b, ns_between(s->t_start_ns, now));
    LOG_PUT_LIT(&b, ",\"tries\":");
    log_put_u64(&b, s->attempts);
    if (s->aborted)
        LOG_PUT_LIT(&b, ",\"aborted\":true,\"request_id\":\"");
    else
        LOG_PUT_LIT(&b, ",\"aborted\":false,\"request_id\":\"");
    log_put_esc(&b, s->request_id, strlen(s->request_id), 279);
    LOG_PUT_LIT(&b, "\",\"trace_id\":\"");
    log_put_str(&b, s->trace_id);
    LOG_PUT_LIT(&b, "\",\"generation\":");
    log_put_u64(&b, s->pin ? s->pin->snap->generation : 0);
    if (s->tls) { /* TLS connections only: plain lines keep their shape */
        LOG_PUT_LIT(&b, ",\"client_cert\":\"");
        log_put_esc(&b, s->client_cert, strlen(s->client_cert), sizeof s->client_cert * 2 + 29);
        LOG_PUT_LIT(&b, "\"");
    }
    /* the optional fields at the end of the line */
    if (s->error) { /* a response cutover made: its X-Cutover-Error code */
        LOG_PUT_LIT(&b, ",\"error\":\"");
        log_put(&b, s->error, strnlen(s->error, 40));
        LOG_PUT_LIT(&b, "\"");
    }
    if (s->pin && s->route >= 0 && s->first_pool >= 0 && s->pool != s->first_pool) {
        const char *from = s->pin->snap->routes[s->route].pools[s->first_pool].cfg->name;
        LOG_PUT_LIT(&b, ",\"failover_from\":\"");
        log_put(&b, from, strnlen(from, 40));
        LOG_PUT_LIT(&b, "\"");
    }
    if (s->pin && s->pin->snap->geo) { /* the client's country, "" when the database has none */
        if (!s->country_done)
            geoip_country(s->pin->snap->geo, s->client_str, s->country);
        LOG_PUT_LIT(&b, ",\"country\":\"");
        log_put_str(&b, s->country);
        LOG_PUT_LIT(&b, "\"");
    }
    if (s->in_cohort)
        LOG_PUT_LIT(&b, ",\"cohort\":true");
    LOG_PUT_LIT(&b, "}");
    if (!b.over)
        worker_log(s->w, line, b.n);
}

/* This worker is the only writer of its slot: a plain load and store, no read-modify-write. */
static void bump(_Atomic uint64_t *c, uint64_t by)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

/* Passive health: one upstream outcome for snapshot endpoint ep_index (control/health_state.c
 * reads the slots for outlier ejection). */
static void note_health(struct stream *s, int ep_index, int failed)
{
    if (!s->pin || ep_index < 0)
        return;
    const struct snap_endpoint *se = &s->pin->snap->endpoints[ep_index];
    if (!se->health)
        return;
    struct snap_health_slot *h = &se->health[s->w->id];
    if (failed) {
        bump(&h->failures, 1);
        bump(&h->consec_failures, 1);
    } else {
        bump(&h->successes, 1);
        atomic_store_explicit(&h->consec_failures, 0, memory_order_relaxed);
    }
}

static void count(struct stream *s)
{
    const struct snap_pool *sp = &s->pin->snap->routes[s->route].pools[s->pool];
    if (!sp->counters)
        return;
    static const unsigned bounds[SNAP_LAT_BUCKETS] = SNAP_LAT_BOUNDS_MS;
    struct snap_counter_slot *slot = &sp->counters[s->w->id];
    bump(&slot->requests, 1);
    int cls = s->status / 100;
    bump(cls == 2   ? &slot->responses_2xx
         : cls == 3 ? &slot->responses_3xx
         : cls == 4 ? &slot->responses_4xx
         : cls == 5 ? &slot->responses_5xx
                    : &slot->responses_other,
         1);
    if (s->error && s->status >= 502 && s->status <= 504 && s->attempts)
        bump(&slot->upstream_errors, 1);
    /* The endpoint that answered: a 5xx of its own is a failure, anything else a success (an
     * upstream failure was already noted when it happened). */
    if (s->ep_index >= 0 && s->health_noted != s->ep_index && s->resp_head_sent)
        note_health(s, s->ep_index, s->status >= 500);
    uint64_t us = (clock_mono_ns() - s->t_start_ns) / 1000;
    unsigned b = 0;
    while (b < SNAP_LAT_BUCKETS && us > (uint64_t)bounds[b] * 1000)
        b++;
    bump(&slot->lat[b], 1);
    bump(&slot->lat_sum_us, us);
}

void stream_free(struct stream *s)
{
    if (s->up)
        s->up->ops->detach(s->up);
    release_ep(s);
    if (s->pin && s->route >= 0 && s->pool >= 0)
        count(s);
    write_access_log(s);
    if (s->pin)
        worker_unpin(s->w, s->pin);
    free(s->fwd.fields ? (void *)s->fwd.fields : (void *)s->head);
    evbuffer_free(s->req_body);
    free(s);
}

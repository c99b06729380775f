/* worker.c - a worker thread: its event loop, listeners, inbox and per-snapshot state. */
#include "proxy/relay/worker.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "proxy/route/balance.h"
#include "core/cut.h"
#include "proxy/relay/h1.h"
#include "proxy/relay/h2.h"
#include "proxy/log/log.h"

#define WORKER_LOG_FLUSH_MS 50
#define WORKER_LOG_FLUSH_BYTES 65536

/* ---- per-snapshot state ----------------------------------------------------------------- */

static void wsnap_free(struct worker *w, struct wsnap *ws, unsigned neps)
{
    if (!ws)
        return;
    if (ws->eps) {
        for (unsigned i = 0; i < neps; i++)
            if (ws->eps[i])
                upstream_ep_put(&w->ups, ws->eps[i]);
        free(ws->eps);
    }
    free(ws->swrr);
    free(ws->cohort_swrr);
    free(ws->rr);
    free(ws);
}

static struct wsnap *wsnap_new(struct worker *w, const struct snapshot *s)
{
    struct wsnap *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->swrr = calloc(s->nroutes ? s->nroutes : 1, sizeof *ws->swrr);
    ws->cohort_swrr = calloc(s->nroutes ? s->nroutes : 1, sizeof *ws->cohort_swrr);
    ws->rr = calloc((s->nroutes ? s->nroutes : 1) * CFG_MAX_POOLS, sizeof *ws->rr);
    ws->eps = calloc(s->nendpoints ? s->nendpoints : 1, sizeof *ws->eps);
    if (!ws->swrr || !ws->cohort_swrr || !ws->rr || !ws->eps) {
        wsnap_free(w, ws, 0);
        return NULL;
    }
    for (unsigned r = 0; r < s->nroutes; r++) {
        balance_swrr_init(&ws->swrr[r]);
        balance_swrr_init(&ws->cohort_swrr[r]);
    }
    /* Every snapshot endpoint belongs to exactly one pool (pools point into s->endpoints). */
    for (unsigned r = 0; r < s->nroutes; r++) {
        for (unsigned p = 0; p < s->routes[r].npools; p++) {
            const struct snap_pool *sp = &s->routes[r].pools[p];
            for (unsigned k = 0; k < sp->neps; k++) {
                unsigned i = sp->eps[k].index;
                ws->eps[i] = upstream_ep_get(&w->ups, &sp->eps[k], sp);
                if (!ws->eps[i]) {
                    wsnap_free(w, ws, s->nendpoints); /* NULL slots are skipped */
                    return NULL;
                }
            }
        }
    }
    return ws;
}

static void on_pin_dispose(void *ctx, struct snap_pin *pin)
{
    struct worker *w = ctx;
    wsnap_free(w, pin->data, pin->snap->nendpoints);
    pin->data = NULL;
}

/* Whether route a of one snapshot and route b of another are the same route with the same
 * pools in the same order (so their balancing state means the same thing). */
static int same_route(const struct snap_route *a, const struct snap_route *b)
{
    if (a->npools != b->npools || strcmp(a->cfg->name, b->cfg->name) != 0)
        return 0;
    for (unsigned p = 0; p < a->npools; p++)
        if (strcmp(a->pools[p].cfg->name, b->pools[p].cfg->name) != 0)
            return 0;
    return 1;
}

/* Carries the round-robin state of every route that is still there from the snapshot in use
 * (old, its state ows) to the new one: a publication (a change of any route, a reload, a
 * health or DNS change) must not restart the split of the routes it did not change, or with
 * frequent publications a pool with a small weight would rarely be picked at all. */
static void carry_balance(struct wsnap *ws, const struct snapshot *s, const struct snapshot *old,
                          const struct wsnap *ows)
{
    for (unsigned r = 0; r < s->nroutes; r++) {
        unsigned o = r; /* the usual case: the same routes in the same order */
        if (o >= old->nroutes || !same_route(&s->routes[r], &old->routes[o]))
            for (o = 0; o < old->nroutes && !same_route(&s->routes[r], &old->routes[o]); o++)
                ;
        if (o == old->nroutes)
            continue;
        ws->swrr[r] = ows->swrr[o];
        ws->cohort_swrr[r] = ows->cohort_swrr[o];
        memcpy(&ws->rr[r * CFG_MAX_POOLS], &ows->rr[o * CFG_MAX_POOLS],
               CFG_MAX_POOLS * sizeof *ws->rr);
    }
}

static void adopt(struct worker *w, struct snapshot *s)
{
    struct wsnap *ws = wsnap_new(w, s);
    const struct snap_pin *cur = w->pins.current;
    if (ws && cur && cur->data)
        carry_balance(ws, s, cur->snap, cur->data);
    if (!ws) {
        /* Keep serving on the current snapshot; the next publish tries again. */
        fprintf(stderr, "cutover: worker %u: out of memory adopting generation %llu\n", w->id,
                (unsigned long long)s->generation);
        snapshot_unref(s);
        return;
    }
    snapshot_pins_adopt(&w->pins, s, ws);
}

struct snap_pin *worker_pin(struct worker *w)
{
    /* A change acknowledged by the control thread was published before the acknowledgement;
     * adopting it here, not only from the wake-up event, makes "the next request on every
     * worker" exact even when the request and the wake-up arrive in the same loop turn. One
     * read-only atomic load per request; nothing shared is written. */
    if (atomic_load_explicit(&w->inbox, memory_order_acquire)) {
        struct snapshot *s = atomic_exchange(&w->inbox, NULL);
        if (s)
            adopt(w, s);
    }
    return snapshot_pin_get(&w->pins);
}

void worker_unpin(struct worker *w, struct snap_pin *pin)
{
    snapshot_pin_put(&w->pins, pin);
}

/* ---- helpers ------------------------------------------------------------------------------ */

const struct timeval *worker_tv(struct worker *w, unsigned ms)
{
    /* A small cache of common-timeout queues: O(1) timer insertion for the usual durations. */
    const unsigned slots = WORKER_TV_SLOTS;
    struct worker_tvc *cache = w->tv_cache;
    for (unsigned i = 0; i < slots; i++) {
        if (cache[i].tv && cache[i].ms == ms)
            return cache[i].tv;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    for (unsigned i = 0; i < slots; i++) {
        if (!cache[i].tv) {
            cache[i].tv = event_base_init_common_timeout(w->base, &tv);
            if (!cache[i].tv)
                break;
            cache[i].ms = ms;
            return cache[i].tv;
        }
    }
    /* Cache full (many reloads with new timeouts): a plain timeval kept per worker. */
    w->tv_spare[w->tv_spare_next & 3] = tv;
    return &w->tv_spare[w->tv_spare_next++ & 3];
}

void worker_log(struct worker *w, const char *line, size_t len)
{
    evbuffer_add(w->logbuf, line, len);
    evbuffer_add(w->logbuf, "\n", 1);
    if (evbuffer_get_length(w->logbuf) >= WORKER_LOG_FLUSH_BYTES)
        log_submit(w->logger, w->logbuf);
}

static uint64_t rng_next(struct worker *w)
{
    uint64_t s1 = w->rng[0];
    const uint64_t s0 = w->rng[1];
    w->rng[0] = s0;
    s1 ^= s1 << 23;
    w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return w->rng[1] + s0;
}

uint64_t worker_rand(struct worker *w)
{
    return rng_next(w);
}

void worker_request_id(struct worker *w, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = rng_next(w), b = rng_next(w);
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(a >> (i * 4)) & 15];
        out[16 + i] = hex[(b >> (i * 4)) & 15];
    }
    out[32] = '\0';
}

void worker_conn_added(struct worker *w, struct h1c *c)
{
    h1c_link(c, &w->conns);
    w->nconns++;
    atomic_store_explicit(&w->open_conns, w->nconns, memory_order_relaxed);
}

static void maybe_exit(struct worker *w)
{
    if (w->stopping && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

static void conn_gone(struct worker *w);

void worker_conn_removed(struct worker *w, struct h1c *c)
{
    h1c_unlink(c, &w->conns);
    conn_gone(w);
}

void worker_h2c_added(struct worker *w, struct h2c *c)
{
    h2c_link(c, &w->h2conns);
    w->nconns++;
    atomic_store_explicit(&w->open_conns, w->nconns, memory_order_relaxed);
}

void worker_h2c_removed(struct worker *w, struct h2c *c)
{
    h2c_unlink(c, &w->h2conns);
    conn_gone(w);
}

static void conn_gone(struct worker *w)
{
    w->nconns--;
    atomic_store_explicit(&w->open_conns, w->nconns, memory_order_relaxed);
    if (w->listeners_paused && w->nlisteners && !w->stopping) {
        const struct cfg *cfg = w->pins.current ? w->pins.current->snap->cfg : NULL;
        if (!cfg || w->nconns < cfg->limits.max_connections) {
            for (unsigned i = 0; i < w->nlisteners; i++)
                evconnlistener_enable(w->listeners[i]);
            w->listeners_paused = 0;
        }
    }
    maybe_exit(w);
}

/* ---- callbacks ---------------------------------------------------------------------------- */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct worker *w = arg;
    w->stats.conns_accepted++;
    /* TLS listeners: new handshakes use the current snapshot's contexts (listener i of the
     * configuration is w->listeners[i]). */
    struct snap_pin *cur = worker_pin(w);
    struct tls_ctx *tls = NULL;
    for (unsigned i = 0; cur && i < w->nlisteners && i < CFG_MAX_LISTENERS; i++)
        if (w->listeners[i] == l)
            tls = cur->snap->tls[i];
    if (cur) {
        h1c_accept(w, fd, sa, (socklen_t)len, tls, cur->snap->cfg);
        worker_unpin(w, cur);
    } else {
        close(fd); /* no configuration published yet: nothing could serve it */
    }
    const struct cfg *cfg = w->pins.current ? w->pins.current->snap->cfg : NULL;
    if (cfg && w->nconns >= cfg->limits.max_connections && !w->listeners_paused) {
        for (unsigned i = 0; i < w->nlisteners; i++)
            evconnlistener_disable(w->listeners[i]);
        w->listeners_paused = 1;
    }
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct worker *w = arg;
    (void)l;
    /* EMFILE and friends: keep running; the connection stays in the kernel queue. */
    fprintf(stderr, "cutover: worker %u: accept: %s\n", w->id, strerror(errno));
}

static void close_listeners(struct worker *w)
{
    for (unsigned i = 0; i < w->nlisteners; i++)
        evconnlistener_free(w->listeners[i]);
    w->nlisteners = 0;
}

static void begin_stop(struct worker *w)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    close_listeners(w);
    upstream_close_idle(&w->ups);
    struct h1c *c = w->conns;
    while (c) {
        struct h1c *next = h1c_next(c);
        h1c_shutdown(c);
        c = next;
    }
    for (struct h2c *c2 = w->h2conns, *n2; c2; c2 = n2) {
        n2 = h2c_next(c2);
        h2c_shutdown(c2);
    }
    maybe_exit(w);
}

static void force_stop(struct worker *w)
{
    begin_stop(w);
    struct h1c *c = w->conns;
    while (c) {
        struct h1c *next = h1c_next(c);
        h1c_kill(c);
        c = next;
    }
    for (struct h2c *c2 = w->h2conns, *n2; c2; c2 = n2) {
        n2 = h2c_next(c2);
        h2c_kill(c2);
    }
    event_base_loopexit(w->base, NULL);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)what;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        fprintf(stderr, "cutover: worker %u: wake: %s\n", w->id, strerror(errno));
    struct snapshot *s = atomic_exchange(&w->inbox, NULL);
    if (s)
        adopt(w, s);
    int cmd = atomic_load(&w->cmd);
    if (cmd == WORKER_FORCE_STOP)
        force_stop(w);
    else if (cmd == WORKER_STOP_ACCEPTING)
        begin_stop(w);
    io_loop_flush(&w->iol);
}

static void on_log_timer(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    log_submit(w->logger, w->logbuf);
    log_time_rfc3339(w->now_str, sizeof w->now_str);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

struct worker *worker_new(unsigned id, struct logger *logger, int *fds, unsigned nfds)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->id = id;
    w->logger = logger;
    w->wake_fd = -1;
    atomic_init(&w->inbox, NULL);
    atomic_init(&w->cmd, WORKER_RUN);
    w->scratch_cap = 1u << 20;
    w->scratch = malloc(w->scratch_cap);
    /* The base is touched by this worker's thread only (the control thread wakes it through an
     * eventfd), so libevent's internal locking is switched off: no mutex per event operation. */
    struct event_config *ec = event_config_new();
    if (ec) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
        w->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->logbuf = evbuffer_new();
    w->listeners = calloc(nfds ? nfds : 1, sizeof *w->listeners);
    if (!w->scratch || !w->base || w->wake_fd < 0 || !w->logbuf || !w->listeners ||
        upstream_table_init(&w->ups, w) < 0) {
        worker_free(w);
        return NULL;
    }
    snapshot_pins_init(&w->pins, on_pin_dispose, w);
    io_loop_init(&w->iol, w->base);
    w->wake = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
    w->log_timer = event_new(w->base, -1, EV_PERSIST, on_log_timer, w);
    if (!w->wake || !w->log_timer) {
        worker_free(w);
        return NULL;
    }
    struct timeval tv = {0, WORKER_LOG_FLUSH_MS * 1000};
    event_add(w->log_timer, &tv);
    event_add(w->wake, NULL);
    for (unsigned i = 0; i < nfds; i++) {
        /* backlog 0: the socket listens already (proxy/main.c, 4096); -1 would make libevent
         * call listen(fd, 128) again and cut the accept queue to 128 */
        w->listeners[i] = evconnlistener_new(w->base, on_accept, w,
                                             LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
                                             fds[i]);
        if (!w->listeners[i]) {
            for (unsigned j = i; j < nfds; j++)
                close(fds[j]);
            worker_free(w);
            return NULL;
        }
        evconnlistener_set_error_cb(w->listeners[i], on_accept_error);
        w->nlisteners++;
    }
    uint64_t seed[2] = {0, 0};
    if (getrandom(seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed[0] = (uint64_t)(uintptr_t)w ^ (uint64_t)id;
    w->rng[0] = seed[0] | 1;
    w->rng[1] = seed[1] ^ 0x9e3779b97f4a7c15ull;
    log_time_rfc3339(w->now_str, sizeof w->now_str);
    return w;
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    if (w->base) {
        close_listeners(w);
        struct h1c *c;
        while ((c = w->conns) != NULL)
            h1c_kill_now(c);
        while (w->h2conns)
            h2c_kill_now(w->h2conns);
        snapshot_pins_dispose(&w->pins);
        struct snapshot *s = atomic_exchange(&w->inbox, NULL);
        snapshot_unref(s);
        if (w->ups.buckets)
            upstream_table_dispose(&w->ups);
        if (w->wake)
            event_free(w->wake);
        if (w->log_timer)
            event_free(w->log_timer);
    }
    if (w->wake_fd >= 0) {
        close(w->wake_fd);
        w->wake_fd = -1;
    }
    if (w->logbuf) {
        if (w->logger)
            log_submit(w->logger, w->logbuf);
        evbuffer_free(w->logbuf);
    }
    io_loop_dispose(&w->iol); /* the spare buffers and events the connections gave back */
    if (w->base)
        event_base_free(w->base);
    free(w->listeners);
    free(w->scratch);
    free(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    log_submit(w->logger, w->logbuf);
    atomic_store(&w->exited, 1);
    return NULL;
}

int worker_start(struct worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : CUT_EIO;
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

/* Wakes the worker's loop from another thread. */
static void wake(struct worker *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is already non-zero, the worker is awake anyway */
}

void worker_publish(struct worker *w, struct snapshot *s)
{
    struct snapshot *old = atomic_exchange(&w->inbox, s);
    if (old)
        snapshot_unref(old); /* never adopted: superseded */
    wake(w);
}

void worker_command(struct worker *w, int cmd)
{
    int cur = atomic_load(&w->cmd);
    while (cmd > cur && !atomic_compare_exchange_weak(&w->cmd, &cur, cmd))
        ;
    wake(w);
}

/* worker.h - one thread, one event base: listeners, client connections, upstream pools, the
 * current snapshot pin and the inbox through which the control thread reaches it.
 *
 * Everything in a struct worker is touched only by its own thread, except the inbox fields
 * (atomics) which the control thread writes through worker_publish() and worker_command().
 */
#ifndef CUT_WORKER_H
#define CUT_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/time.h>

#include "proxy/net/io.h"
#include "proxy/route/snapshot.h"
#include "proxy/relay/upstream.h"

struct event_base;
struct event;
struct evbuffer;
struct evconnlistener;
struct logger;
struct siem;
struct h1c;
struct h2c;
struct stream;

enum worker_cmd {
    WORKER_RUN = 0,
    WORKER_STOP_ACCEPTING = 1, /* close listeners; finish in-flight; close idle; exit when empty */
    WORKER_FORCE_STOP = 2      /* drain deadline passed: close everything now */
};

/* Per-worker state derived from one snapshot (pin->data). */
struct wsnap {
    struct balance_swrr *swrr;  /* one per route */
    struct balance_swrr *cohort_swrr; /* one per route: its cohort's round robin */
    struct upstream_ep **eps;   /* one per snapshot endpoint */
    unsigned *rr;               /* one cursor per route and pool: [route * CFG_MAX_POOLS + pool] */
};

/* A cached common-timeout queue for one duration. */
struct worker_tvc {
    unsigned ms;
    const struct timeval *tv;
};

#define WORKER_TV_SLOTS 16

struct worker_stats {
    uint64_t requests, responses_5xx, upstream_errors, conns_accepted;
};

struct worker {
    unsigned id;
    struct event_base *base;
    struct logger *logger;
    struct siem *siem; /* security events to the SIEM; set before the thread starts */
    pthread_t thread;

    /* inbox: written by the control thread */
    _Atomic(struct snapshot *) inbox;
    atomic_int cmd;
    atomic_int exited; /* set by the thread as it leaves its loop */
    struct event *wake;
    int wake_fd; /* eventfd the control thread writes to */

    struct snap_pins pins;
    struct upstream_table ups;
    struct io_loop iol;

    struct evconnlistener **listeners;
    unsigned nlisteners;
    int listen_fds_n;
    int *listen_fds; /* bound before the thread starts, so start-up errors are reported early */

    struct h1c *conns; /* every client connection (for shutdown) */
    struct h2c *h2conns; /* HTTP/2 client connections (also counted in nconns) */
    unsigned nconns;
    _Atomic unsigned open_conns; /* nconns, published for the metrics (control thread reads) */
    /* Counters for the metrics: written only by this worker (a plain relaxed store of the
     * incremented value, worker_count), read by the control thread. */
    _Atomic uint64_t body_timeouts; /* requests answered 408: the body was too slow */
    _Atomic uint64_t retries;       /* upstream tries after the first (route_retry_decide) */
    _Atomic uint64_t failovers;     /* requests moved to another pool by the fail-safe */
    _Atomic uint64_t queued;        /* requests that waited for an upstream connection */
    _Atomic uint64_t queue_full;    /* answered 503: the endpoint's queue was full */
    _Atomic uint64_t queue_timeouts; /* answered 503: waited timeouts.upstream_queue_ms */
    _Atomic uint64_t queued_now;    /* requests waiting now (upstream_table.nqueued) */
    int stopping;
    int listeners_paused; /* max_connections reached */
    _Atomic int draining; /* SIGTERM seen (set by the control thread): the probe path says 503 */

    struct worker_tvc tv_cache[WORKER_TV_SLOTS];
    struct timeval tv_spare[4];
    unsigned tv_spare_next;

    struct evbuffer *logbuf;
    struct event *log_timer;
    char *scratch;     /* head serialisation buffer */
    size_t scratch_cap;
    uint64_t rng[2];   /* xorshift128+ for request ids */
    char now_str[32];  /* cached RFC 3339 time of the current loop turn */

    struct worker_stats stats;
};

/* One more on a counter of w (body_timeouts, retries, failovers). Worker thread. */
static inline void worker_count(_Atomic uint64_t *counter)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Creates a worker (not started). fds are the listening sockets it owns (taken). Main thread. */
struct worker *worker_new(unsigned id, struct logger *logger, int *fds, unsigned nfds);
void worker_free(struct worker *w);

/* Starts the worker's thread. Returns 0 or CUT_EIO. */
int worker_start(struct worker *w);
void worker_join(struct worker *w);

/* Hands a new snapshot to the worker (takes one reference). Control thread. */
void worker_publish(struct worker *w, struct snapshot *s);

/* Sends a command (enum worker_cmd); commands only escalate. Control thread. */
void worker_command(struct worker *w, int cmd);

/* The current snapshot pin for a new request (NULL only before the first publish). Worker. */
struct snap_pin *worker_pin(struct worker *w);
void worker_unpin(struct worker *w, struct snap_pin *pin);

/* A libevent timeval for ms milliseconds, using the base's common-timeout queues. Worker. */
const struct timeval *worker_tv(struct worker *w, unsigned ms);

/* A pseudo-random number (xorshift128+, seeded from getrandom). Worker. */
uint64_t worker_rand(struct worker *w);

/* Appends a finished access-log line (without newline) to the worker's batch. Worker. */
void worker_log(struct worker *w, const char *line, size_t len);

/* Writes a fresh 32-hex-digit request id into out (cap >= 33). Worker. */
void worker_request_id(struct worker *w, char *out);

/* Client connection bookkeeping, called by the connection codec. Worker. */
void worker_conn_added(struct worker *w, struct h1c *c);
void worker_conn_removed(struct worker *w, struct h1c *c);
void worker_h2c_added(struct worker *w, struct h2c *c);
void worker_h2c_removed(struct worker *w, struct h2c *c);

#endif

/* metrics.h - the metrics and health listener (configuration "metrics"): plain HTTP on the
 * control thread's event base, read-only.
 *
 *   GET /metrics   Prometheus text format 0.0.4 (Azure Monitor managed Prometheus, DataDog's
 *                  OpenMetrics check): per route and pool requests by status class, upstream
 *                  errors, a request duration histogram, weights; generation, readiness, open
 *                  client connections, control operations by op and result, certificate expiry.
 *   GET /healthz   200 "ok" while the process runs (the control thread answers).
 *   GET /readyz    200 "ready" once a snapshot is published; 503 "draining" from SIGTERM on,
 *                  so the readiness probe fails before the listeners close.
 * Labels come from the configuration only (route, pool, listener names; op names from the fixed
 * command table), so their cardinality is bounded.
 * Control thread only.
 */
#ifndef CUT_METRICS_H
#define CUT_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct admin;
struct certs_set;
struct cfg;
struct cfg_metrics;
struct counters;
struct ctlsock;
struct event_base;
struct evbuffer;
struct hstate;
struct metrics;
struct siem;
struct snapshot;
struct state;
struct worker;

/* What the metrics read, all borrowed for one request: the configuration, runtime state,
 * generation and snapshot in use, and the modules whose counts are shown (NULL where there is
 * none: sock, admin, snap). */
struct fleet;
struct metrics_source {
    const struct cfg *cfg;
    const struct state *rt;
    uint64_t generation;
    const struct snapshot *snap;
    int stopping;
    time_t started;
    struct worker *const *workers;
    unsigned nworkers;
    const struct counters *counters;
    const struct ctlsock *sock;
    const struct admin *admin;
    struct siem *siem;
    const struct hstate *hs;
    const struct certs_set *tls;
    const struct fleet *fleet; /* NULL without a fleet store */
};

/* Fills *out for one request (the owner's current state). */
typedef void (*metrics_source_fn)(void *ctx, struct metrics_source *out);

/* Listens on base at mc->address (the caller makes one only when an address is configured);
 * every request asks source for what to show. Returns NULL with a reason in err when the address
 * cannot be listened on or memory runs out. Free with metrics_free (NULL is fine). */
struct metrics *metrics_new(struct event_base *base, const struct cfg_metrics *mc,
                            metrics_source_fn source, void *ctx, char *err, size_t cap);
void metrics_free(struct metrics *m);

/* The /metrics document of src into out. Returns 0 or CUT_ENOMEM. */
int metrics_render(const struct metrics_source *src, struct evbuffer *out);

#endif

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

struct ctl;
struct evbuffer;
struct metrics;

/* Listens on the configured metrics address (NULL and 0 when none is configured). Returns 0,
 * or CUT_EIO / CUT_ENOMEM with a reason in err. */
int metrics_new(struct ctl *c, struct metrics **out, char *err, size_t cap);
void metrics_free(struct metrics *m);

/* The /metrics document. Returns 0 or CUT_ENOMEM. */
int metrics_render(struct ctl *c, struct evbuffer *out);

#endif

/* health_state.h - the health of every endpoint, owned by the control thread.
 *
 * One entry per (route, pool, endpoint address), kept across snapshots like the counters. It
 * combines the active checks' verdict (hstate_set_active) with passive outlier ejection: the
 * workers count upstream failures per endpoint in single-writer slots (struct
 * snap_health_slot); every tick the control thread looks at the consecutive failures each
 * worker saw since the endpoint last came back, ejects an endpoint at the route's threshold for
 * base_ejection_ms doubling per ejection (at most max_ejection_ms; at most
 * max_ejection_percent of a pool at once, unless every other endpoint of the pool is failing
 * too), and brings it back when the time is up, ramping its
 * share over the pool's slow_start_ms.
 *
 * The decisions are pure modules: control/eject.h (ejection, backoff, the cap),
 * control/slowstart.h (the ramp) and control/failsafe.h (a pool's share when it cannot serve);
 * this file keeps the state and applies them.
 *
 * Before each publication hstate_apply() lays this over the snapshot: unhealthy endpoints take
 * no new requests, a ramping one takes its share of the picks, and a pool with weight but no
 * serving endpoint gives its share to the route's other pools (fail-safe; event pool_failsafe).
 * When no pool of a route can serve, the weights stay and requests get 503 no_endpoint.
 * Control thread only.
 */
#ifndef CUT_HEALTH_STATE_H
#define CUT_HEALTH_STATE_H

#include <stdint.h>

struct cfg;
struct snapshot;
struct hstate;

/* An event line for the log (endpoint_health, pool_failsafe, pool_failsafe_ended; extra: JSON
 * members each preceded by a comma). */
typedef void (*hstate_event_fn)(void *ctx, const char *name, const char *extra);

/* nworkers: failure slots per endpoint. NULL when out of memory. */
struct hstate *hstate_new(unsigned nworkers, hstate_event_fn event, void *ctx);
void hstate_free(struct hstate *h);

/* Lays health over s (being built: snapshot_health_fn) at now_ms. */
void hstate_apply(struct hstate *h, struct snapshot *s, uint64_t now_ms);

/* The active check's verdict for an endpoint. Returns 1 when its serving state changed. */
int hstate_set_active(struct hstate *h, const char *route, const char *pool, const char *key,
                      int up, uint64_t now_ms);

/* Ejections, returns and slow-start steps due at now_ms. Returns 1 when the serving state
 * changed (the caller publishes). */
int hstate_tick(struct hstate *h, const struct cfg *cfg, uint64_t now_ms);

/* eject_allowed() (control/eject.h) under its former name: whether one more endpoint of a pool
 * of n, ejected of them ejected already, may be ejected (others_serving: neither ejected, down
 * nor failing). Pure. */
int hstate_eject_allowed(unsigned n, unsigned ejected, unsigned others_serving,
                         unsigned max_percent);

/* Counts for the metrics: endpoints ejected right now, ejections so far, pools in fail-safe. */
void hstate_totals(const struct hstate *h, unsigned *ejected_now, uint64_t *ejections,
                   unsigned *failsafe_pools, uint64_t *failsafe_events);

/* Whether route's pool has at least one endpoint serving (not drained, down or ejected) in the
 * last applied snapshot; -1 when unknown. */
int hstate_pool_serving(const struct hstate *h, const char *route, const char *pool);

#endif

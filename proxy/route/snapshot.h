/* snapshot.h - immutable, refcounted routing state, and the worker-local pins that requests hold.
 *
 * The control thread builds a snapshot (routes, pools, resolved endpoints, weights) and publishes
 * it; workers adopt it on their next loop turn. A snapshot is never modified after
 * snapshot_new() returns, so any thread may read it. Its count is atomic and changes only when a
 * worker adopts or drops it, never per request: requests pin the worker's snap_pin with a plain
 * (worker-local) counter. In-flight requests finish on the snapshot they started with.
 */
#ifndef CUT_SNAPSHOT_H
#define CUT_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/cfg.h"
#include "proxy/route/route.h"

struct tls_ctx;
struct geoip;
struct tls_client;

/* A configuration shared by every snapshot built from it (weight changes reuse it). */
struct cfg_hold {
    atomic_uint refs;
    struct cfg *cfg;
};

/* Takes cfg (freed with the last reference). Returns NULL on allocation failure (cfg is then
 * freed too). */
struct cfg_hold *snapshot_cfg_hold(struct cfg *cfg);
void snapshot_cfg_ref(struct cfg_hold *h);
void snapshot_cfg_unref(struct cfg_hold *h);

#define SNAP_KEY_MAX 64

/* Passive health of one endpoint as one worker sees it (single writer: that worker). */
struct snap_health_slot {
    _Atomic uint64_t consec_failures; /* upstream failures in a row (reset by a success) */
    _Atomic uint64_t failures, successes;
    char pad[64 - 3 * sizeof(uint64_t)];
};

struct snap_endpoint {
    char key[SNAP_KEY_MAX]; /* numeric "ip:port" / "[v6]:port": the identity of upstream pools */
    char name[SNAP_KEY_MAX]; /* as configured or added ("blue.svc:80"), for logs and control */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned index;  /* position in snapshot->endpoints */
    uint8_t drained; /* no new requests */
    /* Set by the control thread before publication (control/health_state.c): */
    uint8_t unhealthy;             /* failed active checks, or ejected: no new requests */
    uint16_t ramp_permille;        /* slow start: share of picks it accepts (1000: all) */
    struct snap_health_slot *health; /* [nworkers]; NULL when not tracked */
};

/* Per-pool counters, one padded slot per worker so that workers never share a cache line. A
 * worker is the only writer of its slot (plain load + store, relaxed); the control thread sums
 * the slots. They live in the control thread's registry, outside any snapshot, so the counts
 * survive weight changes and reloads. */
#define SNAP_LAT_BUCKETS 12 /* request duration histogram: upper bounds in SNAP_LAT_BOUNDS_MS */
#define SNAP_LAT_BOUNDS_MS {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}

struct snap_counter_slot {
    _Atomic uint64_t requests;
    _Atomic uint64_t responses_5xx;
    _Atomic uint64_t responses_2xx, responses_3xx, responses_4xx, responses_other;
    _Atomic uint64_t upstream_errors;  /* answers cutover made because the upstream failed */
    _Atomic uint64_t lat[SNAP_LAT_BUCKETS + 1]; /* per bucket (not cumulative); last: +Inf */
    _Atomic uint64_t lat_sum_us;
    char pad[64 - ((8 + SNAP_LAT_BUCKETS + 1) * sizeof(uint64_t)) % 64];
};

struct snap_pool {
    const struct cfg_pool *cfg;
    struct snap_endpoint *eps; /* points into snapshot->endpoints */
    unsigned neps;
    struct snap_counter_slot *counters; /* [nworkers]; NULL when not counted */
    /* TLS towards the pool's endpoints (cfg->tls), one counted reference, set by the control
     * thread like the listeners' contexts; NULL for cleartext pools. */
    struct tls_client *tls;
};

struct snap_route {
    const struct cfg_route *cfg;
    struct snap_pool pools[CFG_MAX_POOLS];
    unsigned npools;
    unsigned weights_bp[CFG_MAX_POOLS]; /* runtime weights, sum 10000 */
    struct route_cohort cohort;         /* the route's country cohort (ncountries 0: none) */
};

/* Runtime changes laid over the configuration when a snapshot is built (from the control
 * plane's durable state). Endpoint addresses are written as in the configuration
 * ("host:port"). All borrowed for the duration of snapshot_new. */
struct snap_overlay_pool {
    int has_weight;
    unsigned weight_bp;
    char *const *drained;
    size_t ndrained;
    char *const *added;
    size_t nadded;
    char *const *removed;
    size_t nremoved;
    struct snap_counter_slot *counters;
};

/* cohort: the route's country cohort (ncountries 0: none), its weights indexed as the
 * configuration's pools. */
struct snap_overlay_route {
    struct snap_overlay_pool pools[CFG_MAX_POOLS];
    struct route_cohort cohort;
};

struct snapshot {
    atomic_uint refs;
    uint64_t generation;
    struct cfg_hold *hold;
    const struct cfg *cfg; /* hold->cfg */
    struct snap_route *routes;
    unsigned nroutes;
    struct snap_endpoint *endpoints;
    unsigned nendpoints;
    /* TLS server contexts per listener (index as in cfg->listeners; NULL: plain), one counted
     * reference each, released with the snapshot (from snap_inputs). New handshakes use the
     * current snapshot's; an open connection keeps its own reference (proxy/net/tls.h). */
    struct tls_ctx *tls[CFG_MAX_LISTENERS];
    /* The country database of the access log (NULL: none); one counted reference, taken and
     * released like tls. */
    struct geoip *geo;
};

/* Resolves one configured endpoint into at most max addresses. Returns how many (0 when the name
 * does not resolve: the endpoint then has no address in this snapshot). Called on the control
 * thread only. */
typedef unsigned (*snapshot_resolve_fn)(void *ctx, const struct cfg_endpoint *ep,
                                        struct sockaddr_storage *out, socklen_t *outlen,
                                        unsigned max);

#define SNAP_MAX_ADDRS_PER_NAME 16

/* Fills in the endpoints' health (snap_endpoint.health, unhealthy, ramp_permille) and moves
 * the share of a pool with no serving endpoint to the others (fail-safe), before the snapshot
 * is sealed. Called once, inside snapshot_new, on the control thread. */
typedef void (*snapshot_health_fn)(void *ctx, struct snapshot *s);

/* Everything a snapshot is built from; all borrowed for the duration of snapshot_new (the
 * snapshot takes its own references to the TLS contexts and the database). */
struct snap_inputs {
    uint64_t generation;
    /* One entry per route of the configuration: runtime weights (where has_weight), drained,
     * added and removed endpoints, counters; NULL takes the configuration as it is. */
    const struct snap_overlay_route *overlay;
    snapshot_resolve_fn resolve; /* NULL: numeric addresses only */
    void *resolve_ctx;
    struct tls_ctx *const *listener_tls; /* [CFG_MAX_LISTENERS], or NULL: no TLS listener */
    struct tls_client *const *pool_tls;  /* [npool_tls], index route * CFG_MAX_POOLS + pool */
    size_t npool_tls;
    struct geoip *geo;         /* NULL: no country database */
    snapshot_health_fn health; /* NULL: every endpoint healthy, weights as given */
    void *health_ctx;
};

/* Builds a complete snapshot from hold's configuration and in, with one reference (the
 * caller's). It is sealed when it returns: nothing changes it afterwards, so any thread may
 * read it once published. Borrows hold (takes its own reference). Returns NULL on allocation
 * failure. Control thread. */
struct snapshot *snapshot_new(struct cfg_hold *hold, const struct snap_inputs *in);

/* Splits "host:port" / "[v6]:port" into ep (host and address point into buf, which must hold
 * cap bytes). Returns 0 or CUT_EINVAL. */
int snapshot_parse_endpoint(const char *text, struct cfg_endpoint *ep, char *buf, size_t cap);

/* The host part of an endpoint name "host:port" / "[v6]:port" into out (truncated to cap - 1):
 * the name TLS verifies when the pool has no server_name. Any thread. */
void snapshot_endpoint_host(const char *name, char *out, size_t cap);

/* Atomic reference counting; any thread. unref frees the snapshot with its last reference. */
void snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);
unsigned snapshot_refs(const struct snapshot *s);

/* Writes "ip:port" (or "[ip]:port") for addr into out. */
void snapshot_addr_key(const struct sockaddr *addr, char *out, size_t cap);

/* ---- worker-local pins ------------------------------------------------------------------- */

struct snap_pin {
    struct snapshot *snap; /* one counted reference, owned by the pin */
    unsigned users;        /* requests holding this pin; worker-local, not atomic */
    void *data;            /* the worker's derived state for this snapshot */
    struct snap_pin *next;
};

/* Called when a pin is retired (no users, no longer current) just before it is freed, so the
 * owner can free pin->data. */
typedef void (*snap_pin_dispose_fn)(void *ctx, struct snap_pin *pin);

/* One worker's pins: the current one and older ones still held by requests. Single thread. */
struct snap_pins {
    struct snap_pin *current;
    struct snap_pin *old; /* list of retired-but-held pins */
    snap_pin_dispose_fn dispose;
    void *dispose_ctx;
};

void snapshot_pins_init(struct snap_pins *p, snap_pin_dispose_fn dispose, void *ctx);

/* Makes s current, taking the caller's reference. data is the worker's derived state (owned by
 * the pin from now on). The previous current pin is freed at once if no request holds it,
 * otherwise when the last one lets go. Returns 0 or CUT_ENOMEM (then s is unreferenced). */
int snapshot_pins_adopt(struct snap_pins *p, struct snapshot *s, void *data);

/* Pins the current snapshot for one request; NULL when there is none yet. */
struct snap_pin *snapshot_pin_get(struct snap_pins *p);

/* Lets go of a pin taken with snapshot_pin_get. */
void snapshot_pin_put(struct snap_pins *p, struct snap_pin *pin);

/* Drops every pin (the worker is exiting); pins still in use are a bug. */
void snapshot_pins_dispose(struct snap_pins *p);

#endif

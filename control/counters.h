/* counters.h - what the workers count per (route, pool), kept by name across snapshots, and the
 * control requests by op and result.
 *
 * Each (route, pool) has one cache-line-aligned struct snap_counter_slot per worker; a snapshot
 * points its pools at them, so a worker adds to its own slot with relaxed atomics and never
 * shares a line. The control thread sums the slots for /metrics, status and the gates of a
 * plan (counters_sum). Entries are never removed: a route or pool that leaves the configuration
 * and comes back keeps counting from where it was (Prometheus counters must not go down).
 *
 * Control thread only (the slots themselves are written by the workers).
 */
#ifndef CUT_COUNTERS_H
#define CUT_COUNTERS_H

#include <stdint.h>

#include "proxy/route/snapshot.h"

struct counters;

/* One (route, pool) entry; read-only for everyone but counters.c. */
struct counters_entry {
    char *route, *pool;
    struct snap_counter_slot *slots; /* [nworkers] */
    struct counters_entry *next;
};

/* A (route, pool)'s counts summed over the workers. */
struct counters_sum {
    uint64_t requests;
    uint64_t cls[5]; /* responses: other, 2xx, 3xx, 4xx, 5xx */
    uint64_t upstream_errors;
    uint64_t lat[SNAP_LAT_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
    uint64_t lat_sum_us;
};

/* Control requests of one op (a static string from the command table, or "unknown"). */
struct counters_op {
    const char *op;
    uint64_t ok, refused;
};
#define COUNTERS_MAX_OPS 32

/* nworkers: slots per entry (at least 1). NULL when out of memory. */
struct counters *counters_new(unsigned nworkers);
void counters_free(struct counters *k);

/* The slots of (route, pool), made on first use (zeroed). NULL when out of memory. */
struct snap_counter_slot *counters_slots(struct counters *k, const char *route, const char *pool);

/* Sums (route, pool) over the workers into *out (zeros when it was never counted). */
void counters_sum(const struct counters *k, const char *route, const char *pool,
                  struct counters_sum *out);

/* Sums one entry (for iterating with counters_first). */
void counters_sum_entry(const struct counters *k, const struct counters_entry *e,
                        struct counters_sum *out);

/* The entries, newest first (NULL when none). */
const struct counters_entry *counters_first(const struct counters *k);

/* Counts one control request (op: a static string) with its result; ops past
 * COUNTERS_MAX_OPS are not counted. */
void counters_count_op(struct counters *k, const char *op, int ok);

/* The ops counted so far, in first-seen order; *n set to how many. */
const struct counters_op *counters_ops(const struct counters *k, unsigned *n);

#endif

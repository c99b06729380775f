/* balance.h - pure balancing decisions: smooth weighted round robin between pools, sticky
 * buckets, and endpoint choice inside a pool. No libevent, no sockets, no locks: the caller owns
 * the state (one struct balance_swrr per worker per route) and passes it in.
 *
 * Weights are basis points (0..10000). A pool whose weight is 0 is never chosen by these
 * functions. 10000 means every request.
 */
#ifndef CUT_BALANCE_H
#define CUT_BALANCE_H

#include <stddef.h>
#include <stdint.h>

#define BALANCE_MAX_POOLS 8
#define BALANCE_BUCKETS 10000u

/* Smooth weighted round robin (nginx's algorithm): each pick adds every weight to its current
 * value, picks the largest current (lowest index on ties) and subtracts the total from it.
 * Gives exact proportions over every window of sum(weights)/gcd picks, well interleaved. */
struct balance_swrr {
    int64_t current[BALANCE_MAX_POOLS];
};

void balance_swrr_init(struct balance_swrr *st);

/* Returns the chosen pool index in [0, n), or -1 when every weight is 0. n <= BALANCE_MAX_POOLS. */
int balance_swrr_next(struct balance_swrr *st, const unsigned *weights_bp, unsigned n);

/* Maps a sticky key to a bucket in [0, BALANCE_BUCKETS). Deterministic across processes,
 * replicas and restarts (no random seed), so every replica puts a client in the same bucket. */
uint32_t balance_sticky_bucket(const char *key, size_t len);

/* Partitions the buckets in pool order: pool 0 owns [0, w0), pool 1 owns [w0, w0 + w1), and so
 * on. With pools (blue, green), green owns the top w_green buckets, so as green's weight rises a
 * client only ever moves blue -> green. Returns the pool index, or -1 when every weight is 0.
 * The weights must sum to BALANCE_BUCKETS or to 0. */
int balance_sticky_pool(uint32_t bucket, const unsigned *weights_bp, unsigned n);

enum balance_mode { BALANCE_LEAST_OUTSTANDING = 0, BALANCE_ROUND_ROBIN = 1 };

/* Chooses an endpoint inside a pool. usable[i] != 0 marks endpoints that may be chosen;
 * outstanding[i] is the number of requests in flight to endpoint i (used by least-outstanding);
 * *cursor is the caller's round-robin position, advanced by the call (it breaks ties for
 * least-outstanding, so equal endpoints are used in turn). Returns an index in [0, n), or -1 when
 * no endpoint is usable. */
int balance_pick_endpoint(enum balance_mode mode, const unsigned *outstanding,
                          const uint8_t *usable, unsigned n, unsigned *cursor);

/* Whether a request may have a connection to an endpoint now (per worker): OPEN when an idle
 * connection waits, when no limit is set (limit 0) or when fewer than limit connections are
 * open; otherwise QUEUE while fewer than max_queued requests already wait for one, else
 * REFUSE (answered 503). queued > 0 with room is still QUEUE: a waiting request goes first,
 * so that nobody overtakes the queue. */
enum balance_admit { BALANCE_ADMIT_OPEN = 0, BALANCE_ADMIT_QUEUE, BALANCE_ADMIT_REFUSE };

enum balance_admit balance_admit(unsigned limit, unsigned conns, unsigned idle, unsigned queued,
                                 unsigned max_queued);

#endif

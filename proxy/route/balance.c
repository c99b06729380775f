/* balance.c - pure balancing decisions (see balance.h). No allocation, no globals, no I/O:
 * every function works on the state and arrays the caller passes in, so any thread may call
 * them on state it owns.
 */
#include "proxy/route/balance.h"

#include "core/cut.h"

void balance_swrr_init(struct balance_swrr *st)
{
    for (unsigned i = 0; i < BALANCE_MAX_POOLS; i++)
        st->current[i] = 0;
}

/* With fixed weights nginx's algorithm keeps sum(current) == 0 and every current value in
 * (-total, (n-1) * total]. A weight change between calls keeps the sum at 0 and the values stay
 * bounded, with one exception we handle: a pool whose weight drops to 0 would keep its current
 * value frozen forever (a head start or a debt it brings back when its weight returns). So when
 * a zero-weight pool holds a non-zero value, when the sum is off, or when a value is out of the
 * bounds above (state never initialised, or a far larger total before), the state restarts from
 * zero. A restart costs one window of interleaving, never correctness. */
static void swrr_sanitise(struct balance_swrr *st, const unsigned *w, unsigned n, int64_t total)
{
    int64_t sum = 0;
    int reset = 0;

    for (unsigned i = 0; i < n; i++) {
        int64_t c = st->current[i];
        if ((w[i] == 0 && c != 0) || c > (int64_t)n * total || c < -(int64_t)n * total)
            reset = 1;
        sum += c;
    }
    for (unsigned i = n; i < BALANCE_MAX_POOLS; i++)
        if (st->current[i] != 0)
            reset = 1;
    if (reset || sum != 0)
        balance_swrr_init(st);
}

int balance_swrr_next(struct balance_swrr *st, const unsigned *weights_bp, unsigned n)
{
    int64_t total = 0;
    int best = -1;

    CUT_ASSERT(n <= BALANCE_MAX_POOLS);
    for (unsigned i = 0; i < n; i++)
        total += weights_bp[i];
    if (total == 0)
        return -1;
    swrr_sanitise(st, weights_bp, n, total);

    for (unsigned i = 0; i < n; i++) {
        if (weights_bp[i] == 0)
            continue; /* never chosen; its current value stays 0 */
        st->current[i] += weights_bp[i];
        if (best < 0 || st->current[i] > st->current[best])
            best = (int)i;
    }
    st->current[best] -= total;
    return best;
}

/* FNV-1a 64 over the key, then murmur3's fmix64 so that keys differing in their last bytes
 * (user ids, addresses) spread over the high bits too. Both are fixed public constants: the
 * result is the same in every process, replica and release. */
uint32_t balance_sticky_bucket(const char *key, size_t len)
{
    const unsigned char *p = (const unsigned char *)key;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    /* Multiply-shift reduction of the top 32 bits: bias below 10000 / 2^32. */
    return (uint32_t)(((h >> 32) * BALANCE_BUCKETS) >> 32);
}

int balance_sticky_pool(uint32_t bucket, const unsigned *weights_bp, unsigned n)
{
    uint64_t total = 0, edge = 0;

    CUT_ASSERT(n <= BALANCE_MAX_POOLS);
    CUT_ASSERT(bucket < BALANCE_BUCKETS);
    for (unsigned i = 0; i < n; i++)
        total += weights_bp[i];
    if (total == 0)
        return -1;
    /* The contract asks for sum 10000. Should a caller pass another sum, scale the bucket onto
     * [0, total): the order of the partition, and so the monotonicity, is kept. */
    uint64_t b = bucket;
    if (total != BALANCE_BUCKETS)
        b = b * total / BALANCE_BUCKETS;
    for (unsigned i = 0; i < n; i++) {
        edge += weights_bp[i];
        if (b < edge)
            return (int)i; /* a pool at weight 0 owns an empty range and is never chosen */
    }
    return -1; /* not reached: b < total == the last edge */
}

int balance_pick_endpoint(enum balance_mode mode, const unsigned *outstanding,
                          const uint8_t *usable, unsigned n, unsigned *cursor)
{
    int best = -1;

    if (n == 0)
        return -1;
    unsigned start = *cursor % n;
    for (unsigned k = 0; k < n; k++) {
        unsigned i = start + k < n ? start + k : start + k - n;
        if (!usable[i])
            continue;
        if (mode == BALANCE_ROUND_ROBIN) {
            best = (int)i;
            break;
        }
        /* Least outstanding: strict '<' keeps the first in cursor order among equals. */
        if (best < 0 || outstanding[i] < outstanding[best])
            best = (int)i;
    }
    if (best >= 0)
        *cursor = (unsigned)best + 1 < n ? (unsigned)best + 1 : 0;
    return best;
}

enum balance_admit balance_admit(unsigned limit, unsigned conns, unsigned idle, unsigned queued,
                                 unsigned max_queued)
{
    if (queued == 0 && (idle > 0 || limit == 0 || conns < limit))
        return BALANCE_ADMIT_OPEN;
    return queued < max_queued ? BALANCE_ADMIT_QUEUE : BALANCE_ADMIT_REFUSE;
}

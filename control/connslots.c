/* connslots.c - the connection-table decisions (contract in connslots.h). */
#include "control/connslots.h"

long connslots_choose(const struct connslots_entry *e, size_t n, size_t max)
{
    if (n < max)
        return CONNSLOTS_ROOM;
    long best = CONNSLOTS_NONE;
    for (size_t i = 0; i < n; i++) {
        if (e[i].cls == CONNSLOTS_PINNED)
            continue;
        if (best < 0 || e[i].cls < e[best].cls ||
            (e[i].cls == e[best].cls &&
             (e[i].last < e[best].last ||
              (e[i].last == e[best].last && e[i].serial < e[best].serial))))
            best = (long)i;
    }
    return best;
}

int connslots_rate_allow(struct connslots_rate *r, int64_t now, unsigned per_sec,
                         unsigned long *report)
{
    *report = 0;
    if (now != r->second) {
        *report = r->suppressed;
        r->second = now;
        r->in_second = 0;
        r->suppressed = 0;
    }
    if (r->in_second >= per_sec) {
        r->suppressed++;
        return 0;
    }
    r->in_second++;
    return 1;
}

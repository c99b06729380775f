/* failsafe.c - the pool fail-safe (see failsafe.h). */
#include "control/failsafe.h"

#include <stddef.h>
#include <stdint.h>

int failsafe_weights(unsigned npools, const int *serving, unsigned *weight_bp, int *failsafe)
{
    unsigned lost = 0, kept = 0, nserving = 0;
    for (unsigned p = 0; p < npools; p++) {
        if (serving[p]) {
            kept += weight_bp[p];
            nserving++;
        } else {
            lost += weight_bp[p];
        }
    }
    for (unsigned p = 0; failsafe && p < npools; p++)
        failsafe[p] = !serving[p] && weight_bp[p] > 0 && nserving > 0;
    if (lost == 0 || nserving == 0)
        return 0; /* nothing to move, or nothing can take it: 503 no_endpoint */
    unsigned given = 0, last = 0;
    for (unsigned p = 0; p < npools; p++) {
        if (!serving[p]) {
            weight_bp[p] = 0;
            continue;
        }
        unsigned add = kept ? (unsigned)((uint64_t)lost * weight_bp[p] / kept) : lost / nserving;
        weight_bp[p] += add;
        given += add;
        last = p;
    }
    weight_bp[last] += lost - given; /* rounding: the sum stays 10000 */
    return 1;
}

/* slowstart.c - the share of an endpoint that came back (see slowstart.h). */
#include "control/slowstart.h"

uint16_t slowstart_permille(uint64_t up_since_ms, unsigned slow_start_ms, uint64_t now_ms)
{
    if (!slow_start_ms || !up_since_ms || now_ms >= up_since_ms + slow_start_ms)
        return SLOWSTART_FULL_PERMILLE;
    if (now_ms <= up_since_ms)
        return SLOWSTART_MIN_PERMILLE;
    uint64_t r = (now_ms - up_since_ms) * SLOWSTART_FULL_PERMILLE / slow_start_ms;
    return (uint16_t)(r < SLOWSTART_MIN_PERMILLE ? SLOWSTART_MIN_PERMILLE : r);
}

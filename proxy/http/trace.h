/* trace.h - W3C Trace Context: checking and making the `traceparent` field
 * (https://www.w3.org/TR/trace-context/, "traceparent Header").
 *
 *   traceparent = version "-" trace-id "-" parent-id "-" trace-flags
 *                 2 hex       32 hex        16 hex        2 hex        (lower-case hex only)
 *
 * Pure functions: no I/O, no allocation, any thread. The caller brings the randomness (the
 * worker's PRNG, seeded from getrandom), so making one costs no system call.
 */
#ifndef CUT_TRACE_H
#define CUT_TRACE_H

#include <stdint.h>

#include "core/cut.h"

#define TRACE_PARENT_LEN 55 /* a version-00 traceparent */
#define TRACE_ID_LEN 32     /* the trace-id's hex digits */

/* Whether v is a traceparent a version-00 participant accepts: version two lower-case hex digits
 * other than "ff"; trace-id 32 and parent-id 16 lower-case hex digits, neither all zeros; flags
 * two lower-case hex digits; dashes between. Version 00 must be exactly 55 bytes; a later
 * version may be longer, with a '-' after the flags (what follows is not checked, as the
 * specification asks). Returns 1 or 0. */
int trace_parent_ok(struct cut_slice v);

/* The trace-id of a traceparent trace_parent_ok accepted: v.p + 3, TRACE_ID_LEN bytes. */
static inline const char *trace_parent_id(struct cut_slice v)
{
    return v.p + 3;
}

/* Writes a fresh version-00 traceparent into out (cap >= TRACE_PARENT_LEN + 1, NUL-terminated)
 * from three random words: trace-id from r0 and r1, parent-id from r2 (an all-zero id, which the
 * specification forbids, gets its last digit set to 1); flags "01" (sampled: cutover records no
 * span itself and leaves the sampling decision to the services behind it). */
void trace_parent_make(char *out, uint64_t r0, uint64_t r1, uint64_t r2);

#endif

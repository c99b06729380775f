/* slowstart.h - the share of an endpoint that came back (pools.<name>.slow_start_ms; applied by
 * control/health_state.c as the endpoint's ramp_permille).
 *
 * Pure: no I/O, no clock (times are passed in); any thread.
 */
#ifndef CUT_SLOWSTART_H
#define CUT_SLOWSTART_H

#include <stdint.h>

#define SLOWSTART_FULL_PERMILLE 1000
#define SLOWSTART_MIN_PERMILLE 50 /* never quite 0: it must see some traffic to ramp */

/* The share (permille of its weight) of an endpoint serving again since up_since_ms, at now_ms,
 * ramping linearly over slow_start_ms: full without slow start, when up_since_ms is 0 (serving
 * since long ago) or once slow_start_ms have passed; at least SLOWSTART_MIN_PERMILLE before
 * (also when now_ms is not after up_since_ms). */
uint16_t slowstart_permille(uint64_t up_since_ms, unsigned slow_start_ms, uint64_t now_ms);

#endif

/* clock.h - the monotonic clock every part of cutover measures time with (timeouts, deadlines,
 * activity order, latencies). Any thread; never fails on Linux. */
#ifndef CUT_CLOCK_H
#define CUT_CLOCK_H

#include <stdint.h>

/* Monotonic nanoseconds, microseconds and milliseconds (CLOCK_MONOTONIC, one origin). */
uint64_t clock_mono_ns(void);
uint64_t clock_mono_us(void);
uint64_t clock_mono_ms(void);

#endif

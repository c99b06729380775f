/* failsafe.h - the pool fail-safe: the weights a route's pools really get given which of them
 * can serve (control/health_state.c applies it to each snapshot before publication).
 *
 * A pool with weight but no serving endpoint gives its share to the pools that can serve, in
 * proportion to their weights (evenly when they have none); when no pool can serve, the weights
 * stay as configured (requests get 503 no_endpoint).
 *
 * Pure: no I/O, no shared state; any thread.
 */
#ifndef CUT_FAILSAFE_H
#define CUT_FAILSAFE_H

/* Rewrites weight_bp[npools] (a route's weights, sum 10000) for serving[npools] (1: the pool has
 * a serving endpoint). failsafe[npools], when not NULL, is set to 1 for each pool whose weight is
 * given away (it had weight, cannot serve, and another pool can) and 0 for the others, from the
 * weights before the rewrite. The rounding remainder goes to the last serving pool, so the sum
 * is kept. Returns 1 when the weights changed hands, 0 when nothing was lost or nothing can
 * take it. Arrays borrowed. */
int failsafe_weights(unsigned npools, const int *serving, unsigned *weight_bp, int *failsafe);

#endif

/* fleet_value.h - the values the fleet store holds (control/fleet.h has the key layout):
 * a route's runtime state with a format version, its generation and who made it, and the
 * fleet's generation. Pure: no I/O; any thread. Unit-tested in tests/unit/control/
 * test_fleet_value.c.
 */
#ifndef CUT_FLEET_VALUE_H
#define CUT_FLEET_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "control/state.h"

#define FLEET_FORMAT 1

/* The value of <prefix>routes/<route> for route r at generation gen (malloc'd JSON text). */
char *fleet_value_route(const struct state_route *r, uint64_t gen, const char *actor,
                        const char *op, const char *replica);

/* Parses a route value for key route name: *out gets a one-route state (its generation: the
 * value's). Returns 0, or CUT_EINVAL with why (format, checksum, name mismatch). */
int fleet_value_parse_route(const char *name, const char *text, size_t len, struct state *out,
                            char *why, size_t cap);

/* The value of <prefix>generation; and its parse (CUT_EINVAL: not one). */
char *fleet_value_generation(uint64_t gen);
int fleet_value_parse_generation(const char *text, size_t len, uint64_t *gen);

#endif

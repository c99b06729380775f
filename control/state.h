/* state.h - the durable runtime state: weights, stable weights, drained/added/removed endpoints
 * per route, and the generation. Written atomically and durably; read back with a checksum.
 *
 * Plain data plus file I/O: no libevent, no worker types. Control thread only.
 */
#ifndef CUT_STATE_H
#define CUT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config/cfg.h"

#define STATE_FORMAT 1
#define STATE_MAX_NAME 128
#define STATE_MAX_BP 10000 /* a weight in basis points: 100 % */

/* A list of endpoint addresses ("host:port", as written). Owned strings. */
struct state_addrs {
    char **v;
    size_t n;
};

struct state_pool {
    char name[STATE_MAX_NAME];
    unsigned weight_bp;       /* current */
    unsigned stable_bp;       /* what rollback returns to */
    struct state_addrs drained;
    struct state_addrs added;
    struct state_addrs removed;
};

/* A country cohort (docs/operations.md "Cohort release"): clients whose country (GeoIP of the
 * client address) is one of countries use weights_bp instead of the route's weights. One per
 * route at most; ncountries 0 means none. */
#define STATE_COHORT_MAX 16

struct state_cohort {
    unsigned ncountries;                 /* 0: no cohort; else 1..STATE_COHORT_MAX */
    char countries[STATE_COHORT_MAX][3]; /* ISO 3166-1 alpha-2, upper case, distinct */
    unsigned weights_bp[CFG_MAX_POOLS];  /* index as the route's pools[], sum 10000 */
};

struct state_route {
    char name[STATE_MAX_NAME];
    struct state_pool pools[CFG_MAX_POOLS];
    size_t npools;
    struct state_cohort cohort; /* ncountries 0: none (everyone uses the pools' weight_bp) */
    char *plan; /* the route's shift plan as compact JSON (control/plan.c owns its shape), or
                 * NULL; kept in the state file so a restart resumes it */
};

struct state {
    uint64_t generation;
    struct state_route *routes;
    size_t nroutes;
};

/* Frees everything a state owns and zeroes it. */
void state_dispose(struct state *st);

/* Deep copy. Returns 0 or CUT_ENOMEM (dst is then empty). */
int state_copy(struct state *dst, const struct state *src);

/* Lookups; NULL when absent. */
struct state_route *state_route_find(struct state *st, const char *route);
struct state_pool *state_pool_find(struct state_route *r, const char *pool);

/* Address list helpers: 1 when present / 0. add returns 0, or CUT_ENOMEM; adding a present
 * address does nothing; remove of an absent one does nothing. */
int state_addrs_has(const struct state_addrs *a, const char *addr);
int state_addrs_add(struct state_addrs *a, const char *addr);
void state_addrs_remove(struct state_addrs *a, const char *addr);

/* Serialises st to JSON text (malloc'd, NUL-terminated) with format, generation, routes and a
 * "checksum" (SHA-256, hex, over the canonical compact sorted-key JSON of everything else).
 * Returns NULL on allocation failure. */
char *state_to_json(const struct state *st);

/* The SHA-256 (hex, into hex[65]) of tree's canonical compact sorted-key JSON: the "checksum"
 * of a state document (tree without its "checksum" member). Returns 0 or CUT_ENOMEM. */
int state_checksum_hex(const json_t *tree, char hex[65]);

/* Parses text written by state_to_json (control/state_load.c). Returns 0, CUT_EINVAL with a message in err (cap bytes)
 * for a bad format, wrong checksum, or malformed content. */
int state_from_json(const char *text, size_t len, struct state *out, char *err, size_t cap);

/* 1 when text (len bytes) is an ISO 3166-1 alpha-2 code as a cohort holds it: two upper-case
 * letters A-Z. */
int state_country_ok(const char *text, size_t len);

/* 1 when cc (NUL-terminated) is one of c's countries. */
int state_cohort_has(const struct state_cohort *c, const char *cc);

/* The cohort's weights of route r as a JSON object text {"blue":50,"green":50} (percent, exact
 * decimals) into buf, like state_weights_json; "{}" when r has no cohort. */
void state_cohort_weights_json(const struct state_route *r, char *buf, size_t cap);

/* Weights (stable: the stable weights) of route r as a JSON object text {"blue":90,"green":10},
 * exact decimals, into buf (always NUL-terminated, truncated at cap). */
void state_weights_json(const struct state_route *r, int stable, char *buf, size_t cap);

#endif

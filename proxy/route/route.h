/* route.h - pure routing decisions: which route a request belongs to, which pool serves it,
 * and the trust rules for addresses and headers. No libevent, no sockets beyond address
 * structures, no codec headers. Any thread; all state is passed in.
 */
#ifndef CUT_ROUTE_H
#define CUT_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/cfg.h"
#include "proxy/route/balance.h"
#include "core/cut.h"

/* Normalises a Host (or X-Original-Host, or :authority) value for matching: lower case, the
 * port removed (also from "[v6]:port"), one trailing dot removed. Writes at most cap-1 bytes and
 * a NUL to out. Returns the length, or CUT_EINVAL when the value is empty, too long or holds
 * characters a host cannot have. */
int route_normalize_host(struct cut_slice host, char *out, size_t cap);

/* Finds the route for a normalised host and a request path (origin-form, may carry a query).
 * Host rules of a route, in order of precedence: an exact name, then a "*.suffix" wildcard
 * (matches one or more labels before suffix), then "*" or no hosts at all (any host). Among the
 * routes whose hosts match at the best precedence level, the longest matching path_prefix wins;
 * on a tie, the first route in the configuration. A prefix matches when the path starts with it
 * and, unless the prefix ends with '/', the next path character is '/', '?' or the end (so
 * "/api" matches "/api", "/api/x" and "/api?q" but not "/apis"). Returns the route index or -1. */
int route_match(const struct cfg *cfg, const char *host, struct cut_slice path);

/* Returns nonzero when the address (AF_INET or AF_INET6; an IPv4-mapped IPv6 address is treated
 * as IPv4) lies in one of the networks. */
int route_cidr_contains(const struct cfg_cidr_list *list, const struct sockaddr *addr);

/* Parses an address text ("10.1.2.3", "10.1.2.3:5678", "::1", "[::1]:443") into *out (port 0).
 * Returns 0 or CUT_EINVAL. */
int route_parse_addr(struct cut_slice text, struct sockaddr_storage *out);

/* The client's address for logging and stickiness. When the peer is in trusted, walk
 * X-Forwarded-For (xff; empty slice if absent; the value may be several fields joined by ", ")
 * from the right, skipping entries that are themselves trusted proxies, and take the first one
 * that is not; entries may carry ":port" (Application Gateway writes IP:port), which is removed.
 * An unparsable entry stops the walk and the last trusted hop is used. When the peer is not
 * trusted, the peer address itself. Writes the numeric address text (no port) to out (cap >= 46).
 * Returns 0 or CUT_EINVAL. */
int route_client_addr(const struct sockaddr *peer, struct cut_slice xff,
                      const struct cfg_cidr_list *trusted, char *out, size_t cap);

/* Finds a cookie's value in a Cookie header value ("a=1; b=2"). Returns 1 and sets *value, or 0. */
int route_cookie_value(struct cut_slice cookie_header, const char *name, struct cut_slice *value);

/* ROUTE_BY_FAILSAFE: the request left the pool it was routed to because that pool had no
 * endpoint left for it (route_retry_decide, route_failover_pool). */
enum route_reason {
    ROUTE_BY_WEIGHT = 0,
    ROUTE_BY_STICKY = 1,
    ROUTE_BY_OVERRIDE = 2,
    ROUTE_BY_FAILSAFE = 3
};

/* A route's country cohort (docs/operations.md "Cohort release"): clients whose country is one
 * of countries are balanced with weights_bp instead of the route's weights. ncountries 0: none.
 * One per route; at most ROUTE_COHORT_MAX countries. */
#define ROUTE_COHORT_MAX 16

struct route_cohort {
    unsigned ncountries;
    char countries[ROUTE_COHORT_MAX][3]; /* ISO 3166-1 alpha-2, upper case */
    unsigned weights_bp[CFG_MAX_POOLS];  /* one per pool, sum 10000 */
};

/* Everything the pool decision needs, gathered by the caller from the request. */
struct route_pick_in {
    const struct cfg_route *route;
    const unsigned *weights_bp;     /* current runtime weights, one per pool, sum 10000 or 0 */
    int override_trusted;           /* the peer may use the override header */
    struct cut_slice override_value; /* the override header's value, empty when absent */
    struct cut_slice sticky_key;    /* the sticky key, empty when absent or not configured */
    const struct route_cohort *cohort; /* the route's cohort; NULL or ncountries 0: none */
    const char *country;            /* the client's country (upper case), NULL or "": unknown;
                                     * only looked at when the route has a cohort */
    struct balance_swrr *cohort_swrr; /* the caller's per-worker state for the cohort's round
                                       * robin (NULL: the route's swrr is used) */
};

/* 1 when the request is in the route's cohort: the route has one and the client's country is
 * known and one of its countries. An unknown country is never in a cohort. */
int route_in_cohort(const struct route_pick_in *in);

/* Chooses the pool (DESIGN.md "Choosing blue or green"): a trusted override naming a pool of the
 * route wins (even a pool at weight 0); else, for a request in the route's cohort
 * (route_in_cohort), the cohort's weights replace the route's in what follows (and the round
 * robin uses cohort_swrr); a non-empty sticky key picks by bucket (the same bucket as without a
 * cohort, so as a pool's weight rises its clients only move towards it); else smooth weighted
 * round robin with swrr (the caller's per-worker state for this route). Sets *reason.
 * Returns the pool index, or -1 when no pool may be chosen (every weight 0 and no override). */
int route_pick_pool(const struct route_pick_in *in, struct balance_swrr *swrr,
                    enum route_reason *reason);

/* ---- retries (docs/configuration.md "Retries and failover") ----------------------------------
 *
 * The rule: a try that failed is sent again only when the upstream cannot have acted on it, or
 * when acting twice does no harm:
 *   ROUTE_FAIL_CONNECT      connect refused or timed out, TLS handshake failed, ALPN refused:
 *                           nothing was written. Any method.
 *   ROUTE_FAIL_UNPROCESSED  the upstream said it did not process it (HTTP/2 REFUSED_STREAM, a
 *                           stream above a GOAWAY's last id). Any method (the caller restores
 *                           the body it sent).
 *   ROUTE_FAIL_LOST         the connection closed after the request was written but before any
 *                           byte of a response: idempotent methods only (RFC 9110 9.2.2), and
 *                           only when no request body byte left (the body is not kept).
 *   ROUTE_FAIL_OTHER        anything else (a timeout waiting for the head, a protocol error, a
 *                           response already started): never.
 * and only while fewer than max_tries tries were made and less than budget_ms went by since the
 * first one. A response the upstream sent, 5xx included, is never retried. */
enum route_fail { ROUTE_FAIL_CONNECT, ROUTE_FAIL_UNPROCESSED, ROUTE_FAIL_LOST, ROUTE_FAIL_OTHER };

#define ROUTE_MAX_TRIES 10 /* the highest retries.max_tries */

struct route_retry_in {
    enum route_fail fail;
    int idempotent;      /* GET, HEAD, OPTIONS, TRACE, PUT, DELETE */
    int body_sent;       /* request body bytes left for the upstream and are gone */
    int resp_started;    /* a response head was relayed to the client */
    unsigned tries;      /* tries made so far, the failed one included */
    unsigned max_tries;  /* retries.max_tries (1: never retry) */
    uint64_t elapsed_ms; /* since the first try started */
    unsigned budget_ms;  /* retries.budget_ms */
};

/* Returns 1 when the request may be tried again, 0 when it fails now. */
int route_retry_decide(const struct route_retry_in *in);

/* Per-request fail-safe: the request's pool `current` has no endpoint left for it (each one is
 * drained, unhealthy, or already failed this request). Returns the pool to try next: among the
 * other pools whose can_serve[p] is set (an endpoint that is neither drained, unhealthy nor
 * already tried), the one with the highest weight (weights_bp may be NULL: the configured
 * ones), the first on a tie; a pool at weight 0 is eligible, as with the snapshot's fail-safe.
 * -1 when there is none, or when the pool was chosen by a trusted override (an override names
 * the pool the caller wants; it does not move). */
int route_failover_pool(const struct cfg_route *r, const unsigned *weights_bp, int current,
                        const uint8_t *can_serve, enum route_reason reason);

#endif

/* route.h - pure routing decisions: which route a request belongs to, which pool serves it,
 * and the trust rules for addresses and headers. No libevent, no sockets beyond address
 * structures, no codec headers. Any thread; all state is passed in.
 */
#ifndef CUT_ROUTE_H
#define CUT_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../config/cfg.h"
#include "balance.h"
#include "cut.h"

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

enum route_reason { ROUTE_BY_WEIGHT = 0, ROUTE_BY_STICKY = 1, ROUTE_BY_OVERRIDE = 2 };

/* Everything the pool decision needs, gathered by the caller from the request. */
struct route_pick_in {
    const struct cfg_route *route;
    const unsigned *weights_bp;     /* current runtime weights, one per pool, sum 10000 or 0 */
    int override_trusted;           /* the peer may use the override header */
    struct cut_slice override_value; /* the override header's value, empty when absent */
    struct cut_slice sticky_key;    /* the sticky key, empty when absent or not configured */
};

/* Chooses the pool (DESIGN.md "Choosing blue or green"): a trusted override naming a pool of the
 * route wins (even a pool at weight 0); else a non-empty sticky key picks by bucket; else smooth
 * weighted round robin with swrr (the caller's per-worker state for this route). Sets *reason.
 * Returns the pool index, or -1 when no pool may be chosen (every weight 0 and no override). */
int route_pick_pool(const struct route_pick_in *in, struct balance_swrr *swrr,
                    enum route_reason *reason);

#endif

/* addr.h - numeric IPv4/IPv6 addresses: the one place a "host" text becomes a socket address
 * without DNS (listeners, the admin API, endpoints given as literals, GeoIP lookups, TLS SNI
 * decisions). Pure; any thread. */
#ifndef CUT_ADDR_H
#define CUT_ADDR_H

#include <stdint.h>
#include <sys/socket.h>

/* Fills *ss and *len with host (an IPv4 or IPv6 literal, no brackets) and port. Returns 0, or
 * CUT_EINVAL when host is not a numeric address (*ss zeroed). */
int addr_numeric(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);

/* The numeric text of sa's address (no port) in out[cap], cap >= 46 (INET6_ADDRSTRLEN): IPv4
 * as dotted decimal written without printf (the data path formats every client address), an
 * IPv4-mapped IPv6 address as IPv4 (one client, one text, whichever way it reached us), other
 * IPv6 as inet_ntop writes it. Returns the length, or CUT_EINVAL (out = "") for another family
 * or a short buffer. */
int addr_text(const struct sockaddr *sa, char *out, size_t cap);

/* Is host an IPv4 or IPv6 literal? 1 or 0. */
int addr_is_numeric(const char *host);

#endif

/* ctlurl.h - cutoverctl's HTTPS admin API endpoints: "https://HOST[:PORT]" parsed, and expanded
 * into one replica per address HOST resolves to (docs/cutoverctl.md, "--endpoint").
 *
 * The TLS server name (SNI) and the name the server certificate is verified against stay HOST,
 * whichever address is contacted. Resolution goes through a function the caller passes, so the
 * expansion (order, duplicates, limits) is tested without DNS. No global state; any thread.
 */
#ifndef CUT_CTLURL_H
#define CUT_CTLURL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CTLURL_HOST_MAX 253
#define CTLURL_DEFAULT_PORT 443
#define CTLURL_MAX_ADDRS 128 /* addresses looked at per name */

struct ctlurl {
    char host[CTLURL_HOST_MAX + 1]; /* a DNS name (lower case) or an IP literal (no brackets) */
    uint16_t port;
    int numeric; /* host is an IPv4 or IPv6 literal: verified as an IP address, no SNI */
};

/* Parses "https://HOST[:PORT][/]": HOST is a DNS name, an IPv4 address or [IPv6]; PORT is
 * 1..65535 (default 443). Nothing else is allowed (no user, path, query or fragment). Returns 0,
 * or CUT_EINVAL with a one-line reason in err. */
int ctlurl_parse(const char *text, struct ctlurl *u, char *err, size_t cap);

/* Resolves host:port to at most max stream socket addresses into out/lens. Returns how many, or a
 * negative value with a one-line reason in err. */
typedef int ctlurl_resolve_fn(void *arg, const char *host, uint16_t port,
                              struct sockaddr_storage *out, socklen_t *lens, size_t max, char *err,
                              size_t cap);

/* The system resolver (getaddrinfo, blocking: for the command-line client only). arg unused. */
int ctlurl_resolve_system(void *arg, const char *host, uint16_t port, struct sockaddr_storage *out,
                          socklen_t *lens, size_t max, char *err, size_t cap);

/* Every address of u, in the resolver's order, without duplicates, at most max. A numeric host
 * gives itself without calling fn. Returns the count (>= 1), or CUT_ENOENT with err set when
 * the name does not resolve, or CUT_ELIMIT when it has more than max addresses. */
int ctlurl_expand(const struct ctlurl *u, ctlurl_resolve_fn *fn, void *arg,
                  struct sockaddr_storage *out, socklen_t *lens, size_t max, char *err, size_t cap);

/* "127.0.0.1:9443" or "[::1]:9443" for an address. */
void ctlurl_addr_text(const struct sockaddr *sa, char *buf, size_t cap);

/* The Host header value: "HOST:PORT", brackets around an IPv6 literal. */
void ctlurl_authority(const struct ctlurl *u, char *buf, size_t cap);

#endif

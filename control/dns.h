/* dns.h - endpoint names resolved off the control loop.
 *
 * The control thread asks for a name's addresses while it builds a snapshot (dns_get). A numeric
 * host is answered at once. A name is answered from the cache; a name never seen before is
 * queued for the resolver thread (getaddrinfo: /etc/hosts, the cluster DNS, whatever nsswitch
 * says) and has no address until the answer comes back, when the changed callback runs on the
 * control thread (the owner then publishes again). Before the control loop serves (start-up),
 * dns_set_blocking(d, 1) makes dns_get resolve in place, so the first snapshot has every address.
 * dns_refresh re-resolves every name in the background; an empty answer keeps the last good one
 * (a DNS outage never empties a pool).
 *
 * Threads: every function here is for the control thread only; the resolver thread touches only
 * the job queue, under the module's mutex.
 */
#ifndef CUT_DNS_H
#define CUT_DNS_H

#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct dns;

/* Resolves host:port into at most max addresses; returns how many. Runs on the resolver thread
 * (or on the control thread in blocking mode). dns_lookup_system is the real one. */
typedef unsigned (*dns_lookup_fn)(const char *host, uint16_t port, struct sockaddr_storage *out,
                                  socklen_t *lens, unsigned max);
unsigned dns_lookup_system(const char *host, uint16_t port, struct sockaddr_storage *out,
                           socklen_t *lens, unsigned max);

/* An answer for host:port arrived: naddrs addresses (0: the name does not resolve); first says
 * it was the name's first answer. Called only when the name's address set changed, or for a
 * first answer (even an empty one); in blocking mode only for an empty first answer (dns_get's
 * caller has the addresses). Control thread; it must not call back into dns_get. */
typedef void (*dns_changed_fn)(void *ctx, const char *host, uint16_t port, unsigned naddrs,
                               int first);

/* base: the control thread's (made after evthread_use_pthreads); lookup: NULL for
 * dns_lookup_system. Returns NULL on failure (out of memory, no thread). Free with dns_free. */
struct dns *dns_new(struct event_base *base, dns_lookup_fn lookup, dns_changed_fn changed,
                    void *ctx);

/* Stops the resolver thread (waits for a lookup in progress to return) and frees everything. */
void dns_free(struct dns *d);

/* Blocking mode on (1: start-up, the loop does not serve yet) or off (0, the default). */
void dns_set_blocking(struct dns *d, int on);

/* Copies at most max cached addresses of host:port into out/lens and returns how many (0 while
 * a first lookup is pending, or when the name does not resolve). */
unsigned dns_get(struct dns *d, const char *host, uint16_t port, struct sockaddr_storage *out,
                 socklen_t *lens, unsigned max);

/* Queues a fresh lookup of every name that is not numeric and not already queued. */
void dns_refresh(struct dns *d);

/* Names cached, and lookups queued or running (for tests and status). */
void dns_counts(const struct dns *d, unsigned *names, unsigned *pending);

#endif

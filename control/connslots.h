/* connslots.h - the connection-table decisions the control socket (ctlsock.c) and the HTTPS
 * admin API (admin.c) share (docs/control-protocol.md, "Connection limits"):
 *
 *   - which open connection gives way when a new one arrives and the table is full, so that a
 *     table held by silent or idle connections never refuses a `rollback` as `busy`;
 *   - a per-second cap on the events a peer can cause at will (timeouts, evictions, refused
 *     handshakes), so that a flood of connections does not flood the log.
 *
 * Pure: no libevent, no sockets, no clock of its own (callers pass the time in); no global
 * state; any thread (both callers run on the control thread). Tested by
 * tests/unit/test_connslots.c.
 */
#ifndef CUT_CONNSLOTS_H
#define CUT_CONNSLOTS_H

#include <stddef.h>
#include <stdint.h>

/* How readily an open connection gives way to a new one, most readily first. */
enum connslots_class {
    CONNSLOTS_DONE,    /* nothing more is owed to it: its last reply is written and it is only
                        * being closed (the admin API's linger), or its peer has closed */
    CONNSLOTS_WAITING, /* waiting for a request, reading one, or in its TLS handshake */
    CONNSLOTS_WRITING, /* a reply is still being written: the client has not read it yet */
    CONNSLOTS_PINNED,  /* its request is being handled right now: never gives way */
};

/* What the chooser knows of one open connection. */
struct connslots_entry {
    enum connslots_class cls;
    uint64_t last;   /* when its last activity was (accepted, bytes read, reply written): any
                      * monotonic clock and unit, larger is later (the callers use us) */
    uint64_t serial; /* the order of its accept, lower is older: the tie-break, since a burst
                      * of connections can share one clock tick */
};

#define CONNSLOTS_ROOM (-1) /* the table has room: admit the new connection, evict nobody */
#define CONNSLOTS_NONE (-2) /* the table is full and every connection is pinned */

/* For a table of n open connections e[0..n) (borrowed, unchanged) with room for max: returns
 * CONNSLOTS_ROOM when n < max; otherwise the index of the connection that gives way: the lowest
 * class, within it the oldest last (the idlest), within that the lowest serial; or
 * CONNSLOTS_NONE when every connection is pinned (or there is none and max is 0). The caller
 * closes that one and asks again while the table is still full (a reload may have lowered
 * max). */
long connslots_choose(const struct connslots_entry *e, size_t n, size_t max);

/* A per-second event budget. Embed it zero-initialised; one per transport. */
struct connslots_rate {
    int64_t second;           /* the second being counted */
    unsigned in_second;       /* events allowed in it */
    unsigned long suppressed; /* events left out since the last report */
};

/* Whether one more event may be logged in second now (seconds, any clock that does not go
 * back), at most per_sec a second. *report is set to the number of events left out in earlier
 * seconds, once, by the first call of a later second (the caller logs a "suppressed" event
 * with that count before its own); 0 otherwise. */
int connslots_rate_allow(struct connslots_rate *r, int64_t now, unsigned per_sec,
                         unsigned long *report);

#endif

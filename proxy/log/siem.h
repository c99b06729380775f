/* siem.h - audit records and security events to the SIEM (QRadar): LEEF 2.0 in RFC 5424 syslog
 * messages over TLS (docs/configuration.md, "siem").
 *
 * One struct siem per process, whether a SIEM is configured or not. Any thread hands it a
 * record with siem_submit(): a copy into a bounded queue under a mutex, never I/O, never a wait
 * (when the queue is full the record is dropped and counted). The SIEM's own thread resolves the
 * address, connects (non-blocking, bounded by connect_timeout_ms), verifies the collector's
 * certificate with the configured client context, encodes each record (leef.h) and writes it,
 * bounded by write_timeout_ms; after a failure it reconnects with a backoff of 1 s doubling to
 * 30 s, and sends the message it was writing again (at least once). Outages are logged on stdout
 * once (siem_unreachable), recoveries as siem_connected.
 */
#ifndef CUT_SIEM_H
#define CUT_SIEM_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/log/leef.h"

struct cfg_siem;
struct logger;
struct siem;
struct tls_client;

/* Starts the SIEM thread (idle until siem_configure gives it an address). version goes into the
 * LEEF header. Returns NULL when out of memory or the thread cannot start. Main thread. */
struct siem *siem_new(struct logger *lg, const char *version);

/* Spends at most 2 s sending what is queued (when connected), then stops the thread and frees
 * everything. Main thread, after every other thread stopped submitting. NULL is ignored. */
void siem_free(struct siem *s);

/* Applies cfg (NULL, or an address of NULL: no SIEM; queued records are dropped) with tc, the
 * client context built from cfg->tls (a reference is taken; the previous one is released once
 * unused). Changed settings close the connection after the message being written and reconnect;
 * a changed context alone (rotated files) is used from the next connection on. cluster and
 * region go into the thread's own events. Returns 0 or CUT_ENOMEM (nothing changed). Control
 * thread. */
int siem_configure(struct siem *s, const struct cfg_siem *cfg, struct tls_client *tc,
                   const char *cluster, const char *region);

/* Queues one JSON record (an audit line for LEEF_AUDIT; an event line for LEEF_SECURITY, which
 * is ignored unless leef_event_severity() knows the event). No-op without a SIEM or when s is
 * NULL. Any thread; never blocks on I/O. */
void siem_submit(struct siem *s, enum leef_kind kind, const char *json, size_t len);

struct siem_stats {
    int enabled, connected;
    uint64_t sent, dropped;
    size_t queued_bytes;
};

/* Any thread. */
void siem_get_stats(struct siem *s, struct siem_stats *out);

#endif

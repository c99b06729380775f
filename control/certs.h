/* certs.h - the TLS material of the configuration in use and the watch on its files.
 *
 * The material: a server context per TLS listener and for the admin API, a client context per
 * pool with upstream TLS and for the SIEM connection, and the GeoIP database. It is built on the
 * control thread (file I/O) and hangs off every snapshot, so workers use the current snapshot's
 * for new handshakes and open connections keep theirs. The watch (inotify on the directories,
 * since the Key Vault CSI driver swaps a "..data" symlink, plus polling every 5 s) notices a
 * changed file and rebuilds piece by piece: a piece that does not load keeps the previous
 * material (event tls_reload_refused) and never blocks a good one; when anything new loaded, the
 * owner publishes it (the rotated callback) and the event tls_reloaded follows.
 *
 * Control thread only. The contexts are refcounted (proxy/net/tls.h): a set holds one reference
 * on each of its entries.
 */
#ifndef CUT_CERTS_H
#define CUT_CERTS_H

#include <stddef.h>

#include "config/cfg.h"

struct event_base;
struct tls_ctx;
struct tls_client;
struct geoip;

/* Every TLS context of one configuration: per listener (server) and per pool (upstream client,
 * index route * CFG_MAX_POOLS + pool); NULL where there is no TLS. One reference each. */
struct certs_set {
    struct tls_ctx *listeners[CFG_MAX_LISTENERS];
    struct tls_ctx *admin; /* the HTTPS admin API's; NULL without one */
    struct tls_client **pools;
    size_t npools;
    struct tls_client *siem; /* the SIEM connection's; NULL without one */
    struct geoip *geo;       /* access_log.country_database; NULL without one */
};

/* Builds every piece of cfg's material into *out; every piece must load. Returns 0, or a
 * negative CUT_E* code with every problem in errs (paths listeners[i].tls, admin.tls,
 * routes[r].pools.NAME.tls, siem.tls, access_log.country_database) and nothing left in out. */
int certs_build(const struct cfg *cfg, struct certs_set *out, struct cfg_errors *errs);

/* Drops every reference of set (NULL entries are fine) and empties it. */
void certs_set_release(struct certs_set *set);

/* certs_build and release: does cfg's material load? (cutover --check) */
int certs_check(const struct cfg *cfg, struct cfg_errors *errs);

struct certs;

/* New material is in use (certs_current): publish it. Returns 0, or < 0 when it could not be
 * published (the previous material is put back). */
typedef int (*certs_rotated_fn)(void *ctx);
/* An event line for the log (name, and extra: JSON members each preceded by a comma). */
typedef void (*certs_event_fn)(void *ctx, const char *name, const char *extra);

/* A watch with an empty set. Returns NULL when out of memory. */
struct certs *certs_new(struct event_base *base, certs_rotated_fn rotated, certs_event_fn event,
                        void *ctx);

/* Releases the set in use, stops watching and frees w (NULL is fine). */
void certs_free(struct certs *w);

/* The set in use (borrowed: valid until the next certs_install). */
const struct certs_set *certs_current(const struct certs *w);

/* Puts *set in use and hands what was in use back in *set (to release, or to install again). */
void certs_install(struct certs *w, struct certs_set *set);

/* Watches the files of cfg (borrowed: it must outlive the watch, i.e. until the next
 * certs_watch or certs_free) and rebuilds from cfg when they change. */
void certs_watch(struct certs *w, const struct cfg *cfg);

/* Records what every watched file looks like now. Returns 1 when something differs from the
 * last time. */
int certs_files_stat(struct certs *w);

/* How many files are watched. */
size_t certs_nfiles(const struct certs *w);

/* Logs event name (tls_loaded, tls_reloaded) with the certificates of every TLS listener and of
 * the admin API. */
void certs_event(struct certs *w, const char *name);

/* No more rebuilds (the process is stopping). */
void certs_stop(struct certs *w);

#endif

/* healthcheck.h - active health checks of the endpoints of pools with an enabled
 * "health_check", run by the control thread on its own event base (never on a worker, never on
 * the data path).
 *
 * One checker per (route, pool, endpoint key) of the current snapshot. Each round connects
 * (non-blocking), over TLS with the pool's client context when the pool uses TLS (upstream
 * certificate and name verified, client certificate presented, ALPN "http/1.1" or "h2"), sends
 *
 *     GET <path> HTTP/1.1\r\nHost: <host, or the endpoint as configured>\r\n
 *     User-Agent: cutover-health-check\r\nConnection: close\r\n\r\n
 *
 * and reads at most HEALTHCHECK_MAX_READ bytes until the status line is complete. A round
 * succeeds iff the status is within [status_min, status_max], all within timeout_ms. Pools that
 * speak HTTP/2 (h2c, h2) are checked over HTTP/2 instead: an nghttp2 client session per round,
 * one GET stream (:authority = the host above), the final :status decides; h2 requires ALPN h2.
 *
 * Endpoints start up (serving): an endpoint goes down after unhealthy_threshold failed rounds
 * in a row and comes back after healthy_threshold good rounds in a row; each change goes
 * through the owner's report callback (ctl.c: event endpoint_health, a snapshot is published). The next round
 * starts interval_ms plus a random jitter in [0, jitter_ms) after the previous one ended.
 *
 * healthcheck_sync() makes the checkers follow the snapshot (call it after every publication):
 * new endpoints get a checker, endpoints that left are stopped and freed, a changed
 * health_check restarts a pool's checkers (their verdict is kept). A checker that stops while
 * its endpoint is down clears that verdict, so nothing stays down without a checker.
 *
 * Control thread only.
 */
#ifndef CUT_HEALTHCHECK_H
#define CUT_HEALTHCHECK_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct healthcheck;
struct snapshot;

#define HEALTHCHECK_MAX_READ 8192 /* bytes read per check, at most */

/* An endpoint's verdict changed: up (healthy) or down, with a short reason ("status 503",
 * "timeout", "connect: refused", "tls: ..."). route/pool are names, key the endpoint's numeric
 * "ip:port" (snap_endpoint.key). publish is 0 when the endpoint has left the snapshot and only
 * its verdict is to be forgotten (nothing to log or publish). The callback may publish, and so
 * call healthcheck_sync(). */
typedef void (*healthcheck_report_fn)(void *ctx, const char *route, const char *pool,
                                      const char *key, int up, const char *why, int publish);
/* An event line for the log (name; extra: JSON members each preceded by a comma). */
typedef void (*healthcheck_event_fn)(void *ctx, const char *name, const char *extra);

/* Creates the (empty) checker set on base. Returns NULL when out of memory. */
struct healthcheck *healthcheck_new(struct event_base *base, healthcheck_report_fn report,
                                    healthcheck_event_fn event, void *ctx);

/* Stops every check (open connections are closed) and frees h. NULL is ignored. */
void healthcheck_free(struct healthcheck *h);

/* No more rounds and no more verdicts (the process is stopping). */
void healthcheck_stop(struct healthcheck *h);

/* Follows snapshot s (the one just published; h keeps a reference until the next sync): see
 * above. Never reports from inside the call (a verdict to clear for an endpoint still in the
 * snapshot is reported from the next loop turn), so it may run at the end of a publication. */
void healthcheck_sync(struct healthcheck *h, struct snapshot *s);

/* ---- decision logic (no sockets; tests/unit/test_healthcheck.c) ---------------------------- */

/* Parses the status line at the start of p[0..n): "HTTP/1.x NNN[ reason]\r\n" (a bare "\n" is
 * accepted). Returns the bytes of the line with *status set, CUT_EAGAIN when the line is not
 * complete yet and n < HEALTHCHECK_MAX_READ, or CUT_EPROTO when it is malformed or longer. */
int healthcheck_parse_status(const char *p, size_t n, unsigned *status);

/* Consecutive results of one endpoint. */
struct healthcheck_run {
    int up;
    unsigned ok_run, fail_run;
};

/* Records one round's result. Returns 1 when r->up changed (the caller reports it). */
int healthcheck_record(struct healthcheck_run *r, int ok, unsigned healthy_threshold,
                       unsigned unhealthy_threshold);

/* Writes the check request into buf. Returns its length, or CUT_ELIMIT when cap is too small. */
int healthcheck_request(char *buf, size_t cap, const char *path, const char *host);

/* The delay before the next round: interval_ms + a value in [0, jitter_ms) from the PRNG state
 * *prng (splitmix64; advanced). */
uint64_t healthcheck_delay_ms(uint64_t *prng, unsigned interval_ms, unsigned jitter_ms);

#endif

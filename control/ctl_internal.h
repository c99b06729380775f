/* ctl_internal.h - the control thread's state, shared by ctl.c (lifecycle, publication, reload),
 * commands.c (the control operations), ctlsock.c (the Unix socket) and admin.c (the HTTPS
 * admin API). Control thread only;
 * nothing here is visible to workers, which only ever receive snapshots.
 */
#ifndef CUT_CTL_INTERNAL_H
#define CUT_CTL_INTERNAL_H

#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "config/cfg.h"
#include "proxy/route/snapshot.h"
#include "control/audit.h"
#include "control/ctl.h"
#include "control/state.h"

struct event_base;
struct event;
struct logger;
struct worker;
struct ctlsock;
struct admin;
struct tls_ctx;
struct tls_client;

/* Counters of one route's pool, kept by name across snapshots (see snap_counter_slot). */
struct counter_entry {
    char *route, *pool;
    struct snap_counter_slot *slots; /* [nworkers] */
    struct counter_entry *next;
};

/* Control requests by op and result, for the metrics (op names are static strings from the
 * command table, or "unknown"). */
#define CTL_MAX_OPS 32
struct ctl_op_count {
    const char *op;
    uint64_t ok, refused;
};

struct metrics;
struct hstate;
struct plan_state;
struct healthcheck;

struct ctl {
    const char *config_path;
    struct logger *lg;
    struct siem *siem; /* borrowed: outlives the ctl */
    struct worker **workers;
    unsigned nworkers;
    struct event_base *base;
    struct event *ev_hup, *ev_term, *ev_int, *ev_dns, *ev_delay, *ev_drain, *ev_exit;
    struct cfg_hold *hold;
    struct snapshot *snap; /* the latest published, one reference */
    uint64_t generation;
    struct state rt;       /* runtime routing state; its generation field mirrors generation */
    struct audit *audit;
    struct refusal_limiter *refusals; /* coalesced refusals (commands.c owns it) */
    uint64_t audit_synced_ms;         /* last audit_sync() (commands_tick) */
    struct ctlsock *sock;
    struct metrics *metrics;
    struct hstate *hs;   /* endpoint health (health_state.c) */
    struct plan_state *plans; /* plan measurement bases and watchdog history (plan.c) */
    struct healthcheck *hc; /* active health checks (healthcheck.c) */
    struct event *ev_tick; /* every CTL_TICK_MS: ejections, slow start, windows, plans */
    struct ctl_op_count ops[CTL_MAX_OPS];
    unsigned nops;
    struct admin *admin; /* the HTTPS admin API (control/admin.c), NULL without admin.address */
    struct counter_entry *counters;
    struct dns *dns;              /* endpoint names (control/dns.c) */
    struct event *ev_dns_publish; /* one publication for the answers of a loop iteration */
    int dns_changed;              /* an answer changed a known name's addresses */
    int stopping;
    time_t started;

    struct certs *certs; /* the TLS material in use and the watch on its files (control/certs.c) */
};

/* Builds a snapshot from the current configuration and runtime state and publishes it to every
 * worker. Returns 0 or CUT_ENOMEM (nothing published). */
int ctl_publish(struct ctl *c);

/* Makes st durable (when a state file is configured). Returns 0, or CUT_EIO with err set. */
int ctl_save_state(struct ctl *c, const struct state *st, char *err, size_t cap);

/* Reloads the configuration file. rec is the audit record of the request (actor, op, args,
 * reason; the caller's): once the new configuration is valid, ctl_reload completes it
 * (generations, every route's weights) and makes the change durable with durable_commit()
 * before it publishes. Returns 0 (recorded, durable, published: generation + 1), or
 * CUT_EINVAL with every problem in errs (caller disposes), or CUT_EIO/CUT_ENOMEM with errs
 * holding one message. *recorded says whether the record was written (the caller then must not
 * record the refusal again). */
struct audit_record;
int ctl_reload(struct ctl *c, struct cfg_errors *errs, struct audit_record *rec, int *recorded);

/* Writes an audit record's line to stdout through the logger (audit_out_fn). */
void ctl_audit_out(void *ctx, const char *line, size_t len);

/* Weights of route r of st as a JSON object text {"blue":90,"green":10} into buf. */
void ctl_weights_json(const struct state_route *r, int stable, char *buf, size_t cap);

/* An active health check changed an endpoint's state: up (healthy) or down, with a short
 * reason ("status 503", "timeout", "connect: refused", "tls: ..."). route/pool are names, key
 * the endpoint's numeric "ip:port" (snap_endpoint.key). The control thread records it, logs the
 * endpoint_health event and publishes a snapshot (a down endpoint gets no new requests; a pool
 * with none up gives its share to the others). Control thread only. */
void ctl_health_report(struct ctl *c, const char *route, const char *pool, const char *key,
                       int up, const char *why);


#define CTL_TICK_MS 100

/* Counts one control request (op: a static string) with its result. */
void ctl_count_op(struct ctl *c, const char *op, int ok);

#endif

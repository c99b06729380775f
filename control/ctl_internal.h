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
    struct admin *admin; /* the HTTPS admin API (control/admin.c), NULL without admin.address */
    struct counters *counters; /* per (route, pool) slots and control op counts (counters.c) */
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

/* durable_commit (control/durable.h) to c's audit log and state file. */
int ctl_durable_commit(struct ctl *c, const struct state *next, struct audit_record *rec,
                       int *recorded, char *err, size_t cap);

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



#define CTL_TICK_MS 100


#endif

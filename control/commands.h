/* commands.h - the control operations (docs/control-protocol.md): request parsing, the handler
 * of each operation of control/optable.h (which has their roles and help), validation, and the
 * durable, audited application of changes.
 * Control thread only.
 */
#ifndef CUT_COMMANDS_H
#define CUT_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include "config/cfg.h"
#include "core/clock.h"

#include <time.h>

#include "control/audit.h"

struct cfg_errors;
struct counters;
struct plan_state;
struct refusal_limiter;
struct state;

/* Who is asking. */
struct cmd_peer {
    long uid, gid;       /* -1 when unknown (always for the HTTPS admin API) */
    const char *user;    /* user name, or the client certificate's subject, for the audit record */
    const char *address; /* the remote "ip:port" (HTTPS admin API), NULL for the Unix socket */
    enum cut_role role;
};

/* What the control protocol needs of the control thread, given by its owner (control/ctl.c:
 * ctl_cmd_host): what it reads (the configuration and runtime state in use, the generation,
 * borrowed until the next change: read them within one call), the modules it uses (fields set
 * once they exist, borrowed for the life of the host), and the one path a change takes (make it
 * durable and audited, then install and publish it). The transports (the control socket, the
 * HTTPS admin API) are handed the same host. Control thread only. */
struct cmd_host {
    void *ctx;
    const struct cfg *(*cfg)(void *ctx);
    const struct state *(*state)(void *ctx);
    uint64_t (*generation)(void *ctx);
    void (*event)(void *ctx, const char *name, const char *extra);
    /* durable_commit (control/durable.h) to the audit log and state file, at the generation */
    int (*durable_commit)(void *ctx, const struct state *next, struct audit_record *rec,
                          int *recorded, char *err, size_t cap);
    /* puts next in use (taken; durable and audited at generation + 1) and publishes it */
    void (*install)(void *ctx, struct state *next);
    /* reloads the configuration file (control/ctl.c: ctl_reload) */
    int (*reload)(void *ctx, struct cfg_errors *errs, struct audit_record *rec, int *recorded);
    audit_out_fn audit_out; /* audit lines to stdout (ctx) */
    struct audit *audit;
    struct refusal_limiter *refusals;
    struct plan_state *plans;
    struct counters *counters;
    const char *config_path;
    time_t started;
    /* the fleet store (control/fleet.h), NULL without one: changes are committed to it first */
    struct fleet *fleet;
    struct cmd_pending *pending; /* changes waiting for the store (commands.c owns the list) */
    struct cmd_pending *waiting; /* of which those waiting for their turn (commands.c's queue) */
};

/* A request whose reply comes later: a change waiting for the fleet store's transaction. */
struct cmd_pending;

/* The later reply: reply is the line (malloc'd, no newline; the callee frees it), code as for
 * commands_handle(). Called once, on the control thread, unless the request was dropped. */
typedef void (*cmd_later_fn)(void *ctx, char *reply, const char *code);

/* Handles one request line (without its newline). Returns the reply line (malloc'd, no newline,
 * caller frees), or NULL when out of memory. When code is not NULL, *code is set to the reply's
 * error code ("denied", "conflict", ...; a static string) or NULL when the reply is ok.
 * With a fleet store, a change waits for the store's transaction: then, when later is set,
 * commands_handle returns NULL with *pending set and the reply goes to later(later_ctx, ...)
 * (the transport reads no further request of that client meanwhile, and calls
 * commands_pending_drop() if it goes away first); without later, the change is refused
 * (store_unavailable). pending may be NULL when later is. */
char *commands_handle(struct cmd_host *c, const struct cmd_peer *peer, const char *line, size_t len,
                      const char **code, cmd_later_fn later, void *later_ctx,
                      struct cmd_pending **pending);

/* The transport of a pending request went away: its reply is discarded (the change still
 * completes, and is recorded). */
void commands_pending_drop(struct cmd_pending *p);

/* Refuses one request without running it, because its transport decided so (an admin API
 * client certificate that maps to no role: "forbidden"). The reply echoes the request's id when
 * it has a valid one; the refusal is audited with the request's op and arguments when they can
 * be read. code must be a static string. Returns the reply line like commands_handle(). */
char *commands_refuse(struct cmd_host *c, const struct cmd_peer *peer, const char *line, size_t len,
                      const char *code, const char *message);

/* The reply for a request that could not even be read (too large, busy); audited like any
 * other refusal. */
char *commands_error_reply(struct cmd_host *c, const struct cmd_peer *peer, const char *code,
                           const char *message);

/* Maps a peer's uid/gid to a role by the configuration's rules (first match). Without rules,
 * the user cutover runs as is admin and everyone else has no role. */
enum cut_role commands_role_for(const struct cfg *cfg, long uid, long gid);


struct state;
typedef struct json_t json_t;
/* A change cutover decides itself (a plan step, a failed gate, the watchdog): the same path as
 * an operator's (state file, audit record with actor "auto" and args, publication). next is
 * borrowed. Returns 0 or a CUT_E* code (nothing changed). */
int commands_apply_auto(struct cmd_host *c, const char *op, json_t *args, struct state *next,
                        const char *route);

/* Every tick (100 ms): writes the summaries of coalesced refusals whose window ended
 * (control/refusal.h); the control thread makes the reads and refusals written since the last
 * change durable (audit_sync) once a second. now_ms is clock_mono_ms(). */
void commands_tick(struct cmd_host *c, uint64_t now_ms);

/* At stop: writes every pending refusal summary, and forgets the changes still waiting for the
 * store (after fleet_free: their transactions were cancelled; they are recorded as aborted). */
void commands_stop(struct cmd_host *c);

#endif

/* cmd.h - one control request as the operations see it (struct cmd_req, struct cmd_res) and the
 * argument helpers every operation shares: unknown keys, strings, expect_generation, routes,
 * pools, weights, endpoints. Used by control/commands.c (the protocol: parse, authorise, audit,
 * apply) and control/cmd_ops.c (the operations). Control thread only.
 *
 * Every helper that can refuse returns CUT_EINVAL (or NULL) after cmd_fail() filled r: the
 * reply's error code, message and JSON path.
 */
#ifndef CUT_CMD_H
#define CUT_CMD_H

#include <jansson.h>
#include <stddef.h>

#include "control/commands.h"
#include "control/state.h"

#define CMD_PROTOCOL 1
#define CMD_REASON_MAX 512
#define CMD_ID_MAX 128

struct cmd_req {
    struct cmd_host *c;
    const struct cmd_peer *peer;
    json_t *args; /* an object (empty when absent; without "dry_run", which commands.c takes) */
    int dry_run;  /* a dry run: the handler validates and fills r as usual, but must leave no
                   * trace outside r (no plan rebase, nothing applied: commands.c applies nothing) */
};

struct cmd_res {
    json_t *result;          /* the reply's "result" */
    const char *code;        /* error code, NULL when ok */
    char msg[512];
    char path[160];
    json_t *details;
    /* a mutating operation fills these */
    int changed;             /* next replaces the runtime state */
    int reloaded;            /* the reload op already published */
    int recorded;            /* the op already wrote its audit record (reload) */
    struct state next;
    int fleet_pending;       /* a rollback applied here before the fleet store has it */
    const char *route;
    char weights_before[512], weights_after[512];
};

/* An operation's handler: fills r->result, or refuses through cmd_fail (CUT_EINVAL); a change
 * fills r->next, r->changed and the weights before/after. */
typedef int (*cmd_fn)(struct cmd_req *q, struct cmd_res *r);

/* Refuses: sets r's code (a static string), JSON path (NULL: none) and message. Returns
 * CUT_EINVAL (every handler and helper returns it, or NULL, after refusing). */
int cmd_fail(struct cmd_res *r, const char *code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Refuses (invalid_argument) when args has a key not in allowed (NULL-terminated). */
int cmd_check_keys(struct cmd_res *r, json_t *args, const char *const *allowed);

/* args.key as a string of at most max bytes into *out (borrowed from args; NULL when absent and
 * not required). */
int cmd_arg_str(struct cmd_res *r, json_t *args, const char *key, int required, size_t max,
                const char **out);

/* The read operations' only argument: an optional args.route naming a route of the state in
 * use (*only NULL: every route). Refuses unknown keys and an unknown route. */
int cmd_arg_route_filter(struct cmd_req *q, struct cmd_res *r, const char **only);

/* Checks args.expect_generation (when given) against the generation in use (conflict). */
int cmd_arg_expect(struct cmd_req *q, struct cmd_res *r);

/* The route named name of the state in use (not_found refuses). */
const struct state_route *cmd_find_route(struct cmd_req *q, struct cmd_res *r, const char *name);

/* The index of pool name in sr (not_found refuses). */
int cmd_find_pool(struct cmd_res *r, const struct state_route *sr, const char *name);

/* The weights (or stable weights) of sr as a JSON object of percentages. */
json_t *cmd_weights_obj(const struct state_route *sr, int stable);

/* Starts a change of route name: copies the runtime state into r->next and records the weights
 * before. Returns the route inside r->next, or NULL (r says why). */
struct state_route *cmd_begin_change(struct cmd_req *q, struct cmd_res *r, const char *name);

/* Whether a and b have the same weights, stable weights and cohort. */
int cmd_same_weights(const struct state_route *a, const struct state_route *b);

/* Parses {"blue": 90, "green": 10} for route sr into bp[] (basis points, summing to 10000). */
int cmd_parse_weights(struct cmd_res *r, json_t *w, const struct state_route *sr, unsigned *bp);

/* Whether the pool sp of route serves endpoint ep now (configured minus removed, plus added). */
int cmd_pool_has_endpoint(struct cmd_host *c, const char *route, const struct state_pool *sp,
                          const char *ep);

/* How many endpoints the pool sp of route serves now. */
size_t cmd_pool_endpoint_count(struct cmd_host *c, const char *route, const struct state_pool *sp);

/* The parts of an audit record every control request shares (cluster, region, actor, role, op,
 * args, reason, generations). args_json and args (for the reason) are borrowed and must outlive
 * rec. */
void cmd_record_fill(struct cmd_host *c, const struct cmd_peer *peer, const char *op,
                     const char *args_json, json_t *args, struct audit_record *rec);

#endif

/* commands.h - the control operations (docs/control-protocol.md): request parsing, the command
 * table with roles and help, validation, and the durable, audited application of changes.
 * Control thread only.
 */
#ifndef CUT_COMMANDS_H
#define CUT_COMMANDS_H

#include <stddef.h>

#include "../config/cfg.h"

struct ctl;

/* Who is asking. */
struct cmd_peer {
    long uid, gid;    /* -1 when unknown */
    const char *user; /* user name or other identity, for the audit record */
    enum cfg_role role;
};

/* Handles one request line (without its newline). Returns the reply line (malloc'd, no newline,
 * caller frees), or NULL when out of memory. */
char *commands_handle(struct ctl *c, const struct cmd_peer *peer, const char *line, size_t len);

/* The reply for a request that could not even be read (too large, busy); audited like any
 * other refusal. */
char *commands_error_reply(struct ctl *c, const struct cmd_peer *peer, const char *code,
                           const char *message);

/* Maps a peer's uid/gid to a role by the configuration's rules (first match). Without rules,
 * the user cutover runs as is admin and everyone else has no role. */
enum cfg_role commands_role_for(const struct cfg *cfg, long uid, long gid);

const char *commands_role_name(enum cfg_role r);

struct state;
typedef struct json_t json_t;
/* A change cutover decides itself (a plan step, a failed gate, the watchdog): the same path as
 * an operator's (state file, audit record with actor "auto" and args, publication). next is
 * borrowed. Returns 0 or a CUT_E* code (nothing changed). */
int commands_apply_auto(struct ctl *c, const char *op, json_t *args, struct state *next,
                        const char *route);

#endif

/* state_rebase.h - the runtime state a configuration starts from, given the previous one (at
 * start-up: the state file; on a reload: the state in use). Pure: no I/O; any thread.
 *
 * The precedence rule (docs/control-protocol.md, "Durable state"): a route keeps its runtime
 * weights (and stable weights, and its shift plan) when its pools are unchanged and, on a
 * reload (old_cfg set), its configured weights are unchanged too; otherwise the
 * configuration's weights win for that route. Drained, added and removed endpoints are kept for
 * pools that still exist. Routes that are new get the configuration's weights.
 */
#ifndef CUT_STATE_REBASE_H
#define CUT_STATE_REBASE_H

#include <stddef.h>

#include "config/cfg.h"
#include "control/state.h"

/* Builds *out (the caller disposes it) for cfg from old (may be empty) at old's generation.
 * old_cfg: the configuration old was built for on a reload, NULL at start-up. note[cap] gets
 * the names of the routes that lost their runtime weights, as JSON strings separated by commas
 * ("\"app\",\"api\""; empty when none). Returns 0 or CUT_ENOMEM (out empty). */
int state_rebase(const struct cfg *cfg, const struct cfg *old_cfg, const struct state *old,
                 struct state *out, char *note, size_t cap);

#endif

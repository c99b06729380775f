/* reload_rules.h - what a reload may not change: what is bound or opened once at start-up
 * (listeners, the number of workers, the control socket, state file and audit file, the
 * metrics listener, the admin API's address). Pure; any thread.
 */
#ifndef CUT_RELOAD_RULES_H
#define CUT_RELOAD_RULES_H

#include "config/cfg.h"

/* Returns 0 when cfg may replace old by a reload, or CUT_EINVAL with *why_path (the JSON path
 * of the first thing that may not change) and *why (a message, static) set. */
int reload_rules_check(const struct cfg *old, const struct cfg *cfg, const char **why_path,
                       const char **why);

#endif

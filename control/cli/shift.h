/* shift.h - the gated shift: starts the server-side plan (op shift) on every replica,
 * watches it through status once a second until it is promoted or rolled back, and aborts it
 * (shift-abort) on SIGINT/SIGTERM. Owns the process's only globals: the signal flag and its
 * self-pipe.
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_SHIFT_H
#define CUT_CLI_SHIFT_H

#include <jansson.h>

#include "control/cli/cli.h"

/* Builds the shift's arguments (op shift's args) from the command line. NULL after a usage
 * error. The caller owns the result. */
json_t *cli_shift_args(struct cli *c);

/* How the shift command runs (not with --dry-run: that is one request, cli_simple_run) (docs/cutoverctl.md, "shift"). Returns the exit code. */
int cli_shift_run(struct cli *c, const struct optable_op *cmd);
#endif

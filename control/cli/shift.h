/* shift.h - the gated shift: starts the server-side plan (op shift) on every replica,
 * watches it through status once a second until it is promoted or rolled back, and aborts it
 * (shift-abort) on SIGINT/SIGTERM. Owns the process's only globals: the signal flag and its
 * self-pipe.
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_SHIFT_H
#define CUT_CLI_SHIFT_H

#include "control/cli/cli.h"

/* How the shift command runs (docs/cutoverctl.md, "shift"). Returns the exit code. */
int cli_shift_run(struct cli *c, const struct optable_op *cmd);
#endif

/* simple.h - the commands that are one request to every replica (all but shift): their
 * arguments from the positionals and options, the exchange, the report.
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_SIMPLE_H
#define CUT_CLI_SIMPLE_H

#include "control/cli/cli.h"

/* Runs a command that is one request to every replica. Returns the exit code. */
int cli_simple_run(struct cli *c, const struct optable_op *cmd);
#endif

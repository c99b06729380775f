/* options.h - cutoverctl's command line (docs/cutoverctl.md, "Options"). */
#ifndef CUT_CLI_OPTIONS_H
#define CUT_CLI_OPTIONS_H

#include "control/cli/cli.h"

/* Reads argv into c (which must be zeroed; argv is borrowed and must outlive c): the options,
 * the command (*cmd_out, from control/optable.h) and its positionals, checking that the command
 * takes the options given and the number of positionals. Returns 0 with *cmd_out set; 0 with
 * *cmd_out NULL after printing --help; or a usage exit code after printing the error. */
int cli_options_parse(struct cli *c, int argc, char **argv, const struct optable_op **cmd_out);

#endif

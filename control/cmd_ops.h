/* cmd_ops.h - the server's half of each control operation: its handler. What an operation is
 * (least role, whether it mutates, help) is written once, in control/optable.c, which cutoverctl
 * reads too; every op there has exactly one handler here (tests/unit/control/test_optable.c).
 * Control thread only.
 */
#ifndef CUT_CMD_OPS_H
#define CUT_CMD_OPS_H

#include <stddef.h>

#include "control/cmd.h"

/* The handler of op, or NULL when there is none. */
cmd_fn cmd_ops_find(const char *op);

/* The op of the i-th handler, or NULL when i is past the end. */
const char *cmd_ops_handled(size_t i);

#endif

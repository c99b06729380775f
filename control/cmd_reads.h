/* cmd_reads.h - the history and diff operations (control/cmd_reads.c), handlers in
 * control/cmd_ops.c's table (cmd_fn). Control thread only. */
#ifndef CUT_CMD_READS_H
#define CUT_CMD_READS_H

#include "control/cmd.h"

/* history: the newest changes (args limit, refusals, route, since, actor); with a fleet store
 * the fleet's (control/fleet.h, fleet_history). */
int cmd_reads_history(struct cmd_req *q, struct cmd_res *r);

/* diff: per route, the runtime state against the configuration in use (args route). */
int cmd_reads_diff(struct cmd_req *q, struct cmd_res *r);

#endif

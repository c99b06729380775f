/* fanout.h - the replicas: one per control socket and per address of every HTTPS endpoint;
 * a request sent to all of them, their outcomes folded into one exit code, and the barrier of
 * --wait (every replica reports the generation it acknowledged).
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_FANOUT_H
#define CUT_CLI_FANOUT_H

#include "control/cli/cli.h"

/* Sends the same request (borrowed) to every replica. */
void cli_exchange_all(struct cli *c, json_t *req);

/* The exit code for the replicas' outcomes: 0 when all ok; 5 when some ok and some not;
 * otherwise the failure class, 2 before 3 before 4 when replicas failed differently. */
int cli_fold_exit(const struct cli *c);

/* --wait: polls `version` on every replica that acknowledged until it reports a generation >=
 * the one it acknowledged, bounded by --wait-timeout. A replica that never does is marked failed
 * (class 4, code wait_timeout). */
void cli_barrier(struct cli *c);

/* 0 when a replica's status reports a fleet (a fleet store) that is not converged: a replica
 * lags, the store is unreachable, or a rollback waits to be written; 1 otherwise. */
int cli_fleet_converged(const struct cli *c);

/* One replica per control socket and per address of every HTTPS endpoint, in the order given.
 * Returns 0 or a usage exit code. */
int cli_make_replicas(struct cli *c);
#endif

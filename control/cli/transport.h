/* transport.h - one exchange with every replica in parallel: connect to a control socket (or
 * an HTTPS admin API, https.c), send the request, read the reply line, all non-blocking under one
 * poll(2) loop bounded by a timeout.
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_TRANSPORT_H
#define CUT_CLI_TRANSPORT_H

#include "control/cli/cli.h"
#include "control/cli/replica.h"

/* Sends reqs[i] (borrowed; NULL skips replica i) to each replica and waits for every reply, all
 * in parallel, bounded by timeout_ms overall. Sets "v" and "id" in each request. Afterwards each
 * participating replica's outcome (ok, reply, code, msg, generation) is set. Never blocks longer
 * than timeout_ms (+ one poll tick). */
void cli_exchange(struct cli *c, json_t *const *reqs, long long timeout_ms, char *id_out,
                  size_t id_cap);
#endif

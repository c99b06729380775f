/* transport.h - one exchange with every replica in parallel: connect to a control socket (or
 * an HTTPS admin API, https.c), send the request, read the reply line, all non-blocking under one
 * poll(2) loop bounded by a timeout.
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_TRANSPORT_H
#define CUT_CLI_TRANSPORT_H

#include "control/cli/cli.h"

/* Records replica r's failure: its exit class (CLI_EXIT_USAGE, _DENIED or _UNREACH), the code
 * and a sentence for people. */
void cli_replica_fail(struct cli_replica *r, int exit_class, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Takes one reply (text[0..len), a JSON object) and sets the replica's outcome. http_status is
 * the HTTP status it came with (HTTPS), 0 for the control socket. */
void cli_replica_take_reply(struct cli_replica *r, const char *id, const char *text, size_t len,
                            int http_status);

/* Sends reqs[i] (borrowed; NULL skips replica i) to each replica and waits for every reply, all
 * in parallel, bounded by timeout_ms overall. Sets "v" and "id" in each request. Afterwards each
 * participating replica's outcome (ok, reply, code, msg, generation) is set. Never blocks longer
 * than timeout_ms (+ one poll tick). */
void cli_exchange(struct cli *c, json_t *const *reqs, long long timeout_ms, char *id_out,
                  size_t id_cap);
#endif

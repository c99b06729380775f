/* replica.h - a replica's outcome: a failure (exit class, code, message) or the reply it sent.
 * Used by both transports (transport.c: the control socket; https.c: the admin API).
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_REPLICA_H
#define CUT_CLI_REPLICA_H

#include <stddef.h>

#include "control/cli/cli.h"

/* Records replica r's failure: its exit class (CLI_EXIT_USAGE, _DENIED or _UNREACH), the code
 * and a sentence for people. */
void cli_replica_fail(struct cli_replica *r, int exit_class, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Takes one reply (text[0..len), a JSON object) and sets the replica's outcome. http_status is
 * the HTTP status it came with (HTTPS), 0 for the control socket. */
void cli_replica_take_reply(struct cli_replica *r, const char *id, const char *text, size_t len,
                            int http_status);

/* Doubles r's input buffer (first: its first size) up to limit bytes. Returns 0, or CUT_ELIMIT
 * when the reply would pass limit / CUT_ENOMEM (r failed: protocol). */
int cli_replica_grow_in(struct cli_replica *r, size_t first, size_t limit);

#endif

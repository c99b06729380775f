/* output.h - what cutoverctl prints: usage errors, the --json document, per-replica failures,
 * the verdict line, and the reports of status, history, version and the changes.
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_OUTPUT_H
#define CUT_CLI_OUTPUT_H

#include "control/cli/cli.h"

/* A usage error: message on stderr (and a JSON document on stdout with --json). Returns 2. */
int cli_usage_error(const struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints the JSON document {"ok", "exit_code", "command", "replicas": [...]} plus extra's keys
 * (extra taken, may be NULL). */
void cli_print_json_doc(const struct cli *c, const char *command, int code, json_t *extra);

/* The width of the widest replica label, for aligned columns. */
size_t cli_width_of_sockets(const struct cli *c);

/* "  SOCKET  FAILED  code: message", then the error's details, if any */
void cli_print_failure_line(const struct cli *c, const struct cli_replica *r);

/* The closing line on stderr for a non-zero exit. */
void cli_print_verdict(const struct cli *c, const char *what, int code);

/* The reports on stdout of the replicas' replies to status, history and version. */
void cli_print_status(const struct cli *c);

void cli_print_history(const struct cli *c);

void cli_print_version(const struct cli *c);

/* The report of diff: per replica, per route, the runtime state against the configuration. */
void cli_print_diff(const struct cli *c);

/* The report of a dry run (--dry-run): the request that would be sent (req, borrowed), then per
 * replica "DRY RUN: would change ..." (or would not, or why it would be refused). */
void cli_print_dry_run(const struct cli *c, const struct optable_op *cmd, const json_t *req);

/* The report of a change: per replica, what was done (or why not). */
void cli_print_mutation(const struct cli *c, const struct optable_op *cmd, const json_t *args);
#endif

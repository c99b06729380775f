/* plan_text.h - a shift plan in words: its steps, gates, progress line, where it is, why it
 * was rolled back; used by status and by the shift runner.
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_PLAN_TEXT_H
#define CUT_CLI_PLAN_TEXT_H

#include "control/cli/cli.h"

/* "5xx<=1% p99<=500ms min 100 req", or "none (hold time only)". */
const char *cli_gates_str(const json_t *g, char *buf, size_t cap);

/* "10,25,50,100" for a plan's steps. */
const char *cli_steps_str(const json_t *steps, char *buf, size_t cap);

/* "gate max_5xx_percent: value 12.5 > limit 1 at 2026-...", for plan.rolled_back. */
const char *cli_rolled_back_str(const json_t *plan, char *buf, size_t cap);

/* "step 2/4  green 25%": where a plan is. */
const char *cli_plan_where(const json_t *plan, char *buf, size_t cap);

/* The progress line of a running or paused plan, between prefix and suffix (borrowed), fitted
 * into width bytes (0: no limit), into buf:
 * "step 2/4  green 25%  5xx 0.20% (<= 1%)  p99 87ms (<= 500ms)  512 req  next step in 12s".
 * Parts are left out, rank by rank (see struct progress_part), until it fits; what still does
 * not fit (a very narrow terminal, a long prefix) is cut at width. */
const char *cli_plan_progress_fit(const json_t *plan, const char *prefix, const char *suffix,
                                  size_t width, char *buf, size_t cap);

/* The whole progress line (when stdout is not a terminal: never cut). */
const char *cli_plan_progress(const json_t *plan, char *buf, size_t cap);

/* The status table's line for a route's plan (NULL or null: nothing). */
void cli_print_status_plan(const json_t *plan);
#endif

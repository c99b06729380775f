/* values.h - the values cutoverctl reads and prints: percentages (hundredths), durations, numbers,
 * --gate texts, weights objects. Pure (no I/O); jansson for the JSON values.
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_VALUES_H
#define CUT_CLI_VALUES_H

#include "control/cli/cli.h"

/* malloc that exits (code 4) when memory runs out. */
void *cli_xmalloc(size_t n);

/* Parses a percentage with at most two decimals ("25", "12.5", "12.34", "25%") into hundredths
 * (0..10000). Returns 0 or -1. */
int cli_parse_pct(const char *s, long *out);

/* Parses a duration: a decimal number with an optional unit ms, s, m or h (no unit: seconds).
 * Returns milliseconds, or -1. */
long long cli_parse_duration(const char *s);

/* Parses a decimal integer lo..hi into *out. Returns 0 or -1 (*out untouched). */
int cli_parse_ll(const char *s, long long lo, long long hi, long long *out);

/* A weight (JSON number, a percentage) in hundredths, rounded; -1 when not a number or out of
 * 0..1e9 % (a server's nonsense must not reach the conversion: out of range, it is undefined
 * behaviour). */
long cli_json_pct(const json_t *v);

/* A JSON number for hundredths: an integer when whole, else a real with two decimals. */
json_t *cli_pct_json(long h);

/* Formats hundredths as "25" or "12.5" or "12.34" into buf. */
const char *cli_pct_str(long h, char *buf, size_t cap);

/* "blue=90% green=10%" for a weights object, into buf. */
const char *cli_weights_str(const json_t *w, char *buf, size_t cap);

/* Two weights objects name the same pools with the same percentages. */
int cli_weights_same(const json_t *a, const json_t *b);

/* The string member key of o, or "" when absent or not a string. */
const char *cli_jstr(const json_t *o, const char *key);

/* Parses one --gate into gates (a JSON object, borrowed): "5xx<=X%" sets max_5xx_percent,
 * "p99<=Yms" or "p99<=Ys" sets max_p99_ms. Blanks are ignored, names are case-insensitive.
 * Returns 0, or -1 with a sentence in err. */
int cli_parse_gate(const char *arg, json_t *gates, char *err, size_t cap);
#endif

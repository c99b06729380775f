/* text.h - small text formats shared by the server and the CLI. Pure; any thread. */
#ifndef CUT_TEXT_H
#define CUT_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Decimal digits of v written at out (at least 21 bytes), NUL-terminated; returns the number of
 * digits. The data path's integers (status codes, lengths) without printf's cost. */
size_t text_u64(char *out, uint64_t v);

/* A status code as exactly three digits (v % 1000, zero-padded) and a NUL at out[3]. */
void text_status3(char *out, unsigned v);

/* Formats hundredths of a percent (basis points of 100 %) as the shortest exact percentage:
 * 2500 -> "25", 1250 -> "12.5", 1234 -> "12.34". Always NUL-terminates buf (cap > 0). */
void text_percent(unsigned long hundredths, char *buf, size_t cap);

/* Formats an error message into err[cap] like snprintf; does nothing when err is NULL or cap
 * is 0 (callers that do not want the message pass NULL). */
void text_error(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

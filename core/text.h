/* text.h - small text formats shared by the server and the CLI. Pure; any thread. */
#ifndef CUT_TEXT_H
#define CUT_TEXT_H

#include <stddef.h>

/* Formats hundredths of a percent (basis points of 100 %) as the shortest exact percentage:
 * 2500 -> "25", 1250 -> "12.5", 1234 -> "12.34". Always NUL-terminates buf (cap > 0). */
void text_percent(unsigned long hundredths, char *buf, size_t cap);

/* Formats an error message into err[cap] like snprintf; does nothing when err is NULL or cap
 * is 0 (callers that do not want the message pass NULL). */
void text_error(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

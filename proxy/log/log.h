/* log.h - JSON lines on stdout without blocking the data path.
 *
 * Workers append lines to their own evbuffer and hand whole batches over with log_submit(),
 * which takes a mutex once per batch (not per line) and never waits for I/O. One writer thread
 * owned by the logger does the blocking write(2). When the queue passes its bound (a stuck
 * stdout), batches are dropped and counted rather than stalling a worker.
 */
#ifndef CUT_LOG_H
#define CUT_LOG_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct logger;

/* Starts the writer thread for fd (not closed by the logger). max_queue bounds the bytes
 * waiting to be written. Returns NULL on failure. Main thread. */
struct logger *log_new(int fd, size_t max_queue);

/* Writes everything queued, stops the thread and frees the logger. Main thread, after every
 * other thread stopped submitting. */
void log_free(struct logger *lg);

/* Moves every byte of lines (whole lines only) into the queue. Any thread. */
void log_submit(struct logger *lg, struct evbuffer *lines);

/* Queues one line (a newline is appended). Any thread; for the control thread's events. */
void log_line(struct logger *lg, const char *line, size_t len);

/* Lines' bytes dropped because the queue was full. Any thread. */
uint64_t log_dropped(struct logger *lg);

/* Escapes s[0..n) as the inside of a JSON string into out[0..cap) and returns the length
 * written (always NUL-terminated; truncated to fit, never mid-escape). */
size_t log_escape(char *out, size_t cap, const char *s, size_t n);

/* Writes the current UTC time as RFC 3339 with milliseconds ("2026-11-23T22:30:21.123Z") into
 * out (cap >= 25). */
void log_time_rfc3339(char *out, size_t cap);

#endif

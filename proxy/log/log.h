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

/* A line being written into a caller's buffer without printf (an access line per request is
 * the data path's largest text: ~13 000 instructions through snprintf, ~2 000 this way). Every
 * put is bounded by cap; a line that does not fit is marked over and must not be used. */
struct log_buf {
    char *p;
    size_t n, cap;
    int over;
};

void log_put(struct log_buf *b, const char *s, size_t n);
void log_put_str(struct log_buf *b, const char *s);  /* s as is (already JSON-safe) */
/* s[0..n) escaped like log_escape, at most max bytes of it (cut between escapes) */
void log_put_esc(struct log_buf *b, const char *s, size_t n, size_t max);
void log_put_u64(struct log_buf *b, uint64_t v);
/* A duration in nanoseconds as milliseconds with three decimals, rounded to the microsecond
 * ("12.345"), what "%.3f" of the same milliseconds prints but for ties. */
void log_put_ms3(struct log_buf *b, uint64_t ns);
#define LOG_PUT_LIT(b, lit) log_put((b), (lit), sizeof(lit) - 1)

/* Every stdout line carries "service":"cutover" and a "level" (info, warn, error), the names
 * DataDog and Log Analytics read without a custom pipeline (docs/operations.md, "Logs"). */
#define LOG_SERVICE "cutover"

/* The level of an event line by the event's name: "error" for a name ending in "_failed",
 * "warn" for one ending in "_refused", "_unreachable", "_timeout", "_evicted", "_deadline",
 * "_expired", "_discarded", "_torn_line", for pool_failsafe, audit_gap and
 * state_unfinished_change, and for endpoint_health when
 * extra (the line's remaining fields, may be NULL) says the endpoint is down or ejected; else
 * "info". Returns a static string. Any thread. */
const char *log_event_level(const char *name, const char *extra);

/* The level of an access line by its HTTP status: "error" for 5xx, "warn" for 4xx, else
 * "info". Static string; any thread. */
static inline const char *log_status_level(int status)
{
    return status >= 500 ? "error" : status >= 400 ? "warn" : "info";
}

/* Writes the current UTC time as RFC 3339 with milliseconds ("2026-11-23T22:30:21.123Z") into
 * out (cap >= 25). */
void log_time_rfc3339(char *out, size_t cap);

#endif

/* log.c - the stdout writer thread and JSON helpers. */
#include "proxy/log/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/text.h"

struct logger {
    int fd;
    size_t max_queue;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct evbuffer *queue; /* guarded by mu */
    int stopping;           /* guarded by mu */
    atomic_uint_fast64_t dropped;
    pthread_t thread;
};

static void write_all(int fd, struct evbuffer *buf)
{
    while (evbuffer_get_length(buf) > 0) {
        int n = evbuffer_write(buf, fd);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* stdout is gone: nothing better to do than discard */
            evbuffer_drain(buf, evbuffer_get_length(buf));
            return;
        }
    }
}

static void *writer_main(void *arg)
{
    struct logger *lg = arg;
    struct evbuffer *local = evbuffer_new();
    if (!local)
        abort();
    pthread_mutex_lock(&lg->mu);
    for (;;) {
        while (evbuffer_get_length(lg->queue) == 0 && !lg->stopping)
            pthread_cond_wait(&lg->cv, &lg->mu);
        int stop = lg->stopping;
        evbuffer_add_buffer(local, lg->queue);
        pthread_mutex_unlock(&lg->mu);
        write_all(lg->fd, local);
        pthread_mutex_lock(&lg->mu);
        if (stop && evbuffer_get_length(lg->queue) == 0)
            break;
    }
    pthread_mutex_unlock(&lg->mu);
    evbuffer_free(local);
    return NULL;
}

struct logger *log_new(int fd, size_t max_queue)
{
    struct logger *lg = calloc(1, sizeof *lg);
    if (!lg)
        return NULL;
    lg->fd = fd;
    lg->max_queue = max_queue;
    lg->queue = evbuffer_new();
    pthread_mutex_init(&lg->mu, NULL);
    pthread_cond_init(&lg->cv, NULL);
    if (!lg->queue || pthread_create(&lg->thread, NULL, writer_main, lg) != 0) {
        if (lg->queue)
            evbuffer_free(lg->queue);
        free(lg);
        return NULL;
    }
    return lg;
}

void log_free(struct logger *lg)
{
    if (!lg)
        return;
    pthread_mutex_lock(&lg->mu);
    lg->stopping = 1;
    pthread_cond_signal(&lg->cv);
    pthread_mutex_unlock(&lg->mu);
    pthread_join(lg->thread, NULL);
    evbuffer_free(lg->queue);
    pthread_mutex_destroy(&lg->mu);
    pthread_cond_destroy(&lg->cv);
    free(lg);
}

void log_submit(struct logger *lg, struct evbuffer *lines)
{
    size_t n = evbuffer_get_length(lines);
    if (n == 0)
        return;
    pthread_mutex_lock(&lg->mu);
    if (evbuffer_get_length(lg->queue) + n > lg->max_queue) {
        pthread_mutex_unlock(&lg->mu);
        evbuffer_drain(lines, n);
        atomic_fetch_add(&lg->dropped, n);
        return;
    }
    evbuffer_add_buffer(lg->queue, lines);
    pthread_cond_signal(&lg->cv);
    pthread_mutex_unlock(&lg->mu);
}

void log_line(struct logger *lg, const char *line, size_t len)
{
    pthread_mutex_lock(&lg->mu);
    if (evbuffer_get_length(lg->queue) + len + 1 > lg->max_queue) {
        pthread_mutex_unlock(&lg->mu);
        atomic_fetch_add(&lg->dropped, len + 1);
        return;
    }
    evbuffer_add(lg->queue, line, len);
    evbuffer_add(lg->queue, "\n", 1);
    pthread_cond_signal(&lg->cv);
    pthread_mutex_unlock(&lg->mu);
}

uint64_t log_dropped(struct logger *lg)
{
    return atomic_load(&lg->dropped);
}

/* Bytes written as they are inside a JSON string: printable ASCII but the quote and backslash
 * (bytes from the wire are not trusted to be UTF-8: anything >= 0x80 is escaped too). */
static int json_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

size_t log_escape(char *out, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap == 0)
        return 0;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && json_plain((unsigned char)s[run]))
            run++;
        if (run > i) { /* a run of plain bytes at once */
            size_t take = run - i;
            if (take > cap - 1 - o)
                take = cap - 1 - o;
            memcpy(out + o, s + i, take);
            o += take;
            if (i + take < run)
                break; /* truncated */
            i = run;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t elen;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if (o + elen >= cap)
            break;
        memcpy(out + o, esc, elen);
        o += elen;
        i++;
    }
    out[o] = '\0';
    return o;
}

void log_put(struct log_buf *b, const char *s, size_t n)
{
    if (b->over || n > b->cap - b->n) {
        b->over = 1;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

void log_put_str(struct log_buf *b, const char *s)
{
    log_put(b, s, strlen(s));
}

void log_put_esc(struct log_buf *b, const char *s, size_t n, size_t max)
{
    if (b->over)
        return;
    size_t room = b->cap - b->n; /* log_escape writes a NUL after what it escapes */
    if (room < max + 1) {
        b->over = 1;
        return;
    }
    b->n += log_escape(b->p + b->n, max + 1, s, n);
}

void log_put_u64(struct log_buf *b, uint64_t v)
{
    char tmp[24];
    log_put(b, tmp, text_u64(tmp, v));
}

void log_put_ms3(struct log_buf *b, uint64_t ns)
{
    uint64_t us = (ns + 500) / 1000;
    char tmp[32];
    size_t n = text_u64(tmp, us / 1000);
    unsigned frac = (unsigned)(us % 1000);
    tmp[n++] = '.';
    tmp[n++] = (char)('0' + frac / 100);
    tmp[n++] = (char)('0' + frac / 10 % 10);
    tmp[n++] = (char)('0' + frac % 10);
    log_put(b, tmp, n);
}

void log_time_rfc3339(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

const char *log_event_level(const char *name, const char *extra)
{
    static const char *const warn_suffixes[] = {"_refused", "_unreachable", "_timeout",
                                                "_evicted", "_deadline", "_expired",
                                                "_discarded", "_torn_line"};
    size_t n = strlen(name);
    if (ends_with(name, n, "_failed"))
        return "error";
    for (size_t i = 0; i < sizeof warn_suffixes / sizeof warn_suffixes[0]; i++)
        if (ends_with(name, n, warn_suffixes[i]))
            return "warn";
    if (strcmp(name, "pool_failsafe") == 0 || strcmp(name, "audit_gap") == 0 ||
        strcmp(name, "state_unfinished_change") == 0)
        return "warn";
    if (extra && strcmp(name, "endpoint_health") == 0 &&
        (strstr(extra, "\"state\":\"down\"") || strstr(extra, "\"state\":\"ejected\"")))
        return "warn";
    return "info";
}

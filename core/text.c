/* text.c - small text formats. */
#include "core/text.h"

#include <stdarg.h>
#include <stdio.h>

size_t text_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

void text_status3(char *out, unsigned v)
{
    v %= 1000;
    out[0] = (char)('0' + v / 100);
    out[1] = (char)('0' + v / 10 % 10);
    out[2] = (char)('0' + v % 10);
    out[3] = '\0';
}

void text_percent(unsigned long h, char *buf, size_t cap)
{
    if (h % 100 == 0)
        snprintf(buf, cap, "%lu", h / 100);
    else if (h % 10 == 0)
        snprintf(buf, cap, "%lu.%lu", h / 100, (h % 100) / 10);
    else
        snprintf(buf, cap, "%lu.%02lu", h / 100, h % 100);
}

void text_error(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

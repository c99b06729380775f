/* text.c - small text formats. */
#include "core/text.h"

#include <stdarg.h>
#include <stdio.h>

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

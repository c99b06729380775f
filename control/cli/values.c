/* values.c - the values cutoverctl reads and prints: percentages (hundredths), durations, numbers,
 * --gate texts, weights objects. Pure (no I/O); jansson for the JSON values.
 */
#include "control/cli/values.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/text.h"

void *cli_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("cutoverctl: out of memory\n", stderr);
        exit(CLI_EXIT_UNREACH);
    }
    return p;
}

int cli_parse_pct(const char *s, long *out)
{
    long whole = 0, frac = 0;
    int nd = 0, nf = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        whole = whole * 10 + (*p - '0');
        if (whole > 100)
            return -1;
        p++;
        nd++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (++nf > 2)
                return -1;
            frac = frac * 10 + (*p - '0');
            p++;
        }
        if (nf == 0)
            return -1;
        if (nf == 1)
            frac *= 10;
    }
    if (*p == '%')
        p++;
    if (*p || nd == 0)
        return -1;
    long v = whole * 100 + frac;
    if (v > 10000)
        return -1;
    *out = v;
    return 0;
}

long long cli_parse_duration(const char *s)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0 && v <= 1e9)) /* before the conversion below; not NaN */
        return -1;
    double mul;
    if (!*end || !strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else
        return -1;
    return (long long)(v * mul + 0.5);
}

int cli_parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s)
        return -1;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

long cli_json_pct(const json_t *v)
{
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v) * 100.0;
    if (!(d >= 0 && d <= 1e11))
        return -1;
    return (long)(d + 0.5);
}

json_t *cli_pct_json(long h)
{
    if (h % 100 == 0)
        return json_integer(h / 100);
    return json_real((double)h / 100.0);
}

const char *cli_pct_str(long h, char *buf, size_t cap)
{
    if (h < 0)
        snprintf(buf, cap, "?");
    else
        text_percent((unsigned long)h, buf, cap);
    return buf;
}

const char *cli_weights_str(const json_t *w, char *buf, size_t cap)
{
    const char *k;
    json_t *v;
    size_t off = 0;
    buf[0] = 0;
    if (!json_is_object(w)) {
        snprintf(buf, cap, "?");
        return buf;
    }
    json_object_foreach((json_t *)w, k, v)
    {
        char p[32];
        int n = snprintf(buf + off, cap - off, "%s%s=%s%%", off ? " " : "", k,
                         cli_pct_str(cli_json_pct(v), p, sizeof p));
        if (n < 0 || (size_t)n >= cap - off)
            break;
        off += (size_t)n;
    }
    return buf;
}

int cli_weights_same(const json_t *a, const json_t *b)
{
    const char *k;
    json_t *v;
    if (!json_is_object(a) || !json_is_object(b) || json_object_size(a) != json_object_size(b))
        return 0;
    json_object_foreach((json_t *)a, k, v)
    {
        json_t *w = json_object_get(b, k);
        if (!w || cli_json_pct(v) != cli_json_pct(w))
            return 0;
    }
    return 1;
}

const char *cli_jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

int cli_parse_gate(const char *arg, json_t *gates, char *err, size_t cap)
{
    char s[64];
    size_t n = 0;
    for (const char *p = arg; *p; p++) {
        if (*p == ' ' || *p == '\t')
            continue;
        if (n + 1 >= sizeof s) {
            snprintf(err, cap, "--gate '%s' is too long", arg);
            return -1;
        }
        s[n++] = *p;
    }
    s[n] = 0;
    const char *key, *v;
    int is_5xx;
    if (!strncasecmp(s, "5xx<=", 5)) {
        key = "max_5xx_percent";
        is_5xx = 1;
        v = s + 5;
    } else if (!strncasecmp(s, "p99<=", 5)) {
        key = "max_p99_ms";
        is_5xx = 0;
        v = s + 5;
    } else {
        snprintf(err, cap,
                 "--gate '%s': expected 5xx<=PERCENT%% (e.g. 5xx<=1%%) or p99<=DURATION (e.g. "
                 "p99<=500ms, p99<=2s)",
                 arg);
        return -1;
    }
    char *end;
    errno = 0;
    double x = (*v >= '0' && *v <= '9') || *v == '.' ? strtod(v, &end) : -1;
    if (x < 0 || errno || end == v) {
        snprintf(err, cap, "--gate '%s': the limit is not a number", arg);
        return -1;
    }
    if (is_5xx) {
        if (strcmp(end, "%")) {
            snprintf(err, cap,
                     "--gate '%s': the 5xx limit is a percentage and needs '%%' (5xx<=1%%)", arg);
            return -1;
        }
        if (x > 100) {
            snprintf(err, cap, "--gate '%s': the 5xx limit must be 0..100%%", arg);
            return -1;
        }
    } else {
        if (!strcasecmp(end, "s"))
            x *= 1000;
        else if (strcasecmp(end, "ms")) {
            snprintf(err, cap, "--gate '%s': the p99 limit needs a unit, ms or s (p99<=500ms)",
                     arg);
            return -1;
        }
        /* the server takes whole milliseconds, 1..600000 */
        if (!(x >= 1 && x <= 600000) || x != (double)(long long)x) {
            snprintf(err, cap, "--gate '%s': the p99 limit must be whole milliseconds, 1ms..600s",
                     arg);
            return -1;
        }
    }
    if (json_object_get(gates, key)) {
        snprintf(err, cap, "--gate '%s': a %s gate is already given", arg, is_5xx ? "5xx" : "p99");
        return -1;
    }
    if (is_5xx)
        json_object_set_new(gates, key, json_real(x));
    else
        json_object_set_new(gates, key, json_integer((json_int_t)x));
    return 0;
}

/* etcd_codec.c - the gateway's encodings (etcd_codec.h): base64, prefix range ends, decimal-string
 * integers. Pure: no I/O, no state.
 */
#include "control/etcd_codec.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *etcd_codec_b64(const void *data, size_t n)
{
    const unsigned char *p = data;
    char *out = malloc((n + 2) / 3 * 4 + 1), *q = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *q++ = B64[v >> 18];
        *q++ = B64[(v >> 12) & 63];
        *q++ = B64[(v >> 6) & 63];
        *q++ = B64[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        *q++ = B64[v >> 18];
        *q++ = B64[(v >> 12) & 63];
        *q++ = '=';
        *q++ = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        *q++ = B64[v >> 18];
        *q++ = B64[(v >> 12) & 63];
        *q++ = B64[(v >> 6) & 63];
        *q++ = '=';
    }
    *q = '\0';
    return out;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int etcd_codec_unb64(const char *s, char **out, size_t *len)
{
    size_t n = strlen(s);
    *out = NULL;
    *len = 0;
    if (n % 4 != 0)
        return CUT_EINVAL;
    size_t pad = 0;
    if (n >= 1 && s[n - 1] == '=')
        pad++;
    if (n >= 2 && s[n - 2] == '=')
        pad++;
    char *o = malloc(n / 4 * 3 + 1);
    if (!o)
        return CUT_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int v[4];
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)s[i + j];
            if (c == '=' && last && (size_t)j >= 4 - pad) {
                v[j] = 0;
                continue;
            }
            if ((v[j] = b64_value(c)) < 0) {
                free(o);
                return CUT_EINVAL;
            }
        }
        unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 |
                     (unsigned)v[3];
        o[k++] = (char)(x >> 16);
        if (!(last && pad == 2))
            o[k++] = (char)((x >> 8) & 0xff);
        if (!(last && pad >= 1))
            o[k++] = (char)(x & 0xff);
    }
    o[k] = '\0';
    *out = o;
    *len = k;
    return 0;
}

char *etcd_codec_prefix_end(const char *prefix)
{
    size_t n = strlen(prefix);
    while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
        n--;
    if (n == 0)
        return strdup(""); /* "\0": every key */
    char *out = strndup(prefix, n);
    if (out)
        out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    return out;
}

int etcd_codec_int(const json_t *o, const char *key, int64_t *out)
{
    *out = 0;
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return CUT_EINVAL;
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return CUT_EINVAL;
    const char *s = json_string_value(v);
    if (!*s || json_string_length(v) > 19)
        return CUT_EINVAL;
    int64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return CUT_EINVAL;
        if (x > (INT64_MAX - (*s - '0')) / 10)
            return CUT_EINVAL;
        x = x * 10 + (*s - '0');
    }
    *out = x;
    return 0;
}

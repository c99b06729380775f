/* cut.c - project-wide helpers. */
#include "core/cut.h"

#include <stdint.h>
#include <string.h>

int cut_slice_ieq(struct cut_slice s, const char *lower)
{
    size_t i;
    for (i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (lower[i] == '\0' || c != (unsigned char)lower[i])
            return 0;
    }
    return lower[i] == '\0';
}

void cut_lower_copy(char *dst, const char *src, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, src + i, 8);
        uint64_t low7 = x & ~highs;                  /* each byte's low seven bits */
        uint64_t ge_a = low7 + ones * (0x80 - 'A');  /* high bit: low7 >= 'A' */
        uint64_t gt_z = low7 + ones * (0x7f - 'Z');  /* high bit: low7 > 'Z' */
        uint64_t upper = (ge_a ^ gt_z) & ~x & highs; /* 'A'..'Z', and ASCII */
        x |= upper >> 2;                             /* 0x80 >> 2 = 0x20 */
        memcpy(dst + i, &x, 8);
    }
    for (; i < n; i++) {
        char c = src[i];
        dst[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
}

const char *cut_strerror(int code)
{
    switch (code) {
    case CUT_OK: return "ok";
    case CUT_EAGAIN: return "need more data";
    case CUT_EPROTO: return "protocol error";
    case CUT_ENOMEM: return "out of memory";
    case CUT_ELIMIT: return "limit exceeded";
    case CUT_EINVAL: return "invalid argument";
    case CUT_EIO: return "i/o error";
    case CUT_ENOENT: return "not found";
    case CUT_ETIMEDOUT: return "timed out";
    case CUT_ECONN: return "connection failed";
    case CUT_EUNAVAIL: return "no endpoint available";
    case CUT_ETLS: return "TLS handshake failed";
    default: return "unknown error";
    }
}

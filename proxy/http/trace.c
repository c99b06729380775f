/* trace.c - W3C traceparent: check and make (trace.h). */
#include "proxy/http/trace.h"

#include <string.h>

/* Lower-case hex digits only: the specification forbids upper case. Returns 1 when p[0..n) are
 * all hex, and sets *nonzero when one of them is not '0'. */
static int lower_hex(const char *p, size_t n, int *nonzero)
{
    int nz = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        nz |= c != '0';
    }
    if (nonzero)
        *nonzero = nz;
    return 1;
}

int trace_parent_ok(struct cut_slice v)
{
    int nz;
    if (v.n < TRACE_PARENT_LEN || !v.p)
        return 0;
    const char *p = v.p;
    if (!lower_hex(p, 2, NULL) || (p[0] == 'f' && p[1] == 'f'))
        return 0;
    int v00 = p[0] == '0' && p[1] == '0';
    if (v00 ? v.n != TRACE_PARENT_LEN : (v.n > TRACE_PARENT_LEN && p[55] != '-'))
        return 0;
    if (p[2] != '-' || p[35] != '-' || p[52] != '-')
        return 0;
    if (!lower_hex(p + 3, 32, &nz) || !nz)
        return 0;
    if (!lower_hex(p + 36, 16, &nz) || !nz)
        return 0;
    return lower_hex(p + 53, 2, NULL);
}

static void put_hex(char *out, uint64_t x)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[x & 15];
        x >>= 4;
    }
}

void trace_parent_make(char *out, uint64_t r0, uint64_t r1, uint64_t r2)
{
    if ((r0 | r1) == 0)
        r1 = 1;
    if (r2 == 0)
        r2 = 1;
    memcpy(out, "00-", 3);
    put_hex(out + 3, r0);
    put_hex(out + 19, r1);
    out[35] = '-';
    put_hex(out + 36, r2);
    memcpy(out + 52, "-01", 4); /* and the NUL */
}

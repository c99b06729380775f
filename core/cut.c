/* cut.c - project-wide helpers. */
#include "core/cut.h"

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

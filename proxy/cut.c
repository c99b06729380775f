/* cut.c - project-wide helpers. */
#include "cut.h"

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

/* chunked.c - chunked transfer coding decoder over evbuffers. */
#include "proxy/http/chunked.h"

#include <event2/buffer.h>

#include "core/cut.h"

#define CHUNKED_SIZE_LINE_MAX 4100 /* h1_parse_chunk_size refuses longer lines */

int chunked_step(struct chunked *d, struct evbuffer *in, struct evbuffer *out,
                 const struct h1_limits *lim, struct http_field *tr, unsigned max_tr,
                 unsigned *ntr, size_t *moved, size_t *trailer_len, size_t *framing_bytes)
{
    *moved = 0;
    *trailer_len = 0;
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            return CHUNKED_NEED_MORE;
        switch (d->state) {
        case CHUNKED_SIZE: {
            size_t look = len < CHUNKED_SIZE_LINE_MAX ? len : CHUNKED_SIZE_LINE_MAX;
            const char *p = (const char *)evbuffer_pullup(in, (ssize_t)look);
            uint64_t size;
            int n = h1_parse_chunk_size(p, look, &size);
            if (n == CUT_EAGAIN)
                return CHUNKED_NEED_MORE;
            if (n < 0)
                return CUT_EPROTO;
            evbuffer_drain(in, (size_t)n);
            *framing_bytes += (size_t)n;
            d->remaining = size;
            d->state = size ? CHUNKED_DATA : CHUNKED_TRAILERS;
            break;
        }
        case CHUNKED_DATA: {
            size_t n = len < d->remaining ? len : (size_t)d->remaining;
            evbuffer_remove_buffer(in, out, n);
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = CHUNKED_CRLF;
            *moved = n;
            return CHUNKED_MOVED;
        }
        case CHUNKED_CRLF: {
            if (len < 2)
                return CHUNKED_NEED_MORE;
            const char *p = (const char *)evbuffer_pullup(in, 2);
            if (p[0] != '\r' || p[1] != '\n')
                return CUT_EPROTO;
            evbuffer_drain(in, 2);
            *framing_bytes += 2;
            d->state = CHUNKED_SIZE;
            break;
        }
        case CHUNKED_TRAILERS: {
            size_t look = len < lim->max_head + 1 ? len : lim->max_head + 1;
            const char *p = (const char *)evbuffer_pullup(in, (ssize_t)look);
            int n = h1_parse_trailers(p, look, lim, tr, max_tr, ntr);
            if (n == CUT_EAGAIN)
                return CHUNKED_NEED_MORE;
            if (n < 0)
                return CUT_EPROTO;
            *trailer_len = (size_t)n;
            return CHUNKED_DONE;
        }
        }
    }
}

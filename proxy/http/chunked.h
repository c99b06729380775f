/* chunked.h - the chunked transfer coding (RFC 9112 section 7.1), decoded from an evbuffer.
 *
 * One decoder serves both directions (request bodies from clients, response bodies from
 * upstreams). Chunk data moves to the output buffer by chain where it can (no copy for large
 * chunks); chunk-size lines and the trailer section are parsed by the pure h1_parse functions.
 * Worker thread; the state is the caller's.
 */
#ifndef CUT_CHUNKED_H
#define CUT_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/http/h1_parse.h"

struct evbuffer;

enum chunked_state { CHUNKED_SIZE = 0, CHUNKED_DATA, CHUNKED_CRLF, CHUNKED_TRAILERS };

struct chunked {
    enum chunked_state state;
    uint64_t remaining; /* data bytes left in the current chunk */
};

enum {
    CHUNKED_NEED_MORE = 0, /* everything available was consumed */
    CHUNKED_MOVED = 1,     /* data bytes were appended to out (*moved says how many) */
    CHUNKED_DONE = 2       /* the last chunk and the trailers: *trailer_len bytes at the front
                              of in hold the trailer section, parsed into tr/ntr; the caller
                              drains them once it no longer needs the slices */
};

static inline void chunked_init(struct chunked *d)
{
    d->state = CHUNKED_SIZE;
    d->remaining = 0;
}

/* Decodes as much of in as possible, stopping after data was moved (so the caller can forward
 * it and apply flow control) or at the end. Returns a CHUNKED_* value or CUT_EPROTO (bad size
 * line, missing CRLF after data, bad trailers). */
int chunked_step(struct chunked *d, struct evbuffer *in, struct evbuffer *out,
                 const struct h1_limits *lim, struct http_field *tr, unsigned max_tr,
                 unsigned *ntr, size_t *moved, size_t *trailer_len, size_t *framing_bytes);

#endif

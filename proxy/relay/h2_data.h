/* h2_data.h - one HTTP/2 DATA frame written without a copy into nghttp2's frame buffer: the
 * body of a send_data_callback (NGHTTP2_DATA_FLAG_NO_COPY), shared by the client side
 * (h2_stream.c, response bodies) and the upstream side (upstream_h2.c, request bodies). */
#ifndef CUT_RELAY_H2_DATA_H
#define CUT_RELAY_H2_DATA_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Appends to out the 9-byte frame header nghttp2 made (framehd), the pad length byte when the
 * frame is padded (padlen: nghttp2's data.padlen, the byte included), len bytes moved from the
 * front of payload (which holds at least len), and the padding. 0, or -1 when a buffer could
 * not grow (out may then hold part of the frame: the caller fails the session). */
int h2_data_write(struct evbuffer *out, const uint8_t *framehd, size_t padlen,
                  struct evbuffer *payload, size_t len);

#endif

/* h2_data.c - DATA frames written straight into a socket's output (see h2_data.h). */
#include "proxy/relay/h2_data.h"

#include <event2/buffer.h>

int h2_data_write(struct evbuffer *out, const uint8_t *framehd, size_t padlen,
                  struct evbuffer *payload, size_t len)
{
    static const uint8_t zeros[256];
    if (evbuffer_add(out, framehd, 9) != 0)
        return -1;
    if (padlen) {
        uint8_t n = (uint8_t)(padlen - 1);
        if (evbuffer_add(out, &n, 1) != 0)
            return -1;
    }
    if (len && evbuffer_remove_buffer(payload, out, len) != (int)len)
        return -1;
    if (padlen > 1 && evbuffer_add(out, zeros, padlen - 1) != 0)
        return -1;
    return 0;
}

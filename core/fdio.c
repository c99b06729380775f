/* fdio.c - whole-buffer writes. */
#include "core/fdio.h"

#include <errno.h>
#include <unistd.h>

#include "core/cut.h"

int fdio_write_all(int fd, const void *p, size_t n, size_t *written)
{
    const char *q = p;
    size_t done = 0;
    int rc = 0;
    while (done < n) {
        ssize_t w = write(fd, q + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            rc = CUT_EIO;
            break;
        }
        done += (size_t)w;
    }
    if (written)
        *written = done;
    return rc;
}

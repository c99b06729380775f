/* fdio.h - writing a whole buffer to a blocking file descriptor (state file, audit log). Any
 * thread; the caller owns fd. */
#ifndef CUT_FDIO_H
#define CUT_FDIO_H

#include <stddef.h>

/* Writes all n bytes of p to fd, retrying on EINTR and short writes. Returns 0, or CUT_EIO
 * (errno tells why). *written (may be NULL) says how many bytes reached the file either way. */
int fdio_write_all(int fd, const void *p, size_t n, size_t *written);

#endif

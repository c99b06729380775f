/* Unit tests for core/fdio.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cut.h"
#include "core/fdio.h"

Test(fdio, writes_everything)
{
    char path[] = "/tmp/cutover-fdio-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    static char big[1 << 20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    size_t written = 0;
    cr_assert_eq(fdio_write_all(fd, big, sizeof big, &written), 0);
    cr_assert_eq(written, sizeof big);
    cr_assert_eq(lseek(fd, 0, SEEK_END), (off_t)sizeof big);
    cr_assert_eq(fdio_write_all(fd, "x", 1, NULL), 0);
    close(fd);
}

Test(fdio, reports_failure)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[0]); /* no reader: EPIPE (SIGPIPE ignored below) */
    signal(SIGPIPE, SIG_IGN);
    size_t written = 7;
    cr_assert_eq(fdio_write_all(p[1], "abc", 3, &written), CUT_EIO);
    cr_assert_eq(errno, EPIPE);
    cr_assert_eq(written, 0);
    close(p[1]);
    cr_assert_eq(fdio_write_all(-1, "abc", 3, NULL), CUT_EIO);
    cr_assert_eq(errno, EBADF);
}

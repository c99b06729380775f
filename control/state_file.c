/* state_file.c - the runtime state on disk (see state_file.h): written durably, read back
 * strictly (control/state.c has the format). */
#include "control/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cut.h"
#include "core/fdio.h"
#include "core/text.h"

#define STATE_MAX_FILE (64u * 1024 * 1024) /* a state file larger than this is not ours */

/* The directory holding path, into dir[cap]. */
static void dir_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, cap, ".");
    else if (slash == path)
        snprintf(dir, cap, "/");
    else
        snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

int state_file_save(const char *path, const struct state *st, char *err, size_t cap)
{
    /* Route names are object keys: a duplicate would silently drop a route from the file. */
    for (size_t i = 0; i < st->nroutes; i++)
        for (size_t k = 0; k < i; k++)
            if (strncmp(st->routes[i].name, st->routes[k].name, STATE_MAX_NAME) == 0) {
                text_error(err, cap,
                        "state %s: refusing to write an invalid state: routes.%.*s: "
                        "duplicate route name",
                        path, STATE_MAX_NAME, st->routes[i].name);
                return CUT_EINVAL;
            }
    char *text = state_to_json(st);
    if (text == NULL) {
        text_error(err, cap, "state %s: cannot serialise the state (out of memory)", path);
        return CUT_ENOMEM;
    }

    /* Never write what state_file_load would refuse: start-up would then stop on it. */
    struct state check;
    char why[512];
    int rc = state_from_json(text, strlen(text), &check, why, sizeof why);
    state_dispose(&check);
    if (rc != 0) {
        text_error(err, cap, "state %s: refusing to write an invalid state: %s", path, why);
        free(text);
        return rc;
    }

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    char *dir = malloc(plen + 2);
    if (tmp == NULL || dir == NULL) {
        free(text);
        free(tmp);
        free(dir);
        text_error(err, cap, "state %s: out of memory", path);
        return CUT_ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    dir_of(path, dir, plen + 2);

    size_t tlen = strlen(text);
    const char *step;
    int fd = -1, dfd = -1;
    rc = CUT_EIO;

    step = "open";
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        goto fail_noent;
    step = "write";
    if (fdio_write_all(fd, text, tlen, NULL) != 0 || fdio_write_all(fd, "\n", 1, NULL) != 0)
        goto fail;
    step = "fsync";
    if (fsync(fd) != 0)
        goto fail;
    step = "close";
    {
        int c = close(fd);
        fd = -1;
        if (c != 0)
            goto fail;
    }
    step = "rename";
    if (rename(tmp, path) != 0)
        goto fail;

    /* The new file is in place; make its directory entry durable. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        text_error(err, cap, "state %s: open directory %s: %s", path, dir, strerror(errno));
        goto done;
    }
    if (fsync(dfd) != 0) {
        text_error(err, cap, "state %s: fsync directory %s: %s", path, dir, strerror(errno));
        close(dfd);
        goto done;
    }
    if (close(dfd) != 0) {
        text_error(err, cap, "state %s: close directory %s: %s", path, dir, strerror(errno));
        goto done;
    }
    rc = 0;
    goto done;

fail : {
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = e;
}
fail_noent:
    text_error(err, cap, "state %s: %s %s: %s", path, step, tmp, strerror(errno));
done:
    free(text);
    free(tmp);
    free(dir);
    return rc;
}

int state_file_load(const char *path, struct state *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        text_error(err, cap, "state %s: open: %s", path, strerror(e));
        return e == ENOENT ? CUT_ENOENT : CUT_EIO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        text_error(err, cap, "state %s: fstat: %s", path, strerror(errno));
        close(fd);
        return CUT_EIO;
    }
    if (!S_ISREG(sb.st_mode)) {
        text_error(err, cap, "state %s: not a regular file", path);
        close(fd);
        return CUT_EINVAL;
    }
    if (sb.st_size > (off_t)STATE_MAX_FILE) {
        text_error(err, cap, "state %s: too large (%lld bytes, at most %u)", path,
                (long long)sb.st_size, STATE_MAX_FILE);
        close(fd);
        return CUT_EINVAL;
    }

    /* Read to end of file (the size is a hint: read one more byte to see the end). */
    size_t want = (size_t)sb.st_size + 1, len = 0;
    char *buf = malloc(want + 1);
    if (buf == NULL) {
        text_error(err, cap, "state %s: out of memory", path);
        close(fd);
        return CUT_ENOMEM;
    }
    for (;;) {
        if (len == want) {
            if (want > STATE_MAX_FILE) {
                text_error(err, cap, "state %s: too large (more than %u bytes)", path, STATE_MAX_FILE);
                free(buf);
                close(fd);
                return CUT_EINVAL;
            }
            char *nb = realloc(buf, want * 2 + 1);
            if (nb == NULL) {
                text_error(err, cap, "state %s: out of memory", path);
                free(buf);
                close(fd);
                return CUT_ENOMEM;
            }
            buf = nb;
            want *= 2;
        }
        ssize_t r = read(fd, buf + len, want - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            text_error(err, cap, "state %s: read: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return CUT_EIO;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd); /* read-only: nothing to lose */
    buf[len] = '\0';

    char why[1024];
    int rc = state_from_json(buf, len, out, why, sizeof why);
    free(buf);
    if (rc != 0)
        text_error(err, cap, "state %s: %s", path, why);
    return rc;
}

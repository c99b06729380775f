/* instance.c - the single-instance locks (see instance.h). */
#include "control/instance.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/cfg.h"

#define INSTANCE_MAX_LOCKS 3

struct instance {
    int fds[INSTANCE_MAX_LOCKS];
    size_t n;
};

void instance_free(struct instance *in)
{
    if (in == NULL)
        return;
    for (size_t i = 0; i < in->n; i++)
        close(in->fds[i]);
    free(in);
}

int instance_socket_live(const char *path)
{
    struct stat sb;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (stat(path, &sb) != 0 || !S_ISSOCK(sb.st_mode) || strlen(path) >= sizeof sa.sun_path)
        return 0;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    /* A listening socket accepts into its backlog at once; a stale one is refused. */
    int live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EAGAIN;
    close(fd);
    return live;
}

/* Locks path.lock for what (a config key, for the message). Returns the fd or -1 with err. */
static int lock_one(const char *path, const char *what, char *err, size_t cap)
{
    char lock[4200];
    if ((size_t)snprintf(lock, sizeof lock, "%s.lock", path) >= sizeof lock) {
        snprintf(err, cap, "%s: path too long", what);
        return -1;
    }
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, cap, "%s: cannot open the lock file %s: %s", what, lock, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t got = pread(fd, pid, sizeof pid - 1, 0);
        if (got > 0) {
            pid[got] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
        }
        char who[48] = "";
        if (pid[0])
            snprintf(who, sizeof who, " (pid %.20s)", pid);
        if (e == EWOULDBLOCK)
            snprintf(err, cap,
                     "another cutover%s is running with this %s (%s is locked by it); refusing "
                     "to start a second instance on the same state",
                     who, what, lock);
        else
            snprintf(err, cap, "%s: cannot lock %s: %s", what, lock, strerror(e));
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        snprintf(err, cap, "%s: cannot write the lock file %s: %s", what, lock, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

struct instance *instance_acquire(const struct cfg *cfg, char *err, size_t cap)
{
    struct instance *in = calloc(1, sizeof *in);
    if (in == NULL) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    const struct {
        const char *path, *what;
    } paths[INSTANCE_MAX_LOCKS] = {
        {cfg->control.state_file, "control.state_file"},
        {cfg->control.socket, "control.socket"},
        {cfg->control.audit_file, "control.audit_file"},
    };
    for (size_t i = 0; i < INSTANCE_MAX_LOCKS; i++) {
        if (paths[i].path == NULL)
            continue;
        int fd = lock_one(paths[i].path, paths[i].what, err, cap);
        if (fd < 0) {
            instance_free(in);
            return NULL;
        }
        in->fds[in->n++] = fd;
    }
    /* Held the socket's lock: a live socket now belongs to a process of another version or one
     * that locks elsewhere; never take it over. */
    if (cfg->control.socket && instance_socket_live(cfg->control.socket)) {
        snprintf(err, cap,
                 "control.socket: %s is in use by a live process; refusing to start a second "
                 "instance (stop the other one, or configure another socket)",
                 cfg->control.socket);
        instance_free(in);
        return NULL;
    }
    return in;
}

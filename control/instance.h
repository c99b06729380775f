/* instance.h - one cutover per state: a second process started with the same state file,
 * control socket or audit file refuses to start instead of sharing the listeners
 * (SO_REUSEPORT) and taking over the control socket.
 *
 * Each configured path gets a lock file beside it (PATH.lock) holding an exclusive flock() for
 * the life of the process (the kernel drops it when the process dies, kill -9 included; the
 * file itself stays and is harmless). The control socket is also probed: a socket that accepts
 * a connection belongs to a live process and is never unlinked. Taken before the listeners are
 * opened, so a refused second process never accepts a connection.
 * Main thread, at start-up.
 */
#ifndef CUT_INSTANCE_H
#define CUT_INSTANCE_H

#include <stddef.h>

struct cfg;
struct instance;

/* Takes the locks for cfg's control.state_file, control.socket and control.audit_file (those
 * configured). Returns the held locks (release with instance_free), or NULL with a message in
 * err naming the path and, when it can tell, the pid of the process that holds it. */
struct instance *instance_acquire(const struct cfg *cfg, char *err, size_t cap);

/* Releases the locks (the lock files stay). NULL does nothing. */
void instance_free(struct instance *in);

/* 1 when a process accepts connections on the Unix socket at path, 0 otherwise (no file, not
 * a socket, nobody listening). */
int instance_socket_live(const char *path);

#endif

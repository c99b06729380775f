/* ctlsock.h - the control socket: a Unix stream socket on the control thread's event base,
 * newline-delimited JSON requests, peer credentials from the kernel (SO_PEERCRED), and limits
 * so that a slow or silent client never blocks anything. Control thread only.
 */
#ifndef CUT_CTLSOCK_H
#define CUT_CTLSOCK_H

#include <stddef.h>

struct ctl;
struct ctlsock;

#define CTLSOCK_MAX_LINE 65536
#define CTLSOCK_IDLE_MS 60000
#define CTLSOCK_MAX_OUT (4u << 20)

/* Creates the socket at ctl's configured path (a stale socket file there is replaced; any other
 * kind of file is an error), sets its mode and group, and starts listening. NULL with err set on
 * failure. */
struct ctlsock *ctlsock_new(struct ctl *c, char *err, size_t cap);

/* Closes every client and the socket, and removes the socket file. NULL is fine. */
void ctlsock_free(struct ctlsock *s);

#endif

/* admin.h - the HTTPS admin API: the control protocol over HTTP/1.1 with mutual TLS, for
 * pipelines that cannot reach the control socket (docs/control-protocol.md, "HTTPS transport").
 *
 * It runs on the control thread's event base, next to the control socket, and hands every
 * request to commands_handle() with the verified client certificate's subject as the actor and
 * the role admin.roles gives that subject. Limits keep a slow, silent or hostile client from
 * holding anything: admin.max_clients connections (a few more are answered 503 busy, the rest
 * closed at once), admin.request_timeout_ms for the handshake plus each request and for writing
 * each reply, admin.idle_timeout_ms between requests, a 16 KiB request head and a 64 KiB body.
 *
 * Certificates: new connections use ctl->admin_tls as it is when they are accepted (ctl.c builds
 * and rotates it like a listener's contexts); open connections keep the material they started
 * with. Control thread only.
 */
#ifndef CUT_ADMIN_H
#define CUT_ADMIN_H

#include <stddef.h>

struct ctl;
struct admin;

/* Binds and listens on the configuration's admin.address (c->hold->cfg->admin must have one).
 * c is borrowed and must outlive the server. Returns NULL with a one-line reason in err
 * ("admin.address 127.0.0.1:9443: Address already in use"). */
struct admin *admin_new(struct ctl *c, char *err, size_t cap);

/* Closes every connection and the listening socket. NULL is fine. */
void admin_free(struct admin *a);

#endif

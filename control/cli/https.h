/* https.h - the HTTPS admin API replicas: the client TLS context (mutual TLS), the
 * non-blocking handshake, POST /v1/control and the HTTP/1.1 response (proxy/http/h1_parse.h).
 * cutoverctl only; single-threaded.
 */
#ifndef CUT_CLI_HTTPS_H
#define CUT_CLI_HTTPS_H

#include "control/cli/cli.h"

/* Starts a replica's HTTPS exchange: a non-blocking connect to its address (or the failure of
 * a name that did not resolve). */
void cli_https_start(struct cli *c, struct cli_replica *r);

/* Runs a replica's HTTPS exchange as far as it goes without blocking. */
void cli_https_step(struct cli *c, struct cli_replica *r, const char *id);

/* The HTTP request carrying one control request (body[0..blen), JSON) into r->out. */
void cli_https_request(struct cli_replica *r, const char *body, size_t blen);

/* The client TLS context for the admin API: TLS 1.2+, the server verified against --cacert (or
 * the system's CAs), the client certificate presented. Returns 0 or a usage exit code. */
int cli_tls_setup(struct cli *c);
#endif

/* tls.h - immutable, refcounted TLS server contexts built from a listener's "tls" configuration.
 *
 * A struct tls_ctx holds one OpenSSL SSL_CTX per configured certificate (the first is the
 * default: no SNI, or no SAN matches), all with the same settings: TLS 1.2 and 1.3 only, ECDHE
 * with AES-GCM or ChaCha20 for 1.2, session tickets, the full chain served, client certificate
 * verification against the CA bundle (+ CRL) when configured, ALPN from the configured list.
 *
 * tls_ctx_new() reads the files and validates the material (each key matches its certificate,
 * the leaf is inside its validity period, the chain in the file verifies up to its last
 * certificate, the CA bundle and the CRL parse) and refuses the whole listener on the first
 * problem, with a message: the caller keeps the old context serving.
 *
 * Threads: built on the control thread (file I/O); once built it is never modified, so every
 * worker may create SSL objects from it concurrently. The count is atomic. An SSL object made by
 * tls_ssl_new() holds its own reference (released by tls_ssl_free()), so open connections keep
 * the material they started with after a rotation.
 */
#ifndef CUT_TLS_H
#define CUT_TLS_H

#include <stddef.h>

struct cfg_tls;
struct cfg_upstream_tls;
struct tls_ctx;
struct tls_client;
typedef struct ssl_st SSL;

/* Builds the contexts for one listener. cfg is borrowed (everything needed is copied). Returns
 * 0 and sets *out (one reference, the caller's), or CUT_EINVAL / CUT_EIO / CUT_ENOMEM with a
 * one-line reason in err ("certificates[1]: the key does not match the certificate"). */
int tls_ctx_new(const struct cfg_tls *cfg, struct tls_ctx **out, char *err, size_t cap);

/* Whether path changed since the material in use was built (for tls_*_renew's *applied). */
typedef int (*tls_changed_fn)(void *ctx, const char *path);

/* A rotation (the same configuration, changed files): like tls_ctx_new, but each piece that does
 * not load (certificate pair i, the client CA bundle, the CRL) is taken from prev, the context in
 * use, instead of failing the whole, so a bad piece never blocks a good one (a new CRL takes
 * effect while a broken key pair keeps the previous certificate serving). Each piece kept is
 * named in kept ("certificates[0]: the private key does not match ...; the previous certificate
 * and key stays in use", one per line; "" when none). *applied (may be NULL) counts the pieces
 * loaded from a file that changed (changed(cctx, path)). prev NULL: exactly tls_ctx_new. Returns
 * as tls_ctx_new: an error only when a piece failed that prev cannot supply. Control thread. */
int tls_ctx_renew(const struct cfg_tls *cfg, const struct tls_ctx *prev, tls_changed_fn changed,
                  void *cctx, struct tls_ctx **out, char *kept, size_t kcap, unsigned *applied,
                  char *err, size_t cap);

/* Atomic reference counting; any thread. NULL is ignored. */
void tls_ctx_ref(struct tls_ctx *t);
void tls_ctx_unref(struct tls_ctx *t);

/* Writes a JSON array describing the certificates ([{"subject":..,"not_after":..,"serial":..,
 * "names":[..]}]) into buf (always terminated). Returns the length written. Any thread. */
size_t tls_ctx_describe(const struct tls_ctx *t, char *buf, size_t cap);

/* Certificate i's subject (RFC 2253) and expiry (seconds since the epoch); any thread. */
size_t tls_ctx_ncerts(const struct tls_ctx *t);
const char *tls_ctx_cert_info(const struct tls_ctx *t, size_t i, long long *not_after_s);

/* A new server-side SSL object for an accepted connection (not yet bound to a socket), holding
 * a reference on t until tls_ssl_free(). NULL when out of memory. Worker thread. */
SSL *tls_ssl_new(struct tls_ctx *t);
void tls_ssl_free(SSL *ssl);

/* For an SSL object from tls_ssl_new() that another owner frees with SSL_free() (a libevent
 * bufferevent_openssl with BEV_OPT_CLOSE_ON_FREE): drops the reference it holds on its tls_ctx,
 * without freeing the SSL. Call it once, when no handshake will run on it any more (the SSL keeps
 * its own reference on the OpenSSL context, so it stays usable until freed). */
void tls_ssl_detach(SSL *ssl);

/* After the handshake: the negotiated ALPN protocol ("h2", "http/1.1") or NULL when none was
 * negotiated (the client offered no ALPN: HTTP/1.1). Static strings. */
const char *tls_ssl_alpn(SSL *ssl);

/* After the handshake: the verified client certificate's subject (RFC 2253) into buf, or ""
 * when the client presented none. Returns the length. */
size_t tls_ssl_peer_subject(SSL *ssl, char *buf, size_t cap);

/* ---- upstream (client) side ---------------------------------------------------------------------
 * One struct tls_client per pool with a "tls" object, built on the control thread like the server
 * contexts (same validation of the client certificate; the CA bundle and CRL must load), then
 * immutable and refcounted; an SSL object made from it holds a reference. The upstream's
 * certificate is always verified: chain to the CA bundle (+ CRL), and the name: server_name, or
 * the endpoint's host (a DNS name is also sent as SNI; an IP literal must be an IP SAN). */

/* proto: enum cfg_up_proto (ALPN offered: h2 for h2, else http/1.1), or TLS_CLIENT_NO_ALPN. */
#define TLS_CLIENT_NO_ALPN (-1)
int tls_client_new(const struct cfg_upstream_tls *cfg, int proto, struct tls_client **out,
                   char *err, size_t cap);
/* The same for a rotation of an upstream's material (CA bundle, CRL, client certificate):
 * see tls_ctx_renew. */
int tls_client_renew(const struct cfg_upstream_tls *cfg, int proto, const struct tls_client *prev,
                     tls_changed_fn changed, void *cctx, struct tls_client **out, char *kept,
                     size_t kcap, unsigned *applied, char *err, size_t cap);
void tls_client_ref(struct tls_client *tc);
void tls_client_unref(struct tls_client *tc);
/* The client certificate's subject, "" when none is configured. */
const char *tls_client_subject(const struct tls_client *tc);
/* The same, with its expiry (seconds since the epoch; 0 when none). */
const char *tls_client_cert_info(const struct tls_client *tc, long long *not_after_s);

/* A client SSL for a connection to host (the endpoint's host part), resuming session when not
 * NULL (an SSL_SESSION from tls_ssl_take_session). NULL when out of memory. Worker thread. */
SSL *tls_client_ssl_new(struct tls_client *tc, const char *host, void *session);

/* The session of an established client connection, for resumption by the next one (one
 * reference, released with tls_session_free), or NULL. */
void *tls_ssl_take_session(SSL *ssl);
void tls_session_free(void *session);
int tls_ssl_resumed(SSL *ssl);

/* After a handshake refused because the client certificate did not verify: that certificate's
 * subject (RFC 2253) into buf, or "" when none was presented or it verified. Returns the length. */
size_t tls_ssl_rejected_subject(SSL *ssl, char *buf, size_t cap);

/* Why a handshake failed, for logs ("certificate verification failed: ..."). */
size_t tls_ssl_failure(SSL *ssl, char *buf, size_t cap);

#endif

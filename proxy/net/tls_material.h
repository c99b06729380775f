/* tls_material.h - private to proxy/net/tls.c and tls_material.c: certificate material (PEM files,
 * certificate pairs, CA bundles and CRLs) and a rotation's bookkeeping, for the contexts tls.c
 * builds. Nothing outside proxy/net/tls*.c includes it.
 *
 * Control thread only (file I/O). Every message goes into a caller's buffer (err/why, cap bytes).
 */
#ifndef CUT_TLS_MATERIAL_H
#define CUT_TLS_MATERIAL_H

#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/net/tls.h"

struct cfg_tls_cert;

#define TLS_MAX_NAMES 64
#define TLS_NAME_MAX 256

/* One certificate in use: its context and its description (for SNI and tls_ctx_describe). */
struct tls_cert {
    SSL_CTX *ctx;
    char names[TLS_MAX_NAMES][TLS_NAME_MAX]; /* lower-case SAN DNS names (or the CN) */
    unsigned nnames;
    char subject[512];
    char not_after[32];
    long long not_after_s; /* seconds since the epoch; 0 when unknown */
    char serial[96];
};

/* A rotation (tls_ctx_renew, tls_client_renew): the context in use, whose pieces stand in for
 * the ones that do not load, and what the rebuild did. NULL at start-up and on reload, where
 * every piece must load. */
struct tls_renew {
    SSL_CTX *prev;            /* the context in use (its store, certificate and key) */
    const struct tls_cert *prev_desc;
    char *kept;               /* one "label: reason; the previous ... stays in use" per line */
    size_t kcap;
    tls_changed_fn changed;   /* which files changed since the context in use was built */
    void *ctx;
    unsigned applied;         /* pieces loaded from a changed file */
};


/* OpenSSL's last error as text into buf ("no details" when none); clears the error queue. */
void tls_material_ssl_reason(char *buf, size_t cap);

/* n as RFC 2253 text into buf ("" when out of memory). */
void tls_material_name_text(const X509_NAME *n, char *buf, size_t cap);

/* In a rotation: notes that piece label did not load (why) and the previous what stays in use. */
void tls_material_kept_note(struct tls_renew *rw, const char *label, const char *why,
                            const char *what);

/* In a rotation (rw may be NULL): counts a piece loaded from a changed file (a or b, either may
 * be NULL). */
void tls_material_note_applied(struct tls_renew *rw, const char *a, const char *b);

/* Loads the CA bundle ca (labelled what in messages) and the optional CRLs (crl_path, may be
 * NULL) into ctx's store; advertise: also send the CAs' names in a CertificateRequest (server
 * side). In a rotation (rw), a bundle or a CRL file that does not load is replaced by what
 * rw->prev has, and noted. Returns 0 or CUT_EINVAL / CUT_EIO with the reason in err. */
int tls_material_load_trust(SSL_CTX *ctx, const char *ca, const char *crl_path, const char *what,
                            int advertise, struct tls_renew *rw, char *err, size_t cap);

/* Reads certificate cc (leaf + chain, and its key) into the fresh context x and checks it: the
 * key matches, the leaf is inside its validity period, the chain verifies. The leaf is described
 * into desc. Returns 0 or a CUT_E* code with the reason in why. */
int tls_material_use_cert_key(SSL_CTX *x, const struct cfg_tls_cert *cc, struct tls_cert *desc,
                              char *why, size_t cap);

/* Puts the certificate, key and chain of prev (a context in use) into the fresh context x.
 * Returns 0 or CUT_ENOMEM. */
int tls_material_copy_cert_key(SSL_CTX *x, SSL_CTX *prev);

#endif

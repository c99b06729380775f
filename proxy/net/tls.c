/* tls.c - TLS server contexts: load, validate, SNI, ALPN, client certificates. */
#include "proxy/net/tls.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>

#include "config/cfg.h"
#include "core/addr.h"
#include "core/cut.h"

#define TLS_FILE_MAX (1u << 20) /* a PEM bundle larger than this is refused */
#define TLS_MAX_NAMES 64
#define TLS_NAME_MAX 256

/* TLS 1.2 suites: forward secrecy and AEAD only (Mozilla "intermediate"); 1.3 keeps OpenSSL's
 * defaults (AES-GCM and ChaCha20-Poly1305). */
static const char TLS12_CIPHERS[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct tls_cert {
    SSL_CTX *ctx;
    char names[TLS_MAX_NAMES][TLS_NAME_MAX]; /* lower-case SAN DNS names (or the CN) */
    unsigned nnames;
    char subject[512];
    char not_after[32];
    long long not_after_s; /* seconds since the epoch; 0 when unknown */
    char serial[96];
};

/* TLS towards one pool's upstreams. */
struct tls_client {
    atomic_uint refs;
    SSL_CTX *ctx;
    char *server_name; /* configured name, or NULL: each endpoint's host */
    struct tls_cert cert; /* the client certificate's description (subject "" when none) */
};

struct tls_ctx {
    atomic_uint refs;
    struct tls_cert *certs; /* certs[0] is the default */
    size_t ncerts;
    unsigned char alpn[32]; /* wire format, server preference order */
    unsigned alpn_len;
};

/* ---- small helpers --------------------------------------------------------------------------- */

static void ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "no details");
    ERR_clear_error();
}

/* Reads a whole file (at most TLS_FILE_MAX bytes) into a memory BIO. NULL with err set. */
static BIO *read_file(const char *path, const char *what, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "%s %s: cannot open: %m", what, path);
        return NULL;
    }
    char *buf = malloc(TLS_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, TLS_FILE_MAX + 1, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad || n > TLS_FILE_MAX || n == 0) {
        snprintf(err, cap, "%s %s: %s", what, path,
                 !buf ? "out of memory" : n == 0 ? "empty or unreadable" : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    BIO *b = BIO_new(BIO_s_mem());
    if (b) /* BIO_reset() rewinds instead of emptying: the file is parsed more than once */
        BIO_set_flags(b, BIO_FLAGS_NONCLEAR_RST);
    if (!b || BIO_write(b, buf, (int)n) != (int)n) {
        snprintf(err, cap, "out of memory");
        BIO_free(b);
        b = NULL;
    }
    free(buf);
    return b;
}

/* Every certificate in a PEM bundle, in order. NULL (err set) when there is none. */
static STACK_OF(X509) *read_certs(BIO *b, const char *path, const char *what, char *err,
                                  size_t cap)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    if (!sk) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    (void)BIO_reset(b);
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            break;
        }
    }
    ERR_clear_error(); /* the end of the file reads as "no start line" */
    if (sk_X509_num(sk) == 0) {
        snprintf(err, cap, "%s %s: no PEM certificate found", what, path);
        sk_X509_free(sk);
        return NULL;
    }
    return sk;
}

static void time_text(const ASN1_TIME *t, char *buf, size_t cap)
{
    struct tm tm;
    if (t && ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        snprintf(buf, cap, "unknown");
}

static void name_text(const X509_NAME *n, char *buf, size_t cap)
{
    buf[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return;
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    int len = BIO_read(b, buf, (int)cap - 1);
    buf[len > 0 ? len : 0] = '\0';
    BIO_free(b);
}

static void describe_leaf(struct tls_cert *c, X509 *leaf)
{
    name_text(X509_get_subject_name(leaf), c->subject, sizeof c->subject);
    time_text(X509_get0_notAfter(leaf), c->not_after, sizeof c->not_after);
    struct tm tm;
    c->not_after_s = ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1 ? (long long)timegm(&tm)
                                                                         : 0;
    c->serial[0] = '\0';
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex)
        snprintf(c->serial, sizeof c->serial, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);

    c->nnames = 0;
    GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && c->nnames < TLS_MAX_NAMES; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *p = ASN1_STRING_get0_data(g->d.dNSName);
        int n = ASN1_STRING_length(g->d.dNSName);
        if (n <= 0 || n >= TLS_NAME_MAX || memchr(p, '\0', (size_t)n))
            continue;
        char *dst = c->names[c->nnames++];
        for (int k = 0; k < n; k++)
            dst[k] = (char)tolower(p[k]);
        dst[n] = '\0';
    }
    GENERAL_NAMES_free(sans);
    if (c->nnames == 0) { /* no SAN: the CN, as old clients did */
        char cn[TLS_NAME_MAX];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn,
                                          sizeof cn);
        if (n > 0) {
            for (int k = 0; k < n; k++)
                cn[k] = (char)tolower((unsigned char)cn[k]);
            memcpy(c->names[c->nnames++], cn, (size_t)n + 1);
        }
    }
}

/* "*.example.com" matches exactly one label in front of example.com. */
static int name_matches(const char *pattern, const char *host)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(host, '.');
        return dot && dot != host && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, host) == 0;
}

/* ---- callbacks (worker threads, during handshakes) -------------------------------------------- */

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    struct tls_ctx *t = SSL_get_app_data(ssl);
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!t || !host)
        return SSL_TLSEXT_ERR_OK; /* no SNI: the default certificate */
    for (size_t i = 0; i < t->ncerts; i++) {
        const struct tls_cert *c = &t->certs[i];
        for (unsigned k = 0; k < c->nnames; k++) {
            if (name_matches(c->names[k], host)) {
                if (i != 0 && !SSL_set_SSL_CTX(ssl, c->ctx))
                    return SSL_TLSEXT_ERR_ALERT_FATAL;
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_OK; /* unknown name: the default certificate, never a reset */
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    (void)arg;
    struct tls_ctx *t = SSL_get_app_data(ssl);
    unsigned char *sel = NULL;
    unsigned char len = 0;
    if (!t || SSL_select_next_proto(&sel, &len, t->alpn, t->alpn_len, in, inlen) !=
                  OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* nothing in common: carry on as HTTP/1.1 */
    *out = sel;
    *outlen = len;
    return SSL_TLSEXT_ERR_OK;
}

/* ---- building ---------------------------------------------------------------------------------- */

/* A rotation (tls_ctx_renew, tls_client_renew): the context in use, whose pieces stand in for
 * the ones that do not load, and what the rebuild did. NULL at start-up and on reload, where
 * every piece must load. */
struct renew {
    SSL_CTX *prev;            /* the context in use (its store, certificate and key) */
    const struct tls_cert *prev_desc;
    char *kept;               /* one "label: reason; the previous ... stays in use" per line */
    size_t kcap;
    tls_changed_fn changed;   /* which files changed since the context in use was built */
    void *ctx;
    unsigned applied;         /* pieces loaded from a changed file */
};

static void kept_note(struct renew *rw, const char *label, const char *why, const char *what)
{
    size_t o = strlen(rw->kept);
    if (o + 2 < rw->kcap)
        snprintf(rw->kept + o, rw->kcap - o, "%s%s: %s; the previous %s stays in use",
                 o ? "\n" : "", label, why, what);
}

static void note_applied(struct renew *rw, const char *a, const char *b)
{
    if (rw && rw->changed && ((a && rw->changed(rw->ctx, a)) || (b && rw->changed(rw->ctx, b))))
        rw->applied++;
}

/* Every certificate (store_certs) or CRL (store_crls) of store, as a new stack of new
 * references; NULL when out of memory. */
static STACK_OF(X509) *store_certs(X509_STORE *store)
{
    STACK_OF(X509) *out = sk_X509_new_null();
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
    for (int i = 0; out && i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (x && X509_up_ref(x) && !sk_X509_push(out, x))
            X509_free(x);
    }
    return out;
}

static STACK_OF(X509_CRL) *store_crls(X509_STORE *store)
{
    STACK_OF(X509_CRL) *out = sk_X509_CRL_new_null();
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
    for (int i = 0; out && i < sk_X509_OBJECT_num(objs); i++) {
        X509_CRL *c = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objs, i));
        if (c && X509_CRL_up_ref(c) && !sk_X509_CRL_push(out, c))
            X509_CRL_free(c);
    }
    return out;
}

/* The CRLs of crl_path, each current. NULL with err set. */
static STACK_OF(X509_CRL) *read_crls(const char *crl_path, char *err, size_t cap)
{
    BIO *b = read_file(crl_path, "crl", err, cap);
    if (!b)
        return NULL;
    STACK_OF(X509_CRL) *out = sk_X509_CRL_new_null();
    X509_CRL *crl;
    int bad = out == NULL;
    if (bad)
        snprintf(err, cap, "out of memory");
    while (!bad && (crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
        const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
        if (next && X509_cmp_current_time(next) < 0) {
            char when[32];
            time_text(next, when, sizeof when);
            snprintf(err, cap, "crl %s: expired (next update was due %s)", crl_path, when);
            bad = 1;
            X509_CRL_free(crl);
        } else if (!sk_X509_CRL_push(out, crl)) {
            snprintf(err, cap, "out of memory");
            bad = 1;
            X509_CRL_free(crl);
        }
    }
    ERR_clear_error();
    BIO_free(b);
    if (!bad && sk_X509_CRL_num(out) == 0) {
        snprintf(err, cap, "crl %s: no PEM CRL found", crl_path);
        bad = 1;
    }
    if (bad) {
        sk_X509_CRL_pop_free(out, X509_CRL_free);
        return NULL;
    }
    return out;
}

/* Loads the CA bundle ca (labelled what in messages) and the optional CRLs into ctx's store;
 * advertise: also send the CAs' names in a CertificateRequest (server side). In a rotation (rw),
 * a bundle or a CRL file that does not load is replaced by what the context in use has, and
 * noted: a bad CA bundle never keeps a new CRL from taking effect, nor the other way round. */
static int load_trust(SSL_CTX *ctx, const char *ca, const char *crl_path, const char *what,
                      int advertise, struct renew *rw, char *err, size_t cap)
{
    X509_STORE *prev_store = rw && rw->prev ? SSL_CTX_get_cert_store(rw->prev) : NULL;
    STACK_OF(X509) *cas = NULL;
    BIO *b = read_file(ca, what, err, cap);
    if (b) {
        cas = read_certs(b, ca, what, err, cap);
        BIO_free(b);
    }
    if (cas) {
        note_applied(rw, ca, NULL);
    } else if (prev_store) {
        char label[80];
        snprintf(label, sizeof label, "%s", what);
        kept_note(rw, label, err, "bundle");
        cas = store_certs(prev_store);
    }
    if (!cas)
        return b ? CUT_EINVAL : CUT_EIO;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int rc = 0;
    for (int i = 0; i < sk_X509_num(cas) && rc == 0; i++) {
        X509 *x = sk_X509_value(cas, i);
        if (!X509_STORE_add_cert(store, x) || (advertise && !SSL_CTX_add_client_CA(ctx, x))) {
            char why[256];
            ssl_reason(why, sizeof why);
            snprintf(err, cap, "%s %s: %s", what, ca, why);
            rc = CUT_EINVAL;
        }
    }
    sk_X509_pop_free(cas, X509_free);
    if (rc < 0 || !crl_path)
        return rc;
    STACK_OF(X509_CRL) *crls = read_crls(crl_path, err, cap);
    if (crls) {
        note_applied(rw, crl_path, NULL);
    } else if (prev_store) {
        kept_note(rw, "crl", err, "CRL");
        crls = store_crls(prev_store);
    }
    if (!crls)
        return CUT_EINVAL;
    for (int i = 0; i < sk_X509_CRL_num(crls) && rc == 0; i++)
        if (!X509_STORE_add_crl(store, sk_X509_CRL_value(crls, i))) {
            snprintf(err, cap, "crl %s: cannot be added", crl_path);
            rc = CUT_EINVAL;
        }
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    ERR_clear_error();
    if (rc == 0)
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    return rc;
}

/* A client certificate that fails verification leaves its subject on the SSL for the refusal's
 * event (after a failed handshake OpenSSL keeps no peer certificate). The ex_data index is
 * process-wide by OpenSSL's design; it is created once. */
static pthread_once_t rejected_once = PTHREAD_ONCE_INIT;
static int rejected_idx = -1;

static void rejected_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    free(ptr);
}

static void rejected_init(void)
{
    rejected_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, rejected_free);
}

static int on_verify(int ok, X509_STORE_CTX *x)
{
    if (ok || rejected_idx < 0)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    if (ssl && leaf && !SSL_get_ex_data(ssl, rejected_idx)) {
        char subject[1024];
        name_text(X509_get_subject_name(leaf), subject, sizeof subject);
        char *copy = strdup(subject);
        if (copy && !SSL_set_ex_data(ssl, rejected_idx, copy))
            free(copy);
    }
    return ok;
}

size_t tls_ssl_rejected_subject(SSL *ssl, char *buf, size_t cap)
{
    const char *s = rejected_idx >= 0 ? SSL_get_ex_data(ssl, rejected_idx) : NULL;
    return (size_t)snprintf(buf, cap, "%s", s ? s : "");
}

static int load_client_auth(SSL_CTX *ctx, const struct cfg_tls *cfg, struct renew *rw, char *err,
                            size_t cap)
{
    if (cfg->client_auth == CFG_CLIENT_AUTH_NONE) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    int rc = load_trust(ctx, cfg->client_ca, cfg->crl, "client_ca", 1, rw, err, cap);
    if (rc == 0) {
        int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
        if (cfg->client_auth == CFG_CLIENT_AUTH_REQUIRED)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        pthread_once(&rejected_once, rejected_init);
        SSL_CTX_set_verify(ctx, mode, on_verify);
        SSL_CTX_set_verify_depth(ctx, 8);
    }
    return rc;
}

/* The leaf must be inside its validity period and the chain in the file must verify up to its
 * last certificate (the root need not be there). */
static int check_chain(X509 *leaf, STACK_OF(X509) *chain, char *err, size_t cap)
{
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
        char when[32];
        time_text(X509_get0_notAfter(leaf), when, sizeof when);
        snprintf(err, cap, "the certificate expired on %s", when);
        return CUT_EINVAL;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
        char when[32];
        time_text(X509_get0_notBefore(leaf), when, sizeof when);
        snprintf(err, cap, "the certificate is not valid before %s", when);
        return CUT_EINVAL;
    }
    if (sk_X509_num(chain) == 0)
        return 0;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *sc = X509_STORE_CTX_new();
    int rc = CUT_ENOMEM;
    if (store && sc) {
        for (int i = 0; i < sk_X509_num(chain); i++)
            X509_STORE_add_cert(store, sk_X509_value(chain, i));
        X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
        if (X509_STORE_CTX_init(sc, store, leaf, chain) == 1) {
            if (X509_verify_cert(sc) == 1) {
                rc = 0;
            } else {
                snprintf(err, cap, "the chain does not verify: %s",
                         X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
                rc = CUT_EINVAL;
            }
        }
    }
    ERR_clear_error();
    X509_STORE_CTX_free(sc);
    X509_STORE_free(store);
    if (rc == CUT_ENOMEM)
        snprintf(err, cap, "out of memory");
    return rc;
}

/* Reads certificate cc (leaf + chain, and its key) into the fresh context x and checks it: the
 * key matches, the leaf is inside its validity period, the chain verifies. The leaf is described
 * into desc. Returns 0 or a CUT_E* code with the reason in why. */
static int use_cert_key(SSL_CTX *x, const struct cfg_tls_cert *cc, struct tls_cert *desc,
                        char *why, size_t cap)
{
    const char *cert_path = cc->pem ? cc->pem : cc->cert;
    const char *key_path = cc->pem ? cc->pem : cc->key;
    int rc = CUT_EINVAL;
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *key = NULL;
    BIO *kb = NULL;
    BIO *cb = read_file(cert_path, cc->pem ? "pem" : "cert", why, cap);
    if (!cb) {
        rc = CUT_EIO;
        goto out;
    }
    certs = read_certs(cb, cert_path, cc->pem ? "pem" : "cert", why, cap);
    if (!certs)
        goto out;
    kb = cc->pem ? cb : read_file(key_path, "key", why, cap);
    if (!kb) {
        rc = CUT_EIO;
        goto out;
    }
    (void)BIO_reset(kb);
    key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    if (!key) {
        ERR_clear_error();
        snprintf(why, cap, "%s %s: no PEM private key found", cc->pem ? "pem" : "key", key_path);
        goto out;
    }
    X509 *leaf = sk_X509_shift(certs); /* certs is now the chain */
    describe_leaf(desc, leaf);
    int ok = SSL_CTX_use_certificate(x, leaf) == 1;
    X509_free(leaf);
    ok = ok && SSL_CTX_use_PrivateKey(x, key) == 1;
    if (!ok || SSL_CTX_check_private_key(x) != 1) {
        ERR_clear_error();
        snprintf(why, cap, "the private key does not match the certificate (%s)", desc->subject);
        goto out;
    }
    for (int k = 0; k < sk_X509_num(certs); k++) {
        if (SSL_CTX_add1_chain_cert(x, sk_X509_value(certs, k)) != 1) {
            snprintf(why, cap, "out of memory");
            rc = CUT_ENOMEM;
            goto out;
        }
    }
    rc = check_chain(SSL_CTX_get0_certificate(x), certs, why, cap);
out:
    if (kb && kb != cb)
        BIO_free(kb);
    BIO_free(cb);
    EVP_PKEY_free(key);
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

/* Puts the certificate, key and chain of prev (a context in use) into the fresh context x. */
static int copy_cert_key(SSL_CTX *x, SSL_CTX *prev)
{
    X509 *leaf = SSL_CTX_get0_certificate(prev);
    EVP_PKEY *key = SSL_CTX_get0_privatekey(prev);
    STACK_OF(X509) *chain = NULL;
    if (!leaf || !key || SSL_CTX_use_certificate(x, leaf) != 1 ||
        SSL_CTX_use_PrivateKey(x, key) != 1 || SSL_CTX_get0_chain_certs(prev, &chain) != 1)
        return CUT_ENOMEM;
    for (int k = 0; k < sk_X509_num(chain); k++)
        if (SSL_CTX_add1_chain_cert(x, sk_X509_value(chain, k)) != 1)
            return CUT_ENOMEM;
    return 0;
}

/* Protocol versions, options and the TLS 1.2 suites every context shares. */
static int common_settings(SSL_CTX *x, unsigned min_version, char *why, size_t cap)
{
    SSL_CTX_set_min_proto_version(x, min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(x, TLS1_3_VERSION);
    SSL_CTX_set_options(x, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(x, TLS12_CIPHERS) != 1) {
        ssl_reason(why, cap);
        return CUT_EINVAL;
    }
    return 0;
}

/* One SSL_CTX for certificate i of cfg. In a rotation (rw, with prev the context in use), a
 * pair that does not load is replaced by the one prev serves for i, and noted. */
static int build_cert(struct tls_ctx *t, const struct cfg_tls *cfg, size_t i,
                      const struct tls_ctx *prev, struct renew *rw, char *err, size_t cap)
{
    struct tls_cert *c = &t->certs[i];
    char why[768];
    int rc;
    c->ctx = SSL_CTX_new(TLS_server_method());
    if (!c->ctx) {
        rc = CUT_ENOMEM;
        snprintf(why, sizeof why, "out of memory");
        goto out;
    }
    SSL_CTX *x = c->ctx;
    const struct cfg_tls_cert *cc = &cfg->certs[i];
    rc = use_cert_key(x, cc, c, why, sizeof why);
    if (rc == 0) {
        note_applied(rw, cc->pem ? cc->pem : cc->cert, cc->pem ? NULL : cc->key);
    } else if (rw && prev && i < prev->ncerts) {
        char label[40];
        snprintf(label, sizeof label, "certificates[%zu]", i);
        kept_note(rw, label, why, "certificate and key");
        SSL_CTX_free(x);
        x = c->ctx = SSL_CTX_new(TLS_server_method());
        rc = x ? copy_cert_key(x, prev->certs[i].ctx) : CUT_ENOMEM;
        if (rc < 0) {
            snprintf(why, sizeof why, "out of memory");
            goto out;
        }
        SSL_CTX *keep = c->ctx;
        *c = prev->certs[i]; /* its description */
        c->ctx = keep;
    }
    if (rc < 0 || (rc = common_settings(x, cfg->min_version, why, sizeof why)) < 0)
        goto out;
    /* Stateless resumption: tickets (keys made per context, so a rotation starts new
     * sessions); no server-side cache to lock. */
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(x, 1);
    SSL_CTX_set_session_id_context(x, (const unsigned char *)"cutover", 7);
    SSL_CTX_set_tlsext_servername_callback(x, on_servername);
    SSL_CTX_set_alpn_select_cb(x, on_alpn, NULL);
    if (rw && prev) /* the trust of the context in use stands in for a bad CA bundle or CRL */
        rw->prev = prev->certs[0].ctx;
    rc = load_client_auth(x, cfg, rw, why, sizeof why);
out:
    if (rc < 0)
        snprintf(err, cap, "certificates[%zu]: %s", i, why);
    return rc;
}

static void ctx_free(struct tls_ctx *t)
{
    for (size_t i = 0; i < t->ncerts; i++)
        SSL_CTX_free(t->certs[i].ctx);
    free(t->certs);
    free(t);
}

int tls_ctx_new(const struct cfg_tls *cfg, struct tls_ctx **out, char *err, size_t cap)
{
    return tls_ctx_renew(cfg, NULL, NULL, NULL, out, NULL, 0, NULL, err, cap);
}

int tls_ctx_renew(const struct cfg_tls *cfg, const struct tls_ctx *prev, tls_changed_fn changed,
                  void *cctx, struct tls_ctx **out, char *kept, size_t kcap, unsigned *applied,
                  char *err, size_t cap)
{
    struct renew rwv = {.kept = kept, .kcap = kcap, .changed = changed, .ctx = cctx};
    struct renew *rw = prev && kept && kcap ? &rwv : NULL;
    if (kept && kcap)
        kept[0] = '\0';
    *out = NULL;
    struct tls_ctx *t = calloc(1, sizeof *t);
    if (t)
        t->certs = calloc(cfg->ncerts ? cfg->ncerts : 1, sizeof *t->certs);
    if (!t || !t->certs) {
        free(t);
        snprintf(err, cap, "out of memory");
        return CUT_ENOMEM;
    }
    atomic_init(&t->refs, 1);
    t->ncerts = cfg->ncerts;
    for (size_t i = 0; i < cfg->nalpn; i++) {
        const char *p = cfg->alpn[i] == CFG_ALPN_H2 ? "h2" : "http/1.1";
        size_t n = strlen(p);
        t->alpn[t->alpn_len++] = (unsigned char)n;
        memcpy(t->alpn + t->alpn_len, p, n);
        t->alpn_len += (unsigned)n;
    }
    for (size_t i = 0; i < cfg->ncerts; i++) {
        int rc = build_cert(t, cfg, i, prev, rw, err, cap);
        if (rc < 0) {
            ctx_free(t);
            return rc;
        }
    }
    if (applied)
        *applied = rw ? rw->applied : 1;
    *out = t;
    return 0;
}

void tls_ctx_ref(struct tls_ctx *t)
{
    if (t)
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void tls_ctx_unref(struct tls_ctx *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        ctx_free(t);
}

static size_t json_str(char *buf, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 8 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(buf + o, cap - o, "\\u%04x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o] = '\0';
    return o;
}

size_t tls_ctx_describe(const struct tls_ctx *t, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap < 3)
        return 0;
    buf[o++] = '[';
    for (size_t i = 0; i < t->ncerts && o + 200 < cap; i++) {
        const struct tls_cert *c = &t->certs[i];
        char subj[1100];
        json_str(subj, sizeof subj, c->subject);
        o += (size_t)snprintf(buf + o, cap - o,
                              "%s{\"subject\":\"%s\",\"not_after\":\"%s\",\"serial\":\"%s\","
                              "\"names\":[",
                              i ? "," : "", subj, c->not_after, c->serial);
        for (unsigned k = 0; k < c->nnames && o + 300 < cap; k++) {
            char nm[TLS_NAME_MAX * 2];
            json_str(nm, sizeof nm, c->names[k]);
            o += (size_t)snprintf(buf + o, cap - o, "%s\"%s\"", k ? "," : "", nm);
        }
        if (o + 3 < cap)
            o += (size_t)snprintf(buf + o, cap - o, "]}");
    }
    if (o + 2 > cap)
        o = cap - 2;
    buf[o++] = ']';
    buf[o] = '\0';
    return o;
}

SSL *tls_ssl_new(struct tls_ctx *t)
{
    SSL *ssl = SSL_new(t->certs[0].ctx);
    if (!ssl)
        return NULL;
    tls_ctx_ref(t);
    SSL_set_app_data(ssl, t);
    SSL_set_accept_state(ssl);
    return ssl;
}

void tls_ssl_free(SSL *ssl)
{
    if (!ssl)
        return;
    void *owner = SSL_get_app_data(ssl);
    int server = SSL_is_server(ssl);
    SSL_free(ssl);
    if (server)
        tls_ctx_unref(owner);
    else
        tls_client_unref(owner);
}

void tls_ssl_detach(SSL *ssl)
{
    if (!ssl)
        return;
    struct tls_ctx *t = SSL_get_app_data(ssl);
    SSL_set_app_data(ssl, NULL);
    tls_ctx_unref(t);
}

const char *tls_ssl_alpn(SSL *ssl)
{
    const unsigned char *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(ssl, &p, &n);
    if (n == 2 && memcmp(p, "h2", 2) == 0)
        return "h2";
    if (n == 8 && memcmp(p, "http/1.1", 8) == 0)
        return "http/1.1";
    return NULL;
}

size_t tls_ssl_peer_subject(SSL *ssl, char *buf, size_t cap)
{
    buf[0] = '\0';
    X509 *x = SSL_get0_peer_certificate(ssl);
    if (!x || SSL_get_verify_result(ssl) != X509_V_OK)
        return 0;
    name_text(X509_get_subject_name(x), buf, cap);
    return strlen(buf);
}

/* ---- client side (upstreams) ----------------------------------------------------------------- */

int tls_client_new(const struct cfg_upstream_tls *cfg, int proto, struct tls_client **out,
                   char *err, size_t cap)
{
    return tls_client_renew(cfg, proto, NULL, NULL, NULL, out, NULL, 0, NULL, err, cap);
}

int tls_client_renew(const struct cfg_upstream_tls *cfg, int proto, const struct tls_client *prev,
                     tls_changed_fn changed, void *cctx, struct tls_client **out, char *kept,
                     size_t kcap, unsigned *applied, char *err, size_t cap)
{
    struct renew rwv = {.prev = prev ? prev->ctx : NULL, .kept = kept, .kcap = kcap,
                        .changed = changed, .ctx = cctx};
    struct renew *rw = prev && kept && kcap ? &rwv : NULL;
    if (kept && kcap)
        kept[0] = '\0';
    *out = NULL;
    char why[768];
    int rc = CUT_ENOMEM;
    struct tls_client *tc = calloc(1, sizeof *tc);
    if (!tc || (cfg->server_name && !(tc->server_name = strdup(cfg->server_name))) ||
        !(tc->ctx = SSL_CTX_new(TLS_client_method()))) {
        snprintf(why, sizeof why, "out of memory");
        goto fail;
    }
    atomic_init(&tc->refs, 1);
    SSL_CTX *x = tc->ctx;
    if ((rc = common_settings(x, cfg->min_version, why, sizeof why)) < 0)
        goto fail;
    if ((rc = load_trust(x, cfg->ca, cfg->crl, "ca", 0, rw, why, sizeof why)) < 0)
        goto fail;
    /* The upstream sends its chain; partial chains are not trusted (the CA bundle is the root). */
    SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(x, 8);
    if (cfg->client_cert) {
        static const char label[] = "client_certificate: ";
        memcpy(why, label, sizeof label);
        const struct cfg_tls_cert *cc = cfg->client_cert;
        rc = use_cert_key(x, cc, &tc->cert, why + sizeof label - 1, sizeof why - sizeof label + 1);
        if (rc == 0) {
            note_applied(rw, cc->pem ? cc->pem : cc->cert, cc->pem ? NULL : cc->key);
        } else if (rw && SSL_CTX_get0_certificate(prev->ctx)) {
            /* The pair in use stays: a fresh context, so nothing of the bad one is left. */
            kept_note(rw, "client_certificate", why + sizeof label - 1, "certificate and key");
            SSL_CTX *fresh = SSL_CTX_new(TLS_client_method());
            if (!fresh || common_settings(fresh, cfg->min_version, why, sizeof why) < 0 ||
                copy_cert_key(fresh, prev->ctx) < 0) {
                SSL_CTX_free(fresh);
                rc = CUT_ENOMEM;
                snprintf(why, sizeof why, "out of memory");
                goto fail;
            }
            SSL_CTX_set1_cert_store(fresh, SSL_CTX_get_cert_store(x)); /* the new trust */
            SSL_CTX_set_verify(fresh, SSL_VERIFY_PEER, NULL);
            SSL_CTX_set_verify_depth(fresh, 8);
            SSL_CTX_free(x);
            x = tc->ctx = fresh;
            tc->cert = prev->cert;
            tc->cert.ctx = NULL;
        } else {
            goto fail;
        }
    }
    /* Sessions are kept per endpoint by the caller (tls_ssl_take_session). */
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    static const unsigned char h2[] = "\x02h2", h1[] = "\x08http/1.1";
    const unsigned char *alpn = proto == CFG_UP_H2 ? h2 : h1;
    size_t alpn_len = proto == CFG_UP_H2 ? sizeof h2 - 1 : sizeof h1 - 1;
    if (proto != TLS_CLIENT_NO_ALPN && SSL_CTX_set_alpn_protos(x, alpn, (unsigned)alpn_len) != 0) {
        rc = CUT_ENOMEM;
        snprintf(why, sizeof why, "out of memory");
        goto fail;
    }
    if (applied)
        *applied = rw ? rw->applied : 1;
    *out = tc;
    return 0;
fail:
    snprintf(err, cap, "%s", why);
    ERR_clear_error();
    if (tc) {
        SSL_CTX_free(tc->ctx);
        free(tc->server_name);
        free(tc);
    }
    return rc < 0 ? rc : CUT_EINVAL;
}

void tls_client_ref(struct tls_client *tc)
{
    if (tc)
        atomic_fetch_add_explicit(&tc->refs, 1, memory_order_relaxed);
}

void tls_client_unref(struct tls_client *tc)
{
    if (tc && atomic_fetch_sub_explicit(&tc->refs, 1, memory_order_acq_rel) == 1) {
        SSL_CTX_free(tc->ctx);
        free(tc->server_name);
        free(tc);
    }
}

const char *tls_client_subject(const struct tls_client *tc)
{
    return tc->cert.subject;
}

SSL *tls_client_ssl_new(struct tls_client *tc, const char *host, void *session)
{
    const char *name = tc->server_name ? tc->server_name : host;
    SSL *ssl = SSL_new(tc->ctx);
    if (!ssl)
        return NULL;
    int ok;
    if (addr_is_numeric(name)) { /* no SNI for an address (RFC 6066); the IP must be in the SAN */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    if (ok && session)
        ok = SSL_set_session(ssl, session) == 1;
    if (!ok) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    tls_client_ref(tc);
    SSL_set_app_data(ssl, tc);
    SSL_set_connect_state(ssl);
    return ssl;
}

void *tls_ssl_take_session(SSL *ssl)
{
    SSL_SESSION *s = SSL_get1_session(ssl);
    if (s && !SSL_SESSION_is_resumable(s)) {
        SSL_SESSION_free(s);
        return NULL;
    }
    return s;
}

void tls_session_free(void *session)
{
    SSL_SESSION_free(session);
}

int tls_ssl_resumed(SSL *ssl)
{
    return SSL_session_reused(ssl);
}

size_t tls_ssl_failure(SSL *ssl, char *buf, size_t cap)
{
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK)
        return (size_t)snprintf(buf, cap, "certificate verification failed: %s",
                                X509_verify_cert_error_string(v));
    return (size_t)snprintf(buf, cap, "handshake failed");
}

size_t tls_ctx_ncerts(const struct tls_ctx *t)
{
    return t ? t->ncerts : 0;
}

const char *tls_ctx_cert_info(const struct tls_ctx *t, size_t i, long long *not_after_s)
{
    *not_after_s = t->certs[i].not_after_s;
    return t->certs[i].subject;
}

const char *tls_client_cert_info(const struct tls_client *tc, long long *not_after_s)
{
    *not_after_s = tc->cert.not_after_s;
    return tc->cert.subject;
}

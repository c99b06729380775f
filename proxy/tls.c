/* tls.c - TLS server contexts: load, validate, SNI, ALPN, client certificates. */
#include "tls.h"

#include <ctype.h>
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

#include "../config/cfg.h"
#include "cut.h"

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
    char serial[96];
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

/* Loads the client CA bundle (and CRL) into ctx. Returns 0 or CUT_EINVAL/CUT_EIO with err. */
static int load_client_auth(SSL_CTX *ctx, const struct cfg_tls *cfg, char *err, size_t cap)
{
    if (cfg->client_auth == CFG_CLIENT_AUTH_NONE) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    BIO *b = read_file(cfg->client_ca, "client_ca", err, cap);
    if (!b)
        return CUT_EIO;
    STACK_OF(X509) *cas = read_certs(b, cfg->client_ca, "client_ca", err, cap);
    BIO_free(b);
    if (!cas)
        return CUT_EINVAL;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int rc = 0;
    for (int i = 0; i < sk_X509_num(cas) && rc == 0; i++) {
        X509 *x = sk_X509_value(cas, i);
        if (!X509_STORE_add_cert(store, x) || !SSL_CTX_add_client_CA(ctx, x)) {
            char why[256];
            ssl_reason(why, sizeof why);
            snprintf(err, cap, "client_ca %s: %s", cfg->client_ca, why);
            rc = CUT_EINVAL;
        }
    }
    sk_X509_pop_free(cas, X509_free);
    if (rc == 0 && cfg->crl) {
        b = read_file(cfg->crl, "crl", err, cap);
        if (!b)
            return CUT_EIO;
        X509_CRL *crl;
        int n = 0;
        while (rc == 0 && (crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
            n++;
            const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
            if (next && X509_cmp_current_time(next) < 0) {
                char when[32];
                time_text(next, when, sizeof when);
                snprintf(err, cap, "crl %s: expired (next update was due %s)", cfg->crl, when);
                rc = CUT_EINVAL;
            } else if (!X509_STORE_add_crl(store, crl)) {
                snprintf(err, cap, "crl %s: cannot be added", cfg->crl);
                rc = CUT_EINVAL;
            }
            X509_CRL_free(crl);
        }
        ERR_clear_error();
        BIO_free(b);
        if (rc == 0 && n == 0) {
            snprintf(err, cap, "crl %s: no PEM CRL found", cfg->crl);
            rc = CUT_EINVAL;
        }
        if (rc == 0)
            X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    if (rc == 0) {
        int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
        if (cfg->client_auth == CFG_CLIENT_AUTH_REQUIRED)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, NULL);
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

/* One SSL_CTX for certificate i of cfg. */
static int build_cert(struct tls_ctx *t, const struct cfg_tls *cfg, size_t i, char *err,
                      size_t cap)
{
    const struct cfg_tls_cert *cc = &cfg->certs[i];
    struct tls_cert *c = &t->certs[i];
    const char *cert_path = cc->pem ? cc->pem : cc->cert;
    const char *key_path = cc->pem ? cc->pem : cc->key;
    char why[768];
    int rc = CUT_EINVAL;
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *key = NULL;
    BIO *kb = NULL;
    BIO *cb = read_file(cert_path, cc->pem ? "pem" : "cert", why, sizeof why);
    if (!cb) {
        rc = CUT_EIO;
        goto out;
    }
    certs = read_certs(cb, cert_path, cc->pem ? "pem" : "cert", why, sizeof why);
    if (!certs)
        goto out;
    kb = cc->pem ? cb : read_file(key_path, "key", why, sizeof why);
    if (!kb) {
        rc = CUT_EIO;
        goto out;
    }
    (void)BIO_reset(kb);
    key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    if (!key) {
        ERR_clear_error();
        snprintf(why, sizeof why, "%s %s: no PEM private key found", cc->pem ? "pem" : "key",
                 key_path);
        goto out;
    }
    X509 *leaf = sk_X509_shift(certs); /* certs is now the chain */
    describe_leaf(c, leaf);
    c->ctx = SSL_CTX_new(TLS_server_method());
    if (!c->ctx) {
        X509_free(leaf);
        rc = CUT_ENOMEM;
        snprintf(why, sizeof why, "out of memory");
        goto out;
    }
    int ok = SSL_CTX_use_certificate(c->ctx, leaf) == 1;
    X509_free(leaf);
    ok = ok && SSL_CTX_use_PrivateKey(c->ctx, key) == 1;
    if (!ok || SSL_CTX_check_private_key(c->ctx) != 1) {
        ERR_clear_error();
        snprintf(why, sizeof why, "the private key does not match the certificate (%s)",
                 c->subject);
        goto out;
    }
    for (int k = 0; k < sk_X509_num(certs); k++) {
        if (SSL_CTX_add1_chain_cert(c->ctx, sk_X509_value(certs, k)) != 1) {
            snprintf(why, sizeof why, "out of memory");
            rc = CUT_ENOMEM;
            goto out;
        }
    }
    if ((rc = check_chain(SSL_CTX_get0_certificate(c->ctx), certs, why, sizeof why)) < 0)
        goto out;
    rc = CUT_EINVAL;

    SSL_CTX *x = c->ctx;
    SSL_CTX_set_min_proto_version(x, cfg->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(x, TLS1_3_VERSION);
    SSL_CTX_set_options(x, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(x, TLS12_CIPHERS) != 1) {
        ssl_reason(why, sizeof why);
        goto out;
    }
    /* Stateless resumption: tickets (keys made per context, so a rotation starts new
     * sessions); no server-side cache to lock. */
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(x, 1);
    SSL_CTX_set_session_id_context(x, (const unsigned char *)"cutover", 7);
    SSL_CTX_set_tlsext_servername_callback(x, on_servername);
    SSL_CTX_set_alpn_select_cb(x, on_alpn, NULL);
    if ((rc = load_client_auth(x, cfg, why, sizeof why)) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        snprintf(err, cap, "certificates[%zu]: %s", i, why);
    if (kb && kb != cb)
        BIO_free(kb);
    BIO_free(cb);
    EVP_PKEY_free(key);
    sk_X509_pop_free(certs, X509_free);
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
        int rc = build_cert(t, cfg, i, err, cap);
        if (rc < 0) {
            ctx_free(t);
            return rc;
        }
    }
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
    struct tls_ctx *t = SSL_get_app_data(ssl);
    SSL_free(ssl);
    tls_ctx_unref(t);
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

/* tls_material.c - certificate material for tls.c's contexts: reads PEM files (bounded), checks
 * a certificate pair (key matches, validity period, chain), loads CA bundles and CRLs into a
 * store, describes a leaf (subject, SAN names, expiry, serial) and keeps a rotation's notes
 * (which piece was kept from the context in use, which changed file was applied).
 *
 * Control thread only (file I/O), like the builders in tls.c that call it.
 */
#include "proxy/net/tls_material.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "config/cfg.h"
#include "core/cut.h"

#define TLS_FILE_MAX (1u << 20) /* a PEM bundle larger than this is refused */

void tls_material_ssl_reason(char *buf, size_t cap)
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

void tls_material_name_text(const X509_NAME *n, char *buf, size_t cap)
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
    tls_material_name_text(X509_get_subject_name(leaf), c->subject, sizeof c->subject);
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

void tls_material_kept_note(struct tls_renew *rw, const char *label, const char *why,
                            const char *what)
{
    size_t o = strlen(rw->kept);
    if (o + 2 < rw->kcap)
        snprintf(rw->kept + o, rw->kcap - o, "%s%s: %s; the previous %s stays in use",
                 o ? "\n" : "", label, why, what);
}

void tls_material_note_applied(struct tls_renew *rw, const char *a, const char *b)
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
int tls_material_load_trust(SSL_CTX *ctx, const char *ca, const char *crl_path, const char *what,
                            int advertise, struct tls_renew *rw, char *err, size_t cap)
{
    X509_STORE *prev_store = rw && rw->prev ? SSL_CTX_get_cert_store(rw->prev) : NULL;
    STACK_OF(X509) *cas = NULL;
    BIO *b = read_file(ca, what, err, cap);
    if (b) {
        cas = read_certs(b, ca, what, err, cap);
        BIO_free(b);
    }
    if (cas) {
        tls_material_note_applied(rw, ca, NULL);
    } else if (prev_store) {
        char label[80];
        snprintf(label, sizeof label, "%s", what);
        tls_material_kept_note(rw, label, err, "bundle");
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
            tls_material_ssl_reason(why, sizeof why);
            snprintf(err, cap, "%s %s: %s", what, ca, why);
            rc = CUT_EINVAL;
        }
    }
    sk_X509_pop_free(cas, X509_free);
    if (rc < 0 || !crl_path)
        return rc;
    STACK_OF(X509_CRL) *crls = read_crls(crl_path, err, cap);
    if (crls) {
        tls_material_note_applied(rw, crl_path, NULL);
    } else if (prev_store) {
        tls_material_kept_note(rw, "crl", err, "CRL");
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
int tls_material_use_cert_key(SSL_CTX *x, const struct cfg_tls_cert *cc, struct tls_cert *desc,
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
int tls_material_copy_cert_key(SSL_CTX *x, SSL_CTX *prev)
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

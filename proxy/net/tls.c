/* tls.c - TLS contexts: the server side (SNI, ALPN, client certificates) and the upstream client
 * side, and their SSL objects. Reading and validating the certificate material is
 * tls_material.c's. */
#include "proxy/net/tls.h"
#include "proxy/net/tls_material.h"

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

/* TLS 1.2 suites: forward secrecy and AEAD only (Mozilla "intermediate"); 1.3 keeps OpenSSL's
 * defaults (AES-GCM and ChaCha20-Poly1305). */
static const char TLS12_CIPHERS[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

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
        tls_material_name_text(X509_get_subject_name(leaf), subject, sizeof subject);
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

static int load_client_auth(SSL_CTX *ctx, const struct cfg_tls *cfg, struct tls_renew *rw,
                            char *err, size_t cap)
{
    if (cfg->client_auth == CFG_CLIENT_AUTH_NONE) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    int rc = tls_material_load_trust(ctx, cfg->client_ca, cfg->crl, "client_ca", 1, rw, err, cap);
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
        tls_material_ssl_reason(why, cap);
        return CUT_EINVAL;
    }
    return 0;
}

/* One SSL_CTX for certificate i of cfg. In a rotation (rw, with prev the context in use), a
 * pair that does not load is replaced by the one prev serves for i, and noted. */
static int build_cert(struct tls_ctx *t, const struct cfg_tls *cfg, size_t i,
                      const struct tls_ctx *prev, struct tls_renew *rw, char *err, size_t cap)
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
    rc = tls_material_use_cert_key(x, cc, c, why, sizeof why);
    if (rc == 0) {
        tls_material_note_applied(rw, cc->pem ? cc->pem : cc->cert, cc->pem ? NULL : cc->key);
    } else if (rw && prev && i < prev->ncerts) {
        char label[40];
        snprintf(label, sizeof label, "certificates[%zu]", i);
        tls_material_kept_note(rw, label, why, "certificate and key");
        SSL_CTX_free(x);
        x = c->ctx = SSL_CTX_new(TLS_server_method());
        rc = x ? tls_material_copy_cert_key(x, prev->certs[i].ctx) : CUT_ENOMEM;
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
    struct tls_renew rwv = {.kept = kept, .kcap = kcap, .changed = changed, .ctx = cctx};
    struct tls_renew *rw = prev && kept && kcap ? &rwv : NULL;
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
    tls_material_name_text(X509_get_subject_name(x), buf, cap);
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
    struct tls_renew rwv = {.prev = prev ? prev->ctx : NULL, .kept = kept, .kcap = kcap,
                            .changed = changed, .ctx = cctx};
    struct tls_renew *rw = prev && kept && kcap ? &rwv : NULL;
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
    if ((rc = tls_material_load_trust(x, cfg->ca, cfg->crl, "ca", 0, rw, why, sizeof why)) < 0)
        goto fail;
    /* The upstream sends its chain; partial chains are not trusted (the CA bundle is the root). */
    SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(x, 8);
    if (cfg->client_cert) {
        static const char label[] = "client_certificate: ";
        memcpy(why, label, sizeof label);
        const struct cfg_tls_cert *cc = cfg->client_cert;
        rc = tls_material_use_cert_key(x, cc, &tc->cert, why + sizeof label - 1,
                                       sizeof why - sizeof label + 1);
        if (rc == 0) {
            tls_material_note_applied(rw, cc->pem ? cc->pem : cc->cert, cc->pem ? NULL : cc->key);
        } else if (rw && SSL_CTX_get0_certificate(prev->ctx)) {
            /* The pair in use stays: a fresh context, so nothing of the bad one is left. */
            tls_material_kept_note(rw, "client_certificate", why + sizeof label - 1,
                                   "certificate and key");
            SSL_CTX *fresh = SSL_CTX_new(TLS_client_method());
            if (!fresh || common_settings(fresh, cfg->min_version, why, sizeof why) < 0 ||
                tls_material_copy_cert_key(fresh, prev->ctx) < 0) {
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

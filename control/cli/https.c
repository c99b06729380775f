/* https.c - the HTTPS admin API replicas: the client TLS context (mutual TLS), the
 * non-blocking handshake, POST /v1/control and the HTTP/1.1 response (proxy/http/h1_parse.h).
 */
#include "control/cli/https.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/version.h"
#include "proxy/http/h1_parse.h"
#include "control/cli/output.h"
#include "control/cli/replica.h"
#include "control/cli/values.h"

/* ---- HTTPS admin API replicas ---------------------------------------------------------------- */

/* OpenSSL reasons that mean "the server refused our client certificate" (the alert it sent). */
static int server_refused_certificate(int reason)
{
    switch (reason) {
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED: return 1;
    default: return 0;
    }
}

/* A TLS operation failed with SSL error err (SSL_get_error) in stage ("handshake", ...). */
static void https_fail(struct cli_replica *r, int err, const char *stage)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    long vr = r->ssl ? SSL_get_verify_result(r->ssl) : X509_V_OK;
    int sys = errno;
    if (e && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK)
        cli_replica_fail(r, CLI_EXIT_UNREACH, "tls",
                         "the server's certificate does not verify for %s: %s", r->url->host,
                         X509_verify_cert_error_string(vr));
    else if (e && server_refused_certificate(ERR_GET_REASON(e)))
        cli_replica_fail(r, CLI_EXIT_DENIED, "certificate_refused",
                         "the server refused the client certificate (%s)", why ? why : "alert");
    else if (err == SSL_ERROR_SYSCALL && !e && sys)
        cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "TLS %s: %s", stage, strerror(sys));
    else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN)
        cli_replica_fail(r, CLI_EXIT_UNREACH, "tls",
                         "the server closed the connection during the TLS %s", stage);
    else
        cli_replica_fail(r, CLI_EXIT_UNREACH, "tls", "TLS %s failed: %s", stage,
                         why ? why : "no details");
    ERR_clear_error();
}

static void https_begin_tls(struct cli *c, struct cli_replica *r)
{
    ERR_clear_error();
    r->ssl = SSL_new(c->tls);
    if (!r->ssl || SSL_set_fd(r->ssl, r->fd) != 1) {
        cli_replica_fail(r, CLI_EXIT_UNREACH, "tls", "out of memory");
        return;
    }
    int ok = 1;
    if (r->url->numeric) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(r->ssl), r->url->host) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(r->ssl, r->url->host) == 1 &&
             SSL_set1_host(r->ssl, r->url->host) == 1;
    }
    if (!ok) {
        cli_replica_fail(r, CLI_EXIT_UNREACH, "tls", "cannot verify the server as %s",
                         r->url->host);
        return;
    }
    SSL_set_connect_state(r->ssl);
    r->st = CLI_RS_HANDSHAKE;
}

void cli_https_start(struct cli *c, struct cli_replica *r)
{
    (void)c;
    if (r->addrlen == 0) {
        cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "%s", r->resolve_err);
        return;
    }
    r->fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0) {
        cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "socket: %s", strerror(errno));
        return;
    }
    if (connect(r->fd, (struct sockaddr *)&r->addr, r->addrlen) == 0) {
        https_begin_tls(c, r);
    } else if (errno == EINPROGRESS) {
        r->st = CLI_RS_CONNECTING;
        r->want = POLLOUT;
    } else {
        cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "connect: %s", strerror(errno));
    }
}

/* Looks for a complete HTTP response in r->in. Returns 1 when the exchange is over (reply taken
 * or failed), 0 when more is needed. eof: the server closed the connection. */
static int https_take_response(struct cli_replica *r, const char *id, int eof)
{
    const struct h1_limits lim = {8192, CLI_HTTP_MAX_HEAD, 100};
    for (;;) {
        struct h1_response resp;
        struct http_field fields[100];
        int status = 0;
        int n = h1_parse_response(r->in, r->inlen, &lim, CUT_SLICE_LIT("POST"), &resp, fields, 100,
                                  &status);
        if (n == CUT_EAGAIN) {
            if (eof)
                cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol",
                                 "the server closed the connection before replying%s",
                                 r->inlen ? " (incomplete HTTP response head)" : "");
            return eof;
        }
        if (n < 0) {
            cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol", "malformed HTTP response");
            return 1;
        }
        if (resp.status >= 100 && resp.status < 200) { /* 100 Continue: the reply follows */
            memmove(r->in, r->in + n, r->inlen - (size_t)n);
            r->inlen -= (size_t)n;
            continue;
        }
        size_t blen;
        if (resp.body == H1_BODY_LENGTH) {
            if (resp.content_length > CLI_MAX_REPLY) {
                cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol",
                                 "reply longer than %u MiB refused", CLI_MAX_REPLY >> 20);
                return 1;
            }
            if (r->inlen - (size_t)n < resp.content_length) {
                if (eof)
                    cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol",
                                     "the server closed the connection inside the reply");
                return eof;
            }
            blen = (size_t)resp.content_length;
        } else if (resp.body == H1_BODY_UNTIL_CLOSE) {
            if (!eof)
                return 0;
            blen = r->inlen - (size_t)n;
        } else if (resp.body == H1_BODY_NONE) {
            blen = 0;
        } else {
            cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol",
                             "HTTP %d with a chunked body (not a control reply)", resp.status);
            return 1;
        }
        cli_replica_take_reply(r, id, r->in + n, blen, resp.status);
        return 1;
    }
}

/* Reads what the server sent; returns when it would block or the exchange is over. */
static void https_receive(struct cli_replica *r, const char *id)
{
    for (;;) {
        if (r->incap - r->inlen < 4096 &&
            cli_replica_grow_in(r, 16384, CLI_MAX_REPLY + CLI_HTTP_MAX_HEAD + 8192) < 0)
            return;
        ERR_clear_error();
        errno = 0;
        int got = SSL_read(r->ssl, r->in + r->inlen, (int)(r->incap - r->inlen));
        if (got > 0) {
            r->inlen += (size_t)got;
            if (https_take_response(r, id, 0))
                return;
            continue;
        }
        int err = SSL_get_error(r->ssl, got);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            r->want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            return;
        }
        if (err == SSL_ERROR_ZERO_RETURN ||
            (err == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0 && errno == 0)) {
            https_take_response(r, id, 1); /* the end of the stream */
            return;
        }
        https_fail(r, err, r->send_failed ? "exchange (sending failed)" : "exchange");
        return;
    }
}

void cli_https_step(struct cli *c, struct cli_replica *r, const char *id)
{
    for (;;) {
        if (r->st == CLI_RS_CONNECTING) {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err) {
                cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "connect: %s", strerror(err));
                return;
            }
            https_begin_tls(c, r);
        } else if (r->st == CLI_RS_HANDSHAKE) {
            ERR_clear_error();
            errno = 0;
            int rc = SSL_connect(r->ssl);
            if (rc == 1) {
                r->st = CLI_RS_SENDING;
                continue;
            }
            int err = SSL_get_error(r->ssl, rc);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                r->want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                return;
            }
            https_fail(r, err, "handshake");
            return;
        } else if (r->st == CLI_RS_SENDING) {
            while (r->outoff < r->outlen) {
                ERR_clear_error();
                errno = 0;
                int w = SSL_write(r->ssl, r->out + r->outoff, (int)(r->outlen - r->outoff));
                if (w > 0) {
                    r->outoff += (size_t)w;
                    continue;
                }
                int err = SSL_get_error(r->ssl, w);
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                    r->want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                    return;
                }
                if (err == SSL_ERROR_SYSCALL && (errno == EPIPE || errno == ECONNRESET)) {
                    /* the server may have said why (an alert, too_large) before closing */
                    ERR_clear_error();
                    r->send_failed = 1;
                    break;
                }
                https_fail(r, err, "exchange");
                return;
            }
            r->st = CLI_RS_RECEIVING;
            r->want = POLLIN;
        } else if (r->st == CLI_RS_RECEIVING) {
            https_receive(r, id);
            return;
        } else {
            return;
        }
    }
}

void cli_https_request(struct cli_replica *r, const char *body, size_t blen)
{
    char authority[CTLURL_HOST_MAX + 16];
    ctlurl_authority(r->url, authority, sizeof authority);
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "POST /v1/control HTTP/1.1\r\n"
                      "Host: %s\r\n"
                      "User-Agent: cutoverctl/" CUTOVER_VERSION "\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\n"
                      "Connection: close\r\n"
                      "\r\n",
                      authority, blen);
    r->outlen = (size_t)hn + blen;
    r->out = cli_xmalloc(r->outlen);
    memcpy(r->out, head, (size_t)hn);
    memcpy(r->out + hn, body, blen);
    r->outoff = 0;
}

int cli_tls_setup(struct cli *c)
{
    const char *env_ca = getenv("CUTOVER_CACERT"), *env_cert = getenv("CUTOVER_CERT"),
               *env_key = getenv("CUTOVER_KEY");
    const char *cacert = c->cacert ? c->cacert : env_ca && *env_ca ? env_ca : NULL;
    const char *cert = c->cert ? c->cert : env_cert && *env_cert ? env_cert : NULL;
    const char *key = c->key ? c->key : env_key && *env_key ? env_key : cert;
    if (!cert)
        return cli_usage_error(c, "--endpoint https://... needs a client certificate: --cert FILE "
                                  "[--key FILE] (or CUTOVER_CERT, CUTOVER_KEY)");
    char why[256];
    SSL_CTX *x = SSL_CTX_new(TLS_client_method());
    if (!x)
        return cli_usage_error(c, "cannot create a TLS context");
    c->tls = x;
    SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION);
    SSL_CTX_set_options(x, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(x, (const unsigned char *)"\x08http/1.1", 9);
    int ok = cacert ? SSL_CTX_load_verify_locations(x, cacert, NULL) == 1
                    : SSL_CTX_set_default_verify_paths(x) == 1;
    if (!ok) {
        ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
        ERR_clear_error();
        return cli_usage_error(c, "--cacert %s: cannot load it (%s)", cacert ? cacert : "(system)",
                               why);
    }
    if (SSL_CTX_use_certificate_chain_file(x, cert) != 1) {
        ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
        ERR_clear_error();
        return cli_usage_error(c, "--cert %s: cannot load the certificate (%s)", cert, why);
    }
    if (SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        ERR_error_string_n(e, why, sizeof why);
        ERR_clear_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            return cli_usage_error(c, "--key %s does not match the certificate in %s", key, cert);
        return cli_usage_error(c, "--key %s: cannot load the private key (%s)", key, why);
    }
    if (SSL_CTX_check_private_key(x) != 1) {
        ERR_clear_error();
        return cli_usage_error(c, "--key %s does not match the certificate in %s", key, cert);
    }
    return 0;
}

/* admin.c - the HTTPS admin API server (contract in admin.h).
 *
 * Why not evhttp: libevent 2.1's evhttp has no connection limit; it answers an oversized body or
 * a malformed head with its own HTML error page, which neither speaks the control protocol's
 * JSON nor reaches the audit log; it hides failed TLS handshakes (they must at least be logged);
 * it has one timeout per connection rather than a deadline per request; and a bevcb that cannot
 * make a TLS bufferevent (returns NULL) silently gets a plaintext one. The HTTP/1.1 needed here
 * is small (two resources, Content-Length bodies, keep-alive), and the project's own parser
 * (proxy/h1_parse.c) already enforces the framing rules. So: bufferevent_openssl for TLS, and
 * a small request loop on top of it.
 *
 * A connection goes HANDSHAKE -> READING -> WRITING -> IDLE -> READING ... and ends in LINGER:
 * when a reply closes the connection, cutover sends close_notify, then reads and discards what
 * the client still sends (for at most ADMIN_LINGER_MS or ADMIN_LINGER_BYTES) so that a client
 * that is still sending a refused body reads the reply instead of a reset. One timer per
 * connection carries the deadline of its current state. One request is handled at a time: the
 * next one is not looked at before the previous reply is written, which bounds the output too.
 *
 * Slots (make_room(), on an accept that finds admin.max_clients connections open): connections
 * whose peer has closed are freed first, then the one connslots_choose() picks gives way: a
 * lingering one, then one in its handshake, reading a request or idle, then one whose reply is
 * still being written, each the longest idle first; never one whose request is being handled.
 * Only when every connection is being handled (never the case on this single thread) is a new
 * one answered 503 busy (up to ADMIN_OVERFLOW of them) or closed.
 *
 * Ownership: the admin owns its connections; a connection owns its bufferevent (which owns the
 * SSL and the socket: BEV_OPT_CLOSE_ON_FREE) and its timer. Control thread only.
 */
#include "control/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "control/certs.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/cut.h"
#include "proxy/http/h1_parse.h"
#include "core/list.h"
#include "proxy/log/log.h"
#include "proxy/net/tls.h"
#include "control/admin_http.h"
#include "control/commands.h"
#include "control/connslots.h"
#include "control/ctlurl.h"

#define ADMIN_MAX_LINE 4096
#define ADMIN_MAX_HEAD 16384
#define ADMIN_MAX_HEADERS 64
#define ADMIN_OVERFLOW 16 /* past max_clients, still answered "busy" (when none gives way) */
#define ADMIN_LINGER_MS 2000
#define ADMIN_LINGER_BYTES (1u << 20)
#define ADMIN_SUBJECT_CAP 2048  /* a longer subject is refused, never compared truncated */
#define ADMIN_EVENTS_PER_SEC 20 /* events about refused connections, per second, at most */
#define ADMIN_ACCEPT_PAUSE_MS 100

enum conn_state { ACS_HANDSHAKE, ACS_READING, ACS_WRITING, ACS_IDLE, ACS_LINGER };

static const char *const state_names[] = {"handshake", "reading", "writing", "idle", "linger"};

struct conn {
    struct admin *owner;
    struct bufferevent *bev;
    struct event *timer;
    enum conn_state st;
    int busy;         /* accepted past max_clients: the request is answered busy */
    int close_after;  /* linger and close once the reply is written */
    int continued;    /* "100 Continue" sent for the request being read */
    int handling;     /* inside handle(), or waiting for its reply: never evicted */
    struct cmd_pending *pending; /* a change waiting for the fleet store */
    int pending_close;           /* close once its reply is written */
    uint64_t last_us; /* last activity: accepted, handshake done, bytes read, reply written */
    uint64_t serial;  /* accept order, the eviction tie-break */
    size_t lingered;
    char peer[64];                   /* "ip:port" */
    char subject[ADMIN_SUBJECT_CAP]; /* the verified client certificate's, after the handshake */
    struct conn *next, *prev;
};

struct admin {
    struct cmd_host *host; /* the control thread: commands, configuration, events */
    struct event_base *base;
    const struct certs *certs;
    struct evconnlistener *listener;
    struct event *ev_resume; /* re-enables accepting after an accept error */
    struct conn *conns;
    unsigned nconns;
    struct connslots_entry *slots; /* make_room()'s scratch: cap entries, one per connection */
    struct conn **slot_conn;       /* the connection of each entry */
    size_t cap;
    uint64_t accepted;          /* connections accepted so far: the next serial */
    struct connslots_rate rate; /* admin_* events about connections */
    struct admin_stats stats;   /* .open is nconns, filled in by admin_stats() */
};

static void process(struct conn *cn);

/* ---- events ------------------------------------------------------------------------------ */

/* ctl_event() for things a peer can cause at will (refused handshakes, surplus connections):
 * at most ADMIN_EVENTS_PER_SEC per second; the next event after a quiet second says how many
 * were left out (admin_events_suppressed). */
static void admin_event(struct admin *a, const char *name, const char *extra)
{
    unsigned long left_out;
    int allowed =
        connslots_rate_allow(&a->rate, (int64_t)time(NULL), ADMIN_EVENTS_PER_SEC, &left_out);
    if (left_out) {
        char n[64];
        snprintf(n, sizeof n, ",\"count\":%lu", left_out);
        a->host->event(a->host->ctx, "admin_events_suppressed", n);
    }
    if (allowed)
        a->host->event(a->host->ctx, name, extra);
}

/* An event about connection cn with a reason: {"peer","subject"?,"reason", more...}. */
static void conn_event(struct conn *cn, const char *name, const char *reason, const char *more)
{
    char extra[3 * ADMIN_SUBJECT_CAP], r[768], s[2 * ADMIN_SUBJECT_CAP];
    log_escape(r, sizeof r, reason, strlen(reason));
    log_escape(s, sizeof s, cn->subject, strlen(cn->subject));
    snprintf(extra, sizeof extra, ",\"peer\":\"%s\"%s%s%s,\"reason\":\"%s\"%s", cn->peer,
             s[0] ? ",\"subject\":\"" : "", s, s[0] ? "\"" : "", r, more ? more : "");
    admin_event(cn->owner, name, extra);
}

/* ---- connections ------------------------------------------------------------------------- */

static void conn_free(struct conn *cn)
{
    struct admin *a = cn->owner;
    CUT_LIST_REMOVE(&a->conns, cn, next, prev);
    a->nconns--;
    commands_pending_drop(cn->pending); /* the change completes; its reply goes nowhere */
    tls_ssl_detach(bufferevent_openssl_get_ssl(cn->bev));
    bufferevent_free(cn->bev); /* frees the SSL and closes the socket */
    event_free(cn->timer);
    free(cn);
}

static void arm(struct conn *cn, unsigned ms)
{
    struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
    event_add(cn->timer, &tv);
}

static const struct cfg_admin *cfg_of(const struct conn *cn)
{
    return &cn->owner->host->cfg(cn->owner->host->ctx)->admin;
}

/* ---- slots ------------------------------------------------------------------------------- */

/* Whether cn's peer has closed (a FIN or a reset came), so that no request can come from it
 * any more. Asked only of a connection that is owed no reply. One in the middle of a request
 * with bytes still unread keeps the benefit of the doubt (they may complete the request); an
 * idle one with bytes unread behind the FIN is taken as closed (they are its close_notify, or a
 * request from a client that shut down its sending side: it was told nothing, and the close
 * tells it to retry). */
static int peer_gone(const struct conn *cn)
{
    int fd = bufferevent_getfd(cn->bev);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        ti.tcpi_state == TCP_ESTABLISHED)
        return 0;
    if (cn->st != ACS_READING)
        return 1;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static enum connslots_class class_of(const struct conn *cn)
{
    if (cn->handling)
        return CONNSLOTS_PINNED;
    switch (cn->st) {
    case ACS_LINGER: return CONNSLOTS_DONE;
    case ACS_WRITING: return CONNSLOTS_WRITING;
    case ACS_HANDSHAKE:
    case ACS_READING:
    case ACS_IDLE: break;
    }
    return CONNSLOTS_WAITING;
}

static int grow_slots(struct admin *a, size_t n)
{
    if (n <= a->cap)
        return 0;
    size_t cap = n < 16 ? 16 : n;
    struct connslots_entry *e = realloc(a->slots, cap * sizeof *e);
    if (!e)
        return CUT_ENOMEM;
    a->slots = e;
    struct conn **w = realloc(a->slot_conn, cap * sizeof *w);
    if (!w)
        return CUT_ENOMEM;
    a->slot_conn = w;
    a->cap = cap;
    return 0;
}

/* An event about a connection closed to make room: conn_event() plus its state and idleness. */
static void evicted_event(struct conn *cn)
{
    char more[96];
    uint64_t now = clock_mono_us();
    snprintf(more, sizeof more, ",\"state\":\"%s\",\"idle_ms\":%llu", state_names[cn->st],
             (unsigned long long)(now > cn->last_us ? (now - cn->last_us) / 1000 : 0));
    conn_event(cn, "admin_connection_evicted",
               "the connection table was full and this connection was the idlest", more);
}

/* Makes room for one more connection while admin.max_clients are open: frees every connection
 * whose peer has already closed (its close may still be queued in the event loop behind this
 * accept: counting it is what refused a client that reconnects at once), then evicts, one at a
 * time, the connection connslots_choose() picks. Returns 0, or CUT_ELIMIT when the table is
 * still full (every connection being handled), or CUT_ENOMEM. */
static int make_room(struct admin *a, unsigned max)
{
    if (a->nconns < max)
        return 0;
    for (struct conn *cn = a->conns, *next; cn; cn = next) {
        next = cn->next;
        if (!cn->handling && cn->st != ACS_WRITING && peer_gone(cn)) {
            a->stats.peer_closed++;
            conn_free(cn);
        }
    }
    if (a->nconns < max)
        return 0;
    if (grow_slots(a, a->nconns) < 0)
        return CUT_ENOMEM;
    size_t n = 0;
    for (struct conn *cn = a->conns; cn; cn = cn->next) {
        a->slots[n] = (struct connslots_entry){class_of(cn), cn->last_us, cn->serial};
        a->slot_conn[n++] = cn;
    }
    long i;
    while ((i = connslots_choose(a->slots, n, max)) >= 0) {
        struct conn *victim = a->slot_conn[i];
        a->stats.evicted++;
        evicted_event(victim);
        conn_free(victim);
        n--;
        a->slots[i] = a->slots[n];
        a->slot_conn[i] = a->slot_conn[n];
    }
    return i == CONNSLOTS_ROOM ? 0 : CUT_ELIMIT;
}

/* Sends close_notify and reads whatever the client still sends, for a little while. */
static void linger(struct conn *cn)
{
    cn->st = ACS_LINGER;
    SSL *ssl = bufferevent_openssl_get_ssl(cn->bev);
    if (ssl && SSL_is_init_finished(ssl))
        (void)SSL_shutdown(ssl); /* best effort: the output is empty, so nothing interleaves */
    ERR_clear_error();
    evbuffer_drain(bufferevent_get_input(cn->bev),
                   evbuffer_get_length(bufferevent_get_input(cn->bev)));
    bufferevent_enable(cn->bev, EV_READ);
    arm(cn, ADMIN_LINGER_MS);
}

/* Queues one reply: the head, body (taken; NULL means out of memory) and a newline. */
static void respond(struct conn *cn, int status, char *body, int close, const char *allow)
{
    static const char oom[] = "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"internal\","
                              "\"message\":\"out of memory\"}}";
    struct evbuffer *out = bufferevent_get_output(cn->bev);
    if (!body)
        status = 500;
    const char *text = body ? body : oom;
    size_t n = strlen(text);
    char head[512];
    size_t hn = admin_http_head(head, sizeof head, status, n + 1, close, allow);
    if (hn == 0 || evbuffer_add(out, head, hn) < 0 || evbuffer_add(out, text, n) < 0 ||
        evbuffer_add(out, "\n", 1) < 0)
        close = 1; /* the reply is incomplete: the client must not wait for more */
    free(body);
    cn->st = ACS_WRITING;
    cn->close_after = close;
    if (close)
        bufferevent_disable(cn->bev, EV_READ);
    arm(cn, cfg_of(cn)->request_timeout);
}

/* The reply of a change that waited for the fleet store (cmd_later_fn). */
static void on_later(void *ctx, char *reply, const char *code)
{
    struct conn *cn = ctx;
    cn->pending = NULL;
    cn->handling = 0;
    respond(cn, admin_http_status_for(code), reply, cn->pending_close, NULL);
    if (!cn->pending_close)
        bufferevent_enable(cn->bev, EV_READ);
}

/* A refusal decided by this transport (not by a control operation): audited with code and
 * message like any control refusal, answered with the fitting status. */
static void refuse(struct conn *cn, const struct cmd_peer *peer, int status, const char *code,
                   const char *message, int close, const char *allow)
{
    respond(cn, status, commands_error_reply(cn->owner->host, peer, code, message), close, allow);
}

/* Handles one complete request (head parsed into req, body[0..blen) follows it). */
static void handle(struct conn *cn, const struct h1_request *req, const char *body, size_t blen)
{
    struct cmd_host *c = cn->owner->host;
    struct cmd_peer peer = {.uid = -1,
                            .gid = -1,
                            .user = cn->subject,
                            .address = cn->peer,
                            .role = admin_http_role_for(c->cfg(c->ctx), cn->subject)};
    int close = !(req->conn_flags & H1_CF_KEEP_ALIVE);
    char msg[ADMIN_SUBJECT_CAP + 128];

    if (cn->busy) {
        refuse(cn, &peer, 503, "busy", "too many admin API connections", 1, NULL);
        return;
    }
    const char *allow = NULL;
    char route[ADMIN_HTTP_ROUTE_MAX + 1];
    enum admin_http_resource res = admin_http_resource(req->method, req->target, &allow, route);
    if (peer.role == CUT_ROLE_NONE) {
        snprintf(msg, sizeof msg, "the certificate subject \"%s\" has no role (admin.roles)",
                 cn->subject);
        const char *line = res == ADMIN_HTTP_CONTROL  ? body
                           : res == ADMIN_HTTP_STATUS ? "{\"op\":\"status\"}"
                                                      : "";
        size_t len = res == ADMIN_HTTP_CONTROL ? blen : strlen(line);
        respond(cn, 403, commands_refuse(c, &peer, line, len, "forbidden", msg), close, NULL);
        return;
    }
    switch (res) {
    case ADMIN_HTTP_NOT_FOUND:
        refuse(cn, &peer, 404, "not_found", "no such resource (POST /v1/control, GET /v1/status)",
               close, NULL);
        return;
    case ADMIN_HTTP_BAD_METHOD:
        snprintf(msg, sizeof msg, "this resource takes %s only", allow);
        refuse(cn, &peer, 405, "method_not_allowed", msg, close, allow);
        return;
    case ADMIN_HTTP_BAD_QUERY:
        refuse(cn, &peer, 400, "bad_request",
               "the only query is ?route=NAME on /v1/status; /v1/control takes none", close, NULL);
        return;
    case ADMIN_HTTP_STATUS: {
        char line[160];
        if (route[0])
            snprintf(line, sizeof line,
                     "{\"v\":1,\"id\":\"status\",\"op\":\"status\",\"args\":{\"route\":\"%s\"}}",
                     route); /* the name is [A-Za-z0-9._-]: nothing to escape */
        else
            snprintf(line, sizeof line, "{\"v\":1,\"id\":\"status\",\"op\":\"status\"}");
        const char *code = NULL;
        char *reply = commands_handle(c, &peer, line, strlen(line), &code, NULL, NULL, NULL);
        respond(cn, admin_http_status_for(code), reply, close, NULL);
        return;
    }
    case ADMIN_HTTP_CONTROL: {
        const char *code = NULL;
        char *reply = commands_handle(c, &peer, body, blen, &code, on_later, cn, &cn->pending);
        if (!reply && cn->pending) { /* the store's transaction runs: the reply comes later */
            cn->pending_close = close;
            cn->handling = 1;
            bufferevent_disable(cn->bev, EV_READ);
            return;
        }
        respond(cn, admin_http_status_for(code), reply, close, NULL);
        return;
    }
    }
}

/* A request head the parser refused (status from h1_parse_request()). */
static void refuse_head(struct conn *cn, int status)
{
    struct cmd_host *c = cn->owner->host;
    struct cmd_peer peer = {.uid = -1,
                            .gid = -1,
                            .user = cn->subject,
                            .address = cn->peer,
                            .role = admin_http_role_for(c->cfg(c->ctx), cn->subject)};
    const char *code = status == 414 || status == 431 ? "too_large"
                       : status == 500                ? "internal"
                                                      : "bad_request";
    const char *msg = status == 500   ? "out of memory"
                      : status == 414 ? "request line over 4 KiB"
                      : status == 431 ? "request head over 16 KiB or 64 fields"
                      : status == 501 ? "unsupported transfer coding"
                      : status == 505 ? "HTTP version not supported (HTTP/1.1 only)"
                                      : "malformed HTTP request";
    refuse(cn, &peer, status, code, msg, 1, NULL);
}

/* Handles every complete request in the input, one at a time. */
static void process(struct conn *cn)
{
    struct evbuffer *in = bufferevent_get_input(cn->bev);
    const struct cfg_admin *ca = cfg_of(cn);
    const struct h1_limits lim = {ADMIN_MAX_LINE, ADMIN_MAX_HEAD, ADMIN_MAX_HEADERS};
    while (!cn->pending && (cn->st == ACS_READING || cn->st == ACS_IDLE)) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        if (cn->st == ACS_IDLE) { /* the first byte of the next request: its deadline starts */
            cn->st = ACS_READING;
            arm(cn, ca->request_timeout);
        }
        struct h1_request req;
        struct http_field fields[ADMIN_MAX_HEADERS];
        int status = 400;
        size_t look = avail < ADMIN_MAX_HEAD ? avail : ADMIN_MAX_HEAD;
        const char *buf = (const char *)evbuffer_pullup(in, (ssize_t)look);
        int n = buf ? h1_parse_request(buf, look, &lim, &req, fields, ADMIN_MAX_HEADERS, &status)
                    : CUT_ENOMEM;
        if (n == CUT_EAGAIN)
            return; /* the parser says 431 itself once the head passes ADMIN_MAX_HEAD */
        if (n < 0) {
            refuse_head(cn, n == CUT_ENOMEM ? 500 : status);
            return;
        }
        struct cmd_peer peer = {
            .uid = -1, .gid = -1, .user = cn->subject, .address = cn->peer, .role = CUT_ROLE_NONE};
        if (req.body == H1_BODY_CHUNKED) {
            peer.role = admin_http_role_for(cn->owner->host->cfg(cn->owner->host->ctx), cn->subject);
            refuse(cn, &peer, 411, "bad_request", "send the body with a Content-Length", 1, NULL);
            return;
        }
        uint64_t blen = req.body == H1_BODY_LENGTH ? req.content_length : 0;
        if (blen > ADMIN_HTTP_MAX_BODY) {
            peer.role = admin_http_role_for(cn->owner->host->cfg(cn->owner->host->ctx), cn->subject);
            refuse(cn, &peer, 413, "too_large", "request body over 64 KiB", 1, NULL);
            return;
        }
        size_t need = (size_t)n + (size_t)blen;
        if (avail < need) {
            if ((req.conn_flags & H1_CF_EXPECT_CONTINUE) && !cn->continued) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                evbuffer_add(bufferevent_get_output(cn->bev), cont, sizeof cont - 1);
                cn->continued = 1;
            }
            return;
        }
        /* the whole request is here: one contiguous copy, parsed again for fresh slices */
        buf = (const char *)evbuffer_pullup(in, (ssize_t)need);
        if (!buf ||
            h1_parse_request(buf, need, &lim, &req, fields, ADMIN_MAX_HEADERS, &status) != n) {
            refuse_head(cn, 500);
            return;
        }
        cn->handling = 1;
        handle(cn, &req, buf + n, (size_t)blen);
        cn->handling = 0;
        evbuffer_drain(in, need);
        cn->continued = 0;
    }
}

/* ---- callbacks --------------------------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *cn = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (cn->st == ACS_LINGER) {
        size_t n = evbuffer_get_length(in);
        cn->lingered += n;
        evbuffer_drain(in, n);
        if (cn->lingered > ADMIN_LINGER_BYTES)
            conn_free(cn);
        return;
    }
    cn->last_us = clock_mono_us();
    process(cn);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *cn = arg;
    if (cn->st != ACS_WRITING || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        return;
    if (cn->close_after) {
        linger(cn);
        return;
    }
    cn->st = ACS_IDLE;
    cn->last_us = clock_mono_us();
    arm(cn, cfg_of(cn)->idle_timeout);
    process(cn); /* a pipelined request may be waiting */
}

/* Why a handshake failed, from OpenSSL's error queue and the verification result. */
static void handshake_reason(struct conn *cn, char *buf, size_t cap, char *more, size_t mcap)
{
    unsigned long e, first = 0;
    while ((e = bufferevent_get_openssl_error(cn->bev)) != 0)
        if (!first)
            first = e; /* the most recent (the queue pops from the end) */
    SSL *ssl = bufferevent_openssl_get_ssl(cn->bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    const char *why = first ? ERR_reason_error_string(first) : NULL;
    snprintf(buf, cap, "%s", why ? why : "the connection closed during the handshake");
    more[0] = '\0';
    if (vr != X509_V_OK)
        snprintf(more, mcap, ",\"verify\":\"%s\"", X509_verify_cert_error_string(vr));
    /* the refused certificate's subject, when one was presented and failed verification */
    if (ssl && tls_ssl_rejected_subject(ssl, cn->subject, sizeof cn->subject) >= sizeof cn->subject)
        cn->subject[0] = '\0';
    ERR_clear_error();
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *cn = arg;
    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        size_t n = ssl ? tls_ssl_peer_subject(ssl, cn->subject, sizeof cn->subject) : 0;
        if (n + 1 >= sizeof cn->subject) {
            cn->subject[0] = '\0';
            conn_event(cn, "admin_tls_refused", "the client certificate's subject is too long",
                       NULL);
            conn_free(cn);
            return;
        }
        cn->st = ACS_READING; /* the request deadline still runs from the accept */
        cn->last_us = clock_mono_us();
        process(cn);
        return;
    }
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (cn->st == ACS_HANDSHAKE && ssl && SSL_get_rbio(ssl) &&
        BIO_number_read(SSL_get_rbio(ssl)) == 0) {
        /* closed before a ClientHello: a TCP probe (a load balancer or kubelet health check),
         * not a refused handshake */
    } else if (cn->st == ACS_HANDSHAKE) {
        char reason[256], more[160];
        handshake_reason(cn, reason, sizeof reason, more, sizeof more);
        conn_event(cn, "admin_tls_refused", reason, more);
    } else if (cn->st == ACS_READING && evbuffer_get_length(bufferevent_get_input(bev)) > 0 &&
               (what & BEV_EVENT_ERROR)) {
        conn_event(cn, "admin_connection_error", "the connection failed inside a request", NULL);
    }
    conn_free(cn);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *cn = arg;
    (void)fd;
    (void)what;
    if (cn->st == ACS_IDLE)
        cn->owner->stats.idle_timeouts++;
    else if (cn->st != ACS_LINGER)
        cn->owner->stats.request_timeouts++;
    if (cn->st == ACS_HANDSHAKE)
        conn_event(cn, "admin_tls_refused", "no complete handshake within request_timeout_ms",
                   NULL);
    else if (cn->st == ACS_READING)
        conn_event(cn, "admin_request_timeout", "no complete request within request_timeout_ms",
                   NULL);
    else if (cn->st == ACS_WRITING)
        conn_event(cn, "admin_request_timeout",
                   "the reply was not read within "
                   "request_timeout_ms",
                   NULL);
    conn_free(cn);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct admin *a = arg;
    struct cmd_host *c = a->host;
    const struct cfg_admin *ca = &c->cfg(c->ctx)->admin;
    (void)l;
    (void)salen;
    char peer[64];
    ctlurl_addr_text(sa, peer, sizeof peer);
    /* a full table makes room; only when nobody can give way is this one told busy or closed */
    int full = certs_current(a->certs)->admin && make_room(a, ca->max_clients) < 0;
    if (a->nconns >= ca->max_clients + ADMIN_OVERFLOW || !certs_current(a->certs)->admin) {
        if (certs_current(a->certs)->admin)
            a->stats.refused++;
        close(fd);
        char extra[160];
        snprintf(extra, sizeof extra, ",\"peer\":\"%s\",\"reason\":\"%s\"", peer,
                 certs_current(a->certs)->admin ? "too many admin API connections" : "no certificate loaded");
        admin_event(a, "admin_connection_refused", extra);
        return;
    }
    struct conn *cn = calloc(1, sizeof *cn);
    SSL *ssl = cn ? tls_ssl_new(certs_current(a->certs)->admin) : NULL;
    if (cn)
        cn->timer = evtimer_new(a->base, on_timer, cn);
    if (!cn || !ssl || !cn->timer) {
        tls_ssl_free(ssl);
        if (cn && cn->timer)
            event_free(cn->timer);
        free(cn);
        close(fd);
        return;
    }
    cn->bev = bufferevent_openssl_socket_new(a->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
    if (!cn->bev) { /* out of memory (libevent 2.1 frees nothing it did not allocate) */
        tls_ssl_free(ssl);
        event_free(cn->timer);
        free(cn);
        close(fd);
        return;
    }
    cn->owner = a;
    snprintf(cn->peer, sizeof cn->peer, "%s", peer);
    cn->st = ACS_HANDSHAKE;
    cn->last_us = clock_mono_us();
    cn->serial = a->accepted++;
    cn->busy = full;
    if (cn->busy)
        a->stats.busy++;
    CUT_LIST_PUSH(&a->conns, cn, next, prev);
    a->nconns++;
    bufferevent_openssl_set_allow_dirty_shutdown(cn->bev, 1);
    bufferevent_setcb(cn->bev, on_read, on_write, on_event, cn);
    bufferevent_setwatermark(cn->bev, EV_READ, 0, ADMIN_MAX_HEAD + ADMIN_HTTP_MAX_BODY);
    bufferevent_enable(cn->bev, EV_READ | EV_WRITE);
    arm(cn, ca->request_timeout);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct admin *a = arg;
    (void)fd;
    (void)what;
    evconnlistener_enable(a->listener);
}

/* accept() failed (EMFILE, ENOBUFS, ...): pause accepting briefly rather than spin. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct admin *a = arg;
    char extra[160];
    snprintf(extra, sizeof extra, ",\"reason\":\"accept: %s\"", strerror(errno));
    admin_event(a, "admin_accept_failed", extra);
    evconnlistener_disable(l);
    struct timeval tv = {0, ADMIN_ACCEPT_PAUSE_MS * 1000};
    event_add(a->ev_resume, &tv);
}

/* ---- lifecycle --------------------------------------------------------------------------- */

struct admin *admin_new(struct cmd_host *host, struct event_base *base,
                        const struct certs *certs, char *err, size_t cap)
{
    const struct cfg_admin *ca = &host->cfg(host->ctx)->admin;
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (addr_numeric(ca->host, ca->port, &ss, &sslen) != 0) {
        snprintf(err, cap, "admin.address %s: not a numeric address", ca->address);
        return NULL;
    }
    struct admin *a = calloc(1, sizeof *a);
    if (a)
        a->ev_resume = evtimer_new(base, on_resume, a);
    if (!a || !a->ev_resume) {
        free(a);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    a->host = host;
    a->base = base;
    a->certs = certs;
    a->listener = evconnlistener_new_bind(
        a->base, on_accept, a, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        64, (struct sockaddr *)&ss, (int)sslen);
    if (!a->listener) {
        snprintf(err, cap, "admin.address %s: %s", ca->address, strerror(errno));
        event_free(a->ev_resume);
        free(a);
        return NULL;
    }
    evconnlistener_set_error_cb(a->listener, on_accept_error);
    return a;
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    while (a->conns)
        conn_free(a->conns);
    evconnlistener_free(a->listener);
    event_free(a->ev_resume);
    free(a->slots);
    free(a->slot_conn);
    free(a);
}

void admin_stats(const struct admin *a, struct admin_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!a)
        return;
    *out = a->stats;
    out->open = a->nconns;
}

/* cutoverctl.c - the command-line client of cutover's control plane (docs/cutoverctl.md).
 *
 * Speaks the control protocol (docs/control-protocol.md) to one or more replicas, over their
 * control sockets (newline-delimited JSON over a Unix stream socket) or their HTTPS admin APIs
 * (POST /v1/control with a client certificate; a DNS name fans out to every address it resolves
 * to). Every command goes to every replica in parallel, each exchange bounded by --timeout with
 * non-blocking sockets (and non-blocking OpenSSL) and poll(2); the per-replica outcomes
 * are folded into one exit code (see enum ctl_exit). Mutating commands can wait for a barrier
 * (--wait: every replica reports the generation it acknowledged). `shift` starts a server-side
 * plan (op `shift`: steps, hold time, gates; cutover itself advances it and rolls it back when a
 * gate fails), then watches it through `status` once a second until it is promoted or rolled
 * back; Ctrl-C aborts the plan with `shift-abort`, leaving the current step applied.
 *
 * Single-threaded. All state is reachable from `struct cli`; the only global is the signal flag
 * (and its self-pipe) that the SIGINT/SIGTERM handler of `shift` sets.
 * Depends on jansson, OpenSSL, and from libcutover the HTTP/1.1 response parser
 * (proxy/h1_parse.c) and the endpoint parser (control/ctlurl.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/text.h"
#include "proxy/http/h1_parse.h"
#include "core/version.h"
#include "control/ctlurl.h"


#define CTL_DEFAULT_SOCKET "/run/cutover/control.sock"
#define CTL_MAX_REPLICAS 64
#define CTL_MAX_POS 256
#define CTL_MAX_REQUEST (64u << 10) /* the server's request line limit, newline included */
#define CTL_MAX_REPLY (16u << 20)   /* we refuse longer reply lines */
#define CTL_MAX_REASON 512
#define CTL_MAX_STEPS 100
#define CTL_MAX_GATES 8
#define CTL_POLL_RETRY_MS 10 /* connect() said EAGAIN (listen backlog full): retry after */
#define CTL_BARRIER_PERIOD_MS 100
#define CTL_HTTP_MAX_HEAD 65536 /* a longer HTTP response head is a protocol error */

/* Exit codes (documented in docs/cutoverctl.md; keep them in sync). */
enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_USAGE = 2,      /* usage error, or refused as invalid by the server */
    CTL_EXIT_DENIED = 3,     /* the caller's role may not do this */
    CTL_EXIT_UNREACH = 4,    /* unreachable / timeout / busy / internal, on every replica */
    CTL_EXIT_PARTIAL = 5,    /* some replicas succeeded, some failed */
    CTL_EXIT_ROLLEDBACK = 6, /* cutover rolled the shift's plan back (a gate failed) */
    CTL_EXIT_INTERRUPTED = 130,
};

/* Command-specific options, as bits (which command accepts which). */
enum {
    CTL_OPT_REASON = 1u << 0,
    CTL_OPT_EXPECT = 1u << 1,
    CTL_OPT_LIMIT = 1u << 2,
    CTL_OPT_TO = 1u << 3,
    CTL_OPT_GATE = 1u << 4,
    CTL_OPT_STEPS = 1u << 5,
    CTL_OPT_INTERVAL = 1u << 6,
    CTL_OPT_MINREQ = 1u << 7,
    CTL_OPT_REFUSALS = 1u << 8,
};

/* Where one replica's exchange is. */
enum ctl_rstate {
    CTL_RS_IDLE,
    CTL_RS_RETRY,
    CTL_RS_CONNECTING,
    CTL_RS_HANDSHAKE, /* HTTPS: the TLS handshake */
    CTL_RS_SENDING,
    CTL_RS_RECEIVING,
    CTL_RS_DONE,
};

/* One replica (a control socket, or one address of an HTTPS admin API endpoint) and the
 * outcome of its last exchange. */
struct replica {
    const char *socket; /* a socket path (borrowed from argv or the environment), or for HTTPS
                           the label: "https://HOST:PORT" or "https://NAME:PORT (ADDRESS)" */

    /* HTTPS admin API replicas */
    int https;
    const struct ctlurl *url; /* borrowed from struct cli: the name SNI and verification use */
    const char *endpoint;     /* the --endpoint text */
    struct sockaddr_storage addr;
    socklen_t addrlen; /* 0: the name did not resolve (resolve_err says why) */
    char addr_text[64];
    char label[CTLURL_HOST_MAX + 96];
    char resolve_err[300];
    SSL *ssl;
    short want; /* POLLIN or POLLOUT: what the TLS exchange waits for */

    /* the exchange in flight (buffers owned, freed at the end of each exchange) */
    enum ctl_rstate st;
    int fd;
    char *out;
    size_t outlen, outoff;
    char *in;
    size_t inlen, incap;
    long long retry_at;
    int send_failed;

    /* the outcome of the last exchange */
    json_t *reply;  /* owned: the reply object when the server answered, else NULL */
    int ok;         /* the server answered ok:true (and the barrier, if any, was met) */
    int exit_class; /* when !ok: CTL_EXIT_USAGE, _DENIED or _UNREACH */
    char code[40];  /* when !ok: the server's error code, or unreachable/timeout/protocol/... */
    char msg[700];  /* when !ok: a sentence for people */
    long long generation;
    int has_generation;
};

/* Where to send: a control socket, or an HTTPS admin API endpoint (expanded into one replica
 * per address once the options are read). */
struct target {
    const char *text; /* a socket path, or the https:// URL */
    int https;
    struct ctlurl url;
};

/* The whole invocation: options, positionals, replicas. */
struct cli {
    struct target targets[CTL_MAX_REPLICAS];
    size_t ntargets;
    const char *cacert, *cert, *key; /* --cacert/--cert/--key, else CUTOVER_CACERT/_CERT/_KEY */
    SSL_CTX *tls;                    /* made when an https endpoint is given */
    int json;
    long long timeout_ms;
    int wait;
    long long wait_timeout_ms;
    const char *id;
    unsigned long round; /* requests sent so far (for generated ids) */

    unsigned seen; /* CTL_OPT_* given on the command line */
    const char *reason;
    long long expect;
    long long limit;
    const char *to, *steps, *interval;
    const char *gates[CTL_MAX_GATES]; /* --gate, repeatable */
    size_t ngates;
    long long min_requests;

    const char *pos[CTL_MAX_POS]; /* positionals, pos[0] is the command */
    size_t npos;

    struct replica rs[CTL_MAX_REPLICAS];
    size_t n;
    int tty; /* stdout is a terminal (live progress line) */
};

struct cmd;
typedef int (*cmd_run_fn)(struct cli *c, const struct cmd *cmd);

/* The command table: each entry carries its own usage and help text. */
struct cmd {
    const char *name;
    const char *op; /* protocol op */
    int mutating;
    unsigned opts; /* CTL_OPT_* accepted */
    int reason_required;
    size_t min_pos, max_pos;  /* positionals after the command name */
    const char *pos_names[3]; /* argument names of the positionals (simple commands) */
    cmd_run_fn run;
    const char *usage;
    const char *help;
};

/* ---- small utilities ------------------------------------------------------------------------ */

static volatile sig_atomic_t g_stop; /* SIGINT/SIGTERM seen (shift only) */
static int g_sigpipe[2] = {-1, -1};  /* self-pipe that wakes the shift's interval wait */

static void on_stop_signal(int sig)
{
    int saved = errno;
    g_stop = sig;
    if (g_sigpipe[1] >= 0) {
        char b = 1;
        ssize_t w = write(g_sigpipe[1], &b, 1);
        (void)w;
    }
    errno = saved;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("cutoverctl: out of memory\n", stderr);
        exit(CTL_EXIT_UNREACH);
    }
    return p;
}

/* Parses a percentage with at most two decimals ("25", "12.5", "12.34", "25%") into hundredths
 * (0..10000). Returns 0 or -1. */
static int parse_pct(const char *s, long *out)
{
    long whole = 0, frac = 0;
    int nd = 0, nf = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        whole = whole * 10 + (*p - '0');
        if (whole > 100)
            return -1;
        p++;
        nd++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (++nf > 2)
                return -1;
            frac = frac * 10 + (*p - '0');
            p++;
        }
        if (nf == 0)
            return -1;
        if (nf == 1)
            frac *= 10;
    }
    if (*p == '%')
        p++;
    if (*p || nd == 0)
        return -1;
    long v = whole * 100 + frac;
    if (v > 10000)
        return -1;
    *out = v;
    return 0;
}

/* Parses a duration: a decimal number with an optional unit ms, s, m or h (no unit: seconds).
 * Returns milliseconds, or -1. */
static long long parse_duration(const char *s)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0 && v <= 1e9)) /* before the conversion below; not NaN */
        return -1;
    double mul;
    if (!*end || !strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else
        return -1;
    return (long long)(v * mul + 0.5);
}

static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s)
        return -1;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* A weight (JSON number, a percentage) in hundredths, rounded; -1 when not a number or out of
 * 0..1e9 % (a server's nonsense must not reach the conversion: out of range, it is undefined
 * behaviour). */
static long json_pct(const json_t *v)
{
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v) * 100.0;
    if (!(d >= 0 && d <= 1e11))
        return -1;
    return (long)(d + 0.5);
}

/* A JSON number for hundredths: an integer when whole, else a real with two decimals. */
static json_t *pct_json(long h)
{
    if (h % 100 == 0)
        return json_integer(h / 100);
    return json_real((double)h / 100.0);
}

/* Formats hundredths as "25" or "12.5" or "12.34" into buf. */
static const char *pct_str(long h, char *buf, size_t cap)
{
    if (h < 0)
        snprintf(buf, cap, "?");
    else
        text_percent((unsigned long)h, buf, cap);
    return buf;
}

/* "blue=90% green=10%" for a weights object, into buf. */
static const char *weights_str(const json_t *w, char *buf, size_t cap)
{
    const char *k;
    json_t *v;
    size_t off = 0;
    buf[0] = 0;
    if (!json_is_object(w)) {
        snprintf(buf, cap, "?");
        return buf;
    }
    json_object_foreach((json_t *)w, k, v)
    {
        char p[32];
        int n = snprintf(buf + off, cap - off, "%s%s=%s%%", off ? " " : "", k,
                         pct_str(json_pct(v), p, sizeof p));
        if (n < 0 || (size_t)n >= cap - off)
            break;
        off += (size_t)n;
    }
    return buf;
}

/* Two weights objects name the same pools with the same percentages. */
static int weights_same(const json_t *a, const json_t *b)
{
    const char *k;
    json_t *v;
    if (!json_is_object(a) || !json_is_object(b) || json_object_size(a) != json_object_size(b))
        return 0;
    json_object_foreach((json_t *)a, k, v)
    {
        json_t *w = json_object_get(b, k);
        if (!w || json_pct(v) != json_pct(w))
            return 0;
    }
    return 1;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* ---- output helpers ------------------------------------------------------------------------- */

/* A usage error: message on stderr (and a JSON document on stdout with --json). Returns 2. */
static int usage_error(const struct cli *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cutoverctl: %s\nTry 'cutoverctl --help'.\n", msg);
    if (c && c->json) {
        json_t *doc =
            json_pack("{s:b, s:i, s:{s:s, s:s}, s:[]}", "ok", 0, "exit_code", CTL_EXIT_USAGE,
                      "error", "code", "usage", "message", msg, "replicas");
        char *s = json_dumps(doc, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(doc);
    }
    return CTL_EXIT_USAGE;
}

/* ---- one exchange with every replica, in parallel -------------------------------------------- */

static void replica_fail(struct replica *r, int exit_class, const char *code, const char *fmt, ...)
{
    va_list ap;
    r->ok = 0;
    r->exit_class = exit_class;
    snprintf(r->code, sizeof r->code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    SSL_free(r->ssl);
    r->ssl = NULL;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->st = CTL_RS_DONE;
}

/* The exchange is over (a reply was taken): releases the connection. */
static void replica_done(struct replica *r)
{
    SSL_free(r->ssl);
    r->ssl = NULL;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->st = CTL_RS_DONE;
}

/* The exit class of a server error code (see docs/cutoverctl.md, "Exit codes"). */
static int code_exit_class(const char *code)
{
    if (!strcmp(code, "denied") || !strcmp(code, "forbidden"))
        return CTL_EXIT_DENIED;
    if (!strcmp(code, "busy") || !strcmp(code, "internal"))
        return CTL_EXIT_UNREACH;
    /* bad_request, unsupported_version, unknown_op, invalid_argument, not_found, conflict,
     * too_large, and codes this client does not know: refused as invalid */
    return CTL_EXIT_USAGE;
}

static void replica_start_connect(struct replica *r)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(r->socket) >= sizeof sa.sun_path) {
        replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "socket path too long (max %zu bytes)",
                     sizeof sa.sun_path - 1);
        return;
    }
    memcpy(sa.sun_path, r->socket, strlen(r->socket) + 1);
    r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0) {
        replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "socket: %s", strerror(errno));
        return;
    }
    if (connect(r->fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        r->st = CTL_RS_SENDING;
    } else if (errno == EINPROGRESS) {
        r->st = CTL_RS_CONNECTING;
    } else if (errno == EAGAIN) { /* the listen backlog is full: try again shortly */
        close(r->fd);
        r->fd = -1;
        r->st = CTL_RS_RETRY;
        r->retry_at = (long long)clock_mono_ms() + CTL_POLL_RETRY_MS;
    } else {
        replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "connect: %s", strerror(errno));
    }
}

/* Takes one reply (text[0..len), a JSON object) and sets the replica's outcome. http_status is
 * the HTTP status it came with (HTTPS), 0 for the control socket. */
static void replica_take_reply(struct replica *r, const char *id, const char *text, size_t len,
                               int http_status)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        if (http_status)
            replica_fail(r, CTL_EXIT_UNREACH, "protocol",
                         "HTTP %d without a control reply (the body is not a JSON object)",
                         http_status);
        else
            replica_fail(r, CTL_EXIT_UNREACH, "protocol", "the reply is not a JSON object%s%s",
                         j ? "" : ": ", j ? "" : je.text);
        return;
    }
    const char *rid = json_string_value(json_object_get(j, "id"));
    json_t *ok = json_object_get(j, "ok");
    if (rid && strcmp(rid, id)) {
        json_decref(j);
        replica_fail(r, CTL_EXIT_UNREACH, "protocol",
                     "the reply's id does not match the request's (%s)", id);
        return;
    }
    if (!json_is_boolean(ok)) {
        json_decref(j);
        replica_fail(r, CTL_EXIT_UNREACH, "protocol", "the reply has no boolean \"ok\"");
        return;
    }
    json_t *gen = json_object_get(j, "generation");
    if (json_is_integer(gen)) {
        r->generation = json_integer_value(gen);
        r->has_generation = 1;
    }
    r->reply = j;
    if (json_is_true(ok)) {
        r->ok = 1;
        replica_done(r);
    } else {
        json_t *err = json_object_get(j, "error");
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *msg = json_string_value(json_object_get(err, "message"));
        const char *path = json_string_value(json_object_get(err, "path"));
        code = code ? code : "unknown";
        replica_fail(r, code_exit_class(code), code, "%s%s%s%s", msg ? msg : "(no message)",
                     path ? " (at " : "", path ? path : "", path ? ")" : "");
    }
}

/* Takes the first complete reply line in r->in, if any. Returns 1 when the exchange is done. */
static int replica_take_line(struct replica *r, const char *id)
{
    for (;;) {
        char *nl = memchr(r->in, '\n', r->inlen);
        if (!nl) {
            if (r->inlen > CTL_MAX_REPLY) {
                replica_fail(r, CTL_EXIT_UNREACH, "protocol", "reply longer than %u MiB refused",
                             CTL_MAX_REPLY >> 20);
                return 1;
            }
            return 0;
        }
        size_t len = (size_t)(nl - r->in);
        size_t i = 0;
        while (i < len && (r->in[i] == ' ' || r->in[i] == '\t' || r->in[i] == '\r'))
            i++;
        if (i == len) { /* blank line: skip it */
            memmove(r->in, nl + 1, r->inlen - len - 1);
            r->inlen -= len + 1;
            continue;
        }
        if (len > CTL_MAX_REPLY) {
            replica_fail(r, CTL_EXIT_UNREACH, "protocol", "reply longer than %u MiB refused",
                         CTL_MAX_REPLY >> 20);
            return 1;
        }
        replica_take_reply(r, id, r->in, len, 0);
        return 1;
    }
}

static void replica_on_readable(struct replica *r, const char *id)
{
    for (;;) {
        if (r->incap - r->inlen < 4096) {
            size_t ncap = r->incap ? r->incap * 2 : 8192;
            if (ncap > CTL_MAX_REPLY + 8192)
                ncap = CTL_MAX_REPLY + 8192;
            if (ncap <= r->incap) { /* full and still no newline */
                replica_fail(r, CTL_EXIT_UNREACH, "protocol", "reply longer than %u MiB refused",
                             CTL_MAX_REPLY >> 20);
                return;
            }
            char *nb = realloc(r->in, ncap);
            if (!nb) {
                replica_fail(r, CTL_EXIT_UNREACH, "protocol", "out of memory reading the reply");
                return;
            }
            r->in = nb;
            r->incap = ncap;
        }
        ssize_t got = recv(r->fd, r->in + r->inlen, r->incap - r->inlen, 0);
        if (got > 0) {
            size_t before = r->inlen;
            r->inlen += (size_t)got;
            /* only a new newline can complete a line */
            if (memchr(r->in + before, '\n', (size_t)got) || r->inlen > CTL_MAX_REPLY) {
                if (replica_take_line(r, id))
                    return;
            }
            continue;
        }
        if (got == 0) {
            replica_fail(r, CTL_EXIT_UNREACH, "protocol",
                         "the server closed the connection before replying%s",
                         r->inlen ? " (incomplete reply line)" : "");
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "recv: %s", strerror(errno));
        return;
    }
}

static void replica_on_writable(struct replica *r)
{
    if (r->st == CTL_RS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "connect: %s", strerror(err));
            return;
        }
        r->st = CTL_RS_SENDING;
    }
    while (r->outoff < r->outlen) {
        ssize_t w = send(r->fd, r->out + r->outoff, r->outlen - r->outoff, MSG_NOSIGNAL);
        if (w > 0) {
            r->outoff += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            /* the server may have said why (busy, too_large) before closing */
            r->send_failed = 1;
            r->st = CTL_RS_RECEIVING;
            return;
        }
        replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "send: %s", strerror(errno));
        return;
    }
    r->st = CTL_RS_RECEIVING;
}

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
static void https_fail(struct replica *r, int err, const char *stage)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    long vr = r->ssl ? SSL_get_verify_result(r->ssl) : X509_V_OK;
    int sys = errno;
    if (e && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK)
        replica_fail(r, CTL_EXIT_UNREACH, "tls",
                     "the server's certificate does not verify for %s: %s", r->url->host,
                     X509_verify_cert_error_string(vr));
    else if (e && server_refused_certificate(ERR_GET_REASON(e)))
        replica_fail(r, CTL_EXIT_DENIED, "certificate_refused",
                     "the server refused the client certificate (%s)", why ? why : "alert");
    else if (err == SSL_ERROR_SYSCALL && !e && sys)
        replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "TLS %s: %s", stage, strerror(sys));
    else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN)
        replica_fail(r, CTL_EXIT_UNREACH, "tls",
                     "the server closed the connection during the TLS %s", stage);
    else
        replica_fail(r, CTL_EXIT_UNREACH, "tls", "TLS %s failed: %s", stage,
                     why ? why : "no details");
    ERR_clear_error();
}

static void https_begin_tls(struct cli *c, struct replica *r)
{
    ERR_clear_error();
    r->ssl = SSL_new(c->tls);
    if (!r->ssl || SSL_set_fd(r->ssl, r->fd) != 1) {
        replica_fail(r, CTL_EXIT_UNREACH, "tls", "out of memory");
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
        replica_fail(r, CTL_EXIT_UNREACH, "tls", "cannot verify the server as %s", r->url->host);
        return;
    }
    SSL_set_connect_state(r->ssl);
    r->st = CTL_RS_HANDSHAKE;
}

static void https_start(struct cli *c, struct replica *r)
{
    (void)c;
    if (r->addrlen == 0) {
        replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "%s", r->resolve_err);
        return;
    }
    r->fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0) {
        replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "socket: %s", strerror(errno));
        return;
    }
    if (connect(r->fd, (struct sockaddr *)&r->addr, r->addrlen) == 0) {
        https_begin_tls(c, r);
    } else if (errno == EINPROGRESS) {
        r->st = CTL_RS_CONNECTING;
        r->want = POLLOUT;
    } else {
        replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "connect: %s", strerror(errno));
    }
}

/* Looks for a complete HTTP response in r->in. Returns 1 when the exchange is over (reply taken
 * or failed), 0 when more is needed. eof: the server closed the connection. */
static int https_take_response(struct replica *r, const char *id, int eof)
{
    const struct h1_limits lim = {8192, CTL_HTTP_MAX_HEAD, 100};
    for (;;) {
        struct h1_response resp;
        struct http_field fields[100];
        int status = 0;
        int n = h1_parse_response(r->in, r->inlen, &lim, CUT_SLICE_LIT("POST"), &resp, fields, 100,
                                  &status);
        if (n == CUT_EAGAIN) {
            if (eof)
                replica_fail(r, CTL_EXIT_UNREACH, "protocol",
                             "the server closed the connection before replying%s",
                             r->inlen ? " (incomplete HTTP response head)" : "");
            return eof;
        }
        if (n < 0) {
            replica_fail(r, CTL_EXIT_UNREACH, "protocol", "malformed HTTP response");
            return 1;
        }
        if (resp.status >= 100 && resp.status < 200) { /* 100 Continue: the reply follows */
            memmove(r->in, r->in + n, r->inlen - (size_t)n);
            r->inlen -= (size_t)n;
            continue;
        }
        size_t blen;
        if (resp.body == H1_BODY_LENGTH) {
            if (resp.content_length > CTL_MAX_REPLY) {
                replica_fail(r, CTL_EXIT_UNREACH, "protocol", "reply longer than %u MiB refused",
                             CTL_MAX_REPLY >> 20);
                return 1;
            }
            if (r->inlen - (size_t)n < resp.content_length) {
                if (eof)
                    replica_fail(r, CTL_EXIT_UNREACH, "protocol",
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
            replica_fail(r, CTL_EXIT_UNREACH, "protocol",
                         "HTTP %d with a chunked body (not a control reply)", resp.status);
            return 1;
        }
        replica_take_reply(r, id, r->in + n, blen, resp.status);
        return 1;
    }
}

/* Reads what the server sent; returns when it would block or the exchange is over. */
static void https_receive(struct replica *r, const char *id)
{
    for (;;) {
        if (r->incap - r->inlen < 4096) {
            size_t limit = CTL_MAX_REPLY + CTL_HTTP_MAX_HEAD + 8192;
            size_t ncap = r->incap ? r->incap * 2 : 16384;
            if (ncap > limit)
                ncap = limit;
            if (ncap <= r->incap) {
                replica_fail(r, CTL_EXIT_UNREACH, "protocol", "reply longer than %u MiB refused",
                             CTL_MAX_REPLY >> 20);
                return;
            }
            char *nb = realloc(r->in, ncap);
            if (!nb) {
                replica_fail(r, CTL_EXIT_UNREACH, "protocol", "out of memory reading the reply");
                return;
            }
            r->in = nb;
            r->incap = ncap;
        }
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

/* Runs a replica's HTTPS exchange as far as it goes without blocking. */
static void https_step(struct cli *c, struct replica *r, const char *id)
{
    for (;;) {
        if (r->st == CTL_RS_CONNECTING) {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err) {
                replica_fail(r, CTL_EXIT_UNREACH, "unreachable", "connect: %s", strerror(err));
                return;
            }
            https_begin_tls(c, r);
        } else if (r->st == CTL_RS_HANDSHAKE) {
            ERR_clear_error();
            errno = 0;
            int rc = SSL_connect(r->ssl);
            if (rc == 1) {
                r->st = CTL_RS_SENDING;
                continue;
            }
            int err = SSL_get_error(r->ssl, rc);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                r->want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                return;
            }
            https_fail(r, err, "handshake");
            return;
        } else if (r->st == CTL_RS_SENDING) {
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
            r->st = CTL_RS_RECEIVING;
            r->want = POLLIN;
        } else if (r->st == CTL_RS_RECEIVING) {
            https_receive(r, id);
            return;
        } else {
            return;
        }
    }
}

/* The HTTP request carrying one control request (body[0..blen), JSON) into r->out. */
static void https_request(struct replica *r, const char *body, size_t blen)
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
    r->out = xmalloc(r->outlen);
    memcpy(r->out, head, (size_t)hn);
    memcpy(r->out + hn, body, blen);
    r->outoff = 0;
}

/* Sends reqs[i] (borrowed; NULL skips replica i) to each replica and waits for every reply, all
 * in parallel, bounded by timeout_ms overall. Sets "v" and "id" in each request. Afterwards each
 * participating replica's outcome (ok, reply, code, msg, generation) is set. Never blocks longer
 * than timeout_ms (+ one poll tick). */
static void exchange(struct cli *c, json_t *const *reqs, long long timeout_ms, char *id_out,
                     size_t id_cap)
{
    char id[160];
    c->round++;
    if (c->id && c->round == 1)
        snprintf(id, sizeof id, "%s", c->id);
    else if (c->id)
        snprintf(id, sizeof id, "%s-%lu", c->id, c->round);
    else
        snprintf(id, sizeof id, "cutoverctl-%ld-%lu", (long)getpid(), c->round);
    if (id_out)
        snprintf(id_out, id_cap, "%s", id);

    long long deadline = (long long)clock_mono_ms() + timeout_ms;
    for (size_t i = 0; i < c->n; i++) {
        struct replica *r = &c->rs[i];
        r->st = CTL_RS_IDLE;
        if (!reqs[i])
            continue;
        json_decref(r->reply);
        r->reply = NULL;
        r->ok = 0;
        r->exit_class = 0;
        r->code[0] = r->msg[0] = 0;
        r->has_generation = 0;
        r->fd = -1;
        r->send_failed = 0;
        r->inlen = r->incap = 0;
        r->in = NULL;
        json_object_set_new(reqs[i], "v", json_integer(1));
        json_object_set_new(reqs[i], "id", json_string(id));
        char *s = json_dumps(reqs[i], JSON_COMPACT | JSON_REAL_PRECISION(12));
        if (!s) {
            replica_fail(r, CTL_EXIT_USAGE, "usage", "the request could not be encoded");
            continue;
        }
        size_t slen = strlen(s);
        if (slen + 1 > CTL_MAX_REQUEST) {
            free(s);
            replica_fail(r, CTL_EXIT_USAGE, "usage", "the request is over %u KiB",
                         CTL_MAX_REQUEST >> 10);
            continue;
        }
        if (r->https) {
            https_request(r, s, slen);
            free(s);
            https_start(c, r);
            if (r->st != CTL_RS_DONE && r->st != CTL_RS_CONNECTING)
                https_step(c, r, id);
            continue;
        }
        r->outlen = slen + 1;
        r->out = xmalloc(r->outlen);
        memcpy(r->out, s, slen);
        r->out[slen] = '\n';
        r->outoff = 0;
        free(s);
        replica_start_connect(r);
    }

    struct pollfd pfd[CTL_MAX_REPLICAS];
    size_t who[CTL_MAX_REPLICAS];
    for (;;) {
        size_t np = 0;
        int retrying = 0, pending = 0;
        long long now = (long long)clock_mono_ms();
        for (size_t i = 0; i < c->n; i++) {
            struct replica *r = &c->rs[i];
            if (r->st == CTL_RS_IDLE || r->st == CTL_RS_DONE)
                continue;
            pending = 1;
            if (now >= deadline) {
                replica_fail(r, CTL_EXIT_UNREACH, "timeout", "no reply within %.1f s%s",
                             (double)timeout_ms / 1000.0,
                             r->st == CTL_RS_RECEIVING ? " (request sent)" : "");
                continue;
            }
            if (r->st == CTL_RS_RETRY) {
                if (now >= r->retry_at)
                    replica_start_connect(r);
                if (r->st == CTL_RS_RETRY) {
                    retrying = 1;
                    continue;
                }
                if (r->st == CTL_RS_DONE)
                    continue;
            }
            pfd[np].fd = r->fd;
            if (r->https)
                pfd[np].events = r->want;
            else
                pfd[np].events = r->st == CTL_RS_RECEIVING ? POLLIN : POLLOUT;
            pfd[np].revents = 0;
            who[np++] = i;
        }
        if (!pending)
            break;
        if (np == 0 && !retrying)
            continue; /* everything just finished or timed out */
        long long wait = deadline - now;
        if (retrying && wait > CTL_POLL_RETRY_MS)
            wait = CTL_POLL_RETRY_MS;
        if (wait < 0)
            wait = 0;
        int rc = poll(pfd, np, (int)wait);
        if (rc < 0 && errno != EINTR) {
            for (size_t k = 0; k < np; k++)
                replica_fail(&c->rs[who[k]], CTL_EXIT_UNREACH, "unreachable", "poll: %s",
                             strerror(errno));
            break;
        }
        for (size_t k = 0; rc > 0 && k < np; k++) {
            struct replica *r = &c->rs[who[k]];
            if (!pfd[k].revents)
                continue;
            if (r->https)
                https_step(c, r, id);
            else if (r->st == CTL_RS_RECEIVING)
                replica_on_readable(r, id);
            else
                replica_on_writable(r);
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        struct replica *r = &c->rs[i];
        SSL_free(r->ssl);
        r->ssl = NULL;
        if (r->fd >= 0)
            close(r->fd);
        r->fd = -1;
        free(r->out);
        r->out = NULL;
        free(r->in);
        r->in = NULL;
        r->inlen = r->incap = 0;
    }
}

/* Sends the same request (borrowed) to every replica. */
static void exchange_all(struct cli *c, json_t *req)
{
    json_t *reqs[CTL_MAX_REPLICAS];
    for (size_t i = 0; i < c->n; i++)
        reqs[i] = req;
    exchange(c, reqs, c->timeout_ms, NULL, 0);
}

/* The exit code for the replicas' outcomes: 0 when all ok; 5 when some ok and some not;
 * otherwise the failure class, 2 before 3 before 4 when replicas failed differently. */
static int fold_exit(const struct cli *c)
{
    size_t nok = 0;
    int worst = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->rs[i].ok)
            nok++;
        else if (!worst || c->rs[i].exit_class < worst)
            worst = c->rs[i].exit_class;
    }
    if (nok == c->n)
        return CTL_EXIT_OK;
    if (nok > 0)
        return CTL_EXIT_PARTIAL;
    return worst ? worst : CTL_EXIT_UNREACH;
}

/* --wait: polls `version` on every replica that acknowledged until it reports a generation >=
 * the one it acknowledged, bounded by --wait-timeout. A replica that never does is marked failed
 * (class 4, code wait_timeout). */
static void barrier(struct cli *c)
{
    long long target[CTL_MAX_REPLICAS], seen[CTL_MAX_REPLICAS];
    int pending[CTL_MAX_REPLICAS], saw[CTL_MAX_REPLICAS];
    json_t *saved[CTL_MAX_REPLICAS];
    char lasterr[CTL_MAX_REPLICAS][200];
    size_t left = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct replica *r = &c->rs[i];
        pending[i] = r->ok && r->has_generation;
        target[i] = r->generation;
        saw[i] = 0;
        seen[i] = 0;
        lasterr[i][0] = 0;
        saved[i] = NULL;
        if (pending[i]) {
            saved[i] = json_incref(r->reply);
            left++;
        }
    }
    long long deadline = (long long)clock_mono_ms() + c->wait_timeout_ms;
    json_t *probe = json_pack("{s:s}", "op", "version");
    while (left > 0) {
        long long rem = deadline - (long long)clock_mono_ms();
        if (rem <= 0)
            break;
        json_t *reqs[CTL_MAX_REPLICAS];
        for (size_t i = 0; i < c->n; i++)
            reqs[i] = pending[i] ? probe : NULL;
        exchange(c, reqs, rem < c->timeout_ms ? rem : c->timeout_ms, NULL, 0);
        for (size_t i = 0; i < c->n; i++) {
            struct replica *r = &c->rs[i];
            if (!pending[i])
                continue;
            if (r->ok && r->has_generation) {
                saw[i] = 1;
                seen[i] = r->generation;
                if (r->generation >= target[i]) {
                    pending[i] = 0;
                    left--;
                }
            } else if (!r->ok) {
                snprintf(lasterr[i], sizeof lasterr[i], "%.39s: %.150s", r->code, r->msg);
            }
        }
        if (left == 0)
            break;
        rem = deadline - (long long)clock_mono_ms();
        if (rem <= 0)
            break;
        poll(NULL, 0, (int)(rem < CTL_BARRIER_PERIOD_MS ? rem : CTL_BARRIER_PERIOD_MS));
    }
    json_decref(probe);
    /* restore the acknowledgements, then mark the laggards */
    for (size_t i = 0; i < c->n; i++) {
        struct replica *r = &c->rs[i];
        if (!saved[i])
            continue;
        json_decref(r->reply);
        r->reply = saved[i];
        r->ok = 1;
        r->generation = target[i];
        r->has_generation = 1;
        r->code[0] = r->msg[0] = 0;
        if (pending[i]) {
            char last[260];
            if (saw[i])
                snprintf(last, sizeof last, "it still reports generation %lld", seen[i]);
            else
                snprintf(last, sizeof last, "it did not answer (%.200s)",
                         lasterr[i][0] ? lasterr[i] : "no reply");
            r->ok = 0;
            r->exit_class = CTL_EXIT_UNREACH;
            snprintf(r->code, sizeof r->code, "wait_timeout");
            snprintf(r->msg, sizeof r->msg,
                     "acknowledged generation %lld but %s after %.1f s (--wait-timeout)", target[i],
                     last, (double)c->wait_timeout_ms / 1000.0);
        }
    }
}

/* ---- reports -------------------------------------------------------------------------------- */

/* One replica as JSON: {"socket" | "endpoint" and "address", "ok", "generation", "result" |
 * "error"}. New reference. */
static json_t *replica_json(const struct replica *r)
{
    json_t *o = r->https ? json_pack("{s:s, s:s, s:b}", "endpoint", r->endpoint, "address",
                                     r->addrlen ? r->addr_text : "", "ok", r->ok)
                         : json_pack("{s:s, s:b}", "socket", r->socket, "ok", r->ok);
    json_object_set_new(o, "generation",
                        r->has_generation ? json_integer(r->generation) : json_null());
    if (r->ok) {
        json_t *res = json_object_get(r->reply, "result");
        json_object_set(o, "result", res ? res : json_null());
    } else {
        json_t *err = json_object_get(r->reply, "error");
        if (err && !strcmp(r->code, jstr(err, "code")))
            json_object_set(o, "error", err);
        else
            json_object_set_new(o, "error",
                                json_pack("{s:s, s:s}", "code", r->code, "message", r->msg));
        if (!strcmp(r->code, "wait_timeout"))
            json_object_set(o, "result", json_object_get(r->reply, "result"));
    }
    return o;
}

/* Prints the JSON document {"ok", "exit_code", "command", "replicas": [...]} plus extra's keys
 * (extra taken, may be NULL). */
static void print_json_doc(const struct cli *c, const char *command, int code, json_t *extra)
{
    json_t *doc =
        json_pack("{s:b, s:i, s:s}", "ok", code == 0, "exit_code", code, "command", command);
    if (extra)
        json_object_update(doc, extra);
    json_decref(extra);
    json_t *arr = json_array();
    for (size_t i = 0; i < c->n; i++)
        json_array_append_new(arr, replica_json(&c->rs[i]));
    json_object_set_new(doc, "replicas", arr);
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(doc);
}

static size_t width_of_sockets(const struct cli *c)
{
    size_t w = 0;
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->rs[i].socket) > w)
            w = strlen(c->rs[i].socket);
    return w;
}

/* The server's error.details, one line each, under a failure line: "PATH: MESSAGE" (plus "(line
 * L, column C)" when the problem has a place in the file), e.g. the problems of a refused
 * reload. Prints nothing when the reply has no details. */
static void print_error_details(const struct replica *r, const char *indent)
{
    const json_t *err = json_object_get(r->reply, "error");
    if (r->ok || strcmp(r->code, jstr(err, "code"))) /* not the server's error */
        return;
    const json_t *det = json_object_get(err, "details");
    size_t i;
    const json_t *d;
    json_array_foreach(det, i, d)
    {
        if (!json_is_object(d)) {
            char *s = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
            printf("%s%s\n", indent, s ? s : "?");
            free(s);
            continue;
        }
        const json_t *ln = json_object_get(d, "line"), *col = json_object_get(d, "column");
        printf("%s%s: %s", indent, *jstr(d, "path") ? jstr(d, "path") : "(root)",
               *jstr(d, "message") ? jstr(d, "message") : "(no message)");
        if (json_is_integer(ln) && json_integer_value(ln) > 0) {
            printf(" (line %" JSON_INTEGER_FORMAT, json_integer_value(ln));
            if (json_is_integer(col) && json_integer_value(col) > 0)
                printf(", column %" JSON_INTEGER_FORMAT, json_integer_value(col));
            putchar(')');
        }
        putchar('\n');
    }
}

/* "  SOCKET  FAILED  code: message", then the error's details, if any */
static void print_failure_line(const struct cli *c, const struct replica *r)
{
    printf("  %-*s  FAILED  %s: %s\n", (int)width_of_sockets(c), r->socket, r->code, r->msg);
    print_error_details(r, "      ");
}

/* The closing line on stderr for a non-zero exit. */
static void print_verdict(const struct cli *c, const char *what, int code)
{
    if (code == CTL_EXIT_OK)
        return;
    size_t nok = 0;
    char failed[1024];
    size_t off = 0;
    failed[0] = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->rs[i].ok) {
            nok++;
            continue;
        }
        int k = snprintf(failed + off, sizeof failed - off, "%s%s (%s)", off ? ", " : "",
                         c->rs[i].socket, c->rs[i].code);
        if (k > 0 && (size_t)k < sizeof failed - off)
            off += (size_t)k;
    }
    if (code == CTL_EXIT_PARTIAL)
        fprintf(stderr, "cutoverctl: %s: PARTIAL: %zu of %zu replicas succeeded; failed: %s\n",
                what, nok, c->n, failed);
    else
        fprintf(stderr, "cutoverctl: %s failed on every replica: %s\n", what, failed);
}

static void print_bar(long h)
{
    int full = h < 0 ? 0 : (int)((h * 20 + 5000) / 10000);
    putchar('[');
    for (int i = 0; i < 20; i++)
        putchar(i < full ? '#' : '.');
    putchar(']');
}

static void print_duration(long long s)
{
    if (s >= 86400)
        printf("%lldd%lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        printf("%lldh%02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        printf("%lldm%02llds", s / 60, s % 60);
    else
        printf("%llds", s);
}

static void print_status_plan(const json_t *plan);
static const char *plan_where(const json_t *plan, char *buf, size_t cap);

static void print_status_route(const json_t *rt)
{
    const json_t *w = json_object_get(rt, "weights");
    const json_t *st = json_object_get(rt, "stable");
    const json_t *pools = json_object_get(rt, "pools");
    char b1[32], b2[32], ws[512];
    printf("  route %s\n", jstr(rt, "name"));
    printf("    weights %s", weights_str(w, ws, sizeof ws));
    if (st)
        printf("   (stable %s%s)", weights_str(st, ws, sizeof ws),
               weights_same(w, st) ? ", at stable" : "");
    putchar('\n');
    print_status_plan(json_object_get(rt, "plan"));
    size_t pw = 4;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)w, k, v)
    {
        if (strlen(k) > pw)
            pw = strlen(k);
    }
    json_object_foreach((json_t *)pools, k, v)
    {
        if (strlen(k) > pw)
            pw = strlen(k);
    }
    /* one line per pool: weight, bar, stable, counters; then its endpoints */
    const json_t *order = json_is_object(w) && json_object_size(w) ? w : pools;
    json_object_foreach((json_t *)order, k, v)
    {
        const json_t *p = json_object_get(pools, k);
        long h = json_pct(json_object_get(w, k));
        printf("    %-*s %6s%% ", (int)pw, k, pct_str(h, b1, sizeof b1));
        print_bar(h);
        if (st)
            printf("  stable %5s%%", pct_str(json_pct(json_object_get(st, k)), b2, sizeof b2));
        if (p) {
            json_t *rq = json_object_get(p, "requests"), *e5 = json_object_get(p, "responses_5xx");
            if (json_is_integer(rq))
                printf("  requests %" JSON_INTEGER_FORMAT, json_integer_value(rq));
            if (json_is_integer(e5))
                printf("  5xx %" JSON_INTEGER_FORMAT, json_integer_value(e5));
        }
        putchar('\n');
        size_t i;
        json_t *ep;
        json_array_foreach(json_object_get(p, "endpoints"), i, ep)
        {
            int drained = json_is_true(json_object_get(ep, "drained"));
            int added = json_is_true(json_object_get(ep, "added"));
            printf("      %-24s %s%s\n",
                   json_is_string(ep) ? json_string_value(ep) : jstr(ep, "address"),
                   drained ? "DRAINED" : "serving", added ? " (added)" : "");
        }
    }
}

static void print_status(const struct cli *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct replica *r = &c->rs[i];
        if (!r->ok) {
            printf("replica %s: FAILED %s: %s\n", r->socket, r->code, r->msg);
            print_error_details(r, "    ");
            continue;
        }
        const json_t *res = json_object_get(r->reply, "result");
        printf("replica %s: generation %lld", r->socket, r->generation);
        if (*jstr(res, "cluster"))
            printf(", cluster %s", jstr(res, "cluster"));
        if (*jstr(res, "region"))
            printf(", region %s", jstr(res, "region"));
        json_t *up = json_object_get(res, "uptime_s");
        if (json_is_integer(up)) {
            printf(", up ");
            print_duration(json_integer_value(up));
        }
        putchar('\n');
        size_t k;
        json_t *rt;
        json_array_foreach(json_object_get(res, "routes"), k, rt)
        {
            print_status_route(rt);
        }
        if (c->n > 1 && i + 1 < c->n)
            putchar('\n');
    }
    if (c->n > 1) {
        printf("generations:");
        for (size_t i = 0; i < c->n; i++) {
            if (c->rs[i].has_generation)
                printf(" %s=%lld", c->rs[i].socket, c->rs[i].generation);
            else
                printf(" %s=?", c->rs[i].socket);
        }
        putchar('\n');
    }
}

/* One side of a history record's weights: "blue=90% green=10%", "(truncated)" for a summarised
 * fragment, "(none)" when missing. */
static const char *history_weights(const json_t *w, char *buf, size_t cap)
{
    if (json_is_object(w) && json_is_true(json_object_get(w, "truncated")))
        snprintf(buf, cap, "(truncated)");
    else if (json_is_object(w) && json_object_size(w))
        weights_str(w, buf, cap);
    else
        snprintf(buf, cap, "(none)");
    return buf;
}

/* " ROUTE: BEFORE -> AFTER", or " ROUTE: WEIGHTS (unchanged)", for one route of a history
 * record (route "" when the record does not name it). */
static void print_history_weights(const char *route, const json_t *wb, const json_t *wa)
{
    char b[512], a[512];
    printf(" %s%s", route, *route ? ": " : "");
    if (weights_same(wb, wa) && !json_object_get(wa, "truncated"))
        printf("%s (unchanged)", history_weights(wa, a, sizeof a));
    else
        printf("%s -> %s", history_weights(wb, b, sizeof b), history_weights(wa, a, sizeof a));
}

/* Weights keyed by route ({"app": {"blue": 90, ...}, ...}: a record that is not about one route,
 * like cutover's start), rather than one route's {"blue": 90, ...}. */
static int weights_by_route(const json_t *w)
{
    const char *k;
    json_t *v;
    if (!json_is_object(w) || !json_object_size(w) || json_object_get(w, "truncated"))
        return 0;
    json_object_foreach((json_t *)w, k, v)
    {
        if (!json_is_object(v))
            return 0;
    }
    return 1;
}

static void print_history_record(const json_t *rec)
{
    json_t *owned = NULL;
    if (json_is_string(rec)) { /* a raw audit line */
        owned = json_loads(json_string_value(rec), 0, NULL);
        if (!json_is_object(owned)) {
            printf("  %s\n", json_string_value(rec));
            json_decref(owned);
            return;
        }
        rec = owned;
    }
    /* the server's audit record: actor {uid, user}, role, op, args, result "ok" | "refused" |
     * "aborted", error {code, message}, count (N > 1: N refusals alike, coalesced),
     * generation_before/after, weights_before/after, reason */
    const json_t *actor = json_object_get(rec, "actor");
    const char *who = *jstr(actor, "user") ? jstr(actor, "user") : jstr(rec, "user");
    const json_t *err = json_object_get(rec, "error");
    const char *ecode = json_is_object(err) ? jstr(err, "code") : jstr(rec, "error_code");
    const char *result = jstr(rec, "result");
    const char *shown = *result ? result : "ok";
    if (!strcmp(result, "aborted"))
        shown = "ABORTED";
    else if (!strcmp(result, "refused") || json_is_false(json_object_get(rec, "ok")) || *ecode)
        shown = "REFUSED";
    char whobuf[160], status[64];
    snprintf(whobuf, sizeof whobuf, "%s%s%s%s", *who ? who : "?", *jstr(rec, "role") ? "(" : "",
             jstr(rec, "role"), *jstr(rec, "role") ? ")" : "");
    json_t *count = json_object_get(rec, "count");
    if (json_is_integer(count) && json_integer_value(count) > 1)
        snprintf(status, sizeof status, "%s \u00d7%" JSON_INTEGER_FORMAT, shown,
                 json_integer_value(count));
    else
        snprintf(status, sizeof status, "%s", shown);
    json_t *gb = json_object_get(rec, "generation_before");
    json_t *ga = json_object_get(rec, "generation_after");
    printf("  %-24s %-16s %-16s %-7s", jstr(rec, "time"), whobuf, jstr(rec, "op"), status);
    if (json_is_integer(gb) && json_is_integer(ga))
        printf(" gen %" JSON_INTEGER_FORMAT "->%" JSON_INTEGER_FORMAT, json_integer_value(gb),
               json_integer_value(ga));
    /* the weights before and after, of the route (or of every route) the change is about */
    const json_t *wb = json_object_get(rec, "weights_before");
    const json_t *wa = json_object_get(rec, "weights_after");
    if (weights_by_route(wa)) {
        const char *route;
        json_t *w;
        int first = 1;
        json_object_foreach((json_t *)wa, route, w)
        {
            printf("%s", first ? "" : ";");
            print_history_weights(route, json_object_get(wb, route), w);
            first = 0;
        }
    } else if (json_is_object(wa)) {
        print_history_weights(jstr(json_object_get(rec, "args"), "route"), wb, wa);
    }
    if (*ecode)
        printf(" [%s]%s%s", ecode, *jstr(err, "message") ? " " : "", jstr(err, "message"));
    if (*jstr(rec, "reason"))
        printf(" \"%s\"", jstr(rec, "reason"));
    putchar('\n');
    json_decref(owned);
}

static void print_history(const struct cli *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct replica *r = &c->rs[i];
        if (!r->ok) {
            printf("replica %s: FAILED %s: %s\n", r->socket, r->code, r->msg);
            print_error_details(r, "    ");
            continue;
        }
        const json_t *res = json_object_get(r->reply, "result");
        const json_t *recs = json_is_array(res) ? res : json_object_get(res, "records");
        printf("replica %s: generation %lld, %zu record(s)%s\n", r->socket, r->generation,
               json_array_size(recs), c->seen & CTL_OPT_REFUSALS ? ", refusals included" : "");
        size_t k;
        json_t *rec;
        json_array_foreach(recs, k, rec)
        {
            print_history_record(rec);
        }
    }
}

static void print_version(const struct cli *c)
{
    printf("cutoverctl %s (protocol 1)\n", CUTOVER_VERSION);
    for (size_t i = 0; i < c->n; i++) {
        const struct replica *r = &c->rs[i];
        if (!r->ok) {
            print_failure_line(c, r);
            continue;
        }
        const json_t *res = json_object_get(r->reply, "result");
        json_t *proto = json_object_get(res, "protocol");
        printf("  %-*s  cutover %s  protocol %" JSON_INTEGER_FORMAT "  generation %lld\n",
               (int)width_of_sockets(c), r->socket, jstr(res, "version"),
               json_is_integer(proto) ? json_integer_value(proto) : 0, r->generation);
    }
}

/* A short description of a mutating command's result. */
static void describe_result(const char *op, const json_t *args, const json_t *res, char *buf,
                            size_t cap)
{
    char w1[512], w2[512];
    if (!strcmp(op, "set-weights") || !strcmp(op, "rollback")) {
        snprintf(buf, cap, "weights %s%s",
                 weights_str(json_object_get(res, "weights"), w1, sizeof w1),
                 json_is_true(json_object_get(res, "already")) ? " (already at stable)" : "");
    } else if (!strcmp(op, "promote")) {
        snprintf(buf, cap, "weights %s, stable %s",
                 weights_str(json_object_get(res, "weights"), w1, sizeof w1),
                 weights_str(json_object_get(res, "stable"), w2, sizeof w2));
    } else if (!strcmp(op, "drain") || !strcmp(op, "undrain")) {
        snprintf(buf, cap, "endpoint %s in pool %s %s", jstr(args, "endpoint"), jstr(args, "pool"),
                 !strcmp(op, "drain") ? "drained" : "serving again");
    } else if (!strcmp(op, "add-endpoint")) {
        snprintf(buf, cap, "endpoint %s added to pool %s", jstr(args, "endpoint"),
                 jstr(args, "pool"));
    } else if (!strcmp(op, "remove-endpoint")) {
        snprintf(buf, cap, "endpoint %s removed from pool %s", jstr(args, "endpoint"),
                 jstr(args, "pool"));
    } else if (!strcmp(op, "reload")) {
        snprintf(buf, cap, "configuration reloaded");
    } else if (!strncmp(op, "shift-", 6)) {
        const json_t *plan = json_object_get(res, "plan");
        if (json_is_object(plan))
            snprintf(buf, cap, "plan %s at %s", jstr(plan, "state"),
                     plan_where(plan, w1, sizeof w1));
        else
            snprintf(buf, cap, "(no plan in the reply)");
    } else {
        buf[0] = 0;
    }
}

static void print_mutation(const struct cli *c, const struct cmd *cmd, const json_t *args)
{
    size_t nok = 0;
    for (size_t i = 0; i < c->n; i++)
        nok += c->rs[i].ok;
    const char *route = jstr(args, "route");
    printf("%s%s%s: ok on %zu of %zu replica(s)%s\n", cmd->name, *route ? " " : "", route, nok,
           c->n, c->wait ? " (waited for the generation)" : "");
    for (size_t i = 0; i < c->n; i++) {
        const struct replica *r = &c->rs[i];
        if (!r->ok) {
            print_failure_line(c, r);
            continue;
        }
        char d[1200];
        describe_result(cmd->op, args, json_object_get(r->reply, "result"), d, sizeof d);
        printf("  %-*s  ok  generation %lld  %s\n", (int)width_of_sockets(c), r->socket,
               r->generation, d);
    }
}

/* ---- simple commands: one request to every replica ------------------------------------------- */

/* Builds the "args" object of a simple command from its positionals and options, checking what
 * can be checked without the server. Returns NULL after printing a usage error. */
static json_t *build_args(struct cli *c, const struct cmd *cmd)
{
    json_t *args = json_object();
    size_t np = c->npos - 1;
    const char **p = c->pos + 1;
    if (!strcmp(cmd->op, "set-weights")) {
        json_t *w = json_object();
        long sum = 0;
        json_object_set_new(args, "route", json_string(p[0]));
        for (size_t i = 1; i < np; i++) {
            const char *eq = strchr(p[i], '=');
            long h;
            if (!eq || eq == p[i]) {
                usage_error(c, "set-weights: '%s' is not POOL=PCT", p[i]);
                goto fail_w;
            }
            if (parse_pct(eq + 1, &h) < 0) {
                usage_error(c,
                            "set-weights: '%s': the weight must be a percentage 0..100 with at "
                            "most two decimals",
                            p[i]);
                goto fail_w;
            }
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(eq - p[i]), p[i]);
            if (json_object_get(w, name)) {
                usage_error(c, "set-weights: pool '%s' given twice", name);
                goto fail_w;
            }
            json_object_set_new(w, name, pct_json(h));
            sum += h;
        }
        if (sum != 10000) {
            char b[32];
            usage_error(c, "set-weights: the weights sum to %s%%, not 100%%",
                        pct_str(sum, b, sizeof b));
            goto fail_w;
        }
        json_object_set_new(args, "weights", w);
        goto common;
    fail_w:
        json_decref(w);
        json_decref(args);
        return NULL;
    }
    for (size_t i = 0; i < np && i < 3 && cmd->pos_names[i]; i++) {
        if (!*p[i]) {
            usage_error(c, "%s: %s must not be empty", cmd->name, cmd->pos_names[i]);
            json_decref(args);
            return NULL;
        }
        json_object_set_new(args, cmd->pos_names[i], json_string(p[i]));
    }
common:
    if (cmd->opts & CTL_OPT_REASON) {
        if (c->reason) {
            size_t rl = strlen(c->reason);
            if (rl == 0 || rl > CTL_MAX_REASON) {
                usage_error(c, "%s: --reason must be 1..%d characters", cmd->name, CTL_MAX_REASON);
                json_decref(args);
                return NULL;
            }
            json_object_set_new(args, "reason", json_string(c->reason));
        } else if (cmd->reason_required) {
            usage_error(c, "%s: --reason TEXT is required (it goes to the audit log)", cmd->name);
            json_decref(args);
            return NULL;
        }
    }
    if (c->seen & CTL_OPT_EXPECT)
        json_object_set_new(args, "expect_generation", json_integer(c->expect));
    if (c->seen & CTL_OPT_LIMIT)
        json_object_set_new(args, "limit", json_integer(c->limit));
    if (c->seen & CTL_OPT_REFUSALS)
        json_object_set_new(args, "refusals", json_true());
    return args;
}

static int run_simple(struct cli *c, const struct cmd *cmd)
{
    json_t *args = build_args(c, cmd);
    if (!args)
        return CTL_EXIT_USAGE;
    json_t *req = json_pack("{s:s}", "op", cmd->op);
    if (json_object_size(args))
        json_object_set(req, "args", args);
    exchange_all(c, req);
    json_decref(req);
    if (cmd->mutating && c->wait)
        barrier(c);
    int code = fold_exit(c);
    if (c->json) {
        print_json_doc(c, cmd->name, code, NULL);
    } else if (!strcmp(cmd->op, "status")) {
        print_status(c);
    } else if (!strcmp(cmd->op, "history")) {
        print_history(c);
    } else if (!strcmp(cmd->op, "version")) {
        print_version(c);
    } else {
        print_mutation(c, cmd, args);
    }
    print_verdict(c, cmd->name, code);
    json_decref(args);
    return code;
}

/* ---- shift: a server-side plan, watched from here ------------------------------------------- */

#define CTL_SHIFT_POLL_MS 1000  /* status poll period while a plan runs */
#define CTL_SHIFT_LOST_MS 30000 /* a replica whose status fails this long is given up (exit 4) */

/* Parses one --gate into gates (a JSON object, borrowed): "5xx<=X%" sets max_5xx_percent,
 * "p99<=Yms" or "p99<=Ys" sets max_p99_ms. Blanks are ignored, names are case-insensitive.
 * Returns 0, or -1 with a sentence in err. */
static int parse_gate(const char *arg, json_t *gates, char *err, size_t cap)
{
    char s[64];
    size_t n = 0;
    for (const char *p = arg; *p; p++) {
        if (*p == ' ' || *p == '\t')
            continue;
        if (n + 1 >= sizeof s) {
            snprintf(err, cap, "--gate '%s' is too long", arg);
            return -1;
        }
        s[n++] = *p;
    }
    s[n] = 0;
    const char *key, *v;
    int is_5xx;
    if (!strncasecmp(s, "5xx<=", 5)) {
        key = "max_5xx_percent";
        is_5xx = 1;
        v = s + 5;
    } else if (!strncasecmp(s, "p99<=", 5)) {
        key = "max_p99_ms";
        is_5xx = 0;
        v = s + 5;
    } else {
        snprintf(err, cap,
                 "--gate '%s': expected 5xx<=PERCENT%% (e.g. 5xx<=1%%) or p99<=DURATION (e.g. "
                 "p99<=500ms, p99<=2s)",
                 arg);
        return -1;
    }
    char *end;
    errno = 0;
    double x = (*v >= '0' && *v <= '9') || *v == '.' ? strtod(v, &end) : -1;
    if (x < 0 || errno || end == v) {
        snprintf(err, cap, "--gate '%s': the limit is not a number", arg);
        return -1;
    }
    if (is_5xx) {
        if (strcmp(end, "%")) {
            snprintf(err, cap,
                     "--gate '%s': the 5xx limit is a percentage and needs '%%' (5xx<=1%%)", arg);
            return -1;
        }
        if (x > 100) {
            snprintf(err, cap, "--gate '%s': the 5xx limit must be 0..100%%", arg);
            return -1;
        }
    } else {
        if (!strcasecmp(end, "s"))
            x *= 1000;
        else if (strcasecmp(end, "ms")) {
            snprintf(err, cap, "--gate '%s': the p99 limit needs a unit, ms or s (p99<=500ms)",
                     arg);
            return -1;
        }
        /* the server takes whole milliseconds, 1..600000 */
        if (!(x >= 1 && x <= 600000) || x != (double)(long long)x) {
            snprintf(err, cap, "--gate '%s': the p99 limit must be whole milliseconds, 1ms..600s",
                     arg);
            return -1;
        }
    }
    if (json_object_get(gates, key)) {
        snprintf(err, cap, "--gate '%s': a %s gate is already given", arg, is_5xx ? "5xx" : "p99");
        return -1;
    }
    if (is_5xx)
        json_object_set_new(gates, key, json_real(x));
    else
        json_object_set_new(gates, key, json_integer((json_int_t)x));
    return 0;
}

/* What one replica's plan did, as far as this invocation knows. */
struct shift_rep {
    int started;      /* the shift was acknowledged */
    int done;         /* the outcome is final */
    int code;         /* this replica's exit code, once done */
    char outcome[24]; /* promoted, rolled_back, aborted, refused, lost, interrupted, ... */
    char started_at[64];
    json_t *plan;    /* owned: the last plan seen (shift reply, status, abort reply) */
    json_t *weights; /* owned: the route's weights in the last status */
    long long fail_since;
    char shown[64]; /* "state step" of the last line printed for it */
    char msg[900];  /* why it ended, for people */
    int abort_sent, abort_ok;
    char abort_msg[800];
};

struct shift {
    const char *route;
    json_t *args; /* the shift's arguments as sent */
    struct shift_rep r[CTL_MAX_REPLICAS];
    int live_lines; /* lines of the live block on the terminal */
    long long t0;
};

static double jnum(const json_t *o, const char *key, double dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* "%g" without trailing noise, into buf. */
static const char *num_str(double v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.6g", v);
    return buf;
}

/* "5xx<=1% p99<=500ms min 100 req", or "none (hold time only)". */
static const char *gates_str(const json_t *g, char *buf, size_t cap)
{
    char a[32];
    size_t off = 0;
    buf[0] = 0;
    const json_t *v;
    if ((v = json_object_get(g, "max_5xx_percent")) && json_is_number(v))
        off += (size_t)snprintf(buf + off, cap - off, "5xx<=%s%%",
                                num_str(json_number_value(v), a, sizeof a));
    if (off < cap && (v = json_object_get(g, "max_p99_ms")) && json_is_number(v))
        off += (size_t)snprintf(buf + off, cap - off, "%sp99<=%sms", off ? " " : "",
                                num_str(json_number_value(v), a, sizeof a));
    if (off < cap && (v = json_object_get(g, "min_requests")) && json_is_number(v) &&
        json_number_value(v) > 0)
        off += (size_t)snprintf(buf + off, cap - off, "%smin %s req", off ? " " : "",
                                num_str(json_number_value(v), a, sizeof a));
    if (!buf[0])
        snprintf(buf, cap, "none (hold time only)");
    return buf;
}

/* "10,25,50,100" for a plan's steps. */
static const char *steps_str(const json_t *steps, char *buf, size_t cap)
{
    size_t off = 0, i;
    json_t *v;
    buf[0] = 0;
    json_array_foreach(steps, i, v)
    {
        char p[32];
        int k =
            snprintf(buf + off, cap - off, "%s%s", i ? "," : "", pct_str(json_pct(v), p, sizeof p));
        if (k < 0 || (size_t)k >= cap - off)
            break;
        off += (size_t)k;
    }
    return buf;
}

/* "gate max_5xx_percent: value 12.5 > limit 1 at 2026-...", for plan.rolled_back. */
static const char *rolled_back_str(const json_t *plan, char *buf, size_t cap)
{
    const json_t *rb = json_object_get(plan, "rolled_back");
    char a[32], b[32];
    if (!json_is_object(rb)) {
        snprintf(buf, cap, "no gate reported");
        return buf;
    }
    const json_t *v = json_object_get(rb, "value"), *l = json_object_get(rb, "limit");
    if (!strcmp(jstr(rb, "gate"), "manual")) { /* `rollback` by a person ends the plan */
        snprintf(buf, cap, "a manual rollback (gate manual)%s%s", *jstr(rb, "at") ? " at " : "",
                 jstr(rb, "at"));
        return buf;
    }
    if (!strcmp(jstr(rb, "gate"), "unhealthy")) {
        snprintf(buf, cap, "gate unhealthy: the pool carried weight with no serving endpoint%s%s",
                 *jstr(rb, "at") ? " at " : "", jstr(rb, "at"));
        return buf;
    }
    snprintf(buf, cap, "gate %s: value %s > limit %s%s%s",
             *jstr(rb, "gate") ? jstr(rb, "gate") : "?",
             json_is_number(v) ? num_str(json_number_value(v), a, sizeof a) : "-",
             json_is_number(l) ? num_str(json_number_value(l), b, sizeof b) : "-",
             *jstr(rb, "at") ? " at " : "", jstr(rb, "at"));
    return buf;
}

/* "step 2/4  green 25%": where a plan is. */
static const char *plan_where(const json_t *plan, char *buf, size_t cap)
{
    const json_t *st = json_object_get(plan, "step");
    char p[32];
    snprintf(buf, cap, "step %lld/%zu  %s %s%%",
             json_is_integer(st) ? (long long)json_integer_value(st) + 1 : 0LL,
             json_array_size(json_object_get(plan, "steps")), jstr(plan, "to"),
             pct_str(json_pct(json_object_get(plan, "weight")), p, sizeof p));
    return buf;
}

/* One part of a progress line. `drop` says which parts go first when the line must fit a
 * terminal (the highest rank first; 0: always kept): the gates' limits (5), the min_requests
 * note (4), the request count (3), then the measured 5xx share and p99 (2). The step, the
 * weight, PAUSED and the time to the next step stay. */
struct progress_part {
    char text[200];
    int drop;
};

#define CTL_PROGRESS_PARTS 10

static size_t add_part(struct progress_part *parts, size_t n, int drop, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t add_part(struct progress_part *parts, size_t n, int drop, const char *fmt, ...)
{
    va_list ap;
    if (n == CTL_PROGRESS_PARTS)
        return n;
    va_start(ap, fmt);
    vsnprintf(parts[n].text, sizeof parts[n].text, fmt, ap);
    va_end(ap);
    parts[n].drop = drop;
    return n + 1;
}

/* The progress line of a running or paused plan, between prefix and suffix (borrowed), fitted
 * into width bytes (0: no limit), into buf:
 * "step 2/4  green 25%  5xx 0.20% (<= 1%)  p99 87ms (<= 500ms)  512 req  next step in 12s".
 * Parts are left out, rank by rank (see struct progress_part), until it fits; what still does
 * not fit (a very narrow terminal, a long prefix) is cut at width. */
static const char *plan_progress_fit(const json_t *plan, const char *prefix, const char *suffix,
                                     size_t width, char *buf, size_t cap)
{
    struct progress_part parts[CTL_PROGRESS_PARTS];
    const json_t *g = json_object_get(plan, "gates"), *w = json_object_get(plan, "window");
    char a[32], where[200];
    size_t n = add_part(parts, 0, 0, "%s", plan_where(plan, where, sizeof where));
    if (!strcmp(jstr(plan, "state"), "paused"))
        n = add_part(parts, n, 0, "  PAUSED");
    if (json_is_object(w)) {
        const json_t *r5 = json_object_get(w, "ratio_percent"), *p99 = json_object_get(w, "p99_ms");
        const json_t *l5 = json_object_get(g, "max_5xx_percent"),
                     *lp = json_object_get(g, "max_p99_ms"),
                     *mr = json_object_get(g, "min_requests");
        if (json_is_number(r5))
            n = add_part(parts, n, 2, "  5xx %.2f%%", json_number_value(r5));
        if (json_is_number(r5) && json_is_number(l5))
            n = add_part(parts, n, 5, " (<= %s%%)", num_str(json_number_value(l5), a, sizeof a));
        if (json_is_number(p99))
            n = add_part(parts, n, 2, "  p99 %.0fms", json_number_value(p99));
        if (json_is_number(p99) && json_is_number(lp))
            n = add_part(parts, n, 5, " (<= %sms)", num_str(json_number_value(lp), a, sizeof a));
        n = add_part(parts, n, 3, "  %.0f req", jnum(w, "requests", 0));
        if (json_is_number(mr) && json_number_value(mr) > 0)
            n = add_part(parts, n, 4, " (min %s)", num_str(json_number_value(mr), a, sizeof a));
    }
    const json_t *nx = json_object_get(plan, "next_step_in_s");
    if (json_is_number(nx))
        n = add_part(parts, n, 0, "  next step in %.0fs", json_number_value(nx));

    size_t len = strlen(prefix) + strlen(suffix);
    for (size_t i = 0; i < n; i++)
        len += strlen(parts[i].text);
    for (int rank = 5; rank > 0 && width && len > width; rank--)
        for (size_t i = 0; i < n; i++)
            if (parts[i].drop == rank) {
                len -= strlen(parts[i].text);
                parts[i].text[0] = 0;
            }
    size_t off = (size_t)snprintf(buf, cap, "%s", prefix);
    for (size_t i = 0; i < n && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s", parts[i].text);
    if (off < cap)
        snprintf(buf + off, cap - off, "%s", suffix);
    if (width && width < cap && strlen(buf) > width)
        buf[width] = 0;
    return buf;
}

/* The whole progress line (when stdout is not a terminal: never cut). */
static const char *plan_progress(const json_t *plan, char *buf, size_t cap)
{
    return plan_progress_fit(plan, "", "", 0, buf, cap);
}

/* The status table's line for a route's plan (NULL or null: nothing). */
static void print_status_plan(const json_t *plan)
{
    char where[160], gs[200], ss[400], line[600];
    if (!json_is_object(plan))
        return;
    const char *state = jstr(plan, "state");
    int live = !strcmp(state, "running") || !strcmp(state, "paused");
    printf("    plan %s  %s (from %s, steps %s, hold %.0fs)  gates %s", state,
           plan_where(plan, where, sizeof where), jstr(plan, "from"),
           steps_str(json_object_get(plan, "steps"), ss, sizeof ss), jnum(plan, "hold_s", 0),
           gates_str(json_object_get(plan, "gates"), gs, sizeof gs));
    const json_t *w = json_object_get(plan, "window");
    if (json_is_object(w))
        printf("  window %.0f req, %.0f 5xx (%.2f%%), p99 %.0fms", jnum(w, "requests", 0),
               jnum(w, "errors_5xx", 0), jnum(w, "ratio_percent", 0), jnum(w, "p99_ms", 0));
    if (live && json_is_number(json_object_get(plan, "next_step_in_s")))
        printf("  next step in %.0fs", jnum(plan, "next_step_in_s", 0));
    putchar('\n');
    if (!strcmp(state, "rolled_back"))
        printf("      ROLLED BACK: %s\n", rolled_back_str(plan, line, sizeof line));
    if (*jstr(plan, "actor") || *jstr(plan, "reason") || *jstr(plan, "started_at"))
        printf("      started %s by %s: \"%s\"\n", jstr(plan, "started_at"),
               *jstr(plan, "actor") ? jstr(plan, "actor") : "?", jstr(plan, "reason"));
}

/* The route object named `route` in a status result, or NULL. */
static const json_t *status_route(const json_t *reply, const char *route)
{
    const json_t *routes = json_object_get(json_object_get(reply, "result"), "routes");
    const json_t *x;
    size_t j;
    json_array_foreach(routes, j, x)
    {
        if (!strcmp(jstr(x, "name"), route))
            return x;
    }
    return NULL;
}

static void shift_set_plan(struct shift_rep *sr, const json_t *plan)
{
    if (!json_is_object(plan))
        return;
    json_decref(sr->plan);
    sr->plan = json_deep_copy(plan);
}

static void shift_finish(struct shift_rep *sr, int code, const char *outcome, const char *fmt, ...)
{
    va_list ap;
    sr->done = 1;
    sr->code = code;
    snprintf(sr->outcome, sizeof sr->outcome, "%s", outcome);
    va_start(ap, fmt);
    vsnprintf(sr->msg, sizeof sr->msg, fmt, ap);
    va_end(ap);
}

/* The width of the terminal on stdout, for the live block (only drawn on a terminal): its
 * window size (TIOCGWINSZ), else $COLUMNS (a terminal that reports no size), else 80. */
static int term_cols(void)
{
    struct winsize ws;
    long long n;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    if (parse_ll(getenv("COLUMNS"), 1, 100000, &n) == 0)
        return (int)n;
    return 80;
}

/* Erases the live block (TTY only); the cursor ends at the start of its first line. */
static void shift_live_clear(struct shift *sh)
{
    if (!sh->live_lines)
        return;
    printf("\r\033[K");
    for (int i = 1; i < sh->live_lines; i++)
        printf("\033[1A\r\033[K");
    sh->live_lines = 0;
    fflush(stdout);
}

/* Draws the live block: one progress line per replica whose plan still runs, each fitted into
 * the terminal's width less one column (a line that wrapped would break shift_live_clear). */
static void shift_live_draw(const struct cli *c, struct shift *sh)
{
    size_t width = (size_t)term_cols() - 1;
    for (size_t i = 0; i < c->n; i++) {
        const struct shift_rep *sr = &sh->r[i];
        if (!sr->started || sr->done || !sr->plan)
            continue;
        char prefix[512], full[1400];
        snprintf(prefix, sizeof prefix, "%s%s", c->n > 1 ? c->rs[i].socket : "",
                 c->n > 1 ? "  " : "");
        plan_progress_fit(sr->plan, prefix, sr->fail_since ? "  (status failing)" : "",
                          width ? width : 1, full, sizeof full);
        printf("%s%s", sh->live_lines ? "\n" : "", full);
        sh->live_lines++;
    }
    fflush(stdout);
}

/* A permanent progress line (above the live block on a TTY). */
static void shift_say(const struct cli *c, struct shift *sh, size_t i, const char *fmt, ...)
{
    char line[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (c->json)
        return;
    shift_live_clear(sh);
    if (c->n > 1 && i < c->n)
        printf("%s  %s\n", c->rs[i].socket, line);
    else
        printf("%s\n", line);
    fflush(stdout);
}

/* One line per change of a replica's plan (state or step). */
static void shift_note_change(const struct cli *c, struct shift *sh, size_t i)
{
    struct shift_rep *sr = &sh->r[i];
    char key[64], line[1024];
    const json_t *st = json_object_get(sr->plan, "step");
    snprintf(key, sizeof key, "%s %lld", jstr(sr->plan, "state"),
             json_is_integer(st) ? (long long)json_integer_value(st) : -1LL);
    if (!strcmp(key, sr->shown))
        return;
    snprintf(sr->shown, sizeof sr->shown, "%s", key);
    const char *state = jstr(sr->plan, "state");
    if (strcmp(state, "running") && strcmp(state, "paused"))
        return;
    if (c->tty) /* the live block shows the numbers; keep a short history line above it */
        shift_say(c, sh, i, "%s  %s", plan_where(sr->plan, line, sizeof line), state);
    else
        shift_say(c, sh, i, "%s", plan_progress(sr->plan, line, sizeof line));
}

/* One JSON line on stdout (--json). Takes o. */
static void print_json_line(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(o);
    fflush(stdout);
}

/* Reads one status poll's outcome for replica i. */
static void shift_take_status(struct cli *c, struct shift *sh, size_t i)
{
    struct replica *r = &c->rs[i];
    struct shift_rep *sr = &sh->r[i];
    char b[600], w[160], ws[512];
    if (!r->ok) {
        if (r->exit_class != CTL_EXIT_UNREACH) { /* denied, not_found: asking again won't help */
            shift_finish(sr, r->exit_class, "failed", "status failed: %s: %s", r->code, r->msg);
            return;
        }
        long long now = (long long)clock_mono_ms();
        if (!sr->fail_since)
            sr->fail_since = now;
        if (now - sr->fail_since >= CTL_SHIFT_LOST_MS)
            shift_finish(sr, CTL_EXIT_UNREACH, "lost",
                         "no status for %.0f s (%s: %s); the plan goes on in cutover without "
                         "this client: watch it with `cutoverctl status %s`",
                         (double)(now - sr->fail_since) / 1000.0, r->code, r->msg, sh->route);
        return;
    }
    sr->fail_since = 0;
    const json_t *rt = status_route(r->reply, sh->route);
    if (!rt) {
        shift_finish(sr, CTL_EXIT_USAGE, "lost", "status no longer reports route %s", sh->route);
        return;
    }
    json_decref(sr->weights);
    sr->weights = json_deep_copy(json_object_get(rt, "weights"));
    const json_t *plan = json_object_get(rt, "plan");
    if (!json_is_object(plan)) {
        shift_finish(sr, CTL_EXIT_USAGE, "lost",
                     "status no longer reports a plan for route %s (weights now %s)", sh->route,
                     weights_str(sr->weights, ws, sizeof ws));
        return;
    }
    if (sr->started_at[0] && *jstr(plan, "started_at") &&
        strcmp(sr->started_at, jstr(plan, "started_at"))) {
        shift_finish(sr, CTL_EXIT_USAGE, "lost",
                     "route %s now has another plan (started %s by %s); this one ended unseen",
                     sh->route, jstr(plan, "started_at"), jstr(plan, "actor"));
        return;
    }
    shift_set_plan(sr, plan);
    const char *state = jstr(plan, "state");
    plan_where(plan, w, sizeof w);
    if (!strcmp(state, "promoted")) {
        shift_finish(sr, CTL_EXIT_OK, "promoted", "PROMOTED: %s (weights %s)", w,
                     weights_str(sr->weights, ws, sizeof ws));
    } else if (!strcmp(state, "rolled_back")) {
        int manual = !strcmp(jstr(json_object_get(plan, "rolled_back"), "gate"), "manual");
        shift_finish(sr, CTL_EXIT_ROLLEDBACK, "rolled_back",
                     "ROLLED BACK by %s at %s: %s (weights now %s)",
                     manual ? "an operator" : "cutover", w, rolled_back_str(plan, b, sizeof b),
                     weights_str(sr->weights, ws, sizeof ws));
    } else if (!strcmp(state, "aborted")) {
        shift_finish(sr, CTL_EXIT_USAGE, "aborted",
                     "ABORTED by someone else at %s (weights %s stay applied)", w,
                     weights_str(sr->weights, ws, sizeof ws));
    } else if (strcmp(state, "running") && strcmp(state, "paused")) {
        shift_finish(sr, CTL_EXIT_USAGE, "unknown",
                     "the plan is in a state this client does not "
                     "know: '%s'",
                     state);
    }
}

/* One JSON object per replica for --json lines. New reference. */
static json_t *shift_rep_json(const struct cli *c, const struct shift *sh, size_t i, int final)
{
    const struct replica *r = &c->rs[i];
    const struct shift_rep *sr = &sh->r[i];
    json_t *o = json_pack("{s:s}", "socket", r->socket);
    if (final) {
        json_object_set_new(o, "ok", json_boolean(sr->done && sr->code == 0));
        json_object_set_new(o, "outcome", json_string(sr->outcome[0] ? sr->outcome : "unknown"));
        json_object_set_new(o, "exit_code", json_integer(sr->code));
        if (sr->msg[0])
            json_object_set_new(o, "message", json_string(sr->msg));
        if (sr->abort_sent)
            json_object_set_new(
                o, "abort", json_pack("{s:b, s:s}", "ok", sr->abort_ok, "message", sr->abort_msg));
        json_object_set_new(o, "weights", sr->weights ? json_incref(sr->weights) : json_null());
    } else {
        json_object_set_new(o, "ok", json_boolean(r->ok));
        json_object_set_new(o, "generation",
                            r->has_generation ? json_integer(r->generation) : json_null());
        if (!r->ok)
            json_object_set_new(o, "error",
                                json_pack("{s:s, s:s}", "code", r->code, "message", r->msg));
    }
    json_object_set_new(o, "plan", sr->plan ? json_incref(sr->plan) : json_null());
    return o;
}

/* Waits until `until` (monotonic ms) or a signal. */
static void shift_wait(long long until)
{
    for (;;) {
        if (g_stop)
            return;
        long long rem = until - (long long)clock_mono_ms();
        if (rem <= 0)
            return;
        struct pollfd p = {.fd = g_sigpipe[0], .events = POLLIN};
        if (poll(&p, 1, (int)rem) > 0) {
            char b[16];
            ssize_t n = read(g_sigpipe[0], b, sizeof b);
            (void)n;
        }
    }
}

/* Ctrl-C / SIGTERM: shift-abort on every replica whose plan may still run. The current step
 * stays applied (that is what abort means). */
static void shift_abort_all(struct cli *c, struct shift *sh)
{
    json_t *reqs[CTL_MAX_REPLICAS];
    size_t n = 0;
    json_t *req = json_pack("{s:s, s:{s:s, s:s}}", "op", "shift-abort", "args", "route", sh->route,
                            "reason", "interrupted by operator");
    for (size_t i = 0; i < c->n; i++) {
        reqs[i] = sh->r[i].started && !sh->r[i].done ? req : NULL;
        n += reqs[i] != NULL;
    }
    if (n)
        exchange(c, reqs, c->timeout_ms, NULL, 0);
    json_decref(req);
    for (size_t i = 0; i < c->n; i++) {
        struct shift_rep *sr = &sh->r[i];
        struct replica *r = &c->rs[i];
        char w[160];
        if (!reqs[i])
            continue;
        sr->abort_sent = 1;
        if (r->ok) {
            shift_set_plan(sr, json_object_get(json_object_get(r->reply, "result"), "plan"));
            sr->abort_ok = 1;
            snprintf(sr->abort_msg, sizeof sr->abort_msg,
                     "plan aborted; the last step stays applied: %s",
                     sr->plan ? plan_where(sr->plan, w, sizeof w) : "(no plan in the reply)");
        } else {
            snprintf(sr->abort_msg, sizeof sr->abort_msg,
                     "shift-abort FAILED (%s: %s): the plan may still be running there; abort "
                     "it with `cutoverctl shift-abort %s --reason ...`",
                     r->code, r->msg, sh->route);
        }
        shift_finish(sr, CTL_EXIT_INTERRUPTED, "interrupted", "%s", sr->abort_msg);
    }
}

/* The exit code over the replicas' outcomes: 6 when any was rolled back; 0 when all promoted;
 * 5 when some did and some did not; else the failure class (2 before 3 before 4). */
static int shift_fold(const struct cli *c, const struct shift *sh)
{
    size_t nok = 0;
    int worst = 0;
    for (size_t i = 0; i < c->n; i++) {
        int k = sh->r[i].code;
        if (k == CTL_EXIT_ROLLEDBACK)
            return CTL_EXIT_ROLLEDBACK;
        if (k == 0)
            nok++;
        else if (!worst || k < worst)
            worst = k;
    }
    if (nok == c->n)
        return CTL_EXIT_OK;
    if (nok > 0)
        return CTL_EXIT_PARTIAL;
    return worst ? worst : CTL_EXIT_UNREACH;
}

/* A refusal of the shift itself. `plan_exists` (the route already has a running or paused plan:
 * the server's code; `busy` with "reason": "plan_exists" is accepted too) is refused like
 * `conflict`: exit 2, since retrying cannot help until the other plan ends. */
static int shift_refusal_class(const struct replica *r)
{
    const json_t *err = json_object_get(r->reply, "error");
    if (!strcmp(r->code, "plan_exists") ||
        (!strcmp(r->code, "busy") &&
         (!strcmp(jstr(err, "reason"), "plan_exists") ||
          !strcmp(jstr(json_object_get(err, "details"), "code"), "plan_exists"))))
        return CTL_EXIT_USAGE;
    if (!strcmp(r->code, "unknown_op"))
        return CTL_EXIT_USAGE;
    return r->exit_class;
}

/* Builds the shift's arguments from the command line. NULL after a usage error. */
static json_t *shift_args(struct cli *c)
{
    const char *route = c->pos[1];
    if (!*route)
        return usage_error(c, "shift: ROUTE must not be empty"), NULL;
    if (!c->to || !*c->to)
        return usage_error(c, "shift: --to POOL is required"), NULL;
    if (!c->steps)
        return usage_error(c, "shift: --steps P1,P2,... is required (e.g. 10,25,50,100)"), NULL;
    if (!c->interval)
        return usage_error(c, "shift: --interval D is required: how long cutover holds each "
                              "step (and judges its gates) before the next one, e.g. 30s"),
               NULL;
    if (!c->reason || !*c->reason || strlen(c->reason) > CTL_MAX_REASON)
        return usage_error(c,
                           "shift: --reason TEXT (1..%d characters) is required (it goes to "
                           "the audit log)",
                           CTL_MAX_REASON),
               NULL;
    long long ms = parse_duration(c->interval);
    if (ms < 0)
        return usage_error(c, "shift: --interval '%s' is not a duration (30s, 2m, 1h)",
                           c->interval),
               NULL;
    if (ms > 86400000LL || ms % 1000)
        return usage_error(c,
                           "shift: --interval '%s': cutover holds each step a whole number of "
                           "seconds, 0s..24h",
                           c->interval),
               NULL;
    json_t *steps = json_array();
    const char *s = c->steps;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char tok[32];
        long h;
        if (len == 0 || len >= sizeof tok) {
            json_decref(steps);
            return usage_error(c, "shift: --steps '%s' is not a list of percentages", c->steps),
                   NULL;
        }
        memcpy(tok, s, len);
        tok[len] = 0;
        if (parse_pct(tok, &h) < 0) {
            json_decref(steps);
            return usage_error(c, "shift: step '%s' is not a percentage 0..100", tok), NULL;
        }
        if (json_array_size(steps) == CTL_MAX_STEPS) {
            json_decref(steps);
            return usage_error(c, "shift: at most %d steps", CTL_MAX_STEPS), NULL;
        }
        json_array_append_new(steps, pct_json(h));
        if (!comma)
            break;
        s = comma + 1;
    }
    json_t *gates = json_object();
    for (size_t i = 0; i < c->ngates; i++) {
        char err[300];
        if (parse_gate(c->gates[i], gates, err, sizeof err) < 0) {
            json_decref(steps);
            json_decref(gates);
            return usage_error(c, "shift: %s", err), NULL;
        }
    }
    if (c->seen & CTL_OPT_MINREQ)
        json_object_set_new(gates, "min_requests", json_integer(c->min_requests));
    json_t *args = json_pack("{s:s, s:s, s:o, s:I}", "route", route, "to", c->to, "steps", steps,
                             "hold_s", (json_int_t)(ms / 1000));
    if (json_object_size(gates))
        json_object_set_new(args, "gates", gates);
    else
        json_decref(gates);
    json_object_set_new(args, "reason", json_string(c->reason));
    if (c->seen & CTL_OPT_EXPECT)
        json_object_set_new(args, "expect_generation", json_integer(c->expect));
    return args;
}

static int run_shift(struct cli *c, const struct cmd *cmd)
{
    static struct shift sh; /* large; one per process */
    (void)cmd;
    sh.route = c->pos[1];
    sh.args = shift_args(c);
    if (!sh.args)
        return CTL_EXIT_USAGE;

    /* Ctrl-C and SIGTERM abort the plan (the current step stays applied) */
    if (pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        json_decref(sh.args);
        return usage_error(c, "pipe: %s", strerror(errno));
    }
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char gs[200], ss[400];
    sh.t0 = (long long)clock_mono_ms();
    json_t *req = json_pack("{s:s, s:O}", "op", "shift", "args", sh.args);
    exchange_all(c, req);
    json_decref(req);
    if (c->wait)
        barrier(c);
    size_t nstarted = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct replica *r = &c->rs[i];
        struct shift_rep *sr = &sh.r[i];
        /* acknowledged: a replica that then missed the --wait barrier still runs the plan */
        if (json_is_true(json_object_get(r->reply, "ok"))) {
            const json_t *res = json_object_get(r->reply, "result");
            sr->started = 1;
            nstarted++;
            shift_set_plan(sr, json_object_get(res, "plan"));
            sr->weights = json_deep_copy(json_object_get(res, "weights"));
            snprintf(sr->started_at, sizeof sr->started_at, "%s", jstr(sr->plan, "started_at"));
        } else {
            int answered = r->reply != NULL; /* the server said no, or never answered */
            shift_finish(sr, shift_refusal_class(r), answered ? "refused" : "not_started",
                         "shift %s: %s: %s", answered ? "refused" : "not started", r->code, r->msg);
        }
    }
    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < c->n; i++)
            json_array_append_new(arr, shift_rep_json(c, &sh, i, 0));
        print_json_line(json_pack("{s:s, s:s, s:O, s:o}", "event", "started", "route", sh.route,
                                  "request", sh.args, "replicas", arr));
    } else {
        printf("shift %s to %s: steps %s, hold %llds, gates %s; started on %zu of %zu "
               "replica(s)\n",
               sh.route, c->to, steps_str(json_object_get(sh.args, "steps"), ss, sizeof ss),
               (long long)json_integer_value(json_object_get(sh.args, "hold_s")),
               gates_str(json_object_get(sh.args, "gates"), gs, sizeof gs), nstarted, c->n);
        for (size_t i = 0; i < c->n; i++) {
            if (!c->rs[i].ok) {
                print_failure_line(c, &c->rs[i]);
                if (!strcmp(c->rs[i].code, "unknown_op"))
                    printf("  (%s does not know server-side shift plans: upgrade it, or walk the "
                           "weights with set-weights)\n",
                           c->rs[i].socket);
            }
        }
        fflush(stdout);
        for (size_t i = 0; i < c->n; i++)
            if (sh.r[i].started && sh.r[i].plan)
                shift_note_change(c, &sh, i);
    }

    /* watch the plans: status once a second until each one ends */
    for (long long k = 1;; k++) {
        size_t left = 0;
        for (size_t i = 0; i < c->n; i++)
            left += sh.r[i].started && !sh.r[i].done;
        if (!left || g_stop)
            break;
        if (c->tty && !c->json) {
            shift_live_clear(&sh);
            shift_live_draw(c, &sh);
        }
        shift_wait(sh.t0 + k * CTL_SHIFT_POLL_MS);
        if (g_stop)
            break;
        json_t *sreq = json_pack("{s:s, s:{s:s}}", "op", "status", "args", "route", sh.route);
        json_t *reqs[CTL_MAX_REPLICAS];
        for (size_t i = 0; i < c->n; i++)
            reqs[i] = sh.r[i].started && !sh.r[i].done ? sreq : NULL;
        exchange(c, reqs, c->timeout_ms, NULL, 0);
        json_decref(sreq);
        json_t *arr = c->json ? json_array() : NULL;
        for (size_t i = 0; i < c->n; i++) {
            if (!reqs[i])
                continue;
            shift_take_status(c, &sh, i);
            if (arr)
                json_array_append_new(arr, shift_rep_json(c, &sh, i, 0));
            else if (!sh.r[i].done && sh.r[i].plan)
                shift_note_change(c, &sh, i);
            else if (sh.r[i].done)
                shift_say(c, &sh, i, "%s", sh.r[i].msg);
        }
        if (arr)
            print_json_line(json_pack("{s:s, s:f, s:o}", "event", "progress", "elapsed_s",
                                      (double)((long long)clock_mono_ms() - sh.t0) / 1000.0, "replicas", arr));
    }
    if (c->tty && !c->json)
        shift_live_clear(&sh);
    int interrupted = g_stop != 0;
    if (interrupted)
        shift_abort_all(c, &sh);
    int code = interrupted ? CTL_EXIT_INTERRUPTED : shift_fold(c, &sh);

    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < c->n; i++)
            json_array_append_new(arr, shift_rep_json(c, &sh, i, 1));
        print_json_line(json_pack("{s:s, s:b, s:i, s:s, s:s, s:s, s:O, s:o}", "event", "result",
                                  "ok", code == 0, "exit_code", code, "command", "shift", "route",
                                  sh.route, "to", c->to, "request", sh.args, "replicas", arr));
    } else {
        size_t nprom = 0;
        for (size_t i = 0; i < c->n; i++)
            nprom += sh.r[i].code == 0 && sh.r[i].done;
        printf("shift %s: promoted on %zu of %zu replica(s)%s\n", sh.route, nprom, c->n,
               interrupted ? " (interrupted)" : "");
        int sw = (int)width_of_sockets(c);
        for (size_t i = 0; i < c->n; i++)
            printf("  %-*s  %s\n", sw, c->rs[i].socket,
                   sh.r[i].msg[0] ? sh.r[i].msg : "no outcome");
    }
    /* the closing lines on stderr: what a pipeline log must show */
    for (size_t i = 0; i < c->n && code; i++) {
        const struct shift_rep *sr = &sh.r[i];
        if (sr->code == 0 && sr->done)
            continue;
        if (interrupted && !sr->abort_sent)
            continue;
        fprintf(stderr, "cutoverctl: shift %s on %s: %s\n", sh.route, c->rs[i].socket,
                interrupted ? sr->abort_msg : sr->msg);
    }
    if (interrupted)
        fprintf(stderr,
                "cutoverctl: shift %s interrupted by %s (operator): the plan was aborted, "
                "the last applied step stays in place\n",
                sh.route, g_stop == SIGTERM ? "SIGTERM" : "SIGINT");
    else if (code == CTL_EXIT_PARTIAL)
        fprintf(stderr, "cutoverctl: shift %s: PARTIAL: promoted on some replicas only\n",
                sh.route);
    for (size_t i = 0; i < c->n; i++) {
        json_decref(sh.r[i].plan);
        json_decref(sh.r[i].weights);
    }
    json_decref(sh.args);
    return code;
}

/* ---- the command table and main ------------------------------------------------------------ */

#define CTL_MUT (CTL_OPT_REASON | CTL_OPT_EXPECT)

/* name, op, mutating, options, reason required, positionals min..max and their argument names,
 * runner, usage, help. */
static const struct cmd cmds[] = {
    {.name = "status",
     .op = "status",
     .max_pos = 1,
     .pos_names = {"route"},
     .run = run_simple,
     .usage = "status [ROUTE]",
     .help = "routes: weights, stable weights, pools, endpoints, counters, generation per "
             "replica"},
    {.name = "set-weights",
     .op = "set-weights",
     .mutating = 1,
     .opts = CTL_MUT,
     .reason_required = 1,
     .min_pos = 3,
     .max_pos = CTL_MAX_POS,
     .pos_names = {"route"},
     .run = run_simple,
     .usage = "set-weights ROUTE POOL=PCT POOL=PCT... --reason TEXT [--expect-generation N]",
     .help = "set every pool's weight (percentages, two decimals at most, summing to 100)"},
    {.name = "promote",
     .op = "promote",
     .mutating = 1,
     .opts = CTL_MUT,
     .reason_required = 1,
     .min_pos = 2,
     .max_pos = 2,
     .pos_names = {"route", "pool"},
     .run = run_simple,
     .usage = "promote ROUTE POOL --reason TEXT [--expect-generation N]",
     .help = "POOL to 100 %; these weights become the stable weights"},
    {.name = "rollback",
     .op = "rollback",
     .mutating = 1,
     .opts = CTL_MUT,
     .reason_required = 1,
     .min_pos = 1,
     .max_pos = 1,
     .pos_names = {"route"},
     .run = run_simple,
     .usage = "rollback ROUTE --reason TEXT [--expect-generation N]",
     .help = "back to the stable weights"},
    {.name = "drain",
     .op = "drain",
     .mutating = 1,
     .opts = CTL_MUT,
     .reason_required = 1,
     .min_pos = 3,
     .max_pos = 3,
     .pos_names = {"route", "pool", "endpoint"},
     .run = run_simple,
     .usage = "drain ROUTE POOL ENDPOINT --reason TEXT",
     .help = "no new request to ENDPOINT"},
    {.name = "undrain",
     .op = "undrain",
     .mutating = 1,
     .opts = CTL_MUT,
     .reason_required = 1,
     .min_pos = 3,
     .max_pos = 3,
     .pos_names = {"route", "pool", "endpoint"},
     .run = run_simple,
     .usage = "undrain ROUTE POOL ENDPOINT --reason TEXT",
     .help = "ENDPOINT takes requests again"},
    {.name = "add-endpoint",
     .op = "add-endpoint",
     .mutating = 1,
     .opts = CTL_MUT,
     .reason_required = 1,
     .min_pos = 3,
     .max_pos = 3,
     .pos_names = {"route", "pool", "endpoint"},
     .run = run_simple,
     .usage = "add-endpoint ROUTE POOL HOST:PORT --reason TEXT",
     .help = "add an endpoint to a pool"},
    {.name = "remove-endpoint",
     .op = "remove-endpoint",
     .mutating = 1,
     .opts = CTL_MUT,
     .reason_required = 1,
     .min_pos = 3,
     .max_pos = 3,
     .pos_names = {"route", "pool", "endpoint"},
     .run = run_simple,
     .usage = "remove-endpoint ROUTE POOL HOST:PORT --reason TEXT",
     .help = "remove an endpoint from a pool (not the last one)"},
    {.name = "reload",
     .op = "reload",
     .mutating = 1,
     .opts = CTL_MUT,
     .run = run_simple,
     .usage = "reload [--reason TEXT] [--expect-generation N]",
     .help = "re-read the configuration file (like SIGHUP)"},
    {.name = "history",
     .op = "history",
     .opts = CTL_OPT_LIMIT | CTL_OPT_REFUSALS,
     .run = run_simple,
     .usage = "history [--limit N] [--refusals]",
     .help = "the most recent changes, newest last: generations and the route's weights "
             "before -> after; --refusals adds the refused requests (REFUSED [code] message, "
             "\u00d7N for N alike)"},
    {.name = "version",
     .op = "version",
     .run = run_simple,
     .usage = "version",
     .help = "this client's and every replica's version and generation"},
    {.name = "shift",
     .op = "shift",
     .mutating = 1,
     .opts =
         CTL_MUT | CTL_OPT_TO | CTL_OPT_STEPS | CTL_OPT_INTERVAL | CTL_OPT_GATE | CTL_OPT_MINREQ,
     .reason_required = 1,
     .min_pos = 1,
     .max_pos = 1,
     .pos_names = {"route"},
     .run = run_shift,
     .usage = "shift ROUTE --to POOL --steps 10,25,50,100 --interval 30s [--gate 5xx<=1%] "
              "[--gate p99<=500ms] [--min-requests N] --reason TEXT [--expect-generation N]",
     .help = "start a plan in cutover (each step held --interval and judged by the gates; a "
             "failed gate rolls back) and watch it; exit 0 promoted, 6 rolled back, Ctrl-C "
             "aborts it"},
    {.name = "shift-pause",
     .op = "shift-pause",
     .mutating = 1,
     .opts = CTL_MUT,
     .reason_required = 1,
     .min_pos = 1,
     .max_pos = 1,
     .pos_names = {"route"},
     .run = run_simple,
     .usage = "shift-pause ROUTE --reason TEXT [--expect-generation N]",
     .help = "hold the route's plan at its current step (gates still roll it back)"},
    {.name = "shift-resume",
     .op = "shift-resume",
     .mutating = 1,
     .opts = CTL_MUT,
     .reason_required = 1,
     .min_pos = 1,
     .max_pos = 1,
     .pos_names = {"route"},
     .run = run_simple,
     .usage = "shift-resume ROUTE --reason TEXT [--expect-generation N]",
     .help = "let a paused plan go on"},
    {.name = "shift-abort",
     .op = "shift-abort",
     .mutating = 1,
     .opts = CTL_MUT,
     .reason_required = 1,
     .min_pos = 1,
     .max_pos = 1,
     .pos_names = {"route"},
     .run = run_simple,
     .usage = "shift-abort ROUTE --reason TEXT [--expect-generation N]",
     .help = "stop the route's plan; the current weights stay applied"},
};

static void help(FILE *f)
{
    fprintf(f,
            "usage: cutoverctl [OPTIONS] COMMAND [ARGS]\n"
            "\n"
            "Options (anywhere on the line):\n"
            "  --socket PATH           a replica's control socket; repeat for every replica\n"
            "                          (default: $CUTOVER_SOCKET or " CTL_DEFAULT_SOCKET ")\n"
            "  --endpoint unix:PATH    the same as --socket PATH\n"
            "  --endpoint https://HOST:PORT\n"
            "                          a replica's HTTPS admin API (mutual TLS); a name that\n"
            "                          resolves to several addresses is one replica per address\n"
            "  --cacert FILE           CA bundle the admin API's certificate must chain to\n"
            "                          (default: $CUTOVER_CACERT, else the system's)\n"
            "  --cert FILE, --key FILE the client certificate (chain) and its key (default:\n"
            "                          $CUTOVER_CERT, $CUTOVER_KEY; the key may be in --cert)\n"
            "  --json                  print one JSON document\n"
            "  --timeout SECONDS       bound on connect + each request (default 5)\n"
            "  --wait                  after a change, wait until every replica reports the\n"
            "                          generation it acknowledged\n"
            "  --wait-timeout SECONDS  bound on --wait (default 10)\n"
            "  --id ID                 request id (default: cutoverctl-PID-N)\n"
            "  -h, --help              this help\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %s\n      %s\n", cmds[i].usage, cmds[i].help);
    fprintf(f, "\nGates (shift, repeatable --gate): 5xx<=PERCENT%% (e.g. 5xx<=1%%), p99<=DURATION "
               "(p99<=500ms, p99<=2s).\n"
               "\nExit codes: 0 ok (shift: promoted), 2 usage error or refused as invalid, 3 "
               "denied,\n4 unreachable or timeout, 5 partial across replicas, 6 the shift was "
               "rolled back by a gate,\n130 interrupted (shift: plan aborted, last step left "
               "applied). See docs/cutoverctl.md.\n");
}

struct optdef {
    const char *name;
    int has_arg;
    unsigned bit; /* CTL_OPT_* for command options, 0 for global ones */
};

static const struct optdef optdefs[] = {
    {"--socket", 1, 0},
    {"--endpoint", 1, 0},
    {"--cacert", 1, 0},
    {"--cert", 1, 0},
    {"--key", 1, 0},
    {"--json", 0, 0},
    {"--timeout", 1, 0},
    {"--wait", 0, 0},
    {"--wait-timeout", 1, 0},
    {"--id", 1, 0},
    {"--reason", 1, CTL_OPT_REASON},
    {"--expect-generation", 1, CTL_OPT_EXPECT},
    {"--limit", 1, CTL_OPT_LIMIT},
    {"--to", 1, CTL_OPT_TO},
    {"--gate", 1, CTL_OPT_GATE},
    {"--min-requests", 1, CTL_OPT_MINREQ},
    {"--refusals", 0, CTL_OPT_REFUSALS},
    {"--steps", 1, CTL_OPT_STEPS},
    {"--interval", 1, CTL_OPT_INTERVAL},
};

/* Applies one option. Returns 0 or a usage exit code (after printing). */
static int apply_option(struct cli *c, const char *name, const char *val)
{
    if (!strcmp(name, "--socket") || !strcmp(name, "--endpoint")) {
        if (c->ntargets == CTL_MAX_REPLICAS)
            return usage_error(c, "at most %d replicas", CTL_MAX_REPLICAS);
        struct target *t = &c->targets[c->ntargets];
        memset(t, 0, sizeof *t);
        t->text = val;
        if (!strcmp(name, "--endpoint") && !strncmp(val, "https://", 8)) {
            char err[160];
            if (ctlurl_parse(val, &t->url, err, sizeof err) < 0)
                return usage_error(c, "--endpoint %s: %s", val, err);
            t->https = 1;
        } else if (!strcmp(name, "--endpoint")) {
            if (!strncmp(val, "http://", 7))
                return usage_error(c, "--endpoint %s: the admin API speaks HTTPS only", val);
            if (strncmp(val, "unix:", 5))
                return usage_error(c, "--endpoint %s: expected https://HOST[:PORT] or unix:PATH",
                                   val);
            t->text = val + 5;
        }
        if (!t->https && !*t->text)
            return usage_error(c, "%s: empty socket path", name);
        c->ntargets++;
    } else if (!strcmp(name, "--cacert") || !strcmp(name, "--cert") || !strcmp(name, "--key")) {
        if (!*val)
            return usage_error(c, "%s: empty file name", name);
        if (!strcmp(name, "--cacert"))
            c->cacert = val;
        else if (!strcmp(name, "--cert"))
            c->cert = val;
        else
            c->key = val;
    } else if (!strcmp(name, "--json")) {
        c->json = 1;
    } else if (!strcmp(name, "--wait")) {
        c->wait = 1;
    } else if (!strcmp(name, "--timeout") || !strcmp(name, "--wait-timeout")) {
        long long ms = parse_duration(val);
        if (ms <= 0 || ms > 86400000LL)
            return usage_error(c, "%s '%s': expected a positive number of seconds", name, val);
        if (!strcmp(name, "--timeout"))
            c->timeout_ms = ms;
        else
            c->wait_timeout_ms = ms;
    } else if (!strcmp(name, "--id")) {
        if (!*val || strlen(val) > 100)
            return usage_error(c, "--id must be 1..100 characters");
        c->id = val;
    } else if (!strcmp(name, "--reason")) {
        c->reason = val;
    } else if (!strcmp(name, "--expect-generation")) {
        if (parse_ll(val, 0, LLONG_MAX, &c->expect) < 0)
            return usage_error(c, "--expect-generation '%s': expected a generation number", val);
    } else if (!strcmp(name, "--limit")) {
        if (parse_ll(val, 1, 1000, &c->limit) < 0)
            return usage_error(c, "--limit '%s': expected 1..1000", val);
    } else if (!strcmp(name, "--to")) {
        c->to = val;
    } else if (!strcmp(name, "--gate")) {
        if (c->ngates == sizeof c->gates / sizeof c->gates[0])
            return usage_error(c, "at most %zu --gate options", c->ngates);
        c->gates[c->ngates++] = val;
    } else if (!strcmp(name, "--min-requests")) {
        if (parse_ll(val, 0, 100000000LL, &c->min_requests) < 0)
            return usage_error(c, "--min-requests '%s': expected 0..100000000", val);
    } else if (!strcmp(name, "--steps")) {
        c->steps = val;
    } else if (!strcmp(name, "--interval")) {
        c->interval = val;
    }
    return 0;
}

/* The client TLS context for the admin API: TLS 1.2+, the server verified against --cacert (or
 * the system's CAs), the client certificate presented. Returns 0 or a usage exit code. */
static int tls_setup(struct cli *c)
{
    const char *env_ca = getenv("CUTOVER_CACERT"), *env_cert = getenv("CUTOVER_CERT"),
               *env_key = getenv("CUTOVER_KEY");
    const char *cacert = c->cacert ? c->cacert : env_ca && *env_ca ? env_ca : NULL;
    const char *cert = c->cert ? c->cert : env_cert && *env_cert ? env_cert : NULL;
    const char *key = c->key ? c->key : env_key && *env_key ? env_key : cert;
    if (!cert)
        return usage_error(c, "--endpoint https://... needs a client certificate: --cert FILE "
                              "[--key FILE] (or CUTOVER_CERT, CUTOVER_KEY)");
    char why[256];
    SSL_CTX *x = SSL_CTX_new(TLS_client_method());
    if (!x)
        return usage_error(c, "cannot create a TLS context");
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
        return usage_error(c, "--cacert %s: cannot load it (%s)", cacert ? cacert : "(system)",
                           why);
    }
    if (SSL_CTX_use_certificate_chain_file(x, cert) != 1) {
        ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
        ERR_clear_error();
        return usage_error(c, "--cert %s: cannot load the certificate (%s)", cert, why);
    }
    if (SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        ERR_error_string_n(e, why, sizeof why);
        ERR_clear_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            return usage_error(c, "--key %s does not match the certificate in %s", key, cert);
        return usage_error(c, "--key %s: cannot load the private key (%s)", key, why);
    }
    if (SSL_CTX_check_private_key(x) != 1) {
        ERR_clear_error();
        return usage_error(c, "--key %s does not match the certificate in %s", key, cert);
    }
    return 0;
}

/* One replica per control socket and per address of every HTTPS endpoint, in the order given.
 * Returns 0 or a usage exit code. */
static int make_replicas(struct cli *c)
{
    int any_https = 0;
    for (size_t t = 0; t < c->ntargets; t++)
        any_https |= c->targets[t].https;
    if (any_https) { /* the certificate first: a usage error must not wait for DNS */
        int rc = tls_setup(c);
        if (rc)
            return rc;
    }
    c->n = 0;
    for (size_t t = 0; t < c->ntargets; t++) {
        struct target *tg = &c->targets[t];
        if (!tg->https) {
            if (c->n == CTL_MAX_REPLICAS)
                return usage_error(c, "at most %d replicas", CTL_MAX_REPLICAS);
            struct replica *r = &c->rs[c->n++];
            r->socket = tg->text;
            r->fd = -1;
            continue;
        }
        struct sockaddr_storage addrs[CTL_MAX_REPLICAS];
        socklen_t lens[CTL_MAX_REPLICAS];
        char err[300];
        int n = ctlurl_expand(&tg->url, ctlurl_resolve_system, NULL, addrs, lens,
                              CTL_MAX_REPLICAS - c->n, err, sizeof err);
        if (n == CUT_ELIMIT)
            return usage_error(c, "--endpoint %s: %s (at most %d replicas)", tg->text, err,
                               CTL_MAX_REPLICAS);
        if (n < 0 && c->n == CTL_MAX_REPLICAS)
            return usage_error(c, "at most %d replicas", CTL_MAX_REPLICAS);
        for (int i = 0; i < (n > 0 ? n : 1); i++) {
            struct replica *r = &c->rs[c->n++];
            r->https = 1;
            r->url = &tg->url;
            r->endpoint = tg->text;
            r->fd = -1;
            r->socket = r->label;
            if (n < 0) { /* reported as this replica's failure (unreachable) at every exchange */
                snprintf(r->resolve_err, sizeof r->resolve_err, "%s", err);
                snprintf(r->label, sizeof r->label, "%s", tg->text);
                continue;
            }
            memcpy(&r->addr, &addrs[i], lens[i]);
            r->addrlen = lens[i];
            char at[64], authority[CTLURL_HOST_MAX + 16];
            ctlurl_addr_text((struct sockaddr *)&addrs[i], at, sizeof at);
            memcpy(r->addr_text, at, sizeof at);
            ctlurl_authority(&tg->url, authority, sizeof authority);
            if (tg->url.numeric)
                snprintf(r->label, sizeof r->label, "https://%s", authority);
            else
                snprintf(r->label, sizeof r->label, "https://%s (%s)", authority, at);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct cli cli;
    struct cli *c = &cli;
    int only_pos = 0;
    c->timeout_ms = 5000;
    c->wait_timeout_ms = 10000;
    signal(SIGPIPE, SIG_IGN);

    /* --json first, so that usage errors found before it are reported as JSON too */
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--json"))
            c->json = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1]) {
            if (c->npos == CTL_MAX_POS)
                return usage_error(c, "too many arguments");
            c->pos[c->npos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            help(stdout);
            return 0;
        }
        char name[64];
        const char *eq = strchr(a, '=');
        const char *val = NULL;
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        const struct optdef *od = NULL;
        for (size_t k = 0; k < sizeof optdefs / sizeof optdefs[0]; k++)
            if (!strcmp(optdefs[k].name, name))
                od = &optdefs[k];
        if (!od)
            return usage_error(c, "unknown option '%s'", name);
        if (od->has_arg) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return usage_error(c, "option %s needs a value", name);
        } else if (eq) {
            return usage_error(c, "option %s takes no value", name);
        }
        c->seen |= od->bit;
        int rc = apply_option(c, name, val);
        if (rc)
            return rc;
    }
    if (c->npos == 0)
        return usage_error(c, "no command given");
    const struct cmd *cmd = NULL;
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
        if (!strcmp(cmds[k].name, c->pos[0]))
            cmd = &cmds[k];
    if (!cmd)
        return usage_error(c, "unknown command '%s'", c->pos[0]);
    if (c->seen & ~cmd->opts) {
        for (size_t k = 0; k < sizeof optdefs / sizeof optdefs[0]; k++)
            if (optdefs[k].bit & c->seen & ~cmd->opts)
                return usage_error(c, "%s does not take %s", cmd->name, optdefs[k].name);
    }
    size_t nargs = c->npos - 1;
    if (nargs < cmd->min_pos || nargs > cmd->max_pos)
        return usage_error(c, "usage: cutoverctl %s", cmd->usage);

    if (c->ntargets == 0) {
        const char *env = getenv("CUTOVER_SOCKET");
        c->targets[0].text = env && *env ? env : CTL_DEFAULT_SOCKET;
        c->ntargets = 1;
    }
    int rc = make_replicas(c);
    if (rc)
        return rc;
    c->tty = isatty(STDOUT_FILENO);

    int code = cmd->run(c, cmd);
    for (size_t i = 0; i < c->n; i++)
        json_decref(c->rs[i].reply);
    SSL_CTX_free(c->tls);
    fflush(stdout);
    return code;
}

/* cli.h - cutoverctl's shared types: the invocation (struct cli), the replicas it talks to and
 * their exchanges, the exit codes (docs/cutoverctl.md). The operations themselves (usage,
 * positionals, options, help) are in control/optable.h, shared with the server.
 *
 * cutoverctl is single-threaded; all its state is reachable from one struct cli, owned by main().
 */
#ifndef CUT_CLI_H
#define CUT_CLI_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <sys/socket.h>

#include "control/ctlurl.h"
#include "control/optable.h"

#define CLI_DEFAULT_SOCKET "/run/cutover/control.sock"
#define CLI_MAX_REPLICAS 64
#define CLI_MAX_POS 256
#define CLI_MAX_REQUEST (64u << 10) /* the server's request line limit, newline included */
#define CLI_MAX_REPLY (16u << 20)   /* we refuse longer reply lines */
#define CLI_MAX_REASON 512
#define CLI_MAX_STEPS 100
#define CLI_MAX_GATES 8
#define CLI_POLL_RETRY_MS 10 /* connect() said EAGAIN (listen backlog full): retry after */
#define CLI_BARRIER_PERIOD_MS 100
#define CLI_HTTP_MAX_HEAD 65536 /* a longer HTTP response head is a protocol error */

/* Exit codes (documented in docs/cutoverctl.md; keep them in sync). */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_USAGE = 2,      /* usage error, or refused as invalid by the server */
    CLI_EXIT_DENIED = 3,     /* the caller's role may not do this */
    CLI_EXIT_UNREACH = 4,    /* unreachable / timeout / busy / internal, on every replica */
    CLI_EXIT_PARTIAL = 5,    /* some replicas succeeded, some failed */
    CLI_EXIT_ROLLEDBACK = 6, /* cutover rolled the shift's plan back (a gate failed) */
    CLI_EXIT_INTERRUPTED = 130,
};

/* Where one replica's exchange is. */
enum cli_rstate {
    CLI_RS_IDLE,
    CLI_RS_RETRY,
    CLI_RS_CONNECTING,
    CLI_RS_HANDSHAKE, /* HTTPS: the TLS handshake */
    CLI_RS_SENDING,
    CLI_RS_RECEIVING,
    CLI_RS_DONE,
};

/* One replica (a control socket, or one address of an HTTPS admin API endpoint) and the
 * outcome of its last exchange. */
struct cli_replica {
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
    enum cli_rstate st;
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
    int exit_class; /* when !ok: CLI_EXIT_USAGE, _DENIED or _UNREACH */
    char code[40];  /* when !ok: the server's error code, or unreachable/timeout/protocol/... */
    char msg[700];  /* when !ok: a sentence for people */
    long long generation;
    int has_generation;
};

/* Where to send: a control socket, or an HTTPS admin API endpoint (expanded into one replica
 * per address once the options are read). */
struct cli_target {
    const char *text; /* a socket path, or the https:// URL */
    int https;
    struct ctlurl url;
};

/* The whole invocation: options, positionals, replicas. */
struct cli {
    struct cli_target targets[CLI_MAX_REPLICAS];
    size_t ntargets;
    const char *cacert, *cert, *key; /* --cacert/--cert/--key, else CUTOVER_CACERT/_CERT/_KEY */
    SSL_CTX *tls;                    /* made when an https endpoint is given */
    int json;
    long long timeout_ms;
    int wait;
    long long wait_timeout_ms;
    const char *id;
    unsigned long round; /* requests sent so far (for generated ids) */

    unsigned seen; /* OPTABLE_ARG_* given on the command line */
    const char *reason;
    long long expect;
    long long limit;
    const char *to, *steps, *interval;
    const char *gates[CLI_MAX_GATES]; /* --gate, repeatable */
    size_t ngates;
    long long min_requests;
    const char *route, *since, *actor; /* history's filters: --route, --since, --actor */
    const char *cohort; /* --cohort country=...: the country list after "country=" */

    const char *pos[CLI_MAX_POS]; /* positionals, pos[0] is the command */
    size_t npos;

    struct cli_replica rs[CLI_MAX_REPLICAS];
    size_t n;
    int tty; /* stdout is a terminal (live progress line) */
};

/* How a command runs: cli_simple_run (one request to every replica) or cli_shift_run. Returns
 * the exit code. */
typedef int (*cli_run_fn)(struct cli *c, const struct optable_op *cmd);

#endif

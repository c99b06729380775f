/* cfg.h - the configuration as plain data.
 *
 * A struct cfg is built by cfg_parse() from one JSON document, validated as a whole, and never
 * modified afterwards: it is immutable per generation (a reload builds a new one). It includes
 * nothing from proxy/ or control/. Every string is owned by the cfg and freed by cfg_free().
 * Weights are basis points (0..10000); the JSON says percentages with up to two decimals.
 */
#ifndef CUT_CFG_H
#define CUT_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/role.h"

#define CFG_MAX_POOLS 8
#define CFG_BP_TOTAL 10000u

/* An IPv4 or IPv6 network, e.g. "10.0.0.0/8" or "::1/128". addr holds the network address in
 * network byte order (4 or 16 bytes used). */
struct cfg_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
};

struct cfg_cidr_list {
    struct cfg_cidr *v;
    size_t n;
};

enum cfg_proto { CFG_PROTO_HTTP1 = 1u << 0 };

#define CFG_MAX_LISTENERS 16
#define CFG_TLS_MAX_CERTS 16
#define CFG_TLS_MAX_ALPN 2

/* One certificate of a TLS listener: either cert + key (two PEM files), or pem (one file holding
 * the private key followed by the chain, as the Key Vault CSI driver writes it). */
struct cfg_tls_cert {
    char *cert; /* leaf first, then intermediates */
    char *key;
    char *pem;
};

enum cfg_client_auth { CFG_CLIENT_AUTH_NONE = 0, CFG_CLIENT_AUTH_OPTIONAL, CFG_CLIENT_AUTH_REQUIRED };
enum cfg_alpn { CFG_ALPN_HTTP11 = 1, CFG_ALPN_H2 = 2 };

struct cfg_tls {
    struct cfg_tls_cert *certs; /* certs[0] is the default (no SNI, or no SAN matches) */
    size_t ncerts;
    enum cfg_client_auth client_auth;
    char *client_ca; /* PEM bundle; required unless client_auth is none */
    char *crl;       /* PEM CRLs; NULL: no revocation check */
    unsigned min_version; /* 12 or 13 (TLS 1.2 / 1.3); 1.3 is always the maximum */
    enum cfg_alpn alpn[CFG_TLS_MAX_ALPN]; /* in server preference order */
    size_t nalpn;
};

struct cfg_listener {
    char *name;
    char *address;     /* "host:port" or "[v6]:port", as written */
    char *host;        /* parsed host part (numeric address) */
    uint16_t port;
    unsigned protocols; /* CFG_PROTO_* bits */
    struct cfg_tls *tls; /* NULL: plain TCP */
};

/* One upstream address as written: "name-or-ip:port". Resolution happens outside config/. */
struct cfg_endpoint {
    char *address; /* as written */
    char *host;
    uint16_t port;
};

enum cfg_balance { CFG_BALANCE_LEAST_OUTSTANDING = 0, CFG_BALANCE_ROUND_ROBIN = 1 };

/* How cutover talks to a pool's endpoints: http1 (cleartext, or TLS with ALPN "http/1.1" when
 * the pool has a "tls" object), h2c (cleartext HTTP/2 with prior knowledge), h2 (TLS with ALPN
 * "h2" only: an upstream that picks anything else is a failed connection). */
enum cfg_up_proto { CFG_UP_HTTP1 = 0, CFG_UP_H2C, CFG_UP_H2 };

/* TLS towards a pool's endpoints: the upstream's certificate is always verified against ca (the
 * corporate CA; there is no way to turn verification off) and the expected name. */
struct cfg_upstream_tls {
    char *ca;          /* PEM bundle of trusted CAs (required) */
    char *crl;         /* PEM CRLs; NULL: no revocation check */
    char *server_name; /* SNI and the name verified; NULL: the endpoint's host (DNS name: SNI and
                        * name check; IP literal: no SNI, the IP must be in the SAN) */
    struct cfg_tls_cert *client_cert; /* presented to the upstream; NULL: none */
    unsigned min_version;             /* 12 or 13 */
};

/* Active health checks of a pool's endpoints (HTTP/1.1 GET, over TLS when the pool uses TLS),
 * run by the control thread. */
struct cfg_health_check {
    int enabled;
    char *path;            /* "/healthz" */
    char *host;            /* Host header; NULL: the endpoint as configured */
    unsigned interval_ms, jitter_ms, timeout_ms;
    unsigned healthy_threshold, unhealthy_threshold; /* consecutive results to change state */
    unsigned status_min, status_max;                 /* expected statuses, inclusive */
};

struct cfg_pool {
    char *name; /* "blue", "green", ... */
    struct cfg_endpoint *endpoints;
    size_t nendpoints;
    enum cfg_balance balance;
    unsigned weight_bp; /* initial weight from "weights" */
    enum cfg_up_proto protocol;
    struct cfg_upstream_tls *tls; /* NULL: cleartext */
    struct cfg_health_check health_check;
    unsigned slow_start_ms; /* a returning endpoint's share ramps up over this long; 0: none */
};

/* Passive outlier ejection, per route (every pool): an endpoint with consecutive_failures
 * upstream failures in a row (5xx, connect errors, resets) on one worker is ejected for
 * base_ejection_ms, doubling with each ejection up to max_ejection_ms; at most
 * max_ejection_percent of a pool's endpoints are ejected at once. */
struct cfg_outlier {
    int enabled;
    unsigned consecutive_failures;
    unsigned base_ejection_ms, max_ejection_ms;
    unsigned max_ejection_percent;
};

/* Outside any shift plan: when a non-stable pool carrying weight (green) answers more than
 * max_5xx_bp (basis points) 5xx over window_s seconds with at least min_requests requests, the
 * route rolls back to its stable weights (actor "auto"). */
struct cfg_watchdog {
    int enabled;
    unsigned max_5xx_bp;
    unsigned window_s;
    unsigned min_requests;
};

enum cfg_sticky_kind {
    CFG_STICKY_NONE = 0,
    CFG_STICKY_HEADER,    /* hash a request header (device or user id) */
    CFG_STICKY_COOKIE,    /* hash one cookie's value */
    CFG_STICKY_CLIENT_IP  /* hash the client address (from X-Forwarded-For behind trusted proxies) */
};

struct cfg_sticky {
    enum cfg_sticky_kind kind;
    char *name; /* header name (lower case) or cookie name; NULL for CLIENT_IP */
};

struct cfg_override {
    char *header; /* lower-case header name, NULL when overrides are disabled */
    struct cfg_cidr_list trusted_peers; /* peers whose override header is honoured */
    char **trusted_subjects; /* when set, the caller must also present a verified client
                              * certificate with one of these subjects (RFC 2253) */
    size_t nsubjects;
};

struct cfg_route {
    char *name;
    char **hosts;  /* lower-case host names (no port); "*" matches any; n == 0 means any */
    size_t nhosts;
    char *path_prefix; /* starts with '/' */
    struct cfg_pool pools[CFG_MAX_POOLS]; /* in the order written; sticky buckets follow it */
    size_t npools;
    struct cfg_sticky sticky;
    struct cfg_override override;
    struct cfg_outlier outlier;
    struct cfg_watchdog watchdog;
};

struct cfg_timeouts { /* all milliseconds */
    unsigned client_header;   /* first byte of a request head to its end */
    unsigned client_idle;     /* keep-alive idle between requests */
    unsigned upstream_connect;
    unsigned upstream_header; /* request sent to response head received */
    unsigned body_idle;       /* no body byte either way for this long */
    unsigned request_body;    /* a request body's grace after its head (0: no deadline); it
                               * grows by 1 s per limits.min_body_rate bytes received */
    unsigned upstream_idle;   /* idle pooled upstream connection is closed after this */
    unsigned upstream_queue;  /* longest wait for a connection to a busy endpoint (-> 503) */
    unsigned shutdown_delay;  /* SIGTERM: keep accepting this long before closing listeners */
    unsigned drain;           /* SIGTERM: in-flight requests get this long to finish */
    unsigned dns_refresh;     /* re-resolve endpoint names this often */
};

struct cfg_limits {
    unsigned max_request_line;   /* bytes -> 414 */
    unsigned max_header_bytes;   /* whole head -> 431 */
    unsigned max_headers;        /* count -> 431 */
    unsigned max_connections;    /* per worker */
    unsigned upstream_idle_per_endpoint; /* idle connections kept per endpoint per worker */
    unsigned upstream_connections_per_endpoint; /* HTTP/1.1 connections open to one endpoint
                                                 * per worker (0: no limit); beyond, requests
                                                 * wait for one */
    unsigned upstream_queue_per_endpoint; /* requests waiting per endpoint per worker (-> 503) */
    unsigned buffer_bytes;       /* high-water mark per direction before reading stops */
    unsigned min_body_rate;      /* bytes/s a request body must average after
                                  * timeouts.request_body (0: that is a fixed total deadline) */
};

/* Retries of a request that did not reach an upstream (proxy/route.h route_retry_decide):
 * at most max_tries tries in all (the first included), none started budget_ms or more after
 * the first. */
struct cfg_retries {
    unsigned max_tries;
    unsigned budget_ms;
};

/* W3C traceparent handling (proxy/http/trace.h): a valid one is always forwarded; "create" also
 * makes one for a request that has none (or an invalid one). */
enum cfg_trace_context { CFG_TRACE_FORWARD = 0, CFG_TRACE_CREATE = 1 };

struct cfg_access_log {
    int enabled;
    char *country_database; /* a MaxMind DB: the client's country in each line; NULL: none */
};


/* Maps a control-socket peer to a role: the first rule whose uid or gid matches wins. */
struct cfg_role_rule {
    long uid; /* -1: any */
    long gid; /* -1: any */
    enum cut_role role;
};

/* The metrics and health listener: plain HTTP, read-only (/metrics, /healthz, /readyz). */
struct cfg_metrics {
    char *address; /* as written; NULL: no such listener */
    char *host;
    uint16_t port;
};

/* The fleet store (control.store): etcd v3, reached through its HTTP/JSON gateway, holding the
 * runtime state every replica of a fleet shares (docs/configuration.md, "store"). */
#define CFG_STORE_MAX_ENDPOINTS 16
struct cfg_store {
    int enabled;                 /* control.store was given (first member: cfg_types_has_enabled) */
    char **endpoints;            /* "https://10.0.0.5:2379", as written */
    size_t nendpoints;
    char *prefix;                /* "/cutover/payments-weu/": every key of the fleet under it */
    struct cfg_upstream_tls *tls; /* CA and client certificate; required with https endpoints */
    char *user;                  /* etcd authentication; NULL: none */
    char *password_file;         /* with user: the file holding the password */
    char *replica;               /* this replica's name; NULL: $POD_NAME, else the host name */
    unsigned dial_timeout_ms;
    unsigned request_timeout_ms;
    unsigned lease_ttl_s;        /* the replica's registration outlives it by at most this */
};

struct cfg_control {
    char *socket;     /* Unix socket path; NULL: no control socket */
    unsigned mode;    /* permission bits of the socket, e.g. 0660 */
    long group;       /* gid to chown the socket to; -1 leaves it */
    char *state_file; /* NULL: runtime state is not persisted */
    char *audit_file; /* NULL: audit records go to stdout only */
    unsigned max_clients;     /* simultaneous connections; the idlest gives way to a new one */
    unsigned request_timeout; /* ms: the first request from the accept, each later one from its
                               * first byte (or from the previous reply, if later), and the
                               * writing of the replies */
    unsigned idle_timeout;    /* ms: a connection between requests */
    struct cfg_role_rule *roles;
    size_t nroles;
    struct cfg_store store;
};

/* Maps a verified admin API client certificate to a role: its subject, exactly as OpenSSL
 * prints it in RFC 2253 form (most specific RDN first, "CN=release-pipeline,OU=Platform,O=Bank";
 * XN_FLAG_RFC2253 without escaping non-ASCII bytes, see docs/configuration.md). */
struct cfg_admin_role {
    char *subject;
    enum cut_role role;
};

#define CFG_ADMIN_SUBJECT_MAX 1024

/* The HTTPS admin API (the control protocol over mutual TLS). */
struct cfg_admin {
    char *address;  /* "ip:port" as written; NULL: no admin API */
    char *host;     /* numeric address */
    uint16_t port;
    struct cfg_tls *tls; /* client_auth is always CFG_CLIENT_AUTH_REQUIRED, ALPN http/1.1 */
    struct cfg_admin_role *roles; /* first exact subject match wins */
    size_t nroles;
    unsigned max_clients;     /* simultaneous connections; the idlest gives way to a new one */
    unsigned request_timeout; /* ms: handshake + request head + body, and writing the reply */
    unsigned idle_timeout;    /* ms: a keep-alive connection between requests */
};

/* Audit records and security events to the SIEM (QRadar): LEEF 2.0 in RFC 5424 syslog over TLS
 * (docs/configuration.md, "siem"). */
enum cfg_siem_framing { CFG_SIEM_OCTET_COUNTING = 0, CFG_SIEM_NEWLINE };

struct cfg_siem {
    char *address; /* "host:port" as written; NULL: no SIEM */
    char *host;    /* its host (DNS name or numeric address) */
    uint16_t port;
    struct cfg_upstream_tls *tls; /* required; the collector's certificate is always verified */
    char *vendor;                 /* LEEF Vendor */
    char delimiter;               /* LEEF 2.0 attribute delimiter */
    char *hostname;               /* RFC 5424 HOSTNAME; NULL: the machine's host name */
    unsigned facility;            /* 0..23 */
    enum cfg_siem_framing framing;
    unsigned max_queue_bytes;
    unsigned connect_timeout_ms, write_timeout_ms;
};

struct cfg {
    char *cluster;
    char *region;
    unsigned workers; /* 0 = the CPUs this process may use */
    struct cfg_listener *listeners;
    size_t nlisteners;
    struct cfg_cidr_list trusted_proxies;
    struct cfg_route *routes;
    size_t nroutes;
    struct cfg_timeouts timeouts;
    struct cfg_limits limits;
    struct cfg_retries retries;
    struct cfg_access_log access_log;
    enum cfg_trace_context trace_context;
    struct cfg_control control;
    struct cfg_metrics metrics;
    struct cfg_admin admin;
    struct cfg_siem siem;
    char *probe_path; /* answered by cutover itself on every listener, any Host; NULL: none */
};

/* One problem found in a configuration: the JSON path ("routes[1].pools.green.endpoints[0]")
 * and a message; line and column when jansson reported them (0 otherwise). */
struct cfg_error {
    char *path;
    char *message;
    int line, column;
};

struct cfg_errors {
    struct cfg_error *v;
    size_t n;
};

/* Parses and validates a JSON document. On success returns 0 and sets *out (caller frees with
 * cfg_free). On failure returns CUT_EINVAL (or CUT_ENOMEM) and fills errs with every problem found
 * (caller frees with cfg_errors_dispose); *out is left NULL. errs need not be initialised: it is
 * reset on entry (so cfg_load and cfg_parse never append to an earlier list). Any thread; no
 * global state. */
int cfg_parse(const char *json, size_t len, struct cfg **out, struct cfg_errors *errs);

/* Reads a file and calls cfg_parse. A read failure is reported as one error with path "" and
 * returns CUT_EIO. */
int cfg_load(const char *path, struct cfg **out, struct cfg_errors *errs);

void cfg_free(struct cfg *cfg);

/* Frees a pool's tls object (NULL is ignored). */
void cfg_upstream_tls_free(struct cfg_upstream_tls *t);
void cfg_errors_dispose(struct cfg_errors *errs);

/* Writes each error as "path: message (line L, column C)" lines to f. */
void cfg_errors_print(const struct cfg_errors *errs, const char *file, FILE *f);

/* Returns the pool index of name in route, or -1. */
int cfg_route_pool_index(const struct cfg_route *route, const char *name);

/* Index of the route named name in cfg, or -1. */
int cfg_route_index(const struct cfg *cfg, const char *name);

/* Appends one error (path copied; "" is the root; line/column 0 when unknown) to errs, which
 * must be initialised ({0} is empty). Returns 0 or CUT_ENOMEM. Config and control code use it to
 * collect every problem before rejecting a change. */
int cfg_errors_add(struct cfg_errors *errs, const char *path, int line, int column,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The checks that span several objects (unique listener names and addresses, unique route
 * names, unique hosts in a route, unique endpoints in a pool, no two routes with the same match,
 * unique admin role subjects, an admin address no listener uses).
 * cfg may be partly filled (NULL strings are skipped). Appends every problem to errs. Returns 0
 * when nothing was found, CUT_EINVAL when problems were appended, CUT_ENOMEM. Called by
 * cfg_parse(); exposed so that code building a cfg by other means can run the same rules. */
int cfg_validate(const struct cfg *cfg, struct cfg_errors *errs);

/* Returns the whole configuration, defaults included, as canonical JSON text (the keys of
 * cfg_parse in its order, weights back as percentages, hosts lower case, CIDRs as network/prefix)
 * that cfg_parse accepts and turns into an equal cfg. The caller frees the text with free().
 * Returns NULL when out of memory. Any thread; cfg is borrowed. */
char *cfg_dump(const struct cfg *cfg);

#endif

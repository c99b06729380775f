/* etcd_internal.h - private to the etcd client: only control/etcd*.c include it (etcd.c, the
 * client, its transfers and unary calls; etcd_watch.c, the watch streams). What both need: the
 * client's structs and the few functions of etcd.c that etcd_watch.c calls and back.
 * Control thread only, like etcd.h.
 */
#ifndef CUT_ETCD_INTERNAL_H
#define CUT_ETCD_INTERNAL_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "control/etcd.h"

struct event;
struct event_base;

#define ETCD_WHAT_CAP 512

enum grpc_code { GRPC_UNKNOWN = 2, GRPC_INVALID_ARGUMENT = 3, GRPC_UNAVAILABLE = 14,
                 GRPC_UNAUTHENTICATED = 16 };

enum auth_state { AUTH_OFF, AUTH_NEED, AUTH_RUNNING, AUTH_OK };

enum req_state { REQ_QUEUED, REQ_RUNNING, REQ_PAUSED, REQ_DEAD };

struct buf {
    char *p;
    size_t len, cap;
};

/* What a call and a watch share: one transfer at a time, on one member. */
struct req {
    struct etcd *e;
    struct req *prev, *next; /* e->reqs, or e->graveyard once dead */
    bool is_watch;
    enum req_state state;
    CURL *easy;
    struct curl_slist *hdrs;
    char *path;
    char *body;
    size_t body_len;
    struct buf resp;
    bool overflow;    /* the reply passed its bound */
    size_t member;    /* the member of the transfer in flight */
    unsigned token_gen; /* the token the transfer carries */
    bool release;       /* queued behind the authentication that just ended */
    char errbuf[CURL_ERROR_SIZE];
};

struct etcd_call {
    struct req r; /* first: a struct req * of a call is the call */
    etcd_reply_fn cb;
    void *ctx;
    bool internal_auth; /* the client's own /v3/auth/authenticate */
    bool stream;        /* the reply is a stream (/v3/lease/keepalive): its first object ends it */
    bool has_data;      /* stream: bytes arrived since the last look */
    bool reauthed;
    size_t start;       /* the first member of this round */
    unsigned tried;     /* members tried in this round */
    unsigned round;     /* 0, then 1 for the one extra round */
    bool leader_trouble; /* a member of this round said "no leader" / "leader changed" */
    struct event *pause;
    char what[ETCD_WHAT_CAP];
};

/* What etcd.c hands a watch over to (set by etcd_watch.c, so that etcd.c needs nothing from
 * it): start once an authentication it waited for succeeded, end when it failed (status),
 * parse when bytes arrived (false: the watch ended), done when its transfer finished. */
struct etcd_watch;
struct etcd_watch_ops {
    void (*start)(struct etcd_watch *w);
    void (*end)(struct etcd_watch *w, int status);
    bool (*parse)(struct etcd_watch *w);
    void (*done)(struct etcd_watch *w, CURLcode res);
};

struct etcd_watch {
    struct req r; /* first */
    const struct etcd_watch_ops *ops;
    etcd_watch_fn cb;
    void *ctx;
    bool has_data;  /* bytes arrived since the last parse */
    long http_status;
    size_t parsed;  /* bytes of r.resp already delivered */
    struct event *idle;
};

struct etcd {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    char *endpoints[ETCD_MAX_ENDPOINTS];
    size_t n, cur;
    char *ca, *cert, *key, *user, *password;
    unsigned dial_ms, request_ms, idle_ms;
    enum auth_state auth;
    char *auth_header; /* "Authorization: <token>" */
    unsigned token_gen;
    struct etcd_call *auth_call;
    struct req *reqs;      /* live calls and watches, newest first */
    struct req *graveyard; /* ended while a callback was on the stack */
    int depth;             /* entry points on the stack */
    bool dead;             /* etcd_free was called inside a callback */
};


/* ---- etcd.c ---------------------------------------------------------------------------------- */

/* Puts r at the head of the list *head (e->reqs or e->graveyard). */
void etcd_list_add(struct req **head, struct req *r);

/* Ends r: no callback of it is called any more; freed now or when the stack unwinds. */
void etcd_req_kill(struct req *r);

/* Starts r's transfer on r->member. Returns 0 or CUT_ENOMEM. */
int etcd_req_start_transfer(struct req *r);

/* Around anything that may call a user callback: etcd_leave frees what ended meanwhile once the
 * outermost entry point returns, and returns true when e itself is gone. */
void etcd_enter(struct etcd *e);
bool etcd_leave(struct etcd *e);

/* Starts the authentication that queued calls and watches wait for. */
void etcd_auth_start(struct etcd *e);

/* The gRPC code (-1 if none) and message ("" if none; borrowed from reply) of an error reply,
 * unary or in a stream. */
void etcd_error_fields(const json_t *reply, int *code, const char **msg);
bool etcd_is_leader_trouble(const char *msg);
bool etcd_is_bad_token(int code, const char *msg);

#endif

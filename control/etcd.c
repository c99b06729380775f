/* etcd.c - the etcd v3 HTTP/JSON gateway client (etcd.h) on libcurl's multi interface.
 *
 * libcurl tells us which sockets to watch (on_curl_socket: one struct event per socket, kept as
 * the socket's private pointer) and when to call it back (on_curl_timer: one timer); both only
 * arm events. The events call curl_multi_socket_action, then `pump` delivers what happened:
 * first the watches' buffered messages, then the finished transfers (curl_multi_info_read). No
 * user callback ever runs inside a libcurl callback, so a callback may start, cancel or free
 * anything: objects that end while a callback may still be on the stack (e->depth > 0) are
 * unlinked and put on a graveyard list freed when the outermost entry point returns, and a freed
 * client (etcd_free from a callback) is only marked dead until then.
 *
 * The watch streams are in etcd_watch.c, the gateway's encodings in etcd_codec.c; what this
 * file and etcd_watch.c share is in etcd_internal.h.
 */
#include "control/etcd.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/etcd_internal.h"
#include "core/cut.h"

#define ETCD_MAX_REPLY (4u << 20)   /* a unary reply body */
#define ETCD_MAX_MESSAGE (4u << 20) /* one watch message, buffered */
#define ETCD_ROUND_PAUSE_MS 50      /* between two rounds over the members */

/* ---- small things ---------------------------------------------------------------------------- */

void etcd_list_add(struct req **head, struct req *r)
{
    r->prev = NULL;
    r->next = *head;
    if (*head)
        (*head)->prev = r;
    *head = r;
}

static void list_del(struct req **head, struct req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static bool buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return false;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

/* ---- transfers --------------------------------------------------------------------------------- */

static void req_stop_transfer(struct req *r)
{
    if (r->easy) {
        curl_multi_remove_handle(r->e->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
    free(r->resp.p);
    r->resp = (struct buf){0};
    r->overflow = false;
}

static void req_destroy(struct req *r)
{
    req_stop_transfer(r);
    free(r->path);
    free(r->body);
    if (r->is_watch) {
        struct etcd_watch *w = (struct etcd_watch *)r;
        if (w->idle)
            event_free(w->idle);
    } else {
        struct etcd_call *c = (struct etcd_call *)r;
        if (c->pause)
            event_free(c->pause);
    }
    free(r);
}

/* Ends r: no callback of it is called any more; freed now or when the stack unwinds. */
void etcd_req_kill(struct req *r)
{
    struct etcd *e = r->e;
    if (r->state == REQ_DEAD)
        return;
    r->state = REQ_DEAD;
    req_stop_transfer(r);
    if (r->is_watch) {
        struct etcd_watch *w = (struct etcd_watch *)r;
        if (w->idle)
            event_del(w->idle);
    } else {
        struct etcd_call *c = (struct etcd_call *)r;
        if (c->pause)
            event_del(c->pause);
        if (e->auth_call == c)
            e->auth_call = NULL;
    }
    list_del(&e->reqs, r);
    if (e->depth > 0)
        etcd_list_add(&e->graveyard, r);
    else
        req_destroy(r);
}

static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct req *r = arg;
    size_t n = size * nmemb;
    size_t bound = r->is_watch ? ETCD_MAX_MESSAGE : ETCD_MAX_REPLY;
    if (r->is_watch) {
        struct etcd_watch *w = (struct etcd_watch *)r;
        /* Drop what was delivered before growing the buffer. */
        if (w->parsed > 0) {
            memmove(r->resp.p, r->resp.p + w->parsed, r->resp.len - w->parsed);
            r->resp.len -= w->parsed;
            w->parsed = 0;
        }
        w->has_data = true;
    } else if (((struct etcd_call *)r)->stream) {
        ((struct etcd_call *)r)->has_data = true;
    }
    if (r->resp.len + n > bound) {
        r->overflow = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (!buf_append(&r->resp, p, n)) {
        r->overflow = true;
        return 0;
    }
    return n;
}

/* Starts r's transfer on r->member. Returns 0 or CUT_ENOMEM. */
int etcd_req_start_transfer(struct req *r)
{
    struct etcd *e = r->e;
    char url[1024];
    req_stop_transfer(r);
    int n = snprintf(url, sizeof url, "%s%s", e->endpoints[r->member], r->path);
    if (n < 0 || (size_t)n >= sizeof url)
        return CUT_EINVAL;
    CURL *h = curl_easy_init();
    if (!h)
        return CUT_ENOMEM;
    struct curl_slist *hdrs = NULL, *t;
    const char *fixed[] = {"Content-Type: application/json", "Expect:"};
    for (size_t i = 0; i < 2; i++) {
        if (!(t = curl_slist_append(hdrs, fixed[i])))
            goto oom;
        hdrs = t;
    }
    bool internal = !r->is_watch && ((struct etcd_call *)r)->internal_auth;
    if (e->auth_header && !internal) {
        if (!(t = curl_slist_append(hdrs, e->auth_header)))
            goto oom;
        hdrs = t;
    }
    r->token_gen = e->token_gen;
    r->hdrs = hdrs;
    r->easy = h;
    r->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->dial_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!r->is_watch)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)e->request_ms);
    else
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (e->ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, e->ca);
    if (e->cert)
        curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert);
    if (e->key)
        curl_easy_setopt(h, CURLOPT_SSLKEY, e->key);
    if (curl_multi_add_handle(e->multi, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        r->easy = NULL;
        return CUT_ENOMEM;
    }
    return 0;
oom:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return CUT_ENOMEM;
}

/* ---- entering and leaving: deferred frees ------------------------------------------------------ */

static void etcd_destroy(struct etcd *e);

void etcd_enter(struct etcd *e)
{
    e->depth++;
}

/* Returns true when e is gone. */
bool etcd_leave(struct etcd *e)
{
    if (--e->depth > 0)
        return false;
    while (e->graveyard) {
        struct req *r = e->graveyard;
        list_del(&e->graveyard, r);
        req_destroy(r);
    }
    if (e->dead) {
        etcd_destroy(e);
        return true;
    }
    return false;
}

/* ---- libcurl <-> libevent ---------------------------------------------------------------------- */

static void pump(struct etcd *e);

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct etcd *e = arg;
    int flags = 0, running;
    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    etcd_enter(e);
    curl_multi_socket_action(e->multi, fd, flags, &running);
    pump(e);
    etcd_leave(e);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct etcd *e = arg;
    int running;
    etcd_enter(e);
    curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    pump(e);
    etcd_leave(e);
}

static int on_curl_socket(CURL *h, curl_socket_t s, int action, void *arg, void *sockp)
{
    (void)h;
    struct etcd *e = arg;
    struct event *ev = sockp;
    if (action == CURL_POLL_REMOVE) {
        if (ev) {
            event_free(ev);
            curl_multi_assign(e->multi, s, NULL);
        }
        return 0;
    }
    short what = EV_PERSIST;
    if (action & CURL_POLL_IN)
        what |= EV_READ;
    if (action & CURL_POLL_OUT)
        what |= EV_WRITE;
    if (ev) {
        event_del(ev);
        event_assign(ev, e->base, s, what, on_socket_event, e);
    } else {
        ev = event_new(e->base, s, what, on_socket_event, e);
        if (!ev)
            return -1;
        curl_multi_assign(e->multi, s, ev);
    }
    event_add(ev, NULL);
    return 0;
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *arg)
{
    (void)m;
    struct etcd *e = arg;
    if (timeout_ms < 0) {
        evtimer_del(e->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(e->timer, &tv);
    return 0;
}

/* ---- the gateway's errors ---------------------------------------------------------------------- */

/* The gRPC code and message of an error reply: {"error":"..","code":N,"message":".."} (unary)
 * or {"error":{"grpc_code":N,"http_code":..,"message":"..",..}} (in a stream). */
void etcd_error_fields(const json_t *reply, int *code, const char **msg)
{
    *code = -1;
    *msg = "";
    if (!json_is_object(reply))
        return;
    const json_t *o = reply;
    json_t *inner = json_object_get(reply, "error");
    if (json_is_object(inner)) {
        o = inner;
        json_t *c = json_object_get(o, "grpc_code");
        if (json_is_integer(c))
            *code = (int)json_integer_value(c);
    } else if (json_is_string(inner)) {
        *msg = json_string_value(inner);
    }
    json_t *c = json_object_get(o, "code");
    if (*code < 0 && json_is_integer(c))
        *code = (int)json_integer_value(c);
    json_t *m = json_object_get(o, "message");
    if (json_is_string(m) && json_string_length(m) > 0)
        *msg = json_string_value(m);
}

bool etcd_is_leader_trouble(const char *msg)
{
    return strstr(msg, "leader changed") || strstr(msg, "no leader");
}

bool etcd_is_bad_token(int code, const char *msg)
{
    return code == GRPC_UNAUTHENTICATED || strstr(msg, "invalid auth token") ||
           strstr(msg, "auth token is expired");
}

/* ---- unary calls ------------------------------------------------------------------------------- */

static int call_try(struct etcd_call *c);

/* Delivers the outcome and ends the call. reply borrowed. */
static void call_finish(struct etcd_call *c, int status, json_t *reply)
{
    struct etcd *e = c->r.e;
    etcd_reply_fn cb = c->cb;
    void *ctx = c->ctx;
    char what[ETCD_WHAT_CAP];
    snprintf(what, sizeof what, "%s", c->what);
    etcd_enter(e);
    etcd_req_kill(&c->r); /* into the graveyard: reply and what stay ours until etcd_leave */
    cb(ctx, status, reply, what);
    etcd_leave(e);
}

static void on_round_pause(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct etcd_call *c = arg;
    struct etcd *e = c->r.e;
    etcd_enter(e);
    c->r.state = REQ_RUNNING;
    int rc = call_try(c);
    if (rc < 0)
        call_finish(c, rc, NULL);
    pump(e);
    etcd_leave(e);
}

/* The member of c's transfer failed in a way another member may not: the next member, one more
 * round after a pause when a leader election may be the cause, or CUT_EIO. */
static void call_next_member(struct etcd_call *c)
{
    struct etcd *e = c->r.e;
    if (e->cur == c->r.member)
        e->cur = (c->r.member + 1) % e->n;
    req_stop_transfer(&c->r);
    c->tried++;
    if (c->tried < e->n) {
        c->r.member = (c->start + c->tried) % e->n;
        int rc = etcd_req_start_transfer(&c->r);
        if (rc < 0)
            call_finish(c, rc, NULL);
        return;
    }
    if (c->round == 0 && c->leader_trouble) {
        c->round = 1;
        c->tried = 0;
        c->leader_trouble = false;
        c->start = e->cur;
        c->r.member = c->start;
        if (!c->pause && !(c->pause = evtimer_new(e->base, on_round_pause, c))) {
            call_finish(c, CUT_ENOMEM, NULL);
            return;
        }
        c->r.state = REQ_PAUSED;
        struct timeval tv = {0, ETCD_ROUND_PAUSE_MS * 1000};
        evtimer_add(c->pause, &tv);
        return;
    }
    call_finish(c, CUT_EIO, NULL);
}

/* Starts (or restarts) c: behind an authentication when one is needed. */
static int call_try(struct etcd_call *c)
{
    struct etcd *e = c->r.e;
    if (!c->internal_auth && e->auth != AUTH_OFF && e->auth != AUTH_OK) {
        req_stop_transfer(&c->r);
        c->r.state = REQ_QUEUED;
        if (e->auth == AUTH_NEED)
            etcd_auth_start(e);
        return 0;
    }
    c->r.state = REQ_RUNNING;
    return etcd_req_start_transfer(&c->r);
}

/* A token the member refused: authenticate again (once per call) and retry there. */
static bool call_reauth(struct etcd_call *c)
{
    struct etcd *e = c->r.e;
    if (c->internal_auth || e->auth == AUTH_OFF || c->reauthed)
        return false;
    c->reauthed = true;
    if (c->r.token_gen == e->token_gen && e->auth == AUTH_OK)
        e->auth = AUTH_NEED;
    int rc = call_try(c);
    if (rc < 0)
        call_finish(c, rc, NULL);
    return true;
}

static void call_done(struct etcd_call *c, CURLcode res)
{
    struct etcd *e = c->r.e;
    const char *ep = e->endpoints[c->r.member];
    long status = 0;
    curl_easy_getinfo(c->r.easy, CURLINFO_RESPONSE_CODE, &status);
    if (c->r.overflow) {
        snprintf(c->what, sizeof c->what, "member %s: reply larger than %u bytes", ep,
                 ETCD_MAX_REPLY);
        call_finish(c, CUT_EPROTO, NULL);
        return;
    }
    if (res != CURLE_OK) {
        snprintf(c->what, sizeof c->what, "member %.200s: %.200s", ep,
                 c->r.errbuf[0] ? c->r.errbuf : curl_easy_strerror(res));
        call_next_member(c);
        return;
    }
    json_error_t jerr;
    json_t *reply = c->r.resp.len
                        ? json_loadb(c->r.resp.p, c->r.resp.len, JSON_DISABLE_EOF_CHECK, &jerr)
                        : NULL;
    int code;
    const char *msg;
    etcd_error_fields(reply, &code, &msg);
    bool has_error = status != 200 || (json_is_object(reply) && json_object_get(reply, "error"));
    if (!has_error) {
        if (!json_is_object(reply)) {
            snprintf(c->what, sizeof c->what, "member %s: HTTP 200 without a JSON object", ep);
            json_decref(reply);
            call_finish(c, CUT_EPROTO, NULL);
            return;
        }
        e->cur = c->r.member;
        json_t *result = json_object_get(reply, "result");
        if (json_is_object(result) && json_object_size(reply) == 1)
            reply = (json_incref(result), json_decref(reply), result);
        snprintf(c->what, sizeof c->what, "member %s: ok", ep);
        call_finish(c, 0, reply);
        json_decref(reply);
        return;
    }
    snprintf(c->what, sizeof c->what, "member %s: HTTP %ld%s%s", ep, status, *msg ? ": " : "",
             msg);
    if (status == 503 || code == GRPC_UNAVAILABLE || etcd_is_leader_trouble(msg)) {
        if (etcd_is_leader_trouble(msg))
            c->leader_trouble = true;
        json_decref(reply);
        call_next_member(c);
        return;
    }
    e->cur = c->r.member; /* it answered */
    if (etcd_is_bad_token(code, msg) && call_reauth(c)) {
        json_decref(reply);
        return;
    }
    call_finish(c, CUT_EPROTO, json_is_object(reply) ? reply : NULL);
    json_decref(reply);
}

static struct etcd_call *call_new(struct etcd *e, const char *path, json_t *body,
                                  etcd_reply_fn cb, void *ctx)
{
    struct etcd_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->r.e = e;
    c->r.path = strdup(path);
    c->r.body = json_dumps(body, JSON_COMPACT);
    if (!c->r.path || !c->r.body) {
        free(c->r.path);
        free(c->r.body);
        free(c);
        return NULL;
    }
    c->r.body_len = strlen(c->r.body);
    /* The gateway answers a keepalive with a stream it keeps open ({"result":{..}} lines). */
    c->stream = !strcmp(path, "/v3/lease/keepalive");
    c->cb = cb;
    c->ctx = ctx;
    c->start = e->cur;
    c->r.member = e->cur;
    c->r.state = REQ_QUEUED;
    etcd_list_add(&e->reqs, &c->r);
    return c;
}

/* ---- authentication ---------------------------------------------------------------------------- */

/* Starts (or fails) every call and watch that waited for the authentication that ended; not
 * those a callback queues meanwhile (behind the next one). */
static void release_queued(struct etcd *e, int status, json_t *reply, const char *what)
{
    for (struct req *r = e->reqs; r; r = r->next)
        r->release = r->state == REQ_QUEUED &&
                     !(!r->is_watch && ((struct etcd_call *)r)->internal_auth);
    for (;;) {
        struct req *r;
        for (r = e->reqs; r; r = r->next)
            if (r->release && r->state == REQ_QUEUED)
                break;
        if (!r || e->dead)
            return;
        r->release = false;
        if (r->is_watch) {
            struct etcd_watch *w = (struct etcd_watch *)r;
            if (status == 0)
                w->ops->start(w);
            else
                w->ops->end(w, status);
        } else {
            struct etcd_call *c = (struct etcd_call *)r;
            int rc = status;
            if (status == 0)
                rc = call_try(c);
            if (rc < 0) {
                snprintf(c->what, sizeof c->what, "%s", rc == status ? what : "out of memory");
                call_finish(c, rc, rc == status ? reply : NULL);
            }
        }
    }
}

static void on_auth_reply(void *ctx, int status, json_t *reply, const char *what)
{
    struct etcd *e = ctx;
    e->auth_call = NULL;
    if (status == 0) {
        json_t *tok = json_object_get(reply, "token");
        if (!json_is_string(tok)) {
            status = CUT_EPROTO;
            what = "authenticate: the reply has no token";
        } else {
            size_t n = strlen("Authorization: ") + json_string_length(tok) + 1;
            char *h = malloc(n);
            if (!h) {
                status = CUT_ENOMEM;
            } else {
                snprintf(h, n, "Authorization: %s", json_string_value(tok));
                free(e->auth_header);
                e->auth_header = h;
                e->token_gen++;
                e->auth = AUTH_OK;
            }
        }
    }
    if (status != 0)
        e->auth = AUTH_NEED; /* the next call tries again */
    release_queued(e, status, reply, what);
}

void etcd_auth_start(struct etcd *e)
{
    json_t *body = json_pack("{s:s, s:s}", "name", e->user, "password",
                             e->password ? e->password : "");
    struct etcd_call *c = body ? call_new(e, "/v3/auth/authenticate", body, on_auth_reply, e)
                               : NULL;
    json_decref(body);
    if (!c) {
        release_queued(e, CUT_ENOMEM, NULL, "out of memory");
        return;
    }
    c->internal_auth = true;
    e->auth = AUTH_RUNNING;
    e->auth_call = c;
    int rc = call_try(c);
    if (rc < 0)
        call_finish(c, rc, NULL);
}

/* ---- the pump ---------------------------------------------------------------------------------- */

/* After curl_multi_socket_action: the watches' new messages, then the finished transfers. Called
 * inside etcd_enter/etcd_leave. */
static void pump(struct etcd *e)
{
    for (;;) {
        if (e->dead)
            return;
        struct req *r;
        for (r = e->reqs; r; r = r->next)
            if (r->is_watch && r->state == REQ_RUNNING && ((struct etcd_watch *)r)->has_data)
                break;
        if (!r)
            break;
        struct etcd_watch *w = (struct etcd_watch *)r;
        w->ops->parse(w);
    }
    for (;;) {
        if (e->dead)
            return;
        struct req *r;
        for (r = e->reqs; r; r = r->next)
            if (!r->is_watch && r->state == REQ_RUNNING && ((struct etcd_call *)r)->has_data)
                break;
        if (!r)
            break;
        struct etcd_call *c = (struct etcd_call *)r;
        c->has_data = false;
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
            continue; /* an error body: judged when the transfer ends */
        json_error_t jerr;
        json_t *m = json_loadb(r->resp.p, r->resp.len, JSON_DISABLE_EOF_CHECK, &jerr);
        if (m || json_error_code(&jerr) != json_error_premature_end_of_input)
            call_done(c, CURLE_OK); /* its first message (or garbage) is the reply */
        json_decref(m);
    }
    CURLMsg *msg;
    int left;
    while (!e->dead && (msg = curl_multi_info_read(e->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (!r || r->state != REQ_RUNNING || r->easy != msg->easy_handle)
            continue;
        CURLcode res = msg->data.result;
        if (r->is_watch) {
            struct etcd_watch *w = (struct etcd_watch *)r;
            w->ops->done(w, res);
        } else {
            call_done((struct etcd_call *)r, res);
        }
    }
}

/* ---- the interface ----------------------------------------------------------------------------- */

struct etcd *etcd_new(struct event_base *base, const struct etcd_opts *o, char *err, size_t cap)
{
    if (!o->endpoints || o->nendpoints == 0 || o->nendpoints > ETCD_MAX_ENDPOINTS) {
        snprintf(err, cap, "between 1 and %d etcd endpoints", ETCD_MAX_ENDPOINTS);
        return NULL;
    }
    if (!o->cert_file != !o->key_file) {
        snprintf(err, cap, "a client certificate needs its key, and a key its certificate");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, cap, "libcurl failed to initialise");
        return NULL;
    }
    struct etcd *e = calloc(1, sizeof *e);
    if (!e)
        goto oom;
    e->base = base;
    e->n = o->nendpoints;
    for (size_t i = 0; i < e->n; i++) {
        const char *s = o->endpoints[i];
        if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
            snprintf(err, cap, "etcd endpoint %s: not http:// or https://", s);
            etcd_destroy(e);
            return NULL;
        }
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == '/')
            n--;
        if (!(e->endpoints[i] = strndup(s, n)))
            goto oom_e;
    }
    e->ca = xstrdup(o->ca_file);
    e->cert = xstrdup(o->cert_file);
    e->key = xstrdup(o->key_file);
    e->user = xstrdup(o->user);
    e->password = xstrdup(o->password);
    if ((o->ca_file && !e->ca) || (o->cert_file && !e->cert) || (o->key_file && !e->key) ||
        (o->user && !e->user) || (o->password && !e->password))
        goto oom_e;
    e->dial_ms = o->dial_timeout_ms ? o->dial_timeout_ms : 5000;
    e->request_ms = o->request_timeout_ms ? o->request_timeout_ms : 5000;
    e->idle_ms = 3 * e->request_ms < 15000 ? 15000 : 3 * e->request_ms;
    e->auth = e->user ? AUTH_NEED : AUTH_OFF;
    e->multi = curl_multi_init();
    e->timer = evtimer_new(base, on_timer, e);
    if (!e->multi || !e->timer)
        goto oom_e;
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
    return e;
oom_e:
    etcd_destroy(e);
oom:
    snprintf(err, cap, "out of memory");
    if (!e)
        curl_global_cleanup();
    return NULL;
}

/* Frees e for good (nothing of it on the stack). */
static void etcd_destroy(struct etcd *e)
{
    while (e->reqs) {
        struct req *r = e->reqs;
        r->state = REQ_DEAD;
        list_del(&e->reqs, r);
        req_destroy(r);
    }
    while (e->graveyard) {
        struct req *r = e->graveyard;
        list_del(&e->graveyard, r);
        req_destroy(r);
    }
    if (e->multi)
        curl_multi_cleanup(e->multi); /* after the easy handles: they are removed first */
    if (e->timer)
        event_free(e->timer);
    for (size_t i = 0; i < e->n; i++)
        free(e->endpoints[i]);
    free(e->ca);
    free(e->cert);
    free(e->key);
    free(e->user);
    if (e->password)
        memset(e->password, 0, strlen(e->password));
    free(e->password);
    free(e->auth_header);
    free(e);
    curl_global_cleanup();
}

void etcd_free(struct etcd *e)
{
    if (!e || e->dead)
        return;
    if (e->depth > 0) {
        /* A callback of e is on the stack: no callback any more, freed when it unwinds. */
        e->dead = true;
        while (e->reqs)
            etcd_req_kill(e->reqs);
        return;
    }
    etcd_destroy(e);
}

struct etcd_call *etcd_call(struct etcd *e, const char *path, json_t *body, etcd_reply_fn cb,
                            void *ctx)
{
    if (e->dead)
        return NULL;
    struct etcd_call *c = call_new(e, path, body, cb, ctx);
    if (!c)
        return NULL;
    etcd_enter(e);
    int rc = call_try(c);
    if (rc < 0) {
        etcd_req_kill(&c->r);
        c = NULL;
    }
    etcd_leave(e);
    return c;
}

void etcd_call_cancel(struct etcd_call *call)
{
    if (call && call->r.state != REQ_DEAD)
        etcd_req_kill(&call->r);
}

const char *etcd_current_endpoint(const struct etcd *e)
{
    return e->endpoints[e->cur];
}

/* ctlsock.c - the control socket server (contract in ctlsock.h).
 *
 * A client goes READING -> WRITING -> IDLE -> READING ... and may end in CLOSING (a last reply,
 * too_large or busy, is flushed, then the connection is closed). One timer per client carries
 * the deadline of its current state: READING, WRITING and CLOSING control.request_timeout_ms,
 * IDLE control.idle_timeout_ms. Every complete line in the input is handled at once and
 * synchronously (commands_handle()), so a client is only ever "being handled" inside on_read().
 *
 * Slots: make_room(), on the accept of a connection that finds the table full.
 *
 * Ownership: the ctlsock owns its clients; a client owns its bufferevent (which owns the
 * socket: BEV_OPT_CLOSE_ON_FREE) and its timer. Control thread only.
 */
#include "control/ctlsock.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/cut.h"
#include "core/list.h"
#include "proxy/log/log.h"
#include "control/commands.h"
#include "control/connslots.h"

/* Connections the kernel queues before cutover accepts them. A flood of silent clients is
 * handled after accept (the idlest connection gives way, docs/control-protocol.md): the queue
 * must hold the burst, or connect() fails with EAGAIN and a rollback never reaches that logic. */
#define CTLSOCK_BACKLOG 1024

enum client_state {
    CS_READING, /* a request is due: the first since the accept, or one whose first byte came */
    CS_WRITING, /* replies are queued that the client has not taken yet */
    CS_IDLE,    /* between requests: every reply written, no byte of the next request */
    CS_CLOSING, /* a last reply is being flushed, then the connection is closed */
};

static const char *const state_names[] = {"reading", "writing", "idle", "closing"};

struct client {
    struct ctlsock *owner;
    struct bufferevent *bev;
    struct event *timer; /* the deadline of the current state */
    enum client_state st;
    int handling;     /* inside commands_handle(), or waiting for its reply: never evicted */
    struct cmd_pending *pending; /* a change waiting for the fleet store; reading is off */
    uint64_t last_us; /* last activity: accepted, bytes read, replies written (now_us) */
    uint64_t serial;  /* accept order, the eviction tie-break */
    struct cmd_peer peer;
    char user[64];
    struct client *next, *prev;
};

struct ctlsock {
    struct cmd_host *host; /* the control thread: commands, configuration, events */
    struct event_base *base;
    struct evconnlistener *listener;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct client *clients;
    unsigned nclients;
    struct connslots_entry *slots; /* make_room()'s scratch: cap entries, one per client */
    struct client **slot_client;   /* the client of each entry */
    size_t cap;
    uint64_t accepted;          /* connections accepted so far: the next serial */
    struct connslots_rate rate; /* control_* events about connections */
    struct ctlsock_stats stats; /* .open is nclients, filled in by ctlsock_stats() */
};

static const struct cfg_control *cfg_of(const struct client *cl)
{
    return &cl->owner->host->cfg(cl->owner->host->ctx)->control;
}

/* ---- events ------------------------------------------------------------------------------ */

/* ctl_event() for what a peer can cause at will (timeouts, evictions): at most
 * CTLSOCK_EVENTS_PER_SEC a second; the first event of a later second is preceded by
 * control_events_suppressed with the count left out. */
static void sock_event(struct ctlsock *s, const char *name, const char *extra)
{
    unsigned long left_out;
    int allowed =
        connslots_rate_allow(&s->rate, (int64_t)time(NULL), CTLSOCK_EVENTS_PER_SEC, &left_out);
    if (left_out) {
        char n[64];
        snprintf(n, sizeof n, ",\"count\":%lu", left_out);
        s->host->event(s->host->ctx, "control_events_suppressed", n);
    }
    if (allowed)
        s->host->event(s->host->ctx, name, extra);
}

/* An event about client cl: {"user","uid","state","idle_ms","reason"}. */
static void client_event(struct client *cl, const char *name, const char *reason)
{
    char u[2 * sizeof cl->user], uid[24], extra[512];
    log_escape(u, sizeof u, cl->user, strlen(cl->user));
    if (cl->peer.uid >= 0)
        snprintf(uid, sizeof uid, "%ld", cl->peer.uid);
    else
        snprintf(uid, sizeof uid, "null");
    uint64_t now = clock_mono_us();
    snprintf(extra, sizeof extra,
             ",\"user\":\"%s\",\"uid\":%s,\"state\":\"%s\",\"idle_ms\":%llu,\"reason\":\"%s\"", u,
             uid, state_names[cl->st],
             (unsigned long long)(now > cl->last_us ? (now - cl->last_us) / 1000 : 0), reason);
    sock_event(cl->owner, name, extra);
}

/* ---- clients ----------------------------------------------------------------------------- */

static void client_free(struct client *cl)
{
    struct ctlsock *s = cl->owner;
    CUT_LIST_REMOVE(&s->clients, cl, next, prev);
    s->nclients--;
    commands_pending_drop(cl->pending); /* the change completes; its reply goes nowhere */
    bufferevent_free(cl->bev); /* closes the socket */
    event_free(cl->timer);
    free(cl);
}

static void arm(struct client *cl, unsigned ms)
{
    struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
    event_add(cl->timer, &tv);
}

static void send_reply(struct client *cl, char *reply)
{
    struct evbuffer *out = bufferevent_get_output(cl->bev);
    if (!reply) {
        evbuffer_add_printf(
            out,
            "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n");
        return;
    }
    evbuffer_add(out, reply, strlen(reply));
    evbuffer_add(out, "\n", 1);
    free(reply);
}

/* Flushes what is queued, then closes. Frees cl at once when nothing is queued. */
static void close_after_flush(struct client *cl)
{
    cl->st = CS_CLOSING;
    bufferevent_disable(cl->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(cl->bev)) == 0) {
        client_free(cl);
        return;
    }
    arm(cl, cfg_of(cl)->request_timeout);
}

/* Whether cl's peer has closed its end with nothing unread before the close (or the socket has
 * failed). Only asked of a client that is owed no reply. */
static int peer_gone(const struct client *cl)
{
    char b;
    ssize_t n = recv(bufferevent_getfd(cl->bev), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static enum connslots_class class_of(const struct client *cl)
{
    if (cl->handling)
        return CONNSLOTS_PINNED;
    return cl->st == CS_WRITING || cl->st == CS_CLOSING ? CONNSLOTS_WRITING : CONNSLOTS_WAITING;
}

static int grow_slots(struct ctlsock *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    size_t cap = n < 16 ? 16 : n;
    struct connslots_entry *e = realloc(s->slots, cap * sizeof *e);
    if (!e)
        return CUT_ENOMEM;
    s->slots = e;
    struct client **w = realloc(s->slot_client, cap * sizeof *w);
    if (!w)
        return CUT_ENOMEM;
    s->slot_client = w;
    s->cap = cap;
    return 0;
}

/* Makes room for one more client while the table (control.max_clients) is full. First frees
 * every client whose peer has already closed: a client that closes and connects again at once
 * has its close still queued in the event loop behind this accept (the listener accepts every
 * pending connection in one go), and counting that dead connection is what used to refuse the
 * new one as busy. Then evicts, one at a time, the client connslots_choose() picks (the idlest;
 * never one being handled). Returns 0, or CUT_ELIMIT when the table is still full (every client
 * pinned), or CUT_ENOMEM. */
static int make_room(struct ctlsock *s, unsigned max)
{
    if (s->nclients < max)
        return 0;
    for (struct client *cl = s->clients, *next; cl; cl = next) {
        next = cl->next;
        if (!cl->handling && (cl->st == CS_READING || cl->st == CS_IDLE) && peer_gone(cl)) {
            s->stats.peer_closed++;
            client_free(cl);
        }
    }
    if (s->nclients < max)
        return 0;
    if (grow_slots(s, s->nclients) < 0)
        return CUT_ENOMEM;
    size_t n = 0;
    for (struct client *cl = s->clients; cl; cl = cl->next) {
        s->slots[n] = (struct connslots_entry){class_of(cl), cl->last_us, cl->serial};
        s->slot_client[n++] = cl;
    }
    long i;
    while ((i = connslots_choose(s->slots, n, max)) >= 0) {
        struct client *victim = s->slot_client[i];
        s->stats.evicted++;
        client_event(victim, "control_connection_evicted",
                     "the connection table was full and this connection was the idlest");
        client_free(victim);
        n--;
        s->slots[i] = s->slots[n];
        s->slot_client[i] = s->slot_client[n];
    }
    return i == CONNSLOTS_ROOM ? 0 : CUT_ELIMIT;
}

/* ---- callbacks --------------------------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg);

/* The reply of a change that waited for the fleet store (cmd_later_fn): written, then the
 * requests that came meanwhile are read. */
static void on_later(void *ctx, char *reply, const char *code)
{
    struct client *cl = ctx;
    (void)code;
    cl->pending = NULL;
    cl->handling = 0;
    send_reply(cl, reply);
    bufferevent_enable(cl->bev, EV_READ);
    on_read(cl->bev, cl);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct client *cl = arg;
    if (cl->pending)
        return; /* one request at a time: the next waits for this reply */
    struct evbuffer *in = bufferevent_get_input(bev);
    struct cmd_host *c = cl->owner->host;
    if (cl->st == CS_CLOSING)
        return; /* reading is off; what was read before stays unanswered */
    cl->last_us = clock_mono_us();
    if (cl->st == CS_IDLE) { /* the first byte of the next request: its deadline starts */
        cl->st = CS_READING;
        arm(cl, cfg_of(cl)->request_timeout);
    }
    for (;;) {
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
        if (!line) {
            if (evbuffer_get_length(in) >= CTLSOCK_MAX_LINE) {
                send_reply(cl, commands_error_reply(c, &cl->peer, "too_large",
                                                    "request line over 64 KiB"));
                close_after_flush(cl);
                return;
            }
            break;
        }
        if (len + 1 > CTLSOCK_MAX_LINE) {
            free(line);
            send_reply(cl,
                       commands_error_reply(c, &cl->peer, "too_large", "request line over 64 KiB"));
            close_after_flush(cl);
            return;
        }
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len > 0) {
            cl->handling = 1;
            char *reply = commands_handle(c, &cl->peer, line, len, NULL, on_later, cl,
                                          &cl->pending);
            if (!reply && cl->pending) { /* the store's transaction runs: wait for it */
                free(line);
                bufferevent_disable(bev, EV_READ);
                return;
            }
            cl->handling = 0;
            send_reply(cl, reply);
        }
        free(line);
        if (evbuffer_get_length(bufferevent_get_output(bev)) > CTLSOCK_MAX_OUT) {
            client_free(cl); /* it does not read its replies */
            return;
        }
    }
    if (cl->st != CS_WRITING && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        cl->st = CS_WRITING; /* the client must take its replies within the deadline */
        arm(cl, cfg_of(cl)->request_timeout);
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct client *cl = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        return;
    if (cl->st == CS_CLOSING) {
        client_free(cl);
        return;
    }
    if (cl->st != CS_WRITING)
        return;
    cl->last_us = clock_mono_us();
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
        /* part of the next request came while the replies were written: its deadline starts
         * now */
        cl->st = CS_READING;
        arm(cl, cfg_of(cl)->request_timeout);
    } else {
        cl->st = CS_IDLE;
        arm(cl, cfg_of(cl)->idle_timeout);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct client *cl = arg;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && cl->st != CS_CLOSING &&
        evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        /* the client shut down its sending side after its requests: its replies still go out
         * (to one that closed altogether, the write fails, and that ends the connection) */
        close_after_flush(cl);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        client_free(cl);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    struct ctlsock *s = cl->owner;
    (void)fd;
    (void)what;
    if (cl->st == CS_IDLE) {
        s->stats.idle_timeouts++;
    } else {
        s->stats.request_timeouts++;
        client_event(cl, "control_request_timeout",
                     cl->st == CS_READING ? "no complete request within request_timeout_ms"
                                          : "the replies were not read within request_timeout_ms");
    }
    client_free(cl);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct ctlsock *s = arg;
    struct cmd_host *c = s->host;
    const struct cfg_control *cc = &c->cfg(c->ctx)->control;
    (void)l;
    (void)sa;
    (void)len;
    int full = make_room(s, cc->max_clients) < 0;
    struct client *cl = calloc(1, sizeof *cl);
    if (!cl) {
        close(fd);
        return;
    }
    cl->owner = s;
    cl->timer = evtimer_new(s->base, on_timer, cl);
    cl->bev = cl->timer ? bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!cl->bev) {
        if (cl->timer)
            event_free(cl->timer);
        close(fd);
        free(cl);
        return;
    }
    CUT_LIST_PUSH(&s->clients, cl, next, prev);
    s->nclients++;
    cl->st = CS_READING;
    cl->last_us = clock_mono_us();
    cl->serial = s->accepted++;

    struct ucred cred;
    socklen_t cl_len = sizeof cred;
    cl->peer.uid = cl->peer.gid = -1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl_len) == 0) {
        cl->peer.uid = (long)cred.uid;
        cl->peer.gid = (long)cred.gid;
        struct passwd pw, *res = NULL;
        char buf[1024];
        if (getpwuid_r(cred.uid, &pw, buf, sizeof buf, &res) == 0 && res)
            snprintf(cl->user, sizeof cl->user, "%s", pw.pw_name);
        else
            snprintf(cl->user, sizeof cl->user, "uid:%u", (unsigned)cred.uid);
    } else {
        snprintf(cl->user, sizeof cl->user, "unknown");
    }
    cl->peer.user = cl->user;
    cl->peer.role = commands_role_for(c->cfg(c->ctx), cl->peer.uid, cl->peer.gid);

    bufferevent_setcb(cl->bev, on_read, on_write, on_event, cl);
    bufferevent_setwatermark(cl->bev, EV_READ, 0, CTLSOCK_MAX_LINE + 1);
    bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
    arm(cl, cc->request_timeout);
    if (full) { /* every other client is being handled: never the case on this one thread */
        s->stats.busy++;
        send_reply(cl, commands_error_reply(c, &cl->peer, "busy", "too many control connections"));
        close_after_flush(cl);
    }
}

/* ---- lifecycle --------------------------------------------------------------------------- */

struct ctlsock *ctlsock_new(struct cmd_host *host, struct event_base *base, char *err,
                            size_t cap)
{
    const struct cfg_control *cc = &host->cfg(host->ctx)->control;
    struct ctlsock *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    s->host = host;
    s->base = base;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(cc->socket) >= sizeof sun.sun_path) {
        snprintf(err, cap, "control.socket: path too long");
        free(s);
        return NULL;
    }
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", cc->socket);
    snprintf(s->path, sizeof s->path, "%s", cc->socket);
    struct stat st;
    if (lstat(s->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, cap, "control.socket: %s exists and is not a socket", s->path);
            free(s);
            return NULL;
        }
        unlink(s->path); /* a stale socket from an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
        chmod(s->path, cc->mode) < 0 ||
        (cc->group >= 0 && chown(s->path, (uid_t)-1, (gid_t)cc->group) < 0) || listen(fd, CTLSOCK_BACKLOG) < 0) {
        snprintf(err, cap, "control.socket: %s: %s", s->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(s);
        return NULL;
    }
    /* backlog 0: the listen() above stands (-1 would make libevent listen again with 128) */
    s->listener = evconnlistener_new(s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (!s->listener) {
        snprintf(err, cap, "control.socket: cannot listen");
        close(fd);
        unlink(s->path);
        free(s);
        return NULL;
    }
    return s;
}

void ctlsock_free(struct ctlsock *s)
{
    if (!s)
        return;
    while (s->clients)
        client_free(s->clients);
    evconnlistener_free(s->listener);
    unlink(s->path);
    free(s->slots);
    free(s->slot_client);
    free(s);
}

void ctlsock_stats(const struct ctlsock *s, struct ctlsock_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    *out = s->stats;
    out->open = s->nclients;
}

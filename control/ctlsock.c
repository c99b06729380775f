/* ctlsock.c - the control socket server. */
#include "ctlsock.h"

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
#include <unistd.h>

#include "../proxy/cut.h"
#include "../proxy/list.h"
#include "commands.h"
#include "ctl_internal.h"

struct client {
    struct ctlsock *owner;
    struct bufferevent *bev;
    struct cmd_peer peer;
    char user[64];
    int closing; /* flush the output, then close */
    struct client *next, *prev;
};

struct ctlsock {
    struct ctl *ctl;
    struct evconnlistener *listener;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct client *clients;
    unsigned nclients;
};

static void client_free(struct client *cl)
{
    struct ctlsock *s = cl->owner;
    CUT_LIST_REMOVE(&s->clients, cl, next, prev);
    s->nclients--;
    bufferevent_free(cl->bev);
    free(cl);
}

static void send_reply(struct client *cl, char *reply)
{
    struct evbuffer *out = bufferevent_get_output(cl->bev);
    if (!reply) {
        evbuffer_add_printf(out, "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n");
        return;
    }
    evbuffer_add(out, reply, strlen(reply));
    evbuffer_add(out, "\n", 1);
    free(reply);
}

static void close_after_flush(struct client *cl)
{
    cl->closing = 1;
    bufferevent_disable(cl->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(cl->bev)) == 0)
        client_free(cl);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct client *cl = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct ctl *c = cl->owner->ctl;
    for (;;) {
        if (cl->closing)
            return;
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
        if (!line) {
            if (evbuffer_get_length(in) >= CTLSOCK_MAX_LINE) {
                send_reply(cl, commands_error_reply(c, &cl->peer, "too_large",
                                                    "request line over 64 KiB"));
                close_after_flush(cl);
            }
            return;
        }
        if (len + 1 > CTLSOCK_MAX_LINE) {
            free(line);
            send_reply(cl, commands_error_reply(c, &cl->peer, "too_large", "request line over 64 KiB"));
            close_after_flush(cl);
            return;
        }
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len > 0)
            send_reply(cl, commands_handle(c, &cl->peer, line, len, NULL));
        free(line);
        if (evbuffer_get_length(bufferevent_get_output(bev)) > CTLSOCK_MAX_OUT) {
            client_free(cl); /* it does not read its replies */
            return;
        }
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct client *cl = arg;
    if (cl->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        client_free(cl);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct client *cl = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        client_free(cl);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct ctlsock *s = arg;
    struct ctl *c = s->ctl;
    (void)l;
    (void)sa;
    (void)len;
    struct client *cl = calloc(1, sizeof *cl);
    if (!cl) {
        close(fd);
        return;
    }
    cl->owner = s;
    cl->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!cl->bev) {
        close(fd);
        free(cl);
        return;
    }
    CUT_LIST_PUSH(&s->clients, cl, next, prev);
    s->nclients++;

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
    cl->peer.role = commands_role_for(c->hold->cfg, cl->peer.uid, cl->peer.gid);

    struct timeval idle = {CTLSOCK_IDLE_MS / 1000, 0};
    bufferevent_setcb(cl->bev, on_read, on_write, on_event, cl);
    bufferevent_set_timeouts(cl->bev, &idle, &idle);
    bufferevent_setwatermark(cl->bev, EV_READ, 0, CTLSOCK_MAX_LINE + 1);
    bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
    if (s->nclients > c->hold->cfg->control.max_clients) {
        send_reply(cl, commands_error_reply(c, &cl->peer, "busy", "too many control connections"));
        close_after_flush(cl);
    }
}

struct ctlsock *ctlsock_new(struct ctl *c, char *err, size_t cap)
{
    const struct cfg_control *cc = &c->hold->cfg->control;
    struct ctlsock *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    s->ctl = c;
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
        (cc->group >= 0 && chown(s->path, (uid_t)-1, (gid_t)cc->group) < 0) || listen(fd, 64) < 0) {
        snprintf(err, cap, "control.socket: %s: %s", s->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(s);
        return NULL;
    }
    s->listener = evconnlistener_new(c->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE, -1, fd);
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
    free(s);
}

/* transport.c - one exchange with every replica in parallel: connect to a control socket (or
 * an HTTPS admin API, https.c), send the request, read the reply line, all non-blocking under one
 * poll(2) loop bounded by a timeout.
 */
#include "control/cli/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/clock.h"
#include "control/cli/https.h"
#include "control/cli/values.h"

/* ---- one exchange with every replica, in parallel -------------------------------------------- */

static void replica_start_connect(struct cli_replica *r)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(r->socket) >= sizeof sa.sun_path) {
        cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "socket path too long (max %zu bytes)",
                         sizeof sa.sun_path - 1);
        return;
    }
    memcpy(sa.sun_path, r->socket, strlen(r->socket) + 1);
    r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0) {
        cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "socket: %s", strerror(errno));
        return;
    }
    if (connect(r->fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        r->st = CLI_RS_SENDING;
    } else if (errno == EINPROGRESS) {
        r->st = CLI_RS_CONNECTING;
    } else if (errno == EAGAIN) { /* the listen backlog is full: try again shortly */
        close(r->fd);
        r->fd = -1;
        r->st = CLI_RS_RETRY;
        r->retry_at = (long long)clock_mono_ms() + CLI_POLL_RETRY_MS;
    } else {
        cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "connect: %s", strerror(errno));
    }
}

/* Takes the first complete reply line in r->in, if any. Returns 1 when the exchange is done. */
static int replica_take_line(struct cli_replica *r, const char *id)
{
    for (;;) {
        char *nl = memchr(r->in, '\n', r->inlen);
        if (!nl) {
            if (r->inlen > CLI_MAX_REPLY) {
                cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol",
                                 "reply longer than %u MiB refused", CLI_MAX_REPLY >> 20);
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
        if (len > CLI_MAX_REPLY) {
            cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol", "reply longer than %u MiB refused",
                             CLI_MAX_REPLY >> 20);
            return 1;
        }
        cli_replica_take_reply(r, id, r->in, len, 0);
        return 1;
    }
}

static void replica_on_readable(struct cli_replica *r, const char *id)
{
    for (;;) {
        if (r->incap - r->inlen < 4096 && cli_replica_grow_in(r, 8192, CLI_MAX_REPLY + 8192) < 0)
            return; /* full and still no complete reply */
        ssize_t got = recv(r->fd, r->in + r->inlen, r->incap - r->inlen, 0);
        if (got > 0) {
            size_t before = r->inlen;
            r->inlen += (size_t)got;
            /* only a new newline can complete a line */
            if (memchr(r->in + before, '\n', (size_t)got) || r->inlen > CLI_MAX_REPLY) {
                if (replica_take_line(r, id))
                    return;
            }
            continue;
        }
        if (got == 0) {
            cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol",
                             "the server closed the connection before replying%s",
                             r->inlen ? " (incomplete reply line)" : "");
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "recv: %s", strerror(errno));
        return;
    }
}

static void replica_on_writable(struct cli_replica *r)
{
    if (r->st == CLI_RS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "connect: %s", strerror(err));
            return;
        }
        r->st = CLI_RS_SENDING;
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
            r->st = CLI_RS_RECEIVING;
            return;
        }
        cli_replica_fail(r, CLI_EXIT_UNREACH, "unreachable", "send: %s", strerror(errno));
        return;
    }
    r->st = CLI_RS_RECEIVING;
}

void cli_exchange(struct cli *c, json_t *const *reqs, long long timeout_ms, char *id_out,
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
        struct cli_replica *r = &c->rs[i];
        r->st = CLI_RS_IDLE;
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
            cli_replica_fail(r, CLI_EXIT_USAGE, "usage", "the request could not be encoded");
            continue;
        }
        size_t slen = strlen(s);
        if (slen + 1 > CLI_MAX_REQUEST) {
            free(s);
            cli_replica_fail(r, CLI_EXIT_USAGE, "usage", "the request is over %u KiB",
                             CLI_MAX_REQUEST >> 10);
            continue;
        }
        if (r->https) {
            cli_https_request(r, s, slen);
            free(s);
            cli_https_start(c, r);
            if (r->st != CLI_RS_DONE && r->st != CLI_RS_CONNECTING)
                cli_https_step(c, r, id);
            continue;
        }
        r->outlen = slen + 1;
        r->out = cli_xmalloc(r->outlen);
        memcpy(r->out, s, slen);
        r->out[slen] = '\n';
        r->outoff = 0;
        free(s);
        replica_start_connect(r);
    }

    struct pollfd pfd[CLI_MAX_REPLICAS];
    size_t who[CLI_MAX_REPLICAS];
    for (;;) {
        size_t np = 0;
        int retrying = 0, pending = 0;
        long long now = (long long)clock_mono_ms();
        for (size_t i = 0; i < c->n; i++) {
            struct cli_replica *r = &c->rs[i];
            if (r->st == CLI_RS_IDLE || r->st == CLI_RS_DONE)
                continue;
            pending = 1;
            if (now >= deadline) {
                cli_replica_fail(r, CLI_EXIT_UNREACH, "timeout", "no reply within %.1f s%s",
                                 (double)timeout_ms / 1000.0,
                                 r->st == CLI_RS_RECEIVING ? " (request sent)" : "");
                continue;
            }
            if (r->st == CLI_RS_RETRY) {
                if (now >= r->retry_at)
                    replica_start_connect(r);
                if (r->st == CLI_RS_RETRY) {
                    retrying = 1;
                    continue;
                }
                if (r->st == CLI_RS_DONE)
                    continue;
            }
            pfd[np].fd = r->fd;
            if (r->https)
                pfd[np].events = r->want;
            else
                pfd[np].events = r->st == CLI_RS_RECEIVING ? POLLIN : POLLOUT;
            pfd[np].revents = 0;
            who[np++] = i;
        }
        if (!pending)
            break;
        if (np == 0 && !retrying)
            continue; /* everything just finished or timed out */
        long long wait = deadline - now;
        if (retrying && wait > CLI_POLL_RETRY_MS)
            wait = CLI_POLL_RETRY_MS;
        if (wait < 0)
            wait = 0;
        int rc = poll(pfd, np, (int)wait);
        if (rc < 0 && errno != EINTR) {
            for (size_t k = 0; k < np; k++)
                cli_replica_fail(&c->rs[who[k]], CLI_EXIT_UNREACH, "unreachable", "poll: %s",
                                 strerror(errno));
            break;
        }
        for (size_t k = 0; rc > 0 && k < np; k++) {
            struct cli_replica *r = &c->rs[who[k]];
            if (!pfd[k].revents)
                continue;
            if (r->https)
                cli_https_step(c, r, id);
            else if (r->st == CLI_RS_RECEIVING)
                replica_on_readable(r, id);
            else
                replica_on_writable(r);
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        struct cli_replica *r = &c->rs[i];
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

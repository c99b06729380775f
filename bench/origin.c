/*
 * origin.c - the benchmark and demo origin: a lean single-threaded HTTP/1.1 server on epoll.
 *
 *   origin --port P --name NAME [--host 127.0.0.1]
 *   origin --listen PORT:NAME [--listen PORT:NAME ...] [--host 127.0.0.1]
 *
 * One process may serve several ports, each answering with its own name (the benchmark runs blue
 * and green in one process so that the load CPU runs one origin loop, not two).
 * GET /size/N answers N bytes of 'x' (N <= 1 GiB); any other path answers "NAME\n".
 * HEAD gets the same head without a body. Keep-alive and pipelining are supported (HTTP/1.1 by
 * default, HTTP/1.0 with "Connection: keep-alive"); "Connection: close" closes after the response.
 * Request bodies with Content-Length are read and discarded; chunked request bodies get 501 and
 * the connection is closed. Prints the line "ready" on stdout once it listens; exits 0 on
 * SIGTERM or SIGINT.
 *
 * Design: one epoll loop, level-triggered. Per connection one input buffer and one output buffer;
 * a read that did not fill the buffer goes back to epoll instead of reading again for EAGAIN
 * (level-triggered epoll reports what is left), which saves one syscall per request;
 * large bodies are not copied but sent from one static 1 MiB buffer of 'x' with writev. The head
 * for "/" is built once at start-up; a /size/N head is formatted with one snprintf.
 * All state lives in struct origin, passed explicitly; nothing is global.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define ORIGIN_IN_CAP 16384       /* one request head must fit */
#define ORIGIN_OUT_CAP 65536      /* stop parsing pipelined requests beyond this */
#define ORIGIN_BODY_CHUNK 1048576 /* static body buffer */
#define ORIGIN_MAX_SIZE (1UL << 30)
#define ORIGIN_MAX_EVENTS 256
#define ORIGIN_MAX_LISTENERS 8

/* One listening port and the name it answers with. */
struct listener {
    int fd;
    const char *name;
    char root_ka[256], root_close[256]; /* full responses for "/" */
    size_t root_ka_len, root_close_len, name_len;
};

struct conn {
    int fd;
    const struct listener *l;
    bool closing;      /* close once the output is flushed */
    bool want_out;     /* EPOLLOUT is armed */
    size_t in_len;
    size_t out_len, out_off;
    uint64_t body_left;  /* static-body bytes still to send after out[] */
    uint64_t discard;    /* request-body bytes still to skip */
    char in[ORIGIN_IN_CAP];
    char out[ORIGIN_OUT_CAP];
};

struct origin {
    int ep, sfd;
    struct listener ls[ORIGIN_MAX_LISTENERS];
    int nls;
    char *body;                          /* ORIGIN_BODY_CHUNK bytes of 'x' */
};

static void conn_free(struct origin *o, struct conn *c)
{
    epoll_ctl(o->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Case-insensitive search for header NAME (lower case, with ':') in head[0..len). Returns a
 * pointer to the value (leading spaces skipped) or NULL. The head starts after the request line. */
static const char *find_header(const char *head, size_t len, const char *name, size_t nlen)
{
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0) {
            p += nlen;
            while (p < eol && (*p == ' ' || *p == '\t'))
                p++;
            return p;
        }
        p = eol + 1;
    }
    return NULL;
}

static bool out_append(struct conn *c, const char *s, size_t n)
{
    if (c->out_len + n > ORIGIN_OUT_CAP)
        return false;
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    return true;
}

/* Parses one request at the start of c->in and queues its response. Returns bytes consumed,
 * 0 when more input is needed, -1 on a protocol error (the connection is closed after an error
 * response) or -2 when the output buffer is too full to take another response now. */
static long handle_one(struct origin *o, struct conn *c)
{
    char *buf = c->in;
    char *end = memmem(buf, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return c->in_len >= ORIGIN_IN_CAP ? -1 : 0;
    size_t head_len = (size_t)(end - buf) + 4;
    if (c->out_len + 512 > ORIGIN_OUT_CAP)
        return -2;

    char *sp1 = memchr(buf, ' ', head_len);
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', head_len - (size_t)(sp1 + 1 - buf)) : NULL;
    char *eol = memchr(buf, '\n', head_len);
    if (!sp1 || !sp2 || !eol || sp2 > eol || eol - sp2 < 9)
        return -1;
    bool head_only = (sp1 - buf == 4 && memcmp(buf, "HEAD", 4) == 0);
    bool http10 = memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    const char *hdrs = eol + 1;
    size_t hlen = head_len - (size_t)(hdrs - buf);

    bool keep = !http10;
    const char *v = find_header(hdrs, hlen, "connection:", 11);
    if (v) {
        if (strncasecmp(v, "close", 5) == 0)
            keep = false;
        else if (strncasecmp(v, "keep-alive", 10) == 0)
            keep = true;
    }
    if (find_header(hdrs, hlen, "transfer-encoding:", 18)) {
        static const char r501[] = "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
        out_append(c, r501, sizeof r501 - 1);
        c->closing = true;
        return (long)head_len;
    }
    v = find_header(hdrs, hlen, "content-length:", 15);
    if (v)
        c->discard = strtoull(v, NULL, 10);

    size_t plen = (size_t)(sp2 - sp1 - 1);
    const char *path = sp1 + 1;
    if (plen > 6 && memcmp(path, "/size/", 6) == 0) {
        uint64_t n = strtoull(path + 6, NULL, 10);
        if (n > ORIGIN_MAX_SIZE)
            n = ORIGIN_MAX_SIZE;
        char h[160];
        int hl = snprintf(h, sizeof h,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          "Content-Length: %llu\r\n%s\r\n",
                          (unsigned long long)n, keep ? "" : "Connection: close\r\n");
        out_append(c, h, (size_t)hl);
        if (!head_only) {
            /* Small bodies are copied so pipelined responses go out in one write. */
            if (n <= 4096 && c->out_len + n <= ORIGIN_OUT_CAP) {
                memcpy(c->out + c->out_len, o->body, n);
                c->out_len += n;
            } else {
                c->body_left = n;
            }
        }
    } else if (head_only) {
        const struct listener *l = c->l;
        const char *r = keep ? l->root_ka : l->root_close;
        size_t rl = (keep ? l->root_ka_len : l->root_close_len) - l->name_len - 1;
        out_append(c, r, rl);
    } else if (keep) {
        out_append(c, c->l->root_ka, c->l->root_ka_len);
    } else {
        out_append(c, c->l->root_close, c->l->root_close_len);
    }
    if (!keep)
        c->closing = true;
    return (long)head_len;
}

/* Writes queued output. Returns 1 when everything was written, 0 on EAGAIN, -1 on error. */
static int flush_out(struct origin *o, struct conn *c)
{
    while (c->out_off < c->out_len || c->body_left) {
        struct iovec iov[2];
        int n = 0;
        if (c->out_off < c->out_len) {
            iov[n].iov_base = c->out + c->out_off;
            iov[n].iov_len = c->out_len - c->out_off;
            n++;
        }
        if (c->body_left) {
            iov[n].iov_base = o->body;
            iov[n].iov_len = c->body_left < ORIGIN_BODY_CHUNK ? c->body_left : ORIGIN_BODY_CHUNK;
            n++;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t k = (size_t)w;
        size_t head = c->out_len - c->out_off;
        if (k >= head) {
            c->out_off = c->out_len = 0;
            c->body_left -= k - head;
        } else {
            c->out_off += k;
        }
    }
    c->out_off = c->out_len = 0;
    return 1;
}

static void arm_out(struct origin *o, struct conn *c, bool on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = on ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(o->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* Runs the connection as far as it can go without blocking. */
static void conn_run(struct origin *o, struct conn *c)
{
    bool drained = false; /* the last read left the socket empty: epoll reports more input */
    for (;;) {
        /* Parse every complete request already buffered (pipelining). */
        size_t off = 0;
        while (!c->closing && c->body_left == 0) {
            if (c->discard) {
                size_t k = c->in_len - off < c->discard ? c->in_len - off : c->discard;
                off += k;
                c->discard -= k;
                if (c->discard)
                    break;
            }
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
            off = 0;
            long r = handle_one(o, c);
            if (r == 0 || r == -2)
                break;
            if (r < 0) {
                static const char r400[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                           "Connection: close\r\n\r\n";
                out_append(c, r400, sizeof r400 - 1);
                c->closing = true;
                c->in_len = 0;
                break;
            }
            off = (size_t)r;
        }
        if (off) {
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
        }

        int f = flush_out(o, c);
        if (f < 0) {
            conn_free(o, c);
            return;
        }
        if (f == 0) {
            arm_out(o, c, true);
            return;
        }
        if (c->closing) {
            shutdown(c->fd, SHUT_WR);
            conn_free(o, c);
            return;
        }
        arm_out(o, c, false);

        /* Output drained: read more, unless the last read already emptied the socket. */
        if (drained)
            return;
        if (c->in_len >= ORIGIN_IN_CAP) {
            conn_free(o, c);
            return;
        }
        ssize_t r = read(c->fd, c->in + c->in_len, ORIGIN_IN_CAP - c->in_len);
        if (r == 0) {
            conn_free(o, c);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR)
                continue;
            conn_free(o, c);
            return;
        }
        size_t room = ORIGIN_IN_CAP - c->in_len;
        c->in_len += (size_t)r;
        if ((size_t)r < room)
            drained = true;
    }
}

static void on_accept(struct origin *o, const struct listener *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors: try again on the next event */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->l = l;
        c->closing = c->want_out = false;
        c->in_len = c->out_len = c->out_off = 0;
        c->body_left = c->discard = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(o->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: origin --port P --name NAME [--host ADDR]\n"
                    "       origin --listen PORT:NAME [--listen PORT:NAME ...] [--host ADDR]\n");
    exit(2);
}

/* Adds a listener answering NAME on PORT (bound later). */
static void add_listener(struct origin *o, long port, const char *name)
{
    if (o->nls >= ORIGIN_MAX_LISTENERS || port < 1 || port > 65535 || !name || !*name ||
        strlen(name) > 64)
        usage();
    struct listener *l = &o->ls[o->nls++];
    l->fd = (int)port; /* the port until bind replaces it with the socket */
    l->name = name;
    l->name_len = strlen(name);
    l->root_ka_len = (size_t)snprintf(l->root_ka, sizeof l->root_ka,
                                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                      "Content-Length: %zu\r\n\r\n%s\n",
                                      l->name_len + 1, name);
    l->root_close_len = (size_t)snprintf(l->root_close, sizeof l->root_close,
                                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                                         l->name_len + 1, name);
}

static int listen_on(const char *host, long port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "origin: bad --host %s\n", host);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "origin: cannot listen on %s:%ld: %s\n", host, port, strerror(errno));
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct origin o = {.nls = 0};
    const char *host = "127.0.0.1";
    long port = -1;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--port") == 0) {
            port = strtol(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--name") == 0) {
            name = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--host") == 0) {
            host = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--listen") == 0) {
            char *end;
            long p = strtol(argv[++i], &end, 10);
            if (*end != ':')
                usage();
            add_listener(&o, p, end + 1);
        } else {
            usage();
        }
    }
    if (port != -1 || name)
        add_listener(&o, port, name);
    if (o.nls == 0)
        usage();

    o.body = malloc(ORIGIN_BODY_CHUNK);
    if (!o.body)
        return 1;
    memset(o.body, 'x', ORIGIN_BODY_CHUNK);

    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    o.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    o.ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < o.nls; i++) {
        o.ls[i].fd = listen_on(host, o.ls[i].fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &o.ls[i]};
        epoll_ctl(o.ep, EPOLL_CTL_ADD, o.ls[i].fd, &ev);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &o.sfd};
    epoll_ctl(o.ep, EPOLL_CTL_ADD, o.sfd, &ev);

    printf("ready\n");
    fflush(stdout);

    struct epoll_event evs[ORIGIN_MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(o.ep, evs, ORIGIN_MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &o.sfd) {
                /* Connections are not tracked in a list: the process exit closes them. */
                for (int k = 0; k < o.nls; k++)
                    close(o.ls[k].fd);
                free(o.body);
                return 0;
            }
            struct listener *l = NULL;
            for (int k = 0; k < o.nls && !l; k++)
                if (p == &o.ls[k])
                    l = &o.ls[k];
            if (l)
                on_accept(&o, l);
            else
                conn_run(&o, p);
        }
    }
}

/* dns.c - endpoint names resolved off the control loop (see dns.h). */
#include "control/dns.h"

#include <event2/event.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/cut.h"
#include "proxy/route/snapshot.h"

#define DNS_MAX_ADDRS SNAP_MAX_ADDRS_PER_NAME

/* One cached name; owned by the control thread (names never shrink: they are the names of
 * endpoints configured since start, a few hundred at most). */
struct dns_name {
    char *host;
    uint16_t port;
    int numeric;
    int answered; /* a lookup has completed (or the name is numeric) */
    int queued;   /* a lookup is queued or running */
    unsigned n;
    struct sockaddr_storage addrs[DNS_MAX_ADDRS];
    socklen_t lens[DNS_MAX_ADDRS];
};

/* A lookup handed to the resolver thread and back; owned by whichever list holds it. */
struct dns_job {
    size_t name;    /* index into names */
    char *host;     /* the job's own copy: the resolver thread never reads names[] */
    uint16_t port;
    unsigned n;
    struct sockaddr_storage addrs[DNS_MAX_ADDRS];
    socklen_t lens[DNS_MAX_ADDRS];
    struct dns_job *next;
};

struct dns {
    struct event_base *base;
    struct event *ev_done; /* activated by the resolver thread */
    dns_lookup_fn lookup;
    dns_changed_fn changed;
    void *ctx;
    int blocking;
    struct dns_name *names;
    size_t nnames, capnames;
    unsigned pending;

    pthread_t thread;
    int have_thread;
    pthread_mutex_t mu; /* guards todo, done and stop */
    pthread_cond_t cv;
    struct dns_job *todo, **todo_tail, *done;
    int stop;
};

unsigned dns_lookup_system(const char *host, uint16_t port, struct sockaddr_storage *out,
                           socklen_t *lens, unsigned max)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0)
        return 0;
    unsigned n = 0;
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof out[0])
            continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n], ai->ai_addr, ai->ai_addrlen);
        lens[n] = ai->ai_addrlen;
        n++;
    }
    freeaddrinfo(res);
    return n;
}

static void *resolver_main(void *arg)
{
    struct dns *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->stop && d->todo == NULL)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->stop)
            break;
        struct dns_job *j = d->todo;
        d->todo = j->next;
        if (d->todo == NULL)
            d->todo_tail = &d->todo;
        pthread_mutex_unlock(&d->mu);
        j->n = d->lookup(j->host, j->port, j->addrs, j->lens, DNS_MAX_ADDRS);
        pthread_mutex_lock(&d->mu);
        j->next = d->done;
        d->done = j;
        event_active(d->ev_done, EV_READ, 0);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static int same_addrs(const struct dns_name *e, unsigned n, const struct sockaddr_storage *addrs,
                      const socklen_t *lens)
{
    if (n != e->n)
        return 0;
    for (unsigned i = 0; i < n; i++)
        if (lens[i] != e->lens[i] || memcmp(&addrs[i], &e->addrs[i], lens[i]) != 0)
            return 0;
    return 1;
}

/* Takes an answer for name i: returns whether the owner must hear of it (see dns_changed_fn). */
static int take_answer(struct dns_name *e, unsigned n, const struct sockaddr_storage *addrs,
                       const socklen_t *lens)
{
    int first = !e->answered;
    e->answered = 1;
    if (n == 0)
        return first; /* keep the last good answer; a first empty one is news */
    if (!first && same_addrs(e, n, addrs, lens))
        return 0;
    memcpy(e->addrs, addrs, n * sizeof addrs[0]);
    memcpy(e->lens, lens, n * sizeof lens[0]);
    e->n = n;
    return 1;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct dns *d = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&d->mu);
    struct dns_job *list = d->done;
    d->done = NULL;
    pthread_mutex_unlock(&d->mu);
    while (list) {
        struct dns_job *j = list;
        list = j->next;
        struct dns_name *e = &d->names[j->name];
        e->queued = 0;
        d->pending--;
        int first = !e->answered;
        if (take_answer(e, j->n, j->addrs, j->lens) && d->changed)
            d->changed(d->ctx, e->host, e->port, e->n, first);
        free(j->host);
        free(j);
    }
}

struct dns *dns_new(struct event_base *base, dns_lookup_fn lookup, dns_changed_fn changed,
                    void *ctx)
{
    struct dns *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->base = base;
    d->lookup = lookup ? lookup : dns_lookup_system;
    d->changed = changed;
    d->ctx = ctx;
    d->todo_tail = &d->todo;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->ev_done = event_new(base, -1, 0, on_done, d);
    if (!d->ev_done || pthread_create(&d->thread, NULL, resolver_main, d) != 0) {
        dns_free(d);
        return NULL;
    }
    d->have_thread = 1;
    return d;
}

static void free_jobs(struct dns_job *j)
{
    while (j) {
        struct dns_job *next = j->next;
        free(j->host);
        free(j);
        j = next;
    }
}

void dns_free(struct dns *d)
{
    if (!d)
        return;
    if (d->have_thread) {
        pthread_mutex_lock(&d->mu);
        d->stop = 1;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
    }
    free_jobs(d->todo);
    free_jobs(d->done);
    if (d->ev_done)
        event_free(d->ev_done);
    for (size_t i = 0; i < d->nnames; i++)
        free(d->names[i].host);
    free(d->names);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

void dns_set_blocking(struct dns *d, int on)
{
    d->blocking = on;
}

/* Queues a lookup of name i. Returns 0 or CUT_ENOMEM. */
static int enqueue(struct dns *d, size_t i)
{
    struct dns_name *e = &d->names[i];
    struct dns_job *j = calloc(1, sizeof *j);
    if (j)
        j->host = strdup(e->host);
    if (!j || !j->host) {
        free(j);
        return CUT_ENOMEM;
    }
    j->name = i;
    j->port = e->port;
    e->queued = 1;
    d->pending++;
    pthread_mutex_lock(&d->mu);
    *d->todo_tail = j;
    d->todo_tail = &j->next;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

static struct dns_name *find_or_add(struct dns *d, const char *host, uint16_t port)
{
    for (size_t i = 0; i < d->nnames; i++)
        if (d->names[i].port == port && strcmp(d->names[i].host, host) == 0)
            return &d->names[i];
    if (d->nnames == d->capnames) {
        size_t cap = d->capnames ? d->capnames * 2 : 16;
        struct dns_name *v = realloc(d->names, cap * sizeof *v);
        if (!v)
            return NULL;
        d->names = v;
        d->capnames = cap;
    }
    struct dns_name *e = &d->names[d->nnames];
    memset(e, 0, sizeof *e);
    e->host = strdup(host);
    if (!e->host)
        return NULL;
    e->port = port;
    d->nnames++;
    struct sockaddr_storage ss;
    socklen_t len;
    if (addr_numeric(host, port, &ss, &len) == 0) {
        e->numeric = e->answered = 1;
        e->n = 1;
        e->addrs[0] = ss;
        e->lens[0] = len;
    }
    return e;
}

unsigned dns_get(struct dns *d, const char *host, uint16_t port, struct sockaddr_storage *out,
                 socklen_t *lens, unsigned max)
{
    struct dns_name *e = find_or_add(d, host, port);
    if (!e)
        return 0;
    if (!e->answered && !e->queued) {
        if (d->blocking) {
            struct sockaddr_storage addrs[DNS_MAX_ADDRS];
            socklen_t alens[DNS_MAX_ADDRS];
            unsigned n = d->lookup(host, port, addrs, alens, DNS_MAX_ADDRS);
            take_answer(e, n, addrs, alens);
            if (n == 0 && d->changed) /* the caller has the addresses; only a failure is news */
                d->changed(d->ctx, e->host, e->port, 0, 1);
        } else {
            enqueue(d, (size_t)(e - d->names));
        }
    }
    unsigned n = e->n < max ? e->n : max;
    memcpy(out, e->addrs, n * sizeof *out);
    memcpy(lens, e->lens, n * sizeof *lens);
    return n;
}

void dns_refresh(struct dns *d)
{
    for (size_t i = 0; i < d->nnames; i++)
        if (!d->names[i].numeric && !d->names[i].queued)
            enqueue(d, i);
}

void dns_counts(const struct dns *d, unsigned *names, unsigned *pending)
{
    *names = (unsigned)d->nnames;
    *pending = d->pending;
}

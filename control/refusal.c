/* refusal.c - coalescing of refused control requests per actor (see refusal.h). */
#include "control/refusal.h"

#include <stdio.h>
#include <string.h>

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

void refusal_detail_set(struct refusal_detail *d, long uid, const char *user,
                        const char *address, const char *role, const char *op, const char *code,
                        const char *message)
{
    d->uid = uid;
    copy(d->user, sizeof d->user, user);
    copy(d->address, sizeof d->address, address);
    copy(d->role, sizeof d->role, role);
    copy(d->op, sizeof d->op, op);
    copy(d->code, sizeof d->code, code);
    copy(d->message, sizeof d->message, message);
}

/* Length of the host part of "ip:port" / "[v6]:port" (the whole string without a port). */
static size_t host_len(const char *a)
{
    const char *colon = strrchr(a, ':');
    const char *bracket = a[0] == '[' ? strchr(a, ']') : NULL;
    if (colon == NULL || (bracket != NULL && colon < bracket))
        return strlen(a);
    return (size_t)(colon - a);
}

static int same_actor(const struct refusal_detail *a, const struct refusal_detail *b)
{
    size_t ha = host_len(a->address), hb = host_len(b->address);
    return a->uid == b->uid && strcmp(a->user, b->user) == 0 && ha == hb &&
           memcmp(a->address, b->address, ha) == 0;
}

#define FULL ((uint64_t)REFUSAL_BURST * 1000)

static void refill(struct refusal_entry *e, uint64_t now_ms)
{
    if (now_ms > e->refilled_ms) {
        uint64_t add = (now_ms - e->refilled_ms) * REFUSAL_RATE;
        e->tokens_milli = e->tokens_milli + add > FULL ? FULL : e->tokens_milli + add;
    }
    e->refilled_ms = now_ms;
}

static void summarise(struct refusal_entry *e, refusal_summary_fn fn, void *ctx)
{
    if (e->suppressed > 0 && fn)
        fn(ctx, &e->d, e->suppressed);
    e->suppressed = 0;
}

static void drop(struct refusal_limiter *l, size_t i)
{
    l->v[i] = l->v[--l->n];
}

int refusal_admit(struct refusal_limiter *l, const struct refusal_detail *d, uint64_t now_ms,
                  refusal_summary_fn fn, void *ctx)
{
    struct refusal_entry *e = NULL;
    for (size_t i = 0; i < l->n && !e; i++)
        if (same_actor(&l->v[i].d, d))
            e = &l->v[i];
    if (!e) {
        if (l->n == REFUSAL_MAX_ACTORS) { /* make room: the quietest actor gives way */
            size_t q = 0;
            for (size_t i = 0; i < l->n; i++) {
                refill(&l->v[i], now_ms);
                if (l->v[i].tokens_milli > l->v[q].tokens_milli)
                    q = i;
            }
            summarise(&l->v[q], fn, ctx);
            drop(l, q);
        }
        e = &l->v[l->n++];
        *e = (struct refusal_entry){*d, FULL, now_ms, 0, 0};
    }
    refill(e, now_ms);
    if (e->tokens_milli >= 1000) {
        summarise(e, fn, ctx);
        e->tokens_milli -= 1000;
        e->d = *d;
        return 1;
    }
    if (e->suppressed++ == 0)
        e->first_suppressed_ms = now_ms;
    e->d = *d; /* the summary describes the latest */
    return 0;
}

void refusal_flush(struct refusal_limiter *l, uint64_t now_ms, int all, refusal_summary_fn fn,
                   void *ctx)
{
    for (size_t i = l->n; i > 0; i--) {
        struct refusal_entry *e = &l->v[i - 1];
        refill(e, now_ms);
        if (e->suppressed > 0 && (all || now_ms - e->first_suppressed_ms >= REFUSAL_WINDOW_MS))
            summarise(e, fn, ctx);
        if (all || (e->suppressed == 0 && e->tokens_milli == FULL))
            drop(l, i - 1);
    }
}

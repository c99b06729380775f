/* refusal.h - bounds what refused control requests cost the audit trail. Each actor (uid, user
 * or certificate subject, and client host: the port is not part of it) has a token bucket: a
 * burst of REFUSAL_BURST refusals is recorded one record each, then REFUSAL_RATE a second; the
 * refusals beyond are counted into one summary record ("count": N) per actor at most every
 * REFUSAL_WINDOW_MS. A flood of refused requests therefore writes a bounded number of bounded
 * records however large or frequent the requests, while an ordinary mistake or a short burst is
 * recorded in full. Changes are never limited.
 *
 * Pure bookkeeping: the caller writes the records (through summary_fn) and owns the clock.
 * Control thread only.
 */
#ifndef CUT_REFUSAL_H
#define CUT_REFUSAL_H

#include <stddef.h>
#include <stdint.h>

#define REFUSAL_WINDOW_MS 1000 /* at most one summary per actor per window */
#define REFUSAL_BURST 64        /* refusals recorded in full in a burst */
#define REFUSAL_RATE 8          /* and then per second */
#define REFUSAL_MAX_ACTORS 64

/* What identifies and describes a refusal (copied, cut to the field sizes). */
struct refusal_detail {
    long uid;           /* -1 when unknown */
    char user[256];     /* user name or certificate subject */
    char address[72];   /* the remote "ip:port", "" for the Unix socket */
    char role[16];
    char op[48];        /* the last refused op of the window */
    char code[40];      /* the last refusal's error code */
    char message[256];  /* the last refusal's message */
};

/* Called when an actor's counted refusals are summarised: d is the last of them, count how
 * many were not written. */
typedef void (*refusal_summary_fn)(void *ctx, const struct refusal_detail *d, uint64_t count);

struct refusal_entry {
    struct refusal_detail d;
    uint64_t tokens_milli;    /* 1000 per refusal that may be recorded in full */
    uint64_t refilled_ms;     /* when tokens_milli was last brought up to date */
    uint64_t suppressed;      /* counted, not yet summarised */
    uint64_t first_suppressed_ms;
};

struct refusal_limiter {
    struct refusal_entry v[REFUSAL_MAX_ACTORS];
    size_t n;
};

/* Fills d from its parts (NULLs become ""); the address's port is not part of the actor. */
void refusal_detail_set(struct refusal_detail *d, long uid, const char *user,
                        const char *address, const char *role, const char *op, const char *code,
                        const char *message);

/* One refusal at now_ms. Returns 1 when it should be recorded in full (pending refusals of the
 * actor are summarised through fn first, so the trail stays in order), 0 when it was counted.
 * When the table is full, the actor with the most tokens gives way (summarised first). */
int refusal_admit(struct refusal_limiter *l, const struct refusal_detail *d, uint64_t now_ms,
                  refusal_summary_fn fn, void *ctx);

/* Summarises counted refusals that have waited REFUSAL_WINDOW_MS, and forgets actors whose
 * bucket is full again with nothing pending (everything when all is set: at stop). */
void refusal_flush(struct refusal_limiter *l, uint64_t now_ms, int all, refusal_summary_fn fn,
                   void *ctx);

#endif

/* timer.h - a connection's or stream's deadline, re-armed cheaply.
 *
 * Every request moves a connection's deadline two or three times (header, body, idle), and a
 * libevent timer re-added each time costs ~500 instructions (queue removal, insertion, and the
 * common-timeout queue's own timer when the head changes): a quarter of a proxied request. An
 * ltimer keeps the deadline in a field instead: arming it later than the pending libevent timer
 * only writes the field; when the libevent timer fires before the deadline it re-adds itself for
 * the rest. Stopping writes the field too (a stale fire is ignored). So a busy keep-alive
 * connection touches libevent about once per timeout period, not per request.
 *
 * One owner: the connection or stream that embeds it, on its worker's thread. */
#ifndef CUT_RELAY_TIMER_H
#define CUT_RELAY_TIMER_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdint.h>
#include <sys/time.h>

struct ltimer {
    struct event ev;
    event_callback_fn cb; /* the owner's callback, called as libevent would (fd -1, EV_TIMEOUT) */
    void *arg;
    uint64_t deadline_ns; /* 0: stopped */
    uint64_t fire_ns;     /* when the pending libevent timer fires; 0: none pending */
    unsigned ready : 1;   /* ltimer_init ran (ltimer_dispose is safe on a zeroed one) */
    unsigned forced : 1;  /* ltimer_fire: run cb at the next loop turn whatever the deadline */
};

/* Binds t to base; cb(fd, what, arg) runs when the deadline passes. Never fails. */
void ltimer_init(struct ltimer *t, struct event_base *base, event_callback_fn cb, void *arg);

struct worker;

/* The deadline becomes now + ms. tv is the same duration for libevent (a worker's
 * common-timeout value from worker_tv), used only when libevent must be told. */
void ltimer_arm_tv(struct ltimer *t, unsigned ms, const struct timeval *tv);

/* The same, with w's common-timeout value for ms looked up only when libevent must be told
 * (the connections' and streams' form). */
void ltimer_arm(struct ltimer *t, unsigned ms, struct worker *w);

/* No deadline any more (a pending libevent timer fires once, unseen). */
void ltimer_stop(struct ltimer *t);

/* Runs cb at the next turn of the loop, as if the deadline had passed. */
void ltimer_fire(struct ltimer *t);

/* Removes it from the loop (before the owner is freed). Safe on a zeroed ltimer. */
void ltimer_dispose(struct ltimer *t);

#endif

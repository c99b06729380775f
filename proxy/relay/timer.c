/* timer.c - deadlines re-armed without touching libevent on every request (see timer.h). */
#include "proxy/relay/timer.h"

#include "core/clock.h"
#include "proxy/relay/worker.h"

static void on_fire(evutil_socket_t fd, short what, void *arg)
{
    struct ltimer *t = arg;
    t->fire_ns = 0; /* libevent removed it before calling us (not persistent) */
    if (t->forced) {
        t->forced = 0;
        t->deadline_ns = 0;
        t->cb(fd, what, t->arg);
        return;
    }
    if (t->deadline_ns == 0)
        return; /* stopped after it was added */
    uint64_t now = clock_mono_ns();
    if (now < t->deadline_ns) { /* moved later since it was added: wait for the rest */
        uint64_t rest = t->deadline_ns - now;
        struct timeval tv = {(time_t)(rest / 1000000000u), (suseconds_t)(rest % 1000000000u / 1000u)};
        if (tv.tv_sec == 0 && tv.tv_usec == 0)
            tv.tv_usec = 1;
        if (event_add(&t->ev, &tv) == 0) {
            t->fire_ns = t->deadline_ns;
            return;
        }
        /* cannot wait: let the deadline pass now rather than never */
    }
    t->deadline_ns = 0;
    t->cb(fd, what, t->arg);
}

void ltimer_init(struct ltimer *t, struct event_base *base, event_callback_fn cb, void *arg)
{
    t->cb = cb;
    t->arg = arg;
    t->deadline_ns = t->fire_ns = 0;
    t->forced = 0;
    evtimer_assign(&t->ev, base, on_fire, t);
    t->ready = 1;
}

/* Sets the deadline; 1 when the pending libevent timer fires no later (nothing else to do). */
static int moved_later(struct ltimer *t, unsigned ms, uint64_t *deadline)
{
    *deadline = clock_mono_ns() + (uint64_t)ms * 1000000u;
    t->deadline_ns = *deadline;
    return t->fire_ns != 0 && t->fire_ns <= *deadline;
}

void ltimer_arm_tv(struct ltimer *t, unsigned ms, const struct timeval *tv)
{
    uint64_t deadline;
    if (moved_later(t, ms, &deadline))
        return; /* the pending timer fires first and re-adds itself for the rest */
    if (event_add(&t->ev, tv) == 0)
        t->fire_ns = deadline;
}

void ltimer_arm(struct ltimer *t, unsigned ms, struct worker *w)
{
    uint64_t deadline;
    if (moved_later(t, ms, &deadline))
        return;
    if (event_add(&t->ev, worker_tv(w, ms)) == 0)
        t->fire_ns = deadline;
}

void ltimer_stop(struct ltimer *t)
{
    t->deadline_ns = 0;
}

void ltimer_fire(struct ltimer *t)
{
    t->forced = 1;
    event_active(&t->ev, EV_TIMEOUT, 1);
}

void ltimer_dispose(struct ltimer *t)
{
    if (t->ready) {
        event_del(&t->ev);
        t->ready = 0;
        t->fire_ns = 0;
    }
}

/* proxy/relay/timer.c: a deadline moved later only writes a field; the libevent timer that
 * fires first re-adds itself for the rest; stop and fire. Real event base, short times. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <string.h>

#include "core/clock.h"
#include "proxy/relay/timer.h"

struct fired {
    int n;
    uint64_t at_ns;
};

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    cr_assert(what & EV_TIMEOUT);
    struct fired *f = arg;
    f->n++;
    f->at_ns = clock_mono_ns();
}

static struct timeval tv_ms(unsigned ms)
{
    return (struct timeval){ms / 1000, (ms % 1000) * 1000};
}

/* One timer on its own event base, and what its callback saw. */
struct rig {
    struct event_base *base;
    struct ltimer t;
    struct fired f;
};

static void rig_up(struct rig *r)
{
    memset(r, 0, sizeof *r);
    r->base = event_base_new();
    cr_assert_not_null(r->base);
    ltimer_init(&r->t, r->base, on_deadline, &r->f);
}

static void rig_down(struct rig *r)
{
    ltimer_dispose(&r->t);
    event_base_free(r->base);
}

/* Runs the loop until f fires or limit_ms passes (a bound, not an assertion of speed). */
static void run_until(struct event_base *base, struct fired *f, unsigned limit_ms)
{
    uint64_t end = clock_mono_ns() + (uint64_t)limit_ms * 1000000u;
    while (f->n == 0 && clock_mono_ns() < end)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

Test(timer, fires_at_the_deadline)
{
    struct rig r;
    rig_up(&r);
    struct timeval tv = tv_ms(30);
    uint64_t t0 = clock_mono_ns();
    ltimer_arm_tv(&r.t, 30, &tv);
    run_until(r.base, &r.f, 2000);
    cr_assert_eq(r.f.n, 1);
    cr_assert_geq(r.f.at_ns - t0, 25 * 1000000ull, "fired after %llu ns",
                  (unsigned long long)(r.f.at_ns - t0));
    rig_down(&r);
}

Test(timer, a_later_deadline_wins_without_firing_early)
{
    struct rig r;
    rig_up(&r);
    struct timeval tv = tv_ms(20);
    ltimer_arm_tv(&r.t, 20, &tv);
    uint64_t t0 = clock_mono_ns();
    /* moved to 120 ms: the pending 20 ms timer must not end it */
    struct timeval later = tv_ms(120);
    ltimer_arm_tv(&r.t, 120, &later);
    run_until(r.base, &r.f, 3000);
    cr_assert_eq(r.f.n, 1);
    cr_assert_geq(r.f.at_ns - t0, 110 * 1000000ull, "fired after %llu ns",
                  (unsigned long long)(r.f.at_ns - t0));
    rig_down(&r);
}

Test(timer, an_earlier_deadline_replaces_a_later_one)
{
    struct rig r;
    rig_up(&r);
    struct timeval tv = tv_ms(5000);
    ltimer_arm_tv(&r.t, 5000, &tv);
    struct timeval sooner = tv_ms(20);
    uint64_t t0 = clock_mono_ns();
    ltimer_arm_tv(&r.t, 20, &sooner);
    run_until(r.base, &r.f, 3000);
    cr_assert_eq(r.f.n, 1);
    cr_assert_lt(r.f.at_ns - t0, 3000 * 1000000ull);
    rig_down(&r);
}

Test(timer, stop_keeps_it_silent_and_arm_revives_it)
{
    struct rig r;
    rig_up(&r);
    struct timeval tv = tv_ms(10);
    ltimer_arm_tv(&r.t, 10, &tv);
    ltimer_stop(&r.t);
    run_until(r.base, &r.f, 200); /* the libevent timer fires unseen */
    cr_assert_eq(r.f.n, 0);
    ltimer_arm_tv(&r.t, 10, &tv);
    run_until(r.base, &r.f, 2000);
    cr_assert_eq(r.f.n, 1);
    rig_down(&r);
}

Test(timer, fire_runs_now_whatever_the_deadline)
{
    struct rig r;
    rig_up(&r);
    struct timeval tv = tv_ms(60000);
    ltimer_arm_tv(&r.t, 60000, &tv);
    ltimer_fire(&r.t);
    run_until(r.base, &r.f, 2000);
    cr_assert_eq(r.f.n, 1);
    /* the fired deadline is gone: nothing fires again */
    r.f.n = 0;
    run_until(r.base, &r.f, 100);
    cr_assert_eq(r.f.n, 0);
    rig_down(&r);
}

Test(timer, dispose_is_safe_on_a_zeroed_timer)
{
    struct ltimer t = {0};
    ltimer_dispose(&t);
    cr_assert_eq(t.ready, 0);
}

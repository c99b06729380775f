/* Unit tests for control/dns.c: names resolve on the resolver thread, never on the caller's;
 * answers are cached, refreshed, and a failed refresh keeps the last good answer. A fake lookup
 * stands in for getaddrinfo, so nothing leaves the machine. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "control/dns.h"
#include "core/clock.h"

/* The fake resolver's answer: "a.test" -> 10.0.0.<fake_last> (0: no answer). */
static pthread_mutex_t fake_mu = PTHREAD_MUTEX_INITIALIZER;
static int fake_last = 1;
static int fake_calls;
static int fake_sleep_ms;
static pthread_t fake_thread;

static unsigned fake_lookup(const char *host, uint16_t port, struct sockaddr_storage *out,
                            socklen_t *lens, unsigned max)
{
    pthread_mutex_lock(&fake_mu);
    fake_calls++;
    fake_thread = pthread_self();
    int last = fake_last, sleep_ms = fake_sleep_ms;
    pthread_mutex_unlock(&fake_mu);
    if (sleep_ms) {
        struct timespec ts = {0, sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (strcmp(host, "a.test") != 0 || last == 0 || max == 0)
        return 0;
    struct sockaddr_in *a = (struct sockaddr_in *)&out[0];
    memset(&out[0], 0, sizeof out[0]);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(0x0a000000u | (unsigned)last);
    lens[0] = sizeof *a;
    return 1;
}

struct seen {
    int calls, first;
    unsigned naddrs;
    char host[64];
};

static void on_changed(void *ctx, const char *host, uint16_t port, unsigned naddrs, int first)
{
    struct seen *s = ctx;
    (void)port;
    s->calls++;
    s->first = first;
    s->naddrs = naddrs;
    snprintf(s->host, sizeof s->host, "%s", host);
}

static struct event_base *base;

static void setup(void)
{
    cr_assert_eq(evthread_use_pthreads(), 0);
    base = event_base_new();
    cr_assert_not_null(base);
    fake_last = 1;
    fake_calls = 0;
    fake_sleep_ms = 0;
}

static void teardown(void)
{
    event_base_free(base);
}

/* Runs the loop until s->calls reaches want (at most 2 s). */
static void wait_calls(struct seen *s, int want)
{
    uint64_t end = clock_mono_ms() + 2000;
    while (s->calls < want && clock_mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    cr_assert_eq(s->calls, want, "callbacks: %d, wanted %d", s->calls, want);
}

static unsigned last_octet(const struct sockaddr_storage *ss)
{
    return ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) & 0xff;
}

Test(dns, numeric_hosts_need_no_lookup, .init = setup, .fini = teardown)
{
    struct seen s = {0};
    struct dns *d = dns_new(base, fake_lookup, on_changed, &s);
    cr_assert_not_null(d);
    struct sockaddr_storage out[4];
    socklen_t lens[4];
    cr_assert_eq(dns_get(d, "127.0.0.1", 80, out, lens, 4), 1);
    cr_assert_eq(dns_get(d, "::1", 80, out, lens, 4), 1);
    cr_assert_eq(out[0].ss_family, AF_INET6);
    dns_refresh(d); /* numeric names are never looked up */
    unsigned names, pending;
    dns_counts(d, &names, &pending);
    cr_assert_eq(names, 2);
    cr_assert_eq(pending, 0);
    dns_free(d);
    cr_assert_eq(fake_calls, 0);
    cr_assert_eq(s.calls, 0);
}

Test(dns, a_name_resolves_off_the_caller_thread, .init = setup, .fini = teardown)
{
    struct seen s = {0};
    struct dns *d = dns_new(base, fake_lookup, on_changed, &s);
    struct sockaddr_storage out[4];
    socklen_t lens[4];
    cr_assert_eq(dns_get(d, "a.test", 8080, out, lens, 4), 0, "answered before the lookup ran");
    cr_assert_eq(dns_get(d, "a.test", 8080, out, lens, 4), 0);
    unsigned names, pending;
    dns_counts(d, &names, &pending);
    cr_assert_eq(names, 1);
    cr_assert_eq(pending, 1, "one lookup however often the name is asked for");
    wait_calls(&s, 1);
    cr_assert_eq(s.first, 1);
    cr_assert_eq(s.naddrs, 1);
    cr_assert_str_eq(s.host, "a.test");
    pthread_mutex_lock(&fake_mu);
    cr_assert_eq(fake_calls, 1);
    cr_assert_not(pthread_equal(fake_thread, pthread_self()), "looked up on the caller's thread");
    pthread_mutex_unlock(&fake_mu);
    cr_assert_eq(dns_get(d, "a.test", 8080, out, lens, 4), 1);
    cr_assert_eq(last_octet(&out[0]), 1);
    cr_assert_eq(ntohs(((struct sockaddr_in *)&out[0])->sin_port), 8080);
    dns_free(d);
}

Test(dns, refresh_reports_changes_only_and_keeps_the_last_good_answer, .init = setup,
     .fini = teardown)
{
    struct seen s = {0};
    struct dns *d = dns_new(base, fake_lookup, on_changed, &s);
    struct sockaddr_storage out[4];
    socklen_t lens[4];
    dns_get(d, "a.test", 80, out, lens, 4);
    wait_calls(&s, 1);

    dns_refresh(d); /* same answer: no news */
    uint64_t end = clock_mono_ms() + 300;
    while (clock_mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    cr_assert_eq(s.calls, 1);
    pthread_mutex_lock(&fake_mu);
    cr_assert_eq(fake_calls, 2);
    fake_last = 7; /* the name moves */
    pthread_mutex_unlock(&fake_mu);
    dns_refresh(d);
    wait_calls(&s, 2);
    cr_assert_eq(s.first, 0);
    cr_assert_eq(dns_get(d, "a.test", 80, out, lens, 4), 1);
    cr_assert_eq(last_octet(&out[0]), 7);

    pthread_mutex_lock(&fake_mu);
    fake_last = 0; /* DNS outage */
    pthread_mutex_unlock(&fake_mu);
    dns_refresh(d);
    end = clock_mono_ms() + 300;
    while (clock_mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    cr_assert_eq(s.calls, 2, "an empty refresh is not news");
    cr_assert_eq(dns_get(d, "a.test", 80, out, lens, 4), 1, "the last good answer is kept");
    cr_assert_eq(last_octet(&out[0]), 7);
    dns_free(d);
}

Test(dns, a_name_that_never_resolves_is_reported_once, .init = setup, .fini = teardown)
{
    struct seen s = {0};
    struct dns *d = dns_new(base, fake_lookup, on_changed, &s);
    struct sockaddr_storage out[4];
    socklen_t lens[4];
    cr_assert_eq(dns_get(d, "nowhere.test", 80, out, lens, 4), 0);
    wait_calls(&s, 1);
    cr_assert_eq(s.naddrs, 0);
    cr_assert_eq(s.first, 1);
    dns_refresh(d);
    uint64_t end = clock_mono_ms() + 300;
    while (clock_mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    cr_assert_eq(s.calls, 1);
    dns_free(d);
}

Test(dns, blocking_mode_answers_in_place, .init = setup, .fini = teardown)
{
    struct seen s = {0};
    struct dns *d = dns_new(base, fake_lookup, on_changed, &s);
    dns_set_blocking(d, 1);
    struct sockaddr_storage out[4];
    socklen_t lens[4];
    cr_assert_eq(dns_get(d, "a.test", 80, out, lens, 4), 1);
    cr_assert_eq(last_octet(&out[0]), 1);
    cr_assert_eq(s.calls, 0, "the caller has the addresses: no callback");
    cr_assert_eq(dns_get(d, "nowhere.test", 80, out, lens, 4), 0);
    cr_assert_eq(s.calls, 1, "a failure is reported");
    cr_assert_eq(s.naddrs, 0);
    unsigned names, pending;
    dns_counts(d, &names, &pending);
    cr_assert_eq(pending, 0);
    dns_free(d);
}

Test(dns, free_waits_for_a_lookup_in_progress, .init = setup, .fini = teardown)
{
    struct seen s = {0};
    fake_sleep_ms = 100;
    struct dns *d = dns_new(base, fake_lookup, on_changed, &s);
    struct sockaddr_storage out[4];
    socklen_t lens[4];
    dns_get(d, "a.test", 80, out, lens, 4);
    dns_get(d, "b.test", 80, out, lens, 4);
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL); /* the first lookup is running */
    dns_free(d);          /* must not crash, leak or call back */
    cr_assert_eq(s.calls, 0);
}

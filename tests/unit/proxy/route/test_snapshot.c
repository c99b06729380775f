/* Snapshot lifecycle: publish while requests hold the old one; freed when the last holder lets go. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/cut.h"
#include "proxy/route/snapshot.h"

static struct cfg_endpoint eps_blue[] = {{"127.0.0.1:9001", "127.0.0.1", 9001},
                                         {"127.0.0.1:9003", "127.0.0.1", 9003}};
static struct cfg_endpoint eps_green[] = {{"[::1]:9002", "::1", 9002},
                                          {"green.invalid:80", "green.invalid", 80}};

/* A configuration built by hand; cfg_free must not run on it, so holds made here are never
 * released to zero by the tests (they keep one reference of their own). */
static struct cfg *make_cfg(void)
{
    static struct cfg c;
    static struct cfg_route r;
    memset(&c, 0, sizeof c);
    memset(&r, 0, sizeof r);
    r.name = "api";
    r.npools = 2;
    r.pools[0] = (struct cfg_pool){"blue", eps_blue, 2, CFG_BALANCE_LEAST_OUTSTANDING, 9000};
    r.pools[1] = (struct cfg_pool){"green", eps_green, 2, CFG_BALANCE_ROUND_ROBIN, 1000};
    c.routes = &r;
    c.nroutes = 1;
    return &c;
}

static struct cfg_hold *make_hold(void)
{
    struct cfg_hold *h = calloc(1, sizeof *h);
    cr_assert_not_null(h);
    atomic_init(&h->refs, 2); /* one extra: the static cfg must never reach cfg_free */
    h->cfg = make_cfg();
    return h;
}

static unsigned disposed;
static void count_dispose(void *ctx, struct snap_pin *pin)
{
    (void)ctx;
    (void)pin;
    disposed++;
}

Test(snapshot, builds_routes_pools_and_numeric_endpoints)
{
    struct cfg_hold *h = make_hold();
    struct snapshot *s = snapshot_new(h, &(struct snap_inputs){.generation = 7});
    cr_assert_not_null(s);
    cr_assert_eq(s->generation, 7);
    cr_assert_eq(s->nroutes, 1);
    cr_assert_eq(s->routes[0].npools, 2);
    cr_assert_eq(s->routes[0].weights_bp[0], 9000);
    cr_assert_eq(s->routes[0].weights_bp[1], 1000);
    cr_assert_eq(s->routes[0].pools[0].neps, 2);
    /* a DNS name does not resolve without a resolver: green keeps only its numeric endpoint */
    cr_assert_eq(s->routes[0].pools[1].neps, 1);
    cr_assert_str_eq(s->routes[0].pools[0].eps[1].key, "127.0.0.1:9003");
    cr_assert_str_eq(s->routes[0].pools[1].eps[0].key, "[::1]:9002");
    cr_assert_eq(s->nendpoints, 3);
    cr_assert_eq(atomic_load(&h->refs), 3);
    snapshot_unref(s);
    cr_assert_eq(atomic_load(&h->refs), 2);
    free(h);
}

Test(snapshot, runtime_weights_override_config)
{
    struct cfg_hold *h = make_hold();
    struct snap_overlay_route ov[1];
    memset(ov, 0, sizeof ov);
    ov[0].pools[0] = (struct snap_overlay_pool){.has_weight = 1, .weight_bp = 2500};
    ov[0].pools[1] = (struct snap_overlay_pool){.has_weight = 1, .weight_bp = 7500};
    struct snapshot *s = snapshot_new(h, &(struct snap_inputs){.generation = 2, .overlay = ov});
    cr_assert_eq(s->routes[0].weights_bp[0], 2500);
    cr_assert_eq(s->routes[0].weights_bp[1], 7500);
    snapshot_unref(s);
    free(h);
}

static unsigned fake_resolve(void *ctx, const struct cfg_endpoint *ep,
                             struct sockaddr_storage *out, socklen_t *outlen, unsigned max)
{
    (void)ctx;
    cr_assert_geq(max, 2);
    if (strcmp(ep->host, "green.invalid") != 0)
        return 0;
    /* two addresses, one of them twice: the duplicate is dropped */
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in *a = (struct sockaddr_in *)&out[i];
        memset(a, 0, sizeof *a);
        a->sin_family = AF_INET;
        a->sin_port = htons(ep->port);
        a->sin_addr.s_addr = htonl(0x0a000001u);
        outlen[i] = sizeof *a;
    }
    return 2;
}

Test(snapshot, resolver_addresses_deduplicated)
{
    struct cfg_hold *h = make_hold();
    struct snapshot *s = snapshot_new(h, &(struct snap_inputs){.generation = 1, .resolve = fake_resolve});
    /* the resolver answers for the name only; numeric entries are the resolver's job too */
    cr_assert_eq(s->routes[0].pools[1].neps, 1);
    cr_assert_str_eq(s->routes[0].pools[1].eps[0].key, "10.0.0.1:80");
    cr_assert_str_eq(s->routes[0].pools[1].eps[0].name, "green.invalid:80");
    snapshot_unref(s);
    free(h);
}

Test(snapshot, pins_keep_old_snapshot_until_last_holder_lets_go)
{
    struct cfg_hold *h = make_hold();
    struct snap_pins pins;
    disposed = 0;
    snapshot_pins_init(&pins, count_dispose, NULL);
    cr_assert_null(snapshot_pin_get(&pins));

    struct snapshot *s1 = snapshot_new(h, &(struct snap_inputs){.generation = 1});
    snapshot_ref(s1); /* the test watches s1 */
    cr_assert_eq(snapshot_pins_adopt(&pins, s1, NULL), 0);
    struct snap_pin *a = snapshot_pin_get(&pins);
    struct snap_pin *b = snapshot_pin_get(&pins);
    cr_assert_eq(a, b);
    cr_assert_eq(a->snap, s1);
    cr_assert_eq(a->users, 2);

    /* publish generation 2 while two requests hold generation 1 */
    struct snapshot *s2 = snapshot_new(h, &(struct snap_inputs){.generation = 2});
    cr_assert_eq(snapshot_pins_adopt(&pins, s2, NULL), 0);
    struct snap_pin *c = snapshot_pin_get(&pins);
    cr_assert_eq(c->snap, s2, "new requests use the new snapshot at once");
    cr_assert_eq(snapshot_refs(s1), 2, "the old one is still held (pin + test)");
    cr_assert_eq(disposed, 0);

    snapshot_pin_put(&pins, a);
    cr_assert_eq(snapshot_refs(s1), 2);
    cr_assert_eq(disposed, 0);
    snapshot_pin_put(&pins, b); /* last holder */
    cr_assert_eq(disposed, 1);
    cr_assert_eq(snapshot_refs(s1), 1, "the pin released its reference");

    /* an idle current pin is freed at once when replaced */
    snapshot_pin_put(&pins, c);
    struct snapshot *s3 = snapshot_new(h, &(struct snap_inputs){.generation = 3});
    snapshot_ref(s2);
    cr_assert_eq(snapshot_pins_adopt(&pins, s3, NULL), 0);
    cr_assert_eq(disposed, 2);
    cr_assert_eq(snapshot_refs(s2), 1);

    snapshot_pins_dispose(&pins);
    cr_assert_eq(disposed, 3);
    snapshot_unref(s1);
    snapshot_unref(s2);
    cr_assert_eq(atomic_load(&h->refs), 2, "every snapshot let go of the configuration");
    free(h);
}

Test(snapshot, addr_key_formats)
{
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(443);
    a6.sin6_addr.s6_addr[15] = 1;
    char k[SNAP_KEY_MAX];
    snapshot_addr_key((struct sockaddr *)&a6, k, sizeof k);
    cr_assert_str_eq(k, "[::1]:443");
}

Test(snapshot, overlay_drains_adds_and_removes_endpoints)
{
    struct cfg_hold *h = make_hold();
    char *drained[] = {"127.0.0.1:9003"};
    char *removed[] = {"127.0.0.1:9001"};
    char *added[] = {"127.0.0.2:9100", "bad-address"};
    struct snap_overlay_route ov[1];
    memset(ov, 0, sizeof ov);
    ov[0].pools[0] = (struct snap_overlay_pool){.drained = drained, .ndrained = 1,
                                                .removed = removed, .nremoved = 1,
                                                .added = added, .nadded = 2};
    struct snapshot *s = snapshot_new(h, &(struct snap_inputs){.generation = 3, .overlay = ov});
    const struct snap_pool *blue = &s->routes[0].pools[0];
    cr_assert_eq(blue->neps, 2, "one configured endpoint removed, one added, a bad one ignored");
    cr_assert_str_eq(blue->eps[0].key, "127.0.0.1:9003");
    cr_assert_eq(blue->eps[0].drained, 1);
    cr_assert_str_eq(blue->eps[1].key, "127.0.0.2:9100");
    cr_assert_str_eq(blue->eps[1].name, "127.0.0.2:9100");
    cr_assert_eq(blue->eps[1].drained, 0);
    cr_assert_eq(s->routes[0].weights_bp[0], 9000, "no weight in the overlay: the config's");
    snapshot_unref(s);
    free(h);
}

Test(snapshot, parse_endpoint_forms)
{
    struct cfg_endpoint ep;
    char buf[64];
    cr_assert_eq(snapshot_parse_endpoint("blue.svc:8080", &ep, buf, sizeof buf), 0);
    cr_assert_str_eq(ep.host, "blue.svc");
    cr_assert_eq(ep.port, 8080);
    cr_assert_eq(snapshot_parse_endpoint("[::1]:443", &ep, buf, sizeof buf), 0);
    cr_assert_str_eq(ep.host, "::1");
    cr_assert_eq(ep.port, 443);
    cr_assert_eq(snapshot_parse_endpoint("host", &ep, buf, sizeof buf), CUT_EINVAL);
    cr_assert_eq(snapshot_parse_endpoint("host:0", &ep, buf, sizeof buf), CUT_EINVAL);
    cr_assert_eq(snapshot_parse_endpoint("host:70000", &ep, buf, sizeof buf), CUT_EINVAL);
    cr_assert_eq(snapshot_parse_endpoint(":80", &ep, buf, sizeof buf), CUT_EINVAL);
}

Test(snapshot, endpoint_host)
{
    char h[16];
    snapshot_endpoint_host("green.svc.bank:8443", h, sizeof h);
    cr_assert_str_eq(h, "green.svc.bank");
    snapshot_endpoint_host("[fd00::10]:443", h, sizeof h);
    cr_assert_str_eq(h, "fd00::10");
    snapshot_endpoint_host("10.0.0.5:80", h, sizeof h);
    cr_assert_str_eq(h, "10.0.0.5");
    snapshot_endpoint_host("a-very-long-host-name.example:1", h, sizeof h);
    cr_assert_eq(strlen(h), sizeof h - 1, "truncated to the buffer");
}

struct health_seen {
    int calls;
    const struct snapshot *s;
};

static void mark_health(void *ctx, struct snapshot *s)
{
    struct health_seen *h = ctx;
    h->calls++;
    h->s = s;
    s->routes[0].pools[0].eps[0].unhealthy = 1; /* as the control thread's health state would */
    s->routes[0].weights_bp[0] = 0;
    s->routes[0].weights_bp[1] = 10000;
}

Test(snapshot, health_is_applied_before_the_snapshot_is_returned)
{
    struct cfg_hold *h = make_hold();
    struct health_seen seen = {0};
    struct snapshot *s = snapshot_new(
        h, &(struct snap_inputs){.generation = 4, .health = mark_health, .health_ctx = &seen});
    cr_assert_not_null(s);
    cr_assert_eq(seen.calls, 1, "health runs once, inside snapshot_new");
    cr_assert_eq(seen.s, s);
    cr_assert_eq(s->routes[0].pools[0].eps[0].unhealthy, 1);
    cr_assert_eq(s->routes[0].weights_bp[1], 10000);
    cr_assert_null(s->tls[0], "no TLS listener given: none attached");
    cr_assert_null(s->geo);
    cr_assert_null(s->routes[0].pools[0].tls);
    snapshot_unref(s);
    free(h);
}

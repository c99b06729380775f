/* test_route.c - proxy/route.c: host normalisation, route matching, trust rules for addresses
 * and X-Forwarded-For, cookies, and the pool decision. Configurations are built by hand. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy/route/route.h"

#define S(lit) CUT_SLICE_LIT(lit)

static struct cut_slice cstr(const char *s)
{
    return (struct cut_slice){s, strlen(s)};
}

/* ---- route_normalize_host ---- */

static void norm_ok(const char *in, const char *want)
{
    char out[256];
    int n = route_normalize_host(cstr(in), out, sizeof(out));
    cr_assert_eq(n, (int)strlen(want), "%s -> %d", in, n);
    cr_assert_str_eq(out, want, "%s", in);
}

static void norm_bad(const char *in)
{
    char out[256];
    cr_assert_eq(route_normalize_host(cstr(in), out, sizeof(out)), CUT_EINVAL, "%s", in);
}

Test(route, normalize_host)
{
    norm_ok("Example.COM", "example.com");
    norm_ok("example.com:8443", "example.com");
    norm_ok("example.com.", "example.com");
    norm_ok("Example.com.:80", "example.com");
    norm_ok("example.com:", "example.com");
    norm_ok("10.1.2.3:443", "10.1.2.3");
    norm_ok("[::1]:443", "[::1]");
    norm_ok("[2001:DB8::1]", "[2001:db8::1]");
    norm_ok("a-b_c.x9", "a-b_c.x9");

    norm_bad("");
    norm_bad(".");
    norm_bad("example.com..");
    norm_bad("a..b");
    norm_bad(".a");
    norm_bad("exa mple.com");
    norm_bad("example.com/x");
    norm_bad("user@example.com");
    norm_bad("example.com:80x");
    norm_bad("example.com:123456");
    norm_bad("example.com:70000");
    norm_bad("::1");
    norm_bad("[::1");
    norm_bad("[]");
    norm_bad("[::1]x");
    norm_bad("[::g]");
    norm_bad("*.example.com");
}

Test(route, normalize_host_capacity)
{
    char out[8];

    cr_assert_eq(route_normalize_host(S("abcdefg"), out, sizeof(out)), 7);
    cr_assert_str_eq(out, "abcdefg");
    cr_assert_eq(route_normalize_host(S("abcdefgh"), out, sizeof(out)), CUT_EINVAL);
    cr_assert_eq(route_normalize_host(S("abcdefg.:1"), out, sizeof(out)), 7);
    cr_assert_eq(route_normalize_host(S("[::1:2:3]"), out, sizeof(out)), CUT_EINVAL);
    cr_assert_eq(route_normalize_host(S("a"), out, 0), CUT_EINVAL);
    cr_assert_eq(route_normalize_host(S("ex\0mpl"), out, sizeof(out)), CUT_EINVAL, "NUL inside");
}

/* ---- route_match ---- */

static char *h_exact[] = {"shop.example.com"};
static char *h_wild[] = {"*.example.com"};
static char *h_any[] = {"*"};
static char *h_two[] = {"other.test", "api.example.com"};

static struct cfg_route routes[] = {
    {.name = "any-root", .hosts = NULL, .nhosts = 0, .path_prefix = "/"},
    {.name = "any-api", .hosts = h_any, .nhosts = 1, .path_prefix = "/api"},
    {.name = "wild-root", .hosts = h_wild, .nhosts = 1, .path_prefix = "/"},
    {.name = "wild-static", .hosts = h_wild, .nhosts = 1, .path_prefix = "/static/"},
    {.name = "exact-cart", .hosts = h_exact, .nhosts = 1, .path_prefix = "/cart"},
    {.name = "exact-cart-dup", .hosts = h_exact, .nhosts = 1, .path_prefix = "/cart"},
    {.name = "two-v2", .hosts = h_two, .nhosts = 2, .path_prefix = "/v2"},
    {.name = "exact-checkout", .hosts = h_exact, .nhosts = 1, .path_prefix = "/cart/checkout"},
};

static const struct cfg match_cfg = {.routes = routes, .nroutes = CUT_ARRAY_LEN(routes)};

static int m(const char *host, const char *path)
{
    return route_match(&match_cfg, host, cstr(path));
}

Test(route, match_precedence)
{
    /* No exact or wildcard host: the "any" routes, longest prefix. */
    cr_assert_eq(m("unknown.test", "/"), 0);
    cr_assert_eq(m("unknown.test", "/api"), 1);
    cr_assert_eq(m("unknown.test", "/api/x"), 1);
    cr_assert_eq(m("unknown.test", "/api?q=1"), 1);
    cr_assert_eq(m("unknown.test", "/apis"), 0, "segment-aware");
    cr_assert_eq(m("unknown.test", "/ap"), 0);
    /* A wildcard host beats "any" even with a shorter prefix. */
    cr_assert_eq(m("www.example.com", "/api/x"), 2);
    cr_assert_eq(m("a.b.example.com", "/"), 2, "one or more labels");
    cr_assert_eq(m("www.example.com", "/static/app.js"), 3);
    cr_assert_eq(m("www.example.com", "/static"), 2, "'/static/' needs the slash");
    cr_assert_eq(m("example.com", "/api"), 1, "a wildcard needs a label before the suffix");
    cr_assert_eq(m("badexample.com", "/"), 0);
    /* An exact host beats the wildcard; ties go to the first; longest prefix wins. */
    cr_assert_eq(m("shop.example.com", "/cart"), 4);
    cr_assert_eq(m("shop.example.com", "/cart/items"), 4);
    cr_assert_eq(m("shop.example.com", "/cart/checkout?x"), 7);
    cr_assert_eq(m("shop.example.com", "/cart/checkoutx"), 4);
    /* The second host of a route matches too. */
    cr_assert_eq(m("api.example.com", "/v2/users"), 6);
}

Test(route, match_best_host_level_is_final)
{
    /* The host picks the level first (as nginx and Envoy pick a virtual host): an exact host
     * whose prefixes do not match gives no route, it does not fall back to a wildcard. */
    cr_assert_eq(m("shop.example.com", "/other"), -1);
    cr_assert_eq(m("api.example.com", "/v1"), -1);
}

Test(route, match_edge_cases)
{
    static struct cfg_route r[] = {
        {.name = "a", .hosts = NULL, .nhosts = 0, .path_prefix = "/a"},
    };
    static const struct cfg c = {.routes = r, .nroutes = 1};
    static const struct cfg empty = {.routes = NULL, .nroutes = 0};

    cr_assert_eq(route_match(&c, "x", S("/b")), -1);
    cr_assert_eq(route_match(&c, "x", S("")), -1);
    cr_assert_eq(route_match(&c, "x", S("/a")), 0);
    cr_assert_eq(route_match(&empty, "x", S("/")), -1);
    cr_assert_eq(route_match(NULL, "x", S("/")), -1);
}

/* ---- addresses ---- */

static struct cfg_cidr cidr(const char *net, unsigned prefix)
{
    struct cfg_cidr c = {0};
    if (inet_pton(AF_INET, net, c.addr) == 1)
        c.family = AF_INET;
    else if (inet_pton(AF_INET6, net, c.addr) == 1)
        c.family = AF_INET6;
    else
        cr_assert_fail("bad test network %s", net);
    c.prefix = prefix;
    return c;
}

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    cr_assert_eq(route_parse_addr(cstr(text), &ss), 0, "parse %s", text);
    return ss;
}

static int in_list(const struct cfg_cidr_list *l, const char *text)
{
    struct sockaddr_storage ss = addr(text);
    return route_cidr_contains(l, (const struct sockaddr *)&ss);
}

Test(route, parse_addr)
{
    struct sockaddr_storage ss;
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
    char buf[INET6_ADDRSTRLEN];

    cr_assert_eq(route_parse_addr(S("10.1.2.3"), &ss), 0);
    cr_assert_eq(ss.ss_family, AF_INET);
    cr_assert_eq(s4->sin_port, 0);
    cr_assert_str_eq(inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf)), "10.1.2.3");
    cr_assert_eq(route_parse_addr(S("10.1.2.3:5678"), &ss), 0);
    cr_assert_eq(ss.ss_family, AF_INET);
    cr_assert_eq(s4->sin_port, 0, "port is dropped");
    cr_assert_str_eq(inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf)), "10.1.2.3");
    cr_assert_eq(route_parse_addr(S("::1"), &ss), 0);
    cr_assert_eq(ss.ss_family, AF_INET6);
    cr_assert_str_eq(inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf)), "::1");
    cr_assert_eq(route_parse_addr(S("[::1]:443"), &ss), 0);
    cr_assert_eq(ss.ss_family, AF_INET6);
    cr_assert_eq(s6->sin6_port, 0);
    cr_assert_eq(route_parse_addr(S("[2001:db8::7]"), &ss), 0);
    cr_assert_str_eq(inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf)), "2001:db8::7");
    cr_assert_eq(route_parse_addr(S("::ffff:10.0.0.1"), &ss), 0);
    cr_assert_eq(ss.ss_family, AF_INET6);

    static const char *bad[] = {
        "",       "10.1.2", "10.1.2.300",   "10.1.2.3:",   "10.1.2.3:x", "10.1.2.3:99999",
        "[::1",   "[::1]:", "[::1]x",       "[10.1.2.3]",  "unknown",    " 10.1.2.3",
        "::1::2", "[]",     "fe80::1%eth0", "1.2.3.4:5:6x"};
    for (size_t i = 0; i < CUT_ARRAY_LEN(bad); i++)
        cr_assert_eq(route_parse_addr(cstr(bad[i]), &ss), CUT_EINVAL, "'%s'", bad[i]);
    cr_assert_eq(route_parse_addr(S("1.2.3.4\0junk"), &ss), CUT_EINVAL, "embedded NUL");
    cr_assert_eq(route_parse_addr(S("[::1\0]"), &ss), CUT_EINVAL, "embedded NUL");
}

Test(route, cidr_contains)
{
    struct cfg_cidr v[] = {cidr("10.0.0.0", 8), cidr("192.168.1.7", 32), cidr("2001:db8::", 32),
                           cidr("::1", 128), cidr("172.16.0.0", 12)};
    struct cfg_cidr_list l = {v, CUT_ARRAY_LEN(v)};

    cr_assert(in_list(&l, "10.0.0.1"));
    cr_assert(in_list(&l, "10.255.255.255"));
    cr_assert_not(in_list(&l, "11.0.0.0"));
    cr_assert(in_list(&l, "192.168.1.7"));
    cr_assert_not(in_list(&l, "192.168.1.8"));
    cr_assert(in_list(&l, "172.31.255.1"));
    cr_assert_not(in_list(&l, "172.32.0.1"));
    cr_assert(in_list(&l, "2001:db8:ffff::1"));
    cr_assert_not(in_list(&l, "2001:db9::1"));
    cr_assert(in_list(&l, "::1"));
    cr_assert_not(in_list(&l, "::2"));
    /* IPv4-mapped IPv6 is IPv4. */
    cr_assert(in_list(&l, "::ffff:10.9.8.7"));
    cr_assert(in_list(&l, "::ffff:192.168.1.7"));
    cr_assert_not(in_list(&l, "::ffff:11.0.0.1"));

    struct cfg_cidr_list none = {NULL, 0};
    cr_assert_not(in_list(&none, "10.0.0.1"));
    cr_assert_not(route_cidr_contains(NULL, NULL));

    struct sockaddr_un_like {
        sa_family_t f;
        char pad[30];
    } unix_peer = {AF_UNIX, {0}};
    cr_assert_not(route_cidr_contains(&l, (const struct sockaddr *)&unix_peer));
}

Test(route, cidr_zero_and_full_prefixes)
{
    struct cfg_cidr all4[] = {cidr("0.0.0.0", 0)};
    struct cfg_cidr all6[] = {cidr("::", 0)};
    struct cfg_cidr mapped[] = {cidr("::ffff:10.0.0.0", 104)};
    struct cfg_cidr broken[] = {cidr("10.0.0.0", 33), cidr("::", 129)};
    struct cfg_cidr_list l4 = {all4, 1}, l6 = {all6, 1}, lm = {mapped, 1}, lb = {broken, 2};

    cr_assert(in_list(&l4, "1.2.3.4"));
    cr_assert(in_list(&l4, "::ffff:1.2.3.4"));
    cr_assert_not(in_list(&l4, "2001:db8::1"));
    cr_assert(in_list(&l6, "2001:db8::1"));
    cr_assert_not(in_list(&l6, "1.2.3.4"), "IPv4 is not in ::/0");
    cr_assert(in_list(&lm, "10.1.1.1"), "a mapped network written as IPv6 covers IPv4");
    cr_assert_not(in_list(&lm, "11.1.1.1"));
    cr_assert_not(in_list(&lb, "10.0.0.0"), "an invalid prefix trusts nobody");
    cr_assert_not(in_list(&lb, "::"));
}

/* ---- route_client_addr ---- */

static struct cfg_cidr trusted_v[] = {{0}, {0}, {0}};
static struct cfg_cidr_list trusted = {trusted_v, 3};

static void setup_trusted(void)
{
    trusted_v[0] = cidr("10.0.0.0", 8);      /* Application Gateway subnet */
    trusted_v[1] = cidr("fd00::", 8);        /* internal v6 */
    trusted_v[2] = cidr("192.168.50.5", 32); /* one named proxy */
}

static void client_is(const char *peer, const char *xff, const char *want)
{
    struct sockaddr_storage p = addr(peer);
    char out[INET6_ADDRSTRLEN];
    int rc = route_client_addr((const struct sockaddr *)&p, cstr(xff), &trusted, out, sizeof(out));
    cr_assert_eq(rc, 0, "peer %s xff '%s'", peer, xff);
    cr_assert_str_eq(out, want, "peer %s xff '%s'", peer, xff);
}

Test(route, client_addr, .init = setup_trusted)
{
    /* Untrusted peer: XFF ignored entirely. */
    client_is("203.0.113.9", "1.1.1.1", "203.0.113.9");
    client_is("203.0.113.9", "", "203.0.113.9");
    /* Trusted peer without XFF. */
    client_is("10.0.0.4", "", "10.0.0.4");
    /* Application Gateway writes IP:port. */
    client_is("10.0.0.4", "198.51.100.7:51234", "198.51.100.7");
    /* Walk from the right, skipping trusted hops; a spoofed left entry is not believed. */
    client_is("10.0.0.4", "6.6.6.6, 198.51.100.7:51234, 10.2.3.4", "198.51.100.7");
    client_is("10.0.0.4", "6.6.6.6,198.51.100.7,192.168.50.5:80", "198.51.100.7");
    /* IPv6 forms. */
    client_is("10.0.0.4", "[2001:db8::5]:443", "2001:db8::5");
    client_is("10.0.0.4", "2001:db8::5", "2001:db8::5");
    client_is("fd00::1", "2001:db8::5, [fd12::9]:1", "2001:db8::5");
    /* Every entry trusted: the leftmost one. */
    client_is("10.0.0.4", "10.9.9.9, 10.8.8.8", "10.9.9.9");
    /* Garbage stops the walk at the last trusted hop. */
    client_is("10.0.0.4", "198.51.100.7, garbage", "10.0.0.4");
    client_is("10.0.0.4", "198.51.100.7, unknown, 10.3.3.3", "10.3.3.3");
    client_is("10.0.0.4", "198.51.100.7, 10.3.3.3:x", "10.0.0.4");
    /* Empty fields and blanks carry nothing. */
    client_is("10.0.0.4", " 198.51.100.7 ,, ", "198.51.100.7");
    client_is("10.0.0.4", ",", "10.0.0.4");
    /* IPv4-mapped peers are written as IPv4. */
    client_is("::ffff:10.0.0.4", "198.51.100.7", "198.51.100.7");
    client_is("::ffff:203.0.113.9", "198.51.100.7", "203.0.113.9");
}

Test(route, client_addr_errors, .init = setup_trusted)
{
    struct sockaddr_storage p = addr("10.0.0.4");
    char small[16], out[INET6_ADDRSTRLEN];

    cr_assert_eq(
        route_client_addr((const struct sockaddr *)&p, S(""), &trusted, small, sizeof(small)),
        CUT_EINVAL);
    cr_assert_eq(route_client_addr(NULL, S(""), &trusted, out, sizeof(out)), CUT_EINVAL);
    cr_assert_eq(
        route_client_addr((const struct sockaddr *)&p, S("1.2.3.4"), NULL, out, sizeof(out)), 0);
    cr_assert_str_eq(out, "10.0.0.4", "no trusted list: nobody is trusted");
}

/* ---- route_cookie_value ---- */

static void cookie_is(const char *hdr, const char *name, const char *want)
{
    struct cut_slice v = {NULL, 0};
    int found = route_cookie_value(cstr(hdr), name, &v);
    if (want == NULL) {
        cr_assert_eq(found, 0, "'%s' in '%s'", name, hdr);
        return;
    }
    cr_assert_eq(found, 1, "'%s' in '%s'", name, hdr);
    cr_assert_eq(v.n, strlen(want), "'%s' in '%s'", name, hdr);
    cr_assert(memcmp(v.p, want, v.n) == 0, "'%s' in '%s'", name, hdr);
}

Test(route, cookie_value)
{
    cookie_is("a=1; b=2", "a", "1");
    cookie_is("a=1; b=2", "b", "2");
    cookie_is("a=1;b=2;c=3", "c", "3");
    cookie_is("  sid = abc ;other=x", "sid", "abc");
    cookie_is("sid=\"quoted value\"; x=1", "sid", "quoted value");
    cookie_is("sid=\"", "sid", "\"");
    cookie_is("xsid=1; sid=2", "sid", "2");
    cookie_is("sidx=1; sid=2", "sid", "2");
    cookie_is("xsid=1", "sid", NULL);
    cookie_is("sid", "sid", NULL);
    cookie_is("sid=", "sid", "");
    cookie_is("a=1; sid=first; sid=second", "sid", "first");
    cookie_is("a=b=c", "a", "b=c");
    cookie_is("", "sid", NULL);
    cookie_is(";;; ;", "sid", NULL);
    cookie_is("a=1; b=2", "", NULL);
}

/* ---- route_pick_pool ---- */

static struct cfg_route pick_route = {
    .name = "r",
    .path_prefix = "/",
    .pools = {{.name = "blue", .weight_bp = 10000}, {.name = "green", .weight_bp = 0}},
    .npools = 2,
    .sticky = {.kind = CFG_STICKY_HEADER, .name = "x-device-id"},
    .override = {.header = "x-cutover-pool"},
};

Test(route, pick_override)
{
    const unsigned w[2] = {10000, 0};
    struct balance_swrr st;
    enum route_reason why;
    struct route_pick_in in = {.route = &pick_route, .weights_bp = w};

    balance_swrr_init(&st);
    /* Trusted override beats weight 0 and the sticky key. */
    in.override_trusted = 1;
    in.override_value = S("green");
    in.sticky_key = S("device-1");
    cr_assert_eq(route_pick_pool(&in, &st, &why), 1);
    cr_assert_eq(why, ROUTE_BY_OVERRIDE);
    in.override_value = S("blue");
    cr_assert_eq(route_pick_pool(&in, &st, &why), 0);
    cr_assert_eq(why, ROUTE_BY_OVERRIDE);
    /* Untrusted: ignored. */
    in.override_trusted = 0;
    in.override_value = S("green");
    cr_assert_eq(route_pick_pool(&in, &st, &why), 0);
    cr_assert_eq(why, ROUTE_BY_STICKY);
    /* Unknown pool name, or a name that is only a prefix: ignored. */
    in.override_trusted = 1;
    in.sticky_key = (struct cut_slice){NULL, 0};
    static const char *unknown[] = {"purple", "gree", "greenx", "GREEN", ""};
    for (size_t i = 0; i < CUT_ARRAY_LEN(unknown); i++) {
        in.override_value = cstr(unknown[i]);
        cr_assert_eq(route_pick_pool(&in, &st, &why), 0, "%s", unknown[i]);
        cr_assert_eq(why, ROUTE_BY_WEIGHT);
    }
}

Test(route, pick_override_when_all_weights_zero)
{
    const unsigned w[2] = {0, 0};
    struct balance_swrr st;
    enum route_reason why;
    struct route_pick_in in = {.route = &pick_route, .weights_bp = w};

    balance_swrr_init(&st);
    cr_assert_eq(route_pick_pool(&in, &st, &why), -1);
    in.sticky_key = S("device-1");
    cr_assert_eq(route_pick_pool(&in, &st, &why), -1);
    in.override_trusted = 1;
    in.override_value = S("green");
    cr_assert_eq(route_pick_pool(&in, &st, &why), 1);
    cr_assert_eq(why, ROUTE_BY_OVERRIDE);
}

Test(route, pick_sticky)
{
    unsigned w[2] = {5000, 5000};
    struct balance_swrr st;
    enum route_reason why;
    struct route_pick_in in = {.route = &pick_route, .weights_bp = w};
    char key[32];
    int green = 0;

    balance_swrr_init(&st);
    for (int i = 0; i < 2000; i++) {
        int len = snprintf(key, sizeof(key), "device-%d", i);
        in.sticky_key = (struct cut_slice){key, (size_t)len};
        int p = route_pick_pool(&in, &st, &why);
        cr_assert_eq(why, ROUTE_BY_STICKY);
        uint32_t b = balance_sticky_bucket(key, (size_t)len);
        cr_assert_eq(p, b < 5000 ? 0 : 1, "pool follows the bucket partition");
        cr_assert_eq(route_pick_pool(&in, &st, &why), p, "same key, same pool");
        green += p;
    }
    cr_assert(green > 850 && green < 1150);
    for (int i = 0; i < BALANCE_MAX_POOLS; i++)
        cr_assert_eq(st.current[i], 0, "sticky picks leave the SWRR state alone");
    /* Rollback: everyone blue at once. */
    w[0] = 10000, w[1] = 0;
    in.sticky_key = S("device-77");
    cr_assert_eq(route_pick_pool(&in, &st, &why), 0);
}

Test(route, pick_weighted)
{
    const unsigned w[2] = {9000, 1000};
    struct balance_swrr st;
    enum route_reason why;
    struct route_pick_in in = {.route = &pick_route, .weights_bp = w};
    int count[2] = {0, 0};

    balance_swrr_init(&st);
    for (int i = 0; i < 1000; i++) {
        int p = route_pick_pool(&in, &st, &why);
        cr_assert_eq(why, ROUTE_BY_WEIGHT);
        count[p]++;
    }
    cr_assert_eq(count[0], 900);
    cr_assert_eq(count[1], 100);

    /* No runtime weights: the configured ones (blue 100 %). */
    in.weights_bp = NULL;
    for (int i = 0; i < 10; i++)
        cr_assert_eq(route_pick_pool(&in, &st, &why), 0);
}

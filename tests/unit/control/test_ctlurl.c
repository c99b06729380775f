/* test_ctlurl.c - control/ctlurl.c: parsing https://HOST[:PORT] and expanding a name into one
 * replica per address (with a fake resolver: order kept, duplicates dropped, limits). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "control/ctlurl.h"
#include "core/cut.h"

static void parse_ok(const char *text, const char *host, unsigned port, int numeric)
{
    struct ctlurl u;
    char err[128] = "";
    cr_assert_eq(ctlurl_parse(text, &u, err, sizeof err), 0, "%s: %s", text, err);
    cr_assert_str_eq(u.host, host, "%s", text);
    cr_assert_eq(u.port, port, "%s", text);
    cr_assert_eq(u.numeric, numeric, "%s", text);
}

static void parse_bad(const char *text)
{
    struct ctlurl u;
    char err[128] = "";
    cr_assert_eq(ctlurl_parse(text, &u, err, sizeof err), CUT_EINVAL, "%s accepted", text);
    cr_assert(err[0] != '\0', "%s: no reason", text);
}

Test(ctlurl, parse)
{
    parse_ok("https://127.0.0.1:9443", "127.0.0.1", 9443, 1);
    parse_ok("https://127.0.0.1:9443/", "127.0.0.1", 9443, 1);
    parse_ok("https://[::1]:9443", "::1", 9443, 1);
    parse_ok("https://[fd00::10]", "fd00::10", 443, 1);
    parse_ok("https://Cutover-Admin.Payments.svc:9443", "cutover-admin.payments.svc", 9443, 0);
    parse_ok("https://localhost", "localhost", 443, 0);
    parse_ok("https://a:1", "a", 1, 0);
    parse_ok("https://a:65535", "a", 65535, 0);

    const char *bad[] = {"http://127.0.0.1:9443",
                         "127.0.0.1:9443",
                         "https://",
                         "https://:9443",
                         "https://h:0",
                         "https://h:65536",
                         "https://h:",
                         "https://h:9x",
                         "https://h:9443/v1/control",
                         "https://h:9443?x",
                         "https://u@h:9443",
                         "https://h:9443#f",
                         "https://[::1",
                         "https://[::1]9443",
                         "https://[nope]:1",
                         "https://300.1.1.1:1",
                         "https://-h:1",
                         "https://h_x:1",
                         "https://h..x:1",
                         "https://h:9443//",
                         "unix:/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_bad(bad[i]);
}

/* A resolver that answers from a table and counts its calls. */
struct fake {
    const char *addrs[70];
    size_t n;
    int calls;
    int fail;
};

static int fake_resolve(void *arg, const char *host, uint16_t port, struct sockaddr_storage *out,
                        socklen_t *lens, size_t max, char *err, size_t cap)
{
    struct fake *f = arg;
    (void)host;
    f->calls++;
    if (f->fail) {
        snprintf(err, cap, "cannot resolve %s: Name or service not known", host);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < f->n && n < max; i++, n++) {
        memset(&out[n], 0, sizeof out[n]);
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out[n];
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out[n];
        if (inet_pton(AF_INET, f->addrs[i], &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            s4->sin_port = htons(port);
            lens[n] = sizeof *s4;
        } else {
            cr_assert_eq(inet_pton(AF_INET6, f->addrs[i], &s6->sin6_addr), 1);
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(port);
            lens[n] = sizeof *s6;
        }
    }
    return (int)n;
}

Test(ctlurl, expand_name_to_every_address)
{
    struct ctlurl u;
    char err[128];
    cr_assert_eq(ctlurl_parse("https://admin.test:9443", &u, err, sizeof err), 0);
    struct fake f = {{"10.0.0.1", "10.0.0.2", "10.0.0.1", "fd00::7"}, 4, 0, 0};
    struct sockaddr_storage out[8];
    socklen_t lens[8];
    int n = ctlurl_expand(&u, fake_resolve, &f, out, lens, 8, err, sizeof err);
    cr_assert_eq(n, 3, "duplicates dropped: %d", n);
    char text[64];
    const char *want[] = {"10.0.0.1:9443", "10.0.0.2:9443", "[fd00::7]:9443"};
    for (int i = 0; i < n; i++) {
        ctlurl_addr_text((struct sockaddr *)&out[i], text, sizeof text);
        cr_assert_str_eq(text, want[i], "address %d in the resolver's order", i);
    }
    ctlurl_authority(&u, text, sizeof text);
    cr_assert_str_eq(text, "admin.test:9443", "Host and SNI stay the name");

    /* more addresses than replicas left: refused, not cut */
    cr_assert_eq(ctlurl_expand(&u, fake_resolve, &f, out, lens, 2, err, sizeof err), CUT_ELIMIT);
    cr_assert(strstr(err, "more than 2") != NULL, "%s", err);

    f.fail = 1;
    cr_assert_eq(ctlurl_expand(&u, fake_resolve, &f, out, lens, 8, err, sizeof err), CUT_ENOENT);
    cr_assert(strstr(err, "cannot resolve admin.test") != NULL, "%s", err);
    f.fail = 0;
    f.n = 0;
    cr_assert_eq(ctlurl_expand(&u, fake_resolve, &f, out, lens, 8, err, sizeof err), CUT_ENOENT);
}

Test(ctlurl, numeric_hosts_are_not_resolved)
{
    struct ctlurl u;
    char err[128], text[64];
    struct fake f = {{"10.9.9.9"}, 1, 0, 0};
    struct sockaddr_storage out[2];
    socklen_t lens[2];
    cr_assert_eq(ctlurl_parse("https://[::1]:9443", &u, err, sizeof err), 0);
    cr_assert_eq(ctlurl_expand(&u, fake_resolve, &f, out, lens, 2, err, sizeof err), 1);
    ctlurl_addr_text((struct sockaddr *)&out[0], text, sizeof text);
    cr_assert_str_eq(text, "[::1]:9443");
    ctlurl_authority(&u, text, sizeof text);
    cr_assert_str_eq(text, "[::1]:9443");
    cr_assert_eq(ctlurl_parse("https://127.0.0.1:9443", &u, err, sizeof err), 0);
    cr_assert_eq(ctlurl_expand(&u, fake_resolve, &f, out, lens, 2, err, sizeof err), 1);
    ctlurl_addr_text((struct sockaddr *)&out[0], text, sizeof text);
    cr_assert_str_eq(text, "127.0.0.1:9443");
    cr_assert_eq(f.calls, 0, "the resolver was asked about an address");
}

Test(ctlurl, system_resolver_localhost)
{
    struct ctlurl u;
    char err[160];
    struct sockaddr_storage out[8];
    socklen_t lens[8];
    cr_assert_eq(ctlurl_parse("https://localhost:9443", &u, err, sizeof err), 0);
    int n = ctlurl_expand(&u, ctlurl_resolve_system, NULL, out, lens, 8, err, sizeof err);
    cr_assert_geq(n, 1, "localhost: %s", err);
}

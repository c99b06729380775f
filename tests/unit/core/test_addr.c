/* Unit tests for core/addr.c: numeric addresses only, never DNS. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>

#include "core/addr.h"
#include "core/cut.h"

Test(addr, ipv4_literal)
{
    struct sockaddr_storage ss;
    socklen_t len;
    cr_assert_eq(addr_numeric("127.0.0.1", 8080, &ss, &len), 0);
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
    cr_assert_eq(ss.ss_family, AF_INET);
    cr_assert_eq(len, sizeof *a4);
    cr_assert_eq(ntohs(a4->sin_port), 8080);
    cr_assert_eq(ntohl(a4->sin_addr.s_addr), 0x7f000001u);
}

Test(addr, ipv6_literal)
{
    struct sockaddr_storage ss;
    socklen_t len;
    cr_assert_eq(addr_numeric("::1", 443, &ss, &len), 0);
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
    cr_assert_eq(ss.ss_family, AF_INET6);
    cr_assert_eq(len, sizeof *a6);
    cr_assert_eq(ntohs(a6->sin6_port), 443);
    cr_assert(IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr));
}

Test(addr, names_and_garbage_are_refused)
{
    static const char *const bad[] = {"localhost", "", "127.0.0.1 ", "[::1]", "1.2.3", "1.2.3.4.5",
                                      "256.1.1.1", "::1%lo0x", "example.com"};
    for (size_t i = 0; i < CUT_ARRAY_LEN(bad); i++) {
        struct sockaddr_storage ss;
        socklen_t len = 99;
        cr_assert_eq(addr_numeric(bad[i], 80, &ss, &len), CUT_EINVAL, "%s", bad[i]);
        cr_assert_eq(len, 0, "%s", bad[i]);
        cr_assert_eq(ss.ss_family, 0, "%s", bad[i]);
        cr_assert_eq(addr_is_numeric(bad[i]), 0, "%s", bad[i]);
    }
    cr_assert_eq(addr_is_numeric("10.0.0.1"), 1);
    cr_assert_eq(addr_is_numeric("fe80::1"), 1);
}

/* Unit tests for core/addr.c: numeric addresses only, never DNS. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

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

static struct sockaddr_storage v4(const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;
    cr_assert_eq(addr_numeric(text, 1, &ss, &len), 0);
    return ss;
}

Test(addr, text_ipv4_like_inet_ntop)
{
    /* every digit count in every position, and the extremes */
    const char *cases[] = {"0.0.0.0", "1.2.3.4", "10.20.30.40", "100.200.250.255",
                           "255.255.255.255", "9.99.100.0", "127.0.0.1", "192.168.1.10"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage ss = v4(cases[i]);
        char out[64];
        int n = addr_text((struct sockaddr *)&ss, out, sizeof out);
        cr_assert_str_eq(out, cases[i]);
        cr_assert_eq(n, (int)strlen(cases[i]));
    }
    /* all 256 values of one byte agree with inet_ntop */
    for (unsigned b = 0; b < 256; b++) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(0x0a000000u | (b << 8) | (255 - b));
        char want[INET_ADDRSTRLEN], got[64];
        cr_assert_not_null(inet_ntop(AF_INET, &a.sin_addr, want, sizeof want));
        cr_assert_gt(addr_text((struct sockaddr *)&a, got, sizeof got), 0);
        cr_assert_str_eq(got, want);
    }
}

Test(addr, text_ipv6_and_mapped)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char out[64];
    cr_assert_eq(addr_numeric("2001:db8::1", 1, &ss, &len), 0);
    cr_assert_eq(addr_text((struct sockaddr *)&ss, out, sizeof out), 11);
    cr_assert_str_eq(out, "2001:db8::1");
    /* an IPv4-mapped address is written as the IPv4 client it is */
    cr_assert_eq(addr_numeric("::ffff:192.0.2.7", 1, &ss, &len), 0);
    cr_assert_eq(addr_text((struct sockaddr *)&ss, out, sizeof out), 9);
    cr_assert_str_eq(out, "192.0.2.7");
}

Test(addr, text_refuses_other_families_and_short_buffers)
{
    struct sockaddr_storage ss = v4("1.2.3.4");
    char out[64] = "x";
    cr_assert_eq(addr_text((struct sockaddr *)&ss, out, 8), CUT_EINVAL);
    cr_assert_str_eq(out, "");
    struct sockaddr_un_like {
        sa_family_t family;
        char path[30];
    } un = {.family = AF_UNIX};
    strcpy(out, "x");
    cr_assert_eq(addr_text((struct sockaddr *)&un, out, sizeof out), CUT_EINVAL);
    cr_assert_str_eq(out, "");
}

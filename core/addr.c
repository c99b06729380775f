/* addr.c - numeric IPv4/IPv6 addresses. */
#include "core/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/cut.h"

static int ipv4_text(const unsigned char b[4], char *out)
{
    char *o = out;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            *o++ = (char)('0' + v / 100);
        if (v >= 10)
            *o++ = (char)('0' + v / 10 % 10);
        *o++ = (char)('0' + v % 10);
        *o++ = i < 3 ? '.' : '\0';
    }
    return (int)(o - out - 1);
}

int addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    if (cap < INET6_ADDRSTRLEN) {
        if (cap > 0)
            out[0] = '\0';
        return CUT_EINVAL;
    }
    if (sa->sa_family == AF_INET)
        return ipv4_text((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr, out);
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            return ipv4_text(&a6->s6_addr[12], out);
        if (inet_ntop(AF_INET6, a6, out, (socklen_t)cap) != NULL)
            return (int)strlen(out);
    }
    out[0] = '\0';
    return CUT_EINVAL;
}

int addr_numeric(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *len = sizeof *a6;
        return 0;
    }
    memset(ss, 0, sizeof *ss);
    *len = 0;
    return CUT_EINVAL;
}

int addr_is_numeric(const char *host)
{
    struct sockaddr_storage ss;
    socklen_t len;
    return addr_numeric(host, 0, &ss, &len) == 0;
}

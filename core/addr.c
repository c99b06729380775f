/* addr.c - numeric IPv4/IPv6 addresses. */
#include "core/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/cut.h"

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

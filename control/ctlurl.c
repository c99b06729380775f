/* ctlurl.c - HTTPS admin API endpoints for cutoverctl (contract in ctlurl.h). */
#include "control/ctlurl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/cut.h"

/* Labels of 1..63 letters, digits and '-' (not first or last), at most 253 characters. */
static int valid_name(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > CTLURL_HOST_MAX)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = s[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if (isalnum((unsigned char)ch) || ch == '-') {
            if (label == 0 && ch == '-')
                return 0;
            label++;
        } else {
            return 0;
        }
    }
    return 1;
}

int ctlurl_parse(const char *text, struct ctlurl *u, char *err, size_t cap)
{
    static const char scheme[] = "https://";
    memset(u, 0, sizeof *u);
    if (strncmp(text, scheme, sizeof scheme - 1) != 0) {
        snprintf(err, cap, "expected https://HOST[:PORT]");
        return CUT_EINVAL;
    }
    const char *p = text + sizeof scheme - 1;
    const char *end = p + strlen(p);
    if (end > p && end[-1] == '/')
        end--; /* one trailing slash: the root, which is no path */
    const char *hs = p, *he, *portp = NULL;
    if (*p == '[') {
        hs = p + 1;
        he = memchr(hs, ']', (size_t)(end - hs));
        if (!he) {
            snprintf(err, cap, "unterminated [IPv6] address");
            return CUT_EINVAL;
        }
        if (he + 1 < end && he[1] != ':') {
            snprintf(err, cap, "expected :PORT after the [IPv6] address");
            return CUT_EINVAL;
        }
        portp = he + 1 < end ? he + 2 : NULL;
    } else {
        he = memchr(hs, ':', (size_t)(end - hs));
        if (he)
            portp = he + 1;
        else
            he = end;
    }
    size_t hn = (size_t)(he - hs);
    if (hn == 0 || hn > CTLURL_HOST_MAX) {
        snprintf(err, cap, hn == 0 ? "missing host" : "host name too long");
        return CUT_EINVAL;
    }
    memcpy(u->host, hs, hn);
    u->host[hn] = '\0';
    if (memchr(hs, '/', (size_t)(end - hs)) || memchr(hs, '?', (size_t)(end - hs)) ||
        memchr(hs, '#', (size_t)(end - hs)) || memchr(hs, '@', (size_t)(end - hs))) {
        snprintf(err, cap, "only https://HOST[:PORT] (no user, path, query or fragment)");
        return CUT_EINVAL;
    }
    u->port = CTLURL_DEFAULT_PORT;
    if (portp) {
        size_t pn = (size_t)(end - portp);
        unsigned v = 0;
        int ok = pn >= 1 && pn <= 5;
        for (size_t i = 0; ok && i < pn; i++) {
            ok = isdigit((unsigned char)portp[i]) != 0;
            v = v * 10 + (unsigned)(portp[i] - '0');
        }
        if (!ok || v < 1 || v > 65535) {
            snprintf(err, cap, "the port must be 1..65535");
            return CUT_EINVAL;
        }
        u->port = (uint16_t)v;
    }
    unsigned char probe[16];
    if (p[0] == '[') {
        if (inet_pton(AF_INET6, u->host, probe) != 1) {
            snprintf(err, cap, "invalid IPv6 address");
            return CUT_EINVAL;
        }
        u->numeric = 1;
    } else if (strspn(u->host, "0123456789.") == hn) {
        if (inet_pton(AF_INET, u->host, probe) != 1) {
            snprintf(err, cap, "invalid IPv4 address");
            return CUT_EINVAL;
        }
        u->numeric = 1;
    } else {
        if (!valid_name(u->host)) {
            snprintf(err, cap, "invalid host name");
            return CUT_EINVAL;
        }
        for (char *h = u->host; *h; h++)
            *h = (char)tolower((unsigned char)*h);
    }
    return 0;
}

int ctlurl_resolve_system(void *arg, const char *host, uint16_t port, struct sockaddr_storage *out,
                          socklen_t *lens, size_t max, char *err, size_t cap)
{
    (void)arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        snprintf(err, cap, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    size_t n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof out[0])
            continue;
        if (n == max) {
            n++; /* one more than fits: the caller reports it */
            break;
        }
        memcpy(&out[n], ai->ai_addr, ai->ai_addrlen);
        lens[n] = ai->ai_addrlen;
        n++;
    }
    freeaddrinfo(res);
    return (int)n;
}

static int same_addr(const struct sockaddr_storage *a, socklen_t al,
                     const struct sockaddr_storage *b, socklen_t bl)
{
    return al == bl && memcmp(a, b, al) == 0;
}

int ctlurl_expand(const struct ctlurl *u, ctlurl_resolve_fn *fn, void *arg,
                  struct sockaddr_storage *out, socklen_t *lens, size_t max, char *err, size_t cap)
{
    if (max == 0) {
        snprintf(err, cap, "no room for another replica");
        return CUT_ELIMIT;
    }
    if (u->numeric) {
        memset(&out[0], 0, sizeof out[0]);
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out[0];
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out[0];
        if (inet_pton(AF_INET, u->host, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            s4->sin_port = htons(u->port);
            lens[0] = sizeof *s4;
        } else if (inet_pton(AF_INET6, u->host, &s6->sin6_addr) == 1) {
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(u->port);
            lens[0] = sizeof *s6;
        } else {
            snprintf(err, cap, "invalid address %s", u->host);
            return CUT_EINVAL;
        }
        return 1;
    }
    /* resolve into scratch space for every address a name may sensibly have, then keep the
     * distinct ones; more than max distinct addresses is an error, not a silent cut */
    struct sockaddr_storage got[CTLURL_MAX_ADDRS];
    socklen_t glens[CTLURL_MAX_ADDRS];
    size_t room = CTLURL_MAX_ADDRS;
    int n = fn(arg, u->host, u->port, got, glens, room, err, cap);
    if (n < 0)
        return CUT_ENOENT;
    if (n == 0) {
        snprintf(err, cap, "%s has no address", u->host);
        return CUT_ENOENT;
    }
    size_t k = 0;
    for (int i = 0; i < n && (size_t)i < room; i++) {
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++)
            dup = same_addr(&out[j], lens[j], &got[i], glens[i]);
        if (dup)
            continue;
        if (k == max) {
            snprintf(err, cap, "%s has more than %zu addresses", u->host, max);
            return CUT_ELIMIT;
        }
        out[k] = got[i];
        lens[k] = glens[i];
        k++;
    }
    return (int)k;
}

void ctlurl_addr_text(const struct sockaddr *sa, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(s6->sin6_port));
    } else {
        snprintf(buf, cap, "unknown");
    }
}

void ctlurl_authority(const struct ctlurl *u, char *buf, size_t cap)
{
    int v6 = strchr(u->host, ':') != NULL;
    snprintf(buf, cap, v6 ? "[%s]:%u" : "%s:%u", u->host, (unsigned)u->port);
}

/* route.c - pure routing decisions (see route.h). No allocation, no globals, no I/O; every
 * function reads only what it is given, so any thread may call it. route_match runs once per
 * request: one pass over the routes, no allocation.
 */
#include "proxy/route/route.h"
#include "core/addr.h"
#include "core/cut.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

_Static_assert(CFG_MAX_POOLS <= BALANCE_MAX_POOLS, "a route's pools must fit the balancer");

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static char to_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static struct cut_slice trim_ows(struct cut_slice s)
{
    while (s.n > 0 && is_ows(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && is_ows(s.p[s.n - 1]))
        s.n--;
    return s;
}

/* A port after ':' : empty (RFC 3986 allows it) or up to 5 digits <= 65535. */
static int port_ok(const char *p, size_t n)
{
    unsigned v = 0;

    if (n > 5)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return 0;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= 65535;
}

/* ---- Host normalisation ---------------------------------------------------------------- */

int route_normalize_host(struct cut_slice host, char *out, size_t cap)
{
    const char *p = host.p;
    size_t n = host.n, len = 0;

    if (n == 0 || cap == 0 || p == NULL)
        return CUT_EINVAL;

    if (p[0] == '[') {
        /* IP literal: "[v6]" or "[v6]:port". Kept with its brackets, as a Host carries it. */
        const char *close = memchr(p, ']', n);
        if (close == NULL || close == p + 1)
            return CUT_EINVAL;
        size_t end = (size_t)(close - p) + 1;
        if (end < n && (p[end] != ':' || !port_ok(p + end + 1, n - end - 1)))
            return CUT_EINVAL;
        if (end >= cap)
            return CUT_EINVAL;
        for (size_t i = 0; i < end; i++) {
            char c = to_lower(p[i]);
            if (i > 0 && i < end - 1 &&
                !(is_digit(c) || (c >= 'a' && c <= 'f') || c == ':' || c == '.'))
                return CUT_EINVAL;
            out[len++] = c;
        }
        out[len] = '\0';
        return (int)len;
    }

    /* reg-name or IPv4: the first ':' starts the port (a name holds no ':'). */
    const char *colon = memchr(p, ':', n);
    if (colon != NULL) {
        size_t hn = (size_t)(colon - p);
        if (!port_ok(colon + 1, n - hn - 1))
            return CUT_EINVAL; /* also rejects a bare, unbracketed IPv6 address */
        n = hn;
    }
    if (n > 0 && p[n - 1] == '.')
        n--; /* one trailing dot: "example.com." is "example.com" */
    if (n == 0 || n >= cap)
        return CUT_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = to_lower(p[i]);
        if (c == '.') {
            if (i == 0 || p[i - 1] == '.')
                return CUT_EINVAL; /* empty label */
        } else if (!(is_digit(c) || (c >= 'a' && c <= 'z') || c == '-' || c == '_')) {
            return CUT_EINVAL;
        }
        out[len++] = c;
    }
    out[len] = '\0';
    if (len > 0 && out[len - 1] == '.')
        return CUT_EINVAL; /* "example.com.." */
    return (int)len;
}

/* ---- Route matching -------------------------------------------------------------------- */

enum { HOST_NONE = 0, HOST_ANY = 1, HOST_WILDCARD = 2, HOST_EXACT = 3 };

/* The best precedence level at which one of the route's hosts matches host. */
static int host_level(const struct cfg_route *r, const char *host, size_t hlen)
{
    int level = r->nhosts == 0 ? HOST_ANY : HOST_NONE;

    for (size_t i = 0; i < r->nhosts && level < HOST_EXACT; i++) {
        const char *h = r->hosts[i];
        if (h == NULL)
            continue;
        if (h[0] == '*' && h[1] == '\0') {
            if (level < HOST_ANY)
                level = HOST_ANY;
        } else if (h[0] == '*' && h[1] == '.') {
            /* "*.suffix": one or more labels, then ".suffix". */
            size_t sl = strlen(h + 1); /* ".suffix" */
            if (level < HOST_WILDCARD && hlen > sl && host[hlen - sl - 1] != '.' &&
                memcmp(host + hlen - sl, h + 1, sl) == 0)
                level = HOST_WILDCARD;
        } else if (strcmp(h, host) == 0) {
            level = HOST_EXACT;
        }
    }
    return level;
}

/* Length of the prefix when it matches path segment-wise, else -1. */
static long prefix_match(const char *prefix, struct cut_slice path)
{
    if (prefix == NULL)
        return 0; /* no prefix: the whole route */
    size_t pl = strlen(prefix);
    if (pl > path.n || memcmp(path.p, prefix, pl) != 0)
        return -1;
    if (pl > 0 && prefix[pl - 1] == '/')
        return (long)pl;
    if (pl == path.n || path.p[pl] == '/' || path.p[pl] == '?')
        return (long)pl;
    return -1;
}

int route_match(const struct cfg *cfg, const char *host, struct cut_slice path)
{
    int best = -1, best_level = HOST_NONE;
    long best_len = -1;

    if (cfg == NULL || host == NULL)
        return -1;
    size_t hlen = strlen(host);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct cfg_route *r = &cfg->routes[i];
        int level = host_level(r, host, hlen);
        if (level == HOST_NONE || level < best_level)
            continue;
        if (level > best_level) {
            /* A better host level: routes at lower levels no longer count, matched or not. */
            best_level = level;
            best = -1;
            best_len = -1;
        }
        long len = prefix_match(r->path_prefix, path);
        if (len > best_len) { /* strict: the first route wins a tie */
            best = (int)i;
            best_len = len;
        }
    }
    return best;
}

/* ---- Addresses ------------------------------------------------------------------------- */

/* An address reduced to what matching needs; IPv4-mapped IPv6 becomes IPv4. */
struct addr_bytes {
    int family;
    uint8_t b[16];
};

static int addr_bytes_of(const struct sockaddr *sa, struct addr_bytes *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (sa == NULL)
        return CUT_EINVAL;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        a->family = AF_INET;
        memcpy(a->b, &s4->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *b = s6->sin6_addr.s6_addr;
        if (memcmp(b, mapped, 12) == 0) {
            a->family = AF_INET;
            memcpy(a->b, b + 12, 4);
        } else {
            a->family = AF_INET6;
            memcpy(a->b, b, 16);
        }
        return 0;
    }
    return CUT_EINVAL;
}

static int bits_equal(const uint8_t *x, const uint8_t *y, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(x, y, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (x[whole] & mask) == (y[whole] & mask);
}

static int cidr_has(const struct cfg_cidr *c, const struct addr_bytes *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (c->family == AF_INET)
        return a->family == AF_INET && c->prefix <= 32 && bits_equal(c->addr, a->b, c->prefix);
    if (c->family != AF_INET6 || c->prefix > 128)
        return 0; /* malformed entry: never trusted */
    if (a->family == AF_INET6)
        return bits_equal(c->addr, a->b, c->prefix);
    /* An IPv4 address against an IPv4-mapped network written as IPv6 (::ffff:10.0.0.0/104). */
    return c->prefix >= 96 && memcmp(c->addr, mapped, 12) == 0 &&
           bits_equal(c->addr + 12, a->b, c->prefix - 96);
}

int route_cidr_contains(const struct cfg_cidr_list *list, const struct sockaddr *addr)
{
    struct addr_bytes a;

    if (list == NULL || addr_bytes_of(addr, &a) != 0)
        return 0;
    for (size_t i = 0; i < list->n; i++)
        if (cidr_has(&list->v[i], &a))
            return 1;
    return 0;
}

int route_parse_addr(struct cut_slice text, struct sockaddr_storage *out)
{
    char buf[INET6_ADDRSTRLEN];
    const char *p = text.p;
    size_t n = text.n;

    memset(out, 0, sizeof(*out));
    if (p == NULL || n == 0 || memchr(p, '\0', n) != NULL)
        return CUT_EINVAL; /* inet_pton would stop at a NUL and accept what precedes it */
    if (p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (close == NULL)
            return CUT_EINVAL;
        size_t end = (size_t)(close - p) + 1;
        if (end < n && (p[end] != ':' || end + 1 == n || !port_ok(p + end + 1, n - end - 1)))
            return CUT_EINVAL;
        p++;
        n = end - 2;
    } else {
        const char *colon = memchr(p, ':', n);
        if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - p) - 1) == NULL) {
            /* Exactly one ':' : "IPv4:port". Two or more: a bare IPv6 address, no port. */
            size_t hn = (size_t)(colon - p);
            if (hn + 1 == n || !port_ok(colon + 1, n - hn - 1))
                return CUT_EINVAL;
            n = hn;
            if (n >= sizeof(buf))
                return CUT_EINVAL;
            memcpy(buf, p, n);
            buf[n] = '\0';
            struct sockaddr_in *s4 = (struct sockaddr_in *)out;
            if (inet_pton(AF_INET, buf, &s4->sin_addr) != 1)
                return CUT_EINVAL;
            s4->sin_family = AF_INET;
            return 0;
        }
    }
    if (n == 0 || n >= sizeof(buf))
        return CUT_EINVAL;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (text.p[0] != '[') {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        if (inet_pton(AF_INET, buf, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            return 0;
        }
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, buf, &s6->sin6_addr) != 1) {
        memset(out, 0, sizeof(*out));
        return CUT_EINVAL;
    }
    s6->sin6_family = AF_INET6;
    return 0;
}

int route_client_addr(const struct sockaddr *peer, struct cut_slice xff,
                      const struct cfg_cidr_list *trusted, char *out, size_t cap)
{
    struct sockaddr_storage hop, entry;

    if (peer == NULL || out == NULL || cap < INET6_ADDRSTRLEN)
        return CUT_EINVAL;
    if (xff.p == NULL || xff.n == 0 || !route_cidr_contains(trusted, peer))
        return addr_text(peer, out, cap) < 0 ? CUT_EINVAL : 0;

    /* hop is the nearest hop known so far; start with the (trusted) peer. */
    const struct sockaddr *last = peer;
    size_t end = xff.n;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff.p[start - 1] != ',')
            start--;
        struct cut_slice e = trim_ows((struct cut_slice){xff.p + start, end - start});
        if (e.n > 0) { /* empty fields ("a,, b") carry nothing: skip them */
            if (route_parse_addr(e, &entry) != 0)
                break; /* garbage: believe nothing further left */
            memcpy(&hop, &entry, sizeof(hop));
            last = (const struct sockaddr *)&hop;
            if (!route_cidr_contains(trusted, last))
                break; /* the first untrusted hop is the client */
        }
        if (start == 0)
            break; /* every entry trusted: the leftmost is the client */
        end = start - 1;
    }
    return addr_text(last, out, cap) < 0 ? CUT_EINVAL : 0;
}

/* ---- Cookies ----------------------------------------------------------------------------- */

int route_cookie_value(struct cut_slice cookie_header, const char *name, struct cut_slice *value)
{
    const char *p = cookie_header.p;
    size_t n = cookie_header.n, i = 0;

    if (p == NULL || name == NULL || name[0] == '\0')
        return 0;
    size_t nl = strlen(name);
    while (i < n) {
        size_t start = i;
        while (i < n && p[i] != ';')
            i++;
        struct cut_slice pair = trim_ows((struct cut_slice){p + start, i - start});
        i++; /* past ';' */
        const char *eq = memchr(pair.p, '=', pair.n);
        if (eq == NULL)
            continue;
        struct cut_slice k = trim_ows((struct cut_slice){pair.p, (size_t)(eq - pair.p)});
        if (k.n != nl || memcmp(k.p, name, nl) != 0)
            continue;
        struct cut_slice v =
            trim_ows((struct cut_slice){eq + 1, (size_t)(pair.p + pair.n - eq - 1)});
        if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"') {
            v.p++;
            v.n -= 2;
        }
        *value = v;
        return 1;
    }
    return 0;
}

/* ---- Pool choice ------------------------------------------------------------------------- */

static int pool_by_name(const struct cfg_route *r, struct cut_slice name)
{
    for (size_t i = 0; i < r->npools; i++) {
        const char *pn = r->pools[i].name;
        if (pn != NULL && strlen(pn) == name.n && memcmp(pn, name.p, name.n) == 0)
            return (int)i;
    }
    return -1;
}

int route_in_cohort(const struct route_pick_in *in)
{
    const struct route_cohort *c = in->cohort;
    const char *cc = in->country;
    if (c == NULL || c->ncountries == 0 || cc == NULL || cc[0] == '\0' || cc[1] == '\0' ||
        cc[2] != '\0')
        return 0;
    for (unsigned i = 0; i < c->ncountries && i < ROUTE_COHORT_MAX; i++)
        if (c->countries[i][0] == cc[0] && c->countries[i][1] == cc[1])
            return 1;
    return 0;
}

int route_pick_pool(const struct route_pick_in *in, struct balance_swrr *swrr,
                    enum route_reason *reason)
{
    const struct cfg_route *r = in->route;
    unsigned cfg_weights[BALANCE_MAX_POOLS];
    const unsigned *w = in->weights_bp;
    uint64_t total = 0;

    CUT_ASSERT(r != NULL && r->npools <= BALANCE_MAX_POOLS);
    unsigned n = (unsigned)r->npools;

    *reason = ROUTE_BY_WEIGHT;
    if (in->override_trusted && in->override_value.p != NULL) {
        struct cut_slice v = trim_ows(in->override_value);
        int idx = v.n > 0 ? pool_by_name(r, v) : -1;
        if (idx >= 0) { /* honoured even at weight 0: that is what an override is for */
            *reason = ROUTE_BY_OVERRIDE;
            return idx;
        }
        /* naming no pool of this route: ignored */
    }

    if (route_in_cohort(in)) { /* the cohort's own weights and round robin */
        w = in->cohort->weights_bp;
        if (in->cohort_swrr != NULL)
            swrr = in->cohort_swrr;
    }
    if (w == NULL) { /* no runtime weights yet: the configured ones */
        for (unsigned i = 0; i < n; i++)
            cfg_weights[i] = r->pools[i].weight_bp;
        w = cfg_weights;
    }
    for (unsigned i = 0; i < n; i++)
        total += w[i];
    if (total == 0)
        return -1;

    if (in->sticky_key.p != NULL && in->sticky_key.n > 0) {
        *reason = ROUTE_BY_STICKY;
        return balance_sticky_pool(balance_sticky_bucket(in->sticky_key.p, in->sticky_key.n), w, n);
    }
    return balance_swrr_next(swrr, w, n);
}

int route_retry_decide(const struct route_retry_in *in)
{
    if (in->resp_started || in->tries >= in->max_tries || in->elapsed_ms >= in->budget_ms)
        return 0;
    switch (in->fail) {
    case ROUTE_FAIL_CONNECT:
        return !in->body_sent; /* nothing was written: the body is still all there */
    case ROUTE_FAIL_UNPROCESSED:
        return 1;
    case ROUTE_FAIL_LOST:
        return in->idempotent && !in->body_sent;
    default:
        return 0;
    }
}

int route_failover_pool(const struct cfg_route *r, const unsigned *weights_bp, int current,
                        const uint8_t *can_serve, enum route_reason reason)
{
    CUT_ASSERT(r != NULL && r->npools <= CFG_MAX_POOLS);
    if (reason == ROUTE_BY_OVERRIDE)
        return -1;
    int best = -1;
    unsigned best_w = 0;
    for (unsigned p = 0; p < (unsigned)r->npools; p++) {
        if ((int)p == current || !can_serve[p])
            continue;
        unsigned w = weights_bp ? weights_bp[p] : r->pools[p].weight_bp;
        if (best < 0 || w > best_w) {
            best = (int)p;
            best_w = w;
        }
    }
    return best;
}

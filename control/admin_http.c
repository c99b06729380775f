/* admin_http.c - the admin API's pure decisions (contract in admin_http.h). */
#include "control/admin_http.h"
#include "core/cut.h"

#include <stdio.h>
#include <string.h>

static int slice_is(struct cut_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* The route name of "route=NAME": 1..ADMIN_HTTP_ROUTE_MAX characters of A-Z a-z 0-9 . _ - (the
 * configuration's rule for route names, so nothing needs decoding). Returns 0 or -1. */
static int parse_route_query(struct cut_slice q, char *route)
{
    static const char key[] = "route=";
    if (q.n <= sizeof key - 1 || memcmp(q.p, key, sizeof key - 1) != 0)
        return CUT_EINVAL;
    const char *v = q.p + sizeof key - 1;
    size_t n = q.n - (sizeof key - 1);
    if (n > ADMIN_HTTP_ROUTE_MAX)
        return CUT_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return CUT_EINVAL;
    }
    memcpy(route, v, n);
    route[n] = '\0';
    return 0;
}

enum admin_http_resource admin_http_resource(struct cut_slice method, struct cut_slice target,
                                             const char **allow, char *route)
{
    route[0] = '\0';
    *allow = NULL;
    const char *qm = memchr(target.p, '?', target.n);
    struct cut_slice path = {target.p, qm ? (size_t)(qm - target.p) : target.n};
    struct cut_slice query = {qm ? qm + 1 : NULL, qm ? target.n - path.n - 1 : 0};
    if (slice_is(path, "/v1/control")) {
        if (!slice_is(method, "POST")) {
            *allow = "POST";
            return ADMIN_HTTP_BAD_METHOD;
        }
        return qm ? ADMIN_HTTP_BAD_QUERY : ADMIN_HTTP_CONTROL;
    }
    if (slice_is(path, "/v1/status")) {
        if (!slice_is(method, "GET")) {
            *allow = "GET";
            return ADMIN_HTTP_BAD_METHOD;
        }
        if (qm && parse_route_query(query, route) < 0)
            return ADMIN_HTTP_BAD_QUERY;
        return ADMIN_HTTP_STATUS;
    }
    return ADMIN_HTTP_NOT_FOUND;
}

int admin_http_status_for(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {
        {"bad_request", 400},
        {"invalid_argument", 400},
        {"unsupported_version", 400},
        {"unknown_op", 400},
        {"denied", 403},
        {"forbidden", 403},
        {"not_found", 404},
        {"method_not_allowed", 405},
        {"conflict", 409},
        {"too_large", 413},
        {"busy", 503},
        {"store_unavailable", 503},
        {"internal", 500},
    };
    if (code == NULL)
        return 200;
    for (size_t i = 0; i < CUT_ARRAY_LEN(map); i++)
        if (strcmp(map[i].code, code) == 0)
            return map[i].status;
    return 500;
}

const char *admin_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Internal Server Error";
    }
}

enum cut_role admin_http_role_for(const struct cfg *cfg, const char *subject)
{
    if (subject == NULL || subject[0] == '\0')
        return CUT_ROLE_NONE;
    for (size_t i = 0; i < cfg->admin.nroles; i++) {
        const struct cfg_admin_role *r = &cfg->admin.roles[i];
        if (r->subject != NULL && strcmp(r->subject, subject) == 0)
            return r->role;
    }
    return CUT_ROLE_NONE;
}

size_t admin_http_head(char *buf, size_t cap, int status, size_t body_len, int close,
                       const char *allow)
{
    if (cap == 0)
        return 0;
    int n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "%s%s%s"
                     "%s"
                     "\r\n",
                     status, admin_http_reason(status), body_len, allow ? "Allow: " : "",
                     allow ? allow : "", allow ? "\r\n" : "", close ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

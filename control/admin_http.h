/* admin_http.h - the decisions of the HTTPS admin API that need no socket
 * (docs/control-protocol.md, "HTTPS transport"): which resource a request names, the HTTP status
 * that fits a control error code, the role of a client certificate subject, and the response head.
 *
 * Pure functions: no libevent, no OpenSSL, no global state; any thread (the server in admin.c
 * calls them on the control thread). Tested by tests/unit/test_admin_http.c.
 */
#ifndef CUT_ADMIN_HTTP_H
#define CUT_ADMIN_HTTP_H

#include <stddef.h>

#include "config/cfg.h"
#include "core/cut.h"

#define ADMIN_HTTP_MAX_BODY 65536u /* the control socket's request limit (64 KiB) */
#define ADMIN_HTTP_ROUTE_MAX 64    /* a route name in GET /v1/status?route=NAME */

enum admin_http_resource {
    ADMIN_HTTP_CONTROL,    /* POST /v1/control: one control request as the body */
    ADMIN_HTTP_STATUS,     /* GET /v1/status[?route=NAME]: the status op */
    ADMIN_HTTP_NOT_FOUND,  /* no such resource: 404 */
    ADMIN_HTTP_BAD_METHOD, /* the resource exists, the method does not: 405 (see *allow) */
    ADMIN_HTTP_BAD_QUERY,  /* /v1/status with a query other than route=NAME: 400 */
};

/* Which resource method + target (borrowed slices of the request line) name. For
 * ADMIN_HTTP_BAD_METHOD, *allow is the Allow header's value (static). For ADMIN_HTTP_STATUS,
 * route gets the route name (NUL-terminated, "" when none); route must hold
 * ADMIN_HTTP_ROUTE_MAX + 1 bytes. Targets are compared exactly: no percent-decoding, no dot
 * segments, no absolute form. */
enum admin_http_resource admin_http_resource(struct cut_slice method, struct cut_slice target,
                                             const char **allow, char *route);

/* The HTTP status for a control reply's error code: 200 for NULL (ok); 400 bad_request,
 * invalid_argument, unsupported_version, unknown_op; 403 denied, forbidden; 404 not_found;
 * 405 method_not_allowed; 409 conflict; 413 too_large; 503 busy; 500 internal and any code this
 * table does not know. */
int admin_http_status_for(const char *code);

/* The reason phrase of a status this API sends ("OK", "Forbidden", ...). Static. */
const char *admin_http_reason(int status);

/* The role of a verified client certificate subject: the first admin.roles rule whose subject
 * is exactly this string. CUT_ROLE_NONE when no rule matches (or subject is empty). cfg is
 * borrowed. */
enum cut_role admin_http_role_for(const struct cfg *cfg, const char *subject);

/* Writes the response head for a JSON body of body_len bytes into buf (always terminated when
 * cap > 0): status line, Content-Type, Content-Length, Cache-Control: no-store, Allow when allow
 * is not NULL, and Connection: close when close is set. Returns the head's length, or 0 when it
 * does not fit. */
size_t admin_http_head(char *buf, size_t cap, int status, size_t body_len, int close,
                       const char *allow);

#endif

/* test_admin_http.c - control/admin_http.c: resources and methods, error code -> HTTP status,
 * certificate subject -> role (through a parsed configuration), the response head. */
#include <criterion/criterion.h>
#include <string.h>

#include "config/cfg.h"
#include "control/admin_http.h"

static struct cut_slice cstr(const char *s)
{
    return (struct cut_slice){s, strlen(s)};
}

static enum admin_http_resource res(const char *method, const char *target, const char **allow,
                                    char *route)
{
    return admin_http_resource(cstr(method), cstr(target), allow, route);
}

Test(admin_http, resources_and_methods)
{
    const char *allow;
    char route[ADMIN_HTTP_ROUTE_MAX + 1];
    cr_assert_eq(res("POST", "/v1/control", &allow, route), ADMIN_HTTP_CONTROL);
    cr_assert_null(allow);
    cr_assert_eq(res("GET", "/v1/status", &allow, route), ADMIN_HTTP_STATUS);
    cr_assert_str_eq(route, "");
    cr_assert_eq(res("GET", "/v1/status?route=pay-ments.v2_x", &allow, route), ADMIN_HTTP_STATUS);
    cr_assert_str_eq(route, "pay-ments.v2_x");

    cr_assert_eq(res("GET", "/v1/control", &allow, route), ADMIN_HTTP_BAD_METHOD);
    cr_assert_str_eq(allow, "POST");
    cr_assert_eq(res("PUT", "/v1/control", &allow, route), ADMIN_HTTP_BAD_METHOD);
    cr_assert_eq(res("post", "/v1/control", &allow, route), ADMIN_HTTP_BAD_METHOD,
                 "methods are case-sensitive");
    cr_assert_eq(res("POST", "/v1/status", &allow, route), ADMIN_HTTP_BAD_METHOD);
    cr_assert_str_eq(allow, "GET");
    cr_assert_eq(res("HEAD", "/v1/status", &allow, route), ADMIN_HTTP_BAD_METHOD);

    const char *missing[] = {
        "/",          "/v1",         "/v1/",         "/v1/control/", "/v1/statusx",
        "/V1/status", "/v1//status", "/v1/./status", "/v1/%73tatus", "http://h/v1/status",
        "*",          "/v2/control"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
        cr_assert_eq(res("GET", missing[i], &allow, route), ADMIN_HTTP_NOT_FOUND, "%s", missing[i]);

    const char *bad_query[] = {"/v1/status?",          "/v1/status?route=",
                               "/v1/status?route=a b", "/v1/status?route=a%20b",
                               "/v1/status?pool=x",    "/v1/status?route=a&route=b",
                               "/v1/status?route=a/b"};
    for (size_t i = 0; i < sizeof bad_query / sizeof bad_query[0]; i++)
        cr_assert_eq(res("GET", bad_query[i], &allow, route), ADMIN_HTTP_BAD_QUERY, "%s",
                     bad_query[i]);
    cr_assert_eq(res("POST", "/v1/control?x=1", &allow, route), ADMIN_HTTP_BAD_QUERY);

    char longq[128] = "/v1/status?route=";
    memset(longq + strlen(longq), 'a', ADMIN_HTTP_ROUTE_MAX);
    cr_assert_eq(res("GET", longq, &allow, route), ADMIN_HTTP_STATUS, "64 characters are fine");
    strcat(longq, "a");
    cr_assert_eq(res("GET", longq, &allow, route), ADMIN_HTTP_BAD_QUERY, "65 are not");
}

Test(admin_http, status_for_error_codes)
{
    struct {
        const char *code;
        int status;
    } want[] = {
        {NULL, 200},
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
        {"internal", 500},
        {"something_new", 500},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_eq(admin_http_status_for(want[i].code), want[i].status, "%s",
                     want[i].code ? want[i].code : "(ok)");
    cr_assert_str_eq(admin_http_reason(403), "Forbidden");
    cr_assert_str_eq(admin_http_reason(413), "Content Too Large");
    cr_assert_str_eq(admin_http_reason(599), "Internal Server Error");
}

Test(admin_http, head)
{
    char buf[512];
    size_t n = admin_http_head(buf, sizeof buf, 403, 42, 0, NULL);
    cr_assert_eq(n, strlen(buf));
    cr_assert_str_eq(buf, "HTTP/1.1 403 Forbidden\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: 42\r\n"
                          "Cache-Control: no-store\r\n"
                          "\r\n");
    n = admin_http_head(buf, sizeof buf, 405, 7, 1, "POST");
    cr_assert_str_eq(buf, "HTTP/1.1 405 Method Not Allowed\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: 7\r\n"
                          "Cache-Control: no-store\r\n"
                          "Allow: POST\r\n"
                          "Connection: close\r\n"
                          "\r\n");
    cr_assert_eq(admin_http_head(buf, 20, 200, 1, 0, NULL), 0, "does not fit");
    cr_assert_str_eq(buf, "");
}

#define ADMIN_DOC(admin)                                                                           \
    "{\"listeners\":[{\"address\":\"127.0.0.1:8080\"}],\"routes\":[{\"name\":\"r\","               \
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},"                                    \
    "\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}},\"weights\":{\"blue\":50,\"green\":50}}],"    \
    "\"admin\":" admin "}"

#define ADMIN_TLS                                                                                  \
    "\"tls\":{\"certificates\":[{\"pem\":\"/c/tls.pem\"}],\"client_ca\":\"/c/ca.pem\"}"

static struct cfg *parse_ok(const char *doc)
{
    struct cfg *cfg = NULL;
    struct cfg_errors errs;
    int rc = cfg_parse(doc, strlen(doc), &cfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        cr_log_error("%s: %s", errs.v[i].path, errs.v[i].message);
    cr_assert_eq(rc, 0);
    cfg_errors_dispose(&errs);
    return cfg;
}

Test(admin_http, role_for_subject_is_an_exact_match)
{
    struct cfg *cfg = parse_ok(
        ADMIN_DOC("{\"address\":\"127.0.0.1:9443\"," ADMIN_TLS ",\"roles\":["
                  "{\"subject\":\"CN=release-pipeline,OU=Platform,O=Bank\",\"role\":\"deployer\"},"
                  "{\"subject\":\"CN=dashboard,OU=SRE,O=Bank\",\"role\":\"viewer\"},"
                  "{\"subject\":\"CN=Zo\\u00eb\\\\, Jr.,O=Bank\",\"role\":\"operator\"}]}"));
    cr_assert_eq(admin_http_role_for(cfg, "CN=release-pipeline,OU=Platform,O=Bank"),
                 CUT_ROLE_DEPLOYER);
    cr_assert_eq(admin_http_role_for(cfg, "CN=dashboard,OU=SRE,O=Bank"), CUT_ROLE_VIEWER);
    cr_assert_eq(admin_http_role_for(cfg, "CN=Zo\xc3\xab\\, Jr.,O=Bank"), CUT_ROLE_OPERATOR,
                 "UTF-8 and RFC 2253 escapes compare as written");
    const char *none[] = {"",
                          "CN=release-pipeline,OU=Platform,O=Bank ",
                          "cn=release-pipeline,ou=Platform,o=Bank",
                          "CN=release-pipeline,OU=Platform",
                          "CN=release-pipeline,OU=Platform,O=Bank,C=CH",
                          "O=Bank,OU=Platform,CN=release-pipeline",
                          "CN = release-pipeline, OU = Platform, O = Bank",
                          "CN=release-pipeline"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        cr_assert_eq(admin_http_role_for(cfg, none[i]), CUT_ROLE_NONE, "%s", none[i]);
    cr_assert_eq(admin_http_role_for(cfg, NULL), CUT_ROLE_NONE);
    cfg_free(cfg);
}

/* fuzz_admin_http.c - libFuzzer harness for the HTTPS admin API's request handling without a
 * socket (control/admin_http.h), following control/admin.c: pipelined request heads parsed with
 * the admin limits by h1_parse_request(), then admin_http_resource() on method and target (and
 * on raw slices of the input), the role of a client certificate subject, the status of a reply
 * code, and the response head. Checks: the resource's contract (a route name of 1..64
 * [A-Za-z0-9._-] characters, Allow only with BAD_METHOD), a response head that is one complete
 * HTTP/1.1 head with the right status and Content-Length which the project's own response
 * parser reads back. abort() otherwise.
 *
 * Input: one line (up to '\n') is the client certificate subject; the rest is what the client
 * sends.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "control/admin_http.h"
#include "core/cut.h"
#include "proxy/http/h1_parse.h"

#define ADMIN_MAX_LINE 4096 /* control/admin.c */
#define ADMIN_MAX_HEAD 16384
#define ADMIN_MAX_HEADERS 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "\n==FUZZ CHECK FAILED== admin_http: %s\n%s\n", what, detail ? detail : "");
    abort();
}

/* A configuration with admin roles, for admin_http_role_for(). */
static struct cfg *cfg;

static const char config[] =
    "{\"listeners\":[{\"address\":\"127.0.0.1:8080\"}],"
    "\"routes\":[{\"name\":\"r0\",\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},"
    "\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}},\"weights\":{\"blue\":50,\"green\":50}}],"
    "\"admin\":{\"address\":\"127.0.0.1:9443\","
    "\"tls\":{\"certificates\":[{\"pem\":\"/certs/admin/tls.pem\"}],"
    "\"client_ca\":\"/certs/corporate-ca.pem\"},"
    "\"roles\":[{\"subject\":\"CN=release-pipeline,OU=Platform,O=Bank\",\"role\":\"deployer\"},"
    "{\"subject\":\"CN=oncall-alice,OU=SRE,O=Bank\",\"role\":\"operator\"},"
    "{\"subject\":\"CN=dashboard,OU=SRE,O=Bank\",\"role\":\"viewer\"}]}}";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct cfg_errors errs;
    if (cfg_parse(config, strlen(config), &cfg, &errs) < 0) {
        cfg_errors_print(&errs, "fuzz_admin_http", stderr);
        fail("the harness's configuration is refused", NULL);
    }
    cfg_errors_dispose(&errs);
    return 0;
}

static void check_resource(struct cut_slice method, struct cut_slice target)
{
    const char *allow = (const char *)1;
    char route[ADMIN_HTTP_ROUTE_MAX + 1 + 8];
    memset(route, 'X', sizeof route);
    enum admin_http_resource res = admin_http_resource(method, target, &allow, route);
    if (memchr(route, '\0', ADMIN_HTTP_ROUTE_MAX + 1) == NULL)
        fail("route not terminated within ADMIN_HTTP_ROUTE_MAX + 1 bytes", NULL);
    if ((res == ADMIN_HTTP_BAD_METHOD) != (allow != NULL))
        fail("Allow set without BAD_METHOD, or missing with it", NULL);
    if (res != ADMIN_HTTP_STATUS && route[0])
        fail("a route name outside GET /v1/status", route);
    for (const char *r = route; *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= 'A' && *r <= 'Z') || (*r >= '0' && *r <= '9') ||
              *r == '.' || *r == '_' || *r == '-'))
            fail("a route name character outside [A-Za-z0-9._-]", route);
    if (res > ADMIN_HTTP_BAD_QUERY)
        fail("a resource outside the enum", NULL);
}

/* The response head for status, read back with h1_parse_response(). */
static void check_head(int status, size_t body_len, int close, const char *allow)
{
    char head[512];
    size_t n = admin_http_head(head, sizeof head, status, body_len, close, allow);
    if (n == 0 || n >= sizeof head || head[n] != '\0')
        fail("no response head", NULL);
    struct h1_limits lim = {8192, 8192, 16};
    struct h1_response resp;
    struct http_field f[16];
    int st = 0;
    int r = h1_parse_response(head, n, &lim, CUT_SLICE_LIT("GET"), &resp, f, 16, &st);
    if (r != (int)n)
        fail("the response head does not parse as exactly one head", head);
    if (resp.status != status || resp.body != H1_BODY_LENGTH || resp.content_length != body_len)
        fail("status or Content-Length differ", head);
    if (close == ((resp.conn_flags & H1_CF_KEEP_ALIVE) != 0))
        fail("Connection: close does not match", head);
    /* A buffer too small must give 0 and an empty string, never a cut head. */
    char small[32];
    if (admin_http_head(small, sizeof small, status, body_len, close, allow) != 0 || small[0])
        fail("a head cut to fit", small);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t slen = nl ? (size_t)(nl - in) : 0;
    char subject[CFG_ADMIN_SUBJECT_MAX + 1];
    if (slen > CFG_ADMIN_SUBJECT_MAX)
        slen = CFG_ADMIN_SUBJECT_MAX;
    memcpy(subject, in, slen);
    subject[slen] = '\0';
    enum cut_role role = admin_http_role_for(cfg, subject);
    if (role > CUT_ROLE_ADMIN || (!subject[0] && role != CUT_ROLE_NONE))
        fail("a role outside the enum, or a role for no subject", subject);
    const char *req = nl ? nl + 1 : in;
    size_t len = size - (size_t)(req - in);

    /* The raw bytes as method and target, split at the first space. */
    const char *sp = memchr(req, ' ', len);
    if (sp && sp > req && (size_t)(sp - req) + 1 < len)
        check_resource((struct cut_slice){req, (size_t)(sp - req)},
                       (struct cut_slice){sp + 1, len - (size_t)(sp - req) - 1});

    /* Pipelined requests as admin.c reads them. */
    const struct h1_limits lim = {ADMIN_MAX_LINE, ADMIN_MAX_HEAD, ADMIN_MAX_HEADERS};
    size_t off = 0;
    for (int i = 0; i < 8 && off < len; i++) {
        struct h1_request r;
        struct http_field fields[ADMIN_MAX_HEADERS];
        int status = 400;
        size_t avail = len - off;
        size_t look = avail < ADMIN_MAX_HEAD ? avail : ADMIN_MAX_HEAD;
        int n = h1_parse_request(req + off, look, &lim, &r, fields, ADMIN_MAX_HEADERS, &status);
        if (n == CUT_EAGAIN)
            break;
        if (n < 0) {
            check_head(status, 64, 1, NULL);
            break;
        }
        check_resource(r.method, r.target);
        const char *allow = NULL;
        char route[ADMIN_HTTP_ROUTE_MAX + 1];
        enum admin_http_resource res = admin_http_resource(r.method, r.target, &allow, route);
        int close = !(r.conn_flags & H1_CF_KEEP_ALIVE);
        int st = res == ADMIN_HTTP_NOT_FOUND    ? 404
                 : res == ADMIN_HTTP_BAD_METHOD ? 405
                 : res == ADMIN_HTTP_BAD_QUERY  ? 400
                                                : 200;
        check_head(st, (size_t)n, close, allow);
        uint64_t blen = r.body == H1_BODY_LENGTH ? r.content_length : 0;
        if (r.body == H1_BODY_CHUNKED || blen > ADMIN_HTTP_MAX_BODY || blen > avail - (size_t)n)
            break;
        /* The body as a reply code: any string maps to a status this API sends. */
        char code[32];
        size_t cl = blen < sizeof code - 1 ? (size_t)blen : sizeof code - 1;
        memcpy(code, req + off + n, cl);
        code[cl] = '\0';
        int cst = admin_http_status_for(cl ? code : NULL);
        if (cst < 200 || cst > 599 || !admin_http_reason(cst)[0])
            fail("a status outside the API's", code);
        check_head(cst, (size_t)blen, close, NULL);
        off += (size_t)n + (size_t)blen;
    }
    return 0;
}

/* test_config.c - config/: parsing, every rule's error path and message, dump round trips.
 *
 * Fixtures live in tests/fixtures/config/{valid,invalid}; the binary runs from the repo root.
 * Each invalid NAME.json has NAME.expect: one expected error path per line ("(root)" for ""),
 * optionally followed by " @LINE:COLUMN". Every expected path must be reported, and the number of
 * errors must equal the number of lines.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/cfg.h"
#include "core/cut.h"

#define FIXTURES "tests/fixtures/config"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = '\0';
    if (len != NULL)
        *len = got;
    return buf;
}

static int parse_str(const char *json, struct cfg **out, struct cfg_errors *errs)
{
    return cfg_parse(json, strlen(json), out, errs);
}

/* The index of the first error at path, or -1. */
static int find_error(const struct cfg_errors *errs, const char *path)
{
    for (size_t i = 0; i < errs->n; i++)
        if (strcmp(errs->v[i].path, path) == 0)
            return (int)i;
    return -1;
}

static const char *message_at(const struct cfg_errors *errs, const char *path)
{
    int i = find_error(errs, path);
    return i < 0 ? "(no error at this path)" : errs->v[i].message;
}

static void dump_errors(const char *name, const struct cfg_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        cr_log_info("%s: %s: %s", name, errs->v[i].path, errs->v[i].message);
}

/* A small valid document with one route; the %s is spliced into the route object. */
#define DOC_ROUTE(extra)                                                                           \
    "{\"listeners\":[{\"address\":\"127.0.0.1:8080\"}],\"routes\":[{\"name\":\"r\","               \
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},"                                    \
    "\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}}" extra "}]}"

#define DOC_ROOT(extra)                                                                            \
    "{\"listeners\":[{\"address\":\"127.0.0.1:8080\"}],\"routes\":[{\"name\":\"r\","               \
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},"                                    \
    "\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}},\"weights\":{\"blue\":50,\"green\":50}}"      \
    "]" extra "}"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- fixtures ---- */

static void check_invalid_fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), FIXTURES "/invalid/%s.json", name);
    size_t len;
    char *json = slurp(path, &len);
    cr_assert_not_null(json, "%s: cannot read", path);
    snprintf(path, sizeof(path), FIXTURES "/invalid/%s.expect", name);
    char *expect = slurp(path, NULL);
    cr_assert_not_null(expect, "%s: missing .expect file", name);

    struct cfg *cfg = (struct cfg *)1;
    struct cfg_errors errs;
    int rc = cfg_parse(json, len, &cfg, &errs);
    cr_expect_eq(rc, CUT_EINVAL, "%s: rc %d", name, rc);
    cr_expect_null(cfg, "%s: cfg set on failure", name);

    char *used = calloc(errs.n + 1, 1);
    size_t lines = 0;
    for (char *save = NULL, *line = strtok_r(expect, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        lines++;
        int want_line = 0, want_col = 0;
        char *at = strstr(line, " @");
        if (at != NULL) {
            sscanf(at + 2, "%d:%d", &want_line, &want_col);
            *at = '\0';
        }
        const char *want = strcmp(line, "(root)") == 0 ? "" : line;
        size_t i;
        for (i = 0; i < errs.n; i++)
            if (!used[i] && strcmp(errs.v[i].path, want) == 0)
                break;
        cr_expect_lt(i, errs.n, "%s: no error reported at \"%s\"", name, line);
        if (i < errs.n) {
            used[i] = 1;
            if (want_line > 0) {
                cr_expect_eq(errs.v[i].line, want_line, "%s: line %d, want %d", name,
                             errs.v[i].line, want_line);
                cr_expect_eq(errs.v[i].column, want_col, "%s: column %d, want %d", name,
                             errs.v[i].column, want_col);
            }
        }
    }
    cr_expect_eq(errs.n, lines, "%s: %zu errors reported, %zu expected", name, errs.n, lines);
    if (errs.n != lines)
        dump_errors(name, &errs);
    for (size_t i = 0; i < errs.n; i++)
        cr_expect(errs.v[i].message[0] != '\0', "%s: empty message", name);
    free(used);
    cfg_errors_dispose(&errs);
    free(expect);
    free(json);
}

Test(config_fixtures, invalid_documents_report_exactly_the_expected_paths)
{
    DIR *d = opendir(FIXTURES "/invalid");
    cr_assert_not_null(d, "run from the repository root");
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".json"))
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(strlen(e->d_name) - 5), e->d_name);
        check_invalid_fixture(name);
        count++;
    }
    closedir(d);
    cr_expect_geq(count, 30, "only %zu invalid fixtures", count);
}

Test(config_fixtures, valid_documents_parse_and_round_trip_through_dump)
{
    DIR *d = opendir(FIXTURES "/valid");
    cr_assert_not_null(d, "run from the repository root");
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".json"))
            continue;
        char path[512];
        snprintf(path, sizeof(path), FIXTURES "/valid/%s", e->d_name);
        struct cfg *cfg;
        struct cfg_errors errs;
        int rc = cfg_load(path, &cfg, &errs);
        cr_expect_eq(rc, 0, "%s: rc %d", e->d_name, rc);
        dump_errors(e->d_name, &errs);
        if (rc == 0) {
            char *a = cfg_dump(cfg);
            cr_assert_not_null(a);
            struct cfg *again;
            struct cfg_errors errs2;
            cr_expect_eq(parse_str(a, &again, &errs2), 0, "%s: dump does not parse:\n%s", e->d_name,
                         a);
            if (again != NULL) {
                char *b = cfg_dump(again);
                cr_expect_str_eq(a, b, "%s: dump is not stable", e->d_name);
                free(b);
                cfg_free(again);
            }
            cfg_errors_dispose(&errs2);
            free(a);
            cfg_free(cfg);
        }
        cfg_errors_dispose(&errs);
        count++;
    }
    closedir(d);
    cr_expect_geq(count, 5);
}

/* Every valid fixture NAME.json has its canonical dump in dump/NAME.json (written by the dump
 * before the schema table drove it; a trailing newline is ignored): the text must not change,
 * and parsing it must give the same text again (the fixed point). */
Test(config_fixtures, valid_documents_dump_to_their_golden_text)
{
    DIR *d = opendir(FIXTURES "/valid");
    cr_assert_not_null(d, "run from the repository root");
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".json"))
            continue;
        char path[512];
        snprintf(path, sizeof(path), FIXTURES "/dump/%s", e->d_name);
        char *golden = slurp(path, NULL);
        cr_expect_not_null(golden, "%s: no golden dump", path);
        snprintf(path, sizeof(path), FIXTURES "/valid/%s", e->d_name);
        struct cfg *cfg;
        struct cfg_errors errs;
        int rc = cfg_load(path, &cfg, &errs);
        cr_expect_eq(rc, 0, "%s: rc %d", e->d_name, rc);
        if (rc == 0 && golden != NULL) {
            size_t n = strlen(golden);
            if (n > 0 && golden[n - 1] == '\n')
                golden[n - 1] = '\0';
            char *a = cfg_dump(cfg);
            cr_assert_not_null(a);
            cr_expect_str_eq(a, golden, "%s: dump differs from dump/%s", e->d_name, e->d_name);
            struct cfg *again = NULL;
            struct cfg_errors errs2;
            cr_expect_eq(parse_str(golden, &again, &errs2), 0, "%s: golden does not parse",
                         e->d_name);
            if (again != NULL) {
                char *b = cfg_dump(again);
                cr_expect_str_eq(b, golden, "%s: golden is not a fixed point", e->d_name);
                free(b);
                cfg_free(again);
            }
            cfg_errors_dispose(&errs2);
            free(a);
            cfg_free(cfg);
            count++;
        }
        cfg_errors_dispose(&errs);
        free(golden);
    }
    closedir(d);
    cr_expect_geq(count, 15, "only %zu golden dumps compared", count);
}

Test(config_fixtures, shipped_configs_parse)
{
    const char *files[] = {"config/demo.json", "config/example.json"};
    for (size_t i = 0; i < CUT_ARRAY_LEN(files); i++) {
        struct cfg *cfg;
        struct cfg_errors errs;
        cr_expect_eq(cfg_load(files[i], &cfg, &errs), 0, "%s", files[i]);
        cfg_errors_print(&errs, files[i], stderr);
        cfg_free(cfg);
        cfg_errors_dispose(&errs);
    }
}

/* ---- what a valid document becomes ---- */

Test(config_values, defaults)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    cr_assert_eq(parse_str(DOC_ROOT(""), &cfg, &errs), 0);
    cr_expect_str_eq(cfg->cluster, "local");
    cr_expect_str_eq(cfg->region, "local");
    cr_expect_eq(cfg->workers, 0);
    cr_expect_eq(cfg->nlisteners, 1);
    cr_expect_str_eq(cfg->listeners[0].name, "listener0");
    cr_expect_eq(cfg->listeners[0].protocols, CFG_PROTO_HTTP1);
    cr_expect_eq(cfg->trusted_proxies.n, 0);
    const struct cfg_timeouts *t = &cfg->timeouts;
    cr_expect_eq(t->client_header, 10000);
    cr_expect_eq(t->client_idle, 120000);
    cr_expect_eq(t->upstream_connect, 2000);
    cr_expect_eq(t->upstream_header, 15000);
    cr_expect_eq(t->body_idle, 60000);
    cr_expect_eq(t->upstream_idle, 50000);
    cr_expect_eq(t->shutdown_delay, 0);
    cr_expect_eq(t->drain, 25000);
    cr_expect_eq(t->dns_refresh, 30000);
    const struct cfg_limits *l = &cfg->limits;
    cr_expect_eq(l->max_request_line, 8192);
    cr_expect_eq(l->max_header_bytes, 32768);
    cr_expect_eq(l->max_headers, 100);
    cr_expect_eq(l->max_connections, 10000);
    cr_expect_eq(l->upstream_idle_per_endpoint, 128);
    cr_expect_eq(l->buffer_bytes, 262144);
    cr_expect_eq(cfg->access_log.enabled, 1);
    const struct cfg_route *r = &cfg->routes[0];
    cr_expect_eq(r->nhosts, 0);
    cr_expect_str_eq(r->path_prefix, "/");
    cr_expect_eq(r->npools, 2);
    cr_expect_eq(r->pools[0].balance, CFG_BALANCE_LEAST_OUTSTANDING);
    cr_expect_eq(r->sticky.kind, CFG_STICKY_NONE);
    cr_expect_null(r->sticky.name);
    cr_expect_null(r->override.header);
    cr_expect_eq(r->override.trusted_peers.n, 0);
    cr_expect_eq(errs.n, 0);
    cfg_free(cfg);
    cfg_errors_dispose(&errs);
}

Test(config_values, demo)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    cr_assert_eq(cfg_load("config/demo.json", &cfg, &errs), 0);
    cr_expect_eq(cfg->workers, 2);
    cr_expect_str_eq(cfg->listeners[0].host, "127.0.0.1");
    cr_expect_eq(cfg->listeners[0].port, 18080);
    cr_expect_eq(cfg->trusted_proxies.n, 1);
    cr_expect_eq(cfg->trusted_proxies.v[0].prefix, 32);
    const struct cfg_route *r = &cfg->routes[0];
    cr_expect_str_eq(r->name, "demo");
    cr_expect_str_eq(r->pools[0].name, "blue");
    cr_expect_str_eq(r->pools[1].name, "green");
    cr_expect_eq(r->pools[0].weight_bp, 9000);
    cr_expect_eq(r->pools[1].weight_bp, 1000);
    cr_expect_str_eq(r->pools[0].endpoints[0].address, "127.0.0.1:18081");
    cr_expect_eq(r->pools[1].endpoints[0].port, 18082);
    cr_expect_str_eq(r->override.header, "x-cutover-pool");
    cr_expect_eq(r->override.trusted_peers.n, 1);
    cfg_free(cfg);
    cfg_errors_dispose(&errs);
}

Test(config_values, example)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    cr_assert_eq(cfg_load("config/example.json", &cfg, &errs), 0);
    cr_expect_eq(cfg->nroutes, 2);
    const struct cfg_route *api = &cfg->routes[0], *web = &cfg->routes[1];
    cr_expect_eq(api->sticky.kind, CFG_STICKY_HEADER);
    cr_expect_str_eq(api->sticky.name, "x-device-id");
    cr_expect_eq(web->sticky.kind, CFG_STICKY_CLIENT_IP);
    cr_expect_null(web->sticky.name);
    cr_expect_str_eq(api->pools[0].endpoints[0].host, "devices-api-blue.prod.svc.cluster.local");
    cr_expect_eq(web->pools[0].weight_bp, 8750);
    cr_expect_eq(web->pools[1].weight_bp, 1250);
    cr_expect_eq(web->pools[1].balance, CFG_BALANCE_ROUND_ROBIN);
    cr_expect_eq(cfg->trusted_proxies.v[0].family, AF_INET);
    cr_expect_eq(cfg->trusted_proxies.v[0].prefix, 24);
    const uint8_t net[4] = {10, 10, 0, 0};
    cr_expect_arr_eq(cfg->trusted_proxies.v[0].addr, net, 4);
    cfg_free(cfg);
    cfg_errors_dispose(&errs);
}

Test(config_values, weights_become_basis_points)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    const char *doc =
        "{\"listeners\":[{\"address\":\"127.0.0.1:1\"}],\"routes\":[{\"name\":\"r\",\"pools\":{"
        "\"a\":{\"endpoints\":[\"h:1\"]},\"b\":{\"endpoints\":[\"h:1\"]},"
        "\"c\":{\"endpoints\":[\"h:1\"]},\"d\":{\"endpoints\":[\"h:1\"]}},"
        "\"weights\":{\"d\":0.01,\"c\":12.34,\"b\":0,\"a\":87.65}}]}";
    cr_assert_eq(parse_str(doc, &cfg, &errs), 0);
    const struct cfg_route *r = &cfg->routes[0];
    cr_expect_eq(r->pools[0].weight_bp, 8765);
    cr_expect_eq(r->pools[1].weight_bp, 0);
    cr_expect_eq(r->pools[2].weight_bp, 1234);
    cr_expect_eq(r->pools[3].weight_bp, 1);
    cr_expect_eq(cfg_route_pool_index(r, "c"), 2);
    cr_expect_eq(cfg_route_pool_index(r, "e"), -1);
    char *text = cfg_dump(cfg);
    cr_expect_not_null(strstr(text, "\"c\": 12.34"), "%s", text);
    cr_expect_not_null(strstr(text, "\"d\": 0.01"), "%s", text);
    cr_expect_not_null(strstr(text, "\"b\": 0,"), "%s", text);
    free(text);
    cfg_free(cfg);
    cfg_errors_dispose(&errs);
}

Test(config_values, names_are_lower_cased_where_they_are_case_insensitive)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    const char *doc = DOC_ROUTE(
        ",\"hosts\":[\"API.Example.COM\",\"*.Example.Org\",\"*\"],\"weights\":{\"blue\":50,"
        "\"green\":50},\"sticky\":{\"header\":\"X-Device-ID\"},"
        "\"override\":{\"header\":\"X-Cutover-Pool\",\"trusted_peers\":[\"::1\"]}");
    cr_assert_eq(parse_str(doc, &cfg, &errs), 0);
    const struct cfg_route *r = &cfg->routes[0];
    cr_expect_str_eq(r->hosts[0], "api.example.com");
    cr_expect_str_eq(r->hosts[1], "*.example.org");
    cr_expect_str_eq(r->hosts[2], "*");
    cr_expect_str_eq(r->sticky.name, "x-device-id");
    cr_expect_str_eq(r->override.header, "x-cutover-pool");
    cr_expect_eq(r->override.trusted_peers.v[0].family, AF_INET6);
    cr_expect_eq(r->override.trusted_peers.v[0].prefix, 128);
    cfg_free(cfg);
    cfg_errors_dispose(&errs);

    doc =
        DOC_ROUTE(",\"weights\":{\"blue\":50,\"green\":50},\"sticky\":{\"cookie\":\"SessionId\"}");
    cr_assert_eq(parse_str(doc, &cfg, &errs), 0);
    cr_expect_eq(cfg->routes[0].sticky.kind, CFG_STICKY_COOKIE);
    cr_expect_str_eq(cfg->routes[0].sticky.name, "SessionId", "cookie names are case-sensitive");
    cfg_free(cfg);
    cfg_errors_dispose(&errs);
}

Test(config_values, addresses)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    const char *doc =
        "{\"listeners\":[{\"address\":\"[0:0::1]:443\"},{\"address\":\"0.0.0.0:80\"}],"
        "\"routes\":[{\"name\":\"r\",\"pools\":{\"blue\":{\"endpoints\":[\"[FD00::A]:80\","
        "\"Svc-1.NS.svc.cluster.local:8080\",\"10.0.0.1:65535\"]},\"green\":{\"endpoints\":"
        "[\"x:1\"]}},\"weights\":{\"blue\":100,\"green\":0}}]}";
    cr_assert_eq(parse_str(doc, &cfg, &errs), 0);
    cr_expect_str_eq(cfg->listeners[0].host, "::1");
    cr_expect_str_eq(cfg->listeners[0].address, "[0:0::1]:443");
    cr_expect_eq(cfg->listeners[0].port, 443);
    cr_expect_str_eq(cfg->listeners[1].name, "listener1");
    const struct cfg_pool *p = &cfg->routes[0].pools[0];
    cr_expect_str_eq(p->endpoints[0].host, "fd00::a");
    cr_expect_str_eq(p->endpoints[0].address, "[FD00::A]:80");
    cr_expect_str_eq(p->endpoints[1].host, "svc-1.ns.svc.cluster.local");
    cr_expect_eq(p->endpoints[1].port, 8080);
    cr_expect_eq(p->endpoints[2].port, 65535);
    cfg_free(cfg);
    cfg_errors_dispose(&errs);
}

Test(config_values, bounds_are_inclusive)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    const char *doc = DOC_ROOT(
        ",\"workers\":256,\"timeouts\":{\"client_header_ms\":1,\"client_idle_ms\":86400000,"
        "\"shutdown_delay_ms\":600000},\"limits\":{\"max_request_line\":65536,"
        "\"max_header_bytes\":1048576,\"max_headers\":8,\"max_connections\":1000000,"
        "\"upstream_idle_per_endpoint\":0,\"buffer_bytes\":67108864}");
    cr_assert_eq(parse_str(doc, &cfg, &errs), 0);
    dump_errors("bounds", &errs);
    cr_expect_eq(cfg->workers, 256);
    cr_expect_eq(cfg->timeouts.client_idle, 86400000u);
    cr_expect_eq(cfg->timeouts.shutdown_delay, 600000u);
    cr_expect_eq(cfg->limits.max_header_bytes, 1048576u);
    cr_expect_eq(cfg->limits.upstream_idle_per_endpoint, 0);
    cfg_free(cfg);
    cfg_errors_dispose(&errs);
}

Test(config_values, a_specific_host_and_any_host_may_share_a_prefix)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    const char *doc =
        "{\"listeners\":[{\"address\":\"127.0.0.1:1\"}],\"routes\":["
        "{\"name\":\"a\",\"pools\":{\"b\":{\"endpoints\":[\"h:1\"]},\"g\":{\"endpoints\":[\"h:2\"]}"
        "},"
        "\"weights\":{\"b\":100,\"g\":0}},"
        "{\"name\":\"c\",\"hosts\":[\"x.com\"],\"pools\":{\"b\":{\"endpoints\":[\"h:1\"]},"
        "\"g\":{\"endpoints\":[\"h:2\"]}},\"weights\":{\"b\":100,\"g\":0}},"
        "{\"name\":\"d\",\"hosts\":[\"*.x.com\"],\"pools\":{\"b\":{\"endpoints\":[\"h:1\"]},"
        "\"g\":{\"endpoints\":[\"h:2\"]}},\"weights\":{\"b\":100,\"g\":0}}]}";
    cr_expect_eq(parse_str(doc, &cfg, &errs), 0);
    dump_errors("share", &errs);
    cfg_free(cfg);
    cfg_errors_dispose(&errs);
}

Test(config_values, weights_may_come_before_pools)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    const char *doc =
        "{\"routes\":[{\"weights\":{\"green\":25,\"blue\":75},\"name\":\"r\",\"pools\":{"
        "\"blue\":{\"endpoints\":[\"h:1\"]},\"green\":{\"endpoints\":[\"h:2\"]}}}],"
        "\"listeners\":[{\"address\":\"127.0.0.1:1\"}]}";
    cr_assert_eq(parse_str(doc, &cfg, &errs), 0);
    cr_expect_eq(cfg->routes[0].pools[0].weight_bp, 7500);
    cr_expect_eq(cfg->routes[0].pools[1].weight_bp, 2500);
    cfg_free(cfg);
    cfg_errors_dispose(&errs);
}

/* ---- messages ---- */

struct msg_case {
    const char *doc, *path, *message;
};

Test(config_messages, are_short_and_specific)
{
    const struct msg_case cases[] = {
        {DOC_ROOT(",\"timeouts\":{\"client_idle_ms\":0}"), "timeouts.client_idle_ms",
         "must be between 1 and 86400000"},
        {DOC_ROOT(",\"bogus\":1"), "bogus", "unknown key"},
        {DOC_ROOT(",\"cluster\":5"), "cluster", "expected a string"},
        {DOC_ROOT(",\"workers\":2.0"), "workers", "expected an integer"},
        {DOC_ROOT(",\"access_log\":{\"enabled\":1}"), "access_log.enabled",
         "expected true or false"},
        {DOC_ROUTE(",\"weights\":{\"blue\":60,\"green\":39.5}"), "routes[0].weights",
         "weights sum to 99.5, must be 100"},
        {DOC_ROUTE(",\"weights\":{\"blue\":60,\"green\":40.01}"), "routes[0].weights",
         "weights sum to 100.01, must be 100"},
        {DOC_ROUTE(",\"weights\":{\"blue\":50,\"green\":50,\"purple\":0}"),
         "routes[0].weights.purple", "no such pool"},
        {DOC_ROUTE(",\"weights\":{\"blue\":100}"), "routes[0].weights",
         "missing weight for pool \"green\""},
        {DOC_ROUTE(",\"weights\":{\"blue\":49.995,\"green\":50.005}"), "routes[0].weights.blue",
         "must have at most two decimal places"},
        {DOC_ROUTE(",\"weights\":{\"blue\":-1,\"green\":101}"), "routes[0].weights.blue",
         "must be between 0 and 100"},
        {DOC_ROUTE(",\"weights\":{\"blue\":true,\"green\":100}"), "routes[0].weights.blue",
         "expected a number"},
        {DOC_ROUTE(""), "routes[0]", "missing required key \"weights\""},
        {DOC_ROOT(",\"trusted_proxies\":[\"10.10.0.1/24\"]"), "trusted_proxies[0]",
         "host bits set beyond the /24 prefix (the network is 10.10.0.0/24)"},
        {DOC_ROOT(",\"trusted_proxies\":[\"10.0.0.0/40\"]"), "trusted_proxies[0]",
         "prefix length must be between 0 and 32"},
        {DOC_ROOT(",\"limits\":{\"max_request_line\":16384,\"max_header_bytes\":8192}"),
         "limits.max_header_bytes", "must be at least max_request_line (16384)"},
        {DOC_ROUTE(",\"weights\":{\"blue\":50,\"green\":50},\"outlier_detection\":"
                   "{\"base_ejection_ms\":2000,\"max_ejection_ms\":1000}"),
         "routes[0].outlier_detection.max_ejection_ms", "must not be below base_ejection_ms"},
        {DOC_ROUTE(",\"weights\":{\"blue\":50,\"green\":50},\"sticky\":{\"header\":\"a\","
                   "\"cookie\":\"b\"}"),
         "routes[0].sticky", "must have exactly one of \"header\", \"cookie\", \"client_address\""},
        {DOC_ROUTE(",\"weights\":{\"blue\":50,\"green\":50},\"override\":{\"header\":\"x\"}"),
         "routes[0].override", "missing required key \"trusted_peers\""},
        {DOC_ROUTE(",\"weights\":{\"blue\":50,\"green\":50},\"path_prefix\":\"api\""),
         "routes[0].path_prefix", "must start with \"/\""},
        {"{\"listeners\":[{\"address\":\"localhost:80\"}]}", "listeners[0].address",
         "host must be a numeric IPv4 or [IPv6] address"},
        {"{\"listeners\":[{\"address\":\"127.0.0.1:0\"}]}", "listeners[0].address",
         "port must be between 1 and 65535"},
    };
    for (size_t i = 0; i < CUT_ARRAY_LEN(cases); i++) {
        struct cfg *cfg;
        struct cfg_errors errs;
        cr_expect_eq(parse_str(cases[i].doc, &cfg, &errs), CUT_EINVAL, "case %zu", i);
        cr_expect_str_eq(message_at(&errs, cases[i].path), cases[i].message, "case %zu (%s)", i,
                         cases[i].path);
        cfg_errors_dispose(&errs);
    }
}

Test(config_messages, duplicates_name_the_first_occurrence)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    const char *doc =
        "{\"listeners\":[{\"address\":\"127.0.0.1:1\"}],\"routes\":["
        "{\"name\":\"a\",\"hosts\":[\"x.com\"],\"pools\":{\"b\":{\"endpoints\":[\"h:1\"]},"
        "\"g\":{\"endpoints\":[\"h:2\",\"H:2\"]}},\"weights\":{\"b\":100,\"g\":0}},"
        "{\"name\":\"b\",\"hosts\":[\"X.com\"],\"pools\":{\"b\":{\"endpoints\":[\"h:1\"]},"
        "\"g\":{\"endpoints\":[\"h:2\"]}},\"weights\":{\"b\":100,\"g\":0}}]}";
    cr_assert_eq(parse_str(doc, &cfg, &errs), CUT_EINVAL);
    cr_expect_eq(errs.n, 2);
    cr_expect_str_eq(message_at(&errs, "routes[0].pools.g.endpoints[1]"),
                     "duplicate endpoint (same as endpoints[0])");
    cr_expect_str_eq(message_at(&errs, "routes[1]"),
                     "duplicate match: host \"x.com\" with path_prefix \"/\" is already routes[0]");
    cfg_errors_dispose(&errs);
}

Test(config_messages, syntax_errors_carry_line_and_column)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    cr_assert_eq(parse_str("{\n  \"workers\": 1,\n  \"workers\": 2\n}", &cfg, &errs), CUT_EINVAL);
    cr_assert_eq(errs.n, 1);
    cr_expect_str_eq(errs.v[0].path, "");
    cr_expect_eq(errs.v[0].line, 3);
    cr_expect_not_null(strstr(errs.v[0].message, "duplicate"), "%s", errs.v[0].message);
    cfg_errors_dispose(&errs);

    cr_assert_eq(parse_str("{\"cluster\": \"a\\u0000b\"}", &cfg, &errs), CUT_EINVAL);
    cr_expect_eq(errs.n, 1, "NUL in a string is refused by the JSON reader");
    cfg_errors_dispose(&errs);
}

Test(config_messages, print_format)
{
    struct cfg *cfg;
    struct cfg_errors errs;
    cr_assert_eq(parse_str("{\n  \"workers\": 1\n  \"x\": 2\n}", &cfg, &errs), CUT_EINVAL);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cfg_errors_print(&errs, "c.json", f);
    fclose(f);
    char want[512];
    snprintf(want, sizeof(want), "c.json: (root): %s (line %d, column %d)\n", errs.v[0].message,
             errs.v[0].line, errs.v[0].column);
    cr_expect_str_eq(buf, want);
    cr_expect_eq(errs.v[0].line, 3);
    free(buf);
    cfg_errors_dispose(&errs);

    cr_assert_eq(parse_str(DOC_ROOT(",\"workers\":-1"), &cfg, &errs), CUT_EINVAL);
    f = open_memstream(&buf, &len);
    cfg_errors_print(&errs, NULL, f);
    fclose(f);
    cr_expect_str_eq(buf, "workers: must be between 0 and 256\n");
    free(buf);
    cfg_errors_dispose(&errs);
}

Test(config_messages, load_failure_is_one_root_error)
{
    struct cfg *cfg = (struct cfg *)1;
    struct cfg_errors errs;
    int rc = cfg_load(FIXTURES "/no-such-file.json", &cfg, &errs);
    cr_expect_eq(rc, CUT_EIO);
    cr_expect_null(cfg);
    cr_assert_eq(errs.n, 1);
    cr_expect_str_eq(errs.v[0].path, "");
    cr_expect_str_eq(errs.v[0].message, "cannot read: No such file or directory");
    cfg_errors_dispose(&errs);
}

Test(config_messages, route_count_is_bounded)
{
    size_t n = 1025, cap = n * 200 + 256, len = 0;
    char *doc = malloc(cap);
    len += (size_t)snprintf(doc + len, cap - len,
                            "{\"listeners\":[{\"address\":\"127.0.0.1:1\"}],\"routes\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(doc + len, cap - len,
                                "%s{\"name\":\"r%zu\",\"path_prefix\":\"/%zu\",\"pools\":{\"b\":"
                                "{\"endpoints\":[\"h:1\"]},\"g\":{\"endpoints\":[\"h:2\"]}},"
                                "\"weights\":{\"b\":50,\"g\":50}}",
                                i ? "," : "", i, i);
    snprintf(doc + len, cap - len, "]}");
    struct cfg *cfg;
    struct cfg_errors errs;
    cr_expect_eq(parse_str(doc, &cfg, &errs), CUT_EINVAL);
    cr_expect_eq(errs.n, 1);
    cr_expect_str_eq(message_at(&errs, "routes"), "must have between 1 and 1024 routes");
    cfg_errors_dispose(&errs);
    free(doc);
}

/* ---- small API ---- */

Test(config_api, free_and_dispose_accept_empty)
{
    cfg_free(NULL);
    struct cfg_errors errs = {0};
    cfg_errors_dispose(&errs);
    cr_expect_eq(cfg_errors_add(&errs, "a.b", 0, 0, "n=%d", 5), 0);
    cr_expect_eq(errs.n, 1);
    cr_expect_str_eq(errs.v[0].message, "n=5");
    cfg_errors_dispose(&errs);
    cr_expect_eq(errs.n, 0);
    cr_expect_null(errs.v);
}

Test(config_api, validate_runs_on_a_hand_built_cfg)
{
    struct cfg_listener ls[2] = {
        {.name = "a", .host = "127.0.0.1", .port = 80},
        {.name = "a", .host = "127.0.0.1", .port = 80},
    };
    struct cfg cfg = {.listeners = ls, .nlisteners = 2};
    struct cfg_errors errs = {0};
    cr_expect_eq(cfg_validate(&cfg, &errs), CUT_EINVAL);
    cr_expect_eq(errs.n, 2);
    cr_expect_geq(find_error(&errs, "listeners[1].name"), 0);
    cr_expect_geq(find_error(&errs, "listeners[1].address"), 0);
    cfg_errors_dispose(&errs);
}

/* The rules between values live in cfg_validate.c, so they also hold for a cfg built by hand. */
Test(config_api, validate_checks_the_rules_between_values)
{
    struct cfg_upstream_tls tls = {.ca = "/c/ca.pem", .min_version = 12};
    struct cfg_route r = {.name = "r", .npools = 2};
    r.pools[0] = (struct cfg_pool){.name = "blue", .protocol = CFG_UP_H2,
                                   .health_check = {.enabled = 1, .interval_ms = 1000,
                                                    .timeout_ms = 1000}};
    r.pools[1] = (struct cfg_pool){.name = "green", .protocol = CFG_UP_H2C, .tls = &tls};
    r.outlier = (struct cfg_outlier){.enabled = 1, .base_ejection_ms = 500, .max_ejection_ms = 400};
    struct cfg cfg = {.routes = &r, .nroutes = 1,
                      .limits = {.max_request_line = 4096, .max_header_bytes = 2048}};
    struct cfg_errors errs = {0};
    cr_expect_eq(cfg_validate(&cfg, &errs), CUT_EINVAL);
    cr_expect_eq(errs.n, 5);
    cr_expect_str_eq(message_at(&errs, "limits.max_header_bytes"),
                     "must be at least max_request_line (4096)");
    cr_expect_str_eq(message_at(&errs, "routes[0].pools.blue.health_check.timeout_ms"),
                     "must be shorter than interval_ms (1000)");
    cr_expect_str_eq(message_at(&errs, "routes[0].pools.blue.protocol"),
                     "\"h2\" is negotiated with TLS ALPN: add \"tls\" (or use \"h2c\" for "
                     "cleartext HTTP/2)");
    cr_expect_str_eq(message_at(&errs, "routes[0].pools.green.protocol"),
                     "\"h2c\" is cleartext HTTP/2: use \"h2\" with \"tls\"");
    cr_expect_str_eq(message_at(&errs, "routes[0].outlier_detection.max_ejection_ms"),
                     "must not be below base_ejection_ms");
    cfg_errors_dispose(&errs);

    /* A limits object the parse already found malformed is not judged again. */
    cr_expect_eq(cfg_errors_add(&errs, "limits.max_headers", 0, 0, "expected an integer"), 0);
    r.npools = 0;
    r.outlier.enabled = 0;
    cr_expect_eq(cfg_validate(&cfg, &errs), 0);
    cr_expect_eq(errs.n, 1);
    cfg_errors_dispose(&errs);
}

/* ---- the admin section ---- */

#define ADMIN_DOC(admin)                                                                           \
    "{\"listeners\":[{\"address\":\"127.0.0.1:8080\"}],\"routes\":[{\"name\":\"r\","               \
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},"                                    \
    "\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}},\"weights\":{\"blue\":50,\"green\":50}}],"    \
    "\"admin\":" admin "}"

#define ADMIN_TLS                                                                                  \
    "\"tls\":{\"certificates\":[{\"pem\":\"/c/tls.pem\"}],\"client_ca\":\"/c/ca.pem\"}"

static struct cfg *admin_parse_ok(const char *doc)
{
    struct cfg *cfg = NULL;
    struct cfg_errors errs;
    int rc = cfg_parse(doc, strlen(doc), &cfg, &errs);
    dump_errors("admin", &errs);
    cr_assert_eq(rc, 0);
    cfg_errors_dispose(&errs);
    return cfg;
}

Test(config_admin, defaults_dump_and_required_client_certificates)
{
    struct cfg *cfg = admin_parse_ok(ADMIN_DOC("{\"address\":\"127.0.0.1:9443\"," ADMIN_TLS "}"));
    const struct cfg_admin *a = &cfg->admin;
    cr_assert_str_eq(a->address, "127.0.0.1:9443");
    cr_assert_str_eq(a->host, "127.0.0.1");
    cr_assert_eq(a->port, 9443);
    cr_assert_eq(a->tls->client_auth, CFG_CLIENT_AUTH_REQUIRED, "required by default");
    cr_assert_eq(a->tls->min_version, 12);
    cr_assert_eq(a->tls->nalpn, 1);
    cr_assert_eq(a->tls->alpn[0], CFG_ALPN_HTTP11);
    cr_assert_eq(a->nroles, 0);
    cr_assert_eq(a->max_clients, 16);
    cr_assert_eq(a->request_timeout, 10000);
    cr_assert_eq(a->idle_timeout, 60000);

    /* the dump writes the section back, and it parses to the same text */
    char *text = cfg_dump(cfg);
    cr_assert_not_null(text);
    cr_assert_not_null(strstr(text, "\"client_auth\": \"required\""), "%s", text);
    struct cfg *again = admin_parse_ok(text);
    char *text2 = cfg_dump(again);
    cr_assert_str_eq(text, text2);
    free(text);
    free(text2);
    cfg_free(again);
    cfg_free(cfg);

    /* without the section there is no admin API and the dump has none */
    cfg = admin_parse_ok("{\"listeners\":[{\"address\":\"127.0.0.1:8080\"}],\"routes\":[{\"name\":\"r\","
                   "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},"
                   "\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}},"
                   "\"weights\":{\"blue\":50,\"green\":50}}]}");
    cr_assert_null(cfg->admin.address);
    cr_assert_null(cfg->admin.tls);
    text = cfg_dump(cfg);
    cr_assert_null(strstr(text, "\"admin\""));
    free(text);
    cfg_free(cfg);
}

/* Every way of making client certificates optional is refused, each at its path. */
Test(config_admin, refuses_optional_client_certificates)
{
    const char *docs[] = {
        ADMIN_DOC("{\"address\":\"127.0.0.1:9443\",\"tls\":{\"certificates\":[{\"pem\":\"/c\"}],"
                  "\"client_auth\":\"none\"}}"),
        ADMIN_DOC("{\"address\":\"127.0.0.1:9443\",\"tls\":{\"certificates\":[{\"pem\":\"/c\"}],"
                  "\"client_auth\":\"optional\",\"client_ca\":\"/ca\"}}"),
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        struct cfg *cfg = NULL;
        struct cfg_errors errs;
        cr_assert_eq(cfg_parse(docs[i], strlen(docs[i]), &cfg, &errs), CUT_EINVAL);
        cr_assert_null(cfg);
        int found = 0;
        for (size_t k = 0; k < errs.n; k++)
            found |= strcmp(errs.v[k].path, "admin.tls.client_auth") == 0 &&
                     strstr(errs.v[k].message, "required") != NULL;
        cr_assert(found, "doc %zu: no error at admin.tls.client_auth", i);
        cfg_errors_dispose(&errs);
    }
    /* no tls at all */
    const char *doc = ADMIN_DOC("{\"address\":\"127.0.0.1:9443\"}");
    struct cfg *cfg = NULL;
    struct cfg_errors errs;
    cr_assert_eq(cfg_parse(doc, strlen(doc), &cfg, &errs), CUT_EINVAL);
    cr_assert_eq(errs.n, 1);
    cr_assert_str_eq(errs.v[0].path, "admin");
    cr_assert_str_eq(errs.v[0].message, "missing required key \"tls\"");
    cfg_errors_dispose(&errs);
}

/* ---- issue 11: numbers that do not fit, and the health check's default timeout ---- */

/* A document whose route "r" has a watchdog with max_5xx_percent spliced in. */
#define DOC_WATCHDOG(pct)                                                                          \
    DOC_ROUTE(",\"weights\":{\"blue\":50,\"green\":50},\"watchdog\":{\"max_5xx_percent\":" pct "}")

/* Out of range, the conversion to basis points would be undefined behaviour (a UBSan build with
 * float-cast-overflow aborts): every such value is refused at its path before it is converted. */
Test(config_issue11, watchdog_percent_out_of_range_is_refused_before_conversion)
{
    const char *bad[] = {"1e300", "-1e300", "-5",   "-0.5",  "100.01", "4294967296",
                         "1e10",  "12.345", "true", "\"5\"", "null"};
    for (size_t i = 0; i < CUT_ARRAY_LEN(bad); i++) {
        char doc[1024];
        struct cfg *cfg = NULL;
        struct cfg_errors errs;
        snprintf(doc, sizeof doc, DOC_WATCHDOG("%s"), bad[i]);
        cr_expect_eq(parse_str(doc, &cfg, &errs), CUT_EINVAL, "%s", bad[i]);
        cr_expect_null(cfg, "%s", bad[i]);
        cr_expect_eq(errs.n, 1, "%s: %zu errors", bad[i], errs.n);
        cr_expect_str_eq(message_at(&errs, "routes[0].watchdog.max_5xx_percent"),
                         "must be a percentage between 0 and 100 with at most two decimals", "%s",
                         bad[i]);
        cfg_errors_dispose(&errs);
    }
    const struct {
        const char *v;
        unsigned bp;
    } good[] = {{"0", 0}, {"2.5", 250}, {"12.34", 1234}, {"100", 10000}, {"1e-300", 0}};
    for (size_t i = 0; i < CUT_ARRAY_LEN(good); i++) {
        char doc[1024];
        struct cfg *cfg = NULL;
        struct cfg_errors errs;
        snprintf(doc, sizeof doc, DOC_WATCHDOG("%s"), good[i].v);
        cr_assert_eq(parse_str(doc, &cfg, &errs), 0, "%s", good[i].v);
        cr_expect_eq(cfg->routes[0].watchdog.max_5xx_bp, good[i].bp, "%s", good[i].v);
        cfg_free(cfg);
        cfg_errors_dispose(&errs);
    }
}

/* A pool "blue" with a health_check object spliced in. */
#define DOC_HEALTH(hc)                                                                             \
    "{\"listeners\":[{\"address\":\"127.0.0.1:8080\"}],\"routes\":[{\"name\":\"r\","               \
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"],\"health_check\":{\"path\":\"/h\"" hc \
    "}},\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}},\"weights\":{\"blue\":50,\"green\":50}}]}"

/* Without timeout_ms the timeout is 2000 ms, or half of interval_ms when 2000 would not be
 * shorter; an explicit timeout_ms must still be shorter than interval_ms. */
Test(config_issue11, health_check_timeout_default_follows_the_interval)
{
    const struct {
        const char *hc;
        unsigned interval, timeout;
    } ok[] = {
        {"", 5000, 2000},
        {",\"interval_ms\":1000", 1000, 500},
        {",\"interval_ms\":100", 100, 50},
        {",\"interval_ms\":2000", 2000, 1000},
        {",\"interval_ms\":2001", 2001, 2000},
        {",\"interval_ms\":300000", 300000, 2000},
        {",\"interval_ms\":1000,\"timeout_ms\":999", 1000, 999},
        {",\"interval_ms\":1000,\"timeout_ms\":10", 1000, 10},
        {",\"timeout_ms\":4999", 5000, 4999},
    };
    for (size_t i = 0; i < CUT_ARRAY_LEN(ok); i++) {
        struct cfg *cfg = NULL;
        struct cfg_errors errs;
        char doc[1024];
        snprintf(doc, sizeof doc, DOC_HEALTH("%s"), ok[i].hc);
        int rc = parse_str(doc, &cfg, &errs);
        dump_errors(ok[i].hc, &errs);
        cr_assert_eq(rc, 0, "case %zu (%s)", i, ok[i].hc);
        const struct cfg_health_check *h = &cfg->routes[0].pools[0].health_check;
        cr_expect(h->enabled, "case %zu", i);
        cr_expect_eq(h->interval_ms, ok[i].interval, "case %zu", i);
        cr_expect_eq(h->timeout_ms, ok[i].timeout, "case %zu: timeout %u", i, h->timeout_ms);
        /* the dump says the timeout in force, and reads back the same */
        char *text = cfg_dump(cfg);
        struct cfg *again = NULL;
        struct cfg_errors errs2;
        cr_assert_eq(cfg_parse(text, strlen(text), &again, &errs2), 0, "case %zu: %s", i, text);
        cr_expect_eq(again->routes[0].pools[0].health_check.timeout_ms, ok[i].timeout);
        free(text);
        cfg_free(again);
        cfg_errors_dispose(&errs2);
        cfg_free(cfg);
        cfg_errors_dispose(&errs);
    }
    const struct msg_case bad[] = {
        {DOC_HEALTH(",\"interval_ms\":1000,\"timeout_ms\":1000"),
         "routes[0].pools.blue.health_check.timeout_ms", "must be shorter than interval_ms (1000)"},
        {DOC_HEALTH(",\"interval_ms\":1000,\"timeout_ms\":2000"),
         "routes[0].pools.blue.health_check.timeout_ms", "must be shorter than interval_ms (1000)"},
        {DOC_HEALTH(",\"timeout_ms\":5000"), "routes[0].pools.blue.health_check.timeout_ms",
         "must be shorter than interval_ms (5000)"},
        {DOC_HEALTH(",\"timeout_ms\":5"), "routes[0].pools.blue.health_check.timeout_ms",
         "must be between 10 and 60000"},
    };
    for (size_t i = 0; i < CUT_ARRAY_LEN(bad); i++) {
        struct cfg *cfg = NULL;
        struct cfg_errors errs;
        cr_expect_eq(parse_str(bad[i].doc, &cfg, &errs), CUT_EINVAL, "case %zu", i);
        dump_errors("bad", &errs);
        cr_expect_eq(errs.n, 1, "case %zu: %zu errors", i, errs.n);
        cr_expect_str_eq(message_at(&errs, bad[i].path), bad[i].message, "case %zu", i);
        cfg_errors_dispose(&errs);
    }
}

/* ---- control.store (issue 14): what one fixture cannot hold, each with its path and message ----
 */

#define DOC_STORE(store) DOC_ROOT(",\"control\":{\"store\":{" store "}}")
#define STORE_OK_REST "\"prefix\":\"/cutover/p/\""

/* Parses doc expecting exactly one error, at path, whose message contains msg. */
static void expect_one_store_error(const char *doc, const char *path, const char *msg)
{
    struct cfg *cfg = (struct cfg *)1;
    struct cfg_errors errs;
    cr_expect_eq(parse_str(doc, &cfg, &errs), CUT_EINVAL, "accepted: %s", doc);
    cr_expect_null(cfg);
    if (errs.n != 1)
        dump_errors(path, &errs);
    cr_expect_eq(errs.n, 1, "%s: %zu errors", path, errs.n);
    cr_expect_geq(find_error(&errs, path), 0, "no error at %s", path);
    cr_expect_not_null(strstr(message_at(&errs, path), msg), "%s: \"%s\" lacks \"%s\"", path,
                       message_at(&errs, path), msg);
    cfg_errors_dispose(&errs);
}

Test(config_store, endpoints_count_is_bounded)
{
    expect_one_store_error(DOC_STORE("\"endpoints\":[]," STORE_OK_REST), "control.store.endpoints",
                           "1 to 16");
    expect_one_store_error(
        DOC_STORE("\"endpoints\":[\"http://10.0.0.1:2379\",\"http://10.0.0.2:2379\","
                  "\"http://10.0.0.3:2379\",\"http://10.0.0.4:2379\",\"http://10.0.0.5:2379\","
                  "\"http://10.0.0.6:2379\",\"http://10.0.0.7:2379\",\"http://10.0.0.8:2379\","
                  "\"http://10.0.0.9:2379\",\"http://10.0.0.10:2379\",\"http://10.0.0.11:2379\","
                  "\"http://10.0.0.12:2379\",\"http://10.0.0.13:2379\",\"http://10.0.0.14:2379\","
                  "\"http://10.0.0.15:2379\",\"http://10.0.0.16:2379\","
                  "\"http://10.0.0.17:2379\"]," STORE_OK_REST),
        "control.store.endpoints", "1 to 16");
    expect_one_store_error(DOC_STORE(STORE_OK_REST), "control.store",
                           "missing required key \"endpoints\"");
}

Test(config_store, endpoint_urls_name_the_element)
{
    expect_one_store_error(
        DOC_STORE(
            "\"endpoints\":[\"http://10.0.0.5:2379\",\"http://10.0.0.6:2379/v3\"]," STORE_OK_REST),
        "control.store.endpoints[1]", "without a path");
    expect_one_store_error(DOC_STORE("\"endpoints\":[\"http://10.0.0.5:2379?x=1\"]," STORE_OK_REST),
                           "control.store.endpoints[0]", "without a path");
    expect_one_store_error(DOC_STORE("\"endpoints\":[\"unix:///run/etcd.sock\"]," STORE_OK_REST),
                           "control.store.endpoints[0]", "https://host:port");
    expect_one_store_error(DOC_STORE("\"endpoints\":[\"http://10.0.0.5:2379\",7]," STORE_OK_REST),
                           "control.store.endpoints[1]", "https://host:port");
}

Test(config_store, prefix_shape)
{
#define EP "\"endpoints\":[\"http://10.0.0.5:2379\"],"
    expect_one_store_error(DOC_STORE(EP "\"prefix\":\"/cutover/p\""), "control.store.prefix",
                           "end with \"/\"");
    expect_one_store_error(DOC_STORE(EP "\"prefix\":\"cutover/p/\""), "control.store.prefix",
                           "start and end");
    expect_one_store_error(DOC_STORE(EP "\"prefix\":\"/cutover//p/\""), "control.store.prefix",
                           "no \"//\"");
    expect_one_store_error(DOC_STORE(EP "\"prefix\":\"/\""), "control.store.prefix", "3 to 256");
    expect_one_store_error(DOC_STORE(EP "\"prefix\":\"/cut over/\""), "control.store.prefix",
                           "A-Z");
    expect_one_store_error(DOC_STORE("\"endpoints\":[\"http://10.0.0.5:2379\"]"), "control.store",
                           "missing required key \"prefix\"");
}

Test(config_store, lease_ttl_and_timeouts)
{
    expect_one_store_error(DOC_STORE(EP STORE_OK_REST ",\"lease_ttl_s\":1"),
                           "control.store.lease_ttl_s", "between 2 and 300");
    expect_one_store_error(DOC_STORE(EP STORE_OK_REST ",\"lease_ttl_s\":301"),
                           "control.store.lease_ttl_s", "between 2 and 300");
    expect_one_store_error(
        DOC_STORE(EP STORE_OK_REST ",\"dial_timeout_ms\":3000,\"request_timeout_ms\":2999"),
        "control.store", "at least dial_timeout_ms");
    /* the default request timeout (2000) below a given dial timeout is refused too */
    expect_one_store_error(DOC_STORE(EP STORE_OK_REST ",\"dial_timeout_ms\":2500"), "control.store",
                           "at least dial_timeout_ms");

    struct cfg *cfg;
    struct cfg_errors errs;
    cr_assert_eq(parse_str(DOC_STORE(EP STORE_OK_REST ",\"lease_ttl_s\":300,"
                                                      "\"dial_timeout_ms\":2000"),
                           &cfg, &errs),
                 0);
    cr_expect_eq(cfg->control.store.enabled, 1);
    cr_expect_eq(cfg->control.store.lease_ttl_s, 300);
    cr_expect_eq(cfg->control.store.request_timeout_ms, 2000);
    cr_expect_null(cfg->control.store.tls);
    cfg_free(cfg);
    cfg_errors_dispose(&errs);
}

Test(config_store, user_and_password_file_go_together)
{
    expect_one_store_error(DOC_STORE(EP STORE_OK_REST ",\"user\":\"cut\""), "control.store",
                           "\"user\" and \"password_file\"");
    expect_one_store_error(DOC_STORE(EP STORE_OK_REST ",\"password_file\":\"/etc/pw\""),
                           "control.store", "\"user\" and \"password_file\"");
}

Test(config_store, tls_follows_the_scheme)
{
#define TLS ",\"tls\":{\"ca\":\"/ca.pem\"}"
    expect_one_store_error(DOC_STORE("\"endpoints\":[\"https://10.0.0.5:2379\"]," STORE_OK_REST),
                           "control.store", "need \"tls\"");
    expect_one_store_error(DOC_STORE(EP STORE_OK_REST TLS), "control.store",
                           "\"tls\" needs https://");
    expect_one_store_error(
        DOC_STORE(
            "\"endpoints\":[\"https://10.0.0.5:2379\",\"http://10.0.0.6:2379\"]," STORE_OK_REST
                TLS),
        "control.store", "must all be https:// or all http://");
    expect_one_store_error(DOC_STORE("\"endpoints\":[\"https://10.0.0.5:2379\"]," STORE_OK_REST
                                     ",\"tls\":{\"ca\":\"/ca.pem\",\"server_name\":\"etcd\"}"),
                           "control.store.tls.server_name", "unknown key");
    expect_one_store_error(
        DOC_STORE("\"endpoints\":[\"https://10.0.0.5:2379\"]," STORE_OK_REST ",\"tls\":{}"),
        "control.store.tls", "missing required key \"ca\"");
#undef TLS
}

/* Every problem of the store at once, next to problems elsewhere in the document. */
Test(config_store, all_problems_are_reported_at_once)
{
    const char *doc = DOC_ROOT(",\"timeouts\":{\"client_idle_ms\":0},\"control\":{\"store\":{"
                               "\"endpoints\":[\"https://10.0.0.5:2379\",\"ftp://x:1\","
                               "\"http://10.0.0.7:2379/v3\"],\"prefix\":\"/a//\","
                               "\"user\":\"cut\",\"lease_ttl_s\":0,\"dial_timeout_ms\":5000,"
                               "\"tls\":{\"ca\":\"/ca.pem\",\"crl\":\"/x.crl\"}}}");
    struct cfg *cfg;
    struct cfg_errors errs;
    cr_assert_eq(parse_str(doc, &cfg, &errs), CUT_EINVAL);
    const char *paths[] = {"timeouts.client_idle_ms",    "control.store.endpoints[1]",
                           "control.store.endpoints[2]", "control.store.prefix",
                           "control.store.lease_ttl_s",  "control.store.tls.crl"};
    for (size_t i = 0; i < CUT_ARRAY_LEN(paths); i++)
        cr_expect_geq(find_error(&errs, paths[i]), 0, "no error at %s", paths[i]);
    /* control.store itself: user without password_file, and the timeouts */
    size_t at_store = 0;
    for (size_t i = 0; i < errs.n; i++)
        at_store += strcmp(errs.v[i].path, "control.store") == 0;
    cr_expect_eq(at_store, 2);
    if (errs.n != CUT_ARRAY_LEN(paths) + 2)
        dump_errors("all_at_once", &errs);
    cr_expect_eq(errs.n, CUT_ARRAY_LEN(paths) + 2);
    cfg_errors_dispose(&errs);
}
#undef EP

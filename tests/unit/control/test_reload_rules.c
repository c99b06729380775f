/* Unit tests for control/reload_rules.c: what a reload may not change. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/cfg.h"
#include "control/reload_rules.h"
#include "core/cut.h"

static struct cfg *cfg_of(const char *listen, int workers, const char *extra)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"workers\":%d,\"listeners\":[{\"address\":\"%s\"}],"
             "\"routes\":[{\"name\":\"app\",\"path_prefix\":\"/\","
             "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}},"
             "\"weights\":{\"blue\":100,\"green\":0}}]%s}",
             workers, listen, extra);
    struct cfg *cfg = NULL;
    struct cfg_errors errs = {0};
    cr_assert_eq(cfg_parse(json, strlen(json), &cfg, &errs), 0, "%s",
                 errs.n ? errs.v[0].message : "");
    cfg_errors_dispose(&errs);
    return cfg;
}

static void expect(struct cfg *old, struct cfg *cfg, const char *path)
{
    const char *p = "x", *why = "x";
    int rc = reload_rules_check(old, cfg, &p, &why);
    if (!path) {
        cr_assert_eq(rc, 0, "refused at %s: %s", p, why);
        cr_assert_null(p);
        cr_assert_null(why);
    } else {
        cr_assert_eq(rc, CUT_EINVAL);
        cr_assert_str_eq(p, path);
        cr_assert_not_null(strstr(why, "requires a restart"), "%s", why);
    }
    cfg_free(old);
    cfg_free(cfg);
}

Test(reload_rules, routes_and_weights_may_change)
{
    struct cfg *old = cfg_of("127.0.0.1:8080", 2, "");
    struct cfg *cfg = cfg_of("127.0.0.1:8080", 2, ",\"timeouts\":{\"upstream_connect_ms\":500}");
    expect(old, cfg, NULL);
}

Test(reload_rules, listeners_workers_and_files_may_not)
{
    expect(cfg_of("127.0.0.1:8080", 2, ""), cfg_of("127.0.0.1:8081", 2, ""), "listeners");
    expect(cfg_of("127.0.0.1:8080", 2, ""), cfg_of("127.0.0.1:8080", 3, ""), "workers");
    expect(cfg_of("127.0.0.1:8080", 2, ",\"control\":{\"state_file\":\"/tmp/a.json\"}"),
           cfg_of("127.0.0.1:8080", 2, ",\"control\":{\"state_file\":\"/tmp/b.json\"}"),
           "control");
    expect(cfg_of("127.0.0.1:8080", 2, ""),
           cfg_of("127.0.0.1:8080", 2, ",\"metrics\":{\"address\":\"127.0.0.1:9100\"}"),
           "metrics.address");
}

/* control.store with every key; each %s slot below is replaced in turn to make one change. */
static struct cfg *store_cfg(const char *endpoints, const char *prefix, const char *user,
                             const char *ca, const char *rest)
{
    char extra[1536];
    snprintf(extra, sizeof extra,
             ",\"control\":{\"store\":{\"endpoints\":[%s],\"prefix\":\"%s\","
             "\"tls\":{\"ca\":\"%s\",\"client_certificate\":{\"cert\":\"/etc/c.crt\","
             "\"key\":\"/etc/c.key\"}},\"user\":\"%s\",\"password_file\":\"/etc/pw\","
             "\"replica\":\"r0\",\"dial_timeout_ms\":500,\"request_timeout_ms\":3000%s}}",
             endpoints, prefix, ca, user, rest);
    return cfg_of("127.0.0.1:8080", 2, extra);
}

#define EPS "\"https://10.0.0.5:2379\",\"https://10.0.0.6:2379\""
#define BASE_STORE() store_cfg(EPS, "/cutover/p/", "cut", "/etc/ca.pem", ",\"lease_ttl_s\":10")

Test(reload_rules, an_identical_store_passes)
{
    expect(BASE_STORE(), BASE_STORE(), NULL);
    /* lease_ttl_s left out is its default, 10: the same store. */
    expect(BASE_STORE(), store_cfg(EPS, "/cutover/p/", "cut", "/etc/ca.pem", ""), NULL);
}

Test(reload_rules, adding_or_removing_the_store_is_refused)
{
    expect(cfg_of("127.0.0.1:8080", 2, ""), BASE_STORE(), "control.store");
    expect(BASE_STORE(), cfg_of("127.0.0.1:8080", 2, ""), "control.store");
}

Test(reload_rules, changing_any_store_field_is_refused)
{
    /* endpoints: one more, one fewer, one different, the same ones in another order */
    expect(BASE_STORE(),
           store_cfg(EPS ",\"https://10.0.0.7:2379\"", "/cutover/p/", "cut", "/etc/ca.pem",
                     ",\"lease_ttl_s\":10"),
           "control.store");
    expect(BASE_STORE(),
           store_cfg("\"https://10.0.0.5:2379\"", "/cutover/p/", "cut", "/etc/ca.pem",
                     ",\"lease_ttl_s\":10"),
           "control.store");
    expect(BASE_STORE(),
           store_cfg("\"https://10.0.0.5:2379\",\"https://10.0.0.8:2379\"", "/cutover/p/", "cut",
                     "/etc/ca.pem", ",\"lease_ttl_s\":10"),
           "control.store");
    expect(BASE_STORE(),
           store_cfg("\"https://10.0.0.6:2379\",\"https://10.0.0.5:2379\"", "/cutover/p/", "cut",
                     "/etc/ca.pem", ",\"lease_ttl_s\":10"),
           "control.store");
    expect(BASE_STORE(), store_cfg(EPS, "/cutover/q/", "cut", "/etc/ca.pem", ",\"lease_ttl_s\":10"),
           "control.store");
    expect(BASE_STORE(),
           store_cfg(EPS, "/cutover/p/", "cut2", "/etc/ca.pem", ",\"lease_ttl_s\":10"),
           "control.store");
    expect(BASE_STORE(),
           store_cfg(EPS, "/cutover/p/", "cut", "/etc/ca2.pem", ",\"lease_ttl_s\":10"),
           "control.store");
    expect(BASE_STORE(), store_cfg(EPS, "/cutover/p/", "cut", "/etc/ca.pem", ",\"lease_ttl_s\":11"),
           "control.store");
}

/* The fields the helper does not vary, changed on a parsed configuration one at a time. */
Test(reload_rules, changing_the_other_store_fields_is_refused)
{
    for (int field = 0; field < 7; field++) {
        struct cfg *cfg = BASE_STORE();
        struct cfg_store *s = &cfg->control.store;
        switch (field) {
        case 0: s->password_file[0] = 'X'; break;
        case 1: s->replica[0] = 'X'; break;
        case 2: s->dial_timeout_ms++; break;
        case 3: s->request_timeout_ms++; break;
        case 4: s->tls->client_cert->cert[1] = 'X'; break;
        case 5: s->tls->client_cert->key[1] = 'X'; break;
        case 6:
            s->endpoints[1][8] = '9'; /* https://9... : same count, another member */
            break;
        }
        const char *p = NULL, *why = NULL;
        struct cfg *old = BASE_STORE();
        cr_expect_eq(reload_rules_check(old, cfg, &p, &why), CUT_EINVAL, "field %d", field);
        cr_expect_str_eq(p ? p : "(null)", "control.store", "field %d", field);
        cfg_free(old);
        cfg_free(cfg);
    }
}

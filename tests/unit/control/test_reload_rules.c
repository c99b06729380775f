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

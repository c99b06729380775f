/* Unit tests for control/state_rebase.c: which runtime state survives a start or a reload. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "control/state.h"
#include "control/state_rebase.h"

static struct cfg *cfg_of(const char *pools_and_weights)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"listeners\":[{\"address\":\"127.0.0.1:8080\"}],"
             "\"routes\":[{\"name\":\"app\",\"path_prefix\":\"/\",%s},"
             "{\"name\":\"api\",\"path_prefix\":\"/api\","
             "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},"
             "\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}},"
             "\"weights\":{\"blue\":100,\"green\":0}}]}",
             pools_and_weights);
    struct cfg *cfg = NULL;
    struct cfg_errors errs = {0};
    int rc = cfg_parse(json, strlen(json), &cfg, &errs);
    cr_assert_eq(rc, 0, "%s: %s", errs.n ? errs.v[0].path : "", errs.n ? errs.v[0].message : "");
    cfg_errors_dispose(&errs);
    return cfg;
}

#define BG(b, g)                                                                                   \
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},"                                    \
    "\"green\":{\"endpoints\":[\"127.0.0.1:9002\"]}},\"weights\":{\"blue\":" #b ",\"green\":" #g "}"

/* A runtime state for cfg at generation gen, with app at green_bp and one drained endpoint. */
static void runtime(const struct cfg *cfg, uint64_t gen, unsigned green_bp, struct state *st)
{
    char note[256];
    struct state empty = {0};
    cr_assert_eq(state_rebase(cfg, NULL, &empty, st, note, sizeof note), 0);
    st->generation = gen;
    struct state_route *r = state_route_find(st, "app");
    r->pools[0].weight_bp = 10000 - green_bp;
    r->pools[1].weight_bp = green_bp;
    cr_assert_eq(state_addrs_add(&r->pools[0].drained, "127.0.0.1:9001"), 0);
    r->plan = strdup("{\"to\":\"green\"}");
}

Test(state_rebase, first_start_takes_the_configuration)
{
    struct cfg *cfg = cfg_of(BG(90, 10));
    struct state empty = {0}, out;
    char note[256];
    cr_assert_eq(state_rebase(cfg, NULL, &empty, &out, note, sizeof note), 0);
    cr_assert_eq(out.nroutes, 2);
    struct state_route *r = state_route_find(&out, "app");
    cr_assert_eq(r->pools[0].weight_bp, 9000);
    cr_assert_eq(r->pools[1].stable_bp, 1000);
    cr_assert_null(r->plan);
    cr_assert_str_eq(note, "");
    state_dispose(&out);
    cfg_free(cfg);
}

Test(state_rebase, restart_keeps_runtime_weights_plan_and_drains)
{
    struct cfg *cfg = cfg_of(BG(90, 10));
    struct state old, out;
    runtime(cfg, 12, 4000, &old);
    char note[256];
    cr_assert_eq(state_rebase(cfg, NULL, &old, &out, note, sizeof note), 0);
    cr_assert_eq(out.generation, 12);
    struct state_route *r = state_route_find(&out, "app");
    cr_assert_eq(r->pools[1].weight_bp, 4000);
    cr_assert_str_eq(r->plan, "{\"to\":\"green\"}");
    cr_assert(state_addrs_has(&r->pools[0].drained, "127.0.0.1:9001"));
    cr_assert_str_eq(note, "");
    state_dispose(&old);
    state_dispose(&out);
    cfg_free(cfg);
}

Test(state_rebase, reload_with_new_configured_weights_lets_the_configuration_win)
{
    struct cfg *old_cfg = cfg_of(BG(90, 10)), *cfg = cfg_of(BG(50, 50));
    struct state old, out;
    runtime(old_cfg, 3, 2500, &old);
    char note[256];
    cr_assert_eq(state_rebase(cfg, old_cfg, &old, &out, note, sizeof note), 0);
    struct state_route *r = state_route_find(&out, "app");
    cr_assert_eq(r->pools[1].weight_bp, 5000, "the configuration's new weights win");
    cr_assert_eq(r->pools[1].stable_bp, 5000);
    cr_assert_null(r->plan, "the plan goes with the runtime weights");
    cr_assert(state_addrs_has(&r->pools[0].drained, "127.0.0.1:9001"), "drains are kept");
    cr_assert_str_eq(note, "\"app\"");
    struct state_route *api = state_route_find(&out, "api");
    cr_assert_eq(api->pools[0].weight_bp, 10000, "an unchanged route keeps its weights");
    state_dispose(&old);
    state_dispose(&out);
    cfg_free(old_cfg);
    cfg_free(cfg);
}

Test(state_rebase, reload_with_the_same_weights_keeps_runtime)
{
    struct cfg *old_cfg = cfg_of(BG(90, 10)), *cfg = cfg_of(BG(90, 10));
    struct state old, out;
    runtime(old_cfg, 3, 2500, &old);
    char note[256];
    cr_assert_eq(state_rebase(cfg, old_cfg, &old, &out, note, sizeof note), 0);
    cr_assert_eq(state_route_find(&out, "app")->pools[1].weight_bp, 2500);
    cr_assert_str_eq(note, "");
    state_dispose(&old);
    state_dispose(&out);
    cfg_free(old_cfg);
    cfg_free(cfg);
}

Test(state_rebase, changed_pools_take_the_configuration)
{
    struct cfg *old_cfg = cfg_of(BG(90, 10));
    struct cfg *cfg = cfg_of("\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\"]},"
                             "\"teal\":{\"endpoints\":[\"127.0.0.1:9003\"]}},"
                             "\"weights\":{\"blue\":70,\"teal\":30}");
    struct state old, out;
    runtime(old_cfg, 3, 2500, &old);
    char note[256];
    cr_assert_eq(state_rebase(cfg, NULL, &old, &out, note, sizeof note), 0);
    struct state_route *r = state_route_find(&out, "app");
    cr_assert_str_eq(r->pools[1].name, "teal");
    cr_assert_eq(r->pools[1].weight_bp, 3000);
    cr_assert(state_addrs_has(&r->pools[0].drained, "127.0.0.1:9001"), "blue still exists");
    cr_assert_str_eq(note, "\"app\"");
    state_dispose(&old);
    state_dispose(&out);
    cfg_free(old_cfg);
    cfg_free(cfg);
}

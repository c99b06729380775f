/* test_fleet.c - control/fleet.c's pure functions: the stored values of a route and of the
 * generation key, their round trips, and every refusal of a value this version cannot apply. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/fleet_value.h"
#include "control/state.h"
#include "core/cut.h"

#define PLAN                                                                                       \
    "{\"hold_ms\":60000,\"steps\":[10,50,100]}" /* compact, sorted: as state.c keeps it            \
                                                 */

static void set_name(char *dst, const char *src)
{
    snprintf(dst, STATE_MAX_NAME, "%s", src);
}

/* Route "payments": green 25% (stable 0, one added and one drained endpoint), blue 75% (stable
 * 100%, one removed endpoint), a plan. */
static void make_route(struct state_route *r, const char *name)
{
    memset(r, 0, sizeof *r);
    set_name(r->name, name);
    r->npools = 2;
    set_name(r->pools[0].name, "green");
    r->pools[0].weight_bp = 2500;
    r->pools[0].stable_bp = 0;
    cr_assert_eq(state_addrs_add(&r->pools[0].added, "10.0.0.9:8080"), 0);
    cr_assert_eq(state_addrs_add(&r->pools[0].drained, "10.0.0.8:8080"), 0);
    set_name(r->pools[1].name, "blue");
    r->pools[1].weight_bp = 7500;
    r->pools[1].stable_bp = 10000;
    cr_assert_eq(state_addrs_add(&r->pools[1].removed, "10.0.0.1:8080"), 0);
    r->plan = strdup(PLAN);
    cr_assert_not_null(r->plan);
}

static void dispose_route(struct state_route *r)
{
    struct state one = {.routes = r, .nroutes = 1};
    /* state_dispose frees the routes array too: give it a heap copy */
    one.routes = malloc(sizeof *r);
    cr_assert_not_null(one.routes);
    *one.routes = *r;
    state_dispose(&one);
    memset(r, 0, sizeof *r);
}

static void expect_addrs(const struct state_addrs *got, const struct state_addrs *want,
                         const char *what)
{
    cr_assert_eq(got->n, want->n, "%s: %zu addresses, want %zu", what, got->n, want->n);
    for (size_t i = 0; i < want->n; i++)
        cr_expect_str_eq(got->v[i], want->v[i], "%s[%zu]", what, i);
}

static void expect_same_route(const struct state_route *got, const struct state_route *want)
{
    cr_expect_str_eq(got->name, want->name);
    cr_assert_eq(got->npools, want->npools);
    for (size_t i = 0; i < want->npools; i++) {
        const struct state_pool *g = &got->pools[i], *w = &want->pools[i];
        cr_expect_str_eq(g->name, w->name, "pool %zu (order kept)", i);
        cr_expect_eq(g->weight_bp, w->weight_bp, "%s weight", w->name);
        cr_expect_eq(g->stable_bp, w->stable_bp, "%s stable", w->name);
        expect_addrs(&g->drained, &w->drained, "drained");
        expect_addrs(&g->added, &w->added, "added");
        expect_addrs(&g->removed, &w->removed, "removed");
    }
    cr_assert_not_null(got->plan);
    cr_expect_str_eq(got->plan, want->plan);
}

/* Parses text for key name, expecting a refusal whose message contains want. */
static void expect_refused(const char *name, const char *text, const char *want)
{
    struct state out;
    char why[512] = "";
    int rc = fleet_value_parse_route(name, text, strlen(text), &out, why, sizeof why);
    cr_expect_eq(rc, CUT_EINVAL, "accepted: %s", text);
    cr_expect_neq(why[0], '\0', "no message for %s", text);
    cr_expect_not_null(strstr(why, want), "message \"%s\" lacks \"%s\"", why, want);
    cr_expect_eq(out.nroutes, 0, "a refused value left routes");
    cr_expect_null(out.routes);
    if (rc == 0)
        state_dispose(&out);
}

/* A valid value of route "payments" at generation 7, as a JSON tree (new reference). */
static json_t *valid_value_tree(void)
{
    struct state_route r;
    make_route(&r, "payments");
    char *text = fleet_value_route(&r, 7, "alice", "shift", "cutover-0");
    dispose_route(&r);
    cr_assert_not_null(text);
    json_t *v = json_loads(text, 0, NULL);
    free(text);
    cr_assert_not_null(v);
    return v;
}

static void expect_tree_refused(json_t *v, const char *want)
{
    char *text = json_dumps(v, JSON_COMPACT);
    cr_assert_not_null(text);
    expect_refused("payments", text, want);
    free(text);
    json_decref(v);
}

Test(fleet, route_value_round_trips)
{
    struct state_route r;
    make_route(&r, "payments");
    char *text = fleet_value_route(&r, 7, "alice", "shift", "cutover-0");
    cr_assert_not_null(text);

    /* the envelope: format, generation, by{actor,op,replica,time}, state */
    json_t *v = json_loads(text, 0, NULL);
    cr_assert_not_null(v, "not JSON: %s", text);
    cr_expect_eq(json_integer_value(json_object_get(v, "format")), FLEET_FORMAT);
    cr_expect_eq(json_integer_value(json_object_get(v, "generation")), 7);
    json_t *by = json_object_get(v, "by");
    cr_expect_str_eq(json_string_value(json_object_get(by, "actor")), "alice");
    cr_expect_str_eq(json_string_value(json_object_get(by, "op")), "shift");
    cr_expect_str_eq(json_string_value(json_object_get(by, "replica")), "cutover-0");
    cr_expect_not_null(json_string_value(json_object_get(by, "time")));
    cr_expect(json_is_object(json_object_get(v, "state")));
    json_decref(v);

    struct state out;
    char why[256] = "";
    cr_assert_eq(fleet_value_parse_route("payments", text, strlen(text), &out, why, sizeof why), 0,
                 "%s", why);
    cr_expect_eq(out.generation, 7);
    cr_assert_eq(out.nroutes, 1);
    expect_same_route(&out.routes[0], &r);

    /* the parsed route writes the same state again (only by.time may differ) */
    char *again = fleet_value_route(&out.routes[0], 7, "alice", "shift", "cutover-0");
    json_t *a = json_loads(text, 0, NULL), *b = json_loads(again, 0, NULL);
    cr_assert(a && b);
    cr_expect(json_equal(json_object_get(a, "state"), json_object_get(b, "state")),
              "state differs:\n%s\n%s", text, again);
    json_decref(a);
    json_decref(b);
    free(again);
    state_dispose(&out);
    free(text);
    dispose_route(&r);
}

Test(fleet, route_value_without_plan_or_by_fields_round_trips)
{
    struct state_route r;
    make_route(&r, "web");
    free(r.plan);
    r.plan = NULL;
    char *text = fleet_value_route(&r, 1, NULL, NULL, NULL);
    cr_assert_not_null(text);
    struct state out;
    char why[256] = "";
    cr_assert_eq(fleet_value_parse_route("web", text, strlen(text), &out, why, sizeof why), 0, "%s",
                 why);
    cr_expect_eq(out.generation, 1);
    cr_assert_eq(out.nroutes, 1);
    cr_expect_null(out.routes[0].plan);
    cr_expect_eq(out.routes[0].pools[1].stable_bp, 10000);
    state_dispose(&out);
    free(text);
    dispose_route(&r);
}

Test(fleet, route_parse_refuses_what_is_not_json)
{
    expect_refused("payments", "", "not a JSON object");
    expect_refused("payments", "{\"format\":1,", "not a JSON object");
    expect_refused("payments", "[1,2]", "not a JSON object");
    expect_refused("payments", "\"payments\"", "not a JSON object");
    /* a duplicate key is not a value this version wrote */
    expect_refused("payments", "{\"format\":1,\"format\":1}", "not a JSON object");
}

Test(fleet, route_parse_refuses_another_format)
{
    json_t *v = valid_value_tree();
    json_object_set_new(v, "format", json_integer(FLEET_FORMAT + 1));
    expect_tree_refused(v, "format");
    v = valid_value_tree();
    json_object_set_new(v, "format", json_string("1"));
    expect_tree_refused(v, "format");
    v = valid_value_tree();
    json_object_del(v, "format");
    expect_tree_refused(v, "format");
}

Test(fleet, route_parse_refuses_a_missing_or_zero_generation)
{
    json_t *v = valid_value_tree();
    json_object_del(v, "generation");
    expect_tree_refused(v, "generation");
    v = valid_value_tree();
    json_object_set_new(v, "generation", json_integer(0));
    expect_tree_refused(v, "generation");
    v = valid_value_tree();
    json_object_set_new(v, "generation", json_integer(-3));
    expect_tree_refused(v, "generation");
    v = valid_value_tree();
    json_object_set_new(v, "generation", json_string("7"));
    expect_tree_refused(v, "generation");
}

Test(fleet, route_parse_refuses_a_state_that_is_not_an_object)
{
    json_t *v = valid_value_tree();
    json_object_del(v, "state");
    expect_tree_refused(v, "state: expected an object");
    v = valid_value_tree();
    json_object_set_new(v, "state", json_string("{}"));
    expect_tree_refused(v, "state: expected an object");
    v = valid_value_tree();
    json_object_set_new(v, "state", json_array());
    expect_tree_refused(v, "state: expected an object");
}

Test(fleet, route_parse_refuses_a_state_of_another_route)
{
    struct state_route r;
    make_route(&r, "payments");
    char *text = fleet_value_route(&r, 7, "alice", "shift", "cutover-0");
    cr_assert_not_null(text);
    expect_refused("orders", text, "expected exactly the route \"orders\"");
    /* a prefix of the name is not the name */
    expect_refused("pay", text, "expected exactly the route \"pay\"");
    free(text);
    dispose_route(&r);
}

Test(fleet, route_parse_refuses_a_state_with_two_routes)
{
    struct state st = {.generation = 7, .nroutes = 2};
    st.routes = calloc(2, sizeof *st.routes);
    cr_assert_not_null(st.routes);
    make_route(&st.routes[0], "payments");
    make_route(&st.routes[1], "orders");
    char *sj = state_to_json(&st);
    cr_assert_not_null(sj);
    state_dispose(&st);

    json_t *v = valid_value_tree();
    json_t *two = json_loads(sj, 0, NULL);
    free(sj);
    cr_assert_not_null(two);
    json_object_set_new(v, "state", two); /* a valid state, checksum and all: two routes */
    expect_tree_refused(v, "expected exactly the route \"payments\"");
}

Test(fleet, route_parse_refuses_a_state_with_a_bad_checksum)
{
    /* move 1% from blue to green inside the state (still a valid split), checksum untouched */
    json_t *v = valid_value_tree();
    json_t *pools = json_object_get(
        json_object_get(json_object_get(json_object_get(v, "state"), "routes"), "payments"),
        "pools");
    json_t *green = json_object_get(pools, "green"), *blue = json_object_get(pools, "blue");
    cr_assert_eq(json_integer_value(json_object_get(green, "weight_bp")), 2500);
    cr_assert_eq(json_integer_value(json_object_get(blue, "weight_bp")), 7500);
    json_object_set_new(green, "weight_bp", json_integer(2600));
    json_object_set_new(blue, "weight_bp", json_integer(7400));
    expect_tree_refused(v, "checksum");

    /* and a checksum that is simply another hash */
    v = valid_value_tree();
    json_object_set_new(
        json_object_get(v, "state"), "checksum",
        json_string("0000000000000000000000000000000000000000000000000000000000000000"));
    expect_tree_refused(v, "checksum");
}

Test(fleet, generation_value_round_trips)
{
    const uint64_t gens[] = {1, 2, 41, 1000000, (uint64_t)INT64_MAX};
    for (size_t i = 0; i < sizeof gens / sizeof gens[0]; i++) {
        char *text = fleet_value_generation(gens[i]);
        cr_assert_not_null(text);
        json_t *v = json_loads(text, 0, NULL);
        cr_assert_not_null(v, "not JSON: %s", text);
        cr_expect_eq(json_integer_value(json_object_get(v, "format")), FLEET_FORMAT);
        json_decref(v);
        uint64_t g = 0;
        cr_expect_eq(fleet_value_parse_generation(text, strlen(text), &g), 0, "%s", text);
        cr_expect_eq(g, gens[i], "%s: %llu", text, (unsigned long long)g);
        free(text);
    }
}

Test(fleet, generation_parse_refuses_what_it_did_not_write)
{
    const char *bad[] = {
        "",
        "7",
        "not json",
        "{\"format\":1,",
        "{\"format\":2,\"generation\":7}",
        "{\"format\":0,\"generation\":7}",
        "{\"generation\":7}",
        "{\"format\":\"1\",\"generation\":7}",
        "{\"format\":1}",
        "{\"format\":1,\"generation\":0}",
        "{\"format\":1,\"generation\":-1}",
        "{\"format\":1,\"generation\":\"7\"}",
        "{\"format\":1,\"generation\":7.5}",
        "{\"format\":1,\"generation\":null}",
        "{\"format\":1,\"generation\":7,\"generation\":8}",
        "[1,7]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t g = 12345;
        cr_expect_eq(fleet_value_parse_generation(bad[i], strlen(bad[i]), &g), CUT_EINVAL,
                     "accepted %s", bad[i]);
        cr_expect_eq(g, 12345, "%s: *gen written on failure", bad[i]);
    }
    /* the length is honoured: a valid value cut short is not one */
    const char *ok = "{\"format\":1,\"generation\":7}";
    uint64_t g = 0;
    cr_expect_eq(fleet_value_parse_generation(ok, strlen(ok) - 1, &g), CUT_EINVAL);
    cr_expect_eq(fleet_value_parse_generation(ok, strlen(ok), &g), 0);
    cr_expect_eq(g, 7);
}

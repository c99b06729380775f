/* Unit tests for control/durable.c: the audit record first, then the state file; an aborted
 * record when the state file cannot be written; nothing when the record cannot be. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/audit.h"
#include "control/durable.h"
#include "control/state.h"
#include "control/state_file.h"
#include "core/cut.h"

static char dir[64];
static int events;
static char last_event[64];
static int lines;

static void on_out(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    (void)line;
    (void)len;
    lines++;
}

static void on_event(void *ctx, const char *name, const char *extra)
{
    (void)ctx;
    (void)extra;
    events++;
    snprintf(last_event, sizeof last_event, "%s", name);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/cutover-durable-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    events = lines = 0;
    last_event[0] = '\0';
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static void one_route(struct state *st, uint64_t gen, unsigned green_bp)
{
    memset(st, 0, sizeof *st);
    st->generation = gen;
    st->routes = calloc(1, sizeof *st->routes);
    cr_assert_not_null(st->routes);
    st->nroutes = 1;
    snprintf(st->routes[0].name, STATE_MAX_NAME, "app");
    st->routes[0].npools = 2;
    snprintf(st->routes[0].pools[0].name, STATE_MAX_NAME, "blue");
    snprintf(st->routes[0].pools[1].name, STATE_MAX_NAME, "green");
    st->routes[0].pools[0].weight_bp = st->routes[0].pools[0].stable_bp = 10000 - green_bp;
    st->routes[0].pools[1].weight_bp = st->routes[0].pools[1].stable_bp = green_bp;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static struct audit_record change(uint64_t before, uint64_t after)
{
    return (struct audit_record){.cluster = "c", .region = "r", .uid = 0, .user = "t",
                                 .role = "admin", .op = "set-weights", .args_json = "{}", .ok = 1,
                                 .generation_before = before, .generation_after = after,
                                 .weights_before_json = "{}", .weights_after_json = "{}"};
}

Test(durable, record_then_state, .init = setup, .fini = teardown)
{
    char apath[128], spath[128], err[256];
    snprintf(apath, sizeof apath, "%s/audit.jsonl", dir);
    snprintf(spath, sizeof spath, "%s/state.json", dir);
    struct audit *a = audit_open(apath, 16, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    struct state next;
    one_route(&next, 8, 2500);
    struct durable_target t = {a, spath, 7, on_out, on_event, NULL};
    struct audit_record rec = change(7, 8);
    int recorded = -1;
    cr_assert_eq(durable_commit(&t, &next, &rec, &recorded, err, sizeof err), 0, "%s", err);
    cr_assert_eq(recorded, 1);
    cr_assert_eq(rec.kind, AUDIT_CHANGE);
    cr_assert_eq(lines, 1);
    cr_assert_eq(events, 0);
    struct state back;
    cr_assert_eq(state_file_load(spath, &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq(back.generation, 8);
    cr_assert_eq(back.routes[0].pools[1].weight_bp, 2500);
    const char *log = slurp(apath);
    cr_assert_not_null(strstr(log, "\"generation_after\":8"), "%s", log);
    state_dispose(&back);
    state_dispose(&next);
    audit_close(a);
}

Test(durable, no_state_file_configured, .init = setup, .fini = teardown)
{
    char apath[128], err[256];
    snprintf(apath, sizeof apath, "%s/audit.jsonl", dir);
    struct audit *a = audit_open(apath, 16, err, sizeof err);
    cr_assert_not_null(a);
    struct state next;
    one_route(&next, 2, 0);
    struct durable_target t = {a, NULL, 1, NULL, on_event, NULL};
    struct audit_record rec = change(1, 2);
    cr_assert_eq(durable_commit(&t, &next, &rec, NULL, err, sizeof err), 0);
    cr_assert_not_null(strstr(slurp(apath), "\"generation_after\":2"));
    state_dispose(&next);
    audit_close(a);
}

Test(durable, state_file_failure_is_followed_by_an_aborted_record, .init = setup, .fini = teardown)
{
    char apath[128], spath[160], err[256];
    snprintf(apath, sizeof apath, "%s/audit.jsonl", dir);
    snprintf(spath, sizeof spath, "%s/missing-dir/state.json", dir); /* cannot be created */
    struct audit *a = audit_open(apath, 16, err, sizeof err);
    cr_assert_not_null(a);
    struct state next;
    one_route(&next, 5, 1000);
    struct durable_target t = {a, spath, 4, on_out, on_event, NULL};
    struct audit_record rec = change(4, 5);
    rec.weights_before_json = "{\"app\":{\"blue\":100,\"green\":0}}";
    rec.weights_after_json = "{\"app\":{\"blue\":90,\"green\":10}}";
    int recorded = -1;
    cr_assert_eq(durable_commit(&t, &next, &rec, &recorded, err, sizeof err), CUT_EIO);
    cr_assert_eq(recorded, 1, "the record was written: the caller must not record again");
    cr_assert_not_null(strstr(err, "state file"), "%s", err);
    cr_assert_eq(lines, 2, "the change and its aborted record");
    const char *log = slurp(apath);
    const char *first = strstr(log, "\"generation_after\":5");
    const char *aborted = strstr(log, "\"result\":\"aborted\"");
    cr_assert_not_null(first, "%s", log);
    cr_assert_not_null(aborted, "%s", log);
    cr_assert_gt(aborted, first, "the aborted record follows the change");
    cr_assert_not_null(strstr(aborted, "\"generation_after\":4"), "back to the generation in use");
    state_dispose(&next);
    audit_close(a);
}

Test(durable, audit_failure_writes_nothing, .init = setup, .fini = teardown)
{
    char apath[128], spath[128], err[256];
    snprintf(apath, sizeof apath, "/dev/full");
    snprintf(spath, sizeof spath, "%s/state.json", dir);
    struct audit *a = audit_open(apath, 16, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    struct state next;
    one_route(&next, 3, 0);
    struct durable_target t = {a, spath, 2, on_out, on_event, NULL};
    struct audit_record rec = change(2, 3);
    int recorded = -1;
    cr_assert_eq(durable_commit(&t, &next, &rec, &recorded, err, sizeof err), CUT_EIO);
    cr_assert_eq(recorded, 0);
    cr_assert_str_eq(last_event, "audit_failed");
    struct stat sb;
    cr_assert_neq(stat(spath, &sb), 0, "no state file without its record");
    state_dispose(&next);
    audit_close(a);
}

Test(durable, weights_json, .init = setup, .fini = teardown)
{
    struct state st;
    one_route(&st, 1, 1250);
    char buf[128];
    state_weights_json(&st.routes[0], 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "{\"blue\":87.5,\"green\":12.5}");
    char *all = durable_weights_json(&st);
    cr_assert_str_eq(all, "{\"app\":{\"blue\":87.5,\"green\":12.5}}");
    free(all);
    state_dispose(&st);
}

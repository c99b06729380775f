/* test_state.c - control/state.c: JSON round trip, checksum, strict validation, durable save and
 * load, deep copy, address helpers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/state.h"
#include "control/state_file.h"
#include "core/cut.h"

static void set_name(char *dst, const char *src)
{
    snprintf(dst, STATE_MAX_NAME, "%s", src);
}

/* Two routes: "api" (green first, then blue: order must survive) and "web" (one pool). */
static void make_state(struct state *st)
{
    memset(st, 0, sizeof *st);
    st->generation = 42;
    st->nroutes = 2;
    st->routes = calloc(2, sizeof *st->routes);
    cr_assert_not_null(st->routes);

    struct state_route *api = &st->routes[0];
    set_name(api->name, "api");
    api->npools = 2;
    set_name(api->pools[0].name, "green");
    api->pools[0].weight_bp = 1000;
    api->pools[0].stable_bp = 0;
    cr_assert_eq(state_addrs_add(&api->pools[0].added, "10.0.0.9:8080"), 0);
    set_name(api->pools[1].name, "blue");
    api->pools[1].weight_bp = 9000;
    api->pools[1].stable_bp = 10000;
    cr_assert_eq(state_addrs_add(&api->pools[1].drained, "10.0.0.1:8080"), 0);
    cr_assert_eq(state_addrs_add(&api->pools[1].drained, "10.0.0.2:8080"), 0);
    cr_assert_eq(state_addrs_add(&api->pools[1].removed, "[::1]:9000"), 0);

    struct state_route *web = &st->routes[1];
    set_name(web->name, "web \"quoted\" ü");
    web->npools = 1;
    set_name(web->pools[0].name, "blue");
    web->pools[0].weight_bp = 10000;
    web->pools[0].stable_bp = 10000;
}

static void assert_addrs_eq(const struct state_addrs *a, const struct state_addrs *b)
{
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        cr_assert_str_eq(a->v[i], b->v[i]);
}

static void assert_state_eq(const struct state *a, const struct state *b)
{
    cr_assert_eq(a->generation, b->generation);
    cr_assert_eq(a->nroutes, b->nroutes);
    for (size_t i = 0; i < a->nroutes; i++) {
        const struct state_route *ra = &a->routes[i], *rb = &b->routes[i];
        cr_assert_str_eq(ra->name, rb->name);
        cr_assert_eq(ra->npools, rb->npools, "route %s", ra->name);
        for (size_t j = 0; j < ra->npools; j++) {
            const struct state_pool *pa = &ra->pools[j], *pb = &rb->pools[j];
            cr_assert_str_eq(pa->name, pb->name, "route %s pool %zu", ra->name, j);
            cr_assert_eq(pa->weight_bp, pb->weight_bp);
            cr_assert_eq(pa->stable_bp, pb->stable_bp);
            assert_addrs_eq(&pa->drained, &pb->drained);
            assert_addrs_eq(&pa->added, &pb->added);
            assert_addrs_eq(&pa->removed, &pb->removed);
        }
    }
}

/* Re-signs a tampered tree with a correct checksum (SHA-256 of the canonical text), as a
 * hand edit that also fixed the checksum would, so the content validation is what answers. */
static char *resign(json_t *root)
{
    json_object_del(root, "checksum");
    char *canon = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert_not_null(canon);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    cr_assert(EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL));
    cr_assert_eq(mdlen, 32);
    free(canon);
    char hex[65];
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    json_object_set_new(root, "checksum", json_string(hex));
    char *text = json_dumps(root, JSON_INDENT(2));
    cr_assert_not_null(text);
    return text;
}

/* Parses text, applies edit, re-signs, and loads; returns what state_from_json returned. */
static int load_edited(const char *text, void (*edit)(json_t *root), char *err, size_t cap)
{
    json_t *root = json_loads(text, 0, NULL);
    cr_assert_not_null(root);
    edit(root);
    char *t = resign(root);
    json_decref(root);
    struct state st;
    int rc = state_from_json(t, strlen(t), &st, err, cap);
    free(t);
    if (rc == 0)
        state_dispose(&st);
    else
        cr_assert_eq(st.nroutes, 0, "out is empty on failure");
    return rc;
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cut_state_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

Test(state, round_trip_keeps_everything_and_order)
{
    struct state st, back;
    char err[256] = "";
    make_state(&st);
    char *text = state_to_json(&st);
    cr_assert_not_null(text);
    cr_assert_eq(state_from_json(text, strlen(text), &back, err, sizeof err), 0, "%s", err);
    assert_state_eq(&st, &back);
    cr_assert_str_eq(back.routes[0].pools[0].name, "green", "pool order is kept");
    cr_assert_str_eq(back.routes[0].pools[1].name, "blue");

    /* Serialising again gives the same text (deterministic). */
    char *again = state_to_json(&back);
    cr_assert_str_eq(text, again);
    free(again);
    free(text);
    state_dispose(&st);
    state_dispose(&back);
    cr_assert_null(back.routes);
    cr_assert_eq(back.nroutes, 0);
}

Test(state, json_shape)
{
    struct state st;
    make_state(&st);
    char *text = state_to_json(&st);
    json_t *root = json_loads(text, 0, NULL);
    cr_assert_not_null(root);
    cr_assert_eq(json_integer_value(json_object_get(root, "format")), 1);
    cr_assert_eq(json_integer_value(json_object_get(root, "generation")), 42);
    const char *sum = json_string_value(json_object_get(root, "checksum"));
    cr_assert_not_null(sum);
    cr_assert_eq(strlen(sum), 64);
    json_t *green = json_object_get(
        json_object_get(json_object_get(json_object_get(root, "routes"), "api"), "pools"), "green");
    cr_assert_eq(json_integer_value(json_object_get(green, "weight_bp")), 1000);
    cr_assert_eq(json_integer_value(json_object_get(green, "stable_bp")), 0);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(green, "added"), 0)),
                     "10.0.0.9:8080");
    json_t *order =
        json_object_get(json_object_get(json_object_get(root, "routes"), "api"), "order");
    cr_assert_eq(json_array_size(order), 2);
    cr_assert_str_eq(json_string_value(json_array_get(order, 0)), "green");
    cr_assert_str_eq(json_string_value(json_array_get(order, 1)), "blue");
    json_decref(root);
    free(text);
    state_dispose(&st);
}

Test(state, empty_state_round_trips)
{
    struct state st = {.generation = 0}, back;
    char err[256] = "";
    char *text = state_to_json(&st);
    cr_assert_not_null(text);
    cr_assert_eq(state_from_json(text, strlen(text), &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq(back.nroutes, 0);
    cr_assert_eq(back.generation, 0);
    free(text);
    state_dispose(&back);
}

Test(state, checksum_detects_a_one_byte_change)
{
    struct state st, back;
    char err[256] = "";
    make_state(&st);
    char *text = state_to_json(&st);
    char *p = strstr(text, "9000");
    cr_assert_not_null(p);
    p[0] = '8'; /* 9000 -> 8000: still a valid value, only the checksum can tell */
    cr_assert_eq(state_from_json(text, strlen(text), &back, err, sizeof err), CUT_EINVAL);
    cr_assert_str_eq(err, "checksum mismatch: the file was modified or truncated");
    cr_assert_eq(back.nroutes, 0);
    cr_assert_null(back.routes);

    /* A changed address byte too. */
    p[0] = '9';
    cr_assert_eq(state_from_json(text, strlen(text), &back, err, sizeof err), 0, "%s", err);
    state_dispose(&back);
    p = strstr(text, "10.0.0.2");
    p[7] = '3';
    cr_assert_eq(state_from_json(text, strlen(text), &back, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "checksum mismatch") != NULL, "%s", err);
    free(text);
    state_dispose(&st);
}

Test(state, truncated_text_is_refused)
{
    struct state st, back;
    char err[256] = "";
    make_state(&st);
    char *text = state_to_json(&st);
    size_t n = strlen(text);
    for (size_t cut = 0; cut < n; cut += 7) {
        cr_assert_eq(state_from_json(text, cut, &back, err, sizeof err), CUT_EINVAL, "cut %zu",
                     cut);
        cr_assert(err[0] != '\0');
        cr_assert_eq(back.nroutes, 0);
    }
    state_from_json(text, n / 2, &back, err, sizeof err);
    cr_assert(strstr(err, "truncated") != NULL, "%s", err);
    free(text);
    state_dispose(&st);
}

Test(state, wrong_format_version)
{
    struct state st, back;
    char err[256] = "";
    make_state(&st);
    char *text = state_to_json(&st);
    char *p = strstr(text, "\"format\": 1");
    cr_assert_not_null(p, "%s", text);
    p[10] = '2';
    cr_assert_eq(state_from_json(text, strlen(text), &back, err, sizeof err), CUT_EINVAL);
    cr_assert_str_eq(err, "format: unsupported version 2 (this build reads 1)");

    const char *nofmt = "{\"generation\":1,\"routes\":{}}";
    cr_assert_eq(state_from_json(nofmt, strlen(nofmt), &back, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "format: missing") != NULL, "%s", err);

    const char *strfmt = "{\"format\":\"1\",\"generation\":1,\"routes\":{}}";
    cr_assert_eq(state_from_json(strfmt, strlen(strfmt), &back, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "format: must be the integer 1") != NULL, "%s", err);

    const char *arr = "[1,2]";
    cr_assert_eq(state_from_json(arr, strlen(arr), &back, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "must be a JSON object") != NULL, "%s", err);
    free(text);
    state_dispose(&st);
}

Test(state, missing_or_malformed_checksum)
{
    struct state back;
    char err[256] = "";
    const char *none = "{\"format\":1,\"generation\":1,\"routes\":{}}";
    cr_assert_eq(state_from_json(none, strlen(none), &back, err, sizeof err), CUT_EINVAL);
    cr_assert_str_eq(err, "checksum: missing");
    const char *bad = "{\"format\":1,\"generation\":1,\"routes\":{},\"checksum\":\"abc\"}";
    cr_assert_eq(state_from_json(bad, strlen(bad), &back, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "checksum: must be 64 lowercase hex") != NULL, "%s", err);
}

static void edit_weight_too_big(json_t *root)
{
    json_t *green = json_object_get(
        json_object_get(json_object_get(json_object_get(root, "routes"), "api"), "pools"), "green");
    json_object_set_new(green, "weight_bp", json_integer(10001));
    json_object_set_new(green, "stable_bp", json_integer(-1));
}

static void edit_weight_type(json_t *root)
{
    json_t *blue = json_object_get(
        json_object_get(json_object_get(json_object_get(root, "routes"), "api"), "pools"), "blue");
    json_object_set_new(blue, "weight_bp", json_string("9000"));
    json_object_del(blue, "stable_bp");
    json_object_set_new(blue, "drained", json_pack("[s,i]", "a:1", 5));
}

static void edit_weight_edges(json_t *root)
{
    json_t *green = json_object_get(
        json_object_get(json_object_get(json_object_get(root, "routes"), "api"), "pools"), "green");
    json_object_set_new(green, "weight_bp", json_integer(0));
    json_object_set_new(green, "stable_bp", json_integer(10000));
}

Test(state, bad_weights_are_reported_with_paths)
{
    struct state st;
    char err[1024] = "";
    make_state(&st);
    char *text = state_to_json(&st);

    cr_assert_eq(load_edited(text, edit_weight_too_big, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "routes.api.pools.green.weight_bp: must be 0..10000 (got 10001)") != NULL,
              "%s", err);
    cr_assert(strstr(err, "routes.api.pools.green.stable_bp: must be 0..10000 (got -1)") != NULL,
              "every problem is reported: %s", err);

    cr_assert_eq(load_edited(text, edit_weight_type, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "routes.api.pools.blue.weight_bp: must be an integer, not a string") !=
                  NULL,
              "%s", err);
    cr_assert(strstr(err, "routes.api.pools.blue.stable_bp: missing") != NULL, "%s", err);
    cr_assert(strstr(err, "routes.api.pools.blue.drained[1]: must be a string, not an integer") !=
                  NULL,
              "%s", err);

    cr_assert_eq(load_edited(text, edit_weight_edges, err, sizeof err), 0, "0 and 10000: %s", err);
    free(text);
    state_dispose(&st);
}

static void edit_names(json_t *root)
{
    json_t *routes = json_object_get(root, "routes");
    json_t *api = json_object_get(routes, "api");
    json_object_set(routes, "", api);
    char longname[STATE_MAX_NAME + 1];
    memset(longname, 'x', STATE_MAX_NAME);
    longname[STATE_MAX_NAME] = '\0';
    json_object_set(routes, longname, api);
}

static void edit_order(json_t *root)
{
    json_t *api = json_object_get(json_object_get(root, "routes"), "api");
    json_object_set_new(api, "order", json_pack("[s,s]", "green", "green"));
    json_t *web = json_object_get(json_object_get(root, "routes"), "web \"quoted\" ü");
    cr_assert_not_null(web);
    json_object_set_new(web, "order", json_pack("[s]", "nope"));
}

static void edit_too_many_pools(json_t *root)
{
    json_t *api = json_object_get(json_object_get(root, "routes"), "api");
    json_t *pools = json_object_get(api, "pools");
    json_t *order = json_object_get(api, "order");
    json_t *green = json_object_get(pools, "green");
    for (int i = 0; i < CFG_MAX_POOLS; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        json_object_set(pools, name, green);
        json_array_append_new(order, json_string(name));
    }
}

static void edit_unknown_keys(json_t *root)
{
    json_object_set_new(root, "extra", json_true());
    json_object_set_new(root, "generation", json_integer(-5));
    json_t *api = json_object_get(json_object_get(root, "routes"), "api");
    json_object_set_new(json_object_get(json_object_get(api, "pools"), "blue"), "colour",
                        json_string("blue"));
}

Test(state, bad_names_order_and_keys)
{
    struct state st;
    char err[2048] = "";
    make_state(&st);
    char *text = state_to_json(&st);

    cr_assert_eq(load_edited(text, edit_names, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "routes.: name must not be empty") != NULL, "%s", err);
    cr_assert(strstr(err, "name must be shorter than 128 bytes") != NULL, "%s", err);

    cr_assert_eq(load_edited(text, edit_order, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "routes.api.order[1]: pool \"green\" listed twice") != NULL, "%s", err);
    cr_assert(strstr(err, "order[0]: names pool \"nope\" which is not in pools") != NULL, "%s",
              err);

    cr_assert_eq(load_edited(text, edit_too_many_pools, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "routes.api.pools: at most 8 pools (got 10)") != NULL, "%s", err);

    cr_assert_eq(load_edited(text, edit_unknown_keys, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "unknown key \"extra\"") != NULL, "%s", err);
    cr_assert(strstr(err, "generation: must not be negative") != NULL, "%s", err);
    cr_assert(strstr(err, "routes.api.pools.blue: unknown key \"colour\"") != NULL, "%s", err);
    free(text);
    state_dispose(&st);
}

Test(state, duplicate_keys_are_refused)
{
    struct state back;
    char err[256] = "";
    const char *dup = "{\"format\":1,\"format\":1,\"generation\":1,\"routes\":{}}";
    cr_assert_eq(state_from_json(dup, strlen(dup), &back, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "duplicate") != NULL, "%s", err);
}

Test(state, save_then_load, .init = make_tmpdir, .fini = remove_tmpdir)
{
    struct state st, back;
    char err[512] = "", path[128], tmp[140];
    make_state(&st);
    snprintf(path, sizeof path, "%s/state.json", tmpdir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    cr_assert_eq(state_file_save(path, &st, err, sizeof err), 0, "%s", err);
    cr_assert_eq(access(tmp, F_OK), -1, "no .tmp is left behind");
    cr_assert_eq(errno, ENOENT);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777 & ~0640, 0, "mode is at most 0640: %o", sb.st_mode & 0777);

    cr_assert_eq(state_file_load(path, &back, err, sizeof err), 0, "%s", err);
    assert_state_eq(&st, &back);
    state_dispose(&back);

    /* Overwrite with a newer generation. */
    st.generation = 43;
    st.routes[0].pools[0].weight_bp = 5000;
    st.routes[0].pools[1].weight_bp = 5000;
    cr_assert_eq(state_file_save(path, &st, err, sizeof err), 0, "%s", err);
    cr_assert_eq(access(tmp, F_OK), -1);
    cr_assert_eq(state_file_load(path, &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq(back.generation, 43);
    assert_state_eq(&st, &back);
    state_dispose(&back);
    state_dispose(&st);
}

Test(state, relative_path_save, .init = make_tmpdir, .fini = remove_tmpdir)
{
    struct state st, back;
    char err[512] = "", cwd[512];
    make_state(&st);
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(tmpdir), 0);
    int rc = state_file_save("rel.json", &st, err, sizeof err);
    int lrc = state_file_load("rel.json", &back, err, sizeof err);
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(lrc, 0, "%s", err);
    assert_state_eq(&st, &back);
    state_dispose(&back);
    state_dispose(&st);
}

Test(state, load_of_corrupt_file_names_the_file, .init = make_tmpdir, .fini = remove_tmpdir)
{
    struct state st, back;
    char err[512] = "", path[128];
    make_state(&st);
    snprintf(path, sizeof path, "%s/state.json", tmpdir);
    cr_assert_eq(state_file_save(path, &st, err, sizeof err), 0, "%s", err);

    /* Truncate the file to half its length, as a torn write would. */
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(truncate(path, sb.st_size / 2), 0);
    cr_assert_eq(state_file_load(path, &back, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, path) != NULL, "%s", err);
    cr_assert(strstr(err, "truncated") != NULL, "%s", err);
    cr_assert_eq(back.nroutes, 0);

    /* An empty file. */
    cr_assert_eq(truncate(path, 0), 0);
    cr_assert_eq(state_file_load(path, &back, err, sizeof err), CUT_EINVAL);

    /* A directory is not a state file. */
    cr_assert_eq(state_file_load(tmpdir, &back, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "not a regular file") != NULL, "%s", err);
    state_dispose(&st);
}

Test(state, load_missing_file_is_enoent)
{
    struct state back;
    char err[256] = "";
    back.nroutes = 99;
    cr_assert_eq(state_file_load("/nonexistent-cutover-dir/state.json", &back, err, sizeof err),
                 CUT_ENOENT);
    cr_assert_eq(back.nroutes, 0, "out is empty");
    cr_assert_null(back.routes);
}

Test(state, save_to_unwritable_directory_is_eio, .init = make_tmpdir, .fini = remove_tmpdir)
{
    struct state st;
    char err[512] = "", path[400];
    make_state(&st);

    cr_assert_eq(state_file_save("/nonexistent-cutover-dir/state.json", &st, err, sizeof err), CUT_EIO);
    cr_assert(strstr(err, "open /nonexistent-cutover-dir/state.json.tmp") != NULL, "%s", err);
    cr_assert(strstr(err, "No such file or directory") != NULL, "%s", err);

    /* A parent that is a regular file (works even as root, where modes do not stop writes). */
    snprintf(path, sizeof path, "%s/file", tmpdir);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(path, sizeof path, "%s/file/state.json", tmpdir);
    cr_assert_eq(state_file_save(path, &st, err, sizeof err), CUT_EIO);
    cr_assert(strstr(err, "Not a directory") != NULL, "%s", err);

    /* A read-only directory, when we are not root. */
    if (geteuid() != 0) {
        char ro[256];
        snprintf(ro, sizeof ro, "%s/ro", tmpdir);
        cr_assert_eq(mkdir(ro, 0500), 0);
        snprintf(path, sizeof path, "%s/state.json", ro);
        cr_assert_eq(state_file_save(path, &st, err, sizeof err), CUT_EIO);
        cr_assert(strstr(err, "Permission denied") != NULL, "%s", err);
        chmod(ro, 0700);
    }
    state_dispose(&st);
}

Test(state, failed_rename_leaves_no_tmp)
{
    /* rename() fails when path is a non-empty directory: the temp file must go. */
    struct state st;
    char err[512] = "";
    char dir[] = "/tmp/cut_state_dir_XXXXXX";
    char target[64], tmp[80];
    make_state(&st);
    cr_assert_not_null(mkdtemp(dir));
    snprintf(target, sizeof target, "%s/sub", dir);
    cr_assert_eq(mkdir(target, 0700), 0);
    /* a non-empty directory cannot be replaced by rename() */
    char inner[96];
    snprintf(inner, sizeof inner, "%s/x", target);
    cr_assert_eq(mkdir(inner, 0700), 0);
    cr_assert_eq(state_file_save(target, &st, err, sizeof err), CUT_EIO);
    cr_assert(strstr(err, "rename") != NULL, "%s", err);
    snprintf(tmp, sizeof tmp, "%s.tmp", target);
    cr_assert_eq(access(tmp, F_OK), -1, "the temp file was removed");
    rmdir(inner);
    rmdir(target);
    rmdir(dir);
    state_dispose(&st);
}

Test(state, save_refuses_a_state_load_would_refuse, .init = make_tmpdir, .fini = remove_tmpdir)
{
    struct state st;
    char err[512] = "", path[128];
    make_state(&st);
    st.routes[0].pools[0].weight_bp = 20000;
    snprintf(path, sizeof path, "%s/state.json", tmpdir);
    cr_assert_eq(state_file_save(path, &st, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "routes.api.pools.green.weight_bp: must be 0..10000") != NULL, "%s", err);
    cr_assert_eq(access(path, F_OK), -1, "nothing written");

    st.routes[0].pools[0].weight_bp = 1000;
    snprintf(st.routes[1].name, STATE_MAX_NAME, "api");
    cr_assert_eq(state_file_save(path, &st, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "routes.api: duplicate route name") != NULL, "%s", err);

    snprintf(st.routes[1].name, STATE_MAX_NAME, "web");
    snprintf(st.routes[0].pools[1].name, STATE_MAX_NAME, "green");
    cr_assert_eq(state_file_save(path, &st, err, sizeof err), CUT_EINVAL);
    cr_assert(strstr(err, "duplicate") != NULL || strstr(err, "twice") != NULL, "%s", err);
    cr_assert_eq(access(path, F_OK), -1, "nothing written");
    state_dispose(&st);
}

Test(state, copy_is_deep)
{
    struct state st, cp;
    make_state(&st);
    cr_assert_eq(state_copy(&cp, &st), 0);
    assert_state_eq(&st, &cp);
    cr_assert_neq(cp.routes, st.routes);
    cr_assert_neq(cp.routes[0].pools[1].drained.v, st.routes[0].pools[1].drained.v);
    cr_assert_neq(cp.routes[0].pools[1].drained.v[0], st.routes[0].pools[1].drained.v[0]);

    /* Changing the copy leaves the original alone. */
    cp.routes[0].pools[1].drained.v[0][0] = 'X';
    state_addrs_remove(&cp.routes[0].pools[1].drained, "10.0.0.2:8080");
    cp.routes[0].pools[0].weight_bp = 7;
    cp.generation = 1;
    cr_assert_str_eq(st.routes[0].pools[1].drained.v[0], "10.0.0.1:8080");
    cr_assert_eq(st.routes[0].pools[1].drained.n, 2);
    cr_assert_eq(st.routes[0].pools[0].weight_bp, 1000);
    cr_assert_eq(st.generation, 42);

    state_dispose(&st); /* the copy outlives the original */
    cr_assert_str_eq(cp.routes[1].name, "web \"quoted\" ü");
    state_dispose(&cp);

    struct state empty = {0}, ecp;
    cr_assert_eq(state_copy(&ecp, &empty), 0);
    cr_assert_eq(ecp.nroutes, 0);
    state_dispose(&ecp);
}

Test(state, lookups)
{
    struct state st;
    make_state(&st);
    struct state_route *r = state_route_find(&st, "api");
    cr_assert_eq(r, &st.routes[0]);
    cr_assert_null(state_route_find(&st, "nope"));
    cr_assert_eq(state_pool_find(r, "blue"), &r->pools[1]);
    cr_assert_null(state_pool_find(r, "red"));
    state_dispose(&st);
    state_dispose(&st); /* idempotent on a disposed state */
}

Test(state, addrs_helpers)
{
    struct state_addrs a = {0};
    cr_assert_eq(state_addrs_has(&a, "x:1"), 0);
    cr_assert_eq(state_addrs_add(&a, "x:1"), 0);
    cr_assert_eq(state_addrs_add(&a, "y:2"), 0);
    cr_assert_eq(state_addrs_add(&a, "z:3"), 0);
    cr_assert_eq(state_addrs_add(&a, "y:2"), 0, "adding a present address does nothing");
    cr_assert_eq(a.n, 3);
    cr_assert_eq(state_addrs_has(&a, "y:2"), 1);
    cr_assert_eq(state_addrs_has(&a, "y:20"), 0);

    state_addrs_remove(&a, "nope:0"); /* absent: nothing */
    cr_assert_eq(a.n, 3);
    state_addrs_remove(&a, "y:2");
    cr_assert_eq(a.n, 2);
    cr_assert_str_eq(a.v[0], "x:1", "order is kept");
    cr_assert_str_eq(a.v[1], "z:3");
    cr_assert_eq(state_addrs_has(&a, "y:2"), 0);

    /* The list owns its strings. */
    char buf[8] = "w:4";
    cr_assert_eq(state_addrs_add(&a, buf), 0);
    buf[0] = 'q';
    cr_assert_eq(state_addrs_has(&a, "w:4"), 1);

    state_addrs_remove(&a, "x:1");
    state_addrs_remove(&a, "z:3");
    state_addrs_remove(&a, "w:4");
    cr_assert_eq(a.n, 0);
    cr_assert_null(a.v);
}

/* ---- the country cohort ---- */

static void add_cohort(struct state *st)
{
    struct state_route *api = &st->routes[0]; /* pools: green, blue */
    api->cohort.ncountries = 2;
    memcpy(api->cohort.countries[0], "SG", 3);
    memcpy(api->cohort.countries[1], "MY", 3);
    api->cohort.weights_bp[0] = 2500; /* green */
    api->cohort.weights_bp[1] = 7500; /* blue */
}

Test(state, cohort_round_trips)
{
    struct state st, back;
    make_state(&st);
    add_cohort(&st);
    char *text = state_to_json(&st);
    cr_assert_not_null(text);
    json_t *root = json_loads(text, 0, NULL);
    json_t *c = json_object_get(json_object_get(json_object_get(root, "routes"), "api"), "cohort");
    cr_assert(json_is_object(c));
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(c, "countries"), 1)), "MY");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(c, "weights"), "green")), 2500);
    json_decref(root);
    char err[512];
    cr_assert_eq(state_from_json(text, strlen(text), &back, err, sizeof err), 0, "%s", err);
    const struct state_route *a = &back.routes[0], *b = &back.routes[1];
    cr_assert_eq(a->cohort.ncountries, 2);
    cr_assert_str_eq(a->cohort.countries[0], "SG");
    cr_assert_str_eq(a->cohort.countries[1], "MY");
    cr_assert_eq(a->cohort.weights_bp[0], 2500);
    cr_assert_eq(a->cohort.weights_bp[1], 7500);
    cr_assert_eq(b->cohort.ncountries, 0, "a route without a cohort has none");
    cr_assert(state_cohort_has(&a->cohort, "MY"));
    cr_assert(!state_cohort_has(&a->cohort, "US"));
    char w[128];
    state_cohort_weights_json(a, w, sizeof w);
    cr_assert_str_eq(w, "{\"green\":25,\"blue\":75}");
    struct state copy;
    cr_assert_eq(state_copy(&copy, &back), 0);
    cr_assert_eq(memcmp(&copy.routes[0].cohort, &a->cohort, sizeof a->cohort), 0);
    state_dispose(&copy);
    state_dispose(&back);
    state_dispose(&st);
    free(text);
}

static json_t *cohort_obj;

static void edit_cohort(json_t *root)
{
    json_t *api = json_object_get(json_object_get(root, "routes"), "api");
    json_object_set(api, "cohort", cohort_obj);
}

/* Loads the test state with routes.api.cohort set to the JSON text cj; returns the error. */
static int load_cohort(const char *cj, char *err, size_t cap)
{
    struct state st;
    make_state(&st);
    char *text = state_to_json(&st);
    state_dispose(&st);
    cohort_obj = json_loads(cj, 0, NULL);
    cr_assert_not_null(cohort_obj, "%s", cj);
    int rc = load_edited(text, edit_cohort, err, cap);
    json_decref(cohort_obj);
    free(text);
    return rc;
}

static void cohort_refused(const char *cj, const char *want)
{
    char err[1024];
    cr_assert_eq(load_cohort(cj, err, sizeof err), CUT_EINVAL, "%s", cj);
    cr_assert(strstr(err, want) != NULL, "%s: %s (want %s)", cj, err, want);
}

Test(state, cohort_refusals)
{
    char err[1024];
    cr_assert_eq(load_cohort("{\"countries\":[\"SG\"],\"weights\":{\"green\":10000,\"blue\":0}}",
                             err, sizeof err),
                 0, "%s", err);
    cohort_refused("{\"countries\":[\"sg\"],\"weights\":{\"green\":10000,\"blue\":0}}",
                   "routes.api.cohort.countries[0]: must be an ISO 3166-1 alpha-2");
    cohort_refused("{\"countries\":[\"SGP\"],\"weights\":{\"green\":10000,\"blue\":0}}",
                   "routes.api.cohort.countries[0]");
    cohort_refused("{\"countries\":[\"SG\",\"MY\",\"SG\"],\"weights\":{\"green\":10000,\"blue\":0}}",
                   "routes.api.cohort.countries[2]: country \"SG\" listed twice");
    cohort_refused("{\"countries\":[\"AA\",\"AB\",\"AC\",\"AD\",\"AE\",\"AF\",\"AG\",\"AH\",\"AI\","
                   "\"AJ\",\"AK\",\"AL\",\"AM\",\"AN\",\"AO\",\"AP\",\"AQ\"],"
                   "\"weights\":{\"green\":10000,\"blue\":0}}",
                   "routes.api.cohort.countries: must be an array of 1 to 16");
    cohort_refused("{\"countries\":[],\"weights\":{\"green\":10000,\"blue\":0}}",
                   "routes.api.cohort.countries: must be an array of 1 to 16");
    cohort_refused("{\"countries\":[\"SG\"],\"weights\":{\"green\":5000,\"blue\":4000}}",
                   "routes.api.cohort.weights: must sum to 10000 (got 9000)");
    cohort_refused("{\"countries\":[\"SG\"],\"weights\":{\"green\":10000}}",
                   "routes.api.cohort.weights.blue: missing");
    cohort_refused("{\"countries\":[\"SG\"],\"weights\":{\"green\":10000,\"blue\":0,\"red\":0}}",
                   "routes.api.cohort.weights: names pool \"red\"");
    cohort_refused("{\"countries\":[\"SG\"],\"weights\":{\"green\":10001,\"blue\":0}}",
                   "routes.api.cohort.weights.green: must be 0..10000");
    cohort_refused("{\"countries\":[\"SG\"],\"weights\":{\"green\":10000,\"blue\":0},\"x\":1}",
                   "routes.api.cohort: unknown key \"x\"");
    cohort_refused("[]", "routes.api.cohort: must be an object");
}

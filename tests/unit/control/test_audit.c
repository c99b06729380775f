/* test_audit.c - control/audit.c: record format and escaping, file append and sync, the history
 * ring, the out callback, failures, and the line size bound. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/audit.h"
#include "core/cut.h"

static char tmpdir[64];
static char path[128];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cut_audit_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(path, sizeof path, "%s/audit.log", tmpdir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

/* Reads the whole file (malloc'd, NUL-terminated). */
static char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "%s: %s", p, strerror(errno));
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    char chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, r, m);
    fclose(f);
    fclose(m);
    *len = n;
    return buf;
}

/* Splits text into lines (each must end in '\n'); returns how many. */
static size_t split_lines(char *text, size_t len, char **lines, size_t max)
{
    size_t k = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        cr_assert_not_null(nl, "every line ends in a newline");
        *nl = '\0';
        cr_assert_lt(k, max);
        lines[k++] = p;
        p = nl + 1;
    }
    return k;
}

static const char *sget(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_string(v), "%s is a string", key);
    return json_string_value(v);
}

static struct audit_record base_record(void)
{
    struct audit_record r = {
        .cluster = "prod-eu",
        .region = "eu-west-1",
        .uid = 1000,
        .user = "alice",
        .role = "operator",
        .op = "set_weights",
        .args_json = "{\"route\":\"api\",\"weights\":{\"blue\":9000,\"green\":1000}}",
        .ok = 1,
        .generation_before = 7,
        .generation_after = 8,
        .weights_before_json = "{\"blue\":10000,\"green\":0}",
        .weights_after_json = "{\"blue\":9000,\"green\":1000}",
        .reason = NULL,
    };
    return r;
}

struct capture {
    char *lines[16];
    size_t lens[16];
    size_t n;
};

static void capture_fn(void *ctx, const char *line, size_t len)
{
    struct capture *c = ctx;
    cr_assert_lt(c->n, 16);
    c->lines[c->n] = strndup(line, len);
    c->lens[c->n] = len;
    c->n++;
}

static void capture_free(struct capture *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->lines[i]);
    c->n = 0;
}

static int is_rfc3339_millis_utc(const char *t)
{
    /* 2026-11-23T22:30:21.123Z */
    if (strlen(t) != 24)
        return 0;
    const char *pat = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (int i = 0; i < 24; i++) {
        if (pat[i] == 'd') {
            if (t[i] < '0' || t[i] > '9')
                return 0;
        } else if (t[i] != pat[i]) {
            return 0;
        }
    }
    return 1;
}

Test(audit, two_records_in_the_file_parse_with_right_fields, .init = setup, .fini = teardown)
{
    char err[256] = "";
    struct audit *a = audit_open(path, 8, err, sizeof err);
    cr_assert_not_null(a, "%s", err);

    struct audit_record r1 = base_record();
    cr_assert_eq(audit_append(a, &r1, NULL, NULL, err, sizeof err), 0, "%s", err);

    struct audit_record r2 = base_record();
    r2.uid = -1;
    r2.user = "CN=deploy-bot,O=Example";
    r2.role = "viewer";
    r2.op = "rollback";
    r2.ok = 0;
    r2.error_code = "forbidden";
    r2.error_message = "role viewer may not \"rollback\"";
    r2.generation_after = 7;
    r2.weights_after_json = NULL;
    r2.args_json = "{not json";
    r2.reason = "line1\nline2 \"quoted\" \\ tab\t bell\x07 caf\xc3\xa9 bad\xff end";
    cr_assert_eq(audit_append(a, &r2, NULL, NULL, err, sizeof err), 0, "%s", err);
    audit_close(a);

    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777 & ~0640, 0, "mode at most 0640: %o", sb.st_mode & 0777);

    size_t len;
    char *text = slurp(path, &len);
    char *lines[4];
    cr_assert_eq(split_lines(text, len, lines, 4), 2);

    json_error_t je;
    json_t *j1 = json_loads(lines[0], 0, &je);
    cr_assert_not_null(j1, "line 1 is JSON: %s", je.text);
    cr_assert_str_eq(sget(j1, "type"), "audit");
    cr_assert(is_rfc3339_millis_utc(sget(j1, "time")), "%s", sget(j1, "time"));
    cr_assert_str_eq(sget(j1, "cluster"), "prod-eu");
    cr_assert_str_eq(sget(j1, "region"), "eu-west-1");
    json_t *actor = json_object_get(j1, "actor");
    cr_assert_eq(json_integer_value(json_object_get(actor, "uid")), 1000);
    cr_assert_str_eq(sget(actor, "user"), "alice");
    cr_assert_str_eq(sget(j1, "role"), "operator");
    cr_assert_str_eq(sget(j1, "op"), "set_weights");
    json_t *want_args = json_loads(r1.args_json, 0, NULL);
    cr_assert(json_equal(json_object_get(j1, "args"), want_args), "args embedded as JSON");
    json_decref(want_args);
    cr_assert_str_eq(sget(j1, "result"), "ok");
    cr_assert(json_is_null(json_object_get(j1, "error")));
    cr_assert_eq(json_integer_value(json_object_get(j1, "generation_before")), 7);
    cr_assert_eq(json_integer_value(json_object_get(j1, "generation_after")), 8);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j1, "weights_before"), "blue")),
                 10000);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j1, "weights_after"), "green")),
                 1000);
    cr_assert(json_is_null(json_object_get(j1, "reason")));
    cr_assert_str_eq(sget(j1, "kind"), "change");
    /* the log fields DataDog and Log Analytics read (operations.md, "Logs") */
    cr_assert_str_eq(sget(j1, "timestamp"), sget(j1, "time"));
    cr_assert_str_eq(sget(j1, "service"), "cutover");
    cr_assert_str_eq(sget(j1, "level"), "info");
    cr_assert_eq(json_object_size(j1), 19, "exactly the documented keys");
    /* Key order is stable and as documented. */
    cr_assert_eq(strncmp(lines[0], "{\"type\":\"audit\",\"kind\":\"change\",\"time\":\"", 40), 0,
                 "%s", lines[0]);
    cr_assert(strstr(lines[0], "\"generation_before\":7,\"generation_after\":8") != NULL);

    json_t *j2 = json_loads(lines[1], 0, &je);
    cr_assert_not_null(j2, "line 2 is JSON: %s", je.text);
    actor = json_object_get(j2, "actor");
    cr_assert(json_is_null(json_object_get(actor, "uid")), "uid -1 is null");
    cr_assert_str_eq(sget(actor, "user"), "CN=deploy-bot,O=Example");
    cr_assert_str_eq(sget(j2, "result"), "refused");
    json_t *e = json_object_get(j2, "error");
    cr_assert_str_eq(sget(e, "code"), "forbidden");
    cr_assert_str_eq(sget(e, "message"), "role viewer may not \"rollback\"");
    cr_assert(json_is_null(json_object_get(j2, "args")), "an invalid fragment becomes null");
    cr_assert(json_is_null(json_object_get(j2, "weights_after")));
    cr_assert_eq(json_integer_value(json_object_get(j2, "generation_after")), 7);
    cr_assert_str_eq(sget(j2, "reason"),
                     "line1\nline2 \"quoted\" \\ tab\t bell\x07 caf\xc3\xa9 bad\xef\xbf\xbd end",
                     "escaped and read back exactly; an invalid byte becomes U+FFFD");
    cr_assert(strstr(lines[1], "\\n") != NULL && strstr(lines[1], "\\u0007") != NULL,
              "control characters are escaped: %s", lines[1]);
    json_decref(j1);
    json_decref(j2);
    free(text);
}

Test(audit, appends_to_an_existing_file, .init = setup, .fini = teardown)
{
    char err[256] = "";
    struct audit_record r = base_record();
    for (int round = 0; round < 2; round++) {
        struct audit *a = audit_open(path, 2, err, sizeof err);
        cr_assert_not_null(a, "%s", err);
        cr_assert_eq(audit_append(a, &r, NULL, NULL, err, sizeof err), 0, "%s", err);
        audit_close(a);
    }
    size_t len;
    char *text = slurp(path, &len);
    char *lines[4];
    cr_assert_eq(split_lines(text, len, lines, 4), 2, "reopening appends, never truncates");
    free(text);
}

Test(audit, out_callback_gets_the_same_line, .init = setup, .fini = teardown)
{
    char err[256] = "";
    struct capture c = {0};
    struct audit *a = audit_open(path, 4, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    struct audit_record r = base_record();
    r.reason = "canary step 2";
    cr_assert_eq(audit_append(a, &r, capture_fn, &c, err, sizeof err), 0, "%s", err);
    audit_close(a);

    cr_assert_eq(c.n, 1);
    size_t len;
    char *text = slurp(path, &len);
    cr_assert_eq(len, c.lens[0] + 1, "file line = callback line + newline");
    cr_assert_eq(memcmp(text, c.lines[0], c.lens[0]), 0);
    cr_assert_eq(text[len - 1], '\n');
    cr_assert_null(memchr(c.lines[0], '\n', c.lens[0]), "the callback line has no newline");
    free(text);
    capture_free(&c);
}

Test(audit, ring_returns_most_recent_in_order)
{
    char err[256] = "";
    struct audit *a = audit_open(NULL, 3, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    struct capture out = {0}, hist = {0};

    audit_recent(a, 10, capture_fn, &hist);
    cr_assert_eq(hist.n, 0, "empty ring");

    const char *ops[5] = {"op0", "op1", "op2", "op3", "op4"};
    for (int i = 0; i < 5; i++) {
        struct audit_record r = base_record();
        r.op = ops[i];
        cr_assert_eq(audit_append(a, &r, capture_fn, &out, err, sizeof err), 0, "%s", err);
    }
    cr_assert_eq(out.n, 5);

    audit_recent(a, 10, capture_fn, &hist);
    cr_assert_eq(hist.n, 3, "the ring keeps 3");
    for (size_t i = 0; i < 3; i++) {
        json_t *j = json_loads(hist.lines[i], 0, NULL);
        cr_assert_not_null(j);
        cr_assert_str_eq(sget(j, "op"), ops[2 + i], "oldest first");
        cr_assert_str_eq(hist.lines[i], out.lines[2 + i], "same line as written");
        json_decref(j);
    }
    capture_free(&hist);

    audit_recent(a, 2, capture_fn, &hist);
    cr_assert_eq(hist.n, 2, "history limit");
    cr_assert_str_eq(hist.lines[0], out.lines[3]);
    cr_assert_str_eq(hist.lines[1], out.lines[4]);
    capture_free(&hist);

    audit_recent(a, 0, capture_fn, &hist);
    cr_assert_eq(hist.n, 0);
    capture_free(&out);
    audit_close(a);
}

Test(audit, ring_partly_filled)
{
    char err[256] = "";
    struct audit *a = audit_open(NULL, 8, err, sizeof err);
    cr_assert_not_null(a);
    struct capture hist = {0};
    struct audit_record r = base_record();
    r.op = "first";
    cr_assert_eq(audit_append(a, &r, NULL, NULL, err, sizeof err), 0);
    r.op = "second";
    cr_assert_eq(audit_append(a, &r, NULL, NULL, err, sizeof err), 0);
    audit_recent(a, 100, capture_fn, &hist);
    cr_assert_eq(hist.n, 2);
    cr_assert(strstr(hist.lines[0], "\"op\":\"first\"") != NULL);
    cr_assert(strstr(hist.lines[1], "\"op\":\"second\"") != NULL);
    capture_free(&hist);
    audit_close(a);
}

Test(audit, null_path_is_memory_and_out_only)
{
    char err[256] = "";
    struct audit *a = audit_open(NULL, 1, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    struct capture c = {0}, hist = {0};
    struct audit_record r = base_record();
    cr_assert_eq(audit_append(a, &r, capture_fn, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.n, 1);
    json_t *j = json_loads(c.lines[0], 0, NULL);
    cr_assert_not_null(j);
    cr_assert_str_eq(sget(j, "op"), "set_weights");
    json_decref(j);
    audit_recent(a, 5, capture_fn, &hist);
    cr_assert_eq(hist.n, 1);
    cr_assert_str_eq(hist.lines[0], c.lines[0]);
    capture_free(&c);
    capture_free(&hist);
    audit_close(a);
    audit_close(NULL);
}

Test(audit, open_failures_have_messages, .init = setup, .fini = teardown)
{
    char err[256] = "";
    cr_assert_null(audit_open("/nonexistent-cutover-dir/audit.log", 4, err, sizeof err));
    cr_assert(strstr(err, "/nonexistent-cutover-dir/audit.log") != NULL, "%s", err);
    cr_assert(strstr(err, "No such file or directory") != NULL, "%s", err);

    err[0] = '\0';
    cr_assert_null(audit_open(tmpdir, 4, err, sizeof err), "a directory cannot be appended to");
    cr_assert(strstr(err, "Is a directory") != NULL, "%s", err);

    err[0] = '\0';
    cr_assert_null(audit_open(NULL, 0, err, sizeof err));
    cr_assert(strstr(err, "at least 1") != NULL, "%s", err);

    if (geteuid() != 0) {
        char ro[96], p[160];
        snprintf(ro, sizeof ro, "%s/ro", tmpdir);
        cr_assert_eq(mkdir(ro, 0500), 0);
        snprintf(p, sizeof p, "%s/audit.log", ro);
        err[0] = '\0';
        cr_assert_null(audit_open(p, 4, err, sizeof err));
        cr_assert(strstr(err, "Permission denied") != NULL, "%s", err);
        chmod(ro, 0700);
    }
}

Test(audit, write_failure_is_eio_and_not_kept)
{
    /* /dev/full fails every write with ENOSPC. */
    char err[256] = "";
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    struct audit *a = audit_open("/dev/full", 4, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    struct capture c = {0}, hist = {0};
    struct audit_record r = base_record();
    cr_assert_eq(audit_append(a, &r, capture_fn, &c, err, sizeof err), CUT_EIO);
    cr_assert(strstr(err, "audit /dev/full: write: No space left on device") != NULL, "%s", err);
    cr_assert_eq(c.n, 0, "a record that was not written is not echoed");
    audit_recent(a, 4, capture_fn, &hist);
    cr_assert_eq(hist.n, 0, "nor kept in the ring");
    audit_close(a);
}

Test(audit, huge_fields_are_truncated_under_64k, .init = setup, .fini = teardown)
{
    char err[256] = "";
    struct audit *a = audit_open(path, 2, err, sizeof err);
    cr_assert_not_null(a, "%s", err);

    size_t big = 200 * 1024;
    char *reason = malloc(big + 1);
    memset(reason, '\n', big); /* worst case for escaping: 2 bytes each */
    reason[big] = '\0';
    /* args: a JSON array of many control-character strings */
    char *args = malloc(big + 16);
    size_t k = 0;
    args[k++] = '[';
    while (k < big) {
        memcpy(args + k, "\"\\u0001\",", 9);
        k += 9;
    }
    memcpy(args + k, "1]", 3);
    char *user = malloc(big + 1);
    memset(user, 0x01, big);
    user[big] = '\0';

    struct audit_record r = base_record();
    r.reason = reason;
    r.args_json = args;
    r.weights_before_json = args;
    r.weights_after_json = args;
    r.user = user;
    r.ok = 0;
    r.error_code = "internal";
    r.error_message = user;
    struct capture c = {0};
    cr_assert_eq(audit_append(a, &r, capture_fn, &c, err, sizeof err), 0, "%s", err);
    audit_close(a);
    cr_assert_eq(c.n, 1);
    cr_assert_lt(c.lens[0] + 1, 64 * 1024, "line length %zu", c.lens[0]);

    size_t len;
    char *text = slurp(path, &len);
    cr_assert_lt(len, 64 * 1024);
    json_t *j = json_loads(text, 0, NULL);
    cr_assert_not_null(j, "still valid JSON");
    const char *rs = sget(j, "reason");
    cr_assert(strstr(rs, "...[truncated from 204800 bytes]") != NULL);
    json_t *ja = json_object_get(j, "args");
    cr_assert(json_is_true(json_object_get(ja, "truncated")), "args summarised");
    cr_assert_gt(json_integer_value(json_object_get(ja, "bytes")), 64 * 1024);
    cr_assert(json_is_string(json_object_get(ja, "prefix")));
    cr_assert_str_eq(sget(j, "op"), "set_weights", "short fields are intact");
    json_decref(j);
    free(text);
    capture_free(&c);
    free(reason);
    free(args);
    free(user);
}

Test(audit, only_the_reason_is_cut_when_that_is_enough)
{
    char err[256] = "";
    struct audit *a = audit_open(NULL, 1, err, sizeof err);
    cr_assert_not_null(a);
    size_t big = 100 * 1024;
    char *reason = malloc(big + 1);
    /* multi-byte characters: the cut must not split one */
    for (size_t i = 0; i + 2 <= big; i += 2)
        memcpy(reason + i, "\xc3\xa9", 2);
    reason[big] = '\0';
    struct audit_record r = base_record();
    r.reason = reason;
    struct capture c = {0};
    cr_assert_eq(audit_append(a, &r, capture_fn, &c, err, sizeof err), 0, "%s", err);
    json_t *j = json_loads(c.lines[0], 0, NULL);
    cr_assert_not_null(j);
    const char *rs = sget(j, "reason");
    cr_assert_eq(strncmp(rs, "\xc3\xa9\xc3\xa9", 4), 0);
    const char *m = strstr(rs, "...[truncated from 102400 bytes]");
    cr_assert_not_null(m);
    cr_assert_eq(m - rs, 4096, "cut to 4096 bytes, on a character boundary");
    cr_assert_str_eq(sget(json_object_get(j, "args"), "route"), "api", "args intact");
    cr_assert_null(json_object_get(json_object_get(j, "args"), "truncated"));
    json_decref(j);
    capture_free(&c);
    free(reason);
    audit_close(a);
}

/* ---- write-ahead records, start-up reading, history kinds (issue 11) ------------------------ */

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void append_n(struct audit *a, struct audit_record r, int n)
{
    char err[256];
    for (int i = 0; i < n; i++)
        cr_assert_eq(audit_append(a, &r, NULL, NULL, err, sizeof err), 0, "%s", err);
}

Test(audit, a_torn_last_line_is_set_aside_and_the_next_record_starts_a_line, .init = setup,
     .fini = teardown)
{
    char err[256] = "";
    struct audit *a = audit_open(path, 8, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    append_n(a, base_record(), 1);
    audit_close(a);
    /* A crash in the middle of the next write. */
    FILE *f = fopen(path, "ab");
    fputs("{\"type\":\"audit\",\"kind\":\"change\",\"time\":\"2026-", f);
    fclose(f);

    a = audit_open(path, 8, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    const struct audit_found *af = audit_found(a);
    cr_assert_eq(af->torn_bytes, strlen("{\"type\":\"audit\",\"kind\":\"change\",\"time\":\"2026-"));
    char torn[200];
    snprintf(torn, sizeof torn, "%s.torn", path);
    cr_assert_str_eq(af->torn_path, torn);
    cr_assert(af->has_change);
    cr_assert_eq(af->last_generation, 8, "the whole record before the torn line");
    append_n(a, base_record(), 1);
    audit_close(a);

    size_t len;
    char *text = slurp(path, &len);
    char *lines[8];
    cr_assert_eq(split_lines(text, len, lines, 8), 2, "two whole records, nothing glued");
    for (int i = 0; i < 2; i++) {
        json_t *v = json_loads(lines[i], 0, NULL);
        cr_assert_not_null(v, "line %d parses: %s", i, lines[i]);
        json_decref(v);
    }
    free(text);
    char *side = slurp(torn, &len);
    cr_assert_str_eq(side, "{\"type\":\"audit\",\"kind\":\"change\",\"time\":\"2026-\n");
    free(side);
}

Test(audit, start_up_finds_the_generation_in_force_after_the_last_change, .init = setup,
     .fini = teardown)
{
    char err[256] = "";
    struct audit *a = audit_open(path, 8, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    cr_assert_not(audit_found(a)->has_change, "an empty log has no change");
    struct audit_record r = base_record(); /* 7 -> 8 */
    append_n(a, r, 1);
    r.generation_before = 8;
    r.generation_after = 9;
    append_n(a, r, 1);
    /* 9 was recorded, then could not be made durable: the aborted record says 8 stays. */
    r.ok = 0;
    r.result = "aborted";
    r.error_code = "internal";
    r.error_message = "state file: disk full";
    r.generation_before = 9;
    r.generation_after = 8;
    append_n(a, r, 1);
    /* Refusals and reads afterwards do not move it. */
    struct audit_record f = base_record();
    f.kind = AUDIT_REFUSAL;
    f.ok = 0;
    f.error_code = "denied";
    f.error_message = "no";
    f.generation_before = f.generation_after = 8;
    append_n(a, f, 50);
    struct audit_record rd = base_record();
    rd.kind = AUDIT_READ;
    rd.op = "status";
    rd.generation_before = rd.generation_after = 8;
    append_n(a, rd, 50);
    audit_close(a);

    a = audit_open(path, 8, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    cr_assert(audit_found(a)->has_change);
    cr_assert_eq(audit_found(a)->last_generation, 8);
    cr_assert_eq(audit_found(a)->torn_bytes, 0);
    struct capture hist = {0};
    audit_history(a, 100, 0, capture_fn, &hist);
    cr_assert_eq(hist.n, 3, "the three changes are history again after a restart");
    capture_free(&hist);
    audit_close(a);
}

Test(audit, records_written_before_the_kind_field_are_read_by_their_generations, .init = setup,
     .fini = teardown)
{
    write_file(path,
               "{\"type\":\"audit\",\"op\":\"set-weights\",\"result\":\"ok\",\"generation_before\":4,"
               "\"generation_after\":5}\n"
               "{\"type\":\"audit\",\"op\":\"status\",\"result\":\"ok\",\"generation_before\":5,"
               "\"generation_after\":5}\n"
               "{\"type\":\"audit\",\"op\":\"set-weights\",\"result\":\"refused\","
               "\"generation_before\":5,\"generation_after\":6}\n");
    char err[256] = "";
    struct audit *a = audit_open(path, 8, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    cr_assert(audit_found(a)->has_change);
    cr_assert_eq(audit_found(a)->last_generation, 5);
    audit_close(a);
}

Test(audit, history_shows_changes_first_and_refusals_on_request)
{
    char err[256] = "";
    struct audit *a = audit_open(NULL, 8, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    append_n(a, base_record(), 2);
    struct audit_record f = base_record();
    f.kind = AUDIT_REFUSAL;
    f.ok = 0;
    f.error_code = "denied";
    f.error_message = "no";
    append_n(a, f, 100); /* a flood of refusals does not push the changes out */
    struct audit_record rd = base_record();
    rd.kind = AUDIT_READ;
    append_n(a, rd, 10);

    struct capture hist = {0};
    audit_history(a, 100, 0, capture_fn, &hist);
    cr_assert_eq(hist.n, 2);
    for (size_t i = 0; i < hist.n; i++)
        cr_assert_not_null(strstr(hist.lines[i], "\"kind\":\"change\""));
    struct capture newest = {0};
    audit_history(a, 5, 1, capture_fn, &newest);
    cr_assert_eq(newest.n, 5, "the newest five of changes and refusals");
    for (size_t i = 0; i < newest.n; i++)
        cr_assert_not_null(strstr(newest.lines[i], "\"kind\":\"refusal\""), "%s",
                           newest.lines[i]);
    struct capture all = {0};
    audit_history(a, 16, 1, capture_fn, &all);
    cr_assert_eq(all.n, 10, "two changes and the eight refusals kept");
    cr_assert_not_null(strstr(all.lines[0], "\"kind\":\"change\""), "oldest first: %s",
                       all.lines[0]);
    cr_assert_not_null(strstr(all.lines[1], "\"kind\":\"change\""));
    cr_assert_not_null(strstr(all.lines[2], "\"kind\":\"refusal\""));
    capture_free(&hist);
    capture_free(&newest);
    capture_free(&all);
    audit_close(a);
}

Test(audit, weights_are_written_exactly)
{
    char err[256] = "";
    struct audit *a = audit_open(NULL, 4, err, sizeof err);
    struct audit_record r = base_record();
    r.args_json = "{\"route\":\"api\",\"weights\":{\"blue\":97.21,\"green\":2.79}}";
    r.weights_before_json = "{\"blue\":33.33,\"green\":66.67}";
    r.weights_after_json = "{\"blue\":97.21,\"green\":2.79}";
    struct capture c = {0};
    cr_assert_eq(audit_append(a, &r, capture_fn, &c, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(strstr(c.lines[0], "\"weights_after\":{\"blue\":97.21,\"green\":2.79}"),
                       "%s", c.lines[0]);
    cr_assert_not_null(strstr(c.lines[0], "\"weights_before\":{\"blue\":33.33,\"green\":66.67}"));
    cr_assert_not_null(strstr(c.lines[0], "\"blue\":97.21,\"green\":2.79}}"), "args too");
    cr_assert_null(strstr(c.lines[0], "9999"), "no float noise: %s", c.lines[0]);
    capture_free(&c);
    audit_close(a);
}

Test(audit, a_refusal_keeps_at_most_a_kilobyte_of_what_it_asked)
{
    char err[256] = "";
    struct audit *a = audit_open(NULL, 4, err, sizeof err);
    static char args[9000];
    int n = snprintf(args, sizeof args, "{\"route\":\"");
    memset(args + n, 'x', 8000);
    snprintf(args + n + 8000, sizeof args - (size_t)n - 8000, "\"}");
    struct audit_record r = base_record();
    r.kind = AUDIT_REFUSAL;
    r.ok = 0;
    r.error_code = "invalid_argument";
    r.error_message = "too long";
    r.args_json = args;
    struct capture c = {0};
    cr_assert_eq(audit_append(a, &r, capture_fn, &c, err, sizeof err), 0, "%s", err);
    cr_assert_lt(c.lens[0], 2048, "a refusal record stays small: %zu bytes", c.lens[0]);
    cr_assert_not_null(strstr(c.lines[0], "\"truncated\":true"));
    cr_assert_not_null(strstr(c.lines[0], "\"result\":\"refused\""));
    r.count = 41;
    cr_assert_eq(audit_append(a, &r, capture_fn, &c, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(strstr(c.lines[1], "\"count\":41"), "%s", c.lines[1]);
    capture_free(&c);
    audit_close(a);
}

Test(audit, reads_and_refusals_are_synced_by_audit_sync, .init = setup, .fini = teardown)
{
    char err[256] = "";
    struct audit *a = audit_open(path, 4, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    struct audit_record r = base_record();
    r.kind = AUDIT_READ;
    append_n(a, r, 3);
    cr_assert_eq(audit_sync(a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(audit_sync(a, err, sizeof err), 0, "nothing left to sync");
    audit_close(a);
    size_t len;
    char *text = slurp(path, &len);
    char *lines[8];
    cr_assert_eq(split_lines(text, len, lines, 8), 3, "reads are in the file");
    free(text);
}

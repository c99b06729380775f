/* output.c - what cutoverctl prints: usage errors, the --json document, per-replica failures,
 * the verdict line, and the reports of status, history, version and the changes.
 */
#include "control/cli/output.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/version.h"
#include "control/cli/plan_text.h"
#include "control/cli/values.h"

/* ---- output helpers ------------------------------------------------------------------------- */

int cli_usage_error(const struct cli *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cutoverctl: %s\nTry 'cutoverctl --help'.\n", msg);
    if (c && c->json) {
        json_t *doc =
            json_pack("{s:b, s:i, s:{s:s, s:s}, s:[]}", "ok", 0, "exit_code", CLI_EXIT_USAGE,
                      "error", "code", "usage", "message", msg, "replicas");
        char *s = json_dumps(doc, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(doc);
    }
    return CLI_EXIT_USAGE;
}

/* ---- reports -------------------------------------------------------------------------------- */

/* One replica as JSON: {"socket" | "endpoint" and "address", "ok", "generation", "result" |
 * "error"}. New reference. */
static json_t *replica_json(const struct cli_replica *r)
{
    json_t *o = r->https ? json_pack("{s:s, s:s, s:b}", "endpoint", r->endpoint, "address",
                                     r->addrlen ? r->addr_text : "", "ok", r->ok)
                         : json_pack("{s:s, s:b}", "socket", r->socket, "ok", r->ok);
    json_object_set_new(o, "generation",
                        r->has_generation ? json_integer(r->generation) : json_null());
    if (r->ok) {
        json_t *res = json_object_get(r->reply, "result");
        json_object_set(o, "result", res ? res : json_null());
    } else {
        json_t *err = json_object_get(r->reply, "error");
        if (err && !strcmp(r->code, cli_jstr(err, "code")))
            json_object_set(o, "error", err);
        else
            json_object_set_new(o, "error",
                                json_pack("{s:s, s:s}", "code", r->code, "message", r->msg));
        if (!strcmp(r->code, "wait_timeout"))
            json_object_set(o, "result", json_object_get(r->reply, "result"));
    }
    return o;
}

void cli_print_json_doc(const struct cli *c, const char *command, int code, json_t *extra)
{
    json_t *doc =
        json_pack("{s:b, s:i, s:s}", "ok", code == 0, "exit_code", code, "command", command);
    if (extra)
        json_object_update(doc, extra);
    json_decref(extra);
    json_t *arr = json_array();
    for (size_t i = 0; i < c->n; i++)
        json_array_append_new(arr, replica_json(&c->rs[i]));
    json_object_set_new(doc, "replicas", arr);
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(doc);
}

size_t cli_width_of_sockets(const struct cli *c)
{
    size_t w = 0;
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->rs[i].socket) > w)
            w = strlen(c->rs[i].socket);
    return w;
}

/* The server's error.details, one line each, under a failure line: "PATH: MESSAGE" (plus "(line
 * L, column C)" when the problem has a place in the file), e.g. the problems of a refused
 * reload. Prints nothing when the reply has no details. */
static void print_error_details(const struct cli_replica *r, const char *indent)
{
    const json_t *err = json_object_get(r->reply, "error");
    if (r->ok || strcmp(r->code, cli_jstr(err, "code"))) /* not the server's error */
        return;
    const json_t *det = json_object_get(err, "details");
    size_t i;
    const json_t *d;
    json_array_foreach(det, i, d)
    {
        if (!json_is_object(d)) {
            char *s = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
            printf("%s%s\n", indent, s ? s : "?");
            free(s);
            continue;
        }
        const json_t *ln = json_object_get(d, "line"), *col = json_object_get(d, "column");
        printf("%s%s: %s", indent, *cli_jstr(d, "path") ? cli_jstr(d, "path") : "(root)",
               *cli_jstr(d, "message") ? cli_jstr(d, "message") : "(no message)");
        if (json_is_integer(ln) && json_integer_value(ln) > 0) {
            printf(" (line %" JSON_INTEGER_FORMAT, json_integer_value(ln));
            if (json_is_integer(col) && json_integer_value(col) > 0)
                printf(", column %" JSON_INTEGER_FORMAT, json_integer_value(col));
            putchar(')');
        }
        putchar('\n');
    }
}

void cli_print_failure_line(const struct cli *c, const struct cli_replica *r)
{
    printf("  %-*s  FAILED  %s: %s\n", (int)cli_width_of_sockets(c), r->socket, r->code, r->msg);
    print_error_details(r, "      ");
}

void cli_print_verdict(const struct cli *c, const char *what, int code)
{
    if (code == CLI_EXIT_OK)
        return;
    size_t nok = 0;
    char failed[1024];
    size_t off = 0;
    failed[0] = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->rs[i].ok) {
            nok++;
            continue;
        }
        int k = snprintf(failed + off, sizeof failed - off, "%s%s (%s)", off ? ", " : "",
                         c->rs[i].socket, c->rs[i].code);
        if (k > 0 && (size_t)k < sizeof failed - off)
            off += (size_t)k;
    }
    if (code == CLI_EXIT_PARTIAL)
        fprintf(stderr, "cutoverctl: %s: PARTIAL: %zu of %zu replicas succeeded; failed: %s\n",
                what, nok, c->n, failed);
    else
        fprintf(stderr, "cutoverctl: %s failed on every replica: %s\n", what, failed);
}

static void print_bar(long h)
{
    int full = h < 0 ? 0 : (int)((h * 20 + 5000) / 10000);
    putchar('[');
    for (int i = 0; i < 20; i++)
        putchar(i < full ? '#' : '.');
    putchar(']');
}

static void print_duration(long long s)
{
    if (s >= 86400)
        printf("%lldd%lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        printf("%lldh%02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        printf("%lldm%02llds", s / 60, s % 60);
    else
        printf("%llds", s);
}

static void print_status_route(const json_t *rt)
{
    const json_t *w = json_object_get(rt, "weights");
    const json_t *st = json_object_get(rt, "stable");
    const json_t *pools = json_object_get(rt, "pools");
    char b1[32], b2[32], ws[512];
    printf("  route %s\n", cli_jstr(rt, "name"));
    printf("    weights %s", cli_weights_str(w, ws, sizeof ws));
    if (st)
        printf("   (stable %s%s)", cli_weights_str(st, ws, sizeof ws),
               cli_weights_same(w, st) ? ", at stable" : "");
    putchar('\n');
    const json_t *coh = json_object_get(rt, "cohort");
    if (json_is_object(coh)) { /* the country cohort: its countries and own weights */
        const json_t *cc = json_object_get(coh, "countries");
        printf("    cohort country=");
        for (size_t i = 0; i < json_array_size(cc); i++)
            printf("%s%s", i ? "," : "", json_string_value(json_array_get(cc, i)));
        printf("   weights %s\n", cli_weights_str(json_object_get(coh, "weights"), ws, sizeof ws));
    }
    cli_print_status_plan(json_object_get(rt, "plan"));
    size_t pw = 4;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)w, k, v)
    {
        if (strlen(k) > pw)
            pw = strlen(k);
    }
    json_object_foreach((json_t *)pools, k, v)
    {
        if (strlen(k) > pw)
            pw = strlen(k);
    }
    /* one line per pool: weight, bar, stable, counters; then its endpoints */
    const json_t *order = json_is_object(w) && json_object_size(w) ? w : pools;
    json_object_foreach((json_t *)order, k, v)
    {
        const json_t *p = json_object_get(pools, k);
        long h = cli_json_pct(json_object_get(w, k));
        printf("    %-*s %6s%% ", (int)pw, k, cli_pct_str(h, b1, sizeof b1));
        print_bar(h);
        if (st)
            printf("  stable %5s%%",
                   cli_pct_str(cli_json_pct(json_object_get(st, k)), b2, sizeof b2));
        if (p) {
            json_t *rq = json_object_get(p, "requests"), *e5 = json_object_get(p, "responses_5xx");
            if (json_is_integer(rq))
                printf("  requests %" JSON_INTEGER_FORMAT, json_integer_value(rq));
            if (json_is_integer(e5))
                printf("  5xx %" JSON_INTEGER_FORMAT, json_integer_value(e5));
        }
        putchar('\n');
        size_t i;
        json_t *ep;
        json_array_foreach(json_object_get(p, "endpoints"), i, ep)
        {
            int drained = json_is_true(json_object_get(ep, "drained"));
            int added = json_is_true(json_object_get(ep, "added"));
            printf("      %-24s %s%s\n",
                   json_is_string(ep) ? json_string_value(ep) : cli_jstr(ep, "address"),
                   drained ? "DRAINED" : "serving", added ? " (added)" : "");
        }
    }
}

/* The fleet as one replica with a fleet store sees it (result.fleet). */
static void print_status_fleet(const json_t *fl)
{
    printf("  fleet %s: store %s, generation %" JSON_INTEGER_FORMAT ", %s\n", cli_jstr(fl, "prefix"),
           cli_jstr(fl, "store"), json_integer_value(json_object_get(fl, "generation")),
           json_is_true(json_object_get(fl, "converged")) ? "converged" : "NOT CONVERGED");
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(fl, "replicas"), i, x)
    {
        printf("    replica %-24s generation %-6" JSON_INTEGER_FORMAT " %s/%s %s%s\n",
               cli_jstr(x, "replica"), json_integer_value(json_object_get(x, "generation")),
               cli_jstr(x, "cluster"), cli_jstr(x, "region"), cli_jstr(x, "version"),
               json_is_true(json_object_get(x, "lagging")) ? "  LAGGING" : "");
    }
    json_array_foreach(json_object_get(fl, "pending"), i, x)
        printf("    rollback of route %s applied here, not yet written to the store\n",
               json_string_value(x));
    json_array_foreach(json_object_get(fl, "invalid"), i, x)
        printf("    INVALID value at %s (revision %" JSON_INTEGER_FORMAT "): %s\n",
               cli_jstr(x, "key"), json_integer_value(json_object_get(x, "revision")),
               cli_jstr(x, "error"));
}

/* A replica that failed: its line and the error's details; 1 when it failed. */
static int print_failed(const struct cli_replica *r)
{
    if (r->ok)
        return 0;
    printf("replica %s: FAILED %s: %s\n", r->socket, r->code, r->msg);
    print_error_details(r, "    ");
    return 1;
}

void cli_print_status(const struct cli *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct cli_replica *r = &c->rs[i];
        if (print_failed(r))
            continue;
        const json_t *res = json_object_get(r->reply, "result");
        printf("replica %s: generation %lld", r->socket, r->generation);
        if (*cli_jstr(res, "cluster"))
            printf(", cluster %s", cli_jstr(res, "cluster"));
        if (*cli_jstr(res, "region"))
            printf(", region %s", cli_jstr(res, "region"));
        json_t *up = json_object_get(res, "uptime_s");
        if (json_is_integer(up)) {
            printf(", up ");
            print_duration(json_integer_value(up));
        }
        putchar('\n');
        size_t k;
        json_t *rt;
        json_array_foreach(json_object_get(res, "routes"), k, rt)
        {
            print_status_route(rt);
        }
        if (json_object_get(res, "fleet"))
            print_status_fleet(json_object_get(res, "fleet"));
        if (c->n > 1 && i + 1 < c->n)
            putchar('\n');
    }
    if (c->n > 1) {
        printf("generations:");
        for (size_t i = 0; i < c->n; i++) {
            if (c->rs[i].has_generation)
                printf(" %s=%lld", c->rs[i].socket, c->rs[i].generation);
            else
                printf(" %s=?", c->rs[i].socket);
        }
        putchar('\n');
    }
}

/* One side of a history record's weights: "blue=90% green=10%", "(truncated)" for a summarised
 * fragment, "(none)" when missing. */
static const char *history_weights(const json_t *w, char *buf, size_t cap)
{
    if (json_is_object(w) && json_is_true(json_object_get(w, "truncated")))
        snprintf(buf, cap, "(truncated)");
    else if (json_is_object(w) && json_object_size(w))
        cli_weights_str(w, buf, cap);
    else
        snprintf(buf, cap, "(none)");
    return buf;
}

/* " ROUTE: BEFORE -> AFTER", or " ROUTE: WEIGHTS (unchanged)", for one route of a history
 * record (route "" when the record does not name it). */
static void print_history_weights(const char *route, const json_t *wb, const json_t *wa)
{
    char b[512], a[512];
    printf(" %s%s", route, *route ? ": " : "");
    if (cli_weights_same(wb, wa) && !json_object_get(wa, "truncated"))
        printf("%s (unchanged)", history_weights(wa, a, sizeof a));
    else
        printf("%s -> %s", history_weights(wb, b, sizeof b), history_weights(wa, a, sizeof a));
}

/* Weights keyed by route ({"app": {"blue": 90, ...}, ...}: a record that is not about one route,
 * like cutover's start), rather than one route's {"blue": 90, ...}. */
static int weights_by_route(const json_t *w)
{
    const char *k;
    json_t *v;
    if (!json_is_object(w) || !json_object_size(w) || json_object_get(w, "truncated"))
        return 0;
    json_object_foreach((json_t *)w, k, v)
    {
        if (!json_is_object(v))
            return 0;
    }
    return 1;
}

static void print_history_record(const json_t *rec)
{
    json_t *owned = NULL;
    if (json_is_string(rec)) { /* a raw audit line */
        owned = json_loads(json_string_value(rec), 0, NULL);
        if (!json_is_object(owned)) {
            printf("  %s\n", json_string_value(rec));
            json_decref(owned);
            return;
        }
        rec = owned;
    }
    /* the server's audit record: actor {uid, user}, role, op, args, result "ok" | "refused" |
     * "aborted", error {code, message}, count (N > 1: N refusals alike, coalesced),
     * generation_before/after, weights_before/after, reason */
    const json_t *actor = json_object_get(rec, "actor");
    const char *who = *cli_jstr(actor, "user") ? cli_jstr(actor, "user") : cli_jstr(rec, "user");
    const json_t *err = json_object_get(rec, "error");
    const char *ecode = json_is_object(err) ? cli_jstr(err, "code") : cli_jstr(rec, "error_code");
    const char *result = cli_jstr(rec, "result");
    const char *shown = *result ? result : "ok";
    if (!strcmp(result, "aborted"))
        shown = "ABORTED";
    else if (!strcmp(result, "refused") || json_is_false(json_object_get(rec, "ok")) || *ecode)
        shown = "REFUSED";
    char whobuf[160], status[64];
    snprintf(whobuf, sizeof whobuf, "%s%s%s%s", *who ? who : "?", *cli_jstr(rec, "role") ? "(" : "",
             cli_jstr(rec, "role"), *cli_jstr(rec, "role") ? ")" : "");
    json_t *count = json_object_get(rec, "count");
    if (json_is_integer(count) && json_integer_value(count) > 1)
        snprintf(status, sizeof status, "%s \u00d7%" JSON_INTEGER_FORMAT, shown,
                 json_integer_value(count));
    else
        snprintf(status, sizeof status, "%s", shown);
    json_t *gb = json_object_get(rec, "generation_before");
    json_t *ga = json_object_get(rec, "generation_after");
    printf("  %-24s %-16s %-16s %-7s", cli_jstr(rec, "time"), whobuf, cli_jstr(rec, "op"), status);
    if (json_is_integer(gb) && json_is_integer(ga))
        printf(" gen %" JSON_INTEGER_FORMAT "->%" JSON_INTEGER_FORMAT, json_integer_value(gb),
               json_integer_value(ga));
    /* the weights before and after, of the route (or of every route) the change is about */
    const json_t *wb = json_object_get(rec, "weights_before");
    const json_t *wa = json_object_get(rec, "weights_after");
    if (weights_by_route(wa)) {
        const char *route;
        json_t *w;
        int first = 1;
        json_object_foreach((json_t *)wa, route, w)
        {
            printf("%s", first ? "" : ";");
            print_history_weights(route, json_object_get(wb, route), w);
            first = 0;
        }
    } else if (json_is_object(wa)) {
        print_history_weights(cli_jstr(json_object_get(rec, "args"), "route"), wb, wa);
    }
    if (*ecode)
        printf(" [%s]%s%s", ecode, *cli_jstr(err, "message") ? " " : "", cli_jstr(err, "message"));
    if (*cli_jstr(rec, "reason"))
        printf(" \"%s\"", cli_jstr(rec, "reason"));
    if (*cli_jstr(rec, "replica")) /* a fleet store's history: the replica that took it */
        printf(" @%s", cli_jstr(rec, "replica"));
    putchar('\n');
    json_decref(owned);
}

void cli_print_history(const struct cli *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct cli_replica *r = &c->rs[i];
        if (print_failed(r))
            continue;
        const json_t *res = json_object_get(r->reply, "result");
        const json_t *recs = json_is_array(res) ? res : json_object_get(res, "records");
        printf("replica %s: generation %lld, %zu record(s)%s%s\n", r->socket, r->generation,
               json_array_size(recs), c->seen & OPTABLE_ARG_REFUSALS ? ", refusals included" : "",
               json_is_true(json_object_get(res, "fleet")) ? ", the fleet's changes" : "");
        size_t k;
        json_t *rec;
        json_array_foreach(recs, k, rec)
        {
            print_history_record(rec);
        }
    }
}

void cli_print_version(const struct cli *c)
{
    printf("cutoverctl %s (protocol 1)\n", CUTOVER_VERSION);
    for (size_t i = 0; i < c->n; i++) {
        const struct cli_replica *r = &c->rs[i];
        if (!r->ok) {
            cli_print_failure_line(c, r);
            continue;
        }
        const json_t *res = json_object_get(r->reply, "result");
        json_t *proto = json_object_get(res, "protocol");
        printf("  %-*s  cutover %s  protocol %" JSON_INTEGER_FORMAT "  generation %lld\n",
               (int)cli_width_of_sockets(c), r->socket, cli_jstr(res, "version"),
               json_is_integer(proto) ? json_integer_value(proto) : 0, r->generation);
    }
}

/* A short description of a mutating command's result. */
static void describe_result(const char *op, const json_t *args, const json_t *res, char *buf,
                            size_t cap)
{
    char w1[512], w2[512];
    if (!strcmp(op, "set-weights") || !strcmp(op, "rollback")) {
        snprintf(buf, cap, "weights %s%s",
                 cli_weights_str(json_object_get(res, "weights"), w1, sizeof w1),
                 json_is_true(json_object_get(res, "already")) ? " (already at stable)" : "");
    } else if (!strcmp(op, "promote")) {
        snprintf(buf, cap, "weights %s, stable %s",
                 cli_weights_str(json_object_get(res, "weights"), w1, sizeof w1),
                 cli_weights_str(json_object_get(res, "stable"), w2, sizeof w2));
    } else if (!strcmp(op, "drain") || !strcmp(op, "undrain")) {
        snprintf(buf, cap, "endpoint %s in pool %s %s", cli_jstr(args, "endpoint"),
                 cli_jstr(args, "pool"), !strcmp(op, "drain") ? "drained" : "serving again");
    } else if (!strcmp(op, "add-endpoint")) {
        snprintf(buf, cap, "endpoint %s added to pool %s", cli_jstr(args, "endpoint"),
                 cli_jstr(args, "pool"));
    } else if (!strcmp(op, "remove-endpoint")) {
        snprintf(buf, cap, "endpoint %s removed from pool %s", cli_jstr(args, "endpoint"),
                 cli_jstr(args, "pool"));
    } else if (!strcmp(op, "reload")) {
        snprintf(buf, cap, "configuration reloaded");
    } else if (!strncmp(op, "shift-", 6)) {
        const json_t *plan = json_object_get(res, "plan");
        if (json_is_object(plan))
            snprintf(buf, cap, "plan %s at %s", cli_jstr(plan, "state"),
                     cli_plan_where(plan, w1, sizeof w1));
        else
            snprintf(buf, cap, "(no plan in the reply)");
    } else {
        buf[0] = 0;
    }
}

void cli_print_mutation(const struct cli *c, const struct optable_op *cmd, const json_t *args)
{
    size_t nok = 0;
    for (size_t i = 0; i < c->n; i++)
        nok += c->rs[i].ok;
    const char *route = cli_jstr(args, "route");
    printf("%s%s%s: ok on %zu of %zu replica(s)%s\n", cmd->op, *route ? " " : "", route, nok, c->n,
           c->wait ? " (waited for the generation)" : "");
    for (size_t i = 0; i < c->n; i++) {
        const struct cli_replica *r = &c->rs[i];
        if (!r->ok) {
            cli_print_failure_line(c, r);
            continue;
        }
        char d[1200];
        describe_result(cmd->op, args, json_object_get(r->reply, "result"), d, sizeof d);
        printf("  %-*s  ok  generation %lld  %s\n", (int)cli_width_of_sockets(c), r->socket,
               r->generation, d);
    }
}

/* ---- diff ---------------------------------------------------------------------------------- */

/* "pool/endpoint, pool/endpoint" for a diff list, into buf; "" when empty. */
static const char *endpoint_list(const json_t *arr, char *buf, size_t cap)
{
    size_t off = 0, i;
    const json_t *x;
    buf[0] = 0;
    json_array_foreach(arr, i, x)
    {
        int n = snprintf(buf + off, cap - off, "%s%s/%s", off ? ", " : "", cli_jstr(x, "pool"),
                         cli_jstr(x, "endpoint"));
        if (n < 0 || (size_t)n >= cap - off)
            break;
        off += (size_t)n;
    }
    return buf;
}

static void print_diff_route(const json_t *rt)
{
    const json_t *w = json_object_get(rt, "weights"), *st = json_object_get(rt, "stable");
    const json_t *wr = json_object_get(w, "runtime"), *wc = json_object_get(w, "config");
    const json_t *sr = json_object_get(st, "runtime"), *sc = json_object_get(st, "config");
    int differs = json_is_true(json_object_get(rt, "differs"));
    char a[512], b[512];
    printf("  route %s: %s\n", cli_jstr(rt, "name"),
           differs ? "DIFFERS from the configuration" : "as configured");
    if (!cli_weights_same(wr, wc))
        printf("    weights  %s (configured %s)\n", cli_weights_str(wr, a, sizeof a),
               cli_weights_str(wc, b, sizeof b));
    else if (differs)
        printf("    weights  %s (as configured)\n", cli_weights_str(wr, a, sizeof a));
    if (st && !cli_weights_same(sr, sc))
        printf("    stable   %s (configured %s)\n", cli_weights_str(sr, a, sizeof a),
               cli_weights_str(sc, b, sizeof b));
    static const char *const lists[] = {"drained", "added", "removed"};
    for (size_t k = 0; k < 3; k++) {
        const json_t *l = json_object_get(rt, lists[k]);
        char eps[2048];
        if (json_array_size(l))
            printf("    %-8s %s\n", lists[k], endpoint_list(l, eps, sizeof eps));
    }
    if (json_is_string(json_object_get(rt, "plan")))
        printf("    plan     %s\n", cli_jstr(rt, "plan"));
}

void cli_print_diff(const struct cli *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct cli_replica *r = &c->rs[i];
        if (print_failed(r))
            continue;
        const json_t *res = json_object_get(r->reply, "result");
        printf("replica %s: generation %lld, against %s\n", r->socket, r->generation,
               *cli_jstr(res, "config_file") ? cli_jstr(res, "config_file") : "(configuration)");
        size_t k;
        json_t *rt;
        json_array_foreach(json_object_get(res, "routes"), k, rt)
        {
            print_diff_route(rt);
        }
    }
}

/* ---- dry runs ------------------------------------------------------------------------------ */

void cli_print_dry_run(const struct cli *c, const struct optable_op *cmd, const json_t *req)
{
    const json_t *args = json_object_get(req, "args");
    const char *route = cli_jstr(args, "route");
    char *text = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("DRY RUN %s%s%s (nothing is applied): would send %s\n", cmd->op, *route ? " " : "",
           route, text ? text : "?");
    free(text);
    for (size_t i = 0; i < c->n; i++) {
        const struct cli_replica *r = &c->rs[i];
        if (!r->ok) {
            printf("  %-*s  DRY RUN: would be refused: %s: %s\n", (int)cli_width_of_sockets(c),
                   r->socket, r->code, r->msg);
            print_error_details(r, "      ");
            continue;
        }
        const json_t *res = json_object_get(r->reply, "result");
        char wb[512], wa[512], d[1200];
        const json_t *before = json_object_get(res, "weights_before");
        const json_t *after = json_object_get(res, "weights_after");
        if (json_is_true(json_object_get(res, "would_change"))) {
            describe_result(cmd->op, args, res, d, sizeof d);
            printf("  %-*s  DRY RUN: would change route %s: %s -> %s, generation %lld -> %lld "
                   "(role %s)%s%s\n",
                   (int)cli_width_of_sockets(c), r->socket, cli_jstr(res, "route"),
                   history_weights(before, wb, sizeof wb), history_weights(after, wa, sizeof wa),
                   r->generation,
                   (long long)json_integer_value(json_object_get(res, "would_be_generation")),
                   cli_jstr(res, "role"), *d ? "; " : "", d);
        } else {
            printf("  %-*s  DRY RUN: would change nothing on route %s (%s), generation %lld "
                   "(role %s)\n",
                   (int)cli_width_of_sockets(c), r->socket, cli_jstr(res, "route"),
                   history_weights(after, wa, sizeof wa), r->generation, cli_jstr(res, "role"));
        }
    }
}

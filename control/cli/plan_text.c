/* plan_text.c - a shift plan in words: its steps, gates, progress line, where it is, why it
 * was rolled back; used by status and by the shift runner.
 */
#include "control/cli/plan_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/cli/values.h"

static double jnum(const json_t *o, const char *key, double dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* "%g" without trailing noise, into buf. */
static const char *num_str(double v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.6g", v);
    return buf;
}

const char *cli_gates_str(const json_t *g, char *buf, size_t cap)
{
    char a[32];
    size_t off = 0;
    buf[0] = 0;
    const json_t *v;
    if ((v = json_object_get(g, "max_5xx_percent")) && json_is_number(v))
        off += (size_t)snprintf(buf + off, cap - off, "5xx<=%s%%",
                                num_str(json_number_value(v), a, sizeof a));
    if (off < cap && (v = json_object_get(g, "max_p99_ms")) && json_is_number(v))
        off += (size_t)snprintf(buf + off, cap - off, "%sp99<=%sms", off ? " " : "",
                                num_str(json_number_value(v), a, sizeof a));
    if (off < cap && (v = json_object_get(g, "min_requests")) && json_is_number(v) &&
        json_number_value(v) > 0)
        off += (size_t)snprintf(buf + off, cap - off, "%smin %s req", off ? " " : "",
                                num_str(json_number_value(v), a, sizeof a));
    if (!buf[0])
        snprintf(buf, cap, "none (hold time only)");
    return buf;
}

const char *cli_steps_str(const json_t *steps, char *buf, size_t cap)
{
    size_t off = 0, i;
    json_t *v;
    buf[0] = 0;
    json_array_foreach(steps, i, v)
    {
        char p[32];
        int k = snprintf(buf + off, cap - off, "%s%s", i ? "," : "",
                         cli_pct_str(cli_json_pct(v), p, sizeof p));
        if (k < 0 || (size_t)k >= cap - off)
            break;
        off += (size_t)k;
    }
    return buf;
}

const char *cli_rolled_back_str(const json_t *plan, char *buf, size_t cap)
{
    const json_t *rb = json_object_get(plan, "rolled_back");
    char a[32], b[32];
    if (!json_is_object(rb)) {
        snprintf(buf, cap, "no gate reported");
        return buf;
    }
    const json_t *v = json_object_get(rb, "value"), *l = json_object_get(rb, "limit");
    if (!strcmp(cli_jstr(rb, "gate"), "manual")) { /* `rollback` by a person ends the plan */
        snprintf(buf, cap, "a manual rollback (gate manual)%s%s", *cli_jstr(rb, "at") ? " at " : "",
                 cli_jstr(rb, "at"));
        return buf;
    }
    if (!strcmp(cli_jstr(rb, "gate"), "unhealthy")) {
        snprintf(buf, cap, "gate unhealthy: the pool carried weight with no serving endpoint%s%s",
                 *cli_jstr(rb, "at") ? " at " : "", cli_jstr(rb, "at"));
        return buf;
    }
    snprintf(buf, cap, "gate %s: value %s > limit %s%s%s",
             *cli_jstr(rb, "gate") ? cli_jstr(rb, "gate") : "?",
             json_is_number(v) ? num_str(json_number_value(v), a, sizeof a) : "-",
             json_is_number(l) ? num_str(json_number_value(l), b, sizeof b) : "-",
             *cli_jstr(rb, "at") ? " at " : "", cli_jstr(rb, "at"));
    return buf;
}

const char *cli_plan_where(const json_t *plan, char *buf, size_t cap)
{
    const json_t *st = json_object_get(plan, "step");
    char p[32];
    snprintf(buf, cap, "step %lld/%zu  %s %s%%",
             json_is_integer(st) ? (long long)json_integer_value(st) + 1 : 0LL,
             json_array_size(json_object_get(plan, "steps")), cli_jstr(plan, "to"),
             cli_pct_str(cli_json_pct(json_object_get(plan, "weight")), p, sizeof p));
    return buf;
}

/* One part of a progress line. `drop` says which parts go first when the line must fit a
 * terminal (the highest rank first; 0: always kept): the gates' limits (5), the min_requests
 * note (4), the request count (3), then the measured 5xx share and p99 (2). The step, the
 * weight, PAUSED and the time to the next step stay. */
struct progress_part {
    char text[200];
    int drop;
};

#define CLI_PROGRESS_PARTS 10

static size_t add_part(struct progress_part *parts, size_t n, int drop, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t add_part(struct progress_part *parts, size_t n, int drop, const char *fmt, ...)
{
    va_list ap;
    if (n == CLI_PROGRESS_PARTS)
        return n;
    va_start(ap, fmt);
    vsnprintf(parts[n].text, sizeof parts[n].text, fmt, ap);
    va_end(ap);
    parts[n].drop = drop;
    return n + 1;
}

const char *cli_plan_progress_fit(const json_t *plan, const char *prefix, const char *suffix,
                                  size_t width, char *buf, size_t cap)
{
    struct progress_part parts[CLI_PROGRESS_PARTS];
    const json_t *g = json_object_get(plan, "gates"), *w = json_object_get(plan, "window");
    char a[32], where[200];
    size_t n = add_part(parts, 0, 0, "%s", cli_plan_where(plan, where, sizeof where));
    const json_t *cc = json_object_get(json_object_get(plan, "cohort"), "countries");
    if (json_array_size(cc)) { /* a cohort plan moves only these countries' clients */
        char list[80] = "";
        size_t i, o = 0;
        const json_t *x;
        json_array_foreach(cc, i, x)
        {
            if (o < sizeof list)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? "," : "",
                                      json_string_value(x) ? json_string_value(x) : "?");
        }
        n = add_part(parts, n, 0, " (cohort %s)", list);
    }
    if (!strcmp(cli_jstr(plan, "state"), "paused"))
        n = add_part(parts, n, 0, "  PAUSED");
    if (json_is_object(w)) {
        const json_t *r5 = json_object_get(w, "ratio_percent"), *p99 = json_object_get(w, "p99_ms");
        const json_t *l5 = json_object_get(g, "max_5xx_percent"),
                     *lp = json_object_get(g, "max_p99_ms"),
                     *mr = json_object_get(g, "min_requests");
        if (json_is_number(r5))
            n = add_part(parts, n, 2, "  5xx %.2f%%", json_number_value(r5));
        if (json_is_number(r5) && json_is_number(l5))
            n = add_part(parts, n, 5, " (<= %s%%)", num_str(json_number_value(l5), a, sizeof a));
        if (json_is_number(p99))
            n = add_part(parts, n, 2, "  p99 %.0fms", json_number_value(p99));
        if (json_is_number(p99) && json_is_number(lp))
            n = add_part(parts, n, 5, " (<= %sms)", num_str(json_number_value(lp), a, sizeof a));
        n = add_part(parts, n, 3, "  %.0f req", jnum(w, "requests", 0));
        if (json_is_number(mr) && json_number_value(mr) > 0)
            n = add_part(parts, n, 4, " (min %s)", num_str(json_number_value(mr), a, sizeof a));
    }
    const json_t *fl = json_object_get(plan, "fleet");
    if (json_is_object(fl)) /* a fleet plan: the window is the fleet's */
        n = add_part(parts, n, 3, "  fleet %.0f/%.0f at step, leader %s",
                     jnum(fl, "replicas_at_step", 0), jnum(fl, "replicas", 0),
                     *cli_jstr(fl, "leader") ? cli_jstr(fl, "leader") : "(none yet)");
    const json_t *nx = json_object_get(plan, "next_step_in_s");
    if (json_is_number(nx))
        n = add_part(parts, n, 0, "  next step in %.0fs", json_number_value(nx));

    size_t len = strlen(prefix) + strlen(suffix);
    for (size_t i = 0; i < n; i++)
        len += strlen(parts[i].text);
    for (int rank = 5; rank > 0 && width && len > width; rank--)
        for (size_t i = 0; i < n; i++)
            if (parts[i].drop == rank) {
                len -= strlen(parts[i].text);
                parts[i].text[0] = 0;
            }
    size_t off = (size_t)snprintf(buf, cap, "%s", prefix);
    for (size_t i = 0; i < n && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s", parts[i].text);
    if (off < cap)
        snprintf(buf + off, cap - off, "%s", suffix);
    if (width && width < cap && strlen(buf) > width)
        buf[width] = 0;
    return buf;
}

const char *cli_plan_progress(const json_t *plan, char *buf, size_t cap)
{
    return cli_plan_progress_fit(plan, "", "", 0, buf, cap);
}

void cli_print_status_plan(const json_t *plan)
{
    char where[160], gs[200], ss[400], line[600];
    if (!json_is_object(plan))
        return;
    const char *state = cli_jstr(plan, "state");
    int live = !strcmp(state, "running") || !strcmp(state, "paused");
    printf("    plan %s  %s (from %s, steps %s, hold %.0fs)  gates %s", state,
           cli_plan_where(plan, where, sizeof where), cli_jstr(plan, "from"),
           cli_steps_str(json_object_get(plan, "steps"), ss, sizeof ss), jnum(plan, "hold_s", 0),
           cli_gates_str(json_object_get(plan, "gates"), gs, sizeof gs));
    const json_t *w = json_object_get(plan, "window");
    if (json_is_object(w))
        printf("  window %.0f req, %.0f 5xx (%.2f%%), p99 %.0fms", jnum(w, "requests", 0),
               jnum(w, "errors_5xx", 0), jnum(w, "ratio_percent", 0), jnum(w, "p99_ms", 0));
    if (live && json_is_number(json_object_get(plan, "next_step_in_s")))
        printf("  next step in %.0fs", jnum(plan, "next_step_in_s", 0));
    const json_t *fl = json_object_get(plan, "fleet");
    if (json_is_object(fl))
        printf("  fleet: %.0f of %.0f replicas at the step, leader %s",
               jnum(fl, "replicas_at_step", 0), jnum(fl, "replicas", 0),
               *cli_jstr(fl, "leader") ? cli_jstr(fl, "leader") : "(none yet)");
    putchar('\n');
    if (!strcmp(state, "rolled_back"))
        printf("      ROLLED BACK: %s\n", cli_rolled_back_str(plan, line, sizeof line));
    if (*cli_jstr(plan, "actor") || *cli_jstr(plan, "reason") || *cli_jstr(plan, "started_at"))
        printf("      started %s by %s: \"%s\"\n", cli_jstr(plan, "started_at"),
               *cli_jstr(plan, "actor") ? cli_jstr(plan, "actor") : "?", cli_jstr(plan, "reason"));
}

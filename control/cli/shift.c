/* shift.c - the gated shift: starts the server-side plan (op shift) on every replica,
 * watches it through status once a second until it is promoted or rolled back, and aborts it
 * (shift-abort) on SIGINT/SIGTERM. Owns the process's only globals: the signal flag and its
 * self-pipe.
 */
#include "control/cli/shift.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "control/cli/fanout.h"
#include "control/cli/output.h"
#include "control/cli/plan_text.h"
#include "control/cli/transport.h"
#include "control/cli/values.h"

/* ---- the signal flag ------------------------------------------------------------------------- */

static volatile sig_atomic_t g_stop; /* SIGINT/SIGTERM seen (shift only) */
static int g_sigpipe[2] = {-1, -1};  /* self-pipe that wakes the shift's interval wait */

static void on_stop_signal(int sig)
{
    int saved = errno;
    g_stop = sig;
    if (g_sigpipe[1] >= 0) {
        char b = 1;
        ssize_t w = write(g_sigpipe[1], &b, 1);
        (void)w;
    }
    errno = saved;
}

/* ---- shift: a server-side plan, watched from here ------------------------------------------- */

#define CLI_SHIFT_POLL_MS 1000  /* status poll period while a plan runs */
#define CLI_SHIFT_LOST_MS 30000 /* a replica whose status fails this long is given up (exit 4) */

/* What one replica's plan did, as far as this invocation knows. */
struct shift_rep {
    int started;      /* the shift was acknowledged */
    int done;         /* the outcome is final */
    int code;         /* this replica's exit code, once done */
    char outcome[24]; /* promoted, rolled_back, aborted, refused, lost, interrupted, ... */
    char started_at[64];
    json_t *plan;    /* owned: the last plan seen (shift reply, status, abort reply) */
    json_t *weights; /* owned: the route's weights in the last status */
    long long fail_since;
    char shown[64]; /* "state step" of the last line printed for it */
    char msg[900];  /* why it ended, for people */
    int abort_sent, abort_ok;
    char abort_msg[800];
};

struct shift {
    const char *route;
    json_t *args; /* the shift's arguments as sent */
    struct shift_rep r[CLI_MAX_REPLICAS];
    int live_lines; /* lines of the live block on the terminal */
    long long t0;
};

/* The route object named `route` in a status result, or NULL. */
static const json_t *status_route(const json_t *reply, const char *route)
{
    const json_t *routes = json_object_get(json_object_get(reply, "result"), "routes");
    const json_t *x;
    size_t j;
    json_array_foreach(routes, j, x)
    {
        if (!strcmp(cli_jstr(x, "name"), route))
            return x;
    }
    return NULL;
}

static void shift_set_plan(struct shift_rep *sr, const json_t *plan)
{
    if (!json_is_object(plan))
        return;
    json_decref(sr->plan);
    sr->plan = json_deep_copy(plan);
}

static void shift_finish(struct shift_rep *sr, int code, const char *outcome, const char *fmt, ...)
{
    va_list ap;
    sr->done = 1;
    sr->code = code;
    snprintf(sr->outcome, sizeof sr->outcome, "%s", outcome);
    va_start(ap, fmt);
    vsnprintf(sr->msg, sizeof sr->msg, fmt, ap);
    va_end(ap);
}

/* The width of the terminal on stdout, for the live block (only drawn on a terminal): its
 * window size (TIOCGWINSZ), else $COLUMNS (a terminal that reports no size), else 80. */
static int term_cols(void)
{
    struct winsize ws;
    long long n;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    if (cli_parse_ll(getenv("COLUMNS"), 1, 100000, &n) == 0)
        return (int)n;
    return 80;
}

/* Erases the live block (TTY only); the cursor ends at the start of its first line. */
static void shift_live_clear(struct shift *sh)
{
    if (!sh->live_lines)
        return;
    printf("\r\033[K");
    for (int i = 1; i < sh->live_lines; i++)
        printf("\033[1A\r\033[K");
    sh->live_lines = 0;
    fflush(stdout);
}

/* Draws the live block: one progress line per replica whose plan still runs, each fitted into
 * the terminal's width less one column (a line that wrapped would break shift_live_clear). */
static void shift_live_draw(const struct cli *c, struct shift *sh)
{
    size_t width = (size_t)term_cols() - 1;
    for (size_t i = 0; i < c->n; i++) {
        const struct shift_rep *sr = &sh->r[i];
        if (!sr->started || sr->done || !sr->plan)
            continue;
        char prefix[512], full[1400];
        snprintf(prefix, sizeof prefix, "%s%s", c->n > 1 ? c->rs[i].socket : "",
                 c->n > 1 ? "  " : "");
        cli_plan_progress_fit(sr->plan, prefix, sr->fail_since ? "  (status failing)" : "",
                              width ? width : 1, full, sizeof full);
        printf("%s%s", sh->live_lines ? "\n" : "", full);
        sh->live_lines++;
    }
    fflush(stdout);
}

/* A permanent progress line (above the live block on a TTY). */
static void shift_say(const struct cli *c, struct shift *sh, size_t i, const char *fmt, ...)
{
    char line[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (c->json)
        return;
    shift_live_clear(sh);
    if (c->n > 1 && i < c->n)
        printf("%s  %s\n", c->rs[i].socket, line);
    else
        printf("%s\n", line);
    fflush(stdout);
}

/* One line per change of a replica's plan (state or step). */
static void shift_note_change(const struct cli *c, struct shift *sh, size_t i)
{
    struct shift_rep *sr = &sh->r[i];
    char key[64], line[1024];
    const json_t *st = json_object_get(sr->plan, "step");
    snprintf(key, sizeof key, "%s %lld", cli_jstr(sr->plan, "state"),
             json_is_integer(st) ? (long long)json_integer_value(st) : -1LL);
    if (!strcmp(key, sr->shown))
        return;
    snprintf(sr->shown, sizeof sr->shown, "%s", key);
    const char *state = cli_jstr(sr->plan, "state");
    if (strcmp(state, "running") && strcmp(state, "paused"))
        return;
    if (c->tty) /* the live block shows the numbers; keep a short history line above it */
        shift_say(c, sh, i, "%s  %s", cli_plan_where(sr->plan, line, sizeof line), state);
    else
        shift_say(c, sh, i, "%s", cli_plan_progress(sr->plan, line, sizeof line));
}

/* One JSON line on stdout (--json). Takes o. */
static void print_json_line(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(o);
    fflush(stdout);
}

/* Reads one status poll's outcome for replica i. */
static void shift_take_status(struct cli *c, struct shift *sh, size_t i)
{
    struct cli_replica *r = &c->rs[i];
    struct shift_rep *sr = &sh->r[i];
    char b[600], w[160], ws[512];
    if (!r->ok) {
        if (r->exit_class != CLI_EXIT_UNREACH) { /* denied, not_found: asking again won't help */
            shift_finish(sr, r->exit_class, "failed", "status failed: %s: %s", r->code, r->msg);
            return;
        }
        long long now = (long long)clock_mono_ms();
        if (!sr->fail_since)
            sr->fail_since = now;
        if (now - sr->fail_since >= CLI_SHIFT_LOST_MS)
            shift_finish(sr, CLI_EXIT_UNREACH, "lost",
                         "no status for %.0f s (%s: %s); the plan goes on in cutover without "
                         "this client: watch it with `cutoverctl status %s`",
                         (double)(now - sr->fail_since) / 1000.0, r->code, r->msg, sh->route);
        return;
    }
    sr->fail_since = 0;
    const json_t *rt = status_route(r->reply, sh->route);
    if (!rt) {
        shift_finish(sr, CLI_EXIT_USAGE, "lost", "status no longer reports route %s", sh->route);
        return;
    }
    json_decref(sr->weights);
    sr->weights = json_deep_copy(json_object_get(rt, "weights"));
    const json_t *plan = json_object_get(rt, "plan");
    if (!json_is_object(plan)) {
        shift_finish(sr, CLI_EXIT_USAGE, "lost",
                     "status no longer reports a plan for route %s (weights now %s)", sh->route,
                     cli_weights_str(sr->weights, ws, sizeof ws));
        return;
    }
    if (sr->started_at[0] && *cli_jstr(plan, "started_at") &&
        strcmp(sr->started_at, cli_jstr(plan, "started_at"))) {
        shift_finish(sr, CLI_EXIT_USAGE, "lost",
                     "route %s now has another plan (started %s by %s); this one ended unseen",
                     sh->route, cli_jstr(plan, "started_at"), cli_jstr(plan, "actor"));
        return;
    }
    shift_set_plan(sr, plan);
    const char *state = cli_jstr(plan, "state");
    cli_plan_where(plan, w, sizeof w);
    if (!strcmp(state, "promoted")) {
        shift_finish(sr, CLI_EXIT_OK, "promoted", "PROMOTED: %s (weights %s)", w,
                     cli_weights_str(sr->weights, ws, sizeof ws));
    } else if (!strcmp(state, "rolled_back")) {
        int manual = !strcmp(cli_jstr(json_object_get(plan, "rolled_back"), "gate"), "manual");
        shift_finish(sr, CLI_EXIT_ROLLEDBACK, "rolled_back",
                     "ROLLED BACK by %s at %s: %s (weights now %s)",
                     manual ? "an operator" : "cutover", w, cli_rolled_back_str(plan, b, sizeof b),
                     cli_weights_str(sr->weights, ws, sizeof ws));
    } else if (!strcmp(state, "aborted")) {
        shift_finish(sr, CLI_EXIT_USAGE, "aborted",
                     "ABORTED by someone else at %s (weights %s stay applied)", w,
                     cli_weights_str(sr->weights, ws, sizeof ws));
    } else if (strcmp(state, "running") && strcmp(state, "paused")) {
        shift_finish(sr, CLI_EXIT_USAGE, "unknown",
                     "the plan is in a state this client does not "
                     "know: '%s'",
                     state);
    }
}

/* One JSON object per replica for --json lines. New reference. */
static json_t *shift_rep_json(const struct cli *c, const struct shift *sh, size_t i, int final)
{
    const struct cli_replica *r = &c->rs[i];
    const struct shift_rep *sr = &sh->r[i];
    json_t *o = json_pack("{s:s}", "socket", r->socket);
    if (final) {
        json_object_set_new(o, "ok", json_boolean(sr->done && sr->code == 0));
        json_object_set_new(o, "outcome", json_string(sr->outcome[0] ? sr->outcome : "unknown"));
        json_object_set_new(o, "exit_code", json_integer(sr->code));
        if (sr->msg[0])
            json_object_set_new(o, "message", json_string(sr->msg));
        if (sr->abort_sent)
            json_object_set_new(
                o, "abort", json_pack("{s:b, s:s}", "ok", sr->abort_ok, "message", sr->abort_msg));
        json_object_set_new(o, "weights", sr->weights ? json_incref(sr->weights) : json_null());
    } else {
        json_object_set_new(o, "ok", json_boolean(r->ok));
        json_object_set_new(o, "generation",
                            r->has_generation ? json_integer(r->generation) : json_null());
        if (!r->ok)
            json_object_set_new(o, "error",
                                json_pack("{s:s, s:s}", "code", r->code, "message", r->msg));
    }
    json_object_set_new(o, "plan", sr->plan ? json_incref(sr->plan) : json_null());
    return o;
}

/* Waits until `until` (monotonic ms) or a signal. */
static void shift_wait(long long until)
{
    for (;;) {
        if (g_stop)
            return;
        long long rem = until - (long long)clock_mono_ms();
        if (rem <= 0)
            return;
        struct pollfd p = {.fd = g_sigpipe[0], .events = POLLIN};
        if (poll(&p, 1, (int)rem) > 0) {
            char b[16];
            ssize_t n = read(g_sigpipe[0], b, sizeof b);
            (void)n;
        }
    }
}

/* Ctrl-C / SIGTERM: shift-abort on every replica whose plan may still run. The current step
 * stays applied (that is what abort means). */
static void shift_abort_all(struct cli *c, struct shift *sh)
{
    json_t *reqs[CLI_MAX_REPLICAS];
    size_t n = 0;
    json_t *req = json_pack("{s:s, s:{s:s, s:s}}", "op", "shift-abort", "args", "route", sh->route,
                            "reason", "interrupted by operator");
    for (size_t i = 0; i < c->n; i++) {
        reqs[i] = sh->r[i].started && !sh->r[i].done ? req : NULL;
        n += reqs[i] != NULL;
    }
    if (n)
        cli_exchange(c, reqs, c->timeout_ms, NULL, 0);
    json_decref(req);
    for (size_t i = 0; i < c->n; i++) {
        struct shift_rep *sr = &sh->r[i];
        struct cli_replica *r = &c->rs[i];
        char w[160];
        if (!reqs[i])
            continue;
        sr->abort_sent = 1;
        if (r->ok) {
            shift_set_plan(sr, json_object_get(json_object_get(r->reply, "result"), "plan"));
            sr->abort_ok = 1;
            snprintf(sr->abort_msg, sizeof sr->abort_msg,
                     "plan aborted; the last step stays applied: %s",
                     sr->plan ? cli_plan_where(sr->plan, w, sizeof w) : "(no plan in the reply)");
        } else {
            snprintf(sr->abort_msg, sizeof sr->abort_msg,
                     "shift-abort FAILED (%s: %s): the plan may still be running there; abort "
                     "it with `cutoverctl shift-abort %s --reason ...`",
                     r->code, r->msg, sh->route);
        }
        shift_finish(sr, CLI_EXIT_INTERRUPTED, "interrupted", "%s", sr->abort_msg);
    }
}

/* The exit code over the replicas' outcomes: 6 when any was rolled back; 0 when all promoted;
 * 5 when some did and some did not; else the failure class (2 before 3 before 4). */
static int shift_fold(const struct cli *c, const struct shift *sh)
{
    size_t nok = 0;
    int worst = 0;
    for (size_t i = 0; i < c->n; i++) {
        int k = sh->r[i].code;
        if (k == CLI_EXIT_ROLLEDBACK)
            return CLI_EXIT_ROLLEDBACK;
        if (k == 0)
            nok++;
        else if (!worst || k < worst)
            worst = k;
    }
    if (nok == c->n)
        return CLI_EXIT_OK;
    if (nok > 0)
        return CLI_EXIT_PARTIAL;
    return worst ? worst : CLI_EXIT_UNREACH;
}

/* A refusal of the shift itself. `plan_exists` (the route already has a running or paused plan:
 * the server's code; `busy` with "reason": "plan_exists" is accepted too) is refused like
 * `conflict`: exit 2, since retrying cannot help until the other plan ends. */
static int shift_refusal_class(const struct cli_replica *r)
{
    const json_t *err = json_object_get(r->reply, "error");
    if (!strcmp(r->code, "plan_exists") ||
        (!strcmp(r->code, "busy") &&
         (!strcmp(cli_jstr(err, "reason"), "plan_exists") ||
          !strcmp(cli_jstr(json_object_get(err, "details"), "code"), "plan_exists"))))
        return CLI_EXIT_USAGE;
    if (!strcmp(r->code, "unknown_op"))
        return CLI_EXIT_USAGE;
    return r->exit_class;
}

json_t *cli_shift_args(struct cli *c)
{
    const char *route = c->pos[1];
    if (!*route)
        return cli_usage_error(c, "shift: ROUTE must not be empty"), NULL;
    if (!c->to || !*c->to)
        return cli_usage_error(c, "shift: --to POOL is required"), NULL;
    if (!c->steps)
        return cli_usage_error(c, "shift: --steps P1,P2,... is required (e.g. 10,25,50,100)"), NULL;
    if (!c->interval)
        return cli_usage_error(c, "shift: --interval D is required: how long cutover holds each "
                                  "step (and judges its gates) before the next one, e.g. 30s"),
               NULL;
    if (!c->reason || !*c->reason || strlen(c->reason) > CLI_MAX_REASON)
        return cli_usage_error(c,
                               "shift: --reason TEXT (1..%d characters) is required (it goes to "
                               "the audit log)",
                               CLI_MAX_REASON),
               NULL;
    long long ms = cli_parse_duration(c->interval);
    if (ms < 0)
        return cli_usage_error(c, "shift: --interval '%s' is not a duration (30s, 2m, 1h)",
                               c->interval),
               NULL;
    if (ms > 86400000LL || ms % 1000)
        return cli_usage_error(c,
                               "shift: --interval '%s': cutover holds each step a whole number of "
                               "seconds, 0s..24h",
                               c->interval),
               NULL;
    json_t *steps = json_array();
    const char *s = c->steps;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char tok[32];
        long h;
        if (len == 0 || len >= sizeof tok) {
            json_decref(steps);
            return cli_usage_error(c, "shift: --steps '%s' is not a list of percentages", c->steps),
                   NULL;
        }
        memcpy(tok, s, len);
        tok[len] = 0;
        if (cli_parse_pct(tok, &h) < 0) {
            json_decref(steps);
            return cli_usage_error(c, "shift: step '%s' is not a percentage 0..100", tok), NULL;
        }
        if (json_array_size(steps) == CLI_MAX_STEPS) {
            json_decref(steps);
            return cli_usage_error(c, "shift: at most %d steps", CLI_MAX_STEPS), NULL;
        }
        json_array_append_new(steps, cli_pct_json(h));
        if (!comma)
            break;
        s = comma + 1;
    }
    json_t *gates = json_object();
    for (size_t i = 0; i < c->ngates; i++) {
        char err[300];
        if (cli_parse_gate(c->gates[i], gates, err, sizeof err) < 0) {
            json_decref(steps);
            json_decref(gates);
            return cli_usage_error(c, "shift: %s", err), NULL;
        }
    }
    if (c->seen & OPTABLE_ARG_MIN_REQUESTS)
        json_object_set_new(gates, "min_requests", json_integer(c->min_requests));
    json_t *args = json_pack("{s:s, s:s, s:o, s:I}", "route", route, "to", c->to, "steps", steps,
                             "hold_s", (json_int_t)(ms / 1000));
    if (json_object_size(gates))
        json_object_set_new(args, "gates", gates);
    else
        json_decref(gates);
    if (c->cohort) { /* "SG,MY" -> {"country": ["SG", "MY"]}; cutover checks the codes */
        json_t *cc = json_array();
        for (const char *t = c->cohort; *t;) {
            size_t n = strcspn(t, ",");
            json_array_append_new(cc, json_stringn(t, n));
            t += n;
            if (*t == ',')
                t++;
        }
        json_object_set_new(args, "cohort", json_pack("{s:o}", "country", cc));
    }
    json_object_set_new(args, "reason", json_string(c->reason));
    if (c->seen & OPTABLE_ARG_EXPECT)
        json_object_set_new(args, "expect_generation", json_integer(c->expect));
    return args;
}

int cli_shift_run(struct cli *c, const struct optable_op *cmd)
{
    static struct shift sh; /* large; one per process */
    (void)cmd;
    sh.route = c->pos[1];
    sh.args = cli_shift_args(c);
    if (!sh.args)
        return CLI_EXIT_USAGE;

    /* Ctrl-C and SIGTERM abort the plan (the current step stays applied) */
    if (pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        json_decref(sh.args);
        return cli_usage_error(c, "pipe: %s", strerror(errno));
    }
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char gs[200], ss[400];
    sh.t0 = (long long)clock_mono_ms();
    json_t *req = json_pack("{s:s, s:O}", "op", "shift", "args", sh.args);
    cli_exchange_all(c, req);
    json_decref(req);
    if (c->wait)
        cli_barrier(c);
    size_t nstarted = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct cli_replica *r = &c->rs[i];
        struct shift_rep *sr = &sh.r[i];
        /* acknowledged: a replica that then missed the --wait barrier still runs the plan */
        if (json_is_true(json_object_get(r->reply, "ok"))) {
            const json_t *res = json_object_get(r->reply, "result");
            sr->started = 1;
            nstarted++;
            shift_set_plan(sr, json_object_get(res, "plan"));
            sr->weights = json_deep_copy(json_object_get(res, "weights"));
            snprintf(sr->started_at, sizeof sr->started_at, "%s", cli_jstr(sr->plan, "started_at"));
        } else {
            int answered = r->reply != NULL; /* the server said no, or never answered */
            shift_finish(sr, shift_refusal_class(r), answered ? "refused" : "not_started",
                         "shift %s: %s: %s", answered ? "refused" : "not started", r->code, r->msg);
        }
    }
    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < c->n; i++)
            json_array_append_new(arr, shift_rep_json(c, &sh, i, 0));
        print_json_line(json_pack("{s:s, s:s, s:O, s:o}", "event", "started", "route", sh.route,
                                  "request", sh.args, "replicas", arr));
    } else {
        printf("shift %s to %s: steps %s, hold %llds, gates %s; started on %zu of %zu "
               "replica(s)\n",
               sh.route, c->to, cli_steps_str(json_object_get(sh.args, "steps"), ss, sizeof ss),
               (long long)json_integer_value(json_object_get(sh.args, "hold_s")),
               cli_gates_str(json_object_get(sh.args, "gates"), gs, sizeof gs), nstarted, c->n);
        for (size_t i = 0; i < c->n; i++) {
            if (!c->rs[i].ok) {
                cli_print_failure_line(c, &c->rs[i]);
                if (!strcmp(c->rs[i].code, "unknown_op"))
                    printf("  (%s does not know server-side shift plans: upgrade it, or walk the "
                           "weights with set-weights)\n",
                           c->rs[i].socket);
            }
        }
        fflush(stdout);
        for (size_t i = 0; i < c->n; i++)
            if (sh.r[i].started && sh.r[i].plan)
                shift_note_change(c, &sh, i);
    }

    /* watch the plans: status once a second until each one ends */
    for (long long k = 1;; k++) {
        size_t left = 0;
        for (size_t i = 0; i < c->n; i++)
            left += sh.r[i].started && !sh.r[i].done;
        if (!left || g_stop)
            break;
        if (c->tty && !c->json) {
            shift_live_clear(&sh);
            shift_live_draw(c, &sh);
        }
        shift_wait(sh.t0 + k * CLI_SHIFT_POLL_MS);
        if (g_stop)
            break;
        json_t *sreq = json_pack("{s:s, s:{s:s}}", "op", "status", "args", "route", sh.route);
        json_t *reqs[CLI_MAX_REPLICAS];
        for (size_t i = 0; i < c->n; i++)
            reqs[i] = sh.r[i].started && !sh.r[i].done ? sreq : NULL;
        cli_exchange(c, reqs, c->timeout_ms, NULL, 0);
        json_decref(sreq);
        json_t *arr = c->json ? json_array() : NULL;
        for (size_t i = 0; i < c->n; i++) {
            if (!reqs[i])
                continue;
            shift_take_status(c, &sh, i);
            if (arr)
                json_array_append_new(arr, shift_rep_json(c, &sh, i, 0));
            else if (!sh.r[i].done && sh.r[i].plan)
                shift_note_change(c, &sh, i);
            else if (sh.r[i].done)
                shift_say(c, &sh, i, "%s", sh.r[i].msg);
        }
        if (arr)
            print_json_line(json_pack("{s:s, s:f, s:o}", "event", "progress", "elapsed_s",
                                      (double)((long long)clock_mono_ms() - sh.t0) / 1000.0,
                                      "replicas", arr));
    }
    if (c->tty && !c->json)
        shift_live_clear(&sh);
    int interrupted = g_stop != 0;
    if (interrupted)
        shift_abort_all(c, &sh);
    int code = interrupted ? CLI_EXIT_INTERRUPTED : shift_fold(c, &sh);

    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < c->n; i++)
            json_array_append_new(arr, shift_rep_json(c, &sh, i, 1));
        print_json_line(json_pack("{s:s, s:b, s:i, s:s, s:s, s:s, s:O, s:o}", "event", "result",
                                  "ok", code == 0, "exit_code", code, "command", "shift", "route",
                                  sh.route, "to", c->to, "request", sh.args, "replicas", arr));
    } else {
        size_t nprom = 0;
        for (size_t i = 0; i < c->n; i++)
            nprom += sh.r[i].code == 0 && sh.r[i].done;
        printf("shift %s: promoted on %zu of %zu replica(s)%s\n", sh.route, nprom, c->n,
               interrupted ? " (interrupted)" : "");
        int sw = (int)cli_width_of_sockets(c);
        for (size_t i = 0; i < c->n; i++)
            printf("  %-*s  %s\n", sw, c->rs[i].socket,
                   sh.r[i].msg[0] ? sh.r[i].msg : "no outcome");
    }
    /* the closing lines on stderr: what a pipeline log must show */
    for (size_t i = 0; i < c->n && code; i++) {
        const struct shift_rep *sr = &sh.r[i];
        if (sr->code == 0 && sr->done)
            continue;
        if (interrupted && !sr->abort_sent)
            continue;
        fprintf(stderr, "cutoverctl: shift %s on %s: %s\n", sh.route, c->rs[i].socket,
                interrupted ? sr->abort_msg : sr->msg);
    }
    if (interrupted)
        fprintf(stderr,
                "cutoverctl: shift %s interrupted by %s (operator): the plan was aborted, "
                "the last applied step stays in place\n",
                sh.route, g_stop == SIGTERM ? "SIGTERM" : "SIGINT");
    else if (code == CLI_EXIT_PARTIAL)
        fprintf(stderr, "cutoverctl: shift %s: PARTIAL: promoted on some replicas only\n",
                sh.route);
    for (size_t i = 0; i < c->n; i++) {
        json_decref(sh.r[i].plan);
        json_decref(sh.r[i].weights);
    }
    json_decref(sh.args);
    return code;
}

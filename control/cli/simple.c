/* simple.c - the commands that are one request to every replica (all but shift): their
 * arguments from the positionals and options, the exchange, the report.
 */
#include "control/cli/simple.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/cli/fanout.h"
#include "control/cli/output.h"
#include "control/cli/shift.h"
#include "control/cli/values.h"

/* ---- simple commands: one request to every replica ------------------------------------------- */

/* Builds the "args" object of a simple command from its positionals and options, checking what
 * can be checked without the server. Returns NULL after printing a usage error. */
static json_t *build_args(struct cli *c, const struct optable_op *cmd)
{
    if (!strcmp(cmd->op, "shift")) { /* only with --dry-run: else cli_shift_run */
        json_t *sa = cli_shift_args(c);
        if (sa)
            json_object_set_new(sa, "dry_run", json_true());
        return sa;
    }
    json_t *args = json_object();
    size_t np = c->npos - 1;
    const char **p = c->pos + 1;
    if (!strcmp(cmd->op, "set-weights")) {
        json_t *w = json_object();
        long sum = 0;
        json_object_set_new(args, "route", json_string(p[0]));
        for (size_t i = 1; i < np; i++) {
            const char *eq = strchr(p[i], '=');
            long h;
            if (!eq || eq == p[i]) {
                cli_usage_error(c, "set-weights: '%s' is not POOL=PCT", p[i]);
                goto fail_w;
            }
            if (cli_parse_pct(eq + 1, &h) < 0) {
                cli_usage_error(c,
                                "set-weights: '%s': the weight must be a percentage 0..100 with at "
                                "most two decimals",
                                p[i]);
                goto fail_w;
            }
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(eq - p[i]), p[i]);
            if (json_object_get(w, name)) {
                cli_usage_error(c, "set-weights: pool '%s' given twice", name);
                goto fail_w;
            }
            json_object_set_new(w, name, cli_pct_json(h));
            sum += h;
        }
        if (sum != 10000) {
            char b[32];
            cli_usage_error(c, "set-weights: the weights sum to %s%%, not 100%%",
                            cli_pct_str(sum, b, sizeof b));
            goto fail_w;
        }
        json_object_set_new(args, "weights", w);
        goto common;
    fail_w:
        json_decref(w);
        json_decref(args);
        return NULL;
    }
    for (size_t i = 0; i < np && i < 3 && cmd->pos_names[i]; i++) {
        if (!*p[i]) {
            cli_usage_error(c, "%s: %s must not be empty", cmd->op, cmd->pos_names[i]);
            json_decref(args);
            return NULL;
        }
        json_object_set_new(args, cmd->pos_names[i], json_string(p[i]));
    }
common:
    if (cmd->args & OPTABLE_ARG_REASON) {
        if (c->reason) {
            size_t rl = strlen(c->reason);
            if (rl == 0 || rl > CLI_MAX_REASON) {
                cli_usage_error(c, "%s: --reason must be 1..%d characters", cmd->op,
                                CLI_MAX_REASON);
                json_decref(args);
                return NULL;
            }
            json_object_set_new(args, "reason", json_string(c->reason));
        } else if (cmd->reason_required) {
            cli_usage_error(c, "%s: --reason TEXT is required (it goes to the audit log)", cmd->op);
            json_decref(args);
            return NULL;
        }
    }
    if (c->seen & OPTABLE_ARG_EXPECT)
        json_object_set_new(args, "expect_generation", json_integer(c->expect));
    if (c->seen & OPTABLE_ARG_LIMIT)
        json_object_set_new(args, "limit", json_integer(c->limit));
    if (c->seen & OPTABLE_ARG_REFUSALS)
        json_object_set_new(args, "refusals", json_true());
    if (c->route)
        json_object_set_new(args, "route", json_string(c->route));
    if (c->since)
        json_object_set_new(args, "since", json_string(c->since));
    if (c->actor)
        json_object_set_new(args, "actor", json_string(c->actor));
    if (c->seen & OPTABLE_ARG_DRY_RUN)
        json_object_set_new(args, "dry_run", json_true());
    return args;
}

int cli_simple_run(struct cli *c, const struct optable_op *cmd)
{
    json_t *args = build_args(c, cmd);
    if (!args)
        return CLI_EXIT_USAGE;
    json_t *req = json_pack("{s:s}", "op", cmd->op);
    if (json_object_size(args))
        json_object_set(req, "args", args);
    int dry = (c->seen & OPTABLE_ARG_DRY_RUN) != 0;
    cli_exchange_all(c, req);
    if (cmd->mutates && c->wait && !dry) /* a dry run makes no generation to wait for */
        cli_barrier(c);
    int code = cli_fold_exit(c);
    if (code == CLI_EXIT_OK && !strcmp(cmd->op, "status") && !cli_fleet_converged(c))
        code = CLI_EXIT_PARTIAL; /* a fleet store's replicas are not all at its generation */
    if (c->json) {
        cli_print_json_doc(c, cmd->op, code,
                           dry ? json_pack("{s:b, s:O}", "dry_run", 1, "request", req) : NULL);
    } else if (dry) {
        cli_print_dry_run(c, cmd, req);
    } else if (!strcmp(cmd->op, "diff")) {
        cli_print_diff(c);
    } else if (!strcmp(cmd->op, "status")) {
        cli_print_status(c);
    } else if (!strcmp(cmd->op, "history")) {
        cli_print_history(c);
    } else if (!strcmp(cmd->op, "version")) {
        cli_print_version(c);
    } else {
        cli_print_mutation(c, cmd, args);
    }
    cli_print_verdict(c, cmd->op, code);
    json_decref(req);
    json_decref(args);
    return code;
}

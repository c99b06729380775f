/* options.c - cutoverctl's command line: global options, the command, its positionals and
 * options checked against the operation table (control/optable.h), and --help. */
#include "control/cli/options.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/cli/output.h"
#include "control/cli/values.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: cutoverctl [OPTIONS] COMMAND [ARGS]\n"
            "\n"
            "Options (anywhere on the line):\n"
            "  --socket PATH           a replica's control socket; repeat for every replica\n"
            "                          (default: $CUTOVER_SOCKET or " CLI_DEFAULT_SOCKET ")\n"
            "  --endpoint unix:PATH    the same as --socket PATH\n"
            "  --endpoint https://HOST:PORT\n"
            "                          a replica's HTTPS admin API (mutual TLS); a name that\n"
            "                          resolves to several addresses is one replica per address\n"
            "  --cacert FILE           CA bundle the admin API's certificate must chain to\n"
            "                          (default: $CUTOVER_CACERT, else the system's)\n"
            "  --cert FILE, --key FILE the client certificate (chain) and its key (default:\n"
            "                          $CUTOVER_CERT, $CUTOVER_KEY; the key may be in --cert)\n"
            "  --json                  print one JSON document\n"
            "  --timeout SECONDS       bound on connect + each request (default 5)\n"
            "  --wait                  after a change, wait until every replica reports the\n"
            "                          generation it acknowledged\n"
            "  --wait-timeout SECONDS  bound on --wait (default 10)\n"
            "  --id ID                 request id (default: cutoverctl-PID-N)\n"
            "  --dry-run               (changes) validate and answer what would change, on\n"
            "                          every replica, with the caller's role; nothing applied\n"
            "  -h, --help              this help\n"
            "\n"
            "Commands:\n");
    const struct optable_op *op;
    for (size_t i = 0; (op = optable_get(i)) != NULL; i++)
        fprintf(f, "  %s\n      %s\n", op->usage, op->help);
    fprintf(f, "\nGates (shift, repeatable --gate): 5xx<=PERCENT%% (e.g. 5xx<=1%%), p99<=DURATION "
               "(p99<=500ms, p99<=2s).\n"
               "\nExit codes: 0 ok (shift: promoted), 2 usage error or refused as invalid, 3 "
               "denied,\n4 unreachable or timeout, 5 partial across replicas, 6 the shift was "
               "rolled back by a gate,\n130 interrupted (shift: plan aborted, last step left "
               "applied). See docs/cutoverctl.md.\n");
}

struct optdef {
    const char *name;
    int has_arg;
    unsigned bit; /* OPTABLE_ARG_* for command options, 0 for global ones */
};

static const struct optdef optdefs[] = {
    {"--socket", 1, 0},
    {"--endpoint", 1, 0},
    {"--cacert", 1, 0},
    {"--cert", 1, 0},
    {"--key", 1, 0},
    {"--json", 0, 0},
    {"--timeout", 1, 0},
    {"--wait", 0, 0},
    {"--wait-timeout", 1, 0},
    {"--id", 1, 0},
    {"--reason", 1, OPTABLE_ARG_REASON},
    {"--expect-generation", 1, OPTABLE_ARG_EXPECT},
    {"--limit", 1, OPTABLE_ARG_LIMIT},
    {"--to", 1, OPTABLE_ARG_TO},
    {"--gate", 1, OPTABLE_ARG_GATE},
    {"--min-requests", 1, OPTABLE_ARG_MIN_REQUESTS},
    {"--refusals", 0, OPTABLE_ARG_REFUSALS},
    {"--steps", 1, OPTABLE_ARG_STEPS},
    {"--interval", 1, OPTABLE_ARG_INTERVAL},
    {"--dry-run", 0, OPTABLE_ARG_DRY_RUN},
    {"--route", 1, OPTABLE_ARG_ROUTE},
    {"--since", 1, OPTABLE_ARG_SINCE},
    {"--actor", 1, OPTABLE_ARG_ACTOR},
    {"--cohort", 1, OPTABLE_ARG_COHORT},
};

static int apply_option(struct cli *c, const char *name, const char *val)
{
    if (!strcmp(name, "--socket") || !strcmp(name, "--endpoint")) {
        if (c->ntargets == CLI_MAX_REPLICAS)
            return cli_usage_error(c, "at most %d replicas", CLI_MAX_REPLICAS);
        struct cli_target *t = &c->targets[c->ntargets];
        memset(t, 0, sizeof *t);
        t->text = val;
        if (!strcmp(name, "--endpoint") && !strncmp(val, "https://", 8)) {
            char err[160];
            if (ctlurl_parse(val, &t->url, err, sizeof err) < 0)
                return cli_usage_error(c, "--endpoint %s: %s", val, err);
            t->https = 1;
        } else if (!strcmp(name, "--endpoint")) {
            if (!strncmp(val, "http://", 7))
                return cli_usage_error(c, "--endpoint %s: the admin API speaks HTTPS only", val);
            if (strncmp(val, "unix:", 5))
                return cli_usage_error(
                    c, "--endpoint %s: expected https://HOST[:PORT] or unix:PATH", val);
            t->text = val + 5;
        }
        if (!t->https && !*t->text)
            return cli_usage_error(c, "%s: empty socket path", name);
        c->ntargets++;
    } else if (!strcmp(name, "--cacert") || !strcmp(name, "--cert") || !strcmp(name, "--key")) {
        if (!*val)
            return cli_usage_error(c, "%s: empty file name", name);
        if (!strcmp(name, "--cacert"))
            c->cacert = val;
        else if (!strcmp(name, "--cert"))
            c->cert = val;
        else
            c->key = val;
    } else if (!strcmp(name, "--json")) {
        c->json = 1;
    } else if (!strcmp(name, "--wait")) {
        c->wait = 1;
    } else if (!strcmp(name, "--timeout") || !strcmp(name, "--wait-timeout")) {
        long long ms = cli_parse_duration(val);
        if (ms <= 0 || ms > 86400000LL)
            return cli_usage_error(c, "%s '%s': expected a positive number of seconds", name, val);
        if (!strcmp(name, "--timeout"))
            c->timeout_ms = ms;
        else
            c->wait_timeout_ms = ms;
    } else if (!strcmp(name, "--id")) {
        if (!*val || strlen(val) > 100)
            return cli_usage_error(c, "--id must be 1..100 characters");
        c->id = val;
    } else if (!strcmp(name, "--reason")) {
        c->reason = val;
    } else if (!strcmp(name, "--expect-generation")) {
        if (cli_parse_ll(val, 0, LLONG_MAX, &c->expect) < 0)
            return cli_usage_error(c, "--expect-generation '%s': expected a generation number",
                                   val);
    } else if (!strcmp(name, "--limit")) {
        if (cli_parse_ll(val, 1, 1000, &c->limit) < 0)
            return cli_usage_error(c, "--limit '%s': expected 1..1000", val);
    } else if (!strcmp(name, "--to")) {
        c->to = val;
    } else if (!strcmp(name, "--gate")) {
        if (c->ngates == sizeof c->gates / sizeof c->gates[0])
            return cli_usage_error(c, "at most %zu --gate options", c->ngates);
        c->gates[c->ngates++] = val;
    } else if (!strcmp(name, "--min-requests")) {
        if (cli_parse_ll(val, 0, 100000000LL, &c->min_requests) < 0)
            return cli_usage_error(c, "--min-requests '%s': expected 0..100000000", val);
    } else if (!strcmp(name, "--steps")) {
        c->steps = val;
    } else if (!strcmp(name, "--interval")) {
        c->interval = val;
    } else if (!strcmp(name, "--route") || !strcmp(name, "--actor") ||
               !strcmp(name, "--since")) {
        if (!*val)
            return cli_usage_error(c, "%s must not be empty", name);
        if (!strcmp(name, "--route"))
            c->route = val;
        else if (!strcmp(name, "--actor"))
            c->actor = val;
        else
            c->since = val;
    } else if (!strcmp(name, "--cohort")) {
        if (strncmp(val, "country=", 8) != 0 || !val[8])
            return cli_usage_error(c, "--cohort '%s': expected country=CC[,CC...] (e.g. "
                                      "country=SG,MY)", val);
        c->cohort = val + 8;
    }
    return 0;
}

int cli_options_parse(struct cli *c, int argc, char **argv, const struct optable_op **cmd_out)
{
    int only_pos = 0;
    *cmd_out = NULL;
    c->timeout_ms = 5000;
    c->wait_timeout_ms = 10000;

    /* --json first, so that usage errors found before it are reported as JSON too */
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--json"))
            c->json = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1]) {
            if (c->npos == CLI_MAX_POS)
                return cli_usage_error(c, "too many arguments");
            c->pos[c->npos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            help(stdout);
            return 0; /* *cmd_out stays NULL */
        }
        char name[64];
        const char *eq = strchr(a, '=');
        const char *val = NULL;
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        const struct optdef *od = NULL;
        for (size_t k = 0; k < sizeof optdefs / sizeof optdefs[0]; k++)
            if (!strcmp(optdefs[k].name, name))
                od = &optdefs[k];
        if (!od)
            return cli_usage_error(c, "unknown option '%s'", name);
        if (od->has_arg) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return cli_usage_error(c, "option %s needs a value", name);
        } else if (eq) {
            return cli_usage_error(c, "option %s takes no value", name);
        }
        c->seen |= od->bit;
        int rc = apply_option(c, name, val);
        if (rc)
            return rc;
    }
    if (c->npos == 0)
        return cli_usage_error(c, "no command given");
    const struct optable_op *cmd = optable_find(c->pos[0]);
    if (!cmd)
        return cli_usage_error(c, "unknown command '%s'", c->pos[0]);
    if (c->seen & ~cmd->args) {
        for (size_t k = 0; k < sizeof optdefs / sizeof optdefs[0]; k++)
            if (optdefs[k].bit & c->seen & ~cmd->args)
                return cli_usage_error(c, "%s does not take %s", cmd->op, optdefs[k].name);
    }
    size_t nargs = c->npos - 1;
    if (nargs < cmd->min_pos || nargs > cmd->max_pos)
        return cli_usage_error(c, "usage: cutoverctl %s", cmd->usage);
    *cmd_out = cmd;
    return 0;
}

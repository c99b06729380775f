/* Unit tests for control/cli/options.c: cutoverctl's command line read against the operation
 * table. Usage errors print to stderr; what is tested is the exit code and what was read. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdlib.h>
#include <string.h>

#include "control/cli/options.h"

static struct cli *cli;

static void setup(void)
{
    cli = calloc(1, sizeof *cli);
    cr_assert_not_null(cli);
    cr_redirect_stdout(); /* --help and the usage errors print; the tests read exit codes */
    cr_redirect_stderr();
}

static void teardown(void)
{
    free(cli);
}

/* Parses argv (NULL-terminated, without the program name). */
static int parse(const struct optable_op **cmd, char **args)
{
    char *argv[32] = {"cutoverctl"};
    int argc = 1;
    while (args[argc - 1])
        argv[argc] = args[argc - 1], argc++;
    return cli_options_parse(cli, argc, argv, cmd);
}

#define PARSE(cmd, ...) parse(cmd, (char *[]){__VA_ARGS__, NULL})

TestSuite(cli_options, .init = setup, .fini = teardown);

Test(cli_options, a_change_with_its_options)
{
    const struct optable_op *cmd = NULL;
    int rc = PARSE(&cmd, "--socket", "/a.sock", "set-weights", "web", "blue=90", "green=10",
                   "--reason=canary", "--expect-generation", "7", "--socket=/b.sock",
                   "--timeout", "2.5", "--wait");
    cr_assert_eq(rc, 0);
    cr_assert_eq(cmd, optable_find("set-weights"));
    cr_assert_eq(cli->npos, 4);
    cr_assert_str_eq(cli->pos[0], "set-weights");
    cr_assert_str_eq(cli->pos[3], "green=10");
    cr_assert_str_eq(cli->reason, "canary");
    cr_assert_eq(cli->expect, 7);
    cr_assert_eq(cli->seen, OPTABLE_ARG_REASON | OPTABLE_ARG_EXPECT);
    cr_assert_eq(cli->ntargets, 2);
    cr_assert_str_eq(cli->targets[1].text, "/b.sock");
    cr_assert_eq(cli->timeout_ms, 2500);
    cr_assert_eq(cli->wait_timeout_ms, 10000, "the default");
    cr_assert(cli->wait);
}

Test(cli_options, defaults_and_endpoints)
{
    const struct optable_op *cmd = NULL;
    cr_assert_eq(PARSE(&cmd, "status", "--endpoint", "unix:/run/x.sock", "--json"), 0);
    cr_assert_eq(cmd, optable_find("status"));
    cr_assert_eq(cli->timeout_ms, 5000);
    cr_assert(cli->json);
    cr_assert_str_eq(cli->targets[0].text, "/run/x.sock");
    cr_assert(!cli->targets[0].https);
}

Test(cli_options, https_endpoint)
{
    const struct optable_op *cmd = NULL;
    cr_assert_eq(PARSE(&cmd, "version", "--endpoint", "https://admin.example:8443"), 0);
    cr_assert(cli->targets[0].https);
    cr_assert_str_eq(cli->targets[0].url.host, "admin.example");
    cr_assert_eq(cli->targets[0].url.port, 8443);
}

Test(cli_options, help_is_no_command)
{
    const struct optable_op *cmd = optable_find("status");
    cr_assert_eq(PARSE(&cmd, "status", "--help"), 0);
    cr_assert_null(cmd);
}

Test(cli_options, double_dash_ends_options)
{
    const struct optable_op *cmd = NULL;
    cr_assert_eq(PARSE(&cmd, "history", "--limit=5", "--refusals", "--", "--json"), 2,
                 "--json after -- is a positional, and history takes none");
    cr_assert(!cli->json);
    cr_assert_eq(cli->limit, 5);
    cr_assert(cli->seen & OPTABLE_ARG_REFUSALS);
}

Test(cli_options, usage_errors)
{
    static const char *const cases[][8] = {
        {NULL},
        {"frob"},
        {"status", "--reason", "x"},
        {"drain", "web", "blue"},
        {"status", "a", "b"},
        {"history", "--refusals=yes"},
        {"history", "--limit", "0"},
        {"status", "--timeout", "0"},
        {"status", "--nope"},
        {"status", "--reason"},
        {"status", "--endpoint", "http://x:1"},
        {"status", "--endpoint", "/x.sock"},
        {"status", "--socket", ""},
        {"promote", "web", "green", "--expect-generation", "-1"},
        {"shift", "web", "--limit", "3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(cli, 0, sizeof *cli);
        char *argv[10] = {"cutoverctl"};
        int argc = 1;
        for (size_t k = 0; k < 8 && cases[i][k]; k++)
            argv[argc++] = (char *)cases[i][k];
        const struct optable_op *cmd = NULL;
        cr_assert_eq(cli_options_parse(cli, argc, argv, &cmd), 2, "case %zu (%s)", i,
                     argc > 1 ? argv[1] : "-");
    }
}

Test(cli_options, dry_run_on_changes)
{
    const struct optable_op *cmd = NULL;
    int rc = PARSE(&cmd, "rollback", "web", "--reason", "r", "--dry-run");
    cr_assert_eq(rc, 0);
    cr_assert_eq(cmd, optable_find("rollback"));
    cr_assert(cli->seen & OPTABLE_ARG_DRY_RUN);
    cr_assert_eq(cli->npos, 2);
}

Test(cli_options, dry_run_on_shift)
{
    const struct optable_op *cmd = NULL;
    int rc = PARSE(&cmd, "--dry-run", "shift", "web", "--to", "green", "--steps", "50,100",
                   "--interval", "1s", "--reason", "r");
    cr_assert_eq(rc, 0);
    cr_assert_eq(cmd, optable_find("shift"));
    cr_assert(cli->seen & OPTABLE_ARG_DRY_RUN);
}

Test(cli_options, dry_run_refused_on_reads)
{
    const struct optable_op *cmd = NULL;
    cr_assert_eq(PARSE(&cmd, "status", "--dry-run"), CLI_EXIT_USAGE);
    cr_assert_null(cmd);
    memset(cli, 0, sizeof *cli);
    cr_assert_eq(PARSE(&cmd, "diff", "--dry-run"), CLI_EXIT_USAGE);
    memset(cli, 0, sizeof *cli);
    cr_assert_eq(PARSE(&cmd, "reload", "--dry-run"), 0, "reload can be run dry");
    memset(cli, 0, sizeof *cli);
    cr_assert_eq(PARSE(&cmd, "rollback", "web", "--reason", "r", "--dry-run=yes"),
                 CLI_EXIT_USAGE, "--dry-run takes no value");
}

Test(cli_options, history_filters)
{
    const struct optable_op *cmd = NULL;
    int rc = PARSE(&cmd, "history", "--route", "web", "--since=2h", "--actor", "alice",
                   "--limit", "5");
    cr_assert_eq(rc, 0);
    cr_assert_eq(cmd, optable_find("history"));
    cr_assert_str_eq(cli->route, "web");
    cr_assert_str_eq(cli->since, "2h");
    cr_assert_str_eq(cli->actor, "alice");
    cr_assert_eq(cli->limit, 5);
    cr_assert_eq(cli->seen, OPTABLE_ARG_ROUTE | OPTABLE_ARG_SINCE | OPTABLE_ARG_ACTOR |
                                OPTABLE_ARG_LIMIT);
}

Test(cli_options, history_filters_checked)
{
    const struct optable_op *cmd = NULL;
    cr_assert_eq(PARSE(&cmd, "history", "--route", ""), CLI_EXIT_USAGE, "empty --route");
    memset(cli, 0, sizeof *cli);
    cr_assert_eq(PARSE(&cmd, "history", "--since"), CLI_EXIT_USAGE, "--since needs a value");
    memset(cli, 0, sizeof *cli);
    cr_assert_eq(PARSE(&cmd, "status", "--actor", "bob"), CLI_EXIT_USAGE,
                 "status does not take --actor");
    memset(cli, 0, sizeof *cli);
    cr_assert_eq(PARSE(&cmd, "set-weights", "web", "a=50", "b=50", "--reason", "r", "--route",
                       "x"),
                 CLI_EXIT_USAGE, "--route is history's filter");
}

Test(cli_options, diff_positionals)
{
    const struct optable_op *cmd = NULL;
    cr_assert_eq(PARSE(&cmd, "diff"), 0);
    cr_assert_eq(cmd, optable_find("diff"));
    memset(cli, 0, sizeof *cli);
    cr_assert_eq(PARSE(&cmd, "diff", "web"), 0);
    cr_assert_str_eq(cli->pos[1], "web");
    memset(cli, 0, sizeof *cli);
    cr_assert_eq(PARSE(&cmd, "diff", "web", "extra"), CLI_EXIT_USAGE);
}

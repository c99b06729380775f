/* optable.c - the control operations (optable.h). Pure; any thread. */
#include "control/optable.h"

#include <string.h>

#include "core/cut.h"

/* What every change takes: a reason, an expected generation, and a dry run (all but reload,
 * which applies itself and so cannot be run dry: docs/control-protocol.md, "Dry runs"). */
#define OPTABLE_MUT (OPTABLE_ARG_REASON | OPTABLE_ARG_EXPECT | OPTABLE_ARG_DRY_RUN)

/* In the order cutoverctl --help lists them. Where the server's and the CLI's help texts used to
 * differ, the CLI's (the one people read) was kept. */
static const struct optable_op ops[] = {
    {.op = "status",
     .role = CUT_ROLE_VIEWER,
     .max_pos = 1,
     .pos_names = {"route"},
     .usage = "status [ROUTE]",
     .help = "routes: weights, stable weights, pools, endpoints, counters, generation per "
             "replica"},
    {.op = "set-weights",
     .role = CUT_ROLE_DEPLOYER,
     .mutates = 1,
     .args = OPTABLE_MUT,
     .reason_required = 1,
     .min_pos = 3,
     .max_pos = OPTABLE_POS_ANY,
     .pos_names = {"route"},
     .usage = "set-weights ROUTE POOL=PCT POOL=PCT... --reason TEXT [--expect-generation N] "
              "[--dry-run]",
     .help = "set every pool's weight (percentages, two decimals at most, summing to 100)"},
    {.op = "promote",
     .role = CUT_ROLE_DEPLOYER,
     .mutates = 1,
     .args = OPTABLE_MUT,
     .reason_required = 1,
     .min_pos = 2,
     .max_pos = 2,
     .pos_names = {"route", "pool"},
     .usage = "promote ROUTE POOL --reason TEXT [--expect-generation N] [--dry-run]",
     .help = "POOL to 100 %; these weights become the stable weights"},
    {.op = "rollback",
     .role = CUT_ROLE_OPERATOR,
     .mutates = 1,
     .args = OPTABLE_MUT,
     .reason_required = 1,
     .min_pos = 1,
     .max_pos = 1,
     .pos_names = {"route"},
     .usage = "rollback ROUTE --reason TEXT [--expect-generation N] [--dry-run]",
     .help = "back to the stable weights"},
    {.op = "drain",
     .role = CUT_ROLE_OPERATOR,
     .mutates = 1,
     .args = OPTABLE_MUT,
     .reason_required = 1,
     .min_pos = 3,
     .max_pos = 3,
     .pos_names = {"route", "pool", "endpoint"},
     .usage = "drain ROUTE POOL ENDPOINT --reason TEXT [--dry-run]",
     .help = "no new request to ENDPOINT"},
    {.op = "undrain",
     .role = CUT_ROLE_OPERATOR,
     .mutates = 1,
     .args = OPTABLE_MUT,
     .reason_required = 1,
     .min_pos = 3,
     .max_pos = 3,
     .pos_names = {"route", "pool", "endpoint"},
     .usage = "undrain ROUTE POOL ENDPOINT --reason TEXT [--dry-run]",
     .help = "ENDPOINT takes requests again"},
    {.op = "add-endpoint",
     .role = CUT_ROLE_DEPLOYER,
     .mutates = 1,
     .args = OPTABLE_MUT,
     .reason_required = 1,
     .min_pos = 3,
     .max_pos = 3,
     .pos_names = {"route", "pool", "endpoint"},
     .usage = "add-endpoint ROUTE POOL HOST:PORT --reason TEXT [--dry-run]",
     .help = "add an endpoint to a pool"},
    {.op = "remove-endpoint",
     .role = CUT_ROLE_DEPLOYER,
     .mutates = 1,
     .args = OPTABLE_MUT,
     .reason_required = 1,
     .min_pos = 3,
     .max_pos = 3,
     .pos_names = {"route", "pool", "endpoint"},
     .usage = "remove-endpoint ROUTE POOL HOST:PORT --reason TEXT [--dry-run]",
     .help = "remove an endpoint from a pool (not the last one)"},
    {.op = "reload",
     .role = CUT_ROLE_ADMIN,
     .mutates = 1,
     .args = OPTABLE_ARG_REASON | OPTABLE_ARG_EXPECT | OPTABLE_ARG_DRY_RUN,
     .usage = "reload [--reason TEXT] [--expect-generation N] [--dry-run]",
     .help = "re-read the configuration file (like SIGHUP)"},
    {.op = "history",
     .role = CUT_ROLE_VIEWER,
     .args = OPTABLE_ARG_LIMIT | OPTABLE_ARG_REFUSALS | OPTABLE_ARG_ROUTE | OPTABLE_ARG_SINCE |
             OPTABLE_ARG_ACTOR,
     .usage = "history [--limit N] [--refusals] [--route ROUTE] [--since 2h|RFC3339] "
              "[--actor NAME]",
     .help = "the most recent changes (the last N that match the filters), newest last: "
             "generations and the route's weights before -> after; --refusals adds the refused "
             "requests (REFUSED [code] message, \u00d7N for N alike)"},
    {.op = "diff",
     .role = CUT_ROLE_VIEWER,
     .max_pos = 1,
     .pos_names = {"route"},
     .usage = "diff [ROUTE]",
     .help = "per route, the runtime state against the configuration file in use: weights and "
             "stable weights, drained, added and removed endpoints, a running plan"},
    {.op = "version",
     .role = CUT_ROLE_VIEWER,
     .usage = "version",
     .help = "this client's and every replica's version and generation"},
    {.op = "shift",
     .role = CUT_ROLE_DEPLOYER,
     .mutates = 1,
     .args = OPTABLE_MUT | OPTABLE_ARG_TO | OPTABLE_ARG_STEPS | OPTABLE_ARG_INTERVAL |
             OPTABLE_ARG_GATE | OPTABLE_ARG_MIN_REQUESTS | OPTABLE_ARG_COHORT,
     .reason_required = 1,
     .min_pos = 1,
     .max_pos = 1,
     .pos_names = {"route"},
     .usage = "shift ROUTE --to POOL --steps 10,25,50,100 --interval 30s [--gate 5xx<=1%] "
              "[--gate p99<=500ms] [--min-requests N] [--cohort country=SG,MY] --reason TEXT "
              "[--expect-generation N] [--dry-run]",
     .help = "start a plan in cutover (each step held --interval and judged by the gates; a "
             "failed gate rolls back) and watch it; exit 0 promoted, 6 rolled back, Ctrl-C "
             "aborts it; --cohort moves only clients from those countries (1..16 ISO codes; "
             "one cohort per route), a later shift without it widens to everyone"},
    {.op = "shift-pause",
     .role = CUT_ROLE_DEPLOYER,
     .mutates = 1,
     .args = OPTABLE_MUT,
     .reason_required = 1,
     .min_pos = 1,
     .max_pos = 1,
     .pos_names = {"route"},
     .usage = "shift-pause ROUTE --reason TEXT [--expect-generation N] [--dry-run]",
     .help = "hold the route's plan at its current step (gates still roll it back)"},
    {.op = "shift-resume",
     .role = CUT_ROLE_DEPLOYER,
     .mutates = 1,
     .args = OPTABLE_MUT,
     .reason_required = 1,
     .min_pos = 1,
     .max_pos = 1,
     .pos_names = {"route"},
     .usage = "shift-resume ROUTE --reason TEXT [--expect-generation N] [--dry-run]",
     .help = "let a paused plan go on"},
    {.op = "shift-abort",
     .role = CUT_ROLE_DEPLOYER,
     .mutates = 1,
     .args = OPTABLE_MUT,
     .reason_required = 1,
     .min_pos = 1,
     .max_pos = 1,
     .pos_names = {"route"},
     .usage = "shift-abort ROUTE --reason TEXT [--expect-generation N] [--dry-run]",
     .help = "stop the route's plan; the current weights stay applied"},
};

const struct optable_op *optable_get(size_t i)
{
    return i < CUT_ARRAY_LEN(ops) ? &ops[i] : NULL;
}

const struct optable_op *optable_find(const char *op)
{
    for (size_t i = 0; i < CUT_ARRAY_LEN(ops); i++)
        if (strcmp(ops[i].op, op) == 0)
            return &ops[i];
    return NULL;
}

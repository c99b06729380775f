/* Unit tests for control/optable.c and its agreement with the control thread's handlers
 * (control/commands.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "control/cmd_ops.h"
#include "control/commands.h"
#include "control/optable.h"

static size_t count_ops(void)
{
    size_t n = 0;
    while (optable_get(n))
        n++;
    return n;
}

Test(optable, names_unique_and_found)
{
    size_t n = count_ops();
    cr_assert_geq(n, 15);
    for (size_t i = 0; i < n; i++) {
        const struct optable_op *a = optable_get(i);
        cr_assert(a->op && *a->op, "entry %zu has no name", i);
        cr_assert_eq(optable_find(a->op), a, "%s", a->op);
        for (size_t j = i + 1; j < n; j++)
            cr_assert_str_neq(a->op, optable_get(j)->op, "%s twice", a->op);
    }
    cr_assert_null(optable_find("no-such-op"));
    cr_assert_null(optable_find(""));
    cr_assert_null(optable_find("Status"));
    cr_assert_null(optable_get(n));
}

Test(optable, roles_valid_and_mutations_need_operator)
{
    for (size_t i = 0; optable_get(i); i++) {
        const struct optable_op *o = optable_get(i);
        cr_assert(o->role >= CUT_ROLE_VIEWER && o->role <= CUT_ROLE_ADMIN, "%s: role %d", o->op,
                  o->role);
        if (o->mutates)
            cr_assert_geq(o->role, CUT_ROLE_OPERATOR, "%s mutates but needs only %s", o->op,
                          role_name(o->role));
        else
            cr_assert_eq(o->role, CUT_ROLE_VIEWER, "read %s needs %s", o->op, role_name(o->role));
    }
}

/* The roles docs/control-protocol.md ("Roles") documents. */
Test(optable, documented_roles)
{
    static const struct {
        const char *op;
        enum cut_role role;
        int mutates;
    } want[] = {
        {"status", CUT_ROLE_VIEWER, 0},          {"history", CUT_ROLE_VIEWER, 0},
        {"version", CUT_ROLE_VIEWER, 0},         {"rollback", CUT_ROLE_OPERATOR, 1},
        {"drain", CUT_ROLE_OPERATOR, 1},         {"undrain", CUT_ROLE_OPERATOR, 1},
        {"set-weights", CUT_ROLE_DEPLOYER, 1},   {"promote", CUT_ROLE_DEPLOYER, 1},
        {"add-endpoint", CUT_ROLE_DEPLOYER, 1},  {"remove-endpoint", CUT_ROLE_DEPLOYER, 1},
        {"shift", CUT_ROLE_DEPLOYER, 1},         {"shift-pause", CUT_ROLE_DEPLOYER, 1},
        {"shift-resume", CUT_ROLE_DEPLOYER, 1},  {"shift-abort", CUT_ROLE_DEPLOYER, 1},
        {"reload", CUT_ROLE_ADMIN, 1},           {"diff", CUT_ROLE_VIEWER, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct optable_op *o = optable_find(want[i].op);
        cr_assert_not_null(o, "%s missing", want[i].op);
        cr_assert_eq(o->role, want[i].role, "%s", want[i].op);
        cr_assert_eq(o->mutates, want[i].mutates, "%s", want[i].op);
    }
    cr_assert_eq(count_ops(), sizeof want / sizeof want[0]);
}

/* What cutoverctl needs of every entry: a usage line starting with the name, a help sentence,
 * positionals in order, and a reason where a change requires one. */
Test(optable, cli_fields)
{
    for (size_t i = 0; optable_get(i); i++) {
        const struct optable_op *o = optable_get(i);
        size_t len = strlen(o->op);
        cr_assert_not_null(o->usage, "%s", o->op);
        cr_assert(!strncmp(o->usage, o->op, len) && (o->usage[len] == 0 || o->usage[len] == ' '),
                  "%s: usage '%s'", o->op, o->usage);
        cr_assert(o->help && *o->help, "%s: no help", o->op);
        cr_assert_leq(o->min_pos, o->max_pos, "%s", o->op);
        if (o->reason_required)
            cr_assert(o->mutates && (o->args & OPTABLE_ARG_REASON), "%s", o->op);
        if (o->mutates)
            cr_assert(o->args & OPTABLE_ARG_REASON, "%s: a change without --reason", o->op);
        for (size_t k = 1; k < 3; k++)
            if (o->pos_names[k])
                cr_assert_not_null(o->pos_names[k - 1], "%s: positional %zu", o->op, k);
    }
    cr_assert_eq(optable_find("set-weights")->max_pos, OPTABLE_POS_ANY);
    cr_assert(optable_find("shift")->args & OPTABLE_ARG_GATE);
    cr_assert(!(optable_find("status")->args & OPTABLE_ARG_REASON));
    cr_assert(optable_find("history")->args & OPTABLE_ARG_REFUSALS);
    cr_assert(!optable_find("reload")->reason_required);
}

/* The control thread has a handler for exactly the operations of the table. */
Test(optable, server_handlers_cover_the_table)
{
    size_t nh = 0;
    for (const char *op; (op = cmd_ops_handled(nh)) != NULL; nh++) {
        cr_assert_not_null(optable_find(op), "handler for %s, which the table lacks", op);
        for (size_t j = 0; j < nh; j++)
            cr_assert_str_neq(cmd_ops_handled(j), op, "two handlers for %s", op);
    }
    cr_assert_eq(nh, count_ops(), "%zu handlers for %zu operations", nh, count_ops());
}

/* diff: a viewer's read with an optional ROUTE positional and no options. */
Test(optable, diff_entry)
{
    const struct optable_op *o = optable_find("diff");
    cr_assert_not_null(o);
    cr_assert_eq(o->role, CUT_ROLE_VIEWER);
    cr_assert_not(o->mutates);
    cr_assert_eq(o->args, 0u);
    cr_assert_eq(o->min_pos, 0);
    cr_assert_eq(o->max_pos, 1);
    cr_assert_str_eq(o->pos_names[0], "route");
    cr_assert_str_eq(o->usage, "diff [ROUTE]");
    cr_assert_not_null(cmd_ops_find("diff"));
}

/* --dry-run: every change offers it (reload included: control/reload_preview.c); no read does. */
Test(optable, dry_run_on_every_change)
{
    for (size_t i = 0; optable_get(i); i++) {
        const struct optable_op *o = optable_get(i);
        int dry = (o->args & OPTABLE_ARG_DRY_RUN) != 0;
        if (!o->mutates)
            cr_assert_not(dry, "read %s offers --dry-run", o->op);
        else
            cr_assert(dry, "%s: a change without --dry-run", o->op);
        if (dry)
            cr_assert_not_null(strstr(o->usage, "[--dry-run]"), "%s: usage '%s'", o->op,
                               o->usage);
    }
}

/* history's filters are history's only. */
Test(optable, history_filters)
{
    unsigned f = OPTABLE_ARG_ROUTE | OPTABLE_ARG_SINCE | OPTABLE_ARG_ACTOR;
    cr_assert_eq(optable_find("history")->args & f, f);
    for (size_t i = 0; optable_get(i); i++)
        if (strcmp(optable_get(i)->op, "history"))
            cr_assert_eq(optable_get(i)->args & f, 0u, "%s", optable_get(i)->op);
}

/* optable.h - the one table of control operations (docs/control-protocol.md, "Operations"):
 * for each op its name, the least role that may run it, whether it changes state, and what
 * cutoverctl needs to offer it (usage line, positionals, options, help text). The control
 * thread's command handlers (control/commands.c) and cutoverctl (control/cli/) both read it, so
 * a role, a help text or an argument is written down once.
 *
 * Pure, constant data; any thread. No libevent, no jansson.
 */
#ifndef CUT_OPTABLE_H
#define CUT_OPTABLE_H

#include <stddef.h>

#include "core/role.h"

/* The optional arguments an operation takes, as bits: each is one protocol argument
 * (args.<name>) and one cutoverctl option (--<option>). */
enum {
    OPTABLE_ARG_REASON = 1u << 0,       /* args.reason, --reason */
    OPTABLE_ARG_EXPECT = 1u << 1,       /* args.expect_generation, --expect-generation */
    OPTABLE_ARG_LIMIT = 1u << 2,        /* args.limit, --limit */
    OPTABLE_ARG_TO = 1u << 3,           /* args.to, --to */
    OPTABLE_ARG_GATE = 1u << 4,         /* args.gates, --gate (repeatable) */
    OPTABLE_ARG_STEPS = 1u << 5,        /* args.steps, --steps */
    OPTABLE_ARG_INTERVAL = 1u << 6,     /* args.hold_s, --interval */
    OPTABLE_ARG_MIN_REQUESTS = 1u << 7, /* args.gates.min_requests, --min-requests */
    OPTABLE_ARG_REFUSALS = 1u << 8,     /* args.refusals, --refusals */
    OPTABLE_ARG_DRY_RUN = 1u << 9,      /* args.dry_run, --dry-run (every change but reload) */
    OPTABLE_ARG_ROUTE = 1u << 10,       /* args.route, --route (history's filter) */
    OPTABLE_ARG_SINCE = 1u << 11,       /* args.since, --since (history's filter) */
    OPTABLE_ARG_ACTOR = 1u << 12,       /* args.actor, --actor (history's filter) */
    OPTABLE_ARG_COHORT = 1u << 13,      /* args.cohort, --cohort country=SG,MY */
};

#define OPTABLE_POS_ANY ((size_t)-1) /* max_pos of an op whose positionals are a list */

/* One control operation. */
struct optable_op {
    const char *op;           /* the protocol op, also cutoverctl's command name */
    enum cut_role role;       /* the least role that may run it */
    int mutates;              /* a change (durable, audited, publishes), else a read */
    unsigned args;            /* OPTABLE_ARG_*: the optional arguments it takes */
    int reason_required;      /* args.reason must be given (cutoverctl checks before sending) */
    size_t min_pos, max_pos;  /* cutoverctl: positionals after the command name */
    const char *pos_names[3]; /* cutoverctl: the args they become (simple commands) */
    const char *usage;        /* cutoverctl's usage line, without "cutoverctl " */
    const char *help;         /* what it does, one sentence (the only help text) */
};

/* The i-th operation in the table's order (cutoverctl --help lists them so), or NULL when i is
 * past the end. */
const struct optable_op *optable_get(size_t i);

/* The operation named op, or NULL. op is borrowed. */
const struct optable_op *optable_find(const char *op);

#endif

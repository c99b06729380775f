/* durable.c - write-ahead audit record, then the state file (see durable.h). */
#include "control/durable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/state_file.h"
#include "core/cut.h"
#include "control/state.h"

int durable_commit(const struct durable_target *t, const struct state *next,
                   struct audit_record *rec, int *recorded, char *err, size_t cap)
{
    int dummy;
    if (!recorded)
        recorded = &dummy;
    *recorded = 0;
    rec->kind = AUDIT_CHANGE;
    char aerr[256];
    if (audit_append(t->audit, rec, t->out, t->ctx, aerr, sizeof aerr) < 0) {
        snprintf(err, cap, "audit log: %s", aerr);
        t->event(t->ctx, "audit_failed", NULL);
        return CUT_EIO;
    }
    *recorded = 1;
    char serr[256];
    if (!t->state_file || state_file_save(t->state_file, next, serr, sizeof serr) == 0)
        return 0;
    snprintf(err, cap, "state file: %s", serr);
    /* The record stands for a change that was not made: say so right after it. */
    struct audit_record ab = *rec;
    ab.ok = 0;
    ab.result = "aborted";
    ab.error_code = "internal";
    ab.error_message = err;
    ab.generation_before = rec->generation_after;
    ab.generation_after = t->generation;
    ab.weights_before_json = rec->weights_after_json;
    ab.weights_after_json = rec->weights_before_json;
    if (audit_append(t->audit, &ab, t->out, t->ctx, aerr, sizeof aerr) < 0)
        t->event(t->ctx, "audit_failed", NULL);
    return CUT_EIO;
}

char *durable_weights_json(const struct state *st)
{
    size_t cap = 2 + st->nroutes * (STATE_MAX_NAME + 8 + CFG_MAX_POOLS * (STATE_MAX_NAME + 16));
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    size_t o = (size_t)snprintf(buf, cap, "{");
    for (size_t r = 0; r < st->nroutes && o < cap; r++) {
        o += (size_t)snprintf(buf + o, cap - o, "%s\"%s\":", r ? "," : "", st->routes[r].name);
        if (o < cap)
            state_weights_json(&st->routes[r], 0, buf + o, cap - o);
        o += strlen(buf + o);
    }
    if (o < cap)
        snprintf(buf + o, cap - o, "}");
    return buf;
}

/* startup.c - the runtime state a process starts from (see startup.h). */
#include "control/startup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/durable.h"
#include "control/recovery.h"
#include "control/state_file.h"
#include "control/state_rebase.h"
#include "core/cut.h"
#include "proxy/log/log.h"

/* The start-up record (recovery.h): who (cutover itself), what it serves, and why. */
static int record_start(const struct startup_env *env, const struct state *rt,
                        const struct recovery_plan *pl, char *err, size_t cap)
{
    char *weights = durable_weights_json(rt);
    if (!weights) {
        snprintf(err, cap, "out of memory");
        return CUT_ENOMEM;
    }
    int aborted = strcmp(pl->result, "aborted") == 0;
    struct audit_record rec = {
        .cluster = env->cfg->cluster,
        .region = env->cfg->region,
        .uid = (long)geteuid(),
        .user = "cutover",
        .role = "admin",
        .op = pl->op,
        .ok = !aborted,
        .result = pl->result,
        .error_code = aborted ? "interrupted" : NULL,
        .error_message = aborted ? pl->why : NULL,
        .generation_before = pl->gen_before,
        .generation_after = pl->generation,
        .weights_after_json = weights,
        .reason = pl->why,
    };
    char derr[512];
    struct durable_target t = {env->audit, env->cfg->control.state_file, pl->generation, env->out,
                               env->event, env->ctx};
    int rc = durable_commit(&t, rt, &rec, NULL, derr, sizeof derr);
    free(weights);
    if (rc < 0)
        snprintf(err, cap, "cannot record the start: %s; refusing to start unaudited", derr);
    return rc;
}

int startup_load(const struct startup_env *env, struct state *rt, char *err, size_t cap)
{
    const struct cfg *cfg = env->cfg;
    struct state old = {0};
    const char *path = cfg->control.state_file;
    const struct audit_found *af = audit_found(env->audit);
    if (af->torn_bytes) {
        char extra[4400];
        size_t o = (size_t)snprintf(extra, sizeof extra, ",\"bytes\":%zu,\"set_aside\":\"",
                                    af->torn_bytes);
        o += log_escape(extra + o, sizeof extra - o - 4, af->torn_path, strlen(af->torn_path));
        snprintf(extra + o, sizeof extra - o, "\"");
        env->event(env->ctx, "audit_torn_line", extra);
    }
    struct recovery_in in = {
        .audit_file = cfg->control.audit_file != NULL,
        .has_change = af->has_change,
        .audit_gen = af->last_generation,
        .discard = env->discard,
        .cache = cfg->control.store.enabled,
    };
    char lerr[512] = "";
    if (path) {
        int rc = state_file_load(path, &old, lerr, sizeof lerr);
        in.state = rc == 0 ? RECOVERY_STATE_OK
                   : rc == CUT_ENOENT ? RECOVERY_STATE_MISSING
                                      : RECOVERY_STATE_CORRUPT;
        in.state_gen = old.generation;
    }
    struct recovery_plan pl;
    recovery_decide(&in, &pl);
    if (pl.action == RECOVERY_REFUSE) {
        if (in.state == RECOVERY_STATE_CORRUPT)
            snprintf(err, cap,
                     "%s; refusing to start (with --discard-state, cutover starts from the "
                     "configuration's weights and keeps the bad file as %s.discarded)",
                     lerr, path);
        else
            snprintf(err, cap,
                     "state file %s: %s; refusing to start (with --discard-state, cutover "
                     "starts from the configuration's weights at generation %llu%s)",
                     path, pl.why, (unsigned long long)af->last_generation + 1,
                     in.state == RECOVERY_STATE_OK ? " and keeps the file as FILE.discarded" : "");
        char extra[1200];
        size_t o = (size_t)snprintf(extra, sizeof extra, ",\"reason\":\"");
        o += log_escape(extra + o, sizeof extra - o - 4, err, strlen(err));
        snprintf(extra + o, sizeof extra - o, "\"");
        env->event(env->ctx, pl.event, extra);
        state_dispose(&old);
        return CUT_EINVAL;
    }
    if (path && !pl.use_state && in.state != RECOVERY_STATE_MISSING) {
        char dst[4200];
        snprintf(dst, sizeof dst, "%s.discarded", path);
        rename(path, dst);
    }
    if (!pl.use_state) {
        state_dispose(&old);
        memset(&old, 0, sizeof old);
    }
    char note[1024];
    int rc = state_rebase(cfg, NULL, &old, rt, note, sizeof note);
    state_dispose(&old);
    if (rc < 0) {
        snprintf(err, cap, "out of memory");
        return rc;
    }
    rt->generation = pl.generation;
    if (pl.record && record_start(env, rt, &pl, err, cap) < 0) {
        state_dispose(rt);
        return CUT_EIO;
    }
    char extra[2600];
    size_t o = (size_t)snprintf(extra, sizeof extra, ",\"file\":\"");
    if (path)
        o += log_escape(extra + o, 500, path, strlen(path));
    o += (size_t)snprintf(extra + o, sizeof extra - o, "\"");
    if (pl.why[0]) {
        o += (size_t)snprintf(extra + o, sizeof extra - o, ",\"reason\":\"");
        o += log_escape(extra + o, 1100, pl.why, strlen(pl.why));
        o += (size_t)snprintf(extra + o, sizeof extra - o, "\"");
    }
    if (in.state == RECOVERY_STATE_CORRUPT && lerr[0]) {
        o += (size_t)snprintf(extra + o, sizeof extra - o, ",\"error\":\"");
        o += log_escape(extra + o, 520, lerr, strlen(lerr));
        o += (size_t)snprintf(extra + o, sizeof extra - o, "\"");
    }
    if (note[0] && o < sizeof extra - 1100)
        snprintf(extra + o, sizeof extra - o, ",\"config_weights_won\":[%s]", note);
    if (pl.action != RECOVERY_RESUME || path)
        env->event(env->ctx, pl.event, extra);
    return 0;
}

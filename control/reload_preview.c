/* reload_preview.c - a reload's dry run (see reload_preview.h). */
#include "control/reload_preview.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/certs.h"
#include "control/durable.h"
#include "control/reload_rules.h"
#include "control/state_rebase.h"
#include "core/cut.h"

static json_t *names_missing(const struct cfg *from, const struct cfg *in)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < from->nroutes; i++) {
        size_t j = 0;
        while (j < in->nroutes && strcmp(in->routes[j].name, from->routes[i].name) != 0)
            j++;
        if (j == in->nroutes)
            json_array_append_new(a, json_string(from->routes[i].name));
    }
    return a;
}

int reload_preview(const char *path, const struct cfg *old, const struct state *rt,
                   int keep_weights, json_t **result, char **weights_before,
                   char **weights_after, struct cfg_errors *errs)
{
    *result = NULL;
    *weights_before = *weights_after = NULL;
    struct cfg *cfg = NULL;
    int rc = cfg_load(path, &cfg, errs);
    if (rc < 0)
        return rc;
    const char *why_path = NULL, *why = NULL;
    if (reload_rules_check(old, cfg, &why_path, &why) < 0) {
        cfg_errors_add(errs, why_path, 0, 0, "%s", why);
        cfg_free(cfg);
        return CUT_EINVAL;
    }
    struct certs_set fresh;
    if (certs_build(cfg, &fresh, errs) < 0) { /* material that does not load refuses it */
        cfg_free(cfg);
        return CUT_EINVAL;
    }
    certs_set_release(&fresh);
    struct state next;
    char note[1024];
    if (state_rebase(cfg, keep_weights ? NULL : old, rt, &next, note, sizeof note) < 0) {
        cfg_free(cfg);
        return CUT_ENOMEM;
    }
    *weights_before = durable_weights_json(rt);
    *weights_after = durable_weights_json(&next);
    /* the checksums and generations aside, does the runtime state differ? */
    struct state x = *rt, y = next;
    x.generation = y.generation = 0;
    char *xa = state_to_json(&x), *yb = state_to_json(&y);
    int changed = !xa || !yb || strcmp(xa, yb) != 0;
    free(xa);
    free(yb);
    json_t *won = json_array();
    if (note[0]) {
        char buf[1100];
        snprintf(buf, sizeof buf, "[%s]", note);
        json_decref(won);
        won = json_loads(buf, 0, NULL);
    }
    *result = json_pack("{s:s, s:b, s:o, s:o, s:o}", "config_file", path, "would_change", changed,
                        "routes_added", names_missing(cfg, old), "routes_removed",
                        names_missing(old, cfg), "config_weights_won", won ? won : json_array());
    state_dispose(&next);
    cfg_free(cfg);
    if (!*result || !*weights_before || !*weights_after) {
        json_decref(*result);
        free(*weights_before);
        free(*weights_after);
        *result = NULL;
        *weights_before = *weights_after = NULL;
        return CUT_ENOMEM;
    }
    return 0;
}

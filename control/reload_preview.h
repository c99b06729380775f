/* reload_preview.h - what a reload would do, without doing it (reload's dry run): the
 * configuration file read and checked as a reload reads it (syntax and every rule, what a
 * reload may not change, the TLS material it names), and the runtime state it would lead to.
 * Nothing is applied, recorded or published. Control thread only.
 */
#ifndef CUT_RELOAD_PREVIEW_H
#define CUT_RELOAD_PREVIEW_H

#include <jansson.h>
#include <stddef.h>

#include "config/cfg.h"
#include "control/state.h"

/* The configuration at path against the one in use (old) and the runtime state in use (rt).
 * keep_weights: a fleet store owns the runtime weights (a reload keeps them where pools are
 * unchanged). Returns 0 with *result (new reference: {"config_file", "would_change",
 * "routes_added", "routes_removed", "config_weights_won"}) and the weights before and after as
 * JSON text (malloc'd, the caller frees; durable_weights_json's shape); or CUT_EINVAL with every
 * problem in errs (the caller disposes it), or CUT_ENOMEM. */
int reload_preview(const char *path, const struct cfg *old, const struct state *rt,
                   int keep_weights, json_t **result, char **weights_before,
                   char **weights_after, struct cfg_errors *errs);

#endif

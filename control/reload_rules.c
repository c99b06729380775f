/* reload_rules.c - what a reload may not change (see reload_rules.h). */
#include "control/reload_rules.h"

#include <string.h>

#include "core/cut.h"

static int same_listeners(const struct cfg *a, const struct cfg *b)
{
    if (a->nlisteners != b->nlisteners)
        return 0;
    for (size_t i = 0; i < a->nlisteners; i++) {
        if (strcmp(a->listeners[i].host, b->listeners[i].host) != 0 ||
            a->listeners[i].port != b->listeners[i].port ||
            a->listeners[i].protocols != b->listeners[i].protocols)
            return 0;
    }
    return 1;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The admin API binds once, like the listeners: same presence, address and port. */
static int same_admin_address(const struct cfg *a, const struct cfg *b)
{
    return same_str(a->admin.host, b->admin.host) && a->admin.port == b->admin.port;
}

int reload_rules_check(const struct cfg *old, const struct cfg *cfg, const char **why_path,
                       const char **why)
{
    *why_path = *why = NULL;
    if (!same_listeners(old, cfg)) {
        *why_path = "listeners";
        *why = "changing listeners requires a restart";
    } else if (old->workers != cfg->workers) {
        *why_path = "workers";
        *why = "changing workers requires a restart";
    } else if (!same_str(old->control.socket, cfg->control.socket) ||
               !same_str(old->control.state_file, cfg->control.state_file) ||
               !same_str(old->control.audit_file, cfg->control.audit_file)) {
        *why_path = "control";
        *why = "changing the control socket, state file or audit file requires a restart";
    } else if (!same_str(old->metrics.address, cfg->metrics.address)) {
        *why_path = "metrics.address";
        *why = "changing the metrics listener requires a restart";
    } else if (!same_admin_address(old, cfg)) {
        *why_path = "admin.address";
        *why = "changing the admin API address (or adding or removing the admin API) requires a "
              "restart";
    }
    return *why ? CUT_EINVAL : 0;
}

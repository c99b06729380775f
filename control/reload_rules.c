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

static int same_store(const struct cfg_store *a, const struct cfg_store *b)
{
    if (a->enabled != b->enabled || a->nendpoints != b->nendpoints ||
        !same_str(a->prefix, b->prefix) || !same_str(a->user, b->user) ||
        !same_str(a->password_file, b->password_file) || !same_str(a->replica, b->replica) ||
        a->dial_timeout_ms != b->dial_timeout_ms || a->request_timeout_ms != b->request_timeout_ms ||
        a->lease_ttl_s != b->lease_ttl_s || !a->tls != !b->tls)
        return 0;
    for (size_t i = 0; i < a->nendpoints; i++)
        if (!same_str(a->endpoints[i], b->endpoints[i]))
            return 0;
    if (a->tls) {
        const struct cfg_tls_cert *ca = a->tls->client_cert, *cb = b->tls->client_cert;
        if (!same_str(a->tls->ca, b->tls->ca) || !ca != !cb ||
            (ca && (!same_str(ca->cert, cb->cert) || !same_str(ca->key, cb->key))))
            return 0;
    }
    return 1;
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
    } else if (!same_store(&old->control.store, &cfg->control.store)) {
        *why_path = "control.store";
        *why = "changing the fleet store requires a restart";
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

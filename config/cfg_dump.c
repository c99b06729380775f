/* cfg_dump.c - struct cfg back to canonical JSON (defaults written out, weights as percentages).
 *
 * The output is what cfg_parse() reads: parsing it gives an equal cfg, and dumping that again
 * gives the same text. Used by the control API ("show config") and by tests.
 */
#include "config/cfg.h"
#include "core/role.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

/* Building helpers: each takes ownership of the new value and records a failure in *ok, so the
 * builder can run straight through and check once at the end. */
static void put(json_t *obj, const char *key, json_t *val, bool *ok)
{
    if (val == NULL || json_object_set_new(obj, key, val) != 0)
        *ok = false;
}

static void push(json_t *arr, json_t *val, bool *ok)
{
    if (val == NULL || json_array_append_new(arr, val) != 0)
        *ok = false;
}

static json_t *str(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *hostport(const char *host, uint16_t port)
{
    char buf[300];
    bool v6 = host != NULL && strchr(host, ':') != NULL;
    snprintf(buf, sizeof(buf), v6 ? "[%s]:%u" : "%s:%u", host ? host : "", (unsigned)port);
    return json_string(buf);
}

static json_t *cidrs(const struct cfg_cidr_list *l, bool *ok)
{
    json_t *a = json_array();
    if (a == NULL) {
        *ok = false;
        return NULL;
    }
    for (size_t i = 0; i < l->n; i++) {
        char text[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 8];
        inet_ntop(l->v[i].family, l->v[i].addr, text, sizeof(text));
        snprintf(buf, sizeof(buf), "%s/%u", text, l->v[i].prefix);
        push(a, json_string(buf), ok);
    }
    return a;
}

static json_t *percent(unsigned bp)
{
    if (bp % 100 == 0)
        return json_integer(bp / 100);
    return json_real(bp / 100.0);
}

static json_t *dump_cert(const struct cfg_tls_cert *c, bool *ok)
{
    json_t *co = json_object();
    if (c->pem != NULL) {
        put(co, "pem", str(c->pem), ok);
    } else {
        put(co, "cert", str(c->cert), ok);
        put(co, "key", str(c->key), ok);
    }
    return co;
}

static json_t *dump_tls(const struct cfg_tls *t, bool *ok)
{
    static const char *const auth[] = {"none", "optional", "required"};
    json_t *to = json_object(), *certs = json_array(), *alpn = json_array();
    for (size_t i = 0; i < t->ncerts; i++)
        push(certs, dump_cert(&t->certs[i], ok), ok);
    put(to, "certificates", certs, ok);
    put(to, "client_auth", json_string(auth[t->client_auth]), ok);
    if (t->client_ca != NULL)
        put(to, "client_ca", str(t->client_ca), ok);
    if (t->crl != NULL)
        put(to, "crl", str(t->crl), ok);
    put(to, "min_version", json_string(t->min_version == 13 ? "1.3" : "1.2"), ok);
    for (size_t i = 0; i < t->nalpn; i++)
        push(alpn, json_string(t->alpn[i] == CFG_ALPN_H2 ? "h2" : "http/1.1"), ok);
    put(to, "alpn", alpn, ok);
    return to;
}

static json_t *dump_listener(const struct cfg_listener *l, bool *ok)
{
    json_t *o = json_object(), *protos = json_array();
    put(o, "name", str(l->name), ok);
    put(o, "address", hostport(l->host, l->port), ok);
    if (l->protocols & CFG_PROTO_HTTP1)
        push(protos, json_string("http1"), ok);
    put(o, "protocols", protos, ok);
    if (l->tls != NULL)
        put(o, "tls", dump_tls(l->tls, ok), ok);
    return o;
}

static json_t *dump_admin(const struct cfg_admin *a, bool *ok)
{
    json_t *o = json_object(), *roles = json_array();
    put(o, "address", hostport(a->host, a->port), ok);
    if (a->tls != NULL)
        put(o, "tls", dump_tls(a->tls, ok), ok);
    for (size_t i = 0; i < a->nroles; i++) {
        json_t *r = json_object();
        put(r, "subject", str(a->roles[i].subject), ok);
        put(r, "role", json_string(role_name(a->roles[i].role)), ok);
        push(roles, r, ok);
    }
    put(o, "roles", roles, ok);
    put(o, "max_clients", json_integer(a->max_clients), ok);
    put(o, "request_timeout_ms", json_integer(a->request_timeout), ok);
    put(o, "idle_timeout_ms", json_integer(a->idle_timeout), ok);
    return o;
}

static json_t *dump_upstream_tls(const struct cfg_upstream_tls *t, bool *ok)
{
    json_t *o = json_object();
    put(o, "ca", str(t->ca), ok);
    if (t->crl != NULL)
        put(o, "crl", str(t->crl), ok);
    if (t->server_name != NULL)
        put(o, "server_name", str(t->server_name), ok);
    if (t->client_cert != NULL)
        put(o, "client_certificate", dump_cert(t->client_cert, ok), ok);
    put(o, "min_version", json_string(t->min_version == 13 ? "1.3" : "1.2"), ok);
    return o;
}

static json_t *dump_siem(const struct cfg_siem *sm, bool *ok)
{
    json_t *o = json_object();
    char delim[8];
    if (sm->delimiter > 0x20 && sm->delimiter < 0x7f)
        snprintf(delim, sizeof delim, "%c", sm->delimiter);
    else
        snprintf(delim, sizeof delim, "x%02x", (unsigned char)sm->delimiter);
    put(o, "address", hostport(sm->host, sm->port), ok);
    put(o, "tls", dump_upstream_tls(sm->tls, ok), ok);
    put(o, "vendor", str(sm->vendor), ok);
    put(o, "delimiter", json_string(delim), ok);
    if (sm->hostname != NULL)
        put(o, "hostname", str(sm->hostname), ok);
    put(o, "facility", json_integer(sm->facility), ok);
    put(o, "framing",
        json_string(sm->framing == CFG_SIEM_NEWLINE ? "newline" : "octet-counting"), ok);
    put(o, "max_queue_bytes", json_integer(sm->max_queue_bytes), ok);
    put(o, "connect_timeout_ms", json_integer(sm->connect_timeout_ms), ok);
    put(o, "write_timeout_ms", json_integer(sm->write_timeout_ms), ok);
    return o;
}

static json_t *dump_route(const struct cfg_route *r, bool *ok)
{
    json_t *o = json_object(), *hosts = json_array(), *pools = json_object(),
           *weights = json_object();
    put(o, "name", str(r->name), ok);
    for (size_t i = 0; i < r->nhosts; i++)
        push(hosts, str(r->hosts[i]), ok);
    put(o, "hosts", hosts, ok);
    put(o, "path_prefix", str(r->path_prefix), ok);
    for (size_t i = 0; i < r->npools; i++) {
        const struct cfg_pool *p = &r->pools[i];
        json_t *po = json_object(), *eps = json_array();
        for (size_t k = 0; k < p->nendpoints; k++)
            push(eps, hostport(p->endpoints[k].host, p->endpoints[k].port), ok);
        put(po, "endpoints", eps, ok);
        put(po, "balance",
            json_string(p->balance == CFG_BALANCE_ROUND_ROBIN ? "round_robin"
                                                              : "least_outstanding"),
            ok);
        static const char *const protos[] = {"http1", "h2c", "h2"};
        put(po, "protocol", json_string(protos[p->protocol]), ok);
        if (p->tls != NULL)
            put(po, "tls", dump_upstream_tls(p->tls, ok), ok);
        if (p->health_check.enabled) {
            const struct cfg_health_check *h = &p->health_check;
            json_t *ho = json_object(), *st = json_array();
            put(ho, "path", str(h->path), ok);
            if (h->host)
                put(ho, "host", str(h->host), ok);
            put(ho, "interval_ms", json_integer(h->interval_ms), ok);
            put(ho, "jitter_ms", json_integer(h->jitter_ms), ok);
            put(ho, "timeout_ms", json_integer(h->timeout_ms), ok);
            put(ho, "healthy_threshold", json_integer(h->healthy_threshold), ok);
            put(ho, "unhealthy_threshold", json_integer(h->unhealthy_threshold), ok);
            push(st, json_integer(h->status_min), ok);
            push(st, json_integer(h->status_max), ok);
            put(ho, "expected_status", st, ok);
            put(po, "health_check", ho, ok);
        }
        if (p->slow_start_ms)
            put(po, "slow_start_ms", json_integer(p->slow_start_ms), ok);
        put(pools, p->name != NULL ? p->name : "", po, ok);
        put(weights, p->name != NULL ? p->name : "", percent(p->weight_bp), ok);
    }
    put(o, "pools", pools, ok);
    put(o, "weights", weights, ok);
    if (r->outlier.enabled) {
        json_t *oo = json_object();
        put(oo, "consecutive_failures", json_integer(r->outlier.consecutive_failures), ok);
        put(oo, "base_ejection_ms", json_integer(r->outlier.base_ejection_ms), ok);
        put(oo, "max_ejection_ms", json_integer(r->outlier.max_ejection_ms), ok);
        put(oo, "max_ejection_percent", json_integer(r->outlier.max_ejection_percent), ok);
        put(o, "outlier_detection", oo, ok);
    }
    if (r->watchdog.enabled) {
        json_t *wo = json_object();
        put(wo, "max_5xx_percent", percent(r->watchdog.max_5xx_bp), ok);
        put(wo, "window_s", json_integer(r->watchdog.window_s), ok);
        put(wo, "min_requests", json_integer(r->watchdog.min_requests), ok);
        put(o, "watchdog", wo, ok);
    }
    if (r->sticky.kind != CFG_STICKY_NONE) {
        json_t *s = json_object();
        if (r->sticky.kind == CFG_STICKY_HEADER)
            put(s, "header", str(r->sticky.name), ok);
        else if (r->sticky.kind == CFG_STICKY_COOKIE)
            put(s, "cookie", str(r->sticky.name), ok);
        else
            put(s, "client_address", json_true(), ok);
        put(o, "sticky", s, ok);
    }
    if (r->override.header != NULL) {
        json_t *ov = json_object();
        put(ov, "header", str(r->override.header), ok);
        put(ov, "trusted_peers", cidrs(&r->override.trusted_peers, ok), ok);
        if (r->override.nsubjects) {
            json_t *subs = json_array();
            for (size_t i = 0; i < r->override.nsubjects; i++)
                push(subs, str(r->override.trusted_subjects[i]), ok);
            put(ov, "trusted_subjects", subs, ok);
        }
        put(o, "override", ov, ok);
    }
    return o;
}

#define NUM(obj, key, v) put(obj, key, json_integer((json_int_t)(v)), &ok)

char *cfg_dump(const struct cfg *cfg)
{
    bool ok = true;
    json_t *root = json_object(), *listeners = json_array(), *routes = json_array();
    json_t *t = json_object(), *l = json_object(), *log = json_object();
    put(root, "cluster", str(cfg->cluster), &ok);
    put(root, "region", str(cfg->region), &ok);
    NUM(root, "workers", cfg->workers);
    for (size_t i = 0; i < cfg->nlisteners; i++)
        push(listeners, dump_listener(&cfg->listeners[i], &ok), &ok);
    put(root, "listeners", listeners, &ok);
    put(root, "trusted_proxies", cidrs(&cfg->trusted_proxies, &ok), &ok);

    const struct cfg_timeouts *to = &cfg->timeouts;
    NUM(t, "client_header_ms", to->client_header);
    NUM(t, "client_idle_ms", to->client_idle);
    NUM(t, "upstream_connect_ms", to->upstream_connect);
    NUM(t, "upstream_header_ms", to->upstream_header);
    NUM(t, "body_idle_ms", to->body_idle);
    NUM(t, "request_body_ms", to->request_body);
    NUM(t, "upstream_idle_ms", to->upstream_idle);
    NUM(t, "shutdown_delay_ms", to->shutdown_delay);
    NUM(t, "drain_ms", to->drain);
    NUM(t, "dns_refresh_ms", to->dns_refresh);
    put(root, "timeouts", t, &ok);

    const struct cfg_limits *li = &cfg->limits;
    NUM(l, "max_request_line", li->max_request_line);
    NUM(l, "max_header_bytes", li->max_header_bytes);
    NUM(l, "max_headers", li->max_headers);
    NUM(l, "max_connections", li->max_connections);
    NUM(l, "upstream_idle_per_endpoint", li->upstream_idle_per_endpoint);
    NUM(l, "buffer_bytes", li->buffer_bytes);
    NUM(l, "min_body_rate", li->min_body_rate);
    put(root, "limits", l, &ok);

    json_t *rt = json_object();
    NUM(rt, "max_tries", cfg->retries.max_tries);
    NUM(rt, "budget_ms", cfg->retries.budget_ms);
    put(root, "retries", rt, &ok);

    put(log, "enabled", json_boolean(cfg->access_log.enabled), &ok);
    if (cfg->access_log.country_database != NULL)
        put(log, "country_database", str(cfg->access_log.country_database), &ok);
    put(root, "access_log", log, &ok);

    for (size_t i = 0; i < cfg->nroutes; i++)
        push(routes, dump_route(&cfg->routes[i], &ok), &ok);
    put(root, "routes", routes, &ok);

    const struct cfg_control *cc = &cfg->control;
    if (cc->socket || cc->state_file || cc->audit_file || cc->nroles) {
            json_t *ctl = json_object();
        char mode[8];
        snprintf(mode, sizeof mode, "0%o", cc->mode);
        if (cc->socket)
            put(ctl, "socket", json_string(cc->socket), &ok);
        put(ctl, "mode", json_string(mode), &ok);
        if (cc->group >= 0)
            put(ctl, "group", json_integer(cc->group), &ok);
        if (cc->state_file)
            put(ctl, "state_file", json_string(cc->state_file), &ok);
        if (cc->audit_file)
            put(ctl, "audit_file", json_string(cc->audit_file), &ok);
        put(ctl, "max_clients", json_integer(cc->max_clients), &ok);
        put(ctl, "request_timeout_ms", json_integer(cc->request_timeout), &ok);
        put(ctl, "idle_timeout_ms", json_integer(cc->idle_timeout), &ok);
        json_t *roles = json_array();
        for (size_t i = 0; i < cc->nroles; i++) {
            json_t *r = json_object();
            if (cc->roles[i].uid >= 0)
                put(r, "uid", json_integer(cc->roles[i].uid), &ok);
            if (cc->roles[i].gid >= 0)
                put(r, "gid", json_integer(cc->roles[i].gid), &ok);
            put(r, "role", json_string(role_name(cc->roles[i].role)), &ok);
            push(roles, r, &ok);
        }
        put(ctl, "roles", roles, &ok);
        put(root, "control", ctl, &ok);
    }
    if (cfg->metrics.address) {
        json_t *m = json_object();
        put(m, "address", hostport(cfg->metrics.host, cfg->metrics.port), &ok);
        put(root, "metrics", m, &ok);
    }

    if (cfg->admin.address != NULL)
        put(root, "admin", dump_admin(&cfg->admin, &ok), &ok);
    if (cfg->probe_path != NULL)
        put(root, "probe_path", str(cfg->probe_path), &ok);
    if (cfg->siem.address != NULL)
        put(root, "siem", dump_siem(&cfg->siem, &ok), &ok);

    char *text = NULL;
    if (ok)
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(root);
    return text;
}

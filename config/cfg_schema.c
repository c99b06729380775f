/* cfg_schema.c - the schema of the configuration: one table per JSON object.
 *
 * Each entry is {key, kind, parse setter, target offset, min, max, default, ...}; the kinds,
 * flags and hooks are described in cfg_schema.h. The order of a table is the order cfg_dump()
 * writes its keys; the parse reads keys in document order whatever the table's order. These
 * tables drive parse (cfg_parse.c), defaults (cfg_parse_defaults), dump (cfg_dump.c) and free
 * (cfg.c); the cross-object rules are in cfg_validate.c.
 */
#include "config/cfg_schema.h"

#include "config/cfg_types.h"

#define TLS_PATH_MAX 4096

static const struct cfg_field tls_cert_fields[] = {
    {"cert", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_tls_cert, cert),
     .max = TLS_PATH_MAX},
    {"key", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_tls_cert, key), .max = TLS_PATH_MAX},
    {"pem", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_tls_cert, pem), .max = TLS_PATH_MAX},
    {NULL},
};

static const char *const client_auth_names[] = {"none", "optional", "required", NULL};

static const struct cfg_field tls_fields[] = {
    {"certificates", CFG_K_ARRAY, cfg_types_set_tls_certs, offsetof(struct cfg_tls, certs),
     .flags = CFG_F_REQUIRED, .sub = tls_cert_fields, .size = sizeof(struct cfg_tls_cert),
     .off2 = offsetof(struct cfg_tls, ncerts)},
    {"client_auth", CFG_K_ENUM, cfg_types_set_enum, offsetof(struct cfg_tls, client_auth),
     .def = CFG_CLIENT_AUTH_NONE, .names = client_auth_names,
     .msg = "must be \"none\", \"optional\" or \"required\""},
    {"client_ca", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_tls, client_ca),
     .max = TLS_PATH_MAX},
    {"crl", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_tls, crl), .max = TLS_PATH_MAX},
    {"min_version", CFG_K_UINT, cfg_types_set_tls_version, offsetof(struct cfg_tls, min_version),
     .def = 12, .dump = cfg_types_dump_tls_version},
    {"alpn", CFG_K_CUSTOM, cfg_types_set_alpn, 0, .dump = cfg_types_dump_alpn},
    {NULL},
};

static const struct cfg_field listener_fields[] = {
    {"name", CFG_K_STR, cfg_types_set_ident, offsetof(struct cfg_listener, name), 1, 64,
     .flags = CFG_F_NULL},
    {"address", CFG_K_HOSTPORT, cfg_types_set_listener_address,
     offsetof(struct cfg_listener, address), .flags = CFG_F_REQUIRED,
     .off2 = offsetof(struct cfg_listener, host), .off3 = offsetof(struct cfg_listener, port)},
    {"protocols", CFG_K_UINT, cfg_types_set_protocols, offsetof(struct cfg_listener, protocols),
     .def = CFG_PROTO_HTTP1, .dump = cfg_types_dump_protocols},
    {"tls", CFG_K_PTR, cfg_types_set_tls, offsetof(struct cfg_listener, tls), .sub = tls_fields,
     .size = sizeof(struct cfg_tls)},
    {NULL},
};

const struct cfg_field cfg_schema_upstream_tls[] = {
    {"ca", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_upstream_tls, ca),
     .max = TLS_PATH_MAX, .flags = CFG_F_REQUIRED | CFG_F_NULL},
    {"crl", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_upstream_tls, crl),
     .max = TLS_PATH_MAX},
    {"server_name", CFG_K_STR, cfg_types_set_server_name,
     offsetof(struct cfg_upstream_tls, server_name)},
    {"client_certificate", CFG_K_PTR, cfg_types_set_client_cert,
     offsetof(struct cfg_upstream_tls, client_cert), .sub = tls_cert_fields,
     .size = sizeof(struct cfg_tls_cert)},
    {"min_version", CFG_K_UINT, cfg_types_set_tls_version,
     offsetof(struct cfg_upstream_tls, min_version), .def = 12, .dump = cfg_types_dump_tls_version},
    {NULL},
};

#define HC(key, member, lo, hi, def)                                                               \
    {                                                                                              \
        key, CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_health_check, member), lo, hi,    \
            def                                                                                    \
    }

static const struct cfg_field health_check_fields[] = {
    {"path", CFG_K_STR, cfg_types_set_path_prefix, offsetof(struct cfg_health_check, path),
     .flags = CFG_F_REQUIRED | CFG_F_NULL},
    {"host", CFG_K_STR, cfg_types_set_check_host, offsetof(struct cfg_health_check, host)},
    HC("interval_ms", interval_ms, 100, 300000, 5000),
    HC("jitter_ms", jitter_ms, 0, 60000, 1000),
    /* 0 (below the minimum): not given; cfg_types_set_health_check derives it */
    HC("timeout_ms", timeout_ms, 10, 60000, 0),
    HC("healthy_threshold", healthy_threshold, 1, 100, 2),
    HC("unhealthy_threshold", unhealthy_threshold, 1, 100, 3),
    {"expected_status", CFG_K_CUSTOM, cfg_types_set_status_range, 0,
     .dump = cfg_types_dump_status_range},
    {NULL},
};

/* The elements of pools.X.endpoints: strings, one hostport each. */
static const struct cfg_field endpoint_fields[] = {
    {"", CFG_K_HOSTPORT, NULL, offsetof(struct cfg_endpoint, address),
     .off2 = offsetof(struct cfg_endpoint, host), .off3 = offsetof(struct cfg_endpoint, port)},
    {NULL},
};

static const char *const balance_names[] = {"least_outstanding", "round_robin", NULL};
static const char *const up_proto_names[] = {"http1", "h2c", "h2", NULL};

static const struct cfg_field pool_fields[] = {
    {"endpoints", CFG_K_ARRAY, cfg_types_set_endpoints, offsetof(struct cfg_pool, endpoints),
     .flags = CFG_F_REQUIRED, .sub = endpoint_fields, .size = sizeof(struct cfg_endpoint),
     .off2 = offsetof(struct cfg_pool, nendpoints), .dump = cfg_types_dump_endpoints},
    {"balance", CFG_K_ENUM, cfg_types_set_enum, offsetof(struct cfg_pool, balance),
     .def = CFG_BALANCE_LEAST_OUTSTANDING, .names = balance_names,
     .msg = "must be \"least_outstanding\" or \"round_robin\""},
    {"protocol", CFG_K_ENUM, cfg_types_set_enum, offsetof(struct cfg_pool, protocol),
     .def = CFG_UP_HTTP1, .names = up_proto_names, .msg = "must be \"http1\", \"h2c\" or \"h2\""},
    {"tls", CFG_K_PTR, cfg_types_set_upstream_tls, offsetof(struct cfg_pool, tls),
     .sub = cfg_schema_upstream_tls, .size = sizeof(struct cfg_upstream_tls)},
    {"health_check", CFG_K_OBJ, cfg_types_set_health_check, offsetof(struct cfg_pool, health_check),
     .flags = CFG_F_GIVEN, .sub = health_check_fields,
     .off2 = offsetof(struct cfg_health_check, enabled), .present = cfg_types_has_enabled},
    {"slow_start_ms", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_pool, slow_start_ms), 0,
     3600000, 0, .flags = CFG_F_OMIT_ZERO},
    {NULL},
};

/* The keys of "sticky" share one member (the name), so the "sticky" entry dumps and frees it. */
static const struct cfg_field sticky_fields[] = {
    {"header", CFG_K_CUSTOM, cfg_types_set_sticky_header, offsetof(struct cfg_sticky, name),
     .flags = CFG_F_LOWER},
    {"cookie", CFG_K_CUSTOM, cfg_types_set_sticky_cookie, offsetof(struct cfg_sticky, name)},
    {"client_address", CFG_K_CUSTOM, cfg_types_set_sticky_client, 0},
    {NULL},
};

static const struct cfg_field override_fields[] = {
    {"header", CFG_K_STR, cfg_types_set_token, offsetof(struct cfg_override, header),
     .flags = CFG_F_REQUIRED | CFG_F_LOWER | CFG_F_NULL},
    {"trusted_peers", CFG_K_CIDRS, cfg_types_set_cidr_list,
     offsetof(struct cfg_override, trusted_peers), .min = 1, .flags = CFG_F_REQUIRED},
    {"trusted_subjects", CFG_K_STRS, cfg_types_set_subjects,
     offsetof(struct cfg_override, trusted_subjects), .flags = CFG_F_OMIT_ZERO,
     .off2 = offsetof(struct cfg_override, nsubjects)},
    {NULL},
};

#define OUT(key, member, lo, hi, def)                                                              \
    {                                                                                              \
        key, CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_outlier, member), lo, hi, def     \
    }

static const struct cfg_field outlier_fields[] = {
    OUT("consecutive_failures", consecutive_failures, 1, 1000, 5),
    OUT("base_ejection_ms", base_ejection_ms, 100, 3600000, 30000),
    OUT("max_ejection_ms", max_ejection_ms, 100, 3600000, 300000),
    OUT("max_ejection_percent", max_ejection_percent, 0, 100, 50),
    {NULL},
};

static const struct cfg_field watchdog_fields[] = {
    {"max_5xx_percent", CFG_K_UINT, cfg_types_set_percent_bp,
     offsetof(struct cfg_watchdog, max_5xx_bp), .flags = CFG_F_REQUIRED,
     .dump = cfg_types_dump_percent_bp},
    {"window_s", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_watchdog, window_s), 5, 60,
     30},
    {"min_requests", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_watchdog, min_requests), 1,
     1000000, 50},
    {NULL},
};

static const struct cfg_field route_fields[] = {
    {"name", CFG_K_STR, cfg_types_set_ident, offsetof(struct cfg_route, name), 1, 64,
     .flags = CFG_F_REQUIRED | CFG_F_NULL},
    {"hosts", CFG_K_STRS, cfg_types_set_hosts, offsetof(struct cfg_route, hosts),
     .off2 = offsetof(struct cfg_route, nhosts)},
    {"path_prefix", CFG_K_STR, cfg_types_set_path_prefix, offsetof(struct cfg_route, path_prefix),
     .def_str = "/", .flags = CFG_F_NULL},
    {"pools", CFG_K_CUSTOM, cfg_types_set_pools, 0, .flags = CFG_F_REQUIRED, .sub = pool_fields,
     .dump = cfg_types_dump_pools, .free = cfg_types_free_pools},
    {"weights", CFG_K_CUSTOM, cfg_types_set_weights, 0, .flags = CFG_F_REQUIRED | CFG_F_DEFER,
     .dump = cfg_types_dump_weights},
    {"outlier_detection", CFG_K_OBJ, cfg_types_set_given, offsetof(struct cfg_route, outlier),
     .flags = CFG_F_GIVEN, .sub = outlier_fields, .off2 = offsetof(struct cfg_outlier, enabled),
     .present = cfg_types_has_enabled},
    {"watchdog", CFG_K_OBJ, cfg_types_set_given, offsetof(struct cfg_route, watchdog),
     .flags = CFG_F_GIVEN, .sub = watchdog_fields, .off2 = offsetof(struct cfg_watchdog, enabled),
     .present = cfg_types_has_enabled},
    {"sticky", CFG_K_CUSTOM, cfg_types_set_sticky, offsetof(struct cfg_route, sticky),
     .sub = sticky_fields, .dump = cfg_types_dump_sticky, .free = cfg_types_free_sticky},
    {"override", CFG_K_OBJ, cfg_types_set_object, offsetof(struct cfg_route, override),
     .sub = override_fields, .present = cfg_types_has_override},
    {NULL},
};

#define TIMEOUT(key, member, lo, hi, def)                                                          \
    {                                                                                              \
        key, CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_timeouts, member), lo, hi, def    \
    }

static const struct cfg_field timeout_fields[] = {
    TIMEOUT("client_header_ms", client_header, 1, 86400000, 10000),
    TIMEOUT("client_idle_ms", client_idle, 1, 86400000, 120000),
    TIMEOUT("upstream_connect_ms", upstream_connect, 1, 86400000, 2000),
    TIMEOUT("upstream_header_ms", upstream_header, 1, 86400000, 15000),
    TIMEOUT("body_idle_ms", body_idle, 1, 86400000, 60000),
    TIMEOUT("request_body_ms", request_body, 0, 86400000, 30000),
    TIMEOUT("upstream_idle_ms", upstream_idle, 1, 86400000, 50000),
    TIMEOUT("upstream_queue_ms", upstream_queue, 1, 86400000, 5000),
    TIMEOUT("shutdown_delay_ms", shutdown_delay, 0, 600000, 0),
    TIMEOUT("drain_ms", drain, 1, 86400000, 25000),
    TIMEOUT("dns_refresh_ms", dns_refresh, 1, 86400000, 30000),
    {NULL},
};

#define LIMIT(member, lo, hi, def)                                                                 \
    {                                                                                              \
#member, CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_limits, member), lo, hi, def  \
    }

static const struct cfg_field limit_fields[] = {
    LIMIT(max_request_line, 256, 65536, 8192),
    LIMIT(max_header_bytes, 1024, 1048576, 32768),
    LIMIT(max_headers, 8, 1000, 100),
    LIMIT(max_connections, 1, 1000000, 10000),
    LIMIT(upstream_idle_per_endpoint, 0, 10000, 128),
    LIMIT(upstream_connections_per_endpoint, 0, 100000, 1024),
    LIMIT(upstream_queue_per_endpoint, 0, 1000000, 10000),
    LIMIT(buffer_bytes, 4096, 67108864, 262144),
    LIMIT(min_body_rate, 0, 1073741824, 1024),
    {NULL},
};

static const struct cfg_field retry_fields[] = {
    {"max_tries", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_retries, max_tries), 1, 10,
     3},
    {"budget_ms", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_retries, budget_ms), 1,
     600000, 5000},
    {NULL},
};

static const struct cfg_field access_log_fields[] = {
    {"enabled", CFG_K_BOOL, cfg_types_set_bool, offsetof(struct cfg_access_log, enabled), .def = 1},
    {"country_database", CFG_K_STR, cfg_types_set_path,
     offsetof(struct cfg_access_log, country_database), .max = TLS_PATH_MAX},
    {NULL},
};

/* The elements of control.roles (parsed by cfg_types_set_roles). */
static const struct cfg_field control_role_fields[] = {
    {"uid", CFG_K_LONG, NULL, offsetof(struct cfg_role_rule, uid), .dump = cfg_types_dump_id},
    {"gid", CFG_K_LONG, NULL, offsetof(struct cfg_role_rule, gid), .dump = cfg_types_dump_id},
    {"role", CFG_K_CUSTOM, NULL, offsetof(struct cfg_role_rule, role), .dump = cfg_types_dump_role},
    {NULL},
};

/* control.store.tls: the CA that signed the etcd members' certificates and the client
 * certificate cutover presents (parsed by cfg_types_set_upstream_tls). */
static const struct cfg_field store_tls_fields[] = {
    {"ca", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_upstream_tls, ca),
     .max = TLS_PATH_MAX, .flags = CFG_F_REQUIRED | CFG_F_NULL},
    {"client_certificate", CFG_K_PTR, cfg_types_set_client_cert,
     offsetof(struct cfg_upstream_tls, client_cert), .sub = tls_cert_fields,
     .size = sizeof(struct cfg_tls_cert)},
    {NULL},
};

static const struct cfg_field store_fields[] = {
    {"endpoints", CFG_K_STRS, cfg_types_set_store_endpoints, offsetof(struct cfg_store, endpoints),
     .flags = CFG_F_REQUIRED, .off2 = offsetof(struct cfg_store, nendpoints)},
    {"prefix", CFG_K_STR, cfg_types_set_store_prefix, offsetof(struct cfg_store, prefix),
     .flags = CFG_F_REQUIRED},
    {"tls", CFG_K_PTR, cfg_types_set_upstream_tls, offsetof(struct cfg_store, tls),
     .sub = store_tls_fields, .size = sizeof(struct cfg_upstream_tls)},
    {"user", CFG_K_STR, cfg_types_set_ident, offsetof(struct cfg_store, user), 1, 64},
    {"password_file", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_store, password_file),
     .max = 4096},
    {"replica", CFG_K_STR, cfg_types_set_ident, offsetof(struct cfg_store, replica), 1, 64},
    {"dial_timeout_ms", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_store, dial_timeout_ms),
     50, 60000, 1000},
    {"request_timeout_ms", CFG_K_UINT, cfg_types_set_uint,
     offsetof(struct cfg_store, request_timeout_ms), 100, 60000, 2000},
    {"lease_ttl_s", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_store, lease_ttl_s), 2,
     300, 10},
    {NULL},
};

static const struct cfg_field control_fields[] = {
    {"socket", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_control, socket), .max = 107},
    {"mode", CFG_K_UINT, cfg_types_set_mode, offsetof(struct cfg_control, mode), .def = 0660,
     .dump = cfg_types_dump_mode},
    {"group", CFG_K_LONG, cfg_types_set_gid, offsetof(struct cfg_control, group), .def = -1,
     .dump = cfg_types_dump_id},
    {"state_file", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_control, state_file),
     .max = 4096},
    {"audit_file", CFG_K_STR, cfg_types_set_path, offsetof(struct cfg_control, audit_file),
     .max = 4096},
    {"max_clients", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_control, max_clients), 1,
     1024, 16},
    {"request_timeout_ms", CFG_K_UINT, cfg_types_set_uint,
     offsetof(struct cfg_control, request_timeout), 100, 600000, 5000},
    {"idle_timeout_ms", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_control, idle_timeout),
     1000, 3600000, 60000},
    {"roles", CFG_K_ARRAY, cfg_types_set_roles, offsetof(struct cfg_control, roles),
     .sub = control_role_fields, .size = sizeof(struct cfg_role_rule),
     .off2 = offsetof(struct cfg_control, nroles)},
    {"store", CFG_K_OBJ, cfg_types_set_store, offsetof(struct cfg_control, store),
     .sub = store_fields, .flags = CFG_F_GIVEN, .off2 = offsetof(struct cfg_store, enabled),
     .present = cfg_types_has_enabled},
    {NULL},
};

/* The elements of admin.roles (parsed by cfg_types_set_admin_roles). */
static const struct cfg_field admin_role_fields[] = {
    {"subject", CFG_K_STR, NULL, offsetof(struct cfg_admin_role, subject), .flags = CFG_F_NULL},
    {"role", CFG_K_CUSTOM, NULL, offsetof(struct cfg_admin_role, role),
     .dump = cfg_types_dump_role},
    {NULL},
};

static const struct cfg_field admin_fields[] = {
    {"address", CFG_K_HOSTPORT, cfg_types_set_admin_address, offsetof(struct cfg_admin, address),
     .flags = CFG_F_REQUIRED, .off2 = offsetof(struct cfg_admin, host),
     .off3 = offsetof(struct cfg_admin, port)},
    {"tls", CFG_K_PTR, cfg_types_set_tls, offsetof(struct cfg_admin, tls),
     .flags = CFG_F_REQUIRED | CFG_F_ADMIN, .sub = tls_fields, .size = sizeof(struct cfg_tls)},
    {"roles", CFG_K_ARRAY, cfg_types_set_admin_roles, offsetof(struct cfg_admin, roles),
     .sub = admin_role_fields, .size = sizeof(struct cfg_admin_role),
     .off2 = offsetof(struct cfg_admin, nroles)},
    {"max_clients", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_admin, max_clients), 1,
     1024, 16},
    {"request_timeout_ms", CFG_K_UINT, cfg_types_set_uint,
     offsetof(struct cfg_admin, request_timeout), 100, 600000, 10000},
    {"idle_timeout_ms", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_admin, idle_timeout),
     1000, 3600000, 60000},
    {NULL},
};

static const struct cfg_field metrics_fields[] = {
    {"address", CFG_K_HOSTPORT, cfg_types_set_metrics_address,
     offsetof(struct cfg_metrics, address), .flags = CFG_F_REQUIRED,
     .off2 = offsetof(struct cfg_metrics, host), .off3 = offsetof(struct cfg_metrics, port)},
    {NULL},
};

static const char *const trace_context_names[] = {"forward", "create", NULL};
static const char *const framing_names[] = {"octet-counting", "newline", NULL};

static const struct cfg_field siem_fields[] = {
    {"address", CFG_K_HOSTPORT, cfg_types_set_siem_address, offsetof(struct cfg_siem, address),
     .flags = CFG_F_REQUIRED, .off2 = offsetof(struct cfg_siem, host),
     .off3 = offsetof(struct cfg_siem, port)},
    {"tls", CFG_K_PTR, cfg_types_set_upstream_tls, offsetof(struct cfg_siem, tls),
     .flags = CFG_F_REQUIRED, .sub = cfg_schema_upstream_tls,
     .size = sizeof(struct cfg_upstream_tls)},
    {"vendor", CFG_K_STR, cfg_types_set_siem_text, offsetof(struct cfg_siem, vendor), 1, 64,
     .def_str = "cutover", .flags = CFG_F_NULL},
    {"delimiter", CFG_K_CHAR, cfg_types_set_siem_delimiter, offsetof(struct cfg_siem, delimiter),
     .def = '^', .dump = cfg_types_dump_delimiter},
    {"hostname", CFG_K_STR, cfg_types_set_siem_text, offsetof(struct cfg_siem, hostname), 1, 255},
    {"facility", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_siem, facility), 0, 23, 13},
    {"framing", CFG_K_ENUM, cfg_types_set_enum, offsetof(struct cfg_siem, framing),
     .def = CFG_SIEM_OCTET_COUNTING, .names = framing_names,
     .msg = "must be \"octet-counting\" or \"newline\""},
    {"max_queue_bytes", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg_siem, max_queue_bytes),
     4096, 67108864, 1048576},
    {"connect_timeout_ms", CFG_K_UINT, cfg_types_set_uint,
     offsetof(struct cfg_siem, connect_timeout_ms), 100, 60000, 5000},
    {"write_timeout_ms", CFG_K_UINT, cfg_types_set_uint,
     offsetof(struct cfg_siem, write_timeout_ms), 100, 60000, 5000},
    {NULL},
};

const struct cfg_field cfg_schema_root[] = {
    {"cluster", CFG_K_STR, cfg_types_set_ident, offsetof(struct cfg, cluster), 1, 64,
     .def_str = "local", .flags = CFG_F_NULL},
    {"region", CFG_K_STR, cfg_types_set_ident, offsetof(struct cfg, region), 1, 64,
     .def_str = "local", .flags = CFG_F_NULL},
    {"workers", CFG_K_UINT, cfg_types_set_uint, offsetof(struct cfg, workers), 0, 256, 0},
    {"listeners", CFG_K_ARRAY, cfg_types_set_listeners, offsetof(struct cfg, listeners),
     .flags = CFG_F_REQUIRED, .sub = listener_fields, .size = sizeof(struct cfg_listener),
     .off2 = offsetof(struct cfg, nlisteners)},
    {"trusted_proxies", CFG_K_CIDRS, cfg_types_set_cidr_list, offsetof(struct cfg, trusted_proxies),
     .min = 0},
    {"timeouts", CFG_K_OBJ, cfg_types_set_object, offsetof(struct cfg, timeouts),
     .sub = timeout_fields},
    {"limits", CFG_K_OBJ, cfg_types_set_object, offsetof(struct cfg, limits), .sub = limit_fields},
    {"retries", CFG_K_OBJ, cfg_types_set_object, offsetof(struct cfg, retries),
     .sub = retry_fields},
    {"access_log", CFG_K_OBJ, cfg_types_set_object, offsetof(struct cfg, access_log),
     .sub = access_log_fields},
    {"trace_context", CFG_K_ENUM, cfg_types_set_enum, offsetof(struct cfg, trace_context),
     .def = CFG_TRACE_FORWARD, .names = trace_context_names,
     .msg = "must be \"forward\" or \"create\""},
    {"routes", CFG_K_ARRAY, cfg_types_set_routes, offsetof(struct cfg, routes),
     .flags = CFG_F_REQUIRED, .sub = route_fields, .size = sizeof(struct cfg_route),
     .off2 = offsetof(struct cfg, nroutes)},
    {"control", CFG_K_OBJ, cfg_types_set_object, offsetof(struct cfg, control),
     .sub = control_fields, .present = cfg_types_has_control},
    {"metrics", CFG_K_OBJ, cfg_types_set_object, offsetof(struct cfg, metrics),
     .sub = metrics_fields, .present = cfg_types_has_address},
    {"admin", CFG_K_OBJ, cfg_types_set_object, offsetof(struct cfg, admin), .sub = admin_fields,
     .present = cfg_types_has_address},
    {"probe_path", CFG_K_STR, cfg_types_set_path_prefix, offsetof(struct cfg, probe_path)},
    {"siem", CFG_K_OBJ, cfg_types_set_siem, offsetof(struct cfg, siem), .sub = siem_fields,
     .flags = CFG_F_GIVEN, .present = cfg_types_has_address},
    {NULL},
};

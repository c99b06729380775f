/* cfg_types.h - internal to config/: the setters and hooks the schema tables name
 * (cfg_types.c, cfg_types_route.c), and the lexical helpers they share. Signatures and
 * contracts are those of cfg_set_fn, cfg_dump_fn, cfg_free_fn and cfg_present_fn
 * (cfg_schema.h). Any thread; no global state.
 */
#ifndef CUT_CFG_TYPES_H
#define CUT_CFG_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include "config/cfg_schema.h"

/* Replaces *dst (freed) with s (taken). */
void cfg_types_set_str(char **dst, char *s);
/* A DNS name: labels of 1..63 letters, digits and '-', at most 253 characters. */
bool cfg_types_valid_hostname(const char *s);
void cfg_types_lower(char *s);
/* Splits "host:port" or "[v6]:port": *host malloc'd (canonical numeric address or lower-case
 * DNS name). Returns NULL or the message. numeric_only refuses DNS names. */
const char *cfg_types_parse_hostport(const char *s, bool numeric_only, char **host, uint16_t *port);

cfg_set_fn cfg_types_set_object;
cfg_set_fn cfg_types_set_uint;
cfg_set_fn cfg_types_set_bool;
cfg_set_fn cfg_types_set_ident;
cfg_set_fn cfg_types_set_token;
cfg_set_fn cfg_types_set_cidr_list;
cfg_set_fn cfg_types_set_listener_address;
cfg_set_fn cfg_types_set_protocols;
cfg_set_fn cfg_types_set_path;
cfg_set_fn cfg_types_set_mode;
cfg_set_fn cfg_types_set_gid;
cfg_set_fn cfg_types_set_roles;
cfg_set_fn cfg_types_set_admin_address;
cfg_set_fn cfg_types_set_admin_roles;
cfg_set_fn cfg_types_set_metrics_address;
cfg_set_fn cfg_types_set_siem_address;
cfg_set_fn cfg_types_set_siem_text;
cfg_set_fn cfg_types_set_siem_delimiter;
cfg_set_fn cfg_types_set_siem;
cfg_set_fn cfg_types_set_enum;
cfg_set_fn cfg_types_set_given;
cfg_set_fn cfg_types_set_store_endpoints;
cfg_set_fn cfg_types_set_store_prefix;
cfg_set_fn cfg_types_set_store;
cfg_dump_fn cfg_types_dump_protocols;
cfg_dump_fn cfg_types_dump_mode;
cfg_dump_fn cfg_types_dump_id;
cfg_dump_fn cfg_types_dump_role;
cfg_dump_fn cfg_types_dump_delimiter;
cfg_present_fn cfg_types_has_control;
cfg_present_fn cfg_types_has_address;
cfg_set_fn cfg_types_set_tls_certs;
cfg_set_fn cfg_types_set_tls_version;
cfg_set_fn cfg_types_set_alpn;
cfg_set_fn cfg_types_set_tls;
cfg_set_fn cfg_types_set_listeners;
cfg_set_fn cfg_types_set_hosts;
cfg_set_fn cfg_types_set_path_prefix;
cfg_set_fn cfg_types_set_endpoints;
cfg_set_fn cfg_types_set_server_name;
cfg_set_fn cfg_types_set_client_cert;
cfg_set_fn cfg_types_set_upstream_tls;
cfg_set_fn cfg_types_set_percent_bp;
cfg_set_fn cfg_types_set_status_range;
cfg_set_fn cfg_types_set_check_host;
cfg_set_fn cfg_types_set_health_check;
cfg_set_fn cfg_types_set_pools;
cfg_set_fn cfg_types_set_weights;
cfg_set_fn cfg_types_set_sticky_header;
cfg_set_fn cfg_types_set_sticky_cookie;
cfg_set_fn cfg_types_set_sticky_client;
cfg_set_fn cfg_types_set_sticky;
cfg_set_fn cfg_types_set_subjects;
cfg_set_fn cfg_types_set_routes;
cfg_dump_fn cfg_types_dump_tls_version;
cfg_dump_fn cfg_types_dump_alpn;
cfg_dump_fn cfg_types_dump_endpoints;
cfg_dump_fn cfg_types_dump_percent_bp;
cfg_dump_fn cfg_types_dump_status_range;
cfg_dump_fn cfg_types_dump_pools;
cfg_free_fn cfg_types_free_pools;
cfg_dump_fn cfg_types_dump_weights;
cfg_dump_fn cfg_types_dump_sticky;
cfg_free_fn cfg_types_free_sticky;
cfg_present_fn cfg_types_has_enabled;
cfg_present_fn cfg_types_has_override;

#endif

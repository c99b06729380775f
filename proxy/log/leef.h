/* leef.h - cutover's JSON records (audit records, events) as LEEF 2.0 events inside RFC 5424
 * syslog messages, for the SIEM (QRadar). Pure functions: no I/O, no global state, any thread.
 *
 * A message (docs/configuration.md, "siem"):
 *
 *   <PRI>1 TIMESTAMP HOSTNAME APP PROCID MSGID - LEEF:2.0|Vendor|Product|Version|EventID|D|attrs
 *
 * PRI = facility * 8 + the syslog severity derived from the LEEF sev; TIMESTAMP is the record's
 * "time"; MSGID "audit" or "security"; EventID "audit.<op>.<ok|refused>" or the event's name.
 * Attributes: devTime, devTimeFormat, cat, sev, usrName and src when the record has them, then
 * every other field in the record's order, nested objects flattened with '.', arrays as compact
 * JSON, null as an empty value. In values the delimiter, '|', '\\' and control characters become
 * spaces. A message longer than LEEF_MAX_MESSAGE loses its last attributes (cut at a delimiter)
 * and ends with "truncated=true".
 */
#ifndef CUT_LEEF_H
#define CUT_LEEF_H

#include <stddef.h>

#define LEEF_MAX_MESSAGE 8192 /* RFC 5425: receivers SHOULD accept 8192 octets */

enum leef_kind { LEEF_AUDIT = 0, LEEF_SECURITY };

struct leef_opts {
    const char *vendor;   /* LEEF Vendor (validated by the config: printable, no '|') */
    const char *product;  /* LEEF Product, and the RFC 5424 APP-NAME */
    const char *version;  /* LEEF Version */
    const char *hostname; /* RFC 5424 HOSTNAME */
    long pid;             /* RFC 5424 PROCID */
    unsigned facility;    /* 0..23 */
    char delimiter;       /* the LEEF 2.0 attribute delimiter */
};

/* The LEEF severity (1..10) of an event that goes to the SIEM, or 0 for the events that stay on
 * stdout only (health, DNS, drain stages...). */
int leef_event_severity(const char *event);

/* The syslog severity (RFC 5424, 0..7) for a LEEF severity (1..10). */
unsigned leef_syslog_severity(int sev);

/* Encodes one JSON record (a JSON object with "time"; an audit record for LEEF_AUDIT, an event
 * line with "event" for LEEF_SECURITY) as an RFC 5424 message without framing into out[0..cap)
 * (cap >= LEEF_MAX_MESSAGE + 1; NUL-terminated). Returns its length, or CUT_EINVAL when json is
 * not such a record, or CUT_ENOMEM. */
int leef_encode(const struct leef_opts *o, enum leef_kind kind, const char *json, size_t len,
                char *out, size_t cap);

#endif

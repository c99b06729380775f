/* test_leef.c - proxy/leef.c: audit records and security events as LEEF 2.0 in RFC 5424, against
 * golden messages (header fields, PRI from the severity, attribute order, flattening, src/srcPort,
 * value escaping, the tab delimiter's "x09", truncation at 8192 bytes), and what is refused.
 * The TLS transport, framing and queue are in tests/integration/test_siem.py. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cut.h"
#include "proxy/log/leef.h"

static const struct leef_opts OPTS = {.vendor = "Bank",
                                      .product = "cutover",
                                      .version = "0.2.0",
                                      .hostname = "cutover-0",
                                      .pid = 4242,
                                      .facility = 13,
                                      .delimiter = '^'};

static char out[LEEF_MAX_MESSAGE + 1];

static int enc(const struct leef_opts *o, enum leef_kind k, const char *json)
{
    memset(out, 'Z', sizeof out);
    return leef_encode(o, k, json, strlen(json), out, sizeof out);
}

#define AUDIT_OK                                                                                  \
    "{\"type\":\"audit\",\"time\":\"2026-11-24T04:50:00.123Z\",\"cluster\":\"aks-weu-1\","      \
    "\"region\":\"westeurope\",\"actor\":{\"uid\":1001,\"user\":\"jane\"},\"role\":\"operator\"," \
    "\"op\":\"rollback\",\"args\":{\"route\":\"payments\"},\"result\":\"ok\",\"error\":null,"    \
    "\"generation_before\":41,\"generation_after\":42,\"weights_before\":{\"blue\":0,"          \
    "\"green\":100},\"weights_after\":{\"blue\":100,\"green\":0},\"reason\":\"INC-4242\"}"

Test(leef, audit_record_golden)
{
    int n = enc(&OPTS, LEEF_AUDIT, AUDIT_OK);
    const char *want =
        "<109>1 2026-11-24T04:50:00.123Z cutover-0 cutover 4242 audit - "
        "LEEF:2.0|Bank|cutover|0.2.0|audit.rollback.ok|^|"
        "devTime=2026-11-24T04:50:00.123Z^devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSX^cat=audit^"
        "sev=3^usrName=jane^cluster=aks-weu-1^region=westeurope^actor.uid=1001^role=operator^"
        "op=rollback^args.route=payments^result=ok^error=^generation_before=41^"
        "generation_after=42^weights_before.blue=0^weights_before.green=100^"
        "weights_after.blue=100^weights_after.green=0^reason=INC-4242";
    cr_assert_str_eq(out, want);
    cr_assert_eq(n, (int)strlen(want));
}

Test(leef, audit_severities_and_pri)
{
    /* refused, denied: sev 8 -> syslog error (3): PRI 13*8+3 */
    enc(&OPTS, LEEF_AUDIT,
        "{\"time\":\"2026-11-24T04:50:00.123Z\",\"actor\":{\"uid\":7,\"user\":\"bob\"},"
        "\"op\":\"set-weights\",\"result\":\"refused\",\"error\":{\"code\":\"denied\","
        "\"message\":\"role viewer may not set-weights\"}}");
    cr_assert(strncmp(out, "<107>1 ", 7) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "|audit.set-weights.refused|^|"), "%s", out);
    cr_assert_not_null(strstr(out, "^sev=8^"), "%s", out);
    cr_assert_not_null(strstr(out, "^error.code=denied^error.message=role viewer may not "
                                   "set-weights"),
                       "%s", out);
    /* refused otherwise: 6 -> warning (4) */
    enc(&OPTS, LEEF_AUDIT,
        "{\"time\":\"2026-11-24T04:50:00.123Z\",\"op\":\"set-weights\",\"result\":\"refused\","
        "\"error\":{\"code\":\"conflict\"}}");
    cr_assert(strncmp(out, "<108>1 ", 7) == 0 && strstr(out, "^sev=6^"), "%s", out);
    /* a read: 1 -> informational (6) */
    enc(&OPTS, LEEF_AUDIT, "{\"time\":\"2026-11-24T04:50:00.123Z\",\"op\":\"status\",\"result\":\"ok\"}");
    cr_assert(strncmp(out, "<110>1 ", 7) == 0 && strstr(out, "^sev=1"), "%s", out);
    /* cutover's own rollback: 5 -> warning (4) */
    enc(&OPTS, LEEF_AUDIT,
        "{\"time\":\"2026-11-24T04:50:00.123Z\",\"actor\":{\"uid\":null,\"user\":\"auto\"},"
        "\"op\":\"rollback\",\"result\":\"ok\"}");
    cr_assert(strncmp(out, "<108>1 ", 7) == 0 && strstr(out, "^sev=5^usrName=auto^actor.uid=^"),
              "%s", out);
}

Test(leef, security_event_with_peer)
{
    struct leef_opts o = OPTS;
    o.facility = 4;
    int n = enc(&o, LEEF_SECURITY,
                "{\"type\":\"event\",\"time\":\"2026-11-24T04:50:01.000Z\",\"cluster\":\"c\","
                "\"region\":\"r\",\"event\":\"admin_tls_refused\",\"generation\":3,"
                "\"peer\":\"[2001:db8::7]:50123\",\"reason\":\"certificate verify failed\","
                "\"ok\":false,\"ratio\":0.5,\"list\":[1,\"a^b\"]}");
    const char *want = "<35>1 2026-11-24T04:50:01.000Z cutover-0 cutover 4242 security - "
                       "LEEF:2.0|Bank|cutover|0.2.0|admin_tls_refused|^|"
                       "devTime=2026-11-24T04:50:01.000Z^devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSX^"
                       "cat=security^sev=7^src=2001:db8::7^srcPort=50123^cluster=c^region=r^"
                       "generation=3^peer=[2001:db8::7]:50123^reason=certificate verify failed^"
                       "ok=false^ratio=0.5^list=[1,\"a b\"]";
    cr_assert_str_eq(out, want);
    cr_assert_eq(n, (int)strlen(want));
}

Test(leef, values_are_escaped_and_tab_delimiter)
{
    struct leef_opts o = OPTS;
    o.delimiter = '\t';
    enc(&o, LEEF_AUDIT,
        "{\"time\":\"2026-11-24T04:50:00.123Z\",\"op\":\"drain\",\"result\":\"ok\","
        "\"reason\":\"a\\tb|c\\\\d\\ne^f\\u0001g\",\"weird key=x\":\"v\"}");
    cr_assert_not_null(strstr(out, "|audit.drain.ok|x09|devTime="), "%s", out);
    cr_assert_not_null(strstr(out, "\treason=a b c d e^f g\tweird_key_x=v"), "%s", out);
    cr_assert_null(strchr(out, '\n'));
    o.delimiter = '^';
    enc(&o, LEEF_AUDIT,
        "{\"time\":\"2026-11-24T04:50:00.123Z\",\"op\":\"drain\",\"result\":\"ok\","
        "\"reason\":\"a\\tb|c\\\\d\\ne^f\"}");
    cr_assert_not_null(strstr(out, "^reason=a b c d e f"), "%s", out);
}

Test(leef, header_fields_are_cleaned)
{
    struct leef_opts o = OPTS;
    o.hostname = "";
    o.vendor = "Ba|nk";
    enc(&o, LEEF_AUDIT, "{\"time\":\"2026-11-24T04:50:00.123Z\",\"op\":\"x|y\",\"result\":\"ok\"}");
    cr_assert(strncmp(out, "<109>1 2026-11-24T04:50:00.123Z - cutover 4242 audit - "
                           "LEEF:2.0|Ba nk|cutover|0.2.0|audit.x y.ok|^|",
                      97) == 0,
              "%s", out);
}

Test(leef, long_records_are_truncated_at_an_attribute)
{
    size_t big = 20000;
    char *json = malloc(big + 200);
    cr_assert_not_null(json);
    int k = snprintf(json, 200,
                     "{\"time\":\"2026-11-24T04:50:00.123Z\",\"op\":\"drain\",\"result\":\"ok\","
                     "\"short\":\"s\",\"reason\":\"");
    memset(json + k, 'r', big);
    strcpy(json + k + big, "\",\"after\":1}");
    int n = leef_encode(&OPTS, LEEF_AUDIT, json, strlen(json), out, sizeof out);
    cr_assert_gt(n, 0);
    cr_assert_leq(n, LEEF_MAX_MESSAGE);
    cr_assert_eq((size_t)n, strlen(out));
    const char *tail = "^short=s^truncated=true";
    cr_assert_str_eq(out + n - strlen(tail), tail, "%s", out + n - 80);
    free(json);
    /* a reason that fits is kept whole */
    char json2[400];
    snprintf(json2, sizeof json2,
             "{\"time\":\"2026-11-24T04:50:00.123Z\",\"op\":\"drain\",\"result\":\"ok\","
             "\"reason\":\"%0200d\"}",
             7);
    n = leef_encode(&OPTS, LEEF_AUDIT, json2, strlen(json2), out, sizeof out);
    cr_assert_gt(n, 0);
    cr_assert_null(strstr(out, "truncated"));
}

Test(leef, refused_inputs)
{
    /* not JSON, not an object, no time, no op/event, an event the SIEM does not take */
    cr_assert_eq(enc(&OPTS, LEEF_AUDIT, "{nope"), CUT_EINVAL);
    cr_assert_eq(enc(&OPTS, LEEF_AUDIT, "[1,2]"), CUT_EINVAL);
    cr_assert_eq(enc(&OPTS, LEEF_AUDIT, "{\"op\":\"drain\",\"result\":\"ok\"}"), CUT_EINVAL);
    cr_assert_eq(enc(&OPTS, LEEF_AUDIT, "{\"time\":\"2026-11-24T04:50:00.123Z\"}"), CUT_EINVAL);
    cr_assert_eq(enc(&OPTS, LEEF_SECURITY,
                     "{\"time\":\"2026-11-24T04:50:00.123Z\",\"event\":\"endpoint_health\"}"),
                 CUT_EINVAL);
    char small[100];
    cr_assert_eq(leef_encode(&OPTS, LEEF_AUDIT, AUDIT_OK, strlen(AUDIT_OK), small, sizeof small),
                 CUT_EINVAL);
}

Test(leef, severity_tables)
{
    cr_assert_eq(leef_event_severity("upstream_tls_failed"), 7);
    cr_assert_eq(leef_event_severity("admin_tls_refused"), 7);
    cr_assert_eq(leef_event_severity("tls_reload_refused"), 6);
    cr_assert_eq(leef_event_severity("audit_failed"), 9);
    cr_assert_eq(leef_event_severity("started"), 3);
    cr_assert_eq(leef_event_severity("audit_gap"), 8);
    cr_assert_eq(leef_event_severity("state_refused"), 7);
    cr_assert_eq(leef_event_severity("control_connection_evicted"), 5);
    cr_assert_eq(leef_event_severity("endpoint_health"), 0);
    cr_assert_eq(leef_event_severity("siem_unreachable"), 0); /* never about itself */
    cr_assert_eq(leef_event_severity(NULL), 0);
    unsigned want[11] = {0, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2};
    for (int s = 1; s <= 10; s++)
        cr_assert_eq(leef_syslog_severity(s), want[s], "sev %d", s);
}

Test(leef, weights_are_exact_and_aborted_changes_named)
{
    enc(&OPTS, LEEF_AUDIT,
        "{\"type\":\"audit\",\"kind\":\"change\",\"time\":\"2026-11-24T04:50:00.123Z\","
        "\"actor\":{\"uid\":7,\"user\":\"bob\"},\"op\":\"set-weights\",\"result\":\"aborted\","
        "\"error\":{\"code\":\"internal\",\"message\":\"state file: disk full\"},"
        "\"weights_after\":{\"blue\":97.21,\"green\":2.79},\"args\":{\"weights\":[33.33,0.1]}}");
    cr_assert_not_null(strstr(out, "|audit.set-weights.aborted|^|"), "%s", out);
    cr_assert_not_null(strstr(out, "^weights_after.blue=97.21^weights_after.green=2.79"), "%s",
                       out);
    cr_assert_not_null(strstr(out, "args.weights=[33.33,0.1]"), "%s", out);
    cr_assert_null(strstr(out, "9999"), "no float noise: %s", out);
}

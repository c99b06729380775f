/* Unit tests for control/cli/values.c: cutoverctl's percentages, durations, numbers, gates and
 * weights. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "control/cli/values.h"

Test(cli_values, percent_text)
{
    long h = -1;
    cr_assert_eq(cli_parse_pct("25", &h), 0);
    cr_assert_eq(h, 2500);
    cr_assert_eq(cli_parse_pct("12.5", &h), 0);
    cr_assert_eq(h, 1250);
    cr_assert_eq(cli_parse_pct("12.34%", &h), 0);
    cr_assert_eq(h, 1234);
    cr_assert_eq(cli_parse_pct("0", &h), 0);
    cr_assert_eq(h, 0);
    cr_assert_eq(cli_parse_pct("100", &h), 0);
    cr_assert_eq(h, 10000);
    h = 7;
    static const char *const bad[] = {"", "%", "100.01", "101", "1.234", "1.", ".5", "-1",
                                      "1e2", "5 ", "5%%", "abc", "0100.5x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(cli_parse_pct(bad[i], &h), -1, "'%s'", bad[i]);
    cr_assert_eq(h, 7, "a refused text must not change the result");
}

Test(cli_values, percent_format)
{
    char b[32];
    cr_assert_str_eq(cli_pct_str(2500, b, sizeof b), "25");
    cr_assert_str_eq(cli_pct_str(1250, b, sizeof b), "12.5");
    cr_assert_str_eq(cli_pct_str(1234, b, sizeof b), "12.34");
    cr_assert_str_eq(cli_pct_str(-1, b, sizeof b), "?");
    json_t *v = cli_pct_json(2500);
    cr_assert(json_is_integer(v) && json_integer_value(v) == 25);
    json_decref(v);
    v = cli_pct_json(1250);
    cr_assert(json_is_real(v) && json_real_value(v) == 12.5);
    cr_assert_eq(cli_json_pct(v), 1250);
    json_decref(v);
    v = json_real(1e12);
    cr_assert_eq(cli_json_pct(v), -1, "out of range is refused, not converted");
    json_decref(v);
    v = json_string("10");
    cr_assert_eq(cli_json_pct(v), -1);
    json_decref(v);
}

Test(cli_values, durations)
{
    cr_assert_eq(cli_parse_duration("30"), 30000);
    cr_assert_eq(cli_parse_duration("30s"), 30000);
    cr_assert_eq(cli_parse_duration("1.5s"), 1500);
    cr_assert_eq(cli_parse_duration("250ms"), 250);
    cr_assert_eq(cli_parse_duration("2m"), 120000);
    cr_assert_eq(cli_parse_duration("1h"), 3600000);
    static const char *const bad[] = {"", "-1", "+1", " 1", "1x", "s", "1 s", "nan", "1e10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(cli_parse_duration(bad[i]), -1, "'%s'", bad[i]);
    cr_assert_eq(cli_parse_duration(NULL), -1);
}

Test(cli_values, integers)
{
    long long v = 0;
    cr_assert_eq(cli_parse_ll("42", 1, 1000, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(cli_parse_ll("0", 1, 1000, &v), -1);
    cr_assert_eq(cli_parse_ll("1001", 1, 1000, &v), -1);
    cr_assert_eq(cli_parse_ll("12a", 1, 1000, &v), -1);
    cr_assert_eq(cli_parse_ll("", 1, 1000, &v), -1);
    cr_assert_eq(cli_parse_ll("99999999999999999999", 0, 1000, &v), -1);
    cr_assert_eq(v, 42);
}

Test(cli_values, gates)
{
    char err[256];
    json_t *g = json_object();
    cr_assert_eq(cli_parse_gate("5xx<=1%", g, err, sizeof err), 0, "%s", err);
    cr_assert_float_eq(json_real_value(json_object_get(g, "max_5xx_percent")), 1.0, 1e-9);
    cr_assert_eq(cli_parse_gate(" P99 <= 2s ", g, err, sizeof err), 0, "%s", err);
    cr_assert_eq(json_integer_value(json_object_get(g, "max_p99_ms")), 2000);
    cr_assert_eq(cli_parse_gate("p99<=500ms", g, err, sizeof err), -1);
    cr_assert(strstr(err, "already given"), "%s", err);
    json_decref(g);

    g = json_object();
    cr_assert_eq(cli_parse_gate("p99<=500ms", g, err, sizeof err), 0, "%s", err);
    cr_assert_eq(json_integer_value(json_object_get(g, "max_p99_ms")), 500);
    static const struct {
        const char *text, *says;
    } bad[] = {
        {"5xx<=1", "needs '%'"},         {"5xx<=101%", "0..100%"},
        {"5xx<=x%", "not a number"},     {"p99<=500", "needs a unit"},
        {"p99<=0.5ms", "whole milliseconds"}, {"p99<=601s", "whole milliseconds"},
        {"p50<=1s", "expected 5xx<="},   {"5xx<=-1%", "not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        cr_assert_eq(cli_parse_gate(bad[i].text, g, err, sizeof err), -1, "%s", bad[i].text);
        cr_assert(strstr(err, bad[i].says), "%s: %s", bad[i].text, err);
    }
    cr_assert_eq(json_object_size(g), 1, "a refused gate must not be added");
    json_decref(g);
}

Test(cli_values, weights)
{
    char b[128];
    json_t *a = json_pack("{s:i, s:f}", "blue", 90, "green", 10.0);
    json_t *c = json_pack("{s:f, s:i}", "green", 10.0, "blue", 90);
    json_t *d = json_pack("{s:i, s:i}", "blue", 80, "green", 20);
    cr_assert_str_eq(cli_weights_str(a, b, sizeof b), "blue=90% green=10%");
    cr_assert_str_eq(cli_weights_str(json_null(), b, sizeof b), "?");
    cr_assert(cli_weights_same(a, c));
    cr_assert(!cli_weights_same(a, d));
    cr_assert(!cli_weights_same(a, NULL));
    cr_assert_str_eq(cli_jstr(a, "nothing"), "");
    json_decref(a);
    json_decref(c);
    json_decref(d);
}

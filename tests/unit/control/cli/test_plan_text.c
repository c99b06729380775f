/* Unit tests for control/cli/plan_text.c: the progress line cutoverctl shift prints. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "control/cli/plan_text.h"

static json_t *plan(const char *extra)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"state\":\"running\",\"to\":\"green\",\"steps\":[50,100],\"step\":0,"
             "\"weight\":50,\"gates\":{\"max_5xx_percent\":5,\"min_requests\":10},"
             "\"window\":{\"requests\":42,\"errors_5xx\":1,\"ratio_percent\":2.38,\"p99_ms\":12},"
             "\"next_step_in_s\":3%s}",
             extra);
    json_t *p = json_loads(text, 0, NULL);
    cr_assert_not_null(p, "%s", text);
    return p;
}

Test(cli_plan_text, progress_of_a_fleet_plan_names_replicas_and_leader)
{
    json_t *p = plan(",\"fleet\":{\"replicas_at_step\":2,\"replicas\":3,\"leader\":\"r2\"}");
    char buf[400];
    const char *line = cli_plan_progress(p, buf, sizeof buf);
    cr_assert_not_null(strstr(line, "step 1/2"), "%s", line);
    cr_assert_not_null(strstr(line, "5xx 2.38%"), "%s", line);
    cr_assert_not_null(strstr(line, "42 req"), "%s", line);
    cr_assert_not_null(strstr(line, "fleet 2/3 at step, leader r2"), "%s", line);
    json_decref(p);
    p = plan(",\"fleet\":{\"replicas_at_step\":1,\"replicas\":3,\"leader\":\"\"}");
    line = cli_plan_progress(p, buf, sizeof buf);
    cr_assert_not_null(strstr(line, "leader (none yet)"), "%s", line);
    json_decref(p);
}

Test(cli_plan_text, progress_of_a_cohort_plan_names_the_countries)
{
    json_t *p = plan(",\"cohort\":{\"countries\":[\"SG\",\"MY\"]}");
    char buf[400];
    const char *line = cli_plan_progress(p, buf, sizeof buf);
    cr_assert_not_null(strstr(line, "(cohort SG,MY)"), "%s", line);
    json_decref(p);
    p = plan(",\"cohort\":null");
    line = cli_plan_progress(p, buf, sizeof buf);
    cr_assert_null(strstr(line, "cohort"), "%s", line);
    json_decref(p);
}

/* test_gate.c - control/gate.c: a shift-plan step's decision, the step weights and the p99 of a
 * latency histogram window. */
#include <criterion/criterion.h>
#include <string.h>

#include "config/cfg.h"
#include "control/gate.h"

static const struct gate_limits both = {
    .gate_5xx = 1, .gate_p99 = 1, .max_5xx_bp = 500, .max_p99_ms = 250, .min_requests = 100};

/* Step 0 of 3 at 10 %, "to" serving, started at t=1000 with a 60 s hold; now is set per test. */
static struct gate_step step_at(int64_t now_ms)
{
    return (struct gate_step){.step = 0,
                              .nsteps = 3,
                              .to_bp = 1000,
                              .to_serving = 1,
                              .step_started_ms = 1000,
                              .hold_s = 60,
                              .now_ms = now_ms};
}

static struct gate_window window(uint64_t req, uint64_t e5, double p99)
{
    return (struct gate_window){
        .requests = req, .errors_5xx = e5, .ratio_pct = gate_ratio_pct(req, e5), .p99_ms = p99};
}

static struct gate_decision judge(const struct gate_limits *l, struct gate_step st,
                                  struct gate_window w)
{
    struct gate_decision d;
    memset(&d, 0x5a, sizeof d);
    gate_judge(l, &st, &w, &d);
    return d;
}

Test(gate, the_hold_decides_when_a_healthy_step_advances)
{
    struct gate_window w = window(1000, 0, 50);
    struct gate_decision d = judge(&both, step_at(1000), w);
    cr_assert_eq(d.verdict, GATE_HOLD, "at the step's start");
    d = judge(&both, step_at(1000 + 60000 - 1), w);
    cr_assert_eq(d.verdict, GATE_HOLD, "one millisecond before the hold ends");
    d = judge(&both, step_at(1000 + 60000), w);
    cr_assert_eq(d.verdict, GATE_ADVANCE, "exactly when the hold ends");
    cr_assert_eq(d.next_step, 1);
    cr_assert_null(d.reason);
}

Test(gate, the_last_step_promotes)
{
    struct gate_step st = step_at(61000);
    st.step = 2;
    st.to_bp = 10000;
    struct gate_decision d = judge(&both, st, window(500, 1, 10));
    cr_assert_eq(d.verdict, GATE_PROMOTE);
    st.nsteps = 1;
    st.step = 0;
    cr_assert_eq(judge(&both, st, window(500, 1, 10)).verdict, GATE_PROMOTE,
                 "a one-step plan promotes after its hold");
}

Test(gate, a_5xx_share_exactly_at_the_limit_passes_above_it_rolls_back)
{
    /* 5 of 100 is exactly 5 %: passes */
    struct gate_decision d = judge(&both, step_at(1000), window(100, 5, 10));
    cr_assert_eq(d.verdict, GATE_HOLD);
    /* 6 of 100 is above: rolls back at once, long before the hold ends */
    d = judge(&both, step_at(1000), window(100, 6, 10));
    cr_assert_eq(d.verdict, GATE_ROLLBACK);
    cr_assert_str_eq(d.gate, "max_5xx_percent");
    cr_assert_float_eq(d.value, 6.0, 1e-9);
    cr_assert_float_eq(d.limit, 5.0, 1e-9);
    cr_assert_str_eq(d.reason, "automatic rollback: a gate failed");
    /* 501 of 10000 (5.01 %) is above too */
    d = judge(&both, step_at(1000), window(10000, 501, 10));
    cr_assert_eq(d.verdict, GATE_ROLLBACK);
    cr_assert_float_eq(d.value, 5.01, 1e-9);
}

Test(gate, below_min_requests_no_gate_judges_and_the_step_holds)
{
    /* 99 requests, all 5xx and slow: below min_requests, no verdict */
    struct gate_decision d = judge(&both, step_at(1000), window(99, 99, 30000));
    cr_assert_eq(d.verdict, GATE_HOLD);
    /* and after the hold it still waits for enough traffic */
    d = judge(&both, step_at(1000 + 600000), window(99, 0, 5));
    cr_assert_eq(d.verdict, GATE_HOLD, "too little traffic to judge: hold on");
    /* exactly min_requests is judged */
    d = judge(&both, step_at(1000), window(100, 100, 5));
    cr_assert_eq(d.verdict, GATE_ROLLBACK);
    cr_assert_str_eq(d.gate, "max_5xx_percent");
    cr_assert_float_eq(d.value, 100.0, 1e-9);
}

Test(gate, without_gates_or_min_requests_the_hold_alone_decides)
{
    struct gate_limits none = {.min_requests = 100};
    struct gate_decision d = judge(&none, step_at(61000), window(0, 0, 0));
    cr_assert_eq(d.verdict, GATE_ADVANCE, "no gate set: no traffic needed");
    struct gate_limits zero_min = both;
    zero_min.min_requests = 0;
    d = judge(&zero_min, step_at(61000), window(0, 0, 0));
    cr_assert_eq(d.verdict, GATE_ADVANCE, "min_requests 0 never waits for traffic");
    d = judge(&zero_min, step_at(1000), window(0, 0, 0));
    cr_assert_eq(d.verdict, GATE_HOLD, "an empty window fails no gate");
}

Test(gate, the_p99_gate_fails_only_above_its_limit)
{
    struct gate_decision d = judge(&both, step_at(1000), window(100, 0, 250));
    cr_assert_eq(d.verdict, GATE_HOLD, "exactly at max_p99_ms passes");
    d = judge(&both, step_at(1000), window(100, 0, 500));
    cr_assert_eq(d.verdict, GATE_ROLLBACK);
    cr_assert_str_eq(d.gate, "max_p99_ms");
    cr_assert_float_eq(d.value, 500.0, 1e-9);
    cr_assert_float_eq(d.limit, 250.0, 1e-9);
    /* the 5xx gate is judged first */
    d = judge(&both, step_at(1000), window(100, 50, 500));
    cr_assert_str_eq(d.gate, "max_5xx_percent");
    /* an unset gate never fails */
    struct gate_limits only_5xx = both;
    only_5xx.gate_p99 = 0;
    cr_assert_eq(judge(&only_5xx, step_at(1000), window(100, 0, 30000)).verdict, GATE_HOLD);
}

Test(gate, a_target_without_serving_endpoint_rolls_back_while_it_carries_weight)
{
    struct gate_step st = step_at(1000);
    st.to_serving = 0;
    struct gate_decision d = judge(&both, st, window(0, 0, 0));
    cr_assert_eq(d.verdict, GATE_ROLLBACK, "even with no traffic and before the hold ends");
    cr_assert_str_eq(d.gate, "unhealthy");
    cr_assert_float_eq(d.value, 0.0, 1e-9);
    cr_assert_float_eq(d.limit, 0.0, 1e-9);
    st.to_bp = 0;
    cr_assert_eq(judge(&both, st, window(0, 0, 0)).verdict, GATE_HOLD,
                 "a step at 0 % needs no serving endpoint");
    st.to_bp = 1000;
    st.to_serving = -1;
    cr_assert_eq(judge(&both, st, window(0, 0, 0)).verdict, GATE_HOLD,
                 "unknown health is not a failure");
}

Test(gate, ratio_of_an_empty_window_is_zero)
{
    cr_assert_float_eq(gate_ratio_pct(0, 0), 0.0, 1e-12);
    cr_assert_float_eq(gate_ratio_pct(8, 2), 25.0, 1e-12);
}

Test(gate, p99_is_the_upper_bound_of_the_bucket_holding_it)
{
    static const unsigned bounds[3] = {10, 100, 1000};
    uint64_t base[4] = {5, 5, 5, 5};
    /* 100 requests: 98 fast, 2 in (10, 100]: the 99th is in the second bucket */
    uint64_t now[4] = {5 + 98, 5 + 2, 5, 5};
    cr_assert_float_eq(gate_p99_ms(now, base, 100, bounds, 3), 100.0, 1e-9);
    /* 99 fast of 100: the 99th percentile is fast */
    uint64_t fast[4] = {5 + 99, 5 + 1, 5, 5};
    cr_assert_float_eq(gate_p99_ms(fast, base, 100, bounds, 3), 10.0, 1e-9);
    /* beyond the last bound: twice the last bound */
    uint64_t slow[4] = {5, 5, 5, 5 + 100};
    cr_assert_float_eq(gate_p99_ms(slow, base, 100, bounds, 3), 2000.0, 1e-9);
    cr_assert_float_eq(gate_p99_ms(base, base, 0, bounds, 3), 0.0, 1e-9, "no requests");
    /* one request: it is the 99th percentile */
    uint64_t one[4] = {5, 5, 5 + 1, 5};
    cr_assert_float_eq(gate_p99_ms(one, base, 1, bounds, 3), 1000.0, 1e-9);
}

static unsigned sum(const unsigned *w, size_t n)
{
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += w[i];
    return s;
}

Test(gate, step_weights_share_the_rest_by_stable_weight)
{
    /* blue stable 100 %, green is "to" at 25 % */
    unsigned stable[2] = {10000, 0}, w[2];
    gate_step_weights(stable, 2, 1, 0, 2500, w);
    cr_assert_eq(w[0], 7500);
    cr_assert_eq(w[1], 2500);
    /* three pools, the rest split 2:1 with the rounding remainder to the last other pool */
    unsigned stable3[3] = {6667, 3333, 0}, w3[3];
    gate_step_weights(stable3, 3, 2, 0, 1, w3);
    cr_assert_eq(w3[2], 1);
    cr_assert_eq(sum(w3, 3), CFG_BP_TOTAL, "the sum stays 10000");
    cr_assert_eq(w3[0], (unsigned)((uint64_t)9999 * 6667 / 10000));
    cr_assert_eq(w3[1], 9999 - w3[0], "the last other pool takes the remainder");
    /* 100 % to "to": the others get nothing */
    gate_step_weights(stable3, 3, 2, 0, CFG_BP_TOTAL, w3);
    cr_assert_eq(w3[0] + w3[1], 0);
    cr_assert_eq(w3[2], CFG_BP_TOTAL);
}

Test(gate, step_weights_without_stable_others_go_to_from)
{
    /* "to" (index 0) was the stable one: the other pools have no stable weight */
    unsigned stable[3] = {10000, 0, 0}, w[3];
    gate_step_weights(stable, 3, 0, 1, 4000, w);
    cr_assert_eq(w[0], 4000);
    cr_assert_eq(w[1], 6000, "the pool the plan started from takes the rest");
    cr_assert_eq(w[2], 0);
    /* no "from" either: the rounding puts the rest on the last other pool */
    gate_step_weights(stable, 3, 0, -1, 4000, w);
    cr_assert_eq(w[1], 0);
    cr_assert_eq(w[2], 6000);
    cr_assert_eq(sum(w, 3), CFG_BP_TOTAL);
}

/* fuzz_commands.c - libFuzzer harness for the control protocol: commands_handle() (and
 * commands_refuse()) on a real struct ctl made by ctl_new() from a fixed configuration (three
 * routes, health checks, sticky and override rules), with the audit log in memory, no state file
 * and no workers (control/commands.h, docs/control-protocol.md).
 *
 * Input: byte 0 chooses the peer (bits 0-2: role, 5+ is admin; bit 6: an HTTPS peer address;
 * bit 7: the first line is refused with commands_refuse()); the rest is up to FUZZ_MAX_LINES
 * request lines separated by '\n', run in order on one fresh ctl. A line "tick" runs the shift
 * plans' tick (plan_tick()) instead.
 *
 * Checks after every request: a reply (valid JSON object with "id", "ok" and "generation"
 * agreeing with the returned code), a generation that never goes back, every route's current
 * and stable weights summing to 100 %; at the end, a runtime state that state_to_json() writes
 * and state_from_json() reads back to the same text (the state file after a restart).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "control/commands.h"
#include "control/ctl.h"
#include "control/plan.h"
#include "control/state.h"
#include "tests/fuzz/support/fuzz_ctl.h"

#define FUZZ_MAX_LINES 16

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config[] =
    "{\"cluster\":\"fuzz\",\"region\":\"local\",\"workers\":1,"
    "\"listeners\":[{\"name\":\"main\",\"address\":\"127.0.0.1:18080\"}],"
    "\"trusted_proxies\":[\"127.0.0.1\"],"
    "\"routes\":["
    "{\"name\":\"api\",\"hosts\":[\"api.test\"],\"path_prefix\":\"/\","
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9001\",\"127.0.0.1:9002\"]},"
    "\"green\":{\"endpoints\":[\"127.0.0.1:9003\"],\"balance\":\"round_robin\"}},"
    "\"weights\":{\"blue\":90,\"green\":10},\"sticky\":{\"header\":\"x-device-id\"},"
    "\"override\":{\"header\":\"x-cutover-pool\",\"trusted_peers\":[\"127.0.0.1\"]}},"
    "{\"name\":\"web\",\"hosts\":[\"web.test\"],\"path_prefix\":\"/\","
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9011\"]},"
    "\"green\":{\"endpoints\":[\"127.0.0.1:9012\"]},"
    "\"canary\":{\"endpoints\":[\"127.0.0.1:9013\"]}},"
    "\"weights\":{\"blue\":33.33,\"green\":33.33,\"canary\":33.34},"
    "\"sticky\":{\"cookie\":\"sid\"}},"
    "{\"name\":\"checked\",\"hosts\":[\"checked.test\"],\"path_prefix\":\"/v2\","
    "\"pools\":{\"blue\":{\"endpoints\":[\"127.0.0.1:9021\"],"
    "\"health_check\":{\"path\":\"/healthz\",\"interval_ms\":60000}},"
    "\"green\":{\"endpoints\":[\"127.0.0.1:9022\"]}},"
    "\"weights\":{\"blue\":100,\"green\":0}}"
    "]}";

static struct fuzz_env env;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_env_init(&env, config);
    return 0;
}

/* The reply line: a JSON object whose "ok" agrees with code. */
static void check_reply(const char *reply, const char *code, uint64_t generation)
{
    FUZZ_CHECK(reply != NULL, "no reply");
    FUZZ_CHECK(strchr(reply, '\n') == NULL, "a newline inside the reply line: %s", reply);
    json_error_t jerr;
    json_t *o = json_loads(reply, JSON_REJECT_DUPLICATES, &jerr);
    FUZZ_CHECK(json_is_object(o), "the reply is not a JSON object (%s): %s", jerr.text, reply);
    json_t *ok = json_object_get(o, "ok");
    FUZZ_CHECK(json_is_boolean(ok), "reply without \"ok\": %s", reply);
    FUZZ_CHECK(json_is_true(ok) == (code == NULL), "\"ok\" and the code disagree: %s", reply);
    json_t *id = json_object_get(o, "id");
    FUZZ_CHECK(id && (json_is_string(id) || json_is_null(id)), "reply without \"id\": %s", reply);
    json_t *gen = json_object_get(o, "generation");
    FUZZ_CHECK(json_is_integer(gen) && (uint64_t)json_integer_value(gen) == generation,
               "reply generation differs from the ctl's %llu: %s", (unsigned long long)generation,
               reply);
    if (code) {
        json_t *e = json_object_get(o, "error");
        const char *ec = json_string_value(json_object_get(e, "code"));
        FUZZ_CHECK(ec && strcmp(ec, code) == 0, "error.code is not %s: %s", code, reply);
    } else {
        FUZZ_CHECK(json_object_get(o, "result") != NULL, "ok reply without result: %s", reply);
    }
    json_decref(o);
}

/* The runtime state: weights that add up, and (round_trip) a state file that loads back to
 * itself. */
static void check_state(const struct ctl *c, int round_trip)
{
    FUZZ_CHECK(ctl_state(c)->generation == ctl_generation(c),
               "runtime state generation %llu, ctl generation %llu",
               (unsigned long long)ctl_state(c)->generation, (unsigned long long)ctl_generation(c));
    for (size_t r = 0; r < ctl_state(c)->nroutes; r++) {
        const struct state_route *sr = &ctl_state(c)->routes[r];
        unsigned w = 0, s = 0;
        for (size_t p = 0; p < sr->npools; p++) {
            w += sr->pools[p].weight_bp;
            s += sr->pools[p].stable_bp;
        }
        FUZZ_CHECK(w == CFG_BP_TOTAL, "route %s: weights sum to %u bp", sr->name, w);
        FUZZ_CHECK(s == CFG_BP_TOTAL, "route %s: stable weights sum to %u bp", sr->name, s);
    }
    if (!round_trip)
        return;
    char *text = state_to_json(ctl_state(c));
    FUZZ_CHECK(text != NULL, "state_to_json");
    struct state back;
    char err[512];
    int rc = state_from_json(text, strlen(text), &back, err, sizeof err);
    FUZZ_CHECK(rc == 0, "the runtime state does not load back: %s\n%s", err, text);
    char *again = state_to_json(&back);
    FUZZ_CHECK(again && strcmp(text, again) == 0, "state round trip differs:\n%s\n%s", text,
               again ? again : "(null)");
    free(again);
    free(text);
    state_dispose(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const enum cut_role roles[8] = {CUT_ROLE_NONE,     CUT_ROLE_VIEWER, CUT_ROLE_OPERATOR,
                                           CUT_ROLE_DEPLOYER, CUT_ROLE_ADMIN,  CUT_ROLE_ADMIN,
                                           CUT_ROLE_ADMIN,    CUT_ROLE_ADMIN};
    uint8_t sel = data[0];
    struct cmd_peer peer = {.uid = 1000,
                            .gid = 1000,
                            .user = "fuzz",
                            .address = (sel & 0x40) ? "127.0.0.1:40000" : NULL,
                            .role = roles[sel & 7]};
    const char *p = (const char *)data + 1, *end = (const char *)data + size;

    struct ctl *c = fuzz_ctl_new(&env, NULL, 0);
    check_state(c, 0);
    for (int i = 0; i < FUZZ_MAX_LINES && p <= end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        uint64_t before = ctl_generation(c);
        if (len == 4 && memcmp(p, "tick", 4) == 0) {
            plan_tick(ctl_cmd_host(c)->plans, ctl_cfg(c));
        } else {
            const char *code = NULL;
            char *reply = i == 0 && (sel & 0x80)
                              ? commands_refuse(ctl_cmd_host(c), &peer, p, len, "forbidden", "fuzz refusal")
                              : commands_handle(ctl_cmd_host(c), &peer, p, len, &code, NULL, NULL, NULL);
            if (i == 0 && (sel & 0x80))
                code = "forbidden";
            check_reply(reply, code, ctl_generation(c));
            free(reply);
        }
        FUZZ_CHECK(ctl_generation(c) >= before, "the generation went back from %llu to %llu",
                   (unsigned long long)before, (unsigned long long)ctl_generation(c));
        check_state(c, 0);
        if (!nl)
            break;
        p = nl + 1;
    }
    check_state(c, 1); /* once per input: it costs more than the requests */
    ctl_free(c);
    return 0;
}

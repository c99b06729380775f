/* fanout.c - the replicas: one per control socket and per address of every HTTPS endpoint;
 * a request sent to all of them, their outcomes folded into one exit code, and the barrier of
 * --wait (every replica reports the generation it acknowledged).
 */
#include "control/cli/fanout.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/cut.h"
#include "control/cli/https.h"
#include "control/cli/output.h"
#include "control/cli/transport.h"

void cli_exchange_all(struct cli *c, json_t *req)
{
    json_t *reqs[CLI_MAX_REPLICAS];
    for (size_t i = 0; i < c->n; i++)
        reqs[i] = req;
    cli_exchange(c, reqs, c->timeout_ms, NULL, 0);
}

int cli_fold_exit(const struct cli *c)
{
    size_t nok = 0;
    int worst = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->rs[i].ok)
            nok++;
        else if (!worst || c->rs[i].exit_class < worst)
            worst = c->rs[i].exit_class;
    }
    if (nok == c->n)
        return CLI_EXIT_OK;
    if (nok > 0)
        return CLI_EXIT_PARTIAL;
    return worst ? worst : CLI_EXIT_UNREACH;
}

/* With a fleet store, a replica's status lists the whole fleet (result.fleet.replicas): the
 * replicas below target, "r3 (generation 5)" separated by ", ", into names. Returns how many,
 * or -1 when the reply has no fleet (a replica without a store). */
static int fleet_lagging(json_t *reply, long long target, char *names, size_t cap)
{
    json_t *fleet = json_object_get(json_object_get(reply, "result"), "fleet");
    json_t *reps = json_object_get(fleet, "replicas");
    if (!json_is_array(reps))
        return -1;
    int n = 0;
    size_t o = 0, i;
    json_t *rep;
    names[0] = '\0';
    json_array_foreach(reps, i, rep)
    {
        long long g = (long long)json_integer_value(json_object_get(rep, "generation"));
        if (g >= target)
            continue;
        const char *name = json_string_value(json_object_get(rep, "replica"));
        if (o < cap)
            o += (size_t)snprintf(names + o, cap - o, "%s%.64s (generation %lld)", n ? ", " : "",
                                  name ? name : "?", g);
        n++;
    }
    return n;
}

int cli_fleet_converged(const struct cli *c)
{
    for (size_t i = 0; i < c->n; i++) {
        json_t *fl = json_object_get(json_object_get(c->rs[i].reply, "result"), "fleet");
        if (c->rs[i].ok && fl && !json_is_true(json_object_get(fl, "converged")))
            return 0;
    }
    return 1;
}

void cli_barrier(struct cli *c)
{
    long long target[CLI_MAX_REPLICAS], seen[CLI_MAX_REPLICAS];
    int pending[CLI_MAX_REPLICAS], saw[CLI_MAX_REPLICAS];
    json_t *saved[CLI_MAX_REPLICAS];
    char lasterr[CLI_MAX_REPLICAS][200];
    size_t left = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct cli_replica *r = &c->rs[i];
        pending[i] = r->ok && r->has_generation;
        target[i] = r->generation;
        saw[i] = 0;
        seen[i] = 0;
        lasterr[i][0] = 0;
        saved[i] = NULL;
        if (pending[i]) {
            saved[i] = json_incref(r->reply);
            left++;
        }
    }
    long long deadline = (long long)clock_mono_ms() + c->wait_timeout_ms;
    unsigned rounds = 0;
    /* status, not version: through a replica with a fleet store it reports every replica */
    json_t *probe = json_pack("{s:s}", "op", "status");
    char lagging[CLI_MAX_REPLICAS][200];
    for (size_t i = 0; i < c->n; i++)
        lagging[i][0] = 0;
    while (left > 0) {
        long long rem = deadline - (long long)clock_mono_ms();
        if (rem <= 0)
            break;
        json_t *reqs[CLI_MAX_REPLICAS];
        for (size_t i = 0; i < c->n; i++)
            reqs[i] = pending[i] ? probe : NULL;
        cli_exchange(c, reqs, rem < c->timeout_ms ? rem : c->timeout_ms, NULL, 0);
        for (size_t i = 0; i < c->n; i++) {
            struct cli_replica *r = &c->rs[i];
            if (!pending[i])
                continue;
            if (r->ok && r->has_generation) {
                saw[i] = 1;
                seen[i] = r->generation;
                int lag = fleet_lagging(r->reply, target[i], lagging[i], sizeof lagging[i]);
                if (r->generation >= target[i] && lag <= 0) {
                    pending[i] = 0;
                    left--;
                }
            } else if (!r->ok) {
                snprintf(lasterr[i], sizeof lasterr[i], "%.39s: %.150s", r->code, r->msg);
            }
        }
        if (left == 0)
            break;
        rem = deadline - (long long)clock_mono_ms();
        if (rem <= 0)
            break;
        /* a fleet usually converges within milliseconds of the acknowledgement: look again
         * soon, then back off to the period */
        long long period = rounds < 4 ? 5LL << rounds : CLI_BARRIER_PERIOD_MS;
        if (period > CLI_BARRIER_PERIOD_MS)
            period = CLI_BARRIER_PERIOD_MS;
        rounds++;
        poll(NULL, 0, (int)(rem < period ? rem : period));
    }
    json_decref(probe);
    /* restore the acknowledgements, then mark the laggards */
    for (size_t i = 0; i < c->n; i++) {
        struct cli_replica *r = &c->rs[i];
        if (!saved[i])
            continue;
        json_decref(r->reply);
        r->reply = saved[i];
        r->ok = 1;
        r->generation = target[i];
        r->has_generation = 1;
        r->code[0] = r->msg[0] = 0;
        if (pending[i]) {
            char last[260];
            if (saw[i] && lagging[i][0])
                snprintf(last, sizeof last, "these replicas of the fleet have not applied it: %.190s",
                         lagging[i]);
            else if (saw[i])
                snprintf(last, sizeof last, "it still reports generation %lld", seen[i]);
            else
                snprintf(last, sizeof last, "it did not answer (%.200s)",
                         lasterr[i][0] ? lasterr[i] : "no reply");
            r->ok = 0;
            r->exit_class = CLI_EXIT_UNREACH;
            snprintf(r->code, sizeof r->code, "wait_timeout");
            snprintf(r->msg, sizeof r->msg,
                     "acknowledged generation %lld but %s after %.1f s (--wait-timeout)", target[i],
                     last, (double)c->wait_timeout_ms / 1000.0);
        }
    }
}

int cli_make_replicas(struct cli *c)
{
    int any_https = 0;
    for (size_t t = 0; t < c->ntargets; t++)
        any_https |= c->targets[t].https;
    if (any_https) { /* the certificate first: a usage error must not wait for DNS */
        int rc = cli_tls_setup(c);
        if (rc)
            return rc;
    }
    c->n = 0;
    for (size_t t = 0; t < c->ntargets; t++) {
        struct cli_target *tg = &c->targets[t];
        if (!tg->https) {
            if (c->n == CLI_MAX_REPLICAS)
                return cli_usage_error(c, "at most %d replicas", CLI_MAX_REPLICAS);
            struct cli_replica *r = &c->rs[c->n++];
            r->socket = tg->text;
            r->fd = -1;
            continue;
        }
        struct sockaddr_storage addrs[CLI_MAX_REPLICAS];
        socklen_t lens[CLI_MAX_REPLICAS];
        char err[300];
        int n = ctlurl_expand(&tg->url, ctlurl_resolve_system, NULL, addrs, lens,
                              CLI_MAX_REPLICAS - c->n, err, sizeof err);
        if (n == CUT_ELIMIT)
            return cli_usage_error(c, "--endpoint %s: %s (at most %d replicas)", tg->text, err,
                                   CLI_MAX_REPLICAS);
        if (n < 0 && c->n == CLI_MAX_REPLICAS)
            return cli_usage_error(c, "at most %d replicas", CLI_MAX_REPLICAS);
        for (int i = 0; i < (n > 0 ? n : 1); i++) {
            struct cli_replica *r = &c->rs[c->n++];
            r->https = 1;
            r->url = &tg->url;
            r->endpoint = tg->text;
            r->fd = -1;
            r->socket = r->label;
            if (n < 0) { /* reported as this replica's failure (unreachable) at every exchange */
                snprintf(r->resolve_err, sizeof r->resolve_err, "%s", err);
                snprintf(r->label, sizeof r->label, "%s", tg->text);
                continue;
            }
            memcpy(&r->addr, &addrs[i], lens[i]);
            r->addrlen = lens[i];
            char at[64], authority[CTLURL_HOST_MAX + 16];
            ctlurl_addr_text((struct sockaddr *)&addrs[i], at, sizeof at);
            memcpy(r->addr_text, at, sizeof at);
            ctlurl_authority(&tg->url, authority, sizeof authority);
            if (tg->url.numeric)
                snprintf(r->label, sizeof r->label, "https://%s", authority);
            else
                snprintf(r->label, sizeof r->label, "https://%s (%s)", authority, at);
        }
    }
    return 0;
}

/* etcd_probe - drives control/etcd.c against a real etcd for the integration tests
 * (tests/integration/control/test_etcd_client.py).
 *
 *   etcd_probe --endpoints URL[,URL...] [--ca F] [--cert F --key F] [--user U --password-file F]
 *              [--dial-ms N] [--request-ms N] STEP...
 *
 * Each STEP is one argument, words separated by spaces (no step: one step a line on stdin):
 *   put K V                 get K                  del K
 *   txn-cas K MODREV V      (put V if K's mod_revision is MODREV; MODREV 0: K absent)
 *   cas-race K MODREV V1 V2 (two such transactions at once)
 *   watch PREFIX FROM_REV N (a prefix watch from FROM_REV until N events)
 *   lease-grant TTL         keepalive (the last lease granted)
 *   sleep MS                endpoint (the member a call goes to first)
 *   cancel-call             (starts a get and cancels it: its callback must not run)
 * Steps run one after the other; each prints one JSON line {"op":..,"status":..,"ms":..,...}
 * (a watch also prints one {"op":"event",..} line per event). The client is freed from inside
 * the last step's callback. Exit status 0 when every step ran (whatever etcd answered), 2 on
 * bad usage.
 */
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/etcd.h"
#include "control/etcd_codec.h"
#include "core/cut.h"

#define MAX_STEPS 256
#define MAX_WORDS 8

struct probe {
    struct event_base *base;
    struct etcd *e;
    char *steps[MAX_STEPS];
    int nsteps, next;
    char *w[MAX_WORDS];
    int nw;
    double t0;
    char lease[32];
    int pending;  /* cas-race: replies still to come */
    int want, got; /* watch: events */
    int64_t last_rev;
    struct etcd_watch *watch;
    struct event *timer;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void next_step(struct probe *p);

static void emit(struct probe *p, json_t *o)
{
    json_object_set_new(o, "ms", json_integer((json_int_t)(now_ms() - p->t0)));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(o);
}

static json_t *result_line(struct probe *p, int status, const char *what, json_t *reply)
{
    json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "op", p->w[0], "status", status, "status_name",
                          cut_strerror(status), "what", what ? what : "");
    if (status != 0 && reply)
        json_object_set(o, "error", reply);
    return o;
}

static char *unb64(json_t *v)
{
    char *out;
    size_t n;
    if (!json_is_string(v) || etcd_codec_unb64(json_string_value(v), &out, &n) < 0)
        return NULL;
    return out;
}

/* Moves on: the next step, or the end (etcd_free from inside the callback). */
static void done_step(struct probe *p)
{
    if (p->next >= p->nsteps) {
        etcd_free(p->e);
        p->e = NULL;
        event_base_loopbreak(p->base);
        return;
    }
    next_step(p);
}

static void on_reply(void *ctx, int status, json_t *reply, const char *what)
{
    struct probe *p = ctx;
    json_t *o = result_line(p, status, what, reply);
    const char *op = p->w[0];
    int64_t v;
    if (status == 0 && !strcmp(op, "get")) {
        json_t *kvs = json_object_get(reply, "kvs");
        json_t *kv = json_array_get(kvs, 0);
        char *val = kv ? unb64(json_object_get(kv, "value")) : NULL;
        json_object_set_new(o, "value", val ? json_string(val) : json_null());
        free(val);
        etcd_codec_int(kv, "mod_revision", &v);
        json_object_set_new(o, "mod_revision", json_integer(v));
    }
    if (status == 0 && (!strcmp(op, "txn-cas") || !strcmp(op, "cas-race")))
        json_object_set_new(o, "succeeded",
                            json_boolean(json_is_true(json_object_get(reply, "succeeded"))));
    if (status == 0 && !strcmp(op, "lease-grant")) {
        json_t *id = json_object_get(reply, "ID");
        snprintf(p->lease, sizeof p->lease, "%s", json_is_string(id) ? json_string_value(id) : "");
        json_object_set_new(o, "id", json_string(p->lease));
    }
    if (status == 0 && !strcmp(op, "keepalive")) {
        etcd_codec_int(reply, "TTL", &v);
        json_object_set_new(o, "ttl", json_integer(v));
    }
    if (status == 0) {
        etcd_codec_int(json_object_get(reply, "header"), "revision", &v);
        json_object_set_new(o, "revision", json_integer(v));
    }
    emit(p, o);
    if (p->pending > 0 && --p->pending > 0)
        return;
    done_step(p);
}

static void on_never(void *ctx, int status, json_t *reply, const char *what)
{
    (void)ctx;
    (void)reply;
    fprintf(stderr, "etcd_probe: a cancelled call's callback ran (%d %s)\n", status, what);
    abort();
}

static void on_watch(void *ctx, int status, json_t *msg)
{
    struct probe *p = ctx;
    if (status < 0) {
        p->watch = NULL;
        json_t *o = result_line(p, status, "the watch ended", NULL);
        json_object_set_new(o, "events", json_integer(p->got));
        emit(p, o);
        done_step(p);
        return;
    }
    json_t *events = json_object_get(msg, "events");
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        json_t *kv = json_object_get(ev, "kv");
        char *k = unb64(json_object_get(kv, "key"));
        char *val = unb64(json_object_get(kv, "value"));
        json_t *type = json_object_get(ev, "type");
        int64_t rev = 0;
        etcd_codec_int(kv, "mod_revision", &rev);
        emit(p, json_pack("{s:s, s:s, s:s?, s:s?, s:I}", "op", "event", "type",
                          json_is_string(type) ? json_string_value(type) : "PUT", "key", k,
                          "value", val, "mod_revision", (json_int_t)rev));
        free(k);
        free(val);
        p->got++;
    }
    if (p->got >= p->want) {
        etcd_watch_cancel(p->watch);
        p->watch = NULL;
        json_t *o = result_line(p, 0, "", NULL);
        json_object_set_new(o, "events", json_integer(p->got));
        emit(p, o);
        done_step(p);
    }
}

static void on_sleep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct probe *p = arg;
    emit(p, result_line(p, 0, "", NULL));
    done_step(p);
}

static json_t *b64s(const char *s)
{
    char *b = etcd_codec_b64(s, strlen(s));
    json_t *j = json_string(b);
    free(b);
    return j;
}

static json_t *cas_body(const char *k, const char *rev, const char *v)
{
    return json_pack("{s:[{s:o, s:s, s:s, s:s}], s:[{s:{s:o, s:o}}]}", "compare", "key", b64s(k),
                     "target", "MOD", "result", "EQUAL", "mod_revision", rev, "success",
                     "request_put", "key", b64s(k), "value", b64s(v));
}

static void start_call(struct probe *p, const char *path, json_t *body)
{
    if (!etcd_call(p->e, path, body, on_reply, p)) {
        emit(p, result_line(p, CUT_ENOMEM, "etcd_call returned NULL", NULL));
        p->pending = 0;
        done_step(p);
    }
    json_decref(body);
}

static void usage_step(struct probe *p)
{
    fprintf(stderr, "etcd_probe: bad step \"%s\"\n", p->w[0] ? p->w[0] : "");
    exit(2);
}

static void next_step(struct probe *p)
{
    char *s = p->steps[p->next++];
    p->nw = 0;
    for (char *t = strtok(s, " \t\n"); t && p->nw < MAX_WORDS; t = strtok(NULL, " \t\n"))
        p->w[p->nw++] = t;
    if (p->nw == 0) {
        done_step(p);
        return;
    }
    const char *op = p->w[0];
    p->pending = 0;
    if (!strcmp(op, "put") && p->nw == 3) {
        start_call(p, "/v3/kv/put",
                   json_pack("{s:o, s:o}", "key", b64s(p->w[1]), "value", b64s(p->w[2])));
    } else if (!strcmp(op, "get") && p->nw == 2) {
        start_call(p, "/v3/kv/range", json_pack("{s:o}", "key", b64s(p->w[1])));
    } else if (!strcmp(op, "del") && p->nw == 2) {
        start_call(p, "/v3/kv/deleterange", json_pack("{s:o}", "key", b64s(p->w[1])));
    } else if (!strcmp(op, "txn-cas") && p->nw == 4) {
        start_call(p, "/v3/kv/txn", cas_body(p->w[1], p->w[2], p->w[3]));
    } else if (!strcmp(op, "cas-race") && p->nw == 5) {
        p->pending = 2;
        json_t *a = cas_body(p->w[1], p->w[2], p->w[3]), *b = cas_body(p->w[1], p->w[2], p->w[4]);
        if (!etcd_call(p->e, "/v3/kv/txn", a, on_reply, p) ||
            !etcd_call(p->e, "/v3/kv/txn", b, on_reply, p))
            abort();
        json_decref(a);
        json_decref(b);
    } else if (!strcmp(op, "watch") && p->nw == 4) {
        char *end = etcd_codec_prefix_end(p->w[1]);
        p->want = atoi(p->w[3]);
        p->got = 0;
        p->watch = etcd_watch(p->e, p->w[1], end, strtoll(p->w[2], NULL, 10), on_watch, p);
        free(end);
        if (!p->watch)
            abort();
    } else if (!strcmp(op, "lease-grant") && p->nw == 2) {
        start_call(p, "/v3/lease/grant", json_pack("{s:s}", "TTL", p->w[1]));
    } else if (!strcmp(op, "keepalive") && p->nw == 1) {
        start_call(p, "/v3/lease/keepalive", json_pack("{s:s}", "ID", p->lease));
    } else if (!strcmp(op, "sleep") && p->nw == 2) {
        long ms = atol(p->w[1]);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(p->timer, &tv);
    } else if (!strcmp(op, "endpoint") && p->nw == 1) {
        json_t *o = result_line(p, 0, "", NULL);
        json_object_set_new(o, "endpoint", json_string(etcd_current_endpoint(p->e)));
        emit(p, o);
        done_step(p);
    } else if (!strcmp(op, "cancel-call") && p->nw == 1) {
        json_t *b = json_pack("{s:o}", "key", b64s("x"));
        struct etcd_call *c = etcd_call(p->e, "/v3/kv/range", b, on_never, p);
        json_decref(b);
        etcd_call_cancel(c);
        emit(p, result_line(p, c ? 0 : CUT_ENOMEM, "", NULL));
        done_step(p);
    } else {
        usage_step(p);
    }
}

static char *read_file_line(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[1024];
    char *r = fgets(buf, sizeof buf, f) ? strdup(buf) : NULL;
    fclose(f);
    if (r)
        r[strcspn(r, "\r\n")] = '\0';
    return r;
}

int main(int argc, char **argv)
{
    static struct probe p;
    const char *eps[ETCD_MAX_ENDPOINTS];
    struct etcd_opts o = {.endpoints = eps, .dial_timeout_ms = 2000, .request_timeout_ms = 5000};
    char *password = NULL;
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "etcd_probe: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *k = argv[i] + 2, *v = argv[i + 1];
        if (!strcmp(k, "endpoints")) {
            char *s = strdup(v);
            for (char *t = strtok(s, ","); t && o.nendpoints < ETCD_MAX_ENDPOINTS;
                 t = strtok(NULL, ","))
                eps[o.nendpoints++] = t;
        } else if (!strcmp(k, "ca")) {
            o.ca_file = v;
        } else if (!strcmp(k, "cert")) {
            o.cert_file = v;
        } else if (!strcmp(k, "key")) {
            o.key_file = v;
        } else if (!strcmp(k, "user")) {
            o.user = v;
        } else if (!strcmp(k, "password-file")) {
            if (!(password = read_file_line(v))) {
                fprintf(stderr, "etcd_probe: cannot read %s\n", v);
                return 2;
            }
            o.password = password;
        } else if (!strcmp(k, "dial-ms")) {
            o.dial_timeout_ms = (unsigned)atoi(v);
        } else if (!strcmp(k, "request-ms")) {
            o.request_timeout_ms = (unsigned)atoi(v);
        } else {
            fprintf(stderr, "etcd_probe: unknown option --%s\n", k);
            return 2;
        }
    }
    for (; i < argc && p.nsteps < MAX_STEPS; i++)
        p.steps[p.nsteps++] = strdup(argv[i]);
    if (p.nsteps == 0) {
        char line[1024];
        while (p.nsteps < MAX_STEPS && fgets(line, sizeof line, stdin))
            p.steps[p.nsteps++] = strdup(line);
    }
    if (p.nsteps == 0) {
        fprintf(stderr, "etcd_probe: no steps\n");
        return 2;
    }
    p.base = event_base_new();
    p.timer = evtimer_new(p.base, on_sleep, &p);
    char err[256];
    p.e = etcd_new(p.base, &o, err, sizeof err);
    if (!p.e) {
        fprintf(stderr, "etcd_probe: %s\n", err);
        return 2;
    }
    p.t0 = now_ms();
    next_step(&p);
    if (p.e)
        event_base_dispatch(p.base);
    etcd_free(p.e);
    event_free(p.timer);
    event_base_free(p.base);
    for (int j = 0; j < p.nsteps; j++)
        free(p.steps[j]);
    free(password);
    if (o.nendpoints)
        free((char *)eps[0]);
    return 0;
}

/* etcd_watch.c - the etcd client's watch streams (etcd_watch / etcd_watch_cancel in etcd.h).
 *
 * A watch is one POST to /v3/watch whose reply is a stream of JSON objects; on_curl_write
 * (etcd.c) buffers it and the pump (etcd.c) calls the watch's ops (struct etcd_watch_ops):
 * parse when bytes arrived, done when the transfer ended. Messages are delivered one at a time, each inside
 * etcd_enter/etcd_leave (etcd_internal.h), so the callback may cancel or free anything. A watch
 * silent for e->idle_ms is treated as lost.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/etcd.h"
#include "control/etcd_codec.h"
#include "control/etcd_internal.h"
#include "core/cut.h"

/* ---- the stream -------------------------------------------------------------------------------- */

static void watch_end(struct etcd_watch *w, int status)
{
    struct etcd *e = w->r.e;
    etcd_watch_fn cb = w->cb;
    void *ctx = w->ctx;
    etcd_enter(e);
    etcd_req_kill(&w->r);
    cb(ctx, status, NULL);
    etcd_leave(e);
}

static void watch_arm_idle(struct etcd_watch *w)
{
    unsigned ms = w->r.e->idle_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(w->idle, &tv);
}

static void on_watch_idle(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct etcd_watch *w = arg;
    struct etcd *e = w->r.e;
    etcd_enter(e);
    if (e->cur == w->r.member)
        e->cur = (w->r.member + 1) % e->n;
    watch_end(w, CUT_EIO);
    etcd_leave(e);
}

/* Starts w's stream on the current member (behind an authentication when one is needed). */
static void watch_try(struct etcd_watch *w)
{
    struct etcd *e = w->r.e;
    if (e->auth != AUTH_OFF && e->auth != AUTH_OK) {
        w->r.state = REQ_QUEUED;
        if (e->auth == AUTH_NEED)
            etcd_auth_start(e);
        return;
    }
    w->r.state = REQ_RUNNING;
    w->r.member = e->cur;
    w->parsed = 0;
    w->http_status = 0;
    if (etcd_req_start_transfer(&w->r) < 0) {
        watch_end(w, CUT_ENOMEM);
        return;
    }
    watch_arm_idle(w);
}

/* Delivers the complete messages buffered in w. Returns false when w ended. */
static bool watch_parse(struct etcd_watch *w)
{
    struct etcd *e = w->r.e;
    w->has_data = false;
    if (w->http_status == 0)
        curl_easy_getinfo(w->r.easy, CURLINFO_RESPONSE_CODE, &w->http_status);
    if (w->http_status != 200)
        return true; /* an error body: judged when the transfer ends */
    for (;;) {
        struct buf *b = &w->r.resp;
        while (w->parsed < b->len && isspace((unsigned char)b->p[w->parsed]))
            w->parsed++;
        if (w->parsed >= b->len)
            return true;
        json_error_t jerr;
        json_t *m = json_loadb(b->p + w->parsed, b->len - w->parsed, JSON_DISABLE_EOF_CHECK,
                               &jerr);
        if (!m) {
            if (json_error_code(&jerr) == json_error_premature_end_of_input)
                return true; /* wait for the rest */
            watch_end(w, CUT_EPROTO);
            return false;
        }
        w->parsed += (size_t)jerr.position;
        json_t *result = json_object_get(m, "result");
        json_t *err = json_object_get(m, "error");
        if (err || !json_is_object(result)) {
            int code;
            const char *msg;
            etcd_error_fields(m, &code, &msg);
            if (etcd_is_bad_token(code, msg) && w->r.token_gen == e->token_gen &&
                e->auth == AUTH_OK)
                e->auth = AUTH_NEED;
            json_decref(m);
            watch_end(w, CUT_EPROTO);
            return false;
        }
        watch_arm_idle(w);
        bool canceled = json_is_true(json_object_get(result, "canceled"));
        etcd_enter(e);
        w->cb(w->ctx, 0, result);
        json_decref(m);
        bool gone = w->r.state == REQ_DEAD;
        etcd_leave(e);
        if (gone || e->dead)
            return false;
        if (canceled) {
            /* etcd cancelled it (compacted revision, permission) but keeps the stream open. */
            watch_end(w, CUT_EPROTO);
            return false;
        }
    }
}

static void watch_done(struct etcd_watch *w, CURLcode res)
{
    struct etcd *e = w->r.e;
    if (!watch_parse(w))
        return;
    long status = w->http_status;
    int st = CUT_EIO;
    if (w->r.overflow) {
        st = CUT_EPROTO;
    } else if (res == CURLE_OK && status != 200 && status != 503) {
        json_error_t jerr;
        json_t *reply = json_loadb(w->r.resp.p ? w->r.resp.p : "", w->r.resp.len,
                                   JSON_DISABLE_EOF_CHECK, &jerr);
        int code;
        const char *msg;
        etcd_error_fields(reply, &code, &msg);
        if (code != GRPC_UNAVAILABLE && !etcd_is_leader_trouble(msg))
            st = CUT_EPROTO;
        if (etcd_is_bad_token(code, msg) && w->r.token_gen == e->token_gen && e->auth == AUTH_OK)
            e->auth = AUTH_NEED;
        json_decref(reply);
    }
    if (st == CUT_EIO && e->cur == w->r.member)
        e->cur = (w->r.member + 1) % e->n;
    watch_end(w, st);
}


/* ---- the interface (watches) ------------------------------------------------------------------- */

static const struct etcd_watch_ops watch_ops = {watch_try, watch_end, watch_parse, watch_done};

struct etcd_watch *etcd_watch(struct etcd *e, const char *key, const char *range_end,
                              int64_t start_revision, etcd_watch_fn cb, void *ctx)
{
    if (e->dead)
        return NULL;
    struct etcd_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->r.e = e;
    w->r.is_watch = true;
    w->cb = cb;
    w->ctx = ctx;
    w->ops = &watch_ops;
    char *k = etcd_codec_b64(key, strlen(key));
    /* "" is etcd_codec_prefix_end's "\0": the one zero byte that means every key from key on. */
    char *re = range_end ? etcd_codec_b64(range_end, *range_end ? strlen(range_end) : 1) : NULL;
    json_t *cr = k ? json_pack("{s:s, s:I, s:b}", "key", k, "start_revision",
                               (json_int_t)start_revision, "progress_notify", 1)
                   : NULL;
    if (cr && range_end && (!re || json_object_set_new(cr, "range_end", json_string(re)) < 0)) {
        json_decref(cr);
        cr = NULL;
    }
    json_t *body = cr ? json_pack("{s:o}", "create_request", cr) : NULL;
    free(k);
    free(re);
    w->r.path = strdup("/v3/watch");
    w->r.body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    w->idle = evtimer_new(e->base, on_watch_idle, w);
    if (!w->r.path || !w->r.body || !w->idle) {
        free(w->r.path);
        free(w->r.body);
        if (w->idle)
            event_free(w->idle);
        free(w);
        return NULL;
    }
    w->r.body_len = strlen(w->r.body);
    w->r.state = REQ_QUEUED;
    etcd_list_add(&e->reqs, &w->r);
    /* Starting cannot call cb now (an out-of-memory start is reported as NULL instead). */
    etcd_enter(e);
    bool ok = true;
    if (e->auth != AUTH_OFF && e->auth != AUTH_OK) {
        if (e->auth == AUTH_NEED)
            etcd_auth_start(e);
    } else {
        w->r.state = REQ_RUNNING;
        w->r.member = e->cur;
        ok = etcd_req_start_transfer(&w->r) == 0;
        if (ok)
            watch_arm_idle(w);
    }
    if (!ok) {
        etcd_req_kill(&w->r);
        w = NULL;
    }
    etcd_leave(e);
    return w;
}

void etcd_watch_cancel(struct etcd_watch *w)
{
    if (w && w->r.state != REQ_DEAD)
        etcd_req_kill(&w->r);
}

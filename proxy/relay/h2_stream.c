/* h2_stream.c - one HTTP/2 stream of a client connection (h2.c): its request head handed to
 * stream_start(), its request body's deadline, and the downstream ops through which stream.c
 * delivers the response (HEADERS, DATA with nghttp2 flow control, trailers, errors).
 *
 * The ops only queue frames (nghttp2_submit_*, resume_data) and schedule the connection's run
 * event (h2c_schedule): nghttp2_session_send() never runs from here (h2.c's re-entrancy rule).
 * Response flow control: each stream queues at most limits.buffer_bytes in h->out (stream.c
 * pauses the upstream past it via ds_pending; data_read resumes it once h->out drained to half).
 * Request flow control: DATA is consumed into the window only as the upstream drains it
 * (ds_resume_body). Worker thread only.
 */
#include "proxy/relay/h2_internal.h"

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/cut.h"
#include "core/text.h"
#include "proxy/relay/h2_data.h"
#include "proxy/relay/stream.h"
#include "proxy/relay/worker.h"

struct h2s *h2s_new(struct h2c *c, int32_t id)
{
    struct h2s *h = calloc(1, sizeof *h);
    if (!h || !(h->out = evbuffer_new())) {
        free(h);
        return NULL;
    }
    h->c = c;
    h->id = id;
    fields_head_init(&h->head, c->max_header_bytes, c->max_headers);
    h->next = c->streams;
    if (c->streams)
        c->streams->prev = h;
    c->streams = h;
    c->nstreams++;
    h->last_rx_ns = h->last_tx_ns = clock_mono_ns();
    return h;
}

void h2s_free(struct h2c *c, struct h2s *h)
{
    if (h->s) {
        stream_abort(h->s);
        stream_free(h->s);
        h->s = NULL;
    }
    if (h->prev)
        h->prev->next = h->next;
    else
        c->streams = h->next;
    if (h->next)
        h->next->prev = h->prev;
    c->nstreams--;
    if (h->out)
        evbuffer_free(h->out);
    free(h->trailers);
    free(h->trailer_mem);
    fields_head_dispose(&h->head);
    free(h);
}

void h2s_exchange_over(struct h2s *h)
{
    struct h2c *c = h->c;
    struct stream *s = h->s;
    h->s = NULL;
    if (s)
        stream_free(s);
    if (h->unconsumed) {
        /* Request bytes still buffered are dropped: give the window back. */
        nghttp2_session_consume(c->ng, h->id, (size_t)h->unconsumed);
        h->unconsumed = 0;
    }
}

/* ---- response side -------------------------------------------------------------------------- */

#define H2S_COPY_MAX 256 /* DATA payloads up to this size are copied (cheaper than moving) */

/* Response body from h->out, as DATA frames written without copies: data_read only says how much
 * the next frame carries (NGHTTP2_DATA_FLAG_NO_COPY), h2s_send_data moves it. nghttp2 calls
 * h2s_send_data right after data_read, inside the same nghttp2_session_send (session_prep_frame
 * packs the frame header, then the NGHTTP2_OB_SEND_NO_COPY state sends it), with nothing of ours
 * in between: so h->out still holds the n bytes. h2s_send_data never answers
 * NGHTTP2_ERR_WOULDBLOCK: the DATA item would stay half sent inside nghttp2 across calls, and
 * h (its data source) could be freed meanwhile. Payloads of H2S_COPY_MAX bytes or less are
 * still copied into nghttp2's frame buffer (measured: moving a buffer chain costs more then). */
static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)buf;
    struct h2s *h = src->ptr;
    struct h2c *c = ud;
    size_t avail = evbuffer_get_length(h->out);
    if (avail == 0 && !h->resp_eof) {
        h->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < len ? avail : len;
    if (n > H2S_COPY_MAX) {
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    } else if (n) {
        evbuffer_remove(h->out, buf, n);
        h->last_tx_ns = clock_mono_ns();
    }
    if (n == avail && h->resp_eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (h->ntrailers &&
            nghttp2_submit_trailer(ng, id, h->trailers, h->ntrailers) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    if (h->s && n && avail - n <= c->stream_buf / 2) {
        h->want_drain = 1;
        c->want_drain = 1;
    }
    return (ssize_t)n;
}

int h2s_send_data(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *framehd, size_t len,
                  nghttp2_data_source *src, void *ud)
{
    (void)ng;
    struct h2c *c = ud;
    struct h2s *h = src->ptr;
    CUT_ASSERT(evbuffer_get_length(h->out) >= len); /* as data_read just saw */
    if (h2_data_write(c->io.out, framehd, f->data.padlen, h->out, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (len)
        h->last_tx_ns = clock_mono_ns();
    return io_pending(&c->io) >= c->out_cap ? NGHTTP2_ERR_PAUSE : 0;
}

/* Response fields as HTTP/2 wants them: lower-case names, no connection-specific fields.
 * Names are lowered into the worker's scratch buffer (nghttp2 copies at submit). Returns the
 * number of entries written after the first (reserved for :status), or -1. */
static int make_nv(struct h2c *c, nghttp2_nv *nva, size_t max, const struct http_field *fields,
                   unsigned n, size_t *scratch_used)
{
    struct worker *w = c->w;
    size_t used = *scratch_used;
    int k = 0;
    for (unsigned i = 0; i < n && (size_t)k < max; i++) {
        const struct http_field *f = &fields[i];
        if ((f->flags & H1_HF_HOP) || fields_conn_specific(f->name) ||
            cut_slice_ieq(f->name, "te") || cut_slice_ieq(f->name, "http2-settings") ||
            f->name.n == 0)
            continue;
        if (w->scratch_cap - used < f->name.n)
            return -1;
        char *lname = w->scratch + used;
        for (size_t j = 0; j < f->name.n; j++) {
            char ch = f->name.p[j];
            lname[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        }
        used += f->name.n;
        nva[k].name = (uint8_t *)lname;
        nva[k].namelen = f->name.n;
        nva[k].value = (uint8_t *)f->value.p;
        nva[k].valuelen = f->value.n;
        nva[k].flags = NGHTTP2_NV_FLAG_NONE;
        k++;
    }
    *scratch_used = used;
    return k;
}

#define NV_LIT(n, v)                                                                               \
    ((nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE})

void h2s_submit_error(struct h2s *h, int status, const char *code, const char *msg)
{
    struct h2c *c = h->c;
    if (h->resp_submitted) {
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_INTERNAL_ERROR);
        h2c_schedule(c);
        return;
    }
    char st[8], len[24];
    snprintf(st, sizeof st, "%03d", status);
    size_t before = evbuffer_get_length(h->out);
    evbuffer_drain(h->out, before);
    int body = evbuffer_add_printf(h->out, "cutover: %s\n", msg);
    snprintf(len, sizeof len, "%d", body > 0 ? body : 0);
    int head = h->s && h->s->head_method_head; /* the head only (RFC 9110 9.3.2) */
    if (head)
        evbuffer_drain(h->out, evbuffer_get_length(h->out));
    nghttp2_nv nva[] = {
        NV_LIT(":status", st),
        NV_LIT("content-type", "text/plain"),
        NV_LIT("content-length", len),
        NV_LIT("x-cutover-error", code ? code : ""),
    };
    h->resp_eof = 1;
    h->resp_submitted = 1;
    if (h->s && !head)
        h->s->bytes_out += (uint64_t)(body > 0 ? body : 0);
    nghttp2_data_provider dp = {.source.ptr = h, .read_callback = data_read};
    size_t nnv = code ? CUT_ARRAY_LEN(nva) : CUT_ARRAY_LEN(nva) - 1;
    if (nghttp2_submit_response(c->ng, h->id, nva, nnv, head ? NULL : &dp) != 0)
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_INTERNAL_ERROR);
    h2c_schedule(c);
}

static void ds_head(void *ctx, struct stream *s, const struct http_resp *resp)
{
    struct h2s *h = ctx;
    struct h2c *c = h->c;
    if (c->closing || h->resp_submitted)
        return;
    size_t max = resp->nfields + 1;
    nghttp2_nv small[32]; /* the usual response head: no allocation */
    nghttp2_nv *nva = max <= CUT_ARRAY_LEN(small) ? small : malloc(max * sizeof *nva);
    if (!nva) {
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_INTERNAL_ERROR);
        h2c_schedule(c);
        return;
    }
    char st[8];
    text_status3(st, (unsigned)resp->status);
    nva[0] = NV_LIT(":status", st);
    size_t used = 0;
    int k = make_nv(c, nva + 1, max - 1, resp->fields, resp->nfields, &used);
    int rv;
    if (k < 0) {
        rv = -1;
    } else if (resp->status < 200) {
        rv = nghttp2_submit_headers(c->ng, NGHTTP2_FLAG_NONE, h->id, NULL, nva, (size_t)k + 1,
                                    NULL); /* interim: 100 Continue, 103 Early Hints */
    } else {
        h->resp_submitted = 1;
        h->no_body = s->head_method_head || resp->status == 204 || resp->status == 304 ||
                     resp->framing == HTTP_BODY_NONE ||
                     (resp->framing == HTTP_BODY_LENGTH && resp->content_length == 0);
        nghttp2_data_provider dp = {.source.ptr = h, .read_callback = data_read};
        rv = nghttp2_submit_response(c->ng, h->id, nva, (size_t)k + 1,
                                     h->no_body ? NULL : &dp);
    }
    if (nva != small)
        free(nva);
    if (rv != 0)
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_INTERNAL_ERROR);
    h2c_schedule(c);
}

static void ds_body(void *ctx, struct stream *s, struct evbuffer *data)
{
    struct h2s *h = ctx;
    struct h2c *c = h->c;
    (void)s;
    size_t n = evbuffer_get_length(data);
    if (n == 0)
        return;
    if (c->closing || h->no_body) {
        evbuffer_drain(data, n);
        return;
    }
    if (evbuffer_get_length(h->out) == 0)
        h->last_tx_ns = clock_mono_ns(); /* the stall clock starts when data waits */
    evbuffer_add_buffer(h->out, data);
    if (h->deferred) {
        h->deferred = 0;
        nghttp2_session_resume_data(c->ng, h->id);
    }
    h2c_schedule(c);
}

static void ds_end(void *ctx, struct stream *s, const struct http_field *trailers, unsigned n)
{
    struct h2s *h = ctx;
    struct h2c *c = h->c;
    (void)s;
    h->resp_eof = 1;
    if (n && !h->no_body && !c->closing) {
        /* Trailers go out from the data callback once the body is sent: keep a copy, which
         * nghttp2 borrows (NGHTTP2_NV_FLAG_NO_COPY_*) until it packs the trailer HEADERS. The
         * copy lives as long as h, and h as long as the stream is open in nghttp2 (h2s_free
         * runs from on_stream_close, or from conn_free before nghttp2_session_del). nghttp2
         * 1.52 packs a queued HEADERS only for a stream still open (session_prep_frame: the
         * stream predicates fail for a closed one before the fields are estimated or packed,
         * and the item is dropped), and nghttp2_session_del frees queued items unread. An
         * RST_STREAM we submit is queued behind the trailers, so they are packed first. */
        size_t bytes = 0;
        for (unsigned i = 0; i < n; i++)
            bytes += trailers[i].name.n + trailers[i].value.n;
        h->trailers = calloc(n, sizeof *h->trailers);
        h->trailer_mem = malloc(bytes ? bytes : 1);
        if (h->trailers && h->trailer_mem) {
            size_t off = 0;
            for (unsigned i = 0; i < n; i++) {
                const struct http_field *f = &trailers[i];
                if ((f->flags & H1_HF_HOP) || fields_conn_specific(f->name) || f->name.n == 0)
                    continue;
                char *p = h->trailer_mem + off;
                for (size_t j = 0; j < f->name.n; j++) {
                    char ch = f->name.p[j];
                    p[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
                }
                memcpy(p + f->name.n, f->value.p, f->value.n);
                off += f->name.n + f->value.n;
                nghttp2_nv *nv = &h->trailers[h->ntrailers++];
                nv->name = (uint8_t *)p;
                nv->namelen = f->name.n;
                nv->value = (uint8_t *)p + f->name.n;
                nv->valuelen = f->value.n;
                nv->flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
            }
        } else {
            h->ntrailers = 0;
        }
    }
    if (h->deferred) {
        h->deferred = 0;
        nghttp2_session_resume_data(c->ng, h->id);
    }
    h2s_exchange_over(h);
    h2c_schedule(c);
}

static void ds_fail(void *ctx, struct stream *s, int status, const char *code, const char *msg)
{
    struct h2s *h = ctx;
    struct h2c *c = h->c;
    if (s->resp_head_sent || h->resp_submitted) {
        s->aborted = 1;
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_INTERNAL_ERROR);
    } else if (!c->closing) {
        h2s_submit_error(h, status, code, msg);
    }
    h2s_exchange_over(h);
    h2c_schedule(c);
}

static void ds_resume_body(void *ctx, struct stream *s)
{
    struct h2s *h = ctx;
    struct h2c *c = h->c;
    if (!h->s || h->unconsumed == 0)
        return;
    size_t buffered = stream_request_buffered(s);
    if (h->unconsumed > buffered) {
        nghttp2_session_consume(c->ng, h->id, (size_t)(h->unconsumed - buffered));
        h->unconsumed = buffered;
        h2c_schedule(c);
    }
}

static size_t ds_pending(void *ctx, struct stream *s)
{
    struct h2s *h = ctx;
    (void)s;
    return evbuffer_get_length(h->out);
}

static void ds_tunnel(void *ctx, struct stream *s)
{
    /* No upgrade is ever requested over HTTP/2; an unsolicited 101 cannot be relayed. */
    struct h2s *h = ctx;
    struct h2c *c = h->c;
    s->aborted = 1;
    nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_INTERNAL_ERROR);
    h2c_schedule(c);
    /* s is aborted and freed once the HTTP/2 stream closes (stream.c still uses it now). */
}

static const struct downstream_ops h2s_ops = {
    .head = ds_head,
    .body = ds_body,
    .end = ds_end,
    .fail = ds_fail,
    .resume_body = ds_resume_body,
    .pending = ds_pending,
    .tunnel = ds_tunnel,
};

static const char *status_code_name(int status)
{
    switch (status) {
    case 431: return "headers_too_large";
    case 501: return "not_implemented";
    default: return "bad_request";
    }
}

void h2s_start_request(struct h2s *h, int end_stream)
{
    struct h2c *c = h->c;
    struct http_req req;
    if (end_stream)
        h->req_end = 1;
    int st = fields_head_request(&h->head, end_stream, &req);
    if (st) {
        h2s_submit_error(h, st, status_code_name(st),
                         st == 501   ? "CONNECT is not supported"
                         : st == 431 ? "request head too large"
                                     : "malformed request");
        fields_head_dispose(&h->head);
        return;
    }
    struct stream *s = stream_new(c->w, &h2s_ops, h, (struct sockaddr *)&c->peer, c->peerlen);
    if (s)
        stream_set_tls(s, &c->io); /* X-Forwarded-Proto https and the client certificate */
    if (!s) {
        h2s_submit_error(h, 503, "overloaded", "out of memory");
        fields_head_dispose(&h->head);
        return;
    }
    h->s = s;
    s->bytes_in = h->head.list_size;
    h->body_start_ns = clock_mono_ns();
    stream_start(s, &req); /* may answer at once (no route, ...): h->s is then NULL */
    fields_head_dispose(&h->head);
}
/* Whether the request body of h is past its deadline (timeouts.request_body_ms, extended by
 * 1 s per limits.min_body_rate bytes: h1.c's rule): a DATA trickle. While the upstream holds the
 * body back (half the stream window or more not yet consumed) the client is not to blame: its
 * clock starts again. */
int h2s_body_too_slow(struct h2s *h, uint64_t now)
{
    const struct h2c *c = h->c;
    if (h->req_end || h->resp_submitted || !h->s || h->s->resp_head_sent)
        return 0;
    size_t window = c->stream_buf < H2C_STREAM_WINDOW ? c->stream_buf : H2C_STREAM_WINDOW;
    if (h->unconsumed >= window / 2) {
        h->body_start_ns = now;
        h->body_bytes = 0;
        return 0;
    }
    uint64_t allowed = http_body_allowance_ms(c->request_body_ms, c->min_body_rate,
                                              h->body_bytes);
    return allowed != UINT64_MAX && (now - h->body_start_ns) / 1000000u > allowed;
}

/* 408 on the stream (then RST_STREAM NO_ERROR, since the client has not ended it: on_frame_send),
 * and the upstream request is abandoned. The connection and its other streams go on. */
void h2s_body_timeout(struct h2s *h)
{
    struct stream *s = h->s;
    stream_abort(s);
    s->status = 408;
    s->error = "request_timeout";
    worker_count(&s->w->body_timeouts);
    h2s_submit_error(h, 408, "request_timeout", "the request body was too slow");
    h2s_exchange_over(h);
}

/* certs.c - the TLS material in use and the watch on its files (see certs.h). */
#include "control/certs.h"

#include <event2/event.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cut.h"
#include "proxy/log/geoip.h"
#include "proxy/log/log.h"
#include "proxy/net/tls.h"

#define CERTS_POLL_MS 5000  /* polling fallback for the files */
#define CERTS_SETTLE_MS 200 /* after a directory event, wait for the writer to finish */

struct certs_file;

struct certs {
    struct event_base *base;
    certs_rotated_fn rotated;
    certs_event_fn event;
    void *ctx;
    const struct cfg *cfg; /* borrowed (certs_watch) */
    struct certs_set set;  /* in use */
    struct certs_file *files;
    size_t nfiles;
    int inotify;
    struct event *ev_notify, *ev_check, *ev_poll;
    int stopping;
};

struct certs_file {
    char *path;
    struct stat st; /* what stat() (through symlinks) said when the contexts were built */
    int missing;
    int changed;    /* differed at the last certs_files_stat() */
};

static int same_stat(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void tls_files_dispose(struct certs *w)
{
    for (size_t i = 0; i < w->nfiles; i++)
        free(w->files[i].path);
    free(w->files);
    w->files = NULL;
    w->nfiles = 0;
}

static void tls_files_add(struct certs *w, const char *path, size_t *cap)
{
    if (!path)
        return;
    for (size_t i = 0; i < w->nfiles; i++)
        if (strcmp(w->files[i].path, path) == 0)
            return;
    if (w->nfiles == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct certs_file *v = realloc(w->files, ncap * sizeof *v);
        if (!v)
            return;
        w->files = v;
        *cap = ncap;
    }
    struct certs_file *f = &w->files[w->nfiles];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (f->path)
        w->nfiles++;
}

/* Records what every file looks like now. Returns 1 when something differs from before. */
int certs_files_stat(struct certs *w)
{
    int changed = 0;
    for (size_t i = 0; i < w->nfiles; i++) {
        struct certs_file *f = &w->files[i];
        struct stat st;
        int missing = stat(f->path, &st) < 0;
        if (missing)
            memset(&st, 0, sizeof st);
        f->changed = missing != f->missing || !same_stat(&st, &f->st);
        changed |= f->changed;
        f->st = st;
        f->missing = missing;
    }
    return changed;
}


/* Drops every context of set (NULL entries are fine) and empties it. */
void certs_set_release(struct certs_set *set)
{
    for (size_t i = 0; i < CFG_MAX_LISTENERS; i++)
        tls_ctx_unref(set->listeners[i]);
    tls_ctx_unref(set->admin);
    for (size_t i = 0; i < set->npools; i++)
        tls_client_unref(set->pools[i]);
    free(set->pools);
    if (set->siem)
        tls_client_unref(set->siem);
    geoip_unref(set->geo);
    memset(set, 0, sizeof *set);
}

/* A rotation's view of the material in use: prev, the files' change flags, what was kept. */
struct tls_renewal {
    struct certs *w;
    const struct certs_set *prev;
    struct cfg_errors *kept; /* one {path, reason} per piece kept from prev */
    unsigned applied;        /* pieces loaded from changed files */
};

static int tls_file_changed(void *arg, const char *path)
{
    struct certs *w = arg;
    for (size_t i = 0; i < w->nfiles; i++)
        if (strcmp(w->files[i].path, path) == 0)
            return w->files[i].changed;
    return 1;
}

/* Each line of kept (a tls_*_renew report) as a problem at path. */
static void kept_lines(struct cfg_errors *errs, const char *path, const char *kept)
{
    for (const char *p = kept; *p;) {
        size_t n = strcspn(p, "\n");
        cfg_errors_add(errs, path, 0, 0, "%.*s", (int)n, p);
        p += n + (p[n] == '\n');
    }
}

/* A piece that failed as a whole in a rotation, kept from prev when prev has it. Returns 1 when
 * it was kept (the failure noted in rn->kept), 0 when there is nothing to keep. */
static int keep_whole(struct tls_renewal *rn, const char *path, const char *why, int have)
{
    if (!rn || !have)
        return 0;
    cfg_errors_add(rn->kept, path, 0, 0, "%s; the previous material stays in use", why);
    return 1;
}

/* Builds the contexts of every TLS listener of cfg and of its admin API into out. Without rn
 * (start-up, reload, --check) every piece must load: on a failure every problem is in errs
 * (path listeners[i].tls or admin.tls) and nothing is left in out. With rn (a rotation of the
 * files of the configuration in use), each piece that does not load is taken from rn->prev and
 * named in rn->kept instead (tls_ctx_renew, tls_client_renew): a bad piece never blocks a good
 * one. */
static int build(const struct cfg *cfg, struct tls_renewal *rn, struct certs_set *out,
                 struct cfg_errors *errs)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    const struct certs_set *prev = rn ? rn->prev : NULL;
    tls_changed_fn changed = rn ? tls_file_changed : NULL;
    void *cctx = rn ? rn->w : NULL;
    char err[512], path[64], kept[2048];
    unsigned applied = 0;
    for (size_t i = 0; i < cfg->nlisteners && i < CFG_MAX_LISTENERS; i++) {
        if (!cfg->listeners[i].tls)
            continue;
        snprintf(path, sizeof path, "listeners[%zu].tls", i);
        int r = tls_ctx_renew(cfg->listeners[i].tls, prev ? prev->listeners[i] : NULL, changed,
                              cctx, &out->listeners[i], kept, sizeof kept, &applied, err,
                              sizeof err);
        if (rn) {
            rn->applied += applied;
            kept_lines(rn->kept, path, kept);
        }
        if (r < 0 && keep_whole(rn, path, err, prev && prev->listeners[i])) {
            tls_ctx_ref(prev->listeners[i]);
            out->listeners[i] = prev->listeners[i];
        } else if (r < 0) {
            cfg_errors_add(errs, path, 0, 0, "%s", err);
            rc = rc ? rc : r;
        }
    }
    if (cfg->admin.tls) {
        int r = tls_ctx_renew(cfg->admin.tls, prev ? prev->admin : NULL, changed, cctx,
                              &out->admin, kept, sizeof kept, &applied, err, sizeof err);
        if (rn) {
            rn->applied += applied;
            kept_lines(rn->kept, "admin.tls", kept);
        }
        if (r < 0 && keep_whole(rn, "admin.tls", err, prev && prev->admin)) {
            tls_ctx_ref(prev->admin);
            out->admin = prev->admin;
        } else if (r < 0) {
            cfg_errors_add(errs, "admin.tls", 0, 0, "%s", err);
            rc = rc ? rc : r;
        }
    }
    out->npools = cfg->nroutes * CFG_MAX_POOLS;
    out->pools = calloc(out->npools ? out->npools : 1, sizeof *out->pools);
    if (!out->pools) {
        cfg_errors_add(errs, "", 0, 0, "out of memory");
        rc = CUT_ENOMEM;
        out->npools = 0;
    }
    for (size_t r = 0; out->pools && r < cfg->nroutes; r++) {
        for (size_t p = 0; p < cfg->routes[r].npools; p++) {
            const struct cfg_pool *cp = &cfg->routes[r].pools[p];
            if (!cp->tls)
                continue;
            size_t k = r * CFG_MAX_POOLS + p;
            struct tls_client *was = prev && k < prev->npools ? prev->pools[k] : NULL;
            char perr_[1024], ppath[128];
            snprintf(ppath, sizeof ppath, "routes[%zu].pools.%s.tls", r, cp->name);
            int e = tls_client_renew(cp->tls, (int)cp->protocol, was, changed, cctx,
                                     &out->pools[k], kept, sizeof kept, &applied, perr_,
                                     sizeof perr_);
            if (rn) {
                rn->applied += applied;
                kept_lines(rn->kept, ppath, kept);
            }
            if (e < 0 && keep_whole(rn, ppath, perr_, was != NULL)) {
                tls_client_ref(was);
                out->pools[k] = was;
            } else if (e < 0) {
                cfg_errors_add(errs, ppath, 0, 0, "%s", perr_);
                rc = rc ? rc : e;
            }
        }
    }
    const char *db = cfg->access_log.country_database;
    if (db) {
        char gerr[1024];
        int e = geoip_open(db, &out->geo, gerr, sizeof gerr);
        if (e == 0 && rn)
            rn->applied += (unsigned)tls_file_changed(rn->w, db);
        if (e < 0 && keep_whole(rn, "access_log.country_database", gerr, prev && prev->geo)) {
            geoip_ref(prev->geo);
            out->geo = prev->geo;
        } else if (e < 0) {
            cfg_errors_add(errs, "access_log.country_database", 0, 0, "%s", gerr);
            rc = rc ? rc : e;
        }
    }
    if (cfg->siem.address && cfg->siem.tls) {
        char serr[1024];
        int e = tls_client_renew(cfg->siem.tls, TLS_CLIENT_NO_ALPN, prev ? prev->siem : NULL,
                                 changed, cctx, &out->siem, kept, sizeof kept, &applied, serr,
                                 sizeof serr);
        if (rn) {
            rn->applied += applied;
            kept_lines(rn->kept, "siem.tls", kept);
        }
        if (e < 0 && keep_whole(rn, "siem.tls", serr, prev && prev->siem)) {
            tls_client_ref(prev->siem);
            out->siem = prev->siem;
        } else if (e < 0) {
            cfg_errors_add(errs, "siem.tls", 0, 0, "%s", serr);
            rc = rc ? rc : e;
        }
    }
    if (rc < 0)
        certs_set_release(out);
    return rc;
}

int certs_build(const struct cfg *cfg, struct certs_set *out, struct cfg_errors *errs)
{
    return build(cfg, NULL, out, errs);
}

int certs_check(const struct cfg *cfg, struct cfg_errors *errs)
{
    struct certs_set set;
    int rc = build(cfg, NULL, &set, errs);
    certs_set_release(&set);
    return rc;
}

void certs_install(struct certs *w, struct certs_set *fresh)
{
    struct certs_set t = w->set;
    w->set = *fresh;
    *fresh = t;
}

/* {"listener":name,"certificates":[...]} for every TLS listener, and the admin API's
 * {"address","certificates"}, into extra. */
void certs_event(struct certs *w, const char *name)
{
    const struct cfg *cfg = w->cfg;
    size_t cap = 16384, o = 0;
    char *extra = malloc(cap);
    if (!extra)
        return;
    o += (size_t)snprintf(extra + o, cap - o, ",\"listeners\":[");
    int first = 1;
    for (size_t i = 0; i < cfg->nlisteners && i < CFG_MAX_LISTENERS && o + 256 < cap; i++) {
        if (!w->set.listeners[i])
            continue;
        o += (size_t)snprintf(extra + o, cap - o, "%s{\"listener\":\"%s\",\"certificates\":",
                              first ? "" : ",", cfg->listeners[i].name);
        o += tls_ctx_describe(w->set.listeners[i], extra + o, cap - o - 4);
        o += (size_t)snprintf(extra + o, cap - o, "}");
        first = 0;
    }
    o += (size_t)snprintf(extra + o, cap - o, "]");
    if (w->set.admin && o + 256 < cap) {
        o += (size_t)snprintf(extra + o, cap - o, ",\"admin\":{\"address\":\"%s\",\"certificates\":",
                              cfg->admin.address);
        o += tls_ctx_describe(w->set.admin, extra + o, cap - o - 4);
        snprintf(extra + o, cap - o, "}");
    }
    w->event(w->ctx, name, extra);
    free(extra);
}

static void tls_refused_event(struct certs *w, const struct cfg_errors *errs)
{
    char extra[4096];
    size_t o = (size_t)snprintf(extra, sizeof extra, ",\"errors\":[");
    for (size_t i = 0; i < errs->n && o < sizeof extra - 1200; i++) {
        o += (size_t)snprintf(extra + o, sizeof extra - o, "%s{\"path\":\"", i ? "," : "");
        o += log_escape(extra + o, 256, errs->v[i].path, strlen(errs->v[i].path));
        o += (size_t)snprintf(extra + o, sizeof extra - o, "\",\"reason\":\"");
        o += log_escape(extra + o, 900, errs->v[i].message, strlen(errs->v[i].message));
        o += (size_t)snprintf(extra + o, sizeof extra - o, "\"}");
    }
    snprintf(extra + o, sizeof extra - o, "]");
    w->event(w->ctx, "tls_reload_refused", extra);
}

static void on_tls_notify(evutil_socket_t fd, short what, void *arg);
static void on_tls_check(evutil_socket_t fd, short what, void *arg);

/* (Re)starts watching the files of the current configuration: one inotify watch per directory
 * (a CSI "..data" swap is a rename inside it), and the polling timer. */
void certs_watch(struct certs *w, const struct cfg *cfg_in)
{
    w->cfg = cfg_in;
    const struct cfg *cfg = cfg_in;
    size_t cap = w->nfiles;
    tls_files_dispose(w);
    cap = 0;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_tls *t = cfg->listeners[i].tls;
        if (!t)
            continue;
        for (size_t k = 0; k < t->ncerts; k++) {
            tls_files_add(w, t->certs[k].cert, &cap);
            tls_files_add(w, t->certs[k].key, &cap);
            tls_files_add(w, t->certs[k].pem, &cap);
        }
        tls_files_add(w, t->client_ca, &cap);
        tls_files_add(w, t->crl, &cap);
    }
    for (size_t r = 0; r < cfg->nroutes; r++) {
        for (size_t p = 0; p < cfg->routes[r].npools; p++) {
            const struct cfg_upstream_tls *u = cfg->routes[r].pools[p].tls;
            if (!u)
                continue;
            tls_files_add(w, u->ca, &cap);
            tls_files_add(w, u->crl, &cap);
            if (u->client_cert) {
                tls_files_add(w, u->client_cert->cert, &cap);
                tls_files_add(w, u->client_cert->key, &cap);
                tls_files_add(w, u->client_cert->pem, &cap);
            }
        }
    }
    const struct cfg_tls *at = cfg->admin.tls;
    for (size_t k = 0; at && k < at->ncerts; k++) {
        tls_files_add(w, at->certs[k].cert, &cap);
        tls_files_add(w, at->certs[k].key, &cap);
        tls_files_add(w, at->certs[k].pem, &cap);
    }
    if (at) {
        tls_files_add(w, at->client_ca, &cap);
        tls_files_add(w, at->crl, &cap);
    }
    tls_files_add(w, cfg->access_log.country_database, &cap);
    const struct cfg_upstream_tls *st = cfg->siem.address ? cfg->siem.tls : NULL;
    if (st) {
        tls_files_add(w, st->ca, &cap);
        tls_files_add(w, st->crl, &cap);
        if (st->client_cert) {
            tls_files_add(w, st->client_cert->cert, &cap);
            tls_files_add(w, st->client_cert->key, &cap);
            tls_files_add(w, st->client_cert->pem, &cap);
        }
    }
    if (w->ev_notify) {
        event_free(w->ev_notify);
        w->ev_notify = NULL;
    }
    if (w->inotify >= 0)
        close(w->inotify);
    w->inotify = -1;
    event_del(w->ev_poll);
    if (w->nfiles == 0)
        return;
    w->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    for (size_t i = 0; w->inotify >= 0 && i < w->nfiles; i++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s", w->files[i].path);
        inotify_add_watch(w->inotify, dirname(dir),
                          IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_DELETE |
                              IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
    }
    if (w->inotify >= 0) {
        w->ev_notify = event_new(w->base, w->inotify, EV_READ | EV_PERSIST, on_tls_notify, w);
        if (w->ev_notify)
            event_add(w->ev_notify, NULL);
    }
    struct timeval tv = {CERTS_POLL_MS / 1000, (CERTS_POLL_MS % 1000) * 1000};
    event_add(w->ev_poll, &tv);
}

/* Files of the material in use changed: rebuild piece by piece (build with a renewal). The
 * pieces that do not load keep the previous material and are named in tls_reload_refused; when
 * anything new loaded, it is published (tls_reloaded). */
static void tls_check(struct certs *w)
{
    if (w->stopping || !certs_files_stat(w))
        return;
    struct certs_set fresh;
    struct cfg_errors errs = {0}, kept = {0};
    struct tls_renewal rn = {w, &w->set, &kept, 0};
    if (build(w->cfg, &rn, &fresh, &errs) < 0) {
        for (size_t i = 0; i < kept.n; i++)
            cfg_errors_add(&errs, kept.v[i].path, 0, 0, "%s", kept.v[i].message);
        tls_refused_event(w, &errs); /* the old material keeps serving */
        cfg_errors_dispose(&errs);
        cfg_errors_dispose(&kept);
        return;
    }
    if (kept.n)
        tls_refused_event(w, &kept);
    cfg_errors_dispose(&kept);
    if (rn.applied == 0) { /* nothing new loaded: the material in use stays as it is */
        certs_set_release(&fresh);
        return;
    }
    certs_install(w, &fresh); /* fresh now holds the old material */
    if (w->rotated(w->ctx) < 0) {
        certs_install(w, &fresh);
        certs_set_release(&fresh);
        w->event(w->ctx, "tls_reload_refused", ",\"errors\":[{\"path\":\"\",\"reason\":\"out of memory\"}]");
        return;
    }
    certs_set_release(&fresh);
    certs_event(w, "tls_reloaded");
}

static void on_tls_notify(evutil_socket_t fd, short what, void *arg)
{
    struct certs *w = arg;
    (void)what;
    char buf[8192];
    while (read(fd, buf, sizeof buf) > 0)
        ; /* which file does not matter: every file is compared */
    struct timeval tv = {0, CERTS_SETTLE_MS * 1000};
    event_add(w->ev_check, &tv); /* re-adding restarts it: the last event wins */
}

static void on_tls_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tls_check(arg);
}

static void on_tls_poll(evutil_socket_t fd, short what, void *arg)
{
    struct certs *w = arg;
    (void)fd;
    (void)what;
    tls_check(w);
    struct timeval tv = {CERTS_POLL_MS / 1000, (CERTS_POLL_MS % 1000) * 1000};
    if (!w->stopping)
        event_add(w->ev_poll, &tv);
}


struct certs *certs_new(struct event_base *base, certs_rotated_fn rotated, certs_event_fn event,
                        void *ctx)
{
    struct certs *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->base = base;
    w->rotated = rotated;
    w->event = event;
    w->ctx = ctx;
    w->inotify = -1;
    w->ev_check = evtimer_new(base, on_tls_check, w);
    w->ev_poll = evtimer_new(base, on_tls_poll, w);
    if (!w->ev_check || !w->ev_poll) {
        certs_free(w);
        return NULL;
    }
    return w;
}

void certs_free(struct certs *w)
{
    if (!w)
        return;
    struct event *evs[] = {w->ev_notify, w->ev_check, w->ev_poll};
    for (size_t i = 0; i < CUT_ARRAY_LEN(evs); i++)
        if (evs[i])
            event_free(evs[i]);
    if (w->inotify >= 0)
        close(w->inotify);
    certs_set_release(&w->set);
    tls_files_dispose(w);
    free(w);
}

const struct certs_set *certs_current(const struct certs *w)
{
    return &w->set;
}

size_t certs_nfiles(const struct certs *w)
{
    return w->nfiles;
}

void certs_stop(struct certs *w)
{
    w->stopping = 1;
    event_del(w->ev_check);
    event_del(w->ev_poll);
}

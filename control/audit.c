/* audit.c - the audit trail (see audit.h and docs/control-protocol.md, "Guarantees").
 *
 * A record is one line of compact JSON, keys in this order:
 *   type ("audit"), time, cluster, region, actor {uid, user[, address]}, role, op, args, result ("ok" |
 *   "refused"), error ({code, message} or null), generation_before, generation_after,
 *   weights_before, weights_after, reason (string or null).
 * It is built with jansson, so strings are escaped properly (quotes, backslashes, control
 * characters); non-ASCII text is kept as UTF-8, and bytes that are not valid UTF-8 become U+FFFD
 * so the line always stays valid JSON. A JSON fragment (args, weights_*) that does not parse is
 * written as null; the rest of the record is unaffected.
 *
 * Lines and newlines: the file gets the line plus '\n'. The ring, audit_recent() and the out
 * callback see the line WITHOUT its '\n' (NUL-terminated, len excludes the NUL), so the out
 * callback can hand it to log_line(), which appends its own newline.
 *
 * Size bound: a line, newline included, is shorter than AUDIT_LINE_MAX (64 KiB). When a record
 * would be longer, it is shrunk in steps until it fits, each step keeping more than the next:
 *   1. reason cut to 4096 bytes;
 *   2. args, if its compact JSON is longer than 8192 bytes, replaced by
 *      {"truncated":true,"bytes":<length of its compact JSON>,"prefix":"<first 1024 bytes>"};
 *   3. the same for weights_before and weights_after;
 *   4. every string cut to 256 bytes and every fragment longer than 256 bytes summarised with a
 *      256-byte prefix (this step always fits).
 * A cut string ends at a UTF-8 character boundary and gets the suffix "...[truncated from N
 * bytes]", N being its original length, so a reader can tell.
 *
 * Durability: the line is written with one write() loop, then fdatasync() (the file is opened
 * O_APPEND, so its size is synced too). If the write fails part-way, the file is truncated back
 * to its previous length so that the next record does not glue onto a partial line. When the
 * path is not a regular file (a FIFO, /dev/stdout), there is nothing to sync or truncate.
 *
 * Control thread only; no globals.
 */
#include "control/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cut.h"
#include "core/fdio.h"
#include "core/text.h"
#include "proxy/log/log.h"

#define AUDIT_LINE_MAX (64u * 1024) /* a line with its '\n' is shorter than this */

struct audit_line {
    char *p; /* malloc'd, NUL-terminated, no '\n' */
    size_t n;
    uint64_t seq; /* order of writing, across both rings */
};

struct audit_ring {
    struct audit_line *v;
    size_t cap, head, count; /* head: the slot the next record goes to */
};

struct audit {
    int fd;       /* -1 when there is no file */
    bool regular; /* a regular file: sync and truncate on failure */
    bool unsynced; /* records were written since the last fdatasync */
    char *path;   /* for messages; NULL without a file */
    struct audit_ring changes, refusals;
    uint64_t seq;
    struct audit_found found;
};

/* ---------------------------------------------------------------------------------------------
 * Open / close
 */

static int sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (slash == NULL)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL) {
        errno = ENOMEM;
        return CUT_EIO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (dfd < 0)
        return CUT_EIO;
    if (fsync(dfd) != 0 && errno != EINVAL) { /* EINVAL: the file system cannot sync dirs */
        int e = errno;
        close(dfd);
        errno = e;
        return CUT_EIO;
    }
    return close(dfd);
}

static int ring_init(struct audit_ring *r, size_t cap)
{
    r->v = calloc(cap, sizeof *r->v);
    r->cap = cap;
    return r->v ? 0 : CUT_ENOMEM;
}

static void ring_dispose(struct audit_ring *r)
{
    for (size_t i = 0; r->v && i < r->cap; i++)
        free(r->v[i].p);
    free(r->v);
}

/* Puts line (taken) into r as its newest entry. */
static void ring_push(struct audit_ring *r, char *line, size_t n, uint64_t seq)
{
    struct audit_line *slot = &r->v[r->head];
    free(slot->p);
    *slot = (struct audit_line){line, n, seq};
    r->head = (r->head + 1) % r->cap;
    if (r->count < r->cap)
        r->count++;
}

/* The i-th oldest of the newest k entries of r (i < k <= count). */
static const struct audit_line *ring_at(const struct audit_ring *r, size_t k, size_t i)
{
    return &r->v[(r->head + r->cap - k + i) % r->cap];
}

static int read_at(int fd, char *buf, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t got = pread(fd, buf, n, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = EIO; /* the file shrank under us */
            return CUT_EIO;
        }
        buf += got;
        n -= (size_t)got;
        off += got;
    }
    return 0;
}

/* A partial last line (no '\n' at the end of the file) is appended to path.torn (with a '\n'
 * of its own, synced) and cut off the audit file, so the next record starts a line. Returns 0
 * (a->found.torn_* set when something was set aside) or -1 with err set. */
static int set_aside_torn(struct audit *a, int rfd, off_t size, char *err, size_t cap)
{
    char last;
    if (size == 0)
        return 0;
    if (read_at(rfd, &last, 1, size - 1) != 0) {
        text_error(err, cap, "audit %s: read: %s", a->path, strerror(errno));
        return CUT_EIO;
    }
    if (last == '\n')
        return 0;
    /* Where the partial line starts: after the last '\n', looking back block by block. */
    char block[4096];
    off_t start = 0;
    for (off_t end = size; end > 0 && start == 0;) {
        off_t from = end > (off_t)sizeof block ? end - (off_t)sizeof block : 0;
        if (read_at(rfd, block, (size_t)(end - from), from) != 0) {
            text_error(err, cap, "audit %s: read: %s", a->path, strerror(errno));
            return CUT_EIO;
        }
        for (off_t i = end - from; i > 0; i--)
            if (block[i - 1] == '\n') {
                start = from + i;
                break;
            }
        end = from;
    }
    size_t n = (size_t)(size - start);
    char *torn = malloc(n + 1);
    if (torn == NULL) {
        text_error(err, cap, "audit: out of memory");
        return CUT_EIO;
    }
    snprintf(a->found.torn_path, sizeof a->found.torn_path, "%s.torn", a->path);
    int tfd = -1;
    if (read_at(rfd, torn, n, start) != 0 ||
        (tfd = open(a->found.torn_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0) {
        text_error(err, cap, "audit %s: setting aside a partial last line: %s", a->path,
                strerror(errno));
        free(torn);
        return CUT_EIO;
    }
    torn[n] = '\n';
    size_t written;
    int rc = fdio_write_all(tfd, torn, n + 1, &written) != 0 || fdatasync(tfd) != 0 ||
                     sync_dir_of(a->found.torn_path) != 0
                 ? -1
                 : 0;
    int e = errno;
    close(tfd);
    free(torn);
    if (rc != 0 || ftruncate(a->fd, start) != 0 || fdatasync(a->fd) != 0) {
        text_error(err, cap, "audit %s: setting aside a partial last line: %s", a->path,
                strerror(rc != 0 ? e : errno));
        return CUT_EIO;
    }
    a->found.torn_bytes = n;
    return 0;
}

static bool has(const char *line, size_t n, const char *what)
{
    return memmem(line, n, what, strlen(what)) != NULL;
}

/* Is this line a change record? Records before "kind" existed: an ok record that moved the
 * generation. *gen gets the generation in force after it. */
static bool line_is_change(const char *line, size_t n, uint64_t *gen)
{
    if (has(line, n, "\"kind\":\"refusal\"") || has(line, n, "\"kind\":\"read\"") ||
        has(line, n, "\"result\":\"refused\""))
        return false;
    json_t *v = json_loadb(line, n, 0, NULL);
    if (v == NULL)
        return false;
    const char *kind = json_string_value(json_object_get(v, "kind"));
    const char *result = json_string_value(json_object_get(v, "result"));
    json_t *before = json_object_get(v, "generation_before");
    json_t *after = json_object_get(v, "generation_after");
    bool change = json_is_integer(after) && json_integer_value(after) >= 0 &&
                  (kind ? strcmp(kind, "change") == 0
                        : result && strcmp(result, "ok") == 0 && json_is_integer(before) &&
                              json_integer_value(before) != json_integer_value(after));
    if (change)
        *gen = (uint64_t)json_integer_value(after);
    json_decref(v);
    return change;
}

#define SCAN_WINDOW (256u * 1024) /* > AUDIT_LINE_MAX: every window holds a whole line */

/* Reads the file from its end: the generation after the last change, and the newest changes
 * into the history ring (within AUDIT_SCAN_MAX bytes). Returns 0, or -1 with err set. */
static int scan_tail(struct audit *a, int rfd, off_t size, char *err, size_t cap)
{
    char *buf = malloc(SCAN_WINDOW);
    char **found = calloc(a->changes.cap, sizeof *found);
    size_t *lens = calloc(a->changes.cap, sizeof *lens);
    size_t nfound = 0;
    int rc = 0;
    if (buf == NULL || found == NULL || lens == NULL) {
        text_error(err, cap, "audit: out of memory");
        rc = -1;
        goto out;
    }
    for (off_t pos = size; pos > 0 && size - pos < (off_t)AUDIT_SCAN_MAX &&
                           nfound < a->changes.cap;) {
        off_t from = pos > (off_t)SCAN_WINDOW ? pos - (off_t)SCAN_WINDOW : 0;
        size_t n = (size_t)(pos - from);
        if (read_at(rfd, buf, n, from) != 0) {
            text_error(err, cap, "audit %s: read: %s", a->path, strerror(errno));
            rc = -1;
            goto out;
        }
        size_t first = 0; /* where whole lines start in this window */
        if (from > 0) {
            char *nl = memchr(buf, '\n', n);
            if (nl == NULL) { /* a line longer than a window: not ours, skip it */
                pos = from;
                continue;
            }
            first = (size_t)(nl - buf) + 1;
        }
        size_t end = n; /* lines in [first, end), each ending in '\n' */
        while (end > first && nfound < a->changes.cap) {
            size_t e = end - 1; /* the '\n' of the line */
            size_t b = e;
            while (b > first && buf[b - 1] != '\n')
                b--;
            uint64_t gen;
            if (e > b && line_is_change(buf + b, e - b, &gen)) {
                if (!a->found.has_change) {
                    a->found.has_change = 1;
                    a->found.last_generation = gen;
                }
                if ((found[nfound] = strndup(buf + b, e - b)) == NULL) {
                    text_error(err, cap, "audit: out of memory");
                    rc = -1;
                    goto out;
                }
                lens[nfound++] = e - b;
            }
            end = b;
        }
        pos = from + (off_t)first;
        if (from == 0)
            break;
    }
    for (size_t i = nfound; i > 0; i--) { /* oldest first */
        ring_push(&a->changes, found[i - 1], lens[i - 1], ++a->seq);
        found[i - 1] = NULL;
    }
out:
    for (size_t i = 0; found && i < nfound; i++)
        free(found[i]);
    free(found);
    free(lens);
    free(buf);
    return rc;
}

struct audit *audit_open(const char *path, size_t ring, char *err, size_t cap)
{
    if (ring < 1) {
        text_error(err, cap, "audit: the history ring must hold at least 1 record");
        return NULL;
    }
    struct audit *a = calloc(1, sizeof *a);
    if (a == NULL || ring_init(&a->changes, ring) < 0 || ring_init(&a->refusals, ring) < 0) {
        if (a != NULL) {
            ring_dispose(&a->changes);
            ring_dispose(&a->refusals);
        }
        free(a);
        text_error(err, cap, "audit: out of memory (ring of %zu records)", ring);
        return NULL;
    }
    a->fd = -1;
    if (path == NULL)
        return a;

    a->path = strdup(path);
    if (a->path == NULL) {
        text_error(err, cap, "audit: out of memory");
        audit_close(a);
        return NULL;
    }
    struct stat sb;
    bool existed = stat(path, &sb) == 0;
    a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (a->fd < 0) {
        text_error(err, cap, "audit %s: open: %s", path, strerror(errno));
        audit_close(a);
        return NULL;
    }
    if (fstat(a->fd, &sb) != 0) {
        text_error(err, cap, "audit %s: fstat: %s", path, strerror(errno));
        audit_close(a);
        return NULL;
    }
    a->regular = S_ISREG(sb.st_mode);
    /* A new file's directory entry must survive a crash too. */
    if (!existed && a->regular && sync_dir_of(path) != 0) {
        text_error(err, cap, "audit %s: fsync of its directory: %s", path, strerror(errno));
        audit_close(a);
        return NULL;
    }
    if (a->regular && sb.st_size > 0) {
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (rfd < 0) {
            text_error(err, cap, "audit %s: open for reading: %s", path, strerror(errno));
            audit_close(a);
            return NULL;
        }
        int rc = set_aside_torn(a, rfd, sb.st_size, err, cap);
        if (rc == 0)
            rc = scan_tail(a, rfd, sb.st_size - (off_t)a->found.torn_bytes, err, cap);
        close(rfd);
        if (rc != 0) {
            audit_close(a);
            return NULL;
        }
    }
    return a;
}

const struct audit_found *audit_found(const struct audit *a)
{
    return &a->found;
}

void audit_close(struct audit *a)
{
    if (a == NULL)
        return;
    if (a->fd >= 0) {
        if (a->regular && a->unsynced)
            fdatasync(a->fd); /* reads and refusals written since the last change */
        close(a->fd);
    }
    ring_dispose(&a->changes);
    ring_dispose(&a->refusals);
    free(a->path);
    free(a);
}

/* ---------------------------------------------------------------------------------------------
 * Formatting
 */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not valid (overlong forms,
 * surrogates and code points above U+10FFFF are invalid, as for jansson). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A malloc'd copy of s[0..n) that is valid UTF-8 (each invalid byte becomes U+FFFD). */
static char *utf8_clean(const char *s, size_t n, size_t *out_len)
{
    char *o = malloc(n * 3 + 1);
    size_t j = 0;
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k == 0) {
            memcpy(o + j, "\xef\xbf\xbd", 3);
            j += 3;
            i++;
        } else {
            memcpy(o + j, s + i, k);
            j += k;
            i += k;
        }
    }
    o[j] = '\0';
    *out_len = j;
    return o;
}

/* A JSON string from valid UTF-8 s[0..n), cut to at most max bytes (plus a marker). */
static json_t *cut_string(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return json_stringn(s, n);
    size_t keep = max;
    while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
        keep--; /* do not split a character */
    char marker[64];
    int m = snprintf(marker, sizeof marker, "...[truncated from %zu bytes]", n);
    char *buf = malloc(keep + (size_t)m + 1);
    if (buf == NULL)
        return NULL;
    memcpy(buf, s, keep);
    memcpy(buf + keep, marker, (size_t)m + 1);
    json_t *j = json_stringn(buf, keep + (size_t)m);
    free(buf);
    return j;
}

/* A string field: null for NULL. */
static json_t *str_json(const char *s, size_t max)
{
    if (s == NULL)
        return json_null();
    size_t n;
    char *clean = utf8_clean(s, strlen(s), &n);
    if (clean == NULL)
        return NULL;
    json_t *j = cut_string(clean, n, max);
    free(clean);
    return j;
}

/* A parsed JSON fragment with its compact text, parsed once per record. */
struct frag {
    json_t *v;  /* NULL when absent or invalid (written as null) */
    char *text; /* compact dump of v */
    size_t n;
};

static int frag_init(struct frag *f, const char *src)
{
    f->v = NULL;
    f->text = NULL;
    f->n = 0;
    if (src == NULL)
        return 0;
    f->v = json_loads(src, JSON_DECODE_ANY, NULL);
    if (f->v == NULL)
        return 0; /* invalid: null */
    f->text = json_dumps(f->v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
                                   JSON_REAL_PRECISION(CUT_JSON_REAL_DIGITS));
    if (f->text == NULL) {
        json_decref(f->v);
        f->v = NULL;
        return CUT_ENOMEM;
    }
    f->n = strlen(f->text);
    return 0;
}

static void frag_dispose(struct frag *f)
{
    json_decref(f->v);
    free(f->text);
}

static json_t *frag_json(const struct frag *f, size_t max, size_t prefix)
{
    if (f->v == NULL)
        return json_null();
    if (f->n <= max)
        return json_incref(f->v);
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    size_t keep = prefix < f->n ? prefix : f->n;
    while (keep > 0 && keep < f->n && ((unsigned char)f->text[keep] & 0xc0) == 0x80)
        keep--;
    if (json_object_set_new(o, "truncated", json_true()) != 0 ||
        json_object_set_new(o, "bytes", json_integer((json_int_t)f->n)) != 0 ||
        json_object_set_new(o, "prefix", json_stringn(f->text, keep)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

struct limits {
    size_t reason, str;   /* bytes kept of the reason / of every other string */
    size_t args, weights; /* fragments whose compact text is longer are summarised */
    size_t prefix;        /* bytes of a summarised fragment's text kept */
};

static const struct limits shrink_steps[] = {
    {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, 0},
    {4096, SIZE_MAX, SIZE_MAX, SIZE_MAX, 0},
    {4096, SIZE_MAX, 8192, SIZE_MAX, 1024},
    {4096, SIZE_MAX, 8192, 8192, 1024},
    {256, 256, 256, 256, 256},
};

/* A refusal changed nothing: what it asked for is kept short from the start. */
static const struct limits refusal_steps[] = {
    {512, 512, AUDIT_REFUSAL_ARGS_MAX, AUDIT_REFUSAL_ARGS_MAX, 256},
    {256, 256, 256, 256, 256},
};

static const char *const kind_names[] = {"change", "read", "refusal"};

/* Sets key to val (taken); a NULL val (allocation failure) marks *ok false. */
static void put(json_t *o, const char *key, json_t *val, bool *ok)
{
    if (val == NULL || json_object_set_new(o, key, val) != 0)
        *ok = false;
}

static json_t *record_json(const struct audit_record *r, const char *time, const struct frag *args,
                           const struct frag *wb, const struct frag *wa, const struct limits *l)
{
    json_t *o = json_object(), *actor = json_object(), *error;
    bool ok = o != NULL && actor != NULL;
    if (!ok) {
        json_decref(o);
        json_decref(actor);
        return NULL;
    }
    put(actor, "uid", r->uid < 0 ? json_null() : json_integer((json_int_t)r->uid), &ok);
    put(actor, "user", str_json(r->user, l->str), &ok);
    if (r->address != NULL)
        put(actor, "address", str_json(r->address, l->str), &ok);
    if (r->ok) {
        error = json_null();
    } else {
        error = json_object();
        if (error != NULL) {
            put(error, "code", str_json(r->error_code, l->str), &ok);
            put(error, "message", str_json(r->error_message, l->str), &ok);
        }
    }
    put(o, "type", json_string("audit"), &ok);
    put(o, "kind", json_string(kind_names[r->kind]), &ok);
    put(o, "time", json_string(time), &ok);
    /* what DataDog and Log Analytics read without a custom pipeline (proxy/log/log.h) */
    put(o, "timestamp", json_string(time), &ok);
    put(o, "service", json_string(LOG_SERVICE), &ok);
    put(o, "level", json_string(r->ok ? "info" : "warn"), &ok);
    put(o, "cluster", str_json(r->cluster, l->str), &ok);
    put(o, "region", str_json(r->region, l->str), &ok);
    if (r->replica)
        put(o, "replica", json_string(r->replica), &ok);
    if (r->fleet_pending)
        put(o, "fleet", json_string("pending"), &ok);
    put(o, "actor", actor, &ok);
    put(o, "role", str_json(r->role, l->str), &ok);
    put(o, "op", str_json(r->op, l->str), &ok);
    put(o, "args", frag_json(args, l->args, l->prefix), &ok);
    put(o, "result", json_string(r->result ? r->result : r->ok ? "ok" : "refused"), &ok);
    put(o, "error", error, &ok);
    if (r->count > 1)
        put(o, "count", json_integer((json_int_t)r->count), &ok);
    put(o, "generation_before", json_integer((json_int_t)r->generation_before), &ok);
    put(o, "generation_after", json_integer((json_int_t)r->generation_after), &ok);
    put(o, "weights_before", frag_json(wb, l->weights, l->prefix), &ok);
    put(o, "weights_after", frag_json(wa, l->weights, l->prefix), &ok);
    put(o, "reason", str_json(r->reason, l->reason), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The line (malloc'd, room for '\n' and NUL after it), *len without either; NULL: no memory. */
static char *record_line(const struct audit_record *r, size_t *len)
{
    char time[32];
    struct frag args, wb, wa;
    char *line = NULL;

    log_time_rfc3339(time, sizeof time);
    int rc = frag_init(&args, r->args_json);
    rc |= frag_init(&wb, r->weights_before_json);
    rc |= frag_init(&wa, r->weights_after_json);
    const struct limits *steps = r->kind == AUDIT_REFUSAL ? refusal_steps : shrink_steps;
    size_t nsteps = r->kind == AUDIT_REFUSAL ? CUT_ARRAY_LEN(refusal_steps)
                                              : CUT_ARRAY_LEN(shrink_steps);
    for (size_t i = 0; rc == 0 && i < nsteps; i++) {
        json_t *o = record_json(r, time, &args, &wb, &wa, &steps[i]);
        if (o == NULL)
            break;
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                       JSON_REAL_PRECISION(CUT_JSON_REAL_DIGITS));
        json_decref(o);
        if (text == NULL)
            break;
        size_t n = strlen(text);
        if (n + 1 < AUDIT_LINE_MAX) {
            line = realloc(text, n + 2);
            if (line == NULL) {
                free(text);
                break;
            }
            *len = n;
            break;
        }
        free(text);
        CUT_ASSERT(i + 1 < nsteps); /* the last step always fits */
    }
    frag_dispose(&args);
    frag_dispose(&wb);
    frag_dispose(&wa);
    return line;
}

char *audit_record_text(const struct audit_record *r, size_t *len)
{
    return record_line(r, len);
}

/* ---------------------------------------------------------------------------------------------
 * Append / recent
 */

/* Appends line[0..n) (which ends in '\n') durably. Returns 0 or CUT_EIO with err set. */
static int append_file(struct audit *a, const char *line, size_t n, int sync, char *err,
                       size_t cap)
{
    off_t before = -1;
    size_t written = 0;
    const char *step = "write";

    if (a->regular) {
        before = lseek(a->fd, 0, SEEK_END);
        if (before < 0) {
            step = "lseek";
            goto fail;
        }
    }
    if (fdio_write_all(a->fd, line, n, &written) != 0)
        goto fail;
    if (a->regular && sync && fdatasync(a->fd) != 0) {
        step = "fdatasync";
        goto fail;
    }
    return 0;
fail : {
    int e = errno;
    if (a->regular && written > 0 && before >= 0) {
        /* Best effort: drop the partial (or unsynced) line so the file stays line-aligned. */
        if (ftruncate(a->fd, before) != 0)
            text_error(err, cap, "audit %s: %s: %s (and ftruncate: %s)", a->path, step, strerror(e),
                    strerror(errno));
        else
            text_error(err, cap, "audit %s: %s: %s", a->path, step, strerror(e));
    } else {
        text_error(err, cap, "audit %s: %s: %s", a->path, step, strerror(e));
    }
    return CUT_EIO;
}
}

int audit_append(struct audit *a, const struct audit_record *r, audit_out_fn out, void *ctx,
                 char *err, size_t cap)
{
    CUT_ASSERT(r->kind <= AUDIT_REFUSAL);
    size_t n = 0;
    char *line = record_line(r, &n);
    if (line == NULL) {
        text_error(err, cap, "audit: out of memory formatting the record");
        return CUT_ENOMEM;
    }
    if (a->fd >= 0) {
        line[n] = '\n';
        line[n + 1] = '\0';
        int sync = r->kind == AUDIT_CHANGE;
        int rc = append_file(a, line, n + 1, sync, err, cap);
        if (rc != 0) {
            free(line);
            return rc;
        }
        a->unsynced = !sync; /* a change's fdatasync covered everything before it too */
    }
    line[n] = '\0';

    a->seq++;
    if (r->kind == AUDIT_CHANGE)
        ring_push(&a->changes, line, n, a->seq);
    else if (r->kind == AUDIT_REFUSAL)
        ring_push(&a->refusals, line, n, a->seq);

    if (out != NULL)
        out(ctx, line, n);
    if (r->kind == AUDIT_READ)
        free(line); /* reads are not history */
    return 0;
}

int audit_sync(struct audit *a, char *err, size_t cap)
{
    if (a->fd < 0 || !a->regular || !a->unsynced)
        return 0;
    if (fdatasync(a->fd) != 0) {
        text_error(err, cap, "audit %s: fdatasync: %s", a->path, strerror(errno));
        return CUT_EIO;
    }
    a->unsynced = false;
    return 0;
}

/* The newest `limit` entries of the two rings (the second may be NULL), merged by seq, oldest
 * first. */
static void merged(const struct audit_ring *x, const struct audit_ring *y, size_t limit,
                   void (*fn)(void *ctx, const char *line, size_t len), void *ctx)
{
    size_t kx = x->count, ky = y ? y->count : 0;
    /* Drop the oldest until at most limit remain. */
    size_t ix = 0, iy = 0;
    while (kx - ix + ky - iy > limit) {
        if (iy < ky && (ix >= kx || ring_at(y, ky, iy)->seq < ring_at(x, kx, ix)->seq))
            iy++;
        else
            ix++;
    }
    while (ix < kx || iy < ky) {
        const struct audit_line *l;
        if (iy < ky && (ix >= kx || ring_at(y, ky, iy)->seq < ring_at(x, kx, ix)->seq))
            l = ring_at(y, ky, iy++);
        else
            l = ring_at(x, kx, ix++);
        fn(ctx, l->p, l->n);
    }
}

void audit_recent(const struct audit *a, size_t limit,
                  void (*fn)(void *ctx, const char *line, size_t len), void *ctx)
{
    merged(&a->changes, &a->refusals, limit, fn, ctx);
}

void audit_history(const struct audit *a, size_t limit, int refusals,
                   void (*fn)(void *ctx, const char *line, size_t len), void *ctx)
{
    merged(&a->changes, refusals ? &a->refusals : NULL, limit, fn, ctx);
}

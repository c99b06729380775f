/* audit.h - the audit trail of control requests: one JSON line per request, allowed or refused,
 * appended to a file and copied to stdout (and the SIEM). A change is fsynced before it is made
 * (the write-ahead record, docs/control-protocol.md "Durability order"); reads and refusals are
 * written at once and synced by the next change or by audit_sync() within a second.
 * Two in-memory rings keep the most recent changes and the most recent refusals for the
 * `history` operation; the changes ring is filled from the file's tail at open, so history
 * survives a restart. Control thread only.
 */
#ifndef CUT_AUDIT_H
#define CUT_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct audit;

/* Opens (creates, mode 0640) path for appending; path NULL keeps records in memory and on stdout
 * only. ring is how many records of each kind history can return (>= 1). An existing file is
 * read from its end: a partial last line (a write cut short by a crash) is set aside into
 * path.torn and cut off, so the next record starts on a line of its own; the most recent changes
 * fill the history ring; the generation in force after the last change is remembered
 * (audit_last_change). Returns NULL with a message in err. */
struct audit *audit_open(const char *path, size_t ring, char *err, size_t cap);
void audit_close(struct audit *a);

/* What audit_open() found in an existing file. */
struct audit_found {
    int has_change;           /* a change record was found (within AUDIT_SCAN_MAX of the end) */
    uint64_t last_generation; /* the generation in force after the last change record */
    size_t torn_bytes;        /* > 0: a partial last line of this many bytes was set aside */
    char torn_path[4200];     /* where it went (path.torn) */
};
const struct audit_found *audit_found(const struct audit *a);

/* How far back from the end audit_open() looks for the last change. */
#define AUDIT_SCAN_MAX (256u * 1024 * 1024)

/* What a record is, for durability and history:
 *  AUDIT_CHANGE  a change, made or not (result ok, aborted, or a recovery at start-up): fsynced
 *                before audit_append() returns; in history;
 *  AUDIT_READ    an allowed read (status, history, version): written, not fsynced, not in
 *                history;
 *  AUDIT_REFUSAL a refused request: written, not fsynced; its args and strings are cut shorter
 *                (AUDIT_REFUSAL_ARGS_MAX); in history on request. */
enum audit_kind { AUDIT_CHANGE = 0, AUDIT_READ, AUDIT_REFUSAL };

#define AUDIT_REFUSAL_ARGS_MAX 1024

/* One record. Strings are borrowed; JSON fragments (args, weights_before/after) must be valid
 * JSON values or NULL (written as null). */
struct audit_record {
    const char *cluster, *region;
    long uid;                  /* -1 when unknown */
    const char *user;          /* user name, certificate subject, or "auto" */
    const char *address;       /* remote "ip:port" (HTTPS admin API); NULL: not written */
    const char *role;
    const char *op;
    const char *args_json;
    int ok;
    const char *error_code;    /* NULL when ok */
    const char *error_message; /* NULL when ok */
    uint64_t generation_before, generation_after;
    const char *weights_before_json, *weights_after_json;
    const char *reason;        /* NULL when none */
    enum audit_kind kind;
    const char *result;        /* NULL: "ok" when ok, else "refused"; or "aborted" (a change
                                * recorded but not made) */
    uint64_t count;            /* > 1: this record stands for count refusals (coalesced) */
    const char *replica;       /* with a fleet store: the replica that took the request (its
                                * generations are the fleet's); NULL: not written */
    int fleet_pending;         /* a rollback applied here that the fleet store does not have
                                * yet: written "fleet":"pending" */
};

/* Formats the record as one JSON line (with "type":"audit", "kind" and an RFC 3339 UTC time
 * with milliseconds), appends it to the file (and fdatasyncs a change), keeps it in its ring,
 * and writes it to the out callback (stdout in production) when out is set. Returns 0, or
 * CUT_EIO with a message in err when the file could not be written or synced (the record is then
 * not in the ring), or CUT_ENOMEM (nothing written). The ring and out get the line without its
 * trailing '\n'. Reals are written with CUT_JSON_REAL_DIGITS significant digits, so a weight of
 * 97.21 is written 97.21. */
typedef void (*audit_out_fn)(void *ctx, const char *line, size_t len);
int audit_append(struct audit *a, const struct audit_record *r, audit_out_fn out, void *ctx,
                 char *err, size_t cap);

/* The record as audit_append() would write it now (time included): one JSON line, malloc'd,
 * without its newline (*len its length); NULL when out of memory. For copies of a record kept
 * elsewhere (the fleet store's history). */
char *audit_record_text(const struct audit_record *r, size_t *len);

/* Makes every record written so far durable (fdatasync) when some are not yet. Returns 0 or
 * CUT_EIO with err set. The control thread calls it every second. */
int audit_sync(struct audit *a, char *err, size_t cap);

/* Calls fn for the most recent min(limit, kept) records of every kind kept (changes and
 * refusals), oldest first. */
void audit_recent(const struct audit *a, size_t limit,
                  void (*fn)(void *ctx, const char *line, size_t len), void *ctx);

/* The same for history: the most recent min(limit, kept) changes, with refusals merged in by
 * time when refusals is set, oldest first. */
void audit_history(const struct audit *a, size_t limit, int refusals,
                   void (*fn)(void *ctx, const char *line, size_t len), void *ctx);

#endif

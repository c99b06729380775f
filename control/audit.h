/* audit.h - the audit trail of control requests: one JSON line per request, allowed or refused,
 * appended to a file and fsynced before the request is acknowledged, and copied to stdout.
 * A small in-memory ring keeps the most recent records for the `history` operation.
 * Control thread only.
 */
#ifndef CUT_AUDIT_H
#define CUT_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct audit;

/* Opens (creates, mode 0640) path for appending; path NULL keeps records in memory and on stdout
 * only. ring is how many records history can return (>= 1). Returns NULL with a message in err. */
struct audit *audit_open(const char *path, size_t ring, char *err, size_t cap);
void audit_close(struct audit *a);

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
    int no_sync;               /* a read (status, history, version): written, not fsynced */
};

/* Formats the record as one JSON line (with "type":"audit" and an RFC 3339 UTC time with
 * milliseconds), appends it to the file and fsyncs, keeps it in the ring, and writes it to the
 * out callback (stdout in production) when out is set. Returns 0, or CUT_EIO with a message in
 * err when the file could not be written or synced (the record is then not in the ring), or
 * CUT_ENOMEM (nothing written). The ring and out get the line without its trailing '\n'. */
typedef void (*audit_out_fn)(void *ctx, const char *line, size_t len);
int audit_append(struct audit *a, const struct audit_record *r, audit_out_fn out, void *ctx,
                 char *err, size_t cap);

/* Calls fn for the most recent min(limit, kept) records, oldest first. */
void audit_recent(const struct audit *a, size_t limit,
                  void (*fn)(void *ctx, const char *line, size_t len), void *ctx);

#endif

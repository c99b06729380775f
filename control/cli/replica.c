/* replica.c - a replica's outcome: a failure, or the reply it sent (see replica.h). */
#include "control/cli/replica.h"
#include "core/cut.h"

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_replica_fail(struct cli_replica *r, int exit_class, const char *code, const char *fmt, ...)
{
    va_list ap;
    r->ok = 0;
    r->exit_class = exit_class;
    snprintf(r->code, sizeof r->code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    SSL_free(r->ssl);
    r->ssl = NULL;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->st = CLI_RS_DONE;
}

/* The exchange is over (a reply was taken): releases the connection. */
static void replica_done(struct cli_replica *r)
{
    SSL_free(r->ssl);
    r->ssl = NULL;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->st = CLI_RS_DONE;
}

/* The exit class of a server error code (see docs/cutoverctl.md, "Exit codes"). */
static int code_exit_class(const char *code)
{
    if (!strcmp(code, "denied") || !strcmp(code, "forbidden"))
        return CLI_EXIT_DENIED;
    if (!strcmp(code, "busy") || !strcmp(code, "internal") || !strcmp(code, "store_unavailable"))
        return CLI_EXIT_UNREACH;
    /* bad_request, unsupported_version, unknown_op, invalid_argument, not_found, conflict,
     * too_large, and codes this client does not know: refused as invalid */
    return CLI_EXIT_USAGE;
}

void cli_replica_take_reply(struct cli_replica *r, const char *id, const char *text, size_t len,
                            int http_status)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        if (http_status)
            cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol",
                             "HTTP %d without a control reply (the body is not a JSON object)",
                             http_status);
        else
            cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol", "the reply is not a JSON object%s%s",
                             j ? "" : ": ", j ? "" : je.text);
        return;
    }
    const char *rid = json_string_value(json_object_get(j, "id"));
    json_t *ok = json_object_get(j, "ok");
    if (rid && strcmp(rid, id)) {
        json_decref(j);
        cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol",
                         "the reply's id does not match the request's (%s)", id);
        return;
    }
    if (!json_is_boolean(ok)) {
        json_decref(j);
        cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol", "the reply has no boolean \"ok\"");
        return;
    }
    json_t *gen = json_object_get(j, "generation");
    if (json_is_integer(gen)) {
        r->generation = json_integer_value(gen);
        r->has_generation = 1;
    }
    r->reply = j;
    if (json_is_true(ok)) {
        r->ok = 1;
        replica_done(r);
    } else {
        json_t *err = json_object_get(j, "error");
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *msg = json_string_value(json_object_get(err, "message"));
        const char *path = json_string_value(json_object_get(err, "path"));
        code = code ? code : "unknown";
        cli_replica_fail(r, code_exit_class(code), code, "%s%s%s%s", msg ? msg : "(no message)",
                         path ? " (at " : "", path ? path : "", path ? ")" : "");
    }
}

int cli_replica_grow_in(struct cli_replica *r, size_t first, size_t limit)
{
    size_t ncap = r->incap ? r->incap * 2 : first;
    if (ncap > limit)
        ncap = limit;
    if (ncap <= r->incap) {
        cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol", "reply longer than %u MiB refused",
                         CLI_MAX_REPLY >> 20);
        return CUT_ELIMIT;
    }
    char *nb = realloc(r->in, ncap);
    if (!nb) {
        cli_replica_fail(r, CLI_EXIT_UNREACH, "protocol", "out of memory reading the reply");
        return CUT_ENOMEM;
    }
    r->in = nb;
    r->incap = ncap;
    return 0;
}

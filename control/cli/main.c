/* main.c - cutoverctl, the command-line client of cutover's control plane (docs/cutoverctl.md).
 *
 * Speaks the control protocol (docs/control-protocol.md) to one or more replicas, over their
 * control sockets (newline-delimited JSON over a Unix stream socket) or their HTTPS admin APIs
 * (POST /v1/control with a client certificate; a DNS name fans out to every address it resolves
 * to). Every command goes to every replica in parallel, each exchange bounded by --timeout with
 * non-blocking sockets (and non-blocking OpenSSL) and poll(2); the per-replica outcomes
 * are folded into one exit code (see enum cli_exit). Mutating commands can wait for a barrier
 * (--wait: every replica reports the generation it acknowledged). `shift` starts a server-side
 * plan (op `shift`: steps, hold time, gates; cutover itself advances it and rolls it back when a
 * gate fails), then watches it through `status` once a second until it is promoted or rolled
 * back; Ctrl-C aborts the plan with `shift-abort`, leaving the current step applied.
 *
 * The parts: options.c (the command line), transport.c and https.c (one exchange with every
 * replica), fanout.c (the replicas, folding their outcomes, the barrier), simple.c (one request
 * per command), shift.c (the gated shift), output.c and plan_text.c (what is printed),
 * values.c (percentages, durations, gates). The operations come from control/optable.h.
 *
 * Single-threaded. All state is reachable from `struct cli`; the only global is the signal flag
 * (and its self-pipe) that the SIGINT/SIGTERM handler of `shift` sets (shift.c).
 * Depends on jansson, OpenSSL, and from libcutover the operation table (control/optable.c), the
 * HTTP/1.1 response parser (proxy/http/h1_parse.c) and the endpoint parser (control/ctlurl.c).
 */
#include <jansson.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/cli/cli.h"
#include "control/cli/fanout.h"
#include "control/cli/options.h"
#include "control/cli/shift.h"
#include "control/cli/simple.h"

int main(int argc, char **argv)
{
    static struct cli cli;
    struct cli *c = &cli;
    signal(SIGPIPE, SIG_IGN);

    const struct optable_op *cmd;
    int rc = cli_options_parse(c, argc, argv, &cmd);
    if (rc || !cmd)
        return rc; /* a usage error, or --help */

    if (c->ntargets == 0) {
        const char *env = getenv("CUTOVER_SOCKET");
        c->targets[0].text = env && *env ? env : CLI_DEFAULT_SOCKET;
        c->ntargets = 1;
    }
    rc = cli_make_replicas(c);
    if (rc)
        return rc;
    c->tty = isatty(STDOUT_FILENO);

    /* shift is the only command that is more than one request (but for a dry run, which only
     * asks every replica what starting the plan would do) */
    cli_run_fn run = strcmp(cmd->op, "shift") == 0 && !(c->seen & OPTABLE_ARG_DRY_RUN)
                         ? cli_shift_run
                         : cli_simple_run;
    int code = run(c, cmd);
    for (size_t i = 0; i < c->n; i++)
        json_decref(c->rs[i].reply);
    SSL_CTX_free(c->tls);
    fflush(stdout);
    return code;
}

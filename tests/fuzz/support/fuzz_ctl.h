/* fuzz_ctl.h - the shared set-up of the harnesses that need a control thread (fuzz_commands)
 * or a worker (fuzz_h2_server): a logger and a SIEM handle as main.c makes them, a fixed valid
 * configuration in a temporary file (the reload op reads it), and a struct ctl made by ctl_new()
 * itself (audit log in memory, no state file, no control socket, signals left to libFuzzer).
 *
 * Harnesses that link this file are linked with -Wl,--wrap=getaddrinfo (see the Makefile):
 * endpoint names resolve as numeric addresses only, so no input ever makes a DNS query.
 * Fuzzer thread only; everything here lives until the process exits.
 */
#ifndef CUT_FUZZ_CTL_H
#define CUT_FUZZ_CTL_H

#include <stddef.h>

struct ctl;
struct logger;
struct siem;
struct worker;

struct fuzz_env {
    struct logger *lg; /* lines go to /dev/null, or stderr when FUZZ_LOG is set */
    struct siem *siem; /* never configured with an address: submits are dropped */
    char path[64];     /* the configuration file */
    int log;           /* FUZZ_LOG is set: harnesses flush their log lines after each input */
};

/* Ignores SIGPIPE, starts the logger and the SIEM handle, writes config (a valid configuration,
 * borrowed) to a temporary file removed at exit. Aborts on failure (the harness cannot run). */
void fuzz_env_init(struct fuzz_env *e, const char *config);

/* Parses the configuration file and makes a control thread over it with ctl_new(): nworkers
 * workers (borrowed; NULL and 0 for none) get the first snapshot. Its SIGHUP/SIGTERM/SIGINT
 * events are removed again so libFuzzer keeps its handlers; its event base is never run by
 * fuzz_commands. Aborts on failure. Free with ctl_free(). */
struct ctl *fuzz_ctl_new(struct fuzz_env *e, struct worker **workers, unsigned nworkers);

/* Aborts with a message on stderr when cond is false (a finding: libFuzzer keeps the input). */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                     \
    } while (0)

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#endif

/* fuzz_ctl.c - shared set-up for the harnesses that run a control thread (see fuzz_ctl.h). */
#include "tests/fuzz/support/fuzz_ctl.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/cfg.h"
#include "control/ctl.h"
#include "control/ctl.h"
#include "proxy/log/log.h"
#include "proxy/log/siem.h"
#include "core/version.h"

#define FUZZ_LOG_QUEUE (4u << 20)

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

/* Every getaddrinfo() of the library lands here (-Wl,--wrap=getaddrinfo): numeric hosts only,
 * so a fuzzed endpoint name fails at once instead of asking a DNS server. */
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    struct addrinfo h = {0};
    if (hints)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    return __real_getaddrinfo(node, service, &h, res);
}

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "\n==FUZZ CHECK FAILED== %s:%d: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static char *cfg_file;

/* With FUZZ_LOG, gives the logger thread a moment to write the last lines before exit. */
static void settle_log(void)
{
    usleep(200 * 1000);
}

static void remove_cfg_file(void)
{
    if (cfg_file)
        unlink(cfg_file);
}

void fuzz_env_init(struct fuzz_env *e, const char *config)
{
    /* as in main(): the control thread's resolver (control/dns.c) wakes the loop from its own
     * thread */
    FUZZ_CHECK(evthread_use_pthreads() == 0, "evthread_use_pthreads");
    signal(SIGPIPE, SIG_IGN);
    e->log = getenv("FUZZ_LOG") != NULL;
    int fd = e->log ? dup(STDERR_FILENO) : open("/dev/null", O_WRONLY | O_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "cannot open the log sink");
    e->lg = log_new(fd, FUZZ_LOG_QUEUE);
    FUZZ_CHECK(e->lg != NULL, "log_new");
    e->siem = siem_new(e->lg, CUTOVER_VERSION);
    FUZZ_CHECK(e->siem != NULL, "siem_new");
    if (e->log)
        atexit(settle_log);

    snprintf(e->path, sizeof e->path, "/tmp/cutover-fuzz-cfg-XXXXXX");
    int cf = mkstemp(e->path);
    FUZZ_CHECK(cf >= 0, "mkstemp %s", e->path);
    size_t n = strlen(config);
    FUZZ_CHECK(write(cf, config, n) == (ssize_t)n, "write %s", e->path);
    close(cf);
    cfg_file = e->path;
    atexit(remove_cfg_file);

    /* The configuration must be valid: a harness that starts from a refused one tests nothing. */
    struct cfg *cfg = NULL;
    struct cfg_errors errs;
    if (cfg_load(e->path, &cfg, &errs) < 0) {
        cfg_errors_print(&errs, e->path, stderr);
        FUZZ_CHECK(0, "the harness's configuration is refused");
    }
    cfg_errors_dispose(&errs);
    cfg_free(cfg);
}

struct ctl *fuzz_ctl_new(struct fuzz_env *e, struct worker **workers, unsigned nworkers)
{
    struct cfg *cfg = NULL;
    struct cfg_errors errs;
    char err[1024];
    FUZZ_CHECK(cfg_load(e->path, &cfg, &errs) == 0, "cfg_load");
    cfg_errors_dispose(&errs);
    struct ctl *c = ctl_new(e->path, cfg, e->lg, e->siem, workers, nworkers, 1, err, sizeof err);
    FUZZ_CHECK(c != NULL, "ctl_new: %s", err);
    /* libevent's signal handling replaced libFuzzer's SIGINT/SIGTERM handlers; deleting the
     * events puts them back (the control thread's loop never runs here anyway). */
    ctl_release_signals(c);
    return c;
}

/* main.c - start-up, listening sockets, worker threads, and the control loop. */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/cfg.h"
#include "control/certs.h"
#include "control/ctl.h"
#include "control/instance.h"
#include "core/addr.h"
#include "core/cut.h"
#include "proxy/log/log.h"
#include "proxy/log/siem.h"
#include "core/version.h"
#include "proxy/relay/worker.h"

#define CUT_MALLOC_KEEP (8 << 20)
#define CUT_MALLOC_PAD (1 << 20)

#define LOG_QUEUE_MAX (64u << 20)

static void usage(FILE *f)
{
    fprintf(f, "usage: cutover -c FILE [-w WORKERS]\n"
               "       cutover --check -c FILE\n"
               "  -c, --config FILE   configuration (JSON)\n"
               "  -w, --workers N     worker threads (overrides the configuration)\n"
               "      --check         validate the configuration and exit 0 (valid) or 1\n"
               "      --discard-state start from the configuration's weights even if the state\n"
               "                      file is corrupt (it is kept as FILE.discarded)\n"
               "  -V, --version       print the version\n");
}

/* The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota. */
static unsigned cpus_available(void)
{
    unsigned n = 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = (unsigned)CPU_COUNT(&set);
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        char quota[32];
        unsigned long period = 0;
        if (fscanf(f, "%31s %lu", quota, &period) == 2 && strcmp(quota, "max") != 0 && period) {
            unsigned long q = strtoul(quota, NULL, 10);
            unsigned lim = (unsigned)((q + period - 1) / period);
            if (lim >= 1 && lim < n)
                n = lim;
        }
        fclose(f);
    }
    return n ? n : 1;
}

static int listen_socket(const struct cfg_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (addr_numeric(l->host, l->port, &ss, &len) != 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int check = 0, discard_state = 0;
    long workers_opt = -1;
    /* Read buffers come and go by the 16 KiB chunk on every request; with glibc's default trim
     * threshold each worker arena shrinks and regrows its heap (mprotect/madvise) constantly.
     * Keep up to CUT_MALLOC_KEEP of freed memory per arena instead (perf: sysmalloc was ~5 % of
     * a worker's time on the h2c benchmark). */
    mallopt(M_TRIM_THRESHOLD, CUT_MALLOC_KEEP);
    mallopt(M_TOP_PAD, CUT_MALLOC_PAD);
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"workers", required_argument, NULL, 'w'},
        {"check", no_argument, NULL, 't'},         {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},          {"discard-state", no_argument, NULL, 'D'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "c:w:tVh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config_path = optarg; break;
        case 'w': {
            char *end;
            workers_opt = strtol(optarg, &end, 10);
            if (*end || workers_opt < 1 || workers_opt > 256) {
                fprintf(stderr, "cutover: --workers must be 1..256\n");
                return 2;
            }
            break;
        }
        case 't': check = 1; break;
        case 'D': discard_state = 1; break;
        case 'V': printf("cutover %s\n", CUTOVER_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!config_path || optind != argc) {
        usage(stderr);
        return 2;
    }

    struct cfg *cfg = NULL;
    struct cfg_errors errs = {0};
    if (cfg_load(config_path, &cfg, &errs) < 0) {
        cfg_errors_print(&errs, config_path, stderr);
        fprintf(stderr, "cutover: %s: configuration refused (%zu problem%s)\n", config_path,
                errs.n, errs.n == 1 ? "" : "s");
        cfg_errors_dispose(&errs);
        return 1;
    }
    if (check) {
        /* The certificate, key, CA and CRL files too: exactly what start-up would load. */
        if (certs_check(cfg, &errs) < 0) {
            cfg_errors_print(&errs, config_path, stderr);
            fprintf(stderr, "cutover: %s: TLS material refused (%zu problem%s)\n", config_path,
                    errs.n, errs.n == 1 ? "" : "s");
            cfg_errors_dispose(&errs);
            cfg_free(cfg);
            return 1;
        }
        printf("cutover: %s: configuration ok\n", config_path);
        cfg_free(cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    /* The listeners accept before the control thread installs its SIGHUP handler: a reload
     * asked for in between is ignored rather than killing the process. */
    signal(SIGHUP, SIG_IGN);
    if (evthread_use_pthreads() < 0) {
        fprintf(stderr, "cutover: libevent threading unavailable\n");
        return 1;
    }
    unsigned nworkers = workers_opt > 0 ? (unsigned)workers_opt
                        : cfg->workers  ? cfg->workers
                                        : cpus_available();

    /* One process per state: a second one refuses before it opens a listener (it would share
     * the port through SO_REUSEPORT and take connections it cannot be told about). */
    char ierr[4400];
    struct instance *inst = instance_acquire(cfg, ierr, sizeof ierr);
    if (!inst) {
        fprintf(stderr, "cutover: %s\n", ierr);
        cfg_free(cfg);
        return 1;
    }

    struct logger *lg = log_new(STDOUT_FILENO, LOG_QUEUE_MAX);
    struct siem *siem = lg ? siem_new(lg, CUTOVER_VERSION) : NULL;
    struct worker **workers = calloc(nworkers, sizeof *workers);
    if (!lg || !siem || !workers) {
        fprintf(stderr, "cutover: out of memory\n");
        return 1;
    }
    int rc = 1;
    unsigned made = 0;
    for (; made < nworkers; made++) {
        int fds[64];
        unsigned nfds = 0;
        for (size_t i = 0; i < cfg->nlisteners && nfds < 64; i++) {
            int fd = listen_socket(&cfg->listeners[i]);
            if (fd < 0) {
                fprintf(stderr, "cutover: listeners[%zu]: cannot listen on %s: %s\n", i,
                        cfg->listeners[i].address, strerror(errno));
                for (unsigned j = 0; j < nfds; j++)
                    close(fds[j]);
                goto out;
            }
            fds[nfds++] = fd;
        }
        workers[made] = worker_new(made, lg, fds, nfds);
        if (!workers[made]) {
            fprintf(stderr, "cutover: cannot create worker %u\n", made);
            goto out;
        }
        workers[made]->siem = siem;
    }
    char err[1024];
    struct ctl *ctl = ctl_new(config_path, cfg, lg, siem, workers, nworkers, discard_state, err,
                              sizeof err);
    cfg = NULL; /* taken by ctl_new */
    if (!ctl) {
        fprintf(stderr, "cutover: %s\n", err);
        goto out;
    }
    unsigned started = 0;
    for (; started < nworkers; started++)
        if (worker_start(workers[started]) < 0)
            break;
    if (started < nworkers) {
        fprintf(stderr, "cutover: cannot start worker threads\n");
        for (unsigned i = 0; i < started; i++)
            worker_command(workers[i], WORKER_FORCE_STOP);
        for (unsigned i = 0; i < started; i++)
            worker_join(workers[i]);
        ctl_free(ctl);
        goto out;
    }
    rc = ctl_run(ctl) == 0 ? 0 : 1;
    for (unsigned i = 0; i < nworkers; i++)
        worker_join(workers[i]);
    ctl_free(ctl);
out:
    for (unsigned i = 0; i < made; i++)
        worker_free(workers[i]);
    free(workers);
    cfg_free(cfg);
    siem_free(siem); /* at most 2 s for what is queued; its last events go to the log */
    log_free(lg);
    instance_free(inst);
    libevent_global_shutdown();
    return rc;
}

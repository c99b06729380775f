#!/usr/bin/env python3
"""bench.py - runs cutover side by side with HAProxy, NGINX, nghttpx and h2o (see bench/README.md).

Called by bench/run.sh, which builds the origin first. Environment:
  BUILD   build directory (cutover at $BUILD/cutover, origin at $BUILD/bench/origin)
  SMOKE=1 a short run that only checks the harness works (fails on errors, never on speed)
  ONLY    comma-separated scenario names to run (default: all)
  ORIGIN  the origin server: "origin" (default, bench/origin.c) or "h2o" (h2o 2.2.5, file.dir)

Every process it starts is stopped by its PID (SIGTERM, then SIGKILL after a grace period), and
every run is bounded in time. Writes bench/results/latest.json and appends to bench/RESULTS.md.
"""
import json
import math
import os
import pwd
import re
import resource
import selectors
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SMOKE = os.environ.get("SMOKE", "0") == "1"
ONLY = [s for s in os.environ.get("ONLY", "").split(",") if s]
CUTOVER = os.path.join(BUILD, "cutover")
ORIGIN = os.path.join(BUILD, "bench", "origin")
# Which server plays blue and green (and the ceiling row): bench/origin.c or h2o 2.2.5.
ORIGIN_SERVER = os.environ.get("ORIGIN", "origin") or "origin"
ORIGIN_LABELS = {"origin": "bench/origin.c", "h2o": "h2o 2.2.5 (file.dir)"}
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NCPU = os.cpu_count() or 1

PROXY_CPU = "0"  # every proxy, one worker, pinned here
LOAD_CPU = "1" if NCPU > 1 else "0"  # wrk and the origins

P = {
    "repeats": int(os.environ.get("REPEATS", "1" if SMOKE else "5")),
    "warmup": 1,
    "duration": 1 if SMOKE else 5,
    "conns_small": 10 if SMOKE else 50,
    "conns_large": 4 if SMOKE else 10,
    "idle_conns": 300 if SMOKE else 10000,
    "cg_counts": (50, 250) if SMOKE else (2000, 12000),
    "split_requests": 100,
    "switches": 50 if SMOKE else 1000,
    "hs_batch": 20 if SMOKE else 100,  # tls_handshakes: new connections per h2load run
    "hs_loops": 2,  # tls_handshakes: h2load runs in flight at once
    "cg_pair_counts": (20, 60) if SMOKE else (200, 1200),  # callgrind per protocol pair
    "lat_fractions": (0.5, 0.8),  # latency: offered rate, share of the best anchor's capacity
    "lat_client_rps": 100,  # latency: at most this many req/s per h2load client (see README)
    "lat_max_conns": 1000,
    "cap_seconds": 1 if SMOKE else 2,  # latency: capacity run when small/h2c did not run
    "origin": ORIGIN_LABELS.get(ORIGIN_SERVER, ORIGIN_SERVER),
}
LARGE = 1048576
SIZES = (LARGE,)  # /size/N the h2o origin can answer (files written at start)

PROXIES = [p for p in os.environ.get("PROXIES", "cutover,haproxy,nginx,nghttpx,h2o").split(",") if p]
H2C_CAPABLE = {"cutover", "haproxy", "nginx", "nghttpx", "h2o"}  # cutover: h2c prior knowledge
# Proxies that can speak HTTP/2 (h2c, prior knowledge) to the origins: the "-h2up" variants.
# nginx 1.22's proxy module speaks HTTP/1.x upstream only, h2o 2.2.5's proxy.reverse too.
H2UP_CAPABLE = ("cutover", "haproxy", "nghttpx")
NO_H2UP = {"nginx": "nginx 1.22 cannot proxy to an HTTP/2 upstream (proxy_pass speaks HTTP/1.x "
                    "only; grpc_pass speaks HTTP/2 but only as the gRPC module)",
           "h2o": "h2o 2.2.5 cannot proxy to an HTTP/2 upstream (proxy.reverse speaks HTTP/1.1 "
                  "only)"}
TLS_TOOLS = ("h2tls", "handshakes")  # load tools that connect to the proxy's TLS listener

errors = []  # harness failures: a proxy not starting, zero successes, non-2xx


def log(msg):
    print(f"bench: {msg}", flush=True)


def fail(msg):
    errors.append(msg)
    log(f"ERROR: {msg}")


# ---------------------------------------------------------------- processes


class Proc:
    """A process we started; stop() ends it by its PID."""

    def __init__(self, name, argv, cpu, logdir, env=None, stdout_path=None):
        """stdout_path: the program's stdout goes to this file (an access log written to
        stdout), its stderr to NAME.log; without it both go to NAME.log."""
        self.name = name
        self.access_log = None  # the file its access log goes to, when on
        cmd = (["taskset", "-c", cpu] if cpu is not None else []) + argv
        self.out = open(os.path.join(logdir, f"{name}.log"), "ab")
        self.stdout = open(stdout_path, "ab") if stdout_path else None
        self.p = subprocess.Popen(cmd, stdout=self.stdout or self.out,
                                  stderr=self.out if self.stdout else subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env)
        self.pid = self.p.pid  # taskset execs, so this is the program's own PID

    def alive(self):
        return self.p.poll() is None

    def stop(self, grace=10.0, nudge=None):
        """SIGTERM, SIGKILL after grace seconds. nudge: send SIGTERM again every nudge seconds
        meanwhile (under valgrind, an nginx with a TLS listener sometimes sleeps through the
        first SIGTERM until its next timer, 50 s later)."""
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                end = time.time() + grace
                while nudge and time.time() + nudge < end:
                    try:
                        self.p.wait(timeout=nudge)
                        break
                    except subprocess.TimeoutExpired:
                        os.kill(self.pid, signal.SIGTERM)
                self.p.wait(timeout=max(0.0, end - time.time()))
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.pid}) ignored SIGTERM for {grace}s; SIGKILL")
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(timeout=5)
        self.out.close()
        if self.stdout:
            self.stdout.close()
        return self.p.returncode


def stop_judged(proc, label, kind, grace=10.0):
    """Stops a proxy by PID; a cutover that did not end by the SIGTERM it was sent (died by
    another signal, or exited non-zero) is a harness error: a crash must not pass unnoticed in
    a benchmark either."""
    rc = proc.stop(grace=grace)
    if rc not in (0, -signal.SIGTERM, 143) and kind.startswith("cutover"):
        fail(f"{label}: cutover exited with {rc} on SIGTERM")
    return rc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path="/", timeout=2.0):
    """One GET on a new connection; returns (status, body) or raises."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def wait_ready(proc, port, timeout):
    """Polls GET / until a 2xx. Returns None when ready, else the last problem seen."""
    deadline = time.time() + timeout
    last = "no answer"
    while time.time() < deadline:
        if not proc.alive():
            return f"exited with {proc.p.returncode}"
        try:
            st, _ = http_get(port, timeout=1.0)
            if 200 <= st < 300:
                return None
            last = f"status {st}"
        except (OSError, ValueError, IndexError) as e:
            last = repr(e)
        time.sleep(0.1)
    return last


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def cpu_split(pid):
    """(utime, stime) in ticks: the proxy's own code and libraries vs. the kernel's work for it
    (system calls, TCP)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- configurations


def make_certs(d):
    """A throwaway CA and an ECDSA P-256 server certificate it signs (CN localhost, SAN
    localhost and 127.0.0.1), made with openssl in the run's directory; every proxy serves it.
    Returns {"cert", "key", "pem" (certificate then key, for HAProxy), "ca"}."""
    p = {k: os.path.join(d, f) for k, f in (("ca", "ca.crt"), ("ca_key", "ca.key"),
                                            ("csr", "server.csr"), ("cert", "server.crt"),
                                            ("key", "server.key"), ("ext", "server.ext"),
                                            ("pem", "server.pem"))}
    with open(p["ext"], "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    steps = [
        ["openssl", "req", "-x509", *ec, "-keyout", p["ca_key"], "-out", p["ca"], "-days", "2",
         "-subj", "/CN=cutover bench CA"],
        ["openssl", "req", "-new", *ec, "-keyout", p["key"], "-out", p["csr"],
         "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", p["csr"], "-CA", p["ca"], "-CAkey", p["ca_key"],
         "-CAcreateserial", "-days", "2", "-out", p["cert"], "-extfile", p["ext"]],
    ]
    for argv in steps:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} failed: {r.stderr.strip()[-300:]}")
    with open(p["pem"], "w") as out:
        for k in ("cert", "key"):
            with open(p[k]) as f:
                out.write(f.read())
    return {k: p[k] for k in ("cert", "key", "pem", "ca")}


# Line marks of the templates: "@tls " (the TLS listener), "@log " (the access log, on only in
# access_log_all), "@nolog " (the line that turns it off otherwise).
MARKS = ("tls", "log", "nolog")


def render(template, tls=False, marks=(), **kw):
    """Fills a template from bench/anchors. A line whose text starts with "@tls " (after its
    indentation) belongs to the TLS listener: kept without the mark when tls, dropped otherwise,
    so the proxies of the cleartext scenarios run exactly the configuration they had before TLS
    scenarios existed (an idle TLS listener is not free: see nginx.conf.tmpl). The other marks
    work alike: "@log " lines are kept when "log" is in marks, "@nolog " lines when it is not."""
    active = set(marks) | ({"tls"} if tls else set())
    active |= set() if "log" in active else {"nolog"}
    with open(os.path.join(HERE, "anchors", template)) as f:
        lines = []
        for line in f:
            body = line.lstrip(" ")
            m = re.match(r"@(\w+) ", body)
            if m and m.group(1) in MARKS:
                if m.group(1) not in active:
                    continue
                line = line[:len(line) - len(body)] + body[m.end():]
            lines.append(line)
    return string.Template("".join(lines)).substitute(**kw)


def start_proxy(kind, ctx, workers=1, cpu=PROXY_CPU, valgrind=None, access_log=False, tls=False):
    """Writes the proxy's configuration for fresh ports and starts it. Returns (Proc, port).
    kind: a proxy ("cutover", "haproxy", "nginx", "nghttpx", "h2o"), its "-h2up" variant (the
    same configuration with HTTP/2 cleartext, prior knowledge, to the origins) or "origin" (the
    origin server alone: the ceiling row).
    tls: also listen with TLS (the "@tls " lines of the template) on ctx["tls_port"][port].
    access_log: one line per request to a file in the run's directory (the "@log " lines), its
    path in Proc.access_log."""
    d = ctx["dir"]
    port = free_port()
    base, h2up = (kind[:-len("-h2up")], True) if kind.endswith("-h2up") else (kind, False)
    if h2up and base not in H2UP_CAPABLE:
        raise RuntimeError(NO_H2UP.get(base, f"{base} has no HTTP/2 upstream variant"))
    log_path = os.path.join(d, f"{kind}-{port}-access.log") if access_log else None
    kw = dict(PORT=port, BLUE=ctx["blue"], GREEN=ctx["green"], DIR=d, tls=tls,
              marks=("log",) if access_log else (), ACCESS_LOG_PATH=log_path or "")
    if tls:
        kw.update(TLS_PORT=free_port(), CERT=ctx["tls"]["cert"], KEY=ctx["tls"]["key"],
                  CERT_PEM=ctx["tls"]["pem"])
        ctx.setdefault("tls_port", {})[port] = kw["TLS_PORT"]
    stdout_path = None
    if base == "cutover":
        path = os.path.join(d, f"{kind}-{port}.json")
        with open(path, "w") as f:
            f.write(render("cutover.json.tmpl", WORKERS=workers,
                           ACCESS_LOG="true" if access_log else "false",
                           POOL_PROTOCOL="h2c" if h2up else "http1", **kw))
        argv = [CUTOVER, "-c", path, "-w", str(workers)]
        stdout_path = log_path  # cutover writes its access log (and its events) to stdout
    elif base == "haproxy":
        path = os.path.join(d, f"{kind}-{port}.cfg")
        # HAProxy reserves two descriptors per connection: keep maxconn within ulimit -n.
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        maxconn = min(12000, (soft - 220) // 2) if soft != resource.RLIM_INFINITY else 12000
        with open(path, "w") as f:
            f.write(render("haproxy.cfg.tmpl", MAXCONN=maxconn,
                           SERVER_PROTO=" proto h2" if h2up else "", **kw))
        argv = ["haproxy", "-db", "-f", path]
        stdout_path = log_path  # "log stdout": HAProxy 2.6 does not write files itself
    elif base == "nginx":
        for sub in ("nginx-body", "nginx-proxy"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        h2c_port = free_port()
        kw["NGINX_H2C_LISTEN"] = f"listen 127.0.0.1:{h2c_port} http2;"
        path = os.path.join(d, f"nginx-{port}.conf")
        with open(path, "w") as f:
            f.write(render("nginx.conf.tmpl", **kw))
        argv = ["nginx", "-p", d, "-c", path]
        ctx.setdefault("h2c_port", {})[port] = h2c_port
    elif base == "nghttpx":
        args = render("nghttpx.args.tmpl", BACKEND_PROTO="h2" if h2up else "http/1.1",
                      **kw).split("\n")
        argv = ["nghttpx", "--conf=/dev/null"] + [a for a in args if a.strip()]
    elif base == "h2o":
        path = os.path.join(d, f"h2o-{port}.conf")
        with open(path, "w") as f:
            f.write(render("h2o.conf.tmpl", **kw))
        argv = ["h2o", "-c", path]
    elif base == "origin":
        argv = origin_argv(d, f"origin-direct-{port}", [(port, "direct")])
    else:
        raise ValueError(kind)
    if valgrind:
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={valgrind}",
                "--dump-line=no", "--dump-instr=no", "--trace-children=no"] + argv
    name = f"{kind}-{port}" + ("-callgrind" if valgrind else "")
    p = Proc(name, argv, cpu, d, stdout_path=stdout_path)
    p.access_log = log_path
    why = wait_ready(p, port, 60 if valgrind else 15)
    if why:
        p.stop()
        raise RuntimeError(f"{kind} did not start: {why} (see {d}/{name}.log)")
    return p, port


def h2o_origin_config(d, name, listens):
    """Writes an h2o 2.2.5 origin configuration (anchors/h2o-origin.conf.tmpl) serving each
    (port, answer) of listens from its own document root: "/" answers "answer\n" (index.html),
    /size/N answers N bytes of "x" for N in SIZES. Returns the configuration's path."""
    hosts = []
    for port, answer in listens:
        root = os.path.join(d, f"{name}-{answer}")
        os.makedirs(os.path.join(root, "size"), exist_ok=True)
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write(f"{answer}\n")
        for n in SIZES:
            with open(os.path.join(root, "size", str(n)), "wb") as f:
                f.write(b"x" * n)
        hosts += [f'  "{answer}":', "    listen:", "      host: 127.0.0.1", f"      port: {port}",
                  "    paths:", "      /:", f"        file.dir: {root}"]
    # As root, h2o switches to "nobody" unless told a user: keep the one we run as.
    user = pwd.getpwuid(os.getuid()).pw_name
    path = os.path.join(d, f"{name}.conf")
    with open(path, "w") as f:
        f.write(render("h2o-origin.conf.tmpl", DIR=d, NAME=name, HOSTS="\n".join(hosts),
                       USER_LINE=f"user: {user}" if os.getuid() == 0 else ""))
    return path


def origin_argv(d, name, listens, server=None, binary=None):
    """The command line of the origin server answering each (port, answer) of listens: bench/
    origin.c (one process, one --listen each) or h2o (ORIGIN=h2o, one host each)."""
    server = server or ORIGIN_SERVER
    if server == "h2o":
        return ["h2o", "-c", h2o_origin_config(d, name, listens)]
    if server == "origin":
        argv = [binary or ORIGIN]
        for port, answer in listens:
            argv += ["--listen", f"{port}:{answer}"]
        return argv
    raise ValueError(f"ORIGIN={server}: expected origin or h2o")


def start_origins(d, server=None, binary=None, cpu=LOAD_CPU):
    """Blue and green in one origin process (one event loop on the load CPU, not two).
    Returns [(proc, blue_port), (proc, green_port)]; callers stop the process once."""
    blue, green = free_port(), free_port()
    p = Proc("origins", origin_argv(d, "origins", [(blue, "blue"), (green, "green")],
                                    server=server, binary=binary), cpu, d)
    for port in (blue, green):
        why = wait_ready(p, port, 10)
        if why:
            p.stop()
            raise RuntimeError(f"origins did not start: {why}")
    return [(p, blue), (p, green)]


# ---------------------------------------------------------------- load generators

WRK_NUM = r"([\d.]+)(us|ms|s|m)"


def to_ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_load(argv, cpu, seconds):
    """Runs a load generator pinned to cpu, bounded to seconds + 15 s. Returns (stdout, cpu_s)."""
    cmd = (["taskset", "-c", cpu] if cpu is not None else []) + argv
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=seconds + 15)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        fail(f"load generator timed out: {' '.join(argv)}")
    # communicate() reaped it; children's rusage of this process holds it.
    return out, p.returncode


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wrk(port, path, conns, seconds, cpu=LOAD_CPU, threads=1):
    url = f"http://127.0.0.1:{port}{path}"
    c0 = children_cpu()
    out, rc = run_load(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency",
                        "--timeout", "10s", url], cpu, seconds)
    cpu_s = children_cpu() - c0
    r = {"rc": rc, "wrk_cpu_s": cpu_s}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", out)
    r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+{WRK_NUM}", out)
        r[f"p{pct}_ms"] = to_ms(m.group(1), m.group(2)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    if m:
        mult = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}.get(m.group(2), 1)
        r["bytes_per_s"] = float(m.group(1)) * mult
    if rc != 0 or r["requests"] == 0:
        r["raw"] = out[-2000:]
    return r


# Every TLS client offers only this TLS 1.3 suite, so every proxy runs the same cipher (HAProxy
# would otherwise pick its own preference, AES-256-GCM, while the others follow h2load's order).
TLS13_CIPHER = "TLS_AES_128_GCM_SHA256"
H2LOAD_TLS = {"tls_protocol": r"TLS Protocol: (\S+)", "cipher": r"Cipher: (\S+)",
              "temp_key": r"Server Temp Key: ([^\n]+)", "alpn": r"Application protocol: (\S+)"}


def parse_h2load(out):
    """The counts, the mean request and first-byte times and the TLS parameters h2load printed."""
    r = {}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed",
                  out)
    r["requests"] = int(m.group(4)) if m else 0
    r["failed"] = int(m.group(5)) if m else 0
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    r["non2xx"] = sum(int(x) for x in m.groups()[1:]) if m else 0
    for key, label in (("mean_ms", "time for request"), ("ttfb_ms", "time to 1st byte")):
        m = re.search(label + r":\s+" + WRK_NUM + r"\s+" + WRK_NUM + r"\s+" + WRK_NUM, out)
        r[key] = to_ms(m.group(5), m.group(6)) if m else None
    for key, rx in H2LOAD_TLS.items():
        m = re.search(rx, out)
        if m:
            r[key] = m.group(1).strip()
    return r


def h2load(url, conns, streams, seconds, cpu=LOAD_CPU):
    """h2load -t1 for seconds against url (http:// is h2c with prior knowledge, https:// is
    HTTP/2 over TLS with ALPN)."""
    c0 = children_cpu()
    tls = [f"--tls13-ciphers={TLS13_CIPHER}"] if url.startswith("https:") else []
    out, rc = run_load(["h2load", "-t1", f"-c{conns}", f"-m{streams}", f"-D{seconds}", *tls, url],
                       cpu, seconds)
    r = {"rc": rc, "wrk_cpu_s": children_cpu() - c0}
    r.update(parse_h2load(out))
    r["p50_ms"] = r["p99_ms"] = None
    r["socket_errors"] = r["failed"]
    if rc != 0 or r["requests"] == 0:
        r["raw"] = out[-2000:]
    return r


def handshakes(url, batch, loops, seconds, cpu=LOAD_CPU):
    """New TLS connections, one request each, for seconds: `loops` threads each run
    `h2load -n batch -c batch -m 1` again and again. h2load gives every client its own
    connection and SSL object and never reconnects one, so each connection is a full handshake
    (no session is offered for resumption); a client that reconnects (wrk, or h2load after
    Connection: close) would resume with the previous TLS 1.3 ticket instead. Bursts of `batch`
    stay far below every proxy's listen backlog. rps = successful connections / wall time."""
    c0 = children_cpu()
    t0 = time.time()
    deadline = t0 + seconds
    lock = threading.Lock()
    outs, rcs = [], []

    def loop():
        while time.time() < deadline:
            out, rc = run_load(["h2load", "-t1", f"-n{batch}", f"-c{batch}", "-m1",
                                f"--tls13-ciphers={TLS13_CIPHER}", url], cpu, 10)
            with lock:
                outs.append(out)
                rcs.append(rc)

    threads = [threading.Thread(target=loop) for _ in range(loops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    parsed = [parse_h2load(o) for o in outs]
    ok = sum(p["requests"] for p in parsed)
    r = {"rc": max(rcs, key=abs) if rcs else -1, "wrk_cpu_s": children_cpu() - c0,
         "h2load_runs": len(outs), "requests": ok, "failed": sum(p["failed"] for p in parsed),
         "non2xx": sum(p["non2xx"] for p in parsed), "rps": ok / wall if wall else 0.0,
         "p50_ms": None, "p99_ms": None}
    r["socket_errors"] = r["failed"]
    ttfb = [(p["ttfb_ms"], p["requests"]) for p in parsed if p.get("ttfb_ms") is not None]
    r["mean_ms"] = (sum(t * n for t, n in ttfb) / sum(n for _, n in ttfb)
                    if ttfb and sum(n for _, n in ttfb) else None)
    for key in H2LOAD_TLS:
        seen = sorted({p[key] for p in parsed if key in p})
        if seen:
            r[key] = ", ".join(seen)
    if r["rc"] != 0 or ok == 0:
        r["raw"] = (outs[-1] if outs else "no h2load run")[-2000:]
    return r


def sequential(port, n, path="/"):
    """n sequential GETs on one keep-alive connection. Returns (ok, bodies-count dict)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    req = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    buf = b""
    ok, seen = 0, {}
    for _ in range(n):
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise RuntimeError("connection closed")
            buf += d
        head, _, buf = buf.partition(b"\r\n\r\n")
        clen = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head).group(1))
        while len(buf) < clen:
            d = s.recv(65536)
            if not d:
                raise RuntimeError("connection closed")
            buf += d
        body, buf = buf[:clen], buf[clen:]
        if head.startswith(b"HTTP/1.1 2"):
            ok += 1
        seen[body.strip().decode(errors="replace")] = seen.get(body.strip().decode(errors="replace"), 0) + 1
    s.close()
    return ok, seen


# ---------------------------------------------------------------- measurements


def load(tool, port, path, conns, seconds, cpu=LOAD_CPU, threads=1):
    """One run of a load tool: wrk (HTTP/1.1), h2c (h2load, prior knowledge), h2tls (h2load,
    HTTP/2 over TLS) or handshakes (new TLS connections, see handshakes())."""
    if tool == "wrk":
        return wrk(port, path, conns, seconds, cpu=cpu, threads=threads)
    if tool == "h2c":
        return h2load(f"http://127.0.0.1:{port}{path}", conns, 10, seconds, cpu=cpu)
    if tool == "h2tls":
        return h2load(f"https://127.0.0.1:{port}{path}", conns, 10, seconds, cpu=cpu)
    if tool == "handshakes":
        return handshakes(f"https://127.0.0.1:{port}{path}", conns, P["hs_loops"], seconds,
                          cpu=cpu)
    raise ValueError(tool)


def access_lines(path, kind):
    """Access records in a proxy's access log file: its lines (cutover's stdout also carries its
    events, so there only the lines with "type":"access")."""
    with open(path, "rb") as f:
        data = f.read()
    if kind.startswith("cutover"):
        return data.count(b'"type":"access"')
    return data.count(b"\n")


def settled_lines(path, kind, quiet=0.3, timeout=5.0):
    """access_lines once the count has not moved for `quiet` seconds (cutover's log thread writes
    the workers' lines a little after the responses), at most `timeout` seconds."""
    last, t_last = access_lines(path, kind), time.time()
    deadline = t_last + timeout
    while time.time() < deadline:
        time.sleep(0.1)
        n = access_lines(path, kind)
        if n != last:
            last, t_last = n, time.time()
        elif time.time() - t_last >= quiet:
            break
    return last


def measured_wrk(proc, port, origins, path, conns, tool="wrk", cpu=LOAD_CPU, threads=1,
                 log=None):
    """Warm-up, then one measured run with CPU accounting of the proxy and the origins.
    log: (access log path, kind): count the lines the run added (r["log_lines"]), waiting until
    the file stops growing before reading the proxy's CPU, so deferred log writes are counted;
    the file is emptied afterwards (the next run counts from zero; disk stays small)."""
    load(tool, port, path, conns, P["warmup"], cpu=cpu, threads=threads)
    l0 = settled_lines(*log) if log else 0
    pids = sorted({o[0].pid for o in origins})
    t0 = time.time()
    c0 = cpu_ticks(proc.pid) if proc else 0
    u0, s0 = cpu_split(proc.pid) if proc else (0, 0)
    o0 = sum(cpu_ticks(pid) for pid in pids)
    r = load(tool, port, path, conns, P["duration"], cpu=cpu, threads=threads)
    wall = time.time() - t0
    if log:
        r["log_lines"] = settled_lines(*log) - l0
        with open(log[0], "rb") as f:
            head = f.read(65536).split(b"\n")
        rec = [ln for ln in head if b'"type":"access"' in ln or not log[1].startswith("cutover")]
        r["log_sample"] = (rec[0] if rec else b"").decode(errors="replace").strip()[:2000]
        os.truncate(log[0], 0)
    o1 = sum(cpu_ticks(pid) for pid in pids)
    if proc:
        c1 = cpu_ticks(proc.pid)
        cpu_s = (c1 - c0) / TICK
        r["proxy_cpu_s"] = cpu_s
        r["proxy_busy"] = cpu_s / wall
        r["cpu_us_per_req"] = cpu_s * 1e6 / r["requests"] if r["requests"] else None
        u1, s1 = cpu_split(proc.pid)
        if r["requests"]:
            r["user_us_per_req"] = (u1 - u0) / TICK * 1e6 / r["requests"]
            r["sys_us_per_req"] = (s1 - s0) / TICK * 1e6 / r["requests"]
    r["origin_cpu_s"] = (o1 - o0) / TICK
    # How busy the load CPU was (origins + load generator): near 1.0 means the load side, not
    # the proxy, may be the limit.
    r["load_cpu_busy"] = (r["origin_cpu_s"] + r["wrk_cpu_s"]) / wall
    r["wall_s"] = wall
    return r


def summarize(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def check_runs(label, runs):
    for r in runs:
        if r["requests"] == 0:
            fail(f"{label}: zero successful requests ({r.get('raw', '')[-300:]!r})")
        elif r.get("non2xx"):
            fail(f"{label}: {r['non2xx']} non-2xx responses")
        elif r.get("socket_errors"):
            log(f"{label}: {r['socket_errors']} socket errors (reported, not fatal)")


def check_tls(label, runs):
    """Every TLS run must have negotiated TLS 1.3, TLS13_CIPHER and ALPN h2. Returns what was
    negotiated."""
    seen = {k: sorted({r[k] for r in runs if r.get(k)}) for k in H2LOAD_TLS}
    if seen["tls_protocol"] != ["TLSv1.3"] or seen["alpn"] != ["h2"] or \
            seen["cipher"] != [TLS13_CIPHER]:
        fail(f"{label}: negotiated {seen['tls_protocol'] or 'no TLS'} {seen['cipher']} with ALPN "
             f"{seen['alpn'] or 'none'}; expected TLSv1.3 {TLS13_CIPHER} and h2")
    return {k: ", ".join(v) for k, v in seen.items()}


def check_log_lines(label, runs, conns):
    """access_log_all: every run must have written about one access line per request: wrk counts
    the responses it completed, the proxy also logs the requests in flight when wrk stopped
    (at most one per connection), hence the slack."""
    for r in runs:
        n, lines = r["requests"], r.get("log_lines")
        if lines is None:
            continue
        r["log_lines_per_req"] = lines / n if n else None
        try:
            json.loads(r.get("log_sample") or "")
            r["log_json"] = True
        except ValueError:
            r["log_json"] = False  # nghttpx and h2o 2.2 cannot escape values: JSON-ish only
        if abs(lines - n) > max(2 * conns + 10, 0.01 * n):
            fail(f"{label}: {lines} access log lines for {n} requests (expected about one per "
                 f"request)")


def scenario_throughput(ctx, name, path, conns, tool="wrk", proxies=None, ceiling=True,
                        access_log=False):
    """Runs one throughput scenario for every proxy and for the origin directly.

    Interleaved: every target is started first (idle ones cost nothing on the proxy CPU), then
    each repeat runs every target once, in a rotated order (repeat 1: A B C, repeat 2: B C A,
    ...), so that a noisy minute of the shared machine hits every proxy rather than one.
    access_log: every proxy writes one line per request to a file (checked per run)."""
    out = {}
    targets = (["origin"] if ceiling else []) + (proxies or PROXIES)
    started = {}
    try:
        for kind in targets:
            label = f"{name}/{kind}"
            base = kind[:-len("-h2up")] if kind.endswith("-h2up") else kind
            if tool == "h2c" and base not in H2C_CAPABLE:
                out[kind] = {"pending": "no h2c"}
                continue
            try:
                proc, port = start_proxy(kind, ctx, tls=tool in TLS_TOOLS,
                                         access_log=access_log and kind != "origin")
            except RuntimeError as e:
                fail(f"{label}: {e}")
                out[kind] = {"error": str(e)}
                continue
            if tool == "h2c" and kind == "nginx":
                port = ctx["h2c_port"][port]
            elif tool in TLS_TOOLS:
                port = ctx["tls_port"][port]
            started[kind] = (proc, port, [])
        order = list(started)
        unit = "handshake" if tool == "handshakes" else "req"
        for i in range(P["repeats"]):
            k = i % len(order) if order else 0
            for kind in order[k:] + order[:k]:
                proc, port, runs = started[kind]
                if not proc.alive():
                    continue
                r = measured_wrk(proc, port, ctx["origins"], path, conns, tool=tool,
                                 log=(proc.access_log, kind) if proc.access_log else None)
                runs.append(r)
                log(f"{name}/{kind} run {i + 1}: {r['rps']:.0f} {'handshakes' if unit == 'handshake' else 'req'}/s, p99 {r.get('p99_ms')} ms, "
                    f"proxy {r.get('cpu_us_per_req') or 0:.2f} us/{unit}, "
                    f"proxy busy {r.get('proxy_busy', 0):.2f}, load cpu busy {r['load_cpu_busy']:.2f}")
                if not proc.alive():
                    fail(f"{name}/{kind}: {kind} died during the run (exit {proc.p.returncode})")
        for kind, (proc, port, runs) in started.items():
            label = f"{name}/{kind}"
            check_runs(label, runs)
            if proc.access_log:
                check_log_lines(label, runs, conns)
            out[kind] = {"runs": runs}
            if tool in TLS_TOOLS:
                out[kind]["tls"] = check_tls(label, runs)
            for key in ("rps", "p50_ms", "p99_ms", "mean_ms", "cpu_us_per_req", "bytes_per_s",
                        "proxy_busy", "load_cpu_busy", "log_lines_per_req", "user_us_per_req",
                        "sys_us_per_req"):
                s = summarize(runs, key)
                if s:
                    out[kind][key] = s
    finally:
        for kind, (proc, port, runs) in started.items():
            stop_judged(proc, f"{name}/{kind}", kind)
    return out


def scenario_split(ctx):
    """Correctness check: 100 sequential requests; counts blue/green answers."""
    out = {}
    for kind in PROXIES:
        try:
            proc, port = start_proxy(kind, ctx)
        except RuntimeError as e:
            fail(f"split/{kind}: {e}")
            continue
        try:
            ok, seen = sequential(port, P["split_requests"])
            out[kind] = {"ok": ok, "answers": seen}
            if ok != P["split_requests"]:
                fail(f"split/{kind}: only {ok}/{P['split_requests']} 2xx")
            log(f"split/{kind}: {seen}")
        except (OSError, RuntimeError, AttributeError) as e:
            fail(f"split/{kind}: {e}")
        finally:
            stop_judged(proc, f"split/{kind}", kind)
    return out


def open_idle(port, n, window=200, timeout=120):
    """Opens n keep-alive connections, does one GET on each, leaves them open.
    Returns (sockets, ok count)."""
    sel = selectors.DefaultSelector()
    req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    socks, ok, started, inflight = [], 0, 0, 0
    deadline = time.time() + timeout
    while (started < n or inflight) and time.time() < deadline:
        while started < n and inflight < window:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE, [b"", False])
            started += 1
            inflight += 1
        for key, ev in sel.select(timeout=1.0):
            s, st = key.fileobj, key.data
            if ev & selectors.EVENT_WRITE and not st[1]:
                try:
                    s.send(req)
                except OSError:
                    sel.unregister(s)
                    inflight -= 1
                    continue
                st[1] = True
                sel.modify(s, selectors.EVENT_READ, st)
                continue
            try:
                d = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            st[0] += d
            done = not d or (b"\r\n\r\n" in st[0] and st[0].endswith(b"\n") and
                             len(st[0].split(b"\r\n\r\n", 1)[1]) > 0)
            if done:
                if st[0].startswith(b"HTTP/1.1 2") or st[0].startswith(b"HTTP/1.0 2"):
                    ok += 1
                sel.unregister(s)
                inflight -= 1
    sel.close()
    return socks, ok


def count_closed(socks):
    """Connections the proxy closed (readable with EOF) while they were meant to stay idle."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed = len(sel.select(timeout=0.2))
    sel.close()
    return closed


def scenario_idle(ctx):
    out = {}
    n = P["idle_conns"]
    for kind in PROXIES:
        label = f"idle/{kind}"
        try:
            proc, port = start_proxy(kind, ctx)
        except RuntimeError as e:
            fail(f"{label}: {e}")
            out[kind] = {"error": str(e)}
            continue
        socks = []
        try:
            wrk(port, "/", P["conns_small"], P["warmup"])  # same warm-up for every proxy
            time.sleep(0.5)
            before = rss_kib(proc.pid)
            socks, ok = open_idle(port, n)
            time.sleep(1.0)
            after = rss_kib(proc.pid)
            closed = count_closed(socks)
            r = {"connections": n, "ok": ok, "rss_before_kib": before, "rss_after_kib": after,
                 "closed_early": closed,
                 "bytes_per_conn": (after - before) * 1024 / ok if ok else None}
            out[kind] = r
            log(f"{label}: {ok}/{n} ok, RSS {before} -> {after} KiB, "
                f"{r['bytes_per_conn'] or 0:.0f} B/conn, {closed} closed early")
            if ok == 0:
                fail(f"{label}: zero successful requests")
            elif ok < n:
                fail(f"{label}: only {ok}/{n} connections answered 2xx")
            if not proc.alive():
                fail(f"{label}: {kind} died (exit {proc.p.returncode})")
        finally:
            for s in socks:
                s.close()
            stop_judged(proc, f"idle/{kind}", kind)
    return out


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def scenario_callgrind(ctx):
    out = {}
    n1, n2 = P["cg_counts"]
    for kind in PROXIES:
        label = f"callgrind/{kind}"
        totals = []
        try:
            for n in (n1, n2):
                cg = os.path.join(ctx["dir"], f"callgrind-{kind}-{n}.out")
                t0 = time.time()
                proc, port = start_proxy(kind, ctx, valgrind=cg)
                try:
                    ok, _ = sequential(port, n)
                    if ok != n:
                        fail(f"{label}: {ok}/{n} 2xx")
                finally:
                    stop_judged(proc, label, kind, grace=60)
                totals.append(callgrind_total(cg))
                log(f"{label}: {n} requests -> {totals[-1]} instructions ({time.time() - t0:.0f} s)")
            per = (totals[1] - totals[0]) / (n2 - n1)
            out[kind] = {"counts": [n1, n2], "totals": totals, "instr_per_req": per}
            log(f"{label}: {per:.0f} instructions/request")
        except (RuntimeError, OSError) as e:
            fail(f"{label}: {e}")
            out[kind] = {"error": str(e)}
    return out


def scenario_scaling(ctx):
    """cutover -w 1 and -w 2, nothing pinned: what a second worker buys on this machine."""
    out = {}
    for workers in (1, 2):
        label = f"scaling/cutover-w{workers}"
        try:
            proc, port = start_proxy("cutover", ctx, workers=workers, cpu=None)
        except RuntimeError as e:
            fail(f"{label}: {e}")
            continue
        try:
            runs = []
            for _ in range(P["repeats"]):
                r = measured_wrk(proc, port, ctx["origins"], "/", P["conns_small"] * 2,
                                 cpu=None, threads=2)
                runs.append(r)
                log(f"{label}: {r['rps']:.0f} req/s, proxy busy {r['proxy_busy']:.2f} CPUs")
            check_runs(label, runs)
            out[f"w{workers}"] = {"runs": runs}
            for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "proxy_busy", "load_cpu_busy"):
                s = summarize(runs, k)
                if s:
                    out[f"w{workers}"][k] = s
        finally:
            stop_judged(proc, f"scaling/w{workers}", "cutover")
    return out


def scenario_switch(ctx):
    """Switch latency: set-weights ack -> first response from the new pool on each worker, in
    the three modes of switch_latency.py (durable, memory, baseline). cutover -w 2, its own
    origins, nothing pinned (see bench/README.md, "Switch latency")."""
    sys.path.insert(0, HERE)
    import switch_latency
    out = {}
    for mode in ("durable", "memory", "baseline"):
        try:
            r = switch_latency.run(CUTOVER, ORIGIN, ctx["dir"], P["switches"], mode,
                                   time_limit=300.0)
        except (RuntimeError, OSError) as e:
            fail(f"switch/{mode}: {e}")
            out[mode] = {"error": str(e)}
            continue
        out[mode] = r
        if r["timeouts"] or r["stale_responses"]:
            fail(f"switch/{mode}: {r['timeouts']} switches timed out, "
                 f"{r['stale_responses']} stale responses")
        log(f"switch/{mode}: post-ack all workers p50 {r['post_ack_ms']['overall']['p50']} "
            f"p99 {r['post_ack_ms']['overall']['p99']} ms")
    return out


def scenario_access_log(ctx):
    """cutover with its access log on (JSON lines to a file), small GET, for the log's cost."""
    kind = "cutover"
    try:
        proc, port = start_proxy(kind, ctx, access_log=True)
    except RuntimeError as e:
        fail(f"access_log/cutover: {e}")
        return {}
    try:
        runs = [measured_wrk(proc, port, ctx["origins"], "/", P["conns_small"])
                for _ in range(P["repeats"])]
        check_runs("access_log/cutover", runs)
        res = {"runs": runs}
        for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "proxy_busy"):
            s = summarize(runs, k)
            if s:
                res[k] = s
        log(f"access_log/cutover: {res['rps']['median']:.0f} req/s")
        return {"cutover+log": res}
    finally:
        stop_judged(proc, "access_log/cutover", "cutover")


def h2up_proxies():
    """The "-h2up" variants of the proxies this run compares (PROXIES), those that have one."""
    return [f"{p}-h2up" for p in H2UP_CAPABLE if p in PROXIES or f"{p}-h2up" in PROXIES]


def rate_load(url, h1, rate, seconds, log_file=None, cpu=LOAD_CPU):
    """h2load at a fixed offered rate (open loop): rate * seconds requests at `rate` req/s in
    total. h2load's per-connection timer ticks every max(10 ms, 1/rps) and submits at once what
    the elapsed time allows; what a connection cannot send yet waits in h2load, and that wait is
    not in its latency (it starts the clock when it sends).
    h1 (h2load --h1 -m1, one request in flight per connection): at most P["lat_client_rps"]
    (100) req/s per connection, i.e. one request per tick, so a request waits only behind a
    response slower than its connection's interval (>= 10 ms; counted as "late"); the connection
    count grows with the rate (capped at P["lat_max_conns"]).
    h2c (prior knowledge, -m100): P["conns_small"] connections, each sends its tick's requests
    as concurrent streams (waits only with 100 in flight).
    Connections are made a few per millisecond (-r N --rate-period 1ms) over about
    10 ms, so the connections' ticks are spread over the 10 ms instead of all firing together.
    log_file: h2load's per-request log (start µs, status, duration µs)."""
    if h1:
        conns = min(P["lat_max_conns"], max(1, math.ceil(rate / P["lat_client_rps"])))
    else:
        conns = P["conns_small"]
    per = rate / conns
    n = max(conns, round(rate * seconds))
    argv = ["h2load", "-t1", f"-c{conns}", f"-n{n}", f"--rps={per:.4f}",
            f"-r{max(1, math.ceil(conns / 10))}", "--rate-period=1ms"]
    argv += ["--h1", "-m1"] if h1 else ["-m100"]
    if log_file:
        if os.path.exists(log_file):
            os.remove(log_file)  # h2load appends
        argv.append(f"--log-file={log_file}")
    c0 = children_cpu()
    # a rate the machine cannot sustain takes longer than `seconds`: that is a result (the
    # achieved rate says it), not a hung load generator
    out, rc = run_load(argv + [url], cpu, 4 * seconds)
    r = {"rc": rc, "wrk_cpu_s": children_cpu() - c0, "conns": conns, "client_rps": per,
         "sent": n}
    r.update(parse_h2load(out))
    m = re.search(r"finished in ([\d.]+)(\w+),", out)
    r["h2load_s"] = to_ms(m.group(1), m.group(2)) / 1000 if m else None
    if rc != 0 or r["requests"] == 0:
        r["raw"] = out[-2000:]
    return r


def nearest_rank(sorted_vals, pct):
    if not sorted_vals:
        return None
    return sorted_vals[max(0, math.ceil(pct / 100 * len(sorted_vals)) - 1)]


def latency_cell(proc, port, ctx, h1, rate, tag):
    """One latency cell: warm-up at the same rate, then P["duration"] s at `rate` with h2load's
    per-request log; percentiles over every request of the cell (nearest rank)."""
    url = f"http://127.0.0.1:{port}/"
    rate_load(url, h1, rate, P["warmup"])
    lf = os.path.join(ctx["dir"], f"latency-{tag}.tsv")
    pids = sorted({o[0].pid for o in ctx["origins"]})
    t0 = time.time()
    c0, o0 = cpu_ticks(proc.pid), sum(cpu_ticks(pid) for pid in pids)
    r = rate_load(url, h1, rate, P["duration"], log_file=lf)
    wall = time.time() - t0
    c1, o1 = cpu_ticks(proc.pid), sum(cpu_ticks(pid) for pid in pids)
    durations, non2xx = [], 0
    try:
        with open(lf) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) < 3:
                    continue
                st = int(parts[1])
                if not 200 <= st < 300:
                    non2xx += 1
                durations.append(int(parts[2]))
        os.remove(lf)  # ~30 bytes a request: not kept
    except (OSError, ValueError) as e:
        fail(f"latency/{tag}: cannot read h2load's log: {e}")
    durations.sort()
    n = len(durations)
    interval_us = max(1e4, 1e6 / r["client_rps"]) if r["client_rps"] else 0
    ms = lambda v: v / 1000.0 if v is not None else None  # noqa: E731
    cpu_s = (c1 - c0) / TICK
    cell = {"offered_rps": rate, "conns": r["conns"], "client_rps": r["client_rps"],
            "requests": n, "achieved_rps": n / r["h2load_s"] if r.get("h2load_s") else None,
            "non2xx": non2xx,
            "failed": r.get("failed", 0), "rc": r["rc"],
            "p50_ms": ms(nearest_rank(durations, 50)), "p99_ms": ms(nearest_rank(durations, 99)),
            "p999_ms": ms(nearest_rank(durations, 99.9)), "max_ms": ms(durations[-1] if n else None),
            "mean_ms": ms(sum(durations) / n if n else None),
            # h1: a response slower than its connection's tick delayed that connection's next
            # request, whose wait in h2load is not in the percentiles (h2c: streams, no wait)
            "slower_than_interval": sum(1 for d in durations if d > interval_us) if h1 else None,
            "cpu_us_per_req": cpu_s * 1e6 / n if n else None, "proxy_busy": cpu_s / wall,
            "load_cpu_busy": ((o1 - o0) / TICK + r["wrk_cpu_s"]) / wall}
    if "raw" in r:
        cell["raw"] = r["raw"]
    return cell


def capacity(ctx, proto):
    """The best anchor's request rate for proto ("h1": wrk small GET, "h2c": h2load -m10): the
    median of this run's small / h2c scenario when it ran, else a short run per anchor now.
    Anchors: every proxy of PROXIES but cutover (cutover itself when it is the only one).
    Returns (req/s, anchor, where it came from)."""
    sc, tool = ("small", "wrk") if proto == "h1" else ("h2c", "h2c")
    anchors = [k for k in PROXIES if not k.startswith("cutover")] or list(PROXIES)
    if proto == "h2c":
        anchors = [k for k in anchors if k in H2C_CAPABLE]
    src = ctx.get("results", {}).get(sc) or {}
    vals = {k: med(src[k], "rps") for k in anchors if med(src.get(k, {}), "rps")}
    if vals:
        best = max(vals, key=vals.get)
        return vals[best], best, f"median of this run's {sc} scenario"
    for kind in anchors:
        try:
            proc, port = start_proxy(kind, ctx)
        except RuntimeError as e:
            fail(f"latency/capacity/{kind}: {e}")
            continue
        try:
            if tool == "h2c" and kind == "nginx":
                port = ctx["h2c_port"][port]
            load(tool, port, "/", P["conns_small"], P["warmup"])
            vals[kind] = load(tool, port, "/", P["conns_small"], P["cap_seconds"])["rps"]
            log(f"latency/capacity/{proto}/{kind}: {vals[kind]:.0f} req/s")
        finally:
            stop_judged(proc, f"latency/capacity/{proto}/{kind}", kind)
    if not vals:
        return None, None, "no anchor answered"
    best = max(vals, key=vals.get)
    return vals[best], best, (f"{'wrk' if tool == 'wrk' else 'h2load -m10'} -c{P['conns_small']} "
                              f"for {P['cap_seconds']} s per anchor, before the cells")


def scenario_latency(ctx):
    """Latency at a fixed offered rate (no coordinated omission from a closed loop): for HTTP/1.1
    (h2load --h1) and h2c, at each fraction of P["lat_fractions"] of the best anchor's
    capacity, every proxy (and the origin alone, the floor) gets the same offered rate for
    P["duration"] s; p50/p99/p99.9/max over every request. Interleaved like the throughput
    scenarios (one cell per proxy and rate, the order rotated per rate)."""
    out = {}
    for proto in ("h1", "h2c"):
        cap, anchor, src = capacity(ctx, proto)
        if not cap:
            fail(f"latency/{proto}: no capacity to derive a rate from ({src})")
            continue
        rows = {}
        out[proto] = {"capacity_rps": cap, "anchor": anchor, "capacity_source": src,
                      "rows": rows}
        log(f"latency/{proto}: capacity {cap:.0f} req/s ({anchor}, {src})")
        started = {}
        try:
            # "origin": the origin alone in the proxy's seat at the same rate, the floor that
            # h2load, the origin and the machine impose.
            for kind in ["origin"] + PROXIES:
                if proto == "h2c" and kind not in H2C_CAPABLE | {"origin"}:
                    continue
                try:
                    proc, port = start_proxy(kind, ctx)
                except RuntimeError as e:
                    fail(f"latency/{proto}/{kind}: {e}")
                    rows[kind] = {"error": str(e)}
                    continue
                if proto == "h2c" and kind == "nginx":
                    port = ctx["h2c_port"][port]
                started[kind] = (proc, port)
            order = list(started)
            for i, frac in enumerate(P["lat_fractions"]):
                k = i % len(order) if order else 0
                for kind in order[k:] + order[:k]:
                    proc, port = started[kind]
                    if not proc.alive():
                        continue
                    pc = f"{round(frac * 100)}"
                    label = f"latency/{proto}/{kind}/{pc}%"
                    cell = latency_cell(proc, port, ctx, proto == "h1", cap * frac,
                                        f"{proto}-{kind}-{pc}")
                    rows.setdefault(kind, {})[pc] = cell
                    log(f"{label}: offered {fmt(cell['offered_rps'])} achieved "
                        f"{fmt(cell['achieved_rps'])} req/s, p50 {fmt(cell['p50_ms'], 3)} p99 "
                        f"{fmt(cell['p99_ms'], 3)} p99.9 {fmt(cell['p999_ms'], 3)} ms, "
                        f"{cell['conns']} conns")
                    if cell["requests"] == 0:
                        fail(f"{label}: zero requests ({cell.get('raw', '')[-300:]!r})")
                    elif cell["non2xx"] or cell["failed"]:
                        fail(f"{label}: {cell['non2xx']} non-2xx, {cell['failed']} failed")
                    if not proc.alive():
                        fail(f"{label}: {kind} died during the run (exit {proc.p.returncode})")
        finally:
            for kind, (proc, port) in started.items():
                rc = proc.stop()
                if rc not in (0, -signal.SIGTERM, 143) and kind.startswith("cutover"):
                    fail(f"latency/{proto}/{kind}: cutover exited with {rc} on SIGTERM")
    return out


def scenario_callgrind_pairs(ctx):
    """Instructions per request per protocol pair for every proxy (bench/instr.py's matrix):
    PROXIES and the -h2up variants of HAProxy and nghttpx, pairs h1-h1, h2c-h1, h1-h2c,
    h2c-h2c, h2tls-h1; the run's origins; two callgrind runs at a time (not timed)."""
    sys.path.insert(0, HERE)
    import instr
    proxies = list(PROXIES) + [f"{p}-h2up" for p in ("haproxy", "nghttpx") if p in PROXIES]
    n1, n2 = P["cg_pair_counts"]
    d = os.path.join(ctx["dir"], "instr")
    os.makedirs(d, exist_ok=True)
    res = instr.matrix(proxies, list(instr.PAIRS), n1, n2,
                       {"dir": d, "blue": ctx["blue"], "green": ctx["green"], "tls": ctx["tls"]},
                       jobs=max(1, min(2, NCPU)), cutover=CUTOVER, say=log)
    for pair, row in res["cells"].items():
        for name, cell in row.items():
            if "error" in cell:
                fail(f"callgrind_pairs/{pair}/{name}: {cell['error']}")
    return res


# ---------------------------------------------------------------- report


def versions():
    def first(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unavailable"
    git = first(["git", "-C", ROOT, "describe", "--always", "--dirty"])
    return {
        "cutover": f"cutover (git {git})",
        "haproxy": first(["haproxy", "-v"]),
        "nginx": first(["nginx", "-v"]),
        "nghttpx": first(["nghttpx", "-v"]),
        "h2o": first(["h2o", "-v"]),
        "wrk": first(["wrk", "-v"]),
        "h2load": first(["h2load", "--version"]),
        "valgrind": first(["valgrind", "--version"]),
    }


def effective_cpus(seconds=1.0):
    """Spins one process per CPU for a second and sums the CPU time they got. On an
    oversubscribed VM this is well below the CPU count: then req/s are bounded by the total."""
    code = ("import time,os\nt=time.time()\nwhile time.time()-t<%s: pass\n"
            "print(sum(os.times()[:2]))" % seconds)
    ps = [subprocess.Popen(["taskset", "-c", str(c), sys.executable, "-c", code],
                           stdout=subprocess.PIPE, text=True) for c in range(NCPU)]
    total = 0.0
    for p in ps:
        out, _ = p.communicate(timeout=seconds + 20)
        total += float(out.strip() or 0)
    return round(total / seconds, 2)


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"kernel": os.uname().release, "cpu_model": model, "cpus": NCPU,
            "effective_cpus": effective_cpus(),
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def med(entry, key):
    s = entry.get(key) if isinstance(entry, dict) else None
    return s["median"] if s else None


def spread(entry, key, digits=0):
    s = entry.get(key) if isinstance(entry, dict) else None
    if not s:
        return "n/a"
    if s["n"] == 1:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}..{fmt(s['max'], digits)})"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def origin_us(entry):
    """Median CPU µs per request of the two origins during a proxied run."""
    vals = [r["origin_cpu_s"] * 1e6 / r["requests"] for r in entry.get("runs", []) if r.get("requests")]
    return statistics.median(vals) if vals else None


def table_throughput(title, res, note, mib=False, unit="req", p50_hdr="p50 ms", ref="haproxy",
                     extra=None):
    """unit: what rps and the CPU column count ("req", or "handshake" for tls_handshakes);
    p50_hdr: the header of the p50 column (h2load rows fill it with a mean); ref: the row the
    "×" columns divide by; extra: (header, function(kind, entry) -> text), one more column."""
    lines = [f"### {title}", "", note, ""]
    refname = "HAProxy" if ref == "haproxy" else ref
    hdr = f"| server | {unit}/s median (min..max) | × {refname} | × ceiling | {p50_hdr} | p99 ms | " \
          f"proxy CPU µs/{unit} | × {refname} | proxy CPU busy | origins CPU µs/req | load CPU busy |"
    if mib:
        hdr = hdr.replace(f"| {p50_hdr}", f"| MiB/s | {p50_hdr}")
    if extra:
        hdr += f" {extra[0]} |"
    lines += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
    ha = res.get(ref, {})
    ceil = res.get("origin", {})
    for kind, e in res.items():
        name = "origin direct (ceiling)" if kind == "origin" else kind
        if "pending" in e:
            lines.append(f"| {name} | pending ({e['pending']}) |" + " |" * (hdr.count("|") - 3))
            continue
        if "error" in e:
            lines.append(f"| {name} | error: {e['error']} |" + " |" * (hdr.count("|") - 3))
            continue
        rps = med(e, "rps")
        p50 = med(e, "p50_ms") if med(e, "p50_ms") is not None else med(e, "mean_ms")
        row = [name, spread(e, "rps"), ratio(rps, med(ha, "rps")),
               ratio(rps, med(ceil, "rps")) if kind != "origin" else "1.00"]
        if mib:
            bps = med(e, "bytes_per_s")
            row.append(fmt(bps / 1048576 if bps else None))
        row += [fmt(p50, 2), fmt(med(e, "p99_ms"), 2),
                spread(e, "cpu_us_per_req", 2),
                ratio(med(e, "cpu_us_per_req"), med(ha, "cpu_us_per_req")) if kind != "origin" else "–",
                fmt(med(e, "proxy_busy"), 2),
                fmt(origin_us(e), 2) if kind != "origin" else "–",
                fmt(med(e, "load_cpu_busy"), 2)]
        if extra:
            row.append(extra[1](kind, e))
        lines.append("| " + " | ".join(row) + " |")
    lines += [""] + paired_note(res, unit, ref)
    return lines + [""]


def paired(e, ha, key):
    """Median over the repeats of e's run divided by HAProxy's run of the same repeat (the two ran
    next to each other: interleaved), or None."""
    rs = [a[key] / b[key] for a, b in zip(e.get("runs", []), ha.get("runs", []))
          if a.get(key) and b.get(key)]
    return statistics.median(rs) if rs else None


def paired_note(res, unit, ref="haproxy"):
    """Per proxy, the paired ratios to HAProxy (or ref): a shared host's slow drift cancels in
    each pair, where the ratio of the medians above mixes repeats run minutes apart."""
    ha = res.get(ref, {})
    parts = []
    for kind, e in res.items():
        if kind in ("origin", ref) or "runs" not in e:
            continue
        vals = [(lbl, paired(e, ha, key)) for lbl, key in
                ((f"{unit}/s", "rps"), ("p99", "p99_ms"), (f"CPU µs/{unit}", "cpu_us_per_req"))]
        txt = ", ".join(f"{lbl} {v:.2f}" for lbl, v in vals if v is not None)
        if txt:
            parts.append(f"{kind}: {txt}")
    if not parts or "runs" not in ha:
        return []
    refname = "HAProxy" if ref == "haproxy" else ref
    return [f"Paired × {refname} (median over the repeats of each proxy's run divided by "
            f"{refname}'s run of the same repeat, which ran next to it): " + "; ".join(parts) + "."]


def tls_params(res):
    """One line with what each proxy negotiated (from h2load's output)."""
    parts = [f"{k}: {e['tls']['tls_protocol']} {e['tls']['cipher']}, {e['tls']['temp_key']}, "
             f"ALPN {e['tls']['alpn']}" for k, e in res.items() if e.get("tls")]
    return (["Negotiated: " + "; ".join(parts) + ".", ""]) if parts else []


def origin_label(results):
    return (results.get("origin") or {}).get("label") or \
        results.get("params", {}).get("origin") or ORIGIN_LABELS["origin"]


def table_latency(proto, e, olabel):
    """One latency table (h1 or h2c): a row per proxy and offered rate."""
    tool = "h2load --h1 -m1" if proto == "h1" else "h2load -m100 (h2c, prior knowledge)"
    L = [f"### Latency at a fixed offered rate, {'HTTP/1.1' if proto == 'h1' else 'h2c'} "
         f"({tool} --rps, {P['duration']} s per cell)", "",
         f"Offered rate = {', '.join(f'{round(f * 100)} %' for f in P['lat_fractions'])} of the "
         f"best anchor's capacity, {fmt(e['capacity_rps'])} req/s ({e['anchor']}, "
         f"{e['capacity_source']}); the same rate for every proxy, and for the origin alone in "
         f"the proxy's seat (the floor of h2load + origin + machine). Open loop: h2load sends "
         f"on schedule whether or not earlier responses came back; its per-connection timer "
         f"ticks every 10 ms at most, connections are made over ~10 ms so their ticks are "
         f"spread. " + (f"HTTP/1.1: at most {P['lat_client_rps']} req/s per connection (one "
                        f"request per tick), so the connection count grows with the rate; a "
                        f"response slower than its connection's interval delays that "
                        f"connection's next request, whose wait in h2load is not counted: "
                        f"column \"late\" counts them (0 = no coordinated omission). "
                        if proto == "h1" else
                        f"h2c: {P['conns_small']} connections, each tick's requests sent as "
                        f"concurrent streams (up to 100 per connection), so none waits in "
                        f"h2load. ") +
         f"Latency = h2load's per-request log (request sent -> response complete), "
         f"percentiles over every request of the cell (nearest rank). Achieved = responses / "
         f"h2load's run time. Origin: {olabel}.", "",
         "| server | offered | offered req/s | achieved req/s | conns | p50 ms | p99 ms | "
         "p99.9 ms | max ms | proxy CPU µs/req | proxy CPU busy | late |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind, cells in e["rows"].items():
        name = "origin direct (floor)" if kind == "origin" else kind
        if "error" in cells:
            L.append(f"| {name} | error: {cells['error']} |" + " |" * 10)
            continue
        for pc, c in cells.items():
            L.append(f"| {name} | {pc} % | {fmt(c['offered_rps'])} | {fmt(c['achieved_rps'])} | "
                     f"{c['conns']} | {fmt(c['p50_ms'], 3)} | {fmt(c['p99_ms'], 3)} | "
                     f"{fmt(c['p999_ms'], 3)} | {fmt(c['max_ms'], 2)} | "
                     f"{fmt(c['cpu_us_per_req'], 2)} | {fmt(c['proxy_busy'], 2)} | "
                     f"{fmt(c['slower_than_interval'])} |")
    return L + [""]


def base_ratio(R, sc, key):
    """extra column for the h2up and access_log_all tables: the proxy's CPU µs/req divided by
    the same proxy's in scenario sc of this run (HTTP/1.1 upstream / no access log)."""
    def col(kind, e):
        base = kind[:-len("-h2up")] if kind.endswith("-h2up") else kind
        return ratio(med(e, key), med(R.get(sc, {}).get(base, {}), key))
    return col


def cpu_split_table(R):
    """Where each proxy's CPU per request goes: its own code and libraries (user) and the
    kernel's work for it (system: the system calls and TCP). The kernel part has a floor every
    proxy pays (two reads and two writes per proxied exchange, the event wait), so the user part
    is where one proxy can be cheaper than another."""
    scen = [("small", "h1 → h1"), ("h2c", "h2c → h1"), ("h2tls", "h2 TLS → h1"),
            ("h1_h2up", "h1 → h2c"), ("h2c_h2up", "h2c → h2c")]
    rows = []
    for key, label in scen:
        for name, e in (R.get(key) or {}).items():
            if not isinstance(e, dict) or "user_us_per_req" not in e or name == "origin":
                continue
            u, k = e["user_us_per_req"]["median"], e["sys_us_per_req"]["median"]
            rows.append(f"| {label} | {name} | {u:.2f} | {k:.2f} | {u + k:.2f} | "
                        f"{100 * k / (u + k) if u + k else 0:.0f} % |")
    if not rows:
        return []
    return ["### CPU per request: the proxy's own (user) and the kernel's (system)", "",
            "Medians of the throughput runs above (/proc/PID/stat utime and stime over the "
            "measured run, divided by the requests). The system part is the kernel's work for the "
            "proxy's sockets: a floor every proxy pays for the same exchanges.", "",
            "| pair | server | user µs/req | system µs/req | total | system share |",
            "|---|---|---|---|---|---|"] + rows + [""]


def report(results):
    R = results["scenarios"]
    olabel = origin_label(results)
    smoke = results.get("smoke", SMOKE)
    L = [f"## Run of {results['date']}" + (" (SMOKE: harness check only, numbers meaningless)"
                                           if smoke else ""), ""]
    m = results["machine"]
    L += [f"- machine: {m['cpu_model']}, {m['cpus']} CPUs, kernel {m['kernel']}, ulimit -n {m['nofile']}",
          f"- effective CPUs when both are busy (a spinner pinned on each, CPU time / wall): "
          f"{m['effective_cpus']}" + (" — the CPUs are oversubscribed by the host: proxy and load "
                                     "generator share about this much CPU in total, so req/s is "
                                     "bounded by the sum; compare CPU µs/request and instructions/"
                                     "request first." if m['effective_cpus'] < NCPU - 0.3 else ""),
          f"- origin (blue and green, and the ceiling rows): {olabel}",
          f"- parameters: {results['params']}",
          "- versions:"]
    L += [f"  - {k}: `{v}`" for k, v in results["versions"].items()]
    L += ["- layout: each proxy one worker pinned to CPU 0; wrk/h2load and both origins on CPU 1; "
          "1 s warm-up before each measured run; median of the repeats, (min..max).", ""]
    if "split" in R:
        L += ["### 90/10 split check (100 sequential requests)", "", "| server | answers |", "|---|---|"]
        for k, v in R["split"].items():
            L.append(f"| {k} | {', '.join(f'{a}: {n}' for a, n in sorted(v['answers'].items()))} |")
        L += [""]
    if "small" in R:
        L += table_throughput(
            f"HTTP/1.1 keep-alive small GET (wrk -t1 -c{P['conns_small']}, {P['duration']} s)",
            R["small"], "Body \"blue\\n\"/\"green\\n\". Ceiling: the origin itself on CPU 0.")
    if "access_log" in R and R["access_log"]:
        e = R["access_log"]["cutover+log"]
        base = R.get("small", {}).get("cutover", {})
        L += ["### cutover with its access log on (small GET, JSON lines to a file)", "",
              f"{spread(e, 'rps')} req/s ({ratio(med(e, 'rps'), med(base, 'rps'))} × cutover without log), "
              f"{spread(e, 'cpu_us_per_req', 2)} CPU µs/req.", ""]
    if "access_log_all" in R:
        L += table_throughput(
            f"Access log on in every proxy, HTTP/1.1 small GET (wrk -t1 -c{P['conns_small']}, "
            f"{P['duration']} s)", R["access_log_all"],
            "Every proxy writes one line per request to a file in the run's directory: cutover "
            "its JSON access log (stdout redirected to the file), HAProxy `log stdout format raw` "
            "with a JSON log-format (stdout redirected to the file: HAProxy 2.6 cannot write a "
            "file itself), nginx `access_log` with `log_format escape=json`, nghttpx "
            "`--accesslog-file` with a JSON-shaped `--accesslog-format` (values not escaped), h2o "
            "`access-log` with a JSON-shaped format (h2o 2.2 cannot escape). Each run is checked "
            "to have written about one line per request (the column \"log lines/req\"). "
            "\"CPU × no log\": CPU µs/req divided by the same proxy's in the small GET table of "
            "this run.",
            extra=("log lines/req | CPU × no log",
                   lambda k, e: f"{fmt(med(e, 'log_lines_per_req'), 3)} | "
                                f"{base_ratio(R, 'small', 'cpu_us_per_req')(k, e)}"))
    if "large" in R:
        L += table_throughput(
            f"HTTP/1.1 1 MiB responses (wrk -t1 -c{P['conns_large']}, {P['duration']} s)",
            R["large"], "GET /size/1048576.", mib=True)
    if "h2c" in R:
        L += table_throughput(
            f"h2c (prior knowledge) small GET (h2load -t1 -c{P['conns_small']} -m10, {P['duration']} s)",
            R["h2c"], "Downstream HTTP/2 cleartext, upstream HTTP/1.1. p50 column shows h2load's "
            "mean (h2load prints no percentiles); no origin ceiling (the origin speaks HTTP/1.1).")
    no_h2up = "; ".join(NO_H2UP.values())
    if "h1_h2up" in R:
        L += table_throughput(
            f"HTTP/1.1 small GET, HTTP/2 (h2c) upstream (wrk -t1 -c{P['conns_small']}, "
            f"{P['duration']} s)", R["h1_h2up"],
            "The -h2up variants: cutover pools `\"protocol\": \"h2c\"`, HAProxy servers "
            "`proto h2`, nghttpx backends `proto=h2`; the origins answer HTTP/2 with prior "
            f"knowledge. No nginx or h2o row: {no_h2up}. No ceiling row (the origin's own rate is "
            "in the small GET table). \"CPU × h1 upstream\": CPU µs/req divided by the same "
            "proxy's in the small GET table of this run.", ref="haproxy-h2up",
            extra=("CPU × h1 upstream", base_ratio(R, "small", "cpu_us_per_req")))
    if "h2c_h2up" in R:
        L += table_throughput(
            f"h2c small GET, HTTP/2 (h2c) upstream (h2load -t1 -c{P['conns_small']} -m10, "
            f"{P['duration']} s)", R["h2c_h2up"],
            "Downstream and upstream HTTP/2 cleartext (prior knowledge); the -h2up variants as "
            f"above. No nginx or h2o row: {no_h2up}. p50 column: h2load's mean. \"CPU × h1 "
            "upstream\": CPU µs/req divided by the same proxy's in the h2c table of this run.",
            ref="haproxy-h2up", extra=("CPU × h1 upstream", base_ratio(R, "h2c", "cpu_us_per_req")))
    if "h2tls" in R:
        L += table_throughput(
            f"HTTP/2 over TLS small GET (h2load -t1 -c{P['conns_small']} -m10, {P['duration']} s)",
            R["h2tls"], "Downstream TLS 1.3 with ALPN h2 (ECDSA P-256 certificate), upstream "
            "HTTP/1.1 in clear. Connections are opened once, so handshakes are not measured here. "
            "p50 column: h2load's mean; no origin ceiling (the origin has no TLS).",
            p50_hdr="mean ms") + tls_params(R["h2tls"])
    L += cpu_split_table(R)
    if "tls_handshakes" in R:
        L += table_throughput(
            f"New TLS connections, full handshakes ({P['hs_loops']} × h2load -n{P['hs_batch']} "
            f"-c{P['hs_batch']} -m1 in a loop, {P['duration']} s)",
            R["tls_handshakes"], "Every connection: TCP connect, full TLS 1.3 handshake (no "
            "resumption), ALPN h2, one GET / proxied upstream, close. handshakes/s = connections "
            "completed per second; proxy CPU µs/handshake covers the whole connection. The load "
            "side pays a full client handshake per connection too, so load CPU busy near 1.00 means "
            "h2load, not the proxy, sets the rate: compare the CPU column. Mean ms: time to the "
            "first response byte (connect + handshake + request).", unit="handshake",
            p50_hdr="mean ms") + tls_params(R["tls_handshakes"])
    if "latency" in R:
        for proto, e in R["latency"].items():
            L += table_latency(proto, e, olabel)
    if "idle" in R:
        L += [f"### {P['idle_conns']} idle keep-alive connections: resident memory per connection", "",
              "Each connection made one GET, then stays open. RSS from /proc/PID/status after "
              "warm-up and after all connections are open.", "",
              "| server | answered | RSS before KiB | RSS after KiB | bytes/conn | × HAProxy | closed early |",
              "|---|---|---|---|---|---|---|"]
        ha = R["idle"].get("haproxy", {}).get("bytes_per_conn")
        for k, v in R["idle"].items():
            if "error" in v:
                L.append(f"| {k} | error: {v['error']} | | | | | |")
                continue
            L.append(f"| {k} | {v['ok']}/{v['connections']} | {v['rss_before_kib']:,} | "
                     f"{v['rss_after_kib']:,} | {fmt(v['bytes_per_conn'])} | "
                     f"{ratio(v['bytes_per_conn'], ha)} | {v['closed_early']} |")
        L += [""]
    if "callgrind" in R:
        n1, n2 = P["cg_counts"]
        L += [f"### Instructions per proxied request (callgrind, ({n2} − {n1}) sequential keep-alive requests)", "",
              "| server | Ir at " + str(n1) + " | Ir at " + str(n2) + " | instructions/request | × HAProxy |",
              "|---|---|---|---|---|"]
        ha = R["callgrind"].get("haproxy", {}).get("instr_per_req")
        for k, v in R["callgrind"].items():
            if "error" in v:
                L.append(f"| {k} | error: {v['error']} | | | |")
                continue
            L.append(f"| {k} | {v['totals'][0]:,} | {v['totals'][1]:,} | {fmt(v['instr_per_req'])} | "
                     f"{ratio(v['instr_per_req'], ha)} |")
        L += [""]
    if "callgrind_pairs" in R and R["callgrind_pairs"].get("cells"):
        sys.path.insert(0, HERE)
        import instr
        cp = R["callgrind_pairs"]
        n1, n2 = cp["counts"]
        L += [f"### Instructions per request by protocol pair (callgrind, ({n2} − {n1}) sequential "
              "requests on one connection)", "",
              "bench/instr.py: every proxy under callgrind with one worker/thread and its "
              "configuration from bench/anchors; h1: a socket loop, h2c: `h2load -c1 -m1` (prior "
              "knowledge), h2tls: the same over TLS 1.3 (the handshake cancels in the difference). "
              "An h2c upstream is the proxy's -h2up configuration. Last column: cutover divided "
              "by the lowest of HAProxy, nginx, nghttpx (and their -h2up variants) in the row "
              f"(lower is better). Origin: {olabel}.", ""]
        L += instr.table(cp) + [""]
    if "scaling" in R:
        L += [f"### cutover -w 1 vs -w 2 (nothing pinned; wrk -t2 -c{P['conns_small'] * 2})", "",
              "| workers | req/s median (min..max) | p99 ms | proxy CPU busy (CPUs) | load CPU busy (CPUs) |",
              "|---|---|---|---|---|"]
        for k, v in R["scaling"].items():
            L.append(f"| {k} | {spread(v, 'rps')} | {fmt(med(v, 'p99_ms'), 2)} | "
                     f"{fmt(med(v, 'proxy_busy'), 2)} | {fmt(med(v, 'load_cpu_busy'), 2)} |")
        L += ["", f"On {NCPU} CPUs, wrk and the origins compete with the workers for the same cores, "
              "so this shows contention more than scaling.", ""]
    # Every table says which origin served it (the switch benchmark has its own, below).
    L = [f"{ln} — origin: {olabel}" if ln.startswith("### ") else ln for ln in L]
    if "switch" in R:
        sys.path.insert(0, HERE)
        import switch_latency
        sw = R["switch"]
        # switch_latency.py --record stores {"date", "machine", "switches", "modes": {...}}
        L += [f"{ln} — origin: bench/origin.c (the switch benchmark's own, whatever ORIGIN)"
              if ln.startswith("### ") else ln
              for ln in switch_latency.table(sw.get("modes", sw), sw.get("switches", P["switches"]))]
    if results.get("notes"):
        L += ["### Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    if results["errors"]:
        L += ["### Errors", ""] + [f"- {e}" for e in results["errors"]] + [""]
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- main


def on_sigterm(signum, frame):
    raise SystemExit(f"bench: stopped by signal {signum}")  # runs every finally: stop by PID


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        # Re-renders the markdown of a stored run: bench.py --report bench/results/latest.json
        with open(sys.argv[2]) as f:
            results = json.load(f)
        P.update({k: tuple(v) if isinstance(v, list) else v for k, v in results["params"].items()})
        errors.extend(results["errors"])
        print(report(results), end="")
        return 0
    signal.signal(signal.SIGTERM, on_sigterm)
    for path in (CUTOVER, ORIGIN):
        if not os.access(path, os.X_OK):
            print(f"bench: {path} missing (run make)", file=sys.stderr)
            return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # HAProxy needs two descriptors per connection (maxsock = 2 * maxconn + ~220) and refuses to
    # start beyond ulimit -n; the idle scenario keeps every proxy within HAProxy's maxconn.
    cap = ((hard - 220) // 2 - 90) // 100 * 100
    if P["idle_conns"] > cap:
        P["idle_conns"] = max(100, cap)
        log(f"ulimit -n {hard}: idle connections reduced to {P['idle_conns']} (HAProxy maxconn)")
    if ORIGIN_SERVER not in ORIGIN_LABELS:
        print(f"bench: ORIGIN={ORIGIN_SERVER}: expected one of {', '.join(ORIGIN_LABELS)}",
              file=sys.stderr)
        return 1
    # callgrind also runs callgrind_pairs (bench/instr.py's matrix); ONLY=callgrind_pairs alone.
    wanted = ONLY or ["split", "small", "access_log", "access_log_all", "large", "h2c", "h1_h2up",
                      "h2c_h2up", "h2tls", "tls_handshakes", "latency", "idle", "callgrind",
                      "scaling", "switch"]
    if SMOKE and not ONLY:
        wanted = [w for w in wanted if w != "access_log"]

    d = tempfile.mkdtemp(prefix="cutover-bench-")
    log(f"work directory {d}{' (SMOKE)' if SMOKE else ''}")
    t_start = time.time()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "smoke": SMOKE, "params": dict(P),
               "origin": {"server": ORIGIN_SERVER, "label": ORIGIN_LABELS[ORIGIN_SERVER]},
               "versions": versions(), "machine": machine(), "scenarios": {}, "errors": errors}
    try:
        tls = make_certs(d)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print(f"bench: cannot make the TLS certificates: {e}", file=sys.stderr)
        return 1
    try:
        origins = start_origins(d)
    except (RuntimeError, OSError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    log(f"origin: {ORIGIN_LABELS[ORIGIN_SERVER]} (pid {origins[0][0].pid})")
    ctx = {"dir": d, "blue": origins[0][1], "green": origins[1][1], "origins": origins, "tls": tls,
           "results": results["scenarios"]}
    try:
        for sc in wanted:
            t0 = time.time()
            log(f"scenario {sc}")
            try:
                if sc == "split":
                    results["scenarios"]["split"] = scenario_split(ctx)
                elif sc == "small":
                    results["scenarios"]["small"] = scenario_throughput(ctx, "small", "/", P["conns_small"])
                elif sc == "access_log":
                    results["scenarios"]["access_log"] = scenario_access_log(ctx)
                elif sc == "access_log_all":
                    results["scenarios"]["access_log_all"] = scenario_throughput(
                        ctx, "access_log_all", "/", P["conns_small"], ceiling=False, access_log=True)
                elif sc == "large":
                    results["scenarios"]["large"] = scenario_throughput(
                        ctx, "large", f"/size/{LARGE}", P["conns_large"])
                elif sc == "h2c":
                    results["scenarios"]["h2c"] = scenario_throughput(
                        ctx, "h2c", "/", P["conns_small"], tool="h2c", ceiling=False)
                elif sc == "h1_h2up":
                    results["scenarios"]["h1_h2up"] = scenario_throughput(
                        ctx, "h1_h2up", "/", P["conns_small"], proxies=h2up_proxies(), ceiling=False)
                elif sc == "h2c_h2up":
                    results["scenarios"]["h2c_h2up"] = scenario_throughput(
                        ctx, "h2c_h2up", "/", P["conns_small"], tool="h2c", proxies=h2up_proxies(),
                        ceiling=False)
                elif sc == "latency":
                    results["scenarios"]["latency"] = scenario_latency(ctx)
                elif sc == "h2tls":
                    results["scenarios"]["h2tls"] = scenario_throughput(
                        ctx, "h2tls", "/", P["conns_small"], tool="h2tls", ceiling=False)
                elif sc == "tls_handshakes":
                    results["scenarios"]["tls_handshakes"] = scenario_throughput(
                        ctx, "tls_handshakes", "/", P["hs_batch"], tool="handshakes", ceiling=False)
                elif sc == "idle":
                    results["scenarios"]["idle"] = scenario_idle(ctx)
                elif sc == "callgrind":
                    results["scenarios"]["callgrind"] = scenario_callgrind(ctx)
                    results["scenarios"]["callgrind_pairs"] = scenario_callgrind_pairs(ctx)
                elif sc == "callgrind_pairs":
                    results["scenarios"]["callgrind_pairs"] = scenario_callgrind_pairs(ctx)
                elif sc == "scaling":
                    results["scenarios"]["scaling"] = scenario_scaling(ctx)
                elif sc == "switch":
                    results["scenarios"]["switch"] = scenario_switch(ctx)
                else:
                    fail(f"unknown scenario {sc}")
            except Exception as e:  # noqa: BLE001 - one scenario's bug must not lose the run
                import traceback
                fail(f"scenario {sc} stopped: {type(e).__name__}: {e}")
                log(traceback.format_exc())
            log(f"scenario {sc} took {time.time() - t0:.0f} s")
    finally:
        for p in {id(o[0]): o[0] for o in origins}.values():
            rc = p.stop()
            if rc != 0:
                fail(f"origin exited with {rc} on SIGTERM")
    results["elapsed_s"] = round(time.time() - t_start, 1)

    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out_json = os.path.join(HERE, "results", "smoke.json" if SMOKE else "latest.json")
    with open(out_json, "w") as f:
        json.dump(results, f, indent=1, default=str)
    md = report(results)
    if not SMOKE:
        with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
            f.write(md)
    print(md)
    log(f"done in {results['elapsed_s']} s; {len(errors)} error(s); json: {out_json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

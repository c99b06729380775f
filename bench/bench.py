#!/usr/bin/env python3
"""bench.py - runs cutover side by side with HAProxy, NGINX, nghttpx and h2o (see bench/README.md).

Called by bench/run.sh, which builds the origin first. Environment:
  BUILD   build directory (cutover at $BUILD/cutover, origin at $BUILD/bench/origin)
  SMOKE=1 a short run that only checks the harness works (fails on errors, never on speed)
  ONLY    comma-separated scenario names to run (default: all)

Every process it starts is stopped by its PID (SIGTERM, then SIGKILL after a grace period), and
every run is bounded in time. Writes bench/results/latest.json and appends to bench/RESULTS.md.
"""
import json
import os
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
}
LARGE = 1048576

PROXIES = [p for p in os.environ.get("PROXIES", "cutover,haproxy,nginx,nghttpx,h2o").split(",") if p]
H2C_CAPABLE = {"cutover", "haproxy", "nginx", "nghttpx", "h2o"}  # cutover: h2c prior knowledge
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

    def __init__(self, name, argv, cpu, logdir, env=None):
        self.name = name
        cmd = (["taskset", "-c", cpu] if cpu is not None else []) + argv
        self.out = open(os.path.join(logdir, f"{name}.log"), "ab")
        self.p = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env)
        self.pid = self.p.pid  # taskset execs, so this is the program's own PID

    def alive(self):
        return self.p.poll() is None

    def stop(self, grace=10.0):
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.pid}) ignored SIGTERM for {grace}s; SIGKILL")
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(timeout=5)
        self.out.close()
        return self.p.returncode


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


TLS_MARK = "@tls "


def render(template, tls=False, **kw):
    """Fills a template from bench/anchors. A line whose text starts with "@tls " (after its
    indentation) belongs to the TLS listener: kept without the mark when tls, dropped otherwise,
    so the proxies of the cleartext scenarios run exactly the configuration they had before TLS
    scenarios existed (an idle TLS listener is not free: see nginx.conf.tmpl)."""
    with open(os.path.join(HERE, "anchors", template)) as f:
        lines = []
        for line in f:
            body = line.lstrip(" ")
            if body.startswith(TLS_MARK):
                if not tls:
                    continue
                line = line[:len(line) - len(body)] + body[len(TLS_MARK):]
            lines.append(line)
    return string.Template("".join(lines)).substitute(**kw)


def start_proxy(kind, ctx, workers=1, cpu=PROXY_CPU, valgrind=None, access_log=False, tls=False):
    """Writes the proxy's configuration for fresh ports and starts it. Returns (Proc, port).
    tls: also listen with TLS (the "@tls " lines of the template) on ctx["tls_port"][port]."""
    d = ctx["dir"]
    port = free_port()
    kw = dict(PORT=port, BLUE=ctx["blue"], GREEN=ctx["green"], DIR=d, tls=tls)
    if tls:
        kw.update(TLS_PORT=free_port(), CERT=ctx["tls"]["cert"], KEY=ctx["tls"]["key"],
                  CERT_PEM=ctx["tls"]["pem"])
        ctx.setdefault("tls_port", {})[port] = kw["TLS_PORT"]
    if kind == "cutover":
        path = os.path.join(d, f"cutover-{port}.json")
        with open(path, "w") as f:
            f.write(render("cutover.json.tmpl", WORKERS=workers,
                           ACCESS_LOG="true" if access_log else "false", **kw))
        argv = [CUTOVER, "-c", path, "-w", str(workers)]
    elif kind == "haproxy":
        path = os.path.join(d, f"haproxy-{port}.cfg")
        # HAProxy reserves two descriptors per connection: keep maxconn within ulimit -n.
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        maxconn = min(12000, (soft - 220) // 2) if soft != resource.RLIM_INFINITY else 12000
        with open(path, "w") as f:
            f.write(render("haproxy.cfg.tmpl", MAXCONN=maxconn, **kw))
        argv = ["haproxy", "-db", "-f", path]
    elif kind == "nginx":
        for sub in ("nginx-body", "nginx-proxy"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        h2c_port = free_port()
        kw["NGINX_H2C_LISTEN"] = f"listen 127.0.0.1:{h2c_port} http2;"
        path = os.path.join(d, f"nginx-{port}.conf")
        with open(path, "w") as f:
            f.write(render("nginx.conf.tmpl", **kw))
        argv = ["nginx", "-p", d, "-c", path]
        ctx.setdefault("h2c_port", {})[port] = h2c_port
    elif kind == "nghttpx":
        args = render("nghttpx.args.tmpl", **kw).split("\n")
        argv = ["nghttpx", "--conf=/dev/null"] + [a for a in args if a.strip()]
    elif kind == "h2o":
        path = os.path.join(d, f"h2o-{port}.conf")
        with open(path, "w") as f:
            f.write(render("h2o.conf.tmpl", **kw))
        argv = ["h2o", "-c", path]
    elif kind == "origin":
        argv = [ORIGIN, "--port", str(port), "--name", "direct"]
    else:
        raise ValueError(kind)
    if valgrind:
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={valgrind}",
                "--dump-line=no", "--dump-instr=no", "--trace-children=no"] + argv
    name = f"{kind}-{port}" + ("-callgrind" if valgrind else "")
    p = Proc(name, argv, cpu, d)
    why = wait_ready(p, port, 60 if valgrind else 15)
    if why:
        p.stop()
        raise RuntimeError(f"{kind} did not start: {why} (see {d}/{name}.log)")
    return p, port


def start_origins(d):
    """Blue and green in one origin process (one event loop on the load CPU, not two).
    Returns [(proc, blue_port), (proc, green_port)]; callers stop the process once."""
    blue, green = free_port(), free_port()
    p = Proc("origins", [ORIGIN, "--listen", f"{blue}:blue", "--listen", f"{green}:green"],
             LOAD_CPU, d)
    for port in (blue, green):
        why = wait_ready(p, port, 10)
        if why:
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


def measured_wrk(proc, port, origins, path, conns, tool="wrk", cpu=LOAD_CPU, threads=1):
    """Warm-up, then one measured run with CPU accounting of the proxy and the origins."""
    load(tool, port, path, conns, P["warmup"], cpu=cpu, threads=threads)
    pids = sorted({o[0].pid for o in origins})
    t0 = time.time()
    c0 = cpu_ticks(proc.pid) if proc else 0
    o0 = sum(cpu_ticks(pid) for pid in pids)
    r = load(tool, port, path, conns, P["duration"], cpu=cpu, threads=threads)
    wall = time.time() - t0
    o1 = sum(cpu_ticks(pid) for pid in pids)
    if proc:
        c1 = cpu_ticks(proc.pid)
        cpu_s = (c1 - c0) / TICK
        r["proxy_cpu_s"] = cpu_s
        r["proxy_busy"] = cpu_s / wall
        r["cpu_us_per_req"] = cpu_s * 1e6 / r["requests"] if r["requests"] else None
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


def scenario_throughput(ctx, name, path, conns, tool="wrk", proxies=None, ceiling=True):
    """Runs one throughput scenario for every proxy and for the origin directly.

    Interleaved: every target is started first (idle ones cost nothing on the proxy CPU), then
    each repeat runs every target once, in a rotated order (repeat 1: A B C, repeat 2: B C A,
    ...), so that a noisy minute of the shared machine hits every proxy rather than one."""
    out = {}
    targets = (["origin"] if ceiling else []) + (proxies or PROXIES)
    started = {}
    try:
        for kind in targets:
            label = f"{name}/{kind}"
            if tool == "h2c" and kind not in H2C_CAPABLE:
                out[kind] = {"pending": "no h2c"}
                continue
            try:
                proc, port = start_proxy(kind, ctx, tls=tool in TLS_TOOLS)
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
                r = measured_wrk(proc, port, ctx["origins"], path, conns, tool=tool)
                runs.append(r)
                log(f"{name}/{kind} run {i + 1}: {r['rps']:.0f} {'handshakes' if unit == 'handshake' else 'req'}/s, p99 {r.get('p99_ms')} ms, "
                    f"proxy {r.get('cpu_us_per_req') or 0:.2f} us/{unit}, "
                    f"proxy busy {r.get('proxy_busy', 0):.2f}, load cpu busy {r['load_cpu_busy']:.2f}")
                if not proc.alive():
                    fail(f"{name}/{kind}: {kind} died during the run (exit {proc.p.returncode})")
        for kind, (proc, port, runs) in started.items():
            label = f"{name}/{kind}"
            check_runs(label, runs)
            out[kind] = {"runs": runs}
            if tool in TLS_TOOLS:
                out[kind]["tls"] = check_tls(label, runs)
            for key in ("rps", "p50_ms", "p99_ms", "mean_ms", "cpu_us_per_req", "bytes_per_s",
                        "proxy_busy", "load_cpu_busy"):
                s = summarize(runs, key)
                if s:
                    out[kind][key] = s
    finally:
        for kind, (proc, port, runs) in started.items():
            rc = proc.stop()
            if rc not in (0, -signal.SIGTERM, 143) and kind == "cutover":
                fail(f"{name}/{kind}: cutover exited with {rc} on SIGTERM")
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
            proc.stop()
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
            proc.stop()
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
                    proc.stop(grace=60)
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
            proc.stop()
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
        proc.stop()


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


def table_throughput(title, res, note, mib=False, unit="req", p50_hdr="p50 ms"):
    """unit: what rps and the CPU column count ("req", or "handshake" for tls_handshakes);
    p50_hdr: the header of the p50 column (h2load rows fill it with a mean)."""
    lines = [f"### {title}", "", note, ""]
    hdr = f"| server | {unit}/s median (min..max) | × HAProxy | × ceiling | {p50_hdr} | p99 ms | " \
          f"proxy CPU µs/{unit} | × HAProxy | proxy CPU busy | origins CPU µs/req | load CPU busy |"
    if mib:
        hdr = hdr.replace(f"| {p50_hdr}", f"| MiB/s | {p50_hdr}")
    lines += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
    ha = res.get("haproxy", {})
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
        lines.append("| " + " | ".join(row) + " |")
    lines += [""] + paired_note(res, unit)
    return lines + [""]


def paired(e, ha, key):
    """Median over the repeats of e's run divided by HAProxy's run of the same repeat (the two ran
    next to each other: interleaved), or None."""
    rs = [a[key] / b[key] for a, b in zip(e.get("runs", []), ha.get("runs", []))
          if a.get(key) and b.get(key)]
    return statistics.median(rs) if rs else None


def paired_note(res, unit):
    """Per proxy, the paired ratios to HAProxy: a shared host's slow drift cancels in each pair,
    where the ratio of the medians above mixes repeats run minutes apart."""
    ha = res.get("haproxy", {})
    parts = []
    for kind, e in res.items():
        if kind in ("origin", "haproxy") or "runs" not in e:
            continue
        vals = [(lbl, paired(e, ha, key)) for lbl, key in
                ((f"{unit}/s", "rps"), ("p99", "p99_ms"), (f"CPU µs/{unit}", "cpu_us_per_req"))]
        txt = ", ".join(f"{lbl} {v:.2f}" for lbl, v in vals if v is not None)
        if txt:
            parts.append(f"{kind}: {txt}")
    if not parts or "runs" not in ha:
        return []
    return ["Paired × HAProxy (median over the repeats of each proxy's run divided by HAProxy's run "
            "of the same repeat, which ran next to it): " + "; ".join(parts) + "."]


def tls_params(res):
    """One line with what each proxy negotiated (from h2load's output)."""
    parts = [f"{k}: {e['tls']['tls_protocol']} {e['tls']['cipher']}, {e['tls']['temp_key']}, "
             f"ALPN {e['tls']['alpn']}" for k, e in res.items() if e.get("tls")]
    return (["Negotiated: " + "; ".join(parts) + ".", ""]) if parts else []


def report(results):
    R = results["scenarios"]
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
    if "large" in R:
        L += table_throughput(
            f"HTTP/1.1 1 MiB responses (wrk -t1 -c{P['conns_large']}, {P['duration']} s)",
            R["large"], "GET /size/1048576.", mib=True)
    if "h2c" in R:
        L += table_throughput(
            f"h2c (prior knowledge) small GET (h2load -t1 -c{P['conns_small']} -m10, {P['duration']} s)",
            R["h2c"], "Downstream HTTP/2 cleartext, upstream HTTP/1.1. p50 column shows h2load's "
            "mean (h2load prints no percentiles); no origin ceiling (the origin speaks HTTP/1.1).")
    if "h2tls" in R:
        L += table_throughput(
            f"HTTP/2 over TLS small GET (h2load -t1 -c{P['conns_small']} -m10, {P['duration']} s)",
            R["h2tls"], "Downstream TLS 1.3 with ALPN h2 (ECDSA P-256 certificate), upstream "
            "HTTP/1.1 in clear. Connections are opened once, so handshakes are not measured here. "
            "p50 column: h2load's mean; no origin ceiling (the origin has no TLS).",
            p50_hdr="mean ms") + tls_params(R["h2tls"])
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
    if "scaling" in R:
        L += [f"### cutover -w 1 vs -w 2 (nothing pinned; wrk -t2 -c{P['conns_small'] * 2})", "",
              "| workers | req/s median (min..max) | p99 ms | proxy CPU busy (CPUs) | load CPU busy (CPUs) |",
              "|---|---|---|---|---|"]
        for k, v in R["scaling"].items():
            L.append(f"| {k} | {spread(v, 'rps')} | {fmt(med(v, 'p99_ms'), 2)} | "
                     f"{fmt(med(v, 'proxy_busy'), 2)} | {fmt(med(v, 'load_cpu_busy'), 2)} |")
        L += ["", f"On {NCPU} CPUs, wrk and the origins compete with the workers for the same cores, "
              "so this shows contention more than scaling.", ""]
    if "switch" in R:
        sys.path.insert(0, HERE)
        import switch_latency
        sw = R["switch"]
        # switch_latency.py --record stores {"date", "machine", "switches", "modes": {...}}
        L += switch_latency.table(sw.get("modes", sw), sw.get("switches", P["switches"]))
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
    wanted = ONLY or ["split", "small", "access_log", "large", "h2c", "h2tls", "tls_handshakes",
                      "idle", "callgrind", "scaling", "switch"]
    if SMOKE and not ONLY:
        wanted = [w for w in wanted if w != "access_log"]

    d = tempfile.mkdtemp(prefix="cutover-bench-")
    log(f"work directory {d}{' (SMOKE)' if SMOKE else ''}")
    t_start = time.time()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "smoke": SMOKE, "params": dict(P),
               "versions": versions(), "machine": machine(), "scenarios": {}, "errors": errors}
    try:
        tls = make_certs(d)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print(f"bench: cannot make the TLS certificates: {e}", file=sys.stderr)
        return 1
    origins = start_origins(d)
    ctx = {"dir": d, "blue": origins[0][1], "green": origins[1][1], "origins": origins, "tls": tls}
    try:
        for sc in wanted:
            t0 = time.time()
            log(f"scenario {sc}")
            if sc == "split":
                results["scenarios"]["split"] = scenario_split(ctx)
            elif sc == "small":
                results["scenarios"]["small"] = scenario_throughput(ctx, "small", "/", P["conns_small"])
            elif sc == "access_log":
                results["scenarios"]["access_log"] = scenario_access_log(ctx)
            elif sc == "large":
                results["scenarios"]["large"] = scenario_throughput(
                    ctx, "large", f"/size/{LARGE}", P["conns_large"])
            elif sc == "h2c":
                results["scenarios"]["h2c"] = scenario_throughput(
                    ctx, "h2c", "/", P["conns_small"], tool="h2c", ceiling=False)
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
            elif sc == "scaling":
                results["scenarios"]["scaling"] = scenario_scaling(ctx)
            elif sc == "switch":
                results["scenarios"]["switch"] = scenario_switch(ctx)
            else:
                fail(f"unknown scenario {sc}")
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

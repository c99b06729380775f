#!/usr/bin/env python3
"""switch_latency.py - how fast a set-weights switch reaches every worker (see bench/README.md).

    python3 bench/switch_latency.py --switches 1000            # three modes, C client, the table
    python3 bench/switch_latency.py --switches 1000 --client both   # C and Python clients
    python3 bench/switch_latency.py --switches 1000 --record   # + appends to bench/RESULTS.md and
                                                               #   merges into bench/results/latest.json

cutover -w 2 between two origins (one build/bench/origin process answering "blue\\n" and
"green\\n" on two ports), route weights flipped 100/0 <-> 0/100 with set-weights on the control
socket. Keep-alive client connections send back-to-back GETs (one in flight each); each
connection's path (/sw/cN) lets the access log's "worker" field tell which worker serves it
(SO_REUSEPORT spreads connections across workers; connections (--conns, then 4 more at a time)
are opened until every worker has --per-worker of them; the extra ones are closed).

This script is the driver: it starts the processes, writes the configurations, opens and warms up
the connections, maps them to workers, and builds the table. The measurement itself is done by
the client chosen with --client:
  c       (default) bench/switch_client.c (built here into build/bench/switch_client with
          cc -O2 -Wall -Wextra -Werror): epoll + clock_gettime(CLOCK_MONOTONIC), ~6 us of its
          own per response (recv + parse + send, the loopback send included). It inherits the
          warmed-up connections (pass_fds) and prints one JSON line per switch; this script
          groups them by worker.
  python  the original one-thread Python epoll loop (~10-30 us per event), kept for comparison.
  both    each mode with each client (the C client first), on fresh cutover processes.
--rounds R (default 5) splits the switches into R rounds; each round runs every mode (and client)
once on a fresh cutover, so that the modes, baseline included, see the same shared machine; the
statistics are over all rounds. "other processes kept N CPUs busy" (from /proc/stat minus this
benchmark's processes) says how shared the machine was: compare tails only at similar values.

Per switch (t_ack = monotonic time at which the acknowledgement was read):
  post-ack latency ("publication", the headline): for each connection, the first response from the
      new pool whose REQUEST was sent after t_ack; latency = its receive time - t_ack. Per worker:
      the earliest over that worker's connections; overall: the slowest worker (all workers done).
  any latency: the first response from the new pool received after the set-weights request was
      sent, whatever its send time (includes the request already in flight; may be negative: the
      worker adopted the snapshot and answered before the client read the ack).
  first post-ack request RTT: per connection, the round trip of the request that gave the post-ack
      sample (post-ack = wait for the request in flight + this round trip).
  stale: responses from the OLD pool to requests sent after t_ack (the contract says none).
  control RTT: set-weights sent -> acknowledgement read.
Modes: "durable" (control.state_file + control.audit_file: two fsyncs before each ack), "memory"
(neither), and "baseline": no switch at all, a sham ack at a random instant and the same
statistic on the current pool, i.e. the floor the client and the proxy impose without a switch.
The request round-trip time (floor of the post-ack latency) is reported alongside.
Every process is stopped by its PID; everything is bounded in time; 127.0.0.1 and a temp dir only.
"""
import argparse
import gc
import json
import os
import random
import resource
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLEN = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def log(msg):
    print(f"switch: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A process we started; stop() ends it by its PID (SIGTERM, SIGKILL after grace)."""

    def __init__(self, name, argv, logdir):
        self.name = name
        self.logpath = os.path.join(logdir, f"{name}.log")
        self.out = open(self.logpath, "ab")
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, grace=10.0):
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(timeout=5)
        self.out.close()
        return self.p.returncode


def get_body(port, path="/", timeout=1.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: sw\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def wait_ready(proc, port, timeout=15.0):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not proc.alive():
            return f"exited with {proc.p.returncode}"
        try:
            st, _ = get_body(port)
            if 200 <= st < 300:
                return None
            last = f"status {st}"
        except (OSError, ValueError, IndexError) as e:
            last = repr(e)
        time.sleep(0.05)
    return last


def pct(vals, p):
    """Nearest-rank percentile (p in 0..100) of a list; None when empty."""
    if not vals:
        return None
    v = sorted(vals)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def dist_ms(ns_vals):
    ms = [x / 1e6 for x in ns_vals]
    return {"n": len(ms), "p50": pct(ms, 50), "p99": pct(ms, 99), "max": max(ms) if ms else None,
            "min": min(ms) if ms else None}


# ---------------------------------------------------------------- one measured mode


class Conn:
    __slots__ = ("i", "sock", "fd", "req", "buf", "t_send", "worker", "post", "sent", "any",
                 "n")

    def __init__(self, i, port):
        self.i = i
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.req = f"GET /sw/c{i} HTTP/1.1\r\nHost: sw\r\n\r\n".encode()
        self.buf = b""
        self.t_send = 0
        self.worker = None
        self.post = None  # this switch: post-ack latency (ns) or None
        self.sent = None  # this switch: send time of the post-ack request - t_ack (ns)
        self.any = None   # this switch: receive time (ns) of the first new-pool response
        self.n = 0

    def send(self):
        self.t_send = time.monotonic_ns()
        self.sock.send(self.req)  # ~40 bytes into an empty socket buffer: never partial


def parse_one(c):
    """Returns the body of one complete response in c.buf (and consumes it), or None."""
    i = c.buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    m = CLEN.search(c.buf, 0, i + 2)
    n = int(m.group(1)) if m else 0
    end = i + 4 + n
    if len(c.buf) < end:
        return None
    if not c.buf.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"connection {c.i}: non-200 response {c.buf[:40]!r}")
    body = c.buf[i + 4:end]
    c.buf = c.buf[end:]
    return body


def worker_map(logpath, conns, deadline):
    """Reads cutover's access log until every connection's path has been seen; returns
    {conn index: worker}. A connection seen on two workers would be a harness bug."""
    want = {c.i for c in conns}
    seen = {}
    pat = re.compile(r'"worker":(\d+),.*?"path":"/sw/c(\d+)"')
    while time.monotonic() < deadline:
        with open(logpath, errors="replace") as f:
            for line in f:
                if '"type":"access"' not in line:
                    continue
                m = pat.search(line)
                if m and int(m.group(2)) in want:
                    seen.setdefault(int(m.group(2)), set()).add(int(m.group(1)))
        if want <= set(seen):
            break
        time.sleep(0.1)
    for i, ws in seen.items():
        if len(ws) != 1:
            raise RuntimeError(f"connection {i} served by workers {sorted(ws)}")
    return {i: next(iter(ws)) for i, ws in seen.items()}


def drive(conns, ep, byfd, rounds, deadline):
    """Warm-up: `rounds` back-to-back requests on every connection."""
    for c in conns:
        c.n = 0
        c.send()
    left = len(conns)
    while left and time.monotonic() < deadline:
        for fd, _ in ep.poll(0.5):
            c = byfd[fd]
            d = c.sock.recv(65536)
            if not d:
                raise RuntimeError(f"connection {c.i} closed by the proxy")
            c.buf += d
            while parse_one(c) is not None:
                c.n += 1
                if c.n < rounds:
                    c.send()
                else:
                    left -= 1
    if left:
        raise RuntimeError("warm-up timed out")


def cpu_ticks(pids):
    """(busy ticks of the machine: user+nice+system+irq+softirq, utime+stime of the processes
    `pids` (all threads)); ticks of 1/SC_CLK_TCK s. With tick-based accounting (no
    CONFIG_IRQ_TIME_ACCOUNTING) an interrupted task's stime includes the irq/softirq ticks taken
    while it ran (loopback traffic is mostly softirq in the sender), so both sides count them."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    machine = sum(int(v[i]) for i in (1, 2, 3, 6, 7))
    procs = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            procs += int(st[11]) + int(st[12])  # utime, stime (fields 14 and 15)
        except (OSError, IndexError, ValueError):
            pass
    return machine, procs


def own_cpu_s():
    """CPU seconds of this driver plus its children that have been waited for."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


class CpuWatch:
    """How many CPUs processes other than this benchmark's kept busy during a measurement (the
    machine is shared: its tail latencies are only comparable at similar values)."""

    def __init__(self, pids):
        self.pids = pids
        self.t = time.monotonic()
        self.ticks = cpu_ticks(pids)
        self.own = own_cpu_s()

    def others(self):
        hz = os.sysconf("SC_CLK_TCK")
        machine, procs = cpu_ticks(self.pids)
        wall = time.monotonic() - self.t
        busy = (machine - self.ticks[0] - procs + self.ticks[1]) / hz - (own_cpu_s() - self.own)
        return max(0.0, busy / wall) if wall > 0 else None


def build_tool(out, src, libs=()):
    """Compiles bench/<src> into <out> unless it is newer than its source; returns out."""
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cmd = ["cc", "-std=c17", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out,
           src, *libs]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return out


def build_client(build_dir):
    """build/bench/switch_client from bench/switch_client.c (rebuilt when the source is newer)."""
    return build_tool(os.path.join(build_dir, "switch_client"),
                      os.path.join(HERE, "switch_client.c"), ["-ljansson"])


def new_switch(conns):
    for c in conns:
        c.post = None
        c.sent = None
        c.any = None


def measure_python(conns, ep, byfd, sock_path, switches, mode, gap_ms, switch_timeout, t_limit,
                   time_limit, seed):
    """The Python measurement loop (one thread, epoll). Returns the raw record (see summarize)."""
    rnd = random.Random(seed)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.connect(sock_path)
    ctl.setblocking(False)
    ep.register(ctl.fileno(), select.EPOLLIN)
    ctl_fd = ctl.fileno()
    ctl_buf = b""
    pools = ("blue", "green")
    cur = 0  # index of the pool now at 100 %
    raw = {"switches": [], "stale": 0, "req_rtt": [], "cost": None}
    phase = "gap"
    t_next = time.monotonic_ns() + 50_000_000
    t_sent = t_ack = 0
    ctl_rtt = None
    target = None
    done_n = 0
    n_switch = 0
    rtt_sample = 0
    for c in conns:
        c.send()
    gc.disable()  # no collector pauses inside the measurement
    try:
        while n_switch < switches:
            now = time.monotonic_ns()
            if now / 1e9 > t_limit:
                raise RuntimeError(f"time limit {time_limit:.0f} s reached after {n_switch} "
                                   "switches")
            if phase == "gap" and now >= t_next and mode == "baseline":
                # No switch: a "sham ack" at a random instant, the current pool as the target:
                # the same statistic measures the client+proxy floor (the wait for a request sent
                # after an arbitrary instant to come back).
                target = pools[cur].encode() + b"\n"
                new_switch(conns)
                done_n = 0
                t_sent = t_ack = time.monotonic_ns()
                ctl_rtt = None
                phase = "new"
            if phase == "gap" and now >= t_next:
                new = 1 - cur
                w = {pools[cur]: 0, pools[new]: 100}
                line = json.dumps({"id": str(n_switch), "op": "set-weights",
                                   "args": {"route": "bench", "weights": w,
                                            "reason": f"switch bench {n_switch}"}}) + "\n"
                target = pools[new].encode() + b"\n"
                new_switch(conns)
                done_n = 0
                t_sent = time.monotonic_ns()
                ctl.send(line.encode())
                phase = "ack"
            timeout = 0.0005 if phase == "gap" else 0.05
            events = ep.poll(timeout)
            # The control socket first: t_ack as early as this loop can take it.
            events.sort(key=lambda e: e[0] != ctl_fd)
            for fd, _ in events:
                if fd == ctl_fd:
                    d_ = ctl.recv(65536)
                    t = time.monotonic_ns()
                    if not d_:
                        raise RuntimeError("control socket closed")
                    ctl_buf += d_
                    if b"\n" not in ctl_buf:
                        continue
                    line, _, ctl_buf = ctl_buf.partition(b"\n")
                    reply = json.loads(line)
                    if not reply.get("ok"):
                        raise RuntimeError(f"set-weights refused: {reply}")
                    t_ack = t
                    ctl_rtt = t_ack - t_sent
                    phase = "new"
                    continue
                c = byfd[fd]
                d_ = c.sock.recv(65536)
                t = time.monotonic_ns()
                if not d_:
                    raise RuntimeError(f"connection {c.i} closed by the proxy")
                c.buf += d_
                while True:
                    body = parse_one(c)
                    if body is None:
                        break
                    rtt_sample += 1
                    if rtt_sample % 16 == 0:
                        raw["req_rtt"].append(t - c.t_send)
                    if phase in ("ack", "new") and body == target:
                        if c.any is None:
                            c.any = t
                        if phase == "new" and c.t_send > t_ack and c.post is None:
                            c.post = t - t_ack
                            c.sent = c.t_send - t_ack
                            done_n += 1
                    elif phase == "new" and c.t_send > t_ack and c.post is None:
                        raw["stale"] += 1  # request sent after the ack, answered by the old pool
                    c.send()
            if phase == "new" and (done_n == len(conns) or
                                   time.monotonic_ns() - t_ack > switch_timeout * 1e9):
                raw["switches"].append({
                    "ctl_rtt": ctl_rtt, "post": [c.post for c in conns],
                    "sent": [c.sent for c in conns],
                    "any": [None if c.any is None else c.any - t_ack for c in conns]})
                if mode != "baseline":
                    cur = 1 - cur
                n_switch += 1
                phase = "gap"
                t_next = time.monotonic_ns() + int(rnd.uniform(*gap_ms) * 1e6)
    finally:
        gc.enable()
        ep.unregister(ctl_fd)
        ctl.close()
    return raw


def measure_c(client_bin, conns, sock_path, switches, mode, gap_ms, switch_timeout, t_limit,
              seed):
    """Runs bench/switch_client on the warmed-up connections (inherited descriptors, no request
    in flight). Returns the raw record (see summarize)."""
    left = max(1, int(t_limit - time.monotonic()))
    argv = [client_bin, "--switches", str(switches),
            "--gap-us", f"{int(gap_ms[0] * 1000)},{int(gap_ms[1] * 1000)}", "--seed", str(seed),
            "--switch-timeout-ms", str(int(switch_timeout * 1000)), "--time-limit-s", str(left)]
    argv += ["--baseline"] if mode == "baseline" else ["--ctl", sock_path, "--route", "bench"]
    for c in conns:
        if c.buf:
            raise RuntimeError(f"connection {c.i}: unread response data before the hand-over")
        argv += ["--conn", f"{c.fd}:/sw/c{c.i}"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, pass_fds=[c.fd for c in conns])
    try:
        out, err = p.communicate(timeout=left + 30)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=5)
        raise RuntimeError("switch_client did not finish in time")
    raw = {"switches": [], "stale": 0, "req_rtt": [], "cost": []}
    summary = None
    for line in out.decode(errors="replace").splitlines():
        rec = json.loads(line)
        if rec["type"] == "switch":
            raw["switches"].append({"t_ack": rec["t_ack_ns"], "ctl_rtt": rec["ctl_rtt_ns"],
                                    "post": rec["post_ns"],
                                    "sent": rec["sent_ns"], "any": rec["any_ns"]})
        elif rec["type"] == "summary":
            summary = rec
        elif rec["type"] == "error":
            raise RuntimeError(f"switch_client: {rec['message']}")
    if p.returncode != 0 or summary is None:
        raise RuntimeError(f"switch_client exited with {p.returncode}: {err.decode()[-500:]}")
    raw["stale"] = summary["stale"]
    raw["req_rtt"] = summary["req_rtt_ns"]
    raw["cost"] = summary["cost_ns"]
    return raw


def summarize(raws, workers):
    """Statistics of raw records (one per run, merged), the same for both clients. Each raw:
    "workers" (the worker of each connection), "switches" (one dict per switch: "ctl_rtt", ns or
    None, and per connection "post", "sent", "any", ns relative to t_ack or None), "stale",
    "req_rtt" and "cost" (ns samples; cost None for the Python client)."""
    post_w = {w: [] for w in range(workers)}
    any_w = {w: [] for w in range(workers)}
    post_all, any_all, post_conn, any_conn, post_rtt, ctl_rtt = [], [], [], [], [], []
    req_rtt, cost = [], []
    timeouts = stale = n = 0
    for raw in raws:
        wk = raw["workers"]
        stale += raw["stale"]
        req_rtt += raw["req_rtt"]
        cost += raw["cost"] or []
        n += len(raw["switches"])
        for rec in raw["switches"]:
            if rec["ctl_rtt"] is not None:
                ctl_rtt.append(rec["ctl_rtt"])
            done = all(v is not None for v in rec["post"])
            timeouts += not done
            for w in range(workers):
                ps = [v for v, k in zip(rec["post"], wk) if k == w and v is not None]
                an = [v for v, k in zip(rec["any"], wk) if k == w and v is not None]
                if ps:
                    post_w[w].append(min(ps))
                if an:
                    any_w[w].append(min(an))
            if done:
                post_all.append(max(min(v for v, k in zip(rec["post"], wk) if k == w)
                                    for w in range(workers)))
                any_all.append(max(min(v for v, k in zip(rec["any"], wk) if k == w)
                                   for w in range(workers)))
            post_conn.extend(v for v in rec["post"] if v is not None)
            any_conn.extend(v for v in rec["any"] if v is not None)
            post_rtt.extend(p - s for p, s in zip(rec["post"], rec["sent"]) if p is not None)
    return {
        "switches": n, "stale_responses": stale, "timeouts": timeouts,
        "control_rtt_ms": dist_ms(ctl_rtt) if ctl_rtt else None,
        "post_ack_ms": {"overall": dist_ms(post_all),
                        **{f"worker{w}": dist_ms(v) for w, v in post_w.items()},
                        "per_connection": dist_ms(post_conn)},
        "any_ms": {"overall": dist_ms(any_all),
                   **{f"worker{w}": dist_ms(v) for w, v in any_w.items()},
                   "per_connection": dist_ms(any_conn)},
        "post_ack_request_rtt_ms": dist_ms(post_rtt),
        "request_rtt_ms": dist_ms(req_rtt),
        "client_cost_ms": dist_ms(cost) if cost else None,
    }


def start_origins(origin_bin, d):
    """One origin process answering "blue\\n" and "green\\n" on two ports (one process: one
    fewer thread competing for the 2 CPUs). Returns (proc, blue port, green port)."""
    blue, green = free_port(), free_port()
    p = Proc("origins", [origin_bin, "--listen", f"{blue}:blue", "--listen", f"{green}:green"], d)
    for port in (blue, green):
        why = wait_ready(p, port)
        if why:
            p.stop()
            raise RuntimeError(f"origin on port {port} did not start: {why}")
    return p, blue, green


def run(cutover, origin_bin, workdir, switches, mode, blue=None, green=None, conns_start=8,
        per_worker=2, max_conns=64, workers=2, gap_ms=(0.5, 2.0), switch_timeout=2.0,
        time_limit=300.0, seed=1, client="c", keep_raw=False):
    """Runs one mode: "durable" (state_file + audit_file), "memory" (neither) or "baseline"
    (no switch at all: sham acks at random instants, same statistic; the floor), measured by
    `client` ("c": bench/switch_client, built next to origin_bin; "python": the loop above).
    blue/green: ports of running origins, or None to start our own. Returns a result dict, with
    the per-switch records under "raw" when keep_raw (raises RuntimeError on a harness
    failure)."""
    if client not in ("c", "python"):
        raise RuntimeError(f"unknown client {client!r}")
    client_bin = build_client(os.path.dirname(origin_bin)) if client == "c" else None
    t_limit = time.monotonic() + time_limit
    d = tempfile.mkdtemp(prefix=f"switch-{mode}-{client}-", dir=workdir)
    procs = []
    try:
        if blue is None:
            p, blue, green = start_origins(origin_bin, d)
            procs.append(p)
        port = free_port()
        sock_path = os.path.join(d, "ctl.sock")
        control = {"socket": sock_path, "roles": [{"uid": os.getuid(), "role": "admin"}]}
        if mode == "durable":
            control["state_file"] = os.path.join(d, "state.json")
            control["audit_file"] = os.path.join(d, "audit.log")
        cfg = {
            "cluster": "bench", "region": "local", "workers": workers,
            "listeners": [{"name": "bench", "address": f"127.0.0.1:{port}"}],
            "timeouts": {"client_idle_ms": 300000, "upstream_idle_ms": 50000},
            "limits": {"max_connections": 12000, "upstream_idle_per_endpoint": 128},
            "access_log": {"enabled": True},  # its "worker" field maps connections to workers
            "control": control,
            "routes": [{"name": "bench", "path_prefix": "/",
                        "pools": {"blue": {"endpoints": [f"127.0.0.1:{blue}"]},
                                  "green": {"endpoints": [f"127.0.0.1:{green}"]}},
                        "weights": {"blue": 100, "green": 0}}],
        }
        cfg_path = os.path.join(d, "cutover.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        cut = Proc("cutover", [cutover, "-c", cfg_path, "-w", str(workers)], d)
        procs.append(cut)
        why = wait_ready(cut, port)
        if why:
            raise RuntimeError(f"cutover did not start: {why} (see {cut.logpath})")

        # Client connections: open until every worker has per_worker of them.
        ep = select.epoll()
        conns, byfd, wmap = [], {}, {}
        while True:
            for _ in range(conns_start if not conns else 4):
                c = Conn(len(conns), port)
                conns.append(c)
                byfd[c.fd] = c
                ep.register(c.fd, select.EPOLLIN)
            drive(conns, ep, byfd, 50, min(t_limit, time.monotonic() + 30))
            wmap = worker_map(cut.logpath, conns, min(t_limit, time.monotonic() + 5))
            per = [sum(1 for c in conns if wmap.get(c.i) == w) for w in range(workers)]
            if min(per) >= per_worker or len(conns) >= max_conns:
                break
        for c in conns:
            c.worker = wmap.get(c.i)
        # Keep per_worker connections on each worker: more would make the one-thread client
        # the bottleneck (its queueing would be measured, not the proxy's switch).
        keep, count = [], {}
        for c in conns:
            if c.worker is not None and count.get(c.worker, 0) < per_worker:
                count[c.worker] = count.get(c.worker, 0) + 1
                keep.append(c)
            else:
                ep.unregister(c.fd)
                del byfd[c.fd]
                c.sock.close()
        conns = keep
        per = [sum(1 for c in conns if c.worker == w) for w in range(workers)]
        log(f"{mode}/{client}: {len(conns)} connections, per worker {per}")
        if min(per) == 0:
            raise RuntimeError(f"a worker got no connection after {len(conns)} connections")

        watch = CpuWatch([p.pid for p in procs])
        if client == "c":
            raw = measure_c(client_bin, conns, sock_path, switches, mode, gap_ms, switch_timeout,
                            t_limit, seed)
        else:
            raw = measure_python(conns, ep, byfd, sock_path, switches, mode, gap_ms,
                                 switch_timeout, t_limit, time_limit, seed)
        other_cpus = watch.others()
        raw["workers"] = [c.worker for c in conns]
        for c in conns:
            c.sock.close()
        ep.close()
        if not cut.alive():
            raise RuntimeError(f"cutover died (exit {cut.p.returncode})")
        res = {"mode": mode, "client": client, "workers": workers, "connections": len(conns),
               "connections_per_worker": per, "other_cpus": other_cpus,
               **summarize([raw], workers)}
        if keep_raw:
            res["raw"] = raw
        rc = cut.stop()
        procs.remove(cut)
        if rc not in (0, -signal.SIGTERM, 143):
            raise RuntimeError(f"cutover exited with {rc} on SIGTERM")
        return res
    finally:
        for p in reversed(procs):
            p.stop()


# ---------------------------------------------------------------- report


def f3(v):
    return "n/a" if v is None else f"{v:.3f}"


CLIENT_NAMES = {"c": "C client", "python": "Python client"}


def table(results, switches, conns_note=""):
    """Markdown lines for a {"durable": res, "memory": res, ...} dict (keys may also be
    "mode/client"; each res names its "mode" and "client")."""
    clients = sorted({r.get("client") for r in results.values() if r.get("client")})
    about = {
        "c": "C client (bench/switch_client.c: epoll, clock_gettime; ~6 µs of its own per "
             "response at p50, row *client time per response*)",
        "python": "Python client (one thread, epoll; ~10-30 µs per event: 0.1 ms resolution)"}
    who = " and ".join(about[c] for c in clients if c in about) or \
        "Python client (one thread, epoll; 0.1 ms resolution)"
    L = [f"### Switch latency: set-weights acknowledgement -> first response from the new pool "
         f"({switches} switches per mode)", "",
         "cutover -w 2 (nothing pinned), blue/green C origins, weights flipped 100/0 <-> 0/100. "
         "Keep-alive connections each keep one GET in flight back to back; the access log's "
         "`worker` field maps each connection to its worker. **post-ack** (headline): first "
         "new-pool response to a request *sent after* the ack was read, minus the ack time; per "
         "worker the earliest of its connections, *all workers* = the slowest worker of each "
         "switch. *baseline*: no switch; a sham ack at a random instant and the same statistic "
         "on the current pool: the floor the client and proxy impose without any switch. "
         "**any**: first new-pool response regardless of send time (includes the request "
         "in flight; negative = answered before the client read the ack). *first post-ack "
         "request RTT*: round trip of the request that gave the post-ack sample (post-ack = "
         f"wait for the request in flight + this). {who}; request RTT is the floor of "
         "post-ack. Goal: post-ack p99 < 1 ms.", "",
         "| mode | measure | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    for key, r in results.items():
        mode = r.get("mode", key.split("/")[0])
        name = {"durable": "state_file + audit_file", "memory": "no state/audit file",
                "baseline": "baseline: no switch (sham ack)"}.get(mode, mode)
        if r.get("client"):
            name += f", {CLIENT_NAMES.get(r['client'], r['client'])}"
        if "error" in r:
            L.append(f"| {name} | error: {r['error']} | | | |")
            continue
        rows = [("set-weights control RTT (sent -> ack)", r["control_rtt_ms"])] \
            if r["control_rtt_ms"] else []
        for k in ("overall",) + tuple(k for k in r["post_ack_ms"] if k.startswith("worker")):
            rows.append((f"post-ack, {'all workers' if k == 'overall' else k}", r["post_ack_ms"][k]))
        for k in ("overall",) + tuple(k for k in r["any_ms"] if k.startswith("worker")):
            rows.append((f"any, {'all workers' if k == 'overall' else k}", r["any_ms"][k]))
        if r.get("post_ack_request_rtt_ms"):
            rows.append(("first post-ack request RTT (per connection)",
                         r["post_ack_request_rtt_ms"]))
        rows.append(("request RTT (no switch effect; floor)", r["request_rtt_ms"]))
        if r.get("client_cost_ms"):
            rows.append(("client time per response (recv+parse+send)", r["client_cost_ms"]))
        for label, dd in rows:
            L.append(f"| {name} | {label} | {f3(dd['p50'])} | {f3(dd['p99'])} | {f3(dd['max'])} |")
    L.append("")
    for key, r in results.items():
        if "error" not in r:
            L.append(f"- {key}: {r['switches']} switches, {r['connections']} connections "
                     f"(per worker {r['connections_per_worker']}), stale responses (old pool "
                     f"after the ack) {r['stale_responses']}, switches timed out "
                     f"{r['timeouts']}"
                     + (f", other processes kept {r['other_cpus']:.2f} CPUs busy"
                        if r.get("other_cpus") is not None else "")
                     + ("; per round, other processes' CPUs -> post-ack all-workers p99 ms: "
                        + ", ".join(f"{o:.2f} -> {f3(p)}" for o, p in
                                    zip(r["other_cpus_rounds"], r["post_ack_p99_ms_rounds"]))
                        if r.get("rounds", 1) > 1 and r.get("post_ack_p99_ms_rounds") else "")
                     + ".")
    return L + [""]


def machine_line():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                         capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    return f"{model}, {os.cpu_count()} CPUs, kernel {os.uname().release}, cutover git {git}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--switches", type=int, default=1000)
    ap.add_argument("--modes", default="durable,memory,baseline",
                    help="durable,memory,baseline (comma-separated)")
    ap.add_argument("--conns", type=int, default=8, help="connections opened first")
    ap.add_argument("--per-worker", type=int, default=2, help="connections kept per worker")
    ap.add_argument("--build", default=os.path.join(ROOT, os.environ.get("BUILD", "build")))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--record", action="store_true",
                    help="append to bench/RESULTS.md and merge into bench/results/latest.json")
    ap.add_argument("--time-limit", type=float, default=600.0, help="seconds per mode")
    ap.add_argument("--client", default="c", choices=("c", "python", "both"),
                    help="the measuring client: c (bench/switch_client.c, default), python (the "
                         "original loop), both (each mode with each client)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="split --switches into this many rounds; every round runs each mode "
                         "(and client) once on a fresh cutover, so that all modes see the same "
                         "shared machine; the statistics are over all rounds")
    ap.add_argument("--raw", help="also write every switch's record into this directory")
    a = ap.parse_args()
    if a.rounds < 1 or a.switches < a.rounds:
        ap.error("need 1 <= --rounds <= --switches")
    if a.raw:
        os.makedirs(a.raw, exist_ok=True)
    cutover = os.path.join(a.build, "cutover")
    if not os.access(cutover, os.X_OK):
        print(f"switch: {cutover} missing (make)", file=sys.stderr)
        return 1
    try:  # the same command as bench/run.sh; only when missing or older than its source
        origin = build_tool(os.path.join(a.build, "bench", "origin"),
                            os.path.join(HERE, "origin.c"))
        if a.client != "python":
            build_client(os.path.join(a.build, "bench"))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print(f"switch: build: {e}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(SystemExit(f"signal {s}")))
    d = tempfile.mkdtemp(prefix="cutover-switch-")
    log(f"work directory {d}")
    clients = ("c", "python") if a.client == "both" else (a.client,)
    runs = [(mode, client, mode if len(clients) == 1 else f"{mode}/{client}")
            for mode in a.modes.split(",") if mode for client in clients]
    acc = {key: {"raws": [], "meta": [], "error": None} for _, _, key in runs}
    sizes = [a.switches // a.rounds + (i < a.switches % a.rounds) for i in range(a.rounds)]
    rc = 0
    for rnd, n in enumerate(sizes):
        for mode, client, key in runs:
            if acc[key]["error"]:
                continue
            t0 = time.monotonic()
            try:
                r = run(cutover, origin, d, n, mode, conns_start=a.conns, per_worker=a.per_worker,
                        time_limit=a.time_limit, seed=1 + rnd, client=client, keep_raw=True)
                acc[key]["raws"].append(r.pop("raw"))
                acc[key]["meta"].append(r)
                log(f"{key} (round {rnd + 1}/{a.rounds}): control RTT p50 "
                    f"{f3((r['control_rtt_ms'] or {}).get('p50'))} ms; post-ack all workers p50 "
                    f"{f3(r['post_ack_ms']['overall']['p50'])} p99 "
                    f"{f3(r['post_ack_ms']['overall']['p99'])} ms; other processes "
                    f"{r['other_cpus']:.2f} CPUs ({time.monotonic() - t0:.0f} s)")
            except (RuntimeError, OSError) as e:
                log(f"{key}: ERROR {e}")
                acc[key]["error"] = str(e)
                rc = 1
    results = {}
    for mode, client, key in runs:
        A = acc[key]
        if A["error"]:
            results[key] = {"mode": mode, "client": client, "error": A["error"]}
            continue
        m0 = A["meta"][0]
        others = [m["other_cpus"] for m in A["meta"] if m["other_cpus"] is not None]
        results[key] = {
            "mode": mode, "client": client, "workers": m0["workers"], "rounds": len(A["meta"]),
            "connections": m0["connections"],
            "connections_per_worker": m0["connections_per_worker"],
            "other_cpus": sum(others) / len(others) if others else None,
            "other_cpus_rounds": others,
            "post_ack_p99_ms_rounds": [m["post_ack_ms"]["overall"]["p99"] for m in A["meta"]],
            **summarize(A["raws"], m0["workers"])}
        if a.raw:
            with open(os.path.join(a.raw, f"{mode}-{client}.json"), "w") as f:
                json.dump(A["raws"], f)
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_line(),
           "switches": a.switches, "modes": results}
    md = "\n".join([f"## Switch latency run of {out['date']}", "", f"- machine: {out['machine']}",
                    ""] + table(results, a.switches))
    print(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    if a.record and rc == 0:
        with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
            f.write("\n" + md)
        latest = os.path.join(HERE, "results", "latest.json")
        try:
            with open(latest) as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {"scenarios": {}}
        data.setdefault("scenarios", {})["switch"] = out
        with open(latest, "w") as f:
            json.dump(data, f, indent=1, default=str)
        log(f"recorded in bench/RESULTS.md and {latest} (scenarios.switch)")
    return rc


if __name__ == "__main__":
    sys.exit(main())

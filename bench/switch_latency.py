#!/usr/bin/env python3
"""switch_latency.py - how fast a set-weights switch reaches every worker (see bench/README.md).

    python3 bench/switch_latency.py --switches 1000            # both modes, prints the table
    python3 bench/switch_latency.py --switches 1000 --record   # + appends to bench/RESULTS.md and
                                                               #   merges into bench/results/latest.json

cutover -w 2 between two origins (build/bench/origin: "blue\\n" / "green\\n"), route weights flipped
100/0 <-> 0/100 with set-weights on the control socket. Keep-alive client connections send
back-to-back GETs (one in flight each); each connection's path (/sw/cN) lets the access log's
"worker" field tell which worker serves it (SO_REUSEPORT spreads connections across workers;
connections (--conns, then 4 more at a time) are opened until every worker has --per-worker of
them; the extra ones are closed so that this one-thread client does not become the bottleneck).

Per switch (t_ack = monotonic time at which the acknowledgement was read):
  post-ack latency ("publication", the headline): for each connection, the first response from the
      new pool whose REQUEST was sent after t_ack; latency = its receive time - t_ack. Per worker:
      the earliest over that worker's connections; overall: the slowest worker (all workers done).
  any latency: the first response from the new pool received after the set-weights request was
      sent, whatever its send time (includes the request already in flight; may be negative: the
      worker adopted the snapshot and answered before the client read the ack).
  stale: responses from the OLD pool to requests sent after t_ack (the contract says none).
  control RTT: set-weights sent -> acknowledgement read.
Modes: "durable" (control.state_file + control.audit_file: two fsyncs before each ack), "memory"
(neither), and "baseline": no switch at all, a sham ack at a random instant and the same
statistic on the current pool, i.e. the floor the client and the proxy impose without a switch. Python 3 stdlib only, one thread, epoll; timestamps time.monotonic_ns().
Python's own per-event cost is ~10-30 us, so read the numbers at 0.1 ms resolution; the request
round-trip time (floor of the post-ack latency) is reported alongside.
Every process is stopped by its PID; everything is bounded in time; 127.0.0.1 and a temp dir only.
"""
import argparse
import gc
import json
import os
import random
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
    __slots__ = ("i", "sock", "fd", "req", "buf", "t_send", "worker", "post", "any", "n")

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


def run(cutover, origin_bin, workdir, switches, mode, blue=None, green=None, conns_start=8,
        per_worker=2, max_conns=64, workers=2, gap_ms=(0.5, 2.0), switch_timeout=2.0,
        time_limit=300.0, seed=1):
    """Runs one mode: "durable" (state_file + audit_file), "memory" (neither) or "baseline"
    (no switch at all: sham acks at random instants, same statistic; the floor). blue/green: ports of running origins, or None to
    start our own. Returns a result dict (raises RuntimeError on a harness failure)."""
    rnd = random.Random(seed)
    t_limit = time.monotonic() + time_limit
    d = tempfile.mkdtemp(prefix=f"switch-{mode}-", dir=workdir)
    procs = []
    try:
        if blue is None:
            ports = []
            for name in ("blue", "green"):
                port = free_port()
                p = Proc(f"origin-{name}", [origin_bin, "--port", str(port), "--name", name], d)
                procs.append(p)
                why = wait_ready(p, port)
                if why:
                    raise RuntimeError(f"origin {name} did not start: {why}")
                ports.append(port)
            blue, green = ports
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
        # Keep per_worker connections on each worker: more would make this one-thread Python
        # client the bottleneck (its queueing would be measured, not the proxy's switch).
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
        log(f"{mode}: {len(conns)} connections, per worker {per}")
        if min(per) == 0:
            raise RuntimeError(f"a worker got no connection after {len(conns)} connections")

        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl.connect(sock_path)
        ctl.setblocking(False)
        ep.register(ctl.fileno(), select.EPOLLIN)
        ctl_fd = ctl.fileno()
        ctl_buf = b""

        pools = ("blue", "green")
        cur = 0  # index of the pool now at 100 %
        rec = {"ctl_rtt": [], "post_w": {w: [] for w in range(workers)}, "post_all": [],
               "any_w": {w: [] for w in range(workers)}, "any_all": [], "post_conn": [],
               "any_conn": [], "stale": 0, "timeouts": 0, "req_rtt": []}
        phase = "gap"
        t_next = time.monotonic_ns() + 50_000_000
        t_sent = t_ack = 0
        target = None
        done_n = 0
        n_switch = 0
        rtt_sample = 0
        for c in conns:
            c.send()
        gc.disable()  # no collector pauses inside the measurement
        while n_switch < switches:
            now = time.monotonic_ns()
            if now / 1e9 > t_limit:
                raise RuntimeError(f"time limit {time_limit:.0f} s reached after {n_switch} switches")
            if phase == "gap" and now >= t_next and mode == "baseline":
                # No switch: a "sham ack" at a random instant, the current pool as the target:
                # the same statistic measures the client+proxy floor (the wait for a request sent
                # after an arbitrary instant to come back).
                target = pools[cur].encode() + b"\n"
                for c in conns:
                    c.post = None
                    c.any = None
                done_n = 0
                t_sent = t_ack = time.monotonic_ns()
                phase = "new"
            if phase == "gap" and now >= t_next:
                new = 1 - cur
                w = {pools[cur]: 0, pools[new]: 100}
                line = json.dumps({"id": str(n_switch), "op": "set-weights",
                                   "args": {"route": "bench", "weights": w,
                                            "reason": f"switch bench {n_switch}"}}) + "\n"
                target = pools[new].encode() + b"\n"
                for c in conns:
                    c.post = None
                    c.any = None
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
                    rec["ctl_rtt"].append(t_ack - t_sent)
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
                        rec["req_rtt"].append(t - c.t_send)
                    if phase in ("ack", "new") and body == target:
                        if c.any is None:
                            c.any = t
                        if phase == "new" and c.t_send > t_ack and c.post is None:
                            c.post = t - t_ack
                            done_n += 1
                    elif phase == "new" and c.t_send > t_ack and c.post is None:
                        rec["stale"] += 1  # request sent after the ack, answered by the old pool
                    c.send()
            if phase == "new" and (done_n == len(conns) or
                                   time.monotonic_ns() - t_ack > switch_timeout * 1e9):
                if done_n < len(conns):
                    rec["timeouts"] += 1
                for w in range(workers):
                    ps = [c.post for c in conns if c.worker == w and c.post is not None]
                    an = [c.any - t_ack for c in conns if c.worker == w and c.any is not None]
                    if ps:
                        rec["post_w"][w].append(min(ps))
                    if an:
                        rec["any_w"][w].append(min(an))
                if done_n == len(conns):
                    rec["post_all"].append(max(min(c.post for c in conns if c.worker == w)
                                               for w in range(workers)))
                    rec["any_all"].append(max(min(c.any - t_ack for c in conns if c.worker == w)
                                              for w in range(workers)))
                rec["post_conn"].extend(c.post for c in conns if c.post is not None)
                rec["any_conn"].extend(c.any - t_ack for c in conns if c.any is not None)
                if mode != "baseline":
                    cur = 1 - cur
                n_switch += 1
                phase = "gap"
                t_next = time.monotonic_ns() + int(rnd.uniform(*gap_ms) * 1e6)
        gc.enable()
        ctl.close()
        for c in conns:
            c.sock.close()
        ep.close()
        if not cut.alive():
            raise RuntimeError(f"cutover died (exit {cut.p.returncode})")
        res = {
            "mode": mode, "switches": n_switch, "workers": workers, "connections": len(conns),
            "connections_per_worker": per, "stale_responses": rec["stale"],
            "timeouts": rec["timeouts"],
            "control_rtt_ms": dist_ms(rec["ctl_rtt"]) if rec["ctl_rtt"] else None,
            "post_ack_ms": {"overall": dist_ms(rec["post_all"]),
                            **{f"worker{w}": dist_ms(v) for w, v in rec["post_w"].items()},
                            "per_connection": dist_ms(rec["post_conn"])},
            "any_ms": {"overall": dist_ms(rec["any_all"]),
                       **{f"worker{w}": dist_ms(v) for w, v in rec["any_w"].items()},
                       "per_connection": dist_ms(rec["any_conn"])},
            "request_rtt_ms": dist_ms(rec["req_rtt"]),
        }
        rc = cut.stop()
        procs.remove(cut)
        if rc not in (0, -signal.SIGTERM, 143):
            raise RuntimeError(f"cutover exited with {rc} on SIGTERM")
        return res
    finally:
        gc.enable()
        for p in reversed(procs):
            p.stop()


# ---------------------------------------------------------------- report


def f3(v):
    return "n/a" if v is None else f"{v:.3f}"


def table(results, switches, conns_note=""):
    """Markdown lines for a {"durable": res, "memory": res} dict."""
    L = [f"### Switch latency: set-weights acknowledgement -> first response from the new pool "
         f"({switches} switches per mode)", "",
         "cutover -w 2 (nothing pinned), blue/green C origins, weights flipped 100/0 <-> 0/100. "
         "Keep-alive connections each keep one GET in flight back to back; the access log's "
         "`worker` field maps each connection to its worker. **post-ack** (headline): first "
         "new-pool response to a request *sent after* the ack was read, minus the ack time; per "
         "worker the earliest of its connections, *all workers* = the slowest worker of each "
         "switch. *baseline*: no switch; a sham ack at a random instant and the same statistic on the current pool: the floor the client and proxy impose without any switch. **any**: first new-pool response regardless of send time (includes the request "
         "in flight; negative = answered before the client read the ack). Python client, one "
         "thread, epoll: 0.1 ms resolution; request RTT is the floor of post-ack. Goal: post-ack "
         "p99 < 1 ms.", "",
         "| mode | measure | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    for mode, r in results.items():
        if "error" in r:
            L.append(f"| {mode} | error: {r['error']} | | | |")
            continue
        name = {"durable": "state_file + audit_file", "memory": "no state/audit file",
                "baseline": "baseline: no switch (sham ack)"}.get(mode, mode)
        rows = [("set-weights control RTT (sent -> ack)", r["control_rtt_ms"])] \
            if r["control_rtt_ms"] else []
        for k in ("overall",) + tuple(k for k in r["post_ack_ms"] if k.startswith("worker")):
            rows.append((f"post-ack, {'all workers' if k == 'overall' else k}", r["post_ack_ms"][k]))
        for k in ("overall",) + tuple(k for k in r["any_ms"] if k.startswith("worker")):
            rows.append((f"any, {'all workers' if k == 'overall' else k}", r["any_ms"][k]))
        rows.append(("request RTT (no switch effect; floor)", r["request_rtt_ms"]))
        for label, dd in rows:
            L.append(f"| {name} | {label} | {f3(dd['p50'])} | {f3(dd['p99'])} | {f3(dd['max'])} |")
    L.append("")
    for mode, r in results.items():
        if "error" not in r:
            L.append(f"- {mode}: {r['switches']} switches, {r['connections']} connections "
                     f"(per worker {r['connections_per_worker']}), stale responses (old pool "
                     f"after the ack) {r['stale_responses']}, switches timed out "
                     f"{r['timeouts']}.")
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
    a = ap.parse_args()
    cutover = os.path.join(a.build, "cutover")
    origin = os.path.join(a.build, "bench", "origin")
    for pth in (cutover, origin):
        if not os.access(pth, os.X_OK):
            print(f"switch: {pth} missing (make; bench/run.sh builds the origin)", file=sys.stderr)
            return 1
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(SystemExit(f"signal {s}")))
    d = tempfile.mkdtemp(prefix="cutover-switch-")
    log(f"work directory {d}")
    results, rc = {}, 0
    for mode in [m for m in a.modes.split(",") if m]:
        t0 = time.monotonic()
        try:
            results[mode] = run(cutover, origin, d, a.switches, mode, conns_start=a.conns, per_worker=a.per_worker,
                                time_limit=a.time_limit)
            r = results[mode]
            log(f"{mode}: control RTT p50 {f3((r['control_rtt_ms'] or {}).get('p50'))} ms; post-ack all "
                f"workers p50 {f3(r['post_ack_ms']['overall']['p50'])} p99 "
                f"{f3(r['post_ack_ms']['overall']['p99'])} ms ({time.monotonic() - t0:.0f} s)")
        except (RuntimeError, OSError) as e:
            log(f"{mode}: ERROR {e}")
            results[mode] = {"error": str(e)}
            rc = 1
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

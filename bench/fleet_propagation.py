#!/usr/bin/env python3
"""fleet_propagation.py - how fast a weight change reaches every replica of a fleet (issue 14).

    make bench-fleet                                   # N=1000 changes per mode
    N=200 BUILD=build python3 bench/fleet_propagation.py
    SMOKE=1 python3 bench/fleet_propagation.py         # 50 changes per mode, nothing recorded

Three cutover replicas (-w 2 each) between two origins (one build/bench/origin process answering
"blue\\n" on one port and "green\\n" on the other), route weights flipped 100/0 <-> 0/100, so that
ONE response tells which pool a replica serves. Two modes, each on fresh processes:

  fleet    the replicas share their runtime state through etcd (control.store: 1 member on
           127.0.0.1, TLS with client certificates and auth, tests/integration/etcd_cluster.py).
           set-weights goes to r1's control socket only; r2 and r3 learn it from the watch.
           propagation = max over replicas of (first response from the new colour - the time
           r1's acknowledgement was read). ack = set-weights sent -> acknowledgement read.
  fanout   today's way: the same 3 replicas without a store; set-weights goes to all three
           control sockets at once (like cutoverctl's fan-out). propagation = max over replicas
           of (first response from the new colour - the first send). ack = first send -> the last
           of the three acknowledgements.

Serving is measured on the data path, never by status: each replica has one keep-alive client
connection; from the moment set-weights is sent, every connection sends GET / back to back (one
request in flight, POLL_GAP_MS between a response and the next request, default 0.2, so that
the client does not starve the 2-core machine) until a response comes from the new colour. One
thread, non-blocking sockets and a selector; times are time.monotonic(). A fleet replica may
serve the new colour before r1's acknowledgement is read: its sample is then negative (counted in
"before ack"); the propagation of a change is the max over replicas, so it is negative only when
every replica was ahead of the ack. A change that does not reach every replica within
CHANGE_TIMEOUT_S (5) is counted as "timed out" (and left out of the percentiles); the run goes
on after the replicas caught up (or stops after 3 such changes).

Environment: BUILD (build), N (1000), SMOKE=1 (N=50, results to bench/results/
fleet-propagation-smoke.json, RESULTS.md untouched), POLL_GAP_MS (0.2), PAUSE_MS (pause between
changes, 5), MODES (fleet,fanout). Writes bench/results/fleet-propagation.json and updates the
section "Fleet propagation" of bench/RESULTS.md. Every process (etcd, origin, replicas) is
started through tests/integration/harness.py and stopped by PID at the end.
"""
import json
import os
import platform
import selectors
import socket
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, os.environ.get("BUILD", "build"))
os.environ.setdefault("CUTOVER_BIN", os.path.join(BUILD, "cutover"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration", "control"))

import etcd_cluster  # noqa: E402
import harness  # noqa: E402
from harness import HOST, Proc, free_port, start_cutover  # noqa: E402
from test_control import Ctl, control_section, wait_ctl  # noqa: E402

ORIGIN = os.path.join(BUILD, "bench", "origin")
SMOKE = os.environ.get("SMOKE") == "1"
N = 50 if SMOKE else int(os.environ.get("N", "1000"))
POLL_GAP = float(os.environ.get("POLL_GAP_MS", "0.2")) / 1000.0
PAUSE = float(os.environ.get("PAUSE_MS", "5")) / 1000.0
MODES = os.environ.get("MODES", "fleet,fanout").split(",")
CHANGE_TIMEOUT_S = 5.0
ROUTE = "app"
REPLICAS = ("r1", "r2", "r3")
RESULTS_JSON = os.path.join(REPO, "bench", "results",
                            "fleet-propagation-smoke.json" if SMOKE else "fleet-propagation.json")
RESULTS_MD = os.path.join(REPO, "bench", "RESULTS.md")
REQ = b"GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n"


class OriginProc(Proc):
    kind = "origin"


def start_origins():
    """Blue and green in one bench/origin process; returns (proc, blue addr, green addr)."""
    import subprocess
    blue, green = free_port(), free_port()
    p = subprocess.Popen([ORIGIN, "--listen", "%d:blue" % blue, "--listen", "%d:green" % green,
                          "--host", HOST], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    proc = OriginProc(p)
    harness._register(proc)
    harness.wait_port(blue, 10.0, p)
    harness.wait_port(green, 10.0, p)
    return proc, "%s:%d" % (HOST, blue), "%s:%d" % (HOST, green)


def replica_config(name, blue, green, store):
    control = control_section()
    if store is not None:
        control["store"] = store
    return {"cluster": "bench-cluster", "region": "bench-region", "workers": 2,
            "listeners": [{"name": "main", "address": "%s:%d" % (HOST, free_port())}],
            "trusted_proxies": [],
            "routes": [{"name": ROUTE, "path_prefix": "/",
                        "pools": {"blue": {"endpoints": [blue]}, "green": {"endpoints": [green]}},
                        "weights": {"blue": 100, "green": 0}}],
            "control": control}


class HttpPoll:
    """One keep-alive connection to a replica, non-blocking; one GET in flight at most."""

    def __init__(self, name, port):
        self.name = name
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = b""
        self.in_flight = False
        self.next_send = 0.0
        self.requests = 0

    def send(self):
        self.sock.sendall(REQ)  # 37 bytes on an idle connection: never partial
        self.in_flight = True
        self.requests += 1

    def read(self):
        """Reads what is there; returns the colour of a completed response, else None."""
        try:
            d = self.sock.recv(65536)
        except BlockingIOError:
            return None
        if not d:
            raise ConnectionError("replica %s closed the connection" % self.name)
        self.buf += d
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("latin-1")
        status = head.split(" ", 2)[1]
        clen = 0
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                clen = int(v.strip())
        if len(self.buf) < end + 4 + clen:
            return None
        body = self.buf[end + 4:end + 4 + clen]
        self.buf = self.buf[end + 4 + clen:]
        self.in_flight = False
        if status != "200":
            raise RuntimeError("replica %s answered %s: %r" % (self.name, status, body[:200]))
        return body.decode().strip()


class CtlAsync:
    """A control connection used from the selector: send a request, read one reply line."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.setblocking(False)
        self.buf = b""
        self.n = 0

    def send_set_weights(self, target):
        self.n += 1
        other = "green" if target == "blue" else "blue"
        req = {"v": 1, "id": "b-%d" % self.n, "op": "set-weights",
               "args": {"route": ROUTE, "weights": {target: 100, other: 0},
                        "reason": "fleet propagation bench"}}
        self.sock.sendall(json.dumps(req).encode() + b"\n")

    def read(self):
        try:
            d = self.sock.recv(65536)
        except BlockingIOError:
            return None
        if not d:
            raise ConnectionError("control connection closed")
        self.buf += d
        if b"\n" not in self.buf:
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        rep = json.loads(line)
        if rep.get("ok") is not True:
            raise RuntimeError("set-weights refused: %r" % rep)
        return rep


def one_change(sel, polls, ctls, target):
    """Sends set-weights (to every control connection in ctls), polls every replica until it
    serves target. Returns (t_first_send, [ack time per ctl], {replica: first new-colour time},
    generation or None); the times of replicas that did not switch in time are missing."""
    now = time.monotonic()
    t0 = now
    for c in ctls:
        c.send_set_weights(target)
    for p in polls:
        if not p.in_flight:
            p.send()
    acks = [None] * len(ctls)
    first = {}
    gen = None
    deadline = t0 + CHANGE_TIMEOUT_S
    while (len(first) < len(polls) or None in acks) and time.monotonic() < deadline:
        wait = 0.05
        now = time.monotonic()
        for p in polls:
            if p.name not in first and not p.in_flight:
                if p.next_send <= now:
                    p.send()
                else:
                    wait = min(wait, p.next_send - now)
        for key, _ in sel.select(max(0.0, wait)):
            obj = key.data
            t = time.monotonic()
            if isinstance(obj, CtlAsync):
                rep = obj.read()
                if rep is not None:
                    acks[ctls.index(obj)] = t
                    gen = rep.get("generation")
            else:
                colour = obj.read()
                if colour is None:
                    continue
                if colour == target and obj.name not in first:
                    first[obj.name] = t
                obj.next_send = t + POLL_GAP
    # drain the responses still in flight, so that the next change starts clean
    end = time.monotonic() + 2.0
    while any(p.in_flight for p in polls) and time.monotonic() < end:
        for key, _ in sel.select(0.05):
            if isinstance(key.data, HttpPoll):
                key.data.read()
    return t0, acks, first, gen


def pct(vals, q):
    if not vals:
        return None
    s = sorted(vals)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def summary(vals):
    if not vals:
        return {"n": 0}
    return {"n": len(vals), "p50": pct(vals, 50), "p90": pct(vals, 90), "p99": pct(vals, 99),
            "max": max(vals), "min": min(vals), "mean": statistics.fmean(vals)}


def run_mode(mode, n):
    """Starts the processes for one mode, runs n changes, stops everything. Returns a dict."""
    print("== %s: starting %s3 replicas (-w 2)" % (mode, "etcd (TLS+auth) and " if mode ==
                                                       "fleet" else ""), flush=True)
    etcd = None
    started = []
    polls, ctls, sel = [], [], None
    try:
        origin, blue, green = start_origins()
        started.append(origin)
        if mode == "fleet":
            etcd = etcd_cluster.EtcdCluster(members=1, prefix="/cutover/bench/")
        reps = {}
        for name in REPLICAS:
            store = None
            if etcd is not None:
                store = etcd.store_config(replica=name, dial_timeout_ms=300,
                                          request_timeout_ms=1000, lease_ttl_s=10)
            cx = start_cutover(replica_config(name, blue, green, store), workers=2)
            wait_ctl(cx)
            reps[name] = cx
            started.append(cx)
        if etcd is not None:
            # every replica registered and converged before measuring
            def converged():
                with Ctl(reps["r1"].config["control"]["socket"], timeout=5) as c:
                    f = c.call("status").get("result", {}).get("fleet", {})
                return (len(f.get("replicas", [])) == len(REPLICAS) and
                        f.get("converged") is True)
            harness.wait_until(converged, 15, interval=0.1, what="3 registered replicas")
        sel = selectors.DefaultSelector()
        for name in REPLICAS:
            p = HttpPoll(name, reps[name].port)
            polls.append(p)
            sel.register(p.sock, selectors.EVENT_READ, p)
        targets = ["r1"] if mode == "fleet" else list(REPLICAS)
        for name in targets:
            c = CtlAsync(reps[name].config["control"]["socket"])
            ctls.append(c)
            sel.register(c.sock, selectors.EVENT_READ, c)
        # warm-up: every connection answers blue
        for p in polls:
            p.send()
        end = time.monotonic() + 5
        seen = {}
        while len(seen) < len(polls) and time.monotonic() < end:
            for key, _ in sel.select(0.05):
                col = key.data.read()
                if col is not None:
                    seen[key.data.name] = col
        if seen != {r: "blue" for r in REPLICAS}:
            raise RuntimeError("warm-up: replicas serve %r, expected blue everywhere" % seen)
        prop, ack, per_replica, before_ack = [], [], {r: [] for r in REPLICAS}, 0
        e2e = []
        timeouts, gens = [], []
        t_start = time.monotonic()
        for i in range(n):
            target = "green" if i % 2 == 0 else "blue"
            t0, acks, first, gen = one_change(sel, polls, ctls, target)
            if None in acks or len(first) < len(REPLICAS):
                timeouts.append({"change": i, "target": target,
                                 "acked": [a is not None for a in acks],
                                 "switched": sorted(first), "generation": gen})
                print("  change %d: not everywhere within %.0f s (acks %s, switched %s)"
                      % (i, CHANGE_TIMEOUT_S, [a is not None for a in acks], sorted(first)),
                      flush=True)
                if len(timeouts) >= 3:
                    raise RuntimeError("3 changes did not propagate; stopping")
                # let the stragglers catch up before going on
                t0b, acks_b, first_b, _ = one_change(sel, polls, [], target)
                if len(first_b) < len(REPLICAS):
                    raise RuntimeError("replicas %s never served %s" % (
                        sorted(set(REPLICAS) - set(first_b)), target))
                continue
            gens.append(gen)
            if mode == "fleet":
                base = acks[0]
                ack.append((acks[0] - t0) * 1000)
            else:
                base = t0
                ack.append((max(acks) - t0) * 1000)
            lat = {r: (first[r] - base) * 1000 for r in REPLICAS}
            for r in REPLICAS:
                per_replica[r].append(lat[r])
            if mode == "fleet" and min(lat.values()) < 0:
                before_ack += 1
            prop.append(max(lat.values()))
            e2e.append((max(first.values()) - t0) * 1000)
            if (i + 1) % 200 == 0:
                print("  %d/%d changes, p50 %.2f ms so far" % (i + 1, n, pct(prop, 50)),
                      flush=True)
            time.sleep(PAUSE)
        wall = time.monotonic() - t_start
        problems, event_counts = [], {}
        for name, cx in reps.items():
            counts = event_counts.setdefault(name, {})
            for e in cx.events():
                counts[e.get("event", "?")] = counts.get(e.get("event", "?"), 0) + 1
                ev = e.get("event", "")
                if any(w in ev for w in ("error", "unreachable", "conflict", "refused", "lost",
                                         "invalid", "failed")):
                    problems.append({"replica": name, "event": e})
        gaps = sum(1 for a, b in zip(gens, gens[1:]) if a is not None and b is not None
                   and b != a + 1)
        return {"mode": mode, "changes": n, "measured": len(prop), "wall_s": round(wall, 1),
                "propagation_ms": summary(prop), "ack_ms": summary(ack),
                "send_to_all_serving_ms": summary(e2e),
                "per_replica_ms": {r: summary(v) for r, v in per_replica.items()},
                "changes_with_a_replica_before_ack": before_ack,
                "timed_out": timeouts, "generation_gaps": gaps,
                "requests": sum(p.requests for p in polls),
                "suspicious_events": problems[:50], "suspicious_event_count": len(problems),
                "event_counts": event_counts,
                "stderr_bytes": {r: len(cx.stderr_text()) for r, cx in reps.items()}}
    finally:
        for c in ctls:
            c.sock.close()
        for p in polls:
            p.sock.close()
        if sel is not None:
            sel.close()
        for p in reversed(started):
            p.terminate(timeout=5.0)
        if etcd is not None:
            etcd.close()


def fmt(v):
    return "-" if v is None else "%.2f" % v


def table(res):
    rows = ["| mode | changes | what | p50 ms | p90 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|---|"]
    for mode in MODES:
        r = res["modes"].get(mode)
        if not r:
            continue
        label = {"fleet": "fleet store (set-weights on r1)",
                 "fanout": "today's fan-out (set-weights on r1, r2, r3 in parallel)"}[mode]
        for what, key in (("propagation: " + ("r1's ack" if mode == "fleet" else "first send")
                           + " -> every replica serves", "propagation_ms"),
                          ("end to end: first send -> every replica serves", "send_to_all_serving_ms"),
                          ("ack: " + ("send -> r1's ack" if mode == "fleet"
                                      else "first send -> last ack"), "ack_ms")):
            if mode == "fanout" and key == "send_to_all_serving_ms":
                continue  # the same numbers as its propagation
            s = r[key]
            rows.append("| %s | %d/%d | %s | %s | %s | %s | %s |" % (
                label, r["measured"], r["changes"], what, fmt(s.get("p50")), fmt(s.get("p90")),
                fmt(s.get("p99")), fmt(s.get("max"))))
    return "\n".join(rows)


def write_md(res):
    import textwrap

    def para(text):
        return textwrap.fill(text, 100, break_on_hyphens=False)
    fl = res["modes"].get("fleet", {})
    p99 = fl.get("propagation_ms", {}).get("p99")
    lines = ["## Fleet propagation", "",
             para("Run of %s, %d cores shared with other jobs (a noisy machine: compare tails "
                  "with care; %s). `make bench-fleet` (bench/fleet_propagation.py): 3 replicas "
                  "x 2 workers, etcd 3.4 (1 member, TLS + auth) on loopback, weights flipped "
                  "100/0 <-> 0/100, serving measured on the data path (one keep-alive connection "
                  "per replica, GETs back to back with a %.1f ms gap). Fleet: set-weights on r1, "
                  "propagation from r1's acknowledgement; fan-out: set-weights on the three "
                  "control sockets at once, from the first send."
                  % (res["date"], res["cpus"], res["machine"], POLL_GAP * 1000)), "",
             table(res), ""]
    if fl:
        ev = fl.get("event_counts", {})
        lines.append(para(
            "Goal (issue 14): fleet p99 under 50 ms: %s (p99 %s ms). A negative propagation "
            "means every replica served the new colour before r1's ack was read: the watch "
            "reaches the replicas while r1 still finishes the change (its ack comes after the "
            "etcd transaction's reply and the local state and audit writes); at least one "
            "replica was ahead of the ack in %d of %d changes. Per replica, fleet (p50 / p99 ms "
            "from r1's ack): %s. fleet_applied events (a state applied from the watch): %s. "
            "Timed out: %d; suspicious replica events: %d." % (
                "met" if p99 is not None and p99 < 50 else "NOT met", fmt(p99),
                fl["changes_with_a_replica_before_ack"], fl["measured"],
                ", ".join("%s %s / %s" % (r, fmt(fl["per_replica_ms"][r].get("p50")),
                                          fmt(fl["per_replica_ms"][r].get("p99")))
                          for r in REPLICAS),
                ", ".join("%s %d" % (r, ev.get(r, {}).get("fleet_applied", 0))
                          for r in REPLICAS),
                len(fl["timed_out"]), fl["suspicious_event_count"])))
        lines.append("")
    lines.append("Raw numbers: `bench/results/fleet-propagation.json`.")
    section = "\n".join(lines) + "\n"
    try:
        with open(RESULTS_MD) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    start = text.find("\n## Fleet propagation\n")
    if start >= 0:
        nxt = text.find("\n## ", start + 1)
        text = text[:start + 1] + section + (text[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(RESULTS_MD, "w") as f:
        f.write(text)


def main():
    for b in (os.environ["CUTOVER_BIN"], ORIGIN):
        if not os.access(b, os.X_OK):
            sys.exit("fleet_propagation: %s is missing (make BUILD=... all %s)" % (b, ORIGIN))
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "machine": "%s, %s" % (platform.node(), platform.platform()),
           "cpus": os.cpu_count(), "poll_gap_ms": POLL_GAP * 1000, "pause_ms": PAUSE * 1000,
           "smoke": SMOKE, "modes": {}}
    rc = 0
    try:
        for mode in MODES:
            res["modes"][mode] = run_mode(mode, N)
            r = res["modes"][mode]
            print("   propagation p50 %s p99 %s max %s ms; ack p50 %s ms; timed out %d; "
                  "suspicious events %d" % (fmt(r["propagation_ms"].get("p50")),
                                            fmt(r["propagation_ms"].get("p99")),
                                            fmt(r["propagation_ms"].get("max")),
                                            fmt(r["ack_ms"].get("p50")), len(r["timed_out"]),
                                            r["suspicious_event_count"]), flush=True)
            if r["timed_out"]:
                rc = 1
        for problem in harness.stop_and_check():  # a replica that crashed fails the run
            print("fleet_propagation: %s" % problem, flush=True)
            rc = 1
    finally:
        harness.cleanup_all()
    os.makedirs(os.path.dirname(RESULTS_JSON), exist_ok=True)
    with open(RESULTS_JSON, "w") as f:
        json.dump(res, f, indent=1)
    print()
    print(table(res))
    if not SMOKE:
        write_md(res)
        print("\nwritten: %s, section \"Fleet propagation\" of %s" % (RESULTS_JSON, RESULTS_MD))
    return rc


if __name__ == "__main__":
    sys.exit(main())

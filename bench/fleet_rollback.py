#!/usr/bin/env python3
"""fleet_rollback.py - how fast a fleet plan rolls the whole fleet back when green fails (issue 15).

    make bench-fleet-rollback                          # N=20 rollbacks
    N=5 BUILD=build python3 bench/fleet_rollback.py
    SMOKE=1 python3 bench/fleet_rollback.py            # 3 rollbacks, nothing recorded in RESULTS.md

The fleet of bench/fleet_propagation.py: etcd 3.4 (1 member on 127.0.0.1, TLS with client
certificates and auth, tests/integration/etcd_cluster.py), three cutover replicas (-w 2 each)
sharing their state through it, route "app" between blue and green (two build/bench/origin
processes answering "blue\\n" and "green\\n"; green's process answers "/" with 500 after
SIGUSR1 and with 200 again after SIGUSR2). Load on every replica: CONNS (2) keep-alive
connections per replica, each sending GET / back to back (one request in flight, GAP_MS, default
1, between a response and the next request), one thread, non-blocking sockets and a selector;
times are time.time() (wall clock, so that they compare with the audit records' times).

One run: a gated shift (steps STEPS, default 20,100, hold HOLD_S, default 120, gate 5xx <= 5 %,
min_requests 20) is started through one replica (r1, r2, r3 in turn); once the plan runs and
every replica has served at least 3 answers from green, green's origin gets SIGUSR1. Measured:

  first failing request   the first 500 any load client receives (t0)
  decision                the leader's rollback record (op "rollback", actor auto) in its
                          audit file: its "time" - t0
  every replica stable    per replica, the receipt of the last answer from green (a 500: the
                          body names the pool) on any of its connections; the run ends when
                          every replica's status shows the plan rolled back and QUIET_S (1.0)
                          more seconds of load reached no green; stable = max over replicas
  propagation             stable - the decision's record time
  total                   stable - t0 (the issue's goal: <= 5 s)

Then green is healthy again (SIGUSR2), the weights are back at blue 100 everywhere (the rollback
put them there; checked on status) and the next run starts. Status is polled every 200 ms from the
same thread (a call takes about a millisecond, during which responses wait in the socket buffers:
that much uncertainty on a receipt time). The "last answer from green" is exact for what the
clients observed; the switch itself may have happened slightly earlier (a replica at 20 % green
sends a request there every few ms under this load, so the uncertainty is a few ms).

Environment: BUILD (build), N (20), SMOKE=1 (N=3, results to bench/results/
fleet-rollback-smoke.json, RESULTS.md untouched), CONNS (2), GAP_MS (1), STEPS (20,100),
HOLD_S (120). Writes bench/results/fleet-rollback.json and the section "Fleet rollback" of
bench/RESULTS.md. Every process (etcd, origins, replicas) is started through
tests/integration/harness.py and stopped by PID at the end.
"""
import json
import os
import platform
import selectors
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

import fleet_propagation as fp  # noqa: E402  (sets CUTOVER_BIN and the test paths)
import etcd_cluster  # noqa: E402
import harness  # noqa: E402
from harness import HOST, free_port, start_cutover  # noqa: E402
from test_control import Ctl, wait_ctl  # noqa: E402

SMOKE = os.environ.get("SMOKE") == "1"
N = 3 if SMOKE else int(os.environ.get("N", "20"))
CONNS = int(os.environ.get("CONNS", "2"))
GAP = float(os.environ.get("GAP_MS", "1")) / 1000.0
STEPS = [int(x) for x in os.environ.get("STEPS", "20,100").split(",")]
HOLD_S = int(os.environ.get("HOLD_S", "120"))
MAX_5XX, MIN_REQUESTS = 5, 20
QUIET_S = 1.0
RUN_TIMEOUT_S = 30.0
GOAL_S = 5.0
ROUTE = fp.ROUTE
REPLICAS = fp.REPLICAS
RESULTS_JSON = os.path.join(REPO, "bench", "results",
                            "fleet-rollback-smoke.json" if SMOKE else "fleet-rollback.json")
RESULTS_MD = os.path.join(REPO, "bench", "RESULTS.md")
REQ = b"GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n"


def start_origin(name):
    """One bench/origin process answering name; returns (proc, addr)."""
    port = free_port()
    p = subprocess.Popen([fp.ORIGIN, "--listen", "%d:%s" % (port, name), "--host", HOST],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    proc = fp.OriginProc(p)
    harness._register(proc)
    harness.wait_port(port, 10.0, p)
    return proc, "%s:%d" % (HOST, port)


class Conn:
    """One keep-alive load connection to a replica; one GET in flight at most."""

    def __init__(self, replica, port):
        self.replica = replica
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = b""
        self.in_flight = False
        self.next_send = 0.0

    def send(self):
        self.sock.sendall(REQ)
        self.in_flight = True

    def read(self):
        """Returns the list of (status, colour) of the responses completed by this read."""
        try:
            d = self.sock.recv(65536)
        except BlockingIOError:
            return []
        if not d:
            raise ConnectionError("replica %s closed a load connection" % self.replica)
        self.buf += d
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buf[:end].decode("latin-1")
            clen = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    clen = int(v.strip())
            if len(self.buf) < end + 4 + clen:
                break
            body = self.buf[end + 4:end + 4 + clen]
            self.buf = self.buf[end + 4 + clen:]
            self.in_flight = False
            out.append((int(head.split(" ", 2)[1]), body.decode("latin-1").strip()))
        return out


class Load:
    """CONNS connections per replica, pumped from the caller's thread; per replica what the
    current run saw."""

    def __init__(self, ports):
        self.sel = selectors.DefaultSelector()
        self.conns = []
        for name, port in ports.items():
            for _ in range(CONNS):
                c = Conn(name, port)
                self.conns.append(c)
                self.sel.register(c.sock, selectors.EVENT_READ, c)
        self.total = 0
        self.reset()

    def reset(self):
        self.seen = {r: {"green_ok": 0, "green_5xx": 0, "blue": 0, "other": 0,
                         "last_green": None, "first_5xx": None} for r in REPLICAS}

    def pump(self, seconds):
        """Runs the load for seconds (at least one select)."""
        end = time.time() + seconds
        while True:
            now = time.time()
            wait = max(0.0, min(0.02, end - now))
            for c in self.conns:
                if not c.in_flight:
                    if c.next_send <= now:
                        c.send()
                    else:
                        wait = min(wait, c.next_send - now)
            for key, _ in self.sel.select(wait):
                c = key.data
                rs = c.read()
                if not rs:
                    continue
                t = time.time()
                s = self.seen[c.replica]
                for status, colour in rs:
                    self.total += 1
                    if colour == "green":
                        s["last_green"] = t
                        if status == 200:
                            s["green_ok"] += 1
                        else:
                            s["green_5xx"] += 1
                            if s["first_5xx"] is None:
                                s["first_5xx"] = t
                    elif colour == "blue" and status == 200:
                        s["blue"] += 1
                    else:
                        s["other"] += 1
                c.next_send = t + GAP
            if time.time() >= end:
                return

    def close(self):
        for c in self.conns:
            c.sock.close()
        self.sel.close()


def rfc3339(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def audit(cx):
    with open(cx.config["control"]["audit_file"]) as f:
        return [json.loads(line) for line in f if line.strip()]


def actor_of(rec):
    a = rec.get("actor")
    return a if isinstance(a, str) else (a or {}).get("user") or (a or {}).get("name")


def call(cx, op, args=None):
    with Ctl(cx.config["control"]["socket"], timeout=5) as c:
        return c.call(op, args, timeout=5)


def route_status(cx):
    rep = call(cx, "status")
    if rep.get("ok") is not True:
        raise RuntimeError("status refused: %r" % rep)
    return rep["result"]["routes"][0]


def one_run(i, reps, green, load):
    """One shift, green failing, the fleet rolled back. Returns the run's record."""
    via = REPLICAS[i % len(REPLICAS)]
    # green healthy, the fleet on blue
    green.popen.send_signal(signal.SIGUSR2)
    for name, cx in reps.items():
        w = route_status(cx)["weights"]
        if w != {"blue": 100, "green": 0}:
            raise RuntimeError("run %d: %s starts at %r" % (i, name, w))
    load.pump(0.2)
    load.reset()
    rep = call(reps[via], "shift", {"route": ROUTE, "to": "green", "steps": STEPS,
                                    "hold_s": HOLD_S, "reason": "fleet rollback bench",
                                    "gates": {"max_5xx_percent": MAX_5XX,
                                              "min_requests": MIN_REQUESTS}})
    if rep.get("ok") is not True:
        raise RuntimeError("run %d: shift refused: %r" % (i, rep))
    t_shift = time.time()
    # the plan runs and green flows on every replica
    while not all(load.seen[r]["green_ok"] >= 3 for r in REPLICAS):
        if time.time() > t_shift + RUN_TIMEOUT_S:
            raise RuntimeError("run %d: green never reached every replica: %r" % (i, load.seen))
        load.pump(0.005)
    green_before = {r: load.seen[r]["green_ok"] for r in REPLICAS}
    t_signal = time.time()
    green.popen.send_signal(signal.SIGUSR1)
    # until every replica's status says rolled back, then QUIET_S more seconds
    t_rolled = None
    next_poll = time.time()
    while True:
        load.pump(0.02)
        now = time.time()
        if now > t_signal + RUN_TIMEOUT_S:
            raise RuntimeError("run %d: no rollback on every replica within %.0f s: %r"
                               % (i, RUN_TIMEOUT_S, load.seen))
        if t_rolled is None and now >= next_poll:
            next_poll = now + 0.2
            plans = [route_status(cx).get("plan") or {} for cx in reps.values()]
            if all(p.get("state") == "rolled_back" for p in plans):
                t_rolled = time.time()
            elif any(p.get("state") == "promoted" for p in plans):
                raise RuntimeError("run %d: the plan promoted: %r" % (i, plans))
        if t_rolled is not None and now >= t_rolled + QUIET_S and \
                all(s["last_green"] is None or now - s["last_green"] >= QUIET_S
                    for s in load.seen.values()):
            break
    seen = {r: dict(s) for r, s in load.seen.items()}
    firsts = [s["first_5xx"] for s in seen.values() if s["first_5xx"] is not None]
    if not firsts:
        raise RuntimeError("run %d: the clients saw no 500 from green: %r" % (i, seen))
    t0 = min(firsts)
    stable = {r: s["last_green"] for r, s in seen.items()}
    t_stable = max(stable.values())
    # the leader's decision
    rbs = []
    for name, cx in reps.items():
        for a in audit(cx):
            if a.get("op") == "rollback" and actor_of(a) == "auto" and a.get("result") == "ok":
                rbs.append((name, a))
    rbs = [(n, a) for n, a in rbs if rfc3339(a["time"]) >= t_shift - 1.0]
    if len(rbs) != 1:
        raise RuntimeError("run %d: %d rollback records: %r" % (i, len(rbs), rbs))
    leader, rec = rbs[0]
    args = rec["args"] if isinstance(rec["args"], dict) else json.loads(rec["args"])
    t_dec = rfc3339(rec["time"])
    plan = route_status(reps[via]).get("plan") or {}
    r = {"run": i, "shift_via": via, "leader": leader,
         "gate": args.get("gate"), "value": args.get("value"),
         "window": args.get("window"), "fleet": args.get("fleet"),
         "green_ok_before_failing": green_before,
         "signal_to_first_500_ms": round((t0 - t_signal) * 1000, 1),
         "decision_ms": round((t_dec - t0) * 1000, 1),
         "propagation_ms": round((t_stable - t_dec) * 1000, 1),
         "total_ms": round((t_stable - t0) * 1000, 1),
         "per_replica_stable_ms": {n: round((t - t0) * 1000, 1) for n, t in stable.items()},
         "green_5xx_seen": {n: s["green_5xx"] for n, s in seen.items()},
         "other_answers": sum(s["other"] for s in seen.values()),
         "status_rolled_back_ms": round((t_rolled - t0) * 1000, 1),
         "plan_rolled_back": plan.get("rolled_back")}
    return r


def stats(vals):
    return {"n": len(vals), "p50": fp.pct(vals, 50), "p90": fp.pct(vals, 90),
            "max": max(vals) if vals else None, "min": min(vals) if vals else None}


def main():
    for b in (os.environ["CUTOVER_BIN"], fp.ORIGIN):
        if not os.access(b, os.X_OK):
            sys.exit("fleet_rollback: %s is missing (make BUILD=... all %s)" % (b, fp.ORIGIN))
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "machine": "%s, %s" % (platform.node(), platform.platform()),
           "cpus": os.cpu_count(), "runs_asked": N, "conns_per_replica": CONNS,
           "gap_ms": GAP * 1000, "steps": STEPS, "hold_s": HOLD_S,
           "gates": {"max_5xx_percent": MAX_5XX, "min_requests": MIN_REQUESTS},
           "smoke": SMOKE, "runs": [], "errors": []}
    etcd, load = None, None
    t_start = time.time()
    try:
        print("== starting etcd (TLS+auth), 2 origins, 3 replicas (-w 2)", flush=True)
        _, blue = start_origin("blue")
        green, green_addr = start_origin("green")
        etcd = etcd_cluster.EtcdCluster(members=1, prefix="/cutover/bench/")
        reps = {}
        for name in REPLICAS:
            store = etcd.store_config(replica=name, dial_timeout_ms=300,
                                      request_timeout_ms=1000, lease_ttl_s=10)
            cx = start_cutover(fp.replica_config(name, blue, green_addr, store), workers=2)
            wait_ctl(cx)
            reps[name] = cx

        def converged():
            f = call(reps["r1"], "status").get("result", {}).get("fleet", {})
            return len(f.get("replicas", [])) == len(REPLICAS) and f.get("converged") is True
        harness.wait_until(converged, 15, interval=0.1, what="3 registered replicas")
        load = Load({n: cx.port for n, cx in reps.items()})
        load.pump(0.5)
        for i in range(N):
            try:
                r = one_run(i, reps, green, load)
            except RuntimeError as e:
                res["errors"].append(str(e))
                print("  run %d: %s" % (i, e), flush=True)
                if len(res["errors"]) >= 3:
                    break
                # back to a clean start: green healthy, blue everywhere
                green.popen.send_signal(signal.SIGUSR2)
                call(reps["r1"], "promote", {"route": ROUTE, "pool": "blue",
                                             "reason": "fleet rollback bench: reset"})
                load.pump(2.0)
                continue
            res["runs"].append(r)
            print("  run %2d via %s, leader %s: first 500 -> decision %6.1f ms, -> every "
                  "replica on blue %6.1f ms (propagation %5.1f ms; window %s req %s 5xx %.1f%%)"
                  % (i, r["shift_via"], r["leader"], r["decision_ms"], r["total_ms"],
                     r["propagation_ms"], r["window"]["requests"], r["window"]["errors_5xx"],
                     r["window"]["ratio_percent"]), flush=True)
            load.pump(0.3)
        res["requests"] = load.total
        ev = {}
        for name, cx in reps.items():
            counts = ev.setdefault(name, {})
            for e in cx.events():
                counts[e.get("event", "?")] = counts.get(e.get("event", "?"), 0) + 1
        res["event_counts"] = ev
        # every replica stopped and judged: one that died by a signal fails the run
        res["crashes"] = harness.stop_and_check()
        for problem in res["crashes"]:
            print("fleet_rollback: %s" % problem, flush=True)
    finally:
        if load is not None:
            load.close()
        harness.cleanup_all()
        if etcd is not None:
            etcd.close()
    res["wall_s"] = round(time.time() - t_start, 1)
    runs = res["runs"]
    for key in ("total_ms", "decision_ms", "propagation_ms", "status_rolled_back_ms"):
        res[key] = stats([r[key] for r in runs])
    res["goal_met"] = bool(runs) and not res["errors"] and res["total_ms"]["max"] <= GOAL_S * 1000
    os.makedirs(os.path.dirname(RESULTS_JSON), exist_ok=True)
    with open(RESULTS_JSON, "w") as f:
        json.dump(res, f, indent=1)
    print()
    print(table(res))
    if not SMOKE:
        write_md(res)
        print("\nwritten: %s, section \"Fleet rollback\" of %s" % (RESULTS_JSON, RESULTS_MD))
    return 0 if runs and not res["errors"] else 1


def fmt(v):
    return "-" if v is None else "%.0f" % v


def table(res):
    rows = ["| what | runs | p50 ms | p90 ms | max ms | min ms |", "|---|---|---|---|---|---|"]
    for what, key in (("first failing request -> every replica serves blue only", "total_ms"),
                      ("first failing request -> the leader's rollback record", "decision_ms"),
                      ("the leader's record -> every replica serves blue only",
                       "propagation_ms"),
                      ("first failing request -> every replica's status rolled back (200 ms "
                       "polls)", "status_rolled_back_ms")):
        s = res[key]
        rows.append("| %s | %d | %s | %s | %s | %s |" % (what, s["n"], fmt(s["p50"]),
                                                         fmt(s["p90"]), fmt(s["max"]),
                                                         fmt(s["min"])))
    return "\n".join(rows)


def write_md(res):
    import textwrap

    def para(text):
        return textwrap.fill(text, 100, break_on_hyphens=False)
    runs = res["runs"]
    mx = res["total_ms"]["max"]
    lines = ["## Fleet rollback", "",
             para("Run of %s, %d cores shared with other jobs (%s). `make bench-fleet-rollback` "
                  "(bench/fleet_rollback.py): etcd 3.4 (1 member, TLS + auth), 3 replicas x 2 "
                  "workers, %d keep-alive load connections per replica (GET / back to back, "
                  "%.0f ms gap), a gated shift (steps %s, hold %d s, 5xx <= %d %%, min_requests "
                  "%d) started through r1, r2, r3 in turn; once green served every replica, "
                  "green's origin answers 500. From the first 500 a client saw to the last "
                  "answer from green on any replica (data path; the run ends after every "
                  "replica's status shows the rollback and %.0f s more load reached no green)."
                  % (res["date"], res["cpus"], res["machine"], res["conns_per_replica"],
                     res["gap_ms"], ",".join(map(str, res["steps"])), res["hold_s"], MAX_5XX,
                     MIN_REQUESTS, QUIET_S)), "", table(res), ""]
    if runs:
        lines.append(para(
            "Goal (issue 15): <= %.0f s from the first failing request to every replica "
            "serving the stable weights: %s (max %s ms over %d runs; errors: %d). Decisions "
            "by the leader judged the fleet's window (replicas counted per decision: %s)."
            % (GOAL_S, "met" if res["goal_met"] else "NOT met", fmt(mx), len(runs),
               len(res["errors"]),
               ", ".join(sorted({str((r["fleet"] or {}).get("replicas_at_step"))
                                 for r in runs})))))
        lines.append("")
        lines.append("| run | via | leader | decision ms | propagation ms | total ms | "
                     "window requests / 5xx / % |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in runs:
            w = r["window"] or {}
            lines.append("| %d | %s | %s | %.0f | %.0f | %.0f | %s / %s / %.1f |" % (
                r["run"], r["shift_via"], r["leader"], r["decision_ms"], r["propagation_ms"],
                r["total_ms"], w.get("requests"), w.get("errors_5xx"),
                w.get("ratio_percent", 0.0)))
        lines.append("")
    lines.append("Raw numbers: `bench/results/fleet-rollback.json`.")
    section = "\n".join(lines) + "\n"
    try:
        with open(RESULTS_MD) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    start = text.find("\n## Fleet rollback\n")
    if start >= 0:
        nxt = text.find("\n## ", start + 1)
        text = text[:start + 1] + section + (text[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(RESULTS_MD, "w") as f:
        f.write(text)
    return 1 if res.get("crashes") else 0


if __name__ == "__main__":
    sys.exit(main())

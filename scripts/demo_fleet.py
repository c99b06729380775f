#!/usr/bin/env python3
"""demo_fleet.py - a release across a fleet of cutover replicas sharing one etcd (make demo-fleet).

Starts etcd (1 member on 127.0.0.1, TLS with client certificates and authentication, through
tests/integration/etcd_cluster.py), a blue and a green origin, and three cutover replicas r1, r2,
r3 whose configurations say 100/0 and whose control.store points at the same etcd prefix (the
fleet store, issue 14; docs/architecture.md, "The fleet store"). Then, with cutoverctl talking to
ONE replica's control socket each time:
  - status through r1: the fleet list, every replica registered and converged;
  - set-weights 90/10, then 50/50, each with --wait (the barrier over the whole fleet), and the
    traffic split measured on every replica;
  - a fourth replica r4 started mid-shift with a configuration that still says 100/0: it joins at
    the fleet's 50/50 from its first requests (its split, its status);
  - one rollback on r2: every replica back at 100/0.
Every process is started through the integration-test harness and stopped by PID at the end.
Exits 0 when every request succeeded, every split is what the weights say and the fleet
converged at every step.
"""
import http.client
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, os.environ.get("BUILD", "build"))
CUTOVER = os.path.join(BUILD, "cutover")
CUTOVERCTL = os.path.join(BUILD, "cutoverctl")
ORIGIN = os.path.join(BUILD, "bench", "origin")
os.environ["CUTOVER_BIN"] = CUTOVER
WORK = tempfile.mkdtemp(prefix="cutover-demo-fleet-")
os.environ.setdefault("CUTOVER_IT_WORKDIR", WORK)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import etcd_cluster  # noqa: E402
import harness  # noqa: E402
from harness import HOST, Proc, free_port, start_cutover, wait_until  # noqa: E402

ROUTE = "demo"
REQUESTS = 2000
TOLERANCE = 3.0  # percentage points


class Origin(Proc):
    kind = "origin"


def start_origin(name):
    port = free_port()
    p = subprocess.Popen([ORIGIN, "--port", str(port), "--name", name, "--host", HOST],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    harness._register(Origin(p))
    harness.wait_port(port, 10.0, p)
    return "%s:%d" % (HOST, port)


class Demo:
    def __init__(self):
        self.etcd = None
        self.replicas = {}
        self.blue = self.green = None
        self.ok = True

    def config(self, name):
        store = self.etcd.store_config(replica=name, dial_timeout_ms=300,
                                       request_timeout_ms=1000, lease_ttl_s=5)
        base = os.path.join(WORK, name)
        return {"cluster": "demo", "region": "local", "workers": 2,
                "listeners": [{"name": "demo", "address": "%s:%d" % (HOST, free_port())}],
                "trusted_proxies": [],
                "routes": [{"name": ROUTE, "path_prefix": "/",
                            "pools": {"blue": {"endpoints": [self.blue]},
                                      "green": {"endpoints": [self.green]}},
                            "weights": {"blue": 100, "green": 0}}],
                "control": {"socket": base + ".sock", "state_file": base + "-state.json",
                            "audit_file": base + "-audit.jsonl", "store": store}}

    def start_replica(self, name):
        cx = start_cutover(self.config(name), workers=2)
        sock = cx.config["control"]["socket"]
        wait_until(lambda: os.path.exists(sock), 10, what="control socket of " + name)
        self.replicas[name] = cx
        ev = [e["event"] for e in cx.events() if e.get("event", "").startswith("store_")]
        print("  %s: listening on 127.0.0.1:%d, control socket %s; configuration says 100/0; "
              "events: %s" % (name, cx.port, sock, ", ".join(ev) or "-"))
        return cx

    def sock(self, name):
        return self.replicas[name].config["control"]["socket"]

    def ctl(self, via, *args, show=True):
        """cutoverctl --socket <via's socket> ARGS; prints the command line and its output."""
        cmd = [CUTOVERCTL, "--socket", self.sock(via)] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if show:
            print("  $ cutoverctl --socket %s.sock %s" % (via, shlex.join(args)))
            for line in (r.stdout.strip() + "\n" + r.stderr.strip()).strip().splitlines():
                print("    " + line)
        if r.returncode != 0 and show:
            print("  cutoverctl failed (exit %d)" % r.returncode)
            self.ok = False
        return r

    def fleet(self, via):
        r = self.ctl(via, "--json", "status", show=False)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}

    def send(self, name, n=REQUESTS):
        """n GETs on one keep-alive connection to replica name: ({colour: count}, failures)."""
        counts, failures = {}, 0
        conn = http.client.HTTPConnection(HOST, self.replicas[name].port, timeout=10)
        for _ in range(n):
            try:
                conn.request("GET", "/", headers={"Host": "demo.local"})
                r = conn.getresponse()
                body = r.read().decode().strip()
                if r.status == 200:
                    counts[body] = counts.get(body, 0) + 1
                else:
                    failures += 1
            except (OSError, http.client.HTTPException):
                failures += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.replicas[name].port, timeout=10)
        conn.close()
        return counts, failures

    def show(self, label, names, want_green, n=REQUESTS):
        for name in names:
            counts, failures = self.send(name, n)
            total = sum(counts.values())
            green = counts.get("green", 0)
            share = 100.0 * green / total if total else 0.0
            bar = "#" * int(share / 2)
            print("  %-4s %-22s blue %5d  green %5d  -> green %6.2f %% |%-50s| failed %d"
                  % (name, label, counts.get("blue", 0), green, share, bar, failures))
            if failures or abs(share - want_green) > TOLERANCE:
                print("  ^ expected green %.0f %%" % want_green)
                self.ok = False

    def check_converged(self, via, want):
        """Waits (5 s) until status through via lists want replicas, all converged."""
        def f():
            st = self.fleet(via)
            fl = st_fleet(st)
            names = sorted(x.get("replica") for x in fl.get("replicas", []))
            return (names == sorted(want) and fl.get("converged") is True) and fl
        try:
            return wait_until(f, 5, interval=0.1, what="the fleet converged")
        except harness.HarnessError as e:
            print("  the fleet did not converge: %s" % e)
            self.ok = False
            return None


def st_fleet(st):
    """The fleet object of cutoverctl --json status (one replica asked)."""
    reps = st.get("replicas") or []
    for r in reps:
        res = (r.get("result") or {})
        if "fleet" in res:
            return res["fleet"]
    res = st.get("result") or {}
    return res.get("fleet", {})


def main():
    for b in (CUTOVER, CUTOVERCTL, ORIGIN):
        if not os.access(b, os.X_OK):
            sys.exit("demo-fleet: %s is missing (make demo-fleet builds it)" % b)
    d = Demo()
    try:
        print("Starting etcd (1 member, TLS with client certificates, authentication)...")
        d.etcd = etcd_cluster.EtcdCluster(members=1, prefix="/cutover/demo/")
        print("  etcd at %s, user %s (role %s: read/write on %s only)"
              % (d.etcd.endpoints[0], d.etcd.user, etcd_cluster.ROLE, d.etcd.prefix))
        d.blue, d.green = start_origin("blue"), start_origin("green")
        print("  origins: blue on %s, green on %s" % (d.blue, d.green))
        print("\nThree replicas sharing control.store (prefix %s):" % d.etcd.prefix)
        for name in ("r1", "r2", "r3"):
            d.start_replica(name)
        d.check_converged("r1", ["r1", "r2", "r3"])
        print("\nStatus through ONE replica (r1) lists the whole fleet:")
        d.ctl("r1", "status", ROUTE)
        d.show("100/0 (configuration)", ("r1", "r2", "r3"), 0.0)

        for blue, green in ((90, 10), (50, 50)):
            print("\nset-weights %d/%d on r1 only, --wait = the barrier over every registered "
                  "replica:" % (blue, green))
            t = time.monotonic()
            d.ctl("r1", "--wait", "set-weights", ROUTE, "blue=%d" % blue, "green=%d" % green,
                  "--reason", "demo-fleet: green %d%%" % green)
            print("  (acknowledged and the whole fleet at the new generation in %.0f ms)"
                  % ((time.monotonic() - t) * 1000))
            d.show("%d/%d" % (blue, green), ("r1", "r2", "r3"), float(green))

        print("\nA fourth replica joins mid-shift; its configuration still says 100/0:")
        d.start_replica("r4")
        print("  its very first requests (the fleet's 50/50, not its configuration's 100/0):")
        d.show("first requests", ("r4",), 50.0)
        d.ctl("r4", "status", ROUTE)
        if d.check_converged("r2", ["r1", "r2", "r3", "r4"]):
            print("  status through r2: 4 replicas registered, converged")

        print("\nRollback with one command (sent to r2 only):")
        d.ctl("r2", "--wait", "rollback", ROUTE, "--reason", "demo-fleet: roll back")
        d.show("after rollback", ("r1", "r2", "r3", "r4"), 0.0)
        fl = d.check_converged("r3", ["r1", "r2", "r3", "r4"])
        if fl:
            print("  fleet through r3: generation %s, replicas %s, converged %s" % (
                fl.get("generation"),
                ", ".join("%s@%s" % (x["replica"], x["generation"]) for x in fl["replicas"]),
                fl.get("converged")))
        d.ctl("r3", "status", ROUTE)

        bad = []
        for name, cx in d.replicas.items():
            for e in cx.events():
                ev = e.get("event", "")
                if any(w in ev for w in ("error", "unreachable", "refused", "invalid", "lost",
                                         "failed")):
                    bad.append("%s: %s" % (name, json.dumps(e)))
        if bad:
            print("\nreplica events worth a look:\n  " + "\n  ".join(bad[:20]))
        # every replica stopped with SIGTERM and judged: a death by a signal (or a sanitizer's
        # report) fails the demo, whatever it printed before
        for problem in harness.stop_and_check():
            print("demo-fleet: %s" % problem)
            d.ok = False
        print("\nlogs, configurations, state and audit files: %s" % WORK)
        print("demo-fleet %s" % ("passed: every request answered, every split as the fleet's "
                                 "weights say, every replica converged" if d.ok else "FAILED"))
        return 0 if d.ok else 1
    finally:
        for name in reversed(list(d.replicas)):
            d.replicas[name].terminate(timeout=10.0)
        if d.etcd is not None:
            d.etcd.close()
        harness.cleanup_all()


if __name__ == "__main__":
    sys.exit(main())

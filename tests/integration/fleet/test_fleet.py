"""Fleet store tests: three cutover replicas sharing their runtime state in a real etcd (TLS with
client certificates, authentication and a prefix-scoped role; tests/integration/etcd_cluster.py),
on loopback, with real upstreams. See docs/architecture.md, "The fleet store"."""
import json
import os
import signal
import subprocess
import time

import etcd_cluster
from harness import (HOST, RawConn, check, free_port, run_bin, start_cutover, start_upstream,
                     wait_until)
from test_control import Ctl, control_section, wait_ctl, weights_bp
from test_cutoverctl import ctl_bin

ROUTE = "app"


class Fleet:
    """An etcd cluster, a blue and a green upstream, and cutover replicas r1, r2, ... sharing
    the store's prefix (each with its own listener, control socket, state file, audit file)."""

    def __init__(self, members=1, weights=None, sticky=None, lease_ttl_s=10, **store_extra):
        self.etcd = etcd_cluster.EtcdCluster(members=members)
        self.blue = start_upstream("blue")
        self.green = start_upstream("green")
        self.weights = weights or {"blue": 90, "green": 10}
        self.sticky = sticky
        self.store_extra = dict(store_extra, lease_ttl_s=lease_ttl_s)
        self.replicas = {}

    def config(self, name, port, control=None):
        store = self.etcd.store_config(replica=name, dial_timeout_ms=300,
                                       request_timeout_ms=1000, **self.store_extra)
        control = control or control_section()
        control["store"] = store
        route = {"name": ROUTE, "path_prefix": "/",
                 "pools": {"blue": {"endpoints": [self.blue.addr]},
                           "green": {"endpoints": [self.green.addr]}},
                 "weights": dict(self.weights)}
        if self.sticky:
            route["sticky"] = self.sticky
        return {"cluster": "it-cluster", "region": "it-region", "workers": 2,
                "listeners": [{"name": "main", "address": "%s:%d" % (HOST, port)}],
                "trusted_proxies": [], "routes": [route], "control": control}

    def start(self, name, control=None, wait=True):
        port = free_port()
        cx = start_cutover(self.config(name, port, control), wait=wait)
        if wait:
            wait_ctl(cx)
        self.replicas[name] = cx
        return cx

    def sock(self, name):
        return self.replicas[name].config["control"]["socket"]

    def call(self, name, op, args=None, timeout=10.0):
        with Ctl(self.sock(name), timeout=timeout) as c:
            return c.call(op, args, timeout=timeout)

    def status(self, name):
        rep = self.call(name, "status")
        check(rep.get("ok") is True, "status refused: %r", rep)
        return rep

    def weights_of(self, name):
        rep = self.status(name)
        return rep["generation"], weights_bp(rep["result"]["routes"][0]["weights"])

    def wait_weights(self, names, blue, green, timeout=5.0):
        want = {"blue": blue * 100, "green": green * 100}
        for n in names:
            wait_until(lambda: self.weights_of(n)[1] == want, timeout,
                       what="replica %s at %s" % (n, want))

    def close(self):
        self.etcd.close()


def set_weights(fl, name, blue, green, **extra):
    args = {"route": ROUTE, "weights": {"blue": blue, "green": green}, "reason": "fleet test"}
    args.update(extra)
    return fl.call(name, "set-weights", args)


def ctl(*args, timeout=30):
    return run_bin([ctl_bin()] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                   capture_output=True, text=True, timeout=timeout)


def test_fleet_new_replica_joins_at_fleet_weights():
    """A replica started mid-release serves the fleet's weights from its first request (not the
    configuration's), and sticky clients never flip back across it."""
    fl = Fleet(sticky={"header": "x-device-id"})
    try:
        fl.start("r1")
        fl.start("r2")
        g0 = fl.status("r1")["generation"]
        rep = set_weights(fl, "r1", 60, 40)
        check(rep.get("ok") is True, "set-weights refused: %r", rep)
        check(rep["generation"] == g0 + 1, "generation %r after %r", rep["generation"], g0)
        fl.wait_weights(["r2"], 60, 40)
        check(fl.status("r2")["generation"] == rep["generation"], "r2 at another generation")
        # which colour each device gets from r1 now
        before = {}
        with RawConn(fl.replicas["r1"].port) as c:
            for i in range(200):
                r = c.get("/", headers={"x-device-id": "dev-%d" % i})
                check(r.status == 200, "status %s", r.status)
                before[i] = r.upstream
        green = sum(1 for v in before.values() if v == "green")
        check(60 <= green <= 100, "about 40%% green expected, got %d of 200", green)
        # a new replica (its configuration still says 90/10) joins at 60/40
        r3 = fl.start("r3")
        with RawConn(r3.port) as c:
            for i in range(200):
                r = c.get("/", headers={"x-device-id": "dev-%d" % i})
                check(r.upstream == before[i], "device %d: %s on r1 but %s on the new replica",
                      i, before[i], r.upstream)
        gen, w = fl.weights_of("r3")
        check(w == {"blue": 6000, "green": 4000}, "r3 weights %r", w)
        check(gen == rep["generation"], "r3 generation %r, fleet %r", gen, rep["generation"])
        ev = r3.events("store_loaded")
        check(ev, "no store_loaded event: %r", r3.events()[-5:])
        # status through any one replica lists the whole fleet, converged
        fleet = fl.status("r2")["result"]["fleet"]
        names = sorted(x["replica"] for x in fleet["replicas"])
        wait_until(lambda: sorted(x["replica"] for x in fl.status("r2")["result"]["fleet"]
                                  ["replicas"]) == ["r1", "r2", "r3"], 5,
                   what="three registered replicas")
        fleet = fl.status("r2")["result"]["fleet"]
        check(fleet["converged"] is True and fleet["store"] == "ok", "fleet %r", fleet)
        check(all(x["generation"] == rep["generation"] for x in fleet["replicas"]),
              "fleet %r", fleet)
        del names
    finally:
        fl.close()


test_fleet_new_replica_joins_at_fleet_weights.timeout = 90


def test_fleet_compare_and_set():
    """Two writers through two replicas with the same expected generation: exactly one wins,
    the other is refused as a conflict, and every replica ends at the winner's weights (no
    half-apply)."""
    fl = Fleet()
    try:
        for n in ("r1", "r2", "r3"):
            fl.start(n)
        g = fl.status("r1")["generation"]
        check(all(fl.status(n)["generation"] == g for n in ("r2", "r3")), "generations differ")
        # both requests are on the wire before either reply is read
        a, b = Ctl(fl.sock("r1"), timeout=10), Ctl(fl.sock("r2"), timeout=10)
        try:
            for c, w in ((a, (70, 30)), (b, (20, 80))):
                req = {"v": 1, "id": "cas", "op": "set-weights",
                       "args": {"route": ROUTE, "weights": {"blue": w[0], "green": w[1]},
                                "expect_generation": g, "reason": "race"}}
                c.send_raw(json.dumps(req).encode() + b"\n")
            ra, rb = a.read_line(), b.read_line()
        finally:
            a.close()
            b.close()
        oks = [r for r in (ra, rb) if r.get("ok")]
        check(len(oks) == 1, "exactly one writer must win: %r %r", ra, rb)
        lost = rb if oks[0] is ra else ra
        check(lost["error"]["code"] == "conflict", "the loser's code: %r", lost)
        win = (70, 30) if oks[0] is ra else (20, 80)
        fl.wait_weights(["r1", "r2", "r3"], *win)
        gens = {n: fl.status(n)["generation"] for n in ("r1", "r2", "r3")}
        check(set(gens.values()) == {g + 1}, "generations %r, expected all %d", gens, g + 1)
        # a stale expect_generation is refused on any replica, and changes nothing
        rep = set_weights(fl, "r3", 50, 50, expect_generation=g)
        check(rep.get("ok") is False and rep["error"]["code"] == "conflict", "stale: %r", rep)
        fl.wait_weights(["r1", "r2", "r3"], *win)
    finally:
        fl.close()


test_fleet_compare_and_set.timeout = 90


def test_fleet_barrier_names_a_frozen_replica():
    """cutoverctl --wait through one replica waits for every registered replica; a replica
    frozen with SIGSTOP makes it time out (exit 4) and name that replica; status exits 5 while
    the fleet has not converged; once thawed the fleet converges."""
    fl = Fleet()
    try:
        for n in ("r1", "r2", "r3"):
            fl.start(n)
        wait_until(lambda: len(fl.status("r1")["result"]["fleet"]["replicas"]) == 3, 5,
                   what="three registered replicas")
        p = ctl("--socket", fl.sock("r1"), "--wait", "--wait-timeout", "5", "set-weights", ROUTE,
                "blue=80", "green=20", "--reason", "barrier")
        check(p.returncode == 0, "set-weights --wait: %s %s", p.returncode, p.stdout + p.stderr)
        r3 = fl.replicas["r3"]
        r3.expect_signal(signal.SIGSTOP)
        os.kill(r3.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            p = ctl("--socket", fl.sock("r1"), "--wait", "--wait-timeout", "2", "set-weights", ROUTE,
                    "blue=70", "green=30", "--reason", "barrier")
            took = time.monotonic() - t0
            out = p.stdout + p.stderr
            check(p.returncode == 4, "exit %s with r3 frozen: %s", p.returncode, out)
            check("r3" in out and "wait_timeout" in out, "r3 not named: %s", out)
            check(1.5 <= took <= 8, "the barrier took %.1f s (timeout 2 s)", took)
            p = ctl("--socket", fl.sock("r2"), "status")
            check(p.returncode == 5, "status exit %s with r3 lagging: %s", p.returncode,
                  p.stdout + p.stderr)
            check("LAGGING" in p.stdout and "NOT CONVERGED" in p.stdout, "status: %s", p.stdout)
        finally:
            os.kill(r3.pid, signal.SIGCONT)
        wait_until(lambda: fl.status("r1")["result"]["fleet"]["converged"], 10,
                   what="the fleet converged after SIGCONT")
        p = ctl("--socket", fl.sock("r3"), "status")
        check(p.returncode == 0, "status exit %s: %s", p.returncode, p.stdout)
        fl.wait_weights(["r3"], 70, 30)
    finally:
        fl.close()


test_fleet_barrier_names_a_frozen_replica.timeout = 90


def test_fleet_store_down_rollback_always_works():
    """etcd fully down: traffic keeps flowing at the weights in use; set-weights is refused as
    retryable (store_unavailable, cutoverctl exit 4) and changes nothing; rollback is applied at
    once on the replica that took it, and written to the store when it returns, never undone by
    the older state there; the other replicas then roll back too."""
    fl = Fleet()
    try:
        for n in ("r1", "r2"):
            fl.start(n)
        rep = set_weights(fl, "r1", 40, 60)
        check(rep.get("ok"), "set-weights: %r", rep)
        fl.wait_weights(["r2"], 40, 60)
        fl.etcd.kill(0)
        # serving continues
        with RawConn(fl.replicas["r2"].port) as c:
            for i in range(20):
                check(c.get("/").status == 200, "request %d failed with the store down", i)
        t0 = time.monotonic()
        p = ctl("--socket", fl.sock("r1"), "set-weights", ROUTE, "blue=10", "green=90", "--reason", "x")
        check(p.returncode == 4 and "store_unavailable" in p.stdout + p.stderr,
              "set-weights with the store down: exit %s %s", p.returncode, p.stdout + p.stderr)
        check(time.monotonic() - t0 < 6, "the refusal took %.1f s", time.monotonic() - t0)
        check(fl.weights_of("r1")[1] == {"blue": 4000, "green": 6000}, "refused change applied")
        t0 = time.monotonic()
        rep = fl.call("r1", "rollback", {"route": ROUTE, "reason": "incident"})
        check(rep.get("ok") is True, "rollback with the store down: %r", rep)
        check(time.monotonic() - t0 < 3, "rollback took %.1f s", time.monotonic() - t0)
        check(rep["result"].get("fleet") == "pending", "rollback reply: %r", rep)
        stable = weights_bp(fl.status("r1")["result"]["routes"][0]["stable"])
        check(fl.weights_of("r1")[1] == stable, "r1 not rolled back to %r", stable)
        check(stable != {"blue": 4000, "green": 6000}, "stable %r", stable)
        st = fl.status("r1")["result"]["fleet"]
        check(st["store"] == "unreachable" and st["pending"] == [ROUTE], "fleet %r", st)
        path = fl.replicas["r1"].config["control"]["audit_file"]
        recs = [json.loads(l) for l in open(path) if l.strip()]
        rb = [r for r in recs if r.get("op") == "rollback" and r.get("result") == "ok"]
        check(rb and rb[-1].get("fleet") == "pending" and rb[-1].get("replica") == "r1",
              "the rollback's record: %r", rb[-1:])
        # killed and restarted before the store returns: still rolled back, still pending
        fl.replicas["r1"].kill()
        r1 = fl.start("r1", control=dict(fl.replicas["r1"].config["control"]))
        check(fl.weights_of("r1")[1] == stable, "after a restart: %r", fl.weights_of("r1"))
        check(fl.status("r1")["result"]["fleet"]["pending"] == [ROUTE], "pending lost")
        check(not r1.events("audit_gap"), "a restart with a store is no audit gap: %r",
              r1.events("audit_gap"))
        n_ev = len(fl.replicas["r1"].events())
        fl.etcd.start(0)
        fl.replicas["r1"].wait_event("store_pending_written", after=n_ev, timeout=15)
        fl.wait_weights(["r1", "r2"], stable["blue"] // 100, stable["green"] // 100, timeout=15)
        # the rollback stands in the store
        stored = json.loads(fl.etcd.get("/cutover/test/routes/" + ROUTE))
        check(stored["by"]["op"] == "rollback" and stored["by"]["actor"] not in ("", "pending"),
              "stored %r", stored)
        check(fl.status("r1")["result"]["fleet"]["pending"] == [], "still pending")
        wait_until(lambda: fl.status("r2")["result"]["fleet"]["converged"], 15,
                   what="the fleet converged")
    finally:
        fl.close()


test_fleet_store_down_rollback_always_works.timeout = 120


def test_fleet_invalid_value_is_never_applied():
    """A value written by hand that does not parse, or names other pools, is not applied: the
    replicas keep serving what they serve and say so (event, status with key and revision)."""
    fl = Fleet()
    try:
        for n in ("r1", "r2"):
            fl.start(n)
        rep = set_weights(fl, "r1", 30, 70)
        check(rep.get("ok"), "set-weights: %r", rep)
        fl.wait_weights(["r2"], 30, 70)
        key = "/cutover/test/routes/" + ROUTE
        n_ev = len(fl.replicas["r2"].events())
        fl.etcd.put(key, '{"format":1,"generation":99,"state":"garbage"}')
        ev = fl.replicas["r2"].wait_event("store_value_invalid", after=n_ev, timeout=10)
        check(ev.get("key") == key and ev.get("revision", 0) > 0, "event %r", ev)
        for n in ("r1", "r2"):
            check(fl.weights_of(n)[1] == {"blue": 3000, "green": 7000}, "%s changed", n)
            inv = fl.status(n)["result"]["fleet"]["invalid"]
            check(len(inv) == 1 and inv[0]["key"] == key, "%s status invalid: %r", n, inv)
        with RawConn(fl.replicas["r2"].port) as c:
            check(c.get("/").status == 200, "serving")
        # a newer format version is refused the same way
        fl.etcd.put(key, '{"format":2,"generation":100,"state":{}}')
        wait_until(lambda: "format" in fl.status("r1")["result"]["fleet"]["invalid"][0]["error"],
                   10, what="the format refusal")
        # a replica started now keeps its cache for that route and reports the key
        r3 = fl.start("r3")
        inv = fl.status("r3")["result"]["fleet"]["invalid"]
        check(len(inv) == 1 and inv[0]["key"] == key, "r3 invalid: %r", inv)
        del r3
    finally:
        fl.close()


test_fleet_invalid_value_is_never_applied.timeout = 90


def test_fleet_start_with_store_down_uses_the_cache():
    """A replica restarted while etcd is down starts from its cache (the state file of the last
    generation it applied), never from the configuration's weights; it converges when the store
    returns."""
    fl = Fleet()
    try:
        r1 = fl.start("r1")
        ctl_section = dict(r1.config["control"])
        ctl_section.pop("store")
        rep = set_weights(fl, "r1", 25, 75)
        check(rep.get("ok"), "set-weights: %r", rep)
        gen = rep["generation"]
        r1.stop()
        fl.etcd.kill(0)
        r1 = fl.start("r1", control=ctl_section)
        check(fl.weights_of("r1") == (gen, {"blue": 2500, "green": 7500}),
              "restart with the store down: %r", fl.weights_of("r1"))
        st = fl.status("r1")["result"]["fleet"]
        check(st["store"] == "unreachable", "store %r", st)
        check(r1.events("store_unreachable"), "no store_unreachable event")
        fl.etcd.start(0)
        wait_until(lambda: fl.status("r1")["result"]["fleet"]["store"] == "ok", 15,
                   what="the store reachable again")
        rep = set_weights(fl, "r1", 50, 50)
        check(rep.get("ok") and rep["generation"] == gen + 1, "after the store returned: %r", rep)
    finally:
        fl.close()


test_fleet_start_with_store_down_uses_the_cache.timeout = 90


def test_fleet_faults_lose_no_acknowledged_change():
    """Three etcd members and three replicas: changes through every replica while the etcd
    leader is killed, a replica is killed with SIGKILL and restarted, and the etcd member comes
    back. Every acknowledged change has its own fleet generation and its audit record on the
    replica that took it; a refused one says why (retryable); in the end every replica, the
    restarted one included, serves the last acknowledged change at the same generation."""
    fl = Fleet(members=3)
    try:
        for n in ("r1", "r2", "r3"):
            fl.start(n)
        acks = []  # (generation, replica, blue)
        killed_leader = None
        for i in range(30):
            if i == 8:  # the etcd leader killed while a change is on its way to the store
                killed_leader = fl.etcd.leader()
                with Ctl(fl.sock("r3"), timeout=20) as c:
                    c.send_raw(json.dumps({"v": 1, "id": "k", "op": "set-weights", "args": {
                        "route": ROUTE, "weights": {"blue": 2, "green": 98},
                        "reason": "leader killed"}}).encode() + b"\n")
                    fl.etcd.kill(killed_leader)
                    rep = c.read_line()
                if rep.get("ok"):
                    acks.append((rep["generation"], "r3", 2))
                else:
                    check(rep["error"]["code"] in ("store_unavailable", "conflict"),
                          "the change during the leader's death: %r", rep)
            if i == 14:  # killed with a change of its own in flight (never acknowledged)
                c = Ctl(fl.sock("r2"), timeout=5)
                c.send_raw(json.dumps({"v": 1, "id": "x", "op": "set-weights", "args": {
                    "route": ROUTE, "weights": {"blue": 1, "green": 99},
                    "reason": "killed"}}).encode() + b"\n")
                fl.replicas["r2"].kill()
                c.close()
            if i == 18:
                fl.start("r2", control=dict(fl.replicas["r2"].config["control"]))
            if i == 24:
                fl.etcd.start(killed_leader)
            name = ("r1", "r2", "r3")[i % 3]
            if name == "r2" and 14 <= i < 18:
                name = "r3"
            blue = 5 + 3 * i
            deadline = time.monotonic() + 20
            while True:
                rep = set_weights(fl, name, blue, 100 - blue)
                if rep.get("ok"):
                    break
                code = rep["error"]["code"]
                check(code in ("store_unavailable", "conflict", "busy"),
                      "change %d refused with %r", i, rep)
                check(time.monotonic() < deadline, "change %d never accepted: %r", i, rep)
                time.sleep(0.1)
            acks.append((rep["generation"], name, blue))
        gens = [a[0] for a in acks]
        check(gens == sorted(gens) and len(set(gens)) == len(gens),
              "acknowledged generations not strictly increasing: %r", gens)
        last_gen, _, last_blue = acks[-1]
        fl.wait_weights(["r1", "r2", "r3"], last_blue, 100 - last_blue, timeout=20)
        wait_until(lambda: all(fl.status(n)["generation"] == last_gen for n in ("r1", "r2", "r3")),
                   20, what="every replica at generation %d" % last_gen)
        stored = json.loads(fl.etcd.get("/cutover/test/generation"))
        check(stored["generation"] == last_gen, "store generation %r, last ack %d", stored,
              last_gen)
        # every acknowledgement has its record on the replica that took it
        for gen, name, blue in acks:
            path = fl.replicas[name].config["control"]["audit_file"]
            recs = [json.loads(l) for l in open(path) if l.strip()]
            check(any(r.get("op") == "set-weights" and r.get("generation_after") == gen and
                      r.get("result") == "ok" for r in recs),
                  "no audit record of generation %d on %s", gen, name)
        fleet = fl.status("r1")["result"]["fleet"]
        check(fleet["converged"], "fleet %r", fleet)
    finally:
        fl.close()


test_fleet_faults_lose_no_acknowledged_change.timeout = 180


def test_fleet_reload_adds_a_route_and_a_stop_leaves():
    """A reload that adds a route creates it in the store from the configuration (or takes the
    fleet's state when the store has it); a reload keeps the fleet's generation; a replica that
    stops gracefully leaves the registry at once."""
    fl = Fleet()
    try:
        r1, r2 = fl.start("r1"), fl.start("r2")
        api = {"name": "api", "path_prefix": "/api", "hosts": ["api.test"],
               "pools": {"blue": {"endpoints": [fl.blue.addr]},
                         "green": {"endpoints": [fl.green.addr]}},
               "weights": {"blue": 80, "green": 20}}
        g0 = fl.status("r1")["generation"]
        cfg1 = json.loads(json.dumps(r1.config))
        cfg1["routes"].insert(0, api)
        r1.rewrite(cfg1)
        r1.reload(expect="reload")
        wait_until(lambda: fl.etcd.get("/cutover/test/routes/api") is not None, 5,
                   what="route api created in the store")
        rep = fl.call("r1", "set-weights", {"route": "api", "weights": {"blue": 35, "green": 65},
                                             "reason": "api canary"})
        check(rep.get("ok") is True, "set-weights api: %r", rep)
        check(rep["generation"] > g0, "generation %r after %r", rep["generation"], g0)
        # r2 does not have the route: unaffected, at the fleet's generation
        wait_until(lambda: fl.status("r2")["generation"] == rep["generation"], 5,
                   what="r2 at the fleet's generation")
        check([r["name"] for r in fl.status("r2")["result"]["routes"]] == [ROUTE], "r2 routes")
        # r2 adds it too: the fleet's weights, not the configuration's
        cfg2 = json.loads(json.dumps(r2.config))
        cfg2["routes"].insert(0, api)
        r2.rewrite(cfg2)
        r2.reload(expect="reload")

        def api_weights():
            for r in fl.status("r2")["result"]["routes"]:
                if r["name"] == "api":
                    return weights_bp(r["weights"])
        wait_until(lambda: api_weights() == {"blue": 3500, "green": 6500}, 5,
                   what="r2 serving api at the fleet's 35/65")
        check(fl.status("r2")["generation"] == rep["generation"], "a reload moved the generation")
        with RawConn(r2.port) as c:
            check(c.get("/api/x", host="api.test").status == 200, "api on r2")
        # a graceful stop leaves the registry at once (not after the lease's 10 s)
        wait_until(lambda: len(fl.status("r1")["result"]["fleet"]["replicas"]) == 2, 5,
                   what="two registered")
        r2.stop()
        wait_until(lambda: [x["replica"] for x in fl.status("r1")["result"]["fleet"]["replicas"]]
                   == ["r1"], 3, what="r2 gone from the registry")
    finally:
        fl.close()


test_fleet_reload_adds_a_route_and_a_stop_leaves.timeout = 90


def test_fleet_compaction_forces_a_reread_and_misses_nothing():
    """A replica whose watch must resume from a revision etcd has compacted away reads the
    whole prefix again (event store_compacted) and ends at the fleet's state: no change missed."""
    fl = Fleet()
    try:
        fl.start("r1")
        r2 = fl.start("r2")
        r2.expect_signal(signal.SIGSTOP)
        os.kill(r2.pid, signal.SIGSTOP)
        try:
            for b in (11, 22, 33, 44):
                rep = set_weights(fl, "r1", b, 100 - b)
                check(rep.get("ok"), "set-weights: %r", rep)
            fl.etcd.compact(fl.etcd.revision())
            fl.etcd.stop(0)   # r2's watch connection goes with it
            fl.etcd.start(0)
        finally:
            os.kill(r2.pid, signal.SIGCONT)
        r2.wait_event("store_compacted", timeout=20)
        fl.wait_weights(["r2"], 44, 56, timeout=10)
        check(fl.status("r2")["generation"] == rep["generation"], "r2 generation %r, fleet %r",
              fl.status("r2")["generation"], rep["generation"])
        wait_until(lambda: fl.status("r1")["result"]["fleet"]["converged"], 10,
                   what="converged")
    finally:
        fl.close()


test_fleet_compaction_forces_a_reread_and_misses_nothing.timeout = 90


def test_fleet_history_is_fleet_wide():
    """history through any replica lists the fleet's changes, whichever replica took them, with
    the replica, the actor and the weights before and after; the filters apply; a replica
    started later sees the earlier changes too."""
    fl = Fleet()
    try:
        fl.start("r1")
        fl.start("r2")
        check(set_weights(fl, "r1", 70, 30).get("ok"), "r1 change")
        check(set_weights(fl, "r2", 40, 60).get("ok"), "r2 change")
        rep = fl.call("r1", "rollback", {"route": ROUTE, "reason": "back"})
        check(rep.get("ok"), "rollback %r", rep)
        fl.start("r3")
        wait_until(lambda: len(fl.call("r3", "history")["result"]["records"]) >= 3, 5,
                   what="the fleet's history on r3")
        recs = fl.call("r3", "history")["result"]["records"]
        changes = [(r["op"], r.get("replica")) for r in recs if r["op"] != "seed"]
        check(("set-weights", "r1") in changes and ("set-weights", "r2") in changes and
              ("rollback", "r1") in changes, "history on r3: %r", changes)
        sw = [r for r in recs if r["op"] == "set-weights" and r.get("replica") == "r2"][0]
        check(weights_bp(sw["weights_after"]) == {"blue": 4000, "green": 6000} and
              weights_bp(sw["weights_before"]) == {"blue": 7000, "green": 3000},
              "weights in %r", sw)
        gens = [r["generation_after"] for r in recs]
        check(gens == sorted(gens), "history out of order: %r", gens)
        only = fl.call("r3", "history", {"actor": sw["actor"]["user"], "route": ROUTE,
                                          "limit": 2})["result"]["records"]
        check(len(only) == 2 and only[-1]["op"] == "rollback", "filtered: %r", only)
        p = ctl("--socket", fl.sock("r3"), "history", "--route", ROUTE)
        check(p.returncode == 0 and "set-weights" in p.stdout and "rollback" in p.stdout and
              "@r2" in p.stdout,
              "cutoverctl history: %s %s", p.returncode, p.stdout + p.stderr)
    finally:
        fl.close()


test_fleet_history_is_fleet_wide.timeout = 90


def test_fleet_back_to_back_changes_through_different_replicas():
    """A pipeline behind a Service reaches a different replica for each request: changes without
    expect_generation, back to back through alternating replicas, all succeed (a replica that
    has not seen the previous change yet reads the fleet's state and runs the change again), and
    each gets the next fleet generation."""
    fl = Fleet()
    try:
        for n in ("r1", "r2", "r3"):
            fl.start(n)
        g = fl.status("r1")["generation"]
        for i in range(24):
            name = ("r1", "r2", "r3")[i % 3]
            rep = set_weights(fl, name, 10 + i, 90 - i)
            check(rep.get("ok") is True, "change %d through %s: %r", i, name, rep)
            check(rep["generation"] == g + i + 1, "change %d: generation %r, expected %d", i,
                  rep["generation"], g + i + 1)
        fl.wait_weights(["r1", "r2", "r3"], 33, 67)
    finally:
        fl.close()


test_fleet_back_to_back_changes_through_different_replicas.timeout = 90


def test_fleet_concurrent_changes_on_one_replica_wait_their_turn():
    """Changes that reach one replica at the same moment (several pipelines, or an operator and
    a plan) wait for their turn there instead of being refused as busy: each is judged on the
    state in use when its turn comes and committed, at consecutive fleet generations."""
    fl = Fleet()
    try:
        fl.start("r1")
        fl.start("r2")
        g = fl.status("r1")["generation"]
        conns = [Ctl(fl.sock("r1"), timeout=20) for _ in range(6)]
        try:
            for i, c in enumerate(conns):  # all on the wire before any reply is read
                c.send_raw(json.dumps({"v": 1, "id": "c%d" % i, "op": "set-weights", "args": {
                    "route": ROUTE, "weights": {"blue": 50 + i, "green": 50 - i},
                    "reason": "concurrent"}}).encode() + b"\n")
            reps = [c.read_line() for c in conns]
        finally:
            for c in conns:
                c.close()
        check(all(r.get("ok") is True for r in reps), "refused: %r",
              [r for r in reps if not r.get("ok")])
        gens = sorted(r["generation"] for r in reps)
        check(gens == list(range(g + 1, g + 7)), "generations %r after %d", gens, g)
        last = max(reps, key=lambda r: r["generation"])
        w = weights_bp(last["result"]["weights"])
        fl.wait_weights(["r1", "r2"], w["blue"] // 100, w["green"] // 100)
    finally:
        fl.close()


test_fleet_concurrent_changes_on_one_replica_wait_their_turn.timeout = 60

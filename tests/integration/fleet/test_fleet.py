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
    return run_bin([ctl_bin()] + list(args), timeout=timeout)


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

"""Failover (issue 12): a request that did not reach an upstream goes to another endpoint of its
pool, and when the pool has none left, to the other colour (per-request fail-safe); passive
ejection never keeps an all-failing pool from counting as down. Upstreams are killed with
SIGKILL while traffic runs; every request is accounted for."""
import os
import threading
import time
import urllib.request
from datetime import datetime, timezone

from harness import (HOST, Load, RawConn, check, free_port, make_config, start_cutover,
                     start_h2upstream, start_upstream, unique, wait_until)
from test_h2 import h2load, h2load_counts
from test_release_safety import Switchable

BODY = b"p" * 3000


def wall(rfc3339):
    """An access-log time ("2026-01-02T03:04:05.678Z") as time.time()."""
    return datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


class PostLoad:
    """Threads each sending POST /echo with a body on one keep-alive connection (no client
    retry: POST is not idempotent). Records (t0, status or None, upstream, error)."""

    def __init__(self, port, threads=2):
        self.port, self.rec, self.lock = port, [], threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        c = None
        while not self.stop_ev.is_set():
            t0 = time.time()
            try:
                if c is None:
                    c = RawConn(self.port, timeout=10)
                r = c.request("POST", "/echo", {"Content-Type": "application/octet-stream"},
                              BODY)
                ok_body = r.status != 200 or r.body == BODY
                with self.lock:
                    self.rec.append((t0, r.status, r.upstream,
                                     None if ok_body else "echo body differs"))
                if not r.keep_alive or c.eof:
                    c.close()
                    c = None
            except Exception as e:  # noqa: BLE001 - every failure is recorded and asserted
                with self.lock:
                    self.rec.append((t0, None, None, "%s: %s" % (type(e).__name__, e)))
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(15)
        return self.rec


def bad_posts(rec):
    return [r for r in rec if r[1] != 200 or r[3]]


def cut_mid_body(r, t_dead):
    """A response that was already streaming when its upstream died (head relayed, body cut):
    nothing can send it again. Only for requests started before the upstream was gone."""
    return r.kind == "failed" and "inside a response body" in (r.error or "") and r.t0 < t_dead


def gets_ok(load, what, t_dead):
    fails = [r for r in load.failures if not cut_mid_body(r, t_dead)]
    check(not fails, "%s: failed GETs %d, e.g. %r", what, len(fails), fails[:3])
    check(len(load.failures) <= load.nthreads, "%s: %d responses cut", what, len(load.failures))
    bad = [r for r in load.ok if r.status != 200]
    check(not bad, "%s: %d GETs not 200, e.g. %r (%s)", what, len(bad), bad[:5], load.summary())


def slow_and_fast(seq, th):
    """Threads 0 and 1 ask for /slow/300 (least-outstanding balancing puts one on each endpoint:
    a request is in flight on the victim at the kill), the others for /."""
    return ("GET", "/slow/300" if th < 2 else "/", None)


def kill_under_load(port, victim, before=1.0, after=2.5, get_threads=4, post_threads=2):
    """GETs (harness.Load, thread 0 slow) and POSTs run; victim is SIGKILLed after `before`
    seconds; traffic goes on for `after` seconds. Returns (load, posts, t_kill)."""
    load = Load(port, threads=get_threads, duration=before + after,
                make_request=slow_and_fast).start()
    posts = PostLoad(port, post_threads)
    time.sleep(before)
    victim.kill()  # returns once the process is gone (its sockets closed)
    t_dead = time.time()
    load.join()
    return load, posts.stop(), t_dead


def check_posts(rec, t_dead, what):
    """POSTs: the ones written to the victim before it was gone may fail (they may have been
    processed: never sent twice); every POST started once it was gone succeeds."""
    bad = bad_posts(rec)
    check(len(rec) > 10, "%s: only %d POSTs", what, len(rec))
    late = [r for r in bad if r[0] > t_dead]
    check(not late, "%s: POSTs started after the upstream was gone failed: %r", what, late[:5])
    return bad


def test_failover_endpoint_killed_in_pool():
    """Pool blue = two endpoints, one SIGKILLed under h1 keep-alive GET and POST load, upstream
    connections not pooled (each request on a fresh one, so requests in flight at the kill are
    not "stale keep-alive" ones): no GET fails, no POST sent after the kill fails, the survivor
    takes everything; a burst of new connections right after the kill all succeed."""
    b1, b2, green = start_upstream("blue"), start_upstream("blue-2"), start_upstream("green")
    port = free_port()
    cx = start_cutover(make_config(port, {"blue": [b1, b2], "green": [green]},
                                   {"blue": 100, "green": 0},
                                   limits={"upstream_idle_per_endpoint": 0}))
    load, posts, t_kill = kill_under_load(port, b2)
    gets_ok(load, "GET", t_kill)
    check_posts(posts, t_kill, "POST")
    # a burst: 40 new connections at once, each one GET
    results = []

    def one():
        try:
            with RawConn(port, timeout=10) as c:
                results.append(c.get("/burst").status)
        except Exception as e:  # noqa: BLE001
            results.append(repr(e))
    ts = [threading.Thread(target=one) for _ in range(40)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)
    check(results.count(200) == 40, "burst: %r", [r for r in results if r != 200][:5])
    late = [r for r in load.ok if r.t0 > t_kill + 0.2]
    check(late and all(r.upstream == "blue" for r in late), "after the kill: %r",
          [r for r in late if r.upstream != "blue"][:5])
    wait_until(lambda: [a for a in cx.access() if a.get("tries", 1) > 1], 5,
               what="an access-log line with tries > 1")


test_failover_endpoint_killed_in_pool.timeout = 60


def test_failover_only_green_endpoint_killed():
    """Green (weight 50, one endpoint) SIGKILLed under GET and POST load, no outlier detection,
    no health check: every GET and every POST sent after the kill is answered 200 by blue; the
    access log names the move (reason failsafe, failover_from green)."""
    blue, green = start_upstream("blue"), start_upstream("green")
    port, mport = free_port(), free_port()
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                                   {"blue": 50, "green": 50},
                                   metrics={"address": "%s:%d" % (HOST, mport)}))
    load, posts, t_kill = kill_under_load(port, green)
    gets_ok(load, "GET", t_kill)
    check_posts(posts, t_kill, "POST")
    late = [r for r in load.ok if r.t0 > t_kill + 0.2]
    check(late and all(r.upstream == "blue" for r in late), "after the kill: %r",
          [r for r in late if r.upstream != "blue"][:5])
    moved = wait_until(lambda: [a for a in cx.access() if a.get("reason") == "failsafe"], 5,
                       what="access lines with reason failsafe")
    check(all(a["pool"] == "blue" and a.get("failover_from") == "green" and
              a["status"] == 200 for a in moved), "fail-safe lines %r", moved[:3])
    # the metrics count them too: every access line with failover_from is a failover, every
    # line with tries > 1 had retries
    time.sleep(0.3)
    acc = cx.access()
    want_f = sum(1 for a in acc if a.get("failover_from"))
    want_r = sum(a.get("tries", 1) - 1 for a in acc)
    with urllib.request.urlopen("http://%s:%d/metrics" % (HOST, mport), timeout=10) as r:
        m = dict(l.split()[:2] for l in r.read().decode().splitlines()
                 if l and not l.startswith("#"))
    check(int(m["cutover_failovers_total"]) == want_f and want_f > 0,
          "cutover_failovers_total %s, access lines %d", m["cutover_failovers_total"], want_f)
    check(int(m["cutover_upstream_retries_total"]) >= want_r and want_r > 0,
          "cutover_upstream_retries_total %s, access lines %d",
          m["cutover_upstream_retries_total"], want_r)


test_failover_only_green_endpoint_killed.timeout = 60


def test_failover_h2c_origin_killed_h2_clients():
    """HTTP/2 clients (h2load, 4 connections x 8 streams), blue = one h2c origin at weight 90,
    green = HTTP/1.1 at 10, no health check, no outlier detection: the h2c origin is SIGKILLed
    mid-run and every GET still gets a 2xx; POSTs (h2load -d) fail at most the ones in flight."""
    blue = start_h2upstream("blue")
    green = start_upstream("green")
    port = free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 90, "green": 10})
    cfg["routes"][0]["pools"]["blue"]["protocol"] = "h2c"
    cx = start_cutover(cfg)
    body = unique("post-body")
    with open(body, "wb") as f:
        f.write(BODY)
    out = {}

    def run(name, args, path):
        out[name] = h2load(port, "-c", "4", "-m", "8", "-D", "4", *args, path=path,
                           timeout=60)
    tg = threading.Thread(target=run, args=("get", [], "/"))
    tp = threading.Thread(target=run, args=("post", ["-d", body], "/echo"))
    tg.start()
    tp.start()
    time.sleep(1.5)
    t_kill = time.time()
    blue.kill()
    t_dead = time.time()
    tg.join(60)
    tp.join(60)
    g = h2load_counts(out["get"])
    check(g.get("2xx", 0) > 100 and sum(v for k, v in g.items() if k != "2xx") == 0,
          "GET status codes %r\n%s", g, out["get"][-1500:])
    # (h2load counts the streams still open when its duration ends as failed: the access log
    # says what cutover answered)
    bad_gets = [a for a in cx.access() if a["method"] == "GET" and a["status"] >= 500]
    check(not bad_gets, "GETs answered 5xx: %r", bad_gets[:3])
    p = h2load_counts(out["post"])
    check(p.get("2xx", 0) > 50, "POST status codes %r\n%s", p, out["post"][-1500:])
    # the POSTs that failed were in flight (body sent) when blue died: none started later
    failed = wait_until(lambda: (lambda a: a if len(a) >= p.get("5xx", 0) else None)(
        [a for a in cx.access() if a["method"] == "POST" and a["status"] >= 500]), 5,
        what="the failed POSTs in the access log")
    late = [a for a in failed if a.get("error") != "upstream_reset" or
            wall(a["time"]) - a["total_ms"] / 1000.0 > t_dead + 0.05]
    check(not late, "POSTs failed outside the kill: %r", late[:3])
    os.unlink(body)


test_failover_h2c_origin_killed_h2_clients.timeout = 90


def sticky_keys(port, want, n=6):
    """n device ids per colour in want, found by asking."""
    found = {w: [] for w in want}
    with RawConn(port) as c:
        for i in range(400):
            key = "dev-%d" % i
            r = c.get("/", {"x-device-id": key})
            check(r.status == 200, "probe %s: %r", key, r)
            if r.upstream in found and len(found[r.upstream]) < n:
                found[r.upstream].append(key)
            if all(len(v) == n for v in found.values()):
                return found
    raise AssertionError("sticky keys not found: %r" % found)


def test_failover_whole_colour_dies_sticky():
    """Sticky clients (x-device-id), 50/50, no health check: green dies; green's clients are
    served by blue at once (per-request fail-safe: 0 failed requests once the first try
    failed), blue's clients never move; green comes back on the same port and its clients
    return to it within seconds."""
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                                   {"blue": 50, "green": 50},
                                   sticky={"header": "x-device-id"}))
    keys = sticky_keys(port, ("blue", "green"))
    green_port = green.port
    green.kill()
    seen = []
    with RawConn(port) as c:
        for _ in range(5):
            for colour, ks in keys.items():
                for k in ks:
                    r = c.get("/", {"x-device-id": k})
                    seen.append((colour, k, r.status, r.upstream))
                    if not r.keep_alive:
                        c.close()
                        c = RawConn(port)
    bad = [s for s in seen if s[2] != 200 or s[3] != "blue"]
    check(not bad, "with green dead: %r", bad[:5])
    acc = wait_until(lambda: (lambda a: a if len(a) >= 5 * len(keys["green"]) else None)(
        [a for a in cx.access() if a.get("reason") == "failsafe"]), 5, what="access lines")
    check(all(a.get("failover_from") == "green" and a["pool"] == "blue" for a in acc),
          "fail-safe lines %r", acc[:3])
    green = start_upstream("green", port=green_port)

    def back():
        with RawConn(port) as c:
            got = [(k, c.get("/", {"x-device-id": k}).upstream) for k in keys["green"]]
            kept = [c.get("/", {"x-device-id": k}).upstream for k in keys["blue"]]
        check(all(u == "blue" for u in kept), "blue's clients moved: %r", kept)
        return all(u == "green" for _, u in got)
    wait_until(back, 5, interval=0.2, what="green's clients back on green")


test_failover_whole_colour_dies_sticky.timeout = 60


def test_failover_passive_two_endpoint_pool():
    """Passive checks only: green = [g1, g2] at 100 %, outlier detection with the default
    max_ejection_percent (50). g1 answers 503 and is ejected; then g2 is SIGKILLed. Every GET
    after g1's ejection is answered 200 (by blue, per request), g2 is ejected although that
    passes the 50 % cap (every endpoint of green is failing), and green goes into fail-safe."""
    g1 = Switchable("green")
    g2 = start_upstream("green-2")
    blue = start_upstream("blue")
    port = free_port()
    cfg = make_config(port, {"blue": [blue], "green": [g1.addr, g2]},
                      {"blue": 0, "green": 100})
    cfg["routes"][0]["outlier_detection"] = {"consecutive_failures": 3,
                                             "base_ejection_ms": 30000}
    cx = start_cutover(cfg)
    try:
        g1.status = 503
        load = Load(port, threads=2, duration=12).start()
        ev = cx.wait_event("endpoint_health", timeout=5)
        check(ev["state"] == "ejected" and ev["endpoint"] == g1.addr, "event %r", ev)
        t_ej = time.time()
        time.sleep(0.5)
        g2.kill()
        t_dead = time.time()
        ev2 = wait_until(lambda: [e for e in cx.events("endpoint_health")
                                  if e["state"] == "ejected" and e["endpoint"] == g2.addr],
                         6, interval=0.05, what="g2 ejected despite the 50 % cap")[0]
        fs = cx.wait_event("pool_failsafe", timeout=3)
        check(fs["pool"] == "green", "fail-safe event %r", fs)
        time.sleep(0.5)
        load.stop()
    finally:
        g1.stop()
    after = [r for r in load.snapshot() if r.t0 > t_ej + 0.3]
    bad = [r for r in after if (r.kind != "ok" or r.status != 200) and
           not cut_mid_body(r, t_dead)]
    check(after and not bad, "after g1's ejection: %d of %d failed, e.g. %r", len(bad),
          len(after), bad[:5])
    check(ev2["consecutive_failures"] >= 3, "g2 event %r", ev2)


test_failover_passive_two_endpoint_pool.timeout = 60

"""Active health checks (control/healthcheck.c): an endpoint whose /healthz fails goes down after
unhealthy_threshold rounds and takes no traffic, comes back after healthy_threshold good rounds;
a pool with nothing up gives its share to the other pool (pool_failsafe), and with every pool
down requests get 503 no_endpoint; TLS pools are checked over TLS with the pool's verification
and client certificate; refused and hanging endpoints go down with "connect: ..." and "timeout";
a reload that disables a pool's checks brings its down endpoints back.

Timings: interval 200 ms + jitter < 50 ms, timeout 150 ms, thresholds 2, so a change is seen
within 2 x 250 ms + 150 ms; every wait below allows that plus SLACK for a loaded 2-CPU machine."""
import os
import socket
import threading
import time

from harness import (HOST, RawConn, check, free_port, make_config, start_cutover,
                     start_h2upstream, start_upstream, unique, wait_port, wait_until)
from test_metrics import get, parse_prometheus, sample
from test_tls import Pki

HC = {"path": "/healthz", "interval_ms": 200, "jitter_ms": 50, "timeout_ms": 150,
      "healthy_threshold": 2, "unhealthy_threshold": 2}
SLACK = 2.0
ROUND = (HC["interval_ms"] + HC["jitter_ms"] + HC["timeout_ms"]) / 1000.0
DOWN_WITHIN = HC["unhealthy_threshold"] * ROUND + SLACK
UP_WITHIN = HC["healthy_threshold"] * ROUND + SLACK


def hc_upstream(name, args=(), h2=False):
    """An upstream whose /healthz answers 200 while set_health(up, True), 503 otherwise.
    h2: h2upstream.py (HTTP/2: h2c, or h2 over TLS) instead of upstream.py."""
    path = unique("health-" + name)
    with open(path, "w") as f:
        f.write("ok")
    start = start_h2upstream if h2 else start_upstream
    up = start(name, args=["--health-file", path, *args])
    up.health_path = path
    return up


def set_health(up, ok):
    tmp = up.health_path + ".tmp"
    with open(tmp, "w") as f:
        f.write("ok" if ok else "fail")
    os.replace(tmp, up.health_path)


def key(up):
    return "%s:%d" % (HOST, up.port)


def health_events(cx, endpoint=None, state=None, after=0):
    return [e for e in cx.events()[after:]
            if e.get("event") == "endpoint_health" and e.get("source") == "active" and (endpoint is None or e.get("endpoint") == endpoint)
            and (state is None or e.get("state") == state)]


def wait_health(cx, endpoint, state, after, within):
    """Waits (bounded by within seconds) for the active endpoint_health event of endpoint with
    state; returns (event, seconds it took)."""
    t0 = time.monotonic()
    ev = wait_until(lambda: (health_events(cx, endpoint, state, after) or [None])[0], within,
                    what="endpoint_health %s %s" % (endpoint, state))
    return ev, time.monotonic() - t0


def upstreams_of(port, n, path="/"):
    """n sequential requests on one keep-alive connection: the x-upstream of each (all 200)."""
    out = []
    with RawConn(port) as c:
        for i in range(n):
            r = c.get("%s?i=%d" % (path, i))
            check(r.status == 200, "request %d: status %s %r", i, r.status, r.body[:200])
            out.append(r.upstream)
    return out


def endpoint_states(mport, pool):
    """cutover_endpoints of route app and pool, by state, from /metrics (strictly parsed)."""
    st, _, text = get(mport, "/metrics")
    check(st == 200, "metrics status %s", st)
    fams = parse_prometheus(text)
    return {state: int(sample(fams, "cutover_endpoints", route="app", pool=pool, state=state))
            for state in ("serving", "unhealthy", "drained")}


def health_requests(up):
    return [q for q in up.requests() if q["path"].startswith("/healthz")]


def config(port, pools, weights, checked=("blue", "green"), **kw):
    cfg = make_config(port, pools, weights, **kw)
    for name, p in cfg["routes"][0]["pools"].items():
        p["balance"] = "round_robin"
        if name in checked:
            p["health_check"] = dict(HC)
    return cfg


def test_endpoint_down_and_back():
    b1, b2 = hc_upstream("b1"), hc_upstream("b2")
    green = start_upstream("green")
    port, mport = free_port(), free_port()
    cx = start_cutover(config(port, {"blue": [b1, b2], "green": [green]},
                              {"blue": 100, "green": 0}, checked=("blue",),
                              metrics={"address": "%s:%d" % (HOST, mport)}))
    wait_port(mport, 10.0, cx.popen)
    # Start up: serving at once (no check needed), and healthy endpoints raise no event.
    ups = upstreams_of(port, 10)
    check(set(ups) == {"b1", "b2"}, "both endpoints should serve from the start: %r", ups)
    wait_until(lambda: len(health_requests(b1)) >= 3, 3.0, what="three checks of b1")
    check(not health_events(cx), "events for healthy endpoints: %r", health_events(cx))
    q = health_requests(b1)[0]
    check(q["method"] == "GET" and q["version"] == "HTTP/1.1", "check request %r", q)
    check(q["headers"].get("host") == key(b1), "Host %r", q["headers"].get("host"))
    check(q["headers"].get("user-agent") == "cutover-health-check", "User-Agent %r", q["headers"])
    check(q["headers"].get("connection") == "close", "Connection %r", q["headers"])
    check(not health_requests(green), "green has no health_check but was checked")

    n = len(cx.events())
    set_health(b1, False)
    ev, took = wait_health(cx, key(b1), "down", n, DOWN_WITHIN)
    check(ev["reason"] == "status 503" and ev["route"] == "app" and ev["pool"] == "blue",
          "down event %r", ev)
    check(not health_events(cx, key(b2), after=n), "b2 changed state: %r", health_events(cx))
    ups = upstreams_of(port, 30)
    check(set(ups) == {"b2"}, "traffic still reaches the down endpoint: %r", ups)
    check(endpoint_states(mport, "blue") == {"serving": 1, "unhealthy": 1, "drained": 0} and
          endpoint_states(mport, "green") == {"serving": 1, "unhealthy": 0, "drained": 0},
          "cutover_endpoints: %r %r", endpoint_states(mport, "blue"),
          endpoint_states(mport, "green"))

    n = len(cx.events())
    set_health(b1, True)
    ev, took = wait_health(cx, key(b1), "up", n, UP_WITHIN)
    check(ev["reason"] == "status 200", "up event %r", ev)
    check(endpoint_states(mport, "blue") == {"serving": 2, "unhealthy": 0, "drained": 0},
          "cutover_endpoints after the return: %r", endpoint_states(mport, "blue"))
    ups = upstreams_of(port, 30)
    check(ups.count("b1") >= 10 and ups.count("b2") >= 10, "traffic did not come back: %r", ups)
    cx.stop()


test_endpoint_down_and_back.timeout = 60


def test_pool_failsafe_and_no_endpoint():
    from harness import Load
    blue, green = hc_upstream("blue"), hc_upstream("green")
    port = free_port()
    cx = start_cutover(config(port, {"blue": [blue], "green": [green]},
                              {"blue": 50, "green": 50}))
    ups = upstreams_of(port, 10)
    check(set(ups) == {"blue", "green"}, "50/50 split expected: %r", ups)

    load = Load(port, threads=2, duration=30.0).start()
    try:
        n = len(cx.events())
        set_health(green, False)
        wait_health(cx, key(green), "down", n, DOWN_WITHIN)
        fs = cx.wait_event("pool_failsafe", after=n, timeout=5.0)
        check(fs.get("route") == "app" and fs.get("pool") == "green", "pool_failsafe %r", fs)
        moved = time.time()
        time.sleep(1.0)
    finally:
        load.stop()
    check(not load.failures, "failed requests during the fail-safe: %r (%s)", load.failures[:3],
          load.summary())
    bad = [r for r in load.ok if r.status != 200]
    check(not bad, "non-200 responses: %r", bad[:5])
    late = [r for r in load.ok if r.t0 > moved + 0.2]
    check(len(late) >= 20, "too few requests after the fail-safe: %d", len(late))
    check(all(r.upstream == "blue" for r in late), "green still got traffic: %r",
          [r for r in late if r.upstream != "blue"][:5])

    # Both pools down: nothing can serve, 503 no_endpoint (the weights stay).
    n = len(cx.events())
    set_health(blue, False)
    wait_health(cx, key(blue), "down", n, DOWN_WITHIN)

    def all_503():
        with RawConn(port) as c:
            rs = [c.get("/x%d" % i) for i in range(10)]
        return all(r.status == 503 and r.header("x-cutover-error") == "no_endpoint" for r in rs)
    wait_until(all_503, 5.0, interval=0.1, what="503 no_endpoint with both pools down")

    # Blue back: it serves everything (green's share is still given to it).
    n = len(cx.events())
    set_health(blue, True)
    wait_health(cx, key(blue), "up", n, UP_WITHIN)
    ups = wait_until(lambda: (lambda u: u if set(u) == {"blue"} else None)(upstreams_of(port, 20)),
                     5.0, interval=0.1, what="blue serving again")
    check(set(ups) == {"blue"}, "%r", ups)
    cx.stop()


test_pool_failsafe_and_no_endpoint.timeout = 90


def test_tls_pool_checked_over_tls():
    pki = Pki()
    blue = start_upstream("blue")
    green = hc_upstream("green", ["--tls-cert", pki.p("server.chain.crt"),
                                  "--tls-key", pki.p("server.key"),
                                  "--tls-client-ca", pki.p("ca.crt")])
    tls = {"ca": pki.p("ca.crt"), "server_name": "app.test",
           "client_certificate": {"cert": pki.p("client.crt"), "key": pki.p("client.key")}}
    port = free_port()
    cfg = config(port, {"blue": [blue], "green": [green]}, {"blue": 0, "green": 100},
                 checked=("green",))
    cfg["routes"][0]["pools"]["green"]["tls"] = tls
    cx = start_cutover(cfg)
    wait_until(lambda: len(health_requests(green)) >= 3, 3.0, what="three checks over TLS")
    for q in health_requests(green)[:3]:
        t = q["tls"]
        check(t["sni"] == "app.test" and t["client_cert"] == "commonName=client one" and
              t["alpn"] == "http/1.1", "check over TLS: %r", t)
    check(not health_events(cx), "events for a healthy TLS endpoint: %r", health_events(cx))

    n = len(cx.events())
    set_health(green, False)
    ev, _ = wait_health(cx, key(green), "down", n, DOWN_WITHIN)
    check(ev["reason"] == "status 503", "down event %r", ev)
    cx.stop()

    # The pool's verification applies: the wrong name fails the handshake.
    set_health(green, True)
    port2 = free_port()
    cfg2 = config(port2, {"blue": [blue], "green": [green]}, {"blue": 0, "green": 100},
                  checked=("green",))
    cfg2["routes"][0]["pools"]["green"]["tls"] = dict(tls, server_name="wrong.test")
    cx2 = start_cutover(cfg2)
    ev, _ = wait_health(cx2, key(green), "down", 0, DOWN_WITHIN)
    check(ev["reason"].startswith("tls: certificate verification failed"), "down event %r", ev)
    cx2.stop()


test_tls_pool_checked_over_tls.timeout = 90


def test_http2_pools_checked_over_http2():
    # h2c (prior knowledge): the check is an HTTP/2 GET stream, and its status decides.
    blue = start_upstream("blue")
    green = hc_upstream("green", h2=True)
    port = free_port()
    cfg = config(port, {"blue": [blue], "green": [green]}, {"blue": 50, "green": 50},
                 checked=("green",))
    cfg["routes"][0]["pools"]["green"]["protocol"] = "h2c"
    cx = start_cutover(cfg)
    wait_until(lambda: len(health_requests(green)) >= 3, 3.0, what="three h2c checks")
    q = health_requests(green)[0]
    hdrs = dict(q["headers"])
    check(q["method"] == "GET" and q["scheme"] == "http" and q["authority"] == key(green) and
          q["path"] == "/healthz" and hdrs.get("user-agent") == "cutover-health-check",
          "h2c check request %r", q)
    check(not health_events(cx), "events for a healthy h2c endpoint: %r", health_events(cx))
    ups = upstreams_of(port, 20)
    check(set(ups) == {"blue", "green"}, "50/50 split expected: %r", ups)

    n = len(cx.events())
    set_health(green, False)
    ev, _ = wait_health(cx, key(green), "down", n, DOWN_WITHIN)
    check(ev["reason"] == "status 503" and ev["pool"] == "green", "down event %r", ev)
    ups = upstreams_of(port, 20)
    check(set(ups) == {"blue"}, "the down h2c pool still gets traffic: %r", ups)
    n = len(cx.events())
    set_health(green, True)
    ev, _ = wait_health(cx, key(green), "up", n, UP_WITHIN)
    check(ev["reason"] == "status 200", "up event %r", ev)
    cx.stop()

    # h2 over TLS: ALPN h2, the pool's verification and client certificate, scheme https.
    pki = Pki()
    green2 = hc_upstream("green2", ["--tls-cert", pki.p("server.chain.crt"),
                                    "--tls-key", pki.p("server.key"),
                                    "--tls-client-ca", pki.p("ca.crt")], h2=True)
    tls = {"ca": pki.p("ca.crt"), "server_name": "app.test",
           "client_certificate": {"cert": pki.p("client.crt"), "key": pki.p("client.key")}}
    port2 = free_port()
    cfg2 = config(port2, {"blue": [blue], "green": [green2]}, {"blue": 0, "green": 100},
                  checked=("green",))
    cfg2["routes"][0]["pools"]["green"].update(protocol="h2", tls=tls)
    cx2 = start_cutover(cfg2)
    wait_until(lambda: len(health_requests(green2)) >= 3, 3.0, what="three h2 checks over TLS")
    for q in health_requests(green2)[:3]:
        t = q["tls"]
        check(q["scheme"] == "https" and t["alpn"] == "h2" and t["sni"] == "app.test" and
              t["client_cert"] == "commonName=client one", "h2 check over TLS: %r", q)
    check(not health_events(cx2), "events for a healthy h2 endpoint: %r", health_events(cx2))
    n = len(cx2.events())
    set_health(green2, False)
    ev, _ = wait_health(cx2, key(green2), "down", n, DOWN_WITHIN)
    check(ev["reason"] == "status 503", "down event %r", ev)
    cx2.stop()

    # An h2 pool whose endpoint speaks only HTTP/1.1 (ALPN http/1.1): down, and the reason says why.
    green3 = hc_upstream("green3", ["--tls-cert", pki.p("server.chain.crt"),
                                    "--tls-key", pki.p("server.key")])
    port3 = free_port()
    cfg3 = config(port3, {"blue": [blue], "green": [green3]}, {"blue": 50, "green": 50},
                  checked=("green",))
    cfg3["routes"][0]["pools"]["green"].update(protocol="h2", tls=dict(tls))
    del cfg3["routes"][0]["pools"]["green"]["tls"]["client_certificate"]
    cx3 = start_cutover(cfg3)
    ev, _ = wait_health(cx3, key(green3), "down", 0, DOWN_WITHIN)
    check(ev["reason"] == "tls: the endpoint did not select ALPN h2", "down event %r", ev)
    check(not health_requests(green3), "a check was sent over the wrong protocol: %r",
          health_requests(green3))
    cx3.stop()


test_http2_pools_checked_over_http2.timeout = 120


class Hanging:
    """A listener that accepts connections and never answers (held until close())."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.addr = "%s:%d" % (HOST, self.port)
        self.conns = []
        self.stopping = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stopping.set()
        self.t.join(2.0)
        for c in self.conns:
            c.close()
        self.sock.close()


def test_refused_and_hanging_endpoints():
    ok = hc_upstream("ok")
    stopped = start_upstream("stopped")
    stopped.stop()
    hang = Hanging()
    try:
        green = start_upstream("green")
        port = free_port()
        cx = start_cutover(config(port, {"blue": [ok, stopped.addr, hang.addr], "green": [green]},
                                  {"blue": 100, "green": 0}, checked=("blue",)))
        ev, _ = wait_health(cx, stopped.addr, "down", 0, DOWN_WITHIN)
        check(ev["reason"] == "connect: Connection refused", "refused: %r", ev)
        ev, _ = wait_health(cx, hang.addr, "down", 0, DOWN_WITHIN)
        check(ev["reason"] == "timeout", "hanging: %r", ev)
        check(len(hang.conns) >= 2, "the hanging listener saw %d connections", len(hang.conns))
        check(not health_events(cx, key(ok)), "the good endpoint changed state")
        ups = upstreams_of(port, 20)
        check(set(ups) == {"ok"}, "traffic reached a down endpoint: %r", ups)
        cx.stop()
    finally:
        hang.close()


test_refused_and_hanging_endpoints.timeout = 60


def test_reload_disables_and_removes():
    """A reload that turns a pool's checks off brings its down endpoint back (reason "health
    check disabled"); one that removes a down endpoint stops checking it."""
    b1, b2 = hc_upstream("b1"), hc_upstream("b2")
    green = start_upstream("green")
    port = free_port()
    cfg = config(port, {"blue": [b1, b2], "green": [green]}, {"blue": 100, "green": 0},
                 checked=("blue",))
    cx = start_cutover(cfg)
    set_health(b1, False)
    wait_health(cx, key(b1), "down", 0, DOWN_WITHIN)

    # A changed health_check restarts the checkers; the verdict stays (no event).
    n = len(cx.events())
    cfg["routes"][0]["pools"]["blue"]["health_check"]["path"] = "/healthz/v2"
    cx.rewrite(cfg)
    cx.reload(expect="reload")
    wait_until(lambda: any(q["path"] == "/healthz/v2" for q in health_requests(b1)), 3.0,
               what="checks with the new path")
    check(not health_events(cx, after=n), "a restart changed a verdict: %r",
          health_events(cx, after=n))
    check(set(upstreams_of(port, 10)) == {"b2"}, "b1 serves while down")

    # Checks off: b1 is no longer judged, so it serves again.
    n = len(cx.events())
    del cfg["routes"][0]["pools"]["blue"]["health_check"]
    cx.rewrite(cfg)
    cx.reload(expect="reload")
    ev, _ = wait_health(cx, key(b1), "up", n, 5.0)
    check(ev["reason"] == "health check disabled", "%r", ev)
    ups = upstreams_of(port, 20)
    check(set(ups) == {"b1", "b2"}, "b1 did not come back: %r", ups)
    time.sleep(0.3)  # a round in flight at the reload may still arrive
    before = len(health_requests(b1))
    time.sleep(1.0)
    check(len(health_requests(b1)) == before, "b1 still checked after the checks were disabled")

    # Checks on again, b1 down again, then removed: its checker stops.
    n = len(cx.events())
    cfg["routes"][0]["pools"]["blue"]["health_check"] = dict(HC)
    cx.rewrite(cfg)
    cx.reload(expect="reload")
    wait_health(cx, key(b1), "down", n, DOWN_WITHIN)
    cfg["routes"][0]["pools"]["blue"]["endpoints"] = [b2.addr]
    cx.rewrite(cfg)
    cx.reload(expect="reload")
    time.sleep(0.3)
    before = len(health_requests(b1))
    time.sleep(1.0)
    check(len(health_requests(b1)) == before, "a removed endpoint is still checked")
    check(set(upstreams_of(port, 10)) == {"b2"}, "traffic after the removal")
    cx.stop()


test_reload_disables_and_removes.timeout = 90

"""HTTP/2 upstream connections (proxy/h2up.c) freed twice or used after free (issue 12).

Two paths freed a connection twice:
  - the idle close: on_conn_timeout wrote a GOAWAY and flushed; the flush's drain callback found
    the session over (pump -> conn_fail -> free), then on_conn_timeout freed it again. Every
    h2c/h2 connection that reached upstream_idle_ms did it (the bench crash, no reload needed).
  - a connection failing after its endpoint left the newer snapshots (reload, remove-endpoint):
    answering its last stream dropped the last pin of the older snapshot, whose release closed
    the endpoint's connections without streams (upstream_ep_put -> h2up_close_idle), the dying
    one included; conn_fail then used and freed it again.
Both are caught under ASan by the post-test check (harness.stop_and_check) and by the explicit
checks here. The stress test runs many keep-alive clients through h2c pools while the origins
misbehave (h2upstream.py --chaos, restarts, small MAX_CONCURRENT_STREAMS) and the
configuration changes under them (reloads, add-endpoint / remove-endpoint)."""
import copy
import random
import threading
import time

import harness
from harness import (check, free_port, make_config, raw_exchange, start_cutover, start_h2upstream,
                     start_upstream, wait_until, Load, RawConn)
from test_control import Ctl, ROUTE, control_section, wait_ctl
from test_h2up_review import established_to


def _alive_and_clean(cx, what):
    time.sleep(0.3)  # a report is written as the process dies
    check(cx.alive(), "cutover died %s (code %s): %s", what, cx.popen.returncode,
          harness.sanitizer_report(cx.stderr_text()) or cx.stderr_text()[-1500:])
    rep = harness.sanitizer_report(cx.stderr_text())
    check(rep is None, "sanitizer report %s: %s", what, rep)


def _h2c(cfg, pool="green"):
    cfg["routes"][0]["pools"][pool]["protocol"] = "h2c"
    return cfg


def test_h2c_idle_close_frees_once():
    # each exchange leaves an idle connection that closes after upstream_idle_ms with a GOAWAY
    blue = start_upstream("blue")
    green = start_h2upstream("green")
    port = free_port()
    cfg = _h2c(make_config(port, {"blue": [blue], "green": [green]}, {"blue": 0, "green": 100},
                           timeouts={"upstream_idle_ms": 200}, workers=1))
    cx = start_cutover(cfg, workers=1)
    for i in range(3):
        r = raw_exchange(port, b"GET /n%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % i)
        check(r.status == 200 and r.body == b"green\n", "exchange %d: %s %r", i, r.status,
              r.body)
        wait_until(lambda: established_to(green.port) == 0, 5.0,
                   what="the idle upstream connection to close")
        _alive_and_clean(cx, "after idle close %d" % i)


def test_h2c_conn_fails_after_its_endpoint_left_the_snapshot():
    # a POST is in flight on green1's connection when a reload moves the pool to green2; then
    # green1 resets the connection. Answering the POST (502) drops the old snapshot's last pin,
    # whose release closes green1's connections without streams, the failing one included.
    blue = start_upstream("blue")
    g1 = start_h2upstream("green1")
    g2 = start_h2upstream("green2")
    port = free_port()
    cfg = _h2c(make_config(port, {"blue": [blue], "green": [g1]}, {"blue": 0, "green": 100},
                           workers=1))
    cx = start_cutover(cfg, workers=1)
    with RawConn(port) as c:
        c.send(b"POST /drop-once HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n"
               b"\r\n5\r\nhello\r\n")
        wait_until(lambda: established_to(g1.port) == 1, 5.0, what="green1's connection")
        time.sleep(0.3)
        new = copy.deepcopy(cfg)
        new["routes"][0]["pools"]["green"]["endpoints"] = [g2.addr]
        cx.rewrite(new)
        cx.reload(expect="reload")
        # the worker moves to the new snapshot; the POST alone pins the old one
        r = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        check(r.status == 200 and r.body == b"green2\n", "after the reload: %s %r", r.status,
              r.body)
        c.send(b"0\r\n\r\n")  # the body ends: green1 reads it and aborts the connection
        r = c.read_response("POST")
    check(r.status == 502, "the POST whose connection was reset: %s", r.status)
    check([q["path"] for q in g1.requests()] == ["/drop-once"], "green1 got %r",
          [q["path"] for q in g1.requests()])
    _alive_and_clean(cx, "after the connection of a removed endpoint failed")
    r = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    check(r.status == 200 and r.body == b"green2\n", "afterwards: %s %r", r.status, r.body)


def test_h2c_pools_under_chaos():
    """64 keep-alive clients for ~20 s through h2c pools whose origins send GOAWAY, reset
    connections and streams, close idle connections, cap concurrent streams at 2-4 and restart,
    while the configuration is reloaded and an endpoint is added and removed over the control
    socket. The proxy must stay up without a sanitizer report, and every request must get a
    2xx or cutover's own 502/503/504: no hang."""
    rnd = random.Random(12)
    blue = start_upstream("blue")
    gargs = {"green1": ["--chaos", "1", "--max-streams", "2"],
             "green2": ["--chaos", "2", "--max-streams", "4"],
             "green3": ["--chaos", "3", "--max-streams", "3"],
             "green4": ["--chaos", "4"]}
    ups = {n: start_h2upstream(n, args=a) for n, a in gargs.items()}
    port = free_port()
    timeouts = {"upstream_idle_ms": 150, "upstream_connect_ms": 1000,
                "upstream_header_ms": 5000, "body_idle_ms": 5000, "drain_ms": 3000}
    base = _h2c(make_config(port, {"blue": [blue], "green": [ups["green1"], ups["green2"]]},
                            {"blue": 0, "green": 100}, timeouts=timeouts, workers=2,
                            control=control_section()))
    cx = start_cutover(base, workers=2)
    ctl_path = wait_ctl(cx)
    stop = threading.Event()
    errors = []
    counts = {"reloads": 0, "ctl": 0, "restarts": 0}

    def guarded(fn):
        def run():
            try:
                fn()
            except Exception as e:  # noqa: B902 - reported by the test
                errors.append("%s: %s: %s" % (fn.__name__, type(e).__name__, e))
        return run

    def reloader():
        with_g4 = False
        while not stop.wait(1.2):
            with_g4 = not with_g4
            cfg = copy.deepcopy(base)
            eps = [ups["green1"].addr, ups["green2"].addr]
            if with_g4:
                eps.append(ups["green4"].addr)
            cfg["routes"][0]["pools"]["green"]["endpoints"] = eps
            cx.rewrite(cfg)
            cx.reload(expect="reload")
            counts["reloads"] += 1

    def controller():
        added = False
        with Ctl(ctl_path, timeout=10.0) as c:
            while not stop.wait(0.5):
                op = "remove-endpoint" if added else "add-endpoint"
                rep = c.call(op, {"route": ROUTE, "pool": "green",
                                  "endpoint": ups["green3"].addr, "reason": "stress"})
                if rep.get("ok"):
                    added = not added
                counts["ctl"] += 1

    def restarter():
        while not stop.wait(2.5):
            up = ups["green2"]
            up.stop()
            time.sleep(0.2)
            ups["green2"] = start_h2upstream("green2", port=up.port, args=gargs["green2"])
            counts["restarts"] += 1

    paths = ["/", "/", "/slow/20", "/size/20000", "/size/200", "/slow/100"]

    def mk(seq, th):
        return ("GET", rnd.choice(paths) + ("?s=%d" % seq), None)

    load = Load(port, threads=64, duration=20.0, make_request=mk, timeout=15.0)
    threads = [threading.Thread(target=guarded(f), daemon=True)
               for f in (reloader, controller, restarter)]
    load.start()
    for t in threads:
        t.start()
    try:
        load.join(timeout=60.0)
    finally:
        stop.set()
        for t in threads:
            t.join(15.0)
    _alive_and_clean(cx, "under chaos")
    res = load.snapshot()
    ok2xx = [r for r in res if r.kind == "ok" and 200 <= r.status < 300]
    clean5xx = [r for r in res if r.kind == "ok" and r.status in (502, 503, 504)]
    other = [r for r in res if r.kind == "ok" and r not in ok2xx and r not in clean5xx]
    failed = [r for r in res if r.kind != "ok"]
    hangs = [r for r in failed if "timed out" in (r.error or "") or "timeout" in (r.error or "")]
    summary = "%s; 2xx %d, 502-504 %d, other %r, failed %d (%r), reloads %d, ctl %d, " \
              "restarts %d" % (load.summary(), len(ok2xx), len(clean5xx),
                               sorted({r.status for r in other}), len(failed),
                               sorted({(r.error or "")[:60] for r in failed})[:5],
                               counts["reloads"], counts["ctl"], counts["restarts"])
    print(summary)
    check(not errors, "chaos threads failed: %r (%s)", errors, summary)
    check(counts["reloads"] >= 5 and counts["ctl"] >= 10 and counts["restarts"] >= 3,
          "too little chaos: %s", summary)
    check(len(res) >= 1000 and len(ok2xx) >= len(res) // 2, "too few answers: %s", summary)
    check(not other, "statuses other than 2xx or cutover's 502/503/504: %s", summary)
    check(not hangs, "requests hung: %s", summary)
    # a response cut short when an origin resets its connection mid-body is a clean failure
    # the client sees (the proxy closes the client connection); nothing else may fail
    check(len(failed) <= len(res) // 20, "too many failed exchanges: %s", summary)
    # the proxy still serves, and stops cleanly (the post-test check)
    with RawConn(port, timeout=10.0) as c:
        r = c.get("/")
    check(r.status in (200, 502, 503), "after the chaos: %s", r.status)


test_h2c_pools_under_chaos.timeout = 100

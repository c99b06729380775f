"""Upstream failures: a dead endpoint is retried, all dead -> 503, slow -> 504."""
import time

from harness import (HOST, Load, RawConn, check, free_port, make_config, start_cutover,
                     start_upstream)


def test_retry_dead_endpoint():
    """Pool blue = [nothing listening, live upstream]: 200 requests all return 200."""
    blue = start_upstream("blue")
    green = start_upstream("green")
    dead = "%s:%d" % (HOST, free_port())
    port = free_port()
    start_cutover(make_config(port, {"blue": [dead, blue], "green": [green]},
                              {"blue": 100, "green": 0}))
    load = Load(port, threads=2, total=200).run()
    check(not load.failures, "failed requests: %r", load.failures[:3])
    ok = load.ok
    check(len(ok) == 200, "responses: %s", load.summary())
    bad = [r for r in ok if r.status != 200 or r.upstream != "blue"]
    check(not bad, "%d requests not answered 200 by blue, e.g. %r", len(bad), bad[:5])
    check(len(blue.requests()) == 200, "blue logged %d requests", len(blue.requests()))


def test_all_endpoints_down():
    """Every endpoint closed -> 503 with x-cutover-error: no_endpoint."""
    port = free_port()
    dead = ["%s:%d" % (HOST, free_port()) for _ in range(3)]
    start_cutover(make_config(port, {"blue": dead[:2], "green": dead[2:]},
                              {"blue": 100, "green": 0}))
    c = RawConn(port)
    try:
        for i in range(5):
            t0 = time.monotonic()
            r = c.get("/x%d" % i)
            check(r.status == 503, "request %d: status %s %r", i, r.status, r.body[:200])
            check(r.header("x-cutover-error") == "no_endpoint", "x-cutover-error %r",
                  r.header("x-cutover-error"))
            check(r.body.startswith(b"cutover: "), "error body %r", r.body[:200])
            check(time.monotonic() - t0 < 3, "503 took %.2f s", time.monotonic() - t0)
            if not r.keep_alive or c.eof:
                c.close()
                c = RawConn(port)
    finally:
        c.close()


def test_upstream_header_timeout():
    """upstream_header_ms 500 and /slow/3000 -> 504 upstream_timeout in ~0.5-2 s."""
    blue = start_upstream("blue")
    green = start_upstream("green")
    port = free_port()
    start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                              {"blue": 100, "green": 0}, timeouts={"upstream_header_ms": 500}))
    with RawConn(port, timeout=10) as c:
        t0 = time.monotonic()
        r = c.get("/slow/3000")
        dt = time.monotonic() - t0
        check(r.status == 504, "status %s after %.2f s %r", r.status, dt, r.body[:200])
        check(r.header("x-cutover-error") == "upstream_timeout", "x-cutover-error %r",
              r.header("x-cutover-error"))
        check(0.45 <= dt <= 2.0, "504 after %.2f s, expected 0.5-2 s", dt)
    # a fast request still works afterwards
    with RawConn(port) as c:
        r = c.get("/")
        check(r.status == 200 and r.upstream == "blue", "after the timeout: %r", r)


def test_upstream_dropping_pooled_connections_fails_nothing():
    """The upstream closes every keep-alive connection right after its response (/hangup, no
    Connection: close), one worker, outlier detection ejecting at the first failure: 150
    requests (GET /hangup, GET /, POST /echo in turn, one client connection) are all answered 200
    by blue, and the endpoint is never ejected: a pooled connection the upstream dropped is a
    keep-alive race, not a failure of the endpoint."""
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      workers=1)
    cfg["routes"][0]["outlier_detection"] = {"consecutive_failures": 1,
                                             "base_ejection_ms": 30000}
    cx = start_cutover(cfg, workers=1)
    c = RawConn(port)
    try:
        for i in range(150):
            kind = i % 3
            if kind == 2:
                r = c.request("POST", "/echo", {"Content-Type": "text/plain"}, b"x" * 100)
                ok = r.status == 200 and r.body == b"x" * 100
            else:
                r = c.get("/hangup" if kind == 0 else "/")
                ok = r.status == 200 and r.body == b"blue\n"
            check(ok and r.upstream == "blue", "request %d: %s %r %r", i, r.status, r.upstream,
                  r.body[:200])
            if not r.keep_alive or c.eof:
                c.close()
                c = RawConn(port)
    finally:
        c.close()
    check(len(blue.requests()) == 150, "blue logged %d requests", len(blue.requests()))
    time.sleep(0.3)
    ej = [e for e in cx.events("endpoint_health") if e.get("state") == "ejected"]
    check(not ej, "ejected: %r", ej)

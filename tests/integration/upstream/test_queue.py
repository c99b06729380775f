"""The per-endpoint connection limit and its queue (limits.upstream_connections_per_endpoint,
limits.upstream_queue_per_endpoint, timeouts.upstream_queue_ms): requests beyond the limit wait
for a connection, first come first served, and get it as connections free; a full queue and a
wait past the deadline are answered 503 upstream_busy and never reach the upstream; a client that
leaves while waiting is forgotten. One worker, so the per-worker limit is the endpoint's limit."""
import socket
import struct
import subprocess
import threading
import time
import urllib.request

from harness import (HOST, RawConn, check, free_port, make_config, start_cutover, start_upstream,
                     wait_until)


def metrics(mport):
    with urllib.request.urlopen("http://%s:%d/metrics" % (HOST, mport), timeout=10) as r:
        return dict(l.rsplit(" ", 1) for l in r.read().decode().splitlines()
                    if l and not l.startswith("#"))


def setup(limits, timeouts=None):
    blue, green = start_upstream("blue"), start_upstream("green")
    port, mport = free_port(), free_port()
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                                   {"blue": 100, "green": 0}, limits=limits, timeouts=timeouts,
                                   workers=1, metrics={"address": "%s:%d" % (HOST, mport)}),
                       workers=1)
    return cx, port, mport, blue


def parallel_gets(port, paths, gap=0.0):
    """One client connection per path, all sent at once (gap seconds apart); returns the
    responses (or the exception) in order."""
    out = [None] * len(paths)

    def one(i, path):
        try:
            with RawConn(port, timeout=20) as c:
                out[i] = c.get(path)
        except Exception as e:  # noqa: BLE001 - recorded and asserted by the caller
            out[i] = e

    threads = []
    for i, p in enumerate(paths):
        t = threading.Thread(target=one, args=(i, p), daemon=True)
        t.start()
        threads.append(t)
        if gap:
            time.sleep(gap)
    for t in threads:
        t.join(30)
    return out


def test_requests_beyond_the_limit_wait_and_are_all_answered():
    """Limit 2, six concurrent /slow/800: every one is answered 200 by blue over at most two
    upstream connections; four of them waited (cutover_upstream_queued_total 4); the queue is
    empty afterwards."""
    cx, port, mport, blue = setup({"upstream_connections_per_endpoint": 2,
                                   "upstream_queue_per_endpoint": 10})
    rs = parallel_gets(port, ["/slow/800?i=%d" % i for i in range(6)])
    bad = [r for r in rs if isinstance(r, Exception) or r.status != 200 or r.upstream != "blue"]
    check(not bad, "not every request answered 200 by blue: %r", bad)
    conns = {r["conn"] for r in blue.requests()}
    check(len(blue.requests()) == 6 and len(conns) <= 2,
          "blue saw %d requests on %d connections (limit 2)", len(blue.requests()), len(conns))
    m = metrics(mport)
    check(m["cutover_upstream_queued_total"] == "4", "queued_total %s",
          m["cutover_upstream_queued_total"])
    check(m["cutover_upstream_queue_length"] == "0", "queue length %s",
          m["cutover_upstream_queue_length"])
    check(m['cutover_upstream_queue_refusals_total{reason="full"}'] == "0" and
          m['cutover_upstream_queue_refusals_total{reason="timeout"}'] == "0", "refusals %r", m)


def test_full_queue_and_long_wait_are_503_upstream_busy_and_never_forwarded():
    """Limit 1, queue 1, wait 400 ms: A (/slow/2000) holds the connection, B waits and is
    answered 503 upstream_busy after its wait, C finds the queue full and is answered 503 at
    once; A is answered 200; only A reached the upstream; the access log names the code."""
    cx, port, mport, blue = setup({"upstream_connections_per_endpoint": 1,
                                   "upstream_queue_per_endpoint": 1},
                                  timeouts={"upstream_queue_ms": 400})
    results = {}

    def send(name, path):
        with RawConn(port, timeout=20) as c:
            t0 = time.monotonic()
            r = c.get(path)
            results[name] = (r, time.monotonic() - t0)

    ta = threading.Thread(target=send, args=("a", "/slow/2000?a"), daemon=True)
    ta.start()
    wait_until(lambda: len(blue.requests()) == 1, 10, what="A at the upstream")
    tb = threading.Thread(target=send, args=("b", "/b"), daemon=True)
    tb.start()
    wait_until(lambda: metrics(mport)["cutover_upstream_queue_length"] == "1", 10,
               what="B waiting")
    send("c", "/c")
    tb.join(20)
    ta.join(20)
    rc, _ = results["c"]
    check(rc.status == 503 and rc.header("x-cutover-error") == "upstream_busy",
          "C: %s %r %r", rc.status, rc.header("x-cutover-error"), rc.body[:200])
    rb, tb_s = results["b"]
    check(rb.status == 503 and rb.header("x-cutover-error") == "upstream_busy",
          "B: %s %r %r", rb.status, rb.header("x-cutover-error"), rb.body[:200])
    check(tb_s >= 0.35, "B answered after %.2f s, before its 400 ms wait", tb_s)
    ra, _ = results["a"]
    check(ra.status == 200 and ra.upstream == "blue", "A: %s %r", ra.status, ra.upstream)
    paths = [r["path"] for r in blue.requests()]
    check(paths == ["/slow/2000?a"], "the upstream saw %r", paths)
    m = metrics(mport)
    check(m['cutover_upstream_queue_refusals_total{reason="full"}'] == "1" and
          m['cutover_upstream_queue_refusals_total{reason="timeout"}'] == "1" and
          m["cutover_upstream_queued_total"] == "1", "queue metrics %r",
          {k: v for k, v in m.items() if "queue" in k})
    lines = wait_until(lambda: [a for a in cx.access() if a.get("status") == 503], 5,
                       what="503 access lines")
    check(len(lines) == 2 and all(a.get("error") == "upstream_busy" for a in lines),
          "access lines %r", lines)


def test_client_gone_while_waiting_is_forgotten():
    """Limit 1: A holds the connection, B waits and its client resets the connection; B never
    reaches the upstream, the queue is empty, and C after A is answered 200 on the same
    connection. (A FIN alone is a half-close, answered as before the queue existed.)"""
    cx, port, mport, blue = setup({"upstream_connections_per_endpoint": 1})
    res = {}

    def send_a():
        with RawConn(port, timeout=20) as c:
            res["a"] = c.get("/slow/1000?a")

    ta = threading.Thread(target=send_a, daemon=True)
    ta.start()
    wait_until(lambda: len(blue.requests()) == 1, 10, what="A at the upstream")
    b = RawConn(port, timeout=10)
    b.send(b"GET /b HTTP/1.1\r\nHost: app.test\r\n\r\n")
    wait_until(lambda: metrics(mport)["cutover_upstream_queue_length"] == "1", 10,
               what="B waiting")
    b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    b.close()  # RST
    wait_until(lambda: metrics(mport)["cutover_upstream_queue_length"] == "0", 10,
               what="B forgotten")
    ta.join(20)
    check(res["a"].status == 200, "A: %s", res["a"].status)
    with RawConn(port, timeout=10) as c:
        r = c.get("/c")
    check(r.status == 200 and r.upstream == "blue", "C: %s %r", r.status, r.upstream)
    reqs = blue.requests()
    check([q["path"] for q in reqs] == ["/slow/1000?a", "/c"], "the upstream saw %r",
          [q["path"] for q in reqs])
    check(len({q["conn"] for q in reqs}) == 1, "C did not reuse A's connection: %r", reqs)
    line = wait_until(lambda: [a for a in cx.access() if a.get("path") == "/b"], 5,
                      what="B's access line")
    check(line[0]["status"] == 499, "B's access line %r", line[0])


def test_h2_streams_share_the_limited_connections():
    """200 concurrent HTTP/2 streams (h2load, 2 connections x 100) through a limit of 4
    connections: every stream answered 200, the upstream saw at most 4 connections."""
    cx, port, mport, blue = setup({"upstream_connections_per_endpoint": 4,
                                   "upstream_queue_per_endpoint": 1000})
    p = subprocess.run(["h2load", "-n400", "-c2", "-m100", "-H", ":authority: app.test",
                        "http://127.0.0.1:%d/slow/20" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == 0 and "400 succeeded" in out and "status codes: 400 2xx" in out,
          "h2load: %s", out[-1500:])
    conns = {r["conn"] for r in blue.requests()}
    check(len(blue.requests()) == 400 and len(conns) <= 4,
          "blue saw %d requests on %d connections (limit 4)", len(blue.requests()), len(conns))
    check(int(metrics(mport)["cutover_upstream_queued_total"]) > 0, "nothing waited")


def test_sigterm_serves_the_waiting_requests_before_exit():
    """Limit 1: A holds the connection, B and C wait; SIGTERM (graceful drain): A, B and C are
    all answered 200 by blue and cutover exits 0."""
    cx, port, mport, blue = setup({"upstream_connections_per_endpoint": 1})
    out = {}

    def send(name, path):
        try:
            with RawConn(port, timeout=20) as c:
                out[name] = c.get(path)
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            out[name] = e

    threads = [threading.Thread(target=send, args=("a", "/slow/800?a"), daemon=True)]
    threads[0].start()
    wait_until(lambda: len(blue.requests()) == 1, 10, what="A at the upstream")
    for n in ("b", "c"):
        threads.append(threading.Thread(target=send, args=(n, "/slow/100?" + n), daemon=True))
        threads[-1].start()
    wait_until(lambda: metrics(mport)["cutover_upstream_queue_length"] == "2", 10,
               what="B and C waiting")
    cx.stop(expect_code=0)
    for t in threads:
        t.join(20)
    bad = {k: v for k, v in out.items()
           if isinstance(v, Exception) or v.status != 200 or v.upstream != "blue"}
    check(len(out) == 3 and not bad, "answers %r", out)

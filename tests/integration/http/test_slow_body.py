"""Slow request bodies (issue 12): a body that trickles (1 byte at a time) resets the body idle
timer forever; timeouts.request_body_ms + limits.min_body_rate bound it. The slow ones get 408
(HTTP/1.1: with Connection: close; HTTP/2: a 408 on the stream) within the deadline, the
upstream request is abandoned, and everyone else is served meanwhile."""
import socket
import threading
import urllib.request
import time

from harness import (RawConn, check, free_port, make_config, start_cutover, start_upstream,
                     wait_port)
from test_h2_rfc9113 import DATA, END_STREAM, HEADERS, RST_STREAM, H2, req_fields

SLOW = 100
DEADLINE_MS = 1500


def _env():
    blue = start_upstream("blue")
    port, mport = free_port(), free_port()
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [blue]},
                                   {"blue": 100, "green": 0},
                                   timeouts={"request_body_ms": DEADLINE_MS,
                                             "body_idle_ms": 20000},
                                   limits={"min_body_rate": 1024, "max_connections": 1000},
                                   metrics={"address": "127.0.0.1:%d" % mport}))
    cx.mport = mport
    return cx, port, blue


def _body_timeouts(cx):
    """cutover_request_body_timeouts_total from /metrics."""
    wait_port(cx.mport, 10.0, cx.popen)
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % cx.mport, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("cutover_request_body_timeouts_total "):
                return int(line.split()[1])
    raise AssertionError("no cutover_request_body_timeouts_total on /metrics")


def _normal_traffic(port, stop, results):
    """Requests with bodies at full speed until stop is set; records each status."""
    while not stop.is_set():
        try:
            with RawConn(port, timeout=10) as c:
                for _ in range(10):
                    r = c.request("POST", "/sha256", body=b"z" * 20000)
                    results.append(r.status)
                    r = c.get("/")
                    results.append(r.status)
        except Exception as e:  # a failure is a result too
            results.append(repr(e))


def test_slow_body_h1():
    """100 connections send a 1000-byte body one byte every 300 ms (never idle for
    body_idle_ms): each gets 408 + Connection: close soon after request_body_ms (1.5 s), while
    normal requests on other connections are all served (100 %)."""
    cx, port, blue = _env()
    stop = threading.Event()
    results = []
    t = threading.Thread(target=_normal_traffic, args=(port, stop, results), daemon=True)
    t.start()
    socks = []
    try:
        for i in range(SLOW):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"POST /sha256?slow=%d HTTP/1.1\r\nHost: app.test\r\n"
                      b"Content-Length: 1000\r\n\r\n" % i)
            socks.append(s)
        start = time.monotonic()
        answers = {}
        bufs = {i: b"" for i in range(SLOW)}
        for s in socks:
            s.setblocking(False)
        while len(answers) < SLOW and time.monotonic() - start < 10:
            for i, s in enumerate(socks):
                if i in answers:
                    continue
                try:
                    d = s.recv(65536)
                    if d:
                        bufs[i] += d
                    else:
                        answers[i] = (bufs[i], time.monotonic() - start)
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    answers[i] = (bufs[i], time.monotonic() - start)
                    continue
                if b"\r\n\r\n" in bufs[i] and i not in answers:
                    answers[i] = (bufs[i], time.monotonic() - start)
                    continue
                try:
                    s.send(b"a")
                except OSError:
                    pass
            time.sleep(0.3)
        check(len(answers) == SLOW, "only %d of %d slow bodies were answered in 10 s",
              len(answers), SLOW)
        for i, (buf, at) in answers.items():
            head = buf.split(b"\r\n\r\n")[0].decode("latin-1").lower()
            check(head.startswith("http/1.1 408"), "slow %d: %r", i, buf[:200])
            check("connection: close" in head, "slow %d: no Connection: close: %r", i, head)
            check(at < DEADLINE_MS / 1000 + 2.0, "slow %d answered after %.1f s", i, at)
        stop.set()
        t.join(30)
        check(len(results) >= 20, "normal traffic: only %d requests", len(results))
        bad = [r for r in results if r != 200]
        check(not bad, "normal traffic: %d of %d not served: %r", len(bad), len(results),
              bad[:5])
        # The upstream never got a complete slow body: /sha256 answers only at the end.
        time.sleep(0.3)
        log = [e for e in cx.access() if "slow=" in e.get("path", "")]
        check(len(log) == SLOW and all(e.get("status") == 408 for e in log),
              "access log of the slow ones: %r", log[:3])
        check(_body_timeouts(cx) == SLOW, "metrics: %d body timeouts, %d sent",
              _body_timeouts(cx), SLOW)
    finally:
        stop.set()
        for s in socks:
            s.close()
        cx.stop()


def test_slow_body_h2():
    """HTTP/2: 40 streams on two connections trickle DATA (one byte every 300 ms): each gets a
    408 on its stream within the deadline (then RST_STREAM NO_ERROR), the connections stay up
    and serve new streams, and other connections are served meanwhile."""
    cx, port, blue = _env()
    stop = threading.Event()
    results = []
    t = threading.Thread(target=_normal_traffic, args=(port, stop, results), daemon=True)
    t.start()
    try:
        conns = [H2(port), H2(port)]
        sids = [1 + 2 * i for i in range(20)]
        for c in conns:
            for sid in sids:
                c.headers(sid, req_fields("/sha256?h2slow=%d" % sid, "POST"), end_stream=False)
        start = time.monotonic()
        got = {}
        while time.monotonic() - start < 8 and len(got) < 2 * len(sids):
            for ci, c in enumerate(conns):
                for sid in sids:
                    if (ci, sid) not in got:
                        c.data(sid, b"a")
                while True:
                    f = c.read_frame(0.01)
                    if f is None or f == "timeout":
                        break
                    if f[0] == HEADERS and (ci, f[2]) not in got:
                        got[(ci, f[2])] = (int(f[4].get(":status", 0)),
                                           time.monotonic() - start)
            time.sleep(0.3)
        check(len(got) == 2 * len(sids), "only %d of %d slow streams answered", len(got),
              2 * len(sids))
        for k, (st, at) in got.items():
            check(st == 408, "stream %r: status %s", k, st)
            check(at < DEADLINE_MS / 1000 + 2.0, "stream %r answered after %.1f s", k, at)
        check(_body_timeouts(cx) == len(got), "metrics: %d body timeouts for %d streams",
              _body_timeouts(cx), len(got))
        for c in conns:
            c.headers(101, req_fields("/after"))
            f = c.wait(lambda f: f[0] == HEADERS and f[2] == 101, 5)
            check(f is not None and f[4].get(":status") == "200", "connection no longer serves")
            check(not any(f[0] == RST_STREAM and f[2] == 101 for f in c.frames), "reset")
        stop.set()
        t.join(30)
        bad = [r for r in results if r != 200]
        check(results and not bad, "normal traffic: %d of %d not served: %r", len(bad),
              len(results), bad[:5])
        _ = DATA, END_STREAM
    finally:
        stop.set()
        cx.stop()

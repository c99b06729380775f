"""Idle HTTP/1.1 connections give their buffers back (io_sleep) and take new ones with the next
byte: whatever woke the connection (a request, a pipelined batch, part of a head, a body in
pieces) is served as if it had never slept, and the idle timeout and a graceful stop still close
it. Memory per idle connection itself is measured by bench/bench.py's idle scenario."""
import hashlib
import socket
import time

from harness import (RawConn, build_request, check, free_port, make_config, pattern,
                     random_bytes, start_cutover, start_upstream)

IDLE = 0.3  # long enough for the loop to put the connection to sleep (it does so at once)


def _proxy(timeouts=None):
    blue = start_upstream("blue")
    green = start_upstream("green")
    port = free_port()
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                                   {"blue": 100, "green": 0}, timeouts=timeouts), workers=1)
    return cx, port, blue


def test_idle_between_requests():
    """A fresh connection idles before its first byte, then requests alternate with idle
    periods: GET, POST with Content-Length, chunked POST; every answer is right and the
    connection is never replaced."""
    cx, port, blue = _proxy()
    with RawConn(port) as c:
        time.sleep(IDLE)  # asleep before the first request
        for i in range(3):
            r = c.get("/size/%d" % (100 + i))
            check(r.status == 200 and r.body == pattern(100 + i), "GET %d after idling", i)
            time.sleep(IDLE)
            body = random_bytes(70000, seed=i + 1)
            r = c.request("POST", "/sha256", body=body, chunked=bool(i % 2))
            check(r.status == 200, "POST %d after idling: status %s", i, r.status)
            check(r.json()["sha256"] == hashlib.sha256(body).hexdigest(),
                  "POST %d after idling: the upstream got another body", i)
            time.sleep(IDLE)
        check(RawConn.connects == 1 and not c.eof, "the connection was replaced or closed")


def test_idle_then_pipelined_batch():
    """After idling, a pipelined batch in one send is answered in order; the connection idles
    again and serves another batch."""
    cx, port, blue = _proxy()
    with RawConn(port) as c:
        r = c.get("/size/10")
        check(r.status == 200, "first request: status %s", r.status)
        for rnd in range(2):
            time.sleep(IDLE)
            c.send(b"".join(build_request("GET", "/headers?r=%d&i=%d" % (rnd, i))
                            for i in range(8)))
            for i in range(8):
                r = c.read_response()
                check(r.status == 200, "round %d, response %d: status %s", rnd, i, r.status)
                got = r.json()["target"]
                check(got == "/headers?r=%d&i=%d" % (rnd, i),
                      "round %d, response %d answers %r", rnd, i, got)
        check(RawConn.connects == 1 and not c.eof, "the connection was replaced or closed")


def test_idle_then_partial_head():
    """A connection woken by part of a request head keeps it while the rest trickles in (the
    connection does not go back to sleep with a head half read), before and after a first
    request; a body sent in pieces with pauses arrives whole."""
    cx, port, blue = _proxy()
    with RawConn(port) as c:
        for rnd in range(2):
            time.sleep(IDLE)
            req = build_request("GET", "/size/%d" % (50 + rnd), {"X-Pad": "p" * 300})
            for k in range(0, len(req), 40):
                c.send(req[k:k + 40])
                time.sleep(0.05)
            r = c.read_response()
            check(r.status == 200 and r.body == pattern(50 + rnd),
                  "round %d: a head sent in pieces after idling: status %s", rnd, r.status)
        time.sleep(IDLE)
        body = random_bytes(5000, seed=7)
        c.send(build_request("POST", "/sha256", body=body))
        for k in range(0, len(body), 1000):
            time.sleep(0.05)
            c.send(body[k:k + 1000])
        r = c.read_response()
        check(r.status == 200 and r.json()["sha256"] == hashlib.sha256(body).hexdigest(),
              "a body in pieces after idling: status %s", r.status)
        check(RawConn.connects == 1 and not c.eof, "the connection was replaced or closed")


def test_idle_timeout_and_stop_close_sleeping_connections():
    """timeouts.client_idle_ms still closes a sleeping connection (used or not); a graceful
    stop closes the sleeping ones at once and exits cleanly."""
    cx, port, blue = _proxy(timeouts={"client_idle_ms": 500})
    used, unused = RawConn(port), RawConn(port)
    try:
        r = used.get("/size/5")
        check(r.status == 200, "request: status %s", r.status)
        for name, c in (("used", used), ("unused", unused)):
            d = c.recv_some(timeout=10)
            check(d == b"", "the %s idle connection got %r instead of a close", name, d[:100])
    finally:
        used.close()
        unused.close()
    cx.stop()

    cx, port, blue = _proxy()
    conns = [RawConn(port) for _ in range(4)]
    try:
        for c in conns[:2]:
            r = c.get("/size/5")
            check(r.status == 200, "request: status %s", r.status)
        time.sleep(IDLE)
        t0 = time.time()
        cx.stop()
        for i, c in enumerate(conns):
            try:
                d = c.recv_some(timeout=5)
            except (ConnectionResetError, socket.timeout) as e:
                d = e
            check(d == b"" or isinstance(d, ConnectionResetError),
                  "connection %d after the stop: %r", i, d)
        check(time.time() - t0 < 10, "idle connections held the stop back")
    finally:
        for c in conns:
            c.close()

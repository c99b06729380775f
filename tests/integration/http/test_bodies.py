"""Message bodies and connection handling: uploads, downloads, echo, pipelining, keep-alive,
HEAD/204/304, Expect: 100-continue, WebSocket upgrade."""
import hashlib
import os
import socket
import time

from harness import (BodyHash, RawConn, build_request, check, free_port, make_config,
                     pattern, pattern_sha256, random_bytes, start_cutover, start_upstream)

MiB = 1 << 20


def _proxy_to_blue():
    blue = start_upstream("blue")
    green = start_upstream("green")
    port = free_port()
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                                   {"blue": 100, "green": 0}))
    return cx, port, blue


def test_bodies():
    """0 B / 1 MiB / 64 MiB uploads (CL and chunked) to /sha256 and /echo, downloads of
    /size/N and /chunked/N; every checksum matches."""
    cx, port, blue = _proxy_to_blue()
    sizes = [0, MiB, 64 * MiB]
    data = {n: random_bytes(n, seed=n + 1) for n in sizes}
    digest = {n: hashlib.sha256(data[n]).hexdigest() for n in sizes}
    conns = [RawConn(port, timeout=60)]

    class C:  # the current connection; a new one after a response that closes it
        def request(self, *a, **kw):
            r = conns[-1].request(*a, **kw)
            if not r.keep_alive or conns[-1].eof:
                conns[-1].close()
                conns.append(RawConn(port, timeout=60))
            return r

        def get(self, path, **kw):
            return self.request("GET", path, **kw)
    c = C()
    try:
        for n in sizes:
            for chunked in (False, True):
                what = "POST /sha256 %d bytes %s" % (n, "chunked" if chunked else "CL")
                r = c.request("POST", "/sha256", {"Content-Type": "application/octet-stream"},
                              body=data[n], chunked=chunked)
                check(r.status == 200, "%s: status %s %r", what, r.status, r.body[:200])
                j = r.json()
                check(j["length"] == n, "%s: upstream got %s bytes", what, j["length"])
                check(j["sha256"] == digest[n], "%s: checksum differs", what)
                check(r.upstream == "blue", "%s: served by %s", what, r.upstream)
        for n in sizes:
            for kind in ("size", "chunked"):
                what = "GET /%s/%d" % (kind, n)
                sink = BodyHash()
                r = c.get("/%s/%d" % (kind, n), sink=sink)
                check(r.status == 200, "%s: status %s", what, r.status)
                check(sink.length == n, "%s: received %d bytes", what, sink.length)
                check(sink.hexdigest() == pattern_sha256(n), "%s: checksum differs", what)
                if kind == "size":
                    check(r.header("content-length") == str(n) or r.tokens("transfer-encoding"),
                          "%s: no framing header", what)
        for n in (MiB, 64 * MiB):
            for chunked in (False, True):
                what = "POST /echo %d bytes %s" % (n, "chunked" if chunked else "CL")
                sink = BodyHash()
                t0 = time.monotonic()
                r = c.request("POST", "/echo", body=data[n], chunked=chunked, sink=sink)
                check(r.status == 200, "%s: status %s", what, r.status)
                check(sink.length == n, "%s: echoed %d bytes", what, sink.length)
                check(sink.hexdigest() == digest[n], "%s: echo differs", what)
                check(time.monotonic() - t0 < 50, "%s: took too long", what)
    finally:
        for x in conns:
            x.close()
    # the connection stayed usable for all of that: one upstream TCP connection is not required,
    # but every request must have reached the upstream exactly once
    logged = blue.requests()
    check(len(logged) == 6 + 6 + 4, "upstream logged %d requests, expected 16", len(logged))


def test_pipelining():
    """10 requests written in one send on one connection: 10 responses, in order."""
    cx, port, blue = _proxy_to_blue()
    with RawConn(port) as c:
        batch = b"".join(build_request("GET", "/headers?i=%d" % i) for i in range(10))
        c.send(batch)
        for i in range(10):
            r = c.read_response()
            check(r.status == 200, "pipelined response %d: status %s", i, r.status)
            got = r.json()["target"]
            check(got == "/headers?i=%d" % i, "pipelined response %d answers %r", i, got)
        # and the connection is still usable afterwards
        r = c.get("/size/10")
        check(r.status == 200 and r.body == pattern(10), "request after the pipeline failed")
        check(RawConn.connects == 1, "the client reconnected")


def test_keepalive():
    """100 sequential requests over one TCP connection, none closes it."""
    cx, port, blue = _proxy_to_blue()
    c = RawConn(port)
    local = c.local_port
    fileno = c.sock.fileno()
    try:
        for i in range(100):
            r = c.get("/size/%d" % (i * 7))
            check(r.status == 200, "request %d: status %s", i, r.status)
            check(r.body == pattern(i * 7), "request %d: body differs", i)
            check(r.keep_alive, "request %d: the proxy asked to close the connection", i)
            check(not c.eof, "request %d: the proxy closed the connection", i)
        check(c.responses == 100, "responses on the connection: %d", c.responses)
        check(c.sock.fileno() == fileno and c.sock.getsockname()[1] == local,
              "socket changed")
        check(RawConn.connects == 1, "the client connected %d times", RawConn.connects)
    finally:
        c.close()
    check(len(blue.requests()) == 100, "upstream logged %d requests", len(blue.requests()))


def test_head_204_304_expect_ws():
    """HEAD keeps framing, 204/304 have no body, Expect: 100-continue, WebSocket tunnel."""
    cx, port, blue = _proxy_to_blue()
    with RawConn(port) as c:
        r = c.request("HEAD", "/size/100")
        check(r.status == 200, "HEAD: status %s", r.status)
        check(r.header("content-length") == "100", "HEAD: Content-Length %r",
              r.header("content-length"))
        r = c.get("/size/33")
        check(r.status == 200 and r.body == pattern(33),
              "GET after HEAD on the same connection: %r %r", r, r.body[:50])
        for st in (204, 304):
            r = c.get("/status/%d" % st)
            check(r.status == st, "/status/%d: got %s", st, r.status)
            check(r.header("transfer-encoding") is None, "%d with Transfer-Encoding", st)
            r = c.get("/size/5")
            check(r.status == 200 and r.body == pattern(5), "GET after %d: %r %r", st, r,
                  r.body[:50])
        check(not c.eof and c.responses == 6, "connection not kept across HEAD/204/304")

    # Expect: 100-continue: the body is sent only after the interim response
    body = random_bytes(200000, seed=7)
    with RawConn(port, timeout=5) as c:
        c.send(build_request("POST", "/sha256", {"Expect": "100-continue"}, body))
        t0 = time.monotonic()
        interim = c.read_response("POST", stop_at_interim=True)
        check(interim.status == 100, "Expect: got %s before the body was sent", interim.status)
        check(time.monotonic() - t0 < 3, "100 Continue took too long")
        c.send(body)
        r = c.read_response("POST")
        check(r.status == 200, "Expect: final status %s", r.status)
        j = r.json()
        check(j["length"] == len(body) and j["sha256"] == hashlib.sha256(body).hexdigest(),
              "Expect: upstream got %r", j)
        r = c.get("/size/3")
        check(r.status == 200 and r.body == pattern(3), "request after Expect failed")

    # WebSocket upgrade to /ws: a byte tunnel both ways
    with RawConn(port, timeout=5) as c:
        c.send(build_request("GET", "/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                            ("Sec-WebSocket-Version", "13")]))
        r = c.read_response()
        check(r.status == 101, "upgrade: status %s", r.status)
        check("websocket" in r.tokens("upgrade"), "upgrade: Upgrade header %r",
              r.header("upgrade"))
        check(r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
              "upgrade: Sec-WebSocket-Accept %r", r.header("sec-websocket-accept"))
        for i, size in enumerate((1, 100, 70000, 3)):
            msg = os.urandom(size)
            c.send(msg)
            got = b""
            deadline = time.monotonic() + 5
            while len(got) < size and time.monotonic() < deadline:
                d = c.recv_some(size - len(got))
                if not d:
                    break
                got += d
            check(got == msg, "tunnel message %d (%d bytes): echoed %d bytes", i, size, len(got))
        c.shutdown_write()
        c.sock.settimeout(5)
        try:
            rest = c.read_all_until_close()
        except socket.timeout:
            rest = None
        check(rest == b"", "tunnel did not close cleanly after the client's FIN: %r",
              rest if rest is None else rest[:50])

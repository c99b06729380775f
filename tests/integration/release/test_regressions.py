"""Regression tests for the bugs a code review found (each one failed before its fix).

Several tests need upstream behaviour upstream.py does not have (an upstream that closes after a
POST, a chunk every 300 ms, a 101 with a banner in the same write, ...): MiniUpstream below is a
small purpose-built socket server on 127.0.0.1, one thread per connection, bounded in time, and
closed at the end of each test.
"""
import hashlib
import json
import os
import signal
import socket
import threading
import time

from harness import (HOST, BodyHash, ClosedBeforeResponse, ProtocolError, RawConn, build_request,
                     check, free_port, make_config, pattern, pattern_sha256, start_cutover,
                     start_upstream, wait_until)

MiB = 1 << 20


# --- a purpose-built upstream --------------------------------------------------------------------

class MiniUpstream:
    """A listening socket on 127.0.0.1; every accepted connection runs handler(up, sock, cid) in
    its own thread (cid counts from 1). Bounded: the accept loop ends at stop() or after
    `lifetime` seconds, every socket has a timeout, and stop() shuts down and closes every
    socket. up.record(x) / up.records() keep what the handler saw."""

    def __init__(self, handler, lifetime=40.0, sock_timeout=10.0):
        self.handler = handler
        self.sock_timeout = sock_timeout
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((HOST, 0))
        self.ls.listen(64)
        self.ls.settimeout(0.1)
        self.port = self.ls.getsockname()[1]
        self.addr = "%s:%d" % (HOST, self.port)
        self.lock = threading.Lock()
        self.accepted = 0
        self.log = []
        self.socks = []
        self.state = {}  # free for the handler's use (under self.lock)
        self.stop_event = threading.Event()
        self.deadline = time.monotonic() + lifetime
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.settimeout(self.sock_timeout)
            with self.lock:
                self.accepted += 1
                cid = self.accepted
                self.socks.append(s)
            threading.Thread(target=self._run, args=(s, cid), daemon=True).start()

    def _run(self, s, cid):
        try:
            self.handler(self, s, cid)
        except (OSError, ValueError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def running(self):
        """False once stop() was called or the lifetime is over: handlers' loops check it."""
        return not self.stop_event.is_set() and time.monotonic() < self.deadline

    def record(self, item):
        with self.lock:
            self.log.append(item)

    def records(self):
        with self.lock:
            return list(self.log)

    def stop(self):
        self.stop_event.set()
        try:
            self.ls.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self.thread.join(2.0)


def read_request(s, buf, timeout=10.0):
    """Reads one request head (and a Content-Length body) from s, for at most `timeout` seconds
    (socket.timeout after that). Returns (method, target, {lower-name: value}, body, rest), or
    None at EOF before a complete request."""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline:
            raise socket.timeout("request head")
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    i = buf.index(b"\r\n\r\n") + 4
    head, rest = buf[:i], buf[i:]
    lines = head[:-4].decode("latin-1").split("\r\n")
    method, target = lines[0].split(" ")[:2]
    headers = {}
    for l in lines[1:]:
        n, _, v = l.partition(":")
        headers[n.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    while len(rest) < n:
        if time.monotonic() > deadline:
            raise socket.timeout("request body")
        d = s.recv(65536)
        if not d:
            return None
        rest += d
    return method, target, headers, rest[:n], rest[n:]


def ok_response(body=b"ok\n", extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


# --- helpers -------------------------------------------------------------------------------------

def _proxy(endpoint, timeouts=None, limits=None, prefix="/", workers=1, **kw):
    """cutover with one route (prefix) whose pools both point at endpoint (an Upstream or
    "host:port"); blue takes 100 %."""
    port = free_port()
    cfg = make_config(port, {"blue": [endpoint], "green": [endpoint]}, {"blue": 100, "green": 0},
                      timeouts=timeouts, limits=limits, workers=workers, **kw)
    cfg["routes"][0]["path_prefix"] = prefix
    return start_cutover(cfg, workers=workers), port


def _rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _read_until(c, pred, timeout):
    """Bytes from RawConn c (its buffer first) until pred(bytes) or EOF or timeout.
    Returns (data, eof)."""
    got = bytearray(c.buf)
    c.buf.clear()
    deadline = time.monotonic() + timeout
    eof = False
    while not pred(bytes(got)):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        c.sock.settimeout(left)
        try:
            d = c.sock.recv(65536)
        except socket.timeout:
            break
        if not d:
            eof = True
            break
        got += d
    c.sock.settimeout(c.timeout)
    return bytes(got), eof


def _slow_download(port, n, step, pause, budget, on_tick=None, rcvbuf=262144):
    """GET /size/n read slowly: at most `step` bytes every `pause` seconds, for at most `budget`
    seconds. on_tick(elapsed) is called after every read. Returns (status line, BodyHash, error)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5.0)
    s.connect((HOST, port))
    head = b""
    sink = BodyHash()
    err = None
    status = None
    t0 = time.monotonic()
    try:
        s.sendall(build_request("GET", "/size/%d" % n))
        while sink.length < n and time.monotonic() - t0 < budget:
            d = s.recv(step)
            if not d:
                err = "connection closed after %d of %d body bytes (%.2f s)" % (
                    sink.length, n, time.monotonic() - t0)
                break
            if status is None:
                head += d
                if b"\r\n\r\n" in head:
                    h, _, rest = head.partition(b"\r\n\r\n")
                    status = h.split(b"\r\n")[0].decode("latin-1")
                    sink.update(rest)
            else:
                sink.update(d)
            if on_tick:
                on_tick(time.monotonic() - t0)
            time.sleep(pause)
        else:
            if sink.length < n:
                err = "only %d of %d body bytes after %.1f s" % (sink.length, n, budget)
    except OSError as e:
        err = "%r after %d of %d body bytes (%.2f s)" % (e, sink.length, n, time.monotonic() - t0)
    finally:
        s.close()
    return status, sink, err


# --- 1. pipelined flood --------------------------------------------------------------------------

def _flood_phase(cx, port, path, budget, max_bytes):
    """Pipelines requests for `path` without reading for `budget` seconds (or max_bytes sent),
    then 1 s more; returns (bytes sent, peak RSS in kB) sampled every 20 ms throughout."""
    peak = [_rss_kb(cx.pid)]
    done = threading.Event()

    def sampler():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_kb(cx.pid))
            time.sleep(0.02)
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((HOST, port))
    s.settimeout(0.5)
    batch = build_request("GET", path, host="app.test") * 1000
    sent = 0
    t0 = time.monotonic()
    try:
        while sent < max_bytes and time.monotonic() - t0 < budget:
            try:
                sent += s.send(batch)
            except socket.timeout:
                continue  # the proxy does not read: that is the point
        time.sleep(1.0)  # whatever the proxy still does with what it read
        peak[0] = max(peak[0], _rss_kb(cx.pid))
        # now read for a bounded time: responses, in order, and no reset
        s.settimeout(0.5)
        got = bytearray()
        err = None
        t1 = time.monotonic()
        while time.monotonic() - t1 < 1.5 and len(got) < 64 * MiB:
            try:
                d = s.recv(1 << 20)
            except socket.timeout:
                break
            except OSError as e:
                err = e
                break
            if not d:
                break
            got += d
    finally:
        done.set()
        th.join(1.0)
        s.close()
    return sent, peak[0], bytes(got), err


def test_pipelined_flood_is_bounded():
    """A client pipelines requests without reading (a 404 path, then /size/20000 through a real
    upstream): the proxy's RSS stays under 64 MB (it grew to 194-268 MB before the fix); the
    client then reads the responses, and the proxy is still alive and serving."""
    blue = start_upstream("blue")
    cx, port = _proxy(blue, prefix="/size", workers=2)
    limit_kb = 64 * 1024
    base = _rss_kb(cx.pid)
    for path, status, budget in (("/x", b"404", 3.5), ("/size/20000", b"200", 4.0)):
        sent, peak, got, err = _flood_phase(cx, port, path, budget, 40 * MiB)
        check(cx.alive(), "cutover died during the %s flood: %s", path, cx.stderr_text()[-1000:])
        check(peak < limit_kb, "%s flood: cutover RSS peaked at %d kB (limit %d kB, %d kB at "
              "start) after %.1f MB of pipelined requests", path, peak, limit_kb, base,
              sent / 1e6)
        check(err is None, "%s flood: reading the responses failed: %r (after %d bytes)", path,
              err, len(got))
        check(got.startswith(b"HTTP/1.1 " + status), "%s flood: responses start with %r", path,
              got[:80])
        lines = [l for l in got.split(b"\r\n") if l.startswith(b"HTTP/1.1 ")]
        bad = [l for l in lines if not l.startswith(b"HTTP/1.1 " + status)]
        check(not bad, "%s flood: unexpected status lines %r", path, bad[:3])
    check(cx.alive(), "cutover died")
    with RawConn(port) as c:
        r = c.get("/size/100")
        check(r.status == 200 and r.body == pattern(100), "after the floods: %r", r)
    with RawConn(port) as c:
        r = c.get("/x")
        check(r.status == 404, "after the floods, unrouted: %r", r)


test_pipelined_flood_is_bounded.timeout = 60


# --- 2. retries on dead pooled connections -------------------------------------------------------

def _post_trap_handler(up, s, cid):
    """GET: 200 keep-alive after 200 ms (so concurrent clients need several connections).
    POST: read it, then close without answering."""
    buf = b""
    while up.running():
        req = read_request(s, buf)
        if req is None:
            return
        method, target, headers, body, buf = req
        up.record((cid, method, target, body))
        if method == "POST":
            return  # "crashed" after receiving the POST
        time.sleep(0.2)
        s.sendall(ok_response())


def _get_trap_handler(up, s, cid):
    """200 keep-alive to everything, except: when armed, a request on a reused connection is
    swallowed and the connection closed (once)."""
    buf = b""
    n = 0
    while up.running():
        req = read_request(s, buf)
        if req is None:
            return
        method, target, headers, body, buf = req
        n += 1
        with up.lock:
            trap = n >= 2 and up.state.get("armed")
            if trap:
                up.state["armed"] = False
        up.record((cid, n, method, target, "trapped" if trap else "answered"))
        if trap:
            return
        s.sendall(ok_response())


def test_post_not_replayed_on_dead_pooled_connection():
    """A POST whose pooled upstream connection dies before the answer gets 502 and reaches the
    upstream exactly once (9 copies before the fix); a GET in the same situation is retried once
    on a fresh connection and succeeds."""
    up = MiniUpstream(_post_trap_handler)
    try:
        cx, port = _proxy(up.addr)
        errors = []

        def warm(i):
            try:
                with RawConn(port, timeout=10) as c:
                    for j in range(2):
                        r = c.get("/warm/%d/%d" % (i, j))
                        if r.status != 200:
                            errors.append((i, j, r.status))
            except Exception as e:
                errors.append((i, repr(e)))
        ths = [threading.Thread(target=warm, args=(i,), daemon=True) for i in range(5)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(15)
        check(not errors, "warm-up failed: %r", errors)
        check(up.accepted >= 3, "warm-up opened only %d upstream connections", up.accepted)
        for label, body in (("empty", b""), ("small body", b"payload-123")):
            before = len([x for x in up.records() if x[1] == "POST"])
            with RawConn(port, timeout=10) as c:
                c.send(build_request("POST", "/submit", None, body) + body)
                r = c.read_response("POST")
            time.sleep(0.3)  # a replay would have happened before the answer; be generous
            posts = [x for x in up.records() if x[1] == "POST"][before:]
            check(r.status == 502, "POST (%s) on a dying pooled connection: status %s %r", label,
                  r.status, r.body[:200])
            check(len(posts) == 1, "POST (%s) reached the upstream %d times (must be once): %r",
                  label, len(posts), posts)
            check(posts[0][3] == body, "POST (%s) body upstream %r", label, posts[0][3])
    finally:
        up.stop()

    up = MiniUpstream(_get_trap_handler)
    try:
        cx, port = _proxy(up.addr)
        with RawConn(port, timeout=10) as c:
            r = c.get("/first")
            check(r.status == 200, "first GET: %r", r)
            with up.lock:
                up.state["armed"] = True
            r = c.get("/again")
            check(r.status == 200 and r.body == b"ok\n",
                  "GET on a dead pooled connection was not retried: %r %r", r, r.body[:200])
        again = [x for x in up.records() if x[3] == "/again"]
        check(len(again) == 2 and again[0][4] == "trapped" and again[1][4] == "answered"
              and again[0][0] != again[1][0],
              "GET /again upstream: expected one swallowed copy on the reused connection and "
              "one answered on a fresh one, got %r", again)
    finally:
        up.stop()


# --- 3. streaming response and body_idle_ms ------------------------------------------------------

def _drip_handler(up, s, cid):
    """A chunked response: one chunk every 300 ms for 3 s, then the last chunk."""
    if read_request(s, b"") is None:
        return
    s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(10):
        time.sleep(0.3)
        s.sendall(b"6\r\ntick%02d\r\n" % i)
    s.sendall(b"0\r\n\r\n")
    read_request(s, b"")  # until the proxy closes or pools (bounded by the socket timeout)


def test_streaming_response_not_cut_by_body_idle():
    """body_idle_ms 1000 and a response that sends a chunk every 300 ms for 3 s: every chunk and
    the last chunk arrive (the body idle timer restarts with every byte)."""
    up = MiniUpstream(_drip_handler)
    try:
        cx, port = _proxy(up.addr, timeouts={"body_idle_ms": 1000})
        with RawConn(port, timeout=10) as c:
            c.send(build_request("GET", "/drip"))
            t0 = time.monotonic()
            try:
                r = c.read_response()
            except (ProtocolError, ConnectionError) as e:
                raise AssertionError("streaming response cut after %.2f s: %s"
                                     % (time.monotonic() - t0, e))
            want = b"".join(b"tick%02d" % i for i in range(10))
            check(r.status == 200, "status %s", r.status)
            check(r.body == want, "body %r, expected %r", r.body, want)
    finally:
        up.stop()


# --- 4. slow upload and upstream_header_ms -------------------------------------------------------

def test_slow_upload_not_504():
    """upstream_header_ms 1000 and a 3 KB upload that takes ~3 s: 200 with the right checksum
    (the header timer starts once the request is complete)."""
    blue = start_upstream("blue")
    cx, port = _proxy(blue, timeouts={"upstream_header_ms": 1000})
    body = os.urandom(3000)
    with RawConn(port, timeout=10) as c:
        c.send(build_request("POST", "/sha256", None, body))
        early = None
        for i in range(30):
            try:
                c.send(body[i * 100:(i + 1) * 100])
            except OSError as e:
                early = "send failed after %d bytes: %r" % (i * 100, e)
                break
            time.sleep(0.1)
        r = c.read_response("POST")
        check(r.status == 200, "slow upload: status %s %r (%s)", r.status, r.body[:200], early)
        j = r.json()
        check(j["length"] == 3000 and j["sha256"] == hashlib.sha256(body).hexdigest(),
              "slow upload: upstream got %r", j)


# --- 5. slow reader and client_idle_ms -----------------------------------------------------------

def test_slow_reader_gets_whole_response():
    """client_idle_ms 1000, buffer_bytes 16 MiB and GET /size/12000000 read at 256 KiB per
    100 ms (> 4 s): every byte arrives (the keep-alive idle timer does not start while the
    response is still being written; with a large buffer the upstream is done long before the
    client, which is when the timer used to start)."""
    blue = start_upstream("blue")
    cx, port = _proxy(blue, timeouts={"client_idle_ms": 1000},
                      limits={"buffer_bytes": 16777216})
    n = 12000000
    t0 = time.monotonic()
    status, sink, err = _slow_download(port, n, 256 * 1024, 0.1, budget=15.0)
    dt = time.monotonic() - t0
    check(err is None, "slow reader: %s", err)
    check(status and status.startswith("HTTP/1.1 200"), "status line %r", status)
    check(sink.length == n and sink.hexdigest() == pattern_sha256(n),
          "slow reader: %d bytes, checksum %s", sink.length,
          "ok" if sink.hexdigest() == pattern_sha256(n) else "differs")
    check(dt > 2.0, "the download took only %.2f s: not a slow reader", dt)
    check(cx.alive(), "cutover died")


# --- 6. SIGTERM during a download ----------------------------------------------------------------

def test_sigterm_does_not_truncate_download():
    """buffer_bytes 16 MiB, drain_ms 10000: SIGTERM while a slow client downloads /size/8000000
    (the whole response already sits in cutover's output buffer): the client still receives all
    8 000 000 bytes and cutover exits 0."""
    blue = start_upstream("blue")
    cx, port = _proxy(blue, timeouts={"drain_ms": 10000}, limits={"buffer_bytes": 16777216})
    n = 8000000
    sent = {}

    def tick(elapsed):
        if "t" not in sent and elapsed >= 1.0:
            sent["t"] = elapsed
            os.kill(cx.pid, signal.SIGTERM)
    status, sink, err = _slow_download(port, n, 256 * 1024, 0.1, budget=15.0, on_tick=tick)
    check("t" in sent, "SIGTERM was never sent (the download ended too early)")
    check(err is None, "download with SIGTERM at %.2f s: %s", sent.get("t", -1), err)
    check(status and status.startswith("HTTP/1.1 200"), "status line %r", status)
    check(sink.length == n and sink.hexdigest() == pattern_sha256(n),
          "download: %d bytes, checksum differs", sink.length)
    code = cx.wait_exit(12)
    check(code == 0, "cutover exited with %s; stderr %r", code, cx.stderr_text()[-1000:])


# --- 7. / 8. tunnels -----------------------------------------------------------------------------

UPGRADE = [("Connection", "Upgrade"), ("Upgrade", "websocket")]


def _banner_handler(up, s, cid):
    """101 and a banner in the same write, then echo."""
    if read_request(s, b"") is None:
        return
    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
              b"Upgrade: websocket\r\n\r\nHELLO-FROM-SERVER\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        d = s.recv(65536)
        if not d:
            return
        s.sendall(d)


def test_server_first_protocol_after_101():
    """An upstream that sends a banner in the same write as its 101: the client receives the
    banner within 1 s without sending anything, and the tunnel then echoes."""
    up = MiniUpstream(_banner_handler)
    try:
        cx, port = _proxy(up.addr)
        with RawConn(port, timeout=5) as c:
            c.send(build_request("GET", "/ws", UPGRADE))
            r = c.read_response()
            check(r.status == 101, "upgrade: status %s", r.status)
            got, eof = _read_until(c, lambda b: b"HELLO-FROM-SERVER\n" in b, 1.0)
            check(got == b"HELLO-FROM-SERVER\n",
                  "banner after the 101: got %r (eof %s) within 1 s", got, eof)
            c.send(b"ping\n")
            got, eof = _read_until(c, lambda b: b"ping\n" in b, 3.0)
            check(got == b"ping\n", "echo through the tunnel: %r (eof %s)", got, eof)
    finally:
        up.stop()


def _push_handler(up, s, cid):
    """101, then a line every 300 ms for 3 s, then close."""
    if read_request(s, b"") is None:
        return
    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
              b"Upgrade: websocket\r\n\r\n")
    for i in range(10):
        time.sleep(0.3)
        s.sendall(b"push%02d\n" % i)
    time.sleep(0.2)


def test_tunnel_idle_counts_both_directions():
    """client_idle_ms 1500; after the 101 the upstream pushes a line every 300 ms for 3 s and the
    client never sends: all 10 lines arrive (traffic from the upstream keeps the tunnel open)."""
    up = MiniUpstream(_push_handler)
    try:
        cx, port = _proxy(up.addr, timeouts={"client_idle_ms": 1500})
        with RawConn(port, timeout=5) as c:
            c.send(build_request("GET", "/ws", UPGRADE))
            r = c.read_response()
            check(r.status == 101, "upgrade: status %s", r.status)
            t0 = time.monotonic()
            want = b"".join(b"push%02d\n" % i for i in range(10))
            got, eof = _read_until(c, lambda b: b == want, 6.0)
            dt = time.monotonic() - t0
            check(got == want, "tunnel: %d of 10 lines after %.2f s (eof %s): %r",
                  got.count(b"push"), dt, eof, got[-40:])
    finally:
        up.stop()


# --- 9. Content-Length: 0 and upstream keep-alive ------------------------------------------------

def _keepalive_handler(up, s, cid):
    buf = b""
    while up.running():
        req = read_request(s, buf)
        if req is None:
            return
        method, target, headers, body, buf = req
        up.record((cid, method, target))
        s.sendall(ok_response())


def test_content_length_zero_reuses_upstream_connection():
    """5 sequential POSTs with Content-Length: 0 on one client connection reach the upstream over
    ONE upstream connection (the request counts as complete at once)."""
    up = MiniUpstream(_keepalive_handler)
    try:
        cx, port = _proxy(up.addr)
        with RawConn(port) as c:
            for i in range(5):
                r = c.request("POST", "/p%d" % i, {"Content-Length": "0"})
                check(r.status == 200 and r.body == b"ok\n", "POST %d: %r %r", i, r, r.body)
        recs = up.records()
        check([x[2] for x in recs] == ["/p%d" % i for i in range(5)], "upstream saw %r", recs)
        check(up.accepted == 1 and {x[0] for x in recs} == {1},
              "5 POSTs with Content-Length: 0 used %d upstream connections: %r", up.accepted,
              recs)
    finally:
        up.stop()


# --- 10. Host of absolute-form and HTTP/1.0 requests ---------------------------------------------

def test_absolute_form_sets_host():
    """`GET http://public.example/headers` with `Host: admin.internal` reaches the upstream with
    exactly one Host: public.example; an HTTP/1.0 request without Host is forwarded with one."""
    blue = start_upstream("blue")
    cx, port = _proxy(blue)
    with RawConn(port) as c:
        r = c.get("http://public.example/headers", host="admin.internal")
        check(r.status == 200, "absolute-form: status %s %r", r.status, r.body[:200])
        j = r.json()
        hosts = [v for n, v in j["raw_headers"] if n.lower() == "host"]
        check(hosts == ["public.example"], "absolute-form: Host fields upstream %r", hosts)
        check(j["target"] == "/headers", "absolute-form: target upstream %r", j["target"])
    with RawConn(port) as c:
        c.send(build_request("GET", "/headers", host=None, version="HTTP/1.0"))
        r = c.read_response()
        check(r.status == 200, "HTTP/1.0 without Host: status %s %r", r.status, r.body[:200])
        j = r.json()
        hosts = [v for n, v in j["raw_headers"] if n.lower() == "host"]
        check(len(hosts) == 1 and hosts[0], "HTTP/1.0 without Host: Host fields upstream %r "
              "(an HTTP/1.1 request needs exactly one)", hosts)
        check(j["version"] == "HTTP/1.1", "version upstream %r", j["version"])


# --- 11. half-close after a complete request -----------------------------------------------------

def test_half_close_after_request_gets_response():
    """A complete GET followed by shutdown(SHUT_WR): the whole response arrives."""
    blue = start_upstream("blue")
    cx, port = _proxy(blue)
    for path, want in (("/slow/300", b"blue\n"), ("/size/100000", pattern(100000))):
        with RawConn(port, timeout=5) as c:
            c.send(build_request("GET", path))
            c.shutdown_write()
            try:
                r = c.read_response()
            except (ClosedBeforeResponse, ProtocolError, ConnectionError) as e:
                raise AssertionError("GET %s then half-close: %s" % (path, e))
            check(r.status == 200 and r.body == want, "GET %s then half-close: %r %r", path, r,
                  r.body[:60])


# --- 12. an early response while the client is still sending -------------------------------------

class _SlowSink(BodyHash):
    """A body sink that takes `pause` seconds per piece received (a slow client)."""

    def __init__(self, pause):
        super().__init__()
        self.pause = pause

    def update(self, data):
        super().update(data)
        if self.pause:
            time.sleep(self.pause)


def _early_attempt(port, path, size, before=None, pace=None, read_pause=0.0, rcvbuf=65536):
    """POST path with Content-Length size; a thread sends the body (64 KiB pieces, one every
    `pace` seconds, or flat out) while this one reads the response(s). before: a GET path
    pipelined in front of the POST (its response is read first, checked by pattern). Returns the
    POST's status, or a description of the failure."""
    c = RawConn(port, timeout=5)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # a slow network, as it were
    stop = threading.Event()

    def sender():
        chunk = b"x" * 65536
        n = 0
        try:
            while n < size and not stop.is_set():
                c.sock.sendall(chunk[:min(65536, size - n)])
                n += len(chunk)
                if pace:
                    time.sleep(pace)
        except OSError:
            pass  # the proxy stops reading at some point after its answer: expected
    head = build_request("POST", path, {"Content-Length": str(size)})
    if before:
        head = build_request("GET", before) + head
    c.send(head)
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    stage = "the response"
    try:
        if before:
            stage = "the pipelined GET %s" % before
            sink = _SlowSink(read_pause)
            r = c.read_response("GET", sink=sink)
            n = int(before.rsplit("/", 1)[1])
            if r.status != 200 or sink.length != n or sink.hexdigest() != pattern_sha256(n):
                return "pipelined GET: %r, %d bytes" % (r, sink.length)
            stage = "the response to the POST"
        r = c.read_response("POST", sink=_SlowSink(read_pause))
        result = r.status
    except (ClosedBeforeResponse, ProtocolError, OSError) as e:
        result = "%s while reading %s: %s" % (type(e).__name__, stage, e)
    finally:
        stop.set()
        try:
            c.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c.close()
        t.join(6)
    return result


def _early_413_handler(up, s, cid):
    """413 at once, without reading the body (a 2 MB body for /big, else 4 bytes); hold the
    connection a moment, then close."""
    buf = b""
    deadline = time.monotonic() + 5
    while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
        d = s.recv(65536)
        if not d:
            return
        buf += d
    up.record(cid)
    body = pattern(2000000) if buf.startswith(b"POST /big ") else b"big\n"
    s.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: %d\r\n\r\n" % len(body) +
              body)
    time.sleep(1.0)


def test_early_response_not_reset():
    """A 20 MB POST answered before its body is read: the client, still sending, reads the whole
    response instead of a reset, 3 times of 3. Cases: a 404 (no route) and an upstream's
    immediate 413, the client sending flat out; then a slow client (64 KiB every 100 ms, reading
    64 KiB every 20 ms) getting the same 404 behind a pipelined 2 MB response, and a 413 with a
    2 MB body. Before the fix cutover closed with unread input at once, and the kernel's reset
    destroyed the part of the response not yet delivered (the last two cases)."""
    blue = start_upstream("blue")
    cx, port = _proxy(blue, prefix="/size")
    up = MiniUpstream(_early_413_handler)
    try:
        cx2, port2 = _proxy(up.addr)
        results = [_early_attempt(port, "/nothing", 20 * MiB) for _ in range(3)]
        check(results == [404] * 3, "404 before the body was read: %r", results)
        results = [_early_attempt(port2, "/upload", 20 * MiB) for _ in range(3)]
        check(results == [413] * 3, "upstream 413 before the body was read: %r", results)
        slow = dict(pace=0.1, read_pause=0.02, rcvbuf=65536)
        results = [_early_attempt(port, "/nothing", 20 * MiB, before="/size/2000000", **slow)
                   for _ in range(3)]
        check(results == [404] * 3, "slow client, 404 behind a pipelined 2 MB response: %r",
              results)
        results = [_early_attempt(port2, "/big", 20 * MiB, **slow) for _ in range(3)]
        check(results == [413] * 3, "slow client, upstream 413 with a 2 MB body: %r", results)
        # A client sending flat out while reading slowly: more than 1 MiB of body arrives
        # during the linger; cutover must keep discarding until the client stops, not give up
        # after a byte count and reset the connection under an undelivered response.
        results = [_early_attempt(port2, "/big", 20 * MiB, read_pause=0.02) for _ in range(3)]
        check(results == [413] * 3, "flat-out sender, slow reader, 413 with 2 MB: %r", results)
        results = [_early_attempt(port, "/nothing", 20 * MiB, before="/size/2000000",
                                  read_pause=0.02) for _ in range(3)]
        check(results == [404] * 3, "flat-out sender, slow reader, 404 behind 2 MB: %r", results)
    finally:
        up.stop()
    check(cx.alive() and cx2.alive(), "cutover died")


# --- 13. X-Original-Host / X-Original-URL from untrusted peers -----------------------------------

def test_untrusted_original_host_stripped():
    """X-Original-Host and X-Original-URL are dropped from an untrusted peer and forwarded from a
    trusted one."""
    blue = start_upstream("blue")
    extra = [("X-Original-Host", "evil.example"), ("X-Original-URL", "/admin/secret")]
    for trusted in ([], ["127.0.0.1"]):
        cx, port = _proxy(blue, trusted_proxies=trusted)
        with RawConn(port) as c:
            r = c.get("/headers", extra)
            check(r.status == 200, "trusted %r: status %s %r", trusted, r.status, r.body[:200])
            h = r.json()["headers"]
        if trusted:
            check(h.get("x-original-host") == "evil.example" and
                  h.get("x-original-url") == "/admin/secret",
                  "from a trusted peer the X-Original-* fields must be forwarded: %r", h)
        else:
            check("x-original-host" not in h and "x-original-url" not in h,
                  "from an untrusted peer X-Original-* was forwarded: host %r url %r",
                  h.get("x-original-host"), h.get("x-original-url"))
        cx.stop()


# --- 14. the access log marks an aborted response ------------------------------------------------

def _abort_handler(up, s, cid):
    """/abort: Content-Length 1000000, 10 bytes, close. Anything else: 200 "ok" and close."""
    req = read_request(s, b"")
    if req is None:
        return
    if req[1] == "/abort":
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n0123456789")
    else:
        s.sendall(ok_response(extra=b"Connection: close\r\n"))
    time.sleep(0.1)


def test_access_log_marks_aborted():
    """The upstream promises 1 000 000 bytes, sends 10 and closes: the client sees the response
    fail, and its access-log line says "aborted": true."""
    up = MiniUpstream(_abort_handler)
    try:
        cx, port = _proxy(up.addr)
        with RawConn(port, timeout=5) as c:
            c.send(build_request("GET", "/abort"))
            failed = r = None
            try:
                r = c.read_response()
            except (ProtocolError, ConnectionError) as e:
                failed = e
            check(failed is not None, "a cut response was delivered as complete: %r", r)
        line = wait_until(lambda: [a for a in cx.access() if a.get("path") == "/abort"], 5.0,
                          what="the access-log line for /abort")[0]
        check(line.get("aborted") is True, "access-log line of the cut response: %s",
              json.dumps(line))
        # and a complete response is not marked
        with RawConn(port, timeout=5) as c:
            r = c.get("/fine")
            check(r.status == 200 and r.body == b"ok\n", "complete response: %r", r)
        line = wait_until(lambda: [a for a in cx.access() if a.get("path") == "/fine"], 5.0,
                          what="the access-log line for /fine")[0]
        check(line.get("aborted") is False, "access-log line of a complete response: %s",
              json.dumps(line))
    finally:
        up.stop()

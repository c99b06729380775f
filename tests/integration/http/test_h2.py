"""HTTP/2 towards clients (h2c with prior knowledge): end to end with curl, nghttp and h2load,
and abuse with a tiny raw-frame client (stdlib only; HPACK: literal fields without indexing
going out, and only the one-byte indexed ":status: 200" (0x88) is recognised coming back)."""
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time

from harness import (BodyHash, check, free_port, make_config, pattern_sha256, random_bytes,
                     start_cutover, start_upstream, unique, wait_until)

MiB = 1 << 20

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PROTOCOL_ERROR, INTERNAL_ERROR, CANCEL, ENHANCE_YOUR_CALM = 0x1, 0x2, 0x8, 0xb
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(headers):
    """Literal header fields without indexing, new names, no Huffman (RFC 7541 section 6.2.2)."""
    out = b""
    for n, v in headers:
        n, v = n.encode(), v.encode()
        out += b"\x00" + hpack_int(len(n), 7) + n + hpack_int(len(v), 7) + v
    return out


class H2Raw:
    """One HTTP/2 connection on a raw socket: exact frames out, frames parsed back."""

    def __init__(self, port, settings=(), timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        payload = b"".join(struct.pack(">HI", k, v) for k, v in settings)
        self.sock.sendall(PREFACE + self.frame(SETTINGS, 0, 0, payload))

    @staticmethod
    def frame(ftype, flags, sid, payload=b""):
        return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
            struct.pack(">I", sid) + payload

    def send(self, data):
        self.sock.sendall(data)

    def request(self, sid, method="GET", path="/", authority="app.test", extra=(),
                end_stream=True):
        hdrs = [(":method", method), (":scheme", "http"), (":authority", authority),
                (":path", path)] + list(extra)
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return self.frame(HEADERS, flags, sid, hpack_literal(hdrs))

    def read_frame(self, timeout=10.0):
        """(type, flags, stream id, payload), or None at EOF / reset."""
        self.sock.settimeout(timeout)
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            try:
                d = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                self.eof = True
                return None
            self.buf += d
        n = int.from_bytes(self.buf[:3], "big")
        f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
             self.buf[9:9 + n])
        self.buf = self.buf[9 + n:]
        if f[0] == SETTINGS and not f[1] & ACK:
            try:
                self.send(self.frame(SETTINGS, ACK, 0))
            except OSError:
                pass
        return f

    def frames_until_close(self, timeout=10.0, stop=None):
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                f = self.read_frame(max(0.1, deadline - time.monotonic()))
            except socket.timeout:
                break
            if f is None:
                break
            out.append(f)
            if stop and stop(f):
                break
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def goaway_code(frames):
    for f in frames:
        if f[0] == GOAWAY:
            return int.from_bytes(f[3][4:8], "big")
    return None


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


def curl(port, path, *args, host="app.test", timeout=60):
    return run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "-",
                "-H", "Host: " + host] + list(args) + ["http://127.0.0.1:%d%s" % (port, path)],
               timeout=timeout)


def parse_curl(out):
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0]
    hdrs = {}
    for ln in lines[1:]:
        n, _, v = ln.partition(":")
        hdrs[n.strip().lower()] = v.strip()
    return status_line, int(status_line.split()[1]), hdrs, body


def setup(weights=None, timeouts=None, limits=None, hosts=None, workers=2):
    blue = start_upstream("blue")
    green = start_upstream("green")
    port = free_port()
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                                   weights or {"blue": 100, "green": 0}, timeouts=timeouts,
                                   limits=limits, hosts=hosts, workers=workers),
                       workers=workers)
    return cx, port, blue, green


def h2load(port, *args, path="/", timeout=120):
    p = run(["h2load"] + list(args) + ["-H", ":authority: app.test",
                                        "http://127.0.0.1:%d%s" % (port, path)],
            timeout=timeout)
    return p.stdout.decode(errors="replace")


def h2load_counts(out):
    for ln in out.splitlines():
        if ln.startswith("status codes:"):
            parts = ln.split(":", 1)[1].split(",")
            return {p.split()[1]: int(p.split()[0]) for p in parts}
    raise AssertionError("no status line in h2load output: %s" % out[-1500:])


def test_h2_basics():
    """GET, HEAD, 404 made by cutover, chunked and sized downloads arriving as DATA, 1 and
    16 MiB uploads (/sha256, /echo) with checksums; the access log has the same shape."""
    cx, port, blue, _ = setup(hosts=["app.test"])
    p = curl(port, "/hello")
    check(p.returncode == 0, "curl failed: %s", p.stderr)
    sl, st, hd, body = parse_curl(p.stdout)
    check(sl.startswith("HTTP/2 200"), "status line %r", sl)
    check(hd.get("x-upstream") == "blue" and body == b"blue\n", "got %r %r", hd, body)

    sl, st, hd, body = parse_curl(curl(port, "/size/1000", "-I").stdout)
    check(st == 200 and hd.get("content-length") == "1000", "HEAD: %s %r", st, hd)

    sl, st, hd, body = parse_curl(curl(port, "/", host="nowhere.test").stdout)
    check(st == 404 and hd.get("x-cutover-error") == "no_route", "no route: %s %r", st, hd)
    check(b"cutover:" in body, "404 body %r", body)

    for kind in ("chunked", "size"):
        for n in (0, 100000, 5 * MiB):
            out = unique("dl")
            p = run(["curl", "-sS", "--http2-prior-knowledge", "-o", out, "-w",
                     "%{http_code} %{http_version}", "-H", "Host: app.test",
                     "http://127.0.0.1:%d/%s/%d" % (port, kind, n)])
            check(p.stdout == b"200 2", "/%s/%d: %r %r", kind, n, p.stdout, p.stderr)
            with open(out, "rb") as f:
                got = f.read()
            check(len(got) == n and hashlib.sha256(got).hexdigest() == pattern_sha256(n),
                  "/%s/%d: %d bytes, checksum differs", kind, n, len(got))

    for n in (MiB, 16 * MiB):
        data = random_bytes(n, seed=n)
        src = unique("up")
        with open(src, "wb") as f:
            f.write(data)
        p = curl(port, "/sha256", "--data-binary", "@" + src)
        sl, st, hd, body = parse_curl(p.stdout)
        check(st == 200, "POST /sha256 %d: %s %r", n, st, body[:200])
        j = json.loads(body)
        check(j["length"] == n and j["sha256"] == hashlib.sha256(data).hexdigest(),
              "POST /sha256 %d: %r", n, j)
        out = unique("echo")
        p = run(["curl", "-sS", "--http2-prior-knowledge", "-o", out, "-w", "%{http_code}",
                 "-H", "Host: app.test", "--data-binary", "@" + src,
                 "http://127.0.0.1:%d/echo" % port])
        with open(out, "rb") as f:
            got = f.read()
        check(p.stdout == b"200" and hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
              "POST /echo %d: %r, %d bytes back", n, p.stdout, len(got))
    # an upload without content-length goes upstream chunked
    p = run(["curl", "-sS", "--http2-prior-knowledge", "-H", "Host: app.test", "-H",
             "Transfer-Encoding:", "-H", "Content-Length:", "--data-binary", "@" + src,
             "http://127.0.0.1:%d/sha256" % port])
    j = json.loads(p.stdout)
    check(j["length"] == 16 * MiB and j["chunked"], "upload without length: %r", j)
    time.sleep(0.3)
    acc = cx.access()
    check(any(a["path"] == "/sha256" and a["status"] == 200 for a in acc), "no access lines")
    check(all(a["method"] in ("GET", "HEAD", "POST") for a in acc), "methods %r", acc[:3])
    cx.stop()


test_h2_basics.timeout = 180


def test_h2_split():
    """A 90/10 split over 2000 HTTP/2 requests (h2load, 4 connections) counted in the
    access log."""
    cx, port, blue, green = setup(weights={"blue": 90, "green": 10})
    out = h2load(port, "-n", "2000", "-c", "4", "-m", "10")
    check(h2load_counts(out).get("2xx") == 2000, "h2load: %s", out[-800:])
    wait_until(lambda: len(cx.access()) >= 2000, 10, what="2000 access lines")
    pools = {}
    for a in cx.access():
        pools[a["pool"]] = pools.get(a["pool"], 0) + 1
    check(abs(pools.get("blue", 0) - 1800) <= 4 and abs(pools.get("green", 0) - 200) <= 4,
          "split %r", pools)
    cx.stop()


def test_h2_many_streams():
    """One connection, 100 concurrent streams, 5000 requests: all 2xx."""
    cx, port, _, _ = setup()
    out = h2load(port, "-n", "5000", "-c", "1", "-m", "100")
    check(h2load_counts(out).get("2xx") == 5000, "h2load: %s", out[-800:])
    cx.stop()


def test_h2_refusals():
    """Connection-specific request fields are a stream error PROTOCOL_ERROR; CONNECT is 501; a
    head over limits.max_header_bytes is 431; the connection stays usable."""
    cx, port, _, _ = setup(limits={"max_header_bytes": 8192})
    c = H2Raw(port)
    c.send(c.request(1, extra=[("connection", "keep-alive")]))
    c.send(c.request(3, extra=[("transfer-encoding", "chunked")]))
    c.send(c.request(5, extra=[("te", "gzip")]))
    c.send(c.frame(HEADERS, END_HEADERS | END_STREAM, 7, hpack_literal(
        [(":method", "CONNECT"), (":authority", "x.test:443")])))
    c.send(c.request(9, extra=[("x-big", "a" * 9000)]))
    c.send(c.request(11))
    seen = {}
    frames = c.frames_until_close(10, stop=lambda f: len(seen) >= 6 or (
        f[2] and seen.setdefault(f[2], f) and len(seen) >= 6))
    got = {}
    for f in frames:
        if f[2] and f[2] not in got and f[0] in (HEADERS, RST_STREAM):
            got[f[2]] = f
    for sid in (1, 3, 5):
        check(sid in got and got[sid][0] == RST_STREAM and
              int.from_bytes(got[sid][3], "big") == PROTOCOL_ERROR,
              "stream %d: %r", sid, got.get(sid))
    check(7 in got and got[7][0] == HEADERS, "CONNECT: %r", got.get(7))
    check(9 in got and got[9][0] == HEADERS, "big head: %r", got.get(9))
    check(11 in got and got[11][0] == HEADERS and got[11][3][:1] == b"\x88",
          "a good request after the refusals: %r", got.get(11))
    c.close()
    # nghttp itself (a real client) sending the field
    p = run(["nghttp", "-nv", "-H", "connection: keep-alive", "-H", ":authority: app.test",
             "http://127.0.0.1:%d/" % port], timeout=20)
    out = p.stdout.decode(errors="replace")
    check("RST_STREAM" in out and "PROTOCOL_ERROR" in out, "nghttp: %s", out[-1500:])
    # the status codes of the refusals, through curl where it can say them
    sl, st, hd, body = parse_curl(curl(port, "/", "-H", "x-big: " + "b" * 9000).stdout)
    check(st == 431 and hd.get("x-cutover-error") == "headers_too_large", "431: %s %r", st, hd)
    cx.stop()


def test_h2_rapid_reset():
    """CVE-2023-44487: HEADERS then RST_STREAM, thousands of times -> GOAWAY
    ENHANCE_YOUR_CALM and close, while a well-behaved h2load run on the side succeeds."""
    cx, port, _, _ = setup(workers=1)
    result = {}

    def load():
        result["out"] = h2load(port, "-n", "3000", "-c", "2", "-m", "20", path="/slow/1")
    t = threading.Thread(target=load)
    t.start()
    c = H2Raw(port)
    sid = 1
    sent = 0
    try:
        for _ in range(50):
            batch = b""
            for _ in range(100):
                batch += c.request(sid, path="/slow/100")
                batch += c.frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
                sid += 2
            c.send(batch)
            sent += 100
    except OSError:
        pass
    frames = c.frames_until_close(10)
    c.close()
    t.join(120)
    code = goaway_code(frames)
    check(code == ENHANCE_YOUR_CALM, "GOAWAY code %r after %d resets; frames %r", code, sent,
          [f[0] for f in frames][-20:])
    check(c.eof, "the abusive connection stayed open")
    check(h2load_counts(result.get("out", "")).get("2xx") == 3000, "h2load: %s",
          result.get("out", "")[-800:])
    check(cx.alive(), "cutover died")
    cx.stop()


def test_h2_floods():
    """An endless CONTINUATION sequence and a PING flood are cut with GOAWAY; other clients
    unaffected."""
    cx, port, _, _ = setup()
    c = H2Raw(port)
    c.send(c.frame(HEADERS, 0, 1, hpack_literal([(":method", "GET"), (":scheme", "http")])))
    try:
        for i in range(1000):
            c.send(c.frame(CONTINUATION, 0, 1, hpack_literal([("x-c%d" % i, "v" * 100)])))
    except OSError:
        pass
    frames = c.frames_until_close(10)
    c.close()
    check(goaway_code(frames) is not None and c.eof, "CONTINUATION flood: %r",
          [(f[0], f[3][:8]) for f in frames])

    c = H2Raw(port)
    try:
        for i in range(100):
            c.send(c.frame(PING, 0, 0, struct.pack(">Q", i)) * 100)
    except OSError:
        pass
    frames = c.frames_until_close(10)
    c.close()
    check(goaway_code(frames) == ENHANCE_YOUR_CALM and c.eof, "PING flood: %r",
          goaway_code(frames))

    c = H2Raw(port)
    try:
        for i in range(100):
            c.send(c.frame(SETTINGS, 0, 0, b"") * 100)
    except OSError:
        pass
    frames = c.frames_until_close(10)
    c.close()
    check(goaway_code(frames) == ENHANCE_YOUR_CALM and c.eof, "SETTINGS flood: %r",
          goaway_code(frames))

    # WINDOW_UPDATE with increments of 1 byte, connection and stream level
    c = H2Raw(port)
    c.send(c.frame(HEADERS, END_STREAM | END_HEADERS, 1, hpack_literal(
        [(":method", "GET"), (":scheme", "http"), (":authority", "app.test"),
         (":path", "/size/1048576")])))
    try:
        for i in range(100):
            c.send((c.frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) +
                    c.frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1))) * 50)
    except OSError:
        pass
    frames = c.frames_until_close(10)
    c.close()
    check(goaway_code(frames) == ENHANCE_YOUR_CALM and c.eof, "WINDOW_UPDATE flood: %r",
          goaway_code(frames))

    out = h2load(port, "-n", "200", "-c", "2", "-m", "10")
    check(h2load_counts(out).get("2xx") == 200, "h2load after floods: %s", out[-800:])
    cx.stop()


def test_h2_zero_window_stall():
    """A client that never opens its window: the stream is reset after body_idle, then the
    idle connection is closed with GOAWAY after client_idle."""
    cx, port, _, _ = setup(timeouts={"body_idle_ms": 500, "client_idle_ms": 1500})
    c = H2Raw(port, settings=[(0x4, 0)])  # SETTINGS_INITIAL_WINDOW_SIZE 0
    c.send(c.request(1, path="/size/1000000"))
    t0 = time.monotonic()
    frames = c.frames_until_close(10, stop=lambda f: f[0] == RST_STREAM)
    rst = [f for f in frames if f[0] == RST_STREAM and f[2] == 1]
    check(rst and int.from_bytes(rst[0][3], "big") == CANCEL, "no RST_STREAM CANCEL: %r",
          [(f[0], f[2]) for f in frames])
    check(time.monotonic() - t0 < 3.0, "reset took %.1f s", time.monotonic() - t0)
    frames = c.frames_until_close(10)
    check(goaway_code(frames) == 0 and c.eof, "idle close: %r", [f[0] for f in frames])
    c.close()
    time.sleep(0.2)
    acc = [a for a in cx.access() if a["path"] == "/size/1000000"]
    check(acc and acc[0]["aborted"], "access line %r", acc)
    cx.stop()


def test_h2_graceful_stop():
    """SIGTERM with an open slow stream: GOAWAY (last stream id 1), the stream completes with
    200, cutover exits 0."""
    cx, port, _, _ = setup()
    c = H2Raw(port)
    c.send(c.request(1, path="/slow/1000"))
    time.sleep(0.2)
    os.kill(cx.pid, signal.SIGTERM)
    frames = c.frames_until_close(15)
    c.close()
    ga = [f for f in frames if f[0] == GOAWAY]
    check(ga and int.from_bytes(ga[0][3][:4], "big") == 1 and goaway_code(frames) == 0,
          "GOAWAY: %r", ga)
    hd = [f for f in frames if f[0] == HEADERS and f[2] == 1]
    body = b"".join(f[3] for f in frames if f[0] == DATA and f[2] == 1)
    ends = [f for f in frames if f[2] == 1 and f[1] & END_STREAM]
    check(hd and hd[0][3][:1] == b"\x88" and body == b"blue\n" and ends,
          "slow stream: %r", [(f[0], f[1], f[2]) for f in frames])
    check(cx.wait_exit(30) == 0, "exit code")

"""HTTP/2 responses to clients written without copies (proxy/relay/h2_stream.c): a DATA payload
is moved from the stream's response buffer (h->out) straight into the socket output by the
send_data callback (NGHTTP2_DATA_FLAG_NO_COPY), and response trailers are handed to nghttp2 as
pointers into the stream's own copy (NGHTTP2_NV_FLAG_NO_COPY_*), read only when nghttp2 packs
the trailer HEADERS. What that relies on, exercised here (run these under SAN=1 too):

- bodies arrive whole and in order whatever the sizes, flow-control windows and interleaving of
  streams (sizes around the 256-byte copy threshold, the 16 KiB frame and odd windows);
- trailers arrive after the whole body, also when the client's window cuts the body in pieces;
- a stream reset by the client, or a connection closed, while its response (DATA, trailers, a
  response HEADERS) waits behind a full socket output or a closed window: nothing of it is read
  after the stream's memory is freed, and the connection's other streams carry on.

The client is a small raw-frame one (hpack from python3-hpack for the heads) so that it can stop
reading its socket and send RST_STREAM while cutover's output is full."""
import hashlib
import socket
import struct
import time

import hpack

from harness import (check, free_port, make_config, pattern_sha256, random_bytes,
                     start_cutover, start_h2upstream, start_upstream)
from test_h2 import (CANCEL, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS,
                     PING, PREFACE, RST_STREAM, SETTINGS, WINDOW_UPDATE, ACK, hpack_literal)

MiB = 1 << 20
MAX_WINDOW = (1 << 31) - 1


class Client:
    """One h2c connection. streams[sid]: {"head", "trailers", "len", "sha", "end", "rst"}.
    auto_window: give back every DATA frame's bytes at once (stream and connection)."""

    def __init__(self, port, window=65535, conn_window=65535, rcvbuf=None, auto_window=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.dec = hpack.Decoder()
        self.buf = b""
        self.eof = False
        self.auto_window = auto_window
        self.streams = {}
        self.block = None  # (sid, flags, bytes) of a header block awaiting CONTINUATION
        out = PREFACE + self.frame(SETTINGS, 0, 0, struct.pack(">HI", 0x4, window))
        if conn_window > 65535:
            out += self.frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", conn_window - 65535))
        self.sock.sendall(out)

    @staticmethod
    def frame(ftype, flags, sid, payload=b""):
        return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
            struct.pack(">I", sid) + payload

    def send(self, data):
        self.sock.sendall(data)

    def handshake(self):
        """Waits for cutover's SETTINGS (acknowledged by _process) and its ACK of ours, then a
        moment for it to read our ACK: from then on its windows (256 KiB per stream, 1 MiB for
        the connection) apply to what we upload, not the initial 65 535 bytes."""
        got = set()
        while got != {"settings", "ack"}:
            f = self.read_frame()
            check(f is not None, "closed during the handshake")
            if f[0] == SETTINGS:
                got.add("ack" if f[1] & ACK else "settings")
        time.sleep(0.1)

    def request(self, sid, path, method="GET", body=None, extra=()):
        hdrs = [(":method", method), (":scheme", "http"), (":authority", "app.test"),
                (":path", path)] + list(extra)
        self.streams[sid] = {"head": None, "trailers": None, "len": 0,
                             "sha": hashlib.sha256(), "end": False, "rst": None}
        out = self.frame(HEADERS, END_HEADERS | (0 if body is not None else END_STREAM), sid,
                         hpack_literal(hdrs))
        if body is not None:
            for off in range(0, len(body), 16384):
                chunk = body[off:off + 16384]
                last = off + 16384 >= len(body)
                out += self.frame(DATA, END_STREAM if last else 0, sid, chunk)
            if not body:
                out += self.frame(DATA, END_STREAM, sid)
        self.send(out)

    def reset(self, sid, code=CANCEL):
        self.send(self.frame(RST_STREAM, 0, sid, struct.pack(">I", code)))

    def _headers(self, sid, flags, block):
        fields = self.dec.decode(block)
        st = self.streams.get(sid)
        if st is None:
            return
        if st["head"] is None or st["head"].get(":status", "200")[0] == "1":
            st["head"] = dict(fields)
        else:
            st["trailers"] = dict(fields)
        if flags & END_STREAM:
            st["end"] = True

    def read_frame(self, timeout=10.0):
        self.sock.settimeout(timeout)
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            try:
                d = self.sock.recv(1 << 20)
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                self.eof = True
                return None
            self.buf += d
        n = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
        payload = self.buf[9:9 + n]
        self.buf = self.buf[9 + n:]
        self._process(ftype, flags, sid, payload)
        return ftype, flags, sid, payload

    def _process(self, ftype, flags, sid, payload):
        st = self.streams.get(sid)
        if ftype == SETTINGS and not flags & ACK:
            self.send(self.frame(SETTINGS, ACK, 0))
        elif ftype == PING and not flags & ACK:
            self.send(self.frame(PING, ACK, 0, payload))
        elif ftype == HEADERS:
            check(not flags & 0x28, "padded or prioritised HEADERS from cutover")
            if flags & END_HEADERS:
                self._headers(sid, flags, payload)
            else:
                self.block = (sid, flags, payload)
        elif ftype == CONTINUATION:
            check(self.block and self.block[0] == sid, "stray CONTINUATION")
            sid0, fl, blk = self.block
            self.block = None if flags & END_HEADERS else (sid0, fl, blk + payload)
            if flags & END_HEADERS:
                self._headers(sid, fl, blk + payload)
        elif ftype == DATA:
            check(not flags & 0x8, "padded DATA from cutover")
            if st is not None:
                check(st["trailers"] is None and not st["end"],
                      "DATA on stream %d after its end or trailers", sid)
                st["len"] += len(payload)
                st["sha"].update(payload)
                if flags & END_STREAM:
                    st["end"] = True
            if self.auto_window and payload:
                inc = struct.pack(">I", len(payload))
                out = self.frame(WINDOW_UPDATE, 0, 0, inc)
                if not flags & END_STREAM and st is not None and st["rst"] is None:
                    out += self.frame(WINDOW_UPDATE, 0, sid, inc)
                self.send(out)
        elif ftype == RST_STREAM and st is not None:
            st["rst"] = int.from_bytes(payload[:4], "big")

    def run_until(self, pred, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            check(left > 0, "timed out; streams %r",
                  {k: (v["head"], v["len"], v["end"], v["rst"]) for k, v in self.streams.items()})
            f = self.read_frame(left)
            check(f is not None, "connection closed; streams %r",
                  {k: (v["len"], v["end"], v["rst"]) for k, v in self.streams.items()})
            check(f[0] != GOAWAY, "GOAWAY %r", f[3][:8])

    def done(self, *sids):
        return lambda: all(self.streams[s]["end"] or self.streams[s]["rst"] is not None
                           for s in sids)

    def close(self, abort=False):
        try:
            if abort:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass


def setup(h2up=False, limits=None):
    up = start_h2upstream("green") if h2up else start_upstream("blue")
    port = free_port()
    cfg = make_config(port, {"blue": [up], "green": [up]}, {"blue": 100, "green": 0},
                      limits=limits, timeouts={"body_idle_ms": 10000})
    if h2up:
        for pool in cfg["routes"][0]["pools"].values():
            pool["protocol"] = "h2c"
    return start_cutover(cfg), port, up


SIZES = (0, 1, 255, 256, 257, 1000, 16383, 16384, 16385, 65535, 65536, 65537, 262143, 262145,
         1048577)


def test_h2_nocopy_bodies():
    """Many sized and chunked downloads at once on one connection, with an odd stream window
    given back frame by frame: every body whole, in order (pattern checksums); HEAD, 204 and
    304 without DATA."""
    cx, port, _ = setup()
    for window in (65535, 7001, 1 << 20):
        c = Client(port, window=window, conn_window=3 * MiB)
        sid, want = 1, {}
        for kind in ("size", "chunked"):
            for n in SIZES:
                c.request(sid, "/%s/%d" % (kind, n))
                want[sid] = n
                sid += 2
        c.request(sid, "/size/5000", method="HEAD")
        c.request(sid + 2, "/status/204")
        c.request(sid + 4, "/status/304")
        c.run_until(c.done(*want, sid, sid + 2, sid + 4), timeout=60)
        for s, n in want.items():
            st = c.streams[s]
            check(st["rst"] is None and st["head"][":status"] == "200",
                  "stream %d (%d bytes): %r", s, n, st)
            check(st["len"] == n and st["sha"].hexdigest() == pattern_sha256(n),
                  "window %d, %d bytes: got %d, checksum %s", window, n, st["len"],
                  "same" if st["sha"].hexdigest() == pattern_sha256(n) else "differs")
        for s, status in ((sid, "200"), (sid + 2, "204"), (sid + 4, "304")):
            st = c.streams[s]
            check(st["head"][":status"] == status and st["len"] == 0 and st["end"],
                  "stream %d: %r", s, st)
        c.close()
    check(cx.alive(), "cutover died")
    cx.stop()


def test_h2_nocopy_trailers():
    """Echoed uploads from an HTTP/2 upstream: the body, then the trailers (x-body-sha256), with
    the client's window cutting the body in pieces; gRPC-shaped exchanges with grpc-status."""
    cx, port, _ = setup(h2up=True)
    for window in (65535, 5003):
        c = Client(port, window=window, conn_window=8 * MiB)
        c.handshake()
        bodies = {}
        for i, n in enumerate((0, 1, 300, 16385, 200003, 150001)):  # under the windows
            sid = 1 + 2 * i
            bodies[sid] = random_bytes(n, seed=n + window)
            c.request(sid, "/echo", method="POST", body=bodies[sid])
        g = 1 + 2 * len(bodies)
        msg = b"\x00" + struct.pack(">I", 5) + b"hello"
        c.request(g, "/grpc/x.Y/Z", method="POST", body=msg,
                  extra=[("te", "trailers"), ("content-type", "application/grpc")])
        c.run_until(c.done(*bodies, g), timeout=60)
        for sid, body in bodies.items():
            st = c.streams[sid]
            sha = hashlib.sha256(body).hexdigest()
            check(st["rst"] is None and st["len"] == len(body) and
                  st["sha"].hexdigest() == sha, "echo of %d bytes: got %d (rst %r)",
                  len(body), st["len"], st["rst"])
            check(st["trailers"] and st["trailers"].get("x-body-sha256") == sha,
                  "echo of %d bytes: trailers %r", len(body), st["trailers"])
        st = c.streams[g]
        check(st["trailers"] and st["trailers"].get("grpc-status") == "0" and st["len"] > 5,
              "gRPC: %r", st)
        c.close()
    check(cx.alive(), "cutover died")
    cx.stop()


def blocked_connection(port, window=MAX_WINDOW):
    """A connection whose client stops reading while a 48 MiB download fills the loopback
    buffers and cutover's socket output (stream 1); with window=0 responses wait in the
    streams' buffers instead."""
    c = Client(port, window=window, conn_window=MAX_WINDOW, rcvbuf=4096, auto_window=False)
    c.request(1, "/size/%d" % (48 * MiB))
    time.sleep(0.8)
    return c


def test_h2_nocopy_reset_behind_full_output():
    """While cutover's output to a client is full, streams whose response HEADERS, DATA and
    trailers wait behind it are reset by the client (RST_STREAM read by cutover when the output
    drains, before it writes more): the connection carries on, later streams are answered
    whole, nothing is read from a freed stream (SAN). Then the same with a client that closes
    the connection (TCP reset) instead."""
    cx, port, _ = setup(h2up=True, limits={"buffer_bytes": 65536})
    c = blocked_connection(port)
    c.request(3, "/size/1000")
    c.request(5, "/echo", method="POST", body=random_bytes(100000, seed=5))
    c.request(7, "/grpc/x.Y/Z", method="POST", body=b"\x00\x00\x00\x00\x02hi",
              extra=[("te", "trailers"), ("content-type", "application/grpc")])
    c.request(9, "/hello")
    time.sleep(0.5)
    for sid in (1, 3, 5, 7):
        c.reset(sid)
    time.sleep(0.3)
    c.auto_window = True
    c.run_until(c.done(9), timeout=30)
    check(c.streams[9]["head"][":status"] == "200", "stream 9: %r", c.streams[9])
    c.request(11, "/size/300001")
    c.run_until(c.done(11), timeout=30)
    st = c.streams[11]
    check(st["len"] == 300001 and st["sha"].hexdigest() ==
          hashlib.sha256(b"x" * 300001).hexdigest() and st["rst"] is None,
          "stream 11 after the resets: %d bytes, rst %r", st["len"], st["rst"])
    check(c.streams[1]["len"] < 48 * MiB, "stream 1 was not cut short")
    c.close()

    # A client that resets streams whose responses wait for its window (window 0), gives one
    # some window, then closes the connection with responses still queued.
    c = blocked_connection(port, window=0)
    c.request(3, "/size/200000")
    c.request(5, "/echo", method="POST", body=random_bytes(70000, seed=7))
    time.sleep(0.5)
    c.reset(3)
    c.send(c.frame(WINDOW_UPDATE, 0, 5, struct.pack(">I", 30000)))
    time.sleep(0.3)
    c.close(abort=True)

    # Output full, more streams queued behind it, then the TCP reset.
    c = blocked_connection(port)
    c.request(3, "/echo", method="POST", body=random_bytes(50000, seed=9))
    c.request(5, "/size/1000")
    time.sleep(0.5)
    c.close(abort=True)

    time.sleep(0.5)
    check(cx.alive(), "cutover died")
    c = Client(port)
    c.request(1, "/size/70000")
    c.run_until(c.done(1), timeout=30)
    check(c.streams[1]["len"] == 70000, "a new connection afterwards: %r", c.streams[1])
    c.close()
    cx.stop()

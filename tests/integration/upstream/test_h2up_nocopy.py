"""HTTP/2 upstream requests sent without copies (proxy/relay/upstream_h2.c): nghttp2 reads the
request's names and values (owned by the stream, NGHTTP2_NV_FLAG_NO_COPY_*) only when it packs the
HEADERS, which waits while the upstream connection's output is full. A request that goes away
meanwhile (its client disconnects, its header timeout fires) must have its queued HEADERS
cancelled: never sent, never read from freed memory (run these under SAN=1), and no RST_STREAM
for a stream the upstream never saw (a connection error). The DATA written straight into the
socket output (NGHTTP2_DATA_FLAG_NO_COPY) must arrive whole and in order.

The upstream here is in the test process (python3-h2) so that it can stop reading its socket: it
grants huge flow-control windows, so a large upload fills the kernel buffers and then cutover's
output cap, and every later frame for that connection stays queued inside nghttp2."""
import hashlib
import socket
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from harness import (check, free_port, make_config, start_cutover, wait_until, RawConn,
                     HOST)

MiB = 1 << 20
BIG = 24 * MiB  # well over the loopback socket buffers plus cutover's 256 KiB output cap


class StallingUpstream:
    """An h2c upstream that reads its sockets only while `reading` is set. Records every
    request (path, body length, sha256) and every frame (type, stream id) it received; answers
    each request at its end with 200 and the body's length."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited
        self.lsock.bind((HOST, 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.addr = "%s:%d" % (HOST, self.port)
        self.reading = threading.Event()
        self.lock = threading.Lock()
        self.requests = []   # dicts: path, method, stream, body_len, sha256, ended
        self.frames = []     # (type, stream id), in arrival order
        self.errors = []
        self.conns = 0
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _scan(self, raw, state):
        """Frame headers of the client's byte stream (after the 24-byte preface)."""
        state["buf"] += raw
        b = state["buf"]
        if not state["magic"]:
            if len(b) < 24:
                return
            del b[:24]
            state["magic"] = True
        while len(b) >= 9:
            n = int.from_bytes(b[0:3], "big")
            if len(b) < 9 + n:
                return
            with self.lock:
                self.frames.append((b[3], int.from_bytes(b[5:9], "big") & 0x7fffffff))
            del b[:9 + n]

    def _serve(self, s):
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        conn = h2.connection.H2Connection(config=cfg)
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        conn.increment_flow_control_window(2**31 - 1 - 65535)
        s.sendall(conn.data_to_send())
        streams = {}
        state = {"buf": bytearray(), "magic": False}
        try:
            while not self.stop:
                if not self.reading.wait(0.1):
                    continue
                data = s.recv(65536)
                if not data:
                    return
                self._scan(data, state)
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        h = dict(ev.headers)
                        r = {"path": h.get(":path"), "method": h.get(":method"),
                             "stream": ev.stream_id, "body_len": 0,
                             "sha": hashlib.sha256(), "ended": False}
                        streams[ev.stream_id] = r
                        with self.lock:
                            self.requests.append(r)
                    elif isinstance(ev, h2.events.DataReceived):
                        r = streams.get(ev.stream_id)
                        if r:
                            r["body_len"] += len(ev.data)
                            r["sha"].update(ev.data)
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        r = streams.get(ev.stream_id)
                        if r:
                            r["ended"] = True
                            body = b"%d" % r["body_len"]
                            try:  # a reset later in the same read closed it
                                conn.send_headers(ev.stream_id,
                                                  [(":status", "200"),
                                                   ("content-length", str(len(body)))])
                                conn.send_data(ev.stream_id, body, end_stream=True)
                            except h2.exceptions.StreamClosedError:
                                pass
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        return
                out = conn.data_to_send()
                if out:
                    s.sendall(out)
        except Exception as e:  # noqa: BLE001 (a protocol error is the finding)
            with self.lock:
                self.errors.append(repr(e))
        finally:
            s.close()

    def paths(self):
        with self.lock:
            return [r["path"] for r in self.requests]

    def close(self):
        self.stop = True
        self.reading.set()
        self.lsock.close()


def setup(timeouts=None):
    up = StallingUpstream()
    port = free_port()
    cfg = make_config(port, {"blue": [up.addr], "green": [up.addr]}, {"blue": 100, "green": 0},
                      timeouts=timeouts, workers=1)
    for pool in cfg["routes"][0]["pools"].values():
        pool["protocol"] = "h2c"
    cx = start_cutover(cfg, workers=1)
    return cx, port, up


def start_upload(port, results):
    """POST /big (BIG bytes) on its own connection in a thread; results gets the response."""
    body = bytes(range(256)) * (BIG // 256)

    def run():
        try:
            with RawConn(port, timeout=60.0) as c:
                c.send(b"POST /big HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n"
                       % len(body))
                c.send(body)
                results.append(c.read_response("POST"))
        except Exception as e:  # noqa: BLE001
            results.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, hashlib.sha256(body).hexdigest()


def blocked(up, port):
    """Starts the upload and waits until its connection's output is stuck."""
    results = []
    t, sha = start_upload(port, results)
    wait_until(lambda: up.conns == 1, 5.0, what="the upstream connection")
    time.sleep(1.5)  # the kernel buffers fill, then cutover's output cap
    check(not results, "the upload finished although the upstream reads nothing: %r", results)
    return t, results, sha


def unseen_resets(up):
    """RST_STREAM frames for streams whose HEADERS never reached the upstream."""
    with up.lock:
        opened = {sid for typ, sid in up.frames if typ == 0x1}
        return [sid for typ, sid in up.frames if typ == 0x3 and sid not in opened]


def finish(up, port, t, results, sha):
    """Lets the upstream read again; the upload and a new request must both succeed."""
    up.reading.set()
    t.join(60.0)
    check(results and not isinstance(results[0], Exception), "upload: %r", results)
    r = results[0]
    check(r.status == 200 and r.body == b"%d" % BIG, "upload answered %s %r (upstream: %r)",
          r.status, r.body[:100], up.errors)
    with up.lock:
        big = [q for q in up.requests if q["path"] == "/big"]
    check(len(big) == 1 and big[0]["sha"].hexdigest() == sha,
          "the upstream got the upload damaged: %r", [(q["body_len"]) for q in big])
    with RawConn(port) as c:
        r = c.get("/after")
    check(r.status == 200, "a request after the stall: %s", r.status)
    check(up.conns == 1, "expected the one upstream connection to carry on, got %d", up.conns)


def test_queued_headers_of_a_gone_client_are_cancelled():
    # while the upstream connection is stuck behind an upload, a GET and a POST (its body
    # waiting for the body provider) arrive on that connection, and their clients go away:
    # their HEADERS (borrowing the freed requests' bytes) must never be packed or sent, their
    # bodies never read, and nothing may be reset that the upstream never saw. (A client still
    # sending its body is not read while the upstream is stuck, so it is noticed only later.)
    cx, port, up = setup()
    try:
        t, results, sha = blocked(up, port)
        # an HTTP/2 client: its RST_STREAM is read whatever the upstream's state (an HTTP/1.1
        # client's reset is not read while the upstream it waits on is stuck)
        cl = socket.create_connection((HOST, port))
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        h2c.initiate_connection()
        base = [(":scheme", "http"), (":authority", "app.test")]
        h2c.send_headers(1, [(":method", "GET"), (":path", "/gone-get")] + base +
                         [("x-long", "v" * 3000)], end_stream=True)
        h2c.send_headers(3, [(":method", "POST"), (":path", "/gone-post")] + base +
                         [("content-length", "10")])
        h2c.send_data(3, b"p" * 10, end_stream=True)
        cl.sendall(h2c.data_to_send())
        time.sleep(0.5)  # submitted behind the stuck output
        h2c.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
        h2c.reset_stream(3, h2.errors.ErrorCodes.CANCEL)
        cl.sendall(h2c.data_to_send())
        time.sleep(0.5)  # the streams are freed, their HEADERS still queued
        finish(up, port, t, results, sha)
        cl.close()
        paths = up.paths()
        check("/gone-get" not in paths and "/gone-post" not in paths,
              "a cancelled request reached the upstream: %r", paths)
        check(paths == ["/big", "/after"], "upstream requests: %r", paths)
        check(not unseen_resets(up), "RST_STREAM for streams never opened: %r", unseen_resets(up))
        check(not up.errors, "upstream protocol errors: %r", up.errors)
    finally:
        up.close()


test_queued_headers_of_a_gone_client_are_cancelled.timeout = 120


def test_queued_headers_timed_out_are_cancelled_once():
    # the header timeout of a request whose HEADERS is still queued fails it (504) and cancels
    # the HEADERS; no RST_STREAM may follow for a stream that never went out (nor for the upload
    # itself, which times out as well, more than once)
    cx, port, up = setup(timeouts={"upstream_header_ms": 2500})
    try:
        results = []
        t, _ = start_upload(port, results)
        wait_until(lambda: up.conns == 1, 5.0, what="the upstream connection")
        time.sleep(1.0)
        with RawConn(port, timeout=10.0) as c:
            r = c.get("/timed-out")
        check(r.status == 504, "the queued request answered %s", r.status)
        up.reading.set()
        t.join(10.0)  # 504 too (or a reset: the answer came before the body was read)
        time.sleep(1.0)
        with RawConn(port) as c:
            r = c.get("/after")
        check(r.status == 200, "a request after the timeouts: %s", r.status)
        paths = up.paths()
        check("/timed-out" not in paths, "the timed-out request reached the upstream: %r", paths)
        check(not unseen_resets(up), "RST_STREAM for streams never opened: %r", unseen_resets(up))
        check(not up.errors, "upstream protocol errors: %r", up.errors)
    finally:
        up.close()


test_queued_headers_timed_out_are_cancelled_once.timeout = 120

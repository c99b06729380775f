"""HTTP/2 connection and stream errors by RFC 9113 (issue 12): one test per rule, with raw frames
(struct + hand-made HPACK literals going out, python3-hpack decoding what comes back). Each rule
expects a GOAWAY with an error code (connection error), an RST_STREAM with a code (stream error),
or a response cutover makes itself. A malformed request is never forwarded: every request here
uses a path of its own and the upstream's log is checked. The table of rules, what cutover does
and who enforces it (nghttp2 1.52 or cutover) is in docs/architecture.md, "HTTP/2 conformance"."""
import socket
import struct
import time

import hpack

from harness import check, free_port, make_config, start_cutover, start_upstream

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = range(10)
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


def block(headers):
    """Literal fields without indexing, new names, no Huffman: any bytes go out as they are."""
    out = b""
    for n, v in headers:
        n = n.encode("latin-1") if isinstance(n, str) else n
        v = v.encode("latin-1") if isinstance(v, str) else v
        out += b"\x00" + hpack_int(len(n), 7) + n + hpack_int(len(v), 7) + v
    return out


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def req_fields(path, method="GET", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", "app.test"),
            (":path", path)] + list(extra)


class H2:
    """One client connection on a raw socket."""

    def __init__(self, port, settings=()):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.dec = hpack.Decoder()
        self.frames = []
        self.eof = False
        payload = b"".join(struct.pack(">HI", k, v) for k, v in settings)
        self.send(PREFACE + frame(SETTINGS, 0, 0, payload))

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def headers(self, sid, fields, end_stream=True, flags=0):
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0) | flags, sid,
                        block(fields)))

    def data(self, sid, payload, end_stream=False):
        self.send(frame(DATA, END_STREAM if end_stream else 0, sid, payload))

    def read_frame(self, timeout):
        self.sock.settimeout(max(0.01, timeout))
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return "timeout"
            except OSError:
                d = b""
            if not d:
                self.eof = True
                return None
            self.buf += d
        n = int.from_bytes(self.buf[:3], "big")
        f = [self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
             self.buf[9:9 + n]]
        self.buf = self.buf[9 + n:]
        if f[0] == SETTINGS and not f[1] & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        if f[0] == HEADERS:
            p = f[3]
            if f[1] & PADDED:
                p = p[1:len(p) - p[0]]
            if f[1] & PRIO:
                p = p[5:]
            f.append(dict((k.decode() if isinstance(k, bytes) else k,
                           v.decode() if isinstance(v, bytes) else v)
                          for k, v in self.dec.decode(p, raw=True)))
        self.frames.append(f)
        return f

    def wait(self, pred, timeout=5.0):
        """Reads until pred(frame) or EOF or timeout; returns the matching frame or None."""
        end = time.monotonic() + timeout
        for f in self.frames:
            if pred(f):
                return f
        while time.monotonic() < end:
            f = self.read_frame(end - time.monotonic())
            if f is None or f == "timeout":
                return None
            if pred(f):
                return f
        return None

    def goaway(self, timeout=5.0):
        f = self.wait(lambda f: f[0] == GOAWAY, timeout)
        return None if f is None else int.from_bytes(f[3][4:8], "big")

    def rst(self, sid, timeout=5.0):
        f = self.wait(lambda f: f[0] == RST_STREAM and f[2] == sid, timeout)
        return None if f is None else int.from_bytes(f[3][:4], "big")

    def status(self, sid, timeout=5.0):
        f = self.wait(lambda f: f[0] == HEADERS and f[2] == sid and ":status" in f[4], timeout)
        return None if f is None else int(f[4][":status"])

    def stream_outcome(self, sid, timeout=5.0):
        """("status", N) | ("rst", code) | ("goaway", code) | None: the first of them."""
        f = self.wait(lambda f: (f[0] == HEADERS and f[2] == sid) or
                      (f[0] == RST_STREAM and f[2] == sid) or f[0] == GOAWAY, timeout)
        if f is None:
            return None
        if f[0] == HEADERS:
            return ("status", int(f[4][":status"]))
        if f[0] == RST_STREAM:
            return ("rst", int.from_bytes(f[3][:4], "big"))
        return ("goaway", int.from_bytes(f[3][4:8], "big"))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Env:
    def __init__(self):
        self.blue = start_upstream("blue")
        self.port = free_port()
        self.cx = start_cutover(make_config(self.port, {"blue": [self.blue], "green": [self.blue]},
                                            {"blue": 100, "green": 0}, workers=1))

    def conn(self, settings=()):
        c = H2(self.port, settings)
        c.wait(lambda f: f[0] == SETTINGS and not f[1] & ACK, 5)
        return c

    def forwarded(self, path):
        time.sleep(0.2)
        return [r for r in self.blue.requests() if r["path"] == path]

    def still_serves(self, c, sid, path="/alive"):
        c.headers(sid, req_fields(path))
        st = c.status(sid)
        check(st == 200, "the connection no longer serves: stream %d got %r (frames %r)", sid,
              st, [(f[0], f[2]) for f in c.frames[-8:]])

    def stop(self):
        self.cx.stop()


# ---- connection errors: GOAWAY with a code -----------------------------------------------------

CONN_CASES = {
    # name: (frames after the preface, acceptable GOAWAY codes)
    "data_on_stream_0": (lambda: frame(DATA, 0, 0, b"x"), {PROTOCOL_ERROR}),
    "headers_on_stream_0": (lambda: frame(HEADERS, END_HEADERS | END_STREAM, 0,
                                          block(req_fields("/h0"))), {PROTOCOL_ERROR}),
    "even_stream_id": (lambda: frame(HEADERS, END_HEADERS | END_STREAM, 2,
                                     block(req_fields("/even"))), {PROTOCOL_ERROR}),
    "data_on_idle_stream": (lambda: frame(DATA, 0, 9, b"x"), {PROTOCOL_ERROR}),
    "window_update_on_idle_stream": (lambda: frame(WINDOW_UPDATE, 0, 9, struct.pack(">I", 100)),
                                     {PROTOCOL_ERROR}),
    "rst_stream_on_idle_stream": (lambda: frame(RST_STREAM, 0, 9, struct.pack(">I", 8)),
                                  {PROTOCOL_ERROR}),
    "rst_stream_on_stream_0": (lambda: frame(RST_STREAM, 0, 0, struct.pack(">I", 8)),
                               {PROTOCOL_ERROR}),
    "rst_stream_bad_length": (lambda: frame(HEADERS, END_HEADERS, 1, block(req_fields("/x"))) +
                              frame(RST_STREAM, 0, 1, b"\0\0\0\0\0"), {FRAME_SIZE_ERROR}),
    "settings_on_stream": (lambda: frame(SETTINGS, 0, 1, b""), {PROTOCOL_ERROR}),
    "settings_bad_length": (lambda: frame(SETTINGS, 0, 0, b"\0\0\0\0\0"), {FRAME_SIZE_ERROR}),
    "settings_ack_with_payload": (lambda: frame(SETTINGS, ACK, 0, struct.pack(">HI", 3, 10)),
                                  {FRAME_SIZE_ERROR}),
    "settings_enable_push_2": (lambda: frame(SETTINGS, 0, 0, struct.pack(">HI", 2, 2)),
                               {PROTOCOL_ERROR}),
    "settings_initial_window_too_large": (
        lambda: frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 1 << 31)), {FLOW_CONTROL_ERROR}),
    "settings_max_frame_size_too_small": (
        lambda: frame(SETTINGS, 0, 0, struct.pack(">HI", 5, 16383)), {PROTOCOL_ERROR}),
    "settings_max_frame_size_too_large": (
        lambda: frame(SETTINGS, 0, 0, struct.pack(">HI", 5, 1 << 24)), {PROTOCOL_ERROR}),
    "push_promise_from_client": (
        lambda: frame(HEADERS, END_HEADERS, 1, block(req_fields("/pp", "POST"))) +
        frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + block(req_fields("/p"))),
        {PROTOCOL_ERROR}),
    "ping_on_stream": (lambda: frame(PING, 0, 1, b"\0" * 8), {PROTOCOL_ERROR}),
    "ping_bad_length": (lambda: frame(PING, 0, 0, b"\0" * 7), {FRAME_SIZE_ERROR}),
    "goaway_on_stream": (lambda: frame(GOAWAY, 0, 1, b"\0" * 8), {PROTOCOL_ERROR}),
    "window_update_zero_on_connection": (lambda: frame(WINDOW_UPDATE, 0, 0, b"\0\0\0\0"),
                                         {PROTOCOL_ERROR}),
    "window_update_bad_length": (lambda: frame(WINDOW_UPDATE, 0, 0, b"\0\0\0\1\0"),
                                 {FRAME_SIZE_ERROR}),
    "connection_window_overflow": (
        lambda: frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7fffffff)), {FLOW_CONTROL_ERROR}),
    "continuation_without_headers": (lambda: frame(CONTINUATION, END_HEADERS, 1,
                                                   block(req_fields("/c"))), {PROTOCOL_ERROR}),
    "frame_inside_header_block": (
        lambda: frame(HEADERS, 0, 1, block(req_fields("/c"))) + frame(PING, 0, 0, b"\0" * 8),
        {PROTOCOL_ERROR}),
    "frame_over_max_frame_size": (lambda: frame(HEADERS, END_HEADERS, 1, block(req_fields("/big", "POST")))
                                  + frame(DATA, 0, 1, b"\0" * 16385), {FRAME_SIZE_ERROR}),
    "hpack_decoding_error": (lambda: frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff"),
                             {COMPRESSION_ERROR}),
    "padding_too_long": (lambda: frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1,
                                       b"\xff" + block(req_fields("/pad"))), {PROTOCOL_ERROR}),
}


def _conn_case(name):
    build, codes = CONN_CASES[name]

    def test():
        env = Env()
        try:
            c = env.conn()
            c.send(build())
            code = c.goaway()
            check(code in codes, "%s: GOAWAY code %r, want one of %r (frames %r)", name, code,
                  sorted(codes), [(f[0], f[2]) for f in c.frames])
            c.close()
        finally:
            env.stop()
    test.__name__ = "test_conn_" + name
    test.__doc__ = "Connection error: %s -> GOAWAY %r." % (name, sorted(codes))
    return test


for _n in CONN_CASES:
    globals()["test_conn_" + _n] = _conn_case(_n)


def test_conn_lower_stream_id_never_used():
    """RFC 9113 5.1.1: after stream 5, a HEADERS on stream 3 (never used: implicitly closed)
    is a connection error PROTOCOL_ERROR; nghttp2 1.52 ignores it, cutover checks it."""
    env = Env()
    try:
        c = env.conn()
        c.headers(5, req_fields("/five"))
        check(c.status(5) == 200, "stream 5 not served")
        c.headers(3, req_fields("/three"))
        code = c.goaway()
        check(code == PROTOCOL_ERROR, "lower stream id: GOAWAY %r (frames %r)", code,
              [(f[0], f[2]) for f in c.frames])
        check(not env.forwarded("/three"), "stream 3 was forwarded")
    finally:
        env.stop()


def test_conn_reused_closed_stream_id():
    """RFC 9113 5.1 / 5.1.1: a HEADERS on a stream that closed normally (both END_STREAMs)
    is a connection error (PROTOCOL_ERROR or STREAM_CLOSED)."""
    env = Env()
    try:
        c = env.conn()
        c.headers(1, req_fields("/one"))
        check(c.status(1) == 200, "stream 1 not served")
        c.wait(lambda f: f[2] == 1 and f[1] & END_STREAM, 5)
        c.headers(1, req_fields("/one-again"))
        code = c.goaway()
        check(code in (PROTOCOL_ERROR, STREAM_CLOSED), "reused id: GOAWAY %r", code)
        check(not env.forwarded("/one-again"), "the reopened stream was forwarded")
    finally:
        env.stop()


def test_conn_trailers_after_our_reset_ignored():
    """RFC 9113 5.1 (closed): frames the client sent before our RST_STREAM reached it are
    ignored, not a connection error: a 400 for a bad :path, the client's trailers follow."""
    env = Env()
    try:
        c = env.conn()
        c.headers(1, req_fields("nopath", "POST"), end_stream=False)
        out = c.stream_outcome(1)
        check(out and out[0] in ("status", "rst"), "bad path: %r", out)
        c.wait(lambda f: f[0] == RST_STREAM and f[2] == 1, 2)
        c.headers(1, [("x-trailer", "1")], end_stream=True)
        env.still_serves(c, 3)
    finally:
        env.stop()


# ---- stream errors: RST_STREAM, the connection goes on ------------------------------------------

def _stream_case(name, send, want, forwarded_path=None):
    """send(c, sid) sends the offending frames on stream sid; want: set of acceptable outcomes,
    e.g. {("rst", PROTOCOL_ERROR)}."""

    def test():
        env = Env()
        try:
            c = env.conn()
            send(c, 1)
            out = c.stream_outcome(1)
            check(out in want, "%s: outcome %r, want one of %r (frames %r)", name, out,
                  sorted(want), [(f[0], f[2]) for f in c.frames])
            if forwarded_path:
                check(not env.forwarded(forwarded_path), "%s: the malformed request was "
                      "forwarded", name)
            if out[0] != "goaway":  # RFC 9113 5.4: a stream error may be made a connection one
                env.still_serves(c, 3)
        finally:
            env.stop()
    test.__name__ = "test_stream_" + name
    test.__doc__ = "Stream error: %s -> %r; the connection still serves." % (name, sorted(want))
    return test


RST_PROTO = {("rst", PROTOCOL_ERROR)}
MALFORMED = {("rst", PROTOCOL_ERROR), ("status", 400)}


def _h(path, extra=(), method="GET", pseudo=None, end=True):
    fields = pseudo if pseudo is not None else req_fields(path, method, extra)
    return lambda c, sid: c.headers(sid, fields, end_stream=end)


STREAM_CASES = {
    # RFC 9113 8.2.1: field names and values
    "uppercase_field_name": (_h("/m/upper", [("X-Upper", "1")]), RST_PROTO),
    "field_name_with_space": (_h("/m/space", [("x y", "1")]), RST_PROTO),
    "field_name_with_control": (_h("/m/ctl", [("x\x01y", "1")]), RST_PROTO),
    "field_name_with_colon": (_h("/m/colon", [("x:y", "1")]), RST_PROTO),
    "field_value_with_cr_lf": (_h("/m/crlf", [("x-a", "1\r\nx-b: 2")]), RST_PROTO),
    "field_value_with_nul": (_h("/m/nul", [("x-a", "1\x002")]), RST_PROTO),
    "field_value_leading_space": (_h("/m/lead", [("x-a", " 1")]), RST_PROTO),
    "field_value_trailing_tab": (_h("/m/trail", [("x-a", "1\t")]), RST_PROTO),
    # 8.2.2: connection-specific fields, TE
    "connection_field": (_h("/m/conn", [("connection", "keep-alive")]), RST_PROTO),
    "keep_alive_field": (_h("/m/ka", [("keep-alive", "timeout=5")]), RST_PROTO),
    "proxy_connection_field": (_h("/m/pc", [("proxy-connection", "close")]), RST_PROTO),
    "transfer_encoding_field": (_h("/m/te", [("transfer-encoding", "chunked")], "POST"),
                                RST_PROTO),
    "upgrade_field": (_h("/m/upg", [("upgrade", "h2c")]), RST_PROTO),
    "te_not_trailers": (_h("/m/tegz", [("te", "gzip")]), RST_PROTO),
    # 8.3: pseudo-header fields
    "unknown_pseudo_header": (_h("/m/unk", [(":foo", "bar")]), RST_PROTO),
    "response_pseudo_header_in_request": (_h("/m/st", [(":status", "200")]), RST_PROTO),
    "pseudo_header_after_regular": (
        _h("", pseudo=[(":method", "GET"), (":scheme", "http"), ("x-a", "1"),
                       (":authority", "app.test"), (":path", "/m/after")]), RST_PROTO),
    "duplicate_path": (_h("", pseudo=req_fields("/m/dup") + [(":path", "/m/dup2")]), RST_PROTO),
    "missing_method": (_h("", pseudo=[(":scheme", "http"), (":authority", "app.test"),
                                      (":path", "/m/nomethod")]), RST_PROTO),
    "missing_scheme": (_h("", pseudo=[(":method", "GET"), (":authority", "app.test"),
                                      (":path", "/m/noscheme")]), RST_PROTO),
    "missing_path": (_h("", pseudo=[(":method", "GET"), (":scheme", "http"),
                                    (":authority", "app.test")]), RST_PROTO),
    "empty_path": (_h("", pseudo=[(":method", "GET"), (":scheme", "http"),
                                  (":authority", "app.test"), (":path", "")]), RST_PROTO),
    # 8.3.1: :path must be origin-form ("*" for OPTIONS only)
    "path_not_origin_form": (_h("m-relative"), RST_PROTO),
    "asterisk_path_not_options": (_h("*"), RST_PROTO),
    "connect_without_authority": (
        _h("", pseudo=[(":method", "CONNECT"), (":scheme", "http"), (":path", "/")]), RST_PROTO),
    # 8.1: trailers
    "trailers_without_end_stream": (
        lambda c, sid: (c.headers(sid, req_fields("/m/tr", "POST"), end_stream=False),
                        c.data(sid, b"abc"),
                        c.headers(sid, [("x-t", "1")], end_stream=False)), RST_PROTO),
    "trailers_with_pseudo_header": (
        lambda c, sid: (c.headers(sid, req_fields("/m/trp", "POST"), end_stream=False),
                        c.data(sid, b"abc"),
                        c.headers(sid, [(":path", "/x")], end_stream=True)), RST_PROTO),
    # 8.1.1: content-length against DATA
    "content_length_more_than_data": (
        lambda c, sid: (c.headers(sid, req_fields("/sha256", "POST", [("content-length", "10")]),
                                  end_stream=False),
                        c.data(sid, b"abc", end_stream=True)), RST_PROTO),
    "content_length_less_than_data": (
        lambda c, sid: (c.headers(sid, req_fields("/sha256", "POST", [("content-length", "2")]),
                                  end_stream=False),
                        c.data(sid, b"abc", end_stream=True)), RST_PROTO),
    "content_length_with_end_stream_headers": (
        _h("/m/clend", [("content-length", "5")], "POST"), RST_PROTO),
    "content_length_not_a_number": (_h("/m/clnan", [("content-length", "abc")], "POST"),
                                    RST_PROTO),
    # 5.1: half-closed (remote): DATA after END_STREAM
    "data_after_end_stream": (
        lambda c, sid: (c.headers(sid, req_fields("/slow/1500")), c.data(sid, b"x")),
        {("rst", STREAM_CLOSED), ("goaway", STREAM_CLOSED)}),
    # 6.9: a zero increment on a stream; a stream window overflow
    "window_update_zero_on_stream": (
        lambda c, sid: (c.headers(sid, req_fields("/slow/1500")),
                        c.send(frame(WINDOW_UPDATE, 0, sid, b"\0\0\0\0"))),
        {("rst", PROTOCOL_ERROR), ("goaway", PROTOCOL_ERROR)}),
    "stream_window_overflow": (
        lambda c, sid: (c.headers(sid, req_fields("/slow/1500")),
                        c.send(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", 0x7fffffff)))),
        {("rst", FLOW_CONTROL_ERROR)}),
    # 6.3: PRIORITY of a wrong length
    "priority_bad_length": (
        lambda c, sid: (c.headers(sid, req_fields("/slow/1500")),
                        c.send(frame(PRIORITY, 0, sid, b"\0" * 4))),
        {("rst", FRAME_SIZE_ERROR), ("goaway", FRAME_SIZE_ERROR)}),
    # 5.3.1 (RFC 7540): a stream depending on itself
    "stream_depends_on_itself": (
        lambda c, sid: c.send(frame(HEADERS, END_HEADERS | END_STREAM | PRIO, sid,
                                    struct.pack(">IB", sid, 15) + block(req_fields("/m/self")))),
        {("rst", PROTOCOL_ERROR), ("goaway", PROTOCOL_ERROR)}),
    # 8.5: CONNECT is not supported (cutover answers 501)
    "connect_method": (
        _h("", pseudo=[(":method", "CONNECT"), (":authority", "app.test:443")]),
        {("status", 501)}),
}

for _n, (_send, _want) in STREAM_CASES.items():
    globals()["test_stream_" + _n] = _stream_case(_n, _send, _want)


def test_stream_malformed_never_forwarded():
    """RFC 9113 8.1.1: a malformed request is never forwarded, not even without the offending
    field (nghttp2 alone drops an invalid field and passes the rest on). Several malformed
    requests on one connection: each is reset, the upstream sees none of them, the connection
    still serves."""
    env = Env()
    try:
        c = env.conn()
        bad = [("x y", "1"), ("x-a", "1\r\nx-b: 2"), ("x-a", " lead"), ("x-a", "trail "),
               ("x\x7fz", "1"), ("x-a", "a\x00b")]
        for i, field in enumerate(bad):
            sid = 1 + 2 * i
            c.headers(sid, req_fields("/bad/%d" % i, extra=[field]))
            out = c.stream_outcome(sid)
            check(out == ("rst", PROTOCOL_ERROR), "field %r: outcome %r", field, out)
        time.sleep(0.3)
        leaked = [r["path"] for r in env.blue.requests() if r["path"].startswith("/bad/")]
        check(not leaked, "forwarded: %r", leaked)
        env.still_serves(c, 1 + 2 * len(bad))
    finally:
        env.stop()


def test_stream_host_and_authority():
    """RFC 9113 8.3.1: with both :authority and Host, the upstream gets one Host, the
    :authority (the Host field is never forwarded as a second one)."""
    env = Env()
    try:
        c = env.conn()
        c.headers(1, req_fields("/headers", extra=[("host", "other.test")]))
        check(c.status(1) == 200, "status")
        body = b""
        while True:
            f = c.wait(lambda f: f[0] == DATA and f[2] == 1, 3)
            if f is None:
                break
            c.frames.remove(f)
            body += f[3]
            if f[1] & END_STREAM:
                break
        import json
        j = json.loads(body)
        hosts = [v for n, v in j["raw_headers"] if n.lower() == "host"]
        check(hosts == ["app.test"], "upstream Host fields %r", hosts)
    finally:
        env.stop()


def test_conn_unknown_frame_type_ignored():
    """RFC 9113 5.5: an unknown frame type is ignored; the connection goes on."""
    env = Env()
    try:
        c = env.conn()
        c.send(frame(0xfa, 0, 0, b"whatever") + frame(0xfb, 0, 1, b"x"))
        env.still_serves(c, 1)
    finally:
        env.stop()


def test_conn_too_many_streams():
    """RFC 9113 5.1.2: streams beyond SETTINGS_MAX_CONCURRENT_STREAMS (100) are refused
    (RST_STREAM REFUSED_STREAM or PROTOCOL_ERROR), or the connection fails with PROTOCOL_ERROR."""
    env = Env()
    try:
        c = env.conn()
        c.wait(lambda f: f[0] == SETTINGS and f[1] & ACK, 2)
        for i in range(101):
            c.headers(1 + 2 * i, req_fields("/slow/3000"))
        sid = 1 + 2 * 100
        out = c.wait(lambda f: (f[0] == RST_STREAM and f[2] == sid) or f[0] == GOAWAY, 5)
        check(out is not None, "the 101st stream was accepted")
        code = int.from_bytes(out[3][:4] if out[0] == RST_STREAM else out[3][4:8], "big")
        check(code in (REFUSED_STREAM, PROTOCOL_ERROR), "101st stream: frame %d code %d",
              out[0], code)
    finally:
        env.stop()

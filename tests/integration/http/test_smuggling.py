"""Upgrade smuggling (issue 12): a client's "Upgrade: h2c" (with HTTP2-Settings) must never reach
the upstream, since an upstream that accepts it would then speak HTTP/2 with the client straight
through the proxy, past its routing and header rules. Cutover relays only the WebSocket upgrade;
every other Upgrade token is dropped and the request is served as plain HTTP/1.1."""
import socket
import threading

from harness import (RawConn, build_request, check, free_port, make_config, start_cutover,
                     start_upstream)

H2C_SETTINGS = "AAMAAABkAARAAAAAAAIAAAAA"


class EagerH2cUpstream:
    """An upstream that switches to h2c whenever it is offered an upgrade (as a vulnerable
    origin does): 101 Switching Protocols, then raw bytes that no HTTP/1.1 response contains.
    Otherwise 200 "plain". Records every request head it got."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.heads = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        c.settimeout(10)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                text = head.decode("latin-1")
                self.heads.append(text)
                fields = {}
                for line in text.split("\r\n")[1:]:
                    n, _, v = line.partition(":")
                    fields[n.strip().lower()] = v.strip()
                n = int(fields.get("content-length", "0") or 0)
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[n:]
                if "upgrade" in fields:
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                              b"Upgrade: %s\r\n\r\nSMUGGLED-H2C-STREAM" %
                              fields["upgrade"].encode())
                    c.recv(65536)
                    return
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nplain\n")
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.sock.close()


def _proxy(upstream):
    port = free_port()
    cx = start_cutover(make_config(port, {"blue": [upstream], "green": [upstream]},
                                   {"blue": 100, "green": 0}))
    return cx, port


def _headers_seen(r):
    j = r.json()
    return {k.lower(): v for k, v in j["raw_headers"]}, j


def test_h2c_upgrade_not_forwarded():
    """Upgrade: h2c + HTTP2-Settings + Connection: Upgrade, HTTP2-Settings (GET, and POST with a
    body, and "h2c" in any case, and behind other tokens): the upstream gets no Upgrade, no
    HTTP2-Settings, no Connection: upgrade; the client gets the plain 200 and keeps its
    connection."""
    blue = start_upstream("blue")
    cx, port = _proxy(blue)
    cases = [
        ("GET", [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                 ("HTTP2-Settings", H2C_SETTINGS)], None),
        ("POST", [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                  ("HTTP2-Settings", H2C_SETTINGS)], b"x" * 1000),
        ("GET", [("Connection", "keep-alive, upgrade"), ("Upgrade", "H2C")], None),
        ("GET", [("Connection", "Upgrade"), ("Upgrade", "foo/1, h2c")], None),
        ("GET", [("Connection", "Upgrade"), ("Upgrade", "TLS/1.2, HTTP/1.1")], None),
        ("GET", [("Connection", "Upgrade"), ("Upgrade", "h2")], None),
        # no "Connection: upgrade": the Upgrade field is hop-by-hop anyway
        ("GET", [("Upgrade", "h2c"), ("HTTP2-Settings", H2C_SETTINGS)], None),
    ]
    with RawConn(port) as c:
        for i, (method, hdrs, body) in enumerate(cases):
            r = c.request(method, "/headers", hdrs, body=body)
            check(r.status == 200, "case %d: status %s %r", i, r.status, r.body[:200])
            seen, _ = _headers_seen(r)
            for bad in ("upgrade", "http2-settings"):
                check(bad not in seen, "case %d: upstream got %s: %r", i, bad, seen)
            check("upgrade" not in seen.get("connection", "").lower(),
                  "case %d: upstream got Connection %r", i, seen.get("connection"))
            check(r.keep_alive, "case %d: connection not kept alive", i)
    # HTTP/1.0: an Upgrade is ignored altogether
    with RawConn(port) as c:
        c.send(b"GET /headers HTTP/1.0\r\nHost: app.test\r\nConnection: Upgrade\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: " + H2C_SETTINGS.encode() + b"\r\n\r\n")
        r = c.read_response()
        check(r.status == 200, "HTTP/1.0: status %s", r.status)
        seen, _ = _headers_seen(r)
        check("upgrade" not in seen and "http2-settings" not in seen,
              "HTTP/1.0: upstream got %r", seen)
    cx.stop()


def test_h2c_upgrade_eager_upstream():
    """Against an upstream that switches to h2c whenever asked, the client never sees a 101 nor
    the upstream's raw bytes for an h2c (or TLS) upgrade; WebSocket is still relayed."""
    up = EagerH2cUpstream()
    cx, port = _proxy(up.addr)
    try:
        for value in ("h2c", "h2c, websocketx", "TLS/1.2"):
            with RawConn(port) as c:
                c.send(build_request("GET", "/", [("Connection", "Upgrade, HTTP2-Settings"),
                                                  ("Upgrade", value),
                                                  ("HTTP2-Settings", H2C_SETTINGS)]))
                r = c.read_response(stop_at_interim=True)
                check(r.status == 200, "Upgrade %r: status %s (a 101 means the upgrade went "
                      "through)", value, r.status)
                check(r.body == b"plain\n", "Upgrade %r: body %r", value, r.body)
                c.settimeout(0.3)
                try:
                    extra = c.recv_some()
                except OSError:
                    extra = b""
                check(b"SMUGGLED" not in extra, "Upgrade %r: upstream bytes leaked", value)
        heads = list(up.heads)
        check(heads and all("upgrade" not in h.lower() and "http2-settings" not in h.lower()
                            for h in heads), "upstream heads: %r", heads)
        # WebSocket is what cutover relays (consistent with test_bodies): 101 and the tunnel.
        with RawConn(port) as c:
            c.send(build_request("GET", "/ws", [("Connection", "Upgrade"),
                                                ("Upgrade", "h2c, websocket"),
                                                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                                ("Sec-WebSocket-Version", "13")]))
            r = c.read_response(stop_at_interim=True)
            check(r.status == 101, "websocket: status %s", r.status)
        last = up.heads[-1].lower()
        check("upgrade: websocket\r\n" in last + "\r\n" and "h2c" not in last,
              "websocket: upstream head %r", up.heads[-1])
    finally:
        up.close()
        cx.stop()

"""Review regressions for HTTP/2 and TLS towards upstreams (proxy/h2up.c, upstream.c, stream.c):
one bad response must not take down the other streams of its connection, a request whose body
was sent is never replayed without it, an upstream connection left without streams by a
cancelled stream still closes after the idle time, DATA held for a paused client is returned to
the connection window when that stream ends, and pools that trust different CAs never share
verified connections or sessions."""
import socket
import time

from harness import (check, free_port, make_config, raw_exchange, start_cutover,
                     start_h2upstream, start_upstream, wait_until, RawConn)
from test_tls import Pki

MiB = 1 << 20


def h2c_setup(timeouts=None, limits=None, workers=1):
    blue = start_upstream("blue")
    green = start_h2upstream("green")
    port = free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 0, "green": 100},
                      timeouts=timeouts, limits=limits, workers=workers)
    cfg["routes"][0]["pools"]["green"]["protocol"] = "h2c"
    cx = start_cutover(cfg, workers=workers)
    return cx, port, green


def established_to(port):
    """Established IPv4 TCP connections whose remote port is port (the proxy's side)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            rem, state = parts[2], parts[3]
            if state == "01" and int(rem.split(":")[1], 16) == port:
                n += 1
    return n


def test_bad_response_head_fails_only_its_stream():
    # a response head over limits.max_header_bytes is that stream's 502; a POST waiting on the
    # same upstream connection must still get its answer (it was a fatal nghttp2 callback
    # error that failed the whole session)
    cx, port, green = h2c_setup(limits={"max_header_bytes": 8192})
    with RawConn(port) as c:
        c.send(b"POST /slow/1500 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello")
        wait_until(lambda: established_to(green.port) == 1, 5.0, what="upstream connection")
        time.sleep(0.2)
        r = raw_exchange(port, b"GET /bighead/20000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        check(r.status == 502, "oversized upstream head: %s", r.status)
        r = c.read_response("POST")
        check(r.status == 200 and r.body == b"green\n",
              "the POST on the same connection failed: %s %r", r.status, r.body)
    check(established_to(green.port) == 1, "the upstream connection was not kept")


def test_sent_body_is_not_replayed_empty():
    # the upstream reads a whole PUT body then drops the connection without answering; the PUT
    # must not go again without its body (the body was consumed by the first attempt)
    cx, port, green = h2c_setup()
    body = b"b" * 1000
    with RawConn(port) as c:
        r = c.request("PUT", "/drop-once", body=body, chunked=True)
    reqs = green.requests()
    check(reqs and all(q["body_len"] == len(body) for q in reqs),
          "the upstream got the PUT with a different body: %r",
          [(q["method"], q["body_len"]) for q in reqs])
    check(r.status == 502, "status %s", r.status)


def test_idle_connection_closes_after_cancelled_stream():
    # an HTTP/2 client cancels its stream (RST_STREAM) while the upstream works on it: the
    # upstream stream is cancelled too, and its connection, now without streams, must close
    # after upstream_idle_ms (long before /slow/5000 would have answered)
    import h2.config
    import h2.connection
    import h2.errors
    cx, port, green = h2c_setup(timeouts={"upstream_idle_ms": 300})
    s = socket.create_connection(("127.0.0.1", port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "app.test"),
                          (":path", "/slow/5000")], end_stream=True)
    s.sendall(conn.data_to_send())
    try:
        wait_until(lambda: established_to(green.port) == 1, 5.0, what="upstream connection")
        time.sleep(0.2)
        conn.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
        s.sendall(conn.data_to_send())
        t0 = time.time()
        wait_until(lambda: established_to(green.port) == 0, 3.0,
                   what="the idle upstream connection to close")
        check(time.time() - t0 < 3.0, "closed only after %.1f s", time.time() - t0)
    finally:
        s.close()


def test_paused_streams_return_their_window():
    # 70 clients download without reading (the proxy pauses them with up to a stream window of
    # DATA unconsumed each, 70 x 256 KiB > the 16 MiB connection window), then go away. The
    # DATA they held must go back to the connection window, or the connection stalls for good.
    cx, port, green = h2c_setup(limits={"buffer_bytes": 4096}, timeouts={"body_idle_ms": 3000})
    socks = []
    for _ in range(70):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /size/%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % (8 * MiB))
        socks.append(s)
    try:
        wait_until(lambda: len(green.requests()) == 70, 10.0, what="70 upstream requests")
        time.sleep(3.0)  # the upstream fills the windows
        check(established_to(green.port) == 1, "expected one upstream connection, got %d",
              established_to(green.port))
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    with RawConn(port, timeout=15.0) as c:
        r = c.get("/size/%d" % MiB)
    check(r.status == 200 and len(r.body) == MiB,
          "a download after the aborted ones stalled: %s %d", r.status, len(r.body or b""))


def test_tls_pools_with_different_cas_share_nothing():
    # two pools reach the same upstream under the same name; only "blue" trusts its CA. A
    # request through "green" must fail verification instead of reusing blue's connection
    # (or resuming blue's session)
    pki = Pki()
    up = start_upstream("up", args=["--tls-cert", pki.p("server.chain.crt"),
                                     "--tls-key", pki.p("server.key")])
    port = free_port()
    cfg = make_config(port, {"blue": [up], "green": [up]}, {"blue": 100, "green": 0},
                      override={"header": "x-cutover-pool", "trusted_peers": ["127.0.0.1/32"]},
                      workers=1)
    pools = cfg["routes"][0]["pools"]
    pools["blue"]["tls"] = {"ca": pki.p("ca.crt"), "server_name": "app.test"}
    pools["green"]["tls"] = {"ca": pki.p("other-ca.crt"), "server_name": "app.test"}
    cx = start_cutover(cfg, workers=1)
    r = raw_exchange(port, b"GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n")
    check(r.status == 200, "blue (trusted CA): %s", r.status)
    r = raw_exchange(port, b"GET /b HTTP/1.1\r\nHost: app.test\r\nX-Cutover-Pool: green\r\n\r\n")
    check(r.status == 502 and r.header("x-cutover-error") == "upstream_tls",
          "green (untrusted CA) reused blue's verified connection: %s", r.status)
    check([q["path"] for q in up.requests()] == ["/a"], "requests %r",
          [q["path"] for q in up.requests()])


test_paused_streams_return_their_window.timeout = 90

"""The gateway's health probe and responses to HEAD that cutover makes itself.

probe_path: Application Gateway probes each cutover instance with its own Host (often the pod
IP or 127.0.0.1) on a fixed path; cutover answers it itself on every listener, HTTP/1.1 and
HTTP/2, for any Host, 200 "ready" / 503 "draining" from SIGTERM on, never routed or proxied, the
query ignored, GET and HEAD only. A response cutover makes to a HEAD request (a probe, or an error
such as 404 no_route) carries no body, so the next response on the keep-alive connection is
framed right (RFC 9110 9.3.2)."""
import signal
import subprocess

from harness import (RawConn, check, free_port, make_config, raw_exchange, start_cutover,
                     start_upstream, wait_until)

PROBE = "/cutover-probe"


def probe_config(port, blue, green, **kw):
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      hosts=["app.test"], **kw)
    cfg["probe_path"] = PROBE
    return cfg


def test_probe_answered_locally_for_any_host():
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(probe_config(port, blue, green))
    for host in ("127.0.0.1", "10.1.2.3:8080", "app.test", "unknown.example"):
        r = raw_exchange(port, ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (PROBE, host)).encode())
        check(r.status == 200 and r.body == b"cutover: ready\n", "probe with Host %s: %s %r",
              host, r.status, r.body)
        check(r.header("x-cutover-error") is None, "a probe answer is not an error: %r",
              r.headers)
    r = raw_exchange(port, ("GET %s?from=appgw HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % PROBE)
                     .encode())
    check(r.status == 200, "query ignored: %s", r.status)
    # HEAD: the head only, and the next response on the connection is intact
    with RawConn(port) as c:
        c.send(("HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                "GET /after HTTP/1.1\r\nHost: app.test\r\n\r\n" % PROBE).encode())
        h = c.read_response("HEAD")
        check(h.status == 200 and h.body == b"" and h.header("content-length") == "15",
              "HEAD probe %s %r %r", h.status, h.headers, h.body)
        g = c.read_response("GET")
        check(g.status == 200 and g.body == b"blue\n", "after the HEAD probe: %s %r", g.status,
              g.body)
    # not the probe: another method, a longer path, a prefix of it
    r = raw_exchange(port, ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
                            % PROBE).encode())
    check(r.status == 404 and r.header("x-cutover-error") == "no_route", "POST: %s", r.status)
    for path in (PROBE + "/x", PROBE[:-1]):
        r = raw_exchange(port, ("GET %s HTTP/1.1\r\nHost: app.test\r\n\r\n" % path).encode())
        check(r.status == 200 and r.body == b"blue\n", "%s is routed: %s %r", path, r.status,
              r.body)
    # HTTP/2 (h2c prior knowledge) gets the same answer
    p = subprocess.run(["nghttp", "-v", "-H", ":authority: 127.0.0.1",
                        "http://127.0.0.1:%d%s" % (port, PROBE)],
                       capture_output=True, timeout=20)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == 0 and ":status: 200" in out and "cutover: ready" in out,
          "h2 probe: rc %s %s", p.returncode, out[-800:])
    check(not [q for q in blue.requests() + green.requests() if q["path"].startswith(PROBE + "?")
               or q["path"] == PROBE], "a probe reached an upstream")
    def probe_lines():
        got = [a for a in cx.access() if a["path"].split("?")[0] == PROBE and
               a["method"] in ("GET", "HEAD")]
        return got if len(got) >= 7 else None
    probes = wait_until(probe_lines, 5.0, what="the probes' access log lines")
    check(len(probes) == 7 and all(a["status"] == 200 and a["route"] == "" and "error" not in a
                                   for a in probes), "probe access lines %r", probes[:3])
    cx.stop()


def test_probe_says_draining_after_sigterm():
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(probe_config(port, blue, green, timeouts={"shutdown_delay_ms": 2000}))
    probe = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % PROBE).encode()
    check(raw_exchange(port, probe).status == 200, "ready before SIGTERM")
    cx.popen.send_signal(signal.SIGTERM)
    r = wait_until(lambda: (lambda x: x if x.status == 503 else None)(raw_exchange(port, probe)),
                   1.5, interval=0.05, what="probe 503 after SIGTERM")
    check(r.body == b"cutover: draining\n", "draining body %r", r.body)
    # the gateway takes the instance out on the probe; until then traffic is still served
    r = raw_exchange(port, b"GET /still HTTP/1.1\r\nHost: app.test\r\n\r\n")
    check(r.status == 200 and r.body == b"blue\n", "served during the shutdown delay: %s",
          r.status)
    cx.wait_exit(15.0)


def test_head_error_has_no_body():
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(probe_config(port, blue, green))
    with RawConn(port) as c:
        c.send(b"HEAD / HTTP/1.1\r\nHost: nope.test\r\n\r\n"
               b"GET /next HTTP/1.1\r\nHost: app.test\r\n\r\n")
        h = c.read_response("HEAD")
        check(h.status == 404 and h.header("x-cutover-error") == "no_route" and h.body == b"",
              "HEAD no_route: %s %r %r", h.status, h.headers, h.body)
        g = c.read_response("GET")
        check(g.status == 200 and g.body == b"blue\n",
              "the response after a HEAD error is misframed: %s %r", g.status, g.body)
    # HTTP/2: the HEADERS frame ends the stream, no DATA
    p = subprocess.run(["nghttp", "-v", "-H", ":method: HEAD", "-H", ":authority: nope.test",
                        "http://127.0.0.1:%d/" % port], capture_output=True, timeout=20)
    out = p.stdout.decode(errors="replace")
    check(":status: 404" in out and "recv DATA" not in out and "END_STREAM" in out,
          "h2 HEAD no_route: %s", out[-1200:])
    cx.stop()

"""HTTP/2 towards upstreams: h2c and h2 over TLS (ALPN, mTLS), HTTP/1.1 clients translated to
HTTP/2 and back (bodies both ways with checksums, trailers as chunked trailers), HTTP/2 clients
multiplexed onto few upstream connections, the peer's MAX_CONCURRENT_STREAMS, GOAWAY with
unprocessed streams retried, gRPC-shaped exchanges with trailers, and long-lived gRPC streams
not cut by the body idle timeout. The upstream is h2upstream.py (Debian's python3-h2)."""
import hashlib

from harness import (check, free_port, make_config, random_bytes, raw_exchange, start_cutover,
                     start_h2upstream, start_upstream, wait_until, RawConn)
from test_h2 import h2load, h2load_counts, run
from test_tls import Pki

MiB = 1 << 20


def h2_setup(up_args=(), protocol="h2c", tls=None, timeouts=None, limits=None, workers=2):
    blue = start_upstream("blue")
    green = start_h2upstream("green", args=up_args)
    port = free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 0, "green": 100},
                      timeouts=timeouts, limits=limits, workers=workers)
    pool = cfg["routes"][0]["pools"]["green"]
    pool["protocol"] = protocol
    if tls:
        pool["tls"] = tls
    cx = start_cutover(cfg, workers=workers)
    return cx, port, blue, green


def nghttp(port, path, *args, timeout=60):
    p = run(["nghttp", "-v", "-H", ":authority: app.test", *args,
             "http://127.0.0.1:%d%s" % (port, path)], timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace")


def test_h1_client_to_h2c_upstream():
    cx, port, blue, green = h2_setup()
    with RawConn(port) as c:
        r = c.get("/hello", headers=[("X-Mixed-Case", "Yes"), ("Connection", "keep-alive")])
        check(r.status == 200 and r.body == b"green\n", "GET: %s %r", r.status, r.body)
        # a sized download
        r = c.get("/size/%d" % (3 * MiB))
        check(r.status == 200 and r.body == b"x" * (3 * MiB), "size: %s %d", r.status,
              len(r.body))
        # an upload echoed back: chunked to the HTTP/1.1 client, checksum in the trailers
        body = random_bytes(5 * MiB, seed=7)
        r = c.request("POST", "/echo", body=body)
        check(r.status == 200 and hashlib.sha256(r.body).hexdigest() ==
              hashlib.sha256(body).hexdigest(), "echo: %s %d", r.status, len(r.body))
        tr = dict((k.lower(), v) for k, v in (r.trailers or []))
        check(tr.get("x-body-sha256") == hashlib.sha256(body).hexdigest(),
              "trailers not relayed as chunked trailers: %r", r.trailers)
        # chunked upload (unknown length) becomes DATA frames
        r = c.request("POST", "/echo", body=body[:MiB], chunked=True)
        check(r.status == 200 and r.body == body[:MiB], "chunked echo: %s", r.status)
    reqs = green.requests()
    first = reqs[0]
    hdrs = dict(first["headers"])
    check(first["authority"] == "app.test" and first["scheme"] == "http",
          "authority/scheme %r %r", first["authority"], first["scheme"])
    check(hdrs.get("x-mixed-case") == "Yes", "field names must be lower case: %r", hdrs)
    check("connection" not in hdrs and "host" not in hdrs and "transfer-encoding" not in hdrs,
          "connection-specific or Host fields forwarded: %r", hdrs)
    check(hdrs.get("x-forwarded-for") == "127.0.0.1" and hdrs.get("x-request-id"),
          "forwarding fields missing: %r", hdrs)
    check(reqs[2]["body_len"] == 5 * MiB and
          reqs[2]["body_sha256"] == hashlib.sha256(body).hexdigest(), "upload %r", reqs[2])
    check(len({q["conn"] for q in reqs}) == 1, "one keep-alive client used %d upstream conns",
          len({q["conn"] for q in reqs}))
    check(not blue.requests(), "blue got traffic")
    acc = cx.access()
    check(all(a["pool"] == "green" and a["status"] == 200 for a in acc), "access %r", acc[-1])


def test_h2_client_multiplexed_and_max_streams():
    # many concurrent streams from HTTP/2 clients share few upstream connections
    cx, port, _, green = h2_setup(workers=1)
    out = h2load(port, "-n", "3000", "-c", "4", "-m", "20")
    check(h2load_counts(out).get("2xx") == 3000, "h2load: %s", out[-600:])
    conns = {q["conn"] for q in green.requests()}
    check(len(conns) <= 2, "80 concurrent streams used %d upstream connections", len(conns))
    cx.stop()

    # the peer allows 5 streams per connection: more connections, nothing refused
    cx, port, _, green = h2_setup(up_args=["--max-streams", "5"], workers=1)
    out = h2load(port, "-n", "2000", "-c", "4", "-m", "20", path="/slow/5")
    check(h2load_counts(out).get("2xx") == 2000, "h2load with max-streams 5: %s", out[-600:])
    conns = {q["conn"] for q in green.requests()}
    check(len(conns) >= 4, "80 concurrent streams at 5 per connection used only %d conns",
          len(conns))


def test_h2_upstream_goaway_retries_unprocessed():
    # every upstream connection sends GOAWAY after 50 streams (a graceful restart); the streams
    # above its last stream id were never processed and must be retried (POSTs too), so no
    # client sees a failure and the upstream processes each request exactly once
    cx, port, _, green = h2_setup(up_args=["--goaway-after", "50"], workers=1)
    out = h2load(port, "-n", "600", "-c", "2", "-m", "10", "-d", "/etc/hostname")
    counts = h2load_counts(out)
    check(counts.get("2xx") == 600, "GOAWAY: %s", out[-800:])
    reqs = green.requests()
    check(len(reqs) == 600, "upstream processed %d requests for 600 (duplicates or losses)",
          len(reqs))
    check(len({q["conn"] for q in reqs}) >= 12, "GOAWAY did not force new connections")
    acc = wait_until(lambda: len(cx.access()) >= 600 and cx.access(), 10.0, what="access log")
    check(not [a for a in acc if a["status"] != 200], "a failed request")
    check([a for a in acc if a["tries"] > 1], "no request was retried after GOAWAY")


def test_h2_over_tls_upstream_mtls():
    pki = Pki()
    cx, port, _, green = h2_setup(
        up_args=["--tls-cert", pki.p("server.chain.crt"), "--tls-key", pki.p("server.key"),
                 "--tls-client-ca", pki.p("ca.crt")],
        protocol="h2",
        tls={"ca": pki.p("ca.crt"), "server_name": "app.test",
             "client_certificate": {"cert": pki.p("client.crt"), "key": pki.p("client.key")}})
    r = raw_exchange(port, b"GET /tls HTTP/1.1\r\nHost: app.test\r\n\r\n")
    check(r.status == 200 and r.body == b"green\n", "status %s %r", r.status, r.body)
    out = h2load(port, "-n", "500", "-c", "2", "-m", "10")
    check(h2load_counts(out).get("2xx") == 500, "h2load over h2+TLS: %s", out[-600:])
    q = green.requests()[0]
    check(q["scheme"] == "https" and q["tls"]["alpn"] == "h2" and q["tls"]["sni"] == "app.test"
          and q["tls"]["client_cert"] == "commonName=client one", "tls view %r", q)


def test_h2_upstream_requires_alpn_h2():
    # a TLS upstream that only speaks HTTP/1.1: pool protocol h2 must fail cleanly (502/503)
    # when there is nowhere else to go (blue's only endpoint refuses connections), and fail over
    # to blue (a refused ALPN is a connect that did not happen) when blue serves
    pki = Pki()
    green = start_upstream("green", args=["--tls-cert", pki.p("server.chain.crt"),
                                          "--tls-key", pki.p("server.key")])
    for blue in ("127.0.0.1:%d" % free_port(), start_upstream("blue")):
        port = free_port()
        cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 0, "green": 100})
        cfg["routes"][0]["pools"]["green"].update(
            protocol="h2", tls={"ca": pki.p("ca.crt"), "server_name": "app.test"})
        cx = start_cutover(cfg)
        r = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        if isinstance(blue, str):
            check(r.status in (502, 503), "an HTTP/1.1-only upstream for an h2 pool: %s",
                  r.status)
        else:
            check(r.status == 200 and r.upstream == "blue",
                  "fail-over to blue: %s from %s", r.status, r.upstream)
        check(not green.requests(), "request sent over the wrong protocol")
        cx.stop()


def test_grpc_passthrough_and_long_lived_streams():
    # body idle timeout 300 ms; /ticks/4/500 sends a DATA frame every 500 ms
    cx, port, _, green = h2_setup(timeouts={"body_idle_ms": 300})
    grpc = ["-H", "te: trailers", "-H", "content-type: application/grpc"]
    rc, out = nghttp(port, "/grpc/bank.Accounts/Get", *grpc, "-d", "/etc/hostname")
    check(rc == 0, "nghttp: %s", out[-800:])
    check("grpc-status: 0" in out and "grpc-message: OK" in out,
          "gRPC trailers missing: %s", out[-1500:])
    q = green.requests()[0]
    hdrs = dict(q["headers"])
    check(hdrs.get("te") == "trailers" and hdrs.get("content-type") == "application/grpc",
          "te/content-type not passed: %r", hdrs)
    # a streaming gRPC call with gaps longer than the body idle timeout is not cut
    rc, out = nghttp(port, "/ticks/4/500", *grpc, timeout=30)
    check(rc == 0 and out.count("tick ") == 4, "long-lived gRPC stream cut: %s", out[-800:])
    # the same gaps on an ordinary request/response exchange trip the body idle timeout
    rc, out = nghttp(port, "/ticks/4/500", timeout=30)
    check(out.count("tick ") < 4, "a stalled non-gRPC response was not cut: %s", out[-800:])
    acc = wait_until(lambda: [a for a in cx.access() if a["path"] == "/ticks/4/500"][1:] and
                     [a for a in cx.access() if a["path"] == "/ticks/4/500"], 10.0,
                     what="two access lines")
    check(sorted(bool(a.get("aborted")) for a in acc) == [False, True],
          "gRPC stream kept, plain stream cut: %r", acc)

"""W3C traceparent: forwarded when valid, dropped (with tracestate) when invalid, created when
absent with "trace_context": "create", and logged as trace_id in the access log; HTTP/1.1 and
HTTP/2 clients, HTTP/1.1 and h2c upstreams."""
import json
import re
import subprocess

from harness import (RawConn, check, free_port, make_config, start_cutover, start_h2upstream,
                     start_upstream, wait_until)

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TP_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def _setup(mode=None, h2_upstream=False):
    blue = start_upstream("blue")
    green = start_h2upstream("green") if h2_upstream else start_upstream("green")
    port = free_port()
    w = {"blue": 0, "green": 100} if h2_upstream else {"blue": 100, "green": 0}
    cfg = make_config(port, {"blue": [blue], "green": [green]}, w)
    if h2_upstream:
        cfg["routes"][0]["pools"]["green"]["protocol"] = "h2c"
    if mode:
        cfg["trace_context"] = mode
    return start_cutover(cfg), port, green if h2_upstream else blue


def _h1_headers(port, hdrs):
    with RawConn(port) as c:
        r = c.get("/headers", hdrs)
        check(r.status == 200, "status %s %r", r.status, r.body[:200])
        return r.json()["headers"]


def _access(cx, n):
    return wait_until(lambda: (lambda a: a if len(a) >= n else None)(cx.access()), 10,
                      what="%d access lines" % n)


def test_traceparent_forward_mode_h1():
    cx, port, up = _setup()
    # a valid one is forwarded as it came, tracestate with it; its trace id is logged
    h = _h1_headers(port, [("traceparent", TP), ("tracestate", "congo=t61rcWkgMzE")])
    check(h.get("traceparent") == TP, "valid traceparent not forwarded: %r", h.get("traceparent"))
    check(h.get("tracestate") == "congo=t61rcWkgMzE", "tracestate lost: %r", h.get("tracestate"))
    # absent: nothing is made up in "forward" (the default)
    h = _h1_headers(port, [])
    check("traceparent" not in h, "traceparent created in forward mode: %r", h.get("traceparent"))
    # invalid (upper case, zero trace id, wrong length, two fields): dropped with tracestate
    for bad in ([("traceparent", TP.upper())],
                [("traceparent", "00-" + "0" * 32 + "-00f067aa0ba902b7-01")],
                [("traceparent", TP + "-x")],
                [("traceparent", TP), ("traceparent", TP)]):
        h = _h1_headers(port, bad + [("tracestate", "a=b")])
        check("traceparent" not in h, "invalid traceparent %r forwarded: %r", bad,
              h.get("traceparent"))
        check("tracestate" not in h, "tracestate of an invalid traceparent forwarded: %r", h)
    # (each request on its own connection, so maybe another worker: lines come in any order)
    got = sorted(ln.get("trace_id") for ln in _access(cx, 6)[:6])
    check(got == [""] * 5 + [TRACE], "logged trace ids %r: the valid one once, else \"\"", got)
    cx.stop()


def test_traceparent_create_mode_h1():
    cx, port, up = _setup("create")
    h = _h1_headers(port, [])
    m = TP_RE.match(h.get("traceparent", ""))
    check(m, "no traceparent created: %r", h.get("traceparent"))
    first = m.group(1)
    h = _h1_headers(port, [])
    m2 = TP_RE.match(h.get("traceparent", ""))
    check(m2 and m2.group(1) != first, "second created trace id %r equals the first", h)
    # a valid one is kept, not replaced
    h = _h1_headers(port, [("traceparent", TP)])
    check(h.get("traceparent") == TP, "valid traceparent replaced: %r", h.get("traceparent"))
    # an invalid one is replaced by a fresh one; its tracestate dropped
    h = _h1_headers(port, [("traceparent", "00-zz"), ("tracestate", "a=b")])
    m3 = TP_RE.match(h.get("traceparent", ""))
    check(m3, "invalid traceparent not replaced: %r", h.get("traceparent"))
    check("tracestate" not in h, "tracestate kept with a replaced traceparent: %r", h)
    lines = _access(cx, 4)
    got = sorted(ln.get("trace_id") for ln in lines[:4])
    check(got == sorted([first, m2.group(1), TRACE, m3.group(1)]), "logged trace ids %r", got)
    # the request id is independent of it
    check(all(ln.get("request_id") for ln in lines[:4]), "request_id missing: %r", lines[:4])
    cx.stop()


def _curl_h2(port, path, *hdrs):
    args = ["curl", "-sS", "--http2-prior-knowledge", "-H", "Host: app.test"]
    for h in hdrs:
        args += ["-H", h]
    p = subprocess.run(args + ["http://127.0.0.1:%d%s" % (port, path)], capture_output=True,
                       timeout=30)
    check(p.returncode == 0, "curl: %s", p.stderr)
    return p.stdout


def test_traceparent_h2_client_and_h2c_upstream():
    # HTTP/2 client in, HTTP/1.1 upstream: forwarded and created
    cx, port, up = _setup("create")
    body = _curl_h2(port, "/headers", "traceparent: " + TP)
    h = json.loads(body)["headers"]
    check(h.get("traceparent") == TP, "h2 -> h1: traceparent %r", h.get("traceparent"))
    h = json.loads(_curl_h2(port, "/headers"))["headers"]
    check(TP_RE.match(h.get("traceparent", "")), "h2 -> h1: none created: %r", h)
    got = sorted(ln.get("trace_id") for ln in _access(cx, 2)[:2])
    check(got == sorted([TRACE, TP_RE.match(h["traceparent"]).group(1)]),
          "logged %r, sent %r and %r", got, TP, h["traceparent"])
    cx.stop()

    # HTTP/1.1 and HTTP/2 clients, h2c upstream: the upstream sees the field (lower case)
    cx, port, up = _setup("create", h2_upstream=True)
    with RawConn(port) as c:
        r = c.get("/hello", [("traceparent", TP)])
        check(r.status == 200, "h1 -> h2c: %s", r.status)
    _curl_h2(port, "/hello", "traceparent: 00-bad-value")
    _curl_h2(port, "/hello")

    def seen():
        reqs = up.requests()
        return reqs if len(reqs) >= 3 else None
    reqs = wait_until(seen, 10, what="3 requests at the h2c upstream")
    tps = [[v for k, v in r["headers"] if k == "traceparent"] for r in reqs[:3]]
    check(tps[0] == [TP], "h1 -> h2c: traceparent %r", tps[0])
    check(len(tps[1]) == 1 and TP_RE.match(tps[1][0]), "h2 -> h2c invalid not replaced: %r",
          tps[1])
    check(len(tps[2]) == 1 and TP_RE.match(tps[2][0]), "h2 -> h2c none created: %r", tps[2])
    got = sorted(ln.get("trace_id") for ln in _access(cx, 3)[:3])
    check(got == sorted([TRACE, TP_RE.match(tps[1][0]).group(1),
                         TP_RE.match(tps[2][0]).group(1)]),
          "access trace ids %r vs upstream %r", got, tps)
    cx.stop()

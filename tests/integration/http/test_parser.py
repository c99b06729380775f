"""Malformed requests are rejected by the proxy and never reach the upstream."""
import time

from harness import (HarnessError, RawConn, check, free_port, make_config, start_cutover,
                     start_upstream, wait_until)

H = "Host: app.test\r\n"

CASES = [
    # (name, raw request, status, x-cutover-error)
    ("CL+TE", "POST /bad-clte HTTP/1.1\r\n" + H + "Content-Length: 5\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_request"),
    ("two different CL", "POST /bad-2cl HTTP/1.1\r\n" + H + "Content-Length: 5\r\n"
     "Content-Length: 6\r\n\r\nhello!", 400, "bad_request"),
    ("obs-fold", "GET /bad-fold HTTP/1.1\r\n" + H + "X-Folded: a\r\n  b\r\n\r\n", 400,
     "bad_request"),
    ("bad chunk size", "POST /bad-chunk HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n"
     "zz\r\nhello\r\n0\r\n\r\n", 400, "bad_request"),
    ("request line over 8192", "GET /bad-long-" + "a" * 9000 + " HTTP/1.1\r\n" + H + "\r\n",
     414, "uri_too_long"),
    ("101 header fields", "GET /bad-many HTTP/1.1\r\n" + H +
     "".join("X-F%d: v\r\n" % i for i in range(101)) + "\r\n", 431, "headers_too_large"),
    ("head over 32768 bytes", "GET /bad-big HTTP/1.1\r\n" + H +
     "".join("X-Big%d: %s\r\n" % (i, "b" * 2000) for i in range(20)) + "\r\n", 431,
     "headers_too_large"),
    ("HTTP/2.0 request line", "GET /bad-h2 HTTP/2.0\r\n" + H + "\r\n", 505, "version"),
    ("HTTP/1.1 without Host", "GET /bad-nohost HTTP/1.1\r\nX-A: b\r\n\r\n", 400, "bad_request"),
]


def test_parser_rejections():
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                              {"blue": 50, "green": 50}))
    problems = []
    for name, raw, status, code in CASES:
        try:
            with RawConn(port, timeout=5) as c:
                c.send(raw.encode("latin-1"))
                r = c.read_response("GET")
            if r.status != status:
                problems.append("%s: status %s, expected %s" % (name, r.status, status))
            elif r.header("x-cutover-error") != code:
                problems.append("%s: x-cutover-error %r, expected %r"
                                % (name, r.header("x-cutover-error"), code))
            elif r.upstream is not None:
                problems.append("%s: answered by upstream %s" % (name, r.upstream))
        except Exception as e:
            problems.append("%s: %s: %s" % (name, type(e).__name__, e))
    # a valid request afterwards on each pool: once it is logged, anything sent before is too
    with RawConn(port) as c:
        for i in range(2):
            r = c.get("/marker")
            check(r.status == 200, "marker request: status %s", r.status)
    try:
        wait_until(lambda: len([x for x in blue.requests() + green.requests()
                                if x["path"] == "/marker"]) == 2, 3, what="marker requests")
    except HarnessError as e:
        problems.append(str(e))
    time.sleep(0.1)
    arrived = [x for x in blue.requests() + green.requests() if x["path"] != "/marker"]
    for x in arrived:
        problems.append("rejected request reached upstream %s: %s %s"
                        % (x["name"], x["method"], x["path"][:60]))
    check(not problems, "%d problem(s): %s", len(problems), " | ".join(problems))

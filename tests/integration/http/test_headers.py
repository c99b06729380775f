"""Request headers sent upstream, and the access log."""
import re
import time

from harness import (HOST, RawConn, check, free_port, make_config, random_bytes, start_cutover,
                     start_upstream, wait_until)

HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")


def test_forwarded_headers():
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                                   {"blue": 100, "green": 0}))
    # X-Forwarded-*, hop-by-hop removal
    with RawConn(port) as c:
        r = c.get("/headers", [("X-Forwarded-For", "1.2.3.4"), ("Connection", "close, foo"),
                               ("Foo", "bar"), ("Keep-Alive", "timeout=5"),
                               ("Proxy-Connection", "keep-alive"), ("TE", "gzip"),
                               ("X-Keep-Me", "yes")])
        check(r.status == 200, "status %s (x-upstream %s): %r", r.status, r.upstream,
              r.body[:300])
        h = r.json()["headers"]
        check(h.get("x-forwarded-for") == "1.2.3.4, 127.0.0.1", "X-Forwarded-For upstream: %r",
              h.get("x-forwarded-for"))
        check(h.get("x-forwarded-proto") == "http", "X-Forwarded-Proto %r",
              h.get("x-forwarded-proto"))
        check(h.get("x-forwarded-host") == "app.test", "X-Forwarded-Host %r",
              h.get("x-forwarded-host"))
        for hop in ("foo", "keep-alive", "proxy-connection", "te"):
            check(hop not in h, "hop-by-hop %r forwarded: %r", hop, h.get(hop))
        check(h.get("x-keep-me") == "yes", "end-to-end header lost: %r", h)
        check(HEX32.match(h.get("x-request-id", "")), "generated X-Request-Id %r",
              h.get("x-request-id"))
        check("close" in r.tokens("connection") or c.read_all_until_close() == b"",
              "Connection: close from the client not honoured")
    gen_id = h["x-request-id"]

    # without XFF: just the peer
    with RawConn(port) as c:
        h = c.get("/headers").json()["headers"]
        check(h.get("x-forwarded-for") == "127.0.0.1", "X-Forwarded-For %r",
              h.get("x-forwarded-for"))
        gen2 = h.get("x-request-id", "")
        check(HEX32.match(gen2) and gen2 != gen_id, "second generated id %r (first %r)", gen2,
              gen_id)
        # a client id is kept
        h = c.get("/headers", {"X-Request-Id": "client-req-0123456789"}).json()["headers"]
        check(h.get("x-request-id") == "client-req-0123456789", "X-Request-Id not kept: %r",
              h.get("x-request-id"))
        # x-appgw-trace-id becomes the request id when there is no x-request-id
        trace = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
        h = c.get("/headers", {"x-appgw-trace-id": trace}).json()["headers"]
        check(h.get("x-request-id") == trace, "x-appgw-trace-id not used: %r",
              h.get("x-request-id"))
        # x-request-id wins over x-appgw-trace-id
        h = c.get("/headers", {"X-Request-Id": "client-req-2", "x-appgw-trace-id": trace}
                  ).json()["headers"]
        check(h.get("x-request-id") == "client-req-2", "X-Request-Id lost to the trace id: %r",
              h.get("x-request-id"))

    want = {gen_id, gen2, "client-req-0123456789", trace, "client-req-2"}
    acc = wait_until(lambda: (lambda ids: ids if want <= ids else None)(
        {a.get("request_id") for a in cx.access()}), 5, what="access log lines with the ids")
    check(want <= acc, "request ids missing from the access log: %r", want - acc)


FIELDS = ("type", "time", "cluster", "region", "worker", "client", "method", "host", "path",
          "route", "pool", "endpoint", "status", "bytes_in", "bytes_out", "upstream_ms",
          "total_ms", "request_id", "reason")


def test_access_log():
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                                   {"blue": 100, "green": 0}, route_name="web",
                                   sticky={"header": "x-device-id"},
                                   override={"header": "x-cutover-pool",
                                             "trusted_peers": ["127.0.0.1"]}))
    body = random_bytes(1000, seed=3)
    sent = []
    with RawConn(port) as c:
        r = c.get("/size/1234?q=1")
        sent.append(("GET", "/size/1234", 200, "blue", "weight", r))
        r = c.request("POST", "/sha256", body=body)
        sent.append(("POST", "/sha256", 200, "blue", "weight", r))
        r = c.get("/status/404", {"x-cutover-pool": "green"})
        sent.append(("GET", "/status/404", 404, "green", "override", r))
        r = c.get("/a/b", {"x-device-id": "device-42"})
        sent.append(("GET", "/a/b", 200, "blue", "sticky", r))
        r = c.request("HEAD", "/size/10")
        sent.append(("HEAD", "/size/10", 200, "blue", "weight", r))
    for m, p, st, pool, reason, r in sent:
        check(r.status == st and r.upstream == pool, "%s %s: %r", m, p, r)

    lines = wait_until(lambda: (lambda a: a if len(a) >= len(sent) else None)(cx.access()), 5,
                       what="%d access log lines" % len(sent))
    time.sleep(0.3)
    lines = cx.access()
    check(len(lines) == len(sent), "%d access log lines for %d requests: %r", len(lines),
          len(sent), lines)
    for (m, p, st, pool, reason, r), a in zip(sent, lines):
        what = "%s %s" % (m, p)
        missing = [f for f in FIELDS if f not in a]
        check(not missing, "%s: access log line lacks %r: %r", what, missing, a)
        check(a["type"] == "access" and a["method"] == m, "%s: %r", what, a)
        check(a["path"].split("?")[0] == p, "%s: path %r", what, a["path"])
        check(a["route"] == "web" and a["pool"] == pool and a["status"] == st,
              "%s: route/pool/status %r/%r/%r, expected web/%s/%s", what, a["route"], a["pool"],
              a["status"], pool, st)
        check(a["reason"] == reason, "%s: reason %r, expected %r", what, a["reason"], reason)
        check(a["cluster"] == "it-cluster" and a["region"] == "it-region", "%s: %r", what, a)
        check(a["client"] == HOST, "%s: client %r", what, a["client"])
        check(a["host"] == "app.test", "%s: host %r", what, a["host"])
        up = blue if pool == "blue" else green
        check(a["endpoint"] == up.addr, "%s: endpoint %r, expected %s", what, a["endpoint"],
              up.addr)
        check(isinstance(a["worker"], int) and 0 <= a["worker"] < 2, "%s: worker %r", what,
              a["worker"])
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", a["time"]),
              "%s: time %r", what, a["time"])
        check(isinstance(a["upstream_ms"], (int, float)) and isinstance(a["total_ms"],
                                                                         (int, float))
              and 0 <= a["upstream_ms"] <= a["total_ms"] + 0.5, "%s: timings %r %r", what,
              a["upstream_ms"], a["total_ms"])
        check(isinstance(a["request_id"], str) and a["request_id"], "%s: request_id %r", what,
              a["request_id"])
    by_path = {(a["method"], a["path"].split("?")[0]): a for a in lines}
    check(by_path[("GET", "/size/1234")]["bytes_out"] >= 1234, "bytes_out %r",
          by_path[("GET", "/size/1234")]["bytes_out"])
    check(by_path[("POST", "/sha256")]["bytes_in"] >= 1000, "bytes_in %r",
          by_path[("POST", "/sha256")]["bytes_in"])
    check(by_path[("HEAD", "/size/10")]["bytes_out"] < 1000, "HEAD bytes_out %r",
          by_path[("HEAD", "/size/10")]["bytes_out"])

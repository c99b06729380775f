#!/usr/bin/python3
"""make_corpus.py - writes the committed seed corpora under tests/fuzz/corpus/<harness>/ and the
dictionaries tests/fuzz/<harness>.dict.

    /usr/bin/python3 tests/fuzz/make_corpus.py

A handful of small valid (and a few nearly valid) inputs per harness, in each harness's input
format (see the comment at the top of tests/fuzz/fuzz_<harness>.c). The HTTP/2 seeds are real
frame sequences with HPACK-encoded headers (Debian's python3-hpack, a dependency of python3-h2,
which deps.sh installs for the tests). Re-running it rewrites the same files; libFuzzer only
reads them (tests/fuzz/run.sh fuzzes a copy), so the committed corpora stay small.
"""
import hashlib
import json
import os
import shutil
import struct

import hpack

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def reset(harness):
    shutil.rmtree(os.path.join(CORPUS, harness), ignore_errors=True)


# ---- HTTP/1.1 -------------------------------------------------------------------------------

H1_REQUESTS = {
    "get": "GET /v2/devices?id=7 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: fuzz\r\n"
           "Accept: */*\r\n\r\n",
    "post_length": "POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n"
                   "Content-Type: text/plain\r\n\r\nhello",
    "post_chunked": "POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n"
                    "\r\n5;ext=1\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n",
    "http10_keepalive": "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "expect_continue": "PUT /v1/thing HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\n"
                       "Content-Length: 2\r\n\r\nok",
    "upgrade": "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
               "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "pipelined": "GET /a HTTP/1.1\r\nHost: app.test\r\n\r\nHEAD /b HTTP/1.1\r\nHost: app.test\r\n"
                 "\r\nGET /c HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    "forwarded": "GET /x HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n"
                 "X-Forwarded-Proto: https\r\nX-Request-Id: abc-123\r\nCookie: sid=42\r\n"
                 "x-device-id: d-1\r\nx-cutover-pool: green\r\nTE: trailers\r\n\r\n",
    "absolute_form": "GET http://app.test:8080/p?q=1 HTTP/1.1\r\nHost: app.test:8080\r\n\r\n",
    "options_star": "OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n",
    "probe": "GET /cutover-probe HTTP/1.1\r\nHost: 10.0.0.5\r\n\r\n",
}
H1_RESPONSES = {
    "resp_length": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "resp_chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x\r\n\r\n"
                    "3\r\nabc\r\n0\r\nx: y\r\n\r\n",
    "resp_close": "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nbody",
    "resp_304": "HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\n\r\n",
    "resp_101": "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                "Upgrade: websocket\r\n\r\n",
}


def h1_parse():
    reset("h1_parse")
    # byte 0: limits/options, byte 1: split point
    for i, (k, v) in enumerate(list(H1_REQUESTS.items()) + list(H1_RESPONSES.items())):
        write("h1_parse", k, bytes([i & 7, 17 + i]) + v.encode())
    write("h1_parse", "chunk_size", b"\x00\x03" + b"1a;name=value\r\n")
    write("h1_parse", "trailers", b"\x00\x05" + b"X-Checksum: 1\r\nX-Other: two\r\n\r\n")


def h1_conn():
    reset("h1_conn")
    # byte 0: the upstream's answer
    for i, (k, v) in enumerate(H1_REQUESTS.items()):
        write("h1_conn", k, bytes([i % 8]) + v.encode())


def chunked():
    reset("chunked")
    wires = {
        "simple": b"5\r\nhello\r\n0\r\n\r\n",
        "two_chunks_ext": b"5\r\nhello\r\nA;ext=1;q=\"x\"\r\n, world!!!\r\n0\r\n\r\n",
        "trailers": b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Two: 2\r\n\r\n",
        "upper_hex": b"1F\r\n" + b"x" * 31 + b"\r\n0\r\n\r\n",
        "bad_crlf": b"5\r\nhelloXX0\r\n\r\n",
        "incomplete": b"10\r\nonly part",
        "extra_after": b"1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
    }
    for i, (k, w) in enumerate(wires.items()):
        # byte 0: limits; byte 1: 3 split points, given as 2 bytes each
        splits = struct.pack(">HHH", 1 + i, 4 + 2 * i, 9 + i)
        write("chunked", k, bytes([i & 3, 3]) + splits + w)


# ---- HTTP/2 ---------------------------------------------------------------------------------

def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINUP, CONT = range(10)
END_STREAM, END_HEADERS, PADDED, PRIO = 0x1, 0x4, 0x8, 0x20


def settings(*pairs):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def hdrs(fields):
    return hpack.Encoder().encode(fields)


GET = [(":method", "GET"), (":scheme", "http"), (":authority", "app.test"), (":path", "/")]


def h2_server():
    reset("h2_server")
    s0 = settings((3, 100), (4, 65535))
    ack = frame(SETTINGS, 1, 0)
    seeds = {
        "get": s0 + ack + frame(HEADERS, END_STREAM | END_HEADERS, 1, hdrs(GET + [
            ("user-agent", "fuzz"), ("accept", "*/*")])),
        "post_data": s0 + frame(HEADERS, END_HEADERS, 1, hdrs(
            [(":method", "POST"), (":scheme", "http"), (":authority", "app.test"),
             (":path", "/upload"), ("content-length", "11"), ("content-type", "text/plain")]))
        + frame(DATA, 0, 1, b"hello ") + frame(DATA, END_STREAM, 1, b"world"),
        "two_streams_cookies": s0 + frame(HEADERS, END_STREAM | END_HEADERS, 1, hdrs(GET + [
            ("cookie", "a=1"), ("cookie", "sid=2"), ("x-device-id", "d-7")]))
        + frame(HEADERS, END_STREAM | END_HEADERS, 3, hdrs(
            [(":method", "HEAD"), (":scheme", "https"), (":authority", "app.test"),
             (":path", "/b?q=1")])),
        "continuation": s0 + frame(HEADERS, 0, 1, hdrs(GET)[:6])
        + frame(CONT, END_HEADERS, 1, hdrs(GET)[6:]),
        "trailers": s0 + frame(HEADERS, END_HEADERS, 1, hdrs(
            [(":method", "POST"), (":scheme", "http"), (":authority", "app.test"),
             (":path", "/grpc.Svc/Call"), ("content-type", "application/grpc"),
             ("te", "trailers")]))
        + frame(DATA, 0, 1, b"\x00\x00\x00\x00\x02hi")
        + frame(HEADERS, END_STREAM | END_HEADERS, 1, hdrs([("x-checksum", "9")])),
        "control_frames": s0 + frame(PING, 0, 0, b"12345678") + frame(WINUP, 0, 0,
                                                                      struct.pack(">I", 65536))
        + frame(PRIORITY, 0, 1, struct.pack(">IB", 0, 15))
        + frame(HEADERS, END_STREAM | END_HEADERS | PRIO, 1, struct.pack(">IB", 0, 15) + hdrs(GET))
        + frame(RST, 0, 1, struct.pack(">I", 8)) + frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)),
        "connect": s0 + frame(HEADERS, END_HEADERS, 1, hdrs(
            [(":method", "CONNECT"), (":authority", "app.test:443")])),
        "padded_override": s0 + frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1,
                                      b"\x04" + hdrs(GET + [("x-cutover-pool", "green")])
                                      + b"\x00" * 4),
        "probe": frame(HEADERS, END_STREAM | END_HEADERS, 1, hdrs(
            [(":method", "GET"), (":scheme", "http"), (":authority", "10.0.0.5"),
             (":path", "/cutover-probe")])),
        "bad_content_length": s0 + frame(HEADERS, END_HEADERS, 1, hdrs(
            [(":method", "POST"), (":scheme", "http"), (":authority", "app.test"),
             (":path", "/"), ("content-length", "3")])) + frame(DATA, END_STREAM, 1, b"toolong"),
    }
    for i, (k, v) in enumerate(seeds.items()):
        write("h2_server", k, bytes([i % 8]) + v)


# ---- configuration, control, state ----------------------------------------------------------

def cfg():
    reset("cfg")
    valid = os.path.join(REPO, "tests", "fixtures", "config", "valid")
    for fn in ("minimal.json", "example.json", "control.json", "admin.json", "tls.json",
               "siem.json", "three_pools.json", "health_check_h2c.json", "ipv6.json",
               "probe_and_country.json", "routes_and_limits.json"):
        p = os.path.join(valid, fn)
        if os.path.exists(p):
            with open(p) as f:  # compact: smaller seeds, same content
                write("cfg", fn[:-5], json.dumps(json.load(f), separators=(",", ":")))
    invalid = os.path.join(REPO, "tests", "fixtures", "config", "invalid")
    for fn in ("bad_cidr.json", "duplicate_key.json", "bad_balance.json"):
        p = os.path.join(invalid, fn)
        if os.path.exists(p):
            with open(p, "rb") as f:
                write("cfg", "invalid_" + fn[:-5], f.read())


def commands():
    reset("commands")

    def req(i, op, args=None):
        r = {"v": 1, "id": str(i), "op": op}
        if args is not None:
            r["args"] = args
        return json.dumps(r, separators=(",", ":"))

    seqs = {
        "reads": [req(1, "version"), req(2, "status"), req(3, "status", {"route": "api"}),
                  req(4, "history", {"limit": 5})],
        "weights": [req(1, "set-weights", {"route": "api", "weights": {"blue": 50, "green": 50},
                                           "reason": "canary", "expect_generation": 1}),
                    req(2, "rollback", {"route": "api", "reason": "bad"}),
                    req(3, "promote", {"route": "web", "pool": "canary", "reason": "go"})],
        "endpoints": [req(1, "drain", {"route": "api", "pool": "blue",
                                       "endpoint": "127.0.0.1:9001", "reason": "maint"}),
                      req(2, "add-endpoint", {"route": "api", "pool": "green",
                                              "endpoint": "127.0.0.1:9004", "reason": "scale"}),
                      req(3, "remove-endpoint", {"route": "api", "pool": "blue",
                                                 "endpoint": "127.0.0.1:9002", "reason": "x"}),
                      req(4, "undrain", {"route": "api", "pool": "blue",
                                         "endpoint": "127.0.0.1:9001", "reason": "back"})],
        "shift": [req(1, "shift", {"route": "api", "to": "green", "steps": [10, 50, 100],
                                   "hold_s": 0, "gates": {"max_5xx_percent": 1,
                                                          "max_p99_ms": 500,
                                                          "min_requests": 0},
                                   "reason": "release"}),
                  "tick", req(2, "shift-pause", {"route": "api", "reason": "look"}),
                  req(3, "shift-resume", {"route": "api", "reason": "ok"}), "tick",
                  req(4, "shift-abort", {"route": "api", "reason": "stop"}),
                  req(5, "status", {"route": "api"})],
        "reload": [req(1, "reload", {"reason": "new config"}), req(2, "history")],
        "errors": ['{"id":"1","op":"nope"}', '{"op":"status"}', "[1,2]", "{bad json",
                   req(2, "set-weights", {"route": "api", "weights": {"blue": 60}}),
                   '{"v":2,"id":"3","op":"status"}', '{"id":"4","op":"status","x":1}'],
    }
    for i, (k, lines) in enumerate(seqs.items()):
        sel = 4 if i % 3 else 0x44  # admin; sometimes as an HTTPS peer
        write("commands", k, bytes([sel]) + "\n".join(lines).encode())
    write("commands", "viewer_denied", bytes([1]) + req(1, "rollback", {
        "route": "api", "reason": "x"}).encode())
    write("commands", "refused", bytes([0x80]) + req(1, "status").encode())


def state_doc(routes, generation=7):
    doc = {"format": 1, "generation": generation, "routes": routes}
    canon = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    doc["checksum"] = hashlib.sha256(canon.encode()).hexdigest()
    return json.dumps(doc, indent=2)


def state():
    reset("state")
    pools = {"blue": {"weight_bp": 9000, "stable_bp": 10000, "drained": ["10.0.0.1:8080"],
                      "added": [], "removed": ["[::1]:9000"]},
             "green": {"weight_bp": 1000, "stable_bp": 0, "drained": [],
                       "added": ["10.0.0.9:8080"], "removed": []}}
    plan = {"state": "running", "to": "green", "from": "blue", "steps_bp": [1000, 5000, 10000],
            "step": 0, "hold_s": 60, "max_5xx_bp": 100, "min_requests": 10,
            "started_ms": 1764000000000, "step_started_ms": 1764000000000, "reason": "release",
            "actor": "ci"}
    docs = {
        "two_routes": state_doc({"api": {"pools": pools, "order": ["blue", "green"]},
                                 "web": {"pools": {"blue": {"weight_bp": 10000,
                                                            "stable_bp": 10000, "drained": [],
                                                            "added": [], "removed": []}},
                                         "order": ["blue"]}}),
        "with_plan": state_doc({"api": {"pools": pools, "order": ["green", "blue"],
                                        "plan": plan}}, generation=42),
        "empty": state_doc({}, generation=1),
    }
    for k, v in docs.items():
        write("state", k, b"\x00" + v.encode())  # as written, checksum included
        write("state", k + "_fixsum", b"\x01" + v.encode())  # checksum recomputed


def leef():
    reset("leef")
    audit = {"type": "audit", "time": "2026-11-23T22:30:21.123Z", "cluster": "c", "region": "r",
             "actor": {"uid": 1000, "user": "CN=release,O=Bank", "address": "10.0.0.7:51234"},
             "role": "deployer", "op": "set-weights",
             "args": {"route": "api", "weights": {"blue": 90, "green": 10}, "reason": "x|y"},
             "result": "ok", "error": None, "generation_before": 4, "generation_after": 5,
             "weights_before": {"blue": 100, "green": 0}, "weights_after": {"blue": 90,
                                                                            "green": 10},
             "reason": "release 2026.11.3"}
    refused = dict(audit, result="refused", error={"code": "denied", "message": "role viewer"})
    event = {"type": "event", "time": "2026-11-23T22:30:21.123Z", "cluster": "c", "region": "r",
             "event": "reload_refused", "generation": 3,
             "errors": [{"path": "routes[0]", "message": "bad"}]}
    tls = {"type": "event", "time": "2026-11-23T22:30:21.123Z", "event": "admin_tls_refused",
           "peer": "[::1]:4433", "subject": "CN=x\\, y", "reason": "unknown ca"}
    # The first finding of fuzz_leef: an empty key gave the attribute "=ok".
    empty_key = {"type": "audit", "time": "2026-11-23T22:30:21.123Z", "op": "status",
                 "result": "ok", "": "ok", "actor": {"": 1}}
    for i, (k, rec, kind) in enumerate([("audit_ok", audit, 0), ("audit_refused", refused, 0),
                                        ("event_reload_refused", event, 1),
                                        ("event_tls", tls, 1), ("empty_key", empty_key, 0)]):
        write("leef", k, bytes([kind | (i << 1), 16 + i]) + json.dumps(rec).encode())


def admin_http():
    reset("admin_http")
    body = '{"v":1,"id":"1","op":"status"}'
    seeds = {
        "control": "CN=release-pipeline,OU=Platform,O=Bank\nPOST /v1/control HTTP/1.1\r\n"
                   "Host: cutover-admin:9443\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n%s" % (len(body), body),
        "status_route": "CN=dashboard,OU=SRE,O=Bank\nGET /v1/status?route=api HTTP/1.1\r\n"
                        "Host: a\r\n\r\nGET /v1/status HTTP/1.1\r\nHost: a\r\n"
                        "Connection: close\r\n\r\n",
        "bad_method": "CN=oncall-alice,OU=SRE,O=Bank\nDELETE /v1/control HTTP/1.1\r\n"
                      "Host: a\r\n\r\n",
        "bad_query": "CN=nobody\nPOST /v1/control?x=1 HTTP/1.1\r\nHost: a\r\n"
                     "Content-Length: 9\r\n\r\nforbidden",
        "not_found": "\nGET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        "chunked": "CN=x\nPOST /v1/control HTTP/1.1\r\nHost: a\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    }
    for k, v in seeds.items():
        write("admin_http", k, v)


# ---- dictionaries ---------------------------------------------------------------------------

HTTP_TOKENS = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "CONNECT", "TRACE", "PATCH", "HTTP/1.1",
    "HTTP/1.0", "HTTP/2.0", " HTTP/1.1\r\n", "\r\n", "\r\n\r\n", "\n", ": ", ":", ";", ",",
    " ", "\t", "=", "\"", "?", "#", "*", "/", "http://", "https://", "Host", "Content-Length",
    "Transfer-Encoding", "chunked", "gzip, chunked", "identity", "Connection", "close",
    "keep-alive", "Upgrade", "upgrade", "websocket", "h2c", "HTTP2-Settings", "Keep-Alive",
    "Proxy-Connection", "TE", "trailers", "Trailer", "Expect", "100-continue", "Cookie",
    "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id", "x-original-url",
    "x-original-host", "x-cutover-pool", "green", "blue", "x-device-id", "/cutover-probe",
    "0\r\n\r\n", "5\r\nhello\r\n", ";ext=1", "ffffffffffffffff", "0000000000000001",
    "200 OK", "204", "304", "101", "100 Continue", "HTTP/1.1 200 OK\r\n", "Content-Type",
    "application/json", "Allow", "Cache-Control",
]
ADMIN_TOKENS = ["/v1/control", "/v1/status", "?route=", "route=api", "CN=release-pipeline,OU=Platform,O=Bank",
                "CN=oncall-alice,OU=SRE,O=Bank", "CN=dashboard,OU=SRE,O=Bank", "bad_request",
                "invalid_argument", "unsupported_version", "unknown_op", "denied", "forbidden",
                "not_found", "method_not_allowed", "conflict", "too_large", "busy", "internal"]
H2_TOKENS = [
    # frame headers: length 0, type, flags, stream 1 / 0
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", b"\x00\x00\x00\x04\x01\x00\x00\x00\x00",
    b"\x00\x00\x08\x06\x00\x00\x00\x00\x00", b"\x00\x00\x04\x08\x00\x00\x00\x00\x00",
    b"\x00\x00\x04\x03\x00\x00\x00\x00\x01", b"\x00\x00\x08\x07\x00\x00\x00\x00\x00",
    b"\x00\x00\x05\x02\x00\x00\x00\x00\x01", b"\x01\x05\x00\x00\x00\x01",
    b"\x01\x04\x00\x00\x00\x01", b"\x00\x01\x00\x00\x00\x01", b"\x00\x00\x00\x00\x01",
    b"\x09\x04\x00\x00\x00\x01", b"\x00\x00\x00\x03", b"\x00\x00\x00\x05",
    # frame types and flags
    b"\x00", b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"\x06", b"\x07", b"\x08", b"\x09",
    b"\x0c", b"\x24", b"\x2d",
    # SETTINGS entries
    b"\x00\x01\x00\x00\x10\x00", b"\x00\x02\x00\x00\x00\x00", b"\x00\x03\x00\x00\x00\x64",
    b"\x00\x04\x00\x00\xff\xff", b"\x00\x04\x7f\xff\xff\xff", b"\x00\x05\x00\x00\x40\x00",
    b"\x00\x06\x00\x00\x20\x00", b"\x00\x08\x00\x00\x00\x01",
    # window increments, error codes
    b"\x7f\xff\xff\xff", b"\x00\x00\x00\x01", b"\x00\x00\x00\x08",
    # HPACK: static table indexes (:method GET/POST, :path /, /index.html, :scheme http/https,
    # :status), literal with incremental indexing of :authority / new names, table size update
    b"\x82", b"\x83", b"\x84", b"\x85", b"\x86", b"\x87", b"\x88", b"\x41", b"\x44", b"\x40",
    b"\x00", b"\x10", b"\x3f\xe1\x1f", b"\x20", b"\x0f\x2b",
    b":method", b":path", b":scheme", b":authority", b":status", b":protocol", b"te",
    b"trailers", b"content-length", b"cookie", b"host", b"connection", b"x-cutover-pool",
    b"CONNECT", b"/cutover-probe",
]
CFG_KEYS = """access_log address admin alpn audit_file balance base_ejection_ms body_idle_ms ca cert
certificates client_address client_auth client_ca client_certificate client_header_ms
client_idle_ms cluster connect_timeout_ms consecutive_failures control cookie country_database crl
delimiter dns_refresh_ms drain_ms enabled endpoints expected_status facility framing gid group
header health_check healthy_threshold host hostname hosts idle_timeout_ms interval_ms jitter_ms key
limits listeners max_5xx_percent max_clients max_ejection_ms max_ejection_percent max_header_bytes
max_queue_bytes metrics min_requests min_version mode name outlier_detection override path
path_prefix pem pools probe_path protocol protocols region request_timeout_ms role roles routes
server_name shutdown_delay_ms siem slow_start_ms socket state_file sticky subject timeout_ms
timeouts tls trusted_peers trusted_proxies trusted_subjects uid unhealthy_threshold
upstream_connect_ms upstream_header_ms upstream_idle_ms vendor watchdog weights window_s workers
write_timeout_ms max_request_line max_headers max_connections upstream_idle_per_endpoint
buffer_bytes max_5xx_bp upstream_queue_ms upstream_connections_per_endpoint
upstream_queue_per_endpoint""".split()
CFG_VALUES = ["least_outstanding", "round_robin", "http1", "h2c", "h2", "http/1.1", "required",
              "optional", "none", "octet-counting", "newline", "viewer", "operator", "deployer",
              "admin", "0660", "x09", "127.0.0.1:8080", "[::1]:8443", "10.0.0.0/8", "::1/128",
              "*.example.com", "/healthz", "blue", "green", "1.2", "1.3", "12.5", "99.99",
              "true", "false", "null", "-1", "0", "4294967296", "1e400"]
CTL_TOKENS = ["v", "id", "op", "args", "route", "pool", "endpoint", "weights", "reason",
              "expect_generation", "limit", "to", "steps", "hold_s", "gates", "max_5xx_percent",
              "max_p99_ms", "min_requests", "version", "status", "history", "rollback", "drain",
              "undrain", "set-weights", "promote", "shift", "shift-pause", "shift-resume",
              "shift-abort", "add-endpoint", "remove-endpoint", "reload", "api", "web", "checked",
              "blue", "green", "canary", "127.0.0.1:9001", "127.0.0.1:9003", "[::1]:80",
              "tick", "{}", "[]", "null", "true", "100", "33.33", "0.01", "-1"]
STATE_TOKENS = ["format", "generation", "routes", "checksum", "pools", "order", "plan",
                "weight_bp", "stable_bp", "drained", "added", "removed", "state", "running",
                "paused", "rolled_back", "aborted", "promoted", "from", "to", "steps_bp", "step",
                "hold_s", "max_5xx_bp", "max_p99_ms", "min_requests", "started_ms",
                "step_started_ms", "reason", "actor", "rb_gate", "rb_value", "rb_limit",
                "rb_at_ms", "10000", "0", "-1", "18446744073709551615", "1e308", "null", "[]",
                "{}", "10.0.0.1:8080", "[::1]:9000"]
LEEF_TOKENS = ["type", "audit", "event", "time", "2026-11-23T22:30:21.123Z", "cluster", "region",
               "actor", "user", "uid", "address", "peer", "role", "op", "args", "result", "ok",
               "refused", "error", "code", "denied", "message", "generation_before",
               "generation_after", "weights_before", "weights_after", "reason",
               "upstream_tls_failed", "admin_tls_refused", "tls_reload_refused",
               "reload_refused", "admin_events_suppressed", "admin_connection_refused",
               "admin_request_timeout", "state_discarded", "tls_loaded", "tls_reloaded",
               "reload", "started", "stopped", "audit_failed", "rollback", "status", "auto",
               "|", "\\\\", "=", "^", "\\t", "\\n", "\\u0000", "\\u007f", "[::1]:443",
               "1.7976931348623157e308"]  # JSON escapes inside strings


def dict_line(tok):
    if isinstance(tok, str):
        tok = tok.encode()
    out = []
    for b in tok:
        if b == 0x22 or b == 0x5c or b < 0x20 or b >= 0x7f:
            out.append("\\x%02x" % b)
        else:
            out.append(chr(b))
    return '"%s"' % "".join(out)


def write_dict(harness, comment, tokens):
    seen = []
    for t in tokens:
        if t not in seen:
            seen.append(t)
    with open(os.path.join(HERE, harness + ".dict"), "w") as f:
        f.write("# %s.dict - libFuzzer dictionary for fuzz_%s (written by make_corpus.py).\n"
                "# %s\n" % (harness, harness, comment))
        for t in seen:
            f.write(dict_line(t) + "\n")


def json_strs(words):
    return ['"%s"' % w for w in words] + ['"%s":' % w for w in words]


def dicts():
    write_dict("h1_parse", "HTTP/1.1 methods, versions, separators, framing fields.", HTTP_TOKENS)
    write_dict("h1_conn", "HTTP/1.1 methods, versions, separators, framing fields.", HTTP_TOKENS)
    write_dict("chunked", "Chunk-size lines, extensions, trailers.",
               ["\r\n", "0\r\n", "0\r\n\r\n", ";", ";ext=", "=", "\"", "\t", " ",
                "ffffffff", "FFFFFFFFFFFFFFFF", "4000000000000000", "1000", "X-Checksum: ",
                ": ", "Trailer", "Content-Length"])
    write_dict("admin_http", "HTTP/1.1 tokens, admin API resources, subjects and reply codes.",
               HTTP_TOKENS + ADMIN_TOKENS)
    write_dict("h2_server", "HTTP/2 frame headers, types, flags, SETTINGS, HPACK bytes and names.",
               H2_TOKENS)
    write_dict("cfg", "Every configuration key (config/cfg_parse.c) and typical values.",
               json_strs(CFG_KEYS) + json_strs(CFG_VALUES) + CFG_VALUES[-7:])
    write_dict("commands", "Control protocol fields, operations and arguments "
               "(docs/control-protocol.md).", json_strs(CTL_TOKENS) + ["tick", "\n"])
    write_dict("state", "State file keys (control/state.c) and plan keys (control/plan.c).",
               json_strs(STATE_TOKENS))
    write_dict("leef", "Audit record and event keys, event names, LEEF separators.",
               json_strs(LEEF_TOKENS))


def main():
    dicts()
    h1_parse()
    h1_conn()
    chunked()
    h2_server()
    cfg()
    commands()
    state()
    leef()
    admin_http()


if __name__ == "__main__":
    main()

"""The metrics and health listener: /metrics parses under a strict Prometheus text-format (0.0.4)
parser and its counters match the requests sent; /healthz; /readyz turns 503 on SIGTERM while
the proxy keeps serving through shutdown_delay_ms; a metrics address that cannot be bound stops
start-up; reload may not move it."""
import http.client
import math
import re
import signal
import subprocess

from harness import (HOST, check, cutover_bin, free_port, make_config, raw_exchange, start_cutover,
                     start_upstream, wait_port, wait_until, run_bin)

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class ParseError(AssertionError):
    pass


def parse_labels(text, lineno):
    """{...} body -> dict; strict: quoted values, only \\\\ \\" \\n escapes, no duplicates."""
    labels, i = {}, 0
    while i < len(text):
        eq = text.find("=", i)
        if eq < 0:
            raise ParseError("line %d: label without '='" % lineno)
        name = text[i:eq]
        if not LABEL.match(name) or name in labels:
            raise ParseError("line %d: bad or duplicate label name %r" % (lineno, name))
        if eq + 1 >= len(text) or text[eq + 1] != '"':
            raise ParseError("line %d: label value not quoted" % lineno)
        j, val = eq + 2, []
        while True:
            if j >= len(text):
                raise ParseError("line %d: unterminated label value" % lineno)
            ch = text[j]
            if ch == "\\":
                nxt = text[j + 1:j + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ParseError("line %d: bad escape \\%s" % (lineno, nxt))
                val.append("\n" if nxt == "n" else nxt)
                j += 2
            elif ch == '"':
                break
            else:
                val.append(ch)
                j += 1
        labels[name] = "".join(val)
        i = j + 1
        if i < len(text):
            if text[i] != ",":
                raise ParseError("line %d: expected ',' between labels" % lineno)
            i += 1
    return labels


def parse_value(v, lineno):
    if v in ("+Inf", "-Inf", "NaN"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.match(r"[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)\Z", v):
        raise ParseError("line %d: bad value %r" % (lineno, v))
    return float(v)


def parse_prometheus(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, value)]}}; raises on any
    deviation from the text format."""
    if not text.endswith("\n"):
        raise ParseError("the document must end with a newline")
    fams, series, current = {}, set(), None
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.match(name):
                    raise ParseError("line %d: bad metric name %r" % (lineno, name))
                f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
                if f["samples"]:
                    raise ParseError("line %d: %s after samples of %s" % (lineno, parts[1], name))
                key = parts[1].lower()
                if f[key] is not None:
                    raise ParseError("line %d: second %s for %s" % (lineno, parts[1], name))
                val = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE" and val not in TYPES:
                    raise ParseError("line %d: bad type %r" % (lineno, val))
                f[key] = val
                current = name
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?\Z", line)
        if not m:
            raise ParseError("line %d: not a sample: %r" % (lineno, line))
        name, labels = m.group(1), parse_labels(m.group(3) or "", lineno)
        value = parse_value(m.group(4), lineno)
        fam = name
        if current and name in (current + "_bucket", current + "_sum", current + "_count") \
                and fams[current]["type"] in ("histogram", "summary"):
            fam = current
        if fam not in fams or fams[fam]["type"] is None:
            raise ParseError("line %d: sample of %s without a TYPE line" % (lineno, name))
        if fam != current:
            raise ParseError("line %d: %s interleaved with another family" % (lineno, name))
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ParseError("line %d: duplicate series %r" % (lineno, key))
        series.add(key)
        if fams[fam]["type"] == "counter" and (value < 0 or math.isnan(value)):
            raise ParseError("line %d: counter %s negative or NaN" % (lineno, name))
        fams[fam]["samples"].append((name, labels, value))
    for name, f in fams.items():
        if f["type"] == "histogram":
            check_histogram(name, f["samples"])
    return fams


def check_histogram(name, samples):
    groups = {}
    for n, labels, v in samples:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if n == name + "_bucket":
            if "le" not in labels:
                raise ParseError("%s bucket without le" % name)
            g["buckets"].append((parse_value(labels["le"], 0), v))
        elif n == name + "_sum":
            g["sum"] = v
        elif n == name + "_count":
            g["count"] = v
    for rest, g in groups.items():
        les = [le for le, _ in g["buckets"]]
        if not les or les[-1] != math.inf or les != sorted(les):
            raise ParseError("%s%r: buckets must ascend and end with +Inf: %r" % (name, rest, les))
        counts = [v for _, v in g["buckets"]]
        if counts != sorted(counts):
            raise ParseError("%s%r: buckets are not cumulative: %r" % (name, rest, counts))
        if g["count"] is None or g["sum"] is None or g["count"] != counts[-1]:
            raise ParseError("%s%r: _count must equal the +Inf bucket" % (name, rest))


def get(port, path):
    c = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("content-type"), r.read().decode()
    finally:
        c.close()


def sample(fams, fam, name=None, **labels):
    for n, ls, v in fams[fam]["samples"]:
        if n == (name or fam) and all(ls.get(k) == x for k, x in labels.items()):
            return v
    raise AssertionError("no sample %s %r" % (name or fam, labels))


def test_strict_parser_rejects_malformed_documents():
    """The parser used below must be able to fail."""
    good = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\"} 1\n"
    parse_prometheus(good)
    bad = [good[:-1],                                            # no final newline
           "a_total 1\n",                                        # no TYPE
           good + "a_total{k=\"v\"} 2\n",                        # duplicate series
           good.replace('k="v"', 'k=v'),                          # unquoted
           good.replace('k="v"', 'k="\\x"'),                      # bad escape
           good.replace("counter", "countr"),                     # bad type
           "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
           "h_sum 1\nh_count 1\n"]                                # not cumulative
    for doc in bad:
        try:
            parse_prometheus(doc)
        except ParseError:
            continue
        raise AssertionError("accepted a malformed document: %r" % doc)


def test_metrics_counters_match_requests():
    blue, green = start_upstream("blue"), start_upstream("green")
    port, mport = free_port(), free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 50, "green": 50},
                      metrics={"address": "%s:%d" % (HOST, mport)},
                      sticky={"header": "x-device-id"})
    cx = start_cutover(cfg)
    wait_port(mport, 10.0, cx.popen)  # the metrics listener opens after the proxy's
    st, _, body = get(mport, "/healthz")
    check(st == 200 and body == "ok\n", "healthz %s %r", st, body)
    st, _, body = get(mport, "/readyz")
    check(st == 200, "readyz %s %r", st, body)
    # device ids that stick to each pool: sent repeatedly, they make exact per-pool counts
    sent = {"blue": {"2xx": 0, "4xx": 0, "5xx": 0}, "green": {"2xx": 0, "4xx": 0, "5xx": 0}}
    for i in range(60):
        path = "/status/404" if i % 10 == 3 else "/status/503" if i % 10 == 7 else "/n"
        r = raw_exchange(port, ("GET %s HTTP/1.1\r\nHost: app.test\r\nx-device-id: d%d\r\n\r\n"
                                % (path, i % 6)).encode())
        pool = r.header("x-upstream")
        sent[pool]["%dxx" % (r.status // 100)] += 1
    check(sent["blue"]["2xx"] and sent["green"]["2xx"], "both pools must get traffic: %r", sent)
    st, ctype, text = get(mport, "/metrics")
    check(st == 200 and ctype.startswith("text/plain; version=0.0.4"), "metrics %s %r", st, ctype)
    fams = parse_prometheus(text)
    for pool in ("blue", "green"):
        for cls in ("2xx", "4xx", "5xx"):
            got = sample(fams, "cutover_requests_total", route="app", pool=pool, **{"class": cls})
            check(got == sent[pool][cls], "%s %s: metrics %s, sent %s", pool, cls, got,
                  sent[pool][cls])
        total = sum(sent[pool].values())
        got = sample(fams, "cutover_request_duration_seconds",
                     "cutover_request_duration_seconds_count", route="app", pool=pool)
        check(got == total, "%s histogram count %s, sent %s", pool, got, total)
        check(sample(fams, "cutover_pool_weight_ratio", route="app", pool=pool) == 0.5,
              "weight of %s", pool)
    check(sample(fams, "cutover_ready") == 1, "ready gauge")
    version = run_bin([cutover_bin(), "--version"], capture_output=True, text=True,
                      timeout=10).stdout.split()[-1]
    check(sample(fams, "cutover_info", cluster=cfg["cluster"], region=cfg["region"],
                 version=version) == 1, "cutover_info for %s %s %s", cfg["cluster"],
          cfg["region"], version)
    check(fams["cutover_requests_total"]["type"] == "counter" and
          fams["cutover_request_duration_seconds"]["type"] == "histogram", "types")

    st, _, body = get(mport, "/nope")
    check(st == 404, "unknown path %s", st)


def test_readyz_fails_first_on_sigterm():
    blue, green = start_upstream("blue"), start_upstream("green")
    port, mport = free_port(), free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      metrics={"address": "%s:%d" % (HOST, mport)},
                      timeouts={"shutdown_delay_ms": 1500})
    cx = start_cutover(cfg)
    wait_port(mport, 10.0, cx.popen)
    check(get(mport, "/readyz")[0] == 200, "ready before SIGTERM")
    cx.popen.send_signal(signal.SIGTERM)
    st = wait_until(lambda: get(mport, "/readyz")[0] == 503 and 503, 2.0, what="readyz 503")
    check(st == 503, "readyz during the shutdown delay")
    # ... while the proxy still serves (the gateway needs time to notice)
    r = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    check(r.status == 200, "served during the shutdown delay: %s", r.status)
    text = get(mport, "/metrics")[2]
    check(sample(parse_prometheus(text), "cutover_ready") == 0, "ready gauge while draining")
    cx.wait_exit(10.0)


def test_metrics_address_refused():
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    busy = free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      metrics={"address": "%s:%d" % (HOST, port)})  # same port as the proxy
    cx = start_cutover(cfg, wait=False)
    rc = cx.wait_exit(10.0)
    check(rc != 0 and "metrics.address" in cx.stderr_text(), "rc %s %s", rc, cx.stderr_text())
    # reload may not move the listener
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      metrics={"address": "%s:%d" % (HOST, busy)})
    cx = start_cutover(cfg)
    wait_port(busy, 10.0, cx.popen)
    cfg["metrics"]["address"] = "%s:%d" % (HOST, free_port())
    cx.rewrite(cfg)
    ev = cx.reload()
    check(ev["event"] == "reload_refused", "reload moved the metrics listener: %r", ev)
    check(any(e["path"] == "metrics.address" for e in ev["errors"]), "refusal %r", ev)

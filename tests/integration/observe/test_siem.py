"""The SIEM feed (docs/configuration.md, "siem"): audit records and security events sent to a
TLS syslog receiver (siem_receiver.py, a stand-in for QRadar's TLS Syslog log source) as LEEF 2.0
events in RFC 5424 messages, with mutual TLS against the test CA. Every message is parsed
strictly (siem_receiver.parse_rfc5424 / parse_leef) and checked against the documented format:
syslog header, PRI from the facility and the LEEF severity, LEEF header, attribute order and
values (the JSON record flattened, unsafe characters replaced by spaces), framing (octet
counting, newline). A dead or stuck SIEM never slows a control acknowledgement or a request;
messages queued during an outage arrive once the SIEM is back; `--check` refuses bad `siem`
sections at their JSON path. Certificates come from test_tls.Pki (made at test time).
"""
import json
import os
import pwd
import re
import socket
import subprocess
import sys
import threading
import time

from harness import (HOST, HarnessError, Proc, _register, check, free_port, json_lines,
                     make_config, raw_exchange, require_bin, run_check, start_cutover, start_upstream,
                     unique, wait_until, write_config, run_bin)
from siem_receiver import parse_leef, parse_rfc5424
from test_control import Ctl, control_section, wait_ctl
from test_metrics import get, parse_prometheus, sample
from test_tls import Pki
from test_upstream_tls import config_with_tls_green, tls_upstream

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/integration
SIEM_PY = os.path.join(HERE, "siem_receiver.py")

CLIENT_SUBJECT = "commonName=client one"  # test_tls.Pki's "client" leaf, as the receiver logs it
DEV_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"
SECURITY_EVENTS = {"upstream_tls_failed", "admin_tls_refused", "admin_connection_refused",
                   "admin_request_timeout", "admin_events_suppressed", "tls_loaded",
                   "tls_reloaded", "tls_reload_refused", "reload", "reload_refused",
                   "state_discarded", "audit_failed", "started", "stopped",
                   "admin_connection_evicted", "control_connection_evicted",
                   "control_request_timeout", "control_events_suppressed", "state_refused",
                   "state_unfinished_change", "audit_gap", "audit_torn_line"}
FIRST_KEYS = ["devTime", "devTimeFormat", "cat", "sev"]
KEY_RE = re.compile(r"[A-Za-z0-9_.]+\Z")
AUDIT_ID_RE = re.compile(r"audit\.([a-z][a-z-]*)\.(ok|refused|aborted)\Z")


# --- the receiver process ----------------------------------------------------------------------

class SiemReceiver(Proc):
    kind = "siem"

    def __init__(self, popen, port, log, framing):
        super().__init__(popen)
        self.port = port
        self.log = log
        self.framing = framing
        self.addr = "%s:%d" % (HOST, port)

    def records(self):
        """Every record logged so far (complete lines only)."""
        return json_lines(self.log)

    def stderr_lines(self):
        try:
            with open(self.log + ".stderr", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def accepts(self):
        """TCP connections accepted so far."""
        return sum(1 for l in self.stderr_lines() if l.startswith("accept "))

    def stop(self):
        code = self.terminate(timeout=5.0)
        check(code == 0, "siem_receiver.py exited with %s on SIGTERM", code)
        return code


def start_siem_receiver(pki, port=None, framing="octet-counting", no_read=False,
                        client_ca=True):
    """Starts siem_receiver.py with the Pki's server certificate ("app.test", 127.0.0.1) and,
    unless client_ca is False, a client certificate from the Pki's root CA required. Returns once
    it printed "ready" (no probe connection: it would count as a connection of the receiver)."""
    port = port or free_port()
    log = unique("siem.log")
    open(log, "w").close()
    args = [sys.executable, SIEM_PY, "--port", str(port), "--log", log,
            "--tls-cert", pki.p("server.chain.crt"), "--tls-key", pki.p("server.key"),
            "--framing", framing]
    if client_ca:
        args += ["--tls-client-ca", pki.p("ca.crt")]
    if no_read:
        args.append("--no-read")
    errf = open(log + ".stderr", "w")
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf,
                         text=True)
    errf.close()
    rcv = SiemReceiver(p, port, log, framing)
    _register(rcv)
    got = []
    t = threading.Thread(target=lambda: got.append(p.stdout.readline()), daemon=True)
    t.start()
    t.join(10.0)
    if not got or got[0].strip() != "ready":
        rcv.kill()
        with open(log + ".stderr") as f:
            err = f.read()[-2000:]
        raise HarnessError("siem_receiver.py did not start on port %d: %r %s" % (port, got, err))
    return rcv


# --- configuration -----------------------------------------------------------------------------

def siem_section(pki, port, **extra):
    s = {"address": "%s:%d" % (HOST, port),
         "tls": {"ca": pki.p("ca.crt"), "server_name": "app.test",
                 "client_certificate": {"cert": pki.p("client.crt"),
                                        "key": pki.p("client.key")}}}
    s.update(extra)
    return s


def my_control():
    return control_section(roles=[{"uid": os.getuid(), "role": "admin"}])


def my_user():
    return pwd.getpwuid(os.getuid()).pw_name


_version = None


def cutover_version():
    """The version `cutover --version` prints (the LEEF header's product version)."""
    global _version
    if _version is None:
        p = run_bin([require_bin(), "--version"], capture_output=True, text=True, timeout=10)
        words = p.stdout.split()
        check(p.returncode == 0 and len(words) == 2 and words[0] == "cutover",
              "cutover --version: rc %s %r", p.returncode, p.stdout)
        _version = words[1]
    return _version


def metrics(mport):
    st, _, body = get(mport, "/metrics")
    check(st == 200, "/metrics: status %s", st)
    return parse_prometheus(body)


def siem_metric(mport, name, **labels):
    return sample(metrics(mport), name, **labels)


# --- messages ------------------------------------------------------------------------------------

SEV_TO_SYSLOG = {1: 6, 2: 6, 3: 5, 4: 5, 5: 4, 6: 4, 7: 3, 8: 3, 9: 2, 10: 2}


class Msg:
    """One received message, parsed strictly (raises AssertionError with the raw text)."""

    def __init__(self, rec, index):
        self.rec = rec
        self.index = index
        check(rec.get("framing_ok") is True and not rec.get("eof"),
              "record %d (conn %s) is a framing violation: %r", index, rec.get("conn"),
              rec.get("raw", "")[:400])
        check(rec.get("utf8_ok") is True, "record %d is not valid UTF-8: %r", index,
              rec["raw"][:400])
        try:
            self.sys = parse_rfc5424(rec["raw"])
        except ValueError as e:
            raise AssertionError("record %d is not a strict RFC 5424 message (%s): %r"
                                 % (index, e, rec["raw"][:600]))
        try:
            self.head, self.attrs = parse_leef(self.sys["msg"])
        except ValueError as e:
            raise AssertionError("record %d: the MSG is not strict LEEF 2.0 (%s): %r"
                                 % (index, e, self.sys["msg"][:600]))
        self.keys = [k for k, _ in self.attrs]
        self.a = dict(self.attrs)

    @property
    def event_id(self):
        return self.head["event_id"]

    def __repr__(self):
        return "<record %d: %r>" % (self.index, self.rec["raw"][:700])


def messages(rcv):
    return [Msg(r, i) for i, r in enumerate(rcv.records())]


def leef_value(v, delim):
    """What the docs say a JSON value becomes as a LEEF value: strings as they are, numbers and
    booleans as JSON, null empty, arrays compact JSON; then the delimiter, '|', '\\', tab, CR, LF
    and other control characters replaced by a space."""
    if v is None:
        s = ""
    elif isinstance(v, str):
        s = v
    elif isinstance(v, list):
        s = json.dumps(v, separators=(",", ":"))
    else:
        s = json.dumps(v)
    return "".join(" " if (c == delim or c in "|\\" or ord(c) < 32 or ord(c) == 127) else c
                   for c in s)


def flatten(obj, prefix=""):
    """[(dotted key, leaf value)] in order; objects flattened with '.', arrays kept whole."""
    out = []
    for k, v in obj.items():
        key = prefix + k
        if isinstance(v, dict) and v:
            out += flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def check_common(m, cx, hostname, vendor, delim, facility=13):
    """What every message must satisfy (docs/configuration.md, "siem", "Message format")."""
    raw = m.rec["raw"]
    bad = [c for c in raw if (ord(c) < 32 or ord(c) == 127) and c != delim]
    check(not bad, "%r: control characters %r in the message", m, bad)
    check(m.rec["bytes"] <= 8192, "%r: %d bytes, over 8192", m, m.rec["bytes"])
    s = m.sys
    check(s["app"] == "cutover", "%r: APP-NAME %r", m, s["app"])
    check(s["hostname"] == hostname, "%r: HOSTNAME %r, expected %r", m, s["hostname"], hostname)
    check(s["procid"] == str(cx.pid), "%r: PROCID %r, expected cutover's pid %d", m,
          s["procid"], cx.pid)
    check(s["msgid"] in ("audit", "security"), "%r: MSGID %r", m, s["msgid"])
    check(s["sd"] == "-", "%r: structured data %r", m, s["sd"])
    h = m.head
    check(h["vendor"] == vendor and h["product"] == "cutover" and
          h["product_version"] == cutover_version(),
          "%r: LEEF vendor/product/version %r/%r/%r, expected %r/cutover/%r", m, h["vendor"],
          h["product"], h["product_version"], vendor, cutover_version())
    check(h["delimiter"] == delim, "%r: LEEF delimiter %r (field %r), expected %r", m,
          h["delimiter"], h["delimiter_field"], delim)
    check(m.keys[:4] == FIRST_KEYS, "%r: the first attributes are %r, expected %r", m,
          m.keys[:4], FIRST_KEYS)
    check(len(set(m.keys)) == len(m.keys), "%r: duplicate keys %r", m, m.keys)
    bad_keys = [k for k in m.keys if not KEY_RE.match(k)]
    check(not bad_keys, "%r: keys outside letters, digits, '_', '.': %r", m, bad_keys)
    a = m.a
    check(a["devTime"] == s["timestamp"], "%r: devTime %r != the syslog TIMESTAMP %r", m,
          a["devTime"], s["timestamp"])
    check(a["devTimeFormat"] == DEV_TIME_FORMAT, "%r: devTimeFormat %r", m, a["devTimeFormat"])
    check(a["cat"] == s["msgid"], "%r: cat %r but MSGID %r", m, a["cat"], s["msgid"])
    check(re.match(r"(?:[1-9]|10)\Z", a["sev"]) is not None, "%r: sev %r not 1..10", m, a["sev"])
    sev = int(a["sev"])
    want_pri = facility * 8 + SEV_TO_SYSLOG[sev]
    check(s["pri"] == want_pri, "%r: PRI %d, expected %d*8 + %d (sev %d) = %d", m, s["pri"],
          facility, SEV_TO_SYSLOG[sev], sev, want_pri)
    if s["msgid"] == "audit":
        am = AUDIT_ID_RE.match(m.event_id)
        check(am is not None, "%r: audit EventID %r", m, m.event_id)
        check(a.get("op") == am.group(1) and a.get("result") == am.group(2),
              "%r: EventID %r but op=%r result=%r", m, m.event_id, a.get("op"), a.get("result"))
    else:
        check(m.event_id in SECURITY_EVENTS, "%r: EventID %r is not a documented security "
              "event (only these go to the SIEM: %s)", m, m.event_id, sorted(SECURITY_EVENTS))
    if "truncated" in a:
        check(a["truncated"] == "true" and m.keys[-1] == "truncated",
              "%r: truncated attribute %r", m, a["truncated"])


def check_fields(m, record, delim, skip_prefixes=()):
    """The record's fields (the stdout JSON line) are the message's attributes after the
    predefined ones, in the record's order, with the documented value rules. time is devTime;
    type and event (the EventID) and the keys under skip_prefixes are not required."""
    check(m.a["devTime"] == record["time"], "%r: devTime %r, the record's time %r", m,
          m.a["devTime"], record["time"])
    want = [(k, v) for k, v in flatten(record)
            if k not in ("type", "time", "event") and not k.startswith(tuple(skip_prefixes))]
    missing = [k for k, _ in want if k not in m.a]
    check(not missing, "%r: fields of the record missing: %r (record %r)", m, missing, record)
    wrong = [(k, m.a[k], leef_value(v, delim)) for k, v in want if m.a[k] != leef_value(v, delim)]
    check(not wrong, "%r: attribute values (key, got, expected): %r", m, wrong)
    pos = [m.keys.index(k) for k, _ in want]
    check(pos == sorted(pos), "%r: attributes not in the record's order: %r", m,
          [m.keys[i] for i in pos])
    check(min(pos) >= 4, "%r: record fields before devTime/devTimeFormat/cat/sev", m)


def find(msgs, event_id, **attrs):
    return [m for m in msgs if m.event_id == event_id and
            all(m.a.get(k) == v for k, v in attrs.items())]


def stdout_audit(cx, result, reason):
    recs = [d for d in cx.log.poll() if d.get("type") == "audit" and d.get("result") == result
            and d.get("reason") == reason]
    check(len(recs) == 1, "audit records on stdout with result %s and reason %r: %r", result,
          reason, recs)
    return recs[0]


def get_ok(port, what, limit=1.5):
    t0 = time.monotonic()
    r = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", timeout=limit + 1.0)
    dt = time.monotonic() - t0
    check(r.status == 200, "%s: GET / answered %s", what, r.status)
    check(dt < limit, "%s: GET / took %.2f s (limit %.1f s)", what, dt, limit)


# --- 1. audit records and security events ----------------------------------------------------

def test_audit_and_security_events_reach_the_siem():
    """An allowed and a refused set-weights, and the started and stopped events, reach the SIEM as
    documented, on one mutual-TLS connection; the metrics count what was sent."""
    pki = Pki()
    rcv = start_siem_receiver(pki)
    blue, green = start_upstream("blue"), start_upstream("green")
    port, mport = free_port(), free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      control=my_control(), metrics={"address": "%s:%d" % (HOST, mport)},
                      siem=siem_section(pki, rcv.port, vendor="Bank",
                                        hostname="cutover-test-0"))
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    ev = cx.wait_event("siem_connected", timeout=10.0)
    check(ev.get("address") == rcv.addr and "app.test" in (ev.get("peer") or ""),
          "siem_connected event %r (address %s, peer: the receiver's certificate subject)", ev,
          rcv.addr)
    reason_ok = "INC-4242 siem test"
    reason_refused = "to a route that does not exist"
    with Ctl(path) as c:
        rep = c.set_weights(70, 30, reason=reason_ok)
        check(rep.get("ok") is True, "set-weights refused: %r", rep)
        rep = c.call("set-weights", {"route": "nope", "weights": {"blue": 50, "green": 50},
                                     "reason": reason_refused})
        check(rep.get("ok") is False and rep["error"]["code"] == "not_found",
              "set-weights on an unknown route: %r", rep)

    def arrived():
        ms = messages(rcv)
        if find(ms, "audit.set-weights.ok", reason=reason_ok) and \
                find(ms, "audit.set-weights.refused", reason=reason_refused) and \
                find(ms, "started"):
            return ms
        return None
    msgs = wait_until(arrived, 15.0, interval=0.1,
                      what="the started event and both audit records at the SIEM")
    user = my_user()
    for m in msgs:
        check_common(m, cx, "cutover-test-0", "Bank", "^")
    recs = rcv.records()
    check(len({r["conn"] for r in recs}) == 1, "messages came on several connections: %r",
          sorted({r["conn"] for r in recs}))
    check(all(r["client_cert"] == CLIENT_SUBJECT for r in recs),
          "client certificate seen by the SIEM: %r", {r["client_cert"] for r in recs})
    check(all(r["sni"] == "app.test" for r in recs), "SNI seen by the SIEM: %r",
          {r["sni"] for r in recs})

    ok = find(msgs, "audit.set-weights.ok", reason=reason_ok)
    check(len(ok) == 1, "the allowed set-weights arrived %d times: %r", len(ok), ok)
    ok = ok[0]
    a = ok.a
    check(ok.sys["msgid"] == "audit" and a["cat"] == "audit" and a["sev"] == "3" and
          ok.sys["pri"] == 13 * 8 + 5,
          "allowed set-weights: MSGID %r cat %r sev %r PRI %r (expected audit/audit/3/109)",
          ok.sys["msgid"], a["cat"], a["sev"], ok.sys["pri"])
    check(a.get("usrName") == user and ok.keys[4] == "usrName",
          "usrName %r (position %s), expected %r right after sev", a.get("usrName"),
          ok.keys.index("usrName") if "usrName" in a else None, user)
    check(a.get("op") == "set-weights" and a.get("result") == "ok" and
          a.get("weights_after.green") == "30" and a.get("weights_after.blue") == "70" and
          a.get("reason") == reason_ok and a.get("role") == "admin",
          "allowed set-weights attributes: %r", ok.attrs)
    rec_ok = stdout_audit(cx, "ok", reason_ok)
    check(rec_ok["actor"]["user"] == user, "stdout audit user %r", rec_ok["actor"])
    check_fields(ok, rec_ok, "^", skip_prefixes=("actor",))

    ref = find(msgs, "audit.set-weights.refused", reason=reason_refused)
    check(len(ref) == 1, "the refused set-weights arrived %d times: %r", len(ref), ref)
    ref = ref[0]
    a = ref.a
    check(a["cat"] == "audit" and a["sev"] == "6" and ref.sys["pri"] == 13 * 8 + 4,
          "refused set-weights: cat %r sev %r PRI %r (expected audit/6/108)", a["cat"], a["sev"],
          ref.sys["pri"])
    check(a.get("usrName") == user and a.get("result") == "refused" and
          a.get("error.code") == "not_found",
          "refused set-weights attributes: %r", ref.attrs)
    check_fields(ref, stdout_audit(cx, "refused", reason_refused), "^", skip_prefixes=("actor",))

    st = find(msgs, "started")
    check(len(st) == 1, "started arrived %d times", len(st))
    st = st[0]
    check(st.sys["msgid"] == "security" and st.a["cat"] == "security" and st.a["sev"] == "3" and
          st.sys["pri"] == 13 * 8 + 5, "started: %r", st)
    started_ev = cx.events("started")
    check(len(started_ev) == 1, "started events on stdout: %r", started_ev)
    check_fields(st, started_ev[0], "^")
    check(st.index < ok.index < ref.index, "order at the SIEM: started %d, ok %d, refused %d",
          st.index, ok.index, ref.index)
    # nothing that stays on stdout only (health, DNS, drain stages, siem_* status) was sent
    other = [m.event_id for m in msgs if m.sys["msgid"] == "security"
             and m.event_id not in SECURITY_EVENTS]
    check(not other, "events that must stay on stdout were sent: %r", other)

    # metrics
    n = len(rcv.records())
    wait_until(lambda: siem_metric(mport, "cutover_siem_messages_total", result="sent") >= n,
               5.0, interval=0.1, what="cutover_siem_messages_total{result=\"sent\"} >= %d" % n)
    fams = metrics(mport)
    sent = sample(fams, "cutover_siem_messages_total", result="sent")
    check(sent >= n, "sent %s < received %d", sent, n)
    check(sample(fams, "cutover_siem_messages_total", result="dropped") == 0,
          "messages dropped with a healthy SIEM")
    check(sample(fams, "cutover_siem_connected") == 1, "cutover_siem_connected %s",
          sample(fams, "cutover_siem_connected"))
    check(sample(fams, "cutover_siem_queue_bytes") >= 0, "queue bytes")
    wait_until(lambda: siem_metric(mport, "cutover_siem_queue_bytes") == 0, 5.0, interval=0.1,
               what="cutover_siem_queue_bytes 0 once everything is sent")
    check(not cx.events("siem_unreachable"), "siem_unreachable with a healthy SIEM: %r",
          cx.events("siem_unreachable"))

    # on shutdown what is queued (the stopped event) is still sent
    cx.stop()
    stopped = wait_until(lambda: find(messages(rcv), "stopped"), 5.0, interval=0.1,
                         what="the stopped event at the SIEM after SIGTERM")
    check(len(stopped) == 1, "stopped arrived %d times", len(stopped))
    check_common(stopped[0], cx, "cutover-test-0", "Bank", "^")
    check(stopped[0].a["sev"] == "3" and stopped[0].sys["msgid"] == "security",
          "stopped: %r", stopped[0])
    check_fields(stopped[0], cx.events("stopped")[-1], "^")
    rcv.stop()


test_audit_and_security_events_reach_the_siem.timeout = 90


# --- 2. a security event from the data path ----------------------------------------------------

def test_upstream_tls_failure_is_a_security_event():
    """A pool whose TLS server_name does not match the upstream's certificate: the request gets
    502 and the SIEM gets upstream_tls_failed (sev 7, PRI 107)."""
    pki = Pki()
    rcv = start_siem_receiver(pki)
    blue = start_upstream("blue")
    green = tls_upstream(pki, "green")
    port = free_port()
    cfg = config_with_tls_green(port, blue, green, {
        "ca": pki.p("ca.crt"), "server_name": "wrong.test",
        "client_certificate": {"cert": pki.p("client.crt"), "key": pki.p("client.key")}})
    cfg["siem"] = siem_section(pki, rcv.port, vendor="Bank", hostname="cutover-test-0")
    cfg["retries"] = {"max_tries": 1}  # the refusal itself, not the fail-over to blue
    cx = start_cutover(cfg)
    r = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    check(r.status == 502 and r.header("x-cutover-error") == "upstream_tls",
          "status %s error %r", r.status, r.header("x-cutover-error"))
    ev = cx.wait_event("upstream_tls_failed")
    found = wait_until(lambda: find(messages(rcv), "upstream_tls_failed"), 15.0, interval=0.1,
                       what="upstream_tls_failed at the SIEM")
    for m in messages(rcv):
        check_common(m, cx, "cutover-test-0", "Bank", "^")
    m = found[0]
    check(m.sys["msgid"] == "security" and m.a["cat"] == "security" and m.a["sev"] == "7" and
          m.sys["pri"] == 13 * 8 + 3,
          "upstream_tls_failed: MSGID %r cat %r sev %r PRI %r (expected security/security/7/107)",
          m.sys["msgid"], m.a["cat"], m.a["sev"], m.sys["pri"])
    check("mismatch" in m.a.get("reason", ""), "reason %r", m.a.get("reason"))
    check(m.a.get("upstream", "").startswith(green.addr), "upstream %r", m.a.get("upstream"))
    evs = cx.events("upstream_tls_failed")
    match = [e for e in evs if e["time"] == m.a["devTime"]]
    check(match, "no upstream_tls_failed on stdout at devTime %r: %r", m.a["devTime"], evs)
    check_fields(m, match[0], "^")
    check(not green.requests(), "the upstream with the wrong name got a request")
    cx.stop()
    rcv.stop()


test_upstream_tls_failure_is_a_security_event.timeout = 90


# --- 3. a dead SIEM ---------------------------------------------------------------------------

def _dead_siem_phase(label, pki, blue, green, siem_port, rcv=None):
    port, mport = free_port(), free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      control=my_control(), metrics={"address": "%s:%d" % (HOST, mport)},
                      timeouts={"drain_ms": 1000},
                      siem=siem_section(pki, siem_port, max_queue_bytes=4096,
                                        connect_timeout_ms=200, write_timeout_ms=200))
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    get_ok(port, "%s: first request" % label)
    t_first = None
    with Ctl(path, timeout=5.0) as c:
        for i in range(40):
            t0 = time.monotonic()
            rep = c.set_weights(100 - i, i, reason="%s %d" % (label, i))
            dt = time.monotonic() - t0
            check(rep.get("ok") is True, "%s: set-weights %d refused: %r", label, i, rep)
            check(dt < 1.5, "%s: set-weights %d took %.2f s to be acknowledged (limit 1.5 s)",
                  label, i, dt)
            get_ok(port, "%s: after set-weights %d" % (label, i))
            if t_first is None and cx.events("siem_unreachable"):
                t_first = time.monotonic()
    wait_until(lambda: siem_metric(mport, "cutover_siem_messages_total", result="dropped") > 0,
               5.0, interval=0.1,
               what="%s: cutover_siem_messages_total{result=\"dropped\"} > 0" % label)
    fams = metrics(mport)
    check(sample(fams, "cutover_siem_connected") == 0, "%s: cutover_siem_connected %s", label,
          sample(fams, "cutover_siem_connected"))
    check(sample(fams, "cutover_siem_messages_total", result="sent") == 0,
          "%s: %s messages counted as sent to a SIEM that took none", label,
          sample(fams, "cutover_siem_messages_total", result="sent"))
    qb = sample(fams, "cutover_siem_queue_bytes")
    check(0 < qb <= 4096, "%s: cutover_siem_queue_bytes %s (max_queue_bytes 4096)", label, qb)
    ev = cx.wait_event("siem_unreachable", timeout=5.0)
    if t_first is None:
        t_first = time.monotonic()
    check(ev.get("address") == "%s:%d" % (HOST, siem_port) and ev.get("reason"),
          "%s: siem_unreachable %r", label, ev)
    if rcv is not None:
        # the receiver saw cutover try again (so "once per outage" below is about retries)
        wait_until(lambda: rcv.accepts() >= 2, 10.0, interval=0.1,
                   what="%s: a second connection attempt at the stuck SIEM" % label)
        check(not rcv.records(), "%s: the stuck SIEM logged messages: %r", label,
              rcv.records()[:3])
    left = 3.5 - (time.monotonic() - t_first)
    if left > 0:
        time.sleep(left)  # bounded: a window of >= 3.5 s of retries
    evs = cx.events("siem_unreachable")
    check(len(evs) == 1, "%s: %d siem_unreachable events for one outage (once per outage, not "
          "per retry): %r", label, len(evs), evs)
    check(not cx.events("siem_connected"), "%s: siem_connected %r", label,
          cx.events("siem_connected"))
    get_ok(port, "%s: last request" % label)
    t0 = time.monotonic()
    cx.stop()
    dt = time.monotonic() - t0
    check(dt < 6.0, "%s: SIGTERM to exit took %.1f s (drain 1 s + at most 2 s for the SIEM)",
          label, dt)


def test_dead_siem_never_blocks():
    """A SIEM that accepts TCP but never answers the handshake, then a port where nothing listens:
    40 set-weights in a row are each acknowledged within 1.5 s and requests keep being served;
    messages are dropped and counted once the 4 KiB queue is full; siem_unreachable is logged once
    per outage, not per retry; shutdown does not wait for the SIEM."""
    pki = Pki()
    blue, green = start_upstream("blue"), start_upstream("green")
    stuck = start_siem_receiver(pki, no_read=True)
    _dead_siem_phase("stuck SIEM", pki, blue, green, stuck.port, rcv=stuck)
    stuck.stop()
    _dead_siem_phase("no SIEM", pki, blue, green, free_port())


test_dead_siem_never_blocks.timeout = 120


# --- 4. catching up after an outage -----------------------------------------------------------

def test_siem_catches_up_after_an_outage():
    """cutover starts while the SIEM is down; the started event and three audit records made
    during the outage reach the SIEM, in order, once it is up (within the 30 s backoff)."""
    pki = Pki()
    blue, green = start_upstream("blue"), start_upstream("green")
    siem_port, port, mport = free_port(), free_port(), free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      control=my_control(), metrics={"address": "%s:%d" % (HOST, mport)},
                      siem=siem_section(pki, siem_port, vendor="Bank",
                                        hostname="cutover-test-0"))
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    ev = cx.wait_event("siem_unreachable", timeout=10.0)
    check(ev.get("address") == "%s:%d" % (HOST, siem_port), "siem_unreachable %r", ev)
    reasons = ["outage step %d" % i for i in (1, 2, 3)]
    with Ctl(path) as c:
        for i, r in enumerate(reasons):
            rep = c.set_weights(90 - 10 * i, 10 + 10 * i, reason=r)
            check(rep.get("ok") is True, "set-weights %d: %r", i, rep)
    check(siem_metric(mport, "cutover_siem_connected") == 0, "connected while the SIEM is down")
    rcv = start_siem_receiver(pki, port=siem_port)
    t0 = time.monotonic()

    def caught_up():
        ms = messages(rcv)
        if find(ms, "started") and all(find(ms, "audit.set-weights.ok", reason=r)
                                       for r in reasons):
            return ms
        return None
    msgs = wait_until(caught_up, 40.0, interval=0.2,
                      what="the started event and the 3 audit records at the SIEM")
    print("caught up %.1f s after the SIEM came up" % (time.monotonic() - t0))
    for m in msgs:
        check_common(m, cx, "cutover-test-0", "Bank", "^")
    firsts = [find(msgs, "started")[0].index] + \
        [find(msgs, "audit.set-weights.ok", reason=r)[0].index for r in reasons]
    check(firsts == sorted(firsts), "order at the SIEM (started, step 1, 2, 3): indexes %r",
          firsts)
    for r in reasons:
        m = find(msgs, "audit.set-weights.ok", reason=r)[0]
        check_fields(m, stdout_audit(cx, "ok", r), "^", skip_prefixes=("actor",))
    check_fields(find(msgs, "started")[0], cx.events("started")[0], "^")
    ev = cx.wait_event("siem_connected", timeout=5.0)
    check(ev.get("address") == "%s:%d" % (HOST, siem_port) and "app.test" in
          (ev.get("peer") or ""), "siem_connected %r", ev)
    evs = cx.events("siem_unreachable")
    check(len(evs) == 1, "%d siem_unreachable events for one outage: %r", len(evs), evs)
    wait_until(lambda: siem_metric(mport, "cutover_siem_connected") == 1, 5.0, interval=0.1,
               what="cutover_siem_connected 1")
    fams = metrics(mport)
    check(sample(fams, "cutover_siem_messages_total", result="dropped") == 0,
          "messages dropped although the queue (1 MiB) had room")
    check(sample(fams, "cutover_siem_messages_total", result="sent") >= 4,
          "sent %s", sample(fams, "cutover_siem_messages_total", result="sent"))
    cx.stop()
    rcv.stop()


test_siem_catches_up_after_an_outage.timeout = 90


# --- 5. newline framing, a tab delimiter, defaults -------------------------------------------

def test_siem_certificate_not_trusted():
    """The collector's certificate is verified like an upstream's: a name that does not match
    (server_name wrong.test for a certificate of app.test) refuses the connection, the reason is
    logged once for the outage, and nothing is sent; control requests are acknowledged meanwhile."""
    pki = Pki()
    blue, green = start_upstream("blue"), start_upstream("green")
    rcv = start_siem_receiver(pki)
    port, mport = free_port(), free_port()
    siem = siem_section(pki, rcv.port, connect_timeout_ms=500)
    siem["tls"]["server_name"] = "wrong.test"
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      control=my_control(), metrics={"address": "%s:%d" % (HOST, mport)},
                      siem=siem)
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    ev = cx.wait_event("siem_unreachable", timeout=10.0)
    check(ev.get("reason", "").startswith("tls: certificate verification failed"),
          "siem_unreachable reason %r", ev)
    with Ctl(path) as c:
        rep = c.set_weights(90, 10, reason="while the SIEM is refused")
        check(rep.get("ok") is True, "set-weights %r", rep)
    # a second attempt (1 s back-off) fails the same way without a second event
    wait_until(lambda: rcv.accepts() >= 2, 10.0, what="a second connection attempt")
    time.sleep(0.3)
    evs = cx.events("siem_unreachable")
    check(len(evs) == 1, "%d siem_unreachable events for one outage: %r", len(evs), evs)
    check(not rcv.records(), "messages reached a SIEM whose certificate failed: %r",
          rcv.records()[:2])
    check(siem_metric(mport, "cutover_siem_connected") == 0, "connected to an untrusted SIEM")
    cx.stop()


test_siem_certificate_not_trusted.timeout = 60


def test_newline_framing_and_delimiter():
    """framing "newline", delimiter "x09" (tab), facility 23, default vendor and hostname: each
    message is one line; the attributes are split on tabs; a reason with a tab, '|', a newline
    and '\\' arrives with those replaced by spaces ('^' and '=' kept)."""
    pki = Pki()
    rcv = start_siem_receiver(pki, framing="newline")
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      control=my_control(),
                      siem=siem_section(pki, rcv.port, framing="newline", delimiter="x09",
                                        facility=23))
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    reason = "tab\there|pipe\nnewline\\back^caret=eq"
    want = "tab here pipe newline back^caret=eq"
    with Ctl(path) as c:
        rep = c.set_weights(60, 40, reason=reason)
        check(rep.get("ok") is True, "set-weights: %r", rep)
    found = wait_until(lambda: find(messages(rcv), "audit.set-weights.ok"), 15.0, interval=0.1,
                       what="the audit record at the SIEM (newline framing)")
    hostname = socket.gethostname()
    msgs = messages(rcv)
    for m in msgs:
        check_common(m, cx, hostname, "cutover", "\t", facility=23)
        check(m.head["delimiter_field"] in ("x09", "0x09", "\t"),
              "%r: delimiter field %r", m, m.head["delimiter_field"])
        body = m.sys["msg"].split("|", 6)[6]  # the attributes, after the LEEF header
        check(body.count("\t") == len(m.attrs) - 1,
              "%r: %d tabs for %d attributes", m, body.count("\t"), len(m.attrs))
    check(len(found) == 1, "the audit record arrived %d times", len(found))
    m = found[0]
    check(m.a.get("reason") == want, "reason %r, expected %r", m.a.get("reason"), want)
    check(m.sys["pri"] == 23 * 8 + 5, "PRI %d, expected 189 (facility 23, sev 3)", m.sys["pri"])
    check(m.a.get("weights_after.green") == "40", "weights_after.green %r",
          m.a.get("weights_after.green"))
    check_fields(m, stdout_audit(cx, "ok", reason), "\t", skip_prefixes=("actor",))
    check(find(msgs, "started"), "no started event at the SIEM: %r", msgs)
    # one record per message: no line of the feed is a fragment of another
    check(all(r["raw"].startswith("<") for r in rcv.records()), "fragments: %r",
          [r["raw"][:80] for r in rcv.records()])
    cx.stop()
    rcv.stop()


test_newline_framing_and_delimiter.timeout = 90


# --- 6. configuration errors -------------------------------------------------------------------

def test_siem_config_errors():
    """cutover --check refuses bad siem sections at the JSON path (FILE: PATH: MESSAGE) and
    accepts a good one with the boundary values."""
    pki = Pki()
    port = free_port()

    def base(**siem):
        cfg = make_config(port, {"blue": ["127.0.0.1:1"], "green": ["127.0.0.1:2"]},
                          {"blue": 100, "green": 0})
        cfg["siem"] = siem_section(pki, 6514, **siem)
        return cfg

    code, out, err = run_check(write_config(base()))
    check(code == 0, "a valid siem section: exit %s: %s", code, err)
    code, out, err = run_check(write_config(base(
        vendor="B" * 64, delimiter="0x09", hostname="h" * 255, facility=0, framing="newline",
        max_queue_bytes=4096, connect_timeout_ms=100, write_timeout_ms=60000)))
    check(code == 0, "boundary values: exit %s: %s", code, err)
    code, out, err = run_check(write_config(base(delimiter=";", facility=23,
                                                 max_queue_bytes=67108864,
                                                 connect_timeout_ms=60000,
                                                 write_timeout_ms=100)))
    check(code == 0, "boundary values (2): exit %s: %s", code, err)

    def without(key):
        cfg = base()
        del cfg["siem"][key]
        return cfg

    def tls_ca(path):
        cfg = base()
        cfg["siem"]["tls"]["ca"] = path
        return cfg

    missing_ca = pki.p("missing-ca.crt")
    # (label, config, the line's "PATH: " prefix, text the line must contain)
    cases = [
        ("missing address", without("address"), "siem: ", 'missing required key "address"'),
        ("missing tls", without("tls"), "siem: ", 'missing required key "tls"'),
        ("delimiter xZZ", base(delimiter="xZZ"), "siem.delimiter: ", ""),
        ("delimiter =", base(delimiter="="), "siem.delimiter: ", ""),
        ("delimiter |", base(delimiter="|"), "siem.delimiter: ", ""),
        ("delimiter space", base(delimiter=" "), "siem.delimiter: ", ""),
        ("alphanumeric delimiter", base(delimiter="a"), "siem.delimiter: ", ""),
        ("two-character delimiter", base(delimiter="^^"), "siem.delimiter: ", ""),
        ("facility 24", base(facility=24), "siem.facility: ", ""),
        ("facility -1", base(facility=-1), "siem.facility: ", ""),
        ("framing rfc3164", base(framing="rfc3164"), "siem.framing: ", ""),
        ("vendor with |", base(vendor="Ba|nk"), "siem.vendor: ", ""),
        ("vendor with ^", base(vendor="Ba^nk"), "siem.vendor: ", ""),
        ("empty vendor", base(vendor=""), "siem.vendor: ", ""),
        ("vendor of 65 characters", base(vendor="B" * 65), "siem.vendor: ", ""),
        ("hostname with a space", base(hostname="cutover 0"), "siem.hostname: ", ""),
        ("hostname of 256 characters", base(hostname="h" * 256), "siem.hostname: ", ""),
        ("max_queue_bytes 4095", base(max_queue_bytes=4095), "siem.max_queue_bytes: ", ""),
        ("connect_timeout_ms 99", base(connect_timeout_ms=99), "siem.connect_timeout_ms: ", ""),
        ("write_timeout_ms 60001", base(write_timeout_ms=60001), "siem.write_timeout_ms: ", ""),
        ("unknown key", base(colour="purple"), "siem.colour: ", "unknown key"),
        ("address without a port", base(address="collector.test"), "siem.address: ", ""),
    ]
    failures = []
    for label, cfg, prefix, text in cases:
        path = write_config(cfg)
        code, out, err = run_check(path)
        lines = [l for l in err.splitlines() if l.startswith(path + ": " + prefix)
                 and text in l[len(path) + 2 + len(prefix):]]
        if code != 1 or not lines:
            failures.append("%s: exit %s, expected 1 and a line \"%s: %s...%s\"; stderr: %s"
                            % (label, code, os.path.basename(path), prefix, text,
                               err.strip()[-400:]))
    # a CA file that does not exist: refused at siem.tls (or under it), naming the file
    path = write_config(tls_ca(missing_ca))
    code, out, err = run_check(path)
    lines = [l for l in err.splitlines() if l.startswith(path + ": siem.tls")]
    if code != 1 or not lines or not any("missing-ca.crt" in l for l in lines):
        failures.append("missing tls.ca: exit %s, expected 1 and a line \"%s: siem.tls...\" "
                        "naming missing-ca.crt; stderr: %s" % (code, os.path.basename(path),
                                                               err.strip()[-400:]))
    check(not failures, "%d of %d bad siem sections not refused as documented:\n%s",
          len(failures), len(cases) + 1, "\n".join(failures))

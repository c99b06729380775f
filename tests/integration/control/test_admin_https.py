"""The HTTPS admin API (docs/control-protocol.md, "HTTPS transport") against real cutover
processes on 127.0.0.1: mutual TLS (no certificate, another CA, a revoked certificate and TLS 1.1
are refused during the handshake and logged), certificate subject -> role mapping (viewer,
deployer, a subject without a role), the HTTP statuses of control errors, limits (body size,
slow and surplus clients), reload and certificate rotation, and `cutoverctl --endpoint` (text and
--json, localhost, environment variables, verification of the server, fan-out with a replica
down, mixed with --socket).

Certificates are made at test time with the openssl command (test_tls.Pki: a root CA that also
signs the CRL, an intermediate for server certificates, another CA); the admin API's client
certificates have multi-RDN subjects so that the RFC 2253 order (most specific first) is tested.
"""
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from harness import (HOST, check, free_port, make_config, start_cutover, start_upstream, unique,
                     wait_port, wait_until, workdir, write_config, run_check, run_bin)
from test_control import shares, weights_bp
from test_cutoverctl import ctl_bin
from test_tls import Pki, cert_serial, csi_write, sh

DEPLOYER = "CN=release-pipeline,OU=Platform,O=Bank"
VIEWER = "CN=dashboard,OU=SRE,O=Bank"
NOBODY = "CN=someone-else,OU=Sales,O=Bank"


class AdminPki(Pki):
    """test_tls.Pki plus client certificates with bank-style subjects, signed by the root CA."""

    def __init__(self):
        super().__init__()
        self.client_subj("deployer", "/O=Bank/OU=Platform/CN=release-pipeline")
        self.client_subj("viewer", "/O=Bank/OU=SRE/CN=dashboard")
        self.client_subj("nobody", "/O=Bank/OU=Sales/CN=someone-else")
        # UTF-8, an escaped comma and a multi-valued RDN
        self.client_subj("utf8", "/O=B\u00e4nk, AG/OU=Platform+OU=Ops/CN=zo\u00eb")

    def client_subj(self, name, subj, issuer="ca"):
        sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-utf8", "-keyout", self.p(name + ".key"), "-out", self.p(name + ".csr"),
           "-subj", subj)
        ext = self.p(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:false\nextendedKeyUsage=clientAuth\n")
        sh("openssl", "x509", "-req", "-in", self.p(name + ".csr"), "-days", "30",
           "-set_serial", self.next_serial(), "-extfile", ext, "-out", self.p(name + ".crt"),
           "-CA", self.p(issuer + ".crt"), "-CAkey", self.p(issuer + ".key"))
        with open(self.p(name + ".pem"), "w") as f:  # key and certificate in one file
            f.write(open(self.p(name + ".key")).read() + open(self.p(name + ".crt")).read())

    def subject(self, name):
        """The subject as the documented command prints it (RFC 2253, UTF-8 kept)."""
        out = sh("openssl", "x509", "-in", self.p(name + ".crt"), "-noout", "-subject",
                 "-nameopt", "RFC2253,-esc_msb")
        return out.strip().split("=", 1)[1]


def admin_section(pki, aport, roles=None, **extra):
    a = {"address": "%s:%d" % (HOST, aport),
         "tls": {"certificates": [{"pem": pki.p("server.pem")}], "client_ca": pki.p("ca.crt"),
                 "crl": pki.p("ca.crl")},
         "roles": roles if roles is not None else [{"subject": DEPLOYER, "role": "deployer"},
                                                   {"subject": VIEWER, "role": "viewer"}]}
    a.update(extra)
    return a


class Admin:
    """One cutover with an admin API (and no control socket): .cx, .aport, .audit."""

    def __init__(self, pki, weights=None, roles=None, control_socket=None, **admin_extra):
        self.pki = pki
        self.blue, self.green = start_upstream("blue"), start_upstream("green")
        self.aport = free_port()
        base = unique("ctl")
        self.audit = base + "-audit.jsonl"
        control = {"audit_file": self.audit, "state_file": base + "-state.json"}
        if control_socket:
            control.update({"socket": control_socket, "mode": "0666",
                            "roles": [{"uid": os.geteuid(), "role": "admin"}]})
        cfg = make_config(free_port(), {"blue": [self.blue], "green": [self.green]},
                          weights or {"blue": 100, "green": 0}, control=control)
        cfg["admin"] = admin_section(pki, self.aport, roles, **admin_extra)
        self.cfg = cfg
        self.cx = start_cutover(cfg)
        wait_port(self.aport, 10.0, self.cx.popen)

    def ctx(self, cert=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.pki.p("ca.crt"))
        if cert:
            ctx.load_cert_chain(self.pki.p(cert + ".crt"), self.pki.p(cert + ".key"))
        return ctx

    def conn(self, cert, timeout=10.0):
        return http.client.HTTPSConnection(HOST, self.aport, context=self.ctx(cert),
                                           timeout=timeout)

    def call(self, cert, method, path, body=None, headers=None, conn=None):
        """One request: (status, {lower-case header: value}, parsed JSON body or raw bytes)."""
        c = conn or self.conn(cert)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            if conn is None:
                c.close()
        try:
            doc = json.loads(data)
        except ValueError:
            doc = data
        return r.status, hdrs, doc

    def control(self, cert, op, args=None, rid="t-1", **kw):
        req = {"v": 1, "id": rid, "op": op}
        if args is not None:
            req["args"] = args
        return self.call(cert, "POST", "/v1/control", json.dumps(req).encode(),
                         {"Content-Type": "application/json"}, **kw)

    def weights(self):
        st, _, doc = self.call("viewer", "GET", "/v1/status")
        check(st == 200 and doc["ok"], "status: %s %r", st, doc)
        return doc["generation"], weights_bp(doc["result"]["routes"][0]["weights"])

    def audit_lines(self):
        out = []
        try:
            with open(self.audit) as f:
                out = [json.loads(l) for l in f if l.endswith("\n") and l.strip()]
        except FileNotFoundError:
            pass
        return out

    def refused(self, cert):
        """True when a request with this client certificate gets no HTTP response at all (the
        handshake was refused; with TLS 1.3 the refusal arrives on the first read)."""
        try:
            st, _, doc = self.call(cert, "GET", "/v1/status")
        except (ssl.SSLError, OSError, http.client.HTTPException):
            return True
        print("%s: got HTTP %s %r" % (cert, st, doc))
        return False


def sw(blue, green, reason="test"):
    return {"route": "app", "weights": {"blue": blue, "green": green}, "reason": reason}


def ctl(pki, *args, cert="deployer", env=None, timeout=60):
    cmd = [ctl_bin()]
    if cert:
        cmd += ["--cacert", pki.p("ca.crt"), "--cert", pki.p(cert + ".crt"),
                "--key", pki.p(cert + ".key")]
    p = run_bin(cmd + list(args), capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


# --- 1. mutual TLS ---------------------------------------------------------------------------

def test_admin_handshake_refusals():
    """No client certificate, a certificate of another CA, a revoked one (CRL) and TLS 1.1 are
    refused during the handshake: no HTTP response, nothing audited, an admin_tls_refused event
    with the reason. The corporate certificates get through."""
    pki = AdminPki()
    check(pki.subject("deployer") == DEPLOYER, "RFC 2253 form of the deployer's subject: %r",
          pki.subject("deployer"))
    a = Admin(pki)
    n_ev = len(a.cx.events("admin_tls_refused"))
    for cert, reason, verify in ((None, "peer did not return a certificate", None),
                                 ("stranger", "certificate verify failed",
                                  "unable to get local issuer certificate"),
                                 ("revoked", "certificate verify failed", "certificate revoked")):
        audit_before = len(a.audit_lines())
        check(a.refused(cert), "the handshake with %s was not refused" % (cert or "no certificate"))
        evs = wait_until(lambda: a.cx.events("admin_tls_refused")[n_ev:] or None, 5.0,
                         what="admin_tls_refused for %s" % cert)
        ev = evs[-1]
        check(ev.get("reason") == reason and ev.get("verify") == verify and
              ev.get("peer", "").startswith("127.0.0.1:"),
              "%s: event %r (want reason %r, verify %r)", cert, ev, reason, verify)
        # who was refused: the presented certificate's subject (none without a certificate)
        check(ev.get("subject") == (pki.subject(cert) if cert else None),
              "%s: refused subject %r", cert, ev.get("subject"))
        n_ev = len(a.cx.events("admin_tls_refused"))
        check(len(a.audit_lines()) == audit_before, "a refused handshake was audited")
    # TLS 1.0 / 1.1 are not offered, even with the right certificate
    n_ev = len(a.cx.events("admin_tls_refused"))
    for flag in ("-tls1", "-tls1_1"):
        p = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (HOST, a.aport), flag,
                            "-cipher", "DEFAULT@SECLEVEL=0", "-cert", pki.p("deployer.crt"),
                            "-key", pki.p("deployer.key")], input="", capture_output=True,
                           text=True, timeout=20)
        out = p.stdout + p.stderr
        check(p.returncode != 0 and "Cipher is (NONE)" in out, "%s accepted: %s", flag,
              out[-600:])
    evs = wait_until(lambda: a.cx.events("admin_tls_refused")[n_ev:]
                     if len(a.cx.events("admin_tls_refused")) >= n_ev + 2 else None, 5.0,
                     what="two admin_tls_refused events for TLS 1.0 and 1.1")
    check(all(e["reason"] == "unsupported protocol" for e in evs), "TLS 1.0/1.1 events: %r", evs)
    # a TCP probe (connect, close) is no refused handshake
    n_ev = len(a.cx.events("admin_tls_refused"))
    socket.create_connection((HOST, a.aport), timeout=5).close()
    st, _, doc = a.call("deployer", "GET", "/v1/status")
    time.sleep(0.3)  # the probe's close is handled by now
    check(st == 200 and doc["ok"], "corporate certificate: %s %r", st, doc)
    check(len(a.cx.events("admin_tls_refused")) == n_ev, "a TCP probe was logged as refused: %r",
          a.cx.events("admin_tls_refused")[n_ev:])
    check(a.cx.alive(), "cutover died")
    a.cx.stop()


test_admin_handshake_refusals.timeout = 120


# --- 2. roles ----------------------------------------------------------------------------------

def test_admin_roles_audit_and_traffic():
    """viewer: status ok, set-weights 403 denied and nothing changes; deployer: set-weights ok and
    the proxy's traffic follows; a subject without a role: 403 forbidden. Each is audited with
    the certificate subject as the actor."""
    pki = AdminPki()
    utf8 = pki.subject("utf8")
    check(utf8 == "CN=zo\u00eb,OU=Platform+OU=Ops,O=B\u00e4nk\\, AG", "RFC 2253 form: %r", utf8)
    a = Admin(pki, roles=[{"subject": DEPLOYER, "role": "deployer"},
                          {"subject": VIEWER, "role": "viewer"},
                          {"subject": utf8, "role": "viewer"}])
    port = a.cx.port

    # the subject as documented (openssl -nameopt RFC2253,-esc_msb) is what the server compares
    n = len(a.audit_lines())
    st, _, doc = a.control("utf8", "version", rid="u-1")
    check(st == 200 and doc["ok"] is True, "UTF-8 subject: %s %r", st, doc)
    rec = a.audit_lines()[n:]
    check(len(rec) == 1 and rec[0]["actor"]["user"] == utf8 and rec[0]["role"] == "viewer",
          "audit of the UTF-8 subject: %r", rec)

    # viewer: both ways of asking for status
    st, hdrs, doc = a.call("viewer", "GET", "/v1/status")
    check(st == 200 and doc["ok"] is True and doc["id"] == "status" and
          hdrs.get("content-type") == "application/json", "viewer GET /v1/status: %s %r", st, doc)
    st, _, doc = a.control("viewer", "status", rid="v-1")
    check(st == 200 and doc["ok"] is True and doc["id"] == "v-1", "viewer status: %s %r", st, doc)
    gen0, w0 = a.weights()
    check(w0 == {"blue": 10000, "green": 0}, "initial weights %r", w0)

    n = len(a.audit_lines())
    st, _, doc = a.control("viewer", "set-weights", sw(20, 80), rid="v-2")
    check(st == 403 and doc["ok"] is False and doc["error"]["code"] == "denied" and
          doc["id"] == "v-2" and doc["generation"] == gen0, "viewer set-weights: %s %r", st, doc)
    check(a.weights() == (gen0, w0), "a denied set-weights changed the state")
    s = shares(port, 50)
    check(s == {"blue": 50}, "traffic after a denied change: %r", s)
    rec = [r for r in a.audit_lines()[n:] if r["op"] == "set-weights"]
    check(len(rec) == 1 and rec[0]["result"] == "refused" and
          rec[0]["error"]["code"] == "denied" and rec[0]["role"] == "viewer" and
          rec[0]["actor"]["user"] == VIEWER and rec[0]["actor"]["uid"] is None and
          rec[0]["actor"]["address"].startswith("127.0.0.1:"),
          "audit of the denied set-weights: %r", rec)

    # deployer: the change is applied, audited and followed by the data path
    n = len(a.audit_lines())
    st, _, doc = a.control("deployer", "set-weights", sw(20, 80, "canary 80%"), rid="d-1")
    check(st == 200 and doc["ok"] is True and doc["generation"] == gen0 + 1 and
          weights_bp(doc["result"]["weights"]) == {"blue": 2000, "green": 8000},
          "deployer set-weights: %s %r", st, doc)
    check(a.weights() == (gen0 + 1, {"blue": 2000, "green": 8000}), "status after the change")
    s = shares(port, 100)
    check(abs(s.get("green", 0) - 80) <= 1 and abs(s.get("blue", 0) - 20) <= 1,
          "traffic after 20/80: %r", s)
    rec = [r for r in a.audit_lines()[n:] if r["op"] == "set-weights"]
    check(len(rec) == 1 and rec[0]["result"] == "ok" and rec[0]["role"] == "deployer" and
          rec[0]["actor"]["user"] == DEPLOYER and rec[0]["reason"] == "canary 80%" and
          rec[0]["generation_after"] == gen0 + 1 and
          rec[0]["weights_after"] == {"blue": 20, "green": 80},
          "audit of the deployer's set-weights: %r", rec)

    # a verified certificate whose subject has no rule: forbidden, for every resource
    n = len(a.audit_lines())
    st, _, doc = a.control("nobody", "set-weights", sw(0, 100), rid="n-1")
    check(st == 403 and doc["error"]["code"] == "forbidden" and doc["id"] == "n-1" and
          NOBODY in doc["error"]["message"], "unmapped subject: %s %r", st, doc)
    st, _, doc = a.call("nobody", "GET", "/v1/status")
    check(st == 403 and doc["error"]["code"] == "forbidden", "unmapped GET status: %s %r", st, doc)
    st, _, doc = a.call("nobody", "GET", "/elsewhere")
    check(st == 403 and doc["error"]["code"] == "forbidden", "unmapped GET /elsewhere: %s %r",
          st, doc)
    recs = a.audit_lines()[n:]
    check(len(recs) == 3 and all(r["result"] == "refused" and r["error"]["code"] == "forbidden"
                                 and r["actor"]["user"] == NOBODY and r["role"] == "none"
                                 for r in recs), "audit of the forbidden requests: %r", recs)
    check(recs[0]["op"] == "set-weights" and recs[0]["args"]["weights"] == {"blue": 0,
                                                                              "green": 100},
          "the forbidden request's op and args are on the record: %r", recs[0])
    check(a.weights() == (gen0 + 1, {"blue": 2000, "green": 8000}), "forbidden changed state")

    # the audit records also went to stdout
    lines = [l for l in a.cx.log.poll() if l.get("type") == "audit"]
    check(any(l["actor"]["user"] == DEPLOYER and l["op"] == "set-weights" for l in lines),
          "audit on stdout: %r", lines[-3:])
    a.cx.stop()


test_admin_roles_audit_and_traffic.timeout = 120


# --- 3. HTTP statuses ---------------------------------------------------------------------------

def test_admin_http_errors_and_limits():
    """Malformed body -> 400, oversized body -> 413 (and the connection closed), other control
    errors with their statuses, 404/405/411, keep-alive, every request audited."""
    pki = AdminPki()
    a = Admin(pki)
    n = len(a.audit_lines())
    cases = [
        (b"{not json", 400, "bad_request"),
        (b"", 400, "bad_request"),
        (b"[1, 2]", 400, "bad_request"),
        (json.dumps({"id": "x", "op": "frobnicate"}).encode(), 400, "unknown_op"),
        (json.dumps({"id": "x", "v": 2, "op": "status"}).encode(), 400, "unsupported_version"),
        (json.dumps({"id": "x", "op": "set-weights", "args": {
            "route": "app", "weights": {"blue": 50}, "reason": "r"}}).encode(), 400,
         "invalid_argument"),
        (json.dumps({"id": "x", "op": "set-weights", "args": sw(50, 50) | {
            "route": "nope"}}).encode(), 404, "not_found"),
        (json.dumps({"id": "x", "op": "set-weights", "args": sw(50, 50) | {
            "expect_generation": 999}}).encode(), 409, "conflict"),
    ]
    for body, status, code in cases:
        st, hdrs, doc = a.call("deployer", "POST", "/v1/control", body,
                               {"Content-Type": "application/json"})
        check(st == status and isinstance(doc, dict) and doc.get("ok") is False and
              doc["error"]["code"] == code, "%r: %s %r (want %d %s)", body[:60], st, doc,
              status, code)
    check(len(a.audit_lines()) == n + len(cases), "%d audit records for %d refused requests",
          len(a.audit_lines()) - n, len(cases))

    # a body over 64 KiB: 413 before it is read, the connection closes
    n = len(a.audit_lines())
    c = a.conn("deployer")
    st, hdrs, doc = a.call("deployer", "POST", "/v1/control", b"x" * 70000,
                           {"Content-Type": "application/json"}, conn=c)
    check(st == 413 and doc["error"]["code"] == "too_large" and
          hdrs.get("connection") == "close", "oversized body: %s %r %r", st, hdrs, doc)
    c.close()
    rec = a.audit_lines()[n:]
    check(len(rec) == 1 and rec[0]["error"]["code"] == "too_large" and
          rec[0]["actor"]["user"] == DEPLOYER, "audit of the oversized body: %r", rec)
    # exactly 64 KiB is read (and refused as JSON), not as too large
    big = json.dumps({"id": "big", "op": "status", "args": {"route": "a" * 10}})
    big = big[:-1] + " " * (65536 - len(big)) + "}"
    st, _, doc = a.call("deployer", "POST", "/v1/control", big.encode())
    check(st == 404 and doc["error"]["code"] == "not_found", "a 64 KiB request: %s %r", st, doc)

    # resources and methods
    for method, path, status, code, allow in (("GET", "/v1/control", 405, "method_not_allowed",
                                               "POST"),
                                              ("POST", "/v1/status", 405, "method_not_allowed",
                                               "GET"),
                                              ("GET", "/", 404, "not_found", None),
                                              ("GET", "/v1/status?pool=x", 400, "bad_request",
                                               None),
                                              ("GET", "/v1/status?route=nope", 404, "not_found",
                                               None)):
        st, hdrs, doc = a.call("viewer", method, path, b"" if method == "POST" else None)
        check(st == status and doc["error"]["code"] == code and hdrs.get("allow") == allow,
              "%s %s: %s %r %r", method, path, st, hdrs, doc)
    st, _, doc = a.call("viewer", "GET", "/v1/status?route=app")
    check(st == 200 and [r["name"] for r in doc["result"]["routes"]] == ["app"],
          "status of one route: %s %r", st, doc)

    # a chunked body: 411
    raw = socket.create_connection((HOST, a.aport), timeout=10)
    s = a.ctx("deployer").wrap_socket(raw, server_hostname=HOST)
    s.sendall(b"POST /v1/control HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\n{\"a\":\r\n0\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    check(data.startswith(b"HTTP/1.1 411 "), "chunked body: %r", data[:200])

    # keep-alive: several requests on one connection, one handshake
    c = a.conn("deployer")
    st1, _, d1 = a.call("deployer", "GET", "/v1/status", conn=c)
    sock1 = c.sock
    st2, _, d2 = a.control("deployer", "version", rid="ka", conn=c)
    check(st1 == 200 and st2 == 200 and d2["result"]["protocol"] == 1 and c.sock is sock1,
          "keep-alive: %s %s, same socket %s", st1, st2, c.sock is sock1)
    c.close()
    check(a.cx.alive(), "cutover died")
    a.cx.stop()


test_admin_http_errors_and_limits.timeout = 120


def test_admin_slow_and_surplus_clients():
    """A client that stalls mid-request, or never sends a byte, does not block anyone and is
    closed after request_timeout_ms; with max_clients connections open a new one is served and
    the idlest gives way; an idle keep-alive connection is closed after idle_timeout_ms."""
    pki = AdminPki()
    a = Admin(pki, max_clients=2, request_timeout_ms=800, idle_timeout_ms=2500)

    def tls_sock(cert="deployer"):
        raw = socket.create_connection((HOST, a.aport), timeout=10)
        return a.ctx(cert).wrap_socket(raw, server_hostname=HOST)

    def closed_after(sock, limit):
        t0 = time.monotonic()
        sock.settimeout(limit)
        try:
            while sock.recv(4096):
                pass
        except (ssl.SSLError, ConnectionResetError):
            pass
        except socket.timeout:
            return None
        return time.monotonic() - t0

    stalled = tls_sock()
    stalled.sendall(b"POST /v1/control HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\"")
    t0 = time.monotonic()
    st, _, doc = a.call("viewer", "GET", "/v1/status")
    check(st == 200 and time.monotonic() - t0 < 0.7, "status next to a stalled client: %s in "
          "%.2f s", st, time.monotonic() - t0)
    dt = closed_after(stalled, 5.0)
    check(dt is not None and dt < 2.0, "the stalled request was not closed (after %s s)", dt)
    ev = a.cx.wait_event("admin_request_timeout", timeout=3.0)
    check(ev["subject"] == DEPLOYER, "admin_request_timeout event: %r", ev)
    silent = socket.create_connection((HOST, a.aport), timeout=10)  # never says hello
    t0 = time.monotonic()
    silent.settimeout(5.0)
    try:
        got = silent.recv(100)
    except ConnectionResetError:
        got = b""
    dt = time.monotonic() - t0
    silent.close()
    check(got == b"" and 0.5 <= dt <= 2.5, "a silent connection: %r after %.2f s", got, dt)

    # two keep-alive clients hold the two slots; a third is served, the idlest gives way
    def held(cert):
        """A keep-alive connection that got a 200 (the server may still be freeing the slot of
        a connection closed a moment ago)."""
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            c = a.conn(cert)
            if a.call(cert, "GET", "/v1/status", conn=c)[0] == 200:
                return c
            c.close()
            time.sleep(0.05)
        raise AssertionError("no slot for a keep-alive client")

    c1 = held("deployer")
    time.sleep(0.05)
    c2 = held("viewer")
    n = len(a.audit_lines())
    ne = len(a.cx.events())
    st, hdrs, doc = a.call("viewer", "GET", "/v1/status")
    check(st == 200, "third client: %s %r", st, doc)
    check(not [r for r in a.audit_lines()[n:] if r.get("result") != "ok"], "a refusal audited")
    ev = a.cx.wait_event("admin_connection_evicted", after=ne, timeout=3.0)
    check(ev.get("state") == "idle" and ev.get("subject") == DEPLOYER, "eviction event: %r", ev)
    try:
        a.call("deployer", "GET", "/v1/status", conn=c1)
        reused = True
    except (http.client.HTTPException, OSError):
        reused = False
    c1.close()
    check(not reused, "the evicted (idlest) connection still worked")
    # the idle keep-alive connection is closed by the server after idle_timeout_ms
    time.sleep(3.0)
    try:
        a.call("viewer", "GET", "/v1/status", conn=c2)
        reused = True
    except (http.client.HTTPException, OSError):
        reused = False
    c2.close()
    check(not reused, "an idle connection outlived idle_timeout_ms")
    check(a.cx.alive(), "cutover died")
    # a graceful stop with an admin connection open and a handshake half done (the sanitizer
    # build checks that nothing leaks or is freed twice)
    c3 = held("deployer")
    half = socket.create_connection((HOST, a.aport), timeout=5)
    half.sendall(b"\x16\x03\x01\x00\x05")
    a.cx.stop()
    c3.close()
    half.close()


test_admin_slow_and_surplus_clients.timeout = 120


# --- 4. reload and rotation --------------------------------------------------------------------

def test_admin_reload_roles_and_rotation():
    """A reload may change roles (open connections follow) but not admin.address; the admin
    certificate rotates like a listener's (CSI-style swap), bad material is refused."""
    pki = AdminPki()
    pki.leaf("server2", "app.test", ["DNS:app.test", "DNS:localhost", "IP:127.0.0.1"])
    mount = unique("admin-certs")
    os.makedirs(mount)
    rd = lambda n: open(pki.p(n)).read()  # noqa: E731
    csi_write(mount, {"tls.crt": rd("server.chain.crt"), "tls.key": rd("server.key")},
              "2026_11_24_10_00_00.000000001")
    a = Admin(pki, tls={"certificates": [{"cert": os.path.join(mount, "tls.crt"),
                                          "key": os.path.join(mount, "tls.key")}],
                        "client_ca": pki.p("ca.crt"), "crl": pki.p("ca.crl")})
    ev = a.cx.wait_event("tls_loaded")
    check(ev["admin"]["certificates"][0]["serial"].lstrip("0") == pki.serial_of("server") and
          ev["admin"]["address"] == "%s:%d" % (HOST, a.aport), "tls_loaded: %r", ev)

    # roles: the viewer becomes a deployer; its open keep-alive connection follows
    c = a.conn("viewer")
    st, _, doc = a.control("viewer", "set-weights", sw(50, 50), conn=c)
    check(st == 403 and doc["error"]["code"] == "denied", "viewer before the reload: %s", st)
    cfg = json.loads(json.dumps(a.cfg))
    cfg["admin"]["roles"] = [{"subject": DEPLOYER, "role": "deployer"},
                             {"subject": VIEWER, "role": "deployer"}]
    a.cx.rewrite(cfg)
    a.cx.reload(expect="reload")
    st, _, doc = a.control("viewer", "set-weights", sw(50, 50), conn=c)
    check(st == 200 and doc["ok"], "viewer promoted by the reload: %s %r", st, doc)
    c.close()

    # admin.address cannot change on reload
    bad = json.loads(json.dumps(cfg))
    bad["admin"]["address"] = "%s:%d" % (HOST, free_port())
    a.cx.rewrite(bad)
    ev = a.cx.reload(expect="reload_refused")
    check([e["path"] for e in ev["errors"]] == ["admin.address"], "refused reload: %r", ev)
    check(a.call("viewer", "GET", "/v1/status")[0] == 200, "the admin API after the refusal")
    a.cx.rewrite(cfg)

    # rotation of the admin certificate
    def served_serial():
        raw = socket.create_connection((HOST, a.aport), timeout=10)
        s = a.ctx("deployer").wrap_socket(raw, server_hostname=HOST)
        der = s.getpeercert(binary_form=True)
        s.close()
        return cert_serial(der)

    check(served_serial() == pki.serial_of("server"), "initial admin certificate")
    n = len(a.cx.events())
    csi_write(mount, {"tls.crt": rd("server2.chain.crt"), "tls.key": rd("server2.key")},
              "2026_11_24_10_02_00.000000002")
    ev = a.cx.wait_event(("tls_reloaded", "tls_reload_refused"), after=n, timeout=10.0)
    check(ev["event"] == "tls_reloaded" and
          ev["admin"]["certificates"][0]["serial"].lstrip("0") == pki.serial_of("server2"),
          "rotation: %r", ev)
    check(served_serial() == pki.serial_of("server2"), "new handshakes still get the old cert")
    check(a.call("deployer", "GET", "/v1/status")[0] == 200, "requests after the rotation")
    n = len(a.cx.events())
    csi_write(mount, {"tls.crt": rd("server.chain.crt"), "tls.key": rd("second.key")},
              "2026_11_24_10_04_00.000000003")
    ev = a.cx.wait_event(("tls_reloaded", "tls_reload_refused"), after=n, timeout=10.0)
    check(ev["event"] == "tls_reload_refused" and ev["errors"][0]["path"] == "admin.tls" and
          "does not match" in ev["errors"][0]["reason"], "bad admin key: %r", ev)
    check(served_serial() == pki.serial_of("server2"), "a refused rotation changed the cert")
    a.cx.stop()


test_admin_reload_roles_and_rotation.timeout = 120


def test_admin_config_check():
    """cutover --check refuses a configuration that makes admin client certificates optional,
    at the JSON path; a valid admin section passes."""
    port = free_port()
    cfg = make_config(port, {"blue": ["127.0.0.1:1"], "green": ["127.0.0.1:2"]},
                      {"blue": 100, "green": 0})
    cfg["admin"] = {"address": "127.0.0.1:%d" % free_port(),
                    "tls": {"certificates": [{"pem": "/x/tls.pem"}], "client_auth": "optional",
                            "client_ca": "/x/ca.pem"},
                    "roles": [{"subject": "CN = x, O = Bank", "role": "deployer"},
                              {"subject": "CN=y", "role": "root"}]}
    code, out, err = run_check(write_config(cfg))
    check(code == 1, "exit %s: %s", code, err)
    for path in ("admin.tls.client_auth", "admin.roles[0].subject", "admin.roles[1].role"):
        check(": %s: " % path in err, "no error at %s: %s", path, err)
    del cfg["admin"]["tls"]["client_auth"]
    cfg["admin"]["roles"] = [{"subject": DEPLOYER, "role": "deployer"}]
    # --check also loads the certificate files (as start-up would): missing ones are refused
    code, out, err = run_check(write_config(cfg))
    check(code == 1 and "admin.tls" in err and "/x/tls.pem" in err,
          "missing admin certificate files: exit %s: %s", code, err)
    pki = AdminPki()
    cfg["admin"]["tls"]["certificates"] = [{"pem": pki.p("server.pem")}]
    cfg["admin"]["tls"]["client_ca"] = pki.p("ca.crt")
    code, out, err = run_check(write_config(cfg))
    check(code == 0, "a valid admin section: exit %s: %s", code, err)


# --- 5. cutoverctl --endpoint ------------------------------------------------------------------

def test_cutoverctl_endpoint():
    """cutoverctl over the admin API: text and --json, an IP and localhost, certificates from the
    environment and from one combined file, --wait, denied / forbidden / refused certificates,
    and a server certificate that does not verify."""
    pki = AdminPki()
    a = Admin(pki)
    ep = "https://%s:%d" % (HOST, a.aport)
    code, out, err = ctl(pki, "--endpoint", ep, "set-weights", "app", "blue=30", "green=70",
                         "--reason", "via https", "--wait")
    check(code == 0 and "ok on 1 of 1" in out and ep in out, "set-weights: %s %s %s", code, out,
          err)
    check(a.weights()[1] == {"blue": 3000, "green": 7000}, "weights after cutoverctl")
    rec = [r for r in a.audit_lines() if r["op"] == "set-weights"][-1]
    check(rec["actor"]["user"] == DEPLOYER and rec["reason"] == "via https", "audit: %r", rec)
    s = shares(a.cx.port, 100)
    check(abs(s.get("green", 0) - 70) <= 1, "traffic after 30/70: %r", s)

    code, out, err = ctl(pki, "--endpoint", ep, "--json", "status", "app")
    doc = json.loads(out)
    r0 = doc["replicas"][0]
    check(code == 0 and doc["ok"] is True and r0["endpoint"] == ep and
          r0["address"] == "%s:%d" % (HOST, a.aport) and
          weights_bp(r0["result"]["routes"][0]["weights"]) == {"blue": 3000, "green": 7000},
          "--json status: %s %r", code, doc)

    # localhost: resolved, verified against the name (the server certificate has DNS:localhost)
    addrs = {ai[4][0] for ai in socket.getaddrinfo("localhost", a.aport, type=socket.SOCK_STREAM)}
    check(addrs == {"127.0.0.1"}, "this test needs localhost to resolve to 127.0.0.1 only: %r",
          addrs)
    lep = "https://localhost:%d" % a.aport
    code, out, err = ctl(pki, "--endpoint", lep, "version")
    check(code == 0 and "https://localhost:%d (127.0.0.1:%d)" % (a.aport, a.aport) in out,
          "localhost: %s %s %s", code, out, err)
    code, out, err = ctl(pki, "--endpoint", lep, "--json", "set-weights", "app", "blue=40",
                         "green=60", "--reason", "localhost")
    doc = json.loads(out)
    check(code == 0 and doc["replicas"][0]["endpoint"] == lep and
          doc["replicas"][0]["address"] == "127.0.0.1:%d" % a.aport, "localhost --json: %r", doc)

    # certificates from the environment; the key inside the certificate file
    env = dict(os.environ, CUTOVER_CACERT=pki.p("ca.crt"), CUTOVER_CERT=pki.p("viewer.crt"),
               CUTOVER_KEY=pki.p("viewer.key"))
    code, out, err = ctl(pki, "--endpoint", ep, "status", cert=None, env=env)
    check(code == 0 and "route app" in out, "certificates from the environment: %s %s", code, err)
    code, out, err = ctl(pki, "--endpoint", ep, "--cacert", pki.p("ca.crt"), "--cert",
                         pki.p("deployer.pem"), "version", cert=None)
    check(code == 0, "combined key+certificate file: %s %s", code, err)

    # refusals: exit 3 for each, nothing changed
    gen = a.weights()[0]
    for cert, want in (("viewer", "denied"), ("nobody", "forbidden"),
                       ("stranger", "certificate_refused"), ("revoked", "certificate_refused")):
        code, out, err = ctl(pki, "--endpoint", ep, "--json", "set-weights", "app", "blue=0",
                             "green=100", "--reason", "x", cert=cert)
        doc = json.loads(out)
        check(code == 3 and doc["replicas"][0]["error"]["code"] == want,
              "%s: exit %s, %r (want 3, %s)", cert, code, doc, want)
    check(a.weights()[0] == gen, "a refused cutoverctl changed the state")

    # the server is verified: another CA's bundle, and a certificate without the name
    code, out, err = ctl(pki, "--endpoint", ep, "--cacert", pki.p("other-ca.crt"), "--cert",
                         pki.p("deployer.crt"), "--key", pki.p("deployer.key"), "status",
                         cert=None)
    check(code == 4 and "tls" in out and "does not verify" in out, "wrong CA: %s %s", code, out)
    b = Admin(pki, tls={"certificates": [{"cert": pki.p("second.chain.crt"),
                                          "key": pki.p("second.key")}],
                        "client_ca": pki.p("ca.crt")})
    code, out, err = ctl(pki, "--endpoint", "https://%s:%d" % (HOST, b.aport), "status")
    check(code == 4 and "does not verify" in out, "a certificate without 127.0.0.1: %s %s",
          code, out)
    # usage errors before anything is contacted
    code, out, err = ctl(pki, "--endpoint", ep, "--cert", pki.p("nope.crt"), "status", cert=None)
    check(code == 2 and "nope.crt" in err, "missing certificate file: %s %s", code, err)
    code, out, err = ctl(pki, "--endpoint", ep, "--cacert", pki.p("ca.crt"), "--cert",
                         pki.p("deployer.crt"), "--key", pki.p("viewer.key"), "status", cert=None)
    check(code == 2 and "does not match" in err, "mismatched key: %s %s", code, err)
    b.cx.stop()
    a.cx.stop()


test_cutoverctl_endpoint.timeout = 120


def test_cutoverctl_endpoint_fanout():
    """Two replicas over --endpoint, one stopped: exit 5 and a report naming it; --endpoint and
    --socket mixed in one invocation."""
    pki = AdminPki()
    sockdir = tempfile.mkdtemp(prefix="cadm-")
    try:
        sock = os.path.join(sockdir, "c.sock")
        a = Admin(pki, control_socket=sock)
        b = Admin(pki)
        epa, epb = "https://%s:%d" % (HOST, a.aport), "https://%s:%d" % (HOST, b.aport)
        code, out, err = ctl(pki, "--endpoint", epa, "--endpoint", epb, "--wait", "set-weights",
                             "app", "blue=50", "green=50", "--reason", "fan-out")
        check(code == 0 and "ok on 2 of 2" in out, "both up: %s %s %s", code, out, err)
        for x in (a, b):
            check(x.weights()[1] == {"blue": 5000, "green": 5000}, "replica weights")

        b.cx.stop()
        code, out, err = ctl(pki, "--endpoint", epa, "--endpoint", epb, "set-weights", "app",
                             "blue=10", "green=90", "--reason", "one down")
        check(code == 5, "one replica down: exit %s (want 5): %s %s", code, out, err)
        check(epb in out and "FAILED" in out and "unreachable" in out and "PARTIAL" in err and
              epb in err, "the report names the stopped replica: %s %s", out, err)
        check(a.weights()[1] == {"blue": 1000, "green": 9000}, "the live replica changed")
        code, out, err = ctl(pki, "--endpoint", epa, "--endpoint", epb, "--json", "status")
        doc = json.loads(out)
        by = {r["endpoint"]: r for r in doc["replicas"]}
        check(code == 5 and by[epa]["ok"] is True and by[epb]["ok"] is False and
              by[epb]["error"]["code"] == "unreachable", "--json with one down: %r", doc)

        # the control socket and the admin API of the same replica, side by side
        code, out, err = ctl(pki, "--socket", sock, "--endpoint", epa, "--json", "version")
        doc = json.loads(out)
        check(code == 0 and doc["replicas"][0].get("socket") == sock and
              doc["replicas"][1].get("endpoint") == epa and
              doc["replicas"][0]["generation"] == doc["replicas"][1]["generation"],
              "--socket with --endpoint: %s %r", code, doc)
        a.cx.stop()
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


test_cutoverctl_endpoint_fanout.timeout = 120

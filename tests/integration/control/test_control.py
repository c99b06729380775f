"""The control plane of cutover itself (not cutoverctl): the newline-delimited JSON protocol on the
control socket (docs/control-protocol.md) against the real server: error codes and paths,
peer-credential roles, compare-and-set, durability across kill -9 and a corrupt state file,
rollback / weight changes / drain under load, reload and history, slow and surplus clients.

Every test starts its own cutover (and upstreams) through the harness; the control socket lives in
a short temporary directory (Unix socket paths are limited to 107 bytes) that other users may
traverse (test_roles connects from child processes running as other uids); the state and audit
files live in the test's work directory. A small protocol client (Ctl) is defined here.
"""
import atexit
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import (Cutover, HarnessError, Load, RawConn, _register, check,
                     count_by_upstream, free_port, make_config, require_bin, start_cutover,
                     start_upstream, unique, wait_port, wait_until, workdir, write_config)

ROUTE = "app"

# --- the protocol client -----------------------------------------------------------------------


class CtlClosed(ConnectionError):
    """The server closed the control connection."""


class Ctl:
    """One control connection: newline-delimited JSON requests and replies."""

    def __init__(self, path, timeout=5.0):
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.buf = b""
        self.eof = False
        self.n = 0

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_line(self, timeout=None):
        """The next reply line as a dict. Raises CtlClosed at EOF, socket.timeout after timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\n" not in self.buf:
            if self.eof:
                raise CtlClosed("control connection closed (buffered %r)" % self.buf[:200])
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no reply line within the timeout (buffered %r)"
                                     % self.buf[:200])
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                self.eof = True
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def wait_closed(self, timeout=3.0):
        """True when the server closes the connection (EOF or reset) within timeout."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                d = b""
            if not d:
                self.eof = True
            self.buf += d
        return self.eof

    def request(self, req, timeout=None):
        """Sends one request (a dict, or bytes sent as they are plus a newline); returns the
        reply."""
        line = req if isinstance(req, bytes) else json.dumps(req).encode()
        self.send_raw(line + b"\n")
        return self.read_line(timeout)

    def call(self, op, args=None, rid=None, timeout=None):
        self.n += 1
        req = {"v": 1, "id": rid or "t-%d" % self.n, "op": op}
        if args is not None:
            req["args"] = args
        rep = self.request(req, timeout)
        check(rep.get("id") == req["id"], "reply id %r for request id %r: %r", rep.get("id"),
              req["id"], rep)
        return rep

    def ok(self, op, args=None, timeout=None):
        """call() that must succeed; returns the reply."""
        rep = self.call(op, args, timeout=timeout)
        check(rep.get("ok") is True, "%s %r refused: %r", op, args, rep)
        return rep

    def status(self):
        """(generation, the route's status dict)."""
        rep = self.ok("status", {"route": ROUTE})
        return rep["generation"], rep["result"]["routes"][0]

    def set_weights(self, blue, green, reason="test", **extra):
        args = {"route": ROUTE, "weights": {"blue": blue, "green": green}, "reason": reason}
        args.update(extra)
        return self.call("set-weights", args)


# --- set-up helpers ----------------------------------------------------------------------------

_sockdir = None


def sockdir():
    """A short directory for control sockets that any uid may traverse (mode 0711)."""
    global _sockdir
    if _sockdir is None:
        _sockdir = tempfile.mkdtemp(prefix="cctl-")
        os.chmod(_sockdir, 0o711)
        atexit.register(shutil.rmtree, _sockdir, True)
    return _sockdir


def control_section(roles=None, **extra):
    base = unique("ctl")
    c = {"socket": os.path.join(sockdir(), os.path.basename(base) + ".sock"),
         "state_file": base + "-state.json", "audit_file": base + "-audit.jsonl",
         "mode": "0666",
         "roles": roles if roles is not None else [{"uid": 0, "role": "admin"}]}
    c.update(extra)
    return c


def proxy_config(port, pools, weights, control, **kw):
    return make_config(port, pools, weights, control=control, **kw)


def wait_ctl(cx, timeout=5.0):
    """Waits until the control socket accepts a connection and answers."""
    path = cx.config["control"]["socket"]

    def try_connect():
        if not cx.alive():
            raise HarnessError("cutover exited (code %s): %s" % (cx.popen.returncode,
                                                                 cx.stderr_text()[-2000:]))
        try:
            with Ctl(path, timeout=2.0) as c:
                return c.call("version").get("ok")
        except (OSError, CtlClosed, ValueError):
            return False
    wait_until(try_connect, timeout, interval=0.05, what="the control socket %s" % path)
    return path


def start_proxy(pools, weights, control=None, port=None, **kw):
    """Starts cutover with a control section; returns (cutover, control socket path)."""
    port = port or free_port()
    control = control or control_section()
    cx = start_cutover(proxy_config(port, pools, weights, control, **kw))
    return cx, wait_ctl(cx)


def start_cutover_args(config, extra_args, workers=2, wait=True, timeout=10.0):
    """start_cutover() with extra command-line arguments (registered, stopped by PID)."""
    b = require_bin()
    path = write_config(config)
    base = unique("cutover")
    out, err = base + ".stdout", base + ".stderr"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.Popen([b, "-c", path, "-w", str(workers)] + list(extra_args),
                             stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, cwd=workdir())
    port = int(config["listeners"][0]["address"].rsplit(":", 1)[1])
    c = Cutover(p, port, config, path, out, err)
    _register(c)
    if wait:
        try:
            wait_port(port, timeout, p)
        except HarnessError as e:
            c.kill()
            raise HarnessError("%s; stderr: %s" % (e, c.stderr_text()[-2000:]))
    return c


READ_OPS = ("status", "history", "version")


def all_audit_lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                if line.endswith("\n") and line.strip():
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def audit_lines(path):
    """The audit records these tests count: every change and every refusal. Successful reads
    (status, history, version) are on the record too (checked in test_protocol_errors), but the
    tests read status between steps, so they are left out of the counts here."""
    return [l for l in all_audit_lines(path)
            if not (l.get("op") in READ_OPS and l.get("result") == "ok")]


def bp(v):
    """A weight in basis points (integers compare exactly)."""
    return int(round(float(v) * 100))


def weights_bp(w):
    return {k: bp(v) for k, v in w.items()}


def shares(port, n, path="/"):
    """n sequential requests on one keep-alive connection: {upstream name: count}."""
    ups = []
    with RawConn(port) as c:
        for i in range(n):
            r = c.get(path)
            check(r.status == 200, "request %d: status %s", i, r.status)
            ups.append(r.upstream)
    return count_by_upstream(ups)


def snapshot_of(route):
    """The parts of a route's status that a refused request must not change."""
    pools = {name: [(e["address"], e["drained"], e["added"]) for e in p["endpoints"]]
             for name, p in route["pools"].items()}
    return weights_bp(route["weights"]), weights_bp(route["stable"]), pools


# --- 1. protocol errors ------------------------------------------------------------------------

def test_protocol_errors():
    """Malformed, unknown, mistyped and oversized requests: the right code and path, nothing
    changes, and each refusal is audited."""
    blue, green = start_upstream("blue"), start_upstream("green")
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 100, "green": 0})
    audit = cx.config["control"]["audit_file"]
    c = Ctl(path)
    c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 60, "green": 40},
                         "reason": "baseline"})
    gen0, st0 = c.status()
    snap0 = snapshot_of(st0)
    check(weights_bp(st0["weights"]) == {"blue": 6000, "green": 4000}, "baseline: %r", st0)

    def sw(**args):
        a = {"route": ROUTE, "weights": {"blue": 50, "green": 50}, "reason": "r"}
        a.update(args)
        return {"id": "sw", "op": "set-weights", "args": {k: v for k, v in a.items()
                                                          if v is not None}}
    # (label, request: dict or raw bytes, code, error.path or None when not checked, id expected)
    cases = [
        ("malformed JSON", b'{"id": "m", "op": "status"', "bad_request", None, None),
        ("a JSON array", b'[{"id": "a", "op": "status"}]', "bad_request", None, None),
        ("a JSON string", b'"status"', "bad_request", None, None),
        ("missing id", {"op": "status"}, "bad_request", "id", None),
        ("numeric id", {"id": 7, "op": "status"}, "bad_request", "id", None),
        ("empty id", {"id": "", "op": "status"}, "bad_request", "id", None),
        ("id over 128 chars", {"id": "x" * 129, "op": "status"}, "bad_request", "id", None),
        ("missing op", {"id": "o"}, "bad_request", "op", "o"),
        ("unknown op", {"id": "u", "op": "frobnicate"}, "unknown_op", "op", "u"),
        ("unknown top-level field", {"id": "f", "op": "status", "colour": "purple"},
         "bad_request", "colour", "f"),
        ("v: 2", {"v": 2, "id": "v", "op": "status"}, "unsupported_version", None, "v"),
        ("v: \"1\"", {"v": "1", "id": "v", "op": "status"}, "unsupported_version", None, "v"),
        ("args not an object", {"id": "ao", "op": "set-weights", "args": [1]},
         "invalid_argument", "args", "ao"),
        ("set-weights without args", {"id": "na", "op": "set-weights"}, "invalid_argument",
         None, "na"),
        ("set-weights without reason", sw(reason=None), "invalid_argument", "args.reason", "sw"),
        ("set-weights with an empty reason", sw(reason=""), "invalid_argument", "args.reason",
         "sw"),
        ("set-weights with a numeric reason", sw(reason=42), "invalid_argument", "args.reason",
         "sw"),
        ("set-weights without weights", sw(weights=None), "invalid_argument", "args.weights",
         "sw"),
        ("weights summing to 99", sw(weights={"blue": 50, "green": 49}), "invalid_argument",
         "args.weights", "sw"),
        ("weights summing to 100.01", sw(weights={"blue": 50.01, "green": 50}),
         "invalid_argument", "args.weights", "sw"),
        ("weights with 3 decimals", sw(weights={"blue": 33.333, "green": 66.667}),
         "invalid_argument", "args.weights.blue", "sw"),
        ("a negative weight", sw(weights={"blue": 110, "green": -10}), "invalid_argument",
         "args.weights.blue", "sw"),
        ("a weight as a string", sw(weights={"blue": "50", "green": 50}), "invalid_argument",
         "args.weights.blue", "sw"),
        ("weights not an object", sw(weights="50/50"), "invalid_argument", "args.weights", "sw"),
        ("a pool missing from weights", sw(weights={"blue": 100}), "invalid_argument",
         "args.weights", "sw"),
        ("unknown pool in weights", sw(weights={"blue": 50, "green": 0, "purple": 50}),
         ("invalid_argument", "not_found"), "args.weights.purple", "sw"),
        ("extra arg", sw(colour="purple"), "invalid_argument", "args.colour", "sw"),
        ("mistyped expect_generation", sw(expect_generation="1"), "invalid_argument",
         "args.expect_generation", "sw"),
        ("unknown route", sw(route="nope"), "not_found", "args.route", "sw"),
        ("promote an unknown pool", {"id": "p", "op": "promote",
                                     "args": {"route": ROUTE, "pool": "purple", "reason": "r"}},
         "not_found", "args.pool", "p"),
        ("drain an unknown endpoint", {"id": "d", "op": "drain",
                                       "args": {"route": ROUTE, "pool": "blue",
                                                "endpoint": "127.0.0.1:1", "reason": "r"}},
         "not_found", "args.endpoint", "d"),
        ("stale expect_generation", sw(expect_generation=gen0 + 5), "conflict",
         "args.expect_generation", "sw"),
    ]
    # refusals by read-only operations; the doc says every refused request is audited, but they
    # are reported together at the end (after every other check) as "unaudited"
    cases += [
        ("status with an unknown arg", {"id": "s", "op": "status", "args": {"colour": 1}},
         "invalid_argument", "args.colour", "s"),
        ("status of an unknown route", {"id": "s", "op": "status", "args": {"route": "nope"}},
         "not_found", "args.route", "s"),
        ("history with limit 0", {"id": "h", "op": "history", "args": {"limit": 0}},
         "invalid_argument", "args.limit", "h"),
    ]
    unaudited = []
    # Every request is on the record, successful reads included.
    before = len(all_audit_lines(audit))
    c.status()
    reads = all_audit_lines(audit)[before:]
    check(len(reads) == 1 and reads[0].get("op") == "status" and reads[0].get("result") == "ok",
          "a successful status is audited once: %r", reads)
    for label, req, code, epath, rid in cases:
        audit_optional = isinstance(req, dict) and req.get("op") in ("status", "history",
                                                                     "version") and "args" in req
        n_audit = len(audit_lines(audit))
        rep = c.request(req)
        codes = code if isinstance(code, tuple) else (code,)
        err = rep.get("error") or {}
        check(rep.get("ok") is False and err.get("code") in codes,
              "%s: expected %s, got %r", label, code, rep)
        check(isinstance(err.get("message"), str) and err["message"],
              "%s: no error.message: %r", label, rep)
        if epath is not None:
            check(err.get("path") == epath, "%s: error.path %r, expected %r (%r)", label,
                  err.get("path"), epath, rep)
        check(rep.get("id") == rid, "%s: reply id %r, expected %r", label, rep.get("id"), rid)
        check(rep.get("generation") == gen0, "%s: reply generation %r, expected %d", label,
              rep.get("generation"), gen0)
        gen, st = c.status()
        check(gen == gen0 and snapshot_of(st) == snap0,
              "%s changed the state: generation %d -> %d, %r -> %r", label, gen0, gen, snap0,
              snapshot_of(st))
        lines = audit_lines(audit)
        if len(lines) == n_audit and audit_optional:
            unaudited.append("%s (%s)" % (label, err.get("code")))
            continue
        check(len(lines) == n_audit + 1, "%s: the audit file grew by %d lines, expected 1",
              label, len(lines) - n_audit)
        last = lines[-1]
        check(last.get("result") == "refused" and (last.get("error") or {}).get("code") == err[
            "code"], "%s: audit record %r", label, last)
        check(last.get("generation_before") == gen0 and last.get("generation_after") == gen0,
              "%s: audit generations %r", label, last)

    # several requests in one write: replies in request order
    c.send_raw(b'{"id": "a", "op": "version"}\n{"id": "b", "op": "nope"}\n'
               b'{"id": "c", "op": "status"}\n')
    reps = [c.read_line() for _ in range(3)]
    check([r.get("id") for r in reps] == ["a", "b", "c"] and
          [r.get("ok") for r in reps] == [True, False, True], "pipelined replies: %r", reps)
    check(reps[0]["result"].get("protocol") == 1, "version: %r", reps[0])

    # a request line over 64 KiB: too_large, then the server closes the connection
    n_audit = len(audit_lines(audit))
    big = Ctl(path)
    big_req = json.dumps({"id": "big", "op": "set-weights",
                          "args": {"route": ROUTE, "weights": {"blue": 0, "green": 100},
                                   "reason": "x" * 70000}}).encode() + b"\n"
    try:
        big.send_raw(big_req)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may stop reading once the limit is passed
    rep = big.read_line()
    check(rep.get("ok") is False and (rep.get("error") or {}).get("code") == "too_large",
          "a 70 kB line: %r", rep)
    check(big.wait_closed(3.0), "the connection stayed open after too_large")
    big.close()
    # a line of exactly 64 KiB including the newline is not too large
    pad = 65536 - len(json.dumps({"id": "edge", "op": "version", "args": {}}).encode()) - 1
    edge = b'{"id": "edge", "op": "version"' + b" " * pad + b', "args": {}}'
    check(len(edge) + 1 == 65536, "edge line length %d", len(edge) + 1)
    rep = c.request(edge)
    check(rep.get("ok") is True and rep.get("id") == "edge", "a 64 KiB line: %r", rep)
    gen, st = c.status()
    check(gen == gen0 and snapshot_of(st) == snap0, "too_large changed the state")
    c.close()
    check(cx.alive(), "cutover died")
    lines = audit_lines(audit)
    if not (len(lines) > n_audit and lines[-1].get("result") == "refused" and
            (lines[-1].get("error") or {}).get("code") == "too_large"):
        unaudited.append("a request line over 64 KiB (too_large)")
    check(not unaudited, "refused requests not audited (docs/control-protocol.md: \"A refused "
          "request is audited too\"): %s", "; ".join(unaudited))


test_protocol_errors.timeout = 60


# --- 2. roles ----------------------------------------------------------------------------------

def _child_client(path, uid, gid, reqs, wfd):
    """In a forked child: drop to uid/gid, send reqs, write the replies as JSON to wfd."""
    out = {"replies": []}
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        out["ids"] = [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]
        with Ctl(path, timeout=5.0) as c:
            for r in reqs:
                try:
                    out["replies"].append(c.request(r))
                except CtlClosed:
                    out["replies"].append({"closed": True})
                    break
    except BaseException as e:  # reported by the parent
        out["error"] = repr(e)
    data = json.dumps(out).encode()
    while data:
        data = data[os.write(wfd, data):]


def as_user(path, uid, gid, reqs, timeout=10.0):
    """Sends reqs on one connection from a forked child running as uid/gid (SO_PEERCRED sees
    those ids); returns the replies."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 1
        try:
            os.close(r)
            _child_client(path, uid, gid, reqs, w)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    os.set_blocking(r, False)
    chunks = []
    deadline = time.monotonic() + timeout
    status = None
    try:
        while True:  # read while waiting (the pipe buffer is finite)
            try:
                d = os.read(r, 65536)
            except BlockingIOError:
                d = None
            if d:
                chunks.append(d)
                continue
            if status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
            if status is not None and d == b"":
                break
            if time.monotonic() > deadline:
                if status is None:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                raise HarnessError("client as uid %d did not finish within %.0f s"
                                   % (uid, timeout))
            time.sleep(0.005)
    finally:
        os.close(r)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "client as uid %d: status %r",
          uid, status)
    out = json.loads(b"".join(chunks))
    check("error" not in out, "client as uid %d failed: %s", uid, out.get("error"))
    check(out["ids"] == [uid, uid, gid, gid], "the child runs as %r, wanted uid %d gid %d",
          out["ids"], uid, gid)
    reps = out["replies"]
    check(len(reps) == len(reqs) and all("closed" not in x for x in reps),
          "uid %d: replies %r", uid, reps)
    return reps


def test_roles():
    """viewer / operator / deployer / unmapped callers, identified by SO_PEERCRED."""
    if os.geteuid() != 0:
        raise HarnessError("test_roles needs root (it runs clients as uids 1001..1006)")
    blue, green = start_upstream("blue"), start_upstream("green")
    roles = [{"uid": 0, "role": "admin"}, {"uid": 1001, "role": "viewer"},
             {"uid": 1002, "role": "operator"}, {"uid": 1003, "role": "deployer"},
             {"gid": 2005, "role": "operator"},
             {"uid": 1006, "role": "viewer"}, {"uid": 1006, "role": "admin"}]
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                           control=control_section(roles=roles))
    audit = cx.config["control"]["audit_file"]
    root = Ctl(path)
    root.ok("set-weights", {"route": ROUTE, "weights": {"blue": 50, "green": 50}, "reason": "a"})

    def sw(b, g, rid="sw"):
        return {"id": rid, "op": "set-weights",
                "args": {"route": ROUTE, "weights": {"blue": b, "green": g}, "reason": "r"}}

    def expect_denied(uid, gid, req, role):
        gen0, st0 = root.status()
        n = len(audit_lines(audit))
        rep = as_user(path, uid, gid, [req])[0]
        check(rep.get("ok") is False and rep["error"].get("code") == "denied",
              "uid %d %s: expected denied, got %r", uid, req["op"], rep)
        check(rep.get("generation") == gen0, "denied reply generation %r != %d",
              rep.get("generation"), gen0)
        gen, st = root.status()
        check(gen == gen0 and snapshot_of(st) == snapshot_of(st0),
              "a denied %s by uid %d changed the state", req["op"], uid)
        lines = audit_lines(audit)
        check(len(lines) == n + 1, "denied %s by uid %d: %d audit lines, expected 1",
              req["op"], uid, len(lines) - n)
        a = lines[-1]
        check(a.get("result") == "refused" and (a.get("error") or {}).get("code") == "denied" and
              a.get("op") == req["op"] and (a.get("actor") or {}).get("uid") == uid,
              "audit record of the denied %s by uid %d: %r", req["op"], uid, a)
        if role is not None:
            check(a.get("role") == role, "audit role %r, expected %r: %r", a.get("role"), role, a)
        else:
            check(a.get("role") not in ("viewer", "operator", "deployer", "admin"),
                  "an unmapped caller audited with role %r", a.get("role"))
        return rep

    # viewer
    reps = as_user(path, 1001, 1001, [{"id": "s", "op": "status"}, {"id": "h", "op": "history"},
                                      {"id": "v", "op": "version"}])
    check(all(r.get("ok") for r in reps), "viewer status/history/version: %r", reps)
    check(weights_bp(reps[0]["result"]["routes"][0]["weights"]) == {"blue": 5000, "green": 5000},
          "viewer status: %r", reps[0])
    expect_denied(1001, 1001, sw(0, 100), "viewer")
    expect_denied(1001, 1001, {"id": "rb", "op": "rollback",
                               "args": {"route": ROUTE, "reason": "r"}}, "viewer")

    # operator: rollback ok, set-weights denied, drain / undrain ok
    gen0, _ = root.status()
    rep = as_user(path, 1002, 1002, [{"id": "rb", "op": "rollback",
                                      "args": {"route": ROUTE, "reason": "r"}}])[0]
    check(rep.get("ok") is True and weights_bp(rep["result"]["weights"]) ==
          {"blue": 10000, "green": 0} and rep["result"].get("already") is False
          and rep.get("generation") == gen0 + 1, "operator rollback: %r", rep)
    a = audit_lines(audit)[-1]
    check(a.get("op") == "rollback" and a.get("result") == "ok" and a.get("role") == "operator"
          and a["actor"].get("uid") == 1002, "audit of the operator rollback: %r", a)
    expect_denied(1002, 1002, sw(90, 10), "operator")
    expect_denied(1002, 1002, {"id": "p", "op": "promote",
                               "args": {"route": ROUTE, "pool": "green", "reason": "r"}},
                  "operator")
    ep = {"route": ROUTE, "pool": "green", "endpoint": green.addr, "reason": "r"}
    reps = as_user(path, 1002, 1002, [{"id": "d", "op": "drain", "args": ep},
                                      {"id": "s", "op": "status"},
                                      {"id": "u", "op": "undrain", "args": ep}])
    check(reps[0].get("ok") is True and reps[0]["result"].get("drained") is True,
          "operator drain: %r", reps[0])
    check(reps[1]["result"]["routes"][0]["pools"]["green"]["endpoints"][0]["drained"] is True,
          "status after drain: %r", reps[1])
    check(reps[2].get("ok") is True and reps[2]["result"].get("drained") is False,
          "operator undrain: %r", reps[2])

    # deployer: set-weights ok, reload denied
    gen0, _ = root.status()
    rep = as_user(path, 1003, 1003, [sw(20, 80)])[0]
    check(rep.get("ok") is True and rep.get("generation") == gen0 + 1 and
          weights_bp(rep["result"]["weights"]) == {"blue": 2000, "green": 8000},
          "deployer set-weights: %r", rep)
    _, st = root.status()
    check(weights_bp(st["weights"]) == {"blue": 2000, "green": 8000}, "after deployer: %r", st)
    expect_denied(1003, 1003, {"id": "rl", "op": "reload", "args": {"reason": "r"}}, "deployer")

    # a gid rule: uid 1005 (no uid rule) in group 2005 is an operator
    rep = as_user(path, 1005, 2005, [{"id": "s", "op": "status"}])[0]
    check(rep.get("ok") is True, "gid-mapped operator status: %r", rep)
    expect_denied(1005, 2005, sw(50, 50), "operator")
    # first matching rule wins: uid 1006 is a viewer, not an admin
    expect_denied(1006, 1006, {"id": "rl", "op": "reload"}, "viewer")

    # unmapped: denied everything, even status and version
    expect_denied(1004, 1004, {"id": "s", "op": "status"}, None)
    expect_denied(1004, 1004, {"id": "v", "op": "version"}, None)
    _, st = root.status()
    check(weights_bp(st["weights"]) == {"blue": 2000, "green": 8000}, "final weights: %r", st)
    root.close()
    check(cx.alive(), "cutover died")


test_roles.timeout = 60


# --- 3. compare-and-set ------------------------------------------------------------------------

def test_compare_and_set():
    """Two set-weights with the same expect_generation on two connections at once: exactly one
    wins; the final weights are the winner's. Repeated a few rounds."""
    blue, green = start_upstream("blue"), start_upstream("green")
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 100, "green": 0})
    a, b, c = Ctl(path), Ctl(path), Ctl(path)
    for rnd in range(8):
        g, _ = c.status()
        wa = (10 + rnd, 90 - rnd)
        wb = (80 - rnd, 20 + rnd)
        lines = {}
        for name, w in (("a", wa), ("b", wb)):
            lines[name] = json.dumps({"id": "%s%d" % (name, rnd), "op": "set-weights", "args": {
                "route": ROUTE, "weights": {"blue": w[0], "green": w[1]},
                "reason": "cas round %d" % rnd, "expect_generation": g}}).encode() + b"\n"
        barrier = threading.Barrier(2, timeout=5)
        reps = {}

        def go(name, conn):
            barrier.wait()
            conn.send_raw(lines[name])
            reps[name] = conn.read_line()
        ts = [threading.Thread(target=go, args=(n, conn), daemon=True)
              for n, conn in (("a", a), ("b", b))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        check(set(reps) == {"a", "b"}, "round %d: replies %r", rnd, reps)
        oks = [n for n in ("a", "b") if reps[n].get("ok") is True]
        check(len(oks) == 1, "round %d: expected exactly one winner, got %r", rnd, reps)
        win = oks[0]
        lose = "b" if win == "a" else "a"
        le = reps[lose].get("error") or {}
        check(reps[lose].get("ok") is False and le.get("code") == "conflict" and
              le.get("path") == "args.expect_generation", "round %d: the loser got %r", rnd,
              reps[lose])
        check(reps[win].get("generation") == g + 1 and reps[lose].get("generation") in (g, g + 1),
              "round %d: generations %r (started at %d)", rnd, reps, g)
        gen, st = c.status()
        ww = wa if win == "a" else wb
        check(gen == g + 1 and weights_bp(st["weights"]) == {"blue": ww[0] * 100,
                                                             "green": ww[1] * 100},
              "round %d: final generation %d weights %r; winner %s wanted %r", rnd, gen,
              st["weights"], win, ww)
    for x in (a, b, c):
        x.close()


test_compare_and_set.timeout = 60


# --- 4. durability ------------------------------------------------------------------------------

def test_durability_kill9():
    """An acknowledged set-weights survives SIGKILL; a corrupt state file stops start-up unless
    --discard-state, which keeps it as state.json.discarded."""
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    control = control_section()
    cfg = proxy_config(port, {"blue": [blue], "green": [green]}, {"blue": 90, "green": 10},
                       control)
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    state_file = control["state_file"]
    with Ctl(path) as c:
        c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 60, "green": 40}, "reason": "a"})
        rep = c.set_weights(30, 70, reason="kill me")
        gen = rep.get("generation")
        cx.kill()  # SIGKILL right after the ack
    check(rep.get("ok") is True, "set-weights 30/70: %r", rep)

    cx2 = start_cutover(cfg)
    path = wait_ctl(cx2)
    with Ctl(path) as c:
        g2, st = c.status()
    check(weights_bp(st["weights"]) == {"blue": 3000, "green": 7000},
          "after kill -9 and restart the weights are %r, expected 30/70", st["weights"])
    check(g2 == gen, "after restart the generation is %s, expected %s", g2, gen)
    ev = cx2.wait_event("state_applied", timeout=5)
    check(ev, "no state_applied event")
    s = shares(port, 200)
    check(s.get("green", 0) > 100 and s.get("blue", 0) > 30, "30/70 after restart: %r", s)
    cx2.stop()

    # corrupt a weight in the state file: a one-byte change
    with open(state_file, "rb") as f:
        good = f.read()
    m = re.search(rb'"weight_bp"\s*:\s*(3000|7000)', good)
    check(m, "no weight_bp 3000/7000 in the state file: %r", good[:500])
    i = m.start(1)
    bad = good[:i] + (b"4" if good[i:i + 1] == b"3" else b"8") + good[i + 1:]
    with open(state_file, "wb") as f:
        f.write(bad)
    t0 = time.monotonic()
    cx3 = start_cutover(cfg, wait=False)
    code = cx3.wait_exit(5)
    dt = time.monotonic() - t0
    err = cx3.stderr_text()
    check(code not in (0, None) and dt < 5, "start-up with a corrupt state file: exit %s after "
          "%.1f s", code, dt)
    check(state_file in err and "--discard-state" in err,
          "stderr does not name the state file and --discard-state: %r", err[-1000:])
    with open(state_file, "rb") as f:
        check(f.read() == bad, "the refused start-up changed the state file")

    cx4 = start_cutover_args(cfg, ["--discard-state"])
    path = wait_ctl(cx4)
    with Ctl(path) as c:
        _, st = c.status()
    check(weights_bp(st["weights"]) == {"blue": 9000, "green": 1000},
          "with --discard-state the weights are %r, expected the config's 90/10", st["weights"])
    check(os.path.exists(state_file + ".discarded"), "no %s.discarded", state_file)
    with open(state_file + ".discarded", "rb") as f:
        check(f.read() == bad, "the .discarded file is not the corrupt state file")
    s = shares(port, 100)
    check(s.get("blue", 0) >= 75, "config weights 90/10 after --discard-state: %r", s)
    cx4.stop()


test_durability_kill9.timeout = 60


# --- 5. rollback under load --------------------------------------------------------------------

def test_rollback_under_load():
    """50/50 under 4 keep-alive clients; rollback mid-way: no failure, and no request started
    after the ack reaches green."""
    blue, green = start_upstream("blue"), start_upstream("green")
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 100, "green": 0})
    c = Ctl(path)
    c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 50, "green": 50}, "reason": "canary"})

    def mk(seq, th):
        return "GET", "/r/%d/%d" % (th, seq), None
    load = Load(cx.port, threads=4, duration=4.0, make_request=mk).start()
    time.sleep(2.0)
    rep = c.call("rollback", {"route": ROUTE, "reason": "green 5xx spike"})
    t_ack = time.time()
    load.join()
    check(rep.get("ok") is True and rep["result"].get("already") is False and
          weights_bp(rep["result"]["weights"]) == {"blue": 10000, "green": 0},
          "rollback: %r", rep)
    check(not load.failures, "failed requests: %d, e.g. %r (%s)", len(load.failures),
          load.failures[:3], load.summary())
    ok = load.ok
    check(all(r.status == 200 for r in ok), "non-200: %r", [r for r in ok if r.status != 200][:3])
    by_path = {"/r/%d/%d" % (r.thread, r.seq): r for r in load.snapshot()}
    before = count_by_upstream([r for r in ok if r.t1 < t_ack])
    check(before.get("green", 0) > 50 and before.get("blue", 0) > 50,
          "before the rollback expected both pools: %r", before)
    after = [r for r in ok if r.t0 > t_ack]
    check(len(after) >= 50, "only %d requests started after the ack", len(after))
    wrong = [r for r in after if r.upstream != "blue"]
    check(not wrong, "%d of %d requests started after the ack answered by %r", len(wrong),
          len(after), wrong[:3])
    # the green upstream's own log: every request that reached it was sent before the ack
    green_reqs = green.requests()
    late = []
    for g in green_reqs:
        r = by_path.get(g["path"])
        check(r is not None, "green received %s, which the load did not send", g["path"])
        if r.t0 > t_ack:
            late.append((g, r))
    check(not late, "%d requests sent after the rollback ack reached green, e.g. %r", len(late),
          late[:3])
    after_ack = [g for g in green_reqs if g["t"] > t_ack]
    print("rollback: %s; %d requests started after the ack; %d green arrivals after it"
          % (load.summary(), len(after), len(after_ack)))
    check(len(after_ack) <= load.nthreads, "%d requests arrived at green after the ack (at most "
          "one in flight per client): %r", len(after_ack), after_ack[:5])
    # the access log: pool blue for every request started after the ack
    acc = {}
    for a in wait_until(lambda: (lambda l: l if len(l) >= len(ok) else None)(cx.access()), 5,
                        what="access log lines for every request"):
        acc[a.get("path")] = a
    for r in after:
        p = "/r/%d/%d" % (r.thread, r.seq)
        a = acc.get(p)
        check(a is not None, "no access log line for %s", p)
        check(a.get("pool") == "blue" and a.get("route") == ROUTE,
              "request %s started after the ack is logged with pool %r: %r", p, a.get("pool"), a)
    c.close()


test_rollback_under_load.timeout = 60


# --- 6. 1000 weight changes under load ---------------------------------------------------------

def test_thousand_weight_changes_under_load():
    """1000 acknowledged set-weights on one connection while 4 clients run: no failed request;
    then 75/25 splits 2000 requests within 3 points."""
    blue, green = start_upstream("blue"), start_upstream("green")
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 100, "green": 0})
    c = Ctl(path)
    gen, _ = c.status()
    rnd = random.Random(20261103)
    load = Load(cx.port, threads=4, duration=60.0).start()
    t0 = time.monotonic()
    prev = None
    try:
        for i in range(1000):
            if i % 3 == 0:
                b = 1000
            elif i % 3 == 1:
                b = 9000
            else:
                b = rnd.randint(0, 10000)
            w = {"blue": b / 100, "green": (10000 - b) / 100}
            rep = c.call("set-weights", {"route": ROUTE, "weights": w, "reason": "step %d" % i})
            check(rep.get("ok") is True, "set-weights #%d %r: %r", i, w, rep)
            check(weights_bp(rep["result"]["weights"]) == {"blue": b, "green": 10000 - b},
                  "set-weights #%d: sent %r, reply %r", i, w, rep)
            if b != prev:
                gen += 1
            check(rep.get("generation") == gen, "set-weights #%d: generation %r, expected %d",
                  i, rep.get("generation"), gen)
            prev = b
            check(time.monotonic() - t0 < 45, "1000 set-weights took over 45 s (at #%d)", i)
    finally:
        dt = time.monotonic() - t0
        load.stop()
    print("1000 set-weights in %.2f s; load %s" % (dt, load.summary()))
    check(not load.failures, "failed requests: %d, e.g. %r (%s)", len(load.failures),
          load.failures[:3], load.summary())
    ok = load.ok
    check(len(ok) > 200, "only %d requests during the changes (%s)", len(ok), load.summary())
    check(all(r.status == 200 for r in ok), "non-200: %r", [r for r in ok if r.status != 200][:3])
    s = count_by_upstream(ok)
    check(s.get("blue", 0) > 20 and s.get("green", 0) > 20, "both pools served: %r", s)

    c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 75, "green": 25}, "reason": "final"})
    g, st = c.status()
    check(weights_bp(st["weights"]) == {"blue": 7500, "green": 2500}, "final status %r", st)
    ups = []
    for k in range(4):
        s = shares(cx.port, 500)
        for name, n in s.items():
            ups += [name] * n
    s = count_by_upstream(ups)
    check(len(ups) == 2000 and abs(s.get("green", 0) / 2000.0 - 0.25) <= 0.03,
          "75/25 over 2000 requests gave %r", s)
    c.close()
    check(cx.alive(), "cutover died")


test_thousand_weight_changes_under_load.timeout = 90


# --- 7. drain and endpoints --------------------------------------------------------------------

def test_drain_and_endpoints():
    """drain / undrain, add-endpoint, remove-endpoint, promote, rollback at the stable weights."""
    b1, b2 = start_upstream("blue1"), start_upstream("blue2")
    g1, g2 = start_upstream("green1"), start_upstream("green2")
    cx, path = start_proxy({"blue": [b1, b2], "green": [g1]}, {"blue": 100, "green": 0})
    audit = cx.config["control"]["audit_file"]
    port = cx.port
    c = Ctl(path)
    s = shares(port, 100)
    check(s.get("blue1", 0) > 20 and s.get("blue2", 0) > 20, "two blue endpoints: %r", s)

    # an in-flight request on blue1 (tries until one lands there; bounded)
    slow = []

    def slow_req(k):
        res = {"k": k}
        try:
            with RawConn(port, timeout=10) as rc:
                r = rc.get("/slow/1500?k=%d" % k)
                res.update(status=r.status, upstream=r.upstream, t=time.time())
        except Exception as e:
            res["error"] = repr(e)
        slow.append(res)
    threads = []
    on_b1 = None
    for k in range(12):
        t = threading.Thread(target=slow_req, args=(k,), daemon=True)
        t.start()
        threads.append(t)
        target = "/slow/1500?k=%d" % k
        seen = wait_until(lambda: [u.name for u in (b1, b2) for x in u.requests()
                                   if x.get("path") == target], 5,
                          what="slow request %d at an upstream" % k)
        if seen[0] == "blue1":
            on_b1 = k
            break
    check(on_b1 is not None, "no slow request landed on blue1 in 12 tries")
    t_drain = time.time()
    rep = c.call("drain", {"route": ROUTE, "pool": "blue", "endpoint": b1.addr,
                           "reason": "maintenance"})
    check(rep.get("ok") is True and rep["result"].get("drained") is True, "drain: %r", rep)
    n1 = len(b1.requests())
    s = shares(port, 200)
    check(s == {"blue2": 200}, "with blue1 drained: %r", s)
    check(len(b1.requests()) == n1, "blue1 received %d requests while drained",
          len(b1.requests()) - n1)
    for t in threads:
        t.join(10)
    mine = [x for x in slow if x["k"] == on_b1]
    check(mine and mine[0].get("status") == 200 and mine[0].get("upstream") == "blue1" and
          mine[0]["t"] > t_drain, "the in-flight request on blue1: %r", mine)
    check(all(x.get("status") == 200 for x in slow), "slow requests: %r", slow)
    _, st = c.status()
    eps = {e["address"]: e for e in st["pools"]["blue"]["endpoints"]}
    check(eps[b1.addr]["drained"] is True and eps[b2.addr]["drained"] is False,
          "status after drain: %r", eps)

    rep = c.call("undrain", {"route": ROUTE, "pool": "blue", "endpoint": b1.addr, "reason": "ok"})
    check(rep.get("ok") is True and rep["result"].get("drained") is False, "undrain: %r", rep)
    s = shares(port, 200)
    check(s.get("blue1", 0) >= 50 and s.get("blue2", 0) >= 50, "after undrain: %r", s)

    # add-endpoint to green, then send traffic to green
    rep = c.call("add-endpoint", {"route": ROUTE, "pool": "green", "endpoint": g2.addr,
                                  "reason": "new cluster"})
    check(rep.get("ok") is True, "add-endpoint: %r", rep)
    rep = c.call("add-endpoint", {"route": ROUTE, "pool": "green", "endpoint": g2.addr,
                                  "reason": "again"})
    check(rep.get("ok") is False and rep["error"].get("code") == "invalid_argument",
          "adding it twice: %r", rep)
    rep = c.call("add-endpoint", {"route": ROUTE, "pool": "green", "endpoint": "not an address",
                                  "reason": "bad"})
    check(rep.get("ok") is False and rep["error"].get("code") == "invalid_argument" and
          rep["error"].get("path") == "args.endpoint", "a bad address: %r", rep)
    _, st = c.status()
    eps = {e["address"]: e for e in st["pools"]["green"]["endpoints"]}
    check(set(eps) == {g1.addr, g2.addr} and eps[g2.addr]["added"] is True and
          eps[g1.addr]["added"] is False, "green endpoints: %r", eps)
    c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 0, "green": 100}, "reason": "x"})
    s = shares(port, 200)
    check(s.get("green2", 0) >= 50 and s.get("green1", 0) >= 50 and
          sum(s.values()) == s.get("green1", 0) + s.get("green2", 0),
          "green with an added endpoint: %r", s)

    # remove-endpoint: a configured one is allowed, the last one is refused
    rep = c.call("remove-endpoint", {"route": ROUTE, "pool": "green", "endpoint": g1.addr,
                                     "reason": "old"})
    check(rep.get("ok") is True, "remove-endpoint green1: %r", rep)
    s = shares(port, 50)
    check(s == {"green2": 50}, "after removing green1: %r", s)
    gen0, st0 = c.status()
    rep = c.call("remove-endpoint", {"route": ROUTE, "pool": "green", "endpoint": g2.addr,
                                     "reason": "last"})
    check(rep.get("ok") is False and rep["error"].get("code") == "invalid_argument" and
          rep["error"].get("path") == "args.endpoint", "removing the last endpoint: %r", rep)
    gen, st = c.status()
    check(gen == gen0 and snapshot_of(st) == snapshot_of(st0),
          "the refused remove-endpoint changed the state")

    # promote green, then rollback is a no-op
    rep = c.call("promote", {"route": ROUTE, "pool": "green", "reason": "release done"})
    check(rep.get("ok") is True and weights_bp(rep["result"]["weights"]) ==
          {"blue": 0, "green": 10000} and weights_bp(rep["result"]["stable"]) ==
          {"blue": 0, "green": 10000}, "promote: %r", rep)
    gen, st = c.status()
    check(weights_bp(st["stable"]) == {"blue": 0, "green": 10000}, "stable after promote: %r", st)
    n = len(audit_lines(audit))
    rep = c.call("rollback", {"route": ROUTE, "reason": "nothing to do"})
    check(rep.get("ok") is True and rep["result"].get("already") is True and
          rep.get("generation") == gen, "rollback at the stable weights: %r (generation %d)",
          rep, gen)
    g2_, _ = c.status()
    check(g2_ == gen, "the no-op rollback changed the generation %d -> %d", gen, g2_)
    lines = audit_lines(audit)
    check(len(lines) == n + 1 and lines[-1].get("op") == "rollback" and
          lines[-1].get("result") == "ok", "the no-op rollback was not audited: %r", lines[n:])
    s = shares(port, 50)
    check(s == {"green2": 50}, "after promote: %r", s)
    c.close()


test_drain_and_endpoints.timeout = 60


# --- 8. reload and history ---------------------------------------------------------------------

def test_reload_op_and_history():
    """reload with a bad file: invalid_argument with the config error paths in error.details;
    with a good one: ok and generation + 1; history lists the records newest last."""
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    control = control_section()
    pools = {"blue": [blue], "green": [green]}
    cfg = proxy_config(port, pools, {"blue": 100, "green": 0}, control)
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    c = Ctl(path)
    c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 40, "green": 60}, "reason": "s1"})
    rep = c.call("set-weights", {"route": ROUTE, "weights": {"blue": 40, "green": 61},
                                 "reason": "s2"})
    check(rep.get("ok") is False, "a bad set-weights was accepted: %r", rep)
    gen0, st0 = c.status()

    bad = json.loads(json.dumps(cfg))
    bad["routes"][0]["colour"] = "purple"
    cx.rewrite(bad)
    rep = c.call("reload", {"reason": "bad file"})
    err = rep.get("error") or {}
    check(rep.get("ok") is False and err.get("code") == "invalid_argument",
          "reload of a bad config: %r", rep)
    details = err.get("details")
    check(isinstance(details, list) and details, "no error.details: %r", rep)
    check(any(d.get("path", "").startswith("routes[0]") and "colour" in json.dumps(d)
              for d in details), "error.details does not name routes[0] / colour: %r", details)
    gen, st = c.status()
    check(gen == gen0 and snapshot_of(st) == snapshot_of(st0), "the refused reload changed the "
          "state: generation %d -> %d", gen0, gen)
    s = shares(port, 100)
    check(s.get("green", 0) >= 40, "40/60 after the refused reload: %r", s)

    # a good file that does not touch the route: the runtime weights are kept
    good = json.loads(json.dumps(cfg))
    good["timeouts"] = {"client_idle_ms": 30000}
    cx.rewrite(good)
    rep = c.call("reload", {"reason": "timeouts"})
    check(rep.get("ok") is True and rep.get("generation") == gen0 + 1, "good reload: %r "
          "(generation was %d)", rep, gen0)
    gen, st = c.status()
    check(gen == gen0 + 1 and weights_bp(st["weights"]) == {"blue": 4000, "green": 6000},
          "after a reload that keeps the route: generation %d weights %r", gen, st["weights"])
    # a good file that changes the configured weights: the configuration wins for the route
    good2 = proxy_config(port, pools, {"blue": 80, "green": 20}, control,
                         timeouts={"client_idle_ms": 30000})
    cx.rewrite(good2)
    rep = c.ok("reload")
    check(rep.get("generation") == gen0 + 2, "second reload generation: %r", rep)
    _, st = c.status()
    check(weights_bp(st["weights"]) == {"blue": 8000, "green": 2000},
          "after a reload that changes the configured weights: %r", st["weights"])

    # history shows changes; refused requests only on request (refusals: true)
    changes_only = c.ok("history", {"limit": 1000})["result"]["records"]
    check(changes_only and all(r.get("kind") == "change" for r in changes_only),
          "history without refusals: %r", changes_only)
    rep = c.ok("history", {"limit": 1000, "refusals": True})
    recs = rep["result"]["records"]
    lines_then = audit_lines(control["audit_file"])  # the file as history saw it
    check(len(recs) >= 5, "history: %r", recs)
    tail = [(r.get("op"), r.get("result"), (r.get("error") or {}).get("code")) for r in recs[-5:]]
    check(tail == [("set-weights", "ok", None), ("set-weights", "refused", "invalid_argument"),
                   ("reload", "refused", "invalid_argument"), ("reload", "ok", None),
                   ("reload", "ok", None)], "history tail (newest last): %r", tail)
    check(recs[-1].get("generation_after") == gen0 + 2 and
          recs[-3].get("generation_after") == gen0, "history generations: %r", recs[-3:])
    rep = c.ok("history", {"limit": 2})
    check([r.get("generation_after") for r in rep["result"]["records"]] == [gen0 + 1, gen0 + 2],
          "history limit 2: %r", rep["result"]["records"])
    for lim in (0, 1001, "5"):
        rep = c.call("history", {"limit": lim})
        check(rep.get("ok") is False and rep["error"].get("code") == "invalid_argument" and
              rep["error"].get("path") == "args.limit", "history limit %r: %r", lim, rep)
    # history agrees with the audit file as it was when history was read (the refused history
    # calls above are on the record since)
    lines = [x for x in lines_then if x.get("op") != "history"]
    check([(x.get("op"), x.get("result")) for x in lines[-5:]] ==
          [(r.get("op"), r.get("result")) for r in recs[-5:]], "audit file %r vs history %r",
          lines[-5:], recs[-5:])
    later = audit_lines(control["audit_file"])[len(lines_then):]
    check([(x.get("op"), x.get("result")) for x in later] == [("history", "refused")] * 3,
          "the refused history calls are audited: %r", later)
    c.close()


test_reload_op_and_history.timeout = 60


# --- 9. slow clients ---------------------------------------------------------------------------

def test_slow_client_does_not_block():
    """A connection with half a line (and one that sends nothing) does not block others; the
    data path keeps serving."""
    blue, green = start_upstream("blue"), start_upstream("green")
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 100, "green": 0})
    stuck = Ctl(path)
    stuck.send_raw(b'{"id": "partial", "op": "sta')
    silent = Ctl(path)
    load = Load(cx.port, threads=2, duration=2.0).start()
    for i in range(5):
        t0 = time.monotonic()
        with Ctl(path, timeout=2.0) as c:
            rep = c.call("status")
            if i == 2:
                c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 90, "green": 10},
                                     "reason": "while a client is stuck"})
        dt = time.monotonic() - t0
        check(rep.get("ok") is True and dt < 1.0, "status #%d with a stuck client: %.2f s, %r",
              i, dt, rep)
        time.sleep(0.2)
    load.join()
    check(not load.failures and len(load.ok) > 50, "data path with a stuck control client: %s",
          load.summary())
    check(all(r.status == 200 for r in load.ok), "non-200 on the data path")
    # the partial line completes: its reply comes then
    stuck.send_raw(b'tus"}\n')
    rep = stuck.read_line(timeout=2.0)
    check(rep.get("id") == "partial" and rep.get("ok") is True, "the completed line: %r", rep)
    check(weights_bp(rep["result"]["routes"][0]["weights"]) == {"blue": 9000, "green": 1000},
          "status on the completed line: %r", rep)
    rep = silent.call("version", timeout=2.0)
    check(rep.get("ok") is True, "the silent connection: %r", rep)
    stuck.close()
    silent.close()

    # a client that sends 20000 requests and never reads the replies (about 10 MB of them): the
    # server closes it (doc: a connection that does not read its replies is closed), and others
    # keep being served meanwhile
    nr = Ctl(path, timeout=5.0)
    nr.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    n_req = 20000
    sent = {}

    def flood():
        try:
            nr.sock.sendall(b'{"id": "n", "op": "status"}\n' * n_req)
            sent["all"] = True
        except OSError as e:  # closed by the server, or the 5 s timeout
            sent["error"] = repr(e)
    ft = threading.Thread(target=flood, daemon=True)
    ft.start()
    for i in range(3):
        t0 = time.monotonic()
        with Ctl(path, timeout=2.0) as c:
            rep = c.call("status")
        dt = time.monotonic() - t0
        check(rep.get("ok") is True and dt < 1.0, "status #%d next to a non-reading client: "
              "%.2f s, %r", i, dt, rep)
        time.sleep(0.2)
    ft.join(10)
    got = 0
    closed = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            nr.sock.settimeout(2.0)
            d = nr.sock.recv(1 << 20)
        except ConnectionResetError:
            closed = True
            break
        except socket.timeout:
            break
        if not d:
            closed = True
            break
        got += d.count(b"\n")
    nr.close()
    print("non-reading client: %d of %d replies readable, closed %s, sender %r"
          % (got, n_req, closed, sent))
    check(closed and got < n_req, "a client that does not read its replies was not closed "
          "(%d of %d replies readable; sender %r)", got, n_req, sent)
    check(cx.alive(), "cutover died")
    with Ctl(path, timeout=2.0) as c:
        check(c.call("status").get("ok") is True, "status after the non-reading client")


test_slow_client_does_not_block.timeout = 60


# --- 10. max_clients ---------------------------------------------------------------------------

def test_max_clients():
    """control.max_clients 2: a third connection is served, not refused: the idlest of the two
    open ones gives way (it is closed, event control_connection_evicted) and the other keeps
    working; a fourth pushes out the next idlest, never the one that just made a request."""
    blue, green = start_upstream("blue"), start_upstream("green")
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                           control=control_section(max_clients=2))
    n0 = len(cx.events())
    a = Ctl(path)
    check(a.call("version").get("ok") is True, "first connection")
    time.sleep(0.05)
    b = Ctl(path)
    check(b.call("version").get("ok") is True, "second connection")
    time.sleep(0.05)  # a is the idlest now (its last reply is the oldest)
    c = Ctl(path)
    rep = c.call("status")
    check(rep.get("ok") is True, "third connection: %r", rep)
    check(a.wait_closed(3.0), "the idlest connection was not closed")
    time.sleep(0.05)
    check(b.call("status").get("ok") is True, "the second connection stopped working")
    ev = cx.wait_event("control_connection_evicted", after=n0, timeout=3.0)
    check(ev.get("state") == "idle" and ev.get("uid") == os.geteuid(), "eviction event: %r", ev)
    # b just made a request; c is the idlest now and gives way to a fourth
    time.sleep(0.05)
    d = Ctl(path)
    check(d.call("version").get("ok") is True, "fourth connection")
    check(c.wait_closed(3.0), "the idlest connection (c) was not closed")
    check(b.call("version").get("ok") is True, "b was evicted instead of c")
    check(not [e for e in cx.events()[n0:] if e.get("event") == "control_request_timeout"],
          "request timeouts")
    for x in (a, b, c, d):
        x.close()
    check(cx.alive(), "cutover died")


test_max_clients.timeout = 30

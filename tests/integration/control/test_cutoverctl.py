"""cutoverctl, the control CLI, against fake_control.py (a fake control socket with in-memory
state): every command's happy path, --json, exit codes 2/3/4/5, fan-out to several replicas and
the --wait barrier. `shift` (a server-side plan; exit codes 6 and 130) is in
test_cutoverctl_shift.py.

Binary: $CUTOVERCTL_BIN, else $REPO/$BUILD/cutoverctl when BUILD is set, else build/cutoverctl.
Every fake is a separate process registered with the harness (stopped by PID); sockets live in a
short temporary directory (Unix socket paths are limited to 107 bytes).
"""
import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import REPO, HarnessError, Proc, _register, check, unique, run_bin

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/integration
FAKE_PY = os.path.join(HERE, "fake_control.py")

_sockdir = None


def sockdir():
    global _sockdir
    if _sockdir is None:
        _sockdir = tempfile.mkdtemp(prefix="cctl-")
        atexit.register(shutil.rmtree, _sockdir, True)
    return _sockdir


def ctl_bin():
    b = os.environ.get("CUTOVERCTL_BIN")
    if b:
        b = b if os.path.isabs(b) else os.path.join(REPO, b)
    else:
        b = os.path.join(REPO, os.environ.get("BUILD") or "build", "cutoverctl")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        raise HarnessError("cutoverctl binary not found or not executable: %s (build it, or "
                           "set CUTOVERCTL_BIN)" % b)
    return b


class Fake(Proc):
    kind = "fake_control"

    def __init__(self, popen, sock, log):
        super().__init__(popen)
        self.sock = sock
        self.logpath = log

    def log(self):
        """Every request the fake received: [{"request": {...}, "ok", "generation", "code"?}]."""
        out = []
        try:
            with open(self.logpath) as f:
                for line in f:
                    if line.endswith("\n"):
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def ops(self, op=None):
        return [e for e in self.log() if op is None or e["request"].get("op") == op]

    def stop(self):
        return self.terminate(timeout=5.0)


_nfake = 0


def start_fake(*extra):
    """Starts fake_control.py with extra arguments; returns once it printed "ready"."""
    global _nfake
    _nfake += 1
    sock = os.path.join(sockdir(), "r%d.sock" % _nfake)
    log = unique("fake%d" % _nfake) + ".log"
    errp = log + ".stderr"
    with open(errp, "w") as errf:
        p = subprocess.Popen([sys.executable, FAKE_PY, "--socket", sock, "--log", log]
                             + [str(a) for a in extra], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=errf, text=True)
    f = Fake(p, sock, log)
    _register(f)
    got = []
    t = threading.Thread(target=lambda: got.append(p.stdout.readline()), daemon=True)
    t.start()
    t.join(10.0)
    if not got or got[0].strip() != "ready":
        f.kill()
        with open(errp) as e:
            raise HarnessError("fake_control did not start: %r %s" % (got, e.read()[-2000:]))
    return f


def ctl(*args, timeout=30.0, env=None):
    """Runs cutoverctl; returns (exit code, stdout, stderr)."""
    p = run_bin([ctl_bin()] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=timeout,
                env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout, p.stderr


def socks(*fakes):
    out = []
    for f in fakes:
        out += ["--socket", f.sock]
    return out


def raw_request(sock, req, timeout=5.0):
    """One request straight to a fake (a concurrent operator)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    return json.loads(buf.split(b"\n")[0])


def app_weights(fake):
    rep = raw_request(fake.sock, {"id": "t", "op": "status", "args": {"route": "app"}})
    return rep["result"]["routes"][0]["weights"]


# --- happy paths ---------------------------------------------------------------------------------

def test_cutoverctl_status():
    f = start_fake("--generation", 7)
    code, out, err = ctl(*socks(f), "status")
    check(code == 0, "status exited %s: %s %s", code, out, err)
    for s in ("route app", "route tri", "generation 7", "blue", "green", "canary",
              "127.0.0.1:9001", "requests 1000", "5xx", "stable", "serving", "%"):
        check(s in out, "status output lacks %r:\n%s", s, out)
    code, out, err = ctl(*socks(f), "status", "app")
    check(code == 0 and "route app" in out and "route tri" not in out,
          "status app: %s %s %s", code, out, err)
    # the default socket comes from $CUTOVER_SOCKET
    code, out, err = ctl("status", env={"CUTOVER_SOCKET": f.sock})
    check(code == 0 and "route app" in out, "status via $CUTOVER_SOCKET: %s %s %s", code, out,
          err)
    code, out, err = ctl("--endpoint", "unix:" + f.sock, "version")
    check(code == 0 and "0.2.0-fake" in out, "--endpoint unix: %s %s %s", code, out, err)


def test_cutoverctl_commands():
    f = start_fake()
    S = socks(f)
    steps = [
        (["version"], ["cutoverctl", "0.2.0-fake", "protocol 1"]),
        (["set-weights", "app", "blue=90", "green=10", "--reason", "canary 10%"],
         ["ok", "blue=90%", "green=10%", "generation 2"]),
        (["set-weights", "app", "blue=87.5", "green=12.5", "--reason", "decimals",
          "--expect-generation", "2"], ["blue=87.5%", "green=12.5%", "generation 3"]),
        (["rollback", "app", "--reason", "INC-1"], ["blue=100%", "generation 4"]),
        (["rollback", "app", "--reason", "again"], ["already at stable"]),
        (["promote", "app", "green", "--reason", "done"], ["green=100%", "stable"]),
        (["drain", "app", "blue", "127.0.0.1:9001", "--reason", "maint"], ["drained"]),
        (["status", "app"], ["DRAINED"]),
        (["undrain", "app", "blue", "127.0.0.1:9001", "--reason", "maint over"],
         ["serving again"]),
        (["add-endpoint", "app", "green", "127.0.0.1:9003", "--reason", "scale"],
         ["127.0.0.1:9003 added"]),
        (["status", "app"], ["127.0.0.1:9003", "(added)"]),
        (["remove-endpoint", "app", "green", "127.0.0.1:9003", "--reason", "scale down"],
         ["removed"]),
        (["reload", "--reason", "new config"], ["reloaded"]),
        (["reload"], ["reloaded"]),
        (["history", "--limit", "3"], ["3 record(s)", "remove-endpoint", "reload"]),
        (["history"], ["set-weights", "canary 10%", "promote"]),
    ]
    for args, wants in steps:
        code, out, err = ctl(*S, *args)
        check(code == 0, "%s exited %s: %s %s", args, code, out, err)
        for w in wants:
            check(w in out, "%s: output lacks %r:\n%s", args, w, out)
    ops = [e["request"]["op"] for e in f.log()]
    check(ops[:2] == ["version", "set-weights"], "ops %r", ops)
    sw = f.ops("set-weights")[0]["request"]
    check(sw["args"] == {"route": "app", "weights": {"blue": 90, "green": 10},
                         "reason": "canary 10%"} and sw["v"] == 1 and sw["id"], "request %r", sw)
    sw2 = f.ops("set-weights")[1]["request"]["args"]
    check(sw2["weights"] == {"blue": 87.5, "green": 12.5} and sw2["expect_generation"] == 2,
          "second set-weights %r", sw2)
    ids = [e["request"]["id"] for e in f.log()]
    check(all(i.startswith("cutoverctl-") for i in ids), "generated ids %r", ids[:3])
    ctl(*S, "--id", "pipeline-42", "version")
    check(f.log()[-1]["request"]["id"] == "pipeline-42", "--id not used: %r", f.log()[-1])


def test_cutoverctl_json():
    a, b = start_fake("--generation", 3), start_fake("--generation", 5)
    code, out, err = ctl(*socks(a, b), "--json", "status")
    check(code == 0, "exit %s %s", code, err)
    doc = json.loads(out)
    check(doc["ok"] is True and len(doc["replicas"]) == 2, "doc %r", doc)
    r0, r1 = doc["replicas"]
    check(r0["socket"] == a.sock and r0["ok"] and r0["generation"] == 3 and
          r1["generation"] == 5, "replicas %r", doc["replicas"])
    check(r0["result"]["routes"][0]["name"] == "app", "result %r", r0["result"])
    code, out, err = ctl(*socks(a, b), "set-weights", "app", "blue=75", "green=25",
                         "--reason", "r", "--json")
    doc = json.loads(out)
    check(code == 0 and doc["ok"] and [r["generation"] for r in doc["replicas"]] == [4, 6],
          "set-weights --json %s %r", code, doc)
    check(doc["replicas"][0]["result"]["weights"] == {"blue": 75, "green": 25}, "%r", doc)
    # a refusal as JSON: the server's error object
    code, out, err = ctl(*socks(a), "--json", "rollback", "nope", "--reason", "r")
    doc = json.loads(out)
    check(code == 2 and doc["ok"] is False and doc["exit_code"] == 2, "%s %r", code, doc)
    check(doc["replicas"][0]["error"]["code"] == "not_found", "%r", doc)
    # a usage error as JSON too
    code, out, err = ctl(*socks(a), "--json", "set-weights", "app", "blue=75", "--reason", "r")
    doc = json.loads(out)
    check(code == 2 and doc["ok"] is False and doc["replicas"] == [], "%s %r", code, doc)


# --- exit codes ----------------------------------------------------------------------------------

def test_cutoverctl_usage_errors():
    f = start_fake()
    S = socks(f)
    bad = [
        ["set-weights", "app", "blue=90", "green=20", "--reason", "r"],      # sum 110
        ["set-weights", "app", "blue=90", "--reason", "r"],                  # sum 90
        ["set-weights", "app", "blue=90.123", "green=9.877", "--reason", "r"],  # 3 decimals
        ["set-weights", "app", "blue", "green=100", "--reason", "r"],        # not POOL=PCT
        ["set-weights", "app", "blue=-10", "green=110", "--reason", "r"],
        ["set-weights", "app", "blue=50", "blue=50", "--reason", "r"],       # twice
        ["set-weights", "app", "blue=90", "green=10"],                       # no reason
        ["set-weights", "app", "blue=90", "green=10", "--reason", ""],
        ["set-weights", "app", "blue=90", "green=10", "--reason", "x" * 513],
        ["set-weights", "app", "blue=90", "green=10", "--reason", "r", "--expect-generation",
         "abc"],
        ["set-weights", "app", "blue=90", "green=10", "--reason", "r", "--limit", "3"],
        ["set-weights"],
        ["promote", "app", "--reason", "r"],
        ["drain", "app", "blue", "--reason", "r"],
        ["history", "--limit", "0"],
        ["status", "--timeout", "soon"],
        ["frobnicate"],
        [],
        ["--bogus", "status"],
        ["shift", "app", "--to", "green", "--steps", "10,x", "--interval", "30s",
         "--reason", "r"],
        ["shift", "app", "--to", "green", "--steps", "10", "--interval", "5 parsecs",
         "--reason", "r"],
        ["shift", "app", "--steps", "10", "--interval", "30s", "--reason", "r"],
    ]
    for args in bad:
        code, out, err = ctl(*S, *args)
        check(code == 2, "%s exited %s (want 2): %s %s", args, code, out, err)
        check(err.strip(), "%s: no message on stderr", args)
    check(f.log() == [], "usage errors contacted the server: %r", f.log()[:3])
    # the HTTPS admin API needs a client certificate; a plain http:// endpoint is refused
    code, out, err = ctl("--endpoint", "https://cutover.example:9443", "status")
    check(code == 2 and "--cert" in err, "https endpoint without a certificate: %s %r", code, err)
    code, out, err = ctl("--endpoint", "http://cutover.example:9443", "status")
    check(code == 2 and "HTTPS only" in err, "http endpoint: %s %r", code, err)
    code, out, err = ctl("--help")
    check(code == 0 and "set-weights" in out and "Exit codes" in out, "--help %s", code)


def test_cutoverctl_refused_invalid():
    f = start_fake("--generation", 10)
    S = socks(f)
    cases = [
        (["set-weights", "nope", "blue=50", "green=50", "--reason", "r"], "not_found"),
        (["set-weights", "app", "blue=50", "purple=50", "--reason", "r"], "invalid_argument"),
        (["set-weights", "app", "blue=50", "green=50", "--reason", "r",
          "--expect-generation", "9"], "conflict"),
        (["drain", "app", "blue", "10.9.9.9:1", "--reason", "r"], "not_found"),
    ]
    for args, want in cases:
        code, out, err = ctl(*S, *args)
        check(code == 2, "%s exited %s (want 2): %s %s", args, code, out, err)
        check(want in out, "%s: %r not in output %r", args, want, out)
    check(app_weights(f) == {"blue": 100, "green": 0}, "weights changed: %r", app_weights(f))
    code, out, err = ctl(*S, "history")
    check(code == 0 and "REFUSED" in out and "[conflict]" in out and "[not_found]" in out,
          "history does not show the refusals: %s %r", code, out)


def test_cutoverctl_denied():
    f = start_fake("--deny")
    code, out, err = ctl(*socks(f), "set-weights", "app", "blue=50", "green=50", "--reason", "r")
    check(code == 3, "denied exited %s: %s %s", code, out, err)
    check("denied" in out, "output %r", out)
    code, out, err = ctl(*socks(f), "status")  # a viewer may still read
    check(code == 0, "status as viewer exited %s", code)


def test_cutoverctl_unreachable():
    missing = os.path.join(sockdir(), "nobody.sock")
    code, out, err = ctl("--socket", missing, "status")
    check(code == 4, "missing socket exited %s: %s %s", code, out, err)
    check("unreachable" in out + err and missing in out + err, "report %r %r", out, err)
    # a socket file nobody listens on
    dead = os.path.join(sockdir(), "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(dead)
    s.close()
    code, out, err = ctl("--socket", dead, "--socket", missing, "version")
    check(code == 4, "dead sockets exited %s: %s %s", code, out, err)
    # a server slower than --timeout
    slow = start_fake("--delay-ms", 3000)
    t0 = time.monotonic()
    code, out, err = ctl(*socks(slow), "--timeout", "0.3", "status")
    dt = time.monotonic() - t0
    check(code == 4 and "timeout" in out + err, "slow server exited %s: %s %s", code, out, err)
    check(dt < 2.0, "--timeout 0.3 took %.2f s", dt)
    # internal errors count as "could not do it now" (4)
    sick = start_fake("--fail-op", "set-weights")
    code, out, err = ctl(*socks(sick), "set-weights", "app", "blue=50", "green=50",
                         "--reason", "r")
    check(code == 4 and "internal" in out, "internal exited %s: %s", code, out)


def test_cutoverctl_partial():
    a, b, c = start_fake(), start_fake(), start_fake()
    b.stop()
    code, out, err = ctl(*socks(a, b, c), "set-weights", "app", "blue=80", "green=20",
                         "--reason", "partial")
    check(code == 5, "exit %s (want 5): %s %s", code, out, err)
    check(b.sock in err and "PARTIAL" in err, "stderr does not name the dead replica: %r", err)
    lines = [l for l in out.splitlines() if b.sock in l]
    check(lines and "FAILED" in lines[0] and "unreachable" in lines[0], "report %r", out)
    check(app_weights(a) == {"blue": 80, "green": 20} and
          app_weights(c) == {"blue": 80, "green": 20}, "the live replicas were not changed")
    code, out, err = ctl(*socks(a, b, c), "--json", "status")
    doc = json.loads(out)
    check(code == 5 and [r["ok"] for r in doc["replicas"]] == [True, False, True],
          "status --json %s %r", code, doc)
    check(doc["replicas"][1]["socket"] == b.sock and
          doc["replicas"][1]["error"]["code"] == "unreachable", "%r", doc["replicas"][1])
    # one denied, one ok: also partial
    d = start_fake("--deny")
    code, out, err = ctl(*socks(a, d), "rollback", "app", "--reason", "r")
    check(code == 5 and d.sock in err, "ok+denied exited %s: %s", code, err)


def test_cutoverctl_wait():
    a, lag = start_fake(), start_fake("--lag-ms", 400)
    t0 = time.monotonic()
    code, out, err = ctl(*socks(a, lag), "--wait", "set-weights", "app", "blue=50", "green=50",
                         "--reason", "barrier")
    dt = time.monotonic() - t0
    check(code == 0, "--wait with a lagging replica exited %s: %s %s", code, out, err)
    check(dt >= 0.3, "--wait returned after %.2f s, before the lagging replica caught up", dt)
    # the barrier polls status (through a replica with a fleet store it reports every replica)
    check(len(lag.ops("status")) >= 2, "the barrier did not poll: %r", lag.ops("status"))
    # a replica that never reports its generation: exit 5, named
    stuck = start_fake("--lag-ms", -1)
    t0 = time.monotonic()
    code, out, err = ctl(*socks(a, stuck), "--wait", "--wait-timeout", "1", "--json",
                         "set-weights", "app", "blue=60", "green=40", "--reason", "barrier")
    dt = time.monotonic() - t0
    doc = json.loads(out)
    check(code == 5, "stuck replica exited %s: %s %s", code, out, err)
    check(0.9 <= dt < 5.0, "--wait-timeout 1 took %.2f s", dt)
    r = doc["replicas"][1]
    check(r["socket"] == stuck.sock and not r["ok"] and r["error"]["code"] == "wait_timeout",
          "stuck replica report %r", r)
    check(stuck.sock in err, "stderr %r", err)
    # every replica stuck: 4
    code, out, err = ctl(*socks(stuck), "--wait", "--wait-timeout", "0.5", "rollback", "app",
                         "--reason", "r")
    check(code == 4 and "wait_timeout" in out, "all stuck exited %s: %s %s", code, out, err)


# --- framing robustness --------------------------------------------------------------------------

class _OneShotServer:
    """A Unix socket server in a thread that answers each request with behave(conn, line)."""

    _seq = iter(range(1, 1 << 30))

    def __init__(self, behave):
        # A counter, not id(self): ids are reused once an earlier server is collected, and its
        # socket file would still be there.
        self.path = os.path.join(sockdir(), "oneshot-%d-%d.sock" % (os.getpid(), next(self._seq)))
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(self.path)
        self.ls.listen(8)
        self.ls.settimeout(0.1)
        self.behave = behave
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        deadline = time.monotonic() + 30.0
        while not self.stop_ev.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.ls.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(5.0)
                buf = b""
                try:
                    while b"\n" not in buf:
                        d = conn.recv(65536)
                        if not d:
                            break
                        buf += d
                    self.behave(conn, json.loads(buf.split(b"\n")[0]))
                except (OSError, ValueError):
                    pass

    def close(self):
        self.stop_ev.set()
        self.t.join(5.0)
        self.ls.close()


def test_cutoverctl_framing():
    def dribble(conn, req):  # a reply in small pieces, after a blank line
        data = b"\n" + json.dumps({"id": req["id"], "ok": True, "generation": 9, "result": {
            "version": "dribble", "protocol": 1}}).encode() + b"\n"
        for i in range(0, len(data), 7):
            conn.sendall(data[i:i + 7])
            time.sleep(0.01)

    def huge(conn, req):  # 17 MiB without a newline
        chunk = b"x" * (1 << 20)
        for _ in range(17):
            conn.sendall(chunk)

    def wrong_id(conn, req):
        conn.sendall(json.dumps({"id": "other", "ok": True, "generation": 1}).encode() + b"\n")

    def hangup(conn, req):
        conn.sendall(b'{"id": "')

    for behave, want_code, want in ((dribble, 0, "dribble"), (huge, 4, "16 MiB"),
                                    (wrong_id, 4, "does not match"), (hangup, 4, "closed")):
        srv = _OneShotServer(behave)
        try:
            code, out, err = ctl("--socket", srv.path, "--timeout", "10", "version")
        finally:
            srv.close()
        check(code == want_code and want in out + err, "%s: exit %s: %s %s", behave.__name__,
              code, out[-500:], err[-500:])

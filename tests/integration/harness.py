"""harness.py - helpers for the cutover integration tests (Python 3.11 standard library only).

Processes: start_upstream(name) and start_cutover(config) start real processes on 127.0.0.1,
remember them, and stop them by PID (cleanup_all() stops whatever is left). When the environment
variable CUTOVER_IT_PIDFILE is set (run.py sets it), every started PID is also appended there
with its start time, so the runner can stop leftovers of a test it had to kill.

Clients: RawConn is a keep-alive HTTP/1.1 client on a raw socket (exact bytes, pipelining,
chunked uploads, malformed input); http_request() is a simple http.client one. Load runs N
threads of keep-alive clients and records every request.

Binary: $CUTOVER_BIN, else $REPO/$BUILD/cutover when BUILD is set, else $REPO/build/cutover.
"""
import atexit
import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
UPSTREAM_PY = os.path.join(HERE, "upstream.py")
H2UPSTREAM_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "h2upstream.py")
HOST = "127.0.0.1"
DEFAULT_HOST_HEADER = "app.test"


class HarnessError(AssertionError):
    """A failure of the environment or of the proxy under test, with a clear message."""


# --- small utilities ---------------------------------------------------------------------------

def cutover_bin():
    b = os.environ.get("CUTOVER_BIN")
    if b:
        return b if os.path.isabs(b) else os.path.join(REPO, b)
    return os.path.join(REPO, os.environ.get("BUILD") or "build", "cutover")


def require_bin():
    b = cutover_bin()
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        raise HarnessError("cutover binary not found or not executable: %s "
                           "(build it with `make`, or set CUTOVER_BIN)" % b)
    return b


_workdir = None


def workdir():
    """The directory for this test's configs and logs ($CUTOVER_IT_WORKDIR or a temp dir)."""
    global _workdir
    if _workdir is None:
        _workdir = os.environ.get("CUTOVER_IT_WORKDIR") or tempfile.mkdtemp(prefix="cutover-it-")
        os.makedirs(_workdir, exist_ok=True)
    return _workdir


_seq = 0
_seq_lock = threading.Lock()


def unique(prefix):
    global _seq
    with _seq_lock:
        _seq += 1
        return os.path.join(workdir(), "%s-%d" % (prefix, _seq))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_port(port, timeout=10.0, proc=None):
    """Waits until a TCP connect to 127.0.0.1:port succeeds. Raises HarnessError on timeout or
    when proc (a Popen) exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise HarnessError("process %d exited with code %s before listening on %d"
                               % (proc.pid, proc.returncode, port))
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise HarnessError("nothing listening on 127.0.0.1:%d after %.1f s" % (port, timeout))
        time.sleep(0.02)


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Polls pred() until it returns a true value (returned); HarnessError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise HarnessError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# --- the deterministic download pattern (same definition as upstream.py) ------------------------

_CYCLE_LEN = 251 * 256
_CYCLE = bytes(((i % 251) ^ ((i // 251) % 256)) for i in range(_CYCLE_LEN))


def pattern(n):
    """The n bytes upstream.py sends for /size/N and /chunked/N."""
    reps = n // _CYCLE_LEN + 1
    return (_CYCLE * reps)[:n]


_pattern_sha = {}


def pattern_sha256(n):
    if n not in _pattern_sha:
        h = hashlib.sha256()
        off = 0
        while off < n:
            k = min(_CYCLE_LEN, n - off)
            h.update(_CYCLE[:k])  # off is always a multiple of _CYCLE_LEN here
            off += k
        _pattern_sha[n] = h.hexdigest()
    return _pattern_sha[n]


def random_bytes(n, seed=1):
    return random.Random(seed).randbytes(n)


class BodyHash:
    """A body sink: sha256 and length of what it was fed (for large bodies)."""

    def __init__(self):
        self.h = hashlib.sha256()
        self.length = 0

    def update(self, data):
        self.h.update(data)
        self.length += len(data)

    def hexdigest(self):
        return self.h.hexdigest()


# --- process bookkeeping -------------------------------------------------------------------------

_procs = []  # every Proc started by this process, in order
_procs_lock = threading.Lock()


def _proc_start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        return st[st.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def _register(proc):
    with _procs_lock:
        _procs.append(proc)
    pf = os.environ.get("CUTOVER_IT_PIDFILE")
    if pf:
        with open(pf, "a") as f:
            f.write("%d %s %s\n" % (proc.pid, _proc_start_time(proc.pid) or "-", proc.kind))


class Proc:
    kind = "proc"

    def __init__(self, popen):
        self.popen = popen
        self.pid = popen.pid
        # Signals the test sent on purpose to end the process (kill() adds SIGKILL): an exit by
        # one of these is not a crash (see crash_report()).
        self.expected_signals = set()

    def alive(self):
        return self.popen.poll() is None

    def expect_signal(self, sig):
        """Records that the test itself sends sig to end this process (so dying by it is no
        crash). kill() does it for SIGKILL."""
        self.expected_signals.add(int(sig))

    def kill(self):
        """SIGKILL by PID and reap (a deliberate kill: not reported as a crash)."""
        if self.popen.poll() is None:
            self.expect_signal(signal.SIGKILL)
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return self.popen.returncode

    def terminate(self, timeout=10.0):
        """SIGTERM by PID, wait up to timeout, then SIGKILL. Returns the exit code (or the
        negative signal number)."""
        if self.popen.poll() is None:
            self.expect_signal(signal.SIGTERM)
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode


@atexit.register
def cleanup_all():
    """Stops every process this harness started that is still running (newest first).
    Also runs at interpreter exit, so a crashing script leaves no process behind."""
    with _procs_lock:
        procs = list(reversed(_procs))
    for p in procs:
        try:
            if p.alive():
                p.terminate(timeout=3.0)
        except Exception:
            pass


# --- crash detection -----------------------------------------------------------------------------

# What a sanitizer prints when it finds something (ASan, LSan, UBSan, TSan).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")
# The exit codes the sanitizer runs give the sanitizers (ASAN_OPTIONS exitcode=66, UBSan 67).
SANITIZER_EXIT_CODES = {66: "AddressSanitizer/LeakSanitizer", 67: "UndefinedBehaviorSanitizer",
                        68: "ThreadSanitizer"}
# How long the post-test check waits for a cutover to exit after its SIGTERM before SIGKILL.
# The proxy is told to stop while nothing is in flight any more (the test is over), so only
# a graceful drain of what a test left behind can take time; a proxy that needs SIGKILL after
# this is reported (it hangs on shutdown).
CLEANUP_STOP_TIMEOUT = 15.0


def _signame(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return "signal %d" % n


def sanitizer_report(text, lines=12):
    """The first lines of the first sanitizer report in text, or None."""
    best = None
    for m in SANITIZER_MARKERS:
        i = text.find(m)
        if i >= 0 and (best is None or i < best):
            best = i
    if best is None:
        return None
    start = text.rfind("\n", 0, best) + 1
    return "\n".join(text[start:].splitlines()[:lines])


def crash_report(proc):
    """Why proc (a Cutover that has exited, or a running one: stderr only) counts as crashed,
    or None: it died by a signal the test did not send on purpose (Proc.expected_signals), it
    exited with a sanitizer's exit code (66, 67), or its stderr holds a sanitizer report."""
    problems = []
    rc = proc.popen.poll()
    if rc is not None and rc < 0 and -rc not in proc.expected_signals:
        problems.append("died by %s" % _signame(-rc))
    elif rc in SANITIZER_EXIT_CODES:
        problems.append("exited with code %d (%s)" % (rc, SANITIZER_EXIT_CODES[rc]))
    text = proc.stderr_text() if hasattr(proc, "stderr_text") else ""
    rep = sanitizer_report(text)
    if rep:
        problems.append("sanitizer report on stderr:\n" + rep)
    elif problems and text.strip():
        problems.append("stderr ends:\n" + "\n".join(text.rstrip().splitlines()[-8:]))
    if not problems:
        return None
    return "cutover pid %d %s" % (proc.pid, "; ".join(problems))


def forget(proc):
    """Takes proc out of the processes cleanup_all() and stop_and_check() look at (for the
    tests of the checker itself, which crash a proxy on purpose)."""
    with _procs_lock:
        if proc in _procs:
            _procs.remove(proc)


def stop_and_check(procs=None, timeout=CLEANUP_STOP_TIMEOUT):
    """The post-test check (run.py runs it after every test, passed or failed): every cutover
    process in procs (default: all this harness started) still running gets SIGTERM, and is
    waited for up to timeout (all in parallel), then SIGKILLed; then each one's exit is judged
    by crash_report(), and one that had to be SIGKILLed is reported too. Returns the list of
    problems (strings; empty when all is well). Other processes are left to cleanup_all()."""
    if procs is None:
        with _procs_lock:
            procs = list(_procs)
    cuts = [p for p in procs if isinstance(p, Cutover)]
    termed = []
    for p in cuts:
        if p.popen.poll() is None:
            p.expect_signal(signal.SIGTERM)  # a graceful stop, not an exit by the signal
            try:
                os.kill(p.pid, signal.SIGTERM)
                termed.append(p)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    hung = []
    for p in termed:
        try:
            p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            hung.append(p)
    problems = []
    for p in hung:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        p.expect_signal(signal.SIGKILL)
        problems.append("cutover pid %d did not exit within %.0f s of SIGTERM (SIGKILLed)"
                        % (p.pid, timeout))
    for p in cuts:
        if p.popen.poll() is None:
            continue  # could not be stopped (reported above)
        rep = crash_report(p)
        if rep:
            problems.append(rep)
    return problems


# --- the test upstream ---------------------------------------------------------------------------

def json_lines(path):
    """The complete JSON lines of a log file written by another process ([] before it exists)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


class Upstream(Proc):
    kind = "upstream"

    def __init__(self, popen, name, port, log):
        super().__init__(popen)
        self.name = name
        self.port = port
        self.log = log
        self.addr = "%s:%d" % (HOST, port)

    def requests(self):
        """Every request the upstream logged so far (list of dicts)."""
        return json_lines(self.log)

    def stop(self):
        return self.terminate(timeout=5.0)


def start_h2upstream(name, port=None, args=()):
    """Starts h2upstream.py (HTTP/2: h2c, or h2 over TLS with --tls-cert/--tls-key)."""
    return start_upstream(name, port, args, script=H2UPSTREAM_PY)


def start_upstream(name, port=None, args=(), script=None):
    """Starts upstream.py as a separate process; returns once it printed "ready" and accepts.
    args: extra command-line arguments (e.g. --tls-cert/--tls-key/--tls-client-ca)."""
    port = port or free_port()
    log = unique("upstream-%s.log" % name)
    open(log, "w").close()
    errf = open(log + ".stderr", "w")
    p = subprocess.Popen([sys.executable, script or UPSTREAM_PY, "--port", str(port), "--name", name,
                          "--log", log, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=errf, text=True)
    errf.close()
    up = Upstream(p, name, port, log)
    _register(up)
    # "ready" on stdout, bounded in time by a reader thread.
    got = []
    t = threading.Thread(target=lambda: got.append(p.stdout.readline()), daemon=True)
    t.start()
    t.join(10.0)
    if not got or got[0].strip() != "ready":
        up.kill()
        with open(log + ".stderr") as f:
            err = f.read()[-2000:]
        raise HarnessError("upstream %s did not start on port %d: %r %s" % (name, port, got, err))
    wait_port(port, 5.0, p)
    return up


# --- the proxy -----------------------------------------------------------------------------------

def write_config(cfg, path=None):
    """Writes a config dict as JSON (atomically: temp file + rename). Returns the path."""
    path = path or unique("cutover") + ".json"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        if isinstance(cfg, str):
            f.write(cfg)
        else:
            json.dump(cfg, f, indent=2)
    os.replace(tmp, path)
    return path


def make_config(port, pools, weights, sticky=None, override=None, timeouts=None, limits=None,
                trusted_proxies=None, hosts=None, route_name="app", workers=2, **top):
    """A one-listener, one-route config. pools: {"blue": [Upstream or "host:port", ...], ...}
    (pool order as given)."""
    pdict = {}
    for name, eps in pools.items():
        pdict[name] = {"endpoints": [e.addr if isinstance(e, Upstream) else e for e in eps]}
    route = {"name": route_name, "path_prefix": "/", "pools": pdict, "weights": dict(weights)}
    if hosts is not None:
        route["hosts"] = hosts
    if sticky is not None:
        route["sticky"] = sticky
    if override is not None:
        route["override"] = override
    cfg = {"cluster": "it-cluster", "region": "it-region", "workers": workers,
           "listeners": [{"name": "main", "address": "%s:%d" % (HOST, port)}],
           "trusted_proxies": trusted_proxies if trusted_proxies is not None else [],
           "routes": [route]}
    if timeouts:
        cfg["timeouts"] = timeouts
    if limits:
        cfg["limits"] = limits
    cfg.update(top)
    return cfg


class StdoutLog:
    """Follows a JSON-lines file incrementally (the proxy's stdout)."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = b""
        self.lines = []  # parsed dicts; non-JSON lines as {"type": "_raw", "line": ...}
        self.lock = threading.Lock()

    def poll(self):
        with self.lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self.offset)
                    data = f.read()
            except FileNotFoundError:
                return self.lines
            self.offset += len(data)
            data = self.partial + data
            *complete, self.partial = data.split(b"\n")
            for raw in complete:
                if not raw.strip():
                    continue
                try:
                    d = json.loads(raw)
                    if not isinstance(d, dict):
                        d = {"type": "_raw", "line": raw.decode("utf-8", "replace")}
                except ValueError:
                    d = {"type": "_raw", "line": raw.decode("utf-8", "replace")}
                self.lines.append(d)
            return self.lines

    def events(self, name=None):
        return [d for d in self.poll() if d.get("type") == "event"
                and (name is None or d.get("event") == name)]

    def access(self):
        return [d for d in self.poll() if d.get("type") == "access"]


class Cutover(Proc):
    kind = "cutover"

    def __init__(self, popen, port, config, config_path, stdout_path, stderr_path):
        super().__init__(popen)
        self.port = port
        self.config = config
        self.config_path = config_path
        self.stdout = stdout_path
        self.stderr = stderr_path
        self.log = StdoutLog(stdout_path)

    def stderr_text(self):
        try:
            with open(self.stderr, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def events(self, name=None):
        return self.log.events(name)

    def access(self):
        return self.log.access()

    def wait_event(self, names, after=0, timeout=10.0):
        """Waits for an event whose name is in names (a string or a tuple) among the events after
        the first `after` events; returns it. Raises when the process dies or on timeout."""
        if isinstance(names, str):
            names = (names,)

        def look():
            evs = self.events()
            for e in evs[after:]:
                if e.get("event") in names:
                    return e
            if not self.alive():
                raise HarnessError("cutover exited (code %s) while waiting for event %s; "
                                   "stderr: %s" % (self.popen.returncode, names,
                                                   self.stderr_text()[-2000:]))
            return None
        return wait_until(look, timeout, what="cutover event %s" % (names,))

    def rewrite(self, config):
        """Rewrites the config file in place (atomically)."""
        if not isinstance(config, str):
            self.config = config
        write_config(config, self.config_path)

    def reload(self, expect=("reload", "reload_refused"), timeout=10.0):
        """Sends SIGHUP and waits for the next reload or reload_refused event (returned). Raises
        when the event that came is not in expect."""
        if isinstance(expect, str):
            expect = (expect,)
        n = len(self.events())
        os.kill(self.pid, signal.SIGHUP)
        ev = self.wait_event(("reload", "reload_refused"), after=n, timeout=timeout)
        if ev.get("event") not in expect:
            raise HarnessError("after SIGHUP expected %s, got %s" % (expect, ev))
        return ev

    def stop(self, expect_code=0, timeout=None):
        """SIGTERM, wait for exit; asserts the exit code (unless expect_code is None)."""
        if timeout is None:
            drain = (self.config.get("timeouts") or {}).get("drain_ms", 25000) if isinstance(
                self.config, dict) else 25000
            delay = (self.config.get("timeouts") or {}).get("shutdown_delay_ms", 0) if isinstance(
                self.config, dict) else 0
            timeout = min(60.0, (drain + delay) / 1000.0 + 10.0)
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HarnessError("cutover did not exit within %.1f s of SIGTERM" % timeout)
        if expect_code is not None and code != expect_code:
            raise HarnessError("cutover exited with code %s, expected %s; stderr: %s"
                               % (code, expect_code, self.stderr_text()[-2000:]))
        return code

    def wait_exit(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError("cutover did not exit within %.1f s" % timeout)


def start_cutover(config, workers=2, wait=True, timeout=10.0, prefix=(), config_path=None):
    """Writes config (a dict; its first listener's port is the proxy port), starts
    `cutover -c FILE -w WORKERS` with stdout/stderr to files, waits for it to accept and for its
    "started" event (logged once the control socket, admin API and metrics listener are up: the
    proxy port accepts before them). prefix: argv words put before the binary, a wrapper that
    ends by exec'ing it (so the PID stays cutover's: setpriv, unshare); config_path: where the
    file is written (default: the work directory)."""
    b = require_bin()
    path = write_config(config, config_path)
    base = unique("cutover")
    out, err = base + ".stdout", base + ".stderr"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.Popen([*prefix, b, "-c", path, "-w", str(workers)], stdin=subprocess.DEVNULL,
                             stdout=fo, stderr=fe, cwd=workdir())
    port = int(config["listeners"][0]["address"].rsplit(":", 1)[1])
    c = Cutover(p, port, config, path, out, err)
    _register(c)
    if wait:
        try:
            wait_port(port, timeout, p)
            c.wait_event("started", timeout=timeout)
        except HarnessError as e:
            c.kill()
            raise HarnessError("%s; stderr: %s" % (e, c.stderr_text()[-2000:]))
    return c


def exit_problem(returncode, stderr, expected_signals=()):
    """Why a finished cutover or cutoverctl counts as crashed (a signal it was not sent on
    purpose, a sanitizer's exit code, a sanitizer report on stderr), or None."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    problems = []
    if returncode is not None and returncode < 0 and -returncode not in expected_signals:
        problems.append("died by %s" % _signame(-returncode))
    elif returncode in SANITIZER_EXIT_CODES:
        problems.append("exited with code %d (%s)" % (returncode, SANITIZER_EXIT_CODES[returncode]))
    rep = sanitizer_report(stderr or "")
    if rep:
        problems.append("sanitizer report on stderr:\n" + rep)
    return "; ".join(problems) or None


def run_bin(argv, expected_signals=(), **kw):
    """subprocess.run() for a cutover or cutoverctl the test runs to completion (--check,
    --version, the CLI): a crash fails the test, whatever exit code the test expects
    (a refusal's non-zero exit must not hide a SIGSEGV). stderr is captured when the caller does
    not redirect it."""
    if "stderr" not in kw and not kw.get("capture_output"):
        kw["stderr"] = subprocess.PIPE
    p = subprocess.run(argv, **kw)
    why = exit_problem(p.returncode, p.stderr, expected_signals)
    if why:
        raise HarnessError("%s %s" % (os.path.basename(str(argv[0])), why))
    return p


def wait_bin(popen, timeout, expected_signals=(), stderr_text=""):
    """popen.wait() for a cutover or cutoverctl started with Popen: a crash fails the test."""
    rc = popen.wait(timeout=timeout)
    why = exit_problem(rc, stderr_text, expected_signals)
    if why:
        raise HarnessError("pid %d %s" % (popen.pid, why))
    return rc


def run_check(config_path, timeout=10.0):
    """Runs `cutover --check -c FILE`; returns (exit code, stdout, stderr)."""
    b = require_bin()
    p = run_bin([b, "--check", "-c", config_path], stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


# --- the raw-socket HTTP/1.1 client --------------------------------------------------------------

class ClosedBeforeResponse(ConnectionError):
    """The connection was closed (EOF or reset) before any byte of the response arrived."""


class ProtocolError(Exception):
    pass


class Response:
    def __init__(self, version, status, reason, headers, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] as received
        self.raw_head = raw_head
        self.body = b""
        self.body_length = 0
        self.sink = None
        self.interim = []  # 1xx responses that came before this one
        self.trailers = []  # [(name, value)] of a chunked body

    def header(self, name, default=None):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def tokens(self, name):
        out = []
        for v in self.header_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def json(self):
        return json.loads(self.body)

    @property
    def upstream(self):
        return self.header("x-upstream")

    @property
    def keep_alive(self):
        if "close" in self.tokens("connection"):
            return False
        if self.version == "HTTP/1.0":
            return "keep-alive" in self.tokens("connection")
        return True

    def __repr__(self):
        return "<Response %s %s upstream=%s len=%d>" % (self.status, self.reason, self.upstream,
                                                        self.body_length)


def build_request(method, path, headers=None, body=None, host=DEFAULT_HOST_HEADER,
                  chunked=False, version="HTTP/1.1"):
    """The head (and the body when it is bytes and not chunked) as bytes. headers: a dict or a
    list of pairs, sent in order; Host and Content-Length are added unless present."""
    hl = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {n.lower() for n, _ in hl}
    out = ["%s %s %s" % (method, path, version)]
    if host is not None and "host" not in names:
        out.append("Host: " + host)
    out += ["%s: %s" % (n, v) for n, v in hl]
    if chunked:
        if "transfer-encoding" not in names:
            out.append("Transfer-Encoding: chunked")
    elif body is not None and "content-length" not in names:
        out.append("Content-Length: %d" % len(body))
    head = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
    return head


def chunk_encode(data, sizes=(1, 10, 1000, 4096, 65536, 7, 300000, 17)):
    """Chunked framing of data with chunks of varying sizes (generator of bytes)."""
    off, i = 0, 0
    n = len(data)
    mv = memoryview(data)
    while off < n:
        k = min(sizes[i % len(sizes)], n - off)
        i += 1
        yield b"%x\r\n" % k + bytes(mv[off:off + k]) + b"\r\n"
        off += k
    yield b"0\r\n\r\n"


class RawConn:
    """One keep-alive HTTP/1.1 connection on a raw socket."""

    connects = 0  # class-wide count of TCP connects (for statistics)

    def __init__(self, port, host=HOST, timeout=10.0):
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local_port = self.sock.getsockname()[1]
        self.buf = bytearray()
        self.responses = 0   # complete responses read on this connection
        self.eof = False
        RawConn.connects += 1

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t):
        self.timeout = t
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self, n=262144):
        """Reads more bytes into buf; returns the count (0 at EOF)."""
        if self.eof:
            return 0
        data = self.sock.recv(n)
        if not data:
            self.eof = True
        self.buf += data
        return len(data)

    def recv_some(self, n=65536, timeout=None):
        """Returns buffered bytes or the next recv() (b"" at EOF)."""
        if self.buf:
            d = bytes(self.buf[:n])
            del self.buf[:n]
            return d
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(n)
        finally:
            if timeout is not None:
                self.sock.settimeout(self.timeout)
        if not d:
            self.eof = True
        return d

    def read_all_until_close(self, limit=1 << 26):
        while not self.eof and len(self.buf) < limit:
            self._fill()
        d = bytes(self.buf)
        self.buf.clear()
        return d

    def _read_head(self, first):
        start = 0
        while True:
            i = self.buf.find(b"\r\n\r\n", max(0, start - 3))
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            start = len(self.buf)
            if len(self.buf) > (1 << 20):
                raise ProtocolError("response head over 1 MiB")
            try:
                n = self._fill()
            except (ConnectionResetError, BrokenPipeError) as e:
                if first and not self.buf:
                    raise ClosedBeforeResponse("connection reset before the response: %s" % e)
                raise
            if n == 0:
                if first and not self.buf:
                    raise ClosedBeforeResponse("connection closed before the response")
                raise ProtocolError("connection closed inside a response head: %r"
                                    % bytes(self.buf[:200]))

    def _read_exact(self, n, sink, parts):
        while n > 0:
            if not self.buf:
                if self._fill(min(max(n, 65536), 1 << 20)) == 0:
                    raise ProtocolError("connection closed inside a response body "
                                        "(%d bytes missing)" % n)
            k = min(n, len(self.buf))
            piece = bytes(self.buf[:k])
            del self.buf[:k]
            if sink is not None:
                sink.update(piece)
            else:
                parts.append(piece)
            n -= k

    def _read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > 65536:
                raise ProtocolError("chunk line too long")
            if self._fill() == 0:
                raise ProtocolError("connection closed inside chunked framing")

    def read_response(self, method="GET", sink=None, stop_at_interim=False):
        """Reads one response (skipping 1xx interim responses, kept in .interim, unless
        stop_at_interim). sink: an object with update(bytes) that receives the body instead of
        .body. Raises ClosedBeforeResponse when nothing at all arrived."""
        interim = []
        first = True
        while True:
            head = self._read_head(first)
            first = False
            lines = head[:-4].decode("latin-1").split("\r\n")
            m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
            if not m:
                raise ProtocolError("bad status line %r" % lines[0][:200])
            headers = []
            for l in lines[1:]:
                if ":" not in l:
                    raise ProtocolError("bad header line %r" % l[:200])
                n, v = l.split(":", 1)
                headers.append((n, v.strip(" \t")))
            r = Response(m.group(1), int(m.group(2)), m.group(3) or "", headers, head)
            if 100 <= r.status < 200 and r.status != 101:
                interim.append(r)
                if stop_at_interim:
                    return r
                continue
            break
        r.interim = interim
        r.sink = sink
        parts = []
        te = r.tokens("transfer-encoding")
        if method == "HEAD" or r.status in (204, 304) or r.status == 101:
            pass
        elif te and te[-1] == "chunked":
            while True:
                line = self._read_line()
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError("bad chunk size line %r" % line[:100])
                if size == 0:
                    while True:  # trailers
                        tl = self._read_line()
                        if tl == b"":
                            break
                        n, _, v = tl.decode("latin-1").partition(":")
                        r.trailers.append((n.strip(), v.strip()))
                    break
                self._read_exact(size, sink, parts)
                if self._read_line() != b"":
                    raise ProtocolError("no CRLF after chunk data")
        elif r.header("content-length") is not None:
            try:
                n = int(r.header("content-length"))
            except ValueError:
                raise ProtocolError("bad Content-Length %r" % r.header("content-length"))
            self._read_exact(n, sink, parts)
        else:  # until close
            while self._fill() > 0:
                pass
            d = bytes(self.buf)
            self.buf.clear()
            if sink is not None:
                sink.update(d)
            else:
                parts.append(d)
        if sink is None:
            r.body = b"".join(parts)
            r.body_length = len(r.body)
        else:
            r.body_length = getattr(sink, "length", 0)
        self.responses += 1
        return r

    def request(self, method, path, headers=None, body=None, host=DEFAULT_HOST_HEADER,
                chunked=False, sink=None, version="HTTP/1.1"):
        """Sends one request and reads its response. body: bytes (Content-Length, or chunked
        framing with varying chunk sizes when chunked=True). Large bodies are sent from a
        second thread while the response is read (so an echo cannot deadlock)."""
        head = build_request(method, path, headers, body, host, chunked, version)
        payload_iter = None
        if body is not None:
            if chunked:
                payload_iter = chunk_encode(body)
            else:
                payload_iter = (bytes(memoryview(body)[i:i + (1 << 20)])
                                for i in range(0, len(body), 1 << 20))
        if body is None or len(body) <= 65536:
            self.send(head + b"".join(payload_iter or ()))
            return self.read_response(method, sink)
        self.send(head)
        err = []

        def sender():
            try:
                for piece in payload_iter:
                    self.sock.sendall(piece)
            except Exception as e:  # reported after the response was read
                err.append(e)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        try:
            r = self.read_response(method, sink)
        finally:
            t.join(self.timeout + 5)
        if t.is_alive():
            raise ProtocolError("request body still being sent after the response")
        if err:
            raise ProtocolError("sending the request body failed: %r" % err[0])
        return r

    def get(self, path, headers=None, **kw):
        return self.request("GET", path, headers, **kw)


def raw_exchange(port, data, timeout=5.0, method="GET"):
    """Opens a connection, sends data, reads one response; returns it (or raises)."""
    with RawConn(port, timeout=timeout) as c:
        c.send(data)
        return c.read_response(method)


def http_request(port, method, path, headers=None, body=None, host=DEFAULT_HOST_HEADER,
                 timeout=10.0):
    """The simple client (http.client): returns (status, {lower-name: value}, body)."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        h = dict(headers or {})
        h.setdefault("Host", host)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


# --- the load generator --------------------------------------------------------------------------

class Result:
    __slots__ = ("t0", "t1", "thread", "seq", "status", "upstream", "error", "kind", "retried",
                 "conn", "new_conn")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def __repr__(self):
        return "<Result %s status=%s up=%s err=%s retried=%s t0=%.3f>" % (
            self.kind, self.status, self.upstream, self.error, self.retried, self.t0)


IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}


class Load:
    """N threads, each with a keep-alive RawConn, sending requests for `duration` seconds or
    `total` requests in all (whichever ends first; at least one must be given), recording every
    result with time stamps (time.time()).

    make_request(seq, thread) -> (method, path, headers) chooses each request (default GET /).

    Result kinds:
      "ok"         a response arrived (any status; see .status)
      "refused"    connect() refused after mark_shutdown() was called (the listener is gone)
      "unaccepted" after mark_shutdown(): a NEW connection was closed/reset before any byte of
                   the response (the proxy closed its listener with the connection still in the
                   accept queue); counted apart from failures
      "failed"     anything else (including refused before mark_shutdown())
    A request whose REUSED keep-alive connection was closed before any byte of the response is
    retried exactly once on a new connection (RFC 9112 9.3.1), idempotent methods only."""

    def __init__(self, port, threads=4, duration=None, total=None, make_request=None,
                 host=DEFAULT_HOST_HEADER, timeout=10.0):
        if duration is None and total is None:
            raise ValueError("duration or total is required")
        self.port = port
        self.nthreads = threads
        self.duration = duration
        self.total = total
        self.make_request = make_request or (lambda seq, th: ("GET", "/", None))
        self.host = host
        self.timeout = timeout
        self.results = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.shutdown_at = None
        self.issued = 0
        self.threads = []
        self.connects = 0
        self.started_at = None

    def mark_shutdown(self):
        """Call right before signalling the proxy to stop: refused connects count apart."""
        self.shutdown_at = time.time()

    def _ticket(self):
        with self.lock:
            if self.total is not None and self.issued >= self.total:
                return None
            self.issued += 1
            return self.issued - 1

    def _connect(self):
        c = RawConn(self.port, timeout=self.timeout)
        with self.lock:
            self.connects += 1
        return c

    def _worker(self, th):
        conn = None
        deadline = (time.monotonic() + self.duration) if self.duration is not None else None
        try:
            while not self.stop_event.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                seq = self._ticket()
                if seq is None:
                    break
                method, path, headers = self.make_request(seq, th)
                res, conn = self._one(th, seq, method, path, headers, conn)
                with self.lock:
                    self.results.append(res)
                if res.kind in ("refused", "unaccepted"):
                    time.sleep(0.01)
        finally:
            if conn is not None:
                conn.close()

    def _one(self, th, seq, method, path, headers, conn):
        t0 = time.time()
        retried = False
        while True:
            new_conn = conn is None
            if conn is None:
                try:
                    conn = self._connect()
                except ConnectionRefusedError as e:
                    kind = "refused" if self.shutdown_at is not None else "failed"
                    return Result(t0=t0, t1=time.time(), thread=th, seq=seq, kind=kind,
                                  error="connect refused: %s" % e, retried=retried,
                                  new_conn=True), None
                except OSError as e:
                    return Result(t0=t0, t1=time.time(), thread=th, seq=seq, kind="failed",
                                  error="connect: %r" % e, retried=retried, new_conn=True), None
            reused = conn.responses > 0
            try:
                try:
                    conn.send(build_request(method, path, headers, None, self.host))
                except (BrokenPipeError, ConnectionResetError) as e:
                    raise ClosedBeforeResponse("send failed: %s" % e)
                r = conn.read_response(method)
            except ClosedBeforeResponse as e:
                conn.close()
                conn = None
                if reused and not retried and method in IDEMPOTENT:
                    retried = True
                    continue
                kind = "unaccepted" if (new_conn and self.shutdown_at is not None) else "failed"
                return Result(t0=t0, t1=time.time(), thread=th, seq=seq, kind=kind,
                              error=str(e), retried=retried, new_conn=new_conn), None
            except Exception as e:
                conn.close()
                return Result(t0=t0, t1=time.time(), thread=th, seq=seq, kind="failed",
                              error="%s: %s" % (type(e).__name__, e), retried=retried,
                              new_conn=new_conn), None
            res = Result(t0=t0, t1=time.time(), thread=th, seq=seq, kind="ok", status=r.status,
                         upstream=r.upstream, retried=retried, conn=conn.local_port,
                         new_conn=new_conn)
            if not r.keep_alive or conn.eof:
                conn.close()
                conn = None
            return res, conn

    def start(self):
        self.started_at = time.time()
        for i in range(self.nthreads):
            t = threading.Thread(target=self._worker, args=(i,), daemon=True)
            self.threads.append(t)
            t.start()
        return self

    def join(self, timeout=None):
        if timeout is None:
            timeout = (self.duration or 60.0) + self.timeout + 30.0
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self.threads):
            self.stop_event.set()
            raise HarnessError("load threads still running after %.1f s" % timeout)
        return self

    def run(self):
        return self.start().join()

    def stop(self):
        self.stop_event.set()
        return self.join()

    # results
    def snapshot(self):
        with self.lock:
            return list(self.results)

    def of_kind(self, kind):
        return [r for r in self.snapshot() if r.kind == kind]

    @property
    def ok(self):
        return self.of_kind("ok")

    @property
    def failures(self):
        return self.of_kind("failed")

    @property
    def refused(self):
        return self.of_kind("refused")

    def summary(self):
        rs = self.snapshot()
        kinds = {}
        for r in rs:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        ups = {}
        for r in rs:
            if r.kind == "ok":
                ups[r.upstream] = ups.get(r.upstream, 0) + 1
        return "%d requests %s upstreams %s retried %d connects %d" % (
            len(rs), kinds, ups, sum(1 for r in rs if r.retried), self.connects)


def count_by_upstream(responses):
    out = {}
    for r in responses:
        u = r.upstream if hasattr(r, "upstream") else r
        out[u] = out.get(u, 0) + 1
    return out


def check(cond, msg, *args):
    """assert with a message that survives python -O."""
    if not cond:
        raise AssertionError(msg % args if args else msg)

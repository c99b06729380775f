"""Issue 11, the small items: numbers that do not fit (a float converted to an integer before its
range check: undefined behaviour, which aborts a sanitizer build), cutoverctl's human output
(a refused reload's problems, the shift progress line on a terminal, history's weights and
refusals), and a health check's default timeout that follows its interval.

The float tests prove something only on a build that traps float-to-integer overflow: clang's
`make SAN=1 CC=clang` (-fsanitize=undefined includes float-cast-overflow), or gcc's SAN=1 with
EXTRA_CFLAGS="-fsanitize=float-cast-overflow -fno-sanitize-recover=float-cast-overflow" (gcc's
-fsanitize=undefined leaves it out). On any build they check the refusals and their paths.

cutoverctl runs against the real cutover where the server matters (reload, shift, history's
weights and refusals) and against a small in-process fake control socket where the test needs
replies the real server does not give on demand (coalesced or aborted history records, records
keyed by route; nonsense numbers in a status reply), or fake_control.py (shift plans). The
terminal tests run cutoverctl under a pseudo-terminal (pty) with a set window size.
"""
import fcntl
import json
import os
import pty
import select
import socket
import struct
import subprocess
import termios
import threading
import time

from harness import (HarnessError, check, exit_problem, free_port, run_bin, run_check,
                     start_cutover, start_upstream, unique, write_config)
from test_control import Ctl, control_section, proxy_config, wait_ctl
from test_cutoverctl import ctl, ctl_bin, sockdir, start_fake


def start_real(weights=None):
    """A real cutover with a control socket (admin role for this uid): (cutover, socket path,
    config dict)."""
    blue, green = start_upstream("blue"), start_upstream("green")
    cfg = proxy_config(free_port(), {"blue": [blue], "green": [green]},
                       weights or {"blue": 90, "green": 10}, control_section())
    cx = start_cutover(cfg)
    return cx, wait_ctl(cx), cfg


def alive_and_answering(cx, sock):
    check(cx.alive(), "cutover died (exit %s): %s", cx.popen.returncode, cx.stderr_text()[-3000:])
    with Ctl(sock) as c:
        rep = c.call("version")
    check(rep.get("ok") is True, "version after the refusals: %r", rep)


def sanitizer_reports(cx):
    err = cx.stderr_text()
    return [l for l in err.splitlines() if "runtime error" in l or "Sanitizer" in l]


# --- 1. floats converted to integers -------------------------------------------------------------

def test_issue11_shift_steps_out_of_range_refused_cleanly():
    """`shift` with steps that do not fit an unsigned once scaled (1e300, -5, 4294967296, a
    string mapped to -1 ...) is refused with invalid_argument at args.steps[i], and the process
    lives on (before the fix a UBSan build aborted on the conversion)."""
    cx, sock, _ = start_real()
    cases = [
        ([1e300, 100], "args.steps[0]"),
        ([-5, 100], "args.steps[0]"),
        ([-0.5, 100], "args.steps[0]"),
        ([-1e300, 100], "args.steps[0]"),
        ([10, 4294967296], "args.steps[1]"),
        ([10, 1.7e308], "args.steps[1]"),
        (["10", 100], "args.steps[0]"),
        ([None, 100], "args.steps[0]"),
        ([True, 100], "args.steps[0]"),
        ([12.345, 100], "args.steps[0]"),
        ([0, 100], "args.steps[0]"),
        ([50, 1e-300], "args.steps[1]"),
    ]
    with Ctl(sock) as c:
        for steps, path in cases:
            rep = c.call("shift", {"route": "app", "to": "green", "steps": steps, "hold_s": 60,
                                   "reason": "issue 11"})
            err = rep.get("error") or {}
            check(rep.get("ok") is False and err.get("code") == "invalid_argument" and
                  err.get("path") == path, "steps %r: %r (want invalid_argument at %s)", steps,
                  rep, path)
            check(cx.alive(), "cutover died on steps %r: %s", steps, cx.stderr_text()[-3000:])
        # a huge gate is refused too (it was checked before its conversion already)
        rep = c.call("shift", {"route": "app", "to": "green", "steps": [50, 100], "hold_s": 60,
                               "gates": {"max_5xx_percent": 1e300}, "reason": "issue 11"})
        check((rep.get("error") or {}).get("path") == "args.gates.max_5xx_percent",
              "huge gate: %r", rep)
        # and two decimals still work: 2.5 % then 100 %
        rep = c.call("shift", {"route": "app", "to": "green", "steps": [2.5, 100],
                               "hold_s": 600, "reason": "issue 11"})
        check(rep.get("ok") is True and rep["result"]["weights"] == {"blue": 97.5, "green": 2.5},
              "steps [2.5, 100]: %r", rep)
        c.ok("shift-abort", {"route": "app", "reason": "issue 11 done"})
    alive_and_answering(cx, sock)
    check(not sanitizer_reports(cx), "sanitizer reports: %r", sanitizer_reports(cx))


def test_issue11_watchdog_percent_out_of_range_reload():
    """A reload whose watchdog.max_5xx_percent is 1e300 is refused with that path (the problem
    shown by `cutoverctl reload` in human form), the process lives on; --check says the same."""
    cx, sock, cfg = start_real()
    bad = json.loads(json.dumps(cfg))
    bad["routes"][0]["watchdog"] = {"max_5xx_percent": 1e300}
    cx.rewrite(bad)
    code, out, err = ctl("--socket", sock, "reload", "--reason", "huge watchdog")
    check(code == 2, "reload exit %s: %r %r", code, out, err)
    check("routes[0].watchdog.max_5xx_percent: must be a percentage between 0 and 100" in out,
          "the problem is not shown: %r", out)
    alive_and_answering(cx, sock)
    for v in (-5, 4294967296, -1e300):
        bad["routes"][0]["watchdog"] = {"max_5xx_percent": v}
        path = write_config(bad)
        rc, o, e = run_check(path)
        check(rc == 1 and "routes[0].watchdog.max_5xx_percent" in o + e and
              "runtime error" not in o + e, "--check with %r: %s %r %r", v, rc, o, e)
    check(not sanitizer_reports(cx), "sanitizer reports: %r", sanitizer_reports(cx))


def test_issue11_cutoverctl_refuses_nan_durations():
    """strtod reads "nan": a duration of NaN must be a usage error, never reach the conversion
    to milliseconds (which a UBSan build aborts on)."""
    for opt in ("--timeout", "--wait-timeout"):
        for v in ("nan", "NaN", "nanms", "inf", "1e300"):
            code, out, err = ctl("--socket", "/nonexistent/x.sock", opt, v, "status")
            check(code == 2 and opt in err and "runtime error" not in err,
                  "%s %s: exit %s %r %r", opt, v, code, out, err)
    f = start_fake()
    code, out, err = ctl("--socket", f.sock, "shift", "app", "--to", "green", "--steps",
                         "10,100", "--interval", "nan", "--reason", "r")
    check(code == 2 and "runtime error" not in err and not f.ops("shift"),
          "--interval nan: exit %s %r %r", code, out, err)


# --- a tiny fake control socket, for replies the real server does not give ---------------------

class TinyFake:
    """Answers each request line with handler(request) (a result dict, or an error dict with
    "code"); records the requests. One thread, one connection at a time (cutoverctl uses a new
    connection per request)."""

    def __init__(self, handler):
        self.handler = handler
        self.requests = []
        self.path = os.path.join(sockdir(), os.path.basename(unique("tiny")) + ".sock")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(16)
        self.srv.settimeout(0.2)
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop:
            try:
                s, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with s:
                s.settimeout(5.0)
                buf = b""
                while b"\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        break
                    buf += d
                if b"\n" not in buf:
                    continue
                req = json.loads(buf.split(b"\n")[0])
                self.requests.append(req)
                res = self.handler(req)
                rep = {"id": req.get("id"), "ok": "code" not in res, "generation": 7}
                rep["error" if "code" in res else "result"] = res
                s.sendall(json.dumps(rep).encode() + b"\n")

    def close(self):
        self.stop = True
        self.srv.close()
        self.t.join(2.0)


def test_issue11_cutoverctl_nonsense_numbers_in_replies():
    """A reply with weights or steps that fit no integer (1e300, -1e300) prints "?" instead of
    converting them (undefined behaviour in cutoverctl before the fix)."""
    status = {"routes": [{"name": "app", "weights": {"blue": 1e300, "green": -1e300},
                          "stable": {"blue": 1e300, "green": 0},
                          "pools": {"blue": {"requests": 1}, "green": {"requests": 2}},
                          "plan": {"state": "running", "step": 0, "steps": [1e300, 100],
                                   "to": "green", "from": "blue", "weight": 1e300,
                                   "hold_s": 30, "gates": {}}}]}
    f = TinyFake(lambda req: status)
    try:
        code, out, err = ctl("--socket", f.path, "status", "app")
    finally:
        f.close()
    check(code == 0 and "runtime error" not in err, "status exit %s: %r %r", code, out, err)
    check("blue=?% green=?%" in out and "steps ?,100" in out, "status output %r", out)


# --- 2. reload problems in human form --------------------------------------------------------------

def test_issue11_reload_shows_every_problem_with_its_path():
    cx, sock, cfg = start_real()
    bad = json.loads(json.dumps(cfg))
    bad["workers"] = "two"
    bad["routes"][0]["weights"] = {"blue": 50, "green": 49.5}
    bad["routes"][0]["colour"] = "purple"
    cx.rewrite(bad)
    code, out, err = ctl("--socket", sock, "reload", "--reason", "three problems")
    check(code == 2, "reload exit %s: %r %r", code, out, err)
    check("(3 problems)" in out, "no count: %r", out)
    for line in ("workers: expected an integer", "routes[0].weights: weights sum to 99.5, must "
                 "be 100", "routes[0].colour: unknown key"):
        check(line in out, "%r is not in the human output: %r", line, out)
    # the same problems as --json's error.details
    code, jout, _ = ctl("--socket", sock, "--json", "reload", "--reason", "three problems")
    details = json.loads(jout)["replicas"][0]["error"]["details"]
    for d in details:
        check("%s: %s" % (d["path"], d["message"]) in out, "detail %r not shown: %r", d, out)
    # a syntax error: one problem, with its line and column
    with open(cx.config_path, "w") as fh:
        fh.write('{\n  "listeners": [\n    {"address": "127.0.0.1:1"},,\n  ]\n}\n')
    code, out, err = ctl("--socket", sock, "reload", "--reason", "syntax")
    check(code == 2 and "(1 problem)" in out and "(line 3, column" in out,
          "syntax error reload: %s %r %r", code, out, err)
    alive_and_answering(cx, sock)


# --- 3. the shift progress line on a terminal ----------------------------------------------------

def run_on_pty(argv, cols, rows=24, env=None, timeout=30.0):
    """Runs argv with stdout on a pty of cols x rows (cols 0: a pty that reports no size);
    returns (exit code, everything written to the terminal, decoded)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE,
                         env=dict(os.environ, **(env or {})), close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    d = os.read(master, 65536)
                except OSError:  # EIO: the child side is closed
                    break
                if not d:
                    break
                out += d
            elif p.poll() is not None:
                break
        else:
            raise HarnessError("cutoverctl did not finish within %.0f s: %r" % (timeout,
                                                                               out[-2000:]))
        p.wait(5.0)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    err = p.stderr.read().decode("utf-8", "replace")
    why = exit_problem(p.returncode, err)  # a refused command's exit code must not hide a crash
    if why:
        raise HarnessError("cutoverctl %s" % why)
    return p.returncode, out.decode("utf-8", "replace") + err


def drawn_lines(out):
    """Every line as it was drawn on the terminal (split at CR and LF, escapes removed)."""
    text = out.replace("\033[K", "").replace("\033[1A", "")
    return [l for l in text.replace("\r", "\n").split("\n") if l]


def shift_argv(f):
    return [ctl_bin(), "--socket", f.sock, "shift", "app", "--to", "green", "--steps", "10,100",
            "--interval", "30s", "--gate", "5xx<=1%", "--gate", "p99<=500ms",
            "--min-requests", "100", "--reason", "issue 11 tty"]


def live_lines(out):
    return [l for l in drawn_lines(out) if l.startswith("step ") and
            not l.endswith("  running") and not l.endswith("  paused")]


def test_issue11_shift_progress_fits_the_terminal():
    """The live line fits the window (TIOCGWINSZ), leaving out the gates' limits first rather
    than cutting "next step in"; COLUMNS is the fallback for a terminal without a size; a wide
    window shows everything; not on a terminal, lines are never cut."""
    full = ("5xx 0.00% (<= 1%)", "p99 87ms (<= 500ms)", "(min 100)", "next step in")
    for cols, env, want_all in ((80, None, False), (200, None, True), (0, {"COLUMNS": "160"}, True),
                                (0, {"COLUMNS": "60"}, False), (50, {"COLUMNS": "300"}, False)):
        f = start_fake("--plan-tick-ms", "1500")
        code, out = run_on_pty(shift_argv(f), cols, env=env)
        f.stop()
        width = cols or int(env["COLUMNS"])
        check(code == 0 and "PROMOTED" in out, "cols %s env %r: exit %s %r", cols, env, code,
              out[-2000:])
        live = live_lines(out)
        check(live, "cols %s env %r: no live line in %r", cols, env, out[-2000:])
        for l in live:
            check(len(l) <= width - 1, "cols %s env %r: %d columns: %r", cols, env, len(l), l)
            check("next step in" in l and l.rstrip().endswith("s") and "green 10" in l,
                  "cols %s env %r: the live line lost its end: %r", cols, env, l)
            if want_all:
                check(all(p in l for p in full), "cols %s env %r: parts missing: %r", cols, env,
                      l)
            elif width >= 70:  # dropped in order: the limits go first, the values stay
                check("5xx 0.00%" in l and "p99 87ms" in l and "(<= 1%)" not in l,
                      "cols %s env %r: %r", cols, env, l)
    # not a terminal: the whole line, whatever COLUMNS says
    f = start_fake("--plan-tick-ms", "300")
    p = run_bin(shift_argv(f), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=30, env=dict(os.environ, COLUMNS="40"))
    check(p.returncode == 0, "not a tty: exit %s %r %r", p.returncode, p.stdout, p.stderr)
    steps = [l for l in p.stdout.splitlines() if l.startswith("step ")]
    check(steps and all(all(x in l for x in full) for l in steps), "not a tty: %r", p.stdout)


test_issue11_shift_progress_fits_the_terminal.timeout = 90


# --- 4. history: weights before -> after, --refusals -----------------------------------------------

def test_issue11_history_shows_weights_before_and_after():
    cx, sock, _ = start_real({"blue": 90, "green": 10})
    for w, reason in (((80, 20), "canary 20"), ((75.5, 24.5), "canary 24.5")):
        code, out, err = ctl("--socket", sock, "set-weights", "app", "blue=%s" % w[0],
                             "green=%s" % w[1], "--reason", reason)
        check(code == 0, "set-weights: %s %r %r", code, out, err)
    code, out, err = ctl("--socket", sock, "drain", "app", "green",
                         cx.config["routes"][0]["pools"]["green"]["endpoints"][0],
                         "--reason", "maintenance")
    check(code == 0, "drain: %s %r %r", code, out, err)
    code, out, err = ctl("--socket", sock, "history")
    check(code == 0, "history: %s %r %r", code, out, err)
    lines = out.splitlines()

    def line_of(reason):
        got = [l for l in lines if '"%s"' % reason in l]
        check(len(got) == 1, "no single history line for %r: %r", reason, out)
        return got[0]
    check("gen 1->2" in line_of("canary 20") and
          "app: blue=90% green=10% -> blue=80% green=20%" in line_of("canary 20"),
          "history line %r", line_of("canary 20"))
    check("app: blue=80% green=20% -> blue=75.5% green=24.5%" in line_of("canary 24.5"),
          "history line %r", line_of("canary 24.5"))
    check("app: blue=75.5% green=24.5% (unchanged)" in line_of("maintenance"),
          "history line %r", line_of("maintenance"))
    # a refusal: only with --refusals (the server lists changes only by default)
    code, out, err = ctl("--socket", sock, "set-weights", "app", "blue=50", "green=50",
                         "--reason", "stale", "--expect-generation", "1")
    check(code == 2, "stale set-weights: %s %r %r", code, out, err)
    code, out, err = ctl("--socket", sock, "history")
    check(code == 0 and '"stale"' not in out, "history without --refusals: %r", out)
    code, out, err = ctl("--socket", sock, "history", "--refusals")
    got = [l for l in out.splitlines() if '"stale"' in l]
    check(code == 0 and len(got) == 1 and "REFUSED" in got[0] and "[conflict]" in got[0] and
          "blue=50%" not in got[0] and "refusals included" in out, "history --refusals: %r", out)


def test_issue11_history_refusals_option():
    """--refusals sends "refusals": true (only to history); refused records print REFUSED with
    their code and message, N coalesced ones "×N", aborted ones ABORTED."""
    recs = [
        {"type": "audit", "time": "2026-11-03T09:59:00.000Z",
         "actor": {"uid": 0, "user": "cutover"}, "role": "admin", "op": "start", "args": None,
         "result": "ok", "error": None, "generation_before": 0, "generation_after": 1,
         "weights_before": None,
         "weights_after": {"app": {"blue": 90, "green": 10}, "api": {"a": 100, "b": 0}},
         "reason": "first start"},
        {"type": "audit", "time": "2026-11-03T10:00:00.000Z", "actor": {"uid": 0, "user": "ci"},
         "role": "deployer", "op": "set-weights", "args": {"route": "app", "reason": "r1"},
         "result": "ok", "error": None, "generation_before": 4, "generation_after": 5,
         "weights_before": {"blue": 90, "green": 10}, "weights_after": {"blue": 80, "green": 20},
         "reason": "r1"},
        {"type": "audit", "time": "2026-11-03T10:00:01.000Z", "actor": {"uid": 0, "user": "ci"},
         "role": "deployer", "op": "set-weights", "args": {"route": "app"}, "result": "refused",
         "error": {"code": "conflict", "message": "expect_generation is 4 but the generation "
                                                  "is 5"}, "count": 3,
         "generation_before": 5, "generation_after": 5, "weights_before": None,
         "weights_after": None, "reason": "retry"},
        {"type": "audit", "time": "2026-11-03T10:00:02.000Z", "actor": {"uid": 0, "user": "ci"},
         "role": "viewer", "op": "drain", "args": {"route": "app"}, "result": "refused",
         "error": {"code": "denied", "message": "role viewer may not drain"},
         "generation_before": 5, "generation_after": 5, "reason": "x"},
        {"type": "audit", "time": "2026-11-03T10:00:03.000Z", "actor": {"uid": 0, "user": "ci"},
         "role": "admin", "op": "set-weights", "args": {"route": "app"}, "result": "aborted",
         "error": {"code": "internal", "message": "the state file could not be written"},
         "generation_before": 5, "generation_after": 5,
         "weights_before": {"blue": 80, "green": 20}, "weights_after": None, "reason": "r3"},
    ]

    def handler(req):
        args = req.get("args") or {}
        if req.get("op") != "history" or set(args) - {"limit", "refusals"}:
            return {"code": "invalid_argument", "message": "unexpected %r" % req}
        if args.get("refusals") is True:
            return {"records": recs}
        return {"records": [r for r in recs if r["result"] != "refused"]}
    f = TinyFake(handler)
    try:
        code, out, err = ctl("--socket", f.path, "history", "--refusals", "--limit", "20")
        check(code == 0, "history --refusals: %s %r %r", code, out, err)
        check(f.requests[-1]["args"] == {"limit": 20, "refusals": True}, "sent %r",
              f.requests[-1])
        check("5 record(s), refusals included" in out, "header: %r", out)
        lines = out.splitlines()[1:]
        check(len(lines) == 5, "lines %r", lines)
        # weights keyed by route (cutover's start record): every route, nothing before
        check("app: (none) -> blue=90% green=10%; api: (none) -> a=100% b=0%" in lines[0],
              "start line %r", lines[0])
        lines = lines[1:]
        check("ok" in lines[0] and "blue=90% green=10% -> blue=80% green=20%" in lines[0],
              "ok line %r", lines[0])
        check("REFUSED \u00d73" in lines[1] and
              "[conflict] expect_generation is 4 but the generation is 5" in lines[1] and
              '"retry"' in lines[1], "coalesced refusal %r", lines[1])
        check("REFUSED" in lines[2] and "\u00d7" not in lines[2] and
              "[denied] role viewer may not drain" in lines[2], "refusal %r", lines[2])
        check("ABORTED" in lines[3] and "[internal] the state file could not be written" in
              lines[3] and "green=20% ->" not in lines[3], "aborted %r", lines[3])
        # without the option: no "refusals" key sent (the server's default: changes only)
        code, out, err = ctl("--socket", f.path, "history")
        check(code == 0 and f.requests[-1].get("args") is None and "REFUSED" not in out and
              "refusals included" not in out, "plain history: %r %r", f.requests[-1], out)
        # --json passes the records through, and sends the flag the same way
        code, out, err = ctl("--socket", f.path, "--json", "history", "--refusals")
        doc = json.loads(out)
        check(code == 0 and doc["replicas"][0]["result"]["records"][2]["count"] == 3 and
              f.requests[-1]["args"] == {"refusals": True}, "--json: %r", doc)
        n = len(f.requests)
        # only history takes it; it takes no value
        for argv in (("status", "--refusals"), ("history", "--refusals=yes")):
            code, out, err = ctl("--socket", f.path, *argv)
            check(code == 2 and "--refusals" in err, "%r: %s %r %r", argv, code, out, err)
        check(len(f.requests) == n, "a usage error sent something: %r", f.requests[n:])
    finally:
        f.close()
    code, out, err = ctl("--help")
    check("history [--limit N] [--refusals]" in out, "help: %r", out)


# --- 5. the health check's default timeout ------------------------------------------------------

def test_issue11_health_check_interval_1000_without_timeout_is_valid():
    """"interval_ms": 1000 without timeout_ms passes `cutover --check` (the default timeout is
    then 500 ms); an explicit timeout_ms that is not shorter is still refused, saying the
    interval."""
    blue, green = "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()
    cfg = proxy_config(free_port(), {"blue": [blue], "green": [green]},
                       {"blue": 100, "green": 0}, control_section())
    cfg["routes"][0]["pools"]["green"]["health_check"] = {"path": "/healthz",
                                                          "interval_ms": 1000}
    code, out, err = run_check(write_config(cfg))
    check(code == 0, "--check of interval_ms 1000 without timeout_ms: %s %r %r", code, out, err)
    cfg["routes"][0]["pools"]["green"]["health_check"]["timeout_ms"] = 1000
    code, out, err = run_check(write_config(cfg))
    check(code == 1 and "routes[0].pools.green.health_check.timeout_ms: must be shorter than "
          "interval_ms (1000)" in out + err, "explicit 1000: %s %r %r", code, out, err)

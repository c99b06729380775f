"""cutoverctl shift as a server-side plan (op `shift`, watched through `status`), and
shift-pause / shift-resume / shift-abort, against fake_control.py, which emulates the plan: the
first step at once, each step held --plan-tick-ms, then `promoted`, or `rolled_back` by the gate
that --plan-fail names.

Covered: the request sent (steps, hold_s, gates), promotion (exit 0, progress shown), rollback
(exit 6, gate/value/limit printed), refusals (plan_exists in both spellings, conflict, denied,
unknown_op, internal), bad --gate (exit 2, nothing sent), SIGINT/SIGTERM (shift-abort sent,
exit 130, the step left applied), --json lines, several replicas (one rolls back: 6; one
refused: 5), someone else aborting the plan, the control subcommands and the plan in `status`.
"""
import json
import signal
import subprocess
import time

from harness import check, wait_until
from test_cutoverctl import app_weights, ctl, ctl_bin, raw_request, socks, start_fake

TICK = "300"  # ms each step is held by the fake: 3 steps take about 1 s


def plan_of(fake, route="app"):
    rep = raw_request(fake.sock, {"id": "t", "op": "status", "args": {"route": route}})
    return rep["result"]["routes"][0]["plan"]


def start_plan_raw(fake, steps=(10, 50, 100), reason="someone else"):
    """A plan started by another client (a concurrent pipeline)."""
    rep = raw_request(fake.sock, {"id": "other", "op": "shift", "args": {
        "route": "app", "to": "green", "steps": list(steps), "hold_s": 600, "reason": reason}})
    check(rep["ok"], "raw shift refused: %r", rep)
    return rep


def popen_shift(fake_socks, *extra):
    return subprocess.Popen([ctl_bin()] + fake_socks + ["shift", "app", "--to", "green", "--steps",
                                                        "10,50,100", "--interval", "30s",
                                                        "--reason", "sig"] + list(extra),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(p, timeout=10.0):
    try:
        return p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# --- the happy path ------------------------------------------------------------------------------

def test_shift_plan_promoted():
    f = start_fake("--generation", 20, "--plan-tick-ms", TICK)
    t0 = time.monotonic()
    code, out, err = ctl(*socks(f), "shift", "app", "--to", "green", "--steps", "10,50,100",
                         "--interval", "30s", "--gate", "5xx<=1%", "--gate", "p99<=500ms",
                         "--min-requests", "100", "--reason", "release 7")
    dt = time.monotonic() - t0
    check(code == 0, "shift exited %s: %s %s", code, out, err)
    sh = f.ops("shift")
    check(len(sh) == 1, "shift requests %r", sh)
    check(sh[0]["request"]["args"] == {
        "route": "app", "to": "green", "steps": [10, 50, 100], "hold_s": 30,
        "gates": {"max_5xx_percent": 1.0, "max_p99_ms": 500, "min_requests": 100},
        "reason": "release 7"}, "shift args %r", sh[0]["request"]["args"])
    check(not f.ops("set-weights"), "the client walked the weights itself: %r",
          f.ops("set-weights"))
    # status polled about once a second (not a busy loop), always for the route
    st = f.ops("status")
    check(1 <= len(st) <= dt + 2, "%d status polls in %.1f s", len(st), dt)
    check(all(e["request"]["args"] == {"route": "app"} for e in st), "polls %r", st[:2])
    # progress: one line per step (not a TTY), then the outcome
    steps = [l for l in out.splitlines() if l.startswith("step ")]
    check([l.split()[1] for l in steps] == ["1/3", "2/3", "3/3"], "progress lines %r", out)
    check("green 10%" in steps[0] and "5xx 0.00% (<= 1%)" in steps[0] and
          "p99 87ms (<= 500ms)" in steps[0] and "req" in steps[0] and "next step in" in steps[0],
          "progress line %r", steps[0])
    check("PROMOTED" in out and "promoted on 1 of 1" in out, "output %r", out)
    check(app_weights(f) == {"blue": 0, "green": 100}, "weights %r", app_weights(f))
    check(plan_of(f)["state"] == "promoted", "plan %r", plan_of(f))
    # other spellings: decimals, seconds, minutes; no gate at all sends no "gates"
    g = start_fake("--plan-tick-ms", "100")
    code, out, err = ctl(*socks(g), "shift", "app", "--to", "green", "--steps", "12.5,100",
                         "--interval", "2m", "--gate", " 5XX <= 0.5% ", "--gate", "p99<=2s",
                         "--reason", "r", "--expect-generation", "1")
    check(code == 0, "exit %s: %s %s", code, out, err)
    a = g.ops("shift")[0]["request"]["args"]
    check(a["steps"] == [12.5, 100] and a["hold_s"] == 120 and a["expect_generation"] == 1 and
          a["gates"] == {"max_5xx_percent": 0.5, "max_p99_ms": 2000}, "args %r", a)
    code, out, err = ctl(*socks(g), "shift", "app", "--to", "blue", "--steps", "100",
                         "--interval", "1s", "--reason", "back")
    check(code == 0 and "gates none" in out, "exit %s: %s %s", code, out, err)
    check("gates" not in g.ops("shift")[1]["request"]["args"], "%r", g.ops("shift")[1])


def test_shift_plan_tty_progress():
    """On a terminal the progress line is redrawn in place (script(1) gives us a pty)."""
    f = start_fake("--plan-tick-ms", "1500")
    cmd = " ".join([ctl_bin(), "--socket", f.sock, "shift", "app", "--to", "green", "--steps",
                    "10,100", "--interval", "30s", "--gate", "'5xx<=1%'", "--reason", "tty"])
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    out = p.stdout.decode("utf-8", "replace")  # bytes: keep the carriage returns
    check(p.returncode == 0, "exit %s: %r", p.returncode, out[-2000:])
    check("\r\033[K" in out, "no live line redraw: %r", out[-2000:])
    check("5xx 0.00% (<= 1%)" in out and "next step in" in out and "PROMOTED" in out and
          "step 1/2  green 10%  running" in out, "tty output %r", out[-2000:])


# --- rollback ------------------------------------------------------------------------------------

def test_shift_plan_rolled_back():
    f = start_fake("--plan-tick-ms", TICK, "--plan-fail", "2:max_5xx_percent:12.5")
    code, out, err = ctl(*socks(f), "shift", "app", "--to", "green", "--steps", "10,50,100",
                         "--interval", "30s", "--gate", "5xx<=1%", "--reason", "gated")
    check(code == 6, "exit %s (want 6): %s %s", code, out, err)
    for s in ("ROLLED BACK", "max_5xx_percent", "value 12.5", "limit 1", "step 2/3"):
        check(s in err, "stderr lacks %r: %r", s, err)
    check("ROLLED BACK" in out, "stdout %r", out)
    check(app_weights(f) == {"blue": 100, "green": 0}, "weights %r", app_weights(f))
    check(not f.ops("shift-abort"), "the client aborted a plan that had ended")
    # a latency gate, --json: the final line says so
    g = start_fake("--plan-tick-ms", TICK, "--plan-fail", "1:max_p99_ms:950")
    code, out, err = ctl(*socks(g), "--json", "shift", "app", "--to", "green", "--steps",
                         "10,100", "--interval", "30s", "--gate", "p99<=500ms", "--reason", "r")
    last = json.loads(out.splitlines()[-1])
    check(code == 6 and last["event"] == "result" and last["exit_code"] == 6 and
          last["replicas"][0]["outcome"] == "rolled_back", "json %s %r", code, last)
    rb = last["replicas"][0]["plan"]["rolled_back"]
    check(rb["gate"] == "max_p99_ms" and rb["value"] == 950 and rb["limit"] == 500, "%r", rb)
    check("max_p99_ms" in err and "value 950" in err and "limit 500" in err, "stderr %r", err)


# --- refusals ------------------------------------------------------------------------------------

def test_shift_plan_refused():
    for style in ("plan_exists", "busy"):  # cutover's code, and the other accepted spelling
        f = start_fake("--plan-exists-code", style)
        start_plan_raw(f)
        code, out, err = ctl(*socks(f), "shift", "app", "--to", "green", "--steps", "10,100",
                             "--interval", "30s", "--reason", "second pipeline")
        check(code == 2, "%s: plan_exists exited %s (want 2): %s %s", style, code, out, err)
        check(style in out and "already has a running plan" in out, "%s: %r", style, out)
        check(not f.ops("status"), "%s: the client polled a plan it did not start: %r",
              style, f.ops("status"))
        check(not f.ops("shift-abort") and plan_of(f)["reason"] == "someone else",
              "%s: the other plan was touched", style)
    # a stale --expect-generation
    f = start_fake("--generation", 10)
    code, out, err = ctl(*socks(f), "shift", "app", "--to", "green", "--steps", "10,100",
                         "--interval", "30s", "--reason", "r", "--expect-generation", "9")
    check(code == 2 and "conflict" in out, "conflict exited %s: %s", code, out)
    check(plan_of(f) is None and app_weights(f) == {"blue": 100, "green": 0}, "state changed")
    # the server's own validation (a pool the route does not have)
    code, out, err = ctl(*socks(f), "shift", "app", "--to", "purple", "--steps", "10,100",
                         "--interval", "30s", "--reason", "r")
    check(code == 2 and "not_found" in out, "not_found exited %s: %s", code, out)
    # denied: 3; internal: 4; a server without plans (unknown_op): 2 with a hint
    d = start_fake("--deny")
    code, out, err = ctl(*socks(d), "shift", "app", "--to", "green", "--steps", "100",
                         "--interval", "1s", "--reason", "r")
    check(code == 3 and "denied" in out, "denied exited %s: %s", code, out)
    sick = start_fake("--fail-op", "shift")
    code, out, err = ctl(*socks(sick), "shift", "app", "--to", "green", "--steps", "100",
                         "--interval", "1s", "--reason", "r")
    check(code == 4 and "internal" in out, "internal exited %s: %s", code, out)
    old = start_fake("--fail-op", "shift:unknown_op")
    code, out, err = ctl(*socks(old), "shift", "app", "--to", "green", "--steps", "100",
                         "--interval", "1s", "--reason", "r")
    check(code == 2 and "unknown_op" in out and "server-side shift plans" in out,
          "unknown_op exited %s: %s", code, out)
    check(not old.ops("set-weights"), "fell back to client-side steps")


def test_shift_plan_usage_errors():
    f = start_fake()
    base = ["shift", "app", "--to", "green", "--steps", "10,100", "--reason", "r"]
    bad = [
        (["--interval", "30s", "--gate", "5xx<1%"], "5xx<1%"),
        (["--interval", "30s", "--gate", "5xx<=1"], "needs '%'"),
        (["--interval", "30s", "--gate", "5xx<=101%"], "0..100"),
        (["--interval", "30s", "--gate", "5xx<=-1%"], "not a number"),
        (["--interval", "30s", "--gate", "p99<=500"], "unit"),
        (["--interval", "30s", "--gate", "p99<=500us"], "unit"),
        (["--interval", "30s", "--gate", "p99<=0ms"], "whole milliseconds"),
        (["--interval", "30s", "--gate", "p99<=0.5ms"], "whole milliseconds"),
        (["--interval", "30s", "--gate", "p99<=601s"], "whole milliseconds"),
        (["--interval", "30s", "--min-requests", "100000001"], "--min-requests"),
        (["--interval", "30s", "--gate", "p95<=500ms"], "expected 5xx<="),
        (["--interval", "30s", "--gate", "errors"], "expected 5xx<="),
        (["--interval", "30s", "--gate", ""], "expected 5xx<="),
        (["--interval", "30s", "--gate", "5xx<=1%", "--gate", "5xx<=2%"], "already given"),
        (["--interval", "30s", "--min-requests", "many"], "--min-requests"),
        (["--interval", "500ms"], "whole number of seconds"),
        (["--interval", "1.5s"], "whole number of seconds"),
        (["--interval", "25h"], "whole number of seconds"),
        ([], "--interval D is required"),
        (["--interval", "30s", "--from", "blue"], "--from"),
    ]
    for extra, want in bad:
        code, out, err = ctl(*socks(f), *(base + extra))
        check(code == 2, "%s exited %s (want 2): %s %s", extra, code, out, err)
        check(want in err, "%s: stderr lacks %r: %r", extra, want, err)
    code, out, err = ctl(*socks(f), "--json", *(base + ["--interval", "30s", "--gate", "x"]))
    doc = json.loads(out)
    check(code == 2 and doc["exit_code"] == 2 and doc["error"]["code"] == "usage", "%r", doc)
    for cmd in ("shift-pause", "shift-resume", "shift-abort"):
        code, out, err = ctl(*socks(f), cmd, "app")
        check(code == 2 and "--reason" in err, "%s without --reason: %s %r", cmd, code, err)
        code, out, err = ctl(*socks(f), cmd, "--reason", "r")
        check(code == 2, "%s without a route: %s", cmd, code)
    check(f.log() == [], "usage errors contacted the server: %r", f.log()[:3])


# --- Ctrl-C --------------------------------------------------------------------------------------

def test_shift_plan_sigint_aborts():
    for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        f = start_fake("--plan-tick-ms", "60000")
        p = popen_shift(socks(f))
        try:
            wait_until(lambda: len(f.ops("status")) >= 1, 10.0, what="the first status poll")
            p.send_signal(sig)
            out, err = p.communicate(timeout=10.0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        check(p.returncode == 130, "%s: exit %s: %s %s", name, p.returncode, out, err)
        ab = f.ops("shift-abort")
        check(len(ab) == 1 and ab[0]["ok"] and
              ab[0]["request"]["args"] == {"route": "app", "reason": "interrupted by operator"},
              "%s: shift-abort %r", name, ab)
        check("last step stays applied" in err and "step 1/3" in err and "green 10%" in err,
              "%s: stderr %r", name, err)
        check(name in err, "%s: stderr does not say which signal: %r", name, err)
        check(plan_of(f)["state"] == "aborted", "%s: plan %r", name, plan_of(f))
        check(app_weights(f) == {"blue": 90, "green": 10}, "%s: step 1 not left in place: %r",
              name, app_weights(f))


def test_shift_plan_sigint_abort_fails():
    """The abort itself is refused: the message says the plan may still run, still exit 130."""
    f = start_fake("--plan-tick-ms", "60000", "--fail-op", "shift-abort:internal")
    p = popen_shift(socks(f))
    wait_until(lambda: len(f.ops("status")) >= 1, 10.0, what="the first status poll")
    p.send_signal(signal.SIGINT)
    out, err = finish(p)
    check(p.returncode == 130, "exit %s: %s %s", p.returncode, out, err)
    check("shift-abort FAILED" in err and "may still be running" in err, "stderr %r", err)
    check(plan_of(f)["state"] == "running", "plan %r", plan_of(f))


# --- --json --------------------------------------------------------------------------------------

def test_shift_plan_json_lines():
    f = start_fake("--plan-tick-ms", "700")
    code, out, err = ctl(*socks(f), "--json", "shift", "app", "--to", "green", "--steps",
                         "25,100", "--interval", "30s", "--gate", "5xx<=1%", "--reason", "json")
    check(code == 0, "exit %s: %s %s", code, out, err)
    lines = [json.loads(l) for l in out.splitlines()]  # every line parses
    ev = [l["event"] for l in lines]
    check(ev[0] == "started" and ev[-1] == "result" and ev.count("progress") >= 1 and
          set(ev[1:-1]) == {"progress"}, "events %r", ev)
    check(lines[0]["replicas"][0]["plan"]["state"] == "running" and
          lines[0]["request"]["gates"] == {"max_5xx_percent": 1.0}, "%r", lines[0])
    prog = lines[1]
    check(prog["replicas"][0]["socket"] == f.sock and "window" in prog["replicas"][0]["plan"]
          and isinstance(prog["elapsed_s"], float), "progress %r", prog)
    res = lines[-1]
    check(res["ok"] is True and res["exit_code"] == 0 and res["command"] == "shift" and
          res["replicas"][0]["outcome"] == "promoted" and
          res["replicas"][0]["weights"] == {"blue": 0, "green": 100}, "result %r", res)


# --- several replicas ----------------------------------------------------------------------------

def test_shift_plan_replicas_one_rolls_back():
    a = start_fake("--plan-tick-ms", TICK)
    b = start_fake("--plan-tick-ms", TICK, "--plan-fail", "2:max_5xx_percent:4.2")
    code, out, err = ctl(*socks(a, b), "shift", "app", "--to", "green", "--steps", "10,50,100",
                         "--interval", "30s", "--gate", "5xx<=1%", "--reason", "two")
    check(code == 6, "exit %s (want 6): %s %s", code, out, err)
    check(len(a.ops("shift")) == 1 and len(b.ops("shift")) == 1, "fan-out")
    check(a.ops("status") and b.ops("status"), "both replicas polled")
    check(plan_of(a)["state"] == "promoted" and plan_of(b)["state"] == "rolled_back",
          "plans %r %r", plan_of(a), plan_of(b))
    bl = [l for l in err.splitlines() if b.sock in l]
    check(bl and "ROLLED BACK" in bl[0] and "max_5xx_percent" in bl[0] and "value 4.2" in bl[0],
          "stderr %r", err)
    check(a.sock in out and b.sock in out and "promoted on 1 of 2" in out, "stdout %r", out)


def test_shift_plan_replicas_partial():
    # one replica refuses (a plan is already running there), the other promotes: 5
    a = start_fake("--plan-tick-ms", TICK)
    b = start_fake()
    start_plan_raw(b)
    code, out, err = ctl(*socks(a, b), "shift", "app", "--to", "green", "--steps", "10,100",
                         "--interval", "30s", "--reason", "partial")
    check(code == 5, "exit %s (want 5): %s %s", code, out, err)
    check(plan_of(a)["state"] == "promoted", "a %r", plan_of(a))
    check("PARTIAL" in err and b.sock in err and "plan_exists" in err, "stderr %r", err)
    # one replica is down: 5; every replica down: 4
    c = start_fake("--plan-tick-ms", TICK)
    d = start_fake()
    d.stop()
    code, out, err = ctl(*socks(c, d), "shift", "app", "--to", "green", "--steps", "100",
                         "--interval", "30s", "--reason", "partial")
    check(code == 5 and "unreachable" in out, "one down exited %s: %s %s", code, out, err)
    code, out, err = ctl(*socks(d), "shift", "app", "--to", "green", "--steps", "100",
                         "--interval", "30s", "--reason", "r")
    check(code == 4, "all down exited %s", code)
    # Ctrl-C with two replicas: both aborted
    e, g = start_fake("--plan-tick-ms", "60000"), start_fake("--plan-tick-ms", "60000")
    p = popen_shift(socks(e, g))
    wait_until(lambda: e.ops("status") and g.ops("status"), 10.0, what="polls")
    p.send_signal(signal.SIGINT)
    out, err = finish(p)
    check(p.returncode == 130, "exit %s: %s", p.returncode, err)
    check(len(e.ops("shift-abort")) == 1 and len(g.ops("shift-abort")) == 1, "aborts")


def test_shift_plan_aborted_by_someone_else():
    f = start_fake("--plan-tick-ms", "60000")
    p = popen_shift(socks(f))
    wait_until(lambda: f.ops("status"), 10.0, what="a poll")
    rep = raw_request(f.sock, {"id": "oncall", "op": "shift-abort", "args": {
        "route": "app", "reason": "on-call stops it"}})
    check(rep["ok"], "%r", rep)
    out, err = finish(p)
    check(p.returncode == 2, "exit %s (want 2): %s %s", p.returncode, out, err)
    check("ABORTED by someone else" in err, "stderr %r", err)
    check(len(f.ops("shift-abort")) == 1, "the client aborted again")
    # an operator's `rollback` ends the plan (gate manual): the release did not go through, 6
    g = start_fake("--plan-tick-ms", "60000")
    p = popen_shift(socks(g))
    wait_until(lambda: g.ops("status"), 10.0, what="a poll")
    rep = raw_request(g.sock, {"id": "oncall", "op": "rollback", "args": {
        "route": "app", "reason": "INC-7"}})
    check(rep["ok"], "%r", rep)
    out, err = finish(p)
    check(p.returncode == 6, "exit %s (want 6): %s %s", p.returncode, out, err)
    check("ROLLED BACK by an operator" in err and "manual rollback" in err, "stderr %r", err)
    check(not g.ops("shift-abort"), "the client aborted a plan that had ended")


# --- shift-pause / -resume / -abort and status ---------------------------------------------------

def test_shift_plan_control_and_status():
    f = start_fake("--plan-tick-ms", "60000")
    S = socks(f)
    code, out, err = ctl(*S, "shift-pause", "app", "--reason", "r")
    check(code == 2 and "not_found" in out, "pause without a plan: %s %s", code, out)
    start_plan_raw(f, reason="release 9")
    code, out, err = ctl(*S, "status", "app")
    check(code == 0, "status %s", code)
    pl = [l for l in out.splitlines() if l.strip().startswith("plan ")]
    check(len(pl) == 1, "status has no plan line: %r", out)
    for s in ("running", "step 1/3", "green 10%", "from blue", "steps 10,50,100", "hold 600s",
              "window", "req", "p99", "next step in"):
        check(s in pl[0], "plan line lacks %r: %r", s, pl[0])
    check('"release 9"' in out, "status %r", out)
    code, out, err = ctl(*S, "status")
    check(out.count("    plan ") == 1, "a plan line for a route without a plan: %r", out)
    code, out, err = ctl(*S, "shift-pause", "app", "--reason", "look at dashboards")
    check(code == 0 and "plan paused at step 1/3" in out, "pause %s %s %s", code, out, err)
    check(f.ops("shift-pause")[-1]["request"]["args"] == {"route": "app",
                                                         "reason": "look at dashboards"}, "%r",
          f.ops("shift-pause"))
    code, out, err = ctl(*S, "shift-pause", "app", "--reason", "again")
    check(code == 2 and "invalid_state" in out, "pause twice: %s %s", code, out)
    code, out, err = ctl(*S, "--json", "status", "app")
    doc = json.loads(out)
    plan = doc["replicas"][0]["result"]["routes"][0]["plan"]
    check(plan["state"] == "paused" and plan["steps"] == [10, 50, 100] and "window" in plan,
          "--json status does not pass the plan through: %r", plan)
    code, out, err = ctl(*S, "shift-resume", "app", "--reason", "fine", "--expect-generation", "1")
    check(code == 2 and "conflict" in out, "resume with a stale generation: %s %s", code, out)
    code, out, err = ctl(*S, "shift-resume", "app", "--reason", "fine")
    check(code == 0 and "plan running" in out, "resume %s %s", code, out)
    code, out, err = ctl(*S, "shift-abort", "app", "--reason", "stop", "--json")
    doc = json.loads(out)
    check(code == 0 and doc["replicas"][0]["result"]["plan"]["state"] == "aborted", "%r", doc)
    check(app_weights(f) == {"blue": 90, "green": 10}, "abort moved weights %r", app_weights(f))
    code, out, err = ctl(*S, "shift-abort", "app", "--reason", "again")
    check(code == 2 and "invalid_state" in out, "abort twice: %s %s", code, out)
    # a rolled-back plan in status names the gate
    g = start_fake("--plan-tick-ms", "100", "--plan-fail", "1:max_5xx_percent:7")
    code, out, err = ctl(*socks(g), "shift", "app", "--to", "green", "--steps", "50,100",
                         "--interval", "30s", "--gate", "5xx<=2%", "--reason", "r")
    check(code == 6, "exit %s", code)
    code, out, err = ctl(*socks(g), "status", "app")
    check("plan rolled_back" in out and "ROLLED BACK: gate max_5xx_percent: value 7 > limit 2"
          in out, "status %r", out)

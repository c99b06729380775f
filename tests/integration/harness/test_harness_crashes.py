"""The post-test crash check (harness.stop_and_check / crash_report, run by run.py after every
test): a cutover that died by a signal the test did not send, exited with a sanitizer's exit
code, printed a sanitizer report or hangs on SIGTERM fails the test; a deliberate kill() and a
clean stop do not. These tests call the checker directly on processes they crash on purpose,
then take those processes out of the runner's view (harness.forget), so they pass."""
import json
import os
import signal
import subprocess
import sys
import time

import harness
from harness import (check, free_port, make_config, start_cutover, start_upstream, unique,
                     wait_until)


def _proxy():
    up = start_upstream("blue")
    port = free_port()
    cfg = make_config(port, {"blue": [up], "green": [up]}, {"blue": 100, "green": 0}, workers=1)
    return start_cutover(cfg)


def _fake(script, stderr_text=""):
    """A Cutover object around a small Python process (not registered with the harness): the
    checker judges it like a proxy."""
    base = unique("fake-cutover")
    err = base + ".stderr-fake"
    with open(err, "w") as f:
        f.write(stderr_text)
    with open(err, "a") as fe:
        p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=fe)
    return harness.Cutover(p, 0, {}, None, base + ".stdout", err)


def _set_aside(cx):
    """The runner must not count a crash made on purpose: forget the process and move its
    stderr out of the names run.py scans."""
    harness.forget(cx)
    if os.path.exists(cx.stderr):
        os.replace(cx.stderr, cx.stderr + ".expected-crash")
        cx.stderr += ".expected-crash"


def test_checker_reports_sigsegv():
    cx = _proxy()
    try:
        os.kill(cx.pid, signal.SIGSEGV)
        cx.popen.wait(timeout=20)
        problems = harness.stop_and_check([cx])
    finally:
        cx.kill()
        _set_aside(cx)
    check(len(problems) == 1, "one problem expected: %r", problems)
    msg = problems[0]
    # a plain build dies by the signal; under ASan the SEGV handler reports and exits 66
    check("pid %d" % cx.pid in msg and ("SIGSEGV" in msg or "SEGV" in msg),
          "the report does not name the pid and the signal: %r", msg)


def test_checker_reports_sigabrt_during_shutdown():
    # a process that crashes while stopping (SIGTERM handler aborts) fails the test
    p = _fake("import os, signal, time\n"
              "signal.signal(signal.SIGTERM, lambda *a: os.abort())\n"
              "print('up', flush=True)\n"
              "time.sleep(60)\n")
    try:
        time.sleep(0.3)
        problems = harness.stop_and_check([p], timeout=10)
    finally:
        p.kill()
    check(len(problems) == 1 and "died by SIGABRT" in problems[0] and
          "pid %d" % p.pid in problems[0], "a crash on SIGTERM: %r", problems)


def test_checker_reports_hang_on_sigterm():
    p = _fake("import signal, time\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "time.sleep(60)\n")
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        problems = harness.stop_and_check([p], timeout=1.0)
        dt = time.monotonic() - t0
    finally:
        p.kill()
    check(dt < 10, "the check took %.1f s", dt)
    check(len(problems) == 1 and "did not exit" in problems[0] and "SIGKILL" in problems[0],
          "a hang on SIGTERM: %r", problems)


def test_checker_reports_sanitizer_text_and_codes():
    report = ("==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x6150\n"
              "READ of size 8 at 0x6150 thread T3\n"
              "    #0 0x5 in conn_free proxy/h2up.c:74\n")
    # exit code 0 but a report on stderr
    p = _fake("import sys; sys.exit(0)", report)
    p.popen.wait(timeout=10)
    rep = harness.crash_report(p)
    check(rep and "heap-use-after-free" in rep and "conn_free" in rep and
          "pid %d" % p.pid in rep, "a report on stderr: %r", rep)
    # the sanitizer exit codes without a report
    for code, name in ((66, "AddressSanitizer"), (67, "UndefinedBehaviorSanitizer")):
        p = _fake("import sys; sys.exit(%d)" % code)
        p.popen.wait(timeout=10)
        rep = harness.crash_report(p)
        check(rep and "code %d" % code in rep and name in rep, "exit %d: %r", code, rep)
    # UBSan's and LSan's words
    for text in ("proxy/x.c:3:5: runtime error: signed integer overflow\n",
                 "==1==ERROR: LeakSanitizer: detected memory leaks\n"):
        p = _fake("import sys; sys.exit(0)", "noise\n" + text)
        p.popen.wait(timeout=10)
        rep = harness.crash_report(p)
        check(rep and text.strip()[:20] in rep, "%r: %r", text, rep)


def test_checker_accepts_deliberate_kill_and_clean_stop():
    cx = _proxy()
    cx.kill()  # SIGKILL on purpose: recorded, not a crash
    check(harness.stop_and_check([cx]) == [], "a deliberate kill() was reported")
    check(harness.crash_report(cx) is None, "crash_report after kill(): %r",
          harness.crash_report(cx))
    cx2 = _proxy()
    problems = harness.stop_and_check([cx2])  # SIGTERM: must exit cleanly
    check(problems == [], "a clean stop was reported: %r", problems)
    check(cx2.popen.returncode == 0, "exit code after SIGTERM: %s", cx2.popen.returncode)
    # a process that exits with an ordinary failure code (a refused config) is no crash
    p = _fake("import sys; sys.exit(1)", "cutover: config error\n")
    p.popen.wait(timeout=10)
    check(harness.crash_report(p) is None, "exit 1 reported: %r", harness.crash_report(p))


def test_checker_sees_an_unexpected_sigkill():
    # a SIGKILL the test did not send through kill() (e.g. the OOM killer) is a crash
    cx = _proxy()
    try:
        os.kill(cx.pid, signal.SIGKILL)
        wait_until(lambda: cx.popen.poll() is not None, 10, what="cutover to die")
        problems = harness.stop_and_check([cx])
    finally:
        _set_aside(cx)
    check(len(problems) == 1 and "died by SIGKILL" in problems[0], "%r", problems)


# --- the runner end to end: run.py --child on a "test" whose proxy crashes -------------------

def _crashing_test():
    """Not collected (no test_ prefix): asserts nothing, but its proxy dies by SIGSEGV."""
    cx = _proxy()
    os.kill(cx.pid, signal.SIGSEGV)
    cx.popen.wait(timeout=20)


def _clean_test():
    """Not collected: a proxy that answers and is left running for the runner to stop."""
    _proxy()


def _run_child(target):
    wd = unique("child")
    os.makedirs(wd)  # below this test's work directory: run.py's own scan does not look here
    result = os.path.join(wd, "result.json")
    env = dict(os.environ, CUTOVER_IT_WORKDIR=wd, CUTOVER_IT_PIDFILE=os.path.join(wd, "pids"))
    p = subprocess.run([sys.executable, os.path.join(harness.HERE, "run.py"), "--child",
                        "test_harness_crashes." + target, "--result", result],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90,
                       env=env, cwd=harness.HERE)
    with open(result) as f:
        return p.returncode, json.load(f)


def test_runner_fails_a_test_whose_proxy_crashed():
    code, res = _run_child("_crashing_test")
    check(code == 1 and res["ok"] is False, "the child passed: %r", res)
    check(res["reason"].startswith("CRASH: cutover pid ") and "SEGV" in res["reason"],
          "the reason does not name the crash: %r", res["reason"])
    code, res = _run_child("_clean_test")
    check(code == 0 and res["ok"] is True, "a clean test failed: %r", res)


def test_run_bin_fails_a_crash_whatever_the_exit_code_expected():
    """A cutover or cutoverctl the test runs to completion (--check, --version, the CLI) is
    judged by harness.run_bin: a refusal's exit 1 passes, a death by SIGSEGV or a sanitizer's
    exit code fails the test even where the test only looks for a non-zero exit."""
    p = harness.run_bin([sys.executable, "-c", "import sys; sys.exit(1)"])
    check(p.returncode == 1, "a plain exit 1: %r", p.returncode)
    for code, what in (("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "SIGSEGV"),
                       ("import sys; sys.exit(66)", "66"),
                       ("import sys; sys.stderr.write('==1==ERROR: AddressSanitizer: "
                        "heap-use-after-free\\n'); sys.exit(1)", "AddressSanitizer")):
        try:
            harness.run_bin([sys.executable, "-c", code])
        except harness.HarnessError as e:
            check(what in str(e), "the report names %s: %s", what, e)
        else:
            check(False, "run_bin let %s pass" % what)

#!/usr/bin/env python3
"""run.py - runs the cutover integration tests.

    python3 tests/integration/run.py [-k SUBSTRING] [--timeout SECONDS] [--list] [--keep]

Discovers tests/integration/AREA/test_*.py (areas: http, upstream, tls, control, release, observe,
harness; the shared helpers stay in tests/integration/) and runs every `test_*` function in its own child Python
process (so a hang or crash is isolated and bounded by the per-test timeout: 120 s unless the
function has a `timeout` attribute or --timeout is given). Prints one line per test:

    PASS test_split.test_split 3.21s
    FAIL test_retry.test_retry 1.02s: AssertionError: ...

then `integration: N passed, M failed`; exits 1 when M > 0 (or when nothing matched -k).
Every process a test started is recorded (PID and start time) and stopped by PID afterwards.
The work directory of a failed test (configs, proxy stdout/stderr, upstream logs, the test's own
output) is kept and printed; a passing test's is removed unless --keep.
"""
import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def test_files():
    """{module name: path} of every tests/integration/<area>/test_*.py (module names are unique
    across areas, so a test imports another's helpers by name: `from test_control import ...`)."""
    files = {}
    for area in sorted(os.listdir(HERE)):
        d = os.path.join(HERE, area)
        if not os.path.isdir(d) or area.startswith(("_", ".")):
            continue
        for fn in sorted(os.listdir(d)):
            if fn.startswith("test_") and fn.endswith(".py"):
                if fn[:-3] in files:
                    raise SystemExit("two test files named %s" % fn)
                files[fn[:-3]] = os.path.join(d, fn)
    return files


def discover():
    """[(module name, function name, timeout)] by area, then file, then definition order."""
    out = []
    for modname in test_files():
        fn = modname + ".py"
        mod = load_module(fn[:-3])
        for name, obj in vars(mod).items():  # definition order
            if name.startswith("test_") and callable(obj) and \
                    getattr(obj, "__module__", None) == mod.__name__:
                out.append((fn[:-3], name, getattr(obj, "timeout", None)))
    return out


def load_module(modname):
    files = test_files()
    for d in [HERE] + sorted({os.path.dirname(p) for p in files.values()}):
        if d not in sys.path:
            sys.path.insert(0, d)
    spec = importlib.util.spec_from_file_location(modname, files[modname])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod


def child(target, result_path):
    """Runs one test in this process; writes {"ok", "reason", "traceback"} to result_path."""
    modname, func = target.split(".", 1)
    res = {"ok": False, "reason": "", "traceback": ""}
    harness = None
    try:
        mod = load_module(modname)
        harness = sys.modules.get("harness")
        getattr(mod, func)()
        res["ok"] = True
    except BaseException as e:  # noqa: B902 - everything is a failure here
        tb = traceback.extract_tb(e.__traceback__)
        where = ""
        for fr in reversed(tb):
            if os.path.basename(fr.filename).startswith("test_"):
                where = " (%s:%d)" % (os.path.basename(fr.filename), fr.lineno)
                break
        msg = str(e).replace("\n", " | ")
        if len(msg) > 600:
            msg = msg[:600] + "..."
        res["reason"] = "%s: %s%s" % (type(e).__name__, msg, where)
        res["traceback"] = traceback.format_exc()
    finally:
        harness = harness or sys.modules.get("harness")
        if harness is not None:
            # Whatever the test asserted, a cutover it started that crashed (a signal it did
            # not send, a sanitizer report or exit code) fails it; so does one that does not
            # stop on SIGTERM.
            try:
                problems = harness.stop_and_check()
            except Exception as e:  # noqa: B902 - the check itself must not hide the result
                problems = ["the post-test crash check failed: %s: %s" % (type(e).__name__, e)]
            if problems:
                crash = "CRASH: " + " | ".join(problems)
                print(crash, flush=True)
                short = crash.replace("\n", " | ")
                if len(short) > 1500:
                    short = short[:1500] + "..."
                if res["ok"]:
                    res["ok"] = False
                    res["reason"] = short
                    res["traceback"] = crash
                else:
                    res["reason"] = short + " || test also failed: " + res["reason"]
                    res["traceback"] = crash + "\n" + res["traceback"]
            try:
                harness.cleanup_all()
            except Exception:
                pass
        with open(result_path, "w") as f:
            json.dump(res, f)
    return 0 if res["ok"] else 1


def proc_start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        return st[st.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def stop_leftovers(pidfile):
    """Stops, by PID, every recorded process that is still the same process (start time) and
    still running. Returns the count."""
    n = 0
    try:
        with open(pidfile) as f:
            entries = [l.split() for l in f if l.strip()]
    except FileNotFoundError:
        return 0
    live = []
    for e in entries:
        try:
            pid = int(e[0])
        except (ValueError, IndexError):
            continue
        st = e[1] if len(e) > 1 else "-"
        cur = proc_start_time(pid)
        if cur is None or (st != "-" and cur != st):
            continue  # gone, or the PID now belongs to someone else
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        live.append(pid)
    for pid in live:
        try:
            os.kill(pid, signal.SIGTERM)
            n += 1
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 3.0
    while live and time.monotonic() < deadline:
        live = [p for p in live if proc_start_time(p) is not None and not is_zombie(p)]
        time.sleep(0.05)
    for pid in live:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return n


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def sanitizer_reports(wd):
    """The first line of each sanitizer report in the proxies' stderr files of a test's work
    directory (cutover-N.stderr), as one string; "" when none. A fallback for the child's own
    check (harness.stop_and_check), which cannot run when the test timed out."""
    out = []
    try:
        names = sorted(os.listdir(wd))
    except OSError:
        return ""
    for fn in names:
        if not (fn.startswith("cutover") and fn.endswith(".stderr")):
            continue
        try:
            with open(os.path.join(wd, fn), errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            if any(m in line for m in SANITIZER_MARKERS):
                out.append("%s: %s" % (fn, line.strip()[:300]))
                break
    return " | ".join(out)


def is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def become_subreaper():
    """Orphans of a killed test (its cutover and upstream processes) are re-parented to this
    process, so they can be reaped after being stopped. Linux only; best effort."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def reap_orphans():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main():
    ap = argparse.ArgumentParser(description="cutover integration tests")
    ap.add_argument("-k", dest="substring", default=None,
                    help="run tests whose AREA/MODULE.FUNCTION contains it (-k control/)")
    ap.add_argument("--timeout", type=float, default=None, help="per-test timeout (s)")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--keep", action="store_true", help="keep work directories of passing tests")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        sys.exit(child(args.child, args.result))

    tests = discover()
    if args.substring:
        files = test_files()
        tests = [t for t in tests
                 if args.substring in "%s/%s.%s" % (os.path.basename(os.path.dirname(files[t[0]])),
                                                    t[0], t[1])]
    if args.list:
        for m, f, _ in tests:
            print("%s.%s" % (m, f))
        return 0

    become_subreaper()
    base = tempfile.mkdtemp(prefix="cutover-it-")
    passed = failed = 0
    t_all = time.monotonic()
    for modname, func, tmo in tests:
        name = "%s.%s" % (modname, func)
        timeout = args.timeout or tmo or 120.0
        wd = os.path.join(base, name)
        os.makedirs(wd)
        pidfile = os.path.join(wd, "pids")
        result = os.path.join(wd, "result.json")
        env = dict(os.environ, CUTOVER_IT_PIDFILE=pidfile, CUTOVER_IT_WORKDIR=wd,
                   PYTHONUNBUFFERED="1")
        t0 = time.monotonic()
        with open(os.path.join(wd, "test.out"), "wb") as out:
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", name,
                                  "--result", result], stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env, cwd=HERE)
            reason = None
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                reason = "timed out after %.0f s" % timeout
            except KeyboardInterrupt:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                stop_leftovers(pidfile)
                print("interrupted", flush=True)
                return 130
        dt = time.monotonic() - t0
        left = stop_leftovers(pidfile)
        reap_orphans()
        san = sanitizer_reports(wd)
        res = None
        try:
            with open(result) as f:
                res = json.load(f)
        except (OSError, ValueError):
            pass
        ok = reason is None and res is not None and res.get("ok") and p.returncode == 0
        if san and "CRASH" not in ((res or {}).get("reason") or ""):
            # the child's own check did not run (timed out) or missed it
            if reason is None and not ok:
                reason = (res or {}).get("reason") or "child exited with code %s" % p.returncode
            reason = "CRASH: " + san + ("; " + reason if reason else "")
            ok = False
        if ok:
            passed += 1
            print("PASS %s %.2fs" % (name, dt), flush=True)
            if not args.keep:
                shutil.rmtree(wd, ignore_errors=True)
        else:
            failed += 1
            if reason is None:
                reason = (res or {}).get("reason") or "child exited with code %s" % p.returncode
            if left:
                reason += " [stopped %d leftover process(es)]" % left
            print("FAIL %s %.2fs: %s" % (name, dt, reason), flush=True)
            tb = (res or {}).get("traceback", "")
            if not tb:
                try:
                    with open(os.path.join(wd, "test.out"), errors="replace") as f:
                        tb = f.read()[-3000:]
                except OSError:
                    tb = ""
            if "cutover binary not found" not in reason:
                for line in tb.rstrip().splitlines()[-12:]:
                    print("    " + line)
            print("    workdir: " + wd, flush=True)
    if not os.listdir(base):
        shutil.rmtree(base, ignore_errors=True)
    if not tests:
        print("no tests matched", flush=True)
    print("(%.1f s)" % (time.monotonic() - t_all), flush=True)
    print("integration: %d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed or not tests else 0


if __name__ == "__main__":
    sys.exit(main())

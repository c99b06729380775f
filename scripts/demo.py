#!/usr/bin/env python3
"""demo.py - a real blue/green release on loopback (run by `make demo`).

Starts two origins (blue on 127.0.0.1:18081, green on :18082) and cutover with config/demo.json
(90/10 on 127.0.0.1:18080, plus a control socket in a temporary directory), sends a few thousand
requests and prints the observed split. Then a scripted release with cutoverctl: promote blue
(the stable state a release starts from), shift green 10 -> 50 -> 100 %, roll back, printing the
split after each step; and finally the same switch by reloading an edited configuration
(SIGHUP). Stops everything it started, by PID, and exits 0 when every request succeeded and
every split is what the weights say.
"""
import http.client
import json
import shlex
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
CUTOVER = os.path.join(REPO, BUILD, "cutover")
CUTOVERCTL = os.path.join(REPO, BUILD, "cutoverctl")
ORIGIN = os.path.join(REPO, BUILD, "bench", "origin")
UPSTREAM_PY = os.path.join(REPO, "tests", "integration", "upstream.py")
LISTEN, BLUE, GREEN = 18080, 18081, 18082
REQUESTS = 4000
started = []


def stop_all():
    for p in reversed(started):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + 10
    for p in started:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_port(port, proc, what):
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("demo: %s exited early (status %s)" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("demo: %s did not start listening on %d" % (what, port))


def start_origin(name, port):
    if os.access(ORIGIN, os.X_OK):
        cmd = [ORIGIN, "--port", str(port), "--name", name]
    else:
        cmd = [sys.executable, UPSTREAM_PY, "--port", str(port), "--name", name,
               "--log", os.devnull]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(p)
    wait_port(port, p, "origin " + name)


def send(n, threads=4):
    """n GET requests over keep-alive connections; returns ({colour: count}, failures)."""
    counts, failures, lock = {}, [0], threading.Lock()

    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", LISTEN, timeout=10)
        for _ in range(k):
            try:
                conn.request("GET", "/", headers={"Host": "demo.local"})
                r = conn.getresponse()
                body = r.read().decode().strip()
                with lock:
                    if r.status == 200:
                        counts[body] = counts.get(body, 0) + 1
                    else:
                        failures[0] += 1
            except (OSError, http.client.HTTPException):
                with lock:
                    failures[0] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", LISTEN, timeout=10)
        conn.close()

    ts = [threading.Thread(target=worker, args=(n // threads,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return counts, failures[0]


def show(label, counts, failures, want_green):
    total = sum(counts.values())
    green = counts.get("green", 0)
    share = 100.0 * green / total if total else 0.0
    bar = "#" * int(share / 2)
    print("  %-28s blue %5d  green %5d  -> green %6.2f %% |%-50s| failed %d"
          % (label, counts.get("blue", 0), green, share, bar, failures))
    return failures == 0 and abs(share - want_green) <= 2.0


def main():
    for port in (LISTEN, BLUE, GREEN):
        if not port_free(port):
            sys.exit("demo: port %d on 127.0.0.1 is in use; stop whatever holds it" % port)
    with open(os.path.join(REPO, "config", "demo.json")) as f:
        cfg = json.load(f)
    work = tempfile.mkdtemp(prefix="cutover-demo-")
    path = os.path.join(work, "demo.json")

    def write(blue, green):
        cfg["routes"][0]["weights"] = {"blue": blue, "green": green}
        with open(path + ".tmp", "w") as f:
            json.dump(cfg, f, indent=2)
        os.replace(path + ".tmp", path)

    cfg["control"] = {"socket": os.path.join(work, "control.sock"),
                      "state_file": os.path.join(work, "state.json"),
                      "audit_file": os.path.join(work, "audit.jsonl")}
    write(90, 10)
    log = open(os.path.join(work, "cutover.log"), "w")

    def ctl(*args):
        cmd = [CUTOVERCTL, "--socket", cfg["control"]["socket"]] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        print("  $ cutoverctl %s" % shlex.join(args))
        for line in r.stdout.strip().splitlines():
            print("    " + line)
        if r.returncode != 0:
            sys.exit("demo: cutoverctl failed (exit %d): %s" % (r.returncode, r.stderr.strip()))
    try:
        start_origin("blue", BLUE)
        start_origin("green", GREEN)
        cut = subprocess.Popen([CUTOVER, "-c", path], stdout=log, stderr=subprocess.STDOUT)
        started.append(cut)
        wait_port(LISTEN, cut, "cutover")
        print("cutover is listening on 127.0.0.1:%d; blue on :%d, green on :%d" % (LISTEN, BLUE, GREEN))
        ok = True
        ok &= show("90/10 (config/demo.json)", *send(REQUESTS), 10.0)
        print("\nA release with cutoverctl (each change durable and audited before it is acknowledged):")
        ctl("promote", "demo", "blue", "--reason", "demo: blue is the stable version")
        ok &= show("stable: blue 100 %", *send(REQUESTS), 0.0)
        for pct in (10, 50, 100):
            ctl("set-weights", "demo", "blue=%d" % (100 - pct), "green=%d" % pct,
                "--reason", "demo: release step green %d%%" % pct)
            ok &= show("green %d %%" % pct, *send(REQUESTS), float(pct))
        ctl("rollback", "demo", "--reason", "demo: roll back to the stable version")
        ok &= show("after rollback", *send(REQUESTS), 0.0)
        ctl("status", "demo")
        print("\nThe same switch by editing the configuration and reloading it (SIGHUP):")
        for blue, green, label in ((0, 100, "switch to green (SIGHUP)"),
                                   (100, 0, "back to blue (SIGHUP)")):
            write(blue, green)
            generation_lines = sum(1 for _ in open(log.name))
            cut.send_signal(signal.SIGHUP)
            deadline = time.time() + 5
            while time.time() < deadline:
                with open(log.name) as f:
                    lines = f.readlines()[generation_lines:]
                if any('"event":"reload"' in l for l in lines):
                    break
                time.sleep(0.02)
            else:
                sys.exit("demo: the reload was not applied")
            ok &= show(label, *send(REQUESTS), float(green))
        print("audit log: %s" % cfg["control"]["audit_file"])
        print("access log and events: %s" % log.name)
        # cutover stopped gracefully: any other end (a signal, a non-zero exit) fails the demo
        stop_all()
        if cut.returncode != 0:
            print("demo: cutover ended with %s" % (
                "signal %d" % -cut.returncode if cut.returncode < 0 else
                "exit %d" % cut.returncode))
            ok = False
        print("demo %s" % ("passed: every request answered, every split as configured" if ok
                           else "FAILED"))
        return 0 if ok else 1
    finally:
        stop_all()
        log.close()


if __name__ == "__main__":
    sys.exit(main())

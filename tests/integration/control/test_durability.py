"""Control-plane durability and the audit trail (issue 11): every generation that is ever served
has its audit record (write-ahead record, then the state file), start-up reconciles the state
file with the audit log, a second instance on the same state refuses to start, refused requests
cost the trail a bounded amount, a torn last audit line is set aside, and weights are written
exactly.

Each test starts its own cutover processes and upstreams on loopback and stops them by PID.
"""
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time

from harness import (check, free_port, require_bin, start_cutover, start_upstream, wait_until,
                     workdir, exit_problem, HarnessError)
from test_control import (ROUTE, Ctl, CtlClosed, all_audit_lines, control_section, proxy_config,
                          start_cutover_args, wait_ctl, weights_bp)

# --- helpers -----------------------------------------------------------------------------------


def changes(audit_path):
    """The audit records that put a generation in force: changes made (result ok) and the
    start-up records, as {generation_after: record}."""
    out = {}
    for r in all_audit_lines(audit_path):
        if r.get("kind") == "change" and r.get("result") == "ok":
            out[r["generation_after"]] = r
        elif "kind" not in r and r.get("result") == "ok" and \
                r.get("generation_after") != r.get("generation_before"):
            out[r["generation_after"]] = r  # records written before the kind field existed
    return out


def status_generation(path):
    with Ctl(path) as c:
        rep = c.ok("status", {"route": ROUTE})
        return rep["generation"], weights_bp(rep["result"]["routes"][0]["weights"])


def run_once(config, extra=(), timeout=10.0):
    """Runs cutover with config until it exits by itself (a refusal to start); returns
    (exit code, stderr)."""
    from harness import write_config, unique
    path = write_config(config)
    base = unique("cutover-once")
    with open(base + ".stdout", "wb") as fo, open(base + ".stderr", "wb") as fe:
        p = subprocess.run([require_bin(), "-c", path, "-w", "1"] + list(extra),
                           stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, cwd=workdir(),
                           timeout=timeout)
    with open(base + ".stderr", errors="replace") as f:
        err = f.read()
    why = exit_problem(p.returncode, err)
    if why:
        raise HarnessError("cutover %s" % why)
    with open(base + ".stdout", errors="replace") as f:
        out = f.read()
    return p.returncode, err, out


class Hammer:
    """Keeps requests flowing to port from a thread, tolerating a proxy that comes and goes."""

    def __init__(self, port, deadline_s):
        self.port = port
        self.stop_at = time.monotonic() + deadline_s
        self.stopped = threading.Event()
        self.ok = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        req = b"GET / HTTP/1.1\r\nHost: test.local\r\n\r\n"
        while not self.stopped.is_set() and time.monotonic() < self.stop_at:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                    for _ in range(50):
                        s.sendall(req)
                        data = s.recv(65536)
                        if not data:
                            break
                        self.ok += 1
            except OSError:
                time.sleep(0.005)

    def stop(self):
        self.stopped.set()
        self.t.join(timeout=5)


# --- 1. a crash never leaves a change in force without its audit record -------------------------

def test_kill_loop_every_served_generation_is_audited():
    """60 kill -9 at random points (0-10 ms after sending a set-weights, under load); after each
    restart the generation in force, and every generation any access log line names, has its
    audit record; no acknowledged change is lost."""
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    ctl = control_section()
    cfg = proxy_config(port, {"blue": [blue], "green": [green]}, {"blue": 50, "green": 50}, ctl)
    audit = ctl["audit_file"]
    rng = random.Random(11)
    hammer = Hammer(port, 170)
    procs = []
    acked = 0  # the highest generation an acknowledgement named
    kills = 0
    try:
        cx = start_cutover(cfg, workers=2)
        procs.append(cx)
        path = wait_ctl(cx)
        for i in range(60):
            gen, _ = status_generation(path)
            check(gen >= acked, "kill %d: generation %d in force, but %d was acknowledged", i, gen,
                  acked)
            check(gen in changes(audit), "kill %d: generation %d is served with no audit record "
                  "(recorded: %s)", i, gen, sorted(changes(audit))[-5:])
            c = Ctl(path)
            b = rng.choice(range(0, 101, 5))
            c.send_raw(json.dumps({"v": 1, "id": "k%d" % i, "op": "set-weights",
                                   "args": {"route": ROUTE, "reason": "kill loop %d" % i,
                                            "weights": {"blue": b, "green": 100 - b}}}).encode()
                       + b"\n")
            if rng.random() < 0.3:  # sometimes the acknowledgement arrives first
                try:
                    rep = c.read_line(timeout=5)
                    if rep.get("ok"):
                        acked = max(acked, rep["generation"])
                except (CtlClosed, socket.timeout):
                    pass
            else:
                time.sleep(rng.random() * 0.010)
            cx.kill()
            kills += 1
            c.close()
            cx = start_cutover(cfg, workers=2)
            procs.append(cx)
            path = wait_ctl(cx)
        gen, _ = status_generation(path)
        check(gen in changes(audit), "after the loop: generation %d has no audit record", gen)
        cx.stop()
    finally:
        hammer.stop()
    check(kills >= 50, "only %d kills", kills)
    check(hammer.ok > 0, "no request was served during the loop")
    recorded = changes(audit)
    served = set()
    for p in procs:
        for a in p.access():
            if "generation" in a:
                served.add(a["generation"])
    check(served, "no access log line names a generation")
    missing = sorted(g for g in served if g not in recorded)
    check(not missing, "generations served without an audit record: %s", missing)
    for line in open(audit):
        json.loads(line)  # every line whole
test_kill_loop_every_served_generation_is_audited.timeout = 240


def test_interrupted_change_is_recorded_as_aborted_at_start():
    """A change recorded just before a crash (its record written, the state file not yet) is
    never served after the restart: start-up writes an aborted record for it and keeps the
    state file's generation; the next change takes the number."""
    blue, green = start_upstream("blue"), start_upstream("green")
    ctl = control_section()
    cfg = proxy_config(free_port(), {"blue": [blue], "green": [green]},
                       {"blue": 90, "green": 10}, ctl)
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    with Ctl(path) as c:
        g = c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 60, "green": 40},
                                 "reason": "step"})["generation"]
    cx.stop()
    # What the write-ahead record of a change that crashed before its state file looks like.
    rec = dict(all_audit_lines(ctl["audit_file"])[-1])
    rec.update({"generation_before": g, "generation_after": g + 1, "args": None,
                "weights_before": {"blue": 60, "green": 40},
                "weights_after": {"blue": 0, "green": 100}, "reason": "crashed"})
    with open(ctl["audit_file"], "a") as f:
        f.write(json.dumps(rec) + "\n")
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    gen, w = status_generation(path)
    check(gen == g and w == {"blue": 6000, "green": 4000},
          "the state file's generation %d stays in force: got %d %r", g, gen, w)
    ev = cx.wait_event("state_unfinished_change")
    check("generation %d" % (g + 1) in ev.get("reason", ""), "event: %r", ev)
    last = [r for r in all_audit_lines(ctl["audit_file"]) if r.get("kind") == "change"][-1]
    check(last["op"] == "recover" and last["result"] == "aborted" and
          last["generation_before"] == g + 1 and last["generation_after"] == g,
          "the recovery record: %r", last)
    with Ctl(path) as c:
        rep = c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 50, "green": 50},
                                   "reason": "next"})
    check(rep["generation"] == g + 1, "the next change: %r", rep)
    cx.stop()


def test_state_file_older_than_the_audit_log_is_refused():
    """A state file restored from a backup (older than acknowledged changes) stops start-up
    with a clear message; --discard-state starts from the configuration at a fresh
    generation, recorded."""
    blue, green = start_upstream("blue"), start_upstream("green")
    ctl = control_section()
    cfg = proxy_config(free_port(), {"blue": [blue], "green": [green]},
                       {"blue": 90, "green": 10}, ctl)
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    backup = ctl["state_file"] + ".backup"
    with Ctl(path) as c:
        c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 80, "green": 20}, "reason": "a"})
        shutil.copy(ctl["state_file"], backup)
        c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 70, "green": 30}, "reason": "b"})
        last = c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 60, "green": 40},
                                    "reason": "c"})["generation"]
    cx.stop()
    shutil.copy(backup, ctl["state_file"])
    code, err, _ = run_once(cfg)
    check(code == 1 and "older than acknowledged changes" in err and "--discard-state" in err,
          "exit %s, stderr %r", code, err)
    cx = start_cutover_args(cfg, ["--discard-state"])
    path = wait_ctl(cx)
    gen, w = status_generation(path)
    check(gen == last + 1 and w == {"blue": 9000, "green": 1000}, "after discard: %d %r", gen, w)
    rec = changes(ctl["audit_file"]).get(gen)
    check(rec and rec["op"] == "start" and "discarded" in (rec.get("reason") or ""),
          "the start record: %r", rec)
    check(os.path.exists(ctl["state_file"] + ".discarded"), "the old file is kept")
    cx.stop()


# --- 6. a missing state file is never a silent reset --------------------------------------------

def test_missing_state_file_after_changes_refuses_to_start():
    blue, green = start_upstream("blue"), start_upstream("green")
    ctl = control_section()
    cfg = proxy_config(free_port(), {"blue": [blue], "green": [green]},
                       {"blue": 90, "green": 10}, ctl)
    cx = start_cutover(cfg)
    ev = cx.wait_event("state_initialised")
    check(ev.get("generation") == 1, "first start: %r", ev)
    path = wait_ctl(cx)
    first = changes(ctl["audit_file"]).get(1)
    check(first and first["op"] == "start" and first["actor"]["user"] == "cutover",
          "the first start is recorded: %r", first)
    with Ctl(path) as c:
        g = c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 50, "green": 50},
                                 "reason": "half"})["generation"]
    cx.stop()
    os.unlink(ctl["state_file"])
    code, err, out = run_once(cfg)
    check(code == 1 and "missing" in err and "generation %d" % g in err and
          "--discard-state" in err, "exit %s, stderr %r", code, err)
    check('"event":"state_refused"' in out, "an event says why: %r", out[-1000:])
    cx = start_cutover_args(cfg, ["--discard-state"])
    path = wait_ctl(cx)
    gen, w = status_generation(path)
    check(gen == g + 1 and w == {"blue": 9000, "green": 1000}, "after discard: %d %r", gen, w)
    cx.wait_event("state_discarded")
    cx.stop()


# --- 5. a torn last audit line is set aside -----------------------------------------------------

def test_torn_audit_line_is_set_aside():
    blue, green = start_upstream("blue"), start_upstream("green")
    ctl = control_section()
    cfg = proxy_config(free_port(), {"blue": [blue], "green": [green]},
                       {"blue": 90, "green": 10}, ctl)
    cx = start_cutover(cfg)
    wait_ctl(cx)
    cx.stop()
    torn = '{"type":"audit","kind":"change","time":"2026-12-04T'
    with open(ctl["audit_file"], "a") as f:
        f.write(torn)
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    ev = cx.wait_event("audit_torn_line")
    check(ev.get("bytes") == len(torn) and ev.get("set_aside") == ctl["audit_file"] + ".torn",
          "event: %r", ev)
    with Ctl(path) as c:
        c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 50, "green": 50},
                             "reason": "after the tear"})
    cx.stop()
    with open(ctl["audit_file"]) as f:
        lines = f.read().split("\n")
    check(lines[-1] == "", "the file ends with a newline")
    for i, line in enumerate(lines[:-1]):
        try:
            json.loads(line)
        except ValueError:
            raise AssertionError("line %d is not whole JSON: %r" % (i, line[:200]))
    check(any(json.loads(l).get("reason") == "after the tear" for l in lines[:-1]),
          "the record after the tear is whole")
    with open(ctl["audit_file"] + ".torn") as f:
        check(f.read() == torn + "\n", "the torn bytes are kept aside")


# --- 2. one instance per state -------------------------------------------------------------------

def test_second_instance_refuses_to_start():
    """A second cutover with the same configuration refuses before it opens a listener; the
    first keeps its control socket and every request follows its acknowledged weights."""
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    ctl = control_section()
    cfg = proxy_config(port, {"blue": [blue], "green": [green]}, {"blue": 50, "green": 50}, ctl)
    first = start_cutover(cfg)
    path = wait_ctl(first)
    code, err, _ = run_once(cfg)
    check(code == 1 and "another cutover (pid %d)" % first.pid in err and
          "control.state_file" in err, "second instance: exit %s, stderr %r", code, err)
    # Same socket, other state and audit files: still refused (the socket is live).
    other = dict(ctl, state_file=ctl["state_file"] + ".2", audit_file=ctl["audit_file"] + ".2")
    code, err, _ = run_once(proxy_config(port, {"blue": [blue], "green": [green]},
                                         {"blue": 50, "green": 50}, other))
    check(code == 1 and "control.socket" in err, "same socket: exit %s, stderr %r", code, err)
    check(os.path.exists(ctl["socket"]), "the live socket was not unlinked")
    with Ctl(path) as c:
        c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 100, "green": 0},
                             "reason": "all blue"})
    from test_control import shares
    got = shares(port, 400)
    check(got == {"blue": 400}, "every request goes where the acknowledged weights say: %r", got)
    # A dead first instance leaves a stale socket and lock file: a new one starts.
    first.kill()
    again = start_cutover(cfg)
    wait_ctl(again)
    gen, w = status_generation(ctl["socket"])
    check(w == {"blue": 10000, "green": 0}, "the state survived: %r", w)
    again.stop()


# --- 4. refusals cost the trail a bounded amount ------------------------------------------------

def test_refusal_flood_is_bounded_and_does_not_delay_changes():
    """One client sends refused requests with 8 KB arguments as fast as it can for 4 s while
    another makes 10 changes: every change is acknowledged promptly, the audit file grows by a
    bounded amount, every refusal is counted, and history shows the changes first."""
    blue, green = start_upstream("blue"), start_upstream("green")
    ctl = control_section()
    cfg = proxy_config(free_port(), {"blue": [blue], "green": [green]},
                       {"blue": 90, "green": 10}, ctl)
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    audit = ctl["audit_file"]
    size0 = os.path.getsize(audit)
    refused = [0]
    stop = threading.Event()

    def flood():
        big = "x" * 8192
        with Ctl(path, timeout=10) as c:
            while not stop.is_set():
                rep = c.call("set-weights", {"route": ROUTE, "reason": big,
                                             "weights": {"blue": 50, "green": 50}})
                check(rep.get("ok") is False, "flood request accepted: %r", rep)
                refused[0] += 1
    t = threading.Thread(target=flood, daemon=True)
    t0_flood = time.monotonic()
    t.start()
    time.sleep(0.5)
    latencies = []
    with Ctl(path, timeout=10) as c:
        for i in range(10):
            t0 = time.monotonic()
            c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 80 - i, "green": 20 + i},
                                 "reason": "change %d" % i})
            latencies.append(time.monotonic() - t0)
            time.sleep(0.3)
    stop.set()
    t.join(timeout=10)
    flood_s = time.monotonic() - t0_flood
    time.sleep(REFUSAL_SETTLE)
    check(refused[0] > 200, "the flood sent only %d requests", refused[0])
    check(max(latencies) < 2.0, "a change waited %.2f s behind the flood", max(latencies))
    grown = os.path.getsize(audit) - size0
    # A burst of 64 full records, then 8 a second and one summary a second, each under 2 KiB
    # (control/refusal.h), plus the 10 changes: however many refusals were sent.
    bound = (64 + 9 * (flood_s + REFUSAL_SETTLE + 1) + 10) * 2048
    check(grown < bound, "the audit file grew by %d bytes (bound %d) for %d refusals", grown,
          bound, refused[0])
    recs = [r for r in all_audit_lines(audit) if r.get("result") == "refused"]
    counted = sum(r.get("count", 1) for r in recs)
    check(counted == refused[0], "refusals on the record: %d, sent: %d", counted, refused[0])
    check(all(len(json.dumps(r)) < 4096 for r in recs), "refusal records stay small")
    with Ctl(path) as c:
        hist = c.ok("history", {"limit": 10})["result"]["records"]
        check([h.get("reason") for h in hist] == ["change %d" % i for i in range(10)],
              "history shows the changes: %r", [h.get("reason") for h in hist])
        withr = c.ok("history", {"limit": 1000, "refusals": True})["result"]["records"]
        check(any(h.get("result") == "refused" for h in withr), "refusals on request")
        bad = c.call("history", {"refusals": "yes"})
        check(bad["error"]["code"] == "invalid_argument" and
              bad["error"]["path"] == "args.refusals", "%r", bad)
    out_audit = [a for a in cx.log.poll() if a.get("type") == "audit"]
    check(len(out_audit) < 200, "stdout copies are bounded too: %d", len(out_audit))
    cx.stop()
test_refusal_flood_is_bounded_and_does_not_delay_changes.timeout = 120

REFUSAL_SETTLE = 1.6  # a refusal window (1 s) and a tick, for the last summary


def test_history_survives_a_restart():
    blue, green = start_upstream("blue"), start_upstream("green")
    ctl = control_section()
    cfg = proxy_config(free_port(), {"blue": [blue], "green": [green]},
                       {"blue": 90, "green": 10}, ctl)
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    with Ctl(path) as c:
        for i in range(3):
            c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 70 - i, "green": 30 + i},
                                 "reason": "before restart %d" % i})
    cx.kill()
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    with Ctl(path) as c:
        hist = c.ok("history", {"limit": 3})["result"]["records"]
    check([h.get("reason") for h in hist] == ["before restart %d" % i for i in range(3)],
          "history after a restart: %r", hist)
    cx.stop()


# --- 8. weights are written exactly everywhere ----------------------------------------------------

def test_weights_are_exact_in_audit_replies_and_stdout():
    blue, green = start_upstream("blue"), start_upstream("green")
    ctl = control_section()
    cfg = proxy_config(free_port(), {"blue": [blue], "green": [green]},
                       {"blue": 90, "green": 10}, ctl)
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    with Ctl(path) as c:
        c.send_raw(json.dumps({"v": 1, "id": "x", "op": "set-weights",
                               "args": {"route": ROUTE, "reason": "exact",
                                        "weights": {"blue": 97.21, "green": 2.79}}}).encode()
                   + b"\n")
        raw = b""
        while b"\n" not in raw:
            raw += c.sock.recv(65536)
        check(b"97.21" in raw and b"97.209" not in raw, "reply: %r", raw)
        c.send_raw(b'{"v":1,"id":"s","op":"status"}\n')
        raw = b""
        while b"\n" not in raw:
            raw += c.sock.recv(65536)
        check(b"97.21" in raw and b"97.209" not in raw, "status: %r", raw[:400])
    with open(ctl["audit_file"]) as f:
        text = f.read()
    check('"blue":97.21' in text and "97.209" not in text and "2.7899" not in text,
          "audit file: %r", text[-600:])
    with open(cx.stdout) as f:
        out = f.read()
    check('"blue":97.21' in out and "97.209" not in out, "stdout copy")
    cx.stop()

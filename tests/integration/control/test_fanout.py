"""Fan-out across real replicas: three cutover processes on loopback driven by one cutoverctl
command (control-plane issue: "three cutover processes on loopback, one of them stopped -> exit
5 and a clear report"), and the generation barrier (--wait) over real servers."""
import json
import os
import subprocess

from harness import (check, free_port, http_request, make_config, start_cutover,
                     start_upstream, workdir, run_bin)
from test_cutoverctl import ctl_bin


def _replicas(n, blue, green):
    out = []
    for i in range(n):
        sock = os.path.join(workdir(), "r%d.sock" % i)
        cfg = make_config(free_port(), {"blue": [blue], "green": [green]},
                          {"blue": 100, "green": 0},
                          control={"socket": sock,
                                   "state_file": os.path.join(workdir(), "r%d.state" % i),
                                   "roles": [{"uid": os.geteuid(), "role": "admin"}]})
        out.append((start_cutover(cfg), sock))
    return out


def _ctl(socks, *args):
    cmd = [ctl_bin()]
    for s in socks:
        cmd += ["--socket", s]
    cmd += list(args)
    return run_bin(cmd, capture_output=True, text=True, timeout=60)


def test_fanout_three_replicas_one_stopped():
    blue, green = start_upstream("blue"), start_upstream("green")
    reps = _replicas(3, blue, green)
    socks = [s for _, s in reps]

    r = _ctl(socks, "--wait", "--json", "set-weights", "app", "blue=60", "green=40",
             "--reason", "fan-out step")
    check(r.returncode == 0, "all replicas up: exit %d: %s %s", r.returncode, r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    check(doc["ok"] is True and len(doc["replicas"]) == 3, "json: %r", doc)
    check(all(x["ok"] and x["generation"] == 2 for x in doc["replicas"]), "json: %r", doc)
    for cx, sock in reps:  # each replica really serves the new split
        st = _ctl([sock], "--json", "status", "app")
        got = json.loads(st.stdout)["replicas"][0]["result"]["routes"][0]["weights"]
        check(got == {"blue": 60, "green": 40}, "%s: %r", sock, got)
        check(http_request(cx.port, "GET", "/")[0] == 200, "replica %s serves", sock)

    dead_cx, dead_sock = reps[1]
    dead_cx.stop()
    r = _ctl(socks, "set-weights", "app", "blue=20", "green=80", "--reason", "fan-out step 2")
    check(r.returncode == 5, "one replica stopped: exit %d, expected 5: %s %s", r.returncode,
          r.stdout, r.stderr)
    report = r.stdout + r.stderr
    check(dead_sock in report, "the report names the stopped replica: %r", report)
    r = _ctl(socks, "--json", "set-weights", "app", "blue=10", "green=90", "--reason", "step 3")
    check(r.returncode == 5, "json run: exit %d", r.returncode)
    doc = json.loads(r.stdout)
    by_sock = {x["socket"]: x for x in doc["replicas"]}
    check(by_sock[dead_sock]["ok"] is False, "dead replica reported failed: %r", doc)
    check(all(by_sock[s]["ok"] for s in socks if s != dead_sock), "live ones ok: %r", doc)
    for cx, sock in (reps[0], reps[2]):
        st = _ctl([sock], "--json", "status", "app")
        got = json.loads(st.stdout)["replicas"][0]["result"]["routes"][0]["weights"]
        check(got == {"blue": 10, "green": 90}, "live replica %s changed: %r", sock, got)

    # every replica down: unreachable -> 4
    for cx, _ in reps:
        if cx is not dead_cx:
            cx.stop()
    r = _ctl(socks, "status")
    check(r.returncode == 4, "all replicas down: exit %d, expected 4", r.returncode)

"""Release safety decided inside cutover: gated shift plans (automatic rollback when green starts
failing, promotion when it does not, a restart in the middle resumes the plan), passive outlier
ejection of a failing endpoint and its return, the watchdog outside plans. The switchable
upstream is a small HTTP server in this process (real sockets on 127.0.0.1) whose answers the
test flips."""
import http.server
import json
import socketserver
import subprocess
import threading
import time
from datetime import datetime

from harness import HOST, check, free_port, unique, wait_until
from test_control import Ctl, all_audit_lines, control_section, start_cutover_args, wait_ctl
from test_cutoverctl import ctl_bin
from harness import make_config

ROUTE = "app"


class Switchable:
    """An HTTP/1.1 keep-alive server answering "NAME\\n" with status self.status (settable)."""

    def __init__(self, name):
        self.name, self.status, self.port = name, 200, free_port()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = (outer.name + "\n").encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-upstream", outer.name)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.srv = S((HOST, self.port), H)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()
        self.addr = "%s:%d" % (HOST, self.port)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class Load:
    """Keep-alive clients sending GETs back to back; records (t_sent, t_recv, pool, status)
    in wall-clock seconds."""

    def __init__(self, port, conns=4):
        import http.client
        self.port, self.stop_ev, self.rec, self.errors = port, threading.Event(), [], []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(http.client,), daemon=True)
                        for _ in range(conns)]
        for t in self.threads:
            t.start()

    def run(self, hc):
        c = hc.HTTPConnection(HOST, self.port, timeout=5)
        while not self.stop_ev.is_set():
            t0 = time.time()
            try:
                c.request("GET", "/", headers={"Host": "app.test"})
                r = c.getresponse()
                r.read()
                with self.lock:
                    self.rec.append((t0, time.time(), r.getheader("x-upstream"), r.status))
            except Exception as e:  # noqa: BLE001 - every failure is recorded and asserted
                with self.lock:
                    self.errors.append(repr(e))
                c.close()
                c = hc.HTTPConnection(HOST, self.port, timeout=5)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(10)


def start(blue, green, weights=None, **route_extra):
    port = free_port()
    cfg = make_config(port, {"blue": [blue.addr], "green": [green.addr]},
                      weights or {"blue": 100, "green": 0}, control=control_section())
    cfg["routes"][0].update(route_extra)
    cx = start_cutover_args(cfg, [])
    return cx, wait_ctl(cx), port


def plan_of(path):
    with Ctl(path) as c:
        return c.ok("status", {"route": ROUTE})["result"]["routes"][0]["plan"]


def wait_plan(path, pred, timeout, what):
    return wait_until(lambda: (lambda p: p if p and pred(p) else None)(plan_of(path)), timeout,
                      interval=0.05, what=what)


def ts(rfc3339):
    return datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=__import__("datetime").timezone.utc).timestamp()


def test_gated_shift_rolls_back_when_green_fails():
    blue, green = Switchable("blue"), Switchable("green")
    cx, path, port = start(blue, green)
    load = Load(port)
    # the pipeline's command: it starts the plan in cutover and follows it
    ctl = subprocess.Popen([ctl_bin(), "--socket", path, "shift", ROUTE, "--to", "green",
                            "--steps", "10,25,50,100", "--interval", "1s", "--gate", "5xx<=5%",
                            "--min-requests", "20", "--reason", "release 2026.11.24"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        p = wait_plan(path, lambda p: p["step"] >= 1, 10, "step 25%")
        check(p["state"] == "running", "plan %r", p)
        green.status = 500  # green breaks at 25 %
        p = wait_plan(path, lambda p: p["state"] != "running", 10, "the automatic rollback")
        check(p["state"] == "rolled_back" and p["rolled_back"]["gate"] == "max_5xx_percent"
              and p["rolled_back"]["value"] > 5, "plan %r", p)
        out, err = ctl.communicate(timeout=15)
        check(ctl.returncode == 6, "cutoverctl shift exit %s (want 6): %s %s", ctl.returncode,
              out[-800:], err[-800:])
        check("max_5xx_percent" in out + err, "the failing gate is not named: %s %s", out, err)
        time.sleep(1.0)
    finally:
        if ctl.poll() is None:
            ctl.kill()
            ctl.wait(5)
        load.stop()
    with Ctl(path) as c:
        st = c.ok("status", {"route": ROUTE})["result"]["routes"][0]
    check(st["weights"] == {"blue": 100, "green": 0}, "weights after rollback %r", st["weights"])
    audit = [a for a in all_audit_lines(cx.config["control"]["audit_file"])
             if a.get("op") == "rollback"]
    check(len(audit) == 1, "audit %r", audit)
    a = audit[0]
    args = a["args"] if isinstance(a["args"], dict) else json.loads(a["args"])
    check(a["actor"]["user"] == "auto" and a["result"] == "ok", "actor auto: %r", a)
    check(args["gate"] == "max_5xx_percent" and args["value"] > 5 and args["limit"] == 5 and
          args["window"]["requests"] >= 20, "audit args %r", args)
    t_rb = ts(a["time"])
    late = [r for r in load.rec if r[0] > t_rb + 0.005 and r[2] == "green" and r[3] >= 500]
    check(not late, "green 5xx after the rollback was published: %r", late[:5])
    check(not load.errors, "client errors %r", load.errors[:5])


def test_gated_shift_promotes_and_survives_a_restart():
    blue, green = Switchable("blue"), Switchable("green")
    cx, path, port = start(blue, green)
    load = Load(port, conns=2)
    try:
        with Ctl(path) as c:
            c.ok("shift", {"route": ROUTE, "to": "green", "steps": [20, 60, 100], "hold_s": 1,
                           "gates": {"max_5xx_percent": 1, "max_p99_ms": 1000,
                                     "min_requests": 5}, "reason": "release"})
        wait_plan(path, lambda p: p["step"] >= 1, 10, "step 2")
        # restart in the middle: the plan is in the state file and goes on
        cx.kill()
        cx2 = start_cutover_args(cx.config, [])
        wait_ctl(cx2)
        ev = cx2.wait_event("state_applied")
        check(ev, "state applied on restart")
        p = plan_of(path)
        check(p["state"] == "running" and p["step"] >= 1, "plan after restart %r", p)
        p = wait_plan(path, lambda p: p["state"] != "running", 20, "promotion")
        check(p["state"] == "promoted", "plan %r", p)
    finally:
        load.stop()
    with Ctl(path) as c:
        st = c.ok("status", {"route": ROUTE})["result"]["routes"][0]
    check(st["weights"] == {"blue": 0, "green": 100} and
          st["stable"] == {"blue": 0, "green": 100}, "promoted weights %r", st)
    steps = [a for a in all_audit_lines(cx.config["control"]["audit_file"])
             if a.get("op") in ("shift-step", "promote")]
    check([a["op"] for a in steps] == ["shift-step", "shift-step", "promote"] and
          all(a["actor"]["user"] == "auto" for a in steps),
          "auto steps audited: %r", [(a.get("op"), a.get("actor")) for a in steps])
    bad = [r for r in load.rec if r[3] != 200]
    check(not bad, "failed requests during the shift/restart: %r", bad[:5])


def test_plan_refusals_pause_resume_abort():
    blue, green = Switchable("blue"), Switchable("green")
    cx, path, port = start(blue, green)
    with Ctl(path) as c:
        for args, code in ((dict(to="green", steps=[50, 40, 100], hold_s=1), "invalid_argument"),
                           (dict(to="green", steps=[50, 90], hold_s=1), "invalid_argument"),
                           (dict(to="red", steps=[100], hold_s=1), "not_found"),
                           (dict(to="green", steps=[100], hold_s=1, gates={"x": 1}),
                            "invalid_argument")):
            rep = c.call("shift", dict(route=ROUTE, reason="t", **args))
            check(not rep["ok"] and rep["error"]["code"] == code, "%r -> %r", args, rep)
        c.ok("shift", {"route": ROUTE, "to": "green", "steps": [10, 100], "hold_s": 30,
                       "reason": "t"})
        rep = c.call("shift", {"route": ROUTE, "to": "green", "steps": [100], "hold_s": 1,
                               "reason": "t"})
        check(rep["error"]["code"] == "plan_exists", "second plan %r", rep)
        rep = c.call("set-weights", {"route": ROUTE, "weights": {"blue": 0, "green": 100},
                                     "reason": "t"})
        check(rep["error"]["code"] == "plan_running", "set-weights during a plan %r", rep)
        check(c.ok("shift-pause", {"route": ROUTE, "reason": "t"})["result"]["plan"]["state"]
              == "paused", "pause")
        check(c.call("shift-pause", {"route": ROUTE, "reason": "t"})["error"]["code"] ==
              "invalid_state", "pause twice")
        c.ok("shift-resume", {"route": ROUTE, "reason": "t"})
        p = c.ok("shift-abort", {"route": ROUTE, "reason": "t"})["result"]
        check(p["plan"]["state"] == "aborted" and p["weights"] == {"blue": 90, "green": 10},
              "abort keeps the weights: %r", p)
        check(c.call("shift-abort", {"route": ROUTE, "reason": "t"})["error"]["code"] ==
              "invalid_state", "abort twice")
        # a manual rollback ends a running plan
        c.ok("shift", {"route": ROUTE, "to": "green", "steps": [30, 100], "hold_s": 30,
                       "reason": "t"})
        r = c.ok("rollback", {"route": ROUTE, "reason": "t"})["result"]
        st = c.ok("status", {"route": ROUTE})["result"]["routes"][0]
        check(st["plan"]["state"] == "rolled_back" and st["plan"]["rolled_back"]["gate"] ==
              "manual" and st["weights"]["green"] == 0, "manual rollback %r %r", r, st)


def test_outlier_ejection_and_return():
    good, bad = Switchable("blue"), Switchable("blue-2")
    green = Switchable("green")
    port = free_port()
    cfg = make_config(port, {"blue": [good.addr, bad.addr], "green": [green.addr]},
                      {"blue": 100, "green": 0}, control=control_section())
    cfg["routes"][0]["outlier_detection"] = {"consecutive_failures": 3,
                                             "base_ejection_ms": 1500,
                                             "max_ejection_ms": 10000,
                                             "max_ejection_percent": 50}
    cx = start_cutover_args(cfg, [])
    wait_ctl(cx)
    bad.status = 503
    load = Load(port, conns=2)
    try:
        ev = cx.wait_event("endpoint_health", timeout=10)
        check(ev["state"] == "ejected" and ev["endpoint"] == bad.addr and
              ev["consecutive_failures"] >= 3 and ev["ejection_ms"] == 1500, "event %r", ev)
        t_ej = time.time()
        time.sleep(0.5)
        n = len(load.rec)
        time.sleep(0.8)
        window = load.rec[n:]
        check(window and all(r[2] == "blue" for r in window),
              "traffic still reaching the ejected endpoint: %r", window[:5])
        bad.status = 200
        ev2 = wait_until(lambda: [e for e in cx.events("endpoint_health")
                                  if e["state"] == "returned"], 5, what="return")[0]
        check(ev2["endpoint"] == bad.addr and time.time() - t_ej >= 1.2, "return %r", ev2)
        n = len(load.rec)
        wait_until(lambda: any(r[2] == "blue-2" for r in load.rec[n:]), 5,
                   what="traffic back on the returned endpoint")
    finally:
        load.stop()
    failed = [r for r in load.rec if r[3] >= 500 and r[2] != "blue-2"]
    check(not failed, "failures from healthy endpoints: %r", failed[:5])


def test_watchdog_rolls_back_outside_a_plan():
    blue, green = Switchable("blue"), Switchable("green")
    cx, path, port = start(blue, green, watchdog={"max_5xx_percent": 10, "window_s": 5,
                                                  "min_requests": 10})
    with Ctl(path) as c:
        c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 50, "green": 50},
                             "reason": "canary by hand"})
    green.status = 502
    load = Load(port, conns=2)
    try:
        def rolled():
            with Ctl(path) as c:
                w = c.ok("status", {"route": ROUTE})["result"]["routes"][0]["weights"]
            return w["green"] == 0 and w
        wait_until(rolled, 10, what="the watchdog rollback")
    finally:
        load.stop()
    audit = [a for a in all_audit_lines(cx.config["control"]["audit_file"])
             if a.get("op") == "rollback"]
    check(len(audit) == 1 and audit[0]["actor"]["user"] == "auto" and
          audit[0]["args"]["gate"] == "watchdog_5xx_percent" and
          audit[0]["args"]["value"] > 10 and audit[0]["args"]["window"]["requests"] >= 10,
          "audit %r", audit)


def test_plan_rolls_back_when_green_loses_its_endpoints():
    """No gate configured: green being ejected (outlier detection) while it carries weight ends
    the plan with gate "unhealthy"; meanwhile the fail-safe keeps clients on blue."""
    blue, green = Switchable("blue"), Switchable("green")
    cx, path, port = start(blue, green, outlier_detection={"consecutive_failures": 3,
                                                           "base_ejection_ms": 30000})
    load = Load(port, conns=2)
    try:
        with Ctl(path) as c:
            c.ok("shift", {"route": ROUTE, "to": "green", "steps": [50, 100], "hold_s": 30,
                           "reason": "no gates"})
        green.status = 503
        p = wait_plan(path, lambda p: p["state"] != "running", 10, "rollback on unhealthy")
        check(p["state"] == "rolled_back" and p["rolled_back"]["gate"] == "unhealthy",
              "plan %r", p)
        ev = cx.wait_event("pool_failsafe")
        check(ev["pool"] == "green", "fail-safe event %r", ev)
    finally:
        load.stop()
    with Ctl(path) as c:
        w = c.ok("status", {"route": ROUTE})["result"]["routes"][0]["weights"]
    check(w == {"blue": 100, "green": 0}, "weights %r", w)


def test_slow_start_after_return():
    """A returning endpoint ramps over slow_start_ms: a small share at first, its full share
    later."""
    a, b, green = Switchable("blue"), Switchable("blue-2"), Switchable("green")
    port = free_port()
    cfg = make_config(port, {"blue": [a.addr, b.addr], "green": [green.addr]},
                      {"blue": 100, "green": 0}, control=control_section())
    cfg["routes"][0]["pools"]["blue"]["slow_start_ms"] = 4000
    cfg["routes"][0]["pools"]["blue"]["balance"] = "round_robin"
    cfg["routes"][0]["outlier_detection"] = {"consecutive_failures": 3, "base_ejection_ms": 1000}
    cx = start_cutover_args(cfg, [])
    wait_ctl(cx)
    b.status = 503
    load = Load(port, conns=2)
    try:
        cx.wait_event("endpoint_health", timeout=10)
        b.status = 200
        wait_until(lambda: [e for e in cx.events("endpoint_health") if e["state"] == "returned"],
                   5, what="return")
        n = len(load.rec)
        time.sleep(0.8)
        early = [r for r in load.rec[n:] if r[3] == 200]
        time.sleep(3.5)
        n = len(load.rec)
        time.sleep(1.5)
        late = [r for r in load.rec[n:] if r[3] == 200]
    finally:
        load.stop()
    share = lambda recs: sum(1 for r in recs if r[2] == "blue-2") / max(1, len(recs))  # noqa
    check(len(early) >= 20 and share(early) < 0.35, "early share %.2f of %d", share(early),
          len(early))
    check(len(late) >= 20 and share(late) > 0.35, "late share %.2f of %d", share(late), len(late))

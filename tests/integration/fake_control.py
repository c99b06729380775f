#!/usr/bin/env python3
"""fake_control.py - a fake cutover control socket, only for testing cutoverctl.

    python3 fake_control.py --socket PATH [--generation N] [--deny] [--fail-op OP[:CODE]]
                            [--delay-ms N] [--rollback-after-steps K] [--lag-ms N] [--log FILE]
                            [--plan-tick-ms N] [--plan-fail STEP:GATE:VALUE]
                            [--plan-exists-code busy|plan_exists]

Speaks docs/control-protocol.md (newline-delimited JSON on a Unix stream socket) with in-memory
state: two routes, "app" (pools blue, green; blue 100 %) and "tri" (blue, green, canary:
80/20/0), a generation, compare-and-set (expect_generation -> conflict), and a history ring.

  --deny                  the caller is a viewer: every mutating op is refused with `denied`
  --fail-op OP[:CODE]     OP is refused with CODE (default `internal`); repeatable
  --delay-ms N            every reply is delayed N ms (timeouts)
  --rollback-after-steps K  after the K-th successful set-weights the route goes back to its
                          stable weights at once (an "auto" rollback, new generation)
  --lag-ms N              status/version report a generation only N ms after it was made;
                          -1: they keep reporting the starting generation (a stuck replica)
  --log FILE              every request received, one JSON line each (and the reply's ok/code)

Server-side shift plans (ops shift, shift-pause, shift-resume, shift-abort; `plan` per route in
status), emulated without traffic: the first step is applied at once; each step is held
hold_s seconds (or --plan-tick-ms, to keep tests short), then the next step is applied; after the
last step's hold the plan is `promoted` (that pool 100 %, which becomes the stable weights). The
step's `window` is made up: requests grow with the time held, 5xx about 0.2 %, p99 87 ms.

  --plan-tick-ms N        hold every step N ms instead of hold_s
  --plan-fail STEP:GATE:VALUE  at the end of step STEP (1-based) the plan is `rolled_back` by
                          GATE (max_5xx_percent, max_p99_ms or unhealthy) with VALUE, the limit
                          being the gate the client sent; the window shows VALUE during that step
  --plan-exists-code C    how a shift on a route with a running or paused plan is refused:
                          code `plan_exists` (default, as cutover does), or `busy` with
                          "reason": "plan_exists" (a spelling cutoverctl also accepts)
A `rollback` ends a running or paused plan as `rolled_back` with gate `manual` (as cutover does).
Plans advance lazily, when a request arrives (the client polls status), so time is all they need.

Prints "ready" on stdout once listening; stops on SIGTERM or SIGINT (removes the socket).
Python 3 standard library only.
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

MAX_LINE = 64 * 1024
MUTATING = {"set-weights", "promote", "rollback", "drain", "undrain", "add-endpoint",
            "remove-endpoint", "reload", "shift", "shift-pause", "shift-resume", "shift-abort"}
ARGS = {
    "version": set(), "history": {"limit"}, "status": {"route"},
    "set-weights": {"route", "weights", "reason", "expect_generation"},
    "promote": {"route", "pool", "reason", "expect_generation"},
    "rollback": {"route", "reason", "expect_generation"},
    "drain": {"route", "pool", "endpoint", "reason", "expect_generation"},
    "undrain": {"route", "pool", "endpoint", "reason", "expect_generation"},
    "add-endpoint": {"route", "pool", "endpoint", "reason", "expect_generation"},
    "remove-endpoint": {"route", "pool", "endpoint", "reason", "expect_generation"},
    "reload": {"reason", "expect_generation"},
    "shift": {"route", "to", "steps", "hold_s", "gates", "reason", "expect_generation"},
    "shift-pause": {"route", "reason", "expect_generation"},
    "shift-resume": {"route", "reason", "expect_generation"},
    "shift-abort": {"route", "reason", "expect_generation"},
}
GATES = {"max_5xx_percent", "max_p99_ms", "min_requests"}


def rfc3339(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Refused(Exception):
    def __init__(self, code, message, path=None, extra=None):
        super().__init__(message)
        self.code, self.message, self.path, self.extra = code, message, path, extra or {}


def _ep(addr, added=False):
    return {"address": addr, "drained": False, "added": added}


class State:
    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.Lock()
        self.generation = opts.generation
        self.start_generation = opts.generation
        self.changes = []  # (monotonic time, generation)
        self.started = time.monotonic()
        self.set_weights_ok = 0
        self.history = []
        self.routes = {
            "app": {"weights": {"blue": 100, "green": 0}, "stable": {"blue": 100, "green": 0},
                    "pools": {"blue": {"endpoints": [_ep("127.0.0.1:9001")]},
                              "green": {"endpoints": [_ep("127.0.0.1:9002")]}}},
            "tri": {"weights": {"blue": 80, "green": 20, "canary": 0},
                    "stable": {"blue": 80, "green": 20, "canary": 0},
                    "pools": {"blue": {"endpoints": [_ep("127.0.0.1:9011")]},
                              "green": {"endpoints": [_ep("127.0.0.1:9012")]},
                              "canary": {"endpoints": [_ep("127.0.0.1:9013")]}}},
        }
        self.plans = {}  # route -> {"pub": the PLAN object of status, private fields...}
        for r in self.routes.values():
            for i, p in enumerate(r["pools"].values()):
                p["requests"] = 1000 * (i + 1)
                p["responses_5xx"] = i

    def visible_generation(self):
        lag = self.opts.lag_ms
        if lag is None or lag == 0:
            return self.generation
        if lag < 0:
            return self.start_generation
        now = time.monotonic()
        g = self.start_generation
        for t, gen in self.changes:
            if now - t >= lag / 1000.0:
                g = gen
        return g

    def bump(self):
        self.generation += 1
        self.changes.append((time.monotonic(), self.generation))

    def audit(self, op, args, ok, code, before, reason, user="fake"):
        self.history.append({"type": "audit", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                     time.gmtime()),
                             "actor": {"uid": os.getuid(), "user": user}, "role": "admin",
                             "op": op, "args": args, "result": "ok" if ok else "refused",
                             "error": {"code": code, "message": code} if code else None,
                             "generation_before": before,
                             "generation_after": self.generation, "reason": reason})
        del self.history[:-1000]

    # --- the operations ---------------------------------------------------------------------

    def route(self, args):
        name = args.get("route")
        if not isinstance(name, str):
            raise Refused("invalid_argument", "route is required", "args.route")
        if name not in self.routes:
            raise Refused("not_found", "no route '%s'" % name, "args.route")
        return name, self.routes[name]

    def pool(self, r, args):
        p = args.get("pool")
        if not isinstance(p, str):
            raise Refused("invalid_argument", "pool is required", "args.pool")
        if p not in r["pools"]:
            raise Refused("not_found", "no pool '%s'" % p, "args.pool")
        return p, r["pools"][p]

    def handle(self, op, args):
        """Returns the result; raises Refused. Called with the lock held."""
        if op == "version":
            return {"version": "0.2.0-fake", "protocol": 1}
        if op == "status":
            names = [self.route(args)[0]] if "route" in args else list(self.routes)
            return {"uptime_s": int(time.monotonic() - self.started), "config_file": "/fake.json",
                    "cluster": "fake-cluster", "region": "fake-region",
                    "routes": [dict(self.routes[n], name=n, plan=self.plan_view(n))
                               for n in names]}
        if op == "history":
            lim = args.get("limit", 50)
            if not isinstance(lim, int) or not 1 <= lim <= 1000:
                raise Refused("invalid_argument", "limit must be 1..1000", "args.limit")
            return {"records": self.history[-lim:]}
        # mutating
        if op != "reload" or "reason" in args:
            reason = args.get("reason")
            if not isinstance(reason, str) or not 1 <= len(reason) <= 512:
                raise Refused("invalid_argument", "reason is required (1..512 chars)",
                              "args.reason")
        if self.opts.deny:
            raise Refused("denied", "role viewer may not %s" % op)
        eg = args.get("expect_generation")
        if eg is not None and eg != self.generation:
            raise Refused("conflict", "expect_generation is %s but the generation is %d"
                          % (eg, self.generation), "args.expect_generation")
        if op == "reload":
            self.bump()
            return {"reloaded": True}
        name, r = self.route(args)
        if op == "shift":
            return self.shift(name, r, args)
        if op in ("shift-pause", "shift-resume", "shift-abort"):
            return self.shift_control(op, name, r)
        if op == "set-weights":
            w = args.get("weights")
            if not isinstance(w, dict) or set(w) != set(r["pools"]):
                raise Refused("invalid_argument", "weights must name every pool of the route",
                              "args.weights")
            if any(not isinstance(v, (int, float)) or v < 0 or v > 100 for v in w.values()) \
                    or round(sum(w.values()) * 100) != 10000:
                raise Refused("invalid_argument", "weights must sum to 100", "args.weights")
            r["weights"] = dict(w)
            self.bump()
            self.set_weights_ok += 1
            res = {"route": name, "weights": dict(w)}
            k = self.opts.rollback_after_steps
            if k and self.set_weights_ok == k:
                self.pending_rollback = name
            return res
        if op == "promote":
            p, _ = self.pool(r, args)
            r["weights"] = {n: (100 if n == p else 0) for n in r["pools"]}
            r["stable"] = dict(r["weights"])
            self.bump()
            return {"route": name, "weights": r["weights"], "stable": r["stable"]}
        if op == "rollback":
            p = self.plans.get(name)
            if p and p["pub"]["state"] in ("running", "paused"):
                p["pub"]["state"] = "rolled_back"
                p["pub"]["rolled_back"] = {"gate": "manual", "value": 0.0, "limit": 0.0,
                                           "at": rfc3339()}
            if r["weights"] == r["stable"]:
                return {"route": name, "weights": r["weights"], "already": True}
            r["weights"] = dict(r["stable"])
            self.bump()
            return {"route": name, "weights": r["weights"], "already": False}
        p, pool = self.pool(r, args)
        ep = args.get("endpoint")
        if not isinstance(ep, str) or ":" not in ep:
            raise Refused("invalid_argument", "endpoint must be host:port", "args.endpoint")
        found = [e for e in pool["endpoints"] if e["address"] == ep]
        if op in ("drain", "undrain"):
            if not found:
                raise Refused("not_found", "no endpoint '%s' in pool %s" % (ep, p),
                              "args.endpoint")
            found[0]["drained"] = op == "drain"
            self.bump()
            return {"route": name, "pool": p, "endpoint": ep, "drained": op == "drain"}
        if op == "add-endpoint":
            if found:
                raise Refused("invalid_argument", "endpoint already in the pool", "args.endpoint")
            pool["endpoints"].append(_ep(ep, True))
            self.bump()
            return {"route": name, "pool": p, "endpoint": ep}
        if op == "remove-endpoint":
            if not found:
                raise Refused("not_found", "no endpoint '%s'" % ep, "args.endpoint")
            if len(pool["endpoints"]) == 1:
                raise Refused("invalid_argument", "cannot remove the last endpoint",
                              "args.endpoint")
            pool["endpoints"].remove(found[0])
            self.bump()
            return {"route": name, "pool": p, "endpoint": ep}
        raise Refused("unknown_op", "no such operation '%s'" % op, "op")

    # --- shift plans ------------------------------------------------------------------------

    def shift(self, name, r, args):
        p = self.plans.get(name)
        if p and p["pub"]["state"] in ("running", "paused"):
            if self.opts.plan_exists_code == "plan_exists":
                raise Refused("plan_exists", "route %s already has a %s plan" % (
                    name, p["pub"]["state"]), "args.route")
            raise Refused("busy", "route %s already has a %s plan" % (name, p["pub"]["state"]),
                          "args.route", {"reason": "plan_exists"})
        to = args.get("to")
        if not isinstance(to, str):
            raise Refused("invalid_argument", "to is required", "args.to")
        if to not in r["pools"]:
            raise Refused("not_found", "no pool '%s'" % to, "args.to")
        steps = args.get("steps")
        if not isinstance(steps, list) or not 1 <= len(steps) <= 100 or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 100
                for v in steps) or any(b <= a for a, b in zip(steps, steps[1:])) \
                or steps[-1] != 100:
            raise Refused("invalid_argument", "steps must increase to 100", "args.steps")
        hold = args.get("hold_s")
        if isinstance(hold, bool) or not isinstance(hold, (int, float)) or hold < 0:
            raise Refused("invalid_argument", "hold_s must be a number >= 0", "args.hold_s")
        gates = args.get("gates", {})
        if not isinstance(gates, dict):
            raise Refused("invalid_argument", "gates must be an object", "args.gates")
        for k, v in gates.items():
            if k not in GATES:
                raise Refused("invalid_argument", "unknown gate '%s'" % k, "args.gates." + k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise Refused("invalid_argument", "a gate is a number >= 0", "args.gates." + k)
        others = {k: v for k, v in r["weights"].items() if k != to}
        frm = max(others, key=lambda k: others[k])
        keep = {k: v for k, v in others.items() if k != frm}
        if steps[-1] + sum(keep.values()) > 100:
            raise Refused("invalid_argument", "the last step does not fit", "args.steps")
        now = time.monotonic()
        pub = {"state": "running", "to": to, "from": frm, "steps": list(steps), "step": 0,
               "weight": steps[0], "hold_s": hold, "next_step_in_s": None, "gates": dict(gates),
               "window": None, "reason": args["reason"], "rolled_back": None,
               "started_at": rfc3339(), "actor": "fake"}
        self.plans[name] = p = {"pub": pub, "keep": keep, "step_started": now, "held": 0.0,
                                "hold": (self.opts.plan_tick_ms / 1000.0
                                         if self.opts.plan_tick_ms else float(hold))}
        self.apply_step(name, p, bump=True)
        return {"route": name, "plan": self.plan_view(name), "weights": dict(r["weights"])}

    def shift_control(self, op, name, r):
        p = self.plans.get(name)
        if not p:
            raise Refused("not_found", "route %s has no plan" % name, "args.route")
        st = p["pub"]["state"]
        now = time.monotonic()
        if op == "shift-pause":
            if st != "running":
                raise Refused("invalid_state", "the plan is %s" % st)
            p["held"] += now - p["step_started"]
            p["pub"]["state"] = "paused"
        elif op == "shift-resume":
            if st != "paused":
                raise Refused("invalid_state", "the plan is %s" % st)
            p["step_started"] = now
            p["pub"]["state"] = "running"
        else:
            if st not in ("running", "paused"):
                raise Refused("invalid_state", "the plan is %s" % st)
            if st == "running":
                p["held"] += now - p["step_started"]
            p["pub"]["state"] = "aborted"
        self.bump()
        return {"route": name, "plan": self.plan_view(name)}

    def apply_step(self, name, p, bump):
        r = self.routes[name]
        pub = p["pub"]
        w = pub["steps"][pub["step"]]
        pub["weight"] = w
        weights = {pub["to"]: w, pub["from"]: 100 - w - sum(p["keep"].values())}
        weights.update(p["keep"])
        r["weights"] = {k: weights[k] for k in r["pools"]}
        p["step_started"] = time.monotonic()
        p["held"] = 0.0
        if bump:
            self.bump()

    def fail_spec(self):
        if not self.opts.plan_fail:
            return None
        step, gate, value = self.opts.plan_fail.split(":")
        return int(step) - 1, gate, float(value)

    def held(self, p, now):
        if p["pub"]["state"] == "running":
            return p["held"] + (now - p["step_started"])
        return p["held"]

    def advance_plans(self):
        now = time.monotonic()
        for name, p in self.plans.items():
            pub = p["pub"]
            while pub["state"] == "running" and self.held(p, now) >= p["hold"]:
                fail = self.fail_spec()
                if fail and fail[0] == pub["step"]:
                    r = self.routes[name]
                    pub["state"] = "rolled_back"
                    pub["rolled_back"] = {"gate": fail[1], "value": fail[2],
                                          "limit": pub["gates"].get(fail[1]), "at": rfc3339()}
                    r["weights"] = dict(r["stable"])
                    b = self.generation
                    self.bump()
                    self.audit("rollback", {"route": name}, True, None, b,
                               "shift plan rolled back: %s" % fail[1], user="auto")
                elif pub["step"] + 1 < len(pub["steps"]):
                    pub["step"] += 1
                    self.apply_step(name, p, bump=True)
                else:
                    r = self.routes[name]
                    pub["state"] = "promoted"
                    r["weights"] = {k: (100 if k == pub["to"] else 0) for k in r["pools"]} \
                        if not p["keep"] else r["weights"]
                    r["stable"] = dict(r["weights"])
                    self.bump()

    def plan_view(self, name):
        """The PLAN object of status (a copy), with the window and countdown of now."""
        p = self.plans.get(name)
        if not p:
            return None
        now = time.monotonic()
        pub = json.loads(json.dumps(p["pub"]))
        held = self.held(p, now)
        pub["next_step_in_s"] = round(max(0.0, p["hold"] - held), 1) \
            if pub["state"] == "running" else None
        frac = min(1.0, held / p["hold"]) if p["hold"] > 0 else 1.0
        req = int(50 + 462 * frac)
        err, p99 = req // 500, 87.0
        fail = self.fail_spec()
        if fail and fail[0] == pub["step"]:
            if fail[1] == "max_5xx_percent":
                err = int(round(req * fail[2] / 100.0))
            elif fail[1] == "max_p99_ms":
                p99 = fail[2]
        pub["window"] = {"requests": req, "errors_5xx": err,
                         "ratio_percent": round(100.0 * err / req, 2), "p99_ms": p99}
        return pub

    def request(self, line):
        """One request line -> one reply dict."""
        try:
            req = json.loads(line)
        except ValueError:
            return {"id": None, "ok": False, "generation": self.generation,
                    "error": {"code": "bad_request", "message": "not JSON"}}
        if not isinstance(req, dict) or not isinstance(req.get("id"), str) \
                or not isinstance(req.get("op"), str):
            return {"id": None, "ok": False, "generation": self.generation,
                    "error": {"code": "bad_request", "message": "id and op are required"}}
        rid, op, args = req["id"], req["op"], req.get("args", {})
        with self.lock:
            before = self.generation
            try:
                if req.get("v", 1) != 1:
                    raise Refused("unsupported_version", "v must be 1", "v")
                if op not in ARGS:
                    raise Refused("unknown_op", "no such operation '%s'" % op, "op")
                if not isinstance(args, dict):
                    raise Refused("invalid_argument", "args must be an object", "args")
                extra = set(args) - ARGS[op]
                if extra:
                    k = sorted(extra)[0]
                    raise Refused("invalid_argument", "unknown key '%s'" % k, "args." + k)
                for spec in self.opts.fail_op:
                    fop, _, code = spec.partition(":")
                    if fop == op:
                        raise Refused(code or "internal", "failing %s on purpose" % op)
                self.pending_rollback = None
                self.advance_plans()
                result = self.handle(op, args)
                gen = self.visible_generation() if op in ("status", "version") \
                    else self.generation
                reply = {"id": rid, "ok": True, "generation": gen, "result": result}
                if op in MUTATING:
                    self.audit(op, args, True, None, before, args.get("reason"))
                if self.pending_rollback:
                    r = self.routes[self.pending_rollback]
                    b = self.generation
                    r["weights"] = dict(r["stable"])
                    self.bump()
                    self.audit("rollback", {"route": self.pending_rollback}, True, None, b,
                               "automatic rollback (fake)", user="auto")
            except Refused as e:
                err = {"code": e.code, "message": e.message}
                if e.path:
                    err["path"] = e.path
                err.update(e.extra)
                reply = {"id": rid, "ok": False, "generation": self.generation, "error": err}
                if op in MUTATING:
                    self.audit(op, args, False, e.code, before, args.get("reason")
                               if isinstance(args, dict) else None)
        return reply


def serve_conn(state, conn, log, log_lock):
    conn.settimeout(60.0)
    buf = b""
    try:
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > MAX_LINE:
                    conn.sendall(json.dumps({"id": None, "ok": False, "generation":
                                             state.generation, "error": {
                                                 "code": "too_large",
                                                 "message": "request over 64 KiB"}}).encode()
                                 + b"\n")
                    return
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                continue
            line, buf = buf[:nl], buf[nl + 1:]
            if not line.strip():
                continue
            reply = state.request(line)
            if log:
                try:
                    entry = {"request": json.loads(line)}
                except ValueError:
                    entry = {"request": line.decode("utf-8", "replace")}
                entry["ok"] = reply["ok"]
                entry["generation"] = reply["generation"]
                if not reply["ok"]:
                    entry["code"] = reply["error"]["code"]
                with log_lock:
                    with open(log, "a") as f:
                        f.write(json.dumps(entry) + "\n")
            if state.opts.delay_ms:
                time.sleep(state.opts.delay_ms / 1000.0)
            conn.sendall(json.dumps(reply).encode() + b"\n")
    except OSError:
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--generation", type=int, default=1)
    ap.add_argument("--deny", action="store_true")
    ap.add_argument("--fail-op", action="append", default=[])
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--rollback-after-steps", type=int, default=0)
    ap.add_argument("--lag-ms", type=int, default=0)
    ap.add_argument("--log", default=None)
    ap.add_argument("--plan-tick-ms", type=int, default=0)
    ap.add_argument("--plan-fail", default=None)
    ap.add_argument("--plan-exists-code", choices=("busy", "plan_exists"), default="plan_exists")
    opts = ap.parse_args()

    state = State(opts)
    state.pending_rollback = None
    try:
        os.unlink(opts.socket)
    except FileNotFoundError:
        pass
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(opts.socket)
    ls.listen(64)
    ls.settimeout(0.2)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log_lock = threading.Lock()
    print("ready", flush=True)
    while not stop.is_set():
        try:
            conn, _ = ls.accept()
        except socket.timeout:
            continue
        except OSError:
            if stop.is_set():
                break
            continue
        threading.Thread(target=serve_conn, args=(state, conn, opts.log, log_lock),
                         daemon=True).start()
    ls.close()
    try:
        os.unlink(opts.socket)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

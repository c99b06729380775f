#!/usr/bin/env python3
"""fake_control.py - a fake cutover control socket, only for testing cutoverctl.

    python3 fake_control.py --socket PATH [--generation N] [--deny] [--fail-op OP[:CODE]]
                            [--delay-ms N] [--rollback-after-steps K] [--lag-ms N] [--log FILE]

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
            "remove-endpoint", "reload"}
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
}


class Refused(Exception):
    def __init__(self, code, message, path=None):
        super().__init__(message)
        self.code, self.message, self.path = code, message, path


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
                    "routes": [dict(self.routes[n], name=n) for n in names]}
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

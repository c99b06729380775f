"""The on-call tools of issue 15 against the real server (control socket) and the real cutoverctl:
dry runs of changes (nothing applied, refusals the real ones, recorded as reads), `diff` (the
runtime state against the configuration in use), and `history`'s filters (route, actor, since).

Helpers (the protocol client, roles through forked clients) come from test_control.py; the
cutoverctl binary is found as in test_cutoverctl.py.
"""
import datetime
import json
import os
import time

from harness import check, run_bin, start_cutover, start_upstream
from test_control import (ROUTE, Ctl, all_audit_lines, as_user, control_section, proxy_config,
                          wait_ctl, weights_bp)
from test_cutoverctl import ctl_bin

VIEWER_UID = 1001
DEPLOYER_UID = 1003


def _roles():
    return [{"uid": 0, "role": "admin"}, {"uid": VIEWER_UID, "role": "viewer"},
            {"uid": DEPLOYER_UID, "role": "deployer"}]


def _start(second_route=False):
    """cutover with route app (blue 100 / green 0, two blue endpoints) and, when asked, a route
    api (blue 50 / green 50); returns (cutover, socket path, {pool: [addresses]})."""
    from harness import free_port
    b1, b2, g1 = start_upstream("blue"), start_upstream("blue2"), start_upstream("green")
    cfg = proxy_config(free_port(), {"blue": [b1, b2], "green": [g1]},
                       {"blue": 100, "green": 0}, control_section(roles=_roles()))
    if second_route:
        api = json.loads(json.dumps(cfg["routes"][0]))
        api.update(name="api", path_prefix="/api", weights={"blue": 50, "green": 50})
        cfg["routes"].insert(0, api)
    cx = start_cutover(cfg)
    return cx, wait_ctl(cx), {"blue": [b1.addr, b2.addr], "green": [g1.addr]}


def _file_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _cli(path, *args, expect=0):
    p = run_bin([ctl_bin(), "--socket", path] + list(args), stdout=__import__("subprocess").PIPE,
                timeout=30)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == expect, "cutoverctl %s: exit %d (wanted %d)\nstdout: %s\nstderr: %s",
          " ".join(args), p.returncode, expect, out, p.stderr.decode(errors="replace"))
    return out


def test_dry_run_changes_nothing():
    """Dry runs of set-weights, rollback, drain and shift answer what would change and change
    nothing: status, generation, the state file's bytes, no change record (a read record each);
    refusals are the real ones; dry_run on a read, or not a boolean, is refused; a reload's dry
    run reads and checks the file and answers what it would change, applying nothing."""
    cx, path, eps = _start()
    ctl = cx.config["control"]
    c = Ctl(path)
    c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 80, "green": 20}, "reason": "base"})
    gen0, st0 = c.status()
    state0 = _file_bytes(ctl["state_file"])
    check(state0 is not None, "no state file after a change")
    n0 = len(all_audit_lines(ctl["audit_file"]))

    cases = [
        ("set-weights", {"route": ROUTE, "weights": {"blue": 10, "green": 90}, "reason": "d"},
         {"blue": 8000, "green": 2000}, {"blue": 1000, "green": 9000}),
        ("rollback", {"route": ROUTE, "reason": "d"},
         {"blue": 8000, "green": 2000}, {"blue": 10000, "green": 0}),
        ("drain", {"route": ROUTE, "pool": "blue", "endpoint": eps["blue"][0], "reason": "d"},
         None, None),
        ("shift", {"route": ROUTE, "to": "green", "steps": [50, 100], "hold_s": 1,
                   "reason": "d"}, None, None),
    ]
    for op, args, wb, wa in cases:
        a = dict(args, dry_run=True)
        rep = c.call(op, a)
        check(rep.get("ok") is True, "dry %s refused: %r", op, rep)
        res = rep["result"]
        check(res.get("dry_run") is True and res.get("would_change") is True,
              "dry %s: %r", op, res)
        check(rep["generation"] == gen0 and res.get("generation") == gen0 and
              res.get("would_be_generation") == gen0 + 1, "dry %s generations: %r", op, rep)
        check(res.get("role") == "admin", "dry %s role: %r", op, res)
        check(isinstance(res.get("weights_before"), dict) and
              isinstance(res.get("weights_after"), dict), "dry %s weights: %r", op, res)
        if wb is not None:
            check(weights_bp(res["weights_before"]) == wb and
                  weights_bp(res["weights_after"]) == wa, "dry %s weights: %r", op, res)
    # a dry run that would change nothing says so
    rep = c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 80, "green": 20},
                               "reason": "same", "dry_run": True})
    check(rep["result"]["would_change"] is False and
          rep["result"]["would_be_generation"] is None, "no-op dry run: %r", rep)
    # dry_run false is a real change (checked last, below)

    # nothing changed
    gen, st = c.status()
    check(gen == gen0, "generation moved: %d -> %d", gen0, gen)
    check(weights_bp(st["weights"]) == weights_bp(st0["weights"]) and
          weights_bp(st["stable"]) == weights_bp(st0["stable"]), "weights moved: %r", st)
    check(not any(e["drained"] for e in st["pools"]["blue"]["endpoints"]), "drained: %r", st)
    check(st.get("plan") is None, "a plan was started by a dry run: %r", st.get("plan"))
    check(_file_bytes(ctl["state_file"]) == state0, "the state file changed")
    new = all_audit_lines(ctl["audit_file"])[n0:]
    dry = [l for l in new if (l.get("args") or {}).get("dry_run") is True]
    check(len(dry) == len(cases) + 1, "dry-run records: %r", dry)
    check(all(l.get("kind") == "read" and l.get("result") == "ok" for l in dry),
          "dry runs recorded as: %r", dry)
    check(not [l for l in new if l.get("kind") == "change"], "a change record: %r", new)
    hist = c.ok("history", {"limit": 1000})["result"]["records"]
    check(not [h for h in hist if (h.get("args") or {}).get("dry_run")],
          "a dry run in history: %r", hist)

    # refusals are the real ones, and recorded as refusals
    n1 = len(all_audit_lines(ctl["audit_file"]))
    rep = c.call("set-weights", {"route": ROUTE, "weights": {"blue": 50, "green": 49},
                                 "reason": "d", "dry_run": True})
    check(rep.get("ok") is False and rep["error"]["code"] == "invalid_argument" and
          rep["error"].get("path") == "args.weights", "bad weights dry: %r", rep)
    rep = c.call("drain", {"route": ROUTE, "pool": "blue", "endpoint": "127.0.0.1:1",
                           "reason": "d", "dry_run": True})
    check(rep.get("ok") is False and rep["error"]["code"] == "not_found", "dry drain: %r", rep)
    for op, args, p in [("status", {"dry_run": True}, "args.dry_run"),
                        ("history", {"dry_run": False}, "args.dry_run"),
                        ("rollback", {"route": ROUTE, "reason": "d", "dry_run": "yes"},
                         "args.dry_run")]:
        rep = c.call(op, args)
        check(rep.get("ok") is False and rep["error"]["code"] == "invalid_argument" and
              rep["error"].get("path") == p, "%s %r: %r", op, args, rep)
    # a viewer's dry run of a change is denied, as the change would be
    rep = as_user(path, VIEWER_UID, VIEWER_UID, [
        {"id": "v", "op": "rollback", "args": {"route": ROUTE, "reason": "d", "dry_run": True}},
        {"id": "w", "op": "set-weights", "args": {"route": ROUTE, "weights": {"blue": 1,
                                                                             "green": 99},
                                                  "reason": "d", "dry_run": True}}])
    check(all(r.get("ok") is False and r["error"]["code"] == "denied" for r in rep),
          "viewer dry runs: %r", rep)
    # a deployer may dry-run what it may do
    rep = as_user(path, DEPLOYER_UID, DEPLOYER_UID, [
        {"id": "d", "op": "rollback", "args": {"route": ROUTE, "reason": "d", "dry_run": True}}])
    check(rep[0].get("ok") is True and rep[0]["result"]["role"] == "deployer", "deployer: %r",
          rep)
    refused = [l for l in all_audit_lines(ctl["audit_file"])[n1:]
               if l.get("result") == "refused"]
    check(len(refused) >= 7, "refusals not recorded: %r", refused)
    gen, st = c.status()
    check(gen == gen0 and _file_bytes(ctl["state_file"]) == state0,
          "a refused dry run changed something")

    # cutoverctl --dry-run, human and --json; shift --dry-run starts no plan
    out = _cli(path, "set-weights", ROUTE, "blue=30", "green=70", "--reason", "cli",
               "--dry-run")
    check("DRY RUN: would change route app" in out and "blue=80% green=20% -> blue=30% "
          "green=70%" in out and "generation %d -> %d" % (gen0, gen0 + 1) in out,
          "cutoverctl dry run: %s", out)
    doc = json.loads(_cli(path, "--json", "rollback", ROUTE, "--reason", "cli", "--dry-run"))
    check(doc["dry_run"] is True and doc["request"]["args"]["dry_run"] is True and
          doc["replicas"][0]["result"]["would_change"] is True, "--json dry run: %r", doc)
    t0 = time.monotonic()
    out = _cli(path, "shift", ROUTE, "--to", "green", "--steps", "50,100", "--interval", "30s",
               "--reason", "cli", "--dry-run")
    check(time.monotonic() - t0 < 10 and "DRY RUN shift app" in out and
          '"op":"shift"' in out and "DRY RUN: would change route app" in out,
          "shift --dry-run: %s", out)
    out = _cli(path, "set-weights", ROUTE, "blue=50", "green=49.5", "green2=0.5", "--reason",
               "cli", "--dry-run", expect=2)
    check("would be refused" in out, "refused dry run: %s", out)
    _cli(path, "status", "--dry-run", expect=2)
    gen, st = c.status()
    check(gen == gen0 and st.get("plan") is None and
          _file_bytes(ctl["state_file"]) == state0, "cutoverctl --dry-run changed something")

    # reload's dry run: the file read and checked, what it would change answered, nothing applied
    good = json.loads(json.dumps(cx.config))
    edited = json.loads(json.dumps(cx.config))
    edited["routes"][0]["weights"] = {"blue": 60, "green": 40}
    cx.rewrite(edited)
    rep = c.ok("reload", {"reason": "preview", "dry_run": True})["result"]
    check(rep["dry_run"] is True and rep["would_change"] is True and
          rep["config_weights_won"] == [ROUTE] and rep["routes_added"] == [] and
          rep["weights_after"] == {ROUTE: {"blue": 60, "green": 40}}, "reload dry run: %r", rep)
    broken = json.loads(json.dumps(edited))
    broken["routes"][0]["weights"] = {"blue": 60, "green": 60}
    broken["workers"] = 7
    cx.rewrite(broken)
    rep = c.call("reload", {"reason": "preview", "dry_run": True})
    check(rep.get("ok") is False and rep["error"]["code"] == "invalid_argument" and
          rep["error"]["details"], "a bad file's reload dry run: %r", rep)
    out = _cli(path, "reload", "--reason", "cli", "--dry-run", expect=2)
    check("would be refused" in out or "REFUSED" in out or "refused" in out,
          "cutoverctl reload --dry-run of a bad file: %s", out)
    cx.rewrite(good)
    gen, st = c.status()
    check(gen == gen0 and _file_bytes(ctl["state_file"]) == state0 and
          not [e for e in cx.events() if e.get("event") == "reload"],
          "a reload dry run applied something")

    # dry_run false: the real change
    rep = c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 70, "green": 30},
                               "reason": "real", "dry_run": False})
    check(rep["generation"] == gen0 + 1 and "dry_run" not in rep["result"], "real: %r", rep)
    c.close()


def test_diff():
    """diff shows a route changed by set-weights and a drained endpoint; after undrain and a
    rollback to the configured weights the route no longer differs."""
    cx, path, eps = _start(second_route=True)
    c = Ctl(path)
    rep = c.ok("diff")
    routes = {r["name"]: r for r in rep["result"]["routes"]}
    check(set(routes) == {"app", "api"} and not any(r["differs"] for r in routes.values()),
          "fresh diff: %r", rep)
    c.ok("set-weights", {"route": ROUTE, "weights": {"blue": 70, "green": 30}, "reason": "t"})
    c.ok("drain", {"route": ROUTE, "pool": "blue", "endpoint": eps["blue"][1], "reason": "t"})
    rep = c.ok("diff", {"route": ROUTE})
    check(len(rep["result"]["routes"]) == 1, "diff app: %r", rep)
    r = rep["result"]["routes"][0]
    check(r["name"] == ROUTE and r["differs"] is True, "diff app: %r", r)
    check(weights_bp(r["weights"]["runtime"]) == {"blue": 7000, "green": 3000} and
          weights_bp(r["weights"]["config"]) == {"blue": 10000, "green": 0}, "weights: %r", r)
    check(r["drained"] == [{"pool": "blue", "endpoint": eps["blue"][1]}] and
          r["added"] == [] and r["removed"] == [] and r["plan"] is None, "diff app: %r", r)
    api = c.ok("diff", {"route": "api"})["result"]["routes"][0]
    check(api["differs"] is False, "api untouched: %r", api)
    rep = c.call("diff", {"route": "nope"})
    check(rep["ok"] is False and rep["error"]["code"] == "not_found", "unknown route: %r", rep)
    rep = c.call("diff", {"colour": "x"})
    check(rep["ok"] is False and rep["error"]["code"] == "invalid_argument", "bad arg: %r", rep)

    out = _cli(path, "diff", ROUTE)
    check("route app: DIFFERS" in out and "blue=70% green=30% (configured blue=100% green=0%)"
          in out and "drained  blue/%s" % eps["blue"][1] in out, "cutoverctl diff: %s", out)
    doc = json.loads(_cli(path, "--json", "diff"))
    check(doc["exit_code"] == 0 and len(doc["replicas"][0]["result"]["routes"]) == 2,
          "diff --json: %r", doc)
    # a viewer may diff
    rep = as_user(path, VIEWER_UID, VIEWER_UID, [{"id": "d", "op": "diff"}])
    check(rep[0].get("ok") is True, "viewer diff: %r", rep)

    c.ok("undrain", {"route": ROUTE, "pool": "blue", "endpoint": eps["blue"][1], "reason": "t"})
    c.ok("rollback", {"route": ROUTE, "reason": "t"})
    r = c.ok("diff", {"route": ROUTE})["result"]["routes"][0]
    check(r["differs"] is False and r["drained"] == [], "after rollback: %r", r)
    out = _cli(path, "diff")
    check("route app: as configured" in out and "DIFFERS" not in out, "diff: %s", out)
    c.close()


def test_history_filters():
    """history --route / --actor / --since pick among the changes kept, the limit keeps the most
    recent that match; cutoverctl shows weights before -> after."""
    cx, path, eps = _start(second_route=True)
    c = Ctl(path)

    def sw(route, b, g, reason):
        return {"route": route, "weights": {"blue": b, "green": g}, "reason": reason}
    c.ok("set-weights", sw(ROUTE, 90, 10, "app-1"))
    c.ok("set-weights", sw("api", 60, 40, "api-1"))
    rep = as_user(path, DEPLOYER_UID, DEPLOYER_UID, [
        {"id": "a", "op": "set-weights", "args": sw(ROUTE, 80, 20, "app-2-deployer")}])
    check(rep[0].get("ok") is True, "deployer: %r", rep)
    time.sleep(1.2)
    mid = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(0.2)
    c.ok("set-weights", sw(ROUTE, 70, 30, "app-3"))
    c.ok("set-weights", sw("api", 50, 50, "api-2"))

    def reasons(args):
        return [r.get("reason") for r in c.ok("history", args)["result"]["records"]]
    everything = reasons({})  # the start's record first
    check(everything[1:] == ["app-1", "api-1", "app-2-deployer", "app-3", "api-2"],
          "all: %r", everything)
    check(reasons({"route": ROUTE}) == ["app-1", "app-2-deployer", "app-3"], "route app: %r",
          reasons({"route": ROUTE}))
    check(reasons({"route": "api", "limit": 1}) == ["api-2"], "api limit 1: %r",
          reasons({"route": "api", "limit": 1}))
    check(reasons({"route": "nope"}) == [], "route nope")
    recs = c.ok("history", {"route": ROUTE})["result"]["records"]
    deployer = [r for r in recs if r["reason"] == "app-2-deployer"][0]["actor"]["user"]
    root = [r for r in recs if r["reason"] == "app-1"][0]["actor"]["user"]
    check(deployer != root, "actors %r %r", deployer, root)
    check(reasons({"actor": deployer}) == ["app-2-deployer"], "actor: %r",
          reasons({"actor": deployer}))
    check(reasons({"actor": root, "route": ROUTE}) == ["app-1", "app-3"], "actor+route")
    since = mid.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (mid.microsecond // 1000)
    check(reasons({"since": since}) == ["app-3", "api-2"], "since %s: %r", since,
          reasons({"since": since}))
    offset = mid.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    since2 = offset.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d+02:00" % (mid.microsecond // 1000)
    check(reasons({"since": since2}) == ["app-3", "api-2"], "since %s", since2)
    check(reasons({"since": "2h"}) == everything and reasons({"since": "1d"}) == everything,
          "since 2h / 1d")
    future = (mid + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    check(reasons({"since": future}) == [], "since the future")
    for bad in ["yesterday", "2x", "", "-2h", 5, "2024-13-01T00:00:00Z", "2024-01-01T00:00:00"]:
        rep = c.call("history", {"since": bad})
        check(rep["ok"] is False and rep["error"]["code"] == "invalid_argument" and
              rep["error"]["path"] == "args.since", "since %r: %r", bad, rep)
    rep = c.call("history", {"actor": 7})
    check(rep["ok"] is False and rep["error"]["path"] == "args.actor", "actor 7: %r", rep)

    out = _cli(path, "history", "--route", ROUTE, "--since", "2h", "--actor", root)
    lines = [l for l in out.splitlines() if "set-weights" in l]
    check(len(lines) == 2 and "app: blue=90% green=10% -> blue=80% green=20%" not in out and
          "app: blue=80% green=20% -> blue=70% green=30%" in lines[1] and
          "app: blue=100% green=0% -> blue=90% green=10%" in lines[0], "cutoverctl: %s", out)
    out = _cli(path, "history", "--actor", deployer, "--limit", "1")
    check("app-2-deployer" in out and "blue=90% green=10% -> blue=80% green=20%" in out and
          "1 record(s)" in out, "cutoverctl --actor: %s", out)
    c.close()


def test_dry_run_with_a_fleet_store():
    """Through a replica with a fleet store, a dry run commits nothing to the store: the fleet's
    generation and the store's revision stay, and neither replica's weights move; the reply says
    "fleet": "not_committed"."""
    from test_fleet import Fleet, set_weights
    fl = Fleet()
    try:
        fl.start("r1")
        fl.start("r2")
        rep = set_weights(fl, "r1", 80, 20)
        check(rep.get("ok") is True, "set-weights: %r", rep)
        fl.wait_weights(["r2"], 80, 20)
        from harness import wait_until
        wait_until(lambda: fl.status("r1")["result"]["fleet"]["converged"] is True, 10,
                   what="the fleet converged")
        f0 = fl.status("r1")["result"]["fleet"]
        g0 = fl.status("r1")["generation"]
        for op, args in [("set-weights", {"route": ROUTE, "weights": {"blue": 10, "green": 90},
                                          "reason": "d", "dry_run": True}),
                         ("rollback", {"route": ROUTE, "reason": "d", "dry_run": True})]:
            rep = fl.call("r1", op, args)
            check(rep.get("ok") is True and rep["result"]["would_change"] is True and
                  rep["result"]["fleet"] == "not_committed" and rep["generation"] == g0 and
                  rep["result"]["would_be_generation"] == g0 + 1, "dry %s: %r", op, rep)
        time.sleep(0.5)  # a commit, had there been one, reaches both replicas well within this
        for n in ("r1", "r2"):
            gen, w = fl.weights_of(n)
            check(gen == g0 and w == {"blue": 8000, "green": 2000}, "%s: %r %r", n, gen, w)
        f1 = fl.status("r2")["result"]["fleet"]
        check(f1["generation"] == f0["generation"] and f1["revision"] == f0["revision"],
              "the store moved: %r -> %r", f0, f1)
    finally:
        fl.close()


test_dry_run_with_a_fleet_store.timeout = 90

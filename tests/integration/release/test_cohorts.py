"""Country cohorts (docs/operations.md "Cohort release"): shift --cohort moves only the clients
whose country (GeoIP of the trusted X-Forwarded-For, from a MaxMind test database made here) is
in the cohort; clients elsewhere, or of no known country, stay on the route's weights; sticky
cohort clients never flip back as the cohort's weight rises; status, /metrics and the state file
show the cohort, a restart keeps it, a rollback removes it, and a second shift without cohort
widens to everyone and removes it on promotion. Bad cohort arguments are refused with their JSON
path."""
import http.client
import json
import os
import subprocess
import time

from harness import HOST, RawConn, check, free_port, make_config, unique, wait_port, wait_until
from test_control import Ctl, control_section, start_cutover_args, wait_ctl
from test_cutoverctl import ctl_bin

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE_MMDB = os.path.join(HERE, "make_mmdb.pl")
ROUTE = "app"

SG, MY, US = "81.2.69.0/24", "81.2.70.0/24", "81.2.71.0/24"


def make_db(path):
    pairs = [(SG, "SG"), (MY, "MY"), (US, "US")]
    p = subprocess.run(["perl", MAKE_MMDB, path] + ["%s=%s" % kv for kv in pairs],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    check(p.returncode == 0, "make_mmdb.pl: %s", p.stderr.decode(errors="replace"))
    return path


# the test's clients: (device id, X-Forwarded-For address, country or "")
DEVICES = ([("sg-%d" % i, "81.2.69.%d" % (i + 1), "SG") for i in range(30)] +
           [("my-%d" % i, "81.2.70.%d" % (i + 1), "MY") for i in range(30)] +
           [("us-%d" % i, "81.2.71.%d" % (i + 1), "US") for i in range(30)] +
           [("xx-%d" % i, "192.0.2.%d" % (i + 1), "") for i in range(10)])


def pools_seen(port):
    """device -> the pool that answered it (one request each, on one connection)."""
    out = {}
    with RawConn(port) as c:
        for dev, addr, _ in DEVICES:
            r = c.get("/coh/%s" % dev, headers={"X-Forwarded-For": addr, "X-Device-Id": dev})
            check(r.status == 200, "%s: status %s", dev, r.status)
            out[dev] = r.upstream
    return out


def by_country(seen, cc):
    return [seen[d] for d, _, c in DEVICES if c == cc]


def route_status(path):
    with Ctl(path) as c:
        return c.ok("status", {"route": ROUTE})["result"]["routes"][0]


def wait_plan(path, pred, timeout, what):
    def f():
        p = route_status(path)["plan"]
        return p if p and pred(p) else None
    return wait_until(f, timeout, interval=0.05, what=what)


def metrics(mport):
    c = http.client.HTTPConnection(HOST, mport, timeout=10)
    try:
        c.request("GET", "/metrics")
        return c.getresponse().read().decode()
    finally:
        c.close()


def shift(path, steps, cohort=None):
    args = {"route": ROUTE, "to": "green", "steps": steps, "hold_s": 1, "reason": "cohort test"}
    if cohort is not None:
        args["cohort"] = cohort
    with Ctl(path) as c:
        return c.call("shift", args)


def test_cohort_release():
    from harness import start_upstream
    db = make_db(unique("cohort.mmdb"))
    blue, green = start_upstream("blue"), start_upstream("green")
    port, mport = free_port(), free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      sticky={"header": "x-device-id"}, trusted_proxies=["127.0.0.1/32"],
                      control=control_section(), metrics={"address": "%s:%d" % (HOST, mport)})
    cfg["access_log"] = {"enabled": True, "country_database": db}
    cx = start_cutover_args(cfg, [])
    path = wait_ctl(cx)
    wait_port(mport, 10.0, cx.popen)

    before = pools_seen(port)
    check(set(before.values()) == {"blue"}, "before the shift: %r", before)

    # bad cohort arguments: refused with the JSON path, nothing changes
    bad = [({"country": ["sg"]}, "args.cohort.country[0]"),
           ({"country": ["SG", "MY", "SG"]}, "args.cohort.country[2]"),
           ({"country": ["A%s" % chr(65 + i) for i in range(17)]}, "args.cohort.country"),
           ({"country": []}, "args.cohort.country"),
           ({"countries": ["SG"]}, "args.cohort.countries"),
           (["SG"], "args.cohort")]
    for arg, want in bad:
        rep = shift(path, [50, 100], arg)
        check(rep.get("ok") is False and rep["error"].get("path") == want and
              rep["error"].get("code") == "invalid_argument", "%r: %r (want %s)", arg, rep, want)
    check(route_status(path)["plan"] is None, "a refused shift left a plan")
    # cutoverctl: a usage error for a --cohort that is not country=...
    p = subprocess.run([ctl_bin(), "--socket", path, "shift", ROUTE, "--to", "green", "--steps",
                        "50,100", "--interval", "1s", "--cohort", "SG", "--reason", "x"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    check(p.returncode != 0 and "country=" in p.stderr, "cutoverctl --cohort SG: %s %s",
          p.returncode, p.stderr)

    # the cohort shift, paused at its first step (50 %) so the step can be measured
    rep = shift(path, [50, 100], {"country": ["SG", "MY"]})
    check(rep.get("ok") is True, "shift: %r", rep)
    with Ctl(path) as c:
        c.ok("shift-pause", {"route": ROUTE, "reason": "measure"})
    st = route_status(path)
    check(st["plan"]["step"] == 0 and st["plan"]["cohort"] == {"countries": ["SG", "MY"]},
          "plan %r", st["plan"])
    check(st["weights"] == {"blue": 100, "green": 0}, "the route's weights moved: %r", st)
    check(st["cohort"] == {"countries": ["SG", "MY"], "weights": {"blue": 50, "green": 50}},
          "cohort %r", st["cohort"])
    half = pools_seen(port)
    check(set(by_country(half, "US")) == {"blue"}, "US at 50%%: %r", by_country(half, "US"))
    check(set(by_country(half, "")) == {"blue"}, "no country at 50%%: %r", by_country(half, ""))
    cohort_half = by_country(half, "SG") + by_country(half, "MY")
    greens = cohort_half.count("green")
    check(15 <= greens <= 45, "SG/MY at 50%%: %d of 60 green", greens)
    again = pools_seen(port)
    check(again == half, "sticky: the same devices, the same pools")
    # three requests of each device so far (before the shift, at 50 %, again); once the workers'
    # buffered access lines are all out (each worker writes in its own time, so stdout is not in
    # request order), the two made under the cohort's generation (after the shift)
    def lines(dev):
        got = wait_until(lambda: (lambda ls: ls if len(ls) >= 3 else None)(
            [a for a in cx.access() if a["path"] == "/coh/%s" % dev]), 5.0, what="access lines")
        return [a for a in got if a.get("generation", 0) > 1]
    sg = lines("sg-0")
    check(len(sg) == 2 and all(a.get("country") == "SG" and a.get("cohort") is True for a in sg),
          "sg-0's access lines under the cohort: %r", sg)
    us = lines("us-0")
    check(len(us) == 2 and all(a.get("country") == "US" and "cohort" not in a for a in us),
          "us-0's access lines under the cohort: %r", us)

    with Ctl(path) as c:
        c.ok("shift-resume", {"route": ROUTE, "reason": "go on"})
    p = wait_plan(path, lambda p: p["state"] != "running", 20, "the cohort plan's promotion")
    check(p["state"] == "promoted", "plan %r", p)
    full = pools_seen(port)
    flipped = [d for d, _, cc in DEVICES if cc in ("SG", "MY") and half[d] == "green" and
               full[d] != "green"]
    check(not flipped, "devices flipped back: %r", flipped)
    check(set(by_country(full, "SG") + by_country(full, "MY")) == {"green"}, "SG/MY at 100%%")
    check(set(by_country(full, "US") + by_country(full, "")) == {"blue"}, "others stay blue")
    st = route_status(path)
    check(st["weights"] == {"blue": 100, "green": 0} and st["stable"] == {"blue": 100, "green": 0},
          "a cohort promotion keeps the route's weights: %r", st)
    check(st["cohort"] == {"countries": ["SG", "MY"], "weights": {"blue": 0, "green": 100}},
          "cohort kept at its final weights: %r", st["cohort"])

    # status in words, /metrics, the state file
    p = subprocess.run([ctl_bin(), "--socket", path, "status"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=20)
    check(p.returncode == 0 and "cohort country=SG,MY" in p.stdout, "cutoverctl status: %s",
          p.stdout + p.stderr)
    text = metrics(mport)
    for line in ('cutover_route_cohort_weight_percent{route="app",pool="green"} 100.00',
                 'cutover_route_cohort_weight_percent{route="app",pool="blue"} 0.00',
                 'cutover_route_cohort_countries{route="app"} 2'):
        check(line in text, "metrics: no %r", line)
    with open(cfg["control"]["state_file"]) as f:
        sf = json.load(f)
    check(sf["routes"][ROUTE]["cohort"] == {"countries": ["SG", "MY"],
                                            "weights": {"blue": 0, "green": 10000}},
          "state file %r", sf["routes"][ROUTE])

    # a restart keeps the cohort
    cx.kill()
    cx = start_cutover_args(cx.config, [])
    path = wait_ctl(cx)
    check(route_status(path)["cohort"] == {"countries": ["SG", "MY"],
                                           "weights": {"blue": 0, "green": 100}},
          "cohort after restart %r", route_status(path)["cohort"])
    check(pools_seen(port) == full, "routing after restart")

    # a rollback removes the cohort: everyone on the stable weights
    with Ctl(path) as c:
        c.ok("rollback", {"route": ROUTE, "reason": "back"})
    st = route_status(path)
    check(st["cohort"] is None, "cohort after rollback %r", st)
    check(set(pools_seen(port).values()) == {"blue"}, "everyone blue after the rollback")

    # again with the cohort, then widen with a shift without cohort: promotion removes it
    check(shift(path, [100], {"country": ["SG"]}).get("ok") is True, "cohort shift 2")
    wait_plan(path, lambda p: p["state"] == "promoted", 20, "cohort shift 2 promoted")
    seen = pools_seen(port)
    check(set(by_country(seen, "SG")) == {"green"} and set(by_country(seen, "MY")) == {"blue"},
          "SG only: %r", seen)
    check(shift(path, [50, 100]).get("ok") is True, "the widening shift")
    with Ctl(path) as c:
        c.ok("shift-pause", {"route": ROUTE, "reason": "measure"})
    st = route_status(path)
    check(st["cohort"]["weights"] == {"blue": 0, "green": 100} and
          st["weights"] == {"blue": 50, "green": 50}, "widening at 50%%: %r", st)
    seen = pools_seen(port)
    check(set(by_country(seen, "SG")) == {"green"}, "the cohort stays on its weights meanwhile")
    with Ctl(path) as c:
        c.ok("shift-resume", {"route": ROUTE, "reason": "go on"})
    p = wait_plan(path, lambda p: p["state"] != "running", 20, "the widening's promotion")
    check(p["state"] == "promoted" and p["cohort"] is None, "plan %r", p)
    st = route_status(path)
    check(st["cohort"] is None and st["stable"] == {"blue": 0, "green": 100},
          "widened to everyone: %r", st)
    check(set(pools_seen(port).values()) == {"green"}, "everyone green")
    with open(cfg["control"]["state_file"]) as f:
        sf = json.load(f)
    check("cohort" not in sf["routes"][ROUTE], "state file %r", sf["routes"][ROUTE])
    cx.stop()

"""Pool choice: weighted split, sticky ramp, trusted override."""
from harness import (Load, RawConn, check, count_by_upstream, free_port, make_config,
                     start_cutover, start_upstream)


def _blue_green():
    return start_upstream("blue"), start_upstream("green")


def test_split():
    """90/10 over 10 000 requests within +-2 % (counted by x-upstream)."""
    blue, green = _blue_green()
    port = free_port()
    start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                              {"blue": 90, "green": 10}))
    load = Load(port, threads=4, total=10000).run()
    check(not load.failures, "failed requests: %d, first %r (%s)", len(load.failures),
          load.failures[:3], load.summary())
    ok = load.ok
    check(len(ok) == 10000, "expected 10000 responses, got %d (%s)", len(ok), load.summary())
    bad = [r for r in ok if r.status != 200]
    check(not bad, "non-200 responses: %r", bad[:5])
    counts = count_by_upstream(ok)
    check(set(counts) <= {"blue", "green"}, "unexpected x-upstream values: %r", counts)
    green_share = counts.get("green", 0) / 10000.0
    check(0.08 <= green_share <= 0.12, "green share %.4f not within 10%% +- 2%% (%r)",
          green_share, counts)


def test_sticky_ramp():
    """Sticky on x-device-id: ramp green 0 -> 100 by SIGHUP; no device ever goes back to blue."""
    blue, green = _blue_green()
    port = free_port()
    devices = ["dev-%04d-%x" % (i, i * 2654435761 % 2**32) for i in range(300)]
    per_device = 5
    steps = [0, 10, 25, 50, 75, 100]

    def cfg(g):
        return make_config(port, {"blue": [blue], "green": [green]},
                           {"blue": 100 - g, "green": g}, sticky={"header": "x-device-id"})
    cx = start_cutover(cfg(0))
    prev = {}
    for step, g in enumerate(steps):
        if step > 0:
            cx.rewrite(cfg(g))
            cx.reload(expect="reload")
        load = Load(port, threads=4, total=len(devices) * per_device,
                    make_request=lambda seq, th: ("GET", "/", {"x-device-id":
                                                               devices[seq % len(devices)]}))
        load.run()
        check(not load.failures, "green=%d: failed requests %r", g, load.failures[:3])
        ok = load.ok
        check(len(ok) == len(devices) * per_device, "green=%d: %s", g, load.summary())
        seen = {}
        for r in ok:
            check(r.status == 200, "green=%d: status %s", g, r.status)
            seen.setdefault(devices[r.seq % len(devices)], set()).add(r.upstream)
        for d, ups in seen.items():
            check(len(ups) == 1, "green=%d: device %s served by %r within one step", g, d, ups)
            check(ups <= {"blue", "green"}, "unexpected upstream %r", ups)
        now = {d: next(iter(u)) for d, u in seen.items()}
        back = [d for d in now if prev.get(d) == "green" and now[d] == "blue"]
        check(not back, "green=%d: %d devices went green -> blue, e.g. %r", g, len(back), back[:5])
        n_green = sum(1 for v in now.values() if v == "green")
        if g == 0:
            check(n_green == 0, "green=0 but %d devices on green", n_green)
        elif g == 100:
            check(n_green == len(devices), "green=100 but only %d/%d devices on green", n_green,
                  len(devices))
        elif g == 50:
            check(0.25 * len(devices) <= n_green <= 0.75 * len(devices),
                  "green=50: %d/%d devices on green (bucket hashing looks skewed)", n_green,
                  len(devices))
        prev = now


def test_override():
    """x-cutover-pool: green is honoured from a trusted peer (green at weight 0), ignored from
    an untrusted one, and never forwarded upstream."""
    blue, green = _blue_green()
    port = free_port()
    hdr = "x-cutover-pool"
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                                   {"blue": 100, "green": 0},
                                   override={"header": hdr, "trusted_peers": ["127.0.0.1"]}))
    with RawConn(port) as c:
        for i in range(20):
            r = c.get("/headers", {hdr: "green"})
            check(r.status == 200 and r.upstream == "green",
                  "trusted override: request %d went to %s (status %s)", i, r.upstream, r.status)
            check(hdr not in r.json()["headers"], "override header forwarded upstream: %r",
                  r.json()["headers"])
        for i in range(20):
            r = c.get("/headers")
            check(r.status == 200 and r.upstream == "blue",
                  "no override: request %d went to %s", i, r.upstream)
    cx.stop()

    port2 = free_port()
    cx2 = start_cutover(make_config(port2, {"blue": [blue], "green": [green]},
                                    {"blue": 100, "green": 0},
                                    override={"header": hdr, "trusted_peers": ["10.9.9.9/32"]}))
    with RawConn(port2) as c:
        for i in range(20):
            r = c.get("/headers?untrusted=%d" % i, {hdr: "green"})
            check(r.status == 200 and r.upstream == "blue",
                  "untrusted peer: override honoured, request %d went to %s", i, r.upstream)
            check(hdr not in r.json()["headers"], "override header forwarded upstream: %r",
                  r.json()["headers"])
    cx2.stop()
    logged = blue.requests() + green.requests()
    check(len(logged) == 60, "upstreams logged %d requests, expected 60", len(logged))
    leaked = [x for x in logged if hdr in x["headers"]]
    check(not leaked, "override header reached an upstream: %r", leaked[:2])
    check(all(x["name"] == "blue" for x in logged if "untrusted" in x["path"]),
          "an untrusted override reached green")


def test_split_holds_while_other_routes_change():
    """A route's 90/10 split holds while another route's weights change as fast as the
    control socket takes changes (hundreds a second, about one per request): every publication of a snapshot keeps the round-robin state of the routes it did not
    change (it used to restart it, so the small pool was hardly ever picked)."""
    import json
    import threading
    from test_control import Ctl, control_section, wait_ctl
    blue, green = _blue_green()
    port = free_port()
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 90, "green": 10},
                      hosts=["app.test"], control=control_section())
    other = json.loads(json.dumps(cfg["routes"][0]))
    other.update(name="other", hosts=["other.test"], weights={"blue": 100, "green": 0})
    cfg["routes"].append(other)
    cx = start_cutover(cfg)
    path = wait_ctl(cx)
    stop = threading.Event()
    churned = []

    def churn():
        with Ctl(path, timeout=10) as c:
            i = 0
            while not stop.is_set() and i < 20000:
                rep = c.call("set-weights", {"route": "other", "reason": "churn",
                                             "weights": {"blue": 100 - i % 2, "green": i % 2}})
                churned.append(rep.get("ok"))
                i += 1
    th = threading.Thread(target=churn, daemon=True)
    th.start()
    try:
        counts = {}
        import time
        with RawConn(port) as c:
            for i in range(1000):  # paced: about one request per publication
                r = c.get("/", host="app.test")
                check(r.status == 200, "status %s", r.status)
                counts[r.upstream] = counts.get(r.upstream, 0) + 1
                time.sleep(0.003)
    finally:
        stop.set()
        th.join(10)
    check(len(churned) >= 20 and all(churned), "the other route barely changed: %d", len(churned))
    share = counts.get("green", 0) / 1000.0
    check(0.08 <= share <= 0.12, "green share %.3f under churn (%d changes): %r", share,
          len(churned), counts)

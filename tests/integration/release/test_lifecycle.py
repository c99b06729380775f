"""Process lifecycle: reload under load, refused reload, graceful SIGTERM, --check."""
import json
import os
import signal
import threading
import time

from harness import (Load, RawConn, check, count_by_upstream, free_port, make_config,
                     run_check, start_cutover, start_upstream, write_config)


def _cfg(port, blue, green, b, g, **kw):
    return make_config(port, {"blue": [blue], "green": [green]}, {"blue": b, "green": g}, **kw)


def test_reload_under_load():
    """4 clients for ~4 s; mid-way 50/50 -> 0/100 by SIGHUP: no failure, then only green."""
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(_cfg(port, blue, green, 50, 50))
    load = Load(port, threads=4, duration=4.0).start()
    time.sleep(2.0)
    cx.rewrite(_cfg(port, blue, green, 0, 100))
    t_sig = time.time()
    cx.reload(expect="reload")
    t_ev = time.time()  # the event was seen: every request started from now on goes green
    load.join()
    check(not load.failures, "failed requests: %d, e.g. %r (%s)", len(load.failures),
          load.failures[:3], load.summary())
    check(not load.refused and not load.of_kind("unaccepted"), "refused/unaccepted: %s",
          load.summary())
    ok = load.ok
    bad = [r for r in ok if r.status != 200]
    check(not bad, "non-200 responses: %r", bad[:5])
    before = count_by_upstream([r for r in ok if r.t1 < t_sig])
    check(before.get("blue", 0) > 50 and before.get("green", 0) > 50,
          "before the reload expected both pools, got %r", before)
    after = [r for r in ok if r.t0 > t_ev]
    check(len(after) >= 50, "only %d requests after the reload event", len(after))
    wrong = [r for r in after if r.upstream != "green"]
    check(not wrong, "%d of %d requests after the reload event not on green, e.g. %r",
          len(wrong), len(after), wrong[:3])
    check(cx.alive(), "cutover died")


def _shares(port, n=200):
    with RawConn(port) as c:
        ups = []
        for i in range(n):
            r = c.get("/")
            check(r.status == 200, "status %s", r.status)
            ups.append(r.upstream)
    return count_by_upstream(ups)


def test_bad_reload_refused():
    """A config with an unknown key is refused on SIGHUP; the old weights keep serving;
    --check names the JSON path."""
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(_cfg(port, blue, green, 70, 30))
    s = _shares(port)
    check(40 <= s.get("green", 0) <= 80, "70/30 before the bad reload: %r", s)
    bad = _cfg(port, blue, green, 0, 100)
    bad["routes"][0]["colour"] = "purple"
    cx.rewrite(bad)
    ev = cx.reload(expect="reload_refused")
    check(ev.get("event") == "reload_refused", "event %r", ev)
    check(cx.alive(), "cutover died on a bad reload")
    s = _shares(port)
    check(40 <= s.get("green", 0) <= 80 and s.get("blue", 0) >= 100,
          "after the refused reload the weights changed: %r", s)
    code, out, err = run_check(cx.config_path)
    check(code == 1, "--check on the bad file exited %s (stderr %r)", code, err)
    check("routes[0]" in err and "unknown key" in err.lower() and "colour" in err,
          "--check stderr does not name routes[0] / unknown key 'colour': %r", err)
    # a good config afterwards is taken
    cx.rewrite(_cfg(port, blue, green, 0, 100))
    cx.reload(expect="reload")
    s = _shares(port, 50)
    check(s == {"green": 50}, "after a good reload: %r", s)


def test_sigterm_under_load():
    """SIGTERM with clients running (shutdown_delay_ms 300, drain_ms 5000): no failed request on
    an accepted connection, an in-flight /slow/1000 completes with 200, exit code 0."""
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(_cfg(port, blue, green, 100, 0,
                            timeouts={"shutdown_delay_ms": 300, "drain_ms": 5000}))
    load = Load(port, threads=4, duration=3.0).start()
    time.sleep(1.0)
    slow = {}

    def slow_request():
        try:
            with RawConn(port, timeout=10) as c:
                r = c.get("/slow/1000")
                slow["status"], slow["upstream"], slow["t"] = r.status, r.upstream, time.time()
                slow["connection"] = r.header("connection")
        except Exception as e:
            slow["error"] = repr(e)
    th = threading.Thread(target=slow_request, daemon=True)
    th.start()
    # wait until the slow request reached the upstream (it is in flight), then SIGTERM
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
            x["path"] == "/slow/1000" for x in blue.requests()):
        time.sleep(0.01)
    check(any(x["path"] == "/slow/1000" for x in blue.requests()),
          "the slow request never reached the upstream")
    load.mark_shutdown()
    t_term = time.time()
    os.kill(cx.pid, signal.SIGTERM)
    code = cx.wait_exit(15)
    t_exit = time.time()
    th.join(10)
    load.join()
    check(code == 0, "exit code %s; stderr %r", code, cx.stderr_text()[-1000:])
    check(t_exit - t_term < 5.0 + 1.5, "exit took %.2f s", t_exit - t_term)
    check(slow.get("status") == 200 and slow.get("upstream") == "blue",
          "in-flight /slow/1000: %r", slow)
    check(not load.failures, "%d failed requests, e.g. %r (%s)", len(load.failures),
          load.failures[:3], load.summary())
    unacc = load.of_kind("unaccepted")
    check(len(unacc) <= load.nthreads, "%d new connections closed without a response: %r",
          len(unacc), unacc[:3])
    ok = load.ok
    check(len(ok) > 100, "only %d successful requests (%s)", len(ok), load.summary())
    check(all(r.status == 200 for r in ok), "non-200: %r", [r for r in ok if r.status != 200][:3])
    during = [r for r in ok if r.t0 > t_term]
    check(during, "no request was served after SIGTERM (shutdown_delay_ms 300 keeps serving)")
    evs = [e.get("event") for e in cx.events()]
    check("stopping" in evs, "no 'stopping' event: %r", evs)


def test_check():
    """cutover --check: valid -> exit 0; invalid -> exit 1, `FILE: PATH: MESSAGE` on stderr."""
    port = free_port()
    good = make_config(port, {"blue": ["127.0.0.1:9001", "blue.svc.cluster.local:80"],
                              "green": ["127.0.0.1:9002"]}, {"blue": 90.5, "green": 9.5},
                       sticky={"header": "x-device-id"},
                       override={"header": "x-cutover-pool", "trusted_peers": ["10.1.0.0/16"]})
    p = write_config(good)
    code, out, err = run_check(p)
    check(code == 0, "--check on a valid config exited %s: %r", code, err)

    cases = []
    c1 = json.loads(json.dumps(good))
    c1["routes"][0]["weights"] = {"blue": 50, "green": 50, "purple": 0}
    cases.append((c1, ["routes[0].weights.purple"]))
    c2 = json.loads(json.dumps(good))
    c2["timeouts"] = {"client_idle_ms": 0}
    cases.append((c2, ["timeouts.client_idle_ms"]))
    c3 = json.loads(json.dumps(good))
    c3["listeners"][0]["address"] = "localhost:80"
    c3["routes"][0]["pools"]["green"]["endpoints"] = ["127.0.0.1:0"]
    cases.append((c3, ["listeners[0].address", "routes[0].pools.green.endpoints[0]"]))
    for doc, paths in cases:
        p = write_config(doc)
        code, out, err = run_check(p)
        check(code == 1, "--check on an invalid config (%s) exited %s", paths, code)
        for jp in paths:
            check("%s: %s: " % (p, jp) in err, "stderr lacks '%s: %s: ...': %r", p, jp, err)

    p = write_config('{"listeners": [ {"address": "127.0.0.1:1"} ,, ]}')
    code, out, err = run_check(p)
    check(code == 1, "--check on a JSON syntax error exited %s", code)
    check(p in err and "line 1" in err, "syntax error without file/line: %r", err)

    code, out, err = run_check(os.path.join(os.path.dirname(p), "does-not-exist.json"))
    check(code == 1, "--check on a missing file exited %s", code)


def test_listener_accept_queue_is_4096():
    """Each listener keeps the accept queue cutover asked for (4096, or the kernel's somaxconn
    when that is lower), as `ss` reports it (Send-Q of a listening socket). libevent, given -1,
    listened again with 128: a burst of new connections (a pod restart behind the gateway)
    overflowed it and clients waited for SYN retries."""
    import subprocess
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(_cfg(port, blue, green, 100, 0), workers=2)
    with open("/proc/sys/net/core/somaxconn") as f:
        want = min(4096, int(f.read()))
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                         timeout=10).stdout
    rows = [l.split() for l in out.splitlines() if l.strip()]
    check(rows, "ss shows no listener on port %d: %r", port, out)
    for r in rows:
        check(r[0] == "LISTEN" and int(r[2]) == want,
              "listener backlog %s, want %d (ss: %r)", r[2], want, out)
    check(cx.alive(), "cutover died")

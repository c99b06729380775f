"""Log fields DataDog and Log Analytics read without a custom pipeline (operations.md, "Logs"):
every stdout line (access, event, audit) is one JSON object under 64 KB with `timestamp` (the
same time as `time`), `service` "cutover" and a `level` that follows the documented rules."""
import os
import re

from harness import (RawConn, check, free_port, make_config, start_cutover, start_upstream,
                     unique, wait_until)

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_every_line_has_service_level_timestamp():
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    base = unique("logf")
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      control={"socket": base + ".sock", "state_file": base + "-state.json",
                               "audit_file": base + "-audit.jsonl"})
    cx = start_cutover(cfg)
    with RawConn(port) as c:
        check(c.get("/ok").status == 200, "GET /ok")
        check(c.get("/status/404").status == 404, "GET /status/404")
        check(c.get("/status/503").status == 503, "GET /status/503")
        # a 100 KB URL: refused by the parser, or logged truncated; either way a short line
        r = c.get("/" + "a" * 100000)
        check(r.status in (414, 431, 400), "long URL status %s", r.status)
    wait_until(lambda: len(cx.access()) >= 3, 10, what="3 access lines")
    cx.stop()
    with open(cx.stdout, "rb") as f:
        raw = f.read().split(b"\n")
    check(raw[-1] == b"", "stdout does not end with a newline")
    kinds = set()
    for ln in raw[:-1]:
        check(len(ln) + 1 < 64 * 1024, "a line of %d bytes", len(ln))
    lines = cx.log.poll()
    for d in lines:
        check(d.get("type") != "_raw", "not a JSON object: %r", d)
        kinds.add(d["type"])
        check(d.get("service") == "cutover", "service missing: %r", d)
        check(d.get("timestamp") == d.get("time") and RFC3339_MS.match(d["timestamp"]),
              "timestamp %r vs time %r", d.get("timestamp"), d.get("time"))
        check(d.get("level") in ("info", "warn", "error"), "level %r in %r", d.get("level"), d)
    check({"access", "event", "audit"} <= kinds, "line types seen: %s", kinds)
    by_status = {}
    for a in cx.access():
        by_status.setdefault(a["status"], a["level"])
    check(by_status.get(200) == "info" and by_status.get(404) == "warn"
          and by_status.get(503) == "error", "access levels by status: %r", by_status)
    levels = {e["event"]: e["level"] for e in cx.events()}
    check(levels.get("started") == "info" and levels.get("stopped") == "info",
          "event levels: %r", levels)
    for a in [d for d in lines if d["type"] == "audit"]:
        check(a["level"] == ("info" if a.get("result") != "refused" else "warn"),
              "audit level %r", a)


def test_event_levels_warn_and_error():
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(make_config(port, {"blue": [blue], "green": [green]},
                                   {"blue": 100, "green": 0}))
    bad = dict(cx.config)
    bad["routes"] = [dict(bad["routes"][0], weights={"blue": 100})]  # refused: weights
    cx.rewrite(bad)
    ev = cx.reload(expect="reload_refused")
    check(ev.get("level") == "warn" and ev.get("service") == "cutover",
          "reload_refused line: %r", ev)
    good = dict(cx.config)
    good["routes"] = [dict(good["routes"][0], weights={"blue": 90, "green": 10})]
    cx.rewrite(good)
    ev = cx.reload(expect="reload")
    check(ev.get("level") == "info", "reload line: %r", ev)
    cx.stop()
    check(os.path.getsize(cx.stdout) > 0, "no output")

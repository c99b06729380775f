"""deploy/alerts: the rule file passes `promtool check rules`, its unit tests (synthetic series,
cutover-rules.test.yaml) pass `promtool test rules`, and every cutover metric the rules use is
one a real cutover exports: a replica with a fleet store (etcd on loopback) is scraped after a
SIGHUP reload that is refused and one that succeeds, so the reload series exist and count."""
import http.client
import os
import re
import shutil
import subprocess

from harness import HOST, check, free_port, wait_port, wait_until
from test_fleet import Fleet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
ALERTS = os.path.join(ROOT, "deploy", "alerts")
RULES = os.path.join(ALERTS, "cutover-rules.yaml")
RULE_TESTS = os.path.join(ALERTS, "cutover-rules.test.yaml")


def promtool():
    p = shutil.which("promtool")
    check(p is not None, "promtool is not installed (make test's deps install Debian's "
          "prometheus package)")
    return p


def run_promtool(*args):
    p = subprocess.run([promtool()] + list(args), cwd=ALERTS, capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_alert_rules_promtool():
    rc, out = run_promtool("check", "rules", RULES)
    check(rc == 0 and "SUCCESS" in out, "promtool check rules: rc %s\n%s", rc, out)
    rc, out = run_promtool("test", "rules", RULE_TESTS)
    check(rc == 0 and "SUCCESS" in out, "promtool test rules: rc %s\n%s", rc, out)
    # every alert of the rule file has a unit test
    alerts = set(re.findall(r"^\s*- alert: (\w+)", open(RULES).read(), re.M))
    tested = set(re.findall(r"alertname: (\w+)", open(RULE_TESTS).read()))
    check(len(alerts) >= 8 and alerts <= tested, "alerts without a test: %s",
          sorted(alerts - tested))


def rule_metrics():
    """{metric name: {label: set of values}} used by the rules' expressions (cutover_*; recording
    rules' names contain ':' and are not exported metrics)."""
    text = open(RULES).read()
    exprs = re.findall(r"expr: \|\n((?:\s{10,}.*\n)+)|expr: (.+)\n", text)
    used = {}
    for block, line in exprs:
        e = block or line
        for m in re.finditer(r"\b(cutover_[a-z0-9_]+)(\{([^}]*)\})?", e):
            labels = used.setdefault(m.group(1), {})
            for k, v in re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""):
                labels.setdefault(k, set()).add(v)
    return used


def scrape(port):
    c = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


class MetricsFleet(Fleet):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.mports = {}

    def config(self, name, port, control=None):
        cfg = super().config(name, port, control)
        self.mports[name] = free_port()
        cfg["metrics"] = {"address": "%s:%d" % (HOST, self.mports[name])}
        return cfg


def test_alert_rules_use_exported_metrics():
    used = rule_metrics()
    check(len(used) >= 10, "too few metrics found in the rules: %s", sorted(used))
    fl = MetricsFleet()
    try:
        cx = fl.start("r1")
        fl.start("r2")
        mport = fl.mports["r1"]
        wait_port(mport, 10.0, cx.popen)
        good = dict(cx.config)
        # a refused reload (a route without pools) and a good one, by SIGHUP
        bad = dict(good, routes=[{"name": "app", "path_prefix": "/", "pools": {}}])
        cx.rewrite(bad)
        cx.reload(expect="reload_refused")
        cx.rewrite(good)
        cx.reload(expect="reload")
        wait_until(lambda: 'state="registered"} 2' in scrape(mport)[1], 10,
                   what="two registered replicas in r1's metrics")
        st, text = scrape(mport)
        check(st == 200, "metrics status %s", st)
        families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
        samples = {}
        for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", text, re.M):
            samples.setdefault(m.group(1), []).append(
                (dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")), m.group(3)))
        for name, labels in sorted(used.items()):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            check(name in families or (base != name and base in families),
                  "the rules use %s, which cutover does not export", name)
            for k, vals in labels.items():
                if k == "le":
                    continue
                seen = {lab.get(k) for lab, _ in samples.get(name, [])}
                check(vals <= seen, "the rules use %s{%s=%s}; cutover exports %s only", name, k,
                      sorted(vals), sorted(v for v in seen if v is not None))
        # the reload counter counts SIGHUP reloads: one refused, one ok
        ops = {(lab["op"], lab["result"]): float(v)
               for lab, v in samples["cutover_control_operations_total"]}
        check(ops.get(("reload", "refused")) == 1 and ops.get(("reload", "ok")) == 1,
              "reload counts %r", {k: v for k, v in ops.items() if k[0] == "reload"})
        check(any(float(v) == 1 for lab, v in samples["cutover_store_reachable"]),
              "store not reachable: %r", samples["cutover_store_reachable"])
    finally:
        fl.close()


test_alert_rules_use_exported_metrics.timeout = 90

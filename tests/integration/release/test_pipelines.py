"""deploy/pipelines: both pipeline files parse, call the same step scripts for the same stages,
and those scripts' cutoverctl commands run for real against a local fleet (etcd and three
replicas on loopback, reached through one address): a healthy canary and promote exit 0, a
failing green makes the canary step exit 6, the on-call rollback returns to the stable weights."""
import os
import re
import subprocess
import threading

import yaml

from harness import RawConn, check, unique
from test_cohorts import make_db
from test_cutoverctl import ctl_bin
from test_fleet import ROUTE
from test_fleet_plans import Flaky, PlanFleet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
AZ = os.path.join(ROOT, "deploy", "pipelines", "azure-pipelines.yml")
GH = os.path.join(ROOT, ".github", "workflows", "release.yml")
STEP = re.compile(r"deploy/pipelines/steps/(\w+)\.sh")


def az_steps():
    doc = yaml.safe_load(open(AZ))
    out = {}
    for st in doc["stages"]:
        for job in st["jobs"]:
            steps = job.get("steps") or job["strategy"]["runOnce"]["deploy"]["steps"]
            out[st["stage"]] = [m for s in steps for m in STEP.findall(s.get("script", ""))]
    return doc, out


def gh_steps():
    doc = yaml.safe_load(open(GH))
    return doc, {name: [m for s in job["steps"] for m in STEP.findall(s.get("run", ""))]
                 for name, job in doc["jobs"].items()}


def test_pipeline_files_share_the_steps():
    az, a = az_steps()
    gh, g = gh_steps()
    check(a["Canary"] == ["preflight", "canary"] and g["canary"] == ["certs", "preflight", "canary"],
          "canary steps %r %r", a["Canary"], g["canary"])
    check(a["Promote"] == ["promote"] and g["promote"] == ["certs", "promote"], "promote %r %r",
          a["Promote"], g["promote"])
    check(a["Rollback"] == ["rollback"] and g["rollback"] == ["certs", "rollback"], "rollback")
    # approvals: promote runs in the production environment after the canary
    prom = [j for s in az["stages"] if s["stage"] == "Promote" for j in s["jobs"]][0]
    check(prom["environment"] == "cutover-production", "az promote env %r", prom)
    check(gh["jobs"]["promote"]["environment"] == "cutover-production" and
          gh["jobs"]["promote"]["needs"] == "canary", "gh promote %r", gh["jobs"]["promote"])
    # the same settings for the steps in both
    keys = ("ROUTE", "NEW_POOL", "CANARY_COUNTRIES", "STEPS", "STEP_INTERVAL", "MAX_5XX_PERCENT",
            "MAX_P99_MS", "MIN_REQUESTS", "CUTOVER_ENDPOINT")
    for k in keys:
        check(str(az["variables"][k]) == str(gh["env"][k]), "%s differs: %r %r", k,
              az["variables"][k], gh["env"][k])
    for f in ("trivy image", "kubectl"):
        check(f in open(AZ).read() and f in open(GH).read(), "%s missing", f)


def run_step(name, fl, replica, **env):
    e = dict(os.environ, CUTOVER_ENDPOINT="unix:" + fl.sock(replica), ROUTE=ROUTE,
             NEW_POOL="green", CANARY_COUNTRIES="SG", CUTOVERCTL=ctl_bin(), RELEASE="it-1",
             STEPS="50,100", STEP_INTERVAL="1s", MIN_REQUESTS="0")
    e.update(env)
    p = subprocess.run(["bash", os.path.join(ROOT, "deploy", "pipelines", "steps", name + ".sh")],
                       env=e, capture_output=True, text=True, timeout=90)
    print("%s: rc %s\n%s%s" % (name, p.returncode, p.stdout, p.stderr))
    return p.returncode, p.stdout + p.stderr


class CohortFleet(PlanFleet):
    def __init__(self, db, **kw):
        super().__init__(weights={"blue": 100, "green": 0}, sticky={"header": "x-device-id"},
                         lease_ttl_s=3, **kw)
        self.db = db

    def config(self, name, port, control=None):
        cfg = super().config(name, port, control)
        cfg["trusted_proxies"] = ["127.0.0.1/32"]
        cfg["access_log"] = {"enabled": True, "country_database": self.db}
        cfg["routes"][0].pop("hosts", None)
        return cfg


def sg_load(fl, stop):
    """Singapore clients on every replica until stop is set."""
    i = 0
    while not stop.is_set():
        for cx in list(fl.replicas.values()):
            try:
                with RawConn(cx.port) as c:
                    for _ in range(10):
                        i += 1
                        c.get("/p/%d" % i, headers={"X-Forwarded-For": "81.2.69.%d" % (i % 200 + 1),
                                                    "X-Device-Id": "d%d" % i})
            except (OSError, AssertionError):
                pass


def test_pipeline_steps_against_a_fleet():
    db = make_db(unique("pipe.mmdb"))
    fl = CohortFleet(db)
    try:
        for n in ("r1", "r2", "r3"):
            fl.start(n)
        rc, out = run_step("preflight", fl, "r1")
        check(rc == 0, "preflight: %s %s", rc, out)
        rc, out = run_step("canary", fl, "r2")
        check(rc == 0 and "promoted" in out, "canary: %s %s", rc, out)
        check((fl.status("r3")["result"]["routes"][0].get("cohort") or {}).get("countries")
              == ["SG"], "no SG cohort on r3")
        # the manual approval happens here; then the promote step
        rc, out = run_step("promote", fl, "r1")
        check(rc == 0, "promote: %s %s", rc, out)
        fl.wait_weights(["r1", "r2", "r3"], 0, 100)
    finally:
        fl.close()


test_pipeline_steps_against_a_fleet.timeout = 150


def test_pipeline_failing_green_rolls_back_and_oncall_rollback():
    db = make_db(unique("pipe.mmdb"))
    fl = CohortFleet(db)
    fl.default_green = Flaky("green", fail_every=1)  # every answer a 500
    stop = threading.Event()
    try:
        for n in ("r1", "r2", "r3"):
            fl.start(n)
        t = threading.Thread(target=sg_load, args=(fl, stop), daemon=True)
        t.start()
        rc, out = run_step("canary", fl, "r1", STEP_INTERVAL="3s", MIN_REQUESTS="5",
                           MAX_5XX_PERCENT="5")
        check(rc == 6 and "ROLLED BACK" in out, "canary with a failing green: %s %s", rc, out)
        fl.wait_weights(["r1", "r2", "r3"], 100, 0)
        # on-call rollback: works during a plan (ends it) and at the stable weights
        rc, out = run_step("rollback", fl, "r3")
        check(rc == 0, "rollback: %s %s", rc, out)
        fl.wait_weights(["r1", "r2", "r3"], 100, 0)
    finally:
        stop.set()
        fl.close()


test_pipeline_failing_green_rolls_back_and_oncall_rollback.timeout = 150

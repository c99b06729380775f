"""control/etcd.c, the etcd v3 HTTP/JSON gateway client, against a real etcd 3.4 (TLS with client
certificates, authentication) started by etcd_cluster.EtcdCluster, through tests/tools/etcd_probe
(built as $BUILD/etcd_probe by `make test` / `make integration`; ETCD_PROBE_BIN overrides). The
probe runs a script of steps and prints one JSON line per result; it runs like cutoverctl
(harness.run_bin), so a crash or a sanitizer report fails the test.
"""
import os
import socket
import subprocess
import time

import etcd_cluster
from harness import HOST, REPO, check, free_port, run_bin

PREFIX = "/cutover/test/"


def probe_bin():
    b = os.environ.get("ETCD_PROBE_BIN") or os.path.join(REPO, os.environ.get("BUILD") or "build",
                                                         "etcd_probe")
    check(os.access(b, os.X_OK), "no etcd_probe at %s (make %s/etcd_probe)", b,
          os.environ.get("BUILD") or "build")
    return b


def probe(endpoints, steps, cluster=None, password_file=None, dial_ms=2000, request_ms=5000,
          timeout=60):
    """Runs etcd_probe; returns [parsed JSON lines]. cluster gives TLS and auth options."""
    import json
    argv = [probe_bin(), "--endpoints", ",".join(endpoints), "--dial-ms", str(dial_ms),
            "--request-ms", str(request_ms)]
    if cluster is not None:
        argv += ["--ca", cluster.ca, "--cert", cluster.client_cert, "--key", cluster.client_key,
                 "--user", cluster.user,
                 "--password-file", password_file or cluster.password_file]
    p = run_bin(argv + list(steps), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                text=True, timeout=timeout)
    check(p.returncode == 0, "etcd_probe exit %d: %s", p.returncode, p.stderr[-2000:])
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return lines


def results(lines, op=None):
    return [l for l in lines if l["op"] != "event" and (op is None or l["op"] == op)]


def ok(line):
    check(line["status"] == 0, "%s failed: %r", line["op"], line)
    return line


def test_etcd_client_kv_cas_lease():
    """put/get, a txn compare-and-swap (two writers with the same mod revision: exactly one
    wins), a lease and its keepalive (a stream the gateway keeps open: the client ends it at the
    first reply), a cancelled call whose callback never runs, a key outside the user's role
    refused as CUT_EPROTO with etcd's error object."""
    c = etcd_cluster.EtcdCluster(members=1)
    try:
        k = PREFIX + "k"
        out = probe(c.endpoints, ["put %s v1" % k, "get %s" % k, "txn-cas %s 1 nope" % k,
                                  "get %s" % k], cluster=c)
        r = results(out)
        put, get, bad_cas, get2 = [ok(x) for x in r]
        check(get["value"] == "v1" and get["mod_revision"] == put["revision"], "get: %r", get)
        check(not bad_cas["succeeded"], "a CAS on a wrong revision succeeded: %r", bad_cas)
        rev = get["mod_revision"]
        out = probe(c.endpoints, ["cas-race %s %d A B" % (k, rev), "get %s" % k,
                                  "lease-grant 30", "keepalive", "cancel-call",
                                  "get /elsewhere/x"], cluster=c)
        r = results(out)
        race = [ok(x) for x in r if x["op"] == "cas-race"]
        check(len(race) == 2, "two CAS replies: %r", r)
        winners = [x for x in race if x["succeeded"]]
        check(len(winners) == 1, "exactly one CAS must win: %r", race)
        final = ok(results(out, "get")[0])
        check(final["value"] in ("A", "B") and final["mod_revision"] > rev, "after CAS: %r", final)
        check(c.get(k) == final["value"], "etcdctl sees %r, the client %r", c.get(k), final)
        lease = ok(results(out, "lease-grant")[0])
        check(lease["id"] not in ("", "0"), "lease: %r", lease)
        ka = ok(results(out, "keepalive")[0])
        check(0 < ka["ttl"] <= 30, "keepalive: %r", ka)
        check(ka["ms"] - lease["ms"] < 2000, "keepalive took until a timeout: %r", ka)
        ok(results(out, "cancel-call")[0])
        denied = results(out, "get")[1]
        check(denied["status"] == -2 and denied["error"]["code"] == 7,
              "a key outside the role: %r", denied)
    finally:
        c.close()


def test_etcd_client_watch_in_order():
    """A prefix watch from a past revision delivers every event after it, in order (values and
    mod revisions), including a DELETE."""
    c = etcd_cluster.EtcdCluster(members=1)
    try:
        steps = ["put %sw%d v%d" % (PREFIX, i, i) for i in range(5)] + ["del %sw1" % PREFIX]
        out = probe(c.endpoints, steps, cluster=c)
        revs = [ok(x)["revision"] for x in results(out)]
        check(revs == sorted(revs) and len(set(revs)) == 6, "revisions: %r", revs)
        out = probe(c.endpoints, ["watch %s %d 5" % (PREFIX, revs[1])], cluster=c, timeout=30)
        ev = [l for l in out if l["op"] == "event"]
        ok(results(out, "watch")[0])
        check([e["mod_revision"] for e in ev] == revs[1:], "event revisions %r, want %r",
              [e["mod_revision"] for e in ev], revs[1:])
        check([e["key"] for e in ev] == [PREFIX + "w%d" % i for i in (1, 2, 3, 4, 1)],
              "keys: %r", ev)
        check([e.get("value") for e in ev[:4]] == ["v1", "v2", "v3", "v4"], "values: %r", ev)
        check(ev[4]["type"] == "DELETE", "the last event: %r", ev[4])
        # A live event: the watch from now sees a put made while it runs.
        p = subprocess.Popen([probe_bin(), "--endpoints", ",".join(c.endpoints), "--ca", c.ca,
                              "--cert", c.client_cert, "--key", c.client_key, "--user", c.user,
                              "--password-file", c.password_file, "watch %s 0 1" % PREFIX],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.0)
            c.put(PREFIX + "live", "now")
            so, se = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        check(p.returncode == 0 and '"value":"now"' in so, "live watch: %r %r", so, se[-1500:])
    finally:
        c.close()


def test_etcd_client_failover():
    """Three members; the first endpoint's member killed: every call still succeeds through the
    others, and the client then starts at the member that answered."""
    c = etcd_cluster.EtcdCluster(members=3)
    try:
        out = probe(c.endpoints, ["put %sf 1" % PREFIX], cluster=c)
        ok(out[0])
        c.kill(0)
        steps = []
        for i in range(5):
            steps += ["put %sf x%d" % (PREFIX, i), "get %sf" % PREFIX]
        steps += ["endpoint"]
        t0 = time.monotonic()
        out = probe(c.endpoints, steps, cluster=c, dial_ms=1000, request_ms=3000)
        took = time.monotonic() - t0
        r = results(out)
        for x in r:
            ok(x)
        gets = results(out, "get")
        check(gets[-1]["value"] == "x4", "last get: %r", gets[-1])
        check(out[-1]["endpoint"] != c.endpoints[0], "still starting at the dead member: %r",
              out[-1])
        check(took < 20, "fail-over took %.1f s", took)
    finally:
        c.close()


def test_etcd_client_wrong_password_refused():
    """A wrong password: every call fails cleanly with CUT_EPROTO and etcd's error (code 3),
    quickly, without retrying forever."""
    c = etcd_cluster.EtcdCluster(members=1)
    try:
        bad = os.path.join(c.dir, "bad-password")
        with open(bad, "w") as f:
            f.write("not-the-password")
        out = probe(c.endpoints, ["get %sa" % PREFIX, "put %sa 1" % PREFIX], cluster=c,
                    password_file=bad)
        r = results(out)
        check(len(r) == 2, "two results: %r", r)
        for x in r:
            check(x["status"] == -2 and x.get("error", {}).get("code") == 3 and
                  "authentication failed" in x["error"].get("error", ""), "refusal: %r", x)
        check(r[-1]["ms"] < 3000, "took %d ms", r[-1]["ms"])
    finally:
        c.close()


def test_etcd_client_token_expiry_reauth():
    """A token etcd no longer knows (--auth-token-ttl 2, unused for 4 s): the call
    re-authenticates once and succeeds."""
    c = etcd_cluster.EtcdCluster(members=1, auth_token_ttl=2)
    try:
        out = probe(c.endpoints, ["put %st 1" % PREFIX, "sleep 4500", "get %st" % PREFIX,
                                  "put %st 2" % PREFIX], cluster=c)
        r = results(out)
        for x in r:
            ok(x)
        check(results(out, "get")[0]["value"] == "1", "get after expiry: %r", r)
    finally:
        c.close()


def test_etcd_client_unreachable_bounded():
    """No etcd: connection refused on every member gives CUT_EIO at once; members that accept
    TCP but never answer TLS give CUT_EIO after about dial timeout x members, not later."""
    ports = [free_port() for _ in range(3)]
    out = probe(["https://%s:%d" % (HOST, p) for p in ports], ["get a"], dial_ms=500)
    r = results(out)[0]
    check(r["status"] == -6, "refused: %r", r)
    check(r["ms"] < 1000, "refused took %d ms", r["ms"])
    socks = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.bind((HOST, 0))
            s.listen(8)  # never accepted: the TLS handshake gets no answer
            socks.append(s)
        eps = ["https://%s:%d" % (HOST, s.getsockname()[1]) for s in socks]
        out = probe(eps, ["get a", "get b"], dial_ms=500, request_ms=5000)
        r = results(out)
        for x in r:
            check(x["status"] == -6, "silent members: %r", x)
        first = r[0]["ms"]
        check(1400 <= first <= 1500 + 1000, "first call took %d ms, want about 3 x 500", first)
        check(r[1]["ms"] - first <= 2500, "second call took %d ms", r[1]["ms"] - first)
    finally:
        for s in socks:
            s.close()

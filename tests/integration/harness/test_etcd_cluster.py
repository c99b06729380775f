"""The etcd test cluster (etcd_cluster.EtcdCluster): a TLS + auth member answers cutover's
gateway flow (authenticate, put and range under the prefix; a key outside it and a client
without a certificate refused), and a 3-member cluster survives the loss of its leader."""
import base64
import http.client
import json
import socket
import ssl
import time

import etcd_cluster
from harness import HOST, check, wait_until


def _b64(s):
    return base64.b64encode(s.encode()).decode()


def _ctx(c, cert=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(c.ca)
    if cert == "root":  # a certificate with a CommonName (CN=root)
        ctx.load_cert_chain(c.root_cert, c.root_key)
    elif cert:
        ctx.load_cert_chain(c.client_cert, c.client_key)
    return ctx


def _post(c, ep, path, body, token=None, cert=True):
    """POST JSON to the gateway of endpoint ep: (status, parsed JSON or raw text)."""
    port = int(ep.rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection(HOST, port, context=_ctx(c, cert), timeout=10)
    try:
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = token
        conn.request("POST", path, body=json.dumps(body), headers=h)
        r = conn.getresponse()
        data = r.read().decode()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data
    finally:
        conn.close()


def test_etcd_gateway_tls_auth():
    c = etcd_cluster.EtcdCluster(members=1)
    try:
        ep = c.endpoints[0]
        check(ep.startswith("https://127.0.0.1:"), "endpoint %r", ep)
        sc = c.store_config(request_timeout_ms=500)
        check(sc["user"] == "cutover" and open(sc["password_file"]).read() == "cutover-pass"
              and sc["tls"]["client_certificate"]["cert"] == c.client_cert
              and sc["request_timeout_ms"] == 500, "store_config %r", sc)

        st, bad = _post(c, ep, "/v3/auth/authenticate", {"name": "cutover", "password": "x"})
        check(st == 400 and "authentication failed" in bad.get("error", ""),
              "a wrong password: %s %r", st, bad)
        st, auth = _post(c, ep, "/v3/auth/authenticate",
                         {"name": "cutover", "password": "cutover-pass"})
        check(st == 200 and auth.get("token"), "authenticate: %s %r", st, auth)
        tok = auth["token"]

        key = "/cutover/test/fleet/a"
        st, put = _post(c, ep, "/v3/kv/put", {"key": _b64(key), "value": _b64("v1")}, tok)
        check(st == 200 and int(put["header"]["revision"]) > 1, "put: %s %r", st, put)
        st, rng = _post(c, ep, "/v3/kv/range", {"key": _b64(key)}, tok)
        check(st == 200 and rng.get("count") == "1"
              and base64.b64decode(rng["kvs"][0]["value"]) == b"v1", "range: %s %r", st, rng)
        check(c.get(key) == "v1", "etcdctl (root) reads %r", c.get(key))

        for path, body in (("/v3/kv/put", {"key": _b64("/other/x"), "value": _b64("v")}),
                           ("/v3/kv/range", {"key": _b64("/cutover/tes")})):
            st, den = _post(c, ep, path, body, tok)
            check(st == 403 and den.get("code") == 7 and "permission denied" in den["error"],
                  "%s outside the prefix: %s %r", path, st, den)
        check(c.get("/other/x") is None, "the refused put wrote /other/x")

        st, inv = _post(c, ep, "/v3/kv/range", {"key": _b64(key)}, "not-a-token.1")
        check(st == 401 and inv.get("code") == 16, "an invalid token: %s %r", st, inv)

        # etcd 3.4 refuses gateway requests made with a certificate that has a CommonName
        st, cn = _post(c, ep, "/v3/kv/range", {"key": _b64(key)}, tok, cert="root")
        check(st == 400 and isinstance(cn, str) and "CommonName" in cn,
              "a client certificate with a CN: %s %r", st, cn)

        refused = None
        try:
            _post(c, ep, "/v3/kv/range", {"key": _b64(key)}, tok, cert=False)
        except (ssl.SSLError, ConnectionError, socket.error) as e:
            refused = e
        check(refused is not None, "a client without a certificate was served")
        check(c.revision() >= int(put["header"]["revision"]), "revision %d", c.revision())
    finally:
        c.close()
    check(not any(m.alive() for m in c.procs), "etcd still running after close()")


def test_etcd_three_members_leader_loss():
    c = etcd_cluster.EtcdCluster(members=3)
    try:
        check(len(c.endpoints) == 3 and len({m.pid for m in c.procs}) == 3, "3 members")
        c.put("/cutover/test/k", "before")
        ld = c.wait_leader(10)
        c.kill(ld)
        others = [e for i, e in enumerate(c.endpoints) if i != ld]
        t0 = time.monotonic()

        def put_ok():
            return c.etcdctl("put", "/cutover/test/k", "after", endpoints=others,
                             timeout=5, check=False).strip() == "OK"
        wait_until(put_ok, 5.0, interval=0.05, what="a put through the remaining members")
        took = time.monotonic() - t0
        check(took < 5.0, "the put took %.2f s", took)
        nl = c.wait_leader(5)
        check(nl != ld, "the dead member %d is still leader", ld)
        c.start(ld)
        wait_until(lambda: c.get("/cutover/test/k", endpoints=[c.endpoints[ld]]) == "after",
                   10.0, interval=0.1, what="the restarted member to catch up")
        c.wait_healthy(30)
    finally:
        c.close()
    check(not any(m.alive() for m in c.procs), "etcd still running after close()")

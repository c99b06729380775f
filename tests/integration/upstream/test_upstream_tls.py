"""TLS towards upstreams: the upstream's certificate verified against the corporate CA and the
expected name (server_name, or an IP SAN for an IP endpoint), SNI sent, a client certificate
presented (mTLS in both directions), session resumption, and the refusals: wrong name, another
CA, no client certificate where the upstream requires one. Certificates are made at test time."""
import os
import subprocess

from harness import (check, free_port, make_config, raw_exchange, require_bin, start_cutover,
                     start_upstream, unique, wait_until, write_config, run_bin)
from test_tls import Pki, csi_write


def tls_upstream(pki, name, require_client_cert=True):
    args = ["--tls-cert", pki.p("server.chain.crt"), "--tls-key", pki.p("server.key")]
    if require_client_cert:
        args += ["--tls-client-ca", pki.p("ca.crt")]
    return start_upstream(name, args=args)


def config_with_tls_green(port, blue, green, tls, extra_limits=None):
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 0, "green": 100})
    cfg["routes"][0]["pools"]["green"]["tls"] = tls
    if extra_limits:
        cfg.setdefault("limits", {}).update(extra_limits)
    return cfg


def get(port, path="/"):
    return raw_exchange(port, ("GET %s HTTP/1.1\r\nHost: app.test\r\n\r\n" % path).encode())


def test_upstream_mtls_sni_resumption():
    pki = Pki()
    blue = start_upstream("blue")
    green = tls_upstream(pki, "green")
    port = free_port()
    # idle pool 0: every request opens a new upstream connection, so the second one resumes
    cx = start_cutover(config_with_tls_green(port, blue, green, {
        "ca": pki.p("ca.crt"), "server_name": "app.test",
        "client_certificate": {"cert": pki.p("client.crt"), "key": pki.p("client.key")}},
        {"upstream_idle_per_endpoint": 0}))
    for i in range(3):
        r = get(port, "/n%d" % i)
        check(r.status == 200 and r.body == b"green\n", "request %d: %s %r", i, r.status, r.body)
    reqs = green.requests()
    check(len(reqs) == 3, "green saw %d requests", len(reqs))
    t = [q["tls"] for q in reqs]
    check(all(x["sni"] == "app.test" for x in t), "SNI %r", t)
    check(all(x["client_cert"] == "commonName=client one" for x in t), "client cert %r", t)
    check(all(x["version"] in ("TLSv1.2", "TLSv1.3") for x in t), "versions %r", t)
    check(not t[0]["resumed"] and any(x["resumed"] for x in t[1:]),
          "no resumption on later connections: %r", t)
    check(len({q["conn"] for q in reqs}) == 3, "connections were reused: %r", reqs)
    check(not blue.requests(), "blue got traffic")
    check(not cx.events("upstream_tls_failed"), "unexpected failure events")


def test_upstream_ip_san_without_server_name():
    pki = Pki()
    blue = start_upstream("blue")
    green = tls_upstream(pki, "green", require_client_cert=False)
    port = free_port()
    start_cutover(config_with_tls_green(port, blue, green, {"ca": pki.p("ca.crt")}))
    r = get(port)
    check(r.status == 200 and r.body == b"green\n", "status %s body %r", r.status, r.body)
    reqs = green.requests()
    check(len(reqs) == 1 and reqs[0]["tls"]["sni"] is None,
          "an IP endpoint must not send SNI: %r", reqs)
    check(reqs[0]["tls"]["client_cert"] is None, "a client certificate was sent: %r", reqs)


def test_upstream_tls_refusals():
    pki = Pki()
    blue = start_upstream("blue")
    green = tls_upstream(pki, "green")
    cases = [
        ("wrong name", {"ca": pki.p("ca.crt"), "server_name": "wrong.test",
                        "client_certificate": {"cert": pki.p("client.crt"),
                                               "key": pki.p("client.key")}},
         "upstream_tls", "mismatch"),
        ("another CA", {"ca": pki.p("other-ca.crt"), "server_name": "app.test",
                        "client_certificate": {"cert": pki.p("client.crt"),
                                               "key": pki.p("client.key")}},
         "upstream_tls", "unable to get local issuer"),
    ]
    for label, tls, code, reason in cases:
        port = free_port()
        cfg = config_with_tls_green(port, blue, green, tls)
        # one try: the refusal itself is what is checked here (with retries the request goes
        # to blue: test_h2_upstream.test_h2_upstream_requires_alpn_h2, test_failover.py)
        cfg["retries"] = {"max_tries": 1}
        cx = start_cutover(cfg)
        r = get(port)
        check(r.status == 502 and r.header("x-cutover-error") == code,
              "%s: status %s error %r", label, r.status, r.header("x-cutover-error"))
        ev = cx.wait_event("upstream_tls_failed")
        check(reason in ev["reason"], "%s: reason %r", label, ev["reason"])
        check(ev["upstream"].startswith(green.addr), "%s: upstream %r", label, ev["upstream"])
        acc = wait_until(lambda: cx.access(), 5.0, what="access log line")
        check(acc[-1]["status"] == 502, "%s: access %r", label, acc[-1])
        cx.stop()
    check(not green.requests(), "a refused upstream received a request: %r", green.requests())

    # the upstream requires a client certificate and none is configured: no request reaches it
    port = free_port()
    cfg = config_with_tls_green(port, blue, green, {"ca": pki.p("ca.crt"),
                                                   "server_name": "app.test"})
    cfg["retries"] = {"max_tries": 1}
    start_cutover(cfg)
    r = get(port)
    check(r.status in (502, 503), "no client certificate: status %s", r.status)
    check(not green.requests(), "served without a client certificate: %r", green.requests())


def test_upstream_tls_config_refused_with_path():
    pki = Pki()
    blue = start_upstream("blue")
    green = tls_upstream(pki, "green")
    port = free_port()
    cfg = config_with_tls_green(port, blue, green, {"ca": pki.p("missing-ca.crt")})
    cx = start_cutover(cfg, wait=False)
    rc = cx.wait_exit(10.0)
    err = cx.stderr_text()
    check(rc != 0 and "routes[0].pools.green.tls" in err and "missing-ca.crt" in err,
          "rc %s stderr %s", rc, err[-800:])
    # --check loads the files too, and says the same
    p = run_bin([require_bin(), "--check", "-c", write_config(cfg)], capture_output=True,
                text=True, timeout=20)
    check(p.returncode == 1 and "routes[0].pools.green.tls" in p.stderr and
          "missing-ca.crt" in p.stderr, "--check: rc %s %s", p.returncode, p.stderr[-800:])
    cfg["routes"][0]["pools"]["green"]["tls"]["ca"] = pki.p("ca.crt")
    p = run_bin([require_bin(), "--check", "-c", write_config(cfg)], capture_output=True,
                text=True, timeout=20)
    check(p.returncode == 0, "--check of a good config: rc %s %s", p.returncode, p.stderr)
    # a client key that does not match its certificate
    cfg = config_with_tls_green(port, blue, green, {
        "ca": pki.p("ca.crt"),
        "client_certificate": {"cert": pki.p("client.crt"), "key": pki.p("stranger.key")}})
    cx = start_cutover(cfg, wait=False)
    rc = cx.wait_exit(10.0)
    err = cx.stderr_text()
    check(rc != 0 and "client_certificate" in err and "does not match" in err,
          "rc %s stderr %s", rc, err[-800:])


def test_upstream_client_certificate_rotation():
    """The client certificate cutover presents to a service lives in a CSI-style mount; a
    "..data" swap makes new upstream connections present the new one, without a restart and
    without failing a request; a swap to a key that does not match is refused and the old
    certificate keeps being presented."""
    pki = Pki()
    pki.leaf("client2", "client two", None, issuer="ca", client=True)
    mount = unique("client-certs")
    os.makedirs(mount)
    rd = lambda n: open(pki.p(n)).read()  # noqa: E731
    csi_write(mount, {"tls.crt": rd("client.crt"), "tls.key": rd("client.key")},
              "2026_11_24_10_00_00.000000001")
    blue = start_upstream("blue")
    green = tls_upstream(pki, "green")
    port = free_port()
    cx = start_cutover(config_with_tls_green(port, blue, green, {
        "ca": pki.p("ca.crt"), "server_name": "app.test",
        "client_certificate": {"cert": os.path.join(mount, "tls.crt"),
                               "key": os.path.join(mount, "tls.key")}},
        {"upstream_idle_per_endpoint": 0}))
    check(get(port).status == 200, "before rotation")
    csi_write(mount, {"tls.crt": rd("client2.crt"), "tls.key": rd("client2.key")},
              "2026_11_24_11_00_00.000000001")
    cx.wait_event("tls_reloaded")
    check(get(port).status == 200, "after rotation")
    # a bad swap (the key of another certificate) is refused; the second cert stays in use
    csi_write(mount, {"tls.crt": rd("client.crt"), "tls.key": rd("client2.key")},
              "2026_11_24_12_00_00.000000001")
    ev = cx.wait_event("tls_reload_refused")
    check(any("routes[0].pools.green.tls" in e["path"] for e in ev["errors"]),
          "refusal path %r", ev["errors"])
    check(get(port).status == 200, "after the refused swap")
    subjects = [q["tls"]["client_cert"] for q in green.requests()]
    check(subjects == ["commonName=client one", "commonName=client two",
                       "commonName=client two"], "client certificates presented: %r", subjects)

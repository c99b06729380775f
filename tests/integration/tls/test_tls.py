"""TLS on the client side: versions, full chain, ALPN, SNI and the default certificate, client
certificates (CA, other CA, CRL), X-Forwarded-Proto, and certificate rotation through a CSI-style
"..data" symlink swap under load. Certificates are made at test time with the openssl command."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time

from harness import (HOST, check, free_port, make_config, start_cutover, start_upstream,
                     unique, wait_until)


def sh(*args, cwd=None, stdin=None):
    p = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, input=stdin,
                       timeout=60)
    if p.returncode != 0:
        raise AssertionError("%s failed: %s" % (" ".join(args), p.stderr[-1500:]))
    return p.stdout


CA_EXT = "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n"
CA_CNF = """[ca]
default_ca = d
[d]
database = {d}/index.txt
new_certs_dir = {d}
certificate = {d}/ca.crt
private_key = {d}/ca.key
default_md = sha256
default_crl_days = 30
policy = p
[p]
commonName = supplied
"""


class Pki:
    """A root CA, an intermediate, server leaves, client certificates and a CRL in a temp dir."""

    def __init__(self):
        self.d = unique("pki")
        os.makedirs(self.d)
        self.serial = 100
        self.ca("ca", "Test Root CA")
        self.ca("int", "Test Intermediate CA", issuer="ca")
        self.ca("other-ca", "Other CA")
        self.leaf("server", "app.test", ["DNS:app.test", "DNS:localhost", "IP:127.0.0.1"])
        self.leaf("second", "second.test", ["DNS:second.test", "DNS:*.second.test"])
        self.leaf("client", "client one", None, issuer="ca", client=True)
        self.leaf("stranger", "stranger", None, issuer="other-ca", client=True)
        self.leaf("revoked", "revoked client", None, issuer="ca", client=True)
        # CRL from the root revoking "revoked"
        open(self.p("index.txt"), "w").close()
        with open(self.p("ca.cnf"), "w") as f:
            f.write(CA_CNF.format(d=self.d))
        sh("openssl", "ca", "-config", self.p("ca.cnf"), "-revoke", self.p("revoked.crt"))
        sh("openssl", "ca", "-config", self.p("ca.cnf"), "-gencrl", "-out", self.p("ca.crl"))

    def p(self, name):
        return os.path.join(self.d, name)

    def next_serial(self):
        self.serial += 1
        return "0x%x" % self.serial

    def ca(self, name, cn, issuer=None):
        sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", self.p(name + ".key"), "-out", self.p(name + ".csr"),
           "-subj", "/CN=" + cn)
        ext = self.p(name + ".ext")
        with open(ext, "w") as f:
            f.write(CA_EXT)
        signer = ["-signkey", self.p(name + ".key")] if issuer is None else \
            ["-CA", self.p(issuer + ".crt"), "-CAkey", self.p(issuer + ".key")]
        sh("openssl", "x509", "-req", "-in", self.p(name + ".csr"), "-days", "30",
           "-set_serial", self.next_serial(), "-extfile", ext, "-out", self.p(name + ".crt"),
           *signer)

    def leaf(self, name, cn, sans, issuer="int", client=False):
        sh("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes",
           "-keyout", self.p(name + ".key"), "-out", self.p(name + ".csr"), "-subj", "/CN=" + cn)
        ext = self.p(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:false\n")
            f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
            if sans:
                f.write("subjectAltName=%s\n" % ",".join(sans))
        sh("openssl", "x509", "-req", "-in", self.p(name + ".csr"), "-days", "30",
           "-set_serial", self.next_serial(), "-extfile", ext, "-out", self.p(name + ".crt"),
           "-CA", self.p(issuer + ".crt"), "-CAkey", self.p(issuer + ".key"))
        if not client:  # the CSI "secret" layout: key, leaf, intermediate in one file
            with open(self.p(name + ".pem"), "w") as f:
                for part in (name + ".key", name + ".crt", "int.crt"):
                    f.write(open(self.p(part)).read())
            with open(self.p(name + ".chain.crt"), "w") as f:
                for part in (name + ".crt", "int.crt"):
                    f.write(open(self.p(part)).read())

    def serial_of(self, name):
        out = sh("openssl", "x509", "-in", self.p(name + ".crt"), "-noout", "-serial")
        return out.strip().split("=", 1)[1].upper().lstrip("0")


def tls_config(port, blue, green, tls):
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0})
    cfg["listeners"][0]["tls"] = tls
    return cfg


def client_ctx(pki, alpn=None, cert=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(pki.p("ca.crt"))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if cert:
        ctx.load_cert_chain(pki.p(cert + ".crt"), pki.p(cert + ".key"))
    return ctx


def tls_get(port, ctx, sni="app.test", path="/headers", timeout=10.0):
    """One request over a new TLS connection: (status, body, ssl socket info dict)."""
    raw = socket.create_connection((HOST, port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname=sni)
    try:
        info = {"alpn": s.selected_alpn_protocol(), "version": s.version(),
                "cert": s.getpeercert(binary_form=True)}
        s.sendall(("GET %s HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n" % path)
                  .encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body, info


def cert_serial(der):
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, timeout=10).stdout.decode()
    return out.strip().split("=", 1)[1].upper().lstrip("0")


def s_client(port, *args, stdin=""):
    p = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (HOST, port), *args],
                       input=stdin, capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


def test_tls_versions_chain_alpn_sni():
    pki = Pki()
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(tls_config(port, blue, green, {
        "certificates": [{"pem": pki.p("server.pem")},
                         {"cert": pki.p("second.chain.crt"), "key": pki.p("second.key")}]}))
    ev = cx.wait_event("tls_loaded")
    check(ev["listeners"][0]["certificates"][0]["subject"] == "CN=app.test", "tls_loaded %r", ev)

    # TLS 1.0 and 1.1 refused (the client is allowed to offer them: SECLEVEL=0)
    for flag in ("-tls1", "-tls1_1"):
        rc, out = s_client(port, flag, "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "app.test")
        check(rc != 0 and "Cipher is (NONE)" in out and "no peer certificate available" in out,
              "%s accepted: %s", flag, out[-800:])
    # TLS 1.2 (ECDHE-RSA-AES-GCM, what Application Gateway v2 offers) and 1.3 succeed
    rc, out = s_client(port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256",
                       "-servername", "app.test", "-CAfile", pki.p("ca.crt"), "-showcerts")
    check(rc == 0 and "Verify return code: 0 (ok)" in out, "TLS 1.2: %s", out[-1500:])
    # the full chain: leaf + intermediate
    check(out.count("-----BEGIN CERTIFICATE-----") >= 2, "chain not served: %s", out[:2000])
    for version in ("-tls1_2", "-tls1_3"):
        p = subprocess.run(["curl", "-sS", version, "--cacert", pki.p("ca.crt"),
                            "--resolve", "app.test:%d:127.0.0.1" % port,
                            "https://app.test:%d/headers" % port],
                           capture_output=True, text=True, timeout=20)
        check(p.returncode == 0, "curl %s: %s", version, p.stderr)
        h = json.loads(p.stdout)["headers"]
        check(h.get("x-forwarded-proto") == "https", "X-Forwarded-Proto %r", h)

    # ALPN http/1.1; a client offering only h2 falls back to HTTP/1.1 without ALPN
    st, body, info = tls_get(port, client_ctx(pki, alpn=["h2", "http/1.1"]))
    check(st == 200 and info["alpn"] == "http/1.1", "alpn %r status %s", info["alpn"], st)
    check(info["version"] in ("TLSv1.2", "TLSv1.3"), "version %r", info["version"])

    # SNI picks the second certificate (exact and wildcard); no SNI and unknown names: default
    for sni, want in (("second.test", "second"), ("api.second.test", "second"),
                      ("app.test", "server"), ("unknown.test", "server"), (None, "server")):
        ctx = client_ctx(pki, verify=False)
        st, _, info = tls_get(port, ctx, sni=sni)
        check(st == 200, "sni %r status %s", sni, st)
        check(cert_serial(info["cert"]) == pki.serial_of(want), "sni %r got serial %s, want %s",
              sni, cert_serial(info["cert"]), want)

    # the access log marks TLS requests (client_cert empty without client auth)
    a = wait_until(lambda: [x for x in cx.access() if "client_cert" in x], 5.0, what="access")
    check(a[-1]["client_cert"] == "", "client_cert %r", a[-1])
    cx.stop()


test_tls_versions_chain_alpn_sni.timeout = 180


def test_tls_client_auth_and_crl():
    pki = Pki()
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(tls_config(port, blue, green, {
        "certificates": [{"pem": pki.p("server.pem")}], "client_auth": "required",
        "client_ca": pki.p("ca.crt"), "crl": pki.p("ca.crl"), "min_version": "1.2"}))
    cx.wait_event("tls_loaded")

    def refused(cert):
        try:
            st, _, _ = tls_get(port, client_ctx(pki, cert=cert))
        except (ssl.SSLError, ConnectionError, OSError):
            return True
        return False  # (TLS 1.3: a refused certificate may surface on the first read)

    check(refused(None), "no client certificate was accepted")
    check(refused("stranger"), "a certificate from another CA was accepted")
    check(refused("revoked"), "a revoked certificate was accepted")
    st, body, _ = tls_get(port, client_ctx(pki, cert="client"))
    check(st == 200, "corporate client: status %s", st)
    a = wait_until(lambda: [x for x in cx.access() if x.get("client_cert")], 5.0,
                   what="access line with client_cert")
    check(a[-1]["client_cert"] == "CN=client one", "client_cert %r", a[-1]["client_cert"])
    cx.stop()


test_tls_client_auth_and_crl.timeout = 180


def test_override_trusted_subjects():
    """override.trusted_subjects: the override header is honoured only for a caller from a
    trusted peer that also presents a listed client certificate."""
    pki = Pki()
    pki.leaf("tester", "smoke tester", None, issuer="ca", client=True)
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cfg = tls_config(port, blue, green, {
        "certificates": [{"pem": pki.p("server.pem")}], "client_auth": "optional",
        "client_ca": pki.p("ca.crt")})
    cfg["routes"][0]["override"] = {"header": "x-cutover-pool", "trusted_peers": ["127.0.0.1/32"],
                                    "trusted_subjects": ["CN=smoke tester"]}
    cx = start_cutover(cfg)
    cx.wait_event("tls_loaded")

    def pool_for(cert):
        raw = socket.create_connection((HOST, port), timeout=10)
        s = client_ctx(pki, cert=cert).wrap_socket(raw, server_hostname="app.test")
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\nx-cutover-pool: green\r\n"
                      b"Connection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        return data.rpartition(b"\r\n\r\n")[2].strip().decode()

    check(pool_for("tester") == "green", "a listed certificate picks green")
    check(pool_for("client") == "blue", "another certificate is ignored (weights: blue)")
    check(pool_for(None) == "blue", "no certificate is ignored")
    cx.stop()


def csi_write(mount, files, stamp):
    """The Secrets Store CSI driver's AtomicWriter: a new timestamped dir, ..data_tmp, rename."""
    ts = os.path.join(mount, "..%s" % stamp)
    os.makedirs(ts)
    for name, content in files.items():
        with open(os.path.join(ts, name), "w") as f:
            f.write(content)
    tmp = os.path.join(mount, "..data_tmp")
    os.symlink(os.path.basename(ts), tmp)
    old = os.path.realpath(os.path.join(mount, "..data")) if os.path.islink(
        os.path.join(mount, "..data")) else None
    os.rename(tmp, os.path.join(mount, "..data"))
    for name in files:
        link = os.path.join(mount, name)
        if not os.path.islink(link):
            os.symlink(os.path.join("..data", name), link)
    if old and os.path.isdir(old):
        for fn in os.listdir(old):
            os.unlink(os.path.join(old, fn))
        os.rmdir(old)


def test_tls_rotation_under_load():
    pki = Pki()
    pki.leaf("server2", "app.test", ["DNS:app.test", "IP:127.0.0.1"])
    mount = unique("certs")
    os.makedirs(mount)
    rd = lambda n: open(pki.p(n)).read()  # noqa: E731
    csi_write(mount, {"tls.crt": rd("server.chain.crt"), "tls.key": rd("server.key")},
              "2026_11_23_10_00_00.000000001")
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(tls_config(port, blue, green, {
        "certificates": [{"cert": os.path.join(mount, "tls.crt"),
                          "key": os.path.join(mount, "tls.key")}]}))
    cx.wait_event("tls_loaded")
    ctx = client_ctx(pki)
    _, _, info = tls_get(port, ctx)
    check(cert_serial(info["cert"]) == pki.serial_of("server"), "initial certificate")

    # load: 4 threads of new TLS connections (a handshake per request) during the swap
    stop = threading.Event()
    results = {"ok": 0, "fail": []}
    lock = threading.Lock()

    def load():
        c = client_ctx(pki)
        while not stop.is_set():
            try:
                st, _, _ = tls_get(port, c)
                with lock:
                    if st == 200:
                        results["ok"] += 1
                    else:
                        results["fail"].append(st)
            except Exception as e:  # noqa: BLE001
                with lock:
                    results["fail"].append(repr(e))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    n = len(cx.events())
    csi_write(mount, {"tls.crt": rd("server2.chain.crt"), "tls.key": rd("server2.key")},
              "2026_11_23_10_02_00.000000002")
    ev = cx.wait_event(("tls_reloaded", "tls_reload_refused"), after=n, timeout=10.0)
    check(ev["event"] == "tls_reloaded", "rotation: %r", ev)
    check(ev["listeners"][0]["certificates"][0]["serial"].lstrip("0") == pki.serial_of("server2"),
          "tls_reloaded names serial %r", ev)
    check(ev["listeners"][0]["certificates"][0]["not_after"], "not_after missing: %r", ev)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(20)
    check(not results["fail"], "%d failed requests during rotation: %r", len(results["fail"]),
          results["fail"][:5])
    check(results["ok"] > 20, "too little load: %d", results["ok"])
    _, _, info = tls_get(port, ctx)
    check(cert_serial(info["cert"]) == pki.serial_of("server2"), "new handshakes: old cert")

    # bad material: a key that does not match -> refused, the previous certificate still served
    n = len(cx.events())
    csi_write(mount, {"tls.crt": rd("server.chain.crt"), "tls.key": rd("second.key")},
              "2026_11_23_10_04_00.000000003")
    ev = cx.wait_event(("tls_reloaded", "tls_reload_refused"), after=n, timeout=10.0)
    check(ev["event"] == "tls_reload_refused", "bad key accepted: %r", ev)
    check("does not match" in ev["errors"][0]["reason"], "reason %r", ev)
    st, _, info = tls_get(port, ctx)
    check(st == 200 and cert_serial(info["cert"]) == pki.serial_of("server2"),
          "after a refused rotation the old certificate must keep serving")
    cx.stop()


test_tls_rotation_under_load.timeout = 180


def test_tls_bad_key_does_not_block_a_new_crl():
    """Each piece of TLS material is applied on its own: while a rotation left the listener's
    key pair broken (the previous pair keeps serving), a new CRL still takes effect at once, and
    the next good pair is taken."""
    pki = Pki()
    pki.leaf("client2", "client two", None, issuer="ca", client=True)
    pki.leaf("server2", "app.test", ["DNS:app.test", "IP:127.0.0.1"])
    mount = unique("certs")
    os.makedirs(mount)
    rd = lambda n: open(pki.p(n)).read()  # noqa: E731
    csi_write(mount, {"tls.crt": rd("server.chain.crt"), "tls.key": rd("server.key")},
              "2026_12_04_10_00_00.000000001")
    crl = os.path.join(unique("crl"), "ca.crl")
    os.makedirs(os.path.dirname(crl))
    shutil.copy(pki.p("ca.crl"), crl)
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(tls_config(port, blue, green, {
        "certificates": [{"cert": os.path.join(mount, "tls.crt"),
                          "key": os.path.join(mount, "tls.key")}],
        "client_auth": "required", "client_ca": pki.p("ca.crt"), "crl": crl}))
    cx.wait_event("tls_loaded")

    def accepted(cert):
        try:
            st, _, info = tls_get(port, client_ctx(pki, cert=cert))
            return st == 200 and info
        except (ssl.SSLError, ConnectionError, OSError):
            return False

    info = accepted("client")
    check(info and cert_serial(info["cert"]) == pki.serial_of("server"), "before: %r", info)

    # 1. a broken pair: refused piece by piece, the previous pair serves
    n = len(cx.events())
    csi_write(mount, {"tls.crt": rd("server.chain.crt"), "tls.key": rd("second.key")},
              "2026_12_04_10_01_00.000000002")
    ev = cx.wait_event(("tls_reloaded", "tls_reload_refused"), after=n)
    check(ev["event"] == "tls_reload_refused" and ev["errors"][0]["path"] == "listeners[0].tls"
          and "does not match" in ev["errors"][0]["reason"]
          and "stays in use" in ev["errors"][0]["reason"], "the broken pair: %r", ev)

    # 2. a new CRL revoking "client" while the pair is still broken: it takes effect
    sh("openssl", "ca", "-config", pki.p("ca.cnf"), "-revoke", pki.p("client.crt"))
    sh("openssl", "ca", "-config", pki.p("ca.cnf"), "-gencrl", "-out", crl + ".new")
    n = len(cx.events())
    os.rename(crl + ".new", crl)
    ev = cx.wait_event("tls_reloaded", after=n)
    refused = [e for e in cx.events()[n:] if e.get("event") == "tls_reload_refused"]
    check(refused and "does not match" in refused[0]["errors"][0]["reason"],
          "the pair is still named as kept: %r", refused)
    wait_until(lambda: not accepted("client"), 5.0, what="the revoked client refused")
    info = accepted("client2")
    check(info and cert_serial(info["cert"]) == pki.serial_of("server"),
          "another client still served with the previous pair: %r", info)

    # 3. a good pair again: taken
    n = len(cx.events())
    csi_write(mount, {"tls.crt": rd("server2.chain.crt"), "tls.key": rd("server2.key")},
              "2026_12_04_10_02_00.000000003")
    ev = cx.wait_event("tls_reloaded", after=n)
    check(not [e for e in cx.events()[n:] if e.get("event") == "tls_reload_refused"],
          "nothing refused any more: %r", cx.events()[n:])
    info = accepted("client2")
    check(info and cert_serial(info["cert"]) == pki.serial_of("server2"), "new pair: %r", info)
    check(not accepted("client"), "the CRL stays in force")
    cx.stop()


test_tls_bad_key_does_not_block_a_new_crl.timeout = 180


def test_h2_over_tls_alpn():
    """ALPN h2 on a TLS listener: the HTTP/2 codec takes the connection (and its TLS session)
    over; responses come over HTTP/2, X-Forwarded-Proto is https, the split and the access log
    are the same as for HTTP/1.1; a client that offers only http/1.1 still gets HTTP/1.1."""
    pki = Pki()
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cfg = tls_config(port, blue, green, {"certificates": [{"pem": pki.p("server.pem")}],
                                         "alpn": ["h2", "http/1.1"]})
    cfg["routes"][0]["weights"] = {"blue": 90, "green": 10}
    cx = start_cutover(cfg)
    cx.wait_event("tls_loaded")
    base = ["curl", "-sS", "--cacert", pki.p("ca.crt"),
            "--resolve", "app.test:%d:127.0.0.1" % port]
    p = subprocess.run(base + ["--http2", "-w", "\n%{http_version}", "https://app.test:%d/headers"
                               % port], capture_output=True, text=True, timeout=20)
    check(p.returncode == 0, "curl --http2: %s", p.stderr)
    body, _, version = p.stdout.rpartition("\n")
    check(version == "2", "negotiated HTTP version %r", version)
    h = json.loads(body)["headers"]
    check(h.get("x-forwarded-proto") == "https", "X-Forwarded-Proto over h2: %r", h)
    p = subprocess.run(base + ["--http1.1", "-w", "\n%{http_version}",
                               "https://app.test:%d/headers" % port],
                       capture_output=True, text=True, timeout=20)
    check(p.returncode == 0 and p.stdout.rpartition("\n")[2] == "1.1", "http/1.1 client: %r %s",
          p.stdout[-20:], p.stderr)
    # many streams over one TLS connection, split by weight
    p = subprocess.run(["h2load", "-n", "2000", "-c", "1", "-m", "50",
                        "https://127.0.0.1:%d/" % port], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode == 0 and "2000 succeeded" in p.stdout and "TLS Protocol" in p.stdout,
          "h2load over TLS: %s", p.stdout[-1500:])
    check("Application protocol: h2" in p.stdout, "h2load ALPN: %s", p.stdout[-1500:])
    a = wait_until(lambda: [x for x in cx.access() if x.get("path") == "/"]
                   if len([x for x in cx.access() if x.get("path") == "/"]) >= 2000 else None,
                   15.0, what="2000 access lines")
    green_n = sum(1 for x in a if x["pool"] == "green")
    check(abs(green_n - 200) <= 5, "90/10 over h2+TLS: %d green of %d", green_n, len(a))
    cx.stop()


test_h2_over_tls_alpn.timeout = 120


def test_tls_handshake_timeout():
    """A peer that opens a TCP connection to a TLS listener and never completes the handshake is
    closed after timeouts.client_header_ms, not left open for the keep-alive idle time."""
    pki = Pki()
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cfg = tls_config(port, blue, green, {"certificates": [{"pem": pki.p("server.pem")}]})
    cfg["timeouts"] = {"client_header_ms": 500, "client_idle_ms": 60000}
    cx = start_cutover(cfg)
    cx.wait_event("tls_loaded")
    for hello in (b"", b"\x16\x03\x01\x00\x05"):  # nothing at all; half a ClientHello
        s = socket.create_connection((HOST, port), timeout=5)
        if hello:
            s.sendall(hello)
        t0 = time.monotonic()
        s.settimeout(5)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - t0
        s.close()
        check(data == b"", "stalled handshake got bytes: %r", data)
        check(0.3 <= elapsed <= 3.0, "stalled handshake closed after %.2f s (want ~0.5 s)",
              elapsed)
    st, _, _ = tls_get(port, client_ctx(pki))
    check(st == 200, "a normal client is still served: %s", st)
    cx.stop()

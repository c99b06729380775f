"""etcd_cluster.py - a real etcd cluster (1 or 3 members) for the integration tests, with TLS
(a test CA, client certificates required) and authentication (root + a prefix-scoped user).

    import etcd_cluster
    c = etcd_cluster.EtcdCluster(members=3)
    try:
        cfg["control"]["store"] = c.store_config()
        c.put("/cutover/test/x", "1"); c.kill(c.leader()); c.start(i) ...
    finally:
        c.close()

Every member is a harness.Proc of kind "etcd", registered with the harness (CUTOVER_IT_PIDFILE),
so run.py and harness.cleanup_all() stop it by PID; its exit is never judged as a crash.
Members log (--log-level warn) to etcd-<i>.stdout/.stderr in the cluster's work dir.

What etcd 3.4.23's HTTP/JSON gateway (/v3/...) was observed to do with this cluster (TLS, client
certificates required, auth enabled), quoted from curl/http.client runs
(tests/integration/harness/test_etcd_cluster.py checks the main points):

* Client certificate: with --client-cert-auth, a gateway request made with a verified client
  certificate that HAS A CommonName is refused before reaching gRPC, whatever the token:
  HTTP 400, Content-Type text/plain, body
  "CommonName of client sending a request against gateway will be ignored and not used as expected"
  So the cutover client certificate here has no CN (subject "/O=cutover/OU=<user>"); etcdctl
  (gRPC) is not affected (the "root" certificate has CN=root). No certificate at all: the TLS
  handshake fails (curl: "sslv3 alert bad certificate"; Python: ssl.SSLError / reset).
* Both HTTP/1.1 and h2 (ALPN) are served. Every reply carries Access-Control-* and
  Grpc-Metadata-* headers; Content-Type application/json. Streams are Transfer-Encoding: chunked.
* int64/uint64 fields are JSON STRINGS ("revision":"3", "ID":"4746127995548286768", "TTL":"5",
  "count":"1", "deleted":"1"); int32 codes are numbers ("code":7). Keys/values are base64.
  Zero/false/empty fields are OMITTED: a range that finds nothing is only
  {"header":{...}} (no "kvs", no "count"); an empty value has no "value"; a failed txn has no
  "succeeded"; a DELETE event's kv has only key and mod_revision; a PUT event has no "type"
  (only DELETE has "type":"DELETE"); watch_id 0 is omitted. A request's int64 may be sent as
  a string or a number ({"ID":"123"} and {"ID":123} both work).
* POST /v3/auth/authenticate {"name":"cutover","password":"cutover-pass"} -> 200
  {"header":{"cluster_id":"10015075958426214581","member_id":"13840407138591031773","revision":"2","raft_term":"2"},"token":"APIkXpgqgZvnZXbY.21"}
  Wrong password or unknown user -> 400
  {"error":"etcdserver: authentication failed, invalid user ID or password","message":"etcdserver: authentication failed, invalid user ID or password","code":3}
  The token goes in header "Authorization: APIkXpgqgZvnZXbY.21" (no "Bearer").
* Errors are {"error":S,"message":S,"code":gRPC code}, HTTP status from the gRPC code:
  no token    -> 400 {"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}
  bad/expired -> 401 {"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}
     (seen with --auth-token-ttl 2: a token unused for 4 s gets exactly this on range and put)
  outside the role's range (put, range, txn touching it) -> 403
     {"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7}
  compacted revision (range "revision":"2") -> 400
     {"error":"etcdserver: mvcc: required revision has been compacted","message":"etcdserver: mvcc: required revision has been compacted","code":11}
  lease not found (revoke twice) -> {"error":"etcdserver: requested lease not found",...,"code":5}
  malformed JSON -> 400 {"error":"unexpected EOF","message":"unexpected EOF","code":3}
* POST /v3/kv/put {"key":..,"value":..} -> {"header":{..."revision":"3",...}}; with
  "prev_kv":true adds "prev_kv":{"key":"L2N1dG92ZXIvdGVzdC9rMQ==","create_revision":"3","mod_revision":"3","version":"1","value":"aGVsbG8="}
* POST /v3/kv/range {"key":..} ->
  {"header":{...,"revision":"4",...},"kvs":[{"key":"L2N1dG92ZXIvdGVzdC9rMQ==","create_revision":"3","mod_revision":"4","version":"2","value":"aGVsbG8="}],"count":"1"}
  with "range_end","limit":1,"keys_only":true -> ...,"kvs":[{...no value}],"more":true,"count":"4"
* POST /v3/kv/deleterange {"key":..} -> {"header":{...,"revision":"7",...},"deleted":"1"}
* POST /v3/kv/txn {"compare":[{"key":K,"target":"CREATE","result":"EQUAL","create_revision":"0"}],
  "success":[{"request_put":{"key":K,"value":V}}],"failure":[{"request_range":{"key":K}}]}
  first -> {"header":{...,"revision":"10",...},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"10"}}}]}
  again -> {"header":{...},"responses":[{"response_range":{"header":{"revision":"10"},"kvs":[{...}],"count":"1"}}]}
  (no "succeeded" key when false).
* POST /v3/watch {"create_request":{"key":P,"range_end":PE,"prev_kv":true}} (curl -N): 200,
  chunked, one JSON object per line (newline-separated), EACH WRAPPED IN "result":
  {"result":{"header":{...,"revision":"4",...},"created":true}}
  {"result":{"header":{...,"revision":"5",...},"events":[{"kv":{"key":"L2N1dG92ZXIvdGVzdC93MQ==","create_revision":"5","mod_revision":"5","version":"1","value":"djE="}}]}}
  {"result":{"header":{...,"revision":"7",...},"events":[{"type":"DELETE","kv":{"key":"L2N1dG92ZXIvdGVzdC93MQ==","mod_revision":"7"},"prev_kv":{...}}]}}
  Watch outside the permitted range: still HTTP 200, one line
  {"result":{"header":{...},"watch_id":"-1","created":true,"canceled":true,"cancel_reason":"rpc error: code = PermissionDenied desc = etcdserver: permission denied"}}
  start_revision below the compaction: created, then
  {"result":{"header":{"cluster_id":"...","member_id":"...","raft_term":"2"},"canceled":true,"compact_revision":"8"}}
  (the header has no revision there). The stream stays open after a cancel until the client
  closes it.
* POST /v3/lease/grant {"TTL":5} -> {"header":{...},"ID":"4746127995548286768","TTL":"5"}
  POST /v3/lease/keepalive {"ID":"4746127995548286768"} -> a STREAM (chunked, stays open), each
  reply wrapped in "result":
  {"result":{"header":{...},"ID":"4746127995548286768","TTL":"5"}}
  An unknown lease: 200 {"result":{"header":{...},"ID":"12345"}} (TTL omitted = 0: expired).
  POST /v3/lease/timetolive {"ID":..,"keys":true} -> {...,"ID":"...","TTL":"4","grantedTTL":"5","keys":["L2N1dG92ZXIvdGVzdC93MQ=="]}
  POST /v3/lease/revoke {"ID":..} -> {"header":{...}}
* POST /v3/kv/compaction {"revision":"8","physical":true} as the non-root cutover user
  SUCCEEDED ({"header":{...}}): compaction needs no admin right in 3.4.
"""
import json
import os
import signal
import subprocess
import time

import harness
from harness import HOST, HarnessError, Proc, _register, free_port, unique, wait_until

ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")
ETCDCTL_BIN = os.environ.get("ETCDCTL_BIN", "/usr/bin/etcdctl")
ROOT_PASSWORD = "root-pass"
ROLE = "cutover-fleet"


def _sh(args, timeout=60, env=None, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise HarnessError("%s failed (exit %d): %s" % (" ".join(args), p.returncode,
                                                        (p.stderr or p.stdout)[-1500:]))
    return p


def _prefix_end(prefix):
    """The end of the key range holding every key that starts with prefix (etcd's rule: the
    prefix with its last byte below 0xff incremented)."""
    b = bytearray(prefix.encode())
    while b:
        if b[-1] < 0xff:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"


class EtcdMember(Proc):
    """One etcd process (not a cutover: its exit is not judged as a crash)."""
    kind = "etcd"

    def __init__(self, popen, index, stdout_path, stderr_path):
        super().__init__(popen)
        self.index = index
        self.stdout = stdout_path
        self.stderr = stderr_path

    def stderr_text(self):
        try:
            with open(self.stderr, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class EtcdCluster:
    """A running etcd cluster made for one test. See __init__."""

    def __init__(self, members=1, tls=True, auth=True, prefix="/cutover/test/",
                 user="cutover", password="cutover-pass", auth_token_ttl=None):
        """Makes a PKI in a unique work dir (a CA; one server certificate per member with
        SAN IP:127.0.0.1 and DNS:localhost, valid for server AND client auth because members
        talk to each other with it; a client certificate "cutover" and one "root" for etcdctl),
        starts `members` etcd members on free 127.0.0.1 ports (client URLs https:// when tls,
        peer URLs https too with --peer-client-cert-auth; each its own data dir;
        --initial-cluster-state new; a short --heartbeat-interval 50 --election-timeout 500 so
        that leader changes take well under 2 s), waits until the cluster is healthy (bounded:
        30 s), and when auth: creates user root (password "root-pass"), a role "cutover-fleet"
        with readwrite permission on the prefix range (etcdctl role grant-permission
        --prefix=true), user `user`/`password` with that role, and enables auth. With tls,
        clients must present a certificate signed by the CA (--client-cert-auth).
        auth_token_ttl: etcd's --auth-token-ttl in seconds (simple tokens; etcd's default 300).
        On any failure the members already started are stopped before the exception."""
        if members < 1:
            raise ValueError("members must be >= 1")
        self.n = members
        self.tls = tls
        self.auth = auth
        self.prefix = prefix
        self.user = user
        self.auth_token_ttl = auth_token_ttl
        self.password = password
        self.dir = unique("etcd")
        os.makedirs(self.dir)
        self.token = "cutover-it-" + os.path.basename(self.dir)
        self.procs = [None] * members
        self.frozen = set()
        scheme = "https" if tls else "http"
        self.client_ports = [free_port() for _ in range(members)]
        self.peer_ports = [free_port() for _ in range(members)]
        self.endpoints = ["%s://%s:%d" % (scheme, HOST, p) for p in self.client_ports]
        self.peer_urls = ["%s://%s:%d" % (scheme, HOST, p) for p in self.peer_ports]
        self.ca = self.client_cert = self.client_key = None
        self.root_cert = self.root_key = None
        self.password_file = os.path.join(self.dir, "password")
        with open(self.password_file, "w") as f:
            f.write(password)
        try:
            if tls:
                self._make_pki()
            for i in range(members):
                self._spawn(i, "new")
            self.wait_healthy(30)
            if auth:
                self._setup_auth()
        except BaseException:
            self.close()
            raise

    # --- PKI ------------------------------------------------------------------------------------

    def _p(self, name):
        return os.path.join(self.dir, "pki", name)

    def _make_pki(self):
        os.makedirs(os.path.join(self.dir, "pki"))
        self._serial = 0x1000
        _sh(["openssl", "req", "-new", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", self._p("ca.key"),
             "-out", self._p("ca.crt"), "-days", "30", "-subj", "/CN=cutover test etcd CA",
             "-addext", "basicConstraints=critical,CA:true",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        self.ca = self._p("ca.crt")
        for i in range(self.n):
            self._leaf("member-%d" % i, "etcd-member-%d" % i,
                       "serverAuth,clientAuth", "IP:127.0.0.1,DNS:localhost")
        # No CN: etcd 3.4 answers every gateway (/v3/...) request made with a verified client
        # certificate that has a CommonName with HTTP 400 "CommonName of client sending a
        # request against gateway will be ignored and not used as expected".
        self._leaf("cutover", None, "clientAuth", None, subj="/O=cutover/OU=" + self.user)
        self._leaf("root", "root", "clientAuth", None)
        self.client_cert, self.client_key = self._p("cutover.crt"), self._p("cutover.key")
        self.root_cert, self.root_key = self._p("root.crt"), self._p("root.key")

    def _leaf(self, name, cn, eku, sans, subj=None):
        _sh(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", self._p(name + ".key"), "-out", self._p(name + ".csr"),
             "-subj", subj or "/CN=" + cn])
        ext = self._p(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:false\nkeyUsage=critical,digitalSignature\n")
            f.write("extendedKeyUsage=%s\n" % eku)
            if sans:
                f.write("subjectAltName=%s\n" % sans)
        self._serial += 1
        _sh(["openssl", "x509", "-req", "-in", self._p(name + ".csr"), "-days", "30",
             "-set_serial", "0x%x" % self._serial, "-extfile", ext,
             "-out", self._p(name + ".crt"), "-CA", self._p("ca.crt"),
             "-CAkey", self._p("ca.key")])

    # --- processes ------------------------------------------------------------------------------

    def _initial_cluster(self):
        return ",".join("m%d=%s" % (i, u) for i, u in enumerate(self.peer_urls))

    def _spawn(self, i, state):
        data = os.path.join(self.dir, "data-%d" % i)
        args = [ETCD_BIN, "--name", "m%d" % i, "--data-dir", data,
                "--listen-client-urls", self.endpoints[i],
                "--advertise-client-urls", self.endpoints[i],
                "--listen-peer-urls", self.peer_urls[i],
                "--initial-advertise-peer-urls", self.peer_urls[i],
                "--initial-cluster", self._initial_cluster(),
                "--initial-cluster-token", self.token,
                "--initial-cluster-state", state,
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--experimental-watch-progress-notify-interval", "2s",
                "--log-level", "warn", "--logger", "zap"]
        if self.auth_token_ttl is not None:
            args += ["--auth-token-ttl", str(int(self.auth_token_ttl))]
        if self.tls:
            crt, key = self._p("member-%d.crt" % i), self._p("member-%d.key" % i)
            args += ["--cert-file", crt, "--key-file", key, "--trusted-ca-file", self.ca,
                     "--client-cert-auth",
                     "--peer-cert-file", crt, "--peer-key-file", key,
                     "--peer-trusted-ca-file", self.ca, "--peer-client-cert-auth"]
        base = os.path.join(self.dir, "etcd-%d" % i)
        with open(base + ".stdout", "a") as fo, open(base + ".stderr", "a") as fe:
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
        m = EtcdMember(p, i, base + ".stdout", base + ".stderr")
        _register(m)
        self.procs[i] = m
        self.frozen.discard(i)
        return m

    def _member(self, i):
        m = self.procs[i]
        if m is None:
            raise HarnessError("etcd member %d was never started" % i)
        return m

    def stop(self, i, timeout=10.0):
        """SIGTERM member i by PID and wait for it (bounded: SIGKILL after timeout)."""
        m = self._member(i)
        if i in self.frozen:
            self.thaw(i)
        return m.terminate(timeout=timeout)

    def kill(self, i):
        """SIGKILL member i by PID (an expected death, not a crash)."""
        self.frozen.discard(i)
        return self._member(i).kill()

    def freeze(self, i):
        """SIGSTOP member i (it keeps its sockets open but answers nothing)."""
        m = self._member(i)
        m.expect_signal(signal.SIGSTOP)
        os.kill(m.pid, signal.SIGSTOP)
        self.frozen.add(i)

    def thaw(self, i):
        """SIGCONT member i."""
        m = self._member(i)
        os.kill(m.pid, signal.SIGCONT)
        self.frozen.discard(i)

    def start(self, i, timeout=30):
        """Restarts member i (after stop/kill) with the same data dir and ports
        (--initial-cluster-state existing); waits until its endpoint answers a health check."""
        m = self.procs[i]
        if m is not None and m.alive():
            raise HarnessError("etcd member %d is still running" % i)
        self._spawn(i, "existing")
        wait_until(lambda: self._healthy(i), timeout, interval=0.1,
                   what="etcd member %d to answer after restart" % i)

    def alive(self, i):
        return self.procs[i] is not None and self.procs[i].alive()

    def close(self):
        """Stops every member by PID (SIGCONT first for a frozen one; SIGTERM, then SIGKILL
        after 5 s). Idempotent."""
        for i, m in enumerate(self.procs):
            if m is None:
                continue
            try:
                if m.alive():
                    if i in self.frozen:
                        os.kill(m.pid, signal.SIGCONT)
                    m.terminate(timeout=5.0)
            except Exception:
                m.kill()
        self.frozen.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- etcdctl --------------------------------------------------------------------------------

    def _ctl_base(self, endpoints=None):
        args = [ETCDCTL_BIN, "--endpoints", ",".join(endpoints or self.endpoints),
                "--dial-timeout", "3s", "--command-timeout", "5s"]
        if self.tls:
            args += ["--cacert", self.ca, "--cert", self.root_cert, "--key", self.root_key]
        if self.auth and getattr(self, "_auth_on", False):
            args += ["--user", "root:" + ROOT_PASSWORD]
        return args

    def etcdctl(self, *args, timeout=10, check=True, endpoints=None):
        """Runs etcdctl (ETCDCTL_API=3) as root against all endpoints (or `endpoints`) with the
        TLS flags; returns stdout. Raises HarnessError on a non-zero exit when check."""
        env = dict(os.environ, ETCDCTL_API="3")
        try:
            p = _sh(self._ctl_base(endpoints) + [str(a) for a in args], timeout=timeout,
                    env=env, check=check)
        except subprocess.TimeoutExpired:
            if check:
                raise HarnessError("etcdctl %s: no answer within %s s" % (" ".join(args), timeout))
            return ""
        return p.stdout

    def _healthy(self, i=None):
        eps = self.endpoints if i is None else [self.endpoints[i]]
        env = dict(os.environ, ETCDCTL_API="3")
        try:
            p = _sh(self._ctl_base(eps) + ["endpoint", "health"], timeout=10, env=env,
                    check=False)
        except subprocess.TimeoutExpired:
            return False
        return p.returncode == 0

    def wait_healthy(self, timeout=30):
        """Waits (bounded) until every running member answers `etcdctl endpoint health`."""
        eps = [self.endpoints[i] for i in range(self.n) if self.alive(i)]

        def ok():
            for i in range(self.n):
                m = self.procs[i]
                if m is not None and m.popen.poll() is not None and m.expected_signals == set():
                    raise HarnessError("etcd member %d exited with %s: %s" % (
                        i, m.popen.returncode, m.stderr_text()[-1500:]))
            return all(self._healthy(self.endpoints.index(e)) for e in eps)
        wait_until(ok, timeout, interval=0.1, what="etcd cluster to be healthy")

    def _setup_auth(self):
        self.etcdctl("user", "add", "root:" + ROOT_PASSWORD)
        self.etcdctl("role", "add", ROLE)
        self.etcdctl("role", "grant-permission", ROLE, "--prefix=true", "readwrite", self.prefix)
        self.etcdctl("user", "add", "%s:%s" % (self.user, self.password))
        self.etcdctl("user", "grant-role", self.user, ROLE)
        self.etcdctl("auth", "enable")
        self._auth_on = True

    # --- data helpers (as root) -----------------------------------------------------------------

    def put(self, key, value):
        """Writes key=value (as root)."""
        self.etcdctl("put", key, value)

    def get(self, key, endpoints=None):
        """The value of key (str) or None (as root). endpoints: ask only these, and read their
        local state (--consistency=s), so a restarted member shows what it has caught up."""
        extra = ["--consistency=s"] if endpoints else []
        out = self.etcdctl("get", key, "-w", "json", *extra, endpoints=endpoints)
        kvs = json.loads(out).get("kvs") or []
        return _b64(kvs[0]["value"]) if kvs and "value" in kvs[0] else ("" if kvs else None)

    def get_prefix(self, prefix):
        """{key: value} of every key under prefix (as root)."""
        out = self.etcdctl("get", "--prefix", prefix, "-w", "json")
        return {_b64(kv["key"]): _b64(kv.get("value", "")) for kv in
                json.loads(out).get("kvs") or []}

    def delete(self, key):
        """Deletes key; returns how many keys were deleted."""
        out = self.etcdctl("del", key)
        return int(out.strip() or 0)

    def revision(self):
        """The cluster's current revision."""
        out = self.etcdctl("get", "--limit", "1", "-w", "json", "/")
        return int(json.loads(out)["header"]["revision"])

    def compact(self, revision):
        """Compacts the history up to revision (physically: waits for the compaction)."""
        self.etcdctl("compact", str(int(revision)), "--physical")

    def leader(self):
        """The index of the current leader member (from `etcdctl endpoint status -w json`
        over the running members); HarnessError when none answers as leader."""
        eps = [self.endpoints[i] for i in range(self.n) if self.alive(i) and i not in self.frozen]
        out = self.etcdctl("endpoint", "status", "-w", "json", endpoints=eps, check=False)
        try:
            st = json.loads(out or "[]")
        except ValueError:
            st = []
        for s in st:
            h = s.get("Status", {})
            if h.get("leader") and h.get("leader") == h.get("header", {}).get("member_id"):
                return self.endpoints.index(s["Endpoint"])
        raise HarnessError("no etcd leader found: %r" % out[-500:])

    def wait_leader(self, timeout=10):
        """Waits (bounded) until a leader is elected; returns its index."""
        def f():
            try:
                return self.leader() + 1
            except HarnessError:
                return None
        return wait_until(f, timeout, interval=0.05, what="an etcd leader") - 1

    # --- cutover's config ---------------------------------------------------------------------

    def store_config(self, **extra):
        """cutover's "control.store" object for this cluster, updated by extra."""
        cfg = {"endpoints": list(self.endpoints), "prefix": self.prefix}
        if self.tls:
            cfg["tls"] = {"ca": self.ca, "client_certificate": {"cert": self.client_cert,
                                                               "key": self.client_key}}
        if self.auth:
            cfg["user"] = self.user
            cfg["password_file"] = self.password_file
        cfg.update(extra)
        return cfg


def _b64(s):
    import base64
    return base64.b64decode(s).decode("utf-8", "replace")

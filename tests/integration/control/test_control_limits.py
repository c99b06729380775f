"""Connection limits of the control socket and the HTTPS admin API (docs/control-protocol.md,
"Connection limits") against the real server: silent, idle and half-done connections never lock
out a `rollback` (when the table is full the idlest connection gives way to the new one, and the
evictions are logged, at most 20 events a second); a control connection that does not send a
complete request within control.request_timeout_ms is closed, slow byte-by-byte senders too;
clients that connect for one request at a time never see `busy` below max_clients (a closed
connection frees its slot at once); the admin API's silent TCP connections and handshakes that
never finish give way the same way.

Every loop is bounded in count and in time. The control socket helpers come from test_control,
the admin API's from test_admin_https.
"""
import http.client
import json
import select
import socket
import ssl
import threading
import time

from harness import HOST, check, run_check, start_upstream, wait_until, write_config
from test_admin_https import Admin, AdminPki, sw
from test_control import ROUTE, Ctl, CtlClosed, control_section, start_proxy, weights_bp


# --- helpers -----------------------------------------------------------------------------------

def unix_silent(path, n):
    """n connections to the control socket that never send anything."""
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5.0)
        s.connect(path)
        out.append(s)
    return out


def closed_by_server(socks, quiet=1.0, limit=6.0):
    """The indices of socks the server closed (EOF or reset): reads everything they are sent
    (a TLS server's handshake messages, say) until none has closed for `quiet` seconds, or
    `limit` seconds in all."""
    closed = set()
    t_end = time.monotonic() + limit
    last_change = time.monotonic()
    while time.monotonic() < t_end and time.monotonic() - last_change < quiet:
        live = [s for i, s in enumerate(socks) if i not in closed]
        if not live:
            break
        r, _, _ = select.select(live, [], [], 0.1)
        for s in r:
            try:
                d = s.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:  # reset
                d = b""
            if not d:
                closed.add(socks.index(s))
                last_change = time.monotonic()
    return closed


def close_times(socks, limit):
    """{index: seconds from now until the server closed socks[index]} for those it closed within
    limit seconds (what it sends is read and dropped)."""
    t0 = time.monotonic()
    out = {}
    while len(out) < len(socks) and time.monotonic() - t0 < limit:
        live = [s for i, s in enumerate(socks) if i not in out]
        r, _, _ = select.select(live, [], [], 0.05)
        for s in r:
            try:
                d = s.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if not d:
                out[socks.index(s)] = time.monotonic() - t0
    return out


def time_to_close(sock, limit):
    """Seconds until the server closes sock (reading and dropping what it sends), or None when
    it is still open after limit seconds."""
    t0 = time.monotonic()
    while True:
        left = limit - (time.monotonic() - t0)
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            d = b""
        if not d:
            return time.monotonic() - t0


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def set_weights(path, blue, green):
    with Ctl(path) as c:
        c.ok("set-weights", {"route": ROUTE, "weights": {"blue": blue, "green": green},
                             "reason": "test"})


def rollback(path, reason, limit=2.0):
    """A rollback on a new connection; (reply, seconds)."""
    t0 = time.monotonic()
    with Ctl(path, timeout=limit + 1.0) as c:
        rep = c.request({"v": 1, "id": "rb", "op": "rollback",
                         "args": {"route": ROUTE, "reason": reason}})
    return rep, time.monotonic() - t0


def events_after(cx, name, n0):
    return [e for e in cx.events()[n0:] if e.get("event") == name]


# --- (a) silent and idle connections give way ----------------------------------------------------

def test_control_limits_silent_connections_give_way():
    """The default table (16) held by silent connections, then by idle keep-alive ones: a new
    connection pushes the idlest out instead of being told busy, so `rollback` gets through at
    once, and the oldest connections are the ones closed. A burst of 60 more logs at most 20
    evictions a second and one control_events_suppressed with the rest."""
    blue, green = start_upstream("blue"), start_upstream("green")
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 100, "green": 0})
    set_weights(path, 90, 10)

    # 24 silent connections: 16 fill the table, 8 push the 8 oldest out; the rollback the 9th
    n0 = len(cx.events())
    silent = unix_silent(path, 24)
    rep, dt = rollback(path, "silent connections hold every slot")
    check(rep.get("ok") is True and dt < 2.0,
          "rollback with the table held by silent connections: %.2f s, %r", dt, rep)
    check(weights_bp(rep["result"]["weights"]) == {"blue": 10000, "green": 0},
          "rolled back: %r", rep)
    closed = closed_by_server(silent, quiet=1.0)
    check(closed == set(range(9)), "the oldest 9 silent connections should have given way, "
          "closed: %s", sorted(closed))
    ev = wait_until(lambda: len(events_after(cx, "control_connection_evicted", n0)) >= 9 and
                    events_after(cx, "control_connection_evicted", n0), 3.0,
                    what="9 control_connection_evicted events")
    check(len(ev) == 9 and all(e.get("state") == "reading" and e.get("uid") is not None and
                               "idlest" in e.get("reason", "") for e in ev),
          "eviction events: %r", ev[:3])
    close_all(silent)

    # 16 keep-alive connections that each made a request and stay idle: same
    set_weights(path, 80, 20)
    idle = []
    for i in range(16):
        c = Ctl(path, timeout=3.0)
        check(c.call("version").get("ok") is True, "idle connection %d: version refused", i)
        idle.append(c)
    n0 = len(cx.events())
    rep, dt = rollback(path, "idle keep-alive connections hold every slot")
    check(rep.get("ok") is True and dt < 2.0,
          "rollback with the table held by idle connections: %.2f s, %r", dt, rep)
    closed = closed_by_server([c.sock for c in idle], quiet=0.5)
    check(closed == {0}, "only the idlest keep-alive connection should have given way: %s",
          sorted(closed))
    ev = wait_until(lambda: events_after(cx, "control_connection_evicted", n0), 3.0,
                    what="an eviction event")
    check(ev[0].get("state") == "idle", "eviction of an idle connection: %r", ev[0])
    for c in idle[1:]:  # the rest still work
        check(c.call("version").get("ok") is True, "an idle connection that was not evicted")
    close_all([c.sock for c in idle])

    # a burst: 16 + 60 silent connections; every eviction is counted, at most 20 logged a second
    n0 = len(cx.events())
    burst = unix_silent(path, 76)

    def counted():
        return len(events_after(cx, "control_connection_evicted", n0)) + sum(
            e.get("count", 0) for e in events_after(cx, "control_events_suppressed", n0))

    # One more eviction in a later second than the burst's brings the suppressed count out.
    # The burst may be processed a second after it was sent (a slow sanitizer build): first see
    # every one of its evictions (76 in a table of 16: the oldest 60 closed by cutover).
    gone = closed_by_server(burst, quiet=1.0, limit=15.0)
    check(gone == set(range(60)), "the burst should have pushed out its oldest 60, closed: %s",
          sorted(gone))
    time.sleep(1.05 - (time.time() % 1.0))
    burst += unix_silent(path, 1)
    wait_until(lambda: counted() >= 61, 3.0, what="61 evictions logged or counted")
    evicted = events_after(cx, "control_connection_evicted", n0)
    per_second = {}
    for e in evicted:
        per_second[e["time"][:19]] = per_second.get(e["time"][:19], 0) + 1
    suppressed = sum(e["count"] for e in events_after(cx, "control_events_suppressed", n0))
    print("burst: %d eviction events, %d suppressed, per second %s"
          % (len(evicted), suppressed, per_second))
    check(max(per_second.values()) <= 20, "more than 20 events in a second: %s", per_second)
    # 77 new connections in a table of 16: 61 evictions, plus the 15 left from before (closed
    # by this client, so freed as closed, not evicted)
    check(len(evicted) + suppressed == 61, "%d evictions logged + %d suppressed, want 61",
          len(evicted), suppressed)
    rep, dt = rollback(path, "after a burst")
    check(rep.get("ok") is True and dt < 2.0, "rollback after a burst: %.2f s, %r", dt, rep)
    close_all(burst)
    check(cx.alive(), "cutover died")
    cx.stop()


test_control_limits_silent_connections_give_way.timeout = 90


# --- (b) the request deadline --------------------------------------------------------------------

def test_control_limits_request_deadline():
    """With the default control.request_timeout_ms (5 s) a silent connection and one that sends
    a byte of a request every 200 ms are closed after about 5 s (control_request_timeout); after
    a reload to 800 ms / idle 2000 ms: a silent connection goes after 0.8 s, a request that
    completes within it is answered, a partial request after a reply goes 0.8 s after its first
    byte, and an idle connection after 2 s without an event. Out-of-range values are refused by
    --check and by a reload, with their JSON paths."""
    blue, green = start_upstream("blue"), start_upstream("green")
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 100, "green": 0})
    n0 = len(cx.events())
    silent, drip = unix_silent(path, 2)
    stop = threading.Event()

    def dripper():  # one byte every 200 ms, for at most 10 s
        line = b'{"id": "drip", "op": "status", "args": {"route": "' + b"x" * 200
        for i in range(50):
            if stop.wait(0.2):
                return
            try:
                drip.send(line[i:i + 1])
            except OSError:
                return
    th = threading.Thread(target=dripper, daemon=True)
    th.start()
    closed = close_times([silent, drip], 9.0)
    stop.set()
    th.join(2.0)
    dt_silent, dt_drip = closed.get(0), closed.get(1)
    print("default deadline: silent closed after %s s, drip after %s s" % (dt_silent, dt_drip))
    check(dt_silent is not None and 4.5 <= dt_silent <= 7.0,
          "a silent connection with the default 5 s deadline: closed after %s s", dt_silent)
    check(dt_drip is not None and 4.5 <= dt_drip <= 7.0,
          "a byte every 200 ms with the default 5 s deadline: closed after %s s", dt_drip)
    ev = events_after(cx, "control_request_timeout", n0)
    check(len(ev) == 2 and all(e.get("reason") == "no complete request within "
                               "request_timeout_ms" and e.get("state") == "reading" for e in ev),
          "control_request_timeout events: %r", ev)
    close_all([silent, drip])

    # out of range: --check and a reload both refuse, naming the keys
    bad = json.loads(json.dumps(cx.config))
    bad["control"]["request_timeout_ms"] = 99
    bad["control"]["idle_timeout_ms"] = 3600001
    rc, out, err = run_check(write_config(bad))
    check(rc == 1 and "control.request_timeout_ms" in err and "control.idle_timeout_ms" in err,
          "--check with out-of-range timeouts: rc %s, %s", rc, err)
    bad["control"]["request_timeout_ms"] = "5s"
    bad["control"]["idle_timeout_ms"] = 100
    cx.rewrite(bad)
    ev = cx.reload(expect="reload_refused")
    paths = sorted(e.get("path") for e in ev.get("errors", []))
    check(paths == ["control.idle_timeout_ms", "control.request_timeout_ms"],
          "reload_refused paths: %r", ev)

    good = json.loads(json.dumps(cx.config))
    good["control"]["request_timeout_ms"] = 800
    good["control"]["idle_timeout_ms"] = 2000
    rc, out, err = run_check(write_config(good))
    check(rc == 0, "--check with valid timeouts: %s %s", out, err)
    cx.rewrite(good)
    cx.reload(expect="reload")
    n0 = len(cx.events())

    s = unix_silent(path, 1)[0]
    dt = time_to_close(s, 4.0)
    check(dt is not None and 0.6 <= dt <= 2.0, "silent connection, 800 ms: closed after %s", dt)
    s.close()

    # a request sent in three pieces within the deadline is answered
    with Ctl(path, timeout=3.0) as c:
        req = b'{"id": "slow", "op": "version"}\n'
        for part in (req[:10], req[10:20], req[20:]):
            c.send_raw(part)
            time.sleep(0.2)
        rep = c.read_line(2.0)
        check(rep.get("ok") is True and rep.get("id") == "slow", "a request in pieces: %r", rep)
        # after the reply: the next request's first byte starts its 800 ms
        time.sleep(0.5)
        c.send_raw(b'{"id": "never-finished"')
        t1 = time.monotonic()
        check(c.wait_closed(3.0), "a partial request after a reply was not closed")
        dt = time.monotonic() - t1
        check(0.6 <= dt <= 2.0, "a partial request after a reply: closed after %.2f s", dt)

    # an idle connection (between requests) goes after idle_timeout_ms, quietly
    with Ctl(path, timeout=3.0) as c:
        check(c.call("version").get("ok") is True, "version")
        t1 = time.monotonic()
        check(c.wait_closed(5.0), "an idle connection was not closed after idle_timeout_ms")
        dt = time.monotonic() - t1
        check(1.7 <= dt <= 3.5, "an idle connection: closed after %.2f s (idle 2 s)", dt)
    ev = events_after(cx, "control_request_timeout", n0)
    check(len(ev) == 2, "request timeouts after the reload (silent, partial; not the idle one): "
          "%r", ev)
    check(cx.alive(), "cutover died")
    cx.stop()


test_control_limits_request_deadline.timeout = 90


# --- (c) clients that connect for one request never get busy -------------------------------------

def test_control_limits_reconnecting_clients_never_busy():
    """12 clients, each connecting for one request at a time, 40 requests each, with
    control.max_clients 16: every request is answered ok (none busy), and no live connection is
    evicted (the slots freed were the closed connections')."""
    blue, green = start_upstream("blue"), start_upstream("green")
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                           control=control_section(max_clients=16))
    n0 = len(cx.events())
    results = {"ok": 0, "busy": 0, "other": []}
    lock = threading.Lock()
    deadline = time.monotonic() + 60.0

    def client(k):
        for i in range(40):
            if time.monotonic() > deadline:
                return
            try:
                with Ctl(path, timeout=5.0) as c:
                    rep = c.request({"id": "c%d-%d" % (k, i), "op": "version"})
            except (OSError, CtlClosed, ValueError) as e:
                rep = {"exception": repr(e)}
            with lock:
                if rep.get("ok") is True:
                    results["ok"] += 1
                elif (rep.get("error") or {}).get("code") == "busy":
                    results["busy"] += 1
                else:
                    results["other"].append(rep)
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline + 5.0 - time.monotonic()))
    print("12 reconnecting clients: %r" % {k: v if k != "other" else len(v)
                                           for k, v in results.items()})
    check(results["busy"] == 0 and not results["other"] and results["ok"] == 480,
          "12 clients one request per connection, limit 16: %d ok, %d busy, other %r",
          results["ok"], results["busy"], results["other"][:3])
    ev = events_after(cx, "control_connection_evicted", n0)
    check(not ev, "live connections were evicted: %r", ev[:3])
    check(cx.alive(), "cutover died")
    cx.stop()


test_control_limits_reconnecting_clients_never_busy.timeout = 120


# --- (d) the HTTPS admin API ---------------------------------------------------------------------

def client_hello_only(a):
    """A TCP connection to the admin API that sends a ClientHello and never goes on."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = a.ctx("deployer").wrap_bio(inc, out, server_hostname=HOST)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    s = socket.create_connection((HOST, a.aport), timeout=5.0)
    s.sendall(out.read())
    return s


def test_control_limits_admin_api():
    """The admin API (default max_clients 16 and timeouts) with its table held by 10 silent TCP
    connections and 10 that sent a ClientHello and stopped: a rollback over HTTPS with the
    client certificate is answered 200 at once, and the 5 oldest connections gave way
    (admin_connection_evicted). After a reload to request_timeout_ms 1000, an unfinished
    handshake is closed after about 1 s. Then 12 clients, each connecting for one request at a
    time (half with Connection: close), never see 503 busy and evict nobody."""
    pki = AdminPki()
    a = Admin(pki, weights={"blue": 100, "green": 0})
    st, _, doc = a.control("deployer", "set-weights", sw(90, 10))
    check(st == 200 and doc["ok"], "set-weights: %s %r", st, doc)

    n0 = len(a.cx.events())
    held = [socket.create_connection((HOST, a.aport), timeout=5.0) for _ in range(10)]
    held += [client_hello_only(a) for _ in range(10)]
    t0 = time.monotonic()
    st, _, doc = a.control("deployer", "rollback",
                           {"route": "app", "reason": "silent and half-done connections"})
    dt = time.monotonic() - t0
    check(st == 200 and doc.get("ok") is True and dt < 3.0,
          "rollback over HTTPS with the table held: %s in %.2f s, %r", st, dt, doc)
    check(weights_bp(doc["result"]["weights"]) == {"blue": 10000, "green": 0}, "rolled back")
    closed = closed_by_server(held, quiet=1.0)
    check(closed == set(range(5)), "the 5 oldest connections should have given way, closed: %s",
          sorted(closed))
    ev = wait_until(lambda: len(events_after(a.cx, "admin_connection_evicted", n0)) >= 5 and
                    events_after(a.cx, "admin_connection_evicted", n0), 3.0,
                    what="admin_connection_evicted events")
    check(len(ev) == 5 and all(e.get("state") == "handshake" and e.get("peer") for e in ev),
          "admin eviction events: %r", ev[:2])
    check(not [r for r in a.audit_lines() if (r.get("error") or {}).get("code") == "busy"],
          "a busy refusal was audited")
    close_all(held)

    # the deadline covers the handshake: one that never finishes is closed
    cfg = json.loads(json.dumps(a.cx.config))
    cfg["admin"]["request_timeout_ms"] = 1000
    a.cx.rewrite(cfg)
    a.cx.reload(expect="reload")
    n1 = len(a.cx.events())
    half = client_hello_only(a)
    dt = time_to_close(half, 5.0)
    half.close()
    check(dt is not None and 0.7 <= dt <= 3.0, "an unfinished handshake: closed after %s s", dt)
    wait_until(lambda: [e for e in events_after(a.cx, "admin_tls_refused", n1)
                        if "request_timeout_ms" in e.get("reason", "")], 3.0,
               what="admin_tls_refused for a handshake past request_timeout_ms")

    # 12 clients, one request per connection
    n2 = len(a.cx.events())
    results = {}
    lock = threading.Lock()
    deadline = time.monotonic() + 60.0

    def client(k):
        ctx = a.ctx("deployer")
        for i in range(15):
            if time.monotonic() > deadline:
                return
            hdrs = {"Content-Type": "application/json"}
            if k % 2:
                hdrs["Connection"] = "close"
            body = json.dumps({"v": 1, "id": "c%d-%d" % (k, i), "op": "version"}).encode()
            c = http.client.HTTPSConnection(HOST, a.aport, context=ctx, timeout=10.0)
            try:
                c.request("POST", "/v1/control", body=body, headers=hdrs)
                r = c.getresponse()
                r.read()
                key = r.status
            except (OSError, http.client.HTTPException) as e:
                key = type(e).__name__
            finally:
                c.close()
            with lock:
                results[key] = results.get(key, 0) + 1
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline + 5.0 - time.monotonic()))
    print("12 reconnecting HTTPS clients: %r" % results)
    check(results == {200: 180}, "12 HTTPS clients, one request per connection: %r", results)
    ev = events_after(a.cx, "admin_connection_evicted", n2)
    check(not ev, "live admin connections were evicted: %r", ev[:3])
    check(a.cx.alive(), "cutover died")
    a.cx.stop()


test_control_limits_admin_api.timeout = 120

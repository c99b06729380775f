"""The client's country in the access log (access_log.country_database, a MaxMind DB read with
libmaxminddb): looked up from the client address (the trusted X-Forwarded-For's, IPv4 and IPv6),
"" when the database has no entry; the database file replaced on disk is picked up without a
restart; a missing or corrupt database refuses the configuration (--check, start, reload) with its
JSON path, and a refused reload keeps the old database serving.

The test databases are written by make_mmdb.pl (Debian's libmaxmind-db-writer-perl, installed by
scripts/deps.sh test)."""
import os
import subprocess

from harness import (HERE, RawConn, check, free_port, make_config, run_check, start_cutover,
                     start_upstream, unique, wait_until, write_config)

MAKE_MMDB = os.path.join(HERE, "make_mmdb.pl")


def make_db(path, pairs):
    p = subprocess.run(["perl", MAKE_MMDB, path] + ["%s=%s" % kv for kv in pairs],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    check(p.returncode == 0, "make_mmdb.pl: %s", p.stderr.decode(errors="replace"))
    return path


def geo_config(port, blue, green, db):
    cfg = make_config(port, {"blue": [blue], "green": [green]}, {"blue": 100, "green": 0},
                      trusted_proxies=["127.0.0.1/32"])
    cfg["access_log"] = {"enabled": True, "country_database": db}
    return cfg


def countries(cx, port, xffs):
    """One request per X-Forwarded-For value (None: no header); the access log line of each
    (matched by a unique path) -> its "country" (missing key: KeyError in the check below)."""
    tag = os.urandom(4).hex()
    with RawConn(port) as c:
        for i, xff in enumerate(xffs):
            headers = {"X-Forwarded-For": xff} if xff else {}
            r = c.get("/geo-%s-%d" % (tag, i), headers=headers)
            check(r.status == 200, "request %d: %s", i, r.status)

    def lines():
        got = {a["path"]: a for a in cx.access() if a["path"].startswith("/geo-%s-" % tag)}
        return got if len(got) == len(xffs) else None
    got = wait_until(lines, 5.0, what="access log lines")
    out = []
    for i, xff in enumerate(xffs):
        a = got["/geo-%s-%d" % (tag, i)]
        check("country" in a, "no country field in %r", a)
        out.append(a["country"])
    return out


def test_country_from_the_client_address():
    db = make_db(unique("geo.mmdb"), [("81.2.69.0/24", "GB"), ("175.16.199.0/24", "CN"),
                                      ("2a02:cf40::/29", "NO")])
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(geo_config(port, blue, green, db))
    got = countries(cx, port, ["81.2.69.160", "175.16.199.7", "2a02:cf40::1",
                               "203.0.113.9, 81.2.69.160", "8.8.8.8", None, "not-an-ip"])
    # the last X-Forwarded-For entry is the client when the peer (127.0.0.1) is trusted; no
    # header, or an unusable one: the peer itself, which the database does not know
    check(got == ["GB", "CN", "NO", "GB", "", "", ""], "countries %r", got)
    client = [a["client"] for a in cx.access() if a["path"].startswith("/geo-")][:3]
    check(client == ["81.2.69.160", "175.16.199.7", "2a02:cf40::1"], "client %r", client)
    cx.stop()

    # without a database the field is absent (the line keeps its shape)
    port2 = free_port()
    cfg = geo_config(port2, blue, green, db)
    del cfg["access_log"]["country_database"]
    cx2 = start_cutover(cfg)
    with RawConn(port2) as c:
        check(c.get("/plain", headers={"X-Forwarded-For": "81.2.69.160"}).status == 200, "status")
    line = wait_until(lambda: [a for a in cx2.access() if a["path"] == "/plain"], 5.0,
                      what="access line")[0]
    check("country" not in line, "country without a database: %r", line)
    cx2.stop()


test_country_from_the_client_address.timeout = 90


def test_database_replaced_on_disk_is_picked_up():
    d = unique("geodir")
    os.makedirs(d)
    db = make_db(os.path.join(d, "country.mmdb"), [("81.2.69.0/24", "GB")])
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    cx = start_cutover(geo_config(port, blue, green, db))
    check(countries(cx, port, ["81.2.69.160"]) == ["GB"], "before the update")
    n = len(cx.events())
    make_db(db, [("81.2.69.0/24", "FR")])  # written aside, then renamed over the old file
    ev = cx.wait_event(("tls_reloaded", "tls_reload_refused"), after=n, timeout=15.0)
    check(ev["event"] == "tls_reloaded", "the new database was refused: %r", ev)
    got = wait_until(lambda: (lambda c: c if c == ["FR"] else None)(
        countries(cx, port, ["81.2.69.160"])), 5.0, interval=0.2, what="FR after the update")
    check(got == ["FR"], "after the update %r", got)

    # a corrupt replacement is refused; the database in use keeps answering
    n = len(cx.events())
    tmp = db + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"this is not a MaxMind DB" * 100)
    os.replace(tmp, db)
    ev = cx.wait_event(("tls_reloaded", "tls_reload_refused"), after=n, timeout=15.0)
    check(ev["event"] == "tls_reload_refused" and
          any(e["path"] == "access_log.country_database" for e in ev["errors"]),
          "a corrupt database was not refused: %r", ev)
    check(countries(cx, port, ["81.2.69.160"]) == ["FR"], "the old database stopped answering")
    cx.stop()


test_database_replaced_on_disk_is_picked_up.timeout = 90


def test_missing_or_corrupt_database_refused():
    blue, green = start_upstream("blue"), start_upstream("green")
    port = free_port()
    missing = unique("nope.mmdb")
    corrupt = unique("corrupt.mmdb")
    with open(corrupt, "wb") as f:
        f.write(os.urandom(4096))
    for path in (missing, corrupt):
        rc, out, err = run_check(write_config(geo_config(port, blue, green, path)))
        check(rc != 0 and "access_log.country_database" in err and path in err,
              "--check with %s: rc %s, %r", path, rc, err)

    db = make_db(unique("geo.mmdb"), [("81.2.69.0/24", "GB")])
    cx = start_cutover(geo_config(port, blue, green, db))
    check(countries(cx, port, ["81.2.69.160"]) == ["GB"], "start")
    cx.rewrite(geo_config(port, blue, green, missing))
    ev = cx.reload(expect=("reload_refused",))
    check(any(e["path"] == "access_log.country_database" for e in ev["errors"]),
          "reload_refused %r", ev)
    check(countries(cx, port, ["81.2.69.160"]) == ["GB"], "after the refused reload")
    cx.stop()


test_missing_or_corrupt_database_refused.timeout = 90

"""Endpoint names (control/dns.c): a name in the configuration is resolved before the first
request is served; a name added at run time is resolved on the resolver thread, off the control
loop, and takes traffic as soon as it answers. Only "localhost" is used (from /etc/hosts), so no
query leaves the machine."""
import socket
import time

from harness import check, start_upstream, wait_until
from test_control import ROUTE, Ctl, shares, start_proxy


def _localhost_is_127():
    addrs = {ai[4][0] for ai in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}
    check(addrs == {"127.0.0.1"}, "this test needs localhost to resolve to 127.0.0.1 only: %r",
          addrs)


def test_configured_name_serves_from_the_first_request():
    _localhost_is_127()
    blue = start_upstream("blue")
    cx, path = start_proxy({"blue": ["localhost:%d" % blue.port], "green": [blue]},
                           {"blue": 100, "green": 0})
    s = shares(cx.port, 50)
    check(s == {"blue": 50}, "localhost endpoint at start: %r", s)
    with Ctl(path) as c:
        _, st = c.status()
    eps = [e["address"] for e in st["pools"]["blue"]["endpoints"]]
    check(eps == ["localhost:%d" % blue.port], "status shows the name as configured: %r", eps)
    check(not cx.events("dns_failed"), "dns_failed: %r", cx.events("dns_failed"))


def test_added_name_resolves_off_the_loop_and_takes_traffic():
    _localhost_is_127()
    blue, green = start_upstream("blue"), start_upstream("green")
    cx, path = start_proxy({"blue": [blue], "green": [green]}, {"blue": 0, "green": 100})
    with Ctl(path) as c:
        rep = c.call("add-endpoint", {"route": ROUTE, "pool": "blue",
                                      "endpoint": "localhost:%d" % green.port,
                                      "reason": "a name"})
        check(rep.get("ok") is True, "add-endpoint: %r", rep)
        rep = c.call("set-weights", {"route": ROUTE, "weights": {"blue": 100, "green": 0},
                                     "reason": "to the name"})
        check(rep.get("ok") is True, "set-weights: %r", rep)
        # blue now has two endpoints: blue (numeric) and localhost:<green's port>; once the
        # name has answered, both take requests.
        def both():
            s = shares(cx.port, 40)
            return s.get("green", 0) > 0 and s.get("blue", 0) > 0 and s
        s = wait_until(both, 5.0, interval=0.05, what="the added name taking requests")
        check(set(s) == {"blue", "green"}, "shares: %r", s)
        t0 = time.monotonic()
        check(c.call("version").get("ok") is True, "version after add-endpoint")
        check(time.monotonic() - t0 < 2.0, "the control socket answered slowly")
    check(not cx.events("dns_failed"), "dns_failed: %r", cx.events("dns_failed"))

#!/usr/bin/env python3
"""instr.py - instructions per request by protocol pair, under callgrind, for cutover and the
anchors (HAProxy, nginx, nghttpx, h2o).

    instr.py --cutover build/cutover --origin build/bench/origin [--n1 200] [--n2 1200]
             [--pairs h1-h1,h2c-h1,h1-h2c,h2c-h2c,h2tls-h1]
             [--proxies cutover,haproxy,nginx,nghttpx,haproxy-h2up,nghttpx-h2up]
             [--jobs 2] [--dir /tmp/instr] [--json out.json] [--path /size/65536]

For each pair (client protocol - upstream protocol) and proxy, the proxy runs under
`valgrind --tool=callgrind` with one worker/thread (cutover -w 1; haproxy -db, nbthread 1;
nginx master_process off, daemon off; nghttpx --single-process --workers=1; h2o num-threads 1);
a client sends n1 sequential keep-alive requests (one connection, one request at a time), then
in a separate run n2. Instructions per request = (total(n2) - total(n1)) / (n2 - n1), so start-
up, configuration, the TLS handshake and shutdown cancel out. Every request is a GET of --path
("/", a 5-byte body; the origins answer /size/N with N bytes, to weigh the body's path). Clients: HTTP/1.1, a socket loop
(bench.py's `sequential`); h2c with prior knowledge, `h2load -n N -c 1 -m 1`; h2tls, the same
over TLS 1.3 (ALPN h2, TLS_AES_128_GCM_SHA256, the run's ECDSA P-256 certificate).

Every proxy runs its configuration from bench/anchors (bench.py's start_proxy: the same header
work as in the throughput scenarios, 90/10 between the blue and green origins, access log off;
the TLS listener only in the h2tls pair). The upstream protocol of the pair picks the variant:
an h2c upstream is the "-h2up" configuration (cutover pools "protocol": "h2c", HAProxy servers
`proto h2`, nghttpx backends `proto=h2`). Columns: a name with "-h2up" only does the pairs with
an h2c upstream; a name without it does the pairs with an HTTP/1.1 upstream, and those with an
h2c upstream too when its -h2up variant is not a column of its own (cutover's column always
does: it is the pool's protocol). nginx 1.22 and h2o 2.2.5 cannot proxy to an HTTP/2 upstream:
n/a. The origins: bench/origin.c (`--origin PATH`, blue and green in one process) or h2o 2.2.5
(`--origin h2o`, see bench.py ORIGIN=h2o). Standard library only.

Runs --jobs callgrind processes at a time (instruction counts do not depend on the load).
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (configurations, processes, clients: one implementation)

PAIRS = ("h1-h1", "h2c-h1", "h1-h2c", "h2c-h2c", "h2tls-h1")
CLIENTS = ("h1", "h2c", "h2tls")
UPSTREAMS = ("h1", "h2c")
FAMILIES = ("cutover", "haproxy", "nginx", "nghttpx", "h2o")


def split_name(name):
    """"haproxy-h2up" -> ("haproxy", True)."""
    return (name[:-len("-h2up")], True) if name.endswith("-h2up") else (name, False)


def plan(proxies, pairs):
    """What each cell of the table is: ("run", kind) measures bench kind `kind`; ("na", why)
    cannot be done; ("see", why): measured in another column."""
    cells = {}
    for pair in pairs:
        client, up = pair.split("-")
        row = cells[pair] = {}
        for name in proxies:
            fam, variant = split_name(name)
            if up == "h2c" and fam in bench.NO_H2UP:
                row[name] = ("na", bench.NO_H2UP[fam])
            elif variant and up == "h1":
                row[name] = ("see", "a -h2up column speaks HTTP/2 to the origins; its proxy's "
                                    "HTTP/1.1-upstream configuration is the column without -h2up")
            elif not variant and up == "h2c" and f"{fam}-h2up" in proxies:
                row[name] = ("see", "HTTP/2 upstream: measured in the proxy's -h2up column")
            else:
                row[name] = ("run", f"{fam}-h2up" if up == "h2c" else fam)
    return cells


def h2load_count(url, n, tls):
    """n sequential GETs on one HTTP/2 connection (h2c prior knowledge, or TLS with ALPN h2).
    Returns the 2xx count; raises when TLS negotiated anything else than TLS 1.3, the bench's
    cipher and h2."""
    argv = ["h2load", "-n", str(n), "-c", "1", "-m", "1"]
    if tls:
        argv.append(f"--tls13-ciphers={bench.TLS13_CIPHER}")
    p = subprocess.run(argv + [url], capture_output=True, text=True, timeout=600)
    out = p.stdout + p.stderr
    m = re.search(r"status codes: (\d+) 2xx", out)
    if not m:
        raise RuntimeError(f"h2load output not understood:\n{out[-1000:]}")
    if tls:
        got = bench.parse_h2load(out)
        if (got.get("tls_protocol"), got.get("cipher"), got.get("alpn")) != \
                ("TLSv1.3", bench.TLS13_CIPHER, "h2"):
            raise RuntimeError(f"TLS negotiated {got.get('tls_protocol')} {got.get('cipher')} "
                               f"ALPN {got.get('alpn')}")
    return int(m.group(1))


def run_one(ctx, kind, pair, n):
    """One callgrind run of bench kind `kind` serving n requests of pair's client. Returns the
    total instruction count (every thread of the process)."""
    client = pair.split("-")[0]
    path = ctx.get("path", "/")
    out = os.path.join(ctx["dir"], f"callgrind-{kind}-{pair}-{n}.out")
    proc, port = bench.start_proxy(kind, ctx, cpu=None, valgrind=out, tls=client == "h2tls")
    try:
        if client == "h1":
            ok, _ = bench.sequential(port, n, path)
        elif client == "h2c":
            if split_name(kind)[0] == "nginx":
                port = ctx["h2c_port"][port]
            ok = h2load_count(f"http://127.0.0.1:{port}{path}", n, tls=False)
        else:
            ok = h2load_count(f"https://127.0.0.1:{ctx['tls_port'][port]}{path}", n, tls=True)
        if ok != n:
            raise RuntimeError(f"{ok}/{n} 2xx")
    finally:
        rc = proc.stop(grace=60, nudge=3)
    if rc not in (0, -15, 143):
        raise RuntimeError(f"{kind} exited with {rc} on SIGTERM (see {ctx['dir']})")
    return bench.callgrind_total(out)


def matrix(proxies, pairs, n1, n2, ctx, jobs=2, cutover=None, say=print):
    """Measures every ("run", kind) cell of plan(proxies, pairs) with n1 and n2 requests, `jobs`
    callgrind processes at a time. ctx: bench.py's context ({"dir", "blue", "green", "tls"}:
    the origins' ports and, for h2tls, bench.make_certs's files). Returns
    {"counts", "proxies", "pairs", "cells": {pair: {name: cell}}, "ratio": {pair: {...}}};
    a cell is {"kind", "totals", "instr_per_req"}, {"na": why} (the proxy cannot do the pair),
    {"see": why} (measured in another column) or {"error": what}."""
    if cutover:
        bench.CUTOVER = cutover
    ctx = dict(ctx)
    cells_plan = plan(proxies, pairs)
    todo = sorted({(v[1], pair) for pair, row in cells_plan.items() for v in row.values()
                   if v[0] == "run"}, key=lambda t: (pairs.index(t[1]), t[0]))
    lock = threading.Lock()
    done = {}
    t0 = time.time()

    def task(kind, pair, n):
        t = time.time()
        try:
            total = run_one(ctx, kind, pair, n)
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError,
                AttributeError) as e:
            total = e
        with lock:
            done[(kind, pair, n)] = total
        if not isinstance(total, Exception):
            say(f"instr {pair} {kind}: {n} requests -> {total} instructions "
                f"({time.time() - t:.0f} s)")
        else:
            say(f"instr {pair} {kind}: {n} requests -> ERROR {total}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        futs = [ex.submit(task, kind, pair, n) for kind, pair in todo for n in (n1, n2)]
        for f in futs:
            f.result()
    cells, ratios = {}, {}
    for pair, row in cells_plan.items():
        cells[pair] = {}
        for name, (what, arg) in row.items():
            if what == "na":
                cells[pair][name] = {"na": arg}
            elif what == "see":
                cells[pair][name] = {"see": arg}
            else:
                t = [done.get((arg, pair, n)) for n in (n1, n2)]
                bad = [x for x in t if isinstance(x, Exception) or x is None]
                if bad:
                    cells[pair][name] = {"kind": arg, "error": str(bad[0])}
                else:
                    cells[pair][name] = {"kind": arg, "totals": t,
                                         "instr_per_req": (t[1] - t[0]) / (n2 - n1)}
        ratios[pair] = row_ratio(cells[pair])
    return {"counts": [n1, n2], "proxies": list(proxies), "pairs": list(pairs), "cells": cells,
            "ratio": ratios, "elapsed_s": round(time.time() - t0, 1)}


# Not a "best anchor": h2o 2.2 does less per request (no split, no forwarded headers, no
# request id: bench/README.md), so its column is shown but not divided by.
NOT_COMPARED = ("h2o",)


def row_ratio(row):
    """cutover's instructions/request divided by the lowest anchor's of the same pair (HAProxy,
    nginx, nghttpx and their -h2up variants; not h2o, see NOT_COMPARED)."""
    vals = {n: c["instr_per_req"] for n, c in row.items() if "instr_per_req" in c}
    cut = [v for n, v in vals.items() if split_name(n)[0] == "cutover"]
    anchors = {n: v for n, v in vals.items()
               if split_name(n)[0] not in ("cutover",) + NOT_COMPARED}
    if not cut or not anchors:
        return {}
    best = min(anchors, key=anchors.get)
    return {"cutover": cut[0], "best_anchor": best, "best_anchor_instr": anchors[best],
            "ratio": cut[0] / anchors[best]}


def table(res):
    """Markdown lines: pair x proxy, instructions/request, and cutover / best anchor."""
    names = res["proxies"]
    notes = []
    L = ["| client → upstream | " + " | ".join(names) + " | cutover ÷ best anchor |",
         "|---|" + "---:|" * (len(names) + 1)]
    for pair in res["pairs"]:
        row = res["cells"][pair]
        out = []
        for name in names:
            c = row[name]
            if "instr_per_req" in c:
                out.append(f"{c['instr_per_req']:,.0f}")
            elif "see" in c or "na" in c:
                why = c.get("see") or c["na"]
                if why not in notes:
                    notes.append(why)
                out.append(f"{'–' if 'see' in c else 'n/a'} [{notes.index(why) + 1}]")
            else:
                out.append("error")
        r = res["ratio"].get(pair) or {}
        out.append(f"{r['ratio']:.2f} ({r['best_anchor']})" if r else "n/a")
        L.append(f"| {pair.replace('-', ' → ')} | " + " | ".join(out) + " |")
    L += [""] + [f"[{i + 1}] {n}" for i, n in enumerate(notes)]
    if any(split_name(n)[0] in NOT_COMPARED for n in names):
        L += ["", "The last column leaves h2o out: h2o 2.2 proxies to blue only and adds no "
                  "forwarded headers or request id, so it does less work per request."]
    errs = [f"{pair} {name}: {c['error']}" for pair in res["pairs"]
            for name, c in res["cells"][pair].items() if "error" in c]
    if errs:
        L += [""] + [f"error: {e}" for e in errs]
    return L


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cutover", required=True)
    ap.add_argument("--origin", required=True,
                    help="the bench origin binary (bench/origin.c), or h2o")
    ap.add_argument("--n1", type=int, default=200)
    ap.add_argument("--n2", type=int, default=1200)
    ap.add_argument("--pairs", default="h1-h1,h2c-h1,h1-h2c,h2c-h2c")
    ap.add_argument("--proxies", default="cutover")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--dir", default="/tmp/instr")
    ap.add_argument("--json")
    ap.add_argument("--path", default="/", help="the path every request GETs (/size/N: N bytes)")
    args = ap.parse_args()
    if not args.path.startswith("/"):
        ap.error("--path must start with /")
    pairs = [p for p in args.pairs.split(",") if p]
    proxies = [p for p in args.proxies.split(",") if p]
    for p in pairs:
        c, _, u = p.partition("-")
        if c not in CLIENTS or u not in UPSTREAMS:
            ap.error(f"unknown pair {p} (client {'/'.join(CLIENTS)}, upstream "
                     f"{'/'.join(UPSTREAMS)})")
    for p in proxies:
        if split_name(p)[0] not in FAMILIES:
            ap.error(f"unknown proxy {p} ({', '.join(FAMILIES)}, optionally -h2up)")
    os.makedirs(args.dir, exist_ok=True)
    ctx = {"dir": args.dir, "path": args.path}
    if any(p.startswith("h2tls") for p in pairs):
        ctx["tls"] = bench.make_certs(args.dir)
    server = "h2o" if args.origin == "h2o" else "origin"
    origins = bench.start_origins(args.dir, server=server,
                                  binary=None if server == "h2o" else args.origin, cpu=None)
    ctx["blue"], ctx["green"] = origins[0][1], origins[1][1]
    try:
        res = matrix(proxies, pairs, args.n1, args.n2, ctx, jobs=args.jobs,
                     cutover=args.cutover)
    finally:
        origins[0][0].stop(grace=5)
    res["origin"] = bench.ORIGIN_LABELS[server]
    for pair in pairs:
        for name, c in res["cells"][pair].items():
            if "instr_per_req" in c:
                print(f"{pair} {name}: {c['totals'][0]} / {c['totals'][1]} instructions -> "
                      f"{c['instr_per_req']:.0f} instructions/request")
    print(f"\ninstructions/request, ({args.n2} - {args.n1}) sequential GETs of {args.path}, origin "
          f"{res['origin']}, {res['elapsed_s']} s\n")
    print("\n".join(table(res)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 1 if any("error" in c for row in res["cells"].values() for c in row.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

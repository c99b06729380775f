#!/usr/bin/env python3
"""instr.py - instructions per request of the cutover binary by protocol pair, under callgrind.

    instr.py --cutover build-up/cutover --origin build-up/origin [--n1 200] [--n2 1200]
             [--pairs h1-h1,h2c-h1,h1-h2c,h2c-h2c] [--dir /tmp/instr] [--json out.json]

For each pair (client protocol - upstream protocol) cutover runs under
`valgrind --tool=callgrind` with one worker; a client sends n1 sequential keep-alive requests
(one connection, one request at a time), then in a separate run n2. Instructions per request =
(total(n2) - total(n1)) / (n2 - n1), so start-up, configuration and shutdown cancel out.
The client speaks HTTP/1.1 (a socket loop like bench.py's `sequential`) or h2c with prior
knowledge (`h2load -n N -c 1 -m 1`, nghttp2-client). The route's pools (blue at weight 100,
green at 0: a route needs two) have one endpoint, the
bench origin (bench/origin.c), with "protocol" "http1" or "h2c". The configuration has the
shape of bench/anchors/cutover.json.tmpl (access log off). Standard library only.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} not ready after {timeout} s")


def stop(proc, grace):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def config(port, origin_port, upstream):
    return {
        "cluster": "bench",
        "region": "local",
        "workers": 1,
        "listeners": [{"name": "bench", "address": f"127.0.0.1:{port}"}],
        "timeouts": {"client_idle_ms": 300000, "upstream_idle_ms": 50000},
        "limits": {"max_connections": 12000, "upstream_idle_per_endpoint": 1024},
        "access_log": {"enabled": False},
        "routes": [{
            "name": "bench",
            "path_prefix": "/",
            "pools": {name: {"endpoints": [f"127.0.0.1:{origin_port}"],
                             "protocol": "h2c" if upstream == "h2c" else "http1"}
                      for name in ("blue", "green")},
            "weights": {"blue": 100, "green": 0},
        }],
    }


def h1_sequential(port, n):
    """n sequential GETs on one keep-alive HTTP/1.1 connection; returns how many got a 2xx."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    buf, ok = b"", 0
    for _ in range(n):
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise RuntimeError("connection closed")
            buf += d
        head, _, buf = buf.partition(b"\r\n\r\n")
        clen = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head).group(1))
        while len(buf) < clen:
            d = s.recv(65536)
            if not d:
                raise RuntimeError("connection closed")
            buf += d
        buf = buf[clen:]
        if head.startswith(b"HTTP/1.1 2"):
            ok += 1
    s.close()
    return ok


def h2c_sequential(port, n):
    """n sequential GETs on one h2c (prior knowledge) connection with h2load; returns the 2xx."""
    out = subprocess.run(["h2load", "-n", str(n), "-c", "1", "-m", "1",
                          f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"status codes: (\d+) 2xx", out)
    if not m:
        raise RuntimeError(f"h2load output not understood:\n{out}")
    return int(m.group(1))


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def run_one(args, pair, n, origin_port):
    client, upstream = pair.split("-")
    port = free_port()
    cfg_path = os.path.join(args.dir, f"cutover-{pair}-{n}.json")
    with open(cfg_path, "w") as f:
        json.dump(config(port, origin_port, upstream), f)
    out = os.path.join(args.dir, f"callgrind-{pair}-{n}.out")
    log = open(os.path.join(args.dir, f"cutover-{pair}-{n}.log"), "w")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-line=no",
            "--dump-instr=no", "--trace-children=no", args.cutover, "-c", cfg_path, "-w", "1"]
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, p, 60)
        ok = (h1_sequential if client == "h1" else h2c_sequential)(port, n)
        if ok != n:
            raise RuntimeError(f"{pair}: {ok}/{n} 2xx")
    finally:
        stop(p, 60)
        log.close()
    return callgrind_total(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cutover", required=True)
    ap.add_argument("--origin", required=True)
    ap.add_argument("--n1", type=int, default=200)
    ap.add_argument("--n2", type=int, default=1200)
    ap.add_argument("--pairs", default="h1-h1,h2c-h1,h1-h2c,h2c-h2c")
    ap.add_argument("--dir", default="/tmp/instr")
    ap.add_argument("--json")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    oport = free_port()
    olog = open(os.path.join(args.dir, "origin.log"), "w")
    origin = subprocess.Popen([args.origin, "--listen", f"{oport}:blue"], stdout=olog,
                              stderr=subprocess.STDOUT)
    results = {}
    try:
        wait_port(oport, origin, 10)
        for pair in args.pairs.split(","):
            t = [run_one(args, pair, n, oport) for n in (args.n1, args.n2)]
            per = (t[1] - t[0]) / (args.n2 - args.n1)
            results[pair] = {"counts": [args.n1, args.n2], "totals": t, "instr_per_req": per}
            print(f"{pair}: {t[0]} / {t[1]} instructions -> {per:.0f} instructions/request",
                  flush=True)
    finally:
        stop(origin, 5)
        olog.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

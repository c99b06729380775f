#!/usr/bin/env python3
"""upstream.py - a test origin server for the cutover integration tests.

Raw HTTP/1.1 over asyncio streams (keep-alive, pipelining, chunked both ways), run as its own
process:

    python3 upstream.py --port P --name blue --log FILE

Prints "ready" on stdout once listening. Every response carries "x-upstream: NAME".

Endpoints (the dispatch uses the path without its query string):
  GET  (anything else)  200 "NAME\\n" (a request body, if any, is read and discarded)
  GET  /size/N          N bytes of pattern() with Content-Length
  GET  /chunked/N       N bytes of pattern(), chunked, chunks of varying sizes
  POST|PUT /echo        the body streamed back as it arrives (Content-Length when the request had
                        one, chunked otherwise), never held in memory as a whole
  *    /sha256          JSON {"sha256": hex, "length": n} of the request body (CL or chunked)
  *    /slow/MS         waits MS milliseconds, then 200 "NAME\\n"
  *    /hangup          200 "NAME\\n" without Connection: close, then closes the connection (a
                        keep-alive connection the upstream drops while the proxy pools it)
  *    /headers         JSON of the request line and header fields as received
  *    /status/N        status N (204 and 304 without a body)
  GET  /healthz[/...]   with --health-file F: 200 "ok" while F contains "ok", 503 otherwise
                        (a test flips the health without restarting the upstream)
  GET  /ws + Upgrade: websocket
                        101 Switching Protocols, then echoes raw bytes (a plain byte tunnel)
  Expect: 100-continue  "HTTP/1.1 100 Continue" is sent before the body is read.
  HEAD                  like GET, without the body.

One JSON line per request is appended to --log at the arrival of its head:
  {"t": time.time(), "name", "method", "path", "version", "headers": {lower-name: value, ...},
   "conn": connection serial, "peer": "ip:port"}
(duplicate field names are joined with ", ").
"""
import argparse
import asyncio
import base64
import hashlib
import json
import signal
import ssl
import sys
import time

# --- the deterministic download pattern (harness.py has the same definition) -----------------
# byte i = (i % 251) ^ ((i // 251) % 256): repeats every 251*256 bytes, so a shifted, duplicated
# or dropped stretch of a few hundred bytes changes the checksum and is visible on inspection.
_CYCLE_LEN = 251 * 256
_CYCLE = bytes(((i % 251) ^ ((i // 251) % 256)) for i in range(_CYCLE_LEN))
_CYCLE3 = _CYCLE * 3


def pattern_slice(offset, n):
    """n bytes of the pattern starting at offset, n <= 2 * _CYCLE_LEN."""
    assert n <= 2 * _CYCLE_LEN
    o = offset % _CYCLE_LEN
    return _CYCLE3[o:o + n]


CHUNK_SIZES = (1, 7, 100, 4096, 65536, 3, 1000, 16384, 8191, 31)
READ_CHUNK = 65536
MAX_HEAD = 1 << 20

REASONS = {100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted",
           204: "No Content", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
           400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


class BadRequest(Exception):
    pass


class Request:
    def __init__(self, method, target, version, raw_headers):
        self.method = method
        self.target = target
        self.version = version
        self.raw_headers = raw_headers  # [(name, value)] as received
        self.headers = {}
        for n, v in raw_headers:
            k = n.lower()
            self.headers[k] = self.headers[k] + ", " + v if k in self.headers else v
        self.path = target.split("?", 1)[0]

    def get(self, name, default=None):
        return self.headers.get(name, default)

    def tokens(self, name):
        return [t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()]


def parse_head(data):
    text = data.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("bad request line %r" % lines[0][:200])
    headers = []
    for line in lines[1:]:
        if line == "":
            continue
        if line[0] in " \t" and headers:  # obs-fold: kept visible, joined with a space
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        if ":" not in line:
            raise BadRequest("bad header line %r" % line[:200])
        n, v = line.split(":", 1)
        headers.append((n, v.strip(" \t")))
    return Request(parts[0], parts[1], parts[2], headers)


class Body:
    """Reads a request body (Content-Length, chunked or none) in pieces."""

    def __init__(self, reader, req):
        self.reader = reader
        te = req.tokens("transfer-encoding")
        self.chunked = bool(te) and te[-1] == "chunked"
        self.length = None
        if not self.chunked:
            cl = req.get("content-length")
            if cl is not None:
                try:
                    self.length = int(cl.split(",")[0].strip())
                except ValueError:
                    raise BadRequest("bad content-length %r" % cl)
        self.remaining = self.length or 0
        self.chunk_left = 0
        self.done = not self.chunked and not self.remaining

    async def read(self):
        """Returns the next piece of the body, b"" at its end."""
        if self.done:
            return b""
        if not self.chunked:
            data = await self.reader.read(min(READ_CHUNK, self.remaining))
            if not data:
                raise BadRequest("body ended early")
            self.remaining -= len(data)
            if self.remaining == 0:
                self.done = True
            return data
        while self.chunk_left == 0:
            line = await self.reader.readuntil(b"\n")
            size_txt = line.split(b";", 1)[0].strip()
            try:
                size = int(size_txt, 16)
            except ValueError:
                raise BadRequest("bad chunk size %r" % line[:100])
            if size == 0:
                while True:  # trailer section
                    t = await self.reader.readuntil(b"\n")
                    if t in (b"\r\n", b"\n"):
                        break
                self.done = True
                return b""
            self.chunk_left = size
        data = await self.reader.read(min(READ_CHUNK, self.chunk_left))
        if not data:
            raise BadRequest("body ended early")
        self.chunk_left -= len(data)
        if self.chunk_left == 0:
            crlf = await self.reader.readuntil(b"\n")
            if crlf not in (b"\r\n", b"\n"):
                raise BadRequest("missing CRLF after chunk data")
        return data

    async def drain(self):
        n = 0
        while True:
            d = await self.read()
            if not d:
                return n
            n += len(d)


class Server:
    def __init__(self, name, log_path, health_file=None):
        self.name = name
        self.health_file = health_file
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.conn_serial = 0

    def log_request(self, req, conn_id, peer, tls=None):
        if not self.log:
            return
        rec = {"t": time.time(), "name": self.name, "method": req.method, "path": req.target,
               "version": req.version, "headers": req.headers, "conn": conn_id, "peer": peer}
        if tls is not None:
            rec["tls"] = tls
        self.log.write(json.dumps(rec) + "\n")
        self.log.flush()

    def head_bytes(self, status, headers, keep):
        out = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        out.append("x-upstream: " + self.name)
        for n, v in headers:
            out.append("%s: %s" % (n, v))
        if not keep:
            out.append("Connection: close")
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")

    async def simple(self, writer, req, status, body, ctype="text/plain", keep=True, extra=()):
        headers = list(extra)
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            headers.append(("Content-Type", ctype))
            headers.append(("Content-Length", str(len(body))))
        writer.write(self.head_bytes(status, headers, keep))
        if req.method != "HEAD" and body:
            writer.write(body)
        await writer.drain()

    async def handle(self, reader, writer):
        self.conn_serial += 1
        conn_id = self.conn_serial
        peer = writer.get_extra_info("peername")
        peer = "%s:%s" % (peer[0], peer[1]) if peer else "?"
        tls = None
        so = writer.get_extra_info("ssl_object")
        if so is not None:  # what cutover presented: SNI, client certificate, resumption
            cert = so.getpeercert()
            subject = ",".join("%s=%s" % kv for rdn in (cert or {}).get("subject", ())
                               for kv in rdn)
            tls = {"sni": SNI.get(id(so)), "client_cert": subject or None,
                   "resumed": so.session_reused, "version": so.version(),
                   "alpn": so.selected_alpn_protocol()}
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # clean close between requests (or a partial head)
                except asyncio.LimitOverrunError:
                    writer.write(self.head_bytes(431, [("Content-Length", "0")], False))
                    await writer.drain()
                    return
                try:
                    req = parse_head(head)
                except BadRequest as e:
                    await self.simple(writer, Request("GET", "/", "HTTP/1.1", []), 400,
                                      (str(e) + "\n").encode(), keep=False)
                    return
                self.log_request(req, conn_id, peer, tls)
                conn_tokens = req.tokens("connection")
                if req.version == "HTTP/1.0":
                    keep = "keep-alive" in conn_tokens
                else:
                    keep = "close" not in conn_tokens
                try:
                    keep = await self.dispatch(req, reader, writer, keep) and keep
                except BadRequest as e:
                    try:
                        await self.simple(writer, req, 400, (str(e) + "\n").encode(), keep=False)
                    except Exception:
                        pass
                    return
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                BrokenPipeError, OSError):
            return
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def dispatch(self, req, reader, writer, keep):
        """Answers one request. Returns False when the connection must not be reused."""
        if "100-continue" in req.tokens("expect"):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        body = Body(reader, req)
        path = req.path
        seg = path.split("/")

        if path == "/ws" and "websocket" in req.tokens("upgrade"):
            await body.drain()
            extra = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
            key = req.get("sec-websocket-key")
            if key:
                acc = base64.b64encode(hashlib.sha1(
                    (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                extra.append(("Sec-WebSocket-Accept", acc))
            out = ["HTTP/1.1 101 Switching Protocols", "x-upstream: " + self.name]
            out += ["%s: %s" % kv for kv in extra]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode())
            await writer.drain()
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            return False

        if path == "/hangup":
            await body.drain()
            await self.simple(writer, req, 200, (self.name + "\n").encode())
            return False

        if path == "/echo" and req.method in ("POST", "PUT"):
            if body.chunked:
                writer.write(self.head_bytes(200, [("Content-Type", "application/octet-stream"),
                                                   ("Transfer-Encoding", "chunked")], keep))
                while True:
                    d = await body.read()
                    if not d:
                        break
                    writer.write(b"%x\r\n" % len(d) + d + b"\r\n")
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
            else:
                writer.write(self.head_bytes(200, [("Content-Type", "application/octet-stream"),
                                                   ("Content-Length", str(body.length or 0))],
                                             keep))
                while True:
                    d = await body.read()
                    if not d:
                        break
                    writer.write(d)
                    await writer.drain()
                await writer.drain()
            return True

        if path == "/sha256":
            h = hashlib.sha256()
            n = 0
            while True:
                d = await body.read()
                if not d:
                    break
                h.update(d)
                n += len(d)
            doc = {"sha256": h.hexdigest(), "length": n, "chunked": body.chunked}
            await self.simple(writer, req, 200, json.dumps(doc).encode(), "application/json", keep)
            return True

        await body.drain()

        if len(seg) == 3 and seg[1] in ("size", "chunked") and seg[2].isdigit():
            n = int(seg[2])
            if seg[1] == "size":
                writer.write(self.head_bytes(200, [("Content-Type", "application/octet-stream"),
                                                   ("Content-Length", str(n))], keep))
                if req.method != "HEAD":
                    off = 0
                    while off < n:
                        k = min(_CYCLE_LEN, n - off)
                        writer.write(pattern_slice(off, k))
                        off += k
                        await writer.drain()
                await writer.drain()
            else:
                writer.write(self.head_bytes(200, [("Content-Type", "application/octet-stream"),
                                                   ("Transfer-Encoding", "chunked")], keep))
                if req.method != "HEAD":
                    off = 0
                    i = 0
                    while off < n:
                        k = min(CHUNK_SIZES[i % len(CHUNK_SIZES)], n - off)
                        i += 1
                        writer.write(b"%x\r\n" % k + pattern_slice(off, k) + b"\r\n")
                        off += k
                        if i % 16 == 0:
                            await writer.drain()
                    writer.write(b"0\r\n\r\n")
                await writer.drain()
            return True

        if len(seg) == 3 and seg[1] == "slow" and seg[2].isdigit():
            await asyncio.sleep(int(seg[2]) / 1000.0)
            await self.simple(writer, req, 200, (self.name + "\n").encode(), keep=keep)
            return True

        if path == "/headers":
            doc = {"name": self.name, "method": req.method, "target": req.target,
                   "version": req.version, "headers": req.headers,
                   "raw_headers": [[n, v] for n, v in req.raw_headers]}
            await self.simple(writer, req, 200, json.dumps(doc).encode(), "application/json", keep)
            return True

        if self.health_file and (path == "/healthz" or path.startswith("/healthz/")):
            try:
                with open(self.health_file) as f:
                    healthy = f.read().strip() == "ok"
            except OSError:
                healthy = False
            await self.simple(writer, req, 200 if healthy else 503,
                              b"ok\n" if healthy else b"unhealthy\n", keep=keep)
            return True

        if len(seg) == 3 and seg[1] == "status" and seg[2].isdigit():
            st = int(seg[2])
            if not 200 <= st <= 999:
                raise BadRequest("status out of range")
            await self.simple(writer, req, st, (self.name + "\n").encode(), keep=keep)
            return True

        await self.simple(writer, req, 200, (self.name + "\n").encode(), keep=keep)
        return True


SNI = {}  # id(SSLObject) -> the server name the client sent


def tls_context(args):
    """--tls-cert/--tls-key: serve TLS; --tls-client-ca: require a client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_client_ca:
        ctx.load_verify_locations(args.tls_client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["http/1.1"])

    def on_sni(so, name, _ctx):
        SNI[id(so)] = name
    ctx.sni_callback = on_sni
    return ctx


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", default="upstream")
    ap.add_argument("--log", default=None)
    ap.add_argument("--tls-cert", default=None)
    ap.add_argument("--tls-key", default=None)
    ap.add_argument("--tls-client-ca", default=None)
    ap.add_argument("--health-file", default=None)
    args = ap.parse_args()
    srv = Server(args.name, args.log, args.health_file)
    server = await asyncio.start_server(srv.handle, args.host, args.port, limit=MAX_HEAD,
                                        backlog=1024, reuse_address=True,
                                        ssl=tls_context(args) if args.tls_cert else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    sys.exit(0)

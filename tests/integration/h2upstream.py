#!/usr/bin/env python3
"""h2upstream.py - an HTTP/2 test upstream (Debian's python3-h2) for the cutover tests.

    h2upstream.py --port P --name NAME [--log FILE] [--tls-cert F --tls-key F [--tls-client-ca F]]
                  [--max-streams N] [--goaway-after N] [--health-file F] [--chaos SEED]

Cleartext: HTTP/2 with prior knowledge (h2c). With --tls-cert: TLS, ALPN "h2" only.
Paths:
  /size/N         N bytes of 'x' (flow control respected)
  /echo           the request body back (streamed as it arrives), with x-body-sha256 in trailers
  /grpc/...       gRPC-shaped: content-type application/grpc, one length-prefixed message
                  "NAME:<request message>", trailers grpc-status 0 / grpc-message OK
  /ticks/N/MS     N DATA frames MS milliseconds apart (a long-lived stream), then the end
  /slow/MS        answers after MS milliseconds
  /status/N       status N
  /bighead/N      200 with a response field x-big of N bytes
  /healthz[/...]  with --health-file F: 200 "ok" while F contains "ok", 503 otherwise
  /drop-once      the first such request (per process): the whole body is read and logged, then
                  the TCP connection is aborted without a response; later ones: as "anything else"
  anything else   "NAME\\n"
Every request is logged as one JSON line: name, conn, stream, method, path, authority, scheme,
headers, body length and sha256, and the TLS view (sni, client certificate) when TLS.
--max-streams: SETTINGS_MAX_CONCURRENT_STREAMS. --goaway-after N: after N requests on a
connection, GOAWAY (last stream id = the Nth); later streams are refused (REFUSED_STREAM).
--chaos SEED: misbehaves on purpose, per connection (seeded): GOAWAY after a few requests,
TCP reset (abort) at a request, RST_STREAM of some streams (REFUSED_STREAM, INTERNAL_ERROR,
CANCEL), and closing idle connections after 50-400 ms (GOAWAY then close, or a TCP reset).
Prints "ready" once listening; exits 0 on SIGTERM.
"""
import argparse
import asyncio
import hashlib
import json
import random
import signal
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

SNI = {}


class Conn:
    def __init__(self, srv, reader, writer, conn_id):
        self.srv, self.reader, self.writer, self.id = srv, reader, writer, conn_id
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                        validate_inbound_headers=True)
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.streams = {}  # id -> dict(headers, body hasher, length, queue)
        self.window = asyncio.Event()
        self.requests = 0
        self.closing = False
        self.tls = None
        self.goaway_after = srv.goaway_after
        self.abort_at = 0
        self.reset_p = 0.0
        self.idle_close = 0.0
        if srv.chaos:
            rng = self.rng = random.Random(srv.chaos * 100003 + conn_id)
            if rng.random() < 0.3:
                self.goaway_after = rng.randint(1, 30)
            if rng.random() < 0.2:
                self.abort_at = rng.randint(1, 40)
            self.reset_p = rng.choice((0.0, 0.0, 0.05, 0.2))
            if rng.random() < 0.5:
                self.idle_close = rng.randint(50, 400) / 1000.0
        so = writer.get_extra_info("ssl_object")
        if so is not None:
            cert = so.getpeercert()
            subject = ",".join("%s=%s" % kv for rdn in (cert or {}).get("subject", ())
                               for kv in rdn)
            self.tls = {"sni": SNI.get(id(so)), "client_cert": subject or None,
                        "alpn": so.selected_alpn_protocol()}

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.writer.write(data)

    async def run(self):
        self.h2.initiate_connection()
        if self.srv.max_streams:
            self.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS:
                                     self.srv.max_streams})
        self.flush()
        try:
            while True:
                if self.idle_close and not self.streams:
                    try:
                        data = await asyncio.wait_for(self.reader.read(65536), self.idle_close)
                    except asyncio.TimeoutError:
                        self.chaos_idle_close()
                        break
                else:
                    data = await self.reader.read(65536)
                if not data:
                    break
                for ev in self.h2.receive_data(data):
                    if self.writer.transport.is_closing():
                        break  # --chaos aborted it
                    self.on_event(ev)
                if self.writer.transport.is_closing():
                    break
                self.flush()
                await self.writer.drain()
        except ConnectionError:
            pass
        except h2.exceptions.ProtocolError as e:
            print("h2upstream: connection %d: %r" % (self.id, e), file=sys.stderr, flush=True)
        finally:
            for st in self.streams.values():
                st["queue"].put_nowait(None)
            self.writer.close()

    def goaway_frame(self, last_id, code=0):
        return struct.pack(">I", 8)[1:] + bytes([7, 0]) + struct.pack(">III", 0, last_id, code)

    def chaos_idle_close(self):
        """--chaos: an idle connection goes, politely (GOAWAY, close) or by a TCP reset."""
        if self.rng.random() < 0.5:
            self.writer.transport.abort()
        else:
            self.flush()
            self.writer.write(self.goaway_frame(self.h2.highest_inbound_stream_id or 0))
            self.writer.close()

    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            if self.closing:  # after our GOAWAY: never processed (the client may retry it)
                self.h2.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                return
            self.requests += 1
            if self.abort_at and self.requests == self.abort_at:
                self.writer.transport.abort()  # --chaos: a TCP reset, streams in flight and all
                return
            if self.reset_p and self.rng.random() < self.reset_p:
                self.h2.reset_stream(ev.stream_id, self.rng.choice(
                    (h2.errors.ErrorCodes.REFUSED_STREAM, h2.errors.ErrorCodes.INTERNAL_ERROR,
                     h2.errors.ErrorCodes.CANCEL)))
                return
            hdrs = dict(ev.headers)
            st = {"headers": ev.headers, "sha": hashlib.sha256(), "len": 0,
                  "queue": asyncio.Queue(), "ended": False}
            self.streams[ev.stream_id] = st
            asyncio.ensure_future(self.respond(ev.stream_id, hdrs, st))
            if self.goaway_after and self.requests == self.goaway_after:
                # A graceful GOAWAY written as a raw frame: h2's close_connection() would end
                # its state machine, and the streams still being answered need it.
                self.flush()
                self.writer.write(self.goaway_frame(ev.stream_id))
                self.closing = True
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if st is not None:
                st["sha"].update(ev.data)
                st["len"] += len(ev.data)
                st["queue"].put_nowait(ev.data)
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st["ended"] = True
                st["queue"].put_nowait(None)
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.pop(ev.stream_id, None)
            if st is not None:
                st["reset"] = True
                st["queue"].put_nowait(None)
        elif isinstance(ev, h2.events.WindowUpdated):
            self.window.set()

    async def send_data(self, sid, data, end=False):
        """Sends data on sid within the flow-control windows."""
        view = memoryview(data)
        while view:
            room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if room <= 0:
                self.window.clear()
                await self.window.wait()
                continue
            self.h2.send_data(sid, bytes(view[:room]))
            view = view[room:]
            self.flush()
            await self.writer.drain()
        if end:
            self.h2.end_stream(sid)
            self.flush()

    async def body(self, st):
        """Waits for the whole request body."""
        while True:
            d = await st["queue"].get()
            if d is None:
                return

    def log(self, sid, hdrs, st):
        rec = {"t": time.time(), "name": self.srv.name, "conn": self.id, "stream": sid,
               "method": hdrs.get(":method"), "path": hdrs.get(":path"),
               "authority": hdrs.get(":authority"), "scheme": hdrs.get(":scheme"),
               "headers": [[k, v] for k, v in st["headers"] if not k.startswith(":")],
               "body_len": st["len"], "body_sha256": st["sha"].hexdigest(), "tls": self.tls}
        self.srv.log(rec)

    async def respond(self, sid, hdrs, st):
        path = hdrs.get(":path", "/").split("?", 1)[0]  # the query does not choose
        name = self.srv.name
        try:
            if path == "/echo":
                self.h2.send_headers(sid, [(":status", "200"),
                                           ("content-type", "application/octet-stream")])
                self.flush()
                while True:
                    d = await st["queue"].get()
                    if d is None:
                        break
                    await self.send_data(sid, d)
                self.log(sid, hdrs, st)
                self.h2.send_headers(sid, [("x-body-sha256", st["sha"].hexdigest())],
                                     end_stream=True)
                self.flush()
                return
            await self.body(st)
            if st.get("reset"):
                return
            self.log(sid, hdrs, st)
            if path == "/drop-once" and not self.srv.dropped:
                self.srv.dropped = True
                self.writer.transport.abort()
                return
            if path.startswith("/bighead/"):
                body = (name + "\n").encode()
                self.h2.send_headers(sid, [(":status", "200"), ("x-big", "b" * int(path[9:])),
                                           ("content-length", str(len(body)))])
                await self.send_data(sid, body, end=True)
            elif path.startswith("/grpc/"):
                msg = (name + ":").encode()
                self.h2.send_headers(sid, [(":status", "200"),
                                           ("content-type", "application/grpc")])
                await self.send_data(sid, b"\x00" + struct.pack(">I", len(msg)) + msg)
                self.h2.send_headers(sid, [("grpc-status", "0"), ("grpc-message", "OK")],
                                     end_stream=True)
            elif path.startswith("/size/"):
                n = int(path[6:])
                self.h2.send_headers(sid, [(":status", "200"), ("content-length", str(n))])
                chunk = b"x" * 65536
                left = n
                while left > 0:
                    piece = chunk[:min(left, len(chunk))]
                    left -= len(piece)
                    await self.send_data(sid, piece, end=left == 0)
                if n == 0:
                    self.h2.end_stream(sid)
            elif path.startswith("/ticks/"):
                n, ms = (int(x) for x in path[7:].split("/"))
                self.h2.send_headers(sid, [(":status", "200")])
                for i in range(n):
                    await self.send_data(sid, b"tick %d\n" % i)
                    await asyncio.sleep(ms / 1000.0)
                self.h2.end_stream(sid)
            elif self.srv.health_file and (path == "/healthz" or path.startswith("/healthz/")):
                try:
                    with open(self.srv.health_file) as f:
                        healthy = f.read().strip() == "ok"
                except OSError:
                    healthy = False
                body = b"ok\n" if healthy else b"unhealthy\n"
                self.h2.send_headers(sid, [(":status", "200" if healthy else "503"),
                                           ("content-length", str(len(body)))])
                await self.send_data(sid, body, end=True)
            elif path.startswith("/slow/"):
                await asyncio.sleep(int(path[6:]) / 1000.0)
                body = (name + "\n").encode()
                self.h2.send_headers(sid, [(":status", "200"),
                                           ("content-length", str(len(body)))])
                await self.send_data(sid, body, end=True)
            else:
                status = int(path[8:]) if path.startswith("/status/") else 200
                body = (name + "\n").encode()
                self.h2.send_headers(sid, [(":status", str(status)),
                                           ("content-length", str(len(body))),
                                           ("x-upstream", name)])
                await self.send_data(sid, body, end=True)
            self.flush()
            await self.writer.drain()
        except (h2.exceptions.StreamClosedError, ConnectionError):
            pass
        finally:
            self.streams.pop(sid, None)
            self.flush()
            # After GOAWAY the connection stays open: refused streams still get their
            # RST_STREAM, and the client closes it once its streams are done (closing with
            # unread input would reset the TCP connection and could lose the GOAWAY).


class Server:
    def __init__(self, args):
        self.name = args.name
        self.max_streams = args.max_streams
        self.goaway_after = args.goaway_after
        self.health_file = args.health_file
        self.chaos = args.chaos
        self.logf = open(args.log, "a", buffering=1) if args.log else None
        self.serial = 0
        self.dropped = False

    def log(self, rec):
        if self.logf:
            self.logf.write(json.dumps(rec) + "\n")

    async def handle(self, reader, writer):
        self.serial += 1
        await Conn(self, reader, writer, self.serial).run()


def tls_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_client_ca:
        ctx.load_verify_locations(args.tls_client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])

    def on_sni(so, name, _ctx):
        SNI[id(so)] = name
    ctx.sni_callback = on_sni
    return ctx


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="h2upstream")
    ap.add_argument("--log")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca")
    ap.add_argument("--max-streams", type=int, default=0)
    ap.add_argument("--goaway-after", type=int, default=0)
    ap.add_argument("--health-file")
    ap.add_argument("--chaos", type=int, default=0)
    args = ap.parse_args()
    srv = Server(args)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", args.port, backlog=1024,
                                        reuse_address=True,
                                        ssl=tls_context(args) if args.tls_cert else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)

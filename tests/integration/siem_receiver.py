#!/usr/bin/env python3
"""siem_receiver.py - a TLS syslog receiver (a stand-in for QRadar's TLS Syslog log source) for
the cutover integration tests. Python 3.11 standard library only.

    siem_receiver.py --port P --log FILE --tls-cert F --tls-key F [--tls-client-ca F]
                     [--framing octet-counting|newline] [--no-read] [--host 127.0.0.1]

Listens on 127.0.0.1:P with TLS (1.2 or later; a client certificate signed by --tls-client-ca is
required when that option is given; no ALPN), prints "ready" on stdout once listening and exits
0 on SIGTERM (or SIGINT).

Framing (one connection carries many messages):
  octet-counting  RFC 5425/6587: MSG-LEN SP SYSLOG-MSG, MSG-LEN = NONZERO-DIGIT *DIGIT (at most 9
                  digits, so at most 999999999; a message over 16 MiB is refused too)
  newline         each message ends with LF (the LF is not part of the message)

For every complete message one JSON line is appended to --log:
  {"t": time.time(), "conn": connection serial (1, 2, ...), "raw": the message text,
   "client_cert": subject of the client certificate ("commonName=client one", the form
   upstream.py logs) or null, "framing_ok": true, "utf8_ok": bool, "bytes": message length in
   bytes, "sni": the server name the client sent or null, "tls_version": "TLSv1.3"}
A framing violation (octet-counting: a length that is not "NONZERO-DIGIT *DIGIT" followed by one
SP, or too long; newline: a line over 16 MiB) logs one record with "framing_ok": false and "raw"
the bytes received from the violation on (at most 4096, decoded with backslash escapes), then
closes the connection. Bytes left over when the client closes the connection in the middle of a
message are logged the same way, with "framing_ok": false and "eof": true.
"raw" is the message decoded as UTF-8; when that fails it is decoded with backslash escapes and
"utf8_ok" is false.

Connections are also reported on stderr, one line each: "accept CONN PEER", "handshake CONN
ok SUBJECT" / "handshake CONN failed REASON", "close CONN" (the tests count attempts with it).

--no-read: accept TCP connections and keep them open, but never do the TLS handshake nor read
(a SIEM that is stuck: the client's connect succeeds, its handshake and writes never do).

The module also exposes strict parsers for the tests:
  parse_rfc5424(raw) -> dict(pri, facility, severity, version, timestamp, hostname, app,
                             procid, msgid, sd, msg, bom)
  parse_leef(msg)    -> (header dict: version, vendor, product, product_version, event_id,
                         delimiter (the character), delimiter_field (as written)),
                        attrs: [(key, value), ...] in order)
Both raise ValueError on anything that does not follow the grammar.
"""
import argparse
import datetime
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time

# --- parsers (importable) ---------------------------------------------------------------------

NILVALUE = "-"
MAX_MSG_BYTES = 16 << 20
_TS = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z\Z")


def _printusascii(s, lo, hi, what):
    """RFC 5424 PRINTUSASCII (%d33-126), lo..hi characters."""
    if not (lo <= len(s) <= hi):
        raise ValueError("%s must be %d..%d characters, got %d: %r" % (what, lo, hi, len(s), s))
    for ch in s:
        if not 33 <= ord(ch) <= 126:
            raise ValueError("%s has a character outside PRINTUSASCII (%r): %r" % (what, ch, s))
    return s


def _field(rest, what):
    """The next SP-terminated header field of rest: (field, the rest after the SP)."""
    i = rest.find(" ")
    if i < 0:
        raise ValueError("no SP after %s in %r" % (what, rest[:300]))
    return rest[:i], rest[i + 1:]


def parse_rfc5424(raw):
    """Parses one RFC 5424 SYSLOG-MSG (a str) strictly:

        SYSLOG-MSG = HEADER SP STRUCTURED-DATA [SP MSG]
        HEADER     = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID

    with these constraints (what cutover documents it writes): PRI "<" 0..191 ">" without
    leading zeros, VERSION 1, TIMESTAMP "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, exactly milliseconds,
    a real date and time), HOSTNAME 1..255, APP-NAME 1..48, PROCID 1..128, MSGID 1..32
    PRINTUSASCII, STRUCTURED-DATA the NILVALUE "-". MSG: everything after the SP that follows
    STRUCTURED-DATA (a UTF-8 BOM at its start is removed and reported as "bom": true); "" when
    there is no MSG. Raises ValueError on anything else."""
    if not isinstance(raw, str):
        raise ValueError("raw must be a str, got %s" % type(raw).__name__)
    m = re.match(r"<(0|[1-9][0-9]{0,2})>", raw)
    if not m:
        raise ValueError("PRI: expected <0..191> without leading zeros at %r" % raw[:20])
    pri = int(m.group(1))
    if pri > 191:
        raise ValueError("PRI %d out of 0..191" % pri)
    rest = raw[m.end():]
    version, rest = _field(rest, "VERSION")
    if version != "1":
        raise ValueError("VERSION must be 1, got %r" % version)
    ts, rest = _field(rest, "TIMESTAMP")
    tm = _TS.match(ts)
    if not tm:
        raise ValueError("TIMESTAMP must be YYYY-MM-DDTHH:MM:SS.mmmZ, got %r" % ts)
    try:
        y, mo, d, h, mi, s, ms = (int(x) for x in tm.groups())
        datetime.datetime(y, mo, d, h, mi, s, ms * 1000)  # a real date and time (no leap second)
    except ValueError as e:
        raise ValueError("TIMESTAMP %r is not a valid date-time: %s" % (ts, e))
    hostname, rest = _field(rest, "HOSTNAME")
    _printusascii(hostname, 1, 255, "HOSTNAME")
    app, rest = _field(rest, "APP-NAME")
    _printusascii(app, 1, 48, "APP-NAME")
    procid, rest = _field(rest, "PROCID")
    _printusascii(procid, 1, 128, "PROCID")
    msgid, rest = _field(rest, "MSGID")
    _printusascii(msgid, 1, 32, "MSGID")
    if rest == NILVALUE:
        sd, msg = NILVALUE, ""
    elif rest.startswith(NILVALUE + " "):
        sd, msg = NILVALUE, rest[2:]
    else:
        raise ValueError("STRUCTURED-DATA must be \"-\" followed by SP MSG or the end, got %r"
                         % rest[:80])
    bom = msg.startswith("\ufeff")
    if bom:
        msg = msg[1:]
    return {"pri": pri, "facility": pri >> 3, "severity": pri & 7, "version": 1,
            "timestamp": ts, "hostname": hostname, "app": app, "procid": procid,
            "msgid": msgid, "sd": sd, "msg": msg, "bom": bom}


_LEEF_KEY_BAD = re.compile(r"[=\s]")


def parse_leef(msg):
    """Parses a LEEF 2.0 event strictly:

        LEEF:2.0|Vendor|Product|Version|EventID|DelimiterChar|key=value<d>key=value...

    Vendor, Product, Version and EventID are non-empty and contain no '|'. DelimiterChar is one
    character (not '|' nor '=') or its hex code "xHH" / "0xHH" (2 to 4 hex digits). The
    attributes are split on the delimiter; each one is key=value split at its first '=', with a
    non-empty key that has no '=' nor white space; an empty attribute (two delimiters in a row,
    or a trailing one) is an error. No attributes at all is allowed (nothing after the header).
    Returns (header, [(key, value), ...])."""
    if not isinstance(msg, str):
        raise ValueError("msg must be a str, got %s" % type(msg).__name__)
    parts = msg.split("|", 6)
    if len(parts) != 7:
        raise ValueError("LEEF header needs 6 '|'-terminated fields, got %d in %r"
                         % (len(parts) - 1, msg[:200]))
    magic, vendor, product, pversion, event_id, dfield, rest = parts
    if magic != "LEEF:2.0":
        raise ValueError("LEEF header must start with \"LEEF:2.0\", got %r" % magic)
    for what, v in (("Vendor", vendor), ("Product", product), ("Version", pversion),
                    ("EventID", event_id)):
        if not v:
            raise ValueError("LEEF header: empty %s in %r" % (what, msg[:200]))
    hm = re.match(r"(?:0x|x)([0-9A-Fa-f]{2,4})\Z", dfield)
    if hm:
        delim = chr(int(hm.group(1), 16))
    elif len(dfield) == 1:
        delim = dfield
    else:
        raise ValueError("LEEF delimiter must be one character or xHH / 0xHH, got %r" % dfield)
    if delim in ("|", "=") or delim == "":
        raise ValueError("LEEF delimiter %r is not allowed" % delim)
    attrs = []
    if rest != "":
        for i, piece in enumerate(rest.split(delim)):
            if piece == "":
                raise ValueError("LEEF attribute %d is empty (delimiter %r twice in a row or at "
                                 "the end) in %r" % (i, delim, rest[:300]))
            k, eq, v = piece.partition("=")
            if not eq:
                raise ValueError("LEEF attribute %d has no '=': %r" % (i, piece[:200]))
            if not k or _LEEF_KEY_BAD.search(k):
                raise ValueError("LEEF attribute %d: bad key %r" % (i, k))
            attrs.append((k, v))
    header = {"version": "2.0", "vendor": vendor, "product": product,
              "product_version": pversion, "event_id": event_id, "delimiter": delim,
              "delimiter_field": dfield}
    return header, attrs


# --- the receiver -------------------------------------------------------------------------------

class Receiver:
    def __init__(self, args):
        self.args = args
        self.log_lock = threading.Lock()
        self.err_lock = threading.Lock()
        self.serial = 0
        self.held = []  # --no-read: the accepted sockets, kept open
        self.logf = open(args.log, "a", encoding="utf-8")
        self.ctx = None
        self.sni = {}
        if not args.no_read:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            if args.tls_client_ca:
                ctx.load_verify_locations(args.tls_client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED

            def on_sni(so, name, _ctx):
                self.sni[id(so)] = name
            ctx.sni_callback = on_sni
            self.ctx = ctx

    def note(self, text):
        with self.err_lock:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def record(self, conn, data, info, framing_ok, eof=False):
        try:
            raw, utf8_ok = data.decode("utf-8"), True
        except UnicodeDecodeError:
            raw, utf8_ok = data.decode("utf-8", "backslashreplace"), False
        rec = {"t": time.time(), "conn": conn, "raw": raw, "client_cert": info.get("client_cert"),
               "framing_ok": framing_ok, "utf8_ok": utf8_ok, "bytes": len(data),
               "sni": info.get("sni"), "tls_version": info.get("tls_version")}
        if eof:
            rec["eof"] = True
        line = json.dumps(rec) + "\n"
        with self.log_lock:
            self.logf.write(line)
            self.logf.flush()

    def serve(self, lsock):
        while True:
            try:
                s, peer = lsock.accept()
            except OSError:
                return
            self.serial += 1
            conn = self.serial
            self.note("accept %d %s:%d" % (conn, peer[0], peer[1]))
            if self.args.no_read:
                self.held.append(s)  # never read, never answer, never close
                continue
            threading.Thread(target=self.connection, args=(s, conn), daemon=True).start()

    def connection(self, s, conn):
        info = {}
        ts = None
        try:
            s.settimeout(10.0)
            try:
                ts = self.ctx.wrap_socket(s, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.note("handshake %d failed %s" % (conn, e))
                return
            cert = ts.getpeercert()
            subject = ",".join("%s=%s" % kv for rdn in (cert or {}).get("subject", ())
                               for kv in rdn)
            # the SNI callback gets the SSLSocket itself (the one wrap_socket returns)
            info = {"client_cert": subject or None, "sni": self.sni.pop(id(ts), None),
                    "tls_version": ts.version()}
            self.note("handshake %d ok %s" % (conn, info["client_cert"]))
            ts.settimeout(None)
            self.read_loop(ts, conn, info)
        except Exception as e:  # noqa: BLE001 - a test tool: report and go on
            self.note("error %d %r" % (conn, e))
        finally:
            for x in (ts, s):
                try:
                    if x is not None:
                        x.close()
                except OSError:
                    pass
            self.note("close %d" % conn)

    def read_loop(self, ts, conn, info):
        buf = bytearray()
        newline = self.args.framing == "newline"
        while True:
            try:
                d = ts.recv(65536)
            except (ssl.SSLError, ConnectionResetError, OSError) as e:
                self.note("read %d ended: %r" % (conn, e))
                d = b""
            if not d:
                if buf:
                    self.record(conn, bytes(buf[:4096]), info, False, eof=True)
                return
            buf += d
            while True:
                if newline:
                    i = buf.find(b"\n")
                    if i < 0:
                        if len(buf) > MAX_MSG_BYTES:
                            self.record(conn, bytes(buf[:4096]), info, False)
                            return
                        break
                    self.record(conn, bytes(buf[:i]), info, True)
                    del buf[:i + 1]
                    continue
                # octet-counting: MSG-LEN SP MSG
                i = 0
                while i < len(buf) and i < 10 and 0x30 <= buf[i] <= 0x39:
                    i += 1
                if i == len(buf):
                    if i >= 10:  # ten digits: too long whatever follows
                        self.record(conn, bytes(buf[:4096]), info, False)
                        return
                    break  # need more bytes
                if i == 0 or buf[0] == 0x30 or i > 9 or buf[i] != 0x20:
                    self.record(conn, bytes(buf[:4096]), info, False)
                    return
                n = int(buf[:i])
                if n > MAX_MSG_BYTES:
                    self.record(conn, bytes(buf[:4096]), info, False)
                    return
                if len(buf) < i + 1 + n:
                    break
                self.record(conn, bytes(buf[i + 1:i + 1 + n]), info, True)
                del buf[:i + 1 + n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log", required=True)
    ap.add_argument("--tls-cert", required=True)
    ap.add_argument("--tls-key", required=True)
    ap.add_argument("--tls-client-ca", default=None)
    ap.add_argument("--framing", choices=("octet-counting", "newline"), default="octet-counting")
    ap.add_argument("--no-read", action="store_true")
    args = ap.parse_args()

    stop = threading.Event()

    def on_signal(_sig, _frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    rcv = Receiver(args)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.host, args.port))
    lsock.listen(128)
    threading.Thread(target=rcv.serve, args=(lsock,), daemon=True).start()
    print("ready", flush=True)
    while not stop.wait(0.2):
        pass
    try:
        lsock.close()
    except OSError:
        pass
    with rcv.log_lock:
        rcv.logf.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the connection threads may be blocked in recv(); leave them


if __name__ == "__main__":
    main()

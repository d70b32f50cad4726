#!/usr/bin/env python3
"""AMI load generator for the amiclient benchmarks (stdlib only).

A fake Asterisk 22 manager that is fast enough never to be the bottleneck:

* sends the banner ``Asterisk Call Manager/11.0.0``;
* accepts ``Login`` with a plain ``Secret`` or after ``Action: Challenge``
  (MD5; any key is accepted) and answers exactly like Asterisk 22, followed by
  the ``FullyBooted`` event (unless the login said ``Events: off``);
* answers ``Ping`` (``ActionID`` echoed only when sent), ``Events``,
  ``UserEvent`` and ``Logoff``; anything else gets Asterisk's
  ``Invalid/unknown command`` error;
* on ``Action: UserEvent`` / ``UserEvent: StartFlood`` / ``Count: N`` (or right
  after login with ``--mode flood``) streams N events built from the real
  Newchannel / VarSet / Newstate / Hangup events recorded from Asterisk 22
  (``tests/fixtures/asterisk-22``), with a distinct ``Uniqueid`` per event,
  then the marker event ``UserEvent: FloodDone``.

Events are pre-serialised into one bytes buffer (built once, at start-up for
``--events``), and a flood of N events is a zero-copy prefix of it sent with
``sendall`` in 1 MiB chunks.  Pipelined actions that arrive in one ``recv``
are answered with one ``sendall``.

Run standalone::

    python benchmarks/loadgen.py --port 0 --events 100000

It prints ``PORT <n>`` on the first line of stdout, then serves every
connection in its own thread until it is killed, its parent process dies, or
``--max-seconds`` pass.  It only ever binds to loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import threading
import time
from array import array
from itertools import accumulate
from pathlib import Path

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
PING_TS = b"1795703784.607925"
CHALLENGE = b"183378475"
FLOOD_NAMES = ("Newchannel", "VarSet", "Newstate", "Hangup")
SEND_CHUNK = 1 << 20

# The Ping fast path: one regex match per packet, answers from pre-built bytes.  Asterisk's
# C loop answers a Ping in a few microseconds; a raw blocking ping loop against this
# server must be at least as fast as against Asterisk, or the server is what is measured.
_PING = re.compile(rb"(?i)(?:action:[ \t]*ping(?:\r\nactionid:[ \t]*([^\r\n]*))?"
                   rb"|actionid:[ \t]*([^\r\n]*)\r\naction:[ \t]*ping)")
_PONG_HEAD = b"Response: Success\r\nActionID: "
_PONG_TAIL = b"\r\nPing: Pong\r\nTimestamp: " + PING_TS + b"\r\n\r\n"
_PONG_NOID = b"Response: Success\r\nPing: Pong\r\nTimestamp: " + PING_TS + b"\r\n\r\n"


def pongs(data: bytes):
    """The answer to `data` if it is whole CRLF-framed Pings only (one or pipelined), else None."""
    if not data.endswith(b"\r\n\r\n"):
        return None
    match = _PING.fullmatch
    if data.count(b"\r\n\r\n") == 1:  # the common case: one Ping per read
        m = match(data, 0, len(data) - 4)
        if m is None:
            return None
        aid = m.group(1) or m.group(2)
        return _PONG_HEAD + aid + _PONG_TAIL if aid else _PONG_NOID
    out = []
    for pkt in data[:-4].split(b"\r\n\r\n"):
        m = match(pkt)
        if m is None:
            return None
        aid = m.group(1) or m.group(2)
        out.append(_PONG_HEAD + aid + _PONG_TAIL if aid else _PONG_NOID)
    return b"".join(out)

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "asterisk-22"

# Fallback templates (verbatim from the Asterisk 22 recordings) for when the
# fixtures directory is not next to this script.
_FALLBACK = {
    "Newchannel": (
        "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: Local/100@test-0000000d;1\r\n"
        "ChannelState: 0\r\nChannelStateDesc: Down\r\nCallerIDNum: <unknown>\r\n"
        "CallerIDName: <unknown>\r\nConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\n"
        "Language: en\r\nAccountCode: \r\nContext: test\r\nExten: 100\r\nPriority: 1\r\n"
        "Uniqueid: 1795704848.26\r\nLinkedid: 1795704848.26"
    ),
    "VarSet": (
        "Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: Local/200@test-00000000;1\r\n"
        "ChannelState: 0\r\nChannelStateDesc: Down\r\nCallerIDNum: <unknown>\r\n"
        "CallerIDName: <unknown>\r\nConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\n"
        "Language: en\r\nAccountCode: \r\nContext: test\r\nExten: 200\r\nPriority: 1\r\n"
        "Uniqueid: 1795703800.0\r\nLinkedid: 1795703800.0\r\nVariable: C\r\nValue: 3"
    ),
    "Newstate": (
        "Event: Newstate\r\nPrivilege: call,all\r\nChannel: Local/100@test-0000000d;2\r\n"
        "ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: 1000\r\nCallerIDName: Caller 0\r\n"
        "ConnectedLineNum: 1000\r\nConnectedLineName: Caller 0\r\nLanguage: en\r\nAccountCode: \r\n"
        "Context: test\r\nExten: 100\r\nPriority: 1\r\nUniqueid: 1795704848.27\r\n"
        "Linkedid: 1795704848.26"
    ),
    "Hangup": (
        "Event: Hangup\r\nPrivilege: call,all\r\nChannel: Local/100@test-0000000d;1\r\n"
        "ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: 1000\r\nCallerIDName: Caller 0\r\n"
        "ConnectedLineNum: 1000\r\nConnectedLineName: Caller 0\r\nLanguage: en\r\nAccountCode: \r\n"
        "Context: test\r\nExten: 100\r\nPriority: 1\r\nUniqueid: 1795704848.26\r\n"
        "Linkedid: 1795704848.26\r\nCause: 0\r\nCause-txt: Unknown"
    ),
}


def _packets(path: Path) -> list[str]:
    chunks = json.loads(path.read_text(encoding="utf-8"))
    data = "".join(c["data"] for c in chunks if c.get("dir") == "s2c")
    return [p for p in data.split("\r\n\r\n") if p.strip()]


def load_templates(fixtures: Path = FIXTURES) -> dict[str, list[str]]:
    """Real Asterisk 22 events by name, each without its final blank line.

    Newchannel, Newstate and Hangup come from ``calls-50.json``; that
    recording has no VarSet, so VarSet comes from the channel VarSet events of
    ``session.json`` (same server, same Local channels).
    """
    out: dict[str, list[str]] = {n: [] for n in FLOOD_NAMES}
    try:
        pkts = _packets(fixtures / "calls-50.json")
        try:
            pkts += _packets(fixtures / "session.json")
        except OSError:
            pass
        for p in pkts:
            name = p.split("\r\n", 1)[0][len("Event: "):]
            if p.startswith("Event: ") and name in out and "\r\nLinkedid: " in p:
                out[name].append(p)
    except (OSError, ValueError):
        pass
    for n in FLOOD_NAMES:
        if not out[n]:
            out[n] = [_FALLBACK[n]]
    return out


def _header_sub(pkt: str, key: str, placeholder: str) -> str:
    lines = pkt.split("\r\n")
    for i, line in enumerate(lines):
        if line.startswith(key + ": "):
            lines[i] = key + ": " + placeholder
            break
    return "\r\n".join(lines)


class EventBuffer:
    """Pre-serialised flood: ``buf[:ends[n-1]]`` is exactly the first n events."""

    def __init__(self, count: int, templates: dict[str, list[str]]):
        per_name = []
        for n in FLOOD_NAMES:
            per_name.append([
                (_header_sub(_header_sub(t.replace("%", "%%"), "Uniqueid", "%s"), "Linkedid", "%s")
                 + "\r\n\r\n").encode()
                for t in templates[n]
            ])
        parts = []
        k = 0
        for k in range(count):
            call, step = divmod(k, 4)
            variants = per_name[step]
            tmpl = variants[call % len(variants)]
            parts.append(tmpl % (b"1795704848.%d" % k, b"1795704848.%d" % (call * 4)))
        self.count = count
        self.ends = array("Q", accumulate(len(p) for p in parts))
        self.buf = memoryview(b"".join(parts))

    def prefix(self, n: int) -> memoryview:
        if n <= 0:
            return self.buf[:0]
        return self.buf[: self.ends[n - 1]]

    @property
    def mean_size(self) -> float:
        return len(self.buf) / max(1, self.count)


def flood_done(n: int) -> bytes:
    return (b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: FloodDone\r\n"
            b"Count: %d\r\n\r\n" % n)


class Server:
    def __init__(self, host: str, port: int, events: int, mode: str, verbose: bool = False):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("loadgen only binds to loopback")
        self.templates = load_templates()
        self.events = events
        self.mode = mode
        self.verbose = verbose
        self._lock = threading.Lock()
        self._buffers: dict[int, EventBuffer] = {}
        self.default = self.buffer_for(max(events, 1))
        self.sock = socket.socket(socket.AF_INET6 if host == "::1" else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]

    def buffer_for(self, n: int) -> EventBuffer:
        with self._lock:
            best = None
            for b in self._buffers.values():
                if b.count >= n and (best is None or b.count < best.count):
                    best = b
            if best is None:
                best = EventBuffer(n, self.templates)
                self._buffers[n] = best
            return best

    def serve_forever(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=Session(self, conn).run, daemon=True)
            t.start()


class Session:
    def __init__(self, server: Server, conn: socket.socket):
        self.server = server
        self.conn = conn
        self.authed = False
        self.events_on = True
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run(self) -> None:
        conn = self.conn
        try:
            conn.sendall(BANNER)
            buf = b""
            recv, sendall = conn.recv, conn.sendall
            while True:
                data = recv(65536)
                if not data:
                    return
                if not buf and self.authed:  # tight loop: whole Pings in, pre-built Pongs out
                    answer = pongs(data)
                    if answer is not None:
                        sendall(answer)
                        continue
                buf += data
                if b"\r" in buf:
                    buf = buf.replace(b"\r\n", b"\n")
                if b"\n\n" not in buf:
                    continue
                *packets, buf = buf.split(b"\n\n")
                out: list[bytes] = []
                for pkt in packets:
                    if self.handle(pkt, out) is False:
                        if out:
                            conn.sendall(b"".join(out))
                        return
                if out:
                    conn.sendall(b"".join(out))
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle(self, pkt: bytes, out: list[bytes]):
        headers: dict[bytes, bytes] = {}
        for line in pkt.split(b"\n"):
            k, sep, v = line.partition(b":")
            if sep:
                k = k.lower()
                if k not in headers:  # Asterisk: the first occurrence wins
                    headers[k] = v.lstrip(b" \t")
        aid = headers.get(b"actionid", b"")
        aid_line = b"ActionID: " + aid + b"\r\n" if aid else b""
        action = headers.get(b"action", b"").lower()
        if not action:
            out.append(b"Response: Error\r\n" + aid_line + b"Message: Missing action in request\r\n\r\n")
            return True
        if action == b"ping" and self.authed:  # fast path first
            out.append(b"Response: Success\r\n" + aid_line + b"Ping: Pong\r\nTimestamp: " + PING_TS + b"\r\n\r\n")
            return True
        if action == b"challenge":
            out.append(b"Response: Success\r\n" + aid_line + b"Challenge: " + CHALLENGE + b"\r\n\r\n")
            return True
        if action == b"login":
            self.authed = True
            ev = headers.get(b"events", b"on").lower()
            self.events_on = ev not in (b"off", b"no", b"false", b"0")
            out.append(b"Response: Success\r\n" + aid_line + b"Message: Authentication accepted\r\n\r\n")
            if self.events_on:
                out.append(b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 19\r\n"
                           b"LastReload: 19\r\nStatus: Fully Booted\r\n\r\n")
                if self.server.mode == "flood":
                    self.flood(self.server.events, out)
            return True
        if action == b"logoff":
            out.append(b"Response: Goodbye\r\n" + aid_line + b"Message: Thanks for all the fish.\r\n\r\n")
            return False
        if not self.authed:
            out.append(b"Response: Error\r\n" + aid_line + b"Message: Permission denied\r\n\r\n")
            return True
        if action == b"events":
            mask = headers.get(b"eventmask", b"on").lower()
            self.events_on = mask not in (b"off", b"no", b"false", b"0")
            out.append(b"Response: Success\r\n" + aid_line
                       + (b"Events: On" if self.events_on else b"Events: Off") + b"\r\n\r\n")
            return True
        if action == b"userevent":
            out.append(b"Response: Success\r\n" + aid_line + b"Message: Event Sent\r\n\r\n")
            name = headers.get(b"userevent", b"")
            if self.events_on:
                body = [line for line in pkt.split(b"\n")
                        if line and not line.lower().startswith(b"action:")]
                out.append(b"Event: UserEvent\r\nPrivilege: user,all\r\n" + b"\r\n".join(body) + b"\r\n\r\n")
                if name == b"StartFlood":
                    try:
                        n = int(headers.get(b"count", b"0") or b"0")
                    except ValueError:
                        n = 0
                    self.flood(n, out)
            return True
        out.append(b"Response: Error\r\n" + aid_line + b"Message: Invalid/unknown command: "
                   + headers.get(b"action", b"") + b". Use Action: ListCommands to show available commands.\r\n\r\n")
        return True

    def flood(self, n: int, out: list[bytes]) -> None:
        """Send pending output, then n events, then the FloodDone marker."""
        conn = self.conn
        if out:
            conn.sendall(b"".join(out))
            out.clear()
        data = self.server.buffer_for(n).prefix(n) if n > 0 else memoryview(b"")
        t0 = time.perf_counter()
        for off in range(0, len(data), SEND_CHUNK):
            conn.sendall(data[off:off + SEND_CHUNK])
        conn.sendall(flood_done(n))
        if self.server.verbose:
            dt = time.perf_counter() - t0
            print(f"flood {n} events {len(data)} bytes in {dt:.3f}s", file=sys.stderr, flush=True)


def _watchdog(max_seconds: float) -> None:
    parent = os.getppid()
    deadline = time.monotonic() + max_seconds
    while True:
        time.sleep(0.5)
        if os.getppid() != parent or time.monotonic() > deadline:
            os._exit(0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port, 0 = any free port (printed on stdout)")
    ap.add_argument("--events", type=int, default=100_000,
                    help="events pre-built at start-up; the flood size for --mode flood")
    ap.add_argument("--mode", choices=("trigger", "flood"), default="trigger",
                    help="trigger: flood on UserEvent StartFlood; flood: right after login")
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="exit after this long")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    server = Server(args.host, args.port, args.events, args.mode, args.verbose)
    threading.Thread(target=_watchdog, args=(args.max_seconds,), daemon=True).start()
    print(f"PORT {server.port}", flush=True)
    print(f"EVENTS {server.default.count} MEANSIZE {server.default.mean_size:.1f}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""pongserver.c answers byte for byte as loadgen.py: ``python benchmarks/prototypes/pong_identity.py``.

Starts both servers, sends each of the sessions below to both (whole, then in small
pieces split across reads), reads everything until the server closes, and diffs the raw
bytes.  Exit status 0 when every session matches.

``--rate ROUNDS`` then also runs the raw blocking ping loop (the benchmark's floor) against
both servers, unpinned, interleaved round by round (``--pings`` per round, default 3000), and
prints each server's median Pings/s and its CPU per Ping (user + system, from /proc).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import LOADGEN, pongserver, raw_login  # noqa: E402

LOGIN = b"Action: Login\r\nUsername: bench\r\nSecret: bench\r\nActionID: login\r\n\r\n"
PING = b"Action: Ping\r\n\r\n"
PING_ID = b"Action: Ping\r\nActionID: 42\r\n\r\n"
UNKNOWN = b"Action: CoreShowChannels\r\nActionID: u-1\r\n\r\n"
LOGOFF = b"Action: Logoff\r\nActionID: bye\r\n\r\n"

SESSIONS = {
    "login+ping+ping-id+unknown+logoff": [LOGIN, PING, PING_ID, UNKNOWN, LOGOFF],
    "events off": [b"Action: Login\r\nUsername: b\r\nSecret: b\r\nEvents: off\r\n\r\n", PING_ID, LOGOFF],
    "challenge + md5 key": [b"Action: Challenge\r\nAuthType: MD5\r\nActionID: ch\r\n\r\n",
                            b"Action: Login\r\nAuthType: MD5\r\nUsername: b\r\nKey: 00ff\r\nEvents: Off\r\n\r\n",
                            PING, LOGOFF],
    "before login": [PING_ID, b"Action: Events\r\nEventMask: off\r\n\r\n", b"ActionID: x\r\n\r\n", LOGIN, LOGOFF],
    "pipelined": [LOGIN + PING * 3 + PING_ID * 2 + UNKNOWN + PING_ID + LOGOFF],
    "odd framing": [LOGIN, b"actionid: a1\r\naction: PING\r\n\r\n", b"ACTION:\tping\r\nACTIONID:   sp ace \r\n\r\n",
                    b"Action: Ping\nActionID: lf\n\n", b"Action: Ping\r\nActionID:\r\n\r\n", b"\r\n\r\n",
                    b"Action: Ping \r\n\r\n", b"Action: Ping\r\nActionID: 1\r\nActionID: 2\r\n\r\n",
                    b"Action: Events\r\nEventMask: on\r\n\r\n", b"Action: Events\r\nEventMask: OFF\r\n\r\n",
                    b"Action: UserEvent\r\nUserEvent: Hello\r\nX: y\r\n\r\n",
                    b"Action: Events\r\n\r\n", b"Action: UserEvent\r\nUserEvent: StartFlood\r\nCount: 0\r\n\r\n",
                    b"Action: UserEvent\r\nUserEvent: Hello\r\nActionID: ue\r\n\r\n",
                    b"Action: Ping\r\r\n\r\n", b"Action: logoff\r\n\r\n"],
}


def start(cmd: list) -> tuple:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    return p, int(p.stdout.readline().split()[1])


def exchange(port: int, parts: list, piece: int) -> bytes:
    """Send parts (each cut into `piece`-byte writes when piece > 0); all bytes until EOF."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    got = b""
    try:
        for part in parts:
            chunks = [part[i:i + piece] for i in range(0, len(part), piece)] if piece else [part]
            for c in chunks:
                s.sendall(c)
                if piece:
                    time.sleep(0.002)  # separate reads on the server side (mostly)
            time.sleep(0.01)  # the answer comes before the next action, as a client waits for it
        while True:
            d = s.recv(65536)
            if not d:
                return got
            got += d
    except OSError as e:
        return got + b"<%s>" % type(e).__name__.encode()
    finally:
        s.close()


def cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process, all threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ping_loop(s: socket.socket, n: int) -> float:
    """FloorDriver.ping_seq: n blocking Pings with an ActionID; seconds taken."""
    buf = b""
    t0 = time.perf_counter()
    for i in range(n):
        s.sendall(b"Action: Ping\r\nActionID: %d\r\n\r\n" % i)
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        _, _, buf = buf.partition(b"\r\n\r\n")
    return time.perf_counter() - t0


def rates(servers: dict, rounds: int, pings: int) -> None:
    socks = {name: raw_login(port) for name, (_, port) in servers.items()}
    got: dict = {name: ([], []) for name in servers}
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    for r in range(rounds):
        order = list(servers) if r % 2 == 0 else list(servers)[::-1]
        for name in order:
            pid = servers[name][0].pid
            c0 = cpu_s(pid)
            dt = ping_loop(socks[name], pings)
            got[name][0].append(pings / dt)
            got[name][1].append((cpu_s(pid) - c0) / pings * 1e6)
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())
    for name, (rs, cpu) in got.items():
        print("raw blocking loop vs %-12s median %6.0f Pings/s (min %.0f, max %.0f); server CPU %.1f us/Ping"
              % (name, statistics.median(rs), min(rs), max(rs), sum(cpu) / len(cpu)))
    for s in socks.values():
        s.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=0, metavar="ROUNDS")
    ap.add_argument("--pings", type=int, default=3000)
    opts = ap.parse_args()
    exe, why = pongserver()
    if exe is None:
        print("pongserver not buildable: %s" % why)
        return 2
    py, py_port = start([sys.executable, str(LOADGEN), "--port", "0", "--events", "10", "--max-seconds", "120"])
    c, c_port = start([str(exe), "--port", "0", "--max-seconds", "120"])
    bad = 0
    try:
        for name, parts in SESSIONS.items():
            for piece in (0, 3):
                a, b = exchange(py_port, parts, piece), exchange(c_port, parts, piece)
                ok = a == b and a.endswith(b"\r\n\r\n")
                bad += not ok
                print("%-36s %-12s %s (%d bytes)" % (name, "split by %d" % piece if piece else "whole",
                                                     "identical" if ok else "DIFFERENT", len(a)))
                if not ok:
                    print("  loadgen.py: %r\n  pongserver: %r" % (a, b))
        print("all identical" if not bad else "%d differences" % bad)
        if opts.rate:
            rates({"loadgen.py": (py, py_port), "pongserver": (c, c_port)}, opts.rate, opts.pings)
    finally:
        for p in (py, c):
            p.kill()
            p.wait()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Paths, constants and wire helpers shared by the benchmark modules (stdlib only).

Every benchmark module is imported as a top-level module of this directory, both in
the runner and in its worker subprocesses (``run.py --worker``), which may run under
another interpreter (``benchmarks/.venvs/<name>``): keep this file stdlib-only.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOADGEN = HERE / "loadgen.py"
PONGSERVER_C = HERE / "pongserver.c"  # the ping scenarios' server in C; loadgen.py is its fallback
BUILD = HERE / ".build"  # compiled pongserver, git-ignored by its own .gitignore
VENVS = HERE / ".venvs"
RESULTS = HERE / "RESULTS.md"

FLOOD_NAMES = ("Newchannel", "VarSet", "Newstate", "Hangup")
USER = "bench"
SECRET = "bench"
CLIENTS = ("amiclient", "pyst2", "asterisk-ami", "panoramisk")
THREADED_CLIENTS = ("amiclient", "pyst2", "asterisk-ami")
PIP_NAMES = {"pyst2": "pyst2", "asterisk-ami": "asterisk-ami", "panoramisk": "panoramisk"}
DIST_NAMES = {"amiclient": "amiclient", "pyst2": "pyst2", "asterisk-ami": "asterisk-ami",
              "panoramisk": "panoramisk"}
# run only when named in --contenders: the one-thread ceiling with amiclient's parsing, and
# benchmarks/prototypes/leader_follower.py in its two modes
PROTOTYPES = ("ceiling", "proto-reader", "proto-lf")
QUEUED_EVENTS = 100_000
CONC_THREADS = 16

PING_SCENARIOS = ("ping_seq", "ping16")
RATE_SCENARIOS = ("events_listener", "events_ignored", "ping_seq", "ping16")

# CPU placement of a run: "unpinned" (the headline: the scheduler places the load generator
# and the client, as users run) and "pinned" (load generator on the first CPU, the client on
# the others, as with a remote Asterisk), and "same-cpu" (load generator and client on the first
# CPU: the other extreme the scheduler may choose).  Results are keyed "<scenario>/<placement>".
PIN_MODES = ("unpinned", "pinned", "same-cpu")
PINNED_MODES = ("pinned", "same-cpu")


def rkey(scenario: str, pin: str) -> str:
    """The results key of a scenario run with CPU placement `pin`."""
    return scenario if pin == "unpinned" else "%s/%s" % (scenario, pin)


def split_rkey(key: str) -> tuple:
    """(scenario, pin) of a results key."""
    sc, _, pin = key.partition("/")
    return sc, pin or "unpinned"

SCENARIOS = [
    # key, title, contenders, unit
    ("events_listener", "events/s to one listener reading event['Uniqueid']",
     ("floor", "naive") + CLIENTS, "ev/s"),
    ("events_ignored", "events/s with no listener for them", ("floor", "naive") + CLIENTS, "ev/s"),
    ("ping_seq", "sequential Ping round trips/s, 1 thread", ("floor",) + PROTOTYPES[:1] + CLIENTS + PROTOTYPES[1:],
     "pings/s"),
    ("ping16", "Ping round trips/s, 16 threads sharing one client", ("floor",) + CLIENTS + PROTOTYPES[1:],
     "pings/s"),
    ("idle", "idle connected client: RSS and threads", CLIENTS, ""),
    ("queued", "RSS with 100k events queued behind a stalled listener", ("naive",) + CLIENTS, ""),
]


def pongserver() -> tuple:
    """(path of the compiled pongserver, "") or (None, why not): built once per source
    version into benchmarks/.build/ with ``cc -O2 -pthread``."""
    try:
        src = PONGSERVER_C.read_bytes()
    except OSError as e:
        return None, "no %s: %s" % (PONGSERVER_C.name, e)
    exe = BUILD / ("pongserver-" + hashlib.sha1(src).hexdigest()[:12])
    if exe.exists():
        return exe, ""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None, "no C compiler"
    try:
        BUILD.mkdir(exist_ok=True)
        (BUILD / ".gitignore").write_text("*\n")
        tmp = BUILD / ("%s.%d.tmp" % (exe.name, os.getpid()))
        r = subprocess.run(shlex.split(cc) + ["-O2", "-pthread", "-o", str(tmp), str(PONGSERVER_C)],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            tmp.unlink(missing_ok=True)
            return None, "cc failed: %s" % (r.stderr.strip().splitlines() or ["rc %d" % r.returncode])[-1]
        os.replace(tmp, exe)  # atomic: concurrent builds cannot see a half-written binary
    except (OSError, subprocess.SubprocessError) as e:
        return None, "build failed: %s" % e
    return exe, ""


class WorkerError(Exception):
    """The contender cannot run this scenario; the message says why."""


class Unsupported(WorkerError):
    """The contender's design makes this scenario meaningless (reported as n/a)."""


def trigger_packet(n: int, action_id: str = "flood") -> bytes:
    return (b"Action: UserEvent\r\nUserEvent: StartFlood\r\nCount: %d\r\nActionID: %s\r\n\r\n"
            % (n, action_id.encode()))


def marker_bytes(n: int) -> bytes:
    return b"UserEvent: FloodDone\r\nCount: %d\r\n\r\n" % n


def raw_login(port: int, timeout: float = 10.0) -> socket.socket:
    """Connect, read the banner, log in with a plain secret, drain FullyBooted."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"Action: Login\r\nUsername: %s\r\nSecret: %s\r\nActionID: login\r\n\r\n"
              % (USER.encode(), SECRET.encode()))
    buf = b""
    while b"Status: Fully Booted\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise WorkerError("server closed during login")
        buf += d
    if b"Authentication accepted" not in buf:
        raise WorkerError("login refused: %r" % buf[:200])
    return s

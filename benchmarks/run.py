#!/usr/bin/env python3
"""amiclient benchmark suite: ``python benchmarks/run.py [--quick] [--write]``.

Starts ``benchmarks/loadgen.py`` (a fake Asterisk 22 manager) in its own
process on 127.0.0.1, then runs every (contender, scenario) pair in a fresh
worker subprocess of this same script (``--worker``), one after the other, so
that contenders cannot disturb each other and each RSS figure is that
contender's own.  Every scenario is the median of several repetitions.

Contenders:

* ``floor``: raw socket, single thread, no parsing (recv-only byte counter;
  blocking ping loop; 16 pipelined pings from one thread);
* ``naive``: single thread, ``recv`` + ``split(b"\\r\\n\\r\\n")`` + ``decode`` +
  ``dict(line.partition(": ")[::2] ...)`` per packet: the naive parser floor;
* ``amiclient``: this project, imported from the repository tree;
* ``pyst2``, ``asterisk-ami``, ``panoramisk``: other clients, when installed.
  They run from ``benchmarks/.venvs/<name>`` when that venv exists (create
  them with ``--setup``), else from this interpreter; a missing or broken one
  is reported as ``n/a`` with the reason.

Nothing here asserts on timing; see benchmarks/README.md for what each
number means.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOADGEN = HERE / "loadgen.py"
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
QUEUED_EVENTS = 100_000
CONC_THREADS = 16


# ════════════════════════════════════════════════════════════════════════════
# worker side: helpers
# ════════════════════════════════════════════════════════════════════════════

def rss_kb() -> int:
    """Current resident set size of this process, in KiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def maxrss_kb() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def trigger_packet(n: int, action_id: str = "flood") -> bytes:
    return (b"Action: UserEvent\r\nUserEvent: StartFlood\r\nCount: %d\r\nActionID: %s\r\n\r\n"
            % (n, action_id.encode()))


def marker_bytes(n: int) -> bytes:
    return b"UserEvent: FloodDone\r\nCount: %d\r\n\r\n" % n


class WorkerError(Exception):
    """The contender cannot run this scenario; the message says why."""


class Unsupported(WorkerError):
    """The contender's design makes this scenario meaningless (reported as n/a)."""


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


# ════════════════════════════════════════════════════════════════════════════
# worker side: contenders (one "driver" class each)
#
#   setup(mode)       mode: "read" (listener reads Uniqueid), "none" (no listener
#                     for the flood events), "stall" (listener blocks), "idle"
#   flood(n)          -> (seconds, delivered or None)
#   ping_seq(k)       -> (seconds, bad)
#   ping_conc(k, t)   -> (seconds, mismatches, lost)   k pings per thread
#   queued()          -> events queued so far behind the stalled listener, or None
#   release(); close()
# ════════════════════════════════════════════════════════════════════════════

class FloorDriver:
    """Raw socket, one thread, no parsing."""

    name = "floor"
    version = "stdlib"

    def __init__(self, port: int):
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = bytearray(1 << 20)

    def setup(self, mode: str) -> None:
        self.sock = raw_login(self.port)

    def flood(self, n: int):
        s, buf = self.sock, self.buf
        mv = memoryview(buf)
        marker = marker_bytes(n)
        m = len(marker)
        tail = b""
        total = 0
        t0 = time.perf_counter()
        s.sendall(trigger_packet(n))
        while True:
            k = s.recv_into(buf)
            if not k:
                raise WorkerError("server closed")
            total += k
            tail = (tail + bytes(mv[max(0, k - m):k]))[-m:]
            if tail == marker:
                break
        return time.perf_counter() - t0, None

    def ping_seq(self, k: int):
        s = self.sock
        bad = 0
        buf = b""
        t0 = time.perf_counter()
        for i in range(k):
            s.sendall(b"Action: Ping\r\nActionID: %d\r\n\r\n" % i)
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            pkt, _, buf = buf.partition(b"\r\n\r\n")
            if b"ActionID: %d\r\n" % i not in pkt:
                bad += 1
        return time.perf_counter() - t0, bad

    def ping_conc(self, k: int, threads: int):
        """One thread keeps `threads` pings in flight (the pipelining floor)."""
        s = self.sock
        total = k * threads
        sent = recvd = mism = 0
        buf = b""
        t0 = time.perf_counter()
        s.sendall(b"".join(b"Action: Ping\r\nActionID: %d\r\n\r\n" % i for i in range(min(threads, total))))
        sent = min(threads, total)
        while recvd < total:
            buf += s.recv(65536)
            *pkts, buf = buf.split(b"\r\n\r\n")
            out = []
            for pkt in pkts:
                if b"ActionID: %d\r\n" % recvd not in pkt:
                    mism += 1
                recvd += 1
                if sent < total:
                    out.append(b"Action: Ping\r\nActionID: %d\r\n\r\n" % sent)
                    sent += 1
            if out:
                s.sendall(b"".join(out))
        return time.perf_counter() - t0, mism, 0

    def queued(self):
        raise Unsupported("no parser")

    def release(self) -> None:
        pass

    def close(self) -> None:
        if self.sock:
            self.sock.close()


class NaiveDriver(FloorDriver):
    """Single thread: recv + split + decode + dict(partition) per packet."""

    name = "naive"

    def setup(self, mode: str) -> None:
        self.mode = mode
        self.sock = raw_login(self.port)
        self.store = [] if mode == "stall" else None
        self.stored = 0

    def flood(self, n: int):
        s = self.sock
        want = set(FLOOD_NAMES)
        read = self.mode == "read"
        store = self.store
        count = 0
        buf = b""
        done = False
        t0 = time.perf_counter()
        s.sendall(trigger_packet(n))
        while not done:
            data = s.recv(65536)
            if not data:
                raise WorkerError("server closed")
            buf = buf + data if buf else data
            parts = buf.split(b"\r\n\r\n")
            buf = parts.pop()
            for p in parts:
                d = dict(line.partition(": ")[::2] for line in p.decode().split("\r\n"))
                ev = d.get("Event")
                if ev in want:
                    if read:
                        d["Uniqueid"]
                        count += 1
                    elif store is not None:
                        store.append(d)
                        self.stored += 1
                elif ev == "UserEvent" and d.get("UserEvent") == "FloodDone":
                    done = True
        return time.perf_counter() - t0, (count if read else None)

    def queued(self):
        return self.stored


class AmiclientDriver:
    name = "amiclient"

    def __init__(self, port: int):
        import amiclient
        from amiclient import AMIClient
        self.AMIClient = AMIClient
        self.version = getattr(amiclient, "__version__", "?")
        self.port = port
        self.client = None
        self.done = threading.Event()
        self.count = 0
        self.gate = threading.Event()
        self.explicit_ids = True

    def setup(self, mode: str) -> None:
        kw = {}
        if mode == "stall":
            kw["event_queue_size"] = QUEUED_EVENTS + 10_000
        c = self.AMIClient("127.0.0.1", self.port, USER, SECRET, auth="plain", events=True,
                           timeout=10.0, **kw)
        self.client = c
        c.connect()
        self.mode = mode
        if mode == "read":
            box = [0, None]
            self._box = box

            def on_event(event):
                box[1] = event["Uniqueid"]
                box[0] += 1
            self.handles = [c.add_listener(on_event, event=list(FLOOD_NAMES))]
        elif mode == "stall":
            gate = self.gate

            def on_event(event):
                gate.wait()
            self.handles = [c.add_listener(on_event, event=list(FLOOD_NAMES))]
        else:
            self.handles = []
        done = self.done

        def on_user_event(event):
            if event.get("UserEvent") == "FloodDone":
                done.set()
        self.handles.append(c.add_listener(on_user_event, event="UserEvent"))

    def flood(self, n: int):
        c = self.client
        self.done.clear()
        if self.mode == "read":
            self._box[0] = 0
        t0 = time.perf_counter()
        fut = c.send_action("UserEvent", UserEvent="StartFlood", Count=n)
        if not self.done.wait(120):
            raise WorkerError("FloodDone marker not delivered within 120 s (stats %s)" % self.stats())
        dt = time.perf_counter() - t0
        fut.result(10)
        return dt, (self._box[0] if self.mode == "read" else None)

    def _ping(self, aid=None):
        if aid is None:
            return self.client.action("Ping")
        return self.client.action("Ping", ActionID=aid)

    def ping_seq(self, k: int):
        bad = 0
        action = self.client.action
        t0 = time.perf_counter()
        for _ in range(k):
            r = action("Ping")
            if r.get("Ping") != "Pong":
                bad += 1
        return time.perf_counter() - t0, bad

    def ping_conc(self, k: int, threads: int):
        action = self.client.action
        res = {"mism": 0, "lost": 0}
        lock = threading.Lock()
        barrier = threading.Barrier(threads + 1)

        def worker(tid):
            mism = lost = 0
            barrier.wait()
            for i in range(k):
                aid = "t%d-%d" % (tid, i)
                try:
                    r = action("Ping", ActionID=aid)
                except Exception:
                    lost += 1
                    continue
                if r.get("ActionID") != aid or r.get("Ping") != "Pong":
                    mism += 1
            with lock:
                res["mism"] += mism
                res["lost"] += lost

        ts = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
        for t in ts:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in ts:
            t.join(300)
        return time.perf_counter() - t0, res["mism"], res["lost"]

    def stats(self):
        try:
            st = self.client.stats
            if hasattr(st, "as_dict"):
                return st.as_dict()
            if hasattr(st, "keys"):
                return dict(st)
            return dict(vars(st))
        except Exception as e:  # noqa: BLE001
            return {"error": repr(e)}

    def queued(self):
        st = self.stats()
        for key in ("events_queued", "queued", "event_queue", "events_pending", "pending_events",
                    "queue_size", "queued_events"):
            v = st.get(key)
            if isinstance(v, int):
                return v
        rec = next((v for k, v in st.items() if "received" in k and "event" in k and isinstance(v, int)), None)
        disp = next((v for k, v in st.items() if "dispatched" in k and isinstance(v, int)), None)
        if rec is not None:
            return rec - (disp or 0)
        return None

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


class Pyst2Driver:
    name = "pyst2"

    def __init__(self, port: int):
        from asterisk.manager import Manager
        self.Manager = Manager
        self.port = port
        self.m = None
        self.done = threading.Event()
        self.gate = threading.Event()

    def setup(self, mode: str) -> None:
        m = self.Manager()
        self.m = m
        m.connect("127.0.0.1", self.port)
        m.login(USER, SECRET)
        self.mode = mode
        box = self._box = [0, None]
        if mode == "read":
            def on_event(event, manager):
                box[1] = event["Uniqueid"]
                box[0] += 1
            for name in FLOOD_NAMES:
                m.register_event(name, on_event)
        elif mode == "stall":
            gate = self.gate

            def on_event(event, manager):
                gate.wait()
            for name in FLOOD_NAMES:
                m.register_event(name, on_event)
        done = self.done

        def on_user_event(event, manager):
            if event.get_header("UserEvent") == "FloodDone":
                done.set()
        m.register_event("UserEvent", on_user_event)

    def flood(self, n: int):
        self.done.clear()
        self._box[0] = 0
        t0 = time.perf_counter()
        self.m.send_action({"Action": "UserEvent", "UserEvent": "StartFlood", "Count": n})
        if not self.done.wait(120):
            raise WorkerError("FloodDone not delivered within 120 s")
        return time.perf_counter() - t0, (self._box[0] if self.mode == "read" else None)

    def ping_seq(self, k: int):
        bad = 0
        ping = self.m.ping
        t0 = time.perf_counter()
        for _ in range(k):
            r = ping()
            if r.get_header("Ping") != "Pong":
                bad += 1
        return time.perf_counter() - t0, bad

    def ping_conc(self, k: int, threads: int):
        m = self.m
        res = {"mism": 0, "lost": 0}
        lock = threading.Lock()
        barrier = threading.Barrier(threads + 1)

        def worker(tid):
            mism = lost = 0
            barrier.wait()
            for i in range(k):
                aid = "t%d-%d" % (tid, i)
                try:
                    r = m.send_action({"Action": "Ping", "ActionID": aid})
                except Exception:
                    lost += 1
                    continue
                if r is None:
                    lost += 1
                elif r.get_header("ActionID") != aid:
                    mism += 1
            with lock:
                res["mism"] += mism
                res["lost"] += lost

        ts = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
        for t in ts:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in ts:
            t.join(300)
        return time.perf_counter() - t0, res["mism"], res["lost"]

    def queued(self):
        return self.m._event_queue.qsize()  # private, but it is where pyst2 queues events

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        if self.m is not None:
            self.m.close()


class AsteriskAmiDriver:
    name = "asterisk-ami"

    def __init__(self, port: int):
        from asterisk.ami import AMIClient, EventListener, SimpleAction
        self.AMIClient, self.EventListener, self.SimpleAction = AMIClient, EventListener, SimpleAction
        self.port = port
        self.c = None
        self.done = threading.Event()

    def setup(self, mode: str) -> None:
        if mode == "stall":
            raise Unsupported("events are dispatched on the socket-reading thread, so a stalled "
                              "listener stops reading: nothing queues in the process")
        # timeout is both the socket timeout (the reader thread dies after that long with no
        # data) and the time a caller waits for a response
        c = self.AMIClient(address="127.0.0.1", port=self.port, timeout=10)
        self.c = c
        r = c.login(username=USER, secret=SECRET).response
        if r is None or r.is_error():
            raise WorkerError("login failed: %s" % r)
        self.mode = mode
        box = self._box = [0, None]
        if mode == "read":
            def on_event(event, **kw):
                box[1] = event["Uniqueid"]
                box[0] += 1
            c.add_event_listener(on_event, white_list=list(FLOOD_NAMES))
        done = self.done

        def on_user_event(event, **kw):
            if event.keys.get("UserEvent") == "FloodDone":
                done.set()
        c.add_event_listener(on_user_event, white_list="UserEvent")

    def flood(self, n: int):
        self.done.clear()
        self._box[0] = 0
        t0 = time.perf_counter()
        self.c.send_action(self.SimpleAction("UserEvent", UserEvent="StartFlood", Count=n))
        if not self.done.wait(120):
            raise WorkerError("FloodDone not delivered within 120 s")
        return time.perf_counter() - t0, (self._box[0] if self.mode == "read" else None)

    def ping_seq(self, k: int):
        bad = 0
        send, SA = self.c.send_action, self.SimpleAction
        t0 = time.perf_counter()
        for _ in range(k):
            r = send(SA("Ping")).response
            if r is None or r.keys.get("Ping") != "Pong":
                bad += 1
        return time.perf_counter() - t0, bad

    def ping_conc(self, k: int, threads: int):
        send, SA = self.c.send_action, self.SimpleAction
        res = {"mism": 0, "lost": 0}
        lock = threading.Lock()
        barrier = threading.Barrier(threads + 1)

        def worker(tid):
            mism = lost = 0
            barrier.wait()
            for i in range(k):
                a = SA("Ping")  # the client assigns the ActionID
                try:
                    r = send(a).response
                except Exception:
                    lost += 1
                    continue
                if r is None:
                    lost += 1
                elif r.keys.get("ActionID") != a.keys.get("ActionID"):
                    mism += 1
            with lock:
                res["mism"] += mism
                res["lost"] += lost

        ts = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
        for t in ts:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in ts:
            t.join(300)
        return time.perf_counter() - t0, res["mism"], res["lost"]

    def queued(self):
        raise Unsupported("dispatches on the reader thread")

    def release(self) -> None:
        pass

    def close(self) -> None:
        if self.c is not None:
            try:
                self.c.logoff()
            finally:
                self.c.disconnect()


class PanoramiskDriver:
    """asyncio; every call runs the loop until its coroutine is done."""

    name = "panoramisk"

    def __init__(self, port: int):
        import asyncio
        import logging
        from panoramisk import Manager
        from panoramisk.actions import Action
        logging.getLogger("panoramisk").setLevel(logging.CRITICAL)
        self.asyncio, self.Manager, self.Action = asyncio, Manager, Action
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.port = port
        self.m = None

    def _run(self, coro, timeout=120):
        return self.loop.run_until_complete(self.asyncio.wait_for(coro, timeout))

    def setup(self, mode: str) -> None:
        if mode == "stall":
            raise Unsupported("asyncio: a listener that blocks stalls the event loop, so "
                              "nothing is read or queued")
        asyncio = self.asyncio
        loop = self.loop
        logged = loop.create_future()

        def on_login(mgr):
            if not logged.done():
                logged.set_result(True)
        m = self.Manager(loop=loop, host="127.0.0.1", port=self.port, username=USER,
                         secret=SECRET, on_login=on_login)
        self.m = m
        self.mode = mode
        box = self._box = [0, None]
        if mode == "read":
            def on_event(manager, event):
                box[1] = event["Uniqueid"]
                box[0] += 1
            for name in FLOOD_NAMES:
                m.register_event(name, on_event)
        self.done = None

        def on_user_event(manager, event):
            if event.get("UserEvent") == "FloodDone" and self.done is not None and not self.done.done():
                self.done.set_result(True)
        m.register_event("UserEvent", on_user_event)

        async def go():
            await m.connect()
            await logged
        self._run(go(), 10)
        if not m.authenticated:
            raise WorkerError("login failed")

    def flood(self, n: int):
        async def go():
            self.done = self.loop.create_future()
            self._box[0] = 0
            t0 = time.perf_counter()
            await self.m.send_action({"Action": "UserEvent", "UserEvent": "StartFlood", "Count": n})
            await self.done
            return time.perf_counter() - t0
        dt = self._run(go())
        return dt, (self._box[0] if self.mode == "read" else None)

    def ping_seq(self, k: int):
        async def go():
            bad = 0
            send = self.m.send_action
            t0 = time.perf_counter()
            for _ in range(k):
                r = await send({"Action": "Ping"})
                if r.get("Ping") != "Pong":
                    bad += 1
            return time.perf_counter() - t0, bad
        return self._run(go())

    def ping_conc(self, k: int, threads: int):
        Action = self.Action
        send = self.m.send_action
        res = {"mism": 0, "lost": 0}

        async def one():
            for _ in range(k):
                a = Action({"Action": "Ping"})
                try:
                    r = await send(a)
                except Exception:
                    res["lost"] += 1
                    continue
                if r.get("ActionID") != a["ActionID"]:
                    res["mism"] += 1

        async def go():
            t0 = time.perf_counter()
            await self.asyncio.gather(*(one() for _ in range(threads)))
            return time.perf_counter() - t0
        dt = self._run(go(), 300)
        return dt, res["mism"], res["lost"]

    def idle(self, seconds: float) -> None:
        self._run(self.asyncio.sleep(seconds))

    def queued(self):
        raise Unsupported("asyncio")

    def release(self) -> None:
        pass

    def close(self) -> None:
        if self.m is not None:
            self.m.close()
            try:
                self._run(self.asyncio.sleep(0.05), 5)
            except Exception:  # noqa: BLE001
                pass


DRIVERS = {
    "floor": FloorDriver,
    "naive": NaiveDriver,
    "amiclient": AmiclientDriver,
    "pyst2": Pyst2Driver,
    "asterisk-ami": AsteriskAmiDriver,
    "panoramisk": PanoramiskDriver,
}


def dist_version(name: str) -> str:
    dist = DIST_NAMES.get(name)
    if not dist:
        return "stdlib"
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # noqa: BLE001
        return "?"


# ════════════════════════════════════════════════════════════════════════════
# worker side: scenarios
# ════════════════════════════════════════════════════════════════════════════

class Reporter:
    """Prints cumulative RESULT lines so that the parent keeps partial results on timeout."""

    def __init__(self, contender: str, scenario: str):
        self.r = {"contender": contender, "scenario": scenario, "ok": False, "error": None,
                  "rates": [], "n": None, "notes": []}

    def emit(self) -> None:
        self.r["maxrss_kb"] = maxrss_kb()
        sys.stdout.write("RESULT " + json.dumps(self.r) + "\n")
        sys.stdout.flush()


def _idle_pause(drv, seconds: float) -> None:
    if hasattr(drv, "idle"):
        drv.idle(seconds)
    else:
        time.sleep(seconds)


def worker_main(args) -> None:
    rep = Reporter(args.worker, args.scenario)
    r = rep.r
    drv = None
    try:
        try:
            cls = DRIVERS[args.worker]
            gc.collect()
            rss0 = rss_kb()
            threads0 = threading.active_count()
            drv = cls(args.port)  # imports the client
            r["version"] = getattr(drv, "version", None) or dist_version(args.worker)
            if r["version"] in (None, "?"):
                r["version"] = dist_version(args.worker)
        except Exception as e:  # noqa: BLE001
            r["error"] = "import failed: %s: %s" % (type(e).__name__, e)
            r["fatal"] = True
            return
        sc = args.scenario
        mode = {"events_listener": "read", "events_ignored": "none", "queued": "stall",
                "idle": "idle"}.get(sc, "none")
        gc.collect()
        rss0 = rss_kb()
        threads0 = threading.active_count()
        try:
            drv.setup(mode)
        except Unsupported:
            raise
        except Exception as e:  # noqa: BLE001
            r["error"] = "connect/login failed: %s: %s" % (type(e).__name__, e)
            r["fatal"] = args.worker == "amiclient" or isinstance(e, (ImportError, AttributeError, TypeError))
            return

        if sc in RATE_SCENARIOS:
            step = RateStep(sc, drv, args, r)
            step.calibrate()
            if args.interactive:
                # the parent interleaves the repetitions of all contenders: wait for "rep"
                sys.stdout.write("READY\n")
                sys.stdout.flush()
                while True:
                    cmd = _read_command(drv)
                    if cmd != "rep":
                        break
                    step.rep()
                    rep.emit()
            else:
                for _ in range(args.reps):
                    step.rep()
                    rep.emit()
            step.finish()
        elif sc == "idle":
            _idle_pause(drv, 0.5)
            gc.collect()
            r["idle_rss_kb"] = rss_kb() - rss0
            r["idle_threads"] = threading.active_count() - threads0
            r["rss_before_kb"] = rss0
        elif sc == "queued":
            target = QUEUED_EVENTS
            gc.collect()
            if args.worker == "naive":
                drv.flood(target)  # stores every parsed event in a list
                q = drv.queued()
            else:
                threading.Thread(target=_flood_quiet, args=(drv, target), daemon=True).start()
                deadline = time.monotonic() + args.queue_wait
                q, last, stable_since = None, -1, time.monotonic()
                while time.monotonic() < deadline:
                    time.sleep(0.1)
                    q = drv.queued()
                    if q is not None and q >= target:
                        break
                    if q is None:  # unknown: wait until RSS stops growing
                        cur = rss_kb()
                        if cur != last:
                            last, stable_since = cur, time.monotonic()
                        elif time.monotonic() - stable_since > 1.5:
                            break
                time.sleep(0.2)
            gc.collect()
            r["queued"] = q
            r["queued_rss_kb"] = rss_kb() - rss0
            r["rss_before_kb"] = rss0
            if q is not None and q < target:
                r["notes"].append("only %d of %d queued after %.0f s" % (q, target, args.queue_wait))
            if q is None:
                r["notes"].append("queue depth not observable; measured when RSS stopped growing")
            if hasattr(drv, "stats") and args.worker == "amiclient":
                r["stats"] = drv.stats()
        r["ok"] = True
        if args.worker == "amiclient" and sc != "queued":
            r["stats"] = drv.stats()
    except Unsupported as e:
        r["error"] = "n/a: %s" % e
        r["unsupported"] = True
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        r["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        rep.emit()
        if drv is not None:
            try:
                drv.release()
            except Exception:  # noqa: BLE001
                pass
            # close in a daemon thread: a broken client must not hang the worker
            t = threading.Thread(target=_close_quiet, args=(drv,), daemon=True)
            t.start()
            t.join(5)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


RATE_SCENARIOS = ("events_listener", "events_ignored", "ping_seq", "ping16")


class RateStep:
    """One rate scenario: calibrate the size of a repetition, then run repetitions."""

    def __init__(self, sc: str, drv, args, r: dict):
        self.sc, self.drv, self.args, self.r = sc, drv, args, r
        self.short: list = []
        self.bad = self.mism = self.lost = 0

    def _once(self, size: int) -> float:
        gc.collect()
        if self.sc in ("events_listener", "events_ignored"):
            dt, got = self.drv.flood(size)
            if got is not None and got != size:
                self.short.append(got)
        elif self.sc == "ping_seq":
            dt, bad = self.drv.ping_seq(size)
            self.bad += bad
        else:
            dt, mism, lost = self.drv.ping_conc(size, CONC_THREADS)
            self.mism += mism
            self.lost += lost
        return dt

    def calibrate(self) -> None:
        a = self.args
        if self.sc.startswith("events"):
            size, lo, hi, unit = a.warm_events, a.min_events, a.max_events, 1
        elif self.sc == "ping_seq":
            size, lo, hi, unit = 100, 100, a.max_pings, 1
        else:
            size, lo, hi, unit = 10, 10, a.max_pings // CONC_THREADS, CONC_THREADS
        while True:  # grow until one repetition takes a fair share of the target time
            dt = self._once(size)
            if dt >= a.target * 0.25 or size >= hi:
                break
            size = min(hi, size * 4)
        self.size = int(max(lo, min(hi, size / dt * a.target)))
        self.unit = unit
        self.r["n"] = self.size * unit
        self.short, self.bad, self.mism, self.lost = [], 0, 0, 0  # calibration does not count

    def rep(self) -> None:
        dt = self._once(self.size)
        r = self.r
        r["rates"].append(self.size * self.unit / dt)
        if self.sc == "ping16":
            r["mismatches"], r["lost"] = self.mism, self.lost
            r["checked"] = self.size * self.unit * len(r["rates"])

    def finish(self) -> None:
        r = self.r
        if self.short:
            r["notes"].append("listener got %s of %d events" % (self.short, self.size))
        if self.sc == "ping_seq":
            r["bad"] = self.bad
            if self.bad:
                r["notes"].append("%d bad responses" % self.bad)


def _read_command(drv, keepalive: float = 3.0) -> str:
    """Next command from the parent; ping the server while waiting, as an idle app would.

    (asterisk-ami's reader thread dies after `timeout` seconds without data.)
    """
    import select
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], keepalive)
        if ready:
            return sys.stdin.readline().strip() or "end"
        try:
            drv.ping_seq(1)
        except Exception:  # noqa: BLE001
            pass


def _close_quiet(drv) -> None:
    try:
        drv.close()
    except Exception:  # noqa: BLE001
        pass


def _flood_quiet(drv, n: int) -> None:
    try:
        drv.flood(n)
    except Exception:  # noqa: BLE001
        pass


# ════════════════════════════════════════════════════════════════════════════
# parent side
# ════════════════════════════════════════════════════════════════════════════

SCENARIOS = [
    # key, title, contenders, unit
    ("events_listener", "events/s to one listener reading event['Uniqueid']",
     ("floor", "naive") + CLIENTS, "ev/s"),
    ("events_ignored", "events/s with no listener for them", ("floor", "naive") + CLIENTS, "ev/s"),
    ("ping_seq", "sequential Ping round trips/s, 1 thread", ("floor",) + CLIENTS, "pings/s"),
    ("ping16", "Ping round trips/s, 16 threads sharing one client", ("floor",) + CLIENTS, "pings/s"),
    ("idle", "idle connected client: RSS and threads", CLIENTS, ""),
    ("queued", "RSS with 100k events queued behind a stalled listener", ("naive",) + CLIENTS, ""),
]

LABELS = {
    ("floor", "events_listener"): "floor: raw recv, no parsing",
    ("floor", "events_ignored"): "floor: raw recv, no parsing",
    ("naive", "events_listener"): "naive split/partition parser",
    ("naive", "events_ignored"): "naive split/partition parser",
    ("naive", "queued"): "naive parser, 100k dicts in a list",
    ("floor", "ping_seq"): "floor: raw blocking ping loop",
    ("floor", "ping16"): "floor: raw socket, 16 pipelined, 1 thread",
    ("panoramisk", "ping16"): "panoramisk (16 coroutines)",
}


HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_sample() -> tuple[int, int, int]:
    """(total, busy, steal) jiffies of the whole machine."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return (0, 0, 0)
    total = sum(v[:8])
    return total, total - v[3] - v[4], (v[7] if len(v) > 7 else 0)


def _proc_ticks(pid: int | None) -> int:
    if not pid:
        return 0
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, ValueError, IndexError):
        return 0


def _own_ticks() -> float:
    import resource
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    return (ch.ru_utime + ch.ru_stime + me.ru_utime + me.ru_stime) * HZ


class CpuWatch:
    """CPU used by processes that are not this benchmark, while it ran (a noise indicator)."""

    def __init__(self, loadgen_pid):
        self.pid = loadgen_pid
        self.start = self._now()

    def _now(self):
        t, busy, steal = _cpu_sample()
        return (time.monotonic(), busy, steal, _own_ticks() + _proc_ticks(self.pid))

    def stop(self) -> dict:
        t1, b1, s1, o1 = self._now()
        t0, b0, s0, o0 = self.start
        wall = max(1e-6, (t1 - t0) * HZ)
        return {"foreign_cores": max(0.0, (b1 - b0) - (o1 - o0)) / wall, "steal_cores": (s1 - s0) / wall}


def wait_quiet(max_wait: float, threshold: float = 0.15) -> float:
    """Wait (up to max_wait s) until other processes use < threshold of a core; return that load."""
    deadline = time.monotonic() + max_wait
    while True:
        t0, b0, _ = _cpu_sample()
        time.sleep(2.0)
        t1, b1, _ = _cpu_sample()
        load = (b1 - b0) / max(1, (t1 - t0)) * (os.cpu_count() or 1)
        if load < threshold or time.monotonic() >= deadline:
            return load
        print("machine busy (%.2f cores used by other processes); waiting" % load, file=sys.stderr, flush=True)


class Runner:
    def __init__(self, args):
        self.args = args
        self.loadgen: subprocess.Popen | None = None
        self.live: set[WorkerProc] = set()
        self.port = None
        self.results: dict[tuple[str, str], dict] = {}
        self.fatal: dict[str, str] = {}
        self.python: dict[str, str] = {}
        self.t_start = time.monotonic()
        self.watch = None
        self.noise = None
        self.quiet_before = None

    # ── processes ──────────────────────────────────────────────────────────
    @property
    def cpus(self) -> tuple:
        """(load generator's CPUs, workers' CPUs): two disjoint sets with --pin, else None."""
        try:
            avail = sorted(os.sched_getaffinity(0))
        except AttributeError:
            return (None, None)
        if self.args.no_pin or len(avail) < 2:
            return (None, None)
        return ({avail[0]}, set(avail[1:]))

    @staticmethod
    def _pin(p: subprocess.Popen, cpus) -> None:
        if cpus:
            try:
                os.sched_setaffinity(p.pid, cpus)
            except OSError:
                pass

    def start_loadgen(self) -> None:
        cmd = [sys.executable, str(LOADGEN), "--host", "127.0.0.1", "--port", "0",
               "--events", str(max(self.args.max_events, QUEUED_EVENTS)),
               "--max-seconds", str(int(self.args.budget + 120))]
        self.loadgen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL, start_new_session=True, text=True)
        self._pin(self.loadgen, self.cpus[0])
        # read the two start-up lines (PORT, EVENTS) on a helper thread so a silent loadgen
        # cannot hang the run
        info: dict[str, str] = {}
        got = threading.Event()

        def reader():
            for _ in range(2):
                line = self.loadgen.stdout.readline()
                if not line:
                    break
                parts = line.split()
                for i in range(0, len(parts) - 1, 2):
                    info[parts[i]] = parts[i + 1]
            got.set()
        threading.Thread(target=reader, daemon=True).start()
        got.wait(60)
        if "PORT" not in info:
            raise RuntimeError("loadgen did not start")
        self.port = int(info["PORT"])
        self.event_size = float(info.get("MEANSIZE", 0))

    def python_for(self, contender: str) -> str:
        if contender in PIP_NAMES:
            vpy = VENVS / contender / "bin" / "python"
            if vpy.exists() and not self.args.no_venvs:
                return str(vpy)
        return sys.executable

    def spawn(self, contender: str, scenario: str, interactive: bool) -> "WorkerProc":
        a = self.args
        cmd = [self.python_for(contender), "-W", "ignore", str(Path(__file__).resolve()),
               "--worker", contender, "--scenario", scenario, "--port", str(self.port),
               "--reps", str(a.reps), "--target", str(a.target), "--max-events", str(a.max_events),
               "--min-events", str(a.min_events), "--warm-events", str(a.warm_events),
               "--max-pings", str(a.max_pings), "--queue-wait", str(a.queue_wait)]
        if interactive:
            cmd.append("--interactive")
        env = dict(os.environ)
        if contender == "amiclient":
            env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        w = WorkerProc(contender, scenario, cmd, env, interactive)
        self.live.add(w)
        self._pin(w.p, self.cpus[1])
        return w

    def _finish(self, w: "WorkerProc", timeout: float) -> dict:
        res = w.finish(timeout)
        self.live.discard(w)
        return res

    def run_worker(self, contender: str, scenario: str) -> dict:
        """A single-shot scenario (idle, queued): one worker, run to completion."""
        watch = CpuWatch(self.loadgen.pid if self.loadgen else None)
        w = self.spawn(contender, scenario, interactive=False)
        res = self._finish(w, self.args.worker_timeout)
        _attach_noise(res, watch.stop())
        return res

    def run_rate_scenario(self, key: str, contenders: list[str]) -> None:
        """Start one worker per contender, then interleave their repetitions round-robin, so
        that the contenders of a scenario share whatever else the machine is doing."""
        a = self.args
        watch = CpuWatch(self.loadgen.pid if self.loadgen else None)
        workers: dict[str, WorkerProc] = {}
        for c in contenders:
            w = self.spawn(c, key, interactive=True)
            line = w.wait_for(("READY", "RESULT"), a.worker_timeout)
            if line == "READY":
                workers[c] = w
            else:
                self.record(c, key, self._finish(w, 10))
        rep_timeout = max(30.0, 30 * a.target)
        for r in range(a.reps):
            if time.monotonic() - self.t_start > a.budget:
                break
            names = list(workers)
            names = names[r % len(names):] + names[:r % len(names)] if names else names
            for c in names:
                w = workers[c]
                if w.dead:
                    continue
                w.send("rep")
                line = w.wait_for(("RESULT",), rep_timeout)
                if line is None:
                    w.timed_out = "a repetition took more than %ds" % rep_timeout
                    w.kill()
                elif (w.result or {}).get("error"):
                    w.dead = True
        results = {c: self._finish(w, 20) for c, w in workers.items()}
        noise = watch.stop()
        for c, res in results.items():
            _attach_noise(res, noise)
            self.record(c, key, res)

    def record(self, c: str, key: str, res: dict) -> None:
        self.results[(c, key)] = res
        if res.get("fatal"):
            self.fatal[c] = res["error"]
        rates = res.get("rates") or []
        msg = ("%s" % _fmt_rate(statistics.median(rates)) if rates else
               res.get("error") or ("ok" if res.get("ok") else "?"))
        print("  %-16s %-13s %s" % (key, c, msg), file=sys.stderr, flush=True)

    def cleanup(self) -> None:
        if self.watch is not None and self.noise is None:
            self.noise = self.watch.stop()
        for w in list(self.live):
            w.kill()
        self.live.clear()
        if self.loadgen is not None and self.loadgen.poll() is None:
            _kill_group(self.loadgen)
        self.loadgen = None

    # ── run ────────────────────────────────────────────────────────────────
    def run(self) -> None:
        a = self.args
        if a.wait_quiet:
            self.quiet_before = wait_quiet(a.wait_quiet)
        self.start_loadgen()
        self.watch = CpuWatch(self.loadgen.pid)
        print("loadgen on 127.0.0.1:%d, %.0f bytes/event; %d reps, %.1fs per rep%s"
              % (self.port, self.event_size, a.reps, a.target, " (quick)" if a.quick else ""),
              file=sys.stderr, flush=True)
        for key, _title, contenders, _unit in SCENARIOS:
            if a.scenarios and key not in a.scenarios:
                continue
            todo = []
            for c in contenders:
                if a.contenders and c not in a.contenders:
                    continue
                if c in self.fatal:
                    self.results[(c, key)] = {"ok": False, "error": self.fatal[c], "rates": [], "notes": []}
                elif time.monotonic() - self.t_start > a.budget:
                    self.results[(c, key)] = {"ok": False, "error": "skipped: run budget spent",
                                              "rates": [], "notes": []}
                else:
                    todo.append(c)
            if not todo:
                continue
            if key in RATE_SCENARIOS:
                self.run_rate_scenario(key, todo)
            else:
                for c in todo:
                    if c in self.fatal:
                        continue
                    self.record(c, key, self.run_worker(c, key))


class WorkerProc:
    """One worker subprocess; its stdout lines are collected by a thread."""

    def __init__(self, contender: str, scenario: str, cmd: list, env: dict, interactive: bool):
        import queue
        self.contender, self.scenario = contender, scenario
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                  stdin=subprocess.PIPE if interactive else subprocess.DEVNULL,
                                  start_new_session=True, text=True, cwd=str(HERE))
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.err: list[str] = []
        self.result: dict | None = None
        self.dead = False
        self.timed_out: str | None = None
        threading.Thread(target=self._pump, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    @staticmethod
    def _pump(stream, q) -> None:
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def _pump_err(self) -> None:
        for line in self.p.stderr:
            self.err.append(line.rstrip("\n"))
            del self.err[:-20]

    def wait_for(self, prefixes: tuple, timeout: float) -> str | None:
        """Wait for a line starting with one of prefixes; RESULT lines update .result."""
        import queue
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self.dead = True
                return None
            if line.startswith("RESULT "):
                try:
                    self.result = json.loads(line[7:])
                except ValueError:
                    continue
            for pre in prefixes:
                if line.startswith(pre):
                    return pre
            continue

    def send(self, cmd: str) -> None:
        try:
            self.p.stdin.write(cmd + "\n")
            self.p.stdin.flush()
        except (OSError, ValueError):
            self.dead = True

    def kill(self) -> None:
        if self.p.poll() is None:
            _kill_group(self.p)

    def finish(self, timeout: float) -> dict:
        """Ask an interactive worker to end, wait for its last RESULT, reap it."""
        if self.p.stdin is not None and not self.dead:
            self.send("end")
        if self.p.poll() is None and not self.dead:
            deadline = time.monotonic() + timeout
            while self.wait_for(("RESULT",), max(0.0, deadline - time.monotonic())) is not None:
                pass  # keep the last RESULT until EOF or the deadline
        if self.p.poll() is None:
            try:
                self.p.wait(max(0.1, timeout / 4))
            except subprocess.TimeoutExpired:
                if not self.timed_out:
                    self.timed_out = "no exit within %ds" % timeout
                self.kill()
        self.kill()
        while True:  # drain what is left
            try:
                line = self.lines.get_nowait()
            except Exception:  # noqa: BLE001
                break
            if line and line.startswith("RESULT "):
                try:
                    self.result = json.loads(line[7:])
                except ValueError:
                    pass
        res = self.result
        if res is None:
            tail = self.err[-1:] or ["no output"]
            res = {"contender": self.contender, "scenario": self.scenario, "ok": False, "rates": [],
                   "notes": [], "error": (("timeout: %s" % self.timed_out) if self.timed_out else
                                          "worker died (rc %s): %s" % (self.p.returncode, tail[0][:200]))}
        elif self.timed_out:
            res["ok"] = bool(res.get("rates"))
            if not res["ok"]:
                res["error"] = "timeout: %s" % self.timed_out
            res.setdefault("notes", []).append("stopped (%s); %d reps kept" % (self.timed_out, len(res.get("rates") or [])))
            res["error"] = res.get("error") if not res["ok"] else None
        res["seconds"] = time.monotonic() - self.t0
        if not res.get("ok") and not res.get("unsupported") and self.err:
            res["stderr_tail"] = self.err[-3:]
        return res


def _attach_noise(res: dict, noise: dict) -> None:
    res.update(noise)
    if noise.get("foreign_cores", 0) > 0.15:
        res.setdefault("notes", []).append("other processes used %.2f cores meanwhile" % noise["foreign_cores"])


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(3)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait(3)


# ── report ───────────────────────────────────────────────────────────────────

def _fmt_rate(v: float) -> str:
    return "{:,.0f}".format(v)


def _mb(kb) -> str:
    return "%.1f MB" % (kb / 1024.0)


def _ratio(a, b) -> str:
    if not a or not b:
        return "—"
    return "%.2fx" % (a / b)


def _median(res) -> float | None:
    if res and res.get("rates"):
        return statistics.median(res["rates"])
    return None


def _spread(res) -> str:
    rates = res.get("rates") or []
    if len(rates) < 2:
        return ""
    med = statistics.median(rates)
    return "±%.0f%%" % (100.0 * max(abs(max(rates) - med), abs(med - min(rates))) / med)


def build_report(runner: Runner) -> tuple[str, list[tuple[str, str, str, str]]]:
    R = runner.results
    rows = []
    header = "| scenario | contender | result | vs baseline | vs fastest other client | notes |"
    rows.append(header)
    rows.append("|---|---|---:|---:|---:|---|")

    def label(c, key):
        if (c, key) in LABELS:
            return LABELS[(c, key)]
        res = R.get((c, key)) or {}
        v = res.get("version")
        return "%s %s" % (c, v) if v and v not in ("stdlib", "?") else c

    def note_of(res):
        notes = list(res.get("notes") or [])
        if res.get("n"):
            notes.insert(0, "n=%s" % "{:,}".format(res["n"]))
        sp = _spread(res)
        if sp:
            notes.insert(1 if res.get("n") else 0, "spread %s" % sp)
        return ", ".join(notes)

    for key, title, contenders, unit in SCENARIOS:
        present = [c for c in contenders if (c, key) in R]
        if not present:
            continue
        if key in ("events_listener", "events_ignored", "ping_seq", "ping16"):
            base_key = ("naive", key) if key.startswith("events") else ("floor", "ping_seq")
            base = _median(R.get(base_key))
            base_name = "naive" if key.startswith("events") else "raw ping loop"
            meds = {c: _median(R.get((c, key))) for c in present}
            for c in present:
                res = R[(c, key)]
                m = meds[c]
                if m is None:
                    rows.append("| %s | %s | n/a | — | — | %s |" % (title, label(c, key),
                                                                   _err(res)))
                    continue
                others = [meds[o] for o in CLIENTS if o != c and o in meds and meds[o]]
                vs_other = _ratio(m, max(others)) if (c in CLIENTS and others) else "—"
                vs_base = _ratio(m, base) if (base and (c, key) != base_key) else ("baseline" if (c, key) == base_key else "—")
                note = note_of(res)
                if key == "ping16" and "mismatches" in res:
                    note = ("**%d mismatched**, %d lost of %s checked; " % (
                        res["mismatches"], res.get("lost", 0), "{:,}".format(res.get("checked", 0)))
                        if (res["mismatches"] or res.get("lost")) else
                        "0 mismatched of %s; " % "{:,}".format(res.get("checked", 0))) + note
                if base_name and vs_base not in ("—", "baseline"):
                    vs_base += " " + ("naive" if key.startswith("events") else "raw")
                rows.append("| %s | %s | %s %s | %s | %s | %s |" % (
                    title, label(c, key), _fmt_rate(m), unit, vs_base, vs_other, note))
        elif key == "idle":
            for c in present:
                res = R[(c, key)]
                if not res.get("ok"):
                    rows.append("| %s | %s | n/a | — | — | %s |" % (title, label(c, key), _err(res)))
                    continue
                rows.append("| %s | %s | %s, %+d threads | — | — | RSS after connect+login minus RSS before creating the client |" % (
                    title, label(c, key), _mb(res["idle_rss_kb"]), res["idle_threads"]))
        elif key == "queued":
            for c in present:
                res = R[(c, key)]
                if not res.get("ok"):
                    rows.append("| %s | %s | n/a | — | — | %s |" % (title, label(c, key), _err(res)))
                    continue
                q = res.get("queued")
                shown = _mb(res["queued_rss_kb"])
                if q and q < QUEUED_EVENTS:
                    shown += " at %s queued (≈ %s per 100k, extrapolated)" % (
                        "{:,}".format(q), _mb(res["queued_rss_kb"] * QUEUED_EVENTS / q))
                rows.append("| %s | %s | %s | — | — | %s |" % (
                    title, label(c, key), shown,
                    ", ".join(["RSS growth from before connect; %s queued" % (
                        "{:,}".format(q) if q is not None else "?")] + list(res.get("notes") or []))))
    # peak RSS per contender (max ru_maxrss over its rate workers)
    for c in ("floor", "naive") + CLIENTS:
        peaks = [R[(c, k)].get("maxrss_kb") for k in ("events_listener", "events_ignored", "ping_seq", "ping16")
                 if (c, k) in R and R[(c, k)].get("ok") and R[(c, k)].get("maxrss_kb")]
        if peaks:
            rows.append("| peak RSS (ru_maxrss, rate scenarios) | %s | %s | — | — | worker process, interpreter included |"
                        % (c if c not in ("floor", "naive") else c + " baseline", _mb(max(peaks))))
    table = "\n".join(rows)
    return table, targets(runner)


def _err(res) -> str:
    e = (res or {}).get("error") or "no result"
    return e.replace("|", "/").replace("\n", " ")[:240]


def targets(runner: Runner) -> list[tuple[str, str, str, str]]:
    R = runner.results

    def med(c, k):
        return _median(R.get((c, k)))

    def best(cs, k):
        vals = [(med(c, k), c) for c in cs if med(c, k)]
        return max(vals) if vals else (None, None)

    out = []
    a = med("amiclient", "events_listener")
    naive = med("naive", "events_listener")
    bo, bc = best([c for c in CLIENTS if c != "amiclient"], "events_listener")
    out.append(("events/s to a listener >= 1.0x naive parser", _ratio(a, naive), *_verdict(a, naive, 1.0)))
    out.append(("events/s to a listener >= 2x fastest other client (%s)" % (bc or "none"),
                _ratio(a, bo), *_verdict(a, bo, 2.0)))
    a = med("amiclient", "ping_seq")
    bo, bc = best([c for c in CLIENTS if c != "amiclient"], "ping_seq")
    out.append(("sequential pings/s >= 2x fastest other client (%s)" % (bc or "none"), _ratio(a, bo),
                *_verdict(a, bo, 2.0)))
    a = med("amiclient", "ping16")
    bo, bc = best([c for c in THREADED_CLIENTS if c != "amiclient"], "ping16")
    out.append(("16-thread pings/s >= 2x fastest other threaded client (%s)" % (bc or "none"),
                _ratio(a, bo), *_verdict(a, bo, 2.0)))
    p = med("panoramisk", "ping16")
    out.append(("16-thread pings/s >= 1.0x panoramisk asyncio concurrency", _ratio(a, p), *_verdict(a, p, 1.0)))
    r = R.get(("amiclient", "ping16")) or {}
    if "mismatches" in r:
        bad = r["mismatches"] + r.get("lost", 0)
        out.append(("16-thread pings: zero mismatches", "%d of %s" % (bad, "{:,}".format(r.get("checked", 0))),
                    "met" if bad == 0 else "NOT met", ""))
    else:
        out.append(("16-thread pings: zero mismatches", "n/a", "not measured", ""))
    r = R.get(("amiclient", "idle")) or {}
    if r.get("ok"):
        ok = r["idle_rss_kb"] < 2048 and r["idle_threads"] <= 2
        out.append(("idle connected client < 2 MB RSS and two threads",
                    "%s, %+d threads" % (_mb(r["idle_rss_kb"]), r["idle_threads"]), "met" if ok else "NOT met", ""))
    else:
        out.append(("idle connected client < 2 MB RSS and two threads", "n/a", "not measured", ""))
    r = R.get(("amiclient", "queued")) or {}
    if r.get("ok"):
        ok = r["queued_rss_kb"] < 150 * 1024 and (r.get("queued") or 0) >= QUEUED_EVENTS
        out.append(("100k queued events cost < 150 MB", _mb(r["queued_rss_kb"]),
                    "met" if ok else "NOT met", "" if (r.get("queued") or 0) >= QUEUED_EVENTS else "queue depth %s" % r.get("queued")))
    else:
        out.append(("100k queued events cost < 150 MB", "n/a", "not measured", ""))
    return out


def _verdict(a, b, need) -> tuple[str, str]:
    if not a or not b:
        return "not measured", ""
    return ("met" if a / b >= need else "NOT met"), ""


def machine_info(runner: Runner) -> list[str]:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
                break
    except OSError:
        pass
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "amiclient"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        head += " (amiclient/ has uncommitted changes)" if dirty else ""
    except Exception:  # noqa: BLE001
        head = "?"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    versions = []
    for c in CLIENTS:
        for k in ("events_listener", "ping_seq", "idle"):
            v = (runner.results.get((c, k)) or {}).get("version")
            if v:
                versions.append("%s %s" % (c, v))
                break
    return [
        "- date: %s" % _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "- CPU: %s, %d cores (os.cpu_count %s), %s RAM" % (cpu, cores, os.cpu_count(), mem),
        "- OS: %s %s" % (platform.system(), platform.release()),
        "- Python: %s (%s)" % (platform.python_version(), platform.python_implementation()),
        "- repository: %s" % head,
        "- clients: %s" % (", ".join(versions) or "none ran"),
        "- load: %s events/flood max, %.0f bytes/event on average (Newchannel/VarSet/Newstate/Hangup "
        "from the Asterisk 22 recordings), loopback 127.0.0.1" % ("{:,}".format(runner.args.max_events),
                                                                   runner.event_size),
        "- machine noise: other processes used %s during the run; hypervisor steal %s%s"
        % (("%.2f cores on average" % runner.noise["foreign_cores"]) if runner.noise else "?",
           ("%.2f cores" % runner.noise["steal_cores"]) if runner.noise else "?",
           (" (**results disturbed: rerun on a quiet machine**)" if runner.noise and runner.noise["foreign_cores"] > 0.1 else "")),
        "- mode: %s, %d repetitions per scenario (median reported), ~%.1f s per repetition; %s"
        % ("--quick" if runner.args.quick else "full", runner.args.reps, runner.args.target,
           "load generator pinned to CPU %s, workers to CPU %s" % (
               ",".join(map(str, sorted(runner.cpus[0]))), ",".join(map(str, sorted(runner.cpus[1]))))
           if runner.cpus[0] else "no CPU pinning"),
    ]


def render(runner: Runner, seconds: float) -> str:
    table, tgts = build_report(runner)
    lines = ["# amiclient benchmark results", "",
             "Latest run of `python benchmarks/run.py%s --write`; see benchmarks/README.md for what "
             "each number means. No result here is asserted anywhere." % (" --quick" if runner.args.quick else ""),
             "", "## Machine", ""]
    lines += machine_info(runner)
    lines += ["- wall time of the run: %.0f s" % seconds, "", "## Results", "", table, "",
              "## Targets (from the benchmark issue)", "",
              "| target | measured | verdict |", "|---|---:|---|"]
    for t, m, v, extra in tgts:
        lines.append("| %s | %s | %s%s |" % (t, m, v, (" (" + extra + ")") if extra else ""))
    R = runner.results
    st = [(k, (R.get(("amiclient", k)) or {}).get("stats")) for k, *_ in SCENARIOS]
    st = [(k, s) for k, s in st if s]
    if st:
        lines += ["", "## amiclient `client.stats` at the end of each scenario", ""]
        for k, s in st:
            lines.append("- %s: `%s`" % (k, json.dumps(s, sort_keys=True)))
    analysis = HERE / "ANALYSIS.md"  # hand-written profile notes behind the verdicts
    if analysis.exists():
        lines += ["", analysis.read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"


# ════════════════════════════════════════════════════════════════════════════
# entry point
# ════════════════════════════════════════════════════════════════════════════

def setup_venvs() -> None:
    for name, pip_name in PIP_NAMES.items():
        d = VENVS / name
        if not (d / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
        r = subprocess.run([str(d / "bin" / "python"), "-m", "pip", "install", "-q", pip_name])
        print("%s: %s" % (name, "installed" if r.returncode == 0 else "pip failed (%d)" % r.returncode))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="amiclient benchmark suite")
    ap.add_argument("--quick", action="store_true", help="fewer and shorter repetitions (< 2 min)")
    ap.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md")
    ap.add_argument("--setup", action="store_true",
                    help="create benchmarks/.venvs/{pyst2,asterisk-ami,panoramisk} with pip and exit")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin the load generator and the workers to separate CPUs")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="first wait up to this long for other processes to go quiet")
    ap.add_argument("--no-venvs", action="store_true", help="run the other clients from this interpreter")
    ap.add_argument("--contenders", type=lambda s: s.split(","), default=None,
                    help="comma list, e.g. floor,naive,amiclient")
    ap.add_argument("--scenarios", type=lambda s: s.split(","), default=None,
                    help="comma list of: " + ",".join(k for k, *_ in SCENARIOS))
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--target", type=float, default=None, help="seconds per repetition")
    # worker-only
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--scenario", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--max-events", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--min-events", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--warm-events", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--max-pings", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--queue-wait", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--interactive", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    q = a.quick
    defaults = dict(reps=3 if q else 5, target=0.3 if q else 1.0, max_events=100_000 if q else 300_000,
                    min_events=2_000, warm_events=2_000, max_pings=100_000 if q else 400_000,
                    queue_wait=15.0 if q else 45.0)
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.worker_timeout = 45 if q else 150
    a.budget = 110 if q else 570
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0
    if args.setup:
        setup_venvs()
        return 0
    runner = Runner(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    t0 = time.monotonic()
    interrupted = False
    try:
        runner.run()
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted; reporting what ran", file=sys.stderr)
    finally:
        runner.cleanup()
    seconds = time.monotonic() - t0
    if not runner.results:
        return 1
    text = render(runner, seconds)
    print()
    print(text)
    if args.write and not interrupted:
        RESULTS.write_text(text)
        print("wrote %s" % RESULTS, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

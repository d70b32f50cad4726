"""Worker side: one driver class per contender (imported by ``run.py --worker``).

Every driver has the same interface::

    setup(mode)       mode: "read" (listener reads Uniqueid), "none" (no listener
                      for the flood events), "stall" (listener blocks), "idle"
    flood(n)          -> (seconds, delivered or None)
    ping_seq(k)       -> (seconds, bad)
    ping_conc(k, t)   -> (seconds, mismatches, lost)   k pings per thread
    queued()          -> events queued so far behind the stalled listener, or None
    idle(seconds); release(); close()

The client libraries are imported in the drivers' constructors, so that importing
this module costs nothing and a missing client fails only its own worker.
"""

from __future__ import annotations

import threading
import time

from common import (
    DIST_NAMES,
    FLOOD_NAMES,
    QUEUED_EVENTS,
    SECRET,
    USER,
    Unsupported,
    WorkerError,
    marker_bytes,
    raw_login,
    trigger_packet,
)

# ── shared measurement loops ────────────────────────────────────────────────

def run_threads(worker, threads: int) -> tuple[float, int, int]:
    """Run ``worker(tid) -> (mismatches, lost)`` on `threads` threads at once.

    The threads start together from a barrier; the time runs from the barrier until
    the last thread is joined.  Returns (seconds, mismatches, lost) summed over threads.
    """
    totals = [0, 0]
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def body(tid):
        barrier.wait()
        mism, lost = worker(tid)
        with lock:
            totals[0] += mism
            totals[1] += lost

    ts = [threading.Thread(target=body, args=(t,), daemon=True) for t in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join(300)
    return time.perf_counter() - t0, totals[0], totals[1]


def check_pings(ping, tid: int, k: int) -> tuple[int, int]:
    """Send k pings with ``ping(tid, i)`` and count the bad answers: (mismatches, lost).

    ``ping`` returns True when the caller got its own response, False when it got
    another caller's, None when it got none; an exception counts as lost.
    """
    mism = lost = 0
    for i in range(k):
        try:
            ok = ping(tid, i)
        except Exception:  # noqa: BLE001
            lost += 1
            continue
        if ok is None:
            lost += 1
        elif not ok:
            mism += 1
    return mism, lost


def time_pings(ping, k: int) -> tuple[float, int]:
    """k sequential ``ping() -> bool`` (True: a Pong came back): (seconds, bad)."""
    bad = 0
    t0 = time.perf_counter()
    for _ in range(k):
        if not ping():
            bad += 1
    return time.perf_counter() - t0, bad


# ── drivers ─────────────────────────────────────────────────────────────────

class Driver:
    """What the drivers share: the flood marker, the stall gate, the event counter."""

    name = ""
    version: str | None = None  # None: the installed distribution's version
    unsupported_queue = "no queue to observe"

    def __init__(self, port: int):
        self.port = port
        self.conn = None  # the client object (or socket)
        self.mode = None
        self.done = threading.Event()  # the FloodDone marker reached its listener
        self.gate = threading.Event()  # set to release a stalled listener
        self._box = [0, None]  # [flood events seen by the reading listener, last Uniqueid]

    # flood(): send the trigger with _trigger(n), wait until the marker's listener sets `done`
    def _trigger(self, n: int):
        raise NotImplementedError

    def _undelivered(self) -> str:
        return "FloodDone not delivered within 120 s"

    def _flooded(self, pending) -> None:
        """Called with what _trigger returned, once the marker arrived."""

    def flood(self, n: int):
        self.done.clear()
        self._box[0] = 0
        t0 = time.perf_counter()
        pending = self._trigger(n)
        if not self.done.wait(120):
            raise WorkerError(self._undelivered())
        dt = time.perf_counter() - t0
        self._flooded(pending)
        return dt, (self._box[0] if self.mode == "read" else None)

    def _conc_ping(self):
        """A ``ping(tid, i)`` for check_pings(), safe to call from many threads."""
        raise NotImplementedError

    def ping_conc(self, k: int, threads: int):
        ping = self._conc_ping()
        return run_threads(lambda tid: check_pings(ping, tid, k), threads)

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def queued(self):
        raise Unsupported(self.unsupported_queue)

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class FloorDriver(Driver):
    """Raw socket, one thread, no parsing."""

    name = "floor"
    version = "stdlib"
    unsupported_queue = "no parser"

    def __init__(self, port: int):
        super().__init__(port)
        self.buf = bytearray(1 << 20)

    def setup(self, mode: str) -> None:
        self.mode = mode
        self.conn = raw_login(self.port)

    def flood(self, n: int):
        s, buf = self.conn, self.buf
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
        s = self.conn
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
        s = self.conn
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


class NaiveDriver(FloorDriver):
    """Single thread: recv + split + decode + dict(partition) per packet."""

    name = "naive"

    def setup(self, mode: str) -> None:
        super().setup(mode)
        self.store = [] if mode == "stall" else None
        self.stored = 0

    def flood(self, n: int):
        s = self.conn
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


class AmiclientDriver(Driver):
    name = "amiclient"

    def __init__(self, port: int):
        import amiclient
        from amiclient import AMIClient
        super().__init__(port)
        self.AMIClient = AMIClient
        self.version = getattr(amiclient, "__version__", "?")

    def setup(self, mode: str) -> None:
        kw = {}
        if mode == "stall":
            kw["event_queue_size"] = QUEUED_EVENTS + 10_000
        c = self.AMIClient("127.0.0.1", self.port, USER, SECRET, auth="plain", events=True,
                           timeout=10.0, **kw)
        self.conn = c
        c.connect()
        self.mode = mode
        box, gate, done = self._box, self.gate, self.done

        def on_read(event):
            box[1] = event["Uniqueid"]
            box[0] += 1

        def on_stall(event):
            gate.wait()

        def on_user_event(event):
            if event.get("UserEvent") == "FloodDone":
                done.set()
        on_event = {"read": on_read, "stall": on_stall}.get(mode)
        self.handles = [c.add_listener(on_event, event=list(FLOOD_NAMES))] if on_event else []
        self.handles.append(c.add_listener(on_user_event, event="UserEvent"))

    def _trigger(self, n: int):
        return self.conn.send_action("UserEvent", UserEvent="StartFlood", Count=n)

    def _undelivered(self) -> str:
        return "FloodDone marker not delivered within 120 s (stats %s)" % self.stats()

    def _flooded(self, pending) -> None:
        pending.result(10)

    def ping_seq(self, k: int):
        action = self.conn.action
        return time_pings(lambda: action("Ping").get("Ping") == "Pong", k)

    def _conc_ping(self):
        action = self.conn.action

        def ping(tid, i):
            aid = "t%d-%d" % (tid, i)
            r = action("Ping", ActionID=aid)
            return r.get("ActionID") == aid and r.get("Ping") == "Pong"
        return ping

    def stats(self):
        try:
            st = self.conn.stats
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


class Pyst2Driver(Driver):
    name = "pyst2"

    def __init__(self, port: int):
        from asterisk.manager import Manager
        super().__init__(port)
        self.Manager = Manager

    def setup(self, mode: str) -> None:
        m = self.Manager()
        self.conn = m
        m.connect("127.0.0.1", self.port)
        m.login(USER, SECRET)
        self.mode = mode
        box, gate, done = self._box, self.gate, self.done

        def on_read(event, manager):
            box[1] = event["Uniqueid"]
            box[0] += 1

        def on_stall(event, manager):
            gate.wait()

        def on_user_event(event, manager):
            if event.get_header("UserEvent") == "FloodDone":
                done.set()
        on_event = {"read": on_read, "stall": on_stall}.get(mode)
        for name in FLOOD_NAMES if on_event else ():
            m.register_event(name, on_event)
        m.register_event("UserEvent", on_user_event)

    def _trigger(self, n: int):
        self.conn.send_action({"Action": "UserEvent", "UserEvent": "StartFlood", "Count": n})

    def ping_seq(self, k: int):
        ping = self.conn.ping
        return time_pings(lambda: ping().get_header("Ping") == "Pong", k)

    def _conc_ping(self):
        send = self.conn.send_action

        def ping(tid, i):
            aid = "t%d-%d" % (tid, i)
            r = send({"Action": "Ping", "ActionID": aid})
            return None if r is None else r.get_header("ActionID") == aid
        return ping

    def queued(self):
        return self.conn._event_queue.qsize()  # private, but it is where pyst2 queues events


class AsteriskAmiDriver(Driver):
    name = "asterisk-ami"
    unsupported_queue = "dispatches on the reader thread"

    def __init__(self, port: int):
        from asterisk.ami import AMIClient, EventListener, SimpleAction
        super().__init__(port)
        self.AMIClient, self.EventListener, self.SimpleAction = AMIClient, EventListener, SimpleAction

    def setup(self, mode: str) -> None:
        if mode == "stall":
            raise Unsupported("events are dispatched on the socket-reading thread, so a stalled "
                              "listener stops reading: nothing queues in the process")
        # timeout is both the socket timeout (the reader thread dies after that long with no
        # data) and the time a caller waits for a response
        c = self.AMIClient(address="127.0.0.1", port=self.port, timeout=10)
        self.conn = c
        r = c.login(username=USER, secret=SECRET).response
        if r is None or r.is_error():
            raise WorkerError("login failed: %s" % r)
        self.mode = mode
        box, done = self._box, self.done

        def on_read(event, **kw):
            box[1] = event["Uniqueid"]
            box[0] += 1

        def on_user_event(event, **kw):
            if event.keys.get("UserEvent") == "FloodDone":
                done.set()
        if mode == "read":
            c.add_event_listener(on_read, white_list=list(FLOOD_NAMES))
        c.add_event_listener(on_user_event, white_list="UserEvent")

    def _trigger(self, n: int):
        self.conn.send_action(self.SimpleAction("UserEvent", UserEvent="StartFlood", Count=n))

    def ping_seq(self, k: int):
        send, SA = self.conn.send_action, self.SimpleAction

        def ping():
            r = send(SA("Ping")).response
            return r is not None and r.keys.get("Ping") == "Pong"
        return time_pings(ping, k)

    def _conc_ping(self):
        send, SA = self.conn.send_action, self.SimpleAction

        def ping(tid, i):
            a = SA("Ping")  # the client assigns the ActionID
            r = send(a).response
            return None if r is None else r.keys.get("ActionID") == a.keys.get("ActionID")
        return ping

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.logoff()
            finally:
                self.conn.disconnect()


class PanoramiskDriver(Driver):
    """asyncio; every call runs the loop until its coroutine is done."""

    name = "panoramisk"
    unsupported_queue = "asyncio"

    def __init__(self, port: int):
        import asyncio
        import logging

        from panoramisk import Manager
        from panoramisk.actions import Action
        logging.getLogger("panoramisk").setLevel(logging.CRITICAL)
        super().__init__(port)
        self.asyncio, self.Manager, self.Action = asyncio, Manager, Action
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.marker = None  # future: the FloodDone marker of the current flood

    def _run(self, coro, timeout=120):
        return self.loop.run_until_complete(self.asyncio.wait_for(coro, timeout))

    def setup(self, mode: str) -> None:
        if mode == "stall":
            raise Unsupported("asyncio: a listener that blocks stalls the event loop, so "
                              "nothing is read or queued")
        loop = self.loop
        logged = loop.create_future()

        def on_login(mgr):
            if not logged.done():
                logged.set_result(True)
        m = self.Manager(loop=loop, host="127.0.0.1", port=self.port, username=USER,
                         secret=SECRET, on_login=on_login)
        self.conn = m
        self.mode = mode
        box = self._box

        def on_read(manager, event):
            box[1] = event["Uniqueid"]
            box[0] += 1

        def on_user_event(manager, event):
            if event.get("UserEvent") == "FloodDone" and self.marker is not None and not self.marker.done():
                self.marker.set_result(True)
        for name in FLOOD_NAMES if mode == "read" else ():
            m.register_event(name, on_read)
        m.register_event("UserEvent", on_user_event)

        async def go():
            await m.connect()
            await logged
        self._run(go(), 10)
        if not m.authenticated:
            raise WorkerError("login failed")

    def flood(self, n: int):
        async def go():
            self.marker = self.loop.create_future()
            self._box[0] = 0
            t0 = time.perf_counter()
            await self.conn.send_action({"Action": "UserEvent", "UserEvent": "StartFlood", "Count": n})
            await self.marker
            return time.perf_counter() - t0
        dt = self._run(go())
        return dt, (self._box[0] if self.mode == "read" else None)

    def ping_seq(self, k: int):
        async def go():
            bad = 0
            send = self.conn.send_action
            t0 = time.perf_counter()
            for _ in range(k):
                r = await send({"Action": "Ping"})
                if r.get("Ping") != "Pong":
                    bad += 1
            return time.perf_counter() - t0, bad
        return self._run(go())

    def ping_conc(self, k: int, threads: int):
        """`threads` coroutines on the one event loop, k pings each."""
        Action = self.Action
        send = self.conn.send_action
        res = {"mism": 0, "lost": 0}

        async def one():
            for _ in range(k):
                a = Action({"Action": "Ping"})
                try:
                    r = await send(a)
                except Exception:  # noqa: BLE001
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

    def close(self) -> None:
        super().close()
        if self.conn is not None:
            try:
                self._run(self.asyncio.sleep(0.05), 5)
            except Exception:  # noqa: BLE001
                pass


class ProtoDriver(Driver):
    """prototypes/leader_follower.py: amiclient's framing and parsing, with (proto-lf) or
    without (proto-reader) leader/follower reads.  Pings only; run it by naming it."""

    name = "proto-lf"
    version = "prototype"
    leader_follower = True
    unsupported_queue = "prototype: pings only"

    def __init__(self, port: int):
        from prototypes.leader_follower import ProtoClient
        super().__init__(port)
        self.ProtoClient = ProtoClient

    def setup(self, mode: str) -> None:
        if mode != "none":
            raise Unsupported("prototype: pings only")
        self.mode = mode
        self.conn = self.ProtoClient(raw_login(self.port), leader_follower=self.leader_follower)

    def flood(self, n: int):
        raise Unsupported("prototype: pings only")

    def ping_seq(self, k: int):
        action = self.conn.action
        return time_pings(lambda: action("Ping").get("Ping") == "Pong", k)

    def _conc_ping(self):
        action = self.conn.action

        def ping(tid, i):
            aid = "t%d-%d" % (tid, i)
            r = action("Ping", action_id=aid)
            return r.get("ActionID") == aid and r.get("Ping") == "Pong"
        return ping


class CeilingDriver(FloorDriver):
    """One thread, no futures, no locks, amiclient's Python work of a blocking action
    (serialize_action, sendall, recv, Framer.feed, parse_packet, ActionID check): the most a
    design keeping that work can reach.  Sequential pings only; run it by naming it."""

    name = "ceiling"
    version = "amiclient._protocol"
    unsupported_queue = "sequential pings only"

    def __init__(self, port: int):
        import os
        import sys
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if repo not in sys.path:
            sys.path.insert(0, repo)
        from amiclient._protocol import Framer, parse_packet, serialize_action
        super().__init__(port)
        self.framer = Framer(expect_banner=False)
        self.parse, self.serialize = parse_packet, serialize_action
        self.i = 0

    def setup(self, mode: str) -> None:
        if mode != "none":
            raise Unsupported("sequential pings only")
        super().setup(mode)

    def flood(self, n: int):
        raise Unsupported("sequential pings only")

    def ping_seq(self, k: int):
        s, feed, parse, serialize = self.conn, self.framer.feed, self.parse, self.serialize
        bad = 0
        t0 = time.perf_counter()
        for _ in range(k):
            self.i += 1
            aid = "c-%d" % self.i
            s.sendall(serialize("Ping", {}, aid))
            texts = []
            while not texts:
                texts = feed(s.recv(65536))
            r = parse(texts[0])
            if r.get("ActionID") != aid or r.get("Ping") != "Pong":
                bad += 1
        return time.perf_counter() - t0, bad

    def ping_conc(self, k: int, threads: int):
        raise Unsupported("sequential pings only")


class ProtoReaderDriver(ProtoDriver):
    name = "proto-reader"
    leader_follower = False


DRIVERS = {
    "floor": FloorDriver,
    "naive": NaiveDriver,
    "amiclient": AmiclientDriver,
    "pyst2": Pyst2Driver,
    "asterisk-ami": AsteriskAmiDriver,
    "panoramisk": PanoramiskDriver,
    "ceiling": CeilingDriver,
    "proto-lf": ProtoDriver,
    "proto-reader": ProtoReaderDriver,
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

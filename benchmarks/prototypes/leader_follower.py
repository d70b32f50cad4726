"""Prototype: leader/follower reads for a threaded AMI client (issue 13), for measurement only.

A minimal client with the design card's shape: one reader thread that resolves
per-ActionID futures, one dispatcher thread that gets events in batches.  It
reuses ``amiclient._protocol`` for framing, parsing and serialising, so the
Python work per action is close to amiclient's; what it changes is *who reads
the socket*:

* ``ProtoClient(port, leader_follower=False)``: the classic design: callers
  only wait on their future; the reader thread reads (two thread wake-ups per
  action: the reader woken by data, the caller woken by the reader).
* ``ProtoClient(port, leader_follower=True)``: a caller that is the only
  waiter takes the read right and reads the socket itself until its own
  response arrives (resolving any other futures and batching events to the
  dispatcher on the way); the reader thread keeps the socket whenever no
  caller waits, and parks while callers lead.  See ANALYSIS.md,
  "Unpinned, per-action latency", for the protocol and its invariants.

Nothing here is used by amiclient; ``benchmarks/run.py --contenders
floor,proto-reader,proto-lf --scenarios ping_seq,ping16`` measures both
modes next to the raw ping loop.  Stand-alone:
``python benchmarks/prototypes/leader_follower.py PORT`` (a running
``benchmarks/loadgen.py``).
"""

from __future__ import annotations

import itertools
import os
import queue
import select
import socket
import struct
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from amiclient._protocol import Framer, parse_packet, serialize_action  # noqa: E402

RECV_SIZE = 65536
TICK = 0.05  # a leader looks at its deadline at least this often
CONTENDED = 0.005  # after a caller found another waiting, nobody leads for this long
BANNER = b"Asterisk Call Manager/11.0.0\r\n"


class Future:
    """Resolved once, by whoever holds the read right (or by its own caller on timeout)."""

    __slots__ = ("lock", "value", "action_id")

    def __init__(self, action_id: str) -> None:
        self.action_id = action_id
        self.value = None
        self.lock = threading.Lock()
        self.lock.acquire()

    def set(self, value) -> None:
        if self.value is None:
            self.value = value
            self.lock.release()

    def wait(self, timeout: float):
        if self.value is None and self.lock.acquire(timeout=max(0.0, timeout)):
            self.lock.release()
        return self.value


class ProtoClient:
    def __init__(self, sock: socket.socket, leader_follower: bool = True, grace: float = 0.002,
                 idle: float = 1.0) -> None:
        sock.setblocking(True)
        # A leader reads with a plain blocking recv() (one system call, as the raw loop); the
        # kernel's receive timeout turns it into EAGAIN every TICK so it can check its deadline.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, int(TICK * 1e6)))
        self.sock = sock
        self.lf = leader_follower
        self.grace = grace
        self.idle = idle
        self.framer = Framer()
        self.framer.feed(BANNER)  # the login already consumed the real banner
        self.pending: dict = {}
        self.ids = itertools.count()
        self.write_lock = threading.Lock()
        # read-right state, all under `cv`'s lock
        self.cv = threading.Condition(threading.Lock())
        self.leader = False  # a caller holds the read right
        self.reading = False  # the reader thread holds it (only around one non-blocking recv)
        self.polling = False  # the reader thread is blocked in poll() (without the read right)
        self.waiters = 0  # callers blocked waiting for a response
        self.gen = 0  # incremented whenever a caller takes the lead
        self.contended_until = 0.0  # callers do not lead before this (monotonic) time
        self.closed = False
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.events_seen = 0
        self.leader_reads = 0
        self.reader_reads = 0
        self.reader_wakeups = 0
        self.kicks = 0
        # a new leader kicks the reader out of poll() once, so that it parks on `cv` instead of
        # being woken by every packet the leader reads (Linux wakes every poller of a socket)
        self._kick_r, self._kick_w = os.pipe()
        os.set_blocking(self._kick_r, False)
        self.threads = [threading.Thread(target=self._reader, name="proto-io", daemon=True),
                        threading.Thread(target=self._dispatcher, name="proto-dispatcher", daemon=True)]
        for t in self.threads:
            t.start()

    # ── the work on received bytes (done by whoever holds the read right) ──
    def _process(self, data: bytes) -> None:
        texts = self.framer.feed(data)
        events = []
        pending = self.pending
        for text in texts:
            if text.startswith("Response: "):
                response = parse_packet(text)
                fut = pending.pop(response.get("ActionID"), None)
                if fut is not None:
                    fut.set(response)
            else:
                events.append(text)
        if events:
            self.events.put(events)  # one queue operation per batch; listeners run on the dispatcher

    def _recv(self):
        try:
            return self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None

    # ── threads ──
    def _reader(self) -> None:
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self._kick_r, select.POLLIN)
        sock_fd = self.sock.fileno()
        idle_ms = int(self.idle * 1000)
        cv = self.cv
        seen = 0
        while True:
            with cv:
                while True:  # park while a caller leads, and for a grace period after one led
                    if self.closed:
                        return
                    if self.leader or (self.waiters == 0 and self.gen != seen):
                        # a caller leads, or led within the last grace period: stay parked, but
                        # look again after `grace` (a leader that leaves with no follower does not
                        # notify, so events wait at most about `grace` for the reader)
                        seen = self.gen
                        cv.wait(self.grace)
                    else:
                        break
                    self.reader_wakeups += 1
                self.polling = True
            ready = poller.poll(idle_ms)  # no read right while blocked: a caller may take it
            self.reader_wakeups += 1
            with cv:
                self.polling = False
                if any(fd == self._kick_r for fd, _ in ready):
                    try:
                        os.read(self._kick_r, 64)
                    except BlockingIOError:
                        pass
                if self.leader or self.closed or not any(fd == sock_fd for fd, _ in ready):
                    continue  # a caller took over: it reads (we park on the next turn)
                self.reading = True
            try:
                data = self._recv()
                if data == b"":
                    self.close()
                    return
                if data:
                    self.reader_reads += 1
                    self._process(data)
            finally:
                with cv:
                    self.reading = False

    def _dispatcher(self) -> None:
        while True:
            batch = self.events.get()
            if batch is None:
                return
            self.events_seen += len(batch)

    # ── caller side ──
    def send_action(self, name: str, action_id: str | None = None, **headers) -> Future:
        aid = action_id or "p-%d" % next(self.ids)
        data = serialize_action(name, headers, aid)
        fut = Future(aid)
        self.pending[aid] = fut
        with self.write_lock:
            self.sock.sendall(data)
        return fut

    def wait(self, fut: Future, timeout: float = 10.0):
        if fut.value is not None:  # the answer is already there: no wait, no wake-up
            return fut.value
        now = time.monotonic()
        deadline = now + timeout
        cv = self.cv
        with cv:
            self.waiters += 1
            if self.waiters > 1:  # concurrent callers: the reader thread serves them all
                self.contended_until = now + CONTENDED
            lead = (self.lf and not self.leader and not self.reading and self.waiters == 1
                    and now >= self.contended_until)
            if lead:
                self.leader = True
                self.gen += 1
                if self.polling:  # get the reader out of poll() once; it parks until we leave
                    self.polling = False
                    self.kicks += 1
                    os.write(self._kick_w, b"k")
        try:
            if lead:
                recv = self.sock.recv
                while fut.value is None:
                    if deadline - time.monotonic() <= 0:
                        break
                    try:
                        data = recv(RECV_SIZE)  # blocks at most TICK (SO_RCVTIMEO)
                    except BlockingIOError:
                        continue
                    if data == b"":
                        self.close()
                        break
                    if data:
                        self.leader_reads += 1
                        self._process(data)
            else:
                fut.wait(deadline - time.monotonic())
        finally:
            with cv:
                self.waiters -= 1
                if lead:
                    self.leader = False
                    if self.waiters:  # followers are left: the reader reads for them now
                        cv.notify()
        if fut.value is None:  # timed out (or the link closed): this caller's own error
            self.pending.pop(fut.action_id, None)
            raise TimeoutError("no answer to %s" % fut.action_id)
        return fut.value

    def action(self, name: str, action_id: str | None = None, timeout: float = 10.0, **headers):
        return self.wait(self.send_action(name, action_id, **headers), timeout)

    def close(self) -> None:
        with self.cv:
            if self.closed:
                return
            self.closed = True
            self.cv.notify_all()
        self.events.put(None)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        os.close(self._kick_w)


def ctx_switches() -> tuple:
    """(voluntary, involuntary) context switches of all threads of this process so far."""
    v = nv = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/status" % task) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        v += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        nv += int(line.split()[1])
        except OSError:
            pass
    return v, nv


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from common import raw_login
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    for lf in (False, True):
        c = ProtoClient(raw_login(port), leader_follower=lf)
        for _ in range(3):
            cs0 = ctx_switches()
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            for _ in range(n):
                c.action("Ping")
            dt = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            cs1 = ctx_switches()
            print("%s: %.0f pings/s, %.1f us CPU/ping, %.2f voluntary + %.2f involuntary context switches/ping"
                  " (leader reads %d, reader reads %d, reader wake-ups %d, kicks %d)"
                  % ("leader/follower" if lf else "reader thread", n / dt, cpu / n * 1e6,
                     (cs1[0] - cs0[0]) / n, (cs1[1] - cs0[1]) / n, c.leader_reads, c.reader_reads,
                     c.reader_wakeups, c.kicks))
        c.close()


if __name__ == "__main__":
    main()

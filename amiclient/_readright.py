"""Leader/follower reads: a caller waiting alone reads the socket itself (issue 13).

A caller waiting for an answer while no other caller waits takes the
*read right* (it leads): it reads the socket and hands what it reads to
the same ``on_packets`` as the reader thread, which parks meanwhile; the
reader keeps the socket whenever no caller leads.  A sequential action
then costs no thread wake-up instead of two (the reader woken by data,
the caller woken by the reader).  At most one thread (the reader or one
leader) holds the read right at a time, so the framer and the routing
never run concurrently; a leader only routes (listeners run on the
dispatcher, done-callbacks on the callback threads).

Once two callers waited at once, nobody leads for ``_CONTENDED``: the
reader serves concurrent callers with one wake-up per batch.  A mixin of
:class:`~amiclient._connection.Connection`.
"""
from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Callable, List, Optional

from .exceptions import ConnectionLost, ProtocolError

if TYPE_CHECKING:
    from ._protocol import Framer

__all__ = ["ReadRight"]

log = logging.getLogger("amiclient.connection")

RECV_SIZE = 65536  # below glibc's mmap threshold: no mmap/munmap per recv
_GRACE = 0.002  # s: the reader stays parked this long after a caller led (a sequential caller leads again)
_CONTENDED = 0.005  # s: once two callers waited at once, nobody leads for this long (the reader serves them)
_TICK = 0.05  # s: a leader looks at the connection's state at least this often


class ReadRight:
    """Who reads the socket: the reader thread, or a caller waiting alone."""

    if TYPE_CHECKING:  # provided by Connection
        _sock: Optional[socket.socket]
        _tls_lock: threading.Lock
        _carry: Optional[memoryview]
        _nowait: int
        closed: bool
        framer: Framer
        bytes_in: int
        last_received: float

        @property
        def address(self) -> str: ...
        def close(self, reason: Optional[BaseException] = None) -> None: ...
        def wake(self) -> None: ...

    def _init_read_right(self) -> None:
        # The read right (leader/follower), all under _rr's lock, held only for field updates, never across I/O.
        self._rr_lock = threading.Lock()  # what `with` takes: the C lock, not the Condition's Python wrapper
        self._rr = threading.Condition(self._rr_lock)
        self._on_packets: Optional[Callable[[List[str]], None]] = None  # set while run() reads
        self._leader = False  # a caller holds the read right
        self._reading = False  # the reader holds it (around one recv and the handling of what it read)
        self._polling = False  # the reader waits in poll() without it
        self._waiters = 0  # callers in await_answer()
        self._gen = 0  # incremented whenever a caller takes the lead
        self._contended_until = 0.0
        self._pause = 0.0  # how long the parked reader waits before looking again
        self._lead_ready: Optional[Callable[[float], bool]] = None  # a leader's wait for data (made once)
        self.leader_reads = 0  # reads done by callers (statistics)

    def _park(self, on_tick: Callable[[], None], wait_time: Callable[[], float], seen: int) -> int:
        """Reader: wait while a caller leads (and ``_GRACE`` after one led, if no caller waits); run due timers.

        Returns the lead generation last seen.  A leader that leaves with
        callers still waiting (or after a long lead) notifies; otherwise
        the reader looks again every ``_GRACE`` (longer while one caller
        keeps leading), so events that arrive after a burst of actions
        wait at most that long.
        """
        rr = self._rr
        pause = _GRACE
        while True:
            with rr:
                while (not self.closed and self._carry is None
                       and (self._leader or (self._waiters == 0 and self._gen != seen))):
                    pause = pause * 2 if self._leader and self._gen == seen else _GRACE
                    seen = self._gen
                    timeout = wait_time()
                    if timeout <= 0:
                        break  # a timer is due: run it, then park again
                    self._pause = min(pause, _TICK, timeout)
                    rr.wait(self._pause)
                    self._pause = 0.0
                else:
                    return seen
            on_tick()

    def await_answer(self, done: Callable[[], bool], block: Callable[[Optional[float]], None],
                     deadline: Optional[float]) -> None:
        """Return when ``done()`` or at ``deadline`` (``time.monotonic()``; None = never).

        A caller that is the only one waiting, while the reader runs,
        reads the socket itself meanwhile (it leads; the reader parks);
        otherwise it follows: ``block(timeout)`` waits for the reader (or
        a leader) to resolve its answer.  A leader only routes what it
        reads (``on_packets``): it runs no user code.
        """
        rr = self._rr
        started = time.monotonic()
        with self._rr_lock:
            self._waiters += 1
            if self._waiters > 1:  # concurrent callers: the reader serves them all with one wake-up per batch
                self._contended_until = started + _CONTENDED
            lead = (not self._leader and not self._reading and self._waiters == 1 and not self.closed
                    and started >= self._contended_until and self._on_packets is not None)
            kick = False
            if lead:
                self._leader = True
                self._gen += 1
                kick, self._polling = self._polling, False
        try:
            if lead:
                if kick:  # get the reader out of poll() once, so it parks instead of waking for every packet
                    self.wake()
                self._lead(done, deadline)
            else:
                block(None if deadline is None else max(0.0, deadline - time.monotonic()))
        finally:
            with self._rr_lock:
                self._waiters -= 1
                if lead:
                    self._leader = False
                    if self._waiters or self.closed or self._pause > _GRACE:
                        rr.notify_all()  # the reader reads for the callers left (or sees the end)

    def _lead(self, done: Callable[[], bool], deadline: Optional[float]) -> None:
        """A caller holding the read right: read and route until ``done()``, ``deadline`` or the connection ends."""
        sock = self._sock
        on_packets = self._on_packets
        if sock is None or on_packets is None:
            return
        tls = isinstance(sock, ssl.SSLSocket)
        nowait = self._nowait
        ready = self._lead_ready
        if ready is None:
            ready = self._lead_ready = _reader_wait(sock)
        monotonic = time.monotonic
        while not done() and not self.closed:
            remaining = _TICK if deadline is None else min(deadline - monotonic(), _TICK)
            if remaining <= 0:
                return
            try:
                if tls:
                    with self._tls_lock:
                        decrypted = sock.pending() > 0  # type: ignore[attr-defined]
                    if not decrypted and not ready(remaining):
                        continue
                    with self._tls_lock:
                        data = sock.recv(RECV_SIZE)
                elif nowait and remaining >= _TICK:  # a blocking socket: one recv(), bounded by SO_RCVTIMEO (_TICK)
                    data = sock.recv(RECV_SIZE)
                else:
                    if not ready(remaining):
                        continue
                    data = sock.recv(RECV_SIZE, nowait)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                continue
            except (OSError, ValueError) as exc:
                if not self.closed:
                    error = ConnectionLost(f"connection to {self.address} failed: {exc}")
                    error.__cause__ = exc
                    self.close(error)
                return
            if not data:
                self.close(ConnectionLost(f"{self.address} closed the connection"))
                return
            self.bytes_in += len(data)
            self.last_received = monotonic()
            self.leader_reads += 1
            try:
                packets = self.framer.feed(data)
                if packets:
                    on_packets(packets)
            except ProtocolError as exc:
                log.error("protocol error from %s: %s", self.address, exc)
                self.close(exc)
                return
            except Exception as exc:  # a bug in the routing: end the link as the reader would
                if not isinstance(exc, ConnectionLost):
                    log.exception("reading from %s stopped by an unexpected error", self.address)
                self.close(exc)
                return


def _reader_wait(sock: socket.socket) -> Callable[[float], bool]:
    """A function ``ready(timeout)``: wait up to ``timeout`` s for data on ``sock``; True if there is some."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)

        def ready_poll(timeout: float) -> bool:
            return bool(poller.poll(max(0, int(timeout * 1000 + 0.999))))
        return ready_poll

    def ready_select(timeout: float) -> bool:
        return bool(select.select((sock,), (), (sock,), max(0.0, timeout))[0])
    return ready_select

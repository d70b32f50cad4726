"""One client connection of ``FakeAMIServer``: its thread, I/O loop and state.

Each session thread owns its socket (non-blocking) and is the only writer to
it, like an Asterisk session thread: it reads, runs actions in order, writes
each response (with its list items) in one piece, and writes queued events
only between actions.  Other threads hand it events through an inbox and
wake it through a socket pair.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, List, Optional, Protocol, Tuple

from ._events import Event, EventFilter, EventSpec, filters_allow, make_event
from ._faults import Fault, FaultState, oversized_packet
from ._wire import HandlerResult, Packet, PacketParser, build_response, encode_packets

__all__ = ["ActionSpec", "Handler", "Session", "SessionHost"]

logger = logging.getLogger(__name__)

_RECV_SIZE = 256 * 1024
_MERGE_LIMIT = 1024 * 1024
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)


class SessionHost(Protocol):
    """What a session needs from its server (``ServerCore`` provides it)."""

    @property
    def banner(self) -> bytes: ...

    @property
    def write_timeout(self) -> Optional[float]: ...

    @property
    def faults_state(self) -> FaultState: ...

    def _record(self, packet: Packet) -> None: ...

    def _dispatch(self, session: Session, packet: Packet) -> HandlerResult: ...

    def _session_ended(self, session: Session) -> None: ...


class _Chunk:
    """Bytes waiting to be written, with how to write them."""

    __slots__ = ("data", "pos", "drip", "interval")

    def __init__(self, data: bytes, drip: bool = False, interval: float = 0.0) -> None:
        self.data = data
        self.pos = 0
        self.drip = drip
        self.interval = interval


def _linger_zero(sock: socket.socket) -> None:
    fmt = "HH" if sys.platform == "win32" else "ii"
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(fmt, 1, 0))


class Session:
    """A client connection as the server sees it.

    Public state: ``username``, ``authenticated``, ``read_perm``,
    ``write_perm``, ``event_mask``, ``filters``, ``challenge``, ``received``
    (parsed client packets), ``peer``, ``stalled``.
    """

    def __init__(
        self,
        server: SessionHost,
        sock: socket.socket,
        peer: Tuple[str, int],
        stalled: bool = False,
    ) -> None:
        #: The server (a ``FakeAMIServer``); typed by the core's interface.
        self.server = server
        self.peer = peer
        self.stalled = stalled
        self.username: Optional[str] = None
        self.authenticated = False
        self.read_perm = 0
        self.write_perm = 0
        self.event_mask = 0
        self.filters: List[EventFilter] = []
        self.challenge: Optional[str] = None
        self.received: List[Packet] = []
        self.connected_at = time.time()
        self._sock = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._inbox: List[bytes] = []
        self._out: Deque[_Chunk] = deque()
        self._parser = PacketParser()
        self._closing = False
        self._sealed = False
        self._aborting = False
        self._close_deadline: Optional[float] = None
        self._flush_timeout = 1.0
        self._interrupt = threading.Event()
        self._closed = threading.Event()
        self._next_send = 0.0
        self._last_progress = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name="FakeAMI-session-%s:%s" % peer[:2], daemon=True
        )

    def __repr__(self) -> str:
        return "<Session %s:%s user=%r authenticated=%r>" % (
            self.peer[0], self.peer[1], self.username, self.authenticated,
        )

    # -- public API ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection is closed and the session thread has ended."""
        return self._closed.is_set()

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Wait until the session has ended; return whether it has."""
        return self._closed.wait(timeout)

    def close(self, flush_timeout: float = 1.0) -> None:
        """Close gracefully: write what is queued (up to ``flush_timeout`` s), then FIN.

        Called from a handler, the handler's response is still written.
        """
        with self._lock:
            if not self._closing:
                self._flush_timeout = flush_timeout
            self._closing = True
            self._wake()
        self._interrupt.set()

    def abort(self) -> None:
        """Reset the connection (RST, via ``SO_LINGER`` 0); queued output is lost."""
        self._aborting = True
        self._interrupt.set()
        with self._lock:
            self._wake()

    def sleep(self, seconds: float) -> bool:
        """Wait in a handler; return ``False`` early if the session is closing."""
        if seconds <= 0:
            return not self._interrupt.is_set()
        return not self._interrupt.wait(seconds)

    def push(self, data: bytes) -> None:
        """Queue raw bytes for this client (written between actions)."""
        if self.server.faults_state.peek(Fault.NO_ANSWER) is not None:
            return
        with self._lock:
            if self._closing:
                return
            self._inbox.append(data)
            if len(self._inbox) == 1:
                self._wake()  # after the append: the thread may be checking the inbox

    def emit(self, event: EventSpec, **headers: str) -> bool:
        """Send one event to this session only, if its mask and filters allow it."""
        return self.deliver(make_event(event, headers))

    def deliver(self, event: Event) -> bool:
        """Queue an encoded event if the session is logged in and accepts it."""
        if self.server.faults_state.peek(Fault.NO_ANSWER) is not None:
            return False
        with self._lock:
            if self._closing or not self.authenticated or not self.event_mask:
                return False
            if (self.event_mask & event.classes) != event.classes:
                return False
            if self.filters and not filters_allow(self.filters, event):
                return False
            self._inbox.append(event.data)
            if len(self._inbox) == 1:  # else a wake-up is already on its way
                self._wake()
        return True

    def set_event_mask(self, mask: int) -> None:
        """Set the event mask (thread-safe)."""
        with self._lock:
            self.event_mask = mask

    def add_filter(self, event_filter: EventFilter) -> None:
        """Add an event filter (thread-safe)."""
        with self._lock:
            self.filters = self.filters + [event_filter]

    # -- thread -------------------------------------------------------------

    def start(self) -> None:
        """Start the session thread."""
        self._thread.start()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Join the session thread; return whether it has ended."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _wake(self) -> None:
        # Called with self._lock held, so _finish() cannot close the pair meanwhile.
        if self._wake_w.fileno() < 0:
            return
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # full: a wake-up is pending anyway

    def _run(self) -> None:
        sel = _Selector()
        reset = False
        try:
            sel.register(self._wake_r, selectors.EVENT_READ)
            sel.register(self._sock, selectors.EVENT_READ)
            registered = selectors.EVENT_READ
            if not self.stalled:
                self._queue(self.server.banner)
            self._flush()
            while True:
                if self._aborting:
                    reset = True
                    return
                now = time.monotonic()
                timeout = None
                if self._closing:
                    self._drain_inbox()
                    self._flush()
                    if not self._out:
                        return
                    if self._close_deadline is None:
                        self._close_deadline = now + self._flush_timeout
                    if now >= self._close_deadline:
                        return
                    timeout = self._close_deadline - now
                wt = self.server.write_timeout
                if self._out and wt is not None:
                    if now - self._last_progress > wt:
                        logger.info("%r: write timeout, disconnecting", self)
                        return
                    left = self._last_progress + wt - now
                    timeout = left if timeout is None else min(timeout, left)
                want = 0 if self._closing else selectors.EVENT_READ
                if want and self.server.faults_state.peek(Fault.STOP_READING) is not None:
                    want = 0  # look again soon: the fault may be cleared
                    timeout = 0.05 if timeout is None else min(timeout, 0.05)
                if self._out:
                    head = self._out[0]
                    if head.drip and head.interval and now < self._next_send:
                        left = self._next_send - now
                        timeout = left if timeout is None else min(timeout, left)
                    else:
                        want |= selectors.EVENT_WRITE
                if want != registered:
                    if registered and want:
                        sel.modify(self._sock, want)
                    elif want:
                        sel.register(self._sock, want)
                    else:
                        sel.unregister(self._sock)
                    registered = want
                for key, mask in sel.select(timeout):
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                    elif mask & selectors.EVENT_READ and not self._read():
                        self._closing = True  # EOF: flush what is left, then end
                self._drain_inbox()
                self._flush()
        except OSError as exc:
            logger.debug("%r: connection error: %s", self, exc)
        except Exception:  # pragma: no cover - a bug; keep the server alive
            logger.exception("%r: session thread failed", self)
        finally:
            sel.close()
            self._finish(reset)

    def _finish(self, reset: bool) -> None:
        self._interrupt.set()
        with self._lock:
            self._closing = True
            self._inbox.clear()
        try:
            if reset:
                _linger_zero(self._sock)
            else:
                self._sock.shutdown(socket.SHUT_WR)
                self._discard_input()
        except OSError:
            pass
        self._sock.close()
        with self._lock:
            self._wake_r.close()
            self._wake_w.close()
        self._out.clear()
        self.server._session_ended(self)
        self._closed.set()

    def _discard_input(self) -> None:
        # Reading what the client sent avoids an RST on close() (Linux).
        for _ in range(64):
            try:
                if not self._sock.recv(_RECV_SIZE):
                    return
            except OSError:
                return

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _read(self) -> bool:
        if self.server.faults_state.peek(Fault.STOP_READING) is not None:
            return True  # the loop stops watching the socket
        try:
            data = self._sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return True
        if not data:
            return False
        for packet in self._parser.feed(data):
            if self._closing or self._aborting:
                break
            self._handle(packet)
        return True

    # -- actions and output -------------------------------------------------

    def _handle(self, packet: Packet) -> None:
        self.received.append(packet)
        server = self.server
        server._record(packet)
        if self.stalled:
            return
        faults = server.faults_state
        if faults.take(Fault.NO_ANSWER) is not None:
            return
        if faults.take(Fault.RESET) is not None:
            self._aborting = True
            return
        self._drain_inbox()
        try:
            result = server._dispatch(self, packet)
            data = encode_packets(result)
        except Exception as exc:
            logger.exception("%r: handler for %r failed", self, packet.action)
            data = encode_packets(build_response(packet, "Handler failed: %s" % exc, "Error"))
        if data:
            self._queue_response(data)
        self._drain_inbox()

    def _queue_response(self, data: bytes) -> None:
        faults = self.server.faults_state
        spec = faults.take(Fault.OVERSIZED)
        if spec is not None:
            self._queue(oversized_packet(spec.size, spec.terminated))
        spec = faults.take(Fault.GARBAGE)
        if spec is not None:
            self._queue(spec.data)
            if spec.replace:
                return
        if faults.take(Fault.CLOSE_MID_PACKET) is not None:
            self._queue(data[: max(1, len(data) // 2)])
            self._sealed = True
            self.close()
            return
        self._queue(data)

    def _queue(self, data: bytes) -> None:
        if self._sealed or not data:
            return
        spec = self.server.faults_state.take(Fault.DRIP)
        if spec is not None:
            self._out.append(_Chunk(data, True, spec.interval))
        else:
            self._out.append(_Chunk(data))
        if len(self._out) == 1:
            self._last_progress = time.monotonic()

    def _drain_inbox(self) -> None:
        if not self._inbox:
            return
        with self._lock:
            items, self._inbox = self._inbox, []
        if self.server.faults_state.peek(Fault.NO_ANSWER) is not None:
            return
        for data in items:
            self._queue(data)

    def _merge_head(self) -> None:
        out = self._out
        head = out[0]
        if head.drip or len(out) < 2 or out[1].drip:
            return
        parts = [head.data[head.pos:]]
        size = len(parts[0])
        out.popleft()
        while out and not out[0].drip and size < _MERGE_LIMIT:
            data = out.popleft().data
            parts.append(data)
            size += len(data)
        out.appendleft(_Chunk(b"".join(parts)))

    def _flush(self) -> None:
        out = self._out
        sock = self._sock
        while out:
            self._merge_head()
            head = out[0]
            try:
                if head.drip:
                    if head.interval:
                        now = time.monotonic()
                        if now < self._next_send:
                            return
                        self._next_send = now + head.interval
                    sent = sock.send(head.data[head.pos:head.pos + 1])
                else:
                    sent = sock.send(memoryview(head.data)[head.pos:])
            except (BlockingIOError, InterruptedError):
                return
            self._last_progress = time.monotonic()
            head.pos += sent
            if head.pos >= len(head.data):
                out.popleft()


#: An action handler: ``handler(session, packet) -> HandlerResult``.
Handler = Callable[[Session, Packet], HandlerResult]


@dataclass(frozen=True)
class ActionSpec:
    """A registered action: its name, handler, write authority and synopsis."""

    name: str
    handler: Handler
    authority: int = 0
    synopsis: str = "Custom action."

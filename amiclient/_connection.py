"""One socket to an AMI server: connect, banner, handshake exchanges, the read loop, deadline-bounded writes.

The connection knows bytes, packets and sockets; it knows nothing of
futures, listeners or reconnecting.  It reports through two callables given
to :meth:`Connection.run`: ``on_packets(texts)`` for every batch of complete
packet texts, and ``on_tick()`` whenever the wait chosen by
``wait_time()`` ends without data (or :meth:`Connection.wake` was called).
Either may raise to end the connection.

Every read and write but a leader's is non-blocking once connected (on
Linux over plain TCP the socket itself is blocking, with a short
``SO_RCVTIMEO``, and those calls pass ``MSG_DONTWAIT``, so that a leader
waits in one ``recv()``): the reader waits in ``poll()``/``select()``,
and a writer waits for room only until its deadline.  Writing (group
commit, deadlines, the reader finishing what a sender left) is the
:class:`~amiclient._writing.Writer` mixin.

Leader/follower reads (:meth:`Connection.await_answer`): a caller waiting
for an answer while no other caller waits reads the socket itself (it
*leads*) and hands what it reads to the same ``on_packets`` as the reader
thread, which parks meanwhile; the reader keeps the socket whenever no
caller leads.  One action then costs no thread wake-up, instead of two.
At most one thread (the reader or one leader) holds the *read right* at a
time, so the framer and the routing are never run concurrently.
"""
from __future__ import annotations

import _socket
import functools
import logging
import select
import socket
import ssl
import struct
import sys
import threading
import time
from typing import Callable, List, Optional, Tuple

from ._protocol import DEFAULT_MAX_PACKET_SIZE, Framer, parse_banner, parse_packet
from ._readright import _TICK, RECV_SIZE, ReadRight
from ._writing import _NEVER, NotSent, Writer, _wait_for
from .exceptions import AMIConnectionError, AMIError, ConnectionLost, ProtocolError
from .packet import Response

__all__ = ["Connection", "NotSent", "RECV_SIZE"]

log = logging.getLogger("amiclient.connection")

# The kernel rounds SO_RCVTIMEO up to whole clock ticks and wakes a tick late (50 ms lasts ~56 ms at HZ=250):
# ask for less, so that a blocking read never outlasts _TICK (a leader starts one with >= _TICK left).
_RCVTIMEO = _TICK * 0.6


class Connection(ReadRight, Writer):
    """A TCP (optionally TLS) connection speaking AMI framing."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        connect_timeout: float = 5.0,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        encoding: str = "utf-8",
        errors: str = "replace",
        tcp_keepalive: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.tcp_keepalive = tcp_keepalive
        self.framer = Framer(max_packet_size=max_packet_size, encoding=encoding, errors=errors)
        self.version: Optional[str] = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.packets_sent = 0
        self.last_received = time.monotonic()
        self.closed = False
        self._sock: Optional[socket.socket] = None
        self._write_lock = threading.Lock()  # held by the one thread writing to the socket
        self._outbox_lock = threading.Lock()  # guards _outbox, _outbox_deadline and _sock changes, briefly
        self._outbox: List[bytes] = []
        self._outbox_deadline = _NEVER  # the earliest write deadline of the queued bytes
        # A batch a sender could not finish by its own deadline: the reader writes the rest (and what follows).
        self._carry: Optional[memoryview] = None
        self._carry_deadline = _NEVER
        self._carry_size = 0
        self._carry_packets = 0
        self._nowait = 0  # MSG_DONTWAIT on a blocking socket (plain TCP where supported), 0 on a non-blocking one
        self._reader: Optional[int] = None  # the reader thread's ident while run() runs
        self._tls_lock = threading.Lock()  # TLS only: OpenSSL calls never overlap
        self._wake_w: Optional[socket.socket] = None  # set while run() waits; guarded by _outbox_lock
        self._backlog: List[str] = []
        self._close_reason: Optional[BaseException] = None
        self._init_read_right()

    @property
    def address(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"

    def open(self) -> str:
        """Connect and read the banner; return the AMI version (``"11.0.0"``)."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise AMIConnectionError(f"cannot connect to AMI at {self.address}: {exc}") from exc
        self._adopt(sock)  # from here on, close() interrupts the TLS handshake and the banner wait
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tcp_keepalive:
                _enable_tcp_keepalive(sock)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
                self._adopt(sock)
            self._nowait = _blocking_reads(sock) if self.ssl_context is None else 0
            if not self._nowait:
                sock.setblocking(False)
        except (OSError, ssl.SSLError) as exc:
            error = self._closed_error() if self.closed else None
            self.close()
            sock.close()
            if error is not None:
                raise error from exc
            raise AMIConnectionError(f"cannot set up the connection to {self.address}: {exc}") from exc
        try:
            while self.framer.banner is None:
                self._backlog.extend(self.framer.feed(self._recv(self.connect_timeout, "the banner")))
        except BaseException:
            self.close()
            raise
        self.version = parse_banner(self.framer.banner)
        log.debug("connected to %s: %s", self.address, self.framer.banner)
        return self.version or ""

    def _adopt(self, sock: socket.socket) -> None:
        """Make ``sock`` the connection's socket, unless close() was called meanwhile."""
        with self._outbox_lock:
            if not self.closed:
                self._sock = sock
                return
        sock.close()
        raise self._closed_error()

    def _closed_error(self) -> AMIError:
        reason = self._close_reason
        return reason if isinstance(reason, AMIError) else ConnectionLost(f"connection to {self.address} is closed")

    def _recv(self, timeout: float, waiting_for: str) -> bytes:
        """Read what arrives within ``timeout`` s (handshake only: the reader has not started)."""
        deadline = time.monotonic() + timeout
        while True:
            sock = self._sock
            if sock is None or self.closed:
                raise self._closed_error()
            try:
                data = sock.recv(RECV_SIZE, self._nowait)
                break
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                if self.closed:
                    raise self._closed_error() from exc
                raise ConnectionLost(f"connection to {self.address} failed: {exc}") from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AMIConnectionError(f"no answer from {self.address} within {timeout:g} s waiting for {waiting_for}")
            _wait_for(sock, False, min(remaining, 1.0))
        if not data:
            if self.closed:
                raise self._closed_error()
            raise ConnectionLost(f"{self.address} closed the connection while we waited for {waiting_for}")
        self.bytes_in += len(data)
        self.last_received = time.monotonic()
        return data

    def exchange(self, data: bytes, action_id: str, timeout: float) -> Response:
        """Send one action and block until its response; other packets wait for :meth:`run`.

        Only for the handshake (login, re-applying filters), before the read
        loop starts.
        """
        deadline = time.monotonic() + timeout
        self.send(data, deadline=deadline)
        backlog = self._backlog
        checked = len(backlog)  # what arrived before the action was sent cannot answer it
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AMIConnectionError(f"no answer from {self.address} within {timeout:g} s")
            backlog.extend(self.framer.feed(self._recv(remaining, "a response")))
            for index in range(checked, len(backlog)):
                if backlog[index][:9].lower() == "response:":
                    packet = parse_packet(backlog[index])
                    if isinstance(packet, Response) and packet.action_id in (None, action_id):
                        del backlog[index]
                        return packet
            checked = len(backlog)

    def wake(self) -> None:
        """Make the reader's current wait end now (it calls ``on_tick`` and asks ``wait_time`` again)."""
        with self._outbox_lock:
            wake = self._wake_w
            if wake is not None:
                try:
                    wake.send(b"\0")
                except OSError:  # full: a wake-up is pending anyway
                    pass

    def run(
        self,
        on_packets: Callable[[List[str]], None],
        on_tick: Callable[[], None],
        wait_time: Callable[[], float],
    ) -> BaseException:
        """Read until the connection ends; return why it ended (never raises).

        ``wait_time()`` is asked before every wait how long (seconds) the
        reader may wait for data; ``on_tick()`` runs when that wait ends
        without data or is cut short by :meth:`wake`.  While a caller leads
        (:meth:`await_answer`), the reader parks and the caller calls
        ``on_packets``; ``on_tick`` still runs when a timer is due.
        """
        sock = self._sock
        if sock is None:
            return self._closed_error()
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        with self._outbox_lock:
            self._wake_w = wake_w
        framer = self.framer
        recv = functools.partial(sock.recv, RECV_SIZE, self._nowait)
        tls = isinstance(sock, ssl.SSLSocket)
        pending = sock.pending if isinstance(sock, ssl.SSLSocket) else None  # TLS: bytes decrypted but unread
        tls_lock = self._tls_lock
        monotonic = time.monotonic
        rr = self._rr
        rr_lock = self._rr_lock
        self._reader = threading.get_ident()
        reason: BaseException
        try:
            wait = _waiter(sock, wake_r)  # raises ValueError if the socket was closed before the reader started
            if self._backlog:
                backlog, self._backlog = self._backlog, []
                on_packets(backlog)
            with rr:
                self._on_packets = on_packets
            seen = self._gen
            while True:
                if self._leader or self._gen != seen:  # a caller leads, or led just now
                    seen = self._park(on_tick, wait_time, seen)
                if self.closed:
                    raise self._closed_error()
                if pending is not None:
                    with tls_lock:
                        decrypted = pending() > 0
                else:
                    decrypted = False
                if not decrypted:
                    writing = self._carry is not None
                    timeout = wait_time()
                    if writing:
                        timeout = min(timeout, max(0.0, self._carry_deadline - monotonic()))
                    self._polling = True
                    readable = wait(timeout, writing)
                    self._polling = False
                    if writing:
                        self._write_carry()
                    if not readable:
                        on_tick()
                        continue
                with rr_lock:
                    if self._leader:
                        continue  # a caller took the read right while we waited: it reads
                    self._reading = True
                try:
                    try:
                        if tls:
                            with tls_lock:
                                data = recv()
                        else:
                            data = recv()
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                        continue  # nothing yet (a partial TLS record, or a spurious wake-up)
                    if not data:
                        raise self._close_reason or ConnectionLost(f"{self.address} closed the connection")
                    self.bytes_in += len(data)
                    self.last_received = monotonic()
                    packets = framer.feed(data)
                    if packets:
                        on_packets(packets)
                finally:
                    self._reading = False  # only this thread sets it; callers read it under the lock
        except ConnectionLost as exc:
            reason = exc
        except ProtocolError as exc:
            log.error("protocol error from %s: %s", self.address, exc)
            reason = exc
        except (OSError, ValueError) as exc:  # ValueError: a socket closed by another thread
            reason = self._close_reason or ConnectionLost(f"connection to {self.address} failed: {exc}")
            reason.__cause__ = exc
        except Exception as exc:  # a bug in a callback: end the link, never hang callers
            log.exception("reader for %s stopped by an unexpected error", self.address)
            reason = exc
        self.close()
        with rr:
            self._on_packets = None
            ends = time.monotonic() + 2 * _TICK
            while self._leader and time.monotonic() < ends:  # the leader sees the socket closed within _TICK
                rr.wait(_TICK)
        self._reader = None
        with self._outbox_lock:
            self._wake_w = None
        wake_r.close()
        wake_w.close()
        return reason

    def close(self, reason: Optional[BaseException] = None) -> None:
        """Shut the socket down and close it (wakes a blocked reader or writer); idempotent.

        ``reason`` (the first one given) is what :meth:`run` reports.
        """
        with self._outbox_lock:
            if self._close_reason is None:
                self._close_reason = reason
            self.closed = True
            sock, self._sock = self._sock, None
        with self._rr:
            self._rr.notify_all()  # a parked reader sees the connection closed
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def detach_after_fork(self) -> None:
        """In a forked child: close our copy of the socket without touching the parent's session.

        Every lock is new: another thread of the parent may have held one at ``fork()``.
        """
        self._write_lock = threading.Lock()
        self._outbox_lock = threading.Lock()
        self._tls_lock = threading.Lock()
        self._init_read_right()
        self.closed = True
        sock, self._sock = self._sock, None
        self._outbox = []
        wake, self._wake_w = self._wake_w, None
        for closing in (sock, wake):
            if closing is not None:
                closing.close()  # no shutdown(): the parent's session must live on


def _waiter(sock: socket.socket, wake: socket.socket) -> Callable[[float, bool], bool]:
    """A function ``wait(timeout, writing)``: wait up to ``timeout`` s for data on ``sock``; True if there is some.

    A byte on ``wake`` ends the wait early (returning False); with
    ``writing``, so does room to write on ``sock``.
    """
    fileno, wake_fileno = sock.fileno(), wake.fileno()

    def drain() -> None:
        try:
            while wake.recv(4096):
                pass
        except OSError:
            pass

    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fileno, select.POLLIN)
        poller.register(wake_fileno, select.POLLIN)
        registered = [False]

        def wait_poll(timeout: float, writing: bool) -> bool:
            if writing != registered[0]:
                poller.modify(fileno, select.POLLIN | select.POLLOUT if writing else select.POLLIN)
                registered[0] = writing
            ready = False
            for fd, events in poller.poll(max(0, int(min(timeout, 3600.0) * 1000 + 0.999))):
                if fd == fileno:
                    ready = ready or bool(events & ~select.POLLOUT)
                else:
                    drain()
            return ready
        return wait_poll

    def wait_select(timeout: float, writing: bool) -> bool:
        readable = select.select((fileno, wake_fileno), (fileno,) if writing else (), (), min(max(0.0, timeout), 3600.0))[0]
        if wake_fileno in readable:
            drain()
        return fileno in readable
    return wait_select


def _blocking_reads(sock: socket.socket) -> int:
    """Make ``sock`` blocking with reads bounded by ``_RCVTIMEO``; return ``MSG_DONTWAIT`` (0 where unsupported).

    A caller that leads then waits in one ``recv()`` instead of
    ``poll()`` + ``recv()``; every other read and write passes the flag.
    """
    flag = getattr(socket, "MSG_DONTWAIT", 0)
    if not flag or not sys.platform.startswith("linux"):
        return 0
    if not isinstance(sock, _socket.socket):  # a green socket (gevent, eventlet) would wait on EAGAIN instead
        return 0
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, int(_RCVTIMEO * 1_000_000)))
    except (OSError, struct.error):
        return 0
    sock.settimeout(None)
    return flag


def _enable_tcp_keepalive(sock: socket.socket, idle: int = 60, interval: int = 10, count: int = 5) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options: Tuple[Tuple[str, int], ...] = (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count))
    for name, value in options:
        option = getattr(socket, name, None)
        if option is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:  # pragma: no cover - platform without this option
                pass

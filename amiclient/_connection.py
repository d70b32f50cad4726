"""One socket to an AMI server: connect, banner, handshake exchanges, a blocking read loop, a write lock.

The connection knows bytes, packets and sockets; it knows nothing of
futures, listeners or reconnecting.  It reports through two callables given
to :meth:`Connection.run`: ``on_packets(texts)`` for every batch of complete
packet texts, and ``on_idle()`` when nothing arrived for ``idle_interval``
seconds.  Either may raise to end the connection.
"""
from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from typing import Callable, List, Optional, Tuple

from ._protocol import DEFAULT_MAX_PACKET_SIZE, Framer, parse_banner, parse_packet
from .exceptions import AMIConnectionError, ConnectionLost, ProtocolError
from .packet import Response

__all__ = ["Connection", "NotSent", "RECV_SIZE"]

log = logging.getLogger("amiclient.connection")

RECV_SIZE = 65536  # below glibc's mmap threshold: no mmap/munmap per recv


class NotSent(ConnectionLost):
    """The link was down before any byte of the data was queued: sending it elsewhere is safe."""


class Connection:
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
        self._outbox_lock = threading.Lock()  # guards _outbox, briefly
        self._outbox: List[bytes] = []
        self._tls_lock = threading.Lock()  # TLS only: OpenSSL calls never overlap
        self._backlog: List[str] = []
        self._close_reason: Optional[BaseException] = None

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
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tcp_keepalive:
                _enable_tcp_keepalive(sock)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise AMIConnectionError(f"cannot set up the connection to {self.address}: {exc}") from exc
        self._sock = sock
        try:
            while self.framer.banner is None:
                self._backlog.extend(self.framer.feed(self._recv(self.connect_timeout, "the banner")))
        except BaseException:
            self.close()
            raise
        self.version = parse_banner(self.framer.banner)
        log.debug("connected to %s: %s", self.address, self.framer.banner)
        return self.version or ""

    def _recv(self, timeout: float, waiting_for: str) -> bytes:
        sock = self._sock
        if sock is None or self.closed:
            raise ConnectionLost(f"connection to {self.address} is closed")
        sock.settimeout(timeout)
        try:
            data = sock.recv(RECV_SIZE)
        except socket.timeout:
            raise AMIConnectionError(f"no answer from {self.address} within {timeout:g} s waiting for {waiting_for}") from None
        except OSError as exc:
            raise ConnectionLost(f"connection to {self.address} failed: {exc}") from exc
        finally:
            if not self.closed:
                try:
                    sock.settimeout(None)
                except OSError:
                    pass
        if not data:
            raise ConnectionLost(f"{self.address} closed the connection while we waited for {waiting_for}")
        self.bytes_in += len(data)
        self.last_received = time.monotonic()
        return data

    def exchange(self, data: bytes, action_id: str, timeout: float) -> Response:
        """Send one action and block until its response; other packets wait for :meth:`run`.

        Only for the handshake (login, re-applying filters), before the read
        loop starts.
        """
        self.send(data)
        deadline = time.monotonic() + timeout
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

    def send(self, data: bytes, before: Optional[Callable[[], None]] = None) -> None:
        """Queue ``data`` whole for writing, and write it unless another thread is writing.

        ``before`` runs under the queue lock just before the bytes are
        queued, so what it records follows the order of the bytes on the
        wire.  Concurrent senders' bytes are written together in one
        ``sendall`` (group commit); a thread that finds the writer busy
        returns at once and the writer sends its bytes.  NotSent if the
        link was down (or ``before`` raised ConnectionLost): nothing was
        queued.  ConnectionLost if this thread's write failed.
        """
        with self._outbox_lock:
            if self._sock is None or self.closed:
                raise NotSent(f"not connected to {self.address}")
            if before is not None:
                try:
                    before()
                except NotSent:
                    raise
                except ConnectionLost as exc:
                    raise NotSent(str(exc)) from exc
            self._outbox.append(data)
        self._flush()

    def _flush(self) -> None:
        while self._write_lock.acquire(blocking=False):
            try:
                with self._outbox_lock:
                    chunks, self._outbox = self._outbox, []
                if chunks:
                    self._write(chunks[0] if len(chunks) == 1 else b"".join(chunks), len(chunks))
            finally:
                self._write_lock.release()
            # Bytes queued while we held the lock belong to us: their sender saw the lock taken.
            if not self._outbox:
                return

    def _write(self, data: bytes, packets: int) -> None:
        sock = self._sock
        if sock is None or self.closed:
            raise ConnectionLost(f"not connected to {self.address}")
        try:
            if isinstance(sock, ssl.SSLSocket):
                self._send_tls(sock, data)
            else:
                sock.sendall(data)
        except OSError as exc:
            error = ConnectionLost(f"sending to {self.address} failed: {exc}")
            self.close(error)
            raise error from exc
        self.bytes_out += len(data)
        self.packets_sent += packets

    def _send_tls(self, sock: ssl.SSLSocket, data: bytes) -> None:
        """Write on a TLS socket without ever overlapping the reader's OpenSSL calls.

        OpenSSL does not allow one SSL object to be used by two threads at
        once, so TLS reads and writes take turns under ``_tls_lock``; while
        the reader runs, the socket is non-blocking and a writer that would
        block waits for writability outside the lock.
        """
        view = memoryview(data)
        while view:
            with self._tls_lock:
                try:
                    sent = sock.send(view)
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    sent = 0
            if sent:
                view = view[sent:]
            elif self.closed:
                raise ConnectionLost(f"connection to {self.address} closed while sending")
            else:
                try:
                    select.select((), (sock,), (), 1.0)
                except (OSError, ValueError) as exc:  # closed by another thread meanwhile
                    raise ConnectionLost(f"connection to {self.address} closed while sending") from exc

    def run(
        self,
        on_packets: Callable[[List[str]], None],
        on_idle: Callable[[], None],
        idle_interval: float,
    ) -> BaseException:
        """Read until the connection ends; return why it ended (never raises)."""
        sock = self._sock
        if sock is None:
            return ConnectionLost(f"not connected to {self.address}")
        framer = self.framer
        recv = sock.recv
        tls = isinstance(sock, ssl.SSLSocket)
        pending = sock.pending if isinstance(sock, ssl.SSLSocket) else None  # TLS: bytes decrypted but unread
        monotonic = time.monotonic
        poll = _readable_waiter(sock, idle_interval)
        reason: BaseException
        try:
            if self._backlog:
                backlog, self._backlog = self._backlog, []
                on_packets(backlog)
            if tls:
                sock.setblocking(False)  # reads and writes take turns under _tls_lock
            while True:
                if not (pending is not None and pending()) and not poll():
                    on_idle()
                    continue
                if tls:
                    with self._tls_lock:
                        try:
                            data = recv(RECV_SIZE)
                        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                            continue  # a partial TLS record: wait for the rest
                else:
                    data = recv(RECV_SIZE)
                if not data:
                    raise self._close_reason or ConnectionLost(f"{self.address} closed the connection")
                self.bytes_in += len(data)
                self.last_received = monotonic()
                packets = framer.feed(data)
                if packets:
                    on_packets(packets)
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
        return reason

    def close(self, reason: Optional[BaseException] = None) -> None:
        """Shut the socket down and close it (wakes a blocked reader); idempotent.

        ``reason`` (the first one given) is what :meth:`run` reports.
        """
        if self._close_reason is None:
            self._close_reason = reason
        self.closed = True
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def detach_after_fork(self) -> None:
        """In a forked child: close our copy of the socket without touching the parent's session."""
        self.closed = True
        sock, self._sock = self._sock, None
        self._write_lock = threading.Lock()
        self._outbox_lock = threading.Lock()
        self._outbox = []
        if sock is not None:
            sock.close()  # no shutdown(): the parent's session must live on


def _readable_waiter(sock: socket.socket, timeout: float) -> Callable[[], bool]:
    """A function that waits up to ``timeout`` s for ``sock`` to be readable (poll(), or select() on Windows)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        timeout_ms = max(1, int(timeout * 1000))
        return lambda: bool(poller.poll(timeout_ms))
    fileno = sock.fileno()
    return lambda: bool(select.select((fileno,), (), (), timeout)[0])


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

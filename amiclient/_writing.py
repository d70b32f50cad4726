"""Writing to the socket: whole actions, group commit, deadline-bounded writes.

Senders queue their bytes whole under one lock; the thread that finds the
write lock free writes what is queued (group commit), and one that finds it
taken returns at once.  An action sent while nothing is queued is written
with one ``send()``, without the queue.  A write that cannot finish by the
earliest deadline of its batch leaves a partial packet on the wire, so it
closes the connection; a sender writing other threads' bytes stops at its
own deadline and leaves the rest (the *carry*) to the reader thread.  A
mixin of :class:`~amiclient._connection.Connection`.
"""
from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from .exceptions import AMIError, ConnectionLost

__all__ = ["NotSent", "Writer"]

_NEVER = float("inf")


class NotSent(ConnectionLost):
    """The link was down before any byte of the data was queued: sending it elsewhere is safe."""


class Writer:
    """``send()`` and the write paths (a mixin of :class:`~amiclient._connection.Connection`)."""

    if TYPE_CHECKING:  # provided by Connection
        _sock: Optional[socket.socket]
        _outbox_lock: threading.Lock
        _write_lock: threading.Lock
        _tls_lock: threading.Lock
        _outbox: List[bytes]
        _outbox_deadline: float
        _carry: Optional[memoryview]
        _carry_deadline: float
        _carry_size: int
        _carry_packets: int
        _nowait: int
        _reader: Optional[int]
        closed: bool
        bytes_out: int
        packets_sent: int

        @property
        def address(self) -> str: ...
        def _closed_error(self) -> AMIError: ...
        def close(self, reason: Optional[BaseException] = None) -> None: ...
        def wake(self) -> None: ...

    def send(self, data: bytes, before: Optional[Callable[[Any], None]] = None, deadline: Optional[float] = None,
             item: Any = None) -> None:
        """Queue ``data`` whole for writing, and write it unless another thread is writing.

        ``before(item)`` runs under the queue lock just before the bytes are
        queued, so what it records follows the order of the bytes on the
        wire.  Concurrent senders' bytes are written together (group
        commit); a thread that finds the writer busy returns at once and the
        writer sends its bytes.  ``deadline`` (``time.monotonic()``) bounds
        the write: bytes that cannot be written by the earliest deadline of
        a batch close the connection.  NotSent if the link was down (or
        ``before`` raised ConnectionLost): nothing was queued.
        ConnectionLost if this thread's write failed.
        """
        with self._outbox_lock:
            if self._sock is None or self.closed:
                raise NotSent(f"not connected to {self.address}")
            if before is not None:
                try:
                    before(item)
                except NotSent:
                    raise
                except ConnectionLost as exc:
                    raise NotSent(str(exc)) from exc
            sock = self._sock
            direct = (not self._outbox and self._carry is None and not isinstance(sock, ssl.SSLSocket)
                      and self._write_lock.acquire(False))
            if not direct:
                self._outbox.append(data)
                if deadline is not None and deadline < self._outbox_deadline:
                    self._outbox_deadline = deadline
                congested = self._carry is not None
        if direct:  # nothing queued, nobody writing: write at once, without the queue
            try:
                self._write_now(sock, data, _NEVER if deadline is None else deadline)
            finally:
                self._write_lock.release()
            if self._outbox:  # queued by others while we wrote: they saw the lock taken
                self._flush(self._own_deadline(deadline))
            return
        if congested:  # the reader is writing what a sender left: it writes these bytes too
            self.wake()
            return
        self._flush(self._own_deadline(deadline))

    def _write_failed(self, exc: BaseException) -> AMIError:
        """Close the connection after a failed write; the error to raise (the close reason if closed meanwhile)."""
        error = self._closed_error() if self.closed else ConnectionLost(f"sending to {self.address} failed: {exc}")
        self.close(error)
        return error

    def _own_deadline(self, deadline: Optional[float]) -> Optional[float]:
        """Until when this thread may wait to write: the reader thread never waits."""
        return time.monotonic() if threading.get_ident() == self._reader else deadline

    def _write_now(self, sock: socket.socket, data: bytes, deadline: float) -> None:
        """Write one action on a plain socket (the caller holds the write lock): one ``send()`` when it fits."""
        try:
            sent = sock.send(data, self._nowait)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except (OSError, ValueError) as exc:
            raise self._write_failed(exc) from exc
        if sent == len(data):
            self.bytes_out += sent
            self.packets_sent += 1
            return
        self.bytes_out += sent
        self._write(data[sent:], 1, deadline, self._own_deadline(deadline))

    def _flush(self, own_deadline: Optional[float]) -> None:
        """Write what is queued; stop at ``own_deadline`` and leave the rest to the reader."""
        while self._write_lock.acquire(blocking=False):
            try:
                with self._outbox_lock:
                    if self._carry is not None:
                        return
                    chunks, self._outbox = self._outbox, []
                    deadline, self._outbox_deadline = self._outbox_deadline, _NEVER
                if chunks:
                    self._write(chunks[0] if len(chunks) == 1 else b"".join(chunks), len(chunks), deadline, own_deadline)
            finally:
                self._write_lock.release()
            # Bytes queued while we held the lock belong to us: their sender saw the lock taken.
            if not self._outbox:
                return

    def _write(self, data: bytes, packets: int, deadline: float, own_deadline: Optional[float] = None) -> None:
        """Write all of ``data`` by ``deadline``, or close the connection and raise ConnectionLost.

        A writer whose ``own_deadline`` comes first (it writes other
        threads' bytes) hands what is left to the reader when it is reached,
        so no sender waits past its own deadline.

        On TLS, OpenSSL calls never overlap the reader's (``_tls_lock``): a
        write that needs the peer's bytes first (``SSLWantReadError``) waits
        for the reader to take them in, never spins.
        """
        sock = self._sock
        if sock is None or self.closed:
            raise self._closed_error()
        tls = isinstance(sock, ssl.SSLSocket)
        view = memoryview(data)
        started = time.monotonic()
        try:
            while view:
                want_read = False
                try:
                    if tls:
                        with self._tls_lock:
                            sent = sock.send(view)
                    else:
                        sent = sock.send(view, self._nowait)
                except ssl.SSLWantReadError:
                    sent, want_read = 0, True
                except (ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                    sent = 0
                if sent:
                    view = view[sent:]
                    continue
                if self.closed:
                    raise self._closed_error()
                now = time.monotonic()
                if now >= deadline:
                    raise _WriteTimeout(
                        f"sending to {self.address} timed out after {now - started:.3g} s "
                        f"({len(view)} of {len(data)} bytes unsent): the server is not reading")
                wait = min(deadline - now, 1.0)
                if own_deadline is not None and own_deadline < deadline and self._reader is not None:
                    if now >= own_deadline:
                        with self._outbox_lock:
                            self._carry, self._carry_deadline = view, deadline
                            self._carry_size, self._carry_packets = len(data), packets
                        self.wake()
                        return
                    wait = min(wait, own_deadline - now)
                # The reader takes in what OpenSSL needs; look again soon rather than wait on a socket it drains.
                _wait_for(sock, not want_read, min(wait, 0.02 if want_read else 1.0))
        except _WriteTimeout as exc:
            error = ConnectionLost(str(exc))
            self.close(error)
            raise error from None
        except (OSError, ValueError) as exc:  # ValueError: closed by another thread meanwhile
            raise self._write_failed(exc) from exc
        self.bytes_out += len(data)
        self.packets_sent += packets

    def _write_carry(self) -> None:
        """Reader thread: write what a sender left (and what was queued behind it) without blocking."""
        if not self._write_lock.acquire(blocking=False):
            return
        try:
            sock = self._sock
            tls = isinstance(sock, ssl.SSLSocket)
            while sock is not None:
                with self._outbox_lock:
                    view = self._carry
                    if view is None:
                        if not self._outbox:
                            return
                        chunks, self._outbox = self._outbox, []
                        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                        view = self._carry = memoryview(data)
                        self._carry_deadline, self._outbox_deadline = self._outbox_deadline, _NEVER
                        self._carry_size, self._carry_packets = len(data), len(chunks)
                try:
                    if tls:
                        with self._tls_lock:
                            sent = sock.send(view)
                    else:
                        sent = sock.send(view, self._nowait)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                    sent = 0
                except (OSError, ValueError) as exc:
                    raise self._write_failed(exc) from exc
                if not sent:
                    if time.monotonic() >= self._carry_deadline:
                        error = ConnectionLost(f"sending to {self.address} timed out ({len(view)} of {self._carry_size} "
                                               "bytes unsent): the server is not reading")
                        self.close(error)
                        raise error
                    return
                with self._outbox_lock:
                    if sent < len(view):
                        self._carry = view[sent:]
                        continue
                    self._carry, self._carry_deadline = None, _NEVER
                    self.bytes_out += self._carry_size
                    self.packets_sent += self._carry_packets
        finally:
            self._write_lock.release()


class _WriteTimeout(Exception):
    pass


def _wait_for(sock: socket.socket, writable: bool, timeout: float) -> None:
    """Wait up to ``timeout`` s until ``sock`` is writable (or readable); errors show on the next call."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLOUT if writable else select.POLLIN)
            poller.poll(max(1, int(timeout * 1000 + 0.999)))
        elif writable:
            select.select((), (sock,), (sock,), timeout)
        else:
            select.select((sock,), (), (sock,), timeout)
    except (OSError, ValueError):  # closed by another thread meanwhile
        pass

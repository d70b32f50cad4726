"""The bridge behind ``FakeAJAMServer``: one HTTP manager session over one TCP connection to the fake.

After each action the bridge sends a sentinel ``Ping`` and collects what the
fake answers before the sentinel's response (the HTTP body); other events
wait in the session's queue for ``WaitEvent``.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from typing import Deque, List, Optional, Sequence

__all__ = ["BridgedSession"]

logger = logging.getLogger("amiclient.testing.http")

_UNAUTH_LIFETIME = 5.0  # s; an HTTP session that never logged in
_JOIN_TIMEOUT = 5.0
_FOLLOWS = b"Response: Follows"
_END_COMMAND = b"--END COMMAND--\r\n\r\n"


class _Exchange:
    """One action in flight on a bridged session: the packets the fake sent until the sentinel's answer."""

    def __init__(self, action: str, sentinel: str) -> None:
        self.action = action
        self.sentinel = ("\r\nActionID: %s\r\n" % sentinel).encode()
        self.packets: List[bytes] = []
        self.body = b""
        self.done = False

    def finish(self, queue: Deque[bytes]) -> bool:
        """Split the packets into the HTTP body and events for ``queue``; True if a Login succeeded."""
        body: List[bytes] = []
        answer: Optional[bytes] = None
        listing = booted = False
        for packet in self.packets:
            if answer is None and packet.startswith(b"Response:"):
                answer = packet
                body.append(packet)
                listing = b"\r\neventlist: start\r\n" in packet.lower()
                booted = self.action == "login" and packet.startswith(b"Response: Success\r\n")
            elif answer is not None and listing:
                body.append(packet)
                listing = b"\r\neventlist: complete\r\n" not in packet.lower()
            elif booted and packet.startswith(b"Event: FullyBooted\r\n"):
                body.append(packet)
                booted = False
            elif packet.startswith(b"Event:"):
                queue.append(packet)
        self.body = b"".join(body)
        self.done = True
        return self.action == "login" and answer is not None and answer.startswith(b"Response: Success\r\n")


class BridgedSession:
    """One HTTP manager session and its TCP connection to the fake."""

    def __init__(self, ident: int, sock: socket.socket) -> None:
        self.ident = ident
        self.cookie = "%08x" % ident
        self.sock = sock
        self.authenticated = False
        self.expires = time.monotonic() + _UNAUTH_LIFETIME
        self.busy = 0  # requests in progress; guarded by the server's lock
        self.destroyed = False  # guarded by the server's lock
        self.closed = False  # the fake closed the connection
        self.events: Deque[bytes] = deque()
        self.cond = threading.Condition()
        self._action_lock = threading.Lock()
        self._exchange: Optional[_Exchange] = None
        self._waiter = 0
        self._count = 0
        self.thread = threading.Thread(target=self._read_loop, name="FakeAJAM-session-%s" % self.cookie, daemon=True)

    def run(self, action: str, lines: Sequence[str], timeout: float) -> bytes:
        """Send one action (and the sentinel); return the HTTP body."""
        with self._action_lock:
            with self.cond:
                if self.closed:
                    return b""
                self._count += 1
                sentinel = "ajam-sentinel-%s-%d" % (self.cookie, self._count)
                exchange = self._exchange = _Exchange(action, sentinel)
            text = "".join(line + "\r\n" for line in lines) + "\r\nAction: Ping\r\nActionID: %s\r\n\r\n" % sentinel
            try:
                self.sock.sendall(text.encode("utf-8", "surrogateescape"))
            except OSError as exc:
                logger.debug("session %s: send failed: %s", self.cookie, exc)
            with self.cond:
                if not self.cond.wait_for(lambda: exchange.done, timeout):
                    logger.warning("session %s: no answer to %s within %g s", self.cookie, action, timeout)
                    self._exchange = None
                    self._finish(exchange)
            return exchange.body

    def wait_event(self, action_id: Optional[str], timeout: float) -> bytes:
        """Answer ``WaitEvent``: wait for an event (or a newer WaitEvent), then drain the queue."""
        with self.cond:
            self._waiter += 1
            me = self._waiter
            self.cond.notify_all()
            deadline = time.monotonic() + timeout
            while not self.events and not self.closed and self._waiter == me:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            if self._waiter != me:
                return b""  # kicked out by a second WaitEvent, like Asterisk
            drained = list(self.events)
            self.events.clear()
        id_text = "ActionID: %s\r\n" % action_id if action_id else ""
        head = "Response: Success\r\n%sMessage: Waiting for Event completed.\r\n\r\n" % id_text
        return head.encode() + b"".join(drained) + ("Event: WaitEventComplete\r\n%s\r\n" % id_text).encode()

    def _finish(self, exchange: _Exchange) -> None:
        if exchange.finish(self.events):
            self.authenticated = True
        self.cond.notify_all()

    def _read_loop(self) -> None:
        buf = bytearray()
        banner = True
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                if banner:
                    newline = buf.find(b"\n")
                    if newline < 0:
                        continue
                    del buf[: newline + 1]
                    banner = False
                for packet in _split(buf):
                    self._route(packet)
        except OSError as exc:
            logger.debug("session %s: %s", self.cookie, exc)
        finally:
            with self.cond:
                self.closed = True
                exchange, self._exchange = self._exchange, None
                if exchange is not None:
                    self._finish(exchange)
                self.cond.notify_all()

    def _route(self, packet: bytes) -> None:
        with self.cond:
            exchange = self._exchange
            if exchange is None:
                if packet.startswith(b"Event:"):
                    self.events.append(packet)
                    self.cond.notify_all()
            elif packet.startswith(b"Response:") and exchange.sentinel in packet:
                self._exchange = None
                self._finish(exchange)
            else:
                exchange.packets.append(packet)

    def shutdown(self) -> None:
        """Close the connection to the fake (the reader ends, waiters wake)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def destroy(self) -> None:
        """Shut down, join the reader and close the socket."""
        self.shutdown()
        if self.thread.ident is not None:
            self.thread.join(_JOIN_TIMEOUT)
        with self._action_lock:  # no sendall in progress
            self.sock.close()


def _split(buf: bytearray) -> List[bytes]:
    """Remove and return the complete packets at the start of ``buf``."""
    packets: List[bytes] = []
    while True:
        if buf.startswith(_FOLLOWS):
            end = buf.find(_END_COMMAND)
            size = len(_END_COMMAND)
        else:
            end = buf.find(b"\r\n\r\n")
            size = 4
        if end < 0:
            return packets
        packets.append(bytes(buf[: end + size]))
        del buf[: end + size]

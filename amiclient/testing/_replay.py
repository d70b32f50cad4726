"""``ReplayServer``: plays a recorded AMI session back to one client.

The script is the recording's chunk list.  The s2c chunks before the first
c2s chunk (the banner) are sent on accept.  Each complete client packet k
then releases the s2c chunks that followed recorded client packet k, up to
the next c2s chunk.  ActionIDs are rewritten: once recorded packet k had
``ActionID: X`` and the client's packet k had ``ActionID: Y``, every
``ActionID: X`` line sent from then on reads ``ActionID: Y``.  An ``eof``
chunk closes the connection.
"""

from __future__ import annotations

import json
import logging
import os
import re
import selectors
import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

from ._wire import Packet, PacketParser

__all__ = ["ReplayServer", "load_recording"]

logger = logging.getLogger(__name__)
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)
Chunk = Mapping[str, str]


def load_recording(
    path: Union[str, os.PathLike[str]], name: Optional[str] = None
) -> List[Dict[str, str]]:
    """Load a JSON recording; ``name`` picks one list from a dict of lists."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if isinstance(data, dict):
        if name is None:
            raise ValueError("%s holds several recordings; pick one of: %s" % (path, ", ".join(data)))
        data = data[name]
    elif name is not None:
        raise ValueError("%s holds a single recording" % (path,))
    if not isinstance(data, list):
        raise ValueError("%s: not a list of chunks" % (path,))
    return [dict(chunk) for chunk in data]


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass
class _Step:
    """What to do after one client packet: send ``data``, maybe close."""

    action_id: Optional[str]
    data: List[bytes] = field(default_factory=list)
    eof: bool = False


def _compile(chunks: Sequence[Chunk]) -> Tuple[List[bytes], bool, List[_Step]]:
    greeting: List[bytes] = []
    greeting_eof = False
    steps: List[_Step] = []
    for chunk in chunks:
        direction, data = chunk.get("dir"), chunk.get("data", "")
        if direction == "c2s":
            for packet in PacketParser().feed(_encode(data)):
                steps.append(_Step(packet.action_id))
        elif direction == "s2c":
            (steps[-1].data if steps else greeting).append(_encode(data))
        elif direction == "eof":
            if steps:
                steps[-1].eof = True
            else:
                greeting_eof = True
        else:
            raise ValueError("unknown chunk direction %r" % (direction,))
    return greeting, greeting_eof, steps


class ReplayServer:
    """A one-connection TCP server on loopback that replays a recording.

    ``received``: the client's packets (raw bytes).  ``done``: set once the
    script is exhausted (or the connection closed by ``eof``).
    """

    def __init__(
        self, chunks: Sequence[Chunk], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.host = host
        self._greeting, self._greeting_eof, self._steps = _compile(chunks)
        self.received: List[bytes] = []
        self.done = threading.Event()
        self.connected = threading.Event()
        self._ids: Dict[str, str] = {}
        self._listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._listener.bind((host, port))
        self._listener.listen(1)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._conn: Optional[socket.socket] = None
        self._closed = False

    @property
    def address(self) -> Tuple[str, int]:
        """``(host, port)``."""
        return (self.host, self.port)

    def start(self) -> ReplayServer:
        """Start serving (no-op if started); return ``self``."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="ReplayServer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop, join the thread and close every socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        try:
            self._wake_w.send(b"\0")
            if self._conn is not None:
                self._conn.shutdown(socket.SHUT_RDWR)  # unblocks a pending sendall()
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5.0)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def _rewrite(self, data: bytes) -> bytes:
        if not self._ids or b"ActionID: " not in data:
            return data
        pattern = b"|".join(re.escape(_encode(k)) for k in sorted(self._ids, key=len, reverse=True))
        regex = re.compile(b"(?m)^ActionID: (" + pattern + b")(?=\r?$)")
        return regex.sub(lambda m: b"ActionID: " + _encode(self._ids[m.group(1).decode(
            "utf-8", "surrogateescape")]), data)

    def _run(self) -> None:
        sel = _Selector()
        conn: Optional[socket.socket] = None
        try:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while conn is None:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, _peer = self._listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
            sel.unregister(self._listener)
            self._conn = conn
            if self._stop.is_set():
                return
            self.connected.set()
            conn.setblocking(True)
            self._serve(conn, sel)
        except OSError as exc:
            logger.debug("replay connection error: %s", exc)
        finally:
            sel.close()
            if conn is not None:
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                conn.close()
            self.done.set()

    def _serve(self, conn: socket.socket, sel: selectors.BaseSelector) -> None:
        conn.sendall(b"".join(self._greeting))
        if self._greeting_eof:
            return
        if not self._steps:
            self.done.set()
        sel.register(conn, selectors.EVENT_READ)
        parser = PacketParser()
        index = 0
        while not self._stop.is_set():
            for key, _ in sel.select():
                if key.fileobj is self._wake_r:
                    return
                data = conn.recv(65536)
                if not data:
                    return
                for packet in parser.feed(data):
                    self.received.append(packet.raw)
                    if index >= len(self._steps):
                        continue
                    step = self._steps[index]
                    index += 1
                    if self._answer(conn, step, packet):
                        return
                    if index == len(self._steps):
                        self.done.set()

    def _answer(self, conn: socket.socket, step: _Step, packet: Packet) -> bool:
        if step.action_id is not None and packet.action_id is not None:
            self._ids[step.action_id] = packet.action_id
        if step.data:
            conn.sendall(self._rewrite(b"".join(step.data)))
        return step.eof

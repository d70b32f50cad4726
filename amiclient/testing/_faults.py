"""Fault injection for ``FakeAMIServer``: the ``Fault`` kinds, their options and state."""

from __future__ import annotations

import contextlib
import enum
import threading
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from typing import Dict, FrozenSet, Iterator, Optional

from typing_extensions import TypedDict, Unpack

__all__ = [
    "DEFAULT_GARBAGE",
    "Fault",
    "FaultSpec",
    "FaultState",
    "FaultsMixin",
    "oversized_packet",
]

#: Default ``GARBAGE`` bytes: invalid UTF-8, a line without colon, a blank line.
DEFAULT_GARBAGE = b"\xff\xfe\x00\x80garbage\r\nnot a header line\r\n\r\n"


class Fault(enum.Enum):
    """The kinds of misbehaviour the fake server can be told to show.

    Every fault stays active until cleared, or for ``times`` triggers (one
    trigger: a connection for STALL and RESET-on-accept, a Login for the
    login faults, a write for DRIP, an answered action otherwise).  Where a
    fault applies:

    ==================  ==========================================================
    Fault               Effect (``N`` = new connections, ``E`` = existing sessions)
    ==================  ==========================================================
    STALL               N: accepted, no banner, nothing ever answered (the socket
                        is read and packets recorded).  Stalled connections stay
                        stalled after the fault is cleared.
    RESET               N: reset (RST) right after accept, before the banner.
                        E: reset instead of answering their next action.
    CLOSE_MID_PACKET    N+E: a session's next response is cut in half, then the
                        socket is closed (FIN).
    NO_ANSWER           N+E: actions are read and recorded but not executed or
                        answered; nothing at all is written (events are dropped).
                        New connections still get the banner.
    DRIP                N+E: everything written (banner, responses, events) is
                        sent one byte per ``send()``, ``interval`` s apart.
    GARBAGE             N+E: ``data`` (default: a few invalid bytes and lines) is
                        written before each response, or instead of it with
                        ``replace=True``.
    OVERSIZED           N+E: before each response, an oversized event of ``size``
                        bytes (default 20 MiB) is written; it never ends unless
                        ``terminated=True`` (then it is one huge value).
    DELAY_LOGIN         N+E: ``Login`` is answered after ``delay`` seconds.
    REFUSE_LOGIN        N+E: every ``Login`` fails (``Authentication failed``,
                        then close), whatever the credentials.
    STOP_READING        N+E: sessions stop reading their socket (a server stuck
                        in a long action while the client keeps writing) until
                        the fault is cleared.
    ==================  ==========================================================
    """

    STALL = "stall"
    RESET = "reset"
    CLOSE_MID_PACKET = "close_mid_packet"
    NO_ANSWER = "no_answer"
    DRIP = "drip"
    GARBAGE = "garbage"
    OVERSIZED = "oversized"
    DELAY_LOGIN = "delay_login"
    REFUSE_LOGIN = "refuse_login"
    STOP_READING = "stop_reading"


@dataclass(frozen=True)
class FaultSpec:
    """An active fault and its options.

    ``times``: triggers left (``None`` = until cleared).  ``delay``: seconds
    (DELAY_LOGIN).  ``interval``: seconds between bytes (DRIP).  ``data``:
    bytes to write (GARBAGE).  ``replace``: GARBAGE replaces the response.
    ``size``/``terminated``: the OVERSIZED packet.
    """

    fault: Fault
    times: Optional[int] = None
    delay: float = 1.0
    interval: float = 0.0
    data: bytes = DEFAULT_GARBAGE
    replace: bool = False
    size: int = 20 * 1024 * 1024
    terminated: bool = False


class FaultOptions(TypedDict, total=False):
    """The options of a fault, as keyword arguments (defaults in ``FaultSpec``)."""

    times: Optional[int]
    delay: float
    interval: float
    data: bytes
    replace: bool
    size: int
    terminated: bool


def oversized_packet(size: int, terminated: bool) -> bytes:
    """An event of about ``size`` bytes carried by one huge value."""
    head = b"Event: Oversized\r\nPrivilege: call,all\r\nData: "
    body = b"x" * max(0, size - len(head) - 4)
    return head + body + (b"\r\n\r\n" if terminated else b"")


class FaultState:
    """The set of active faults, shared by the server and its sessions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: Dict[Fault, FaultSpec] = {}
        self._counts: Dict[Fault, int] = {}

    def set(self, spec: Optional[FaultSpec], keep_others: bool = False) -> None:
        """Activate ``spec`` (replacing all others unless ``keep_others``)."""
        with self._lock:
            if not keep_others:
                self._faults.clear()
            if spec is not None:
                if spec.times is not None and spec.times <= 0:
                    raise ValueError("times must be positive or None")
                self._faults[spec.fault] = spec

    def remove(self, fault: Fault) -> None:
        """Deactivate one fault."""
        with self._lock:
            self._faults.pop(fault, None)

    def active(self) -> FrozenSet[Fault]:
        """The active faults."""
        with self._lock:
            return frozenset(self._faults)

    def peek(self, fault: Fault) -> Optional[FaultSpec]:
        """The active spec for ``fault``, without consuming a trigger."""
        return self._faults.get(fault)

    def take(self, fault: Fault) -> Optional[FaultSpec]:
        """Consume one trigger of ``fault`` if active; return its spec."""
        if fault not in self._faults:  # fast path, no lock
            return None
        with self._lock:
            spec = self._faults.get(fault)
            if spec is None:
                return None
            self._counts[fault] = self._counts.get(fault, 0) + 1
            if spec.times is not None:
                if spec.times <= 1:
                    del self._faults[fault]
                else:
                    self._faults[fault] = dc_replace(spec, times=spec.times - 1)
            return spec

    def count(self, fault: Fault) -> int:
        """How many times ``fault`` has triggered so far."""
        with self._lock:
            return self._counts.get(fault, 0)


class FaultsMixin:
    """The fault API of ``FakeAMIServer`` (needs a ``faults_state`` attribute)."""

    faults_state: FaultState

    def set_fault(self, fault: Optional[Fault], **options: Unpack[FaultOptions]) -> None:
        """Make ``fault`` the only active fault (``None`` clears). See ``Fault`` and ``FaultSpec``."""
        self.faults_state.set(None if fault is None else FaultSpec(fault, **options))

    def add_fault(self, fault: Fault, **options: Unpack[FaultOptions]) -> None:
        """Activate ``fault`` alongside the active ones."""
        self.faults_state.set(FaultSpec(fault, **options), keep_others=True)

    def clear_faults(self, fault: Optional[Fault] = None) -> None:
        """Deactivate one fault, or all of them."""
        if fault is None:
            self.faults_state.set(None)
        else:
            self.faults_state.remove(fault)

    @property
    def fault(self) -> Optional[Fault]:
        """The active fault (any one, if several), or ``None``; settable."""
        active = self.faults_state.active()
        return next(iter(active)) if active else None

    @fault.setter
    def fault(self, value: Optional[Fault]) -> None:
        self.set_fault(value)

    @property
    def active_faults(self) -> FrozenSet[Fault]:
        """Every active fault."""
        return self.faults_state.active()

    def fault_count(self, fault: Fault) -> int:
        """How many times ``fault`` has triggered."""
        return self.faults_state.count(fault)

    @contextlib.contextmanager
    def injected(self, fault: Fault, **options: Unpack[FaultOptions]) -> Iterator[None]:
        """Context manager: ``fault`` is active inside the block."""
        self.add_fault(fault, **options)
        try:
            yield
        finally:
            self.clear_faults(fault)

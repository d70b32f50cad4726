"""Immutable records of the live state: channels, bridges, calls, queues, extensions.

Every record is a frozen dataclass; every mapping inside one is read-only.
A new record replaces the old one on every change, so a record a caller
holds never changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, Optional, Tuple

__all__ = ["Change", "Channel", "Bridge", "Party", "Call", "QueueMember", "QueueCaller", "Queue", "ExtensionState", "EMPTY"]

EMPTY: Mapping[str, Any] = MappingProxyType({})


def _copy(record: Any, **changes: Any) -> Any:
    """A copy of a frozen record with some fields changed (faster than dataclasses.replace)."""
    new = object.__new__(type(record))
    state = new.__dict__
    state.update(record.__dict__)
    state.update(changes)
    return new


@dataclass(frozen=True)
class Channel:
    """One live channel, keyed by ``uniqueid``."""

    uniqueid: str
    name: str
    state: int = 0
    state_desc: str = "Down"
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    priority: str = ""
    linkedid: str = ""
    bridge_id: Optional[str] = None
    application: str = ""
    application_data: str = ""
    created: float = 0.0
    answered: Optional[float] = None

    @property
    def up(self) -> bool:
        """Whether the channel is answered (state 6, ``Up``)."""
        return self.state == 6


@dataclass(frozen=True)
class Bridge:
    """One bridge, keyed by ``id``; ``channels`` are uniqueids in the order they entered."""

    id: str
    type: str = ""
    technology: str = ""
    creator: str = ""
    name: str = ""
    channels: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Party:
    """One side of a call: its number and name as the other side sees them, and its channel."""

    number: str
    name: str
    channel: str
    uniqueid: str


@dataclass(frozen=True)
class Call:
    """All channels sharing one ``linkedid``.

    ``caller`` is the originating party (the originated channel for an
    Originate); ``callee`` the party it dialed or was bridged with.
    ``direction``: ``"originated"`` (an Originate action) or ``"dialplan"``.
    """

    linkedid: str
    channels: Tuple[str, ...] = ()
    caller: Optional[Party] = None
    callee: Optional[Party] = None
    direction: str = "dialplan"
    started: float = 0.0
    answered: Optional[float] = None
    ended: Optional[float] = None

    @property
    def state(self) -> str:
        """``"ringing"``, ``"answered"`` or ``"ended"``."""
        if self.ended is not None:
            return "ended"
        return "ringing" if self.answered is None else "answered"


@dataclass(frozen=True)
class QueueMember:
    """One queue member, keyed by ``interface``; ``status`` is a device state number."""

    interface: str
    name: str = ""
    state_interface: str = ""
    membership: str = "dynamic"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    in_call: bool = False
    status: int = 0
    paused: bool = False
    paused_reason: str = ""


@dataclass(frozen=True)
class QueueCaller:
    """A caller waiting in a queue; ``joined`` is when it joined (``time.time()``)."""

    uniqueid: str
    channel: str
    position: int
    caller_num: str = ""
    caller_name: str = ""
    joined: float = 0.0

    def wait(self, now: float) -> float:
        """Seconds waited by ``now``."""
        return max(0.0, now - self.joined)


@dataclass(frozen=True)
class Queue:
    """One queue: its ``QueueParams`` headers (as of the last sync), members by interface, callers by position."""

    name: str
    params: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    members: Mapping[str, QueueMember] = field(default_factory=lambda: EMPTY)
    callers: Tuple[QueueCaller, ...] = ()

    @property
    def strategy(self) -> str:
        """The queue's ring strategy (``ringall``...)."""
        return self.params.get("Strategy", "")


@dataclass(frozen=True)
class ExtensionState:
    """A hinted extension's state, keyed by ``(exten, context)``."""

    exten: str
    context: str
    hint: str = ""
    status: int = -1
    status_text: str = ""


class Change(NamedTuple):
    """One change: ``kind`` (``"channel_new"``...), the record's key, the record before and after (None if none)."""

    kind: str
    key: Any
    old: Any
    new: Any

"""Connection-state changes and counters reported by :class:`~amiclient.AMIClient`."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Iterator, Mapping, Optional

__all__ = ["ConnectionState", "StateChange", "ClientStats"]


class ConnectionState(str, enum.Enum):
    """What happened to the client's connection."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    RECONNECTED = "reconnected"
    RECONNECT_FAILED = "reconnect_failed"
    CLOSED = "closed"


@dataclass(frozen=True)
class StateChange:
    """One connection-state change, as passed to ``on_state`` callbacks."""

    state: ConnectionState
    reason: Optional[BaseException] = None
    attempt: int = 0
    delay: float = 0.0


@dataclass(frozen=True)
class ClientStats(Mapping[str, Any]):
    """Counters since the client was created; ``received == dispatched + dropped + queued``.

    Read as attributes (``stats.events_dropped``) or as a read-only mapping
    (``stats["events_dropped"]``, ``dict(stats)``).
    """

    events_received: int
    events_dispatched: int
    events_dropped: int
    events_queued: int
    queue_high_water: int
    listener_errors: int
    actions_sent: int
    actions_in_flight: int
    actions_timed_out: int
    reconnects: int
    bytes_in: int
    bytes_out: int
    connected: bool
    malformed_packets: int = 0

    def __getitem__(self, key: str) -> Any:
        if key not in _STAT_NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_STAT_NAMES)

    def __len__(self) -> int:
        return len(_STAT_NAMES)

    def as_dict(self) -> Dict[str, Any]:
        """The counters as a plain dict."""
        return asdict(self)


_STAT_NAMES = tuple(field.name for field in fields(ClientStats))

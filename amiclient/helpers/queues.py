"""Queue and agent helpers; ``queue_status`` returns typed records."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..packet import Event, Response
from ._base import DEFAULT, HelperHost, truthy

__all__ = ["QueueEntryInfo", "QueueHelpers", "QueueInfo", "QueueMemberInfo"]


def _int(event: Event, key: str) -> int:
    try:
        return int(event.get(key) or 0)
    except ValueError:
        return 0


@dataclass
class QueueMemberInfo:
    """One member of a queue (a ``QueueMember`` item); ``event`` has every field."""

    queue: str
    name: str
    interface: str
    state_interface: str
    membership: str
    penalty: int
    calls_taken: int
    in_call: bool
    status: int
    paused: bool
    paused_reason: str
    event: Event = field(repr=False)

    @classmethod
    def from_event(cls, event: Event) -> QueueMemberInfo:
        """The record of a ``QueueMember`` event."""
        return cls(event.get("Queue", ""), event.get("Name", ""), event.get("Location", ""),
                   event.get("StateInterface", ""), event.get("Membership", ""), _int(event, "Penalty"),
                   _int(event, "CallsTaken"), truthy(event.get("InCall")), _int(event, "Status"),
                   truthy(event.get("Paused")), event.get("PausedReason", ""), event)


@dataclass
class QueueEntryInfo:
    """A caller waiting in a queue (a ``QueueEntry`` item)."""

    queue: str
    position: int
    channel: str
    uniqueid: str
    caller_id_num: str
    caller_id_name: str
    wait: int
    event: Event = field(repr=False)

    @classmethod
    def from_event(cls, event: Event) -> QueueEntryInfo:
        """The record of a ``QueueEntry`` event."""
        return cls(event.get("Queue", ""), _int(event, "Position"), event.get("Channel", ""),
                   event.get("Uniqueid", ""), event.get("CallerIDNum", ""), event.get("CallerIDName", ""),
                   _int(event, "Wait"), event)


@dataclass
class QueueInfo:
    """A queue (``QueueParams``) with its members and waiting callers."""

    name: str
    strategy: str
    calls: int
    max: int
    holdtime: int
    talktime: int
    completed: int
    abandoned: int
    members: List[QueueMemberInfo] = field(default_factory=list)
    entries: List[QueueEntryInfo] = field(default_factory=list)
    event: Optional[Event] = field(default=None, repr=False)

    @classmethod
    def from_event(cls, event: Event) -> QueueInfo:
        """The record of a ``QueueParams`` event (no members or entries yet)."""
        return cls(event.get("Queue", ""), event.get("Strategy", ""), _int(event, "Calls"), _int(event, "Max"),
                   _int(event, "Holdtime"), _int(event, "TalkTime"), _int(event, "Completed"),
                   _int(event, "Abandoned"), event=event)


def _penalty(value: Optional[int]) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"penalty must be a non-negative integer, not {value!r}")
    return value


class QueueHelpers(HelperHost):
    """``app_queue`` and ``app_agent_pool`` actions."""

    def queue_status(self, queue: Optional[str] = None, member: Optional[str] = None, *,
                     timeout: Any = DEFAULT) -> Dict[str, QueueInfo]:
        """Every queue (or one) with its members and callers: ``{name: QueueInfo}`` in server order."""
        queues: Dict[str, QueueInfo] = {}
        for event in self._call("QueueStatus", {"Queue": queue, "Member": member}, timeout).events:
            name, kind = event.get("Queue", ""), event.name
            if kind == "QueueParams":
                queues[name] = QueueInfo.from_event(event)
                continue
            info = queues.get(name)
            if info is None:  # an item without its queue's params: keep it anyway
                info = queues[name] = QueueInfo(name, "", 0, 0, 0, 0, 0, 0)
            if kind == "QueueMember":
                info.members.append(QueueMemberInfo.from_event(event))
            elif kind == "QueueEntry":
                info.entries.append(QueueEntryInfo.from_event(event))
        return queues

    def queue_summary(self, queue: Optional[str] = None, *, timeout: Any = DEFAULT) -> List[Event]:
        """``QueueSummary`` items: ``LoggedIn``, ``Available``, ``Callers``, ``HoldTime``... per queue."""
        return self._call("QueueSummary", {"Queue": queue}, timeout).events

    def queue_add(self, queue: str, interface: str, *, member_name: Optional[str] = None,
                  penalty: Optional[int] = None, paused: Optional[bool] = None, reason: Optional[str] = None,
                  state_interface: Optional[str] = None, timeout: Any = DEFAULT) -> Response:
        """Add a dynamic member to a queue (``QueueAdd``)."""
        return self._call("QueueAdd", {"Queue": queue, "Interface": interface, "MemberName": member_name,
                                       "Penalty": _penalty(penalty), "Paused": paused, "Reason": reason,
                                       "StateInterface": state_interface}, timeout)

    def queue_remove(self, queue: str, interface: str, *, timeout: Any = DEFAULT) -> Response:
        """Remove a dynamic member from a queue (``QueueRemove``)."""
        return self._call("QueueRemove", {"Queue": queue, "Interface": interface}, timeout)

    def queue_pause(self, interface: str, paused: bool = True, queue: Optional[str] = None,
                    reason: Optional[str] = None, *, timeout: Any = DEFAULT) -> Response:
        """Pause or unpause a member, in ``queue`` or in every queue (``QueuePause``)."""
        return self._call("QueuePause", {"Interface": interface, "Paused": bool(paused), "Queue": queue,
                                         "Reason": reason}, timeout)

    def queue_penalty(self, interface: str, penalty: int, queue: Optional[str] = None, *,
                      timeout: Any = DEFAULT) -> Response:
        """Set a member's penalty, in ``queue`` or in every queue (``QueuePenalty``)."""
        if penalty is None:
            raise ValueError("queue_penalty needs a penalty")
        return self._call("QueuePenalty", {"Interface": interface, "Penalty": _penalty(penalty), "Queue": queue},
                          timeout)

    def queue_log(self, queue: str, event: str, *, uniqueid: Optional[str] = None, interface: Optional[str] = None,
                  message: Optional[str] = None, timeout: Any = DEFAULT) -> Response:
        """Write a custom line to the queue log (``QueueLog``)."""
        return self._call("QueueLog", {"Queue": queue, "Event": event, "Uniqueid": uniqueid,
                                       "Interface": interface, "Message": message}, timeout)

    def agents(self, *, timeout: Any = DEFAULT) -> List[Event]:
        """The configured agents (``Agents`` items: ``Agent``, ``Name``, ``Status``...)."""
        return self._call("Agents", None, timeout).events

    def agent_logoff(self, agent: str, *, soft: bool = False, timeout: Any = DEFAULT) -> Response:
        """Log an agent off (``AgentLogoff``); ``soft`` waits for its current call to end."""
        return self._call("AgentLogoff", {"Agent": agent, "Soft": True if soft else None}, timeout)

"""Simulated call queues (app_queue): QueueStatus, QueueSummary, QueueAdd, QueuePause, QueueRemove.

Header names, order and messages are copied from the Asterisk 22 recording
(``tests/fixtures/asterisk-22/session.json``).  ``legacy`` servers answer like
the Asterisk 13 recording: no ``LastPause``/``LoginTime``/``Wrapuptime``, no
``ServicelevelPerf2``, ``QueueMemberPause`` carries ``Reason``, and no
``DeviceStateChange`` events.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Protocol, Sequence, Tuple, cast

from ._events import CLASSES, Event
from ._handlers import ActionTable, HandlerResult, ServerHost, list_complete, list_item, list_start
from ._session import Session
from ._wire import Packet, build_response, encode_packet

__all__ = ["QUEUE_ACTIONS", "Queue", "QueueCaller", "QueueHost", "QueueMember"]

_BIT = dict(CLASSES)
_TRUE = frozenset(("yes", "true", "y", "t", "1", "on"))
Pairs = List[Tuple[str, Optional[str]]]

#: Device states (include/asterisk/devicestate.h) that count as "available".
_AVAILABLE_STATUS = (0, 1)  # AST_DEVICE_UNKNOWN, AST_DEVICE_NOT_INUSE
_LOGGED_OUT_STATUS = (4, 5)  # AST_DEVICE_INVALID, AST_DEVICE_UNAVAILABLE


def _now() -> int:
    return int(time.time())


@dataclass
class QueueMember:
    """A queue member: an interface that calls are sent to.

    ``name`` (``MemberName``) and ``state_interface`` default to
    ``interface``.  ``status`` is a device state number (1 = not in use).
    """

    interface: str
    name: str = ""
    state_interface: str = ""
    dynamic: bool = True
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = field(default_factory=_now)
    in_call: bool = False
    status: int = 1
    paused: bool = False
    paused_reason: str = ""
    ringinuse: bool = True
    wrapuptime: int = 0

    def __post_init__(self) -> None:
        self.name = self.name or self.interface
        self.state_interface = self.state_interface or self.interface

    @property
    def available(self) -> bool:
        """Whether the queue may ring this member now."""
        return not self.paused and self.status in _AVAILABLE_STATUS

    @property
    def logged_in(self) -> bool:
        """Whether QueueSummary counts this member as logged in."""
        return self.status not in _LOGGED_OUT_STATUS

    def fields(self, legacy: bool, event: bool) -> Pairs:
        """The member's headers as a ``QueueMember`` item or (``event``) a ``QueueMember*`` event."""
        if event:
            pairs: Pairs = [("MemberName", self.name), ("Interface", self.interface)]
        else:
            pairs = [("Name", self.name), ("Location", self.interface)]
        pairs += [
            ("StateInterface", self.state_interface),
            ("Membership", "dynamic" if self.dynamic else "static"),
            ("Penalty", str(self.penalty)), ("CallsTaken", str(self.calls_taken)),
            ("LastCall", str(self.last_call)),
        ]
        if not legacy:
            pairs += [("LastPause", str(self.last_pause)), ("LoginTime", str(self.login_time))]
        pairs += [
            ("InCall", str(int(self.in_call))), ("Status", str(self.status)),
            ("Paused", str(int(self.paused))), ("PausedReason", self.paused_reason),
        ]
        if event:
            pairs.append(("Ringinuse", str(int(self.ringinuse))))
        if not legacy:
            pairs.append(("Wrapuptime", str(self.wrapuptime)))
        return pairs


@dataclass
class QueueCaller:
    """A caller waiting in a queue (a ``QueueEntry`` item); ``unknown`` as Asterisk says for unset IDs."""

    channel: str
    uniqueid: str = ""
    caller_num: str = "unknown"
    caller_name: str = "unknown"
    connected_num: str = "unknown"
    connected_name: str = "unknown"
    priority: int = 0
    joined: float = field(default_factory=time.time)


@dataclass
class Queue:
    """An app_queue queue: its parameters, statistics, members (by interface) and waiting callers."""

    name: str
    strategy: str = "ringall"
    max_len: int = 0
    weight: int = 0
    service_level: int = 0
    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0
    completed_in_sl: int = 0
    abandoned_in_sl: int = 0
    members: Dict[str, QueueMember] = field(default_factory=dict)
    callers: List[QueueCaller] = field(default_factory=list)

    def add(self, member: QueueMember) -> QueueMember:
        """Add (or replace) a member; return it."""
        self.members[member.interface] = member
        return member

    def member(self, interface: str) -> Optional[QueueMember]:
        """A member by interface (case-insensitive, like app_queue)."""
        low = interface.lower()
        return next((m for key, m in self.members.items() if key.lower() == low), None)

    def params(self, legacy: bool) -> Pairs:
        """The ``QueueParams`` item headers."""
        done = self.completed + self.abandoned
        perf = 100.0 * self.completed_in_sl / self.completed if self.completed else 0.0
        perf2 = 100.0 * (self.completed_in_sl + self.abandoned_in_sl) / done if done else 0.0
        pairs: Pairs = [
            ("Queue", self.name), ("Max", str(self.max_len)), ("Strategy", self.strategy),
            ("Calls", str(len(self.callers))), ("Holdtime", str(self.holdtime)),
            ("TalkTime", str(self.talktime)), ("Completed", str(self.completed)),
            ("Abandoned", str(self.abandoned)), ("ServiceLevel", str(self.service_level)),
            ("ServicelevelPerf", "%2.1f" % perf),
        ]
        if not legacy:
            pairs.append(("ServicelevelPerf2", "%2.1f" % perf2))
        return pairs + [("Weight", str(self.weight))]


class QueueHost(ServerHost, Protocol):
    """The server state the queue actions use."""

    queues: Dict[str, Queue]
    device_states: Dict[str, str]


def _srv(s: Session) -> QueueHost:
    return cast(QueueHost, s.server)


def _find_queue(server: QueueHost, name: str) -> Optional[Queue]:
    low = name.lower()
    return next((q for key, q in server.queues.items() if key.lower() == low), None)


def _error(p: Packet, message: str) -> Pairs:
    return build_response(p, message, "Error")


class _Emitter:
    """Collects a queue action's events; ``send()`` (under ``server.lock``) broadcasts them in order."""

    def __init__(self, server: QueueHost) -> None:
        self.server = server
        self.events: List[Event] = []

    def device(self, device: str, state: str) -> None:
        """A DeviceStateChange, if the (cachable) state changed; none on legacy servers."""
        srv = self.server
        if srv.legacy or srv.device_states.get(device) == state:
            return
        srv.device_states[device] = state
        pairs: Pairs = [("Event", "DeviceStateChange"), ("Privilege", "call,all"),
                        ("Device", device), ("State", state)]
        self.events.append(Event("DeviceStateChange", _BIT["call"], encode_packet(pairs)))

    def pause_device(self, queue: Queue, member: QueueMember, removed: bool = False) -> None:
        """``Queue:<q>_pause_<iface>``: INUSE while paused."""
        state = "INUSE" if member.paused and not removed else "NOT_INUSE"
        self.device("Queue:%s_pause_%s" % (queue.name, member.interface), state)

    def avail_device(self, queue: Queue) -> None:
        """``Queue:<q>_avail``: NOT_INUSE while some member is available."""
        available = any(m.available for m in queue.members.values())
        self.device("Queue:%s_avail" % queue.name, "NOT_INUSE" if available else "INUSE")

    def member(
        self, name: str, queue: Queue, member: QueueMember, extra: Sequence[Tuple[str, Optional[str]]] = ()
    ) -> None:
        """A ``QueueMember*`` event (agent class)."""
        pairs: Pairs = [("Event", name), ("Privilege", "agent,all"), ("Queue", queue.name)]
        pairs += member.fields(self.server.legacy, event=True) + list(extra)
        self.events.append(Event(name, _BIT["agent"], encode_packet(pairs)))

    def send(self) -> None:
        """Broadcast the collected events."""
        for event in self.events:
            self.server.broadcast(event)


# -- actions ----------------------------------------------------------------------


def act_queuestatus(s: Session, p: Packet) -> HandlerResult:
    """QueueStatus: QueueParams, QueueMember and QueueEntry items per queue."""
    srv = _srv(s)
    queue_filter, member_filter = p.get("Queue", ""), p.get("Member", "")
    items: List[Pairs] = []
    now = time.time()
    with srv.lock:
        for q in list(srv.queues.values()):
            if queue_filter and q.name.lower() != queue_filter.lower():
                continue
            items.append(list_item(p, "QueueParams", q.params(srv.legacy)))
            for m in q.members.values():
                if not member_filter or member_filter in (m.interface, m.name):
                    body = [("Queue", q.name)] + m.fields(srv.legacy, event=False)
                    items.append(list_item(p, "QueueMember", body))
            for pos, c in enumerate(q.callers, 1):
                entry: Pairs = [
                    ("Queue", q.name), ("Position", str(pos)), ("Channel", c.channel),
                    ("Uniqueid", c.uniqueid), ("CallerIDNum", c.caller_num),
                    ("CallerIDName", c.caller_name), ("ConnectedLineNum", c.connected_num),
                    ("ConnectedLineName", c.connected_name), ("Wait", str(int(now - c.joined))),
                ]
                if not srv.legacy:
                    entry.append(("Priority", str(c.priority)))
                items.append(list_item(p, "QueueEntry", entry))
    complete = list_complete(p, "QueueStatusComplete", len(items))
    return [list_start(p, "Queue status will follow")] + items + [complete]


def act_queuesummary(s: Session, p: Packet) -> HandlerResult:
    """QueueSummary: member and caller counts per queue."""
    srv = _srv(s)
    queue_filter = p.get("Queue", "")
    items: List[Pairs] = []
    now = time.time()
    with srv.lock:
        for q in list(srv.queues.values()):
            if queue_filter and q.name.lower() != queue_filter.lower():
                continue
            logged_in = [m for m in q.members.values() if m.logged_in]
            longest = max((int(now - c.joined) for c in q.callers), default=0)
            items.append(list_item(p, "QueueSummary", [
                ("Queue", q.name), ("LoggedIn", str(len(logged_in))),
                ("Available", str(sum(1 for m in logged_in if m.available))),
                ("Callers", str(len(q.callers))), ("HoldTime", str(q.holdtime)),
                ("TalkTime", str(q.talktime)), ("LongestHoldTime", str(longest)),
            ]))
    complete = list_complete(p, "QueueSummaryComplete", len(items))
    return [list_start(p, "Queue summary will follow")] + items + [complete]


def _int(text: str) -> int:
    """``sscanf("%30d")`` with app_queue's fallback: a leading integer, else 0; negatives become 0."""
    match = re.match(r"\s*([+-]?\d+)", text)
    value = int(match.group(1)) if match else 0
    return max(value, 0)


def act_queueadd(s: Session, p: Packet) -> HandlerResult:
    """QueueAdd: add a dynamic member (QueueMemberAdded + device states)."""
    srv = _srv(s)
    queue_name, interface = p.get("Queue", ""), p.get("Interface", "")
    if not queue_name:
        return _error(p, "'Queue' not specified.")
    if not interface:
        return _error(p, "'Interface' not specified.")
    paused = p.get("Paused", "").lower() in _TRUE
    emitter = _Emitter(srv)
    with srv.lock:
        q = _find_queue(srv, queue_name)
        if q is None:
            return _error(p, "Unable to add interface to queue: No such queue")
        if q.member(interface) is not None:
            return _error(p, "Unable to add interface: Already there")
        member = q.add(QueueMember(
            interface, p.get("MemberName", ""), p.get("StateInterface", ""),
            penalty=_int(p.get("Penalty", "")), paused=paused,
            paused_reason=p.get("Reason", "") if paused else "",
            last_pause=_now() if paused else 0, wrapuptime=_int(p.get("Wrapuptime", "")),
        ))
        emitter.pause_device(q, member)
        emitter.member("QueueMemberAdded", q, member)
        if member.available:
            emitter.avail_device(q)
        emitter.send()
    return build_response(p, "Added interface to queue")


def act_queueremove(s: Session, p: Packet) -> HandlerResult:
    """QueueRemove: remove a dynamic member (QueueMemberRemoved + its pause device)."""
    srv = _srv(s)
    queue_name, interface = p.get("Queue", ""), p.get("Interface", "")
    if not queue_name or not interface:
        return _error(p, "Need 'Queue' and 'Interface' parameters.")
    emitter = _Emitter(srv)
    with srv.lock:
        q = _find_queue(srv, queue_name)
        if q is None:
            return _error(p, "Unable to remove interface from queue: No such queue")
        member = q.member(interface)
        if member is None:
            return _error(p, "Unable to remove interface: Not there")
        if not member.dynamic:
            return _error(p, "Member not dynamic")
        emitter.member("QueueMemberRemoved", q, member)
        emitter.pause_device(q, member, removed=True)
        del q.members[member.interface]
        emitter.send()
    return build_response(p, "Removed interface from queue")


def act_queuepause(s: Session, p: Packet) -> HandlerResult:
    """QueuePause: (un)pause a member in one queue, or in every queue it is in."""
    srv = _srv(s)
    interface, paused_text = p.get("Interface", ""), p.get("Paused", "")
    queue_name, reason = p.get("Queue", ""), p.get("Reason", "")
    if not interface or not paused_text:
        return _error(p, "Need 'Interface' and 'Paused' parameters.")
    paused = paused_text.lower() in _TRUE
    emitter = _Emitter(srv)
    with srv.lock:
        found = False
        for q in list(srv.queues.values()):
            member = q.member(interface)
            if member is None or (queue_name and q.name.lower() != queue_name.lower()):
                continue
            found = True
            member.paused = paused
            member.paused_reason = reason if paused else ""
            if paused:
                member.last_pause = _now()
            emitter.pause_device(q, member)
            emitter.avail_device(q)
            extra: Pairs = [("Reason", reason)] if srv.legacy and reason else []
            emitter.member("QueueMemberPause", q, member, extra)
        emitter.send()
    if not found:
        return _error(p, "Interface not found")
    return build_response(p, "Interface paused successfully" if paused else "Interface unpaused successfully")


QUEUE_ACTIONS: ActionTable = [
    ("QueueStatus", act_queuestatus, "", "Show queue status."),
    ("QueueSummary", act_queuesummary, "", "Show queue summary."),
    ("QueueAdd", act_queueadd, "agent", "Add interface to queue."),
    ("QueueRemove", act_queueremove, "agent", "Remove interface from queue."),
    ("QueuePause", act_queuepause, "agent", "Makes a queue member temporarily unavailable."),
]

"""Queues (app_queue): members and waiting callers from QueueStatus and Queue* events."""
from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ._records import EMPTY, Change, Queue, QueueCaller, QueueMember, _copy

__all__ = ["QueueBook"]

Headers = Dict[str, str]
_TRUE = frozenset(("1", "yes", "true"))


def _h(ev: Headers, key: str, default: str = "") -> str:
    value = ev.get(key)
    return default if value is None else value


def _i(ev: Headers, key: str, default: int = 0) -> int:
    try:
        return int(_h(ev, key, str(default)))
    except ValueError:
        return default


class QueueBook:
    """The queue-tracking part of :class:`~amiclient.live._model.LiveModel`."""

    queues: Dict[str, Queue]
    changes: List[Change]
    clock: Callable[[], float]

    def _mark(self, category: str) -> None:  # pragma: no cover - see LiveModel
        raise NotImplementedError

    def _queue_handlers(self) -> Dict[str, Callable[[Headers], None]]:
        member = self._on_member
        return {
            "QueueCallerJoin": self._on_join, "Join": self._on_join,
            "QueueCallerLeave": self._on_leave, "Leave": self._on_leave,
            "QueueCallerAbandon": self._on_leave,
            "QueueMemberAdded": member, "QueueMemberStatus": member, "QueueMemberPause": member,
            "QueueMemberPaused": member, "QueueMemberPenalty": member, "QueueMemberRinginuse": member,
            "QueueMemberRemoved": self._on_member_removed,
            "AgentConnect": self._on_agent_connect_member,
            "AgentComplete": self._on_agent_done, "AgentDump": self._on_agent_done,
        }

    def _in_call(self, ev: Headers, in_call: bool) -> None:
        old = self.queues.get(_h(ev, "Queue"))
        interface = _h(ev, "Interface")
        member = old.members.get(interface) if old is not None else None
        if old is not None and member is not None and member.in_call != in_call:
            members = dict(old.members)
            members[interface] = _copy(member, in_call=in_call)
            self._put_queue(old, _copy(old, members=MappingProxyType(members)))

    def _on_agent_connect_member(self, ev: Headers) -> None:
        getattr(self, "_on_agent_connect")(ev)  # noqa: B009 (defined by the class this mixes into)
        self._in_call(ev, True)

    def _on_agent_done(self, ev: Headers) -> None:
        self._in_call(ev, False)

    def _put_queue(self, old: Optional[Queue], new: Queue) -> None:
        self.queues[new.name] = new
        self._mark("queues")
        self.changes.append(Change("queue_changed", new.name, old, new))

    @staticmethod
    def _member_from(ev: Headers, old: Optional[QueueMember]) -> QueueMember:
        interface = _h(ev, "Interface") or _h(ev, "Location")
        base = old if old is not None else QueueMember(interface)
        paused = ev.get("Paused")
        in_call = ev.get("InCall")
        return QueueMember(
            interface, _h(ev, "MemberName") or _h(ev, "Name") or base.name,
            _h(ev, "StateInterface", base.state_interface), _h(ev, "Membership", base.membership),
            _i(ev, "Penalty", base.penalty), _i(ev, "CallsTaken", base.calls_taken), _i(ev, "LastCall", base.last_call),
            base.in_call if in_call is None else in_call.lower() in _TRUE,
            _i(ev, "Status", base.status),
            base.paused if paused is None else paused.lower() in _TRUE,
            _h(ev, "PausedReason", _h(ev, "Reason", base.paused_reason)),
        )

    def _queue(self, name: str) -> Queue:
        return self.queues.get(name) or Queue(name)

    def _on_member(self, ev: Headers) -> None:
        name = _h(ev, "Queue")
        interface = _h(ev, "Interface") or _h(ev, "Location")
        if not name or not interface:
            return
        old = self.queues.get(name)
        queue = old or Queue(name)
        member = self._member_from(ev, queue.members.get(interface))
        if queue.members.get(interface) != member:
            members = dict(queue.members)
            members[interface] = member
            self._put_queue(old, _copy(queue, members=MappingProxyType(members)))

    def _on_member_removed(self, ev: Headers) -> None:
        old = self.queues.get(_h(ev, "Queue"))
        interface = _h(ev, "Interface") or _h(ev, "Location")
        if old is not None and interface in old.members:
            members = dict(old.members)
            del members[interface]
            self._put_queue(old, _copy(old, members=MappingProxyType(members)))

    @staticmethod
    def _renumber(callers: Iterable[QueueCaller]) -> Tuple[QueueCaller, ...]:
        return tuple(c if c.position == i else _copy(c, position=i) for i, c in enumerate(callers, 1))

    def _on_join(self, ev: Headers) -> None:
        name = _h(ev, "Queue")
        uid = _h(ev, "Uniqueid")
        if not name or not uid:
            return
        old = self.queues.get(name)
        queue = old or Queue(name)
        callers = [c for c in queue.callers if c.uniqueid != uid]
        position = max(1, min(_i(ev, "Position", len(callers) + 1), len(callers) + 1))
        caller = QueueCaller(uid, _h(ev, "Channel"), position, _h(ev, "CallerIDNum"), _h(ev, "CallerIDName"), self.clock())
        callers.insert(position - 1, caller)
        self._put_queue(old, _copy(queue, callers=self._renumber(callers)))

    def _on_leave(self, ev: Headers) -> None:
        old = self.queues.get(_h(ev, "Queue"))
        uid = _h(ev, "Uniqueid")
        if old is None or not any(c.uniqueid == uid for c in old.callers):
            return
        self._put_queue(old, _copy(old, callers=self._renumber(c for c in old.callers if c.uniqueid != uid)))

    def load_queues(self, items: Iterable[Headers]) -> None:
        """Make the queues what ``QueueStatus`` items (QueueParams/QueueMember/QueueEntry) say."""
        now = self.clock()
        params: Dict[str, Dict[str, str]] = {}
        members: Dict[str, Dict[str, QueueMember]] = {}
        entries: Dict[str, List[QueueCaller]] = {}
        for ev in items:
            kind, name = _h(ev, "Event"), _h(ev, "Queue")
            if not name:
                continue
            if kind == "QueueParams":
                params[name] = {k: v for k, v in ev.items() if k not in ("Event", "ActionID", "Queue")}
                members.setdefault(name, {})
                entries.setdefault(name, [])
            elif kind == "QueueMember":
                old_queue = self.queues.get(name)
                old_member = old_queue.members.get(_h(ev, "Location")) if old_queue is not None else None
                member = self._member_from(ev, old_member)
                members.setdefault(name, {})[member.interface] = member
            elif kind == "QueueEntry":
                uid = _h(ev, "Uniqueid")
                known = next((c for c in self.queues[name].callers if c.uniqueid == uid), None) \
                    if name in self.queues else None
                joined = known.joined if known is not None else now - _i(ev, "Wait")
                entries.setdefault(name, []).append(QueueCaller(
                    uid, _h(ev, "Channel"), _i(ev, "Position"), _h(ev, "CallerIDNum"), _h(ev, "CallerIDName"), joined))
        names = set(params) | set(members) | set(entries)
        for name in [n for n in self.queues if n not in names]:
            gone = self.queues.pop(name)
            self._mark("queues")
            self.changes.append(Change("queue_changed", name, gone, None))
        for name in names:
            old = self.queues.get(name)
            new = Queue(
                name, MappingProxyType(params[name]) if name in params else (old.params if old is not None else EMPTY),
                MappingProxyType(members.get(name, {})),
                tuple(sorted(entries.get(name, []), key=lambda c: c.position)),
            )
            if new != old:
                self._put_queue(old, new)



"""The fake's switch: bridges, queue callers and device/extension states over the simulated channels.

Together with :class:`~amiclient.testing._calls.CallSimulator` (the
channels) and ``server.queues`` (queue members), this is one consistent
model: every change emits the events Asterisk 22 sends for it, and the
snapshot actions (CoreShowChannels' ``BridgeId``, BridgeList, BridgeInfo,
QueueStatus' ``QueueEntry``, DeviceStateList, ExtensionStateList) answer
from the same state.  Shapes follow the recordings in
``tests/fixtures/asterisk-22`` (calls-bridged, queue-calls, device-states).
"""
from __future__ import annotations

import itertools
import uuid
from typing import Dict, List, Optional, Protocol, Sequence, Tuple, cast

from ._calls import CallSimulator, Channel
from ._events import CLASSES, Event
from ._handlers import ActionTable, HandlerResult, ServerHost, list_complete, list_item, list_start
from ._queues import Queue, QueueCaller
from ._session import Session
from ._wire import Packet, build_response, encode_packet

__all__ = ["SwitchModel", "ModelHost", "MODEL_ACTIONS", "EXTENSION_STATES"]

Pairs = List[Tuple[str, Optional[str]]]
_BIT = dict(CLASSES)
#: ExtensionStatus ``Status`` -> ``StatusText``
EXTENSION_STATES = {
    -2: "Removed", -1: "Unknown", 0: "Idle", 1: "InUse", 2: "Busy", 4: "Unavailable",
    8: "Ringing", 9: "InUse&Ringing", 16: "Hold", 17: "InUse&Hold",
}
_DEVICE_TO_EXTENSION = {
    "UNKNOWN": 0, "NOT_INUSE": 0, "INUSE": 1, "BUSY": 2, "INVALID": 4, "UNAVAILABLE": 4,
    "RINGING": 8, "RINGINUSE": 9, "ONHOLD": 16,
}


class SwitchModel:
    """Bridges, queue callers and device states of a :class:`FakeAMIServer` (use under ``server.lock``).

    ``bridges`` maps a bridge id to the names of the channels in it, in
    the order they entered.
    """

    def __init__(self, server: ModelHost) -> None:
        self._server = server
        self.bridges: Dict[str, List[str]] = {}
        self._ids = itertools.count(1)

    def clear(self) -> None:
        """Forget every bridge (no events), as a restart does."""
        with self._server.lock:
            self.bridges.clear()
            for queue in self._server.queues.values():
                queue.callers.clear()

    def _emit(self, name: str, pairs: Pairs, classes: int = _BIT["call"]) -> None:
        self._server.broadcast(Event(name, classes, encode_packet(pairs)))

    # -- bridges -----------------------------------------------------------------

    @staticmethod
    def _bridge_block(bid: str, count: int, prefix: str = "") -> Pairs:
        return [
            (prefix + "BridgeUniqueid", bid), (prefix + "BridgeType", "basic"),
            (prefix + "BridgeTechnology", "simple_bridge"), (prefix + "BridgeCreator", "<unknown>"),
            (prefix + "BridgeName", "<unknown>"), (prefix + "BridgeNumChannels", str(count)),
            (prefix + "BridgeVideoSourceMode", "none"),
        ]

    def bridge_of(self, channel: str) -> str:
        """The id of the bridge a channel is in (``""``: none)."""
        with self._server.lock:
            return next((bid for bid, names in self.bridges.items() if channel in names), "")

    def bridge(self, *channels: str) -> str:
        """Put channels (answering them) into a new bridge, with BridgeCreate/BridgeEnter; return its id.

        A channel already in another bridge leaves it first.  ValueError
        for an unknown channel.
        """
        calls = self._server.calls
        with self._server.lock:
            chans = [calls.find(name) for name in channels]
            missing = [name for name, chan in zip(channels, chans) if chan is None]
            if missing:
                raise ValueError("no such channel: %s" % ", ".join(missing))
            bid = str(uuid.UUID(int=next(self._ids) + (id(self) << 32) % (1 << 96)))
            self.bridges[bid] = []
            self._emit("BridgeCreate", [("Event", "BridgeCreate"), ("Privilege", "call,all")]
                       + self._bridge_block(bid, 0))
            for chan in chans:
                assert chan is not None
                self._leave(chan)
                if chan.state != 6:
                    chan.state = 6
                    calls._state_event("Newstate", chan)
                self.bridges[bid].append(chan.name)
                self._emit("BridgeEnter", [("Event", "BridgeEnter"), ("Privilege", "call,all")]
                           + self._bridge_block(bid, len(self.bridges[bid])) + chan.block())
        return bid

    def _leave(self, chan: Channel) -> None:
        for bid, names in list(self.bridges.items()):
            if chan.name in names:
                names.remove(chan.name)
                self._emit("BridgeLeave", [("Event", "BridgeLeave"), ("Privilege", "call,all")]
                           + self._bridge_block(bid, len(names)) + chan.block())
                if not names:
                    del self.bridges[bid]
                    self._emit("BridgeDestroy", [("Event", "BridgeDestroy"), ("Privilege", "call,all")]
                               + self._bridge_block(bid, 0))

    def leave(self, channel: str) -> bool:
        """Take a channel out of its bridge (BridgeLeave; BridgeDestroy once empty); False if in none."""
        chan = self._server.calls.find(channel)
        with self._server.lock:
            if chan is None or not self.bridge_of(channel):
                return False
            self._leave(chan)
            return True

    # -- queue callers -----------------------------------------------------------------

    def queue_join(self, queue: str, channel: str) -> int:
        """Put a channel into a queue's waiting line (QueueCallerJoin); its position.

        ValueError for an unknown queue or channel.
        """
        chan = self._server.calls.find(channel)
        with self._server.lock:
            q = self._server.queues.get(queue)
            if q is None or chan is None:
                raise ValueError("no such queue or channel: %s, %s" % (queue, channel))
            q.callers.append(QueueCaller(chan.name, chan.uniqueid, chan.caller_num, chan.caller_name,
                                         chan.caller_num, chan.caller_name))
            position = len(q.callers)
            self._emit("QueueCallerJoin", [("Event", "QueueCallerJoin"), ("Privilege", "agent,all")]
                       + chan.block() + [("Queue", q.name), ("Position", str(position)),
                                         ("Count", str(len(q.callers)))], _BIT["agent"])
            return position

    def queue_leave(self, channel: str, abandon: bool = False) -> bool:
        """Take a channel out of every queue it waits in (QueueCallerAbandon if ``abandon``, QueueCallerLeave)."""
        chan = self._server.calls.find(channel)
        left = False
        with self._server.lock:
            for q in self._server.queues.values():
                for position, caller in enumerate(list(q.callers), 1):
                    if caller.channel != channel:
                        continue
                    q.callers.remove(caller)
                    left = True
                    block: Pairs = chan.block() if chan is not None else [("Channel", channel), ("Uniqueid", caller.uniqueid)]
                    if abandon:
                        self._emit("QueueCallerAbandon", [("Event", "QueueCallerAbandon"), ("Privilege", "agent,all")]
                                   + block + [("Queue", q.name), ("Position", str(position)),
                                              ("OriginalPosition", str(position)), ("HoldTime", "0")],
                                   _BIT["agent"])
                    self._emit("QueueCallerLeave", [("Event", "QueueCallerLeave"), ("Privilege", "agent,all")]
                               + block + [("Queue", q.name), ("Position", str(position)),
                                          ("Count", str(len(q.callers)))], _BIT["agent"])
        return left

    def channel_gone(self, chan: Channel) -> None:
        """Before a channel's Hangup: it abandons its queues and leaves its bridge."""
        with self._server.lock:
            self.queue_leave(chan.name, abandon=True)
            self._leave(chan)

    # -- device and extension states -----------------------------------------------------

    def set_device_state(self, device: str, state: str) -> None:
        """Set a device's state: DeviceStateChange, then ExtensionStatus for each hint that names it."""
        srv = self._server
        with srv.lock:
            if srv.device_states.get(device) == state:
                return
            srv.device_states[device] = state
            self._emit("DeviceStateChange", [("Event", "DeviceStateChange"), ("Privilege", "call,all"),
                                             ("Device", device), ("State", state)])
            for (exten, context), (hint, _) in list(srv.hints.items()):
                devices = hint.split("&")
                if device not in devices:
                    continue
                status = self._hint_status(devices)
                srv.hints[(exten, context)] = (hint, status)
                self._emit("ExtensionStatus", [
                    ("Event", "ExtensionStatus"), ("Privilege", "call,all"), ("Exten", exten),
                    ("Context", context), ("Hint", hint), ("Status", str(status)),
                    ("StatusText", EXTENSION_STATES.get(status, "Unknown")),
                ])

    def _hint_status(self, devices: Sequence[str]) -> int:
        states = [_DEVICE_TO_EXTENSION.get(self._server.device_states.get(d, "UNKNOWN"), 0) for d in devices]
        if all(s == 4 for s in states):
            return 4
        status = 0
        for s in states:
            if s != 4:
                status |= s
        return status


# -- actions ---------------------------------------------------------------------------


class ModelHost(ServerHost, Protocol):
    """The server state the switch model uses."""

    queues: Dict[str, Queue]
    device_states: Dict[str, str]
    hints: Dict[Tuple[str, str], Tuple[str, int]]

    @property
    def calls(self) -> CallSimulator: ...

    @property
    def switch(self) -> SwitchModel: ...


def _srv(s: Session) -> ModelHost:
    return cast(ModelHost, s.server)


def act_bridgelist(s: Session, p: Packet) -> HandlerResult:
    """BridgeList: a BridgeListItem per bridge."""
    with _srv(s).lock:
        bridges = [(bid, len(names)) for bid, names in _srv(s).switch.bridges.items()]
    items = [list_item(p, "BridgeListItem", SwitchModel._bridge_block(bid, n), id_first=True) for bid, n in bridges]
    return [list_start(p, "Bridge listing will follow")] + items + [list_complete(p, "BridgeListComplete", len(items))]


def act_bridgeinfo(s: Session, p: Packet) -> HandlerResult:
    """BridgeInfo: a BridgeInfoChannel per channel, the bridge's fields on the completion event."""
    bid = p.get("BridgeUniqueid", "")
    if not bid:
        return build_response(p, "Bridge identifier not provided", "Error")
    srv = _srv(s)
    with srv.lock:
        names = srv.switch.bridges.get(bid)
        if names is None:
            return build_response(p, "Bridge %s not found" % bid, "Error")
        chans = [c for c in (srv.calls.find(n) for n in names) if c is not None]
        items = [list_item(p, "BridgeInfoChannel", c.block(), id_first=True) for c in chans]
        block = SwitchModel._bridge_block(bid, len(names))
    complete = list_complete(p, "BridgeInfoComplete", len(items), block)
    return [list_start(p, "Bridge channel listing will follow")] + items + [complete]


def act_devicestatelist(s: Session, p: Packet) -> HandlerResult:
    """DeviceStateList: a DeviceStateChange item per cached device state."""
    with _srv(s).lock:
        states = list(_srv(s).device_states.items())
    items = [list_item(p, "DeviceStateChange", [("Device", d), ("State", st)], id_first=True) for d, st in states]
    return [list_start(p, "Device State Changes will follow")] + items + [
        list_complete(p, "DeviceStateListComplete", len(items))]


def act_extensionstatelist(s: Session, p: Packet) -> HandlerResult:
    """ExtensionStateList: an ExtensionStatus item per hint."""
    with _srv(s).lock:
        hints = list(_srv(s).hints.items())
    items = [list_item(p, "ExtensionStatus", [
        ("Exten", exten), ("Context", context), ("Hint", hint), ("Status", str(status)),
        ("StatusText", EXTENSION_STATES.get(status, "Unknown")),
    ], id_first=True) for (exten, context), (hint, status) in hints]
    return [list_start(p, "Extension Statuses will follow")] + items + [
        list_complete(p, "ExtensionStateListComplete", len(items))]


MODEL_ACTIONS: ActionTable = [
    ("BridgeList", act_bridgelist, "reporting", "Get a list of bridges in the system."),
    ("BridgeInfo", act_bridgeinfo, "reporting", "Get information about a bridge."),
    ("DeviceStateList", act_devicestatelist, "call,reporting", "List the current known device states."),
    ("ExtensionStateList", act_extensionstatelist, "call,reporting", "List the current known extension states."),
]

"""The pure live-state model: AMI events in, immutable records out (no threads, no I/O).

:class:`LiveModel` applies one event at a time (:meth:`LiveModel.apply`) and
loads the items of the snapshot actions (:meth:`LiveModel.load_channels`...)
so it can be driven by a client, a recording or a test alike.  Every change
is appended to :attr:`LiveModel.changes` as a :class:`Change` for the caller
to report.  Header names are Asterisk 22's (exact case first, any case as a
fallback); Asterisk 12/13 names that differ are aliases.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from types import MappingProxyType
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Tuple

from ._calls import CallBook
from ._queues import QueueBook
from ._records import Bridge, Call, Change, Channel, ExtensionState, Queue, _copy

__all__ = ["Change", "LiveModel"]

Headers = Dict[str, str]
_get: Callable[..., Any] = dict.get
_UNKNOWN = "<unknown>"


def header(ev: Headers, key: str, default: str = "") -> str:
    """``ev[key]``: exact case at C speed, any case as a fallback."""
    value = _get(ev, key)
    if value is None:
        value = ev.get(key)
        if value is None:
            return default
    return value  # type: ignore[no-any-return]


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _duration(text: str) -> float:
    seconds = 0.0
    for part in text.split(":"):
        try:
            seconds = seconds * 60 + float(part)
        except ValueError:
            return 0.0
    return seconds


class LiveModel(CallBook, QueueBook):
    """Channels, bridges, calls, queues, devices and extensions, updated by events.

    ``history``: how many ended calls stay in :attr:`ended_calls`;
    ``clock``: the time source for created/answered/ended stamps.
    """

    def __init__(self, history: int = 100, clock: Callable[[], float] = time.time, tombstones: int = 4096) -> None:
        if history < 0:
            raise ValueError(f"history must be >= 0, not {history!r}")
        self.clock = clock
        self.changes: List[Change] = []
        self.channels: Dict[str, Channel] = {}
        self.bridges: Dict[str, Bridge] = {}
        self.calls: Dict[str, Call] = {}
        self.queues: Dict[str, Queue] = {}
        self.devices: Dict[str, str] = {}
        self.extensions: Dict[Tuple[str, str], ExtensionState] = {}
        self.ended_calls: Deque[Call] = deque(maxlen=history)
        self._gone: OrderedDict[str, None] = OrderedDict()  # recently hung-up uniqueids: never resurrected
        self._max_gone = tombstones
        self.version: Dict[str, int] = {"channels": 0, "bridges": 0, "calls": 0, "queues": 0, "devices": 0, "extensions": 0}
        self._handlers: Dict[str, Callable[[Headers], None]] = self._handler_table()

    # -- events --------------------------------------------------------------

    def apply(self, ev: Headers) -> None:
        """Apply one event (unknown events are ignored)."""
        name = _get(ev, "Event")
        if name is None:
            name = ev.get("Event")
            if name is None:
                return
        handler = self._handlers.get(name)
        if handler is not None:
            handler(ev)

    def _handler_table(self) -> Dict[str, Callable[[Headers], None]]:
        table: Dict[str, Callable[[Headers], None]] = {
            "Newchannel": self._on_channel, "Newstate": self._on_channel, "NewCallerid": self._on_channel,
            "NewConnectedLine": self._on_channel, "Newexten": self._on_newexten, "Rename": self._on_rename,
            "Hangup": self._on_hangup,
            "DialBegin": self._on_dial_begin, "DialEnd": self._on_dial_end,
            "BridgeCreate": self._on_bridge_create, "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave, "BridgeDestroy": self._on_bridge_destroy,
            "BridgeMerge": self._on_bridge_merge,
            "BlindTransfer": self._on_blind_transfer, "AttendedTransfer": self._on_attended_transfer,
            "OriginateResponse": self._on_originate_response,
            "DeviceStateChange": self._on_device, "ExtensionStatus": self._on_extension,
        }
        table.update(self._queue_handlers())
        return table

    def _mark(self, category: str) -> None:
        self.version[category] += 1

    # -- channels ------------------------------------------------------------

    def _channel_from(self, ev: Headers, old: Optional[Channel], now: float, snapshot: bool = False) -> Channel:
        uid = header(ev, "Uniqueid")
        state = _int(header(ev, "ChannelState", "0"))
        answered = old.answered if old is not None else None
        if state == 6 and answered is None:
            answered = now
        if snapshot:
            bridge: Optional[str] = header(ev, "BridgeId") or None
            app, data = header(ev, "Application"), header(ev, "ApplicationData")
            created = old.created if old is not None else now - _duration(header(ev, "Duration", "0"))
        else:
            bridge = old.bridge_id if old is not None else None
            app = old.application if old is not None else ""
            data = old.application_data if old is not None else ""
            created = old.created if old is not None else now
        return Channel(
            uid, header(ev, "Channel"), state, header(ev, "ChannelStateDesc"),
            header(ev, "CallerIDNum"), header(ev, "CallerIDName"),
            header(ev, "ConnectedLineNum"), header(ev, "ConnectedLineName"),
            header(ev, "Context"), header(ev, "Exten"), header(ev, "Priority"),
            header(ev, "Linkedid") or uid, bridge, app, data, created, answered,
        )

    def _touch(self, ev: Headers, app: Optional[str] = None, data: str = "") -> Optional[Channel]:
        """Create or update the channel an event's standard channel block describes.

        ``app``/``data``: the dialplan application it now runs (Newexten).
        """
        uid = _get(ev, "Uniqueid")
        if not uid:
            uid = ev.get("Uniqueid")
            if not uid:
                return None
        old = self.channels.get(uid)
        if old is None:
            if uid in self._gone or not header(ev, "Channel"):
                return None
            new = self._channel_from(ev, None, self.clock())
            if app is not None:
                new = _copy(new, application=app, application_data=data)
            self._add_channel(new)
            return new
        get = _get
        state = get(ev, "ChannelState")
        state_i = old.state if state is None else _int(state, old.state)
        fields = (
            get(ev, "Channel", old.name), get(ev, "CallerIDNum", old.caller_num),
            get(ev, "CallerIDName", old.caller_name), get(ev, "ConnectedLineNum", old.connected_num),
            get(ev, "ConnectedLineName", old.connected_name), get(ev, "Context", old.context),
            get(ev, "Exten", old.exten), get(ev, "Priority", old.priority),
        )
        if app is None:
            app, data = old.application, old.application_data
        if state_i == old.state and app == old.application and data == old.application_data and fields == (
            old.name, old.caller_num, old.caller_name, old.connected_num,
            old.connected_name, old.context, old.exten, old.priority,
        ):
            return old
        new = _copy(
            old, state=state_i, state_desc=get(ev, "ChannelStateDesc", old.state_desc), name=fields[0],
            caller_num=fields[1], caller_name=fields[2], connected_num=fields[3], connected_name=fields[4],
            context=fields[5], exten=fields[6], priority=fields[7], application=app, application_data=data,
        )
        if state_i == 6 and old.answered is None:
            new.__dict__["answered"] = self.clock()
        self._set_channel(old, new)
        return new  # type: ignore[no-any-return]

    def _add_channel(self, channel: Channel) -> None:
        self.channels[channel.uniqueid] = channel
        self._mark("channels")
        self.changes.append(Change("channel_new", channel.uniqueid, None, channel))
        self._call_add_channel(channel)

    def _set_channel(self, old: Channel, new: Channel) -> None:
        self.channels[new.uniqueid] = new
        self.version["channels"] += 1
        self.changes.append(Change("channel_changed", new.uniqueid, old, new))
        self._call_channel_changed(old, new)

    def _remove_channel(self, uid: str) -> None:
        old = self.channels.pop(uid, None)
        self._gone[uid] = None
        if len(self._gone) > self._max_gone:
            self._gone.popitem(last=False)
        if old is None:
            return
        self._mark("channels")
        if old.bridge_id is not None:
            self._bridge_drop(old.bridge_id, uid)
        self.changes.append(Change("channel_gone", uid, old, None))
        self._call_remove_channel(old)

    def _on_channel(self, ev: Headers) -> None:
        self._touch(ev)

    def _on_newexten(self, ev: Headers) -> None:
        self._touch(ev, header(ev, "Application"), header(ev, "AppData"))

    def _on_originate_response(self, ev: Headers) -> None:
        # An Originate to an application runs it on the originated channel without a Newexten.
        app = ev.get("Application")
        old = self.channels.get(header(ev, "Uniqueid"))
        if app and old is not None and header(ev, "Response") == "Success":
            data = header(ev, "Data")
            if (app, data) != (old.application, old.application_data):
                self._set_channel(old, _copy(old, application=app, application_data=data))

    def _on_rename(self, ev: Headers) -> None:
        uid = header(ev, "Uniqueid")
        old = self.channels.get(uid)
        newname = header(ev, "Newname")
        if old is not None and newname and newname != old.name:
            self._set_channel(old, _copy(old, name=newname))

    def _on_hangup(self, ev: Headers) -> None:
        uid = header(ev, "Uniqueid")
        if uid:
            self._remove_channel(uid)

    def _set_bridge_of(self, uid: str, bridge_id: Optional[str]) -> None:
        old = self.channels.get(uid)
        if old is not None and old.bridge_id != bridge_id:
            self._set_channel(old, _copy(old, bridge_id=bridge_id))

    # -- bridges ---------------------------------------------------------------

    def _bridge_from(self, ev: Headers, prefix: str = "", old: Optional[Bridge] = None) -> Bridge:
        return Bridge(
            header(ev, prefix + "BridgeUniqueid"), header(ev, prefix + "BridgeType"),
            header(ev, prefix + "BridgeTechnology"), header(ev, prefix + "BridgeCreator"),
            header(ev, prefix + "BridgeName"), old.channels if old is not None else (),
        )

    def _put_bridge(self, old: Optional[Bridge], new: Bridge) -> None:
        self.bridges[new.id] = new
        self._mark("bridges")
        self.changes.append(Change("bridge_changed", new.id, old, new))

    def _on_bridge_create(self, ev: Headers) -> None:
        bid = header(ev, "BridgeUniqueid")
        if bid and bid not in self.bridges:
            self._put_bridge(None, self._bridge_from(ev))

    def _on_bridge_enter(self, ev: Headers) -> None:
        bid = header(ev, "BridgeUniqueid")
        channel = self._touch(ev)
        if not bid or channel is None:
            return
        uid = channel.uniqueid
        if channel.bridge_id is not None and channel.bridge_id != bid:
            self._bridge_drop(channel.bridge_id, uid)
        old = self.bridges.get(bid)
        base = old if old is not None else self._bridge_from(ev)
        if uid not in base.channels:
            self._put_bridge(old, _copy(base, channels=base.channels + (uid,)))
        self._set_bridge_of(uid, bid)
        self._call_bridged(uid, bid)

    def _bridge_drop(self, bid: str, uid: str) -> None:
        old = self.bridges.get(bid)
        if old is not None and uid in old.channels:
            self._put_bridge(old, _copy(old, channels=tuple(u for u in old.channels if u != uid)))

    def _on_bridge_leave(self, ev: Headers) -> None:
        bid = header(ev, "BridgeUniqueid")
        channel = self._touch(ev)
        uid = channel.uniqueid if channel is not None else header(ev, "Uniqueid")
        self._bridge_drop(bid, uid)
        if channel is not None and channel.bridge_id == bid:
            self._set_bridge_of(uid, None)

    def _on_bridge_destroy(self, ev: Headers) -> None:
        old = self.bridges.pop(header(ev, "BridgeUniqueid"), None)
        if old is None:
            return
        self._mark("bridges")
        for uid in old.channels:
            self._set_bridge_of(uid, None)
        self.changes.append(Change("bridge_changed", old.id, old, None))

    def _on_bridge_merge(self, ev: Headers) -> None:
        to_id, from_id = header(ev, "ToBridgeUniqueid"), header(ev, "FromBridgeUniqueid")
        source = self.bridges.pop(from_id, None)
        old = self.bridges.get(to_id)
        target = old if old is not None else self._bridge_from(ev, "To")
        moved = tuple(u for u in (source.channels if source is not None else ()) if u not in target.channels)
        if source is not None:
            self._mark("bridges")
            self.changes.append(Change("bridge_changed", from_id, source, None))
        self._put_bridge(old, _copy(target, channels=target.channels + moved))
        for uid in moved:
            self._set_bridge_of(uid, to_id)

    # -- devices and extensions --------------------------------------------------

    def _on_device(self, ev: Headers) -> None:
        device, state = header(ev, "Device"), header(ev, "State")
        old = self.devices.get(device)
        if device and old != state:
            self.devices[device] = state
            self._mark("devices")
            self.changes.append(Change("device_changed", device, old, state))

    def _extension_from(self, ev: Headers) -> ExtensionState:
        return ExtensionState(header(ev, "Exten"), header(ev, "Context"), header(ev, "Hint"),
                              _int(header(ev, "Status", "-1"), -1), header(ev, "StatusText"))

    def _on_extension(self, ev: Headers) -> None:
        new = self._extension_from(ev)
        key = (new.exten, new.context)
        old = self.extensions.get(key)
        if old != new:
            self.extensions[key] = new
            self._mark("extensions")
            self.changes.append(Change("extension_changed", key, old, new))

    # -- snapshot loading ----------------------------------------------------------

    def load_channels(self, items: Iterable[Headers]) -> None:
        """Make the channels what ``CoreShowChannel`` items say (calls follow)."""
        now = self.clock()
        seen: Dict[str, Channel] = {}
        for ev in items:
            uid = header(ev, "Uniqueid")
            if uid:
                seen[uid] = self._channel_from(ev, self.channels.get(uid), now, snapshot=True)
        for uid in [u for u in self.channels if u not in seen]:
            self._remove_channel(uid)
        for uid, channel in seen.items():
            self._gone.pop(uid, None)
            old = self.channels.get(uid)
            if old is None:
                self._add_channel(channel)
            elif old != channel:
                self._set_channel(old, channel)
        self._calls_after_load()

    def load_bridges(self, items: Optional[Iterable[Headers]]) -> None:
        """Make the bridges what ``BridgeListItem`` items and the channels' bridge ids say.

        ``items`` None (BridgeList unavailable): bridges come from the channels alone.
        """
        members: Dict[str, List[str]] = {}
        for channel in self.channels.values():
            if channel.bridge_id is not None:
                members.setdefault(channel.bridge_id, []).append(channel.uniqueid)
        fresh: Dict[str, Bridge] = {}
        for ev in items if items is not None else ():
            bid = header(ev, "BridgeUniqueid")
            if bid:
                fresh[bid] = self._bridge_from(ev)
        if items is None:
            for bid in members:
                fresh[bid] = self.bridges.get(bid) or Bridge(bid)
        for bid, bridge in fresh.items():
            old = self.bridges.get(bid)
            keep = [u for u in (old.channels if old is not None else ()) if u in members.get(bid, ())]
            ordered = tuple(keep + [u for u in members.get(bid, ()) if u not in keep])
            new = _copy(bridge, channels=ordered)
            if new != old:
                self._put_bridge(old, new)
        for bid in [b for b in self.bridges if b not in fresh]:
            old = self.bridges.pop(bid)
            self._mark("bridges")
            self.changes.append(Change("bridge_changed", bid, old, None))

    def load_devices(self, items: Iterable[Headers]) -> None:
        """Make the device states what ``DeviceStateChange`` list items say."""
        fresh = {header(ev, "Device"): header(ev, "State") for ev in items}
        for device in [d for d in self.devices if d not in fresh]:
            old = self.devices.pop(device)
            self._mark("devices")
            self.changes.append(Change("device_changed", device, old, None))
        for device, state in fresh.items():
            self._on_device({"Device": device, "State": state})

    def load_extensions(self, items: Iterable[Headers]) -> None:
        """Make the extension states what ``ExtensionStatus`` list items say."""
        fresh = {(e.exten, e.context): e for e in map(self._extension_from, items)}
        for key in [k for k in self.extensions if k not in fresh]:
            old = self.extensions.pop(key)
            self._mark("extensions")
            self.changes.append(Change("extension_changed", key, old, None))
        for key, new in fresh.items():
            known = self.extensions.get(key)
            if known != new:
                self.extensions[key] = new
                self._mark("extensions")
                self.changes.append(Change("extension_changed", key, known, new))

    def frozen(self, category: str) -> Mapping[Any, Any]:
        """A read-only copy of one category's mapping (``"channels"``...)."""
        return MappingProxyType(dict(getattr(self, category)))

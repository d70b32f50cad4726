"""Simulated calls: the channel registry, Originate, Hangup, Redirect, Status, CoreShowChannels.

A call is a ``Local/x@ctx`` pair (``;1`` and ``;2``) or one channel of any
other technology.  Events carry Asterisk 22's standard channel block.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple, cast

from . import _appargs
from ._events import CLASSES, Event
from ._handlers import ActionTable, HandlerResult, ServerHost
from ._session import Session
from ._wire import Packet, build_response, encode_packet

__all__ = ["CALL_ACTIONS", "CallHost", "CallSimulator", "Channel", "OriginateRequest"]

_CALL = dict(CLASSES)["call"]
Pairs = List[Tuple[str, Optional[str]]]
STATE_DESC = {
    0: "Down", 1: "Rsrvd", 2: "OffHook", 3: "Dialing", 4: "Ring", 5: "Ringing",
    6: "Up", 7: "Busy", 8: "Dialing Offhook", 9: "Pre-ring",
}
CAUSES = {
    0: "Unknown", 1: "Unallocated (unassigned) number", 16: "Normal Clearing",
    17: "User busy", 18: "No user responding", 19: "User alerting, no answer",
    21: "Call Rejected", 34: "Circuit/channel congestion",
}
#: Originate ``Reason`` -> the hangup cause of the failed leg.
_REASON_DIALSTATUS = {0: "CHANUNAVAIL", 1: "NOANSWER", 3: "NOANSWER", 5: "BUSY", 8: "CONGESTION"}
_REASON_CAUSE = {0: 0, 1: 16, 3: 19, 5: 17, 8: 34}
_TRUE = frozenset(("yes", "true", "y", "t", "1", "on"))


@dataclass
class Channel:
    """A live simulated channel."""

    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    priority: int = 1
    state: int = 0
    caller_num: str = "<unknown>"
    caller_name: str = "<unknown>"
    account: str = ""
    application: str = ""
    data: str = ""
    partner: Optional[str] = None
    created: float = field(default_factory=time.monotonic)
    variables: Dict[str, str] = field(default_factory=dict)

    def block(self, legacy: bool = False, status: bool = False) -> Pairs:
        """The standard channel block (``Status`` items differ on ≤13)."""
        pairs: Pairs = [
            ("Channel", self.name), ("ChannelState", str(self.state)),
            ("ChannelStateDesc", self.state_desc),
            ("CallerIDNum", self.caller_num), ("CallerIDName", self.caller_name),
            ("ConnectedLineNum", self.caller_num), ("ConnectedLineName", self.caller_name),
        ]
        if legacy and status:
            pairs.append(("Accountcode", self.account))
        else:
            pairs += [("Language", "en"), ("AccountCode", self.account)]
        pairs += [
            ("Context", self.context), ("Exten", self.exten), ("Priority", str(self.priority)),
            ("Uniqueid", self.uniqueid), ("Linkedid", self.linkedid),
        ]
        return pairs

    @property
    def state_desc(self) -> str:
        """``Up``, ``Ring``, ... for ``state``."""
        return STATE_DESC.get(self.state, "Unknown")

    @property
    def seconds(self) -> int:
        """Seconds since creation."""
        return int(time.monotonic() - self.created)


@dataclass
class OriginateRequest:
    """What an Originate asked for."""

    channel: str
    context: str = ""
    exten: str = ""
    priority: int = 1
    application: str = ""
    data: str = ""
    caller_num: str = "<unknown>"
    caller_name: str = "<unknown>"
    account: str = ""
    action_id: Optional[str] = None
    channel_id: Optional[str] = None
    variables: Dict[str, str] = field(default_factory=dict)
    report: bool = False


def parse_callerid(text: str) -> Tuple[str, str]:
    """``"Name" <num>`` -> (num, name), ``<unknown>`` for missing parts."""
    match = re.match(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*$', text)
    if match:
        return match.group(2) or "<unknown>", match.group(1).strip() or "<unknown>"
    text = text.strip()
    if text.isdigit() or text.startswith("+"):
        return text, "<unknown>"
    return "<unknown>", text or "<unknown>"


def parse_variables(values: Sequence[str]) -> Dict[str, str]:
    """``Variable`` headers, split the way Asterisk does (see ``_appargs``)."""
    return _appargs.parse_variables(values)


class CallSimulator:
    """The registry of live channels and the call state machine.

    Other families plug in: ``gone_hooks`` run (in order) before a channel's
    Hangup event, and ``bridge_lookup(name)`` gives a channel's bridge id
    for CoreShowChannels (``""``: none).
    """

    def __init__(self, server: ServerHost) -> None:
        self._server = server
        self.gone_hooks: List[Callable[[Channel], None]] = []
        self.bridge_lookup: Callable[[str], str] = lambda name: ""
        self._lock = threading.RLock()
        self._channels: Dict[str, Channel] = {}
        self._seq = itertools.count()
        self._uid = itertools.count()
        self._epoch = int(time.time())
        self._processed = 0

    def snapshot(self) -> Dict[str, Channel]:
        """A copy of the live channels by name, oldest first."""
        with self._lock:
            return dict(self._channels)

    def clear(self) -> None:
        """Forget every channel (no events)."""
        with self._lock:
            self._channels.clear()

    def counters(self) -> Tuple[int, int]:
        """(current calls, processed calls)."""
        with self._lock:
            linked = {c.linkedid for c in self._channels.values()}
            return len(linked), self._processed

    def find(self, name: str) -> Optional[Channel]:
        """A live channel by exact (then case-insensitive) name."""
        with self._lock:
            chan = self._channels.get(name)
            if chan is None:
                low = name.lower()
                chan = next((c for n, c in self._channels.items() if n.lower() == low), None)
            return chan

    def set_variable(self, name: str, var: str, value: str) -> bool:
        """Set a channel variable; ``False`` if there is no such channel."""
        chan = self.find(name)
        if chan is None:
            return False
        with self._lock:
            chan.variables[var] = value
        pairs = [("Event", "VarSet"), ("Privilege", "dialplan,all")] + chan.block()
        pairs += [("Variable", var), ("Value", value)]
        self._emit("VarSet", pairs, dict(CLASSES)["dialplan"])
        return True

    def get_variable(self, name: str, var: str) -> Optional[str]:
        """A channel variable (``""`` if unset); ``None`` if there is no such channel."""
        chan = self.find(name)
        if chan is None:
            return None
        with self._lock:
            return chan.variables.get(var, "")

    def _emit(self, name: str, pairs: Pairs, classes: int = _CALL) -> None:
        self._server.broadcast(Event(name, classes, encode_packet(pairs)))

    def _state_event(
        self, name: str, chan: Channel, extra: Sequence[Tuple[str, Optional[str]]] = ()
    ) -> None:
        self._emit(name, [("Event", name), ("Privilege", "call,all")] + chan.block() + list(extra))

    def run(self, req: OriginateRequest, reason: int, hold: bool, duration: float) -> Optional[Channel]:
        """Simulate one originated call; return the answered channel, if any."""
        tech, _, resource = req.channel.partition("/")
        seq = next(self._seq)
        first_uid = "%d.%d" % (self._epoch, next(self._uid))
        if tech.lower() == "local":
            exten, _, ctx = resource.partition("@")
            ctx = ctx.split("/")[0] or "default"
            names = ["%s-%08x;1" % (req.channel, seq), "%s-%08x;2" % (req.channel, seq)]
        else:
            exten, ctx = "s", "default"
            names = ["%s-%08x" % (req.channel, seq)]
        chans = []
        for i, name in enumerate(names):
            uid = first_uid if i == 0 else "%d.%d" % (self._epoch, next(self._uid))
            chans.append(Channel(
                name, req.channel_id if i == 0 and req.channel_id else uid, first_uid, ctx, exten,
                state=4 if i else 0, caller_num=req.caller_num, caller_name=req.caller_name,
                account=req.account, variables=dict(req.variables),
            ))
        if len(chans) == 2:
            chans[0].partner, chans[1].partner = names[1], names[0]
        with self._lock:
            self._processed += 1
            for chan in chans:
                self._channels[chan.name] = chan
        for chan in chans:
            self._state_event("Newchannel", chan)
        dial_string = resource if tech.lower() == "local" else req.channel
        self._dial("DialBegin", chans[0], ("DialString", dial_string))
        if reason != 4:
            if reason == 5:
                chans[-1].state = 7
                self._state_event("Newstate", chans[-1])
            self._dial("DialEnd", chans[0], ("DialStatus", _REASON_DIALSTATUS.get(reason, "CHANUNAVAIL")))
            for i, chan in enumerate(reversed(chans)):
                self._hangup(chan, _REASON_CAUSE.get(reason, 0) if i == 0 else 0, partner=False)
            if req.report:
                self._originate_response(req, "Failure", req.channel, reason,
                                         req.channel_id or "<unknown>")
            return None
        for chan in reversed(chans):
            chan.state = 6
            self._state_event("Newstate", chan)
        self._dial("DialEnd", chans[0], ("DialStatus", "ANSWER"))
        main = chans[0]
        if req.application:
            main.application, main.data = req.application, req.data
        elif req.exten:
            main.context, main.exten, main.priority = req.context or ctx, req.exten, req.priority
        if req.report:
            self._originate_response(req, "Success", main.name, 4, main.uniqueid)
        if not hold:
            if duration > 0:
                self._server.call_later(duration, lambda: self.hangup(main.name, 16))
            else:
                self.hangup(main.name, 16)
        return main

    def _dial(self, name: str, dest: Channel, last: Tuple[str, str]) -> None:
        """Asterisk 12+ dials an originated channel with no calling channel: Dest-prefixed block only."""
        if self._server.legacy:
            return
        block = [("Dest" + key, value) for key, value in dest.block()]
        self._emit(name, [("Event", name), ("Privilege", "call,all")] + block + [last])

    def _originate_response(
        self, req: OriginateRequest, result: str, channel: str, reason: int, uid: str
    ) -> None:
        pairs: Pairs = [("Event", "OriginateResponse"), ("Privilege", "call,all"),
                        ("ActionID", req.action_id), ("Response", result), ("Channel", channel)]
        if req.application:
            pairs += [("Application", req.application), ("Data", req.data)]
        else:
            pairs += [("Context", req.context), ("Exten", req.exten)]
        pairs += [("Reason", str(reason)), ("Uniqueid", uid),
                  ("CallerIDNum", req.caller_num), ("CallerIDName", req.caller_name)]
        self._emit("OriginateResponse", pairs)

    def _hangup(self, chan: Channel, cause: int, partner: bool = True) -> None:
        if chan.name in self._channels:
            for hook in list(self.gone_hooks):  # e.g. it leaves its bridge and queues first
                hook(chan)
        with self._lock:
            if self._channels.pop(chan.name, None) is None:
                return
        self._state_event("Hangup", chan, [
            ("Cause", str(cause)), ("Cause-txt", CAUSES.get(cause, "Unknown")),
        ])
        if partner and chan.partner:
            other = self.find(chan.partner)
            if other is not None:
                self._hangup(other, cause, partner=False)

    def hangup(self, name: str, cause: int = 16) -> bool:
        """Hang up a channel (and its Local partner); ``False`` if not found."""
        chan = self.find(name)
        if chan is None:
            return False
        self._hangup(chan, cause)
        return True

    def redirect(self, name: str, context: str, exten: str, priority: int) -> bool:
        """Send a live channel to ``exten@context`` at ``priority``; ``False`` if not found."""
        chan = self.find(name)
        with self._lock:
            if chan is None or chan.name not in self._channels:
                return False
            chan.context, chan.exten, chan.priority = context, exten, priority
            chan.application, chan.data = "", ""
        return True


# -- actions ----------------------------------------------------------------------


class CallHost(ServerHost, Protocol):
    """The server state the call actions use."""

    hold_calls: bool
    call_duration: float
    originate_delay: float

    @property
    def calls(self) -> CallSimulator: ...

    def originate_reason(self, channel: str) -> int: ...


def _srv(s: Session) -> CallHost:
    return cast(CallHost, s.server)


def _error(p: Packet, message: str) -> Pairs:
    return build_response(p, message, "Error")


def act_originate(s: Session, p: Packet) -> HandlerResult:
    """Originate: validate, then simulate the call (sync or Async)."""
    srv = _srv(s)
    channel = p.get("Channel", "")
    if not channel:
        return _error(p, "Channel not specified")
    if "/" not in channel:
        return _error(p, "Invalid channel")
    timeout, priority = p.get("Timeout", ""), p.get("Priority", "")
    if timeout and not timeout.lstrip("-").isdigit():
        return _error(p, "Invalid timeout")
    if priority and not priority.isdigit():
        return _error(p, "Invalid priority")
    application, exten = p.get("Application", ""), p.get("Exten", "")
    if not application and exten and (not p.get("Context") or not priority):
        return _error(p, "Originate with 'Exten' requires 'Context' and 'Priority'")
    num, name = parse_callerid(p.get("CallerID", ""))
    is_async = p.get("Async", "").lower() in _TRUE
    req = OriginateRequest(
        channel, p.get("Context", ""), exten, int(priority or 1), application, p.get("Data", ""),
        num, name, p.get("Account", ""), p.action_id, p.get("ChannelId") or None,
        parse_variables(p.getlist("Variable")), report=is_async,
    )
    reason = srv.originate_reason(channel)

    def run() -> None:
        srv.calls.run(req, reason, srv.hold_calls, srv.call_duration)

    if is_async:
        if srv.originate_delay > 0:
            srv.call_later(srv.originate_delay, run)
        else:
            run()
        return build_response(p, "Originate successfully queued")
    if not s.sleep(srv.originate_delay):
        return None
    run()
    if reason != 4:
        return _error(p, "Originate failed")
    return build_response(p, "Originate successfully queued")


def act_hangup(s: Session, p: Packet) -> HandlerResult:
    """Hangup: one channel by name, or a ``/regex/`` list."""
    calls = _srv(s).calls
    name = p.get("Channel", "")
    cause_text = p.get("Cause", "")
    cause = int(cause_text) if cause_text.isdigit() and int(cause_text) <= 127 else 0
    if not name:
        return _error(p, "No channel specified")
    if not name.startswith("/"):
        if not calls.hangup(name, cause):
            return _error(p, "No such channel")
        return build_response(p, "Channel Hungup")
    bad = "Regex format invalid, Channel param should be /regex/"
    if len(name) < 2 or not name.endswith("/"):
        return _error(p, bad)
    try:
        regex = re.compile(name[1:-1])
    except re.error:
        return _error(p, bad)
    matched = [n for n in calls.snapshot() if regex.search(n)]
    packets: List[Pairs] = [_list_start(p, "Channels hung up will follow")]
    packets += [[("Event", "ChannelHungup"), ("Channel", n), ("ActionID", p.action_id)] for n in matched]
    packets.append(_list_complete(p, "ChannelsHungupListComplete", len(matched)))
    out = b"".join(encode_packet(x) for x in packets)
    for n in matched:
        calls.hangup(n, cause)
    return out


def _priority(text: str) -> int:
    """A priority number (``sscanf("%30d")``); 0 if it is not a number (the fake has no labels)."""
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else 0


def act_redirect(s: Session, p: Packet) -> HandlerResult:
    """Redirect: send a channel (and an ``ExtraChannel``) to another extension."""
    calls = _srv(s).calls
    name, extra = p.get("Channel", ""), p.get("ExtraChannel", "")
    context, exten, priority = p.get("Context", ""), p.get("Exten", ""), p.get("Priority", "")
    for value, what in ((name, "Channel"), (context, "Context"), (exten, "Exten"), (priority, "Priority")):
        if not value:
            return _error(p, "%s not specified" % what)
    where = (context, exten, _priority(priority))
    if where[2] < 1:
        return _error(p, "Priority is invalid")
    extra_where = where
    if extra and p.get("ExtraContext"):
        extra_exten, extra_priority = p.get("ExtraExten", ""), p.get("ExtraPriority", "")
        if not extra_exten:
            return _error(p, "ExtraExten not specified")
        if not extra_priority:
            return _error(p, "ExtraPriority not specified")
        extra_where = (p.get("ExtraContext", ""), extra_exten, _priority(extra_priority))
        if extra_where[2] < 1:
            return _error(p, "ExtraPriority is invalid")
    if calls.find(name) is None:
        return _error(p, "Channel does not exist: %s" % name)
    if not extra:
        if not calls.redirect(name, *where):
            return _error(p, "Redirect failed")
        return build_response(p, "Redirect successful")
    if calls.find(extra) is None:
        return _error(p, "ExtraChannel does not exist: %s" % extra)
    if not calls.redirect(name, *where):
        return _error(p, "Redirect failed")
    if not calls.redirect(extra, *extra_where):
        return _error(p, "Secondary redirect failed")
    return build_response(p, "Dual Redirect successful")


def _list_start(p: Packet, message: str) -> Pairs:
    return [("Response", "Success"), ("ActionID", p.action_id), ("EventList", "start"),
            ("Message", message)]


def _list_complete(p: Packet, event: str, count: int) -> Pairs:
    return [("Event", event), ("ActionID", p.action_id), ("EventList", "Complete"),
            ("ListItems", str(count))]


def act_coreshowchannels(s: Session, p: Packet) -> HandlerResult:
    """CoreShowChannels: the live channels."""
    chans = list(_srv(s).calls.snapshot().values())
    packets: List[Pairs] = [_list_start(p, "Channels will follow")]
    for c in chans:
        dur = c.seconds
        packets.append(
            [("Event", "CoreShowChannel"), ("ActionID", p.action_id)] + c.block() + [
                ("Application", c.application), ("ApplicationData", c.data),
                ("Duration", "%02d:%02d:%02d" % (dur // 3600, dur // 60 % 60, dur % 60)),
                ("BridgeId", _srv(s).calls.bridge_lookup(c.name)),
            ]
        )
    packets.append(_list_complete(p, "CoreShowChannelsComplete", len(chans)))
    return packets


def act_status(s: Session, p: Packet) -> HandlerResult:
    """Status: all live channels, or one."""
    srv = _srv(s)
    name = p.get("Channel", "")
    if name:
        found = srv.calls.find(name)
        if found is None:
            return _error(p, "No such channel")
        chans = [found]
    else:
        chans = list(srv.calls.snapshot().values())
    wanted = [v for v in _appargs.parse_status_variables(p.get("Variables", "")) if v]
    packets: List[Pairs] = [_list_start(p, "Channel status will follow")]
    for c in chans:
        item: Pairs = [("Event", "Status"), ("Privilege", "Call")] + c.block(srv.legacy, True)
        item += [
            ("Type", c.name.split("/")[0]), ("DNID", ""),
            ("EffectiveConnectedLineNum", c.caller_num),
            ("EffectiveConnectedLineName", c.caller_name), ("TimeToHangup", "0"),
            ("BridgeID", ""), ("Application", c.application), ("Data", c.data),
            ("Nativeformats", "(slin)"), ("Readformat", "slin"), ("Readtrans", ""),
            ("Writeformat", "slin"), ("Writetrans", ""), ("Callgroup", "0"),
            ("Pickupgroup", "0"), ("Seconds", str(c.seconds)),
        ]
        item += [("Variable", "%s=%s" % (v, c.variables.get(v, ""))) for v in wanted]
        packets.append(item + [("ActionID", p.action_id)])
    packets.append(_list_complete(p, "StatusComplete", len(chans)) + [("Items", str(len(chans)))])
    return packets


CALL_ACTIONS: ActionTable = [
    ("Originate", act_originate, "originate", "Originate a call."),
    ("Hangup", act_hangup, "system,call", "Hangup channel."),
    ("Redirect", act_redirect, "call", "Redirect (transfer) a call."),
    ("Status", act_status, "system,call,reporting", "List channel status."),
    ("CoreShowChannels", act_coreshowchannels, "system,reporting",
     "List currently active channels."),
]


def match_reason(patterns: Dict[str, int], channel: str) -> int:
    """The Originate ``Reason`` for ``channel`` (first matching glob; default 4)."""
    for pattern, reason in patterns.items():
        if fnmatch.fnmatchcase(channel, pattern):
            return reason
    return 4

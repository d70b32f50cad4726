"""Default action handlers of ``FakeAMIServer`` (everything except calls).

Message texts, header names and header order are copied from Asterisk 22
recordings (``tests/fixtures/asterisk-22``); ``legacy`` servers answer the
way Asterisk 13 does where that differs.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple, Union

from ._events import CLASSES, Event, EventFilter, FilterError, mask_to_str, parse_event_mask
from ._faults import Fault
from ._wire import Packet, PacketLike, build_response, encode_packet, encode_packets

if TYPE_CHECKING:
    from ._session import Session

__all__ = [
    "ActionSpec",
    "Handler",
    "HandlerResult",
    "default_actions",
    "list_complete",
    "list_item",
    "list_start",
]

#: What a handler returns: raw bytes, one packet, a list of packets, or None.
HandlerResult = Union[bytes, str, PacketLike, Sequence[PacketLike], None]
#: An action handler: ``handler(session, packet) -> HandlerResult``.
Handler = Callable[["Session", Packet], HandlerResult]

_BIT = dict(CLASSES)
Pairs = List[Tuple[str, Optional[str]]]


@dataclass(frozen=True)
class ActionSpec:
    """A registered action: its name, handler, write authority and synopsis."""

    name: str
    handler: Handler
    authority: int = 0
    synopsis: str = "Custom action."


def _error(packet: Packet, message: str) -> Pairs:
    return build_response(packet, message, "Error")


def list_start(packet: Packet, message: str) -> Pairs:
    """The ``EventList: start`` response of a list action."""
    return [
        ("Response", "Success"),
        ("ActionID", packet.action_id),
        ("EventList", "start"),
        ("Message", message),
    ]


def list_item(
    packet: Packet, event: str, body: Sequence[Tuple[str, Optional[str]]], id_first: bool = False
) -> Pairs:
    """A list item event; the ActionID goes second or (default) last."""
    if id_first:
        return [("Event", event), ("ActionID", packet.action_id)] + list(body)
    return [("Event", event)] + list(body) + [("ActionID", packet.action_id)]


def list_complete(
    packet: Packet, event: str, count: int, extra: Sequence[Tuple[str, Optional[str]]] = ()
) -> Pairs:
    """The ``EventList: Complete`` event closing a list."""
    return [
        ("Event", event),
        ("ActionID", packet.action_id),
        ("EventList", "Complete"),
        ("ListItems", str(count)),
    ] + list(extra)


def _event_tv(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + ".%03d+0000" % (when % 1 * 1000)


def security_event(session: "Session", name: str, severity: str, head: Pairs, tail: Pairs) -> None:
    """Broadcast a security-class event about ``session`` (if enabled), in Asterisk 22's header order.

    ``head`` goes before ``SessionID``; ``tail`` after ``RemoteAddress``, where
    a ``SessionTV`` pair without a value gets the session's start time.
    """
    server = session.server
    if not server.security_events:
        return
    host, port = server.address
    pairs: Pairs = [
        ("Event", name),
        ("Privilege", "security,all"),
        ("EventTV", _event_tv(time.time())),
        ("Severity", severity),
        ("Service", "AMI"),
        ("EventVersion", "1"),
        *head,
        ("SessionID", "0x%012x" % id(session)),
        ("LocalAddress", "IPV4/TCP/%s/%d" % (host, port)),
        ("RemoteAddress", "IPV4/TCP/%s/%d" % session.peer[:2]),
    ]
    pairs.extend((key, _event_tv(session.connected_at) if key == "SessionTV" and value is None else value)
                 for key, value in tail)
    server.broadcast(Event(name, _BIT["security"], encode_packet(pairs)))


# -- authentication -----------------------------------------------------------


def act_login(s: "Session", p: Packet) -> HandlerResult:
    """Login: plain ``Secret`` or ``AuthType: MD5`` + ``Key``."""
    srv = s.server
    if s.authenticated:
        return build_response(p, "Already authenticated")
    spec = srv.faults_state.take(Fault.DELAY_LOGIN)
    if spec is not None and not s.sleep(spec.delay):
        return None
    username = p.get("Username", "")
    user = srv.users.get(username)
    ok = srv.faults_state.take(Fault.REFUSE_LOGIN) is None and user is not None
    if ok and user is not None:
        if user.secret is None:
            ok = False
        elif p.get("AuthType", "").lower() == "md5":
            key = ""
            if s.challenge is not None:
                key = hashlib.md5((s.challenge + user.secret).encode()).hexdigest()
            ok = bool(key) and p.get("Key", "") == key
        else:
            ok = p.get("Secret", "") == user.secret
    message = "Authentication failed"
    if ok and user is not None and not user.allow_multiple_login:
        if any(o is not s and o.authenticated and o.username == username for o in srv.sessions):
            ok, message = False, "Login Already In Use"
    if not ok or user is None:
        if not s.sleep(srv.auth_fail_delay):
            return None
        s.close()
        return _error(p, message)
    s.username = username
    s.read_perm = user.read_mask
    s.write_perm = user.write_mask
    events = p.get("Events", "")
    requested = parse_event_mask(events) if events else user.default_events_mask
    for text in user.eventfilters:
        s.add_filter(EventFilter(text))
    s.set_event_mask(requested & s.read_perm)
    out = encode_packet(build_response(p, "Authentication accepted"))
    if s.event_mask & _BIT["system"]:
        booted: Pairs = [("Event", "FullyBooted"), ("Privilege", "system,all")]
        if not srv.legacy:
            uptime = str(int(time.time() - srv.started_at))
            booted += [("Uptime", uptime), ("LastReload", uptime)]
        out += encode_packet(booted + [("Status", "Fully Booted")])
    srv._authenticated(s)
    security_event(
        s, "SuccessfulAuth", "Informational",
        [("AccountID", username)], [("UsingPassword", "0"), ("SessionTV", None)],
    )
    return out


def act_challenge(s: "Session", p: Packet) -> HandlerResult:
    """Challenge: one ≤9-digit challenge per session."""
    if p.get("AuthType", "").lower() != "md5":
        return _error(p, "Must specify AuthType")
    if s.challenge is None:
        s.challenge = str(random.randrange(1, 10**9))
    return [("Response", "Success"), ("ActionID", p.action_id), ("Challenge", s.challenge)]


def act_logoff(s: "Session", p: Packet) -> HandlerResult:
    """Logoff: Goodbye, then close."""
    s.close()
    return build_response(p, "Thanks for all the fish.", "Goodbye")


def act_ping(s: "Session", p: Packet) -> HandlerResult:
    """Ping: Pong and a timestamp."""
    aid = p.action_id
    head = "Response: Success\r\nActionID: %s\r\n" % aid if aid else "Response: Success\r\n"
    text = head + "Ping: Pong\r\nTimestamp: %.6f\r\n\r\n" % time.time()
    return text.encode("utf-8", "surrogateescape")


def act_events(s: "Session", p: Packet) -> HandlerResult:
    """Events: set the session's event mask."""
    text = p.get("EventMask", "")
    if not text:
        return _error(p, "Invalid event mask")
    requested = parse_event_mask(text)
    s.set_event_mask(requested & s.read_perm)
    return [("Response", "Success"), ("ActionID", p.action_id), ("Events", "On" if requested else "Off")]


def act_filter(s: "Session", p: Packet) -> HandlerResult:
    """Filter: add an event filter to the session."""
    if p.get("Operation", "").lower() != "add":
        return _error(p, "Unknown operation")
    try:
        event_filter = EventFilter(p.get("Filter", ""), p.get("MatchCriteria") or None)
    except FilterError as exc:
        return _error(p, str(exc))
    s.add_filter(event_filter)
    return build_response(p, "Success")


def act_listcommands(s: "Session", p: Packet) -> HandlerResult:
    """ListCommands: the actions this user may run."""
    specs = sorted(s.server.action_specs(), key=lambda a: a.name.lower())
    lines: Pairs = [("Response", "Success"), ("ActionID", p.action_id)]
    for spec in specs:
        if spec.authority == 0 or spec.authority & s.write_perm:
            priv = mask_to_str(spec.authority)
            lines.append((spec.name, "%s  (Priv: %s)" % (spec.synopsis, priv)))
    return lines


# -- AstDB ------------------------------------------------------------------------


def _family_key(p: Packet, dots: bool) -> Tuple[str, str, Optional[Pairs]]:
    dot = "." if dots else ""
    family, key = p.get("Family", ""), p.get("Key", "")
    if not family:
        return family, key, _error(p, "No family specified" + dot)
    if not key:
        return family, key, _error(p, "No key specified" + dot)
    return family, key, None


def act_dbput(s: "Session", p: Packet) -> HandlerResult:
    """DBPut: store a value."""
    family, key, err = _family_key(p, False)
    if err:
        return err
    with s.server.lock:
        s.server.db[(family, key)] = p.get("Val", "")
    return build_response(p, "Updated database successfully")


def act_dbget(s: "Session", p: Packet) -> HandlerResult:
    """DBGet: one value, as a one-item list."""
    family, key, err = _family_key(p, True)
    if err:
        return err
    with s.server.lock:
        value = s.server.db.get((family, key))
    if value is None:
        return _error(p, "Database entry not found")
    item = [("Family", family), ("Key", key), ("Val", value)]
    return [
        list_start(p, "Result will follow"),
        list_item(p, "DBGetResponse", item),
        list_complete(p, "DBGetComplete", 1),
    ]


def _tree(s: "Session", p: Packet) -> List[Tuple[str, Tuple[str, str]]]:
    prefix = "/" + p.get("Family", "")
    if p.get("Key"):
        prefix += "/" + p.get("Key", "")
    with s.server.lock:
        entries = [("/%s/%s" % fk, fk) for fk in s.server.db]
    return sorted((full, fk) for full, fk in entries if full == prefix or full.startswith(prefix + "/"))


def act_dbgettree(s: "Session", p: Packet) -> HandlerResult:
    """DBGetTree: every entry under a family (and key)."""
    if not p.get("Family"):
        return _error(p, "No family specified.")
    entries = _tree(s, p)
    with s.server.lock:
        values = [s.server.db.get(fk, "") for _, fk in entries]
    packets: List[Pairs] = [list_start(p, "Result will follow")]
    for (full, _), value in zip(entries, values):
        packets.append(list_item(p, "DBGetTreeResponse", [("Key", full), ("Val", value)]))
    packets.append(list_complete(p, "DBGetTreeComplete", len(entries)))
    return packets


def act_dbdel(s: "Session", p: Packet) -> HandlerResult:
    """DBDel: delete one key."""
    family, key, err = _family_key(p, True)
    if err:
        return err
    with s.server.lock:
        found = s.server.db.pop((family, key), None) is not None
    if not found:
        return _error(p, "Database entry could not be deleted")
    return build_response(p, "Key deleted successfully")


def act_dbdeltree(s: "Session", p: Packet) -> HandlerResult:
    """DBDelTree: delete a family (or a key and everything under it)."""
    if not p.get("Family"):
        return _error(p, "No family specified.")
    entries = _tree(s, p)
    with s.server.lock:
        for _, fk in entries:
            s.server.db.pop(fk, None)
    if not entries:
        return _error(p, "Database entry not found")
    return build_response(p, "Key tree deleted successfully")


# -- variables, user events, status ---------------------------------------------


def act_setvar(s: "Session", p: Packet) -> HandlerResult:
    """Setvar: set a global (or channel) variable; raises VarSet."""
    srv = s.server
    name, value, channel = p.get("Variable", ""), p.get("Value", ""), p.get("Channel", "")
    if not name:
        return _error(p, "No variable specified")
    if channel:
        if not srv.calls.set_variable(channel, name, value):
            return _error(p, "No such channel")
    else:
        with srv.lock:
            srv.global_vars[name] = value
        pairs = [("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Channel", "none"),
                 ("Uniqueid", "none"), ("Variable", name), ("Value", value)]
        srv.broadcast(Event("VarSet", _BIT["dialplan"], encode_packet(pairs)))
    return build_response(p, "Variable Set")


def act_getvar(s: "Session", p: Packet) -> HandlerResult:
    """Getvar: read a global (or channel) variable."""
    srv = s.server
    name, channel = p.get("Variable", ""), p.get("Channel", "")
    if not name:
        return _error(p, "No variable specified")
    if channel:
        value = srv.calls.get_variable(channel, name)
        if value is None:
            return _error(p, "No such channel")
    else:
        with srv.lock:
            value = srv.global_vars.get(name, "")
    return [("Response", "Success"), ("ActionID", p.action_id), ("Variable", name), ("Value", value)]


def act_userevent(s: "Session", p: Packet) -> HandlerResult:
    """UserEvent: ack, then broadcast the client's other lines verbatim."""
    body = [line for line in p.lines if not line.lower().startswith(("userevent:", "action:"))]
    text = "Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: %s\r\n" % p.get("UserEvent", "")
    text += "".join(line + "\r\n" for line in body) + "\r\n"
    s.server.broadcast(Event("UserEvent", _BIT["user"], text.encode("utf-8", "surrogateescape"), text))
    return build_response(p, "Event Sent")


def act_coresettings(s: "Session", p: Packet) -> HandlerResult:
    """CoreSettings: versions and core limits."""
    srv = s.server
    pairs: Pairs = [
        ("Response", "Success"), ("ActionID", p.action_id), ("AMIversion", srv.version),
        ("AsteriskVersion", srv.asterisk_version), ("SystemName", ""), ("CoreMaxCalls", "0"),
        ("CoreMaxLoadAvg", "0.000000"), ("CoreRunUser", ""), ("CoreRunGroup", ""),
        ("CoreMaxFilehandles", "0"), ("CoreRealTimeEnabled", "No"), ("CoreCDRenabled", "Yes"),
        ("CoreHTTPenabled", "Yes"),
    ]
    if not srv.legacy:
        pairs.append(("SoundsSearchCustomDir", "No"))
    return pairs


def act_corestatus(s: "Session", p: Packet) -> HandlerResult:
    """CoreStatus: start and reload times, call counters."""
    srv = s.server
    started = time.localtime(srv.started_at)
    date, clock = time.strftime("%Y-%m-%d", started), time.strftime("%H:%M:%S", started)
    current, processed = srv.calls.counters()
    pairs: Pairs = [
        ("Response", "Success"), ("ActionID", p.action_id), ("CoreStartupDate", date),
        ("CoreStartupTime", clock), ("CoreReloadDate", date), ("CoreReloadTime", clock),
        ("CoreCurrentCalls", str(current)),
    ]
    if not srv.legacy:
        pairs.append(("CoreProcessedCalls", str(processed)))
    return pairs


_EXTENSION_STATES = {
    -2: "Removed", -1: "Unknown", 0: "Idle", 1: "InUse", 2: "Busy", 4: "Unavailable",
    8: "Ringing", 9: "InUse&Ringing", 16: "Hold", 17: "InUse&Hold",
}


def act_extensionstate(s: "Session", p: Packet) -> HandlerResult:
    """ExtensionState: from ``server.hints`` (default: no hint, -1 Unknown)."""
    exten, context = p.get("Exten", ""), p.get("Context", "") or "default"
    if not exten:
        return _error(p, "Extension not specified")
    with s.server.lock:
        hint, status = s.server.hints.get((exten, context), ("", -1))
    return build_response(p, "Extension Status", headers=[
        ("Exten", exten), ("Context", context), ("Hint", hint), ("Status", str(status)),
        ("StatusText", _EXTENSION_STATES.get(status, "Unknown")),
    ])


def default_actions() -> List[ActionSpec]:
    """The built-in actions (calls included), with Asterisk 22's authorities."""
    from ._calls import CALL_ACTIONS
    from ._cli import act_command
    from ._config_files import CONFIG_ACTIONS
    from ._queues import QUEUE_ACTIONS

    def auth(text: str) -> int:
        return sum(_BIT[c] for c in text.split(",")) if text else 0

    table: List[Tuple[str, Handler, str, str]] = [
        ("Login", act_login, "", "Login Manager."),
        ("Logoff", act_logoff, "", "Logoff Manager."),
        ("Challenge", act_challenge, "", "Generate Challenge for MD5 Auth."),
        ("Ping", act_ping, "", "Keepalive command."),
        ("Events", act_events, "", "Control Event Flow."),
        ("Filter", act_filter, "system", "Dynamically add filters for the current manager session."),
        ("ListCommands", act_listcommands, "", "List available manager commands."),
        ("Command", act_command, "command", "Execute Asterisk CLI Command."),
        ("DBPut", act_dbput, "system", "Put DB entry."),
        ("DBGet", act_dbget, "system,reporting", "Get DB Entry."),
        ("DBGetTree", act_dbgettree, "system,reporting",
         "Get DB entries, optionally at a particular family/key"),
        ("DBDel", act_dbdel, "system", "Delete DB entry."),
        ("DBDelTree", act_dbdeltree, "system", "Delete DB Tree."),
        ("Setvar", act_setvar, "call", "Sets a channel variable or function value."),
        ("Getvar", act_getvar, "call,reporting", "Gets a channel variable or function value."),
        ("UserEvent", act_userevent, "user", "Send an arbitrary event."),
        ("CoreSettings", act_coresettings, "system,reporting", "Show PBX core settings (version etc)."),
        ("CoreStatus", act_corestatus, "system,reporting", "Show PBX core status variables."),
        ("ExtensionState", act_extensionstate, "call,reporting", "Check Extension Status."),
    ]
    table.extend(CALL_ACTIONS)
    table.extend(QUEUE_ACTIONS)
    table.extend(CONFIG_ACTIONS)
    return [ActionSpec(name, handler, auth(priv), synopsis) for name, handler, priv, synopsis in table]


def unknown_action(s: "Session", p: Packet) -> bytes:
    """The answer to an action nobody handles (plus RequestBadFormat if enabled)."""
    action = p.action
    message = "Invalid/unknown command: %s. Use Action: ListCommands to show available commands." % action
    security_event(s, "RequestBadFormat", "Error", [], [
        ("RequestType", "Action: %s" % action), ("SessionTV", None), ("AccountID", s.username or ""),
    ])
    return encode_packets(_error(p, message))

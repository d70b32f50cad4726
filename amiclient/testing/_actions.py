"""The basic action family: AstDB, variables, UserEvent, CoreSettings, CoreStatus, ExtensionState.

Message texts, header names and header order are copied from Asterisk 22
recordings (``tests/fixtures/asterisk-22``); ``legacy`` servers answer the
way Asterisk 13 does where that differs.  (Login and the other session
actions are the core's: ``_login``.)
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Protocol, Tuple, cast

from ._calls import CallSimulator
from ._events import CLASSES, Event
from ._handlers import (
    ActionSpec,
    ActionTable,
    Handler,
    HandlerResult,
    ServerHost,
    error,
    list_complete,
    list_item,
    list_start,
)
from ._login import security_event, unknown_action
from ._session import Session
from ._wire import Packet, build_response, encode_packet

__all__ = [
    "BASIC_ACTIONS",
    "ActionSpec",
    "BasicHost",
    "Handler",
    "HandlerResult",
    "list_complete",
    "list_item",
    "list_start",
    "security_event",
    "unknown_action",
]

_BIT = dict(CLASSES)
Pairs = List[Tuple[str, Optional[str]]]
_error = error


class BasicHost(ServerHost, Protocol):
    """The server state the basic actions use."""

    db: Dict[Tuple[str, str], str]
    global_vars: Dict[str, str]
    hints: Dict[Tuple[str, str], Tuple[str, int]]
    version: str
    asterisk_version: str
    started_at: float

    @property
    def calls(self) -> CallSimulator: ...


def _srv(s: Session) -> BasicHost:
    return cast(BasicHost, s.server)


# -- AstDB ------------------------------------------------------------------------


def _family_key(p: Packet, dots: bool) -> Tuple[str, str, Optional[Pairs]]:
    dot = "." if dots else ""
    family, key = p.get("Family", ""), p.get("Key", "")
    if not family:
        return family, key, _error(p, "No family specified" + dot)
    if not key:
        return family, key, _error(p, "No key specified" + dot)
    return family, key, None


def act_dbput(s: Session, p: Packet) -> HandlerResult:
    """DBPut: store a value."""
    family, key, err = _family_key(p, False)
    if err:
        return err
    with _srv(s).lock:
        _srv(s).db[(family, key)] = p.get("Val", "")
    return build_response(p, "Updated database successfully")


def act_dbget(s: Session, p: Packet) -> HandlerResult:
    """DBGet: one value, as a one-item list."""
    family, key, err = _family_key(p, True)
    if err:
        return err
    with _srv(s).lock:
        value = _srv(s).db.get((family, key))
    if value is None:
        return _error(p, "Database entry not found")
    item = [("Family", family), ("Key", key), ("Val", value)]
    return [
        list_start(p, "Result will follow"),
        list_item(p, "DBGetResponse", item),
        list_complete(p, "DBGetComplete", 1),
    ]


def _tree(s: Session, p: Packet) -> List[Tuple[str, Tuple[str, str]]]:
    prefix = "/" + p.get("Family", "")
    if p.get("Key"):
        prefix += "/" + p.get("Key", "")
    with _srv(s).lock:
        entries = [("/%s/%s" % fk, fk) for fk in _srv(s).db]
    return sorted((full, fk) for full, fk in entries if full == prefix or full.startswith(prefix + "/"))


def act_dbgettree(s: Session, p: Packet) -> HandlerResult:
    """DBGetTree: every entry under a family (and key)."""
    if not p.get("Family"):
        return _error(p, "No family specified.")
    entries = _tree(s, p)
    with _srv(s).lock:
        values = [_srv(s).db.get(fk, "") for _, fk in entries]
    packets: List[Pairs] = [list_start(p, "Result will follow")]
    for (full, _), value in zip(entries, values):
        packets.append(list_item(p, "DBGetTreeResponse", [("Key", full), ("Val", value)]))
    packets.append(list_complete(p, "DBGetTreeComplete", len(entries)))
    return packets


def act_dbdel(s: Session, p: Packet) -> HandlerResult:
    """DBDel: delete one key."""
    family, key, err = _family_key(p, True)
    if err:
        return err
    with _srv(s).lock:
        found = _srv(s).db.pop((family, key), None) is not None
    if not found:
        return _error(p, "Database entry could not be deleted")
    return build_response(p, "Key deleted successfully")


def act_dbdeltree(s: Session, p: Packet) -> HandlerResult:
    """DBDelTree: delete a family (or a key and everything under it)."""
    if not p.get("Family"):
        return _error(p, "No family specified.")
    entries = _tree(s, p)
    with _srv(s).lock:
        for _, fk in entries:
            _srv(s).db.pop(fk, None)
    if not entries:
        return _error(p, "Database entry not found")
    return build_response(p, "Key tree deleted successfully")


# -- variables, user events, status ---------------------------------------------


def act_setvar(s: Session, p: Packet) -> HandlerResult:
    """Setvar: set a global (or channel) variable; raises VarSet."""
    srv = _srv(s)
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


def act_getvar(s: Session, p: Packet) -> HandlerResult:
    """Getvar: read a global (or channel) variable."""
    srv = _srv(s)
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


def act_userevent(s: Session, p: Packet) -> HandlerResult:
    """UserEvent: ack, then broadcast the client's other lines verbatim."""
    body = [line for line in p.lines if not line.lower().startswith(("userevent:", "action:"))]
    text = "Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: %s\r\n" % p.get("UserEvent", "")
    text += "".join(line + "\r\n" for line in body) + "\r\n"
    _srv(s).broadcast(Event("UserEvent", _BIT["user"], text.encode("utf-8", "surrogateescape"), text))
    return build_response(p, "Event Sent")


def act_coresettings(s: Session, p: Packet) -> HandlerResult:
    """CoreSettings: versions and core limits."""
    srv = _srv(s)
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


def act_corestatus(s: Session, p: Packet) -> HandlerResult:
    """CoreStatus: start and reload times, call counters."""
    srv = _srv(s)
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


def act_extensionstate(s: Session, p: Packet) -> HandlerResult:
    """ExtensionState: from ``server.hints`` (default: no hint, -1 Unknown)."""
    exten, context = p.get("Exten", ""), p.get("Context", "") or "default"
    if not exten:
        return _error(p, "Extension not specified")
    with _srv(s).lock:
        hint, status = _srv(s).hints.get((exten, context), ("", -1))
    return build_response(p, "Extension Status", headers=[
        ("Exten", exten), ("Context", context), ("Hint", hint), ("Status", str(status)),
        ("StatusText", _EXTENSION_STATES.get(status, "Unknown")),
    ])


BASIC_ACTIONS: ActionTable = [
    ("DBPut", act_dbput, "system", "Put DB entry."),
    ("DBGet", act_dbget, "system,reporting", "Get DB Entry."),
    ("DBGetTree", act_dbgettree, "system,reporting", "Get DB entries, optionally at a particular family/key"),
    ("DBDel", act_dbdel, "system", "Delete DB entry."),
    ("DBDelTree", act_dbdeltree, "system", "Delete DB Tree."),
    ("Setvar", act_setvar, "call", "Sets a channel variable or function value."),
    ("Getvar", act_getvar, "call,reporting", "Gets a channel variable or function value."),
    ("UserEvent", act_userevent, "user", "Send an arbitrary event."),
    ("CoreSettings", act_coresettings, "system,reporting", "Show PBX core settings (version etc)."),
    ("CoreStatus", act_corestatus, "system,reporting", "Show PBX core status variables."),
    ("ExtensionState", act_extensionstate, "call,reporting", "Check Extension Status."),
]

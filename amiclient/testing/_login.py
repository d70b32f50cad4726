"""The session-level actions of the server core: Login, Challenge, Logoff, Ping, Events, Filter, ListCommands.

Also the manager ``User`` (a ``manager.conf`` section), the security events
(``SuccessfulAuth``, ``RequestBadFormat``) and the answer to an unknown
action.  Texts and header order follow Asterisk 22 recordings.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from typing import List, Mapping, Optional, Protocol, Sequence, Tuple, Union, cast

from ._events import ALL, CLASSES, Event, EventFilter, FilterError, classes_to_mask, mask_to_str, parse_event_mask
from ._faults import Fault, FaultState
from ._handlers import ActionSpec, ActionTable, HandlerResult, ServerHost, error
from ._session import Session
from ._wire import Packet, build_response, encode_packet, encode_packets

__all__ = ["LOGIN_ACTIONS", "LoginHost", "User", "security_event", "unknown_action"]

_BIT = dict(CLASSES)
Pairs = List[Tuple[str, Optional[str]]]
_error = error


@dataclass
class User:
    """A manager user (``manager.conf`` section).

    ``read``/``write``: class lists (``all``, ``call,system`` ...).
    ``events``: the event mask used when Login has no ``Events`` header
    (``True`` = all read classes, ``False`` = off, or a mask string).
    ``eventfilters``: ``eventfilter`` lines (regex, ``!`` = exclude).
    """

    secret: Optional[str]
    read: str = "all"
    write: str = "all"
    events: Union[bool, str] = True
    eventfilters: Sequence[str] = ()
    allow_multiple_login: bool = True

    @property
    def read_mask(self) -> int:
        """The read classes as a bit mask."""
        return classes_to_mask(self.read)

    @property
    def write_mask(self) -> int:
        """The write classes as a bit mask."""
        return classes_to_mask(self.write)

    @property
    def default_events_mask(self) -> int:
        """The requested mask when Login carries no ``Events`` header."""
        if isinstance(self.events, bool):
            return ALL if self.events else 0
        return parse_event_mask(self.events)


class LoginHost(ServerHost, Protocol):
    """The server state the core's own actions use."""

    @property
    def users(self) -> Mapping[str, User]: ...

    @property
    def sessions(self) -> List[Session]: ...

    @property
    def address(self) -> Tuple[str, int]: ...

    @property
    def faults_state(self) -> FaultState: ...

    started_at: float
    auth_fail_delay: float
    security_events: bool

    def _authenticated(self, session: Session) -> None: ...

    def action_specs(self) -> List[ActionSpec]: ...


def _event_tv(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + ".%03d+0000" % (when % 1 * 1000)


def security_event(session: Session, name: str, severity: str, head: Pairs, tail: Pairs) -> None:
    """Broadcast a security-class event about ``session`` (if enabled), in Asterisk 22's header order.

    ``head`` goes before ``SessionID``; ``tail`` after ``RemoteAddress``, where
    a ``SessionTV`` pair without a value gets the session's start time.
    """
    server = cast(LoginHost, session.server)
    if not server.security_events:
        return
    local_host, port = server.address
    pairs: Pairs = [
        ("Event", name),
        ("Privilege", "security,all"),
        ("EventTV", _event_tv(time.time())),
        ("Severity", severity),
        ("Service", "AMI"),
        ("EventVersion", "1"),
        *head,
        ("SessionID", "0x%012x" % id(session)),
        ("LocalAddress", "IPV4/TCP/%s/%d" % (local_host, port)),
        ("RemoteAddress", "IPV4/TCP/%s/%d" % session.peer[:2]),
    ]
    pairs.extend((key, _event_tv(session.connected_at) if key == "SessionTV" and value is None else value)
                 for key, value in tail)
    server.broadcast(Event(name, _BIT["security"], encode_packet(pairs)))


# -- authentication -----------------------------------------------------------


def act_login(s: Session, p: Packet) -> HandlerResult:
    """Login: plain ``Secret`` or ``AuthType: MD5`` + ``Key``."""
    srv = cast(LoginHost, s.server)
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


def act_challenge(s: Session, p: Packet) -> HandlerResult:
    """Challenge: one ≤9-digit challenge per session."""
    if p.get("AuthType", "").lower() != "md5":
        return _error(p, "Must specify AuthType")
    if s.challenge is None:
        s.challenge = str(random.randrange(1, 10**9))
    return [("Response", "Success"), ("ActionID", p.action_id), ("Challenge", s.challenge)]


def act_logoff(s: Session, p: Packet) -> HandlerResult:
    """Logoff: Goodbye, then close."""
    s.close()
    return build_response(p, "Thanks for all the fish.", "Goodbye")


def act_ping(s: Session, p: Packet) -> HandlerResult:
    """Ping: Pong and a timestamp."""
    aid = p.action_id
    head = "Response: Success\r\nActionID: %s\r\n" % aid if aid else "Response: Success\r\n"
    text = head + "Ping: Pong\r\nTimestamp: %.6f\r\n\r\n" % time.time()
    return text.encode("utf-8", "surrogateescape")


def act_events(s: Session, p: Packet) -> HandlerResult:
    """Events: set the session's event mask."""
    text = p.get("EventMask", "")
    if not text:
        return _error(p, "Invalid event mask")
    requested = parse_event_mask(text)
    s.set_event_mask(requested & s.read_perm)
    return [("Response", "Success"), ("ActionID", p.action_id), ("Events", "On" if requested else "Off")]


def act_filter(s: Session, p: Packet) -> HandlerResult:
    """Filter: add an event filter to the session."""
    if p.get("Operation", "").lower() != "add":
        return _error(p, "Unknown operation")
    try:
        event_filter = EventFilter(p.get("Filter", ""), p.get("MatchCriteria") or None)
    except FilterError as exc:
        return _error(p, str(exc))
    s.add_filter(event_filter)
    return build_response(p, "Success")


def act_listcommands(s: Session, p: Packet) -> HandlerResult:
    """ListCommands: the actions this user may run."""
    specs = sorted(cast(LoginHost, s.server).action_specs(), key=lambda a: a.name.lower())
    lines: Pairs = [("Response", "Success"), ("ActionID", p.action_id)]
    for spec in specs:
        if spec.authority == 0 or spec.authority & s.write_perm:
            priv = mask_to_str(spec.authority)
            lines.append((spec.name, "%s  (Priv: %s)" % (spec.synopsis, priv)))
    return lines


def unknown_action(s: Session, p: Packet) -> bytes:
    """The answer to an action nobody handles (plus RequestBadFormat if enabled)."""
    action = p.action
    message = "Invalid/unknown command: %s. Use Action: ListCommands to show available commands." % action
    security_event(s, "RequestBadFormat", "Error", [], [
        ("RequestType", "Action: %s" % action), ("SessionTV", None), ("AccountID", s.username or ""),
    ])
    return encode_packets(_error(p, message))


LOGIN_ACTIONS: ActionTable = [
    ("Login", act_login, "", "Login Manager."),
    ("Logoff", act_logoff, "", "Logoff Manager."),
    ("Challenge", act_challenge, "", "Generate Challenge for MD5 Auth."),
    ("Ping", act_ping, "", "Keepalive command."),
    ("Events", act_events, "", "Control Event Flow."),
    ("Filter", act_filter, "system", "Dynamically add filters for the current manager session."),
    ("ListCommands", act_listcommands, "", "List available manager commands."),
]

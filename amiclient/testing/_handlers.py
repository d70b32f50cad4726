"""What action families share: handler types, list-response builders, the server interface they use.

An action family is a module with a table of ``(name, handler, write
classes, synopsis)`` rows (``ActionTable``) that ``FakeAMIServer`` registers
in its core.  A handler gets the ``Session`` and the parsed ``Packet``; it
reaches the server state it needs through a ``Protocol`` of its own module
(``cast(ItsHost, session.server)``), so families depend on the core, never the
other way round.
"""

from __future__ import annotations

import threading
from typing import Callable, List, Optional, Protocol, Sequence, Tuple

from ._events import Event, classes_to_mask
from ._session import ActionSpec, Handler
from ._wire import HandlerResult, Packet, build_response

__all__ = [
    "ActionSpec",
    "ActionTable",
    "Handler",
    "HandlerResult",
    "ServerHost",
    "error",
    "list_complete",
    "list_item",
    "list_start",
    "specs",
]

Pairs = List[Tuple[str, Optional[str]]]
#: Rows of ``(action name, handler, write classes ("" = any), synopsis)``.
ActionTable = List[Tuple[str, Handler, str, str]]

class ServerHost(Protocol):
    """The server core as every action family sees it."""

    @property
    def lock(self) -> threading.RLock: ...

    @property
    def legacy(self) -> bool: ...

    def broadcast(self, event: Event) -> int: ...

    def call_later(self, delay: float, func: Callable[[], object]) -> None: ...


def specs(table: Sequence[Tuple[str, Handler, str, str]]) -> List[ActionSpec]:
    """An ``ActionTable`` as ``ActionSpec`` objects."""
    return [ActionSpec(name, handler, classes_to_mask(priv), synopsis) for name, handler, priv, synopsis in table]


def error(packet: Packet, message: str) -> Pairs:
    """A ``Response: Error`` packet."""
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

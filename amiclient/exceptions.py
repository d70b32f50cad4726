"""The amiclient exception hierarchy: every error the library raises derives from AMIError."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from .packet import Event, Response

__all__ = [
    "AMIError",
    "ProtocolError",
    "AMIConnectionError",
    "ConnectionLost",
    "ClientClosed",
    "AuthenticationError",
    "ActionError",
    "ActionTimeout",
    "UnsupportedAction",
    "OriginateFailed",
]


class AMIError(Exception):
    """Base class of every amiclient error."""


class ProtocolError(AMIError):
    """The server sent bytes that are not valid AMI (garbage, oversized or truncated packet)."""


class AMIConnectionError(AMIError):
    """The client could not reach the server, or is not connected."""


class ConnectionLost(AMIConnectionError):
    """The connection dropped while an action was in flight or waiting for the link."""


class ClientClosed(AMIConnectionError):
    """The client was closed; it sends nothing more."""


class AuthenticationError(AMIError):
    """The server refused the login (wrong user, secret or MD5 key, ACL, or login in use)."""


class ActionError(AMIError):
    """The server answered an action with ``Response: Error`` or ``Failure``."""

    def __init__(self, response: Response) -> None:
        self.response = response
        action_id = response.action_id or "-"
        super().__init__(f"{response.status or 'Error'}: {response.message or '(no message)'} (ActionID {action_id})")

    def __reduce__(self) -> Any:  # picklable (multiprocessing): rebuilt from the response, not from the message
        return (type(self), (self.response,), self.__dict__)


class ActionTimeout(AMIError, TimeoutError):
    """No complete answer arrived within the action's timeout."""

    def __init__(self, message: str, action_id: Optional[str] = None) -> None:
        super().__init__(message)
        self.action_id = action_id


class UnsupportedAction(AMIError):
    """The server's Asterisk version lacks this action (raised by ``client.actions`` before sending)."""

    def __init__(self, message: str, action: str = "", version: str = "", since: Tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.action = action
        self.version = version
        self.since = since


class OriginateFailed(ActionError):
    """An originated call did not connect: ``event`` is its ``OriginateResponse``, ``reason`` its Reason code."""

    def __init__(self, event: Event, message: str) -> None:
        from .packet import Response

        pairs = [("Response", "Failure"), ("ActionID", event.get("ActionID", "")), ("Message", message)]
        super().__init__(Response.from_pairs(pairs))  # type: ignore[arg-type]
        self.event = event
        self.reason: Optional[int] = reason_code(event.get("Reason", ""))

    def __reduce__(self) -> Any:
        return (type(self), (self.event, self.response.message or ""), self.__dict__)


def reason_code(text: str) -> Optional[int]:
    """An ``OriginateResponse`` ``Reason`` as an int; None if it is none (whatever the server sent)."""
    try:
        return int(text) if text.strip().lstrip("-").isascii() else None
    except ValueError:
        return None

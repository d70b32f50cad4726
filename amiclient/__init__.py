"""amiclient: a fast, thread-safe client for the Asterisk Manager Interface (AMI).

::

    from amiclient import AMIClient

    with AMIClient("127.0.0.1", 5038, "admin", "secret") as client:
        uptime = client.command("core show uptime")
        client.add_listener(on_hangup, event="Hangup")
"""
from ._listeners import ListenerHandle
from ._tracker import ActionFuture
from ._version import __version__
from .client import AMIClient
from .exceptions import (
    ActionError,
    ActionTimeout,
    AMIConnectionError,
    AMIError,
    AuthenticationError,
    ClientClosed,
    ConnectionLost,
    OriginateFailed,
    ProtocolError,
    UnsupportedAction,
)
from .http import AMIHTTPClient
from .packet import Event, Packet, Response
from .retry import Backoff
from .state import ClientStats, ConnectionState, StateChange

__all__ = [
    "AMIClient",
    "AMIHTTPClient",
    "ActionFuture",
    "Backoff",
    "ClientStats",
    "ConnectionState",
    "StateChange",
    "ListenerHandle",
    "Packet",
    "Response",
    "Event",
    "AMIError",
    "ProtocolError",
    "AMIConnectionError",
    "ConnectionLost",
    "ClientClosed",
    "AuthenticationError",
    "ActionError",
    "ActionTimeout",
    "OriginateFailed",
    "UnsupportedAction",
    "__version__",
]

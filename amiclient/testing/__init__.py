"""Test doubles for AMI clients: a fake Asterisk manager and a recording replayer.

``FakeAMIServer`` is a real TCP server that answers like Asterisk 22 (or 13
with ``legacy=True``): login (plain and MD5), events with masks and filters,
Command, AstDB, variables, UserEvent, simulated calls (Originate, Hangup,
Redirect, Status, CoreShowChannels), queues (``server.queues``: QueueStatus,
QueueSummary, QueueAdd, QueuePause, QueueRemove), custom handlers, and
injectable faults (``Fault``).  It is ``ServerCore`` (sockets, sessions, login,
events, faults, the handler registry) with every action family registered
(``register_actions``).  ``ReplayServer`` plays a recorded session back byte for byte.
``FakeAJAMServer`` serves a fake over HTTP, ``TLSFront`` over TLS, and
``Recorder`` is a callback that tests can wait on.

The fakes use the standard library (and ``typing_extensions``) only and
share no code with the client, so a client bug cannot hide in them.
"""

from ._calls import Channel
from ._core import ServerCore
from ._events import CLASSES, Event, EventFilter, FilterError
from ._faults import DEFAULT_GARBAGE, Fault, FaultSpec
from ._handlers import ActionSpec, Handler, HandlerResult
from ._http import FakeAJAMServer
from ._queues import Queue, QueueCaller, QueueMember
from ._recorder import Recorder
from ._replay import ReplayServer, load_recording
from ._server import FakeAMIServer, User
from ._session import Session
from ._tls import TLSFront
from ._wire import Packet, PacketParser, build_response, encode_packet

__all__ = [
    "CLASSES",
    "DEFAULT_GARBAGE",
    "ActionSpec",
    "Channel",
    "Event",
    "EventFilter",
    "FakeAJAMServer",
    "FakeAMIServer",
    "Fault",
    "FaultSpec",
    "FilterError",
    "Handler",
    "HandlerResult",
    "Packet",
    "PacketParser",
    "Queue",
    "QueueCaller",
    "QueueMember",
    "Recorder",
    "ReplayServer",
    "ServerCore",
    "Session",
    "TLSFront",
    "User",
    "build_response",
    "encode_packet",
    "load_recording",
]

"""Hand-written helpers for the daily AMI actions, by family; :class:`ActionHelpers` mixes them all.

Every helper runs through the host client's ``action()``, so TCP and HTTP
clients share them.  ``timeout`` is always the client's wait in seconds;
Asterisk's own timeouts have unit-bearing names (``ring_timeout``,
``seconds``, ``park_seconds``).  Channel arguments are literal channel names.
"""
from ._base import DEFAULT
from .calls import ORIGINATE_REASONS, CallHelpers
from .config import Append, ConfigEdit, ConfigHelpers, DelCat, Delete, EmptyCat, Insert, NewCat, RenameCat, Update
from .data import DataHelpers
from .queues import QueueEntryInfo, QueueHelpers, QueueInfo, QueueMemberInfo
from .state import ServerInfo, StateHelpers

__all__ = [
    "DEFAULT", "ORIGINATE_REASONS", "ActionHelpers", "Append", "CallHelpers", "ConfigEdit", "ConfigHelpers",
    "DataHelpers", "DelCat", "Delete", "EmptyCat", "Insert", "NewCat", "QueueEntryInfo", "QueueHelpers",
    "QueueInfo", "QueueMemberInfo", "RenameCat", "ServerInfo", "StateHelpers", "Update",
]


class ActionHelpers(CallHelpers, StateHelpers, DataHelpers, QueueHelpers, ConfigHelpers):
    """Every helper; mixed into the clients (see each family for the methods)."""

"""Live state: channels, calls, bridges, queues, devices and extensions, kept in sync with Asterisk.

::

    from amiclient.live import LiveState

    live = LiveState(client)       # subscribes, syncs now and after every reconnect
    live.wait_synced(timeout=5)
    for call in live.calls.values():
        print(call.caller, "->", call.callee, call.state)
    live.on("call_ended", lambda change: print("ended", change.key))

Every record is a frozen dataclass and every mapping read-only: what a
property returns never changes afterwards.  :class:`LiveModel` is the pure
event-applying core (no threads, no I/O), usable on recordings.
"""
from ._model import Change, LiveModel
from ._state import KINDS, LiveSnapshot, LiveState
from ._records import Bridge, Call, Channel, ExtensionState, Party, Queue, QueueCaller, QueueMember

__all__ = [
    "LiveState", "LiveSnapshot", "KINDS", "LiveModel", "Change", "Channel", "Bridge", "Call", "Party", "Queue", "QueueMember", "QueueCaller", "ExtensionState",
]

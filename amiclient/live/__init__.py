"""Live state: channels, calls, bridges, queues, devices and extensions, kept in sync with Asterisk.

::

    from amiclient.live import LiveState

    live = LiveState(client)       # subscribes, syncs now and after every reconnect
    live.wait_synced(timeout=5)
    for call in live.calls.values():
        print(call.caller, "->", call.callee, call.state)
    live.on("call_ended", lambda change: print("ended", change.key))

A call (one per Linkedid; details in ``_calls.py``)::

    first channel ──> ringing ──(DialEnd ANSWER / AgentConnect / caller+callee bridged)──> answered
                         │                                                                   │
                         └──────────────── last channel of the Linkedid hangs up ────────────┴──> ended

caller = the originating channel (Uniqueid == Linkedid: the originated channel
for an Originate, whose DialBegin without a calling channel never makes it its
own callee); callee = the party it dialed (the one that answered) or was
bridged with; after a transfer the transferee takes the transferer's place
and the next dial or the new bridge peer is the callee.

Every record is a frozen dataclass and every mapping read-only: what a
property returns never changes afterwards.  :class:`LiveModel` is the pure
event-applying core (no threads, no I/O), usable on recordings.
"""
from ._model import Change, LiveModel
from ._records import Bridge, Call, Channel, ExtensionState, Party, Queue, QueueCaller, QueueMember
from ._state import KINDS, LiveSnapshot, LiveState

__all__ = [
    "LiveState", "LiveSnapshot", "KINDS", "LiveModel", "Change",
    "Channel", "Bridge", "Call", "Party", "Queue", "QueueMember", "QueueCaller", "ExtensionState",
]

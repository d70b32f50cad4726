"""The sync procedure: take the snapshot actions' items, load them into a model.

A sync sends ``CoreShowChannels``, ``BridgeList``, ``QueueStatus``,
``DeviceStateList`` and ``ExtensionStateList`` at once.  Events that arrive
meanwhile are held back by the caller and applied after the snapshot is
loaded: Asterisk sends each entity's events in order, so replaying them
over the snapshot converges on what Asterisk has (an event older than the
snapshot is followed by its newer ones).  An action the server refuses
(``Response: Error``: an old Asterisk, a missing module, no permission)
leaves its category to events alone; ``CoreShowChannels`` is required.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..exceptions import ActionError
from ..packet import Event, Response
from ._model import LiveModel

__all__ = ["SNAPSHOT_ACTIONS", "take_snapshot", "load_snapshot"]

#: category -> the action whose list items describe it
SNAPSHOT_ACTIONS = (
    ("channels", "CoreShowChannels"),
    ("bridges", "BridgeList"),
    ("queues", "QueueStatus"),
    ("devices", "DeviceStateList"),
    ("extensions", "ExtensionStateList"),
)

Snapshot = Dict[str, Optional[List[Event]]]


def take_snapshot(client: Any, timeout: float) -> Snapshot:
    """Send every snapshot action through ``client.send_action``; their items by category.

    A category is None when the server refused its action.  Raises what
    the futures raise (ConnectionLost, ActionTimeout...), and ActionError
    if ``CoreShowChannels`` is refused.
    """
    futures = [(category, client.send_action(action, timeout=timeout)) for category, action in SNAPSHOT_ACTIONS]
    snapshot: Snapshot = {}
    for category, future in futures:
        response: Response = future.result(timeout + 1.0)
        if not response.ok:
            if category == "channels":
                raise ActionError(response)
            snapshot[category] = None
        else:
            snapshot[category] = list(response.events)
    return snapshot


def load_snapshot(model: LiveModel, snapshot: Snapshot) -> None:
    """Load a snapshot into the model, channels first (calls and bridges depend on them)."""
    channels = snapshot.get("channels")
    if channels is not None:
        model.load_channels(channels)
    model.load_bridges(snapshot.get("bridges"))
    queues = snapshot.get("queues")
    if queues is not None:
        model.load_queues(queues)
    devices = snapshot.get("devices")
    if devices is not None:
        model.load_devices(devices)
    extensions = snapshot.get("extensions")
    if extensions is not None:
        model.load_extensions(extensions)

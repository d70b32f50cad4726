"""Helpers for the live-state tests: replaying a recording through the model, comparing with snapshots."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from amiclient._protocol import Framer, parse_packet
from amiclient.live import LiveModel
from amiclient.packet import Event

from .conftest import load_chunks

SNAPSHOT_CATEGORY = {
    "coreshowchannels": "channels", "bridgelist": "bridges", "queuestatus": "queues",
    "devicestatelist": "devices", "extensionstatelist": "extensions",
}


def _client_packets(text: str) -> Iterator[Dict[str, str]]:
    for block in text.split("\r\n\r\n"):
        lines = [line for line in block.split("\r\n") if ": " in line]
        if lines:
            yield dict(line.split(": ", 1) for line in lines)


def recording_steps(relative: str) -> Iterator[Tuple[str, Any]]:
    """("event", Event) for each event outside a list, ("list", (action, items)) per completed list."""
    actions: Dict[str, str] = {}
    lists: Dict[str, List[Event]] = {}
    data: Any = load_chunks(relative)
    chunks = [c for session in data.values() for c in session + [{"dir": "eof"}]] if isinstance(data, dict) else data
    framer = Framer(expect_banner=chunks[0]["data"].startswith("Asterisk Call Manager"))
    for chunk in chunks:
        if chunk["dir"] == "c2s":
            for packet in _client_packets(chunk["data"]):
                actions[packet.get("ActionID", "")] = packet.get("Action", "").lower()
            continue
        if chunk["dir"] == "eof":
            framer = Framer()
            yield ("eof", None)
            continue
        for text in framer.feed(chunk["data"].encode("utf-8", "surrogateescape")):
            packet = parse_packet(text)
            action_id = packet.get("ActionID")
            if not isinstance(packet, Event):
                if action_id and str(packet.get("EventList", "")).lower() == "start":
                    lists[action_id] = []
                continue
            if action_id in lists:
                if str(packet.get("EventList", "")).lower() == "complete":
                    yield ("list", (actions.get(action_id, ""), lists.pop(action_id)))
                else:
                    lists[action_id].append(packet)
                continue
            yield ("event", packet)


def loader(model: LiveModel, action: str) -> Optional[Callable[[List[Event]], None]]:
    return {
        "coreshowchannels": model.load_channels, "bridgelist": model.load_bridges, "queuestatus": model.load_queues,
        "devicestatelist": model.load_devices, "extensionstatelist": model.load_extensions,
    }.get(action)


# -- what a snapshot says, in the terms the model keeps -------------------------------

def channel_view(items: Sequence[Mapping[str, str]]) -> Dict[str, Tuple[str, ...]]:
    return {
        e["Uniqueid"]: (e["Channel"], e["ChannelState"], e["CallerIDNum"], e["CallerIDName"], e["ConnectedLineNum"],
                        e["ConnectedLineName"], e["Context"], e["Exten"], e["Priority"], e["Linkedid"],
                        e.get("BridgeId", ""), e["Application"], e["ApplicationData"])
        for e in items
    }


def model_channel_view(channels: Mapping[str, Any]) -> Dict[str, Tuple[str, ...]]:
    return {
        uid: (c.name, str(c.state), c.caller_num, c.caller_name, c.connected_num, c.connected_name, c.context,
              c.exten, c.priority, c.linkedid, c.bridge_id or "", c.application, c.application_data)
        for uid, c in channels.items()
    }


def bridge_view(items: Sequence[Mapping[str, str]]) -> Dict[str, Tuple[str, str, int]]:
    return {e["BridgeUniqueid"]: (e["BridgeType"], e["BridgeTechnology"], int(e["BridgeNumChannels"])) for e in items}


def model_bridge_view(bridges: Mapping[str, Any]) -> Dict[str, Tuple[str, str, int]]:
    return {bid: (b.type, b.technology, len(b.channels)) for bid, b in bridges.items()}


def queue_view(items: Sequence[Mapping[str, str]]) -> Dict[str, Any]:
    view: Dict[str, Any] = {}
    for e in items:
        q = view.setdefault(e["Queue"], {"strategy": None, "members": {}, "callers": []})
        if e["Event"] == "QueueParams":
            q["strategy"] = e["Strategy"]
        elif e["Event"] == "QueueMember":
            q["members"][e["Location"]] = (e["Name"], int(e["Status"]), e["Paused"] == "1", e["InCall"] == "1",
                                           int(e["Penalty"]), e.get("PausedReason", ""))
        elif e["Event"] == "QueueEntry":
            q["callers"].append((int(e["Position"]), e["Uniqueid"], e["Channel"]))
    return view


def model_queue_view(queues: Mapping[str, Any]) -> Dict[str, Any]:
    return {
        name: {
            "strategy": q.strategy or None,
            "members": {i: (m.name, m.status, m.paused, m.in_call, m.penalty, m.paused_reason) for i, m in q.members.items()},
            "callers": [(c.position, c.uniqueid, c.channel) for c in q.callers],
        }
        for name, q in queues.items()
    }


def check_snapshot(model: LiveModel, action: str, items: List[Event]) -> None:
    """Assert the model holds what the snapshot ``items`` of ``action`` say."""
    if action == "coreshowchannels":
        assert model_channel_view(model.channels) == channel_view(items)
    elif action == "bridgelist":
        assert model_bridge_view(model.bridges) == bridge_view(items)
    elif action == "queuestatus":
        view = queue_view(items)
        assert {k: v for k, v in model_queue_view(model.queues).items() if k in view} == view
    elif action == "devicestatelist":
        # DeviceStateList lists cached states only: channel devices (Tech/resource) may be missing.
        listed = {e["Device"]: e["State"] for e in items}
        assert {k: v for k, v in model.devices.items() if k in listed} == listed
        assert all("/" in k.split(":")[0] for k in model.devices if k not in listed)
    elif action == "extensionstatelist":
        assert {k: (v.hint, v.status) for k, v in model.extensions.items()} == {
            (e["Exten"], e["Context"]): (e["Hint"], int(e["Status"])) for e in items}


def replay(relative: str, model: Optional[LiveModel] = None) -> Tuple[LiveModel, List[str]]:
    """Replay a recording through a model; check every snapshot the model has already seen data for.

    A category's first snapshot with no data seen yet is the initial sync: loaded, not checked.
    Returns the model and the list of actions checked.
    """
    model = model if model is not None else LiveModel()
    checked: List[str] = []
    for kind, payload in recording_steps(relative):
        if kind == "event":
            model.apply(payload)
        elif kind == "list":
            action, items = payload
            load = loader(model, action)
            if load is None:
                continue
            if model.version[SNAPSHOT_CATEGORY[action]] > 0:
                check_snapshot(model, action, items)
                checked.append(action)
            load(items)
    return model, checked

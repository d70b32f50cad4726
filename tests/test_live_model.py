"""The pure live-state model, replayed over real Asterisk 22 recordings and driven by synthetic events."""
from __future__ import annotations

import gc
import itertools
import sys
from typing import Dict, List

import pytest

from amiclient.live import Call, Channel, LiveModel
from amiclient.packet import Event

from .live_support import check_snapshot, loader, recording_steps, replay

RECORDINGS = [
    "asterisk-22/calls-bridged", "asterisk-22/queue-calls", "asterisk-22/transfers", "asterisk-22/device-states",
    "asterisk-22/reconnect", "asterisk-22/calls-50", "asterisk-22/session", "asterisk-13/session",
]


@pytest.mark.parametrize("name", RECORDINGS)
def test_replay_matches_every_snapshot_and_ends_empty(name: str) -> None:
    model, checked = replay(f"{name}.json")
    expected = {
        "asterisk-22/calls-bridged": ["coreshowchannels", "bridgelist"],
        "asterisk-22/queue-calls": ["queuestatus", "queuestatus"],
        "asterisk-22/device-states": ["devicestatelist"],
        "asterisk-22/session": ["queuestatus", "coreshowchannels"],
        "asterisk-13/session": ["queuestatus", "coreshowchannels"],
    }.get(name, [])
    assert checked == expected
    # every call ended: nothing left behind
    assert dict(model.channels) == {} and dict(model.bridges) == {} and dict(model.calls) == {}
    assert all(not q.callers for q in model.queues.values())


def test_calls_bridged_pairs_caller_and_callee_per_linkedid() -> None:
    model = LiveModel()
    seen: Dict[str, Call] = {}
    for kind, payload in recording_steps("asterisk-22/calls-bridged.json"):
        if kind == "event":
            model.apply(payload)
        elif kind == "list" and payload[0] == "coreshowchannels":
            seen = dict(model.calls)
            check_snapshot(model, "coreshowchannels", payload[1])
    assert len(seen) == 10
    numbers = set()
    for linkedid, call in seen.items():
        assert call.linkedid == linkedid and len(call.channels) == 4
        assert call.caller is not None and call.callee is not None
        # the originated channel is the caller, never its own callee (Originate's DialBegin has no caller)
        assert call.caller.uniqueid == linkedid and call.caller.channel.startswith("Local/caller@rec-")
        assert call.callee.channel.startswith("Local/talk3@rec-") and call.callee.channel.endswith(";1")
        assert call.callee.number == "call3"
        assert call.direction == "originated" and call.state == "answered"
        numbers.add(call.caller.number)
    assert numbers == {str(1001 + i) for i in range(10)}
    ended = list(model.ended_calls)
    assert len(ended) == 10 and all(c.state == "ended" and c.channels == () for c in ended)


def test_transfers_keep_one_consistent_call() -> None:
    model, _ = replay("asterisk-22/transfers.json")
    blind, attended, redirected = list(model.ended_calls)
    # blind: Alice's peer (talk20) was sent to call1: it becomes the caller, talk1 the callee
    assert blind.caller is not None and blind.caller.channel.startswith("Local/talk20@rec-")
    assert blind.callee is not None and blind.callee.channel.startswith("Local/talk1@rec-")
    # attended: Bob's peer ends up with the transfer target (the 800 leg)
    assert attended.caller is not None and attended.caller.channel.startswith("Local/talk20@rec-")
    assert attended.callee is not None and attended.callee.channel.startswith("Local/800@rec-")
    # redirect: Carol stays the caller; the redirected leg's new peer is the callee
    assert redirected.caller is not None and redirected.caller.number == "303"
    assert redirected.callee is not None and redirected.callee.channel.startswith("Local/talk1@rec-")


def test_queue_callers_and_members_follow_events() -> None:
    model = LiveModel()
    waits: List[int] = []
    for kind, payload in recording_steps("asterisk-22/queue-calls.json"):
        if kind == "event":
            model.apply(payload)
            if payload.name == "QueueCallerJoin":
                waits.append(len(model.queues["support"].callers))
        elif kind == "list":
            load = loader(model, payload[0])
            if load is not None:
                load(payload[1])
    assert waits == [1, 1, 2]
    member = model.queues["support"].members["Local/agent@rec"]
    assert member.name == "Rec Agent" and not member.in_call


def test_device_and_extension_states() -> None:
    model, _ = replay("asterisk-22/device-states.json")
    assert model.devices["Custom:desk700"] == "NOT_INUSE"
    assert model.extensions[("702", "rec")].hint == "Custom:desk700&Custom:desk701"
    assert model.extensions[("702", "rec")].status == 0


def _block(uid: str, linkedid: str, name: str, state: int = 0, **extra: str) -> Dict[str, str]:
    base = {"Channel": name, "ChannelState": str(state), "ChannelStateDesc": "Up" if state == 6 else "Down",
            "CallerIDNum": "100", "CallerIDName": "A", "ConnectedLineNum": "<unknown>",
            "ConnectedLineName": "<unknown>", "Context": "default", "Exten": "s", "Priority": "1",
            "Uniqueid": uid, "Linkedid": linkedid}
    base.update(extra)
    return base


def _ev(name: str, **headers: str) -> Event:
    return Event.from_pairs([("Event", name)] + list(headers.items()))  # type: ignore[return-value]


def _one_call(model: LiveModel, n: int) -> None:
    a, b = f"1.{2 * n}", f"1.{2 * n + 1}"
    bridge = f"br-{n}"
    ring_a = _block(a, a, f"PJSIP/100-{n:08x}")
    ring_b = _block(b, a, f"PJSIP/200-{n:08x}", CallerIDNum="200")
    up_a = _block(a, a, f"PJSIP/100-{n:08x}", 6)
    up_b = _block(b, a, f"PJSIP/200-{n:08x}", 6, CallerIDNum="200")
    for event in (
        _ev("Newchannel", **ring_a), _ev("Newchannel", **ring_b),
        _ev("DialBegin", **ring_a, **{"Dest" + k: v for k, v in ring_b.items()}),
        _ev("Newstate", **up_b),
        _ev("BridgeCreate", BridgeUniqueid=bridge, BridgeType="basic", BridgeTechnology="simple_bridge"),
        _ev("BridgeEnter", BridgeUniqueid=bridge, **up_b), _ev("BridgeEnter", BridgeUniqueid=bridge, **up_a),
        _ev("BridgeLeave", BridgeUniqueid=bridge, **up_a), _ev("Hangup", **up_a),
        _ev("BridgeLeave", BridgeUniqueid=bridge, **up_b), _ev("BridgeDestroy", BridgeUniqueid=bridge),
        _ev("Hangup", **up_b),
    ):
        model.apply(event)
    model.changes.clear()


def _footprint(model: LiveModel) -> int:
    containers = [model.channels, model.bridges, model.calls, model.queues, model.devices, model.extensions,
                  model._gone, model.ended_calls, model.changes]
    return sum(sys.getsizeof(c) for c in containers)


def test_ten_thousand_calls_leave_memory_flat() -> None:
    model = LiveModel(history=50, tombstones=1000)
    counter = itertools.count()
    for _ in range(2000):
        _one_call(model, next(counter))
    gc.collect()
    objects_before, size_before = len(gc.get_objects()), _footprint(model)
    for _ in range(10_000):
        _one_call(model, next(counter))
    gc.collect()
    assert len(gc.get_objects()) - objects_before < 200
    assert _footprint(model) <= size_before
    assert not model.channels and not model.calls and not model.bridges
    assert len(model.ended_calls) == 50 and len(model._gone) == 1000
    last = model.ended_calls[-1]
    assert last.caller is not None and last.caller.number == "100"
    assert last.callee is not None and last.callee.number == "200" and last.answered is not None


def test_records_are_immutable_and_replaced_not_mutated() -> None:
    model = LiveModel()
    model.apply(_ev("Newchannel", **_block("1.1", "1.1", "PJSIP/100-1")))
    first = model.channels["1.1"]
    held = model.frozen("channels")
    model.apply(_ev("Newstate", **_block("1.1", "1.1", "PJSIP/100-1", 6)))
    assert first.state == 0 and held["1.1"] is first
    assert model.channels["1.1"].state == 6 and model.channels["1.1"].answered is not None
    with pytest.raises(AttributeError):
        first.state = 6
    with pytest.raises(TypeError):
        held["x"] = first  # type: ignore[index]


def test_hung_up_channel_is_not_resurrected_by_late_events() -> None:
    model = LiveModel()
    model.apply(_ev("Newchannel", **_block("1.1", "1.1", "PJSIP/100-1")))
    model.apply(_ev("Hangup", **_block("1.1", "1.1", "PJSIP/100-1")))
    model.apply(_ev("Newexten", Application="Dial", AppData="x", **_block("1.1", "1.1", "PJSIP/100-1")))
    assert "1.1" not in model.channels and not model.calls


def test_snapshot_drops_channels_gone_and_adds_calls_started() -> None:
    model = LiveModel()
    model.apply(_ev("Newchannel", **_block("1.1", "1.1", "PJSIP/100-1")))
    items = [_ev("CoreShowChannel", Application="Dial", ApplicationData="", Duration="00:00:05", BridgeId="br",
                 **_block(u, "2.1", n, 6)) for u, n in (("2.1", "PJSIP/300-1"), ("2.2", "PJSIP/400-1"))]
    model.load_channels(items)
    model.load_bridges([_ev("BridgeListItem", BridgeUniqueid="br", BridgeType="basic",
                            BridgeTechnology="simple_bridge", BridgeNumChannels="2")])
    assert set(model.channels) == {"2.1", "2.2"} and set(model.calls) == {"2.1"}
    call = model.calls["2.1"]
    assert call.caller is not None and call.caller.channel == "PJSIP/300-1"
    assert call.callee is not None and call.callee.channel == "PJSIP/400-1" and call.answered is not None
    assert model.bridges["br"].channels == ("2.1", "2.2")
    assert [c.linkedid for c in model.ended_calls] == ["1.1"]
    assert isinstance(model.channels["2.1"], Channel)

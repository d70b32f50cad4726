"""The fake's one consistent switch model (calls, bridges, queues, devices) against LiveState.

The fake emits Asterisk 22's events (shapes pinned to the recordings) and
answers the snapshot actions from the same state; a randomized test runs
mixes of calls, bridges, queue calls, hangups and outages (events lost while
the link is down) and checks after each quiet point that what LiveState
tracks equals the fake's own model.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amiclient import AMIClient, Backoff
from amiclient.live import LiveState
from amiclient.testing import FakeAMIServer

from .live_support import recording_steps


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.01)
    return True


def fake_view(srv: FakeAMIServer) -> Dict[str, Any]:
    with srv.lock:
        channels = {c.uniqueid: (c.name, c.state, srv.switch.bridge_of(c.name)) for c in srv.channels.values()}
        names = {c.name: c.uniqueid for c in srv.channels.values()}
        return {
            "channels": channels,
            "bridges": {bid: sorted(names[n] for n in members) for bid, members in srv.switch.bridges.items()},
            "queues": {q.name: [(i, c.uniqueid) for i, c in enumerate(q.callers, 1)] for q in srv.queues.values()},
            "devices": dict(srv.device_states),
            "extensions": {key: status for key, (_, status) in srv.hints.items()},
        }


def live_view(live: LiveState) -> Dict[str, Any]:
    return {
        "channels": {u: (c.name, c.state, c.bridge_id or "") for u, c in live.channels.items()},
        "bridges": {bid: sorted(b.channels) for bid, b in live.bridges.items()},
        "queues": {name: [(c.position, c.uniqueid) for c in q.callers] for name, q in live.queues.items()},
        "devices": dict(live.devices),
        "extensions": {key: e.status for key, e in live.extensions.items()},
    }


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(hold_calls=True) as srv:
        srv.hints[("700", "default")] = ("Custom:700", 0)
        srv.hints[("701", "default")] = ("Custom:700&Custom:701", 0)
        yield srv


def _keys(relative: str, event: str, listed: bool = False) -> List[str]:
    for kind, payload in recording_steps(relative):
        if kind == "event" and payload.name == event and not listed:
            return list(payload)
        if kind == "list" and listed:
            for item in payload[1]:
                if item.name == event:
                    return [k for k in item if k != "ActionID"]
    raise AssertionError(f"{event} not in {relative}")


def test_fake_events_and_lists_have_the_recorded_shapes(server: FakeAMIServer) -> None:
    got: Dict[str, List[str]] = {}
    with AMIClient("127.0.0.1", server.port, "admin", "secret") as client:
        client.connect()
        client.add_listener(lambda ev: got.setdefault(ev.name, list(ev)))
        a = server.simulate_call("PJSIP/100")
        b = server.simulate_call("PJSIP/200")
        assert a is not None and b is not None
        bid = server.switch.bridge(a, b)
        server.switch.queue_join("support", a)
        server.switch.set_device_state("Custom:700", "INUSE")
        lists = {name: client.action(name).events for name in ("BridgeList", "DeviceStateList", "ExtensionStateList")}
        info = client.action("BridgeInfo", BridgeUniqueid=bid).events
        channels = client.core_show_channels()
        server.hangup(a)
        server.hangup(b)
        assert wait_until(lambda: "BridgeDestroy" in got and "QueueCallerLeave" in got)
    assert {c["BridgeId"] for c in channels} == {bid}
    assert [c["Uniqueid"] for c in info] == [server_uid for server_uid in (c["Uniqueid"] for c in channels)]
    recorded = {
        "BridgeCreate": "calls-bridged", "BridgeEnter": "calls-bridged", "BridgeLeave": "calls-bridged",
        "BridgeDestroy": "calls-bridged", "QueueCallerJoin": "queue-calls", "QueueCallerLeave": "queue-calls",
        "DeviceStateChange": "device-states", "ExtensionStatus": "device-states",
    }
    for event, recording in recorded.items():
        assert got[event] == _keys(f"asterisk-22/{recording}.json", event), event
    item_shapes = {"BridgeList": "BridgeListItem", "DeviceStateList": "DeviceStateChange",
                   "ExtensionStateList": "ExtensionStatus"}
    for action, event in item_shapes.items():
        recording = "calls-bridged" if action == "BridgeList" else "device-states"
        assert [k for k in lists[action][0] if k != "ActionID"] == _keys(f"asterisk-22/{recording}.json", event, True)


def test_live_state_tracks_bridges_queues_and_devices_of_the_fake(server: FakeAMIServer) -> None:
    a = server.simulate_call("PJSIP/100")
    b = server.simulate_call("PJSIP/200")
    assert a is not None and b is not None
    server.switch.bridge(a, b)
    server.switch.set_device_state("Custom:700", "RINGING")
    with AMIClient("127.0.0.1", server.port, "admin", "secret") as client:
        client.connect()
        with LiveState(client) as live:
            assert live.wait_synced(5)
            assert live_view(live) == fake_view(server)  # from the snapshot alone
            c = server.simulate_call("PJSIP/300")
            assert c is not None
            server.switch.queue_join("support", c)
            server.switch.set_device_state("Custom:701", "INUSE")
            server.hangup(a)
            assert wait_until(lambda: live_view(live) == fake_view(server))
            assert [q.channel for q in live.queues["support"].callers] == [c]


SIMPLE = st.one_of(
    st.tuples(st.just("call"), st.sampled_from(["PJSIP/1", "Local/2@default"])),
    st.tuples(st.just("hangup"), st.integers(0, 7)),
    st.tuples(st.just("bridge"), st.integers(0, 7), st.integers(0, 7)),
    st.tuples(st.just("leave"), st.integers(0, 7)),
    st.tuples(st.just("join"), st.integers(0, 7)),
    st.tuples(st.just("queue_leave"), st.integers(0, 7)),
    st.tuples(st.just("device"), st.sampled_from(["Custom:700", "Custom:701"]),
              st.sampled_from(["INUSE", "NOT_INUSE", "RINGING", "ONHOLD"])),
)
#: a round: simple steps, outages (the steps inside happen while no client can hear) and dropped links
ROUND = st.lists(
    st.one_of(SIMPLE, SIMPLE, st.tuples(st.just("outage"), st.lists(SIMPLE, min_size=1, max_size=4)),
              st.tuples(st.just("drop"))),
    min_size=1, max_size=6,
)
#: before LiveState starts: a few calls, then anything (only the first sync can tell)
BEFORE = st.tuples(st.lists(st.tuples(st.just("call"), st.sampled_from(["PJSIP/1", "Local/2@default"])),
                            min_size=2, max_size=3), st.lists(SIMPLE, max_size=6)).map(lambda t: t[0] + t[1])


def _apply(srv: FakeAMIServer, op: Tuple[Any, ...]) -> None:
    names = list(srv.channels)
    pick = (lambda i: names[i % len(names)]) if names else None
    kind = op[0]
    if kind == "call":
        srv.simulate_call(op[1])
    elif kind == "device":
        srv.switch.set_device_state(op[1], op[2])
    elif pick is None:
        return
    elif kind == "hangup":
        srv.hangup(pick(op[1]))
    elif kind == "bridge" and pick(op[1]) != pick(op[2]):
        srv.switch.bridge(pick(op[1]), pick(op[2]))
    elif kind == "leave":
        srv.switch.leave(pick(op[1]))
    elif kind == "join":
        if not any(c.channel == pick(op[1]) for c in srv.queues["support"].callers):
            srv.switch.queue_join("support", pick(op[1]))
    elif kind == "queue_leave":
        srv.switch.queue_leave(pick(op[1]))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(BEFORE, st.lists(ROUND, min_size=1, max_size=3))
def test_tracked_state_equals_the_fakes_model_at_every_quiet_point(
    first: List[Tuple[Any, ...]], rounds: List[List[Tuple[Any, ...]]]
) -> None:
    with FakeAMIServer(hold_calls=True) as srv:
        srv.hints[("700", "default")] = ("Custom:700", 0)
        srv.hints[("701", "default")] = ("Custom:700&Custom:701", 0)
        for op in first:  # before LiveState exists: only a sync can tell
            _apply(srv, op)
        client = AMIClient("127.0.0.1", srv.port, "admin", "secret", backoff=Backoff(base=0.01, cap=0.05))
        with client.connect(), LiveState(client, retry=0.1) as live:
            assert live.wait_synced(5)
            assert wait_until(lambda: live_view(live) == fake_view(srv)), (live_view(live), fake_view(srv))
            for ops in rounds:
                for op in ops:
                    if op[0] == "drop":
                        srv.drop_all()
                    elif op[0] == "outage":  # what happens meanwhile is never sent: the next sync must find it
                        srv.stop()
                        for inner in op[1]:
                            _apply(srv, inner)
                        srv.start()
                    else:
                        _apply(srv, op)
                assert wait_until(lambda: live.state == "synced" and live_view(live) == fake_view(srv), 10), (
                    live.state, live_view(live), fake_view(srv))

"""LiveState over a real socket with the FakeAMIServer: sync on connect, events, reconnects, callbacks."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, List

import pytest

from amiclient import AMIClient, Backoff
from amiclient.live import Change, LiveState
from amiclient.testing import FakeAMIServer


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll a condition on state another thread changes (short waits on an Event, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.01)
    return True


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(hold_calls=True) as srv:
        yield srv


def connect(server: FakeAMIServer, **options: Any) -> AMIClient:
    options.setdefault("backoff", Backoff(base=0.02, cap=0.1))
    return AMIClient("127.0.0.1", server.port, "admin", "secret", timeout=5.0, **options).connect()


def test_syncs_calls_present_before_it_started(server: FakeAMIServer) -> None:
    first = server.simulate_call("Local/100@default")
    with connect(server) as client, LiveState(client) as live:
        assert live.wait_synced(5)
        assert live.state == "synced"
        names = {c.name for c in live.channels.values()}
        assert first is not None and first in names and len(names) == 2
        (call,) = live.calls.values()
        assert call.caller is not None and call.caller.channel == first
        assert set(live.queues) == {"support"}


def test_events_after_sync_start_and_end_calls(server: FakeAMIServer) -> None:
    with connect(server) as client, LiveState(client) as live:
        assert live.wait_synced(5)
        seen: List[str] = []
        live.on("call_started", lambda ch: seen.append("started"))
        live.on("call_ended", lambda ch: seen.append("ended"))
        before = live.channels
        name = server.simulate_call("PJSIP/200")
        assert wait_until(lambda: any(c.name == name for c in live.channels.values()))
        assert dict(before) == {}  # a mapping once returned never changes
        assert name is not None and server.hangup(name)
        assert wait_until(lambda: not live.channels and seen == ["started", "ended"])
        assert live.ended_calls[-1].channels == ()


def test_reconnect_drops_calls_ended_and_adds_calls_started_while_down(server: FakeAMIServer) -> None:
    kept = server.simulate_call("PJSIP/100")
    lost = server.simulate_call("PJSIP/101")
    states: List[str] = []
    with connect(server) as client, LiveState(client) as live:
        assert live.wait_synced(5)
        live.on("state", lambda ch: states.append(ch.new))
        assert len(live.calls) == 2
        server.stop()  # nobody hears what happens now
        assert lost is not None and server.hangup(lost)
        new = server.simulate_call("PJSIP/102")
        assert wait_until(lambda: live.state == "disconnected")
        server.start()
        assert wait_until(lambda: live.state == "synced", 10)
        names = {c.name for c in live.channels.values()}
        assert names == {kept, new}
        assert {c.caller.channel for c in live.calls.values() if c.caller} == {kept, new}
        assert "disconnected" in states and states[-1] == "synced"
        assert "syncing" in states[states.index("disconnected"):]


def test_callbacks_may_call_back_into_the_client_and_raise(server: FakeAMIServer) -> None:
    with connect(server) as client, LiveState(client) as live:
        assert live.wait_synced(5)
        answers: List[str] = []

        def boom(change: Change) -> None:
            raise RuntimeError("user bug")

        def ping(change: Change) -> None:
            answers.append(client.action("Ping").get("Ping", ""))

        live.on("channel_new", boom)
        live.on("call_started", ping)
        server.simulate_call("PJSIP/300")
        assert wait_until(lambda: answers == ["Pong"])
        assert len(live.channels) == 1


def test_unknown_callback_kind_is_refused(server: FakeAMIServer) -> None:
    with connect(server) as client, LiveState(client) as live:
        with pytest.raises(ValueError):
            live.on("call_exploded", lambda ch: None)


def test_close_unsubscribes_and_stops_its_thread(server: FakeAMIServer) -> None:
    with connect(server) as client:
        live = LiveState(client)
        assert live.wait_synced(5)
        live.close()
        live.close()
        assert live.state == "closed"
        dispatched = threading.Event()
        client.add_listener(lambda ev: dispatched.set(), "Newchannel")  # runs after any listener added before it
        server.simulate_call("PJSIP/400")
        assert dispatched.wait(5)
        assert not live.channels
        assert not any(t.name == "amiclient-live-sync" for t in threading.enumerate())


def test_live_state_made_before_connect_syncs_at_connect(server: FakeAMIServer) -> None:
    server.simulate_call("PJSIP/500")
    client = AMIClient("127.0.0.1", server.port, "admin", "secret")
    with LiveState(client) as live:
        assert not live.wait_synced(0.05) and live.state == "syncing"
        with client.connect():
            assert live.wait_synced(5)
            assert len(live.channels) == 1


def test_readers_on_other_threads_always_see_a_consistent_snapshot(server: FakeAMIServer) -> None:
    problems: List[str] = []
    stop = threading.Event()
    with connect(server) as client, LiveState(client) as live:
        assert live.wait_synced(5)

        def reader() -> None:
            while not stop.is_set():
                snap = live.snapshot()
                for call in snap.calls.values():
                    if not set(call.channels) <= set(snap.channels):
                        problems.append(f"call {call.linkedid} has channels not in the snapshot")
                for bridge in snap.bridges.values():
                    for uid in bridge.channels:
                        if uid not in snap.channels or snap.channels[uid].bridge_id != bridge.id:
                            problems.append(f"bridge {bridge.id} disagrees with channel {uid}")

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for i in range(40):
                a = server.simulate_call(f"Local/{i}@default")
                b = server.simulate_call(f"PJSIP/{i}")
                assert a is not None and b is not None
                server.switch.bridge(a, b)
                if i % 2:
                    server.hangup(a)
                    server.hangup(b)
            assert wait_until(lambda: len(live.calls) == 20 * 2, 10)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert problems == []


def test_events_are_applied_and_reported_on_the_dispatcher_thread(server: FakeAMIServer) -> None:
    with connect(server) as client, LiveState(client) as live:
        assert live.wait_synced(5)
        threads: List[str] = []
        live.on("channel_new", lambda ch: threads.append(threading.current_thread().name))
        server.simulate_call("PJSIP/600")
        assert wait_until(lambda: len(threads) == 1)
        assert threads[0].startswith("amiclient-dispatch")


def test_hostile_events_neither_raise_nor_corrupt_the_state(server: FakeAMIServer) -> None:
    with connect(server) as client, LiveState(client) as live:
        assert live.wait_synced(5)
        name = server.simulate_call("PJSIP/700")
        assert wait_until(lambda: len(live.channels) == 1)
        for headers in (
            {"Uniqueid": "x.1"},                                   # no channel name: not a channel
            {"Channel": "PJSIP/evil", "Uniqueid": "x.2", "ChannelState": "up!"},
            {"Channel": "PJSIP/evil2", "Uniqueid": "", "Linkedid": ""},
        ):
            server.emit("Newstate", **headers)
        server.emit("QueueCallerJoin", Queue="support", Uniqueid="q.1", Channel="PJSIP/q", Position="first")
        server.emit("BridgeEnter", BridgeUniqueid="b-none", Uniqueid="no-such-channel")
        server.emit("BridgeMerge", ToBridgeUniqueid="", FromBridgeUniqueid="")
        server.emit("Hangup", Uniqueid="never-seen")
        assert name is not None and server.hangup(name)
        assert wait_until(lambda: not any(c.name == name for c in live.channels.values()))
        assert {c.name for c in live.channels.values()} == {"PJSIP/evil"}
        assert live.channels["x.2"].state == 0
        assert [c.uniqueid for c in live.queues["support"].callers] == ["q.1"]


def test_closing_the_client_ends_the_sync_thread(server: FakeAMIServer) -> None:
    client = connect(server)
    live = LiveState(client)
    assert live.wait_synced(5)
    client.close()
    assert wait_until(lambda: not any(t.name == "amiclient-live-sync" for t in threading.enumerate()))
    assert live.state == "closed"
    live.close()  # still fine afterwards


def test_an_originated_call_is_marked_originated(server: FakeAMIServer) -> None:
    """The fake dials an originated channel as Asterisk 22 does (DialBegin with no calling channel)."""
    with connect(server) as client, LiveState(client) as live:
        assert live.wait_synced(5)
        client.originate("PJSIP/300", application="Wait", data="5")
        assert wait_until(lambda: any(c.direction == "originated" for c in live.calls.values()))
        (call,) = live.calls.values()
        assert call.caller is not None and call.caller.channel.startswith("PJSIP/300-")

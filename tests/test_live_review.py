"""Adversarial review of LiveState: its state must not claim "synced" for a sync the link outlived."""
from __future__ import annotations

import threading
from typing import Iterator, List

import pytest

from amiclient import AMIClient, Backoff
from amiclient.live import Change, LiveState
from amiclient.testing import FakeAMIServer

SECRET = "s3cr3t!"


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users={"admin": SECRET}) as srv:
        srv.hold_calls = True
        yield srv


def test_a_sync_that_ends_after_the_link_dropped_never_reports_synced(server: FakeAMIServer) -> None:
    server.simulate_call("Local/100@default")
    client = AMIClient("127.0.0.1", server.port, "admin", SECRET, backoff=Backoff(base=30, cap=30, jitter=0))
    states: List[str] = []
    changed = threading.Condition()
    finished = threading.Event()
    dropped = threading.Event()

    def on_state(change: Change) -> None:
        with changed:
            states.append(change.new)
            changed.notify_all()

    def on_channel(change: Change) -> None:  # runs on the sync thread for what the sync found
        if threading.current_thread().name != "amiclient-live-sync" or dropped.is_set():
            return
        dropped.set()
        try:
            server.drop_all(reset=True)  # the link drops after the snapshot was read, before the sync ends
            with changed:
                changed.wait_for(lambda: "disconnected" in states, 5)
        finally:
            finished.set()

    live = LiveState(client, retry=30)  # not connected yet: the first sync starts on connect()
    live.on("state", on_state)
    live.on("channel_new", on_channel)
    try:
        client.connect()
        assert finished.wait(10)
        with changed:
            assert "disconnected" in states, states
            changed.wait_for(lambda: states[-1] == "synced", 1.0)  # the sync thread ends now
            assert states[-1] != "synced", states
        assert live.state != "synced" and not live.wait_synced(0)
    finally:
        live.close()
        client.close()


def test_callbacks_never_run_on_the_io_thread_and_close_leaves_nothing(server: FakeAMIServer) -> None:
    client = AMIClient("127.0.0.1", server.port, "admin", SECRET, backoff=Backoff(base=0.02, cap=0.05, jitter=0))
    threads: List[str] = []
    synced_again = threading.Event()
    live = LiveState(client)
    live.on("*", lambda change: threads.append(threading.current_thread().name))
    live.on("state", lambda change: change.new == "synced" and len(threads) > 3 and synced_again.set())
    try:
        client.connect()
        assert live.wait_synced(5)
        client.originate("PJSIP/100", exten="200", context="default", priority=1)
        server.drop_all(reset=True)  # reconnect, then a resync
        assert synced_again.wait(10)
        held = live.queues, live.channels, live.calls
        with pytest.raises(TypeError):
            live.channels["x"] = None  # type: ignore[index]
        assert threads and not any(name.startswith("amiclient-io") for name in threads), set(threads)
    finally:
        live.close()
    assert held[1] is not None and client.connected
    client.close()

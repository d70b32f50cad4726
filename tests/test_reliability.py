"""Recovery: reconnect, keepalive, backpressure, shutdown, fork, and every fault the fake can inject."""
from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Iterator, List

import pytest

from amiclient import (
    AMIClient,
    AuthenticationError,
    Backoff,
    ClientClosed,
    ConnectionLost,
    ConnectionState,
    Event,
    ProtocolError,
    StateChange,
)
from amiclient.shared import close_shared_client, options_from_env, shared_client
from amiclient.testing import FakeAMIServer, Fault, Recorder

USERS = {"admin": "s3cr3t!"}
FAST = Backoff(base=0.02, factor=2.0, cap=0.2, jitter=0.5)


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users=USERS) as srv:
        yield srv


class States(Recorder[StateChange]):
    """Records state changes; lets a test wait for one."""

    def reached(self, state: ConnectionState, count: int = 1, timeout: float = 10.0) -> StateChange:
        return self.wait_for(count, lambda change: change.state == state, timeout)[count - 1]

    def of(self, state: ConnectionState) -> List[StateChange]:
        return [change for change in self.items if change.state == state]


def connect(server: FakeAMIServer, states: States, **options: Any) -> AMIClient:
    options.setdefault("backoff", FAST)
    options.setdefault("timeout", 5.0)
    client = AMIClient("127.0.0.1", server.port, "admin", USERS["admin"], **options)
    client.on_state(states)
    return client.connect()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition owned by another thread (no event to wait on), bounded in time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        threading.Event().wait(0.01)


def assert_counts_add_up(client: AMIClient) -> None:
    stats = client.stats
    assert stats.events_received == stats.events_dispatched + stats.events_dropped + stats.events_queued


def test_reconnect_reapplies_mask_and_filters_and_keeps_listeners(server: FakeAMIServer) -> None:
    states = States()
    hangups: List[Event] = []
    got = threading.Event()
    with connect(server, states) as client:
        client.add_listener(lambda e: (hangups.append(e), got.set()), event=["Hangup", "Newchannel"])
        client.set_events("call")
        client.add_filter("Event: Hangup")
        server.drop_all()
        states.reached(ConnectionState.DISCONNECTED)
        states.reached(ConnectionState.RECONNECTED)
        assert client.wait_connected(5) and client.stats.reconnects == 1
        session = [s for s in server.sessions if s.authenticated][-1]
        assert session.event_mask and session.filters
        received = [p.get("Action") for p in session.received]
        assert received[-2:] == ["Events", "Filter"]
        server.emit("Newchannel", Channel="SIP/filtered-out")
        server.emit("Hangup", Channel="SIP/1")
        assert got.wait(5)
        assert client.ping().ok
        assert [e["Channel"] for e in hangups] == ["SIP/1"]
        assert_counts_add_up(client)
    states.reached(ConnectionState.CLOSED)


def test_in_flight_actions_fail_and_are_never_resent(server: FakeAMIServer) -> None:
    states = States()
    with connect(server, states, timeout=30) as client:
        server.set_fault(Fault.NO_ANSWER)
        future = client.send_action("Originate", Channel="Local/100@test", Application="Wait", Data="1", Async="true")
        assert server.wait_for_actions(3, 5)
        server.clear_faults()
        server.drop_all()
        with pytest.raises(ConnectionLost):
            future.result(5)
        states.reached(ConnectionState.RECONNECTED)
        assert client.ping().ok
        originates = [p for p in server.received_actions if p.get("Action") == "Originate"]
        assert len(originates) == 1


def test_actions_wait_for_the_link_while_reconnecting(server: FakeAMIServer) -> None:
    states = States()
    with connect(server, states, backoff=Backoff(base=0.3, cap=0.3, jitter=0)) as client:
        server.drop_all()
        states.reached(ConnectionState.RECONNECTING)
        assert client.action("Ping", timeout=5).ok  # waits for the reconnect, then runs
        server.stop()
        states.reached(ConnectionState.RECONNECTING, count=2)
        started = time.monotonic()
        with pytest.raises(ConnectionLost):
            client.action("Ping", timeout=0.2)
        assert time.monotonic() - started < 1.5


def test_changed_password_retries_with_backoff_and_reports(server: FakeAMIServer) -> None:
    states = States()
    with connect(server, states) as client:
        server.set_fault(Fault.REFUSE_LOGIN)
        server.drop_all()
        failed = states.reached(ConnectionState.RECONNECT_FAILED, count=3)
        assert isinstance(failed.reason, AuthenticationError)
        attempts = states.of(ConnectionState.RECONNECTING)
        assert [a.attempt for a in attempts[:3]] == [1, 2, 3]
        assert attempts[2].delay >= attempts[0].delay * 0.5  # growing, never a tight loop
        server.clear_faults()
        states.reached(ConnectionState.RECONNECTED)
        assert client.ping().ok


def test_keepalive_detects_a_silent_peer(server: FakeAMIServer) -> None:
    states = States()
    with connect(server, states, keepalive=0.2, ping_timeout=0.3) as client:
        server.set_fault(Fault.NO_ANSWER)
        lost = states.reached(ConnectionState.DISCONNECTED, timeout=5)
        assert "keepalive" in str(lost.reason)
        server.clear_faults()
        states.reached(ConnectionState.RECONNECTED)
        assert client.ping().ok


FAULTS = [
    (Fault.CLOSE_MID_PACKET, {"times": 1}, ConnectionLost),
    (Fault.RESET, {"times": 1}, ConnectionLost),
    (Fault.OVERSIZED, {"times": 1, "size": 2 * 1024 * 1024}, ProtocolError),
]


@pytest.mark.parametrize("fault,options,error", FAULTS, ids=[f[0].value for f in FAULTS])
def test_fault_fails_the_caller_then_the_client_recovers(server: FakeAMIServer, fault: Fault, options: Any,
                                                         error: type) -> None:
    states = States()
    seen = threading.Event()
    with connect(server, states, max_packet_size=1024 * 1024) as client:
        client.add_filter("Event: UserEvent")
        client.add_listener(lambda e: seen.set(), event="UserEvent")
        server.set_fault(fault, **options)
        started = time.monotonic()
        with pytest.raises(error):
            client.action("Ping", timeout=5)
        assert time.monotonic() - started < 5
        states.reached(ConnectionState.RECONNECTED)
        client.user_event("AfterFault")
        assert seen.wait(5)
        assert [s.filters for s in server.sessions if s.authenticated][-1]
        assert_counts_add_up(client)


def test_drip_fed_bytes_still_frame(server: FakeAMIServer) -> None:
    states = States()
    with connect(server, states) as client:
        server.set_fault(Fault.DRIP)
        assert client.command("core show uptime").startswith("System uptime")


def test_stall_and_delayed_login_time_out_then_recover(server: FakeAMIServer) -> None:
    states = States()
    with connect(server, states, connect_timeout=0.3, timeout=0.5) as client:
        server.set_fault(Fault.DELAY_LOGIN, delay=2.0)
        server.drop_all()
        failed = states.reached(ConnectionState.RECONNECT_FAILED)
        assert "no answer" in str(failed.reason)
        server.set_fault(Fault.STALL, times=1)
        states.reached(ConnectionState.RECONNECT_FAILED, count=2)
        server.clear_faults()
        states.reached(ConnectionState.RECONNECTED)
        assert client.ping().ok


def test_server_restart_on_same_port(server: FakeAMIServer) -> None:
    states = States()
    with connect(server, states) as client:
        server.restart()
        states.reached(ConnectionState.RECONNECTED)
        assert client.ping().ok and client.stats.reconnects == 1


def test_close_during_backoff_is_prompt_and_joins(server: FakeAMIServer) -> None:
    states = States()
    client = connect(server, states, backoff=Backoff(base=30, cap=30, jitter=0))
    server.stop()
    states.reached(ConnectionState.RECONNECTING)
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 1.0
    with pytest.raises(ClientClosed):
        client.send_action("Ping")


def test_close_from_a_state_callback(server: FakeAMIServer) -> None:
    closed = threading.Event()
    client = AMIClient("127.0.0.1", server.port, "admin", USERS["admin"], backoff=FAST)

    def on_state(change: StateChange) -> None:
        if change.state == ConnectionState.DISCONNECTED:
            client.close()
            closed.set()

    client.on_state(on_state)
    client.connect()
    server.drop_all()
    assert closed.wait(5) and client.closed


def test_no_reconnect_fails_fast(server: FakeAMIServer) -> None:
    states = States()
    with connect(server, states, reconnect=False) as client:
        server.drop_all()
        states.reached(ConnectionState.DISCONNECTED)
        with pytest.raises(ConnectionLost):
            client.action("Ping")
        assert not states.of(ConnectionState.RECONNECTING)


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_bounded_queue_drops_and_counts(server: FakeAMIServer, policy: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="amiclient")
    states = States()
    release, entered = threading.Event(), threading.Event()
    delivered: List[int] = []
    with connect(server, states, event_queue_size=100, overflow=policy, backlog_warning=50) as client:
        def slow(event: Event) -> None:
            entered.set()
            release.wait(10)
            delivered.append(int(event["Seq"]))

        client.add_listener(slow, event="UserEvent")
        server.emit("UserEvent", Seq="0")
        assert entered.wait(5)
        for i in range(1, 501):
            server.emit("UserEvent", Seq=str(i))
        assert client.ping().ok  # events before the Pong are in
        wait_until(lambda: client.stats.events_received >= 502)  # FullyBooted + 501 UserEvents
        stats = client.stats
        # The bound counts the event the stuck listener holds: it plus 99 wait.
        assert stats.events_queued == 100 and stats.queue_high_water == 100 and stats.events_dropped == 401
        assert_counts_add_up(client)
        release.set()
        wait_until(lambda: client.stats.events_queued == 0)
        expected = list(range(402, 501)) if policy == "drop_oldest" else list(range(1, 100))
        assert delivered == [0] + expected
        warnings = [r for r in caplog.records if "wait for listeners" in r.getMessage()]
        assert len(warnings) == 1


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_child_reconnects_and_parent_keeps_its_session(server: FakeAMIServer) -> None:
    states = States()
    with connect(server, states) as client:
        accepted = server.connections_accepted
        pid = os.fork()
        if pid == 0:  # child: inherited threads are gone; first use must reconnect
            code = 1
            try:
                code = 0 if client.ping().ok and client.connected else 2
                client.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert server.connections_accepted == accepted + 1
        assert client.ping().ok and client.stats.reconnects == 0


def test_shared_client_is_one_lazy_client(server: FakeAMIServer) -> None:
    try:
        env = {"AMI_HOST": "127.0.0.1", "AMI_PORT": str(server.port), "AMI_USER": "admin", "AMI_SECRET": USERS["admin"]}
        options = options_from_env(env)
        first = shared_client(**options)
        assert not first.connected
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert all(pool.map(lambda _: shared_client().ping().ok, range(32)))
        assert shared_client() is first and server.connections_accepted == 1
    finally:
        close_shared_client()


@pytest.mark.soak
def test_soak_events_and_actions_across_forced_reconnects(server: FakeAMIServer) -> None:
    """200k events and 20k actions from 16 threads across 5 forced reconnects."""
    states = States()
    by_name: Dict[str, int] = {}

    def on_event(event: Event) -> None:  # the dispatcher is one thread: no lock needed
        by_name[event.name] = by_name.get(event.name, 0) + 1

    client = AMIClient("127.0.0.1", server.port, "admin", USERS["admin"], backoff=FAST, timeout=10)
    client.add_listener(on_event)
    client.on_state(states)
    with client.connect():
        outcomes: List[str] = []
        outcome_lock = threading.Lock()

        def worker(n: int) -> None:
            for _ in range(1250):
                try:
                    response = client.action("Ping", timeout=10)
                    result = "ok" if response.ok else "error"
                except (ConnectionLost, ProtocolError):
                    result = "lost"
                with outcome_lock:
                    outcomes.append(result)

        def flood() -> None:
            for burst in range(5):
                for i in range(40_000):
                    server.emit("Newchannel", Channel=f"SIP/{burst}-{i}", Uniqueid=f"{burst}.{i}")
                server.drop_all()
                states.reached(ConnectionState.RECONNECTED, count=burst + 1, timeout=30)

        with concurrent.futures.ThreadPoolExecutor(17) as pool:
            jobs = [pool.submit(worker, n) for n in range(16)] + [pool.submit(flood)]
            for job in jobs:
                job.result(timeout=110)
        assert len(outcomes) == 20_000 and set(outcomes) <= {"ok", "lost"}
        # Only actions in flight when a link drops fail (one per thread at most); the rest wait for the next link.
        assert outcomes.count("lost") <= 16 * 5
        assert client.stats.reconnects == 5
        wait_until(lambda: client.stats.events_queued == 0, timeout=30)
        assert_counts_add_up(client)
        stats = client.stats
        assert stats.events_dropped == 0 and sum(by_name.values()) == stats.events_dispatched == stats.events_received
        assert by_name["Newchannel"] > 0 and by_name["FullyBooted"] == 6

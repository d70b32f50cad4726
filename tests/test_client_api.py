"""One API, two transports: the same tests against AMIClient (TCP) and AMIHTTPClient (HTTP and HTTPS).

Every test takes ``any_client``: a connected client of each kind, against a
FakeAMIServer (behind a FakeAJAMServer for HTTP), so the interfaces cannot
drift apart.
"""
from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any, Callable, Iterator, List, Union

import pytest

from amiclient import (
    ActionError,
    ActionFuture,
    ActionTimeout,
    AMIClient,
    AMIConnectionError,
    AMIHTTPClient,
    AuthenticationError,
    ClientClosed,
    ClientStats,
    ConnectionState,
    Event,
    Response,
    StateChange,
)
from amiclient.testing import FakeAMIServer, Recorder, build_response

from .http_support import SECRET, ajam_servers, client_context, server_context

AnyClient = Union[AMIClient, AMIHTTPClient]


class Harness:
    """A connected client, its fake server and a factory for more clients of the same kind."""

    def __init__(self, kind: str, server: FakeAMIServer, factory: Callable[..., AnyClient]) -> None:
        self.kind = kind
        self.server = server
        self.factory = factory
        self.client = factory()
        self.others: List[AnyClient] = []

    def make(self, **options: Any) -> AnyClient:
        client = self.factory(**options)
        self.others.append(client)
        return client

    def sync_events(self) -> None:
        """Return once events emitted from now on reach listeners (HTTP turns events on asynchronously)."""
        seen = threading.Event()
        self.client.add_listener(lambda event: seen.set(), event="UserEvent", filter=lambda e: e.get("UserEvent") == "Sync")
        for _ in range(200):
            self.server.emit("UserEvent", UserEvent="Sync")
            if seen.wait(0.05):
                return
        raise AssertionError("events never reached the listener")


@pytest.fixture(params=["tcp", "http", "https"])
def any_client(request: pytest.FixtureRequest) -> Iterator[Harness]:
    kind = request.param
    if kind == "tcp":
        with FakeAMIServer(users={"admin": SECRET}) as server:
            def tcp(**options: Any) -> AnyClient:
                settings: dict = dict(username="admin", secret=SECRET, timeout=5.0, reconnect=False)  # type: ignore[type-arg]
                settings.update(options)
                return AMIClient("127.0.0.1", server.port, **settings)
            harness = Harness(kind, server, tcp)
            yield from _run(harness)
        return
    tls = server_context(request.getfixturevalue("certificate")) if kind == "https" else None
    context = client_context(request.getfixturevalue("certificate")) if kind == "https" else None
    with ajam_servers(tls) as (server, ajam):
        def http(**options: Any) -> AnyClient:
            settings: dict = dict(username="admin", secret=SECRET, timeout=5.0, tls=context, poll_timeout=5.0)  # type: ignore[type-arg]
            settings.update(options)
            return AMIHTTPClient(ajam.url, **settings)
        harness = Harness(kind, server, http)
        yield from _run(harness)


def _run(harness: Harness) -> Iterator[Harness]:
    try:
        yield harness
    finally:
        for client in [harness.client] + harness.others:
            client.close()


# ---------------------------------------------------------------------- lifecycle


def test_connect_close_and_context_manager(any_client: Harness) -> None:
    client = any_client.client
    states: Recorder[StateChange] = Recorder()
    client.on_state(states)
    assert not client.connected and not client.closed
    with pytest.raises(AMIConnectionError, match="not connected"):
        client.ping()
    assert client.connect() is client and client.connect() is client  # idempotent
    assert client.connected and client.wait_connected(0)
    assert states.wait_for(1)[0].state is ConnectionState.CONNECTED
    client.close()
    client.close()
    assert client.closed and not client.connected
    assert states.wait_for(2)[-1].state is ConnectionState.CLOSED
    with pytest.raises(ClientClosed):
        client.ping()
    with pytest.raises(ClientClosed):
        client.send_action("Ping")
    with pytest.raises(ClientClosed):
        client.connect()
    with any_client.make() as other:
        assert other.connected and other.ping().ok
    assert other.closed


def test_lazy_client_connects_on_first_use(any_client: Harness) -> None:
    client = any_client.make(lazy=True)
    assert not client.connected
    assert client.ping().ok and client.connected


def test_wrong_secret_raises_authentication_error_and_never_shows_it(any_client: Harness, caplog: Any) -> None:
    caplog.set_level("DEBUG")
    client = any_client.make(secret="wrong-secret-123")
    with pytest.raises(AuthenticationError) as info:
        client.connect()
    assert "wrong-secret-123" not in str(info.value) and "wrong-secret-123" not in repr(client)
    assert "wrong-secret-123" not in caplog.text and SECRET not in caplog.text
    assert not client.connected


# ---------------------------------------------------------------------- actions


def test_action_command_and_errors(any_client: Harness) -> None:
    client = any_client.client.connect()
    response = client.action("Ping", ActionID="mine-1")
    assert isinstance(response, Response) and response["Ping"] == "Pong" and response.action_id == "mine-1"
    assert client.command("core show uptime").startswith("System uptime")
    with pytest.raises(ActionError, match="Invalid/unknown command") as info:
        client.action("NoSuchAction")
    assert info.value.response.status == "Error"
    response = client.action({"Action": "DBPut", "Family": "f", "Key": "k"}, {"Val": "v"})
    assert any_client.server.db[("f", "k")] == "v"


def test_send_action_returns_futures(any_client: Harness) -> None:
    client = any_client.client.connect()
    futures = [client.send_action("Ping", ActionID=f"p{i}") for i in range(20)]
    assert all(isinstance(f, ActionFuture) for f in futures)
    done, _ = concurrent.futures.wait(futures, timeout=10)
    assert len(done) == 20
    assert [f.result().action_id for f in futures] == [f"p{i}" for i in range(20)]
    error = client.send_action("NoSuchAction")
    assert not client.wait(error).ok  # errors are responses, not exceptions


def test_done_callbacks_run_off_the_internal_threads(any_client: Harness) -> None:
    client = any_client.client.connect()
    names: Recorder[str] = Recorder()
    results: Recorder[Response] = Recorder()

    def callback(future: concurrent.futures.Future[Response]) -> None:
        names(threading.current_thread().name)
        results(client.action("Ping"))  # calling back into the client works

    for _ in range(3):
        client.send_action("Ping").add_done_callback(callback)
    assert len(results.wait_for(3, timeout=10)) == 3
    assert not any(n.startswith(("amiclient-io", "amiclient-http")) for n in names.items), names.items


def test_cr_lf_raises_value_error_and_sends_nothing(any_client: Harness) -> None:
    client = any_client.client.connect()
    before = len(any_client.server.received_actions)
    for bad in ({"Channel": "a\r\nAction: Hangup"}, {"Variable": {"k": "v\n"}}):
        with pytest.raises(ValueError, match="CR or LF"):
            client.action("Setvar", bad)
        with pytest.raises(ValueError, match="CR or LF"):
            client.send_action("Setvar", bad)
    assert client.ping().ok
    assert [p.action for p in any_client.server.received_actions[before:] if p.action != "Ping"] == []


def test_slow_answer_raises_action_timeout(any_client: Harness) -> None:
    any_client.server.add_handler(
        "Slow", lambda session, packet: build_response(packet, "late") if session.sleep(3) else None)
    client = any_client.client.connect()
    with pytest.raises(ActionTimeout):
        client.action("Slow", timeout=0.3)
    future = client.send_action("Slow", timeout=0.3)
    with pytest.raises(ActionTimeout):
        client.wait(future)
    assert client.stats.actions_timed_out >= 1


def test_many_threads_share_one_client(any_client: Harness) -> None:
    client = any_client.client.connect()

    def work(n: int) -> int:
        bad = 0
        for i in range(15):
            client.db_put("load", f"k{n}", f"{n}-{i}")
            bad += client.db_get("load", f"k{n}") != f"{n}-{i}"
            bad += client.action("Ping", ActionID=f"t{n}-{i}").action_id != f"t{n}-{i}"
        return bad

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(work, range(8))) == 0


# ---------------------------------------------------------------------- helpers


def test_helpers(any_client: Harness) -> None:
    client = any_client.client.connect()
    assert client.ping().ok
    client.db_put("fam", "key", "value")
    assert client.db_get("fam", "key") == "value"
    assert client.db_get("fam", "missing") is None
    assert client.db_get_tree("fam") == {"/fam/key": "value"}
    client.setvar("GLOBALX", "42")
    assert client.getvar("GLOBALX") == "42"
    assert client.core_settings()["AMIversion"]
    assert client.originate("Local/100@test", exten="100", context="test", priority=1).ok
    assert isinstance(client.core_show_channels(), list)
    assert client.user_event("Hello", Key="v").ok


# ---------------------------------------------------------------------- listeners and state


def test_listeners_on_and_remove_listener(any_client: Harness) -> None:
    client = any_client.client.connect()
    seen: Recorder[Event] = Recorder()
    decorated: Recorder[Event] = Recorder()
    handle = client.add_listener(seen, event="UserEvent", filter=lambda e: e.get("UserEvent") == "Go")

    @client.on("Hangup")
    def on_hangup(event: Event) -> None:
        decorated(event)

    any_client.sync_events()
    for i in range(30):
        any_client.server.emit("UserEvent", UserEvent="Go", Seq=str(i))
    any_client.server.emit("Hangup", Channel="PJSIP/1-0001", Cause="16")
    assert [int(e["Seq"]) for e in seen.wait_for(30)] == list(range(30))  # in order
    assert decorated.wait_for(1)[0]["Channel"] == "PJSIP/1-0001"
    assert client.remove_listener(handle) and not client.remove_listener(handle)
    any_client.server.emit("UserEvent", UserEvent="Go", Seq="late")
    any_client.server.emit("Hangup", Channel="PJSIP/2-0002", Cause="16")
    decorated.wait_for(2)  # the late UserEvent came before this one
    assert len(seen.items) == 30
    stats = client.stats
    assert isinstance(stats, ClientStats) and stats.events_received >= 32 and stats.actions_sent >= 1
    assert stats.events_received == stats.events_dispatched + stats.events_dropped + stats.events_queued


def test_listener_added_after_connect_gets_events_and_may_call_the_client(any_client: Harness) -> None:
    client = any_client.client.connect()
    answers: Recorder[str] = Recorder()
    client.add_listener(lambda event: answers(client.getvar("V") or "unset"), event="UserEvent",
                        filter=lambda e: e.get("UserEvent") == "Ask")
    any_client.sync_events()
    client.setvar("V", "here")
    any_client.server.emit("UserEvent", UserEvent="Ask")
    assert answers.wait_for(1) == ["here"]


def test_close_from_a_listener(any_client: Harness) -> None:
    client = any_client.client.connect()
    closed = threading.Event()

    def close_me(event: Event) -> None:
        client.close()
        closed.set()

    client.add_listener(close_me, event="UserEvent", filter=lambda e: e.get("UserEvent") == "Bye")
    any_client.sync_events()
    any_client.server.emit("UserEvent", UserEvent="Bye")
    assert closed.wait(10) and client.closed


def test_on_state_and_remove_state_listener(any_client: Harness) -> None:
    client = any_client.client
    states: Recorder[StateChange] = Recorder()
    gone: Recorder[StateChange] = Recorder()
    client.on_state(states)
    client.on_state(gone)
    assert client.remove_state_listener(gone) and not client.remove_state_listener(gone)
    client.connect()
    client.close()
    seen = [s.state for s in states.wait_for(1, where=lambda s: s.state is ConnectionState.CLOSED)]
    seen = [s.state for s in states.items]
    assert seen[0] is ConnectionState.CONNECTED and seen[-1] is ConnectionState.CLOSED
    assert gone.items == []


def test_add_filter_and_set_events(any_client: Harness) -> None:
    client = any_client.client.connect()
    seen: Recorder[Event] = Recorder()
    client.add_listener(seen, event=["UserEvent", "Hangup"])
    any_client.sync_events()
    assert client.add_filter("Event: Hangup").ok
    any_client.server.emit("UserEvent", UserEvent="Filtered")
    any_client.server.emit("Hangup", Channel="PJSIP/9-0009", Cause="16")
    seen.wait_for(1, where=lambda e: e.name == "Hangup")
    assert not any(e.get("UserEvent") == "Filtered" for e in seen.items)
    assert client.set_events("call").ok
    any_client.server.emit("Hangup", Channel="PJSIP/8-0008", Cause="16")
    seen.wait_for(1, where=lambda e: e.get("Channel") == "PJSIP/8-0008")


# ---------------------------------------------------------------------- parity: the rest of the list


def test_typed_actions_namespace(any_client: Harness) -> None:
    client = any_client.client.connect()
    assert client.actions.ping().ok
    assert client.actions.db_put(family="typed", key="k", val="v").ok
    assert any_client.server.db[("typed", "k")] == "v"
    assert client.actions.db_get(family="typed", key="k").ok
    with pytest.raises(ActionError):
        client.actions.db_get(family="typed", key="missing")


def test_validate_strict_raises_value_error_and_sends_nothing(any_client: Harness) -> None:
    strict = any_client.make(validate="strict").connect()
    before = len(any_client.server.received_actions)
    with pytest.raises(ValueError, match="NoSuchHeader"):
        strict.action("Ping", NoSuchHeader="x")
    with pytest.raises(ValueError, match="NoSuchHeader"):
        strict.send_action("Ping", NoSuchHeader="x")
    assert not any(p.get("NoSuchHeader") for p in any_client.server.received_actions[before:])
    off = any_client.make(validate="off").connect()
    assert off.action("Ping", NoSuchHeader="x").ok  # the server decides
    with pytest.raises(ValueError, match="validate"):
        any_client.make(validate="loud")


def test_wait_connected_and_connected(any_client: Harness) -> None:
    client = any_client.client
    assert not client.connected and client.wait_connected(0.05) is False
    client.connect()
    assert client.connected and client.wait_connected(0) is True
    client.close()
    assert not client.connected and client.wait_connected(0.05) is False


def test_stats_invariants(any_client: Harness) -> None:
    client = any_client.client.connect()
    first = client.stats
    assert first.connected and first.actions_in_flight == 0
    for _ in range(5):
        client.ping()
    futures = [client.send_action("Ping") for _ in range(5)]
    assert all(client.wait(f).ok for f in futures)
    after = client.stats
    assert after.actions_sent - first.actions_sent == 10  # exactly the actions of the caller
    assert after.actions_in_flight == 0 and after.actions_timed_out == 0
    assert after.bytes_out > first.bytes_out and after.bytes_in > first.bytes_in
    assert after.events_received == after.events_dispatched + after.events_dropped + after.events_queued
    client.close()
    assert not client.stats.connected and client.stats.actions_in_flight == 0


def test_an_event_emitted_right_after_the_first_add_listener_is_delivered(any_client: Harness) -> None:
    client = any_client.client.connect()
    seen: Recorder[Event] = Recorder()
    client.add_listener(seen, event="UserEvent")  # no sync_events(): add_listener itself must be enough
    any_client.server.emit("UserEvent", UserEvent="First")
    assert seen.wait_for(1, timeout=10)[0]["UserEvent"] == "First"


def test_add_listener_from_a_done_callback_gets_events(any_client: Harness) -> None:
    client = any_client.client.connect()
    seen: Recorder[Event] = Recorder()
    added = threading.Event()

    def callback(future: concurrent.futures.Future[Response]) -> None:
        client.add_listener(seen, event="UserEvent")
        added.set()

    client.send_action("Ping").add_done_callback(callback)
    assert added.wait(10)
    for _ in range(100):  # from the dispatcher, add_listener cannot wait for the session: events start soon after
        any_client.server.emit("UserEvent", UserEvent="Late")
        if seen.items:
            break
        threading.Event().wait(0.05)
    assert seen.items and seen.items[0]["UserEvent"] == "Late"


def test_close_with_requests_in_flight_is_prompt_and_fails_them(any_client: Harness) -> None:
    any_client.server.add_handler(
        "Slow", lambda session, packet: build_response(packet, "late") if session.sleep(5) else None)
    client = any_client.client.connect()
    futures = [client.send_action("Slow", timeout=10) for _ in range(6)]
    failed: Recorder[BaseException] = Recorder()
    blocked = threading.Thread(target=lambda: _capture(lambda: client.action("Slow", timeout=10), failed))
    blocked.start()
    while len(any_client.server.received_actions) == 0 or not any(
            p.action == "Slow" for p in any_client.server.received_actions):
        threading.Event().wait(0.01)
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 2.0
    blocked.join(5)
    assert isinstance(failed.wait_for(1)[0], ClientClosed)
    for future in futures:
        assert isinstance(future.exception(5), ClientClosed)


def _capture(function: Callable[[], Any], into: Recorder[BaseException]) -> None:
    try:
        function()
    except BaseException as exc:
        into(exc)


def test_listeners_replacing_themselves_lose_no_event(any_client: Harness) -> None:
    client = any_client.client.connect()
    got: Recorder[int] = Recorder()
    lock = threading.Lock()
    current: List[Any] = []

    def listener(event: Event) -> None:
        seq = int(event["Seq"])
        got(seq)
        stop.wait(0.002)  # a listener slower than the events: the poller reads ahead
        if seq % 10 == 9:  # the only listener goes and a new one comes, from inside the listener
            with lock:
                client.remove_listener(current.pop())
                current.append(client.add_listener(listener, event="UserEvent"))

    with lock:
        current.append(client.add_listener(listener, event="UserEvent"))
    stop = threading.Event()

    def emit() -> None:
        for seq in range(400):
            if stop.is_set():
                return
            any_client.server.emit("UserEvent", UserEvent="Seq", Seq=str(seq))
            stop.wait(0.001)

    emitter = threading.Thread(target=emit)
    emitter.start()
    try:
        got.wait_for(1, where=lambda n: n == 399, timeout=20)
    finally:
        stop.set()
        emitter.join(5)
    assert got.items == list(range(400)), [n for n in range(400) if n not in got.items][:10]


def test_replacing_the_only_listener_loses_no_event_sent_after_the_new_one(any_client: Harness) -> None:
    client = any_client.client.connect()
    for round_ in range(5):
        old = client.add_listener(lambda e: None, event="UserEvent")
        any_client.sync_events()  # events flow; over HTTP a WaitEvent now waits in the server
        seen: Recorder[Event] = Recorder()
        client.remove_listener(old)
        new = client.add_listener(seen, event="UserEvent", filter=lambda e: e.get("UserEvent") == "After")
        any_client.server.emit("UserEvent", UserEvent="After", Round=str(round_))
        assert seen.wait_for(1, timeout=10)[0]["Round"] == str(round_)
        client.remove_listener(new)


def test_close_from_a_done_callback_with_requests_in_flight(any_client: Harness) -> None:
    any_client.server.add_handler(
        "Slow", lambda session, packet: build_response(packet, "late") if session.sleep(5) else None)
    client = any_client.client.connect()
    slow = [client.send_action("Slow", timeout=10) for _ in range(3)]
    called: Recorder[str] = Recorder()
    for future in slow:
        future.add_done_callback(lambda f: called(type(f.exception()).__name__))
    closed = threading.Event()

    def close_it(future: Any) -> None:
        client.close()
        closed.set()

    client.send_action("Ping", timeout=0.5).add_done_callback(close_it)  # times out behind the slow ones
    assert closed.wait(5) and client.closed
    assert called.wait_for(3, timeout=5) == ["ClientClosed"] * 3


def test_action_timeout_is_honoured_promptly(any_client: Harness) -> None:
    any_client.server.add_handler(
        "Slow", lambda session, packet: build_response(packet, "late") if session.sleep(3) else None)
    client = any_client.client.connect()
    for timeout in (0.2, 0.5):
        started = time.monotonic()
        with pytest.raises(ActionTimeout):
            client.action("Slow", timeout=timeout)
        assert timeout <= time.monotonic() - started + 0.01 < timeout + 0.3
        started = time.monotonic()
        with pytest.raises(ActionTimeout):
            client.wait(client.send_action("Slow", timeout=timeout))
        assert time.monotonic() - started < timeout + 0.3

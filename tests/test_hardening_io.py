"""Issue 7 (hardening), the io side: callbacks, lazy connect, blocked writes, deadlines, keepalive, lifecycle, fork, TLS."""
from __future__ import annotations

import os
import signal
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest

from amiclient import (
    ActionFuture,
    ActionTimeout,
    AMIClient,
    AMIConnectionError,
    AMIError,
    Backoff,
    ConnectionLost,
    ConnectionState,
    Event,
    StateChange,
)
from amiclient.shared import close_shared_client, shared_client
from amiclient.testing import FakeAMIServer, Fault, Recorder, TLSFront

USERS = {"admin": "s3cr3t!"}
FAST = Backoff(base=0.02, factor=2.0, cap=0.2, jitter=0.5)
SLACK = 0.1  # the promise is 50 ms; a shared CI machine gets a little more


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users=USERS) as srv:
        yield srv


def make_client(server: FakeAMIServer, **options: Any) -> AMIClient:
    options.setdefault("reconnect", False)
    options.setdefault("timeout", 5.0)
    return AMIClient("127.0.0.1", server.port, "admin", USERS["admin"], **options)


class States(Recorder[StateChange]):
    def reached(self, state: ConnectionState, count: int = 1, timeout: float = 10.0) -> StateChange:
        return self.wait_for(count, lambda change: change.state == state, timeout)[count - 1]

    def of(self, state: ConnectionState) -> List[StateChange]:
        return [change for change in self.items if change.state == state]


def in_thread(function: Callable[[], Any]) -> Tuple[threading.Thread, List[Any]]:
    """Run ``function`` on a thread; the list gets ``(elapsed, result or exception)``."""
    outcome: List[Any] = []

    def run() -> None:
        started = time.monotonic()
        try:
            result: Any = function()
        except BaseException as exc:  # noqa: B902 - reported to the test
            result = exc
        outcome.append((time.monotonic() - started, result))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def slow_answer(server: FakeAMIServer, seconds: float) -> None:
    """``Slow`` answers after ``seconds`` (the session is busy meanwhile, like Asterisk)."""
    def handler(session: Any, packet: Any) -> Any:
        session.sleep(seconds)
        return [("Response", "Success"), ("ActionID", packet.get("ActionID", ""))]
    server.add_handler("Slow", handler)


# --------------------------------------------------------------------------- 1. done-callbacks


def test_done_callbacks_never_run_on_the_io_thread_nor_delay_other_answers(server: FakeAMIServer) -> None:
    slow_answer(server, 0.2)
    release, blocking_entered, nested_done = threading.Event(), threading.Event(), threading.Event()
    callback_threads: List[str] = []
    nested: List[bool] = []
    with make_client(server) as client:
        def blocking(future: ActionFuture) -> None:
            callback_threads.append(threading.current_thread().name)
            blocking_entered.set()
            release.wait(10)

        def calls_back(future: ActionFuture) -> None:
            callback_threads.append(threading.current_thread().name)
            nested.append(client.action("Ping", timeout=2).ok and future.result(0).ok)
            nested_done.set()

        try:
            client.send_action("Slow").add_done_callback(blocking)
            client.send_action("Slow").add_done_callback(calls_back)
            assert blocking_entered.wait(5)
            started = time.monotonic()
            for _ in range(5):  # other callers: never behind a blocked callback
                assert client.action("Ping", timeout=1).ok
            assert time.monotonic() - started < 1.0
            assert nested_done.wait(5) and nested == [True]
        finally:
            release.set()
        assert callback_threads and not any(name.startswith("amiclient-io") for name in callback_threads)
        done = client.send_action("Ping")
        done.result(5)
        added_late: List[str] = []
        done.add_done_callback(lambda f: added_late.append(threading.current_thread().name))
        assert added_late == [threading.current_thread().name]  # documented: runs at once, in the adding thread


def test_done_callback_with_no_timeout_cannot_freeze_the_client(server: FakeAMIServer) -> None:
    slow_answer(server, 0.1)
    release = threading.Event()
    with make_client(server) as client:
        try:
            client.send_action("Slow", timeout=None).add_done_callback(lambda f: release.wait(10))
            thread, outcome = in_thread(lambda: [client.action("Ping", timeout=None).ok for _ in range(3)])
            thread.join(3)
            assert outcome and outcome[0][1] == [True, True, True]
        finally:
            release.set()


# --------------------------------------------------------------------------- 2. lazy connect


def test_lazy_connect_is_one_attempt_shared_by_all_waiters_each_with_its_own_timeout() -> None:
    with FakeAMIServer(users=USERS) as srv:
        srv.set_fault(Fault.STALL)  # accepts, never sends the banner
        client = make_client(srv, lazy=True, connect_timeout=1.0)
        runs = [in_thread(lambda: client.action("Ping", timeout=0.5)) for _ in range(4)]
        for thread, _ in runs:
            thread.join(5)
        outcomes = [outcome[0] for _, outcome in runs]
        assert all(isinstance(result, AMIConnectionError) for _, result in outcomes), outcomes
        assert max(elapsed for elapsed, _ in outcomes) < 0.5 + SLACK, outcomes
        assert srv.connections_accepted == 1
        started = time.monotonic()
        client.close(timeout=0.5)  # the attempt is still waiting for the banner
        assert time.monotonic() - started < 0.5 + SLACK


def test_close_returns_within_its_timeout_while_connect_waits_for_a_banner() -> None:
    with FakeAMIServer(users=USERS) as srv:
        srv.set_fault(Fault.STALL)
        client = make_client(srv, connect_timeout=5.0)
        thread, outcome = in_thread(client.connect)
        assert srv.wait_for_sessions(1, authenticated=False)
        started = time.monotonic()
        client.close(timeout=0.5)
        assert time.monotonic() - started < 0.5 + SLACK
        thread.join(2)
        assert outcome and isinstance(outcome[0][1], AMIConnectionError) and outcome[0][0] < 1.0


def test_shared_client_waiters_share_one_attempt_on_a_silent_server() -> None:
    with FakeAMIServer(users=USERS) as srv:
        srv.set_fault(Fault.STALL)
        try:
            shared_client(host="127.0.0.1", port=srv.port, username="admin", secret=USERS["admin"], connect_timeout=1.0)
            runs = [in_thread(lambda: shared_client().action("Ping", timeout=0.5)) for _ in range(4)]
            for thread, _ in runs:
                thread.join(5)
            outcomes = [outcome[0] for _, outcome in runs]
            assert all(isinstance(result, AMIConnectionError) for _, result in outcomes), outcomes
            assert max(elapsed for elapsed, _ in outcomes) < 0.5 + SLACK and srv.connections_accepted == 1
        finally:
            started = time.monotonic()
            close_shared_client()
            assert time.monotonic() - started < 1.0


def test_close_returns_within_its_timeout_while_a_done_callback_blocks(server: FakeAMIServer) -> None:
    slow_answer(server, 0.1)
    release, entered = threading.Event(), threading.Event()
    client = make_client(server).connect()
    try:
        future = client.send_action("Slow")
        future.add_done_callback(lambda f: (entered.set(), release.wait(10)))
        assert entered.wait(5)
        started = time.monotonic()
        client.close(timeout=0.3)
        assert time.monotonic() - started < 0.3 + SLACK
    finally:
        release.set()


def test_connect_timeout_of_one_caller_does_not_end_the_shared_attempt(server: FakeAMIServer) -> None:
    server.set_fault(Fault.DELAY_LOGIN, delay=0.4)
    client = make_client(server)
    try:
        started = time.monotonic()
        with pytest.raises(AMIConnectionError, match="within"):
            client.connect(timeout=0.1)
        assert time.monotonic() - started < 0.1 + SLACK
        client.connect()  # joins the same attempt
        assert client.ping().ok and server.connections_accepted == 1
    finally:
        client.close()


# --------------------------------------------------------------------------- 3. writes and deadlines


def test_a_write_the_server_never_reads_fails_by_the_deadline_and_drops_the_link(server: FakeAMIServer) -> None:
    states = States()
    client = make_client(server, keepalive=0, reconnect=True, backoff=FAST)
    client.on_state(states)
    try:
        client.connect()
        server.set_fault(Fault.STOP_READING)
        headers = {"UserEvent": "Big", **{f"H{i}": "x" * 1000 for i in range(120)}}  # 120 kB: the most one action may be

        def fill() -> float:
            longest = 0.0
            for _ in range(2000):  # until the socket buffers on the way are full and a write blocks
                if states.of(ConnectionState.DISCONNECTED):
                    break
                started = time.monotonic()
                try:
                    client.send_action("UserEvent", headers, timeout=0.5)
                except ConnectionLost:  # no link within the deadline: it was dropped
                    pass
                longest = max(longest, time.monotonic() - started)
            return longest

        thread, outcome = in_thread(fill)
        thread.join(10)
        assert outcome, "the sender is still blocked in a write"
        assert outcome[0][1] < 0.5 + SLACK, outcome
        assert "not reading" in str(states.reached(ConnectionState.DISCONNECTED).reason)
        server.clear_faults()
        states.reached(ConnectionState.RECONNECTED)
        assert client.ping().ok
    finally:
        client.close(timeout=2)


def test_a_writer_never_waits_past_its_own_deadline_for_other_threads_bytes(server: FakeAMIServer) -> None:
    """Group commit: the thread writing finds others' bytes queued behind its own; it does not wait for them."""
    headers = {"UserEvent": "Big", **{f"H{i}": "x" * 1000 for i in range(120)}}
    with make_client(server, keepalive=0) as client:
        link = client._link
        assert link is not None
        conn = link.conn
        behind: List[ActionFuture] = []

        def holding_the_writer(real_write: Callable[..., None]) -> Callable[..., None]:
            def write(*args: Any) -> None:
                if not behind:  # while this thread holds the writer's role, others queue 12 MB with a later deadline
                    filler, _ = in_thread(lambda: behind.extend(
                        client.send_action("UserEvent", headers, timeout=5) for _ in range(100)))
                    filler.join(10)
                real_write(*args)
            return write

        conn._write = holding_the_writer(conn._write)  # type: ignore[method-assign]
        conn._write_now = holding_the_writer(conn._write_now)  # type: ignore[method-assign]  # one action, nothing queued
        server.set_fault(Fault.STOP_READING)
        started = time.monotonic()
        with pytest.raises(ActionTimeout):
            client.action("Ping", timeout=0.3)
        assert time.monotonic() - started < 0.3 + SLACK
        server.clear_faults()  # the reader writes the rest: every queued action is answered, the link lives
        assert all(future.result(5).ok for future in behind) and len(behind) == 100
        assert client.ping().ok and client.connected


def test_send_action_times_out_on_time_with_nobody_waiting(server: FakeAMIServer) -> None:
    with make_client(server) as client:
        server.set_fault(Fault.NO_ANSWER)
        for timeout in (0.3, 0.15):
            started = time.monotonic()
            future = client.send_action("Ping", timeout=timeout)
            with pytest.raises(ActionTimeout):
                future.result()
            assert timeout - 0.01 <= time.monotonic() - started < timeout + SLACK


def test_action_deadline_covers_the_wait_for_the_link(server: FakeAMIServer) -> None:
    server.add_handler("Silent", lambda session, packet: None)  # never answered
    states = States()
    client = make_client(server, reconnect=True, backoff=Backoff(base=0.0, jitter=0.0))
    client.on_state(states)
    try:
        client.connect()
        server.set_fault(Fault.DELAY_LOGIN, delay=0.25)
        server.drop_all()
        states.reached(ConnectionState.DISCONNECTED)
        for timeout in (0.4, 0.15):  # the link comes back within the deadline, or not
            started = time.monotonic()
            with pytest.raises(AMIError):
                client.action("Silent", timeout=timeout)
            assert time.monotonic() - started < timeout + SLACK
            server.drop_all()
    finally:
        client.close()


def test_action_never_outlives_its_timeout_while_the_link_flaps(server: FakeAMIServer) -> None:
    server.add_handler("Silent", lambda session, packet: None)
    client = make_client(server, reconnect=True, backoff=Backoff(base=0.01, cap=0.05))
    stop = threading.Event()

    def flap() -> None:
        while not stop.is_set():
            server.drop_all()
            stop.wait(0.03)

    flapper = threading.Thread(target=flap)
    try:
        client.connect()
        flapper.start()
        worst = 0.0
        for _ in range(10):
            started = time.monotonic()
            with pytest.raises(AMIError):
                client.action("Silent", timeout=0.2)
            worst = max(worst, time.monotonic() - started)
        assert worst < 0.2 + SLACK
    finally:
        stop.set()
        if flapper.ident is not None:
            flapper.join(5)
        client.close()


# --------------------------------------------------------------------------- 5. keepalive and long actions

ORIGINATE = dict(Channel="Local/100@test", Application="Wait", Data="1", Timeout=5000)


def test_keepalive_does_not_kill_a_synchronous_originate(server: FakeAMIServer) -> None:
    server.originate_delay = 1.2  # the session is silent meanwhile, as in originate-sync.json
    states = States()
    client = make_client(server, keepalive=0.2, ping_timeout=0.3, reconnect=True, backoff=FAST)
    client.on_state(states)
    try:
        client.connect()
        response = client.action("Originate", **ORIGINATE)
        assert response.message == "Originate successfully queued"
        assert not states.of(ConnectionState.DISCONNECTED) and server.connections_accepted == 1
        assert client.ping().ok
    finally:
        client.close()


def test_silence_beyond_the_long_action_deadline_is_still_death(server: FakeAMIServer) -> None:
    states = States()
    client = make_client(server, keepalive=0.2, ping_timeout=0.3, reconnect=True, backoff=FAST)
    client.on_state(states)
    try:
        client.connect()
        server.set_fault(Fault.NO_ANSWER)
        started = time.monotonic()
        with pytest.raises(ActionTimeout):
            client.action("Originate", **ORIGINATE, timeout=1.0)
        lost = states.reached(ConnectionState.DISCONNECTED, timeout=5)
        assert "keepalive" in str(lost.reason) and time.monotonic() - started < 2.0
        server.clear_faults()
        states.reached(ConnectionState.RECONNECTED)
    finally:
        client.close()


# --------------------------------------------------------------------------- 16. reconnect=False


def test_connect_after_a_drop_without_reconnect_opens_a_new_link(server: FakeAMIServer) -> None:
    states = States()
    client = make_client(server)
    client.on_state(states)
    try:
        client.connect()
        server.drop_all()
        states.reached(ConnectionState.DISCONNECTED)
        with pytest.raises(ConnectionLost):
            client.action("Ping")
        assert client.connect() is client
        assert client.connected and client.ping().ok and server.connections_accepted == 2
        assert not states.of(ConnectionState.RECONNECTING)
    finally:
        client.close()


# --------------------------------------------------------------------------- 17. fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_while_other_threads_hammer_the_locks(server: FakeAMIServer) -> None:
    stop = threading.Event()
    with make_client(server, reconnect=True) as client:
        def actions() -> None:
            while not stop.is_set():
                client.send_action("Ping", timeout=2).add_done_callback(lambda f: None)
                client.ping()

        def listeners() -> None:
            while not stop.is_set():
                client.remove_listener(client.add_listener(lambda e: None, event="UserEvent"))

        def events() -> None:
            while not stop.is_set():
                server.emit("UserEvent", UserEvent="Load")
                stop.wait(0.001)

        hammers = [threading.Thread(target=f) for f in (actions, actions, listeners, listeners, events)]
        for thread in hammers:
            thread.start()
        try:
            for _ in range(12):
                pid = os.fork()
                if pid == 0:  # child: must neither deadlock nor fail
                    code = 1
                    try:
                        signal.alarm(10)
                        handle = client.add_listener(lambda e: None, event="UserEvent")
                        client.remove_listener(handle)
                        future = client.send_action("Ping", timeout=5)
                        called = threading.Event()
                        future.add_done_callback(lambda f: called.set())
                        ok = future.result(5).ok and called.wait(5) and client.ping().ok
                        client.close(timeout=2)
                        code = 0 if ok else 2
                    finally:
                        os._exit(code)
                status = _wait_child(pid, 15)
                assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        finally:
            stop.set()
            for thread in hammers:
                thread.join(10)
        assert client.ping().ok


def _wait_child(pid: int, timeout: float) -> Optional[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        threading.Event().wait(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


# --------------------------------------------------------------------------- 18. TLS writes


def test_tls_write_waiting_for_the_peer_does_not_spin(server: FakeAMIServer, certificate: Tuple[Path, Path]) -> None:
    """OpenSSL may need the peer's bytes before it can write (SSLWantReadError) while the socket stays writable."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with TLSFront(server.address, server_context) as tls:
        with AMIClient("127.0.0.1", tls.port, "admin", USERS["admin"], tls=context, reconnect=False) as client:
            link = client._link
            assert link is not None
            sock: Any = link.conn._sock
            real_send = sock.send
            calls: List[float] = []
            until = time.monotonic() + 0.3

            def send(data: Any) -> int:
                calls.append(time.monotonic())
                if time.monotonic() < until:
                    raise ssl.SSLWantReadError("the peer must speak first")
                return int(real_send(data))

            sock.send = send
            assert client.action("Ping", timeout=2).ok
            assert len(calls) < 100, f"{len(calls)} send() calls in 0.3 s: the writer spins"


def test_listener_events_still_flow_with_the_new_io_loop(server: FakeAMIServer) -> None:
    seen: Recorder[Event] = Recorder()
    with make_client(server, keepalive=0.05, ping_timeout=1.0) as client:
        client.add_listener(seen, event="UserEvent")
        for i in range(50):
            server.emit("UserEvent", UserEvent="Seq", Seq=str(i))
        assert [int(e["Seq"]) for e in seen.wait_for(50)] == list(range(50))
        assert client.ping().ok and client.connected

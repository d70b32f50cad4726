"""Adversarial review of AMIHTTPClient: deadlines, close() in every state, hostile HTTP answers, fork."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest

from amiclient import (
    ActionTimeout,
    AMIError,
    AMIHTTPClient,
    Backoff,
    ClientClosed,
    ConnectionLost,
    Event,
    ProtocolError,
)
from amiclient.testing import FakeAJAMServer, FakeAMIServer, Recorder

from .http_support import SECRET, ajam_servers

FAST = Backoff(base=0.05, cap=0.1, jitter=0)


@pytest.fixture
def servers() -> Iterator[Tuple[FakeAMIServer, FakeAJAMServer]]:
    with ajam_servers() as pair:
        yield pair


def make(ajam: Any, **options: Any) -> AMIHTTPClient:
    settings: dict = dict(timeout=5.0, poll_timeout=5.0, backoff=FAST)  # type: ignore[type-arg]
    settings.update(options)
    url = ajam if isinstance(ajam, str) else ajam.url
    return AMIHTTPClient(url, "admin", SECRET, **settings)


class RawHTTPServer:
    """A hand-written HTTP server: Login answers a cookie, every other request goes to ``answer(sock, action)``."""

    def __init__(self, answer: Callable[[socket.socket, str], None]) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/asterisk"
        self.stopping = threading.Event()
        self.threads: List[threading.Thread] = []
        self.conns: List[socket.socket] = []
        self.acceptor = threading.Thread(target=self._accept)
        self.acceptor.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,))
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while not self.stopping.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                action = body.split(b"&")[0].partition(b"=")[2].decode().lower()
                if action == "login":
                    text = b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: mansession_id=\"abc\"\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(text), text))
                elif action == "logoff":
                    text = b"Response: Goodbye\r\n\r\n"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
                else:
                    self.answer(conn, action)
        except OSError:
            return

    def close(self) -> None:
        self.stopping.set()
        self.acceptor.join(5)
        self.listener.close()
        for conn in list(self.conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self.acceptor.join(5)
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def raw() -> Iterator[Callable[[Callable[[socket.socket, str], None]], RawHTTPServer]]:
    made: List[RawHTTPServer] = []

    def start(answer: Callable[[socket.socket, str], None]) -> RawHTTPServer:
        made.append(RawHTTPServer(answer))
        return made[-1]

    yield start
    for server in made:
        server.close()


# ---------------------------------------------------------------------- deadlines


def test_action_timeout_holds_when_the_answer_trickles_in(raw: Any) -> None:
    def trickle(conn: socket.socket, action: str) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):  # one byte every 50 ms: each read is quick, the whole answer is not
            if server.stopping.wait(0.05):
                return
            conn.sendall(b"x")

    server = raw(trickle)
    with make(server.url) as client:
        started = time.monotonic()
        with pytest.raises(ActionTimeout):
            client.action("Ping", timeout=0.5)
        assert time.monotonic() - started < 0.5 + 0.3


def test_a_200_with_garbage_is_a_clear_error(raw: Any) -> None:
    def garbage(conn: socket.socket, action: str) -> None:
        text = b"\x00\xffnot ami at all\r\n"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))

    server = raw(garbage)
    with make(server.url) as client:
        with pytest.raises((ProtocolError, ConnectionLost)):
            client.action("Ping", timeout=2)


# ---------------------------------------------------------------------- close() in every state


def test_close_during_login_is_prompt_and_connect_raises_client_closed(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    _, ajam = servers
    ajam.inject("stall", "Login", delay=1.5)
    client = make(ajam)
    errors: Recorder[BaseException] = Recorder()

    def connect() -> None:
        try:
            client.connect()
        except BaseException as exc:
            errors(exc)

    thread = threading.Thread(target=connect)
    thread.start()
    deadline = time.monotonic() + 5
    while not ajam.requests_of("Login"):
        assert time.monotonic() < deadline
        threading.Event().wait(0.01)
    started = time.monotonic()
    client.close()
    thread.join(5)
    assert time.monotonic() - started < 0.5
    assert isinstance(errors.wait_for(1)[0], ClientClosed), errors.items
    assert not client.connected


# ---------------------------------------------------------------------- fork


def _wait_child(pid: int, timeout: float) -> Optional[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        threading.Event().wait(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # forking under load is the test
def test_fork_while_threads_hammer_the_client_leaves_a_usable_client_in_the_child(
        servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    ami, ajam = servers
    stop = threading.Event()
    with make(ajam, max_connections=2, workers=2) as client:
        seen: Recorder[Event] = Recorder()
        client.add_listener(seen, event="UserEvent")

        def actions() -> None:
            while not stop.is_set():
                client.send_action("Ping", timeout=5).add_done_callback(lambda f: None)
                client.ping()

        def listeners() -> None:
            while not stop.is_set():
                client.remove_listener(client.add_listener(lambda e: None, event="Newchannel"))

        def events() -> None:
            while not stop.is_set():
                ami.emit("UserEvent", UserEvent="Load")
                stop.wait(0.005)

        hammers = [threading.Thread(target=f) for f in (actions, actions, listeners, events)]
        for thread in hammers:
            thread.start()
        try:
            for _ in range(6):
                pid = os.fork()
                if pid == 0:  # child: must neither deadlock nor share the parent's session
                    code = 1
                    try:
                        signal.alarm(20)
                        called = threading.Event()
                        future = client.send_action("Ping", timeout=5)
                        future.add_done_callback(lambda f: called.set())
                        got = threading.Event()
                        client.add_listener(lambda e: got.set(), event="UserEvent",
                                            filter=lambda e: e.get("UserEvent") == "Child")
                        ok = future.result(5).ok and called.wait(5) and client.ping().ok
                        for _ in range(100):
                            client.action("UserEvent", UserEvent="Child")
                            if got.wait(0.1):
                                break
                        ok = ok and got.is_set()
                        client.close(timeout=2)
                        code = 0 if ok else 2
                    except BaseException:
                        import traceback
                        traceback.print_exc()
                    finally:
                        os._exit(code)
                status = _wait_child(pid, 30)
                assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        finally:
            stop.set()
            for thread in hammers:
                thread.join(10)
        assert client.ping().ok
        count = len(seen.items)
        ami.emit("UserEvent", UserEvent="Parent")
        seen.wait_for(count + 1, timeout=5)


# ---------------------------------------------------------------------- add_listener waits for the session, boundedly


@pytest.mark.parametrize("timeout", [30.0])
def test_first_add_listener_returns_at_once_when_the_session_cannot_turn_events_on(
        servers: Tuple[FakeAMIServer, FakeAJAMServer], timeout: Optional[float]) -> None:
    _, ajam = servers
    with make(ajam, timeout=timeout) as client:
        ajam.inject("status", "Events", times=1000, status=502)
        returned = threading.Event()
        thread = threading.Thread(target=lambda: (client.add_listener(lambda e: None), returned.set()))
        thread.start()
        try:
            assert returned.wait(3), "add_listener blocked while the session could not read events"
        finally:
            client.close()
            thread.join(5)


# ---------------------------------------------------------------------- hostile answers


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz-not-hex\r\nResponse: Success\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n14\r\nResponse: Success\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nResp",
    b"HTTP/1.1 999999999999999999999 Weird\r\nContent-Length: 0\r\n\r\n",
    b"NOT-HTTP garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70000 + b"\r\n\r\n",
])
def test_broken_http_answers_raise_client_errors(raw: Any, answer: bytes) -> None:
    def broken(conn: socket.socket, action: str) -> None:
        conn.sendall(answer)
        conn.shutdown(socket.SHUT_WR)

    server = raw(broken)
    with make(server.url) as client:
        with pytest.raises(AMIError):
            client.action("Originate", Channel="Local/1@x", Application="Wait", Data="1", timeout=3)
        future = client.send_action("Originate", Channel="Local/1@x", Application="Wait", Data="1", timeout=3)
        assert isinstance(future.exception(5), AMIError)


# ---------------------------------------------------------------------- the poller and listener changes


@pytest.mark.parametrize("round_", range(3))
def test_a_listener_replacing_itself_while_the_poller_reads_ahead_loses_no_event(
        servers: Tuple[FakeAMIServer, FakeAJAMServer], round_: int) -> None:
    """The old poller cut the WaitEvent in flight when the last listener went, losing the events in its answer."""
    ami, ajam = servers
    with make(ajam) as client:
        first: Recorder[int] = Recorder()
        second: Recorder[int] = Recorder()
        handles: List[Any] = []

        def swap(event: Event) -> None:
            first(int(event["Seq"]))
            if int(event["Seq"]) >= 20 and len(handles) == 1:
                client.remove_listener(handles[0])  # the last listener goes...
                handles.append(client.add_listener(lambda e: second(int(e["Seq"])), event="UserEvent"))  # ...one comes

        handles.append(client.add_listener(swap, event="UserEvent"))
        stop = threading.Event()

        def emit() -> None:
            for seq in range(400):
                if stop.is_set():
                    return
                ami.emit("UserEvent", UserEvent="Seq", Seq=str(seq))
                stop.wait(0.002)

        emitter = threading.Thread(target=emit)
        emitter.start()
        try:
            second.wait_for(1, where=lambda n: n == 399, timeout=15)
        finally:
            stop.set()
            emitter.join(5)
        start = first.items[-1] + 1
        assert second.items == list(range(start, 400)), [n for n in range(start, 400) if n not in second.items][:10]


# ---------------------------------------------------------------------- a new session loses the old one's events


def test_live_state_over_http_resyncs_after_the_session_expired(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    from amiclient import AMIClient
    from amiclient.live import LiveState

    ami, ajam = servers
    ami.hold_calls = True
    with make(ajam, poll_timeout=1.0) as client, LiveState(client) as live:
        assert live.wait_synced(5)
        states: Recorder[Any] = Recorder()
        client.on_state(states)
        ajam.expire_sessions(busy=True)  # Asterisk purged the session: its queued events are gone
        with AMIClient("127.0.0.1", ami.port, "admin", SECRET) as other:  # a call starts meanwhile
            other.originate("PJSIP/300", exten="200", context="default", priority=1)
        deadline = time.monotonic() + 10
        while not any(c.name.startswith("PJSIP/300") for c in live.channels.values()):
            assert time.monotonic() < deadline, (live.state, states.items, dict(live.channels))
            threading.Event().wait(0.02)
        assert [s.state.value for s in states.items][-1] == "reconnected"


def test_a_short_action_waiting_for_another_threads_slow_login_keeps_its_timeout(
        servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    _, ajam = servers
    with make(ajam) as client:
        ajam.expire_sessions()
        ajam.inject("stall", "Login", delay=2.0)
        slow = threading.Thread(target=lambda: client.ping())  # finds the session expired, logs in slowly
        slow.start()
        try:
            deadline = time.monotonic() + 5
            while len(ajam.requests_of("Login")) < 2:
                assert time.monotonic() < deadline
                threading.Event().wait(0.01)
            started = time.monotonic()
            with pytest.raises(ActionTimeout):
                client.action("Ping", timeout=0.3)
            assert time.monotonic() - started < 0.3 + 0.3
        finally:
            slow.join(10)


def test_listeners_added_and_removed_by_many_threads_under_load_never_stall(
        servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    ami, ajam = servers
    stop = threading.Event()
    with make(ajam, poll_timeout=2.0) as client:
        def events() -> None:
            while not stop.is_set():
                ami.emit("UserEvent", UserEvent="Load")
                stop.wait(0.002)

        slowest: List[float] = []

        def churn() -> None:
            for _ in range(30):
                started = time.monotonic()
                handle = client.add_listener(lambda e: None, event="UserEvent")
                slowest.append(time.monotonic() - started)
                client.remove_listener(handle)

        emitter = threading.Thread(target=events)
        emitter.start()
        workers = [threading.Thread(target=churn) for _ in range(4)]
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(30)
            assert not any(worker.is_alive() for worker in workers)
        finally:
            stop.set()
            emitter.join(5)
        assert len(slowest) == 120 and max(slowest) < 3.0, max(slowest)
        seen: Recorder[Event] = Recorder()
        client.add_listener(seen, event="UserEvent")
        ami.emit("UserEvent", UserEvent="After")
        seen.wait_for(1, where=lambda e: e.get("UserEvent") == "After", timeout=10)


def test_a_wait_event_answer_cut_short_is_reported_as_a_reconnect(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    """Its events are lost: state built from events must learn it (as after a TCP reconnect) and resync."""
    ami, ajam = servers
    with make(ajam) as client:
        seen: Recorder[Event] = Recorder()
        client.add_listener(seen, event="UserEvent")
        states: Recorder[Any] = Recorder()
        client.on_state(states)
        ajam.inject("truncate", "WaitEvent")
        ami.emit("UserEvent", UserEvent="Lost", Padding="x" * 200)
        got = states.wait_for(2, timeout=10)
        assert [s.state.value for s in got[:1]] == ["disconnected"]
        states.wait_for(1, where=lambda s: s.state.value == "reconnected", timeout=10)
        ami.emit("UserEvent", UserEvent="After")
        seen.wait_for(1, where=lambda e: e.get("UserEvent") == "After", timeout=10)

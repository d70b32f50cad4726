"""AMIHTTPClient against FakeAJAMServer: sessions, never-twice, proxies, the WaitEvent poller, threads."""
from __future__ import annotations

import concurrent.futures
import logging
import select
import threading
import time
from typing import Any, Iterator, List, Tuple

import pytest

from amiclient import (
    ActionError,
    ActionTimeout,
    AMIConnectionError,
    AMIHTTPClient,
    AuthenticationError,
    Backoff,
    ConnectionLost,
    ConnectionState,
    Event,
    StateChange,
)
from amiclient.testing import FakeAJAMServer, FakeAMIServer, Recorder, build_response
from amiclient.testing._session import Session
from amiclient.testing._wire import Packet
from amiclient.transport.http import parse_url

from .http_support import SECRET, ajam_servers, client_context, server_context

Servers = Tuple[FakeAMIServer, FakeAJAMServer]
FAST = Backoff(base=0.05, cap=0.1, jitter=0)


class Counter:
    """An action handler counting how often the fake really ran it."""

    def __init__(self) -> None:
        self.runs = 0
        self.lock = threading.Lock()

    def __call__(self, session: Session, packet: Packet) -> Any:
        with self.lock:
            self.runs += 1
        return build_response(packet, "Counted")


@pytest.fixture
def servers() -> Iterator[Tuple[FakeAMIServer, FakeAJAMServer]]:
    with ajam_servers() as pair:
        yield pair


@pytest.fixture
def counter(servers: Servers) -> Counter:
    count = Counter()
    servers[0].add_handler("Count", count)
    return count


def make(ajam: FakeAJAMServer, **options: Any) -> AMIHTTPClient:
    settings: dict = dict(timeout=5.0, poll_timeout=5.0, backoff=FAST)  # type: ignore[type-arg]
    settings.update(options)
    return AMIHTTPClient(ajam.url, "admin", SECRET, **settings)


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    """Wait for ``condition()`` on another thread's progress (polled; fails after ``timeout``)."""
    event = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        event.wait(0.01)


# ---------------------------------------------------------------------- sessions


def test_session_expiry_is_invisible_and_nothing_runs_twice(servers: Servers, counter: Counter) -> None:
    _, ajam = servers
    with make(ajam) as client:
        assert client.action("Count").message == "Counted"
        assert ajam.expire_sessions() == 1
        assert client.action("Count").message == "Counted"  # refused (nothing ran), new login, sent again
        assert counter.runs == 2
        assert len(ajam.requests_of("Login")) == 2 and len(ajam.requests_of("Count")) == 3
        assert client.connected


def test_real_permission_denied_is_not_retried(counter: Counter) -> None:
    with FakeAMIServer(users={"admin": SECRET}) as ami, FakeAJAMServer(ami) as ajam:
        ami.add_handler("Guarded", counter, privilege="system")
        ami.users["admin"].write = "call"
        with make(ajam) as client:
            with pytest.raises(ActionError, match="Permission denied"):
                client.action("Guarded")
            assert len(ajam.requests_of("Login")) == 1 and len(ajam.requests_of("Guarded")) == 1
            assert counter.runs == 0


def test_many_threads_hitting_an_expired_session_log_in_once(servers: Servers, counter: Counter) -> None:
    _, ajam = servers
    with make(ajam) as client:
        for round_ in range(3):
            ajam.expire_sessions()
            barrier = threading.Barrier(8)

            def work(_: int) -> str:
                barrier.wait(5)
                return str(client.action("Count").message)

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                assert list(pool.map(work, range(8))) == ["Counted"] * 8
            assert len(ajam.requests_of("Login")) == 2 + round_  # one login per expiry, not one per thread
        assert counter.runs == 24


def test_login_racing_requests_ends_with_the_authenticated_cookie(servers: Servers) -> None:
    """Requests with a dead cookie get new unauthenticated cookies while a login runs: the login's cookie wins."""
    _, ajam = servers
    with make(ajam) as client:
        for _ in range(5):
            ajam.expire_sessions()
            stop = threading.Event()

            def hammer() -> None:
                while not stop.is_set():
                    client.ping()

            threads = [threading.Thread(target=hammer) for _ in range(4)]
            for thread in threads:
                thread.start()
            try:
                client.login()
            finally:
                stop.set()
                for thread in threads:
                    thread.join(10)
            logins = len(ajam.requests_of("Login"))
            for _ in range(5):
                client.ping()
            assert len(ajam.requests_of("Login")) == logins  # the cookie kept is an authenticated one
            cookies = {r.cookie for r in ajam.requests[-5:]}
            assert len(cookies) == 1


def test_request_answered_during_a_slow_login_cannot_replace_its_cookie(servers: Servers) -> None:
    """A request with the dead cookie is answered (with a new, logged-out cookie) before the login's answer."""
    _, ajam = servers
    with make(ajam) as client:
        ajam.expire_sessions()
        ajam.inject("stall", "Login", delay=0.5)
        results: Recorder[str] = Recorder()
        login = threading.Thread(target=client.login)
        login.start()
        wait_until(lambda: len(ajam.requests_of("Login")) == 2)
        worker = threading.Thread(target=lambda: results(client.ping()["Ping"]))
        worker.start()
        login.join(10)
        worker.join(10)
        assert results.items == ["Pong"]
        assert client.ping()["Ping"] == "Pong" and len(ajam.requests_of("Login")) == 2


def test_secret_and_cookie_never_logged(servers: Servers, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    _, ajam = servers
    with make(ajam) as client:
        client.ping()
        ajam.expire_sessions()
        client.ping()
        ajam.inject("drop_after_run", "Ping", times=2)
        with pytest.raises(ConnectionLost) as info:
            client.ping()
        cookies = {r.cookie for r in ajam.requests if r.cookie}
        assert cookies
        texts = [caplog.text, repr(client), str(info.value), repr(client.stats)]
        for text in texts:
            assert SECRET not in text
            assert not any(cookie in text for cookie in cookies)
    assert [r for r in ajam.requests if r.action.lower() != "login" and "secret" in dict(r.params)] == []


# ---------------------------------------------------------------------- never twice


def test_connection_dropped_after_the_request_fails_and_runs_once(servers: Servers, counter: Counter) -> None:
    _, ajam = servers
    with make(ajam) as client:
        ajam.inject("drop_after_run", "Count")
        with pytest.raises(ConnectionLost, match="may have run"):
            client.action("Count")
        assert counter.runs == 1 and len(ajam.requests_of("Count")) == 1
        ajam.inject("truncate", "Count")
        future = client.send_action("Count")
        with pytest.raises(ConnectionLost, match="short"):
            client.wait(future)
        assert counter.runs == 2 and len(ajam.requests_of("Count")) == 2
        ajam.inject("drop_before_run", "Count")  # the client cannot know nothing ran: it does not guess
        with pytest.raises(ConnectionLost):
            client.action("Count")
        assert counter.runs == 2
        assert client.action("Count").ok and counter.runs == 3


def test_read_only_actions_are_sent_again_once(servers: Servers) -> None:
    _, ajam = servers
    with make(ajam) as client:
        ajam.inject("drop_after_run", "Ping")
        assert client.ping()["Ping"] == "Pong"
        assert len(ajam.requests_of("Ping")) == 2
        ajam.inject("drop_after_run", "Ping", times=2)
        with pytest.raises(ConnectionLost):
            client.ping()
        assert len(ajam.requests_of("Ping")) == 4


def test_connection_closed_by_the_server_while_idle_is_replaced_before_sending(counter: Counter) -> None:
    with FakeAMIServer(users={"admin": SECRET}) as ami, FakeAJAMServer(ami, keep_alive=0.2) as ajam:
        ami.add_handler("Count", counter)
        with make(ajam) as client:
            conn = client._transport._idle[0][0]
            assert conn.sock is not None and select.select([conn.sock], [], [], 5)[0]  # the server closed it
            assert client.action("Count").ok
            assert counter.runs == 1 and len(ajam.requests_of("Count")) == 1


# ---------------------------------------------------------------------- HTTP errors


def test_proxy_and_http_errors_map_to_the_client_errors(servers: Servers, counter: Counter) -> None:
    _, ajam = servers
    with make(ajam) as client:
        ajam.inject("html", "Count")
        with pytest.raises(ConnectionLost, match="HTML"):
            client.action("Count")
        ajam.inject("status", "Count", status=502)
        with pytest.raises(ConnectionLost, match="HTTP 502"):
            client.action("Count")
        ajam.inject("status", "Count", status=407)
        with pytest.raises(AuthenticationError, match="HTTP 407"):
            client.action("Count")
        ajam.inject("status", "Count", status=504)
        with pytest.raises(ActionTimeout, match="HTTP 504"):
            client.action("Count")
        assert counter.runs == 0
        assert client.action("Count").ok
    with make(ajam) as client:
        pass
    ajam.inject("html", "Login")
    with pytest.raises(AMIConnectionError, match="HTML"):
        make(ajam).connect()


def test_failed_request_reports_disconnected_and_the_next_success_reconnected(servers: Servers) -> None:
    _, ajam = servers
    with make(ajam) as client:
        states: Recorder[StateChange] = Recorder()
        client.on_state(states)
        ajam.inject("status", "Ping", status=502)
        with pytest.raises(ConnectionLost):
            client.ping()
        assert not client.connected and not client.wait_connected(0.01)
        assert client.ping().ok and client.wait_connected(0)
        assert [s.state for s in states.wait_for(2)] == [ConnectionState.DISCONNECTED, ConnectionState.RECONNECTED]
        assert isinstance(states.items[0].reason, ConnectionLost) and client.stats.reconnects == 1


def test_wrong_path_and_unreachable_server() -> None:
    with ajam_servers() as (_, ajam):
        client = AMIHTTPClient(f"http://127.0.0.1:{ajam.port}/wrong", "admin", SECRET)
        with pytest.raises(AMIConnectionError, match="HTTP 404"):
            client.connect()
        client.close()
        port = ajam.port
    client = AMIHTTPClient(f"http://127.0.0.1:{port}/asterisk", "admin", SECRET, connect_timeout=2)
    with pytest.raises(AMIConnectionError, match=f"127.0.0.1:{port}/asterisk/rawman"):
        client.connect()
    client.close()


def test_https_verifies_the_certificate(certificate: Any) -> None:  # noqa: F811
    with ajam_servers(server_context(certificate)) as (_, ajam):
        assert ajam.url.startswith("https://")
        untrusting = AMIHTTPClient(ajam.url, "admin", SECRET)  # system CAs only
        with pytest.raises(AMIConnectionError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            untrusting.connect()
        untrusting.close()
        with AMIHTTPClient(ajam.url, "admin", SECRET, tls=client_context(certificate)) as client:
            assert client.ping().ok
    with pytest.raises(ValueError, match="https"):
        AMIHTTPClient("http://127.0.0.1:8088/asterisk", tls=True)
    with pytest.raises(ValueError, match="https"):
        AMIHTTPClient("https://127.0.0.1:8089/asterisk", tls=False)


def test_url_forms() -> None:
    assert parse_url("http://h:8088/asterisk")[1:] == ("h", 8088, "/asterisk/rawman", "http://h:8088/asterisk/rawman")
    assert parse_url("https://h/asterisk/rawman")[:3] == (True, "h", 443)
    for bad in ("ftp://h/", "http:///x", "http://u:p@h/asterisk"):
        with pytest.raises(ValueError):
            parse_url(bad)


# ---------------------------------------------------------------------- events


def test_close_is_prompt_with_a_long_poll_in_flight(servers: Servers) -> None:
    _, ajam = servers
    client = make(ajam, poll_timeout=30.0).connect()
    client.add_listener(lambda event: None)
    wait_until(lambda: len(ajam.requests_of("WaitEvent")) >= 1)
    start = time.monotonic()
    client.close()
    assert time.monotonic() - start < 3.0


def test_poller_starts_with_the_first_listener_and_stops_with_the_last(servers: Servers) -> None:
    ami, ajam = servers
    with make(ajam, poll_timeout=1.0) as client:
        client.ping()
        assert ajam.requests_of("WaitEvent") == [] and dict(ajam.requests_of("Login")[0].params)["Events"] == "off"
        seen: Recorder[Event] = Recorder()
        handle = client.add_listener(seen, event="UserEvent")
        wait_until(lambda: len(ajam.requests_of("WaitEvent")) >= 1)
        for i in range(50):
            ami.emit("UserEvent", UserEvent="Seq", N=str(i))
        assert [int(e["N"]) for e in seen.wait_for(50)] == list(range(50))
        start = time.monotonic()
        client.remove_listener(handle)  # the poll in flight ends (within poll_timeout), events are turned off
        wait_until(lambda: [dict(r.params).get("EventMask") for r in ajam.requests_of("Events")] == ["on", "off"])
        assert time.monotonic() - start < 3.0
        wait_until(lambda: not any(t.name.startswith("amiclient-http-events") for t in threading.enumerate()))
        client.add_listener(seen, event="UserEvent")  # a new poller
        wait_until(lambda: len(ajam.requests_of("Events")) == 3)


def test_poller_backs_off_reports_state_and_recovers(servers: Servers) -> None:
    ami, ajam = servers
    with make(ajam) as client:
        states: Recorder[StateChange] = Recorder()
        client.on_state(states)
        seen: Recorder[Event] = Recorder()
        client.add_listener(seen, event="UserEvent")
        wait_until(lambda: len(ajam.requests_of("WaitEvent")) >= 1)
        ajam.inject("status", "WaitEvent", times=3, status=503)
        ami.emit("UserEvent", UserEvent="Kick")  # ends the poll in flight; the next ones fail
        states.wait_for(1, where=lambda s: s.state is ConnectionState.RECONNECTED, timeout=10)
        kinds = [s.state for s in states.items]
        assert kinds[0] is ConnectionState.DISCONNECTED and ConnectionState.RECONNECTING in kinds
        assert client.connected and client.stats.reconnects == 1
        ami.emit("UserEvent", UserEvent="After")
        seen.wait_for(1, where=lambda e: e["UserEvent"] == "After")


def test_events_survive_session_expiry(servers: Servers) -> None:
    ami, ajam = servers
    with make(ajam, poll_timeout=1.0) as client:
        seen: Recorder[Event] = Recorder()
        client.add_listener(seen, event="UserEvent")
        wait_until(lambda: len(ajam.requests_of("WaitEvent")) >= 1)
        assert ajam.expire_sessions(busy=True) == 1  # ends the poll in flight too
        wait_until(lambda: len(ajam.requests_of("Login")) == 2)
        wait_until(lambda: len(ajam.requests_of("Events")) == 1 or dict(ajam.requests_of("Login")[1].params)["Events"] == "on")
        for _ in range(100):
            ami.emit("UserEvent", UserEvent="Back")
            if seen.items:
                break
            threading.Event().wait(0.05)
        assert seen.wait_for(1)[0]["UserEvent"] == "Back"


def test_filters_are_applied_again_after_a_new_login(servers: Servers) -> None:
    ami, ajam = servers
    with make(ajam, poll_timeout=1.0) as client:
        seen: Recorder[Event] = Recorder()
        client.add_listener(seen, event=["UserEvent", "Hangup"])
        wait_until(lambda: len(ajam.requests_of("WaitEvent")) >= 1)
        client.add_filter("Event: Hangup")
        assert ajam.expire_sessions(busy=True) == 1
        wait_until(lambda: len(ajam.requests_of("Filter")) == 2)  # sent again in the new session
        # received is not yet applied: wait until every logged-in manager session filters
        wait_until(lambda: all(s.filters for s in ami.sessions if s.authenticated))
        for n in range(100):
            ami.emit("UserEvent", UserEvent="Filtered")
            ami.emit("Hangup", Channel=f"PJSIP/{n}-0001", Cause="16")
            if seen.items:
                break
            threading.Event().wait(0.05)
        seen.wait_for(1)
        assert all(e.name == "Hangup" for e in seen.items)


# ---------------------------------------------------------------------- the send pool


def test_send_action_queued_past_its_timeout_is_never_sent(servers: Servers, counter: Counter) -> None:
    ami, ajam = servers
    ami.add_handler("Slow", lambda session, packet: build_response(packet, "late") if session.sleep(1.0) else None)
    with make(ajam, workers=1) as client:
        slow = client.send_action("Slow", timeout=5)
        late = client.send_action("Count", timeout=0.2)
        with pytest.raises(ActionTimeout):
            client.wait(late)
        assert client.wait(slow).message == "late"
        assert client.ping().ok
        assert counter.runs == 0 and ajam.requests_of("Count") == []


def test_done_callback_waiting_for_another_action_does_not_deadlock(servers: Servers) -> None:
    _, ajam = servers
    with make(ajam, workers=1) as client:
        results: Recorder[str] = Recorder()

        def callback(_: Any) -> None:
            results(client.wait(client.send_action("Ping"))["Ping"])

        for _ in range(3):
            client.send_action("Ping").add_done_callback(callback)
        assert results.wait_for(3, timeout=10) == ["Pong"] * 3


def test_many_threads_few_connections(servers: Servers) -> None:
    _, ajam = servers
    with make(ajam, max_connections=2) as client:
        def work(n: int) -> List[str]:
            return [client.action("Ping", ActionID=f"{n}-{i}").action_id or "" for i in range(10)]

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            results = list(pool.map(work, range(12)))
        assert results == [[f"{n}-{i}" for i in range(10)] for n in range(12)]
        assert len(client._transport._idle) <= 2
        assert ajam.session_count == 1 and len(ajam.requests_of("Login")) == 1  # one session for every thread


def test_ajamclient_is_a_deprecated_alias(servers: Servers) -> None:
    from amiclient.http import AJAMClient

    with pytest.warns(DeprecationWarning):
        client = AJAMClient(servers[1].url, "admin", SECRET)
    with client:
        assert client.ping().ok


def test_poller_does_not_spin_when_asterisk_answers_wait_event_at_once() -> None:
    """httptimeout <= 10 caps WaitEvent at 0 s (recording): polls then come at most every 0.5 s."""
    with ajam_servers(httptimeout=10) as (_, ajam):
        with make(ajam) as client:
            client.add_listener(lambda event: None)
            wait_until(lambda: len(ajam.requests_of("WaitEvent")) >= 1)
            start = time.monotonic()
            wait_until(lambda: len(ajam.requests_of("WaitEvent")) >= 4, timeout=10)
            assert time.monotonic() - start >= 1.4


def test_an_event_sent_right_after_add_listener_is_delivered(servers: Servers) -> None:
    ami, ajam = servers
    with make(ajam, poll_timeout=1.0) as client:
        client.ping()  # a session without events: the first listener turns them on
        seen: Recorder[Event] = Recorder()
        client.add_listener(seen, event="UserEvent")
        ami.emit("UserEvent", UserEvent="First")  # no wait: add_listener returned with the mask on
        assert seen.wait_for(1)[0]["UserEvent"] == "First"

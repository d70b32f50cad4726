"""Issue 13: a caller waiting alone reads the socket itself (leader/follower); the promises hold either way."""
from __future__ import annotations

import socket
import sys
import threading
import time
from typing import Any, Iterator, List

import pytest

from amiclient import ActionFuture, ActionTimeout, AMIClient, ClientClosed, ConnectionLost, Event
from amiclient.testing import FakeAMIServer

USERS = {"admin": "s3cr3t!"}
SLACK = 0.1  # the promise is 50 ms; a shared CI machine gets a little more


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users=USERS) as srv:
        def slow(session: Any, packet: Any) -> Any:
            session.sleep(float(packet.get("Seconds", "0.3")))
            return [("Response", "Success"), ("ActionID", packet.get("ActionID", ""))]
        srv.add_handler("Slow", slow)
        srv.add_handler("Never", lambda session, packet: None)  # no answer at all
        yield srv


def make_client(server: FakeAMIServer, **options: Any) -> AMIClient:
    options.setdefault("reconnect", False)
    options.setdefault("timeout", 5.0)
    return AMIClient("127.0.0.1", server.port, "admin", USERS["admin"], **options)


def leader_reads(client: AMIClient) -> int:
    link = client._link
    assert link is not None
    return link.conn.leader_reads


def test_a_lone_caller_reads_its_own_answers(server: FakeAMIServer) -> None:
    with make_client(server) as client:
        for _ in range(50):
            assert client.action("Ping").ok
        assert leader_reads(client) > 0  # the design is in use: no thread hop for these answers
        assert client.stats["actions_in_flight"] == 0


def test_a_leader_runs_no_user_code_and_resolves_other_callers_futures(server: FakeAMIServer) -> None:
    me = threading.current_thread().name
    callback_threads: List[str] = []
    listener_threads: List[str] = []
    got_event = threading.Event()
    with make_client(server) as client:
        client.action("Ping")

        def on_event(event: Event) -> None:
            listener_threads.append(threading.current_thread().name)
            got_event.set()
        client.add_listener(on_event, event="UserEvent")
        pings: List[ActionFuture] = []
        for _ in range(5):
            future = client.send_action("Slow", Seconds="0.02")
            future.add_done_callback(lambda f: callback_threads.append(threading.current_thread().name))
            pings.append(future)
        assert not pings[-1].done()  # so its callback is not one run at once by the adding thread
        before = leader_reads(client)
        slow = client.send_action("Slow", Seconds="0.3")
        server.call_later(0.1, lambda: server.emit("UserEvent", UserEvent="WhileLeading"))
        assert client.wait(slow).ok  # this caller leads: it reads the Pings' answers and the event too
        assert leader_reads(client) > before
        assert all(f.result(0).ok for f in pings)
        assert got_event.wait(5)
        deadline = time.monotonic() + 5
        while len(callback_threads) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(callback_threads) == 5
    # the last callbacks were added before their answers: they ran on the callback threads
    assert callback_threads[-1].startswith("amiclient-callbacks")
    assert not any(n.startswith("amiclient-io") for n in callback_threads)
    assert callback_threads.count(me) <= 1  # only one added after its answer runs at once, in this thread
    assert listener_threads and all(n.startswith("amiclient-dispatch") for n in listener_threads)


def test_a_leader_gives_up_at_its_deadline_and_its_late_answer_goes_to_nobody(server: FakeAMIServer) -> None:
    with make_client(server) as client:
        client.action("Ping")
        started = time.monotonic()
        with pytest.raises(ActionTimeout):
            client.action("Slow", Seconds="0.6", timeout=0.2)
        assert time.monotonic() - started < 0.2 + SLACK
        for _ in range(5):  # the late answer arrives meanwhile: dropped, never handed to these
            response = client.action("Ping", timeout=2)
            assert response.ok and response.get("Ping") == "Pong"
        assert client.stats["actions_in_flight"] == 0


def test_a_leader_sees_the_link_drop_at_once(server: FakeAMIServer) -> None:
    with make_client(server) as client:
        client.action("Ping")
        server.call_later(0.2, lambda: server.drop_all(reset=True))
        started = time.monotonic()
        with pytest.raises(ConnectionLost):
            client.action("Never", timeout=4)
        assert time.monotonic() - started < 1.5


def test_followers_and_a_leader_each_get_their_own_answer(server: FakeAMIServer) -> None:
    errors: List[str] = []
    with make_client(server) as client:
        def worker(tid: int) -> None:
            for i in range(40):
                action_id = f"t{tid}-{i}"
                try:
                    response = client.action("Ping", ActionID=action_id, timeout=5)
                    if response.action_id != action_id:
                        errors.append(f"{action_id} got {response.action_id}")
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(repr(exc))
                if i % 7 == tid % 7:
                    time.sleep(0.001)  # sometimes one caller is alone: it leads among followers
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        assert client.stats["actions_in_flight"] == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="blocking leader reads are used on Linux only")
def test_a_lone_caller_waits_in_recv_alone_not_in_poll_then_recv(server: FakeAMIServer) -> None:
    """One system call to wait for an answer, as a raw blocking loop makes: no poll() per action."""
    with make_client(server) as client:
        client.action("Ping")
        link = client._link
        assert link is not None
        polls: List[float] = []
        real_ready = link.conn._lead_ready

        def counting_ready(timeout: float) -> bool:
            polls.append(timeout)
            return real_ready(timeout) if real_ready is not None else True
        link.conn._lead_ready = counting_ready
        before = leader_reads(client)
        for _ in range(30):
            assert client.action("Ping").ok
        assert leader_reads(client) > before  # this caller led
        assert polls == []


def test_a_leader_blocked_in_recv_sees_close_at_once(server: FakeAMIServer) -> None:
    for _ in range(5):  # the caller leads unless the reader happens to be reading then: try again
        client = make_client(server)
        client.connect()
        client.action("Ping")
        outcome: List[BaseException] = []
        leading = threading.Event()
        link = client._link
        assert link is not None
        real_lead = link.conn._lead

        def lead(*args: Any, real_lead: Any = real_lead, leading: threading.Event = leading) -> None:
            leading.set()
            real_lead(*args)
        link.conn._lead = lead  # type: ignore[method-assign, assignment]

        def wait_forever(client: AMIClient = client, outcome: List[BaseException] = outcome) -> None:
            try:
                client.action("Never", timeout=30)
            except Exception as exc:  # noqa: BLE001 - checked below
                outcome.append(exc)
        caller = threading.Thread(target=wait_forever)
        caller.start()
        led = leading.wait(1)
        started = time.monotonic()
        client.close(timeout=2)
        caller.join(5)
        assert not caller.is_alive()
        assert time.monotonic() - started < 1.0
        assert outcome and isinstance(outcome[0], (ConnectionLost, ClientClosed))
        if led:
            return
    pytest.fail("the caller never led")


def test_a_leader_gives_up_at_a_deadline_between_two_read_timeouts(server: FakeAMIServer) -> None:
    """A blocking leader read wakes every 50 ms; a deadline in between is kept to the promised 50 ms."""
    with make_client(server) as client:
        client.action("Ping")
        for timeout in (0.03, 0.13):
            started = time.monotonic()
            with pytest.raises(ActionTimeout):
                client.action("Never", timeout=timeout)
            elapsed = time.monotonic() - started
            assert timeout <= elapsed < timeout + SLACK


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="blocking leader reads are used on Linux only")
def test_a_leader_blocked_in_recv_wakes_by_its_deadline_not_a_kernel_tick_later(server: FakeAMIServer) -> None:
    """A deadline just over one read timeout away: the blocking read must end before it.

    The kernel rounds a socket's read timeout up to whole clock ticks and
    wakes a tick late: a 50 ms read timeout lasts ~56 ms (HZ=250), so a
    leader that started a read with 50.5 ms left returned ~5 ms late.
    """
    with make_client(server) as client:
        client.action("Ping")
        late: List[float] = []
        for _ in range(9):
            future = client.send_action("Never", timeout=0.051)
            with pytest.raises(ActionTimeout):
                client.wait(future)
            assert future.deadline is not None
            late.append(time.monotonic() - future.deadline)
        late.sort()
        assert late[len(late) // 2] < 0.003, late  # the median: a loaded machine may delay a few


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="blocking leader reads are used on Linux only")
def test_a_green_socket_keeps_the_non_blocking_mode() -> None:
    """gevent and eventlet wrap the C socket and wait cooperatively on EAGAIN: MSG_DONTWAIT would not stop them."""
    from amiclient._connection import _blocking_reads

    class GreenSocket:
        def __init__(self, sock: socket.socket) -> None:
            self._sock = sock

        def __getattr__(self, name: str) -> Any:
            return getattr(self._sock, name)
    left, right = socket.socketpair()
    try:
        left.setblocking(False)
        assert _blocking_reads(GreenSocket(left)) == 0  # type: ignore[arg-type]
        assert left.gettimeout() == 0.0  # untouched: the connection keeps it non-blocking
        assert _blocking_reads(right) == socket.MSG_DONTWAIT and right.gettimeout() is None
    finally:
        left.close()
        right.close()

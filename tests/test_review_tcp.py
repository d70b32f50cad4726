"""Adversarial review of the TCP client's promises (issue 7 and issue 8's helpers), after the hardening merge.

Each test was written against a defect found on main, and fails without its fix.
"""
from __future__ import annotations

import logging
import math
import os
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, Set, Tuple

import pytest

from amiclient import ActionTimeout, AMIClient, AMIConnectionError, AMIError, AuthenticationError
from amiclient.helpers import Append, Insert, NewCat, RenameCat
from amiclient.testing import FakeAMIServer, Fault, Recorder, TLSFront

USERS = {"admin": "s3cr3t!"}
SECRET = "hunter2-SeCrEt-7x"


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users=USERS) as srv:
        srv.add_handler("Echo", _echo)
        srv.add_handler("Silent", lambda session, packet: None)
        yield srv


def _echo(session: Any, packet: Any) -> List[Tuple[str, str]]:
    session.sleep(float(packet.get("Delay", "0")))
    return [("Response", "Success"), ("ActionID", packet.get("ActionID", "")), ("Tag", packet.get("Tag", ""))]


def make_client(server: FakeAMIServer, **options: Any) -> AMIClient:
    options.setdefault("reconnect", False)
    options.setdefault("timeout", 5.0)
    return AMIClient("127.0.0.1", server.port, "admin", USERS["admin"], **options)


def texts_of(error: BaseException) -> Iterator[str]:
    """str and repr of an exception and of everything chained to it."""
    seen: Set[int] = set()
    stack: List[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        stack.extend(linked for linked in (current.__cause__, current.__context__) if linked is not None)


# --------------------------------------------------------------------------- secrets in errors of any action

@pytest.mark.parametrize("header", ["Secret", "Key", "secret"])
@pytest.mark.parametrize("bad", [f" {SECRET}", f"{SECRET}\r\nAction: Originate", f"{SECRET}\n", f"{SECRET}\ud800",
                                 f"\t{SECRET}"], ids=["leading-blank", "crlf", "lf", "surrogate", "tab"])
def test_a_refused_secret_header_is_named_never_shown_on_every_action(server: FakeAMIServer, header: str, bad: str) -> None:
    """Security doc: "An error about a refused secret names the header, never its value" (action() too)."""
    with make_client(server) as client:
        before = len(server.received_actions)
        with pytest.raises(ValueError) as info:
            client.action("Login", {"Username": "admin", header: bad})
        assert header in str(info.value)
        for text in texts_of(info.value):
            assert "SeCrEt" not in text, text
        assert len(server.received_actions) == before
        assert client.ping().ok  # the connection is untouched


# --------------------------------------------------------------------------- timeouts of any size

def test_infinite_and_huge_timeouts_mean_no_limit_in_the_lifecycle(server: FakeAMIServer) -> None:
    """connect/wait_connected/close and a lazy client's wait for its link take inf/huge timeouts (no OverflowError)."""
    with make_client(server) as client:
        assert client.connect(timeout=math.inf) is client
        assert client.wait_connected(1e12) is True
        assert client.wait_connected(math.inf) is True
    client.close(timeout=math.inf)
    client = make_client(server)
    client.connect(timeout=1e12)
    client.close(timeout=None)

    server.set_fault(Fault.STALL)  # accepted, never a banner: each connect attempt fails after connect_timeout
    stalled = make_client(server, connect_timeout=0.3)
    with pytest.raises(AMIConnectionError):
        stalled.connect(timeout=math.inf)
    stalled.close()
    lazy = make_client(server, connect_timeout=0.3, lazy=True)
    started = time.monotonic()
    with pytest.raises(AMIConnectionError):
        lazy.action("Ping", timeout=math.inf)
    assert time.monotonic() - started < 3.0
    lazy.close(timeout=1e12)


def test_a_nan_timeout_is_a_value_error(server: FakeAMIServer) -> None:
    client = make_client(server)
    with pytest.raises(ValueError):
        client.connect(timeout=math.nan)
    with pytest.raises(ValueError):
        client.close(timeout=math.nan)
    client.close()


def test_action_with_an_infinite_or_huge_timeout_gets_its_answer(server: FakeAMIServer) -> None:
    with make_client(server) as client:
        assert client.action("Ping", timeout=math.inf).ok
        assert client.action("Ping", timeout=1e10).ok


@pytest.mark.parametrize("timeout", [-1.0, math.nan])
def test_a_negative_or_nan_action_timeout_is_refused_before_sending(server: FakeAMIServer, timeout: float) -> None:
    with make_client(server) as client:
        before = len(server.received_actions)
        with pytest.raises(ValueError):
            client.send_action("Echo", Tag="x", timeout=timeout)
        assert len(server.received_actions) == before


# --------------------------------------------------------------------------- close() in every state

def test_close_resolves_every_future_whatever_the_io_thread_did(server: FakeAMIServer) -> None:
    """close(0) racing the io thread's start: every future of the closed client resolves (timeout=None ones too).

    On main the io thread sometimes died in ``Connection.run`` (its socket
    closed before the reader began) without failing the actions it tracked;
    a ``timeout=None`` future then never resolved.
    """
    futures: List[Any] = []
    previous = threading.excepthook  # that crash is the test below; here only the futures count
    threading.excepthook = lambda args: None  # type: ignore[assignment]
    try:
        _close_racing_the_io_thread(server, futures)
    finally:
        threading.excepthook = previous
    for future in futures:
        assert future.exception(timeout=2.0) is not None  # ClientClosed (or ConnectionLost), never pending


def _close_racing_the_io_thread(server: FakeAMIServer, futures: List[Any]) -> None:
    for _ in range(40):
        client = make_client(server, lazy=True)

        def send(client: AMIClient = client) -> None:
            try:
                futures.append(client.send_action("Silent", timeout=None))
            except AMIError:
                pass

        sender = threading.Thread(target=send)
        sender.start()
        client.wait_connected(5.0)
        client.close(timeout=0)
        sender.join(5.0)
        client.close()
    deadline = time.monotonic() + 5.0
    while any(t.name.startswith("amiclient-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)  # close(0) leaves the threads to end on their own


def test_close_right_after_connect_never_kills_the_io_thread(server: FakeAMIServer) -> None:
    errors: List[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[assignment,misc]
    try:
        for _ in range(40):
            client = make_client(server, lazy=True)
            sender = threading.Thread(target=client.wait_connected, args=(5.0,))
            sender.start()
            client.connect()
            client.close(timeout=0)
            sender.join(5.0)
            client.close()
        deadline = time.monotonic() + 5.0
        while any(t.name.startswith("amiclient-") for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        threading.excepthook = previous
    assert not errors, errors[:3]


def test_close_with_no_time_left_does_not_blame_a_listener(server: FakeAMIServer, caplog: pytest.LogCaptureFixture) -> None:
    """close(timeout=0) on an idle client logged 'a listener has not returned', sending users hunting a ghost."""
    caplog.set_level(logging.WARNING)
    for _ in range(5):
        client = make_client(server)
        client.connect()
        client.ping()  # the io thread reads: the race with its start is the test above
        client.close(timeout=0)
        client.close()
    assert not [r for r in caplog.records if "has not returned" in r.getMessage()]
    deadline = time.monotonic() + 5.0
    while any(t.name.startswith("amiclient-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)


# --------------------------------------------------------------------------- ActionID collisions

def test_a_late_answer_never_reaches_a_new_action_reusing_its_actionid(server: FakeAMIServer) -> None:
    """README: an answer that arrives after its action timed out is discarded, never given to another action."""
    with make_client(server) as client:
        with pytest.raises(ActionTimeout):
            client.action("Echo", ActionID="dup", Tag="first", Delay="0.5", timeout=0.1)
        try:
            response = client.action("Echo", ActionID="dup", Tag="second", timeout=3.0)
        except ValueError:
            return  # refusing to reuse the ActionID while its answer may still come is fine too
        assert response["Tag"] == "second"


def test_a_callers_actionid_cannot_break_another_callers_action(server: FakeAMIServer) -> None:
    with make_client(server) as client:
        seen = client.action("Ping").action_id or ""
        prefix, _, number = seen.rpartition("-")
        blocking = client.send_action("Silent", ActionID=f"{prefix}-{int(number) + 1}", timeout=5.0)
        assert client.action("Ping", timeout=3.0).ok  # an innocent caller that gave no ActionID
        assert not blocking.done()


# --------------------------------------------------------------------------- auth="auto" and unverified TLS


def test_auto_never_sends_the_plain_secret_over_unverified_tls(server: FakeAMIServer, certificate: Tuple[Path, Path]) -> None:
    """A man in the middle of TLS that verifies nothing can refuse the challenge: no plain secret for him."""
    server.add_handler("Challenge", lambda session, packet: [
        ("Response", "Error"), ("ActionID", packet.get("ActionID", "")), ("Message", "Must specify AuthType")])
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with TLSFront(server.address, server_context) as front:
        client = AMIClient("127.0.0.1", front.port, "admin", USERS["admin"], tls=unverified, reconnect=False)
        with pytest.raises(AuthenticationError, match="verif"):
            client.connect()
        client.close()
        assert not [p for p in server.received_actions if p.get("Action") == "Login"]
        with AMIClient("127.0.0.1", front.port, "admin", USERS["admin"], tls=unverified, auth="plain",
                       reconnect=False) as client:  # asked for: sent
            assert client.ping().ok


# --------------------------------------------------------------------------- helpers with hostile input

def test_status_variables_as_one_string_is_one_variable(server: FakeAMIServer) -> None:
    """``status(variables="CALLERID")`` sent ``Variables: C,A,L,L,E,R,I,D`` (a str is a Sequence[str])."""
    with make_client(server) as client:
        client.status(variables="CALLERID")
        sent = [p for p in server.received_actions if p.get("Action") == "Status"][-1]
        assert sent["Variables"] == "CALLERID"


def test_new_category_inherits_from_one_template_given_as_a_string(server: FakeAMIServer) -> None:
    with make_client(server) as client:
        client.update_config("extensions.conf", [NewCat("300", inherit="base")])
        sent = [p for p in server.received_actions if p.get("Action") == "UpdateConfig"][-1]
        assert sent["Options-000000"] == "inherit=base"


@pytest.mark.parametrize("edit", [
    NewCat("1001](admin-template)"),          # written as [1001](admin-template)]: inherits a template
    NewCat("ok", inherit=["base,template"]),  # Options split on ',': a template flag nobody asked for
    NewCat("ok", inherit=["a|b"]),            # inherit split on '|'
    NewCat("ok", inherit=[""]),
    RenameCat("100", "x](admin)"),
    NewCat(""),
    Append("100", "#exec /bin/sh", "x"),       # a directive once the file is read back
    Append("100", "secret=open", "x"),         # another variable once read back
    Append("100", "a;b", "x"),                 # a comment once read back
    Append("100", "type ", "friend"),          # read back without the blank
    Insert("100", "[general]", "x", 0),
], ids=["category-brackets", "inherit-comma", "inherit-pipe", "inherit-empty", "rename-brackets", "empty-category",
        "var-directive", "var-equals", "var-semicolon", "var-blank", "var-brackets"])
def test_config_edits_that_would_restructure_the_file_are_refused(server: FakeAMIServer, edit: Any) -> None:
    with make_client(server) as client:
        before = len(server.received_actions)
        with pytest.raises(ValueError):
            client.update_config("sip.conf", [Append("100", "ok", "v"), edit])
        assert len(server.received_actions) == before


# --------------------------------------------------------------------------- hostile bytes from the server

def test_strict_decoding_skips_an_undecodable_packet_and_keeps_the_link(server: FakeAMIServer) -> None:
    """README: a malformed packet is skipped and counted without dropping the link (``encoding_errors="strict"`` too)."""
    seen = Recorder[Any]()
    with make_client(server, encoding_errors="strict") as client:
        client.add_listener(lambda event: seen(event.get("N")), "UserEvent")
        server.emit_raw(b"Event: UserEvent\r\nN: 1\r\n\r\nEvent: UserEvent\r\nN: \xff\xfe\r\n\r\n"
                        b"Event: UserEvent\r\nN: 3\r\n\r\n")
        assert seen.wait_for(2, timeout=5.0) == ["1", "3"]
        assert client.connected and client.ping().ok
        assert client.stats.malformed_packets == 1


@pytest.mark.parametrize("reason", ["--5", "\u00b2", "5x", ""])
def test_a_garbled_originate_reason_is_no_reason_not_a_value_error(reason: str) -> None:
    """A server's ``Reason: --5`` made OriginateFailed (and its message) raise ValueError instead."""
    from amiclient import Event, OriginateFailed
    from amiclient.helpers.calls import originate_failure_message

    event = Event.from_pairs([("Event", "OriginateResponse"), ("Response", "Failure"), ("Channel", "PJSIP/1"),
                              ("Reason", reason)])
    error = OriginateFailed(event, originate_failure_message(event))
    assert error.reason is None and "no reason given" in str(error)


# --------------------------------------------------------------------------- keepalive and long actions

def test_an_action_without_timeout_keeps_a_silent_link(server: FakeAMIServer) -> None:
    """README: while an action with a longer timeout is in flight the keepalive waits (timeout=None is the longest)."""
    with make_client(server, keepalive=0.2, ping_timeout=0.3) as client:
        assert client.action("Echo", Delay="1.2", Tag="forever", timeout=None)["Tag"] == "forever"


# --------------------------------------------------------------------------- values Python would spell, not the caller

@pytest.mark.parametrize("headers", [
    {"Variable": "X", "Value": b"abc"},                 # sent as "b'abc'"
    {"Variable": "X", "Value": bytearray(b"abc")},
    {"Variable": "X", "Value": ["a", None]},            # a None inside a list was sent as "None"
    {"Variable": "X", "Value": [["a", "b"]]},           # sent as "['a', 'b']"
    {"Variable": "X", "Value": [{"a": "b"}]},
], ids=["bytes", "bytearray", "none-in-list", "nested-list", "mapping-in-list"])
def test_values_that_python_would_spell_out_are_refused(server: FakeAMIServer, headers: Any) -> None:
    """Nothing is sent that the caller did not mean: ``str(b"abc")`` is not the value ``abc``."""
    with make_client(server) as client:
        before = len(server.received_actions)
        with pytest.raises(ValueError):
            client.action("Setvar", headers)
        assert len(server.received_actions) == before


# --------------------------------------------------------------------------- fork while connecting

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_the_parent_connects_does_not_keep_that_socket(server: FakeAMIServer) -> None:
    """The child kept the parent's half-open connection's socket (one leaked fd per pre-forked worker)."""
    server.set_fault(Fault.STALL)
    client = make_client(server, lazy=True, connect_timeout=5.0)
    client_thread = threading.Thread(target=_ignore_errors, args=(client.connect,))
    client_thread.start()
    deadline = time.monotonic() + 5.0
    while getattr(client._opening, "_sock", None) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    fd = client._opening._sock.fileno()  # type: ignore[union-attr]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            try:
                os.fstat(fd)
                code = 3  # still open in the child
            except OSError:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    client.close()
    client_thread.join(5.0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def _ignore_errors(function: Any) -> None:
    try:
        function()
    except AMIError:
        pass


# --------------------------------------------------------------------------- floods while a listener is stuck

EVENT = "Event: UserEvent\r\nUserEvent: Flood"


def _put_cost(dispatcher: Any, puts: int) -> float:
    started = time.perf_counter()
    for _ in range(puts):
        dispatcher.put_events([EVENT])
    return (time.perf_counter() - started) / puts


def test_a_full_queue_costs_the_reader_the_same_whatever_its_length() -> None:
    """drop_oldest copied the whole queue on every read once full: with 100k queued reads, the io thread
    spent milliseconds per read (seconds per second under a flood), so answers came late."""
    from amiclient._listeners import Dispatcher, ListenerRegistry

    small, large = Dispatcher(ListenerRegistry(), max_events=10), Dispatcher(ListenerRegistry(), max_events=100_000)
    for dispatcher, size in ((small, 10), (large, 100_000)):
        for _ in range(size):
            dispatcher.put_events([EVENT])
    for _ in range(3):  # the best of three: a loaded machine slows both alike
        ratio = _put_cost(large, 300) / _put_cost(small, 300)
        if ratio < 20:
            break
    assert ratio < 20, f"a put on a full queue of 100k reads costs {ratio:.0f} times one on a queue of 10"
    assert large.counts()[3] == 100_000


def test_events_dropped_around_a_state_callback_leave_nothing_behind(caplog: pytest.LogCaptureFixture) -> None:
    """Batches emptied behind a queued state callback stayed queued: each later read walked them again, and
    the dispatcher logged 'a callback raised' (IndexError) for every one of them."""
    from amiclient._listeners import Dispatcher, ListenerRegistry

    caplog.set_level(logging.WARNING)
    registry = ListenerRegistry()
    dispatcher = Dispatcher(registry, max_events=100, backlog_warning=10**9)
    for _ in range(100):
        dispatcher.put_events([EVENT])
    ran = threading.Event()
    dispatcher.call_soon(ran.set)
    for _ in range(300):
        dispatcher.put_events([EVENT])
    seen = Recorder[Any]()
    registry.add(seen)
    dispatcher.start()
    try:
        assert ran.wait(5.0)
        seen.wait_for(100, timeout=5.0)
    finally:
        dispatcher.stop(5.0)
    received, dispatched, dropped, queued = dispatcher.counts()
    assert (received, dispatched, dropped, queued) == (400, 100, 300, 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]


# --------------------------------------------------------------------------- errors crossing processes

def test_action_errors_survive_pickling(server: FakeAMIServer) -> None:
    """An ActionError raised in a multiprocessing worker could not be unpickled by the parent (broken pool)."""
    import pickle

    from amiclient import ActionError, Event, OriginateFailed

    with make_client(server) as client:
        with pytest.raises(ActionError) as info:
            client.hangup("PJSIP/nobody-00000001")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is ActionError and str(copy) == str(info.value) and copy.response == info.value.response
    event = Event.from_pairs([("Event", "OriginateResponse"), ("Response", "Failure"), ("Reason", "5")])
    failed = pickle.loads(pickle.dumps(OriginateFailed(event, "busy")))
    assert (failed.reason, failed.event, failed.response.message) == (5, event, "busy")


def test_a_list_response_keeps_its_items_when_pickled_or_copied(server: FakeAMIServer) -> None:
    """``status()``'s Response sent to another process (or copied) arrived without its events."""
    import copy
    import pickle

    name = server.simulate_call("PJSIP/100")
    with make_client(server) as client:
        response = client.action("Status")
        assert response.events and response.complete_event is not None
        for clone in (pickle.loads(pickle.dumps(response)), copy.copy(response), response.copy()):
            assert clone == response
            assert clone.events == response.events and clone.complete_event == response.complete_event
    if name:
        server.hangup(name)


@pytest.mark.parametrize("call", [
    lambda c: c.action("Ping", {"Action": "Hangup", "Channel": "PJSIP/100-00000001"}),
    lambda c: c.action("Ping", ACTION="Hangup"),
    lambda c: c.action({"Action": "Ping", "action": "Hangup"}),
], ids=["headers", "kwargs", "mapping"])
def test_an_action_named_twice_is_refused(server: FakeAMIServer, call: Any) -> None:
    """``Action: Ping`` plus ``Action: Hangup`` went out as one action: Asterisk runs the first, whichever that is."""
    with make_client(server) as client:
        before = len(server.received_actions)
        with pytest.raises(ValueError):
            call(client)
        assert len(server.received_actions) == before


def test_close_wakes_a_thread_waiting_for_the_connection(server: FakeAMIServer) -> None:
    """wait_connected() (no timeout) on a client that is down never returned once another thread closed it."""
    server.set_fault(Fault.STALL)
    client = make_client(server, connect_timeout=10.0)
    connecting = threading.Thread(target=_ignore_errors, args=(client.connect,))
    connecting.start()
    outcome: List[bool] = []
    waiter = threading.Thread(target=lambda: outcome.append(client.wait_connected()), daemon=True)
    waiter.start()
    waiter.join(0.2)
    started = time.monotonic()
    client.close(timeout=1.0)
    waiter.join(2.0)
    connecting.join(2.0)
    assert outcome == [False] and time.monotonic() - started < 2.5


def test_connect_while_reconnecting_returns_only_once_connected(server: FakeAMIServer) -> None:
    """connect() during a reconnect returned at once, not connected ("Connect, read the banner and log in")."""
    from amiclient import Backoff

    client = make_client(server, reconnect=True, backoff=Backoff(base=0.05, cap=0.1), connect_timeout=0.3)
    states = Recorder[Any]()
    client.on_state(states)
    with client:
        server.set_fault(Fault.STALL)  # every new connection hangs before its banner
        server.drop_all()
        states.wait_for(1, lambda change: change.state.value == "disconnected", timeout=5.0)
        started = time.monotonic()
        with pytest.raises(AMIConnectionError):
            client.connect(timeout=0.5)
        assert 0.4 < time.monotonic() - started < 2.0
        server.clear_faults()
        server.drop_all()  # the stalled attempt ends; the next one gets a banner
        assert client.connect(timeout=10.0) is client and client.connected

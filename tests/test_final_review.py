"""Final review of the integrator's seams: add_listener's wait, timeouts, ActionIDs, framing, the events CLI."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amiclient import AMIClient, AMIHTTPClient, Backoff
from amiclient.testing import FakeAJAMServer, FakeAMIServer

from .http_support import SECRET, ajam_servers


@pytest.fixture
def servers() -> Iterator[Tuple[FakeAMIServer, FakeAJAMServer]]:
    with ajam_servers() as pair:
        yield pair


def make(ajam: Any, **options: Any) -> AMIHTTPClient:
    settings: dict = dict(timeout=5.0, poll_timeout=5.0, backoff=Backoff(base=0.05, cap=0.1, jitter=0))  # type: ignore[type-arg]
    settings.update(options)
    return AMIHTTPClient(ajam.url, "admin", SECRET, **settings)


# ---------------------------------------------------------------------- 1. add_listener's wait for the event mask


def test_every_add_listener_returns_at_once_while_the_poller_backs_off(
        servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    """Not only the first: a later add_listener() must not wait out ``timeout`` while the poller sleeps."""
    _, ajam = servers
    with make(ajam, timeout=30.0, backoff=Backoff(base=30, cap=30, jitter=0)) as client:
        ajam.inject("status", "Events", times=1000, status=502)
        for attempt in range(2):
            returned = threading.Event()
            thread = threading.Thread(target=lambda: (client.add_listener(lambda e: None), returned.set()))
            thread.start()
            try:
                assert returned.wait(3), f"add_listener #{attempt + 1} blocked while the poller was backing off"
            finally:
                if not returned.is_set():
                    client.close()
                thread.join(5)


# ---------------------------------------------------------------------- 2. one timeout rule on every path


@pytest.mark.parametrize("timeout", [None, float("inf"), 1e300])
def test_originate_wait_with_no_time_limit_returns_the_originate_response(timeout: Any) -> None:
    """None / inf / huge mean no limit; the wait for OriginateResponse must not raise OverflowError after sending."""
    with FakeAMIServer(users={"admin": SECRET}) as server:
        server.hold_calls = True
        with AMIClient("127.0.0.1", server.port, "admin", SECRET, reconnect=False, timeout=5.0) as client:
            event = client.originate("Local/100@test", exten="200", context="test", wait=True, ring_timeout=5,
                                     channel_id="uid-1", timeout=timeout)
            assert event.name == "OriginateResponse" and event["Response"] == "Success"


@pytest.mark.parametrize("call", [
    lambda c: c.actions.cancel_atxfer("PJSIP/1-0001", timeout=-1),
    lambda c: c.actions.cancel_atxfer("PJSIP/1-0001", timeout=float("nan")),
    lambda c: c.actions.cancel_atxfer("PJSIP/1-0001\r\nAction: Hangup"),
], ids=["negative", "nan", "crlf"])
def test_typed_action_refuses_bad_input_before_sending_anything(call: Callable[[Any], Any]) -> None:
    """client.actions.* of a version-dependent action must not send CoreSettings before refusing bad caller data."""
    with FakeAMIServer(users={"admin": SECRET}) as server:
        with AMIClient("127.0.0.1", server.port, "admin", SECRET, reconnect=False, timeout=5.0) as client:
            before = len(server.received_actions)
            with pytest.raises(ValueError):
                call(client)
            client.ping()
            assert [p.action for p in server.received_actions[before:]] == ["Ping"]


# ---------------------------------------------------------------------- 3. generated ActionIDs vs a caller's


def test_generated_action_id_taken_by_a_racing_caller_is_replaced_not_raised() -> None:
    """A caller's ActionID registered between the generator's check and the send must not fail an ID-less action."""
    with FakeAMIServer(users={"admin": SECRET}) as server:
        server.add_handler("WaitEvent", lambda session, packet: None)  # never answered: stays in flight
        with AMIClient("127.0.0.1", server.port, "admin", SECRET, reconnect=False, timeout=5.0) as client:
            original = client._next_action_id
            raced: List[str] = []

            def racing() -> str:
                action_id = original()
                if not raced:  # another thread sends with this very ActionID right after the check
                    raced.append(action_id)
                    client.send_action("WaitEvent", ActionID=action_id, Timeout=30)
                return action_id

            client._next_action_id = racing  # type: ignore[method-assign]
            assert client.action("Ping").ok
            assert raced and [p.action_id for p in server.received_actions if p.action == "Ping"][-1] != raced[0]


# ---------------------------------------------------------------------- 4. framing with stray blank lines

_values = st.text(alphabet="abc :-/=", max_size=6)
_header = st.tuples(st.sampled_from(["ActionID", "Channel", "Message", "Value", "Output"]), _values)
_plain = st.builds(
    lambda first, headers: "\r\n".join([first] + [f"{k}: {v}" for k, v in headers]),
    st.sampled_from(["Response: Success", "Event: UserEvent", "Response: Error"]), st.lists(_header, max_size=3))
_legacy = st.builds(  # Asterisk 13 Command output: raw lines (blank ones too) up to --END COMMAND--
    lambda lines: "Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n" + "".join(f"{line}\n" for line in lines)
    + "--END COMMAND--",
    st.lists(st.sampled_from(["", "out", "a: b", "\r"]), max_size=4))


def _meaning(texts: List[str]) -> List[Tuple[str, Tuple[Tuple[str, str], ...]]]:
    from amiclient._protocol import parse_packet

    out = []
    for text in texts:
        if text.strip("\r\n") == "":
            continue
        packet = parse_packet(text)
        out.append((type(packet).__name__, tuple(packet.pairs) if hasattr(packet, "pairs") else tuple(packet.items()),
                    getattr(packet, "output", None)))
    return out  # type: ignore[return-value]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.one_of(_plain, _legacy), st.integers(0, 3)), min_size=1, max_size=4), st.booleans())
def test_stray_blank_lines_never_change_a_packet_wherever_the_reads_split(
        packets: List[Tuple[str, int]], lead: bool) -> None:
    from amiclient._protocol import Framer

    banner = b"Asterisk Call Manager/2.10.6\r\n" + (b"\r\n" if lead else b"")
    clean = banner.replace(b"\r\n\r\n", b"\r\n") + b"".join(text.encode() + b"\r\n\r\n" for text, _ in packets)
    stray = banner + b"".join(text.encode() + b"\r\n\r\n" + b"\r\n" * blanks for text, blanks in packets)
    expected = _meaning(Framer().feed(clean))
    assert len(expected) == len(packets)
    for cut in range(len(stray) + 1):
        framer = Framer()
        texts = framer.feed(stray[:cut]) + framer.feed(stray[cut:])
        assert _meaning(texts) == expected, cut


# ---------------------------------------------------------------------- 5. `amiclient --url ... events` over HTTP


def _events_over_http(tmp_path: Any, server: FakeAMIServer, http: FakeAJAMServer, *args: str) -> subprocess.Popen[str]:
    from .test_cli import clean_env

    env = {**clean_env(tmp_path, AMI_SECRET=SECRET), "AMI_USERNAME": "admin"}
    proc = subprocess.Popen([sys.executable, "-m", "amiclient", "--url", http.url, "events", *args], env=env,
                            cwd=str(Path(__file__).resolve().parent.parent), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and "Listening" in proc.stderr.readline()
    return proc


@pytest.mark.parametrize("how", ["sigint", "lost"])
def test_events_over_http_end_cleanly_on_sigint_and_on_connection_loss(tmp_path: Any, how: str) -> None:
    with FakeAMIServer(users={"admin": SECRET}) as server:
        http = FakeAJAMServer(server)
        http.__enter__()
        try:
            proc = _events_over_http(tmp_path, server, http, "Hangup", "--json")
            try:
                server.emit("Hangup", Channel="PJSIP/1-1")
                assert proc.stdout is not None and json.loads(proc.stdout.readline())["Channel"] == "PJSIP/1-1"
                if how == "sigint":
                    proc.send_signal(signal.SIGINT)
                else:
                    http.__exit__(None, None, None)
                out, err = proc.communicate(timeout=25)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        finally:
            if how == "sigint":
                http.__exit__(None, None, None)
        assert "Traceback" not in err and SECRET not in err
        if how == "sigint":
            assert proc.returncode == 130, err
            assert any(p.get("Action") == "Logoff" for p in server.received_actions)
        else:
            assert proc.returncode == 3, err
            assert err.strip().splitlines()[-1].startswith("amiclient: connection lost"), err


def test_remove_listener_does_not_wait_for_the_event_mask(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    """Only add_listener() waits for events to be on; removing one never stalls on a slow Events answer."""
    _, ajam = servers
    with make(ajam, timeout=10.0, events=False) as client:
        first = client.add_listener(lambda e: None)
        client.add_listener(lambda e: None)
        client.events = True
        ajam.inject("stall", "Events", delay=4.0)
        adder = threading.Thread(target=lambda: client.add_listener(lambda e: None))
        adder.start()
        try:
            deadline = time.monotonic() + 5
            while not ajam.requests_of("Events") and time.monotonic() < deadline:
                threading.Event().wait(0.01)
            assert ajam.requests_of("Events")
            started = time.monotonic()
            assert client.remove_listener(first)
            assert time.monotonic() - started < 2.0, "remove_listener waited for the Events answer"
        finally:
            adder.join(15)


@pytest.mark.parametrize("kind", ["tcp", "http"])
def test_a_client_wide_infinite_timeout_means_no_limit_on_both_transports(
        servers: Tuple[FakeAMIServer, FakeAJAMServer], kind: str) -> None:
    """timeout=inf on the client: connect, actions and add_listener work (HTTP raised OverflowError)."""
    server, ajam = servers
    client: Any = make(ajam, timeout=float("inf")) if kind == "http" else AMIClient(
        "127.0.0.1", server.port, "admin", SECRET, reconnect=False, timeout=float("inf"))
    with client:
        seen = threading.Event()
        client.add_listener(lambda e: seen.set(), event="UserEvent")
        assert client.action("Ping").ok
        client.user_event("Hello")
        assert seen.wait(10)


def test_set_events_wakes_an_add_listener_waiting_for_the_mask(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    """set_events() turns the session's events on: a waiting add_listener() returns then, not at the poller's answer."""
    _, ajam = servers
    with make(ajam, timeout=10.0) as client:
        ajam.inject("stall", "Events", delay=6.0)  # the poller's Events answer is slow; set_events' is not
        returned = threading.Event()
        adder = threading.Thread(target=lambda: (client.add_listener(lambda e: None), returned.set()))
        adder.start()
        try:
            deadline = time.monotonic() + 5
            while not ajam.requests_of("Events") and time.monotonic() < deadline:
                threading.Event().wait(0.01)
            client.set_events(True)
            assert returned.wait(2.0), "add_listener kept waiting after set_events() turned events on"
        finally:
            adder.join(15)


@pytest.mark.parametrize("bad", [None, 0, -1.0, math.nan, "10", True])
def test_a_client_default_timeout_that_is_not_seconds_is_refused_at_construction(bad: Any) -> None:
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        AMIClient("127.0.0.1", 1, "u", "s", timeout=bad)
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        AMIHTTPClient("http://127.0.0.1:1/asterisk", "u", "s", timeout=bad)

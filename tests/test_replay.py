"""Recorded Asterisk 22 and 13 sessions replayed byte for byte to the real client."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest

from amiclient import ActionError, AMIClient, AMIError, AuthenticationError, Event, Response
from amiclient._protocol import Framer, parse_packet
from amiclient.testing import FakeAMIServer, Recorder, ReplayServer

from .conftest import load_chunks

SECRET = "s3cr3t!"


def client_actions(chunks: List[Dict[str, str]]) -> List[List[Tuple[str, str]]]:
    """The recorded client packets as ordered (key, value) pairs."""
    packets = []
    for chunk in chunks:
        if chunk["dir"] != "c2s":
            continue
        for text in chunk["data"].replace("\r\n", "\n").split("\n\n"):
            if text.strip():
                packets.append([tuple(line.split(":", 1)) for line in text.split("\n")])  # type: ignore[misc]
    return [[(k.strip(), v.strip()) for k, v in packet] for packet in packets]


def as_fields(pairs: List[Tuple[str, str]]) -> Dict[str, Any]:
    fields: Dict[str, Any] = {}
    for key, value in pairs:
        if key in fields:
            previous = fields[key]
            fields[key] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            fields[key] = value
    return fields


def expected(chunks: List[Dict[str, str]]) -> Tuple[Dict[str, Response], List[Event]]:
    """What the recording says the client must see: responses (with list items) by ActionID, other events in order."""
    framer = Framer()
    packets = [parse_packet(t) for c in chunks if c["dir"] == "s2c" for t in framer.feed(c["data"].encode())]
    responses: Dict[str, Response] = {}
    events: List[Event] = []
    open_lists: Dict[str, Response] = {}
    anonymous = 0
    for packet in packets:
        if isinstance(packet, Response):
            key = packet.action_id or f"anonymous-{anonymous}"
            anonymous += packet.action_id is None
            responses[key] = packet
            if packet.get("EventList", "").lower() == "start":
                open_lists[key] = packet
        elif isinstance(packet, Event) and packet.action_id in open_lists:
            owner = open_lists[packet.action_id]  # type: ignore[index]
            if packet.get("EventList", "").lower() == "complete":
                del open_lists[packet.action_id]  # type: ignore[arg-type]
            else:
                owner.events.append(packet)
        elif isinstance(packet, Event):
            events.append(packet)
    return responses, events


@pytest.mark.parametrize("recording", ["asterisk-22/session.json", "asterisk-13/session.json"])
def test_full_session_replays_through_the_client(recording: str) -> None:
    chunks = load_chunks(recording)
    want_responses, want_events = expected(chunks)
    actions = client_actions(chunks)
    assert [dict(a).get("Action") for a in actions[:2]] == ["Challenge", "Login"]
    recorder: Recorder[Event] = Recorder()
    with ReplayServer(chunks) as server:
        client = AMIClient("127.0.0.1", server.port, "admin", SECRET, auth="md5", reconnect=False, timeout=5)
        client.add_listener(recorder)
        client.connect()
        assert client.ami_version == ("11.0.0" if "22" in recording else "2.10.6")
        got: Dict[str, Response] = {}
        anonymous = 0
        for pairs in actions[2:-1]:  # after login; close() sends the recorded Logoff
            fields = as_fields(pairs)
            response = client.send_action(fields).result(5)
            key = fields.get("ActionID") or f"anonymous-{anonymous}"
            anonymous += "ActionID" not in fields
            got[key] = response
        client.close()
        assert server.done.wait(5)
    for key, response in got.items():
        if key.startswith("anonymous"):
            assert dict(response) == dict(want_responses[key])  # matched to its caller although it has no ActionID
            continue
        want = want_responses[key]
        assert dict(response) == dict(want) and response.ok == (want.status not in ("Error", "Failure")), key
        assert [dict(e) for e in response.events] == [dict(e) for e in want.events], key
        for name in ("Output", "Variable", "Multi"):
            assert response.getlist(name) == want.getlist(name)
    assert got["cmd2"].output.splitlines()[0].startswith("System uptime:")
    events = recorder.wait_for(len(want_events))
    assert [dict(e) for e in events] == [dict(e) for e in want_events]
    originate = [e for e in events if e.name == "OriginateResponse"]
    if "22" in recording:
        assert {e.action_id for e in originate} >= {"orig1", "orig3"}


def test_reader_without_permission_gets_action_errors() -> None:
    chunks = load_chunks("asterisk-22/errors.json", "reader_permission_denied")
    with ReplayServer(chunks) as server:
        with AMIClient("127.0.0.1", server.port, "reader", "readonly", auth="plain", events=False,
                       reconnect=False, timeout=5) as client:
            with pytest.raises(ActionError, match="Permission denied"):
                client.originate("Local/100@test", application="Wait", data="1", asynchronous=False)
            with pytest.raises(ActionError, match="Permission denied"):
                client.command("core show uptime")
            assert client.ping()["Ping"] == "Pong"


@pytest.mark.parametrize("session", ["events_off_login", "filtered_user"])
def test_login_variants_replay(session: str) -> None:
    chunks = load_chunks("asterisk-22/errors.json", session)
    recorder: Recorder[Event] = Recorder()
    want_responses, want_events = expected(chunks)
    user = "filtered" if session == "filtered_user" else "admin"
    with ReplayServer(chunks) as server:
        client = AMIClient("127.0.0.1", server.port, user, "x", auth="plain", events=session != "events_off_login",
                           reconnect=False, timeout=5)
        client.add_listener(recorder)
        client.connect()
        for pairs in client_actions(chunks)[1:-1]:
            client.send_action(as_fields(pairs)).result(5)
        client.close()
    assert [dict(e) for e in recorder.wait_for(len(want_events))] == [dict(e) for e in want_events]


def test_bad_password_is_an_authentication_error() -> None:
    chunks = [c for c in load_chunks("asterisk-22/errors.json", "bad_password") if "Action: Ping" not in c["data"]]
    with ReplayServer(chunks) as server:
        client = AMIClient("127.0.0.1", server.port, "admin", "wrong", auth="plain", reconnect=False)
        with pytest.raises(AuthenticationError, match="Authentication failed"):
            client.connect()
        client.close()


@pytest.mark.parametrize("session", ["unknown_user", "md5_bad_key"])
def test_unanswered_login_never_hangs(session: str) -> None:
    chunks = load_chunks("asterisk-22/errors.json", session)
    with ReplayServer(chunks) as server:
        client = AMIClient("127.0.0.1", server.port, "nobody", "x", auth="md5" if "md5" in session else "plain",
                           reconnect=False, timeout=0.5)
        with pytest.raises(AMIError):
            client.connect()
        client.close()


def test_fake_security_events_have_the_recorded_shape() -> None:
    """Where the fake and a recording could disagree, the recording wins: same keys, same order."""
    recorded = {e.name: [k for k, _ in e.items_all()] for e in expected(load_chunks("asterisk-22/session.json"))[1]
                if e.name in ("SuccessfulAuth", "RequestBadFormat")}
    seen: Recorder[Event] = Recorder()
    with FakeAMIServer(users={"admin": SECRET}, security_events=True) as server:
        client = AMIClient("127.0.0.1", server.port, "admin", SECRET, auth="md5", reconnect=False)
        client.add_listener(seen, event=["SuccessfulAuth", "RequestBadFormat"])
        with client.connect():
            client.send_action("NoSuchAction").result(5)
            events = seen.wait_for(2)
    assert {e.name: [k for k, _ in e.items_all()] for e in events} == recorded
    assert all(e["UsingPassword"] == "0" for e in events if e.name == "SuccessfulAuth")


SHAPE_CHECKED = {"ping", "coresettings", "corestatus", "command", "dbput", "dbget", "dbgettree", "dbdel", "setvar",
                 "getvar", "extensionstate", "userevent", "nosuchaction", "events", "filter", "challenge",
                 "queuestatus", "queuesummary", "queueadd", "queuepause", "queueremove"}
#: Values that are clock readings, compared by shape only.
CLOCK_KEYS = {"LoginTime", "LastPause"}


def is_queue_event(event: Event) -> bool:
    """An event the queue actions cause: QueueMember* and the queue's device states."""
    return event.name.startswith("QueueMember") or event.get("Device", "").startswith("Queue:")


def event_shape(event: Event) -> List[Tuple[str, str]]:
    """Event keys in order with their values (clock readings masked)."""
    return [(k, "T" if k in CLOCK_KEYS and v != "0" else v) for k, v in event.items_all()]


def test_fake_answers_the_recorded_actions_in_the_recorded_shape() -> None:
    """Each recorded action sent to the fake: same response keys in the same order, same Response and Message.

    The events the queue actions cause must have the recorded names, order, keys and values.
    """
    chunks = load_chunks("asterisk-22/session.json")
    want, want_events = expected(chunks)
    recorded_queue_events = [event_shape(e) for e in want_events if is_queue_event(e)]
    seen: Recorder[Event] = Recorder()
    with FakeAMIServer(users={"admin": SECRET}) as server:
        server.hints[("100", "test")] = ("", -1)
        server.command_outputs["dialplan show test"] = "[ Context 'test' created by 'pbx_config' ]"
        with AMIClient("127.0.0.1", server.port, "admin", SECRET, reconnect=False, timeout=5) as client:
            client.add_listener(seen, filter=is_queue_event)
            checked = set()
            for pairs in client_actions(chunks)[2:-1]:
                fields = as_fields(pairs)
                if fields["Action"].lower() not in SHAPE_CHECKED or "ActionID" not in fields:
                    continue
                got = client.send_action(fields).result(5)
                recorded = want[fields["ActionID"]]
                assert list(got) == list(recorded), fields
                assert (got.status, got.message) == (recorded.status, recorded.message), fields
                assert [e.name for e in got.events] == [e.name for e in recorded.events], fields
                assert [list(e) for e in got.events] == [list(e) for e in recorded.events], fields
                checked.add(fields["ActionID"])
            seen.wait_for(len(recorded_queue_events))
            client.ping()  # a surplus event would have been sent before this answer
    assert len(checked) >= 28 and {"qs1", "qsum1", "qa1", "qp1", "qs2", "qr1"} <= checked
    assert len(recorded_queue_events) == 8
    assert [event_shape(e) for e in seen.items] == recorded_queue_events

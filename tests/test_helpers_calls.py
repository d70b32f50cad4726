"""Call helpers against the fake Asterisk: originate(wait=True), transfers, bridge, park, DTMF, text, hangup timers.

Where the fake has no model for an action, a handler answers with the
packets of the Asterisk 22 recordings (transfers.json, calls-bridged.json),
ActionID swapped in, and with Asterisk's error messages.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterator, List

import pytest

from amiclient import ActionError, ActionTimeout, AMIClient, ConnectionLost, Event, OriginateFailed
from amiclient.testing import FakeAMIServer, Packet, Recorder, Session, build_response

SECRET = "s3cr3t!"


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users={"admin": SECRET}) as srv:
        yield srv


@pytest.fixture
def client(server: FakeAMIServer) -> Iterator[AMIClient]:
    with AMIClient("127.0.0.1", server.port, "admin", SECRET, reconnect=False, timeout=5.0) as c:
        yield c


def sent(server: FakeAMIServer, action: str) -> Packet:
    return [p for p in server.received_actions if p.action.lower() == action.lower()][-1]


def body(packet: Packet) -> List[tuple]:
    return [(k, v) for k, v in packet.pairs if k.lower() not in ("action", "actionid")]


def channel_action(ok: str, missing: str, key: str = "Channel") -> Callable[[Session, Packet], object]:
    """A handler that acks with ``ok`` when the channel is live, else errors with ``missing``."""
    def handle(session: Session, packet: Packet) -> object:
        if session.server.calls.find(packet.get(key, "")) is None:
            return build_response(packet, missing, "Error")
        return build_response(packet, ok)
    return handle


def hold_call(server: FakeAMIServer, channel: str = "Local/200@test") -> str:
    name = server.simulate_call(channel, application="Wait", data="30")
    assert name is not None
    return name


# -- originate(wait=True) ---------------------------------------------------------------------------------


def test_originate_wait_returns_the_answered_calls_originate_response(server: FakeAMIServer, client: AMIClient) -> None:
    server.hold_calls = True
    event = client.originate("Local/100@test", exten="200", context="test", caller_id='"Ann" <7>', wait=True,
                             ring_timeout=5, channel_id="uid-1")
    assert isinstance(event, Event) and event.name == "OriginateResponse"
    assert (event["Response"], event["Reason"], event["Uniqueid"], event["CallerIDName"]) == ("Success", "4", "uid-1", "Ann")
    packet = sent(server, "Originate")
    assert packet["Async"] == "true" and packet["Timeout"] == "5000" and packet["Priority"] == "1"
    assert event.action_id == packet.action_id


@pytest.mark.parametrize("channel, reason, words", [
    ("Local/busy@test", 5, "busy"), ("Local/congestion@test", 8, "congestion"),
    ("Local/noanswer@test", 3, "not answered"), ("Local/nosuch@test", 0, "no such extension"),
])
def test_originate_wait_raises_with_the_reason_explained(server: FakeAMIServer, client: AMIClient, channel: str,
                                                         reason: int, words: str) -> None:
    server.originate_reasons["Local/nosuch@*"] = 0
    with pytest.raises(OriginateFailed) as info:
        client.originate(channel, application="Wait", data="1", wait=True)
    error = info.value
    assert isinstance(error, ActionError) and error.reason == reason and error.event["Response"] == "Failure"
    assert words in str(error) and f"reason {reason}" in str(error) and channel in str(error)


def test_concurrent_originate_waits_each_get_their_own_outcome(server: FakeAMIServer, client: AMIClient) -> None:
    server.originate_delay = 0.2  # both are in flight together; the busy one reports while the other waits
    results: dict = {}

    def run(channel: str) -> None:
        try:
            results[channel] = client.originate(channel, application="Wait", data="1", wait=True)
        except OriginateFailed as exc:
            results[channel] = exc

    threads = [threading.Thread(target=run, args=(c,)) for c in ("Local/ok@test", "Local/busy@test")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert isinstance(results["Local/ok@test"], Event) and results["Local/ok@test"]["Response"] == "Success"
    assert isinstance(results["Local/busy@test"], OriginateFailed) and results["Local/busy@test"].reason == 5


def _old_originate(session: Session, packet: Packet) -> object:
    """An Originate of a server whose OriginateResponse has no ActionID (matched by ChannelId)."""
    foreign = ("Event: OriginateResponse\r\nPrivilege: call,all\r\nResponse: Failure\r\nChannel: SIP/other\r\n"
               "Reason: 5\r\nUniqueid: someone-else\r\n\r\n")
    mine = ("Event: OriginateResponse\r\nPrivilege: call,all\r\nResponse: Success\r\nChannel: %s-00000001\r\n"
            "Reason: 4\r\nUniqueid: %s\r\n\r\n" % (packet.get("Channel"), packet.get("ChannelId") or "<unknown>"))
    ack = "Response: Success\r\nActionID: %s\r\nMessage: Originate successfully queued\r\n\r\n" % packet.action_id
    return (ack + foreign + mine).encode()


def test_originate_wait_matches_by_channel_id_when_the_server_sends_no_action_id(server: FakeAMIServer,
                                                                                  client: AMIClient) -> None:
    server.add_handler("Originate", _old_originate)
    event = client.originate("SIP/100", application="Wait", channel_id="my-uid", wait=True, ring_timeout=2)
    assert (event["Uniqueid"], event["Response"]) == ("my-uid", "Success")
    with pytest.raises(ActionTimeout):  # without a ChannelId nothing can be matched: never someone else's result
        client.originate("SIP/100", application="Wait", wait=True, ring_timeout=0.2, timeout=0.2)


def test_originate_wait_fails_fast_on_an_error_response_and_leaves_no_listener(server: FakeAMIServer,
                                                                             client: AMIClient) -> None:
    seen: Recorder[Event] = Recorder()
    client.add_listener(seen, event="OriginateResponse")
    with pytest.raises(ActionError) as info:
        client.originate("nochannel", application="Wait", wait=True)
    assert info.value.response.message == "Invalid channel"
    server.emit("OriginateResponse", ActionID=sent(server, "Originate").action_id or "", Response="Success")
    seen.wait_for(1)
    assert len(client._registry.match("OriginateResponse")) == 1  # only the test's own listener is left


def test_originate_wait_without_call_events_times_out_with_a_hint(server: FakeAMIServer) -> None:
    with AMIClient("127.0.0.1", server.port, "admin", SECRET, reconnect=False, events=False) as quiet:
        started = time.monotonic()
        with pytest.raises(ActionTimeout) as info:
            quiet.originate("Local/1@test", application="Wait", wait=True, ring_timeout=0.2, timeout=0.3)
        assert time.monotonic() - started < 2.0 and "call events" in str(info.value)


def test_originate_wait_inside_a_listener_is_refused(server: FakeAMIServer, client: AMIClient) -> None:
    outcome: List[BaseException] = []
    done = threading.Event()

    def listener(event: Event) -> None:
        try:
            client.originate("Local/1@test", application="Wait", wait=True)
        except BaseException as exc:  # noqa: B902 - recorded for the assertion
            outcome.append(exc)
        done.set()

    client.add_listener(listener, event="UserEvent")
    client.user_event("go")
    assert done.wait(5)
    assert isinstance(outcome[0], RuntimeError) and "listener" in str(outcome[0])


def test_originate_argument_rules(server: FakeAMIServer, client: AMIClient) -> None:
    before = len(server.received_actions)
    for kwargs in ({"application": "Wait", "exten": "1"}, {"exten": "1"}, {"data": "x"},
                   {"application": "Wait;Hangup"}, {"application": "Wait", "codecs": ["ulaw,alaw"]},
                   {"application": "Wait", "Channel": "Local/2@x"}):
        with pytest.raises(ValueError):
            client.originate("Local/1@test", **kwargs)  # type: ignore[arg-type]
    assert server.received_actions[before:] == []
    client.originate("Local/1@test", application="Dial", data=["PJSIP/a&PJSIP/b", "30", "tT"], codecs=["ulaw", "alaw"],
                     early_media=True, account="acc", other_channel_id="o-1", PreDialGoSub="sub,s,1")
    packet = sent(server, "Originate")
    assert body(packet) == [("Channel", "Local/1@test"), ("Application", "Dial"), ("Data", "PJSIP/a&PJSIP/b,30,tT"),
                            ("Account", "acc"), ("OtherChannelId", "o-1"), ("EarlyMedia", "true"),
                            ("Codecs", "ulaw,alaw"), ("PreDialGoSub", "sub,s,1"), ("Async", "true")]


def test_originate_variables_set_a_hangup_time(server: FakeAMIServer, client: AMIClient) -> None:
    server.hold_calls = True
    event = client.originate("Local/1@test", application="Wait", variables={"TIMEOUT(absolute)": 3600}, wait=True)
    assert server.channels[event["Channel"]].variables == {"TIMEOUT(absolute)": "3600"}


# -- transfers, bridge, park, DTMF, text, AbsoluteTimeout (shapes from the recordings) ----------------


def test_blind_transfer_and_atxfer(server: FakeAMIServer, client: AMIClient) -> None:
    server.add_handler("BlindTransfer", channel_action("Transfer succeeded", "No channel found"))
    server.add_handler("Atxfer", channel_action("Atxfer successfully queued", "Channel specified does not exist"))
    name = hold_call(server)
    assert client.blind_transfer(name, "call1", "rec").message == "Transfer succeeded"
    assert body(sent(server, "BlindTransfer")) == [("Channel", name), ("Exten", "call1"), ("Context", "rec")]
    assert client.atxfer(name, "800").message == "Atxfer successfully queued"
    assert body(sent(server, "Atxfer")) == [("Channel", name), ("Exten", "800")]
    with pytest.raises(ActionError) as info:
        client.atxfer("SIP/gone-1", "800", "rec")
    assert info.value.response.message == "Channel specified does not exist"


def test_bridge_park_dtmf_text(server: FakeAMIServer, client: AMIClient) -> None:
    server.add_handler("Bridge", channel_action("Channels have been bridged", "Unable to create bridge\n", "Channel1"))
    server.add_handler("Park", channel_action("Park successful\n", "Channel does not exist"))
    server.add_handler("PlayDTMF", channel_action("DTMF successfully queued", "Channel not found"))
    server.add_handler("SendText", channel_action("Success", "No such channel"))
    one, two = hold_call(server), hold_call(server, "Local/300@test")
    assert client.bridge(one, two, tone=True).message == "Channels have been bridged"
    assert body(sent(server, "Bridge")) == [("Channel1", one), ("Channel2", two), ("Tone", "yes")]
    with pytest.raises(ActionError) as info:
        client.bridge("SIP/gone-1", two)
    assert info.value.response.message == "Unable to create bridge"  # the recorded trailing LF is stripped
    assert client.park(one, park_seconds=45, parking_lot="default").message == "Park successful"
    assert body(sent(server, "Park")) == [("Channel", one), ("Timeout", "45000"), ("Parkinglot", "default")]
    assert client.play_dtmf(one, "#", duration_ms=250).message == "DTMF successfully queued"
    assert body(sent(server, "PlayDTMF")) == [("Channel", one), ("Digit", "#"), ("Duration", "250")]
    for bad in ("12", "", "x"):
        with pytest.raises(ValueError):
            client.play_dtmf(one, bad)
    assert client.send_text(one, "hello, world").message == "Success"
    with pytest.raises(ActionError) as info:
        client.send_text("SIP/gone-1", "hi")
    assert info.value.response.message == "No such channel"


def test_absolute_timeout(server: FakeAMIServer, client: AMIClient) -> None:
    server.add_handler("AbsoluteTimeout", channel_action("Timeout Set", "No such channel"))
    name = hold_call(server)
    assert client.absolute_timeout(name, 90).message == "Timeout Set"
    assert body(sent(server, "AbsoluteTimeout")) == [("Channel", name), ("Timeout", "90")]
    for bad in (-1, 1.5, "10"):
        with pytest.raises(ValueError):
            client.absolute_timeout(name, bad)  # type: ignore[arg-type]
    with pytest.raises(ActionError):
        client.absolute_timeout("SIP/gone-1", 5)


def test_redirect_both_legs_to_different_places(server: FakeAMIServer, client: AMIClient) -> None:
    name = hold_call(server)
    other = name[:-1] + "2"
    response = client.redirect(name, "300", "sales", extra_channel=other, extra_exten="400", extra_context="support",
                               extra_priority=2)
    assert response.message == "Dual Redirect successful"
    assert (server.channels[name].exten, server.channels[other].exten, server.channels[other].priority) == ("300", "400", 2)
    with pytest.raises(ValueError):
        client.redirect(name, "1", "x", Channel="SIP/other")  # a raw header may not replace an argument


def test_helpers_need_the_call_write_class() -> None:
    from amiclient.testing import User
    with FakeAMIServer(users={"viewer": User("pw", write="reporting")}) as srv:
        with AMIClient("127.0.0.1", srv.port, "viewer", "pw", reconnect=False) as viewer:
            with pytest.raises(ActionError) as info:
                viewer.originate("Local/1@test", application="Wait", wait=True)
            assert info.value.response.message == "Permission denied"



def test_originate_wait_stops_with_connection_lost_when_the_link_drops(server: FakeAMIServer, client: AMIClient) -> None:
    server.originate_delay = 5.0  # the result would come long after the drop, on a session that is gone
    outcome: List[BaseException] = []

    def run() -> None:
        try:
            client.originate("Local/1@test", application="Wait", wait=True, ring_timeout=10)
        except BaseException as exc:  # noqa: B902 - recorded for the assertion
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert server.wait_for_actions(3)  # login, originate (and maybe events); the originate is in
    deadline = time.monotonic() + 5
    while not any(p.action == "Originate" for p in server.received_actions) and time.monotonic() < deadline:
        server.wait_for_actions(len(server.received_actions) + 1, timeout=0.1)
    started = time.monotonic()
    server.drop_all()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 3
    assert isinstance(outcome[0], ConnectionLost) and "may still connect" in str(outcome[0])


def test_originate_wait_on_asterisk_13() -> None:
    with FakeAMIServer(users={"admin": SECRET}, legacy=True) as legacy:
        with AMIClient("127.0.0.1", legacy.port, "admin", SECRET, reconnect=False) as old:
            assert old.originate("Local/1@test", application="Wait", wait=True)["Reason"] == "4"
            with pytest.raises(OriginateFailed) as info:
                old.originate("Local/busy@test", application="Wait", wait=True)
            assert info.value.reason == 5

"""Every helper of amiclient.actions through a real AMIClient and the fake Asterisk.

Each test checks what a caller relies on: the value returned, the headers the
server received, and ``ActionError`` (with Asterisk's message) on errors.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, List, Tuple

import pytest

from amiclient import ActionError, ActionTimeout, AMIClient, Event
from amiclient.testing import FakeAMIServer, Packet, Queue, QueueCaller, QueueMember, Recorder, User

from .test_injection import HELPERS

USERS = {"admin": "s3cr3t!"}


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users=USERS) as srv:
        yield srv


@pytest.fixture
def client(server: FakeAMIServer) -> Iterator[AMIClient]:
    with AMIClient("127.0.0.1", server.port, "admin", USERS["admin"], reconnect=False, timeout=5.0) as c:
        yield c


def sent(server: FakeAMIServer, action: str) -> Packet:
    """The last packet the server received for ``action``."""
    return [p for p in server.received_actions if p.action.lower() == action.lower()][-1]


def body(packet: Packet) -> List[Tuple[str, str]]:
    """The received headers in order, without Action and ActionID."""
    return [(k, v) for k, v in packet.pairs if k.lower() not in ("action", "actionid")]


def headers(packet: Packet) -> List[str]:
    """The received header names in order, without Action and ActionID."""
    return [k for k, _ in body(packet)]


def error_message(excinfo: pytest.ExceptionInfo[ActionError]) -> str:
    return excinfo.value.response.message or ""


def hold_call(server: FakeAMIServer, client: AMIClient, channel: str = "Local/200@test") -> str:
    """Originate a call that stays up; return its first channel's name."""
    server.hold_calls = True
    client.originate(channel, application="Wait", data="30", asynchronous=False)
    return next(name for name in server.channels if name.startswith(channel))


# -- ping, core ---------------------------------------------------------------------


def test_ping(server: FakeAMIServer, client: AMIClient) -> None:
    response = client.ping()
    assert response.ok and response["Ping"] == "Pong" and float(response["Timestamp"]) > 0
    assert response.message is None
    assert headers(sent(server, "Ping")) == []


def test_core_settings_and_core_status(server: FakeAMIServer, client: AMIClient) -> None:
    settings = client.core_settings()
    assert settings["AMIversion"] == server.version == "11.0.0"
    assert settings["AsteriskVersion"] == server.asterisk_version
    status = client.core_status()
    assert status["CoreCurrentCalls"] == "0" and status["CoreProcessedCalls"] == "0"
    hold_call(server, client)
    status = client.core_status()
    assert (status["CoreCurrentCalls"], status["CoreProcessedCalls"]) == ("1", "1")
    assert status["CoreStartupDate"].count("-") == 2 and status["CoreStartupTime"].count(":") == 2


def test_extension_state(server: FakeAMIServer, client: AMIClient) -> None:
    server.hints[("100", "test")] = ("PJSIP/100", 1)
    state = client.extension_state("100", "test")
    assert (state["Hint"], state["Status"], state["StatusText"]) == ("PJSIP/100", "1", "InUse")
    assert body(sent(server, "ExtensionState")) == [("Exten", "100"), ("Context", "test")]
    unknown = client.extension_state("999")
    assert (unknown["Context"], unknown["Status"], unknown["StatusText"]) == ("default", "-1", "Unknown")
    assert sent(server, "ExtensionState")["Context"] == "default"


# -- calls ----------------------------------------------------------------------------


def test_originate_async_reports_through_originate_response(server: FakeAMIServer, client: AMIClient) -> None:
    results: Recorder[Event] = Recorder()
    client.add_listener(results, event="OriginateResponse")
    server.hold_calls = True
    response = client.originate("Local/200@test", application="Wait", data="5", caller_id='"Alice" <100>',
                                variables={"A": 1, "B": "x=y"}, account="acct", channel_id="chan-1",
                                ring_timeout=3)
    assert response.message == "Originate successfully queued"
    packet = sent(server, "Originate")
    assert headers(packet) == ["Channel", "Application", "Data", "Timeout", "CallerID", "Account", "ChannelId",
                               "Variable", "Variable", "Async"]
    assert packet["Timeout"] == "3000"
    assert packet["Async"] == "true" and packet.getlist("Variable") == ["A=1", "B=x=y"]
    result = results.wait_for(1)[0]
    assert result.action_id == response.action_id and result["Response"] == "Success"
    assert (result["Uniqueid"], result["CallerIDNum"], result["CallerIDName"]) == ("chan-1", "100", "Alice")
    channel = result["Channel"]
    assert client.getvar("A", channel=channel) == "1" and client.getvar("B", channel=channel) == "x=y"


def test_originate_async_failure_is_an_event_not_an_error(server: FakeAMIServer, client: AMIClient) -> None:
    results: Recorder[Event] = Recorder()
    client.add_listener(results, event="OriginateResponse")
    response = client.originate("Local/busy@test", exten="100", context="test", priority=1)
    assert response.ok
    result = results.wait_for(1)[0]
    assert (result["Response"], result["Reason"], result["Channel"]) == ("Failure", "5", "Local/busy@test")
    assert (result["Context"], result["Exten"]) == ("test", "100")


def test_originate_sync(server: FakeAMIServer, client: AMIClient) -> None:
    response = client.originate("Local/100@test", exten="200", context="test", priority=2, asynchronous=False)
    assert response.message == "Originate successfully queued"
    packet = sent(server, "Originate")
    assert "Async" not in packet and headers(packet) == ["Channel", "Exten", "Context", "Priority"]
    with pytest.raises(ActionError) as info:
        client.originate("Local/congestion@test", application="Wait", data="1", asynchronous=False)
    assert error_message(info) == "Originate failed"
    with pytest.raises(ActionError) as info:
        client.originate("nochannel", application="Wait", asynchronous=False)
    assert error_message(info) == "Invalid channel"


def test_hangup(server: FakeAMIServer, client: AMIClient) -> None:
    hangups: Recorder[Event] = Recorder()
    client.add_listener(hangups, event="Hangup")
    name = hold_call(server, client)
    assert client.hangup(name, cause=17).message == "Channel Hungup"
    assert body(sent(server, "Hangup")) == [("Channel", name), ("Cause", "17")]
    events = hangups.wait_for(2)
    assert {e["Channel"] for e in events} == {name, name[:-1] + "2"} and events[0]["Cause-txt"] == "User busy"
    assert server.channels == {}
    with pytest.raises(ActionError) as info:
        client.hangup(name)
    assert error_message(info) == "No such channel"
    hold_call(server, client)
    listed = client.hangup(regex="^Local/200@test-.*;1$")
    assert len(listed.events) == 1 and listed.events[0]["Channel"].endswith(";1")
    assert listed.complete_event is not None and listed.complete_event["ListItems"] == "1"
    assert "Cause" not in sent(server, "Hangup")


def test_redirect(server: FakeAMIServer, client: AMIClient) -> None:
    name = hold_call(server, client)
    response = client.redirect(name, "300", "sales", priority=2)
    assert response.message == "Redirect successful"
    assert body(sent(server, "Redirect")) == [("Channel", name), ("Exten", "300"), ("Context", "sales"),
                                                   ("Priority", "2")]
    status = client.status(name)[0]
    assert (status["Context"], status["Exten"], status["Priority"]) == ("sales", "300", "2")
    other = name[:-1] + "2"
    dual = client.redirect(name, "400", "support", ExtraChannel=other)
    assert dual.message == "Dual Redirect successful"
    assert {server.channels[n].exten for n in (name, other)} == {"400"}
    with pytest.raises(ActionError) as info:
        client.redirect("SIP/nobody-0001", "100", "test")
    assert error_message(info) == "Channel does not exist: SIP/nobody-0001"
    with pytest.raises(ActionError) as info:
        client.redirect(name, "100", "test", ExtraChannel="SIP/gone-1")
    assert error_message(info) == "ExtraChannel does not exist: SIP/gone-1"
    with pytest.raises(ActionError) as info:
        client.redirect(name, "100", "test", priority="nolabel")
    assert error_message(info) == "Priority is invalid"


@pytest.mark.parametrize("missing, message", [
    ("Channel", "Channel not specified"), ("Context", "Context not specified"),
    ("Exten", "Exten not specified"), ("Priority", "Priority not specified"),
])
def test_redirect_missing_parameters(client: AMIClient, missing: str, message: str) -> None:
    fields = {"Channel": "SIP/x-1", "Exten": "100", "Context": "test", "Priority": "1"}
    del fields[missing]
    with pytest.raises(ActionError) as info:
        client.action("Redirect", fields)
    assert error_message(info) == message


def test_core_show_channels_and_status(server: FakeAMIServer, client: AMIClient) -> None:
    assert client.core_show_channels() == [] and client.status() == []
    name = hold_call(server, client)
    client.setvar("COLOR", "blue", channel=name)
    channels = client.core_show_channels()
    assert [c["Channel"] for c in channels] == [name, name[:-1] + "2"]
    assert channels[0]["Application"] == "Wait" and channels[0]["Duration"].count(":") == 2
    everything = client.status()
    assert [e.name for e in everything] == ["Status", "Status"]
    one = client.status(name, variables=["COLOR", "NONE"])
    assert len(one) == 1 and one[0]["Channel"] == name and one[0].getlist("Variable") == ["COLOR=blue", "NONE="]
    assert sent(server, "Status")["Variables"] == "COLOR,NONE"
    with pytest.raises(ActionError) as info:
        client.status("SIP/none-1")
    assert error_message(info) == "No such channel"


# -- variables, AstDB, user events -----------------------------------------------------


def test_getvar_and_setvar(server: FakeAMIServer, client: AMIClient) -> None:
    varsets: Recorder[Event] = Recorder()
    client.add_listener(varsets, event="VarSet")
    assert client.getvar("GLOBALX") is None
    assert client.setvar("GLOBALX", "42").message == "Variable Set"
    assert client.getvar("GLOBALX") == "42" and server.global_vars["GLOBALX"] == "42"
    assert "Channel" not in sent(server, "Setvar") and "Channel" not in sent(server, "Getvar")
    event = varsets.wait_for(1)[0]
    assert (event["Channel"], event["Variable"], event["Value"]) == ("none", "GLOBALX", "42")
    name = hold_call(server, client)
    client.setvar("LOCAL", "yes", channel=name)
    assert client.getvar("LOCAL", channel=name) == "yes"
    assert body(sent(server, "Getvar")) == [("Variable", "LOCAL"), ("Channel", name)]
    assert client.getvar("LOCAL") is None
    for call in (lambda: client.setvar("X", "1", channel="SIP/none-1"), lambda: client.getvar("X", "SIP/none-1")):
        with pytest.raises(ActionError) as info:
            call()
        assert error_message(info) == "No such channel"


def test_astdb_helpers(server: FakeAMIServer, client: AMIClient) -> None:
    assert client.db_put("fam", "k1", "hello: world").message == "Updated database successfully"
    client.db_put("fam/sub", "k2", "two")
    assert body(sent(server, "DBPut")) == [("Family", "fam/sub"), ("Key", "k2"), ("Val", "two")]
    assert server.db == {("fam", "k1"): "hello: world", ("fam/sub", "k2"): "two"}
    assert client.db_get("fam", "k1") == "hello: world"
    assert client.db_get("fam", "missing") is None
    assert client.db_get_tree("fam") == {"/fam/k1": "hello: world", "/fam/sub/k2": "two"}
    assert client.db_get_tree("fam", "sub") == {"/fam/sub/k2": "two"}
    assert client.db_get_tree("nothing") == {}
    assert client.db_del("fam", "k1") is True
    assert client.db_get("fam", "k1") is None
    assert client.db_del("fam", "k1") is False  # "Database entry could not be deleted"
    with pytest.raises(ActionError) as info:
        client.db_get("", "k1")  # an error other than "not found" is raised, not turned into None
    assert error_message(info) == "No family specified."


def test_user_event(server: FakeAMIServer, client: AMIClient) -> None:
    seen: Recorder[Event] = Recorder()
    client.add_listener(seen, event="UserEvent")
    assert client.user_event("Deploy", Version="1.2", Tag=["a", "b"]).message == "Event Sent"
    assert body(sent(server, "UserEvent")) == [("UserEvent", "Deploy"), ("Version", "1.2"), ("Tag", "a"),
                                               ("Tag", "b")]
    event = seen.wait_for(1)[0]
    assert (event["UserEvent"], event["Version"], event.getlist("Tag")) == ("Deploy", "1.2", ["a", "b"])


# -- queues ---------------------------------------------------------------------------


def test_queue_status_lists_params_members_and_callers(server: FakeAMIServer, client: AMIClient) -> None:
    items = client.action("QueueStatus").events
    assert [e.name for e in items] == ["QueueParams"]
    assert (items[0]["Queue"], items[0]["Strategy"], items[0]["Calls"]) == ("support", "ringall", "0")
    support = client.queue_status()["support"]
    assert (support.name, support.strategy, support.calls, support.members, support.entries) == (
        "support", "ringall", 0, [], [])
    sales = server.queues["sales"] = Queue("sales", strategy="leastrecent")
    sales.add(QueueMember("PJSIP/7001", "Bob", dynamic=False, penalty=3))
    sales.callers.append(QueueCaller("PJSIP/9000-00000001", "1.1", "9000", "Carol", priority=5,
                                     joined=time.time() - 30))
    records = client.queue_status("sales")
    assert list(records) == ["sales"]
    sales_info = records["sales"]
    assert (sales_info.strategy, sales_info.calls) == ("leastrecent", 1)
    assert [(m.name, m.interface, m.membership, m.penalty, m.paused) for m in sales_info.members] == [
        ("Bob", "PJSIP/7001", "static", 3, False)]
    assert [(e.position, e.channel, e.caller_id_num, e.caller_id_name) for e in sales_info.entries] == [
        (1, "PJSIP/9000-00000001", "9000", "Carol")]
    items = client.action("QueueStatus", Queue="sales").events
    assert [e.name for e in items] == ["QueueParams", "QueueMember", "QueueEntry"]
    assert all(e.action_id == items[0].action_id for e in items)
    params, member, entry = items
    assert (params["Strategy"], params["Calls"]) == ("leastrecent", "1")
    assert (member["Name"], member["Location"], member["Membership"], member["Penalty"]) == (
        "Bob", "PJSIP/7001", "static", "3")
    assert (entry["Position"], entry["Channel"], entry["CallerIDNum"], entry["CallerIDName"]) == (
        "1", "PJSIP/9000-00000001", "9000", "Carol")
    assert (entry["ConnectedLineNum"], entry["Priority"]) == ("unknown", "5") and entry["Wait"] in ("30", "31")
    assert body(sent(server, "QueueStatus")) == [("Queue", "sales")]
    by_member = client.action("QueueStatus", Member="Bob").events  # the member filter leaves params and callers alone
    assert [e.name for e in by_member] == ["QueueParams", "QueueParams", "QueueMember", "QueueEntry"]
    assert [e.name for e in client.action("QueueStatus", Queue="sales", Member="PJSIP/other").events] == [
        "QueueParams", "QueueEntry"]
    assert client.queue_status("nosuchqueue") == {}
    summary = client.action("QueueSummary", Queue="sales").events
    assert [(e["Queue"], e["LoggedIn"], e["Available"], e["Callers"]) for e in summary] == [("sales", "1", "1", "1")]


def test_queue_add_pause_remove(server: FakeAMIServer, client: AMIClient) -> None:
    seen: Recorder[Event] = Recorder()
    client.add_listener(seen, event=["QueueMember*", "DeviceStateChange"])
    added = client.queue_add("support", "Local/200@test", member_name="Agent 1", penalty=2)
    assert added.message == "Added interface to queue"
    assert body(sent(server, "QueueAdd")) == [("Queue", "support"), ("Interface", "Local/200@test"),
                                              ("MemberName", "Agent 1"), ("Penalty", "2")]
    member = server.queues["support"].members["Local/200@test"]
    assert (member.name, member.penalty, member.paused, member.dynamic) == ("Agent 1", 2, False, True)
    listed = client.queue_status("support", "Local/200@test")["support"].members[0]
    assert (listed.name, listed.penalty, listed.paused, listed.status) == ("Agent 1", 2, False, 1)

    paused = client.queue_pause("Local/200@test", reason="lunch", queue="support")
    assert paused.message == "Interface paused successfully"
    assert body(sent(server, "QueuePause")) == [("Interface", "Local/200@test"), ("Paused", "true"),
                                                ("Queue", "support"), ("Reason", "lunch")]
    assert (member.paused, member.paused_reason) == (True, "lunch") and member.last_pause > 0
    assert client.queue_status(member="Agent 1")["support"].members[0].paused_reason == "lunch"
    unpaused = client.queue_pause("Local/200@test", paused=False)  # no Queue: every queue it is in
    assert unpaused.message == "Interface unpaused successfully" and "Queue" not in sent(server, "QueuePause")
    assert sent(server, "QueuePause")["Paused"] == "false" and (member.paused, member.paused_reason) == (False, "")

    removed = client.queue_remove("support", "Local/200@test")
    assert removed.message == "Removed interface from queue" and server.queues["support"].members == {}
    assert body(sent(server, "QueueRemove")) == [("Queue", "support"), ("Interface", "Local/200@test")]
    events = seen.wait_for(10)
    client.ping()  # a surplus event would have been sent before this answer
    assert [(e.name, e.get("Device"), e.get("State"), e.get("Paused")) for e in events] == [
        ("DeviceStateChange", "Queue:support_pause_Local/200@test", "NOT_INUSE", None),
        ("QueueMemberAdded", None, None, "0"),
        ("DeviceStateChange", "Queue:support_avail", "NOT_INUSE", None),
        ("DeviceStateChange", "Queue:support_pause_Local/200@test", "INUSE", None),
        ("DeviceStateChange", "Queue:support_avail", "INUSE", None),
        ("QueueMemberPause", None, None, "1"),
        ("DeviceStateChange", "Queue:support_pause_Local/200@test", "NOT_INUSE", None),
        ("DeviceStateChange", "Queue:support_avail", "NOT_INUSE", None),
        ("QueueMemberPause", None, None, "0"),
        ("QueueMemberRemoved", None, None, "0"),  # its pause device is already NOT_INUSE: no change to report
    ]
    assert events[1]["MemberName"] == "Agent 1" and events[1]["Penalty"] == "2"
    assert events[5]["PausedReason"] == "lunch" and events[1].get("Privilege") == "agent,all"


def test_queue_add_paused_member(server: FakeAMIServer, client: AMIClient) -> None:
    client.queue_add("support", "PJSIP/7002", paused=True, reason="training", state_interface="Custom:7002")
    assert sent(server, "QueueAdd")["Paused"] == "true"
    member = client.queue_status("support")["support"].members[0]
    assert (member.name, member.state_interface, member.paused, member.paused_reason) == (
        "PJSIP/7002", "Custom:7002", True, "training")
    summary = client.action("QueueSummary").events[0]
    assert (summary["LoggedIn"], summary["Available"]) == ("1", "0")


def test_queue_errors(server: FakeAMIServer, client: AMIClient) -> None:
    server.queues["support"].add(QueueMember("PJSIP/static", dynamic=False))
    client.queue_add("support", "PJSIP/7001")
    cases: List[Tuple[Callable[[], object], str]] = [
        (lambda: client.queue_add("support", "PJSIP/7001"), "Unable to add interface: Already there"),
        (lambda: client.queue_add("nosuchqueue", "PJSIP/7001"), "Unable to add interface to queue: No such queue"),
        (lambda: client.action("QueueAdd", Interface="PJSIP/1"), "'Queue' not specified."),
        (lambda: client.action("QueueAdd", Queue="support"), "'Interface' not specified."),
        (lambda: client.queue_remove("support", "PJSIP/absent"), "Unable to remove interface: Not there"),
        (lambda: client.queue_remove("nosuchqueue", "PJSIP/7001"),
         "Unable to remove interface from queue: No such queue"),
        (lambda: client.queue_remove("support", "PJSIP/static"), "Member not dynamic"),
        (lambda: client.action("QueueRemove", Queue="support"), "Need 'Queue' and 'Interface' parameters."),
        (lambda: client.queue_pause("PJSIP/absent"), "Interface not found"),
        (lambda: client.queue_pause("PJSIP/7001", queue="nosuchqueue"), "Interface not found"),
        (lambda: client.action("QueuePause", Interface="PJSIP/7001"), "Need 'Interface' and 'Paused' parameters."),
    ]
    for call, message in cases:
        with pytest.raises(ActionError) as info:
            call()
        assert error_message(info) == message
    assert list(server.queues["support"].members) == ["PJSIP/static", "PJSIP/7001"]


def test_queue_actions_need_the_agent_write_class() -> None:
    with FakeAMIServer(users={"viewer": User("pw", write="call")}) as srv:
        with AMIClient("127.0.0.1", srv.port, "viewer", "pw", reconnect=False, timeout=5.0) as viewer:
            assert list(viewer.queue_status()) == ["support"]  # QueueStatus needs no class
            with pytest.raises(ActionError) as info:
                viewer.queue_add("support", "PJSIP/1")
            assert error_message(info) == "Permission denied"


# -- timeout: always the client's wait, never a header --------------------------------------------


def test_ping_timeout_is_the_clients_wait(server: FakeAMIServer, client: AMIClient) -> None:
    assert client.ping(timeout=1).ok
    assert headers(sent(server, "Ping")) == []

    def slow_pong(session: object, packet: Packet) -> List[Tuple[str, str]]:
        done.wait(5.0)
        return [("Response", "Success"), ("ActionID", packet.action_id or ""), ("Ping", "Pong")]

    import threading
    done = threading.Event()
    server.add_handler("Ping", slow_pong)
    started = time.monotonic()
    try:
        with pytest.raises(ActionTimeout):
            client.ping(timeout=0.2)
        assert time.monotonic() - started < 1.0
    finally:
        done.set()


@pytest.mark.parametrize("name, call", [(h[0], h[1]) for h in HELPERS], ids=[h[0] for h in HELPERS])
def test_no_helper_turns_timeout_into_a_header(server: FakeAMIServer, client: AMIClient, name: str,
                                               call: Callable[[AMIClient, str], object]) -> None:
    before = len(server.received_actions)
    helper = getattr(client, name.split()[0])
    try:
        call(_WithTimeout(client, helper), "x1")  # type: ignore[arg-type]
    except ActionError:
        pass
    packets = server.received_actions[before:]
    leaked = [(k, v) for p in packets for k, v in p.pairs if k.lower() == "timeout" and v in ("3", "3.0", "3000")]
    assert packets and not leaked  # (AbsoluteTimeout's own Timeout carries its `seconds` argument: 5)


class _WithTimeout:
    """A client whose helper under test always gets ``timeout=3``."""

    def __init__(self, client: AMIClient, helper: Callable[..., object]) -> None:
        self._client, self._helper = client, helper

    def __getattr__(self, name: str) -> object:
        method = getattr(self._client, name)
        if getattr(method, "__name__", None) != getattr(self._helper, "__name__", None):
            return method
        return lambda *args, **kwargs: method(*args, timeout=3, **kwargs)


def test_originate_ring_timeout_is_seconds_sent_as_ms(server: FakeAMIServer, client: AMIClient) -> None:
    client.originate("Local/1@test", application="Wait", ring_timeout=20, timeout=2)
    packet = sent(server, "Originate")
    assert packet.getlist("Timeout") == ["20000"]
    for bad in (0, -1, "20", True):
        with pytest.raises(ValueError):
            client.originate("Local/1@test", application="Wait", ring_timeout=bad)  # type: ignore[arg-type]


def test_hangup_takes_a_literal_name_or_an_explicit_regex(server: FakeAMIServer, client: AMIClient) -> None:
    before = len(server.received_actions)
    for call in (lambda: client.hangup(), lambda: client.hangup("SIP/a-1", regex="x"), lambda: client.hangup("/.*/"),
                 lambda: client.hangup("SIP/a-1", cause=300)):
        with pytest.raises(ValueError):
            call()
    assert server.received_actions[before:] == []
    hold_call(server, client)
    listed = client.hangup(regex=".*")
    assert sent(server, "Hangup")["Channel"] == "/.*/" and len(listed.events) == 2 and server.channels == {}

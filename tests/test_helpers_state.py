"""State, queue and agent helpers against the fake.

Actions the fake does not model answer with packets copied from the
Asterisk 22 recordings (calls-bridged.json, device-states.json) or with
Asterisk's documented messages, ActionID swapped in.
"""
from __future__ import annotations

from typing import Callable, Iterator, List

import pytest

from amiclient import ActionError, AMIClient
from amiclient.testing import FakeAMIServer, Packet, QueueMember, Session, User, build_response

SECRET = "s3cr3t!"


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users={"admin": SECRET, "viewer": User("pw", write="call")}) as srv:
        yield srv


@pytest.fixture
def client(server: FakeAMIServer) -> Iterator[AMIClient]:
    with AMIClient("127.0.0.1", server.port, "admin", SECRET, reconnect=False, timeout=5.0) as c:
        yield c


def sent(server: FakeAMIServer, action: str) -> Packet:
    return [p for p in server.received_actions if p.action.lower() == action.lower()][-1]


def replay(*packets: str) -> Callable[[Session, Packet], bytes]:
    """A handler answering with recorded packets (``{id}`` = the action's ActionID)."""
    def handle(session: Session, packet: Packet) -> bytes:
        return "".join(p.replace("{id}", packet.action_id or "") + "\r\n\r\n" for p in packets).encode()
    return handle


BRIDGE_LIST = [
    "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Bridge listing will follow",
    "Event: BridgeListItem\r\nActionID: {id}\r\nBridgeUniqueid: 187895d0-9a1f-4fc7-8893-ff93f0999806\r\n"
    "BridgeType: basic\r\nBridgeTechnology: simple_bridge\r\nBridgeCreator: <unknown>\r\nBridgeName: <unknown>\r\n"
    "BridgeNumChannels: 2\r\nBridgeVideoSourceMode: none",
    "Event: BridgeListComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 1",
]
BRIDGE_INFO = [
    "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Bridge channel listing will follow",
    "Event: BridgeInfoChannel\r\nActionID: {id}\r\nChannel: Local/caller@rec-00000008;1\r\nChannelState: 6\r\n"
    "ChannelStateDesc: Up\r\nCallerIDNum: 1009\r\nCallerIDName: Caller 9\r\nUniqueid: 1796185358.15",
    "Event: BridgeInfoChannel\r\nActionID: {id}\r\nChannel: Local/talk3@rec-00000012;1\r\nChannelState: 6\r\n"
    "ChannelStateDesc: Up\r\nCallerIDNum: call3\r\nCallerIDName: Caller 9\r\nUniqueid: 1796185358.36",
    "Event: BridgeInfoComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 2\r\n"
    "BridgeUniqueid: 187895d0-9a1f-4fc7-8893-ff93f0999806\r\nBridgeType: basic\r\nBridgeTechnology: simple_bridge\r\n"
    "BridgeNumChannels: 2",
]
DEVICES = [
    "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Device State Changes will follow",
    "Event: DeviceStateChange\r\nActionID: {id}\r\nDevice: Queue:support_avail\r\nState: NOT_INUSE",
    "Event: DeviceStateChange\r\nActionID: {id}\r\nDevice: Custom:desk700\r\nState: INUSE",
    "Event: DeviceStateListComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 2",
]
HINTS = [
    "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Extension Statuses will follow",
    "Event: ExtensionStatus\r\nActionID: {id}\r\nExten: 700\r\nContext: rec\r\nHint: Custom:desk700\r\nStatus: 0\r\n"
    "StatusText: Idle",
    "Event: ExtensionStatus\r\nActionID: {id}\r\nExten: 702\r\nContext: rec\r\nHint: Custom:desk700&Custom:desk701\r\n"
    "Status: 0\r\nStatusText: Idle",
    "Event: ExtensionStateListComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 2",
]


def test_bridge_list_and_info(server: FakeAMIServer, client: AMIClient) -> None:
    server.add_handler("BridgeList", replay(*BRIDGE_LIST))
    server.add_handler("BridgeInfo", replay(*BRIDGE_INFO))
    bridges = client.bridge_list()
    assert [(b["BridgeUniqueid"], b["BridgeNumChannels"]) for b in bridges] == [
        ("187895d0-9a1f-4fc7-8893-ff93f0999806", "2")]
    assert "BridgeType" not in sent(server, "BridgeList")
    client.bridge_list("basic")
    assert sent(server, "BridgeList")["BridgeType"] == "basic"
    info = client.bridge_info("187895d0-9a1f-4fc7-8893-ff93f0999806")
    assert [c["Channel"] for c in info.events] == ["Local/caller@rec-00000008;1", "Local/talk3@rec-00000012;1"]
    assert info.complete_event is not None and info.complete_event["BridgeTechnology"] == "simple_bridge"


def test_device_and_extension_state_lists(server: FakeAMIServer, client: AMIClient) -> None:
    server.add_handler("DeviceStateList", replay(*DEVICES))
    server.add_handler("ExtensionStateList", replay(*HINTS))
    assert client.device_state_list() == {"Queue:support_avail": "NOT_INUSE", "Custom:desk700": "INUSE"}
    hints = client.extension_state_list()
    assert [(h["Exten"], h["Hint"], h["StatusText"]) for h in hints] == [
        ("700", "Custom:desk700", "Idle"), ("702", "Custom:desk700&Custom:desk701", "Idle")]


def test_mailboxes(server: FakeAMIServer, client: AMIClient) -> None:
    def status(session: Session, packet: Packet) -> object:
        if not packet.get("Mailbox"):
            return build_response(packet, "Mailbox not specified", "Error")
        return build_response(packet, "Mailbox Status", headers=[("Mailbox", packet["Mailbox"]), ("Waiting", "1")])

    def count(session: Session, packet: Packet) -> object:
        return build_response(packet, "Mailbox Message Count", headers=[
            ("Mailbox", packet["Mailbox"]), ("UrgMessages", "0"), ("NewMessages", "3"), ("OldMessages", "7")])

    server.add_handler("MailboxStatus", status)
    server.add_handler("MailboxCount", count)
    assert client.mailbox_status("100@default") == 1
    assert client.mailbox_count("100@default") == {"UrgMessages": 0, "NewMessages": 3, "OldMessages": 7}
    with pytest.raises(ActionError) as info:
        client.mailbox_status("")
    assert info.value.response.message == "Mailbox not specified"


def test_list_commands_and_core(server: FakeAMIServer, client: AMIClient) -> None:
    commands = client.list_commands()
    assert commands["Ping"] == "Keepalive command." and commands["GetConfig"] == "Retrieve configuration."
    assert "Response" not in commands and "ActionID" not in commands
    with AMIClient("127.0.0.1", server.port, "viewer", "pw", reconnect=False) as viewer:
        assert "DBPut" not in viewer.list_commands() and "Originate" not in viewer.list_commands()
    assert client.core_status()["CoreCurrentCalls"] == "0"
    server.simulate_call("Local/1@test", application="Wait", data="9")
    assert len(client.core_show_channels()) == 2 and client.core_status()["CoreCurrentCalls"] == "1"


# -- queues and agents -----------------------------------------------------------------------------------


def test_queue_summary_and_penalty(server: FakeAMIServer, client: AMIClient) -> None:
    server.queues["support"].add(QueueMember("PJSIP/7001", "Bob", penalty=1))

    def penalty(session: Session, packet: Packet) -> object:
        interface, value = packet.get("Interface", ""), packet.get("Penalty", "")
        if not interface or not value:
            return build_response(packet, "Need 'Interface' and 'Penalty' parameters.", "Error")
        queues = session.server.queues
        wanted = [q for name, q in queues.items() if packet.get("Queue") in ("", name)]
        hits = [q.members[interface] for q in wanted if interface in q.members]
        if not value.isdigit() or not hits:
            return build_response(packet, "Invalid interface, queuename or penalty", "Error")
        for member in hits:
            member.penalty = int(value)
        return build_response(packet, "Interface penalty set successfully")

    server.add_handler("QueuePenalty", penalty)
    summary = client.queue_summary("support")
    assert [(s["Queue"], s["LoggedIn"], s["Available"]) for s in summary] == [("support", "1", "1")]
    assert client.queue_penalty("PJSIP/7001", 5, "support").message == "Interface penalty set successfully"
    assert client.queue_status("support")["support"].members[0].penalty == 5
    with pytest.raises(ActionError) as info:
        client.queue_penalty("PJSIP/none", 1)
    assert info.value.response.message == "Invalid interface, queuename or penalty"
    for bad in (-1, "2", True):
        with pytest.raises(ValueError):
            client.queue_penalty("PJSIP/7001", bad)  # type: ignore[arg-type]


def test_queue_log_agents_and_logoff(server: FakeAMIServer, client: AMIClient) -> None:
    logged: List[Packet] = []

    def queue_log(session: Session, packet: Packet) -> object:
        if not packet.get("Queue") or not packet.get("Event"):
            return build_response(packet, "Need 'Queue' and 'Event' parameters.", "Error")
        logged.append(packet)
        return build_response(packet, "Added Queue Log")

    agents = [
        "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Agents will follow",
        "Event: Agents\r\nAgent: 1001\r\nName: Alice\r\nStatus: AGENT_IDLE\r\nLoggedInTime: 1796185358\r\nActionID: {id}",
        "Event: AgentsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 1",
    ]

    def logoff(session: Session, packet: Packet) -> object:
        if packet.get("Agent") != "1001":
            return build_response(packet, "No such agent", "Error")
        return build_response(packet, "Agent logged out")

    server.add_handler("QueueLog", queue_log)
    server.add_handler("Agents", replay(*agents))
    server.add_handler("AgentLogoff", logoff)
    assert client.queue_log("support", "CUSTOM", uniqueid="1.2", message="note, with comma").message == "Added Queue Log"
    assert [(k, v) for k, v in logged[0].pairs][1:5] == [
        ("Queue", "support"), ("Event", "CUSTOM"), ("Uniqueid", "1.2"), ("Message", "note, with comma")]
    assert [(a["Agent"], a["Status"]) for a in client.agents()] == [("1001", "AGENT_IDLE")]
    assert client.agent_logoff("1001", soft=True).message == "Agent logged out"
    assert sent(server, "AgentLogoff")["Soft"] == "true"
    with pytest.raises(ActionError) as info:
        client.agent_logoff("9")
    assert info.value.response.message == "No such agent"

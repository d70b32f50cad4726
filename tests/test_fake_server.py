"""amiclient.testing against raw sockets: the fake Asterisk, its faults, and ReplayServer.

These tests talk bytes, not the amiclient client: they pin the fake to the
Asterisk 22/13 recordings in tests/fixtures.
"""
from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

from amiclient.testing import (
    FakeAMIServer,
    Fault,
    Packet,
    ReplayServer,
    Session,
    User,
    load_recording,
)

from .conftest import FIXTURES, load_chunks

TIMEOUT = 5.0


class RawClient:
    """A bare AMI connection: send bytes, read lines and blank-line framed packets."""

    def __init__(self, address: Tuple[str, int], timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buf = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def action(self, name: str, action_id: Optional[str] = None, **headers: str) -> None:
        lines = ["Action: %s" % name]
        lines += ["%s: %s" % kv for kv in headers.items()]
        if action_id is not None:
            lines.append("ActionID: %s" % action_id)
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError(self.buf)
        self.buf += data

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        end = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self) -> bytes:
        return self.until(b"\r\n")

    def packet(self) -> bytes:
        return self.until(b"\r\n\r\n")

    def packets(self, n: int) -> List[bytes]:
        return [self.packet() for _ in range(n)]

    def read_to_eof(self) -> bytes:
        while True:
            try:
                self._fill()
            except EOFError:
                out, self.buf = self.buf, b""
                return out

    def login(self, user: str = "admin", secret: str = "secret", events: str = "on") -> bytes:
        assert self.line().startswith(b"Asterisk Call Manager/")
        self.action("Login", "l1", Username=user, Secret=secret, Events=events)
        head = self.packet()
        assert b"Message: Authentication accepted" in head, head
        if b"Response: Success" in head and events in ("on", "system", "all"):
            head += self.packet()  # the inline FullyBooted
        return head

    def ping(self, action_id: str = "sync") -> bytes:
        """Ping and return everything before its response (queued events)."""
        self.action("Ping", action_id)
        before = b""
        while True:
            packet = self.packet()
            if packet.startswith(b"Response: Success\r\nActionID: %s\r\nPing" % action_id.encode()):
                return before
            before += packet


def normalise(data: bytes) -> bytes:
    data = re.sub(rb"Timestamp: [0-9.]+", b"Timestamp: T", data)
    return re.sub(rb"ActionID: [^\r]*", b"ActionID: X", data)


def find_c2s(chunks: Sequence[Dict[str, str]], text: str) -> int:
    """The index of the first client chunk containing ``text``."""
    return next(i for i, c in enumerate(chunks) if c["dir"] == "c2s" and text in c["data"])


def s2c_after(chunks: Sequence[Dict[str, str]], index: int) -> bytes:
    """The server bytes recorded after chunk ``index``, up to the next c2s chunk."""
    out = b""
    for chunk in chunks[index + 1:]:
        if chunk["dir"] != "s2c":
            break
        out += chunk["data"].encode()
    return out


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer() as srv:
        yield srv


@pytest.fixture
def client(server: FakeAMIServer) -> Iterator[RawClient]:
    with RawClient(server.address) as c:
        c.login()
        yield c


# -- connection, login ------------------------------------------------------------


def test_banner_then_permission_denied_matches_recording(server: FakeAMIServer) -> None:
    chunks = load_chunks("asterisk-22/errors.json", "action_before_login")
    with RawClient(server.address) as c:
        for chunk in chunks:
            if chunk["dir"] == "c2s":
                c.send(chunk["data"].encode())
            else:
                assert c.exactly(len(chunk["data"])) == chunk["data"].encode()
    assert server.port == server.address[1] and server.host == "127.0.0.1"


@pytest.mark.parametrize("name", ["missing_action", "events_off_login", "reader_permission_denied"])
def test_error_sessions_match_recordings(name: str) -> None:
    users = {"admin": "s3cr3t!", "reader": User("readonly", read="call,system", write="system")}
    chunks = load_chunks("asterisk-22/errors.json", name)
    with FakeAMIServer(users) as srv, RawClient(srv.address) as c:
        assert c.line() == chunks[0]["data"].encode()
        for i, chunk in enumerate(chunks):
            if chunk["dir"] == "c2s":
                c.send(chunk["data"].encode())
                expected = s2c_after(chunks, i)
                got = b"".join(c.packets(expected.count(b"\r\n\r\n")))
                assert normalise(got) == normalise(expected)
            elif chunk["dir"] == "eof":
                assert c.read_to_eof() == b""


def test_md5_login_and_same_challenge(server: FakeAMIServer) -> None:
    with RawClient(server.address) as c:
        c.line()
        c.action("Challenge", "c1", AuthType="md5")
        first = c.packet()
        match = re.fullmatch(rb"Response: Success\r\nActionID: c1\r\nChallenge: (\d{1,9})\r\n\r\n", first)
        assert match
        c.action("Challenge", "c2", AuthType="MD5")
        assert match.group(1) in c.packet()
        key = hashlib.md5(match.group(1) + b"secret").hexdigest()
        c.action("Login", "l1", AuthType="MD5", Username="admin", Key=key)
        assert c.packet() == b"Response: Success\r\nActionID: l1\r\nMessage: Authentication accepted\r\n\r\n"
        booted = c.packet()
        assert re.fullmatch(rb"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: \d+\r\n"
                            rb"LastReload: \d+\r\nStatus: Fully Booted\r\n\r\n", booted)
        c.action("Challenge", "c3", AuthType="plain")
        assert b"Message: Must specify AuthType" in c.packet()
        assert server.wait_for_sessions(1) and server.sessions[0].challenge == match.group(1).decode()


def test_bad_logins_are_delayed_then_closed() -> None:
    with FakeAMIServer(auth_fail_delay=0.2) as srv:
        for headers in ({"Secret": "wrong"}, {"AuthType": "MD5", "Key": "0" * 32}):
            with RawClient(srv.address) as c:
                c.line()
                start = time.monotonic()
                c.action("Login", "1", Username="admin", **headers)
                c.action("Ping", "2")  # read but never answered: the session is closing
                assert c.read_to_eof() == b"Response: Error\r\nActionID: 1\r\nMessage: Authentication failed\r\n\r\n"
                assert time.monotonic() - start >= 0.2
        assert [p.action for p in srv.received_actions][:1] == ["Login"]
        assert srv.wait_for_sessions(0, authenticated=False)


def test_logoff_and_already_authenticated(client: RawClient) -> None:
    client.action("Login", "again", Username="admin", Secret="secret")
    assert b"Message: Already authenticated" in client.packet()
    client.action("Logoff", "bye")
    assert client.read_to_eof() == b"Response: Goodbye\r\nActionID: bye\r\nMessage: Thanks for all the fish.\r\n\r\n"


# -- actions ----------------------------------------------------------------------


def test_ping_shape_and_client_packet_variants(client: RawClient, server: FakeAMIServer) -> None:
    client.send(b"Action: Ping\nActionID: lf\n\naction: ping\r\nactionid: low\r\n\r\nAction:Ping\r\nActionID:ns\r\n\r\n")
    for aid in (b"lf", b"low", b"ns"):
        assert re.fullmatch(rb"Response: Success\r\nActionID: %s\r\nPing: Pong\r\nTimestamp: \d+\.\d{6}\r\n\r\n"
                            % aid, client.packet())
    client.send(b"Action: Ping\r\nActionID: first\r\nActionID: second\r\n\r\n\r\n")
    assert b"ActionID: first\r\n" in client.packet()
    assert client.packet() == b"Response: Error\r\nMessage: Missing action in request\r\n\r\n"
    client.send(b"Action: Ping\r\nX: " + b"y" * 1100 + b"\r\nActionID: long\r\n\r\n")
    assert b"Message: Failed to parse message: line too long" in client.packet()
    client.send(b"Action: Ping\r\n" + b"K: v\r\n" * 130 + b"\r\n")
    assert b"Message: Too many lines in message or allocation failure" in client.packet()
    client.action("NoSuchAction", "bad1")
    assert client.packet() == (b"Response: Error\r\nActionID: bad1\r\nMessage: Invalid/unknown command: "
                               b"NoSuchAction. Use Action: ListCommands to show available commands.\r\n\r\n")
    received = server.received_actions
    assert received[-1].action == "NoSuchAction" and received[1].get("actionid") == "lf"


SESSION_IDS = ["p1", "cs1", "cmd1", "cmd3", "db1", "db2", "db3", "db3t", "db4", "db5", "sv1", "gv1",
               "gv2", "es1", "ue1", "ev1", "ev2", "f1", "bye1"]


def test_actions_match_asterisk22_session_bytes(client: RawClient, server: FakeAMIServer) -> None:
    """Replay the recorded client packets; the answers must equal the recording."""
    server.command_outputs["core show version"] = (
        "Asterisk 22.11.0-rc1 built by root @ vm on a x86_64 running Linux on 2026-11-26 14:29:17 UTC")
    chunks = load_chunks("asterisk-22/session.json")
    picked = {m.group(1).decode(): i for i, c in enumerate(chunks)
              if c["dir"] == "c2s" and (m := re.search(rb"ActionID: (\S+)", c["data"].encode()))}
    no_id = next(i for i, c in enumerate(chunks) if c["data"] == "Action: Ping\r\n\r\n")
    for index in [picked["p1"], no_id] + [picked[a] for a in SESSION_IDS[1:]]:
        client.send(chunks[index]["data"].encode())
        expected = s2c_after(chunks, index)
        got = b"".join(client.packets(expected.count(b"\r\n\r\n")))
        assert normalise(got) == normalise(expected), chunks[index]["data"]
    assert client.read_to_eof() == b""


def test_dbget_list_shape_and_db_contents(client: RawClient, server: FakeAMIServer) -> None:
    chunks = load_chunks("asterisk-22/session.json")
    recorded = s2c_after(chunks, find_c2s(chunks, "ActionID: db2"))
    server.db[("amitest", "k1")] = "hello: world"
    client.action("DBGet", "zz", Family="amitest", Key="k1")
    assert normalise(b"".join(client.packets(3))) == normalise(recorded)
    client.action("DBPut", "p", Family="fam/sub", Key="a", Val="1")
    client.action("DBDelTree", "d", Family="fam")
    assert b"Updated database" in client.packet() and b"Key tree deleted" in client.packet()
    client.action("DBGetTree", "t", Family="fam")
    assert client.packets(2)[1].endswith(b"ListItems: 0\r\n\r\n")
    assert server.db == {("amitest", "k1"): "hello: world"}


def test_command_asterisk22_format(client: RawClient, server: FakeAMIServer) -> None:
    chunks = load_chunks("asterisk-22/session.json")
    index = find_c2s(chunks, "ActionID: cmd4")
    recorded = s2c_after(chunks, index)
    lines = re.findall(rb"Output: ([^\r]*)\r\n", recorded)
    server.command_outputs["dialplan show test"] = b"\n".join(lines).decode() + "\n"
    client.send(chunks[index]["data"].encode())
    assert client.packet() == recorded
    client.action("Command", "u", Command="core  show uptime")
    assert re.fullmatch(rb"Response: Success\r\nActionID: u\r\nMessage: Command output follows\r\n"
                        rb"Output: System uptime: \d+ seconds?\r\nOutput: Last reload: \d+ seconds?\r\n\r\n",
                        client.packet())
    client.action("Command", "m", Command="module unload chan_sip.so")
    assert b"Response: Error\r\nActionID: m\r\nMessage: Command blacklisted" in client.packet()


def test_command_legacy_format_matches_asterisk13() -> None:
    chunks = load_chunks("asterisk-13/session.json")
    with FakeAMIServer(legacy=True) as srv, RawClient(srv.address) as c:
        assert c.line() == b"Asterisk Call Manager/2.10.6\r\n"
        c.action("Login", "l", Username="admin", Secret="secret")
        assert c.packets(2)[1] == b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
        for action_id in ("cmd1", "cmd3", "cmd4"):
            index = find_c2s(chunks, "ActionID: " + action_id)
            expected = s2c_after(chunks, index)
            text = expected.split(b"\r\n", 3)[3][: -len(b"--END COMMAND--\r\n\r\n")]
            if action_id != "cmd3":
                srv.command_outputs[re.search(r"Command: ([^\r]*)", chunks[index]["data"]).group(1)] = text.decode()
            c.send(chunks[index]["data"].encode())
            assert c.until(b"--END COMMAND--\r\n\r\n") == expected


@pytest.mark.parametrize("recording", ["asterisk-22/session.json", "asterisk-13/session.json"])
def test_queue_actions_match_the_recorded_bytes(recording: str) -> None:
    """QueueStatus/Summary/Add/Pause/Status/Remove as recorded, events included (clock readings masked)."""
    def clockless(data: bytes) -> bytes:
        return re.sub(rb"(LoginTime|LastPause): [1-9][0-9]*", rb"\1: T", data)

    chunks = load_chunks(recording)
    with FakeAMIServer(legacy="13" in recording) as srv, RawClient(srv.address) as c:
        c.login()
        for action_id in ("qs1", "qsum1", "qa1", "qp1", "qs2", "qr1"):
            index = find_c2s(chunks, "ActionID: %s\r\n" % action_id)
            expected = s2c_after(chunks, index)
            c.send(chunks[index]["data"].encode())
            got = b"".join(c.packets(expected.count(b"\r\n\r\n")))
            assert clockless(got) == clockless(expected), action_id
        assert c.ping() == b""
        assert srv.queues["support"].members == {}


def test_userevent_broadcast(server: FakeAMIServer) -> None:
    chunks = load_chunks("asterisk-22/session.json")
    index = next(i for i, c in enumerate(chunks) if "UserEvent: MyEvent" in c["data"])
    recorded = s2c_after(chunks, index)
    with RawClient(server.address) as a, RawClient(server.address) as b, RawClient(server.address) as quiet:
        a.login()
        b.login()
        quiet.login(events="off")
        a.send(chunks[index]["data"].encode())
        assert b"".join(a.packets(2)) == recorded
        assert b.ping() == recorded.split(b"\r\n\r\n", 1)[1]
        assert quiet.ping() == b""


def test_originate_async_events_and_failure(client: RawClient) -> None:
    client.action("Originate", "o1", Channel="Local/200@test", Application="Wait", Data="5",
                  Async="true", CallerID='"Alice Example" <100>')
    assert client.packet() == b"Response: Success\r\nActionID: o1\r\nMessage: Originate successfully queued\r\n\r\n"
    events = client.packets(9)
    names = [re.match(rb"Event: (\w+)", e).group(1) for e in events]
    assert names == [b"Newchannel", b"Newchannel", b"DialBegin", b"Newstate", b"Newstate", b"DialEnd",
                     b"OriginateResponse", b"Hangup", b"Hangup"]
    # Asterisk 22 dials an originated channel with no calling channel (calls-bridged.json)
    assert events[2].startswith(b"Event: DialBegin\r\nPrivilege: call,all\r\nDestChannel: Local/200@test-00000000;1\r\n")
    assert events[2].endswith(b"\r\nDialString: 200@test\r\n\r\n") and b"\r\nChannel:" not in events[2]
    assert events[5].endswith(b"\r\nDialStatus: ANSWER\r\n\r\n")
    assert events[0].startswith(b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: Local/200@test-00000000;1"
                                b"\r\nChannelState: 0\r\nChannelStateDesc: Down\r\nCallerIDNum: 100\r\n")
    assert re.fullmatch(
        rb"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: o1\r\nResponse: Success\r\n"
        rb"Channel: Local/200@test-00000000;1\r\nApplication: Wait\r\nData: 5\r\nReason: 4\r\n"
        rb"Uniqueid: \d+\.0\r\nCallerIDNum: 100\r\nCallerIDName: Alice Example\r\n\r\n", events[6])
    assert b"Cause: 16\r\nCause-txt: Normal Clearing\r\n\r\n" in events[7]
    client.action("Originate", "o3", Channel="Local/busy@test", Application="Wait", Data="1", Async="yes")
    assert b"Originate successfully queued" in client.packet()
    packets = client.packets(8)
    assert b"DialStatus: BUSY\r\n" in packets[4]
    assert packets[-1] == (b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: o3\r\n"
                           b"Response: Failure\r\nChannel: Local/busy@test\r\nApplication: Wait\r\nData: 1\r\n"
                           b"Reason: 5\r\nUniqueid: <unknown>\r\nCallerIDNum: <unknown>\r\n"
                           b"CallerIDName: <unknown>\r\n\r\n")
    assert b"Cause: 17\r\nCause-txt: User busy" in packets[5]
    client.action("Originate", "o4", Channel="Local/busy@test", Context="test", Exten="100", Priority="1")
    assert client.packet() == b"Response: Error\r\nActionID: o4\r\nMessage: Originate failed\r\n\r\n"
    assert len(client.ping()) > 0  # its channel events come after the response
    client.action("Originate", "o5")
    assert client.packet().endswith(b"Message: Channel not specified\r\n\r\n")


def test_held_calls_status_coreshowchannels_and_hangup() -> None:
    with FakeAMIServer(hold_calls=True) as srv, RawClient(srv.address) as c:
        c.login(events="off")
        c.action("Originate", "o", Channel="Local/200@test", Context="test", Exten="ue", Priority="1")
        assert b"Originate successfully queued" in c.packet()
        assert sorted(srv.channels) == ["Local/200@test-00000000;1", "Local/200@test-00000000;2"]
        c.action("CoreShowChannels", "csc")
        show = c.packets(4)
        assert show[1].startswith(b"Event: CoreShowChannel\r\nActionID: csc\r\nChannel: Local/200@test-00000000;1\r\n")
        assert b"\r\nExten: ue\r\n" in show[1] and b"Duration: 00:00:00\r\nBridgeId: \r\n\r\n" in show[1]
        assert show[3] == b"Event: CoreShowChannelsComplete\r\nActionID: csc\r\nEventList: Complete\r\nListItems: 2\r\n\r\n"
        c.action("Status", "st")
        status = c.packets(4)
        assert status[1].startswith(b"Event: Status\r\nPrivilege: Call\r\n")
        assert status[1].endswith(b"Seconds: 0\r\nActionID: st\r\n\r\n")
        assert status[3] == b"Event: StatusComplete\r\nActionID: st\r\nEventList: Complete\r\nListItems: 2\r\nItems: 2\r\n\r\n"
        c.action("Events", "ev", EventMask="call")
        c.packet()
        c.action("Hangup", "h1", Channel="/^Local\\/200@test-.*;1$/")
        hung = c.packets(5)
        assert hung[1] == b"Event: ChannelHungup\r\nChannel: Local/200@test-00000000;1\r\nActionID: h1\r\n\r\n"
        assert hung[2].endswith(b"ListItems: 1\r\n\r\n")
        assert [h.split(b"\r\n")[2] for h in hung[3:]] == [b"Channel: Local/200@test-00000000;1",
                                                           b"Channel: Local/200@test-00000000;2"]
        assert srv.channels == {}
        c.action("Hangup", "h2", Channel="SIP/nope")
        assert b"Message: No such channel" in c.packet()
        name = srv.simulate_call("SIP/100", application="Echo")
        assert name == "SIP/100-00000001" and srv.hangup(name) and not srv.channels


def test_sync_originate_delay_uses_no_fixed_sleep() -> None:
    with FakeAMIServer(originate_delay=0.2) as srv, RawClient(srv.address) as c:
        c.login(events="off")
        start = time.monotonic()
        c.action("Originate", "s", Channel="Local/1@x", Application="Wait", Data="1")
        assert b"Originate successfully queued" in c.packet()
        assert time.monotonic() - start >= 0.2
        c.action("Events", "e", EventMask="call")
        c.packet()
        c.action("Originate", "a", Channel="Local/1@x", Application="Wait", Data="1", Async="1")
        assert b"successfully queued" in c.packet()
        assert b"OriginateResponse" in c.packets(7)[6]  # after the delay, from a timer thread


# -- events -------------------------------------------------------------------------


def test_event_mask_privilege_and_emit(server: FakeAMIServer) -> None:
    with RawClient(server.address) as calls, RawClient(server.address) as system:
        calls.login(events="call")
        system.login(events="system")
        assert server.emit("Hangup", Channel="SIP/1-0001", Cause="16") == 1
        assert server.emit({"Event": "Reload", "Privilege": "system,all", "Module": "x"}) == 1
        assert server.emit([("Event", "Both"), ("Privilege", "call,system,all")]) == 0
        assert calls.ping() == b"Event: Hangup\r\nPrivilege: call,all\r\nChannel: SIP/1-0001\r\nCause: 16\r\n\r\n"
        assert system.ping() == b"Event: Reload\r\nPrivilege: system,all\r\nModule: x\r\n\r\n"
        system.action("Events", "e", EventMask="call,system")
        assert system.packet() == b"Response: Success\r\nActionID: e\r\nEvents: On\r\n\r\n"
        system.action("Events", "e2", EventMask="Call")  # class names are case-sensitive
        assert system.packet() == b"Response: Success\r\nActionID: e2\r\nEvents: Off\r\n\r\n"
        assert server.emit_raw(b"Event: Raw\r\n\r\n") == 2
        assert system.ping() == b"Event: Raw\r\n\r\n"
        assert [s.event_mask for s in server.sessions] == [2, 0]


def test_filters_legacy_and_match_criteria(client: RawClient, server: FakeAMIServer) -> None:
    client.action("Filter", "f1", Operation="Add", Filter="Event: (Newchannel|Hangup)")
    assert client.packet() == b"Response: Success\r\nActionID: f1\r\nMessage: Success\r\n\r\n"
    client.action("Filter", "f2", Operation="Add", Filter="!Channel: Local/")
    client.action("Filter", "f3", Operation="Add", Filter="(unclosed")
    client.action("Filter", "f4", Operation="Add", Filter="x", MatchCriteria="name(Hangup),starts_with")
    client.action("Filter", "f5", Operation="Remove", Filter="x")
    assert b"Message: Success" in client.packet()
    assert b"Message: Filter did not compile.  Check the syntax of the filter given." in client.packet()
    assert b"Message: Filter was formatted incorrectly.  Check the syntax of the filter given." in client.packet()
    assert b"Message: Unknown operation" in client.packet()
    for name, channel in (("Newchannel", "SIP/1"), ("Newchannel", "Local/1"), ("Hangup", "SIP/2"), ("Newstate", "SIP/3")):
        server.emit(name, Channel=channel)
    got = client.ping()
    assert re.findall(rb"Event: (\w+)\r\nPrivilege: call,all\r\nChannel: ([^\r]+)", got) == [
        (b"Newchannel", b"SIP/1"), (b"Hangup", b"SIP/2")]
    with RawClient(server.address) as other:
        other.login(events="user")
        other.action("Filter", "m", Operation="Add", Filter="Keep",
                     MatchCriteria="name(UserEvent),header(UserEvent),method(exact)")
        other.packet()
        for name in ("Drop", "Keep", "Keeper"):
            server.emit("UserEvent", Privilege="user,all", UserEvent=name)
        assert other.ping() == b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: Keep\r\n\r\n"


def test_user_eventfilters_and_custom_handlers() -> None:
    users = {"admin": "secret", "filtered": User("f", eventfilters=["Event: Hangup"], write="call")}
    with FakeAMIServer(users) as srv, RawClient(srv.address) as c:
        seen: List[Packet] = []

        def my_action(session: Session, packet: Packet) -> List[Dict[str, Optional[str]]]:
            seen.append(packet)
            session.server.emit("MyEvent", Privilege="user,all", Value=packet.get("value", ""))
            return [{"Response": "Success", "ActionID": packet.action_id, "Message": "Mine"},
                    {"Event": "MyItem", "Items": ",".join(packet.getlist("Variable"))}]

        srv.add_handler("MyAction", my_action)
        srv.add_handler("Ping", lambda s, p: b"Response: Success\r\nPing: Custom\r\n\r\n")
        srv.add_handler("Secret", lambda s, p: {"Response": "Success"}, privilege="system")
        c.login("filtered", "f")
        c.send(b"action: myaction\r\nActionID: m1\r\nValue: 7\r\nVariable: a=1\r\nVariable: b=2\r\n\r\n")
        assert c.packets(2) == [b"Response: Success\r\nActionID: m1\r\nMessage: Mine\r\n\r\n",
                                b"Event: MyItem\r\nItems: a=1,b=2\r\n\r\n"]
        c.action("Ping", "p")
        assert c.packet() == b"Response: Success\r\nPing: Custom\r\n\r\n"
        c.action("Secret", "s")
        assert b"Message: Permission denied" in c.packet()
        srv.emit("Hangup", Channel="x")
        srv.remove_handler("Ping")
        assert c.ping() == b"Event: Hangup\r\nPrivilege: call,all\r\nChannel: x\r\n\r\n"  # not MyEvent
        assert seen[0].get("VALUE") == "7"


# -- faults ---------------------------------------------------------------------------


def test_fault_close_mid_packet(client: RawClient, server: FakeAMIServer) -> None:
    server.set_fault(Fault.CLOSE_MID_PACKET, times=1)
    client.action("Ping", "p1")
    data = client.read_to_eof()
    assert data and b"Response: Success\r\nActionID: p1".startswith(data[:20]) and b"\r\n\r\n" not in data
    assert server.active_faults == frozenset() and server.fault_count(Fault.CLOSE_MID_PACKET) == 1


def test_fault_reset_existing_and_new(client: RawClient, server: FakeAMIServer) -> None:
    server.fault = Fault.RESET
    client.action("Ping", "p1")
    with pytest.raises(ConnectionResetError):
        client.read_to_eof()
    with pytest.raises(ConnectionResetError):  # during connect() or at the first read
        with RawClient(server.address) as late:
            late.read_to_eof()
    server.fault = None
    with RawClient(server.address) as ok:
        ok.login()


def test_fault_stall_and_no_answer(server: FakeAMIServer) -> None:
    server.set_fault(Fault.STALL, times=1)
    with RawClient(server.address, timeout=0.3) as stalled, RawClient(server.address) as ok:
        ok.login()
        stalled.action("Ping", "p")
        with pytest.raises(socket.timeout):
            stalled.line()
        assert server.wait_for_actions(2)  # the login and the stalled ping were both read
        with server.injected(Fault.NO_ANSWER):
            ok.action("Ping", "lost")
            assert server.wait_for_actions(3)
            server.emit("Hangup")  # dropped too
            ok.sock.settimeout(0.3)
            with pytest.raises(socket.timeout):
                ok.packet()
        ok.sock.settimeout(TIMEOUT)
        assert ok.ping("back") == b""
        assert [p.action_id for p in server.received_actions] == ["l1", "p", "lost", "back"]
        assert len(server.sessions) == 2 and server.connections_accepted == 2


def test_fault_drip_garbage_oversized(client: RawClient, server: FakeAMIServer) -> None:
    server.set_fault(Fault.DRIP, interval=0.002)
    client.action("Ping", "drip")
    reads = 0
    while b"\r\n\r\n" not in client.buf:
        client._fill()
        reads += 1
    assert reads > 3 and b"ActionID: drip\r\nPing: Pong" in client.packet()
    server.set_fault(Fault.GARBAGE, times=1)
    client.action("Ping", "g")
    assert client.packet() == b"\xff\xfe\x00\x80garbage\r\nnot a header line\r\n\r\n"
    assert b"ActionID: g\r\n" in client.packet()
    server.set_fault(Fault.GARBAGE, data=b"\x00junk\r\n\r\n", replace=True, times=1)
    client.action("Ping", "r")
    assert client.packet() == b"\x00junk\r\n\r\n"
    size = 2 * 1024 * 1024
    server.set_fault(Fault.OVERSIZED, size=size, terminated=True, times=1)
    client.action("Ping", "big")
    huge = client.packet()
    assert len(huge) == size and huge.startswith(b"Event: Oversized\r\n")
    assert b"ActionID: big\r\n" in client.packet()


def test_fault_login_delay_and_refusal(server: FakeAMIServer) -> None:
    server.set_fault(Fault.DELAY_LOGIN, delay=0.3)
    with RawClient(server.address) as c:
        start = time.monotonic()
        c.login()
        assert time.monotonic() - start >= 0.3
    server.set_fault(Fault.REFUSE_LOGIN)
    with RawClient(server.address) as c:
        c.line()
        c.action("Login", "1", Username="admin", Secret="secret")
        assert c.read_to_eof() == b"Response: Error\r\nActionID: 1\r\nMessage: Authentication failed\r\n\r\n"


def test_restart_same_port_and_drop_all(server: FakeAMIServer) -> None:
    port = server.port
    server.db[("keep", "me")] = "1"
    with RawClient(server.address) as old, RawClient(server.address) as other:
        old.login()
        other.login()
        assert server.drop_all() == 2
        assert old.read_to_eof() == b"" and other.read_to_eof() == b""
    with RawClient(server.address) as before:
        before.login()
        server.restart()
        assert before.read_to_eof() == b""
    assert server.port == port and server.db == {("keep", "me"): "1"}
    with RawClient(server.address) as after:
        after.login()
        server.drop_all(reset=True)
        with pytest.raises(ConnectionResetError):
            after.read_to_eof()
    assert server.connections_accepted == 4
    server.stop()
    server.stop()


def test_session_close_abort_from_server(server: FakeAMIServer) -> None:
    with RawClient(server.address) as a, RawClient(server.address) as b:
        a.login()
        b.login()
        first, second = server.sessions
        assert first.username == "admin" and first.authenticated and first.received[0].action == "Login"
        first.push(b"Event: Bye\r\n\r\n")
        first.close()
        assert a.read_to_eof() == b"Event: Bye\r\n\r\n"
        second.abort()
        with pytest.raises(ConnectionResetError):
            b.read_to_eof()
        assert first.wait_closed(TIMEOUT) and second.wait_closed(TIMEOUT)


# -- load ----------------------------------------------------------------------------


def test_pipelined_pings_from_16_threads(client: RawClient) -> None:
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(500):
            with lock:
                client.send(b"Action: Ping\r\nActionID: %d-%d\r\n\r\n" % (n, i))

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    count = 0
    while count < 8000:
        client._fill()
        cut = client.buf.rfind(b"\r\n\r\n")
        if cut >= 0:
            count += client.buf[: cut + 4].count(b"Ping: Pong")
            client.buf = client.buf[cut + 4:]
    for t in threads:
        t.join()
    assert time.monotonic() - start < 5.0


def test_many_concurrent_clients(server: FakeAMIServer) -> None:
    errors: List[BaseException] = []

    def one(n: int) -> None:
        try:
            with RawClient(server.address) as c:
                c.login(events="off")
                for i in range(20):
                    c.action("Ping", "%d-%d" % (n, i))
                for i in range(20):
                    assert b"ActionID: %d-%d\r\n" % (n, i) in c.packet()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert server.connections_accepted == 40


# -- ReplayServer ------------------------------------------------------------------------


def test_replay_server_session_byte_exact() -> None:
    chunks = load_recording(FIXTURES / "asterisk-22" / "session.json")
    with ReplayServer(chunks) as replay, RawClient(replay.address) as c:
        for chunk in chunks:
            if chunk["dir"] == "c2s":
                c.send(chunk["data"].encode())
            else:
                assert c.exactly(len(chunk["data"])) == chunk["data"].encode()
        assert replay.done.wait(TIMEOUT)
        assert len(replay.received) == sum(1 for x in chunks if x["dir"] == "c2s")


def test_replay_server_rewrites_action_ids_and_closes_on_eof() -> None:
    chunks = load_recording(FIXTURES / "asterisk-22" / "errors.json", "missing_action")
    with ReplayServer(chunks) as replay, RawClient(replay.address) as c:
        assert c.line() == b"Asterisk Call Manager/11.0.0\r\n"
        c.send(b"Action: Login\nUsername: admin\nSecret: s3cr3t!\nEvents: off\nActionID: mine-1\n\n")
        assert c.packet() == b"Response: Success\r\nActionID: mine-1\r\nMessage: Authentication accepted\r\n\r\n"
        c.send(b"Foo: bar\r\n\r\n")  # recorded with ActionID 2, sent without: kept as recorded
        assert c.packet() == b"Response: Error\r\nActionID: 2\r\nMessage: Missing action in request\r\n\r\n"
        for n in range(3, 8):
            c.action("Ping", "x%d" % n)
        rest = c.read_to_eof()
        assert rest.count(b"\r\n\r\n") == 5 and b"ActionID: x7\r\nMessage: Thanks for all the fish." in rest
        assert replay.done.wait(TIMEOUT) and replay.received[1] == b"Foo: bar\r\n\r\n"
    with pytest.raises(ValueError):
        load_recording(FIXTURES / "asterisk-22" / "errors.json")


def test_listcommands_security_events_and_slow_reader() -> None:
    users = {"admin": "secret", "reader": User("r", read="call,system", write="system")}
    with FakeAMIServer(users, security_events=True, write_timeout=0.2) as srv:
        with RawClient(srv.address) as c:
            c.login("reader", "r", events="off")
            c.action("ListCommands", "lc")
            listing = c.packet()
            assert b"\r\nPing: Keepalive command.  (Priv: <none>)\r\n" in listing
            assert b"DBGet: Get DB Entry.  (Priv: system,reporting,all)\r\n" in listing
            assert b"Originate:" not in listing and b"Command:" not in listing
        with RawClient(srv.address) as c:
            c.login(events="security")
            assert re.match(rb"Event: SuccessfulAuth\r\nPrivilege: security,all\r\nEventTV: ", c.packet())
            c.action("Nope", "n")
            assert b"Invalid/unknown command: Nope." in c.packet()
            bad_format = c.packet()  # the recorded order: RequestType, SessionTV, AccountID
            assert b"RequestType: Action: Nope\r\nSessionTV: " in bad_format
            assert bad_format.endswith(b"\r\nAccountID: admin\r\n\r\n")
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(srv.address)
        with slow:
            slow.sendall(b"Action: Login\r\nUsername: admin\r\nSecret: secret\r\nEvents: off\r\n\r\n")
            assert srv.wait_for_sessions(1)
            session = srv.sessions[0]
            session.push(b"Event: Big\r\nData: " + b"x" * (16 * 1024 * 1024) + b"\r\n\r\n")
            assert session.wait_closed(TIMEOUT)  # never read: disconnected after write_timeout

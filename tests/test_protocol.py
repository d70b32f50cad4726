"""The sans-IO layer against byte-exact recordings of Asterisk 22 and 13."""
from __future__ import annotations

import re
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amiclient import Event, ProtocolError, Response
from amiclient._protocol import EventShapes, Framer, parse_event, parse_packet, serialize_action
from amiclient.packet import Packet
from amiclient.testing import PacketParser

from .conftest import load_chunks

RECORDINGS = [
    ("asterisk-22/session.json", ""),
    ("asterisk-22/calls-50.json", ""),
    ("asterisk-13/session.json", ""),
] + [("asterisk-22/errors.json", name) for name in (
    "bad_password", "unknown_user", "action_before_login", "md5_bad_key",
    "reader_permission_denied", "missing_action", "events_off_login", "filtered_user",
)]


def server_bytes(relative: str, name: str) -> bytes:
    return b"".join(c["data"].encode() for c in load_chunks(relative, name) if c["dir"] == "s2c")


def expected_packets(stream: bytes) -> List[str]:
    """An independent oracle: regex framing of the recording (legacy Command output included)."""
    body = (stream.split(b"\r\n", 1)[1] if has_banner(stream) else stream).decode()
    found = re.findall(r"Response: Follows\r\n.*?--END COMMAND--\r\n\r\n|.*?\r\n\r\n", body, re.S)
    return [packet[:-4] for packet in found]


def has_banner(stream: bytes) -> bool:
    return stream.startswith(b"Asterisk Call Manager/")


def frame(stream: bytes, sizes: List[int]) -> List[str]:
    framer = Framer(expect_banner=has_banner(stream))
    out: List[str] = []
    pos = 0
    for size in sizes:
        out += framer.feed(stream[pos:pos + size])
        pos += size
    out += framer.feed(stream[pos:]) if pos < len(stream) else []
    assert framer.buffered == 0
    return out


@pytest.mark.parametrize("relative,name", RECORDINGS)
def test_recordings_frame_identically_whole_and_byte_by_byte(relative: str, name: str) -> None:
    stream = server_bytes(relative, name)
    whole = frame(stream, [len(stream)])
    assert whole == expected_packets(stream)
    if len(stream) < 60_000:
        assert frame(stream, [1] * len(stream)) == whole
    else:
        assert frame(stream, [7, 1500, 3] * (len(stream) // 1510 + 1)) == whole


@pytest.mark.parametrize("relative,name", RECORDINGS[:1] + RECORDINGS[2:3])
def test_every_split_point(relative: str, name: str) -> None:
    stream = server_bytes(relative, name)[:6000]
    stream = stream[: stream.rfind(b"\r\n\r\n") + 4]
    whole = frame(stream, [len(stream)])
    for cut in range(1, len(stream), 7):
        assert frame(stream, [cut]) == whole


def test_banner_is_a_line_not_a_packet() -> None:
    framer = Framer()
    assert framer.feed(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: 1\r\n") == []
    assert framer.banner == "Asterisk Call Manager/11.0.0"
    assert framer.feed(b"\r\n") == ["Response: Success\r\nActionID: 1"]


def test_not_an_ami_server() -> None:
    with pytest.raises(ProtocolError, match="not an AMI server"):
        Framer().feed(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_session_22_parses_every_packet_as_recorded() -> None:
    packets = [parse_packet(t) for t in frame(server_bytes("asterisk-22/session.json", ""), [10**9])]
    responses = [p for p in packets if isinstance(p, Response)]
    events = [p for p in packets if isinstance(p, Event)]
    assert len(packets) == len(responses) + len(events)
    by_id = {r.action_id: r for r in responses}
    assert by_id["c1"]["Challenge"] == "183378475"
    assert by_id["p1"]["Ping"] == "Pong" and by_id["p1"].message is None
    assert by_id["cmd2"].getlist("Output") == ["System uptime: 23 seconds", "Last reload: 23 seconds"]
    assert not by_id["cmd3"].ok and by_id["cmd3"].output.startswith("No such command")
    assert by_id["db2"]["EventList"] == "start"
    assert by_id["bye1"].status == "Goodbye" and by_id["bye1"].ok
    dbget = [e for e in events if e.name == "DBGetResponse"][0]
    assert dbget["Val"] == "hello: world" and dbget["actionid"] == "db2"
    user = [e for e in events if e.name == "UserEvent"][0]
    assert user.getlist("Multi") == ["a", "b"] and user["Multi"] == "a" and user.action_id == "ue1"
    originate = [e for e in events if e.name == "OriginateResponse"]
    assert originate and all(isinstance(e, Event) and "Response" in e for e in originate)
    assert {e.action_id for e in originate} >= {"orig1", "orig3"}
    assert [r.action_id for r in responses if r.action_id is None] == [None]  # the Ping sent without ActionID


def test_legacy_command_output_becomes_output_lines() -> None:
    packets = [parse_packet(t) for t in frame(server_bytes("asterisk-13/session.json", ""), [10**9])]
    by_id = {p.action_id: p for p in packets if isinstance(p, Response)}
    assert by_id["cmd2"].status == "Follows"
    assert by_id["cmd2"].getlist("Output") == ["System uptime: 11 seconds", "Last reload: 11 seconds"]
    assert by_id["cmd2"]["Privilege"] == "Command"
    dialplan = by_id["cmd4"].output
    assert "'ue' =>           1. UserEvent(TestEvent,Key1: value1,Key2: v2) [pbx_config]" in dialplan
    assert by_id["cmd3"].output.startswith("No such command 'no such command here'")


def test_legacy_command_with_blank_lines_and_crlf_inside() -> None:
    stream = (b"Asterisk Call Manager/1.1\r\nResponse: Follows\r\nPrivilege: Command\r\nActionID: x\r\n"
              b"line one\n\nline: three\r\n\r\nstill output\n--END COMMAND--\r\n\r\nEvent: Next\r\n\r\n")
    for cut in range(1, len(stream)):
        texts = frame(stream, [cut])
        assert len(texts) == 2
    response = parse_packet(texts[0])
    assert response.getlist("Output") == ["line one", "", "line: three", "", "still output"]
    assert parse_packet(texts[1]).name == "Next"  # type: ignore[attr-defined]


def test_stray_trailing_lf_in_value_is_stripped() -> None:
    packet = parse_packet("Response: Error\r\nActionID: b1\r\nMessage: Unable to create bridge\n")
    assert packet["Message"] == "Unable to create bridge"
    packet = parse_packet("Response: Success\r\nMessage: Park successful\n\r\nActionID: 2")
    assert packet["Message"] == "Park successful" and packet["ActionID"] == "2"


def test_odd_lines_are_kept() -> None:
    packet = parse_packet("Event: UserEvent\r\nUserEvent: X\r\nKey:value\r\nnocolonline\r\nEmpty: ")
    assert packet["Key"] == "value" and "nocolonline" in packet and packet["Empty"] == ""


def test_garbage_packet_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_packet("\x00\xff garbage without structure")


def test_oversized_packet() -> None:
    framer = Framer(max_packet_size=1000)
    framer.feed(b"Asterisk Call Manager/11.0.0\r\n")
    with pytest.raises(ProtocolError, match="max_packet_size"):
        for _ in range(20):
            framer.feed(b"Event: Big\r\nData: " + b"x" * 100)
    with pytest.raises(ProtocolError):  # refuses further use
        framer.feed(b"\r\n\r\n")
    framer = Framer(max_packet_size=1000)
    with pytest.raises(ProtocolError):
        framer.feed(b"Asterisk Call Manager/11.0.0\r\nEvent: A\r\n\r\nEvent: Big\r\nData: " + b"y" * 2000 + b"\r\n\r\n")


def test_multibyte_character_split_across_reads() -> None:
    stream = "Asterisk Call Manager/11.0.0\r\nEvent: X\r\nName: café ☎\r\n\r\n".encode()
    cut = stream.index("é".encode()) + 1
    assert parse_packet(frame(stream, [cut])[0])["Name"] == "café ☎"


def test_serialize_rejects_cr_lf_and_limits() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        serialize_action("Originate", {"Channel": "a\r\nAction: Hangup"})
    with pytest.raises(ValueError, match="CR or LF"):
        serialize_action("Originate", {"Variable": {"A": "1\n"}})
    with pytest.raises(ValueError, match="header name"):
        serialize_action("Ping", {"Bad Key": "x"})
    with pytest.raises(ValueError, match="1022"):
        serialize_action("Ping", {"Data": "x" * 1020})
    with pytest.raises(ValueError, match="128"):
        serialize_action("Ping", {"V": ["x"] * 130})


def test_serialize_refuses_what_asterisk_would_silently_change() -> None:
    for bad in ({"Value": " leading space"}, {"Value": "\tx"}, {"Value": "\x1fx"}, {"Variable": {" A": "1"}},
                {"Value": "cut\x00here"}):
        with pytest.raises(ValueError, match="whitespace|NUL"):
            serialize_action("Setvar", bad)
    wire = serialize_action("Setvar", {"Value": "", "Data": "trailing kept "})
    assert wire.endswith(b"Value: \r\nData: trailing kept \r\n\r\n")


def test_serialize_shapes() -> None:
    data = serialize_action("Originate", {"Channel": "Local/200@test", "Async": True, "Timeout": 3000,
                                          "Variable": {"A": 1, "B": "2,C=3"}, "Skip": None}, "o1")
    assert data == (b"Action: Originate\r\nChannel: Local/200@test\r\nAsync: true\r\nTimeout: 3000\r\n"
                    b"Variable: A=1\r\nVariable: B=2\\,C=3\r\nActionID: o1\r\n\r\n")  # the comma escaped


keys = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1, max_size=12)
values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40).filter(
    lambda v: not v.startswith(" "))


@given(st.lists(st.tuples(keys, values), max_size=20), st.sampled_from(["Event", "Response"]), values)
@settings(max_examples=300, deadline=None)
def test_parse_of_serialized_packet_round_trips(pairs: List[tuple], kind: str, first: str) -> None:
    # Keys that differ only in case are kept apart on the fast path (Asterisk never sends them);
    # the round trip is about everything else.
    spellings: dict = {}
    pairs = [(k, v) for k, v in pairs if k.lower() not in ("event", "response", "actionid")
             and spellings.setdefault(k.lower(), k) == k]
    text = "\r\n".join(f"{k}: {v}" for k, v in [(kind, first or "X")] + pairs)
    stream = b"Asterisk Call Manager/11.0.0\r\n" + text.encode() + b"\r\n\r\n"
    framed = frame(stream, [len(stream)])
    assert framed == [text]
    packet = parse_packet(framed[0])
    expected = Packet.from_pairs([(kind, first or "X")] + [(k, v.rstrip("\n")) for k, v in pairs])
    assert dict(packet) == dict(expected)
    for key, _ in pairs:
        assert packet.getlist(key) == expected.getlist(key)


@given(st.binary(max_size=2000), st.lists(st.integers(1, 300), max_size=20))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_crash_the_framer(data: bytes, sizes: List[int]) -> None:
    framer = Framer(max_packet_size=4096)
    pos = 0
    try:
        for size in sizes + [len(data)]:
            for text in framer.feed(data[pos:pos + size]):
                try:
                    parse_packet(text)
                except ProtocolError:
                    pass
            pos += size
    except ProtocolError:
        pass


tricky_values = st.lists(st.sampled_from(list("ab \n\t:é☎\r") + [": "]), max_size=12).map(
    lambda parts: "".join(parts).replace("\r\n", "").rstrip("\r"))


@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.lists(tricky_values, min_size=3, max_size=3),
                          st.booleans()), min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_shape_parser_agrees_with_the_plain_parser(events: List[tuple]) -> None:
    layouts = {"A": ["Privilege", "Channel", "Uniqueid"], "B": ["Channel", "Channel", "X"], "C": ["k", "K", "v"]}
    shapes = EventShapes()
    for name, values, odd_line in events:
        lines = [f"Event: {name}"] + [f"{key}: {value}" for key, value in zip(layouts[name], values)]
        if odd_line:
            lines.insert(2, "nocolon:line" if name == "A" else "no colon")
        text = "\r\n".join(lines)
        if "\r\r" in text or text.endswith("\r"):
            continue
        expected, got = parse_event(text), shapes.parse(name, text)
        assert dict(got) == dict(expected) and type(got) is type(expected)
        for key in ("Channel", "k", "v", "Uniqueid", "nocolon"):
            assert got.getlist(key) == expected.getlist(key)


def test_shape_parser_learns_boundedly() -> None:
    shapes = EventShapes()
    for layout in range(40):  # a name whose layout keeps changing
        text = "Event: Odd\r\n" + "\r\n".join(f"K{layout}x{i}: v" for i in range(3))
        assert shapes.parse("Odd", text)[f"K{layout}x0"] == "v"
    assert len(shapes._layouts["Odd"]) <= EventShapes.MAX_LAYOUTS_PER_NAME
    assert shapes._learned["Odd"] == EventShapes.MAX_LEARNED_PER_NAME


header_names = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1,
                       max_size=10).filter(lambda k: k.lower() not in ("action", "actionid"))
header_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
                        max_size=30).filter(lambda v: v[:1] > " " or not v)  # what serialize_action accepts


@given(st.dictionaries(header_names, st.one_of(header_values, st.lists(header_values, min_size=1, max_size=3)),
                       max_size=8), header_names)
@settings(max_examples=300, deadline=None)
def test_serialized_actions_parse_back_on_the_server_side(headers: dict, action: str) -> None:
    """parse(serialize(action)) == action, with the fake Asterisk's parser of client packets."""
    data = serialize_action(action, headers, "id-1")
    packets = PacketParser().feed(data)
    assert len(packets) == 1 and packets[0].error is None
    expected = [("Action", action)]
    for key, value in headers.items():
        expected += [(key, item) for item in (value if isinstance(value, list) else [value])]
    assert packets[0].pairs == expected + [("ActionID", "id-1")]


def test_packet_mutations_keep_case_insensitive_lookups() -> None:
    packet = parse_packet("Event: X\r\nChannel: SIP/1\r\nVariable: a=1\r\nVariable: b=2")
    assert packet["channel"] == "SIP/1"
    packet.update({"CHANNEL": "SIP/2"}, Extra="e")
    assert packet["Channel"] == "SIP/2" and packet["extra"] == "e" and list(packet).count("CHANNEL") == 1
    assert packet.pop("extra") == "e" and "Extra" not in packet and packet.pop("nope", None) is None
    assert packet.setdefault("new", "n") == "n" and packet["NEW"] == "n"
    copy = packet.copy()
    assert isinstance(copy, Event) and copy.getlist("variable") == ["a=1", "b=2"]
    packet.clear()
    assert "channel" not in packet and len(packet) == 0


@pytest.mark.parametrize("extra", [0, 10])  # a short packet scans its keys; a long one builds a lookup table
def test_case_insensitive_lookups_agree_on_short_and_long_packets(extra: int) -> None:
    pairs = [("Response", "Success"), ("ActionID", "first"), ("actionid", "second")]
    pairs += [(f"X-{i}", str(i)) for i in range(extra)]
    response = Response(pairs)  # the fast parser's shape: case-only duplicates kept apart
    assert response["ActionID"] == "first" and response["actionid"] == "second"
    assert response.get("ACTIONID") == "second"  # a miss in any case: the last spelling, either way
    assert "eventlist" not in response and response.get("EventList") is None

"""Routing under pressure: answers without ActionID, unreadable packets, listener removal, stats, case."""
from __future__ import annotations

import sys
import threading
from typing import Any, Iterator, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amiclient import ActionTimeout, AMIClient, Event
from amiclient._protocol import Framer, parse_packet
from amiclient.exceptions import ConnectionLost, ProtocolError
from amiclient.testing import FakeAMIServer, Fault

USERS = {"admin": "s3cr3t!"}


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users=USERS) as srv:
        yield srv


def make_client(server: FakeAMIServer, **options: Any) -> AMIClient:
    options.setdefault("reconnect", False)
    options.setdefault("timeout", 5.0)
    return AMIClient("127.0.0.1", server.port, "admin", USERS["admin"], **options)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads as often as possible: races show up in a fraction of a second."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


# --------------------------------------------------------------------------- item 6: no ActionID

def answer_without_action_id(session: Any, packet: Any) -> List[Tuple[str, str]]:
    """Getvar the way a proxy that drops ActionIDs answers it; ``SLOW`` takes a second."""
    name = packet.get("Variable", "")
    if name == "SLOW":
        session.sleep(1.0)
    return [("Response", "Success"), ("Variable", name), ("Value", f"value of {name}")]


def test_late_answer_of_timed_out_action_is_not_given_to_the_next(server: FakeAMIServer) -> None:
    server.add_handler("Getvar", answer_without_action_id)
    with make_client(server) as client:
        with pytest.raises(ActionTimeout):
            client.action("Getvar", Variable="SLOW", timeout=0.2)
        fast = client.action("Getvar", Variable="FAST", timeout=5)
        assert fast["Value"] == "value of FAST"
        assert client.connected


def test_tombstone_is_dropped_when_a_later_answer_carries_its_actionid(server: FakeAMIServer) -> None:
    with make_client(server) as client:
        server.set_fault(Fault.NO_ANSWER, times=1)
        with pytest.raises(ActionTimeout):
            client.action("Ping", timeout=0.2)
        for _ in range(3):
            assert client.ping().ok
        link = client._link
        assert link is not None and link.tracker.tombstones == 0 and len(link.tracker._order) <= 1


def test_senders_racing_the_reader_on_answers_without_actionid(server: FakeAMIServer, fast_switching: None) -> None:
    server.add_handler("Getvar", answer_without_action_id)
    with make_client(server, timeout=20) as client:
        errors: List[BaseException] = []
        mismatches: List[Tuple[str, str]] = []

        def sender(worker: int) -> None:
            try:
                futures = []
                for i in range(150):  # Pings are answered by ActionID, Getvars without: both in one FIFO
                    futures.append(("", client.send_action("Ping")))
                    futures.append((f"V{worker}-{i}", client.send_action("Getvar", Variable=f"V{worker}-{i}")))
                for name, future in futures:
                    response = future.result(20)
                    if name and response.get("Value") != f"value of {name}":
                        mismatches.append((name, str(response.get("Value"))))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors and not mismatches
        assert client.connected and client.stats.reconnects == 0


# --------------------------------------------------------------------------- item 7: unreadable packets

def test_garbage_before_an_answer_is_skipped_and_the_answer_arrives(server: FakeAMIServer) -> None:
    seen = threading.Event()
    with make_client(server) as client:
        client.add_listener(lambda event: seen.set(), "UserEvent")
        server.set_fault(Fault.GARBAGE, times=1)
        assert client.ping().ok
        client.user_event("After")
        assert seen.wait(5)
        stats = client.stats
        assert stats.malformed_packets == 1 and client.connected and stats.reconnects == 0
        assert stats["malformed_packets"] == 1


def test_unreadable_packets_are_logged_rate_limited(server: FakeAMIServer, caplog: pytest.LogCaptureFixture) -> None:
    with make_client(server) as client:
        server.emit_raw(b"free text one\r\n\r\nfree text two\r\n\r\nfree text three\r\n\r\n")
        assert client.ping().ok
        assert client.stats.malformed_packets == 3
    warnings = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert 1 <= len(warnings) <= 1


def test_oversized_packet_still_drops_the_link(server: FakeAMIServer) -> None:
    with make_client(server, max_packet_size=64 * 1024) as client:
        server.emit_raw(b"Event: Huge\r\nData: " + b"x" * 200_000)
        with pytest.raises((ProtocolError, ConnectionLost)):
            client.ping()
        assert not client.connected and client.stats.malformed_packets == 0


_key = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=8)
_value = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=12)
_packet = st.tuples(st.sampled_from(["Event", "Response"]), _key,
                    st.lists(st.tuples(_key, _value), max_size=4), st.integers(0, 2))


def _comparable(texts: List[str]) -> List[Any]:
    """What the router would make of ``texts``: blank ones skipped, others parsed (or 'malformed')."""
    out: List[Any] = []
    for text in texts:
        if not text or text.isspace():
            continue
        try:
            packet = parse_packet(text)
        except ProtocolError:
            out.append("malformed")
            continue
        out.append((type(packet).__name__, list(dict.items(packet)), {k: packet.getlist(k) for k in packet}))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(_packet, min_size=1, max_size=5), st.data())
def test_parse_does_not_depend_on_where_reads_split(packets: List[Any], data: st.DataObject) -> None:
    stream = b""
    for kind, first, pairs, stray in packets:
        lines = [f"{kind}: {first}"] + [f"{k}: {v}" for k, v in pairs]
        stream += ("\r\n".join(lines) + "\r\n\r\n" + "\r\n" * stray).encode()
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=4))))
    whole = Framer(expect_banner=False).feed(stream)
    framer = Framer(expect_banner=False)
    split: List[str] = []
    for start, end in zip([0] + cuts, cuts + [len(stream)]):
        split += framer.feed(stream[start:end])
    assert _comparable(split) == _comparable(whole)
    assert all("" not in dict.keys(packet) for packet in (parse_packet(t) for t in split if t.strip()))


def test_stray_crlf_gives_the_same_texts_wherever_the_read_ends() -> None:
    stream = b"Response: 0\r\n0: \r\nM: \r\nm: \r\n\r\n\r\n"  # found by the property test above
    whole = Framer(expect_banner=False).feed(stream)
    framer = Framer(expect_banner=False)
    assert framer.feed(stream[:30]) + framer.feed(stream[30:]) == whole == ["Response: 0\r\n0: \r\nM: \r\nm: "]


def test_stray_crlf_at_the_end_of_a_read_makes_no_empty_key() -> None:
    framer = Framer(expect_banner=False)
    texts = framer.feed(b"Event: Hangup\r\nChannel: SIP/1\r\n\r\n\r\n")
    packets = [parse_packet(t) for t in texts if t.strip()]
    assert [dict(p) for p in packets] == [{"Event": "Hangup", "Channel": "SIP/1"}]


# --------------------------------------------------------------------------- item 8: listener removal

THREE_HANGUPS = b"".join(b"Event: Hangup\r\nPrivilege: call,all\r\nChannel: SIP/%d\r\n\r\n" % n for n in range(3))


def _wait_for_ping(client: AMIClient) -> None:
    """Events written before a Ping's answer have been handed to the dispatcher once it returns."""
    assert client.ping().ok
    done = threading.Event()
    client._dispatcher.call_soon(done.set)
    assert done.wait(5)


def test_listener_removing_itself_is_not_called_for_the_rest_of_the_batch(server: FakeAMIServer) -> None:
    calls: List[str] = []
    with make_client(server) as client:
        def once(event: Event) -> None:
            calls.append(event["Channel"])
            client.remove_listener(handle)

        handle = client.add_listener(once, "Hangup")
        server.emit_raw(THREE_HANGUPS)
        _wait_for_ping(client)
    assert calls == ["SIP/0"]


def test_listener_removed_by_another_is_not_called_again(server: FakeAMIServer) -> None:
    before: List[str] = []
    after: List[str] = []
    with make_client(server) as client:
        def remover(event: Event) -> None:
            client.remove_listener(first)
            client.remove_listener(last)

        first = client.add_listener(lambda e: before.append(e["Channel"]), "Hangup")
        client.add_listener(remover, "Hangup")
        last = client.add_listener(lambda e: after.append(e["Channel"]), "Hangup")
        server.emit_raw(THREE_HANGUPS)
        _wait_for_ping(client)
    assert before == ["SIP/0"] and after == []


def test_remove_from_another_thread_waits_for_a_call_in_progress(server: FakeAMIServer) -> None:
    calls: List[str] = []
    entered, release = threading.Event(), threading.Event()
    with make_client(server) as client:
        def slow(event: Event) -> None:
            calls.append(event["Channel"])
            entered.set()
            release.wait(5)

        handle = client.add_listener(slow, "Hangup")
        server.emit_raw(THREE_HANGUPS)
        assert entered.wait(5)
        remover = threading.Thread(target=client.remove_listener, args=(handle,))
        remover.start()
        remover.join(0.2)
        assert remover.is_alive()  # still inside the listener: remove_listener waits
        release.set()
        remover.join(5)
        assert not remover.is_alive()
        _wait_for_ping(client)
    assert calls == ["SIP/0"]


# --------------------------------------------------------------------------- item 9: stats invariant

def test_stats_snapshots_add_up_under_a_flood(server: FakeAMIServer, fast_switching: None) -> None:
    burst = b"".join(b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: F\r\nN: %d\r\n\r\n" % n for n in range(200))
    with make_client(server, event_queue_size=300) as client:
        client.add_listener(lambda event: None, "UserEvent")
        stop = threading.Event()
        bad: List[Any] = []
        snapshots = [0]

        def snapshot() -> None:
            while not stop.is_set():
                s = client.stats
                snapshots[0] += 1
                if s.events_received != s.events_dispatched + s.events_dropped + s.events_queued or s.events_queued < 0:
                    bad.append(s)

        watchers = [threading.Thread(target=snapshot) for _ in range(2)]
        for watcher in watchers:
            watcher.start()
        try:
            for _ in range(120):
                server.emit_raw(burst)
                _wait_for_ping(client) if _ % 10 == 9 else None
            _wait_for_ping(client)
        finally:
            stop.set()
            for watcher in watchers:
                watcher.join(10)
        assert snapshots[0] > 100
        assert not bad, bad[:3]
        final = client.stats
        assert final.events_received >= 24000 and final.events_queued == 0


# --------------------------------------------------------------------------- item 19: case

def lower_case_list(session: Any, packet: Any) -> bytes:
    action_id = packet.get("ActionID", "")
    items = b"".join(b"Event: Item\r\nactionid: %s\r\nN: %d\r\n\r\n" % (action_id.encode(), n) for n in range(3))
    return (b"Response: Success\r\nactionid: %s\r\neventlist: start\r\nMessage: Items will follow\r\n\r\n"
            % action_id.encode() + items
            + b"Event: ItemsComplete\r\nactionid: %s\r\neventlist: complete\r\nListItems: 3\r\n\r\n"
            % action_id.encode())


def test_list_flags_and_actionid_in_any_case(server: FakeAMIServer) -> None:
    server.add_handler("ItemList", lower_case_list)
    leaked: List[Event] = []
    with make_client(server) as client:
        client.add_listener(leaked.append, "Item*")
        response = client.action("ItemList")
        assert [e["N"] for e in response.events] == ["0", "1", "2"]
        assert response.complete_event is not None and response.complete_event.name == "ItemsComplete"
        _wait_for_ping(client)
    assert leaked == []


def test_legacy_completion_names_in_any_case(server: FakeAMIServer) -> None:
    def status(session: Any, packet: Any) -> bytes:
        aid = packet.get("ActionID", "").encode()
        return (b"Response: Success\r\nActionID: %s\r\nMessage: Channel status will follow\r\n\r\n" % aid
                + b"Event: Status\r\nActionid: %s\r\nChannel: SIP/1\r\n\r\n" % aid
                + b"Event: STATUSCOMPLETE\r\nACTIONID: %s\r\nItems: 1\r\n\r\n" % aid)

    server.add_handler("Status", status)
    with make_client(server) as client:
        response = client.action("Status")
        assert [e["Channel"] for e in response.events] == ["SIP/1"]
        assert response.complete_event is not None

"""The client against a real TCP peer: the bundled fake Asterisk."""
from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import Any, Iterator, List

import pytest

from amiclient import (
    ActionError,
    ActionTimeout,
    AMIClient,
    AMIConnectionError,
    AuthenticationError,
    ClientClosed,
    ConnectionLost,
    Event,
    ProtocolError,
    Response,
)
from amiclient.testing import FakeAMIServer, Fault, Recorder

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
def client(server: FakeAMIServer) -> Iterator[AMIClient]:
    with make_client(server) as c:
        yield c


# --------------------------------------------------------------------------- login


@pytest.mark.parametrize("auth", ["auto", "md5", "plain"])
def test_login_modes(server: FakeAMIServer, auth: str) -> None:
    with make_client(server, auth=auth) as client:
        assert client.connected and client.ami_version == "11.0.0"
        assert client.ping()["Ping"] == "Pong"
    actions = [p.get("Action", "") for p in server.received_actions]
    assert ("Challenge" in actions) == (auth != "plain")
    login = [p for p in server.received_actions if p.get("Action") == "Login"][0]
    assert ("Key" in login) == (auth != "plain") and ("Secret" in login) == (auth == "plain")
    assert actions[-1] == "Logoff"


def test_auto_auth_does_not_fall_back_to_plain_over_tcp(server: FakeAMIServer) -> None:
    server.add_handler("Challenge", lambda session, packet: [("Response", "Error"), ("Message", "Must specify AuthType")])
    with pytest.raises(AuthenticationError, match="unencrypted"):
        make_client(server, auth="auto").connect()
    with pytest.raises(AuthenticationError, match="MD5"):
        make_client(server, auth="md5").connect()


@pytest.mark.parametrize("auth", ["md5", "plain"])
def test_bad_secret_raises_authentication_error(server: FakeAMIServer, auth: str) -> None:
    client = AMIClient("127.0.0.1", server.port, "admin", "wrong", auth=auth, reconnect=False)
    with pytest.raises(AuthenticationError):
        client.connect()
    assert not client.connected
    client.close()


def test_secret_never_logged(server: FakeAMIServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="amiclient")
    with make_client(server, auth="md5") as client:
        client.ping()
    login = [p for p in server.received_actions if p.get("Action") == "Login"][0]
    assert "s3cr3t" not in caplog.text and login["Key"] not in caplog.text


def test_connect_refused_and_banner_timeout() -> None:
    with FakeAMIServer() as srv:
        port = srv.port
    with pytest.raises(AMIConnectionError, match="cannot connect"):
        AMIClient("127.0.0.1", port, "admin", "x", reconnect=False).connect()
    with FakeAMIServer() as srv:
        srv.set_fault(Fault.STALL)
        client = AMIClient("127.0.0.1", srv.port, "admin", "secret", connect_timeout=0.3, reconnect=False)
        with pytest.raises(AMIConnectionError, match="banner"):
            client.connect()


def test_using_a_client_before_connect_or_after_close(server: FakeAMIServer) -> None:
    client = make_client(server)
    with pytest.raises(AMIConnectionError, match="connect"):
        client.send_action("Ping")
    client.connect()
    client.close()
    client.close()  # idempotent
    with pytest.raises(ClientClosed):
        client.action("Ping")
    with pytest.raises(ClientClosed):
        client.connect()


def test_lazy_client_connects_on_first_use(server: FakeAMIServer) -> None:
    client = make_client(server, lazy=True)
    assert not client.connected
    assert client.ping().ok
    client.close()


# --------------------------------------------------------------------------- actions


def test_send_action_forms_and_header_values(server: FakeAMIServer, client: AMIClient) -> None:
    fut = client.send_action({"Action": "Ping", "ActionID": "mine-1"})
    assert fut.result(5).action_id == "mine-1"
    client.action("UserEvent", UserEvent="Shape", Multi=["a", "b"], Flag=True, Count=3, Skip=None,
                  Variable={"A": "1", "B": "x=y"})
    sent = [p for p in server.received_actions if p.get("UserEvent") == "Shape"][0]
    assert sent.getlist("Multi") == ["a", "b"] and sent["Flag"] == "true" and sent["Count"] == "3"
    assert "Skip" not in sent and sent.getlist("Variable") == ["A=1", "B=x=y"]


def test_duplicate_in_flight_action_id_is_refused(server: FakeAMIServer, client: AMIClient) -> None:
    server.set_fault(Fault.NO_ANSWER)
    client.send_action("Ping", ActionID="same")
    with pytest.raises(ValueError, match="already in flight"):
        client.send_action("Ping", ActionID="same")


def test_cr_lf_in_a_value_raises_and_sends_nothing(server: FakeAMIServer, client: AMIClient) -> None:
    before = len(server.received_actions)
    for bad in ({"Channel": "SIP/1\r\nAction: Hangup"}, {"Variable": {"A": "1\n"}}, {"Bad\nKey": "x"}):
        with pytest.raises(ValueError):
            client.send_action("Originate", bad)
    client.ping()
    after = server.received_actions[before:]
    assert [p.get("Action") for p in after] == ["Ping"]


def test_action_error_and_future_both_ways(client: AMIClient) -> None:
    fut = client.send_action("NoSuchAction")
    response = fut.result(5)
    assert isinstance(response, Response) and not response.ok
    assert response.message.startswith("Invalid/unknown command: NoSuchAction")  # type: ignore[union-attr]
    with pytest.raises(ActionError) as info:
        client.action("NoSuchAction")
    assert info.value.response.status == "Error"


def test_response_without_action_id_resolves_the_oldest(server: FakeAMIServer, client: AMIClient) -> None:
    server.add_handler("Anon", lambda session, packet: [("Response", "Success"), ("Message", packet.get("Tag", ""))])
    futures = [client.send_action("Anon", Tag=str(i)) for i in range(20)]
    assert [f.result(5).message for f in futures] == [str(i) for i in range(20)]


def test_action_timeout_and_late_answer_is_dropped(server: FakeAMIServer, client: AMIClient) -> None:
    server.set_fault(Fault.NO_ANSWER)
    started = time.monotonic()
    with pytest.raises(ActionTimeout):
        client.action("Ping", timeout=0.2)
    assert time.monotonic() - started < 2.0
    fut = client.send_action("Ping", timeout=0.2)  # nobody waits: the io thread expires it
    with pytest.raises(ActionTimeout):
        fut.result(5)
    assert client.stats.actions_timed_out == 2 and client.stats.actions_in_flight == 0


def test_sync_originate_timeout_covers_the_call(server: FakeAMIServer) -> None:
    server.originate_delay = 0.5
    with make_client(server, timeout=0.3) as client:
        response = client.originate("Local/100@test", application="Wait", data="1", ring_timeout=2, asynchronous=False)
        assert response.message == "Originate successfully queued"
    with make_client(server, timeout=0.3) as client:
        with pytest.raises(ActionTimeout):  # 0.3 s + 10 ms is less than the 0.5 s the call takes
            client.originate("Local/100@test", application="Wait", data="1", ring_timeout=0.01, asynchronous=False)


def test_event_list_actions(server: FakeAMIServer, client: AMIClient) -> None:
    client.db_put("fam", "k1", "hello: world")
    response = client.action("DBGet", Family="fam", Key="k1")
    assert [e.name for e in response.events] == ["DBGetResponse"] and response.events[0]["Val"] == "hello: world"
    assert response.complete_event is not None and response.complete_event["ListItems"] == "1"
    assert client.db_get("fam", "k1") == "hello: world" and client.db_get("fam", "missing") is None
    assert client.db_get_tree("fam") == {"/fam/k1": "hello: world"}
    empty = client.action("CoreShowChannels")
    assert empty.events == [] and empty.complete_event["ListItems"] == "0"  # type: ignore[index]


def test_list_items_are_not_listener_events_but_action_id_events_are(server: FakeAMIServer, client: AMIClient) -> None:
    seen = Recorder()
    client.add_listener(seen)
    server.hold_calls = True
    client.originate("Local/200@test", application="Wait", data="5", asynchronous=True, ActionID="orig-1")
    names = {e.name for e in seen.wait_for(3)}
    assert "Newchannel" in names
    channels = client.core_show_channels()
    assert len(channels) == 2 and all(c.action_id == channels[0].action_id for c in channels)
    status = client.status()
    assert [e.name for e in status] == ["Status", "Status"]
    client.user_event("Mine", ActionID="ue-1", Foo="bar")
    hangup = client.hangup(regex="^Local.*;1$")
    assert [e.name for e in hangup.events] == ["ChannelHungup"]
    user = seen.wait_for(1, where=lambda e: e.name == "UserEvent")[0]
    assert user["Foo"] == "bar" and user.action_id == "ue-1"
    assert not any(e.name in ("CoreShowChannel", "Status", "ChannelHungup", "CoreShowChannelsComplete") for e in seen.items)
    originate = seen.wait_for(1, where=lambda e: e.name == "OriginateResponse")
    assert originate and originate[0].action_id == "orig-1" and originate[0]["Response"] == "Success"


def test_command_both_formats() -> None:
    for legacy in (False, True):
        with FakeAMIServer(users=USERS, legacy=legacy) as srv:
            srv.command_outputs["show thing"] = "line one\n\nline: three"
            with make_client(srv) as client:
                assert client.command("show thing") == "line one\n\nline: three"
                if legacy:
                    assert client.ami_version == "2.10.6"
                else:
                    with pytest.raises(ActionError) as info:
                        client.command("no such command here")
                    assert info.value.response.output.startswith("No such command")


# --------------------------------------------------------------------------- listeners


def test_listener_selection_filter_and_order(server: FakeAMIServer, client: AMIClient) -> None:
    everything, hangups, queue, listed, sales = Recorder(), Recorder(), Recorder(), Recorder(), Recorder()
    client.add_listener(everything, filter=lambda e: "Seq" in e)  # not FullyBooted from the login
    client.add_listener(hangups, event="Hangup")
    client.add_listener(queue, event="Queue*")
    client.add_listener(listed, event=["Newchannel", "Hangup"])
    client.add_listener(sales, filter=lambda e: e.get("Context") == "sales")
    for i, name in enumerate(["Newchannel", "QueueMemberAdded", "Hangup", "QueueCallerJoin", "Hangup"] * 20):
        server.emit(name, Channel=f"SIP/{i}", Context="sales" if i % 2 else "other", Seq=str(i))
    everything.wait_for(100)
    hangups.wait_for(40)
    assert [int(e["seq"]) for e in everything.items] == list(range(100))
    assert queue.wait_for(40) and {e.name for e in queue.items} == {"QueueMemberAdded", "QueueCallerJoin"}
    assert listed.wait_for(60) and {e.name for e in listed.items} == {"Newchannel", "Hangup"}
    assert all(e["Context"] == "sales" for e in sales.wait_for(50))


def test_raising_listener_is_logged_and_others_still_run(server: FakeAMIServer, client: AMIClient,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    good = Recorder()
    client.add_listener(broken, event="Hangup")
    client.add_listener(good, event="Hangup")
    for _ in range(3):
        server.emit("Hangup", Channel="SIP/1")
    good.wait_for(3)
    assert client.stats.listener_errors == 3 and "listener bug" in caplog.text
    assert client.ping().ok  # the connection lives on


def test_listener_may_call_action_and_remove_itself(server: FakeAMIServer, client: AMIClient) -> None:
    results: List[str] = []
    done = threading.Event()

    def on_event(event: Event) -> None:
        results.append(client.action("Ping")["Ping"])
        client.remove_listener(handle)
        done.set()

    handle = client.add_listener(on_event, event="Newchannel")
    server.emit("Newchannel", Channel="SIP/1")
    assert done.wait(5)
    server.emit("Newchannel", Channel="SIP/2")
    assert client.ping().ok and results == ["Pong"]


def test_slow_listener_never_delays_a_response(server: FakeAMIServer, client: AMIClient) -> None:
    release = threading.Event()
    entered = threading.Event()

    @client.on("Hangup")
    def stuck(event: Event) -> None:
        entered.set()
        release.wait(10)

    server.emit("Hangup", Channel="SIP/1")
    assert entered.wait(5)
    for _ in range(50):
        server.emit("Hangup", Channel="SIP/2")
    try:
        started = time.monotonic()
        assert client.action("Ping", timeout=2).ok
        assert time.monotonic() - started < 1.0
        stats = client.stats
        assert stats.events_received == stats.events_dispatched + stats.events_dropped + stats.events_queued
    finally:
        release.set()


def test_close_from_inside_a_listener(server: FakeAMIServer) -> None:
    client = make_client(server).connect()
    closed = threading.Event()

    def on_event(event: Event) -> None:
        client.close()
        closed.set()

    client.add_listener(on_event, event="Hangup")
    server.emit("Hangup", Channel="SIP/1")
    assert closed.wait(5) and client.closed


def test_utf8_split_across_reads_arrives_intact(server: FakeAMIServer, client: AMIClient) -> None:
    seen = Recorder()
    client.add_listener(seen, event="UserEvent")
    server.set_fault(Fault.DRIP)
    server.emit("UserEvent", UserEvent="Name", Name="café ☎ Zoë")
    assert seen.wait_for(1)[0]["Name"] == "café ☎ Zoë"


# --------------------------------------------------------------------------- concurrency


def test_many_threads_each_get_their_own_response(server: FakeAMIServer, client: AMIClient) -> None:
    server.add_handler("Echo", lambda session, packet: [
        ("Response", "Success"), ("ActionID", packet.get("ActionID", "")), ("Value", packet.get("Value", ""))])

    def worker(n: int) -> int:
        mismatches = 0
        for i in range(500):
            value = f"{n}-{i}"
            response = client.action("Echo", Value=value)
            mismatches += response["Value"] != value
        return mismatches

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(worker, range(16))) == 0
    assert client.stats.actions_in_flight == 0


def test_many_threads_without_action_ids_in_answers(server: FakeAMIServer, client: AMIClient) -> None:
    """A server that never echoes ActionID: answers are matched in wire order."""
    server.add_handler("Anon", lambda session, packet: [("Response", "Success"), ("Value", packet.get("Value", ""))])

    def worker(n: int) -> int:
        return sum(client.action("Anon", Value=f"{n}-{i}")["Value"] != f"{n}-{i}" for i in range(200))

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(worker, range(16))) == 0


# --------------------------------------------------------------------------- failures


def test_disconnect_fails_every_pending_action_at_once(server: FakeAMIServer) -> None:
    with make_client(server, timeout=30) as client:
        server.set_fault(Fault.NO_ANSWER)
        futures = [client.send_action("Ping") for _ in range(10)]
        assert server.wait_for_actions(len(server.received_actions), 5)
        started = time.monotonic()
        server.drop_all()
        for fut in futures:
            with pytest.raises(ConnectionLost):
                fut.result(5)
        assert time.monotonic() - started < 2.0
        with pytest.raises(ConnectionLost):
            client.action("Ping")


def test_malformed_packet_is_skipped_and_counted_the_link_stays(server: FakeAMIServer) -> None:
    server.add_handler("Hang", lambda session, packet: None)  # never answers
    with make_client(server, timeout=30) as client:
        fut = client.send_action("Hang")
        assert server.wait_for_actions(3, 5)
        server.emit_raw(b"\x00\x01garbage that is not AMI\r\n\r\n")
        assert client.ping().ok
        assert not fut.done() and client.connected
        assert client.stats.malformed_packets == 1 and client.stats.reconnects == 0


def test_oversized_packet_fails_pending_with_protocol_error(server: FakeAMIServer) -> None:
    server.add_handler("Hang", lambda session, packet: None)
    with make_client(server, timeout=30, max_packet_size=64 * 1024) as client:
        fut = client.send_action("Hang")
        assert server.wait_for_actions(3, 5)
        server.emit_raw(b"Event: Huge\r\nData: " + b"x" * 200_000)
        with pytest.raises(ProtocolError, match="max_packet_size"):
            fut.result(5)


def test_pre_13_2_lists_without_event_list_headers(server: FakeAMIServer, client: AMIClient) -> None:
    """Asterisk before 13.2 starts some lists with '... will follow' and no EventList header."""
    def legacy_status(session: Any, packet: Any) -> bytes:
        action_id = packet.get("ActionID")
        return (f"Response: Success\r\nActionID: {action_id}\r\nMessage: Channel status will follow\r\n\r\n"
                f"Event: Status\r\nPrivilege: Call\r\nChannel: SIP/1-0001\r\nActionID: {action_id}\r\n\r\n"
                f"Event: Status\r\nPrivilege: Call\r\nChannel: SIP/2-0002\r\nActionID: {action_id}\r\n\r\n"
                f"Event: StatusComplete\r\nActionID: {action_id}\r\nItems: 2\r\n\r\n").encode()

    server.add_handler("Status", legacy_status)
    seen = Recorder()
    client.add_listener(seen, event="Status*")
    response = client.action("Status")
    assert [e["Channel"] for e in response.events] == ["SIP/1-0001", "SIP/2-0002"]
    assert response.complete_event is not None and response.complete_event["Items"] == "2"
    server.emit("Status", Channel="SIP/3-0003")  # a real Status event still reaches listeners
    assert seen.wait_for(1)[0]["Channel"] == "SIP/3-0003" and len(seen.items) == 1


def test_asterisk_1_4_dbget_ends_with_its_only_item() -> None:
    def old_dbget(session: Any, packet: Any) -> bytes:
        action_id = packet.get("ActionID")
        return (f"Response: Success\r\nActionID: {action_id}\r\nMessage: Result will follow\r\n\r\n"
                f"Event: DBGetResponse\r\nFamily: f\r\nKey: k\r\nVal: old\r\nActionID: {action_id}\r\n\r\n").encode()

    with FakeAMIServer(users=USERS, version="1.0") as srv:
        srv.add_handler("DBGet", old_dbget)
        with make_client(srv, auth="plain") as client:
            assert client.ami_version == "1.0"
            assert client.db_get("f", "k") == "old"


def test_futures_work_with_the_concurrent_futures_api(server: FakeAMIServer, client: AMIClient) -> None:
    callback_results: List[str] = []
    called = threading.Event()

    def on_done(future: concurrent.futures.Future[Response]) -> None:
        callback_results.append(future.result()["Ping"])  # result() inside a done-callback must not block
        called.set()

    first = client.send_action("Ping")
    first.add_done_callback(on_done)
    futures = [client.send_action("Ping") for _ in range(10)]
    done, not_done = concurrent.futures.wait(futures, timeout=5)
    assert len(done) == 10 and not not_done
    assert [f.result()["Ping"] for f in concurrent.futures.as_completed(futures, timeout=5)] == ["Pong"] * 10
    assert called.wait(5) and callback_results == ["Pong"]
    server.set_fault(Fault.NO_ANSWER)
    pending = client.send_action("Ping")
    assert pending.cancel() and pending.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        pending.result(1)

"""Variables, AstDB, CLI and server-info helpers, on Asterisk 22 and (``legacy=True``) 13 answers."""
from __future__ import annotations

from typing import Iterator

import pytest

from amiclient import ActionError, AMIClient
from amiclient.testing import FakeAMIServer, Packet, User
from amiclient.testing._actions import unknown_action
from amiclient.testing._appargs import parse_cli_args

SECRET = "s3cr3t!"


@pytest.fixture(params=[False, True], ids=["asterisk22", "asterisk13"])
def server(request: pytest.FixtureRequest) -> Iterator[FakeAMIServer]:
    users = {"admin": SECRET, "viewer": User("pw", write="call")}
    with FakeAMIServer(users=users, legacy=request.param) as srv:
        yield srv


@pytest.fixture
def client(server: FakeAMIServer) -> Iterator[AMIClient]:
    with AMIClient("127.0.0.1", server.port, "admin", SECRET, reconnect=False, timeout=5.0) as c:
        yield c


def sent(server: FakeAMIServer, action: str) -> Packet:
    return [p for p in server.received_actions if p.action.lower() == action.lower()][-1]


def without(server: FakeAMIServer, action: str) -> None:
    """Make the server answer ``action`` as one that does not exist (an older Asterisk)."""
    server.add_handler(action, lambda s, p: unknown_action(s, p))


def test_db_round_trip(server: FakeAMIServer, client: AMIClient) -> None:
    client.db_put("fam", "k1", "hello: world")
    client.db_put("fam/sub", "k2", 2)
    assert client.db_get("fam", "k1") == "hello: world" and client.db_get("fam/sub", "k2") == "2"
    assert client.db_get("fam", "missing") is None
    assert client.db_get_tree("fam") == {"/fam/k1": "hello: world", "/fam/sub/k2": "2"}
    assert client.db_del_tree("fam", "sub") is True and client.db_get_tree("fam") == {"/fam/k1": "hello: world"}
    assert client.db_del_tree("nothing") is False
    assert client.db_del("fam", "k1") is True and client.db_del("fam", "k1") is False
    with pytest.raises(ActionError) as info:
        client.db_get("", "k1")
    assert info.value.response.message == "No family specified."


def test_db_falls_back_to_the_cli_on_servers_without_the_actions(server: FakeAMIServer, client: AMIClient) -> None:
    for action in ("DBDel", "DBDelTree", "DBGetTree"):
        without(server, action)
    client.db_put("my fam", 'key "q"', "v 1")
    client.db_put("my fam", "other", "v2")
    client.db_put("keep", "x", "y")
    assert client.db_get_tree("my fam") == {'/my fam/key "q"': "v 1", "/my fam/other": "v2"}
    assert client.db_del("my fam", 'key "q"') is True
    command = sent(server, "Command")["Command"]
    assert parse_cli_args(command) == ["database", "del", "my fam", 'key "q"']  # quoted, as the CLI splits it
    assert client.db_del("my fam", 'key "q"') is False
    assert client.db_del_tree("my fam") is True and client.db_del_tree("my fam") is False
    assert server.db == {("keep", "x"): "y"}


def test_db_needs_the_system_write_class(server: FakeAMIServer) -> None:
    with AMIClient("127.0.0.1", server.port, "viewer", "pw", reconnect=False) as viewer:
        with pytest.raises(ActionError) as info:
            viewer.db_put("f", "k", "v")
        assert info.value.response.message == "Permission denied"


def test_getvar_setvar_with_functions(server: FakeAMIServer, client: AMIClient) -> None:
    assert client.setvar("DEVICE_STATE(Custom:desk700)", "INUSE").message == "Variable Set"
    assert sent(server, "Setvar")["Variable"] == "DEVICE_STATE(Custom:desk700)"
    assert client.getvar("DEVICE_STATE(Custom:desk700)") == "INUSE"
    assert client.getvar("NOPE_NOT_SET") is None  # Asterisk answers "Value: " for unset and empty alike
    for call in (lambda: client.getvar(""), lambda: client.setvar("", "x")):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ActionError) as info:
        client.getvar("X", "SIP/none-1")
    assert info.value.response.message == "No such channel"


def test_command_and_command_lines(server: FakeAMIServer, client: AMIClient) -> None:
    server.command_outputs["dialplan show test"] = "[ Context 'test' ]\n  '100' => 1. Answer()\n\n-= 1 extension =-"
    assert client.command_lines("dialplan show test") == ["[ Context 'test' ]", "  '100' => 1. Answer()", "",
                                                          "-= 1 extension =-"]
    assert client.command("dialplan show test").endswith("-= 1 extension =-")
    assert client.command_lines("core show version")[0].startswith("Asterisk " + server.asterisk_version)
    if server.legacy:  # 13 answers an unknown command with Follows and the message
        assert client.command_lines("no such command")[0].startswith("No such command")
    else:
        with pytest.raises(ActionError):
            client.command_lines("no such command")


def test_server_info(server: FakeAMIServer, client: AMIClient) -> None:
    info = client.server_info()
    assert (info.asterisk_version, info.ami_version, info.system_name) == (server.asterisk_version, server.version, "")


def test_user_event_headers_arrive(server: FakeAMIServer, client: AMIClient) -> None:
    assert client.user_event("Deploy", Version="1,2", timeout=2).message == "Event Sent"
    assert sent(server, "UserEvent").pairs[1:3] == [("UserEvent", "Deploy"), ("Version", "1,2")]


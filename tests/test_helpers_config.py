"""Config and module helpers against the fake: get_config, update_config with typed edits, reload, module_*."""
from __future__ import annotations

from typing import Iterator

import pytest

from amiclient import ActionError, AMIClient
from amiclient.helpers import Append, DelCat, Delete, EmptyCat, Insert, NewCat, RenameCat, Update
from amiclient.testing import FakeAMIServer, Packet, User

SECRET = "s3cr3t!"


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users={"admin": SECRET, "viewer": User("pw", write="call")}) as srv:
        srv.config_files["sip.conf"] = [
            ["general", [("context", "default"), ("allow", "ulaw"), ("allow", "alaw")]],
            ["100", [("type", "friend"), ("secret", "a=b")]],
            ["100", [("host", "dynamic")]],  # a category may repeat
        ]
        yield srv


@pytest.fixture
def client(server: FakeAMIServer) -> Iterator[AMIClient]:
    with AMIClient("127.0.0.1", server.port, "admin", SECRET, reconnect=False, timeout=5.0) as c:
        yield c


def sent(server: FakeAMIServer, action: str) -> Packet:
    return [p for p in server.received_actions if p.action.lower() == action.lower()][-1]


def test_get_config_returns_ordered_categories_and_lines(server: FakeAMIServer, client: AMIClient) -> None:
    config = client.get_config("sip.conf")
    assert list(config) == ["general", "100"]
    assert config["general"] == [("context", "default"), ("allow", "ulaw"), ("allow", "alaw")]
    assert config["100"] == [("type", "friend"), ("secret", "a=b"), ("host", "dynamic")]  # merged, value keeps '='
    assert client.get_config("sip.conf", "general") == {"general": config["general"]}
    assert sent(server, "GetConfig")["Category"] == "general"
    assert client.get_config("sip.conf", "nosuch") == {}  # Asterisk adds a bare "No categories found" line


@pytest.mark.parametrize("filename, message", [
    ("nosuch.conf", "Config file not found"), ("/etc/passwd", "File requires escalated privileges"),
])
def test_get_config_errors(client: AMIClient, filename: str, message: str) -> None:
    with pytest.raises(ActionError) as info:
        client.get_config(filename)
    assert info.value.response.message == message
    with pytest.raises(ValueError):
        client.get_config("")


def test_update_config_applies_every_edit_kind_in_order(server: FakeAMIServer, client: AMIClient) -> None:
    response = client.update_config("sip.conf", [
        NewCat("200"), Append("200", "type", "friend"), Append("200", "context", "office", object=True),
        Insert("200", "host", "dynamic", line=0), Update("general", "context", "office", match="default"),
        Delete("general", "allow", match="alaw"), RenameCat("100", "101"), NewCat("300", before="general"),
        EmptyCat("300"),
    ], reload="chan_sip")
    assert response.ok and response.message is None
    packet = sent(server, "UpdateConfig")
    assert (packet["SrcFilename"], packet["DstFilename"], packet["Reload"]) == ("sip.conf", "sip.conf", "chan_sip")
    assert [packet[f"Action-{i:06d}"] for i in range(9)] == [
        "NewCat", "Append", "Append", "Insert", "Update", "Delete", "RenameCat", "NewCat", "EmptyCat"]
    assert (packet["Options-000002"], packet["Line-000003"], packet["Match-000004"], packet["Match-000007"]) == (
        "object", "0", "default", "general")
    config = client.get_config("sip.conf")
    assert list(config) == ["300", "general", "101", "100", "200"]
    assert config["general"] == [("context", "office"), ("allow", "ulaw")]
    assert config["200"] == [("host", "dynamic"), ("type", "friend"), ("context", "office")]


def test_update_config_to_another_file_and_template_options(server: FakeAMIServer, client: AMIClient) -> None:
    client.update_config("sip.conf", [NewCat("tpl", template=True, inherit=["a", "b"])], dst_filename="copy.conf",
                         reload=False)
    packet = sent(server, "UpdateConfig")
    assert (packet["DstFilename"], packet["Reload"], packet["Options-000000"]) == ("copy.conf", "no", "template,inherit=a|b")
    assert "tpl" in client.get_config("copy.conf") and "tpl" not in client.get_config("sip.conf")


@pytest.mark.parametrize("edit, message", [
    (Update("nosuch", "a", "b"), "Given category does not exist"),
    (Update("general", "nosuchvar", "b"), "Update did not complete successfully"),
    (Delete("general", "nosuchvar"), "Delete did not complete successfully"),
    (DelCat("nosuch"), "Given category does not exist"),
    (Append("", "a", "b"), "Category not specified"),
])
def test_update_config_errors_change_nothing(server: FakeAMIServer, client: AMIClient, edit: object, message: str) -> None:
    before = client.get_config("sip.conf")
    with pytest.raises(ActionError) as info:
        client.update_config("sip.conf", [Append("general", "first", "edit"), edit])  # type: ignore[list-item]
    assert info.value.response.message == message
    assert client.get_config("sip.conf") == before  # the first edit was not kept either


def test_update_config_refuses_bad_input_before_sending(server: FakeAMIServer, client: AMIClient) -> None:
    count = len(server.received_actions)
    for call in (lambda: client.update_config("sip.conf", []), lambda: client.update_config("", [DelCat("x")]),
                 lambda: client.update_config("sip.conf", ["DelCat"])):  # type: ignore[list-item]
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError):  # 128 lines at most: roughly 30 edits per action
        client.update_config("sip.conf", [Append("general", f"v{i}", "x") for i in range(40)])
    assert len(server.received_actions) == count


def test_config_needs_the_config_write_class(server: FakeAMIServer) -> None:
    with AMIClient("127.0.0.1", server.port, "viewer", "pw", reconnect=False) as viewer:
        for call in (lambda: viewer.get_config("sip.conf"), lambda: viewer.update_config("sip.conf", [DelCat("100")])):
            with pytest.raises(ActionError) as info:
                call()
            assert info.value.response.message == "Permission denied"


def test_reload_and_modules(server: FakeAMIServer, client: AMIClient) -> None:
    assert client.reload().message == "Module Reloaded" and "Module" not in sent(server, "Reload")
    assert client.reload("chan_pjsip").message == "Module Reloaded"
    for module, message in (("nosuch", "No such module"), ("app_dial", "Module does not support reload")):
        with pytest.raises(ActionError) as info:
            client.reload(module)
        assert info.value.response.message == message
    assert client.module_check("chan_pjsip") is True and client.module_check("res_parking.so") is False
    assert client.module_load("res_parking").message == "Module loaded."
    assert client.module_check("res_parking") is True
    assert client.module_load("res_parking", "unload").message == "Module unloaded."
    assert client.module_load(None, "reload").message == "All modules reloaded"
    with pytest.raises(ActionError) as info:
        client.module_load("nosuch")
    assert info.value.response.message == "Could not load module."
    with pytest.raises(ValueError):
        client.module_load("x", "restart")
    with pytest.raises(ValueError):
        client.module_load(None)

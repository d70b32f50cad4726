"""The generated action catalogue: every typed method's wire bytes, validation, versions, event names.

The catalogue JSON used here is the copy in tests/fixtures/catalog (Asterisk
22.11 and 13.38, from /work/shared/asterisk-catalog).
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import pytest

from amiclient import ActionError, AMIClient, ConnectionState, Response, StateChange
from amiclient import events as amievents
from amiclient._generated import Actions
from amiclient._protocol import HeaderValue, serialize_action
from amiclient.catalog import (
    DEFAULT,
    Param,
    action_names,
    action_spec,
    available,
    check_action,
    parse_version,
)
from amiclient.exceptions import UnsupportedAction
from amiclient.testing import FakeAMIServer, build_response

ROOT = Path(__file__).resolve().parent.parent
CATALOG = Path(__file__).parent / "fixtures" / "catalog"
USERS = {"admin": "pw"}


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_catalog", ROOT / "tools" / "gen_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_catalog"] = module
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
C22 = json.loads((CATALOG / "asterisk-22.json").read_text(encoding="utf-8"))
C13 = json.loads((CATALOG / "asterisk-13.json").read_text(encoding="utf-8"))
MANAGED = {"Login", "Logoff", "Challenge"}


class Capture:
    """A client double: records each action() call and answers Success (CoreSettings: ``version``)."""

    def __init__(self, version: Optional[str] = None) -> None:
        self.calls: List[Tuple[str, Dict[str, HeaderValue], Any]] = []
        self.version = version

    def action(self, action: str, headers: Optional[Mapping[str, HeaderValue]] = None, *, timeout: Any = "unset") -> Response:
        fields = dict(headers or {})
        serialize_action(action, fields, "x")  # what the real client would refuse
        self.calls.append((action, fields, timeout))
        response = Response({"Response": "Success"})
        if action == "CoreSettings" and self.version:
            response["AsteriskVersion"] = self.version
        return response


# ---------------------------------------------------------------------- the generator

def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    """CI check: the committed amiclient/_generated is exactly what the generator makes from the JSON."""
    assert gen.main([str(CATALOG), "--out", str(tmp_path)]) == 0
    committed = ROOT / "amiclient" / "_generated"
    made = sorted(p.name for p in tmp_path.glob("*.py"))
    assert made == sorted(p.name for p in committed.glob("*.py"))
    stale = [name for name in made if (tmp_path / name).read_text() != (committed / name).read_text()]
    assert not stale, f"run: python tools/gen_catalog.py  (out of date: {stale})"
    assert gen.main([str(CATALOG), "--out", str(committed), "--check"]) == 0


def test_generator_output_is_reproducible(tmp_path: Path) -> None:
    first = gen.generate(CATALOG)
    assert gen.generate(CATALOG) == first
    (tmp_path / "extra.py").write_text("x = 1\n")
    assert gen.main([str(CATALOG), "--out", str(tmp_path), "--check"]) == 1
    assert gen.main([str(CATALOG), "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "extra.py").exists()
    assert gen.main([str(CATALOG), "--out", str(tmp_path), "--check"]) == 0


@pytest.mark.parametrize("name, method", [
    ("DBPut", "db_put"), ("PJSIPShowEndpoints", "pjsip_show_endpoints"), ("QueuePause", "queue_pause"),
    ("GetConfigJSON", "get_config_json"), ("IAXpeers", "iax_peers"), ("DAHDIDNDoff", "dahdi_dnd_off"),
    ("DAHDIDialOffhook", "dahdi_dial_offhook"), ("PlayDTMF", "play_dtmf"), ("SIPshowpeer", "sip_showpeer"),
    ("MWIGet", "mwi_get"), ("Getvar", "getvar"), ("QueueMemberRingInUse", "queue_member_ring_in_use"),
    ("PJSIPShowRegistrationInboundContactStatuses", "pjsip_show_registration_inbound_contact_statuses"),
])
def test_method_names(name: str, method: str) -> None:
    assert gen.snake(name) == method
    spec = action_spec(name)
    assert spec is not None and spec.method == method
    assert callable(getattr(Actions, method))


@pytest.mark.parametrize("action, header, arg", [
    ("Originate", "Async", "async_"), ("MessageSend", "From", "from_"), ("SendText", "Content-Type", "content_type"),
    ("Originate", "Timeout", "ami_timeout"), ("WaitEvent", "Timeout", "ami_timeout"),
    ("AbsoluteTimeout", "Timeout", "ami_timeout"), ("Originate", "Variable", "variables"),
    ("Originate", "CallerID", "caller_id"), ("UpdateConfig", "Cat-000000", "cat"),
    ("AOCMessage", "UnitAmount(0)", "unit_amount"), ("Bridge", "Channel1", "channel1"),
    ("SIPnotify", "Call-ID", "call_id"), ("AOCMessage", "AOCBillingId", "aoc_billing_id"),
])
def test_parameter_names(action: str, header: str, arg: str) -> None:
    spec = action_spec(action)
    assert spec is not None
    assert {p.header: p.arg for p in spec.params}[header] == arg
    assert arg in inspect.signature(getattr(Actions, spec.method)).parameters


def test_every_asterisk_22_action_but_the_managed_ones_is_a_method() -> None:
    names = set(C22["actions"]) - MANAGED
    assert len(names) == 151
    for name in names:
        spec = action_spec(name)
        assert spec is not None, name
        assert callable(getattr(Actions, spec.method, None)), name
    for name in MANAGED:
        assert not hasattr(Actions, gen.snake(name))
    assert set(action_names()) == set(C22["actions"]) | set(C13["actions"])


def test_catalogue_data_matches_the_json() -> None:
    """Every documented parameter of 22 is in the spec with its header name and required flag."""
    for name, action in C22["actions"].items():
        spec = action_spec(name)
        assert spec is not None
        params = {p.header: p for p in spec.params}
        for raw in action["params"]:
            if raw["name"] == "ActionID" or (name, raw["name"]) in gen.PLACEHOLDERS:
                continue
            assert params[raw["name"]].required == bool(raw.get("required")), (name, raw["name"])
        assert spec.since == tuple(action["since"])
        if name in MANAGED:
            continue
        sig = inspect.signature(getattr(Actions, spec.method))
        required = [p.arg for p in spec.params if p.required]
        positional = [n for n, p in sig.parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD][1:]
        assert positional == required, name
        assert all(sig.parameters[p.arg].default is None for p in spec.params if not p.required)


# ---------------------------------------------------------------------- every method on the wire

def sample(param: Param) -> Tuple[Any, List[Tuple[str, str]]]:
    """A value for ``param`` and the header lines it must produce (test-side rules)."""
    kind = param.kind

    def one(index: int) -> Tuple[Any, str]:
        if kind == "s":
            return f"v{index}-{param.arg}", f"v{index}-{param.arg}"
        if kind in ("i", "n"):
            return 7 + index, str(7 + index)
        if kind == "b":
            return True, "true"
        if kind == "b01":
            return False, "0"
        if kind.startswith("b:"):
            return False, kind[2:].split("/")[1]
        if kind == "e":
            return param.choices[-1], param.choices[-1]
        if kind == "c":
            return ["ulaw", "alaw"], "ulaw,alaw"
        raise AssertionError(kind)

    if kind == "v":
        return {"A": "1", "B": "x=y"}, [(param.header, "A=1"), (param.header, "B=x=y")]
    if param.template:
        (v0, t0), (v2, t2) = one(0), one(2)
        return [v0, None, v2], [(param.template.format(0), t0), (param.template.format(2), t2)]
    value, text = one(0)
    return value, [(param.header, text)]


def _cases() -> Iterator[Tuple[str, str, Dict[str, Any], List[Tuple[str, str]]]]:
    for name in action_names():
        spec = action_spec(name)
        assert spec is not None
        if not spec.method:
            continue
        kwargs: Dict[str, Any] = {}
        lines: List[Tuple[str, str]] = []
        for param in spec.params:
            value, expected = sample(param)
            kwargs[param.arg] = value
            lines += expected
        yield name, spec.method, kwargs, lines


CASES = list(_cases())


@pytest.fixture(scope="module")
def wire() -> Iterator[Tuple[FakeAMIServer, AMIClient]]:
    """A fake answering every catalogue action with Success (CoreSettings without a version: no version checks)."""
    with FakeAMIServer(users=USERS) as server:
        for name in set(action_names()) - MANAGED:
            server.add_handler(name, lambda s, p: build_response(p, "done"))
        with AMIClient("127.0.0.1", server.port, "admin", "pw", reconnect=False, timeout=5, validate="strict") as client:
            client.ping()  # answered by the io thread: its sockets exist before the first test's leak snapshot
            yield server, client


def test_every_method_sends_the_right_bytes(wire: Tuple[FakeAMIServer, AMIClient]) -> None:
    """All methods, every parameter set: header names, order, conversions, numbered families, over a real socket."""
    server, client = wire
    assert len(CASES) >= 151
    for name, method, kwargs, lines in CASES:
        before = len(server.received_actions)
        response = getattr(client.actions, method)(**kwargs, timeout=5)
        assert response.ok
        packet = [p for p in server.received_actions[before:] if p.action == name][-1]
        assert packet.pairs[0] == ("Action", name)
        assert packet.pairs[-1][0] == "ActionID"
        assert packet.pairs[1:-1] == lines, name
        expected = "".join(f"{k}: {v}\r\n" for k, v in [("Action", name)] + lines + [packet.pairs[-1]]) + "\r\n"
        assert packet.raw == expected.encode()


def test_required_parameters_work_positionally(wire: Tuple[FakeAMIServer, AMIClient]) -> None:
    server, client = wire
    client.actions.queue_pause("PJSIP/100", True, queue="support", reason="lunch", timeout=5)
    client.actions.redirect("PJSIP/1-0001", "100", "default", 1)
    client.actions.update_config("a.conf", "b.conf", action=["NewCat", "Append"], cat=["c1", "c1"], var=[None, "k"],
                                 value=[None, "v"])
    sent = [p for p in server.received_actions if p.action in ("QueuePause", "Redirect", "UpdateConfig")][-3:]
    assert [p.pairs[1:-1] for p in sent] == [
        [("Interface", "PJSIP/100"), ("Paused", "true"), ("Queue", "support"), ("Reason", "lunch")],
        [("Channel", "PJSIP/1-0001"), ("Exten", "100"), ("Context", "default"), ("Priority", "1")],
        [("SrcFilename", "a.conf"), ("DstFilename", "b.conf"), ("Action-000000", "NewCat"), ("Action-000001", "Append"),
         ("Cat-000000", "c1"), ("Cat-000001", "c1"), ("Var-000001", "k"), ("Value-000001", "v")],
    ]


@pytest.mark.parametrize("call, expected", [
    (lambda a: a.originate("Local/1@x", async_=True, ami_timeout=20000, variables={"A": "1"}, codecs=["ulaw"]),
     [("Channel", "Local/1@x"), ("Timeout", "20000"), ("Variable", "A=1"), ("Async", "true"), ("Codecs", "ulaw")]),
    (lambda a: a.originate("Local/1@x", variables=["A=1", "B=2"], priority="start"),
     [("Channel", "Local/1@x"), ("Priority", "start"), ("Variable", "A=1"), ("Variable", "B=2")]),
    (lambda a: a.send_text("PJSIP/1", "héllo: world", content_type="text/plain"),
     [("Channel", "PJSIP/1"), ("Message", "héllo: world"), ("Content-Type", "text/plain")]),
    (lambda a: a.message_send(to="pjsip:100", from_="sip:me"), [("To", "pjsip:100"), ("From", "sip:me")]),
    (lambda a: a.queue_reload(members=True, rules=False), [("Members", "yes"), ("Rules", "no")]),
    (lambda a: a.mute_audio("PJSIP/1", "in", True), [("Channel", "PJSIP/1"), ("Direction", "in"), ("State", "on")]),
    (lambda a: a.mix_monitor_mute("PJSIP/1", state=True), [("Channel", "PJSIP/1"), ("State", "1")]),
    (lambda a: a.status(variables=["A", "B"], all_variables=True), [("Variables", "A,B"), ("AllVariables", "true")]),
    (lambda a: a.absolute_timeout("PJSIP/1", 30), [("Channel", "PJSIP/1"), ("Timeout", "30")]),
    (lambda a: a.aoc_message("D", channel="PJSIP/1", unit_amount=[5, 6]),
     [("Channel", "PJSIP/1"), ("MsgType", "D"), ("UnitAmount(0)", "5"), ("UnitAmount(1)", "6")]),
    (lambda a: a.db_put("fam", "key", val="v", headers={"family": "other", "X-Extra": "1"}),
     [("Key", "key"), ("Val", "v"), ("family", "other"), ("X-Extra", "1")]),
    (lambda a: a.hangup("PJSIP/1", cause=16), [("Channel", "PJSIP/1"), ("Cause", "16")]),
    (lambda a: a.user_event("MyEvent", headers={"Foo": "bar"}), [("UserEvent", "MyEvent"), ("Foo", "bar")]),
])
def test_conversions(call: Any, expected: List[Tuple[str, str]]) -> None:
    capture = Capture()
    call(Actions(capture))
    assert len(capture.calls) == 1
    name, fields, timeout = capture.calls[0]
    lines = serialize_action(name, fields, "id").decode().split("\r\n")[1:-3]
    assert [tuple(line.split(": ", 1)) for line in lines] == expected
    assert timeout == "unset"  # no timeout given: the client's default applies


def test_timeout_is_the_clients_wait_in_seconds() -> None:
    capture = Capture()
    Actions(capture).ping(timeout=2.5)
    Actions(capture).originate("Local/1@x", ami_timeout=30000, timeout=None)
    assert [(c[0], c[2]) for c in capture.calls] == [("Ping", 2.5), ("Originate", None)]
    assert capture.calls[1][1]["Timeout"] == "30000"
    assert repr(DEFAULT) == "DEFAULT"


@pytest.mark.parametrize("call, message", [
    (lambda a: a.bridge("A", "B", tone="both"), "tone must be one of"),
    (lambda a: a.queue_pause("PJSIP/1", "yes"), "paused must be a bool"),
    (lambda a: a.queue_penalty("PJSIP/1", "5"), "penalty must be an int"),
    (lambda a: a.queue_penalty("PJSIP/1", True), "penalty must be an int"),
    (lambda a: a.hangup(None), "channel is required"),
    (lambda a: a.ping(headers={"X": "a\r\nAction: Hangup"}), "CR or LF"),
    (lambda a: a.command("core show channels\nmore"), "CR or LF"),
    (lambda a: a.db_put("f", "k", val=" lead"), "whitespace"),
    (lambda a: a.originate("Local/1@x", variables="A=1"), "variables must be"),
    (lambda a: a.update_config("a", "b", action="NewCat"), "action must be a list"),
    (lambda a: a.update_config("a", "b", action=["Nope"]), "action must be one of"),
    (lambda a: a.originate("Local/1@x", codecs=[1]), "codecs must be"),
    (lambda a: a.getvar(variable=["x"]), "variable must be a str"),
])
def test_bad_values_raise_before_sending(call: Any, message: str) -> None:
    capture = Capture()
    with pytest.raises(ValueError, match=message):
        call(Actions(capture))
    assert capture.calls == []


def test_bad_value_sends_nothing_on_the_wire(wire: Tuple[FakeAMIServer, AMIClient]) -> None:
    server, client = wire
    before = len(server.received_actions)
    with pytest.raises(ValueError):
        client.actions.control_playback("PJSIP/1", "rewind")  # type: ignore[arg-type]
    client.actions.ping()
    assert [p.action for p in server.received_actions[before:]] == ["Ping"]


# ---------------------------------------------------------------------- validation of action()

@pytest.fixture
def fresh_warnings() -> Iterator[None]:
    from amiclient import catalog, events

    catalog._warned.clear()
    events._warned.clear()
    yield
    catalog._warned.clear()
    events._warned.clear()


def test_check_action_finds_unknown_and_missing_headers(fresh_warnings: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="amiclient"):
        problems = check_action("Originate", {"Chanel": "PJSIP/1", "Exten": "1"})
        check_action("originate", {"CHANEL": "PJSIP/2"})  # same action and header: no second warning
    assert problems == ["Originate has no header 'Chanel' (did you mean 'Channel'?)",
                        "Originate needs header 'Channel', which is missing"]
    assert [r.name for r in caplog.records] == ["amiclient", "amiclient"]
    assert "Chanel" in caplog.records[0].getMessage()


@pytest.mark.parametrize("name, headers", [
    ("Originate", {"channel": "x", "ASYNC": "true", "Variable": {"A": 1}, "ActionID": "1", "Exten": None}),
    ("UpdateConfig", {"SrcFilename": "a", "DstFilename": "b", "Action-000000": "NewCat", "cat-000012": "c"}),
    ("AOCMessage", {"MsgType": "D", "UnitAmount(3)": "1"}),
    ("UserEvent", {"UserEvent": "x", "Anything": "goes"}),
    ("MyModuleAction", {"Whatever": "1"}),
    ("SIPpeers", {}),
    ("Hangup", {"Channel": "x", "Cause": 16}),
])
def test_check_action_accepts(name: str, headers: Dict[str, HeaderValue]) -> None:
    assert check_action(name, headers, "strict") == []


def test_check_action_modes() -> None:
    with pytest.raises(ValueError, match="Chanel.*nothing sent"):
        check_action("Originate", {"Chanel": "x"}, "strict")
    assert check_action("Originate", {"Chanel": "x"}, "off") == []
    with pytest.raises(ValueError, match="validate must be"):
        check_action("Originate", {"Chanel": "x"}, "loud")
    with pytest.raises(ValueError, match="validate must be"):
        AMIClient(validate="loud")


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users=USERS) as srv:
        yield srv


def connect(server: FakeAMIServer, **options: Any) -> AMIClient:
    return AMIClient("127.0.0.1", server.port, "admin", "pw", reconnect=False, timeout=5, **options).connect()


def test_validation_shortcut_never_fails_on_a_value_that_cannot_be_compared(server: FakeAMIServer) -> None:
    class Odd:
        def __eq__(self, other: object) -> bool:
            raise ValueError("ambiguous")
        __hash__ = object.__hash__

        def __str__(self) -> str:
            return "odd"
    with connect(server) as client:
        assert client.action("UserEvent", UserEvent="x", Value=Odd()).ok  # type: ignore[arg-type]


def test_strict_client_sends_nothing(server: FakeAMIServer) -> None:
    with connect(server, validate="strict") as client:
        before = len(server.received_actions)
        with pytest.raises(ValueError, match="Originate has no header 'Chanel'"):
            client.action("Originate", Chanel="PJSIP/1", Exten="100", Context="default", Priority=1)
        with pytest.raises(ValueError, match="needs header 'Family'"):
            client.send_action("DBGet", Key="k")
        client.action("Ping")
        assert [p.action for p in server.received_actions[before:]] == ["Ping"]


def test_warn_client_logs_once_then_sends(server: FakeAMIServer, fresh_warnings: None, caplog: pytest.LogCaptureFixture) -> None:
    with connect(server) as client, caplog.at_level(logging.WARNING, logger="amiclient"):
        before = len(server.received_actions)
        for _ in range(3):
            client.action("DBPut", Family="f", Key="k", Vall="v")
        assert [p.action for p in server.received_actions[before:]] == ["DBPut"] * 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "amiclient"]
    assert warnings == ["DBPut has no header 'Vall' (did you mean 'Val'?) (sent anyway; validate='off' silences this)"]


def test_off_client_checks_nothing(server: FakeAMIServer, fresh_warnings: None, caplog: pytest.LogCaptureFixture) -> None:
    with connect(server, validate="off") as client, caplog.at_level(logging.WARNING, logger="amiclient"):
        client.action("DBPut", Family="f", Key="k", Vall="v")
        client.add_listener(lambda e: None, "Hangpu")
    assert not [r for r in caplog.records if r.name == "amiclient"]


# ---------------------------------------------------------------------- versions

@pytest.mark.parametrize("action, version, expected", [
    ("QueueWithdrawCaller", "13.38.3", False), ("QueueWithdrawCaller", "16.25.0", True),
    ("QueueWithdrawCaller", "16.24.9", False), ("QueueWithdrawCaller", "17.9.0", False),
    ("QueueWithdrawCaller", "18.11.0", True), ("QueueWithdrawCaller", "20.1.0", True),
    ("CancelAtxfer", "13.17.0", False), ("CancelAtxfer", "13.18.0", True), ("CancelAtxfer", "22.11.0-rc1", True),
    ("Ping", "13.0.0", True), ("SIPpeers", "13.38.3", True), ("SIPpeers", "22.11.0-rc1", False),
    ("SIPpeers", "18.0.0", None), ("PJSIPSetMaintenance", "22.9.0", False), ("PJSIPSetMaintenance", "22.10.0", True),
    ("PJSIPSetMaintenance", "21.9.0", False), ("NoSuchAction", "22.0.0", None), ("Ping", "GIT-master", None),
    ("DBGetTree", "certified/18.9-cert5", False), ("DBGetTree", "certified-20.7-cert1", True),
])
def test_available(action: str, version: str, expected: Optional[bool]) -> None:
    assert available(action, version) is expected


def test_parse_version() -> None:
    assert parse_version("22.11.0-rc1") == (22, 11, 0)
    assert parse_version("18.9-cert5") == (18, 9)
    assert parse_version("SVN-trunk") is None


def test_typed_call_for_an_action_the_server_lacks_raises() -> None:
    with FakeAMIServer(users=USERS, legacy=True) as srv, connect(srv) as client:
        assert client.actions.ping().ok  # needs no version: no CoreSettings
        assert [p.action for p in srv.received_actions if p.action == "CoreSettings"] == []
        expected = r"QueueWithdrawCaller is not in Asterisk 13\.38\.3: it was added in 19\.3\.0"
        with pytest.raises(UnsupportedAction, match=expected) as info:
            client.actions.queue_withdraw_caller("support", "PJSIP/1-0001")
        assert (info.value.action, info.value.version) == ("QueueWithdrawCaller", "13.38.3")
        with pytest.raises(UnsupportedAction):
            client.actions.db_get_tree(family="fam")
        assert client.actions.supports("SIPpeers") is True
        sent = [p.action for p in srv.received_actions]
        assert sent.count("CoreSettings") == 1  # asked once per connection
        assert "QueueWithdrawCaller" not in sent and "DBGetTree" not in sent


def test_removed_action_on_a_new_server_raises(server: FakeAMIServer) -> None:
    with connect(server) as client:
        with pytest.raises(UnsupportedAction, match="SIPpeers is not in Asterisk 22.11.0-rc1"):
            client.actions.sip_peers()
        assert client.actions.asterisk_version() == "22.11.0-rc1"
        assert client.actions.db_get_tree(family="fam").ok


def test_version_unknown_when_core_settings_refused(server: FakeAMIServer) -> None:
    server.add_handler("CoreSettings", lambda s, p: build_response(p, "Permission denied", "Error"))
    with connect(server) as client:
        with pytest.raises(ActionError):  # sent: the fake does not know SIPpeers
            client.actions.sip_peers()
        assert "SIPpeers" in [p.action for p in server.received_actions]
        assert client.actions.asterisk_version() is None


def test_version_is_asked_again_after_a_reconnect(server: FakeAMIServer) -> None:
    client = AMIClient("127.0.0.1", server.port, "admin", "pw", timeout=5).connect()
    try:
        assert client.actions.asterisk_version() == "22.11.0-rc1"
        reconnected = threading.Event()  # registered after the namespace's own state callback, so runs after it
        client.on_state(lambda change: change.state is ConnectionState.RECONNECTED and reconnected.set())
        server.asterisk_version = "13.38.3"
        server.drop_all()
        assert reconnected.wait(10)
        with pytest.raises(UnsupportedAction, match="13.38.3"):
            client.actions.queue_withdraw_caller("support", "x")
    finally:
        client.close()


def test_namespace_is_cached_and_shared() -> None:
    client = AMIClient()
    assert client.actions is client.actions
    assert isinstance(client.actions, Actions)


def test_namespace_works_over_a_plain_action_callable() -> None:
    capture = Capture(version="13.38.3")
    actions = Actions(capture)
    with pytest.raises(UnsupportedAction):
        actions.pjsip_show_contacts()
    actions.pjsip_show_endpoints()
    assert [c[0] for c in capture.calls] == ["CoreSettings", "PJSIPShowEndpoints"]


# ---------------------------------------------------------------------- events

def test_event_fields_and_snapshots() -> None:
    hangup = amievents.event_info("hangup")
    assert hangup is not None and hangup.name == "Hangup"
    assert hangup.fields[:14] == amievents.CHANNEL_SNAPSHOT
    assert hangup.fields[14:] == ("Cause", "Cause-txt", "TechCause")
    assert hangup.snapshots == (("channel", ""),)
    dial = amievents.fields("DialBegin")
    assert set(amievents.snapshot_fields("channel", "Dest")) <= set(dial)
    assert amievents.snapshot_fields("bridge", "Orig")[0] == "OrigBridgeUniqueid"
    assert "OrigBridgeUniqueid" in amievents.fields("AttendedTransfer")
    assert amievents.fields("NoSuchEvent") == ()
    assert "SIPQualifyPeerDone" in amievents.event_names()  # from the 13 catalogue
    with pytest.raises(ValueError):
        amievents.snapshot_fields("queue")


@pytest.mark.parametrize("name, hint", [
    ("Hangpu", "Hangup"), ("DialBgin", "DialBegin"), ("OriginateRespnse", "OriginateResponse"),
    ("hangup", None), ("Newexten", None), ("QueueMember", None), ("CoreShowChannelsComplete", None),
    ("MyThirdPartyEvent", None), ("PeerEntry", None),
])
def test_suggest(name: str, hint: Optional[str]) -> None:
    assert amievents.suggest(name) == hint


def test_listener_with_a_typo_warns(server: FakeAMIServer, fresh_warnings: None, caplog: pytest.LogCaptureFixture) -> None:
    with connect(server) as client, caplog.at_level(logging.WARNING, logger="amiclient"):
        client.on("Hangpu")(lambda e: None)
        client.add_listener(lambda e: None, ["Hangup", "DialBgin"])
        client.add_listener(lambda e: None, "Hang*")
        client.add_listener(lambda e: None)
        client.add_listener(lambda e: None, "MyModuleEvent")
        got: List[str] = []
        ready = threading.Event()
        client.add_listener(lambda e: (got.append(e.name), ready.set()), (n for n in ["UserEvent"]))
        client.action("UserEvent", UserEvent="x")
        assert ready.wait(5) and got == ["UserEvent"]  # a one-shot iterator still works
    messages = [r.getMessage() for r in caplog.records if r.name == "amiclient"]
    assert messages == ["no AMI event is called 'Hangpu': did you mean 'Hangup'?",
                        "no AMI event is called 'DialBgin': did you mean 'DialBegin'?"]


def test_state_change_type_is_what_the_watcher_reads() -> None:
    assert StateChange(ConnectionState.CONNECTED).state.value == "connected"


def test_namespace_over_the_http_client() -> None:
    """The same namespace class drives the HTTP client: typed calls, version check included."""
    from amiclient.http import AMIHTTPClient
    from amiclient.testing import FakeAJAMServer

    with FakeAMIServer(users=USERS, legacy=True) as ami, FakeAJAMServer(ami) as ajam, \
            AMIHTTPClient(ajam.url, "admin", "pw", timeout=5.0) as http_client:
        actions = http_client.actions
        assert actions.db_put("fam", "key", val="v").ok
        assert ami.db[("fam", "key")] == "v"
        with pytest.raises(UnsupportedAction, match="13.38.3"):
            actions.queue_withdraw_caller("support", "x")


def test_mypy_catches_bad_typed_calls(tmp_path: Path) -> None:
    """The generated signatures are real types: wrong Literal, bool, missing required, unknown name."""
    pytest.importorskip("mypy")
    import subprocess

    snippet = tmp_path / "use_catalog.py"
    snippet.write_text(
        "from amiclient import AMIClient\n"
        "c = AMIClient()\n"
        "c.actions.queue_pause('PJSIP/1', True, queue='q', timeout=5)\n"  # fine
        "c.actions.bridge('a', 'b', tone='both')\n"  # line 4: not a Literal value
        "c.actions.queue_pause('PJSIP/1', 'yes')\n"  # line 5: str for bool
        "c.actions.db_get('fam')\n"  # line 6: missing required key
        "c.actions.originate('x', chanel='y')\n"  # line 7: unknown parameter
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"),
         str(snippet)], cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    lines = sorted({int(line.split(":")[1]) for line in result.stdout.splitlines() if ": error:" in line})
    assert lines == [4, 5, 6, 7], result.stdout


def test_racing_first_calls_ask_the_version_once() -> None:
    with FakeAMIServer(users=USERS, legacy=True) as srv, connect(srv) as client:
        errors: List[BaseException] = []
        start = threading.Barrier(8)

        def call() -> None:
            start.wait(5)
            try:
                client.actions.queue_withdraw_caller("support", "x")
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(errors) == 8 and all(isinstance(e, UnsupportedAction) for e in errors)
        assert [p.action for p in srv.received_actions].count("CoreSettings") == 1


def test_typed_call_from_a_listener(server: FakeAMIServer) -> None:
    """A listener (dispatcher thread) may make typed calls that need the version."""
    with connect(server) as client:
        results: List[Any] = []
        done = threading.Event()

        def listener(event: Any) -> None:
            try:
                results.append(client.actions.db_get_tree(family="fam").ok)
            except BaseException as exc:  # reported below
                results.append(exc)
            done.set()

        client.add_listener(listener, "UserEvent")
        client.action("UserEvent", UserEvent="go")
        assert done.wait(10) and results == [True]


def test_validation_table_matches_the_full_catalogue() -> None:
    """The compact header table validation uses says exactly what ``_data`` says, for every action."""
    from amiclient import catalog
    from amiclient._generated import _data

    for name, (_, _, _, _, params, open_) in _data.ACTIONS.items():
        check = catalog._check(name.lower())
        assert check is not None and check.name == name and check.open == open_
        assert check.known == {p[0].lower(): p[0] for p in params if not p[0].endswith(("-000000", "(0)"))}
        assert check.required == tuple(p[0] for p in params if p[3])
    assert catalog._names() == set(amievents._known())  # listener names: the same known names as amiclient.events


def test_validation_does_not_load_the_whole_catalogue() -> None:
    """Idle cost: validating an action (validate='warn' is the default) loads neither ``_data`` nor the methods."""
    import subprocess
    code = ("import sys; from amiclient.catalog import check_action; "
            "assert check_action('Originate', {'Channel': 'x', 'Exten': 1, 'Bogus': 2}); "
            "assert check_action('UpdateConfig', {'Action-000001': 'x', 'SrcFilename': 'a', 'DstFilename': 'b', "
            "'Reload': 'y'}) == []; "
            "from amiclient.catalog import warn_unknown_event; warn_unknown_event(['UserEvent', 'Queue*', 'dbgetcomplete']); "
            "print([m for m in ('amiclient._generated._data', 'amiclient._generated._actions') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr

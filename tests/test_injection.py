"""Injection suite: whatever a caller passes arrives exactly as given, or raises ValueError and sends nothing.

Every public entry point that puts caller data on the wire is driven with
hostile text (commas, quotes, backslashes, brackets, blanks, CR/LF, NUL,
``/regex/`` forms, non-ASCII) and checked against what the fake Asterisk
parsed on its side, with Asterisk's own splitting rules for ``Variable``,
``Status`` ``Variables``, ``Codecs`` and application data
(``amiclient.testing._appargs``).  "Nothing sent" is checked by a Ping sent
right after: the server must have received nothing between the two.
"""
from __future__ import annotations

import io
import os
import string
from contextlib import redirect_stdout
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amiclient import ActionError, AMIClient, cli
from amiclient.helpers import Update
from amiclient.http import AMIHTTPClient
from amiclient.testing import FakeAJAMServer, FakeAMIServer, Packet
from amiclient.testing._appargs import parse_codecs, parse_status_variables, parse_variables, separate_args

SECRET = "s3cr3t!"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text an attacker would choose: Asterisk's separators and quotes, blanks, line breaks, NUL, non-ASCII.
HOSTILE = st.text(st.sampled_from(list(',"\\()[]=/;| \t\r\n\x00:-_ab1é€') + ["\u2028"]), max_size=12)
ANY_TEXT = st.one_of(HOSTILE, st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
# Text that every entry point must accept (and deliver unchanged).
SAFE = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20).filter(
    lambda v: v[0] > " " and not v.startswith("/"))
VAR_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True) | st.builds(
    lambda f, a: f"{f}({a})", st.sampled_from(["CDR", "PJSIP_HEADER", "HASH"]),
    st.text(st.sampled_from(list(string.ascii_letters + ",-_")), min_size=1, max_size=10))


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users={"admin": SECRET}) as srv:
        yield srv


@pytest.fixture
def client(server: FakeAMIServer) -> Iterator[AMIClient]:
    with AMIClient("127.0.0.1", server.port, "admin", SECRET, reconnect=False, timeout=5.0, events=False) as c:
        yield c


def sent_by(
    server: FakeAMIServer, ping: Callable[[], Any], call: Callable[[], Any],
) -> Tuple[Optional[BaseException], List[Packet]]:
    """Run ``call``; return what it raised (ValueError or None) and the packets the server got from it."""
    before = len(server.received_actions)
    error: Optional[BaseException] = None
    try:
        call()
    except ValueError as exc:
        error = exc
    except ActionError:
        pass  # the server refused it: what matters is what it received
    ping()
    packets = [p for p in server.received_actions[before:] if p.action.lower() not in ("ping", "login", "challenge")]
    if error is not None:
        assert packets == [], f"ValueError raised but {packets} was sent"
    return error, packets


def body(packet: Packet) -> List[Tuple[str, str]]:
    return [(k, v) for k, v in packet.pairs if k.lower() not in ("action", "actionid")]


def render(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# -- action(): keyword, mapping and headers= forms --------------------------------------------------


KEYS = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1, max_size=10)
BAD_KEYS = st.text(st.sampled_from(list(": \t\r\nA\x00é")), min_size=0, max_size=4)


@pytest.mark.parametrize("form", ["kwargs", "mapping", "headers"])
def test_action_headers_arrive_exactly_or_raise(server: FakeAMIServer, client: AMIClient, form: str) -> None:
    @SETTINGS
    @given(st.dictionaries(KEYS.filter(lambda k: k.lower() not in ("action", "actionid")) | BAD_KEYS,
                           ANY_TEXT | st.integers() | st.booleans(), max_size=4),
           st.dictionaries(KEYS.filter(lambda k: k.lower() not in ("action", "actionid")), SAFE, max_size=3))
    def check(fields: Dict[str, Any], safe: Dict[str, str]) -> None:
        for headers, must_pass in ((fields, False), (safe, True)):
            if form == "kwargs":
                call: Callable[[], Any] = lambda: client.send_action("UserEvent", UserEvent="x", **headers).result(5)
            elif form == "mapping":
                call = lambda: client.send_action({"Action": "UserEvent", "UserEvent": "x", **headers}).result(5)
            else:
                call = lambda: client.send_action("UserEvent", {"UserEvent": "x", **headers}).result(5)
            error, packets = sent_by(server, client.ping, call)
            assert not (must_pass and error), error
            if error is None:
                assert body(packets[0]) == [("UserEvent", "x")] + [(k, render(v)) for k, v in headers.items()]
    check()


def test_action_id_is_validated_like_any_value(server: FakeAMIServer, client: AMIClient) -> None:
    for bad in (" lead", "trail ", "tab\tin", "x" * 65, "é", "a\r\nAction: Hangup", "\x00"):
        error, packets = sent_by(server, client.ping, lambda: client.send_action("Ping", ActionID=bad))
        assert isinstance(error, ValueError) and packets == [], bad
    assert client.action("Ping", ActionID="my id-1").action_id == "my id-1"  # inner blanks are fine
    assert client.action("Ping", ActionID="x" * 64).action_id == "x" * 64

    @SETTINGS
    @given(ANY_TEXT)
    def check(action_id: str) -> None:
        error, _ = sent_by(server, client.ping, lambda: client.action("Ping", ActionID=action_id))
        if error is None and action_id:
            assert server.received_actions[-2].action_id == action_id
    check()


# -- Variable, Codecs, application data, Status variables -------------------------------------------


def test_variables_arrive_exactly_or_raise(server: FakeAMIServer, client: AMIClient) -> None:
    @SETTINGS
    @given(st.dictionaries(VAR_NAME | ANY_TEXT, ANY_TEXT | st.integers(), max_size=4),
           st.dictionaries(VAR_NAME, SAFE | st.just(""), min_size=1, max_size=4))
    def check(variables: Dict[str, Any], safe: Dict[str, str]) -> None:
        for values, must_pass in ((variables, False), (safe, True)):
            for call in (lambda: client.action("Originate", Channel="Local/1@x", Application="Wait", Async=True,
                                               Variable=values),
                         lambda: client.originate("Local/1@x", application="Wait", variables=values)):
                error, packets = sent_by(server, client.ping, call)
                assert not (must_pass and error), error
                if error is None:
                    received = parse_variables(packets[0].getlist("Variable"))
                    assert received == {k: render(v) for k, v in values.items()}
    check()


def test_the_reported_injection_is_closed(server: FakeAMIServer, client: AMIClient) -> None:
    server.hold_calls = True
    try:
        value = 'Smith, "J" x,__ACCOUNT=admin'
        client.originate("Local/inj@test", application="Wait", data="5", variables={"CALLERNAME": value},
                         asynchronous=False)
        channel = next(name for name in server.channels if name.startswith("Local/inj@test"))
        assert server.channels[channel].variables == {"CALLERNAME": value}
        assert client.getvar("CALLERNAME", channel) == value and client.getvar("__ACCOUNT", channel) is None
    finally:
        server.hold_calls = False
        for name in list(server.channels):
            server.hangup(name)


@pytest.mark.parametrize("name", ["", "A=B", "A,B", "=", ",", " LEAD", "X\nY"])
def test_unrepresentable_variable_names_raise(server: FakeAMIServer, client: AMIClient, name: str) -> None:
    error, packets = sent_by(server, client.ping, lambda: client.originate("Local/1@x", application="Wait",
                                                                          variables={name: "v"}))
    assert isinstance(error, ValueError) and packets == []


def test_function_names_with_commas_inside_parentheses_are_fine(server: FakeAMIServer, client: AMIClient) -> None:
    _, packets = sent_by(server, client.ping, lambda: client.originate(
        "Local/1@x", application="Wait", variables={"PJSIP_HEADER(add,X-Id)": "a,b", "TIMEOUT(absolute)": 60}))
    assert parse_variables(packets[0].getlist("Variable")) == {"PJSIP_HEADER(add,X-Id)": "a,b", "TIMEOUT(absolute)": "60"}


def test_codecs_arrive_exactly_or_raise(server: FakeAMIServer, client: AMIClient) -> None:
    @SETTINGS
    @given(st.lists(ANY_TEXT | st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), min_size=1, max_size=4))
    def check(codecs: List[str]) -> None:
        error, packets = sent_by(server, client.ping, lambda: client.originate("Local/1@x", application="Wait",
                                                                              codecs=codecs))
        if error is None:
            assert parse_codecs(packets[0]["Codecs"]) == codecs
        else:
            assert not all(c and c.replace("_", "a").isalnum() and c.isascii() for c in codecs)
    check()


def test_application_arguments_and_status_variables_arrive_exactly(server: FakeAMIServer, client: AMIClient) -> None:
    @SETTINGS
    @given(st.lists(ANY_TEXT, min_size=1, max_size=5))
    def check(items: List[str]) -> None:
        error, packets = sent_by(server, client.ping, lambda: client.originate("Local/1@x", application="Dial",
                                                                              data=items))
        if error is None:
            assert separate_args(packets[0]["Data"]) == items
        error, packets = sent_by(server, client.ping, lambda: client.status(variables=items))
        if error is None:
            assert parse_status_variables(packets[0]["Variables"]) == items
        elif all(items) and not any(c in "".join(items) for c in "\r\n\x00") and items[0][:1] > " ":
            pytest.fail(f"refused representable names {items!r}: {error}")
    check()


# -- every helper ------------------------------------------------------------------------------------

# helper call -> the headers each text argument must arrive in
HELPERS: List[Tuple[str, Callable[[AMIClient, str], Any], List[str]]] = [
    ("originate exten", lambda c, t: c.originate(f"Local/{t}", exten=t, context=t), ["Exten", "Context"]),
    ("originate application", lambda c, t: c.originate("Local/1@x", application="Wait", data=t, caller_id=t,
                                                       account=t, channel_id=t), ["Data", "CallerID", "Account", "ChannelId"]),
    ("hangup", lambda c, t: c.hangup(t), ["Channel"]),
    ("redirect", lambda c, t: c.redirect(t, t, t), ["Channel", "Exten", "Context"]),
    ("blind_transfer", lambda c, t: c.blind_transfer(t, t, t), ["Channel", "Exten", "Context"]),
    ("atxfer", lambda c, t: c.atxfer(t, t, t), ["Channel", "Exten", "Context"]),
    ("bridge", lambda c, t: c.bridge(t, t), ["Channel1", "Channel2"]),
    ("park", lambda c, t: c.park(t, parking_lot=t), ["Channel", "Parkinglot"]),
    ("play_dtmf", lambda c, t: c.play_dtmf(t, "5"), ["Channel"]),
    ("send_text", lambda c, t: c.send_text(t, t), ["Channel", "Message"]),
    ("absolute_timeout", lambda c, t: c.absolute_timeout(t, 5), ["Channel"]),
    ("status", lambda c, t: c.status(t), ["Channel"]),
    ("extension_state", lambda c, t: c.extension_state(t, t), ["Exten", "Context"]),
    ("mailbox_status", lambda c, t: c.mailbox_status(t), ["Mailbox"]),
    ("mailbox_count", lambda c, t: c.mailbox_count(t), ["Mailbox"]),
    ("bridge_list", lambda c, t: c.bridge_list(t), ["BridgeType"]),
    ("bridge_info", lambda c, t: c.bridge_info(t), ["BridgeUniqueid"]),
    ("getvar", lambda c, t: c.getvar(t, t), ["Variable", "Channel"]),
    ("setvar", lambda c, t: c.setvar(t, t, t), ["Variable", "Value", "Channel"]),
    ("db_get", lambda c, t: c.db_get(t, t), ["Family", "Key"]),
    ("db_put", lambda c, t: c.db_put(t, t, t), ["Family", "Key", "Val"]),
    ("db_del", lambda c, t: c.db_del(t, t), ["Family", "Key"]),
    ("db_del_tree", lambda c, t: c.db_del_tree(t, t), ["Family", "Key"]),
    ("db_get_tree", lambda c, t: c.db_get_tree(t, t), ["Family", "Key"]),
    ("user_event", lambda c, t: c.user_event(t, Extra=t), ["UserEvent", "Extra"]),
    ("command", lambda c, t: c.command(t), ["Command"]),
    ("command_lines", lambda c, t: c.command_lines(t), ["Command"]),
    ("queue_status", lambda c, t: c.queue_status(t, t), ["Queue", "Member"]),
    ("queue_summary", lambda c, t: c.queue_summary(t), ["Queue"]),
    ("queue_add", lambda c, t: c.queue_add(t, t, member_name=t, reason=t, state_interface=t),
     ["Queue", "Interface", "MemberName", "Reason", "StateInterface"]),
    ("queue_remove", lambda c, t: c.queue_remove(t, t), ["Queue", "Interface"]),
    ("queue_pause", lambda c, t: c.queue_pause(t, True, t, t), ["Interface", "Queue", "Reason"]),
    ("queue_penalty", lambda c, t: c.queue_penalty(t, 3, t), ["Interface", "Queue"]),
    ("queue_log", lambda c, t: c.queue_log(t, t, uniqueid=t, interface=t, message=t),
     ["Queue", "Event", "Uniqueid", "Interface", "Message"]),
    ("agent_logoff", lambda c, t: c.agent_logoff(t), ["Agent"]),
    ("get_config", lambda c, t: c.get_config(t, t), ["Filename", "Category"]),
    ("update_config", lambda c, t: c.update_config(t, [Update(t, t, t, t)]),
     ["SrcFilename", "DstFilename", "Cat-000000", "Var-000000", "Value-000000", "Match-000000"]),
    ("reload", lambda c, t: c.reload(t), ["Module"]),
    ("module_check", lambda c, t: c.module_check(t), ["Module"]),
    ("module_load", lambda c, t: c.module_load(t), ["Module"]),
]


@pytest.mark.parametrize("call, header_names", [h[1:] for h in HELPERS], ids=[h[0] for h in HELPERS])
def test_every_helper_delivers_its_arguments_exactly_or_raises(
    server: FakeAMIServer, client: AMIClient, call: Callable[[AMIClient, str], Any], header_names: List[str]
) -> None:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ANY_TEXT, SAFE)
    def check(text: str, safe: str) -> None:
        for value, must_pass in ((text, False), (safe, True)):
            error, packets = sent_by(server, client.ping, lambda: call(client, value))
            assert not (must_pass and error), error
            if error is None:
                assert packets, "nothing was sent"
                for name in header_names:
                    assert packets[0].getlist(name) == [value], (name, packets[0])
    check()


@pytest.mark.parametrize("channel", ["/.*/", "/", "/SIP/1-0001"])
def test_helpers_never_send_a_channel_asterisk_reads_as_a_regex(server: FakeAMIServer, client: AMIClient,
                                                                 channel: str) -> None:
    for call in (lambda: client.hangup(channel), lambda: client.redirect(channel, "1", "x"),
                 lambda: client.originate(channel, application="Wait"), lambda: client.status(channel),
                 lambda: client.getvar("X", channel), lambda: client.setvar("X", "1", channel)):
        error, packets = sent_by(server, client.ping, call)
        assert isinstance(error, ValueError) and packets == []


# -- HTTP client -------------------------------------------------------------------------------------


def test_http_client_delivers_exactly_or_raises(server: FakeAMIServer) -> None:
    with FakeAJAMServer(server) as ajam, AMIHTTPClient(ajam.url, "admin", SECRET, timeout=5.0) as http:
        ping = http.ping

        @SETTINGS
        @given(st.dictionaries(KEYS.filter(lambda k: k.lower() not in ("action", "actionid")) | BAD_KEYS, ANY_TEXT,
                               max_size=3),
               st.dictionaries(VAR_NAME | ANY_TEXT, ANY_TEXT, max_size=3), ANY_TEXT)
        def check(fields: Dict[str, str], variables: Dict[str, str], action_id: str) -> None:
            error, packets = sent_by(server, ping, lambda: http.action("UserEvent", UserEvent="x", **fields))
            if error is None:
                assert body(packets[0]) == [("UserEvent", "x")] + list(fields.items())
            error, packets = sent_by(server, ping, lambda: http.action(
                "Originate", Channel="Local/1@x", Application="Wait", Async=True, Variable=variables))
            if error is None:
                assert parse_variables(packets[0].getlist("Variable")) == variables
            error, packets = sent_by(server, ping, lambda: http.action("UserEvent", UserEvent="y",
                                                                              ActionID=action_id))
            if error is None and action_id:
                assert packets[0].action_id == action_id
        check()


# -- the command line ---------------------------------------------------------------------------------


def run_cli(server: FakeAMIServer, *args: str) -> Tuple[int, str]:
    out = io.StringIO()
    os.environ["AMI_SECRET"] = SECRET
    try:
        with redirect_stdout(out):
            code = cli.main(["--port", str(server.port), "--user", "admin", "action", "--", *args])
    finally:
        del os.environ["AMI_SECRET"]
    return code, out.getvalue()


def test_cli_key_value_pairs_arrive_exactly_or_are_refused(server: FakeAMIServer,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                     HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(KEYS.filter(lambda k: "=" not in k and k.lower() not in ("action", "actionid")),
                              ANY_TEXT), max_size=3), ANY_TEXT)
    def check(pairs: List[Tuple[str, str]], raw: str) -> None:
        for items in ([f"{k}={v}" for k, v in pairs], [raw]):
            before = len(server.received_actions)
            code, _ = run_cli(server, "UserEvent", "UserEvent=x", *items)
            got = [p for p in server.received_actions[before:] if p.action.lower() == "userevent"]
            if code == 0:
                grouped: Dict[str, List[str]] = {}  # the CLI strips keys; a repeated key's values go out together
                for key, value in (item.split("=", 1) for item in items):
                    grouped.setdefault(key.strip(), []).append(value)
                expected = [(k, v) for k, values in grouped.items() for v in values]
                assert body(got[0]) == [("UserEvent", "x")] + expected
            else:
                assert code == 2 and got == []
    check()
    capsys.readouterr()


def test_cli_repeated_keys_are_all_sent(server: FakeAMIServer) -> None:
    before = len(server.received_actions)
    code, _ = run_cli(server, "UserEvent", "UserEvent=x", "Tag=a", "Tag=b")
    got = [p for p in server.received_actions[before:] if p.action.lower() == "userevent"]
    assert code == 0 and got[0].getlist("Tag") == ["a", "b"]


# -- the fake splits like Asterisk (facts observed on a live server, and app.c's algorithm) -----------------


def test_fake_splits_variable_headers_like_asterisk() -> None:
    assert parse_variables(['A=x\\,y,B="p,q",C=r=s', "D= spaced "]) == {"A": "x,y", "B": "p,q", "C": "r=s",
                                                                           "D": " spaced "}
    assert parse_variables(["F=f(a,b),G=[c,d],H=\"i\\\"j\"", "noequals,=novalue,K="]) == {
        "F": "f(a,b)", "G": "[c,d]", "H": 'i"j', "K": ""}
    assert separate_args("a,b,") == ["a", "b", ""] and separate_args("") == []
    assert separate_args(",".join("abc"), arraylen=2) == ["a", "b,c"]  # the rest is the last item, unsplit
    assert separate_args('x"y,z', remove_chars=False) == ['x"y,z']
    items = separate_args(",".join(f'"{i}"' for i in range(70)))
    assert len(items) == 64 and items[:2] == ["0", "1"] and items[-1].startswith('"63"')


@SETTINGS
@given(st.dictionaries(VAR_NAME, ANY_TEXT.filter(lambda v: "\x00" not in v), min_size=1, max_size=5))
def test_escaped_variables_split_back_exactly(variables: Dict[str, str]) -> None:
    from amiclient._protocol import variable_line
    assert parse_variables([variable_line(k, v) for k, v in variables.items()]) == variables


def test_a_none_variable_is_left_out_not_sent_as_text(server: FakeAMIServer, client: AMIClient) -> None:
    _, packets = sent_by(server, client.ping, lambda: client.originate("Local/1@x", application="Wait",
                                                                      variables={"A": None, "B": 0}, Async="false"))
    assert packets[0].getlist("Variable") == ["B=0"] and packets[0].getlist("Async") == ["false"]

"""AMI over HTTP: FakeAJAMServer against the Asterisk 22 recording, and AJAMClient against the fake."""
from __future__ import annotations

import logging
import queue
import re
import select
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest

from amiclient import ActionError, ActionTimeout, AMIConnectionError, AuthenticationError, ClientClosed, ProtocolError
from amiclient.http import AJAMClient
from amiclient.testing import FakeAJAMServer, FakeAMIServer, build_response

from .conftest import FIXTURES

SECRET = "s3cr3t!"


class Recorded(NamedTuple):
    title: str
    status: str
    headers: List[Tuple[str, str]]
    body: bytes


def load_recording() -> List[Recorded]:
    """The responses in ajam-http.txt: ``### <request>`` then the byte-exact HTTP response."""
    data = (FIXTURES / "asterisk-22" / "ajam-http.txt").read_bytes()
    items = []
    for part in data.split(b"### ")[1:]:
        title, _, rest = part.partition(b"\n")
        head, _, rest = rest.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = [(k, v) for k, _, v in (line.partition(": ") for line in lines[1:])]
        length = int(dict(headers)["Content-Length"])
        items.append(Recorded(title.decode().strip(), lines[0], headers, rest[:length]))
    return items


def http_get(sock: socket.socket, target: str, cookie: Optional[str] = None) -> Tuple[str, List[Tuple[str, str]], bytes]:
    """One raw HTTP/1.1 GET on a keep-alive socket: status line, headers in order, body."""
    request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\n"
    if cookie:
        request += f'Cookie: mansession_id="{cookie}"\r\n'
    sock.sendall((request + "\r\n").encode())
    reader = sock.makefile("rb")
    try:
        status = reader.readline().decode().rstrip("\r\n")
        headers = []
        while True:
            line = reader.readline().decode().rstrip("\r\n")
            if not line:
                break
            key, _, value = line.partition(": ")
            headers.append((key, value))
        body = reader.read(int(dict(headers)["Content-Length"]))
    finally:
        reader.close()
    return status, headers, body


VOLATILE = {"timestamp", "uptime", "lastreload", "corestartupdate", "corestartuptime", "corereloaddate",
            "corereloadtime", "corecurrentcalls", "coreprocessedcalls"}


def packets(body: bytes) -> List[List[Tuple[str, str]]]:
    """The AMI packets of a body, with clock- and history-dependent values replaced."""
    result = []
    for text in body.decode().split("\r\n\r\n"):
        if not text:
            continue
        pairs = []
        for line in text.split("\r\n"):
            key, _, value = line.partition(": ")
            if key.lower() in VOLATILE:
                value = "*"
            elif key == "Output":
                value = re.sub(r"\d+", "N", value)
            pairs.append((key, value))
        result.append(pairs)
    return result


DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\Z")
COOKIE = re.compile(r'mansession_id="([0-9a-f]{8})"; Version=1; Max-Age=60\Z')
NO_COOKIE_REQUESTS = {
    "no session": "/asterisk/rawman?action=ping",
    "bad login": "/asterisk/rawman?action=login&username=admin&secret=wrong",
}


@pytest.fixture
def servers() -> Iterator[Tuple[FakeAMIServer, FakeAJAMServer]]:
    with FakeAMIServer(users={"admin": SECRET}) as ami, FakeAJAMServer(ami) as ajam:
        yield ami, ajam


@pytest.fixture
def client(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> Iterator[AJAMClient]:
    with AJAMClient(servers[1].url, "admin", SECRET, timeout=5.0) as ajam_client:
        yield ajam_client


# ---------------------------------------------------------------------- the fake vs the recording


def test_fake_answers_the_recorded_requests_with_the_recorded_shape() -> None:
    recorded = [r for r in load_recording() if "/rawman" in r.title or r.title in NO_COOKIE_REQUESTS]
    assert len(recorded) == 10
    with FakeAMIServer(users={"admin": SECRET}, security_events=True) as ami, FakeAJAMServer(ami) as ajam:
        session_cookie: Optional[str] = None
        seen = set()
        with socket.create_connection(("127.0.0.1", ajam.port), timeout=5) as sock:
            for item in recorded:
                target = NO_COOKIE_REQUESTS.get(item.title) or item.title.split(" ", 1)[1]
                cookie = None if item.title in NO_COOKIE_REQUESTS else session_cookie
                status, headers, body = http_get(sock, target, cookie)
                assert status == item.status == "HTTP/1.1 200 OK"
                assert [k for k, _ in headers] == [k for k, _ in item.headers], item.title
                got, want = dict(headers), dict(item.headers)
                for key in ("Server", "Cache-Control", "Content-type", "Pragma"):
                    assert got[key] == want[key], (item.title, key)
                assert DATE.match(got["Date"]) and DATE.match(want["Date"])
                match = COOKIE.match(got["Set-Cookie"])
                assert match and COOKIE.match(want["Set-Cookie"]), got["Set-Cookie"]
                if item.title in NO_COOKIE_REQUESTS:
                    assert match.group(1) not in seen  # a new session
                else:
                    session_cookie = session_cookie or match.group(1)
                    assert match.group(1) == session_cookie
                seen.add(match.group(1))
                assert int(got["Content-Length"]) == len(body)
                if "waitevent" in item.title:
                    fake, real = packets(body), packets(item.body)
                    assert fake[0] == real[0] and fake[-1] == real[-1] == [("Event", "WaitEventComplete")]
                    assert [p[0] for p in fake[1:-1]] == [p[0] for p in real[1:-1]] == [("Event", "SuccessfulAuth")]
                    assert {k for k, _ in fake[1]} <= {k for k, _ in real[1]}
                else:
                    assert packets(body) == packets(item.body), item.title
        assert ajam.session_count == 1  # logoff and the failed login ended theirs; "no session" lives 5 s


def test_fake_takes_post_forms_repeated_and_case_insensitive_params(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    ami, ajam = servers
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", ajam.port, timeout=5)
    try:
        form = "ACTION=Login&UserName=admin&Secret=s3cr3t%21&Events=off"
        conn.request("POST", "/asterisk/rawman?action=ping", form, {"Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        body = answer.read()
        assert body == b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"  # query ignored, no FullyBooted
        cookie = {"Cookie": answer.getheader("Set-Cookie", "").split(";")[0]}
        form = "action=UserEvent&UserEvent=T&Variable=a%3D1&Variable=b%3D2&x=+y"
        conn.request("POST", "/asterisk/rawman", form, {**cookie, "Content-Type": "application/x-www-form-urlencoded"})
        assert conn.getresponse().read() == b"Response: Success\r\nMessage: Event Sent\r\n\r\n"
        sent = [p for p in ami.received_actions if p.action == "UserEvent"][0]
        assert sent.getlist("Variable") == ["a=1", "b=2"] and sent["x"] == "y"
        for method, path, status in (("GET", "/asterisk/mxml?action=ping", 404), ("PUT", "/asterisk/rawman", 501)):
            conn.request(method, path, headers=cookie)
            answer = conn.getresponse()
            answer.read()
            assert answer.status == status
            conn.close()
    finally:
        conn.close()


# ---------------------------------------------------------------------- the client


def test_login_ping_command_and_db(client: AJAMClient, servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    assert client.logged_in and servers[1].session_count == 1
    assert client.ping()["Ping"] == "Pong"
    assert client.command("core show uptime").startswith("System uptime: ")
    assert client.action("DBPut", Family="aj", Key="k", Val="v1").message == "Updated database successfully"
    response = client.action("DBGet", Family="aj", Key="k", ActionID="d2")
    assert response.action_id == "d2"
    assert [(e.name, e["Val"], e.action_id) for e in response.events] == [("DBGetResponse", "v1", "d2")]
    assert response.complete_event is not None and response.complete_event["ListItems"] == "1"
    assert response.extra_events == []


def test_login_keeps_fullybooted_and_logoff_ends_the_session(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    ajam = servers[1]
    ajam_client = AJAMClient(ajam.url, "admin", SECRET)
    try:
        response = ajam_client.login()
        assert [e.name for e in response.extra_events] == ["FullyBooted"]
        assert ajam_client.logoff().status == "Goodbye"
        assert ajam.session_count == 0 and not ajam_client.logged_in
        with pytest.raises(ActionError, match="Permission denied"):  # a new, logged-out session
            ajam_client.ping()
    finally:
        ajam_client.close()
    with pytest.raises(ClientClosed):
        ajam_client.ping()


def test_error_responses(client: AJAMClient) -> None:
    with pytest.raises(ActionError, match="Invalid/unknown command: NoSuchAction") as info:
        client.action("NoSuchAction")
    assert info.value.response.status == "Error"
    assert not client.send_action("NoSuchAction").ok
    with pytest.raises(ActionError) as info:
        client.command("no such command")
    assert info.value.response.output.startswith("No such command 'no such command'")


def test_cr_lf_raises_value_error_and_sends_nothing(client: AJAMClient, servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    ami, ajam = servers
    before = (ajam.requests_handled, len(ami.received_actions))
    for bad in ({"Channel": "a\r\nAction: Hangup"}, {"Variable": {"k": "v\n"}}, {"X": ["ok", "b\r"]}):
        with pytest.raises(ValueError, match="CR or LF"):
            client.action("Setvar", bad)
    with pytest.raises(ValueError):
        client.send_action("Bad Name")
    assert (ajam.requests_handled, len(ami.received_actions)) == before


def test_repeated_headers_become_repeated_params(client: AJAMClient, servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    client.action("UserEvent", UserEvent="T", Variable={"a": "1", "b": "2"}, Foo=["x", "y"], Skip=None)
    sent = [p for p in servers[0].received_actions if p.action == "UserEvent"][-1]
    assert sent.getlist("Variable") == ["a=1", "b=2"] and sent.getlist("Foo") == ["x", "y"] and "Skip" not in sent
    events = client.wait_event(timeout=5)
    assert [(e.name, e["UserEvent"], e.getlist("Foo")) for e in events] == [("UserEvent", "T", ["x", "y"])]


def test_bad_secret_raises_authentication_error(servers: Tuple[FakeAMIServer, FakeAJAMServer], caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError, match="Authentication failed"):
        with AJAMClient(servers[1].url, "admin", "wrong-secret-123"):
            pass
    with AJAMClient(servers[1].url, "admin", SECRET) as ajam_client:
        assert ajam_client.logged_in
    assert "wrong-secret-123" not in caplog.text and SECRET not in caplog.text
    assert servers[1].session_count == 0
    with pytest.raises(ValueError, match="CR or LF") as info:
        AJAMClient(servers[1].url, "admin", "x\r\ny").login()
    assert "x\r\ny" not in str(info.value)


def test_wait_event_returns_an_emitted_event(client: AJAMClient, servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    results: "queue.Queue[Any]" = queue.Queue()

    def wait() -> None:
        try:
            results.put(client.wait_event(timeout=10))
        except Exception as exc:  # handed to the test thread
            results.put(exc)

    thread = threading.Thread(target=wait)
    start = time.monotonic()
    thread.start()
    assert servers[0].emit("Hangup", Channel="PJSIP/100-00000001", Cause="16") == 1
    events = results.get(timeout=8)
    thread.join(5)
    assert time.monotonic() - start < 8  # returned on arrival, not at the timeout
    assert [(e.name, e["Channel"]) for e in events] == [("Hangup", "PJSIP/100-00000001")]
    assert client.wait_event(timeout=0) == []


def test_second_wait_event_kicks_out_the_first(client: AJAMClient, servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    results: "queue.Queue[Any]" = queue.Queue()
    threads = [threading.Thread(target=lambda: results.put(client.wait_event(timeout=10))) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert results.get(timeout=8) == []  # the earlier one, ended by the later one
    servers[0].emit("UserEvent", UserEvent="wake")
    assert [e["UserEvent"] for e in results.get(timeout=8)] == ["wake"]
    for thread in threads:
        thread.join(5)


def test_two_threads_share_one_client(client: AJAMClient, servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    barrier = threading.Barrier(2, timeout=5)
    errors: List[BaseException] = []
    done: Dict[str, int] = {}

    def work(name: str) -> None:
        try:
            barrier.wait()
            for i in range(25):
                client.action("DBPut", Family=name, Key="k", Val=f"{name}-{i}")
                response = client.action("DBGet", Family=name, Key="k", ActionID=f"{name}-{i}")
                assert response.action_id == f"{name}-{i}"
                assert [e["Val"] for e in response.events] == [f"{name}-{i}"]
                assert client.action("Ping", ActionID=f"p-{name}-{i}").action_id == f"p-{name}-{i}"
                done[name] = i + 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("t1", "t2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors and done == {"t1": 25, "t2": 25}
    assert servers[1].session_count == 1  # one cookie session for both threads


def test_stale_keep_alive_connection_is_replaced(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    with FakeAJAMServer(servers[0], keep_alive=0.2) as ajam, AJAMClient(ajam.url, "admin", SECRET) as ajam_client:
        conn = ajam_client._idle[0][0]
        assert conn.sock is not None and select.select([conn.sock], [], [], 5)[0]  # the server closed it
        assert ajam_client.ping()["Ping"] == "Pong"


def test_expired_session_is_reported(servers: Tuple[FakeAMIServer, FakeAJAMServer], caplog: Any) -> None:
    with FakeAJAMServer(servers[0], httptimeout=0) as ajam, AJAMClient(ajam.url, "admin", SECRET) as ajam_client:
        with pytest.raises(ActionError, match="Permission denied"):
            ajam_client.ping()
        assert not ajam_client.logged_in and "new manager session" in caplog.text
        ajam_client.login()
        assert ajam_client.logged_in


def test_connection_errors_name_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/asterisk/"
    with pytest.raises(AMIConnectionError, match=re.escape(f"127.0.0.1:{port}/asterisk/rawman")):
        AJAMClient(url, "admin", SECRET, timeout=2).login()


def test_http_errors_map_to_protocol_error(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    ajam_client = AJAMClient(f"http://127.0.0.1:{servers[1].port}/wrong/", "admin", SECRET)
    try:
        with pytest.raises(ProtocolError, match="HTTP 404"):
            ajam_client.login()
    finally:
        ajam_client.close()


def test_slow_answer_raises_action_timeout(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    ami, ajam = servers
    ami.add_handler("Slow", lambda session, packet: build_response(packet, "late") if session.sleep(2) else None)
    with AJAMClient(ajam.url, "admin", SECRET, timeout=5.0) as ajam_client:
        with pytest.raises(ActionTimeout) as info:
            ajam_client.action("Slow", timeout=0.3)
        assert info.value.action_id


def test_url_forms() -> None:
    assert AJAMClient("http://h:8088/asterisk").rawman_url == "http://h:8088/asterisk/rawman"
    assert AJAMClient("http://u:p@h/rawman").rawman_url == "http://h/rawman"
    assert AJAMClient("https://h:8089/").rawman_url == "https://h:8089/rawman"
    with pytest.raises(ValueError):
        AJAMClient("ftp://h/")
    with pytest.raises(ValueError):
        AJAMClient("http://h/", ssl_context=__import__("ssl").create_default_context())

"""FakeAJAMServer against the Asterisk 22 recordings (ajam-http.txt, ajam-waitevent.txt)."""
from __future__ import annotations

import re
import socket
import time
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest

from amiclient.testing import FakeAJAMServer, FakeAMIServer

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



def load_exchanges(name: str) -> Dict[str, bytes]:
    """``request line -> response body`` of a recording with requests (ajam-waitevent.txt)."""
    data = (FIXTURES / "asterisk-22" / name).read_bytes()
    found = {}
    for part in data.split(b"### ")[1:]:
        title = part.partition(b"\n")[0].decode().split("  (")[0]
        response = part[part.index(b"HTTP/1.1 200"):]
        head, _, rest = response.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        found[title] = head + b"\r\n\r\n" + rest[:length]
    return found


def test_fake_wait_event_and_expiry_answer_like_the_recording() -> None:
    recorded = load_exchanges("ajam-waitevent.txt")
    with FakeAMIServer(users={"admin": SECRET}) as ami, FakeAJAMServer(ami) as ajam:
        with socket.create_connection(("127.0.0.1", ajam.port), timeout=5) as sock:
            _, headers, _ = http_get(sock, "/asterisk/rawman?action=login&username=admin&secret=s3cr3t!")
            cookie = COOKIE_ANY.match(dict(headers)["Set-Cookie"]).group(1)  # type: ignore[union-attr]
            http_get(sock, "/asterisk/rawman?action=waitevent&timeout=0", cookie)  # drain the login's events
            ami.emit("UserEvent", UserEvent="RecTest", Key="value")
            _, _, body = http_get(sock, "/asterisk/rawman?action=waitevent&timeout=5&actionid=w1", cookie)
            want = recorded["GET /asterisk/rawman?action=waitevent&timeout=5&actionid=w1"]
            unprivileged = [[kv for kv in p if kv[0] != "Privilege"] for p in packets(want.partition(b"\r\n\r\n")[2])]
            assert [[kv for kv in p if kv[0] != "Privilege"] for p in packets(body)] == unprivileged
            ajam.httptimeout = 10  # as in the recording from here on: WaitEvent is capped at 0 s
            start = time.monotonic()
            _, _, body = http_get(sock, "/asterisk/rawman?action=waitevent&timeout=5&actionid=w-short", cookie)
            assert time.monotonic() - start < 2
            want = recorded["GET /asterisk/rawman?action=waitevent&timeout=5&actionid=w-short"]
            assert packets(body) == packets(want.partition(b"\r\n\r\n")[2])
            assert ajam.expire_sessions() == 1
            _, headers, body = http_get(sock, "/asterisk/rawman?action=ping&actionid=p2", cookie)
            want = recorded["GET /asterisk/rawman?action=ping&actionid=p2"]
            denied = b"Response: Error\r\nActionID: p2\r\nMessage: Permission denied\r\n\r\n"
            assert body == want.partition(b"\r\n\r\n")[2] == denied
            new = COOKIE_ANY.match(dict(headers)["Set-Cookie"]).group(1)  # type: ignore[union-attr]
            assert new != cookie  # the expired session is gone: a new, logged-out one
            assert b'mansession_id="016ca3d1"' not in want.partition(b"\r\n\r\n")[0]  # the recording shows it too


COOKIE_ANY = re.compile(r'mansession_id="([0-9a-f]{8})"')


def test_fake_faults_and_request_log(servers: Tuple[FakeAMIServer, FakeAJAMServer]) -> None:
    ami, ajam = servers
    with pytest.raises(ValueError):
        ajam.inject("explode")
    ajam.inject("html", "Ping")
    with socket.create_connection(("127.0.0.1", ajam.port), timeout=5) as sock:
        status, headers, body = http_get(sock, "/asterisk/rawman?action=ping")
    assert status == "HTTP/1.1 200 OK" and dict(headers)["Content-Type"].startswith("text/html") and body.startswith(b"<html>")
    with socket.create_connection(("127.0.0.1", ajam.port), timeout=5) as sock:
        status, _, _ = http_get(sock, "/asterisk/rawman?action=login&username=admin&secret=s3cr3t!")
    assert status == "HTTP/1.1 200 OK"
    assert [r.action for r in ajam.requests] == ["ping", "login"]
    assert dict(ajam.requests[1].params)["secret"] == "********"

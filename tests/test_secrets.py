"""No secret in any exception, log record, repr or stats output; no silent downgrade to a plain login."""
from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any, Iterator, List, Set, Tuple

import pytest

from amiclient import AMIClient, AuthenticationError
from amiclient.testing import FakeAMIServer, TLSFront

SECRET = "hunter2-SeCrEt-7x"
WRONG = "wrong-SeCrEt-9q"
BAD_VALUES = [f"{SECRET}\r\nAction: Originate", f"{SECRET}\n", f"{SECRET}\x00", f" {SECRET}", f"{SECRET}\ud800",
              SECRET * 100]
SECRETS = [SECRET, WRONG] + BAD_VALUES


def refuse_challenge(session: Any, packet: Any) -> List[Tuple[str, str]]:
    return [("Response", "Error"), ("ActionID", packet.get("ActionID", "")), ("Message", "Must specify AuthType")]


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users={"admin": SECRET}) as srv:
        yield srv


def client_for(port: int, secret: str, **options: Any) -> AMIClient:
    options.setdefault("reconnect", False)
    options.setdefault("timeout", 3.0)
    return AMIClient("127.0.0.1", port, "admin", secret, **options)


def texts_of(error: BaseException) -> Iterator[str]:
    """str and repr of an exception and of everything chained to it."""
    seen: Set[int] = set()
    stack: List[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)


def assert_no_secret(texts: List[str]) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked: {text[:200]!r}"
        assert "SeCrEt" not in text, f"part of a secret leaked: {text[:200]!r}"


# --------------------------------------------------------------------------- item 14

@pytest.mark.parametrize("bad", BAD_VALUES, ids=["crlf-injection", "lf", "nul", "leading-blank", "surrogate", "long"])
def test_bad_secret_on_the_plain_path_names_the_header_not_the_value(server: FakeAMIServer, bad: str) -> None:
    client = client_for(server.port, bad, auth="plain")
    with pytest.raises(ValueError) as info:
        client.connect()
    client.close()
    assert "Secret" in str(info.value) or "secret" in str(info.value)
    assert_no_secret(list(texts_of(info.value)))
    assert not [p for p in server.received_actions if p.get("Action") == "Login"]


# --------------------------------------------------------------------------- item 15

def test_auto_does_not_downgrade_to_plain_over_tcp(server: FakeAMIServer) -> None:
    server.add_handler("Challenge", refuse_challenge)
    client = client_for(server.port, SECRET, auth="auto")
    with pytest.raises(AuthenticationError, match="MD5.*(TLS|tls)|(tls|TLS).*plain"):
        client.connect()
    client.close()
    assert not [p for p in server.received_actions if p.get("Action") == "Login"]


def test_plain_is_sent_when_asked_for(server: FakeAMIServer) -> None:
    server.add_handler("Challenge", refuse_challenge)
    with client_for(server.port, SECRET, auth="plain") as client:
        assert client.ping().ok


def test_auto_falls_back_to_plain_over_tls(server: FakeAMIServer, certificate: Tuple[Path, Path]) -> None:
    server.add_handler("Challenge", refuse_challenge)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    client_context = ssl.create_default_context(cafile=str(certificate[0]))
    with TLSFront(server.address, server_context) as front:
        with client_for(front.port, SECRET, auth="auto", tls=client_context) as client:
            assert client.ping().ok
    logins = [p for p in server.received_actions if p.get("Action") == "Login"]
    assert len(logins) == 1 and "Secret" in logins[0]


# --------------------------------------------------------------------------- the whole traffic, DEBUG logging

def test_no_secret_in_logs_errors_reprs_or_stats(server: FakeAMIServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: List[str] = []

    def attempt(secret: str, **options: Any) -> None:
        client = client_for(server.port, secret, **options)
        texts.append(repr(client))
        try:
            client.connect()
            texts.extend([repr(client), str(client.stats), repr(client.stats), repr(dict(client.stats))])
            client.ping()
            client.action("Getvar", Variable="X")
            texts.append(repr(client.send_action("Ping")))
        except (ValueError, AuthenticationError, Exception) as exc:  # noqa: BLE001 - every error is inspected
            texts.extend(texts_of(exc))
        finally:
            texts.append(repr(client))
            client.close()

    for auth in ("plain", "md5", "auto"):
        attempt(SECRET, auth=auth)
        attempt(WRONG, auth=auth)
        for bad in BAD_VALUES:
            attempt(bad, auth=auth)
    server.add_handler("Challenge", refuse_challenge)
    for auth in ("auto", "md5", "plain"):
        attempt(SECRET, auth=auth)
        attempt(BAD_VALUES[0], auth=auth)
    # a reconnecting client whose secret becomes wrong: the reconnect loop logs its failures
    server.remove_handler("Challenge")
    client = client_for(server.port, SECRET, auth="plain", reconnect=True)
    with client:
        server.users["admin"].secret = "changed"
        server.drop_all()
        client.wait_connected(0.5)
        texts.extend([repr(client), str(client.stats)])
    for record in caplog.records:
        texts.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            texts.extend(texts_of(record.exc_info[1]))
    texts.append(caplog.text)
    assert len(texts) > 50
    assert_no_secret(texts)

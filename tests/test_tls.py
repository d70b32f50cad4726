"""AMI over TLS: the client verifies the server certificate and speaks the same protocol."""
from __future__ import annotations

import concurrent.futures
import ssl
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from amiclient import AMIClient, AMIConnectionError, Event
from amiclient.testing import FakeAMIServer, Recorder, TLSFront


@pytest.fixture
def front(certificate: Tuple[Path, Path]) -> Iterator[Tuple[FakeAMIServer, TLSFront]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    with FakeAMIServer(users={"admin": "secret"}) as server, TLSFront(server.address, context) as tls:
        yield server, tls


def test_client_over_tls(front: Tuple[FakeAMIServer, TLSFront], certificate: Tuple[Path, Path]) -> None:
    context = ssl.create_default_context(cafile=str(certificate[0]))
    _, tls = front
    with AMIClient("127.0.0.1", tls.port, "admin", "secret", tls=context, reconnect=False) as client:
        assert client.ami_version == "11.0.0"
        assert client.command("core show uptime").startswith("System uptime")
        assert client.ping().ok


def test_untrusted_certificate_is_refused(front: Tuple[FakeAMIServer, TLSFront]) -> None:
    _, tls = front
    client = AMIClient("127.0.0.1", tls.port, "admin", "secret", tls=True, reconnect=False)
    with pytest.raises(AMIConnectionError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
        client.connect()
    client.close()


def test_many_threads_and_events_over_tls(front: Tuple[FakeAMIServer, TLSFront], certificate: Tuple[Path, Path]) -> None:
    """Reads and writes of one TLS socket from several threads at once: every answer reaches its caller."""
    server, tls = front
    server.add_handler("Echo", lambda session, packet: [
        ("Response", "Success"), ("ActionID", packet.get("ActionID", "")), ("Value", packet.get("Value", ""))])
    context = ssl.create_default_context(cafile=str(certificate[0]))
    seen: Recorder[Event] = Recorder()
    with AMIClient("127.0.0.1", tls.port, "admin", "secret", tls=context, reconnect=False) as client:
        client.add_listener(seen, event="UserEvent")

        def worker(n: int) -> int:
            if n == 0:
                for i in range(300):
                    server.emit("UserEvent", UserEvent="Load", Seq=str(i))
            return sum(client.action("Echo", Value=f"{n}-{i}")["Value"] != f"{n}-{i}" for i in range(200))

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert sum(pool.map(worker, range(8))) == 0
        assert [int(e["Seq"]) for e in seen.wait_for(300)] == list(range(300))

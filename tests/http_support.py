"""Shared helpers for the HTTP tests: a throw-away TLS certificate and fake servers over HTTP/HTTPS."""
from __future__ import annotations

import shutil
import ssl
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Tuple

import pytest

from amiclient.testing import FakeAJAMServer, FakeAMIServer

SECRET = "s3cr3t!"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost: (cert.pem, key.pem)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("http-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def server_context(certificate: Tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


def client_context(certificate: Tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@contextmanager
def ajam_servers(tls: Optional[ssl.SSLContext] = None, **options: object) -> Iterator[Tuple[FakeAMIServer, FakeAJAMServer]]:
    with FakeAMIServer(users={"admin": SECRET}) as ami, FakeAJAMServer(ami, tls=tls, **options) as ajam:  # type: ignore[arg-type]
        yield ami, ajam

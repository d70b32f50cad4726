"""Shared helpers for the HTTP tests: a throw-away TLS certificate and fake servers over HTTP/HTTPS."""
from __future__ import annotations

import ssl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Tuple

from amiclient.testing import FakeAJAMServer, FakeAMIServer

SECRET = "s3cr3t!"


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

"""Shared fixtures: recordings on disk, and a guard that fails any test leaking a thread or socket."""
from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def load_chunks(relative: str, name: str = "") -> List[Dict[str, str]]:
    """The chunks of a recording in tests/fixtures (``name`` picks a session in errors.json)."""
    data: Any = json.loads((FIXTURES / relative).read_text(encoding="utf-8"))
    return data[name] if name else data


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost: (cert.pem, key.pem)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def _sockets() -> Set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(f"{fd}:{target}")
    return found


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a thread running or a socket open."""
    threads_before = set(threading.enumerate())
    sockets_before = _sockets() if os.path.isdir("/proc/self/fd") else set()
    yield
    deadline = time.monotonic() + 5.0
    leaked: List[threading.Thread] = []
    while True:
        leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        leaked[0].join(0.05)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"
    if sockets_before or os.path.isdir("/proc/self/fd"):
        gc.collect()
        extra = _sockets() - sockets_before
        assert not extra, f"sockets left open: {sorted(extra)}"

"""``amiclient --tls``: the server certificate is verified, with the system CAs or ``--cafile``."""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import pytest

from amiclient.testing import FakeAMIServer, TLSFront

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
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


def test_tls_verifies_the_server_with_the_given_ca_file(certificate: Tuple[Path, Path], tmp_path: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    with FakeAMIServer(users={"admin": "pw"}) as server, TLSFront(server.address, context) as front:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
               "XDG_CONFIG_HOME": str(tmp_path), "AMI_SECRET": "pw", "AMI_PORT": str(front.port)}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "amiclient", *args], env=env, cwd=str(ROOT),
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)

        ok = run("--cafile", str(certificate[0]), "ping")
        assert ok.returncode == 0 and "Pong" in ok.stdout, ok.stderr
        untrusted = run("--tls", "ping")  # a self-signed certificate, not in the system CAs
        assert untrusted.returncode == 3 and "Traceback" not in untrusted.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr or "certificate" in untrusted.stderr.lower()
        missing = run("--cafile", str(tmp_path / "nope.pem"), "ping")
        assert missing.returncode == 2 and "cannot load CA file" in missing.stderr

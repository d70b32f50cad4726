"""``amiclient --tls``: the server certificate is verified, with the system CAs or ``--cafile``."""
from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Tuple

from amiclient.testing import FakeAMIServer, TLSFront

ROOT = Path(__file__).resolve().parents[1]


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

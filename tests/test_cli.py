"""The command line: the demo, and one-shot actions against a server."""
from __future__ import annotations

import io

import pytest

from amiclient.cli import main, run_demo
from amiclient.testing import FakeAMIServer


def test_demo_runs_against_the_embedded_fake() -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "AMI version 11.0.0" in text and "Ping -> Pong" in text
    assert "DBGet demo/greeting -> 'hello: world'" in text
    assert "OriginateResponse" in text and text.count("event Hangup") == 2


def test_action_and_command(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeAMIServer(users={"admin": "pw"}) as server:
        monkeypatch.setenv("AMI_SECRET", "pw")
        base = ["--port", str(server.port), "--user", "admin"]
        assert main(base + ["action", "Ping"]) == 0
        assert "Ping: Pong" in capsys.readouterr().out
        assert main(base + ["action", "DBPut", "Family=f", "Key=k", "Val=v"]) == 0
        assert server.db[("f", "k")] == "v"
        assert main(base + ["command", "core show uptime"]) == 0
        assert capsys.readouterr().out.count("System uptime") == 1
        monkeypatch.setenv("AMI_SECRET", "wrong")
        assert main(base + ["action", "Ping"]) == 1
        assert "refused" in capsys.readouterr().err

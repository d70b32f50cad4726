"""``amiclient`` against hostile servers, hostile values, unlucky operators.

Mostly in-process (``main([...], out, err)``); signals, exit codes of a
dying connection and tracebacks are checked in real subprocesses.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from amiclient._settings import SettingsError, resolve
from amiclient.cli import main
from amiclient.testing import FakeAMIServer, Fault
from amiclient.testing._wire import Packet, build_response

ROOT = Path(__file__).resolve().parents[1]
SECRET = "pw-Hx4vQ"
HOSTILE = "Mr \x1b]0;pwned\x07\x1b[2J\x9b31mEvil\x00"


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users={"admin": SECRET}) as srv:
        yield srv


@pytest.fixture
def env(tmp_path: Path, server: FakeAMIServer, monkeypatch: pytest.MonkeyPatch) -> Dict[str, str]:
    """The process environment for in-process runs: this server, no config, no colour settings."""
    for name in list(os.environ):
        if name.startswith("AMI_") or name == "NO_COLOR":
            monkeypatch.delenv(name)
    values = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "AMI_PORT": str(server.port), "AMI_SECRET": SECRET}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


def run(*args: str, out: io.TextIOBase | None = None) -> Tuple[int, str, str]:
    stdout = out if out is not None else io.StringIO()
    err = io.StringIO()
    code = main(list(args), stdout, err)  # type: ignore[arg-type]
    return code, stdout.getvalue() if isinstance(stdout, io.StringIO) else "", err.getvalue()


@contextlib.contextmanager
def popen(env: Dict[str, str], *args: str) -> Iterator[subprocess.Popen[str]]:
    """The CLI as a subprocess, killed after 30 s so that a blocking read cannot hang the test run."""
    environ = {**env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "amiclient", *args], env=environ, cwd=str(ROOT),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30.0, proc.kill)
    watchdog.start()
    try:
        yield proc
    finally:
        watchdog.cancel()
        watchdog.join()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# ---------------------------------------------------------------- hostile values from the server


def test_server_values_cannot_drive_the_terminal(server: FakeAMIServer, env: Dict[str, str]) -> None:
    """A caller ID name or DB value is attacker data: no escape sequence reaches the screen."""
    server.db[("f", "k")] = HOSTILE
    code, out, _ = run("action", "DBGet", "Family=f", "Key=k")
    assert code == 0 and "Val: Mr \\x1b]0;pwned\\x07\\x1b[2J\\x9b31mEvil\\x00" in out
    assert not any(c in out for c in "\x1b\x07\x9b\x00")
    code, out, _ = run("action", "DBGet", "Family=f", "Key=k", "--json")
    assert "\x9b" not in out and "\x1b" not in out
    assert [json.loads(line).get("Val") for line in out.splitlines()][1] == HOSTILE  # lossless
    server.add_handler("Evil", lambda session, packet: build_response(packet, HOSTILE, "Error"))
    code, out, err = run("action", "Evil")
    assert code == 1 and "Message: Mr \\x1b]0;pwned" in out and "amiclient: Evil: Error: Mr \\x1b]0;pwned" in err
    assert not any(c in out + err for c in "\x1b\x07\x9b\x00")
    server.simulate_call("PJSIP/100", application="Dial", data=HOSTILE)
    code, out, _ = run("status")
    assert code == 0 and "Dial(Mr \\x1b]0;pwned" in out and not any(c in out for c in "\x1b\x07\x9b\x00")


def test_command_output_is_the_cli_text_byte_for_byte(server: FakeAMIServer, env: Dict[str, str]) -> None:
    text = "Name      Value  \n  indented\n\nlast line\n\n"
    server.command_outputs["show odd"] = text
    assert run("command", "show", "odd")[1] == text  # asterisk -rx prints exactly this
    with FakeAMIServer(users={"admin": SECRET}, legacy=True) as old:
        old.command_outputs["show odd"] = text
        code, out, _ = run("--port", str(old.port), "command", "show odd")
    assert code == 0 and out == text


def test_empty_command_is_a_usage_error_before_connecting(server: FakeAMIServer, env: Dict[str, str]) -> None:
    code, _, err = run("command", "  ")
    assert code == 2 and "nothing to run" in err and server.connections_accepted == 0


def test_output_the_terminal_cannot_encode_is_escaped_not_an_error(server: FakeAMIServer, env: Dict[str, str]) -> None:
    server.db[("f", "k")] = "Müller"
    raw = io.BytesIO()
    ascii_out = io.TextIOWrapper(raw, encoding="ascii", write_through=True)
    code, _, err = run("action", "DBGet", "Family=f", "Key=k", out=ascii_out)
    assert code == 0, err
    assert b"Val: M\\xfcller" in raw.getvalue() and b"DBGetComplete" in raw.getvalue()


# ---------------------------------------------------------------- numbers and ports


@pytest.mark.parametrize("args", [
    ["--timeout", "inf", "ping"],
    ["--timeout", "nan", "ping"],
    ["--timeout", "1e400", "ping"],
    ["ping", "--count", "2", "--interval", "inf"],
    ["ping", "--count", "2", "--interval", "nan"],
    ["fake-server", "--port", "99999"],
    ["fake-server", "--port", "0", "--http-port", "-1"],
    ["fake-server", "--port", "0", "--calls-per-second", "1e9"],
    ["demo", "--duration", "nan"],
])
def test_numbers_must_be_finite_and_in_range(server: FakeAMIServer, env: Dict[str, str], args: List[str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", io.StringIO())  # argparse prints its usage there
        code, _, _ = run(*args)
    assert code == 2 and server.connections_accepted == 0


def test_settings_refuse_infinite_or_nan_timeouts(tmp_path: Path) -> None:
    for value in ("inf", "nan", "-inf"):
        with pytest.raises(SettingsError, match="timeout"):
            resolve({}, None, {"XDG_CONFIG_HOME": str(tmp_path), "AMI_TIMEOUT": value})


# ---------------------------------------------------------------- secrets


def test_secret_from_an_env_file_keeps_no_line_end(server: FakeAMIServer, env: Dict[str, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for value in (SECRET + "\n", SECRET + "\r\n"):  # docker --env-file, a Kubernetes secret, $(cat file)
        monkeypatch.setenv("AMI_SECRET", value)
        assert run("ping")[0] == 0


def test_secret_with_a_line_break_inside_is_refused_without_showing_it(
    server: FakeAMIServer, env: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMI_SECRET", "top\r\nAction: Ping")
    code, out, err = run("ping")
    assert code == 2 and "AMI_SECRET" in err and "top" not in out + err and "Action" not in err
    assert server.connections_accepted == 0


def test_secret_file_empty_or_not_text_is_a_clear_usage_error(server: FakeAMIServer, env: Dict[str, str],
                                                              tmp_path: Path) -> None:
    path = tmp_path / "secret"
    for content, message in ((b"", "is empty"), (b"\n" + SECRET.encode(), "is empty"), (b"\xff\xfe", "not UTF-8")):
        path.write_bytes(content)
        path.chmod(0o600)
        code, _, err = run("--secret-file", str(path), "ping")
        assert code == 2 and message in err and "codec" not in err, err
    assert server.connections_accepted == 0


def test_secret_headers_of_an_action_stay_out_of_errors(server: FakeAMIServer, env: Dict[str, str]) -> None:
    """A server (or proxy) echoing the secret in its error message: stderr shows ``***``."""
    def echo(session: object, packet: Packet) -> List[Tuple[str, Optional[str]]]:
        return build_response(packet, f"bad secret {packet.get('Secret')} key {packet.get('Key')}", "Error")

    server.add_handler("CheckLogin", echo)
    code, _, err = run("action", "CheckLogin", "Username=bob", "Secret=bob-Secret-42", "Key=md5-Key-43")
    assert code == 1 and "bad secret *** key ***" in err
    assert "bob-Secret-42" not in err and "md5-Key-43" not in err


def test_secret_on_the_command_line_is_warned_about(server: FakeAMIServer, env: Dict[str, str]) -> None:
    code, out, err = run("--secret", SECRET, "ping")
    assert code == 0 and "visible to other users" in err and SECRET not in out + err


def test_log_lines_tracebacks_included_never_show_the_secret(server: FakeAMIServer, env: Dict[str, str]) -> None:
    """With -v, a library log line carrying an exception that mentions the secret is redacted whole."""
    seen: List[str] = []

    def log_a_leak(event: object) -> None:
        try:
            raise RuntimeError(f"oops {SECRET}")
        except RuntimeError:
            logging.getLogger("amiclient.client").debug("failed", exc_info=True)
            seen.append("logged")

    class Out(io.StringIO):
        def write(self, text: str) -> int:
            if not seen:
                log_a_leak(None)
            return super().write(text)

    code, _, err = run("-v", "ping", out=Out())
    assert code == 0 and seen and "RuntimeError: oops ***" in err and SECRET not in err


def test_a_logged_packet_never_shows_secret_or_key_headers(server: FakeAMIServer, env: Dict[str, str]) -> None:
    """Should a packet ever be logged at DEBUG (the wire), the MD5 ``Key`` and any ``Secret`` are masked."""
    class Out(io.StringIO):
        def write(self, text: str) -> int:
            log = logging.getLogger("amiclient.connection")
            log.debug("sent %s", "Action: Login\r\nUsername: admin\r\nAuthType: MD5\r\nKey: 0123abcd\r\n")
            log.debug("sent %r", "Action: Login\r\nSecret: other-secret\r\n")
            return super().write(text)

    code, _, err = run("-v", "ping", out=Out())
    assert code == 0 and "Username: admin" in err and "Key: ***" in err
    assert "0123abcd" not in err and "other-secret" not in err


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_a_config_file_others_can_change_is_refused(tmp_path: Path) -> None:
    """Others could point ``host`` at their own server and collect the login."""
    path = tmp_path / "amiclient" / "config.ini"
    path.parent.mkdir()
    path.write_text("[default]\nhost = pbx\n")
    for mode in (0o666, 0o620):
        path.chmod(mode)
        with pytest.raises(SettingsError, match="chmod go-w"):
            resolve({}, None, {"XDG_CONFIG_HOME": str(tmp_path)})
    path.chmod(0o644)
    assert resolve({}, None, {"XDG_CONFIG_HOME": str(tmp_path)}).host == "pbx"


def test_a_url_holding_credentials_is_refused_without_echoing_them(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="must not hold a user or secret") as info:
        resolve({"url": "http://admin:url-Secret-7@pbx:8088/asterisk/"}, None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert "url-Secret-7" not in str(info.value)


def test_a_filter_key_with_a_line_break_is_refused_before_connecting(server: FakeAMIServer, env: Dict[str, str]) -> None:
    code, _, err = run("events", "--filter", "Chan\nnel=x")
    assert code == 2 and "CR, LF or NUL" in err and server.connections_accepted == 0


# ---------------------------------------------------------------- silent and dying servers


def test_silent_servers_end_within_the_timeout_with_exit_3(server: FakeAMIServer, env: Dict[str, str]) -> None:
    for fault, words in ((Fault.STALL, "banner"), (Fault.NO_ANSWER, "response")):
        server.set_fault(fault)
        start = time.monotonic()
        code, _, err = run("--timeout", "0.5", "ping")
        assert code == 3 and words in err and time.monotonic() - start < 3.0
    server.set_fault(None)


def test_events_exit_3_when_the_server_drops_the_connection(server: FakeAMIServer, env: Dict[str, str]) -> None:
    with popen(env, "events", "Hangup", "--json") as proc:
        assert proc.stderr is not None and "Listening" in proc.stderr.readline()
        server.emit("Hangup", Channel="PJSIP/1-1")
        assert proc.stdout is not None and json.loads(proc.stdout.readline())["Channel"] == "PJSIP/1-1"
        server.drop_all()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 3 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("amiclient: connection lost")
    assert "Listening" not in out  # stdout carries the events only


def wait_for_text(stream: io.StringIO, text: str, timeout: float = 15.0) -> None:
    """Poll what another thread writes to ``stream`` until ``text`` shows up."""
    deadline = time.monotonic() + timeout
    while text not in stream.getvalue():
        assert time.monotonic() < deadline, stream.getvalue()
        time.sleep(0.01)


def test_events_reconnect_keeps_following_and_joins_its_threads(server: FakeAMIServer, env: Dict[str, str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    codes: List[int] = []
    runner = threading.Thread(target=lambda: codes.append(main(["events", "Hangup", "--reconnect", "--count", "2"],
                                                                out, err)))
    runner.start()
    try:
        wait_for_text(err, "Listening")
        server.emit("Hangup", Channel="before")
        server.restart()
        wait_for_text(err, "reconnected")
        server.emit("Hangup", Channel="after")
    finally:
        runner.join(15)
    assert codes == [0], err.getvalue()
    assert "Channel: before" in out.getvalue() and "Channel: after" in out.getvalue()


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signals_during_events_log_off_and_exit_cleanly(
    server: FakeAMIServer, env: Dict[str, str], signum: int, code: int, word: str
) -> None:
    with popen(env, "events") as proc:
        assert proc.stderr is not None and "Listening for events" in proc.stderr.readline()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.strip().splitlines() == [f"amiclient: {word}"]
    assert any(p.get("Action") == "Logoff" for p in server.received_actions)
    assert server.wait_for_sessions(0, timeout=5.0)


# ---------------------------------------------------------------- fake-server


def test_fake_server_on_a_port_in_use_says_which(env: Dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run("fake-server", "--port", str(port))
        assert code == 3 and f"cannot listen on 127.0.0.1:{port}" in err
        code, _, err = run("fake-server", "--port", "0", "--http-port", str(port))
        assert code == 3 and f"cannot listen on 127.0.0.1:{port}" in err

"""The ``amiclient`` command, run as a subprocess against a FakeAMIServer in this process.

Every subcommand, ``--json`` output, each exit code, secrets kept out of
every output, ``events`` stopping by itself and on SIGINT.
"""
from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from amiclient import AMIClient
from amiclient.cli import run_demo
from amiclient.testing import FakeAJAMServer, FakeAMIServer, Recorder

ROOT = Path(__file__).resolve().parents[1]
SECRET = "pw-Zq9xK"


def clean_env(tmp_path: Path, **extra: str) -> Dict[str, str]:
    """A minimal environment: no AMI_* or NO_COLOR from the caller, config under tmp_path."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def cli(env: Dict[str, str], *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "amiclient", *args], env=env, cwd=str(ROOT),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def popen(env: Dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "amiclient", *args], env=env, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit ``code``, one ``amiclient:`` line on stderr, no traceback, no secret."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = re.sub(r"\x1b\[[0-9;]*m", "", result.stderr).strip().splitlines()
    assert len(lines) >= 1 and lines[-1].startswith("amiclient: "), result.stderr
    assert SECRET not in result.stdout + result.stderr
    return lines[-1]


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users={"admin": SECRET}) as srv:
        yield srv


@pytest.fixture
def env(tmp_path: Path, server: FakeAMIServer) -> Dict[str, str]:
    return clean_env(tmp_path, AMI_PORT=str(server.port), AMI_USERNAME="admin", AMI_SECRET=SECRET)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- action and command


def test_action_prints_the_response_and_its_event_list(server: FakeAMIServer, env: Dict[str, str]) -> None:
    server.db.update({("cidname", "100"): "Alice", ("cidname", "200"): "Bob"})
    result = cli(env, "action", "DBGetTree", "Family=cidname")
    assert result.returncode == 0, result.stderr
    assert "Response: Success" in result.stdout
    assert "Key: /cidname/100" in result.stdout and "Val: Bob" in result.stdout
    assert "Event: DBGetTreeComplete" in result.stdout and "ListItems: 2" in result.stdout
    assert "\x1b[" not in result.stdout  # no colour into a pipe


def test_action_json_is_one_object_per_packet_response_first(server: FakeAMIServer, env: Dict[str, str]) -> None:
    server.db[("f", "k")] = "v"
    result = cli(env, "action", "DBGetTree", "Family=f", "--json")
    packets = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p.get("Response") or p.get("Event") for p in packets] == ["Success", "DBGetTreeResponse", "DBGetTreeComplete"]
    assert list(packets[0])[:2] == ["Response", "ActionID"]  # keys in received order
    assert packets[1]["Key"] == "/f/k" and packets[1]["Val"] == "v"
    result = cli(env, "action", "Command", "Command=core show uptime", "--json")
    (response,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert response["Output"][0].startswith("System uptime:") and len(response["Output"]) == 2  # repeated header: a list


def test_action_repeats_a_repeated_key_and_reaches_the_server(server: FakeAMIServer, env: Dict[str, str]) -> None:
    result = cli(env, "action", "UserEvent", "UserEvent=Hello", "Var=a=1", "Var=b=2")
    assert result.returncode == 0, result.stderr
    sent = [p for p in server.received_actions if p.get("Action") == "UserEvent"][0]
    assert "Var: a=1\r\nVar: b=2" in "\r\n".join(sent.lines)


def test_response_error_exits_1_after_printing_it(env: Dict[str, str]) -> None:
    result = cli(env, "action", "DBGet", "Family=none", "Key=none")
    line = assert_clean_error(result, 1)
    assert "Response: Error" in result.stdout and "DBGet" in line


def test_command_prints_cli_output_and_unknown_commands_exit_1(env: Dict[str, str]) -> None:
    result = cli(env, "command", "core show uptime")
    assert result.returncode == 0 and result.stdout.startswith("System uptime: ") and result.stdout.endswith("\n")
    assert cli(env, "command", "core", "show", "version").stdout.startswith("Asterisk 22")
    result = cli(env, "command", "core show nothing")
    assert_clean_error(result, 1)
    assert "No such command" in result.stderr and result.stdout == ""


def test_command_on_asterisk_13_detects_unknown_commands(tmp_path: Path) -> None:
    with FakeAMIServer(users={"admin": SECRET}, legacy=True) as old:
        env = clean_env(tmp_path, AMI_PORT=str(old.port), AMI_SECRET=SECRET)
        assert cli(env, "command", "core show uptime").stdout.startswith("System uptime: ")
        result = cli(env, "command", "core show nothing")
        assert_clean_error(result, 1)
        assert "No such command" in result.stderr


def test_output_into_a_closed_pipe_is_quiet(server: FakeAMIServer, env: Dict[str, str]) -> None:
    server.db.update({("f", str(n)): "x" * 100 for n in range(1000)})  # more than a pipe holds
    proc = popen(env, "action", "DBGetTree", "Family=f")
    assert proc.stdout is not None and proc.stdout.readline().startswith("Response: Success")
    proc.stdout.close()  # like `| head -1`
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err and "Exception" not in err


@pytest.mark.parametrize("args", [
    ["action", "Ping", "NoEqualsSign"],
    ["action", "Ping", "=value"],
    ["action", "Ping", "Foo=a\rb"],
    ["action", "Ping", "Foo=a\nActionID: x"],
    ["command", "core show\nuptime"],
    ["events", "Hangup\r"],
    ["ping", "--count", "0"],
])
def test_bad_input_exits_2_before_connecting(server: FakeAMIServer, env: Dict[str, str], args: List[str]) -> None:
    assert_clean_error(cli(env, *args), 2)
    assert server.connections_accepted == 0


def test_argparse_usage_errors_exit_2(env: Dict[str, str]) -> None:
    for args in (["nosuchcommand"], [], ["--port", "notanumber", "ping"], ["action"]):
        result = cli(env, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr and "usage:" in result.stderr


def test_help_on_every_subcommand_has_examples(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    for name in ("action", "command", "events", "ping", "status", "info", "fake-server", "demo"):
        result = cli(env, name, "--help")
        assert result.returncode == 0 and "examples:" in result.stdout and f"amiclient {name}" in result.stdout


# ---------------------------------------------------------------- connection failures and secrets


def test_wrong_secret_exits_3_and_no_secret_anywhere(server: FakeAMIServer, tmp_path: Path) -> None:
    env = clean_env(tmp_path, AMI_PORT=str(server.port), AMI_SECRET=SECRET + "-wrong")
    for extra in ([], ["-v"]):
        result = cli(env, *extra, "ping")
        line = assert_clean_error(result, 3)
        assert "refused" in line and SECRET + "-wrong" not in result.stdout + result.stderr
    result = cli(env, "--secret", SECRET + "-wrong", "-v", "--color", "always", "info")
    assert_clean_error(result, 3)
    assert SECRET + "-wrong" not in result.stdout + result.stderr


def test_wrong_secret_over_http_exits_3_without_the_secret(server: FakeAMIServer, tmp_path: Path) -> None:
    with FakeAJAMServer(server) as http:
        env = clean_env(tmp_path, AMI_URL=http.url, AMI_SECRET=SECRET + "-wrong")
        result = cli(env, "-v", "action", "Ping")
        assert_clean_error(result, 3)
        assert SECRET + "-wrong" not in result.stdout + result.stderr


def test_unreachable_server_exits_3(tmp_path: Path) -> None:
    env = clean_env(tmp_path, AMI_SECRET=SECRET)
    line = assert_clean_error(cli(env, "--port", str(closed_port()), "--timeout", "2", "ping"), 3)
    assert "cannot connect" in line


def test_no_secret_and_no_terminal_is_a_usage_error(server: FakeAMIServer, tmp_path: Path) -> None:
    line = assert_clean_error(cli(clean_env(tmp_path, AMI_PORT=str(server.port)), "ping"), 2)
    assert "no secret" in line
    assert server.connections_accepted == 0


def test_secret_prompt_on_a_terminal_is_not_echoed(server: FakeAMIServer, tmp_path: Path) -> None:
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "amiclient", "ping"], cwd=str(ROOT), stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env=clean_env(tmp_path, AMI_PORT=str(server.port)))
        assert proc.stderr is not None
        prompt = ""
        while not prompt.endswith(": "):  # getpass flushes earlier input: answer once asked
            chunk = os.read(proc.stderr.fileno(), 100).decode()
            assert chunk, prompt
            prompt += chunk
        os.write(master, (SECRET + "\n").encode())
        out, err = proc.communicate(timeout=20)
        err = prompt + err
    finally:
        proc.kill() if proc.poll() is None else None
        os.close(slave)
        os.close(master)
    assert proc.returncode == 0, err
    assert "Secret for admin@127.0.0.1" in err and "Pong" in out
    assert SECRET not in out + err


# ---------------------------------------------------------------- ping, status, info


def test_ping_reports_round_trip_times(server: FakeAMIServer, env: Dict[str, str]) -> None:
    result = cli(env, "ping", "--count", "2", "--interval", "0")
    assert result.returncode == 0 and result.stdout.count(f"Pong from 127.0.0.1:{server.port}") == 2
    assert " ms" in result.stdout
    rows = [json.loads(line) for line in cli(env, "ping", "--json").stdout.splitlines()]
    assert rows[0]["seq"] == 1 and rows[0]["rtt_ms"] >= 0 and rows[0]["ping"] == "Pong"


def test_status_is_an_aligned_table_of_channels(server: FakeAMIServer, env: Dict[str, str]) -> None:
    assert cli(env, "status").stdout == "0 active channels\n"
    server.simulate_call("PJSIP/100", application="Dial", data="PJSIP/200")
    server.simulate_call("PJSIP/alice-longer-name", exten="600", context="from-internal")
    lines = cli(env, "status").stdout.splitlines()
    assert lines[0].split() == ["Channel", "State", "CallerID", "Location", "Application", "Duration"]
    assert lines[-1] == "2 active channels" and len(lines) == 4
    column = lines[0].index("State")
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in lines[1:3])  # aligned
    assert "Dial(PJSIP/200)" in lines[1] and "600@from-internal:1" in lines[2]
    rows = [json.loads(line) for line in cli(env, "status", "--json").stdout.splitlines()]
    assert [r["Event"] for r in rows] == ["CoreShowChannel"] * 2 and rows[0]["Channel"].startswith("PJSIP/100-")


def test_info_shows_versions_uptime_and_calls(server: FakeAMIServer, env: Dict[str, str]) -> None:
    server.simulate_call("PJSIP/100")
    text = cli(env, "info").stdout
    assert "Asterisk:" in text and "22.11.0-rc1" in text and "AMI version:" in text and "11.0.0" in text
    assert "Uptime:" in text and "Active calls:    1" in text
    info = json.loads(cli(env, "info", "--json").stdout)
    assert info["asterisk_version"] == "22.11.0-rc1" and info["ami_version"] == "11.0.0"
    assert info["current_calls"] == "1" and info["processed_calls"] == "1" and info["uptime"]


def test_http_url_runs_actions_and_follows_events(server: FakeAMIServer, tmp_path: Path) -> None:
    with FakeAJAMServer(server) as http:
        env = clean_env(tmp_path, AMI_SECRET=SECRET)
        result = cli(env, "--url", http.url, "action", "Ping", "--json")
        assert result.returncode == 0 and json.loads(result.stdout)["Ping"] == "Pong"
        proc = popen(env, "--url", http.url, "events", "Hangup", "--count", "2", "--json")
        try:
            assert proc.stderr is not None and "Listening" in proc.stderr.readline()
            for n in range(3):
                server.emit("Hangup", Channel=f"PJSIP/10{n}-1", Cause="16")
            out, err = proc.communicate(timeout=20)
        finally:
            proc.kill() if proc.poll() is None else None
        assert proc.returncode == 0, err
        assert [json.loads(line)["Channel"] for line in out.splitlines()] == ["PJSIP/100-1", "PJSIP/101-1"]


def test_colour_only_when_asked(env: Dict[str, str]) -> None:
    assert "\x1b[" in cli(env, "--color", "always", "action", "Ping").stdout
    assert "\x1b[" not in cli({**env, "NO_COLOR": "1"}, "action", "Ping").stdout


# ---------------------------------------------------------------- events


def test_events_count_stops_by_itself_and_filters_on_the_server(server: FakeAMIServer, env: Dict[str, str]) -> None:
    proc = popen(env, "events", "Hangup", "--filter", "Channel=PJSIP/1*", "--count", "3", "--json")
    try:
        assert proc.stderr is not None and "Listening" in proc.stderr.readline()
        server.emit("Newchannel", Channel="PJSIP/100-1")
        server.emit("Hangup", Channel="PJSIP/200-1")  # wrong channel
        for n in range(5):
            server.emit("Hangup", Channel=f"PJSIP/10{n}-1", Cause="16")
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["Channel"] for e in events] == ["PJSIP/100-1", "PJSIP/101-1", "PJSIP/102-1"]
    filters = [p.get("Filter") for p in server.received_actions if p.get("Action") == "Filter"]
    assert filters == ["Event: [Hh][Aa][Nn][Gg][Uu][Pp].*[Cc][Hh][Aa][Nn][Nn][Ee][Ll]: PJSIP/1.*"]


# ---------------------------------------------------------------- fake-server and demo


def test_fake_server_serves_calls_until_sigterm(tmp_path: Path) -> None:
    proc = popen(clean_env(tmp_path), "fake-server", "--port", "0", "--users", "admin:pw", "ops:pw2",
                 "--calls-per-second", "50", "--call-duration", "0")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Fake Asterisk manager listening on 127.0.0.1:") and "pw" not in first
        port = int(first.split()[5].rsplit(":", 1)[1])
        seen: Recorder[object] = Recorder()
        with AMIClient("127.0.0.1", port, "ops", "pw2") as client:
            client.add_listener(seen, event="Newchannel")
            seen.wait_for(2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0 and "Traceback" not in err


def test_demo_subcommand_finishes_by_itself(tmp_path: Path) -> None:
    result = cli(clean_env(tmp_path), "demo")
    assert result.returncode == 0, result.stderr
    assert "Ping -> Pong" in result.stdout and result.stdout.count("event Hangup") == 2


def test_demo_runs_against_the_embedded_fake() -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "AMI version 11.0.0" in text and "Ping -> Pong" in text
    assert "DBGet demo/greeting -> 'hello: world'" in text
    assert "OriginateResponse" in text and text.count("event Hangup") == 2


def test_demo_with_duration_shows_simulated_calls() -> None:
    out = io.StringIO()
    assert run_demo(out, duration=0.6) == 0
    text = out.getvalue()
    assert "Simulated calls for 0.6 s" in text and "Newchannel" in text.split("Simulated calls")[1]
    assert "Active channels:" in text


"""Every script in examples/ runs, as a user would start it, against a FakeAMIServer.

The examples run in subprocesses (real signals, real forks, real HTTP servers);
the fake Asterisk runs in the test process, so the test sees what the
example sent.  Flask, Django and gunicorn come from the ``test`` extra; a test
whose framework is missing is skipped with the reason.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple

import pytest

from amiclient.testing import FakeAMIServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 30.0  # generous: the machine may be loaded; every wait returns as soon as its condition holds


def wait_until(condition: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    """Poll ``condition`` (something outside this process: a file, a child) until truthy."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ami_env(server: FakeAMIServer, **extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(AMI_HOST="127.0.0.1", AMI_PORT=str(server.port), AMI_USER="admin", AMI_SECRET="secret",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
               PYTHONUNBUFFERED="1", **extra)
    return env


def start(args: Sequence[str], env: Dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[str]:
    return subprocess.Popen(list(args), env=env, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> Tuple[int, str, str]:
    """Send ``sig`` and collect the exit status and output (killing the process group if it hangs)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not stop on signal {sig}:\n{out}\n{err}") from None
    return proc.returncode, out, err


@pytest.fixture
def server() -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users={"admin": "secret"}) as fake:
        yield fake


def logoffs(server: FakeAMIServer) -> int:
    return sum(1 for p in server.received_actions if (p.action or "").lower() == "logoff")


# -- scripts -----------------------------------------------------------------------------------


def test_originate_and_wait_against_fake(server: FakeAMIServer) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "originate_and_wait.py")], env=ami_env(server),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "queued: Originate successfully queued" in result.stdout
    assert "result: Success reason 4 channel Local/100@default" in result.stdout
    originates = [p for p in server.received_actions if (p.action or "").lower() == "originate"]
    assert len(originates) == 1 and originates[0]["Channel"] == "Local/100@default"


def test_originate_and_wait_without_environment_uses_bundled_fake() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMI_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, str(EXAMPLES / "originate_and_wait.py")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "result: Success reason 4" in result.stdout


def test_monitor_calls_prints_call_events_and_stops_on_sigint(server: FakeAMIServer) -> None:
    proc = start([sys.executable, str(EXAMPLES / "monitor_calls.py")], ami_env(server))
    try:
        assert server.wait_for_sessions(1, timeout=TIMEOUT), "the example never logged in"
        server.emit("Hangup", Channel="PJSIP/100-00000001", Cause="16", **{"Cause-txt": "Normal Clearing"})
    finally:
        code, out, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert "Hangup      PJSIP/100-00000001" in out and "Normal Clearing" in out
    assert "-- connected" in out
    assert logoffs(server) == 1


# -- event logger ------------------------------------------------------------------------------


def read_lines(path: Path) -> List[Dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_event_logger_writes_json_lines_reopens_on_sighup_and_stops_on_sigterm(
    server: FakeAMIServer, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    proc = start([sys.executable, str(EXAMPLES / "event_logger.py"), str(path)], ami_env(server))
    try:
        assert server.wait_for_sessions(1, timeout=TIMEOUT), "the logger never logged in"
        server.emit([("Event", "UserEvent"), ("UserEvent", "first"), ("Note", "a"), ("Note", "b")])
        server.emit("Hangup", Channel="PJSIP/100-00000001", Cause="16")
        def logged() -> List[Dict[str, Any]]:
            records = [r for r in read_lines(path) if r["event"] in ("UserEvent", "Hangup")]
            return records if len(records) == 2 else []

        before = wait_until(logged, what="two events in the log")
        # logrotate: move the file away, then SIGHUP; the logger creates the path again
        rotated = tmp_path / "events.jsonl.1"
        path.rename(rotated)
        proc.send_signal(signal.SIGHUP)
        wait_until(path.exists, what="the log file to be reopened")
        server.emit("Hangup", Channel="PJSIP/200-00000002", Cause="17")
        after = wait_until(lambda: [r for r in read_lines(path) if r["event"] == "Hangup"], what="an event after rotation")
    finally:
        code, out, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    user_event = next(r for r in before if r["event"] == "UserEvent")
    assert user_event["headers"]["Note"] == ["a", "b"] and isinstance(user_event["time"], float)
    assert [r["headers"]["Channel"] for r in read_lines(rotated) if r["event"] == "Hangup"] == ["PJSIP/100-00000001"]
    assert [r["headers"]["Channel"] for r in after] == ["PJSIP/200-00000002"]
    assert "stopping" in err and "stats" in err
    assert logoffs(server) == 1
    assert "secret" not in err


# -- web apps sharing one client ---------------------------------------------------------------


def http(method: str, url: str) -> Tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def wait_for_http(proc: subprocess.Popen[str], url: str) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"server exited with {proc.returncode}:\n{out}\n{err}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    wait_until(up, what=f"{url} to answer")


def exercise_web_app(server: FakeAMIServer, base: str) -> List[Dict[str, Any]]:
    """Concurrent requests through the app; returns the /ping answers."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        pings = list(pool.map(lambda _: http("GET", f"{base}/ping"), range(24)))
    assert all(status == 200 for status, _ in pings), pings
    answers: List[Dict[str, Any]] = [body for _, body in pings]
    assert len({(a["pid"], a["action_id"]) for a in answers}) == 24  # every thread got its own response

    channel = server.simulate_call("PJSIP/100", context="internal", exten="200")
    assert channel is not None
    status, listed = http("GET", f"{base}/channels")
    assert status == 200 and channel in [c["Channel"] for c in listed]
    assert http("POST", f"{base}/hangup/{channel}") == (200, {"ok": True})
    assert channel not in server.channels
    status, body = http("POST", f"{base}/hangup/PJSIP/nobody-00000009")
    assert status == 404 and body["error"] == "No such channel"
    return answers


def test_flask_app_under_gunicorn_preload_two_workers(server: FakeAMIServer) -> None:
    pytest.importorskip("flask")
    pytest.importorskip("gunicorn")
    port = free_port()
    proc = start([sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--threads", "4",
                  "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "10", "flask_app:app"],
                 ami_env(server), cwd=EXAMPLES)
    try:
        wait_for_http(proc, f"http://127.0.0.1:{port}/ping")
        answers = exercise_web_app(server, f"http://127.0.0.1:{port}")
    finally:
        code, out, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    pids = {a["pid"] for a in answers}
    assert proc.pid not in pids and 1 <= len(pids) <= 2, pids
    # the master connected once at import (--preload), each worker that served a request once after fork
    accepted = server.connections_accepted
    assert 2 <= accepted <= 3, accepted
    wait_until(lambda: not server.sessions, what="every gunicorn process to log off and disconnect")
    assert logoffs(server) == accepted


def test_django_view_under_threaded_runserver(server: FakeAMIServer) -> None:
    pytest.importorskip("django")
    port = free_port()
    proc = start([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                 ami_env(server), cwd=EXAMPLES / "django_site")
    try:
        wait_for_http(proc, f"http://127.0.0.1:{port}/ping")
        answers = exercise_web_app(server, f"http://127.0.0.1:{port}")
    finally:
        code, out, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert {a["pid"] for a in answers} == {proc.pid}
    assert len({a["thread"] for a in answers}) > 1  # requests really ran on several threads...
    assert server.connections_accepted == 1  # ...sharing one client
    wait_until(lambda: not server.sessions, what="the Django process to log off")
    assert logoffs(server) == 1


def test_web_examples_import_no_framework_at_package_level() -> None:
    """Flask, Django and gunicorn are test extras only: the package never imports them."""
    code = ("import sys, amiclient, amiclient.shared, amiclient.testing, amiclient.http, amiclient.cli\n"
            "bad = [m for m in ('flask', 'django', 'gunicorn') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(ROOT), timeout=60)

"""Connection settings for the CLI: flags, then ``--profile``, then the environment, then ``[default]``."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

from amiclient._settings import Settings, SettingsError, config_path, resolve
from amiclient.shared import options_from_env
from amiclient.testing import FakeAMIServer

ROOT = Path(__file__).resolve().parents[1]
SECRET = "pw-Qr7"


def write_config(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config" / "amiclient" / "config.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def settle(tmp_path: Path, flags: Optional[Dict[str, Optional[str]]] = None, profile: Optional[str] = None,
           **env: str) -> Settings:
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "config"), **env}
    return resolve(flags or {}, profile, environ)


CONFIG = """\
[default]
host = default.example
port = 1001
username = default-user
secret = default-secret

[prod]
host = prod.example
tls = yes
"""


def test_config_path_honours_xdg_config_home(tmp_path: Path) -> None:
    assert config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/amiclient/config.ini")
    assert config_path({"HOME": "/h"}) == Path("/h/.config/amiclient/config.ini")


def test_each_setting_from_the_first_layer_that_has_it(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    only_default = settle(tmp_path)
    assert (only_default.host, only_default.port, only_default.username, only_default.secret) == (
        "default.example", 1001, "default-user", "default-secret")
    with_env = settle(tmp_path, AMI_HOST="env.example", AMI_SECRET="env-secret")
    assert (with_env.host, with_env.port, with_env.secret) == ("env.example", 1001, "env-secret")
    assert with_env.sources["host"] == "AMI_HOST" and with_env.sources["port"] == "profile [default]"
    profile = settle(tmp_path, profile="prod", AMI_HOST="env.example", AMI_PORT="2002")
    assert (profile.host, profile.port, profile.tls, profile.username) == ("prod.example", 2002, True, "default-user")
    flags = settle(tmp_path, {"host": "flag.example", "port": None}, profile="prod", AMI_HOST="env.example")
    assert flags.host == "flag.example" and flags.sources["host"] == "flag" and flags.port == 1001


def test_ami_username_wins_over_its_alias_ami_user(tmp_path: Path) -> None:
    assert settle(tmp_path, AMI_USER="old").username == "old"
    assert settle(tmp_path, AMI_USER="old", AMI_USERNAME="new").username == "new"
    assert options_from_env({"AMI_USER": "old"})["username"] == "old"
    assert options_from_env({"AMI_USER": "old", "AMI_USERNAME": "new"})["username"] == "new"


def test_url_from_a_higher_layer_beats_host_and_the_other_way_round(tmp_path: Path) -> None:
    assert settle(tmp_path, {"url": "http://pbx:8088/asterisk/"}, AMI_HOST="h").url == "http://pbx:8088/asterisk/"
    assert settle(tmp_path, {"host": "h"}, AMI_URL="http://pbx:8088/asterisk/").url is None
    with pytest.raises(SettingsError, match="http"):
        settle(tmp_path, AMI_URL="ftp://pbx/")


def test_bad_values_are_clear_errors(tmp_path: Path) -> None:
    for env, word in (({"AMI_PORT": "x"}, "port"), ({"AMI_PORT": "70000"}, "port"), ({"AMI_TLS": "maybe"}, "tls")):
        with pytest.raises(SettingsError, match=word):
            settle(tmp_path, **env)
    with pytest.raises(SettingsError, match=r"no profile \[nope\]"):
        settle(tmp_path, profile="nope")
    write_config(tmp_path, "[default]\nhots = typo\n")
    with pytest.raises(SettingsError, match="unknown key 'hots'"):
        settle(tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_a_readable_file_holding_a_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG, mode=0o644)
    with pytest.raises(SettingsError) as info:
        settle(tmp_path)
    assert "chmod 600" in str(info.value) and str(path) in str(info.value) and "default-secret" not in str(info.value)
    write_config(tmp_path, "[default]\nhost = h\n", mode=0o644)  # no secret in it: fine
    assert settle(tmp_path).host == "h"


def test_secret_file_is_read_and_must_be_private(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    secret_file.chmod(0o600)
    assert settle(tmp_path, {"secret_file": str(secret_file)}, AMI_SECRET="env").secret == "from-file"
    write_config(tmp_path, f"[default]\nsecret_file = {secret_file}\n", mode=0o644)
    assert settle(tmp_path).secret == "from-file"
    secret_file.chmod(0o640)
    with pytest.raises(SettingsError, match="chmod 600"):
        settle(tmp_path, {"secret_file": str(secret_file)})
    assert "from-file" not in repr(settle(tmp_path, AMI_SECRET="from-file"))


# ---------------------------------------------------------------- the same rules, end to end


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
               "XDG_CONFIG_HOME": str(tmp_path / "config"), **env}
    return subprocess.run([sys.executable, "-m", "amiclient", *args], env=environ, cwd=str(ROOT),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_precedence_end_to_end(tmp_path: Path) -> None:
    bad = _closed_port()
    with FakeAMIServer(users={"ops": SECRET}) as server:
        good = server.port
        write_config(tmp_path, f"[default]\nport = {bad}\nusername = ops\nsecret = {SECRET}\n\n"
                               f"[lab]\nport = {good}\n")
        assert _cli(tmp_path, "ping").returncode == 3  # [default] alone: the wrong port
        assert _cli(tmp_path, "ping", AMI_PORT=str(good)).returncode == 0  # environment over [default]
        assert _cli(tmp_path, "--profile", "lab", "ping", AMI_PORT=str(bad)).returncode == 0  # profile over env
        assert _cli(tmp_path, "ping", "--port", str(good), "--profile", "lab", AMI_PORT=str(bad)).returncode == 0
        assert _cli(tmp_path, "--port", str(bad), "--profile", "lab", "ping").returncode == 3  # flag over profile
        missing = _cli(tmp_path, "--profile", "nope", "ping")
        assert missing.returncode == 2 and "no profile [nope]" in missing.stderr and "Traceback" not in missing.stderr
        (tmp_path / "config" / "amiclient" / "config.ini").chmod(0o644)
        unsafe = _cli(tmp_path, "ping", AMI_PORT=str(good))
        assert unsafe.returncode == 2 and "chmod 600" in unsafe.stderr and SECRET not in unsafe.stderr

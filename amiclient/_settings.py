"""Connection settings from flags, a named profile, the environment and the ``[default]`` profile.

Each setting is taken from the first of these that has it:

1. command-line flags;
2. the profile named by ``--profile NAME``;
3. the environment: ``AMI_HOST``, ``AMI_PORT``, ``AMI_USERNAME`` (or its
   older alias ``AMI_USER``), ``AMI_SECRET``, ``AMI_TLS``, ``AMI_URL``,
   ``AMI_TIMEOUT``, ``AMI_CAFILE``;
4. the ``[default]`` profile.

Profiles are sections of ``$XDG_CONFIG_HOME/amiclient/config.ini``
(``~/.config/amiclient/config.ini``) with the keys ``host``, ``port``,
``username``, ``secret``, ``secret_file``, ``tls``, ``url``,
``timeout`` and ``cafile``.  A file holding a secret that its group or others can read is
refused (:class:`SettingsError`), and so is one that they can write to.  A secret is never part of a ``repr``
or an error message.
"""
from __future__ import annotations

import configparser
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

__all__ = [
    "ENV_NAMES",
    "Settings",
    "SettingsError",
    "config_path",
    "env_username",
    "load_profiles",
    "read_secret_file",
    "resolve",
]

#: Setting name -> environment variables, first found wins.
ENV_NAMES: Dict[str, Tuple[str, ...]] = {
    "host": ("AMI_HOST",),
    "port": ("AMI_PORT",),
    "username": ("AMI_USERNAME", "AMI_USER"),
    "secret": ("AMI_SECRET",),
    "tls": ("AMI_TLS",),
    "url": ("AMI_URL",),
    "timeout": ("AMI_TIMEOUT",),
    "cafile": ("AMI_CAFILE",),
}
_KEYS = ("host", "port", "username", "secret", "secret_file", "tls", "url", "timeout", "cafile")
_TRUE = ("1", "true", "yes", "on", "y", "t")
_FALSE = ("0", "false", "no", "off", "n", "f", "")


class SettingsError(ValueError):
    """Settings that cannot be used: a bad value, a missing profile, an unsafe config file."""


@dataclass
class Settings:
    """Where and how to connect; ``secret`` is kept out of ``repr``."""

    host: str = "127.0.0.1"
    port: Optional[int] = None
    username: str = "admin"
    secret: Optional[str] = field(default=None, repr=False)
    tls: bool = False
    url: Optional[str] = None
    timeout: float = 10.0
    #: CA certificates (PEM) to verify a TLS or https server with, instead of the system's.
    cafile: Optional[str] = None
    #: Where each setting came from (``"flag"``, ``"profile prod"``, ``"AMI_HOST"``...).
    sources: Dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """``host:port`` or the URL: where the client connects."""
        if self.url:
            return self.url
        return f"{self.host}:{self.port if self.port is not None else (5039 if self.tls else 5038)}"


def env_username(environ: Mapping[str, str]) -> Optional[str]:
    """``AMI_USERNAME``, or its older alias ``AMI_USER``."""
    for name in ENV_NAMES["username"]:
        if environ.get(name):
            return environ[name]
    return None


def config_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    """``$XDG_CONFIG_HOME/amiclient/config.ini`` (``~/.config`` when unset)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "amiclient" / "config.ini"


def _check_private(path: Path, what: str) -> None:
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SettingsError(
            f"{path} holds {what} but its group or others may read it (mode {mode:04o}); run: chmod 600 {path}"
        )


def _check_not_writable(path: Path) -> None:
    """Refuse a config file others may change: they could send the login to a host of theirs."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o022:
        raise SettingsError(
            f"{path} may be changed by its group or others (mode {mode:04o}); run: chmod go-w {path}"
        )


def load_profiles(path: Path) -> Dict[str, Dict[str, str]]:
    """Every ``[NAME]`` section of a config file; an absent file gives none."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00none")
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc.__class__.__name__}") from None
    except configparser.Error as exc:
        raise SettingsError(f"{path} is not a valid config file: {exc.message.splitlines()[0]}") from None
    profiles = {name: dict(parser.items(name)) for name in parser.sections()}
    for name, values in profiles.items():
        unknown = sorted(set(values) - set(_KEYS))
        if unknown:
            raise SettingsError(f"{path}: unknown key {unknown[0]!r} in [{name}] (known: {', '.join(_KEYS)})")
    if any("secret" in values for values in profiles.values()):
        _check_private(path, "a secret")
    _check_not_writable(path)
    return profiles


def read_secret_file(path: str) -> str:
    """The first line of a secret file, which only its owner may read."""
    target = Path(os.path.expanduser(path))
    try:
        _check_private(target, "a secret")
        with open(target, encoding="utf-8") as handle:
            secret = handle.readline().rstrip("\r\n")
    except OSError as exc:
        raise SettingsError(f"cannot read secret file {target}: {exc.strerror or exc.__class__.__name__}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"cannot read secret file {target}: not UTF-8 text") from None
    if not secret:
        raise SettingsError(f"secret file {target} is empty (the secret is its first line)")
    return secret


def _clean_secret(secret: str, source: str) -> str:
    """The secret without the line end a file or an env file leaves; one with control characters is refused."""
    secret = secret.rstrip("\r\n")
    if any(char in secret for char in "\r\n\x00"):
        raise SettingsError(f"the secret from {source} contains CR, LF or NUL")
    return secret


def _to_bool(name: str, value: str, source: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name} from {source} must be yes or no, not {value!r}")


def _to_number(name: str, value: str, source: str, kind: type) -> float:
    try:
        number = kind(value.strip())
    except ValueError:
        raise SettingsError(f"{name} from {source} must be a number, not {value!r}") from None
    if number <= 0 or not math.isfinite(number) or (kind is int and number > 65535):
        raise SettingsError(f"{name} from {source} is out of range: {value!r}")
    return float(number)


def resolve(
    flags: Mapping[str, Optional[str]],
    profile: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    path: Optional[Path] = None,
) -> Settings:
    """Settings from flags (None = not given), a named profile, the environment, ``[default]``.

    The secret may stay None: the caller may then prompt for it.  ``url``
    and ``host`` pick the transport: the one from the higher layer wins
    (``url`` if a layer has both).
    """
    env = os.environ if environ is None else environ
    path = config_path(env) if path is None else path
    profiles = load_profiles(path)
    if profile is not None and profile not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise SettingsError(f"no profile [{profile}] in {path} (profiles: {known})")
    layers: List[Tuple[str, Dict[str, str]]] = [("flag", {k: v for k, v in flags.items() if v is not None})]
    if profile is not None:
        layers.append((f"profile [{profile}]", profiles[profile]))
    env_layer: Dict[str, str] = {}
    env_source: Dict[str, str] = {}
    for key, names in ENV_NAMES.items():
        for name in names:
            if env.get(name):
                env_layer[key], env_source[key] = env[name], name
                break
    layers.append(("environment", env_layer))
    if "default" in profiles and profile != "default":
        layers.append(("profile [default]", profiles["default"]))

    values: Dict[str, str] = {}
    sources: Dict[str, str] = {}
    rank: Dict[str, int] = {}
    for index, (source, layer) in enumerate(layers):
        for key, value in layer.items():
            if key == "secret_file":
                if "secret" in values:
                    continue
                key, value = "secret", read_secret_file(value)
            if key not in values:
                values[key] = value
                sources[key] = env_source.get(key, source) if source == "environment" else source
                rank[key] = index
    settings = Settings(sources=sources)
    if "url" in values and "host" in values and rank["host"] < rank["url"]:
        del values["url"]
    if "url" in values:
        if not values["url"].lower().startswith(("http://", "https://")):
            raise SettingsError(f"url from {sources['url']} must start with http:// or https://")
        if "@" in urlsplit(values["url"]).netloc:  # it would show in every message and log line
            raise SettingsError(f"url from {sources['url']} must not hold a user or secret: "
                                "use username and secret (AMI_USERNAME, AMI_SECRET, --secret-file)")
        settings.url = values["url"]
    if "host" in values:
        settings.host = values["host"]
    if "port" in values:
        settings.port = int(_to_number("port", values["port"], sources["port"], int))
    if "username" in values:
        settings.username = values["username"]
    if "tls" in values:
        settings.tls = _to_bool("tls", values["tls"], sources["tls"])
    if "timeout" in values:
        settings.timeout = _to_number("timeout", values["timeout"], sources["timeout"], float)
    if "cafile" in values:
        settings.cafile = os.path.expanduser(values["cafile"])
        settings.tls = settings.tls or "tls" not in values  # a CA file means TLS unless tls = no
    if "secret" in values:
        settings.secret = _clean_secret(values["secret"], sources["secret"])
    return settings

"""From parsed arguments to a logged-in client: settings, the secret, the transport; and CLI errors."""
from __future__ import annotations

import argparse
import getpass
import ssl
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, TextIO, Union

from .._protocol import HeaderValue, serialize_action
from .._settings import Settings, SettingsError, resolve
from ..client import AMIClient
from ..http import AMIHTTPClient
from ..packet import Response
from ._output import Style

__all__ = [
    "Client", "CLIError", "Context", "EXIT_ACTION", "EXIT_CONNECTION", "EXIT_USAGE",
    "ami_version", "check_action", "open_client", "parse_headers", "request", "settings_from_args",
]

EXIT_ACTION = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3

Client = Union[AMIClient, AMIHTTPClient]


class CLIError(Exception):
    """An error reported in one line on stderr, with the process exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Context:
    """What every subcommand gets: its arguments, where to write, how to style it."""

    args: argparse.Namespace
    out: TextIO
    err: TextIO
    style: Style
    secrets: List[str] = field(default_factory=list)

    def settings(self) -> Settings:
        """The connection settings (the secret is remembered, to be kept out of any output)."""
        settings = settings_from_args(self.args)
        self.secrets.append(settings.secret or "")
        return settings

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***``."""
        for secret in sorted((s for s in self.secrets if s), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def note(self, text: str) -> None:
        """A status line for people (stderr, so stdout stays data)."""
        self.err.write(text + "\n")
        self.err.flush()


_FLAG_NAMES = ("host", "port", "username", "secret", "secret_file", "url", "timeout", "cafile")


def settings_from_args(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Resolve the connection settings and make sure a secret is known (prompting on a TTY)."""
    flags: Dict[str, Optional[str]] = {}
    for name in _FLAG_NAMES:
        value = getattr(args, name, None)
        flags[name] = None if value is None else str(value)
    if getattr(args, "tls", False):
        flags["tls"] = "yes"
    try:
        settings = resolve(flags, getattr(args, "profile", None), environ)
    except SettingsError as exc:
        raise CLIError(str(exc)) from None
    if settings.secret is None:
        if sys.stdin is not None and sys.stdin.isatty():
            secret = getpass.getpass(f"Secret for {settings.username}@{settings.address}: ")
            if any(char in secret for char in "\r\n\x00"):
                raise CLIError("the secret typed contains CR, LF or NUL")
            settings.secret = secret
            settings.sources["secret"] = "prompt"
        else:
            raise CLIError(
                "no secret: use AMI_SECRET, --secret-file FILE, a profile in the config file, or run on a terminal to be asked"
            )
    return settings


def parse_headers(items: List[str]) -> Dict[str, HeaderValue]:
    """``Key=Value`` arguments as action headers; a repeated key repeats the header."""
    headers: Dict[str, HeaderValue] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CLIError(f"expected Key=Value, got {item!r}")
        if key in headers:
            previous = headers[key]
            headers[key] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            headers[key] = value
    return headers


#: Headers whose values are secrets (``Login``'s ``Secret``, the MD5 ``Key``): kept out of every error and log.
SECRET_HEADERS = ("secret", "key")


def header_secrets(headers: Mapping[str, HeaderValue]) -> List[str]:
    """The values of secret headers (``Secret``, ``Key``) in ``headers``."""
    found: List[str] = []
    for key, value in headers.items():
        if key.lower() in SECRET_HEADERS:
            found.extend(value if isinstance(value, list) else [str(value)])
    return found


def check_action(name: str, headers: Mapping[str, HeaderValue]) -> None:
    """Refuse (exit 2) what the server would misread, before connecting."""
    try:
        serialize_action(name, headers)
    except ValueError as exc:
        raise CLIError(f"refused: {exc}") from None


def open_client(settings: Settings, events: bool = False, reconnect: bool = False) -> Client:
    """A logged-in client for ``settings``: AMI over TCP (or TLS), or over HTTP for a URL."""
    secret = settings.secret or ""
    context = None
    if settings.cafile:
        try:
            context = ssl.create_default_context(cafile=settings.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise CLIError(f"cannot load CA file {settings.cafile}: {getattr(exc, 'strerror', None) or exc}") from None
    if settings.url:
        https = settings.url.lower().startswith("https:")
        http_client = AMIHTTPClient(settings.url, settings.username, secret, timeout=settings.timeout,
                                    connect_timeout=settings.timeout, events=events,
                                    tls=(context or True) if https else None)
        try:
            return http_client.connect()
        except BaseException:
            http_client.close()
            raise
    client = AMIClient(
        settings.host, settings.port, settings.username, secret,
        tls=(context or True) if settings.tls else None, timeout=settings.timeout, connect_timeout=settings.timeout,
        events=events, reconnect=reconnect,
    )
    try:
        return client.connect()
    except BaseException:
        client.close()
        raise


def request(client: Client, name: str, headers: Optional[Mapping[str, HeaderValue]] = None) -> Response:
    """Send one action and wait for its response and event list (errors included)."""
    return client.wait(client.send_action(name, headers))


def ami_version(client: Client) -> Optional[str]:
    """The AMI version from the banner (None over HTTP, which has no banner)."""
    return client.ami_version


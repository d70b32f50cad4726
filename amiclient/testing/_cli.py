"""The fake CLI behind the ``Command`` action."""

from __future__ import annotations

import time
from typing import Callable, Dict, Protocol, Tuple, Union, cast

from ._calls import CallSimulator
from ._cli_database import DatabaseHost, database_cli
from ._handlers import ActionTable, HandlerResult
from ._session import Session
from ._wire import Packet, build_response

__all__ = ["CLI_ACTIONS", "CliHost", "act_command", "format_uptime", "run_cli"]


class CliHost(DatabaseHost, Protocol):
    """The server state the CLI uses."""

    command_outputs: Dict[str, Union[str, Callable[[str], str]]]
    asterisk_version: str
    started_at: float

    @property
    def legacy(self) -> bool: ...

    @property
    def calls(self) -> CallSimulator: ...

    def run_cli(self, command: str) -> Tuple[str, bool]: ...

_UNITS = (("year", 31536000), ("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60))


def format_uptime(seconds: int) -> str:
    """``1 minute, 8 seconds`` style durations, as ``core show uptime`` prints them."""
    parts = []
    for name, size in _UNITS:
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            parts.append("%d %s%s" % (count, name, "" if count == 1 else "s"))
    if seconds or not parts:
        parts.append("%d second%s" % (seconds, "" if seconds == 1 else "s"))
    return ", ".join(parts)


def _plural(n: int) -> str:
    return "" if n == 1 else "s"


def _show_channels(server: CliHost) -> str:
    chans = list(server.calls.snapshot().values())
    fmt = "%-20.20s %-20.20s %-7.7s %-30.30s"
    lines = [fmt % ("Channel", "Location", "State", "Application(Data)")]
    for c in chans:
        location = "%s@%s:%d" % (c.exten, c.context, c.priority)
        lines.append(fmt % (c.name, location, c.state_desc, "%s(%s)" % (c.application, c.data)))
    current, processed = server.calls.counters()
    lines.append("%d active channel%s" % (len(chans), _plural(len(chans))))
    lines.append("%d active call%s" % (current, _plural(current)))
    lines.append("%d call%s processed" % (processed, _plural(processed)))
    return "\n".join(lines)


def run_cli(server: CliHost, command: str) -> Tuple[str, bool]:
    """The output of a CLI command (``server.command_outputs`` first) and whether it exists."""
    norm = " ".join(command.split()).lower()
    for key, value in list(server.command_outputs.items()):
        if " ".join(key.split()).lower() == norm:
            return (value(command) if callable(value) else value), True
    database = database_cli(server, command)
    if database is not None:
        return database
    if norm == "core show version":
        text = "Asterisk %s built by amiclient @ fake on a x86_64 running Linux"
        return text % server.asterisk_version, True
    if norm == "core show uptime":
        up = format_uptime(int(time.time() - server.started_at))
        return "System uptime: %s\nLast reload: %s" % (up, up), True
    if norm == "core show channels":
        return _show_channels(server), True
    first_two = " ".join(command.split()[:2])
    message = "No such command '%s' (type 'core show help %s' for other possible commands)"
    return message % (command, first_two), False


_BLACKLIST = (("module", "load"), ("module", "unload"), ("restart", "gracefully"))


def act_command(s: Session, p: Packet) -> HandlerResult:
    """Command: scripted CLI output, in the 14+ or the ≤13 (legacy) format."""
    srv = cast(CliHost, s.server)
    command = p.get("Command", "")
    if not command:
        return build_response(p, "No command provided", "Error")
    words = tuple(w.lower() for w in command.split())
    if any(words[: len(b)] == b for b in _BLACKLIST):
        return build_response(p, "Command blacklisted", "Error")
    output, ok = srv.run_cli(command)
    if srv.legacy:
        if output and not output.endswith("\n"):
            output += "\n"
        head = "Response: Follows\r\nPrivilege: Command\r\n"
        if p.action_id:
            head += "ActionID: %s\r\n" % p.action_id
        return (head + output + "--END COMMAND--\r\n\r\n").encode("utf-8", "surrogateescape")
    if output.endswith("\n"):
        output = output[:-1]
    pairs = build_response(p, "Command output follows", "Success" if ok else "Error")
    pairs.extend(("Output", line) for line in output.split("\n"))
    return pairs


CLI_ACTIONS: ActionTable = [
    ("Command", act_command, "command", "Execute Asterisk CLI Command."),
]

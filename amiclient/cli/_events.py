"""``events``: follow live events until Ctrl-C or N events, filtered on the server where possible.

The server-side ``Filter`` (a POSIX regex on the event text) only narrows
the stream: it is built to let through at least every wanted event.  The
exact match (names and globs, ``Key=Value`` with globs in the value) is
done here, on every event.
"""
from __future__ import annotations

import fnmatch
import threading
from typing import List, Optional, Tuple

from ..exceptions import ClientClosed
from ..packet import Event
from ..state import ConnectionState, StateChange
from ._connect import EXIT_CONNECTION, CLIError, Context, open_client
from ._output import packet_json, packet_text

__all__ = ["run_events", "server_filters"]

_ERE_SPECIAL = set(".[]()*+?{}|^$\\")


def _ere(text: str, any_case: bool = False) -> Optional[str]:
    """A glob as a POSIX extended regex (``*`` and ``?``), or None when it has brackets."""
    if "[" in text:
        return None
    out = []
    for char in text:
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif any_case and char.isalpha():
            out.append(f"[{char.upper()}{char.lower()}]")
        else:
            out.append("\\" + char if char in _ERE_SPECIAL else char)
    return "".join(out)


def _any_case(name: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else ("\\" + c if c in _ERE_SPECIAL else c) for c in name)


def server_filters(names: List[str], matches: List[Tuple[str, str]]) -> List[str]:
    """``Filter`` patterns that pass every wanted event (include filters are OR-ed by Asterisk)."""
    header = None
    if len(matches) == 1:
        key, value = matches[0]
        pattern = _ere(value)
        if pattern is not None:
            header = f"{_any_case(key)}: {pattern}"
    if not names:
        return [header] if header else []
    filters = []
    for name in names:
        pattern = _ere(name, any_case=True)  # event names match in any case, as in add_listener()
        if pattern is None:
            return []  # one name we cannot express: filter nothing on the server
        filters.append(f"Event: {pattern}" + (f".*{header}" if header else ""))
    return filters


def _parse_matches(items: List[str]) -> List[Tuple[str, str]]:
    matches = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--filter expects Key=Value, got {item!r}")
        matches.append((key.strip(), value))
    return matches


def _wanted(event: Event, names: List[str], matches: List[Tuple[str, str]]) -> bool:
    if names and not any(fnmatch.fnmatchcase(event.name.lower(), name.lower()) for name in names):
        return False
    for key, value in matches:
        if not any(fnmatch.fnmatchcase(v, value) for v in event.getlist(key)):
            return False
    return True


def run_events(ctx: Context) -> int:
    """Print matching events as they arrive; stop after ``--count`` or on Ctrl-C."""
    args = ctx.args
    names: List[str] = list(args.names)
    matches = _parse_matches(args.filter or [])
    if args.count < 0:
        raise CLIError("--count must not be negative")
    for text in names + [k + v for k, v in matches]:
        if any(c in text for c in "\r\n\x00"):
            raise CLIError("refused: a name or filter contains CR, LF or NUL")
    settings = ctx.settings()
    lock = threading.Lock()
    done = threading.Event()
    printed = [0]
    broken: List[BaseException] = []
    lost: List[str] = []

    def show(event: Event) -> None:
        if not _wanted(event, names, matches):
            return
        with lock:
            if done.is_set():
                return
            try:
                ctx.out.write(packet_json(event) + "\n" if args.json else packet_text(event, ctx.style))
                ctx.out.flush()
            except (BrokenPipeError, ValueError) as exc:  # reader gone, or stdout closed
                broken.append(exc)
                done.set()
                return
            printed[0] += 1
            if args.count and printed[0] >= args.count:
                done.set()

    def on_state(change: StateChange) -> None:
        if change.state is ConnectionState.DISCONNECTED and not isinstance(change.reason, ClientClosed):
            if args.reconnect:
                ctx.note(ctx.redact(f"amiclient: connection lost ({change.reason}); reconnecting"))
            else:  # events in the gap would be missed without a word: stop, exit 3
                lost.append(f"connection lost: {change.reason}")
                done.set()
        elif change.state is ConnectionState.RECONNECTED:
            ctx.note("amiclient: reconnected")

    client = open_client(settings, events=True, reconnect=args.reconnect)
    with client:
        for pattern in server_filters(names, matches):
            response = client.send_action("Filter", {"Operation": "Add", "Filter": pattern})
            answer = client.wait(response)
            if not answer.ok:  # e.g. no "system" write permission: filter here only
                if args.verbose:
                    ctx.note(f"amiclient: server-side filter refused ({answer.message}); filtering locally")
                break
        client.add_listener(show)
        client.on_state(on_state)
        ctx.note(f"Listening for events on {settings.address} (Ctrl-C to stop)")  # stdout is only events
        while not done.wait(0.5):
            if not args.reconnect and not client.connected:  # lost before on_state was registered
                lost.append("connection lost")
                break
    if broken and isinstance(broken[0], BrokenPipeError):
        raise broken[0]
    if lost and not (args.count and printed[0] >= args.count):
        raise CLIError(f"{lost[0]} (--reconnect to keep following)", EXIT_CONNECTION)
    return 0

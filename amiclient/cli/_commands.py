"""One-shot subcommands: ``action``, ``command``, ``ping``, ``status``, ``info``."""
from __future__ import annotations

import json
import time
from typing import Dict, List, Optional

from ..packet import Packet, Response
from ._connect import (
    EXIT_ACTION,
    Client,
    CLIError,
    Context,
    ami_version,
    check_action,
    header_secrets,
    open_client,
    parse_headers,
    request,
)
from ._output import is_tty, packet_json, packet_text, safe_text, table, terminal_width

__all__ = ["run_action", "run_command", "run_info", "run_ping", "run_status"]


def _packets(response: Response) -> List[Packet]:
    packets: List[Packet] = [response, *response.events]
    if response.complete_event is not None:
        packets.append(response.complete_event)
    return packets


def _fail(ctx: Context, response: Response, what: str) -> int:
    message = safe_text(ctx.redact(f"{response.status}: {response.message or '(no message)'}"))
    ctx.err.write(ctx.style.error(f"amiclient: {what}: {message}") + "\n")
    return EXIT_ACTION


def run_action(ctx: Context) -> int:
    """``action NAME [Key=Value ...]``: the response, then its event list."""
    args = ctx.args
    headers = parse_headers(args.headers)
    ctx.secrets.extend(header_secrets(headers))
    check_action(args.name, headers)
    settings = ctx.settings()
    with open_client(settings) as client:
        response = request(client, args.name, headers)
    for packet in _packets(response):
        ctx.out.write(packet_json(packet) + "\n" if args.json else packet_text(packet, ctx.style))
    ctx.out.flush()
    return 0 if response.ok else _fail(ctx, response, args.name)


def run_command(ctx: Context) -> int:
    """``command TEXT``: the CLI output, like ``asterisk -rx`` (control characters escaped on a terminal)."""
    text = " ".join(ctx.args.text)
    if not text.strip():
        raise CLIError("command: nothing to run (e.g. amiclient command core show uptime)")
    check_action("Command", {"Command": text})
    with open_client(ctx.settings()) as client:
        response = request(client, "Command", {"Command": text})
    output = response.output
    if not response.ok or output.startswith("No such command '"):  # Asterisk <= 13 answers it with Follows
        if output:
            ctx.err.write(safe_text(output.rstrip("\n"), newlines=True) + "\n")
        if response.ok:
            ctx.err.write(ctx.style.error("amiclient: command: no such command") + "\n")
            return EXIT_ACTION
        return _fail(ctx, response, "command")
    if output:  # the server took one trailing LF off the CLI text: put it back
        ctx.out.write((safe_text(output, newlines=True) if is_tty(ctx.out) else output) + "\n")
    return 0


def run_ping(ctx: Context) -> int:
    """``ping``: round-trip times of ``Ping`` actions."""
    args = ctx.args
    if args.count < 1 or args.interval < 0:
        raise CLIError("--count must be at least 1 and --interval not negative")
    settings = ctx.settings()
    with open_client(settings) as client:
        for seq in range(1, args.count + 1):
            if seq > 1:
                time.sleep(args.interval)
            start = time.perf_counter()
            response = request(client, "Ping")
            rtt = (time.perf_counter() - start) * 1000.0
            if not response.ok:
                return _fail(ctx, response, "Ping")
            if args.json:
                ctx.out.write(json.dumps({"seq": seq, "address": settings.address, "rtt_ms": round(rtt, 3),
                                          "ping": response.get("Ping", "")}) + "\n")
            else:
                ctx.out.write(f"{safe_text(response.get('Ping', 'Pong'))} from {settings.address}: seq={seq} time={rtt:.2f} ms\n")
            ctx.out.flush()
    return 0


_STATUS_COLUMNS = ("Channel", "State", "CallerID", "Location", "Application", "Duration")


def _status_row(event: Packet) -> List[str]:
    location = f"{event.get('Exten', '')}@{event.get('Context', '')}:{event.get('Priority', '')}"
    app = event.get("Application", "")
    if app and event.get("ApplicationData"):
        app += f"({event.get('ApplicationData')})"
    caller = event.get("CallerIDNum", "")
    if caller in ("<unknown>",):
        caller = ""
    return [event.get("Channel", ""), event.get("ChannelStateDesc", ""), caller, location, app, event.get("Duration", "")]


def run_status(ctx: Context) -> int:
    """``status``: the active channels (``CoreShowChannels``) as a table."""
    with open_client(ctx.settings()) as client:
        response = request(client, "CoreShowChannels")
    if not response.ok:
        return _fail(ctx, response, "CoreShowChannels")
    channels = [e for e in response.events if e.name == "CoreShowChannel"]
    if ctx.args.json:
        for event in channels:
            ctx.out.write(packet_json(event) + "\n")
        return 0
    if channels:
        rows = [_status_row(e) for e in channels]
        ctx.out.write(table(_STATUS_COLUMNS, rows, ctx.style, terminal_width(ctx.out)))
    count = len(channels)
    ctx.out.write(f"{count} active channel{'' if count == 1 else 's'}\n")
    return 0


def _soft(ctx: Context, client: Client, name: str, headers: Optional[Dict[str, str]] = None) -> Optional[Response]:
    response = request(client, name, headers)
    if response.ok:
        return response
    if ctx.args.verbose:
        ctx.note(f"amiclient: {name}: {response.message or response.status}")
    return None


def run_info(ctx: Context) -> int:
    """``info``: Asterisk and AMI versions, uptime, calls (banner, CoreSettings, CoreStatus)."""
    settings = ctx.settings()
    with open_client(settings) as client:
        banner = ami_version(client)
        core = _soft(ctx, client, "CoreSettings")
        status = _soft(ctx, client, "CoreStatus")
        uptime_cli = _soft(ctx, client, "Command", {"Command": "core show uptime"})
    if core is None and status is None:
        raise CLIError("the server refused CoreSettings and CoreStatus (the user needs read=system)", EXIT_ACTION)
    uptime = None
    if uptime_cli is not None:
        first = uptime_cli.output.split("\n", 1)[0]
        if first.startswith("System uptime:"):
            uptime = first.partition(":")[2].strip()
    core = core or Response()
    status = status or Response()
    started = " ".join(filter(None, (status.get("CoreStartupDate"), status.get("CoreStartupTime")))) or None
    info: Dict[str, Optional[str]] = {
        "server": settings.address,
        "asterisk_version": core.get("AsteriskVersion"),
        "ami_version": banner or core.get("AMIversion"),
        "system_name": core.get("SystemName") or None,
        "started": started,
        "uptime": uptime,
        "current_calls": status.get("CoreCurrentCalls"),
        "processed_calls": status.get("CoreProcessedCalls"),
    }
    if ctx.args.json:
        ctx.out.write(json.dumps(info) + "\n")
        return 0
    labels = {
        "server": "Server", "asterisk_version": "Asterisk", "ami_version": "AMI version", "system_name": "System name",
        "started": "Started", "uptime": "Uptime", "current_calls": "Active calls", "processed_calls": "Calls processed",
    }
    width = max(len(label) for label in labels.values()) + 1
    for key, label in labels.items():
        value = info[key]
        if value is not None:
            ctx.out.write(f"{ctx.style.key((label + ':').ljust(width))} {safe_text(value)}\n")
    return 0

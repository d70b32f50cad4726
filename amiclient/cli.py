"""Command line: ``amiclient demo`` (against the bundled fake Asterisk), or talk to a real server.

::

    amiclient demo
    AMI_SECRET=... amiclient --host pbx --user admin action Ping
    AMI_SECRET=... amiclient --host pbx --user admin command "core show channels"
    AMI_SECRET=... amiclient --host pbx --user admin events --event Hangup --count 10
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import Dict, List, Optional, Sequence, TextIO

from .client import AMIClient
from .exceptions import AMIError
from .packet import Packet

__all__ = ["main", "run_demo"]


def _show(packet: Packet, out: TextIO) -> None:
    for key, value in packet.items_all():
        out.write(f"{key}: {value}\n")
    out.write("\n")


def run_demo(out: TextIO = sys.stdout) -> int:
    """Start a fake Asterisk on loopback, connect, run a few actions and show the events they cause."""
    from .testing import FakeAMIServer

    with FakeAMIServer(users={"admin": "s3cr3t"}) as server:
        out.write(f"Fake Asterisk listening on 127.0.0.1:{server.port}\n")
        with AMIClient("127.0.0.1", server.port, "admin", "s3cr3t") as client:
            out.write(f"Logged in (MD5 challenge), AMI version {client.ami_version}\n\n")
            hangups = threading.Event()
            seen: List[str] = []

            @client.on(["Newchannel", "Hangup", "OriginateResponse"])
            def on_call_event(event: Packet) -> None:
                seen.append(f"  event {event['Event']:<18} {event.get('Channel', '')}")
                if event["Event"] == "Hangup" and sum("Hangup" in line for line in seen) == 2:
                    hangups.set()

            pong = client.ping()
            out.write(f"Ping -> {pong['Ping']} (ActionID {pong.action_id})\n")
            out.write("core show uptime ->\n  " + client.command("core show uptime").replace("\n", "\n  ") + "\n")
            client.db_put("demo", "greeting", "hello: world")
            out.write(f"DBGet demo/greeting -> {client.db_get('demo', 'greeting')!r}\n")
            response = client.originate("Local/100@demo", application="Wait", data="1")
            out.write(f"Originate -> {response.message}\n")
            hangups.wait(5.0)
            out.write("\n".join(seen) + "\n")
            out.write(f"\nStats: {client.stats.as_dict()}\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amiclient", description="Asterisk Manager Interface client")
    parser.add_argument("--host", default=os.environ.get("AMI_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("AMI_PORT", "0")) or None)
    parser.add_argument("--user", default=os.environ.get("AMI_USER", "admin"))
    parser.add_argument("--secret", default=None, help="default: $AMI_SECRET (prefer it: argv is visible to ps)")
    parser.add_argument("--tls", action="store_true", help="AMI over TLS (port 5039)")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run against the bundled fake Asterisk")
    action = commands.add_parser("action", help="send one action and print the response")
    action.add_argument("name")
    action.add_argument("headers", nargs="*", metavar="Key=Value")
    cli = commands.add_parser("command", help="run a CLI command and print its output")
    cli.add_argument("text")
    events = commands.add_parser("events", help="print events as they arrive")
    events.add_argument("--event", action="append", help="event name or glob (repeatable)")
    events.add_argument("--count", type=int, default=0, help="stop after N events (0 = never)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``amiclient`` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "demo":
            return run_demo()
        return _run_remote(args)
    except AMIError as exc:
        sys.stderr.write(f"amiclient: {exc}\n")
        return 1
    except ValueError as exc:  # caller data that cannot be sent as given: nothing was sent
        sys.stderr.write(f"amiclient: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run_remote(args: argparse.Namespace) -> int:
    secret = args.secret if args.secret is not None else os.environ.get("AMI_SECRET", "")
    wants_events = args.command == "events"
    with AMIClient(args.host, args.port, args.user, secret, tls=args.tls or None, timeout=args.timeout,
                   events=wants_events, reconnect=wants_events) as client:
        if args.command == "action":
            headers: Dict[str, List[str]] = {}
            for item in args.headers:
                key, sep, value = item.partition("=")
                if not sep:
                    raise ValueError(f"not Key=Value: {item[:60]!r}")
                headers.setdefault(key, []).append(value)  # a repeated key is sent every time
            _show(client.send_action(args.name, headers).result(args.timeout + 1), sys.stdout)
            return 0
        if args.command == "command":
            sys.stdout.write(client.command(args.text) + "\n")
            return 0
        done = threading.Event()
        count = [0]

        def show(event: Packet) -> None:
            _show(event, sys.stdout)
            sys.stdout.flush()
            count[0] += 1
            if args.count and count[0] >= args.count:
                done.set()

        client.add_listener(show, event=args.event)
        while not done.wait(1.0):
            pass
        return 0

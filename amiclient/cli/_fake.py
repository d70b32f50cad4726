"""``fake-server`` (the bundled fake Asterisk, standalone) and ``demo`` (a tour against it)."""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, Dict, Iterator, List, Optional, TextIO

from ..client import AMIClient
from ..packet import Packet
from ._connect import EXIT_CONNECTION, CLIError, Context
from ._output import Style, table

__all__ = ["run_demo", "run_fake_server"]


def _users(items: List[str]) -> Dict[str, str]:
    users: Dict[str, str] = {}
    for item in items:
        name, sep, secret = item.partition(":")
        if not sep or not name:
            raise CLIError(f"--users expects NAME:SECRET, got {item.partition(':')[0]!r}...")
        users[name] = secret
    return users


class _Traffic:
    """Simulated calls at a steady rate, on one thread, until stopped."""

    def __init__(self, server: Any, per_second: float) -> None:
        self.server = server
        self.interval = 1.0 / per_second
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="amiclient-fake-traffic", daemon=True)

    def _run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += self.interval
            n += 1
            self.server.simulate_call(f"PJSIP/{1000 + n % 50}", exten="100", application="Dial",
                                      data=f"PJSIP/{2000 + n % 50},30", hold=False)

    def __enter__(self) -> _Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


@contextlib.contextmanager
def _listening(host: str, port: int) -> Iterator[None]:
    """Turn a failure to listen (port in use, address not here) into a one-line error, exit 3."""
    try:
        yield
    except OSError as exc:
        raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_CONNECTION) from None


def run_fake_server(ctx: Context) -> int:
    """Serve a fake Asterisk manager (and optionally AJAM over HTTP) until Ctrl-C or SIGTERM."""
    from ..testing import FakeAJAMServer, FakeAMIServer

    args = ctx.args
    users = _users(args.users or ["admin:secret"])
    if args.calls_per_second < 0 or args.call_duration < 0:
        raise CLIError("--calls-per-second and --call-duration must not be negative")
    if args.calls_per_second > 1000:
        raise CLIError("--calls-per-second: at most 1000")
    stopped = threading.Event()

    def on_term(signum: int, frame: Optional[FrameType]) -> None:
        stopped.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        server = FakeAMIServer(users=users, host=args.bind, port=args.listen_port, call_duration=args.call_duration)
        with _listening(args.bind, args.listen_port):
            server.start()
        with server:
            http = FakeAJAMServer(server, host=args.bind, port=args.http_port) if args.http_port is not None else None
            try:
                if http is not None:
                    with _listening(args.bind, args.http_port):
                        http.start()
                who = ", ".join(sorted(users)) if args.users else "admin, secret: secret"
                ctx.out.write(f"Fake Asterisk manager listening on {args.bind}:{server.port} (users: {who})\n")
                if http is not None:
                    ctx.out.write(f"AJAM over HTTP at {http.url}\n")
                ctx.out.write("Press Ctrl-C to stop.\n")
                ctx.out.flush()
                if args.calls_per_second > 0:
                    with _Traffic(server, args.calls_per_second):
                        while not stopped.wait(0.5):
                            pass
                else:
                    while not stopped.wait(0.5):
                        pass
            finally:
                if http is not None:
                    http.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    ctx.note("amiclient: fake server stopped")
    return 0


def run_demo(out: TextIO = sys.stdout, duration: float = 0.0, style: Optional[Style] = None) -> int:
    """Start a fake Asterisk on loopback, connect, run a few actions and show the events they cause.

    With ``duration``, simulated calls then run for that many seconds, shown
    as they happen, and the channel table at the end.
    """
    from ..testing import FakeAMIServer

    style = style or Style(False)
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
            out.flush()
            if duration > 0:
                _demo_traffic(client, server, duration, out, style)
            out.write(f"\nStats: {client.stats.as_dict()}\n")
    return 0


def _demo_traffic(client: AMIClient, server: Any, duration: float, out: TextIO, style: Style) -> None:
    lock = threading.Lock()

    def live(event: Packet) -> None:
        with lock:
            out.write(f"  {style.bold(format(event.get('Event', ''), '<18'))} {event.get('Channel', '')}\n")
            out.flush()

    out.write(f"\nSimulated calls for {duration:g} s:\n")
    server.call_duration = 1.0
    handle = client.add_listener(live, event=["Newchannel", "Hangup"])
    with _Traffic(server, 2.0) as traffic:
        traffic.stop.wait(duration)
    channels = client.action("CoreShowChannels").events
    client.remove_listener(handle)
    with lock:
        rows = [[e.get("Channel", ""), e.get("ChannelStateDesc", ""), e.get("Duration", "")] for e in channels]
        out.write("\nActive channels:\n" + table(("Channel", "State", "Duration"), rows, style))

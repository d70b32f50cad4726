"""The ``amiclient`` argument parser: connection options (before or after the subcommand) and subcommands."""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable, Dict

__all__ = ["build_parser"]

_DESCRIPTION = """\
Talk to an Asterisk Manager Interface (AMI) from the shell.

Connection settings, first found wins: options; the profile named by
--profile; the environment (AMI_HOST, AMI_PORT, AMI_USERNAME, AMI_SECRET,
AMI_TLS, AMI_URL, AMI_TIMEOUT, AMI_CAFILE); the [default] profile of
$XDG_CONFIG_HOME/amiclient/config.ini (~/.config/amiclient/config.ini):

    [default]
    host = pbx.example.com
    username = admin
    secret = s3cr3t        ; the file must then be chmod 600

Exit codes: 0 ok, 1 the server answered Error, 2 usage, 3 connection or
login failure, 130 interrupted.
"""

_EXAMPLES: Dict[str, str] = {
    "action": """examples:
  amiclient action Ping
  amiclient action DBGetTree Family=cidname
  amiclient action Originate Channel=PJSIP/100 Exten=200 Context=default Priority=1 Async=true
  amiclient action Setvar Variable=FOO Value=bar --json
  amiclient action Originate Channel=Local/100@default Application=Wait Data=5 \\
      Variable=CALLERID(name)=Alice Variable=FOO=bar    # a repeated key repeats the header""",
    "command": """examples:
  amiclient command core show channels
  amiclient command "pjsip show endpoints\"""",
    "events": """examples:
  amiclient events                          # everything, until Ctrl-C
  amiclient events Hangup 'Queue*' --count 10
  amiclient events Newchannel --filter Channel='PJSIP/100*' --json
  amiclient events Hangup --reconnect >> hangups.log   # follow across Asterisk restarts""",
    "ping": """examples:
  amiclient ping
  amiclient ping --count 5 --interval 0.2""",
    "status": """examples:
  amiclient status
  amiclient status --json | jq .Channel""",
    "info": """examples:
  amiclient info
  amiclient --profile prod info --json""",
    "fake-server": """examples:
  amiclient fake-server                              # 127.0.0.1:5038, admin:secret
  amiclient fake-server --port 15038 --users admin:pw ops:pw2 --calls-per-second 2
  amiclient fake-server --http-port 8088             # also AJAM at http://127.0.0.1:8088/asterisk/""",
    "demo": """examples:
  amiclient demo
  amiclient demo --duration 5""",
}


def _seconds(text: str) -> float:
    """A finite, non-negative number of seconds (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, not negative: {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    """A finite number of seconds above 0 (argparse type)."""
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535: {text!r}")
    return value


def _connection_options(defaults: Any) -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand (``defaults``: None or SUPPRESS)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--profile", metavar="NAME", default=defaults, help="a [NAME] section of the config file")
    group.add_argument("--host", default=defaults, help="AMI host (default 127.0.0.1)")
    group.add_argument("--port", type=int, default=defaults, help="AMI port (default 5038, 5039 with --tls)")
    group.add_argument("-u", "--username", "--user", dest="username", default=defaults, help="manager user (default admin)")
    secret = group.add_mutually_exclusive_group()
    secret.add_argument("--secret-file", metavar="FILE", default=defaults,
                        help="read the secret from the first line of FILE (mode 600)")
    secret.add_argument("--secret", default=defaults, help=argparse.SUPPRESS)  # visible to ps: prefer the others
    group.add_argument("--tls", action="store_true", default=defaults, help="AMI over TLS (verified with the system CAs)")
    group.add_argument("--cafile", metavar="PEM", default=defaults,
                       help="verify the TLS/https server with these CA certificates (implies --tls)")
    group.add_argument("--url", default=defaults, help="AMI over HTTP: http(s)://host:8088/asterisk/")
    group.add_argument("--timeout", type=_positive_seconds, default=defaults, help="seconds per action (default 10)")
    _display_options(parent, defaults)
    return parent


def _display_options(parent: argparse.ArgumentParser, defaults: Any) -> argparse.ArgumentParser:
    group = parent.add_argument_group("output")
    group.add_argument("-v", "--verbose", action="store_true", default=defaults, help="log protocol details to stderr")
    group.add_argument("--color", choices=("auto", "always", "never"), default=defaults,
                       help="colour output (default auto: on a terminal, unless NO_COLOR is set)")
    return parent


def build_parser(handlers: Dict[str, Callable[..., int]]) -> argparse.ArgumentParser:
    """The parser; each subcommand stores its handler from ``handlers`` as ``func``."""
    parser = argparse.ArgumentParser(
        prog="amiclient", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_connection_options(None)],
    )
    common = _connection_options(argparse.SUPPRESS)
    display = _display_options(argparse.ArgumentParser(add_help=False), argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    commands.required = True

    def add(name: str, help: str, remote: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, epilog=_EXAMPLES[name],
                                  parents=[common if remote else display],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(func=handlers[name])
        return sub

    action = add("action", "send one action; print its response and event list")
    action.add_argument("name", metavar="NAME", help="the action, e.g. Ping, DBGetTree, Originate")
    action.add_argument("headers", nargs="*", metavar="Key=Value", help="headers; repeat a key to repeat the header")
    action.add_argument("--json", action="store_true", help="one JSON object per packet, response first")

    command = add("command", "run an Asterisk CLI command and print its output, like asterisk -rx")
    command.add_argument("text", nargs="+", metavar="TEXT", help="the CLI command (quoted or as separate words)")

    events = add("events", "print live events until Ctrl-C or --count")
    events.add_argument("names", nargs="*", metavar="NAME|GLOB", help="event names or globs (default: all)")
    events.add_argument("--filter", action="append", metavar="Key=Value",
                        help="only events with this header value (glob; repeatable, all must match)")
    events.add_argument("--count", type=int, default=0, metavar="N", help="stop after N events (default: never)")
    events.add_argument("--json", action="store_true", help="one JSON object per event")
    events.add_argument("--reconnect", action="store_true",
                        help="when the connection drops, reconnect and keep following (default: exit 3)")

    ping = add("ping", "measure the round-trip time of Ping")
    ping.add_argument("-c", "--count", type=int, default=1, metavar="N", help="how many pings (default 1)")
    ping.add_argument("-i", "--interval", type=_seconds, default=1.0, metavar="S", help="seconds between pings")
    ping.add_argument("--json", action="store_true", help="one JSON object per ping")

    status = add("status", "list the active channels (CoreShowChannels)")
    status.add_argument("--json", action="store_true", help="one JSON object per channel")

    info = add("info", "Asterisk version, AMI version, uptime and calls")
    info.add_argument("--json", action="store_true", help="one JSON object")

    fake = add("fake-server", "run the bundled fake Asterisk manager until Ctrl-C (for developing against)", remote=False)
    fake.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="address to listen on (default 127.0.0.1)")
    fake.add_argument("--port", dest="listen_port", type=_port, default=5038, metavar="PORT",
                      help="AMI port (default 5038; 0 picks a free one)")
    fake.add_argument("--users", nargs="+", metavar="NAME:SECRET", help="manager users (default admin:secret)")
    fake.add_argument("--calls-per-second", type=_seconds, default=0.0, metavar="N", help="simulate N calls per second")
    fake.add_argument("--call-duration", type=_seconds, default=3.0, metavar="S", help="seconds each simulated call lasts")
    fake.add_argument("--http-port", type=_port, default=None, metavar="PORT", help="also serve AJAM over HTTP here")

    demo = add("demo", "a tour against a fake Asterisk started in-process", remote=False)
    demo.add_argument("--duration", type=_seconds, default=0.0, metavar="S", help="then simulate calls for S seconds")
    return parser

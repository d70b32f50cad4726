"""The ``amiclient`` command: AMI from the shell, like ``asterisk -rx`` from any machine.

::

    amiclient demo
    AMI_HOST=pbx AMI_USERNAME=admin AMI_SECRET=... amiclient action DBGetTree Family=cidname
    amiclient --profile prod command core show channels
    amiclient events Hangup --filter Cause=16 --count 10 --json
    amiclient ping | status | info
    amiclient fake-server --port 5038 --users admin:secret --calls-per-second 2

Errors are one line on stderr; exit codes: 0 ok, 1 ``Response: Error``, 2
usage, 3 connection or login failure, 130 Ctrl-C, 143 SIGTERM (both after a
clean logoff).  The secret never appears in any output.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import traceback
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator, List, Optional, Sequence, TextIO

from ..exceptions import ActionError, ActionTimeout, AMIConnectionError, AMIError, AuthenticationError, ProtocolError
from ._commands import run_action, run_command, run_info, run_ping, run_status
from ._connect import EXIT_ACTION, EXIT_CONNECTION, EXIT_USAGE, CLIError, Context, open_client
from ._events import run_events
from ._fake import run_demo, run_fake_server
from ._output import Style, safe_text, use_colour
from ._parser import build_parser

__all__ = ["main", "open_client", "run_demo"]

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that everything unwinds (logoff, threads joined) like Ctrl-C."""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`_Terminated` (main thread only: signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Optional[FrameType]) -> Any:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _demo(ctx: Context) -> int:
    if ctx.args.duration < 0:
        raise CLIError("--duration must not be negative")
    return run_demo(ctx.out, ctx.args.duration, ctx.style)


_HANDLERS = {
    "action": run_action, "command": run_command, "events": run_events, "ping": run_ping,
    "status": run_status, "info": run_info, "fake-server": run_fake_server, "demo": _demo,
}


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


#: ``Secret: ...`` and ``Key: ...`` header lines, should a packet ever be logged (the MD5 Key is not known here).
_WIRE_SECRET = re.compile(r"(?im)((?:^|\\r\\n|\r\n|\n)[ \t]*(?:secret|key)[ \t]*:[ \t]*)[^\r\n\\]+")


class _RedactingFormatter(logging.Formatter):
    """Formats a log record, then replaces the secrets in the whole text (message, traceback, stack):
    defence in depth, the library never logs them."""

    def __init__(self, fmt: str, secrets: List[str]) -> None:
        super().__init__(fmt)
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        text = _WIRE_SECRET.sub(r"\1***", _redact(super().format(record), self.secrets))
        return safe_text(text, newlines=True)


def _log_handler(err: TextIO, secrets: List[str], verbose: bool) -> logging.Handler:
    handler = logging.StreamHandler(err)
    fmt = "%(asctime)s %(name)s %(levelname)s %(message)s" if verbose else "amiclient: %(levelname)s: %(message)s"
    handler.setFormatter(_RedactingFormatter(fmt, secrets))
    return handler


def _one_line(text: str, secrets: Sequence[str]) -> str:
    return safe_text(" ".join(_redact(text, secrets).split())) or "error"


def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Entry point of the ``amiclient`` command; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser(_HANDLERS).parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    secrets: List[str] = []
    if getattr(args, "secret", None):
        secrets.append(args.secret)
    for stream in (out, err):  # a value the terminal cannot show is escaped, never an error mid-output
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (OSError, ValueError):
                pass
    handler = _log_handler(err, secrets, bool(args.verbose))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    ctx = Context(args, out, err, Style(use_colour(out, args.color or "auto")), secrets=secrets)
    err_style = Style(use_colour(err, args.color or "auto"))
    if getattr(args, "secret", None):
        ctx.note("amiclient: warning: --secret is visible to other users (ps, shell history); "
                 "prefer --secret-file, AMI_SECRET or a profile")

    def fail(message: str, code: int) -> int:
        try:
            err.write(err_style.error("amiclient: " + _one_line(message, secrets)) + "\n")
            err.flush()
        except (OSError, ValueError):
            pass
        return code

    try:
        with _sigterm_unwinds():
            return int(args.func(ctx))
    except _Terminated:
        return fail("terminated", EXIT_TERMINATED)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except CLIError as exc:
        return fail(str(exc), exc.code)
    except ValueError as exc:  # caller data the protocol layer refused
        return fail(f"refused: {exc}", EXIT_USAGE)
    except AuthenticationError as exc:
        return fail(str(exc), EXIT_CONNECTION)
    except ActionError as exc:
        return fail(str(exc), EXIT_ACTION)
    except (AMIConnectionError, ActionTimeout, ProtocolError) as exc:
        return fail(str(exc), EXIT_CONNECTION)
    except BrokenPipeError:  # output piped into `head` and the like
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except OSError as exc:
        return fail(f"{exc.strerror or exc}", EXIT_CONNECTION)
    except AMIError as exc:
        return fail(str(exc), EXIT_ACTION)
    except Exception as exc:  # a bug: still one line, the traceback only with --verbose
        if args.verbose:
            traceback.print_exc(file=err)
        return fail(f"internal error: {exc.__class__.__name__}: {exc}", EXIT_ACTION)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)

"""The ``amiclient`` command: AMI from the shell, like ``asterisk -rx`` from any machine.

::

    amiclient demo
    AMI_HOST=pbx AMI_USERNAME=admin AMI_SECRET=... amiclient action DBGetTree Family=cidname
    amiclient --profile prod command core show channels
    amiclient events Hangup --filter Cause=16 --count 10 --json
    amiclient ping | status | info
    amiclient fake-server --port 5038 --users admin:secret --calls-per-second 2

Errors are one line on stderr; exit codes: 0 ok, 1 ``Response: Error``, 2
usage, 3 connection or login failure, 130 Ctrl-C.  The secret never
appears in any output.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import List, Optional, Sequence, TextIO

from ..exceptions import ActionError, ActionTimeout, AMIConnectionError, AMIError, AuthenticationError, ProtocolError
from ._commands import run_action, run_command, run_info, run_ping, run_status
from ._connect import EXIT_ACTION, EXIT_CONNECTION, EXIT_USAGE, CLIError, Context, open_client
from ._events import run_events
from ._fake import run_demo, run_fake_server
from ._output import Style, use_colour
from ._parser import build_parser

__all__ = ["main", "open_client", "run_demo"]

EXIT_INTERRUPTED = 130


def _demo(ctx: Context) -> int:
    if ctx.args.duration < 0:
        raise CLIError("--duration must not be negative")
    return run_demo(ctx.out, ctx.args.duration, ctx.style)


_HANDLERS = {
    "action": run_action, "command": run_command, "events": run_events, "ping": run_ping,
    "status": run_status, "info": run_info, "fake-server": run_fake_server, "demo": _demo,
}


class _Redact(logging.Filter):
    """Replaces the secret in log lines (defence in depth: the library never logs it)."""

    def __init__(self, secrets: List[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for s in self.secrets if s]
        if secrets:
            message = record.getMessage()
            for secret in secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def _one_line(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(text.split()) or "error"


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
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(_Redact(secrets))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    ctx = Context(args, out, err, Style(use_colour(out, args.color or "auto")), secrets=secrets)
    err_style = Style(use_colour(err, args.color or "auto"))

    def fail(message: str, code: int) -> int:
        try:
            err.write(err_style.error("amiclient: " + _one_line(message, secrets)) + "\n")
            err.flush()
        except (OSError, ValueError):
            pass
        return code

    try:
        return int(args.func(ctx))
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

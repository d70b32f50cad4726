"""One process-wide client for web apps (Django, Flask) and pre-forking servers.

::

    # settings.py / app factory: nothing connects yet
    from amiclient.shared import shared_client

    def hangup_view(request, channel):
        shared_client().hangup(channel)   # connects on first use, in each worker

Options come from the first call's keyword arguments, or else from the
environment: ``AMI_HOST``, ``AMI_PORT``, ``AMI_USERNAME`` (or ``AMI_USER``), ``AMI_SECRET``,
``AMI_TLS`` (``1``), ``AMI_EVENTS`` (``on``/``off``/class list; default
``off``: web views usually only send actions).

The client is thread-safe and connects lazily.  After ``fork()`` (gunicorn
``--preload``, uwsgi, multiprocessing) the child drops the parent's socket
and threads and connects again on first use; the parent's session is left
untouched.
"""
from __future__ import annotations

import atexit
import os
import threading
from typing import Any, Dict, Optional

from .client import AMIClient

__all__ = ["shared_client", "close_shared_client", "options_from_env"]

_lock = threading.Lock()
_client: Optional[AMIClient] = None


def options_from_env(environ: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """AMIClient options from ``AMI_*`` environment variables."""
    env = os.environ if environ is None else environ
    options: Dict[str, Any] = {
        "host": env.get("AMI_HOST", "127.0.0.1"),
        "username": env.get("AMI_USERNAME") or env.get("AMI_USER", ""),
        "secret": env.get("AMI_SECRET", ""),
        "events": env.get("AMI_EVENTS", "off"),
    }
    if env.get("AMI_PORT"):
        options["port"] = int(env["AMI_PORT"])
    if env.get("AMI_TLS", "").lower() in ("1", "true", "yes", "on"):
        options["tls"] = True
    return options


def shared_client(**options: Any) -> AMIClient:
    """The process-wide client, created on the first call (later calls ignore ``options``)."""
    global _client
    with _lock:
        if _client is None or _client.closed:
            settings = options or options_from_env()
            settings.setdefault("lazy", True)
            _client = AMIClient(**settings)
        return _client


def close_shared_client() -> None:
    """Close the process-wide client (a later :func:`shared_client` makes a new one)."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None:
        client.close()


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork() time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)
atexit.register(close_shared_client)

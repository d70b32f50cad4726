"""The threaded AMI client: one public class, assembled from parts with one job each.

Where things happen (a newcomer's map):

* ``_lifecycle.py``: connect (one shared attempt, never under the client
  lock), waiting for a live link, close, fork;
* ``_sending.py``: the send path: serialise, register, write, wait, with
  one deadline per call (transport-neutral apart from the link's ``send``);
* ``_tcp_reader.py``: the TCP transport's io thread, where a packet is
  read (``_connection.Connection.run``), matched to its action
  (``_tracker.ActionTracker.route``) and events are handed to the
  dispatcher (``_listeners.Dispatcher``); keepalive and reconnect;
  ``_connection.py`` owns the socket, ``_writing.py`` its writes (group
  commit, deadlines), ``_readright.py`` who reads it (the io thread, or a
  caller waiting alone);
* ``_subscriptions.py``: listeners and state callbacks (run on the
  dispatcher thread); ``_callbacks.py``: futures' done-callbacks (run on
  callback threads); ``actions.py``: typed helpers for common actions.

Threads: the io thread (reads; connects and reconnects), the dispatcher
(listeners, state callbacks) and, on demand, callback threads (futures'
done-callbacks).  No user code ever runs on the io thread.
"""
from __future__ import annotations

import itertools
import logging
import ssl
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ._callbacks import CallbackRunner
from ._lifecycle import Lifecycle
from ._listeners import Dispatcher, ListenerRegistry
from ._protocol import DEFAULT_MAX_PACKET_SIZE
from ._sending import Sender, checked_default_timeout
from ._subscriptions import ListenerAPI
from ._tcp_reader import TcpReader
from ._tracker import ActionFuture
from .actions import ActionHelpers
from .catalog import CatalogAPI, check_validate_mode
from .packet import Response
from .retry import Backoff
from .state import ClientStats, ConnectionState, StateChange

__all__ = ["AMIClient", "ClientStats", "ConnectionState", "StateChange", "ActionFuture"]

log = logging.getLogger("amiclient.client")


class AMIClient(Lifecycle, Sender, TcpReader, ListenerAPI, ActionHelpers, CatalogAPI):
    """A thread-safe client for one Asterisk Manager Interface login.

    ``events``: True (all the user may read), False (none: an action-only
    connection) or a class list such as ``"call,system"``.  ``timeout`` is
    the default per-action timeout in seconds, counted from the call (time
    spent waiting for a link included).  ``tls``: None, True (verify with
    the system CAs) or an ``ssl.SSLContext``.  With ``reconnect`` (the
    default) a dropped link is re-established with ``backoff``, logged in
    again, and the event mask and filters set through this client are
    re-applied; actions in flight fail with ConnectionLost and are never
    re-sent.  Actions sent while reconnecting wait for the link up to their
    timeout.  Without ``reconnect``, :meth:`connect` after a drop opens a
    new link.  ``lazy``: connect on first use instead of on
    :meth:`connect` (all first users share one attempt).

    ``keepalive``: seconds of silence before a Ping (0 = off); a Ping
    unanswered within ``ping_timeout`` drops the link, except while an
    action whose timeout is longer than ``ping_timeout`` is in flight:
    Asterisk runs an action in the session's own thread, so during a
    synchronous ``Originate`` (or a slow ``Command``) the server is silent
    until it answers, and the link is kept until that action's deadline.
    Every other action on the same connection waits behind such an action:
    use ``Async=True`` for Originate, or a second client for other traffic.

    Events wait for listeners in a queue of at most ``event_queue_size``
    events; ``overflow`` picks which go when it is full.  Futures'
    done-callbacks run on the client's callback threads, never on the
    socket reader.

    ``validate``: check every action against Asterisk's catalogue before
    sending: ``"warn"``, ``"strict"`` or ``"off"`` (see :mod:`amiclient.catalog`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: Optional[int] = None,
        username: str = "",
        secret: str = "",
        *,
        auth: str = "auto",
        events: Union[bool, str] = True,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        tls: Union[None, bool, ssl.SSLContext] = None,
        reconnect: bool = True,
        backoff: Optional[Backoff] = None,
        keepalive: float = 30.0,
        ping_timeout: Optional[float] = None,
        event_queue_size: int = 500_000,
        overflow: str = "drop_oldest",
        backlog_warning: int = 10_000,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        encoding: str = "utf-8",
        encoding_errors: str = "replace",
        lazy: bool = False,
        validate: str = "warn",
    ) -> None:
        timeout = checked_default_timeout(timeout)
        if auth not in ("auto", "md5", "plain"):
            raise ValueError(f"auth must be 'auto', 'md5' or 'plain', not {auth!r}")
        self.host = host
        self.port = port if port is not None else (5039 if tls else 5038)
        self.username = username
        self._secret = secret
        self.auth = auth
        self.events = events
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ssl_context: Optional[ssl.SSLContext] = ssl.create_default_context() if tls is True else (tls or None)
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.keepalive = keepalive
        self.ping_timeout = ping_timeout if ping_timeout is not None else min(timeout, 10.0)
        self.max_packet_size = max_packet_size
        self.encoding = encoding
        self.encoding_errors = encoding_errors
        self.lazy = lazy
        self.validate = check_validate_mode(validate)  # catalog
        self._queue_options = dict(max_events=event_queue_size, overflow=overflow, backlog_warning=backlog_warning)
        self._registry = ListenerRegistry()
        self._dispatcher = self._new_dispatcher()
        self._callbacks = self._new_callback_runner()
        self._state_callbacks: Tuple[Callable[[StateChange], Any], ...] = ()
        self._filters: List[Dict[str, str]] = []
        self._event_mask: Optional[str] = None
        self._id_prefix = uuid.uuid4().hex[:12]
        self._id_counter = itertools.count(1)
        self._closed = False
        self._init_runtime()
        self._ami_version: Optional[str] = None
        self._reconnects = 0
        self._history = {"bytes_in": 0, "bytes_out": 0, "sent": 0, "timed_out": 0, "malformed": 0}

    def _new_dispatcher(self) -> Dispatcher:
        return Dispatcher(self._registry, name=f"amiclient-dispatch-{self.host}:{self.port}", **self._queue_options)  # type: ignore[arg-type]

    def _new_callback_runner(self) -> CallbackRunner:
        return CallbackRunner(name=f"amiclient-callbacks-{self.host}:{self.port}")


    def _next_action_id(self) -> str:
        """A new ActionID; one a caller already used on the current link is skipped."""
        link = self._link
        while True:
            action_id = f"{self._id_prefix}-{next(self._id_counter)}"
            if link is None or not link.tracker.knows(action_id):
                return action_id

    def __enter__(self) -> AMIClient:
        return self.connect()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def connect(self, timeout: Optional[float] = None) -> AMIClient:
        """Connect, read the banner and log in; raises AuthenticationError or AMIConnectionError.

        Concurrent callers share one attempt; ``timeout`` bounds this
        caller's wait (AMIConnectionError; the attempt goes on).  While the
        client reconnects, waits for the new link.  On a client whose link
        dropped with ``reconnect=False``, opens a new one.
        """
        return super().connect(timeout)  # type: ignore[no-any-return]

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return f"{self.host}:{self.port}"

    @property
    def ami_version(self) -> Optional[str]:
        """The AMI version from the server's banner (``"11.0.0"`` on Asterisk 22)."""
        return self._ami_version

    # ------------------------------------------------------------------ re-applied settings

    def set_events(self, mask: Union[bool, str]) -> Response:
        """Change the event mask (``Events`` action); it is re-applied after every reconnect."""
        value = mask if isinstance(mask, str) else ("on" if mask else "off")
        response = self.action("Events", EventMask=value)
        self._event_mask = value
        return response

    # ------------------------------------------------------------------ stats

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the client's counters."""
        dispatcher = self._dispatcher
        history = self._history
        conn_in, conn_out, sent, in_flight, timed_out, malformed = self._link_stats()
        received, dispatched, dropped, queued = dispatcher.counts()
        return ClientStats(
            events_received=received, events_dispatched=dispatched,
            events_dropped=dropped, events_queued=queued,
            queue_high_water=dispatcher.high_water, listener_errors=dispatcher.listener_errors,
            actions_sent=history["sent"] + sent, actions_in_flight=in_flight,
            actions_timed_out=history["timed_out"] + timed_out, reconnects=self._reconnects,
            bytes_in=history["bytes_in"] + conn_in, bytes_out=history["bytes_out"] + conn_out,
            connected=self.connected, malformed_packets=history["malformed"] + malformed,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.connected else "disconnected")
        return f"<AMIClient {self.username}@{self.address} {state}>"

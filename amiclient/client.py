"""The threaded AMI client: futures by ActionID, listeners, connection state, reconnect.

Threads (both started by :meth:`AMIClient.connect`, both joined by
:meth:`AMIClient.close`):

* the **io thread** owns the socket: it reads, frames, resolves futures and
  hands events over in batches; when idle it sends keepalive Pings and
  expires overdue actions; when the link drops it fails every action in
  flight and reconnects with backoff;
* the **dispatcher thread** runs listeners and state callbacks, in order.

Any thread may send: an action is serialised first (bad input raises
``ValueError`` before anything is registered or sent), registered in wire
order, then written whole; concurrent senders' actions share one
``sendall``.  An action that could not be written because the link was
already down waits for the next link (up to its timeout); one that may have
been written is never sent again.
"""
from __future__ import annotations

import functools
import itertools
import logging
import os
import ssl
import threading
import time
import uuid
import weakref
from concurrent.futures import TimeoutError as FuturesTimeoutError
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from ._connection import Connection, NotSent
from ._handshake import Handshake
from ._listeners import Dispatcher, ListenerRegistry
from ._subscriptions import ListenerAPI
from ._protocol import DEFAULT_MAX_PACKET_SIZE, HeaderValue, header_value, pop_action_id, serialize_action, split_action
from ._tracker import ActionFuture, ActionTracker, fail
from .actions import ActionHelpers
from .exceptions import ActionError, ActionTimeout, AMIConnectionError, AMIError, AuthenticationError, ClientClosed, ConnectionLost
from .packet import Event, Response
from .retry import Backoff
from .state import ClientStats, ConnectionState, StateChange

__all__ = ["AMIClient", "ClientStats", "ConnectionState", "StateChange", "ActionFuture"]

log = logging.getLogger("amiclient.client")

_UNSET: Any = object()
_clients: "weakref.WeakSet[AMIClient]" = weakref.WeakSet()


class AMIClient(ListenerAPI, ActionHelpers):
    """A thread-safe client for one Asterisk Manager Interface login.

    ``events``: True (all the user may read), False (none: an action-only
    connection) or a class list such as ``"call,system"``.  ``timeout`` is
    the default per-action timeout in seconds.  ``tls``: None, True (verify
    with the system CAs) or an ``ssl.SSLContext``.  With ``reconnect`` (the
    default) a dropped link is re-established with ``backoff``, logged in
    again, and the event mask and filters set through this client are
    re-applied; actions in flight fail with ConnectionLost and are never
    re-sent.  Actions sent while reconnecting wait for the link up to their
    timeout.  ``keepalive``: seconds of silence before a Ping (0 = off); a
    Ping unanswered within ``ping_timeout`` drops the link.  Events wait
    for listeners in a queue of at most ``event_queue_size`` events;
    ``overflow`` picks which go when it is full.  ``lazy``: connect on
    first use instead of on :meth:`connect`.
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
    ) -> None:
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
        self._queue_options = dict(max_events=event_queue_size, overflow=overflow, backlog_warning=backlog_warning)
        self._registry = ListenerRegistry()
        self._dispatcher = self._new_dispatcher()
        self._state_callbacks: Tuple[Callable[[StateChange], Any], ...] = ()
        self._filters: List[Dict[str, str]] = []
        self._event_mask: Optional[str] = None
        self._id_prefix = uuid.uuid4().hex[:12]
        self._id_counter = itertools.count(1)
        self._init_runtime()
        self._closed = False
        self._ami_version: Optional[str] = None
        self._reconnects = 0
        self._history = {"bytes_in": 0, "bytes_out": 0, "sent": 0, "timed_out": 0, "malformed": 0}
        _clients.add(self)

    def _new_dispatcher(self) -> Dispatcher:
        return Dispatcher(self._registry, name=f"amiclient-dispatch-{self.host}:{self.port}", **self._queue_options)  # type: ignore[arg-type]

    def _init_runtime(self) -> None:
        self._lock = threading.RLock()
        self._link_changed = threading.Condition(self._lock)  # notified when _link is set or cleared
        self._link: Optional[Tuple[Connection, ActionTracker]] = None
        self._opening: Optional[Connection] = None
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._io_thread: Optional[threading.Thread] = None
        self._started = False
        self._keepalive_future: Optional[ActionFuture] = None
        self._keepalive_sent = 0.0
        self._next_sweep = 0.0

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> "AMIClient":
        """Connect, read the banner and log in; raises AuthenticationError or AMIConnectionError."""
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            if self._started:
                return self
            self._closing.clear()
            conn, tracker = self._open()
            self._started = True
            self._dispatcher.start()
            self._install(conn, tracker, ConnectionState.CONNECTED)
            self._io_thread = threading.Thread(
                target=self._io_main, args=(conn, tracker), name=f"amiclient-io-{self.host}:{self.port}", daemon=True
            )
            self._io_thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Log off, close the socket and join both threads; idempotent, safe from a listener."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._closing.set()
            self._link_changed.notify_all()
            link, opening, io_thread = self._link, self._opening, self._io_thread
        current = threading.current_thread()
        if link is not None and not link[0].closed:
            self._logoff(link, 0.0 if current is io_thread else min(1.0, timeout))
            link[0].close()
        if opening is not None:
            opening.close()
        if io_thread is not None and io_thread is not current:
            io_thread.join(timeout)
        self._emit(StateChange(ConnectionState.CLOSED))
        self._dispatcher.stop(timeout)
        _clients.discard(self)

    def _logoff(self, link: Tuple[Connection, ActionTracker], wait: float) -> None:
        action_id = self._next_action_id()
        future = ActionFuture("Logoff", action_id, wait)
        try:
            link[0].send(serialize_action("Logoff", {}, action_id), functools.partial(link[1].add, future))
            if wait:
                future.result(wait)
        except Exception as exc:  # the link is going away anyway
            log.debug("logoff from %s: %r", self.address, exc)

    def __enter__(self) -> "AMIClient":
        return self.connect()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return f"{self.host}:{self.port}"

    @property
    def ami_version(self) -> Optional[str]:
        """The AMI version from the server's banner (``"11.0.0"`` on Asterisk 22)."""
        return self._ami_version

    @property
    def connected(self) -> bool:
        """True while logged in over a live connection."""
        return self._connected.is_set()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def wait_connected(self, timeout: Optional[float] = None) -> bool:
        """Block until connected (or reconnected); False on timeout."""
        return self._connected.wait(timeout)

    def _open(self) -> Tuple[Connection, ActionTracker]:
        conn = Connection(
            self.host, self.port, ssl_context=self.ssl_context, connect_timeout=self.connect_timeout,
            max_packet_size=self.max_packet_size, encoding=self.encoding, errors=self.encoding_errors,
        )
        self._opening = conn
        handshake = Handshake(conn, self._next_action_id, self.timeout)
        try:
            version = conn.open()
            handshake.login(self.username, self._secret, self.auth, self.events)
            handshake.reapply(self._event_mask, self._filters)
        except BaseException:
            conn.close()
            raise
        finally:
            self._opening = None
        self._ami_version = version or None
        return conn, ActionTracker(version)

    def _install(self, conn: Connection, tracker: ActionTracker, state: ConnectionState) -> bool:
        with self._lock:
            if self._closing.is_set():
                conn.close()
                return False
            self._link = (conn, tracker)
            self._keepalive_future = None
            self._connected.set()
            self._link_changed.notify_all()
        self._emit(StateChange(state))
        return True

    def _io_main(self, conn: Connection, tracker: ActionTracker) -> None:
        idle = min(1.0, self.keepalive) if self.keepalive > 0 else 1.0
        try:
            while True:
                reason = conn.run(
                    functools.partial(self._on_packets, tracker),
                    functools.partial(self._on_idle, conn, tracker),
                    idle,
                )
                self._lost(conn, tracker, reason)
                if self._closing.is_set() or not self.reconnect:
                    return
                link = self._reconnect_loop()
                if link is None or not self._install(link[0], link[1], ConnectionState.RECONNECTED):
                    return
                conn, tracker = link
        finally:
            self._connected.clear()

    def _lost(self, conn: Connection, tracker: ActionTracker, reason: BaseException) -> None:
        with self._lock:
            if self._link is not None and self._link[0] is conn:
                self._link = None
            self._connected.clear()
            self._link_changed.notify_all()
            history = self._history
            history["bytes_in"] += conn.bytes_in
            history["bytes_out"] += conn.bytes_out
            history["sent"] += conn.packets_sent
        if self._closing.is_set():
            error: AMIError = ClientClosed("the client was closed")
        elif isinstance(reason, AMIError):
            error = reason
        else:
            error = ConnectionLost(f"reader for {conn.address} failed: {reason!r}")
        failed = tracker.close(error)
        self._history["timed_out"] += tracker.timed_out
        self._history["malformed"] += tracker.malformed
        if not self._closing.is_set():
            log.warning("connection to %s lost: %s (%d actions failed)", conn.address, error, len(failed))
        self._emit(StateChange(ConnectionState.DISCONNECTED, reason=error))

    def _reconnect_loop(self) -> Optional[Tuple[Connection, ActionTracker]]:
        attempt = 0
        while not self._closing.is_set():
            attempt += 1
            delay = self.backoff.compute(attempt)
            self._emit(StateChange(ConnectionState.RECONNECTING, attempt=attempt, delay=delay))
            if self._closing.wait(delay):
                return None
            try:
                link = self._open()
            except (AMIError, OSError) as exc:
                level = logging.ERROR if isinstance(exc, AuthenticationError) else logging.INFO
                log.log(level, "reconnect %d to %s failed: %s", attempt, self.address, exc)
                self._emit(StateChange(ConnectionState.RECONNECT_FAILED, reason=exc, attempt=attempt))
                continue
            self._reconnects += 1
            return link
        return None

    # ------------------------------------------------------------------ reader side

    def _on_packets(self, tracker: ActionTracker, texts: List[str]) -> None:
        events = tracker.route(texts)
        if events:
            self._dispatcher.put_events(events)
        if tracker.pending:
            now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + 1.0
                tracker.expire(now)

    def _on_idle(self, conn: Connection, tracker: ActionTracker) -> None:
        now = time.monotonic()
        if tracker.pending:
            tracker.expire(now)
        if self.keepalive <= 0:
            return
        ping = self._keepalive_future
        if ping is not None:
            if ping.done() and ping.exception() is None:
                self._keepalive_future = None
            elif ping.done() or now - self._keepalive_sent > self.ping_timeout:
                raise ConnectionLost(f"keepalive: no answer to Ping from {conn.address} within {self.ping_timeout:g} s")
            else:
                return
        if now - conn.last_received >= self.keepalive:
            self._keepalive_sent = now
            action_id = self._next_action_id()
            self._keepalive_future = self._send_on(
                (conn, tracker), "Ping", serialize_action("Ping", {}, action_id), action_id, self.ping_timeout,
                wait_for_link=False)

    # ------------------------------------------------------------------ actions

    def _next_action_id(self) -> str:
        return f"{self._id_prefix}-{next(self._id_counter)}"

    def send_action(
        self,
        action: Union[str, Mapping[str, HeaderValue]],
        headers: Optional[Mapping[str, HeaderValue]] = None,
        *,
        timeout: Optional[float] = _UNSET,
        **fields: HeaderValue,
    ) -> ActionFuture:
        """Send an action; return a future of its :class:`Response` (errors included).

        ``action`` is the action name with headers as keyword arguments (or
        in ``headers``), or a whole mapping with an ``Action`` key.  A
        caller's ``ActionID`` is kept; otherwise a unique one is added.  The
        future fails with ActionTimeout after ``timeout`` seconds (default:
        the client's, plus the ``Timeout`` of a synchronous Originate) and
        with ConnectionLost if the link drops first.  CR or LF in any key or
        value raises ``ValueError`` and sends nothing.
        """
        name, merged = split_action(action, headers, fields)
        action_id = pop_action_id(merged) or self._next_action_id()
        data = serialize_action(name, merged, action_id)
        if timeout is _UNSET:
            timeout = self._default_timeout(name, merged)
        link = self._wait_link(timeout)
        return self._send_on(link, name, data, action_id, timeout)

    def _send_on(
        self, link: Tuple[Connection, ActionTracker], name: str,
        data: bytes, action_id: str, timeout: Optional[float], wait_for_link: bool = True,
    ) -> ActionFuture:
        future = ActionFuture(name, action_id, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            conn, tracker = link
            try:
                conn.send(data, functools.partial(tracker.add, future))
                return future
            except NotSent as exc:  # the link died first: nothing went out, so wait for the next one
                tracker.discard(action_id)
                if not (wait_for_link and self.reconnect) or self._closing.is_set():
                    fail(future, exc)
                    return future
                try:
                    link = self._wait_link(None if deadline is None else deadline - time.monotonic(), stale=conn)
                except AMIError as error:
                    fail(future, error)
                    return future
            except ConnectionLost as exc:  # the write failed: the action may be half sent, never resend it
                tracker.discard(action_id)
                fail(future, exc)
                return future

    def _default_timeout(self, name: str, fields: Mapping[str, HeaderValue]) -> float:
        timeout = self.timeout
        if name.lower() == "originate" and str(header_value(fields, "Async", "")).lower() not in ("true", "yes", "1", "y", "t", "on"):
            try:
                timeout += float(str(header_value(fields, "Timeout", 30000))) / 1000.0
            except ValueError:
                pass
        return timeout

    def _wait_link(
        self, timeout: Optional[float], stale: Optional[Connection] = None
    ) -> Tuple[Connection, ActionTracker]:
        """The live link, waiting up to ``timeout`` while the client reconnects (never returns ``stale``)."""
        link = self._link
        if link is not None and link[0] is not stale:
            return link
        if self._closed:
            raise ClientClosed("the client is closed")
        if not self._started:
            if not self.lazy:
                raise AMIConnectionError("not connected: call connect() first")
            self.connect()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._link_changed:
            while True:
                link = self._link
                if link is not None and link[0] is not stale:
                    return link
                if self._closed:
                    raise ClientClosed("the client is closed")
                if not self.reconnect:
                    raise ConnectionLost(f"not connected to {self.address} (reconnect is off)")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ConnectionLost(f"not connected to {self.address} within {timeout:g} s")
                self._link_changed.wait(remaining)

    def action(
        self,
        action: Union[str, Mapping[str, HeaderValue]],
        headers: Optional[Mapping[str, HeaderValue]] = None,
        *,
        timeout: Optional[float] = _UNSET,
        **fields: HeaderValue,
    ) -> Response:
        """Send an action and wait for its response; ActionError for ``Error``/``Failure``.

        Raises ActionTimeout, ConnectionLost or ClientClosed when no answer
        can come.
        """
        future = self.send_action(action, headers, timeout=timeout, **fields)
        response = self.wait(future)
        if not response.ok:
            raise ActionError(response)
        return response

    def wait(self, future: ActionFuture) -> Response:
        """The response of a sent action, waiting up to its timeout (raises like :meth:`action`)."""
        try:
            return future.result(future.timeout)  # type: ignore[no-any-return]
        except AMIError:
            raise
        except (TimeoutError, FuturesTimeoutError):
            pass
        link = self._link
        if link is not None:
            link[1].discard(future.action_id)
        error = ActionTimeout(f"no answer to {future.action} (ActionID {future.action_id}) within {future.timeout:g} s", future.action_id)
        fail(future, error)
        if future.exception() is error:
            self._history["timed_out"] += 1
            raise error
        return future.result(0)  # type: ignore[no-any-return]  # answered at the last moment

    def command(self, command: str, *, timeout: Optional[float] = _UNSET) -> str:
        """Run a CLI command; return its output (``Output`` lines joined, or legacy raw text)."""
        return self.action("Command", Command=command, timeout=timeout).output

    # ------------------------------------------------------------------ re-applied settings

    def set_events(self, mask: Union[bool, str]) -> Response:
        """Change the event mask (``Events`` action); it is re-applied after every reconnect."""
        value = mask if isinstance(mask, str) else ("on" if mask else "off")
        response = self.action("Events", EventMask=value)
        self._event_mask = value
        return response

    def add_filter(self, filter: str, match_criteria: Optional[str] = None) -> Response:
        """Add a server-side event filter (``Filter`` action); it is re-applied after every reconnect."""
        fields = {"Operation": "Add", "Filter": filter}
        if match_criteria:
            fields["MatchCriteria"] = match_criteria
        response = self.action("Filter", fields)
        self._filters.append(fields)
        return response

    # ------------------------------------------------------------------ stats and fork safety

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the client's counters."""
        dispatcher = self._dispatcher
        link = self._link
        history = self._history
        conn_in = conn_out = sent = in_flight = timed_out = malformed = 0
        if link is not None:
            conn_in, conn_out, sent = link[0].bytes_in, link[0].bytes_out, link[0].packets_sent
            in_flight, timed_out, malformed = len(link[1].pending), link[1].timed_out, link[1].malformed
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

    def _after_fork_in_child(self) -> None:
        """Drop the parent's socket and threads; reconnect on first use if the parent was connected."""
        link, was_started = self._link, self._started
        self._init_runtime()
        self._dispatcher = self._new_dispatcher()
        if link is not None:
            link[0].detach_after_fork()
        if was_started and not self._closed:
            self.lazy = True

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.connected else "disconnected")
        return f"<AMIClient {self.username}@{self.address} {state}>"


def _after_fork() -> None:
    for client in list(_clients):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

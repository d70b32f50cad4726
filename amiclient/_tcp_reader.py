"""The TCP transport: the io thread, where every packet is read, matched and dispatched.

The path of a packet from the server::

    Connection.run()           (_connection.py)  reads bytes, frames packets
      (or a caller waiting alone reads them: Connection.await_answer, _readright.py)
    -> TcpReader._on_packets   (this module)
    -> ActionTracker.route()   (_tracker.py)     matches responses to futures
    -> Dispatcher.put_events() (_listeners.py)   queues events for listeners

Between reads the io thread fails overdue actions (it wakes for the
nearest deadline), sends keepalive Pings and declares a silent peer dead;
when the link drops it fails every action in flight and reconnects with
backoff.  It runs no user code: listeners run on the dispatcher thread,
done-callbacks on the callback threads.
"""
from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union

from ._connection import Connection
from ._handshake import Handshake
from ._listeners import Dispatcher
from ._protocol import serialize_action
from ._tracker import ActionFuture, ActionTracker
from .exceptions import AMIError, AuthenticationError, ClientClosed, ConnectionLost
from .retry import Backoff
from .state import ConnectionState, StateChange

if TYPE_CHECKING:
    from ._lifecycle import ConnectAttempt

__all__ = ["TcpLink", "TcpReader"]

log = logging.getLogger("amiclient.client")

_NEVER = float("inf")
_MAX_WAIT = 5.0  # s: the reader looks at its timers at least this often


class TcpLink:
    """One logged-in TCP connection, its actions in flight and its timers."""

    def __init__(self, conn: Connection, tracker: ActionTracker) -> None:
        self.conn = conn
        self.tracker = tracker
        self.next_expiry = _NEVER  # when the reader must next look for overdue actions
        self._timer_lock = threading.Lock()
        self.ping: Optional[ActionFuture] = None  # the keepalive Ping in flight
        self.ping_sent = 0.0

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self.conn.closed

    def send(self, data: bytes, future: ActionFuture, write_deadline: Optional[float] = None) -> None:
        """Register ``future`` and write ``data`` (NotSent: nothing went out; ConnectionLost: maybe half).

        The write must end by ``write_deadline`` (default: the future's
        deadline); the reader is woken if the action is due before its
        current wake-up time.
        """
        deadline = future.deadline
        self.conn.send(data, self.tracker.add, deadline if write_deadline is None else write_deadline, future)
        if deadline is not None and deadline < self.next_expiry:
            with self._timer_lock:
                earlier = deadline < self.next_expiry
                if earlier:
                    self.next_expiry = deadline
            if earlier:
                self.conn.wake()

    def discard(self, action_id: str) -> None:
        """Stop tracking an action whose caller gave up."""
        self.tracker.discard(action_id)

    def await_answer(self, future: ActionFuture) -> None:
        """Return when ``future`` is resolved or at its deadline; the caller may read the socket meanwhile.

        Only an action in flight on this link leads (see
        ``Connection.await_answer``); any other just waits.
        """
        if self.tracker.tracks(future):
            self.conn.await_answer(future.done, future.wait_resolved, future.deadline)
        else:
            future.wait_resolved(None if future.deadline is None else max(0.0, future.deadline - time.monotonic()))

    def expire_due(self, now: float) -> None:
        """Fail the actions whose deadline has passed; plan the next look (reader thread)."""
        with self._timer_lock:
            self.next_expiry = _NEVER
        self.tracker.expire(now)
        upcoming = self.tracker.next_deadline(after=now)
        if upcoming is not None:
            with self._timer_lock:
                if upcoming < self.next_expiry:  # a sender may have set an earlier one meanwhile
                    self.next_expiry = upcoming


class TcpReader:
    """The io thread of :class:`~amiclient.AMIClient` over TCP (a mixin: opening, reading, keepalive, reconnect)."""

    host: str
    port: int
    username: str
    _secret: str
    auth: str
    events: Union[bool, str]
    timeout: float
    connect_timeout: float
    ssl_context: Optional[ssl.SSLContext]
    reconnect: bool
    backoff: Backoff
    keepalive: float
    ping_timeout: float
    max_packet_size: int
    encoding: str
    encoding_errors: str
    _lock: threading.RLock
    _closing: threading.Event
    _opening: Optional[Connection]
    _link: Optional[TcpLink]
    _dispatcher: Dispatcher
    _event_mask: Optional[str]
    _filters: List[Dict[str, str]]
    _ami_version: Optional[str]
    _reconnects: int
    _history: Dict[str, int]

    if TYPE_CHECKING:  # provided by the other parts of the client
        @property
        def address(self) -> str: ...
        def _next_action_id(self) -> str: ...
        def _emit(self, change: StateChange) -> None: ...
        def _install(self, link: TcpLink, state: ConnectionState) -> bool: ...
        def _io_ended(self, attempt: ConnectAttempt, error: Optional[BaseException]) -> None: ...

    # ------------------------------------------------------------------ opening a link

    def _open_link(self) -> TcpLink:
        """Connect, log in and re-apply settings; raises AMIError (or OSError)."""
        conn = Connection(
            self.host, self.port, ssl_context=self.ssl_context, connect_timeout=self.connect_timeout,
            max_packet_size=self.max_packet_size, encoding=self.encoding, errors=self.encoding_errors,
        )
        with self._lock:
            if self._closing.is_set():
                raise ClientClosed("the client is closed")
            self._opening = conn  # close() closes it, which ends a handshake at once
        handshake = Handshake(conn, self._next_action_id, self.timeout)
        try:
            version = conn.open()
            handshake.login(self.username, self._secret, self.auth, self.events)
            handshake.reapply(self._event_mask, self._filters)
        except BaseException:
            conn.close()
            raise
        finally:
            with self._lock:
                self._opening = None
        self._ami_version = version or None
        return TcpLink(conn, ActionTracker(version))

    # ------------------------------------------------------------------ the io thread

    def _io_main(self, attempt: ConnectAttempt) -> None:
        """The io thread: first connect (shared by every waiter), then read, reconnect, until closed."""
        try:
            link = self._open_link()
        except BaseException as exc:
            self._io_ended(attempt, exc)
            return
        if not self._install(link, ConnectionState.CONNECTED):
            self._io_ended(attempt, ClientClosed("the client was closed while connecting"))
            return
        try:
            while True:
                reason = link.conn.run(
                    functools.partial(self._on_packets, link),
                    functools.partial(self._on_tick, link),
                    functools.partial(self._wait_time, link),
                )
                self._lost(link, reason)
                if self._closing.is_set() or not self.reconnect:
                    return
                new_link = self._reconnect_loop()
                if new_link is None or not self._install(new_link, ConnectionState.RECONNECTED):
                    return
                link = new_link
        finally:
            self._io_ended(attempt, None)

    def _on_packets(self, link: TcpLink, texts: List[str]) -> None:
        events = link.tracker.route(texts)
        if events:
            self._dispatcher.put_events(events)
        if link.next_expiry <= time.monotonic():
            link.expire_due(time.monotonic())

    def _wait_time(self, link: TcpLink) -> float:
        """How long the reader may wait for data before a timer is due."""
        now = time.monotonic()
        due = link.next_expiry
        if self.keepalive > 0:
            if link.ping is None:
                due = min(due, link.conn.last_received + self.keepalive)
            elif link.ping_sent + self.ping_timeout > now:
                due = min(due, link.ping_sent + self.ping_timeout)
        return min(max(0.0, due - now), _MAX_WAIT)

    def _on_tick(self, link: TcpLink) -> None:
        now = time.monotonic()
        if link.next_expiry <= now:
            link.expire_due(now)
        if self.keepalive > 0:
            self._keepalive(link, now)

    def _keepalive(self, link: TcpLink, now: float) -> None:
        """Ping after ``keepalive`` s of silence; an unanswered Ping ends the link.

        An action in flight with a longer timeout than ``ping_timeout`` (a
        synchronous Originate, a slow Command) may keep the server silent
        until its own deadline, so the peer is not declared dead before it.
        """
        conn = link.conn
        ping = link.ping
        if ping is not None:
            if ping.done():
                if ping.cancelled() or ping.exception() is not None:
                    raise ConnectionLost(f"keepalive Ping to {conn.address} failed")
                link.ping = None
            elif now >= link.ping_sent + self.ping_timeout:
                busy_until = link.tracker.last_deadline(longer_than=self.ping_timeout, ignore=link.ping)
                if busy_until is None or now >= busy_until:
                    raise ConnectionLost(f"keepalive: no answer to Ping from {conn.address} within {self.ping_timeout:g} s")
                return
            else:
                return
        if now - conn.last_received >= self.keepalive:
            for attempt in range(100):
                action_id = self._next_action_id()
                future = ActionFuture("Ping", action_id, None)  # never expires: the keepalive judges it
                link.ping, link.ping_sent = future, now
                try:
                    link.send(serialize_action("Ping", {}, action_id), future, write_deadline=now + self.ping_timeout)
                    return
                except ValueError:  # a caller's action took this ActionID after it was checked: nothing was sent
                    if attempt == 99:
                        raise

    # ------------------------------------------------------------------ losing and re-opening the link

    def _lost(self, link: TcpLink, reason: BaseException) -> None:
        conn = link.conn
        with self._lock:
            if self._link is link:
                self._link = None
            history = self._history
            history["bytes_in"] += conn.bytes_in
            history["bytes_out"] += conn.bytes_out
            history["sent"] += conn.packets_sent
            self._link_down()
        if self._closing.is_set():
            error: AMIError = ClientClosed("the client was closed")
        elif isinstance(reason, AMIError):
            error = reason
        else:
            error = ConnectionLost(f"reader for {conn.address} failed: {reason!r}")
        failed = link.tracker.close(error)
        self._history["timed_out"] += link.tracker.timed_out
        self._history["malformed"] += link.tracker.malformed
        if not self._closing.is_set():
            log.warning("connection to %s lost: %s (%d actions failed)", conn.address, error, len(failed))
        self._emit(StateChange(ConnectionState.DISCONNECTED, reason=error))

    def _link_down(self) -> None:
        """Hook, called under the lock: the link is gone (the lifecycle part clears ``connected``)."""

    def _reconnect_loop(self) -> Optional[TcpLink]:
        attempt = 0
        while not self._closing.is_set():
            attempt += 1
            delay = self.backoff.compute(attempt)
            self._emit(StateChange(ConnectionState.RECONNECTING, attempt=attempt, delay=delay))
            if self._closing.wait(delay):
                return None
            try:
                link = self._open_link()
            except (AMIError, OSError) as exc:
                level = logging.ERROR if isinstance(exc, AuthenticationError) else logging.INFO
                log.log(level, "reconnect %d to %s failed: %s", attempt, self.address, exc)
                self._emit(StateChange(ConnectionState.RECONNECT_FAILED, reason=exc, attempt=attempt))
                continue
            self._reconnects += 1
            return link
        return None

    def _logoff(self, link: TcpLink, wait: float) -> None:
        """Send Logoff and wait up to ``wait`` s for the answer (best effort)."""
        action_id = self._next_action_id()
        future = ActionFuture("Logoff", action_id, wait)
        future.deadline = time.monotonic() + wait
        try:
            link.send(serialize_action("Logoff", {}, action_id), future)
            if wait:
                future.result(wait)
        except Exception as exc:  # the link is going away anyway
            log.debug("logoff from %s: %r", self.address, exc)

    def _link_stats(self) -> Tuple[int, int, int, int, int, int]:
        """bytes in, bytes out, actions sent, in flight, timed out, malformed packets on the current link."""
        link = self._link
        if link is None:
            return 0, 0, 0, 0, 0, 0
        conn, tracker = link.conn, link.tracker
        return (conn.bytes_in, conn.bytes_out, conn.packets_sent, len(tracker.pending), tracker.timed_out,
                tracker.malformed)

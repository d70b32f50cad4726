"""AMI over HTTP (Asterisk's AJAM ``/rawman``) with the interface of :class:`~amiclient.AMIClient`.

::

    with AMIHTTPClient("https://pbx:8089/asterisk", "admin", "secret") as client:
        client.add_listener(on_hangup, event="Hangup")   # starts the WaitEvent poller
        print(client.command("core show uptime"))

Shared with the TCP client: the helpers (``ActionHelpers``), the listener
registry, dispatcher and ``on_state`` (``ListenerAPI``), ``ActionFuture``,
the sans-IO protocol and the exceptions.  Only the transport differs:
``transport.http`` (pooled keep-alive POSTs), ``transport.rawman`` (bodies),
``_http_session`` (login, cookie, expiry) and ``_http_events`` (WaitEvent).

Threads:

* ``action()`` runs its POST on the **calling thread** (on a pooled
  connection), so many threads may call it at once;
* ``send_action()`` hands the POST to a small **send pool**
  (``workers`` threads, started on first use) and returns an
  :class:`ActionFuture` at once.  A worker never runs user code: the
  future's done-callbacks are handed to the dispatcher thread, where
  listeners run, so a slow callback cannot starve the send pool;
* while the client has at least one listener, the **poller** long-polls
  ``WaitEvent`` on its own connection and feeds the dispatcher in order;
  ``close()`` shuts its socket down, so it never waits for a long-poll.

An action is never sent twice: only a request that certainly was not sent,
or one read-only by nature, is retried after a dropped connection (see
:mod:`amiclient.transport.http`); a request refused because the session had
expired (nothing ran) is sent again once after a new login.
"""
from __future__ import annotations

import logging
import os
import ssl
import threading
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeoutError
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

from ._http_events import EventPoller
from ._http_session import HTTPSession, action_params
from ._listeners import Dispatcher, EventSpec, ListenerHandle, ListenerRegistry
from ._protocol import HeaderValue, pop_action_id, serialize_action, split_action
from ._sending import checked_default_timeout, checked_timeout, default_timeout
from ._subscriptions import ListenerAPI
from ._tracker import ActionFuture, fail
from .actions import ActionHelpers
from .catalog import CatalogAPI, check_action, check_validate_mode
from .exceptions import ActionError, ActionTimeout, AMIConnectionError, AMIError, ClientClosed, ConnectionLost
from .packet import Event, Response
from .retry import Backoff
from .state import ClientStats, ConnectionState, StateChange
from .transport.http import HTTPTransport
from .transport.rawman import AJAMResponse

__all__ = ["AMIHTTPClient", "AJAMClient", "AJAMResponse"]

log = logging.getLogger("amiclient.http")

_UNSET: Any = object()
_clients: weakref.WeakSet[AMIHTTPClient] = weakref.WeakSet()  # reset in a forked child
_TRUE = ("true", "yes", "1", "y", "t", "on")


class _WatchedRegistry(ListenerRegistry):
    """A ListenerRegistry that counts listeners and reports every change."""

    def __init__(self, changed: Callable[[bool], None]) -> None:
        super().__init__()
        self._changed = changed
        self._count_lock = threading.Lock()
        self.count = 0

    def add(self, callback: Callable[[Event], Any], event: EventSpec = None,
            filter: Optional[Callable[[Event], bool]] = None) -> ListenerHandle:
        handle = super().add(callback, event, filter)
        with self._count_lock:
            self.count += 1
        self._changed(True)
        return handle

    def remove(self, handle: ListenerHandle) -> bool:
        removed = super().remove(handle)
        if removed:
            with self._count_lock:
                self.count -= 1
            self._changed(False)
        return removed


class _HTTPFuture(ActionFuture):
    """An ActionFuture whose done-callbacks run on the dispatcher thread, never on a send worker."""

    def __init__(
        self, action: str, action_id: str, timeout: Optional[float], hand_off: Callable[[Callable[[], Any]], None],
    ) -> None:
        super().__init__(action, action_id, timeout)
        self._hand_off = hand_off

    def _invoke_callbacks(self) -> None:
        callbacks = list(self._done_callbacks)
        if not callbacks:
            return

        def run() -> None:
            for callback in callbacks:
                try:
                    callback(self)
                except Exception:
                    log.exception("done-callback %r of %r raised", callback, self)

        self._hand_off(run)


class AMIHTTPClient(ListenerAPI, ActionHelpers, CatalogAPI):
    """A thread-safe client for one manager login over HTTP(S); the same interface as ``AMIClient``.

    ``url``: Asterisk's HTTP prefix (``http://host:8088/asterisk``) or the
    full ``.../rawman`` URL.  ``tls``: None or True (an ``https://`` URL is
    verified with the system CAs) or an ``ssl.SSLContext``; TLS needs an
    ``https://`` URL.  ``events``: the event mask while listeners exist
    (True, False or a class list); without listeners the session reads no
    events.  ``timeout``: default per-action timeout (s).  ``poll_timeout``:
    the ``Timeout`` of each WaitEvent (s; Asterisk caps it at its
    ``httptimeout`` - 10).  ``max_connections``: pooled connections;
    ``workers``: threads running ``send_action`` requests.  ``lazy``:
    connect on first use.  ``validate``: check actions against Asterisk's
    catalogue before sending (``"warn"``, ``"strict"`` or ``"off"``).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8088/asterisk",
        username: str = "",
        secret: str = "",
        *,
        events: Union[bool, str] = True,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        tls: Union[None, bool, ssl.SSLContext] = None,
        backoff: Optional[Backoff] = None,
        poll_timeout: float = 20.0,
        max_connections: int = 8,
        workers: int = 4,
        event_queue_size: int = 500_000,
        overflow: str = "drop_oldest",
        backlog_warning: int = 10_000,
        lazy: bool = False,
        validate: str = "warn",
    ) -> None:
        self.validate = check_validate_mode(validate)
        timeout = checked_default_timeout(timeout)
        if not isinstance(tls, (bool, ssl.SSLContext)) and tls is not None:
            raise ValueError("tls must be None, True, False or an ssl.SSLContext")
        context = tls if isinstance(tls, ssl.SSLContext) else None
        self._transport = HTTPTransport(url, ssl_context=context, connect_timeout=connect_timeout,
                                        max_connections=max_connections)
        if tls not in (None, False) and not self._transport.https:
            raise ValueError("tls needs an https:// URL")
        if tls is False and self._transport.https:
            raise ValueError("an https:// URL needs TLS (tls=False contradicts it)")
        self.url = self._transport.url
        self.username = username
        self.events = events
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ssl_context = self._transport.ssl_context
        self.backoff = backoff or Backoff()
        self.poll_timeout = poll_timeout
        self.workers = workers
        self.lazy = lazy
        self._lock = threading.RLock()
        self._connect_lock = threading.Lock()
        self._watched = _WatchedRegistry(self._listeners_changed)
        self._registry = self._watched
        self._dispatcher_options = dict(max_events=event_queue_size, overflow=overflow, backlog_warning=backlog_warning)
        self._dispatcher = self._new_dispatcher()
        self._state_callbacks: Tuple[Callable[[StateChange], Any], ...] = ()
        self._session = HTTPSession(self._transport, username, secret, mask=self._wanted_mask,
                                    after_login=self._after_login)
        self._session_mask = "off"  # the event mask of the current session
        self._mask_changed = threading.Condition(self._lock)  # notified when _session_mask changes or a poll fails
        self._poll_failures = 0  # failed attempts of the poller to turn events on or to poll
        self._poll_failing = False  # the poller's last attempt failed (it is backing off)
        self._filters: List[Dict[str, str]] = []
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._started = False
        self._closed = False
        self._executor: Optional[ThreadPoolExecutor] = None
        self._futures: Set[ActionFuture] = set()
        self._poller = EventPoller(self)
        self._reconnects = 0
        self._in_flight = 0
        self._timed_out = 0
        self._pool_running = 0  # send_action requests being sent (counted in _in_flight too)
        _clients.add(self)

    def _new_dispatcher(self) -> Dispatcher:
        return Dispatcher(self._registry, name=f"amiclient-dispatch-{self.url}", **self._dispatcher_options)  # type: ignore[arg-type]

    def _after_fork_in_child(self) -> None:
        """New locks, no threads, no connections and no session of the parent's; log in again on first use."""
        self._lock = threading.RLock()
        self._connect_lock = threading.Lock()
        self._mask_changed = threading.Condition(self._lock)
        self._connected = threading.Event()
        closing, self._closing = self._closing, threading.Event()
        if closing.is_set() or self._closed:
            self._closing.set()
        self._watched._count_lock = threading.Lock()
        self._watched.reset_after_fork()
        self._dispatcher = self._new_dispatcher()
        self._transport.reset_after_fork()
        self._session.reset_after_fork()
        self._session_mask = "off"
        self._poll_failing = False
        self._poller = EventPoller(self)
        self._executor = None  # its threads exist in the parent only
        self._futures = set()  # the parent's requests: answered in the parent
        self._in_flight = self._pool_running = 0
        if self._started and not self._closed:
            self._started = False
            self.lazy = True

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> AMIHTTPClient:
        """Log in; raises AuthenticationError or AMIConnectionError (ConnectionLost if unreachable)."""
        with self._connect_lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            if self._started:
                return self
            try:
                self._session.login(self.connect_timeout + self.timeout)
            except AMIError:
                if self._closed:
                    raise ClientClosed("the client was closed while connecting") from None
                raise
            with self._lock:
                if self._closed:  # closed while logging in: start nothing (the session expires on its own)
                    raise ClientClosed("the client was closed while connecting")
                self._started = True
                self._dispatcher.start()
                self._connected.set()
            self._emit(StateChange(ConnectionState.CONNECTED))
            self._listeners_changed()
        return self

    def login(self) -> AJAMResponse:
        """Open a new manager session now (``connect()`` and session expiry do this on their own)."""
        self._ensure_started()
        return self._session.login(self.timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Log off, stop the poller and the send pool, close every connection; idempotent, safe from a listener."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._closing.set()
            self._mask_changed.notify_all()
            executor, self._executor = self._executor, None
        self._poller.abort()
        if self._session.logged_in:
            try:
                self._session.send_once("Logoff", [("Action", "Logoff"), ("ActionID", self._session.next_action_id())],
                                        min(1.0, timeout))
            except AMIError as exc:  # the session expires on its own
                log.debug("logoff from %s: %s", self.url, exc)
            self._session.forget()
        self._transport.close()
        with self._lock:
            pending = list(self._futures)
        for future in pending:
            fail(future, ClientClosed("the client was closed"))
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._poller.join(timeout)
        self._connected.clear()
        self._emit(StateChange(ConnectionState.CLOSED))
        self._dispatcher.stop(timeout)

    def __enter__(self) -> AMIHTTPClient:
        return self.connect()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def address(self) -> str:
        """The rawman URL."""
        return self.url

    @property
    def ami_version(self) -> Optional[str]:
        """None: HTTP has no AMI banner."""
        return None

    @property
    def connected(self) -> bool:
        """True while logged in and the last request reached the server."""
        return self._connected.is_set()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def wait_connected(self, timeout: Optional[float] = None) -> bool:
        """Block until connected (or reachable again); False on timeout."""
        return self._connected.wait(timeout)

    def _ensure_started(self) -> None:
        if self._closed:
            raise ClientClosed("the client is closed")
        if not self._started:
            if not self.lazy:
                raise AMIConnectionError("not connected: call connect() first")
            self.connect()

    # ------------------------------------------------------------------ connection state

    def _went_down(self, error: BaseException) -> bool:
        """Note a failed request; True if the client was connected until now."""
        with self._lock:
            if self._closed or not self._connected.is_set():
                return False
            self._connected.clear()
        log.warning("%s unreachable: %s", self.url, error)
        self._emit(StateChange(ConnectionState.DISCONNECTED, reason=error))
        return True

    def _came_back(self) -> None:
        with self._lock:
            if self._closed or self._connected.is_set() or not self._started:
                return
            self._connected.set()
            self._reconnects += 1
        log.info("%s reachable again", self.url)
        self._emit(StateChange(ConnectionState.RECONNECTED))

    # ------------------------------------------------------------------ events and the session

    def _wanted_mask(self) -> str:
        """The event mask the session should have now: the client's while listeners exist, else off."""
        if self.events is False or self._watched.count == 0 or self._closed:
            return "off"
        return self.events if isinstance(self.events, str) else "on"

    def _after_login(self, mask: str) -> None:
        """A new session: note its mask and re-apply the filters added through this client."""
        with self._lock:
            lost_events = self._started and self._session_mask != "off"  # the old session's queued events are gone
            self._session_mask = mask
            self._mask_changed.notify_all()
        if lost_events:  # like a reconnect: on_state subscribers (LiveState...) resync
            self._went_down(ConnectionLost("the manager session expired; events queued in it were lost"))
            self._came_back()
        for fields in list(self._filters):
            try:
                params = action_params(serialize_action("Filter", fields, self._session.next_action_id()))
                self._session.send_once("Filter", params, self.timeout)
            except AMIError as exc:
                log.warning("re-applying a filter on %s failed: %s", self.url, exc)

    def _listeners_changed(self, added: bool = True) -> None:
        with self._lock:
            if self._started and not self._closed and self.events is not False:
                self._poller.wake()
                if added:  # only a new listener waits for the events it is meant to get
                    self._await_mask()

    def _await_mask(self) -> None:
        """Wait (up to ``timeout``) until the session reads events, so none sent after add_listener() is missed.

        Skipped on the client's own threads (a listener adding a listener
        must not stall the dispatcher).  The caller holds ``_lock``.
        """
        if self._wanted_mask() == "off" or self._session_mask != "off":
            return
        current = threading.current_thread()
        if current is self._dispatcher._thread or current is self._poller.thread:
            return
        if self._poll_failing:  # the poller is backing off: nothing will turn events on before its next try
            return
        failures = self._poll_failures  # a failed attempt ends the wait: no add_listener() stalls while unreachable
        self._mask_changed.wait_for(
            lambda: self._closed or self._session_mask != "off" or self._wanted_mask() == "off"
            or self._poll_failures != failures, checked_timeout(self.timeout))

    # ------------------------------------------------------------------ actions

    def _prepare(
        self, action: Union[str, Mapping[str, HeaderValue]], headers: Optional[Mapping[str, HeaderValue]],
        fields: Mapping[str, HeaderValue], timeout: Optional[float],
    ) -> Tuple[str, List[Tuple[str, str]], str, Optional[float]]:
        name, merged = split_action(action, headers, dict(fields))
        action_id = pop_action_id(merged) or self._session.next_action_id()
        check_action(name, merged, self.validate)
        params = action_params(serialize_action(name, merged, action_id))  # ValueError before any I/O
        if timeout is _UNSET:
            timeout = default_timeout(self.timeout, name, merged)
        return name, params, action_id, checked_timeout(timeout)

    def _perform(self, name: str, params: List[Tuple[str, str]], timeout: Optional[float]) -> Response:
        if self._closed:
            raise ClientClosed("the client is closed")
        with self._lock:
            self._in_flight += 1
        try:
            response = self._session.request(name, params, timeout)
        except ActionTimeout:
            with self._lock:
                self._timed_out += 1
            raise
        except ConnectionLost as exc:
            if self._closed:
                raise ClientClosed(f"the client was closed while {name} was in flight") from None
            self._went_down(exc)
            raise
        finally:
            with self._lock:
                self._in_flight -= 1
        self._came_back()
        assert response is not None
        return response

    def send_action(
        self, action: Union[str, Mapping[str, HeaderValue]], headers: Optional[Mapping[str, HeaderValue]] = None,
        *, timeout: Optional[float] = _UNSET, **fields: HeaderValue,
    ) -> ActionFuture:
        """Send an action from the send pool; return a future of its :class:`Response` (errors included).

        Same forms and rules as ``AMIClient.send_action``: CR or LF raises
        ``ValueError`` and sends nothing; the future fails with
        ActionTimeout, ConnectionLost or ClientClosed.  An action still
        queued when its timeout passes is never sent.
        """
        name, params, action_id, timeout = self._prepare(action, headers, fields, timeout)
        self._ensure_started()
        future = _HTTPFuture(name, action_id, timeout, self._dispatcher.call_soon)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="amiclient-http-send")
            self._futures.add(future)
            self._executor.submit(self._run, future, name, params, deadline)
        return future

    def _run(self, future: ActionFuture, name: str, params: List[Tuple[str, str]], deadline: Optional[float]) -> None:
        outcome: Union[Response, BaseException, None] = None
        try:
            if future.done():  # timed out or cancelled while queued: never sent
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                outcome = ActionTimeout(f"{name} (ActionID {future.action_id}) waited {future.timeout:g} s "
                                        f"for a send worker; not sent", future.action_id)
                return
            with self._lock:
                self._pool_running += 1
            try:
                outcome = self._perform(name, params, left)
            except AMIError as exc:
                outcome = exc
            except Exception as exc:  # a bug: never leave the caller waiting
                log.exception("sending %s failed", name)
                outcome = exc
            finally:
                with self._lock:
                    self._pool_running -= 1
        finally:
            with self._lock:
                self._futures.discard(future)
            if isinstance(outcome, BaseException):
                fail(future, outcome)
            elif outcome is not None and not future.done():
                try:
                    future.set_result(outcome)
                except Exception:  # timed out or cancelled meanwhile
                    pass

    def action(
        self, action: Union[str, Mapping[str, HeaderValue]], headers: Optional[Mapping[str, HeaderValue]] = None,
        *, timeout: Optional[float] = _UNSET, **fields: HeaderValue,
    ) -> Response:
        """Send an action (on this thread) and return its response; ActionError for ``Error``/``Failure``.

        Raises ActionTimeout, ConnectionLost or ClientClosed when no answer can come.
        """
        name, params, _, timeout = self._prepare(action, headers, fields, timeout)
        self._ensure_started()
        response = self._perform(name, params, timeout)
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
        error = ActionTimeout(f"no answer to {future.action} (ActionID {future.action_id}) within {future.timeout:g} s",
                              future.action_id)
        fail(future, error)
        if future.exception() is error:
            with self._lock:
                self._timed_out += 1
            raise error
        return future.result(0)  # type: ignore[no-any-return]

    def command(self, command: str, *, timeout: Optional[float] = _UNSET) -> str:
        """Run a CLI command; return its output (``Output`` lines joined)."""
        return self.action("Command", Command=command, timeout=timeout).output

    def set_events(self, mask: Union[bool, str]) -> Response:
        """Change the event mask used while listeners exist (sent now if the poller runs)."""
        self.events = mask
        value = self._wanted_mask()
        response = self.action("Events", EventMask=value)
        with self._lock:
            self._session_mask = value
            self._mask_changed.notify_all()  # an add_listener() waiting for events on may return
        return response

    # ------------------------------------------------------------------ stats

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the client's counters (requests but WaitEvent polls; bytes are HTTP bodies)."""
        dispatcher = self._dispatcher
        transport = self._transport
        received, dispatched, dropped, queued = dispatcher.counts()  # one consistent snapshot
        return ClientStats(
            events_received=received, events_dispatched=dispatched,
            events_dropped=dropped, events_queued=queued,
            queue_high_water=dispatcher.high_water, listener_errors=dispatcher.listener_errors,
            actions_sent=transport.requests - self._poller.polls,
            actions_in_flight=self._in_flight + len(self._futures) - self._pool_running,
            actions_timed_out=self._timed_out, reconnects=self._reconnects,
            bytes_in=transport.bytes_in, bytes_out=transport.bytes_out, connected=self.connected,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.connected else "disconnected")
        return f"<AMIHTTPClient {self.username}@{self.url} {state}>"


class AJAMClient(AMIHTTPClient):
    """Deprecated: use :class:`AMIHTTPClient` (``ssl_context`` is now ``tls``)."""

    def __init__(self, url: str = "http://127.0.0.1:8088/asterisk/", username: str = "", secret: str = "", *,
                 ssl_context: Optional[ssl.SSLContext] = None, **options: Any) -> None:
        warnings.warn("AJAMClient is deprecated; use amiclient.AMIHTTPClient", DeprecationWarning, stacklevel=2)
        super().__init__(url, username, secret, tls=ssl_context, **options)


def _after_fork() -> None:
    for client in list(_clients):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

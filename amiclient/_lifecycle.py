"""Client lifecycle: connect (one attempt shared by every waiter), wait for the link, close, fork.

Connecting never happens under the client lock and never on a caller's
thread: :meth:`Lifecycle.connect` (or the first action of a ``lazy``
client) starts the io thread, whose first job is to open the link; every
caller waits for that one attempt with its own timeout.  :meth:`close`
returns within its timeout in every state (connecting to a server that
never sends its banner included).
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, List, Optional

from . import _tracker
from ._callbacks import CallbackRunner
from ._connection import Connection
from ._listeners import Dispatcher, ListenerRegistry
from ._tcp_reader import TcpLink
from .exceptions import AMIConnectionError, AMIError, ClientClosed, ConnectionLost
from .state import ConnectionState, StateChange

__all__ = ["ConnectAttempt", "Lifecycle"]

log = logging.getLogger("amiclient.client")

_clients: weakref.WeakSet[Lifecycle] = weakref.WeakSet()


class ConnectAttempt:
    """The first connect of one io thread run; ``error`` is set if it failed."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: Optional[BaseException] = None

    def raise_error(self) -> None:
        """Raise the failure (a fresh copy per caller) if there was one."""
        error = self.error
        if error is None:
            return
        if isinstance(error, AMIError):
            try:
                copy = type(error)(*error.args)
            except Exception:
                raise error from None
            raise copy from error
        if isinstance(error, ValueError):  # the caller's own settings (e.g. a secret that cannot be sent)
            raise ValueError(*error.args) from None
        raise AMIConnectionError(f"connecting failed: {error!r}") from error


class Lifecycle:
    """connect/close/wait_connected and the wait for a live link (a mixin of the client)."""

    host: str
    port: int
    lazy: bool
    reconnect: bool
    _registry: ListenerRegistry
    _dispatcher: Dispatcher
    _callbacks: CallbackRunner
    _closed: bool

    if TYPE_CHECKING:
        @property
        def address(self) -> str: ...
        def _emit(self, change: StateChange) -> None: ...
        def _io_main(self, attempt: ConnectAttempt) -> None: ...
        def _logoff(self, link: TcpLink, wait: float) -> None: ...
        def _new_dispatcher(self) -> Dispatcher: ...
        def _new_callback_runner(self) -> CallbackRunner: ...

    def _init_runtime(self) -> None:
        """Fresh locks and link state (at creation, and in a forked child)."""
        self._lock = threading.RLock()
        self._link_changed = threading.Condition(self._lock)  # notified when the link or the io thread changes
        self._link: Optional[TcpLink] = None
        self._opening: Optional[Connection] = None
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._io_thread: Optional[threading.Thread] = None  # the running io thread, until it is about to end
        self._io_threads: List[threading.Thread] = []  # every io thread not yet joined (close() joins them)
        self._attempt: Optional[ConnectAttempt] = None
        self._was_connected = False
        _clients.add(self)

    # ------------------------------------------------------------------ connect

    def connect(self, timeout: Optional[float] = None) -> Any:
        """Connect, read the banner and log in; raises AuthenticationError or AMIConnectionError.

        Concurrent callers share one attempt; ``timeout`` bounds this
        caller's wait (AMIConnectionError; the attempt goes on).  While the
        client reconnects, waits for the new link (ConnectionLost when the
        timeout ends first).  On a client whose link dropped with
        ``reconnect=False``, opens a new one.
        """
        wait = _wait_limit(timeout)
        deadline = None if wait is None else time.monotonic() + wait
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            attempt = self._start_locked()
        if not attempt.done.wait(wait):
            raise AMIConnectionError(f"not connected to {self.address} within {timeout:g} s")
        attempt.raise_error()
        if not self._connected.is_set():  # the first link came and went: wait for the reconnect, as a caller would
            self._wait_link(deadline)
        return self

    def _start_locked(self) -> ConnectAttempt:
        """The running io thread's first connect, or a new io thread (caller holds the lock)."""
        attempt = self._attempt
        if self._io_thread is not None and attempt is not None:
            return attempt
        attempt = self._attempt = ConnectAttempt()
        thread = threading.Thread(target=self._io_main, args=(attempt,), name=f"amiclient-io-{self.address}", daemon=True)
        self._io_thread = thread
        self._io_threads = [t for t in self._io_threads if t.is_alive()] + [thread]
        thread.start()
        return attempt

    def _install(self, link: TcpLink, state: ConnectionState) -> bool:
        """Make ``link`` the live link (io thread); False if the client is closing."""
        with self._lock:
            if self._closing.is_set():
                link.conn.close()
                return False
            self._dispatcher.start()
            self._link = link
            self._was_connected = True
            attempt = self._attempt
            if attempt is not None and not attempt.done.is_set():
                attempt.done.set()
            self._connected.set()
            self._link_changed.notify_all()
        self._emit(StateChange(state))
        return True

    def _link_down(self) -> None:
        """The io thread lost its link (caller holds the lock)."""
        self._connected.clear()
        if (self._closing.is_set() or not self.reconnect) and self._io_thread is threading.current_thread():
            self._io_thread = None  # this io thread ends: connect() (or a lazy action) may start the next one
        self._link_changed.notify_all()

    def _io_ended(self, attempt: ConnectAttempt, error: Optional[BaseException]) -> None:
        """The io thread ends: report a failed first connect, wake every waiter."""
        with self._lock:
            if error is not None and not attempt.done.is_set():
                attempt.error = error
            attempt.done.set()
            if self._io_thread is threading.current_thread():
                self._io_thread = None
                self._connected.clear()
            self._link_changed.notify_all()

    def _wait_link(self, deadline: Optional[float], stale: Optional[object] = None) -> TcpLink:
        """The live link, waiting until ``deadline`` (``time.monotonic()``) while connecting or reconnecting.

        Never returns ``stale``.  A lazy client starts connecting here.
        """
        link = self._link
        if link is not None and link is not stale:
            return link
        attempt: Optional[ConnectAttempt] = None
        with self._link_changed:
            while True:
                if self._closed:
                    raise ClientClosed("the client is closed")
                link = self._link
                if link is not None and link is not stale:
                    return link
                if self._io_thread is None:
                    if attempt is not None:
                        attempt.raise_error()  # the attempt we waited for failed
                    if self.lazy:
                        attempt = self._start_locked()
                    elif self._was_connected:
                        raise ConnectionLost(f"the connection to {self.address} was lost (reconnect is off): call connect()")
                    else:
                        raise AMIConnectionError("not connected: call connect() first")
                elif attempt is None:
                    attempt = self._attempt
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and not remaining > 0:  # NaN included
                    raise ConnectionLost(f"not connected to {self.address} before the action's deadline")
                self._link_changed.wait(_wait_limit(remaining))

    def _live_link(self) -> Optional[TcpLink]:
        return self._link

    def wait_connected(self, timeout: Optional[float] = None) -> bool:
        """Block until connected (or reconnected); False on timeout, or once the client is closed."""
        if self._connected.is_set():
            return True
        with self._link_changed:
            self._link_changed.wait_for(lambda: self._connected.is_set() or self._closed, _wait_limit(timeout))
        return self._connected.is_set() and not self._closed

    @property
    def connected(self) -> bool:
        """True while logged in over a live connection."""
        return self._connected.is_set()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # ------------------------------------------------------------------ close

    def close(self, timeout: Optional[float] = 5.0) -> None:
        """Log off, close the socket and join the client's threads within ``timeout`` s; idempotent, safe from a listener.

        Every action still waiting fails with ClientClosed, whatever state the
        io thread is in.  ``timeout=None``: wait for the threads without limit.
        """
        limit = _wait_limit(timeout)
        deadline = time.monotonic() + (threading.TIMEOUT_MAX if limit is None else limit)
        timeout = deadline - time.monotonic()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._closing.set()
            self._link_changed.notify_all()
            link, opening, io_thread, io_threads = self._link, self._opening, self._io_thread, list(self._io_threads)
        current = threading.current_thread()
        if link is not None and not link.closed:
            self._logoff(link, 0.0 if current is io_thread else min(1.0, timeout / 2))
            link.conn.close()
        if opening is not None:
            opening.close()
        for thread in io_threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        if link is not None:  # normally done by the io thread; not if it died or is still stuck
            link.tracker.close(ClientClosed("the client was closed"))
        self._emit(StateChange(ConnectionState.CLOSED))
        self._dispatcher.stop(max(0.0, deadline - time.monotonic()) / 2)  # it may join twice
        self._callbacks.stop(max(0.0, deadline - time.monotonic()))
        _clients.discard(self)

    # ------------------------------------------------------------------ fork

    def _after_fork_in_child(self) -> None:
        """Drop the parent's socket and threads; every lock is new; reconnect on first use if the parent was connected."""
        link, opening, was_running = self._link, self._opening, self._io_thread is not None
        self._init_runtime()
        if opening is not None:  # a connect in progress in the parent: the child must not keep its socket open
            opening.detach_after_fork()
        self._registry.reset_after_fork()
        self._dispatcher = self._new_dispatcher()
        self._callbacks = self._new_callback_runner()
        if link is not None:
            link.conn.detach_after_fork()
        if was_running and not self._closed:
            self.lazy = True


def _wait_limit(timeout: Optional[float]) -> Optional[float]:
    """``timeout`` (s) as a wait the threading module takes: None (no limit) for None, infinity or huge values."""
    if timeout is None:
        return None
    if timeout != timeout:
        raise ValueError("a timeout must be a number of seconds, not NaN")
    return None if timeout >= threading.TIMEOUT_MAX else max(0.0, timeout)


def _after_fork() -> None:
    _tracker._condition_guard = threading.Lock()
    for client in list(_clients):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

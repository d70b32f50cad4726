"""``LiveState``: a :class:`LiveModel` kept in sync with Asterisk through any client.

It uses only the public client API: ``add_listener``/``remove_listener``
(events are applied on the client's dispatcher thread), ``on_state``/
``remove_state_listener`` (a sync after every connect and reconnect) and
``send_action`` (the snapshot actions, sent from LiveState's own sync thread).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..exceptions import AMIError
from ..packet import Event
from ..state import ConnectionState, StateChange
from ._model import Change, LiveModel
from ._records import Bridge, Call, Channel, ExtensionState, Queue
from ._sync import load_snapshot, take_snapshot

__all__ = ["LiveState", "LiveSnapshot", "KINDS"]

log = logging.getLogger("amiclient.live")

#: What :meth:`LiveState.on` accepts.
KINDS = frozenset((
    "call_started", "call_answered", "call_changed", "call_ended", "channel_new", "channel_changed", "channel_gone",
    "bridge_changed", "queue_changed", "device_changed", "extension_changed", "state", "*",
))


@dataclass(frozen=True)
class LiveSnapshot:
    """Every category at one instant (between two events): calls, channels and bridges agree."""

    channels: Mapping[str, Channel]
    bridges: Mapping[str, Bridge]
    calls: Mapping[str, Call]
    queues: Mapping[str, Queue]
    devices: Mapping[str, str]
    extensions: Mapping[Tuple[str, str], ExtensionState]


class LiveState:
    """Channels, calls, bridges, queues, devices and extensions, always in sync with Asterisk.

    ``LiveState(client)`` subscribes at once and syncs now (if connected) and
    after every (re)connect.  Every property returns a read-only mapping of
    frozen records that never changes afterwards; read from any thread.
    ``history``: ended calls kept in :attr:`ended_calls`; ``sync_timeout``:
    seconds allowed for the snapshot actions; ``retry``: seconds before a
    failed sync is tried again while connected.
    """

    def __init__(self, client: Any, *, history: int = 100, sync_timeout: float = 10.0, retry: float = 2.0) -> None:
        self._client = client
        self.sync_timeout = sync_timeout
        self.retry = retry
        self._model = LiveModel(history)
        self._lock = threading.Lock()  # guards the model
        self._wake = threading.Condition(threading.Lock())  # the sync thread's requests
        self._buffer: Optional[List[Event]] = None  # events held back while a snapshot is taken
        self._views: Dict[str, Tuple[int, Mapping[Any, Any]]] = {}
        self._callbacks: Dict[str, Tuple[Callable[[Change], Any], ...]] = {}
        self._routes: Dict[str, Tuple[Callable[[Change], Any], ...]] = {}  # kind -> its callbacks and "*"'s
        self._state = "syncing"
        self._synced = threading.Event()
        self._requested = 0
        self._served = 0
        self._epoch = 0  # disconnects seen (guarded by _wake)
        self._closed = False  # the sync thread must end
        self._detached = False  # close() ran
        self._handle = client.add_listener(self._on_event)
        client.on_state(self._on_client_state)
        self._thread = threading.Thread(target=self._sync_loop, name="amiclient-live-sync", daemon=True)
        self._thread.start()
        if getattr(client, "connected", True):
            self.resync()

    # -- reading -------------------------------------------------------------------

    def _view(self, category: str) -> Mapping[Any, Any]:
        cached = self._views.get(category)
        if cached is not None and cached[0] == self._model.version[category]:
            return cached[1]
        with self._lock:
            version = self._model.version[category]
            view: Mapping[Any, Any] = MappingProxyType(dict(getattr(self._model, category)))
            self._views[category] = (version, view)
        return view

    def snapshot(self) -> LiveSnapshot:
        """All categories at one instant (the properties may each be read between two events)."""
        with self._lock:
            views = {}
            for category in ("channels", "bridges", "calls", "queues", "devices", "extensions"):
                version = self._model.version[category]
                cached = self._views.get(category)
                if cached is None or cached[0] != version:
                    cached = (version, MappingProxyType(dict(getattr(self._model, category))))
                    self._views[category] = cached
                views[category] = cached[1]
        return LiveSnapshot(**views)

    @property
    def channels(self) -> Mapping[str, Channel]:
        """Live channels by uniqueid."""
        return self._view("channels")

    @property
    def bridges(self) -> Mapping[str, Bridge]:
        """Bridges by bridge id."""
        return self._view("bridges")

    @property
    def calls(self) -> Mapping[str, Call]:
        """Calls in progress by linkedid."""
        return self._view("calls")

    @property
    def queues(self) -> Mapping[str, Queue]:
        """Queues by name."""
        return self._view("queues")

    @property
    def devices(self) -> Mapping[str, str]:
        """Device states (``NOT_INUSE``, ``INUSE``...) by device (``PJSIP/100``, ``Custom:desk``)."""
        return self._view("devices")

    @property
    def extensions(self) -> Mapping[Tuple[str, str], ExtensionState]:
        """Hinted extensions' states by ``(exten, context)``."""
        return self._view("extensions")

    @property
    def ended_calls(self) -> Tuple[Call, ...]:
        """The most recently ended calls, oldest first (at most ``history``)."""
        with self._lock:
            return tuple(self._model.ended_calls)

    @property
    def state(self) -> str:
        """``"syncing"``, ``"synced"``, ``"stale"`` (a sync failed; retrying), ``"disconnected"`` or ``"closed"``."""
        return self._state

    def wait_synced(self, timeout: Optional[float] = None) -> bool:
        """Wait until the state reflects a completed sync; False on timeout."""
        return self._synced.wait(timeout)

    # -- callbacks --------------------------------------------------------------------

    def on(self, kind: str, callback: Callable[[Change], Any]) -> Callable[[Change], Any]:
        """Call ``callback(change)`` for each change of ``kind`` (see :data:`KINDS`; ``"*"``: all).

        Callbacks run on the client's dispatcher thread (on LiveState's sync
        thread for what a sync finds); they must not block.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {sorted(KINDS)}")
        with self._lock:
            self._callbacks[kind] = self._callbacks.get(kind, ()) + (callback,)
            self._rebuild_routes()
        return callback

    def _rebuild_routes(self) -> None:
        catch_all = self._callbacks.get("*", ())
        self._routes = {kind: self._callbacks.get(kind, ()) + catch_all for kind in KINDS if kind != "*"}
        self._routes = {kind: callbacks for kind, callbacks in self._routes.items() if callbacks}

    def remove_callback(self, kind: str, callback: Callable[[Change], Any]) -> bool:
        """Unregister a callback; False if it was not registered for ``kind``."""
        with self._lock:
            before = self._callbacks.get(kind, ())
            self._callbacks[kind] = tuple(c for c in before if c is not callback)
            self._rebuild_routes()
            return len(before) != len(self._callbacks[kind])

    def _notify(self, changes: List[Change]) -> None:
        routes = self._routes
        if not routes:
            return
        for change in changes:
            for callback in routes.get(change.kind, ()):
                try:
                    callback(change)
                except Exception:
                    log.exception("live-state callback %r raised on %s", callback, change.kind)

    def _set_state(self, state: str, *, epoch: Optional[int] = None) -> None:
        """Move to ``state`` (with ``epoch``: only if no disconnect was seen since that epoch)."""
        with self._wake:
            if epoch is not None and (epoch != self._epoch or self._closed):
                return  # the link dropped (or close() ran) while this sync ran: its result is already stale
            old, self._state = self._state, state
            if state == "synced":
                self._synced.set()
            else:
                self._synced.clear()
        if old != state:
            self._notify([Change("state", None, old, state)])

    # -- events ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        model = self._model
        with self._lock:
            buffer = self._buffer
            if buffer is not None:
                buffer.append(event)
                return
            model.apply(event)
            changes = model.changes
            if not changes:
                return
            model.changes = []
        self._notify(changes)

    def _on_client_state(self, change: StateChange) -> None:
        if self._closed:
            return
        if change.state in (ConnectionState.CONNECTED, ConnectionState.RECONNECTED):
            self.resync()
        elif change.state in (ConnectionState.DISCONNECTED, ConnectionState.RECONNECTING):
            with self._wake:
                self._epoch += 1  # a sync running now must not end "synced"
            if self._state != "disconnected":
                self._set_state("disconnected")
        elif change.state is ConnectionState.CLOSED:  # nothing more will come: end the sync thread
            with self._wake:
                self._closed = True
                self._wake.notify_all()
            self._set_state("closed")

    # -- syncing -------------------------------------------------------------------------

    def resync(self) -> None:
        """Ask for a sync (done on LiveState's sync thread); :meth:`wait_synced` waits for it."""
        with self._wake:
            self._requested += 1
            self._synced.clear()
            self._wake.notify()

    def _sync_loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed and self._served == self._requested:
                    self._wake.wait()
                if self._closed:
                    return
                ticket = self._requested
            ok = self._sync_once(ticket)
            with self._wake:
                self._served = ticket
                if not ok and not self._closed and getattr(self._client, "connected", False):
                    self._wake.wait(self.retry)  # then try again, unless closed or asked anew
                    if not self._closed and self._served == self._requested:
                        self._requested += 1

    def _sync_once(self, ticket: int) -> bool:
        with self._wake:
            epoch = self._epoch
        with self._lock:
            self._buffer = []
        self._set_state("syncing")
        snapshot = None
        try:
            snapshot = take_snapshot(self._client, self.sync_timeout)
        except (AMIError, TimeoutError) as exc:
            log.info("live state: sync failed: %s", exc)
        except Exception:  # never let the sync thread die on a surprise
            log.exception("live state: sync failed")
        model = self._model
        with self._lock:
            held, self._buffer = self._buffer or [], None  # whatever happens, stop holding events back
            try:
                if snapshot is not None:
                    load_snapshot(model, snapshot)
            except Exception:
                log.exception("live state: could not load the snapshot")
                snapshot = None
            for event in held:
                try:
                    model.apply(event)
                except Exception:
                    log.exception("live state: could not apply %s", event.get("Event"))
            changes, model.changes = model.changes, []
        self._notify(changes)
        if snapshot is None:
            if self._state == "syncing":
                self._set_state("disconnected" if not getattr(self._client, "connected", True) else "stale")
            return False
        with self._wake:
            latest = ticket == self._requested
        if latest:  # else another sync follows at once
            self._set_state("synced", epoch=epoch)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Unsubscribe from the client and stop the sync thread (the client stays open)."""
        with self._wake:
            if self._detached:
                return
            self._detached = self._closed = True
            self._wake.notify_all()
        self._client.remove_listener(self._handle)
        remove_state = getattr(self._client, "remove_state_listener", None)
        if remove_state is not None:
            remove_state(self._on_client_state)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._set_state("closed")

    def __enter__(self) -> LiveState:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<LiveState {self._state}: {len(self._model.channels)} channels, {len(self._model.calls)} calls, "
                f"{len(self._model.bridges)} bridges, {len(self._model.queues)} queues>")

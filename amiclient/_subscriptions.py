"""Listener and connection-state subscriptions, shared by every client transport.

A client class mixes this in and provides ``_registry`` (a
:class:`ListenerRegistry`), ``_dispatcher`` (the :class:`Dispatcher` that
runs callbacks on its own thread), ``_state_callbacks``, ``_lock``,
``_filters`` (re-applied by the transport on every new login) and ``action``.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, TypeVar

from ._listeners import Dispatcher, EventSpec, ListenerHandle, ListenerRegistry
from .packet import Event, Response
from .state import StateChange

__all__ = ["ListenerAPI"]

log = logging.getLogger("amiclient.client")

_F = TypeVar("_F", bound=Callable[..., Any])


class ListenerAPI:
    """``add_listener``/``on``/``remove_listener`` and ``on_state`` for a client."""

    _registry: ListenerRegistry
    _dispatcher: Dispatcher
    _state_callbacks: Tuple[Callable[[StateChange], Any], ...]
    _lock: threading.RLock
    _filters: List[Dict[str, str]]

    if TYPE_CHECKING:
        def action(self, action: str, headers: Optional[Dict[str, str]] = None) -> Response: ...

    def add_filter(self, filter: str, match_criteria: Optional[str] = None) -> Response:
        """Add a server-side event filter (``Filter`` action); re-applied after every reconnect or new login."""
        fields = {"Operation": "Add", "Filter": filter}
        if match_criteria:
            fields["MatchCriteria"] = match_criteria
        response = self.action("Filter", fields)
        self._filters.append(fields)
        return response

    def add_listener(
        self, callback: Callable[[Event], Any], event: EventSpec = None, *, filter: Optional[Callable[[Event], bool]] = None
    ) -> ListenerHandle:
        """Call ``callback(event)`` on the dispatcher thread for matching events.

        ``event``: a name (``"Hangup"``), a glob (``"Queue*"``), a list of
        those, or None for every event; ``filter``: a predicate on the event.
        """
        _check_names(self, event)  # catalog
        return self._registry.add(callback, event, filter)

    def on(self, event: EventSpec = None, *, filter: Optional[Callable[[Event], bool]] = None) -> Callable[[_F], _F]:
        """Decorator form of :meth:`add_listener`."""
        _check_names(self, event)  # catalog

        def register(callback: _F) -> _F:
            self._registry.add(callback, event, filter)
            return callback
        return register

    def remove_listener(self, handle: ListenerHandle) -> bool:
        """Unregister a listener (safe from inside a listener); False if unknown.

        Once it returns the listener is never called again, even for the rest
        of an event batch; from another thread it first waits for a call of
        that listener in progress to return.
        """
        return self._registry.remove(handle)

    def on_state(self, callback: Callable[[StateChange], Any]) -> Callable[[StateChange], Any]:
        """Call ``callback(StateChange)`` on the dispatcher thread at every connection-state change."""
        with self._lock:
            self._state_callbacks += (callback,)
        return callback

    def remove_state_listener(self, callback: Callable[[StateChange], Any]) -> bool:
        """Unregister a state callback; False if unknown."""
        with self._lock:
            before = self._state_callbacks
            self._state_callbacks = tuple(c for c in before if c is not callback)
            return len(before) != len(self._state_callbacks)

    def _emit(self, change: StateChange) -> None:
        callbacks = self._state_callbacks
        if not callbacks:
            return

        def notify() -> None:
            for callback in callbacks:
                try:
                    callback(change)
                except Exception:
                    log.exception("state callback %r raised on %s", callback, change.state.value)

        self._dispatcher.call_soon(notify)


def _check_names(client: object, event: EventSpec) -> None:  # catalog: warn about a likely typo in an event name
    if isinstance(event, (str, list, tuple, set, frozenset)) and getattr(client, "validate", "warn") != "off":
        from .catalog import warn_unknown_event as warn_unknown  # loads the full catalogue only for unknown names

        warn_unknown(event)

"""Listener registry and the dispatcher thread that runs listeners.

The reader thread hands over whole batches of events (one queue operation
per socket read, not per event).  Unparsed events travel as their packet
text; the dispatcher reads only the name, and parses an event only when a
listener wants it.  Listeners run on the dispatcher thread in arrival
order; one that raises is logged and the others still run.

The queue is bounded in events (``max_events``); when full, ``overflow``
decides what goes: ``"drop_oldest"`` or ``"drop_newest"``.  Every event is
counted: ``received == dispatched + dropped + queued`` at all times.
"""
from __future__ import annotations

import fnmatch
import itertools
import logging
import re
import threading
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Pattern, Tuple, Union, cast

from ._protocol import EventShapes
from .packet import Event

__all__ = ["ListenerHandle", "ListenerRegistry", "Dispatcher", "EventSpec", "OVERFLOW_POLICIES"]

log = logging.getLogger("amiclient.listeners")

EventSpec = Union[None, str, Iterable[str]]
OVERFLOW_POLICIES = ("drop_oldest", "drop_newest")
_ids = itertools.count(1)


class ListenerHandle:
    """A registered listener; pass it to ``remove_listener``."""

    __slots__ = ("id", "callback", "names", "pattern", "filter", "active", "__weakref__")

    def __init__(
        self,
        callback: Callable[[Event], Any],
        names: Optional[frozenset],  # type: ignore[type-arg]
        pattern: Optional[Pattern[str]],
        filter: Optional[Callable[[Event], bool]],
    ) -> None:
        self.id = next(_ids)
        self.callback = callback
        self.names = names
        self.pattern = pattern
        self.filter = filter
        self.active = True  # False once removed: never called again

    def matches(self, name: str) -> bool:
        """Whether this listener wants events called ``name`` (before its filter)."""
        if self.names is None and self.pattern is None:
            return True
        lower = name.lower()
        if self.names is not None and lower in self.names:
            return True
        return self.pattern is not None and self.pattern.match(lower) is not None

    def __repr__(self) -> str:
        target = getattr(self.callback, "__qualname__", repr(self.callback))
        return f"<ListenerHandle {self.id} {target}>"


class _Snapshot:
    __slots__ = ("listeners", "cache")

    def __init__(self, listeners: Tuple[ListenerHandle, ...]) -> None:
        self.listeners = listeners
        self.cache: Dict[str, Tuple[ListenerHandle, ...]] = {}


class ListenerRegistry:
    """Listeners by event name; lookups are lock-free (copy on write).

    After :meth:`remove` returns, the listener is never called again: the
    dispatcher checks each handle just before calling it, and a removal
    from another thread waits for a call of that listener in progress.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = _Snapshot(())
        self._calling: Optional[ListenerHandle] = None  # the handle the dispatcher is calling
        self._caller: Optional[threading.Thread] = None  # the dispatcher thread
        self._idle = threading.Condition(threading.Lock())
        self._removers = 0  # threads waiting in remove() for a call to end

    def reset_after_fork(self) -> None:
        """New locks in a forked child (another thread may have held them at fork()); listeners are kept."""
        self._lock = threading.Lock()
        self._calling = None
        self._caller = None
        self._idle = threading.Condition(threading.Lock())
        self._removers = 0

    def add(
        self,
        callback: Callable[[Event], Any],
        event: EventSpec = None,
        filter: Optional[Callable[[Event], bool]] = None,
    ) -> ListenerHandle:
        """Register ``callback`` for ``event`` (a name, a glob like ``"Queue*"``, several, or None = all)."""
        if not callable(callback):
            raise TypeError("listener callback must be callable")
        names: Optional[frozenset] = None  # type: ignore[type-arg]
        pattern: Optional[Pattern[str]] = None
        if event is not None:
            specs = [event] if isinstance(event, str) else list(event)
            if not specs or not all(isinstance(s, str) and s for s in specs):
                raise ValueError(f"invalid event selection: {event!r}")
            globs = [s.lower() for s in specs if any(c in s for c in "*?[")]
            names = frozenset(s.lower() for s in specs if not any(c in s for c in "*?["))
            if globs:
                pattern = re.compile("|".join(fnmatch.translate(g) for g in globs))
        handle = ListenerHandle(callback, names, pattern, filter)
        with self._lock:
            self._snapshot = _Snapshot(self._snapshot.listeners + (handle,))
        return handle

    def remove(self, handle: ListenerHandle) -> bool:
        """Unregister; False if it was not registered."""
        with self._lock:
            listeners = self._snapshot.listeners
            if handle not in listeners:
                return False
            handle.active = False
            self._snapshot = _Snapshot(tuple(h for h in listeners if h is not handle))
        if self._calling is handle and threading.current_thread() is not self._caller:
            with self._idle:  # the dispatcher is inside this listener: wait until it returns
                self._removers += 1
                try:
                    while self._calling is handle and self._caller is not None and self._caller.is_alive():
                        self._idle.wait(0.1)
                finally:
                    self._removers -= 1
        return True

    def call(self, handle: ListenerHandle, event: Event) -> None:
        """Run ``handle`` on ``event`` unless it was removed (the dispatcher inlines this)."""
        self._calling = handle  # set before checking: a concurrent remove() then waits for us
        try:
            if handle.active and (handle.filter is None or handle.filter(event)):
                handle.callback(event)
        finally:
            self._calling = None
            if self._removers:
                self.wake_removers()

    def wake_removers(self) -> None:
        """The dispatcher left a listener: wake the remove() calls waiting for that."""
        with self._idle:
            self._idle.notify_all()

    def snapshot_cache(self) -> Dict[str, Tuple[ListenerHandle, ...]]:
        """The current name -> listeners cache (replaced whenever listeners change)."""
        return self._snapshot.cache

    def match(self, name: str) -> Tuple[ListenerHandle, ...]:
        """The listeners that want events called ``name``, in registration order."""
        snapshot = self._snapshot
        found = snapshot.cache.get(name)
        if found is None:
            found = tuple(h for h in snapshot.listeners if h.matches(name))
            if len(snapshot.cache) < 4096:
                snapshot.cache[name] = found
        return found


EventItem = Union[str, Event]  # an event as packet text (parsed only if a listener wants it) or parsed
QueueItem = Union[EventItem, Callable[[], Any]]


class Dispatcher:
    """The thread that runs listeners, fed in batches by the reader."""

    def __init__(
        self,
        registry: ListenerRegistry,
        *,
        max_events: int = 500_000,
        overflow: str = "drop_oldest",
        backlog_warning: int = 10_000,
        name: str = "amiclient-dispatch",
    ) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, not {overflow!r}")
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.registry = registry
        self.max_events = max_events
        self.overflow = overflow
        self.backlog_warning = backlog_warning
        self.name = name
        self.received = 0
        self.dispatched = 0
        self.dropped = 0
        self.high_water = 0
        self.listener_errors = 0
        self._queue: Deque[List[QueueItem]] = deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = False
        self._stopping = False
        self._abandon = False
        self._warned = False
        self._thread: Optional[threading.Thread] = None
        self._in_callback = False  # a call_soon() function (state callbacks) is running
        self._shapes = EventShapes()  # used by the dispatcher thread only

    @property
    def depth(self) -> int:
        """Events received but not yet dispatched or dropped."""
        with self._lock:
            return self.received - self.dispatched - self.dropped

    def counts(self) -> Tuple[int, int, int, int]:
        """``(received, dispatched, dropped, queued)`` of one instant: ``received == dispatched + dropped + queued``."""
        with self._lock:
            received, dispatched, dropped = self.received, self.dispatched, self.dropped
        return received, dispatched, dropped, received - dispatched - dropped

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._stopping = False
            self._abandon = False
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def put_events(self, events: List[EventItem]) -> None:
        """Queue a batch of events (packet texts or Event objects); never blocks."""
        count = len(events)
        with self._lock:
            self.received += count
            room = self.max_events - (self.received - self.dispatched - self.dropped) + count
            if count > room:
                events = self._make_room(events, room)
            if events:
                self._queue.append(cast(List[QueueItem], events))
            depth = self.received - self.dispatched - self.dropped
            if depth > self.high_water:
                self.high_water = depth
            if self._waiting:
                self._cond.notify()
        if depth >= self.backlog_warning:
            if not self._warned:
                self._warned = True
                log.warning("%s: %d events wait for listeners (a listener is slow or stuck)", self.name, depth)
        elif self._warned and depth < self.backlog_warning // 2:
            self._warned = False

    def _make_room(self, events: List[EventItem], room: int) -> List[EventItem]:
        """Apply the overflow policy; the caller holds the lock and already counted ``events``.

        A queued batch is either all events or one ``call_soon`` callable.
        """
        excess = len(events) - max(room, 0)
        if self.overflow == "drop_newest":
            self.dropped += excess
            return events[: max(room, 0)]
        # Oldest first, without copying the queue: the cost is the batches emptied (and any
        # call_soon callables before them, which stay), not the queue's length.
        queue = self._queue
        index = 0
        while excess > 0 and index < len(queue):
            batch = queue[index]  # near the front: cheap
            if not _is_event_batch(batch):
                index += 1
                continue
            cut = min(excess, len(batch))
            del batch[:cut]
            self.dropped += cut
            excess -= cut
            if batch:
                index += 1
            else:
                del queue[index]
        if excess > 0:
            self.dropped += excess
            events = events[excess:]
        return events

    def call_soon(self, function: Callable[[], Any]) -> None:
        """Run ``function`` on the dispatcher thread, after the events already queued."""
        with self._lock:
            self._queue.append([function])
            if self._waiting:
                self._cond.notify()

    def stop(self, timeout: float = 5.0) -> bool:
        """Run what is queued, then stop and join; True if the thread ended.

        Events still queued after ``timeout`` are dropped (and counted).
        Called from a listener, it only asks the thread to stop.
        """
        thread = self._thread
        with self._lock:
            self._stopping = True
            self._cond.notify()
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        if thread.is_alive():
            with self._lock:
                self._abandon = True
            thread.join(timeout)
        if thread.is_alive():
            if self.registry._calling is not None or self._in_callback:  # a listener holds the thread
                log.warning("%s: a listener has not returned within %.1f s of close()", self.name, 2 * timeout)
            return False
        self._thread = None
        return True

    def _run(self) -> None:
        queue = self._queue
        cond = self._cond
        registry = self.registry
        registry._caller = threading.current_thread()
        while True:
            with cond:
                while not queue:
                    if self._stopping:
                        return
                    self._waiting = True
                    cond.wait()
                    self._waiting = False
                if self._abandon:
                    self.dropped += sum(len(b) for b in queue if _is_event_batch(b))
                    queue.clear()
                    return
                batch = queue.popleft()
            if not _is_event_batch(batch):
                self._in_callback = True
                try:
                    batch[0]()  # type: ignore[operator]
                except Exception:
                    log.exception("%s: a callback raised", self.name)
                finally:
                    self._in_callback = False
                continue
            parse = self._shapes.parse
            counted = 0  # events of this batch already added to self.dispatched
            for index, item in enumerate(batch):
                if isinstance(item, str):
                    text = item
                    end = text.find("\r\n")
                    name = text[7:end] if end >= 0 else text[7:]
                    event: Optional[Event] = None
                else:
                    event = cast(Event, item)
                    name = event.name
                listeners = registry.snapshot_cache().get(name)  # per event: a listener may change them
                if listeners is None:
                    listeners = registry.match(name)
                if listeners:
                    if event is None:
                        event = parse(name, text)
                    for handle in listeners:
                        registry._calling = handle  # before the check: a concurrent remove() then waits
                        try:
                            if handle.active and (handle.filter is None or handle.filter(event)):
                                handle.callback(event)
                        except Exception:
                            self.listener_errors += 1
                            log.exception("listener %r raised on %s event", handle, name)
                        registry._calling = None
                        if registry._removers:
                            registry.wake_removers()
                    # Count precisely after a listener ran: it may have been slow.  Only this thread
                    # writes ``dispatched``; counts() reads it under the lock with the others.
                    self.dispatched += index + 1 - counted
                    counted = index + 1
                    if self._abandon:
                        with cond:
                            self.dropped += len(batch) - counted
                        break
            else:
                self.dispatched += len(batch) - counted


def _is_event_batch(batch: List[QueueItem]) -> bool:
    return bool(batch) and isinstance(batch[0], (str, Event))

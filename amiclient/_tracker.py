"""Actions in flight on one connection, matched to their responses and event lists.

One tracker lives as long as one connection.  Callers add actions; the
reader resolves them.  When the connection ends, :meth:`ActionTracker.close`
fails every action still waiting and refuses new ones, so no caller waits
on a dead link.

Matching rules (AMI-PROTOCOL.md §3-4):

* a response resolves the action with its ``ActionID``; one without an
  ``ActionID`` resolves the oldest unanswered action (Asterisk answers in
  order).  An action whose caller gave up (timeout) keeps its place as a
  *tombstone* until its answer arrives, is passed by a later answer that
  carries an ``ActionID``, or the connection ends: a late answer is
  dropped, never handed to the next action;
* ``EventList: start`` (any case) turns the action into a list: events
  with its ``ActionID`` are its items until one carries
  ``EventList: Complete``;
* servers before Asterisk 13.2 start some lists without ``EventList``
  (``Message: ... will follow``) and end them with a known ``...Complete``
  event; a table covers those, and Asterisk 1.4's ``DBGet``, whose only
  item also ends it.

Header names (``ActionID``, ``EventList``) and list flags and completion
names are matched in any case.  A packet that is neither a response nor
an event is skipped and counted (``malformed``); only framing errors end
the connection.
"""
from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import Any, Callable, Deque, Dict, FrozenSet, List, Optional, Union, cast

from ._protocol import parse_event, parse_packet
from .exceptions import ActionTimeout, AMIError, ConnectionLost, ProtocolError
from .packet import Event, Response

__all__ = ["ActionFuture", "ActionTracker", "LEGACY_LIST_COMPLETIONS", "list_completions", "ends_list"]

log = logging.getLogger("amiclient.client")

# Completion events of list actions on servers that do not send "EventList" (before 13.2).
LEGACY_LIST_COMPLETIONS: Dict[str, FrozenSet[str]] = {
    "status": frozenset({"statuscomplete"}),
    "dbget": frozenset({"dbgetcomplete"}),
    "dbgettree": frozenset({"dbgettreecomplete"}),
    "coreshowchannels": frozenset({"coreshowchannelscomplete"}),
    "queuestatus": frozenset({"queuestatuscomplete"}),
    "queuesummary": frozenset({"queuesummarycomplete"}),
    "sippeers": frozenset({"peerlistcomplete"}),
    "iaxpeers": frozenset({"peerlistcomplete"}),
    "iaxpeerlist": frozenset({"peerlistcomplete"}),
    "sipshowregistry": frozenset({"registrationscomplete"}),
    "iaxregistry": frozenset({"registrationscomplete"}),
    "parkedcalls": frozenset({"parkedcallscomplete"}),
    "agents": frozenset({"agentscomplete"}),
    "showdialplan": frozenset({"showdialplancomplete"}),
    "meetmelist": frozenset({"meetmelistcomplete"}),
    "confbridgelist": frozenset({"confbridgelistcomplete"}),
    "confbridgelistrooms": frozenset({"confbridgelistroomscomplete"}),
    "voicemailuserslist": frozenset({"voicemailuserentrycomplete"}),
    "extensionstatelist": frozenset({"extensionstatelistcomplete"}),
    "devicestatelist": frozenset({"devicestatelistcomplete"}),
    "bridgelist": frozenset({"bridgelistcomplete"}),
    "bridgeinfo": frozenset({"bridgeinfocomplete"}),
}


_condition_guard = threading.Lock()  # creates futures' conditions; guards the fast resolution path


class ActionFuture(Future):  # type: ignore[type-arg]
    """The future :class:`Response` of one action (a ``concurrent.futures.Future``).

    Every ``Future`` method works (``add_done_callback``, ``cancel``,
    ``concurrent.futures.wait``...).  The per-future ``Condition`` those use
    is only made when one of them is first called; until then the answer
    is handed over through a plain lock, which is what the blocking
    ``action()`` path pays for.

    Done-callbacks of a client's futures never run on the socket reader:
    they are handed to ``callback_runner`` (the client's callback threads),
    so one that blocks or calls the client delays no other answer.  A
    callback added once the future is done runs at once in the thread that
    adds it, as with any ``concurrent.futures.Future``.  ``deadline`` is
    when the client gives up waiting (``time.monotonic()``; None = never).
    """

    deadline: Optional[float] = None
    callback_runner: Optional[Callable[[Callable[[], Any]], None]] = None

    def __init__(self, action: str, action_id: str, timeout: Optional[float], deadline: Optional[float] = None,
                 callback_runner: Optional[Callable[[Callable[[], Any]], None]] = None) -> None:
        # Future.__init__ without its Condition (see the _condition property).
        self._state = PENDING
        self._result: Any = None
        self._exception: Optional[BaseException] = None
        self._waiters: List[Any] = []
        self._done_callbacks: List[Any] = []
        self._lazy_condition: Optional[threading.Condition] = None
        self.action = action
        self.action_id = action_id
        self.timeout = timeout
        self.deadline = deadline
        self.callback_runner = callback_runner
        self._resolved: Optional[threading.Lock] = None  # made by the first thread that blocks; released once resolved

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        condition = self._lazy_condition
        if condition is None:
            with _condition_guard:
                condition = self._lazy_condition
                if condition is None:
                    condition = self._lazy_condition = threading.Condition()
        return condition

    def _resolve_fast(self, result: Any, exception: Optional[BaseException]) -> bool:
        """Resolve without the Condition if nobody has used it; False if the full path is needed."""
        if self._lazy_condition is not None:
            return False
        with _condition_guard:
            if self._lazy_condition is not None:
                return False
            if self._state not in (PENDING, RUNNING):
                raise InvalidStateError(f"{self._state}: {self!r}")
            self._result, self._exception, self._state = result, exception, FINISHED
            resolved = self._resolved
        if resolved is not None:
            resolved.release()
        return True

    def _signal(self) -> None:
        with _condition_guard:
            resolved = self._resolved
        if resolved is not None:
            try:
                resolved.release()
            except RuntimeError:  # already signalled
                pass

    def _block(self, timeout: Optional[float]) -> None:
        """Wait until resolved or ``timeout`` seconds (None: no limit)."""
        with _condition_guard:  # the state and the lock are checked together with the resolver's
            resolved = self._resolved
            if resolved is None:
                resolved = self._resolved = threading.Lock()
                if self._state in (PENDING, RUNNING):
                    resolved.acquire()  # held until resolved
        if resolved.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            try:
                resolved.release()
            except RuntimeError:  # released meanwhile by a repeated cancel(): already open
                pass

    def set_result(self, result: Any) -> None:
        if not self._resolve_fast(result, None):
            super().set_result(result)
            self._signal()

    def set_exception(self, exception: Optional[BaseException]) -> None:
        if not self._resolve_fast(None, exception):
            super().set_exception(exception)
            self._signal()

    def _invoke_callbacks(self) -> None:
        runner = self.callback_runner
        if runner is None or not self._done_callbacks:
            super()._invoke_callbacks()  # type: ignore[misc]
            return
        callbacks, self._done_callbacks = self._done_callbacks, []
        runner(functools.partial(self._run_callbacks, callbacks))

    def _run_callbacks(self, callbacks: List[Callable[[ActionFuture], Any]]) -> None:
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("exception calling callback for %r", self)

    def cancel(self) -> bool:
        cancelled = super().cancel()
        if cancelled:
            self._signal()
        return cancelled

    def done(self) -> bool:
        """True once resolved or cancelled (one read of the state: no lock)."""
        return self._state in _DONE_STATES

    def wait_resolved(self, timeout: Optional[float] = None) -> None:
        """Block until resolved or ``timeout`` seconds (None: no limit); never raises."""
        if timeout is not None and timeout > threading.TIMEOUT_MAX:
            timeout = None  # longer than any lock can wait: no limit
        if self._state != FINISHED:
            self._block(timeout)

    def result(self, timeout: Optional[float] = None) -> Any:
        """The Response; raises the action's error, or ``TimeoutError`` after ``timeout`` seconds."""
        # FINISHED is set before done-callbacks run (they may call result()) and before _resolved is released.
        if self._state != FINISHED:
            self._block(timeout)
        if self._state == FINISHED:
            if self._exception is not None:
                raise self._exception
            return self._result
        return super().result(0)

    def __repr__(self) -> str:
        return f"<ActionFuture {self.action} {self.action_id} {self._state.lower()}>"


_DONE_STATES = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED})


class _Pending:
    __slots__ = ("future", "action_id", "action", "deadline", "response", "items", "completions", "item_completes",
                 "finished", "answered")

    def __init__(self, future: ActionFuture, deadline: Optional[float]) -> None:
        self.future = future
        self.action_id = future.action_id
        self.action = future.action.lower()
        self.deadline = deadline
        self.response: Optional[Response] = None
        self.items: List[Event] = []
        self.completions: FrozenSet[str] = frozenset()
        self.item_completes = False
        self.finished = False  # resolved, or given up by its caller (then a tombstone until answered)
        self.answered = False  # its response arrived: it no longer takes a response without ActionID


# "ActionID:" at the start of a line, any case (the fast check below covers Asterisk's own spelling).
_ACTION_ID_LINE = re.compile(r"(?:^|\n)actionid:", re.IGNORECASE)
_MALFORMED_LOG_INTERVAL = 10.0  # seconds between two warnings about unreadable packets


class ActionTracker:
    """Pending actions of one connection.

    Senders (any thread) add; the reader routes responses; a caller that
    gives up discards.  Every change to the bookkeeping happens under one
    lock; futures are resolved outside it.  An action given up before its
    answer stays in the FIFO as a *tombstone* until its answer arrives (or
    the connection ends), so a late answer without ``ActionID`` is dropped
    instead of resolving the next action.
    """

    def __init__(self, ami_version: Optional[str] = None) -> None:
        self.pending: Dict[str, _Pending] = {}
        self.lists: Dict[str, _Pending] = {}
        self._tombstones: Dict[str, _Pending] = {}
        self._order: Deque[_Pending] = deque()  # in wire order: actions whose response has not arrived
        self._lock = threading.Lock()
        self._closed: Optional[AMIError] = None
        self.legacy_dbget = (ami_version or "").startswith("1.0")
        self.timed_out = 0
        self.malformed = 0
        self._malformed_log_next = 0.0
        self._malformed_suppressed = 0

    def add(self, future: ActionFuture) -> None:
        """Track ``future``; raises ConnectionLost once the connection has ended."""
        deadline = future.deadline
        if deadline is None and future.timeout is not None:
            deadline = time.monotonic() + future.timeout
        pending = _Pending(future, deadline)
        action_id = future.action_id
        with self._lock:
            if self._closed is not None:
                raise ConnectionLost(str(self._closed))
            if action_id in self.pending:
                raise ValueError(f"ActionID {action_id!r} is already in flight")
            if action_id in self._tombstones:  # its late answer could not be told apart from the new one's
                raise ValueError(f"ActionID {action_id!r} belongs to an action that timed out and may still "
                                 "be answered: use another ActionID")
            self.pending[action_id] = pending
            order = self._order
            order.append(pending)
            if order[0].answered:
                self._trim()

    def _trim(self) -> None:
        order = self._order
        while order and order[0].answered:
            order.popleft()

    def tracks(self, future: ActionFuture) -> bool:
        """Whether ``future`` is in flight here, waiting for its answer."""
        pending = self.pending.get(future.action_id)
        return pending is not None and pending.future is future

    def discard(self, action_id: str) -> None:
        """Stop tracking an action (its caller gave up); its answer, if it comes, is dropped."""
        with self._lock:
            pending = self.pending.pop(action_id, None)
            if pending is None:
                return
            pending.finished = True
            self.lists.pop(action_id, None)
            if not pending.answered:
                self._tombstones[action_id] = pending

    @property
    def tombstones(self) -> int:
        """Actions given up whose answer has not arrived yet."""
        return len(self._tombstones)

    def route(self, texts: List[str]) -> List[Union[str, Event]]:
        """Resolve actions from a batch of packet texts; return the rest: events for listeners.

        Events go on as unparsed text unless a list is in progress and they
        may be its items.  A packet that is neither a response nor an event
        is skipped, counted in ``malformed`` and logged (rate-limited).
        """
        events: List[Union[str, Event]] = []
        lists = self.lists
        for text in texts:
            if text.startswith("Event: "):
                if lists and ("ActionID: " in text or _ACTION_ID_LINE.search(text)):
                    event = parse_event(text)
                    if not self.on_list_event(event):
                        events.append(event)
                else:
                    events.append(text)
            elif text.startswith("Response: "):
                self.on_response(cast(Response, parse_packet(text)))
            elif text and not text.isspace():
                try:
                    packet = parse_packet(text)
                except ProtocolError:
                    self._on_malformed(text)
                    continue
                if isinstance(packet, Response):
                    self.on_response(packet)
                elif not (lists and self.on_list_event(cast(Event, packet))):
                    events.append(cast(Event, packet))
        return events

    def _on_malformed(self, text: str) -> None:
        self.malformed += 1
        now = time.monotonic()  # only the reader thread gets here
        if now < self._malformed_log_next:
            self._malformed_suppressed += 1
            return
        suppressed, self._malformed_suppressed = self._malformed_suppressed, 0
        self._malformed_log_next = now + _MALFORMED_LOG_INTERVAL
        log.warning("skipped an unreadable packet (neither a response nor an event)%s: %r",
                    f", and {suppressed} more since the last warning" if suppressed else "", text[:80])

    def on_response(self, response: Response) -> None:
        """Resolve the action this response answers (the reader calls this)."""
        action_id = response.get("ActionID")
        with self._lock:
            pending = self._claim(action_id) if action_id else self._claim_oldest()
            if pending is None:
                log.debug("response for no pending action (ActionID %s): %s", action_id, response.get("Message"))
                return
            if pending.finished:  # the late answer of an action given up: nobody else may have it
                log.debug("late response for %s dropped", pending.action_id)
                return
            if self._starts_list(pending, response):
                pending.response = response
                self.lists[pending.action_id] = pending
                return
            self._retire(pending)
        self._resolve(pending, response)

    def _claim(self, action_id: str) -> Optional[_Pending]:
        """The action ``action_id`` (live or a tombstone), marked answered; None if unknown or answered."""
        pending = self.pending.get(action_id)
        if pending is None:
            pending = self._tombstones.pop(action_id, None)
        if pending is None or pending.answered:  # unknown, or a second response (a list's): ignored
            return None
        pending.answered = True
        # Answers come in order: tombstones sent before this action will never be answered now.
        order = self._order
        while order and order[0] is not pending:
            head = order[0]
            if not head.answered:
                if not head.finished:
                    break  # a live action still waits: it keeps its place
                head.answered = True
                self._tombstones.pop(head.action_id, None)
            order.popleft()
        self._trim()
        return pending

    def _claim_oldest(self) -> Optional[_Pending]:
        """The oldest action still waiting for its response (a tombstone included), marked answered."""
        for pending in self._order:
            if not pending.answered:
                pending.answered = True
                self._tombstones.pop(pending.action_id, None)
                self._trim()
                return pending
        return None

    def _starts_list(self, pending: _Pending, response: Response) -> bool:
        completions = list_completions(pending.action, response)
        if completions is None or not response.ok:
            return False
        pending.completions = completions
        pending.item_completes = pending.action == "dbget" and self.legacy_dbget and "EventList" not in response
        return True

    def on_list_event(self, event: Event) -> bool:
        """Take ``event`` if it belongs to a list in progress; False if it is an ordinary event."""
        pending = self.lists.get(event.get("ActionID", ""))
        if pending is None:
            return False
        if ends_list(event, pending.completions):
            self._finish(pending, pending.response, event)
        elif pending.item_completes:
            pending.items.append(event)
            self._finish(pending, pending.response)
        else:
            pending.items.append(event)
        return True

    def _retire(self, pending: _Pending) -> None:
        """Stop tracking ``pending`` (the caller holds the lock)."""
        pending.finished = True
        self.pending.pop(pending.action_id, None)
        self.lists.pop(pending.action_id, None)

    def _finish(self, pending: _Pending, response: Optional[Response], complete: Optional[Event] = None) -> None:
        with self._lock:
            if pending.finished:  # given up meanwhile
                return
            self._retire(pending)
        self._resolve(pending, response, complete)

    @staticmethod
    def _resolve(pending: _Pending, response: Optional[Response], complete: Optional[Event] = None) -> None:
        assert response is not None
        if pending.items or complete is not None:
            response.events = pending.items
            if complete is not None:
                response.complete_event = complete
        try:
            pending.future.set_result(response)
        except Exception:  # InvalidStateError: cancelled or timed out meanwhile
            pass

    def expire(self, now: float) -> int:
        """Fail actions whose deadline has passed with ActionTimeout; return how many."""
        with self._lock:
            expired = [p for p in self.pending.values() if p.deadline is not None and p.deadline <= now]
        for pending in expired:
            self.discard(pending.action_id)
            fail(pending.future, ActionTimeout(
                f"no answer to {pending.future.action} (ActionID {pending.action_id}) "
                f"within {pending.future.timeout:g} s", pending.action_id))
        self.timed_out += len(expired)
        return len(expired)

    def next_deadline(self, after: float = float("-inf")) -> Optional[float]:
        """The earliest deadline later than ``after`` of the actions in flight (None: there is none)."""
        with self._lock:
            deadlines = [p.deadline for p in self.pending.values() if p.deadline is not None and p.deadline > after]
        return min(deadlines) if deadlines else None

    def last_deadline(self, longer_than: float = 0.0, ignore: Optional[ActionFuture] = None) -> Optional[float]:
        """The latest deadline of the actions in flight whose timeout exceeds ``longer_than`` s (None: none).

        An action without a timeout counts as never expiring (``inf``); ``ignore`` is left out.
        """
        with self._lock:
            deadlines = [math.inf if p.deadline is None else p.deadline for p in self.pending.values()
                         if p.future is not ignore and (p.deadline is None or (p.future.timeout or 0.0) > longer_than)]
        return max(deadlines) if deadlines else None

    def knows(self, action_id: str) -> bool:
        """Whether ``action_id`` is in flight or a tombstone (a new action must not use it)."""
        return action_id in self.pending or action_id in self._tombstones

    def close(self, reason: AMIError) -> List[ActionFuture]:
        """Refuse new actions and fail every waiting one with ``reason``."""
        with self._lock:
            self._closed = reason
            waiting = [p.future for p in self.pending.values()]
            for pending in self.pending.values():
                pending.finished = True
            self.pending.clear()
            self.lists.clear()
            self._tombstones.clear()
            self._order.clear()
        for future in waiting:
            fail(future, _copy(reason))
        return waiting


def list_completions(action: str, response: Response) -> Optional[FrozenSet[str]]:
    """If ``response`` (to ``action``, lower-case) starts an event list: the names that end it, else None.

    An empty set means the list ends at the event with ``EventList: Complete``.
    """
    flag = response.get("EventList")  # any case
    if flag is not None:
        return frozenset() if flag.lower() == "start" else None
    completions = LEGACY_LIST_COMPLETIONS.get(action)
    if completions is None or "follow" not in (response.message or "").lower():
        return None
    return completions


def ends_list(event: Event, completions: FrozenSet[str]) -> bool:
    """Whether ``event`` ends a list whose completion names are ``completions``."""
    flag = event.get("EventList")
    return (flag is not None and flag.lower() == "complete") or event.name.lower() in completions


def fail(future: Future[Any], error: BaseException) -> None:
    """Set ``error`` on ``future`` unless it is already resolved."""
    if not future.done():
        try:
            future.set_exception(error)
        except Exception:  # InvalidStateError: resolved meanwhile
            pass


def _copy(error: AMIError) -> AMIError:
    """A fresh exception per future, so concurrent raisers do not share one traceback."""
    try:
        clone = type(error)(*error.args)
    except Exception:
        return error
    clone.__cause__ = error.__cause__
    return clone

"""The send path: serialise, register, write, wait; one deadline per call.

An action is serialised first (bad input raises ``ValueError`` before
anything is registered or sent), then waits for a live link, is registered
in wire order and written whole; concurrent senders' actions share one
write.  Its deadline is fixed when the call starts: waiting for the link,
writing and waiting for the answer all share it.  An action that could
not be written because the link was already down waits for the next link
(up to its deadline); one that may have been written is never sent again.
"""
from __future__ import annotations

import math
import threading
import time
from concurrent.futures import TimeoutError as FuturesTimeoutError
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Protocol, Union

from ._callbacks import CallbackRunner
from ._connection import NotSent
from ._protocol import HeaderValue, header_value, pop_action_id, serialize_action, split_action
from ._tracker import ActionFuture, fail
from .catalog import check_action
from .exceptions import ActionError, ActionTimeout, AMIError, ConnectionLost
from .packet import Response

__all__ = ["Link", "Sender", "UNSET"]

UNSET: Any = object()
_TRUE = ("true", "yes", "1", "y", "t", "on")


class Link(Protocol):
    """What the send path needs of a transport's live link (``_tcp_reader.TcpLink`` for TCP)."""

    def send(self, data: bytes, future: ActionFuture) -> None:
        """Register ``future`` and write ``data`` by its deadline; NotSent or ConnectionLost."""

    def discard(self, action_id: str) -> None:
        """Forget an action whose caller gave up."""

    def await_answer(self, future: ActionFuture) -> None:
        """Return when ``future`` is resolved or at its deadline (the caller may read for it)."""


def default_timeout(base: float, name: str, fields: Mapping[str, HeaderValue]) -> float:
    """The client's wait for an action without its own ``timeout``: ``base``, plus the ring time of a sync Originate."""
    if name.lower() == "originate" and str(header_value(fields, "Async", "")).lower() not in _TRUE:
        try:
            return base + float(str(header_value(fields, "Timeout", 30000))) / 1000.0
        except ValueError:
            pass
    return base


def checked_default_timeout(timeout: float) -> float:
    """A client's default ``timeout``: seconds > 0 (``inf``: no limit); ValueError otherwise."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout <= 0:
        raise ValueError(f"the client's timeout must be a number of seconds > 0, not {timeout!r} "
                         "(per action, timeout=None means no limit)")
    return float(timeout)


def checked_timeout(timeout: Optional[float]) -> Optional[float]:
    """``timeout`` as the client uses it: None (or longer than any wait can be) means no limit.

    Raises ValueError, before anything is sent, for a negative or NaN timeout.
    """
    if timeout is None:
        return None
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be None or a number of seconds >= 0, not {timeout!r}")
    return None if timeout > threading.TIMEOUT_MAX else timeout


class Sender:
    """``send_action``/``action``/``wait``/``command`` (a mixin of the client)."""

    timeout: float
    validate: str
    _callbacks: CallbackRunner
    _history: Dict[str, int]

    if TYPE_CHECKING:
        def _next_action_id(self) -> str: ...
        def _wait_link(self, deadline: Optional[float], stale: Optional[object] = None) -> Link: ...
        def _live_link(self) -> Optional[Link]: ...

    def send_action(
        self,
        action: Union[str, Mapping[str, HeaderValue]],
        headers: Optional[Mapping[str, HeaderValue]] = None,
        *,
        timeout: Optional[float] = UNSET,
        **fields: HeaderValue,
    ) -> ActionFuture:
        """Send an action; return a future of its :class:`Response` (errors included).

        ``action`` is the action name with headers as keyword arguments (or
        in ``headers``), or a whole mapping with an ``Action`` key.  A
        caller's ``ActionID`` is kept; otherwise a unique one is added.  The
        future fails with ActionTimeout ``timeout`` seconds after this call
        (default: the client's, plus the ``Timeout`` of a synchronous
        Originate), and with ConnectionLost if the link drops first.  CR or
        LF in any key or value raises ``ValueError`` and sends nothing.
        Raises ConnectionLost if no link comes up before the deadline.
        """
        started = time.monotonic()
        name, merged = split_action(action, headers, fields)
        own_id = pop_action_id(merged)
        action_id = own_id or self._next_action_id()
        check_action(name, merged, self.validate)
        data = serialize_action(name, merged, action_id, generated_id=own_id is None)
        timeout = checked_timeout(default_timeout(self.timeout, name, merged) if timeout is UNSET else timeout)
        deadline = None if timeout is None else started + timeout
        link = self._wait_link(deadline)
        attempts = 0
        while True:
            future = ActionFuture(name, action_id, timeout, deadline, self._callbacks.submit)
            try:
                return self._send_on(link, future, data)
            except ValueError:  # the ActionID is in flight or a tombstone: nothing was sent
                attempts += 1
                if own_id is not None or attempts >= 100:
                    raise
            # A caller's action took the generated ActionID after it was checked: take another.
            action_id = self._next_action_id()
            data = serialize_action(name, merged, action_id, generated_id=True)

    def _send_on(self, link: Link, future: ActionFuture, data: bytes) -> ActionFuture:
        while True:
            try:
                link.send(data, future)
                return future
            except NotSent:  # the link died first: nothing went out, so wait for the next one
                link.discard(future.action_id)
                try:
                    link = self._wait_link(future.deadline, stale=link)
                except AMIError as error:
                    fail(future, error)
                    return future
            except ConnectionLost as exc:  # the write failed: the action may be half sent, never resend it
                link.discard(future.action_id)
                fail(future, exc)
                return future

    def action(
        self,
        action: Union[str, Mapping[str, HeaderValue]],
        headers: Optional[Mapping[str, HeaderValue]] = None,
        *,
        timeout: Optional[float] = UNSET,
        **fields: HeaderValue,
    ) -> Response:
        """Send an action and wait for its response; ActionError for ``Error``/``Failure``.

        Raises ActionTimeout, ConnectionLost or ClientClosed when no answer
        can come; returns or raises within ``timeout`` seconds of the call.
        """
        future = self.send_action(action, headers, timeout=timeout, **fields)
        response = self.wait(future)
        if not response.ok:
            raise ActionError(response)
        return response

    def wait(self, future: ActionFuture) -> Response:
        """The response of a sent action, waiting until its deadline (raises like :meth:`action`)."""
        deadline = future.deadline
        if not future.done():  # the answer is not there yet: wait for it, reading the socket if nobody else waits
            link = self._live_link()
            if link is not None:
                link.await_answer(future)
        try:
            if future.done():
                return future.result(0)  # type: ignore[no-any-return]
            return future.result(None if deadline is None else max(0.0, deadline - time.monotonic()))  # type: ignore[no-any-return]
        except AMIError:
            raise
        except (TimeoutError, FuturesTimeoutError):
            pass
        link = self._live_link()
        if link is not None:
            link.discard(future.action_id)
        error = ActionTimeout(
            f"no answer to {future.action} (ActionID {future.action_id}) within {future.timeout:g} s", future.action_id)
        fail(future, error)
        if future.exception() is error:
            self._history["timed_out"] += 1
            raise error
        return future.result(0)  # type: ignore[no-any-return]  # answered at the last moment

    def command(self, command: str, *, timeout: Optional[float] = UNSET) -> str:
        """Run a CLI command; return its output (``Output`` lines joined, or legacy raw text)."""
        return self.action("Command", Command=command, timeout=timeout).output

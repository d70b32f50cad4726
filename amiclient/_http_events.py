"""The WaitEvent poller of :class:`~amiclient.http.AMIHTTPClient`: events over HTTP, in order.

Asterisk queues events for an HTTP session and hands them out only in the
answer to ``WaitEvent`` (at once if one is queued, else after up to
``Timeout`` s).  One thread polls while the client has listeners, on its
own keep-alive connection, and hands each answer's events to the
dispatcher as one batch, so listeners see them in order.  It turns the
session's event mask on before polling and off when the last listener
goes.  Errors back off (``client.backoff``) and are reported through
``on_state``: DISCONNECTED, then RECONNECTING / RECONNECT_FAILED per
attempt, RECONNECTED once a poll succeeds again.  ``abort()`` shuts the
poll's socket down, so ``close()`` never waits for a long-poll.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, List, Optional

from .exceptions import ActionError, AMIError
from .packet import Event
from .state import ConnectionState, StateChange
from .transport.http import Lane

if TYPE_CHECKING:  # pragma: no cover
    from .http import AMIHTTPClient

__all__ = ["EventPoller"]

log = logging.getLogger("amiclient.http")

_MIN_INTERVAL = 0.5  # s between polls Asterisk answers at once with nothing (its httptimeout <= 10 s)


class EventPoller:
    """Starts, runs and stops the WaitEvent thread of one client."""

    def __init__(self, client: AMIHTTPClient) -> None:
        self._client = client
        self._lane = Lane()
        self._thread: Optional[threading.Thread] = None
        self.polls = 0  # WaitEvent requests sent

    def wake(self) -> None:
        """Start the thread if the session should read events and none runs (the caller holds ``client._lock``).

        A running thread whose listeners all went away is not interrupted:
        cutting a long-poll loses the events Asterisk already put in its
        answer, and a listener may be added again at once (a listener
        replacing itself).  The poll ends within ``poll_timeout``; then the
        thread turns events off and ends.
        """
        client = self._client
        wanted = client._wanted_mask()
        if self._thread is None:
            if wanted != "off" or client._session_mask != "off":
                self._thread = threading.Thread(target=self._run, name=f"amiclient-http-events-{client.url}", daemon=True)
                self._thread.start()

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The polling thread, while one runs."""
        return self._thread

    def abort(self) -> None:
        """Stop for good: refuse further polls and cut the one in flight."""
        self._client._transport.interrupt_lane(self._lane, stop=True)

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (unless called from it)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        client = self._client
        lane = self._lane
        attempt = 0
        try:
            while True:
                with client._lock:  # wake() interrupts under this lock too: no interruption is missed
                    if client._closed:
                        return
                    lane.interrupted = False
                    wanted = client._wanted_mask()
                    if wanted == "off" and client._session_mask == "off":
                        self._thread = None  # a listener added from now on starts a new thread
                        return
                started = time.monotonic()
                try:
                    if wanted != client._session_mask or (attempt and wanted != "off"):
                        self._set_mask(wanted)  # after a failure: a quick request shows the session works again
                        events: List[Event] = []
                    else:
                        events = self._poll()
                except AMIError as exc:
                    if client._closed:
                        return
                    if lane.interrupted:  # the last listener went: turn events off
                        continue
                    attempt += 1
                    if not self._back_off(exc, attempt):
                        return
                    continue
                attempt = 0
                client._poll_failing = False
                client._came_back()
                if events:
                    client._dispatcher.put_events(list(events))
                elif wanted != "off" and time.monotonic() - started < min(1.0, client.poll_timeout / 2):
                    if client._closing.wait(_MIN_INTERVAL):  # Asterisk caps WaitEvent at httptimeout - 10 s
                        return
        finally:
            client._transport.close_lane(lane)
            with client._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _set_mask(self, mask: str) -> None:
        client = self._client
        session = client._session
        params = [("Action", "Events"), ("EventMask", mask), ("ActionID", session.next_action_id())]
        response = session.request("Events", params, client.timeout, lane=self._lane)
        if response is not None and not response.ok:
            raise ActionError(response)
        with client._lock:
            client._session_mask = mask
            client._mask_changed.notify_all()

    def _poll(self) -> List[Event]:
        client = self._client
        session = client._session
        seconds = max(0, int(client.poll_timeout))
        params = [("Action", "WaitEvent"), ("Timeout", str(seconds)), ("ActionID", session.next_action_id())]
        self.polls += 1
        response = session.request("WaitEvent", params, seconds + client.timeout, lane=self._lane, allow_empty=True)
        if response is None:  # another WaitEvent on this session took over
            return []
        if not response.ok:
            raise ActionError(response)
        return [event for event in response.extra_events if event.name != "WaitEventComplete"]

    def _back_off(self, error: AMIError, attempt: int) -> bool:
        """Report the failure and wait; False if the client closed meanwhile."""
        client = self._client
        with client._lock:
            client._poll_failures += 1
            client._poll_failing = True
            client._mask_changed.notify_all()
        if attempt == 1:
            client._went_down(error)
        else:
            client._emit(StateChange(ConnectionState.RECONNECT_FAILED, reason=error, attempt=attempt - 1))
        delay = client.backoff.compute(attempt)
        log.info("WaitEvent on %s failed (%s); next try in %.1f s", client.url, error, delay)
        client._emit(StateChange(ConnectionState.RECONNECTING, attempt=attempt, delay=delay))
        return not client._closing.wait(delay)

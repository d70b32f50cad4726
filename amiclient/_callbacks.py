"""The threads that run futures' done-callbacks, so that user code never runs on the socket reader.

A done-callback may block or call back into the client; it then holds one
worker, and the next callback gets another (up to ``max_workers``; beyond
that, callbacks wait in order).  Workers are started on demand and end
after ``idle`` seconds without work, or as soon as the queue is empty once
:meth:`CallbackRunner.stop` was called.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, List

__all__ = ["CallbackRunner"]

log = logging.getLogger("amiclient.client")


class CallbackRunner:
    """A small, self-shrinking pool of daemon threads running callables in submission order."""

    def __init__(self, name: str = "amiclient-callbacks", max_workers: int = 16, idle: float = 2.0) -> None:
        self.name = name
        self.max_workers = max_workers
        self.idle = idle
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: Deque[Callable[[], Any]] = deque()
        self._workers: List[threading.Thread] = []
        self._idle_workers = 0
        self._stopping = False

    def submit(self, function: Callable[[], Any]) -> None:
        """Run ``function()`` on a worker thread; never blocks, never runs it in the calling thread."""
        with self._cond:
            self._queue.append(function)
            if self._idle_workers:
                self._cond.notify()
            if len(self._queue) <= self._idle_workers or len(self._workers) >= self.max_workers:
                return  # an idle worker takes it, or it waits for the first free one
            thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._workers) + 1}", daemon=True)
            self._workers.append(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                with self._cond:
                    deadline = time.monotonic() + self.idle
                    while not self._queue:
                        remaining = deadline - time.monotonic()
                        if self._stopping or remaining <= 0:
                            return
                        self._idle_workers += 1
                        self._cond.wait(remaining)
                        self._idle_workers -= 1
                    function = self._queue.popleft()
                try:
                    function()
                except Exception:  # pragma: no cover - the callables we queue log their own errors
                    log.exception("%s: a callback raised", self.name)
        finally:
            with self._cond:
                if me in self._workers:
                    self._workers.remove(me)

    def stop(self, timeout: float) -> bool:
        """Let the workers finish what is queued, then end; join them up to ``timeout`` s.

        Callables submitted later still run (on a worker that ends when the
        queue is empty).  False if a callback was still running.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            workers = list(self._workers)
        current = threading.current_thread()
        for thread in workers:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in workers if t.is_alive() and t is not current]
        if alive:
            log.warning("%s: a future's done-callback has not returned within %.1f s of close()", self.name, timeout)
        return not alive

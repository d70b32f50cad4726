"""Rules on live state: a caller waiting longer than N seconds in a queue is redirected (or a supervisor paged).

    AMI_HOST=pbx AMI_USER=admin AMI_SECRET=... python examples/queue_watchdog.py --max-wait 60 \\
        --redirect overflow@from-internal          # or --page (log a page instead)

The watchdog reads ``LiveState.queues`` (a consistent snapshot, no locks) once
a second and acts at most once per waiting caller.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from amiclient import AMIClient, AMIError
from amiclient.live import LiveState, Queue, QueueCaller

log = logging.getLogger("queue_watchdog")


class QueueWatchdog:
    """Redirect (to ``redirect_to`` = ``(exten, context)``) or ``page`` every caller waiting over ``max_wait`` s.

    ``queues``: only these queue names (None: all).  :meth:`check` runs one
    pass; :meth:`start`/:meth:`stop` run it every ``interval`` seconds on a thread.
    """

    def __init__(
        self,
        client: Any,
        live: LiveState,
        max_wait: float,
        *,
        redirect_to: Optional[Tuple[str, str]] = None,
        page: Optional[Callable[[Queue, QueueCaller, float], Any]] = None,
        queues: Optional[List[str]] = None,
        interval: float = 1.0,
    ) -> None:
        if redirect_to is None and page is None:
            raise ValueError("give redirect_to=(exten, context), page=callback, or both")
        self.client, self.live, self.max_wait = client, live, max_wait
        self.redirect_to, self.page, self.queues, self.interval = redirect_to, page, queues, interval
        self._handled: Dict[str, float] = {}  # uniqueid -> when acted on; forgotten once it leaves the queue
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def check(self, now: Optional[float] = None) -> List[QueueCaller]:
        """Act on every caller now waiting too long (once each); return them."""
        now = time.time() if now is None else now
        acted: List[QueueCaller] = []
        waiting = set()
        for queue in self.live.queues.values():
            if self.queues is not None and queue.name not in self.queues:
                continue
            for caller in queue.callers:
                waiting.add(caller.uniqueid)
                wait = caller.wait(now)
                if wait <= self.max_wait or caller.uniqueid in self._handled:
                    continue
                self._handled[caller.uniqueid] = now
                acted.append(caller)
                self._act(queue, caller, wait)
        for uid in [u for u in self._handled if u not in waiting]:
            del self._handled[uid]
        return acted

    def _act(self, queue: Queue, caller: QueueCaller, wait: float) -> None:
        if self.page is not None:
            self.page(queue, caller, wait)
        if self.redirect_to is not None:
            exten, context = self.redirect_to
            try:
                self.client.redirect(caller.channel, exten, context)
                log.info("%s waited %.0f s in %s: redirected to %s@%s", caller.channel, wait, queue.name, exten, context)
            except AMIError as exc:
                log.warning("could not redirect %s: %s", caller.channel, exc)

    def start(self) -> QueueWatchdog:
        """Check every ``interval`` seconds on a thread until :meth:`stop`."""
        def run() -> None:
            while not self._stop.wait(self.interval):
                self.check()
        self._thread = threading.Thread(target=run, name="queue-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the checking thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-wait", type=float, default=60.0)
    parser.add_argument("--redirect", metavar="EXTEN@CONTEXT")
    parser.add_argument("--page", action="store_true", help="log a page to the supervisor")
    parser.add_argument("--queue", action="append", help="watch only this queue (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    redirect = tuple(args.redirect.split("@", 1)) if args.redirect else None

    def page(queue: Queue, caller: QueueCaller, wait: float) -> None:
        log.warning("PAGE supervisor: %s <%s> waiting %.0f s in %s", caller.caller_name, caller.caller_num, wait, queue.name)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    client = AMIClient(os.environ.get("AMI_HOST", "127.0.0.1"), int(os.environ.get("AMI_PORT", "5038")),
                       os.environ.get("AMI_USER", "admin"), os.environ.get("AMI_SECRET", ""))
    with client.connect(), LiveState(client) as live:
        live.wait_synced(10)
        watchdog = QueueWatchdog(client, live, args.max_wait, redirect_to=redirect,  # type: ignore[arg-type]
                                 page=page if args.page or not redirect else None, queues=args.queue).start()
        stop.wait()
        watchdog.stop()


if __name__ == "__main__":
    main()

"""Write every AMI event as one JSON line, for as long as it runs; survives Asterisk restarts.

    AMI_HOST=pbx AMI_USER=logger AMI_SECRET=... python examples/event_logger.py /var/log/ami/events.jsonl

Each line: ``{"time": <unix seconds>, "event": <name>, "headers": {<name>: <value or list>}}``
(a header that repeats, such as ``ChanVariable``, becomes a list).  Without a path
the lines go to standard output.

Rotation friendly: after logrotate moves the file away, send ``SIGHUP``
(``postrotate kill -HUP <pid>``) and the logger reopens the path.  ``SIGTERM``
or ``SIGINT`` stop it cleanly: the client logs off, the file is flushed and
closed, and the counters go to standard error.  Exit status 0.

Options from the environment: ``AMI_HOST``, ``AMI_PORT``, ``AMI_USER``,
``AMI_SECRET``, ``AMI_EVENTS`` (event classes, default ``on`` = all).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional, TextIO, Union

from amiclient import AMIClient, Event, StateChange

log = logging.getLogger("event_logger")


class JsonLinesFile:
    """A thread-safe JSON-lines writer that can reopen its path (after rotation)."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: TextIO = self._open()

    def _open(self) -> TextIO:
        if self.path is None:
            return sys.stdout
        return open(self.path, "a", encoding="utf-8", buffering=1)  # line-buffered: whole lines reach disk

    def write(self, record: Dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            if self.path is None:
                self._file.flush()

    def reopen(self) -> None:
        """Close and reopen the path (a no-op for standard output)."""
        if self.path is None:
            return
        with self._lock:
            self._file.close()
            self._file = self._open()

    def close(self) -> None:
        with self._lock:
            self._file.flush()
            if self.path is not None:
                self._file.close()


def event_record(event: Event) -> Dict[str, Any]:
    """The JSON object logged for one event."""
    headers: Dict[str, Union[str, List[str]]] = {}
    for key, value in event.items_all():
        previous = headers.get(key)
        if previous is None:
            headers[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            headers[key] = [previous, value]
    return {"time": round(time.time(), 6), "event": event.name, "headers": headers}


def events_option(value: str) -> Union[bool, str]:
    """``on``/``off`` or an event class list (``call,agent``) as AMIClient's ``events``."""
    return {"on": True, "off": False}.get(value.lower(), value)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    out = JsonLinesFile(args[0] if args else None)
    stop = threading.Event()
    # Signal handlers run on the main thread, which only waits below: they never contend with a writer.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: out.reopen())

    client = AMIClient(os.environ.get("AMI_HOST", "127.0.0.1"), int(os.environ.get("AMI_PORT", "5038")),
                       os.environ.get("AMI_USER", "admin"), os.environ.get("AMI_SECRET", ""),
                       events=events_option(os.environ.get("AMI_EVENTS", "on")))
    client.add_listener(lambda event: out.write(event_record(event)))  # every event, on the dispatcher thread

    @client.on_state
    def state(change: StateChange) -> None:
        log.info("connection %s %s", change.state.value, change.reason or "")

    try:
        with client:
            log.info("logging events from %s", client.address)
            stop.wait()  # signal handlers still run while the main thread waits here
            log.info("stopping")
        log.info("stats %s", json.dumps(client.stats.as_dict(), default=str))
    finally:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

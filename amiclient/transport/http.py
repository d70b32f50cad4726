"""The HTTP transport of AMI (Asterisk's AJAM ``/rawman``): form POSTs over pooled keep-alive connections.

:class:`HTTPTransport` knows nothing of sessions or actions: it POSTs a
form with a cookie and returns the :class:`Answer` (status, body, the
``mansession_id`` the server set).  Failures become the client's errors:

* nothing was written (the server could not be reached, a pooled
  connection was found closed or unusable *before* writing, no free
  connection within the timeout): :class:`NotSent`, a ConnectionLost the
  caller may safely retry;
* the request may have been read (a write or read failed, the answer was
  cut short): :class:`ConnectionLost`; the transport re-sends only when the
  caller says the request is ``replayable`` (read-only by nature), once,
  on a new connection;
* no answer within the timeout: :class:`ActionTimeout`.

Keep-alive connections wait in a small pool (at most ``max_connections``
open at once; idle ones older than ``idle_limit`` are closed, since
Asterisk drops idle connections after 15 s).  Before a pooled connection
is reused it is checked without blocking: one the server closed (or that
holds unexpected bytes) is discarded before any byte goes out.  A
:class:`Lane` is a private connection outside the pool (the WaitEvent
poller's).  :meth:`HTTPTransport.abort` shuts down every socket in use,
so a thread blocked on a long-poll wakes at once.
"""
from __future__ import annotations

import http.client
import io
import logging
import re
import select
import socket
import ssl
import threading
import time
from typing import Any, Dict, List, NamedTuple, Optional, Set, Tuple, Union
from urllib.parse import urlsplit

from ..exceptions import ActionTimeout, ConnectionLost

__all__ = ["Answer", "HTTPTransport", "Lane", "NotSent", "parse_url"]

log = logging.getLogger("amiclient.http")

_COOKIE = re.compile(r'(?:^|[;,\s])mansession_id\s*=\s*"?([^";,\s]*)"?', re.IGNORECASE)


class NotSent(ConnectionLost):
    """Nothing of the request was written: it certainly did not run."""


class Answer(NamedTuple):
    """One HTTP answer: status, reason, ``Content-Type``, body and the ``mansession_id`` it set (or None)."""

    status: int
    reason: str
    content_type: str
    body: bytes
    cookie: Optional[str]


def parse_url(url: str) -> Tuple[bool, str, int, str, str]:
    """``(https, host, port, rawman path, display URL)`` of an AJAM URL; ValueError if it is not http(s).

    ``url`` is Asterisk's HTTP prefix (``http://host:8088/asterisk``) or the
    full ``.../rawman`` URL.  Credentials in the URL are refused (they would
    travel in every request).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if "@" in parts.netloc:
        raise ValueError("put the username and secret in their arguments, not in the URL")
    path = (parts.path or "/").rstrip("/")
    if not path.endswith("/rawman"):
        path += "/rawman"
    https = scheme == "https"
    port = parts.port or (443 if https else 80)
    return https, parts.hostname, port, path, f"{scheme}://{parts.netloc}{path}"


class _DeadlineReader(io.RawIOBase):
    """Reads a socket until a deadline: the whole answer, not each read, is bounded by the request's timeout."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # holds a reference: the socket stays open while read
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> Any:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the answer took longer than the request's timeout")
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineSocket:
    """What ``HTTPResponse`` sees of the socket: ``makefile`` only, reading until the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class _Response(http.client.HTTPResponse):
    deadline = float("inf")  # set per connection by _with_deadline

    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: Optional[str] = None,
                 url: Optional[str] = None) -> None:
        super().__init__(_DeadlineSocket(sock, self.deadline), debuglevel, method, url)  # type: ignore[arg-type]


def _with_deadline(conn: http.client.HTTPConnection, deadline: float) -> None:
    """Make the next answer on ``conn`` fail with socket.timeout once ``deadline`` (monotonic) passes."""
    conn.response_class = type("_DeadlineResponse", (_Response,), {"deadline": deadline})


class Lane:
    """A private keep-alive connection outside the pool (one user at a time)."""

    def __init__(self) -> None:
        self.conn: Optional[http.client.HTTPConnection] = None
        self.since = 0.0
        self.aborted = False  # the lane takes no more requests
        self.interrupted = False  # requests were stopped on purpose: refuse them, never re-send (its user resets it)


class HTTPTransport:
    """POSTs forms to one rawman URL; thread-safe."""

    def __init__(
        self, url: str, *, ssl_context: Optional[ssl.SSLContext], connect_timeout: float,
        max_connections: int = 8, idle_limit: float = 10.0,
    ) -> None:
        self.https, self.host, self.port, self.path, self.url = parse_url(url)
        if self.https and ssl_context is None:
            ssl_context = ssl.create_default_context()  # verifies the certificate and host name
        self.ssl_context = ssl_context if self.https else None
        self.connect_timeout = connect_timeout
        self.idle_limit = idle_limit
        self.max_connections = max_connections
        self.bytes_in = 0
        self.bytes_out = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: List[Tuple[http.client.HTTPConnection, float]] = []
        self._busy: Set[http.client.HTTPConnection] = set()
        self._closed = False

    # ------------------------------------------------------------------ requests

    def post(
        self, form: bytes, cookie: Optional[str], timeout: float, *, what: str, replayable: bool = False,
        lane: Optional[Lane] = None,
    ) -> Answer:
        """POST ``form`` with ``cookie``; the answer, whatever its status.

        Raises NotSent, ConnectionLost or ActionTimeout (see the module docstring).
        """
        retries = 1 if replayable else 0
        deadline = time.monotonic() + min(timeout, 86400.0)  # inf/huge (no limit): a day, as sockets need a number
        while True:
            conn = self._take(lane, deadline, what)
            try:
                answer = self._exchange(conn, form, cookie, max(deadline - time.monotonic(), 0.001), what)
            except ConnectionLost as exc:
                self._drop(conn, lane)
                if self._closed:
                    raise
                if retries and not isinstance(exc, NotSent) and not (lane is not None and lane.interrupted):
                    retries -= 1
                    log.debug("%s: %s lost (%s); %s is read-only, sending it again", self.url, what, exc, what)
                    continue
                raise
            except BaseException:
                self._drop(conn, lane)
                raise
            self._give_back(conn, lane)
            return answer

    def _exchange(
        self, conn: http.client.HTTPConnection, form: bytes, cookie: Optional[str], timeout: float, what: str,
    ) -> Answer:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}
        if cookie is not None:
            headers["Cookie"] = f'mansession_id="{cookie}"'
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        _with_deadline(conn, time.monotonic() + timeout)
        with self._lock:
            self.requests += 1
            self.bytes_out += len(form)
        try:
            conn.request("POST", self.path, form, headers)
            answer = conn.getresponse()
            body = answer.read()
        except (socket.timeout, TimeoutError) as exc:
            raise ActionTimeout(f"no answer to {what} from {self.url} within {timeout:g} s") from exc
        except http.client.IncompleteRead as exc:
            raise ConnectionLost(f"{self.url} cut its answer to {what} short ({len(exc.partial)} bytes); "
                                 f"{what} may have run") from None
        except (OSError, http.client.HTTPException) as exc:
            if self._closed:
                raise ConnectionLost(f"the client was closed while {what} was in flight") from None
            raise ConnectionLost(f"connection to {self.url} lost during {what} ({type(exc).__name__}); "
                                 f"{what} may have run") from None
        with self._lock:
            self.bytes_in += len(body)
        if answer.will_close:
            conn.close()
        cookie_set = None
        for header in answer.headers.get_all("Set-Cookie") or ():
            match = _COOKIE.search(str(header))
            if match is not None:
                cookie_set = match.group(1)
        content_type = (answer.getheader("Content-Type") or "").split(";")[0].strip().lower()
        return Answer(answer.status, answer.reason or "", content_type, body, cookie_set)

    # ------------------------------------------------------------------ connections

    def _take(self, lane: Optional[Lane], deadline: float, what: str) -> http.client.HTTPConnection:
        if self._closed:
            raise NotSent("the client is closed")
        if lane is not None:
            conn = lane.conn
            if conn is not None and not self._usable(conn, lane.since):
                conn.close()
                conn = lane.conn = None
            if conn is None:
                conn = lane.conn = self._open(what, deadline)
            with self._lock:
                if not (lane.aborted or lane.interrupted):
                    self._busy.add(conn)
                    return conn
            raise NotSent(f"{what} was not sent: its connection was stopped")
        if not self._slots.acquire(timeout=max(deadline - time.monotonic(), 0)):
            raise ActionTimeout(f"no free connection to {self.url} for {what} (all {self.max_connections} busy)")
        try:
            while True:
                with self._lock:
                    if self._closed:
                        raise NotSent("the client is closed")
                    found = self._idle.pop() if self._idle else None
                    if found is not None:
                        self._busy.add(found[0])
                if found is None:
                    break
                if self._usable(*found):
                    return found[0]
                with self._lock:
                    self._busy.discard(found[0])
                found[0].close()
            conn = self._open(what, deadline)
            with self._lock:
                self._busy.add(conn)
            return conn
        except BaseException:
            self._slots.release()
            raise

    def _open(self, what: str, deadline: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        timeout = max(min(self.connect_timeout, deadline - time.monotonic()), 0.001)  # never past the request's timeout
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.connect()
        except (socket.timeout, TimeoutError) as exc:
            conn.close()
            if time.monotonic() >= deadline:
                raise ActionTimeout(f"no connection to {self.url} for {what} within its timeout; not sent") from None
            raise NotSent(f"cannot reach {self.url}: {exc}; {what} was not sent") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NotSent(f"cannot reach {self.url}: {exc}; {what} was not sent") from None
        return conn

    def _usable(self, conn: http.client.HTTPConnection, since: float) -> bool:
        """Whether an idle connection can carry a request: open, quiet, not idle too long (never blocks)."""
        sock = conn.sock
        if sock is None or time.monotonic() - since > self.idle_limit:
            return False
        try:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return False
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable  # EOF, a reset or stray bytes: the server is done with it

    def _give_back(self, conn: http.client.HTTPConnection, lane: Optional[Lane]) -> None:
        with self._lock:
            self._busy.discard(conn)
            keep = not self._closed and conn.sock is not None
            if lane is None:
                if keep:
                    self._idle.append((conn, time.monotonic()))
                self._slots.release()
            elif keep:
                lane.since = time.monotonic()
        if not keep:
            conn.close()
            if lane is not None:
                lane.conn = None

    def _drop(self, conn: http.client.HTTPConnection, lane: Optional[Lane]) -> None:
        with self._lock:
            self._busy.discard(conn)
            if lane is None:
                self._slots.release()
        conn.close()
        if lane is not None:
            lane.conn = None

    def close_lane(self, lane: Lane) -> None:
        """Close a lane's connection (its user has finished with it)."""
        conn, lane.conn = lane.conn, None
        if conn is not None:
            conn.close()

    def interrupt_lane(self, lane: Lane, *, stop: bool = False) -> None:
        """Shut down the lane's connection if a request is using it; with ``stop``, refuse later requests too."""
        with self._lock:
            if stop:
                lane.aborted = True
            lane.interrupted = True
            conn = lane.conn if lane.conn in self._busy else None
            sock = conn.sock if conn is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except (OSError, ValueError):
                    pass

    def abort(self) -> None:
        """Shut down every connection in use (blocked requests fail at once); the pool stays usable."""
        with self._lock:
            busy = list(self._busy)
        for conn in busy:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except (OSError, ValueError):
                    pass

    def close(self) -> None:
        """Refuse new requests, abort those in flight and close idle connections; idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        self.abort()
        for conn, _ in idle:
            conn.close()

    def reset_after_fork(self) -> None:
        """In a forked child: new locks, and none of the parent's connections (it still uses them)."""
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_connections)
        idle, self._idle, self._busy = self._idle, [], set()
        for conn, _ in idle:
            conn.close()  # closes the child's copy of the descriptor only: no shutdown, no TLS close_notify

    @property
    def in_use(self) -> int:
        """Connections carrying a request now."""
        return len(self._busy)

    def stats(self) -> Dict[str, Union[int, float]]:
        """Counters: requests, bytes_in, bytes_out."""
        return {"requests": self.requests, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out}

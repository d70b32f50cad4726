"""AMI over HTTP (Asterisk's AJAM ``/rawman`` URI): a synchronous, thread-safe client.

Every call is one HTTP POST whose form fields are the action's headers; the
body of the answer is AMI text, parsed by the protocol layer.  The manager
session is the ``mansession_id`` cookie, shared by every thread using the
client; concurrent calls run on separate keep-alive connections.  Events are
delivered only through :meth:`AJAMClient.wait_event` (``WaitEvent``).

::

    with AJAMClient("http://127.0.0.1:8088/asterisk/", "admin", "secret") as ajam:
        uptime = ajam.command("core show uptime")
        events = ajam.wait_event(timeout=20)
"""
from __future__ import annotations

import http.client
import itertools
import logging
import math
import re
import socket
import ssl
import threading
import time
import uuid
from types import TracebackType
from typing import FrozenSet, List, Mapping, Optional, Sequence, Tuple, Type, Union, cast
from urllib.parse import quote, urlencode, urlsplit

from ._protocol import Framer, HeaderValue, header_value, parse_packet, pop_action_id, serialize_action, split_action
from ._tracker import ends_list, list_completions
from .exceptions import ActionError, ActionTimeout, AMIConnectionError, AMIError, AuthenticationError, ClientClosed, ProtocolError
from .packet import Event, Response

__all__ = ["AJAMClient", "AJAMResponse"]

log = logging.getLogger("amiclient.http")

_COOKIE = re.compile(r'mansession_id="?([0-9A-Fa-f]+)"?')
_MAX_IDLE = 4  # keep-alive connections kept for reuse
_IDLE_LIMIT = 10.0  # s; Asterisk drops idle keep-alive connections after 15 s (http.conf session_keep_alive)
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.RemoteDisconnected)
_TRUE = ("true", "yes", "1", "y", "t", "on")

Params = List[Tuple[str, str]]


class AJAMResponse(Response):
    """A :class:`~amiclient.Response` read over HTTP, with the other events of its body."""

    _extra: Optional[List[Event]] = None

    @property
    def extra_events(self) -> List[Event]:
        """Events of the body that are not list items (e.g. ``FullyBooted`` after Login)."""
        if self._extra is None:
            self._extra = []
        return self._extra


class AJAMClient:
    """A client for one manager login over HTTP (``/rawman``, cookie session).

    ``url`` is Asterisk's HTTP prefix (``http://host:8088/asterisk/``) or the
    full ``.../rawman`` URL; ``https`` uses ``ssl_context`` (default: verify
    with the system CAs).  ``timeout`` is the default per-request timeout in
    seconds.  ``events`` is sent with Login: None (the user's default), True,
    False or a class list such as ``"call,system"``.  Asterisk 22.11+ queues
    events for the session from login on, so poll :meth:`wait_event` or log
    in with ``events=False``.  An idle session expires after ``httptimeout``
    (60 s by default); the next request then gets a new, logged-out session.
    """

    def __init__(
        self, url: str = "http://127.0.0.1:8088/asterisk/", username: str = "", secret: str = "", *,
        timeout: float = 10.0, ssl_context: Optional[ssl.SSLContext] = None, events: Union[None, bool, str] = None,
    ) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if ssl_context is not None and scheme != "https":
            raise ValueError("ssl_context needs an https:// URL")
        path = (parts.path or "/").rstrip("/")
        if not path.endswith("/rawman"):
            path += "/rawman"
        self._https = scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = path
        self.rawman_url = f"{scheme}://{parts.netloc.rpartition('@')[2]}{path}"
        self.username = username
        self._secret = secret
        self.timeout = timeout
        self.events = events
        self.ssl_context = (ssl_context or ssl.create_default_context()) if self._https else None
        self._lock = threading.Lock()
        self._idle: List[Tuple[http.client.HTTPConnection, float]] = []
        self._cookie: Optional[str] = None
        self._logged_in = False
        self._closing = False
        self._closed = False
        self._id_prefix = uuid.uuid4().hex[:12]
        self._id_counter = itertools.count(1)

    # ------------------------------------------------------------------ session

    def login(self) -> AJAMResponse:
        """Log in (``Login`` with the plain secret); AuthenticationError if refused."""
        if any(c in text for text in (self.username, self._secret) for c in "\r\n"):
            raise ValueError("the username or secret contains CR or LF")
        action_id = self._next_action_id()
        params: Params = [("Action", "Login"), ("Username", self.username), ("Secret", self._secret)]
        if self.events is not None:
            params.append(("Events", self.events if isinstance(self.events, str) else ("on" if self.events else "off")))
        params.append(("ActionID", action_id))
        self._forget_session()  # a fresh session: the old cookie may have expired
        response = self._exchange("Login", params, action_id, self.timeout)
        if not response.ok:
            self._forget_session()
            raise AuthenticationError(f"login of {self.username!r} refused by {self.rawman_url}: {response.message}")
        with self._lock:
            self._logged_in = True
        log.info("logged in to %s as %r", self.rawman_url, self.username)
        return response

    def logoff(self, *, timeout: Optional[float] = None) -> AJAMResponse:
        """End the manager session (``Logoff``); a later :meth:`login` starts a new one."""
        action_id = self._next_action_id()
        params: Params = [("Action", "Logoff"), ("ActionID", action_id)]
        try:
            return self._exchange("Logoff", params, action_id, self.timeout if timeout is None else timeout)
        finally:
            self._forget_session()

    def close(self) -> None:
        """Log off (if logged in) and close every connection; idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            logged_in = self._logged_in
        if logged_in:
            try:
                self.logoff(timeout=min(self.timeout, 1.0))
            except AMIError as exc:  # the session expires on its own
                log.debug("logoff from %s failed: %s", self.rawman_url, exc)
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def __enter__(self) -> "AJAMClient":
        try:
            self.login()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    @property
    def logged_in(self) -> bool:
        """True after a successful login, until logoff or a replaced session cookie."""
        return self._logged_in

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    # ------------------------------------------------------------------ actions

    def send_action(
        self, action: Union[str, Mapping[str, HeaderValue]], headers: Optional[Mapping[str, HeaderValue]] = None,
        *, timeout: Optional[float] = None, **fields: HeaderValue,
    ) -> AJAMResponse:
        """Send an action and return its response (``Error`` included).

        Headers follow the TCP client's rules (a list repeats a header, a
        mapping gives ``key=value`` lines); CR or LF anywhere raises
        ``ValueError`` before anything is sent.  A unique ``ActionID`` is
        added unless given.  ``timeout`` defaults to the client's (plus the
        ``Timeout`` of a synchronous Originate).
        """
        name, merged = split_action(action, headers, fields)
        action_id = pop_action_id(merged) or self._next_action_id()
        data = serialize_action(name, merged, action_id)  # validates: ValueError before any I/O
        params = [cast(Tuple[str, str], tuple(line.split(": ", 1))) for line in data.decode("utf-8").split("\r\n") if line]
        return self._exchange(name, params, action_id, self._timeout_for(name, merged, timeout))

    def action(
        self, action: Union[str, Mapping[str, HeaderValue]], headers: Optional[Mapping[str, HeaderValue]] = None,
        *, timeout: Optional[float] = None, **fields: HeaderValue,
    ) -> AJAMResponse:
        """Send an action and return its response; ActionError for ``Error``/``Failure``."""
        response = self.send_action(action, headers, timeout=timeout, **fields)
        if not response.ok:
            raise ActionError(response)
        return response

    def command(self, command: str, *, timeout: Optional[float] = None) -> str:
        """Run a CLI command; return its output (``Output`` lines joined with ``\\n``)."""
        return self.action("Command", Command=command, timeout=timeout).output

    def ping(self) -> AJAMResponse:
        """``Ping``: a round trip to the server."""
        return self.action("Ping")

    def wait_event(self, timeout: Optional[float] = 30.0) -> List[Event]:
        """Wait up to ``timeout`` s for events (``WaitEvent``); return every event queued.

        ``timeout`` is rounded up to whole seconds; None waits as long as the
        server allows (its ``httptimeout`` minus 10 s), 0 only drains.  The
        list is empty on timeout, or when another ``wait_event`` on the same
        session took over.
        """
        seconds = -1 if timeout is None else max(0, math.ceil(timeout))
        action_id = self._next_action_id()
        params: Params = [("Action", "WaitEvent"), ("Timeout", str(seconds)), ("ActionID", action_id)]
        http_timeout = self.timeout + (3600.0 if timeout is None else seconds)  # None: capped by the server
        body = self._post(params, http_timeout, "WaitEvent", action_id)
        response = self._parse(body, "WaitEvent")
        if response is None:  # a second WaitEvent on this session ended this one
            return []
        if not response.ok:
            raise ActionError(response)
        return [event for event in response.extra_events if event.name != "WaitEventComplete"]

    # ------------------------------------------------------------------ internals

    def _next_action_id(self) -> str:
        return f"{self._id_prefix}-{next(self._id_counter)}"

    def _timeout_for(self, name: str, fields: Mapping[str, HeaderValue], timeout: Optional[float]) -> float:
        if timeout is not None:
            return timeout
        total = self.timeout
        if name.lower() == "originate" and str(header_value(fields, "Async", "")).lower() not in _TRUE:
            try:
                total += float(str(header_value(fields, "Timeout", 30000))) / 1000.0
            except ValueError:
                pass
        return total

    def _forget_session(self) -> None:
        with self._lock:
            self._cookie = None
            self._logged_in = False

    def _exchange(self, name: str, params: Sequence[Tuple[str, str]], action_id: str, timeout: float) -> AJAMResponse:
        response = self._parse(self._post(params, timeout, name, action_id), name)
        if response is None:
            raise ProtocolError(f"{self.rawman_url} sent no AMI response to {name} (ActionID {action_id})")
        return response

    def _post(self, params: Sequence[Tuple[str, str]], timeout: float, name: str, action_id: str) -> bytes:
        """POST the form and return the body of a 200 answer; maps every failure to an AMIError."""
        data = urlencode(params, quote_via=quote).encode("ascii")
        log.debug("%s %s (ActionID %s)", self.rawman_url, name, action_id)
        for attempt in (1, 2):
            conn, reused = self._checkout(timeout)
            headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}
            cookie = self._cookie
            if cookie is not None:
                headers["Cookie"] = f'mansession_id="{cookie}"'
            try:
                conn.request("POST", self._path, data, headers)
                answer = conn.getresponse()
                body = answer.read()
            except (socket.timeout, TimeoutError) as exc:
                conn.close()
                raise ActionTimeout(
                    f"no answer to {name} (ActionID {action_id}) from {self.rawman_url} within {timeout:g} s", action_id
                ) from exc
            except _STALE as exc:
                conn.close()
                if reused and attempt == 1:  # the server closed an idle keep-alive connection
                    log.debug("stale connection to %s (%r); retrying on a new one", self.rawman_url, exc)
                    continue
                raise AMIConnectionError(f"connection to {self.rawman_url} failed: {exc!r}") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise AMIConnectionError(f"cannot reach {self.rawman_url}: {exc!r}") from exc
            self._take_cookie(answer, cookie)
            if answer.will_close:
                conn.close()
            else:
                self._checkin(conn)
            if answer.status in (401, 403):
                raise AuthenticationError(f"{self.rawman_url} refused {name}: HTTP {answer.status} {answer.reason}")
            if answer.status != 200:
                raise ProtocolError(f"{self.rawman_url} answered {name} with HTTP {answer.status} {answer.reason}")
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    def _checkout(self, timeout: float) -> Tuple[http.client.HTTPConnection, bool]:
        now = time.monotonic()
        stale: List[http.client.HTTPConnection] = []
        found: Optional[http.client.HTTPConnection] = None
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            while self._idle and found is None:
                conn, since = self._idle.pop()
                if now - since < _IDLE_LIMIT:
                    found = conn
                else:
                    stale.append(conn)
        for conn in stale:
            conn.close()
        if found is not None:
            found.timeout = timeout
            if found.sock is not None:
                found.sock.settimeout(timeout)
            return found, True
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self.ssl_context), False
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout), False

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < _MAX_IDLE:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def _take_cookie(self, answer: http.client.HTTPResponse, sent: Optional[str]) -> None:
        """Adopt the answer's session cookie unless another request changed the session meanwhile."""
        for header in answer.headers.get_all("Set-Cookie") or ():
            match = _COOKIE.search(str(header))
            if match is None:
                continue
            value = match.group(1).lower()
            with self._lock:
                if self._cookie != sent:  # a login, logoff or newer session won
                    return
                replaced = self._logged_in and sent is not None and sent != value
                self._cookie = value
                if replaced:
                    self._logged_in = False
            if replaced:
                log.warning("%s started a new manager session: the old one expired or was closed; log in again", self.rawman_url)

    def _parse(self, body: bytes, name: str) -> Optional[AJAMResponse]:
        """The response in a rawman body, its list items in ``events``, other events in ``extra_events``."""
        body = body.rstrip(b"\r\n")
        if not body.strip():
            return None
        framer = Framer(expect_banner=False)
        try:
            packets = [parse_packet(text) for text in framer.feed(body + b"\r\n\r\n") if text.strip("\r\n")]
        except ProtocolError as exc:
            raise ProtocolError(f"{self.rawman_url} answered {name} with invalid AMI: {exc}") from exc
        if framer.buffered:
            raise ProtocolError(f"{self.rawman_url} answered {name} with a truncated AMI packet")
        response: Optional[AJAMResponse] = None
        items: List[Event] = []
        extra: List[Event] = []
        complete: Optional[Event] = None
        listing = False
        completions: FrozenSet[str] = frozenset()
        for packet in packets:
            if isinstance(packet, Response):
                if response is not None:
                    log.debug("%s: extra response in the answer to %s ignored", self.rawman_url, name)
                    continue
                response = cast(AJAMResponse, AJAMResponse.from_pairs(packet.items_all()))
                found = list_completions(name.lower(), packet)
                listing, completions = found is not None, found or frozenset()
            elif isinstance(packet, Event) and listing:
                if ends_list(packet, completions):
                    complete, listing = packet, False
                else:
                    items.append(packet)
            elif isinstance(packet, Event):
                extra.append(packet)
        if response is None:
            raise ProtocolError(f"{self.rawman_url} answered {name} without a Response packet")
        if items or complete is not None:
            response.events = items
            response.complete_event = complete
        response.extra_events.extend(extra)
        return response

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("logged in" if self._logged_in else "logged out")
        return f"<AJAMClient {self.username}@{self.rawman_url} {state}>"

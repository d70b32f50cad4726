"""``FakeAJAMServer``: Asterisk's AJAM ``/rawman`` URI in front of a ``FakeAMIServer``.

Each HTTP manager session (cookie ``mansession_id``) is bridged to its own
TCP connection to the fake, so actions behave exactly as they do there.
After each action the bridge sends a sentinel ``Ping`` (it shows in the
fake's ``received_actions``) and collects what the fake answers before the
sentinel's response: the action's response, its list items and, after a
successful Login, the inline ``FullyBooted`` form the HTTP body; every other
event is queued for ``WaitEvent``, which the bridge answers itself, as
Asterisk does for HTTP sessions.

Threads: the HTTP acceptor, one per HTTP connection and one reader per
bridged session.  ``stop()`` joins all of them and closes every socket.

Tests steer it with ``tls`` (serve HTTPS), ``expire_sessions()`` (the
next request of every session gets a new, logged-out one, as after
Asterisk's ``httptimeout``), ``inject()`` (faults of proxies and dropped
connections) and read ``requests`` (every rawman request, secrets
masked).
"""
from __future__ import annotations

import email.utils
import logging
import random
import socket
import socketserver
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, Type, cast
from urllib.parse import parse_qsl, urlsplit

from ._http_bridge import _JOIN_TIMEOUT, _UNAUTH_LIFETIME, BridgedSession

if TYPE_CHECKING:
    from ._server import FakeAMIServer

__all__ = ["FakeAJAMServer", "AJAMRequest", "HTTP_FAULTS"]

#: Faults for ``FakeAJAMServer.inject``: what happens to the next matching request.
HTTP_FAULTS = (
    "drop_before_run",  # read the request, close the connection: nothing ran
    "drop_after_run",  # run the action, then close without answering
    "truncate",  # run the action, send half of the answer's body, close
    "html",  # a proxy's HTML page (200 text/html); nothing ran
    "status",  # an HTTP error status (``status=502``...) from a proxy; nothing ran
    "stall",  # run the action, answer after ``delay`` seconds
)


class AJAMRequest(NamedTuple):
    """One rawman request as the fake saw it (``Secret``/``Key`` values masked)."""

    action: str
    cookie: Optional[str]
    params: Tuple[Tuple[str, str], ...]


class _Fault:
    def __init__(self, kind: str, action: Optional[str], times: int, status: int, delay: float) -> None:
        self.kind, self.action, self.times, self.status, self.delay = kind, action, times, status, delay

logger = logging.getLogger("amiclient.testing.http")

_MAX_POST = 40960  # bytes of form data Asterisk accepts
_MAX_PARAMS = 128  # AST_MAX_MANHEADERS


class _Stopping(Exception):
    """The server is stopping (or the fake is unreachable): no new session."""


def _cookie_id(headers: Sequence[str]) -> Optional[int]:
    for header in headers:
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name.strip().lower() == "mansession_id":
                try:
                    return int(value.strip().strip('"'), 16)
                except ValueError:
                    return None
    return None


def _first(params: Sequence[Tuple[str, str]], name: str) -> str:
    """The first non-empty value of ``name`` (any case), like Asterisk's lookups for Action."""
    for key, value in params:
        if key.lower() == name and value:
            return value
    return ""


class FakeAJAMServer:
    """An HTTP server on loopback serving ``/<prefix>/rawman`` like Asterisk 22, backed by ``ami``.

    ``ami`` must be running.  GET query parameters or a POST form become
    the action's headers (names as sent, repeats kept, at most 128).
    ``httptimeout`` is the cookie's ``Max-Age`` and the idle lifetime of a
    logged-in session (5 s for others); ``keep_alive`` closes idle HTTP
    connections.  Context manager; ``.port``, ``.url``.
    """

    def __init__(
        self,
        ami: FakeAMIServer,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = "asterisk",
        *,
        httptimeout: int = 60,
        keep_alive: float = 15.0,
        answer_timeout: float = 30.0,
        tls: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.ami = ami
        self.host = host
        self.prefix = prefix.strip("/")
        self.httptimeout = httptimeout
        self.keep_alive = keep_alive
        self.answer_timeout = answer_timeout
        self.tls = tls
        #: Every rawman request, in arrival order.
        self.requests: List[AJAMRequest] = []
        self._faults: List[_Fault] = []
        self.server_version = "Asterisk/%s" % getattr(ami, "asterisk_version", "22.11.0-rc1")
        self.rawman_path = "/%s/rawman" % self.prefix if self.prefix else "/rawman"
        self._port = port
        self._lock = threading.Lock()
        self._sessions: Dict[int, BridgedSession] = {}
        self._all: List[BridgedSession] = []
        self._connections: Set[socket.socket] = set()
        self._handlers: Set[threading.Thread] = set()
        self._httpd: Optional[_HTTPServer] = None
        self._serve_thread: Optional[threading.Thread] = None
        self._stopping = False
        self.requests_handled = 0

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> FakeAJAMServer:
        """Start listening (no-op if running); return ``self``."""
        with self._lock:
            if self._httpd is not None:
                return self
            cls = _HTTPServer6 if ":" in self.host else _HTTPServer
            httpd = cls((self.host, self._port), _Handler)
            httpd.ajam = self
            self._port = httpd.server_address[1]
            self._httpd = httpd
            self._stopping = False
            self._serve_thread = threading.Thread(
                target=httpd.serve_forever, args=(0.05,), name="FakeAJAM-acceptor-%d" % self._port, daemon=True
            )
            self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Close the listener, every HTTP connection and every bridged session; join every thread."""
        with self._lock:
            httpd, self._httpd = self._httpd, None
            if httpd is None:
                return
            self._stopping = True
            sessions, self._all = self._all, []
            self._sessions.clear()
            serve_thread = self._serve_thread
        httpd.shutdown()
        if serve_thread is not None:
            serve_thread.join(_JOIN_TIMEOUT)
        httpd.server_close()
        for session in sessions:
            session.shutdown()  # wakes requests waiting for the fake, and WaitEvents
        with self._lock:
            for conn in self._connections:
                _shutdown(conn)  # wakes handlers idle on keep-alive connections
            handlers = list(self._handlers)
        for thread in handlers:
            thread.join(_JOIN_TIMEOUT)
        for session in sessions:
            session.destroy()

    def __enter__(self) -> FakeAJAMServer:
        return self.start()

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The listening port (the requested one before ``start()``)."""
        return self._port

    @property
    def url(self) -> str:
        """The manager prefix URL, e.g. ``http://127.0.0.1:8088/asterisk/``."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        scheme = "https" if self.tls is not None else "http"
        return "%s://%s:%d/%s" % (scheme, host, self._port, self.prefix + "/" if self.prefix else "")

    @property
    def session_count(self) -> int:
        """How many HTTP manager sessions are live."""
        with self._lock:
            return len(self._sessions)

    # -- test controls -----------------------------------------------------------------

    def expire_sessions(self, *, busy: bool = False) -> int:
        """End every idle manager session now, as Asterisk does after ``httptimeout``; return how many.

        ``busy=True`` ends sessions with requests in flight too (as a restart of Asterisk would).
        """
        with self._lock:
            victims = [s for s in self._sessions.values() if busy or s.busy == 0]
            for s in victims:
                del self._sessions[s.ident]
                s.destroyed = True
                self._all.remove(s)
        for s in victims:
            s.destroy()
        return len(victims)

    def inject(self, kind: str, action: Optional[str] = None, *, times: int = 1, status: int = 502,
               delay: float = 0.0) -> None:
        """Apply fault ``kind`` (see ``HTTP_FAULTS``) to the next ``times`` requests (of ``action`` only, if given)."""
        if kind not in HTTP_FAULTS:
            raise ValueError("unknown fault %r; one of %s" % (kind, ", ".join(HTTP_FAULTS)))
        with self._lock:
            self._faults.append(_Fault(kind, action.lower() if action else None, times, status, delay))

    def requests_of(self, action: str) -> List[AJAMRequest]:
        """The requests for ``action`` (any case)."""
        with self._lock:
            return [r for r in self.requests if r.action.lower() == action.lower()]

    def _take_fault(self, action: str) -> Optional[_Fault]:
        with self._lock:
            for fault in self._faults:
                if fault.action is None or fault.action == action.lower():
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _log(self, params: Sequence[Tuple[str, str]], cookies: Sequence[str]) -> str:
        action = _first(params, "action")
        ident = _cookie_id(cookies)
        masked = tuple((k, "********" if k.lower() in ("secret", "key") else v) for k, v in params)
        with self._lock:
            self.requests.append(AJAMRequest(action, None if ident is None else "%08x" % ident, masked))
        return action

    # -- requests ---------------------------------------------------------------------

    def _handle(self, params: Sequence[Tuple[str, str]], cookies: Sequence[str]) -> Tuple[bytes, str]:
        """Run one rawman request; return the AMI body and the session's cookie value."""
        session = self._session_for(_cookie_id(cookies))
        try:
            action = _first(params, "action")
            if action.lower() == "waitevent" and session.authenticated:
                return session.wait_event(_first(params, "actionid") or None, self._wait_limit(params)), session.cookie
            lines = ["%s: %s" % (_clean(key), _clean(value)) for key, value in params[:_MAX_PARAMS]]
            return session.run(action.lower(), lines, self.answer_timeout), session.cookie
        finally:
            self._release(session)

    def _wait_limit(self, params: Sequence[Tuple[str, str]]) -> float:
        limit = max(0, self.httptimeout - 10)
        try:
            wanted = int(_first(params, "timeout") or "-1")
        except ValueError:
            wanted = -1
        return float(limit if wanted < 0 or wanted > limit else wanted)

    def _session_for(self, ident: Optional[int]) -> BridgedSession:
        now = time.monotonic()
        with self._lock:
            if self._stopping:
                raise _Stopping("the server is stopping")
            expired = [s for s in self._sessions.values() if s.busy == 0 and s.expires <= now]
            for s in expired:
                del self._sessions[s.ident]
                s.destroyed = True
                self._all.remove(s)
            session = self._sessions.get(ident) if ident is not None else None
            if session is not None and not session.closed:
                session.busy += 1
        for s in expired:
            s.destroy()
        if session is not None and not session.closed:
            return session
        return self._new_session()

    def _new_session(self) -> BridgedSession:
        try:
            sock = socket.create_connection((self.ami.host, self.ami.port), timeout=5.0)
        except OSError as exc:
            raise _Stopping("cannot reach the fake AMI server: %s" % exc) from exc
        sock.settimeout(None)
        with self._lock:
            ident = random.getrandbits(32)
            while not ident or ident in self._sessions:
                ident = random.getrandbits(32)
            session = BridgedSession(ident, sock)
            if self._stopping:
                sock.close()
                raise _Stopping("the server is stopping")
            session.busy = 1
            self._sessions[ident] = session
            self._all.append(session)
            session.thread.start()
        return session

    def _release(self, session: BridgedSession) -> None:
        with self._lock:
            self.requests_handled += 1
            session.busy -= 1
            lifetime = self.httptimeout if session.authenticated else _UNAUTH_LIFETIME
            session.expires = time.monotonic() + lifetime
            destroy = session.closed and session.busy == 0 and not session.destroyed
            if destroy:  # Logoff, failed login or a dropped connection ends the HTTP session
                session.destroyed = True
                self._sessions.pop(session.ident, None)
                if session in self._all:
                    self._all.remove(session)
        if destroy:
            session.destroy()

    def _head(self, cookie: str, length: int) -> bytes:
        return (
            "HTTP/1.1 200 OK\r\n"
            "Server: %s\r\n"
            "Date: %s\r\n"
            "Cache-Control: no-cache, no-store\r\n"
            "Content-type: text/plain\r\n"
            'Set-Cookie: mansession_id="%s"; Version=1; Max-Age=%d\r\n'
            "Pragma: SuppressEvents\r\n"
            "Content-Length: %d\r\n\r\n"
            % (self.server_version, email.utils.formatdate(usegmt=True), cookie, self.httptimeout, length)
        ).encode("latin-1")

    def _track(self, thread: threading.Thread, conn: socket.socket) -> bool:
        with self._lock:
            if self._stopping:
                return False
            self._handlers = {t for t in self._handlers if t.is_alive()}
            self._handlers.add(thread)
            self._connections.add(conn)
            return True

    def _untrack(self, conn: socket.socket, close: Any) -> None:
        with self._lock:  # stop() never shuts down a closed (and maybe reused) descriptor
            self._connections.discard(conn)
            close(conn)


def _clean(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connection threads and sockets."""

    daemon_threads = True
    ajam: FakeAJAMServer

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # HTTPServer's getfqdn() may block on DNS
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def get_request(self) -> Tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        context = self.ajam.tls
        if context is not None:  # the handshake runs on the connection's thread
            sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), name="FakeAJAM-http", daemon=True
        )
        if not self.ajam._track(thread, request):
            self.shutdown_request(request)
            return
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        self.ajam._untrack(request, super().shutdown_request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("HTTP connection from %s failed", client_address, exc_info=True)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Serves ``/<prefix>/rawman``; everything else is 404."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.ajam = cast(_HTTPServer, self.server).ajam
        self.server_version = self.ajam.server_version
        self.sys_version = ""
        super().setup()
        self.connection.settimeout(self.ajam.keep_alive)  # idle keep-alive connections end
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._rawman("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._rawman("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._rawman("POST")

    def _rawman(self, method: str) -> None:
        url = urlsplit(self.path)
        query = url.query
        if method == "POST":  # Asterisk ignores the query string of a POST
            try:
                length = int(self.headers.get("Content-Length") or "0")
            except ValueError:
                self.send_error(400)
                return
            if length > _MAX_POST:
                self.send_error(413)
                return
            query = self.rfile.read(length).decode("utf-8", "replace")
        if url.path != self.ajam.rawman_path:
            self.send_error(404)
            return
        params = parse_qsl(query, keep_blank_values=True)
        cookies = self.headers.get_all("Cookie") or []
        action = self.ajam._log(params, cookies)
        fault = self.ajam._take_fault(action)
        if fault is not None and fault.kind in ("drop_before_run", "html", "status"):
            self._refuse(fault)
            return
        try:
            body, cookie = self.ajam._handle(params, cookies)
        except _Stopping as exc:
            logger.debug("request refused: %s", exc)
            self.send_error(503)
            return
        head = self.ajam._head(cookie, len(body))
        if fault is not None and fault.kind == "drop_after_run":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "truncate":
            self.wfile.write(head + body[: len(body) // 2])
            self.close_connection = True
            return
        if fault is not None and fault.kind == "stall":
            time.sleep(fault.delay)
        self.log_request(200, len(body))
        self.wfile.write(head + (b"" if method == "HEAD" else body))

    def _refuse(self, fault: _Fault) -> None:
        self.close_connection = True
        if fault.kind == "drop_before_run":
            return
        if fault.kind == "html":
            page = b"<html><head><title>Proxy login</title></head><body><form>Sign in</form></body></html>\n"
            status = "200 OK"
        else:
            page = ("<html><body><h1>%d</h1></body></html>\n" % fault.status).encode()
            status = "%d Proxy Error" % fault.status
        self.wfile.write(("HTTP/1.1 %s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n"
                          "Connection: close\r\n\r\n" % (status, len(page))).encode("latin-1") + page)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        logger.debug("%s " + format, self.address_string(), *args)

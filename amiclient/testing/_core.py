"""The server core of ``FakeAMIServer``: sockets, sessions, login, events, faults, the handler registry.

It knows no action family: families (calls, queues, CLI, ...) are tables of
handlers that ``FakeAMIServer`` registers with ``register_actions()``; the
core itself answers only the session actions of ``_login``.

Threads: one acceptor per listening generation (``restart()`` makes a new
one), one thread per session (see ``_session``), and one short-lived thread
per ``call_later()`` timer.  ``stop()`` joins all of them and closes every
socket.
"""

from __future__ import annotations

import logging
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Type, Union

from typing_extensions import Self

from ._events import Event, EventSpec, classes_to_mask, make_event
from ._faults import Fault, FaultsMixin, FaultState
from ._handlers import ActionSpec, Handler, HandlerResult, specs
from ._login import LOGIN_ACTIONS, User, unknown_action
from ._session import Session, _linger_zero
from ._wire import Packet, build_response

__all__ = ["ServerCore", "User"]

logger = logging.getLogger(__name__)
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)
_JOIN_TIMEOUT = 5.0


@dataclass
class _Generation:
    """One listening period (between start/restart and stop/restart)."""

    listener: socket.socket
    wake_r: socket.socket
    wake_w: socket.socket
    stop: threading.Event = field(default_factory=threading.Event)
    thread: Optional[threading.Thread] = None
    sessions: List[Session] = field(default_factory=list)
    timers: Set[threading.Thread] = field(default_factory=set)


_PRELOGIN = frozenset(("login", "logoff", "challenge"))


class ServerCore(FaultsMixin):
    """A manager server without action families: accept, sessions, login, events, faults, handlers.

    ``users`` maps usernames to secrets or ``User`` objects (default:
    ``{"admin": "secret"}``).  ``version`` is the banner's AMI version
    (``11.0.0``; ``2.10.6`` when ``legacy``).  Failed logins are answered
    after ``auth_fail_delay`` seconds.  ``security_events`` adds
    SuccessfulAuth/RequestBadFormat events.  ``write_timeout`` (s)
    disconnects clients that stop reading (default: never).
    """

    def __init__(
        self,
        users: Optional[Mapping[str, Union[str, User]]] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        version: Optional[str] = None,
        legacy: bool = False,
        auth_fail_delay: float = 0.0,
        *,
        asterisk_version: Optional[str] = None,
        security_events: bool = False,
        write_timeout: Optional[float] = None,
    ) -> None:
        if users is None:
            users = {"admin": "secret"}
        self.users: Dict[str, User] = {
            name: u if isinstance(u, User) else User(u) for name, u in users.items()
        }
        self.host = host
        self.legacy = legacy
        self.version = version or ("2.10.6" if legacy else "11.0.0")
        self.asterisk_version = asterisk_version or ("13.38.3" if legacy else "22.11.0-rc1")
        self.auth_fail_delay = auth_fail_delay
        self.security_events = security_events
        self.write_timeout = write_timeout
        #: Guards the server's state (handlers run on session threads).
        self.lock = threading.RLock()
        self.faults_state = FaultState()
        self.started_at = time.time()
        #: Run (in order) by ``restart()`` while nothing listens: families forget live state.
        self.restart_hooks: List[Callable[[], None]] = []
        self._defaults: Dict[str, ActionSpec] = {}
        self.register_actions(LOGIN_ACTIONS)
        self._custom: Dict[str, ActionSpec] = {}
        self._cond = threading.Condition(self.lock)
        self._received: List[Packet] = []
        self._live: List[Session] = []
        self._accepted = 0
        self._port = port
        self._gen: Optional[_Generation] = None
        self._lifecycle = threading.Lock()

    def register_actions(self, table: Sequence[Tuple[str, Handler, str, str]]) -> None:
        """Add an action family's built-in actions (``(name, handler, write classes, synopsis)`` rows)."""
        self._defaults.update((spec.name.lower(), spec) for spec in specs(table))

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> Self:
        """Start listening (no-op if running); return ``self``."""
        with self._lifecycle:
            if self._gen is None:
                self._start_generation(self._port)
        return self

    def stop(self) -> None:
        """Close the listener and every session; join every thread. Idempotent."""
        with self._lifecycle:
            gen, self._gen = self._gen, None
            if gen is not None:
                self._stop_generation(gen)

    def restart(self, down_for: float = 0.0) -> None:
        """Close the listener and all sessions, then listen again on the same port.

        ``down_for`` seconds pass with nothing listening.  Families forget their
        live state (``restart_hooks``: channels, bridges); stored state (AstDB) is kept.
        """
        with self._lifecycle:
            gen, self._gen = self._gen, None
            if gen is None:
                raise RuntimeError("server is not running")
            self._stop_generation(gen)
            for hook in list(self.restart_hooks):
                hook()
            if down_for > 0:
                time.sleep(down_for)
            self._start_generation(self._port)

    def drop_all(self, reset: bool = False) -> int:
        """Close (or with ``reset``, RST) every client connection; keep listening.

        Returns once they are closed; returns how many there were.
        """
        sessions = self.sessions
        for s in sessions:
            if reset:
                s.abort()
            else:
                s.close(flush_timeout=0.2)
        for s in sessions:
            s.join(_JOIN_TIMEOUT)
        return len(sessions)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._gen is not None

    @property
    def port(self) -> int:
        """The listening port (the requested one before ``start()``)."""
        return self._port

    @property
    def address(self) -> Tuple[str, int]:
        """``(host, port)``."""
        return (self.host, self._port)

    @property
    def banner(self) -> bytes:
        """The greeting line sent on accept."""
        return ("Asterisk Call Manager/%s\r\n" % self.version).encode()

    def _start_generation(self, port: int) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        deadline = time.monotonic() + 2.0
        while True:
            listener = socket.socket(family, socket.SOCK_STREAM)
            try:
                if hasattr(socket, "SO_REUSEADDR") and sys.platform != "win32":
                    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((self.host, port))
                listener.listen(128)
                break
            except OSError:
                listener.close()
                if port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the old port is not free yet
        listener.setblocking(False)
        self._port = listener.getsockname()[1]
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        gen = _Generation(listener, wake_r, wake_w)
        gen.thread = threading.Thread(
            target=self._accept_loop, args=(gen,), name="FakeAMI-acceptor-%d" % self._port,
            daemon=True,
        )
        self.started_at = time.time()
        self._gen = gen
        gen.thread.start()
        logger.debug("listening on %s:%d", self.host, self._port)

    def _stop_generation(self, gen: _Generation) -> None:
        gen.stop.set()
        try:
            gen.wake_w.send(b"\0")
        except OSError:
            pass
        if gen.thread is not None:
            gen.thread.join(_JOIN_TIMEOUT)
        for sock in (gen.listener, gen.wake_r, gen.wake_w):
            sock.close()
        with self.lock:
            sessions, timers = list(gen.sessions), list(gen.timers)
        for s in sessions:
            s.close(flush_timeout=0.2)
        for s in sessions:
            if not s.join(_JOIN_TIMEOUT):
                logger.warning("%r did not stop in time", s)
        for t in timers:
            t.join(_JOIN_TIMEOUT)

    def _accept_loop(self, gen: _Generation) -> None:
        sel = _Selector()
        try:
            sel.register(gen.listener, selectors.EVENT_READ)
            sel.register(gen.wake_r, selectors.EVENT_READ)
            while not gen.stop.is_set():
                for key, _ in sel.select():
                    if key.fileobj is gen.wake_r:
                        return
                    self._accept(gen)
        except Exception:  # pragma: no cover - keep the failure visible
            logger.exception("acceptor failed")
        finally:
            sel.close()

    def _accept(self, gen: _Generation) -> None:
        try:
            conn, peer = gen.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            logger.warning("accept failed: %s", exc)
            return
        with self.lock:
            self._accepted += 1
        if self.faults_state.take(Fault.RESET) is not None:
            _linger_zero(conn)
            conn.close()
            return
        stalled = self.faults_state.take(Fault.STALL) is not None
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = Session(self, conn, peer, stalled)
        with self.lock:
            gen.sessions = [s for s in gen.sessions if not s.join(0)]
            gen.sessions.append(session)
            self._live.append(session)
            self._cond.notify_all()
        session.start()

    def _session_ended(self, session: Session) -> None:
        with self.lock:
            if session in self._live:
                self._live.remove(session)
            self._cond.notify_all()

    def _authenticated(self, session: Session) -> None:
        with self.lock:
            session.authenticated = True
            self._cond.notify_all()

    def call_later(self, delay: float, func: Callable[[], object]) -> None:
        """Run ``func`` on a helper thread after ``delay`` s (cancelled by stop/restart)."""
        gen = self._gen
        if gen is None:
            return

        def run() -> None:
            try:
                if not gen.stop.wait(delay):
                    func()
            except Exception:
                logger.exception("timer callback failed")

        thread = threading.Thread(target=run, name="FakeAMI-timer", daemon=True)
        with self.lock:
            gen.timers = {t for t in gen.timers if t.is_alive()}
            gen.timers.add(thread)
        thread.start()

    # -- observation ------------------------------------------------------------

    @property
    def sessions(self) -> List[Session]:
        """The live sessions (a copy)."""
        with self.lock:
            return list(self._live)

    @property
    def received_actions(self) -> List[Packet]:
        """Every client packet received, across sessions, in order (a copy)."""
        with self.lock:
            return list(self._received)

    @property
    def connections_accepted(self) -> int:
        """How many connections were accepted (restarts included)."""
        with self.lock:
            return self._accepted

    def _record(self, packet: Packet) -> None:
        with self.lock:
            self._received.append(packet)
            self._cond.notify_all()

    def wait_for_sessions(
        self, n: int, timeout: Optional[float] = 5.0, authenticated: bool = True
    ) -> bool:
        """Wait until at least ``n`` sessions (logged-in ones by default) are live."""
        def ready() -> bool:
            return sum(1 for s in self._live if s.authenticated or not authenticated) >= n

        with self._cond:
            return self._cond.wait_for(ready, timeout)

    def wait_for_actions(self, n: int, timeout: Optional[float] = 5.0) -> bool:
        """Wait until at least ``n`` client packets have been received in total."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._received) >= n, timeout)

    # -- events -----------------------------------------------------------------

    def emit(self, event: EventSpec, /, **headers: str) -> int:
        """Push an event to every logged-in session whose mask and filters allow it.

        ``event`` is a mapping, a list of pairs, or an event name with the
        headers as keywords.  ``Privilege: call,all`` is added unless given.
        Returns the number of sessions it was queued for.
        """
        return self.broadcast(make_event(event, headers))

    def broadcast(self, event: Event) -> int:
        """Queue an encoded event for every session that accepts it."""
        return sum(1 for s in self.sessions if s.deliver(event))

    def emit_raw(self, data: bytes) -> int:
        """Push raw bytes to every logged-in session (between actions)."""
        sessions = [s for s in self.sessions if s.authenticated]
        for s in sessions:
            s.push(data)
        return len(sessions)

    # -- actions ----------------------------------------------------------------

    def add_handler(
        self, action: str, handler: Handler, *, privilege: str = "", synopsis: str = "Custom action."
    ) -> None:
        """Handle ``action`` (case-insensitive) with ``handler(session, packet)``.

        Overrides a built-in action.  ``privilege`` is the write class list
        needed to run it (``""``: any logged-in user).
        """
        self._custom[action.lower()] = ActionSpec(action, handler, classes_to_mask(privilege), synopsis)

    def remove_handler(self, action: str) -> None:
        """Remove a handler added with ``add_handler`` (the built-in one returns)."""
        self._custom.pop(action.lower(), None)

    def action_specs(self) -> List[ActionSpec]:
        """Every action the server knows."""
        merged = dict(self._defaults)
        merged.update(self._custom)
        return list(merged.values())

    def _dispatch(self, session: Session, packet: Packet) -> HandlerResult:
        if packet.error:
            return build_response(packet, packet.error, "Error")
        action = packet.action
        if not action:
            return build_response(packet, "Missing action in request", "Error")
        key = action.lower()
        if not session.authenticated and key not in _PRELOGIN:
            return build_response(packet, "Permission denied", "Error")
        spec = self._custom.get(key) or self._defaults.get(key)
        if spec is None:
            return unknown_action(session, packet)
        if spec.authority and not session.write_perm & spec.authority:
            return build_response(packet, "Permission denied", "Error")
        return spec.handler(session, packet)

"""The manager session of AMI over HTTP: login, the ``mansession_id`` cookie, expiry, answer checks.

Rules (Asterisk 22 as recorded in ``ajam-waitevent.txt``):

* Login is sent *without* a cookie, so Asterisk opens a new session; only
  the cookie of a successful Login becomes the session cookie.  Answers to
  other requests never change it, so a login racing other requests always
  ends with the authenticated cookie.
* An expired (purged) session is answered ``200``, ``Response: Error``,
  ``Message: Permission denied`` *and a new cookie*: nothing ran.  Then
  one thread logs in again (the others wait and use its cookie) and the
  request is sent once more; a second refusal is the caller's error.  A
  ``Permission denied`` with the same cookie is a real refusal.
* HTTP answers map to the client's errors: 401/403/407 AuthenticationError,
  408/504 ActionTimeout, other non-200 and non-AMI (HTML) bodies
  ConnectionLost, invalid AMI ProtocolError.

Neither the secret nor the cookie is ever logged or put in an error.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from typing import Callable, List, Optional, Sequence, Tuple
from urllib.parse import quote, urlencode

from .exceptions import ActionTimeout, AuthenticationError, ConnectionLost, ProtocolError
from .transport.http import Answer, HTTPTransport, Lane
from .transport.rawman import AJAMResponse, parse_body

__all__ = ["HTTPSession", "READ_ONLY_ACTIONS", "Params"]

log = logging.getLogger("amiclient.http")

Params = Sequence[Tuple[str, str]]

#: Actions without side effects: re-sent once when a connection drops mid-request.  Not ``WaitEvent``:
#: a cut answer loses its events, so the poller reports it (DISCONNECTED, RECONNECTED) and listeners can resync.
READ_ONLY_ACTIONS = frozenset({
    "ping", "login", "logoff", "coresettings", "corestatus", "coreshowchannels", "status", "getvar",
    "dbget", "dbgettree", "listcommands", "queuestatus", "queuesummary", "extensionstate", "showdialplan",
    "sippeers", "sipshowpeer", "sipshowregistry", "iaxpeers", "iaxpeerlist", "iaxregistry", "pjsipshowendpoints",
    "pjsipshowendpoint", "pjsipshowregistrationsoutbound", "pjsipshowcontacts", "pjsipshowaors", "bridgelist",
    "bridgeinfo", "parkedcalls", "agents", "confbridgelist", "confbridgelistrooms", "meetmelist",
    "voicemailuserslist", "extensionstatelist", "devicestatelist", "presencestatelist", "listcategories",
    "getconfig", "getconfigjson", "mailboxcount", "mailboxstatus", "coreshowchannelmap", "loggerlistchannels",
    "modulecheck", "queuerule", "challenge",
})


class HTTPSession:
    """One manager login over HTTP, shared by every thread of a client."""

    def __init__(
        self, transport: HTTPTransport, username: str, secret: str, *,
        mask: Callable[[], str], after_login: Callable[[str], None],
    ) -> None:
        self.transport = transport
        self.username = username
        self._secret = secret
        self._mask = mask
        self._after_login = after_login
        self._login_lock = threading.Lock()
        self._cookie: Optional[str] = None
        self.logins = 0
        self._id_prefix = uuid.uuid4().hex[:12]
        self._id_counter = itertools.count(1)

    @property
    def logged_in(self) -> bool:
        """True once a login succeeded (until :meth:`forget`)."""
        return self._cookie is not None

    def next_action_id(self) -> str:
        """A unique ActionID."""
        return f"{self._id_prefix}-{next(self._id_counter)}"

    def forget(self) -> None:
        """Drop the session cookie (after Logoff)."""
        self._cookie = None

    def reset_after_fork(self) -> None:
        """In a forked child: a new lock, no session (the parent's stays the parent's), new ActionIDs."""
        self._login_lock = threading.Lock()
        self._cookie = None
        self._id_prefix = uuid.uuid4().hex[:12]
        self._id_counter = itertools.count(1)

    # ------------------------------------------------------------------ login

    def login(self, timeout: float) -> AJAMResponse:
        """Open a new session (``Login``); AuthenticationError if refused."""
        with self._login_lock:
            return self._login_locked(timeout)

    def _login_locked(self, timeout: float) -> AJAMResponse:
        if any(c in text for text in (self.username, self._secret) for c in "\r\n\x00"):
            raise ValueError("the username or secret contains CR, LF or NUL")
        mask = self._mask()
        params = [("Action", "Login"), ("Username", self.username), ("Secret", self._secret), ("Events", mask),
                  ("ActionID", self.next_action_id())]
        answer = self.transport.post(_form(params), None, timeout, what="Login", replayable=True)
        response = self.check(answer, "Login")
        if response is None or not response.ok:
            message = response.message if response is not None else "(empty answer)"
            raise AuthenticationError(f"login of {self.username!r} refused by {self.transport.url}: {message}")
        if not answer.cookie:
            raise AuthenticationError(f"{self.transport.url} accepted the login but set no mansession_id cookie")
        self._cookie = answer.cookie
        self.logins += 1
        log.info("logged in to %s as %r", self.transport.url, self.username)
        self._after_login(mask)
        return response

    def _relogin(self, stale: Optional[str], timeout: float, what: str) -> None:
        started = time.monotonic()
        if not self._login_lock.acquire(timeout=timeout):  # another thread's login: wait no longer than our timeout
            raise ActionTimeout(f"{what} waited {timeout:g} s for a new login to {self.transport.url}; not sent")
        try:
            if self._cookie != stale:  # another thread logged in meanwhile: use its session
                return
            log.info("manager session on %s expired; logging in again", self.transport.url)
            self._login_locked(max(timeout - (time.monotonic() - started), 0.001))
        finally:
            self._login_lock.release()

    # ------------------------------------------------------------------ requests

    def request(
        self, name: str, params: Params, timeout: Optional[float], *, lane: Optional[Lane] = None,
        allow_empty: bool = False,
    ) -> Optional[AJAMResponse]:
        """Send one action in the session; its response (None only if ``allow_empty`` and the body is empty).

        A request refused because the session expired is sent again once
        after a new login (see the module docstring).
        """
        deadline = time.monotonic() + (timeout if timeout is not None else 86400.0)
        form = _form(params)
        replayable = name.lower() in READ_ONLY_ACTIONS
        for attempt in (1, 2):
            cookie = self._cookie
            left = deadline - time.monotonic()
            if left <= 0:
                raise ActionTimeout(f"no answer to {name} from {self.transport.url} within {timeout:g} s")
            answer = self.transport.post(form, cookie, left, what=name, replayable=replayable, lane=lane)
            response = self.check(answer, name)
            if attempt == 1 and _expired(answer, cookie, response):
                self._relogin(cookie, max(deadline - time.monotonic(), 0.001), name)
                continue
            if response is None and not allow_empty:
                raise ProtocolError(f"{self.transport.url} sent no AMI response to {name}")
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def send_once(self, name: str, params: Params, timeout: float) -> Optional[AJAMResponse]:
        """Send one action with the current cookie: no new login, no retry (used right after a login)."""
        answer = self.transport.post(_form(params), self._cookie, timeout, what=name)
        return self.check(answer, name)

    def check(self, answer: Answer, name: str) -> Optional[AJAMResponse]:
        """The AMI response in an HTTP answer; raises the client's error for anything else."""
        url = self.transport.url
        status = f"HTTP {answer.status} {answer.reason}".strip()
        if answer.status in (401, 403, 407):
            raise AuthenticationError(f"{url} refused {name}: {status} (an HTTP proxy or server wants credentials)")
        if answer.status in (408, 504):
            raise ActionTimeout(f"{url} answered {name} with {status}; {name} may have run")
        if answer.status != 200:
            may = "was not run" if answer.status in (404, 405, 413, 414, 501) else "may have run"
            raise ConnectionLost(f"{url} answered {name} with {status}; {name} {may}")
        if answer.content_type in ("text/html", "application/xhtml+xml") or answer.body.lstrip()[:1] == b"<":
            raise ConnectionLost(f"{url} answered {name} with an HTML page, not AMI (a proxy or a wrong URL?); "
                                 f"{name} may have run")
        return parse_body(answer.body, name)


def _expired(answer: Answer, sent: Optional[str], response: Optional[AJAMResponse]) -> bool:
    """Whether Asterisk refused the request because the session named by ``sent`` no longer exists."""
    return (
        response is not None and sent is not None and answer.cookie is not None and answer.cookie != sent
        and response.status.lower() == "error" and (response.message or "").lower() == "permission denied"
    )


def _form(params: Params) -> bytes:
    return urlencode(list(params), quote_via=quote).encode("ascii")


def action_params(data: bytes) -> List[Tuple[str, str]]:
    """Form fields from a serialised action (``serialize_action``'s checked bytes)."""
    pairs: List[Tuple[str, str]] = []
    for line in data.decode("utf-8").split("\r\n"):
        if line:
            key, _, value = line.partition(": ")
            pairs.append((key, value))
    return pairs

"""The synchronous exchanges on a fresh connection: login, then re-applying the event mask and filters.

They run before the reader starts, on the thread that opens the
connection, so a refused login is an exception of that call.
"""
from __future__ import annotations

import hashlib
import logging
import ssl
from typing import Callable, Dict, List, Mapping, Optional, Union

from ._connection import Connection
from ._protocol import HeaderValue, serialize_action
from .exceptions import AuthenticationError, ConnectionLost
from .packet import Response

__all__ = ["Handshake"]

log = logging.getLogger("amiclient.client")


class Handshake:
    """Login and setup exchanges on one connection."""

    def __init__(self, conn: Connection, next_action_id: Callable[[], str], timeout: float) -> None:
        self.conn = conn
        self.next_action_id = next_action_id
        self.timeout = timeout

    def exchange(self, action: str, fields: Mapping[str, HeaderValue]) -> Response:
        """Send one action and wait for its response."""
        action_id = self.next_action_id()
        return self.conn.exchange(serialize_action(action, fields, action_id), action_id, self.timeout)

    def login(self, username: str, secret: str, auth: str, events: Union[bool, str]) -> None:
        """Log in (MD5 challenge unless ``auth == "plain"``); AuthenticationError if refused.

        ``auth="auto"`` sends the plain secret only over TLS that verifies the
        server's certificate when the server refuses the challenge; otherwise
        it raises AuthenticationError (a man in the middle could refuse the
        challenge to read the secret).
        Errors name the ``Secret`` header, never its value.
        """
        conn = self.conn
        if not isinstance(secret, str) or not _encodable(secret):
            raise ValueError("the secret must be a str that UTF-8 can encode")
        fields: Dict[str, HeaderValue] = {"Username": username, "Secret": secret}
        if auth != "plain":
            response = self.exchange("Challenge", {"AuthType": "MD5"})
            challenge = response.get("Challenge")
            if response.ok and challenge:
                digest = hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()
                fields = {"AuthType": "MD5", "Username": username, "Key": digest}
            elif auth == "md5":
                raise AuthenticationError(f"{conn.address} refused the MD5 challenge: {response.message}")
            elif conn.ssl_context is None:
                raise AuthenticationError(
                    f"{conn.address} refused the MD5 challenge ({response.message}); auth='auto' does not send "
                    "the secret in clear text over an unencrypted link: use tls, or auth='plain' if you accept that")
            elif conn.ssl_context.verify_mode == ssl.CERT_NONE:
                raise AuthenticationError(
                    f"{conn.address} refused the MD5 challenge ({response.message}); auth='auto' does not send "
                    "the secret over TLS that does not verify the server's certificate (anyone in the middle could "
                    "read it): verify the certificate, or use auth='plain' if you accept that")
            else:
                log.info("%s refused the MD5 challenge; logging in with the plain secret over TLS", conn.address)
        fields["Events"] = events if isinstance(events, str) else ("on" if events else "off")
        action_id = self.next_action_id()
        data = _login_bytes(fields, action_id)
        try:
            response = self.conn.exchange(data, action_id, self.timeout)
        except ConnectionLost as exc:
            raise AuthenticationError(f"{conn.address} closed the connection during login of {username!r}") from exc
        if not response.ok:
            raise AuthenticationError(f"login of {username!r} refused by {conn.address}: {response.message}")
        log.info("logged in to %s as %r (AMI %s, %s)", conn.address, username, conn.version, fields.get("AuthType", "plain"))

    def reapply(self, event_mask: Optional[str], filters: List[Dict[str, str]]) -> None:
        """Set the event mask and add the filters the user set on the client before."""
        if event_mask is not None:
            self.exchange("Events", {"EventMask": event_mask})
        for fields in list(filters):
            response = self.exchange("Filter", dict(fields))
            if not response.ok:
                log.warning("re-applying filter %r on %s failed: %s", fields.get("Filter"), self.conn.address, response.message)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeError:
        return False
    return True


def _login_bytes(fields: Dict[str, HeaderValue], action_id: str) -> bytes:
    """The Login action; a ValueError about ``Secret``/``Key`` names the header, never its value."""
    try:
        return serialize_action("Login", fields, action_id)
    except (ValueError, UnicodeError):
        pass  # raised below, outside this block: the original error (holding the value) is not chained
    secret_header = "Secret" if "Secret" in fields else "Key"
    masked = dict(fields)
    masked[secret_header] = "x"
    serialize_action("Login", masked, action_id)  # raises the error if it is not about the secret
    raise ValueError(f"the {secret_header} value cannot be sent: it holds CR, LF, NUL, a leading blank or control "
                     "character, or is too long (the value is not shown)")

"""What every helper family builds on: the host's ``action()``, the ``timeout`` rule, value checks."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence, Union

from ..packet import Response

if TYPE_CHECKING:  # pragma: no cover
    from .._protocol import HeaderValue

__all__ = ["DEFAULT", "HelperHost", "literal_channel"]

#: "The client's own default timeout": helpers pass ``timeout`` on only when the caller gave one.
DEFAULT: Any = type("_Default", (), {"__repr__": lambda self: "DEFAULT"})()

_TRUE = frozenset(("yes", "true", "y", "t", "1", "on"))


def literal_channel(channel: str, what: str = "channel") -> str:
    """``channel`` if Asterisk reads it as a literal name; ``ValueError`` otherwise.

    Hangup reads a value starting with ``/`` as a ``/regex/``; helpers take
    literal names only (use ``hangup(regex=...)`` for a pattern).
    """
    if not isinstance(channel, str) or not channel:
        raise ValueError(f"{what} must be a non-empty channel name, not {channel!r}")
    if channel.startswith("/"):
        raise ValueError(f"{what} {channel[:60]!r} starts with '/', which Asterisk reads as a /regex/; "
                         "pass a pattern explicitly as hangup(regex=...)")
    return channel


def whole_seconds_ms(seconds: float, what: str) -> int:
    """``seconds`` as positive milliseconds (``ValueError`` for <= 0 or not a number)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < 1e9:
        raise ValueError(f"{what} must be a positive number of seconds, not {seconds!r}")
    return max(1, int(round(seconds * 1000)))


_TOKEN = re.compile(r"[A-Za-z0-9_.+-]+\Z")


def token(value: str, what: str) -> str:
    """``value`` if it is one plain word (codec, module...); ``ValueError`` otherwise."""
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise ValueError(f"invalid {what} {value!r}: letters, digits and _ . + - only")
    return value


def truthy(value: Optional[str]) -> bool:
    """Asterisk's ``ast_true()`` for a header value."""
    return (value or "").strip().lower() in _TRUE


class HelperHost:
    """The host's API the helpers use: ``action()`` (and ``send_action()``), as on every client."""

    if TYPE_CHECKING:  # provided by the client the helpers are mixed into

        def action(
            self, action: Union[str, Mapping[str, HeaderValue]], headers: Optional[Mapping[str, HeaderValue]] = None,
            *, timeout: Optional[float] = ..., **fields: HeaderValue,
        ) -> Response: ...

    def _call(self, name: str, fields: Optional[Mapping[str, HeaderValue]] = None, timeout: Any = DEFAULT) -> Response:
        """``action(name, fields)``, with ``timeout`` passed on only if the caller gave one."""
        headers: Dict[str, HeaderValue] = {k: v for k, v in (fields or {}).items() if v is not None}
        if timeout is DEFAULT:
            return self.action(name, headers)
        return self.action(name, headers, timeout=timeout)


def merge_extra(fields: Dict[str, HeaderValue], extra: Mapping[str, HeaderValue]) -> Dict[str, HeaderValue]:
    """``fields`` plus the caller's raw ``extra`` headers; ``ValueError`` if one would replace a helper's header."""
    taken = {key.lower() for key, value in fields.items() if value is not None}
    for key, value in extra.items():
        if key.lower() in taken:
            raise ValueError(f"header {key!r} is set by the helper's own arguments; pass it there")
        fields[key] = value
    return fields


def as_list(value: Union[str, Sequence[str]]) -> Sequence[str]:
    """A single string as a one-item list; sequences unchanged."""
    return [value] if isinstance(value, str) else value

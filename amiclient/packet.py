"""AMI packets as dictionaries: keys as received, case-insensitive lookups, repeated keys kept."""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple, TypeVar, Union, cast, overload

__all__ = ["Packet", "Response", "Event"]

_MISSING: Any = object()
_SCAN_KEYS = 8  # up to this many keys, a case-insensitive miss scans them instead of building a lookup table
_T = TypeVar("_T")


class Packet(Dict[str, str]):
    """One AMI message.

    A ``dict`` of header name to the *first* value of that header, in the
    order received.  Lookups (``[]``, ``get``, ``in``) ignore case; the
    exact spelling is tried first.  ``getlist(key)`` returns every value of
    a repeated header (``Variable``, ``ChanVariable``, ``Output``).
    """

    # Class-level defaults keep construction at C speed (no __init__ override).
    _repeats: Optional[Dict[str, List[str]]] = None  # lower-case key -> all values, only for repeated keys
    _lower: Optional[Dict[str, str]] = None  # lower-case key -> key as received, built on first miss

    @classmethod
    def from_pairs(cls, pairs: Iterable[Tuple[str, str]]) -> Packet:
        """Build a packet from ``(key, value)`` pairs; repeated keys (any case) keep every value."""
        packet = cls()
        lower_map: Dict[str, str] = {}
        repeats: Dict[str, List[str]] = {}
        for key, value in pairs:
            lower = key.lower()
            first = lower_map.get(lower)
            if first is None:
                lower_map[lower] = key
                dict.__setitem__(packet, key, value)
            else:
                values = repeats.get(lower)
                if values is None:
                    values = repeats[lower] = [dict.__getitem__(packet, first)]
                values.append(value)
        packet._lower = lower_map
        if repeats:
            packet._repeats = repeats
        return packet

    def _find(self, key: str) -> Optional[str]:
        lower = self._lower
        if lower is None:
            if len(self) <= _SCAN_KEYS:  # a short packet (an action's answer): a scan, no table built
                wanted, found = key.lower(), None
                for name in dict.keys(self):
                    if name.lower() == wanted:
                        found = name  # the last one, as the table would give
                return found
            lower = self._lower = {k.lower(): k for k in dict.keys(self)}
        return lower.get(key.lower())

    def __missing__(self, key: str) -> str:
        # dict.__getitem__ calls this only on a miss: exact-case lookups stay at C speed.
        real = self._find(key) if isinstance(key, str) else None
        if real is None:
            raise KeyError(key)
        return dict.__getitem__(self, real)

    @overload
    def get(self, key: str, default: None = None, /) -> Optional[str]: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> Union[str, _T]: ...
    def get(self, key: str, default: Any = None, /) -> Any:
        """The first value of ``key`` (any case), or ``default``."""
        value = dict.get(self, key, _MISSING)
        if value is not _MISSING:
            return value
        real = self._find(key) if isinstance(key, str) else None
        return default if real is None else dict.__getitem__(self, real)

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        return isinstance(key, str) and self._find(key) is not None

    def __setitem__(self, key: str, value: str) -> None:
        real = self._find(key)
        if real is not None and real != key:
            dict.__delitem__(self, real)
        dict.__setitem__(self, key, value)
        self._lower = None
        if self._repeats:
            self._repeats.pop(key.lower(), None)

    def __delitem__(self, key: str) -> None:
        real = self._find(key) or key
        dict.__delitem__(self, real)
        self._lower = None
        if self._repeats:
            self._repeats.pop(key.lower(), None)

    def update(self, *args: Any, **kwargs: str) -> None:
        """Set several headers (each like ``packet[key] = value``)."""
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: str = "") -> str:
        """``packet[key]`` (any case), set to ``default`` first if absent."""
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: str, *default: Any) -> Any:
        """Remove a header (any case) and return its first value."""
        real = self._find(key) or key
        if dict.__contains__(self, real):
            value = dict.__getitem__(self, real)
            del self[real]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> Tuple[str, str]:
        item = dict.popitem(self)
        self._lower = None
        if self._repeats:
            self._repeats.pop(item[0].lower(), None)
        return item

    def clear(self) -> None:
        dict.clear(self)
        self._lower = self._repeats = None

    def copy(self) -> Packet:
        """A copy of the same class, repeated values included."""
        return type(self).from_pairs(self.items_all())

    def getlist(self, key: str) -> List[str]:
        """Every value of ``key`` (any case) in the order received; ``[]`` if absent."""
        if self._repeats:
            values = self._repeats.get(key.lower())
            if values is not None:
                return list(values)
        value = self.get(key, _MISSING)
        return [] if value is _MISSING else [value]

    def items_all(self) -> List[Tuple[str, str]]:
        """All ``(key, value)`` pairs, repeated keys included (repeats follow the first occurrence)."""
        pairs: List[Tuple[str, str]] = []
        for key, value in dict.items(self):
            values = self._repeats.get(key.lower()) if self._repeats else None
            if values is None:
                pairs.append((key, value))
            else:
                pairs.extend((key, v) for v in values)
        return pairs

    @property
    def action_id(self) -> Optional[str]:
        """The ``ActionID`` header, or None."""
        return self.get("ActionID")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"

    def __reduce__(self) -> Union[str, Tuple[Any, ...]]:
        return (type(self).from_pairs, (self.items_all(),))


class Response(Packet):
    """The answer to one action (``Response: Success|Error|Goodbye|Follows``)."""

    _events: Optional[List[Event]] = None
    #: The event that ended an event list (``...Complete``, with ``ListItems``), if any.
    complete_event: Optional[Event] = None

    @property
    def status(self) -> str:
        """The ``Response`` header value, e.g. ``"Success"``."""
        value = dict.get(self, "Response")
        return value if value is not None else self.get("Response", "")

    @property
    def ok(self) -> bool:
        """False for ``Response: Error`` or ``Failure``, True otherwise."""
        return self.status.lower() not in ("error", "failure")

    @property
    def message(self) -> Optional[str]:
        """The ``Message`` header, or None (several responses have none)."""
        return self.get("Message")

    @property
    def events(self) -> List[Event]:
        """The list items of an event-generating action, in order (empty for other actions)."""
        if self._events is None:
            self._events = []
        return self._events

    @events.setter
    def events(self, events: List[Event]) -> None:
        self._events = events

    def __reduce__(self) -> Union[str, Tuple[Any, ...]]:
        state = {"_events": self._events, "complete_event": self.complete_event}  # a list's items travel too
        return (type(self).from_pairs, (self.items_all(),), state)

    def copy(self) -> Response:
        """A copy, repeated values, list items and the completing event included."""
        clone = cast(Response, type(self).from_pairs(self.items_all()))
        if self._events is not None:
            clone._events = list(self._events)
        clone.complete_event = self.complete_event
        return clone

    @property
    def output(self) -> str:
        """The CLI output of a ``Command`` action, lines joined with ``\\n``."""
        return "\n".join(self.getlist("Output"))


class Event(Packet):
    """An event pushed by the server, or one item of an event list."""

    @property
    def name(self) -> str:
        """The event name (the ``Event`` header), e.g. ``"Hangup"``."""
        return self.get("Event", "")

"""Event classes, event masks, event filters and server-side event objects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Pattern, Sequence, Tuple, Union

__all__ = [
    "ALL",
    "CLASSES",
    "Event",
    "EventFilter",
    "FilterError",
    "classes_to_mask",
    "filters_allow",
    "make_event",
    "mask_to_str",
    "parse_event_mask",
]

#: Permission/event classes in Asterisk's ``perms[]`` order, with their bits.
CLASSES: Tuple[Tuple[str, int], ...] = (
    ("system", 1 << 0),
    ("call", 1 << 1),
    ("log", 1 << 2),
    ("verbose", 1 << 3),
    ("command", 1 << 4),
    ("agent", 1 << 5),
    ("user", 1 << 6),
    ("config", 1 << 7),
    ("dtmf", 1 << 8),
    ("reporting", 1 << 9),
    ("cdr", 1 << 10),
    ("dialplan", 1 << 11),
    ("originate", 1 << 12),
    ("agi", 1 << 13),
    ("cc", 1 << 15),
    ("aoc", 1 << 16),
    ("test", 1 << 17),
    ("security", 1 << 18),
    ("message", 1 << 30),
)
#: The ``all`` mask (``INT_MAX``).
ALL = 0x7FFFFFFF
_BY_NAME = dict(CLASSES)
_TRUE = frozenset(("yes", "true", "y", "t", "1", "on"))
_FALSE = frozenset(("no", "false", "n", "f", "0", "off"))


def classes_to_mask(text: str, case_sensitive: bool = True) -> int:
    """Mask of a comma list of class names (``all``/``none`` understood)."""
    mask = 0
    for name in text.split(","):
        name = name.strip()
        if not case_sensitive:
            name = name.lower()
        if name == "all":
            mask |= ALL
        elif name in _BY_NAME:
            mask |= _BY_NAME[name]
    return mask


def parse_event_mask(text: str) -> int:
    """Parse an ``Events:``/``EventMask:`` value like ``strings_to_mask()``."""
    if text.isdigit():
        return int(text) & ALL
    low = text.lower()
    if low in _FALSE:
        return 0
    if low in _TRUE:
        return ALL
    return classes_to_mask(text)


def mask_to_str(mask: int) -> str:
    """``authority_to_str()``: ``call,all`` style, or ``<none>``."""
    names = [name for name, bit in CLASSES if mask & bit]
    if mask:
        names.append("all")
    return ",".join(names) if names else "<none>"


@dataclass
class Event:
    """One encoded event: its name, class bits and bytes on the wire."""

    name: str
    classes: int
    data: bytes
    _text: Optional[str] = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The event text, as filters see it."""
        if self._text is None:
            self._text = self.data.decode("utf-8", "surrogateescape")
        return self._text


EventSpec = Union[str, Mapping[str, str], Sequence[Tuple[str, str]]]


def make_event(
    event: EventSpec, headers: Mapping[str, str], privilege: str = "call,all"
) -> Event:
    """Build an ``Event`` from a name + headers, a mapping or a list of pairs.

    ``Event`` is put first and a ``Privilege`` header is added second unless
    one is given.
    """
    if isinstance(event, str):
        pairs: List[Tuple[str, str]] = [("Event", event)]
        pairs.extend(headers.items())
    elif isinstance(event, Mapping):
        pairs = list(event.items()) + list(headers.items())
    else:
        pairs = list(event) + list(headers.items())
    name = ""
    for i, (key, value) in enumerate(pairs):
        if key.lower() == "event":
            name = value
            pairs.insert(0, pairs.pop(i))
            break
    else:
        raise ValueError("an event needs an 'Event' header")
    priv = next((v for k, v in pairs if k.lower() == "privilege"), None)
    if priv is None:
        priv = privilege
        pairs.insert(1, ("Privilege", priv))
    text = "".join("%s: %s\r\n" % kv for kv in pairs) + "\r\n"
    classes = 0
    for cname in priv.lower().split(","):
        classes |= _BY_NAME.get(cname.strip(), 0)
    return Event(name, classes, text.encode("utf-8", "surrogateescape"), text)


class FilterError(ValueError):
    """A filter could not be compiled or is malformed; ``str()`` is the AMI message."""


_COMPILE_ERROR = "Filter did not compile.  Check the syntax of the filter given."
_FORMAT_ERROR = "Filter was formatted incorrectly.  Check the syntax of the filter given."
_CRITERIA = re.compile(r"\s*(action|name|header|method)\(([^)]*)\)\s*$")
_METHODS = ("regex", "exact", "starts_with", "ends_with", "contains", "none")


class EventFilter:
    """An include or exclude filter, legacy (regex) or advanced (criteria)."""

    def __init__(
        self,
        pattern: str,
        criteria: Optional[str] = None,
    ) -> None:
        """Compile ``pattern`` (``!`` prefix = exclude) with optional ``criteria``."""
        self.pattern = pattern
        self.criteria = criteria
        self.exclude = False
        self.name: Optional[str] = None
        self.header: Optional[str] = None
        self.method = "regex"
        self._regex: Optional[Pattern[str]] = None
        if pattern.startswith("!"):
            self.exclude = True
            pattern = pattern[1:]
        self.value = pattern
        if criteria is not None:
            self._parse_criteria(criteria)
        if self.method == "regex":
            try:
                self._regex = re.compile(pattern, re.DOTALL)
            except re.error as exc:
                raise FilterError(_COMPILE_ERROR) from exc

    def _parse_criteria(self, criteria: str) -> None:
        self.method = "none"
        seen = set()
        for part in filter(None, (p.strip() for p in criteria.split(","))):
            match = _CRITERIA.match(part)
            if not match or match.group(1) in seen:
                raise FilterError(_FORMAT_ERROR)
            kind, arg = match.group(1), match.group(2).strip()
            seen.add(kind)
            if kind == "action":
                if arg not in ("include", "exclude"):
                    raise FilterError(_FORMAT_ERROR)
                self.exclude = arg == "exclude"
            elif kind == "name":
                self.name = arg
            elif kind == "header":
                self.header = arg
            elif arg in _METHODS:
                self.method = arg
            else:
                raise FilterError(_FORMAT_ERROR)
        if (self.method == "none") != (self.value == ""):
            raise FilterError(_FORMAT_ERROR)

    def _test(self, subject: str) -> bool:
        method, value = self.method, self.value
        if method == "none":
            return True
        if method == "regex":
            assert self._regex is not None
            return self._regex.search(subject) is not None
        if method == "exact":
            return subject == value
        if method == "starts_with":
            return subject.startswith(value)
        if method == "ends_with":
            return subject.endswith(value)
        return value in subject

    def matches(self, event: Event) -> bool:
        """Whether the event matches (ignoring include/exclude)."""
        if self.name is not None and event.name != self.name:
            return False
        if self.header is None:
            return self._test(event.text)
        prefix = self.header.lower() + ":"
        for line in event.text.split("\r\n"):
            if line[: len(prefix)].lower() == prefix:
                if self._test(line[len(prefix):].lstrip(" \t")):
                    return True
        return False

    def __repr__(self) -> str:
        return "EventFilter(%r, criteria=%r)" % (self.pattern, self.criteria)


def filters_allow(filters: Sequence[EventFilter], event: Event) -> bool:
    """Asterisk's include/exclude decision (``should_send_event()``)."""
    if not filters:
        return True
    includes = [f for f in filters if not f.exclude]
    excludes = [f for f in filters if f.exclude]
    if includes and not any(f.matches(event) for f in includes):
        return False
    return not any(f.matches(event) for f in excludes)

"""Asterisk's AMI events as data: field names, snapshot blocks, name suggestions.

From the generated catalogue (Asterisk 22.11 and 13.38)::

    >>> from amiclient import events
    >>> events.fields("Hangup")[:3]
    ('Channel', 'ChannelState', 'ChannelStateDesc')
    >>> events.snapshot_fields("channel", "Dest")[0]
    'DestChannel'
    >>> events.suggest("Hangpu")
    'Hangup'

Many events carry a *snapshot block*: the standard channel fields
(:data:`CHANNEL_SNAPSHOT`) or bridge fields (:data:`BRIDGE_SNAPSHOT`), often
with a prefix (``DestChannel``, ``OrigBridgeUniqueid``).  The field lists
are what Asterisk documents: servers may send more (``ChanVariable``,
module additions), so never reject an event for an extra field.
"""
from __future__ import annotations

import difflib
import functools
import logging
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from ._generated import _data

__all__ = [
    "BRIDGE_SNAPSHOT", "CHANNEL_SNAPSHOT", "SNAPSHOTS", "EventInfo", "event_info", "event_names", "fields",
    "is_known", "snapshot_fields", "suggest", "warn_unknown",
]

log = logging.getLogger("amiclient")

#: snapshot kind (``"channel"``, ``"bridge"``) -> its field names, unprefixed
SNAPSHOTS: Dict[str, Tuple[str, ...]] = dict(_data.SNAPSHOTS)
CHANNEL_SNAPSHOT: Tuple[str, ...] = SNAPSHOTS["channel"]
BRIDGE_SNAPSHOT: Tuple[str, ...] = SNAPSHOTS["bridge"]


class EventInfo(NamedTuple):
    """One event of the catalogue."""

    name: str
    fields: Tuple[str, ...]  #: every documented field, snapshot blocks expanded with their prefixes
    snapshots: Tuple[Tuple[str, str], ...]  #: the snapshot blocks it carries: (kind, prefix)
    classes: Tuple[str, ...]  #: read permission classes that receive it
    versions: Tuple[str, ...]  #: catalogues listing it: "13", "22"


def snapshot_fields(kind: str = "channel", prefix: str = "") -> Tuple[str, ...]:
    """The fields of a ``"channel"`` or ``"bridge"`` snapshot block, each with ``prefix``."""
    try:
        names = SNAPSHOTS[kind]
    except KeyError:
        raise ValueError(f"snapshot kind must be one of {sorted(SNAPSHOTS)}, not {kind!r}") from None
    return tuple(prefix + name for name in names)


@functools.cache
def _events() -> Dict[str, EventInfo]:
    found: Dict[str, EventInfo] = {}
    for name, (items, classes, versions) in _data.EVENTS.items():
        expanded: List[str] = []
        blocks: List[Tuple[str, str]] = []
        for item in items:
            if item.startswith("@"):
                kind, _, prefix = item[1:].partition(":")
                blocks.append((kind, prefix))
                expanded.extend(f for f in snapshot_fields(kind, prefix) if f not in expanded)
            elif item not in expanded:
                expanded.append(item)
        found[name.lower()] = EventInfo(name, tuple(expanded), tuple(blocks), classes, versions)
    return found


@functools.cache
def _known() -> Dict[str, str]:
    """Lower-case name -> spelling, of every name a listener may sensibly ask for."""
    from .catalog import action_names

    names = {name.lower(): name for name in action_names()}  # many list items are named after their action
    names.update((name.lower(), name) for name in _data.EXTRA_EVENTS)
    names.update((key, info.name) for key, info in _events().items())
    return names


def event_info(name: str) -> Optional[EventInfo]:
    """The catalogue entry of event ``name`` (any case), or None."""
    return _events().get(name.lower())


def fields(name: str) -> Tuple[str, ...]:
    """The documented fields of event ``name`` (empty if the catalogue does not list it)."""
    info = event_info(name)
    return info.fields if info is not None else ()


def event_names() -> Tuple[str, ...]:
    """Every event name of the catalogue, sorted."""
    return tuple(sorted(info.name for info in _events().values()))


def is_known(name: str) -> bool:
    """Whether Asterisk is known to send events called ``name`` (any case; ``...Complete`` list ends count)."""
    lower = name.lower()
    return lower in _known() or lower.endswith("complete")


def suggest(name: str) -> Optional[str]:
    """The known event name closest to an unknown ``name`` (a likely typo), or None."""
    if is_known(name):
        return None
    close = difflib.get_close_matches(name.lower(), list(_known()), n=1, cutoff=0.75)
    return _known()[close[0]] if close else None


_warned: Dict[str, None] = {}


def warn_unknown(spec: Union[None, str, Iterable[str]]) -> None:
    """Log a warning (logger ``amiclient``, once per name) for a listener name that looks like a typo.

    Globs and None (every event) are never checked; names with no close
    known name (third-party events) pass silently.
    """
    if spec is None:
        return
    for name in [spec] if isinstance(spec, str) else list(spec):  # a list, not a one-shot iterator
        if not isinstance(name, str) or any(c in name for c in "*?[") or name in _warned:
            continue
        hint = suggest(name)
        if hint is not None:
            if len(_warned) < 1024:
                _warned[name] = None
            log.warning("no AMI event is called %r: did you mean %r?", name, hint)

"""The server-side filters of ``amiclient events``: never narrower than what is asked for."""
from __future__ import annotations

from typing import Dict, List, Tuple

import pytest

from amiclient.cli._events import _wanted, server_filters
from amiclient.packet import Event
from amiclient.testing import EventFilter
from amiclient.testing._events import filters_allow, make_event


def passes(filters: List[str], name: str, headers: Dict[str, str]) -> bool:
    return filters_allow([EventFilter(f) for f in filters], make_event(name, headers))


@pytest.mark.parametrize("names, matches, event, headers", [
    (["Hangup"], [], "Hangup", {"Channel": "PJSIP/1"}),
    (["Queue*"], [], "QueueMemberAdded", {}),
    (["Hangup", "Newchannel"], [], "Newchannel", {}),
    (["Hang?p"], [("channel", "Local/1.0@x(y)$-*")], "Hangup", {"Channel": "Local/1.0@x(y)$-0001;1"}),
    ([], [("Cause", "16")], "Hangup", {"Channel": "SIP/1", "Cause": "16"}),
    (["Hangup"], [("Channel", "SIP/*"), ("Cause", "16")], "Hangup", {"Channel": "SIP/1", "Cause": "16"}),
    (["[HN]angup"], [], "Hangup", {}),
    (["hangup", "queue*"], [], "QueueMemberAdded", {}),  # names in any case, like add_listener()
    (["HANGUP"], [("Cause", "16")], "Hangup", {"Cause": "16"}),
])
def test_wanted_events_pass_the_server_filters(
    names: List[str], matches: List[Tuple[str, str]], event: str, headers: Dict[str, str]
) -> None:
    assert passes(server_filters(names, matches), event, headers)


def test_the_server_filters_narrow_the_stream() -> None:
    filters = server_filters(["Hangup"], [("Channel", "PJSIP/1*")])
    assert not passes(filters, "Newchannel", {"Channel": "PJSIP/1"})
    assert not passes(filters, "Hangup", {"Channel": "SIP/1"})
    assert not passes(server_filters(["Hangup", "Newstate"], []), "Newchannel", {})
    assert not passes(server_filters([], [("Channel", "a.c")]), "Hangup", {"Channel": "abc"})  # "." is literal
    assert server_filters(["[HN]angup"], []) == []  # not expressible: nothing filtered on the server


def test_event_names_match_in_any_case_and_header_values_exactly() -> None:
    hangup = Event([("Event", "Hangup"), ("Channel", "PJSIP/1-1")])
    assert _wanted(hangup, ["hangup"], []) and _wanted(hangup, ["HANG*"], [("channel", "PJSIP/*")])
    assert not _wanted(hangup, ["hangup"], [("Channel", "pjsip/*")])

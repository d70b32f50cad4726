"""Sans-IO parsing of AJAM ``/rawman`` bodies: the AMI packets of one HTTP answer.

A body holds the action's response, its event-list items (same rules as
over TCP: ``list_completions``/``ends_list``) and, after some actions, other
events (``FullyBooted`` after Login).  A ``WaitEvent`` body holds its
response, the queued events and ``WaitEventComplete``.
"""
from __future__ import annotations

from typing import List, Optional, Tuple, cast

from .._protocol import Framer, parse_packet
from .._tracker import ends_list, list_completions
from ..exceptions import ProtocolError
from ..packet import Event, Response

__all__ = ["AJAMResponse", "parse_body", "parse_wait_event"]


class AJAMResponse(Response):
    """A :class:`~amiclient.Response` read over HTTP, with the other events of its body."""

    _extra: Optional[List[Event]] = None

    @property
    def extra_events(self) -> List[Event]:
        """Events of the body that are not list items (e.g. ``FullyBooted`` after Login)."""
        if self._extra is None:
            self._extra = []
        return self._extra


def _packets(body: bytes, what: str, max_packet_size: int, encoding: str, errors: str) -> List[object]:
    body = body.rstrip(b"\r\n")
    if not body.strip():
        return []
    framer = Framer(expect_banner=False, max_packet_size=max_packet_size, encoding=encoding, errors=errors)
    try:
        texts = framer.feed(body + b"\r\n\r\n")
        packets: List[object] = [parse_packet(text) for text in texts if text.strip("\r\n")]
    except ProtocolError as exc:
        raise ProtocolError(f"invalid AMI in the answer to {what}: {exc}") from exc
    if framer.buffered:
        raise ProtocolError(f"truncated AMI packet in the answer to {what}")
    return packets


def parse_body(
    body: bytes, action: str, *, max_packet_size: int = 8 * 1024 * 1024, encoding: str = "utf-8", errors: str = "replace",
) -> Optional[AJAMResponse]:
    """The response in a rawman body (list items in ``events``), or None for an empty body.

    Raises ProtocolError for text that is not AMI or holds no response.
    """
    packets = _packets(body, action, max_packet_size, encoding, errors)
    if not packets:
        return None
    response: Optional[AJAMResponse] = None
    items: List[Event] = []
    extra: List[Event] = []
    complete: Optional[Event] = None
    listing = False
    completions = frozenset()  # type: ignore[var-annotated]
    for packet in packets:
        if isinstance(packet, Response):
            if response is None:
                response = cast(AJAMResponse, AJAMResponse.from_pairs(packet.items_all()))
                found = list_completions(action.lower(), packet)
                listing, completions = found is not None, found or frozenset()
        elif isinstance(packet, Event):
            if listing and ends_list(packet, completions):
                complete, listing = packet, False
            elif listing:
                items.append(packet)
            else:
                extra.append(packet)
    if response is None:
        raise ProtocolError(f"the answer to {action} holds no AMI response")
    if items or complete is not None:
        response.events = items
        response.complete_event = complete
    response.extra_events.extend(extra)
    return response


def parse_wait_event(
    body: bytes, *, max_packet_size: int = 8 * 1024 * 1024, encoding: str = "utf-8", errors: str = "replace",
) -> Tuple[Optional[AJAMResponse], List[Event]]:
    """The response of a ``WaitEvent`` body and its events in order (``WaitEventComplete`` left out).

    An empty body (another WaitEvent on the session took over) gives ``(None, [])``.
    """
    response = parse_body(body, "WaitEvent", max_packet_size=max_packet_size, encoding=encoding, errors=errors)
    if response is None:
        return None, []
    return response, [e for e in response.extra_events if e.name != "WaitEventComplete"]

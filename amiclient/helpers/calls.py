"""Call control helpers: originate, hangup, transfers, bridges, parking, DTMF, text, hangup timers."""
from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Literal, Mapping, Optional, Sequence, Union, overload

from .._protocol import join_app_args
from ..exceptions import ActionTimeout, ConnectionLost, OriginateFailed, reason_code
from ..packet import Event, Response
from ._base import DEFAULT, HelperHost, as_list, literal_channel, merge_extra, token, whole_seconds_ms

if TYPE_CHECKING:  # pragma: no cover
    from .._protocol import HeaderValue

__all__ = ["CallHelpers", "ORIGINATE_REASONS"]

#: ``Reason`` of an ``OriginateResponse`` (an old control-frame code) -> what it means.
ORIGINATE_REASONS: Dict[int, str] = {
    0: "failed: no such extension or number, or the channel could not be created",
    1: "hung up before answering",
    2: "local ring",
    3: "ringing, not answered within the ring timeout",
    4: "answered",
    5: "busy",
    8: "congestion: the network or the channel was unavailable",
}
_DEFAULT_RING = 30.0  # Asterisk's default Originate timeout


class CallHelpers(HelperHost):
    """Helpers that act on calls; channels are always literal names."""

    @overload
    def originate(self, channel: str, *, wait: Literal[False] = ..., exten: Optional[str] = ..., context: Optional[str] = ...,
                  priority: Union[int, str, None] = ..., application: Optional[str] = ...,
                  data: Union[str, Sequence[str], None] = ..., caller_id: Optional[str] = ...,
                  ring_timeout: Optional[float] = ..., variables: Optional[Mapping[str, Any]] = ...,
                  account: Optional[str] = ..., early_media: Optional[bool] = ..., codecs: Union[str, Sequence[str], None] = ...,
                  channel_id: Optional[str] = ..., other_channel_id: Optional[str] = ..., asynchronous: bool = ...,
                  timeout: Optional[float] = ..., **extra: HeaderValue) -> Response: ...

    @overload
    def originate(self, channel: str, *, wait: Literal[True], exten: Optional[str] = ..., context: Optional[str] = ...,
                  priority: Union[int, str, None] = ..., application: Optional[str] = ...,
                  data: Union[str, Sequence[str], None] = ..., caller_id: Optional[str] = ...,
                  ring_timeout: Optional[float] = ..., variables: Optional[Mapping[str, Any]] = ...,
                  account: Optional[str] = ..., early_media: Optional[bool] = ..., codecs: Union[str, Sequence[str], None] = ...,
                  channel_id: Optional[str] = ..., other_channel_id: Optional[str] = ..., asynchronous: bool = ...,
                  timeout: Optional[float] = ..., **extra: HeaderValue) -> Event: ...

    def originate(
        self,
        channel: str,
        *,
        wait: bool = False,
        exten: Optional[str] = None,
        context: Optional[str] = None,
        priority: Union[int, str, None] = None,
        application: Optional[str] = None,
        data: Union[str, Sequence[str], None] = None,
        caller_id: Optional[str] = None,
        ring_timeout: Optional[float] = None,
        variables: Optional[Mapping[str, Any]] = None,
        account: Optional[str] = None,
        early_media: Optional[bool] = None,
        codecs: Union[str, Sequence[str], None] = None,
        channel_id: Optional[str] = None,
        other_channel_id: Optional[str] = None,
        asynchronous: bool = True,
        timeout: Any = DEFAULT,
        **extra: HeaderValue,
    ) -> Union[Response, Event]:
        """``Originate`` a call to ``channel``, into ``exten@context`` (priority 1) or an ``application``.

        ``ring_timeout``: seconds to wait for an answer (sent in ms).
        ``data``: the application's argument string, or a list of arguments
        (escaped so each arrives whole).  ``variables`` arrive exactly as
        given (``{"TIMEOUT(absolute)": 3600}`` sets a hangup time).
        ``codecs``: codec names.  Asynchronous by default: the answer means
        "queued".  ``wait=True`` returns the ``OriginateResponse`` event of
        an answered call, or raises :class:`~amiclient.OriginateFailed`
        (``.reason``, ``.event``) saying why it failed, or ConnectionLost if
        the link drops first (the call may still connect); it needs ``call``
        events on this client and cannot run inside a listener.
        ``timeout``: the client's wait for the answer, in seconds (with
        ``wait=True``: added to the ring timeout).  ``extra``: raw headers
        (``PreDialGoSub``, ``ActionID``...) that no argument sets.
        """
        fields: Dict[str, HeaderValue] = {"Channel": literal_channel(channel)}
        if application is not None and exten is not None:
            raise ValueError("originate into either an application or exten@context, not both")
        if application is not None:
            fields["Application"] = token(application, "application")
            if data is not None:
                fields["Data"] = data if isinstance(data, str) else join_app_args(data, "application argument")
        elif exten is not None:
            if not context:
                raise ValueError("originate with exten needs a context")
            fields.update(Exten=exten, Context=context, Priority=1 if priority is None else priority)
        elif data is not None or context is not None:
            raise ValueError("data needs an application; context needs an exten")
        if ring_timeout is not None:
            fields["Timeout"] = whole_seconds_ms(ring_timeout, "ring_timeout")
        fields.update(CallerID=caller_id, Account=account, ChannelId=channel_id, OtherChannelId=other_channel_id)
        if early_media is not None:
            fields["EarlyMedia"] = bool(early_media)
        if codecs is not None:
            fields["Codecs"] = ",".join(token(codec, "codec") for codec in as_list(codecs))
        if variables:
            fields["Variable"] = dict(variables)
        merge_extra(fields, extra)
        if wait:
            return self._originate_and_wait(fields, ring_timeout, timeout)
        if asynchronous and not any(key.lower() == "async" for key in fields):
            fields["Async"] = True
        return self._call("Originate", fields, timeout)

    def _originate_and_wait(self, fields: Dict[str, HeaderValue], ring_timeout: Optional[float], timeout: Any) -> Event:
        add_listener = getattr(self, "add_listener", None)
        remove_listener = getattr(self, "remove_listener", None)
        if add_listener is None or remove_listener is None:
            raise TypeError("originate(wait=True) needs a client that delivers events (add_listener)")
        current = threading.current_thread()
        dispatcher = getattr(getattr(self, "_dispatcher", None), "_thread", None)
        if dispatcher is current or current.name.startswith("amiclient-dispatch"):
            raise RuntimeError("originate(wait=True) inside a listener would wait for an event that this very "
                               "thread must deliver; use wait=False and a listener for OriginateResponse")
        given = [key for key in fields if key.lower() in ("actionid", "async")]
        action_id = str(next((fields.pop(k) for k in given if k.lower() == "actionid"), None) or "") or \
            f"originate-{uuid.uuid4().hex}"
        for key in given:
            fields.pop(key, None)
        channel_id = fields.get("ChannelId")
        outcome: List[Event] = []
        done = threading.Event()

        def matches(event: Event) -> bool:
            if event.action_id is not None:
                return event.action_id == action_id
            return channel_id is not None and event.get("Uniqueid") == channel_id  # servers without ActionID

        def on_result(event: Event) -> None:
            if not done.is_set():
                outcome.append(event)
                done.set()

        lost: List[BaseException] = []

        def on_state(change: Any) -> None:  # the result cannot come over a new session: stop waiting
            if getattr(getattr(change, "state", None), "value", None) in ("disconnected", "closed") and not done.is_set():
                lost.append(change.reason or ConnectionLost("the client was closed"))
                done.set()

        on_state_hook = getattr(self, "on_state", None)
        remove_state = getattr(self, "remove_state_listener", None)
        handle = add_listener(on_result, "OriginateResponse", filter=matches)
        if on_state_hook is not None:
            on_state_hook(on_state)
        try:
            fields.update(Async=True, ActionID=action_id)
            self._call("Originate", fields, timeout)
            limit = float(getattr(self, "timeout", 10.0)) if timeout is DEFAULT else timeout  # checked by _call
            ring = _DEFAULT_RING if ring_timeout is None else ring_timeout
            wait: Optional[float] = None if limit is None else ring + float(limit)
            if wait is not None and wait > threading.TIMEOUT_MAX:  # None, inf or huge: no limit, as for the action
                wait = None
            if not done.wait(wait):
                raise ActionTimeout(f"no OriginateResponse for {fields['Channel']} (ActionID {action_id}) "
                                    f"within {wait:g} s; does this client receive call events?", action_id)
        finally:
            remove_listener(handle)
            if remove_state is not None:
                remove_state(on_state)
        if not outcome:
            raise ConnectionLost(f"the connection dropped before the OriginateResponse for {fields['Channel']} "
                                 f"(ActionID {action_id}); the call may still connect: {lost[0]}")
        event = outcome[0]
        if event.get("Response", "").lower() == "success":
            return event
        raise OriginateFailed(event, originate_failure_message(event))

    def hangup(self, channel: Optional[str] = None, cause: Optional[int] = None, *, regex: Optional[str] = None,
               timeout: Any = DEFAULT) -> Response:
        """``Hangup`` one channel by its literal name, or with ``regex=`` every channel whose name matches.

        ``cause``: the Q.850 hangup cause (16 normal, 17 busy...).  The regex
        form lists the channels it hung up in ``.events``.
        """
        if (channel is None) == (regex is None):
            raise ValueError("hangup needs a channel name or regex=..., not both")
        if cause is not None and (isinstance(cause, bool) or not isinstance(cause, int) or not 0 <= cause <= 127):
            raise ValueError(f"cause must be an integer 0..127, not {cause!r}")
        if regex is not None:
            if not isinstance(regex, str):
                raise ValueError(f"regex must be a string, not {regex!r}")
            name = f"/{regex}/"
        else:
            name = literal_channel(channel or "")
        return self._call("Hangup", {"Channel": name, "Cause": cause}, timeout)

    def redirect(self, channel: str, exten: str, context: str, priority: Union[int, str] = 1, *,
                 extra_channel: Optional[str] = None, extra_exten: Optional[str] = None,
                 extra_context: Optional[str] = None, extra_priority: Union[int, str, None] = None,
                 timeout: Any = DEFAULT, **extra: HeaderValue) -> Response:
        """``Redirect`` (transfer) ``channel`` to ``exten@context``; ``extra_channel`` too (to the same place by default)."""
        fields: Dict[str, HeaderValue] = {"Channel": literal_channel(channel), "Exten": exten, "Context": context,
                                            "Priority": priority}
        if extra_channel is not None:
            fields["ExtraChannel"] = literal_channel(extra_channel, "extra_channel")
        fields.update(ExtraExten=extra_exten, ExtraContext=extra_context, ExtraPriority=extra_priority)
        merge_extra(fields, extra)
        return self._call("Redirect", fields, timeout)

    def blind_transfer(self, channel: str, exten: str, context: Optional[str] = None, *, timeout: Any = DEFAULT) -> Response:
        """``BlindTransfer`` the other party of ``channel`` to ``exten`` (in ``context``, default the channel's)."""
        return self._call("BlindTransfer", {"Channel": literal_channel(channel), "Exten": exten, "Context": context}, timeout)

    def atxfer(self, channel: str, exten: str, context: Optional[str] = None, *, timeout: Any = DEFAULT) -> Response:
        """``Atxfer``: attended transfer of ``channel``'s call to ``exten`` (in ``context``)."""
        return self._call("Atxfer", {"Channel": literal_channel(channel), "Exten": exten, "Context": context}, timeout)

    def bridge(self, channel1: str, channel2: str, *, tone: Optional[bool] = None, timeout: Any = DEFAULT) -> Response:
        """``Bridge`` two live channels together (``tone``: play a courtesy tone to ``channel2``)."""
        return self._call("Bridge", {"Channel1": literal_channel(channel1, "channel1"),
                                     "Channel2": literal_channel(channel2, "channel2"),
                                     "Tone": None if tone is None else ("yes" if tone else "no")}, timeout)

    def park(self, channel: str, *, timeout_channel: Optional[str] = None, announce_channel: Optional[str] = None,
             park_seconds: Optional[float] = None, parking_lot: Optional[str] = None,
             parking_space: Optional[str] = None, timeout: Any = DEFAULT) -> Response:
        """``Park`` a channel; ``park_seconds``: how long it stays parked (sent in ms)."""
        return self._call("Park", {
            "Channel": literal_channel(channel),
            "TimeoutChannel": None if timeout_channel is None else literal_channel(timeout_channel, "timeout_channel"),
            "AnnounceChannel": None if announce_channel is None else literal_channel(announce_channel, "announce_channel"),
            "Timeout": None if park_seconds is None else whole_seconds_ms(park_seconds, "park_seconds"),
            "Parkinglot": parking_lot, "ParkingSpace": parking_space,
        }, timeout)

    def play_dtmf(self, channel: str, digit: str, *, duration_ms: Optional[int] = None, receive: bool = False,
                  timeout: Any = DEFAULT) -> Response:
        """``PlayDTMF``: play one DTMF ``digit`` (``0``-``9``, ``*``, ``#``, ``A``-``D``) on ``channel``."""
        if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in "0123456789*#ABCD":
            raise ValueError(f"digit must be one of 0-9 * # A-D, not {digit!r}")
        if duration_ms is not None and (isinstance(duration_ms, bool) or not isinstance(duration_ms, int) or duration_ms <= 0):
            raise ValueError(f"duration_ms must be a positive integer, not {duration_ms!r}")
        return self._call("PlayDTMF", {"Channel": literal_channel(channel), "Digit": digit, "Duration": duration_ms,
                                       "Receive": True if receive else None}, timeout)

    def send_text(self, channel: str, message: str, *, content_type: Optional[str] = None, timeout: Any = DEFAULT) -> Response:
        """``SendText``: send a text ``message`` to ``channel``."""
        return self._call("SendText", {"Channel": literal_channel(channel), "Message": message,
                                       "Content-Type": content_type}, timeout)

    def absolute_timeout(self, channel: str, seconds: int, *, timeout: Any = DEFAULT) -> Response:
        """``AbsoluteTimeout``: hang ``channel`` up ``seconds`` from now (0 cancels).

        From the dialplan or ``originate(variables={"TIMEOUT(absolute)": s})``
        the same limit can be set when the call starts.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise ValueError(f"seconds must be a non-negative integer, not {seconds!r}")
        return self._call("AbsoluteTimeout", {"Channel": literal_channel(channel), "Timeout": seconds}, timeout)


def originate_failure_message(event: Event) -> str:
    """``Originate of <channel> failed: reason N (<meaning>)``."""
    reason = event.get("Reason", "")
    code = reason_code(reason)
    meaning = "no reason given" if code is None else ORIGINATE_REASONS.get(code, "unknown reason")
    return f"Originate of {event.get('Channel', '?')} failed: reason {reason or '?'} ({meaning})"


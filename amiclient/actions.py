"""Typed helpers for the most used AMI actions, mixed into :class:`~amiclient.AMIClient`.

Each helper is one :meth:`action` call with the headers spelled the way
Asterisk expects them; extra keyword arguments become extra headers.
Helpers raise :class:`~amiclient.ActionError` when Asterisk answers
``Error``, like :meth:`action`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Union

from .exceptions import ActionError
from .packet import Event, Response

if TYPE_CHECKING:  # pragma: no cover
    from ._protocol import HeaderValue
    from ._tracker import ActionFuture

__all__ = ["ActionHelpers"]


class ActionHelpers:
    """Convenience methods over ``action()``; every method returns the Response or a value from it."""

    if TYPE_CHECKING:  # provided by AMIClient

        def action(
            self, action: Union[str, Mapping[str, "HeaderValue"]], headers: Optional[Mapping[str, "HeaderValue"]] = None,
            *, timeout: Optional[float] = ..., **fields: "HeaderValue",
        ) -> Response: ...

        def send_action(
            self, action: Union[str, Mapping[str, "HeaderValue"]], headers: Optional[Mapping[str, "HeaderValue"]] = None,
            *, timeout: Optional[float] = ..., **fields: "HeaderValue",
        ) -> "ActionFuture": ...

    def ping(self) -> Response:
        """``Ping``: a round trip to the server."""
        return self.action("Ping")

    def originate(
        self,
        channel: str,
        *,
        exten: Optional[str] = None,
        context: Optional[str] = None,
        priority: Union[int, str, None] = None,
        application: Optional[str] = None,
        data: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        caller_id: Optional[str] = None,
        variables: Optional[Mapping[str, Any]] = None,
        account: Optional[str] = None,
        channel_id: Optional[str] = None,
        asynchronous: bool = True,
        **extra: "HeaderValue",
    ) -> Response:
        """``Originate`` a call to ``channel``, into ``exten@context`` or an ``application``.

        Asynchronous by default: the answer means "queued", and the outcome
        arrives as an ``OriginateResponse`` event carrying this action's
        ActionID.  A synchronous originate waits for the call to be answered
        (its timeout covers ``timeout_ms``).
        """
        fields: Dict[str, "HeaderValue"] = {
            "Channel": channel, "Exten": exten, "Context": context, "Priority": priority,
            "Application": application, "Data": data, "Timeout": timeout_ms, "CallerID": caller_id,
            "Account": account, "ChannelId": channel_id, "Async": "true" if asynchronous else None,
        }
        if variables:
            fields["Variable"] = dict(variables)
        fields.update(extra)
        return self.action("Originate", fields)

    def hangup(self, channel: str, cause: Optional[int] = None) -> Response:
        """``Hangup`` a channel (a ``/regex/`` hangs up every match and lists them in ``.events``)."""
        return self.action("Hangup", Channel=channel, Cause=cause)

    def redirect(self, channel: str, exten: str, context: str, priority: Union[int, str] = 1, **extra: "HeaderValue") -> Response:
        """``Redirect`` (transfer) a channel to ``exten@context``."""
        return self.action("Redirect", {"Channel": channel, "Exten": exten, "Context": context, "Priority": priority, **extra})

    def getvar(self, variable: str, channel: Optional[str] = None) -> str:
        """The value of a channel or global variable (``Getvar``); ``""`` if unset."""
        return self.action("Getvar", Variable=variable, Channel=channel).get("Value", "")

    def setvar(self, variable: str, value: str, channel: Optional[str] = None) -> Response:
        """Set a channel or global variable (``Setvar``)."""
        return self.action("Setvar", Variable=variable, Value=value, Channel=channel)

    def db_get(self, family: str, key: str) -> Optional[str]:
        """An AstDB value, or None if the entry does not exist."""
        try:
            response = self.action("DBGet", Family=family, Key=key)
        except ActionError as exc:
            if "not found" in (exc.response.message or "").lower():
                return None
            raise
        for item in response.events:
            if "Val" in item:
                return item["Val"]
        return None

    def db_put(self, family: str, key: str, value: str) -> Response:
        """Store an AstDB value (``DBPut``)."""
        return self.action("DBPut", Family=family, Key=key, Val=value)

    def db_del(self, family: str, key: str) -> Response:
        """Delete an AstDB entry (``DBDel``)."""
        return self.action("DBDel", Family=family, Key=key)

    def db_get_tree(self, family: str, key: Optional[str] = None) -> Dict[str, str]:
        """Every AstDB entry under ``family`` (``DBGetTree``): ``{"/family/key": value}``."""
        response = self.action("DBGetTree", Family=family, Key=key)
        return {item.get("Key", ""): item.get("Val", "") for item in response.events}

    def core_show_channels(self) -> List[Event]:
        """The live channels (``CoreShowChannel`` items)."""
        return self.action("CoreShowChannels").events

    def status(self, channel: Optional[str] = None, variables: Optional[List[str]] = None) -> List[Event]:
        """Channel status items (``Status``), for one channel or all."""
        return self.action("Status", Channel=channel, Variables=",".join(variables) if variables else None).events

    def user_event(self, name: str, **headers: "HeaderValue") -> Response:
        """Broadcast a ``UserEvent`` called ``name`` with ``headers`` to every session reading ``user``."""
        return self.action("UserEvent", {"UserEvent": name, **headers})

    def queue_status(self, queue: Optional[str] = None, member: Optional[str] = None) -> List[Event]:
        """Queue parameters, members and callers (``QueueStatus`` items)."""
        return self.action("QueueStatus", Queue=queue, Member=member).events

    def queue_add(self, queue: str, interface: str, *, member_name: Optional[str] = None,
                  penalty: Optional[int] = None, paused: Optional[bool] = None, **extra: "HeaderValue") -> Response:
        """Add a member to a queue (``QueueAdd``)."""
        return self.action("QueueAdd", {"Queue": queue, "Interface": interface, "MemberName": member_name,
                                        "Penalty": penalty, "Paused": paused, **extra})

    def queue_remove(self, queue: str, interface: str) -> Response:
        """Remove a member from a queue (``QueueRemove``)."""
        return self.action("QueueRemove", Queue=queue, Interface=interface)

    def queue_pause(self, interface: str, paused: bool = True, queue: Optional[str] = None,
                    reason: Optional[str] = None) -> Response:
        """Pause or unpause a queue member (``QueuePause``)."""
        return self.action("QueuePause", Interface=interface, Paused=paused, Queue=queue, Reason=reason)

    def core_settings(self) -> Response:
        """Server settings (``CoreSettings``: ``AsteriskVersion``, ``AMIversion``...)."""
        return self.action("CoreSettings")

    def core_status(self) -> Response:
        """Server status (``CoreStatus``: startup time, current calls...)."""
        return self.action("CoreStatus")

    def extension_state(self, exten: str, context: str = "default") -> Response:
        """The hint state of an extension (``ExtensionState``: ``Status``, ``StatusText``)."""
        return self.action("ExtensionState", Exten=exten, Context=context)

"""Read-only helpers: server, channels, extensions, devices, mailboxes, bridges."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from .._protocol import join_app_args
from ..packet import Event, Response
from ._base import DEFAULT, HelperHost, literal_channel

__all__ = ["ServerInfo", "StateHelpers"]


@dataclass(frozen=True)
class ServerInfo:
    """Who the server is: Asterisk and AMI versions, system name (``""`` if unset)."""

    asterisk_version: str
    ami_version: str
    system_name: str


class StateHelpers(HelperHost):
    """Helpers that read server and call state."""

    def ping(self, *, timeout: Any = DEFAULT) -> Response:
        """``Ping``: a round trip to the server (``timeout``: the client's wait, seconds)."""
        return self._call("Ping", None, timeout)

    def status(self, channel: Optional[str] = None, variables: Optional[Sequence[str]] = None, *,
               timeout: Any = DEFAULT) -> List[Event]:
        """``Status`` items for every channel or one; ``variables``: names whose values each item lists."""
        return self._call("Status", {
            "Channel": None if channel is None else literal_channel(channel),
            "Variables": join_app_args(variables, "variable name") if variables else None,
        }, timeout).events

    def core_show_channels(self, *, timeout: Any = DEFAULT) -> List[Event]:
        """The live channels (``CoreShowChannel`` items)."""
        return self._call("CoreShowChannels", None, timeout).events

    def core_status(self, *, timeout: Any = DEFAULT) -> Response:
        """``CoreStatus``: startup and reload times, current and processed calls."""
        return self._call("CoreStatus", None, timeout)

    def core_settings(self, *, timeout: Any = DEFAULT) -> Response:
        """``CoreSettings``: ``AsteriskVersion``, ``AMIversion``, ``SystemName``, core limits."""
        return self._call("CoreSettings", None, timeout)

    def server_info(self, *, timeout: Any = DEFAULT) -> ServerInfo:
        """The server's Asterisk version, AMI version (banner first) and system name."""
        settings = self.core_settings(timeout=timeout)
        banner = getattr(self, "ami_version", None)
        return ServerInfo(settings.get("AsteriskVersion", ""),
                          banner if isinstance(banner, str) and banner else settings.get("AMIversion", ""),
                          settings.get("SystemName", ""))

    def extension_state(self, exten: str, context: str = "default", *, timeout: Any = DEFAULT) -> Response:
        """The hint state of ``exten@context`` (``ExtensionState``: ``Status``, ``StatusText``, ``Hint``)."""
        return self._call("ExtensionState", {"Exten": exten, "Context": context}, timeout)

    def extension_state_list(self, *, timeout: Any = DEFAULT) -> List[Event]:
        """Every extension with a hint (``ExtensionStatus`` items)."""
        return self._call("ExtensionStateList", None, timeout).events

    def device_state_list(self, *, timeout: Any = DEFAULT) -> Dict[str, str]:
        """Every cached device state: ``{device: state}`` (``DeviceStateList``)."""
        return {e.get("Device", ""): e.get("State", "") for e in self._call("DeviceStateList", None, timeout).events}

    def mailbox_status(self, mailbox: str, *, timeout: Any = DEFAULT) -> int:
        """How many messages wait in ``mailbox`` (``box@context``), from ``MailboxStatus``."""
        return _int(self._call("MailboxStatus", {"Mailbox": mailbox}, timeout).get("Waiting"))

    def mailbox_count(self, mailbox: str, *, timeout: Any = DEFAULT) -> Dict[str, int]:
        """Message counts of ``mailbox``: ``{"NewMessages": n, "OldMessages": n, "UrgMessages": n}``."""
        response = self._call("MailboxCount", {"Mailbox": mailbox}, timeout)
        return {key: _int(response.get(key)) for key in ("UrgMessages", "NewMessages", "OldMessages") if key in response}

    def bridge_list(self, bridge_type: Optional[str] = None, *, timeout: Any = DEFAULT) -> List[Event]:
        """The live bridges (``BridgeListItem`` items), optionally of one type."""
        return self._call("BridgeList", {"BridgeType": bridge_type}, timeout).events

    def bridge_info(self, bridge_uniqueid: str, *, timeout: Any = DEFAULT) -> Response:
        """``BridgeInfo``: the bridge's channels in ``.events``, its fields in ``.complete_event``."""
        return self._call("BridgeInfo", {"BridgeUniqueid": bridge_uniqueid}, timeout)

    def list_commands(self, *, timeout: Any = DEFAULT) -> Dict[str, str]:
        """The actions this login may run: ``{name: synopsis}`` (``ListCommands``)."""
        response = self._call("ListCommands", None, timeout)
        return {key: value.rsplit("  (Priv:", 1)[0] for key, value in response.items_all()
                if key.lower() not in ("response", "actionid", "message")}


def _int(value: Optional[str]) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0

"""Variables, the AstDB, user events and CLI commands."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ..exceptions import ActionError
from ..packet import Response
from ._base import DEFAULT, HelperHost, literal_channel

if TYPE_CHECKING:  # pragma: no cover
    from .._protocol import HeaderValue

__all__ = ["DataHelpers", "cli_quote"]


def cli_quote(word: str) -> str:
    """``word`` as one argument of an Asterisk CLI command line (quoted, ``"`` and ``\\`` escaped)."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _show_row(line: str) -> Tuple[str, str]:
    """``/family/key<padding>: value<padding>`` of ``database show``."""
    key, _, value = line.partition(": ")
    return key.rstrip(), value.rstrip()


def _unknown_action(exc: ActionError) -> bool:
    return (exc.response.message or "").lower().startswith("invalid/unknown command")


class DataHelpers(HelperHost):
    """Channel and global variables, AstDB entries, user events, CLI commands."""

    def getvar(self, variable: str, channel: Optional[str] = None, *, timeout: Any = DEFAULT) -> Optional[str]:
        """The value of a channel or global variable (or function), None if unset or empty (``Getvar``)."""
        if not variable:
            raise ValueError("getvar needs a variable name")
        response = self._call("Getvar", {"Variable": variable,
                                          "Channel": None if channel is None else literal_channel(channel)}, timeout)
        return response.get("Value") or None

    def setvar(self, variable: str, value: Any, channel: Optional[str] = None, *, timeout: Any = DEFAULT) -> Response:
        """Set a channel or global variable, or write a function (``Setvar``)."""
        if not variable:
            raise ValueError("setvar needs a variable name")
        return self._call("Setvar", {"Variable": variable, "Value": value,
                                     "Channel": None if channel is None else literal_channel(channel)}, timeout)

    def db_get(self, family: str, key: str, *, timeout: Any = DEFAULT) -> Optional[str]:
        """An AstDB value, or None if the entry does not exist (``DBGet``)."""
        try:
            response = self._call("DBGet", {"Family": family, "Key": key}, timeout)
        except ActionError as exc:
            if "not found" in (exc.response.message or "").lower():
                return None
            raise
        for item in response.events:
            if "Val" in item:
                return item["Val"]
        return response.get("Val")  # very old servers answered with the value in the response

    def db_put(self, family: str, key: str, value: Any, *, timeout: Any = DEFAULT) -> Response:
        """Store an AstDB value (``DBPut``)."""
        return self._call("DBPut", {"Family": family, "Key": key, "Val": value}, timeout)

    def db_del(self, family: str, key: str, *, timeout: Any = DEFAULT) -> bool:
        """Delete an AstDB entry; False if it did not exist (Asterisk 13 reports success either way).

        Servers without ``DBDel`` get the ``database del`` CLI command instead.
        """
        try:
            self._call("DBDel", {"Family": family, "Key": key}, timeout)
            return True
        except ActionError as exc:
            if _unknown_action(exc):
                output = self._call("Command", {"Command": f"database del {cli_quote(family)} {cli_quote(key)}"}, timeout).output
                return "removed" in output.lower()
            if "could not be deleted" in (exc.response.message or "").lower():
                return False
            raise

    def db_del_tree(self, family: str, key: Optional[str] = None, *, timeout: Any = DEFAULT) -> bool:
        """Delete an AstDB family (or the entries under ``family/key``); False if there was none."""
        try:
            self._call("DBDelTree", {"Family": family, "Key": key}, timeout)
            return True
        except ActionError as exc:
            if _unknown_action(exc):
                words = f"database deltree {cli_quote(family)}" + (f" {cli_quote(key)}" if key else "")
                output = self._call("Command", {"Command": words}, timeout).output
                return "removed" in output.lower() and not output.lower().startswith("0 ")
            if "not found" in (exc.response.message or "").lower():
                return False
            raise

    def db_get_tree(self, family: str, key: Optional[str] = None, *, timeout: Any = DEFAULT) -> Dict[str, str]:
        """Every AstDB entry under ``family`` (``DBGetTree``): ``{"/family/key": value}``.

        Servers without ``DBGetTree`` (Asterisk 13) get the ``database show``
        CLI command instead; its output pads values, so trailing blanks of
        values are lost there.
        """
        try:
            response = self._call("DBGetTree", {"Family": family, "Key": key}, timeout)
        except ActionError as exc:
            if not _unknown_action(exc):
                raise
            words = f"database show {cli_quote(family)}" + (f" {cli_quote(key)}" if key else "")
            lines = self._call("Command", {"Command": words}, timeout).getlist("Output")
            return dict(_show_row(line) for line in lines if line.startswith("/") and ": " in line)
        return {item.get("Key", ""): item.get("Val", "") for item in response.events}

    def user_event(self, name: str, *, timeout: Any = DEFAULT, **headers: HeaderValue) -> Response:
        """Broadcast a ``UserEvent`` called ``name`` with ``headers`` to every session reading ``user``."""
        fields: Dict[str, HeaderValue] = {"UserEvent": name}
        fields.update(headers)
        return self._call("UserEvent", fields, timeout)

    def command(self, command: str, *, timeout: Any = DEFAULT) -> str:
        """Run a CLI command; its output, lines joined with ``\\n`` (``Command``)."""
        return self._call("Command", {"Command": command}, timeout).output

    def command_lines(self, command: str, *, timeout: Any = DEFAULT) -> List[str]:
        """Run a CLI command; its output lines."""
        return self._call("Command", {"Command": command}, timeout).getlist("Output")

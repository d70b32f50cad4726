"""Terminal output: colour (only on a TTY, never with ``NO_COLOR``), packets as text or JSON, tables."""
from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO

from ..packet import Packet

__all__ = ["Style", "is_tty", "packet_json", "packet_text", "safe_text", "table", "use_colour"]

# C0 controls but TAB (and LF in free text), DEL, C1 controls (U+009B is a CSI on many terminals).
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROLS_BUT_LF = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_C1 = re.compile("[\x7f-\x9f]")


def safe_text(text: str, newlines: bool = False) -> str:
    """``text`` with control characters shown as ``\\xNN`` (LF kept with ``newlines``): a value from
    the server (a caller ID name, a DB value) must not drive the operator's terminal."""
    pattern = _CONTROLS_BUT_LF if newlines else _CONTROLS
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def use_colour(stream: TextIO, choice: str = "auto", environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether to colour ``stream``: ``always``, ``never``, or ``auto`` (a TTY, no ``NO_COLOR``, not dumb)."""
    if choice != "auto":
        return choice == "always"
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    return is_tty(stream)


class Style:
    """ANSI styles, or plain text when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text

    def key(self, text: str) -> str:
        """A header name."""
        return self._wrap("36", text)

    def bold(self, text: str) -> str:
        """A heading or an event name."""
        return self._wrap("1", text)

    def error(self, text: str) -> str:
        """Something that failed."""
        return self._wrap("31", text)

    def ok(self, text: str) -> str:
        """Something that worked."""
        return self._wrap("32", text)

    def dim(self, text: str) -> str:
        """Secondary information."""
        return self._wrap("2", text)


def packet_text(packet: Packet, style: Style) -> str:
    """``Key: Value`` lines (repeated headers included) and a blank line, like AMI itself."""
    lines = []
    for key, value in packet.items_all():
        key, value = safe_text(key), safe_text(value)
        if key.lower() in ("event", "response"):
            bad = key.lower() == "response" and value.lower() in ("error", "failure")
            value = style.error(value) if bad else style.bold(value)
        lines.append(f"{style.key(key)}: {value}")
    return "\n".join(lines) + "\n\n"


def packet_json(packet: Packet) -> str:
    """One JSON object, keys in received order; a repeated header becomes a list of its values."""
    obj: Dict[str, Any] = {}
    for key, value in packet.items_all():
        if key in obj:
            previous = obj[key]
            if isinstance(previous, list):
                previous.append(value)
            else:
                obj[key] = [previous, value]
        else:
            obj[key] = value
    # json escapes C0 controls; C1 ones (and DEL) are escaped too, so no terminal acts on them.
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(obj, ensure_ascii=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], style: Style, width: Optional[int] = None) -> str:
    """Aligned columns; with ``width``, the widest columns are cut (``…``) to fit it."""
    rows = [[safe_text(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    if width is not None:
        while sum(widths) + 2 * (len(widths) - 1) > width:
            widest = max(range(len(widths)), key=lambda i: widths[i])
            if widths[widest] <= 8:
                break
            widths[widest] -= 1

    def fit(cell: str, size: int) -> str:
        return cell if len(cell) <= size else cell[: size - 1] + "…"

    def line(cells: Sequence[str], bold: bool = False) -> str:
        parts = [fit(cell, widths[i]).ljust(widths[i]) for i, cell in enumerate(cells)]
        text = "  ".join(parts).rstrip()
        return style.bold(text) if bold else text

    out: List[str] = [line(headers, bold=True)]
    out.extend(line(row) for row in rows)
    return "\n".join(out) + "\n"


def is_tty(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False


def terminal_width(stream: TextIO) -> Optional[int]:
    """The terminal's width when ``stream`` is a TTY, else None (no cutting)."""
    if not is_tty(stream):
        return None
    return shutil.get_terminal_size((100, 24)).columns

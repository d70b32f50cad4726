"""Sans-IO AMI protocol: bytes in, packets out; actions in, bytes out.

Theory of operation
-------------------
The server first sends one banner line (``Asterisk Call Manager/11.0.0``)
with no blank line after it.  Every later message is ``Key: value`` lines
ending in CRLF, and a blank line (``\\r\\n\\r\\n``) ends the message.

:class:`Framer` buffers received bytes and returns the *text* of every
complete packet.  It decodes once per batch of complete packets; packet
boundaries are ASCII, so this equals decoding each packet on its own and a
multi-byte character split across two reads is never damaged.  Bytes of an
incomplete packet stay buffered, never decoded.  Two quirks are framed
specially:

* Asterisk 13 and older answer ``Command`` with ``Response: Follows``, raw
  LF-terminated CLI text (which may hold blank lines) and
  ``--END COMMAND--``; such a packet ends only after that marker.
* A packet larger than ``max_packet_size`` raises :class:`ProtocolError`.
* With ``errors="strict"``, a packet that does not decode is returned as
  :data:`UNDECODABLE` plus its text, which :func:`parse_packet` refuses
  (a malformed packet: skipped, the link kept).

:func:`parse_packet` turns the text of one packet into a
:class:`~amiclient.packet.Response` or :class:`~amiclient.packet.Event`,
chosen by the *first* line (``OriginateResponse`` is an event that also has
a ``Response`` key).  Keys and values split at the first colon, one
leading space is dropped, and a stray trailing LF (``Message: Park
successful\\n``) is removed.  Repeated keys keep every value.  Legacy
``Command`` output becomes one ``Output`` value per line, as on Asterisk
14+.

:func:`serialize_action` builds the bytes of one action and refuses (with
``ValueError``) anything Asterisk would misread: CR or LF in a key or value,
a line longer than 1022 bytes, more than 128 lines, an ActionID it would not
echo unchanged.  ``Variable`` mappings are escaped for Asterisk's argument
splitter (``ast_app_separate_args``) so each name and value arrives whole.

After a :class:`ProtocolError` the framer refuses further data.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union, cast

from .exceptions import ProtocolError
from .packet import Event, Packet, Response

__all__ = [
    "Framer",
    "HeaderValue",
    "parse_packet",
    "parse_event",
    "EventShapes",
    "serialize_action",
    "parse_banner",
    "split_action",
    "pop_action_id",
    "header_value",
    "check_action_id",
    "escape_app_arg",
    "join_app_args",
    "variable_line",
    "DEFAULT_MAX_PACKET_SIZE",
    "MAX_LINE_BYTES",
    "MAX_LINES",
]

DEFAULT_MAX_PACKET_SIZE = 8 * 1024 * 1024
MAX_LINE_BYTES = 1022  # manager.c: inbuf[1025] including CRLF
MAX_LINES = 128  # AST_MAX_MANHEADERS

_END = b"\r\n\r\n"
UNDECODABLE = "\x00undecodable packet\r\n"  # prefixed to a packet that ``errors="strict"`` cannot decode
_FOLLOWS = b"Response: Follows"
_END_COMMAND = "--END COMMAND--"
_MAX_BANNER = 1024

HeaderValue = Union[str, int, float, bool, None, Sequence[Any], Mapping[str, Any]]


def parse_banner(line: str) -> Optional[str]:
    """The AMI version in a banner line (``"11.0.0"``), or None if it is no AMI banner."""
    index = line.find("Call Manager/")
    if index < 0:
        return None
    return line[index + len("Call Manager/"):].strip() or None


class Framer:
    """Splits a received byte stream into the texts of complete AMI packets."""

    def __init__(
        self,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        encoding: str = "utf-8",
        errors: str = "replace",
        expect_banner: bool = True,
    ) -> None:
        self.max_packet_size = max_packet_size
        self.encoding = encoding
        self.errors = errors
        self.banner: Optional[str] = None if expect_banner else ""
        self._chunks: List[bytes] = []
        self._size = 0
        self._tail = b""  # the last 3 buffered bytes: a terminator may straddle reads
        self._failed: Optional[ProtocolError] = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as packets."""
        return self._size

    def feed(self, data: bytes) -> List[str]:
        """Add received bytes; return the texts of the packets they complete."""
        if self._failed is not None:
            raise self._failed
        try:
            return self._feed(data)
        except ProtocolError as exc:
            self._failed = exc
            self._chunks = []
            self._size = 0
            raise

    def _feed(self, data: bytes) -> List[str]:
        if self._chunks:
            if self.banner is not None and data.find(_END) < 0 and (self._tail + data[:3]).find(_END) < 0:
                self._keep(data)
                return []
            self._chunks.append(data)
            data = b"".join(self._chunks)
            self._chunks = []
            self._size = 0
            self._tail = b""
        if self.banner is None:
            data = self._take_banner(data)
            if not data:
                return []
        end = data.rfind(_END)
        if end < 0:
            self._keep(data)
            return []
        if end + 4 < len(data):
            self._keep(data[end + 4:])
        complete = data[:end]
        if complete.find(_FOLLOWS) >= 0:
            return self._frame_follows(complete)
        if end > self.max_packet_size:
            self._check_parts(complete)
        try:
            texts = complete.decode(self.encoding, self.errors).split("\r\n\r\n")
        except UnicodeDecodeError:  # errors="strict": only the packets that do not decode are lost
            texts = [self._decode(part) for part in complete.split(_END)]
        if complete.startswith(b"\r\n") or data.find(b"\r\n\r\n\r\n", 0, end + 4) >= 0:
            # stray blank lines between packets: the same texts wherever the reads split
            texts = [text.strip("\r\n") for text in texts]
        return texts

    def _decode(self, packet: bytes) -> str:
        """The text of one packet; one that does not decode becomes a text no parser takes (a malformed packet)."""
        try:
            return packet.decode(self.encoding, self.errors)
        except UnicodeDecodeError:
            return UNDECODABLE + packet.decode(self.encoding, "replace")

    def _take_banner(self, data: bytes) -> bytes:
        newline = data.find(b"\n")
        if newline < 0:
            if len(data) > _MAX_BANNER:
                raise ProtocolError("no AMI banner: the first line is too long")
            self._keep(data)
            return b""
        line = data[:newline].decode(self.encoding, self.errors).rstrip("\r")
        if parse_banner(line) is None:
            raise ProtocolError(f"not an AMI server: unexpected first line {line[:80]!r}")
        self.banner = line
        return data[newline + 1:]

    def _keep(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self._tail = (self._tail + data)[-3:] if len(data) < 3 else data[-3:]
        self._check_size()

    def _check_size(self) -> None:
        if self._size > self.max_packet_size:
            raise ProtocolError(
                f"packet larger than max_packet_size ({self.max_packet_size} bytes) without an end"
            )

    def _check_parts(self, complete: bytes) -> None:
        start = 0
        while start <= len(complete):
            end = complete.find(_END, start)
            if end < 0:
                end = len(complete)
            if end - start > self.max_packet_size:
                raise ProtocolError(f"packet of {end - start} bytes exceeds max_packet_size")
            start = end + 4

    def _frame_follows(self, complete: bytes) -> List[str]:
        """Slow path for batches holding a legacy ``Response: Follows`` packet."""
        parts = complete.split(_END)
        packets: List[bytes] = []
        index = 0
        while index < len(parts):
            part = parts[index]
            index += 1
            if part.lstrip(b"\r\n").startswith(_FOLLOWS):
                while not part.rstrip().endswith(_END_COMMAND.encode()) and index < len(parts):
                    part = part + _END + parts[index]
                    index += 1
                if not part.rstrip().endswith(_END_COMMAND.encode()):
                    # The marker has not arrived yet: keep the packet buffered.
                    rest = [part + _END] + self._chunks
                    self._chunks = []
                    self._size = 0
                    for chunk in rest:
                        self._keep(chunk)
                    break
            if len(part) > self.max_packet_size:
                raise ProtocolError(f"packet of {len(part)} bytes exceeds max_packet_size")
            packets.append(part)
        return [self._decode(p) for p in packets]


def _split_line(line: str) -> Tuple[str, str]:
    key, sep, value = line.partition(":")
    if not sep:
        return line, ""
    if value[:1] == " ":
        value = value[1:]
    if value[-1:] == "\n":
        value = value.rstrip("\n")
    return key, value


def _parse_follows(text: str) -> Response:
    """A legacy (Asterisk <= 13) ``Command`` answer, with its CLI text as ``Output`` values."""
    lines = text.split("\r\n")
    pairs: List[Tuple[str, str]] = []
    index = 0
    while index < len(lines):
        key, sep, value = lines[index].partition(": ")
        if not sep or "\n" in lines[index] or key.lower() not in ("response", "privilege", "actionid"):
            break
        pairs.append((key, value))
        index += 1
    raw = "\r\n".join(lines[index:])
    if raw.endswith(_END_COMMAND):
        raw = raw[: -len(_END_COMMAND)]
    if raw.endswith("\n"):
        raw = raw[:-1]
    pairs.extend(("Output", line) for line in raw.replace("\r\n", "\n").split("\n"))
    response = Response.from_pairs(pairs)
    return response  # type: ignore[return-value]


def parse_packet(text: str) -> Packet:
    """Parse the text of one packet (no trailing blank line) into a Response or Event.

    Raises :class:`ProtocolError` if the first line is neither ``Response:``
    nor ``Event:``.
    """
    if text.startswith("Event: "):
        return parse_event(text)
    if text.startswith("Response: ") and not text.startswith("Response: Follows"):
        response = _parse_fast(Response, text)
        if response is not None:
            return response
    return _parse_slow(text)


def parse_event(text: str) -> Event:
    """Parse the text of a packet that starts with ``Event: ``."""
    event = _parse_fast(Event, text)
    return event if event is not None else cast(Event, _parse_slow(text))


_P = TypeVar("_P", bound=Packet)


def _parse_fast(cls: Type[_P], text: str) -> Optional[_P]:
    """The common shape (every line ``Key: value``, no repeats, no stray LF) at C speed; else None."""
    lines = text.split("\r\n")
    try:
        packet = cls([line.split(": ", 1) for line in lines])
    except ValueError:  # a line without ": "
        return None
    if len(packet) != len(lines) or "\n\r" in text or text[-1:] == "\n":
        return None
    return packet


def _parse_slow(text: str) -> Packet:
    text = text.lstrip("\r\n")
    while text.endswith("\r\n"):  # a stray CRLF after the packet, when a read ended right after it
        text = text[:-2]
    first = text[: text.find(":")].strip().lower() if ":" in text.split("\r\n", 1)[0] else ""
    if first == "response" and text.partition("\r\n")[0].partition(":")[2].strip() == "Follows":
        return _parse_follows(text)
    pairs = [_split_line(line) for line in text.split("\r\n")]
    if first == "event":
        return Event.from_pairs(pairs)
    if first == "response":
        return Response.from_pairs(pairs)
    raise ProtocolError(f"malformed packet: {text[:80]!r}")


class EventShapes:
    """Parses events whose header layout was seen before with one compiled regex.

    Asterisk sends each kind of event with the same headers in the same
    order.  After an event is parsed the ordinary way, its layout (the
    tuple of keys) is compiled into a pattern ``Key1: (value)\r\nKey2:
    (value)...``; later events of that layout are matched whole, in C,
    and their values read from the groups.  A full match guarantees the
    same result as :func:`parse_event`; anything else takes that path.
    Bounded: a few layouts per event name, a few hundred names.  One
    instance per thread (it is not locked).
    """

    MAX_LAYOUTS_PER_NAME = 4
    MAX_LEARNED_PER_NAME = 16  # a name whose layout keeps changing stops learning
    MAX_NAMES = 512

    def __init__(self) -> None:
        self._layouts: Dict[str, List[Tuple[Tuple[str, ...], re.Pattern[str]]]] = {}
        self._learned: Dict[str, int] = {}

    def parse(self, name: str, text: str) -> Event:
        """The event in ``text`` (which starts with ``Event: <name>``)."""
        layouts = self._layouts.get(name)
        if layouts is not None:
            for keys, pattern in layouts:
                match = pattern.fullmatch(text)
                if match is not None:
                    return Event(zip(keys, match.groups()))
        event = _parse_fast(Event, text)
        if event is None:
            return cast(Event, _parse_slow(text))
        self._learn(name, tuple(dict.keys(event)))
        return event

    def _learn(self, name: str, keys: Tuple[str, ...]) -> None:
        if any(known == keys for known, _ in self._layouts.get(name, ())):
            return  # a value the pattern does not take (a lone CR): nothing to learn
        learned = self._learned.get(name, 0)
        if learned >= self.MAX_LEARNED_PER_NAME or (not learned and len(self._learned) >= self.MAX_NAMES):
            return
        self._learned[name] = learned + 1
        pattern = re.compile("\r\n".join(f"{re.escape(key)}: ([^\r\n]*)" for key in keys))
        layouts = self._layouts.setdefault(name, [])
        layouts.insert(0, (keys, pattern))
        del layouts[self.MAX_LAYOUTS_PER_NAME:]


_KEY_OK = re.compile(r"[!-9;-~]+\Z")  # printable ASCII without ':' or space
_valid_names: set[str] = set()  # names that passed _KEY_OK: a set lookup is cheaper than the regex


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or (name not in _valid_names and not _KEY_OK.match(name)):
        raise ValueError(f"invalid {what}: {name!r}")
    if len(_valid_names) < 4096:
        _valid_names.add(name)
    return name


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, (bytes, bytearray, memoryview, Mapping, list, tuple, set, frozenset)):
        # str() of these is Python's spelling ("None", "b'abc'", "['a']"), never what the caller meant
        raise ValueError(f"a header value must be a str, number or bool here, not {type(value).__name__}")
    return str(value)


_SECRET_HEADERS = frozenset(("secret", "key"))  # errors name these headers, never show their values


def _shown(key: str, text: str) -> str:
    """``text`` for an error message: ``(value not shown)`` for a secret header."""
    return "(value not shown)" if key.lower() in _SECRET_HEADERS else repr(text[:60])


def _value(key: str, value: Any) -> str:
    text = _render(value)
    if text and text[0] <= " ":
        raise ValueError(f"the {key} value starts with whitespace or a control character, "
                         f"which Asterisk would drop: {_shown(key, text)}")
    return text


MAX_ACTION_ID = 64  # longer ones overflow Asterisk's fixed ActionID buffers and merge packets
_ACTION_ID_OK = re.compile(r"[!-~](?:[ -~]*[!-~])?\Z")  # printable ASCII, no blank at either end
_APP_ARG_SPECIAL = re.compile(r'([\\",()\[\]])')


def check_action_id(action_id: str) -> str:
    """``action_id`` if Asterisk echoes it back unchanged; else ``ValueError``.

    Printable ASCII, no blank at either end, at most 64 characters.
    """
    if not isinstance(action_id, str) or len(action_id) > MAX_ACTION_ID or not _ACTION_ID_OK.match(action_id):
        raise ValueError(f"invalid ActionID {action_id[:80] if isinstance(action_id, str) else action_id!r}: "
                         f"use 1 to {MAX_ACTION_ID} printable ASCII characters, no blank at either end")
    return action_id


def escape_app_arg(text: str) -> str:
    """``text`` escaped so Asterisk's argument splitter (``ast_app_separate_args``) yields it unchanged.

    That splitter cuts on commas outside quotes, parentheses and brackets,
    and removes quotes and backslashes; every such character gets a backslash.
    """
    return _APP_ARG_SPECIAL.sub(r"\\\1", text)


def join_app_args(items: Sequence[Any], what: str = "argument") -> str:
    """One comma-separated header value that Asterisk splits back into exactly ``items`` (a str is one item)."""
    parts = [_render(item) for item in ([items] if isinstance(items, str) else items)]
    if any(not part for part in parts):
        raise ValueError(f"an empty {what} cannot be sent in a comma-separated list")
    return ",".join(escape_app_arg(part) for part in parts)


def variable_line(name: Any, value: Any) -> str:
    """A ``Variable`` header value (``name=value``) that Asterisk reads back as exactly that pair.

    Raises ``ValueError`` for a name Asterisk cannot receive: not a string,
    empty, containing ``=``, or containing a comma outside parentheses
    (``PJSIP_HEADER(add,X-Foo)`` is fine).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid variable name {name!r}: a non-empty string is needed")
    if "=" in name:
        raise ValueError(f"invalid variable name {name[:60]!r}: Asterisk splits name and value at the first '='")
    depth = 0
    for char in name:
        depth += 1 if char == "(" else -1 if char == ")" and depth else 0
        if char == "," and not depth:
            raise ValueError(f"invalid variable name {name[:60]!r}: a comma outside parentheses")
    return f"{escape_app_arg(name)}={escape_app_arg(_render(value))}"


def serialize_action(action: str, headers: Mapping[str, HeaderValue], action_id: Optional[str] = None,
                     *, generated_id: bool = False) -> bytes:
    """The bytes of one action: ``Action`` first, the headers, then ``ActionID``.

    A list value repeats its header; a mapping value becomes one
    ``name=value`` line each (``Variable``), escaped so that Asterisk's
    argument splitter gives back exactly that name and value (see
    :func:`variable_line`; a ``None`` value omits its line); ``None`` omits the header.  Raises
    ``ValueError`` for what Asterisk would misread or silently change: CR,
    LF or NUL anywhere, a value starting with whitespace or a control
    character (Asterisk drops those), an invalid key or variable name, an
    ActionID Asterisk would not echo unchanged (:func:`check_action_id`), a
    line over 1022 bytes, or more than 128 lines.  ``generated_id``: the
    client made ``action_id`` (valid by construction: not checked again).
    """
    if not headers and generated_id and action in _valid_names and len(action) < 256:  # a bare action (Ping)
        return f"Action: {action}\r\nActionID: {action_id}\r\n\r\n".encode()
    lines = [f"Action: {_check_name(action, 'action name')}"]
    for key, value in headers.items():
        _check_name(key, "header name")
        if value is None:
            continue
        if isinstance(value, Mapping):
            lines.extend(f"{key}: {_value(key, variable_line(name, item))}" for name, item in value.items()
                         if item is not None)
        elif isinstance(value, (list, tuple)):
            lines.extend(f"{key}: {_value(key, item)}" for item in value)
        else:
            lines.append(f"{key}: {_value(key, value)}")
    if action_id is not None:
        lines.append(f"ActionID: {action_id if generated_id else check_action_id(action_id)}")
    if len(lines) > MAX_LINES:
        raise ValueError(f"action has {len(lines)} lines; Asterisk accepts at most {MAX_LINES}")
    text = "\r\n".join(lines)
    if text.count("\r") != len(lines) - 1 or text.count("\n") != len(lines) - 1:  # one scan each, not one per value
        bad = next(line for line in lines if "\r" in line or "\n" in line)
        key = bad.partition(":")[0]
        raise ValueError(f"{key} contains CR or LF: {_shown(key, bad)}")
    if "\x00" in text:
        raise ValueError("a header contains a NUL character; Asterisk would cut the value there")
    try:
        data: Optional[bytes] = (text + "\r\n\r\n").encode("utf-8")
    except UnicodeEncodeError:  # raised below, outside this block: the error holds the whole text, secrets included
        data = None
    if data is None:
        bad = next(line for line in lines if not _utf8(line))
        key = bad.partition(":")[0]
        raise ValueError(f"{key} holds a character UTF-8 cannot encode (a lone surrogate): {_shown(key, bad)}")
    if len(data) > MAX_LINE_BYTES and any(len(line.encode("utf-8")) > MAX_LINE_BYTES for line in lines):
        raise ValueError(f"a header line is longer than {MAX_LINE_BYTES} bytes; Asterisk would reject it")
    return data


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def header_value(fields: Mapping[str, HeaderValue], key: str, default: Any) -> Any:
    """The value of header ``key`` (any case) in ``fields``, or ``default``."""
    lower = key.lower()
    for name, value in fields.items():
        if name.lower() == lower:
            return value
    return default


def split_action(
    action: Union[str, Mapping[str, HeaderValue]], headers: Optional[Mapping[str, HeaderValue]], fields: Dict[str, HeaderValue]
) -> Tuple[str, Dict[str, HeaderValue]]:
    """The action name and its headers, from ``send_action``'s forms (a name, or a mapping with ``Action``).

    An ``Action`` header besides the action's name raises ``ValueError``
    (Asterisk would run the first one, which may not be the one meant).
    Headers differing only in case are kept: ``UserEvent`` sends them all.
    Without ``headers``, ``fields`` itself (a fresh ``**kwargs`` dict) is returned.
    """
    if isinstance(action, str):
        if headers:
            merged = dict(headers)
            merged.update(fields)
        else:
            merged = fields  # a fresh dict of keyword arguments: ours to change
        name = action
    else:
        merged = dict(action)
        if headers:
            merged.update(headers)
        merged.update(fields)
        given = next((merged.pop(key) for key in list(merged) if isinstance(key, str) and key.lower() == "action"), None)
        if not isinstance(given, str) or not given:
            raise ValueError("an action mapping needs an 'Action' key")
        name = given
    for key in merged:
        if isinstance(key, str) and len(key) == 6 and key.lower() == "action":
            raise ValueError(f"the action's name is given twice (an {key!r} header too)")
    return name, merged


def pop_action_id(fields: Dict[str, HeaderValue]) -> Optional[str]:
    """Remove the caller's ``ActionID`` (any case) from ``fields`` and return it (None if absent or empty)."""
    for key in list(fields):
        if key.lower() == "actionid":
            value = fields.pop(key)
            if value is None or value == "":
                return None
            if not isinstance(value, str):
                value = str(value)
            return value
    return None

"""Server-side AMI wire format: client packet parsing and server packet encoding.

Client packets are framed the way Asterisk's ``get_input()`` does it: a line
ends at LF (one preceding CR is dropped), an empty line ends the packet, keys
are matched case-insensitively and must be followed directly by ``:``, leading
blanks of a value are skipped and trailing whitespace is kept.
"""

from __future__ import annotations

from typing import (
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

__all__ = [
    "MAX_LINE",
    "MAX_LINES",
    "HandlerResult",
    "Packet",
    "PacketLike",
    "PacketParser",
    "build_response",
    "encode_packet",
    "encode_packets",
]

#: Longest accepted client line, terminator excluded (Asterisk: 1022 + CRLF).
MAX_LINE = 1022
#: Most lines accepted in one client packet (``AST_MAX_MANHEADERS``).
MAX_LINES = 128

#: A server packet given by a caller: a mapping or a sequence of pairs.
#: Pairs or entries whose value is ``None`` are left out.
PacketLike = Union[Mapping[str, Optional[str]], Sequence[Tuple[str, Optional[str]]]]
#: What an action handler returns: raw bytes, one packet, a list of packets, or None.
HandlerResult = Union[bytes, str, PacketLike, Sequence[PacketLike], None]


_BLANKS = "".join(chr(c) for c in range(33))


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class Packet(Mapping[str, str]):
    """A parsed client packet: an ordered multi-dict with case-insensitive keys.

    ``get``/``[]`` return the *first* value of a key (even an empty one), as
    Asterisk does; ``getlist`` returns every value.  ``lines`` keeps every
    line verbatim (lines without a colon included), ``raw`` the exact bytes.
    """

    __slots__ = ("_index", "error", "pairs", "lines", "raw")

    def __init__(
        self,
        lines: Sequence[str],
        raw: bytes = b"",
        error: Optional[str] = None,
    ) -> None:
        self.lines: List[str] = list(lines)
        self.raw = raw
        #: Asterisk's parse error message (line too long, too many lines), if any.
        self.error = error
        self.pairs: List[Tuple[str, str]] = []
        self._index: dict[str, List[str]] = {}
        for line in self.lines:
            key, sep, value = line.partition(":")
            if not sep or not key:
                continue
            value = value.lstrip(_BLANKS)
            self.pairs.append((key, value))
            self._index.setdefault(key.lower(), []).append(value)

    @classmethod
    def from_pairs(cls, pairs: Sequence[Tuple[str, str]]) -> Packet:
        """Build a packet from ``(key, value)`` pairs (for tests and handlers)."""
        lines = ["%s: %s" % (k, v) for k, v in pairs]
        raw = _encode("".join(line + "\r\n" for line in lines) + "\r\n")
        return cls(lines, raw)

    def __getitem__(self, key: str) -> str:
        values = self._index.get(key.lower())
        if not values:
            raise KeyError(key)
        return values[0]

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for key, _ in self.pairs:
            low = key.lower()
            if low not in seen:
                seen.add(low)
                yield key

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._index

    def getlist(self, key: str) -> List[str]:
        """Every value of ``key``, in order."""
        return list(self._index.get(key.lower(), ()))

    @property
    def action(self) -> str:
        """The first non-empty ``Action`` value (trailing blanks kept), or ``""``."""
        for value in self._index.get("action", ()):
            if value:
                return value
        return ""

    @property
    def action_id(self) -> Optional[str]:
        """The first ``ActionID`` value if it is non-empty, else ``None``."""
        values = self._index.get("actionid")
        if values and values[0]:
            return values[0]
        return None

    def __repr__(self) -> str:
        return "Packet(%r)" % (self.pairs,)


class PacketParser:
    """Incremental framer for client bytes: ``feed()`` returns complete packets."""

    __slots__ = ("_buf", "_lines", "_error", "_raw")

    def __init__(self) -> None:
        self._buf = b""
        self._lines: List[str] = []
        self._raw: List[bytes] = []
        self._error: Optional[str] = None

    def feed(self, data: bytes) -> List[Packet]:
        """Add received bytes; return the packets completed by them."""
        buf = self._buf + data if self._buf else data
        parts = buf.split(b"\n")
        self._buf = parts.pop()
        if len(self._buf) > MAX_LINE + 1:
            # Like Asterisk: drop the overlong line, keep its last byte.
            self._error = "Failed to parse message: line too long"
            self._buf = self._buf[-1:]
        packets: List[Packet] = []
        lines = self._lines
        raw = self._raw
        for part in parts:
            raw.append(part)
            line = part[:-1] if part.endswith(b"\r") else part
            if not line:
                packets.append(Packet(lines, b"\n".join(raw) + b"\n", self._error))
                lines = self._lines = []
                raw = self._raw = []
                self._error = None
                continue
            if len(line) > MAX_LINE:
                self._error = "Failed to parse message: line too long"
                continue
            if len(lines) >= MAX_LINES:
                if self._error is None:
                    self._error = "Too many lines in message or allocation failure"
                continue
            lines.append(_decode(line))
        return packets

    @property
    def pending(self) -> bytes:
        """Bytes of the unfinished packet so far (for diagnostics)."""
        done = b"\n".join(self._raw) + b"\n" if self._raw else b""
        return done + self._buf


def _pairs(packet: PacketLike) -> Sequence[Tuple[str, Optional[str]]]:
    if isinstance(packet, Mapping):
        return list(packet.items())
    return packet


def encode_packet(packet: PacketLike) -> bytes:
    """Serialise one server packet: ``Key: value`` CRLF lines and a blank line."""
    out = []
    for key, value in _pairs(packet):
        if value is None:
            continue
        out.append("%s: %s\r\n" % (key, value))
    out.append("\r\n")
    return _encode("".join(out))


def _is_pair(item: object) -> bool:
    return (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and (item[1] is None or isinstance(item[1], str))
    )


def encode_packets(result: HandlerResult) -> bytes:
    """Serialise a handler result: bytes, one packet, or a sequence of packets."""
    if result is None:
        return b""
    if isinstance(result, bytes):
        return result
    if isinstance(result, str):
        return _encode(result)
    if isinstance(result, Mapping):
        return encode_packet(result)
    items = list(result)
    if not items:
        return b""
    if _is_pair(items[0]):
        return encode_packet(items)  # type: ignore[arg-type]
    return b"".join(encode_packet(p) for p in items)  # type: ignore[arg-type]


def build_response(
    packet: Packet,
    message: Optional[str] = None,
    response: str = "Success",
    headers: Sequence[Tuple[str, Optional[str]]] = (),
) -> List[Tuple[str, Optional[str]]]:
    """A response the way ``astman_send_response_full()`` lays it out.

    ``Response``, the echoed ``ActionID`` (if the request had a non-empty
    one), ``Message`` (if given), then ``headers``.
    """
    pairs: List[Tuple[str, Optional[str]]] = [
        ("Response", response),
        ("ActionID", packet.action_id),
        ("Message", message),
    ]
    pairs.extend(headers)
    return pairs

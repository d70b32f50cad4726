"""How Asterisk splits header values that hold several items, done the same way here.

* ``separate_args`` is ``__ast_app_separate_args()`` (main/app.c), step by
  step: commas split outside double quotes, parentheses and square
  brackets; with ``remove_chars`` quotes are removed and a backslash is
  removed and makes the next character literal.  Parentheses and brackets
  are kept.  At most ``arraylen - 1`` splits; the rest of the string is the
  last item, unprocessed.
* ``parse_variables`` is ``man_do_variable_value()`` (main/manager.c) over
  every ``Variable`` header: blanks skipped, up to 64 items per header, each
  split at its first ``=``; items without ``=`` or with an empty name are
  ignored.
* ``parse_status_variables``: ``Status``'s ``Variables`` header (100 items).
* ``parse_codecs``: ``ast_format_cap_update_by_allow_disallow()`` (main/
  format_cap.c): ``,`` or ``|`` separate, blanks stripped, empty items skipped.
* ``parse_cli_args``: ``parse_args()`` of main/cli.c (blanks separate;
  double quotes group; a backslash makes the next character literal).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

__all__ = ["parse_cli_args", "parse_codecs", "parse_status_variables", "parse_variables", "separate_args"]


def separate_args(buf: str, delim: str = ",", remove_chars: bool = True, arraylen: int = 64) -> List[str]:
    """The items ``__ast_app_separate_args(buf, delim, remove_chars, array, arraylen)`` finds."""
    if arraylen <= 0:
        return []
    chars = list(buf.split("\0", 1)[0]) + ["\0"]  # a C string ends at its first NUL
    starts: List[int] = []
    scan = 0
    paren = quote = bracket = 0
    wasdelim = -1
    while chars[scan] != "\0" and len(starts) < arraylen - 1:
        starts.append(scan)
        while chars[scan] != "\0":
            char = chars[scan]
            if char == "(":
                paren += 1
            elif char == ")":
                if paren:
                    paren -= 1
            elif char == "[":
                bracket += 1
            elif char == "]":
                if bracket:
                    bracket -= 1
            elif char == '"' and delim != '"':
                quote = 0 if quote else 1
                if remove_chars:
                    del chars[scan]  # memmove(scan, scan + 1, strlen(scan))
                    scan -= 1
            elif char == "\\":
                if remove_chars:
                    del chars[scan]
                else:
                    scan += 1
                if chars[scan] == "\0":  # a trailing backslash: C reads past the end; stop here
                    return _collect(chars, starts)
            elif char == delim and not paren and not quote and not bracket:
                wasdelim = scan
                chars[scan] = "\0"
                scan += 1
                break
            scan += 1
    if chars[scan] != "\0" or (scan > 0 and scan - 1 == wasdelim):
        starts.append(scan)
    return _collect(chars, starts)


def _collect(chars: List[str], starts: Sequence[int]) -> List[str]:
    text = "".join(chars)
    return [text[start:text.index("\0", start)] for start in starts]


def _skip_blanks(text: str) -> str:
    index = 0
    while index < len(text) and ord(text[index]) < 33:
        index += 1
    return text[index:]


def parse_variables(values: Sequence[str]) -> Dict[str, str]:
    """The variables Asterisk reads from these ``Variable`` header values (later ones win)."""
    result: Dict[str, str] = {}
    for value in values:
        for item in separate_args(_skip_blanks(value), ",", True, 64):
            name, sep, val = item.partition("=")
            if sep and name:
                result[name] = val
    return result


def parse_status_variables(value: str) -> List[str]:
    """The variable names in ``Status``'s ``Variables`` header."""
    return separate_args(value, ",", True, 100) if value else []


def parse_codecs(value: str) -> List[str]:
    """The codec names in an ``Originate`` ``Codecs`` header (``!`` and ``:ms`` kept)."""
    text = value
    if text[:1] == "(" and text[-1:] == ")":
        text = text[1:-1]
    items = [item.strip("".join(chr(c) for c in range(33))) for item in text.replace("|", ",").split(",")]
    return [item for item in items if item]


def parse_cli_args(line: str) -> List[str]:
    """The words of a CLI command line, as Asterisk's CLI parser finds them."""
    words: List[str] = []
    current: List[str] = []
    quoted = escaped = False
    in_word = False
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                in_word = True
        elif char in " \t" and not (quoted or escaped):
            if in_word:
                words.append("".join(current))
                current = []
                in_word = False
        elif char == "\\" and not escaped:
            escaped = True
        else:
            in_word = True
            current.append(char)
            escaped = False
    if in_word:
        words.append("".join(current))
    return words

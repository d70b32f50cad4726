"""The ``database`` CLI commands of the fake (main/db.c's texts), on ``server.db``.

Words are split the way Asterisk's CLI splits them (quotes group, a
backslash escapes), so a client quoting family and key can be checked.
"""

from __future__ import annotations

import threading
from typing import Dict, Optional, Protocol, Tuple

from ._appargs import parse_cli_args

__all__ = ["DatabaseHost", "database_cli"]


class DatabaseHost(Protocol):
    """The server state the ``database`` commands use."""

    db: Dict[Tuple[str, str], str]

    @property
    def lock(self) -> threading.RLock: ...

_USAGE = {
    "put": "Usage: database put <family> <key> <value>",
    "get": "Usage: database get <family> <key>",
    "del": "Usage: database del <family> <key>",
    "deltree": "Usage: database deltree <family> [keytree]",
    "show": "Usage: database show [family [keytree]]",
}


def database_cli(server: DatabaseHost, command: str) -> Optional[Tuple[str, bool]]:
    """The output of a ``database ...`` command, or None if ``command`` is not one."""
    words = parse_cli_args(command)
    if len(words) < 2 or words[0].lower() != "database" or words[1].lower() not in _USAGE:
        return None
    verb, args = words[1].lower(), words[2:]
    with server.lock:
        if verb == "put" and len(args) == 3:
            server.db[(args[0], args[1])] = args[2]
            return "Updated database successfully", True
        if verb == "get" and len(args) == 2:
            value = server.db.get((args[0], args[1]))
            return ("Database entry not found." if value is None else "Value: %s" % value), True
        if verb == "del" and len(args) == 2:
            found = server.db.pop((args[0], args[1]), None) is not None
            return ("Database entry removed." if found else "Database entry does not exist."), True
        if verb == "deltree" and len(args) in (1, 2):
            prefix = "/" + "/".join(args)
            doomed = [fk for fk in server.db if ("/%s/%s" % fk) == prefix or ("/%s/%s" % fk).startswith(prefix + "/")]
            for fk in doomed:
                del server.db[fk]
            return ("%d database entries removed." % len(doomed) if doomed else "Database entries do not exist."), True
        if verb == "show" and len(args) <= 2:
            prefix = "/" + "/".join(args) if args else ""
            rows = sorted(("/%s/%s" % fk, value) for fk, value in server.db.items())
            rows = [(k, v) for k, v in rows if not prefix or k == prefix or k.startswith(prefix + "/")]
            lines = ["%-50s: %-25s" % row for row in rows]
            return "\n".join(lines + ["%d results found." % len(rows)]), True
    return _USAGE[verb], True

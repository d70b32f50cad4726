"""Configuration files and modules in ``FakeAMIServer``: GetConfig, UpdateConfig, Reload, ModuleCheck, ModuleLoad.

``server.config_files`` maps a file name to its categories in file order,
each a ``[name, [(variable, value), ...]]`` list (a name may repeat, as in
Asterisk).  ``server.modules`` is the set of loaded module names
(``chan_pjsip.so``...); every one but ``app_dial.so`` supports reload, and
those in ``AVAILABLE_MODULES`` can be loaded.
UpdateConfig applies its numbered edits to a copy and keeps it only if
every edit succeeded, with Asterisk's messages
(``action_updateconfig()``/``handle_updates()`` in main/manager.c).
"""

from __future__ import annotations

import copy
import threading
from typing import Dict, List, Optional, Protocol, Set, Tuple, cast

from ._handlers import ActionTable, HandlerResult
from ._session import Session
from ._wire import Packet, build_response

__all__ = [
    "AVAILABLE_MODULES", "CONFIG_ACTIONS", "Category", "ConfigFile", "ConfigHost", "DEFAULT_MODULES", "default_config",
]

Category = List[object]  # [name: str, lines: List[Tuple[str, str]]]
ConfigFile = List[Category]
Pairs = List[Tuple[str, Optional[str]]]

DEFAULT_MODULES = frozenset(("app_queue.so", "chan_pjsip.so", "res_pjsip.so", "app_dial.so", "pbx_config.so",
                             "res_agi.so", "app_voicemail.so"))
AVAILABLE_MODULES = DEFAULT_MODULES | {"res_parking.so", "app_agent_pool.so", "chan_iax2.so", "app_confbridge.so"}
_NO_RELOAD = frozenset(("app_dial.so",))


class ConfigHost(Protocol):
    """The server state the configuration actions use."""

    config_files: Dict[str, ConfigFile]
    modules: Set[str]

    @property
    def lock(self) -> threading.RLock: ...


def _srv(s: Session) -> ConfigHost:
    return cast(ConfigHost, s.server)


def _error(p: Packet, message: str) -> Pairs:
    return build_response(p, message, "Error")


def _lines(category: Category) -> List[Tuple[str, str]]:
    return category[1]  # type: ignore[return-value]


def act_getconfig(s: Session, p: Packet) -> HandlerResult:
    """GetConfig: ``Category-NNNNNN`` and ``Line-NNNNNN-NNNNNN: var=value`` headers."""
    filename, wanted = p.get("Filename", ""), p.get("Category", "")
    if not filename:
        return _error(p, "Filename not specified")
    if filename.startswith("/") or ".." in filename.split("/"):
        return _error(p, "File requires escalated privileges")
    srv = _srv(s)
    with srv.lock:
        config = copy.deepcopy(srv.config_files.get(filename))
    if config is None:
        return _error(p, "Config file not found")
    out = "Response: Success\r\n"
    if p.action_id:
        out += "ActionID: %s\r\n" % p.action_id
    count = 0
    for category in config:
        if wanted and category[0] != wanted:
            continue
        out += "Category-%06d: %s\r\n" % (count, category[0])
        out += "".join("Line-%06d-%06d: %s=%s\r\n" % (count, n, var, val) for n, (var, val) in enumerate(_lines(category)))
        count += 1
    if wanted and not count:
        out += "No categories found\r\n"  # sic: a line without a colon, as Asterisk sends it
    return (out + "\r\n").encode("utf-8", "surrogateescape")


class _EditError(Exception):
    pass


def _find(config: ConfigFile, name: str, match: str = "") -> Optional[Category]:
    return next((c for c in config if c[0] == name), None)


def _apply(config: ConfigFile, p: Packet, index: int) -> bool:
    """Apply edit ``index``; False when there is none (the list ends)."""
    def get(key: str) -> str:
        return p.get("%s-%06d" % (key, index), "")

    action = get("Action")
    if not action:
        return False
    cat, var, value, match, line = get("Cat"), get("Var"), get("Value"), get("Match"), get("Line")
    kind = action.lower()
    if kind not in ("newcat", "renamecat", "delcat", "emptycat", "update", "delete", "append", "insert"):
        raise _EditError("Unknown action command")
    if not cat:
        raise _EditError("Category not specified")
    if kind == "newcat":
        position = next((i for i, c in enumerate(config) if match and c[0] == match), len(config))
        config.insert(position, [cat, []])
        return True
    category = _find(config, cat)
    if category is None:
        raise _EditError("Given category does not exist")
    lines = _lines(category)
    if kind == "renamecat":
        if not value:
            raise _EditError("Problem with category, value, or line (if required)")
        category[0] = value
    elif kind == "delcat":
        config.remove(category)
    elif kind == "emptycat":
        lines.clear()
    elif kind == "update":
        found = [i for i, (v, val) in enumerate(lines) if v == var and (not match or val == match)]
        if not var or not found:
            raise _EditError("Update did not complete successfully")
        lines[found[0]] = (var, value)
    elif kind == "delete":
        if not var and not line:
            raise _EditError("Problem with category, value, or line (if required)")
        found = [i for i, (v, val) in enumerate(lines) if v == var and (not match or val == match)]
        if line.isdigit():
            found = [int(line)] if int(line) < len(lines) else []
        if not found:
            raise _EditError("Delete did not complete successfully")
        del lines[found[0]]
    elif kind == "append":
        if not var:
            raise _EditError("Problem with category, value, or line (if required)")
        lines.append((var, value))
    else:  # insert
        if not var or not line:
            raise _EditError("Problem with category, value, or line (if required)")
        lines.insert(int(line) if line.isdigit() else len(lines), (var, value))
    return True


def act_updateconfig(s: Session, p: Packet) -> HandlerResult:
    """UpdateConfig: numbered edits on a copy, saved only if all of them succeed."""
    source, dest = p.get("SrcFilename", ""), p.get("DstFilename", "")
    if not source or not dest:
        return _error(p, "Filename not specified")
    srv = _srv(s)
    with srv.lock:
        original = srv.config_files.get(source)
        if original is None:
            return _error(p, "Config file not found")
        config: ConfigFile = copy.deepcopy(original)
        try:
            index = 0
            while index < 100000 and _apply(config, p, index):
                index += 1
        except _EditError as exc:
            return _error(p, str(exc))
        srv.config_files[dest] = config
    return [("Response", "Success"), ("ActionID", p.action_id)]


def _module_name(name: str) -> str:
    return name if name.endswith(".so") else name + ".so"


def act_reload(s: Session, p: Packet) -> HandlerResult:
    """Reload: one module (must be loaded and reloadable) or all."""
    module = p.get("Module", "")
    srv = _srv(s)
    if module:
        name = _module_name(module)
        with srv.lock:
            if name not in srv.modules:
                return _error(p, "No such module")
            if name in _NO_RELOAD:
                return _error(p, "Module does not support reload")
    return build_response(p, "Module Reloaded")


def act_modulecheck(s: Session, p: Packet) -> HandlerResult:
    """ModuleCheck: Success if the module is loaded."""
    module = p.get("Module", "")
    if not module:
        return _error(p, "Module not specified")
    srv = _srv(s)
    with srv.lock:
        loaded = _module_name(module) in srv.modules
    if not loaded:
        return _error(p, "Module not loaded")
    return [("Response", "Success"), ("ActionID", p.action_id)]


def act_moduleload(s: Session, p: Packet) -> HandlerResult:
    """ModuleLoad: load, unload or reload."""
    module, load_type = p.get("Module", ""), p.get("LoadType", "").lower()
    srv = _srv(s)
    name = _module_name(module) if module else ""
    with srv.lock:
        if load_type == "load":
            if not module or name in srv.modules or name not in AVAILABLE_MODULES:
                return _error(p, "Could not load module.")
            srv.modules.add(name)
            return build_response(p, "Module loaded.")
        if load_type == "unload":
            if name not in srv.modules:
                return _error(p, "Could not unload module.")
            srv.modules.discard(name)
            return build_response(p, "Module unloaded.")
        if load_type == "reload":
            if not module:
                return build_response(p, "All modules reloaded")
            if name not in srv.modules:
                return _error(p, "No such module.")
            if name in _NO_RELOAD:
                return _error(p, "Module does not support reloading.")
            return build_response(p, "Module reloaded.")
    return _error(p, "Incomplete ModuleLoad action.")


CONFIG_ACTIONS: ActionTable = [
    ("GetConfig", act_getconfig, "system,config", "Retrieve configuration."),
    ("UpdateConfig", act_updateconfig, "config", "Update basic configuration."),
    ("Reload", act_reload, "system,config", "Send a reload event."),
    ("ModuleCheck", act_modulecheck, "system", "Check if module is loaded."),
    ("ModuleLoad", act_moduleload, "system", "Module management."),
]


def default_config() -> Dict[str, ConfigFile]:
    """The files a new fake starts with: a small ``manager.conf`` and ``extensions.conf``."""
    return {
        "manager.conf": [["general", [("enabled", "yes"), ("port", "5038")]],
                         ["admin", [("secret", "********"), ("read", "all"), ("write", "all")]]],
        "extensions.conf": [["general", [("static", "yes")]],
                            ["default", [("exten", "100,1,Answer()"), ("same", "n,Wait(1)")]]],
    }

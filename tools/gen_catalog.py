#!/usr/bin/env python3
"""Generate ``amiclient/_generated`` from Asterisk's action and event catalogue (JSON).

Usage::

    python tools/gen_catalog.py [CATALOG_DIR] [--out DIR] [--check]

``CATALOG_DIR`` holds ``asterisk-22.json`` and ``asterisk-13.json``
(default: /work/shared/asterisk-catalog).  ``--check`` writes nothing and
exits 1 when the committed files differ from what the JSON gives.

The rules applied here (names, types) are listed in ``amiclient/catalog.py``
and ``docs/catalog.rst``; keep the three in step.  Standard library only.
"""
from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

DEFAULT_CATALOG = Path("/work/shared/asterisk-catalog")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "amiclient" / "_generated"

#: Actions the client itself runs; not in the typed namespace (still validated).
MANAGED = ("Login", "Logoff", "Challenge")

#: Upper-case runs split into these words (``IAXpeers`` -> iax_peers, ``DAHDIDNDon`` -> dahdi_dnd_on).
ACRONYMS = ("AGI", "AOC", "CDR", "DAHDI", "DB", "DND", "DTMF", "FAX", "IAX", "ID", "JID", "JSON",
            "MF", "MWI", "PJSIP", "PRI", "SIP", "SKINNY", "URI")

#: Parameters documented as placeholders for any header (UserEvent's ``Header1``...).
PLACEHOLDERS = {("UserEvent", "Header1"), ("UserEvent", "HeaderN")}

#: Documented value lists that are examples, not the full set: kept as ``str``.
OPEN_ENUMS = {("ModuleLoad", "Module")}

#: Value lists that are yes/no switches: the parameter becomes a ``bool``.
BOOL_ENUMS = ({"yes", "no"}, {"true", "false"}, {"on", "off"})

#: Parameter types the docs do not give (they say it in prose): (action or "*", header) -> kind.
#: Kinds: b = bool ("true"/"false"), b01 = bool as 1/0, i = int, n = int or str, v = variables, c = comma list.
KINDS: Dict[Tuple[str, str], str] = {
    ("*", "Timeout"): "i", ("*", "Penalty"): "i", ("*", "Duration"): "i", ("*", "Priority"): "n",
    ("*", "ExtraPriority"): "n", ("QueueChangePriorityCaller", "Priority"): "i", ("Hangup", "Cause"): "i",
    ("PJSIPHangup", "Cause"): "n", ("MeetmeMute", "Usernum"): "i", ("MeetmeUnmute", "Usernum"): "i",
    ("FAXSession", "SessionNumber"): "i", ("PRIDebugSet", "Span"): "i", ("PRIShowSpans", "Span"): "i",
    ("MWIUpdate", "OldMessages"): "i", ("MWIUpdate", "NewMessages"): "i",
    ("AOCMessage", "UnitAmount(0)"): "i", ("AOCMessage", "UnitType(0)"): "i",
    ("AOCMessage", "CurrencyAmount"): "i", ("AOCMessage", "Time"): "i", ("AOCMessage", "Granularity"): "i",
    ("Originate", "Async"): "b", ("Originate", "EarlyMedia"): "b", ("Originate", "Variable"): "v",
    ("Originate", "Codecs"): "c", ("MessageSend", "Variable"): "v", ("PJSIPNotify", "Variable"): "v",
    ("SIPnotify", "Variable"): "v", ("Status", "Variables"): "c", ("QueueAdd", "Paused"): "b",
    ("QueuePause", "Paused"): "b", ("QueueMemberRingInUse", "RingInUse"): "b", ("AgentLogoff", "Soft"): "b",
    ("DialplanExtensionAdd", "Replace"): "b", ("ModuleLoad", "Recursive"): "b", ("PlayDTMF", "Receive"): "b",
    ("SendFlash", "Receive"): "b", ("QueueChangePriorityCaller", "Immediate"): "b",
    ("SorceryMemoryCacheStaleObject", "Reload"): "b", ("UpdateConfig", "PreserveEffectiveContext"): "b",
    ("MixMonitorMute", "State"): "b01", ("Monitor", "Mix"): "b",
}

#: One generated module per family: the first pattern matching the start of the action name wins.
FAMILIES: Sequence[Tuple[str, str]] = (
    ("queue", r"Queue"), ("pjsip", r"PJSIP"), ("dahdi", r"DAHDI|PRI"), ("conference", r"Confbridge|Meetme"),
    ("voicemail", r"Voicemail|MWI|Mailbox"), ("database", r"DB[A-Z]"),
    ("config", r"GetConfig|UpdateConfig|CreateConfig|ListCategories|Dialplan|ShowDialPlan"),
    ("drivers", r"IAX|SIP|SKINNY"),
    ("bridge", r"Bridge|Park|BlindTransfer|Atxfer|CancelAtxfer|LocalOptimizeAway"),
    ("media", r"MixMonitor|StopMixMonitor|Monitor|ChangeMonitor|PauseMonitor|UnpauseMonitor|StopMonitor|"
              r"PlayDTMF|PlayMF|SendFlash|ControlPlayback|MuteAudio|FAX|AOC"),
    ("calls", r"Originate|Hangup|Redirect|AbsoluteTimeout|Getvar|Setvar|Status|CoreShowChannel|SendText|"
              r"MessageSend|AGI|UserEvent"),
    ("core", r""),
)

#: Event names Asterisk sends that its docs do not list as events (list items and endings, legacy names).
EXTRA_EVENTS = (
    "BridgeInfoChannel", "BridgeInfoComplete", "BridgeListComplete", "BridgeListItem",
    "BridgeTechnologyListItem", "ChannelHungup", "ChannelsHungupListComplete", "DBGetComplete",
    "DBGetResponse", "DBGetTreeComplete", "DBGetTreeResponse", "DeviceEntry", "DeviceStateListComplete",
    "Dial", "ExtensionStateListComplete", "Join", "Leave", "LineEntry", "Link", "ListDialplan",
    "Masquerade", "Newexten", "Parkinglot", "PeerEntry", "PeerlistComplete", "QueueMember",
    "QueueStatusComplete", "QueueSummary", "QueueSummaryComplete", "RegistrationsComplete",
    "RegistryEntry", "ShowDialPlanComplete", "Unlink", "VoicemailUserEntry", "WaitEventComplete",
)

HEADER = ("# Generated by tools/gen_catalog.py from Asterisk's catalogue ({versions}).\n"
          "# Do not edit: change the generator or the JSON and run it again.\n")


def split_run(run: str) -> Optional[List[str]]:
    """``run`` cut into known acronyms, or None if it is not made of them only."""
    if not run:
        return []
    for acronym in sorted(ACRONYMS, key=len, reverse=True):
        if run.startswith(acronym):
            rest = split_run(run[len(acronym):])
            if rest is not None:
                return [acronym] + rest
    return None


def words(name: str) -> List[str]:
    """The words of an AMI name, by the documented rules."""
    out: List[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", name):
        runs = re.findall(r"[A-Z]+|[a-z]+|[0-9]+", part)
        i = 0
        while i < len(runs):
            run = runs[i]
            nxt = runs[i + 1] if i + 1 < len(runs) else ""
            if run.isdigit():
                if out:
                    out[-1] += run
                else:
                    out.append(run)
            elif run.isupper() and nxt.islower():
                whole = split_run(run)
                if whole is not None:
                    out.extend(whole)
                    out.append(nxt)
                else:
                    if len(run) > 1:
                        out.extend(split_run(run[:-1]) or [run[:-1]])
                    out.append(run[-1] + nxt)
                i += 1
            elif run.isupper():
                out.extend(split_run(run) or [run])
            else:
                out.append(run)
            i += 1
    return out


def snake(name: str) -> str:
    """``DBPut`` -> ``db_put``, ``PJSIPShowEndpoints`` -> ``pjsip_show_endpoints``."""
    return "_".join(w.lower() for w in words(name))


def family_base(header: str) -> Optional[str]:
    """The base name of a numbered header family (``Action-000000`` -> ``Action``), else None."""
    match = re.fullmatch(r"(.+?)(?:-000000|\(0\))", header)
    return match.group(1) if match else None


def arg_name(action: str, header: str, kind: str) -> str:
    """The Python parameter name for ``header``."""
    if kind == "v":
        return "variables"
    name = snake(family_base(header) or header)
    if name in ("timeout", "headers", "self"):
        return "ami_" + name
    if keyword.iskeyword(name):
        return name + "_"
    if not name.isidentifier():
        raise SystemExit(f"{action}.{header}: no Python name for {name!r}")
    return name


class Param:
    """One parameter of one action, with its Python name and type."""

    def __init__(self, action: str, raw: Dict[str, Any], in13: bool, in22: bool) -> None:
        self.header: str = raw["name"]
        self.required = bool(raw.get("required"))
        self.in13, self.in22 = in13, in22
        self.family = family_base(self.header) is not None
        enum = [str(v) for v in raw.get("enum", ())]
        kind = KINDS.get((action, self.header)) or KINDS.get(("*", self.header)) or "s"
        self.choices: Tuple[str, ...] = ()
        if enum and {v.lower() for v in enum} in BOOL_ENUMS:
            first = [v for v in enum if v.lower() in ("yes", "true", "on")][0]
            kind = "b:" + first + "/" + [v for v in enum if v != first][0]
        elif enum and kind == "s" and (action, self.header) not in OPEN_ENUMS \
                and all(re.fullmatch(r"[A-Za-z0-9_.]+", v) for v in enum):
            kind, self.choices = "e", tuple(enum)
        self.kind = kind
        self.arg = arg_name(action, self.header, kind)

    def annotation(self) -> str:
        """The type of the parameter (without Optional)."""
        kind = self.kind
        if kind == "e":
            base = "Literal[" + ", ".join(json.dumps(c) for c in self.choices) + "]"
        elif kind.startswith("b"):
            base = "bool"
        else:
            base = {"s": "str", "i": "int", "n": "Union[int, str]", "v": "Variables", "c": "CommaList"}[kind]
        return f"Sequence[Optional[{base}]]" if self.family else base

    def data(self) -> Tuple[str, str, str, bool, Tuple[str, ...]]:
        return (self.header, self.arg, self.kind, self.required, self.choices)


class Action:
    """One action, merged from both catalogues (22 first)."""

    def __init__(self, name: str, a22: Optional[Dict[str, Any]], a13: Optional[Dict[str, Any]]) -> None:
        self.name = name
        main = a22 or a13 or {}
        self.module: str = main.get("module") or ""
        self.since: Tuple[str, ...] = tuple((a22 or {}).get("since", ()))
        self.versions = tuple(v for v, a in (("13", a13), ("22", a22)) if a is not None)
        self.events: Tuple[str, ...] = tuple(main.get("see_also", {}).get("managerEvent", ()))
        names13 = {p["name"].lower() for p in (a13 or {}).get("params", ())}
        names22 = {p["name"].lower() for p in (a22 or {}).get("params", ())}
        self.params: List[Param] = []
        self.open = False
        seen = set()
        for raw in list(main.get("params", ())) + list((a13 or {}).get("params", ()) if a22 else ()):
            header = raw["name"]
            if header.lower() in seen or header == "ActionID":
                continue
            seen.add(header.lower())
            if (name, header) in PLACEHOLDERS:
                self.open = True
                continue
            if a22 is not None and header.lower() not in names22:
                raw = {"name": header}  # a 13-only parameter of a current action: never required
            self.params.append(Param(name, raw, header.lower() in names13, header.lower() in names22))
        args = [p.arg for p in self.params]
        if len(set(args)) != len(args):
            raise SystemExit(f"{name}: two parameters map to one Python name: {args}")
        self.method = snake(name)
        self.family = next(f for f, pattern in FAMILIES if re.match(pattern, name))

    def signature(self) -> List[str]:
        required = [p for p in self.params if p.required]
        optional = [p for p in self.params if not p.required]
        lines = ["self,"] + [f"{p.arg}: {p.annotation()}," for p in required] + ["*,"]
        lines += [f"{p.arg}: Optional[{p.annotation()}] = None," for p in optional]
        lines += ["headers: Optional[Mapping[str, HeaderValue]] = None,", "timeout: Optional[float] = DEFAULT,"]
        return lines

    def available(self) -> str:
        if "22" not in self.versions:
            return "Asterisk 13 only (gone by 22)"
        since = " / ".join(self.since) or "?"
        return f"Asterisk {since} and later" + ("" if "13" in self.versions else ", not in 13")

    def docstring(self) -> List[str]:
        def names(params: Sequence[Param]) -> str:
            return ", ".join(f"``{p.arg}``" if p.arg == snake(p.header) else f"``{p.arg}`` ({p.header})"
                             for p in params) or "none"
        module = f"{self.module}; " if self.module else ""
        text = [f"Send ``{self.name}`` ({module}{self.available()})."]
        body = f"Required: {names([p for p in self.params if p.required])}.  " \
               f"Optional: {names([p for p in self.params if not p.required])}."
        if self.open:
            body += "  Any other header goes in ``headers``."
        newer = [p for p in self.params if not p.in13] if "13" in self.versions else []
        if newer:
            body += f"  Not in Asterisk 13: {names(newer)}."
        if self.events:
            body += "  Related events: " + ", ".join(f"``{e}``" for e in self.events) + "."
        body += "  Returns the Response (list items in ``.events``)."
        return text + [""] + textwrap.wrap(body, 96)

    def method_source(self) -> str:
        ind = " " * 8
        out = [f"    def {self.method}(", *(ind + line for line in self.signature()), "    ) -> Response:"]
        doc = self.docstring()
        out.append(f'{ind}"""{doc[0]}')
        out.extend((ind + line) if line else "" for line in doc[1:])
        out.append(f'{ind}"""')
        values = ", ".join(p.arg for p in self.params) + ("," if len(self.params) == 1 else "")
        out.append(f'{ind}return self._send("{self.name}", ({values}), headers, timeout)')
        return "\n".join(out)


def load(catalog_dir: Path) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The two catalogues (22, 13) as parsed JSON."""
    def read(name: str) -> Dict[str, Any]:
        data: Dict[str, Any] = json.loads((catalog_dir / name).read_text(encoding="utf-8"))
        return data
    return read("asterisk-22.json"), read("asterisk-13.json")


def merged_actions(c22: Dict[str, Any], c13: Dict[str, Any]) -> List[Action]:
    names = sorted(set(c22["actions"]) | set(c13["actions"]))
    return [Action(n, c22["actions"].get(n), c13["actions"].get(n)) for n in names]


def event_fields(instances: Sequence[Dict[str, Any]]) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """Field names (snapshot blocks as ``@kind:Prefix``) and read classes, over every instance."""
    fields: List[str] = []
    classes: List[str] = []
    for inst in instances:
        if inst.get("class") and inst["class"] not in classes:
            classes.append(inst["class"])
        for param in inst.get("params", ()):
            source = param.get("from")
            if source:
                kind, _, prefix = source.partition(":")
                item = f"@{kind.replace('_snapshot', '')}:{prefix}"
            else:
                item = param["name"]
            if item not in fields:
                fields.append(item)
    return tuple(fields), tuple(classes)


def render_data(c22: Dict[str, Any], c13: Dict[str, Any], actions: List[Action], versions: str) -> str:
    out = [HEADER.format(versions=versions),
           '"""The catalogue as data: every action\'s parameters and every event\'s fields (generated)."""',
           "from typing import Dict, Tuple", "",
           f"ASTERISK_22 = {json.dumps(c22['asterisk'])}", f"ASTERISK_13 = {json.dumps(c13['asterisk'])}", "",
           "#: name -> (since, versions, module, method, params, open); param: (header, arg, kind, required, choices)",
           "ACTIONS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...], str, str, Tuple[Tuple[str, str, str, bool, "
           "Tuple[str, ...]], ...], bool]] = {"]
    for a in actions:
        method = "" if a.name in MANAGED else a.method
        params = "".join(f"\n        {tuple_src(p.data())}," for p in a.params)
        out.append(f"    {json.dumps(a.name)}: ({tuple_src(a.since)}, {tuple_src(a.versions)}, {json.dumps(a.module)}, "
                   f"{json.dumps(method)}, ({params}\n    ), {a.open}),")
    out += ["}", "", "#: name -> (fields, read classes, versions); ``@channel:Dest`` = the channel block prefixed ``Dest``",
            "EVENTS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[str, ...]]] = {"]
    for name in sorted(set(c22["events"]) | set(c13["events"])):
        e22, e13 = c22["events"].get(name), c13["events"].get(name)
        fields, classes = event_fields([*(e22 or {}).get("instances", ()), *(e13 or {}).get("instances", ())])
        where = tuple(v for v, e in (("13", e13), ("22", e22)) if e is not None)
        out.append(f"    {json.dumps(name)}: (\n        {tuple_src(fields)},\n        {tuple_src(classes)}, {tuple_src(where)}),")
    out += ["}", "", "#: snapshot kind -> field names (before any prefix)", "SNAPSHOTS: Dict[str, Tuple[str, ...]] = {"]
    for kind, fields in sorted(c22["snapshot_fields"].items()):
        out.append(f"    {json.dumps(kind.replace('_snapshot', ''))}: {tuple_src(fields)},")
    out += ["}", "", "#: names Asterisk sends that its docs do not list as events",
            f"EXTRA_EVENTS: Tuple[str, ...] = {tuple_src(EXTRA_EVENTS)}", ""]
    return "\n".join(out)


def render_headers(actions: List[Action], events: Sequence[str], versions: str) -> str:
    """The headers of every action, compact: what validating an action needs, at a fraction of ``_data``'s memory."""
    out = [HEADER.format(versions=versions),
           '"""Every action\'s headers in one string each, for validation (generated; ``_data`` has the rest)."""',
           "from typing import Dict", "",
           "#: lower-case name -> \"Name|Header,Required!,...\" (``Name*`` takes any extra header)",
           "HEADERS: Dict[str, str] = {"]
    for a in actions:
        headers = ",".join(p.data()[0] + ("!" if p.data()[3] else "") for p in a.params)
        out.append(f"    {json.dumps(a.name.lower())}: {json.dumps(a.name + ('*' if a.open else '') + '|' + headers)},")
    names = sorted({a.name.lower() for a in actions} | {e.lower() for e in events})
    out += ["}", "", "#: every name a listener may sensibly ask for, lower-case: events, extra events, actions (list items)",
            "NAMES = (", *(f'    "{chunk} "' for chunk in textwrap.wrap(" ".join(names), 100, break_long_words=False,
                                                                     break_on_hyphens=False)), ")", ""]
    return "\n".join(out)


def tuple_src(items: Sequence[Any]) -> str:
    """A Python tuple literal (strings in double quotes), stable across runs."""
    parts = [json.dumps(i) if isinstance(i, str) else tuple_src(i) if isinstance(i, tuple) else repr(i) for i in items]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def class_name(family: str) -> str:
    return family.capitalize() + "Actions"


def render_family(family: str, actions: List[Action], versions: str) -> str:
    source = "\n\n".join(a.method_source() for a in actions)
    names = set(re.findall(r"\b(Literal|Sequence|Union|Variables|CommaList)\b", source))
    typing_names = sorted({"Mapping", "Optional"} | (names & {"Literal", "Sequence", "Union"}))
    runtime = sorted({"DEFAULT", "ActionNamespace"} | (names & {"Variables", "CommaList"}))
    title = f"``{family}`` family"
    return "\n".join([
        HEADER.format(versions=versions) + '"""' + "\n".join(textwrap.wrap(
            f"Typed methods for the {title}: " + ", ".join(a.name for a in actions) + ".", 100)) + '"""',
        "from __future__ import annotations", "",
        f"from typing import {', '.join(typing_names)}", "",
        "from .._protocol import HeaderValue",
        f"from ..catalog import {', '.join(runtime)}",
        "from ..packet import Response", "", "",
        f"class {class_name(family)}(ActionNamespace):",
        f'    """AMI actions of the {title} (generated)."""', "", source, ""])


def render_actions(families: List[str], count: int, versions: str) -> str:
    imports = [f"from .{f} import {class_name(f)}" for f in families]
    bases = "".join(f"    {class_name(f)},\n" for f in families)
    return (HEADER.format(versions=versions)
            + '"""The typed namespace of every AMI action (``client.actions``), one module per family."""\n'
            + "\n".join(imports) + '\n\n__all__ = ["Actions"]\n\n\n'
            + f"class Actions(\n{bases}):\n"
            + f'    """Every AMI action but {", ".join(MANAGED)} as a typed method ({count} methods).\n\n'
            + "    See :mod:`amiclient.catalog` for the naming rules, validation and version checks.\n"
            + '    """\n')


def render_init(versions: str) -> str:
    """The package: ``Actions`` is imported on first use, so validating an action loads none of the methods."""
    return (HEADER.format(versions=versions)
            + '"""The generated catalogue: ``Actions`` (``client.actions``), ``_data``, ``_headers``."""\n'
            + "from typing import TYPE_CHECKING, Any\n\n"
            + "if TYPE_CHECKING:\n"
            + "    from ._actions import Actions\n\n"
            + '__all__ = ["Actions"]\n\n\n'
            + "def __getattr__(name: str) -> Any:\n"
            + '    if name == "Actions":\n'
            + "        from ._actions import Actions\n"
            + "        return Actions\n"
            + '    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")\n')


def generate(catalog_dir: Path) -> Dict[str, str]:
    """File name -> content of every generated file."""
    c22, c13 = load(catalog_dir)
    versions = f"asterisk-22.json {c22['asterisk']}, asterisk-13.json {c13['asterisk']}"
    actions = merged_actions(c22, c13)
    public = [a for a in actions if a.name not in MANAGED]
    methods = [a.method for a in public]
    if len(set(methods)) != len(methods):
        raise SystemExit("two actions map to one method name")
    files = {"_data.py": render_data(c22, c13, actions, versions), "_headers.py": render_headers(
        actions, [*c22["events"], *c13["events"], *EXTRA_EVENTS], versions)}
    families = [f for f, _ in FAMILIES if any(a.family == f for a in public)]
    for family in families:
        files[f"{family}.py"] = render_family(family, [a for a in public if a.family == family], versions)
    files["_actions.py"] = render_actions(families, len(public), versions)
    files["__init__.py"] = render_init(versions)
    return files


def differences(files: Dict[str, str], out: Path) -> Iterator[str]:
    """Names of files in ``out`` that differ from ``files`` (or are missing or extra)."""
    present = {p.name for p in out.glob("*.py")} if out.is_dir() else set()
    for name in sorted(set(files) | present):
        path = out / name
        if name not in files or not path.is_file() or path.read_text(encoding="utf-8") != files[name]:
            yield name


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("catalog", nargs="?", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if out of date")
    args = parser.parse_args(argv)
    files = generate(args.catalog)
    stale = list(differences(files, args.out))
    if args.check:
        for name in stale:
            print(f"out of date: {args.out / name}", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        path = args.out / name
        if name in files:
            path.write_text(files[name], encoding="utf-8")
        else:
            path.unlink()
    print(f"{len(files)} files in {args.out}, {len(stale)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

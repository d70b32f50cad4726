"""``amiclient.testing`` is a tree: a server core that knows no action family, and families that plug into it.

The import graph is read from the sources (every ``from .x import`` and
``from . import x``, at any depth: function-level and ``TYPE_CHECKING``
imports count too), so a lazy import cannot hide a circle.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

import amiclient.testing
from amiclient import ActionError, AMIClient
from amiclient.testing import FakeAMIServer, Recorder, build_response
from amiclient.testing._core import ServerCore

PACKAGE = Path(amiclient.testing.__file__).resolve().parent
#: The server core and what it may import: transport, framing, events, faults, login, handler types.
CORE = "_core"
#: Modules that implement actions (or wrap the whole server): the core must not reach any of them.
FAMILIES = {"_actions", "_calls", "_queues", "_config_files", "_cli", "_cli_database", "_model",
            "_http", "_http_bridge", "_server"}


def import_graph() -> Dict[str, Set[str]]:
    """Module -> the sibling modules it imports (anywhere in the file)."""
    graph: Dict[str, Set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        deps: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    deps.add(node.module.split(".")[0])
                elif node.level == 1:
                    deps.update(alias.name for alias in node.names)
                elif node.level == 0 and (node.module or "").startswith("amiclient.testing."):
                    deps.add((node.module or "").split(".")[2])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[2] for a in node.names if a.name.startswith("amiclient.testing."))
        graph[path.stem] = deps - {path.stem}
    return graph


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    cycles: List[List[str]] = []
    state: Dict[str, int] = {}

    def visit(node: str, stack: List[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def reachable(graph: Dict[str, Set[str]], start: str) -> Set[str]:
    seen: Set[str] = set()
    todo = [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_graph_reader_sees_every_import_form() -> None:
    source = (
        "from __future__ import annotations\nfrom typing import TYPE_CHECKING\nfrom . import _a\n"
        "from ._b import x\nimport amiclient.testing._c\nif TYPE_CHECKING:\n    from ._d import y\n"
        "def f():\n    from ._e import z\n"
    )
    deps: Set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            deps.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            deps.update(a.name.split(".")[2] for a in node.names if a.name.startswith("amiclient.testing."))
    assert deps == {"_a", "_b", "_c", "_d", "_e"}
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert CORE in graph and "_server" in graph
    assert find_cycles(graph) == []


def test_server_core_imports_no_action_family() -> None:
    graph = import_graph()
    assert reachable(graph, CORE) & FAMILIES == set()
    assert reachable(graph, "_session") & FAMILIES == set()
    # every family reaches the core's pieces, never the composed server
    for family in FAMILIES - {"_server", "_http", "_http_bridge"}:
        assert "_server" not in reachable(graph, family), family


def test_every_module_is_under_600_lines() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n >= 600} == {}


def test_bare_core_logs_in_and_knows_no_family_action() -> None:
    with ServerCore(users={"admin": "secret"}) as core:
        with AMIClient("127.0.0.1", core.port, "admin", "secret", timeout=5) as client:
            assert client.ping().ok
            with pytest.raises(ActionError, match="Invalid/unknown command"):
                client.action("Command", Command="core show version")
            names = {spec.name for spec in core.action_specs()}
            assert "Login" in names and "Command" not in names and "Originate" not in names


def test_a_family_plugs_into_the_core() -> None:
    seen = Recorder()

    def act_greet(session, packet):  # type: ignore[no-untyped-def]
        session.emit("Greeted", Who=packet.get("Who", ""))
        return build_response(packet, "Hello %s" % packet.get("Who", ""))

    with ServerCore(users={"admin": "secret"}) as core:
        core.register_actions([("Greet", act_greet, "user", "Say hello.")])
        with AMIClient("127.0.0.1", core.port, "admin", "secret", timeout=5) as client:
            client.add_listener(seen, event="Greeted")
            assert client.action("Greet", Who="Bob")["Message"] == "Hello Bob"
            assert seen.wait_for(1)[0]["Who"] == "Bob"
            assert "Greet" in client.action("ListCommands")


def test_fake_server_is_the_core_with_every_family() -> None:
    server = FakeAMIServer()
    assert isinstance(server, ServerCore)
    names = {spec.name for spec in server.action_specs()}
    for action in ("Login", "DBPut", "Originate", "QueueStatus", "GetConfig", "Command", "BridgeList"):
        assert action in names

"""Every ``.. code-block:: python`` in README.rst (and docs/*.rst) runs against a fake Asterisk, so none goes stale.

How it works (and the conventions README and docs authors follow):

* Each block runs with ``exec`` in a fresh namespace, in file order, while a
  ``FakeAMIServer`` (and a ``FakeAJAMServer`` in front of it) listen on
  loopback.  ``socket.create_connection`` is patched so that the README's
  made-up server reaches the fakes: host ``pbx.example.com`` (or ``pbx``),
  port 5038 is the AMI fake, port 8088 the HTTP (AJAM) fake.  Write examples
  against those names, with user ``admin`` and secret ``secret``; the
  ``AMI_*`` environment variables point there too (for ``shared_client()``).
* The fake starts with a small prepared world (see ``prepare``): an AstDB
  entry ``cidname/5551234``, the ``support`` queue, ``security_events``
  on (each login queues a ``SuccessfulAuth`` event, so ``wait_event`` answers
  at once), calls that stay up until hung up (``hold_calls``), and an
  ``AbsoluteTimeout`` handler (as Asterisk answers it).  A block that needs more state adds it here, not in the README.
* Opt-outs are RST comments (invisible when rendered) on the line(s) right
  above the block:

  - ``.. readme-test: skip <reason>``: compiled (syntax is still checked) but
    not run, e.g. a Django ``settings.py`` excerpt or a real TLS certificate.
  - ``.. readme-test: continue``: runs in the previous block's namespace (a
    recipe split into several blocks), right after it.

* A block passes when it runs to the end without an exception; blocks use
  ``assert`` for what they promise.  ``print`` output is captured by pytest.
  Logging configuration a block sets on the ``amiclient`` loggers is undone
  after it.
* Blocks in other languages (``console``, ``ini``, ``text``, ``::``) are not run.
"""
from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from amiclient.shared import close_shared_client
from amiclient.testing import FakeAJAMServer, FakeAMIServer, build_response

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"
DOCS = sorted((ROOT / "docs").glob("*.rst"))
HOSTS = {"pbx.example.com", "pbx"}
AMI_PORT, HTTP_PORT = 5038, 8088
DIRECTIVE = re.compile(r"^\.\. readme-test:\s*(skip|continue)\b\s*(.*)$")


@dataclass
class Block:
    line: int  # 1-based line of the code-block directive
    source: str
    file: str = "README.rst"
    skip: Optional[str] = None
    continues: bool = False
    chain: List[Block] = field(default_factory=list)  # earlier blocks this one continues, in order


def extract_blocks(text: str, file: str = "README.rst") -> List[Block]:
    """The python code blocks of an RST document, with their readme-test directives."""
    lines = text.splitlines()
    blocks: List[Block] = []
    i = 0
    while i < len(lines):
        if re.match(r"^\s*\.\. code-block::\s*(python|py|python3)\s*$", lines[i]):
            start = i
            indent = len(lines[i]) - len(lines[i].lstrip())
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith(":")) and \
                    (len(lines[i]) - len(lines[i].lstrip()) > indent or not lines[i].strip()):
                i += 1  # blank lines and options (:caption: ...)
            body: List[str] = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                body.append(lines[i])
                i += 1
            block = Block(start + 1, _dedent(body), file)
            j = start - 1
            while j >= 0 and (not lines[j].strip() or DIRECTIVE.match(lines[j].strip())):
                found = DIRECTIVE.match(lines[j].strip())
                if found and found.group(1) == "skip":
                    block.skip = found.group(2) or "marked skip"
                elif found:
                    block.continues = True
                j -= 1
            if block.continues and blocks:
                block.chain = blocks[-1].chain + [blocks[-1]]
            blocks.append(block)
        else:
            i += 1
    return blocks


def _dedent(body: List[str]) -> str:
    while body and not body[-1].strip():
        body.pop()
    width = min((len(line) - len(line.lstrip()) for line in body if line.strip()), default=0)
    return "\n".join(line[width:] for line in body) + "\n"


README_BLOCKS = extract_blocks(README.read_text(encoding="utf-8"))
BLOCKS = README_BLOCKS + [block for page in DOCS
                          for block in extract_blocks(page.read_text(encoding="utf-8"), f"docs/{page.name}")]
IDS = [f"{b.file}:{b.line}" for b in BLOCKS]


def prepare(server: FakeAMIServer) -> None:
    """The world README examples assume (document new entries in the module docstring)."""
    with server.lock:
        server.db[("cidname", "5551234")] = "Alice Example"
        server.hold_calls = True

    def absolute_timeout(session: Any, packet: Any) -> Any:
        if session.server.calls.find(packet.get("Channel", "")) is None:
            return build_response(packet, "No such channel", "Error")
        return build_response(packet, "Timeout Set")

    server.add_handler("AbsoluteTimeout", absolute_timeout)


@pytest.fixture
def fake_pbx(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAMIServer]:
    with FakeAMIServer(users={"admin": "secret"}, security_events=True) as server, FakeAJAMServer(server) as ajam:
        prepare(server)
        targets: Dict[int, Tuple[str, int]] = {AMI_PORT: ("127.0.0.1", server.port),
                                               HTTP_PORT: ("127.0.0.1", ajam.port)}
        real = socket.create_connection

        def create_connection(address: Tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            host, port = address[0], int(address[1])
            if host in HOSTS:
                if port not in targets:
                    raise AssertionError(f"README example connects to {host}:{port}: no fake listens there")
                address = targets[port]
            return real(address, *args, **kwargs)

        monkeypatch.setattr(socket, "create_connection", create_connection)
        for name, value in {"AMI_HOST": "pbx.example.com", "AMI_PORT": str(AMI_PORT), "AMI_USER": "admin",
                            "AMI_SECRET": "secret"}.items():
            monkeypatch.setenv(name, value)
        package_logger = logging.getLogger("amiclient")
        saved = [(lg, lg.level, lg.propagate, list(lg.handlers), lg.disabled) for lg in
                 [package_logger] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
                                     if n.startswith("amiclient.")]]
        try:
            yield server
        finally:
            close_shared_client()
            for lg, level, propagate, handlers, disabled in saved:
                lg.setLevel(level)
                lg.propagate, lg.handlers[:], lg.disabled = propagate, handlers, disabled


def test_readme_has_python_blocks() -> None:
    assert len(README_BLOCKS) >= 3, "the README's code blocks were not found: has the directive changed?"


@pytest.mark.parametrize("block", BLOCKS, ids=IDS)
def test_block_compiles(block: Block) -> None:
    compile(block.source, f"{block.file}:{block.line}", "exec")


@pytest.mark.parametrize("block", BLOCKS, ids=IDS)
def test_block_runs(block: Block, fake_pbx: FakeAMIServer) -> None:
    if block.skip is not None:
        pytest.skip(f"{block.file}:{block.line}: {block.skip}")
    namespace: Dict[str, Any] = {"__name__": "readme"}
    for part in block.chain + [block]:
        exec(compile(part.source, f"{part.file}:{part.line}", "exec"), namespace)


def test_extract_blocks_conventions() -> None:
    text = (
        "Title\n=====\n\n.. code-block:: python\n\n    a = 1\n\n    b = a + 1\n\ntext\n\n"
        ".. readme-test: continue\n\n.. code-block:: python\n\n    assert b == 2\n\n"
        ".. readme-test: skip Django settings excerpt\n\n.. code-block:: python\n\n    AMI = {}\n\n"
        "::\n\n    shell command, not python\n"
    )
    first, second, third = extract_blocks(text)
    assert first.source == "a = 1\n\nb = a + 1\n" and first.line == 4
    assert second.continues and second.chain == [first] and second.skip is None
    assert third.skip == "Django settings excerpt" and not third.continues

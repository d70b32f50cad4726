"""Fail when a public name has no entry in the built API reference.

    python docs/check_api.py docs/_build/html

Public names: ``__all__`` of ``amiclient`` and of every module of the package
whose name has no leading underscore.  A name re-exported by ``amiclient`` may
be documented there instead of in its own module.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import List, Set

from sphinx.util.inventory import InventoryFile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def documented(build_dir: Path) -> Set[str]:
    with open(build_dir / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", lambda base, uri: uri)
    return {name for kind, entries in inventory.items() if kind.startswith("py:") for name in entries}


def public_modules() -> List[str]:
    import amiclient

    names = ["amiclient"]
    for info in pkgutil.walk_packages(amiclient.__path__, "amiclient."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def main(argv: List[str]) -> int:
    have = documented(Path(argv[1] if len(argv) > 1 else "docs/_build/html"))
    top = set(getattr(importlib.import_module("amiclient"), "__all__", []))
    missing = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        if f"{module_name}" not in have:
            missing.append(f"{module_name} (module)")
        for name in getattr(module, "__all__", []):
            if name.startswith("__"):
                continue
            if f"{module_name}.{name}" in have or (name in top and f"amiclient.{name}" in have):
                continue
            missing.append(f"{module_name}.{name}")
    for name in missing:
        print(f"not in the API reference: {name}")
    print(f"API reference: {len(missing)} public names missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

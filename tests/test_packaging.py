"""Packaging promises: one version, only typing-extensions at run time, web frameworks for tests only."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

import amiclient
from amiclient._version import __version__

ROOT = Path(__file__).resolve().parent.parent


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config


def test_version_is_written_in_one_place() -> None:
    assert setup_cfg()["metadata"]["version"].strip() == "attr: amiclient._version.__version__"
    assert amiclient.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", __version__)
    assigned = [path.relative_to(ROOT).as_posix() for path in (ROOT / "amiclient").rglob("*.py")
                if re.search(r"^__version__\s*=", path.read_text(encoding="utf-8"), re.M)]
    assert assigned == ["amiclient/_version.py"]


def test_changelog_has_an_entry_for_the_version() -> None:
    assert re.search(rf"^{re.escape(__version__)}\b", (ROOT / "CHANGELOG.rst").read_text(encoding="utf-8"), re.M)


def test_runtime_dependencies_are_typing_extensions_only() -> None:
    options = setup_cfg()["options"]
    requires = [line.strip() for line in options["install_requires"].splitlines() if line.strip()]
    assert [re.split(r"[<>=!~ ;\[]", r)[0].lower() for r in requires] == ["typing-extensions"]
    test_extra = setup_cfg()["options.extras_require"]["test"]
    for framework in ("flask", "django", "gunicorn"):
        assert framework in test_extra


def test_classifiers_cover_every_supported_python() -> None:
    metadata = setup_cfg()["metadata"]
    assert setup_cfg()["options"]["python_requires"].strip() == ">=3.9"
    for minor in range(9, 14):
        assert f"Programming Language :: Python :: 3.{minor}" in metadata["classifiers"]

"""Sphinx configuration: ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors in CI)."""
from __future__ import annotations

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from amiclient._version import __version__  # noqa: E402  (needs the path above)

project = "amiclient"
author = "The amiclient authors"
copyright = "2026, The amiclient authors"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build"]
default_role = "code"  # `x` renders as inline code, as ``x`` does

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_preserve_defaults = True
# ``Event`` is both amiclient.Event and amiclient.testing.Event (re-exported): an annotation in a
# helpers module would otherwise be an "ambiguous reference" warning; the first target is right.
suppress_warnings = ["ref.python"]

# Intersphinx needs the network; CI builds offline, so links to the stdlib stay plain text.
intersphinx_mapping: dict = {}
if os.environ.get("AMICLIENT_DOCS_INTERSPHINX"):
    intersphinx_mapping["python"] = ("https://docs.python.org/3", None)

html_theme = "alabaster"
html_title = f"amiclient {release}"
html_static_path: list = []

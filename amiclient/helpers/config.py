"""Configuration files and modules: GetConfig, UpdateConfig with typed edits, Reload, Module*."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

from ..exceptions import ActionError
from ..packet import Response
from ._base import DEFAULT, HelperHost

if TYPE_CHECKING:  # pragma: no cover
    from .._protocol import HeaderValue

__all__ = ["Append", "ConfigEdit", "ConfigHelpers", "DelCat", "Delete", "EmptyCat", "Insert", "NewCat", "RenameCat",
           "Update"]


# Asterisk writes edits into the file as ``[category](templates)`` and ``var = value`` lines and reads
# them back with its config parser: names holding that syntax would change the file's structure (a
# category name ``x](admin)`` makes ``x`` inherit the template ``admin``), so they are refused.
_BAD_CATEGORY = re.compile(r"[\[\]]")
_BAD_TEMPLATE = re.compile(r'[\[\](),|="\\;]')
_BAD_VARIABLE = re.compile(r"[\[\]=;]|\A[#(]")


def _checked(value: Any, what: str, bad: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip() or bad.search(value):
        raise ValueError(f"invalid {what} {value!r}: it must be non-empty, without blanks at either end and "
                         f"without {rule} (Asterisk's config parser would read it differently)")
    return value


def _category(value: Any, what: str) -> str:
    return _checked(value, what, _BAD_CATEGORY, "[ ]")


def _template(value: Any) -> str:
    return _checked(value, "template name", _BAD_TEMPLATE, '[ ] ( ) , | = " \\ ;')


def _variable(value: Any) -> str:
    return _checked(value, "variable name", _BAD_VARIABLE, "[ ] = ; or a leading # or (")


@dataclass(frozen=True)
class NewCat:
    """Create ``category`` (``template=True``: a template; ``inherit``: templates it uses; before ``before``)."""

    category: str
    template: bool = False
    inherit: Sequence[str] = ()
    before: Optional[str] = None

    def headers(self) -> Dict[str, HeaderValue]:
        inherit = [_template(name) for name in ([self.inherit] if isinstance(self.inherit, str) else self.inherit)]
        options = (["template"] if self.template else []) + ([f"inherit={'|'.join(inherit)}"] if inherit else [])
        return {"Action": "NewCat", "Cat": _category(self.category, "category"), "Options": ",".join(options) or None,
                "Match": self.before}


@dataclass(frozen=True)
class RenameCat:
    """Rename ``category`` to ``new_name``."""

    category: str
    new_name: str

    def headers(self) -> Dict[str, HeaderValue]:
        return {"Action": "RenameCat", "Cat": self.category, "Value": _category(self.new_name, "new_name")}


@dataclass(frozen=True)
class DelCat:
    """Delete ``category`` and its lines."""

    category: str

    def headers(self) -> Dict[str, HeaderValue]:
        return {"Action": "DelCat", "Cat": self.category}


@dataclass(frozen=True)
class EmptyCat:
    """Remove every line of ``category``, keep the category."""

    category: str

    def headers(self) -> Dict[str, HeaderValue]:
        return {"Action": "EmptyCat", "Cat": self.category}


@dataclass(frozen=True)
class Update:
    """Set ``var`` to ``value`` in ``category`` (only where its value is ``match``, if given)."""

    category: str
    var: str
    value: str
    match: Optional[str] = None

    def headers(self) -> Dict[str, HeaderValue]:
        return {"Action": "Update", "Cat": self.category, "Var": self.var, "Value": self.value, "Match": self.match}


@dataclass(frozen=True)
class Delete:
    """Delete ``var`` from ``category`` (only where its value is ``match``, if given)."""

    category: str
    var: str
    match: Optional[str] = None

    def headers(self) -> Dict[str, HeaderValue]:
        return {"Action": "Delete", "Cat": self.category, "Var": self.var, "Match": self.match}


@dataclass(frozen=True)
class Append:
    """Add ``var = value`` at the end of ``category`` (``object=True``: ``var => value``)."""

    category: str
    var: str
    value: str
    object: bool = False

    def headers(self) -> Dict[str, HeaderValue]:
        return {"Action": "Append", "Cat": self.category, "Var": _variable(self.var), "Value": self.value,
                "Options": "object" if self.object else None}


@dataclass(frozen=True)
class Insert:
    """Insert ``var = value`` in ``category`` before line number ``line`` (0 = first)."""

    category: str
    var: str
    value: str
    line: int

    def headers(self) -> Dict[str, HeaderValue]:
        return {"Action": "Insert", "Cat": self.category, "Var": _variable(self.var), "Value": self.value,
                "Line": self.line}


ConfigEdit = Union[NewCat, RenameCat, DelCat, EmptyCat, Update, Delete, Append, Insert]
_CATEGORY = re.compile(r"Category-(\d{6})\Z", re.IGNORECASE)
_LINE = re.compile(r"Line-(\d{6})-(\d{6})\Z", re.IGNORECASE)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    return value


class ConfigHelpers(HelperHost):
    """Read and edit configuration files; load, check and reload modules."""

    def get_config(self, filename: str, category: Optional[str] = None, *, timeout: Any = DEFAULT
                   ) -> Dict[str, List[Tuple[str, str]]]:
        """The categories of ``filename`` in file order: ``{category: [(key, value), ...]}``.

        A category that appears twice in the file has its lines merged.
        """
        response = self._call("GetConfig", {"Filename": _name(filename, "filename"), "Category": category}, timeout)
        names: Dict[str, str] = {}
        result: Dict[str, List[Tuple[str, str]]] = {}
        for key, value in response.items_all():
            match = _CATEGORY.match(key)
            if match:
                names[match.group(1)] = value
                result.setdefault(value, [])
                continue
            match = _LINE.match(key)
            if match and match.group(1) in names:
                var, _, val = value.partition("=")
                result[names[match.group(1)]].append((var, val))
        return result

    def update_config(self, filename: str, edits: Sequence[ConfigEdit], *, dst_filename: Optional[str] = None,
                      reload: Union[bool, str, None] = None, timeout: Any = DEFAULT) -> Response:
        """Apply ``edits`` (NewCat, RenameCat, DelCat, EmptyCat, Update, Delete, Append, Insert) in order.

        Writes ``dst_filename`` (default: the same file); ``reload``: True to
        reload the module that owns it, or a module name.
        """
        if not edits:
            raise ValueError("update_config needs at least one edit")
        fields: Dict[str, HeaderValue] = {"SrcFilename": _name(filename, "filename"),
                                            "DstFilename": _name(dst_filename or filename, "dst_filename")}
        if reload is not None:
            fields["Reload"] = ("yes" if reload else "no") if isinstance(reload, bool) else reload
        for index, edit in enumerate(edits):
            if not hasattr(edit, "headers"):
                raise ValueError(f"not a config edit: {edit!r}")
            for key, value in edit.headers().items():
                if value is not None:
                    fields[f"{key}-{index:06d}"] = value
        return self._call("UpdateConfig", fields, timeout)

    def reload(self, module: Optional[str] = None, *, timeout: Any = DEFAULT) -> Response:
        """``Reload`` one module, or every module when ``module`` is None."""
        return self._call("Reload", {"Module": module}, timeout)

    def module_check(self, module: str, *, timeout: Any = DEFAULT) -> bool:
        """Whether ``module`` (``chan_pjsip`` or ``chan_pjsip.so``) is loaded (``ModuleCheck``)."""
        try:
            self._call("ModuleCheck", {"Module": _name(module, "module")}, timeout)
        except ActionError as exc:
            if "not loaded" in (exc.response.message or "").lower():
                return False
            raise
        return True

    def module_load(self, module: Optional[str], load_type: str = "load", *, timeout: Any = DEFAULT) -> Response:
        """Load, unload or reload a module (``ModuleLoad``); ``reload`` with module None reloads all."""
        if load_type not in ("load", "unload", "reload"):
            raise ValueError(f"load_type must be 'load', 'unload' or 'reload', not {load_type!r}")
        if module is None and load_type != "reload":
            raise ValueError(f"{load_type} needs a module name")
        return self._call("ModuleLoad", {"Module": module, "LoadType": load_type}, timeout)

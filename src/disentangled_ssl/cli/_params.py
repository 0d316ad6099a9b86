"""An estimator's constructor parameters as command-line flags and as config-file keys, both
generated from one description: ``inspect.signature(cls.__init__)`` (names, defaults), its
type annotations (flag types) and the ``Args:`` section of the class docstring (help).

Supported annotations: ``bool`` (``--flag/--no-flag``), ``int``, ``float``, ``str`` and each of
them ``| None`` (``none`` on the command line, ``null`` in JSON, an omitted key in TOML). Any
other parameter must be listed as excluded, with the reason; otherwise building the parser
fails, naming it, so a new parameter can never silently miss the command line.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from disentangled_ssl._errors import DSSLError

_SCALARS: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number",
                             str: "a string"}
_METAVARS: dict[type, str] = {int: "INT", float: "FLOAT", str: "TEXT"}
_NONE_WORDS = ("none", "None", "null")


@dataclass(frozen=True)
class Param:
    """One constructor parameter: its name, scalar type, whether None is allowed, its default
    and its help text (from the docstring)."""

    name: str
    kind: type
    optional: bool
    default: Any
    help: str

    @property
    def flag(self) -> str:
        """``shared_epochs`` -> ``--shared-epochs``."""
        return "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """What a value must be, for error messages: ``an integer or null``."""
        return _SCALARS[self.kind] + (" or null" if self.optional else "")


def _scalar_type(name: str, annotation: Any) -> tuple[type, bool]:
    """``int | None`` -> ``(int, True)``; refuses anything but the supported scalars."""
    args = typing.get_args(annotation)
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    optional = is_union and type(None) in args
    rest = [a for a in args if a is not type(None)] if optional else [annotation]
    if len(rest) != 1 or rest[0] not in _SCALARS:
        shown = annotation.__name__ if isinstance(annotation, type) else str(annotation)
        raise TypeError(f"parameter {name!r} has type {shown}, which is not a command-line "
                        f"type; support it or add it to the excluded parameters")
    return rest[0], optional


def docstring_args(doc: str) -> dict[str, str]:
    """The ``Args:`` section of a Google-style docstring: name -> one-paragraph text (an entry
    ``a, b: text`` documents both ``a`` and ``b``)."""
    entries: dict[str, str] = {}
    names: list[str] = []
    in_args = False
    for line in inspect.cleandoc(doc).splitlines():
        if line.strip() == "Args:":
            in_args = True
        elif in_args and line and not line.startswith(" "):
            break  # the next section
        elif in_args and (m := re.match(r"^ {4}([\w, ]+): ?(.*)$", line)):
            names = [n.strip() for n in m.group(1).split(",")]
            entries.update({n: m.group(2) for n in names})
        elif in_args and line.strip() and names:
            entries.update({n: entries[n] + " " + line.strip() for n in names})
    return entries


def estimator_params(cls: type, excluded: Mapping[str, str]) -> list[Param]:
    """Every parameter of ``cls.__init__`` but ``excluded``, in signature order."""
    hints = typing.get_type_hints(cls.__init__)
    helps = docstring_args(inspect.getdoc(cls) or "")
    params = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in excluded:
            continue
        kind, optional = _scalar_type(name, hints.get(name, Any))
        params.append(Param(name, kind, optional, p.default, helps.get(name, "")))
    return params


def _converter(param: Param) -> Callable[[str], Any]:
    """An argparse ``type`` for ``param`` (``none`` gives None when it is optional)."""

    def convert(text: str) -> Any:
        if param.optional and text in _NONE_WORDS:
            return None
        try:
            return param.kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected {param.describe()}, got {text!r}"
                                             ) from exc

    convert.__name__ = param.kind.__name__  # argparse names it in "invalid int value"
    return convert


def _help(param: Param, default: Any) -> str:
    """The docstring text with the default, ``%`` escaped for argparse."""
    text = re.sub(r"``([^`]*)``", r"'\1'", param.help).replace("%", "%%")
    return f"{text} (default: {default})".strip()


def add_param_flags(parser: argparse.ArgumentParser | Any, params: list[Param], *,
                    aliases: Mapping[str, tuple[str, ...]],
                    defaults: Mapping[str, Any]) -> None:
    """One flag per parameter (plus ``aliases``); a flag not given leaves no attribute on the
    namespace (``argparse.SUPPRESS``), so :func:`given_params` tells given from default."""
    for param in params:
        flags = (param.flag, *aliases.get(param.name, ()))
        default = defaults.get(param.name, param.default)
        if param.kind is bool:
            parser.add_argument(*flags, dest=param.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=_help(param, default))
        else:
            parser.add_argument(*flags, dest=param.name, type=_converter(param),
                                default=argparse.SUPPRESS, metavar=_METAVARS[param.kind],
                                help=_help(param, default))


def given_params(args: argparse.Namespace, params: list[Param]) -> dict[str, Any]:
    """The parameters given as flags on the command line."""
    return {p.name: getattr(args, p.name) for p in params if hasattr(args, p.name)}


def _toml_module(path: Path) -> types.ModuleType:
    """``tomllib`` (Python >= 3.11) or its backport ``tomli``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise DSSLError(f"reading {path} needs Python >= 3.11 or `pip install tomli`; or "
                            "write the config as .json") from None
    return tomllib


def _read_mapping(path: Path) -> Any:
    """The parsed content of a .toml or .json file."""
    if not path.is_file():
        raise DSSLError(f"config file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise DSSLError(f"config file {path} must end in .toml or .json")
    toml = _toml_module(path) if suffix == ".toml" else None
    try:
        if toml is not None:
            return toml.loads(path.read_text(encoding="utf-8"))
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # TOMLDecodeError, JSONDecodeError, UnicodeDecodeError
        raise DSSLError(f"{path} is not valid {suffix[1:].upper()}: {exc}") from exc


def _unknown_keys_error(path: Path, unknown: list[str], known: Mapping[str, str]) -> DSSLError:
    """``unknown`` keys, each with its close matches among ``known`` (candidate -> key)."""
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(known), n=3)
        matches = list(dict.fromkeys(known[c] for c in close))
        hint = f" (did you mean {' or '.join(repr(m) for m in matches)}?)" if matches else ""
        parts.append(f"{key!r}{hint}")
    noun = "key" if len(unknown) == 1 else "keys"
    return DSSLError(f"{path}: unknown {noun} {', '.join(parts)}; the keys are the parameter "
                     f"names of `dssl fit --help` with underscores, e.g. shared_epochs")


def _checked_value(path: Path, param: Param, value: Any) -> Any:
    """``value`` if it has ``param``'s type (an integer counts as a number)."""
    ok = (value is None and param.optional) or (
        isinstance(value, param.kind) and (param.kind is bool or not isinstance(value, bool))
    ) or (param.kind is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise DSSLError(f"{path}: {param.name!r} must be {param.describe()}, got {value!r} "
                        f"({type(value).__name__})")
    return float(value) if param.kind is float and value is not None else value


def read_config(path: str | Path, params: list[Param], *, excluded: Mapping[str, str],
                aliases: Mapping[str, tuple[str, ...]],
                special: Mapping[str, Callable[[Any], Any]] | None = None) -> dict[str, Any]:
    """The parameters in a .toml or .json config file, type-checked; ``special`` keys (a
    parameter that is not a scalar flag, e.g. ``modalities``) are parsed by their function.

    Raises:
        DSSLError: a missing or unparsable file, unknown keys (with close matches, a flag
            alias pointing to its parameter), excluded parameters (with the reason) or a
            value of the wrong type (naming the key).
    """
    path = Path(path)
    content = _read_mapping(path)
    if not isinstance(content, dict):
        raise DSSLError(f"{path}: expected a table of parameter names to values, got "
                        f"{type(content).__name__}")
    by_name = {p.name: p for p in params}
    special = dict(special or {})
    parsed = {k: special[k](v) for k, v in content.items() if k in special}
    content = {k: v for k, v in content.items() if k not in special}
    for key in content:
        if key in excluded:
            raise DSSLError(f"{path}: {key!r} cannot be set from a config file: "
                            f"{excluded[key]}")
    unknown = [k for k in content if k not in by_name]
    if unknown:
        known = {name: name for name in by_name}
        known.update({a.lstrip("-").replace("-", "_"): name
                      for name, flags in aliases.items() for a in flags})
        raise _unknown_keys_error(path, unknown, known)
    return {**{k: _checked_value(path, by_name[k], v) for k, v in content.items()}, **parsed}

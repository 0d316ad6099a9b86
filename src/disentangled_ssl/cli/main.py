"""The top ``dssl`` parser, dispatch to the subcommands, and the one-line error and warning
output.

Each module in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its parsers
and sets ``func`` (a callable taking the parsed args and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TextIO

from disentangled_ssl._errors import DSSLError, PerformanceWarning, TrainingDivergedError
from disentangled_ssl._version import __version__

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: The subcommand modules, in the order their commands are listed by ``dssl --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "disentangled_ssl.cli.fit",
    "disentangled_ssl.cli.reproduce",
    "disentangled_ssl.cli.compare",
    "disentangled_ssl.cli.sweep",
    "disentangled_ssl.cli.benchmark",
    "disentangled_ssl.cli.counterfactual",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``dssl`` parser with every subcommand of :data:`COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(
        prog="dssl", description="DisentangledSSL: shared and modality-specific representations "
        "of paired multimodal data (Wang et al., ICLR 2025).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def _warning_printer() -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints each distinct library warning once, as one
    ``dssl: warning: ...`` line (no source location)."""
    seen: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = str(message)
        if text not in seen:
            seen.add(text)
            print(f"dssl: warning: {text}", file=sys.stderr if file is None else file)

    return show


def _run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand with library warnings printed as ``dssl: warning:`` lines."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", PerformanceWarning)  # deduplicated per run
        warnings.showwarning = _warning_printer()
        return int(args.func(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dssl``; returns the exit code (2 and one ``dssl: error:`` line on bad
    input)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    # OSError: unwritable or clashing output paths, full disks (FileNotFoundError and
    # PermissionError included).
    except (DSSLError, TrainingDivergedError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"dssl: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dssl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

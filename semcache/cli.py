"""The ``semcache`` command line: subcommands registered from one table.

Each entry of ``COMMANDS`` is a function that imports its subcommand's module and calls
its ``add_parser(subparsers)``, which adds the subcommand and sets ``func`` (called with
the parsed namespace, returning an exit code). Register functions keep their imports
light and import heavy things inside ``func``, so building the parser stays cheap.

This module is the composition root: the one module outside ``proxy/`` and ``eval/``
that imports them, with plain import statements (no module names in strings), so the
import contract (``.importlinter``, checked by ``tests/test_import_contract.py``) sees
them and allows exactly these imports; the core (``_cache.py``, ``_calls/``, ...) never
imports the proxy or the evaluation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._errors import SemcacheError

__all__ = ["COMMANDS", "build_parser", "main"]


def _demo(subparsers: Any) -> None:
    from ._demo import add_parser

    add_parser(subparsers)


def _serve(subparsers: Any) -> None:
    from .proxy.cli import add_parser

    add_parser(subparsers)


def _eval(subparsers: Any) -> None:
    from .eval._cli import add_parser

    add_parser(subparsers)


#: subcommand name -> the function that registers it (in ``semcache --help`` order)
COMMANDS: dict[str, Callable[[Any], None]] = {"demo": _demo, "serve": _serve, "eval": _eval}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semcache", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS.values():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SemcacheError as exc:  # the user's to fix (bad file, bad parameter): no traceback
        print(f"semcache: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

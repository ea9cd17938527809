"""The ``semcache`` command line: subcommands registered from one table.

Each module in ``COMMANDS`` has ``add_parser(subparsers)``, which adds its subcommand and
sets ``func`` (called with the parsed namespace, returning an exit code). Register
functions keep their imports light and import heavy things inside ``func``, so building
the parser stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._errors import SemcacheError

#: subcommand modules; each has ``add_parser(subparsers)`` setting ``func``
COMMANDS = ("semcache._demo", "semcache.proxy.cli", "semcache.eval._cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semcache", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(sub)
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

"""The ``semcache`` command line.

Subcommands come from one table, ``COMMANDS``: name -> ("module:function", help). The
function receives the subcommand's ``argparse`` parser, adds its arguments and sets
``func`` (called with the parsed namespace, returning an exit code). Modules are imported
when the parser is built, so a register function must keep its own imports light and
import heavy things inside ``func``. Adding ``semcache demo`` is one row here plus its
register function.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._errors import SemcacheError

__all__ = ["main", "COMMANDS", "build_parser"]

COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("semcache.eval._cli:register",
             "measure thresholds and caches on labeled data (pairs, replay, multiturn)"),
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="semcache", description="semcache: a semantic cache for LLM responses")
    parser.add_argument("--version", action="version", version=f"semcache {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (target, help_) in COMMANDS.items():
        module, _, attr = target.partition(":")
        register = getattr(importlib.import_module(module), attr)
        register(sub.add_parser(name, help=help_, description=help_))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SemcacheError as exc:  # our errors are the user's to fix: no traceback
        print(f"semcache: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

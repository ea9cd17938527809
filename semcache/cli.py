"""The ``semcache`` command: subcommands registered from a table.

Each entry names a module with ``add_parser(subparsers)`` (which sets ``func``) and
``run(args)``; the module is imported only when the CLI starts.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["main"]

#: subcommand modules, in help order
COMMANDS = ("semcache.proxy.cli",)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="semcache", description="semantic cache for LLM responses")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

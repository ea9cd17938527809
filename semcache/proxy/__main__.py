"""``python -m semcache.proxy --config config.yaml``: the same as ``semcache serve``."""

from __future__ import annotations

import argparse

from .cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m semcache.proxy",
                                description="OpenAI-compatible caching proxy")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

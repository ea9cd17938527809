"""A progress bar on stderr for long runs: tqdm when installed, shown only on a TTY."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["progress"]


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "",
             enabled: bool | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``items`` in a tqdm bar on stderr. ``enabled=None`` shows it only when stderr
    is a terminal (so logs and CI output stay clean); ``False`` never shows it."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return iter(items)
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety; the eval extra brings it
        return iter(items)
    kw: dict[str, Any] = {"total": total, "desc": desc, "unit": unit, "file": sys.stderr,
                          "leave": False, "dynamic_ncols": True}
    return iter(tqdm(items, **kw))

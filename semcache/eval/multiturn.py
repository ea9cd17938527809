"""``multiturn``: does a follow-up ("What are its types?") hit across conversations?

Each conversation (main query, its answer, a follow-up) is streamed through a fresh cache
in order: look the follow-up up, store it on a miss. Conversations are distinct (exact
duplicates of main query + follow-up are dropped), so any hit serves another
conversation's answer: a false hit by construction.

Two modes, to show what scoping buys:

- ``scoped``: the request is the whole conversation; with the default
  ``semantic_query="last_user"`` only the follow-up is embedded and the earlier turns go
  into the context key, so a follow-up can only match under the same earlier turns.
- ``off``: only the follow-up text, as a single-turn request: what a cache that embeds
  the last message and ignores the rest sees.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._cache import Cache
from ._data import Conversation
from ._report import write_json
from .replay import DEFAULT_MODEL, Probe, ReplayReport, replay

__all__ = ["MODES", "MultiturnReport", "conversation_probes", "evaluate_multiturn"]

MODES = ("scoped", "off")


def _dedupe(conversations: Sequence[Conversation]) -> list[Conversation]:
    seen: dict[tuple[str, str], Conversation] = {}
    for c in conversations:
        seen.setdefault((c.query, c.follow_up), c)
    return list(seen.values())


def conversation_probes(conversations: Sequence[Conversation], mode: str) -> list[Probe]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    probes = []
    for i, c in enumerate(_dedupe(conversations)):
        if mode == "scoped":
            msgs = [{"role": "user", "content": c.query},
                    {"role": "assistant", "content": c.response},
                    {"role": "user", "content": c.follow_up}]
        else:
            msgs = [{"role": "user", "content": c.follow_up}]
        # label=True: a hit on its own entry would be right, but there is none before
        # it, so every hit is a cross hit
        probes.append(Probe(msgs, str(i), True, c.follow_up_response))
    return probes


@dataclass
class MultiturnReport:
    conversations: int
    repeated_follow_ups: int  #: conversations whose follow-up text occurs in another one
    runs: dict[str, ReplayReport]

    def to_dict(self) -> dict[str, Any]:
        return {"conversations": self.conversations,
                "repeated_follow_ups": self.repeated_follow_ups,
                "modes": {m: {"false_hits": r.cross_hits,
                              "false_hit_rate": round(r.cross_hits / max(r.probes, 1), 6),
                              "hits_by_stage": dict(r.stages),
                              "threshold": r.threshold}
                          for m, r in self.runs.items()}}

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        return write_json(path, self.to_dict())

    def summary(self) -> str:
        d = self.to_dict()
        lines = [(f"{d['conversations']} conversations; {d['repeated_follow_ups']} have a "
                 "follow-up text that also occurs under other earlier turns"),
                 f"{'scoping':>8} {'false hits':>10} {'rate':>7}  by stage"]
        for m, r in d["modes"].items():
            lines.append(f"{m:>8} {r['false_hits']:>10} {r['false_hit_rate']:>7.1%}  "
                         f"{r['hits_by_stage']}")
        return "\n".join(lines)


def evaluate_multiturn(conversations: Sequence[Conversation],
                       make_cache: Callable[[], Cache], *,
                       modes: Sequence[str] = MODES, model: str = DEFAULT_MODEL,
                       show_progress: bool | None = None) -> MultiturnReport:
    """Run each mode on a cache from ``make_cache()`` (flushed first, closed after)."""
    convs = _dedupe(conversations)
    counts = Counter(c.follow_up for c in convs)
    runs = {}
    for mode in modes:
        cache = make_cache()
        try:
            cache.flush()
            runs[mode] = replay(cache, [], conversation_probes(convs, mode), model=model,
                                store_misses=True, exact_is_correct=False,
                                show_progress=show_progress)
        finally:
            cache.close()
    return MultiturnReport(len(convs), sum(1 for c in convs if counts[c.follow_up] > 1), runs)

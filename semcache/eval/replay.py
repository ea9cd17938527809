"""Replays: labeled requests sent through a real ``Cache``, counting what it serves.

Two drivers, one per kind of labels. ``replay`` (below) takes seeds and probes, from
labeled pairs or a query log; ``replay_stream`` takes a labeled query stream
(``semcache.eval.streams``), the policy comparison's, and lets the cache learn as it
goes: it reports the error rate ``target_error_rate`` bounds, and each query's outcome.

A replay has *seeds* (requests stored with an answer before the run) and *probes*
(requests looked up, in order). Each probe knows which seed would be the right answer
(``own``) and whether serving it is right (``label``):

- hit on ``own`` and ``label``: a **correct hit**
- hit on ``own`` and not ``label``: a **false hit** (the labels say the two differ)
- hit on any other entry: a **cross hit** (another request's answer; wrong under
  GPTCache's protocol, and for multi-turn checks)
- miss: a **missed hit** when ``own`` exists and ``label`` is set, else a correct miss.

An exact-stage hit is a repeat of an identical request, so it counts as correct whoever
stored it (PAWS and QQP reuse sentences across pairs), unless ``exact_is_correct=False``:
the multi-turn check, where the same text under other earlier turns is the point.

With ``store_misses=True`` each missed probe is then stored under its own id, which is
how a query log replays against a cache that fills as it goes.

Only the public API is used: ``add_cache`` and ``lookup_with_metadata`` here,
``begin`` and its ``store`` in ``replay_stream`` (a miss's answer stored through the
pending lookup is what lets the cache judge the candidate it explored); the per-stage
latencies come from the hit metadata's ``timings_ms``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._cache import Cache
from .._errors import InvalidRequestError
from ._data import Pairs, _parse_json
from ._progress import progress
from ._report import write_json
from .streams import Stream, answer_class

__all__ = [
    "Prices",
    "Probe",
    "ReplayReport",
    "ReplayResult",
    "Seed",
    "estimate_tokens",
    "load_price_table",
    "pairs_to_replay",
    "replay",
    "replay_pairs",
    "replay_stream",
    "running_error",
]

DEFAULT_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class Seed:
    id: str
    messages: list[dict[str, Any]]
    answer: str


@dataclass(frozen=True)
class Probe:
    messages: list[dict[str, Any]]
    own: str | None
    label: bool
    answer: str | None = None  #: stored under ``own`` when missed and store_misses


@dataclass(frozen=True)
class Prices:
    """USD per 1,000 tokens."""

    input_per_1k: float = 0.0
    output_per_1k: float = 0.0

    def __post_init__(self) -> None:
        # NaN printed "$nan" saved and wrote NaN (not JSON) into the report
        for name, value in (("input", self.input_per_1k), ("output", self.output_per_1k)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidRequestError(
                    f"the {name} price per 1k tokens must be a number >= 0, got {value!r}")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens / 1000 * self.input_per_1k + output_tokens / 1000 * self.output_per_1k


def load_price_table(path: str | os.PathLike[str], model: str) -> Prices:
    """Prices of ``model`` from a JSON table ``{model: {"input_per_1k": .., "output_per_1k":
    ..}}`` (``input``/``output`` accepted as shorter names)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InvalidRequestError(f"{path}: cannot read the price table: {reason}") from None
    table = _parse_json(text, f"{path}: the price table")
    if not isinstance(table, dict) or model not in table:
        known = sorted(table) if isinstance(table, dict) else []
        raise InvalidRequestError(f"{path}: no prices for model {model!r}; has {known}")
    row = table[model]
    try:
        return Prices(float(row.get("input_per_1k", row.get("input", 0.0))),
                      float(row.get("output_per_1k", row.get("output", 0.0))))
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{path}: bad price row for {model!r}: {row!r}") from exc


def estimate_tokens(text: str) -> int:
    """About four characters per token: OpenAI's rule of thumb for English text, used
    only when a response carries no ``usage``."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _messages_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(estimate_tokens(str(m.get("content") or "")) + 4 for m in messages)


def _response(seed_id: str, answer: str, messages: list[dict[str, Any]],
              model: str) -> dict[str, Any]:
    p, c = _messages_tokens(messages), estimate_tokens(answer)
    return {"id": f"eval-{seed_id}", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}


def _served_id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        rid = value.get("id")
        if isinstance(rid, str) and rid.startswith("eval-"):
            return rid[5:]
    return None


def _output_tokens(value: Any) -> int:
    if isinstance(value, Mapping):
        usage = value.get("usage")
        if isinstance(usage, Mapping) and isinstance(usage.get("completion_tokens"), int):
            return usage["completion_tokens"]
        try:
            return estimate_tokens(value["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            pass
    return estimate_tokens(value if isinstance(value, str) else json.dumps(value, default=str))


_PCTS = (50, 90, 99)


@dataclass
class ReplayReport:
    cache: str
    threshold: float | None
    probes: int = 0
    seeds: int = 0
    correct_hits: int = 0
    false_hits: int = 0
    cross_hits: int = 0
    missed_hits: int = 0
    correct_misses: int = 0
    stages: dict[str, int] = field(default_factory=dict)
    input_tokens_saved: int = 0
    output_tokens_saved: int = 0
    money_saved: float = 0.0
    prices: Prices = field(default_factory=Prices)
    timings: dict[str, list[float]] = field(default_factory=dict, repr=False)
    hit_similarities: list[float] = field(default_factory=list, repr=False)
    wall_s: float = 0.0

    @property
    def hits(self) -> int:
        return self.correct_hits + self.false_hits + self.cross_hits

    @property
    def misses(self) -> int:
        return self.missed_hits + self.correct_misses

    @property
    def wrong_hits(self) -> int:
        return self.false_hits + self.cross_hits

    @property
    def hit_rate(self) -> float:
        return self.hits / self.probes if self.probes else 0.0

    @property
    def precision(self) -> float | None:
        return self.correct_hits / self.hits if self.hits else None

    @property
    def false_hit_rate(self) -> float:
        """Wrong answers served per probe."""
        return self.wrong_hits / self.probes if self.probes else 0.0

    def latency(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, xs in sorted(self.timings.items()):
            if xs:
                a = np.asarray(xs)
                out[stage] = {"n": len(xs), "mean": round(float(a.mean()), 3),
                              **{f"p{p}": round(float(v), 3)
                                 for p, v in zip(_PCTS, np.percentile(a, _PCTS))}}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "cache": self.cache, "threshold": self.threshold, "seeds": self.seeds,
            "probes": self.probes, "hits": self.hits, "hit_rate": round(self.hit_rate, 6),
            "correct_hits": self.correct_hits, "false_hits": self.false_hits,
            "cross_hits": self.cross_hits, "wrong_hits": self.wrong_hits,
            "precision": None if self.precision is None else round(self.precision, 6),
            "false_hit_rate": round(self.false_hit_rate, 6),
            "misses": self.misses, "missed_hits": self.missed_hits,
            "correct_misses": self.correct_misses, "hits_by_stage": dict(self.stages),
            "latency_ms": self.latency(),
            "tokens_saved": {"input": self.input_tokens_saved,
                             "output": self.output_tokens_saved},
            "money_saved_usd": round(self.money_saved, 6),
            "prices_per_1k": {"input": self.prices.input_per_1k,
                              "output": self.prices.output_per_1k},
            "wall_s": round(self.wall_s, 3),
        }

    def summary(self) -> str:
        d = self.to_dict()
        prec = "-" if d["precision"] is None else f"{d['precision']:.3f}"
        lines = [
            (f"{d['cache']} (threshold {d['threshold']}): {d['seeds']} seeded, "
            f"{d['probes']} probes in {d['wall_s']:.1f}s"),
            (f"hits {d['hits']} ({d['hit_rate']:.1%}): correct {d['correct_hits']}, "
            f"false {d['false_hits']}, cross {d['cross_hits']} (precision {prec}); "
            f"by stage {d['hits_by_stage']}"),
            (f"misses {d['misses']}: should have hit {d['missed_hits']}, "
            f"rightly missed {d['correct_misses']}"),
        ]
        for stage, s in d["latency_ms"].items():
            lines.append(f"  {stage:>7} ms: p50 {s['p50']:.2f}  p90 {s['p90']:.2f}  "
                         f"p99 {s['p99']:.2f}  (n={s['n']})")
        lines.append(f"tokens saved: {d['tokens_saved']['input']} in, "
                     f"{d['tokens_saved']['output']} out; ${d['money_saved_usd']:.4f} at "
                     f"${self.prices.input_per_1k}/1k in, ${self.prices.output_per_1k}/1k out")
        return "\n".join(lines)

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        return write_json(path, self.to_dict())


def replay(cache: Cache, seeds: Sequence[Seed], probes: Sequence[Probe], *,
           model: str = DEFAULT_MODEL, prices: Prices | None = None,
           store_misses: bool = False, exact_is_correct: bool = True,
           show_progress: bool | None = None) -> ReplayReport:
    """Store ``seeds``, then look up each probe in order (see the module docstring)."""
    prices = prices or Prices()
    rep = ReplayReport(cache=f"{cache.type} ({cache.stats()['backend']})",
                       threshold=cache.similarity_threshold if cache.index else None,
                       prices=prices)
    t0 = time.perf_counter()
    for s in progress(seeds, total=len(seeds), desc="seeding", enabled=show_progress):
        t = time.perf_counter()
        cache.add_cache(_response(s.id, s.answer, s.messages, model), model=model,
                        messages=s.messages)
        rep.timings.setdefault("add", []).append((time.perf_counter() - t) * 1000)
    rep.seeds = len(seeds)
    for p in progress(probes, total=len(probes), desc="replaying", enabled=show_progress):
        hit, meta = cache.lookup_with_metadata(model=model, messages=p.messages)
        rep.probes += 1
        for stage, ms in meta.get("timings_ms", {}).items():
            rep.timings.setdefault(stage, []).append(ms)
        if hit is None:
            if p.own is not None and p.label:
                rep.missed_hits += 1
            else:
                rep.correct_misses += 1
            if store_misses and p.own is not None:
                cache.add_cache(_response(p.own, p.answer or "", p.messages, model),
                                model=model, messages=p.messages)
            continue
        rep.stages[hit.stage] = rep.stages.get(hit.stage, 0) + 1
        if hit.stage == "semantic":
            rep.hit_similarities.append(float(hit.similarity))
        served = _served_id(hit.value)
        if hit.stage == "exact" and exact_is_correct:
            rep.correct_hits += 1
        elif served is not None and served == p.own:
            if p.label:
                rep.correct_hits += 1
            else:
                rep.false_hits += 1
        else:
            rep.cross_hits += 1
        i, o = _messages_tokens(p.messages), _output_tokens(hit.value)
        rep.input_tokens_saved += i
        rep.output_tokens_saved += o
        rep.money_saved += prices.cost(i, o)
    rep.wall_s = time.perf_counter() - t0
    return rep


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def pairs_to_replay(pairs: Pairs) -> tuple[list[Seed], list[Probe]]:
    """Seed the cache with the candidates (one entry per distinct text), probe with the
    queries; a probe's own seed is its pair's candidate."""
    ids: dict[str, str] = {}
    seeds = []
    for c in pairs.candidates:
        if c not in ids:
            ids[c] = str(len(ids))
            seeds.append(Seed(ids[c], _user(c), c))
    probes = [Probe(_user(q), ids[c], bool(y))
              for q, c, y in zip(pairs.queries, pairs.candidates, pairs.labels)]
    return seeds, probes


def replay_pairs(cache: Cache, pairs: Pairs, **kw: Any) -> ReplayReport:
    """``replay`` of labeled pairs: candidates stored, queries looked up. On GPTCache's
    ``mock_data.json`` (all positives) this is GPTCache's benchmark protocol: correct
    hits are its "right", cross hits its "wrong"."""
    seeds, probes = pairs_to_replay(pairs)
    return replay(cache, seeds, probes, **kw)


@dataclass(slots=True)
class ReplayResult:
    name: str
    queries: int = 0
    hits: int = 0
    wrong: int = 0
    explored: int = 0
    misses: int = 0
    unlabeled: int = 0  #: hits between classes with no label either way
    #: per query: 1 right hit, -1 wrong hit, 0 miss, 2 unlabeled hit (for curves)
    trace: list[int] = field(default_factory=list)
    #: wrong hits by the query's kind ("negative", "reversed", ...)
    wrong_by_kind: dict[str, int] = field(default_factory=dict)
    #: queries by kind
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def judged(self) -> int:
        """Queries whose outcome the labels decide: all but the unlabeled hits."""
        return self.queries - self.unlabeled

    @property
    def hit_rate(self) -> float:
        """Share of judged queries answered from the cache."""
        return self.hits / self.judged if self.judged else 0.0

    @property
    def error_rate(self) -> float:
        """Share of judged queries that got a wrong answer (a miss gets the LLM's own):
        the error rate ``target_error_rate`` bounds, as vCache defines it."""
        return self.wrong / self.judged if self.judged else 0.0

    @property
    def hit_error_rate(self) -> float:
        """Share of hits that were wrong (1 - precision)."""
        return self.wrong / self.hits if self.hits else 0.0

    def window(self, start: float, end: float = 1.0) -> dict[str, float]:
        """Hit rate, error rate and hit error rate over a part of the stream."""
        t = np.asarray(self.trace[int(len(self.trace) * start):int(len(self.trace) * end)])
        judged = int((t != 2).sum())
        hits, wrong = int(((t == 1) | (t == -1)).sum()), int((t == -1).sum())
        return {"queries": judged, "hits": hits, "wrong": wrong,
                "hit_rate": hits / judged if judged else 0.0,
                "error_rate": wrong / judged if judged else 0.0,
                "hit_error_rate": wrong / hits if hits else 0.0}

    def as_dict(self) -> dict[str, Any]:
        late = self.window(0.5)
        return {"name": self.name, "queries": self.queries, "hits": self.hits,
                "wrong": self.wrong, "unlabeled_hits": self.unlabeled,
                "hit_rate": self.hit_rate, "error_rate": self.error_rate,
                "hit_error_rate": self.hit_error_rate, "explored": self.explored,
                "queries_by_kind": dict(self.kinds), "wrong_by_kind": dict(self.wrong_by_kind),
                "second_half": late}


def replay_stream(cache: Cache, stream: Stream, name: str = "", model: str = "replay-model",
                  on_query: Callable[[int, ReplayResult], None] | None = None
                  ) -> ReplayResult:
    """Send every query through ``cache`` the way the call layer does: look up; on a hit
    check the served class against the labels; on a miss (or exploration) "call the LLM"
    (the answer is the query's class) and store it, which lets the cache judge an
    explored candidate."""
    res = ReplayResult(name or repr(cache))
    for i, q in enumerate(stream.queries):
        req = {"model": model, "messages": [{"role": "user", "content": q.text}]}
        out = cache.begin("completion", **req)
        res.queries += 1
        res.kinds[q.kind] = res.kinds.get(q.kind, 0) + 1
        if out.hit:
            ok = stream.truth(q.answer_class, answer_class(out.value))
            if ok is None:
                res.unlabeled += 1
                res.trace.append(2)
            else:
                res.hits += 1
                res.wrong += not ok
                if not ok:
                    res.wrong_by_kind[q.kind] = res.wrong_by_kind.get(q.kind, 0) + 1
                res.trace.append(1 if ok else -1)
        else:
            res.misses += 1
            res.explored += out.metadata.get("decision") in ("explored", "audited")
            res.trace.append(0)
            out.store({"answer": f"class {q.answer_class}"})
        if on_query is not None:
            on_query(i, res)
    return res


def running_error(trace: Sequence[int], warmup: float) -> tuple[float, float]:
    """After the warm-up share of a replayed stream's trace (-1 wrong, 2 not judged): the
    highest cumulative error rate, and the highest lower end of its 95% interval (above
    the target only when the cumulative error was *significantly* over it at some
    point)."""
    from ..policies._stats import wilson_interval

    t = np.asarray(trace)
    judged = np.cumsum(t != 2)
    wrong = np.cumsum(t == -1)
    start = int(len(t) * warmup)
    n = np.maximum(judged[start:], 1).astype(float)
    p = wrong[start:] / n
    if not p.size:
        return 0.0, 0.0
    low, _ = wilson_interval(p, n)
    return float(p.max()), float(low.max())

"""The proxy's own counters: what ``/cache/stats``, ``/metrics`` and the dashboard show.

One ``record`` call per request updates both the JSON view (per namespace, per stage,
similarity histograms, latency percentiles, tokens and money saved, a per-second
timeline, the most recent hits) and the Prometheus metrics, which live in a registry of
the app's own (never the process-global one, so two apps in one process do not clash).
Counters are per process: with several uvicorn workers each worker reports its own.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from .config import Price

__all__ = ["ProxyStats"]

BINS = 50  #: similarity histogram: 50 bins of 0.02 over [0, 1]
_LAT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0, 10.0, 30.0, 60.0)


def _bin(similarity: float) -> int:
    return min(BINS - 1, max(0, int(similarity * BINS)))


class ProxyStats:
    def __init__(self, prices: dict[str, Price] | None = None, *, timeline_s: int = 600,
                 recent: int = 50, reservoir: int = 10_000) -> None:
        self.prices = prices or {}
        self.started = time.time()
        self._lock = threading.Lock()
        self.requests = 0
        self.by_stage: defaultdict[str, int] = defaultdict(int)
        self.by_namespace: defaultdict[str, defaultdict[str, int]] = \
            defaultdict(lambda: defaultdict(int))
        self.by_model: defaultdict[str, defaultdict[str, int]] = \
            defaultdict(lambda: defaultdict(int))
        self.hit_hist = [0] * BINS
        self.near_hist = [0] * BINS
        self.latency: defaultdict[str, deque[float]] = \
            defaultdict(lambda: deque(maxlen=reservoir))
        self.backend_errors: defaultdict[str, int] = defaultdict(int)
        self.upstream_errors: defaultdict[int, int] = defaultdict(int)
        self.upstream_calls = 0
        self.saved_prompt = 0
        self.saved_completion = 0
        self.saved_usd = 0.0
        self.timeline: deque[list[int]] = deque(maxlen=timeline_s)  # [second, reqs, hits]
        self.recent_hits: deque[dict[str, Any]] = deque(maxlen=recent)

        self._series: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.m_requests = Counter(
            "semcache_proxy_requests", "Requests answered, by endpoint, stage, model and "
            "namespace", ["endpoint", "stage", "model", "namespace"], registry=self.registry)
        self.m_hits = Counter(
            "semcache_proxy_hits", "Requests served from the cache, by stage, model and "
            "namespace", ["stage", "model", "namespace"], registry=self.registry)
        self.m_latency = Histogram(
            "semcache_proxy_request_latency_seconds", "Time to answer (to the first byte "
            "for streams), by stage", ["stage"], buckets=_LAT_BUCKETS, registry=self.registry)
        self.m_backend_errors = Counter(
            "semcache_proxy_backend_errors", "Cache backend failures (served as misses), "
            "by backend", ["backend"], registry=self.registry)
        self.m_upstream_errors = Counter(
            "semcache_proxy_upstream_errors", "Upstream error responses or failures, by "
            "status (0: no response)", ["status"], registry=self.registry)
        self.m_saved_tokens = Counter(
            "semcache_proxy_saved_tokens", "Tokens not sent upstream thanks to hits",
            registry=self.registry)

    # ------------------------------------------------------------------ recording
    def record(self, *, endpoint: str, model: str, namespace: str, stage: str,
               seconds: float, meta: dict[str, Any] | None, value: Any = None,
               prompt: str | None = None, errors: list[str] | None = None) -> None:
        """One answered request. ``stage``: exact | semantic | miss | skipped | error.
        ``errors``: the backend failures of its lookup and store (``"component: ..."``)."""
        hit = stage in ("exact", "semantic")
        meta = meta or {}
        saved = self._saved(model, value) if hit else None
        now = int(time.time())
        with self._lock:
            self.requests += 1
            self.by_stage[stage] += 1
            self.by_namespace[namespace][stage] += 1
            self.by_model[model][stage] += 1
            self.latency[stage].append(seconds * 1000)
            sim = meta.get("similarity") if hit else meta.get("nearest_similarity")
            if stage == "semantic" and sim is not None:
                self.hit_hist[_bin(sim)] += 1
            elif stage == "miss" and sim is not None:
                self.near_hist[_bin(sim)] += 1
            if self.timeline and self.timeline[-1][0] == now:
                self.timeline[-1][1] += 1
                self.timeline[-1][2] += hit
            else:
                self.timeline.append([now, 1, int(hit)])
            if saved is not None:
                self.saved_prompt += saved[0]
                self.saved_completion += saved[1]
                self.saved_usd += saved[2]
            if hit:
                self.recent_hits.append({
                    "time": time.time(), "model": model, "namespace": namespace,
                    "stage": stage, "similarity": meta.get("similarity"),
                    "prompt": _clip(prompt), "matched_prompt": _clip(meta.get("matched_prompt")),
                    "key": meta.get("key"), "age_s": meta.get("age_s")})
        series = self._series.get((endpoint, stage, model, namespace))
        if series is None:  # labels() costs more than the increment: look it up once
            series = self._series[(endpoint, stage, model, namespace)] = (
                self.m_requests.labels(endpoint, stage, model, namespace),
                self.m_latency.labels(stage),
                self.m_hits.labels(stage, model, namespace) if hit else None)
        series[0].inc()
        series[1].observe(seconds)
        if series[2] is not None:
            series[2].inc()
            if saved is not None and saved[0] + saved[1]:
                self.m_saved_tokens.inc(saved[0] + saved[1])
        self.backend_failed(errors if errors is not None else meta.get("errors", ()))

    def backend_failed(self, errors: Any) -> None:
        """Backend failures the cache served as misses (a stream's store comes later)."""
        for err in errors:
            component = err.split(":", 1)[0]
            with self._lock:
                self.backend_errors[component] += 1
            self.m_backend_errors.labels(component).inc()

    def upstream(self, status: int) -> None:
        """An upstream call; ``status`` 0 when it gave no response."""
        with self._lock:
            self.upstream_calls += 1
            if status == 0 or status >= 400:
                self.upstream_errors[status] += 1
        if status == 0 or status >= 400:
            self.m_upstream_errors.labels(str(status)).inc()

    def upstream_error(self, status: int) -> None:
        """An upstream failure after its call was counted (a stream that broke off)."""
        with self._lock:
            self.upstream_errors[status] += 1
        self.m_upstream_errors.labels(str(status)).inc()

    def _saved(self, model: str, value: Any) -> tuple[int, int, float] | None:
        usage = value.get("usage") if isinstance(value, dict) else None
        if not isinstance(usage, dict):
            return None
        p = usage.get("prompt_tokens") or 0
        c = usage.get("completion_tokens") or 0
        if not (_count(p) and _count(c)):
            # a stored answer's own usage: a negative count raised in the Prometheus
            # counter (a 500 on every hit), a huge one overflowed the JSON of /cache/stats
            return None
        price = self.prices.get(model)
        usd = (p * price.input + c * price.output) / 1e6 if price else 0.0
        return p, c, usd

    # ------------------------------------------------------------------ views
    def snapshot(self, *, threshold: float | None = None,
                 cache_stats: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            by_stage = dict(self.by_stage)
            lat = {k: np.asarray(v) for k, v in self.latency.items() if v}
            out: dict[str, Any] = {
                "uptime_s": time.time() - self.started,
                "requests": self.requests,
                "by_stage": by_stage,
                "by_namespace": {ns: dict(v) for ns, v in self.by_namespace.items()},
                "by_model": {m: dict(v) for m, v in self.by_model.items()},
                "similarity_histogram": {
                    "bin_width": 1 / BINS,
                    "edges": [round(i / BINS, 4) for i in range(BINS + 1)],
                    "hits": list(self.hit_hist), "near_misses": list(self.near_hist),
                    "threshold": threshold},
                "backend_errors": dict(self.backend_errors),
                "upstream": {"calls": self.upstream_calls,
                             "errors": {str(k): v for k, v in self.upstream_errors.items()}},
                "saved": {"prompt_tokens": self.saved_prompt,
                          "completion_tokens": self.saved_completion,
                          "total_tokens": self.saved_prompt + self.saved_completion,
                          "usd": round(self.saved_usd, 6)},
                "timeline": [list(t) for t in self.timeline],
                "recent_hits": list(self.recent_hits)[::-1],
            }
        hits = by_stage.get("exact", 0) + by_stage.get("semantic", 0)
        looked = hits + by_stage.get("miss", 0)
        out["hits"] = hits
        out["misses"] = by_stage.get("miss", 0)
        out["hit_rate"] = hits / looked if looked else 0.0
        out["latency_ms"] = {
            stage: {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
                    "p99": float(np.percentile(a, 99)), "n": int(a.size)}
            for stage, a in lat.items()}
        if cache_stats is not None:
            cs = {k: v for k, v in cache_stats.items()
                  if k not in ("near_miss_similarities", "hit_similarities")}
            out["cache"] = cs
            for comp, n in cs.get("errors", {}).items():
                out["backend_errors"].setdefault(comp, n)
        return out


def _clip(text: Any, limit: int = 300) -> Any:
    if isinstance(text, str) and len(text) > limit:
        return text[:limit] + "…"
    return text


def _count(v: Any) -> bool:
    """A token count one answer can report: an int (not a bool) from 0 to a billion."""
    return type(v) is int and 0 <= v <= 10**9

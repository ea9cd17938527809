"""Counters, latency reservoirs and burst-limited fault logging, in one place."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from typing import Any

import numpy as np

__all__ = ["FaultLog", "Stats"]

log = logging.getLogger("semcache")


class Stats:
    def __init__(self, reservoir: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._n: defaultdict[str, int] = defaultdict(int)
        self._errors: defaultdict[str, int] = defaultdict(int)
        self._lat: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=reservoir))
        self._near: deque[float] = deque(maxlen=reservoir)  # best similarity of misses
        self._hit_sims: deque[float] = deque(maxlen=reservoir)

    def incr(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._n[name] += n

    def count(self, name: str) -> int:
        return self._n.get(name, 0)

    def error(self, component: str) -> None:
        with self._lock:
            self._errors[component] += 1

    def lookup(self, stage: str, total_ms: float, similarity: float | None) -> None:
        with self._lock:
            self._n["lookups"] += 1
            self._n[f"{stage}_hits" if stage != "miss" else "misses"] += 1
            self._lat[stage].append(total_ms)
            if similarity is not None:
                (self._near if stage == "miss" else self._hit_sims).append(similarity)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            n = dict(self._n)
            lat = {k: np.asarray(v) for k, v in self._lat.items() if v}
            errors = dict(self._errors)
            near, hits = list(self._near), list(self._hit_sims)
        lookups = n.get("lookups", 0)
        hits_total = n.get("exact_hits", 0) + n.get("semantic_hits", 0)
        return {
            "lookups": lookups,
            "hits": hits_total,
            "exact_hits": n.get("exact_hits", 0),
            "semantic_hits": n.get("semantic_hits", 0),
            "misses": n.get("misses", 0),
            "hit_rate": hits_total / lookups if lookups else 0.0,
            "stores": n.get("stores", 0),
            "skipped_reads": n.get("skipped_reads", 0),
            "skipped_writes": n.get("skipped_writes", 0),
            "stale_candidates_removed": n.get("stale_candidates_removed", 0),
            "integrity_rejections": n.get("integrity_rejections", 0),
            "verifier_rejected": n.get("verifier_rejected", 0),
            "verifier_failed": n.get("verifier_failed", 0),
            "judged": n.get("judged", 0),
            "judged_wrong": n.get("judged_wrong", 0),
            "feedback_right": n.get("feedback_right", 0),
            "feedback_wrong": n.get("feedback_wrong", 0),
            "errors": errors,
            "errors_total": sum(errors.values()),
            "latency_ms": {
                stage: {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
                        "n": int(a.size)}
                for stage, a in lat.items()
            },
            "near_miss_similarities": near[-1000:],
            "hit_similarities": hits[-1000:],
        }


class FaultLog:
    """Log a component's failure once per burst, and its recovery, not every call.

    State is keyed by the component ("store", "index", ...), the key both ``failed`` and
    ``succeeded`` are called with; ``backend`` only names it in the messages. (Keying
    ``failed`` by "store (redis)" and ``succeeded`` by "store" left every outage's state
    in place: recoveries were never logged, and a second outage within ``quiet_s`` of the
    first was not logged at all.)"""

    def __init__(self, quiet_s: float = 60.0) -> None:
        self.quiet_s = quiet_s
        self._lock = threading.Lock()
        # component -> (first_at, count, "component (backend)")
        self._state: dict[str, tuple[float, int, str]] = {}

    def failed(self, component: str, exc: BaseException, backend: str | None = None) -> None:
        now = time.monotonic()
        label = component if backend is None else f"{component} ({backend})"
        with self._lock:
            first, count, _ = self._state.get(component, (0.0, 0, label))
            if count == 0 or now - first > self.quiet_s:
                self._state[component] = (now, 1, label)
                emit = True
            else:
                self._state[component] = (first, count + 1, label)
                emit = False
        if emit:
            log.warning("semcache: %s failed, serving as a miss (%s: %s); further failures "
                        "in the next %.0f s are counted, not logged", label,
                        type(exc).__name__, exc, self.quiet_s)

    def succeeded(self, component: str) -> None:
        if component not in self._state:  # the common, lock-free path
            return
        with self._lock:
            state = self._state.pop(component, None)
        if state is not None:
            log.warning("semcache: %s recovered after %d failure(s)", state[2], state[1])

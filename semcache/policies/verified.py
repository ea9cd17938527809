"""Error-bounded semantic hits: serve a candidate only when it is probably right.

The model (our own take on the idea published as vCache: per-entry decision boundaries
learned online under an error bound):

* Every cached entry ``e`` has an unknown similarity threshold ``t_e``: serving ``e`` to a
  query at similarity ``s`` is right when ``s >= t_e`` (entries differ a lot: "convert C
  to F" must not answer "convert F to C" at 0.99, while a chatty FAQ entry is right for
  paraphrases at 0.8).
* Judged outcomes bound ``t_e``: right at ``s`` means ``t_e <= s`` (upper bound ``U``),
  wrong at ``s`` means ``t_e > s`` (lower bound ``L``).
* Across entries, ``F(s) = P(t_e <= s)`` is the global prior. It is estimated from the
  entries' intervals ``(L, U]``, each entry counting once however often it was judged
  (spreading its unit mass over its interval): estimating it from raw outcomes instead
  would over-count the entries that keep being explored (the doubtful ones), which is a
  selection bias that a simulation with known thresholds exposed.
* For a candidate at ``s`` the probability of a wrong answer is then
  ``P(t_e > s | L < t_e <= U) = (F(U) - F(max(s, L))) / (F(U) - F(L))``
  (0 when ``s >= U``, 1 when ``s <= L``), plus the observed rate of outcomes that
  contradict an entry's earlier bounds (judge noise, model misfit).
* Its upper confidence bound (Wilson, on the number of entries behind the prior) must
  fit the error budget: the policy keeps the UCBs of recent decisions and serves the
  candidates whose UCB is below ``lambda``, the largest level at which the *mean* UCB of
  what would be served stays at or below ``target_error_rate`` (candidates exactly at
  ``lambda`` are served with the probability that fills the budget, so a tie never
  serves a whole class). Serving the lowest-risk candidates first until the budget is
  used is what maximises hits at a given error rate; bounding by UCBs keeps the true
  error under the target while the estimates are honest. A candidate more likely wrong
  than right (``max_serve_error``) is never served, whatever the budget.
* A small share (``audit_rate``) of would-be-served candidates is explored instead: their
  judged outcomes are the observed error rate reported by ``stats()``, and they keep the
  model honest. Real traffic breaks the model's assumptions (judges err, boundaries are
  not sharp), so the policy compares the audits' wrong answers with the number the model
  predicted for them, and adds the upper confidence bound of the excess (per audit) to
  every estimate. Measured on Quora streams, the model alone under-predicted the error of
  what it served by about 2x.

Everything else is explored: the call goes to the LLM like a miss, the fresh answer is
judged against the candidate's cached answer, and the outcome updates the entry (stored
with it in the index) and the prior.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._config import check_rate
from .._errors import ConfigError
from .._policy import Decision, DecisionPolicy
from ..indexes.base import Candidate, Observation

__all__ = ["VerifiedPolicy", "wilson_upper"]

_BINS = 100


def wilson_upper(p: float, n: float, z: float) -> float:
    """Upper end of the Wilson score interval for a proportion ``p`` seen in ``n`` trials."""
    if n <= 0:
        return 1.0
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z2 / n))


def _z(confidence: float) -> float:
    # inverse normal CDF by bisection on erf: no scipy in the core dependencies
    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < confidence:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _bin(s: float) -> int:
    return min(_BINS - 1, max(0, int(s * _BINS)))


def _bounds(obs: Sequence[Observation]) -> tuple[float, float]:
    """(L, U): wrong at L means the threshold is above it; right at U, at or below."""
    lo = max((o.similarity for o in obs if not o.correct), default=-math.inf)
    hi = min((o.similarity for o in obs if o.correct), default=math.inf)
    return lo, hi


class VerifiedPolicy(DecisionPolicy):
    name = "verified"

    def __init__(
        self,
        target_error_rate: float = 0.02,
        *,
        confidence: float = 0.9,
        audit_rate: float = 0.05,
        window: float = 0.03,
        budget_window: int = 2000,
        min_budget_samples: int = 50,
        max_serve_error: float = 0.5,
        seed: int | None = None,
    ) -> None:
        self.target_error_rate = check_rate(target_error_rate)
        if not 0.5 < confidence < 1:
            raise ConfigError("confidence must be in (0.5, 1)", parameter="confidence")
        if not 0 <= audit_rate < 1:
            raise ConfigError("audit_rate must be in [0, 1)", parameter="audit_rate")
        self.confidence = confidence
        self.audit_rate = audit_rate
        self.window = window
        self.min_budget_samples = min_budget_samples
        self.max_serve_error = max_serve_error
        self._z = _z(confidence)
        self._lock = threading.Lock()
        # prior mass of the entries' thresholds: bins of similarity, the last = "never"
        self._mass = np.zeros(_BINS + 1)
        self._entries = 0.0
        self._F: np.ndarray | None = None
        self._recent: deque[float] = deque(maxlen=budget_window)
        self._budget: dict[float, tuple[float, float]] = {}
        self._rng = random.Random(seed)
        self._audit_pred = 0.0  # errors the model predicted for audited candidates
        self._audit_wrong = 0.0  # errors the audits found
        self._checked = 0  # outcomes of entries that already had bounds
        self._contradicting = 0  # ... that contradicted them
        self.counts = {"served": 0, "explored": 0, "audited": 0, "below_floor": 0,
                       "judged": 0, "judged_wrong": 0, "audit_wrong": 0}

    # ------------------------------------------------------------------ decisions
    def decide(self, query: str, candidates: Sequence[Candidate], threshold: float, *,
               target_error_rate: float | None = None) -> Decision:
        target = self.target_error_rate if target_error_rate is None else target_error_rate
        eligible = [c for c in candidates if c.similarity >= threshold]
        if not eligible:
            with self._lock:
                self.counts["below_floor"] += 1
            return Decision("miss", candidates[0] if candidates else None,
                            "below_floor" if candidates else "no_candidate")
        with self._lock:
            F = self._cdf()
            k = self._calibration()
            scored = [(self._raw(c.similarity, c.observations, F), c) for c in eligible]
            (p0, u0), best = min(scored, key=lambda t: (t[0][1], -t[1].similarity))
            p, ucb = min(1.0, p0 + k), min(1.0, u0 + k)
            self._recent.append(ucb)
            lam, tie = self._level(target)
            # audits sample what the *uncorrected* model would serve, so they go on (and
            # the correction can shrink again) even while the correction blocks serving
            if u0 <= max(lam, target) and self._rng.random() < self.audit_rate:
                self.counts["audited"] += 1
                return Decision("explore", best, "audited", p)
            if p < self.max_serve_error and (
                    ucb < lam or (ucb <= lam + 1e-12 and self._rng.random() < tie)):
                self.counts["served"] += 1
                return Decision("serve", best, "served", p)
            self.counts["explored"] += 1
            return Decision("explore", best, "explored", p)

    def estimate(self, similarity: float,
                 observations: Sequence[Observation] = ()) -> tuple[float, float]:
        """(estimated probability that serving is wrong, its upper confidence bound)."""
        with self._lock:
            return self._estimate(similarity, observations, self._cdf())

    def _estimate(self, s: float, obs: Sequence[Observation],
                  F: np.ndarray) -> tuple[float, float]:
        p, ucb = self._raw(s, obs, F)
        k = self._calibration()
        return min(1.0, p + k), min(1.0, ucb + k)

    def _raw(self, s: float, obs: Sequence[Observation],
             F: np.ndarray) -> tuple[float, float]:
        """The model's estimate and UCB, before the audits' correction."""
        lo, hi = _bounds(obs)
        noise = self._contradicting / (self._checked + 100)

        def cdf(x: float) -> float:
            return 0.0 if x == -math.inf else 1.0 if x == math.inf else float(F[_bin(x)])

        if lo >= hi:  # contradictory judgements: trust only the global curve
            p = 1.0 - cdf(s)
        elif s >= hi:
            p = 0.0
        elif s <= lo:
            p = 1.0
        else:
            den = cdf(hi) - cdf(lo)
            p = (cdf(hi) - cdf(max(s, lo))) / den if den > 1e-9 else 1.0 - cdf(s)
        p = min(1.0, p + noise)
        return p, wilson_upper(p, self._entries + len(obs), self._z)

    def _calibration(self) -> float:
        """How much more often audited candidates were wrong than the model predicted,
        per audit (upper bound): added to every estimate. Additive, because the model's
        misses include candidates it was sure of (p = 0), which no factor would move."""
        n = self.counts["audited"]
        if self._audit_wrong <= 0 or n <= 0:
            return 0.0
        w = self._audit_wrong
        upper = w + self._z * math.sqrt(w) + self._z ** 2  # Poisson-style upper bound
        return max(0.0, (upper - self._audit_pred) / n)

    def _level(self, target: float) -> tuple[float, float]:
        """(lambda, tie): serve UCBs below lambda, and those equal to it with probability
        ``tie``, so that the mean UCB of what is served is at most ``target``."""
        got = self._budget.get(target)
        if got is not None:
            return got
        if len(self._recent) < self.min_budget_samples:
            got = (target, 1.0)
        else:
            r = np.sort(np.fromiter(self._recent, float))
            means = np.cumsum(r) / np.arange(1, len(r) + 1)
            ok = np.nonzero(means <= target)[0]
            if not ok.size or r[ok[-1]] <= target:
                got = (target, 1.0)
            else:
                k = int(ok[-1]) + 1  # this many recent decisions fit in the budget
                lam = float(r[k - 1])
                below = int(np.searchsorted(r, lam - 1e-12, side="left"))
                at = int(np.searchsorted(r, lam + 1e-12, side="right")) - below
                got = (lam, (k - below) / at if at else 1.0)
        self._budget[target] = got
        return got

    # ------------------------------------------------------------------ learning
    def observe(self, observation: Observation, history: Sequence[Observation] = (),
                *, audited: bool = False) -> None:
        s, ok = observation.similarity, observation.correct
        old = _bounds(history) if history else None
        new = _bounds((*history, observation))
        with self._lock:
            if audited:  # what the uncorrected model predicted for this candidate
                self._audit_pred += self._raw(s, history, self._cdf())[0]
                self._audit_wrong += not ok
            # the entry's interval changed: move its unit of prior mass
            if old is not None:
                self._spread(*old, -1.0)
            else:
                self._entries += 1
            self._spread(*new, 1.0)
            self._F = None
            self._budget.clear()
            self.counts["judged"] += 1
            self.counts["judged_wrong"] += not ok
            if audited:
                self.counts["audit_wrong"] += not ok
            if old is not None:
                self._checked += 1
                if (ok and s <= old[0]) or (not ok and s >= old[1]):
                    self._contradicting += 1

    def _spread(self, lo: float, hi: float, weight: float) -> None:
        """Add ``weight`` of mass uniformly over the bins of the interval (lo, hi]."""
        if lo >= hi:  # contradictory: no information about where the threshold is
            a, b = 0, _BINS
        else:
            a = 0 if lo == -math.inf else min(_BINS, _bin(lo) + 1)
            b = _BINS if hi == math.inf else _bin(hi)
            a = min(a, b)
        self._mass[a:b + 1] += weight / (b - a + 1)

    def _cdf(self) -> np.ndarray:
        """F(s) per bin: the share of entries whose threshold is at or below the bin."""
        if self._F is None:
            total = self._mass.sum()
            if total <= 0:
                self._F = np.full(_BINS, 0.5)
            else:
                self._F = np.clip(np.cumsum(self._mass)[:_BINS] / total, 0.0, 1.0)
        return self._F

    # ------------------------------------------------------------------ reporting
    def stats(self) -> dict[str, Any]:
        with self._lock:
            c = dict(self.counts)
        audited, wrong = c["audited"], c["audit_wrong"]
        rate: float | None = None
        ci = None
        if audited:
            rate = wrong / audited
            z = 1.96
            centre = (rate + z * z / (2 * audited)) / (1 + z * z / audited)
            half = z * math.sqrt(rate * (1 - rate) / audited + z * z / (4 * audited ** 2)) \
                / (1 + z * z / audited)
            ci = [max(0.0, centre - half), min(1.0, centre + half)]
        return {**c, "target_error_rate": self.target_error_rate,
                "observed_error_rate": rate, "observed_error_ci95": ci,
                "calibration": self._calibration()}

    def state(self) -> dict[str, Any]:
        """The learned prior, as JSON (entry observations live in the index)."""
        with self._lock:
            return {"v": 3, "mass": self._mass.tolist(), "entries": self._entries,
                    "checked": self._checked, "contradicting": self._contradicting,
                    "audit_pred": self._audit_pred, "audit_wrong": self._audit_wrong,
                    "audits": self.counts["audited"]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        if state.get("v") != 3 or len(state.get("mass", ())) != _BINS + 1:
            raise ConfigError("not a VerifiedPolicy state of this version", parameter="state")
        with self._lock:
            self._mass = np.asarray(state["mass"], float)
            self._entries = float(state["entries"])
            self._checked = int(state["checked"])
            self._contradicting = int(state["contradicting"])
            self._audit_pred = float(state.get("audit_pred", 0.0))
            self._audit_wrong = float(state.get("audit_wrong", 0.0))
            self.counts["audited"] = int(state.get("audits", 0))
            self._F = None
            self._budget.clear()

    def __repr__(self) -> str:
        return f"VerifiedPolicy(target_error_rate={self.target_error_rate})"

"""Error-bounded semantic hits: serve a candidate only when it is probably right.

Our own take on the idea published as vCache (decision boundaries learned online from
the cache's own traffic, under a user-set error rate):

* **The error rate** is vCache's: the share of requests whose answer is wrong. A miss
  or an exploration is answered by the LLM, so only served hits can be wrong, and
  ``target_error_rate=0.02`` means at most 2 answers in 100 come from a wrong entry.
  ``per="hit"`` bounds the share of wrong *hits* instead (1 - precision), which is
  much stricter at the same number.
* **Evidence.** Every judged outcome (a query at similarity ``s`` to an entry, right or
  wrong) is stored with the entry. For a new candidate at ``s`` the entry's own history
  says whether it was already right at or below ``s`` (*confirmed*, and by how much),
  right only at higher similarities, or wrong at a lower one. Wrong at ``s`` or above
  it means the candidate is never served (the entry's boundary is above ``s``).
* **The model.** ``P(wrong | s, score, entry evidence)`` is a logistic model over the
  similarity (a linear spline: on Quora the error stops falling above about 0.93), the
  verifier's probability when the cache has a verifier (a spline in its logit; the
  structural verifier is ``target_error_rate=``'s default, issue 20: it scores a
  reversal the cosine puts at 0.99 near 0) and those evidence features, fitted to all
  judged outcomes of all entries (the global prior and the per-entry evidence in one
  fit) from binned counts, so that its state stays small and its fit cheap at any
  traffic. Older outcomes fade over ``memory`` judged outcomes: what a kind of candidate
  holds drifts as the cache fills. Measured on Quora streams, where entries are checked
  two or three times, a candidate confirmed at or below ``s`` is wrong about half as
  often as a fresh one at the same similarity, and never-wrong is not a thing: an
  earlier version that treated a confirmed entry as certainly right (a sharp per-entry
  boundary) under-predicted its error by about 2x.
* **Serving.** The policy keeps a window of recent decisions (their best candidates'
  evidence) and, with the current model, finds ``lambda``: the highest level such
  that serving every candidate of the window whose upper confidence bound is below it
  keeps the upper confidence bound (at ``confidence``) of the *total* error of what is
  served at or below ``target_error_rate`` per request (per hit with ``per="hit"``).
  It serves the candidates below ``lambda`` (those exactly at it with the probability
  that fills the budget). Serving the lowest-risk candidates first until the budget is
  used is what maximises hits at a given error rate. A candidate estimated wrong more
  often than one time in four (``max_serve_error``) is never served, however much
  budget is left: the model is least well calibrated at its extremes (on Quora streams
  with every pair labeled, candidates estimated 27% wrong were 35% wrong, those
  estimated 43% wrong were 70% wrong), and with the cap at 0.5 a stream at a 5% target
  ran significantly over it (6.6%; 4.6% at most with 0.25, for 6% fewer hits).
* **Exploring is the exception** (issue 20). A candidate not served is explored (the
  LLM answers and a judge compares) only when its upper bound lies in the *band* just
  above the serving level, the candidates whose outcomes move that level, about
  ``explore_rate`` of the recent decisions, and only while the explorations so far
  stay within ``explore_allowance`` plus ``explore_rate`` of the decisions. Any other
  candidate is a plain miss (``unexplored``): the LLM answers, no judge is paid for.
  When every candidate not served was explored, Quora streams explored 9-47% of
  their queries; with the budget, explorations and audits together stay under a
  fifth of them (docs/eval.md).
* **Audits.** A small share (``audit_rate``; half until ``min_audits`` are judged) of
  would-be-served candidates is explored instead: their judged outcomes measure the
  error rate of what is served (``stats()``) and keep the model fitted where it
  serves, a region that is otherwise never judged. (An earlier version also added the
  audits' excess of wrong answers over the model's prediction to every estimate: with
  a few hundred audits that correction was noise that doubled the spread of the error
  between streams, and it went.)

An explored or audited call goes to the LLM like a miss, the fresh answer is judged
against the candidate's cached answer, and the outcome updates the entry (stored with it
in the index) and the model. The model itself (cells, features, fit) is
semcache/policies/_model.py.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._checks import check_rate
from .._entries import Candidate, Observation
from .._errors import ConfigError
from ._model import (
    MAX_SCORE_BIN,
    N_FEATURES,
    STEP,
    Cell,
    cell_of,
    features,
    fit_logistic,
    sigmoid,
    z_of,
)
from ._options import (
    MAX_BUDGET_WINDOW,
    check_count,
    check_fraction,
    check_memory,
    check_seed,
)
from ._stats import wilson_interval
from .base import Decision, DecisionPolicy

__all__ = ["VerifiedPolicy"]

_STATE_VERSION = 6


class VerifiedPolicy(DecisionPolicy):
    """Serve a candidate only while the error rate stays within ``target_error_rate``.

    - ``per``: ``"request"`` (wrong answers over all decisions, vCache's definition) or
      ``"hit"`` (wrong answers over hits).
    - ``confidence``: level of the upper bound on the total error of what is served.
    - ``audit_rate``: share of would-be hits judged instead (``min_audits`` of them at
      50% first).
    - ``budget_window``: recent decisions the serving level is computed over.
    - ``min_budget_samples``, ``min_judged``: decisions, judged outcomes, before any
      candidate is served.
    - ``max_serve_error``: a candidate estimated wrong more often than this is never
      served, whatever the budget.
    - ``memory``: judged outcomes over which older ones fade by 1/e (0: never).
    - ``explore_rate``, ``explore_allowance``: explorations at most this share of the
      decisions, plus this many at the start (audits apart, see ``audit_rate``).
    - ``seed``: of the audits' and ties' random draws (reproducible replays).
    """

    name = "verified"
    learns = True

    def __init__(
        self,
        target_error_rate: float = 0.02,
        *,
        per: str = "request",
        confidence: float = 0.95,
        audit_rate: float = 0.05,
        budget_window: int = 20_000,
        min_budget_samples: int = 50,
        min_judged: int = 30,
        min_audits: int = 50,
        max_serve_error: float = 0.25,
        min_score: float = 0.25,
        memory: float = 3000.0,
        explore_rate: float = 0.12,
        explore_allowance: int = 100,
        seed: int | None = None,
    ) -> None:
        #: the options as given: ``fresh`` makes another namespace's policy from them
        self._options = {k: v for k, v in locals().items() if k != "self"}
        self.target_error_rate = check_rate(target_error_rate)
        if not isinstance(per, str) or per not in ("request", "hit"):
            raise ConfigError('per must be "request" or "hit"', parameter="per")
        self.per = per
        # each option a number of its kind in its range, or a ConfigError naming it
        # (_options.py: a NaN or a string passed the comparisons that stood here)
        self.confidence = check_fraction(confidence, "confidence", 0.5, 1.0,
                                         open_low=True, open_high=True)
        self.audit_rate = check_fraction(audit_rate, "audit_rate", 0.0, 1.0, open_high=True)
        budget_window = check_count(budget_window, "budget_window", 1, MAX_BUDGET_WINDOW)
        self.min_budget_samples = check_count(min_budget_samples, "min_budget_samples", 0)
        self.min_judged = check_count(min_judged, "min_judged", 1)
        self.min_audits = check_count(min_audits, "min_audits", 0)
        #: a candidate estimated wrong more often than this is never served
        self.max_serve_error = check_fraction(max_serve_error, "max_serve_error", 0.0, 1.0,
                                              open_low=True)
        #: a candidate the verifier gives less than this is never served (see ``decide``)
        self.min_score = check_fraction(min_score, "min_score", 0.0, 1.0, open_high=True)
        self.memory = check_memory(memory)  # 0 (or infinity): outcomes never fade
        self.explore_rate = check_fraction(explore_rate, "explore_rate", 0.0, 1.0)
        self.explore_allowance = check_count(explore_allowance, "explore_allowance", 0)
        seed = check_seed(seed)
        self._z = z_of(confidence)
        self._lock = threading.Lock()
        # judged outcomes, binned: cell -> [judged, wrong]
        self._cells: dict[Cell, list[float]] = {}
        self._beta: np.ndarray | None = None
        self._cov: np.ndarray | None = None
        self._unfitted = 0  # outcomes since the last fit
        # the recent decisions' best candidates (their cells; None: nothing servable),
        # re-scored by the current model whenever the serving level is recomputed
        self._window: list[Cell | None] = [None] * budget_window
        self._window_at = 0  # next slot
        self._window_n = 0  # slots filled
        self._window_cells: dict[Cell, int] = {}  # how often each cell is in it
        self._budget: dict[float, tuple[float, float, float]] = {}
        self._since_level = 0
        self._rng = random.Random(seed)
        # the next decision's two uniform draws (audit, tie): drawn ahead by record(), so
        # that decide() stays pure and asking it twice in one lookup gives one answer
        self._draws = (self._rng.random(), self._rng.random())
        self.counts = {"served": 0, "explored": 0, "audited": 0, "unexplored": 0,
                       "below_floor": 0, "verifier_rejected": 0, "judged": 0,
                       "judged_wrong": 0, "audit_wrong": 0}

    # ------------------------------------------------------------------ decisions
    def decide(self, query: str, candidates: Sequence[Candidate], threshold: float, *,
               target_error_rate: float | None = None) -> Decision:
        target = self.target_error_rate if target_error_rate is None else target_error_rate
        eligible = [c for c in candidates if c.similarity >= threshold]
        if not eligible:
            return Decision("miss", candidates[0] if candidates else None,
                            "below_floor" if candidates else "no_candidate")
        # the model pools candidates by similarity and score bins: at 0.99 the ones the
        # verifier rejects are mostly rewordings it misjudged, so the pool looks safe,
        # and the reversals among them were served (issue 20). The verifier's outright
        # rejection is not averaged away: such a candidate is never served.
        vetted = [c for c in eligible if c.score is None or c.score >= self.min_score]
        if not vetted:
            return Decision("miss", eligible[0], "verifier_rejected")
        eligible = vetted
        with self._lock:
            self._refit()  # idempotent: the fit of the outcomes observed so far
            scored = [(self._estimate(c.similarity, c.observations, c.score), c)
                      for c in eligible]
            (p, ucb), best = min(scored, key=lambda t: (t[0][1], -t[1].similarity))
            lam, tie, band = self._level(target)
            audit_draw, tie_draw = self._draws
            if ucb <= max(lam, target) and audit_draw < self._audit_probability():
                return Decision("explore", best, "audited", p)
            if p < self.max_serve_error and (
                    ucb < lam or (ucb <= lam + 1e-12 and tie_draw < tie)):
                return Decision("serve", best, "served", p)
            if ucb <= band and self._may_explore():
                return Decision("explore", best, "explored", p)
            # sure enough it is wrong, or the budget is spent: a plain miss (the LLM
            # answers, as it would for an exploration, but no judge is paid for)
            return Decision("miss", best, "unexplored", p)

    def record(self, decision: Decision) -> None:
        """Count a lookup's decision once: its counter, its best candidate's evidence in
        the window the serving level is computed over, and the next draws."""
        c = decision.candidate
        with self._lock:
            if decision.reason in ("served", "audited", "explored", "unexplored") \
                    and c is not None:
                self.counts[decision.reason] += 1
                self._decided(cell_of(c.similarity, c.observations, c.score))
            elif decision.reason == "verifier_rejected":
                # counted, but kept out of the window: as a free request it would lend
                # its share of the error budget to riskier candidates (measured: strict
                # streams then ran over at all three targets)
                self.counts["verifier_rejected"] += 1
            else:  # below the floor, or nothing: a decision with nothing servable
                self.counts["below_floor"] += 1
                self._decided(None)
            self._draws = (self._rng.random(), self._rng.random())

    def _may_explore(self) -> bool:
        """Whether the exploration budget has room: ``explore_rate`` of the decisions so
        far, plus ``explore_allowance`` for the start, when the model knows nothing and
        every candidate is worth a judge. Exploring is an LLM call *and* a judge call;
        explored without a budget, every candidate not served was explored (47% of the
        queries of a Quora stream at a 1% target)."""
        c = self.counts
        decisions = c["served"] + c["audited"] + c["explored"] + c["unexplored"] \
            + c["below_floor"] + c["verifier_rejected"]
        return c["explored"] < self.explore_allowance + self.explore_rate * decisions

    def _audit_probability(self) -> float:
        """``audit_rate``, and half of the would-be-served candidates until
        ``min_audits`` have been judged: a young model knows least about the candidates
        it is surest of (few are explored), and measured on Quora streams it let the
        error run over the target early on before audits caught up."""
        return 0.5 if self.counts["audited"] < self.min_audits else self.audit_rate

    def _decided(self, cell: Cell | None) -> None:
        i, size = self._window_at, len(self._window)
        old = self._window[i]
        if old is not None and self._window_n == size:
            left = self._window_cells[old] - 1
            if left:
                self._window_cells[old] = left
            else:
                del self._window_cells[old]
        self._window[i] = cell
        if cell is not None:
            self._window_cells[cell] = self._window_cells.get(cell, 0) + 1
        self._window_at = (i + 1) % size
        self._window_n = min(self._window_n + 1, size)
        self._since_level += 1
        if self._since_level >= 50:  # the window moved on: recompute the level
            self._budget.clear()
            self._since_level = 0

    def estimate(self, similarity: float, observations: Sequence[Observation] = (),
                 score: float | None = None) -> tuple[float, float]:
        """(estimated probability that serving is wrong, its upper confidence bound),
        for a candidate at ``similarity`` that the verifier gave ``score`` (if any)."""
        with self._lock:
            self._refit()
            return self._estimate(similarity, observations, score)

    def _estimate(self, s: float, obs: Sequence[Observation], score: float | None = None
                  ) -> tuple[float, float]:
        cell = cell_of(s, obs, score)
        if cell is None:  # wrong at this similarity or above: the boundary is higher
            return 1.0, 1.0
        if self._beta is None or self._cov is None:
            return 0.5, 1.0  # too little judged yet: explore
        x = features(np.asarray([cell]))[0]
        eta = float(x @ self._beta)
        sd = math.sqrt(max(float(x @ self._cov @ x), 0.0))
        return float(sigmoid(np.asarray(eta))), float(sigmoid(np.asarray(eta + self._z * sd)))

    def _level(self, target: float) -> tuple[float, float, float]:
        """(lambda, tie, band): serve UCBs below lambda, and those equal to it with
        probability ``tie``, so that, had the current model decided the recent window, the upper
        confidence bound of the total error of what it served would be at most
        ``target`` times the window's decisions (per request) or its hits (per hit);
        computed by ``_fill``, cached until the window or the model moves on. Explore
        (within the budget) the candidates not served whose UCB is at most ``band``:
        those nearest the serving level, about ``explore_rate`` of the window.

        The window is re-scored by the current model: levels taken from the UCBs the
        decisions had when they were made lag the model, which grows surer as it
        learns, and measured on Quora streams that let twice the target through."""
        got = self._budget.get(target)
        if got is not None:
            return got
        got = (target, 1.0, 1.0)  # no model yet: explore anything, within the budget
        if self._window_n >= self.min_budget_samples and self._beta is not None \
                and self._window_cells:
            got = self._fill(target)
        self._budget[target] = got
        return got

    def _fill(self, target: float) -> tuple[float, float, float]:
        """The level, over the window's distinct cells (a few hundred at most, however
        long the window), each with its count, sorted by their current UCB.

        What must fit the budget is the upper confidence bound of the *total* error of
        the cells served (their estimates summed, plus the delta-method spread of that
        sum), not a sum of per-candidate bounds: those count the same uncertainty about
        the model once per candidate, and on Quora streams left a tenth of the hits
        unserved at the same error."""
        assert self._beta is not None and self._cov is not None
        cells = list(self._window_cells)
        count = np.fromiter(self._window_cells.values(), float, len(cells))
        X = features(np.asarray(cells))
        eta = X @ self._beta
        sd = np.sqrt(np.maximum(((X @ self._cov) * X).sum(axis=1), 0.0))
        ucb = sigmoid(eta + self._z * sd)
        order = np.argsort(ucb, kind="stable")
        ucb, count, X, eta = ucb[order], count[order], X[order], eta[order]
        p0 = sigmoid(eta)
        grad = np.cumsum((count * p0 * (1 - p0))[:, None] * X, axis=0)
        spread = np.sqrt(np.maximum(((grad @ self._cov) * grad).sum(axis=1), 0.0))
        spent = np.cumsum(count * p0) + self._z * spread
        room = target * (np.full(len(count), float(self._window_n)) if self.per == "request"
                         else np.cumsum(count))
        ok = np.nonzero(spent <= room)[0]
        n = int(ok[-1]) + 1 if ok.size else 0  # this many cells fit whole
        if n == len(ucb):
            lam, tie = float(ucb[-1]), 1.0
        else:  # the next cell fits in part: serve that share of its candidates
            before = float(spent[n - 1]) if n else 0.0
            lam = float(ucb[n])
            step = float(spent[n]) - before
            tie = min(max((float(room[n]) - before) / step, 0.0), 1.0) if step > 0 else 1.0
        if lam <= target:
            lam, tie = target, 1.0
        # the exploration band: the cells just above the level, as many candidates as
        # the exploration budget can judge. Their outcomes are the ones that move the
        # level; a candidate the model calls 60% wrong, judged wrong again, teaches it
        # little and costs a judge call
        above = int(np.searchsorted(ucb, lam, side="right"))
        want = self.explore_rate * self._window_n
        k = int(np.searchsorted(np.cumsum(count[above:]), want, side="left"))
        band = float(ucb[above + k]) if above + k < len(ucb) else 1.0
        return lam, tie, band

    # ------------------------------------------------------------------ learning
    def observe(self, observation: Observation, history: Sequence[Observation] = (),
                *, audited: bool = False) -> None:
        s, ok = observation.similarity, observation.correct
        cell = cell_of(s, history, observation.score)
        with self._lock:
            if cell is not None:
                got = self._cells.setdefault(cell, [0.0, 0.0])
                got[0] += 1
                got[1] += not ok
                self._unfitted += 1
            self.counts["judged"] += 1
            self.counts["judged_wrong"] += not ok
            if audited:
                self.counts["audit_wrong"] += not ok

    def _refit(self) -> None:
        """Refit the model when enough changed: every outcome while there are few,
        about every 1% of them later (the fit is then stable)."""
        n = self.counts["judged"]
        if self._unfitted == 0 or (self._beta is not None
                                   and self._unfitted < max(1.0, n / 100)):
            return
        # older outcomes fade (by 1/e over ``memory`` judged outcomes): what a cell
        # holds drifts as the cache fills (on Quora streams fresh candidates at 0.9
        # went from 2% to 6% wrong as paraphrases moved on to confirmed entries), and
        # a model of all history lagged it and let single streams run 40% over target
        if self.memory > 0:
            fade = math.exp(-self._unfitted / self.memory)
            for c in self._cells.values():
                c[0] *= fade
                c[1] *= fade
        self._unfitted = 0
        cells = np.asarray(list(self._cells), float)
        counts = np.asarray(list(self._cells.values()), float)
        if len(cells) == 0 or counts[:, 0].sum() < self.min_judged:
            return
        self._beta, self._cov = fit_logistic(features(cells), counts[:, 0], counts[:, 1],
                                              self._beta)
        self._budget.clear()

    # ------------------------------------------------------------------ reporting
    def stats(self) -> dict[str, Any]:
        """Counts, and the error rates measured by the audits with their 95% intervals:
        ``observed_hit_error_rate`` (wrong among served hits) and
        ``observed_error_rate`` (wrong among all decisions: the share of wrong answers
        the callers got, what ``target_error_rate`` bounds when ``per="request"``)."""
        with self._lock:
            c = dict(self.counts)
        audited, wrong = c["audited"], c["audit_wrong"]
        decisions = c["served"] + c["audited"] + c["explored"] + c["unexplored"] \
            + c["below_floor"] + c["verifier_rejected"]
        share = (c["served"] + audited) / decisions if decisions else 0.0
        hit_rate: float | None = None
        hit_ci = rate = ci = None
        if audited:
            hit_rate = wrong / audited
            lo, hi = wilson_interval(hit_rate, audited)
            hit_ci = [lo, hi]
            rate, ci = hit_rate * share, [lo * share, hi * share]
        bound = ci if self.per == "request" else hit_ci
        return {**c, "target_error_rate": self.target_error_rate, "per": self.per,
                "confidence": self.confidence,
                "served_share": share,
                "observed_error_rate": rate, "observed_error_ci95": ci,
                "observed_hit_error_rate": hit_rate, "observed_hit_error_ci95": hit_ci,
                "within_target": None if bound is None else
                bool(bound[0] <= self.target_error_rate),
                }

    def state(self) -> dict[str, Any]:
        """The learned model, as JSON (entry observations live in the index)."""
        with self._lock:
            return {"v": _STATE_VERSION,
                    "cells": [[*cell, n, w] for cell, (n, w) in self._cells.items()],
                    "beta": None if self._beta is None else self._beta.tolist(),
                    "cov": None if self._cov is None else self._cov.tolist(),
                    "unfitted": self._unfitted, "judged": self.counts["judged"],
                    "audits": self.counts["audited"],
                    "audit_wrong": self.counts["audit_wrong"]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        # what the store holds is anyone's JSON: a NaN coefficient or an infinite count
        # would be served on (every estimate NaN), a non-number a raw crash
        if not isinstance(state, Mapping) or state.get("v") != _STATE_VERSION \
                or not isinstance(state.get("cells"), list):
            raise ConfigError("not a VerifiedPolicy state of this version", parameter="state")
        try:
            cells: dict[Cell, list[float]] = {}
            for row in state["cells"]:
                *cell, n, w = row
                a, b, c, d, e, f = (int(x) for x in cell)
                if not (0 <= w <= n < math.inf and 0 <= a <= 1 / STEP
                        and -1 <= b <= MAX_SCORE_BIN):
                    raise ValueError("count out of range")
                cells[(a, b, c, d, e, f)] = [float(n), float(w)]
            beta = None if state.get("beta") is None else np.asarray(state["beta"], float)
            cov = None if state.get("cov") is None else np.asarray(state["cov"], float)
            if beta is not None and (beta.shape != (N_FEATURES,) or cov is None
                                     or cov.shape != (N_FEATURES, N_FEATURES)):
                raise ValueError("model of the wrong shape")
            if beta is not None and cov is not None \
                    and not (np.isfinite(beta).all() and np.isfinite(cov).all()):
                raise ValueError("model with a non-finite coefficient")
            counts = [int(state.get(k, 0)) for k in ("unfitted", "judged", "audits",
                                                     "audit_wrong")]
            if min(counts) < 0:
                raise ValueError("negative count")
        except (TypeError, ValueError, OverflowError) as exc:
            raise ConfigError(f"malformed VerifiedPolicy state: {exc}",
                              parameter="state") from None
        with self._lock:
            self._cells, self._beta, self._cov = cells, beta, cov
            (self._unfitted, self.counts["judged"], self.counts["audited"],
             self.counts["audit_wrong"]) = counts
            self._budget.clear()

    def fresh(self) -> VerifiedPolicy:
        return VerifiedPolicy(**self._options)

    def __repr__(self) -> str:
        return f"VerifiedPolicy(target_error_rate={self.target_error_rate}, per={self.per!r})"

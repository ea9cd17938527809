"""The verified policy's risk model: what a candidate's evidence is, and the fit over it.

``P(wrong | candidate)`` is a logistic model over a *cell* of the candidate's evidence:
its cosine similarity, the verifier's probability when a verifier scored it, and what
the entry's judged history says (confirmed at or below this similarity and by how much,
right only above it, wrong below it). It is fitted from binned counts, so that the
state stays small and the fit cheap at any traffic. semcache/policies/verified.py
decides with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._entries import Observation

__all__ = ["MAX_SCORE_BIN", "N_FEATURES", "Cell", "cell_of", "features", "fit_logistic",
           "sigmoid", "z_of"]

#: width of a similarity bin of the model's counts, and of a confirmation-margin bin
STEP = 0.01
MARGIN_STEP = 0.02
MARGIN_CAP = 0.2
#: the verifier's probability is binned on the logit scale, where its calibration
#: lives: 0.99 and 0.999 are as far apart there as 0.5 and 0.9 (bins of 0.25 in the
#: logit, from -6 to 6: about 0.0025 to 0.9975)
SCORE_STEP = 0.25
SCORE_CAP = 6.0
NO_SCORE = -1
MAX_SCORE_BIN = int(2 * SCORE_CAP / SCORE_STEP)

#: a cell of the model's counts: (similarity bin, verifier score bin or NO_SCORE,
#: confirmed, margin bin, right only above, wrong below); None: refuted (wrong at or
#: above s), never served
Cell = tuple[int, int, int, int, int, int]


def z_of(confidence: float) -> float:
    """The normal quantile of ``confidence`` (bisection on erf: no scipy in the core)."""
    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < confidence:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x, -30, 30)))


def score_bin(score: float | None) -> int:
    if score is None or not math.isfinite(score):
        return NO_SCORE
    p = min(max(score, 1e-9), 1 - 1e-9)
    logit = min(max(math.log(p / (1 - p)), -SCORE_CAP), SCORE_CAP)
    return int(round((logit + SCORE_CAP) / SCORE_STEP))


def cell_of(s: float, history: Sequence[Observation], score: float | None = None
            ) -> Cell | None:
    """The evidence an entry's judged history (and the verifier's ``score``, if any)
    gives about serving it at similarity s."""
    lo = max((o.similarity for o in history if not o.correct), default=-math.inf)
    if lo >= s:
        return None
    hi = min((o.similarity for o in history if o.correct), default=math.inf)
    confirmed = hi <= s
    margin = min(int((s - hi) / MARGIN_STEP), int(MARGIN_CAP / MARGIN_STEP)) \
        if confirmed else 0
    return (min(int(s / STEP), int(1 / STEP)), score_bin(score), int(confirmed), margin,
            int(hi < math.inf and not confirmed), int(lo > -math.inf))


#: knots of the linear spline in similarity: the error rate need not fall the same way
#: all along (on Quora it stops falling above about 0.93: near-identical questions that
#: differ in one word, and label noise), and a model linear in s extrapolated from the
#: explored, less similar candidates under-predicted the served ones about 2x
KNOTS = (0.8, 0.9, 0.95)
#: knots of the spline in the verifier's logit (0: a probability of 0.5; 3: 0.95)
SCORE_KNOTS = (0.0, 3.0)
N_FEATURES = 6 + len(KNOTS) + 2 + len(SCORE_KNOTS)


def features(cells: np.ndarray) -> np.ndarray:
    """Rows [1, s, (s - knot)+ for each knot, confirmed, confirmed * margin, right only
    above, wrong below, scored, logit, (logit - knot)+ for each score knot], similarities
    and margins in tenths and logits in quarters (so that the ridge treats all
    coefficients alike). Without a verifier the score columns are 0 and the model is
    the cosine's alone."""
    c = np.atleast_2d(np.asarray(cells, float))
    sim = (c[:, 0] + 0.5) * STEP
    scored = (c[:, 1] != NO_SCORE).astype(float)
    logit = np.where(scored > 0, c[:, 1] * SCORE_STEP - SCORE_CAP, 0.0)
    return np.column_stack([np.ones(len(c)), (sim - 0.85) * 10,
                            *[np.maximum(sim - k, 0.0) * 10 for k in KNOTS],
                            c[:, 2], c[:, 2] * (c[:, 3] + 0.5) * MARGIN_STEP * 10,
                            c[:, 4], c[:, 5],
                            scored, scored * logit / 4,
                            *[scored * np.maximum(logit - k, 0.0) / 4 for k in SCORE_KNOTS]])


def fit_logistic(X: np.ndarray, n: np.ndarray, wrong: np.ndarray,
                 start: np.ndarray | None, ridge: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Binomial logistic regression on binned counts: Newton's method with step halving
    on the penalised likelihood (so that separable data, such as a first batch that
    holds no wrong answer, cannot make it diverge) and a weak ridge pulling the
    coefficients towards 0 (no evidence, no effect; the intercept much more weakly).
    Returns the coefficients and their covariance."""
    d = X.shape[1]
    penalty = np.full(d, ridge)
    penalty[0] = 0.01

    def objective(b: np.ndarray) -> float:
        eta = X @ b
        # log(1 + e^eta) without overflow
        return float(wrong @ eta - n @ np.logaddexp(0.0, eta) - 0.5 * penalty @ (b * b))

    beta = np.zeros(d) if start is None or not np.isfinite(start).all() else start.copy()
    if start is None:
        rate = (wrong.sum() + 0.5) / (n.sum() + 1)
        beta[0] = math.log(rate / (1 - rate))
    current = objective(beta)
    hess = np.eye(d)
    for _ in range(50):
        p = sigmoid(X @ beta)
        grad = X.T @ (wrong - n * p) - penalty * beta
        hess = (X * (n * p * (1 - p))[:, None]).T @ X + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6:
            trial = beta + t * step
            value = objective(trial)
            if value >= current - 1e-12:
                break
            t /= 2
        else:
            break
        beta, gain, current = trial, value - current, value
        if gain < 1e-9 and float(np.abs(t * step).max()) < 1e-6:
            break
    return beta, np.linalg.inv(hess)

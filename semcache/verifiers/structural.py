"""The fast default verifier: structural features and the cosine, through a small tree
ensemble fitted by ``scripts/train_verifier.py`` on the tuning parts of the shared data
and shipped as JSON (``semcache/data/verifier_structural.json``).

Huge prompts cost a bounded parse, and what is left unparsed must match exactly.
Parsing is pure Python holding the GIL: a 4.3 MB prompt took 2.1 s, stalling every other
request of a proxy (the proxy lets a prompt of up to ``max_prompt_chars``, 1M characters
by default, through; the library has no limit; the verifier reads the query and each
stored candidate's prompt in full). A text longer than ``WINDOW_CHARS`` is parsed on its
first ``HEAD_CHARS`` and last ``TAIL_CHARS`` characters (the question usually comes
last). Cutting alone would serve wrong answers: the embedder reads only the first ~8k
characters, so two prompts with one long context and another question, or another word
deep inside the context, embed alike, and the verifier is what tells them apart. So a
pair where either text is cut is scored only when every character outside the windows
is the same in both texts, at the same place from the start or from the end
(``unparsed_equal``: slices compared at C speed); otherwise it scores 0 and is never
served. Whatever differs then lies inside both windows, where the features see it. For
such a pair the same-words rule (score 1) needs the texts equal but for whitespace at
either end, since equal words in the windows are not equal words in the texts (a cut can
split "5,3" into "5" and "3"); the same window words with other operators still score 0,
and another case or punctuation is left to the model (which refused the one such pair
measured, 0.16: a lost hit, never a wrong one). Texts up to ``WINDOW_CHARS`` are parsed
whole and score exactly as before.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError
from .base import Verifier, check_probability
from .features import FEATURES, Parsed, features, parse
from .rules import decide_many, refusal, same_question
from .trees import TreeEnsemble

__all__ = ["HEAD_CHARS", "MODEL_FILE", "POINTS", "TAIL_CHARS", "WINDOW_CHARS",
           "StructuralVerifier", "strict",
           "unparsed_equal", "window"]

MODEL_FILE = "verifier_structural.json"
_LOCK = threading.Lock()
_MODELS: dict[str, dict[str, Any]] = {}


def _load(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The parsed model file, once per process and path."""
    key = str(path) if path is not None else ""
    with _LOCK:
        got = _MODELS.get(key)
        if got is not None:
            return got
        try:
            text = (Path(path).read_text() if path is not None
                    else (resources.files("semcache") / "data" / MODEL_FILE).read_text())
            doc = json.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the verifier model {key or MODEL_FILE}: {exc}",
                              parameter="verifier") from exc
        name = key or MODEL_FILE
        if not isinstance(doc, dict) or doc.get("kind") != "structural":
            raise ConfigError(f"{name} is not a structural verifier model",
                              parameter="verifier")
        features = doc.get("features")
        if not isinstance(features, list) or tuple(features) != FEATURES:
            # the columns changed since the model was fitted: refuse rather than score
            # with every feature shifted
            raise ConfigError(f"{name} was fitted on other features; rerun "
                              "scripts/train_verifier.py", parameter="verifier")
        for field in ("threshold", "floor"):
            v = doc.get(field)
            if isinstance(v, bool) or not isinstance(v, (int, float)) \
                    or not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name}: {field} must be a probability in [0, 1], got "
                                  f"{v!r}", parameter="verifier")
        if not isinstance(doc.get("model"), dict):
            raise ConfigError(f"{name} has no model", parameter="verifier")
        try:
            ensemble = TreeEnsemble.from_json(doc["model"])
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}", parameter="verifier") from exc
        if ensemble.n_features != len(FEATURES):
            raise ConfigError(f"{name}: the trees read {ensemble.n_features} features, the "
                              f"verifier computes {len(FEATURES)}", parameter="verifier")
        doc["_ensemble"] = ensemble
        _MODELS[key] = doc
        return doc


#: a longer text is parsed on its first HEAD_CHARS and last TAIL_CHARS characters: at
#: most ~3 ms of parsing per text (about 8k characters of English prose; 32k took 12 ms)
HEAD_CHARS = TAIL_CHARS = 4096
WINDOW_CHARS = HEAD_CHARS + TAIL_CHARS


def window(text: str) -> str:
    """What of ``text`` is parsed: all of it, or its head and tail."""
    if len(text) <= WINDOW_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def unparsed_equal(a: str, b: str) -> bool:
    """Whether every character that ``window`` leaves out of ``a`` or ``b`` is the same
    in the other text at the same place, counted from the start or from the end: then
    all that differs lies in both windows. Slices compared at C speed, no parse."""
    n, m = len(a), len(b)
    longest = max(n, m)
    if longest <= WINDOW_CHARS or a == b:
        return True
    x = longest - TAIL_CHARS  # a shared prefix up to x covers both unparsed middles
    if min(n, m) >= x and a[:x] == b[:x]:
        return True
    y = longest - HEAD_CHARS  # a shared suffix of y covers them
    if min(n, m) >= y and a[-y:] == b[-y:]:
        return True
    return min(n, m) > WINDOW_CHARS and a[HEAD_CHARS:n - TAIL_CHARS] == \
        b[HEAD_CHARS:m - TAIL_CHARS]


# prompts come back as candidates again and again: parse each once. Keyed by the window,
# so no cached entry keeps a huge text alive, and long windows get a short cache of their
# own: 16384 questions, or 256 windows of ~0.5 MB of parsed words each
SHORT_CHARS = 1024
_parse_short = lru_cache(maxsize=16384)(parse)
_parse_long = lru_cache(maxsize=256)(parse)


def _parse(text: str) -> Parsed:
    w = window(text)
    return (_parse_short if len(w) <= SHORT_CHARS else _parse_long)(w)


# a query is new at nearly every lookup (a repeated one is an exact hit), so its parse
# has a cache of its own, just big enough for ``explain`` to find it right after the
# scoring with several lookups in flight: in the prompts' cache, a stream of one-off
# queries pushed the stored prompts' parses out, and a benchmark repeating its texts
# measured a query parse that users never get for free
_parse_query_cached = lru_cache(maxsize=8)(parse)


def _parse_query(text: str) -> Parsed:
    return _parse_query_cached(window(text))


POINTS = ("default", "strict", "wide", "veto")


def _point(doc: dict[str, Any], point: str, path: str | os.PathLike[str] | None
           ) -> dict[str, Any]:
    """The operating point ``point`` of a model document: its floor and threshold."""
    if point not in POINTS:
        raise ConfigError(f"unknown verifier point {point!r}; known: {', '.join(POINTS)}",
                          parameter="verifier")
    chosen = doc if point == "default" else doc.get(point)
    ok = isinstance(chosen, dict) and all(
        isinstance(chosen.get(k), (int, float)) and not isinstance(chosen.get(k), bool)
        and 0.0 <= chosen[k] <= 1.0 for k in ("floor", "threshold"))
    if not ok:  # a strict point the fitting could not reach is recorded without one
        raise ConfigError(f"{path or MODEL_FILE} has no usable {point!r} point",
                          parameter="verifier")
    assert isinstance(chosen, dict)
    return chosen


def strict(threshold: float | None = None) -> StructuralVerifier:
    """The shipped model at its strict point (``Cache(verifier="structural-strict")``)."""
    return StructuralVerifier(threshold=threshold, point="strict")


def wide(threshold: float | None = None) -> StructuralVerifier:
    """The shipped model at its wide point (``Cache(verifier="structural-wide")``): a
    higher cosine floor than the default's, for natural questions rather than rewritten
    prompts (README, "Which point for which traffic")."""
    return StructuralVerifier(threshold=threshold, point="wide")


def veto(threshold: float | None = None) -> StructuralVerifier:
    """The shipped model at its veto point (``Cache(verifier="structural-veto")``): it
    only refuses what the cosine at the old default, 0.93, would serve."""
    return StructuralVerifier(threshold=threshold, point="veto")


class StructuralVerifier(Verifier):
    """Word order, "A to B" against "B to A", negation, numbers and units, names,
    antonyms, question words, length and overlap, with the cosine."""

    name = "structural"

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 threshold: float | None = None, point: str = "default") -> None:
        """``point``: which of the model file's operating points sets the threshold and
        the cosine floor: ``"default"``, ``"strict"`` (fewest wrong answers, fewest
        hits), ``"wide"`` or ``"veto"`` (docs/verifier.md has each one's figures)."""
        doc = _load(path)
        self._ensemble: TreeEnsemble = doc["_ensemble"]
        chosen = _point(doc, point, path)
        self.threshold = check_probability(
            chosen["threshold"] if threshold is None else threshold, "verifier_threshold")
        self.floor = float(chosen["floor"])
        self.point = point
        if point != "default":
            self.name = f"structural-{point}"  # what hit metadata reports
        self.info: dict[str, Any] = {k: v for k, v in doc.items()
                                     if k not in ("model", "_ensemble")}

    def _prepare(self, prompt: str) -> None:
        # a stored prompt's first hit would parse it (and meet its words for the first
        # time) right after the query's embedding, when it costs most: parse it now
        _parse(prompt)

    def _score(self, query: str, prompts: Sequence[str],
               similarities: np.ndarray) -> np.ndarray:
        q = _parse_query(query)
        cands: list[Parsed] = [_parse(p) for p in prompts]
        p = self._ensemble.predict_proba(features(q, cands, similarities))
        # the rules (verifiers/rules.py, which lists them) decide some pairs outright:
        # the same words in the same order score 1.0 (Quora labels some identical-looking
        # pairs "different", and the ensemble learned a little of that noise: the
        # identical prompt scored 0.76) unless an operator or a negation differs; the
        # structures the model weighs too lightly score 0.0
        scores = decide_many([q] * len(cands), cands, p)
        # a cut text (see the module docstring): scored only if what the windows leave
        # out matches exactly, and the same words in the windows are not the same words
        # in the texts, so only texts equal but for whitespace at either end score 1
        for i, x in enumerate(prompts):
            if max(len(query), len(x)) <= WINDOW_CHARS:
                continue
            if x.strip() == query.strip():
                scores[i] = 1.0
            elif not unparsed_equal(query, x):
                scores[i] = 0.0
            elif (same := same_question(q, cands[i])) is not None:
                scores[i] = p[i] if same else 0.0
        return scores

    def explain(self, query: str, prompt: str) -> str | None:
        """The rule that refused the pair ("translation direction", "negation", ...),
        or None (texts cut to their windows are judged on the windows)."""
        return refusal(_parse_query(query), _parse(prompt))

    def score_pairs(self, queries: Sequence[str], prompts: Sequence[str],
                    similarities: Sequence[float]) -> np.ndarray:
        """Probabilities for many independent pairs at once (evaluation, training), the
        rules' decisions included."""
        if not len(queries):
            return np.zeros(0, np.float64)
        qs, ps = [parse(q) for q in queries], [parse(p) for p in prompts]
        X = np.concatenate([features(a, [b], [s]) for a, b, s in zip(qs, ps, similarities)])
        return decide_many(qs, ps, self._ensemble.predict_proba(X))

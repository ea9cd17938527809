"""The fast default verifier: structural features and the cosine, through a small tree
ensemble fitted by ``scripts/train_verifier.py`` on the tuning parts of the shared data
and shipped as JSON (``semcache/data/verifier_structural.json``)."""

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
from .trees import TreeEnsemble

__all__ = ["MODEL_FILE", "StructuralVerifier"]

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


# prompts come back as candidates again and again: parse each once
_parse = lru_cache(maxsize=16384)(parse)


class StructuralVerifier(Verifier):
    """Word order, "A to B" against "B to A", negation, numbers and units, names,
    antonyms, question words, length and overlap, with the cosine."""

    name = "structural"

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 threshold: float | None = None) -> None:
        doc = _load(path)
        self._ensemble: TreeEnsemble = doc["_ensemble"]
        self.threshold = check_probability(
            doc["threshold"] if threshold is None else threshold, "verifier_threshold")
        self.floor = float(doc["floor"])
        self.info: dict[str, Any] = {k: v for k, v in doc.items()
                                     if k not in ("model", "_ensemble")}

    def _score(self, query: str, prompts: Sequence[str],
               similarities: np.ndarray) -> np.ndarray:
        q = _parse(query)
        cands: list[Parsed] = [_parse(p) for p in prompts]
        p = self._ensemble.predict_proba(features(q, cands, similarities))
        # the same words in the same order is the same question, whatever the model
        # says: Quora labels some identical-looking pairs "different", and a tree
        # ensemble learns a little of that noise (the identical prompt scored 0.76).
        # Unless only the operators differ, which the features cannot see: "3x + 7 = 22"
        # and "3x - 7 = 22", "C++" and "C#" read as the same words and scored 1.0
        same = np.fromiter((c.words == q.words for c in cands), bool, len(cands))
        ops = np.fromiter((c.operators == q.operators for c in cands), bool, len(cands))
        return np.where(same, np.where(ops, 1.0, 0.0), p)

    def score_pairs(self, queries: Sequence[str], prompts: Sequence[str],
                    similarities: Sequence[float]) -> np.ndarray:
        """Probabilities for many independent pairs at once (evaluation, training)."""
        X = np.concatenate([features(parse(q), [parse(p)], [s])
                            for q, p, s in zip(queries, prompts, similarities)]) \
            if len(queries) else np.zeros((0, len(FEATURES)), np.float32)
        return self._ensemble.predict_proba(X)

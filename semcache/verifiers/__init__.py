"""Verifiers: a second look at the index's candidates before one is served.

``resolve_verifier`` maps the names users pass (``Cache(verifier=...)``) to lazily
imported classes, one table (see STYLE.md); an instance passes through.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from .._errors import ConfigError
from .base import Verdicts, Verifier, check_probability, rank

__all__ = ["VERIFIERS", "Verdicts", "Verifier", "check_probability", "rank",
           "resolve_verifier"]

#: name -> "module:Class" (imported on first use)
VERIFIERS: dict[str, str] = {
    "structural": "semcache.verifiers.structural:StructuralVerifier",
    # the same model at its strict point: fewest wrong answers, fewest hits
    "structural-strict": "semcache.verifiers.structural:strict",
    # its wide point (floor 0.90): on natural questions more right and fewer wrong hits
    # than the default (benchmarks/results/quora_audit_points.json), fewer rewordings
    "structural-wide": "semcache.verifiers.structural:wide",
    # its veto point: refuses some of what the cosine alone serves at 0.93, adds nothing
    "structural-veto": "semcache.verifiers.structural:veto",
    # configured by $OPENAI_BASE_URL / $OPENAI_API_KEY; pass an LLMVerifier for more
    "llm": "semcache.verifiers.llm:LLMVerifier",
    # the folder scripts/train_cross_encoder.py writes ($SEMCACHE_CROSS_ENCODER or the
    # cache's default); a folder path works too
    "cross-encoder": "semcache.verifiers.cross_encoder:CrossEncoderVerifier",
}


def resolve_verifier(spec: Any, threshold: float | None = None) -> Verifier | None:
    """``None`` / ``"none"``: no verifier (the cosine alone); a name from ``VERIFIERS``;
    a path to a structural model file or to a cross-encoder folder; or a ``Verifier``
    instance."""
    if spec is None or spec == "none":
        if threshold is not None:
            raise ConfigError("verifier_threshold needs a verifier",
                              parameter="verifier_threshold")
        return None
    verifier = _resolve(spec, threshold)
    if threshold is not None:  # the user's line: a veto for every policy (base.py)
        verifier.veto = verifier.threshold
    return verifier


def _resolve(spec: Any, threshold: float | None) -> Verifier:
    if isinstance(spec, Verifier):
        if threshold is not None:
            # a copy: the caller's instance may serve other caches (one loaded model,
            # one client), and their thresholds are theirs. It shares the model, the
            # clients and an LLM verifier's answers (shallow).
            spec = copy.copy(spec)
            spec.threshold = check_probability(threshold, "verifier_threshold")
        return spec
    if isinstance(spec, (str, os.PathLike)):
        name = str(spec)
        if name in VERIFIERS:
            import importlib

            module, cls = VERIFIERS[name].split(":")
            return getattr(importlib.import_module(module), cls)(threshold=threshold)
        if name.endswith(".json") and os.path.isfile(name):
            from .structural import StructuralVerifier

            return StructuralVerifier(name, threshold=threshold)
        if os.path.isdir(name):
            from .cross_encoder import CrossEncoderVerifier

            return CrossEncoderVerifier(name, threshold=threshold)
        raise ConfigError(f"unknown verifier {name!r}; known: {', '.join(VERIFIERS)}, "
                          "'none', a path to a structural model (.json) or to a "
                          "cross-encoder folder",
                          parameter="verifier")
    raise ConfigError(f"verifier must be a name, a path or a Verifier, got "
                      f"{type(spec).__name__}", parameter="verifier")

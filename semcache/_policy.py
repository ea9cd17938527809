"""The ``DecisionPolicy`` seam: which candidate, if any, may be served.

A policy sees the query text and the candidates of the query's context (best first,
unexpired) and returns a ``Decision``: serve one, explore (send the call upstream and
judge the fresh answer against a candidate's), or miss. ``observe`` feeds judged
outcomes back so adaptive policies can learn; the static threshold ignores them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .indexes.base import Candidate, Observation

__all__ = ["Decision", "DecisionPolicy", "StaticThreshold"]

Action = Literal["serve", "explore", "miss"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    candidate: Candidate | None
    #: ``served`` | ``explored`` | ``below_floor`` | ``no_candidate``
    reason: str
    estimated_error: float | None = None


class DecisionPolicy(ABC):
    name: str = "policy"

    @abstractmethod
    def decide(self, query: str, candidates: Sequence[Candidate], threshold: float, *,
               target_error_rate: float | None = None) -> Decision:
        """Pick what to do with ``candidates`` (most similar first, none blocked)."""

    def observe(self, observation: Observation, history: Sequence[Observation] = (), *,
                audited: bool = False) -> None:
        """Learn from a judged outcome of an entry whose earlier outcomes were ``history``
        (``audited``: the candidate would have been served, so this measures the error
        rate of what is served)."""

    def stats(self) -> dict[str, object]:
        return {}


class StaticThreshold(DecisionPolicy):
    """Serve the most similar candidate at or above the threshold (0.0 is valid)."""

    name = "static"

    def decide(self, query: str, candidates: Sequence[Candidate], threshold: float, *,
               target_error_rate: float | None = None) -> Decision:
        if not candidates:
            return Decision("miss", None, "no_candidate")
        best = candidates[0]
        if best.similarity >= threshold:
            return Decision("serve", best, "served")
        return Decision("miss", best, "below_floor")

    def __repr__(self) -> str:
        return "StaticThreshold()"

"""The ``DecisionPolicy`` seam: which candidate, if any, may be served.

A policy sees the query text and the candidates of the query's context (best first,
unexpired) and returns a ``Decision``: serve one, explore (send the call upstream and
judge the fresh answer against a candidate's), or miss. ``decide`` is pure: the
pipeline may ask again within one lookup (when the candidate it picked turned out
stale), and calls ``record`` once per lookup with the decision it acted on, which is
where a policy counts. ``observe`` feeds judged outcomes back so adaptive policies can
learn, and ``state``/``load_state`` persist what they learned; the learning loop that
calls them is semcache/_learning.py (its I/O) over semcache/policies/learning.py (what
it knows, on plain values). The static threshold needs none of it: every optional
method is a no-op here.

This is the policies seam's base: like every seam it imports nothing from the core
(its records come from semcache/_entries.py); semcache._policy re-exports it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._entries import Candidate, Observation

__all__ = ["Action", "Decision", "DecisionPolicy", "StaticThreshold"]

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
    #: whether the policy learns from judged outcomes: its explorations are judged and
    #: its ``state`` is saved in the exact store and restored once per process
    learns: bool = False

    @abstractmethod
    def decide(self, query: str, candidates: Sequence[Candidate], threshold: float, *,
               target_error_rate: float | None = None) -> Decision:
        """Pick what to do with ``candidates`` (most similar first, none blocked).
        Pure: no counting, no random draw consumed (``record`` does that)."""

    def record(self, decision: Decision) -> None:
        """Count the decision a lookup acted on; called exactly once per lookup that
        asked ``decide``."""

    def observe(self, observation: Observation, history: Sequence[Observation] = (), *,
                audited: bool = False) -> None:
        """Learn from a judged outcome of an entry whose earlier outcomes were ``history``
        (``audited``: the candidate would have been served, so this measures the error
        rate of what is served)."""

    def state(self) -> Mapping[str, Any] | None:
        """What the policy learned, as JSON (None: nothing to save)."""
        return None

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state`` returned (in another process, or before a restart)."""

    def stats(self) -> dict[str, Any]:
        return {}

    def fresh(self) -> DecisionPolicy:
        """The policy another namespace decides with: the same options, nothing
        learned (one namespace's outcomes must not change what another is served). A
        policy that learns overrides this; one that does not is shared as it is."""
        if self.learns:
            raise NotImplementedError(f"{type(self).__name__} learns: give it fresh()")
        return self


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

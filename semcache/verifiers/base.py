"""The ``Verifier`` seam: a second look at the index's candidates before one is served.

The cosine of two sentence embeddings cannot tell "convert miles to km" from "convert km
to miles" (0.99 with MiniLM), so no threshold on it can. A verifier scores each
``(query, candidate prompt, similarity)`` as the probability that the candidate's answer
is right for the query; the cache serves the best candidate whose probability reaches the
verifier's threshold. One narrow method (``_score``); validation, the async twin and
the ranking live here, once.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from .._checks import finite_number
from .._entries import Candidate
from .._errors import BackendError, ConfigError

log = logging.getLogger("semcache.verifiers")

__all__ = ["Verdicts", "Verifier", "check_probability", "rank"]


def check_probability(value: object, parameter: str) -> float:
    # finite_number: float() of an int no float holds (10**400) raised OverflowError
    if not finite_number(value) or not 0.0 <= cast(float, value) <= 1.0:
        raise ConfigError(f"{parameter} must be a probability in [0, 1], got {value!r:.80}",
                          parameter=parameter)
    return float(cast(float, value))


class Verifier(ABC):
    """Scores candidates; ``threshold`` is the probability needed to serve and
    ``floor`` the cosine below which a candidate is not worth scoring."""

    name: str = "verifier"
    threshold: float = 0.5
    floor: float = 0.0
    #: the threshold when the user set it (``verifier_threshold=``): a learning policy,
    #: which otherwise draws its own line on the score, never serves a candidate below it
    veto: float | None = None

    @abstractmethod
    def _score(self, query: str, prompts: Sequence[str],
               similarities: np.ndarray) -> np.ndarray:
        """Probabilities, one per prompt."""

    def verify(self, query: str, prompts: Sequence[str],
               similarities: Sequence[float]) -> np.ndarray:
        """``float64[len(prompts)]`` in [0, 1]: P(the prompt's answer is right for query).

        A verifier that answers with anything else is broken, and the cache must not
        serve on its say: the error goes to the caller, which counts it and misses."""
        sims = np.asarray(similarities, np.float64)
        if not prompts:
            return np.zeros(0, np.float64)
        return self._checked(self._score(query, prompts, sims), len(prompts))

    def prepare(self, prompt: str) -> None:
        """Called when ``prompt`` is stored: work a verifier can do on a stored prompt
        alone (``_prepare``; the structural one parses it) is then off the path of its
        first hit. Best effort: a failure is logged and leaves the store as it is; the
        lookup that needs the work does it, and counts its own failures."""
        try:
            self._prepare(prompt)
        except Exception as exc:
            log.warning("verifier %r could not prepare a stored prompt: %.200s",
                        self.name, exc)

    def _prepare(self, prompt: str) -> None:
        """What ``prepare`` does; nothing by default."""

    def explain(self, query: str, prompt: str) -> str | None:
        """Why the pair was refused outright, when a rule did it (hit metadata's
        ``near_miss_verifier_rule``); None when the score says all there is."""
        return None

    def _checked(self, scores: object, n: int) -> np.ndarray:
        p = np.asarray(scores, np.float64)
        # a lookup scores a candidate or two: compared as Python floats, not by four
        # numpy calls (NaN fails the comparison either way)
        if p.shape != (n,) or not (all(0.0 <= x <= 1.0 for x in p.tolist()) if n <= 32
                                   else np.all((p >= 0.0) & (p <= 1.0))):
            raise BackendError(f"verifier {self.name!r} returned {p.shape} scores outside "
                               f"[0, 1] for {n} prompts", backend=self.name)
        return p

    async def averify(self, query: str, prompts: Sequence[str],
                      similarities: Sequence[float]) -> np.ndarray:
        # the built-in structural verifier costs ~0.1 ms of CPU: a worker thread would
        # cost more than it saves. Verifiers that do I/O or heavy inference override this.
        return self.verify(query, prompts, similarities)

    # -- what the cache calls: the answer checked whatever twin a subclass overrode ----
    def checked(self, query: str, prompts: Sequence[str],
                similarities: Sequence[float]) -> np.ndarray:
        """``verify``, its answer checked (one probability per prompt) even where a
        subclass overrode ``verify`` itself."""
        if type(self).verify is Verifier.verify:  # checked there already: not twice
            return self.verify(query, prompts, similarities)
        return self._checked(self.verify(query, prompts, similarities), len(prompts))

    async def achecked(self, query: str, prompts: Sequence[str],
                       similarities: Sequence[float]) -> np.ndarray:
        """``averify``, checked: a verifier that does I/O overrides ``averify`` (and
        its answer reached the ranking unchecked: a short one served on the scores it
        had, a list crashed the lookup)."""
        return self._checked(await self.averify(query, prompts, similarities),
                             len(prompts))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold}, floor={self.floor})"


@dataclass(frozen=True, slots=True)
class Verdicts:
    """What the verifier said about one lookup's candidates (for hit metadata)."""

    scores: dict[str, float]  #: candidate key -> probability
    threshold: float
    #: the best-scored candidate that did not pass (the near miss), with its score
    near_miss: Candidate | None = None
    near_miss_score: float | None = None
    #: the verifier's ``explain`` for this lookup's query (asked only for the near miss)
    explain: Callable[[str], str | None] | None = None

    def metadata(self, served_key: str | None) -> dict[str, object]:
        """Hit metadata: the served candidate's score and the near miss's."""
        meta: dict[str, object] = {"verifier_threshold": self.threshold,
                                   "verifier_score": self.scores.get(served_key)
                                   if served_key is not None else None}
        if self.near_miss is not None:
            meta["near_miss_verifier_score"] = self.near_miss_score
            meta["near_miss_similarity"] = self.near_miss.similarity
            meta["near_miss_prompt"] = self.near_miss.prompt
            why = self.explain(self.near_miss.prompt) if self.explain else None
            if why is not None:
                meta["near_miss_verifier_rule"] = why
        return meta


def rank(candidates: Sequence[Candidate], scores: np.ndarray | None, threshold: float,
         explain: Callable[[str], str | None] | None = None
         ) -> tuple[list[Candidate], Verdicts | None]:
    """Candidates whose score reaches ``threshold``, in the index's order (most similar
    first), and the verdicts. ``scores is None`` (the verifier failed) passes nothing: a
    verifier fails closed.

    Between two candidates that both pass, the closer one wins: a fitted probability is
    not a finer ranking than the cosine near the top (Quora labels about 1 in 15 of its
    near-identical pairs "different", and a model learns some of that noise), so the
    identical prompt must not lose to a paraphrase on it."""
    if scores is None:
        return [], None
    passed = [c for c, s in zip(candidates, scores) if s >= threshold]
    failed = [i for i in np.argsort(-scores, kind="stable") if scores[i] < threshold]
    near = failed[0] if failed else None
    return passed, Verdicts(
        {c.key: float(s) for c, s in zip(candidates, scores)}, threshold,
        None if near is None else candidates[near],
        None if near is None else float(scores[near]), explain)

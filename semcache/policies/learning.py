"""What a cache's learning loop knows and decides without I/O, on plain values.

A policy that learns (``DecisionPolicy.learns``, the verified policy) gets its evidence
from three places: an *explored* candidate's cached answer is judged against the fresh
answer when that is stored; a caller's ``cache.feedback(hit, correct)`` reports on a
served hit; and the policy's model is saved in the exact store every ``SAVE_EVERY``
judgements and restored once per process. The ``Teacher`` here holds what that loop
remembers between requests (whether the state was restored, how many outcomes were
judged, the recent served hits feedback refers to) and turns each outcome into the
``Observation`` s an entry keeps and the ``observe`` call the policy learns from.

The I/O (reading and writing the store and the index, calling the judge) is the
pipeline's: semcache/_learning.py yields it as pipeline ops. This module, like every
seam, imports nothing from the core (``.importlinter``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cachetools import LRUCache

from .._entries import Observation
from .base import DecisionPolicy

__all__ = ["POLICY_STATE", "SAVE_EVERY", "Seen", "Teacher", "judged"]

#: the exact-store key (under the cache's namespace) of a learning policy's saved model
POLICY_STATE = "__semcache_policy_state__"
#: judgements between two saves of the policy's model
SAVE_EVERY = 25

#: what a served semantic hit leaves for its feedback: (entry key, similarity, request
#: key, the entry's judged history when it was served)
Seen = tuple[str, float, str, tuple[Observation, ...]]


def judged(similarity: float, correct: bool, query: str | None, score: float | None = None
           ) -> tuple[Observation, Observation]:
    """What one judgement of an explored candidate teaches: (for the candidate's entry,
    for the fresh entry stored for the query).

    A wrong outcome carries the query's digest (``query``), so that entry is never
    served to that query again. The judgement holds both ways: the fresh entry's answer
    is right (or wrong) for the candidate's prompt at the same similarity, so the new
    entry starts with that evidence instead of none (measured on Quora streams: a fifth
    more hits at a 1% target, a tenth at 2%, since a paraphrase's next paraphrase often
    lands on it). Evidence for the entry only: the policy's model counts it once.
    ``score``, the verifier's probability for the explored candidate, goes to the
    policy's model with the candidate's observation (it is not stored with the entry)."""
    return (Observation(similarity, correct, None if correct else query, score),
            Observation(similarity, correct))


class Teacher:
    """A cache's learning state between requests; the policy it teaches is the one each
    request used (the cache's, or the verified policy a per-request target made)."""

    def __init__(self, recent_hits: int = 4096) -> None:
        self._loaded: set[str] = set()  # the namespaces whose policy state was read
        self._judged: dict[str, int] = {}  # judged outcomes by namespace
        #: recent semantic hits by entry and request key, so feedback can teach the
        #: policy what kind of candidate the hit was; bounded (two slots a hit)
        self.recent_hits: LRUCache[str, Seen] = LRUCache(maxsize=recent_hits)

    def restore_now(self, policy: DecisionPolicy, namespace: str = "") -> bool:
        """Whether ``policy``'s saved state is to be read now: once per process and
        namespace (each has its own policy), for a policy that learns (a failed read
        is not retried: the policy learns afresh)."""
        if namespace in self._loaded or not policy.learns:
            return False
        self._loaded.add(namespace)
        return True

    def remember_hit(self, key: str, request_key: str, similarity: float,
                     history: Sequence[Observation] = ()) -> None:
        got = (key, similarity, request_key, tuple(history))
        self.recent_hits[request_key] = got
        self.recent_hits[key] = got

    def hit_metadata(self, key: str) -> dict[str, Any]:
        """A served hit's metadata from its entry or request key, as far as it is
        remembered (a forgotten key is taken as an exact hit's entry key)."""
        entry, sim, rkey, _ = self.recent_hits.get(key, (key, 1.0, "", ()))
        return {"key": entry, "similarity": sim, "request_key": rkey or None,
                "stage": "semantic" if rkey else "exact"}

    def history_at(self, key: str, request_key: str | None) -> tuple[Observation, ...]:
        """The entry's judged history when it was served for ``request_key``, so the
        policy learns what kind of candidate it was (confirmed, fresh, ...); empty once
        the hit is forgotten."""
        seen = self.recent_hits.get(request_key) if request_key else None
        return seen[3] if seen is not None and seen[0] == key else ()

    def feedback(self, meta: Mapping[str, Any], correct: bool, query: str | None
                 ) -> tuple[Observation, tuple[Observation, ...]]:
        """A caller's report on a served semantic hit (``meta``: its metadata) as an
        observation of its entry, and the entry's history when it was served;
        ``query`` is the request's digest (kept only with a wrong report)."""
        sim = meta.get("similarity")  # 0.0 is a similarity: not "unknown"
        sim = 1.0 if sim is None else float(sim)
        rkey = meta.get("request_key")
        obs = Observation(sim, correct, None if correct or not rkey else query)
        return obs, self.history_at(meta["key"], rkey)

    def teach(self, policy: DecisionPolicy, observation: Observation,
              history: Sequence[Observation] = (), *, audited: bool = False,
              namespace: str = "") -> Mapping[str, Any] | None:
        """Hand a judged outcome to ``policy`` (``namespace``'s); returns its state when
        a save is due (every ``SAVE_EVERY`` judged outcomes of that namespace), else
        None."""
        policy.observe(observation, history, audited=audited)
        n = self._judged[namespace] = self._judged.get(namespace, 0) + 1
        # the state is a copy of the model: taken only when it is to be saved
        return policy.state() if n % SAVE_EVERY == 0 else None

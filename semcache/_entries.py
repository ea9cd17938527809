"""The records that cross seams: an index entry, a search candidate, a judged outcome.

A ``VectorIndex`` stores ``IndexEntry`` and returns ``Candidate``; verifiers judge
candidates and decision policies read their ``Observation`` history. They live here,
below the seams (``.importlinter``), so that a verifier or a policy can read them
without importing ``indexes/``; ``semcache.indexes.base`` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_OBSERVATIONS", "Candidate", "IndexEntry", "Observation"]

#: judged outcomes kept per entry (the oldest are dropped first)
MAX_OBSERVATIONS = 64


@dataclass(frozen=True, slots=True)
class IndexEntry:
    key: str  #: exact key of the stored answer ("<namespace>:<digest>")
    context: str  #: context key: only queries with the same context may match
    namespace: str
    prompt: str  #: the query text that was embedded
    created_at: float  #: unix time
    expires_at: float | None  #: unix time, None = never


@dataclass(frozen=True, slots=True)
class Observation:
    """A judged outcome: serving this entry to a query at ``similarity`` was ``correct``.

    ``query`` is a short digest of the query's exact key on wrong outcomes, so that a
    wrong hit is never served again for that query."""

    similarity: float
    correct: bool
    query: str | None = None
    #: the verifier's probability for the candidate when it was judged (for the
    #: policy's model only: not stored with the entry)
    score: float | None = None

    def to_json(self) -> list[object]:
        return [round(self.similarity, 6), int(self.correct), self.query]

    @classmethod
    def from_json(cls, v: list[object]) -> Observation:
        """As ``to_json`` wrote it; anything else another writer stored raises
        TypeError or ValueError (the index skips that observation's record)."""
        if not isinstance(v, list) or not 2 <= len(v) <= 3:
            raise TypeError(f"an observation is a list of 2 or 3, not {str(v)[:40]}")
        sim, ok, query = v[0], v[1], v[2] if len(v) > 2 else None
        if isinstance(sim, bool) or not isinstance(sim, (int, float)) \
                or not -1.5 <= sim <= 1.5 or not isinstance(query, (str, type(None))) \
                or type(ok) not in (int, bool, float) or ok not in (0, 1):
            # ``correct`` as written: 0 or 1 (or a JSON bool; the Lua repair in
            # indexes/_redis_lua.py keeps the same); a dict or "no" read as truthy would
            # have taught the policy that a wrong answer was right
            raise ValueError(f"malformed observation {str(v)[:60]}")
        return cls(float(sim), bool(ok), query)


@dataclass(frozen=True, slots=True)
class Candidate:
    key: str
    similarity: float
    prompt: str
    created_at: float
    expires_at: float | None
    #: judged outcomes of this entry (for adaptive decision policies)
    observations: tuple[Observation, ...] = ()
    #: the verifier's probability that this candidate's answer is right for the query,
    #: when a learning policy decides on it (semcache/_pipeline.py, ``_verify_flow``)
    score: float | None = None

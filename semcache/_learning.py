"""The learning loop's I/O: judging explorations, feedback and the saved policy state.

What the loop knows and decides (once-per-process restore, when to save, what a
judgement or a report teaches, the recent hits feedback refers to) is the policies
seam's ``Teacher`` (semcache/policies/learning.py), on plain values. This module runs
it against the backends: it reads and writes the store and the index and calls the
judge, as the pipeline's ops (semcache/_pipeline.py), run by the cache's drivers, so
those calls fail open, are timed and counted like every other backend call. For a
policy that does not learn (the static threshold) every step here is a no-op.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._config import Controls
from ._entries import Observation
from ._errors import ConfigError, SemcacheError
from ._keys import RESERVED_MARK
from ._pending import CacheHit
from ._pipeline import FAILED, Op, Request, query_digest
from ._record import Record
from .policies.base import DecisionPolicy
from .policies.learning import POLICY_STATE, Teacher, judged

if TYPE_CHECKING:
    from ._pipeline import Pipeline

__all__ = ["Learning"]


class Learning:
    """A cache's learning loop: the ``Teacher``'s decisions, with the backend calls."""

    def __init__(self, cache: Pipeline) -> None:
        self._cache = cache
        self.teacher = Teacher()

    def load_state(self, policy: DecisionPolicy, ns: str) -> Generator[Op, Any, None]:
        """Restore namespace ``ns``'s learning policy from the store, once per process
        (each namespace has its own: semcache/_policies_by_ns.py)."""
        if not self.teacher.restore_now(policy, ns):
            return
        c = self._cache
        raw = yield Op(c.store.get, c.store.aget, (f"{ns}:{POLICY_STATE}",), None,
                       "exact", "store")
        if raw is not None:
            try:
                policy.load_state(c._codec.decode(raw).value)
            except SemcacheError as exc:
                c._faults.failed("policy state", exc)

    def remember_hit(self, key: str, request_key: str, similarity: float,
                     history: Sequence[Observation] = ()) -> None:
        self.teacher.remember_hit(key, request_key, similarity, history)

    def judge(self, req: Request, query: str, fresh: Any) -> Generator[Op, Any, None]:
        """Judge the explored candidate's cached answer against the fresh one; learn."""
        cand, policy, c = req.explore, req.policy, self._cache
        assert cand is not None and policy is not None and c.judge is not None
        assert c.index is not None
        raw = yield Op(c.store.get, c.store.aget, (cand.key,), FAILED, "judge", "store")
        crec = None if raw is FAILED else c._decode(raw, req, cand.key)
        if crec is None:
            return
        j = c.judge
        correct = yield Op(j.judge, j.ajudge, (query, cand.prompt, crec.value, fresh), None,
                           "judge", "judge")
        if correct is None:
            return
        ok = bool(correct)
        for_candidate, for_fresh = judged(cand.similarity, ok,
                                          None if ok else query_digest(req.key), cand.score)
        yield from self.observe(cand.key, for_candidate, cand.observations, policy,
                                req.namespace, req.audited)
        index = c.index
        yield Op(index.observe, index.aobserve, (req.key, for_fresh), False, "judge",
                 "index")

    def observe(self, key: str, obs: Observation, history: Sequence[Observation],
                policy: DecisionPolicy, ns: str, audited: bool = False
                ) -> Generator[Op, Any, bool]:
        """Record ``obs`` on the entry and teach the policy (namespace ``ns``'s); True
        when the index kept it (False: the entry is gone, or the index could not be
        reached)."""
        c = self._cache
        assert c.index is not None
        # the verifier's score is the policy's, not the entry's: stored without it
        stored = obs if obs.score is None else replace(obs, score=None)
        kept = yield Op(c.index.observe, c.index.aobserve, (key, stored), False, "judge",
                        "index")
        state = self.teacher.teach(policy, obs, history, audited=audited, namespace=ns)
        c._stats.incr("judged")
        if not obs.correct:
            c._stats.incr("judged_wrong")
        if state is not None:
            rec = Record(f"{ns}:{POLICY_STATE}", state, c._clock(), None, "policy")
            yield Op(c.store.set, c.store.aset, (rec.key, c._codec.encode(rec), None), False,
                     "judge", "store")
        return bool(kept)

    # -- feedback ----------------------------------------------------------------------
    def feedback_flow(self, hit: CacheHit | Mapping[str, Any] | str, correct: bool
                      ) -> tuple[Generator[Op, Any, bool], Request]:
        if not isinstance(correct, bool):
            raise ConfigError("correct must be True or False", parameter="correct")
        c = self._cache
        meta: Mapping[str, Any]
        if isinstance(hit, CacheHit):
            meta = hit.metadata
        elif isinstance(hit, Mapping):
            meta = hit
        elif isinstance(hit, str):
            meta = self.teacher.hit_metadata(hit)
        else:
            raise ConfigError("feedback takes a CacheHit, its metadata or a key",
                              parameter="hit")
        meta = self._checked(meta)
        req = Request("feedback", {}, Controls(), c.namespace, meta["key"], False, False,
                      None, c.similarity_threshold, False)
        return self._feedback(meta, correct, req), req

    def _checked(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """A report's metadata, refused unless it names an entry of this cache's own
        namespace (an exact report deletes it: another namespace's entry is not the
        caller's to delete or mark) with a similarity that is a cosine: a NaN, an
        infinity or a 2.0 would be kept as evidence the policy learns from (a NaN broke
        its model's binning) and the index stores (unreadable once stored)."""
        ns = self._cache.namespace
        key, rkey = meta.get("key"), meta.get("request_key")
        for name, k in (("key", key), ("request_key", rkey)):
            if k is None and name == "request_key":
                continue
            if not isinstance(k, str) or not k.startswith(f"{ns}:") or RESERVED_MARK in k:
                raise ConfigError(f"feedback's {name} must be a key of this cache's "
                                  f"namespace {ns!r}, got {str(k)[:80]!r}", parameter="hit")
        sim = meta.get("similarity")
        if sim is not None and (isinstance(sim, bool) or not isinstance(sim, (int, float))
                                or not -1.001 <= sim <= 1.001):  # also refuses NaN
            raise ConfigError(f"feedback's similarity must be a cosine in [-1, 1], got "
                              f"{str(sim)[:40]!r}", parameter="hit")
        return {**meta, "similarity": None if sim is None else min(max(float(sim), -1.0),
                                                                     1.0)}

    def _feedback(self, meta: Mapping[str, Any], correct: bool, req: Request
                  ) -> Generator[Op, Any, bool]:
        """True when the report reached a live entry: False when the entry was gone
        (deleted, expired) or a backend could not be reached, so nothing was done.
        The policy still learns from a report on a semantic hit that was served."""
        c = self._cache
        key = meta["key"]
        c._stats.incr("feedback_right" if correct else "feedback_wrong")
        raw = yield Op(c.store.get, c.store.aget, (key,), None, "store", "store")
        rec = c._decode(raw, req, key)
        live = rec is not None and (
            rec.expires_at is None or rec.expires_at > c._clock())
        if meta.get("stage") == "exact" or c.index is None:
            if not correct:  # the stored answer itself is wrong for its own request
                n = yield Op(c.store.delete, c.store.adelete, ([key],), 0, "store", "store")
                if c.index is not None:
                    yield Op(c.index.delete, c.index.adelete, ([key],), 0, "store", "index")
                return live and n > 0
            return live
        rkey = meta.get("request_key")
        obs, history = self.teacher.feedback(meta, correct,
                                             query_digest(rkey) if rkey else None)
        kept = yield from self.observe(key, obs, history, c._verified or c.policy,
                                       c.namespace, audited=False)
        return live and kept

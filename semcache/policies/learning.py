"""The learning loop of adaptive policies: judging explorations, feedback, saved state.

A policy that learns (``DecisionPolicy.learns``, the verified policy) gets its evidence
from three places, all here: an *explored* candidate's cached answer is judged against
the fresh answer when that is stored; a caller's ``cache.feedback(hit, correct)``
reports on a served hit; and the policy's model is saved in the exact store every 25
judgements and restored once per process. Each outcome is stored with its entry in the
index (``observe``) and handed to the policy (``DecisionPolicy.observe``).

The steps are the pipeline's ops (semcache/_pipeline.py), run by the cache's drivers,
so they fail open, are timed and counted like every other backend call. For a policy
that does not learn (the static threshold) every step here is a no-op.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from .._config import Controls
from .._entries import Observation
from .._errors import ConfigError, SemcacheError
from .._pending import CacheHit
from .._pipeline import FAILED, Op, Request, query_digest
from .._record import Record
from .base import DecisionPolicy

if TYPE_CHECKING:
    from .._pipeline import Pipeline

__all__ = ["Learning"]

#: the exact-store key (under the cache's namespace) of a learning policy's saved model
POLICY_STATE = "__semcache_policy_state__"
#: judgements between two saves of the policy's model
SAVE_EVERY = 25

#: what a served semantic hit leaves for its feedback: (entry key, similarity, request
#: key, the entry's judged history when it was served)
_Seen = tuple[str, float, str, tuple[Observation, ...]]


class Learning:
    """A cache's learning loop; the policy it teaches is the one each request used."""

    def __init__(self, cache: Pipeline) -> None:
        self._cache = cache
        self._loaded = False
        #: recent semantic hits by entry and request key, so feedback can teach the
        #: policy what kind of candidate the hit was; bounded (two slots a hit)
        self._recent_hits: LRUCache[str, _Seen] = LRUCache(maxsize=4096)

    def load_state(self, policy: DecisionPolicy) -> Generator[Op, Any, None]:
        """Restore a learning policy's model from the store, once per process."""
        if self._loaded or not policy.learns:
            return
        self._loaded = True
        c = self._cache
        raw = yield Op(c.store.get, c.store.aget, (f"{c.namespace}:{POLICY_STATE}",), None,
                       "exact", "store")
        if raw is not None:
            try:
                policy.load_state(c._codec.decode(raw).value)
            except SemcacheError as exc:
                c._faults.failed("policy state", exc)

    def remember_hit(self, key: str, request_key: str, similarity: float,
                     history: Sequence[Observation] = ()) -> None:
        got = (key, similarity, request_key, tuple(history))
        self._recent_hits[request_key] = got
        self._recent_hits[key] = got

    def judge(self, req: Request, query: str, fresh: Any) -> Generator[Op, Any, None]:
        """Judge the explored candidate's cached answer against the fresh one; learn."""
        cand, policy, c = req.explore, req.policy, self._cache
        assert cand is not None and policy is not None and c.judge is not None
        assert c.index is not None
        raw = yield Op(c.store.get, c.store.aget, (cand.key,), FAILED, "judge", "store")
        crec = None if raw is FAILED else c._decode(raw, req)
        if crec is None:
            return
        j = c.judge
        correct = yield Op(j.judge, j.ajudge, (query, cand.prompt, crec.value, fresh), None,
                           "judge", "judge")
        if correct is None:
            return
        obs = Observation(cand.similarity, bool(correct),
                          None if correct else query_digest(req.key))
        yield from self.observe(cand.key, obs, cand.observations, policy, req.audited)
        # the judgement holds both ways: the fresh entry's answer is right (or wrong) for
        # the candidate's prompt at the same similarity, so the new entry starts with
        # that evidence instead of none (measured on Quora streams: a fifth more hits at
        # a 1% target, a tenth at 2%, since a paraphrase's next paraphrase often lands
        # on it).
        # Evidence for the entry only: the policy's model counts the judgement once.
        index = c.index
        yield Op(index.observe, index.aobserve,
                 (req.key, Observation(cand.similarity, bool(correct))), False, "judge",
                 "index")

    def observe(self, key: str, obs: Observation, history: Sequence[Observation],
                policy: DecisionPolicy, audited: bool = False) -> Generator[Op, Any, None]:
        c = self._cache
        assert c.index is not None
        yield Op(c.index.observe, c.index.aobserve, (key, obs), False, "judge", "index")
        policy.observe(obs, history, audited=audited)
        c._stats.incr("judged")
        if not obs.correct:
            c._stats.incr("judged_wrong")
        state = policy.state()
        if state is not None and c._stats.count("judged") % SAVE_EVERY == 0:
            rec = Record(f"{c.namespace}:{POLICY_STATE}", state, c._clock(), None, "policy")
            yield Op(c.store.set, c.store.aset, (rec.key, c._codec.encode(rec), None), False,
                     "judge", "store")

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
            key, sim, rkey, _ = self._recent_hits.get(hit, (hit, 1.0, "", ()))
            meta = {"key": key, "similarity": sim, "request_key": rkey or None,
                    "stage": "semantic" if rkey else "exact"}
        else:
            raise ConfigError("feedback takes a CacheHit, its metadata or a key",
                              parameter="hit")
        req = Request("feedback", {}, Controls(), c.namespace, meta["key"], False, False,
                      None, c.similarity_threshold, False)
        return self._feedback(meta, correct), req

    def _feedback(self, meta: Mapping[str, Any], correct: bool) -> Generator[Op, Any, bool]:
        c = self._cache
        key = meta["key"]
        c._stats.incr("feedback_right" if correct else "feedback_wrong")
        if meta.get("stage") == "exact" or c.index is None:
            if not correct:  # the stored answer itself is wrong for its own request
                yield Op(c.store.delete, c.store.adelete, ([key],), 0, "store", "store")
                if c.index is not None:
                    yield Op(c.index.delete, c.index.adelete, ([key],), 0, "store", "index")
            return True
        sim = float(meta.get("similarity") or 1.0)
        rkey = meta.get("request_key")
        obs = Observation(sim, correct, None if correct or not rkey else query_digest(rkey))
        policy = c._verified or c.policy
        # the entry's history when the hit was served, so the policy learns what kind
        # of candidate it was (confirmed, fresh, ...); unknown once the hit is forgotten
        seen = self._recent_hits.get(rkey) if rkey else None
        history = seen[3] if seen is not None and seen[0] == key else ()
        yield from self.observe(key, obs, history, policy, audited=False)
        return True

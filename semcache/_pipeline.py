"""The lookup pipeline: the lookup and store flows and the two drivers that run them.

The pipeline is written once, as generators that *yield* the I/O they need (``Op``: a
backend's bound method and its async twin, the arguments, and the value to use if the
call fails) and receive the result. ``_drive`` calls ``op.call`` and ``_adrive`` awaits
``op.acall``, so ``get_cache`` and ``async_get_cache`` share every line of logic (httpx's
``auth_flow`` pattern), and a step names the backend method it runs, for a reader, an
IDE and mypy alike. The drivers are also the one place where backend failures are
timed, counted, logged once per burst and turned into the operation's fallback value
(fail open), unless the cache was built with ``on_error="raise"``.

``Pipeline`` is a mixin of ``Cache`` (semcache/_cache.py, the facade); the learning
loop of adaptive policies (judging, observations, feedback, saved state) is
semcache/_learning.py (its ops) over semcache/policies/learning.py (what it knows).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ._config import UNSET, CacheMode, Controls, check_cache_ttl
from ._entries import Candidate, IndexEntry
from ._errors import (
    BackendError,
    ConfigError,
    IntegrityError,
    SemcacheError,
)
from ._keys import (
    SEMANTIC_CALL_TYPES,
    SemanticSplit,
    base_call_type,
    check_call_type,
    exact_key,
    infer_call_type,
    semantic_split,
)
from ._pending import CacheHit, Pending
from ._record import Record, to_jsonable
from .policies.base import Decision, DecisionPolicy
from .verifiers import Verdicts, rank

if TYPE_CHECKING:
    from ._judges import Judge
    from ._keys import KeyParams, QueryMode
    from ._learning import Learning
    from ._policies_by_ns import PoliciesByNamespace
    from ._record import RecordCodec
    from ._stats import FaultLog, Stats
    from .embedders.base import Embedder
    from .exact.base import ExactStore
    from .indexes.base import VectorIndex
    from .verifiers import Verifier

__all__ = ["FAILED", "Flow", "Op", "Pipeline", "Request", "query_digest"]

FAILED: Any = object()  # fallback of a fetch whose store call failed (not: absent)
#: what a fetch gets when the store answered with a record it could not read back
#: (IntegrityError): not absent (its vector stays), not a fault; _decode reads it as None
UNREADABLE: Any = object()


@dataclass(slots=True)
class Op:
    """One backend call of a flow: ``call(*args)`` on the sync path, ``await
    acall(*args)`` on the async one; ``fallback`` is the flow's value if it fails."""

    call: Callable[..., Any]
    acall: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...]
    fallback: Any
    stage: str  #: timing bucket: exact | embed | search | verify | fetch | store | judge
    component: str  #: "store" | "index" | "embedder" | "verifier" | "judge"


#: a pipeline flow: yields ops, receives their results, returns its value
Flow = Generator[Op, Any, Any]
T = TypeVar("T")


@dataclass(slots=True)
class Request:
    """One request as the pipeline sees it, from its lookup to its store."""

    call_type: str
    kwargs: Mapping[str, Any]
    controls: Controls
    namespace: str
    key: str
    read: bool
    write: bool
    ttl: float | None
    threshold: float
    semantic: bool
    split: SemanticSplit | None = None
    vector: np.ndarray[Any, Any] | None = None
    policy: DecisionPolicy | None = None
    explore: Candidate | None = None  #: candidate to judge against the fresh answer
    audited: bool = False
    verdicts: Verdicts | None = None
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class Pipeline:
    """The lookup and store flows and their drivers (a mixin of ``Cache``, which sets
    the attributes declared here)."""

    namespace: str
    mode: CacheMode
    ttl: float | None
    supported_call_types: frozenset[str]
    key_params: KeyParams
    similarity_threshold: float
    semantic_query: QueryMode
    top_k: int
    on_error: str
    store: ExactStore
    index: VectorIndex | None
    embedder: Embedder | None
    verifier: Verifier | None
    policy: DecisionPolicy
    _verified: DecisionPolicy | None
    _policies: PoliciesByNamespace
    _codec: RecordCodec
    _stats: Stats
    _faults: FaultLog
    _clock: Callable[[], float]
    _learning: Learning
    judge: Judge | None

    def _custom_key(self, kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
        raise NotImplementedError  # Cache's: a key from an overridden get_cache_key

    def _backend_name(self) -> str:
        return self.store.name if self.index is None else f"{self.store.name}+{self.index.name}"

    def _policy_for(self, req: Request) -> DecisionPolicy:
        return self._policies.for_request(self, req)  # semcache/_policies_by_ns.py

    # -- building a request ----------------------------------------------------------
    def _request(self, call_type: str | None, kwargs: Mapping[str, Any]) -> Request:
        ct = check_call_type(call_type) or infer_call_type(kwargs)
        controls = Controls.parse(kwargs.get("cache"))
        ns = controls.namespace or self.namespace
        caching = kwargs.get("caching")
        if caching is not None and not isinstance(caching, bool):
            # LiteLLM caches only when caching is unset or True: caching=0 or "false"
            # read as "on" here would cache a call the user turned caching off for
            raise ConfigError(f"caching must be true, false or None, got {caching!r}",
                              parameter="caching")
        # an inferred call type (direct API) is the sync name: its async twin counts too
        sup = self.supported_call_types
        enabled = (ct in sup or (call_type is None and "a" + ct in sup)) and caching is not False
        if self.mode is CacheMode.default_off:
            enabled = enabled and controls.use_cache is True
        elif controls.use_cache is False:
            enabled = False
        ttl = self.ttl if controls.ttl is UNSET else controls.ttl
        if kwargs.get("ttl") is not None:  # LiteLLM's ttl=
            # checked even where cache["ttl"] wins, or a typo in it would pass unseen
            top = check_cache_ttl(kwargs["ttl"], "ttl")
            if controls.ttl is UNSET:
                ttl = top
        kwargs = self._custom_key(self.key_params.filter(kwargs)) if enabled else kwargs
        read = enabled and not controls.no_cache and controls.s_maxage != 0
        write = enabled and not controls.no_store and ttl != 0  # ttl=0: keep nothing
        threshold = (controls.similarity_threshold
                     if controls.similarity_threshold is not None else self.similarity_threshold)
        semantic = self.index is not None and base_call_type(ct) in SEMANTIC_CALL_TYPES
        key = exact_key(ns, ct, kwargs) if (read or write) else ""
        return Request(ct, kwargs, controls, ns, key, read, write, ttl, threshold, semantic)

    def _split(self, req: Request) -> SemanticSplit | None:
        if req.split is None and req.semantic:
            req.split = semantic_split(req.namespace, req.call_type, req.kwargs,
                                       self.semantic_query)
        return req.split

    def _decode(self, raw: bytes | None, req: Request, key: str) -> Record | None:
        """The record read under ``key``, or None; an unreadable one, or another entry's
        record copied or planted under ``key``, is a counted integrity miss."""
        if raw is None or raw is UNREADABLE:  # UNREADABLE: counted by _failed
            return None
        try:
            rec = self._codec.decode(raw)
            if rec.key != key:
                raise IntegrityError(f"the record under {key[:80]!r} is another entry's "
                                     f"({rec.key[:80]!r})")
            return rec
        except IntegrityError as exc:
            self._rejected(exc, req)
            if self.on_error == "raise":
                raise
            return None

    def _rejected(self, exc: IntegrityError, req: Request) -> None:
        self._stats.incr("integrity_rejections")
        self._faults.failed("store (integrity)", exc)
        req.errors.append(f"integrity: {exc}")

    @staticmethod
    def _fresh(rec: Record, req: Request, now: float) -> bool:
        if rec.expires_at is not None and rec.expires_at <= now:
            return False
        s = req.controls.s_maxage
        return s is None or now - rec.created_at < s

    # -- the lookup ------------------------------------------------------------------
    def _lookup_flow(self, req: Request) -> Generator[Op, Any, Pending]:
        t0 = time.perf_counter()
        if not req.read:
            self._stats.incr("skipped_reads")
            return self._outcome(req, None, None, t0, decision="skipped")
        store = self.store
        raw = yield Op(store.get, store.aget, (req.key,), None, "exact", "store")
        rec = self._decode(raw, req, req.key)
        now = self._clock()
        if rec is not None and self._fresh(rec, req, now):
            return self._outcome(req, rec, None, t0, stage="exact", similarity=1.0, now=now)
        nearest: Candidate | None = None
        decision = "no_candidate"
        estimated = None
        split = self._split(req) if req.semantic else None
        if split is not None:
            emb, index = self.embedder, self.index
            assert emb is not None and index is not None
            vecs = yield Op(emb.embed, emb.aembed, ([split.query],), None, "embed", "embedder")
            if vecs is not None:
                req.vector = vecs[0]
                cands = yield Op(index.search, index.asearch,
                                 (req.vector, split.context, self.top_k, now), [],
                                 "search", "index")
                # a wrong hit reported for this very query is never served to it again
                qd = query_digest(req.key)
                cands = [c for c in cands
                         if not any(o.query == qd and not o.correct for o in c.observations)]
                policy = req.policy = self._policy_for(req)
                yield from self._learning.load_state(policy, req.namespace)
                if self.verifier is not None:
                    cands, rejected = yield from self._verify_flow(req, split.query, cands)
                    if rejected is not None:
                        decision, nearest = rejected
                d: Decision | None = None
                served = False
                try:
                    while cands:
                        d = policy.decide(split.query, cands, req.threshold,
                                          target_error_rate=req.controls.target_error_rate)
                        decision, estimated, nearest = d.reason, d.estimated_error, d.candidate
                        if d.action == "explore" and d.candidate is not None:
                            req.explore, req.audited = d.candidate, d.reason == "audited"
                            break
                        if d.action != "serve" or d.candidate is None:
                            break
                        c = d.candidate
                        raw = yield Op(store.get, store.aget, (c.key,), FAILED, "fetch",
                                       "store")
                        if raw is FAILED:  # store down: a miss, but keep the vector
                            nearest = None
                            break
                        crec = self._decode(raw, req, c.key)
                        cands.remove(c)
                        nearest = None
                        if raw is None or (crec is not None and crec.expires_at is not None
                                           and crec.expires_at <= now):
                            # gone: drop its vector, unless a writer stored it again since
                            if (yield Op(index.delete_if_unchanged, index.adelete_if_unchanged,
                                         (c,), False, "fetch", "index")):
                                self._stats.incr("stale_candidates_removed")
                            continue
                        if crec is None or crec.context != split.context or \
                                not self._fresh(crec, req, now):
                            continue  # tampered, raced or older than s-maxage: the next
                        self._learning.remember_hit(c.key, req.key, c.similarity,
                                                    c.observations)
                        served = True
                        return self._outcome(req, crec, c, t0, stage="semantic",
                                             similarity=c.similarity, now=now,
                                             decision=d.reason, estimated=d.estimated_error)
                finally:
                    # once per lookup, however many stale candidates it skipped: one
                    # lookup is one decision in the policy's counts and budget; a
                    # decision to serve that found nothing to serve was a miss
                    if d is not None:
                        policy.record(d if served or d.action != "serve"
                                      else Decision("miss", None, "no_candidate"))
        return self._outcome(req, None, nearest, t0, decision=decision, estimated=estimated)

    def _outcome(self, req: Request, rec: Record | None, cand: Candidate | None,
                 t0: float, *, stage: str = "miss", similarity: float | None = None,
                 now: float | None = None, decision: str | None = None,
                 estimated: float | None = None) -> Pending:
        total = (time.perf_counter() - t0) * 1000
        timings = {k: v * 1000 for k, v in req.timings.items()}
        timings["total"] = total
        meta: dict[str, Any] = {
            "cache_hit": rec is not None,
            "stage": stage,
            "similarity": similarity,
            "threshold": req.threshold if req.semantic else None,
            "matched_prompt": None,
            "key": req.key,
            "age_s": None,
            "ttl_remaining_s": None,
            "backend": self._backend_name(),
            "embedder": self.embedder.model_id if req.semantic and self.embedder else None,
            "namespace": req.namespace,
            "timings_ms": timings,
            "policy": (req.policy or self.policy).name if req.semantic else None,
            "decision": decision if rec is None else (decision or "served"),
        }
        if req.errors:
            meta["errors"] = list(req.errors)
        if self.verifier is not None and req.semantic:
            meta["verifier"] = self.verifier.name
            if req.verdicts is not None:
                meta.update(req.verdicts.metadata(cand.key if rec is not None and cand
                                                  else None))
        if rec is None:
            if cand is not None:
                meta["nearest_similarity"] = cand.similarity
                meta["nearest_prompt"] = cand.prompt
            if estimated is not None:
                meta["estimated_error"] = estimated
            if req.read:
                self._stats.lookup("miss", total, cand.similarity if cand else None)
            return Pending(self, req, None, meta)
        assert now is not None
        meta["key"] = rec.key
        meta["age_s"] = max(0.0, now - rec.created_at)
        meta["ttl_remaining_s"] = None if rec.expires_at is None else rec.expires_at - now
        meta["matched_prompt"] = rec.prompt if cand is None else cand.prompt
        if estimated is not None:
            meta["estimated_error"] = estimated
        if stage == "semantic":
            meta["request_key"] = req.key
        self._stats.lookup(stage, total, similarity if stage == "semantic" else None)
        hit: CacheHit = CacheHit(rec.value, rec.kind, meta)
        return Pending(self, req, hit, meta)

    def _verify_flow(self, req: Request, query: str, cands: list[Candidate]
                     ) -> Generator[Op, Any, tuple[list[Candidate],
                                                   tuple[str, Candidate | None] | None]]:
        """The candidates the verifier passes, in the index's order; with the miss's reason
        and near miss when it passes none. Only candidates above the cosine floor are
        scored (one batched call), so a lookup with nothing close costs nothing more."""
        above = [c for c in cands if c.similarity >= req.threshold]
        if not above:  # nothing worth a look: the policy misses on the cosine as before
            return cands, None
        v = self.verifier
        assert v is not None
        scores = yield Op(v.checked, v.achecked, (query, [c.prompt for c in above],
                                                [c.similarity for c in above]),
                          None, "verify", "verifier")
        passed, req.verdicts = rank(above, scores, v.threshold,
                                    lambda prompt: v.explain(query, prompt))
        if scores is not None and req.policy is not None and req.policy.learns:
            # a learning policy draws its own line on the score (issue 20): it sees every
            # scored candidate, bar those under a verifier_threshold the user set (veto)
            passed = [replace(c, score=float(s)) for c, s in zip(above, scores)
                      if v.veto is None or s >= v.veto]
        if passed:
            return passed, None
        self._stats.incr("verifier_rejected" if scores is not None else "verifier_failed")
        return [], ("verifier_rejected" if scores is not None else "verifier_failed",
                    req.verdicts.near_miss if req.verdicts else above[0])

    # -- the store -------------------------------------------------------------------
    def _store_flow(self, req: Request, result: Any) -> Generator[Op, Any, str | None]:
        if not req.write:
            self._stats.incr("skipped_writes")
            return None
        if result is None:
            return None
        value, kind = to_jsonable(result)
        now = self._clock()
        split = self._split(req) if req.semantic else None
        rec = Record(key=req.key, value=value, created_at=now,
                     expires_at=None if req.ttl is None else now + req.ttl,
                     call_type=base_call_type(req.call_type),
                     prompt=split.query if split else _prompt_of(req.kwargs),
                     context=split.context if split else None, kind=kind)
        raw = self._codec.encode(rec)  # an unserialisable response is the caller's error
        store = self.store
        # False: the store refused the value (too large); None or True: stored
        ok = yield Op(store.set, store.aset, (req.key, raw, req.ttl), False, "store", "store")
        if ok is False:
            return None
        self._stats.incr("stores")
        if split is not None:
            emb, index = self.embedder, self.index
            assert emb is not None and index is not None
            vecs = None if req.vector is None else req.vector[None, :]
            if vecs is None:  # no lookup ran first (add_cache alone), or it failed
                vecs = yield Op(emb.embed, emb.aembed, ([split.query],), None, "embed",
                                "embedder")
            if vecs is not None:
                entry = IndexEntry(req.key, split.context, req.namespace, split.query,
                                   rec.created_at, rec.expires_at)
                yield Op(index.add, index.aadd, ([entry], vecs), None, "store", "index")
                if self.verifier is not None:  # off its first hit's path
                    self.verifier.prepare(split.query)
            if req.explore is not None and req.policy is not None:
                yield from self._learning.judge(req, split.query, value)
        return req.key

    # -- the two drivers: the only place backend calls are made, timed and guarded --
    def _drive(self, flow: Generator[Op, Any, T], req: Request) -> T:
        result: Any = None
        timings = req.timings
        while True:
            try:
                op = flow.send(result)
            except StopIteration as stop:
                value: T = stop.value
                return value
            t = time.perf_counter()
            try:
                result = op.call(*op.args)
            except Exception as exc:
                result = self._failed(op, exc, flow, req)
            else:
                self._faults.succeeded(op.component)
            timings[op.stage] = timings.get(op.stage, 0.0) + time.perf_counter() - t

    async def _adrive(self, flow: Generator[Op, Any, T], req: Request) -> T:
        result: Any = None
        timings = req.timings
        while True:
            try:
                op = flow.send(result)
            except StopIteration as stop:
                value: T = stop.value
                return value
            t = time.perf_counter()
            try:
                result = await op.acall(*op.args)
            except Exception as exc:
                result = self._failed(op, exc, flow, req)
            else:
                self._faults.succeeded(op.component)
            timings[op.stage] = timings.get(op.stage, 0.0) + time.perf_counter() - t

    def _failed(self, op: Op, exc: Exception, flow: Flow, req: Request) -> Any:
        if isinstance(exc, IntegrityError) and op.component == "store":
            # a store that answered with a record it cannot read back (qdrant's answer
            # payload another writer shaped): an integrity miss, as _decode's, not a fault
            self._rejected(exc, req)
            if self.on_error == "raise":
                flow.close()
                raise exc
            return UNREADABLE if op.fallback is FAILED else op.fallback
        # Any exception from a backend, ours or a library's, is a fault of that
        # backend: the LLM call must still proceed (fail open) unless told to raise.
        backend = getattr(getattr(op.call, "__self__", None), "name", op.component)
        self._stats.error(op.component)
        self._faults.failed(op.component, exc, str(backend))
        req.errors.append(f"{op.component}: {type(exc).__name__}: {exc}")
        if self.on_error == "raise":
            flow.close()
            if isinstance(exc, SemcacheError):
                raise exc
            name = getattr(op.call, "__name__", "call")
            raise BackendError(f"{op.component} {name} failed: {exc}",
                               backend=str(backend)) from exc
        return op.fallback


def query_digest(request_key: str) -> str:
    """A short, stable digest of a request key (kept in an entry's wrong observations)."""
    return hashlib.sha256(request_key.encode()).hexdigest()[:16]


def _prompt_of(kwargs: Mapping[str, Any]) -> str | None:
    p = kwargs.get("prompt")
    if isinstance(p, str):
        return p
    i = kwargs.get("input")
    return i if isinstance(i, str) else None

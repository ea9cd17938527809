"""The embedded vector index (``faiss-semantic``): in process, optionally persisted.

Entries are sharded by context key, so a search only ever scores the entries of its
own context: a context with three entries among a million others is searched exactly,
with no loss of recall to a global top-k that other contexts crowd out (the failure of
post-filtering). A shard is a contiguous float32 matrix; an exact search is one call of
FAISS's single-threaded SIMD inner product that keeps the top k (plus a few spares) in
a heap as it scans, expired rows skipped among them (more expired rows than spares: one
masked pass, scored by the same kernel, with ``argpartition``).

Mid-sized shards (``compact_threshold``, 4k entries by default, up to the IVF's
threshold) also keep an int8 copy of their rows in k-means lists; the ``nprobe`` lists
nearest the query are scanned and their best ``max(4k, 32)`` rescored from the float32
rows. Right after an embedding the shard is out of the CPU caches, and fewer bytes is
what counts (10k: 1.50 ms exact, 1.06 the whole copy, 0.52 its lists; docs/performance.md).

Large shards (``approx_threshold`` entries, 20k by default) also get an approximate
FAISS index, ``IndexIVFScalarQuantizer`` (the copy's int8 codes and lists), used only to
*propose* candidates: they are re-scored exactly against the shard's float32 rows, so a
returned similarity is always the exact cosine and expiry is checked on the exact rows.
IVF rather than HNSW because its deletes are real and O(1) (``remove_ids`` through a
hashtable direct map: no tombstones, no periodic rebuild for deletes) and because it
builds a million 384-d vectors in ~2 minutes on two busy cores, where an HNSW took
72-133 s for 100k. When the best rescored candidate is poor (``reprobe_below``), 4x
more lists are probed: a near neighbour in an unprobed list is still found. The IVF is
rebuilt (retrained) when its shard has grown 4x since it was built, and dropped when
the shard shrinks below half the threshold. Measured numbers are in docs/indexes.md and
benchmarks/faiss_scale.py.

Persistence (``path=``): a folder shared by every process that opens it, forked or
independent (issue #26): ``manifest.json`` (format, model, dimension, metric) checked on
open, a snapshot, and one append-only log that every process writes under a short
cross-process lock and reads back before a lookup when a shared counter says another
process wrote. Details, and why compaction cannot drop an entry, in ``_faiss_log.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError, IntegrityError, InvalidRequestError
from .._threads import apply_process_limits
from . import _faiss_fork as _fork
from ._common import MALFORMED, check_vectors
from ._faiss_log import FolderLog
from ._faiss_records import (
    as_list,
    b64,
    entry_from_json,
    entry_json,
    stamp_from_json,
    vector_from_b64,
)
from ._faiss_shard import REPROBE_BELOW, Shard
from .base import Candidate, IndexEntry, Observation, VectorIndex

log = logging.getLogger("semcache.indexes.faiss")

__all__ = ["APPROX_THRESHOLD", "COMPACT_THRESHOLD", "NPROBE", "REPROBE_BELOW", "FaissIndex"]

APPROX_THRESHOLD = 20_000  #: exact search over 20k x 384 floats is about 1 ms
#: from this many rows an int8 copy in k-means lists proposes candidates for an exact
#: rescoring (``_faiss_shard.Compact``). Inside a hit it costs what the exact scan does
#: at 2k rows (0.95x), 0.59x at 5k, 0.35x at 10k (benchmarks/results/search_in_hit_s14.json)
COMPACT_THRESHOLD = 4_000
NPROBE = 32  #: lists probed of ~2 sqrt(n): 0.93 ms at 1M x 384 (benchmarks/search_1m.py)


class FaissIndex(VectorIndex):
    name = "faiss"

    def __init__(
        self,
        dim: int | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        model_id: str | None = None,
        metric: str = "cosine",
        fsync: bool = False,
        clock: Callable[[], float] = time.time,
        approx_threshold: int | None = APPROX_THRESHOLD,
        nprobe: int = NPROBE,
        reprobe_below: float | None = REPROBE_BELOW,
        compact_threshold: int | None = COMPACT_THRESHOLD,
    ) -> None:
        for name, value in (("approx_threshold", approx_threshold),
                            ("compact_threshold", compact_threshold)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 2):
                raise ConfigError(f"{name} must be an int >= 2 or None, got {value!r}",
                                  parameter=name)
        if isinstance(nprobe, bool) or not isinstance(nprobe, int) or nprobe < 1:
            raise ConfigError(f"nprobe must be a positive int, got {nprobe!r}",
                              parameter="nprobe")
        if reprobe_below is not None and not -1.0 <= reprobe_below <= 1.0:
            raise ConfigError(f"reprobe_below must be a similarity in [-1, 1] or None, got "
                              f"{reprobe_below!r}", parameter="reprobe_below")
        apply_process_limits()  # the thread policy applies on first build (_threads.py)
        self.approx_threshold = approx_threshold
        self.compact_threshold = compact_threshold
        self.nprobe = nprobe
        self.reprobe_below = reprobe_below
        if metric != "cosine":
            raise ConfigError("only the cosine metric is supported", parameter="metric")
        if dim is not None and (not isinstance(dim, int) or dim < 1):
            raise ConfigError(f"dim must be a positive int, got {dim!r}", parameter="dim")
        self._dim = dim
        self.model_id = model_id
        self.metric = metric
        self._clock = clock
        self._lock = threading.RLock()
        self._shards: dict[str, Shard] = {}
        self._where: dict[str, str] = {}  # key -> context
        self._ctx_ns: dict[str, str] = {}  # context -> namespace
        self._dirty: set[str] = set()  # contexts that lost entries (a move or a delete)
        self.path = Path(path) if path is not None else None
        self._disk: FolderLog | None = None
        if self.path is not None:
            disk = FolderLog(self.path, fsync=fsync)
            try:
                with disk.held():
                    self.model_id, self._dim = disk.check_manifest(metric, model_id, dim)
                    disk.write_manifest(metric, self.model_id, self._dim)
                    self._disk = disk
                    self._catch_up()
            except BaseException:
                self._disk = None
                disk.close()
                raise
        _fork.OPEN.add(self)

    # ------------------------------------------------------------------ public seam
    @property
    def dim(self) -> int | None:
        return self._dim

    def add(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> None:
        with self._lock, self._writing():
            vecs = self._check_vectors(vectors, len(entries))
            if self._disk is not None:  # logged first: a failed write changes nothing
                self._disk.append([{"op": "add", **entry_json(e), "v": b64(v)}
                                   for e, v in zip(entries, vecs)])
            for e, v in zip(entries, vecs):
                self._put(e, v)
            self._sync({e.context for e in entries} | self._dirty)
            self._maybe_compact()

    def search(self, vector: np.ndarray, context: str, k: int = 4,
               now: float | None = None) -> list[Candidate]:
        if k < 1:
            raise InvalidRequestError(f"k must be >= 1, got {k}")
        with self._lock:
            disk = self._disk
            if disk is not None and disk.stale():  # a memory read when nobody wrote
                with disk.held():
                    self._catch_up()
            q = self._check_vectors(vector, None)[0] if self._dim is not None else None
            shard = self._shards.get(context)
            if shard is None or q is None:
                return []
            return shard.search(q, k, self._clock() if now is None else now)

    def delete(self, keys: Sequence[str]) -> int:
        return self._delete(list(keys), None)

    def delete_if_unchanged(self, candidate: Candidate) -> bool:
        return self._delete([candidate.key],
                            (candidate.created_at, candidate.expires_at)) == 1

    def _delete(self, keys: list[str], unless: tuple[float, float | None] | None) -> int:
        """Delete ``keys``; with ``unless``, only those whose row still has these created
        and expiry times. Checked here under the folder lock, current to the log's end, and
        logged with the record (``"if"``), so every process applies the same deletes."""
        with self._lock, self._writing():
            present = [k for k in keys if self._holds(k, unless)]
            if present and self._disk is not None:
                cond = {} if unless is None else {"if": list(unless)}
                self._disk.append([{"op": "del", "keys": present, **cond}])
            gone = sum(self._remove(k) for k in present)
            self._sync(self._dirty)
            self._maybe_compact()
            return gone

    def clear(self, namespace: str) -> int:
        with self._lock, self._writing():
            if self._disk is not None:
                self._disk.append([{"op": "clear", "ns": namespace}])
            gone = self._clear(namespace)
            self._maybe_compact()
            return gone

    def observe(self, key: str, observation: Observation) -> bool:
        with self._lock, self._writing():
            ctx = self._where.get(key)
            if ctx is None:
                return False
            if self._disk is not None:
                self._disk.append([{"op": "obs", "key": key, "o": observation.to_json()}])
            self._shards[ctx].observe(key, observation)
            self._maybe_compact()
            return True

    async def aobserve(self, key: str, observation: Observation) -> bool:
        if self._disk is not None:
            return await asyncio.to_thread(self.observe, key, observation)
        return self.observe(key, observation)

    def count(self, namespace: str | None = None) -> int:
        with self._lock:
            self._refresh()
            if namespace is None:
                return len(self._where)
            return sum(s.n for c, s in self._shards.items() if self._ctx_ns[c] == namespace)

    def purge_expired(self, now: float | None = None) -> int:
        """Remove expired entries (search already ignores them); with a folder, the
        removal is a log record every process applies. The folder's lock is held from
        the choice of the expired entries to their removal: a peer that rewrites one in
        between (a fresh answer, a new expiry) must not have it deleted."""
        now = self._clock() if now is None else now
        with self._lock, self._writing():
            doomed = [s.keys[r] for s in self._shards.values()
                      for r in np.nonzero(s.expires[: s.n] <= now)[0].tolist()]
            return self.delete(doomed) if doomed else 0

    def compact(self) -> None:
        """Fold the shared log into a new snapshot now (it also happens on its own once
        the log outgrows the index)."""
        with self._lock, self._writing():
            if self._disk is not None:
                self._compact()

    def close(self) -> None:
        """Close this process's handles; other processes (forked or not) sharing the
        folder are unaffected: no lock is held between calls."""
        with self._lock:
            if self._disk is not None:
                self._disk.close()
                self._disk = None
            _fork.OPEN.discard(self)

    # In memory, and on a folder nobody else wrote to, a search does no I/O: inline beats
    # a thread hop (microseconds). Anything that takes the folder's lock (a write, a
    # catch-up) runs in a thread: the lock may be held by another process's compaction,
    # and the event loop must not wait for it.
    async def asearch(self, vector: np.ndarray, context: str, k: int = 4,
                      now: float | None = None) -> list[Candidate]:
        disk = self._disk
        if disk is not None and disk.stale():
            return await asyncio.to_thread(self.search, vector, context, k, now)
        return self.search(vector, context, k, now)

    async def aadd(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> None:
        if self._disk is not None:
            return await asyncio.to_thread(self.add, entries, vectors)
        self.add(entries, vectors)

    async def adelete(self, keys: Sequence[str]) -> int:
        if self._disk is not None:
            return await asyncio.to_thread(self.delete, keys)
        return self.delete(keys)

    async def acount(self, namespace: str | None = None) -> int:
        disk = self._disk
        if disk is not None and disk.stale():
            return await asyncio.to_thread(self.count, namespace)
        return self.count(namespace)

    def approximate_shards(self) -> int:
        """How many shards currently search through an approximate index (an IVF)."""
        with self._lock:
            return sum(s.ivf is not None and s.ivf.kind == "ivf"
                       for s in self._shards.values())

    def compact_shards(self) -> int:
        """How many shards currently scan an int8 copy first (``compact_threshold``)."""
        with self._lock:
            return sum(s.ivf is not None and s.ivf.kind == "compact"
                       for s in self._shards.values())

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"FaissIndex(dim={self._dim}, entries={len(self._where)}{where})"

    # ---------------------------------------------------------------- internals
    def _check_vectors(self, vectors: np.ndarray, n: int | None) -> np.ndarray:
        if self._dim is not None:
            return check_vectors(vectors, n, self._dim)
        arr = check_vectors(vectors, n, int(np.shape(vectors)[-1]) if np.ndim(vectors) else 0)
        self._dim = int(arr.shape[1])  # the first add fixes the dimension
        if self._disk is not None:  # add() holds the folder lock here
            self._disk.write_manifest(self.metric, self.model_id, self._dim)
        return arr

    def _put(self, e: IndexEntry, v: np.ndarray) -> None:
        old = self._where.get(e.key)
        if old is not None and old != e.context:
            self._remove(e.key)
        shard = self._shards.get(e.context)
        if shard is None:
            assert self._dim is not None
            shard = self._shards[e.context] = Shard(self._dim)
            self._ctx_ns[e.context] = e.namespace
        shard.put(e.key, v, e.prompt, e.created_at, e.expires_at)
        self._where[e.key] = e.context

    def _remove(self, key: str) -> bool:
        ctx = self._where.pop(key, None)
        if ctx is None:
            return False
        shard = self._shards[ctx]
        shard.remove(key)
        if shard.n == 0:
            del self._shards[ctx]
            del self._ctx_ns[ctx]
        else:
            self._dirty.add(ctx)
        return True

    def _holds(self, key: str, unless: tuple[float, float | None] | None) -> bool:
        ctx = self._where.get(key)
        return ctx is not None and (unless is None or self._shards[ctx].stamp(key) == unless)

    def _sync(self, contexts: set[str]) -> None:
        for ctx in contexts:
            shard = self._shards.get(ctx)
            if shard is not None:
                shard.sync(self.approx_threshold, self.nprobe, self.reprobe_below,
                           self.compact_threshold)
        self._dirty.clear()

    def _clear(self, namespace: str) -> int:
        gone = 0
        for ctx in [c for c, ns in self._ctx_ns.items() if ns == namespace]:
            shard = self._shards.pop(ctx)
            del self._ctx_ns[ctx]
            for k in shard.keys:
                del self._where[k]
            gone += shard.n
        return gone

    # -- the shared folder (semcache/indexes/_faiss_log.py); self._lock is held --
    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The folder's lock, with this process current: its writes land after every
        record it has applied, so every process applies one order."""
        disk = self._disk
        if disk is None:
            yield
            return
        with disk.held():
            # a writer that died after a complete record but before bumping the counter
            # leaves the file longer than what this process has read: read it too
            if disk.stale() or disk.log_size() != disk.off:
                self._catch_up()
            yield

    def _refresh(self) -> None:
        disk = self._disk
        if disk is not None and disk.stale():
            with disk.held():
                self._catch_up()

    def _catch_up(self) -> None:
        assert self._disk is not None
        try:
            self._catch_up_once()
        except BaseException:
            # this memory may have stopped part-way through what the folder holds: make
            # the next call reload it all (and fail again, as a counted index fault)
            # rather than carry on, or compact, from a view that lacks the rest
            self._disk.forget()
            raise

    def _catch_up_once(self) -> None:
        assert self._disk is not None
        self._disk.dim = self._dim  # a snapshot's vectors must have it
        up = self._disk.catch_up()
        if up.snapshot is not None:  # restart from the snapshot: drop this memory
            self._shards.clear()
            self._where.clear()
            self._ctx_ns.clear()
            self._dirty.clear()
            vecs, meta = up.snapshot
            if self._dim is None and vecs.ndim == 2 and vecs.shape[1]:
                self._dim = int(vecs.shape[1])
            for e, v in zip(meta, vecs):
                try:
                    entry = entry_from_json(e)
                    obs = [Observation.from_json(o) for o in as_list(e.get("o", []))]
                    self._check_row(v)
                except MALFORMED as exc:
                    self._skipped("snapshot.npz", exc)
                    continue
                self._put(entry, v)
                for o in obs:
                    self._shards[entry.context].observe(entry.key, o)
        touched = set(self._shards) if up.snapshot is not None else set()
        for op in up.records:
            try:
                self._apply(op, touched)
            except MALFORMED as exc:
                self._skipped("log.jsonl", exc)
        self._sync(touched | self._dirty)

    def _apply(self, op: Any, touched: set[str]) -> None:
        """One log record, checked whole before anything changes (a malformed one raises
        one of ``MALFORMED`` and changes nothing)."""
        if not isinstance(op, dict):
            raise TypeError(f"a record is a JSON object, not {type(op).__name__}")
        kind = op.get("op")
        if kind == "add":
            entry = entry_from_json(op)
            v = vector_from_b64(op["v"])
            if self._dim is None and v.shape[0]:
                self._dim = int(v.shape[0])
            self._check_row(v)
            self._put(entry, v)
            touched.add(entry.context)
        elif kind == "del":
            keys = as_list(op["keys"])
            # "if": a conditional delete's condition (which its writer saw hold, here)
            unless = None if op.get("if") is None else stamp_from_json(op["if"])
            if not all(isinstance(k, str) for k in keys):
                raise TypeError("keys are not strings")
            for k in keys:
                if self._holds(k, unless):
                    self._remove(k)
        elif kind == "clear":
            if not isinstance(op["ns"], str):
                raise TypeError("namespace is not a string")
            self._clear(op["ns"])
        elif kind == "obs":
            key, o = op["key"], Observation.from_json(op["o"])
            ctx = self._where.get(key) if isinstance(key, str) else None
            if ctx is not None:
                self._shards[ctx].observe(key, o)

    def _check_row(self, v: np.ndarray) -> None:
        if v.ndim != 1 or v.shape[0] != self._dim:
            # not one bad record but a folder of another model (or a manifest that lies
            # about it): refusing is clearer than skipping every entry one by one
            assert self._disk is not None
            raise IntegrityError(
                f"index at {str(self._disk.path)!r} holds a vector of dimension "
                f"{v.shape[-1] if v.ndim else 0} where manifest.json says {self._dim}: "
                "the folder is damaged or mixes models; use another folder or flush it")
        if not np.isfinite(v).all():
            raise ValueError("vector contains NaN or Infinity")

    def _skipped(self, file: str, exc: BaseException) -> None:
        assert self._disk is not None
        self._disk.skipped += 1
        log.warning("index at %s: skipped a malformed record in %s (%s); %d so far",
                    self._disk.path, file, exc, self._disk.skipped)

    def _maybe_compact(self) -> None:
        disk = self._disk
        if disk is not None and disk.lines > max(10_000, 2 * len(self._where)):
            self._compact()

    def _compact(self) -> None:
        """Under the folder lock, current to the log's end: this memory is exactly
        snapshot + log, so the new snapshot drops nothing any process acknowledged."""
        assert self._disk is not None
        entries, vecs = [], []
        ns = self._ctx_ns
        for shard in self._shards.values():
            for r, key in enumerate(shard.keys):
                prompt, created, expires = shard.meta[r]
                ctx = self._where[key]
                entries.append({"key": key, "ctx": ctx, "ns": ns[ctx], "p": prompt,
                                "c": created, "x": expires,
                                "o": [o.to_json() for o in shard.obs[r]]})
            vecs.append(shard.vecs[: shard.n])
        arr = np.concatenate(vecs) if vecs else np.zeros((0, self._dim or 0), np.float32)
        self._disk.compact(arr, entries)

    _snapshot = compact  # the name tests and older callers use


# -- fork safety (semcache/indexes/_faiss_fork.py): registered here, after _faiss_log's
# import registered filelock's own hooks (at-fork "before" hooks run in reverse order)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_fork.before, after_in_parent=_fork.after_in_parent,
                        after_in_child=_fork.after_in_child)

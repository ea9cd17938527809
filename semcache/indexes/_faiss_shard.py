"""A shard of the embedded index: one context's entries as a contiguous float32 matrix,
searched exactly; mid-sized shards also keep an int8 copy in k-means lists (``Compact``),
large ones the same structure counted as an approximate index (``kind`` "ivf"). Both only
propose candidates, rescored from the float32 rows. The design and its measurements:
``faiss.py``, docs/indexes.md."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import MAX_OBSERVATIONS, Candidate, Observation

__all__ = ["REPROBE_BELOW", "Compact", "Shard"]

_INF = np.inf
#: when the best candidate found scores below this, probe 4x more lists before answering:
#: a near neighbour (a paraphrase) that sat in an unprobed list is then still found,
#: at the cost of a wider scan only for queries with nothing similar nearby
REPROBE_BELOW = 0.5
#: rows the exact search asks for beyond ``k``: up to this many expired rows among the
#: best still leave ``k`` live ones without a second, masked scan
_SPARE = 4


#: below this many rows numpy's product stays on the calling thread (OpenBLAS threads a
#: gemv only past ~9k multiply-adds, i.e. ~24 rows of 384) and FAISS need not be imported
_SMALL = 16
_fvec: Any = None
_knn: Any = None


def scores(mat: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``mat @ q`` for a C-contiguous float32 ``mat``, on the calling thread.

    Why not BLAS (issue #25): OpenBLAS runs a gemv of a 2k-row shard on its own threads,
    which fought onnxruntime's threads for the cores right after each embedding; a
    search alone took 0.07 ms at 2k rows but 2.5 ms inside a hit. FAISS's SIMD kernel
    takes no thread pool and measured as fast as single-threaded BLAS or faster
    (2k: 0.056 ms, 10k: 0.33 ms, 100k: 9.3 ms on 2 busy cores; docs/performance.md).
    """
    n = len(mat)
    if n <= _SMALL or mat.dtype != np.float32 or not mat.flags.c_contiguous:
        return mat @ q  # the kernel reads raw rows: only a dense float32 matrix may go
    global _fvec
    if _fvec is None:
        import faiss

        _fvec = (faiss.fvec_inner_products_ny,  # type: ignore[attr-defined]
                 faiss.swig_ptr)
    kernel, ptr = _fvec
    q = np.ascontiguousarray(q, dtype=np.float32)
    if q.size != mat.shape[1]:  # the kernel reads raw memory: a short query overruns it
        raise ValueError(f"query of {q.size} components for rows of {mat.shape[1]}")
    out = np.empty(n, dtype=np.float32)
    kernel(ptr(out), ptr(q), ptr(mat), mat.shape[1], n)
    return out


#: the most rows ``top_rows`` scans: FAISS 1.15 runs a one-query top-k on the calling
#: thread over a few thousand rows but starts an OpenMP team over ~10k rows and more,
#: the thread fight ``scores`` exists to avoid (tests/indexes/test_faiss_exact.py counts
#: the process's threads at this cap); the int8 copy takes over from 4k rows
#: (``COMPACT_THRESHOLD``) anyway
_TOP_ROWS_MAX = 4096


def top_rows(mat: np.ndarray, q: np.ndarray, k: int) -> tuple[list[float], list[int]] | None:
    """The ``k`` best rows of ``mat @ q`` and their scores, best first; ``None`` where
    ``scores`` would not use FAISS's kernel (or past ``_TOP_ROWS_MAX`` rows).

    Why (issue #25): scoring with ``scores`` and selecting with ``argpartition`` and
    ``argsort`` is four numpy calls and two index arrays more, and right after an
    embedding each costs several times what it costs warm. FAISS's ``knn_inner_product``
    scores with the same per-row kernel (the same float32 values, bit for bit) and keeps
    the top ``k`` in a heap as it goes, in one call that releases the GIL.
    """
    n = len(mat)
    if (n <= _SMALL or n > _TOP_ROWS_MAX or mat.dtype != np.float32
            or not mat.flags.c_contiguous):
        return None
    global _knn
    if _knn is None:
        import faiss

        _knn = (faiss.knn_inner_product, faiss.swig_ptr)  # type: ignore[attr-defined]
    knn, ptr = _knn
    q = np.ascontiguousarray(q, dtype=np.float32)
    if q.size != mat.shape[1]:  # the kernel reads raw memory: a short query overruns it
        raise ValueError(f"query of {q.size} components for rows of {mat.shape[1]}")
    k = min(k, n)
    sims = np.empty(k, dtype=np.float32)
    rows = np.empty(k, dtype=np.int64)
    knn(ptr(q), ptr(mat), mat.shape[1], 1, n, k, ptr(sims), ptr(rows))
    return sims.tolist(), rows.tolist()


def _nlist(n: int) -> int:
    """~2 sqrt(n) inverted lists; at least 39 rows per list (faiss's own minimum for
    training), at most 2048 so (re)training stays bounded."""
    return int(max(1, min(2048, round(2 * np.sqrt(n)), n // 39)))


def _remove_ids(index: Any, ids: np.ndarray) -> None:
    """O(1) per id: both indexes keep a hashtable direct map."""
    import faiss

    ids = np.ascontiguousarray(ids, dtype=np.int64)
    index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)))


#: headroom of the int8 codes over the largest component seen when ``Compact`` was built
_CODE_HEADROOM = 1.5
#: rows encoded and placed at a time: a 1M-row build would otherwise hold a 1M x 2048
#: matrix of centroid scores (8 GB) and float copies of every row's codes
_ADD_CHUNK = 8192


class Compact:
    """An int8 copy of a mid-sized shard, in k-means lists, to propose candidates.

    Why (issue #25): right after an embedding the model's weights have pushed the shard
    out of the CPU caches, so an exact scan of 10k x 384 float32 rows (15 MB) reads
    them from memory: 0.7-0.9 ms inside a hit against 0.3 ms alone. One byte per
    component is a quarter of that traffic, and scanning only the ``nprobe`` lists
    nearest the query (of ~2 sqrt(n), as the IVF) a fraction of that. FAISS scans the
    codes with its SIMD kernel (``QT_8bit_direct_signed``, no OpenMP team for one
    query); its top ``max(4k, 32)`` are rescored exactly from the float32 rows, so every
    similarity returned is the exact cosine and, among the lists probed, the exact
    top-k is missed only if some 30 rows score within the codes' error (about 1e-3).

    Codes are ``round(v_i * scale_i)`` with one scale per dimension (the largest
    component seen at build, times ``_CODE_HEADROOM``; later outliers are clipped, which
    only blurs their proposal score). The query is divided by the same scales (and
    quantized to int8 too, as the kernel wants), so the kernel's integer dot product
    ranks rows as the cosine does, up to the rounding, at no extra cost per row. The
    coarse quantizer holds the centroids times the scales, so the scaled query ranks
    lists by its cosine to their centroids too; rows are put in the list of their
    nearest centroid by their float32 values (``add_core``). FAISS's trained 8-bit codes
    (each dimension's range from a sample, widened by half for small ones), which the IVF
    had until 2026-12-07, found the exact best for 40 of 100 queries inside a tight
    cluster (pairwise cosine 0.9975) where these found 90
    (benchmarks/results/tight_clusters.json as committed in 1c901ef).

    Large shards (``approx_threshold`` rows, 20k by default) have the same structure,
    counted apart (``kind`` "ivf", ``approximate_shards``); a copy that grows into that
    tier is relabelled, not rebuilt. With FAISS's trained codes, which the IVF had until
    2026-12-07, 1M real-embedding rows searched in 2.22 ms p50 at recall@1 0.994; with
    these, in the same lists with the same 32 probed, 1.57 ms at 0.995 in the same run
    (benchmarks/results/search_1m_s14.json, ``python benchmarks/search_1m.py --nlist 2000
    --nprobe 32``; both over the 1 ms asked on that day's machine, which had measured
    0.91 ms for the trained codes a day before). At 1M, 1000 lists missed the 1 ms target
    at any nprobe, 2048 with 32 probed met it then (issue #25), for a 3.5x longer build;
    ``_nlist`` caps the lists at 2048.
    """

    __slots__ = ("built_n", "centroids", "index", "inv_scale", "kind", "params",
                 "reprobe_below", "scale", "wide")

    def __init__(self, vecs: np.ndarray, ids: np.ndarray, nprobe: int = 32,
                 reprobe_below: float | None = REPROBE_BELOW, kind: str = "compact") -> None:
        import faiss

        self.kind = kind  # "compact" or "ivf": the tier it serves (Shard.sync)

        n, dim = vecs.shape
        top = np.abs(vecs).max(axis=0) * _CODE_HEADROOM if n else np.ones(dim, np.float32)
        self.scale = (127.0 / np.maximum(top, 1e-6)).astype(np.float32)
        self.inv_scale = (1.0 / self.scale).astype(np.float32)
        nlist = _nlist(n)
        if nlist > 1:
            sample = vecs
            if n > 64 * nlist:  # as the IVF: 64 rows a list are plenty to route by
                pick = np.random.default_rng(n).choice(n, 64 * nlist, replace=False)
                sample = vecs[np.sort(pick)]
            km = faiss.Kmeans(dim, nlist, niter=10, spherical=True, seed=n)
            km.train(np.ascontiguousarray(sample, dtype=np.float32))
            self.centroids: np.ndarray | None = km.centroids
        else:
            self.centroids = None  # one list: nothing to route
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(np.zeros((1, dim), np.float32) if self.centroids is None
                      else self.centroids * self.scale)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit_direct_signed,
            faiss.METRIC_INNER_PRODUCT, False)
        index.is_trained = True  # direct codes: nothing to learn; the lists are set above
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        quantizer.this.disown()  # type: ignore[attr-defined]  # the IVF owns it now
        index.own_fields = True
        self.index = index
        self.built_n = n
        params: Any = faiss.SearchParametersIVF
        self.params = params(nprobe=min(nprobe, nlist))
        self.wide = params(nprobe=min(4 * nprobe, nlist))
        self.reprobe_below = reprobe_below if nprobe < nlist else None
        self.add(vecs, ids)

    def add(self, vecs: np.ndarray, ids: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        for s in range(0, len(vecs), _ADD_CHUNK):  # bounded temporaries at 1M rows
            self._add(vecs[s:s + _ADD_CHUNK], ids[s:s + _ADD_CHUNK])

    def _add(self, vecs: np.ndarray, ids: np.ndarray) -> None:
        import faiss

        codes = np.clip(np.rint(vecs * self.scale), -128.0, 127.0).astype(np.float32)
        if self.centroids is None:
            lists = np.zeros(len(vecs), dtype=np.int64)
        elif len(vecs) <= 64:  # a cache's writes: on the calling thread, as a search
            lists = np.fromiter((int(np.argmax(scores(self.centroids, v))) for v in vecs),
                                dtype=np.int64, count=len(vecs))
        else:  # a build: one product (BLAS may thread it)
            lists = np.argmax(vecs @ self.centroids.T, axis=1).astype(np.int64)
        ids = np.ascontiguousarray(ids)
        ptr = faiss.swig_ptr
        self.index.add_core(len(codes), ptr(codes), ptr(ids), ptr(lists))

    def remove(self, ids: np.ndarray) -> None:
        _remove_ids(self.index, ids)

    def query(self, q: np.ndarray) -> np.ndarray:
        """``q`` as the kernel reads it: divided by the codes' scales, spread over their
        range and rounded (the kernel reads the query as int8 too, and truncates); a
        positive factor does not change the ranking, of rows or of lists."""
        qs = q * self.inv_scale
        top = float(np.abs(qs).max())
        return (np.rint(qs * (127.0 / top)) if top > 0 else qs)[None, :]

    def propose(self, q: np.ndarray, k: int, wide: bool = False) -> np.ndarray:
        _, ids = self.index.search(self.query(q), k, params=self.wide if wide else self.params)
        return ids[0][ids[0] >= 0]


class Shard:
    """One context's entries: rows of a growable matrix, swap-remove on delete.

    Each entry also has a stable int64 id (rows move on delete, ids do not) naming it in
    the shard's approximate index, when it has one.
    """

    __slots__ = (
        "dim",
        "expires",
        "id_row",
        "ids",
        "ivf",
        "keys",
        "meta",
        "n",
        "next_id",
        "obs",
        "pending",
        "row",
        "vecs",
    )

    def __init__(self, dim: int, capacity: int = 8) -> None:
        self.dim = dim
        self.vecs = np.empty((capacity, dim), dtype=np.float32)
        self.expires = np.empty(capacity, dtype=np.float64)
        self.keys: list[str] = []
        self.meta: list[tuple[str, float, float | None]] = []  # prompt, created, expires
        self.obs: list[tuple[Observation, ...]] = []
        self.row: dict[str, int] = {}
        self.n = 0
        self.ids = np.empty(capacity, dtype=np.int64)
        self.id_row: dict[int, int] = {}
        self.next_id = 0
        self.ivf: Compact | None = None
        self.pending: set[int] = set()  # ids written since the last sync to the IVF

    def put(self, key: str, vec: np.ndarray, prompt: str, created: float,
            expires: float | None) -> None:
        r = self.row.get(key)
        if r is None:
            if self.n == len(self.vecs):
                cap = len(self.vecs) * 2
                self.vecs = np.resize(self.vecs, (cap, self.dim))
                self.expires = np.resize(self.expires, cap)
                self.ids = np.resize(self.ids, cap)
            r = self.n
            self.n += 1
            self.row[key] = r
            self.keys.append(key)
            self.meta.append((prompt, created, expires))
            self.obs.append(())
            self.ids[r] = i = self.next_id
            self.next_id += 1
            self.id_row[i] = r
        else:
            self.meta[r] = (prompt, created, expires)  # observations are kept
            i = int(self.ids[r])
            if self.ivf is not None and i not in self.pending:
                self.ivf.remove(np.array([i]))  # its vector changed: re-added by sync()
        self.vecs[r] = vec
        self.expires[r] = _INF if expires is None else expires
        if self.ivf is not None:
            self.pending.add(i)

    def stamp(self, key: str) -> tuple[float, float | None]:
        """The created and expiry times of ``key``'s row: what tells one write of a key
        from a later one (``FaissIndex.delete_if_unchanged``)."""
        _, created, expires = self.meta[self.row[key]]
        return created, expires

    def remove(self, key: str) -> bool:
        r = self.row.pop(key, None)
        if r is None:
            return False
        i = int(self.ids[r])
        del self.id_row[i]
        if self.ivf is not None:
            if i in self.pending:
                self.pending.discard(i)
            else:
                self.ivf.remove(np.array([i]))
        last = self.n - 1
        if r != last:  # move the last row into the hole: O(dim), no shifting
            self.vecs[r] = self.vecs[last]
            self.expires[r] = self.expires[last]
            moved = self.keys[last]
            self.keys[r] = moved
            self.meta[r] = self.meta[last]
            self.obs[r] = self.obs[last]
            self.row[moved] = r
            self.ids[r] = self.ids[last]
            self.id_row[int(self.ids[r])] = r
        self.keys.pop()
        self.meta.pop()
        self.obs.pop()
        self.n = last
        return True

    def sync(self, threshold: int | None, nprobe: int,
             reprobe_below: float | None = REPROBE_BELOW,
             compact: int | None = None) -> None:
        """After a batch of writes: build, grow, drop or update the proposing index.

        ``threshold``: rows from which an IVF proposes; ``compact``: rows from which the
        int8 copy does (below ``threshold``). Each is kept until the shard shrinks below
        half its threshold, so a shard at the boundary does not rebuild on every write,
        and rebuilt when the shard has grown 4x since: the IVF is retrained, the int8
        copy's lists and scales too (a copy built from a few rows clipped most of
        the rows added later, and missed the exact top k).
        """
        n = self.n
        kind = None if self.ivf is None else self.ivf.kind
        if threshold is not None and n >= (threshold // 2 if kind == "ivf" else threshold):
            want = "ivf"
        elif compact is not None and n and n >= (compact // 2 if kind else compact):
            want = "compact"
        else:
            want = None
        grown = self.ivf is not None and n > 4 * self.ivf.built_n
        if want is None:
            self.ivf = None
            self.pending.clear()
        elif self.ivf is None or grown or (want != kind and want != "ivf"):
            self.ivf = Compact(self.vecs[:n], self.ids[:n], nprobe, reprobe_below, want)
            self.pending.clear()
        else:
            # one structure for both tiers: a copy growing into the IVF's is relabelled,
            # with no new k-means (it is rebuilt at 4x its build, as always)
            self.ivf.kind = want
        if self.ivf is not None and self.pending:
            ids = np.fromiter(self.pending, dtype=np.int64, count=len(self.pending))
            rows = np.fromiter((self.id_row[i] for i in ids.tolist()), dtype=np.int64,
                               count=len(ids))
            self.ivf.add(self.vecs[rows], ids)
            self.pending.clear()

    def search(self, q: np.ndarray, k: int, now: float) -> list[Candidate]:
        n = self.n
        if n == 0:
            return []
        if self.ivf is not None:
            return self._search_approx(q, k, now)
        found = top_rows(self.vecs[:n], q, k + _SPARE)
        if found is not None:
            out = []
            meta = self.meta
            for s, r in zip(*found):
                prompt, created, expires = meta[r]
                if expires is not None and expires <= now:
                    continue  # expired rows are skipped, as the scan below masks them
                out.append(Candidate(self.keys[r], s, prompt, created, expires,
                                     self.obs[r]))
                if len(out) == k:
                    return out
            if len(found[1]) == n:  # every row was among them: these are all live rows
                return out
            # more than _SPARE of the best rows had expired: scan again with them masked
        sims = scores(self.vecs[:n], q)
        sims[self.expires[:n] <= now] = -_INF
        if n > k:
            top = np.argpartition(sims, n - k)[n - k:]
            top = top[np.argsort(sims[top])[::-1]]
        else:
            top = np.argsort(sims)[::-1]
        out = []
        for r in top.tolist():
            s = float(sims[r])
            if s == -_INF:
                break
            prompt, created, expires = self.meta[r]
            out.append(Candidate(self.keys[r], s, prompt, created, expires, self.obs[r]))
        return out

    def _search_approx(self, q: np.ndarray, k: int, now: float) -> list[Candidate]:
        """Candidates from the IVF or the int8 copy, rescored exactly; an IVF probes
        wider when nothing similar turned up (see ``REPROBE_BELOW``)."""
        assert self.ivf is not None
        rows = self._propose_rows(q, k, now, wide=False)
        sims = scores(self.vecs[rows], q)
        below = self.ivf.reprobe_below
        if below is not None and (len(sims) == 0 or float(sims.max()) < below):
            rows = self._propose_rows(q, k, now, wide=True)
            sims = scores(self.vecs[rows], q)
        order = np.argsort(-sims, kind="stable")[:k]
        out = []
        for j in order.tolist():
            r = int(rows[j])
            prompt, created, expires = self.meta[r]
            out.append(Candidate(self.keys[r], float(sims[j]), prompt, created, expires,
                                 self.obs[r]))
        return out

    def _propose_rows(self, q: np.ndarray, k: int, now: float, wide: bool) -> np.ndarray:
        """Unexpired rows proposed by the IVF or the int8 copy; asks for more while expired
        ones crowd the live ones out, and falls back to every live row past a point.

        The proposals are ranked by 8-bit codes, so the margin of ``max(4k, 32)`` rows
        that the exact rescoring picks the top k from must be *live* rows: counted over
        expired ones too, a context three-quarters expired had left ~8 live proposals
        for k=5, and a live row ranked 5th exactly but 33rd by its codes was missed
        (tests/indexes/test_faiss_scale.py found it)."""
        assert self.ivf is not None
        need = want = max(4 * k, 32)
        while True:
            ids = self.ivf.propose(q, want, wide)
            rows = np.fromiter(map(self.id_row.__getitem__, ids.tolist()), dtype=np.int64,
                               count=len(ids))
            rows = rows[self.expires[rows] > now]
            if len(rows) >= need or len(ids) < want:  # enough, or the lists ran dry
                return rows
            want *= 4
            if want > 4096:  # mostly expired around here: scan exactly
                return np.nonzero(self.expires[: self.n] > now)[0]

    def observe(self, key: str, o: Observation) -> bool:
        r = self.row.get(key)
        if r is None:
            return False
        self.obs[r] = (*self.obs[r], o)[-MAX_OBSERVATIONS:]
        return True

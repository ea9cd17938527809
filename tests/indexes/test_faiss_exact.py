"""The exact shard's search (below the int8 copy's threshold): FAISS's one-call top-k
with expired rows skipped, and the masked scan it falls back to when more than its
spare rows among the best have expired; both against brute force over the live rows."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcache.indexes import _faiss_shard
from semcache.indexes.base import IndexEntry
from semcache.indexes.faiss import FaissIndex
from tests.contracts.vector_index import T0, unit
from tests.indexes._random_writes import random_writes


def _brute_force(live: list[tuple[str, np.ndarray]], q: np.ndarray,
                 k: int) -> list[tuple[float, str]]:
    return sorted(((float(v @ q), key) for key, v in live), reverse=True)[:k]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dim=st.sampled_from([8, 32, 384]), k=st.integers(1, 20))
def test_exact_top_k_matches_brute_force(data, dim, k) -> None:
    """After random writes (replacements, deletes, moves, expiries up to all rows) the
    exact search returns numpy's top k over the live rows, with their exact cosines."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    idx = FaissIndex(dim, approx_threshold=None, compact_threshold=None)
    model = random_writes(data, rng, idx, dim, max_add=150, names=250, max_delete=40)
    now = T0 + data.draw(st.integers(0, 100))
    live = [(key, v) for key, (v, c, x) in model.items() if c == "c" and x > now]
    for q in unit(rng, 5, dim):
        ref = _brute_force(live, q, k)
        got = idx.search(q, "c", k=k, now=now)
        assert len(got) == len(ref)
        assert np.allclose([c.similarity for c in got], [s for s, _ in ref], atol=1e-5)
        if len({round(s, 5) for s, _ in ref}) == len(ref):  # no near-ties: same keys
            assert [c.key for c in got] == [key for _, key in ref]
        assert all(model[c.key][2] > now for c in got), "an expired row came back"
    idx.close()


def _index_with_expired_best(n: int, expired_best: int, dim: int = 32
                             ) -> tuple[FaissIndex, np.ndarray, np.ndarray, float]:
    """``n`` rows whose ``expired_best`` most similar to the returned query expire
    before the returned time; the rest never expire."""
    rng = np.random.default_rng(n * 100 + expired_best)
    x = unit(rng, n, dim)
    q = x[0]
    order = np.argsort(-(x @ q))
    exp = np.full(n, np.inf)
    exp[order[:expired_best]] = T0 + 1
    idx = FaissIndex(dim, approx_threshold=None, compact_threshold=None)
    idx.add([IndexEntry(f"n:e{i}", "c", "n", f"p{i}", T0,
                        None if np.isinf(exp[i]) else float(exp[i])) for i in range(n)], x)
    return idx, x, exp, T0 + 50


def test_more_expired_best_rows_than_spares_fall_back_to_the_masked_scan() -> None:
    spare = _faiss_shard._SPARE
    for expired_best in (0, 1, spare, spare + 1, 3 * spare, 90):
        idx, x, exp, now = _index_with_expired_best(100, expired_best)
        q = x[0]
        live = exp > now
        want = [f"n:e{i}" for i in np.argsort(-np.where(live, x @ q, -np.inf))[:3]]
        got = idx.search(q, "c", k=3, now=now)
        assert [c.key for c in got] == want, expired_best
        idx.close()


def test_when_every_row_is_among_the_best_fewer_live_rows_than_k_come_back() -> None:
    """20 rows, k 18: FAISS's top k + spares covers every row, so the live ones found
    are all there are (no second scan), best first."""
    idx, x, exp, now = _index_with_expired_best(20, 5)
    got = idx.search(x[0], "c", k=18, now=now)
    live = np.nonzero(exp > now)[0]
    assert len(got) == len(live) == 15
    assert sorted(c.key for c in got) == sorted(f"n:e{i}" for i in live)
    assert [c.similarity for c in got] == sorted((c.similarity for c in got), reverse=True)
    idx.close()


def test_top_rows_scores_are_the_kernels_bit_for_bit() -> None:
    """The one-call top-k reports exactly the similarities ``scores`` computes (the
    same per-row kernel), so a hit's similarity does not depend on the path taken."""
    rng = np.random.default_rng(7)
    for n in (17, 300, 2000, _faiss_shard._TOP_ROWS_MAX):
        mat = unit(rng, n, 384)
        for q in unit(rng, 5, 384):
            found = _faiss_shard.top_rows(mat, q, 8)
            assert found is not None
            sims, rows = found
            full = _faiss_shard.scores(mat, q)
            assert sims == [float(full[r]) for r in rows]
            assert sims == sorted(full.tolist(), reverse=True)[:8]


def test_top_rows_declines_what_its_kernel_cannot_take() -> None:
    rng = np.random.default_rng(8)
    mat = unit(rng, 100, 16)
    q = mat[0]
    assert _faiss_shard.top_rows(mat[:16], q, 4) is None  # small: numpy's product
    assert _faiss_shard.top_rows(mat.astype(np.float64), q, 4) is None
    assert _faiss_shard.top_rows(mat[::2], q, 4) is None  # not contiguous
    big = unit(rng, _faiss_shard._TOP_ROWS_MAX + 1, 16)
    assert _faiss_shard.top_rows(big, big[0], 4) is None  # FAISS would start threads


def test_a_search_with_few_expired_best_rows_scans_once(monkeypatch) -> None:
    """Up to ``_SPARE`` expired rows among the best cost no second, masked scan (the
    point of the one-call top-k); one more does."""
    spare = _faiss_shard._SPARE
    calls = []
    real = _faiss_shard.scores
    monkeypatch.setattr(_faiss_shard, "scores", lambda m, q: calls.append(1) or real(m, q))
    for expired_best, scans in ((0, 0), (spare, 0), (spare + 1, 1)):
        idx, x, _, now = _index_with_expired_best(100, expired_best)
        calls.clear()
        assert len(idx.search(x[0], "c", k=4, now=now)) == 4
        assert len(calls) == scans, expired_best
        idx.close()


def test_the_kernels_refuse_a_query_of_the_wrong_length() -> None:
    """Both read raw memory: a query shorter than a row would read past its end."""
    rng = np.random.default_rng(9)
    mat = unit(rng, 100, 16)
    for fn in (_faiss_shard.scores, lambda m, q: _faiss_shard.top_rows(m, q, 4)):
        with pytest.raises(ValueError, match="query of 8 components for rows of 16"):
            fn(mat, mat[0, :8])


_THREADS = """
import os, sys
import numpy as np
from semcache.indexes._faiss_shard import _TOP_ROWS_MAX, top_rows
import faiss
def threads():
    return len(os.listdir("/proc/self/task"))
rng = np.random.default_rng(0)
rows = int(sys.argv[1])
mat = rng.standard_normal((rows, 384)).astype(np.float32)
before = threads()
for q in mat[:50]:
    if rows <= _TOP_ROWS_MAX:
        top_rows(mat, q, 8)
    else:  # past the cap: FAISS's call itself, as top_rows would make it
        d, i = np.empty(8, np.float32), np.empty(8, np.int64)
        faiss.knn_inner_product(faiss.swig_ptr(q), faiss.swig_ptr(mat), 384, 1, rows, 8,
                                faiss.swig_ptr(d), faiss.swig_ptr(i))
print(threads() - before)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or (os.cpu_count() or 1) < 2,
                    reason="counts threads in /proc; needs 2 cores for FAISS to start any")
def test_top_rows_starts_no_thread_at_its_cap_where_a_larger_scan_would() -> None:
    """In a fresh process: FAISS's one-query top-k over ``_TOP_ROWS_MAX`` rows leaves the
    process's thread count as it was; over 20,000 rows the same call starts OpenMP
    threads (which shows the count would see them)."""
    def started(rows: int) -> int:
        out = subprocess.run([sys.executable, "-c", _THREADS, str(rows)], check=True,
                             capture_output=True, text=True, timeout=120)
        return int(out.stdout.strip())

    assert started(_faiss_shard._TOP_ROWS_MAX) == 0
    assert started(20_000) > 0

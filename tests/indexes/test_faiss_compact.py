"""FaissIndex's int8 copy of mid-sized shards (``_faiss_shard.Compact``, issue #25):
its top-k against a brute-force numpy reference under adds, replacements, moves,
deletes and expiry; rows the codes clip; the tiers a shard moves through as it grows
and shrinks."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcache.indexes.faiss import COMPACT_THRESHOLD, FaissIndex
from tests.contracts.vector_index import T0, unit
from tests.indexes._random_writes import entries, random_writes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dim=st.sampled_from([8, 32, 384]))
def test_compact_top_k_matches_brute_force(data, dim) -> None:
    """Every shard scanned through its int8 copy (forced from two rows): after random
    writes the top-k keys and similarities are numpy's over the live rows."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    idx = FaissIndex(dim, approx_threshold=None, compact_threshold=2)
    model = random_writes(data, rng, idx, dim, max_add=150, names=250, max_delete=40)
    if sum(c == "c" for _, c, _ in model.values()) >= 2:
        assert idx.compact_shards() >= 1
    now = T0 + data.draw(st.integers(0, 100))
    live = [(k, v) for k, (v, c, x) in model.items() if c == "c" and x > now]
    for q in unit(rng, 5, dim):
        ref = sorted(((float(v @ q), k) for k, v in live), reverse=True)[:5]
        got = idx.search(q, "c", k=5, now=now)
        assert [c.key for c in got] == [k for _, k in ref] or \
            np.allclose([c.similarity for c in got], [s for s, _ in ref], atol=1e-6)
        assert np.allclose([c.similarity for c in got], [s for s, _ in ref], atol=1e-5)
    idx.close()


def test_rows_the_codes_clip_are_still_found_exactly() -> None:
    """The codes' scale comes from the rows present at build; a later row far outside
    it is clipped in the copy but still proposed, and its similarity is exact."""
    rng = np.random.default_rng(3)
    dim = 384  # sentence-embedding-like: every component of the stored rows is small
    small = unit(rng, 500, dim)
    idx = FaissIndex(dim, approx_threshold=None, compact_threshold=100)
    idx.add(entries("e", "c", 500), small)
    assert idx.compact_shards() == 1
    outliers = np.eye(dim, dtype=np.float32)[:8]  # one component at 1.0: clipped
    idx.add(entries("x", "c", 8), outliers)
    for i, q in enumerate(outliers):
        (best,) = idx.search(q, "c", k=1)
        assert best.key == f"n:x{i}" and abs(best.similarity - 1.0) < 1e-6


def test_a_copy_built_from_few_rows_is_rebuilt_as_the_shard_grows() -> None:
    """The int8 scales come from the rows present at build. A copy built from two rows
    clipped most rows added later and missed the exact top 5 (hypothesis found it);
    growing 4x rebuilds it, so the scales follow the rows."""
    rng = np.random.default_rng(11)
    dim = 32
    idx = FaissIndex(dim, approx_threshold=None, compact_threshold=2)
    x = unit(rng, 300, dim)
    idx.add(entries("e", "c", 2), x[:2])
    assert idx.compact_shards() == 1
    for i in range(2, 300):  # one write at a time, as a cache fills
        idx.add([entries("e", "c", i + 1)[i]], x[i:i + 1])
    assert idx._shards["c"].ivf.built_n > 64
    for q in unit(rng, 40, dim):
        ref = np.argsort(-(x @ q))[:5]
        got = idx.search(q, "c", k=5)
        assert [c.key for c in got] == [f"n:e{i}" for i in ref]
    idx.close()


def test_tiers_follow_the_shard_size_with_hysteresis() -> None:
    rng = np.random.default_rng(4)
    dim = 16
    idx = FaissIndex(dim, approx_threshold=400, compact_threshold=100)
    x = unit(rng, 500, dim)

    def tiers() -> tuple[int, int]:
        return idx.compact_shards(), idx.approximate_shards()

    idx.add(entries("e", "c", 99), x[:99])
    assert tiers() == (0, 0)  # exact scan
    idx.add(entries("e", "c", 100), x[:100])
    assert tiers() == (1, 0)  # the int8 copy from 100 rows
    idx.add(entries("e", "c", 500), x)
    assert tiers() == (0, 1)  # the IVF from 400
    idx.delete([f"n:e{i}" for i in range(300, 500)])  # 300: above half of 400
    assert tiers() == (0, 1)
    idx.delete([f"n:e{i}" for i in range(199, 300)])  # 199: the int8 copy again
    assert tiers() == (1, 0)
    idx.delete([f"n:e{i}" for i in range(60, 199)])  # 60: above half of 100
    assert tiers() == (1, 0)
    idx.delete([f"n:e{i}" for i in range(49, 60)])  # 49: below half of 100, exact
    assert tiers() == (0, 0)
    for q in unit(rng, 10, dim):
        (best,) = idx.search(q, "c", k=1)
        assert best.key == f"n:e{int(np.argmax(x[:49] @ q))}"


def test_default_threshold_applies_to_a_mid_sized_context_after_deletes() -> None:
    rng = np.random.default_rng(5)
    dim = 32
    idx = FaissIndex(dim)
    x = unit(rng, COMPACT_THRESHOLD, dim)
    idx.add(entries("e", "c", COMPACT_THRESHOLD), x)
    idx.add(entries("s", "small", 10), x[:10])
    assert (idx.compact_shards(), idx.approximate_shards()) == (1, 0)
    gone = rng.random(COMPACT_THRESHOLD) < 0.4  # rows move: swap-with-last
    idx.delete([f"n:e{i}" for i in np.nonzero(gone)[0]])
    assert idx.compact_shards() == 1
    keep = np.nonzero(~gone)[0]
    for q in unit(rng, 30, dim):
        (best,) = idx.search(q, "c", k=1)
        assert best.key == f"n:e{int(keep[np.argmax(x[keep] @ q)])}"

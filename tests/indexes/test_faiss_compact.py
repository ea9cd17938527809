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
from tests.indexes.test_faiss_scale import clustered, deleted_and_expired_rows_stay_out


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


def test_the_copy_scans_only_the_lists_near_the_query() -> None:
    """Inside a hit the copy's rows come from memory, so it scans only the ``nprobe``
    k-means lists nearest the query (issue #25): at 8k rows, 32 of ~178 lists. Paraphrase
    queries (stored rows plus noise) and fresh ones from the same topics still find the
    exact best; a copy whose rows sat in the wrong lists, or whose coarse quantizer did
    not rank lists by the query's cosine, would miss most of them."""
    rng = np.random.default_rng(6)
    dim, n = 64, 8_000
    centres = unit(rng, 150, dim)
    # as in sentence embeddings, some dimensions span several times the range of others,
    # so the codes' per-dimension scales differ and the quantizer must undo them
    stretch = np.geomspace(0.1, 4.0, dim).astype(np.float32)
    x = clustered(rng, n, centres) * stretch
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx = FaissIndex(dim)  # the default tiers: 8k rows is the int8 copy
    idx.add(entries("e", "c", n), x)
    assert idx.compact_shards() == 1
    copy = idx._shards["c"].ivf
    nprobe = copy.params.nprobe
    assert copy.index.nlist > 4 * nprobe  # most lists are not scanned
    # the lists scanned are those whose centroids are nearest the query by cosine (up to
    # the query's rounding to int8; measured 99.6% of them, 94% with the quantizer not
    # undoing the codes' scales)
    overlap = []
    for q in x[:100]:
        _, lists = copy.index.quantizer.search(copy.query(q), nprobe)
        overlap.append(len(set(lists[0]) & set(np.argsort(-(copy.centroids @ q))[:nprobe])))
    assert np.mean(overlap) >= 0.98 * nprobe
    picks = rng.integers(0, n, 300)
    near = x[picks] + 0.15 * unit(rng, 300, dim)
    fresh = clustered(rng, 300, centres) * stretch
    queries = np.concatenate([near / np.linalg.norm(near, axis=1, keepdims=True),
                              fresh / np.linalg.norm(fresh, axis=1, keepdims=True)])
    truth = np.argmax(queries @ x.T, axis=1)
    hits = sum(idx.search(q, "c", k=1)[0].key == f"n:e{t}" for q, t in zip(queries, truth))
    assert hits / len(queries) >= 0.99
    idx.close()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), dropped=st.floats(0.1, 0.9),
       expired=st.floats(0.0, 0.6), late=st.integers(0, 600))
def test_routed_copy_deletes_ttl_and_late_rows(seed, dropped, expired, late) -> None:
    """The copy with most lists unscanned (8 of ~76): rows added after it was built go
    to their nearest list, and after deleting and expiring a share of the rows a search
    never returns a deleted or expired entry, every similarity is the exact cosine, and
    paraphrases of live rows (late ones among them) still find them."""
    rng = np.random.default_rng(seed)
    dim, n = 32, 3_000
    x = clustered(rng, n, unit(rng, 60, dim))
    exp = np.where(rng.random(n) < expired, T0 + 10.0, T0 + 1e6)
    idx = FaissIndex(dim, approx_threshold=None, compact_threshold=500, nprobe=8)
    es = entries("e", "c", n, expires=exp)
    idx.add(es[:n - late], x[:n - late])
    for s in range(n - late, n, 50):  # after the build, as a cache's writes come
        idx.add(es[s:s + 50], x[s:s + 50])  # placed by the centroids, row by row
    assert idx.compact_shards() == 1 and idx._shards["c"].ivf.built_n == n - late
    deleted_and_expired_rows_stay_out(idx, rng, x, exp, dropped)
    idx.close()


def test_a_copy_growing_into_the_ivf_tier_is_relabelled_not_rebuilt() -> None:
    """The copy and the IVF are one structure: crossing ``approx_threshold`` changes
    how the shard is counted, with no second k-means (0.56 s at 20k rows, copy_build.json); the 4x
    growth still rebuilds it, and its paraphrases are found throughout."""
    rng = np.random.default_rng(12)
    dim = 32
    x = clustered(rng, 5_000, unit(rng, 40, dim))
    idx = FaissIndex(dim, approx_threshold=2_000, compact_threshold=1_000)
    idx.add(entries("e", "c", 1_000), x[:1_000])
    copy = idx._shards["c"].ivf
    assert (idx.compact_shards(), idx.approximate_shards()) == (1, 0)
    idx.add(entries("e", "c", 2_500)[1_000:], x[1_000:2_500])
    assert (idx.compact_shards(), idx.approximate_shards()) == (0, 1)
    assert idx._shards["c"].ivf is copy and copy.built_n == 1_000  # relabelled
    for n in (2_500, 5_000):
        if n == 5_000:
            idx.add(entries("e", "c", 5_000)[2_500:], x[2_500:])
            assert idx._shards["c"].ivf is not copy  # grown 4x: rebuilt
            assert idx._shards["c"].ivf.built_n == 5_000
        picks = rng.integers(0, n, 50)
        q = x[picks] + 0.1 * unit(rng, 50, dim)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        truth = np.argmax(q @ x[:n].T, axis=1)
        found = sum(idx.search(v, "c", k=1)[0].key == f"n:e{t}" for v, t in zip(q, truth))
        assert found >= 49
    idx.close()

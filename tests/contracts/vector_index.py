"""Contract every VectorIndex backend passes, unchanged.

Use it by subclassing in a backend's test module and providing fixtures:

    class TestQdrantIndex(VectorIndexContract):
        @pytest.fixture
        def index(self): ...        # a live, empty-enough index of dimension ``self.dim``

    class TestDiskIndex(PersistentVectorIndexContract):  # backends that persist
        @pytest.fixture
        def reopen(self, index): ...  # callable: close ``index``, return a new one on
                                      # the same storage

Every test works in its own namespace and contexts, so a shared server is fine.
Expiry is tested through ``search(now=...)``: no sleeps, no clocks.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import replace

import numpy as np
import pytest

from semcache import InvalidRequestError
from semcache.indexes.base import IndexEntry, VectorIndex

T0 = 1_700_000_000.0  # a fixed "now" for created/expiry stamps


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class VectorIndexContract:
    dim = 8

    @pytest.fixture
    def ns(self) -> str:
        return "t" + uuid.uuid4().hex[:12]

    @pytest.fixture
    def rng(self) -> np.random.Generator:
        return np.random.default_rng(7)

    def entry(self, ns: str, name: str, ctx: str = "A", prompt: str | None = None,
              expires: float | None = None) -> IndexEntry:
        return IndexEntry(key=f"{ns}:{name}", context=f"{ns}/{ctx}", namespace=ns,
                          prompt=prompt if prompt is not None else f"prompt {name}",
                          created_at=T0, expires_at=expires)

    # ------------------------------------------------------------- add / search
    def test_search_returns_best_first_with_cosine(self, index: VectorIndex, ns, rng) -> None:
        vecs = unit(rng, 6, self.dim)
        entries = [self.entry(ns, f"k{i}") for i in range(6)]
        index.add(entries, vecs)
        q = unit(rng, 1, self.dim)[0]
        got = index.search(q, f"{ns}/A", k=6)
        want = vecs @ q
        order = np.argsort(-want)
        assert [c.key for c in got] == [entries[i].key for i in order]
        for c, i in zip(got, order):
            assert c.similarity == pytest.approx(float(want[i]), abs=1e-4)
            assert c.prompt == entries[i].prompt
            assert c.created_at == pytest.approx(T0)
            assert c.expires_at is None

    def test_identical_vector_has_similarity_one(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 1, self.dim)
        index.add([self.entry(ns, "x")], v)
        (c,) = index.search(v[0], f"{ns}/A", k=1)
        assert c.key == f"{ns}:x"
        assert c.similarity == pytest.approx(1.0, abs=1e-4)

    def test_similarity_spans_minus_one(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 1, self.dim)
        index.add([self.entry(ns, "x")], v)
        (c,) = index.search(-v[0], f"{ns}/A", k=1)
        assert c.similarity == pytest.approx(-1.0, abs=1e-4)
        assert -1.0 - 1e-5 <= c.similarity <= 1.0 + 1e-5

    def test_search_unknown_context_is_empty(self, index: VectorIndex, ns, rng) -> None:
        index.add([self.entry(ns, "x")], unit(rng, 1, self.dim))
        assert index.search(unit(rng, 1, self.dim)[0], f"{ns}/nowhere") == []

    def test_k_limits_results(self, index: VectorIndex, ns, rng) -> None:
        index.add([self.entry(ns, f"k{i}") for i in range(7)], unit(rng, 7, self.dim))
        q = unit(rng, 1, self.dim)[0]
        assert len(index.search(q, f"{ns}/A", k=3)) == 3
        assert len(index.search(q, f"{ns}/A", k=1)) == 1
        assert len(index.search(q, f"{ns}/A", k=50)) == 7
        with pytest.raises(InvalidRequestError):
            index.search(q, f"{ns}/A", k=0)

    # ------------------------------------------------------------- replace
    def test_same_key_replaces_never_duplicates(self, index: VectorIndex, ns, rng) -> None:
        a, b = unit(rng, 2, self.dim)
        index.add([self.entry(ns, "x", prompt="old")], a[None])
        index.add([self.entry(ns, "x", prompt="new")], b[None])
        assert index.count(ns) == 1
        got = index.search(b, f"{ns}/A", k=5)
        assert [c.key for c in got] == [f"{ns}:x"]
        assert got[0].prompt == "new"
        assert got[0].similarity == pytest.approx(1.0, abs=1e-4)

    def test_same_key_in_one_batch_keeps_last(self, index: VectorIndex, ns, rng) -> None:
        a, b = unit(rng, 2, self.dim)
        index.add([self.entry(ns, "x", prompt="first"), self.entry(ns, "x", prompt="last")],
                  np.stack([a, b]))
        assert index.count(ns) == 1
        (c,) = index.search(b, f"{ns}/A", k=5)
        assert c.prompt == "last"

    def test_replace_changes_expiry_both_ways(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 1, self.dim)
        index.add([self.entry(ns, "x", expires=T0 + 10)], v)
        index.add([self.entry(ns, "x")], v)  # now it never expires
        (c,) = index.search(v[0], f"{ns}/A", now=T0 + 1e6)
        assert c.expires_at is None
        index.add([self.entry(ns, "x", expires=T0 + 20)], v)
        assert index.search(v[0], f"{ns}/A", now=T0 + 30) == []
        assert index.search(v[0], f"{ns}/A", now=T0 + 15)[0].expires_at == pytest.approx(T0 + 20)

    def test_replace_moves_entry_to_new_context(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 1, self.dim)
        index.add([self.entry(ns, "x", ctx="A")], v)
        index.add([self.entry(ns, "x", ctx="B")], v)
        assert index.search(v[0], f"{ns}/A") == []
        assert [c.key for c in index.search(v[0], f"{ns}/B")] == [f"{ns}:x"]
        assert index.count(ns) == 1

    # ------------------------------------------------------------- isolation
    def test_contexts_are_isolated(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 3, self.dim)
        index.add([self.entry(ns, "a", ctx="A"), self.entry(ns, "b", ctx="B"),
                   self.entry(ns, "c", ctx="A")], v)
        got = index.search(v[1], f"{ns}/A", k=10)  # the B vector, searched in A
        assert {c.key for c in got} == {f"{ns}:a", f"{ns}:c"}
        assert [c.key for c in index.search(v[1], f"{ns}/B", k=10)] == [f"{ns}:b"]

    def test_context_prefix_does_not_leak(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 1, self.dim)
        index.add([self.entry(ns, "a", ctx="AB")], v)
        assert index.search(v[0], f"{ns}/A") == []

    # ------------------------------------------------------------- expiry
    def test_expired_entries_are_never_returned(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 3, self.dim)
        index.add([self.entry(ns, "soon", expires=T0 + 10),
                   self.entry(ns, "later", expires=T0 + 100),
                   self.entry(ns, "never")], v)
        q = v[0]
        def keys(now):
            return {c.key for c in index.search(q, f"{ns}/A", k=10, now=now)}
        assert keys(T0) == {f"{ns}:soon", f"{ns}:later", f"{ns}:never"}
        assert keys(T0 + 10) == {f"{ns}:later", f"{ns}:never"}  # expiry is exclusive
        assert keys(T0 + 50) == {f"{ns}:later", f"{ns}:never"}
        assert keys(T0 + 1e6) == {f"{ns}:never"}
        assert keys(T0 + 5) == {f"{ns}:soon", f"{ns}:later", f"{ns}:never"}  # not purged
        (c,) = [c for c in index.search(q, f"{ns}/A", k=10, now=T0) if c.key.endswith("soon")]
        assert c.expires_at == pytest.approx(T0 + 10)

    def test_expired_best_match_yields_next_one(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 2, self.dim)
        index.add([self.entry(ns, "best", expires=T0 + 1), self.entry(ns, "other")], v)
        got = index.search(v[0], f"{ns}/A", k=1, now=T0 + 2)
        assert [c.key for c in got] == [f"{ns}:other"]

    # ------------------------------------------------------------- delete / clear / count
    def test_delete_counts_and_removes(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 3, self.dim)
        index.add([self.entry(ns, f"k{i}") for i in range(3)], v)
        assert index.delete([f"{ns}:k0", f"{ns}:absent"]) == 1
        assert index.delete([f"{ns}:k0"]) == 0
        assert index.delete([]) == 0
        assert f"{ns}:k0" not in {c.key for c in index.search(v[0], f"{ns}/A", k=10)}
        assert index.count(ns) == 2

    def test_clear_only_its_namespace(self, index: VectorIndex, ns, rng) -> None:
        other = ns + "x"  # shares ns as a string prefix
        v = unit(rng, 4, self.dim)
        index.add([self.entry(ns, "a"), self.entry(ns, "b", ctx="B"),
                   self.entry(other, "a"), self.entry(other, "b")], v)
        assert index.clear(ns) == 2
        assert index.count(ns) == 0
        assert index.count(other) == 2
        assert index.search(v[0], f"{ns}/A") == []
        assert {c.key for c in index.search(v[2], f"{other}/A")} == {f"{other}:a", f"{other}:b"}
        index.clear(other)

    def test_odd_namespaces_are_isolated(self, index: VectorIndex, ns, rng) -> None:
        # every punctuation validate_namespace allows, a case change and a string
        # prefix: clear and count of one never reach another
        from tests.contracts.exact_store import ExactStoreContract

        names = [ns + n for n in ExactStoreContract.ODD_NAMESPACES]
        v = unit(rng, len(names), self.dim)
        index.add([self.entry(n, "k", ctx="C") for n in names], v)
        try:
            for i, n in enumerate(names):
                assert index.count(n) == 1, n
                assert [c.key for c in index.search(v[i], f"{n}/C", k=5)] == [f"{n}:k"]
            for i, n in enumerate(names):
                assert index.clear(n) == 1, n
                assert index.count(n) == 0, n
                for j, m in enumerate(names[i + 1:], i + 1):
                    assert index.count(m) == 1, (n, m)
                    assert [c.key for c in index.search(v[j], f"{m}/C")] == [f"{m}:k"]
        finally:
            for n in names:
                index.clear(n)

    def test_count(self, index: VectorIndex, ns, rng) -> None:
        before = index.count()
        index.add([self.entry(ns, f"k{i}", ctx=str(i % 2)) for i in range(5)],
                  unit(rng, 5, self.dim))
        assert index.count(ns) == 5
        assert index.count(ns + "zz") == 0
        assert index.count() == before + 5

    # ------------------------------------------------------------- validation
    def test_wrong_dimension_rejected(self, index: VectorIndex, ns, rng) -> None:
        index.add([self.entry(ns, "ok")], unit(rng, 1, self.dim))
        with pytest.raises(InvalidRequestError):
            index.add([self.entry(ns, "bad")], unit(rng, 1, self.dim + 1))
        with pytest.raises(InvalidRequestError):
            index.search(unit(rng, 1, self.dim + 1)[0], f"{ns}/A")
        assert index.count(ns) == 1

    def test_nan_rejected(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 1, self.dim)
        v[0, 0] = math.nan
        with pytest.raises(InvalidRequestError):
            index.add([self.entry(ns, "nan")], v)
        with pytest.raises(InvalidRequestError):
            index.search(v[0], f"{ns}/A")
        assert index.count(ns) == 0

    def test_rows_must_match_entries(self, index: VectorIndex, ns, rng) -> None:
        with pytest.raises(InvalidRequestError):
            index.add([self.entry(ns, "a"), self.entry(ns, "b")], unit(rng, 3, self.dim))
        assert index.count(ns) == 0

    def test_unicode_keys_and_prompts(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 1, self.dim)
        e = IndexEntry(f"{ns}:ключ-🔑", f"{ns}/контекст", ns, "答え — ответ", T0, None)
        index.add([e], v)
        (c,) = index.search(v[0], f"{ns}/контекст")
        assert (c.key, c.prompt) == (e.key, e.prompt)

    # ------------------------------------------------------------- conditional delete
    def test_delete_if_unchanged_keeps_an_entry_written_since(self, index: VectorIndex,
                                                              ns, rng) -> None:
        # a lookup whose answer read found nothing drops the candidate's vector with this:
        # a writer that stored the same request since must keep its fresh entry
        v = unit(rng, 1, self.dim)
        e = self.entry(ns, "x")
        index.add([e], v)
        (seen,) = index.search(v[0], f"{ns}/A", now=T0)
        index.add([replace(e, created_at=T0 + 1)], v)  # stored again since the search
        assert index.delete_if_unchanged(seen) is False
        (fresh,) = index.search(v[0], f"{ns}/A", now=T0)
        assert fresh.created_at == T0 + 1
        index.add([replace(e, created_at=T0 + 1, expires_at=T0 + 50)], v)  # same tick
        assert index.delete_if_unchanged(fresh) is False
        (last,) = index.search(v[0], f"{ns}/A", now=T0)
        assert last.expires_at == pytest.approx(T0 + 50)
        assert index.count(ns) == 1
        assert index.delete_if_unchanged(last) is True  # unchanged: really stale
        assert index.count(ns) == 0 and index.search(v[0], f"{ns}/A", now=T0) == []
        assert index.delete_if_unchanged(last) is False  # already gone

    def test_delete_if_unchanged_async_twin(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 1, self.dim)
        e = self.entry(ns, "x", expires=T0 + 100)

        async def run() -> None:
            await index.aadd([e], v)
            (seen,) = await index.asearch(v[0], f"{ns}/A", 1, T0)
            await index.aadd([replace(e, created_at=T0 + 1)], v)
            assert await index.adelete_if_unchanged(seen) is False
            (fresh,) = await index.asearch(v[0], f"{ns}/A", 1, T0)
            assert await index.adelete_if_unchanged(fresh) is True
            assert await index.acount(ns) == 0

        asyncio.run(run())

    # ------------------------------------------------------------- async twins
    def test_async_twins(self, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 3, self.dim)

        async def run() -> None:
            await index.aadd([self.entry(ns, f"k{i}") for i in range(3)], v)
            results = await asyncio.gather(*(index.asearch(v[i], f"{ns}/A", 1)
                                             for i in range(3)))
            assert [r[0].key for r in results] == [f"{ns}:k{i}" for i in range(3)]
            assert await index.acount(ns) == 3
            assert await index.adelete([f"{ns}:k0"]) == 1
            assert await index.aclear(ns) == 2
            assert await index.acount(ns) == 0
            assert await index.aping()

        asyncio.run(run())

    def test_ping(self, index: VectorIndex) -> None:
        assert index.ping() is True



    # ------------------------------------------------------------- observations
    def test_observations_append_and_come_back_with_candidates(self, index, ns, rng) -> None:
        from semcache.indexes.base import Observation

        v = unit(rng, 1, self.dim)
        e = IndexEntry(f"{ns}:x", f"{ns}/A", ns, "p", T0, None)
        index.add([e], v)
        assert index.search(v[0], f"{ns}/A")[0].observations == ()
        obs = [Observation(0.91, True), Observation(0.88, False, "q1")]
        for o in obs:
            assert index.observe(e.key, o) is True
        (c,) = index.search(v[0], f"{ns}/A")
        assert [(round(o.similarity, 6), o.correct, o.query) for o in c.observations] == \
            [(0.91, True, None), (0.88, False, "q1")]
        index.add([e], v)  # a replacement keeps what was learned about the entry
        assert len(index.search(v[0], f"{ns}/A")[0].observations) == 2
        assert index.observe(f"{ns}:gone", Observation(0.9, True)) is False

    def test_observations_keep_the_last_ones(self, index, ns, rng) -> None:
        from semcache.indexes.base import MAX_OBSERVATIONS, Observation

        v = unit(rng, 1, self.dim)
        index.add([IndexEntry(f"{ns}:x", f"{ns}/A", ns, "p", T0, None)], v)
        for i in range(2 * MAX_OBSERVATIONS + 5):
            index.observe(f"{ns}:x", Observation(i / 1000, True))
        (c,) = index.search(v[0], f"{ns}/A")
        assert len(c.observations) == MAX_OBSERVATIONS
        assert c.observations[-1].similarity == pytest.approx((2 * MAX_OBSERVATIONS + 4) / 1000)

    def test_concurrent_observers_lose_nothing(self, index, ns, rng) -> None:
        import threading

        from semcache.indexes.base import Observation

        v = unit(rng, 1, self.dim)
        index.add([IndexEntry(f"{ns}:x", f"{ns}/A", ns, "p", T0, None)], v)
        threads = [threading.Thread(target=lambda t=t: [
            index.observe(f"{ns}:x", Observation(0.5 + t / 100 + i / 10000, True))
            for i in range(5)]) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        (c,) = index.search(v[0], f"{ns}/A")
        assert len(c.observations) == 30

    def test_async_observe(self, index, ns, rng) -> None:
        from semcache.indexes.base import Observation

        v = unit(rng, 1, self.dim)
        index.add([IndexEntry(f"{ns}:x", f"{ns}/A", ns, "p", T0, None)], v)
        assert asyncio.run(index.aobserve(f"{ns}:x", Observation(0.9, True))) is True
        assert len(index.search(v[0], f"{ns}/A")[0].observations) == 1

class PersistentVectorIndexContract(VectorIndexContract):
    """For backends that keep entries across a close; adds the ``reopen`` fixture."""

    def test_delete_if_unchanged_persists(self, reopen, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 3, self.dim)
        a, b, d = self.entry(ns, "a"), self.entry(ns, "b"), self.entry(ns, "d")
        index.add([a, b, d], v)
        seen = {c.key: c for c in index.search(v[0], f"{ns}/A", k=3, now=T0)}
        index.add([replace(a, created_at=T0 + 1)], v[:1])
        assert index.delete_if_unchanged(seen[a.key]) is False
        assert index.delete_if_unchanged(seen[b.key]) is True
        again = reopen()
        kept = {c.key: c.created_at for c in again.search(v[0], f"{ns}/A", k=3, now=T0)}
        assert kept == {a.key: T0 + 1, d.key: T0}

    def test_persists_across_reopen(self, reopen, index: VectorIndex, ns, rng) -> None:
        v = unit(rng, 4, self.dim)
        index.add([self.entry(ns, f"k{i}", expires=T0 + 100 if i == 3 else None)
                   for i in range(4)], v)
        index.delete([f"{ns}:k1"])
        index.add([self.entry(ns, "k2", prompt="replaced")], v[2][None])
        again = reopen()
        assert again.count(ns) == 3
        got = {c.key: c for c in again.search(v[2], f"{ns}/A", k=10, now=T0)}
        assert set(got) == {f"{ns}:k0", f"{ns}:k2", f"{ns}:k3"}
        assert got[f"{ns}:k2"].prompt == "replaced"
        assert got[f"{ns}:k3"].expires_at == pytest.approx(T0 + 100)
        assert got[f"{ns}:k2"].similarity == pytest.approx(1.0, abs=1e-4)


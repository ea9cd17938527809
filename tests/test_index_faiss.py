"""FaissIndex specifics: sharded exact search, persistence, manifest, locking."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache import ConfigError, InvalidRequestError
from semcache.indexes.base import IndexEntry
from semcache.indexes.faiss import FaissIndex


def unit(rng, n, d=16):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def entry(i, ctx="c", ns="n", expires=None):
    return IndexEntry(f"{ns}:{i}", ctx, ns, f"prompt {i}", 0.0, expires)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.integers(1, 5), st.integers(0, 2**31), st.integers(1, 8))
def test_search_matches_brute_force_within_a_context(n, n_ctx, seed, k):
    rng = np.random.default_rng(seed)
    vecs = unit(rng, n)
    ctxs = rng.integers(0, n_ctx, n)
    expires = np.where(rng.random(n) < 0.2, 5.0, np.inf)
    idx = FaissIndex()
    idx.add([entry(i, f"c{ctxs[i]}", expires=None if np.isinf(expires[i]) else 5.0)
             for i in range(n)], vecs)
    q = unit(rng, 1)[0]
    for c in range(n_ctx):
        got = idx.search(q, f"c{c}", k=k, now=10.0)
        mask = (ctxs == c) & np.isinf(expires)
        sims = vecs @ q
        order = [i for i in np.argsort(-sims) if mask[i]][:k]
        assert [x.key for x in got] == [f"n:{i}" for i in order]
        assert np.allclose([x.similarity for x in got], sims[order], atol=1e-5)


def test_a_small_context_among_many_others_keeps_full_recall():
    rng = np.random.default_rng(1)
    idx = FaissIndex()
    big = unit(rng, 20_000)
    idx.add([entry(i, "crowd") for i in range(20_000)], big)
    few = unit(rng, 3)
    idx.add([entry(f"f{i}", "tiny") for i in range(3)], few)
    got = idx.search(few[1], "tiny", k=1)
    assert got[0].key == "n:f1" and got[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_replace_delete_clear_count():
    rng = np.random.default_rng(2)
    idx = FaissIndex()
    v = unit(rng, 4)
    idx.add([entry(0), entry(1), entry(2, ns="m", ctx="d")], v[:3])
    idx.add([entry(0)], v[3:4])  # same key: replaced, not duplicated
    assert idx.count() == 3 and idx.count("n") == 2
    assert idx.search(v[3], "c", k=1)[0].key == "n:0"
    assert idx.delete(["n:1", "n:404"]) == 1
    assert idx.clear("n") == 1 and idx.count() == 1 and idx.count("m") == 1


def test_rejects_bad_vectors():
    idx = FaissIndex(dim=4)
    with pytest.raises(InvalidRequestError, match="dimension"):
        idx.add([entry(0)], np.ones((1, 5), np.float32))
    with pytest.raises(InvalidRequestError, match="NaN"):
        idx.add([entry(0)], np.full((1, 4), np.nan, np.float32))
    with pytest.raises(InvalidRequestError, match="shape"):
        idx.add([entry(0), entry(1)], np.ones((1, 4), np.float32))


def test_persistence_roundtrip_with_log_and_snapshot(tmp_path):
    rng = np.random.default_rng(3)
    v = unit(rng, 50)
    idx = FaissIndex(path=tmp_path, model_id="m1")
    idx.add([entry(i) for i in range(30)], v[:30])
    idx._snapshot()  # half in the snapshot ...
    idx.add([entry(i) for i in range(30, 50)], v[30:])  # ... half in the log
    idx.delete(["n:0"])
    idx.close()
    again = FaissIndex(path=tmp_path, model_id="m1")
    assert again.count() == 49
    assert again.search(v[7], "c", k=1)[0].key == "n:7"
    assert again.search(v[40], "c", k=1)[0].key == "n:40"
    assert all(c.key != "n:0" for c in again.search(v[0], "c", k=49))
    again.close()


def test_torn_log_tail_is_ignored(tmp_path):
    rng = np.random.default_rng(4)
    idx = FaissIndex(path=tmp_path, model_id="m1")
    idx.add([entry(i) for i in range(5)], unit(rng, 5))
    idx.close()
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"op": "add", "key": "n:torn", "v": "AAA')  # a crash mid-write
    again = FaissIndex(path=tmp_path, model_id="m1")
    assert again.count() == 5
    again.add([entry(9)], unit(rng, 1))  # and later appends are not glued to the tear
    again.close()
    third = FaissIndex(path=tmp_path, model_id="m1")
    assert third.count() == 6
    third.close()


def test_opening_with_another_model_is_refused(tmp_path):
    idx = FaissIndex(path=tmp_path, model_id="all-MiniLM-L6-v2")
    idx.add([entry(0)], np.ones((1, 8), np.float32) / np.sqrt(8))
    idx.close()
    with pytest.raises(ConfigError, match="built with embedding model 'all-MiniLM-L6-v2'"):
        FaissIndex(path=tmp_path, model_id="text-embedding-3-small")
    with pytest.raises(ConfigError, match="dimension"):
        FaissIndex(path=tmp_path, dim=16)


def test_a_second_process_shares_the_folder(tmp_path):
    """Issue #26: a second process opens the folder (no longer refused), sees what the
    first wrote, and the first sees what the second wrote on its next lookup."""
    idx = FaissIndex(path=tmp_path, model_id="m1")
    v = np.eye(8, dtype=np.float32)
    idx.add([entry(0)], v[:1])
    code = ("import sys, numpy as np\nfrom semcache.indexes.base import IndexEntry\n"
            "from semcache.indexes.faiss import FaissIndex\n"
            "idx = FaissIndex(path=sys.argv[1], model_id='m1')\n"
            "print(idx.search(np.eye(8, dtype=np.float32)[0], 'c', k=1)[0].key)\n"
            "idx.add([IndexEntry('n:1', 'c', 'n', 'p', 0.0, None)], np.eye(8)[1:2])\n"
            "idx.close()\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["n:0"]
    got = idx.search(v[1], "c", k=1)
    assert got[0].key == "n:1" and got[0].similarity == pytest.approx(1.0)
    assert idx.count() == 2
    idx.close()


def test_purge_expired():
    rng = np.random.default_rng(5)
    idx = FaissIndex(clock=lambda: 100.0)
    idx.add([entry(0, expires=50.0), entry(1, expires=150.0), entry(2)], unit(rng, 3))
    assert idx.purge_expired() == 1 and idx.count() == 2


def test_faiss_semantic_survives_restart(tmp_path, minilm):
    from semcache import Cache

    req = dict(model="m", messages=[{"role": "user", "content": "How do I reset my password?"}])
    para = dict(model="m", messages=[{"role": "user",
                                      "content": "How can I reset my password?"}])
    c = Cache(type="faiss-semantic", disk_cache_dir=str(tmp_path), embedder=minilm)
    c.add_cache({"a": "Use the reset link."}, **req)
    c.close()
    c2 = Cache(type="faiss-semantic", disk_cache_dir=str(tmp_path), embedder=minilm)
    hit = c2.lookup(**para)
    assert hit is not None and hit.stage == "semantic" and hit.value == {"a":
                                                                         "Use the reset link."}
    c2.close()

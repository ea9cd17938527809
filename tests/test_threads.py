"""The one thread policy (semcache/_threads.py, issue #25) and the thread-free search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import semcache
from semcache import ConfigError
from semcache._threads import ort_session_options, thread_policy
from semcache.embedders.onnx import OnnxEmbedder
from semcache.indexes._faiss_shard import scores

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    from semcache import _threads

    monkeypatch.setattr(_threads, "_overrides", {})
    for name in ("SEMCACHE_THREADS", "SEMCACHE_ONNX_THREADS", "SEMCACHE_BLAS_THREADS",
                 "SEMCACHE_OPENMP_THREADS", "SEMCACHE_SPIN_US"):
        monkeypatch.delenv(name, raising=False)


def test_compute_threads_from_env_and_set_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert thread_policy().compute == min(2, os.cpu_count() or 1)
    monkeypatch.setenv("SEMCACHE_ONNX_THREADS", "3")  # the older name still counts
    assert OnnxEmbedder().threads == 3
    monkeypatch.setenv("SEMCACHE_THREADS", "1")  # the policy's own name wins
    assert OnnxEmbedder().threads == 1
    assert semcache.set_threads(4).compute == 4  # code wins over the environment
    assert OnnxEmbedder().threads == 4
    assert OnnxEmbedder(threads=2).threads == 2  # and an explicit argument over both


@pytest.mark.parametrize("kw", [{"compute": 0}, {"compute": True}, {"blas": -1},
                                {"openmp": "2"}, {"spin_us": -1}, {"spin_us": 1.5},
                                {"spin_us": True}, {"spin": True, "spin_us": 10}])
def test_bad_settings_name_the_parameter(kw: dict[str, object]) -> None:
    name = next(iter(kw))
    with pytest.raises(ConfigError, match=name):
        semcache.set_threads(**kw)  # type: ignore[arg-type]


def test_bad_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMCACHE_THREADS", "two")
    with pytest.raises(ConfigError, match="SEMCACHE_THREADS"):
        thread_policy()


def _spin_entries() -> tuple[str, str]:
    opts = ort_session_options()
    return (opts.get_session_config_entry("session.intra_op.allow_spinning"),
            _entry(opts, "session.intra_op.spin_duration_us"))


def _entry(opts: object, key: str) -> str:
    try:
        return str(opts.get_session_config_entry(key))  # type: ignore[attr-defined]
    except RuntimeError:  # onnxruntime: "does not have configuration with key"
        return ""


def test_onnxruntime_threads_spin_only_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = ort_session_options()
    assert opts.intra_op_num_threads == thread_policy().compute
    assert opts.inter_op_num_threads == 1
    # the default: spin 30 us between a run's parallel sections, then sleep
    assert _spin_entries() == ("1", "30")
    semcache.set_threads(spin=False)
    assert _spin_entries() == ("0", "")
    semcache.set_threads(spin=True)  # onnxruntime's own spinning: no duration given
    assert _spin_entries() == ("1", "")
    semcache.set_threads(spin_us=250)
    assert _spin_entries() == ("1", "250")
    monkeypatch.setattr(semcache._threads, "_overrides", {})
    monkeypatch.setenv("SEMCACHE_SPIN_US", "0")
    assert _spin_entries() == ("0", "")
    monkeypatch.setenv("SEMCACHE_SPIN_US", "onnxruntime")
    assert _spin_entries() == ("1", "")


@pytest.mark.parametrize("raw", ["-1", "ten", "1.5"])
def test_bad_spin_env_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SEMCACHE_SPIN_US", raw)
    with pytest.raises(ConfigError, match="SEMCACHE_SPIN_US"):
        thread_policy()


def test_the_spin_duration_reaches_a_real_session() -> None:
    """onnxruntime takes the entry (a version that rejected it would fail here) and a
    session built under the policy computes what one that never spins computes."""
    import onnxruntime as ort

    from semcache.embedders.onnx import ensure_onnx

    model = str(ensure_onnx("all-MiniLM-L6-v2", OnnxEmbedder().variant) / "model.onnx")
    ids = np.asarray([[101, 7592, 2088, 2003, 1037, 3231, 102]], np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids)}
    out = []
    for kw in ({"spin": False}, {"spin_us": 30}):
        semcache.set_threads(**kw)  # type: ignore[arg-type]
        sess = ort.InferenceSession(model, ort_session_options(2),
                                    providers=["CPUExecutionProvider"])
        out.append(sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})[0])
    np.testing.assert_allclose(out[1], out[0], atol=1e-5)


_PROBE = """
import json, sys
from threadpoolctl import threadpool_info
def blas(): return sorted(i["num_threads"] for i in threadpool_info()
                          if i["user_api"] == "blas")
import numpy, semcache
before = blas()
from semcache.indexes.faiss import FaissIndex
FaissIndex(384)
print(json.dumps({"before": before, "after": blas()}))
"""


def _probe(env: dict[str, str]) -> dict[str, list[int]]:
    full = {k: v for k, v in os.environ.items() if not k.endswith("_THREADS")}
    full.update(OPENBLAS_NUM_THREADS="2", **env)
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=full,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_host_blas_pool_left_alone_unless_asked() -> None:
    # import and first build change nothing by default: the pools are the host's
    default = _probe({})
    assert default["before"] and default["after"] == default["before"]
    # the opt-in limit applies when the first index is built (not at import)
    limited = _probe({"SEMCACHE_BLAS_THREADS": "1"})
    assert limited["before"] == default["before"] and set(limited["after"]) == {1}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), dim=st.sampled_from([1, 3, 8, 384]),
       seed=st.integers(0, 2**31 - 1))
def test_scores_equal_the_matrix_product(n: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    mat = rng.standard_normal((n, dim)).astype(np.float32)
    q = rng.standard_normal(dim).astype(np.float32)
    got = scores(mat, q)
    assert got.shape == (n,) and got.dtype == np.float32
    np.testing.assert_allclose(got, mat.astype(np.float64) @ q.astype(np.float64),
                               rtol=1e-4, atol=1e-4 * np.sqrt(dim))


def test_scores_of_a_row_slice_and_a_noncontiguous_query() -> None:
    rng = np.random.default_rng(1)
    big = rng.standard_normal((100, 16)).astype(np.float32)
    q = rng.standard_normal((16, 2)).astype(np.float32)[:, 0]  # a strided view
    np.testing.assert_allclose(scores(big[:40], q), big[:40] @ q, rtol=1e-5, atol=1e-5)


def test_sentence_transformers_gets_one_torch_thread_by_default() -> None:
    # torch's OpenMP threads spin at barriers: 2 threads measured p99 8-17x p50 on two
    # busy cores, 1 thread ~2x (docs/performance.md)
    code = ("from semcache.embedders.local import SentenceTransformerEmbedder\n"
            "SentenceTransformerEmbedder().embed(['warm up'])\n"
            "import torch; print(torch.get_num_threads())\n")
    full = {k: v for k, v in os.environ.items() if not k.endswith("_THREADS")}
    for env, want in (({}, "1"), ({"SEMCACHE_TORCH_THREADS": "2"}, "2")):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**full, **env},
                             capture_output=True, text=True, timeout=300, check=True)
        assert out.stdout.strip().splitlines()[-1] == want


def test_scores_of_a_strided_or_float64_matrix_are_still_right() -> None:
    rng = np.random.default_rng(2)
    big = rng.standard_normal((200, 64)).astype(np.float32)
    q = rng.standard_normal(32).astype(np.float32)
    for mat in (big[::2, :32], big[:, ::2], big[:100, :32].astype(np.float64)):
        np.testing.assert_allclose(scores(mat, q), mat @ q, rtol=1e-4, atol=1e-4)

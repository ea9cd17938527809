"""all-mpnet-base-v2, the ``mpnet`` extra's embedder (issue #20).

The model is assembled from its five installed parts and exported by the torch-free
builder in a process where torch cannot be imported, then compared with
sentence-transformers on torch. Outside CI the tests that need the parts skip when the
extra is absent; CI installs every extra, so there a missing part fails instead.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcache import Cache, ConfigError
from semcache.embedders import _mpnet_onnx, _mpnet_parts
from semcache.embedders._onnx_files import models_root
from semcache.embedders.registry import embedder_dim, resolve_embedder

REPO = Path(__file__).resolve().parents[2]


def _installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


needs_parts = pytest.mark.skipif(
    not all(_installed(d) for d in _mpnet_parts.PARTS) and not os.environ.get("CI"),
    reason="the mpnet extra is not installed (in CI, where every extra is, this fails)")

TEXTS = [
    "How do I reset my password?", "how can i change my password",
    "What's the weather like in Paris today?", "A dog is not a cat.", "x", "",
    "Ünïcödé ñ 東京 🙂", "Is 3 km more than 2 miles?", "word " * 600,  # past 384 tokens
] + [f"question number {i}: what is {i} times {i + 1}?" for i in range(20)]

#: embeds TEXTS with torch & co. unimportable, from a fresh export in argv[1]
NO_TORCH = """
import sys
for name in ("torch", "transformers", "sentence_transformers", "safetensors"):
    sys.modules[name] = None
import json, numpy as np
from semcache.embedders.onnx import OnnxEmbedder, ensure_onnx
root, texts, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
emb = OnnxEmbedder("all-mpnet-base-v2", cache_dir=root)
np.save(out, emb.embed(texts))
print(emb.model_id, emb.dim)
print(json.loads((ensure_onnx("all-mpnet-base-v2", root=root) / "manifest.json")
                 .read_text())["builder"])
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    root = tmp_path_factory.mktemp("mpnet-no-torch")
    out = root / "vecs.npy"
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, str(root / "cache"),
                           json.dumps(TEXTS), str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ident, builder = proc.stdout.strip().splitlines()[-2:]
    assert ident == "all-mpnet-base-v2 768"
    assert builder == _mpnet_onnx.BUILDER  # not torch.onnx.export
    shutil.rmtree(root / "cache")  # 440 MB pytest would otherwise keep for three runs
    return np.load(out)


@pytest.mark.slow
@needs_parts
def test_vectors_match_sentence_transformers(built: np.ndarray) -> None:
    if os.environ.get("CI"):  # the st extra is installed there: the reference must run
        import sentence_transformers as st_mod
    else:
        st_mod = pytest.importorskip("sentence_transformers")
    folder = _mpnet_parts.model_dir(models_root())
    ref = st_mod.SentenceTransformer(str(folder), device="cpu").encode(
        TEXTS, normalize_embeddings=True, batch_size=8)
    assert built.shape == (len(TEXTS), 768) and built.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(built, axis=1), 1.0, atol=1e-5)
    cos = np.einsum("ij,ij->i", built, ref)
    assert cos.min() > 0.9999, dict(zip(TEXTS, cos.round(6)))


@pytest.mark.slow
@needs_parts
def test_cache_option_serves_a_paraphrase() -> None:
    """The option as users name it: a faiss-semantic cache stores and serves with it."""
    cache = Cache(type="faiss-semantic", embedder="all-mpnet-base-v2",
                  similarity_threshold=0.8, verifier=None)
    assert cache.embedder is not None and cache.embedder.model_id == "all-mpnet-base-v2"
    assert cache.embedder.dim == embedder_dim("all-mpnet-base-v2") == 768
    answer = {"id": "a", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "finish_reason": "stop",
         "message": {"role": "assistant", "content": "Use 'Forgot password'."}}]}
    cache.add_cache(answer, model="m",
                    messages=[{"role": "user", "content": "How do I reset my password?"}])
    hit = cache.lookup(model="m", messages=[{"role": "user",
                                             "content": "How can I reset my password?"}])
    assert hit is not None and hit.metadata["stage"] == "semantic"
    assert hit.metadata["embedder"] == "all-mpnet-base-v2"
    miss = cache.lookup(model="m", messages=[{"role": "user",
                                              "content": "What is the capital of Peru?"}])
    assert miss is None


def test_missing_part_is_a_config_error_naming_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a part whose distribution is not installed (a name no package has)
    monkeypatch.setattr(_mpnet_parts, "PARTS", (*_mpnet_parts.PARTS[:2],
                                                "semcache-no-such-mpnet-part-003",
                                                *_mpnet_parts.PARTS[3:]))
    with pytest.raises(ConfigError) as err:
        resolve_embedder("all-mpnet-base-v2")
    assert "semcache-no-such-mpnet-part-003" in str(err.value)
    assert "semcache[mpnet]" in str(err.value)


# -- reassembly from byte ranges: exercised on small zips, the same code path --------------

def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("all-mpnet-base-v2/desktop.ini", b"[.ShellClassInfo]")
        zf.writestr("elsewhere.txt", b"not the model")
    return buf.getvalue()


def _cut(blob: bytes, cuts: list[int], folder: Path) -> list[Path]:
    bounds = [0, *sorted({c % (len(blob) + 1) for c in cuts}), len(blob)]
    parts = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        p = folder / f"m.zip.{i + 1:03d}"
        p.write_bytes(blob[a:b])
        parts.append(p)
    return parts


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(weights=st.binary(min_size=0, max_size=200_000),
       cuts=st.lists(st.integers(min_value=0), max_size=5))
def test_parts_reassemble_byte_for_byte(tmp_path: Path, weights: bytes,
                                        cuts: list[int]) -> None:
    files = {"all-mpnet-base-v2/config.json": b'{"model_type": "mpnet"}',
             "all-mpnet-base-v2/model.safetensors": weights,
             "all-mpnet-base-v2/1_Pooling/config.json": b"{}"}
    case = tmp_path / os.urandom(6).hex()
    case.mkdir()
    out = _mpnet_parts.assemble(_cut(_zip(files), cuts, case), case / "model")
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == {k.removeprefix("all-mpnet-base-v2/"): v for k, v in files.items()}
    assert not [p for p in case.iterdir() if p.name.startswith(".model.tmp")]


def test_damaged_part_is_a_config_error_and_leaves_no_folder(tmp_path: Path) -> None:
    blob = bytearray(_zip({"all-mpnet-base-v2/config.json": b"{}",
                           "all-mpnet-base-v2/model.safetensors": os.urandom(50_000)}))
    blob[len(blob) // 3] ^= 0xFF  # inside the weights' compressed bytes
    parts = _cut(bytes(blob), [len(blob) // 2], tmp_path)
    with pytest.raises(ConfigError, match="reinstall"):
        _mpnet_parts.assemble(parts, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.tmp")]

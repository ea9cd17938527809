"""The cross-encoder option end to end on a small run: the committed training script
fine-tunes MiniLM on a few labeled pairs, writes a folder that needs no torch, the
folder's ONNX scores match what torch computed, and a Cache serves through it. A missing
or broken folder is a ConfigError that says how to make one (nothing is downloaded)."""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from semcache import Cache, ConfigError, InvalidRequestError
from semcache.verifiers import resolve_verifier
from semcache.verifiers.cross_encoder import MODEL_DOC, CrossEncoderVerifier

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("torch", reason="the training script needs the st extra (torch)")


def _small_data(folder: Path) -> None:
    """Quora-format pairs from the shipped suite and paraphrase sample, a PAWS slice."""
    data = resources.files("semcache") / "data"
    rows = [json.loads(line) for line in (data / "must_not_hit.jsonl").read_text()
            .splitlines() if line.strip()]
    pairs = [{"query": r["query"], "candidate": r["candidate"], "label": r["label"]}
             for r in rows]
    pairs += [{"query": d["origin"], "candidate": d["similar"], "label": 1}
              for d in json.loads((data / "gptcache_mock_sample.json").read_text())[:60]]
    (folder / "qqp").mkdir(parents=True)
    with gzip.open(folder / "qqp" / "pairs.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(p) for p in pairs) + "\n")
    (folder / "paws").mkdir()
    # a slice: every text of the corpus is embedded once for the cosines
    paws = (data / "paws_sample.tsv").read_text().splitlines()[:60]
    (folder / "paws" / "dev.tsv").write_text("\n".join(paws) + "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ce")
    _small_data(tmp / "data")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import train_cross_encoder
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    out = tmp / "model"
    assert train_cross_encoder.main([
        "--data", str(tmp / "data"), "--out", str(out), "--epochs", "1", "--limit", "64",
        "--batch-size", "16", "--max-length", "32", "--device", "cpu",
        "--embedding-cache", str(tmp / "emb")]) == 0
    return out


def test_the_exported_folder_scores_like_torch(trained) -> None:
    doc = json.loads((trained / MODEL_DOC).read_text())
    assert doc["kind"] == "cross-encoder" and doc["fitted"]["steps"] == 4
    v = CrossEncoderVerifier(trained)
    probe = doc["probe"]
    cos = np.array([p["cosine"] for p in probe])
    got = v.logits([(p["first"], p["second"]) for p in probe], cos)
    want = np.array([p["logit"] for p in probe])
    assert np.abs(got - want).max() < 1e-3, (got, want)
    # the head reads the cosine, started from a logistic fit on it (four steps at the
    # head's learning rate move it by thousandths; its sign is this tiny sample's, whose
    # "Quora" rows are the suite's must-not-hit pairs), and a caller that forgets the
    # cosines is told so, not scored at 0
    wc = doc["head"]["cosine_weight"]
    start = doc["fitted"]["start_head"]["cosine_weight"]
    assert v.needs_cosines and abs(start) > 0.1 and abs(wc - start) < 0.05
    pairs = [(p["first"], p["second"]) for p in probe]
    moved = v.logits(pairs, cos + 0.1) - got
    assert np.allclose(moved, 0.1 * wc, atol=1e-4)
    with pytest.raises(InvalidRequestError, match="cosine"):
        v.score_pairs([a for a, _ in pairs], [b for _, b in pairs])
    with pytest.raises(InvalidRequestError, match="cosines for"):
        v.score_pairs([a for a, _ in pairs], [b for _, b in pairs], cos[:2])
    # symmetric: both orders scored and averaged
    a, b = probe[0]["first"], probe[0]["second"]
    assert v.verify(a, [b], [0.9])[0] == pytest.approx(v.verify(b, [a], [0.9])[0])
    assert 0.0 <= v.verify(a, [b], [0.9])[0] <= 1.0


def test_a_cache_serves_through_the_folder(trained, minilm) -> None:
    v = resolve_verifier(str(trained), threshold=0.0)
    assert isinstance(v, CrossEncoderVerifier) and v.threshold == 0.0
    cache = Cache(type="faiss-semantic", embedder=minilm, verifier=v,
                  similarity_threshold=0.5)
    req = {"model": "m", "messages": [{"role": "user", "content": "How tall is Everest?"}]}
    cache.add_cache({"a": "8849 m"}, **req)
    req["messages"][0]["content"] = "What is the height of Mount Everest?"
    hit, meta = cache.lookup_with_metadata(**req)
    assert hit is not None and meta["verifier"] == "cross-encoder"
    assert 0.0 <= meta["verifier_score"] <= 1.0


def test_a_missing_or_broken_folder_says_how_to_make_one(tmp_path, trained,
                                                         monkeypatch) -> None:
    monkeypatch.setenv("SEMCACHE_CROSS_ENCODER", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="train_cross_encoder.py"):
        Cache(type="faiss-semantic", verifier="cross-encoder")
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / "model.onnx").unlink()
    with pytest.raises(ConfigError, match="no model.onnx"):
        CrossEncoderVerifier(broken)
    (broken / MODEL_DOC).write_text("[1]")
    with pytest.raises(ConfigError, match="not a cross-encoder"):
        CrossEncoderVerifier(broken)


def test_the_evaluation_reports_a_folder_on_its_own_seed(trained) -> None:
    """benchmarks/verifier_eval.py --cross-encoder: the folder's seed's test parts, its
    recorded points, the hindsight figures (here on the small run's data)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import verifier_eval
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        sys.path.remove(str(ROOT / "scripts"))
    from semcache._registry import get_embedder
    from semcache.eval.fitting import make_cosines

    tmp = trained.parent  # the fixture's data and embedding cache sit beside the folder
    qqp, paws, texts = verifier_eval.corpus(tmp / "data")
    cos = make_cosines(get_embedder(None), texts, str(tmp / "emb"))
    r = verifier_eval.cross_encoder_eval(trained, qqp, paws, cos, limit=40)
    assert r["seed"] == 0 and 0 < r["quora_test_pairs"] <= 40
    doc = json.loads((trained / MODEL_DOC).read_text())
    assert r["points"]["default"] == {"floor": doc["floor"], "threshold": doc["threshold"]}
    assert 0.0 <= r["quora"]["roc_auc"]["cross_encoder"] <= 1.0
    mnh = r["must_not_hit_test"]["cross_encoder_default"]
    assert mnh["must_not_hit"] == 134 and mnh["paraphrases"] == 134

"""The benchmarks' shared data and a plain onnxruntime embedder, with no semcache import.

``hit_latency.py`` and ``peers.py`` use the same Quora pairs, the same clustered filler
and the same percentile helpers; the peer systems (GPTCache, LiteLLM) run in their own
environment (``.venv-peers``) where semcache is not installed, so none of this may
import it.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QQP = ROOT.parent / "shared" / "data" / "qqp" / "pairs.jsonl.gz"


def req(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, q)) if xs else float("nan")


def stats(xs: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(xs, 50), 3), "p99_ms": round(pct(xs, 99), 3),
            "n": len(xs)}


def load_pairs(path: Path, n_pairs: int,
               n_other: int) -> tuple[list[tuple[str, str]], list[str]]:
    """``n_pairs`` paraphrase pairs (distinct texts) and ``n_other`` other questions."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    other: list[str] = []
    with gzip.open(path, "rt") as f:
        for line in f:
            d = json.loads(line)
            a, b = d["query"].strip(), d["candidate"].strip()
            if not a or not b or a in seen or b in seen or a == b:
                continue
            seen.update((a, b))
            if d["label"] == 1 and len(pairs) < n_pairs:
                pairs.append((a, b))
            elif len(other) < n_other:
                other.append(a)
            if len(pairs) >= n_pairs and len(other) >= n_other:
                break
    return pairs, other


def filler(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    """Clustered around real question embeddings: centre + w * noise, w in [0.8, 1.6]
    (cosine to the centre ~0.5-0.8, as other questions on one topic)."""
    dim = centres.shape[1]
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 50_000):
        m = min(n - s, 50_000)
        noise = rng.standard_normal((m, dim), dtype=np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        w = rng.uniform(0.8, 1.6, (m, 1)).astype(np.float32)
        v = centres[rng.integers(0, len(centres), m)] + w * noise
        out[s:s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


class PlainOnnx:
    """all-MiniLM-L6-v2 on a plain onnxruntime session (default options): tokenize,
    run, mean-pool, L2-normalise, one text at a time.

    What GPTCache's own ``Onnx`` embedding does, on the export semcache made of the
    packaged model files (``folder``: ``ensure_onnx(...)``), so every peer embeds with
    the same weights and nothing is downloaded.
    """

    def __init__(self, folder: str | Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        self.dim = int(manifest["dim"])
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(manifest["max_seq_length"])
        self.sess = ort.InferenceSession(str(folder / "model.onnx"),
                                         providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.sess.get_inputs()]

    def __call__(self, text: str, **_: Any) -> np.ndarray:
        enc = self.tok.encode(text)
        ids = np.asarray([enc.ids], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.asarray([enc.attention_mask], np.int64),
                "token_type_ids": np.zeros_like(ids)}
        h = self.sess.run(None, {k: feed[k] for k in self.names})[0]
        v = h.mean(axis=1)[0]
        return (v / np.linalg.norm(v)).astype(np.float32)

    def many(self, texts: list[str]) -> np.ndarray:
        return np.stack([self(t) for t in texts]) if texts else np.empty((0, self.dim),
                                                                          np.float32)


@contextmanager
def busy_processes(n: int) -> Iterator[None]:
    """``n`` processes that only spin a Python loop while the block runs: a host whose
    cores are shared with other work, in the same run as the quiet measurement."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()

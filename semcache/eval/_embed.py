"""Embedding many texts for evaluation: deduplicated, batched, optionally cached on disk."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..embedders.base import Embedder
from ._progress import progress

__all__ = ["PrecomputedEmbedder", "embed_texts"]


def _cache_file(cache_dir: Path, model_id: str, texts: Sequence[str]) -> Path:
    h = hashlib.sha256(model_id.encode())
    for t in texts:
        h.update(b"\x00")
        h.update(t.encode("utf-8", "surrogatepass"))
    return cache_dir / f"emb-{h.hexdigest()[:24]}.npy"


def embed_texts(embedder: Embedder, texts: Sequence[str], *, batch_size: int = 256,
                cache_dir: str | os.PathLike[str] | None = None,
                show_progress: bool | None = None) -> np.ndarray:
    """``float32[len(texts), dim]`` unit vectors; each distinct text is embedded once.

    With ``cache_dir`` the matrix of distinct texts is kept as ``.npy`` keyed by the model
    and the exact texts, so re-running a sweep on 64k pairs costs a file read, not
    minutes of CPU."""
    texts = list(texts)
    unique = list(dict.fromkeys(texts))
    path = None
    if cache_dir is not None:
        path = _cache_file(Path(cache_dir), embedder.model_id, unique)
        if path.exists():
            vecs = np.load(path)
            if vecs.shape[0] == len(unique):
                return _expand(vecs, unique, texts)
    starts = range(0, len(unique), batch_size)
    parts = [embedder.embed(unique[s:s + batch_size])
             for s in progress(starts, total=len(starts), desc="embedding",
                               enabled=show_progress, unit="batch")]
    vecs = np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vecs)
        os.replace(tmp, path)
    return _expand(vecs, unique, texts)


def _expand(vecs: np.ndarray, unique: list[str], texts: list[str]) -> np.ndarray:
    if len(unique) == len(texts):
        return vecs
    where = {t: i for i, t in enumerate(unique)}
    return vecs[np.fromiter((where[t] for t in texts), dtype=np.int64, count=len(texts))]


class PrecomputedEmbedder(Embedder):
    """An embedder answering from vectors computed ahead in batches, falling back to the
    wrapped model for texts it has not seen.

    A replay hands this to ``Cache(embedder=...)``: the cache still embeds every request
    through the ``Embedder`` seam, but batching the model work up front makes a replay of
    thousands of requests take seconds instead of one model call per request. Its
    ``embed`` timings are then table lookups, not model latency."""

    def __init__(self, base: Embedder, texts: Sequence[str], vectors: np.ndarray) -> None:
        super().__init__(cache_size=0)
        self.base = base
        self.model_id = base.model_id  # same vectors, same model: indexes stay compatible
        self._table = dict(zip(texts, vectors))
        self.misses = 0

    @property
    def dim(self) -> int:
        return self.base.dim

    def _embed(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in texts if t not in self._table]
        fresh: dict[str, np.ndarray] = {}
        if todo:
            self.misses += len(todo)
            fresh = dict(zip(todo, self.base.embed(todo)))
        return np.stack([self._table[t] if t in self._table else fresh[t] for t in texts])

    @classmethod
    def build(cls, base: Embedder, texts: Sequence[str], **kw) -> PrecomputedEmbedder:
        unique = list(dict.fromkeys(texts))
        return cls(base, unique, embed_texts(base, unique, **kw))

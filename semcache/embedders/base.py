"""The ``Embedder`` seam: texts -> L2-normalised float32 vectors.

Backends implement ``_embed(texts) -> array[n, dim]``. The shared work (input
validation, batching, an exact-text LRU so a repeated text is embedded once, dtype,
normalisation, shape and NaN checks) is done here, once, in ``embed``.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from .._errors import BackendError, InvalidRequestError

__all__ = ["Embedder"]


class Embedder(ABC):
    #: stable identifier of the model, recorded in index manifests
    model_id: str = "unknown"
    #: texts per backend call
    batch_size: int = 64

    def __init__(self, *, cache_size: int = 4096) -> None:
        if cache_size < 0:
            raise InvalidRequestError("cache_size must be >= 0")
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lru_size = cache_size
        self._lru_lock = threading.Lock()

    @property
    @abstractmethod
    def dim(self) -> int:
        """Dimension of the vectors (may load the model)."""

    @abstractmethod
    def _embed(self, texts: list[str]) -> np.ndarray:
        """Embed a batch; may return unnormalised vectors of any float dtype."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: a C-contiguous ``float32[len(texts), dim]``, rows of norm 1."""
        if isinstance(texts, str):
            raise InvalidRequestError("embed() takes a sequence of texts, not one string")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidRequestError(f"text {i} is {type(t).__name__}, not str")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        cached: dict[int, np.ndarray] = {}
        todo: list[int] = []
        if self._lru_size:
            with self._lru_lock:
                for i, t in enumerate(texts):
                    v = self._lru.get(t)
                    if v is None:
                        todo.append(i)
                    else:
                        self._lru.move_to_end(t)
                        cached[i] = v
        else:
            todo = list(range(len(texts)))
        if not todo:  # all cached: the common case for a repeated query
            return np.stack([cached[i] for i in range(len(texts))])
        # dedupe inside the batch, so one text is embedded once
        unique = list(dict.fromkeys(texts[i] for i in todo))
        parts = []
        for start in range(0, len(unique), self.batch_size):
            parts.append(self._checked(unique[start : start + self.batch_size]))
        fresh = parts[0] if len(parts) == 1 else np.concatenate(parts)
        by_text = {t: fresh[j] for j, t in enumerate(unique)}
        if self._lru_size:
            with self._lru_lock:
                for t, v in by_text.items():
                    self._lru[t] = v
                    self._lru.move_to_end(t)
                while len(self._lru) > self._lru_size:
                    self._lru.popitem(last=False)
        if not cached and len(unique) == len(texts):
            return fresh
        out = np.empty((len(texts), fresh.shape[1]), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = cached[i] if i in cached else by_text[t]
        return out

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        return await asyncio.to_thread(self.embed, texts)

    def _checked(self, batch: list[str]) -> np.ndarray:
        try:
            raw = self._embed(batch)
        except (BackendError, InvalidRequestError):
            raise
        except Exception as exc:  # a model/runtime failure, typed for the pipeline
            raise BackendError(f"{self.model_id}: {exc}", backend="embedder") from exc
        arr = np.asarray(raw, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(batch):
            raise BackendError(
                f"{self.model_id} returned shape {arr.shape} for {len(batch)} texts",
                backend="embedder",
            )
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise BackendError(f"{self.model_id} returned a zero or non-finite vector",
                               backend="embedder")
        arr = arr / norms
        return np.ascontiguousarray(arr, dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r})"

"""The ``Embedder`` seam: texts -> L2-normalised float32 vectors.

Backends implement ``_embed(texts) -> array[n, dim]`` and, when they have a native async
client, ``_aembed``. The shared work (input validation, batching, an exact-text LRU so a
repeated text is embedded once, dtype, normalisation, shape and NaN checks) is done here,
once: ``embed`` and ``aembed`` differ only in how they call the backend, and share the
pure steps ``_plan`` (validate, consult the LRU, dedupe) and ``_merge`` (fill the LRU,
assemble the answer), in the way httpx keeps everything without I/O in ``BaseClient``.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field

import numpy as np
from cachetools import LRUCache

from .._errors import BackendError, InvalidRequestError

__all__ = ["Embedder", "checked_texts", "text_list"]


@dataclass
class _Plan:
    """What one ``embed`` call must compute: the texts the LRU could not answer."""

    texts: list[str]
    cached: dict[int, np.ndarray] = field(default_factory=dict)
    unique: list[str] = field(default_factory=list)  # to embed, deduplicated, in order


def text_list(texts: Sequence[str]) -> list[str]:
    """``texts`` as a new list, if it is a sequence (not one str, bytes, a mapping or a
    set, whose order is not the caller's); the items are not checked."""
    if isinstance(texts, str):
        raise InvalidRequestError("embed() takes a sequence of texts, not one string")
    if isinstance(texts, (bytes, bytearray, memoryview, Mapping, Set)):
        raise InvalidRequestError(
            f"embed() takes a sequence of texts, not {type(texts).__name__}")
    try:
        return list(texts)
    except TypeError:
        raise InvalidRequestError(
            f"embed() takes a sequence of texts, not {type(texts).__name__}") from None


def checked_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, or an ``InvalidRequestError`` naming what is wrong with it.

    A lone surrogate (JSON spells one as ``"\\ud800"``) is refused here, by index: no
    tokenizer or HTTP client can encode it, and failing inside the backend made a
    caller's bad text look like an embedder outage (and failed every other text of its
    batch)."""
    texts = text_list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidRequestError(f"text {i} is {type(t).__name__}, not str")
        if not t.isascii():  # O(1) for the common all-ASCII text
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidRequestError(
                    f"text {i} is not valid Unicode: a lone surrogate "
                    f"{t[exc.start]!r} at position {exc.start}") from None
    return texts


class Embedder(ABC):
    #: stable identifier of the model, recorded in index manifests
    model_id: str = "unknown"
    #: texts per backend call
    batch_size: int = 64

    def __init__(self, *, cache_size: int = 4096) -> None:
        if cache_size < 0:
            raise InvalidRequestError("cache_size must be >= 0")
        # cachetools' LRU (issue #19: one LRU implementation, not three hand-written);
        # it is not thread-safe, so every access holds _lru_lock
        self._lru: LRUCache[str, np.ndarray] = LRUCache(maxsize=max(cache_size, 1))
        self._lru_size = cache_size
        self._lru_lock = threading.Lock()

    @property
    @abstractmethod
    def dim(self) -> int:
        """Dimension of the vectors (may load the model)."""

    @abstractmethod
    def _embed(self, texts: list[str]) -> np.ndarray:
        """Embed a batch; may return unnormalised vectors of any float dtype."""

    #: Backends with a native async client override this with
    #: ``async def _aembed(self, texts: list[str]) -> np.ndarray``; the others are run
    #: in a worker thread by ``aembed``, never on the event loop.
    _aembed = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: a C-contiguous ``float32[len(texts), dim]``, rows of norm 1."""
        plan = self._plan(texts)
        if not plan.unique:
            return self._merge(plan, None)
        parts = []
        for batch in self._batches(plan.unique):
            parts.append(self._checked(batch, self._call(self._embed, batch)))
        return self._merge(plan, parts)

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        """Async twin of ``embed``: same validation, LRU and checks."""
        if self._aembed is None:
            return await asyncio.to_thread(self.embed, texts)
        plan = self._plan(texts)
        if not plan.unique:
            return self._merge(plan, None)
        parts = []
        for batch in self._batches(plan.unique):
            try:
                raw = await self._aembed(batch)
            except (BackendError, InvalidRequestError):
                raise
            except Exception as exc:
                raise self._wrap(exc) from exc
            parts.append(self._checked(batch, raw))
        return self._merge(plan, parts)

    def embed_one(self, text: str) -> np.ndarray:
        row: np.ndarray = self.embed([text])[0]
        return row

    # -- the pure steps both twins share ------------------------------------------------

    def _plan(self, texts: Sequence[str]) -> _Plan:
        plan = _Plan(checked_texts(texts))
        texts = plan.texts
        todo: list[int] = []
        if self._lru_size:
            with self._lru_lock:
                for i, t in enumerate(texts):
                    v = self._lru.get(t)  # a hit becomes the most recent
                    if v is None:
                        todo.append(i)
                    else:
                        plan.cached[i] = v
        else:
            todo = list(range(len(texts)))
        # dedupe inside the call, so one text is embedded once
        plan.unique = list(dict.fromkeys(texts[i] for i in todo))
        return plan

    def _batches(self, unique: list[str]) -> list[list[str]]:
        return [unique[s : s + self.batch_size] for s in range(0, len(unique), self.batch_size)]

    def _merge(self, plan: _Plan, parts: list[np.ndarray] | None) -> np.ndarray:
        texts = plan.texts
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if not parts:  # all cached: the common case for a repeated query
            return np.stack([plan.cached[i] for i in range(len(texts))])
        fresh = parts[0] if len(parts) == 1 else np.concatenate(parts)
        by_text = {t: fresh[j] for j, t in enumerate(plan.unique)}
        if self._lru_size:
            with self._lru_lock:
                for t, v in by_text.items():
                    # a read-only copy: the caller owns (and may modify) what we return,
                    # and a row view would keep the whole batch alive
                    row = v.copy()
                    row.flags.writeable = False
                    self._lru[t] = row  # evicts the least recent past cache_size
        if not plan.cached and len(plan.unique) == len(texts):
            return fresh
        out = np.empty((len(texts), fresh.shape[1]), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = plan.cached[i] if i in plan.cached else by_text[t]
        return out

    def _call(self, fn: Callable[[list[str]], np.ndarray], batch: list[str]) -> np.ndarray:
        try:
            return fn(batch)
        except (BackendError, InvalidRequestError):
            raise
        except Exception as exc:  # a model/runtime failure, typed for the pipeline
            raise self._wrap(exc) from exc

    def _wrap(self, exc: Exception) -> BackendError:
        return BackendError(f"{self.model_id}: {exc}", backend="embedder")

    def _checked(self, batch: list[str], raw: np.ndarray) -> np.ndarray:
        arr = np.asarray(raw, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(batch):
            raise BackendError(
                f"{self.model_id} returned shape {arr.shape} for {len(batch)} texts",
                backend="embedder",
            )
        if arr.shape[1] != self.dim:
            raise BackendError(
                f"{self.model_id} returned {arr.shape[1]}-d vectors, expected {self.dim}",
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

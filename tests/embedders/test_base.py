"""The Embedder base: validation, the bounded LRU, never embedding a text twice."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from semcache import BackendError, InvalidRequestError
from semcache.embedders.base import Embedder


class Counting(Embedder):
    model_id = "counting"
    batch_size = 3

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.calls: list[list[str]] = []
        self.width = 4

    @property
    def dim(self) -> int:
        return 4

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[len(t) + 1.0, 1.0, 2.0, float(sum(map(ord, t)) % 7)]
                         for t in texts])[:, : self.width]

    @property
    def embedded(self) -> list[str]:
        return [t for c in self.calls for t in c]


def test_a_text_is_embedded_once() -> None:
    e = Counting()
    e.embed(["a", "b", "a"])
    e.embed(["b", "c"])
    e.embed_one("a")
    assert e.embedded == ["a", "b", "c"]


def test_batches_split_by_batch_size() -> None:
    e = Counting()
    e.embed([str(i) for i in range(7)])
    assert [len(c) for c in e.calls] == [3, 3, 1]


def test_lru_is_bounded_and_evicts_least_recent() -> None:
    e = Counting(cache_size=3)
    e.embed(["a", "b", "c"])
    e.embed(["a"])  # a is now the most recent
    e.embed(["d"])  # evicts b
    assert len(e._lru) == 3 and set(e._lru) == {"a", "c", "d"}
    e.embed(["b"])  # evicts c, the least recent now
    assert e.embedded == ["a", "b", "c", "d", "b"]
    e.embed(["a", "d", "b"])
    assert e.embedded == ["a", "b", "c", "d", "b"] and set(e._lru) == {"a", "d", "b"}
    e.embed([f"x{i}" for i in range(100)])
    assert len(e._lru) == 3


def test_cache_size_zero_disables_the_lru() -> None:
    e = Counting(cache_size=0)
    e.embed(["a"])
    e.embed(["a"])
    assert e.embedded == ["a", "a"] and len(e._lru) == 0


def test_negative_cache_size_rejected() -> None:
    with pytest.raises(InvalidRequestError):
        Counting(cache_size=-1)


def test_cached_rows_are_read_only_copies() -> None:
    e = Counting()
    out = e.embed(["a", "b"])
    out[:] = 0
    assert np.all(e.embed(["a"]) != 0)
    assert not e._lru["a"].flags.writeable
    assert e._lru["a"].base is None  # not a view keeping the batch alive


def test_backend_failure_is_typed() -> None:
    e = Counting()
    e._embed = lambda texts: 1 / 0  # type: ignore[method-assign]
    with pytest.raises(BackendError) as info:
        e.embed(["x"])
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_wrong_width_is_a_backend_error() -> None:
    e = Counting()
    e.width = 3
    with pytest.raises(BackendError):
        e.embed(["x"])


def test_zero_vector_is_a_backend_error() -> None:
    e = Counting()
    e._embed = lambda texts: np.zeros((len(texts), 4))  # type: ignore[method-assign]
    with pytest.raises(BackendError):
        e.embed(["x"])


async def test_async_default_runs_in_a_thread_and_shares_the_lru() -> None:
    e = Counting()
    seen: list[str] = []
    orig = e._embed

    def record(texts: list[str]) -> np.ndarray:
        seen.append(threading.current_thread().name)
        return orig(texts)

    e._embed = record  # type: ignore[method-assign]
    await e.aembed(["a"])
    e.embed(["a"])
    await e.aembed(["a"])
    assert e.embedded == ["a"] and seen[0] != threading.main_thread().name

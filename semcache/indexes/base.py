"""The ``VectorIndex`` seam: vectors with a context key, searched within one context.

An entry is identified by the exact key of the request whose answer it points to, so
writing the same request twice replaces one entry. ``search`` only ever returns entries
of the given context key that have not expired, best first, with cosine similarity in
[-1, 1] (backends that speak distance convert in one place of their own).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from .._entries import MAX_OBSERVATIONS, Candidate, IndexEntry, Observation

# The records are re-exported: they are the index's vocabulary, defined in a neutral
# module so that verifiers and policies can read them without importing this seam
__all__ = ["MAX_OBSERVATIONS", "Candidate", "IndexEntry", "Observation", "VectorIndex"]

class VectorIndex(ABC):
    name: str = "index"

    @abstractmethod
    def add(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> None:
        """Add or replace (by ``key``) entries; ``vectors`` is float32[n, dim], unit rows."""

    @abstractmethod
    def search(
        self, vector: np.ndarray, context: str, k: int = 4, now: float | None = None
    ) -> list[Candidate]:
        """Up to ``k`` unexpired entries of ``context``, most similar first."""

    @abstractmethod
    def delete(self, keys: Sequence[str]) -> int:
        """Remove entries by key; returns how many existed."""

    def delete_if_unchanged(self, candidate: Candidate) -> bool:
        """Remove the entry a search returned as ``candidate``, only if it is still that
        entry (the same key, created and expiry times); True when it was removed. A
        lookup drops a candidate whose answer vanished from the exact store with this:
        a writer that stored the request again since that read must keep its fresh
        entry. The default deletes by key, which races such a writer: every built-in
        index overrides it with an atomic check-and-delete."""
        return self.delete([candidate.key]) > 0

    @abstractmethod
    def clear(self, namespace: str) -> int:
        """Remove every entry of ``namespace``; returns how many."""

    @abstractmethod
    def count(self, namespace: str | None = None) -> int:
        """Entries stored (in ``namespace``, or in all)."""

    def observe(self, key: str, observation: Observation) -> bool:
        """Append a judged outcome to an entry (atomically: concurrent observers must not
        lose one); False when the entry is gone. Keeps the last ``MAX_OBSERVATIONS``."""
        raise NotImplementedError(f"{type(self).__name__} does not store observations")

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass

    async def aobserve(self, key: str, observation: Observation) -> bool:
        return await asyncio.to_thread(self.observe, key, observation)

    async def aadd(self, entries: Sequence[IndexEntry], vectors: np.ndarray) -> None:
        await asyncio.to_thread(self.add, entries, vectors)

    async def asearch(
        self, vector: np.ndarray, context: str, k: int = 4, now: float | None = None
    ) -> list[Candidate]:
        return await asyncio.to_thread(self.search, vector, context, k, now)

    async def adelete(self, keys: Sequence[str]) -> int:
        return await asyncio.to_thread(self.delete, keys)

    async def adelete_if_unchanged(self, candidate: Candidate) -> bool:
        return await asyncio.to_thread(self.delete_if_unchanged, candidate)

    async def aclear(self, namespace: str) -> int:
        return await asyncio.to_thread(self.clear, namespace)

    async def acount(self, namespace: str | None = None) -> int:
        return await asyncio.to_thread(self.count, namespace)

    async def aping(self) -> bool:
        return await asyncio.to_thread(self.ping)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

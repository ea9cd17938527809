"""FaissIndex under the VectorIndex contract: exact shards, approximate shards, on disk."""

from __future__ import annotations

import pytest

from semcache.indexes.faiss import FaissIndex
from tests.contracts.vector_index import PersistentVectorIndexContract, VectorIndexContract


class TestFaissMemory(VectorIndexContract):
    @pytest.fixture
    def index(self):
        idx = FaissIndex(self.dim)
        yield idx
        idx.close()


class TestFaissDisk(PersistentVectorIndexContract):
    @pytest.fixture
    def index(self, tmp_path):
        self._path = tmp_path / "idx"
        self._open = [FaissIndex(self.dim, path=self._path, model_id="m")]
        yield self._open[0]
        for i in self._open:
            i.close()

    @pytest.fixture
    def reopen(self, index):
        def again():
            index.close()
            nxt = FaissIndex(self.dim, path=self._path, model_id="m")
            self._open.append(nxt)
            return nxt
        return again


class TestFaissApproximate(VectorIndexContract):
    """Every shard of two or more entries searched through its IVF (forced)."""

    @pytest.fixture
    def index(self):
        idx = FaissIndex(self.dim, approx_threshold=2)
        yield idx
        idx.close()


class TestFaissApproximateDisk(PersistentVectorIndexContract):
    @pytest.fixture
    def index(self, tmp_path):
        self._path = tmp_path / "idx"
        self._open = [FaissIndex(self.dim, path=self._path, model_id="m", approx_threshold=2)]
        yield self._open[0]
        for i in self._open:
            i.close()

    @pytest.fixture
    def reopen(self, index):
        def again():
            index.close()
            nxt = FaissIndex(self.dim, path=self._path, model_id="m", approx_threshold=2)
            assert nxt.approximate_shards() >= 1
            self._open.append(nxt)
            return nxt
        return again


class TestFaissCompact(VectorIndexContract):
    """Every shard of two or more entries scanned through its int8 copy first (forced),
    then rescored exactly (issue #25)."""

    @pytest.fixture
    def index(self):
        idx = FaissIndex(self.dim, approx_threshold=None, compact_threshold=2)
        yield idx
        idx.close()


class TestFaissCompactDisk(PersistentVectorIndexContract):
    @pytest.fixture
    def index(self, tmp_path):
        self._path = tmp_path / "idx"
        self._open = [FaissIndex(self.dim, path=self._path, model_id="m",
                                 approx_threshold=None, compact_threshold=2)]
        yield self._open[0]
        for i in self._open:
            i.close()

    @pytest.fixture
    def reopen(self, index):
        def again():
            index.close()
            nxt = FaissIndex(self.dim, path=self._path, model_id="m", approx_threshold=None,
                             compact_threshold=2)
            assert nxt.compact_shards() >= 1
            self._open.append(nxt)
            return nxt
        return again

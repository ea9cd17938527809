"""qdrant-semantic on qdrant-client's embedded mode: index and store contracts, the
collection's recorded model, the folder lock, and error mapping on the server path."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from semcache import BackendError, BackendUnavailable, ConfigError
from semcache.exact.qdrant import QdrantStore
from semcache.indexes.base import IndexEntry
from semcache.indexes.qdrant import QdrantConnection, QdrantIndex
from tests.contracts.exact_store import RemoteExactStoreContract
from tests.contracts.vector_index import (
    T0,
    PersistentVectorIndexContract,
    VectorIndexContract,
    unit,
)

from ._damage import Same, feedback_after_damage


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


class TestQdrantIndexMemory(VectorIndexContract):
    @pytest.fixture
    def index(self):
        idx = QdrantIndex(QdrantConnection(), "vec", model_id="m")
        yield idx
        idx.close()


class TestQdrantIndexFolder(PersistentVectorIndexContract):
    @pytest.fixture
    def index(self, tmp_path):
        self._path = tmp_path / "q"
        self._open = [QdrantIndex(QdrantConnection(path=self._path), "vec", model_id="m")]
        yield self._open[0]
        for i in self._open:
            i.close()

    @pytest.fixture
    def reopen(self, index):
        def again():
            index.close()
            nxt = QdrantIndex(QdrantConnection(path=self._path), "vec", model_id="m")
            self._open.append(nxt)
            return nxt
        return again


class TestQdrantStore(RemoteExactStoreContract):
    @pytest.fixture
    def store(self):
        s = QdrantStore(QdrantConnection(), "answers")
        yield s
        s.close()

    @pytest.fixture
    def dead_store(self):
        # the server path, same code, nothing listening: errors must come out mapped
        s = QdrantStore(QdrantConnection(url=f"http://127.0.0.1:{_closed_port()}",
                                         timeout=2), "answers")
        yield s
        s.close()


def test_dead_server_index_raises_backend_unavailable() -> None:
    idx = QdrantIndex(QdrantConnection(url=f"http://127.0.0.1:{_closed_port()}", timeout=2),
                      "vec", dim=4)
    with pytest.raises(BackendUnavailable):
        idx.search(np.ones(4, np.float32) / 2, "ctx")
    with pytest.raises(BackendUnavailable):
        idx.add([IndexEntry("n:a", "c", "n", "p", T0, None)], np.ones((1, 4), np.float32) / 2)
    idx.close()


def test_constructors_do_no_io_against_a_server() -> None:
    # a URL where nothing listens: constructing must still succeed (collections are lazy)
    conn = QdrantConnection(url=f"http://127.0.0.1:{_closed_port()}")
    QdrantIndex(conn, "vec", model_id="m")
    QdrantStore(conn, "answers")
    conn.close()


def test_other_model_is_a_config_error(tmp_path) -> None:
    conn = QdrantConnection(path=tmp_path / "q")
    QdrantIndex(conn, "vec", model_id="model-a").add(
        [IndexEntry("n:a", "c", "n", "p", T0, None)], unit(np.random.default_rng(1), 1, 4))
    conn.close()
    conn = QdrantConnection(path=tmp_path / "q")
    other = QdrantIndex(conn, "vec", model_id="model-b")
    with pytest.raises(ConfigError) as err:
        other.search(unit(np.random.default_rng(2), 1, 4)[0], "c")
    assert err.value.parameter == "qdrant_semantic_cache_embedding_model"
    assert "model-a" in str(err.value)
    same = QdrantIndex(conn, "vec", model_id="model-a")
    assert same.count("n") == 1 and same.dim == 4
    conn.close()


def test_folder_lock_is_a_config_error(tmp_path) -> None:
    conn = QdrantConnection(path=tmp_path / "q")
    # another process holding the folder
    code = textwrap.dedent(f"""
        from semcache import ConfigError
        from semcache.indexes.qdrant import QdrantConnection
        try:
            QdrantConnection(path={str(tmp_path / 'q')!r})
        except ConfigError as e:
            print("ConfigError", e.parameter)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=".", check=False)
    assert out.stdout.strip() == "ConfigError qdrant_path", out.stderr
    conn.close()


def test_purge_expired_removes_only_expired() -> None:
    conn = QdrantConnection()
    idx = QdrantIndex(conn, "vec", clock=lambda: T0)
    v = unit(np.random.default_rng(3), 3, 4)
    idx.add([IndexEntry("n:a", "c", "n", "p", T0, T0 + 1),
             IndexEntry("n:b", "c", "n", "p", T0, T0 + 100),
             IndexEntry("n:c", "c", "n", "p", T0, None)], v)
    assert idx.purge_expired(now=T0 + 50) == 1
    assert {c.key for c in idx.search(v[0], "c", k=5, now=T0)} == {"n:b", "n:c"}
    conn.close()


def test_store_expired_answer_is_gone() -> None:
    now = [T0]
    store = QdrantStore(QdrantConnection(), "answers", clock=lambda: now[0])
    store.set("n:a", b"1", ttl=10)
    assert store.get("n:a") == b"1"
    now[0] += 11
    assert store.get("n:a") is None
    assert store.purge_expired() == 1
    store.close()


@pytest.mark.parametrize("bad", [
    {"url": "localhost:6333"}, {"api_key": "k"}, {"url": "http://h:1", "path": "/tmp/x"},
    {"timeout": 0}])
def test_connection_validation(bad) -> None:
    with pytest.raises(ConfigError):
        QdrantConnection(**bad)


def test_index_validation() -> None:
    conn = QdrantConnection()
    with pytest.raises(ConfigError) as err:
        QdrantIndex(conn, "vec", quantization="fancy")
    assert err.value.parameter == "qdrant_quantization_config"
    with pytest.raises(ConfigError):
        QdrantIndex(conn, "a/b")
    for q in ("binary", "scalar", "product", None):
        QdrantIndex(conn, "vec", quantization=q)
    conn.close()


def test_backend_error_is_typed() -> None:
    conn = QdrantConnection()
    idx = QdrantIndex(conn, "vec")
    conn.close()
    with pytest.raises(BackendError):
        idx.count()


def test_dead_server_async_path_raises_backend_unavailable() -> None:
    import asyncio

    idx = QdrantIndex(QdrantConnection(url=f"http://127.0.0.1:{_closed_port()}", timeout=2),
                      "vec", dim=4)

    async def run() -> None:
        with pytest.raises(BackendUnavailable):
            await idx.asearch(np.ones(4, np.float32) / 2, "ctx")
        with pytest.raises(BackendUnavailable):
            await idx.acount()

    asyncio.run(run())
    idx.close()


# ------------------------------------------------ points another writer shaped otherwise
def _entry(name: str) -> IndexEntry:
    return IndexEntry(f"ns:{name}", "ns/A", "ns", f"prompt {name}", T0, None)


@pytest.mark.parametrize("damage", [
    {"o": 5}, {"o": "x"}, {"o": {"a": 5}}, {"o": {"a": [2.0, True]}},
    {"c": "yesterday"}, {"c": float("nan")}, {"c": None}, {"c": True},
    {"p": 7}, {"k": None}, {"x": float("inf")}, "no p", "no k", "no c"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_malformed_point_is_skipped_not_the_whole_search(damage, flavour, caplog) -> None:
    # one point written by a hostile or older writer made every search of its context
    # raise (a counted index miss), so the good neighbour beside it was never served
    import asyncio
    import logging

    from semcache._connections.qdrant import point_id

    idx = QdrantIndex(QdrantConnection(), "vec", model_id="m")
    try:
        rng = np.random.default_rng(3)
        v = unit(rng, 1, 8)
        idx.add([_entry("good"), _entry("bad")], np.vstack([v, v]))
        pid, c = point_id("ns:bad"), idx.conn.client
        if isinstance(damage, dict):
            c.set_payload("vec", payload=damage, points=[pid], wait=True)
        else:
            c.delete_payload("vec", keys=[damage[3:]], points=[pid], wait=True)
        with caplog.at_level(logging.WARNING, logger="semcache"):
            got = (idx.search(v[0], "ns/A", k=4, now=T0) if flavour == "sync" else
                   asyncio.run(idx.asearch(v[0], "ns/A", k=4, now=T0)))
        assert [x.key for x in got] == ["ns:good"]
        assert idx.skipped == 1
        warned = [r for r in caplog.records if "malformed" in r.getMessage()]
        assert len(warned) == 1 and "vec" in warned[0].getMessage()
    finally:
        idx.close()


def test_many_malformed_points_warn_once_per_search(caplog) -> None:
    import logging

    from semcache._connections.qdrant import point_id

    idx = QdrantIndex(QdrantConnection(), "vec", model_id="m")
    try:
        v = unit(np.random.default_rng(4), 1, 8)
        names = ["good", *(f"bad{i}" for i in range(5))]
        idx.add([_entry(n) for n in names], np.vstack([v] * len(names)))
        idx.conn.client.set_payload("vec", payload={"o": 5}, wait=True,
                                    points=[point_id(f"ns:{n}") for n in names[1:]])
        with caplog.at_level(logging.WARNING, logger="semcache"):
            got = idx.search(v[0], "ns/A", k=10, now=T0)
        assert [x.key for x in got] == ["ns:good"] and idx.skipped == 5
        assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 1
    finally:
        idx.close()


def test_the_good_neighbour_of_a_malformed_point_is_served() -> None:
    from semcache import Cache
    from semcache._connections.qdrant import point_id


    # the index's handling is under test, not whether "a" answers "c": the cosine alone
    cache = Cache(type="qdrant-semantic", embedder=Same(), similarity_threshold=0.5,
                  verifier=None)
    try:
        ask = {"model": "m"}
        cache.add_cache({"answer": "good"}, messages=[{"role": "user", "content": "a"}], **ask)
        bad = cache.add_cache({"answer": "bad"}, messages=[{"role": "user", "content": "b"}],
                              **ask)
        cache.index.conn.client.set_payload(cache.index.collection, payload={"o": 5},
                                            points=[point_id(bad)], wait=True)
        hit = cache.lookup(messages=[{"role": "user", "content": "c"}], **ask)
        assert hit is not None and hit.value == {"answer": "good"}
        assert cache.stats()["errors_total"] == 0
    finally:
        cache.close()


# ------------------------------------------------ answers another writer shaped otherwise
_BAD_ANSWERS = [{"x": "soon"}, {"x": float("nan")}, {"x": True}, {"x": 10**400},
                {"v": "not base64!"},
                {"v": 5}, {"v": None}]


@pytest.mark.parametrize("damage", _BAD_ANSWERS)
def test_a_malformed_answer_is_an_integrity_error(damage) -> None:
    # a string expiry or an undecodable value raised TypeError / binascii.Error: a
    # store *fault*, not the integrity miss of every other store's unreadable record
    from semcache import IntegrityError
    from semcache._connections.qdrant import point_id

    s = QdrantStore(QdrantConnection(), "answers")
    try:
        s.set("ns:a", b"{}")
        s.conn.client.set_payload("answers", payload=damage, points=[point_id("ns:a")],
                                  wait=True)
        with pytest.raises(IntegrityError, match="ns:a"):
            s.get("ns:a")
    finally:
        s.close()


@pytest.mark.parametrize("damage", _BAD_ANSWERS)
def test_a_malformed_answer_is_a_counted_integrity_miss(damage) -> None:
    from semcache import Cache, IntegrityError
    from semcache._connections.qdrant import point_id


    for on_error in ("open", "raise"):
        cache = Cache(type="qdrant-semantic", embedder=Same(), similarity_threshold=0.5,
                      on_error=on_error)
        try:
            ask = {"model": "m", "messages": [{"role": "user", "content": "a"}]}
            key = cache.add_cache({"answer": "x"}, **ask)
            cache.store.conn.client.set_payload(cache.store.collection, payload=damage,
                                                points=[point_id(key)], wait=True)
            if on_error == "raise":
                with pytest.raises(IntegrityError):
                    cache.lookup(**ask)
                continue
            assert cache.lookup(**ask) is None  # exact read, then the semantic fetch
            st = cache.stats()
            assert st["integrity_rejections"] == 2 and st["errors_total"] == 0, st
            assert cache.index.count() == 1  # an unreadable answer is not a vanished one
        finally:
            cache.close()


# ------------------------------------------- observations another writer shaped otherwise
_GOOD_OBS = [0.8, 1, None]


@pytest.mark.parametrize("damage", [
    5, "x", "x" * 200, [1, 2], [_GOOD_OBS] * 200, {"a": 5}, {"a": [2.0, True]},
    {"a": _GOOD_OBS, "b": "junk"}, {f"{i:03d}": _GOOD_OBS for i in range(128)} | {"z": 1}])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_observing_an_entry_with_malformed_observations_repairs_them(damage, flavour,
                                                                     caplog) -> None:
    # a non-object "o" (or one a long list/str: len() >= 2*MAX then .items()) raised
    # TypeError/AttributeError out of observe: the judged outcome was lost as an index
    # fault, and the point stayed unsearchable (its search skips a malformed "o")
    import asyncio
    import logging

    from semcache._connections.qdrant import point_id
    from semcache.indexes.base import MAX_OBSERVATIONS, Observation

    idx = QdrantIndex(QdrantConnection(), "vec", model_id="m")
    try:
        v = unit(np.random.default_rng(5), 1, 8)
        idx.add([_entry("bad")], v)
        idx.conn.client.set_payload("vec", payload={"o": damage}, points=[point_id("ns:bad")],
                                    wait=True)
        obs = Observation(0.75, False, "q1")
        with caplog.at_level(logging.WARNING, logger="semcache"):
            done = (idx.observe("ns:bad", obs) if flavour == "sync" else
                    asyncio.run(idx.aobserve("ns:bad", obs)))
        assert done is True and idx.repaired == 1
        warned = [r for r in caplog.records if "malformed observations" in r.getMessage()]
        assert len(warned) == 1 and "ns:bad" in warned[0].getMessage()
        got = idx.search(v[0], "ns/A", k=4, now=T0)  # searchable again, nothing skipped
        assert [x.key for x in got] == ["ns:bad"] and idx.skipped == 0
        kept = list(got[0].observations)
        assert obs in kept and len(kept) <= MAX_OBSERVATIONS
        kept.remove(obs)
        assert all(o == Observation(0.8, True) for o in kept)  # the readable ones stay
        idx.observe("ns:bad", obs)  # and the next observation is the ordinary path
        assert idx.repaired == 1
    finally:
        idx.close()


def test_feedback_on_an_entry_with_malformed_observations_is_not_a_fault() -> None:
    from semcache import Cache
    from semcache._connections.qdrant import point_id

    for on_error in ("open", "raise"):
        # the index's repair is under test, not whether "a" answers "b": the cosine alone
        cache = Cache(type="qdrant-semantic", embedder=Same(), similarity_threshold=0.5,
                      on_error=on_error, verifier=None)
        try:
            feedback_after_damage(cache, on_error, lambda key: cache.index.conn.client.set_payload(
                cache.index.collection, payload={"o": 5}, points=[point_id(key)], wait=True))
        finally:
            cache.close()

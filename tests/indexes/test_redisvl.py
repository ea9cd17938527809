"""redis-semantic on a real Redis Stack (started by the project's launcher): the index
contract, the distance conversion, the recorded model and TTL via Redis key expiry."""

from __future__ import annotations

import contextlib
import socket
import uuid

import numpy as np
import pytest

from semcache import BackendError, BackendUnavailable, ConfigError
from semcache._connections.redis import RedisConnection
from semcache.exact.redis import RedisStore
from semcache.indexes.base import IndexEntry
from semcache.indexes.redisvl import RedisVLIndex, similarity_from_distance
from tests.contracts.exact_store import wait_until
from tests.contracts.vector_index import T0, PersistentVectorIndexContract, unit

from ._damage import Same, feedback_after_damage


def _name() -> str:
    return "t" + uuid.uuid4().hex[:10]


class TestRedisVLIndex(PersistentVectorIndexContract):
    @pytest.fixture
    def index(self, redis_stack_url):
        self._url, self._name = redis_stack_url, _name()
        self._open = [RedisVLIndex(RedisConnection(url=redis_stack_url), self._name, model_id="m")]
        yield self._open[0]
        self._open[-1].drop()
        for i in self._open:
            i.close()

    @pytest.fixture
    def reopen(self, index):
        def again():  # a new process's view: new clients, same server
            index.close()
            nxt = RedisVLIndex(RedisConnection(url=self._url), self._name, model_id="m")
            self._open.append(nxt)
            return nxt
        return again


class TestRedisVLIndexHNSW(TestRedisVLIndex):
    @pytest.fixture
    def index(self, redis_stack_url):
        self._url, self._name = redis_stack_url, _name()
        self._open = [RedisVLIndex(RedisConnection(url=redis_stack_url), self._name,
                                   model_id="m", algorithm="hnsw")]
        yield self._open[0]
        self._open[-1].drop()
        for i in self._open:
            i.close()


@pytest.mark.parametrize(("distance", "similarity"), [
    (0, 1.0), ("0", 1.0), (0.15, 0.85), ("0.150000006", 0.849999994), (1, 0.0),
    (2, -1.0), (-1e-7, 1.0), (2.0000001, -1.0)])
def test_distance_conversion_pinned(distance, similarity) -> None:
    # 0 -> identical, the default threshold's distance -> the threshold, 1 -> orthogonal
    assert similarity_from_distance(distance) == pytest.approx(similarity, abs=1e-9)


def test_other_model_is_a_config_error(redis_stack_url) -> None:
    name = _name()
    a = RedisVLIndex(RedisConnection(url=redis_stack_url), name, model_id="model-a")
    a.add([IndexEntry("n:a", "c", "n", "p", T0, None)], unit(np.random.default_rng(1), 1, 4))
    b = RedisVLIndex(RedisConnection(url=redis_stack_url), name, model_id="model-b")
    with pytest.raises(ConfigError) as err:
        b.search(unit(np.random.default_rng(2), 1, 4)[0], "c")
    assert err.value.parameter == "redis_semantic_cache_embedding_model"
    same = RedisVLIndex(RedisConnection(url=redis_stack_url), name, model_id="model-a")
    assert same.count("n") == 1 and same.dim == 4
    a.drop()
    for i in (a, b, same):
        i.close()


def test_entries_expire_in_redis(redis_stack_url) -> None:
    idx = RedisVLIndex(RedisConnection(url=redis_stack_url), _name())
    idx.expiry_grace = 0.0
    import time
    v = unit(np.random.default_rng(3), 2, 4)
    idx.add([IndexEntry("n:short", "c", "n", "p", T0, time.time() + 1),
             IndexEntry("n:long", "c", "n", "p", T0, None)], v)
    client = idx.connection.client()
    assert 0 < client.pttl(idx._rkey("n:short")) <= 1000
    assert client.pttl(idx._rkey("n:long")) == -1  # no expiry
    assert wait_until(lambda: idx.count("n") == 1, timeout=10)
    assert [c.key for c in idx.search(v[0], "c", k=5)] == ["n:long"]
    idx.drop()
    idx.close()


def test_flush_does_not_touch_other_namespaces_or_store_keys(redis_stack_url) -> None:
    store = RedisStore(url=redis_stack_url)
    idx = RedisVLIndex(store.connection, "semcache")  # one pool, as the builder does
    ns = _name()
    store.set(f"{ns}:answer", b"x")
    idx.add([IndexEntry(f"{ns}:answer", "c", ns, "p", T0, None),
             IndexEntry(f"{ns}x:answer", "c", ns + "x", "p", T0, None)],
            unit(np.random.default_rng(4), 2, 4))
    assert store.clear(ns) == 1  # the store's flush never reaches the index's hashes
    assert idx.count(ns) == 1
    assert idx.clear(ns) == 1
    assert idx.count(ns + "x") == 1
    idx.clear(ns + "x")
    idx.close()


def test_a_store_given_for_the_connection_shares_its_pool(redis_stack_url) -> None:
    # RedisVLIndex(RedisStore(...)) was the signature before the connection layer
    store = RedisStore(url=redis_stack_url)
    idx = RedisVLIndex(store, _name(), model_id="m")
    assert idx.connection is store.connection
    idx.add([IndexEntry("n:a", "c", "n", "p", T0, None)], unit(np.random.default_rng(6), 1, 4))
    assert store.redis_client is idx.connection.client()  # one pool
    assert [c.key for c in idx.search(unit(np.random.default_rng(6), 1, 4)[0], "c")] == ["n:a"]
    idx.drop()
    idx.close()
    with pytest.raises(ConfigError, match="RedisConnection"):
        RedisVLIndex(object(), "x")  # type: ignore[arg-type]


def test_server_down_is_backend_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    idx = RedisVLIndex(RedisConnection(url=f"redis://127.0.0.1:{port}", socket_timeout=1,
                                  socket_connect_timeout=1), "x", dim=4)
    with pytest.raises(BackendUnavailable):
        idx.search(unit(np.random.default_rng(5), 1, 4)[0], "c")
    idx.close()


def test_cluster_is_rejected() -> None:
    with pytest.raises(ConfigError):
        RedisVLIndex(RedisConnection(startup_nodes=[{"host": "127.0.0.1", "port": 1}]), "x")


def test_cache_type_with_litellm_params(redis_stack_url) -> None:
    from urllib.parse import urlparse

    from semcache import Cache
    from semcache._registry import build_redis_semantic
    from semcache.embedders.base import Embedder

    u = urlparse(redis_stack_url)
    name = _name()

    class Dim4(Embedder):
        model_id = "dim4"
        dim = 4

        def _embed(self, texts):
            return np.ones((len(texts), 4), np.float32)

    _store, idx = build_redis_semantic(Dim4(), host=u.hostname, port=u.port,
                                      redis_semantic_cache_index_name=name,
                                      redis_semantic_cache_use_async=True)
    idx.add([IndexEntry("n:a", "c", "n", "p", T0, None)], np.ones((1, 4), np.float32) / 2)
    assert idx.count("n") == 1 and idx.model_id == "dim4"
    idx.drop()
    idx.close()
    with pytest.raises(ConfigError) as err:
        Cache(type="redis-semantic", redis_startup_nodes=[{"host": "h", "port": 1}],
              embedder=Dim4())
    assert err.value.parameter == "redis_startup_nodes"
    with pytest.raises(ConfigError) as err:
        Cache(type="redis-semantic", embedder=Dim4(), redis_url=redis_stack_url,
              redis_semantic_cache_index_name="bad:name")
    assert err.value.parameter == "redis_semantic_cache_index_name"


# ------------------------------------------------ hashes another writer shaped otherwise
@pytest.mark.parametrize("damage", [
    {"o": "[5]"}, {"o": "not json"}, {"o": '[[2.0, true]]'}, {"o": "5"},
    {"o": "[" * 3000 + "]" * 3000},  # the stdlib's json: a RecursionError, not skipped
    {"c": "yesterday"}, {"c": "nan"}, {"c": "inf"}, "no p", "no c", "no k"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_malformed_hash_is_skipped_not_the_whole_search(redis_stack_url, damage, flavour,
                                                         caplog) -> None:
    # one hash written by a hostile or older writer made every search of its context
    # raise (a counted index miss), so the good neighbour beside it was never served
    import asyncio
    import logging

    import redis

    name = _name()
    idx = RedisVLIndex(RedisConnection(url=redis_stack_url), name, model_id="m")
    r = redis.Redis.from_url(redis_stack_url)
    try:
        v = unit(np.random.default_rng(3), 1, 8)
        idx.add([IndexEntry(f"ns:{k}", "ns/A", "ns", f"prompt {k}", T0, None)
                 for k in ("good", "bad")], np.vstack([v, v]))
        rk = idx._rkey("ns:bad")  # where the writer put it: the hash of that entry
        if isinstance(damage, dict):
            r.hset(rk, mapping=damage)
        else:
            r.hdel(rk, damage[3:])
        with caplog.at_level(logging.WARNING, logger="semcache"):
            got = (idx.search(v[0], "ns/A", k=4, now=T0) if flavour == "sync" else
                   asyncio.run(idx.asearch(v[0], "ns/A", k=4, now=T0)))
        assert [x.key for x in got] == ["ns:good"]
        assert idx.skipped == 1
        warned = [x for x in caplog.records if "malformed" in x.getMessage()]
        assert len(warned) == 1 and name in warned[0].getMessage()
    finally:
        r.close()
        idx.drop()
        idx.close()


def test_a_non_finite_distance_is_not_similarity_one() -> None:
    with pytest.raises(ValueError):
        similarity_from_distance("nan")


# ------------------------------------------- observations another writer shaped otherwise
@pytest.mark.parametrize("damage", [
    "not json", "5", '"x"', '{"a": [0.8, 1, null]}', "[5]", '[[2.0, true]]',
    '[[0.8, 1, null], "junk", [0.8, 1, 7], [true, 1], [0.8], [0.8, 1, null, 4]]',
    b"\xff\xfe", "[NaN]", '[[NaN, 1]]', "[" * 3000 + "]" * 3000,
    '[[0.8, 1, null], [0.8, 7, null], [0.8, {"x": 1}, null], [0.8, "no", null]]'])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_observing_an_entry_with_malformed_observations_repairs_them(
        redis_stack_url, damage, flavour, caplog) -> None:
    # the Lua script's cjson.decode failed on an "o" that is not JSON (a Redis script
    # error: an index fault, the judged outcome lost) and table.insert on a non-array;
    # unreadable elements kept the hash unsearchable (its search skips it)
    import asyncio
    import logging

    import redis

    from semcache.indexes.base import Observation

    name = _name()
    idx = RedisVLIndex(RedisConnection(url=redis_stack_url), name, model_id="m")
    r = redis.Redis.from_url(redis_stack_url)
    try:
        v = unit(np.random.default_rng(6), 1, 8)
        idx.add([IndexEntry("ns:bad", "ns/A", "ns", "prompt bad", T0, None)], v)
        r.hset(idx._rkey("ns:bad"), "o", damage)
        obs = Observation(0.75, False, "q1")
        with caplog.at_level(logging.WARNING, logger="semcache"):
            done = (idx.observe("ns:bad", obs) if flavour == "sync" else
                    asyncio.run(idx.aobserve("ns:bad", obs)))
        assert done is True and idx.repaired == 1
        warned = [x for x in caplog.records if "malformed observations" in x.getMessage()]
        assert len(warned) == 1 and name in warned[0].getMessage()
        got = idx.search(v[0], "ns/A", k=4, now=T0)  # searchable again, nothing skipped
        assert [x.key for x in got] == ["ns:bad"] and idx.skipped == 0
        kept = list(got[0].observations)
        assert kept[-1] == obs
        assert all(o == Observation(0.8, True) for o in kept[:-1])  # the readable ones
        idx.observe("ns:bad", obs)  # the next one is the ordinary path
        assert idx.repaired == 1
        assert idx.search(v[0], "ns/A", k=4, now=T0)[0].observations[-2:] == (obs, obs)
    finally:
        r.close()
        idx.drop()
        idx.close()


def test_feedback_on_an_entry_with_malformed_observations_is_not_a_fault(
        redis_stack_url) -> None:
    import redis

    from semcache import Cache


    r = redis.Redis.from_url(redis_stack_url)
    for on_error in ("open", "raise"):
        name = _name()
        # the index's repair is under test, not whether "a" answers "b": the cosine alone
        cache = Cache(type="redis-semantic", embedder=Same(), redis_url=redis_stack_url,
                      redis_semantic_cache_index_name=name, similarity_threshold=0.5,
                      namespace=name, on_error=on_error, verifier=None)
        try:
            feedback_after_damage(cache, on_error,
                                  lambda key: r.hset(cache.index._rkey(key), "o", "not json"))
        finally:
            cache.flush()
            cache.index.drop()
            cache.close()
    r.close()


# --------------------------------------- an index another version or deployment created
def _foreign_index(url: str, name: str, *, dims: int = 4, metric: str = "cosine",
                   prefix: str | None = None, datatype: str = "float32") -> None:
    """A search index under ``name`` as an older version (or another tool) made it, with
    no ``vec#meta#`` hash beside it."""
    import redis
    from redisvl.index import SearchIndex
    from redisvl.schema import IndexSchema

    schema = IndexSchema.from_dict({
        "index": {"name": name, "prefix": prefix or f"vec#{name}:", "storage_type": "hash"},
        "fields": [{"name": "ctx", "type": "tag"}, {"name": "ns", "type": "tag"},
                   {"name": "x", "type": "numeric"},
                   {"name": "v", "type": "vector", "attrs": {
                       "dims": dims, "distance_metric": metric, "algorithm": "flat",
                       "datatype": datatype}}]})
    client = redis.Redis.from_url(url)
    SearchIndex(schema, redis_client=client).create()
    client.close()


@pytest.mark.parametrize(("foreign", "names"), [
    ({"metric": "l2"}, "L2"), ({"dims": 8}, "8"), ({"datatype": "float64"}, "FLOAT64"),
    ({"prefix": "elsewhere:"}, "elsewhere:")])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_an_existing_index_of_another_shape_is_a_config_error(redis_stack_url, foreign,
                                                               names, flavour) -> None:
    # the index was taken as it was found: an L2 index answered squared distances that
    # became similarities (2 cos - 1: silently wrong scores), an 8-dim or float64 one
    # left every 4-dim hash unindexed (writes silently lost, then every search a fault)
    # and one over another prefix never saw the hashes at all
    import asyncio

    name = _name()
    _foreign_index(redis_stack_url, name, **foreign)
    idx = RedisVLIndex(RedisConnection(url=redis_stack_url), name, dim=4)
    v = unit(np.random.default_rng(8), 1, 4)
    try:
        with pytest.raises(ConfigError) as err:
            if flavour == "sync":
                idx.add([IndexEntry("n:a", "c", "n", "p", T0, None)], v)
            else:
                asyncio.run(idx.aadd([IndexEntry("n:a", "c", "n", "p", T0, None)], v))
        assert err.value.parameter == "redis_semantic_cache_index_name"
        assert name in str(err.value) and names in str(err.value)
        with pytest.raises(ConfigError):  # and every later call, not only the first
            idx.search(v[0], "c")
    finally:
        idx.connection.client().execute_command("FT.DROPINDEX", name, "DD")
        idx.close()


def test_an_existing_index_of_the_same_shape_without_meta_is_adopted(redis_stack_url) -> None:
    name = _name()
    _foreign_index(redis_stack_url, name)
    idx = RedisVLIndex(RedisConnection(url=redis_stack_url), name, dim=4, model_id="m")
    v = unit(np.random.default_rng(9), 1, 4)
    idx.add([IndexEntry("n:a", "c", "n", "p", T0, None)], v)
    assert [c.key for c in idx.search(v[0], "c")] == ["n:a"]
    idx.drop()
    idx.close()


@pytest.mark.parametrize("meta", [
    {"dim": "abc"}, {"dim": "0"}, {"dim": "-3"}, {"model_id": "m"}, {"dim": "4", "metric": "l2"},
    {"dim": b"\xff"}])
def test_a_malformed_meta_hash_is_a_config_error(redis_stack_url, meta) -> None:
    # int(meta["dim"]) raised a raw KeyError/ValueError out of every call (a crash, not
    # a typed error), and dim "0" became an index "of dimension 0"
    import redis

    name = _name()
    client = redis.Redis.from_url(redis_stack_url)
    client.hset(f"vec#meta#{name}", mapping=meta)
    idx = RedisVLIndex(RedisConnection(url=redis_stack_url), name)
    try:
        with pytest.raises(ConfigError) as err:
            idx.search(unit(np.random.default_rng(1), 1, 4)[0], "c")
        assert err.value.parameter == "redis_semantic_cache_index_name"
        assert name in str(err.value)  # the index (or its metadata hash) by name
    finally:
        client.delete(f"vec#meta#{name}")
        client.close()
        idx.close()


@pytest.mark.parametrize("lost", ["index", "index and meta", "index and entries"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_an_index_lost_mid_run_is_recreated(redis_stack_url, lost, flavour) -> None:
    # a Redis restarted without persistence, a FLUSHALL or an FT.DROPINDEX under a
    # running process: it kept _ready, so every later search, count and clear was a
    # "no such index" backend fault (each lookup a counted miss, the semantic stage dead
    # until the process restarted) while adds went on writing hashes nothing indexed
    import asyncio
    import contextlib

    import redis

    name = _name()
    idx = RedisVLIndex(RedisConnection(url=redis_stack_url), name, model_id="m")
    rng = np.random.default_rng(11)
    a, b = unit(rng, 2, 4)
    client = idx.connection.client()

    def run(method, *args):
        if flavour == "sync":
            return getattr(idx, method)(*args)
        return asyncio.run(getattr(idx, "a" + method)(*args))

    try:
        run("add", [IndexEntry("n:a", "c", "n", "p", T0, None)], a[None])
        client.execute_command("FT.DROPINDEX", name, *(["DD"] if "entries" in lost else []))
        if "meta" in lost:
            client.delete(idx.meta_key)
        # written while no index exists: indexed once it is made again
        run("add", [IndexEntry("n:b", "c", "n", "p", T0, None)], b[None])
        want = {"n:b"} if "entries" in lost else {"n:a", "n:b"}
        assert run("search", b, "c", 4, T0) is not None  # no fault: the index is made again
        # FT.CREATE indexes the hashes already there in the background
        assert wait_until(lambda: {c.key for c in run("search", b, "c", 4, T0)} == want)
        assert run("count", "n") == len(want)
        for method in ("count", "clear"):  # no fault either, and the index is back
            client.execute_command("FT.DROPINDEX", name)
            assert run(method, "n") in range(len(want) + 1)
            assert wait_until(lambda: run("clear", "n") == 0 and run("count", "n") == 0)
        assert client.hget(idx.meta_key, "model_id") == b"m"
        client.execute_command("FT.DROPINDEX", name)
        idx.drop()  # tearing down a deployment whose index is gone is no error either
        assert not client.exists(idx.meta_key)
    finally:
        with contextlib.suppress(redis.ResponseError):
            client.execute_command("FT.DROPINDEX", name, "DD")
        client.delete(idx.meta_key, *client.keys(f"vec#{name}:*"))
        idx.close()


class _CutBefore:
    """A loopback TCP relay to a real Redis that forwards a client's bytes up to the
    command that starts with ``marker`` (RESP: ``*N`` then ``$len marker``) and then
    closes both sides: the connection lost in the middle of a pipeline, after the
    commands before that one reached the server."""

    def __init__(self, port: int, marker: bytes) -> None:
        import threading

        self.target, self.marker = port, marker
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(server, client, False),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(client, server, True),
                             daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, cut: bool) -> None:
        try:  # redis-py sends a pipeline with one sendall: one read holds it whole
            while data := src.recv(1 << 20):
                at = data.upper().find(b"\r\n" + self.marker.upper() + b"\r\n")
                if not cut or at < 0:
                    dst.sendall(data)
                    continue
                start = data.rfind(b"*", 0, data.rfind(b"$", 0, at))  # its "*N\r\n$len"
                dst.sendall(data[:start])
                self.cuts += 1
                break
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(("expires", "marker"), [(True, b"PEXPIREAT"), (False, b"PERSIST")])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_write_cut_mid_pipeline_leaves_no_half_entry(redis_stack_url, expires, marker,
                                                       flavour) -> None:
    # add wrote HSET and then PEXPIREAT/PERSIST in a pipeline without MULTI: a
    # connection lost between them left the new hash without its Redis expiry (never
    # reclaimed, counted forever) or a replaced one with the old entry's expiry (an
    # answer stored to never expire dropped at the old time)
    import asyncio
    from urllib.parse import urlparse

    import redis

    name = _name()
    direct = RedisVLIndex(RedisConnection(url=redis_stack_url), name, dim=4)
    v = unit(np.random.default_rng(12), 1, 4)
    old = IndexEntry("n:a", "c", "n", "old", T0, None if expires else T0 + 10)
    direct.add([old], v)  # the entry being replaced (and the index) exist
    relay = _CutBefore(urlparse(redis_stack_url).port, marker)
    cut = RedisVLIndex(RedisConnection(url=f"redis://127.0.0.1:{relay.port}",
                                       socket_timeout=2), name, dim=4)
    client = redis.Redis.from_url(redis_stack_url)
    new = [IndexEntry("n:a", "c", "n", "new", T0 + 1, T0 + 1e9 if expires else None),
           IndexEntry("n:b", "c", "n", "new", T0 + 1, T0 + 1e9 if expires else None)]
    try:
        with pytest.raises(BackendError):  # unavailable (or a timeout): a counted fault
            if flavour == "sync":
                cut.add(new, np.vstack([v, v]))
            else:
                asyncio.run(cut.aadd(new, np.vstack([v, v])))
        assert relay.cuts >= 1
        a, b = direct._rkey("n:a"), direct._rkey("n:b")
        assert client.hget(a, "p") == b"old"  # the write happened whole or not at all
        assert not client.exists(b)
        assert (client.pttl(a) == -1) if expires else (client.pttl(a) > 0)  # its own
    finally:
        relay.close()
        cut.close()
        client.close()
        direct.drop()
        direct.close()

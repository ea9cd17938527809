"""RedisStore in cluster mode against a real 3-master cluster (``redis_cluster_nodes``)."""

from __future__ import annotations

import asyncio

import pytest
import redis
from redis.cluster import ClusterNode

from semcache import BackendUnavailable
from semcache.exact.redis import RedisStore
from semcache_testing.servers import free_port
from tests.contracts.exact_store import RemoteExactStoreContract, assert_reads_the_servers_expiry


class TestRedisClusterStore(RemoteExactStoreContract):
    @pytest.fixture
    def store(self, redis_cluster_nodes):
        s = RedisStore.from_params(redis_startup_nodes=redis_cluster_nodes)
        yield s
        s.close()

    @pytest.fixture
    def dead_store(self):
        nodes = [{"host": "127.0.0.1", "port": free_port()} for _ in range(2)]
        s = RedisStore(startup_nodes=nodes, socket_connect_timeout=0.5, socket_timeout=0.5)
        yield s
        s.close()


@pytest.fixture
def raw(redis_cluster_nodes):
    client = redis.RedisCluster(
        startup_nodes=[ClusterNode(n["host"], n["port"]) for n in redis_cluster_nodes])
    yield client
    client.close()


def test_clear_scans_every_master(redis_cluster_nodes, raw) -> None:
    store = RedisStore.from_params(redis_startup_nodes=redis_cluster_nodes)
    keys = [f"cl:{i}" for i in range(300)]
    owners = {raw.get_node_from_key(k).name for k in keys}
    assert len(owners) == 3  # the namespace's keys live on all three masters
    for k in keys:
        store.set(k, b"v")
    raw.set("cl2:1", b"other namespace")
    assert store.delete(keys[:10]) == 10  # multi-slot UNLINK is split per slot
    assert store.clear("cl") == 290
    assert asyncio.run(store.aclear("cl")) == 0
    assert raw.get("cl2:1") == b"other namespace"
    raw.delete("cl2:1")
    assert repr(store).startswith("RedisStore(startup_nodes='127.0.0.1:")
    store.close()


def test_constructor_does_not_connect() -> None:
    # a cluster client connects when built: the store defers that to its first call
    s = RedisStore(startup_nodes=[{"host": "127.0.0.1", "port": free_port()}],
                   socket_connect_timeout=0.3, socket_timeout=0.3)
    with pytest.raises(BackendUnavailable):
        s.ping()
    with pytest.raises(BackendUnavailable):
        asyncio.run(s.aping())


def test_get_with_ttl_reads_the_expiry_on_a_cluster(redis_cluster_nodes) -> None:
    assert_reads_the_servers_expiry(
        RedisStore.from_params(redis_startup_nodes=redis_cluster_nodes), "gwt:k")
